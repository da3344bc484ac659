//! The name tables of an EnCodec checkpoint: transformers' keys (`encoder.layers.0.conv.weight_g`) and Meta's own
//! (`encoder.model.0.conv.conv.weight_g`, the `.th` files of `encodec` 0.1.1), both onto the same burn modules.
//!
//! A table is generated from [`layer_table`] (which HF / Meta layer index is which stage; the two numberings are the
//! same) and one [`Spelling`]: a few rows saying how that layout spells a conv, a norm, a resnet block's parts, the
//! LSTM and the codebooks. Nothing is written per key. transformers' `convert_encodec_checkpoint_to_pytorch.py`
//! documents the Meta → HF map these two spellings encode:
//!
//! | Meta key (after weight-norm folding) | HF key | burn path |
//! |---|---|---|
//! | `{enc,dec}oder.model.{i}.conv.conv.{weight,bias}` | `….layers.{i}.conv.*` | `….conv.*` of the stage |
//! | `decoder.model.{i}.convtr.convtr.{weight,bias}` (transposed) | `decoder.layers.{i}.conv.*` | `decoder.stages.{s}.conv.conv.*` |
//! | `….model.{i}.{conv,convtr}.norm.{weight,bias}` (48 kHz GroupNorm) | `….layers.{i}.norm.*` | `….norm.*` |
//! | `….model.{i}.block.{1,3}.conv.{conv,norm}.*`, `….shortcut.conv.{conv,norm}.*` | `….block.{1,3}.{conv,norm}.*`, `….shortcut.*` | `….res.{j}.block.{0,1}.*`, `….shortcut.*` |
//! | `….model.{i}.lstm.{weight,bias}_{ih,hh}_l{k}` | `….layers.{i}.lstm.*` | LSTM gate controllers |
//! | `quantizer.vq.layers.{n}._codebook.embed` | `quantizer.layers.{n}.codebook.embed` | same as HF |
//! | `quantizer.vq.layers.{n}._codebook.{inited,cluster_size,embed_avg}` | `….codebook.*` | ignored (EMA state) |
//!
//! Weight norm is folded before a key is matched, in either spelling (`weight_g`/`weight_v`, as Meta's files and
//! the hub's have them, or `parametrizations.weight.original0/1`, as torch ≥ 2.1's `weight_norm` saves them).

use clvp_hub::{Layout, NameMap};

use crate::config::EncodecConfig;
use crate::seanet::{LayerSlot, layer_table};

/// Which stage of a layer a row is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A conv layer (`LayerSlot::Conv`): its conv and its norm.
    Conv,
    /// A resnet block (`LayerSlot::ResBlock`).
    Res,
    /// The LSTM (`LayerSlot::Lstm`).
    Lstm,
}

/// One layout's spelling of a checkpoint's keys.
#[derive(Debug)]
pub struct Spelling {
    /// The name table's name (in error messages).
    pub name: &'static str,
    /// The module list of encoder and decoder: `layers` (HF) or `model` (Meta).
    list: &'static str,
    /// `(part, pattern after "{encoder|decoder}.{list}.{i}.", burn path below the slot)`.
    rows: &'static [(Part, &'static str, &'static str, Layout)],
    /// The codebook key (`$1` = the quantizer layer).
    codebook: &'static str,
    /// Buffers present and not loaded.
    ignored: &'static str,
}

/// transformers' `EncodecModel` (the hub's `model.safetensors` / `pytorch_model.bin`).
pub const HF: Spelling = Spelling {
    name: "encodec",
    list: "layers",
    rows: &[
        (
            Part::Conv,
            r"((?:conv|norm)\.(?:weight|bias))",
            "$1",
            Layout::AsIs,
        ),
        (
            Part::Res,
            r"block\.1\.((?:conv|norm)\.(?:weight|bias))",
            "block.0.$1",
            Layout::AsIs,
        ),
        (
            Part::Res,
            r"block\.3\.((?:conv|norm)\.(?:weight|bias))",
            "block.1.$1",
            Layout::AsIs,
        ),
        (
            Part::Res,
            r"shortcut\.((?:conv|norm)\.(?:weight|bias))",
            "shortcut.$1",
            Layout::AsIs,
        ),
        (
            Part::Lstm,
            r"lstm\.(?:weight|bias)_(?:ih|hh)_l(\d+)",
            "lstm.$1",
            Layout::LstmGates,
        ),
    ],
    codebook: r"quantizer\.layers\.(\d+)\.codebook\.embed",
    ignored: r"(?:.*\.)?codebook\.(inited|cluster_size|embed_avg)",
};

/// Meta's `encodec` 0.1.1 `EncodecModel.state_dict()` (`encodec_24khz-d7cc33bc.th`, `encodec_48khz-7e698e3e.th`):
/// `SConv1d.conv: NormConv1d.{conv, norm}`, `SConvTranspose1d.convtr: NormConvTranspose1d.{convtr, norm}`,
/// `SLSTM.lstm`, `ResidualVectorQuantizer.vq.layers[n]._codebook`.
pub const META: Spelling = Spelling {
    name: "meta-encodec",
    list: "model",
    rows: &[
        (
            Part::Conv,
            r"(?:conv\.conv|convtr\.convtr)\.(weight|bias)",
            "conv.$1",
            Layout::AsIs,
        ),
        (
            Part::Conv,
            r"(?:conv|convtr)\.norm\.(weight|bias)",
            "norm.$1",
            Layout::AsIs,
        ),
        (
            Part::Res,
            r"block\.1\.conv\.(conv|norm)\.(weight|bias)",
            "block.0.$1.$2",
            Layout::AsIs,
        ),
        (
            Part::Res,
            r"block\.3\.conv\.(conv|norm)\.(weight|bias)",
            "block.1.$1.$2",
            Layout::AsIs,
        ),
        (
            Part::Res,
            r"shortcut\.conv\.(conv|norm)\.(weight|bias)",
            "shortcut.$1.$2",
            Layout::AsIs,
        ),
        (
            Part::Lstm,
            r"lstm\.(?:weight|bias)_(?:ih|hh)_l(\d+)",
            "lstm.$1",
            Layout::LstmGates,
        ),
    ],
    codebook: r"quantizer\.vq\.layers\.(\d+)\._codebook\.embed",
    ignored: r"quantizer\.vq\.layers\.\d+\._codebook\.(?:inited|cluster_size|embed_avg)",
};

