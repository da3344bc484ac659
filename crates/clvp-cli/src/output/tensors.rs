//! A safetensors file written piece by piece: its header first ([`safetensors_header`], byte for byte what
//! `safetensors::serialize` writes before the data), then each tensor's data in the order the header gives,
//! as it is produced. Nothing of the data needs to be in memory at once.

use anyhow::{Context, Result, anyhow};
use safetensors::Dtype;
use safetensors::tensor::{Metadata, TensorInfo};

/// A tensor whose data is written after the header: name, dtype and shape.
pub struct TensorHead {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl TensorHead {
    pub fn new(name: &str, dtype: Dtype, shape: Vec<usize>) -> Self {
        TensorHead {
            name: name.to_string(),
            dtype,
            shape,
        }
    }

    /// Bytes of its data.
    pub fn data_len(&self) -> Result<usize> {
        self.shape
            .iter()
            .try_fold(self.dtype.bitsize() / 8, |n, &d| n.checked_mul(d))
            .ok_or_else(|| {
                anyhow!(
                    "the tensor `{}` of shape {:?} is too large to write",
                    self.name,
                    self.shape
                )
            })
    }
}

/// The bytes of a safetensors file before its data (the header's length and the header, padded with spaces
/// to 8 bytes, as `safetensors::serialize` writes them), and the order in which the tensors' data must follow
/// (indices into `heads`): `serialize` sorts by dtype, widest first, then by name.
pub fn safetensors_header(heads: &[TensorHead]) -> Result<(Vec<u8>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..heads.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&heads[a], &heads[b]);
        b.dtype.cmp(&a.dtype).then(a.name.cmp(&b.name))
    });
    let mut offset = 0usize;
    let mut infos = Vec::with_capacity(heads.len());
    for &i in &order {
        let h = &heads[i];
        let end = offset
            .checked_add(h.data_len()?)
            .ok_or_else(|| anyhow!("the safetensors output is too large to write"))?;
        infos.push((
            h.name.clone(),
            TensorInfo {
                dtype: h.dtype,
                shape: h.shape.clone(),
                data_offsets: (offset, end),
            },
        ));
        offset = end;
    }
    let metadata = Metadata::new(None, infos).context("cannot describe the safetensors output")?;
    let mut json = serde_json::to_string(&metadata)
        .context("cannot serialize the safetensors header")?
        .into_bytes();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + json.len());
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    Ok((bytes, order))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{TensorOut, safetensors_bytes};

    #[test]
    fn the_header_and_ordered_data_are_serializes_bytes() {
        let codes: Vec<i64> = (0..24).map(|i| i * 7 - 3).collect();
        let scales = [0.5f32, 1.25, -2.0];
        let tensors = vec![
            TensorOut::i64("audio_codes", vec![3, 1, 2, 4], &codes),
            TensorOut::f32("audio_scales", vec![3, 1], &scales),
            TensorOut::i64("last_frame_pad_length", vec![1], &[2]),
            TensorOut::i64("audio_length", vec![1], &[4850]),
            TensorOut::f32("audio_values", vec![1, 0, 5], &[]),
        ];
        let want = safetensors_bytes(&tensors).unwrap_or_default();
        let heads: Vec<TensorHead> = tensors
            .iter()
            .map(|t| TensorHead::new(&t.name, t.dtype, t.shape.clone()))
            .collect();
        let (mut got, order) = safetensors_header(&heads).unwrap_or_default();
        for i in order {
            got.extend_from_slice(&tensors[i].data);
        }
        assert!(!want.is_empty());
        assert_eq!(got, want);
    }
}
