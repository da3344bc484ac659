//! `ClvpEncoderConfig`, `ClvpDecoderConfig` and `ClvpConfig` (transformers 5.23 `configuration_clvp.py`),
//! read from a checkpoint's `config.json` with HF's defaults for absent fields, and checked for consistency.

use std::path::Path;

use burn::config::Config;

/// A configuration that cannot be used: unreadable, not JSON, or inconsistent. Names the file and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a JSON object of the expected form.
    #[error("config {file} is not a valid CLVP config: {source}")]
    Json {
        /// The file.
        file: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A field has a value the model cannot work with.
    #[error("config {file}: field `{field}`: {message}")]
    Inconsistent {
        /// The file (or `<memory>`).
        file: String,
        /// The offending field, dotted (`text_config.num_attention_heads`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// `ClvpEncoderConfig` (`model_type = "clvp_encoder"`): the text and speech encoders.
///
/// A burn [`Config`]: `ClvpEncoderConfig::new()` gives HF's defaults, `with_*` builders change a field.
#[derive(Config, Debug, PartialEq)]
pub struct ClvpEncoderConfig {
    /// Token vocabulary (text 256; the speech encoder of clvp_dev has 8192).
    #[config(default = 256)]
    pub vocab_size: usize,
    /// Model width (768).
    #[config(default = 768)]
    pub hidden_size: usize,
    /// GLU inner width (1536); `fc1.proj` outputs twice this.
    #[config(default = 1536)]
    pub intermediate_size: usize,
    /// Output width of `projection`; also enters the rotary-dim formula.
    #[config(default = 768)]
    pub projection_dim: usize,
    /// Number of encoder layers (20).
    #[config(default = 20)]
    pub num_hidden_layers: usize,
    /// Attention heads (12).
    #[config(default = 12)]
    pub num_attention_heads: usize,
    /// Activation of the GLU gate (`gelu`, exact erf GELU).
    #[config(default = "String::from(\"gelu\")")]
    pub hidden_act: String,
    /// Epsilon of the RMSNorms and the final LayerNorm (1e-5).
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Rotary position embedding on q, k and v (true).
    #[config(default = true)]
    pub use_rotary_embedding: bool,
    /// Bias on q/k/v projections (false); `out_proj` always has one.
    #[config(default = false)]
    pub use_attention_bias: bool,
    /// Pooling (`mean`).
    #[config(default = "String::from(\"mean\")")]
    pub summary_type: String,
    /// Text BOS (255), used by the conditioning encoder.
    #[config(default = 255)]
    pub bos_token_id: i64,
    /// Text EOS (0).
    #[config(default = 0)]
    pub eos_token_id: i64,
    /// Padding id (none).
    pub pad_token_id: Option<i64>,
}

impl Default for ClvpEncoderConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ClvpEncoderConfig {
    /// Head width.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Rotary dimension: `max(projection_dim // (2·heads), 32)` — uses projection_dim, as HF does.
    pub fn rotary_dim(&self) -> usize {
        (self.projection_dim / (2 * self.num_attention_heads.max(1))).max(32)
    }

    /// The speech encoder of the released checkpoint (`susnato/clvp_dev`): vocabulary 8192.
    pub fn clvp_dev_speech() -> Self {
        ClvpEncoderConfig {
            vocab_size: 8192,
            ..Self::default()
        }
    }
}

/// `ClvpDecoderConfig` (`model_type = "clvp_decoder"`): the GPT-2 speech decoder and conditioning encoder.
///
/// A burn [`Config`]: `ClvpDecoderConfig::new()` gives HF's defaults, `with_*` builders change a field.
#[derive(Config, Debug, PartialEq)]
pub struct ClvpDecoderConfig {
    /// Speech-code vocabulary incl. start and stop (8194).
    #[config(default = 8194)]
    pub vocab_size: usize,
    /// Mel position table size (608).
    #[config(default = 608)]
    pub max_position_embeddings: usize,
    /// Text position table size of the conditioning encoder (404).
    #[config(default = 404)]
    pub max_text_tokens: usize,
    /// Model width (1024).
    #[config(default = 1024)]
    pub hidden_size: usize,
    /// Decoder layers (30).
    #[config(default = 30)]
    pub num_hidden_layers: usize,
    /// Attention heads (16).
    #[config(default = 16)]
    pub num_attention_heads: usize,
    /// MLP inner width; `None` → 4 × hidden.
    pub n_inner: Option<usize>,
    /// Attention blocks of the conditioning encoder (6).
    #[config(default = 6)]
    pub num_mel_attn_blocks: usize,
    /// MLP activation (`gelu_new`, tanh approximation).
    #[config(default = "String::from(\"gelu_new\")")]
    pub activation_function: String,
    /// Epsilon of the decoder LayerNorms (1e-5).
    #[config(default = 1e-5)]
    pub layer_norm_epsilon: f64,
    /// Speech start token (8192).
    #[config(default = 8192)]
    pub bos_token_id: i64,
    /// Speech stop token (8193).
    #[config(default = 8193)]
    pub eos_token_id: i64,
    /// Padding id (none → eos during generation).
    pub pad_token_id: Option<i64>,
    /// Mel channels fed to `mel_conv` (80).
    #[config(default = 80)]
    pub feature_size: usize,
    /// Bias on q/k/v projections (true).
    #[config(default = true)]
    pub use_attention_bias: bool,
    /// Codes written after a stop token: `[83, 45, 45, 248]` (filler, then the last three forced).
    #[config(default = "vec![83, 45, 45, 248]")]
    pub decoder_fixing_codes: Vec<i64>,
}

impl Default for ClvpDecoderConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ClvpDecoderConfig {
    /// Head width.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// MLP inner width.
    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.hidden_size)
    }

    /// GroupNorm groups of the conditioning encoder (Tortoise's `normalization` rule, as HF).
    pub fn groupnorm_groups(&self) -> Result<usize, String> {
        let channels = self.hidden_size;
        let mut groups = 32;
        if channels <= 16 {
            groups = 8;
        } else if channels <= 64 {
            groups = 16;
        }
        while groups > 0 && !channels.is_multiple_of(groups) {
            groups /= 2;
        }
        if groups <= 2 {
            return Err(format!(
                "hidden_size {channels} gives {groups} GroupNorm groups; more than 2 are needed"
            ));
        }
        Ok(groups)
    }
}

