//! Errors of the EnCodec model: configuration, checkpoint, bandwidth and input problems, each naming what is wrong.

use clvp_hub::HubError;

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|b| format!("{b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Something EnCodec cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum EncodecError {
    /// `config.json` could not be read.
    #[error("cannot read config {file}: {source}")]
    ConfigIo {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A config field is missing, mistyped or inconsistent.
    #[error("config {file}: field `{field}`: {message}")]
    Config {
        /// The file (or `<memory>`).
        file: String,
        /// The offending field (`(file)` for the whole file).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint's files or weights.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// A bandwidth the model does not offer.
    #[error(
        "this model does not offer a bandwidth of {requested} kbps; choose one of {}",
        list(allowed)
    )]
    Bandwidth {
        /// The requested bandwidth (kbps).
        requested: f64,
        /// The model's `target_bandwidths`.
        allowed: Vec<f64>,
    },
    /// Audio whose channel count the model does not take.
    #[error("the model takes {expected} audio channel(s), the input has {found}")]
    Channels {
        /// The model's channel count.
        expected: usize,
        /// The input's.
        found: usize,
    },
    /// A code outside the codebook.
    #[error(
        "code {value} at chunk {chunk}, item {item}, codebook {codebook}, frame {frame} is outside the codebook (0..{size})"
    )]
    CodeOutOfRange {
        /// The offending code.
        value: i64,
        /// Chunk index.
        chunk: usize,
        /// Batch item.
        item: usize,
        /// Codebook (quantizer layer).
        codebook: usize,
        /// Frame.
        frame: usize,
        /// Entries per codebook.
        size: usize,
    },
    /// Inputs of the wrong shape, length or value.
    #[error("{0}")]
    Input(String),
}
