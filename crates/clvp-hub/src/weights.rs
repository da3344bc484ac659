//! Reproduces `load_state_dict`'s input: every tensor of a checkpoint (safetensors, sharded or `pytorch_model.bin`), read lazily.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::WeightsError;

/// Element type of a stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDtype {
    /// float64 (narrowed to f32).
    F64,
    /// float32.
    F32,
    /// float16 (widened to f32).
    F16,
    /// bfloat16 (widened to f32).
    BF16,
    /// Anything else (integers, bool, fp8, ...): readable metadata, not loadable as weights.
    Other(String),
}

impl SourceDtype {
    /// True for the dtypes [`TensorEntry::to_f32`] converts.
    pub fn is_float(&self) -> bool {
        !matches!(self, SourceDtype::Other(_))
    }

    fn size(&self) -> Option<usize> {
        match self {
            SourceDtype::F64 => Some(8),
            SourceDtype::F32 => Some(4),
            SourceDtype::F16 | SourceDtype::BF16 => Some(2),
            SourceDtype::Other(_) => None,
        }
    }
}

impl fmt::Display for SourceDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceDtype::F64 => f.write_str("F64"),
            SourceDtype::F32 => f.write_str("F32"),
            SourceDtype::F16 => f.write_str("F16"),
            SourceDtype::BF16 => f.write_str("BF16"),
            SourceDtype::Other(s) => f.write_str(s),
        }
    }
}

/// Where a tensor's bytes are.
#[derive(Clone)]
pub(crate) enum Data {
    /// A byte range of a memory-mapped safetensors file (little-endian).
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        end: usize,
    },
    /// A tensor of a PyTorch checkpoint, read on demand (native-endian).
    Pytorch(burn::store::pytorch_reader::Tensor),
    /// A re-laid-out copy of another tensor, computed on demand ([`crate::convert`]).
    Derived(Arc<crate::convert::Derived>),
}

/// One stored tensor: its key, file, dtype and shape, with the data read only on demand.
#[derive(Clone)]
pub struct TensorEntry {
    pub(crate) key: String,
    pub(crate) file: Arc<PathBuf>,
    pub(crate) dtype: SourceDtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Data,
}

impl fmt::Debug for TensorEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorEntry")
            .field("key", &self.key)
            .field("file", &self.file)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .finish()
    }
}

impl TensorEntry {
    /// The checkpoint key (`encoder.layers.0.conv.weight_v`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The file holding it.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The stored dtype.
    pub fn dtype(&self) -> &SourceDtype {
        &self.dtype
    }

    /// The stored shape (PyTorch layout).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values widened (F16, BF16) or narrowed (F64) to f32, row-major; every one finite
    /// ([`WeightsError::NonFinite`] otherwise).
    pub fn to_f32(&self) -> Result<Vec<f32>, WeightsError> {
        let unsupported = || WeightsError::UnsupportedDtype {
            file: self.file.to_path_buf(),
            key: self.key.clone(),
            dtype: self.dtype.to_string(),
        };
        let size = self.dtype.size().ok_or_else(unsupported)?;
        let expected = self.numel() * size;
        let (bytes, little): (std::borrow::Cow<'_, [u8]>, bool) = match &self.data {
            Data::Mapped { map, start, end } => {
                let slice = map
                    .get(*start..*end)
                    .ok_or_else(|| self.corrupt("data range outside the file"))?;
                (slice.into(), true)
            }
            Data::Derived(d) => return d.to_f32(),
            Data::Pytorch(t) => {
                let bytes = t.read().map_err(|e| WeightsError::Pytorch {
                    file: self.file.to_path_buf(),
                    message: format!("tensor `{}`: {e}", self.key),
                })?;
                (bytes.into(), cfg!(target_endian = "little"))
            }
        };
        if bytes.len() != expected {
            return Err(self.corrupt(&format!(
                "{} bytes of data for {} elements of {}",
                bytes.len(),
                self.numel(),
                self.dtype
            )));
        }
        let values = decode(&bytes, &self.dtype, little);
        self.check_finite(&values)?;
        Ok(values)
    }

    /// [`WeightsError::NonFinite`] naming this tensor when `values` (its values as f32) hold a NaN or an
    /// infinity.
    pub fn check_finite(&self, values: &[f32]) -> Result<(), WeightsError> {
        let bad = |v: &f32| non_finite_bits(v.to_bits());
        if !values
            .chunks(4096)
            .any(|c| c.iter().fold(false, |acc, v| acc | bad(v)))
        {
            return Ok(());
        }
        let index = values.iter().position(bad).unwrap_or(0);
        Err(WeightsError::NonFinite {
            file: self.file.to_path_buf(),
            key: self.key.clone(),
            count: values.iter().filter(|v| bad(v)).count(),
            index,
            value: values.get(index).copied().unwrap_or(f32::NAN),
        })
    }

