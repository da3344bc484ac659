//! P1, P2, P3 and P7 of `cargo xtask bench`: CLVP on a full-size random-init checkpoint (written once under
//! `target/bench/clvp/full` by `xtask/python/bench_clvp.py --make`), our `clvp_bench_worker` example against
//! the same script's timing of transformers 5.23; plus the achieved bandwidth / FLOP rates and the CPU-backend
//! comparison (flex vs ndarray).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::bench::{Row, Sample, Selection, THREADS, fmt_s, median, rounds, run_json};
use crate::repo_root;

/// Generated tokens of P1/P2, candidates of P2/P3, codes per candidate of P3 (as the worker and script use).
const NEW_TOKENS: f64 = 100.0;
const CANDIDATES: f64 = 16.0;
const RANK_CODES: f64 = 500.0;

/// `(workload, row name, counted runs per round, warm-up runs per round)`.
const WORKLOADS: [(&str, &str, usize, usize); 10] = [
    (
        "p1",
        "P1 CLVP generate, batch 1, 24 text tokens, 100 new tokens (greedy)",
        2,
        1,
    ),
    (
        "p1-bf16",
        "P1-bf16 P1 with our decoder weights in bf16 (PyTorch: P1 in f32)",
        2,
        1,
    ),
    (
        "p1-bf16pt",
        "P1-bf16pt P1 bf16 against bf16: our bf16 decoder weights, PyTorch's faster of model.to(bfloat16) and autocast",
        2,
        1,
    ),
    (
        "p1-int8",
        "P1-int8 P1 with our decoder weights in int8 (PyTorch: P1 in f32)",
        2,
        1,
    ),
    (
        "p1-int8pt",
        "P1-int8pt P1 int8 against int8: our int8 decoder weights, PyTorch's faster of quantize_dynamic on its decoder's Linear layers and on all of them (Conv1D rewritten as Linear)",
        2,
        1,
    ),
    (
        "p2",
        "P2 CLVP generate 16 candidates × 100 tokens (ultra_fast sampling)",
        2,
        1,
    ),
    (
        "p2-bf16pt",
        "P2-bf16pt P2 bf16 against bf16: our bf16 decoder weights, PyTorch's faster of model.to(bfloat16) and autocast",
        2,
        1,
    ),
    (
        "p3",
        "P3 CLVP rank 16 candidates × 500 codes against a text",
        2,
        1,
    ),
    (
        "p7",
        "P7 CLVP cold load of the full-size checkpoint to first use",
        2,
        1,
    ),
    (
        "p8",
        "P8 the main job end to end, cold process each side: `clvp generate` (load, a voice file, 16 candidates of ultra_fast sampling up to 100 tokens, rank) against transformers doing the same from Python",
        1,
        0,
    ),
];

/// P8's text: the README's first command.
const P8_TEXT: &str = "Hello world, this is a test.";

/// One P8 round: each side once as a fresh process, timed from spawn to exit by `bench_cold.py` (the first
/// round runs each once untimed before, so that neither side pays for a cold page cache).
fn p8_round(python: &Path, model: &Path, round: usize) -> Result<(Sample, Sample)> {
    let cold = repo_root().join("xtask/python/bench_cold.py");
    let dir = repo_root().join("target/bench/p8");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let warmup = if round == 0 { "1" } else { "0" };
    let clvp = crate::bench::build_bin("clvp-cli", "clvp")?;
    let ours = run_json(
        Command::new(python)
            .arg(&cold)
            .args(["--runs", "1", "--warmup", warmup, "--"])
            .arg(clvp)
            .args(["generate", "--model"])
            .arg(model)
            .args(["--text", P8_TEXT, "--voice"])
            .arg(voice())
            .arg("--output")
            .arg(dir.join("ours.safetensors"))
            .env("RAYON_NUM_THREADS", THREADS),
        "ours (p8, cold)",
    )?;
    let reference = run_json(
        Command::new(python)
            .arg(&cold)
            .args(["--runs", "1", "--warmup", warmup, "--"])
            .arg(python)
            .arg(repo_root().join("xtask/python/bench_clvp.py"))
            .args(["--workload", "p8", "--threads", THREADS, "--model"])
            .arg(model)
            .arg("--voice")
            .arg(voice())
            .arg("--output")
            .arg(dir.join("torch.safetensors")),
        "PyTorch/HF (p8, cold)",
    )?;
    Ok((ours, reference))
}