/// The name table of a checkpoint of `config`'s shape in `spelling`.
pub fn name_map(config: &EncodecConfig, spelling: &Spelling) -> NameMap {
    let mut map = NameMap::new(spelling.name);
    for (hf, slot) in layer_table(config) {
        // layer_table speaks HF (`encoder.layers.3`); the index is the same in Meta's `encoder.model.3`.
        let prefix = hf
            .replacen(".layers.", &format!(".{}.", spelling.list), 1)
            .replace('.', r"\.");
        let (part, burn) = match &slot {
            LayerSlot::Conv(b) => (Part::Conv, b),
            LayerSlot::ResBlock(b) => (Part::Res, b),
            LayerSlot::Lstm(b) => (Part::Lstm, b),
        };
        for (_, pattern, target, layout) in spelling.rows.iter().filter(|r| r.0 == part) {
            map = map.rule(
                &format!(r"{prefix}\.{pattern}"),
                &format!("{burn}.{target}"),
                *layout,
            );
        }
    }
    map.rule(
        spelling.codebook,
        "quantizer.layers.$1.codebook.embed",
        Layout::AsIs,
    )
    .ignore(spelling.ignored)
}

/// The HF → burn name table of an EnCodec checkpoint of `config`'s shape (252 tensors for
/// `facebook/encodec_24khz`, 224 for `encodec_48khz`); see the module docs for the rows.
pub fn encodec_name_map(config: &EncodecConfig) -> NameMap {
    name_map(config, &HF)
}

/// The Meta → burn name table (`encodec` 0.1.1's `.th` state dicts) of `config`'s shape.
pub fn meta_name_map(config: &EncodecConfig) -> NameMap {
    name_map(config, &META)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(map: &NameMap, key: &str) -> String {
        map.lookup(key)
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("{key} unmapped"))
    }

    /// Every row of transformers' conversion script (MAPPING_ENCODER/_DECODER/_48K/_QUANTIZER) lands where the HF
    /// key it names lands.
    #[test]
    fn meta_keys_land_where_their_hf_keys_do() {
        for config in [
            EncodecConfig::encodec_24khz(),
            EncodecConfig::encodec_48khz(),
        ] {
            let hf = encodec_name_map(&config);
            let meta = meta_name_map(&config);
            let mut pairs = vec![
                (
                    "quantizer.vq.layers.7._codebook.embed".to_string(),
                    "quantizer.layers.7.codebook.embed".to_string(),
                ),
                (
                    "encoder.model.13.lstm.weight_hh_l1".into(),
                    "encoder.layers.13.lstm.weight_hh_l1".into(),
                ),
                (
                    "decoder.model.1.lstm.bias_ih_l0".into(),
                    "decoder.layers.1.lstm.bias_ih_l0".into(),
                ),
            ];
            for i in [0, 3, 6, 9, 12, 15] {
                for what in ["weight", "bias"] {
                    pairs.push((
                        format!("encoder.model.{i}.conv.conv.{what}"),
                        format!("encoder.layers.{i}.conv.{what}"),
                    ));
                    pairs.push((
                        format!("encoder.model.{i}.conv.norm.{what}"),
                        format!("encoder.layers.{i}.norm.{what}"),
                    ));
                }
            }
            for i in [3, 6, 9, 12] {
                pairs.push((
                    format!("decoder.model.{i}.convtr.convtr.weight"),
                    format!("decoder.layers.{i}.conv.weight"),
                ));
                pairs.push((
                    format!("decoder.model.{i}.convtr.norm.bias"),
                    format!("decoder.layers.{i}.norm.bias"),
                ));
            }
            for i in [1, 4, 7, 10] {
                for part in ["block.1", "block.3", "shortcut"] {
                    pairs.push((
                        format!("encoder.model.{i}.{part}.conv.conv.weight"),
                        format!("encoder.layers.{i}.{part}.conv.weight"),
                    ));
                    pairs.push((
                        format!("encoder.model.{i}.{part}.conv.norm.weight"),
                        format!("encoder.layers.{i}.{part}.norm.weight"),
                    ));
                }
            }
            for (m, h) in pairs {
                assert_eq!(target(&meta, &m), target(&hf, &h), "{m}");
            }
            for ignored in [
                "quantizer.vq.layers.0._codebook.inited",
                "quantizer.vq.layers.3._codebook.embed_avg",
            ] {
                let (rule, _) = meta
                    .lookup(ignored)
                    .unwrap_or_else(|| panic!("{ignored} unmapped"));
                assert_eq!(rule.layout(), Layout::Ignore);
            }
            // HF keys are not Meta keys, and the other way round.
            assert!(meta.lookup("encoder.layers.0.conv.weight").is_none());
            assert!(hf.lookup("encoder.model.0.conv.conv.weight").is_none());
            assert!(meta.lookup("transformer.layers.0.linear1.weight").is_none());
        }
    }
}
