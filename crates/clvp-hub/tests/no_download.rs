//! Built without the `download` feature (`clvp` without `hub`): a hub file that is not in the cache is a typed
//! error saying so, and nothing is fetched. Runs in CI's `cargo test -p clvp-hub --no-default-features` step.

#![cfg(not(feature = "download"))]

use clvp_hub::{Checkpoint, DownloadError, HubError, HubId, HubOptions};

#[test]
fn a_missing_file_is_an_error_without_downloads() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // An endpoint that would answer if anything tried it: nothing may.
    let opts = HubOptions::with_cache_dir(tmp.path())
        .endpoint("http://127.0.0.1:9".to_string())
        .progress(false);
    let id = HubId::new("owner/model", "main").unwrap_or_else(|e| panic!("{e}"));
    let ckpt = Checkpoint::hub(id, opts).unwrap_or_else(|e| panic!("{e}"));
    let err = ckpt.require("config.json").unwrap_err();
    assert!(
        matches!(err, HubError::Download(DownloadError::Disabled { .. })),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("config.json") && msg.contains("`hub` feature"),
        "{msg}"
    );
}
