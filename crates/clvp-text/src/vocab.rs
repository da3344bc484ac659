//! Reading the tokenizer files: `vocab.json`, `merges.txt` and `tokenizer_config.json`.

use std::fmt;
use std::path::Path;

use serde::Deserializer;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

use crate::error::TextError;
use crate::normalizer::is_python_space;

/// The Tortoise `vocab.json` (255 tokens, ids 0–254), produced by `xtask/python/tortoise_vocab.py`.
pub(crate) const TORTOISE_VOCAB: &str = include_str!("../assets/vocab.json");
/// The Tortoise `merges.txt` (`#version` header and 215 merges), produced by `xtask/python/tortoise_vocab.py`.
pub(crate) const TORTOISE_MERGES: &str = include_str!("../assets/merges.txt");

/// `vocab.json` in file order (Python's `json.load` keeps the last of duplicate keys, and the id → token map is
/// built in file order, so the order matters for duplicates).
pub(crate) fn parse_vocab(path: &Path, text: &str) -> Result<Vec<(String, u32)>, TextError> {
    let err = |message: String| TextError::Vocab {
        path: path.into(),
        message,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let entries = de
        .deserialize_map(OrderedVocab)
        .map_err(|e| err(e.to_string()))?;
    de.end().map_err(|e| err(e.to_string()))?;
    if entries.is_empty() {
        return Err(err("the vocabulary is empty".into()));
    }
    Ok(entries)
}

/// Deserialises a JSON object of `token: id` pairs into a vector, keeping the file order.
struct OrderedVocab;

impl<'de> Visitor<'de> for OrderedVocab {
    type Value = Vec<(String, u32)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object mapping tokens to non-negative integer ids")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((token, id)) = map.next_entry::<String, u32>()? {
            entries.push((token, id));
        }
        Ok(entries)
    }
}

/// The merges of `merges.txt`, in rank order.
///
/// HF reads `text.split("\n")[1:-1]`: the first line is always skipped (it is the `#version` header) and so is
/// everything after the last newline. Here the first line is skipped only when it is a `#version` header, and a
/// last line without newline is kept, so header-less files and files without trailing newline keep all their
/// merges; for the files HF writes (header and trailing newline) both readings agree. Each line is split on
/// whitespace like Python's `str.split()`; blank lines are ignored (HF ignores them too), and a line that is not
/// exactly two symbols is an error.
pub(crate) fn parse_merges(path: &Path, text: &str) -> Result<Vec<(String, String)>, TextError> {
    let mut merges = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        if index == 0 && line.starts_with("#version") {
            continue;
        }
        let fields: Vec<&str> = line
            .split(is_python_space)
            .filter(|f| !f.is_empty())
            .collect();
        match fields.as_slice() {
            [] => {}
            [a, b] => merges.push(((*a).to_owned(), (*b).to_owned())),
            _ => {
                return Err(TextError::Merges {
                    path: path.into(),
                    message: format!(
                        "line {}: expected two space-separated symbols, found {} ({line:?})",
                        index + 1,
                        fields.len()
                    ),
                });
            }
        }
    }
    Ok(merges)
}

/// One added token of `tokenizer_config.json`'s `added_tokens_decoder` (HF `AddedToken` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddedTokenSpec {
    pub(crate) content: String,
    pub(crate) lstrip: bool,
    pub(crate) rstrip: bool,
    pub(crate) single_word: bool,
    pub(crate) special: bool,
}

impl AddedTokenSpec {
    /// A special token with HF's defaults (no stripping, not single-word).
    pub(crate) fn special(content: &str) -> Self {
        Self {
            content: content.to_owned(),
            lstrip: false,
            rstrip: false,
            single_word: false,
            special: true,
        }
    }
}

/// A named special token (`bos_token`, …) as the config gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum SpecialToken {
    /// Not in the config: the `ClvpTokenizer` constructor default applies.
    #[default]
    Default,
    /// `null` in the config: no such token.
    Null,
    /// The token's content.
    Given(String),
}

