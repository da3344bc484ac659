//! What a checkpoint is: CLVP, EnCodec or another model, from `config.json`'s `model_type` (or
//! `architectures`), else from its weights' key prefixes. A checkpoint given to the wrong model is reported as
//! what it is ("… is an EnCodec checkpoint, not a CLVP checkpoint"), not as hundreds of missing keys.

use crate::checkpoint::{CONFIG, Checkpoint};
use crate::error::HubError;
use crate::weights::Weights;

/// The models of this workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `ClvpModelForConditionalGeneration` (`model_type` `clvp`).
    Clvp,
    /// `EncodecModel` (`model_type` `encodec`).
    Encodec,
}

impl ModelKind {
    /// The name in messages: `CLVP`, `EnCodec`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Clvp => "CLVP",
            ModelKind::Encodec => "EnCodec",
        }
    }

    /// `config.json`'s `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            ModelKind::Clvp => "clvp",
            ModelKind::Encodec => "encodec",
        }
    }

    /// The `architectures` class name prefix (`ClvpModelForConditionalGeneration`, `EncodecModel`).
    fn architecture(self) -> &'static str {
        match self {
            ModelKind::Clvp => "Clvp",
            ModelKind::Encodec => "Encodec",
        }
    }

    /// Key prefixes only this model's weights have.
    fn key_prefixes(self) -> &'static [&'static str] {
        match self {
            ModelKind::Clvp => &[
                "text_encoder_model.",
                "speech_encoder_model.",
                "speech_decoder_model.",
                "conditioning_encoder.",
            ],
            ModelKind::Encodec => &["encoder.layers.", "decoder.layers.", "quantizer.layers."],
        }
    }

    fn other(self) -> ModelKind {
        match self {
            ModelKind::Clvp => ModelKind::Encodec,
            ModelKind::Encodec => ModelKind::Clvp,
        }
    }

    /// `an EnCodec checkpoint`, `a CLVP checkpoint`.
    pub fn described(self) -> String {
        match self {
            ModelKind::Clvp => "a CLVP checkpoint".into(),
            ModelKind::Encodec => "an EnCodec checkpoint".into(),
        }
    }
}

/// What a `config.json` object says the checkpoint is: `Some((description, evidence))` when it names a model
/// other than `expected`, `None` when it names `expected` or nothing usable.
fn config_mismatch(
    config: &serde_json::Map<String, serde_json::Value>,
    expected: ModelKind,
) -> Option<(String, String)> {
    if let Some(t) = config.get("model_type").and_then(|v| v.as_str()) {
        if t == expected.model_type() {
            return None;
        }
        let found = if t == expected.other().model_type() {
            expected.other().described()
        } else {
            format!("a `{t}` checkpoint")
        };
        return Some((found, format!("{CONFIG} has model_type \"{t}\"")));
    }
    let names: Vec<&str> = config
        .get("architectures")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let first = names.first()?;
    if names.iter().any(|n| n.starts_with(expected.architecture())) {
        return None;
    }
    let found = if first.starts_with(expected.other().architecture()) {
        expected.other().described()
    } else {
        format!("a `{first}` checkpoint")
    };
    Some((found, format!("{CONFIG} lists the architecture {first}")))
}

impl Checkpoint {
    /// Fail with [`HubError::WrongModel`] when `config.json` says this is not an `expected` checkpoint
    /// (`model_type`, else `architectures`). A missing or unreadable config passes: the model's loader reports
    /// it. See [`Weights::expect_model`] for configs that say nothing.
    pub fn expect_model(&self, expected: ModelKind) -> Result<(), HubError> {
        let Some(path) = self.file(CONFIG)? else {
            return Ok(());
        };
        let Ok(config) = crate::config::JsonConfig::read(&path) else {
            return Ok(());
        };
        match config_mismatch(config.as_map(), expected) {
            Some((found, evidence)) => Err(HubError::WrongModel {
                location: self.source().to_string(),
                expected: expected.described(),
                found,
                evidence,
            }),
            None => Ok(()),
        }
    }
}

impl Weights {
    /// Fail with [`HubError::WrongModel`] when the keys are another model's: none of `expected`'s key prefixes
    /// and some of the other model's (`speech_decoder_model.…` in weights given to EnCodec, say).
    pub fn expect_model(&self, expected: ModelKind) -> Result<(), HubError> {
        let has = |kind: ModelKind| {
            self.keys()
                .find(|k| kind.key_prefixes().iter().any(|p| k.starts_with(p)))
        };
        if has(expected).is_some() {
            return Ok(());
        }
        match has(expected.other()) {
            Some(key) => Err(HubError::WrongModel {
                location: self.origin().display().to_string(),
                expected: expected.described(),
                found: expected.other().described(),
                evidence: format!("its weights have keys like `{key}`"),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mismatch(json: &str, expected: ModelKind) -> Option<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        config_mismatch(v.as_object()?, expected)
    }

    #[test]
    fn configs_name_what_they_are() {
        use ModelKind::*;
        assert_eq!(mismatch(r#"{"model_type": "clvp"}"#, Clvp), None);
        assert_eq!(mismatch(r#"{"model_type": "encodec"}"#, Encodec), None);
        let (found, evidence) = mismatch(r#"{"model_type": "encodec"}"#, Clvp).unwrap_or_default();
        assert_eq!(found, "an EnCodec checkpoint");
        assert!(evidence.contains("model_type \"encodec\""), "{evidence}");
        let (found, _) = mismatch(r#"{"model_type": "clvp"}"#, Encodec).unwrap_or_default();
        assert_eq!(found, "a CLVP checkpoint");
        let (found, _) = mismatch(r#"{"model_type": "bert"}"#, Clvp).unwrap_or_default();
        assert_eq!(found, "a `bert` checkpoint");
        // No model_type: the architectures decide; neither: nothing to say.
        let (found, _) =
            mismatch(r#"{"architectures": ["EncodecModel"]}"#, Clvp).unwrap_or_default();
        assert_eq!(found, "an EnCodec checkpoint");
        assert_eq!(
            mismatch(
                r#"{"architectures": ["ClvpModelForConditionalGeneration"]}"#,
                Clvp
            ),
            None
        );
        assert_eq!(mismatch(r#"{"hidden_size": 4}"#, Clvp), None);
        assert_eq!(mismatch(r#"{"model_type": 5}"#, Clvp), None);
    }
}
