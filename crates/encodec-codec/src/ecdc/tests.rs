//! The container's unit tests: packing, the model table, reading and writing, every error.

use super::*;

const M24: EcdcModel = EcdcModel::ENCODEC_24KHZ;
const M48: EcdcModel = EcdcModel::ENCODEC_48KHZ;

/// Deterministic pseudo-random codes below `limit`.
fn codes(n: usize, seed: u64, limit: u16) -> Vec<u16> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % u64::from(limit)) as u16
        })
        .collect()
}

/// A valid file for `model`, `audio_length`, `k` codebooks.
fn file(model: EcdcModel, audio_length: usize, k: usize) -> EcdcFile {
    let segments = model
        .segments(audio_length)
        .iter()
        .enumerate()
        .map(|(i, s)| EcdcSegment {
            scale: model.normalize.then_some(0.01 + i as f32 * 0.25),
            num_codebooks: k,
            codes: codes(s.frames * k, i as u64 + audio_length as u64, 1024),
        })
        .collect();
    EcdcFile {
        model: model.name.to_string(),
        audio_length,
        num_codebooks: k,
        segments,
    }
}

fn to_bytes(f: &EcdcFile) -> Result<Vec<u8>, EcdcError> {
    let mut buf = Vec::new();
    write_ecdc(&mut buf, f)?;
    Ok(buf)
}

fn from_bytes(b: &[u8]) -> Result<EcdcFile, EcdcError> {
    read_ecdc(&mut &b[..])
}

/// A header with arbitrary JSON, no segments.
fn with_json(json: &[u8]) -> Vec<u8> {
    let mut b = b"ECDC\0".to_vec();
    b.extend_from_slice(&(json.len() as u32).to_be_bytes());
    b.extend_from_slice(json);
    b
}

fn read_err(b: &[u8]) -> EcdcError {
    match from_bytes(b) {
        Ok(f) => panic!("expected an error, read {f:?}"),
        Err(e) => e,
    }
}

fn write_err(f: &EcdcFile) -> EcdcError {
    let mut buf = Vec::new();
    match write_ecdc(&mut buf, f) {
        Ok(()) => panic!("expected an error"),
        Err(e) => {
            assert!(buf.is_empty(), "wrote {} bytes before failing", buf.len());
            e
        }
    }
}

#[test]
fn packer_known_bytes() {
    // 1 → bits 0..10; 2 → bits 10..20 = byte 1 bit 3 (0x08); flush writes the 4 leftover bits.
    assert_eq!(pack_codes(&[1, 2], 1, 10), [0x01, 0x08, 0x00]);
    // K = 2, T = 1: same stream, time-major.
    assert_eq!(pack_codes(&[1, 2], 2, 10), [0x01, 0x08, 0x00]);
    // K = 1, T = 2 with codes [1, 2] is also [1, 2]; K = 2, T = 2 reorders: [[1,2],[3,4]] → 1,3,2,4.
    assert_eq!(
        pack_codes(&[1, 2, 3, 4], 2, 10),
        pack_codes(&[1, 3, 2, 4], 1, 10)
    );
    // 1023, 0, 1023, 0: 40 bits, exactly 5 bytes, no flush byte.
    assert_eq!(
        pack_codes(&[1023, 0, 1023, 0], 1, 10),
        [0xff, 0x03, 0xf0, 0x3f, 0x00]
    );
    // 0x2AA = 1010101010b, then 0x155 = 0101010101b: bits LSB-first.
    assert_eq!(pack_codes(&[0x2aa, 0x155], 1, 10), [0xaa, 0x56, 0x05]);
    assert_eq!(pack_codes(&[], 1, 10), Vec::<u8>::new());
    assert_eq!(packed_len(1, 1, 10), 2);
    assert_eq!(packed_len(75, 8, 10), 750);
    assert_eq!(packed_len(3, 1, 10), 4);
}

#[test]
fn packer_round_trip() {
    for (frames, k) in [(1, 1), (1, 2), (3, 1), (7, 3), (75, 8), (16, 16), (5, 32)] {
        let c = codes(frames * k, (frames * 31 + k) as u64, 1024);
        let bytes = pack_codes(&c, k, 10);
        assert_eq!(bytes.len() as u64, packed_len(frames, k, 10));
        assert_eq!(unpack_codes(&bytes, frames, k, 10), c, "T={frames} K={k}");
    }
}

