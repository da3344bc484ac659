//! Hostile text through the `clvp` binary: empty, very long and over-the-limit texts, control characters,
//! files that are not UTF-8, a broken tokenizer vocabulary. See `common/mod.rs`.

mod common;

use std::path::Path;

use common::*;

#[test]
fn hostile_text_through_the_cli() {
    let d = Dirs::new();
    let i = |name: &str| d.i(name);
    let o = |name: &str| d.o(name);
    let tiny = fixture("clvp/tiny");
    let ok_wav = d.ok_wav();
    let okw = s(&ok_wav);

    let long_text = "a".repeat(100_000);
    let over_limit = "hello world ".repeat(20);
    std::fs::write(
        i("control.txt"),
        "tab\there\u{0}nul\u{1b}[31mesc\u{7f}del\r\n\u{202e}rtl\n",
    )
    .expect("write");
    std::fs::write(i("latin1.txt"), b"caf\xe9\n").expect("write");

    // A tokenizer vocabulary that is not an object.
    let m_vocab = copy_checkpoint("clvp/tiny", &d.root, "m-vocab");
    std::fs::write(m_vocab.join("vocab.json"), "[1, 2, 3]").expect("write");

    let cases = vec![
        embed(
            &d,
            "text empty",
            Path::new(&tiny),
            "",
            &["no tokens after normalisation"],
        ),
        embed(
            &d,
            "text of 100k characters",
            Path::new(&tiny),
            &long_text,
            &["100000 text tokens", "text encoder", "split the text"],
        ),
        succeeds(
            "text with control characters",
            &[
                "embed-text",
                "--model",
                &tiny,
                "--text",
                "a\u{1}b\u{1b}[0m\tc\rd\u{7f}\u{200b}",
                "--output",
                s(&o("control.safetensors")),
            ],
            &[&o("control.safetensors")],
            embeds_ok("text_embeds"),
        ),
        succeeds(
            "text file with NUL and control characters",
            &["tokenize", "--text-file", s(&i("control.txt"))],
            &[],
            None,
        ),
        fails(
            "text file not UTF-8",
            &["tokenize", "--text-file", s(&i("latin1.txt"))],
            &[],
            &["latin1.txt", "valid UTF-8"],
        ),
        generate(
            &d,
            "text over the token limit",
            &over_limit,
            okw,
            &["--greedy"],
            &["over the limit of 37", "max_text_tokens 40"],
        ),
        generate(
            &d,
            "text empty (generate)",
            "",
            okw,
            &["--greedy"],
            &["no tokens after normalisation"],
        ),
        generate(
            &d,
            "pad_to_max_mel_tokens huge",
            "Hi.",
            okw,
            &["--greedy", "--pad-to-max-mel-tokens", "1000000000000"],
            &["pad_to_max_mel_tokens", "speech encoder"],
        ),
        embed(
            &d,
            "tokenizer vocab.json not an object",
            &m_vocab,
            "Hi.",
            &["vocab.json"],
        ),
    ];
    run_cases(&cases, &d.logs, 9);
}