/// `ClvpConfig` (`model_type = "clvp"`).
///
/// A burn [`Config`]: `ClvpConfig::new()` gives HF's defaults (speech vocabulary 256, as HF's default;
/// [`ClvpConfig::clvp_dev`] is the released shape). Reading a `config.json` goes through
/// [`ClvpConfig::from_json`], which fills absent fields (at any depth) with these defaults as HF does.
#[derive(Config, Debug, PartialEq)]
pub struct ClvpConfig {
    /// The text encoder (and the conditioning encoder's text table size / BOS / EOS).
    #[config(default = "ClvpEncoderConfig::new()")]
    pub text_config: ClvpEncoderConfig,
    /// The speech encoder.
    #[config(default = "ClvpEncoderConfig::new()")]
    pub speech_config: ClvpEncoderConfig,
    /// The decoder and conditioning encoder.
    #[config(default = "ClvpDecoderConfig::new()")]
    pub decoder_config: ClvpDecoderConfig,
    /// Stored only; each encoder uses its own `projection_dim`.
    #[config(default = 768)]
    pub projection_dim: usize,
    /// Initial `logit_scale` (the checkpoint overrides it).
    #[config(default = 2.6592)]
    pub logit_scale_init_value: f64,
}

impl Default for ClvpConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ClvpConfig {
    /// The released shape (`susnato/clvp_dev`): encoder defaults with speech vocabulary 8192, decoder defaults.
    pub fn clvp_dev() -> Self {
        ClvpConfig {
            speech_config: ClvpEncoderConfig::clvp_dev_speech(),
            ..Self::default()
        }
    }

