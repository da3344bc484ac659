//! A voice computed once and reused (issue 29 item 2): `Clvp::voice` → `generate_for_voice` gives what
//! `generate` with the clips gives; a voice saves to `.safetensors` and loads back bit for bit; a voice of
//! another model size, a broken file and non-finite values are errors that say so.

use std::path::PathBuf;

use clvp::{Clvp, GenerationConfig, Voice};

fn tiny() -> Clvp {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/clvp/tiny");
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    Clvp::from_pretrained(&dir.to_string_lossy(), &device).unwrap_or_else(|e| panic!("{e}"))
}

fn clip(i: usize) -> Vec<f32> {
    (0..9000 + 311 * i)
        .map(|n| 0.3 * (n as f32 * (0.02 + 0.007 * i as f32)).sin())
        .collect()
}

fn sampling() -> GenerationConfig {
    GenerationConfig {
        do_sample: true,
        num_return_sequences: 3,
        max_new_tokens: 10,
        seed: 5,
        ..GenerationConfig::default()
    }
}

fn err<T>(r: Result<T, clvp::ClvpError>) -> String {
    match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_reused_voice_generates_what_the_clips_generate() {
    let clvp = tiny();
    let clips = [clip(0), clip(1), clip(2)];
    let direct = clvp
        .generate("Hello there.", &clips, &sampling())
        .unwrap_or_else(|e| panic!("{e}"));
    let voice = clvp.voice(&clips).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(voice.clips(), 3);
    assert_eq!(
        voice.hidden_size(),
        clvp.raw().config.decoder_config.hidden_size
    );
    for text in ["Hello there.", "Hello there."] {
        let reused = clvp
            .generate_for_voice(text, &voice, &sampling(), &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reused.speech_ids, direct.speech_ids);
        assert_eq!(reused.logits_per_text, direct.logits_per_text);
    }
}

#[test]
fn a_voice_saves_and_loads_bit_for_bit() {
    let clvp = tiny();
    let voice = clvp.voice(&[clip(3)]).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("speaker.voice.safetensors");
    voice.save(&path).unwrap_or_else(|e| panic!("{e}"));
    let back = Voice::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, voice);
    let a = clvp
        .generate_for_voice("Hi.", &voice, &sampling(), &mut |_, _| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let b = clvp
        .generate_for_voice("Hi.", &back, &sampling(), &mut |_, _| {})
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.speech_ids, b.speech_ids);
}

#[test]
fn voices_that_do_not_fit_are_errors() {
    let clvp = tiny();
    let hidden = clvp.raw().config.decoder_config.hidden_size;
    let other = Voice::from_vector(vec![0.1; hidden + 3], 1).unwrap_or_else(|e| panic!("{e}"));
    let msg = err(clvp.generate_for_voice("Hi.", &other, &sampling(), &mut |_, _| {}));
    assert!(
        msg.contains(&format!("hidden size {}", hidden + 3)) && msg.contains(&hidden.to_string()),
        "{msg}"
    );
    assert!(err(Voice::from_vector(vec![0.0, f32::NAN], 1)).contains("not finite"));
    assert!(err(Voice::from_vector(Vec::new(), 1)).contains("non-empty"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap_or_else(|e| panic!("{e}"));
    assert!(err(Voice::load(&junk)).contains("not a voice file"));
    assert!(
        err(Voice::load(dir.path().join("missing.safetensors"))).contains("missing.safetensors")
    );
    // A safetensors file without the tensor, and one with the wrong shape.
    let data = [0u8; 16];
    for (name, shape, want) in [
        ("weight", vec![1, 1, 4], "no `conditioning` tensor"),
        ("conditioning", vec![2, 2], "not F32 [1, 1, hidden]"),
    ] {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &data)
            .unwrap_or_else(|e| panic!("{e}"));
        let bytes = safetensors::serialize([(name, view)], None).unwrap_or_else(|e| panic!("{e}"));
        let msg = err(Voice::from_safetensors(&bytes, "x.safetensors"));
        assert!(msg.contains(want) && msg.contains("x.safetensors"), "{msg}");
    }
}
