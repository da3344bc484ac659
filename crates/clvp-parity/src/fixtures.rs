//! Where the committed fixtures live and how to read them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// A fixture that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error("cannot read fixture {path}: {source}")]
    Io {
        /// The fixture path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected form.
    #[error("fixture {path} is not valid JSON: {source}")]
    Json {
        /// The fixture path.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The file is not a valid safetensors file, or a tensor has an unexpected dtype.
    #[error("fixture {path}: {message}")]
    Safetensors {
        /// The fixture path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The repository's `fixtures/` directory (overridable with `CLVP_FIXTURES`).
pub fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLVP_FIXTURES") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A path inside the fixtures directory.
pub fn fixture_path(relative: &str) -> PathBuf {
    fixtures_dir().join(relative)
}

/// Read and deserialize a JSON fixture.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, FixtureError> {
    let bytes = std::fs::read(path).map_err(|source| FixtureError::Io {
        path: path.into(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| FixtureError::Json {
        path: path.into(),
        source,
    })
}

/// A tensor read from a fixture, widened to f64 (floats) or kept as i64 (integers).
#[derive(Debug, Clone)]
pub struct FixtureTensor {
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// Float values (empty for integer tensors).
    pub f64: Vec<f64>,
    /// Integer values (empty for float tensors).
    pub i64: Vec<i64>,
}

/// Read every tensor of a safetensors fixture.
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, FixtureTensor>, FixtureError> {
    let bytes = std::fs::read(path).map_err(|source| FixtureError::Io {
        path: path.into(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| FixtureError::Safetensors {
        path: path.into(),
        message: e.to_string(),
    })?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let shape = view.shape().to_vec();
        let mut t = FixtureTensor {
            shape,
            f64: Vec::new(),
            i64: Vec::new(),
        };
        match view.dtype() {
            Dtype::F32 => {
                t.f64 = data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                    .collect()
            }
            Dtype::F64 => {
                t.f64 = data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            }
            Dtype::I64 => {
                t.i64 = data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            }
            Dtype::I32 => {
                t.i64 = data
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect()
            }
            other => {
                return Err(FixtureError::Safetensors {
                    path: path.into(),
                    message: format!("tensor {name}: unsupported dtype {other:?}"),
                });
            }
        }
        out.insert(name, t);
    }
    Ok(out)
}