#[test]
fn header_bytes() {
    let f = file(M24, 24000, 8);
    let b = to_bytes(&f).unwrap();
    let json = br#"{"m": "encodec_24khz", "al": 24000, "nc": 8, "lm": false}"#;
    assert_eq!(json.len(), 57);
    assert_eq!(&b[..9], b"ECDC\x00\x00\x00\x00\x39");
    assert_eq!(&b[9..9 + 57], json);
    assert_eq!(b.len(), 9 + 57 + 750);

    let f = file(M48, 100_000, 4);
    let b = to_bytes(&f).unwrap();
    let json = br#"{"m": "encodec_48khz", "al": 100000, "nc": 4, "lm": false}"#;
    assert_eq!(&b[5..9], (json.len() as u32).to_be_bytes());
    assert_eq!(&b[9..9 + json.len()], json);
    // First segment: big-endian scale 0.01 then 150 × 4 codes in 750 bytes.
    let s = 9 + json.len();
    assert_eq!(&b[s..s + 4], 0.01f32.to_be_bytes());
    assert_eq!(&b[s..s + 4], [0x3c, 0x23, 0xd7, 0x0a]);
    assert_eq!(b.len(), s + (4 + 750) * 2 + 4 + 80);
}

#[test]
fn round_trips() {
    for (model, al, k) in [
        (M24, 1, 1),
        (M24, 320, 2),
        (M24, 6720, 8),
        (M24, 24000, 32),
        (M24, 24001, 4),
        (M48, 1, 2),
        (M48, 48000, 4),
        (M48, 96000, 8),
        (M48, 100_000, 16),
    ] {
        let f = file(model, al, k);
        let b = to_bytes(&f).unwrap();
        assert_eq!(from_bytes(&b).unwrap(), f, "{} {al}", model.name);
    }
}

#[test]
fn segment_layouts() {
    let seg = |offset, length, frames| SegmentLayout {
        offset,
        length,
        frames,
    };
    assert_eq!(M24.segments(24000), [seg(0, 24000, 75)]);
    assert_eq!(M24.segments(1), [seg(0, 1, 1)]);
    assert_eq!(M24.segments(321), [seg(0, 321, 2)]);
    assert_eq!(M24.segments(0), []);
    assert_eq!(
        M48.segments(100_000),
        [
            seg(0, 48000, 150),
            seg(47520, 48000, 150),
            seg(95040, 4960, 16)
        ]
    );
    assert_eq!(
        M48.segments(96000),
        [
            seg(0, 48000, 150),
            seg(47520, 48000, 150),
            seg(95040, 960, 3)
        ]
    );
    // One second at 48 kHz is two segments: the stride is 0.99 s.
    assert_eq!(
        M48.segments(48000),
        [seg(0, 48000, 150), seg(47520, 480, 2)]
    );
    assert_eq!(M48.segments(47520), [seg(0, 47520, 149)]);
    assert_eq!(M48.segments(0), []);
    // A hostile length does not loop forever or overflow.
    assert_eq!(M24.segments(usize::MAX).len(), 1);
    assert_eq!(M48.segment_iter(usize::MAX).take(3).count(), 3);
}

#[test]
fn python_float_frame_count_bug() {
    assert_eq!(
        M24.segments(6720),
        [SegmentLayout {
            offset: 0,
            length: 6720,
            frames: 21
        }]
    );
    assert_eq!(M24.python_frames(6720), 22);
    assert!(!M24.python_reads_back(6720));
    for bad in [13440, 16320, 26880] {
        assert!(!M24.python_reads_back(bad), "{bad}");
    }
    for good in [1, 320, 6400, 7040, 24000, 24001] {
        assert!(M24.python_reads_back(good), "{good}");
    }
    // 223 lengths below 60 s at 24 kHz (spec §9.2).
    let n = (1..=24000 * 60)
        .filter(|&l| !M24.python_reads_back(l))
        .count();
    assert_eq!(n, 223);
    // 48 kHz: full segments are fine, a 6720-sample last segment is not.
    assert!(M48.python_reads_back(100_000));
    assert!(!M48.python_reads_back(47520 + 6720));
    // Our reader reads a 6720-sample file with 21 frames.
    let f = file(M24, 6720, 8);
    let b = to_bytes(&f).unwrap();
    assert_eq!(b.len(), 9 + 56 + 210);
    assert_eq!(from_bytes(&b).unwrap().segments[0].frames(), 21);
}

