//! CLVP (the Contrastive Language-Voice Pretrained Transformer of Tortoise TTS) and the EnCodec codec in Rust.
//!
//! The facade that downstream TTS projects depend on: it composes the tokenizer ([`raw::text`]), the audio
//! front end ([`raw::audio`]), checkpoint loading ([`raw::hub`]), the networks ([`raw::nn`]), ranking
//! ([`raw::rank`]) and EnCodec ([`raw::encodec`]), and picks a burn backend at run time ([`device`]). Its
//! promise is its own items ([`Clvp`], [`Encodec`], [`Voice`], [`Error`], ...: `crates/clvp/public-api.txt`);
//! the inner crates under [`raw`] are outside it.
//!
//! # Example
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = clvp::device::device("cpu")?;
//! let clvp = clvp::Clvp::from_pretrained("susnato/clvp_dev", &device)?;
//! // A speaker's conditioning, computed once (and savable with `Voice::save`).
//! let voice = clvp.voice(&[clvp.processor.load_voice("speaker.wav")?])?;
//! // Generate and rank candidates for a sentence (Tortoise's ultra_fast preset, fitted to the checkpoint).
//! let config = clvp.preset(clvp::Preset::UltraFast);
//! let ranked = clvp.generate_for_voice("Hello there.", &voice, &config, &mut |_, _| {})?;
//! let best = &ranked.speech_ids[ranked.ranking[0].0];
//! // Score codes that came from elsewhere exactly as `generate` ranks its own.
//! let scores = clvp.score("Hello there.", &[best.clone()])?;
//! println!("best candidate: {} codes, logit {}", best.len(), scores.logits_per_text[0]);
//!
//! // EnCodec: a WAV to codes, Meta's `.ecdc` container, and back.
//! let codec = clvp::Encodec::from_pretrained(clvp::DEFAULT_ENCODEC, &device)?;
//! let codes = codec.encode(&clvp::load_audio("speech.wav")?, Some(6.0))?;
//! codec.save_ecdc(&codes, "speech.ecdc")?;
//! let audio = codec.decode(&codec.load_ecdc("speech.ecdc")?)?;
//! # Ok(()) }
//! ```
//!
//! Runnable versions on the repository's tiny checkpoints: `examples/rank_candidates.rs`,
//! `examples/reuse_voice.rs`, `examples/encodec_roundtrip.rs` (`cargo run -p clvp --example NAME`).
//!
//! # Speed on the CPU
//!
//! The `flex` feature (default) runs burn-flex with gemm's AVX-512 kernels, chosen at run time. burn-flex
//! allocates a buffer per op; under glibc's malloc each large one is mapped fresh and page-faulted in, which
//! cost 20 % of a batched speech-encoder run. A library cannot pick the allocator, so a binary should:
//! the `clvp` command line uses mimalloc (`#[global_allocator] static A: mimalloc::MiMalloc = mimalloc::MiMalloc;`).
//! Measured figures: `docs/performance.md`.

#![warn(missing_docs)]

pub mod codec;
pub mod device;
pub mod error;
pub mod forward;
pub mod generate;
pub mod model;
pub mod preset;
pub mod processor;
pub mod score;
pub mod voice;

pub use clvp_nn::host::Precision as WeightPrecision;
pub use clvp_nn::{EarlyStopping, GenerationConfig, PrefillPositions};
pub use codec::{
    AudioCodes, ChunkCodes, CodecError, CompactCodes, DEFAULT_ENCODEC, DEFAULT_ENCODEC_HQ, Encodec,
    HfCodes, ecdc_segment_refs,
};
pub use device::{DeviceChoice, DeviceError};
pub use error::Error;
pub use forward::ClvpForwardOutput;
pub use generate::{CANDIDATE_BATCH, Candidates, MAX_BEAMS, MAX_CANDIDATES};
pub use model::{Clvp, ClvpError, DEFAULT_MODEL, Embeddings};
pub use preset::{Preset, UnknownPreset};
pub use processor::{ClvpProcessor, ProcessorError, ProcessorOutput};
pub use score::Scores;
pub use voice::{VOICE_BATCH, Voice, VoiceConditioning};

/// Decode a whole audio file (any format symphonia reads) to planar f32 at its own rate
/// (`clvp-audio`'s `load_audio` with the facade's [`Error`]).
pub fn load_audio(path: impl AsRef<std::path::Path>) -> Result<Audio, Error> {
    Ok(clvp_audio::load_audio(path)?)
}

pub use clvp_audio::{Audio, AudioReader, WavWriter, write_wav};

/// The inner crates, whole, for those who pick and mix them (the tokenizer alone, the networks without the
/// facade, EnCodec's model and container directly). **Outside the facade's semver promise**: what the facade
/// promises is its own items, listed in `crates/clvp/public-api.txt` and checked by CI
/// (`cargo xtask public-api --check`); these follow their own crates' versions.
pub mod raw {
    pub use clvp_audio as audio;
    pub use clvp_hub as hub;
    pub use clvp_nn as nn;
    pub use clvp_rank as rank;
    pub use clvp_text as text;
    pub use encodec_codec as encodec;
}
