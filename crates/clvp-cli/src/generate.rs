//! `clvp generate`: text + voice clip(s) → speech-code candidates, scored and ranked by CLVP.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clvp::raw::nn::NnError;
use clvp::{
    Clvp, ClvpError, EarlyStopping, GenerationConfig, PrefillPositions, Preset, WeightPrecision,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::embed::ModelArgs;
use crate::finite::{MODEL_CAUSE, ensure_finite};
use crate::output::{
    Dash, Input, Output, TensorOut, refuse_same, refuse_terminal_stdin, write_safetensors,
};
use crate::text::text_arg;

/// Prefill positions, as on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Prefill {
    /// Tortoise (conditioning unchanged; the intended behaviour).
    Tortoise,
    /// transformers 5.23 as it is (position 0 broadcast over the prefix).
    Hf523,
    /// Tortoise without its key/value cache (`TextToSpeech(kv_cache=False)`): codes at positions 1, 2, ...
    TortoiseNoCache,
}

/// The speech decoder's weight precision, as on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DecoderWeights {
    /// f32, as the checkpoint holds them.
    F32,
    /// bfloat16 on the CPU backends: half the memory, faster decoding, logits within about 1e-3.
    Bf16,
    /// int8 with a scale per output channel on the CPU backends (weight-only): a quarter of the
    /// memory, the fastest decoding, the largest error (docs/parity.md).
    Int8,
}

/// Beam-search early stopping, as on the command line (HF's `early_stopping`).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EarlyStop {
    /// HF's default: stop once the best running beam cannot beat the worst finished one.
    False,
    /// Stop as soon as there are as many finished hypotheses as beams.
    True,
    /// Canonical beam search: with a positive length penalty, bound the running beams at max length.
    Never,
}

/// The generation options of `clvp generate` (and `clvp batch generate`).
#[derive(clap::Args)]
pub struct GenOptions {
    /// Tortoise preset: ultra_fast (16 candidates), fast (96), standard (256), high_quality (256).
    #[arg(long)]
    preset: Option<String>,
    /// Number of candidates (overrides the preset); with --beams the returned beams
    /// (num_return_sequences, at most the number of beams; default all of them).
    #[arg(long)]
    candidates: Option<usize>,
    /// Greedy decoding (one candidate) instead of sampling.
    #[arg(long, conflicts_with = "seed")]
    greedy: bool,
    /// Beam search with this many beams (transformers' num_beams; deterministic, no repetition penalty).
    #[arg(long, conflicts_with_all = ["greedy", "seed"])]
    beams: Option<usize>,
    /// Beam search: finished hypotheses score log-prob / length^P (default 1.0).
    #[arg(long, requires = "beams", allow_negative_numbers = true)]
    length_penalty: Option<f64>,
    /// Beam search: when to stop (transformers' early_stopping; default false).
    #[arg(long, value_enum, requires = "beams")]
    early_stopping: Option<EarlyStop>,
    /// Pad (or crop) the generated sequences, start token included, to this length with the stop token before
    /// the fix-up and the speech encoder (transformers' pad_to_max_mel_tokens; Tortoise: 501).
    #[arg(long)]
    pad_to_max_mel_tokens: Option<usize>,
    /// Seed of the sampling RNG.
    #[arg(long)]
    seed: Option<u64>,
    /// New tokens at most (default: the preset's 500, or 100 without a preset; capped to the checkpoint's
    /// `max_position_embeddings` − 1 unless given).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// The decoder's projection weights: f32 (default) or bf16 (CPU backends only; faster, slightly
    /// different tokens).
    #[arg(long, value_enum, default_value = "f32")]
    decoder_weights: DecoderWeights,
    /// Prefill positions: tortoise (default; Tortoise's do_tts.py / read.py, key/value cache on),
    /// tortoise-no-cache (Tortoise's TextToSpeech() default) or hf523 (transformers 5.23).
    #[arg(long, value_enum, default_value = "tortoise")]
    prefill_positions: Prefill,
}

impl GenOptions {
    /// The options as a JSON object (the record of a batch job).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "preset": self.preset,
            "candidates": self.candidates,
            "greedy": self.greedy,
            "beams": self.beams,
            "length_penalty": self.length_penalty,
            "early_stopping": self.early_stopping.map(|e| match e {
                EarlyStop::False => "false",
                EarlyStop::True => "true",
                EarlyStop::Never => "never",
            }),
            "pad_to_max_mel_tokens": self.pad_to_max_mel_tokens,
            "seed": self.seed,
            "max_new_tokens": self.max_new_tokens,
            "decoder_weights": match self.decoder_weights {
                DecoderWeights::F32 => "f32",
                DecoderWeights::Bf16 => "bf16",
                DecoderWeights::Int8 => "int8",
            },
            "prefill_positions": match self.prefill_positions {
                Prefill::Tortoise => "tortoise",
                Prefill::Hf523 => "hf523",
                Prefill::TortoiseNoCache => "tortoise-no-cache",
            },
        })
    }

    /// Set the model's decoder weights, and fit `gc` to the checkpoint.
    pub fn apply(&self, clvp: &mut Clvp, gc: &mut GenerationConfig) -> Result<()> {
        clvp.set_decoder_weights(match self.decoder_weights {
            DecoderWeights::F32 => WeightPrecision::F32,
            DecoderWeights::Bf16 => WeightPrecision::Bf16,
            DecoderWeights::Int8 => WeightPrecision::Int8,
        })?;
        if self.max_new_tokens.is_none() {
            // Without an explicit --max-new-tokens, stay within the checkpoint's mel position table (a small
            // test checkpoint has fewer positions than the presets' token counts); an explicit one too large is
            // an error.
            if let Some(limit) = clvp.fit_to_model(gc) {
                tracing::info!(
                    limit,
                    "max_new_tokens lowered to the checkpoint's mel positions"
                );
            }
        }
        Ok(())
    }
}