    /// [`Self::check_finite`] over the little-endian f32 bytes of a mapped tensor ([`Self::mapped_f32`]).
    pub fn check_finite_bytes(&self, bytes: &[u8]) -> Result<(), WeightsError> {
        let bad = |c: &[u8]| non_finite_bits(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        if !bytes
            .chunks(4 * 4096)
            .any(|c| c.chunks_exact(4).fold(false, |acc, v| acc | bad(v)))
        {
            return Ok(());
        }
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.check_finite(&values)
    }

    /// The tensor's bytes as a zero-copy view of the memory-mapped file, when burn can use them as
    /// they are: an `F32` safetensors tensor on a little-endian machine, inside the file, 4-byte
    /// aligned. `None` otherwise (the caller then decodes a copy with [`Self::to_f32`]).
    ///
    /// The view keeps the map alive; pages are read from disk only when a computation touches them,
    /// and a write to the tensor copies it first (burn's copy-on-write for shared bytes).
    pub fn mapped_f32(&self) -> Option<burn::tensor::Bytes> {
        let pages = self.mapped_pages()?;
        let slice = pages.as_ref();
        let usable = self.dtype == SourceDtype::F32
            && cfg!(target_endian = "little")
            && slice.len() == self.numel() * 4
            && slice.as_ptr().align_offset(std::mem::align_of::<f32>()) == 0;
        usable.then(|| {
            burn::tensor::Bytes::from_shared(
                bytes::Bytes::from_owner(pages),
                burn::tensor::AllocationProperty::File,
            )
        })
    }

    /// The range of the memory-mapped file holding this tensor (`None` for a PyTorch checkpoint),
    /// for handing its pages back once a copy of the tensor has replaced it (see [`MappedPages`]).
    pub fn mapped_pages(&self) -> Option<MappedPages> {
        match &self.data {
            Data::Mapped { map, start, end } if *start <= *end && *end <= map.len() => {
                Some(MappedPages {
                    map: Arc::clone(map),
                    start: *start,
                    end: *end,
                })
            }
            _ => None,
        }
    }

    fn corrupt(&self, message: &str) -> WeightsError {
        WeightsError::NotSafetensors {
            file: self.file.to_path_buf(),
            message: format!("tensor `{}`: {message}", self.key),
        }
    }
}

/// The pages of one tensor in a read-only memory-mapped checkpoint.
///
/// A tensor used straight from the map keeps the file's pages it touched resident in the process. A
/// model that replaces such a tensor by a re-laid-out copy calls [`MappedPages::release`] after making
/// the copy, so the process does not hold both.
#[derive(Clone)]
pub struct MappedPages {
    map: Arc<Mmap>,
    start: usize,
    end: usize,
}

impl fmt::Debug for MappedPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MappedPages({}..{})", self.start, self.end)
    }
}

impl MappedPages {
    /// Drop this range's pages from the process (`madvise(MADV_DONTNEED)`). The data is unchanged: a
    /// later read of the range (by a neighbouring tensor sharing a boundary page, say) faults the
    /// pages back in from the page cache. A no-op where the advice is not available.
    pub fn release(&self) {
        #[cfg(unix)]
        {
            // SAFETY: the map is a read-only shared file mapping (`Mmap::map`). For such a mapping
            // MADV_DONTNEED only discards page-table entries; the contents seen through the mapping
            // do not change, so references into it (other tensors' views) stay valid.
            let done = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.start,
                    self.end - self.start,
                )
            };
            if let Err(e) = done {
                tracing::debug!("madvise(DONTNEED) on {}..{}: {e}", self.start, self.end);
            }
        }
    }
}

/// The range's bytes; the map stays mapped while any holder (e.g. a zero-copy tensor) lives.
impl AsRef<[u8]> for MappedPages {
    fn as_ref(&self) -> &[u8] {
        // `TensorEntry::mapped_pages` checked the range against the map.
        &self.map[self.start..self.end]
    }
}

/// NaN and ±inf have every exponent bit set: a branch-free test, so the scan over a tensor vectorises.
fn non_finite_bits(bits: u32) -> bool {
    bits & 0x7f80_0000 == 0x7f80_0000
}

fn decode(bytes: &[u8], dtype: &SourceDtype, little: bool) -> Vec<f32> {
    macro_rules! conv {
        ($n:literal, $f:expr) => {
            bytes
                .chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    if !little {
                        a.reverse();
                    }
                    $f(a)
                })
                .collect()
        };
    }
    match dtype {
        SourceDtype::F32 => conv!(4, f32::from_le_bytes),
        SourceDtype::F64 => conv!(8, |a| f64::from_le_bytes(a) as f32),
        SourceDtype::F16 => conv!(2, |a| half::f16::from_le_bytes(a).to_f32()),
        SourceDtype::BF16 => conv!(2, |a| half::bf16::from_le_bytes(a).to_f32()),
        SourceDtype::Other(_) => Vec::new(),
    }
}

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

pub(crate) fn insert(
    map: &mut BTreeMap<String, TensorEntry>,
    entry: TensorEntry,
) -> Result<(), WeightsError> {
    if let Some(other) = map.get(&entry.key) {
        return Err(WeightsError::DuplicateKey {
            key: entry.key.clone(),
            file: entry.file.to_path_buf(),
            other: other.file.to_path_buf(),
        });
    }
    map.insert(entry.key.clone(), entry);
    Ok(())
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

    #[test]
    fn decodes_half_types() {
        let f16 = half::f16::from_f32(1.5).to_le_bytes();
        let bf16 = half::bf16::from_f32(-2.25).to_le_bytes();
        assert_eq!(decode(&f16, &SourceDtype::F16, true), vec![1.5]);
        assert_eq!(decode(&bf16, &SourceDtype::BF16, true), vec![-2.25]);
        assert_eq!(
            decode(&0.5f64.to_le_bytes(), &SourceDtype::F64, true),
            vec![0.5]
        );
        let mut be = 3.0f32.to_be_bytes();
        assert_eq!(decode(&be, &SourceDtype::F32, false), vec![3.0]);
        be.reverse();
        assert_eq!(decode(&be, &SourceDtype::F32, true), vec![3.0]);
    }
}
