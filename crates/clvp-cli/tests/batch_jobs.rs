//! `clvp batch`'s other jobs against their single-file commands (or the library where there is none):
//! `features` ≡ `clvp features`, `encodec-decode` ≡ `clvp encodec decode`, `score` ≡ `Clvp::score` /
//! `Clvp::forward`, `generate` ≡ `clvp generate`; CSV and Parquet manifests ≡ JSONL; bad rows are error rows.

mod batch_common;

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use batch_common::*;
use serde_json::{Value, json};

fn flat_f32(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat_f32).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("not a number list: {other}"),
    }
}

fn flat_i64(v: &Value) -> Vec<i64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat_i64).collect(),
        Value::Number(n) => vec![n.as_i64().unwrap()],
        other => panic!("not an integer list: {other}"),
    }
}

#[test]
fn features_and_decode_equal_their_single_file_commands() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = corpus(dir.path(), 4);
    let m = manifest.to_str().unwrap();
    let out = dir.path().join("features");
    let o = run(&[
        "batch",
        "features",
        "--manifest",
        m,
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let rows = results(&out);
    assert_eq!(rows.len(), 4);
    assert_eq!(errors(&out).len(), 3);
    for (id, row) in &rows {
        let st = dir.path().join(format!("{id}.features.safetensors"));
        let wav = dir.path().join(format!("clips/{id}.wav"));
        let o = run(&[
            "features",
            "--audio",
            wav.to_str().unwrap(),
            "--output",
            st.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let want = tensor_f32(&st, "input_features");
        let got = flat_f32(&row["input_features"]);
        assert_eq!(got.len(), want.len(), "{id}");
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{id}"
        );
    }

    // Decode: .ecdc and .safetensors codes written by `clvp encodec encode`.
    let model = fixture("encodec/tiny_24k");
    let mut lines = Vec::new();
    for (i, ext) in ["ecdc", "safetensors"].iter().enumerate() {
        let wav = dir.path().join(format!("clips/c{i:02}.wav"));
        let codes = dir.path().join(format!("c{i}.{ext}"));
        encode_file(&model, &wav, &codes);
        lines.push(json!({"id": format!("d{i}"), "codes": format!("c{i}.{ext}")}));
    }
    lines.push(json!({"id": "d-bad", "codes": [1, 2, 3]}));
    lines.push(json!({"id": "d-missing", "codes": "nothing.ecdc"}));
    let dm = dir.path().join("decode.jsonl");
    std::fs::write(
        &dm,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let out = dir.path().join("decoded");
    let o = run(&[
        "batch",
        "encodec-decode",
        "--manifest",
        dm.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--model",
        &model,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let rows = results(&out);
    let errs = errors(&out);
    assert!(errs["d-bad"].contains("path of an .ecdc"), "{errs:?}");
    assert!(errs["d-missing"].contains("nothing.ecdc"), "{errs:?}");
    for (i, ext) in ["ecdc", "safetensors"].iter().enumerate() {
        let st = dir.path().join(format!("d{i}.safetensors"));
        let codes = dir.path().join(format!("c{i}.{ext}"));
        let o = run(&[
            "encodec",
            "decode",
            "--model",
            &model,
            codes.to_str().unwrap(),
            st.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let want = tensor_f32(&st, "audio_values");
        let got = flat_f32(&rows[&format!("d{i}")]["audio_values"]);
        assert_eq!(got.len(), want.len());
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "d{i}"
        );
        assert_eq!(rows[&format!("d{i}")]["sample_rate"], json!(24000));
    }
}

#[test]
fn score_equals_the_library_and_manifests_in_csv_and_parquet_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("clvp/tiny");
    let items = [
        ("s1", "hello world", vec![5i64, 9, 17, 33, 200]),
        (
            "s2",
            "a longer sentence to score",
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        ),
        ("s3", "hello world", vec![100, 101]),
    ];
    let mut jsonl = String::new();
    let mut csv = String::from("id,text,codes\n");
    for (id, text, codes) in &items {
        jsonl += &format!("{}\n", json!({"id": id, "text": text, "codes": codes}));
        let c: Vec<String> = codes.iter().map(i64::to_string).collect();
        csv += &format!("{id},{text},{}\n", c.join(" "));
    }
    jsonl += &format!(
        "{}\n",
        json!({"id": "bad-code", "text": "hi", "codes": [5, 99999]})
    );
    jsonl += &format!("{}\n", json!({"id": "no-text", "codes": [5]}));
    let jm = dir.path().join("m.jsonl");
    let cm = dir.path().join("m.csv");
    std::fs::write(&jm, &jsonl).unwrap();
    std::fs::write(&cm, &csv).unwrap();
    // The same items as Parquet, codes a list<int64> column.
    let pm = dir.path().join("m.parquet");
    let mut codes = ListBuilder::new(Int64Builder::new());
    for (_, _, c) in &items {
        codes.values().append_slice(c);
        codes.append(true);
    }
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(StringArray::from_iter_values(items.iter().map(|i| i.0))) as ArrayRef,
        ),
        (
            "text",
            Arc::new(StringArray::from_iter_values(items.iter().map(|i| i.1))) as ArrayRef,
        ),
        ("codes", Arc::new(codes.finish()) as ArrayRef),
    ])
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&pm).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let device = clvp::device::device("cpu").unwrap();
    let clvp = clvp::Clvp::from_pretrained(&model, &device).unwrap();
    let mut outs = Vec::new();
    for (name, manifest) in [("jsonl", &jm), ("csv", &cm), ("parquet", &pm)] {
        let out = dir.path().join(format!("score-{name}"));
        let o = run(&[
            "batch",
            "score",
            "--manifest",
            manifest.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--model",
            &model,
        ]);
        let want_code = if name == "jsonl" { 2 } else { 0 };
        assert_eq!(o.status.code(), Some(want_code), "{name}: {}", stderr(&o));
        let rows = results(&out);
        for (id, text, codes) in &items {
            let ids: Vec<u32> = codes.iter().map(|&c| c as u32).collect();
            let want = clvp.score(text, &[ids]).unwrap().logits_per_text[0];
            let got = rows[*id]["logits_per_text"].as_f64().unwrap() as f32;
            assert_eq!(got.to_bits(), want.to_bits(), "{name} {id}");
        }
        outs.push(rows);
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[1], outs[2]);
    let errs = errors(&dir.path().join("score-jsonl"));
    assert!(errs["no-text"].contains("no `text`"), "{errs:?}");
    assert!(errs["bad-code"].contains("99999"), "{errs:?}");

    // Against audio: HF's forward on the processor's tensors.
    let clip = dir.path().join("voice.wav");
    wav(&clip, 22050, 1, 1.5, 7);
    let am = dir.path().join("a.jsonl");
    std::fs::write(
        &am,
        format!(
            "{}\n",
            json!({"id": "v", "text": "hello world", "audio": "voice.wav"})
        ),
    )
    .unwrap();
    let out = dir.path().join("score-audio");
    let o = run(&[
        "batch",
        "score",
        "--against",
        "audio",
        "--manifest",
        am.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--model",
        &model,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let voice = clvp.processor.load_voice(&clip).unwrap();
    let p = clvp.processor.process(&["hello world"], &[&voice]).unwrap();
    let features = clvp::raw::audio::Features {
        input_features: p.input_features.unwrap(),
        shape: p.features_shape.unwrap(),
        attention_mask: Vec::new(),
        mask_shape: [0, 0],
    };
    let want = clvp
        .forward(
            &p.input_ids.unwrap(),
            p.attention_mask.as_deref(),
            &features,
        )
        .unwrap()
        .logits_per_text[0];
    let got = results(&out)["v"]["logits_per_text"].as_f64().unwrap() as f32;
    assert_eq!(got.to_bits(), want.to_bits());
}

#[test]
fn generate_equals_clvp_generate() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("clvp/tiny");
    let clip = dir.path().join("voice.wav");
    wav(&clip, 22050, 1, 2.0, 3);
    let texts = ["hello there", "the quick brown fox"];
    let lines: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{}\n",
                json!({"id": format!("g{i}"), "text": t, "audio": "voice.wav"})
            )
        })
        .collect();
    let m = dir.path().join("g.jsonl");
    std::fs::write(&m, lines).unwrap();
    let opts = ["--candidates", "3", "--seed", "11", "--max-new-tokens", "6"];
    let out = dir.path().join("gen");
    let mut args = vec![
        "batch",
        "generate",
        "--manifest",
        m.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--model",
        &model,
    ];
    args.extend(opts);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = results(&out);
    for (i, t) in texts.iter().enumerate() {
        let st = dir.path().join(format!("g{i}.safetensors"));
        let mut args = vec![
            "generate",
            "--model",
            &model,
            "--text",
            t,
            "--voice",
            clip.to_str().unwrap(),
            "--output",
            st.to_str().unwrap(),
            "--json",
        ];
        args.extend(opts);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let row = &rows[&format!("g{i}")];
        let ids = tensor_i64(&st, "speech_ids");
        assert_eq!(flat_i64(&row["speech_ids"]), ids);
        let logits = tensor_f32(&st, "logits_per_text");
        let got = flat_f32(&row["logits_per_text"]);
        assert!(
            got.iter()
                .zip(&logits)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        let ranking: Value = serde_json::from_slice(&o.stdout).unwrap();
        let want: Vec<i64> = ranking["ranking"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["candidate"].as_i64().unwrap())
            .collect();
        assert_eq!(flat_i64(&row["ranking"]), want);
    }
}
