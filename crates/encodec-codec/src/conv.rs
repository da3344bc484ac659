//! `EncodecConv1d` and `EncodecConvTranspose1d` (transformers 5.23): per-call padding with the extra right
//! padding, reflect padding with HF's small-input workaround, causal/non-causal splits, GroupNorm(1) for
//! `time_group_norm`, transposed-conv trimming after the norm. Weight norm is folded at load (clvp-hub).

use std::sync::{Arc, OnceLock};

use burn::module::{Module, Param};
use burn::tensor::module::{conv_transpose1d, conv1d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor};

use crate::config::{EncodecConfig, NormType, PadMode};
use crate::readback::values;

/// The parameters of a PyTorch `nn.Conv1d` (`[cout, cin, k]`) or `nn.ConvTranspose1d` (`[cin, cout, k]`).
#[derive(Module, Debug)]
pub struct ConvParams {
    /// The (folded) weight, in PyTorch's layout.
    pub weight: Param<Tensor<3>>,
    /// The bias `[cout]`.
    pub bias: Param<Tensor<1>>,
}

impl ConvParams {
    fn new(shape: [usize; 3], out: usize, device: &Device) -> Self {
        ConvParams {
            weight: Param::from_tensor(Tensor::zeros(shape, device)),
            bias: Param::from_tensor(Tensor::zeros([out], device)),
        }
    }
}

/// `nn.GroupNorm(1, C)` (eps 1e-5): statistics over all of C×T per item, biased variance.
#[derive(Module, Debug)]
pub struct GroupNorm1 {
    /// Per-channel scale.
    pub weight: Param<Tensor<1>>,
    /// Per-channel shift.
    pub bias: Param<Tensor<1>>,
}

impl GroupNorm1 {
    fn new(channels: usize, device: &Device) -> Self {
        GroupNorm1 {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
        }
    }

    /// Normalise `x` `[B, C, T]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, c, _] = x.dims();
        // Two passes (mean, then the mean of squared deviations), each reduced per channel first and then
        // across channels: shorter f32 sums than one reduction over C×T (48 kHz: 32 × 48000 values).
        let mean = x.clone().mean_dim(2).mean_dim(1);
        let centred = x - mean;
        let var = centred.clone().square().mean_dim(2).mean_dim(1);
        let y = centred / (var + 1e-5).sqrt();
        let w = self.weight.val().reshape([1, c, 1]);
        let bias = self.bias.val().reshape([1, c, 1]);
        y * w + bias
    }
}

/// Reflect-pad the last axis by (`left`, `right`) the way PyTorch does (the edge sample is not repeated), with
/// HF's `_pad1d` workaround for short inputs: when `L <= max(left, right)` the input is first extended with
/// zeros on the right and as many samples are dropped from the result's end.
pub fn reflect_pad(x: Tensor<3>, left: usize, right: usize) -> Tensor<3> {
    if left == 0 && right == 0 {
        return x;
    }
    let [b, c, len] = x.dims();
    let max_pad = left.max(right);
    let (x, extra) = if len <= max_pad {
        let extra = max_pad - len + 1;
        let zeros = Tensor::zeros([b, c, extra], &x.device());
        (Tensor::cat(vec![x, zeros], 2), extra)
    } else {
        (x, 0)
    };
    let n = len + extra;
    let mut parts = Vec::with_capacity(3);
    if left > 0 {
        parts.push(x.clone().slice([0..b, 0..c, 1..left + 1]).flip([2]));
    }
    parts.push(x.clone());
    if right > 0 {
        parts.push(x.slice([0..b, 0..c, n - 1 - right..n - 1]).flip([2]));
    }
    let padded = Tensor::cat(parts, 2);
    let total = left + n + right;
    if extra > 0 {
        padded.slice([0..b, 0..c, 0..total - extra])
    } else {
        padded
    }
}

/// Pad the last axis with `mode`.
pub fn pad1d(x: Tensor<3>, left: usize, right: usize, mode: PadMode) -> Tensor<3> {
    if left == 0 && right == 0 {
        return x;
    }
    match mode {
        PadMode::Reflect => reflect_pad(x, left, right),
        PadMode::Constant => x.pad([(left, right)], burn::tensor::ops::PadMode::Constant(0.0)),
        PadMode::Replicate => x.pad([(left, right)], burn::tensor::ops::PadMode::Edge),
    }
}

