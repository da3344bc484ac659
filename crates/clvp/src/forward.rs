//! `ClvpModelForConditionalGeneration.forward` and `get_speech_features` through the generate path
//! (transformers 5.23 `modeling_clvp.py`) on the processor's host inputs: checked here, computed by
//! [`clvp_nn::LoadedClvp::forward`]. `get_speech_features(input_ids=…, input_features=…)` generates the speech
//! ids first; in transformers 5.23 that path fails (it passes the *text* attention mask to the speech encoder),
//! ours does what it documents.

use burn::tensor::{Int, Tensor, TensorData};
use clvp_audio::Features;
use clvp_nn::{GenerationConfig, generate};

use crate::model::{Clvp, ClvpError, Embeddings, check_encoder_length};

/// What [`Clvp::forward`] returns: [`clvp_nn::ClvpOutput`] (the fields of HF's `ClvpOutput` that a forward
/// pass without loss gives).
pub type ClvpForwardOutput = clvp_nn::ClvpOutput;

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
        // The speech encoder scores one code per conditioning position but the last: its attention is bounded
        // here, with the facade's error, before the decoder runs (a conditioning longer than the decoder's
        // position table is clvp-nn's error).
        let l = cond.dims()[1];
        if l <= self.model.model.speech_decoder_model.max_positions() {
            check_encoder_length(
                l.saturating_sub(1),
                self.model.config.speech_config.num_attention_heads,
                "speech code",
                "speech encoder",
                "give shorter voice clips",
            )?;
        }
        Ok(self.model.forward(text_ids, attention_mask, cond)?)
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
        let out = generate(
            &m.speech_decoder_model,
            &self.model.config.decoder_config,
            cond,
            config,
        )?;
        let codes = self.model.fix_speech_ids(&out.sequences, None);
        let embeds = self.get_speech_features(&codes)?;
        Ok((embeds, codes))
    }
}
