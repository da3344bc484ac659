//! `ClvpModelForConditionalGeneration.forward` and `get_speech_features` through the generate path
//! (transformers 5.23 `modeling_clvp.py`).
//!
//! `forward` does not decode: the speech ids are the argmax of the decoder's logits over the conditioning
//! sequence itself (one id per conditioning position), fixed up as generated ids are, then scored against the
//! texts. `get_speech_features(input_ids=…, input_features=…)` generates the speech ids first; in transformers 5.23
//! that path fails (it passes the *text* attention mask to the speech encoder), ours does what it documents.

use burn::tensor::{Int, Tensor, TensorData};
use clvp_audio::Features;
use clvp_nn::{GenerationConfig, fix_speech_decoder_output, generate};

use crate::model::{Clvp, ClvpError, Embeddings};

/// What [`Clvp::forward`] returns (the fields of HF's `ClvpOutput` that a forward pass without loss gives).
#[derive(Debug, Clone)]
pub struct ClvpForwardOutput {
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

pub(crate) fn features_tensor(clvp: &Clvp, f: &Features) -> Result<Tensor<3>, ClvpError> {
    let [b, mels, frames] = f.shape;
    if b == 0 || frames == 0 || f.input_features.len() != b * mels * frames {
        return Err(ClvpError::Input(format!(
            "input_features hold {} values for the shape {:?}",
            f.input_features.len(),
            f.shape
        )));
    }
    let want = clvp.model.config.decoder_config.feature_size;
    if mels != want {
        return Err(ClvpError::Input(format!(
            "input_features have {mels} mel channels; the conditioning encoder takes {want}"
        )));
    }
    Ok(Tensor::from_data(
        TensorData::new(f.input_features.clone(), f.shape),
        clvp.device(),
    ))
}

/// What the conditioning encoder needs besides `Clvp::ids_tensor`'s checks: a mask of the ids' shape and
/// room in its text position table for BOS, the text and two EOS.
fn check_text_fits(
    clvp: &Clvp,
    ids: &[Vec<u32>],
    mask: Option<&[Vec<u32>]>,
) -> Result<(), ClvpError> {
    let width = ids.first().map_or(0, Vec::len);
    if let Some(m) = mask
        && (m.len() != ids.len() || m.iter().any(|r| r.len() != width))
    {
        return Err(ClvpError::Input(format!(
            "attention_mask is {}×{}, input_ids {}×{width}",
            m.len(),
            m.first().map_or(0, Vec::len),
            ids.len(),
        )));
    }
    let dc = &clvp.model.config.decoder_config;
    if width + 3 > dc.max_text_tokens {
        return Err(ClvpError::Input(format!(
            "{width} text tokens; the conditioning encoder's position table holds {} (max_text_tokens) including \
             BOS and two EOS",
            dc.max_text_tokens
        )));
    }
    Ok(())
}

impl Clvp {
    /// The checked text ids as a tensor and the conditioning encoder's output for them and `input_features`.
    fn text_and_conditioning(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
        input_features: &Features,
    ) -> Result<(Tensor<2, Int>, Tensor<3>), ClvpError> {
        let tc = &self.model.config.text_config;
        let text_ids = self.ids_tensor(
            input_ids,
            tc.vocab_size,
            tc.num_attention_heads,
            "text token",
        )?;
        check_text_fits(self, input_ids, attention_mask)?;
        let feats = features_tensor(self, input_features)?;
        let cond =
            self.model
                .model
                .conditioning_encoder
                .forward(feats, input_ids, attention_mask)?;
        Ok((text_ids, cond))
    }

