//! `clvp tokenize`: text → CLVP token ids.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clvp::raw::text::ClvpTokenizer;

use crate::text::read_text_file;

/// Arguments of `clvp tokenize`.
#[derive(clap::Args)]
pub struct Args {
    /// Text to tokenize (repeatable).
    #[arg(long = "text", conflicts_with = "text_file")]
    texts: Vec<String>,
    /// A file with one text per line (`-`: standard input; a pipe such as `<(cmd)` works; at most 1 MiB).
    #[arg(long)]
    text_file: Option<PathBuf>,
    /// One JSON object per input: {"text": ..., "input_ids": [...]}.
    #[arg(long)]
    json: bool,
    /// A checkpoint directory with its own vocab.json/merges.txt (default: the embedded Tortoise vocabulary).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let tokenizer = match &args.model {
        Some(dir) => ClvpTokenizer::from_dir(dir)?,
        None => ClvpTokenizer::tortoise()?,
    };
    let texts: Vec<String> = match &args.text_file {
        Some(path) => read_text_file(path)?.lines().map(str::to_string).collect(),
        None => args.texts.clone(),
    };
    if texts.is_empty() {
        bail!("nothing to tokenize: give --text TEXT (repeatable) or --text-file FILE");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for text in &texts {
        let ids = tokenizer.encode(text)?;
        if args.json {
            let line = serde_json::json!({ "text": text, "input_ids": ids });
            writeln!(out, "{line}")?;
        } else {
            let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
            writeln!(out, "{}", ids.join(" "))?;
        }
    }
    Ok(())
}
