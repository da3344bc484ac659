//! [`ClvpTokenizer`]: HF `ClvpTokenizer` (5.23) encode, batch encode and decode.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::bpe::{ByteLevelBpe, SPACE_TOKEN, byte_decoder};
use crate::error::TextError;
use crate::normalizer::{EnglishNormalizer, is_python_space};
use crate::trie::Trie;
use crate::vocab::{
    AddedTokenSpec, TORTOISE_MERGES, TORTOISE_VOCAB, TokenizerConfig, parse_config, parse_merges,
    parse_vocab,
};

/// Id of the beginning-of-sequence token `<|endoftext|>` in the Tortoise vocabulary (an added token, one past
/// the 255 vocabulary entries). The tokenizer never inserts it; the model does.
pub const BOS_ID: u32 = 255;
/// Id of the end-of-sequence token `[STOP]`. The tokenizer never inserts it; the model does.
pub const EOS_ID: u32 = 0;
/// Id of the padding token (`[STOP]`, the same token as [`EOS_ID`]).
pub const PAD_ID: u32 = 0;
/// Id of the unknown token `[UNK]`: one per character outside the vocabulary.
pub const UNK_ID: u32 = 1;
/// Id of `[SPACE]`, which every standalone space becomes.
pub const SPACE_ID: u32 = 2;

/// A padded batch, as HF returns it for `tokenizer(texts, padding=True)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchEncoding {
    /// One row per text, right-padded with the pad id to the longest row.
    pub input_ids: Vec<Vec<u32>>,
    /// 1 for a real token, 0 for padding; same shape as `input_ids`.
    pub attention_mask: Vec<Vec<u32>>,
}

/// An added token: its id and HF's `AddedToken` flags.
#[derive(Debug, Clone)]
struct AddedToken {
    id: u32,
    spec: AddedTokenSpec,
}

/// HF's `ClvpTokenizer`, producing identical ids: added-token split, [`EnglishNormalizer`] per piece, GPT-2
/// byte-level BPE with `Ġ` → `[SPACE]`.
///
/// The tokenizer adds no BOS/EOS (HF's `special_tokens_pattern="none"`); see [`BOS_ID`] and [`EOS_ID`].
#[derive(Debug, Clone)]
pub struct ClvpTokenizer {
    normalizer: EnglishNormalizer,
    bpe: ByteLevelBpe,
    trie: Trie,
    /// Added tokens by content (HF `_added_tokens_encoder` with the flags).
    added: HashMap<String, AddedToken>,
    /// Added tokens by id (HF `_added_tokens_decoder`).
    added_by_id: HashMap<u32, String>,
    /// Vocabulary id → token (HF `decoder`: for a repeated id the last token of the file wins).
    decoder: HashMap<u32, String>,
    /// Ids of the special tokens (HF `all_special_ids`, skipped by `skip_special_tokens`).
    special_ids: HashSet<u32>,
    /// The special tokens' contents (HF `all_special_tokens`).
    special_tokens: HashSet<String>,
    /// Whether `[SPACE]` / `[STOP]` are known tokens (the clean-up only replaces them then).
    knows_space: bool,
    knows_stop: bool,
    byte_decoder: HashMap<char, u8>,
    unk_token: Option<String>,
    /// bos, eos, unk, pad ids.
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    unk_id: Option<u32>,
    pad_id: Option<u32>,
    len: usize,
    pad_left: bool,
    clean_up_tokenization_spaces: bool,
}

impl ClvpTokenizer {
    /// The Tortoise tokenizer (embedded vocabulary and merges, HF's default special tokens): what
    /// `ClvpTokenizer.from_pretrained("susnato/clvp_dev")` loads.
    pub fn tortoise() -> Result<Self, TextError> {
        let vocab = parse_vocab(Path::new("vocab.json"), TORTOISE_VOCAB)?;
        let merges = parse_merges(Path::new("merges.txt"), TORTOISE_MERGES)?;
        Self::build(
            vocab,
            merges,
            TokenizerConfig::default(),
            Path::new("merges.txt"),
        )
    }

