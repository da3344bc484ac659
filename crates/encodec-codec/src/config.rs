//! `EncodecConfig` (transformers 5.23 `configuration_encodec.py`): read from a checkpoint's `config.json`
//! (snake_case strings, float `chunk_length_s`/`overlap`), HF's defaults for absent fields, the derived
//! values as HF's properties compute them, and consistency checks that name the field.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::EncodecError;

/// How every convolution is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormType {
    /// Weight norm, folded into the weights at load (24 kHz, 32 kHz).
    WeightNorm,
    /// `GroupNorm(1, C)` after each convolution (48 kHz).
    TimeGroupNorm,
}

/// The padding mode of `EncodecConv1d` (`torch.nn.functional.pad` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// Reflection excluding the edge sample, with HF's small-input workaround (every released model).
    Reflect,
    /// Zeros.
    Constant,
    /// Repeat the edge sample.
    Replicate,
}

/// `EncodecConfig`; the defaults are `facebook/encodec_24khz`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EncodecConfig {
    /// Allowed bandwidths in kbps; the last sets the number of RVQ layers.
    pub target_bandwidths: Vec<f64>,
    /// Sample rate in Hz.
    pub sampling_rate: usize,
    /// 1 (mono) or 2 (stereo).
    pub audio_channels: usize,
    /// Per-chunk RMS normalisation (48 kHz).
    pub normalize: bool,
    /// Seconds per chunk (`None`: the whole input in one pass).
    pub chunk_length_s: Option<f64>,
    /// Fraction of chunk overlap.
    pub overlap: Option<f64>,
    /// Latent dimension (encoder out, decoder in, codebook dim).
    pub hidden_size: usize,
    /// Base channel width.
    pub num_filters: usize,
    /// Resnet blocks per scale.
    pub num_residual_layers: usize,
    /// Decoder stride order; the encoder uses them reversed.
    pub upsampling_ratios: Vec<usize>,
    /// `weight_norm` or `time_group_norm`.
    pub norm_type: NormType,
    /// First conv kernel of encoder and decoder.
    pub kernel_size: usize,
    /// Last conv kernel of encoder and decoder.
    pub last_kernel_size: usize,
    /// First conv kernel inside a resnet block.
    pub residual_kernel_size: usize,
    /// Dilation of the j-th resnet block = rate^j.
    pub dilation_growth_rate: usize,
    /// Causal (all padding on the left) or symmetric padding.
    pub use_causal_conv: bool,
    /// Padding mode of every conv.
    pub pad_mode: PadMode,
    /// Resnet branch width = dim / compress.
    pub compress: usize,
    /// LSTM depth at the encoder end and the decoder start.
    pub num_lstm_layers: usize,
    /// Share of transposed-conv trimming taken from the right (causal only).
    pub trim_right_ratio: f64,
    /// Entries per codebook (a power of two).
    pub codebook_size: usize,
    /// Codebook dimension (`None` → `hidden_size`; nothing else works in HF).
    pub codebook_dim: Option<usize>,
    /// Resnet skip is a 1x1 conv (true) or the identity (false).
    pub use_conv_shortcut: bool,
}

impl Default for EncodecConfig {
    fn default() -> Self {
        EncodecConfig {
            target_bandwidths: vec![1.5, 3.0, 6.0, 12.0, 24.0],
            sampling_rate: 24_000,
            audio_channels: 1,
            normalize: false,
            chunk_length_s: None,
            overlap: None,
            hidden_size: 128,
            num_filters: 32,
            num_residual_layers: 1,
            upsampling_ratios: vec![8, 5, 4, 2],
            norm_type: NormType::WeightNorm,
            kernel_size: 7,
            last_kernel_size: 7,
            residual_kernel_size: 3,
            dilation_growth_rate: 2,
            use_causal_conv: true,
            pad_mode: PadMode::Reflect,
            compress: 2,
            num_lstm_layers: 2,
            trim_right_ratio: 1.0,
            codebook_size: 1024,
            codebook_dim: None,
            use_conv_shortcut: true,
        }
    }
}

