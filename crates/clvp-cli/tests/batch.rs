//! `clvp batch`'s contract without a scheduler: results equal the single-file command's; any shard count
//! partitions the items; Slurm's and Kubernetes' variables pick the shard; a bad item is an error row and exit
//! status 2; a changed job is refused; a run killed at random points and rerun writes the same bytes as one
//! that was never killed, without recomputing what its checkpoints hold.

mod batch_common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use batch_common::*;

fn encode_args<'a>(manifest: &'a str, out: &'a str, model: &'a str) -> Vec<&'a str> {
    vec![
        "batch",
        "encodec-encode",
        "--manifest",
        manifest,
        "--output",
        out,
        "--model",
        model,
        "--bandwidth",
        "1.8",
    ]
}

#[test]
fn encode_equals_the_single_file_command_and_any_shard_count_partitions_the_items() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = corpus(dir.path(), 9);
    let model = fixture("encodec/tiny_24k");
    let m = manifest.to_str().unwrap();
    let one = dir.path().join("one");
    let mut args = encode_args(m, one.to_str().unwrap(), &model);
    args.extend(["--shard", "0", "--num-shards", "1"]);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let all = results(&one);
    let errs = errors(&one);
    assert_eq!(all.len(), 9);
    assert_eq!(
        errs.keys().collect::<Vec<_>>(),
        ["broken-cut", "broken-missing", "broken-text"]
    );
    assert!(errs["broken-missing"].contains("missing.wav"), "{errs:?}");
    assert!(!one.join(".partial").exists());
    // Each row's codes equal `clvp encodec encode`'s for the file.
    for (id, row) in &all {
        let wav = dir.path().join(format!("clips/{id}.wav"));
        let st = dir.path().join(format!("{id}.safetensors"));
        encode_file(&model, &wav, &st);
        let t = tensor_i64(&st, "audio_codes");
        let ours: Vec<i64> = row["audio_codes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|chunk| chunk.as_array().unwrap().iter())
            .flat_map(|q| q.as_array().unwrap().iter().map(|c| c.as_i64().unwrap()))
            .collect();
        assert_eq!(ours, t, "{id}");
    }
    // 3 shards, one process each: the same rows and errors, each item once.
    let three = dir.path().join("three");
    for i in 0..3 {
        let mut args = encode_args(m, three.to_str().unwrap(), &model);
        let (i, n) = (i.to_string(), "3".to_string());
        args.extend(["--shard", &i, "--num-shards", &n]);
        let o = run(&args);
        assert!(matches!(o.status.code(), Some(0 | 2)), "{}", stderr(&o));
    }
    assert_eq!(shard_files(&three, "").len(), 3);
    assert_eq!(results(&three), all);
    assert_eq!(errors(&three), errs);
    let total: usize = shard_files(&three, "").iter().map(|p| rows(p).len()).sum();
    assert_eq!(total, 9);
    // A finished shard is not run again.
    let mut args = encode_args(m, three.to_str().unwrap(), &model);
    args.extend(["--shard", "1", "--num-shards", "3"]);
    let o = run(&args);
    assert!(stderr(&o).contains("already done"), "{}", stderr(&o));
}

#[test]
fn slurm_and_kubernetes_variables_pick_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = corpus(dir.path(), 4);
    let model = fixture("encodec/tiny_24k");
    let out = dir.path().join("out");
    let args = encode_args(manifest.to_str().unwrap(), out.to_str().unwrap(), &model);
    let o = bin()
        .args(&args)
        .env("SLURM_ARRAY_TASK_ID", "6")
        .env("SLURM_ARRAY_TASK_MIN", "5")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 2)), "{}", stderr(&o));
    assert!(out.join("shard-00001-of-00002.parquet").is_file());
    let mut k8s = args.clone();
    k8s.extend(["--num-shards", "2"]);
    let o = bin()
        .args(&k8s)
        .env("JOB_COMPLETION_INDEX", "0")
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 2)), "{}", stderr(&o));
    assert!(out.join("shard-00000-of-00002.parquet").is_file());
    let o = bin()
        .args(&args)
        .env("JOB_COMPLETION_INDEX", "0")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("needs --num-shards"), "{}", stderr(&o));
}