/// Where P8's time goes on our side: the worker's `p8-phases`, one cold pass, as a table.
fn p8_phases(worker: &Path, model: &Path) -> Result<String> {
    let out = Command::new(worker)
        .arg("p8-phases")
        .arg(model)
        .arg(voice())
        .args(["1", "0", "cpu"])
        .env("RAYON_NUM_THREADS", THREADS)
        .output()
        .context("starting the worker's p8-phases")?;
    if !out.status.success() {
        bail!("p8-phases failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    #[derive(Deserialize)]
    struct Phases {
        phases: Vec<(String, f64)>,
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("p8-phases printed no JSON")?;
    let p: Phases = serde_json::from_str(line).context("p8-phases' JSON")?;
    let total: f64 = p.phases.iter().map(|x| x.1).sum();
    let mut table = String::from(
        "- P8, where our time goes (the worker's `p8-phases`: the same steps in one process, each timed once):\n\n  \
         | phase | seconds | share |\n  |---|---|---|\n",
    );
    for (name, s) in &p.phases {
        table.push_str(&format!(
            "  | {name} | {s:.3} | {:.0} % |\n",
            100.0 * s / total
        ));
    }
    table.push_str(&format!("  | total | {total:.3} | |"));
    Ok(table)
}

fn voice() -> PathBuf {
    repo_root().join("fixtures/audio/speech_mid.wav")
}

/// The full-size random-init checkpoint, generated once.
pub(crate) fn model(python: &Path) -> Result<PathBuf> {
    let dir = repo_root().join("target/bench/clvp/full");
    if !dir.join("model.safetensors").exists() {
        eprintln!(
            "== generating the full-size random-init CLVP checkpoint in {}",
            dir.display()
        );
        crate::run(
            Command::new(python)
                .arg(repo_root().join("xtask/python/bench_clvp.py"))
                .arg("--make")
                .arg(&dir)
                .args(["--seed", "0"]),
        )
        .context("generating the CLVP checkpoint")?;
    }
    Ok(dir)
}

/// Build the Rust worker (flex, with ndarray compiled in for the backend comparison).
fn worker() -> Result<PathBuf> {
    crate::bench::build_example("clvp", &["ndarray"], "clvp_bench_worker")
}

fn ours(
    worker: &Path,
    workload: &str,
    model: &Path,
    runs: usize,
    warmup: usize,
    device: &str,
) -> Result<Sample> {
    run_json(
        Command::new(worker)
            .arg(workload)
            .arg(model)
            .arg(voice())
            .arg(runs.to_string())
            .arg(warmup.to_string())
            .arg(device)
            .env("RAYON_NUM_THREADS", THREADS),
        &format!("ours ({workload}, {device})"),
    )
}

/// The selected CLVP rows, and the throughput notes for P1–P3.
pub fn run(
    python: &Path,
    sel: &Selection,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let chosen: Vec<_> = WORKLOADS.iter().filter(|w| sel.wants(w.0)).collect();
    if chosen.is_empty() {
        return Ok(());
    }
    let model = model(python)?;
    let worker = worker()?;
    let script = repo_root().join("xtask/python/bench_clvp.py");
    let sizes = Sizes::read(&model)?;
    for &&(workload, name, runs, warmup) in &chosen {
        let mut row = Row {
            name,
            ours: Vec::new(),
            reference: Vec::new(),
        };
        let n = rounds(workload);
        for round in 0..n {
            eprintln!("== {workload} round {}/{n}", round + 1);
            if workload == "p8" {
                let (o, r) = p8_round(python, &model, round)?;
                row.ours.push(o);
                row.reference.push(r);
                continue;
            }
            row.ours.push(ours(
                &worker,
                our_workload(workload),
                &model,
                runs,
                warmup,
                "cpu",
            )?);
            let (py_workload, dtype) = python_workload(workload);
            row.reference.push(run_json(
                Command::new(python)
                    .arg(&script)
                    .args(["--workload", py_workload, "--dtype", dtype, "--model"])
                    .arg(&model)
                    .arg("--voice")
                    .arg(voice())
                    .args(["--runs", &runs.to_string(), "--warmup", &warmup.to_string()])
                    .args(["--threads", THREADS]),
                &format!("PyTorch/HF ({workload})"),
            )?);
        }
        let med = |v: &[Sample]| median(v.iter().map(|s| s.median_s).collect());
        let (a, b) = (med(&row.ours), med(&row.reference));
        match workload {
            "p1" => {
                let gb = sizes.decoder_matmul_bytes / 1e9;
                notes.push(format!(
                    "- P1: the decoder's matmul weights are {gb:.2} GB, read once per generated token: ours \
                     {:.1} GB/s, PyTorch {:.1} GB/s (the whole `generate` counted, so lower bounds; this machine \
                     streams ≈ 24 GB/s).",
                    gb * NEW_TOKENS / a,
                    gb * NEW_TOKENS / b
                ));
            }
            "p1-bf16" | "p1-bf16pt" | "p1-int8" | "p1-int8pt" => {
                let (gb, dtype) = if workload.starts_with("p1-bf16") {
                    (sizes.decoder_matmul_bytes / 2e9, "bf16")
                } else {
                    (sizes.decoder_matmul_bytes / 4e9, "int8")
                };
                notes.push(format!(
                    "- {}: the decoder's matmul weights are {gb:.2} GB in {dtype}: ours {:.1} GB/s.",
                    row_key(workload),
                    gb * NEW_TOKENS / a,
                ));
                if workload == "p1-int8"
                    && let Some(bf16) = rows.iter().find(|r| r.name.starts_with("P1-bf16 "))
                {
                    let ours_bf16 = med(&bf16.ours);
                    notes.push(format!(
                        "- P1-int8 against our own bf16 (P1-bf16, same run): {} against {}, {:.2}×.",
                        fmt_s(a),
                        fmt_s(ours_bf16),
                        ours_bf16 / a
                    ));
                }
            }
            "p2" => {
                let gflop = 2.0 * sizes.decoder_matmul_params * CANDIDATES * NEW_TOKENS / 1e9;
                notes.push(format!(
                    "- P2: ≈ {gflop:.0} GFLOP in the decoder's matmuls (2 · weights · 16 · 100, attention not \
                     counted): ours {:.1} GFLOP/s, PyTorch {:.1} GFLOP/s.",
                    gflop / a,
                    gflop / b
                ));
            }
            "p8" => notes.push(p8_phases(&worker, &model)?),
            "p3" => {
                let gflop = sizes.speech_encoder_flops(CANDIDATES, RANK_CODES) / 1e9;
                notes.push(format!(
                    "- P3: ≈ {gflop:.0} GFLOP in the speech encoder (matmuls + attention of 16 × 500 codes): \
                     ours {:.1} GFLOP/s, PyTorch {:.1} GFLOP/s.",
                    gflop / a,
                    gflop / b
                ));
            }
            _ => {}
        }
        rows.push(row);
    }
    Ok(())
}

/// The script's workload and dtype a row compares against: P1-bf16 against PyTorch's f32 P1, the `-bf16pt`
/// rows against PyTorch in bf16.
fn python_workload(workload: &str) -> (&str, &str) {
    match workload {
        "p1-bf16" => ("p1", "f32"),
        "p1-bf16pt" => ("p1", "bf16"),
        "p2-bf16pt" => ("p2", "bf16"),
        "p1-int8" => ("p1", "f32"),
        "p1-int8pt" => ("p1", "int8"),
        w => (w, "f32"),
    }
}

/// Our worker's workload for a row: the `-bf16pt` rows run our bf16 decoder, `-int8pt` our int8 one.
fn our_workload(workload: &str) -> &str {
    match workload {
        "p1-bf16pt" => "p1-bf16",
        "p2-bf16pt" => "p2-bf16",
        "p1-int8pt" => "p1-int8",
        w => w,
    }
}

/// A row's key as the table writes it (`p1-int8pt` → `P1-int8pt`).
fn row_key(workload: &str) -> String {
    let (p, rest) = workload.split_at(2.min(workload.len()));
    format!("{}{rest}", p.to_ascii_uppercase())
}

/// Rounds, counted runs and warm-up runs per backend in the backend comparison (a side table: fewer runs).
const BACKEND_ROUNDS: usize = 2;

/// The CPU-backend table: our flex and ndarray builds on the selected CLVP workloads (P1/P2 only when named:
/// ndarray's batch-1 decoding takes minutes).
pub fn backends(sel: &Selection) -> Result<String> {
    let python = crate::pyenv::ensure()?;
    let model = model(&python)?;
    let worker = worker()?;
    let mut table = format!(
        "## CPU backends\n\nOur release build on burn-flex (the default) and burn-ndarray, same worker and inputs, \
         {BACKEND_ROUNDS} alternating rounds of one warm-up and one counted run each.\n\n\
         | workload | flex median s | ndarray median s | flex speedup |\n|---|---|---|---|\n"
    );
    let mut any = false;
    for &(workload, name, _, _) in &WORKLOADS {
        let named = sel.0.is_some() && sel.wants(workload);
        // The `-bf16pt` / `-int8pt` rows differ from P1-bf16 / P1-int8 / P2 only on PyTorch's side.
        if !sel.wants(workload)
            || workload.ends_with("pt")
            || workload == "p8"
            || (matches!(workload, "p1" | "p1-bf16" | "p1-int8" | "p2") && !named)
        {
            continue;
        }
        any = true;
        let (mut flex, mut nd) = (Vec::new(), Vec::new());
        for round in 0..BACKEND_ROUNDS {
            eprintln!(
                "== backends {workload} round {}/{BACKEND_ROUNDS}",
                round + 1
            );
            flex.push(ours(&worker, workload, &model, 1, 1, "flex")?.median_s);
            nd.push(ours(&worker, workload, &model, 1, 1, "ndarray")?.median_s);
        }
        let (f, n) = (median(flex), median(nd));
        table.push_str(&format!(
            "| {name} | {} | {} | {:.2}× |\n",
            fmt_s(f),
            fmt_s(n),
            n / f
        ));
    }
    if !any {
        bail!("--backends: no CLVP workload selected (P1, P2, P3, P7)");
    }
    Ok(table)
}

#[derive(Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
}

#[derive(Deserialize)]
struct EncoderConfig {
    hidden_size: f64,
    num_hidden_layers: f64,
}

#[derive(Deserialize)]
struct ClvpConfig {
    speech_config: EncoderConfig,
}

/// Sizes read off the checkpoint: the safetensors header and config.json.
struct Sizes {
    decoder_matmul_params: f64,
    decoder_matmul_bytes: f64,
    speech_matmul_params: f64,
    speech: EncoderConfig,
}

impl Sizes {
    fn read(dir: &Path) -> Result<Self> {
        let file = dir.join("model.safetensors");
        let mut f =
            std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        let mut len = [0u8; 8];
        std::io::Read::read_exact(&mut f, &mut len)?;
        let mut header = vec![0u8; u64::from_le_bytes(len) as usize];
        std::io::Read::read_exact(&mut f, &mut header)?;
        let mut infos: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
            .with_context(|| format!("the header of {}", file.display()))?;
        infos.remove("__metadata__");
        // Matmul weights: the 2-D tensors that are not embedding tables (those are gathered, not multiplied).
        let (mut dp, mut db, mut sp) = (0f64, 0f64, 0f64);
        for (name, v) in infos {
            let info: TensorInfo = serde_json::from_value(v)?;
            if info.shape.len() != 2 || name.contains("embed") {
                continue;
            }
            let n = info.shape.iter().product::<usize>() as f64;
            let width = if info.dtype == "F32" { 4.0 } else { 2.0 };
            if name.starts_with("speech_decoder_model.") {
                dp += n;
                db += n * width;
            } else if name.starts_with("speech_encoder_model.") {
                sp += n;
            }
        }
        let cfg: ClvpConfig = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json")).context("reading config.json")?,
        )?;
        if dp == 0.0 || sp == 0.0 {
            bail!(
                "{}: no decoder or speech-encoder matmul weights found",
                file.display()
            );
        }
        Ok(Sizes {
            decoder_matmul_params: dp,
            decoder_matmul_bytes: db,
            speech_matmul_params: sp,
            speech: cfg.speech_config,
        })
    }

    /// Matmul FLOPs plus the attention's `QKᵀ` and `AV` (4 · T² · d per layer and row).
    fn speech_encoder_flops(&self, rows: f64, t: f64) -> f64 {
        let c = &self.speech;
        rows * (2.0 * self.speech_matmul_params * t
            + 4.0 * t * t * c.hidden_size * c.num_hidden_layers)
    }
}
