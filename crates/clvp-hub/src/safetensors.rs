//! Reproduces transformers' safetensors loading: memory-mapped files and `model.safetensors.index.json` shards, fully validated.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::WeightsError;
use crate::weights::{Data, SourceDtype, TensorEntry, insert};

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
