//! `clvp features`: an audio file → `ClvpFeatureExtractor` log-mel features (safetensors and/or PNG).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clvp::ClvpProcessor;
use clvp::raw::audio::{STDIN_LABEL, STDIN_PATH, load_audio_prefix};

use crate::output::{
    Dash, Input, Output, TensorOut, model_files, refuse_same, refuse_terminal_stdin,
    safetensors_bytes, write_all,
};
use crate::plot;

/// Arguments of `clvp features`.
#[derive(clap::Args)]
pub struct Args {
    /// Audio file (WAV, FLAC, MP3, OGG/Vorbis); resampled to 22050 Hz and downmixed to mono as needed. A pipe
    /// (`<(cmd)`, a FIFO) or `-` (standard input) works too: only its first seconds are read.
    #[arg(long)]
    audio: PathBuf,
    /// Write `input_features` (f32 [1, 80, 517]) to this safetensors file (`-`: standard output).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Draw the mel spectrogram (time × mel, colour bar, title with file and duration) to this PNG (`-`:
    /// standard output).
    #[arg(long)]
    png: Option<PathBuf>,
    /// A checkpoint directory whose preprocessor_config.json to use (default: Tortoise's mel_norms).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    if args.output.is_none() && args.png.is_none() {
        bail!("nothing to write: give --output OUT.safetensors and/or --png OUT.png");
    }
    let output = args
        .output
        .as_deref()
        .map(|p| {
            Output::new(
                "--output",
                p,
                Dash::Stdout {
                    what: "safetensors",
                },
            )
        })
        .transpose()?;
    let png = args
        .png
        .as_deref()
        .map(|p| {
            Output::new(
                "--png",
                p,
                Dash::Stdout {
                    what: "a PNG image",
                },
            )
        })
        .transpose()?;
    refuse_terminal_stdin("--audio", &args.audio, "audio")?;
    let mut inputs = vec![Input::new("--audio", &args.audio)];
    if let Some(dir) = &args.model {
        inputs.extend(model_files("--model", dir));
    }
    let outputs: Vec<&Output> = output.iter().chain(png.iter()).collect();
    refuse_same(&outputs, &inputs)?;
    let processor = match &args.model {
        Some(dir) => ClvpProcessor::from_dir(dir)?,
        None => ClvpProcessor::tortoise()?,
    };
    // Only the beginning the extractor keeps (6 s plus the resampler's margin) is decoded: an hour-long file
    // gives the same features as decoding it whole, in seconds of audio's worth of memory.
    let prefix = load_audio_prefix(&args.audio, |r| processor.voice_frame_limit(r))?;
    let audio = prefix.audio;
    let (rate, channels) = (audio.sample_rate, audio.num_channels());
    let duration = match prefix.total_frames {
        Some(frames) => format!("{:.2} s", frames as f64 / f64::from(rate)),
        None => format!("over {:.2} s", audio.duration_secs()),
    };
    let clip = processor
        .prepare(&audio)
        .with_context(|| format!("preparing {}", args.audio.display()))?;
    let fe = &processor.feature_extractor;
    let features = fe.extract(&[&clip], Some(fe.sampling_rate))?;
    let peak = clip.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    crate::finite::ensure_finite(
        "the log-mel features",
        &features.input_features,
        &format!(
            "the audio's samples reach {peak:e}, far outside [-1, 1]: their spectrum overflows float32; \
             normalise the file"
        ),
    )?;
    tracing::info!(
        file = %args.audio.display(), rate, channels, duration, shape = ?features.shape, "features computed"
    );
    // Both outputs are rendered, then staged, before either is moved into place: no half of a pair is left.
    let mut rendered: Vec<(&Output, Vec<u8>)> = Vec::new();
    if let Some(out) = &output {
        let t = TensorOut::f32(
            "input_features",
            features.shape.to_vec(),
            &features.input_features,
        );
        rendered.push((out, safetensors_bytes(&[t])?));
    }
    if let Some(png) = &png {
        let name = if args.audio.as_os_str() == STDIN_PATH {
            STDIN_LABEL.to_string()
        } else {
            args.audio
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let title = format!("{name} — {duration} at {rate} Hz, {channels} ch");
        let bytes = plot::mel_png(
            &features.input_features,
            features.shape[1],
            features.shape[2],
            &title,
        )?;
        rendered.push((png, bytes));
    }
    let rendered: Vec<(&Output, &[u8])> =
        rendered.iter().map(|(o, b)| (*o, b.as_slice())).collect();
    write_all(&rendered)?;
    Ok(())
}
