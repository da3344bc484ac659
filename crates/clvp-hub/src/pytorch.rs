//! Reproduces `torch.load` of a `pytorch_model.bin` state dict, via burn-store's PyTorch reader (no key rewriting).
//!
//! burn's own `PytorchStore` is deliberately not used for loading: it always applies
//! `PyTorchToBurnAdapter` (transposes the weight of *every* burn `Linear`, which is wrong for GPT-2
//! `Conv1D` weights that are already `[in, out]`) and renumbers list indices to be contiguous by
//! default (`encoder.layers.{0,1,3}` → `{0,1,2}`), which breaks EnCodec's sparse `layers.N` keys.

use std::path::Path;
use std::sync::Arc;

use burn::store::pytorch_reader::{DType, PytorchReader};

use crate::entry::{Data, SourceDtype, TensorEntry};
use crate::error::WeightsError;

/// Every tensor of a PyTorch checkpoint; data is read on demand.
pub(crate) fn read_file(path: &Path) -> Result<Vec<TensorEntry>, WeightsError> {
    if let Err(source) = std::fs::metadata(path) {
        return Err(WeightsError::Io {
            file: path.to_path_buf(),
            source,
        });
    }
    let reader = PytorchReader::new(path).map_err(|e| WeightsError::Pytorch {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let file = Arc::new(path.to_path_buf());
    let mut out: Vec<TensorEntry> = reader
        .into_tensors()
        .into_iter()
        .map(|(key, t)| TensorEntry {
            key,
            file: file.clone(),
            dtype: dtype(t.dtype()),
            shape: t.shape().to_vec(),
            data: Data::Pytorch(t),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn dtype(d: DType) -> SourceDtype {
    match d {
        DType::F64 => SourceDtype::F64,
        DType::F32 => SourceDtype::F32,
        DType::F16 => SourceDtype::F16,
        DType::BF16 => SourceDtype::BF16,
        other => SourceDtype::Other(format!("{other:?}")),
    }
}
