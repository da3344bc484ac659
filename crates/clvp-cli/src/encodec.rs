//! `clvp encodec encode|decode|roundtrip`: Meta's `encodec` CLI verbs plus machine-readable safetensors output.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clvp::codec::{CodeEvent, CodesRef};
use clvp::raw::audio::AudioReader;
use clvp::raw::encodec::ecdc::EcdcModel;
use clvp::raw::encodec::streaming::AudioSink;
use clvp::{CodecError, DEFAULT_ENCODEC, DEFAULT_ENCODEC_HQ, Encodec};

use crate::audio_out::{AudioFormat, AudioWriter};
use crate::code_spool::CodeSpool;
use crate::codes_in::{CodesIn, read_input_codes};
use crate::codes_out::CodesWriter;
use crate::jsonl::{self, JsonlReader, Line};
use crate::live::{AudioIn, Holdback, RawSpec};
use crate::output::{Dash, Input, Output, model_files, refuse_same, refuse_terminal_stdin};
use crate::paths::{extension, label};

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
    /// Checkpoint: a local directory, a hub id (default facebook/encodec_24khz, or facebook/encodec_48khz
    /// with --hq), or one of Meta's own `.th` files (encodec_24khz-d7cc33bc.th, encodec_48khz-7e698e3e.th).
    #[arg(long)]
    model: Option<String>,
    /// Use the 48 kHz stereo model (facebook/encodec_48khz) when --model is not given.
    #[arg(short = 'q', long)]
    hq: bool,
    /// Backend device: cpu, ndarray, wgpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

impl ModelChoice {
    pub(crate) fn name(&self) -> &str {
        match (&self.model, self.hq) {
            (Some(m), _) => m,
            (None, true) => DEFAULT_ENCODEC_HQ,
            (None, false) => DEFAULT_ENCODEC,
        }
    }

    /// The files of `--model` when it is a local directory or file (inputs an output must not overwrite).
    pub(crate) fn files(&self) -> Vec<Input> {
        self.model
            .as_deref()
            .map_or_else(Vec::new, |m| model_files("--model", Path::new(m)))
    }

    pub(crate) fn load(&self, name: &str) -> Result<Encodec> {
        let device = clvp::device::device(&self.device)?;
        Encodec::from_pretrained(name, &device)
            .with_context(|| format!("loading the EnCodec model {name}"))
    }
}

/// The live options of `encode` and `decode`.
#[derive(clap::Args)]
pub struct Live {
    /// Live: read the input as it arrives and write each code frame (encode) or each block of samples
    /// (decode) as soon as it is final, flushed (docs/streaming.md). The output's bytes are the same as without
    /// it. A regular output file still appears whole at the end; a pipe, standard output or a FIFO gets the
    /// data as it comes.
    #[arg(long)]
    stream: bool,
    /// Code frames per block of the model with --stream (1: every frame as soon as it can be; more: less
    /// work per frame, that much more latency).
    #[arg(long, default_value_t = 1, value_name = "FRAMES", requires = "stream")]
    stream_frames: usize,
}

