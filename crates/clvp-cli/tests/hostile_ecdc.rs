//! Hostile `.ecdc` files through `clvp encodec decode`: a wrong magic or version, cut headers and bodies,
//! broken metadata JSON, unknown models, entropy-coded files, out-of-range codes, trailing bytes; the intact
//! file decodes. See `common/mod.rs`.

mod common;

use common::*;

#[test]
fn hostile_ecdc_through_the_cli() {
    let d = Dirs::new();
    let i = |name: &str| d.i(name);
    let o = |name: &str| d.o(name);
    let enc24 = fixture("encodec/tiny_24k");

    // A good .ecdc from the CLI, then broken copies.
    let good_ecdc = i("good.ecdc");
    encode_good(&good_ecdc);
    let g = std::fs::read(&good_ecdc).expect("read");
    let meta_len = u32::from_be_bytes(g[5..9].try_into().expect("4 bytes")) as usize;
    let meta = g[9..9 + meta_len].to_vec();
    let body = g[9 + meta_len..].to_vec();
    assert_eq!(
        meta,
        br#"{"m": "encodec_24khz", "al": 4850, "nc": 8, "lm": false}"#
    );
    let ecdc_cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad-magic", [&b"RIFF"[..], &g[4..]].concat()),
        ("version", ecdc(1, &meta, &body)),
        ("empty", Vec::new()),
        ("short", g[..6].to_vec()),
        ("meta-cut", g[..9 + meta_len / 2].to_vec()),
        (
            "meta-len-huge",
            [&b"ECDC\x00\xff\xff\xff\xff"[..], &meta, &body].concat(),
        ),
        (
            "meta-not-json",
            ecdc(0, br#"{"m": "encodec_24khz", "#, &body),
        ),
        ("meta-not-utf8", ecdc(0, b"{\"m\": \"\xff\xfe\"}", &body)),
        ("meta-array", ecdc(0, b"[1,2,3]", &body)),
        (
            "meta-no-nc",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 4850, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-al-string",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": "4850", "nc": 8, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-model",
            ecdc(
                0,
                br#"{"m": "encodec_96khz", "al": 4850, "nc": 8, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-lm",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 4850, "nc": 8, "lm": true}"#,
                &body,
            ),
        ),
        (
            "meta-nc0",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 4850, "nc": 0, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-al0",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 0, "nc": 8, "lm": false}"#,
                &body,
            ),
        ),
        (
            "meta-al-huge",
            ecdc(
                0,
                br#"{"m": "encodec_24khz", "al": 1000000000000000, "nc": 8, "lm": false}"#,
                &body,
            ),
        ),
        ("body-cut", ecdc(0, &meta, &body[..body.len() / 2])),
        (
            "body-trailing",
            ecdc(0, &meta, &[&body[..], &[0; 7]].concat()),
        ),
        ("codes-1023", ecdc(0, &meta, &vec![0xff; body.len()])),
    ];
    for (name, bytes) in &ecdc_cases {
        std::fs::write(i(&format!("{name}.ecdc")), bytes).expect("write");
    }

    let cases = vec![
        decode(
            &d,
            "encodec code 1023 in .ecdc",
            "codes-1023.ecdc",
            &["code 1023", "0..64"],
        ),
        decode(
            &d,
            "ecdc bad magic",
            "bad-magic.ecdc",
            &["starts with b\"RIFF\""],
        ),
        decode(
            &d,
            "ecdc version 1",
            "version.ecdc",
            &["unsupported .ecdc version 1"],
        ),
        decode(
            &d,
            "ecdc empty",
            "empty.ecdc",
            &["header needs 9 bytes, only 0"],
        ),
        decode(
            &d,
            "ecdc 6 bytes",
            "short.ecdc",
            &["header needs 9 bytes, only 6"],
        ),
        decode(
            &d,
            "ecdc metadata cut",
            "meta-cut.ecdc",
            &["metadata JSON needs 56 bytes, only 28"],
        ),
        decode(
            &d,
            "ecdc metadata length huge",
            "meta-len-huge.ecdc",
            &["needs 4294967295 bytes"],
        ),
        decode(
            &d,
            "ecdc metadata not JSON",
            "meta-not-json.ecdc",
            &["metadata is not valid JSON"],
        ),
        decode(
            &d,
            "ecdc metadata not UTF-8",
            "meta-not-utf8.ecdc",
            &["metadata is not UTF-8"],
        ),
        decode(
            &d,
            "ecdc metadata an array",
            "meta-array.ecdc",
            &["not a JSON object"],
        ),
        decode(&d, "ecdc no nc", "meta-no-nc.ecdc", &["no \"nc\" field"]),
        decode(
            &d,
            "ecdc al a string",
            "meta-al-string.ecdc",
            &["field \"al\"", "\"4850\""],
        ),
        decode(
            &d,
            "ecdc unknown model",
            "meta-model.ecdc",
            &["unknown .ecdc model \"encodec_96khz\""],
        ),
        decode(&d, "ecdc entropy-coded", "meta-lm.ecdc", &["entropy-coded"]),
        decode(
            &d,
            "ecdc nc 0",
            "meta-nc0.ecdc",
            &["cannot have 0 codebooks"],
        ),
        decode(&d, "ecdc al 0", "meta-al0.ecdc", &["audio length is 0"]),
        decode(
            &d,
            "ecdc al huge",
            "meta-al-huge.ecdc",
            &["truncated .ecdc file", "segment 0 codes"],
        ),
        decode(
            &d,
            "ecdc body cut",
            "body-cut.ecdc",
            &["segment 0 codes needs 160 bytes, only 80"],
        ),
        decode(
            &d,
            "ecdc trailing bytes",
            "body-trailing.ecdc",
            &["7 trailing bytes"],
        ),
        succeeds(
            "ecdc intact decodes",
            &[
                "encodec",
                "decode",
                "--model",
                &enc24,
                s(&good_ecdc),
                s(&o("good.wav")),
            ],
            &[&o("good.wav")],
            wav_ok(4850),
        ),
    ];
    run_cases(&cases, &d.logs, 20);
}
