//! Meta's own checkpoints: `torch.save(model.state_dict())` of `encodec` 0.1.1's `EncodecModel`
//! (`encodec_24khz-d7cc33bc.th`, `encodec_48khz-7e698e3e.th`, PyTorch's zip format, read without running pickle
//! code), loaded through the [`META`](super::META) name table into the same modules as the hub's checkpoints.
//!
//! A `.th` file has no `config.json`. Its configuration is the hub's for `facebook/encodec_24khz` or
//! `facebook/encodec_48khz` ([`EncodecConfig::encodec_24khz`] / [`EncodecConfig::encodec_48khz`]), chosen by the file
//! name (`24khz` / `48khz`, as Meta names them) or else by the tensors (the first conv takes 1 channel at 24 kHz,
//! 2 at 48 kHz). The widths Meta's constructors take as arguments (`n_filters`, `dimension`, the codebooks and their
//! count) are then read from the tensors, so a smaller model built with Meta's classes loads too; its bandwidths are
//! the released ladder up to the one its codebook count serves. Everything else is checked by the strict loader.

use std::path::Path;

use burn::tensor::Device;
use clvp_hub::{HubError, Weights};

use super::{EncodecModel, meta_name_map};
use crate::config::EncodecConfig;
use crate::error::EncodecError;

/// Key prefixes of Meta's `EncodecModel.state_dict()`.
const META_PREFIXES: [&str; 3] = ["encoder.model.", "decoder.model.", "quantizer.vq.layers."];

/// The first encoder conv's weight (`[n_filters, channels, kernel]`) in the three spellings.
const FIRST_CONV: [&str; 3] = [
    "encoder.model.0.conv.conv.weight_v",
    "encoder.model.0.conv.conv.parametrizations.weight.original1",
    "encoder.model.0.conv.conv.weight",
];

/// Unexpected keys an error names.
const NAMED_KEYS: usize = 5;

/// The two released layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Released {
    Khz24,
    Khz48,
}

impl Released {
    fn name(self) -> &'static str {
        match self {
            Released::Khz24 => "encodec_24khz",
            Released::Khz48 => "encodec_48khz",
        }
    }

    fn channels(self) -> usize {
        match self {
            Released::Khz24 => 1,
            Released::Khz48 => 2,
        }
    }

    /// The hub's `config.json` of the released model (`EncodecConfig::encodec_24khz()` / `_48khz()`).
    fn config(self) -> EncodecConfig {
        match self {
            Released::Khz24 => EncodecConfig::encodec_24khz(),
            Released::Khz48 => EncodecConfig::encodec_48khz(),
        }
    }

    /// `encodec_24khz` / `encodec_48khz` in a file name (Meta's names; `24khz` alone is enough).
    fn from_file_name(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        match (name.contains("24khz"), name.contains("48khz")) {
            (true, false) => Some(Released::Khz24),
            (false, true) => Some(Released::Khz48),
            _ => None,
        }
    }
}

/// What a file that is not a Meta EnCodec state dict looks like, for the error.
fn hint(keys: &[&str]) -> String {
    let any = |p: &str| keys.iter().any(|k| k.starts_with(p));
    let what = if any("best_state.") || any("xp.cfg") {
        "an audiocraft training checkpoint (`best_state`, `xp.cfg`); export its `best_state` state dict"
    } else if any("transformer.") && any("emb.") && any("linears.") {
        "encodec's entropy-coding language model (`encodec_lm_*.th`), not the codec"
    } else if any("encoder.layers.") || any("quantizer.layers.") {
        "a transformers EnCodec checkpoint: pass its directory (config.json and the weights) instead"
    } else if any("speech_decoder_model.") || any("text_encoder_model.") {
        "a CLVP checkpoint"
    } else {
        return String::new();
    };
    format!("; it looks like {what}")
}