/// HF's `SPECIAL_TOKENS_ATTRIBUTES`, in order, with `ClvpTokenizer`'s defaults.
pub(crate) const NAMED_SPECIAL_TOKENS: [(&str, Option<&str>); 7] = [
    ("bos_token", Some("<|endoftext|>")),
    ("eos_token", Some("[STOP]")),
    ("unk_token", Some("[UNK]")),
    ("sep_token", None),
    ("pad_token", Some("[STOP]")),
    ("cls_token", None),
    ("mask_token", None),
];

/// The fields of `tokenizer_config.json` this crate uses; every other field is ignored.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenizerConfig {
    pub(crate) clean_up_tokenization_spaces: Option<bool>,
    /// `padding_side == "left"`.
    pub(crate) pad_left: bool,
    /// The named special tokens, in [`NAMED_SPECIAL_TOKENS`] order.
    pub(crate) named: [SpecialToken; 7],
    /// `extra_special_tokens` (or the older `additional_special_tokens`).
    pub(crate) extra_special: Vec<String>,
    /// `added_tokens_decoder`: explicit ids.
    pub(crate) added_tokens: Vec<(u32, AddedTokenSpec)>,
}

impl TokenizerConfig {
    /// The named special tokens' contents after defaults, in HF's order (`None` where there is no token).
    pub(crate) fn named_contents(&self) -> Vec<Option<String>> {
        NAMED_SPECIAL_TOKENS
            .iter()
            .zip(&self.named)
            .map(|(&(_, default), given)| match given {
                SpecialToken::Default => default.map(str::to_owned),
                SpecialToken::Null => None,
                SpecialToken::Given(s) => Some(s.clone()),
            })
            .collect()
    }
}

/// Parse `tokenizer_config.json` leniently: unknown fields are ignored.
pub(crate) fn parse_config(path: &Path, text: &str) -> Result<TokenizerConfig, TextError> {
    let err = |message: String| TextError::Config {
        path: path.into(),
        message,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(err("the top level is not a JSON object".into()));
    };
    let mut config = TokenizerConfig::default();
    if let Some(v) = map
        .get("clean_up_tokenization_spaces")
        .filter(|v| !v.is_null())
    {
        let flag = v.as_bool().ok_or_else(|| {
            err(format!(
                "clean_up_tokenization_spaces is {v}, not a boolean"
            ))
        })?;
        config.clean_up_tokenization_spaces = Some(flag);
    }
    match map.get("padding_side") {
        None | Some(Value::Null) => {}
        Some(Value::String(side)) if side == "right" => {}
        Some(Value::String(side)) if side == "left" => config.pad_left = true,
        Some(other) => {
            return Err(err(format!(
                "padding_side is {other}, not \"right\" or \"left\""
            )));
        }
    }
    for (slot, &(key, _)) in config.named.iter_mut().zip(&NAMED_SPECIAL_TOKENS) {
        *slot = match map.get(key) {
            None => SpecialToken::Default,
            Some(Value::Null) => SpecialToken::Null,
            Some(v) => SpecialToken::Given(
                added_token(v)
                    .map_err(|m| err(format!("{key}: {m}")))?
                    .content,
            ),
        };
    }
    let extra = map
        .get("extra_special_tokens")
        .or_else(|| map.get("additional_special_tokens"));
    match extra {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for v in list {
                let token =
                    added_token(v).map_err(|m| err(format!("extra_special_tokens: {m}")))?;
                config.extra_special.push(token.content);
            }
        }
        Some(Value::Object(named)) => {
            for v in named.values() {
                let token =
                    added_token(v).map_err(|m| err(format!("extra_special_tokens: {m}")))?;
                config.extra_special.push(token.content);
            }
        }
        Some(other) => {
            return Err(err(format!(
                "extra_special_tokens is {other}, not a list or an object"
            )));
        }
    }
    match map.get("added_tokens_decoder") {
        None | Some(Value::Null) => {}
        Some(Value::Object(decoder)) => {
            for (id, v) in decoder {
                let id: u32 = id
                    .parse()
                    .map_err(|_| err(format!("added_tokens_decoder: key {id:?} is not an id")))?;
                let token =
                    added_token(v).map_err(|m| err(format!("added_tokens_decoder[{id}]: {m}")))?;
                config.added_tokens.push((id, token));
            }
        }
        Some(other) => {
            return Err(err(format!(
                "added_tokens_decoder is {other}, not an object"
            )));
        }
    }
    Ok(config)
}

