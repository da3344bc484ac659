//! `Checkpoint::from_pretrained("owner/name")` honours `HF_HUB_CACHE` and `HF_HUB_OFFLINE` from the process
//! environment. The only test of this binary, so setting variables races with nothing.

mod common;

use clvp_hub::Checkpoint;
use common::{COMMIT, HubRef, REPO, device, dir_files, make_cache, table};

#[test]
fn from_pretrained_reads_the_environment() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let files = dir_files("f32");
    let refs: Vec<(&str, std::path::PathBuf)> =
        files.iter().map(|(n, p)| (n.as_str(), p.clone())).collect();
    make_cache(tmp.path(), &refs);
    // SAFETY: this test binary has a single test and no other threads read the environment.
    unsafe {
        std::env::set_var("HF_HUB_CACHE", tmp.path());
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    }
    let ckpt = Checkpoint::from_pretrained(&format!("{REPO}@main"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ckpt.dir().is_some_and(|d| d.ends_with(COMMIT)));
    let (m, report) = ckpt
        .load_module(HubRef::new(&device()), &table())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.loaded.len(), 46);
    assert_eq!(m.codebook.embed.val().dims(), [8, 6]);
    let msg = Checkpoint::from_pretrained("clvp-test/not-cached", None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
    // A local directory wins over the hub.
    let local = common::hub_fixture("pytorch");
    let ckpt = Checkpoint::from_pretrained(&local.to_string_lossy(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ckpt.weights().is_ok());
}
