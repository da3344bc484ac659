//! Reproduces huggingface_hub's cache layout (`models--o--n/{refs,snapshots,blobs}`) and its environment variables.

use std::path::{Path, PathBuf};

use crate::error::SourceError;
use crate::source::HubId;

/// The default hub endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A Hugging Face hub cache directory (the one holding `models--owner--name/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    /// A cache rooted at `root` (e.g. `~/.cache/huggingface/hub`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HubCache { root: root.into() }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/models--owner--name`.
    pub fn repo_dir(&self, id: &HubId) -> PathBuf {
        self.root.join(id.folder_name())
    }

    /// The commit a revision points to: the revision itself when it is a commit hash, else the
    /// content of `refs/<revision>`.
    pub fn commit(&self, id: &HubId) -> Option<String> {
        if id.is_commit() {
            return Some(id.revision.clone());
        }
        let text =
            std::fs::read_to_string(self.repo_dir(id).join("refs").join(&id.revision)).ok()?;
        let commit = text.trim();
        (!commit.is_empty()).then(|| commit.to_string())
    }

    /// `snapshots/<commit>` of the revision, when it exists.
    pub fn snapshot(&self, id: &HubId) -> Option<PathBuf> {
        let dir = self.repo_dir(id).join("snapshots").join(self.commit(id)?);
        dir.is_dir().then_some(dir)
    }

    /// A cached file of the revision (the snapshot entry, normally a symlink into `blobs/`).
    pub fn file(&self, id: &HubId, name: &str) -> Option<PathBuf> {
        let path = self.snapshot(id)?.join(name);
        path.is_file().then_some(path)
    }

    /// True when huggingface_hub recorded the file as absent (`.no_exist/<commit>/<name>`).
    pub fn known_missing(&self, id: &HubId, name: &str) -> bool {
        self.commit(id)
            .map(|c| {
                self.repo_dir(id)
                    .join(".no_exist")
                    .join(c)
                    .join(name)
                    .exists()
            })
            .unwrap_or(false)
    }
}

/// Where and how hub checkpoints are resolved; [`HubOptions::from_env`] reads the usual variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The cache to read and fill.
    pub cache: HubCache,
    /// Base URL of the hub (`HF_ENDPOINT`).
    pub endpoint: String,
    /// Never touch the network (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// Show a progress bar while downloading.
    pub progress: bool,
}

impl HubOptions {
    /// Options from the process environment: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`; `HF_ENDPOINT`;
    /// `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`); `HF_HUB_DISABLE_PROGRESS_BARS`.
    pub fn from_env() -> Result<Self, SourceError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`HubOptions::from_env`] with a custom variable lookup (for tests and embedding).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SourceError> {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let root = if let Some(dir) = get("HF_HUB_CACHE").or_else(|| get("HUGGINGFACE_HUB_CACHE")) {
            PathBuf::from(dir)
        } else if let Some(home) = get("HF_HOME") {
            PathBuf::from(home).join("hub")
        } else if let Some(xdg) = get("XDG_CACHE_HOME") {
            PathBuf::from(xdg).join("huggingface").join("hub")
        } else if let Some(home) = get("HOME").or_else(|| get("USERPROFILE")) {
            PathBuf::from(home)
                .join(".cache")
                .join("huggingface")
                .join("hub")
        } else {
            return Err(SourceError::NoCacheDir);
        };
        let truthy = |k: &str| {
            get(k).is_some_and(|v| {
                matches!(v.to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
            })
        };
        Ok(HubOptions {
            cache: HubCache::new(root),
            endpoint: get("HF_ENDPOINT")
                .map(|e| e.trim_end_matches('/').to_string())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.into()),
            offline: truthy("HF_HUB_OFFLINE") || truthy("TRANSFORMERS_OFFLINE"),
            progress: !truthy("HF_HUB_DISABLE_PROGRESS_BARS"),
        })
    }

    /// Options with an explicit cache root and defaults otherwise (online, default endpoint, progress on).
    pub fn with_cache_dir(root: impl Into<PathBuf>) -> Self {
        HubOptions {
            cache: HubCache::new(root),
            endpoint: DEFAULT_ENDPOINT.into(),
            offline: false,
            progress: true,
        }
    }

    /// Set the endpoint.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    /// Set offline mode.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Show or hide the download progress bar.
    pub fn progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn opts(vars: &[(&str, &str)]) -> HubOptions {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubOptions::from_lookup(|k| map.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn cache_root_precedence() {
        let all = [
            ("HF_HUB_CACHE", "/c"),
            ("HF_HOME", "/h"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(opts(&all).cache.root(), Path::new("/c"));
        assert_eq!(opts(&all[1..]).cache.root(), Path::new("/h/hub"));
        assert_eq!(
            opts(&all[2..]).cache.root(),
            Path::new("/x/huggingface/hub")
        );
        assert_eq!(
            opts(&all[3..]).cache.root(),
            Path::new("/home/u/.cache/huggingface/hub")
        );
        assert!(HubOptions::from_lookup(|_| None).is_err());
    }

    #[test]
    fn offline_endpoint_progress() {
        let o = opts(&[
            ("HOME", "/h"),
            ("HF_HUB_OFFLINE", "1"),
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
        ]);
        assert!(o.offline);
        assert_eq!(o.endpoint, "http://127.0.0.1:9");
        assert!(o.progress);
        let o = opts(&[
            ("HOME", "/h"),
            ("HF_HUB_OFFLINE", "0"),
            ("HF_HUB_DISABLE_PROGRESS_BARS", "true"),
        ]);
        assert!(!o.offline);
        assert_eq!(o.endpoint, DEFAULT_ENDPOINT);
        assert!(!o.progress);
    }

    #[test]
    fn resolves_refs_and_snapshots() {
        let tmp = std::env::temp_dir().join(format!("clvp-hub-cache-{}", std::process::id()));
        let id = HubId::new("o/n", "main").unwrap_or_else(|e| panic!("{e}"));
        let cache = HubCache::new(&tmp);
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let snap = cache.repo_dir(&id).join("snapshots").join(commit);
        std::fs::create_dir_all(&snap).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(cache.repo_dir(&id).join("refs")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cache.commit(&id), None);
        std::fs::write(cache.repo_dir(&id).join("refs/main"), format!("{commit}\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(snap.join("config.json"), "{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cache.commit(&id).as_deref(), Some(commit));
        assert_eq!(
            cache.file(&id, "config.json"),
            Some(snap.join("config.json"))
        );
        assert_eq!(cache.file(&id, "model.safetensors"), None);
        let by_commit = HubId::new("o/n", commit).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cache.snapshot(&by_commit), Some(snap));
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
