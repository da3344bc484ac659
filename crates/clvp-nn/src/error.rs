//! Errors of the CLVP networks.

/// A model input or state that cannot be processed.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// The configuration cannot build the model.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A token or code outside its vocabulary.
    #[error("{what} {id} is outside the vocabulary 0..{vocab}")]
    TokenOutOfRange {
        /// The offending id.
        id: i64,
        /// The vocabulary size.
        vocab: usize,
        /// What kind of id (`text token`, `speech code`).
        what: &'static str,
    },
    /// Generation settings that are out of range or cannot be combined (HF's `GenerationConfig.validate`), or
    /// a search that these settings left without a result.
    #[error("invalid generation config: {message}")]
    Generation {
        /// The setting at fault (a `GenerationConfig` field: `length_penalty`, `max_new_tokens`, …), where one
        /// alone is (a front end names its own flag for it).
        option: Option<&'static str>,
        /// What is wrong; it names the setting.
        message: String,
    },
    /// Inputs of incompatible shapes or lengths.
    #[error("{0}")]
    Shape(String),
    /// Scoring embeddings against each other (`clvp-rank`).
    #[error(transparent)]
    Rank(#[from] clvp_rank::RankError),
    /// A result could not be read back from the device.
    #[error("reading {what} back from the device: {message}")]
    Readback {
        /// What was read.
        what: &'static str,
        /// The backend's message.
        message: String,
    },
}

impl NnError {
    /// [`NnError::Readback`] of `what`, from a backend's error.
    pub fn readback(what: &'static str, e: impl std::fmt::Debug) -> Self {
        NnError::Readback {
            what,
            message: format!("{e:?}"),
        }
    }
}

impl From<clvp_kernels::KernelError> for NnError {
    fn from(e: clvp_kernels::KernelError) -> Self {
        match e {
            clvp_kernels::KernelError::Shape(message) => NnError::Shape(message),
        }
    }
}
