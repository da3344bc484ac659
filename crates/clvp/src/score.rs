//! Scoring speech candidates against a text, exactly as [`Clvp::generate`] ranks its own: the dataset filter
//! (a bad transcript scores low) and re-ranking candidates that came from elsewhere.
//!
//! The text is embedded as `generate` embeds it, with one EOS appended (HF's `_pad_extra_bos_eos_tokens`
//! inside `ClvpModelForConditionalGeneration.generate`); [`Clvp::embed_text`] does not append it and gives
//! another vector. Each candidate is embedded as it is given: HF's speech encoder averages over every position
//! (`last_hidden_state.mean(dim=1)`, attention mask or not), so padding a short candidate to a batch's length
//! would change its embedding. Candidates are therefore grouped by length and each group runs as one batch, in
//! batches of [`CANDIDATE_BATCH`] as `generate` runs its own.
//!
//! ```no_run
//! # fn main() -> Result<(), clvp::ClvpError> {
//! let device = clvp::device::device("cpu")?;
//! let clvp = clvp::Clvp::from_pretrained("susnato/clvp_dev", &device)?;
//! let candidates: Vec<Vec<u32>> = vec![vec![12, 400, 7], vec![12, 400]];
//! let scores = clvp.score("Hello there.", &candidates)?;
//! println!("best: candidate {} ({})", scores.ranking[0].0, scores.ranking[0].1);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use crate::model::{Clvp, ClvpError, Embeddings, check_encoder_length};
use crate::processor::ProcessorError;

/// Sampled candidates decoded together (Tortoise's `autoregressive_batch_size`, 16): more candidates run in
/// batches of this size, so the KV cache (≈ 150 MB per candidate at full size and 600 positions) stays bounded
/// whatever the preset. Batch `c` samples with the seed `seed + c · 0x9E3779B97F4A7C15` (batch 0 with `seed`
/// itself, so up to 16 candidates are exactly one `generate` call); the speech encoder runs in batches of the
/// same size.
pub const CANDIDATE_BATCH: usize = 16;

/// Candidates scored against a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// `logits_per_text` `[1, N]`: the scaled cosine similarity of the text with each candidate.
    pub logits_per_text: Vec<f32>,
    /// Candidates best first: `(index, logit)`.
    pub ranking: Vec<(usize, f32)>,
    /// L2-normalised text embedding `[1, P]`.
    pub text_embeds: Embeddings,
    /// L2-normalised speech embeddings `[N, P]`, in candidate order.
    pub speech_embeds: Embeddings,
}

impl Clvp {
    /// Score `candidates` (speech codes, e.g. `Candidates::speech_ids` of another run, or codes from another
    /// model) against `text`, as [`Clvp::generate`] scores and ranks its own candidates; candidates may have
    /// different lengths (see the module documentation). Scoring `generate`'s own `speech_ids` gives its
    /// `logits_per_text` and `ranking`.
    pub fn score<C: AsRef<[u32]>>(
        &self,
        text: &str,
        candidates: &[C],
    ) -> Result<Scores, ClvpError> {
        let ids = self.text_ids_for_scoring(text)?;
        let rows: Vec<&[u32]> = candidates.iter().map(AsRef::as_ref).collect();
        self.score_ids(&ids, &rows)
    }

    /// The token ids `generate` conditions on and scores with: `text` tokenized, checked against the model's
    /// limits, and one EOS appended.
    pub fn text_ids_for_scoring(&self, text: &str) -> Result<Vec<u32>, ClvpError> {
        let ids = self
            .processor
            .tokenizer
            .encode(text)
            .map_err(ProcessorError::from)?;
        self.text_ids_checked(ids)
    }

    /// Token ids as they condition and are scored: checked (not empty, room for BOS and two EOS in the
    /// conditioning encoder's table, in the text vocabulary), one EOS appended.
    pub(crate) fn text_ids_checked(&self, mut ids: Vec<u32>) -> Result<Vec<u32>, ClvpError> {
        let cfg = &self.model.config;
        let limit = cfg.decoder_config.max_text_tokens.saturating_sub(3);
        if ids.len() > limit {
            return Err(ClvpError::TextTooLong {
                tokens: ids.len(),
                limit,
                max_text_tokens: cfg.decoder_config.max_text_tokens,
            });
        }
        if ids.is_empty() {
            return Err(ClvpError::EmptyText);
        }
        let vocab = cfg.text_config.vocab_size;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(clvp_nn::NnError::TokenOutOfRange {
                id: i64::from(id),
                vocab,
                what: "text token",
            }
            .into());
        }
        ids.push(cfg.text_config.eos_token_id as u32);
        Ok(ids)
    }

    /// Score code rows against text ids as they are (`ids` already carry the EOS): the one implementation
    /// behind [`Clvp::score`] and [`Clvp::generate`]'s ranking.
    pub(crate) fn score_ids(&self, ids: &[u32], rows: &[&[u32]]) -> Result<Scores, ClvpError> {
        if rows.is_empty() {
            return Err(ClvpError::NoCandidates);
        }
        let heads = self.model.config.speech_config.num_attention_heads;
        for (i, row) in rows.iter().enumerate() {
            if row.is_empty() {
                return Err(ClvpError::EmptyCandidate { index: i });
            }
            check_encoder_length(
                row.len(),
                heads,
                "speech code",
                "speech encoder",
                "give fewer codes per candidate",
            )?;
        }
        // Rows grouped by length (in order of first appearance within a length), each group in batches.
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            groups.entry(row.len()).or_default().push(i);
        }
        let mut speech: Vec<Option<Vec<f32>>> = vec![None; rows.len()];
        let mut dim = 0;
        for members in groups.values() {
            for batch in members.chunks(CANDIDATE_BATCH) {
                let codes: Vec<Vec<u32>> = batch.iter().map(|&i| rows[i].to_vec()).collect();
                let e = self.get_speech_features(&codes)?;
                dim = e.shape[1];
                for (r, &i) in batch.iter().enumerate() {
                    speech[i] = e.row(r).map(<[f32]>::to_vec);
                }
            }
        }
        let speech: Vec<f32> = speech.into_iter().flatten().flatten().collect();
        if speech.len() != rows.len() * dim {
            return Err(ClvpError::Input(
                "the speech encoder returned fewer rows than candidates".into(),
            ));
        }
        let text_e = self.get_text_features(&[ids.to_vec()], None)?;
        let logits_per_text =
            clvp_rank::logits_per_text(&text_e.values, &speech, dim, self.model.logit_scale)?;
        let ranking = clvp_rank::top_k(&logits_per_text, logits_per_text.len());
        Ok(Scores {
            ranking,
            text_embeds: text_e.normalized()?,
            speech_embeds: Embeddings {
                values: speech,
                shape: [rows.len(), dim],
            }
            .normalized()?,
            logits_per_text,
        })
    }
}