    /// `ClvpModelForConditionalGeneration.forward(input_ids, input_features, attention_mask)`: conditioning
    /// encoder → decoder logits over the conditioning → argmax → `fix_speech_decoder_output` → speech encoder;
    /// text encoder on `input_ids`/`attention_mask`; cosine similarity times `logit_scale`. Texts and clips
    /// broadcast as the conditioning encoder does (1 × N, N × 1 or N × N).
    pub fn forward(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
        input_features: &Features,
    ) -> Result<ClvpForwardOutput, ClvpError> {
        let (text_ids, cond) =
            self.text_and_conditioning(input_ids, attention_mask, input_features)?;
        let m = &self.model.model;
        let cfg = &self.model.config;
        let [b, l, _] = cond.dims();
        if l > m.speech_decoder_model.max_positions() {
            return Err(ClvpError::Input(format!(
                "the conditioning has {l} positions; the decoder's table holds {}",
                m.speech_decoder_model.max_positions()
            )));
        }
        let logits = m.speech_decoder_model.forward_embeds(cond, None)?;
        let argmax: Vec<i64> = logits
            .argmax(2)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .map_err(|e| ClvpError::readback("the decoder's argmax", e))?;
        let rows: Vec<Vec<u32>> = argmax
            .chunks(l.max(1))
            .take(b)
            .map(|r| r.iter().map(|&v| v as u32).collect())
            .collect();
        let stop = cfg.decoder_config.eos_token_id as u32;
        let speech_ids =
            fix_speech_decoder_output(&rows, stop, &cfg.decoder_config.decoder_fixing_codes);

        let c = &cfg.speech_config;
        let codes = self.ids_tensor(
            &speech_ids,
            c.vocab_size,
            c.num_attention_heads,
            "speech code",
        )?;
        let speech = m.speech_encoder_model.forward(codes, None);
        let text = m.text_encoder_model.forward(text_ids, attention_mask);

        let speech_e = Embeddings::from_tensor(speech.embeds)?;
        let text_e = Embeddings::from_tensor(text.embeds)?;
        let dim = text_e.shape[1];
        let rank_err = ClvpError::Rank;
        let logits_per_text = clvp_rank::logits_per_text(
            &text_e.values,
            &speech_e.values,
            dim,
            self.model.logit_scale,
        )
        .map_err(rank_err)?;
        let (bt, bs) = (text_e.shape[0], speech_e.shape[0]);
        let mut logits_per_speech = vec![0.0f32; bt * bs];
        for i in 0..bt {
            for j in 0..bs {
                logits_per_speech[j * bt + i] = logits_per_text[i * bs + j];
            }
        }
        Ok(ClvpForwardOutput {
            speech_ids,
            logits_per_text,
            logits_per_speech,
            text_embeds: Embeddings {
                values: clvp_rank::normalize(&text_e.values, dim).map_err(rank_err)?,
                shape: text_e.shape,
            },
            speech_embeds: Embeddings {
                values: clvp_rank::normalize(&speech_e.values, dim).map_err(rank_err)?,
                shape: speech_e.shape,
            },
            text_model_output: Embeddings::from_tensor(text.pooler_output)?,
            speech_model_output: Embeddings::from_tensor(speech.pooler_output)?,
        })
    }

    /// `get_speech_features(input_ids=…, input_features=…, attention_mask=…, generation_config=…)`: the
    /// conditioning encoder on the texts as given (no extra EOS, unlike `generate`), the decoder's `generate`
    /// with `config`, `fix_speech_decoder_output`, then the speech encoder: projected embeddings, **not**
    /// normalised, `[rows, projection_dim]` (rows = conditioning rows × `num_return_sequences`). The generated
    /// codes are returned too. transformers 5.23 fails on this path; this is what it documents.
    pub fn get_speech_features_generated(
        &self,
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<u32>]>,
        input_features: &Features,
        config: &GenerationConfig,
    ) -> Result<(Embeddings, Vec<Vec<u32>>), ClvpError> {
        let (_, cond) = self.text_and_conditioning(input_ids, attention_mask, input_features)?;
        let m = &self.model.model;
        let cfg = &self.model.config;
        let out = generate(&m.speech_decoder_model, &cfg.decoder_config, cond, config)?;
        let stop = cfg.decoder_config.eos_token_id as u32;
        let codes = fix_speech_decoder_output(
            &out.sequences,
            stop,
            &cfg.decoder_config.decoder_fixing_codes,
        );
        let embeds = self.get_speech_features(&codes)?;
        Ok((embeds, codes))
    }
}