    /// Read and validate a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        Self::from_json(&text, &file)
    }

    /// Parse and validate JSON text; `file` names the source in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Self, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| ConfigError::Json {
                file: file.into(),
                source,
            })?;
        if !value.is_object() {
            return Err(ConfigError::Inconsistent {
                file: file.into(),
                field: "<root>".into(),
                message: "expected a JSON object".into(),
            });
        }
        // HF fills absent fields with the class defaults (a `null` sub-config counts as absent); the burn
        // `Config` derive deserialises only complete objects, so the defaults are merged in first.
        let mut value = value;
        let defaults =
            serde_json::to_value(ClvpConfig::new()).map_err(|source| ConfigError::Json {
                file: file.into(),
                source,
            })?;
        fill_defaults(&mut value, &defaults);
        let config: ClvpConfig = match serde_json::from_value(value.clone()) {
            Ok(c) => c,
            Err(source) => {
                // Name the field: the first one that alone, over the defaults, fails to deserialise.
                return Err(match find_bad_field(&value, &defaults) {
                    Some((field, found)) => ConfigError::Inconsistent {
                        file: file.into(),
                        field,
                        message: format!("{found} has the wrong type: {source}"),
                    },
                    None => ConfigError::Json {
                        file: file.into(),
                        source,
                    },
                });
            }
        };
        config.validate(file)?;
        Ok(config)
    }

    /// Check that the sizes can work together (HF checks none of this and crashes later).
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |field: &str, message: String| {
            Err(ConfigError::Inconsistent {
                file: file.into(),
                field: field.into(),
                message,
            })
        };
        // Upper bounds: far above any real CLVP, far below sizes that only abort on allocation.
        let too_big = |field: String, v: usize, max: usize| -> Result<(), ConfigError> {
            if v > max {
                return bad(
                    &field,
                    format!("{v} is larger than the supported maximum {max}"),
                );
            }
            Ok(())
        };
        for (name, c) in [
            ("text_config", &self.text_config),
            ("speech_config", &self.speech_config),
        ] {
            for (field, v) in [
                ("vocab_size", c.vocab_size),
                ("hidden_size", c.hidden_size),
                ("intermediate_size", c.intermediate_size),
                ("projection_dim", c.projection_dim),
                ("num_attention_heads", c.num_attention_heads),
            ] {
                if v == 0 {
                    return bad(&format!("{name}.{field}"), "must be positive".into());
                }
            }
            for (field, v, max) in [
                ("vocab_size", c.vocab_size, MAX_VOCAB),
                ("hidden_size", c.hidden_size, MAX_WIDTH),
                ("intermediate_size", c.intermediate_size, MAX_WIDTH),
                ("projection_dim", c.projection_dim, MAX_WIDTH),
                ("num_hidden_layers", c.num_hidden_layers, MAX_LAYERS),
            ] {
                too_big(format!("{name}.{field}"), v, max)?;
            }
            if !c.hidden_size.is_multiple_of(c.num_attention_heads) {
                return bad(
                    &format!("{name}.num_attention_heads"),
                    format!(
                        "{} heads do not divide hidden_size {}",
                        c.num_attention_heads, c.hidden_size
                    ),
                );
            }
            if c.use_rotary_embedding && c.head_dim() < c.rotary_dim() {
                return bad(
                    &format!("{name}.num_attention_heads"),
                    format!(
                        "head_dim {} is smaller than the rotary dim {}",
                        c.head_dim(),
                        c.rotary_dim()
                    ),
                );
            }
            if let Some((field, message)) =
                bad_eps(&format!("{name}.layer_norm_eps"), c.layer_norm_eps)
            {
                return bad(&field, message);
            }
            if c.hidden_act != "gelu" {
                return bad(
                    &format!("{name}.hidden_act"),
                    format!("{:?} is not supported (gelu)", c.hidden_act),
                );
            }
        }
        if self.text_config.projection_dim != self.speech_config.projection_dim {
            return bad(
                "speech_config.projection_dim",
                format!(
                    "{} differs from text_config.projection_dim {}",
                    self.speech_config.projection_dim, self.text_config.projection_dim
                ),
            );
        }
        let d = &self.decoder_config;
        for (field, v) in [
            ("vocab_size", d.vocab_size),
            ("hidden_size", d.hidden_size),
            ("num_attention_heads", d.num_attention_heads),
            ("max_position_embeddings", d.max_position_embeddings),
            ("max_text_tokens", d.max_text_tokens),
            ("feature_size", d.feature_size),
        ] {
            if v == 0 {
                return bad(
                    &format!("decoder_config.{field}"),
                    "must be positive".into(),
                );
            }
        }
        for (field, v, max) in [
            ("vocab_size", d.vocab_size, MAX_VOCAB),
            ("hidden_size", d.hidden_size, MAX_WIDTH),
            ("n_inner", d.n_inner.unwrap_or(0), MAX_WIDTH),
            ("num_hidden_layers", d.num_hidden_layers, MAX_LAYERS),
            ("num_mel_attn_blocks", d.num_mel_attn_blocks, MAX_LAYERS),
            (
                "max_position_embeddings",
                d.max_position_embeddings,
                MAX_POSITIONS,
            ),
            ("max_text_tokens", d.max_text_tokens, MAX_POSITIONS),
            ("feature_size", d.feature_size, MAX_WIDTH),
        ] {
            too_big(format!("decoder_config.{field}"), v, max)?;
        }
        let params = self.parameter_count();
        if params > MAX_PARAMETERS {
            return bad(
                "<sizes>",
                format!(
                    "the sizes describe {params} parameters ({:.1} GiB in float32), more than the supported \
                     {MAX_PARAMETERS}",
                    params as f64 * 4.0 / (1u64 << 30) as f64
                ),
            );
        }
        if !d.hidden_size.is_multiple_of(d.num_attention_heads) {
            return bad(
                "decoder_config.num_attention_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    d.num_attention_heads, d.hidden_size
                ),
            );
        }
        if let Some((field, message)) =
            bad_eps("decoder_config.layer_norm_epsilon", d.layer_norm_epsilon)
        {
            return bad(&field, message);
        }
        if let Err(m) = d.groupnorm_groups() {
            return bad("decoder_config.hidden_size", m);
        }
        if d.activation_function != "gelu_new" {
            return bad(
                "decoder_config.activation_function",
                format!("{:?} is not supported (gelu_new)", d.activation_function),
            );
        }
        for (field, id) in [
            ("bos_token_id", d.bos_token_id),
            ("eos_token_id", d.eos_token_id),
        ] {
            if id < 0 || id as usize >= d.vocab_size {
                return bad(
                    &format!("decoder_config.{field}"),
                    format!("{id} is outside the decoder vocabulary 0..{}", d.vocab_size),
                );
            }
        }
        if d.decoder_fixing_codes.len() < 4 {
            return bad(
                "decoder_config.decoder_fixing_codes",
                "needs four codes (filler + three forced)".into(),
            );
        }
        if let Some(&c) = d
            .decoder_fixing_codes
            .iter()
            .find(|&&c| c < 0 || c as usize >= self.speech_config.vocab_size)
        {
            return bad(
                "decoder_config.decoder_fixing_codes",
                format!(
                    "code {c} is outside the speech encoder vocabulary 0..{}",
                    self.speech_config.vocab_size
                ),
            );
        }
        let t = &self.text_config;
        for (field, id) in [
            ("bos_token_id", t.bos_token_id),
            ("eos_token_id", t.eos_token_id),
        ] {
            if id < 0 || id as usize >= t.vocab_size {
                return bad(
                    &format!("text_config.{field}"),
                    format!("{id} is outside the text vocabulary 0..{}", t.vocab_size),
                );
            }
        }
        Ok(())
    }
}

