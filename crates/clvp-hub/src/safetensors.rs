//! Reproduces transformers' safetensors loading: memory-mapped files and `model.safetensors.index.json` shards, fully validated.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::entry::{Data, SourceDtype, TensorEntry, insert};
use crate::error::WeightsError;

/// Every tensor of one safetensors file; the header, offsets and file length are validated up front.
pub(crate) fn read_file(path: &Path) -> Result<Vec<TensorEntry>, WeightsError> {
    let io = |source| WeightsError::Io {
        file: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < 8 {
        return Err(WeightsError::NotSafetensors {
            file: path.to_path_buf(),
            message: format!("the file has {len} bytes, fewer than the 8-byte header length"),
        });
    }
    // SAFETY: the map is read-only; a checkpoint being rewritten while it is mapped is outside this
    // crate's contract (as for safetensors / transformers), and every range is re-checked when read.
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    if let Some(key) = duplicate_key(&map) {
        // The parser keeps the last entry of a repeated key, then reports the gap it leaves as a bad offset of
        // some other tensor (or accepts the file): name the real problem.
        return Err(WeightsError::NotSafetensors {
            file: path.to_path_buf(),
            message: format!("the header lists tensor `{key}` more than once"),
        });
    }
    let (header, metadata) =
        SafeTensors::read_metadata(&map).map_err(|e| WeightsError::NotSafetensors {
            file: path.to_path_buf(),
            message: describe(&e, len),
        })?;
    let base = 8 + header;
    let map = Arc::new(map);
    let file = Arc::new(path.to_path_buf());
    let mut out = Vec::new();
    for (key, info) in metadata.tensors() {
        let (start, end) = info.data_offsets;
        out.push(TensorEntry {
            key,
            file: file.clone(),
            dtype: dtype(info.dtype),
            shape: info.shape.clone(),
            data: Data::Mapped {
                map: map.clone(),
                start: base + start,
                end: base + end,
            },
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The first key that the header's JSON object repeats, when the header is readable JSON at all (anything else
/// is left to the safetensors parser to report).
fn duplicate_key(file: &[u8]) -> Option<String> {
    let len = u64::from_le_bytes(file.get(..8)?.try_into().ok()?);
    let end = usize::try_from(len).ok()?.checked_add(8)?;
    let header = file.get(8..end)?;
    let mut de = serde_json::Deserializer::from_slice(header);
    serde::Deserializer::deserialize_map(&mut de, FirstDuplicate)
        .ok()
        .flatten()
}

/// A map visitor that returns the first repeated key.
struct FirstDuplicate;

impl<'de> serde::de::Visitor<'de> for FirstDuplicate {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = std::collections::HashSet::new();
        let mut first = None;
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<serde::de::IgnoredAny>()?;
            if first.is_none() && !seen.insert(key.clone()) {
                first = Some(key);
            }
        }
        Ok(first)
    }
}

fn describe(e: &safetensors::SafeTensorError, len: u64) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::MetadataIncompleteBuffer => format!(
            "truncated or padded: the header's tensors do not end at the file's end ({len} bytes)"
        ),
        E::InvalidHeaderLength => {
            format!("truncated: the header length runs past the end of the file ({len} bytes)")
        }
        E::HeaderTooLarge => {
            "the first 8 bytes do not hold a plausible header length (not a safetensors file?)"
                .into()
        }
        E::InvalidHeader(_) | E::InvalidHeaderDeserialization(_) => {
            format!("the header is not valid JSON ({e})")
        }
        other => other.to_string(),
    }
}

fn dtype(d: Dtype) -> SourceDtype {
    match d {
        Dtype::F64 => SourceDtype::F64,
        Dtype::F32 => SourceDtype::F32,
        Dtype::F16 => SourceDtype::F16,
        Dtype::BF16 => SourceDtype::BF16,
        other => SourceDtype::Other(format!("{other:?}")),
    }
}

/// Every tensor of a sharded checkpoint: the index's `weight_map` must name existing shards, and
/// each key must be in the shard the index says.
pub(crate) fn read_index(
    index: &Path,
    mut resolve: impl FnMut(&str) -> Result<Option<PathBuf>, WeightsError>,
) -> Result<BTreeMap<String, TensorEntry>, WeightsError> {
    let bad = |message: String| WeightsError::BadIndex {
        file: index.to_path_buf(),
        message,
    };
    let text = std::fs::read(index).map_err(|source| WeightsError::Io {
        file: index.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    if map.is_empty() {
        return Err(bad("`weight_map` is empty".into()));
    }
    // shard name -> keys the index puts there (sorted, so errors name the first key).
    let mut shards: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| bad(format!("`weight_map.{key}` is not a string")))?;
        let rel = Path::new(shard);
        if shard.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(bad(format!(
                "`weight_map.{key}` = `{shard}` is not a relative file name"
            )));
        }
        shards
            .entry(shard.to_string())
            .or_default()
            .push(key.clone());
    }
    let mut tensors = BTreeMap::new();
    for (shard, mut keys) in shards {
        keys.sort();
        let first = keys.first().cloned().unwrap_or_default();
        let path = resolve(&shard)?.ok_or_else(|| WeightsError::MissingShard {
            index: index.to_path_buf(),
            key: first,
            shard: shard.clone(),
        })?;
        let entries = read_file(&path)?;
        let present: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.key.as_str()).collect();
        if let Some(key) = keys.iter().find(|k| !present.contains(k.as_str())) {
            return Err(WeightsError::KeyNotInShard {
                index: index.to_path_buf(),
                key: key.clone(),
                shard: path,
            });
        }
        for entry in entries {
            if !map.contains_key(&entry.key) {
                tracing::warn!(
                    "{}: `{}` is in {} but not in the index",
                    index.display(),
                    entry.key,
                    path.display()
                );
            }
            insert(&mut tensors, entry)?;
        }
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file with this header JSON (padded to 8 bytes) and `data`.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.as_bytes().to_vec();
        h.resize(h.len().div_ceil(8) * 8, b' ');
        [&(h.len() as u64).to_le_bytes()[..], &h, data].concat()
    }

    fn read(bytes: &[u8]) -> Result<Vec<TensorEntry>, WeightsError> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("dup.safetensors");
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        read_file(&path)
    }

    #[test]
    fn a_repeated_key_is_named() {
        let a = r#""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#;
        let b = r#""b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}"#;
        let a_again = r#""a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}"#;
        let b_again = r#""b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}"#;
        // Before: the first was reported as an invalid offset of some tensor, the second was accepted.
        for header in [
            format!("{{{a},{b},{a_again}}}"),
            format!("{{{a},{b},{b_again}}}"),
        ] {
            let err = read(&file(&header, &[0; 8])).map(|_| ()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, WeightsError::NotSafetensors { .. }), "{msg}");
            assert!(
                msg.contains("dup.safetensors") && msg.contains("more than once"),
                "{msg}"
            );
        }
        let ok = read(&file(&format!("{{{a},{b}}}"), &[0; 8])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn unreadable_headers_are_left_to_the_parser() {
        assert_eq!(duplicate_key(b"abc"), None);
        assert_eq!(duplicate_key(&file("{nope", &[])), None);
        assert_eq!(duplicate_key(&[0xff; 16]), None);
    }
}
