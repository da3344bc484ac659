//! Every broken-file case is a typed error whose message names the file, the key and what was expected vs found.

mod common;

use std::path::{Path, PathBuf};

use clvp_hub::{
    Checkpoint, HubError, JsonConfig, JsonConfigError, Layout, LoadError, NameMap, Weights,
    WeightsError, load_module,
};
use common::{HubRef, Raw, device, hub_fixture, read_raw, table, write_raw};
use safetensors::Dtype;

/// A copy of the f32 checkpoint with `edit` applied, in a fresh directory.
fn edited(edit: impl FnOnce(&mut Raw)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut raw = read_raw(&hub_fixture("f32/model.safetensors"));
    edit(&mut raw);
    let path = tmp.path().join("model.safetensors");
    write_raw(&path, &raw);
    (tmp, path)
}

fn load_err(path: &Path, map: &NameMap) -> LoadError {
    let w = Weights::open(path).unwrap_or_else(|e| panic!("{e}"));
    load_module(HubRef::new(&device()), &w, map)
        .map(|_| ())
        .unwrap_err()
}

fn assert_names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{p}` not in: {msg}");
    }
}

#[test]
fn missing_key() {
    let (_t, path) = edited(|raw| raw.retain(|r| r.0 != "linear.bias"));
    let err = load_err(&path, &table());
    assert!(matches!(err, LoadError::MissingKey { .. }), "{err}");
    assert_names(
        &err.to_string(),
        &["model.safetensors", "missing key for `linear.bias`", "[5]"],
    );
}

#[test]
fn unexpected_key() {
    let (_t, path) =
        edited(|raw| raw.push(("extra.weight".into(), Dtype::F32, vec![2], vec![0; 8])));
    let err = load_err(&path, &table());
    assert!(matches!(err, LoadError::UnexpectedKey { .. }), "{err}");
    assert_names(
        &err.to_string(),
        &[
            "model.safetensors",
            "unexpected key `extra.weight`",
            "[2]",
            "`hub_ref` name table",
        ],
    );
}

#[test]
fn wrong_shape() {
    let (_t, path) = edited(|raw| {
        if let Some(r) = raw.iter_mut().find(|r| r.0 == "embedding.weight") {
            r.2 = vec![6, 11];
        }
    });
    let err = load_err(&path, &table());
    assert!(matches!(err, LoadError::ShapeMismatch(_)), "{err}");
    assert_names(
        &err.to_string(),
        &[
            "model.safetensors",
            "`embedding.weight`",
            "[6, 11]",
            "expects [11, 6]",
        ],
    );
}

#[test]
fn transposed_linear_shape_is_checked_after_the_transpose() {
    // A GPT-2 Conv1D weight wrongly marked as nn.Linear: [6, 7] transposed is [7, 6], not burn's [6, 7].
    let map = NameMap::new("wrong")
        .rule(r"mlp\.c_fc\.weight", "c_fc.weight", Layout::Transpose)
        .rule(r"(.*)", "$1", Layout::AsIs);
    let err = load_err(&hub_fixture("f32/model.safetensors"), &map);
    let msg = err.to_string();
    assert!(
        err.problems()
            .iter()
            .any(|p| matches!(p, LoadError::ShapeMismatch(_))),
        "{msg}"
    );
    assert_names(
        &msg,
        &[
            "`mlp.c_fc.weight` has shape [6, 7] (transposed [out,in]→[in,out]: [7, 6]) but `c_fc.weight` expects [6, 7]",
        ],
    );
}

#[test]
fn unsupported_dtype() {
    let (_t, path) = edited(|raw| {
        if let Some(r) = raw.iter_mut().find(|r| r.0 == "linear.bias") {
            *r = ("linear.bias".into(), Dtype::I64, vec![5], vec![0; 40]);
        }
    });
    let err = load_err(&path, &table());
    assert!(
        matches!(
            err,
            LoadError::Weights(WeightsError::UnsupportedDtype { .. })
        ),
        "{err}"
    );
    assert_names(
        &err.to_string(),
        &["model.safetensors", "`linear.bias`", "dtype I64"],
    );
    // Reading it directly says the same.
    let w = Weights::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let e = w.get("linear.bias").map(|t| t.to_f32());
    assert!(matches!(
        e,
        Some(Err(WeightsError::UnsupportedDtype { .. }))
    ));
}

#[test]
fn truncated_and_non_safetensors_files() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good =
        std::fs::read(hub_fixture("f32/model.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "truncated.safetensors",
            good[..good.len() - 100].to_vec(),
            "truncated",
        ),
        ("header-cut.safetensors", good[..200].to_vec(), "truncated"),
        (
            "text.safetensors",
            b"this is not a safetensors file at all".to_vec(),
            "not a safetensors file",
        ),
        (
            "tiny.safetensors",
            b"abc".to_vec(),
            "fewer than the 8-byte header",
        ),
        (
            "badjson.safetensors",
            [&8u64.to_le_bytes()[..], b"{nope!!}"].concat(),
            "not valid JSON",
        ),
    ];
    for (name, bytes, expect) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{e}"));
        let err = Weights::open(&p).map(|_| ()).unwrap_err();
        assert!(
            matches!(err, WeightsError::NotSafetensors { .. }),
            "{name}: {err}"
        );
        assert_names(
            &err.to_string(),
            &[name, "is not a valid safetensors file", expect],
        );
    }
    let err = Weights::open(tmp.path().join("absent.safetensors"))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, WeightsError::Io { .. }), "{err}");
    assert_names(&err.to_string(), &["absent.safetensors"]);
}

#[test]
fn broken_pytorch_file() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good =
        std::fs::read(hub_fixture("pytorch/pytorch_model.bin")).unwrap_or_else(|e| panic!("{e}"));
    for (name, bytes) in [
        ("garbage.bin", b"not a pickle, not a zip".to_vec()),
        ("cut.bin", good[..good.len() / 2].to_vec()),
    ] {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{e}"));
        let err = Weights::open(&p).map(|_| ()).unwrap_err();
        assert!(matches!(err, WeightsError::Pytorch { .. }), "{name}: {err}");
        assert_names(
            &err.to_string(),
            &[name, "not a readable PyTorch checkpoint"],
        );
    }
}

fn sharded_copy(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, path) in common::dir_files("sharded") {
        std::fs::copy(&path, tmp.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
    }
    edit(tmp.path());
    tmp
}

#[test]
fn index_naming_a_missing_shard() {
    let tmp = sharded_copy(|d| {
        std::fs::remove_file(d.join("model-00002-of-00002.safetensors"))
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let err = Checkpoint::local(tmp.path())
        .and_then(|c| c.weights())
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(err, HubError::Weights(WeightsError::MissingShard { .. })),
        "{err}"
    );
    assert_names(
        &err.to_string(),
        &[
            "model.safetensors.index.json",
            "model-00002-of-00002.safetensors",
            "does not exist",
            "`codebook.",
        ],
    );
}

