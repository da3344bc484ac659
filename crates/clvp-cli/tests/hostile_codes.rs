//! Hostile codes through the `clvp` binary: CLVP speech codes (`embed-speech --codes`) out of range, negative,
//! empty, too many; EnCodec codes in safetensors (`encodec decode`) negative, mistyped, mis-shaped, truncated.
//! The `.ecdc` container has its own file (`hostile_ecdc.rs`). See `common/mod.rs`.

mod common;

use common::*;

#[test]
fn hostile_codes_through_the_cli() {
    let d = Dirs::new();
    let i = |name: &str| d.i(name);
    let o = |name: &str| d.o(name);
    let tiny = fixture("clvp/tiny");

    // A good safetensors file of codes from the CLI, then broken copies.
    let good_codes = i("good.safetensors");
    encode_good(&good_codes);
    let codes = safetensors_entries(&good_codes);
    let codes_edit = |name: &str, f: &dyn Fn(&mut Vec<Entry>)| {
        let mut c = codes.clone();
        f(&mut c);
        std::fs::write(i(name), safetensors_file(&c, None)).expect("write");
    };
    let find = |c: &mut Vec<Entry>, k: &str| -> usize {
        c.iter().position(|e| e.0 == k).expect("codes tensor")
    };
    codes_edit("neg.safetensors", &|c| {
        let k = find(c, "audio_codes");
        c[k].3[..8].copy_from_slice(&(-3i64).to_le_bytes());
    });
    codes_edit("f64-codes.safetensors", &|c| {
        let k = find(c, "audio_codes");
        c[k].1 = "F64".into();
    });
    codes_edit("rank3.safetensors", &|c| {
        let k = find(c, "audio_codes");
        c[k].2.remove(1);
    });
    codes_edit("len-neg.safetensors", &|c| {
        let k = find(c, "audio_length");
        c[k].3 = (-1i64).to_le_bytes().to_vec();
    });
    codes_edit("pad-huge.safetensors", &|c| {
        let k = find(c, "last_frame_pad_length");
        c[k].3 = 1_000_000_000_000_000i64.to_le_bytes().to_vec();
    });
    codes_edit("no-frames.safetensors", &|c| {
        let k = find(c, "audio_codes");
        c[k].2[3] = 0;
        c[k].3.clear();
    });
    codes_edit("no-codes.safetensors", &|c| {
        c.retain(|e| e.0 != "audio_codes")
    });
    let gc = std::fs::read(&good_codes).expect("read");
    std::fs::write(i("cut.safetensors"), &gc[..gc.len() - 100]).expect("write");
    let many_codes = vec!["5"; 16_385].join(",");

    let cases = vec![
        fails(
            "speech code out of range",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                "5,9,999999",
                "--output",
                s(&o("c1.safetensors")),
            ],
            &[&o("c1.safetensors")],
            &["speech code 999999", "0..260"],
        ),
        fails(
            "speech code negative",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                "5,-1",
                "--output",
                s(&o("c2.safetensors")),
            ],
            &[&o("c2.safetensors")],
            &["\"-1\"", "not a non-negative integer"],
        ),
        fails(
            "speech code past u32",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                "99999999999999999999",
                "--output",
                s(&o("c3.safetensors")),
            ],
            &[&o("c3.safetensors")],
            &["99999999999999999999", "too large"],
        ),
        fails(
            "speech codes empty",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                ",",
                "--output",
                s(&o("c4.safetensors")),
            ],
            &[&o("c4.safetensors")],
            &["--codes is empty"],
        ),
        fails(
            "speech codes too many",
            &[
                "embed-speech",
                "--model",
                &tiny,
                "--codes",
                &many_codes,
                "--output",
                s(&o("c5.safetensors")),
            ],
            &[&o("c5.safetensors")],
            &["16385 speech codes", "speech encoder"],
        ),
        decode(
            &d,
            "encodec code negative",
            "neg.safetensors",
            &["code -3", "0..64"],
        ),
        decode(
            &d,
            "encodec codes F64",
            "f64-codes.safetensors",
            &["audio_codes", "F64, expected I64"],
        ),
        decode(
            &d,
            "encodec codes rank 3",
            "rank3.safetensors",
            &["expected [chunks, 1, n_q, T]"],
        ),
        decode(
            &d,
            "encodec audio_length -1",
            "len-neg.safetensors",
            &["audio_length", "found -1"],
        ),
        decode(
            &d,
            "encodec pad huge",
            "pad-huge.safetensors",
            &["last_frame_pad_length", "leaves none"],
        ),
        decode(
            &d,
            "encodec zero frames",
            "no-frames.safetensors",
            &["are empty"],
        ),
        decode(
            &d,
            "encodec no audio_codes",
            "no-codes.safetensors",
            &["no tensor `audio_codes`"],
        ),
        decode(
            &d,
            "encodec codes truncated",
            "cut.safetensors",
            &["not a safetensors file"],
        ),
    ];
    run_cases(&cases, &d.logs, 13);
}
