//! One tensor of a checkpoint, read lazily: its key, shape and stored element type, and where its bytes are (a
//! mapped file's pages, an owned buffer, or a tensor derived from another on read).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::WeightsError;

/// A tensor computed from another when it is read (a checkpoint conversion's re-layout, [`crate::convert`]).
pub(crate) trait Derive: Send + Sync {
    /// The derived values, row-major.
    fn to_f32(&self) -> Result<Vec<f32>, WeightsError>;
}

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
    Derived(Arc<dyn Derive>),
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