#[test]
fn index_key_in_the_wrong_shard_and_bad_index() {
    let tmp = sharded_copy(|d| {
        let p = d.join("model.safetensors.index.json");
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{e}"));
        let text = text.replace(
            "\"linear.bias\": \"model-00001-of-00002.safetensors\"",
            "\"linear.bias\": \"model-00002-of-00002.safetensors\"",
        );
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    });
    let err = Weights::open(tmp.path().join("model.safetensors.index.json"))
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, WeightsError::KeyNotInShard { .. }), "{err}");
    assert_names(
        &err.to_string(),
        &[
            "maps `linear.bias` to",
            "model-00002-of-00002.safetensors",
            "no such tensor",
        ],
    );

    for (text, expect) in [
        ("{\"weight_map\": 3}", "no `weight_map` object"),
        ("{ nope", "not JSON"),
        (
            "{\"weight_map\": {\"a\": \"../x.safetensors\"}}",
            "not a relative file name",
        ),
    ] {
        let p = tmp.path().join("bad.index.json");
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        let err = Weights::open(&p).map(|_| ()).unwrap_err();
        assert!(matches!(err, WeightsError::BadIndex { .. }), "{err}");
        assert_names(&err.to_string(), &["bad.index.json", expect]);
    }
}

#[test]
fn config_not_json_or_not_an_object() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = tmp.path().join("config.json");
    std::fs::write(&p, "{\n  \"hidden_size\": 6,\n  oops\n}").unwrap_or_else(|e| panic!("{e}"));
    let err = Checkpoint::local(tmp.path())
        .and_then(|c| c.config())
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(
            err,
            HubError::Config(JsonConfigError::NotJson { line: 3, .. })
        ),
        "{err}"
    );
    assert_names(&err.to_string(), &["config.json is not valid JSON (line 3"]);
    std::fs::write(&p, "[\"hidden_size\", 6]").unwrap_or_else(|e| panic!("{e}"));
    let err = JsonConfig::read(&p).map(|_| ()).unwrap_err();
    assert_names(
        &err.to_string(),
        &["config.json must hold a JSON object, found an array"],
    );
    let err = Checkpoint::local(tmp.path())
        .and_then(|c| c.generation_config())
        .map(|_| ());
    assert!(err.is_ok(), "an absent optional config is not an error");
    std::fs::write(&p, "{\"num_attention_heads\": 4, \"hidden_size\": 6}")
        .unwrap_or_else(|e| panic!("{e}"));
    let c = JsonConfig::read(&p).unwrap_or_else(|e| panic!("{e}"));
    let err = c
        .ensure(6 % 4 == 0, "num_attention_heads", || {
            "4 heads do not divide hidden_size 6".into()
        })
        .unwrap_err();
    assert!(matches!(err, JsonConfigError::Inconsistent { .. }));
    assert_names(
        &err.to_string(),
        &[
            "config.json: field `num_attention_heads` is inconsistent: 4 heads do not divide hidden_size 6",
        ],
    );
}

