//! The crate's error type (the Python side raises `ValueError`/`OSError`/soundfile errors instead).

/// Everything that can go wrong while loading audio or extracting features.
///
/// Variants about an input file name it in `file` (the path as given, or `<memory>` for
/// [`crate::decode_bytes`]), so the message alone tells the user which file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The file does not exist.
    #[error("{file}: no such file")]
    NotFound {
        /// The file.
        file: String,
    },
    /// The file exists but could not be read (permissions, a directory, an I/O failure).
    #[error("{file}: cannot read the file: {source}")]
    Io {
        /// The file.
        file: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Writing an audio file failed.
    #[error("{file}: cannot write: {source}")]
    Write {
        /// The file.
        file: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file has zero bytes.
    #[error("{file}: the file is empty (0 bytes)")]
    EmptyFile {
        /// The file.
        file: String,
    },
    /// No container format recognised the data.
    #[error("{file}: not a recognised audio file ({reason})")]
    NotAudio {
        /// The file.
        file: String,
        /// What the format probe said.
        reason: String,
    },
    /// The container was recognised but holds no audio track.
    #[error("{file}: the file contains no audio track")]
    NoAudioTrack {
        /// The file.
        file: String,
    },
    /// The codec (or one of its features) is not supported by the enabled decoders.
    #[error("{file}: unsupported audio codec or feature ({reason})")]
    Unsupported {
        /// The file.
        file: String,
        /// What the decoder said.
        reason: String,
    },
    /// The stream is corrupt or inconsistent.
    #[error("{file}: malformed audio data ({reason})")]
    Malformed {
        /// The file.
        file: String,
        /// What was wrong.
        reason: String,
    },
    /// The file ends before the data its header announces.
    #[error("{file}: truncated file ({detail})")]
    Truncated {
        /// The file.
        file: String,
        /// Where the data ran out.
        detail: String,
    },
    /// The file decodes to zero samples.
    #[error("{file}: the audio has zero length (no samples)")]
    ZeroLength {
        /// The file.
        file: String,
    },
    /// Some samples are NaN or infinite.
    #[error(
        "{file}: {count} non-finite samples (NaN or infinity); the first is channel {channel}, frame {frame}"
    )]
    NonFinite {
        /// The file (or `clip N` for feature extraction input).
        file: String,
        /// How many samples are not finite.
        count: usize,
        /// Channel of the first non-finite sample.
        channel: usize,
        /// Frame (sample index within the channel) of the first non-finite sample.
        frame: usize,
    },
    /// A buffer could not be allocated (the machine's memory or the process's limit, `ulimit -v`): an error
    /// instead of an abort.
    #[error("{file}: out of memory: cannot allocate {bytes} bytes for {what}")]
    OutOfMemory {
        /// The file (or what the buffer is for).
        file: String,
        /// What the buffer holds.
        what: String,
        /// The bytes asked for.
        bytes: u64,
    },
    /// A size read from a file (a config field, a header) over the limit this crate accepts: refused before
    /// anything of that size is allocated.
    #[error("{file}: {field} is {value}, over the limit of {limit}")]
    TooLarge {
        /// The file the size comes from.
        file: String,
        /// The field (or what the size counts).
        field: String,
        /// The size found.
        value: u64,
        /// The largest accepted.
        limit: u64,
    },
    /// An in-memory [`crate::Audio`] or input that breaks an invariant (no channels, ragged channels, rate 0).
    #[error("invalid audio: {reason}")]
    InvalidAudio {
        /// What was wrong.
        reason: String,
    },
    /// [`crate::Audio::to_channels`] was asked for a conversion it does not define.
    #[error(
        "cannot convert {from} channels to {to}: only identity, mono to stereo (duplicate) and any to mono (mean) are defined"
    )]
    ChannelConversion {
        /// Channels of the audio.
        from: usize,
        /// Channels requested.
        to: usize,
    },
    /// The resampler could not be built or failed.
    #[error("cannot resample from {from} Hz to {to} Hz: {reason}")]
    Resample {
        /// Source rate.
        from: u32,
        /// Target rate.
        to: u32,
        /// What went wrong.
        reason: String,
    },
    /// Audio at the wrong rate was given to a feature extractor (HF raises `ValueError`).
    #[error(
        "sampling rate mismatch: the feature extractor expects {expected} Hz but the audio is {given} Hz; resample it first with Audio::resample"
    )]
    SamplingRateMismatch {
        /// The extractor's rate.
        expected: u32,
        /// The rate passed by the caller.
        given: u32,
    },
    /// A `preprocessor_config.json` that cannot be used.
    #[error("{file}: invalid preprocessor config ({reason})")]
    Config {
        /// The config file.
        file: String,
        /// What was wrong.
        reason: String,
    },
    /// Feature-extractor or filter-bank settings that cannot work (zero hop, mismatched mel_norms, ...).
    #[error("invalid feature extractor settings: {reason}")]
    InvalidSettings {
        /// What was wrong.
        reason: String,
    },
}

/// An empty vector with room for `n` items, or [`AudioError::OutOfMemory`] (`{context}: … for {what}`) where
/// the memory cannot be had: a long clip must be an error, not an abort.
pub(crate) fn try_with_capacity<T>(
    n: usize,
    context: &str,
    what: &str,
) -> Result<Vec<T>, AudioError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| AudioError::OutOfMemory {
            file: context.to_string(),
            what: what.to_string(),
            bytes: (n as u64).saturating_mul(std::mem::size_of::<T>() as u64),
        })?;
    Ok(v)
}

/// An I/O error on `file`: [`AudioError::NotFound`] for a missing file, else [`AudioError::Io`].
pub(crate) fn io_error(file: &str, source: std::io::Error) -> AudioError {
    if source.kind() == std::io::ErrorKind::NotFound {
        AudioError::NotFound {
            file: file.to_string(),
        }
    } else {
        AudioError::Io {
            file: file.to_string(),
            source,
        }
    }
}
