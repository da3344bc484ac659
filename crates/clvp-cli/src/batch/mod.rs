//! `clvp batch <job>`: a manifest of items in, a directory of Parquet shards out — sharded by Slurm array
//! tasks or Kubernetes Indexed Jobs, resumable, a bad item a row in an error table (docs/corpus.md).

mod jobs;
mod manifest;
mod progress;
pub mod shard;
mod store;
mod table;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::embed::ModelArgs;
use crate::encodec::ModelChoice;
use crate::generate::GenOptions;
use jobs::{Against, Job};
use manifest::Item;
use shard::Shard;
use store::ShardStore;
use table::Outcome;

/// The jobs.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Audio → EnCodec codes (columns audio_codes [chunks][codebooks][frames], audio_scales, audio_length).
    EncodecEncode(EncodeArgs),
    /// Codes files (.ecdc, .safetensors) → audio (columns audio_values [channels][samples], sample_rate).
    EncodecDecode(DecodeArgs),
    /// Audio → ClvpFeatureExtractor log-mel features (column input_features [80][frames]).
    Features(FeaturesArgs),
    /// CLVP similarity of `text` with `codes` (the dataset filter) or `audio` (column logits_per_text).
    Score(ScoreArgs),
    /// Text + a voice clip (`audio`) → candidates, scored and ranked (columns speech_ids, logits_per_text,
    /// ranking).
    Generate(GenerateArgs),
}

/// The options every job takes.
#[derive(clap::Args)]
pub struct Common {
    /// The items: a .jsonl, .csv or .parquet file with columns `id` and, as the job needs, `audio` (a path),
    /// `text`, `codes`; relative paths resolve against its folder.
    #[arg(long)]
    manifest: PathBuf,
    /// The output directory: shard-I-of-N.parquet results, _errors/, _records/, _job.json.
    #[arg(long)]
    output: PathBuf,
    /// This process's shard (0-based), with --num-shards. Default: SLURM_ARRAY_TASK_ID (minus
    /// SLURM_ARRAY_TASK_MIN without --num-shards), JOB_COMPLETION_INDEX, or 0.
    #[arg(long, requires = "num_shards")]
    shard: Option<usize>,
    /// The number of shards. Default: SLURM_ARRAY_TASK_COUNT, or 1. With a Slurm array it makes the array
    /// index the shard, so that `--array=2` re-runs shard 2.
    #[arg(long)]
    num_shards: Option<usize>,
    /// Write a checkpoint every K items (a rerun resumes after the last one).
    #[arg(long, default_value_t = 64, value_name = "K")]
    checkpoint_every: usize,
    /// Threads for the model (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Arguments of `clvp batch encodec-encode`.
#[derive(clap::Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    model: ModelChoice,
    /// Bandwidth in kbps.
    #[arg(short = 'b', long, default_value_t = 6.0)]
    bandwidth: f64,
}

/// Arguments of `clvp batch encodec-decode`.
#[derive(clap::Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    model: ModelChoice,
}

/// Arguments of `clvp batch features`.
#[derive(clap::Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    common: Common,
    /// A checkpoint directory whose preprocessor_config.json to use (default: Tortoise's mel_norms).
    #[arg(long)]
    model: Option<PathBuf>,
}

/// Arguments of `clvp batch score`.
#[derive(clap::Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    model: ModelArgs,
    /// What the text is scored against: the `codes` column (CLVP speech codes) or the `audio` column.
    #[arg(long, value_enum, default_value = "codes")]
    against: Against,
}

/// Arguments of `clvp batch generate`.
#[derive(clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    options: GenOptions,
}

/// A job as the runner sees it: its name, options and model (for `_job.json`), and how to build it.
struct Plan<'a> {
    name: &'static str,
    common: &'a Common,
    options: serde_json::Value,
    /// The model's `--model` (None: built in), fingerprinted once loaded (a hub model is then in the cache).
    model: Option<String>,
    build: Box<dyn FnOnce() -> Result<Box<dyn Job>> + 'a>,
}

