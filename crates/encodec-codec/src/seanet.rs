//! The SEANet `EncodecEncoder`, `EncodecDecoder` and `EncodecResnetBlock` (transformers 5.23). HF keeps each
//! network as one `layers` ModuleList with parameter-free ELU slots; here the stages are named fields and
//! [`layer_table`] gives the HF index of every one (the name map of the model is built from it).

use burn::module::Module;
use burn::tensor::Device;
use burn::tensor::Tensor;
use burn::tensor::activation::elu;

use crate::config::EncodecConfig;
use crate::conv::{EncodecConv1d, EncodecConvTranspose1d};
use crate::host::{Pool, Signal};
use crate::lstm::EncodecLstm;

fn elu1(x: Tensor<3>) -> Tensor<3> {
    elu(x, 1.0)
}

/// `EncodecResnetBlock`: `shortcut(x) + conv(ELU(conv(ELU(x))))`.
#[derive(Module, Debug)]
pub struct EncodecResnetBlock {
    /// `block.1` (k = residual_kernel_size, dim → dim/compress, dilation rate^j) and `block.3` (k = 1, back).
    pub block: Vec<EncodecConv1d>,
    /// A 1x1 conv (`use_conv_shortcut`) or the identity.
    pub shortcut: Option<EncodecConv1d>,
}

impl EncodecResnetBlock {
    fn new(config: &EncodecConfig, dim: usize, dilation: usize, device: &Device) -> Self {
        let hidden = dim / config.compress;
        EncodecResnetBlock {
            block: vec![
                EncodecConv1d::new(
                    config,
                    dim,
                    hidden,
                    config.residual_kernel_size,
                    1,
                    dilation,
                    device,
                ),
                EncodecConv1d::new(config, hidden, dim, 1, 1, 1, device),
            ],
            shortcut: config
                .use_conv_shortcut
                .then(|| EncodecConv1d::new(config, dim, dim, 1, 1, 1, device)),
        }
    }

    /// The inputs `[lo, hi)` that outputs `[a, b)` depend on (see [`EncodecConv1d::span`]).
    pub fn span(&self, a: i64, b: i64) -> (i64, i64) {
        let (mut lo, mut hi) = (a, b);
        for conv in self.block.iter().rev() {
            (lo, hi) = conv.span(lo, hi);
        }
        if let Some(conv) = &self.shortcut {
            let (l, h) = conv.span(a, b);
            (lo, hi) = (lo.min(l), hi.max(h));
        }
        (lo.min(a), hi.max(b))
    }

    /// `[B, dim, T]` → `[B, dim, T]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut y = x.clone();
        for conv in &self.block {
            y = conv.forward(elu1(y));
        }
        let skip = match &self.shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        skip + y
    }
}

/// One encoder scale: resnet blocks, ELU, strided conv (`k = 2r`, stride `r`, channels doubled).
#[derive(Module, Debug)]
pub struct EncoderStage {
    /// `num_residual_layers` blocks.
    pub res: Vec<EncodecResnetBlock>,
    /// The downsampling conv.
    pub conv: EncodecConv1d,
}

/// `EncodecEncoder`: conv, scales, LSTM, ELU, conv → `[B, hidden_size, ceil(L / hop)]`.
#[derive(Module, Debug)]
pub struct EncodecEncoder {
    /// `layers.0`.
    pub conv_in: EncodecConv1d,
    /// The downsampling scales, ratios reversed.
    pub stages: Vec<EncoderStage>,
    /// The LSTM (with skip).
    pub lstm: EncodecLstm,
    /// The last conv to the latent width.
    pub conv_out: EncodecConv1d,
    /// Run the convolutions on the host kernels of [`crate::host`] (CPU backends).
    #[module(skip)]
    pub(crate) host_kernels: bool,
}

fn dilations(config: &EncodecConfig) -> impl Iterator<Item = usize> + '_ {
    (0..config.num_residual_layers).map(|j| config.dilation_growth_rate.pow(j as u32))
}