/// A norm epsilon that is not a positive finite number: `-1` or `0` give NaN embeddings (the variance plus
/// eps reaches zero or below), NaN or infinity NaN or zeros everywhere.
fn bad_eps(field: &str, eps: f64) -> Option<(String, String)> {
    (!(eps.is_finite() && eps > 0.0)).then(|| {
        (
            field.to_string(),
            format!("must be a positive number (HF's default is 1e-5), found {eps}"),
        )
    })
}

/// Largest vocabulary accepted.
const MAX_VOCAB: usize = 1 << 24;
/// Largest width (hidden, intermediate, projection, mel channels) accepted.
const MAX_WIDTH: usize = 1 << 16;
/// Most layers / attention blocks accepted.
const MAX_LAYERS: usize = 1024;
/// Largest position table accepted.
const MAX_POSITIONS: usize = 1 << 20;
/// Most parameters a config may describe (16 GiB of float32; the released model has 0.67 G).
const MAX_PARAMETERS: u128 = 1 << 32;

impl ClvpConfig {
    /// The number of parameters the sizes describe (weights of the three encoders, the decoder and the
    /// conditioning encoder; biases and norms included approximately), in `u128` so that no size overflows.
    pub fn parameter_count(&self) -> u128 {
        let enc = |c: &ClvpEncoderConfig| {
            let (v, h, i, p, l) = (
                c.vocab_size as u128,
                c.hidden_size as u128,
                c.intermediate_size as u128,
                c.projection_dim as u128,
                c.num_hidden_layers as u128,
            );
            v * h + l * (4 * h * h + 3 * h * i + 8 * h) + h * p + 2 * h
        };
        let d = &self.decoder_config;
        let (v, h, l) = (
            d.vocab_size as u128,
            d.hidden_size as u128,
            d.num_hidden_layers as u128,
        );
        let inner = d.n_inner.unwrap_or(4 * d.hidden_size) as u128;
        let dec = 2 * v * h
            + (d.max_position_embeddings as u128 + d.max_text_tokens as u128) * h
            + l * (4 * h * h + 2 * h * inner + 10 * h)
            + d.num_mel_attn_blocks as u128 * (4 * h * h + 6 * h)
            + d.feature_size as u128 * h
            + self.text_config.vocab_size as u128 * h;
        enc(&self.text_config) + enc(&self.speech_config) + dec
    }
}