impl Live {
    /// Set the model's block for a live run.
    fn apply(&self, codec: &mut Encodec) -> Result<()> {
        if self.stream_frames == 0 {
            bail!("--stream-frames must be at least 1");
        }
        if self.stream {
            codec.set_stream_frames(self.stream_frames);
        }
        Ok(())
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
    #[command(flatten)]
    live: Live,
    /// Read the input as raw interleaved 16-bit little-endian PCM of RATE Hz and CHANNELS channels, without a
    /// header (`arecord -f S16_LE`).
    #[arg(long, value_name = "RATE:CHANNELS")]
    raw: Option<RawSpec>,
    /// The output's format when its name has no extension (`-`, a FIFO): ecdc (the default), jsonl or
    /// safetensors.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Input audio file (any common format; converted to the model's channels and rate).
    input: PathBuf,
    /// Output: `.ecdc`, `.safetensors` or `.jsonl` (a line a code frame) (`-`: standard output, `.ecdc` unless
    /// --format says otherwise).
    output: PathBuf,
}

/// Arguments of `clvp encodec decode`.
#[derive(clap::Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    model: ModelChoice,
    #[command(flatten)]
    out: AudioOut,
    #[command(flatten)]
    live: Live,
    /// Write raw interleaved 16-bit little-endian PCM (the WAV's samples, no header) at the model's rate.
    #[arg(long)]
    raw: bool,
    /// Input codes: `.ecdc`, `.safetensors` or `.jsonl` (as `encode` writes them).
    input: PathBuf,
    /// Output: `.wav` or `.safetensors` (`-`: `.wav` on standard output, raw PCM with --raw).
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

/// Refuse an output that is the input or one of the checkpoint's files, and `-` for input (`what`: audio or
/// codes) when standard input is a terminal.
fn refuse_inputs(out: &Output, input: &Path, model: &ModelChoice, what: &str) -> Result<()> {
    refuse_terminal_stdin("the input", input, what)?;
    let mut inputs = vec![Input::new("the input", input)];
    inputs.extend(model.files());
    refuse_same(&[out], &inputs)
}

/// Open the input audio (a file, a FIFO, `-` for standard input) to be read block by block.
fn open_audio(path: &Path) -> Result<AudioReader> {
    AudioReader::open(path).with_context(|| format!("reading audio {}", label(path)))
}

/// An error of an encoding: the audio's own errors read as `reading audio {path}`, the rest as `encoding`.
fn encode_error(e: anyhow::Error, input: &Path) -> anyhow::Error {
    let audio = matches!(e.downcast_ref::<CodecError>(), Some(CodecError::Audio(_)));
    let what = if audio { "reading audio" } else { "encoding" };
    e.context(format!("{what} {}", label(input)))
}

/// The format of decoded audio written to `out` (`.wav`, also for a stream; or `.safetensors`; raw PCM with
/// `--raw`, to any name but those two).
fn audio_format(out: &Output, raw: bool) -> Result<AudioFormat> {
    match (format(out, "wav").as_str(), raw) {
        ("wav" | "safetensors", true) if !out.is_stream() || !extension(out.path()).is_empty() => {
            bail!(
                "{}: --raw writes headerless PCM, not a .{} file",
                out.path().display(),
                extension(out.path())
            )
        }
        (_, true) => Ok(AudioFormat::Raw),
        ("wav", false) => Ok(AudioFormat::Wav),
        ("safetensors", false) => Ok(AudioFormat::Safetensors),
        _ => bail!(
            "{}: decoded audio is written as .wav or .safetensors (or raw PCM with --raw)",
            out.path().display()
        ),
    }
}

fn encode(args: &EncodeArgs) -> Result<()> {
    let out = output(&args.output, ".ecdc codes")?;
    refuse_inputs(&out, &args.input, &args.model, "audio")?;
    let ext = codes_format(&out, args.format.as_deref())?;
    let mut codec = args.model.load(args.model.name())?;
    args.live.apply(&mut codec)?;
    let live = args.live.stream;
    let mut input = AudioIn::open(&args.input, args.raw)?;
    // Live: every block goes to the model at once; else blocks of 16 384 frames (as `encode_stream`).
    let gather = if live { 0 } else { 1 << 14 };
    let mut encoder = codec
        .encoder(Some(args.bandwidth), input.sample_rate(), input.channels())
        .map_err(|e| encode_error(e.into(), &args.input))?
        .with_gather(gather);
    let mut codes = match ext.as_str() {
        "ecdc" => CodesWriter::ecdc(codec.ecdc_model()?)?,
        "safetensors" => CodesWriter::tensors(),
        _ => {
            let (_, num_codebooks) = codec.raw().config.check_bandwidth(Some(args.bandwidth))?;
            let header = jsonl::Header {
                model: codec.ecdc_model().ok().map(|m| m.name.to_string()),
                sample_rate: codec.sample_rate(),
                channels: codec.channels(),
                num_codebooks,
            };
            CodesWriter::jsonl(&out, &header, args.bandwidth, live)?
        }
    };
    let summary = (|| -> Result<_> {
        let mut sink = |event: CodeEvent<'_>| codes.push(event);
        input.for_each_block(&mut |block| encoder.push(block, &mut sink))?;
        encoder.finish(&mut sink)
    })()
    .map_err(|e| encode_error(e, &args.input))?;
    codes.finish(&out, summary.audio_length)?;
    eprintln!(
        "{}: {} samples → {} chunk(s) × {} codebooks ({} kbps) → {}",
        label(&args.input),
        summary.audio_length,
        summary.segments,
        summary.num_codebooks,
        args.bandwidth,
        args.output.display()
    );
    Ok(())
}

/// The format of `encode`'s output: its extension, or `--format` (default `ecdc`) for a name without one.
fn codes_format(out: &Output, flag: Option<&str>) -> Result<String> {
    let ext = extension(out.path());
    let ext = match (ext.is_empty() && out.is_stream(), flag) {
        (true, Some(f)) => f.to_ascii_lowercase(),
        (true, None) => "ecdc".to_string(),
        (false, Some(f)) if !f.eq_ignore_ascii_case(&ext) => bail!(
            "{}: --format {f} does not match the output's extension .{ext}",
            out.path().display()
        ),
        (false, _) => ext,
    };
    if !matches!(ext.as_str(), "ecdc" | "safetensors" | "jsonl") {
        bail!(
            "{}: the output of `encode` must end in .ecdc, .safetensors or .jsonl",
            out.path().display()
        );
    }
    Ok(ext)
}

fn decode(args: &DecodeArgs) -> Result<()> {
    let out = output(&args.output, "WAV audio")?;
    refuse_inputs(&out, &args.input, &args.model, "codes")?;
    let format = audio_format(&out, args.raw)?;
    let input = read_input_codes(&args.input)?;
    let name = match (&args.model.model, &input) {
        (Some(m), _) => m.clone(),
        // Meta rebuilds the model from the header's name; an explicit --model overrides it.
        (None, CodesIn::Ecdc(file)) if file.model() == EcdcModel::ENCODEC_48KHZ => {
            DEFAULT_ENCODEC_HQ.to_string()
        }
        (None, CodesIn::Ecdc(_)) => DEFAULT_ENCODEC.to_string(),
        (None, CodesIn::Jsonl(_, h))
            if h.model.as_deref() == Some(EcdcModel::ENCODEC_48KHZ.name) =>
        {
            DEFAULT_ENCODEC_HQ.to_string()
        }
        (None, CodesIn::Jsonl(..) | CodesIn::Tensors(_)) => args.model.name().to_string(),
    };
    let mut codec = args.model.load(&name)?;
    args.live.apply(&mut codec)?;
    let live = args.live.stream;
    let label = label(&args.input);
    match input {
        CodesIn::Ecdc(mut file) => {
            let expected = codec.ecdc_model()?;
            if file.model() != expected {
                bail!(
                    "{label} was written by {}, but the model {name} has the layout of {}",
                    file.model().name,
                    expected.name
                );
            }
            // The layout is the model's: its segments cover the audio length, which is what comes out.
            let frames = file.audio_length();
            decode_to(
                &codec,
                frames,
                &out,
                (format, args.out.rescale, live),
                &mut |sink| codec.decode_ecdc_stream(&mut file, sink).map(drop),
            )
            .with_context(|| format!("decoding {label}"))
        }
        CodesIn::Tensors(codes) => {
            let segments = codes.segment_refs();
            let frames = codec.decoded_length(&segments, codes.audio_length);
            decode_to(
                &codec,
                frames,
                &out,
                (format, args.out.rescale, live),
                &mut |sink| {
                    codec
                        .decode_stream(&segments, codes.num_codebooks, codes.audio_length, sink)
                        .map(drop)
                },
            )
            .with_context(|| format!("decoding {label}"))
        }
        CodesIn::Jsonl(mut lines, header) => decode_lines(
            &codec,
            &name,
            &mut lines,
            &header,
            &out,
            (format, args.out.rescale, live),
        )
        .with_context(|| format!("decoding {label}")),
    }
}

/// Decode JSON lines as they are read. Their header must fit the model; the audio length comes last, so the
/// decoded audio is written with its length open ([`AudioWriter::open_length`]) and the last frame's samples
/// wait for the cut ([`Holdback`]).
fn decode_lines(
    codec: &Encodec,
    name: &str,
    lines: &mut JsonlReader<BufReader<Box<dyn Read>>>,
    header: &jsonl::Header,
    out: &Output,
    (format, rescale, live): (AudioFormat, bool, bool),
) -> Result<()> {
    if header.sample_rate != codec.sample_rate() || header.channels != codec.channels() {
        bail!(
            "the codes are of a {} Hz, {}-channel model; {name} is {} Hz, {}-channel",
            header.sample_rate,
            header.channels,
            codec.sample_rate(),
            codec.channels()
        );
    }
    if let (Some(written), Ok(expected)) = (&header.model, codec.ecdc_model())
        && written != expected.name
    {
        bail!(
            "the codes were written by {written}, but the model {name} has the layout of {}",
            expected.name
        );
    }
    let mut decoder = codec.decoder(header.num_codebooks, None)?;
    let mut writer = AudioWriter::new(
        out,
        format,
        rescale,
        codec.channels(),
        codec.sample_rate(),
        0,
    )?
    .open_length()
    .live(live);
    let mut held = Holdback::new(codec.channels(), codec.raw().config.hop_length());
    let mut sink = |block: &[f32], n: usize| held.push(block, n, &mut writer);
    let audio_length = loop {
        match lines.next_line(header.num_codebooks)? {
            Some(Line::Frame(codes)) => decoder.push(CodesRef::U32(&codes), 1, &mut sink)?,
            Some(Line::EndSegment(scale)) => decoder.end_segment(scale, &mut sink)?,
            Some(Line::End(n)) => break n,
            None => bail!("the codes end without their end line"),
        }
    };
    decoder.finish(&mut sink)?;
    held.finish(audio_length, &mut writer)?;
    writer.finish()
}

/// The decoder run of [`decode_to`]: it hands the sink planar blocks as they are final.
type DecodeRun<'a> = dyn FnMut(&mut AudioSink<'_, anyhow::Error>) -> Result<()> + 'a;