impl EncodecEncoder {
    /// Zero-initialised encoder of `config`'s shape.
    pub fn new(config: &EncodecConfig, device: &Device) -> Self {
        let f = config.num_filters;
        let mut scale = 1;
        let mut stages = Vec::new();
        for &ratio in config.upsampling_ratios.iter().rev() {
            let dim = scale * f;
            stages.push(EncoderStage {
                res: dilations(config)
                    .map(|d| EncodecResnetBlock::new(config, dim, d, device))
                    .collect(),
                conv: EncodecConv1d::new(config, dim, dim * 2, ratio * 2, ratio, 1, device),
            });
            scale *= 2;
        }
        EncodecEncoder {
            conv_in: EncodecConv1d::new(
                config,
                config.audio_channels,
                f,
                config.kernel_size,
                1,
                1,
                device,
            ),
            stages,
            lstm: EncodecLstm::new(scale * f, config.num_lstm_layers, device),
            conv_out: EncodecConv1d::new(
                config,
                scale * f,
                config.hidden_size,
                config.last_kernel_size,
                1,
                1,
                device,
            ),
            host_kernels: clvp_hub::is_cpu(device),
        }
    }

    /// `[B, C, L]` → `[B, hidden_size, ceil(L / hop)]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.tail(self.lstm.forward(self.head(x)))
    }

    /// The convolutions before the LSTM: `[B, C, L]` → `[B, D, ceil(L / hop)]`.
    pub fn head(&self, x: Tensor<3>) -> Tensor<3> {
        if self.host_kernels {
            let device = x.device();
            let mut pool = Pool::default();
            let mut s = self
                .conv_in
                .host_forward(&Signal::read(x), false, &mut pool);
            for stage in &self.stages {
                for block in &stage.res {
                    s = block.host_forward(s, &mut pool);
                }
                let next = stage.conv.host_forward(&s, true, &mut pool);
                pool.give(std::mem::replace(&mut s, next).data);
            }
            return s.into_tensor(&device);
        }
        let mut x = self.conv_in.forward(x);
        for stage in &self.stages {
            for block in &stage.res {
                x = block.forward(x);
            }
            x = stage.conv.forward(elu1(x));
        }
        x
    }

    /// The input samples `[lo, hi)` that head frames `[a, b)` depend on.
    pub fn head_span(&self, a: i64, b: i64) -> (i64, i64) {
        let (mut lo, mut hi) = (a, b);
        for stage in self.stages.iter().rev() {
            (lo, hi) = stage.conv.span(lo, hi);
            for block in stage.res.iter().rev() {
                (lo, hi) = block.span(lo, hi);
            }
        }
        self.conv_in.span(lo, hi)
    }

    /// Input samples per head frame (the product of the strides).
    pub fn hop(&self) -> usize {
        self.stages.iter().map(|s| s.conv.stride).product()
    }

    /// ELU and the last conv after the LSTM.
    pub fn tail(&self, x: Tensor<3>) -> Tensor<3> {
        if self.host_kernels {
            return self.conv_out.host_forward_tensor(x, true);
        }
        self.conv_out.forward(elu1(x))
    }

    /// Whether every conv is free of GroupNorm (whose statistics span the whole input).
    pub fn is_local(&self) -> bool {
        self.conv_in.norm.is_none()
            && self.conv_out.norm.is_none()
            && self
                .stages
                .iter()
                .all(|s| s.conv.norm.is_none() && s.res.iter().all(EncodecResnetBlock::is_local))
    }
}

impl EncodecResnetBlock {
    fn is_local(&self) -> bool {
        self.block.iter().all(|c| c.norm.is_none())
            && self.shortcut.as_ref().is_none_or(|c| c.norm.is_none())
    }
}

/// One decoder scale: ELU, transposed conv (channels halved), resnet blocks.
#[derive(Module, Debug)]
pub struct DecoderStage {
    /// The upsampling transposed conv.
    pub conv: EncodecConvTranspose1d,
    /// `num_residual_layers` blocks.
    pub res: Vec<EncodecResnetBlock>,
}

