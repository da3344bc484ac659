//! Text + voice clips → ranked speech candidates: `ClvpModelForConditionalGeneration.generate` (transformers
//! 5.23) with Tortoise's presets and its averaging of several voice clips.
//!
//! ```no_run
//! # fn main() -> Result<(), clvp::ClvpError> {
//! let device = clvp::device::device("cpu")?;
//! let clvp = clvp::Clvp::from_pretrained("susnato/clvp_dev", &device)?;
//! let voice = clvp.processor.load_voice("voice.wav")?;
//! let ranked = clvp.generate("Hello there.", &[voice], &clvp.preset(clvp::Preset::UltraFast))?;
//! println!("best candidate: {:?}", ranked.ranking.first());
//! # Ok(()) }
//! ```

use burn::tensor::{Int, Tensor, TensorData};
use clvp_nn::{GenerationConfig, generate_with_progress};

use crate::model::{Clvp, ClvpError, Embeddings, check_encoder_length};
use crate::score::Scores;
use crate::voice::{Voice, VoiceConditioning};

pub use crate::score::CANDIDATE_BATCH;

/// The most candidates one call generates (`num_return_sequences`).
pub const MAX_CANDIDATES: usize = 4096;

/// The most beams one call runs (`num_beams`; beams decode together, so they are not batched).
pub const MAX_BEAMS: usize = 64;

/// Generated and scored candidates for one text.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// Fixed speech codes `[N][n]` (after `fix_speech_decoder_output`).
    pub speech_ids: Vec<Vec<u32>>,
    /// `logits_per_text` `[1, N]`.
    pub logits_per_text: Vec<f32>,
    /// L2-normalised text embedding `[1, P]`.
    pub text_embeds: Embeddings,
    /// L2-normalised speech embeddings `[N, P]`.
    pub speech_embeds: Embeddings,
    /// Candidates best first: `(index, logit)`.
    pub ranking: Vec<(usize, f32)>,
    /// Beam search only: the decoder's length-normalised beam scores `[N]` (HF's `sequences_scores`), in
    /// candidate order (best beam first).
    pub sequences_scores: Option<Vec<f32>>,
}

impl Clvp {
    /// Generate `config.num_return_sequences` candidates for `text` conditioned on `voices` (clips at the
    /// feature extractor's rate; several clips are averaged as Tortoise does), then score and rank them.
    /// Greedy, sampling or beam search (`config.num_beams > 1`) as `config` says; with
    /// `config.pad_to_max_mel_tokens` the sequences are padded (or cropped) before the fix-up, as HF does.
    pub fn generate(
        &self,
        text: &str,
        voices: &[impl AsRef<[f32]>],
        config: &GenerationConfig,
    ) -> Result<Candidates, ClvpError> {
        self.generate_with_progress(text, voices, config, &mut |_, _| {})
    }

