//! `EncodecResidualVectorQuantizer` (transformers 5.23): nearest codeword by HF's expanded distance
//! `-(|x|² - 2 x·e + |e|²)` (first index on ties), the residual updated with the looked-up codeword, and
//! decoding as the sum of the codewords, layer 0 first. Only `embed` is used at inference.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor};

/// `EncodecEuclideanCodebook`: `embed` `[K, D]`.
#[derive(Module, Debug)]
pub struct EncodecEuclideanCodebook {
    /// The codewords.
    pub embed: Param<Tensor<2>>,
}

/// `EncodecVectorQuantization`: one RVQ layer.
#[derive(Module, Debug)]
pub struct EncodecVectorQuantization {
    /// `codebook.embed`.
    pub codebook: EncodecEuclideanCodebook,
}

impl EncodecVectorQuantization {
    /// Codes `[N]` of latents `[N, D]`.
    fn encode(&self, x: Tensor<2>) -> Tensor<1, Int> {
        let embed = self.codebook.embed.val(); // [K, D]
        let [k, _] = embed.dims();
        let [rows, _] = x.dims();
        if rows == 1 {
            // One frame (a stream's tile): a product of one row goes to `gemm`'s vector kernel, which sums in
            // another order than the matrix kernel that the whole pass's many rows get; two copies of the row
            // take the matrix kernel, and the first's code is the whole pass's, bit for bit.
            let codes = self.encode(Tensor::cat(vec![x.clone(), x], 0));
            return codes.narrow(0, 0, 1);
        }
        let x2 = x.clone().square().sum_dim(1); // [N, 1]
        let e2 = embed.clone().square().sum_dim(1).reshape([1, k]); // [1, K]
        let dot = x.matmul(embed.transpose()); // [N, K]
        let dist = -((x2 - dot * 2.0) + e2);
        let [n, _] = dist.dims();
        dist.argmax(1).reshape([n])
    }

    /// Codewords `[N, D]` of codes `[N]`.
    fn decode(&self, codes: Tensor<1, Int>) -> Tensor<2> {
        self.codebook.embed.val().select(0, codes)
    }
}

/// `EncodecResidualVectorQuantizer`.
#[derive(Module, Debug)]
pub struct EncodecResidualVectorQuantizer {
    /// `num_quantizers` layers.
    pub layers: Vec<EncodecVectorQuantization>,
}

impl EncodecResidualVectorQuantizer {
    /// Zero codebooks of `layers × [size, dim]` (weights come from a checkpoint).
    pub fn new(layers: usize, size: usize, dim: usize, device: &Device) -> Self {
        EncodecResidualVectorQuantizer {
            layers: (0..layers)
                .map(|_| EncodecVectorQuantization {
                    codebook: EncodecEuclideanCodebook {
                        embed: Param::from_tensor(Tensor::zeros([size, dim], device)),
                    },
                })
                .collect(),
        }
    }

    /// Latents `[B, D, T]` → codes `[B, n_q, T]` with the first `n_q` layers.
    pub fn encode(&self, latent: Tensor<3>, n_q: usize) -> Tensor<3, Int> {
        let [b, d, t] = latent.dims();
        let mut residual = latent.permute([0, 2, 1]).reshape([b * t, d]);
        let mut codes = Vec::with_capacity(n_q);
        for layer in self.layers.iter().take(n_q) {
            let idx = layer.encode(residual.clone());
            residual = residual - layer.decode(idx.clone());
            codes.push(idx.reshape([b, 1, t]));
        }
        Tensor::cat(codes, 1)
    }

    /// Codes `[B, n_q, T]` (checked to be in range by the caller) → latents `[B, D, T]`.
    pub fn decode(&self, codes: Tensor<3, Int>) -> Tensor<3> {
        let [b, n_q, t] = codes.dims();
        let mut sum: Option<Tensor<2>> = None;
        for (i, layer) in self.layers.iter().take(n_q).enumerate() {
            let idx = codes.clone().slice([0..b, i..i + 1, 0..t]).reshape([b * t]);
            let q = layer.decode(idx);
            sum = Some(match sum {
                Some(s) => s + q,
                None => q,
            });
        }
        match sum {
            Some(s) => {
                let d = s.dims()[1];
                s.reshape([b, t, d]).permute([0, 2, 1])
            }
            None => {
                let d = self
                    .layers
                    .first()
                    .map(|l| l.codebook.embed.dims()[1])
                    .unwrap_or(0);
                Tensor::zeros([b, d, t], &codes.device())
            }
        }
    }
}
