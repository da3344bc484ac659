//! `clvp encodec encode|decode|roundtrip`: Meta's `encodec` CLI verbs plus machine-readable safetensors output.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clvp::audio::{Audio, load_audio};
use clvp::encodec::ecdc::{EcdcModel, read_ecdc, write_ecdc};
use clvp::{AudioCodes, DEFAULT_ENCODEC, DEFAULT_ENCODEC_HQ, Encodec, HfCodes};
use safetensors::{Dtype, SafeTensors};

use crate::output::{Dash, Input, Output, TensorOut, model_files, refuse_same, write_safetensors};

/// `clvp encodec` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Encode audio to codes: OUT `.ecdc` (Meta's container) or `.safetensors` (HF's audio_codes, audio_scales,
    /// last_frame_pad_length, audio_length).
    Encode(EncodeArgs),
    /// Decode codes (`.ecdc` or such a `.safetensors`) to `.wav` (16-bit) or `.safetensors` (audio_values).
    Decode(DecodeArgs),
    /// Encode then decode: audio in, `.wav` or `.safetensors` out.
    Roundtrip(RoundtripArgs),
}

/// Model choice shared by the verbs.
#[derive(clap::Args)]
pub struct ModelChoice {
    /// Checkpoint: a local directory or a hub id (default facebook/encodec_24khz, or facebook/encodec_48khz
    /// with --hq).
    #[arg(long)]
    model: Option<String>,
    /// Use the 48 kHz stereo model (facebook/encodec_48khz) when --model is not given.
    #[arg(short = 'q', long)]
    hq: bool,
    /// Backend device: cpu, ndarray, wgpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl ModelChoice {
    fn name(&self) -> &str {
        match (&self.model, self.hq) {
            (Some(m), _) => m,
            (None, true) => DEFAULT_ENCODEC_HQ,
            (None, false) => DEFAULT_ENCODEC,
        }
    }

    /// The files of `--model` when it is a local directory (inputs an output must not overwrite).
    fn files(&self) -> Vec<Input> {
        self.model
            .as_deref()
            .map_or_else(Vec::new, |m| model_files("--model", Path::new(m)))
    }

    fn load(&self, name: &str) -> Result<Encodec> {
        let device = clvp::device::device(&self.device)?;
        Encodec::from_pretrained(name, &device)
            .with_context(|| format!("loading the EnCodec model {name}"))
    }
}

/// Output options of decoded audio.
#[derive(clap::Args)]
pub struct AudioOut {
    /// Rescale the output to a peak of 0.99 instead of clipping to [-0.99, 0.99] (WAV output only).
    #[arg(short = 'r', long)]
    rescale: bool,
}

/// Arguments of `clvp encodec encode`.
#[derive(clap::Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    model: ModelChoice,
    /// Bandwidth in kbps (one of the model's target bandwidths; Meta's CLI default is 6).
    #[arg(short = 'b', long, default_value_t = 6.0)]
    bandwidth: f64,
    /// Input audio file (any common format; converted to the model's channels and rate).
    input: PathBuf,
    /// Output: `.ecdc` or `.safetensors` (`-`: `.ecdc` on standard output).
    output: PathBuf,
}

/// Arguments of `clvp encodec decode`.
#[derive(clap::Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    model: ModelChoice,
    #[command(flatten)]
    out: AudioOut,
    /// Input codes: `.ecdc` or `.safetensors` (as `encode` writes).
    input: PathBuf,
    /// Output: `.wav` or `.safetensors` (`-`: `.wav` on standard output).
    output: PathBuf,
}

