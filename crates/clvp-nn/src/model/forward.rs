//! `ClvpModelForConditionalGeneration.forward` and the tensor steps of its `generate` (transformers 5.23
//! `modeling_clvp.py`), on a [`LoadedClvp`]: the callers (the facade) check host inputs and compose.
//!
//! `forward` does not decode: the speech ids are the argmax of the decoder's logits over the conditioning
//! sequence itself (one id per conditioning position), fixed up as generated ids are, then scored against the
//! texts.

use burn::tensor::{Int, Tensor, TensorData};

use crate::error::NnError;
use crate::generate::{fix_speech_decoder_output, pad_to_max_mel_tokens};
use crate::model::LoadedClvp;

/// Rows of embeddings on the host, row-major `[rows, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The values.
    pub values: Vec<f32>,
    /// `[rows, dim]`.
    pub shape: [usize; 2],
}

impl Embeddings {
    /// Read a `[rows, dim]` tensor back to the host.
    pub fn from_tensor(t: Tensor<2>) -> Result<Self, NnError> {
        let [rows, dim] = t.dims();
        let values = t
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| NnError::readback("embeddings", e))?;
        Ok(Embeddings {
            values,
            shape: [rows, dim],
        })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        self.values.get(i * self.shape[1]..(i + 1) * self.shape[1])
    }

    /// The rows L2-normalised (HF's `embeds / embeds.norm(p=2, dim=-1, keepdim=True)`).
    pub fn normalized(&self) -> Result<Embeddings, NnError> {
        Ok(Embeddings {
            values: clvp_rank::normalize(&self.values, self.shape[1])?,
            shape: self.shape,
        })
    }
}

/// What [`LoadedClvp::forward`] returns (the fields of HF's `ClvpOutput` that a forward pass without loss
/// gives), on the host.
#[derive(Debug, Clone)]
pub struct ClvpOutput {
    /// The fixed argmax ids the speech encoder scored `[B_speech][L − 1]` (HF computes them and drops them).
    pub speech_ids: Vec<Vec<u32>>,
    /// `logits_per_text` `[B_text, B_speech]`, row-major.
    pub logits_per_text: Vec<f32>,
    /// `logits_per_speech` `[B_speech, B_text]` (the transpose).
    pub logits_per_speech: Vec<f32>,
    /// L2-normalised text embeddings `[B_text, P]`.
    pub text_embeds: Embeddings,
    /// L2-normalised speech embeddings `[B_speech, P]`.
    pub speech_embeds: Embeddings,
    /// The text encoder's pooled output (`text_model_output`) `[B_text, hidden]`.
    pub text_model_output: Embeddings,
    /// The speech encoder's pooled output (`speech_model_output`) `[B_speech, hidden]`.
    pub speech_model_output: Embeddings,
}