/// `EncodecDecoder`: conv, LSTM, scales, ELU, conv → `[B, C, T * hop]` (no final activation).
#[derive(Module, Debug)]
pub struct EncodecDecoder {
    /// `layers.0` (kernel_size).
    pub conv_in: EncodecConv1d,
    /// `layers.1`.
    pub lstm: EncodecLstm,
    /// The upsampling scales.
    pub stages: Vec<DecoderStage>,
    /// The last conv to the audio channels (last_kernel_size).
    pub conv_out: EncodecConv1d,
    /// Run the convolutions on the host kernels of [`crate::host`] (CPU backends).
    #[module(skip)]
    pub(crate) host_kernels: bool,
}

impl EncodecDecoder {
    /// Zero-initialised decoder of `config`'s shape.
    pub fn new(config: &EncodecConfig, device: &Device) -> Self {
        let f = config.num_filters;
        let mut scale = 1usize << config.upsampling_ratios.len();
        let conv_in = EncodecConv1d::new(
            config,
            config.hidden_size,
            scale * f,
            config.kernel_size,
            1,
            1,
            device,
        );
        let lstm = EncodecLstm::new(scale * f, config.num_lstm_layers, device);
        let mut stages = Vec::new();
        for &ratio in &config.upsampling_ratios {
            let dim = scale * f;
            stages.push(DecoderStage {
                conv: EncodecConvTranspose1d::new(config, dim, dim / 2, ratio * 2, ratio, device),
                res: dilations(config)
                    .map(|d| EncodecResnetBlock::new(config, dim / 2, d, device))
                    .collect(),
            });
            scale /= 2;
        }
        EncodecDecoder {
            conv_in,
            lstm,
            stages,
            conv_out: EncodecConv1d::new(
                config,
                f,
                config.audio_channels,
                config.last_kernel_size,
                1,
                1,
                device,
            ),
            host_kernels: clvp_hub::is_cpu(device),
        }
    }

    /// `[B, hidden_size, T]` → `[B, C, T * hop]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.tail(self.lstm.forward(self.head(x)))
    }

    /// The conv before the LSTM: `[B, hidden_size, T]` → `[B, D, T]`.
    pub fn head(&self, x: Tensor<3>) -> Tensor<3> {
        if self.host_kernels {
            return self.conv_in.host_forward_tensor(x, false);
        }
        self.conv_in.forward(x)
    }

    /// The convolutions after the LSTM: `[B, D, T]` → `[B, C, T * hop]`.
    pub fn tail(&self, mut x: Tensor<3>) -> Tensor<3> {
        if self.host_kernels {
            let device = x.device();
            let mut pool = Pool::default();
            let mut s = Signal::read(x);
            for stage in &self.stages {
                let next = stage.conv.host_forward_elu(&s, &mut pool);
                pool.give(std::mem::replace(&mut s, next).data);
                for block in &stage.res {
                    s = block.host_forward(s, &mut pool);
                }
            }
            return self
                .conv_out
                .host_forward(&s, true, &mut pool)
                .into_tensor(&device);
        }
        for stage in &self.stages {
            x = stage.conv.forward(elu1(x));
            for block in &stage.res {
                x = block.forward(x);
            }
        }
        self.conv_out.forward(elu1(x))
    }

    /// The LSTM frames `[lo, hi)` that tail samples `[a, b)` depend on.
    pub fn tail_span(&self, a: i64, b: i64) -> (i64, i64) {
        let (mut lo, mut hi) = self.conv_out.span(a, b);
        for stage in self.stages.iter().rev() {
            for block in stage.res.iter().rev() {
                (lo, hi) = block.span(lo, hi);
            }
            (lo, hi) = stage.conv.span(lo, hi);
        }
        (lo, hi)
    }

    /// Output samples per frame (the product of the strides).
    pub fn hop(&self) -> usize {
        self.stages.iter().map(|s| s.conv.stride).product()
    }

    /// Whether every conv is free of GroupNorm (whose statistics span the whole input).
    pub fn is_local(&self) -> bool {
        self.conv_in.norm.is_none()
            && self.conv_out.norm.is_none()
            && self
                .stages
                .iter()
                .all(|s| s.conv.norm.is_none() && s.res.iter().all(EncodecResnetBlock::is_local))
    }
}

