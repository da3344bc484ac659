//! Normaliser + byte-level BPE on arbitrary UTF-8 (lossy): encoding never panics; decoding what was encoded
//! never panics either.
#![no_main]

use std::sync::OnceLock;

use clvp_text::ClvpTokenizer;
use libfuzzer_sys::fuzz_target;

static TOKENIZER: OnceLock<ClvpTokenizer> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let tok = TOKENIZER.get_or_init(|| ClvpTokenizer::tortoise().expect("embedded vocabulary"));
    let text = String::from_utf8_lossy(data);
    let _ = tok.normalize(&text);
    if let Ok(ids) = tok.encode(&text) {
        let _ = tok.decode(&ids, false);
        let _ = tok.decode(&ids, true);
    }
    let _ = tok.encode_batch(&[&text, "Hi."]);
});