/// Run a batch job; `Ok(true)` when some items failed (exit status 2).
pub fn run(command: &Command) -> Result<bool> {
    let plan = match command {
        Command::EncodecEncode(a) => Plan {
            name: "encodec-encode",
            common: &a.common,
            options: serde_json::json!({"bandwidth": a.bandwidth, "device": a.model.device}),
            model: Some(a.model.name().to_string()),
            build: Box::new(move || {
                let codec = a.model.load(a.model.name())?;
                codec.raw().config.check_bandwidth(Some(a.bandwidth))?;
                Ok(Box::new(jobs::Encode {
                    codec,
                    bandwidth: a.bandwidth,
                }) as Box<dyn Job>)
            }),
        },
        Command::EncodecDecode(a) => Plan {
            name: "encodec-decode",
            common: &a.common,
            options: serde_json::json!({"device": a.model.device}),
            model: Some(a.model.name().to_string()),
            build: Box::new(move || {
                let codec = a.model.load(a.model.name())?;
                Ok(Box::new(jobs::Decode { codec }) as Box<dyn Job>)
            }),
        },
        Command::Features(a) => Plan {
            name: "features",
            common: &a.common,
            options: serde_json::json!({}),
            model: a.model.as_ref().map(|d| d.to_string_lossy().into_owned()),
            build: Box::new(move || {
                let processor = match &a.model {
                    Some(dir) => clvp::ClvpProcessor::from_dir(dir)?,
                    None => clvp::ClvpProcessor::tortoise()?,
                };
                Ok(Box::new(jobs::FeatureJob { processor }) as Box<dyn Job>)
            }),
        },
        Command::Score(a) => Plan {
            name: "score",
            common: &a.common,
            options: serde_json::json!({
                "against": match a.against { Against::Codes => "codes", Against::Audio => "audio" },
                "device": a.model.device,
            }),
            model: Some(a.model.model.clone()),
            build: Box::new(move || {
                let clvp = a.model.load()?;
                Ok(Box::new(jobs::Score {
                    clvp,
                    against: a.against,
                }) as Box<dyn Job>)
            }),
        },
        Command::Generate(a) => {
            // The options are checked before anything is read.
            let config = crate::generate::config(&a.options)?;
            let mut options = a.options.describe();
            options["device"] = serde_json::json!(a.model.device);
            Plan {
                name: "generate",
                common: &a.common,
                options,
                model: Some(a.model.model.clone()),
                build: Box::new(move || {
                    let mut clvp = a.model.load()?;
                    let mut config = config;
                    a.options.apply(&mut clvp, &mut config)?;
                    Ok(Box::new(jobs::Generate { clvp, config }) as Box<dyn Job>)
                }),
            }
        }
    };
    execute(plan)
}

/// The model as `_job.json` names it: its source and a fingerprint of its files (a local directory, or a hub
/// id's snapshot in the cache, where loading it has put it), so that a changed checkpoint under the same name
/// is seen.
fn model_identity(source: Option<&str>) -> Result<serde_json::Value> {
    let Some(source) = source else {
        return Ok(serde_json::json!({"source": "tortoise mel_norms (built in)"}));
    };
    let path = Path::new(source);
    let listed: Vec<PathBuf> = std::env::split_paths(source).collect();
    let fingerprint = if path.is_file() {
        // A checkpoint file (Meta's `.th`, Tortoise's `.pth`): it and the files loaded with it.
        Some(fingerprint_files(crate::output::model_files(
            "--model", path,
        ))?)
    } else if !path.exists() && listed.len() > 1 && listed.iter().all(|p| p.is_file()) {
        // Tortoise's two files as a path list.
        let files = listed
            .iter()
            .flat_map(|p| crate::output::model_files("--model", p))
            .collect();
        Some(fingerprint_files(files)?)
    } else {
        let dir = if path.is_dir() {
            Some(PathBuf::from(source))
        } else {
            clvp::raw::hub::Checkpoint::from_pretrained(source, None)
                .ok()
                .and_then(|c| c.dir())
        };
        match &dir {
            Some(dir) => Some(fingerprint(dir)?),
            None => None,
        }
    };
    Ok(serde_json::json!({"source": source, "fingerprint": fingerprint}))
}

/// SHA-256 over the folder's files (not hidden), in name order: name, length, the first and last MiB.
fn fingerprint(dir: &Path) -> Result<String> {
    let names: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    hash_files(names)
}

/// [`fingerprint`] over the given files.
fn fingerprint_files(files: Vec<crate::output::Input>) -> Result<String> {
    let names = files
        .into_iter()
        .map(|i| {
            let name = i
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            (name, i.path)
        })
        .collect();
    hash_files(names)
}

