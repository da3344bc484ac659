//! One error type for every facade call (issue 29 item 4): a downstream crate writes one `From<clvp::Error>`
//! and uses `?` on CLVP, EnCodec, devices, voices and files alike; the conditions a TTS acts on are variants
//! with their numbers, not messages to parse.

use std::path::PathBuf;

use clvp::{Clvp, Encodec, Error, Voice};

/// A downstream project's own error, with one conversion from the facade.
#[derive(Debug)]
enum AppError {
    Clvp(Error),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Clvp(e)
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Every kind of facade call under one `?`.
fn downstream() -> Result<usize, AppError> {
    let device = clvp::device::device("cpu")?;
    let clvp = Clvp::from_pretrained(&fixtures().join("clvp/tiny").to_string_lossy(), &device)?;
    let clip: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let voice = clvp.voice(&[clip])?;
    let dir = tempfile::tempdir().map_err(|e| Error::Input(e.to_string()))?;
    voice.save(dir.path().join("v.safetensors"))?;
    let voice = Voice::load(dir.path().join("v.safetensors"))?;
    let scores = clvp.score("Hello.", &[vec![1, 2, 3]])?;
    let codec = Encodec::from_pretrained(
        &fixtures().join("encodec/tiny_24k").to_string_lossy(),
        &device,
    )?;
    let audio = clvp::load_audio(fixtures().join("encodec/e2e_24k.wav"))?;
    let codes = codec.encode(&audio, None)?;
    codec.save_ecdc(&codes, dir.path().join("a.ecdc"))?;
    let back = codec.decode(&codec.load_ecdc(dir.path().join("a.ecdc"))?)?;
    Ok(voice.vector().len() + scores.logits_per_text.len() + back.num_frames())
}

#[test]
fn one_conversion_covers_every_call() {
    match downstream() {
        Ok(n) => assert!(n > 0),
        Err(AppError::Clvp(e)) => panic!("{e}"),
    }
    let missing = Clvp::from_pretrained("/nonexistent/clvp", &burn::tensor::Device::flex());
    assert!(matches!(missing, Err(Error::Hub(_))), "{missing:?}");
    assert!(matches!(clvp::device::device("tpu"), Err(Error::Device(_))));
}

#[test]
fn conditions_a_tts_acts_on_are_variants() {
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    let clvp = Clvp::from_pretrained(&fixtures().join("clvp/tiny").to_string_lossy(), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let max = clvp.raw().config.decoder_config.max_text_tokens;
    let long = "word ".repeat(4 * max);
    match clvp.score(&long, &[vec![1, 2]]) {
        Err(Error::TextTooLong {
            tokens,
            limit,
            max_text_tokens,
        }) => {
            assert_eq!(max_text_tokens, max);
            assert_eq!(limit, max - 3);
            assert!(tokens > limit, "{tokens} ≤ {limit}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(clvp.score("", &[vec![1]]), Err(Error::EmptyText)));
    assert!(matches!(
        clvp.score("Hi.", &[] as &[Vec<u32>]),
        Err(Error::NoCandidates)
    ));
    assert!(matches!(
        clvp.score("Hi.", &[vec![1, 2], vec![]]),
        Err(Error::EmptyCandidate { index: 1 })
    ));
    assert!(matches!(
        clvp.voice(&[] as &[Vec<f32>]),
        Err(Error::NoVoice)
    ));
    let mut config = clvp.preset(clvp::Preset::UltraFast);
    config.num_return_sequences = clvp::MAX_CANDIDATES + 1;
    let voice = clvp
        .voice(&[vec![0.1f32; 22050]])
        .unwrap_or_else(|e| panic!("{e}"));
    match clvp.generate_for_voice("Hi.", &voice, &config, &mut |_, _| {}) {
        Err(Error::TooManyCandidates { requested, max }) => {
            assert_eq!(
                (requested, max),
                (clvp::MAX_CANDIDATES + 1, clvp::MAX_CANDIDATES)
            );
        }
        other => panic!("{other:?}"),
    }
}
