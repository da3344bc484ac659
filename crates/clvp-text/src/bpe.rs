//! Steps 3–5 of HF `ClvpTokenizer._tokenize`: GPT-2 pre-tokenisation, byte-level mapping and BPE, with the
//! standalone `Ġ` symbol mapped to `[SPACE]`. Runs on the `tokenizers` crate.
//!
//! The model is a `tokenizers` BPE (`unk_token` = the unknown token, `fuse_unk: false`, no byte fallback, no
//! dropout) behind a `ByteLevel` pre-tokenizer (`add_prefix_space: false`, `use_regex: true`: the GPT-2 pattern
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, then the `bytes_to_unicode`
//! table). HF replaces a BPE symbol equal to `Ġ` (U+0120, the mapped space) by `[SPACE]` when `[SPACE]` is in
//! the vocabulary; an extra vocabulary entry `Ġ` → id of `[SPACE]` does the same inside the model, since a
//! merge result is never the single character `Ġ`. The input is the normaliser's output, which is pure ASCII.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::Tokenizer;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

use crate::error::TextError;

/// The byte-level image of the space byte (U+0120 `Ġ`).
const SPACE_CHAR: &str = "\u{120}";
/// The vocabulary token a standalone `Ġ` becomes.
pub(crate) const SPACE_TOKEN: &str = "[SPACE]";

/// The byte-level BPE stage.
#[derive(Clone)]
pub(crate) struct ByteLevelBpe {
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for ByteLevelBpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteLevelBpe").finish_non_exhaustive()
    }
}

impl ByteLevelBpe {
    /// Build from the vocabulary (file order) and the merges (rank order). `merges_path` names the merges file
    /// in errors about merges the vocabulary cannot support.
    pub(crate) fn new(
        vocab: &[(String, u32)],
        merges: Vec<(String, String)>,
        unk_token: Option<&str>,
        merges_path: &Path,
    ) -> Result<Self, TextError> {
        let mut model_vocab: Vocab = vocab.iter().cloned().collect();
        if let Some(&space_id) = model_vocab.get(SPACE_TOKEN) {
            model_vocab.insert(SPACE_CHAR.to_owned(), space_id);
        }
        let mut builder = BPE::builder().vocab_and_merges(model_vocab, merges);
        if let Some(unk) = unk_token {
            builder = builder.unk_token(unk.to_owned());
        }
        let model = builder
            .fuse_unk(false)
            .byte_fallback(false)
            .build()
            .map_err(|e| TextError::Merges {
                path: merges_path.into(),
                message: e.to_string(),
            })?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        Ok(Self { tokenizer })
    }

    /// The ids of one normalised piece of text.
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TextError::Bpe {
                message: e.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }
}

/// GPT-2's `bytes_to_unicode` inverted: byte-level character → byte.
pub(crate) fn byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u8| {
        (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let code = if printable(b) {
            u32::from(b)
        } else {
            extra += 1;
            255 + extra
        };
        if let Some(c) = char::from_u32(code) {
            map.insert(c, b);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        let decoder = byte_decoder();
        assert_eq!(decoder.len(), 256);
        assert_eq!(decoder.get(&'a'), Some(&b'a'));
        assert_eq!(decoder.get(&'\u{120}'), Some(&b' '));
        assert_eq!(decoder.get(&'\u{100}'), Some(&0u8));
        assert_eq!(decoder.get(&'\u{10A}'), Some(&b'\n'));
    }

    #[test]
    fn merges_outside_the_vocabulary_name_the_file() {
        let vocab = vec![("[UNK]".to_owned(), 0), ("a".to_owned(), 1)];
        let merges = vec![("a".to_owned(), "b".to_owned())];
        let err =
            ByteLevelBpe::new(&vocab, merges, Some("[UNK]"), Path::new("ckpt/merges.txt")).err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("ckpt/merges.txt") && message.contains('b'),
            "{message}"
        );
    }
}