/// What sits at an HF `layers.{i}` index with weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSlot {
    /// A conv (or transposed conv) module at this burn path.
    Conv(String),
    /// A resnet block at this burn path.
    ResBlock(String),
    /// The LSTM at this burn path.
    Lstm(String),
}

/// `(HF prefix, slot)` for every weighted layer of the encoder and decoder, in HF's index order
/// (`encoder.layers.1` → `ResBlock("encoder.stages.0.res.0")`, ...). ELU slots are skipped but counted.
pub fn layer_table(config: &EncodecConfig) -> Vec<(String, LayerSlot)> {
    let r = config.num_residual_layers;
    let n = config.upsampling_ratios.len();
    let mut out = vec![(
        "encoder.layers.0".to_string(),
        LayerSlot::Conv("encoder.conv_in".into()),
    )];
    let mut idx = 1;
    for s in 0..n {
        for j in 0..r {
            out.push((
                format!("encoder.layers.{}", idx + j),
                LayerSlot::ResBlock(format!("encoder.stages.{s}.res.{j}")),
            ));
        }
        out.push((
            format!("encoder.layers.{}", idx + r + 1),
            LayerSlot::Conv(format!("encoder.stages.{s}.conv")),
        ));
        idx += r + 2;
    }
    out.push((
        format!("encoder.layers.{idx}"),
        LayerSlot::Lstm("encoder.lstm".into()),
    ));
    out.push((
        format!("encoder.layers.{}", idx + 2),
        LayerSlot::Conv("encoder.conv_out".into()),
    ));
    out.push((
        "decoder.layers.0".to_string(),
        LayerSlot::Conv("decoder.conv_in".into()),
    ));
    out.push((
        "decoder.layers.1".to_string(),
        LayerSlot::Lstm("decoder.lstm".into()),
    ));
    let mut idx = 2;
    for s in 0..n {
        out.push((
            format!("decoder.layers.{}", idx + 1),
            LayerSlot::Conv(format!("decoder.stages.{s}.conv")),
        ));
        for j in 0..r {
            out.push((
                format!("decoder.layers.{}", idx + 2 + j),
                LayerSlot::ResBlock(format!("decoder.stages.{s}.res.{j}")),
            ));
        }
        idx += r + 2;
    }
    out.push((
        format!("decoder.layers.{}", idx + 1),
        LayerSlot::Conv("decoder.conv_out".into()),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_indices_follow_the_hf_module_lists() {
        let t = layer_table(&EncodecConfig::default());
        let find = |hf: &str| t.iter().find(|(k, _)| k == hf).map(|(_, s)| s.clone());
        assert_eq!(
            find("encoder.layers.12"),
            Some(LayerSlot::Conv("encoder.stages.3.conv".into()))
        );
        assert_eq!(
            find("encoder.layers.13"),
            Some(LayerSlot::Lstm("encoder.lstm".into()))
        );
        assert_eq!(
            find("encoder.layers.15"),
            Some(LayerSlot::Conv("encoder.conv_out".into()))
        );
        assert_eq!(
            find("decoder.layers.3"),
            Some(LayerSlot::Conv("decoder.stages.0.conv".into()))
        );
        assert_eq!(
            find("decoder.layers.13"),
            Some(LayerSlot::ResBlock("decoder.stages.3.res.0".into()))
        );
        assert_eq!(
            find("decoder.layers.15"),
            Some(LayerSlot::Conv("decoder.conv_out".into()))
        );
        assert_eq!(t.len(), 2 + 4 * 2 + 2 + 2 + 4 * 2);
    }
}