/// The dotted path and value of the first leaf of `value` that makes the defaults fail to deserialise.
fn find_bad_field(
    value: &serde_json::Value,
    defaults: &serde_json::Value,
) -> Option<(String, serde_json::Value)> {
    let obj = value.as_object()?;
    let def = defaults.as_object()?;
    for (key, d) in def {
        let Some(v) = obj.get(key) else { continue };
        let leaves: Vec<(Vec<&str>, &serde_json::Value)> = match (v.as_object(), d.is_object()) {
            (Some(sub), true) => sub
                .iter()
                .filter(|(k, _)| d.get(k.as_str()).is_some())
                .map(|(k, x)| (vec![key.as_str(), k.as_str()], x))
                .collect(),
            _ => vec![(vec![key.as_str()], v)],
        };
        for (path, leaf) in leaves {
            let mut trial = defaults.clone();
            let mut slot = &mut trial;
            for p in &path {
                slot = slot.get_mut(*p)?;
            }
            *slot = leaf.clone();
            if serde_json::from_value::<ClvpConfig>(trial).is_err() {
                return Some((path.join("."), leaf.clone()));
            }
        }
    }
    None
}

/// Insert every key of `defaults` that `value` lacks, recursing into objects present on both sides; a `null`
/// where the default is an object (a sub-config) is replaced by the default.
fn fill_defaults(value: &mut serde_json::Value, defaults: &serde_json::Value) {
    let (Some(obj), Some(def)) = (value.as_object_mut(), defaults.as_object()) else {
        return;
    };
    for (key, d) in def {
        match obj.get_mut(key) {
            None => {
                obj.insert(key.clone(), d.clone());
            }
            Some(v) if v.is_null() && d.is_object() => *v = d.clone(),
            Some(v) => fill_defaults(v, d),
        }
    }
}

#[cfg(test)]
mod tests;
