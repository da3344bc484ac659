//! The fixture checkpoints placed in a hub cache layout load offline by hub id (no server exists here).

mod common;

use clvp_hub::{Checkpoint, HubError, HubId, HubOptions, Source, SourceError, WeightFormat};
use clvp_parity::Recorder;
use common::{COMMIT, HubRef, REPO, check_outputs, device, dir_files, make_cache, table};

fn offline(root: &std::path::Path) -> HubOptions {
    // An endpoint nothing listens on: offline mode must never use it.
    HubOptions::with_cache_dir(root)
        .endpoint("http://127.0.0.1:9")
        .offline(true)
        .progress(false)
}

fn cached(dir: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let files = dir_files(dir);
    let refs: Vec<(&str, std::path::PathBuf)> =
        files.iter().map(|(n, p)| (n.as_str(), p.clone())).collect();
    make_cache(tmp.path(), &refs);
    tmp
}

#[test]
fn loads_offline_by_hub_id_for_every_layout() {
    let mut rec = Recorder::new("hub");
    for (dir, reference, format) in [
        ("f32", "f32", WeightFormat::Safetensors),
        ("sharded", "f32", WeightFormat::ShardedSafetensors),
        ("pytorch", "f32", WeightFormat::Pytorch),
        ("bf16", "bf16", WeightFormat::Safetensors),
    ] {
        let tmp = cached(dir);
        let id = match Source::parse(REPO, None) {
            Ok(Source::Hub(id)) => id,
            other => panic!("{other:?}"),
        };
        let ckpt =
            Checkpoint::hub(id, offline(tmp.path())).unwrap_or_else(|e| panic!("{dir}: {e}"));
        let snapshot = ckpt.dir().unwrap_or_else(|| panic!("no snapshot"));
        assert!(snapshot.ends_with(COMMIT), "{}", snapshot.display());
        assert!(ckpt.config().is_ok());
        let weights = ckpt.weights().unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(weights.format(), format);
        let (m, _) = clvp_hub::load_module_with_report(HubRef::new(&device()), &weights, &table())
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        check_outputs(&m, reference, &mut rec, &format!("cache-{dir}"));
    }
    rec.finish();
}

#[test]
fn revision_by_commit_hash_and_by_ref() {
    let tmp = cached("f32");
    for rev in ["main", COMMIT] {
        let id = HubId::new(REPO, rev).unwrap_or_else(|e| panic!("{e}"));
        let ckpt =
            Checkpoint::hub(id, offline(tmp.path())).unwrap_or_else(|e| panic!("{rev}: {e}"));
        assert!(
            ckpt.file("model.safetensors").ok().flatten().is_some(),
            "{rev}"
        );
        assert!(
            ckpt.file("tokenizer.json").ok().flatten().is_none(),
            "{rev}"
        );
        let gc = ckpt.generation_config().unwrap_or_else(|e| panic!("{e}"));
        assert!(gc.is_some());
    }
}

#[test]
fn offline_and_not_cached_is_a_clear_error() {
    let tmp = cached("f32");
    for (repo, rev) in [("someone/else", "main"), (REPO, "v2")] {
        let id = HubId::new(repo, rev).unwrap_or_else(|e| panic!("{e}"));
        let err = Checkpoint::hub(id, offline(tmp.path()))
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(err, HubError::Source(SourceError::NotCached { .. })),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{repo}@{rev}")) && msg.contains("HF_HUB_OFFLINE"),
            "{msg}"
        );
    }
    // Cached revision but a required file that is not there.
    let id = HubId::new(REPO, "main").unwrap_or_else(|e| panic!("{e}"));
    let ckpt = Checkpoint::hub(id, offline(tmp.path())).unwrap_or_else(|e| panic!("{e}"));
    let msg = ckpt
        .require("tokenizer.json")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tokenizer.json not found in clvp-test/hub-ref@main (offline cache"),
        "{msg}"
    );
}

#[test]
fn offline_without_weights_names_what_was_looked_for() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    make_cache(
        tmp.path(),
        &[("config.json", common::hub_fixture("f32/config.json"))],
    );
    let id = HubId::new(REPO, "main").unwrap_or_else(|e| panic!("{e}"));
    let ckpt = Checkpoint::hub(id, offline(tmp.path())).unwrap_or_else(|e| panic!("{e}"));
    let msg = ckpt.weights().map(|_| ()).unwrap_err().to_string();
    assert!(
        msg.contains("no weights in clvp-test/hub-ref@main") && msg.contains("pytorch_model.bin"),
        "{msg}"
    );
}