/// Arguments of `clvp generate`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The text to speak.
    #[arg(
        long,
        required_unless_present = "text_file",
        conflicts_with = "text_file"
    )]
    text: Option<String>,
    /// A file holding the text to speak (`-`: standard input, or a pipe such as `<(cmd)`; its final line break
    /// is dropped; at most 1 MiB).
    #[arg(long)]
    text_file: Option<PathBuf>,
    /// Voice clip(s) of the speaker (repeatable; several are averaged, as Tortoise does, one at a time: memory
    /// does not grow with their number). A file, a pipe, or `-` for standard input.
    #[arg(long = "voice", required = true)]
    voices: Vec<PathBuf>,
    #[command(flatten)]
    options: GenOptions,
    /// Write speech_ids, logits_per_text, text_embeds and speech_embeds to this safetensors file (not `-`:
    /// the ranking goes to standard output).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print the ranking as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn config(args: &GenOptions) -> Result<GenerationConfig> {
    let mut gc = match &args.preset {
        Some(name) => name.parse::<Preset>()?.config(),
        // Without a preset: ultra_fast's sampling settings with 100 new tokens.
        None => GenerationConfig {
            max_new_tokens: 100,
            ..Preset::UltraFast.config()
        },
    };
    if let Some(n) = args.candidates {
        if n == 0 {
            bail!("--candidates must be at least 1");
        }
        gc.num_return_sequences = n;
    }
    if let Some(t) = args.max_new_tokens {
        if t == 0 {
            bail!("--max-new-tokens must be at least 1");
        }
        gc.max_new_tokens = t;
    }
    if args.greedy {
        gc.do_sample = false;
        gc.num_return_sequences = args.candidates.unwrap_or(1);
        gc.repetition_penalty = 1.0;
        if gc.num_return_sequences > 1 {
            bail!(
                "--greedy gives one candidate (every greedy candidate would be the same); \
                 use --beams K --candidates N or sampling for several"
            );
        }
    }
    if let Some(k) = args.beams {
        if k == 0 {
            bail!("--beams must be at least 1");
        }
        let n = args.candidates.unwrap_or(k);
        if n > k {
            bail!(
                "--candidates {n} is more than --beams {k}: beam search returns at most one candidate per beam"
            );
        }
        gc.do_sample = false;
        gc.num_beams = k;
        gc.num_return_sequences = n;
        gc.repetition_penalty = 1.0;
        if let Some(lp) = args.length_penalty {
            gc.length_penalty = lp;
        }
        if let Some(es) = args.early_stopping {
            gc.early_stopping = match es {
                EarlyStop::False => EarlyStopping::False,
                EarlyStop::True => EarlyStopping::True,
                EarlyStop::Never => EarlyStopping::Never,
            };
        }
    }
    gc.pad_to_max_mel_tokens = args.pad_to_max_mel_tokens;
    if let Some(s) = args.seed {
        gc.seed = s;
    }
    gc.prefill_positions = match args.prefill_positions {
        Prefill::Tortoise => PrefillPositions::Tortoise,
        Prefill::Hf523 => PrefillPositions::Hf523,
        Prefill::TortoiseNoCache => PrefillPositions::TortoiseNoCache,
    };
    gc.validate().map_err(name_flag)?;
    Ok(gc)
}

/// A voice clip as errors name it: `-` is standard input.
fn voice_label(path: &Path) -> String {
    if path.as_os_str() == clvp::raw::audio::STDIN_PATH {
        clvp::raw::audio::STDIN_LABEL.to_string()
    } else {
        path.display().to_string()
    }
}

/// The flag of a generation setting (a `GenerationConfig` field) the library names in an error; the
/// others come from the preset.
fn flag_of(option: &str) -> &'static str {
    match option {
        "length_penalty" => "--length-penalty",
        "max_new_tokens" => "--max-new-tokens",
        "num_beams" => "--beams",
        "num_return_sequences" => "--candidates",
        "pad_to_max_mel_tokens" => "--pad-to-max-mel-tokens",
        "early_stopping" => "--early-stopping",
        _ => "--preset",
    }
}