/// Decode `frames` samples per channel block by block into `out` (`run` drives the decoder), in `format`,
/// rescaled or not, flushed after every block when live.
fn decode_to(
    codec: &Encodec,
    frames: usize,
    out: &Output,
    (format, rescale, live): (AudioFormat, bool, bool),
    run: &mut DecodeRun<'_>,
) -> Result<()> {
    let mut writer = AudioWriter::new(
        out,
        format,
        rescale,
        codec.channels(),
        codec.sample_rate(),
        frames,
    )?
    .live(live);
    run(&mut |block, n| writer.push(block, n))?;
    writer.finish()
}

/// Encode the input as a stream, its codes written as they come to a scratch file ([`CodeSpool`]: 4 bytes a
/// code, unnamed, in `TMPDIR`), then read back and pushed to the decoder, the audio written block by block:
/// neither the audio nor the codes are held whole. (The output's length, in its header, is the input's, known
/// only once it is read: the decoding cannot start before.)
fn roundtrip(args: &RoundtripArgs) -> Result<()> {
    let out = output(&args.output, "WAV audio")?;
    refuse_inputs(&out, &args.input, &args.model, "audio")?;
    let format = audio_format(&out, false)?;
    let codec = args.model.load(args.model.name())?;
    let mut reader = open_audio(&args.input)?;
    let mut spool = CodeSpool::new()?;
    let summary = codec
        .encode_stream(&mut reader, Some(args.bandwidth), &mut |event| {
            spool.push(event)
        })
        .map_err(|e| encode_error(e, &args.input))?;
    drop(reader);
    let frames = summary.audio_length;
    let mut decoder = Some(codec.decoder(summary.num_codebooks, Some(frames))?);
    let mut events = spool.into_reader()?;
    decode_to(
        &codec,
        frames,
        &out,
        (format, args.out.rescale, false),
        &mut |sink| match decoder.take() {
            Some(d) => events.replay(d, sink),
            None => Ok(()),
        },
    )
}