#[test]
fn a_changed_option_model_manifest_or_shard_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = corpus(dir.path(), 2);
    // A copy of the checkpoint, to change its weights under the same name.
    let copy = dir.path().join("model");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(fixture("encodec/tiny_24k")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
    }
    let model = copy.to_str().unwrap().to_string();
    let out = dir.path().join("out");
    let (m, o_) = (manifest.to_str().unwrap(), out.to_str().unwrap());
    let o = run(&encode_args(m, o_, &model));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let before = tree(&out);
    let mut bw = encode_args(m, o_, &model);
    *bw.last_mut().unwrap() = "3.6";
    let mut shards = encode_args(m, o_, &model);
    shards.extend(["--num-shards", "2"]);
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, "{\"id\": \"x\", \"audio\": \"clips/c00.wav\"}\n").unwrap();
    let changed = [
        (bw, "options.bandwidth: was 1.8, now 3.6"),
        (shards, "num_shards: was 1, now 2"),
        (
            encode_args(other.to_str().unwrap(), o_, &model),
            "manifest.items: was 5, now 1",
        ),
    ];
    for (args, needle) in changed {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{needle}: {}", stderr(&o));
        assert!(stderr(&o).contains("another job"), "{}", stderr(&o));
    }
    // A directory that is not a batch output is not written into.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("shard-00000-of-00001.parquet"), "mine").unwrap();
    let o = run(&encode_args(m, foreign.to_str().unwrap(), &model));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not empty"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);
    assert_eq!(
        std::fs::read(foreign.join("shard-00000-of-00001.parquet")).unwrap(),
        b"mine"
    );
    // The same name, other weights: the fingerprint differs.
    let weights = copy.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let o = run(&encode_args(m, o_, &model));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("model.fingerprint: was"),
        "{}",
        stderr(&o)
    );
    // The directory is as it was.
    assert_eq!(tree(&out), before);
}

/// Run until done, killing the process after a random time each try but the last.
fn run_with_kills(args: &[&str], seed: u64, kills: usize, span_ms: u64) -> (usize, Vec<String>) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut killed = 0;
    let mut logs = Vec::new();
    for attempt in 0..=kills {
        let mut child = bin()
            .args(args)
            .env("CLVP_BATCH_ITEM_DELAY_MS", "15")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if attempt < kills {
            let after = Duration::from_millis(next() % span_ms);
            let start = Instant::now();
            while start.elapsed() < after {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                killed += 1;
            }
        }
        let o = child.wait_with_output().unwrap();
        logs.push(stderr(&o));
        if attempt == kills {
            assert!(matches!(o.status.code(), Some(0 | 2)), "{}", stderr(&o));
        }
    }
    (killed, logs)
}

/// The `D already done` of the lines `batch: shard I/N: T items, D already done, C to compute`.
fn already_done(log: &str) -> Option<(usize, usize, usize)> {
    let line = log.lines().find(|l| l.contains("already done,"))?;
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let n = nums.len();
    (n >= 3).then(|| (nums[n - 3], nums[n - 2], nums[n - 1]))
}

#[test]
fn killed_at_random_points_and_rerun_the_output_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = corpus(dir.path(), 10);
    let model = fixture("encodec/tiny_24k");
    let m = manifest.to_str().unwrap();
    let reference = dir.path().join("ref");
    let mut args = encode_args(m, reference.to_str().unwrap(), &model);
    args.extend(["--checkpoint-every", "2"]);
    let start = Instant::now();
    let o = run(&args);
    let span = start.elapsed().as_millis() as u64 + 50;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let want = tree(&reference);
    assert!(want.keys().any(|k| k == "shard-00000-of-00001.parquet"));
    let mut resumed = 0;
    for seed in 1..=6u64 {
        let out = dir.path().join(format!("run{seed}"));
        let mut args = encode_args(m, out.to_str().unwrap(), &model);
        // Another checkpoint interval: it must not change the bytes either.
        let every = (1 + seed % 3).to_string();
        args.extend(["--checkpoint-every", &every]);
        let (_, logs) = run_with_kills(&args, seed, 3, span);
        let got = tree(&out);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "seed {seed}"
        );
        for (k, v) in &want {
            assert!(&got[k] == v, "seed {seed}: {k} differs");
        }
        // A rerun computes only what no checkpoint holds.
        for log in &logs {
            if let Some((total, done, todo)) = already_done(log) {
                assert_eq!(total, done + todo, "{log}");
                if done > 0 {
                    resumed += 1;
                }
            }
        }
    }
    assert!(
        resumed > 0,
        "no run resumed from a checkpoint: the kills came too early or too late"
    );
}

#[test]
fn a_second_process_on_the_same_shard_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = corpus(dir.path(), 6);
    let model = fixture("encodec/tiny_24k");
    let out = dir.path().join("out");
    let args = encode_args(manifest.to_str().unwrap(), out.to_str().unwrap(), &model);
    let mut first = bin()
        .args(&args)
        .env("CLVP_BATCH_ITEM_DELAY_MS", "400")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".partial/shard-00000-of-00001/lock");
    let start = Instant::now();
    while !lock.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let o = run(&args);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("being run by another process"),
        "{}",
        stderr(&o)
    );
    assert!(Path::new(&out).join("_job.json").is_file());
}
