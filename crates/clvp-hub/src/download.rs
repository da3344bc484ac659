//! Reproduces `hf_hub_download`: fetch one file of a hub revision into the cache with the `hf-hub` crate, then verify it.
//!
//! `hf-hub` (0.4, sync API) asks `{endpoint}/{repo}/resolve/{revision}/{file}` with `Range: bytes=0-0`
//! and needs `x-repo-commit`, `etag` (or `x-linked-etag`) and `Content-Range: bytes 0-0/{size}`; it
//! then downloads to `blobs/{etag}.part` (resuming with `Range: bytes={n}-`), renames it to
//! `blobs/{etag}`, links `snapshots/{commit}/{file}` to it and writes `refs/{revision}`. It does not
//! check what it received, so this module does: the hub's etag of an LFS file is the SHA-256 of its
//! content and that of a git-stored file its git blob SHA-1; a mismatch removes the blob and the
//! snapshot link so the broken file is never used.

use std::io::Read;
use std::path::{Path, PathBuf};

use hf_hub::api::Progress;
use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::cache::HubOptions;
use crate::error::DownloadError;
use crate::source::HubId;

/// Download `file` of `id` into the cache; `Ok(None)` when the hub says it does not exist (404).
pub(crate) fn download(
    opts: &HubOptions,
    id: &HubId,
    file: &str,
) -> Result<Option<PathBuf>, DownloadError> {
    let request_error = |url: &str, message: String| DownloadError::Request {
        repo: id.repo.clone(),
        revision: id.revision.clone(),
        file: file.to_string(),
        url: url.to_string(),
        message,
    };
    let api = ApiBuilder::from_cache(Cache::new(opts.cache.root().to_path_buf()))
        .with_endpoint(opts.endpoint.clone())
        .with_progress(false)
        .build()
        .map_err(|e| request_error(&opts.endpoint, e.to_string()))?;
    let repo = api.repo(Repo::with_revision(
        id.repo.clone(),
        RepoType::Model,
        id.revision.clone(),
    ));
    let url = repo.url(file);
    tracing::info!("downloading {url}");
    let path = match repo.download_with_progress(file, Bar::new(opts.progress)) {
        Ok(path) => path,
        Err(ApiError::RequestError(e)) if matches!(*e, ureq::Error::Status(404, _)) => {
            tracing::debug!("{url}: not found");
            return Ok(None);
        }
        Err(ApiError::RequestError(e)) => {
            let hint = match *e {
                ureq::Error::Status(401 | 403, _) => {
                    " (private or gated repository, or no such repository)"
                }
                _ => "",
            };
            return Err(request_error(&url, format!("{e}{hint}")));
        }
        Err(e) => return Err(request_error(&url, e.to_string())),
    };
    verify(&path, &id.repo, file)?;
    Ok(Some(path))
}

/// Check a snapshot file against the etag its blob is named after; remove both on mismatch.
pub(crate) fn verify(path: &Path, repo: &str, file: &str) -> Result<(), DownloadError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| DownloadError::Io { path: p, source }
    };
    let Ok(link) = std::fs::read_link(path) else {
        tracing::warn!(
            "{}: not a link into blobs/, cannot verify its etag",
            path.display()
        );
        return Ok(());
    };
    let blob = path.parent().map(|p| p.join(&link)).unwrap_or(link);
    let etag = blob
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let (check, found) = if is_hex(&etag, 64) {
        (
            "sha256",
            hash_file::<Sha256>(&blob, None).map_err(io(&blob))?,
        )
    } else if is_hex(&etag, 40) {
        let len = std::fs::metadata(&blob).map_err(io(&blob))?.len();
        (
            "git-sha1",
            hash_file::<Sha1>(&blob, Some(format!("blob {len}\0"))).map_err(io(&blob))?,
        )
    } else {
        tracing::warn!(
            "{}: etag `{etag}` is not a content hash, cannot verify",
            path.display()
        );
        return Ok(());
    };
    if found == etag {
        return Ok(());
    }
    for p in [path, blob.as_path()] {
        if let Err(e) = std::fs::remove_file(p) {
            tracing::warn!("cannot remove corrupted {}: {e}", p.display());
        }
    }
    Err(DownloadError::Corrupted {
        repo: repo.to_string(),
        file: file.to_string(),
        check,
        expected: etag,
        found,
    })
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hash_file<D: Digest>(path: &Path, prefix: Option<String>) -> std::io::Result<String> {
    let mut hasher = D::new();
    if let Some(p) = prefix {
        hasher.update(p.as_bytes());
    }
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// An indicatif progress bar fed by `hf-hub` (hidden when progress is off).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(visible: bool) -> Self {
        Bar(if visible {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        })
    }
}

impl Progress for Bar {
    fn init(&mut self, size: usize, filename: &str) {
        let style = indicatif::ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        self.0.set_style(style);
        self.0.set_length(size as u64);
        self.0.set_position(0);
        self.0.set_message(filename.to_string());
    }

    fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }

    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_sha1_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let dir = std::env::temp_dir().join(format!("clvp-hub-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let f = dir.join("x");
        std::fs::write(&f, b"hello\n").unwrap_or_else(|e| panic!("{e}"));
        let h = hash_file::<Sha1>(&f, Some("blob 6\0".into())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h, "ce013625030ba8dba906f756967f9e9ca394464a");
        let h = hash_file::<Sha256>(&f, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            h,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
