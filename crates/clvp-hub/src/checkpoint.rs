//! Reproduces `from_pretrained`'s file resolution: a local directory or a cached / downloaded hub revision, with typed access to its files.

use std::path::{Path, PathBuf};

use crate::cache::HubOptions;
use crate::config::JsonConfig;
#[cfg(feature = "download")]
use crate::download::download;
use crate::error::{DownloadError, HubError, SourceError, WeightsError};
use crate::load::{LoadReport, load_module_with_report};
use crate::remap::NameMap;
use crate::source::{HubId, Source};
use crate::weights::Weights;

/// `config.json`.
pub const CONFIG: &str = "config.json";
/// `generation_config.json`.
pub const GENERATION_CONFIG: &str = "generation_config.json";
/// `preprocessor_config.json`.
pub const PREPROCESSOR_CONFIG: &str = "preprocessor_config.json";
/// `model.safetensors`.
pub const SAFETENSORS: &str = "model.safetensors";
/// `model.safetensors.index.json`.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
/// `pytorch_model.bin`.
pub const PYTORCH: &str = "pytorch_model.bin";

/// The tokenizer files a checkpoint may have (each `None` when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenizerFiles {
    /// `tokenizer.json` (fast tokenizer).
    pub tokenizer_json: Option<PathBuf>,
    /// `tokenizer_config.json`.
    pub tokenizer_config: Option<PathBuf>,
    /// `vocab.json`.
    pub vocab: Option<PathBuf>,
    /// `merges.txt`.
    pub merges: Option<PathBuf>,
    /// `special_tokens_map.json`.
    pub special_tokens_map: Option<PathBuf>,
    /// `added_tokens.json`.
    pub added_tokens: Option<PathBuf>,
}

/// A checkpoint: where its files are and how to get them.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    source: Source,
    hub: Option<HubOptions>,
}

impl Checkpoint {
    /// `from_pretrained(spec, revision)` with the environment's hub options (`HF_HUB_CACHE`, `HF_HOME`,
    /// `HF_HUB_OFFLINE`, `HF_ENDPOINT`).
    pub fn from_pretrained(spec: &str, revision: Option<&str>) -> Result<Self, HubError> {
        let source = Source::parse(spec, revision)?;
        match source {
            Source::Local(_) => Self::open(source, None),
            Source::Hub(_) => Self::open(source, Some(HubOptions::from_env()?)),
        }
    }

    /// A checkpoint from a parsed source; hub sources need `hub` options (environment defaults otherwise).
    /// Offline, a hub revision must already be in the cache.
    pub fn open(source: Source, hub: Option<HubOptions>) -> Result<Self, HubError> {
        match &source {
            Source::Local(dir) => {
                if !dir.is_dir() {
                    return Err(SourceError::Invalid {
                        spec: dir.display().to_string(),
                        reason: "no such directory".into(),
                    }
                    .into());
                }
                Ok(Checkpoint { source, hub: None })
            }
            Source::Hub(id) => {
                let opts = match hub {
                    Some(o) => o,
                    None => HubOptions::from_env()?,
                };
                if opts.offline && opts.cache.snapshot(id).is_none() {
                    return Err(SourceError::NotCached {
                        repo: id.repo.clone(),
                        revision: id.revision.clone(),
                        cache: opts.cache.root().to_path_buf(),
                    }
                    .into());
                }
                Ok(Checkpoint {
                    source,
                    hub: Some(opts),
                })
            }
        }
    }

    /// A local directory.
    pub fn local(dir: impl AsRef<Path>) -> Result<Self, HubError> {
        Self::open(Source::Local(dir.as_ref().to_path_buf()), None)
    }

    /// A hub id with explicit options.
    pub fn hub(id: HubId, opts: HubOptions) -> Result<Self, HubError> {
        Self::open(Source::Hub(id), Some(opts))
    }

    /// Where it comes from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The local directory, or the cached snapshot directory of a hub revision (once it exists).
    pub fn dir(&self) -> Option<PathBuf> {
        match (&self.source, &self.hub) {
            (Source::Local(d), _) => Some(d.clone()),
            (Source::Hub(id), Some(o)) => o.cache.snapshot(id),
            (Source::Hub(_), None) => None,
        }
    }

    fn location(&self) -> String {
        match (&self.source, &self.hub) {
            (Source::Hub(id), Some(o)) if o.offline => {
                format!("{id} (offline cache {})", o.cache.root().display())
            }
            (s, _) => s.to_string(),
        }
    }

    /// A file of the checkpoint: `Ok(None)` when it does not exist. Hub files come from the cache when
    /// there, else (online) are downloaded.
    pub fn file(&self, name: &str) -> Result<Option<PathBuf>, HubError> {
        let (id, opts) = match (&self.source, &self.hub) {
            (Source::Local(dir), _) => {
                let p = dir.join(name);
                return Ok(p.is_file().then_some(p));
            }
            (Source::Hub(id), Some(o)) => (id, o),
            (Source::Hub(_), None) => return Ok(None),
        };
        if let Some(p) = opts.cache.file(id, name) {
            tracing::debug!("{id}: {name} from cache {}", p.display());
            return Ok(Some(p));
        }
        if opts.cache.known_missing(id, name) {
            return Ok(None);
        }
        if opts.offline {
            if opts.cache.snapshot(id).is_none() {
                return Err(SourceError::NotCached {
                    repo: id.repo.clone(),
                    revision: id.revision.clone(),
                    cache: opts.cache.root().to_path_buf(),
                }
                .into());
            }
            return Ok(None);
        }
        fetch(opts, id, name)
    }

