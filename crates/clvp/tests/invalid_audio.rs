//! Audio built by hand (its fields are public) that breaks the invariants is an error, not a panic.

use std::path::PathBuf;

use clvp::raw::audio::Audio;
use clvp::{CodecError, Encodec};

fn tiny(name: &str) -> Encodec {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encodec")
        .join(name);
    let device = clvp::device::device("cpu").expect("cpu device");
    Encodec::from_pretrained(dir.to_str().expect("utf-8 path"), &device).expect("tiny EnCodec")
}

#[test]
fn encode_checks_hand_built_audio() {
    // Before: ragged stereo reached TensorData::new and panicked ("shape and data length differ").
    let stereo = tiny("tiny_48k");
    let ragged = Audio {
        sample_rate: 48000,
        channels: vec![vec![0.1; 640], vec![0.1; 320]],
    };
    let err = stereo.encode(&ragged, None).unwrap_err();
    assert!(matches!(err, CodecError::Audio(_)), "{err}");
    assert!(
        err.to_string()
            .contains("channel 1 has 320 frames but channel 0 has 640"),
        "{err}"
    );
    let none = Audio {
        sample_rate: 24000,
        channels: vec![],
    };
    let err = tiny("tiny_24k").encode(&none, None).unwrap_err();
    assert!(err.to_string().contains("no channels"), "{err}");
}