/// `EncodecConv1d` (transformers 5.23): a `nn.Conv1d` with EnCodec's padding and optional GroupNorm(1).
#[derive(Module, Debug)]
pub struct EncodecConv1d {
    /// The convolution (`{prefix}.conv.weight`, `.conv.bias`).
    pub conv: ConvParams,
    /// `time_group_norm`'s GroupNorm (`{prefix}.norm.*`).
    pub norm: Option<GroupNorm1>,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// All padding on the left.
    pub causal: bool,
    #[module(skip)]
    pub(crate) pad_mode: PadMode,
    /// The parameters on the host, for [`crate::host`].
    #[module(skip)]
    pub(crate) host: HostWeights,
}

impl EncodecConv1d {
    /// A zero-initialised conv `cin → cout` (weights come from a checkpoint).
    pub fn new(
        config: &EncodecConfig,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        device: &Device,
    ) -> Self {
        EncodecConv1d {
            conv: ConvParams::new([cout, cin, kernel], cout, device),
            norm: (config.norm_type == NormType::TimeGroupNorm)
                .then(|| GroupNorm1::new(cout, device)),
            kernel,
            stride,
            dilation,
            causal: config.use_causal_conv,
            pad_mode: config.pad_mode,
            host: HostWeights::default(),
        }
    }

    /// Left and right padding for an input of `len` samples (output length `ceil(len / stride)`).
    pub fn padding(&self, len: usize) -> (usize, usize) {
        let k_eff = (self.kernel - 1) * self.dilation + 1;
        let padding_total = k_eff.saturating_sub(self.stride);
        // HF: n_frames = (L - k_eff + padding_total) / s + 1; extra = (ceil(n_frames) - 1) * s + k_eff -
        // padding_total - L. Exact integer form of the same quantity (HF's float32 division only deviates
        // above ~1.6e8 samples in one pass).
        // Since k_eff - padding_total == stride, that is ceil(L / s) * s - L.
        let extra = len.div_ceil(self.stride) * self.stride - len;
        if self.causal {
            (padding_total, extra)
        } else {
            let right = padding_total / 2;
            (padding_total - right, right + extra)
        }
    }

    /// The input samples `[lo, hi)` (indices may fall outside the input) that outputs `[a, b)` depend on,
    /// with what a reflection at a true edge of the sequence reads (what [`crate::stream`] needs to evaluate a
    /// tile exactly): on the left, the most right padding any length gets (the reflection at the end reads
    /// back from it); on the right, the left padding's reflection at the start (`x[1..=left]`, which only the
    /// first outputs read). No more: a stream's lag is `hi` − the outputs' own samples, and for a causal
    /// convolution that is nothing after the first `left` samples.
    pub fn span(&self, a: i64, b: i64) -> (i64, i64) {
        let k_eff = ((self.kernel - 1) * self.dilation + 1) as i64;
        let s = self.stride as i64;
        let padding_total = k_eff - s.min(k_eff);
        let left = if self.causal {
            padding_total
        } else {
            padding_total - padding_total / 2
        };
        // The most right padding any length gets: the split of padding_total plus up to stride - 1 extra.
        let right = padding_total - left + s - 1;
        let reads = (b - 1) * s - left + k_eff;
        let reflected = left - a * s + 1;
        (a * s - left - right, reads.max(reflected))
    }

    /// `[B, cin, L]` → `[B, cout, ceil(L / stride)]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let (left, right) = self.padding(x.dims()[2]);
        let x = pad1d(x, left, right, self.pad_mode);
        let y = conv1d(
            x,
            self.conv.weight.val(),
            Some(self.conv.bias.val()),
            ConvOptions::new([self.stride], [0], [self.dilation], 1),
        );
        match &self.norm {
            Some(norm) => norm.forward(y),
            None => y,
        }
    }
}

/// `EncodecConvTranspose1d` (transformers 5.23): `nn.ConvTranspose1d(k = 2s, stride s)`, GroupNorm on the
/// untrimmed output, then `s` samples trimmed (causal: from the right per `trim_right_ratio`; non-causal:
/// `s // 2` from the right, the rest from the left).
#[derive(Module, Debug)]
pub struct EncodecConvTranspose1d {
    /// The transposed convolution (`{prefix}.conv.*`, weight `[cin, cout, k]`).
    pub conv: ConvParams,
    /// `time_group_norm`'s GroupNorm (`{prefix}.norm.*`).
    pub norm: Option<GroupNorm1>,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Trimming of the causal model.
    pub causal: bool,
    /// Share of the trimming taken from the right (causal only).
    pub trim_right_ratio: f64,
    /// The parameters on the host, for [`crate::host`].
    #[module(skip)]
    pub(crate) host: HostWeights,
}

