//! CLVP tokenizer: the HF-exact English normaliser and byte-level BPE with the Tortoise vocabulary embedded.
//!
//! [`ClvpTokenizer`] reproduces `transformers.ClvpTokenizer` (5.23) id for id:
//!
//! 1. the text is split on the added tokens `[STOP]` (0), `[UNK]` (1) and `<|endoftext|>` (255) with HF's
//!    `Trie` (case-sensitive, no stripping); those pieces map straight to their ids;
//! 2. every other piece goes through [`EnglishNormalizer`] on its own: non-ASCII dropped, lower case, numbers,
//!    money, decimals and ordinals spelt out (`1st` → `onest`, `1984` → `one thousand, nine hundred
//!    eighty-four`), abbreviations expanded, whitespace collapsed, `"` removed;
//! 3. the normalised piece is pre-tokenised with the GPT-2 pattern, byte-level mapped and BPE-merged with the
//!    Tortoise merges (the `tokenizers` crate); a standalone `Ġ` becomes `[SPACE]` (2); characters outside the
//!    vocabulary become `[UNK]` (1), one each.
//!
//! No BOS/EOS is added: the model adds them (see [`BOS_ID`], [`EOS_ID`]).
//!
//! ```
//! # fn main() -> Result<(), clvp_text::TextError> {
//! let tokenizer = clvp_text::ClvpTokenizer::tortoise()?;
//! assert_eq!(tokenizer.encode("Hello world")?, [62, 84, 28, 2, 179, 79]);
//! assert_eq!(tokenizer.decode(&[62, 84, 28, 2, 179, 79], false)?, "hello[SPACE]world");
//! # Ok(())
//! # }
//! ```
//!
//! # Where HF raises and this crate does not
//!
//! HF's normaliser raises a Python exception on a few inputs; [`EnglishNormalizer::normalize`] returns a string
//! instead, so [`ClvpTokenizer::encode`] gives ids where HF gives an error:
//!
//! * a dollar amount whose part holds a stray comma, e.g. `$,5` or `$5,.5` (HF: `int(",5")` → `ValueError`;
//!   the other commas of a digit run are removed by the first number rule): the comma is ignored, so `$,5`
//!   reads as `$5`;
//! * a digit run longer than 4300 digits (Python's `int` string-conversion limit → `ValueError`): its value is
//!   used as for any other number, which is "number out of range" unless it is mostly leading zeros.
//!
//! # Files
//!
//! [`ClvpTokenizer::from_dir`] reads a checkpoint's `vocab.json`, `merges.txt` and optional
//! `tokenizer_config.json`. HF always drops the first line of `merges.txt` and anything after its last newline;
//! here only a `#version` first line is dropped and a last line without newline is kept. The two agree on files
//! with a header and a trailing newline (what the hub has); note that HF 5.23's own `save_pretrained` writes
//! `merges.txt` WITHOUT the header, so HF reloading such a directory loses its first merge while this crate
//! keeps it. Merges must be pairs of vocabulary tokens whose concatenation is in the vocabulary (HF tolerates
//! other merges; they never apply to well-formed files).

#![warn(missing_docs)]

mod bpe;
mod error;
mod normalizer;
mod numbers;
mod tokenizer;
mod trie;
mod vocab;

pub use error::TextError;
pub use normalizer::EnglishNormalizer;
pub use tokenizer::{BOS_ID, BatchEncoding, ClvpTokenizer, EOS_ID, PAD_ID, SPACE_ID, UNK_ID};
