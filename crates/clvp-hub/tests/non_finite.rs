//! NaN and infinite weights are refused at load, naming the file and the tensor, whatever path the tensor
//! takes: a zero-copy view of a mapped f32 safetensors tensor, a transposed copy, an F16 or F64 tensor
//! converted to f32 (an F64 beyond float32's range becomes infinite), a PyTorch checkpoint. A model given them
//! would compute NaN and write it as a result.

mod common;

use std::path::Path;

use clvp_hub::{LoadError, Weights, WeightsError, load_module};
use common::{HubRef, device, hub_fixture, read_raw, table, write_raw};
use safetensors::Dtype;

/// The non-finite problems of loading `path` into the `hub_ref` module: `(key, index, value)`.
fn non_finite(path: &Path) -> (Vec<(String, usize, f32)>, String) {
    let w = Weights::open(path).unwrap_or_else(|e| panic!("{e}"));
    let err = load_module(HubRef::new(&device()), &w, &table())
        .map(|_| ())
        .expect_err("non-finite weights must be refused");
    let found = err
        .problems()
        .iter()
        .filter_map(|p| match p {
            LoadError::Weights(WeightsError::NonFinite {
                key, index, value, ..
            }) => Some((key.clone(), *index, *value)),
            _ => None,
        })
        .collect();
    (found, err.to_string())
}

#[test]
fn safetensors_weights_with_nan_or_infinity_name_the_tensor() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut raw = read_raw(&hub_fixture("f32/model.safetensors"));
    for r in &mut raw {
        match r.0.as_str() {
            // As is: the parameter is a view of the mapped file.
            "mlp.c_fc.bias" => r.3[8..12].copy_from_slice(&f32::NAN.to_le_bytes()),
            // Transposed: a converted copy.
            "linear.weight" => r.3[0..4].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes()),
            // F64 beyond float32: infinite once narrowed.
            "layer_norm.weight" => {
                r.1 = Dtype::F64;
                r.3 = (0..r.2.iter().product::<usize>())
                    .flat_map(|i| if i == 1 { 1e300f64 } else { 1.0 }.to_le_bytes())
                    .collect();
            }
            // F16 infinity (0x7C00).
            "layer_norm.bias" => {
                r.1 = Dtype::F16;
                r.3 = (0..r.2.iter().product::<usize>())
                    .flat_map(|i| if i == 2 { [0x00, 0x7c] } else { [0x00, 0x00] })
                    .collect();
            }
            _ => {}
        }
    }
    let path = tmp.path().join("model.safetensors");
    write_raw(&path, &raw);
    let (mut found, msg) = non_finite(&path);
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let keys: Vec<(&str, usize)> = found.iter().map(|(k, i, _)| (k.as_str(), *i)).collect();
    assert_eq!(
        keys,
        [
            ("layer_norm.bias", 2),
            ("layer_norm.weight", 1),
            ("linear.weight", 0),
            ("mlp.c_fc.bias", 2),
        ],
        "{msg}"
    );
    assert!(
        found[3].2.is_nan() && found[2].2 == f32::NEG_INFINITY,
        "{msg}"
    );
    assert!(
        msg.contains("model.safetensors: tensor `mlp.c_fc.bias` has 1 non-finite values")
            && msg.contains("the weights are corrupt"),
        "{msg}"
    );
    // Reading a tensor directly says the same.
    let w = Weights::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let direct = w.get("layer_norm.bias").map(|t| t.to_f32());
    assert!(
        matches!(direct, Some(Err(WeightsError::NonFinite { index: 2, .. }))),
        "{direct:?}"
    );
}

/// CRC-32 (IEEE) of `data`, as a zip entry records it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (!(crc & 1)).wrapping_add(1));
        }
    }
    !crc
}

fn u16_at(b: &[u8], i: usize) -> usize {
    usize::from(u16::from_le_bytes([b[i], b[i + 1]]))
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

#[test]
fn pytorch_weights_with_nan_name_the_tensor() {
    // `torch.save` writes a stored (uncompressed) zip whose sizes and CRCs are in the central directory (and
    // data descriptors): put a NaN first in every tensor's data and fix the CRCs.
    let mut zip =
        std::fs::read(hub_fixture("pytorch/pytorch_model.bin")).unwrap_or_else(|e| panic!("{e}"));
    let mut at = zip
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .unwrap_or(zip.len());
    let mut patched = 0;
    while at + 46 <= zip.len() && zip[at..at + 4] == *b"PK\x01\x02" {
        let size = u32_at(&zip, at + 20) as usize;
        let (name_len, extra_len, comment_len) = (
            u16_at(&zip, at + 28),
            u16_at(&zip, at + 30),
            u16_at(&zip, at + 32),
        );
        let local = u32_at(&zip, at + 42) as usize;
        let is_data = zip[at + 46..at + 46 + name_len]
            .windows(6)
            .any(|w| w == b"/data/");
        if is_data && size >= 4 {
            let data = local + 30 + u16_at(&zip, local + 26) + u16_at(&zip, local + 28);
            zip[data..data + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            let crc = crc32(&zip[data..data + size]).to_le_bytes();
            zip[at + 16..at + 20].copy_from_slice(&crc);
            let end = data + size;
            if zip.get(end..end + 4) == Some(b"PK\x07\x08") {
                zip[end + 4..end + 8].copy_from_slice(&crc);
            }
            patched += 1;
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    assert!(patched > 10, "the fixture's tensors were found ({patched})");
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = tmp.path().join("pytorch_model.bin");
    std::fs::write(&path, zip).unwrap_or_else(|e| panic!("{e}"));
    let (found, msg) = non_finite(&path);
    assert!(
        found
            .iter()
            .any(|(k, i, v)| k == "linear.bias" && *i == 0 && v.is_nan()),
        "{msg}"
    );
    assert!(
        msg.contains("pytorch_model.bin: tensor `") && msg.contains("non-finite"),
        "{msg}"
    );
}