impl EncodecConvTranspose1d {
    /// A zero-initialised transposed conv `cin → cout`.
    pub fn new(
        config: &EncodecConfig,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        device: &Device,
    ) -> Self {
        EncodecConvTranspose1d {
            conv: ConvParams::new([cin, cout, kernel], cout, device),
            norm: (config.norm_type == NormType::TimeGroupNorm)
                .then(|| GroupNorm1::new(cout, device)),
            kernel,
            stride,
            causal: config.use_causal_conv,
            trim_right_ratio: config.trim_right_ratio,
            host: HostWeights::default(),
        }
    }

    /// Samples trimmed from the left of the transposed conv's output.
    pub(crate) fn trim_left(&self) -> usize {
        let padding_total = self.kernel.saturating_sub(self.stride);
        let right = if self.causal {
            (padding_total as f64 * self.trim_right_ratio).ceil() as usize
        } else {
            padding_total / 2
        };
        padding_total - right.min(padding_total)
    }

    /// The input frames `[lo, hi)` that (trimmed) outputs `[a, b)` depend on: output `m` is the untrimmed
    /// `n = m + trim_left`, the sum over inputs `i` with `i * stride <= n < i * stride + kernel`.
    pub fn span(&self, a: i64, b: i64) -> (i64, i64) {
        let (s, k, t) = (
            self.stride as i64,
            self.kernel as i64,
            self.trim_left() as i64,
        );
        // ceil((a + t - k + 1) / s), floor((b - 1 + t) / s) + 1
        (
            -(-(a + t - k + 1)).div_euclid(s),
            (b - 1 + t).div_euclid(s) + 1,
        )
    }

    /// `[B, cin, L]` → `[B, cout, L * stride]` (for `k = 2 * stride`).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let y = conv_transpose1d(
            x,
            self.conv.weight.val(),
            Some(self.conv.bias.val()),
            ConvTransposeOptions::new([self.stride], [0], [0], [1], 1),
        );
        let y = match &self.norm {
            Some(norm) => norm.forward(y),
            None => y,
        };
        let padding_total = self.kernel.saturating_sub(self.stride);
        let left = self.trim_left();
        let right = padding_total - left;
        let [b, c, n] = y.dims();
        y.slice([0..b, 0..c, left..n - right])
    }
}

/// A conv's parameters read to the host on first use (the loaded tensors do not change afterwards).
#[derive(Debug, Clone, Default)]
pub struct HostWeights(Arc<OnceLock<Weights>>);

#[derive(Debug)]
pub(crate) struct Weights {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub norm: Option<(Vec<f32>, Vec<f32>)>,
}

impl HostWeights {
    pub(crate) fn get<'a>(&'a self, conv: &ConvParams, norm: Option<&GroupNorm1>) -> &'a Weights {
        self.0.get_or_init(|| Weights {
            w: values(conv.weight.val()),
            b: values(conv.bias.val()),
            norm: norm.map(|n| (values(n.weight.val()), values(n.bias.val()))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn row(v: &[f32]) -> Tensor<3> {
        Tensor::from_data(
            TensorData::new(v.to_vec(), [1, 1, v.len()]),
            &Device::flex(),
        )
    }

    fn vals(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn reflect_pad_matches_the_spec_table() {
        // spec §3.2: [a,b] (6,0) -> [0,0,0,0,0,b,a,b]; [a,b] (3,4) -> [0,0,b,a,b,0,0,0,0]; [a] (1,1) -> [0,a,0]
        assert_eq!(
            vals(reflect_pad(row(&[1.0, 2.0]), 6, 0)),
            [0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 1.0, 2.0]
        );
        assert_eq!(
            vals(reflect_pad(row(&[1.0, 2.0]), 3, 4)),
            [0.0, 0.0, 2.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(vals(reflect_pad(row(&[1.0]), 1, 1)), [0.0, 1.0, 0.0]);
        // Long input: plain PyTorch reflect.
        assert_eq!(
            vals(reflect_pad(row(&[1.0, 2.0, 3.0, 4.0]), 2, 2)),
            [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]
        );
    }

    #[test]
    fn conv_output_length_is_ceil_of_length_over_stride() {
        let device = Device::flex();
        for causal in [true, false] {
            let config = EncodecConfig {
                use_causal_conv: causal,
                ..EncodecConfig::default()
            };
            for (k, s) in [(4, 2), (8, 4), (10, 5), (16, 8), (7, 1), (3, 1)] {
                let conv = EncodecConv1d::new(&config, 1, 1, k, s, 1, &device);
                for len in 1..200 {
                    let (l, r) = conv.padding(len);
                    let padded = l + len + r;
                    assert_eq!((padded - k) / s + 1, len.div_ceil(s), "k{k} s{s} L{len}");
                }
            }
        }
    }
}
