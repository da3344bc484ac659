//! Hostile audio through the `clvp` binary: missing, empty, random, truncated and non-finite files, odd
//! rates and channel counts (`features`, `generate --voice`, `encodec encode`). See `common/mod.rs`.

mod common;

use common::*;

#[test]
fn hostile_audio_through_the_cli() {
    let d = Dirs::new();
    let i = |name: &str| d.i(name);
    let o = |name: &str| d.o(name);
    let enc24 = fixture("encodec/tiny_24k");
    let enc48 = fixture("encodec/tiny_48k");

    d.ok_wav();
    std::fs::write(i("empty.wav"), b"").expect("write");
    let noise: Vec<u8> = (0..5000u32)
        .map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(i("noise.wav"), &noise).expect("write");
    let ok = std::fs::read(i("ok.wav")).expect("read");
    std::fs::write(i("cut.wav"), &ok[..ok.len() / 2]).expect("write");
    std::fs::write(i("header-only.wav"), &ok[..30]).expect("write");
    let mut nan = tone(1000, 1);
    nan[0] = f32::NAN;
    wav_f32(&i("nan.wav"), 22050, 1, &nan);
    let mut inf = tone(1000, 1);
    inf[500] = f32::INFINITY;
    wav_f32(&i("inf.wav"), 22050, 1, &inf);
    wav_f32(&i("zero.wav"), 22050, 1, &[]);
    wav_f32(&i("one.wav"), 22050, 1, &[0.25]);
    wav_f32(&i("eight-ch.wav"), 22050, 8, &tone(4000, 8));
    wav_f32(&i("8k.wav"), 8000, 1, &tone(8000, 1));
    wav_f32(&i("192k.wav"), 192_000, 1, &tone(96_000, 1));
    wav_f32(&i("1hz.wav"), 1, 1, &tone(2000, 1));
    // A 16-bit PCM header declaring 65535 channels (symphonia multiplied that in u16 and panicked).
    let mut many = ok[..44].to_vec();
    many[20..22].copy_from_slice(&1u16.to_le_bytes());
    many[22..24].copy_from_slice(&65535u16.to_le_bytes());
    many[34..36].copy_from_slice(&16u16.to_le_bytes());
    many.extend_from_slice(&[0; 64]);
    std::fs::write(i("65535-ch.wav"), &many).expect("write");

    let feat = |name: &'static str, file: &str, needles: &[&str]| {
        let p = i(file);
        let output = o(&format!("{name}.safetensors"));
        let mut needles = needles.to_vec();
        needles.push(file);
        Case {
            name,
            args: features_args(s(&p), &output),
            outputs: vec![output],
            expect: Expect::Fails(needles.iter().map(|x| x.to_string()).collect()),
        }
    };
    let feat_ok = |name: &'static str, file: &str| {
        let output = o(&format!("{name}.safetensors"));
        Case {
            name,
            args: features_args(s(&i(file)), &output),
            outputs: vec![output],
            expect: Expect::Succeeds(features_ok()),
        }
    };

    let cases = vec![
        feat("audio missing", "no-such-voice.wav", &["no such file"]),
        feat(
            "audio empty file",
            "empty.wav",
            &["the file is empty (0 bytes)"],
        ),
        feat(
            "audio random bytes",
            "noise.wav",
            &["not a recognised audio file"],
        ),
        feat(
            "audio truncated data",
            "cut.wav",
            &["truncated file", "of the 22050 frames"],
        ),
        feat(
            "audio truncated header",
            "header-only.wav",
            &["truncated file", "header"],
        ),
        feat(
            "audio NaN sample",
            "nan.wav",
            &["non-finite", "channel 0, frame 0"],
        ),
        feat("audio Inf sample", "inf.wav", &["non-finite", "frame 500"]),
        feat("audio zero samples", "zero.wav", &["zero length"]),
        feat(
            "audio 1 Hz",
            "1hz.wav",
            &["from 1 Hz to 22050 Hz", "too far apart"],
        ),
        feat(
            "audio 65535 channels",
            "65535-ch.wav",
            &["65535 channels of 16 bits"],
        ),
        feat(
            "audio is a directory",
            ".",
            &["cannot read the file", "directory"],
        ),
        feat_ok("audio one sample", "one.wav"),
        feat_ok("audio 8 channels", "eight-ch.wav"),
        feat_ok("audio 8 kHz", "8k.wav"),
        feat_ok("audio 192 kHz", "192k.wav"),
        generate(
            &d,
            "voice with NaN",
            "Hi.",
            s(&i("nan.wav")),
            &["--greedy"],
            &["loading voice", "nan.wav", "non-finite"],
        ),
        // `.safetensors`: the tiny 48 kHz model has no `.ecdc` layout, which `encode` reports before it reads
        // the audio.
        fails(
            "encodec 8 channels into a stereo model",
            &[
                "encodec",
                "encode",
                "--model",
                &enc48,
                "-b",
                "3.6",
                s(&i("eight-ch.wav")),
                s(&o("8ch.safetensors")),
            ],
            &[&o("8ch.safetensors")],
            &["eight-ch.wav", "cannot convert 8 channels to 2"],
        ),
        fails(
            "encodec zero samples",
            &[
                "encodec",
                "encode",
                "--model",
                &enc24,
                "-b",
                "3.6",
                s(&i("zero.wav")),
                s(&o("zero.ecdc")),
            ],
            &[&o("zero.ecdc")],
            &["zero.wav", "zero length"],
        ),
    ];
    run_cases(&cases, &d.logs, 18);
}
