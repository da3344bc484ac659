//! Many voice clips in bounded memory (issue 22): the conditioning mean is computed a batch of clips at a
//! time ([`VoiceConditioning`]); it is the mean over one batch of all the clips (`mel_vector_mean`), exactly
//! up to [`VOICE_BATCH`] clips and within float rounding beyond.

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use clvp::{Clvp, VOICE_BATCH};

fn tiny() -> Clvp {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/clvp/tiny");
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    Clvp::from_pretrained(&dir.to_string_lossy(), &device).unwrap_or_else(|e| panic!("{e}"))
}

fn clip(i: usize) -> Vec<f32> {
    let f = 0.01 + 0.003 * i as f32;
    (0..4000 + 97 * i)
        .map(|n| 0.3 * (n as f32 * f).sin() + 0.05 * ((n * (i + 3)) % 17) as f32 / 17.0)
        .collect()
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// `mel_vector_mean` over one batch of all the clips (what `generate` computed before).
fn one_batch(clvp: &Clvp, clips: &[Vec<f32>]) -> Vec<f32> {
    let fe = &clvp.processor.feature_extractor;
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    let f = fe
        .extract(&refs, Some(fe.sampling_rate))
        .unwrap_or_else(|e| panic!("{e}"));
    let feats = Tensor::<3>::from_data(TensorData::new(f.input_features, f.shape), clvp.device());
    values(clvp.raw().model.conditioning_encoder.mel_vector_mean(feats))
}

fn running(clvp: &Clvp, clips: &[Vec<f32>]) -> Vec<f32> {
    let mut voice = clvp.voice_conditioning();
    for c in clips {
        voice.push(c).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(voice.count(), clips.len());
    values(voice.finish().unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn the_running_mean_is_the_mean_over_all_clips() {
    let clvp = tiny();
    for n in [1, 3, VOICE_BATCH, VOICE_BATCH + 1, 3 * VOICE_BATCH + 5] {
        let clips: Vec<Vec<f32>> = (0..n).map(clip).collect();
        let (want, got) = (one_batch(&clvp, &clips), running(&clvp, &clips));
        assert_eq!(want.len(), got.len());
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
            .fold(0.0f32, f32::max);
        if n <= VOICE_BATCH {
            assert!(worst == 0.0, "{n} clips: {worst}");
        } else {
            assert!(worst < 1e-5, "{n} clips: {worst}");
        }
    }
    let err = clvp.voice_conditioning().finish().unwrap_err().to_string();
    assert!(err.contains("no voice clip given"), "{err}");
}
