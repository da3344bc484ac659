//! Output files written atomically: a temporary file in the target directory, renamed into place, so a
//! failure never leaves a half-written output behind.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use safetensors::{Dtype, View};

/// One tensor to write: name, dtype, shape, little-endian bytes.
pub struct TensorOut {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl TensorOut {
    pub fn f32(name: &str, shape: Vec<usize>, values: &[f32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorOut {
            name: name.to_string(),
            dtype: Dtype::F32,
            shape,
            data,
        }
    }

    pub fn i64(name: &str, shape: Vec<usize>, values: &[i64]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorOut {
            name: name.to_string(),
            dtype: Dtype::I64,
            shape,
            data,
        }
    }
}

impl View for &TensorOut {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| {
        format!(
            "cannot create a temporary file in {} for {}",
            dir.display(),
            path.display()
        )
    })?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot flush {}", path.display()))?;
    // A temporary file is created 0600; an output file gets the usual 0644 (as `File::create` under umask 022).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(path)
        .with_context(|| format!("cannot move the output into place at {}", path.display()))?;
    Ok(())
}

/// Serialize tensors to a safetensors file atomically.
pub fn write_safetensors(path: &Path, tensors: &[TensorOut]) -> Result<()> {
    let views: Vec<(&str, &TensorOut)> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let bytes =
        safetensors::serialize(views, None).context("cannot serialize the safetensors output")?;
    write_atomic(path, &bytes)
}