/// A token given as a string or as an `AddedToken` object (`{"content": …, "lstrip": …, …}`).
fn added_token(v: &Value) -> Result<AddedTokenSpec, String> {
    match v {
        Value::String(s) => Ok(AddedTokenSpec::special(s)),
        Value::Object(o) => {
            let content = o
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{v} has no string \"content\""))?;
            let flag =
                |key: &str, default: bool| o.get(key).and_then(Value::as_bool).unwrap_or(default);
            Ok(AddedTokenSpec {
                content: content.to_owned(),
                lstrip: flag("lstrip", false),
                rstrip: flag("rstrip", false),
                single_word: flag("single_word", false),
                special: flag("special", false),
            })
        }
        other => Err(format!("{other} is neither a string nor a token object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("dir/merges.txt")
    }

    #[test]
    fn embedded_assets_have_the_documented_sizes() {
        let vocab = parse_vocab(Path::new("vocab.json"), TORTOISE_VOCAB).map_err(|e| e.to_string());
        let merges = parse_merges(p(), TORTOISE_MERGES).map_err(|e| e.to_string());
        assert_eq!(vocab.map(|v| v.len()), Ok(255));
        assert_eq!(merges.map(|m| m.len()), Ok(215));
        assert!(TORTOISE_MERGES.starts_with("#version"));
    }

    #[test]
    fn merges_with_and_without_header() {
        let with = parse_merges(p(), "#version: 0.2\nt h\ni n\n").map_err(|e| e.to_string());
        let without = parse_merges(p(), "t h\r\ni n").map_err(|e| e.to_string());
        assert_eq!(with, without);
        assert_eq!(with.map(|m| m.len()), Ok(2));
    }

    #[test]
    fn malformed_merge_line_names_file_and_line() {
        let e = parse_merges(p(), "#version: 0.2\nt h\nabc\n")
            .map(|_| ())
            .map_err(|e| e.to_string());
        let message = e.err().unwrap_or_default();
        assert!(
            message.contains("dir/merges.txt") && message.contains("line 3"),
            "{message}"
        );
    }

    #[test]
    fn vocab_must_map_tokens_to_ids() {
        for bad in [
            "[1, 2]",
            "{\"a\": -1}",
            "{\"a\": \"x\"}",
            "{}",
            "{\"a\": 0} trailing",
            "not json",
        ] {
            let message = parse_vocab(Path::new("ckpt/vocab.json"), bad)
                .err()
                .map(|e| e.to_string());
            let message = message.unwrap_or_default();
            assert!(message.contains("ckpt/vocab.json"), "{bad}: {message}");
        }
    }

    #[test]
    fn config_is_lenient_but_typed() {
        let text = r#"{"clean_up_tokenization_spaces": true, "unk_token": "[UNK]", "bos_token": null,
            "pad_token": {"content": "[STOP]", "lstrip": false, "__type": "AddedToken"}, "model_max_length": 1e30,
            "added_tokens_decoder": {"255": {"content": "<|endoftext|>", "special": true, "rstrip": true}}}"#;
        let config = parse_config(Path::new("c.json"), text).map_err(|e| e.to_string());
        let config = config.unwrap_or_default();
        assert_eq!(config.clean_up_tokenization_spaces, Some(true));
        let named = config.named_contents();
        assert_eq!(named[0], None);
        assert_eq!(named[1].as_deref(), Some("[STOP]"));
        assert_eq!(named[2].as_deref(), Some("[UNK]"));
        assert_eq!(named[3], None);
        assert_eq!(named[4].as_deref(), Some("[STOP]"));
        assert_eq!(config.added_tokens.len(), 1);
        assert!(
            config
                .added_tokens
                .first()
                .is_some_and(|(id, t)| *id == 255 && t.rstrip)
        );
        let bad = parse_config(Path::new("x/tokenizer_config.json"), "{oops")
            .err()
            .map(|e| e.to_string());
        assert!(bad.unwrap_or_default().contains("x/tokenizer_config.json"));
    }
}