/// The configuration of a Meta EnCodec state dict (see the module docs), or why there is none.
pub fn meta_config(weights: &Weights) -> Result<EncodecConfig, EncodecError> {
    let file = weights.origin();
    let label = file.display().to_string();
    let keys: Vec<&str> = weights.keys().collect();
    if !keys
        .iter()
        .any(|k| META_PREFIXES.iter().any(|p| k.starts_with(p)))
    {
        return Err(EncodecError::NotMetaCheckpoint {
            file: file.to_path_buf(),
            keys: keys
                .iter()
                .take(NAMED_KEYS)
                .map(|k| k.to_string())
                .collect(),
            total: keys.len(),
            hint: hint(&keys),
        });
    }
    let bad = |field: &str, message: String| EncodecError::Config {
        file: label.clone(),
        field: field.to_string(),
        message,
    };
    let first = FIRST_CONV.iter().find_map(|k| weights.get(k));
    let from_tensors = match first.map(|e| e.shape()) {
        Some([_, 1, _]) => Some(Released::Khz24),
        Some([_, 2, _]) => Some(Released::Khz48),
        Some(other) => {
            return Err(bad(
                "audio_channels",
                format!(
                    "the first encoder conv `{}` has shape {other:?}: neither encodec_24khz's [n, 1, k] nor \
                     encodec_48khz's [n, 2, k]",
                    first.map(|e| e.key()).unwrap_or_default()
                ),
            ));
        }
        None => None,
    };
    let released = match (Released::from_file_name(file), from_tensors) {
        (Some(n), Some(t)) if n != t => {
            return Err(bad(
                "audio_channels",
                format!(
                    "the file is named for {} ({} channel(s)) but its first encoder conv takes {} channel(s)",
                    n.name(),
                    n.channels(),
                    t.channels()
                ),
            ));
        }
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) => {
            return Err(bad(
                "audio_channels",
                format!(
                    "cannot tell encodec_24khz from encodec_48khz: the file name says neither and there is no \
                     first encoder conv ({})",
                    FIRST_CONV[0]
                ),
            ));
        }
    };
    let mut config = released.config();
    // The widths Meta's constructors take as arguments, from the tensors.
    if let Some(e) = first {
        config.num_filters = e.shape()[0];
    }
    let books = (0..)
        .map_while(|n| weights.get(&format!("quantizer.vq.layers.{n}._codebook.embed")))
        .collect::<Vec<_>>();
    if let Some([bins, dim]) = books.first().map(|e| e.shape()) {
        config.codebook_size = *bins;
        config.hidden_size = *dim;
    }
    let n_q = books.len();
    let ladder = config.target_bandwidths.clone();
    let served: Vec<f64> = ladder
        .iter()
        .copied()
        .filter(|&b| config.num_quantizers_for_bandwidth(b) <= n_q)
        .collect();
    match served.last() {
        Some(&top) if config.num_quantizers_for_bandwidth(top) == n_q => {
            config.target_bandwidths = served;
        }
        _ => {
            let needs: Vec<String> = ladder
                .iter()
                .map(|&b| format!("{b} kbps: {}", config.num_quantizers_for_bandwidth(b)))
                .collect();
            return Err(bad(
                "target_bandwidths",
                format!(
                    "the checkpoint has {n_q} codebook(s) (quantizer.vq.layers.N._codebook.embed); {}'s bandwidths \
                     need {}",
                    released.name(),
                    needs.join(", ")
                ),
            ));
        }
    }
    config.validate(&label)?;
    Ok(config)
}

impl EncodecModel {
    /// Load one of Meta's own checkpoints (`encodec_24khz-d7cc33bc.th`, `encodec_48khz-7e698e3e.th`, or any
    /// `torch.save(model.state_dict())` of `encodec` 0.1.1's `EncodecModel`) onto `device`, strictly: the
    /// configuration from the file name or the tensors ([`meta_config`]), the keys through
    /// [`meta_name_map`]. A file that is something else (the LM, an audiocraft checkpoint)
    /// is an [`EncodecError::NotMetaCheckpoint`] naming some of its keys.
    pub fn from_meta_file(path: impl AsRef<Path>, device: &Device) -> Result<Self, EncodecError> {
        let weights = Weights::open(path.as_ref()).map_err(HubError::from)?;
        Self::from_meta_weights(&weights, device)
    }

    /// [`Self::from_meta_file`] of opened weights.
    pub fn from_meta_weights(weights: &Weights, device: &Device) -> Result<Self, EncodecError> {
        let config = meta_config(weights)?;
        let map = meta_name_map(&config);
        Self::load(config, weights, &map, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_say_which_model() {
        for (name, want) in [
            ("encodec_24khz-d7cc33bc.th", Some(Released::Khz24)),
            ("/x/ENCODEC_48KHZ-7e698e3e.th", Some(Released::Khz48)),
            ("model.th", None),
            ("24khz_vs_48khz.th", None),
        ] {
            assert_eq!(Released::from_file_name(Path::new(name)), want, "{name}");
        }
    }

    #[test]
    fn hints_name_what_a_file_is() {
        assert!(
            hint(&["best_state.encoder.model.0.conv.conv.bias", "xp.cfg"]).contains("audiocraft")
        );
        assert!(
            hint(&[
                "emb.0.weight",
                "linears.0.bias",
                "transformer.layers.0.norm1.weight"
            ])
            .contains("language model")
        );
        assert!(hint(&["encoder.layers.0.conv.bias"]).contains("transformers"));
        assert_eq!(hint(&["a.b"]), "");
    }
}