/// Arguments of `clvp encodec roundtrip`.
#[derive(clap::Args)]
pub struct RoundtripArgs {
    #[command(flatten)]
    model: ModelChoice,
    #[command(flatten)]
    out: AudioOut,
    /// Bandwidth in kbps.
    #[arg(short = 'b', long, default_value_t = 6.0)]
    bandwidth: f64,
    /// Input audio file.
    input: PathBuf,
    /// Output: `.wav` or `.safetensors` (`-`: `.wav` on standard output).
    output: PathBuf,
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

pub fn run(command: &Command) -> Result<()> {
    match command {
        Command::Encode(a) => encode(a),
        Command::Decode(a) => decode(a),
        Command::Roundtrip(a) => roundtrip(a),
    }
}

/// The output argument of a verb, resolved; `-` is standard output.
fn output(path: &Path, what: &'static str) -> Result<Output> {
    Output::new("the output", path, Dash::Stdout { what })
}

/// The format of `out`: its extension, or `stream` for standard output or a device or FIFO named without one.
fn format(out: &Output, stream: &str) -> String {
    let ext = extension(out.path());
    if ext.is_empty() && out.is_stream() {
        stream.to_string()
    } else {
        ext
    }
}

/// Refuse an output that is the input or one of the checkpoint's files.
fn refuse_inputs(out: &Output, input: &Path, model: &ModelChoice) -> Result<()> {
    let mut inputs = vec![Input::new("the input", input)];
    inputs.extend(model.files());
    refuse_same(&[out], &inputs)
}

fn load_input(path: &Path) -> Result<Audio> {
    load_audio(path).with_context(|| format!("reading audio {}", path.display()))
}

fn encode(args: &EncodeArgs) -> Result<()> {
    let out = output(&args.output, ".ecdc codes")?;
    refuse_inputs(&out, &args.input, &args.model)?;
    let ext = format(&out, "ecdc");
    if ext != "ecdc" && ext != "safetensors" {
        bail!(
            "{}: the output of `encode` must end in .ecdc or .safetensors",
            out.path().display()
        );
    }
    let codec = args.model.load(args.model.name())?;
    let audio = load_input(&args.input)?;
    let codes = codec
        .encode(&audio, Some(args.bandwidth))
        .with_context(|| format!("encoding {}", args.input.display()))?;
    if ext == "ecdc" {
        let model = codec.ecdc_model()?;
        let file = codes.to_ecdc(&model)?;
        let mut bytes = Vec::new();
        write_ecdc(&mut bytes, &file)?;
        out.write(&bytes)?;
    } else {
        write_codes(&out, &codes.to_hf()?)?;
    }
    eprintln!(
        "{}: {} samples → {} chunk(s) × {} codebooks ({} kbps) → {}",
        args.input.display(),
        codes.audio_length,
        codes.chunks.len(),
        codes.num_codebooks,
        args.bandwidth,
        args.output.display()
    );
    Ok(())
}

fn write_codes(out: &Output, hf: &HfCodes) -> Result<()> {
    let mut tensors = vec![TensorOut::i64(
        "audio_codes",
        hf.shape.to_vec(),
        &hf.audio_codes,
    )];
    if let Some(s) = &hf.audio_scales {
        tensors.push(TensorOut::f32("audio_scales", vec![s.len(), 1], s));
    }
    tensors.push(TensorOut::i64(
        "last_frame_pad_length",
        vec![1],
        &[hf.last_frame_pad_length as i64],
    ));
    tensors.push(TensorOut::i64(
        "audio_length",
        vec![1],
        &[hf.audio_length as i64],
    ));
    write_safetensors(out, &tensors)
}

fn read_i64(st: &SafeTensors, path: &Path, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
    let t = st
        .tensor(name)
        .with_context(|| format!("{}: no tensor `{name}`", path.display()))?;
    if t.dtype() != Dtype::I64 {
        bail!(
            "{}: `{name}` is {:?}, expected I64",
            path.display(),
            t.dtype()
        );
    }
    let v = t
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect();
    Ok((t.shape().to_vec(), v))
}

fn read_codes(path: &Path) -> Result<AudioCodes> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let (shape, codes) = read_i64(&st, path, "audio_codes")?;
    let shape: [usize; 4] = shape.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{}: audio_codes has shape {shape:?}, expected [chunks, 1, n_q, T]",
            path.display()
        )
    })?;
    let scalar = |name: &str| -> Result<usize> {
        let (s, v) = read_i64(&st, path, name)?;
        match v.as_slice() {
            [x] => usize::try_from(*x).or_else(|_| {
                bail!(
                    "{}: `{name}` must be one non-negative integer, found {x}",
                    path.display()
                )
            }),
            _ => bail!(
                "{}: `{name}` must be one non-negative integer, found shape {s:?}",
                path.display()
            ),
        }
    };
    let audio_scales = match st.tensor("audio_scales") {
        Ok(t) => {
            if t.dtype() != Dtype::F32 {
                bail!(
                    "{}: audio_scales is {:?}, expected F32",
                    path.display(),
                    t.dtype()
                );
            }
            Some(
                t.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )
        }
        Err(_) => None,
    };
    let hf = HfCodes {
        audio_codes: codes,
        shape,
        audio_scales,
        last_frame_pad_length: scalar("last_frame_pad_length")?,
        audio_length: scalar("audio_length")?,
    };
    AudioCodes::from_hf(&hf).with_context(|| format!("{}", path.display()))
}

