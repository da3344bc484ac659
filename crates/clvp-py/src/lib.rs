//! `clvp._clvp`: the workspace's models for Python, with transformers' class names, arguments, shapes and dtypes
//! (the pure-Python package `clvp` in `python/` re-exports them and carries the type stubs).
//!
//! Every call that computes releases the GIL; the model objects are immutable once loaded and may be used from
//! several Python threads at once; stream objects hold their own state behind a lock. Errors are Python
//! exceptions carrying the messages the `clvp` command prints: `FileNotFoundError` when a file is missing,
//! `ValueError` for bad input, `RuntimeError` for the rest. Nothing here panics on a caller's input.

use clvp::raw::hub::{HubError, SourceError};
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

// The allocator of the `clvp` command and the bench workers (the module's own Rust allocations only; numpy's
// arrays adopt `Vec`s, which Rust frees with it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod arrays;
mod clvp_model;
mod ecdc;
mod encodec;
mod encodec_fe;
mod stream;
mod text;

/// A facade error as the Python exception a transformers user expects, with the CLI's message.
pub(crate) fn py_err(e: clvp::Error) -> PyErr {
    let missing = {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut found = false;
        while let Some(s) = source {
            let io = s
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound);
            found |= io;
            source = s.source();
        }
        found
    };
    // A checkpoint argument that names no directory (and is no hub id), or a directory without a file (the
    // facade's error is transparent: the chain above skips these layers).
    let missing = missing
        || matches!(
            &e,
            clvp::Error::Audio(clvp::raw::audio::AudioError::NotFound { .. })
        )
        || matches!(&e, clvp::Error::Hub(h) if matches!(
            h.as_ref(),
            HubError::Source(SourceError::Invalid { .. } | SourceError::MissingFile { .. })
        ));
    let msg = e.to_string();
    match e {
        _ if missing => PyFileNotFoundError::new_err(msg),
        clvp::Error::Device(clvp::DeviceError::NotCompiled { .. })
        | clvp::Error::Readback { .. } => PyRuntimeError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// A `ValueError` with `msg`.
pub(crate) fn value_err(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

#[pymodule]
fn _clvp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<encodec::EncodecModel>()?;
    m.add_class::<encodec::EncodecEncoderOutput>()?;
    m.add_class::<encodec::EncodecDecoderOutput>()?;
    m.add_class::<encodec_fe::EncodecFeatureExtractor>()?;
    m.add_class::<stream::EncodecStreamEncoder>()?;
    m.add_class::<stream::EncodecStreamDecoder>()?;
    m.add_function(wrap_pyfunction!(ecdc::compress, m)?)?;
    m.add_function(wrap_pyfunction!(ecdc::decompress, m)?)?;
    m.add_class::<clvp_model::ClvpModelForConditionalGeneration>()?;
    m.add_class::<clvp_model::ClvpOutput>()?;
    m.add_class::<text::ClvpTokenizer>()?;
    m.add_class::<text::ClvpFeatureExtractor>()?;
    Ok(())
}