/// A library error about one generation setting, prefixed with its flag.
fn name_flag(e: NnError) -> anyhow::Error {
    let flag = match &e {
        NnError::Generation {
            option: Some(option),
            ..
        } => Some(flag_of(option)),
        _ => None,
    };
    match flag {
        Some(flag) => anyhow::Error::new(e).context(flag),
        None => e.into(),
    }
}

/// A generation's result with a generation setting's error named by its flag, and its numbers checked finite.
pub fn checked(result: Result<clvp::Candidates, ClvpError>) -> Result<clvp::Candidates> {
    let c = result.map_err(|e| match e {
        ClvpError::Nn(e) => name_flag(e),
        other => other.into(),
    })?;
    ensure_finite(
        "the CLVP logits (logits_per_text)",
        &c.logits_per_text,
        MODEL_CAUSE,
    )?;
    ensure_finite("the text embedding", &c.text_embeds.values, MODEL_CAUSE)?;
    ensure_finite(
        "the speech embeddings",
        &c.speech_embeds.values,
        MODEL_CAUSE,
    )?;
    Ok(c)
}

pub fn run(args: &Args) -> Result<()> {
    let mut gc = config(&args.options)?;
    let dash = Dash::Refused {
        why: "`generate` prints its ranking there; give a file",
    };
    let output = args
        .output
        .as_deref()
        .map(|p| Output::new("--output", p, dash))
        .transpose()?;
    for v in &args.voices {
        refuse_terminal_stdin("--voice", v, "audio")?;
    }
    let mut inputs = args.model.files();
    inputs.extend(args.voices.iter().map(|v| Input::new("--voice", v)));
    inputs.extend(args.text_file.iter().map(|p| Input::new("--text-file", p)));
    refuse_same(&output.iter().collect::<Vec<_>>(), &inputs)?;
    let text = text_arg(args.text.as_deref(), args.text_file.as_deref())?;
    let mut clvp = args.model.load()?;
    args.options.apply(&mut clvp, &mut gc)?;
    // The running mean of the clips' conditioning: each clip is dropped once it is in (16 at most wait for the
    // encoder together), so memory does not grow with the number of clips.
    let mut voice = clvp.voice_conditioning();
    for v in &args.voices {
        let clip = clvp
            .processor
            .load_voice(v)
            .with_context(|| format!("loading voice {}", voice_label(v)))?;
        voice
            .push(&clip)
            .with_context(|| format!("loading voice {}", voice_label(v)))?;
    }
    let bar = ProgressBar::new(gc.max_new_tokens as u64);
    bar.set_style(
        ProgressStyle::with_template("generating {bar:30} {pos}/{len} tokens {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = clvp.generate_with_voice(&text, voice, &gc, &mut |step, _| {
        bar.set_position(step as u64)
    });
    bar.finish_and_clear();
    let c = checked(result)?;
    if let Some(out) = &output {
        let n = c.speech_ids.len();
        let w = c.speech_ids.first().map_or(0, Vec::len);
        let ids: Vec<i64> = c.speech_ids.iter().flatten().map(|&x| x as i64).collect();
        let mut tensors = vec![
            TensorOut::i64("speech_ids", vec![n, w], &ids),
            TensorOut::f32("logits_per_text", vec![1, n], &c.logits_per_text),
            TensorOut::f32(
                "text_embeds",
                c.text_embeds.shape.to_vec(),
                &c.text_embeds.values,
            ),
            TensorOut::f32(
                "speech_embeds",
                c.speech_embeds.shape.to_vec(),
                &c.speech_embeds.values,
            ),
        ];
        if let Some(scores) = &c.sequences_scores {
            tensors.push(TensorOut::f32("sequences_scores", vec![n], scores));
        }
        write_safetensors(out, &tensors)?;
    }
    let probs = clvp::raw::rank::softmax(&c.logits_per_text);
    if args.json {
        let ranking: Vec<serde_json::Value> = c
            .ranking
            .iter()
            .map(|&(i, s)| {
                let mut v = serde_json::json!({"candidate": i, "logit": s, "probability": probs[i], "codes": c.speech_ids[i].len()});
                if let Some(score) = c.sequences_scores.as_ref().and_then(|b| b.get(i)) {
                    v["beam_score"] = serde_json::json!(score);
                }
                v
            })
            .collect();
        println!("{}", serde_json::json!({"text": text, "ranking": ranking}));
    } else {
        match &c.sequences_scores {
            None => println!("rank  candidate  logit      probability  codes"),
            Some(_) => println!("rank  candidate  logit      probability  codes  beam score"),
        }
        for (rank, &(i, s)) in c.ranking.iter().enumerate() {
            let beam = c
                .sequences_scores
                .as_ref()
                .and_then(|b| b.get(i))
                .map_or(String::new(), |b| format!("  {b:>10.4}"));
            println!(
                "{:>4}  {:>9}  {:>9.4}  {:>11.4}  {:>5}{beam}",
                rank + 1,
                i,
                s,
                probs[i],
                c.speech_ids[i].len()
            );
        }
    }
    Ok(())
}