fn decode(args: &DecodeArgs) -> Result<()> {
    let out = output(&args.output, "WAV audio")?;
    refuse_inputs(&out, &args.input, &args.model)?;
    let ext = extension(&args.input);
    let mut written_by = None;
    let (codes, name) = match ext.as_str() {
        "ecdc" => {
            let bytes = std::fs::read(&args.input)
                .with_context(|| format!("reading {}", args.input.display()))?;
            let file = read_ecdc(&mut bytes.as_slice()).with_context(|| {
                format!("{} is not a readable .ecdc file", args.input.display())
            })?;
            // Meta rebuilds the model from the header's name; an explicit --model overrides it.
            let name = match (&args.model.model, file.model.as_str()) {
                (Some(m), _) => m.clone(),
                (None, "encodec_48khz") => DEFAULT_ENCODEC_HQ.to_string(),
                (None, _) => DEFAULT_ENCODEC.to_string(),
            };
            written_by = EcdcModel::by_name(&file.model);
            (AudioCodes::from_ecdc(&file), name)
        }
        "safetensors" => (read_codes(&args.input)?, args.model.name().to_string()),
        _ => bail!(
            "{}: the input of `decode` must end in .ecdc or .safetensors",
            args.input.display()
        ),
    };
    let codec = args.model.load(&name)?;
    if let Some(m) = written_by {
        let expected = codec.ecdc_model()?;
        if m != expected {
            bail!(
                "{} was written by {}, but the model {name} has the layout of {}",
                args.input.display(),
                m.name,
                expected.name
            );
        }
    }
    let audio = codec
        .decode(&codes)
        .with_context(|| format!("decoding {}", args.input.display()))?;
    write_audio(&out, &audio, args.out.rescale)
}

fn roundtrip(args: &RoundtripArgs) -> Result<()> {
    let out = output(&args.output, "WAV audio")?;
    refuse_inputs(&out, &args.input, &args.model)?;
    let codec = args.model.load(args.model.name())?;
    let audio = load_input(&args.input)?;
    let codes = codec
        .encode(&audio, Some(args.bandwidth))
        .with_context(|| format!("encoding {}", args.input.display()))?;
    let decoded = codec.decode(&codes)?;
    write_audio(&out, &decoded, args.out.rescale)
}

/// `.safetensors` (`audio_values` f32 [1, C, L]) or 16-bit PCM `.wav` with Meta's `save_audio` limits:
/// clamp to ±0.99 (warning "Clipping!!" when the peak exceeds it) or, with `rescale`, scale by
/// `min(0.99 / peak, 1)`.
fn write_audio(out: &Output, audio: &Audio, rescale: bool) -> Result<()> {
    let frames = audio.num_frames();
    let channels = audio.num_channels();
    match format(out, "wav").as_str() {
        "safetensors" => {
            let planar: Vec<f32> = audio.channels.concat();
            write_safetensors(
                out,
                &[TensorOut::f32(
                    "audio_values",
                    vec![1, channels, frames],
                    &planar,
                )],
            )
        }
        "wav" => {
            let peak = audio
                .channels
                .iter()
                .flatten()
                .fold(0.0f32, |m, v| m.max(v.abs()));
            let (gain, clip) = if rescale {
                ((0.99 / peak).min(1.0), false)
            } else {
                if peak > 0.99 {
                    eprintln!("Clipping!!");
                }
                (1.0, true)
            };
            let spec = hound::WavSpec {
                channels: channels as u16,
                sample_rate: audio.sample_rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut cursor = std::io::Cursor::new(Vec::new());
            {
                let mut w = hound::WavWriter::new(&mut cursor, spec)?;
                for i in 0..frames {
                    for ch in &audio.channels {
                        let mut v = ch[i] * gain;
                        if clip {
                            v = v.clamp(-0.99, 0.99);
                        }
                        let v = if v.is_finite() { v } else { 0.0 };
                        w.write_sample((v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)?;
                    }
                }
                w.finalize()?;
            }
            out.write(&cursor.into_inner())
        }
        _ => bail!(
            "{}: decoded audio is written as .wav or .safetensors",
            out.path().display()
        ),
    }
}