impl LoadedClvp {
    /// `ClvpModelForConditionalGeneration.forward(input_ids, input_features, attention_mask)` after the
    /// conditioning encoder: `conditioning` `[B, L, hidden]` is its output. Decoder logits over the
    /// conditioning → argmax → `fix_speech_decoder_output` → speech encoder; text encoder on
    /// `text_ids`/`attention_mask`; cosine similarity times `exp(logit_scale)`.
    pub fn forward(
        &self,
        text_ids: Tensor<2, Int>,
        attention_mask: Option<&[Vec<u32>]>,
        conditioning: Tensor<3>,
    ) -> Result<ClvpOutput, NnError> {
        let m = &self.model;
        let cfg = &self.config;
        let [b, l, _] = conditioning.dims();
        if l > m.speech_decoder_model.max_positions() {
            return Err(NnError::Shape(format!(
                "the conditioning has {l} positions; the decoder's table holds {}",
                m.speech_decoder_model.max_positions()
            )));
        }
        let device = conditioning.device();
        let logits = m.speech_decoder_model.forward_embeds(conditioning, None)?;
        let argmax: Vec<i64> = logits
            .argmax(2)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .map_err(|e| NnError::readback("the decoder's argmax", e))?;
        let rows: Vec<Vec<u32>> = argmax
            .chunks(l.max(1))
            .take(b)
            .map(|r| r.iter().map(|&v| v as u32).collect())
            .collect();
        let speech_ids = self.fix_speech_ids(&rows, None);

        let vocab = cfg.speech_config.vocab_size;
        let width = speech_ids.first().map_or(0, Vec::len);
        let mut flat = Vec::with_capacity(speech_ids.len() * width);
        for &id in speech_ids.iter().flatten() {
            if id as usize >= vocab {
                return Err(NnError::TokenOutOfRange {
                    id: i64::from(id),
                    vocab,
                    what: "speech code",
                });
            }
            flat.push(i64::from(id));
        }
        let codes =
            Tensor::<2, Int>::from_data(TensorData::new(flat, [speech_ids.len(), width]), &device);
        let speech = m.speech_encoder_model.forward(codes, None);
        let text = m.text_encoder_model.forward(text_ids, attention_mask);

        let speech_e = Embeddings::from_tensor(speech.embeds)?;
        let text_e = Embeddings::from_tensor(text.embeds)?;
        let dim = text_e.shape[1];
        let logits_per_text =
            clvp_rank::logits_per_text(&text_e.values, &speech_e.values, dim, self.logit_scale)?;
        let (bt, bs) = (text_e.shape[0], speech_e.shape[0]);
        let mut logits_per_speech = vec![0.0f32; bt * bs];
        for i in 0..bt {
            for j in 0..bs {
                logits_per_speech[j * bt + i] = logits_per_text[i * bs + j];
            }
        }
        Ok(ClvpOutput {
            speech_ids,
            logits_per_text,
            logits_per_speech,
            text_embeds: text_e.normalized()?,
            speech_embeds: speech_e.normalized()?,
            text_model_output: Embeddings::from_tensor(text.pooler_output)?,
            speech_model_output: Embeddings::from_tensor(speech.pooler_output)?,
        })
    }

    /// `generate`'s conditioning: the voice vectors `mel` `[F, 1, hidden]`, then one text's embeddings
    /// (`ids1`, the tokens with their EOS, wrapped in BOS … EOS as `_pad_extra_bos_eos_tokens` does) with
    /// positions, broadcast over the `F` rows as HF's conditioning encoder does: `[F, 1 + text, hidden]`.
    pub fn conditioning(&self, mel: Tensor<3>, ids1: &[u32]) -> Result<Tensor<3>, NnError> {
        let rows = mel.dims()[0];
        let mask1 = vec![vec![1u32; ids1.len()]];
        let text_emb = self.model.conditioning_encoder.text_embeddings(
            &[ids1.to_vec()],
            &mask1,
            &mel.device(),
        )?;
        let text_emb = if rows > 1 {
            text_emb.repeat_dim(0, rows)
        } else {
            text_emb
        };
        Ok(Tensor::cat(vec![mel, text_emb], 1))
    }

    /// `generate`'s last step on the decoder's sequences: padded (or cropped) to `pad_to` (`pad_to_max_mel_tokens`)
    /// when set, then `fix_speech_decoder_output` with this checkpoint's stop token and fixing codes.
    pub fn fix_speech_ids(&self, sequences: &[Vec<u32>], pad_to: Option<usize>) -> Vec<Vec<u32>> {
        let dc = &self.config.decoder_config;
        let stop = dc.eos_token_id as u32;
        match pad_to {
            Some(length) => {
                let padded = pad_to_max_mel_tokens(sequences, length, stop);
                fix_speech_decoder_output(&padded, stop, &dc.decoder_fixing_codes)
            }
            None => fix_speech_decoder_output(sequences, stop, &dc.decoder_fixing_codes),
        }
    }
}
