//! `clvp embed-text` / `clvp embed-speech`: `get_text_features` / `get_speech_features(speech_ids=…)`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clvp::{Clvp, DEFAULT_MODEL};

use crate::finite::{MODEL_CAUSE, ensure_finite};
use crate::output::{Dash, Input, Output, TensorOut, model_files, refuse_same, write_safetensors};
use crate::text::text_arg;

/// Options shared by the model commands.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Checkpoint: a local directory or a hub id `owner/name[@revision]` (HF cache, HF_HUB_OFFLINE honoured).
    /// Tortoise's own files: their folder, either `.pth` path (the other beside it), or both as `AR.pth:CLVP.pth`.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Backend device: cpu, ndarray, wgpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl ModelArgs {
    /// The files of the checkpoint, when it is a local directory (inputs an output must not overwrite).
    pub fn files(&self) -> Vec<Input> {
        let whole = Path::new(&self.model);
        if whole.exists() {
            return model_files("--model", whole);
        }
        // Tortoise's two files as a path list.
        std::env::split_paths(&self.model)
            .filter(|p| p.is_file())
            .flat_map(|p| model_files("--model", &p))
            .collect()
    }

    pub fn load(&self) -> Result<Clvp> {
        let device = clvp::device::device(&self.device)?;
        Clvp::from_pretrained(&self.model, &device)
            .with_context(|| format!("loading the model {}", self.model))
    }
}

/// Arguments of `clvp embed-text`.
#[derive(clap::Args)]
pub struct TextArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text.
    #[arg(
        long,
        required_unless_present = "text_file",
        conflicts_with = "text_file"
    )]
    text: Option<String>,
    /// A file holding the text (`-`: standard input, or a pipe such as `<(cmd)`; its final line break is
    /// dropped; at most 1 MiB).
    #[arg(long)]
    text_file: Option<PathBuf>,
    /// Output safetensors file with `text_embeds` (f32 [1, P], not normalised); `-`: standard output.
    #[arg(long)]
    output: PathBuf,
}

/// Arguments of `clvp embed-speech`.
#[derive(clap::Args)]
pub struct SpeechArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Speech codes, comma-separated (e.g. 5,9,17).
    #[arg(long)]
    codes: String,
    /// Output safetensors file with `speech_embeds` (f32 [1, P], not normalised); `-`: standard output.
    #[arg(long)]
    output: PathBuf,
}

/// `--output` of the embedding commands: a safetensors file or `-`, not one of the checkpoint's files nor
/// another input.
fn embeds_output(model: &ModelArgs, path: &Path, mut inputs: Vec<Input>) -> Result<Output> {
    let out = Output::new(
        "--output",
        path,
        Dash::Stdout {
            what: "safetensors",
        },
    )?;
    inputs.extend(model.files());
    refuse_same(&[&out], &inputs)?;
    Ok(out)
}

pub fn run_text(args: &TextArgs) -> Result<()> {
    let inputs = args
        .text_file
        .iter()
        .map(|p| Input::new("--text-file", p))
        .collect();
    let out = embeds_output(&args.model, &args.output, inputs)?;
    let text = text_arg(args.text.as_deref(), args.text_file.as_deref())?;
    let clvp = args.model.load()?;
    let e = clvp.embed_text(&text)?;
    ensure_finite("the text embedding", &e.values, MODEL_CAUSE)?;
    write_safetensors(
        &out,
        &[TensorOut::f32("text_embeds", e.shape.to_vec(), &e.values)],
    )
}

fn parse_codes(s: &str) -> Result<Vec<u32>> {
    let codes: Result<Vec<u32>> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .with_context(|| format!("--codes: {t:?} is not a non-negative integer"))
        })
        .collect();
    let codes = codes?;
    if codes.is_empty() {
        bail!("--codes is empty: give comma-separated speech codes, e.g. 5,9,17");
    }
    Ok(codes)
}

pub fn run_speech(args: &SpeechArgs) -> Result<()> {
    let out = embeds_output(&args.model, &args.output, Vec::new())?;
    let codes = parse_codes(&args.codes)?;
    let clvp = args.model.load()?;
    let e = clvp.get_speech_features(&[codes])?;
    ensure_finite("the speech embedding", &e.values, MODEL_CAUSE)?;
    write_safetensors(
        &out,
        &[TensorOut::f32("speech_embeds", e.shape.to_vec(), &e.values)],
    )
}
