//! Values that pass the parsers but no encoder writes (issue 22): NaN, infinite, zero and negative scales on
//! every decode path (the tensor API, the host check of streamed codes), codes beyond `i32`, decoded audio
//! that overflows float32, and a checkpoint of the other model.

use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::{Checkpoint, HubError};
use clvp_parity::fixture_path;
use encodec_codec::{
    CodesRef, EncodecError, EncodecModel, SegmentRef, check_scale, is_valid_scale,
};

fn load(name: &str) -> EncodecModel {
    let ckpt = Checkpoint::local(fixture_path(name)).expect("fixture");
    EncodecModel::from_checkpoint(&ckpt, &Device::flex()).expect("loads")
}

#[test]
fn one_rule_for_scales() {
    for good in [1e-8f32, 0.5, 3.0e38] {
        assert!(
            is_valid_scale(good) && check_scale(0, good).is_ok(),
            "{good}"
        );
    }
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, -1.0] {
        assert!(!is_valid_scale(bad), "{bad}");
        let e = check_scale(3, bad).expect_err("refused");
        assert!(
            matches!(e, EncodecError::InvalidScale { chunk: 3, .. })
                && e.to_string().contains("finite and positive"),
            "{e}"
        );
    }
}

#[test]
fn invalid_scales_are_refused_on_every_decode_path() {
    let m = load("encodec/tiny_48k");
    let device = Device::flex();
    let codes: Tensor<4, Int> = Tensor::from_data(
        TensorData::new(vec![0i64; 2 * 2 * 15], [2, 1, 2, 15]),
        &device,
    );
    for bad in [f32::NAN, -1.0, 0.0] {
        let scales = Tensor::<2>::from_data(TensorData::new(vec![0.5, bad], [2, 1]), &device);
        let e = m
            .decode(codes.clone(), Some(scales), 0, None)
            .expect_err("a bad scale is refused");
        assert!(
            matches!(e, EncodecError::InvalidScale { chunk: 1, .. }),
            "{bad}: {e}"
        );
    }
    // The host check of streamed codes (and of the facade's Encodec::decode).
    let zeros = vec![0u16; 2 * 15];
    let segments = [
        SegmentRef {
            codes: CodesRef::U16(&zeros),
            frames: 15,
            scale: Some(f32::INFINITY),
        },
        SegmentRef {
            codes: CodesRef::U16(&zeros),
            frames: 15,
            scale: Some(0.5),
        },
    ];
    let e = m.check_segments(&segments, 2).expect_err("refused");
    assert!(
        matches!(e, EncodecError::InvalidScale { chunk: 0, .. }),
        "{e}"
    );
}

#[test]
fn codes_beyond_i32_are_out_of_the_codebook_before_any_tensor() {
    let m = load("encodec/tiny_24k");
    for value in [1i64 << 31, i64::MAX, -(1i64 << 31) - 1] {
        let mut codes = vec![1i64; 2 * 4];
        codes[5] = value;
        let segments = [SegmentRef {
            codes: CodesRef::I64(&codes),
            frames: 4,
            scale: None,
        }];
        let e = m.check_segments(&segments, 2).expect_err("refused");
        assert!(
            matches!(
                e,
                EncodecError::CodeOutOfRange {
                    codebook: 1,
                    frame: 1,
                    size: 64,
                    ..
                }
            ) && e.to_string().contains(&value.to_string()),
            "{value}: {e}"
        );
    }
}

#[test]
fn decoded_audio_that_overflows_is_an_error() {
    let m = load("encodec/tiny_48k");
    let device = Device::flex();
    let codes: Tensor<4, Int> = Tensor::from_data(
        TensorData::new(vec![3i64; 2 * 2 * 15], [2, 1, 2, 15]),
        &device,
    );
    let scales = Tensor::<2>::from_data(TensorData::new(vec![3.4e38f32, 3.4e38], [2, 1]), &device);
    let e = m
        .decode(codes, Some(scales), 0, None)
        .expect_err("overflowing audio is refused");
    assert!(
        matches!(e, EncodecError::NonFiniteAudio { .. }) && e.to_string().contains("overflows"),
        "{e}"
    );
}

#[test]
fn a_clvp_checkpoint_is_named() {
    let ckpt = Checkpoint::local(fixture_path("clvp/tiny")).expect("fixture");
    let e = EncodecModel::from_checkpoint(&ckpt, &Device::flex()).expect_err("refused");
    assert!(
        matches!(e, EncodecError::Hub(HubError::WrongModel { .. }))
            && e.to_string()
                .contains("is a CLVP checkpoint, not an EnCodec checkpoint"),
        "{e}"
    );
}