#[test]
fn segment_accessors() {
    let s = EcdcSegment {
        scale: None,
        num_codebooks: 2,
        codes: vec![1, 2, 3, 4, 5, 6],
    };
    assert_eq!(s.frames(), 3);
    assert_eq!(s.code(1, 0), Some(4));
    assert_eq!(s.code(0, 2), Some(3));
    assert_eq!(s.code(2, 0), None);
    assert_eq!(s.code(0, 3), None);
    let empty = EcdcSegment {
        scale: None,
        num_codebooks: 0,
        codes: vec![1],
    };
    assert_eq!(empty.frames(), 0);
    assert_eq!(empty.code(0, 0), None);
}

#[test]
fn model_lookup() {
    assert_eq!(EcdcModel::by_name("encodec_24khz"), Some(M24));
    assert_eq!(EcdcModel::by_name("encodec_48khz"), Some(M48));
    assert_eq!(EcdcModel::by_name("encodec_32khz"), None);
    assert_eq!(M48.segment_stride, Some((0.99f64 * 48000.0) as usize));
    for m in EcdcModel::ALL {
        assert_eq!(
            m.frame_rate as usize,
            (m.sample_rate as usize).div_ceil(m.hop_length)
        );
    }
}

#[test]
fn read_errors_header() {
    let good = to_bytes(&file(M24, 640, 2)).unwrap();

    let e = read_err(b"RIFF\0\0\0\0WAVE");
    assert!(matches!(e, EcdcError::BadMagic { found } if &found == b"RIFF"));
    assert!(e.to_string().contains("b\"RIFF\""), "{e}");
    let e = read_err(b"\x00\xffAB");
    assert!(e.to_string().contains(r#"b"\x00\xffAB""#), "{e}");

    for n in 0..9 {
        let e = read_err(&good[..n]);
        assert!(
            matches!(e, EcdcError::TruncatedHeader { what: "header", expected: 9, available } if available == n as u64),
            "{n}: {e}"
        );
    }
    let mut v1 = good.clone();
    v1[4] = 1;
    assert!(matches!(read_err(&v1), EcdcError::UnsupportedVersion(1)));

    let e = read_err(&good[..30]);
    assert!(
        matches!(
            e,
            EcdcError::TruncatedHeader {
                what: "metadata JSON",
                expected: 55,
                available: 21
            }
        ),
        "{e}"
    );
    // A length of 4 GiB with a few bytes present: an error, not a 4 GiB allocation.
    let mut huge = b"ECDC\0\xff\xff\xff\xff".to_vec();
    huge.extend_from_slice(b"{}");
    assert!(matches!(
        read_err(&huge),
        EcdcError::TruncatedHeader {
            expected: 4294967295,
            available: 2,
            ..
        }
    ));

    assert!(matches!(
        read_err(&with_json(b"\xff{}")),
        EcdcError::HeaderNotUtf8(_)
    ));
    assert!(matches!(
        read_err(&with_json(b"{\"m\": ")),
        EcdcError::HeaderNotJson(_)
    ));
    assert!(matches!(
        read_err(&with_json(b"")),
        EcdcError::HeaderNotJson(_)
    ));
    let e = read_err(&with_json(b"[1, 2]"));
    assert!(
        matches!(&e, EcdcError::HeaderNotObject { found } if found == "[1,2]"),
        "{e}"
    );

    let full = |m: &str, al: &str, nc: &str, lm: &str| {
        with_json(format!(r#"{{"m": {m}, "al": {al}, "nc": {nc}, "lm": {lm}}}"#).as_bytes())
    };
    for (field, json) in [
        ("m", r#"{"al": 1, "nc": 1, "lm": false}"#),
        ("al", r#"{"m": "encodec_24khz", "nc": 1, "lm": false}"#),
        ("nc", r#"{"m": "encodec_24khz", "al": 1, "lm": false}"#),
        ("lm", r#"{"m": "encodec_24khz", "al": 1, "nc": 1}"#),
    ] {
        let e = read_err(&with_json(json.as_bytes()));
        assert!(
            matches!(e, EcdcError::MissingField { field: f } if f == field),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("\"{field}\"")), "{e}");
    }
    for (field, b) in [
        ("m", full("24", "1", "1", "false")),
        ("al", full("\"encodec_24khz\"", "1.0", "1", "false")),
        ("al", full("\"encodec_24khz\"", "-1", "1", "false")),
        ("al", full("\"encodec_24khz\"", "\"1\"", "1", "false")),
        ("nc", full("\"encodec_24khz\"", "1", "null", "false")),
        ("lm", full("\"encodec_24khz\"", "1", "1", "0")),
    ] {
        let e = read_err(&b);
        assert!(
            matches!(e, EcdcError::MistypedField { field: f, .. } if f == field),
            "{e}"
        );
    }
    let e = read_err(&full("\"x\"", &"9".repeat(100), "1", "false"));
    assert!(
        matches!(e, EcdcError::MistypedField { field: "al", .. }),
        "{e}"
    );
    assert!(e.to_string().len() < 200, "{e}");

    let e = read_err(&full("\"encodec_32khz\"", "1", "1", "false"));
    assert!(matches!(&e, EcdcError::UnknownModel { name } if name == "encodec_32khz"));
    assert!(
        e.to_string().contains("encodec_24khz, encodec_48khz"),
        "{e}"
    );

    let e = read_err(&full("\"encodec_24khz\"", "24000", "8", "true"));
    assert!(matches!(e, EcdcError::EntropyCodedNotSupported));
    assert_eq!(
        e.to_string(),
        "entropy-coded (lm) .ecdc files are not supported yet"
    );

    for (m, nc) in [
        ("encodec_24khz", 0),
        ("encodec_24khz", 33),
        ("encodec_48khz", 17),
    ] {
        let e = read_err(&full(&format!("\"{m}\""), "1", &nc.to_string(), "false"));
        assert!(
            matches!(e, EcdcError::BadNumCodebooks { num_codebooks, .. } if num_codebooks == nc),
            "{e}"
        );
    }
    let e = read_err(&full(
        "\"encodec_24khz\"",
        "1",
        "18446744073709551615",
        "false",
    ));
    assert!(matches!(e, EcdcError::BadNumCodebooks { .. }), "{e}");

    let e = read_err(&full("\"encodec_24khz\"", "0", "8", "false"));
    assert!(matches!(e, EcdcError::EmptyAudio), "{e}");

    // Extra keys and another key order are accepted, as in Python.
    let b = with_json(br#"{"lm": false, "nc": 1, "al": 1, "m": "encodec_24khz", "x": [1]}"#);
    let mut b = b;
    b.extend_from_slice(&[7, 0]);
    let f = from_bytes(&b).unwrap();
    assert_eq!(f.segments[0].codes, [7]);
}

#[test]
fn read_errors_segments() {
    // 24 kHz, 640 samples, K = 2: one segment of 2 frames = 40 bits = 5 bytes.
    let good = to_bytes(&file(M24, 640, 2)).unwrap();
    let head = good.len() - 5;
    for cut in 0..5 {
        let e = read_err(&good[..head + cut]);
        assert!(
            matches!(e, EcdcError::TruncatedSegment { segment: 0, part: SegmentPart::Codes, expected: 5, available } if available == cut as u64),
            "{cut}: {e}"
        );
    }
    let mut extra = good.clone();
    extra.extend_from_slice(&[0, 0, 0]);
    let e = read_err(&extra);
    assert!(matches!(e, EcdcError::TrailingBytes { count: 3 }), "{e}");

    // 48 kHz, 100000 samples, K = 4: segments of 4 + 750, 4 + 750, 4 + 80 bytes.
    let good = to_bytes(&file(M48, 100_000, 4)).unwrap();
    let head = good.len() - (754 * 2 + 84);
    let e = read_err(&good[..head + 2]);
    assert!(
        matches!(
            e,
            EcdcError::TruncatedSegment {
                segment: 0,
                part: SegmentPart::Scale,
                expected: 4,
                available: 2
            }
        ),
        "{e}"
    );
    let e = read_err(&good[..head + 754 + 754 + 4 + 79]);
    assert!(
        matches!(
            e,
            EcdcError::TruncatedSegment {
                segment: 2,
                part: SegmentPart::Codes,
                expected: 80,
                available: 79
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("segment 2 codes needs 80 bytes, only 79"),
        "{e}"
    );
    // NaN, infinite, negative and zero scales: the same rule as HF tensors' (`crate::is_valid_scale`).
    for bad in [f32::NAN, f32::INFINITY, -0.5, 0.0] {
        let mut b = good.clone();
        b[head + 754..head + 758].copy_from_slice(&bad.to_be_bytes());
        let e = read_err(&b);
        assert!(
            matches!(e, EcdcError::NonFiniteScale { segment: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("finite and positive"), "{e}");
    }

    // A header claiming a huge length fails at the first short segment without a huge allocation.
    for (m, k) in [("encodec_24khz", 32), ("encodec_48khz", 16)] {
        let json = format!(r#"{{"m": "{m}", "al": 18446744073709551615, "nc": {k}, "lm": false}}"#);
        let mut b = with_json(json.as_bytes());
        // 0x3f3f3f3f: a valid 48 kHz scale (0.75).
        b.extend_from_slice(&[0x3f; 100]);
        let e = read_err(&b);
        assert!(
            matches!(
                e,
                EcdcError::TruncatedSegment {
                    segment: 0,
                    part: SegmentPart::Codes,
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn hostile_bytes_never_panic() {
    for f in [file(M24, 700, 3), file(M48, 48_100, 2)] {
        let good = to_bytes(&f).unwrap();
        for cut in 0..good.len() {
            assert!(from_bytes(&good[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] ^= flip;
                let _ = from_bytes(&b);
            }
        }
    }
}

#[test]
fn read_io_error_is_reported() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let e = read_ecdc(&mut Failing).unwrap_err();
    assert!(matches!(e, EcdcError::Io(_)));
    assert!(e.to_string().contains("disk on fire"), "{e}");
}

#[test]
fn write_errors() {
    let mut f = file(M24, 640, 2);
    f.model = "encodec_32khz".into();
    assert!(matches!(write_err(&f), EcdcError::UnknownModel { .. }));

    for k in [0, 33] {
        let mut f = file(M24, 640, 2);
        f.num_codebooks = k;
        assert!(matches!(
            write_err(&f),
            EcdcError::BadNumCodebooks { max: 32, .. }
        ));
    }
    let mut f = file(M48, 640, 2);
    f.num_codebooks = 17;
    assert!(matches!(
        write_err(&f),
        EcdcError::BadNumCodebooks { max: 16, .. }
    ));

    let mut f = file(M24, 640, 2);
    f.audio_length = 0;
    assert!(matches!(write_err(&f), EcdcError::EmptyAudio));

    let mut f = file(M48, 100_000, 2);
    f.segments.pop();
    let e = write_err(&f);
    assert!(
        matches!(
            e,
            EcdcError::WrongSegmentCount {
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{e}"
    );

    let mut f = file(M48, 100_000, 2);
    f.segments[1].num_codebooks = 1;
    let e = write_err(&f);
    assert!(
        matches!(
            e,
            EcdcError::WrongCodebookCount {
                segment: 1,
                expected: 2,
                found: 1
            }
        ),
        "{e}"
    );

    let mut f = file(M48, 100_000, 2);
    f.segments[2].codes.push(0);
    let e = write_err(&f);
    assert!(
        matches!(
            e,
            EcdcError::WrongFrameCount {
                segment: 2,
                length: 4960,
                expected_frames: 16,
                num_codebooks: 2,
                expected_codes: 32,
                found_codes: 33
            }
        ),
        "{e}"
    );

    let mut f = file(M48, 100_000, 2);
    f.segments[2].codes[16 + 5] = 1024;
    let e = write_err(&f);
    assert!(
        matches!(
            e,
            EcdcError::CodeOutOfRange {
                segment: 2,
                codebook: 1,
                frame: 5,
                value: 1024,
                limit: 1024
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("segment 2, codebook 1, frame 5: code 1024"),
        "{e}"
    );

    let mut f = file(M48, 100_000, 2);
    f.segments[1].scale = None;
    assert!(matches!(
        write_err(&f),
        EcdcError::MissingScale { segment: 1, .. }
    ));

    let mut f = file(M24, 640, 2);
    f.segments[0].scale = Some(1.0);
    assert!(matches!(
        write_err(&f),
        EcdcError::UnexpectedScale { segment: 0, .. }
    ));

    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, 0.0] {
        let mut f = file(M48, 100_000, 2);
        f.segments[0].scale = Some(bad);
        assert!(matches!(
            write_err(&f),
            EcdcError::NonFiniteScale { segment: 0, .. }
        ));
    }

    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let e = write_ecdc(&mut Failing, &file(M24, 640, 2)).unwrap_err();
    assert!(matches!(e, EcdcError::Io(_)), "{e}");
}
