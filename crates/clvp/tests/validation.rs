//! The facade refuses what a codes file or a checkpoint can hold but no encoder or training run writes
//! (issue 22): codes beyond `i32` (burn's cast panicked), NaN and negative `audio_scales`, shapes whose element
//! count overflows, an extreme beam-search length penalty, and an EnCodec checkpoint given to CLVP.

use std::path::PathBuf;

use clvp::raw::encodec::EncodecError;
use clvp::raw::hub::HubError;
use clvp::raw::nn::NnError;
use clvp::{
    AudioCodes, ChunkCodes, Clvp, ClvpError, CodecError, Encodec, GenerationConfig, HfCodes,
};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn device() -> burn::tensor::Device {
    clvp::device::device("cpu").expect("cpu device")
}

#[test]
fn codes_beyond_i32_are_an_error_not_a_panic() {
    let codec = Encodec::from_pretrained(&fixture("encodec/tiny_24k"), &device()).expect("loads");
    for value in [1i64 << 31, i64::MAX, -(1i64 << 31) - 1] {
        let mut codes = vec![0i64; 2 * 4];
        codes[2] = value;
        let audio = AudioCodes {
            chunks: vec![ChunkCodes {
                codes,
                frames: 4,
                scale: None,
            }],
            num_codebooks: 2,
            audio_length: 1280,
        };
        let e = codec.decode(&audio).expect_err("refused");
        assert!(
            matches!(&e, CodecError::Encodec(inner) if matches!(**inner, EncodecError::CodeOutOfRange { .. })),
            "{value}: {e}"
        );
    }
}

#[test]
fn hf_codes_with_bad_scales_or_shapes_are_refused() {
    let hf = |scales: Vec<f32>, shape: [usize; 4]| HfCodes {
        audio_codes: vec![0; 2 * 2 * 3],
        shape,
        audio_scales: Some(scales),
        last_frame_pad_length: 0,
        audio_length: 100,
    };
    for bad in [f32::NAN, f32::INFINITY, -1.0, 0.0] {
        let e = AudioCodes::from_hf(&hf(vec![1.0, bad], [2, 1, 2, 3])).expect_err("refused");
        // Through the facade's error (`?`), as a caller sees it.
        let e = CodecError::from(e);
        assert!(
            matches!(&e, CodecError::Encodec(inner) if matches!(**inner, EncodecError::InvalidScale { chunk: 1, .. })),
            "{bad}: {e}"
        );
    }
    assert!(AudioCodes::from_hf(&hf(vec![1.0, 0.25], [2, 1, 2, 3])).is_ok());
    // A shape whose element count overflows usize: an error, not an overflow panic.
    let e = AudioCodes::from_hf(&hf(vec![1.0], [usize::MAX, 1, 2, 3])).expect_err("refused");
    assert!(e.to_string().contains("more than memory holds"), "{e}");
    assert!(matches!(CodecError::from(e), CodecError::Codes(_)));
}

#[test]
fn hand_built_codes_of_the_wrong_length_are_refused_not_sliced() {
    // Two codebooks × 4 frames need 8 codes; 5 used to panic in `to_hf`'s slicing.
    let audio = AudioCodes {
        chunks: vec![ChunkCodes {
            codes: vec![0; 5],
            frames: 4,
            scale: None,
        }],
        num_codebooks: 2,
        audio_length: 1280,
    };
    let e = audio.to_hf().expect_err("refused");
    assert!(
        e.to_string().contains("5 codes for 2 codebooks × 4 frames"),
        "{e}"
    );
}

#[test]
fn an_extreme_length_penalty_names_the_setting() {
    let cfg = GenerationConfig {
        num_beams: 2,
        num_return_sequences: 1,
        max_new_tokens: 100,
        length_penalty: -100.0,
        ..GenerationConfig::default()
    };
    match cfg.validate() {
        Err(NnError::Generation {
            option: Some("length_penalty"),
            message,
        }) => assert!(message.contains("length_penalty -100"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The same value is harmless without beam search, and every value is with one new token.
    let sampling = GenerationConfig {
        num_beams: 1,
        ..cfg.clone()
    };
    assert!(sampling.validate().is_ok());
    let one = GenerationConfig {
        max_new_tokens: 1,
        ..cfg
    };
    assert!(one.validate().is_ok());
}

#[test]
fn an_encodec_checkpoint_is_named() {
    let e = Clvp::from_pretrained(&fixture("encodec/tiny_24k"), &device()).expect_err("refused");
    let msg = e.to_string();
    assert!(
        (matches!(&e, ClvpError::Load(_))
            || matches!(&e, ClvpError::Hub(h) if matches!(**h, HubError::WrongModel { .. })))
            && msg.contains("is an EnCodec checkpoint, not a CLVP checkpoint")
            && !msg.contains("missing key"),
        "{msg}"
    );
}
