//! Sequences too long for an encoder's attention are refused with an error before anything is allocated
//! (a 100 000-character text used to ask for 80 GB of attention scores and abort the process).

use std::path::PathBuf;

use clvp::model::max_encoder_tokens;
use clvp::{Clvp, ClvpError, GenerationConfig};

fn tiny() -> Clvp {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/clvp/tiny");
    let device = clvp::device::device("cpu").expect("cpu device");
    Clvp::from_pretrained(dir.to_str().expect("utf-8 path"), &device).expect("tiny checkpoint")
}

fn input_error(r: Result<impl std::fmt::Debug, ClvpError>) -> String {
    match r {
        Err(e @ (ClvpError::Input(_) | ClvpError::SequenceTooLong { .. })) => e.to_string(),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn the_bound_follows_the_head_count() {
    // heads × T² × 4 bytes ≤ 2 GiB.
    assert_eq!(max_encoder_tokens(2), 16_384);
    assert_eq!(max_encoder_tokens(12), 6_688);
    assert_eq!(max_encoder_tokens(0), max_encoder_tokens(1));
}

#[test]
fn a_text_too_long_for_the_text_encoder_is_an_error() {
    let clvp = tiny();
    let msg = input_error(clvp.embed_text(&"a".repeat(100_000)));
    assert!(
        msg.contains("100000 text tokens") && msg.contains("16384") && msg.contains("text encoder"),
        "{msg}"
    );
    // At the bound it is still accepted (2 heads: 16 384 tokens).
    let e = clvp
        .get_text_features(&[vec![5; 2_000]], None)
        .expect("2 000 tokens");
    assert_eq!(e.shape[0], 1);
}

#[test]
fn too_many_speech_codes_are_an_error() {
    let clvp = tiny();
    let msg = input_error(clvp.get_speech_features(&[vec![5; 16_385]]));
    assert!(
        msg.contains("16385 speech codes") && msg.contains("speech encoder"),
        "{msg}"
    );
}

#[test]
fn a_huge_pad_to_max_mel_tokens_is_refused_before_generating() {
    let clvp = tiny();
    let config = GenerationConfig {
        max_new_tokens: 4,
        pad_to_max_mel_tokens: Some(1_000_000_000_000),
        ..GenerationConfig::default()
    };
    let msg = input_error(clvp.generate("Hi.", &[vec![0.1; 4_000]], &config));
    assert!(msg.contains("pad_to_max_mel_tokens"), "{msg}");
}
