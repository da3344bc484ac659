//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong when loading or running a [`ClvpTokenizer`](crate::ClvpTokenizer).
///
/// File errors name the file (`vocab.json`, `merges.txt`, `tokenizer_config.json`, or the full path when it came
/// from [`ClvpTokenizer::from_dir`](crate::ClvpTokenizer::from_dir)) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A tokenizer file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `vocab.json` is not a JSON object mapping tokens to non-negative integer ids.
    #[error("invalid vocabulary file {path}: {message}")]
    Vocab {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `merges.txt` has a malformed line, or a merge the vocabulary cannot support.
    #[error("invalid merges file {path}: {message}")]
    Merges {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (with the 1-based line number where there is one).
        message: String,
    },
    /// `tokenizer_config.json` is not valid JSON or has a field of the wrong type.
    #[error("invalid tokenizer config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The byte-level BPE stage failed (for example: a character is not in the vocabulary and the unknown token
    /// is not in the vocabulary either).
    #[error("byte-level BPE failed: {message}")]
    Bpe {
        /// The underlying `tokenizers` error.
        message: String,
    },
    /// A batch needs padding but the tokenizer has no padding token (its config sets `pad_token` to `null`).
    #[error("cannot pad the batch: the tokenizer has no padding token")]
    NoPadToken,
    /// [`decode`](crate::ClvpTokenizer::decode) was given an id that is neither in the vocabulary nor an added
    /// token.
    #[error("unknown token id {id}: the vocabulary has {vocab_size} tokens")]
    UnknownId {
        /// The offending id.
        id: u32,
        /// The tokenizer's size (vocabulary plus added tokens).
        vocab_size: usize,
    },
    /// A token to decode contains a character outside the GPT-2 byte alphabet, so it maps to no byte.
    #[error(
        "token {token:?} (id {id}) contains {character:?}, which is not in the byte-level alphabet"
    )]
    NotByteLevel {
        /// The token's id.
        id: u32,
        /// The token.
        token: String,
        /// The first character that maps to no byte.
        character: char,
    },
}
