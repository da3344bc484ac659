//! [`Error`]: the one error type every facade call returns.
//!
//! The conditions a program acts on have their own variants with their numbers ([`Error::TextTooLong`] to split
//! a long text, [`Error::NoVoice`], [`Error::EmptyCandidate`], ...); the inner crates' errors are wrapped whole
//! ([`Error::Hub`], [`Error::Encodec`], ...), so a downstream project needs one `From<clvp::Error>`.
//! `ClvpError`, `CodecError` and `ProcessorError` are older names of this type.

use clvp_audio::AudioError;
use clvp_hub::HubError;
use clvp_nn::{LoadModelError, NnError};
use clvp_rank::RankError;
use clvp_text::TextError;
use encodec_codec::ecdc::EcdcError;
use encodec_codec::{CodesError, EncodecError};

use crate::device::DeviceError;

/// Anything that can go wrong in a facade call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text normalises to no tokens at all.
    #[error("the text has no tokens after normalisation")]
    EmptyText,
    /// The text has more tokens than the model conditions on: split it.
    #[error(
        "the text has {tokens} tokens, over the limit of {limit} (max_text_tokens {max_text_tokens} − 3); split \
         the text"
    )]
    TextTooLong {
        /// Tokens of the text.
        tokens: usize,
        /// The most tokens a text may have (`max_text_tokens − 3`: BOS and two EOS).
        limit: usize,
        /// The checkpoint's `max_text_tokens`.
        max_text_tokens: usize,
    },
    /// A sequence longer than an encoder can attend over in bounded memory
    /// ([`crate::model::max_encoder_tokens`]).
    #[error(
        "{len} {what}s in one sequence, more than the {encoder} takes ({max} with {heads} attention heads: the \
         attention scores alone would need {gib:.1} GiB); {hint}"
    )]
    SequenceTooLong {
        /// `text token` or `speech code`.
        what: &'static str,
        /// Items in the sequence.
        len: usize,
        /// The most the encoder takes.
        max: usize,
        /// Which encoder.
        encoder: &'static str,
        /// Its attention heads.
        heads: usize,
        /// GiB the attention scores would need.
        gib: f64,
        /// What to change.
        hint: &'static str,
    },
    /// No voice clip was given where the conditioning needs one.
    #[error("no voice clip given: at least one is needed for the conditioning")]
    NoVoice,
    /// No speech candidates to score.
    #[error("no speech candidates to score")]
    NoCandidates,
    /// A speech candidate without codes.
    #[error("speech candidate {index} is empty (no codes)")]
    EmptyCandidate {
        /// Its position in the call's candidates.
        index: usize,
    },
    /// More candidates asked of one `generate` call than it makes.
    #[error("{requested} candidates requested; at most {max} per call")]
    TooManyCandidates {
        /// `num_return_sequences`.
        requested: usize,
        /// [`crate::MAX_CANDIDATES`].
        max: usize,
    },
    /// More beams than beam search takes.
    #[error("{requested} beams requested; at most {max}")]
    TooManyBeams {
        /// `num_beams`.
        requested: usize,
        /// [`crate::MAX_BEAMS`].
        max: usize,
    },
    /// Nothing to process (the processor got neither text nor audio).
    #[error("the processor needs at least one text or one audio clip")]
    Empty,
    /// Another input that is empty or malformed; the message names it.
    #[error("{0}")]
    Input(String),
    /// Codes that do not fit this model or form.
    #[error("{0}")]
    Codes(String),
    /// A result could not be read back from the device.
    #[error("reading {what} back from the device: {message}")]
    Readback {
        /// What was read.
        what: &'static str,
        /// The backend's message.
        message: String,
    },
    /// The requested device is unknown or not compiled in.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Finding, downloading or reading checkpoint files.
    #[error(transparent)]
    Hub(Box<HubError>),
    /// Building the CLVP networks from the checkpoint.
    #[error(transparent)]
    Load(Box<LoadModelError>),
    /// The tokenizer.
    #[error(transparent)]
    Text(#[from] TextError),
    /// Audio decoding, resampling or feature extraction.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// A CLVP model input that cannot be processed.
    #[error(transparent)]
    Nn(NnError),
    /// Scoring and ranking.
    #[error(transparent)]
    Rank(#[from] RankError),
    /// The EnCodec model.
    #[error(transparent)]
    Encodec(Box<EncodecError>),
    /// The `.ecdc` container.
    #[error(transparent)]
    Ecdc(#[from] EcdcError),
}

// The three largest inner errors are boxed, so that `Result<T, Error>` stays small.
impl From<HubError> for Error {
    fn from(e: HubError) -> Self {
        Error::Hub(Box::new(e))
    }
}

impl From<LoadModelError> for Error {
    fn from(e: LoadModelError) -> Self {
        Error::Load(Box::new(e))
    }
}

/// A read-back failure inside clvp-nn is [`Error::Readback`] and a scoring failure [`Error::Rank`], as the
/// facade's own.
impl From<NnError> for Error {
    fn from(e: NnError) -> Self {
        match e {
            NnError::Readback { what, message } => Error::Readback { what, message },
            NnError::Rank(e) => Error::Rank(e),
            e => Error::Nn(e),
        }
    }
}

impl From<EncodecError> for Error {
    fn from(e: EncodecError) -> Self {
        Error::Encodec(Box::new(e))
    }
}

/// Codes that do not fit a form are [`Error::Codes`], as before the moves between forms went to
/// encodec-codec; a scale no encoder writes stays [`Error::Encodec`].
impl From<CodesError> for Error {
    fn from(e: CodesError) -> Self {
        match e {
            CodesError::Form(message) => Error::Codes(message),
            CodesError::Encodec(e) => e.into(),
        }
    }
}

impl Error {
    /// [`Error::Readback`] of `what`, from a backend's error.
    pub(crate) fn readback(what: &'static str, e: impl std::fmt::Debug) -> Self {
        Error::Readback {
            what,
            message: format!("{e:?}"),
        }
    }
}
