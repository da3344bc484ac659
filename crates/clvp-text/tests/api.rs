//! The public constants agree with the embedded tokenizer; the tokenizer can be shared across threads.

use clvp_text::{BOS_ID, ClvpTokenizer, EOS_ID, PAD_ID, SPACE_ID, UNK_ID};

fn tortoise() -> ClvpTokenizer {
    match ClvpTokenizer::tortoise() {
        Ok(t) => t,
        Err(e) => panic!("embedded tokenizer: {e}"),
    }
}

#[test]
fn constants_match_the_embedded_tokenizer() {
    let tokenizer = tortoise();
    assert_eq!(tokenizer.vocab_size(), 256);
    assert_eq!(tokenizer.bos_id(), Some(BOS_ID));
    assert_eq!(tokenizer.eos_id(), Some(EOS_ID));
    assert_eq!(tokenizer.pad_id(), Some(PAD_ID));
    assert_eq!(tokenizer.unk_id(), Some(UNK_ID));
    assert!(!tokenizer.clean_up_tokenization_spaces());
    for (token, id) in [
        ("[STOP]", EOS_ID),
        ("[UNK]", UNK_ID),
        ("<|endoftext|>", BOS_ID),
    ] {
        assert!(tokenizer.is_special_token(token));
        assert_eq!(tokenizer.encode(token).ok(), Some(vec![id]));
    }
    assert!(!tokenizer.is_special_token("[SPACE]"));
    assert_eq!(
        tokenizer.decode(&[SPACE_ID], false).ok().as_deref(),
        Some("[SPACE]")
    );
    assert_eq!(
        tokenizer
            .decode_with_cleanup(&[SPACE_ID], false, true)
            .ok()
            .as_deref(),
        Some(" ")
    );
}

#[test]
fn empty_inputs() {
    let tokenizer = tortoise();
    assert_eq!(tokenizer.encode("").ok(), Some(vec![]));
    assert_eq!(tokenizer.decode(&[], true).ok().as_deref(), Some(""));
    let batch = tokenizer.encode_batch(&[]).ok().unwrap_or_default();
    assert!(batch.input_ids.is_empty() && batch.attention_mask.is_empty());
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ClvpTokenizer>();
    assert_send_sync::<clvp_text::TextError>();
}
