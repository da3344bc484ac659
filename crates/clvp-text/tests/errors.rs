//! Error paths: every error names the file (or id) and the problem.

use std::path::Path;

use clvp_text::{ClvpTokenizer, TextError};

const VOCAB: &str = r#"{"[STOP]": 0, "[UNK]": 1, "[SPACE]": 2, "a": 3, "b": 4, "ab": 5}"#;
const MERGES: &str = "#version: 0.2\na b\n";

fn checkpoint(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    for (name, text) in files {
        if let Err(e) = std::fs::write(dir.path().join(name), text) {
            panic!("write {name}: {e}");
        }
    }
    dir
}

fn load_error(dir: &Path) -> String {
    match ClvpTokenizer::from_dir(dir) {
        Ok(_) => panic!("{} loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn load(dir: &Path) -> ClvpTokenizer {
    match ClvpTokenizer::from_dir(dir) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

#[test]
fn missing_vocab_names_the_file() {
    let dir = checkpoint(&[("merges.txt", MERGES)]);
    let message = load_error(dir.path());
    assert!(
        message.contains("vocab.json") && message.contains("cannot read"),
        "{message}"
    );
}

#[test]
fn missing_merges_names_the_file() {
    let dir = checkpoint(&[("vocab.json", VOCAB)]);
    let message = load_error(dir.path());
    assert!(
        message.contains("merges.txt") && message.contains("cannot read"),
        "{message}"
    );
}

#[test]
fn vocab_that_is_not_a_token_map_names_the_file() {
    let dir = checkpoint(&[("vocab.json", r#"{"a": "zero"}"#), ("merges.txt", MERGES)]);
    let message = load_error(dir.path());
    assert!(
        message.contains("vocab.json") && message.contains("invalid vocabulary"),
        "{message}"
    );
}

#[test]
fn bad_merges_line_names_the_file_and_line() {
    let dir = checkpoint(&[
        ("vocab.json", VOCAB),
        ("merges.txt", "#version: 0.2\na b\na b c\n"),
    ]);
    let message = load_error(dir.path());
    assert!(
        message.contains("merges.txt") && message.contains("line 3"),
        "{message}"
    );
}

#[test]
fn merge_outside_the_vocabulary_names_the_file_and_token() {
    let dir = checkpoint(&[
        ("vocab.json", VOCAB),
        ("merges.txt", "#version: 0.2\nb a\n"),
    ]);
    let message = load_error(dir.path());
    assert!(
        message.contains("merges.txt") && message.contains("ba"),
        "{message}"
    );
}

#[test]
fn non_json_config_names_the_file() {
    let dir = checkpoint(&[
        ("vocab.json", VOCAB),
        ("merges.txt", MERGES),
        ("tokenizer_config.json", "not json"),
    ]);
    let message = load_error(dir.path());
    assert!(
        message.contains("tokenizer_config.json") && message.contains("not valid JSON"),
        "{message}"
    );
}

#[test]
fn config_field_of_the_wrong_type_names_the_field() {
    let config = r#"{"clean_up_tokenization_spaces": "yes"}"#;
    let dir = checkpoint(&[
        ("vocab.json", VOCAB),
        ("merges.txt", MERGES),
        ("tokenizer_config.json", config),
    ]);
    let message = load_error(dir.path());
    assert!(
        message.contains("tokenizer_config.json")
            && message.contains("clean_up_tokenization_spaces"),
        "{message}"
    );
}

#[test]
fn unknown_id_on_decode_names_the_id_and_size() {
    let tokenizer = match ClvpTokenizer::tortoise() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let err = tokenizer.decode(&[14, 256], false);
    assert!(
        matches!(
            err,
            Err(TextError::UnknownId {
                id: 256,
                vocab_size: 256
            })
        ),
        "{err:?}"
    );
    let message = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("256"), "{message}");
    // A skipped special id is not looked at, an unknown one still is.
    assert!(tokenizer.decode(&[255, 14], true).is_ok());
    assert!(tokenizer.decode(&[u32::MAX], true).is_err());
}

#[test]
fn small_checkpoint_with_config() {
    let config = r#"{"clean_up_tokenization_spaces": true, "unknown_field": [1, 2], "bos_token": null,
        "pad_token": "[PAD]", "model_max_length": 1000000000000000019884624838656}"#;
    let dir = checkpoint(&[
        ("vocab.json", VOCAB),
        ("merges.txt", "a b"),
        ("tokenizer_config.json", config),
    ]);
    let tokenizer = load(dir.path());
    // No bos token; `[PAD]` is not in the vocabulary, so it is added after it: 6 + 1 tokens.
    assert_eq!(tokenizer.bos_id(), None);
    assert_eq!(tokenizer.pad_id(), Some(6));
    assert_eq!(tokenizer.vocab_size(), 7);
    assert!(tokenizer.clean_up_tokenization_spaces());
    // Header-less merges keep their first merge: "ab" merges; "c" is unknown.
    let ids = tokenizer.encode("ab c[PAD]").unwrap_or_default();
    assert_eq!(ids, [5, 2, 1, 6]);
    let batch = tokenizer.encode_batch(&["ab", "a a"]);
    let batch = batch.unwrap_or_default();
    assert_eq!(batch.input_ids, [vec![5, 6, 6], vec![3, 2, 3]]);
    assert_eq!(batch.attention_mask, [vec![1, 0, 0], vec![1, 1, 1]]);
    // Config-driven clean-up: `[SPACE]` → space, `[UNK]` dropped.
    assert_eq!(
        tokenizer.decode(&[5, 2, 1, 3], false).unwrap_or_default(),
        "ab a"
    );
}
