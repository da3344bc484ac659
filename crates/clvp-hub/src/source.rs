//! Reproduces `from_pretrained`'s first step: a model argument is a local directory or a hub id `owner/name[@rev]`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::SourceError;

/// The default revision of a hub repository.
pub const DEFAULT_REVISION: &str = "main";

/// Where a checkpoint comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local directory holding `config.json`, weights, ...
    Local(PathBuf),
    /// A Hugging Face hub repository at a revision.
    Hub(HubId),
}

/// A hub model repository and revision (`owner/name`, `main` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    /// `owner/name`.
    pub repo: String,
    /// Branch, tag or commit hash.
    pub revision: String,
}

impl HubId {
    /// A hub id; validates `repo` (`owner/name`) and `revision` (non-empty, no whitespace).
    pub fn new(repo: &str, revision: &str) -> Result<Self, SourceError> {
        validate_repo(repo).map_err(|reason| SourceError::Invalid {
            spec: repo.to_string(),
            reason,
        })?;
        if revision.is_empty() || revision.chars().any(char::is_whitespace) {
            return Err(SourceError::Invalid {
                spec: format!("{repo}@{revision}"),
                reason: "the revision must be non-empty and contain no whitespace".into(),
            });
        }
        Ok(HubId {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The cache folder name, `models--owner--name`.
    pub fn folder_name(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }

    /// True when the revision is a full 40-hex-digit commit hash.
    pub fn is_commit(&self) -> bool {
        is_commit_hash(&self.revision)
    }
}

impl fmt::Display for HubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.repo, self.revision)
    }
}

impl Source {
    /// Resolve a `--model` argument: an existing directory wins; otherwise `owner/name` or
    /// `owner/name@rev`. `revision` is an explicit revision (it must agree with an `@rev`).
    pub fn parse(spec: &str, revision: Option<&str>) -> Result<Source, SourceError> {
        let path = Path::new(spec);
        if path.is_dir() {
            if let Some(rev) = revision {
                tracing::warn!("{spec} is a local directory; revision `{rev}` is ignored");
            }
            return Ok(Source::Local(path.to_path_buf()));
        }
        if looks_like_path(spec) {
            return Err(SourceError::Invalid {
                spec: spec.to_string(),
                reason: "no such directory".into(),
            });
        }
        let (repo, in_spec) = match spec.split_once('@') {
            Some((repo, rev)) => (repo, Some(rev)),
            None => (spec, None),
        };
        let revision = match (in_spec, revision) {
            (Some(a), Some(b)) if a != b => {
                return Err(SourceError::ConflictingRevision {
                    spec: spec.to_string(),
                    in_spec: a.to_string(),
                    explicit: b.to_string(),
                });
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => DEFAULT_REVISION,
        };
        validate_repo(repo).map_err(|reason| SourceError::Invalid {
            spec: spec.to_string(),
            reason,
        })?;
        HubId::new(repo, revision).map(Source::Hub)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Local(p) => write!(f, "{}", p.display()),
            Source::Hub(id) => write!(f, "{id}"),
        }
    }
}

/// True for a full commit hash (40 lowercase hex digits).
pub fn is_commit_hash(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn looks_like_path(spec: &str) -> bool {
    spec.starts_with('/')
        || spec.starts_with('.')
        || spec.starts_with('~')
        || spec.contains('\\')
        || spec
            .split('@')
            .next()
            .is_some_and(|r| r.matches('/').count() > 1)
}

/// huggingface_hub's `validate_repo_id`, restricted to the `owner/name` form.
fn validate_repo(repo: &str) -> Result<(), String> {
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() != 2 {
        return Err("a hub id has the form `owner/name`".into());
    }
    if repo.len() > 96 {
        return Err("a hub id has at most 96 characters".into());
    }
    for part in parts {
        if part.is_empty() {
            return Err("owner and name must be non-empty".into());
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "`{part}` may only hold letters, digits, `-`, `_` and `.`"
            ));
        }
        if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
            return Err(format!("`{part}` may not start or end with `-` or `.`"));
        }
    }
    if repo.contains("--") || repo.contains("..") {
        return Err("`--` and `..` are not allowed in a hub id".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(repo: &str, rev: &str) -> Source {
        Source::Hub(HubId {
            repo: repo.into(),
            revision: rev.into(),
        })
    }

    #[test]
    fn parses_hub_ids_and_revisions() {
        assert_eq!(
            Source::parse("susnato/clvp_dev", None).ok(),
            Some(hub("susnato/clvp_dev", "main"))
        );
        assert_eq!(
            Source::parse("a/b@v1.0", None).ok(),
            Some(hub("a/b", "v1.0"))
        );
        assert_eq!(
            Source::parse("a/b", Some("dev")).ok(),
            Some(hub("a/b", "dev"))
        );
        assert_eq!(
            Source::parse("a/b@dev", Some("dev")).ok(),
            Some(hub("a/b", "dev"))
        );
        assert_eq!(
            Source::parse("a/b@refs/pr/1", None).ok(),
            Some(hub("a/b", "refs/pr/1"))
        );
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in [
            "gpt2",
            "a/b/c",
            "a//b",
            "-a/b",
            "a/b-",
            "a--x/b",
            "a/b c",
            "./missing",
            "/no/such/dir",
            "a/b@",
        ] {
            assert!(Source::parse(bad, None).is_err(), "{bad} accepted");
        }
        let e = Source::parse("a/b@x", Some("y")).unwrap_err().to_string();
        assert!(e.contains("`x`") && e.contains("`y`"), "{e}");
    }

    #[test]
    fn local_directories_win() {
        let dir = std::env::temp_dir();
        let spec = dir.to_string_lossy().to_string();
        assert_eq!(Source::parse(&spec, None).ok(), Some(Source::Local(dir)));
    }

    #[test]
    fn commit_hashes() {
        assert!(is_commit_hash("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit_hash("main"));
        assert!(!is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
    }
}
