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
    /// A chunk's scale that no encoder writes: NaN, infinite, zero or negative.
    #[error(
        "chunk {chunk} has the scale {value}; a scale must be finite and positive (the encoder's RMS scale \
         always is): the codes are corrupt"
    )]
    InvalidScale {
        /// Chunk index.
        chunk: usize,
        /// The scale.
        value: f32,
    },
    /// Decoding gave NaN or infinite samples (finite codes, scales and weights can still overflow float32).
    #[error(
        "the decoded audio has {count} non-finite samples (NaN or infinity), the first at sample {frame} of \
         channel {channel}: {cause}"
    )]
    NonFiniteAudio {
        /// How many samples of the first non-finite block.
        count: usize,
        /// Channel of the first one.
        channel: usize,
        /// Sample (per channel, from the start of the clip) of the first one.
        frame: usize,
        /// The likely cause.
        cause: String,
    },
    /// Inputs of the wrong shape, length or value.
    #[error("{0}")]
    Input(String),
    /// A checkpoint file with none of the keys of Meta's `EncodecModel` state dict (`encodec` 0.1.1's `.th`): an
    /// LM, another model, a nested training checkpoint.
    #[error(
        "{file} is not an EnCodec checkpoint of Meta's encodec package: none of its {total} keys is one \
         (encoder.model.*, decoder.model.*, quantizer.vq.layers.*); unexpected keys: {}{}{hint}",
        keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
        if *total > keys.len() { format!(" and {} more", total - keys.len()) } else { String::new() }
    )]
    NotMetaCheckpoint {
        /// The file.
        file: std::path::PathBuf,
        /// The first few keys (sorted), none of them an EnCodec key.
        keys: Vec<String>,
        /// How many keys the file has.
        total: usize,
        /// What the keys look like instead (`; it looks like ...`), or empty.
        hint: String,
    },
}

/// Whether `scale` can be a chunk's RMS scale: finite and positive, as the encoder's `sqrt(mean(x²)) + 1e-8`
/// always is. The one check of scales read from HF tensors, `.ecdc` files and hand-built codes.
pub fn is_valid_scale(scale: f32) -> bool {
    scale.is_finite() && scale > 0.0
}

/// [`is_valid_scale`] as an error naming the chunk.
pub fn check_scale(chunk: usize, scale: f32) -> Result<(), EncodecError> {
    if is_valid_scale(scale) {
        Ok(())
    } else {
        Err(EncodecError::InvalidScale {
            chunk,
            value: scale,
        })
    }
}

/// [`EncodecError::NonFiniteAudio`] for a planar block (`[channel][n]`) whose first sample is sample `start`
/// of the clip, if it holds a NaN or an infinity.
pub(crate) fn check_finite_block(
    values: &[f32],
    n: usize,
    start: usize,
    cause: &str,
) -> Result<(), EncodecError> {
    let count = values.iter().filter(|v| !v.is_finite()).count();
    if count == 0 {
        return Ok(());
    }
    let first = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(EncodecError::NonFiniteAudio {
        count,
        channel: first / n.max(1),
        frame: start + first % n.max(1),
        cause: cause.to_string(),
    })
}

/// The likely cause of non-finite decoded audio, once codes, scales and weights have been checked.
pub(crate) const OVERFLOW_CAUSE: &str = "the chunks' scales or the checkpoint's weights are so large that \
     the decoder overflows float32; check the codes file and the checkpoint";