fn hash_files(mut names: Vec<(String, PathBuf)>) -> Result<String> {
    const PART: u64 = 1 << 20;
    names.sort();
    let mut h = Sha256::new();
    let mut buf = Vec::new();
    for (name, path) in names {
        let mut f =
            std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
        let len = f.metadata()?.len();
        h.update(name.as_bytes());
        h.update([0]);
        h.update(len.to_le_bytes());
        buf.clear();
        (&mut f).take(PART).read_to_end(&mut buf)?;
        h.update(&buf);
        if len > 2 * PART {
            use std::io::{Seek, SeekFrom};
            f.seek(SeekFrom::End(-(PART as i64)))?;
            buf.clear();
            f.take(PART).read_to_end(&mut buf)?;
            h.update(&buf);
        } else if len > PART {
            buf.clear();
            f.read_to_end(&mut buf)?;
            h.update(&buf);
        }
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The slowdown for tests of kill-and-resume: `CLVP_BATCH_ITEM_DELAY_MS` milliseconds before each item.
fn item_delay() -> Option<Duration> {
    std::env::var("CLVP_BATCH_ITEM_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

fn execute(plan: Plan<'_>) -> Result<bool> {
    let common = plan.common;
    if common.checkpoint_every == 0 {
        bail!("--checkpoint-every must be at least 1");
    }
    if let Some(n) = common.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting the thread pool")?;
    }
    let shard = shard::choose(common.shard, common.num_shards, &shard::ProcessEnv)?;
    let manifest_bytes = std::fs::read(&common.manifest)
        .with_context(|| format!("reading the manifest {}", common.manifest.display()))?;
    let digest = hex(&Sha256::digest(&manifest_bytes));
    let items = manifest::read(&common.manifest, manifest_bytes, jobs::needs(plan.name))?;
    // The model loads first: a bad checkpoint stops the job before anything is written, and a hub model is in
    // the cache to be fingerprinted.
    let mut job = (plan.build)()?;
    let identity = serde_json::json!({
        "format": "clvp-batch/1",
        "job": plan.name,
        "options": plan.options,
        "model": model_identity(plan.model.as_deref())?,
        "manifest": {"sha256": digest, "items": items.len()},
        "num_shards": shard.count,
    });
    store::claim(&common.output, &identity)?;
    let mine: Vec<&Item> = items.iter().filter(|i| shard.holds(&i.id)).collect();
    let label = format!("shard {}/{}", shard.index, shard.count);
    let mut store = ShardStore::new(&common.output, &shard, job.columns());
    if store.is_done() {
        store.clean();
        let failed = recorded_failures(&common.output, &shard)?;
        eprintln!("batch: {label}: already done ({failed} failed item(s) on record)");
        return Ok(failed > 0);
    }
    let done = store.open()?;
    let pending: Vec<&Item> = mine
        .iter()
        .copied()
        .filter(|i| !done.contains(&i.id))
        .collect();
    eprintln!(
        "batch: {label}: {} items, {} already done, {} to compute",
        mine.len(),
        mine.len() - pending.len(),
        pending.len()
    );
    if !pending.is_empty() {
        let delay = item_delay();
        let mut progress = progress::Progress::new(&label, pending.len());
        let mut rows: Vec<(String, Outcome)> = Vec::with_capacity(common.checkpoint_every);
        for item in pending {
            if let Some(d) = delay {
                std::thread::sleep(d);
            }
            let (outcome, seconds) = match job.run(item) {
                Ok((cells, seconds)) => match table::check_row(job.columns(), &cells) {
                    Ok(()) => (Ok(cells), seconds),
                    Err(e) => (Err(crate::message(&e)), 0.0),
                },
                Err(e) => (Err(crate::message(&e)), 0.0),
            };
            if let Err(m) = &outcome {
                tracing::warn!(id = %item.id, "{m}");
            }
            progress.item(seconds, outcome.is_err());
            rows.push((item.id.clone(), outcome));
            if rows.len() >= common.checkpoint_every {
                store.checkpoint(&rows)?;
                rows.clear();
            }
        }
        store.checkpoint(&rows)?;
        progress.finish();
    }
    let mut record = identity;
    record["shard"] = serde_json::json!(shard.index);
    record["clvp_version"] = serde_json::json!(env!("CARGO_PKG_VERSION"));
    let (ok, failed) = store.finish(record)?;
    eprintln!("batch: {label}: done, {ok} ok, {failed} failed");
    Ok(failed > 0)
}

/// The failed count of a finished shard's record.
fn recorded_failures(dir: &Path, shard: &Shard) -> Result<u64> {
    let path = dir.join("_records").join(format!("{}.json", shard.stem()));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(v["counts"]["failed"].as_u64().unwrap_or(0))
}