fn bad(file: &str, field: &str, message: impl Into<String>) -> EncodecError {
    EncodecError::Config {
        file: file.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

impl EncodecConfig {
    /// `facebook/encodec_24khz`.
    pub fn encodec_24khz() -> Self {
        Self::default()
    }

    /// `facebook/encodec_48khz`: stereo, non-causal, time group norm, 1 s chunks with 1 % overlap.
    pub fn encodec_48khz() -> Self {
        EncodecConfig {
            target_bandwidths: vec![3.0, 6.0, 12.0, 24.0],
            sampling_rate: 48_000,
            audio_channels: 2,
            normalize: true,
            chunk_length_s: Some(1.0),
            overlap: Some(0.01),
            norm_type: NormType::TimeGroupNorm,
            use_causal_conv: false,
            ..Self::default()
        }
    }

    /// `facebook/encodec_32khz` (MusicGen): hop 640, 2048-entry codebooks, identity shortcuts.
    pub fn encodec_32khz() -> Self {
        EncodecConfig {
            target_bandwidths: vec![2.2],
            sampling_rate: 32_000,
            num_filters: 64,
            upsampling_ratios: vec![8, 5, 4, 4],
            use_causal_conv: false,
            codebook_size: 2048,
            use_conv_shortcut: false,
            ..Self::default()
        }
    }

    /// Read and check `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, EncodecError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| EncodecError::ConfigIo {
            file: file.clone(),
            source,
        })?;
        Self::from_json(&text, &file)
    }

    /// Parse and check a config from JSON text (`file` names it in errors).
    pub fn from_json(text: &str, file: &str) -> Result<Self, EncodecError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| bad(file, "(file)", format!("not JSON: {e}")))?;
        if !value.is_object() {
            return Err(bad(file, "(file)", "a config must be a JSON object"));
        }
        if let Some(t) = value.get("model_type").and_then(|v| v.as_str())
            && t != "encodec"
        {
            return Err(bad(
                file,
                "model_type",
                format!("`{t}` is not an EnCodec config (expected `encodec`)"),
            ));
        }
        let config: EncodecConfig = serde_json::from_value(value)
            .map_err(|e| bad(file, "(file)", format!("not a valid EnCodec config: {e}")))?;
        config.validate(file)?;
        Ok(config)
    }

    /// Check that the configuration can build a working model, naming the offending field.
    pub fn validate(&self, file: &str) -> Result<(), EncodecError> {
        let positive = [
            ("sampling_rate", self.sampling_rate),
            ("hidden_size", self.hidden_size),
            ("num_filters", self.num_filters),
            ("kernel_size", self.kernel_size),
            ("last_kernel_size", self.last_kernel_size),
            ("residual_kernel_size", self.residual_kernel_size),
            ("dilation_growth_rate", self.dilation_growth_rate),
            ("compress", self.compress),
            ("num_lstm_layers", self.num_lstm_layers),
            ("codebook_size", self.codebook_size),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(bad(file, field, "must be positive"));
            }
        }
        // Sizes far beyond any real model are a corrupt config, not a model to allocate.
        let limits = [
            // Also keeps `sample_rate() as u32` exact.
            ("sampling_rate", self.sampling_rate, 1 << 20),
            ("hidden_size", self.hidden_size, 1 << 14),
            ("num_filters", self.num_filters, 1 << 12),
            ("codebook_size", self.codebook_size, 1 << 20),
            ("num_lstm_layers", self.num_lstm_layers, 64),
            ("num_residual_layers", self.num_residual_layers, 64),
            ("kernel_size", self.kernel_size, 4096),
            ("last_kernel_size", self.last_kernel_size, 4096),
            ("residual_kernel_size", self.residual_kernel_size, 4096),
        ];
        for (field, v, max) in limits {
            if v > max {
                return Err(bad(file, field, format!("{v} is larger than {max}")));
            }
        }
        if !(1..=2).contains(&self.audio_channels) {
            return Err(bad(
                file,
                "audio_channels",
                format!("must be 1 or 2, found {}", self.audio_channels),
            ));
        }
        if self.upsampling_ratios.is_empty() || self.upsampling_ratios.len() > 8 {
            return Err(bad(file, "upsampling_ratios", "needs 1 to 8 ratios"));
        }
        if self.upsampling_ratios.iter().any(|&r| r == 0 || r > 64) {
            return Err(bad(
                file,
                "upsampling_ratios",
                format!(
                    "every ratio must be in 1..=64, found {:?}",
                    self.upsampling_ratios
                ),
            ));
        }
        let widest = self.num_filters << self.upsampling_ratios.len();
        if widest / self.compress == 0 || self.num_filters / self.compress == 0 {
            return Err(bad(
                file,
                "compress",
                format!(
                    "{} leaves no channels in the resnet branch of width {}",
                    self.compress, self.num_filters
                ),
            ));
        }
        if !self.codebook_size.is_power_of_two() {
            return Err(bad(
                file,
                "codebook_size",
                format!("must be a power of two, found {}", self.codebook_size),
            ));
        }
        if let Some(d) = self.codebook_dim
            && d != self.hidden_size
        {
            return Err(bad(
                file,
                "codebook_dim",
                format!(
                    "{d} differs from hidden_size {}: codebook projections are not part of EnCodec",
                    self.hidden_size
                ),
            ));
        }
        if self.target_bandwidths.is_empty() {
            return Err(bad(
                file,
                "target_bandwidths",
                "needs at least one bandwidth",
            ));
        }
        if self
            .target_bandwidths
            .iter()
            .any(|b| !(b.is_finite() && *b > 0.0))
        {
            return Err(bad(
                file,
                "target_bandwidths",
                format!(
                    "bandwidths must be positive, found {:?}",
                    self.target_bandwidths
                ),
            ));
        }
        if self.num_quantizers() == 0 || self.num_quantizers() > 1024 {
            return Err(bad(
                file,
                "target_bandwidths",
                format!(
                    "the largest bandwidth gives {} codebooks (1..=1024 allowed)",
                    self.num_quantizers()
                ),
            ));
        }
        if !(self.use_causal_conv || self.trim_right_ratio == 1.0) {
            return Err(bad(
                file,
                "trim_right_ratio",
                "!= 1.0 only makes sense for causal convolutions",
            ));
        }
        if !(0.0..=1.0).contains(&self.trim_right_ratio) {
            return Err(bad(file, "trim_right_ratio", "must be in [0, 1]"));
        }
        match (self.chunk_length_s, self.overlap) {
            (Some(c), _) if !(c.is_finite() && c > 0.0) => {
                return Err(bad(
                    file,
                    "chunk_length_s",
                    format!("must be positive, found {c}"),
                ));
            }
            (_, Some(o)) if !(o.is_finite() && (0.0..1.0).contains(&o)) => {
                return Err(bad(
                    file,
                    "overlap",
                    format!("must be in [0, 1), found {o}"),
                ));
            }
            (Some(_), _) if self.chunk_length() == Some(0) => {
                return Err(bad(file, "chunk_length_s", "gives a chunk of zero samples"));
            }
            _ => {}
        }
        Ok(())
    }

    /// `hop_length = prod(upsampling_ratios)`.
    pub fn hop_length(&self) -> usize {
        self.upsampling_ratios.iter().product()
    }

    /// `frame_rate = ceil(sampling_rate / hop_length)`.
    pub fn frame_rate(&self) -> usize {
        self.sampling_rate.div_ceil(self.hop_length().max(1))
    }

    /// `codebook_nbits = ceil(log2(codebook_size))`.
    pub fn codebook_nbits(&self) -> usize {
        self.codebook_size
            .max(1)
            .next_power_of_two()
            .trailing_zeros() as usize
    }

    /// The number of RVQ layers in the weights: `int(1000 * bw_max // (frame_rate * nbits))`.
    pub fn num_quantizers(&self) -> usize {
        let bw = self.target_bandwidths.last().copied().unwrap_or(0.0);
        let per = (self.frame_rate() * self.codebook_nbits()) as f64;
        if per <= 0.0 {
            return 0;
        }
        (1000.0 * bw / per).floor().max(0.0) as usize
    }

    /// `chunk_length = int(chunk_length_s * sampling_rate)` or `None`.
    pub fn chunk_length(&self) -> Option<usize> {
        self.chunk_length_s
            .map(|s| (s * self.sampling_rate as f64) as usize)
    }

    /// `chunk_stride = max(1, int((1 - overlap) * chunk_length))`, or `None` if either field is absent.
    pub fn chunk_stride(&self) -> Option<usize> {
        match (self.chunk_length(), self.overlap) {
            (Some(c), Some(o)) => Some((((1.0 - o) * c as f64) as usize).max(1)),
            _ => None,
        }
    }

    /// Codebooks used for a bandwidth (HF's `get_num_quantizers_for_bandwidth`):
    /// `int(max(1, floor(bw * 1000 / (log2(codebook_size) * frame_rate))))`.
    pub fn num_quantizers_for_bandwidth(&self, bandwidth: f64) -> usize {
        let bw_per_q = (self.codebook_size as f64).log2() * self.frame_rate() as f64;
        (bandwidth * 1000.0 / bw_per_q).floor().max(1.0) as usize
    }

    /// The codebook count of `bandwidth` (kbps), which must be one of `target_bandwidths`; `None` means the
    /// smallest, as HF's `encode(bandwidth=None)`.
    pub fn check_bandwidth(&self, bandwidth: Option<f64>) -> Result<(f64, usize), EncodecError> {
        let bw = match bandwidth {
            None => self.target_bandwidths.first().copied().unwrap_or(0.0),
            Some(b) => b,
        };
        if !self.target_bandwidths.contains(&bw) {
            return Err(EncodecError::Bandwidth {
                requested: bw,
                allowed: self.target_bandwidths.clone(),
            });
        }
        Ok((bw, self.num_quantizers_for_bandwidth(bw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values_of_the_released_configs() {
        let c = EncodecConfig::encodec_24khz();
        assert_eq!(
            (c.hop_length(), c.frame_rate(), c.num_quantizers()),
            (320, 75, 32)
        );
        let n: Vec<usize> = c
            .target_bandwidths
            .iter()
            .map(|&b| c.num_quantizers_for_bandwidth(b))
            .collect();
        assert_eq!(n, [2, 4, 8, 16, 32]);
        let c = EncodecConfig::encodec_48khz();
        assert_eq!((c.frame_rate(), c.num_quantizers()), (150, 16));
        assert_eq!(
            (c.chunk_length(), c.chunk_stride()),
            (Some(48_000), Some(47_520))
        );
        let c = EncodecConfig::encodec_32khz();
        assert_eq!(
            (c.hop_length(), c.frame_rate(), c.codebook_nbits()),
            (640, 50, 11)
        );
        assert_eq!(
            (c.num_quantizers(), c.num_quantizers_for_bandwidth(2.2)),
            (4, 4)
        );
    }

    #[test]
    fn hub_json_with_strings_and_floats_parses() {
        let json = r#"{"model_type": "encodec", "norm_type": "time_group_norm", "pad_mode": "reflect",
            "chunk_length_s": 1.0, "overlap": 0.01, "audio_channels": 2, "sampling_rate": 48000,
            "target_bandwidths": [3.0, 6.0, 12.0, 24.0], "normalize": true, "use_causal_conv": false,
            "architectures": ["EncodecModel"], "torch_dtype": "float32"}"#;
        let c = EncodecConfig::from_json(json, "config.json").unwrap();
        assert_eq!(c, EncodecConfig::encodec_48khz());
    }

    #[test]
    fn bad_fields_are_named() {
        for (json, field) in [
            (r#"{"norm_type": "batch_norm"}"#, "(file)"),
            (r#"{"audio_channels": 8}"#, "audio_channels"),
            (r#"{"codebook_size": 1000}"#, "codebook_size"),
            (r#"{"hidden_size": 0}"#, "hidden_size"),
            (r#"{"overlap": 1.5, "chunk_length_s": 1.0}"#, "overlap"),
            (
                r#"{"use_causal_conv": false, "trim_right_ratio": 0.5}"#,
                "trim_right_ratio",
            ),
            (r#"{"codebook_dim": 64}"#, "codebook_dim"),
            (r#"{"target_bandwidths": []}"#, "target_bandwidths"),
            (r#"{"sampling_rate": 4294967297}"#, "sampling_rate"),
            (r#"{"model_type": "clvp"}"#, "model_type"),
            (r#"[1, 2]"#, "(file)"),
        ] {
            match EncodecConfig::from_json(json, "c.json") {
                Err(EncodecError::Config { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn bandwidth_defaults_to_the_smallest_and_rejects_others() {
        let c = EncodecConfig::encodec_24khz();
        assert_eq!(c.check_bandwidth(None).unwrap(), (1.5, 2));
        assert_eq!(c.check_bandwidth(Some(6.0)).unwrap(), (6.0, 8));
        let e = c.check_bandwidth(Some(5.0)).unwrap_err().to_string();
        assert!(e.contains("5") && e.contains("1.5, 3, 6, 12, 24"), "{e}");
    }
}