    /// Load a checkpoint directory's `vocab.json` and `merges.txt`, plus its `tokenizer_config.json` when there
    /// is one. From the config, `clean_up_tokenization_spaces`, `padding_side`, the named special tokens
    /// (`bos_token`, `eos_token`, `unk_token`, `pad_token`, …; `null` removes one), `extra_special_tokens` and
    /// `added_tokens_decoder` are read; every other field is ignored.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, TextError> {
        let dir = dir.as_ref();
        let vocab_path = dir.join("vocab.json");
        let merges_path = dir.join("merges.txt");
        let config_path = dir.join("tokenizer_config.json");
        let vocab = parse_vocab(&vocab_path, &read(&vocab_path)?)?;
        let merges = parse_merges(&merges_path, &read(&merges_path)?)?;
        let config = if config_path.is_file() {
            parse_config(&config_path, &read(&config_path)?)?
        } else {
            TokenizerConfig::default()
        };
        Self::build(vocab, merges, config, &merges_path)
    }

    fn build(
        vocab: Vec<(String, u32)>,
        merges: Vec<(String, String)>,
        config: TokenizerConfig,
        merges_path: &Path,
    ) -> Result<Self, TextError> {
        let encoder: HashMap<String, u32> = vocab.iter().cloned().collect();
        let decoder: HashMap<u32, String> = vocab.iter().map(|(t, i)| (*i, t.clone())).collect();

        // HF: `added_tokens_decoder` first.
        let mut added: HashMap<String, AddedToken> = HashMap::new();
        let mut added_by_id: HashMap<u32, String> = HashMap::new();
        for (id, spec) in config.added_tokens.iter().cloned() {
            added_by_id.insert(id, spec.content.clone());
            added.insert(spec.content.clone(), AddedToken { id, spec });
        }
        // Then `all_special_tokens` (named in order, then extras, deduplicated) not yet added: a token of the
        // vocabulary keeps its id, a new one gets the next id (`len(get_vocab())`, counted once).
        let named = config.named_contents();
        let mut all_special: Vec<String> = Vec::new();
        for content in named.iter().flatten().chain(&config.extra_special) {
            if !content.is_empty() && !all_special.contains(content) {
                all_special.push(content.clone());
            }
        }
        let mut known: HashMap<String, u32> = encoder.clone();
        known.extend(added.iter().map(|(k, t)| (k.clone(), t.id)));
        let next_id = known.len();
        let mut new_tokens = 0usize;
        for content in &all_special {
            if added.contains_key(content) {
                continue;
            }
            let id = match known.get(content) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(next_id + new_tokens).unwrap_or(u32::MAX);
                    new_tokens += 1;
                    known.insert(content.clone(), id);
                    id
                }
            };
            added_by_id.insert(id, content.clone());
            added.insert(
                content.clone(),
                AddedToken {
                    id,
                    spec: AddedTokenSpec::special(content),
                },
            );
        }

        // bos, eos, unk, sep, pad, … (`NAMED_SPECIAL_TOKENS` order).
        let named_at = |i: usize| named.get(i).cloned().flatten();
        let id_of = |content: Option<String>| content.and_then(|c| added.get(&c)).map(|t| t.id);
        let special_ids = all_special
            .iter()
            .filter_map(|c| added.get(c))
            .map(|t| t.id)
            .collect();
        let unk_token = named_at(2);
        let bpe = ByteLevelBpe::new(&vocab, merges, unk_token.as_deref(), merges_path)?;
        Ok(Self {
            normalizer: EnglishNormalizer::new(),
            bpe,
            trie: Trie::new(added.keys().map(String::as_str)),
            bos_id: id_of(named_at(0)),
            eos_id: id_of(named_at(1)),
            unk_id: id_of(named_at(2)),
            pad_id: id_of(named_at(4)),
            len: known.len(),
            knows_space: known.contains_key(SPACE_TOKEN),
            knows_stop: known.contains_key("[STOP]"),
            special_tokens: all_special.into_iter().collect(),
            special_ids,
            added,
            added_by_id,
            decoder,
            byte_decoder: byte_decoder(),
            unk_token,
            pad_left: config.pad_left,
            clean_up_tokenization_spaces: config.clean_up_tokenization_spaces.unwrap_or(false),
        })
    }

    /// The normaliser HF applies to every piece of text between added tokens (HF `tokenizer.normalizer(text)`).
    pub fn normalize(&self, text: &str) -> String {
        self.normalizer.normalize(text)
    }

    /// The ids of `text` (HF `tokenizer(text)["input_ids"]`; no BOS/EOS is added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let mut ids = Vec::new();
        for piece in self.split_added_tokens(text) {
            if piece.is_empty() {
                continue;
            }
            match self.added.get(&piece) {
                Some(token) => ids.push(token.id),
                None => ids.extend(self.bpe.encode(&self.normalizer.normalize(&piece))?),
            }
        }
        Ok(ids)
    }

    /// HF `tokenize`'s first half: split on the added tokens, then apply their `rstrip`/`lstrip`/`single_word`
    /// flags to the neighbouring pieces (all off for the default tokens).
    fn split_added_tokens(&self, text: &str) -> Vec<String> {
        let mut pieces: Vec<String> = self
            .trie
            .split(text)
            .into_iter()
            .map(str::to_owned)
            .collect();
        for i in 0..pieces.len() {
            let Some(token) = self.added.get(&pieces[i]) else {
                continue;
            };
            let spec = &token.spec;
            let left = i.checked_sub(1).and_then(|j| pieces.get(j)).cloned();
            let right = pieces.get(i + 1).cloned();
            if spec.rstrip && right.as_ref().is_some_and(|r| !r.is_empty()) {
                pieces[i + 1] = pieces[i + 1].trim_start_matches(is_python_space).to_owned();
            }
            if spec.lstrip && left.as_ref().is_some_and(|l| !l.is_empty()) {
                pieces[i - 1] = pieces[i - 1].trim_end_matches(is_python_space).to_owned();
            }
            if spec.single_word {
                let content = spec.content.clone();
                if left
                    .as_ref()
                    .is_some_and(|l| !l.is_empty() && !l.ends_with(' '))
                {
                    pieces[i - 1].push_str(&content);
                    pieces[i].clear();
                } else if right
                    .as_ref()
                    .is_some_and(|r| !r.is_empty() && !r.starts_with(' '))
                {
                    pieces[i + 1].insert_str(0, &content);
                    pieces[i].clear();
                }
            }
        }
        pieces
    }

    /// Encode several texts and right-pad them with the pad id to the longest (HF
    /// `tokenizer(texts, padding=True)`; left padding only if the config says `padding_side: "left"`).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<BatchEncoding, TextError> {
        let rows = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
        let needs_padding = rows.iter().any(|r| r.len() < longest);
        let pad = match self.pad_id {
            Some(id) => id,
            None if needs_padding => return Err(TextError::NoPadToken),
            None => 0,
        };
        let mut batch = BatchEncoding::default();
        for mut row in rows {
            let fill = longest - row.len();
            let mut mask = vec![1; row.len()];
            if self.pad_left {
                row.splice(0..0, std::iter::repeat_n(pad, fill));
                mask.splice(0..0, std::iter::repeat_n(0, fill));
            } else {
                row.resize(longest, pad);
                mask.resize(longest, 0);
            }
            batch.input_ids.push(row);
            batch.attention_mask.push(mask);
        }
        Ok(batch)
    }

    /// HF `decode(ids, skip_special_tokens)` with the tokenizer's own `clean_up_tokenization_spaces` (false
    /// unless the checkpoint's config sets it): `[SPACE]` tokens come out literally as `"[SPACE]"`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TextError> {
        self.decode_with_cleanup(ids, skip_special_tokens, self.clean_up_tokenization_spaces)
    }

    /// HF `decode(ids, skip_special_tokens, clean_up_tokenization_spaces=clean_up)`; with `clean_up` the text
    /// goes through [`clean_up_tokenization`](Self::clean_up_tokenization).
    ///
    /// Tokens are concatenated, mapped back to bytes with the GPT-2 byte table and read as UTF-8 (invalid
    /// sequences become U+FFFD, Python's `errors="replace"`).
    pub fn decode_with_cleanup(
        &self,
        ids: &[u32],
        skip_special_tokens: bool,
        clean_up: bool,
    ) -> Result<String, TextError> {
        let mut bytes = Vec::new();
        for &id in ids {
            if skip_special_tokens && self.special_ids.contains(&id) {
                continue;
            }
            let token = self
                .added_by_id
                .get(&id)
                .or_else(|| self.decoder.get(&id))
                .ok_or(TextError::UnknownId {
                    id,
                    vocab_size: self.len,
                })?;
            for character in token.chars() {
                let byte =
                    self.byte_decoder
                        .get(&character)
                        .ok_or_else(|| TextError::NotByteLevel {
                            id,
                            token: token.clone(),
                            character,
                        })?;
                bytes.push(*byte);
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(if clean_up {
            self.clean_up_tokenization(&text)
        } else {
            text
        })
    }

    /// HF `ClvpTokenizer.clean_up_tokenization`: `[SPACE]` → space and `[STOP]` → space (each only when it is a
    /// known token), the unknown token removed, then `"   "` → `" "` and `"  "` → `" "` (one pass each, so
    /// longer runs of spaces are not fully squeezed: five spaces become two).
    pub fn clean_up_tokenization(&self, text: &str) -> String {
        let mut text = text.to_owned();
        if self.knows_space {
            text = text.replace(SPACE_TOKEN, " ");
        }
        if self.knows_stop {
            text = text.replace("[STOP]", " ");
        }
        if let Some(unk) = self.unk_token.as_deref().filter(|u| !u.is_empty()) {
            text = text.replace(unk, "");
        }
        text.replace("   ", " ").replace("  ", " ")
    }

    /// HF `len(tokenizer)`: the vocabulary plus the added tokens (256 for Tortoise: `<|endoftext|>` is id 255).
    pub fn vocab_size(&self) -> usize {
        self.len
    }

    /// The id of the beginning-of-sequence token ([`BOS_ID`] for Tortoise), if there is one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The id of the end-of-sequence token ([`EOS_ID`] for Tortoise), if there is one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// The id of the unknown token ([`UNK_ID`] for Tortoise), if there is one.
    pub fn unk_id(&self) -> Option<u32> {
        self.unk_id
    }

    /// The id of the padding token ([`PAD_ID`] for Tortoise), if there is one.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }

    /// Whether `token` is one of the special tokens (HF `all_special_tokens`).
    pub fn is_special_token(&self, token: &str) -> bool {
        self.special_tokens.contains(token)
    }

    /// The tokenizer's `clean_up_tokenization_spaces` setting, used by [`decode`](Self::decode).
    pub fn clean_up_tokenization_spaces(&self) -> bool {
        self.clean_up_tokenization_spaces
    }
}

fn read(path: &Path) -> Result<String, TextError> {
    std::fs::read_to_string(path).map_err(|source| TextError::Io {
        path: PathBuf::from(path),
        source,
    })
}