    /// A file that must exist.
    pub fn require(&self, name: &str) -> Result<PathBuf, HubError> {
        self.file(name)?.ok_or_else(|| {
            SourceError::MissingFile {
                file: name.to_string(),
                location: self.location(),
            }
            .into()
        })
    }

    /// `config.json` (required).
    pub fn config(&self) -> Result<JsonConfig, HubError> {
        Ok(JsonConfig::read(self.require(CONFIG)?)?)
    }

    /// A JSON file that may be absent (`generation_config.json`, `preprocessor_config.json`, ...).
    pub fn optional_json(&self, name: &str) -> Result<Option<JsonConfig>, HubError> {
        match self.file(name)? {
            Some(p) => Ok(Some(JsonConfig::read(p)?)),
            None => Ok(None),
        }
    }

    /// `generation_config.json`, if present.
    pub fn generation_config(&self) -> Result<Option<JsonConfig>, HubError> {
        self.optional_json(GENERATION_CONFIG)
    }

    /// `preprocessor_config.json`, if present.
    pub fn preprocessor_config(&self) -> Result<Option<JsonConfig>, HubError> {
        self.optional_json(PREPROCESSOR_CONFIG)
    }

    /// The tokenizer files that exist.
    pub fn tokenizer_files(&self) -> Result<TokenizerFiles, HubError> {
        Ok(TokenizerFiles {
            tokenizer_json: self.file("tokenizer.json")?,
            tokenizer_config: self.file("tokenizer_config.json")?,
            vocab: self.file("vocab.json")?,
            merges: self.file("merges.txt")?,
            special_tokens_map: self.file("special_tokens_map.json")?,
            added_tokens: self.file("added_tokens.json")?,
        })
    }

    /// The weights: `model.safetensors`, else `model.safetensors.index.json` (+ shards), else `pytorch_model.bin`.
    pub fn weights(&self) -> Result<Weights, HubError> {
        if let Some(p) = self.file(SAFETENSORS)? {
            return Ok(Weights::from_safetensors(p)?);
        }
        if let Some(index) = self.file(SAFETENSORS_INDEX)? {
            let mut failure: Option<HubError> = None;
            let result = Weights::from_index(&index, |shard| match self.file(shard) {
                Ok(p) => Ok(p),
                Err(e) => {
                    let io = std::io::Error::other(e.to_string());
                    failure = Some(e);
                    Err(WeightsError::Io {
                        file: PathBuf::from(shard),
                        source: io,
                    })
                }
            });
            return match (result, failure) {
                (Ok(w), _) => Ok(w),
                (Err(_), Some(e)) => Err(e),
                (Err(e), None) => Err(e.into()),
            };
        }
        if let Some(p) = self.file(PYTORCH)? {
            return Ok(Weights::from_pytorch(p)?);
        }
        Err(WeightsError::NoWeights {
            location: self.location(),
        }
        .into())
    }

    /// Open the weights and load them into `module` through `map` (see [`crate::load_module`]).
    pub fn load_module<M: burn::module::Module>(
        &self,
        module: M,
        map: &NameMap,
    ) -> Result<(M, LoadReport), HubError> {
        let weights = self.weights()?;
        Ok(load_module_with_report(module, &weights, map)?)
    }
}

/// Downloads `name` of `id` into the cache.
#[cfg(feature = "download")]
fn fetch(opts: &HubOptions, id: &HubId, name: &str) -> Result<Option<PathBuf>, HubError> {
    Ok(download(opts, id, name)?)
}

/// A build without downloads (clvp without `hub`): a file that is not cached is [`DownloadError::Disabled`].
#[cfg(not(feature = "download"))]
fn fetch(_opts: &HubOptions, id: &HubId, name: &str) -> Result<Option<PathBuf>, HubError> {
    Err(disabled(id, name).into())
}

/// The error of a build without downloads. Compiled in every build so that the default build's tests check it
/// (the build without `download` is compiled by CI's GPU-backend checks, which leave `hub` off).
#[cfg_attr(feature = "download", allow(dead_code))]
fn disabled(id: &HubId, name: &str) -> DownloadError {
    DownloadError::Disabled {
        repo: id.repo.clone(),
        revision: id.revision.clone(),
        file: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_downloads_names_the_file_and_the_feature() {
        let id = HubId::new("owner/model", "main").unwrap_or_else(|e| panic!("{e}"));
        let err = HubError::from(disabled(&id, "config.json"));
        assert!(
            matches!(&err, HubError::Download(DownloadError::Disabled { file, .. }) if file == "config.json"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("config.json")
                && msg.contains("owner/model@main")
                && msg.contains("`hub` feature"),
            "{msg}"
        );
    }
}
