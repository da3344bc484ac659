//! Hostile input through the library, where the CLI cannot reach: in-memory input, hand-built values, API
//! misuse. Each case fails with an `Err` whose message names the problem, or succeeds; never a panic.

mod common;

use clvp_parity::fixture_path;

use common::s;

type LibRun = Box<dyn Fn() -> Result<(), String>>;

fn err_text<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn hostile_input_through_the_library() {
    use clvp::raw::audio::{Audio, ClvpFeatureExtractor, decode_bytes};
    use clvp::raw::encodec::ecdc::{EcdcFile, EcdcSegment, read_ecdc, write_ecdc};
    use clvp::{AudioCodes, ChunkCodes, Clvp, Encodec, GenerationConfig, HfCodes};

    let device = clvp::device::device("cpu").expect("cpu");
    let tiny_dir = fixture_path("clvp/tiny");
    let clvp = std::rc::Rc::new(Clvp::from_pretrained(s(&tiny_dir), &device).expect("tiny CLVP"));
    let enc_dir = fixture_path("encodec/tiny_24k");
    let enc =
        std::rc::Rc::new(Encodec::from_pretrained(s(&enc_dir), &device).expect("tiny EnCodec"));
    let enc48_dir = fixture_path("encodec/tiny_48k");
    let enc48 = std::rc::Rc::new(
        Encodec::from_pretrained(s(&enc48_dir), &device).expect("tiny EnCodec 48k"),
    );
    let fe = ClvpFeatureExtractor::tortoise();
    let tok = clvp::raw::text::ClvpTokenizer::tortoise().expect("tokenizer");

    // (name, run, expected substrings of the error; None: must succeed)
    let mut cases: Vec<(&str, LibRun, Option<Vec<&str>>)> = Vec::new();
    let mut add =
        |name, run: LibRun, needles: Option<Vec<&'static str>>| cases.push((name, run, needles));

    add(
        "decode_bytes empty",
        Box::new(|| err_text(decode_bytes(Vec::new(), None))),
        Some(vec!["<memory>", "empty"]),
    );
    add(
        "decode_bytes random",
        Box::new(|| err_text(decode_bytes(vec![0x5a; 3000], Some("wav")))),
        Some(vec!["<memory>", "not a recognised audio file"]),
    );
    add(
        "Audio no channels",
        Box::new(|| err_text(Audio::new(22050, vec![]))),
        Some(vec!["no channels"]),
    );
    add(
        "Audio ragged channels",
        Box::new(|| err_text(Audio::new(22050, vec![vec![0.0; 3], vec![0.0; 2]]))),
        Some(vec!["channel 1 has 2 frames but channel 0 has 3"]),
    );
    add(
        "Audio 0 Hz",
        Box::new(|| err_text(Audio::mono(0, vec![0.0; 3]))),
        Some(vec!["0 Hz"]),
    );
    add(
        "resample a hand-built 0 Hz clip",
        Box::new(|| {
            let a = Audio {
                sample_rate: 0,
                channels: vec![vec![0.1; 100]],
            };
            err_text(a.resample(22050))
        }),
        Some(vec!["sample rates must be positive"]),
    );
    add(
        "resample to u32::MAX Hz",
        Box::new(|| {
            err_text(Audio::mono(22050, vec![0.1; 22050]).and_then(|a| a.resample(u32::MAX)))
        }),
        Some(vec!["too far apart"]),
    );
    add(
        "to_channels 6 to 2",
        Box::new(|| {
            err_text(Audio::new(22050, vec![vec![0.0; 4]; 6]).and_then(|a| a.to_channels(2)))
        }),
        Some(vec!["cannot convert 6 channels to 2"]),
    );
    let fe1 = fe.clone();
    add(
        "features of an empty batch",
        Box::new(move || err_text(fe1.extract(&[], Some(22050)))),
        Some(vec!["no clips"]),
    );
    let fe2 = fe.clone();
    add(
        "features of NaN",
        Box::new(move || err_text(fe2.extract(&[&[0.1, f32::NAN, 0.2]], Some(22050)))),
        Some(vec!["clip 0", "non-finite", "frame 1"]),
    );
    let fe3 = fe.clone();
    add(
        "features at the wrong rate",
        Box::new(move || err_text(fe3.extract(&[&[0.1; 100]], Some(16000)))),
        Some(vec!["expects 22050 Hz", "16000 Hz"]),
    );
    let fe4 = fe.clone();
    add(
        "features of an empty clip (zeros, as HF pads)",
        Box::new(move || {
            let f = fe4
                .extract(&[&[]], Some(22050))
                .map_err(|e| e.to_string())?;
            match f.input_features.iter().all(|v| v.is_finite()) {
                true => Ok(()),
                false => Err("non-finite features".into()),
            }
        }),
        None,
    );
    add(
        "preprocessor config with sampling_rate 0",
        Box::new(|| err_text(ClvpFeatureExtractor::from_json(r#"{"sampling_rate": 0}"#))),
        Some(vec!["sampling_rate"]),
    );
    add(
        "tokenizer decodes an unknown id",
        Box::new(move || err_text(tok.decode(&[999_999], false))),
        Some(vec!["unknown token id 999999"]),
    );
    add(
        "read_ecdc of 3 bytes",
        Box::new(|| err_text(read_ecdc(&mut &b"ECD"[..]))),
        Some(vec!["header needs 9 bytes, only 3"]),
    );
    add(
        "write_ecdc code out of range",
        Box::new(|| {
            let file = EcdcFile {
                model: "encodec_24khz".into(),
                audio_length: 320,
                num_codebooks: 2,
                segments: vec![EcdcSegment {
                    scale: None,
                    num_codebooks: 2,
                    codes: vec![5000, 1],
                }],
            };
            err_text(write_ecdc(&mut Vec::new(), &file))
        }),
        Some(vec!["code 5000 is out of range", "< 1024"]),
    );
    add(
        "write_ecdc wrong segment count",
        Box::new(|| {
            let file = EcdcFile {
                model: "encodec_24khz".into(),
                audio_length: 320,
                num_codebooks: 2,
                segments: vec![],
            };
            err_text(write_ecdc(&mut Vec::new(), &file))
        }),
        Some(vec!["has 1 segments, got 0"]),
    );
    add(
        "rank with width 0",
        Box::new(|| err_text(clvp::raw::rank::logits_per_text(&[1.0], &[1.0], 0, 1.0))),
        Some(vec!["rows of width 0"]),
    );
    add(
        "rank ragged rows",
        Box::new(|| {
            err_text(clvp::raw::rank::logits_per_text(
                &[1.0; 3], &[1.0; 4], 2, 1.0,
            ))
        }),
        Some(vec!["3 values are not rows of width 2"]),
    );
    add(
        "HF codes with batch 2",
        Box::new(|| {
            let hf = HfCodes {
                audio_codes: vec![0; 8],
                shape: [1, 2, 2, 2],
                audio_scales: None,
                last_frame_pad_length: 0,
                audio_length: 640,
            };
            err_text(AudioCodes::from_hf(&hf))
        }),
        Some(vec!["batch 2"]),
    );
    add(
        "HF codes shorter than their shape",
        Box::new(|| {
            let hf = HfCodes {
                audio_codes: vec![0; 3],
                shape: [1, 1, 2, 2],
                audio_scales: None,
                last_frame_pad_length: 0,
                audio_length: 640,
            };
            err_text(AudioCodes::from_hf(&hf))
        }),
        Some(vec!["3 values", "needs 4"]),
    );
    let e1 = enc.clone();
    add(
        "EnCodec chunk with too few codes",
        Box::new(move || {
            let codes = AudioCodes {
                chunks: vec![ChunkCodes {
                    codes: vec![1, 2, 3],
                    frames: 2,
                    scale: None,
                }],
                num_codebooks: 2,
                audio_length: 640,
            };
            err_text(e1.decode(&codes))
        }),
        Some(vec!["chunk 0 has 3 codes for 2 codebooks × 2 frames"]),
    );
    let e2 = enc48.clone();
    add(
        "EnCodec encode of hand-built ragged stereo",
        Box::new(move || {
            let a = Audio {
                sample_rate: 48000,
                channels: vec![vec![0.1; 640], vec![0.1; 320]],
            };
            err_text(e2.encode(&a, None))
        }),
        Some(vec!["channel 1 has 320 frames but channel 0 has 640"]),
    );
    let e3 = enc.clone();
    add(
        "EnCodec encode of hand-built audio without channels",
        Box::new(move || {
            let a = Audio {
                sample_rate: 24000,
                channels: vec![],
            };
            err_text(e3.encode(&a, None))
        }),
        Some(vec!["no channels"]),
    );
    let e4 = enc.clone();
    add(
        "EnCodec bandwidth NaN",
        Box::new(move || {
            let a = Audio::mono(24000, vec![0.1; 640]).map_err(|e| e.to_string())?;
            err_text(e4.encode(&a, Some(f64::NAN)))
        }),
        Some(vec!["bandwidth of NaN kbps", "0.9, 1.8, 3.6"]),
    );
    let c1 = clvp.clone();
    add(
        "generate without a voice",
        Box::new(move || {
            err_text(c1.generate("Hi.", &[] as &[Vec<f32>], &GenerationConfig::default()))
        }),
        Some(vec!["no voice clip"]),
    );
    let c2 = clvp.clone();
    add(
        "generate with a NaN voice",
        Box::new(move || {
            err_text(c2.generate("Hi.", &[vec![f32::NAN; 100]], &GenerationConfig::default()))
        }),
        Some(vec!["clip 0", "non-finite"]),
    );
    let c3 = clvp.clone();
    add(
        "generate with an empty voice clip",
        Box::new(move || {
            let gc = GenerationConfig {
                max_new_tokens: 3,
                ..GenerationConfig::default()
            };
            let out = c3
                .generate("Hi.", &[vec![]], &gc)
                .map_err(|e| e.to_string())?;
            match out.speech_ids.len() {
                1 => Ok(()),
                n => Err(format!("{n} candidates")),
            }
        }),
        None,
    );
    let c4 = clvp.clone();
    add(
        "generate with num_beams 0",
        Box::new(move || {
            let gc = GenerationConfig {
                num_beams: 0,
                ..GenerationConfig::default()
            };
            err_text(c4.generate("Hi.", &[vec![0.1; 100]], &gc))
        }),
        Some(vec!["num_beams must be at least 1"]),
    );
    let c5 = clvp.clone();
    add(
        "text rows of different lengths",
        Box::new(move || err_text(c5.get_text_features(&[vec![5, 6], vec![5]], None))),
        Some(vec!["different lengths"]),
    );
    let c6 = clvp.clone();
    add(
        "no speech rows",
        Box::new(move || err_text(c6.get_speech_features(&[]))),
        Some(vec!["no speech codes given"]),
    );
    let c7 = clvp.clone();
    add(
        "an empty text row",
        Box::new(move || err_text(c7.get_text_features(&[vec![]], None))),
        Some(vec!["an empty sequence of text tokens"]),
    );
    let c8 = clvp.clone();
    add(
        "a text token out of range",
        Box::new(move || err_text(c8.get_text_features(&[vec![5, 4000]], None))),
        Some(vec!["text token 4000", "0..256"]),
    );
    add(
        "unknown device",
        Box::new(|| err_text(clvp::device::device("tpu"))),
        Some(vec!["unknown device \"tpu\""]),
    );
    add(
        "empty model argument",
        Box::new(|| err_text(clvp::raw::hub::Checkpoint::from_pretrained("", None))),
        Some(vec!["not a local directory"]),
    );

    let mut failures = Vec::new();
    for (name, run, needles) in &cases {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        match (outcome, needles) {
            (Err(_), _) => failures.push(format!("[{name}] panicked")),
            (Ok(Ok(())), Some(_)) => {
                failures.push(format!("[{name}] succeeded, expected an error"))
            }
            (Ok(Err(e)), None) => failures.push(format!("[{name}] failed: {e}")),
            (Ok(Err(e)), Some(needles)) => {
                for n in needles {
                    if !e.contains(n) {
                        failures.push(format!("[{name}] message lacks {n:?}: {e}"));
                    }
                }
            }
            (Ok(Ok(())), None) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} library cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