#[test]
fn weight_norm_partner_missing() {
    let (_t, path) =
        edited(|raw| raw.retain(|r| r.0 != "wn_new.parametrizations.weight.original1"));
    let err = load_err(&path, &table());
    let msg = err.to_string();
    assert!(
        err.problems()
            .iter()
            .any(|p| matches!(p, LoadError::WeightNorm { .. })),
        "{msg}"
    );
    assert_names(
        &msg,
        &[
            "weight norm of `wn_new`",
            "`wn_new.parametrizations.weight.original0` has no partner",
        ],
    );
    // ...and the conv weight it would have produced is reported missing, not left random.
    assert_names(&msg, &["missing key for `wn_new.weight`"]);
}

#[test]
fn table_targets_the_module_lacks() {
    let map = NameMap::new("typo")
        .rule(r"layer_norm\.weight", "layer_norm.weight", Layout::AsIs)
        .rule(r"(.*)", "$1", Layout::AsIs);
    let err = load_err(&hub_fixture("f32/model.safetensors"), &map);
    let msg = err.to_string();
    assert_names(
        &msg,
        &["key `layer_norm.weight` maps to `layer_norm.weight`, which the module does not have"],
    );
    assert!(
        matches!(err, LoadError::Many(_)),
        "several problems are listed together: {msg}"
    );
}

#[test]
fn bad_table_row() {
    let map = table().rule("(unclosed", "x", Layout::AsIs);
    let err = load_err(&hub_fixture("f32/model.safetensors"), &map);
    assert!(matches!(err, LoadError::BadTable { .. }), "{err}");
    let map = NameMap::new("lstm").rule(r"(.*)", "lstm.0", Layout::LstmGates);
    let err = load_err(&hub_fixture("f32/model.safetensors"), &map);
    assert_names(&err.to_string(), &["is not a PyTorch LSTM parameter"]);
}

#[test]
fn no_weights_and_no_directory() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        hub_fixture("f32/config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = Checkpoint::local(tmp.path())
        .and_then(|c| c.weights())
        .map(|_| ())
        .unwrap_err();
    assert_names(
        &err.to_string(),
        &["no weights in", "model.safetensors", "pytorch_model.bin"],
    );
    let err = Checkpoint::local(tmp.path().join("nope"))
        .map(|_| ())
        .unwrap_err();
    assert_names(&err.to_string(), &["nope", "no such directory"]);
    let err = Checkpoint::from_pretrained("./nope/nope", None)
        .map(|_| ())
        .unwrap_err();
    assert_names(
        &err.to_string(),
        &["./nope/nope", "not a local directory and not a hub id"],
    );
}
