//! Tortoise's own files through the facade: a directory, either `.pth` path, or the two paths apart load the same
//! model (`fixtures/tortoise/tiny`, Tortoise's classes with random weights; their numbers are checked against
//! Tortoise's code by `clvp-nn --test tortoise`); wrong or missing files are named.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clvp::Clvp;

fn tiny() -> PathBuf {
    clvp_parity::fixture_path("tortoise/tiny")
}

fn device() -> Device {
    Device::flex()
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

fn embeds(model: &Clvp) -> Vec<f32> {
    model
        .embed_text("Hello there.")
        .unwrap_or_else(|e| panic!("{e}"))
        .row(0)
        .map(<[f32]>::to_vec)
        .unwrap_or_default()
}

#[test]
fn a_directory_either_file_or_two_paths_load_the_same_model() {
    let dir = tiny();
    let by_dir = Clvp::from_pretrained(&dir.display().to_string(), &device())
        .unwrap_or_else(|e| panic!("{e}"));
    let want = embeds(&by_dir);
    assert!(!want.is_empty());
    for file in ["autoregressive.pth", "clvp2.pth"] {
        let m = Clvp::from_pretrained(&dir.join(file).display().to_string(), &device())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(embeds(&m), want, "{file}");
    }
    // The two files apart, under other names; the configuration beside the autoregressive one.
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap_or_else(|e| panic!("{e}"));
    }
    copy(&dir.join("autoregressive.pth"), &a.join("ar.pth"));
    copy(&dir.join("config.json"), &a.join("config.json"));
    copy(&dir.join("clvp2.pth"), &b.join("encoders.pth"));
    let apart = Clvp::from_tortoise(&a.join("ar.pth"), &b.join("encoders.pth"), &device())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(embeds(&apart), want);
    // As one `--model` argument: a path list, in either order.
    for pair in [
        [b.join("encoders.pth"), a.join("ar.pth")],
        [a.join("ar.pth"), b.join("encoders.pth")],
    ] {
        let list = std::env::join_paths(&pair).unwrap_or_else(|e| panic!("{e}"));
        let m = Clvp::from_pretrained(&list.to_string_lossy(), &device())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(embeds(&m), want);
    }
}

#[test]
fn files_of_another_shape_without_a_config_ask_for_one() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for file in ["autoregressive.pth", "clvp2.pth"] {
        copy(&tiny().join(file), &tmp.path().join(file));
    }
    // The folder, or one of the files: the same explanation.
    for spec in [tmp.path().to_path_buf(), tmp.path().join("clvp2.pth")] {
        let e = Clvp::from_pretrained(&spec.display().to_string(), &device())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("config.json") && e.contains("released model"),
            "{e}"
        );
        assert!(e.contains("expects"), "the first misfit is named: {e}");
    }
}

#[test]
fn a_missing_partner_or_a_foreign_checkpoint_is_named() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    copy(
        &tiny().join("autoregressive.pth"),
        &tmp.path().join("autoregressive.pth"),
    );
    copy(&tiny().join("config.json"), &tmp.path().join("config.json"));
    let alone = tmp.path().join("autoregressive.pth");
    let e = Clvp::from_pretrained(&alone.display().to_string(), &device())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("clvp2.pth"), "{e}");

    // The autoregressive file twice: its tensors would land on the same keys, which is named, not merged.
    copy(
        &tiny().join("autoregressive.pth"),
        &tmp.path().join("clvp2.pth"),
    );
    let e = Clvp::from_pretrained(&tmp.path().display().to_string(), &device())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("but the checkpoint already has it from"), "{e}");

    // Meta's EnCodec checkpoint where CLVP's should be: its keys are named, with the table that refused them.
    let meta = clvp_parity::fixture_path("encodec_meta/tiny_24khz.th");
    copy(&meta, &tmp.path().join("clvp2.pth"));
    let e = Clvp::from_pretrained(&tmp.path().display().to_string(), &device())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("unexpected key `encoder.model.") && e.contains("`tortoise` name table"),
        "{e}"
    );
}