    /// [`Clvp::generate`] with a progress callback `(step, max_new_tokens)`.
    pub fn generate_with_progress(
        &self,
        text: &str,
        voices: &[impl AsRef<[f32]>],
        config: &GenerationConfig,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Candidates, ClvpError> {
        let mut voice = self.voice_conditioning();
        for clip in voices {
            voice.push(clip.as_ref())?;
        }
        self.generate_with_voice(text, voice, config, progress)
    }

    /// [`Clvp::generate_with_progress`] conditioned on the running mean of voice clips ([`VoiceConditioning`]:
    /// clips added one at a time, in the memory of a batch of them however many there are).
    pub fn generate_with_voice(
        &self,
        text: &str,
        voice: VoiceConditioning<'_>,
        config: &GenerationConfig,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Candidates, ClvpError> {
        // Everything is checked before the clips go through the conditioning encoder.
        let ids1 = self.check_request(text, config)?;
        voice.require_clips()?;
        let voice = voice.finish_voice()?;
        self.generate_checked(ids1, &voice, config, progress)
    }

    /// [`Clvp::generate_with_progress`] for a [`Voice`] computed before ([`Clvp::voice`], [`Voice::load`]): the
    /// clips are not encoded again.
    pub fn generate_for_voice(
        &self,
        text: &str,
        voice: &Voice,
        config: &GenerationConfig,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Candidates, ClvpError> {
        let ids1 = self.check_request(text, config)?;
        self.generate_checked(ids1, voice, config, progress)
    }

    /// `ClvpModelForConditionalGeneration.generate(input_ids, input_features)` on the processor's tensors, as
    /// transformers does it: `input_ids` one text's token ids (the tokenizer's, no special tokens; one EOS is
    /// appended as HF's `_pad_extra_bos_eos_tokens` does), `input_features` `[F, feature_size, frames]` log-mels.
    /// Each feature row conditions its own `config.num_return_sequences` candidates (HF broadcasts one text over
    /// F clips; it does not average them as [`Clvp::generate`] and Tortoise do), in row order: `F × k`
    /// candidates, scored against the text. Sampling with more than [`CANDIDATE_BATCH`] candidates in all runs
    /// in batches only when `F = 1`.
    pub fn generate_from_inputs(
        &self,
        input_ids: &[u32],
        input_features: &clvp_audio::Features,
        config: &GenerationConfig,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Candidates, ClvpError> {
        self.check_config(config)?;
        let ids1 = self.text_ids_checked(input_ids.to_vec())?;
        let feats = crate::forward::features_tensor(self, input_features)?;
        let mel = self.model.model.conditioning_encoder.mel_vector(feats);
        self.decode_and_score(ids1, mel, config, progress)
    }

    /// Check a request before any work; returns the text's ids as they condition and are scored.
    fn check_request(&self, text: &str, config: &GenerationConfig) -> Result<Vec<u32>, ClvpError> {
        self.check_config(config)?;
        // The text as it conditions and is scored: tokenized, checked, one EOS appended.
        self.text_ids_for_scoring(text)
    }

    /// The checks of a generation config that need the model: limits, and `pad_to_max_mel_tokens` against
    /// the speech encoder.
    fn check_config(&self, config: &GenerationConfig) -> Result<(), ClvpError> {
        config.validate()?;
        if config.num_return_sequences > MAX_CANDIDATES {
            return Err(ClvpError::TooManyCandidates {
                requested: config.num_return_sequences,
                max: MAX_CANDIDATES,
            });
        }
        if config.num_beams > MAX_BEAMS {
            return Err(ClvpError::TooManyBeams {
                requested: config.num_beams,
                max: MAX_BEAMS,
            });
        }
        if let Some(length) = config.pad_to_max_mel_tokens {
            // Checked before generating: the padded rows (less the start token) go through the speech encoder.
            let heads = self.model.config.speech_config.num_attention_heads;
            check_encoder_length(
                length.saturating_sub(1),
                heads,
                "speech code",
                "speech encoder",
                "lower pad_to_max_mel_tokens",
            )?;
        }
        Ok(())
    }

    fn generate_checked(
        &self,
        ids1: Vec<u32>,
        voice: &Voice,
        config: &GenerationConfig,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Candidates, ClvpError> {
        let mel = voice.tensor(self)?;
        self.decode_and_score(ids1, mel, config, progress)
    }

    /// Generate from conditioning vectors `mel` `[F, 1, hidden]` and one text's ids (with their EOS), fix the
    /// sequences up, and score them against the text.
    fn decode_and_score(
        &self,
        ids1: Vec<u32>,
        mel: Tensor<3>,
        config: &GenerationConfig,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Candidates, ClvpError> {
        let cfg = &self.model.config;
        let m = &self.model.model;
        // Conditioning: the voice vector(s), then [BOS, text, EOS, EOS] with positions.
        let rows = mel.dims()[0];
        let cond = self.model.conditioning(mel, &ids1)?;

        let stop = cfg.decoder_config.eos_token_id as u32;
        let total = config.num_return_sequences;
        let (sequences, sequences_scores) =
            if config.do_sample && rows == 1 && total > CANDIDATE_BATCH {
                let batches = total.div_ceil(CANDIDATE_BATCH);
                let mut sequences = Vec::with_capacity(total);
                for c in 0..batches {
                    let gc = GenerationConfig {
                        num_return_sequences: CANDIDATE_BATCH.min(total - c * CANDIDATE_BATCH),
                        seed: config
                            .seed
                            .wrapping_add((c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                        ..config.clone()
                    };
                    let out = generate_with_progress(
                        &m.speech_decoder_model,
                        &cfg.decoder_config,
                        cond.clone(),
                        &gc,
                        &mut |step, max| progress(c * max + step, batches * max),
                    )?;
                    sequences.extend(out.sequences);
                }
                // Batches that finished early are shorter: pad with the stop id, as a finished row is padded.
                let width = sequences.iter().map(Vec::len).max().unwrap_or(0);
                for s in &mut sequences {
                    s.resize(width, stop);
                }
                (sequences, None)
            } else {
                let out = generate_with_progress(
                    &m.speech_decoder_model,
                    &cfg.decoder_config,
                    cond,
                    config,
                    progress,
                )?;
                (out.sequences, out.sequences_scores)
            };
        let speech_ids = self
            .model
            .fix_speech_ids(&sequences, config.pad_to_max_mel_tokens);

        let rows: Vec<&[u32]> = speech_ids.iter().map(Vec::as_slice).collect();
        let Scores {
            logits_per_text,
            ranking,
            text_embeds,
            speech_embeds,
        } = self.score_ids(&ids1, &rows)?;
        Ok(Candidates {
            speech_ids,
            logits_per_text,
            text_embeds,
            speech_embeds,
            ranking,
            sequences_scores,
        })
    }
}

/// Codes as an `[N, n]` int tensor (for callers that continue on the device).
pub fn codes_tensor(codes: &[Vec<u32>], device: &burn::tensor::Device) -> Tensor<2, Int> {
    let n = codes.len();
    let w = codes.first().map_or(0, Vec::len);
    let flat: Vec<i64> = codes.iter().flatten().map(|&c| c as i64).collect();
    Tensor::from_data(TensorData::new(flat, [n, w]), device)
}
