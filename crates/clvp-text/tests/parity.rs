//! Parity with transformers 5.23 `ClvpTokenizer`, driven by `fixtures/text/tokenizer_cases.json` (written by
//! `xtask/python/ref_tokenizer.py`). Every failing case is collected and reported, not just the first.

use std::fmt::Write as _;

use clvp_text::{BatchEncoding, ClvpTokenizer};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    batches: Vec<Batch>,
    decode: Vec<Decode>,
    /// The HF test suite's toy vocabulary (`fixtures/text/toy`), with its own `Ġ`, `<unk>` and `[SPACE]`.
    toy: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    text: String,
    /// `tokenizer.normalizer(text)`, null for texts holding an added token.
    normalized: Option<String>,
    ids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct Batch {
    texts: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    attention_mask: Vec<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
struct Decode {
    ids: Vec<u32>,
    text: String,
    clean: String,
    #[serde(default)]
    skip_special: Option<String>,
}

fn fixture() -> Fixture {
    let path = clvp_parity::fixture_path("text/tokenizer_cases.json");
    match clvp_parity::read_json(&path) {
        Ok(f) => f,
        Err(e) => panic!("{e} (regenerate it with xtask/python/ref_tokenizer.py)"),
    }
}

fn tortoise() -> ClvpTokenizer {
    match ClvpTokenizer::tortoise() {
        Ok(t) => t,
        Err(e) => panic!("embedded tokenizer: {e}"),
    }
}

/// Every case of the fixture through `tokenizer`; the failures, one paragraph each.
fn encode_failures(tokenizer: &ClvpTokenizer, fixture: &Fixture) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, case) in fixture.cases.iter().enumerate() {
        let mut report = String::new();
        if let Some(expected) = &case.normalized {
            let got = tokenizer.normalize(&case.text);
            if &got != expected {
                let _ = write!(
                    report,
                    "\n  normalized: expected {expected:?}\n              got      {got:?}"
                );
            }
        }
        match tokenizer.encode(&case.text) {
            Ok(ids) if ids == case.ids => {}
            Ok(ids) => {
                let _ = write!(
                    report,
                    "\n  ids: expected {:?}\n       got      {ids:?}",
                    case.ids
                );
            }
            Err(e) => {
                let _ = write!(
                    report,
                    "\n  ids: expected {:?}\n       error    {e}",
                    case.ids
                );
            }
        }
        if !report.is_empty() {
            failures.push(format!("case {i} {:?}:{report}", case.text));
        }
    }
    failures
}

/// Record the group in the parity table (`cargo xtask parity-check`) and fail listing every mismatch.
fn assert_no_failures(what: &str, total: usize, failures: &[String]) {
    let mut rec = clvp_parity::Recorder::new("tokenizer");
    rec.record_exact(what, total, failures);
    rec.finish();
}

#[test]
fn encode_and_normalize_match_hf() {
    let fixture = fixture();
    let failures = encode_failures(&tortoise(), &fixture);
    assert_no_failures("cases", fixture.cases.len(), &failures);
}

#[test]
fn batches_match_hf() {
    let fixture = fixture();
    let tokenizer = tortoise();
    let mut failures = Vec::new();
    for (i, batch) in fixture.batches.iter().enumerate() {
        let texts: Vec<&str> = batch.texts.iter().map(String::as_str).collect();
        let expected = BatchEncoding {
            input_ids: batch.input_ids.clone(),
            attention_mask: batch.attention_mask.clone(),
        };
        match tokenizer.encode_batch(&texts) {
            Ok(got) if got == expected => {}
            Ok(got) => failures.push(format!(
                "batch {i} {texts:?}:\n  expected {expected:?}\n  got      {got:?}"
            )),
            Err(e) => failures.push(format!("batch {i} {texts:?}: {e}")),
        }
    }
    assert_no_failures("batches", fixture.batches.len(), &failures);
}

#[test]
fn decode_matches_hf() {
    let fixture = fixture();
    let tokenizer = tortoise();
    let mut failures = Vec::new();
    for (i, case) in fixture.decode.iter().enumerate() {
        let mut checks = vec![
            ("plain", false, false, Some(&case.text)),
            ("clean", false, true, Some(&case.clean)),
        ];
        checks.push(("skip_special", true, false, case.skip_special.as_ref()));
        for (name, skip, clean, expected) in checks {
            let Some(expected) = expected else { continue };
            match tokenizer.decode_with_cleanup(&case.ids, skip, clean) {
                Ok(got) if &got == expected => {}
                Ok(got) => failures.push(format!(
                    "decode {i} {name} {:?}: expected {expected:?}, got {got:?}",
                    case.ids
                )),
                Err(e) => failures.push(format!("decode {i} {name} {:?}: {e}", case.ids)),
            }
        }
        // `decode` uses the tokenizer's own setting, false for Tortoise.
        if tokenizer.decode(&case.ids, false).ok().as_ref() != Some(&case.text) {
            failures.push(format!("decode {i} default: expected {:?}", case.text));
        }
    }
    assert_no_failures("decodes", fixture.decode.len(), &failures);
}

/// The checkpoint directory written next to the fixture (hub layout) loads to the same tokenizer.
#[test]
fn checkpoint_dir_matches_hf() {
    let dir = clvp_parity::fixture_path("text/checkpoint");
    let tokenizer = match ClvpTokenizer::from_dir(&dir) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let fixture = fixture();
    assert_eq!(tokenizer.vocab_size(), 256);
    assert!(!tokenizer.clean_up_tokenization_spaces());
    let failures = encode_failures(&tokenizer, &fixture);
    assert_no_failures(
        "cases (from the checkpoint directory)",
        fixture.cases.len(),
        &failures,
    );
}

/// The toy tokenizer of HF's `test_tokenization_clvp.py` (`lower newer` → `l o w er [SPACE] n e w er`).
#[test]
fn toy_vocabulary_matches_hf() {
    let dir = clvp_parity::fixture_path("text/toy");
    let tokenizer = match ClvpTokenizer::from_dir(&dir) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let fixture = fixture();
    let toy = Fixture {
        cases: fixture.toy,
        batches: Vec::new(),
        decode: Vec::new(),
        toy: Vec::new(),
    };
    let failures = encode_failures(&tokenizer, &toy);
    assert_no_failures("toy vocabulary (HF test)", toy.cases.len(), &failures);
}
