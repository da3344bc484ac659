//! Reproduces `load_state_dict`'s input: every tensor of a checkpoint (safetensors, sharded or `pytorch_model.bin`), read lazily.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::entry::insert;
pub use crate::entry::{MappedPages, SourceDtype, TensorEntry};
use crate::error::WeightsError;

/// The file layout a checkpoint's weights came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// One `model.safetensors`.
    Safetensors,
    /// `model.safetensors.index.json` with its shards.
    ShardedSafetensors,
    /// `pytorch_model.bin` (`torch.save` of a state dict).
    Pytorch,
}

/// All tensors of a checkpoint by key.
#[derive(Debug, Clone)]
pub struct Weights {
    pub(crate) tensors: BTreeMap<String, TensorEntry>,
    pub(crate) origin: PathBuf,
    pub(crate) format: WeightFormat,
}

impl Weights {
    /// Open a weights file by its name: `*.safetensors`, `*.safetensors.index.json` (shards next to it),
    /// or anything else as a PyTorch checkpoint (`.bin`, `.pt`, `.pth`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.ends_with(".safetensors") {
            Self::from_safetensors(path)
        } else if name.ends_with(".index.json") {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            Self::from_index(path, |shard| {
                let p = dir.join(shard);
                Ok(p.is_file().then_some(p))
            })
        } else {
            Self::from_pytorch(path)
        }
    }

    /// One memory-mapped safetensors file.
    pub fn from_safetensors(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        let mut tensors = BTreeMap::new();
        for entry in crate::safetensors::read_file(path)? {
            insert(&mut tensors, entry)?;
        }
        Ok(Weights {
            tensors,
            origin: path.to_path_buf(),
            format: WeightFormat::Safetensors,
        })
    }

    /// A sharded checkpoint: `index` is `model.safetensors.index.json`; `shard` turns a shard name into a
    /// local path (`Ok(None)` when it does not exist).
    pub fn from_index(
        index: impl AsRef<Path>,
        shard: impl FnMut(&str) -> Result<Option<PathBuf>, WeightsError>,
    ) -> Result<Self, WeightsError> {
        let index = index.as_ref();
        let tensors = crate::safetensors::read_index(index, shard)?;
        Ok(Weights {
            tensors,
            origin: index.to_path_buf(),
            format: WeightFormat::ShardedSafetensors,
        })
    }

    /// A PyTorch checkpoint (`torch.save` of a state dict), read with burn-store's PyTorch reader.
    pub fn from_pytorch(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref();
        let mut tensors = BTreeMap::new();
        for entry in crate::pytorch::read_file(path)? {
            insert(&mut tensors, entry)?;
        }
        Ok(Weights {
            tensors,
            origin: path.to_path_buf(),
            format: WeightFormat::Pytorch,
        })
    }

    /// The file opened (the index for sharded checkpoints).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The layout the weights came in.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// All keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// One tensor.
    pub fn get(&self, key: &str) -> Option<&TensorEntry> {
        self.tensors.get(key)
    }

    /// All tensors, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = &TensorEntry> {
        self.tensors.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file whose single tensor `w` (f32 `[2, 2]` or f16 `[2]`) starts `pad` bytes past
    /// an 8-byte boundary of the file (the header is padded with spaces to put it there).
    fn one_tensor_file(dir: &Path, name: &str, dtype: &str, pad: usize) -> PathBuf {
        let data: Vec<u8> = match dtype {
            "F32" => [1.0f32, -2.0, 3.5, 0.25]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            _ => [1.5f32, -2.0]
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        let shape = if dtype == "F32" { "[2,2]" } else { "[2]" };
        let mut header = format!(
            r#"{{"w":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[0,{}]}}}}"#,
            data.len()
        );
        while (8 + header.len()) % 8 != pad {
            header.push(' ');
        }
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&data);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// An aligned f32 tensor is handed out as a view of the map with the file's exact values; a
    /// misaligned one or another dtype is not (the loader then decodes a copy), and both still read.
    #[test]
    fn mapped_f32_only_when_usable_as_is() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let expected = [1.0f32, -2.0, 3.5, 0.25];
        for (name, dtype, pad, mapped) in [
            ("aligned.safetensors", "F32", 0, true),
            ("misaligned.safetensors", "F32", 2, false),
            ("half.safetensors", "F16", 0, false),
        ] {
            let w = Weights::open(one_tensor_file(dir.path(), name, dtype, pad))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let e = w.get("w").unwrap_or_else(|| panic!("{name}: no w"));
            let view = e.mapped_f32();
            assert_eq!(view.is_some(), mapped, "{name}");
            if let Some(bytes) = view {
                let values: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                assert_eq!(values, expected, "{name}");
            }
            let read = e.to_f32().unwrap_or_else(|err| panic!("{name}: {err}"));
            let want: &[f32] = if dtype == "F32" {
                &expected
            } else {
                &[1.5, -2.0]
            };
            assert_eq!(read, want, "{name}");
        }
    }
}
