//! Output files written atomically: a temporary file in the target directory, renamed into place, so a
//! failure never leaves a half-written output behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
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

/// An output written to a temporary file next to its destination and not yet visible under its name.
/// Dropping it without [`Staged::commit`] removes the temporary file.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

/// An I/O error without the temporary file's name that `tempfile` appends (the user never sees that file).
fn plain(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::from(e.kind()),
    }
}

/// Write `bytes` to a temporary file in `path`'s directory (flushed to disk, mode 0644), ready to be renamed.
pub fn stage(path: &Path, bytes: &[u8]) -> Result<Staged> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        bail!("cannot write {}: it is a directory", path.display());
    }
    match std::fs::metadata(dir) {
        Err(_) => bail!(
            "cannot write {}: the directory {} does not exist",
            path.display(),
            dir.display()
        ),
        Ok(m) if !m.is_dir() => bail!(
            "cannot write {}: {} is not a directory",
            path.display(),
            dir.display()
        ),
        Ok(_) => {}
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".clvp-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| {
            anyhow!(
                "cannot write {}: cannot create a file in {}: {}",
                path.display(),
                dir.display(),
                plain(&e)
            )
        })?;
    let fail = |e: std::io::Error| anyhow!("cannot write {}: {}", path.display(), plain(&e));
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    // A temporary file is created 0600; an output file gets the usual 0644 (as `File::create` under umask 022).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Best effort, as before: some file systems (FAT, SMB mounts) have no modes to set.
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    Ok(Staged {
        tmp,
        path: path.to_path_buf(),
    })
}

impl Staged {
    /// Rename the temporary file to its destination (atomic on one file system).
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        self.tmp.persist(&path).map_err(|e| {
            anyhow!(
                "cannot move the output into place at {}: {}",
                path.display(),
                plain(&e.error)
            )
        })?;
        Ok(())
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename: a failure never leaves
/// a partial file under `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    stage(path, bytes)?.commit()
}

/// Write several outputs: every one is staged before the first is renamed into place, so a missing directory,
/// a full disk or a permission problem for any of them leaves none behind.
pub fn write_all_atomic(outputs: &[(&Path, &[u8])]) -> Result<()> {
    let staged = outputs
        .iter()
        .map(|(path, bytes)| stage(path, bytes))
        .collect::<Result<Vec<_>>>()?;
    staged.into_iter().try_for_each(Staged::commit)
}

/// The bytes of a safetensors file holding `tensors`.
pub fn safetensors_bytes(tensors: &[TensorOut]) -> Result<Vec<u8>> {
    let views: Vec<(&str, &TensorOut)> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    safetensors::serialize(views, None).context("cannot serialize the safetensors output")
}

/// Serialize tensors to a safetensors file atomically.
pub fn write_safetensors(path: &Path, tensors: &[TensorOut]) -> Result<()> {
    write_atomic(path, &safetensors_bytes(tensors)?)
}
