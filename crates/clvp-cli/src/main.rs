//! `clvp`: the command line of the CLVP / EnCodec workspace.

mod audio_out;
mod batch;
mod code_spool;
mod codes_in;
mod codes_out;
mod embed;
mod encodec;
mod features;
mod finite;
mod generate;
mod jsonl;
mod live;
mod output;
mod paths;
mod plot;
mod text;
mod tokenize;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The log filter without `CLVP_LOG`: warnings and errors, less the audio decoders' own (symphonia logs
/// through the `log` crate, e.g. `riff form is not wave` while probing a file that the one-line error then
/// names). `CLVP_LOG=warn` (or `debug`, `symphonia=info`, ...) shows them.
const DEFAULT_LOG: &str = "warn,symphonia=off";

/// mimalloc: it reuses freed tensor buffers where glibc hands large ones back to the kernel (workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "clvp",
    version,
    about = "CLVP (Tortoise TTS) and EnCodec in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tokenize text exactly as transformers' ClvpTokenizer.
    Tokenize(tokenize::Args),
    /// Compute ClvpFeatureExtractor log-mel features of an audio file.
    Features(features::Args),
    /// Generate speech-code candidates for a text and voice clip(s), scored and ranked by CLVP.
    Generate(generate::Args),
    /// Text embedding of the CLVP text encoder (get_text_features, not normalised).
    EmbedText(embed::TextArgs),
    /// Speech embedding of CLVP speech codes (get_speech_features(speech_ids=…), not normalised).
    EmbedSpeech(embed::SpeechArgs),
    /// EnCodec: encode audio to codes (.ecdc / .safetensors), decode codes to audio, or round-trip.
    #[command(subcommand)]
    Encodec(encodec::Command),
    /// Run a job over a manifest of items into Parquet shards: sharded (Slurm arrays, Kubernetes Indexed
    /// Jobs), resumable; exit status 2 when some items failed (docs/corpus.md).
    #[command(subcommand)]
    Batch(batch::Command),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CLVP_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tokenize(args) => tokenize::run(&args),
        Command::Features(args) => features::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::EmbedText(args) => embed::run_text(&args),
        Command::EmbedSpeech(args) => embed::run_speech(&args),
        Command::Encodec(command) => encodec::run(&command),
        Command::Batch(command) => match batch::run(&command) {
            Ok(false) => Ok(()),
            Ok(true) => return std::process::ExitCode::from(2),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", as `{:#}` prints them, less a cause whose text the message already
/// holds (many library errors show their source in their own text: `… expected usize: … expected usize`).
pub(crate) fn message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(io).context("cannot write x: disk on fire");
        assert_eq!(message(&e), "cannot write x: disk on fire");
        let e = anyhow::Error::new(std::io::Error::other("disk on fire")).context("writing x");
        assert_eq!(message(&e), "writing x: disk on fire");
    }
}
