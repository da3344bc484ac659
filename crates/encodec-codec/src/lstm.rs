//! `EncodecLSTM` (transformers 5.23): a stacked, sequence-first `nn.LSTM(dim, dim, num_layers)` with zero
//! initial state whose output is added to its input. The parameters live in burn `Lstm` gate controllers
//! (loaded by clvp-hub's `LstmGates` layout); the forward is one input matmul for all steps, then a tight
//! step loop over the fused `[H, 4H]` recurrent matrix, gates in PyTorch's order i, f, g, o.

use burn::module::Module;
use burn::nn::{Lstm, LstmConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

/// `EncodecLSTM`.
#[derive(Module, Debug)]
pub struct EncodecLstm {
    /// One burn `Lstm` per PyTorch layer (`lstm.weight_ih_l{k}` → `lstm.{k}`).
    pub lstm: Vec<Lstm>,
}

impl EncodecLstm {
    /// `layers` stacked LSTMs of width `dim`.
    pub fn new(dim: usize, layers: usize, device: &Device) -> Self {
        let config = LstmConfig::new(dim, dim, true).with_batch_first(false);
        EncodecLstm {
            lstm: (0..layers).map(|_| config.init(device)).collect(),
        }
    }

    /// `[B, C, T]` → `[B, C, T]`: `lstm(x) + x` along time.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with_state(x, None).0
    }

    /// [`Self::forward`] from a carried state (`None`: zeros, as PyTorch), returning the state after the last
    /// step: running a sequence in pieces, each from the previous piece's state, gives the whole sequence's
    /// output.
    pub fn forward_with_state(
        &self,
        x: Tensor<3>,
        state: Option<LstmState>,
    ) -> (Tensor<3>, LstmState) {
        let seq = x.permute([2, 0, 1]); // [T, B, C]
        let mut h = seq.clone();
        let mut carried = state.map(|s| s.layers.into_iter());
        let mut layers = Vec::with_capacity(self.lstm.len());
        for layer in &self.lstm {
            let init = carried.as_mut().and_then(Iterator::next);
            let (out, last) = run_layer(layer, h, init);
            h = out;
            layers.push(last);
        }
        ((h + seq).permute([1, 2, 0]), LstmState { layers })
    }
}

/// The hidden and cell state `([B, H], [B, H])` of every layer after a step.
#[derive(Debug, Clone)]
pub struct LstmState {
    layers: Vec<(Tensor<2>, Tensor<2>)>,
}

/// The four gates' `(input weight [in, H], hidden weight [H, H], input bias, hidden bias)` in i, f, g, o order.
fn fused(layer: &Lstm) -> (Tensor<2>, Tensor<2>, Tensor<1>) {
    let forget = layer.forget_gate.as_ref().unwrap_or(&layer.input_gate);
    let gates = [
        &layer.input_gate,
        forget,
        &layer.cell_gate,
        &layer.output_gate,
    ];
    let w_ih = Tensor::cat(
        gates
            .iter()
            .map(|g| g.input_transform.weight.val())
            .collect(),
        1,
    );
    let w_hh = Tensor::cat(
        gates
            .iter()
            .map(|g| g.hidden_transform.weight.val())
            .collect(),
        1,
    );
    let bias = |t: fn(&burn::nn::GateController) -> &burn::nn::Linear| {
        Tensor::cat(
            gates
                .iter()
                .map(|g| match &t(g).bias {
                    Some(b) => b.val(),
                    None => Tensor::zeros([layer.d_hidden], &g.input_transform.weight.device()),
                })
                .collect(),
            0,
        )
    };
    let b = bias(|g| &g.input_transform) + bias(|g| &g.hidden_transform);
    (w_ih, w_hh, b)
}

/// `h · w_hh` of one step. With a batch of one or two this is a matrix–vector product, which burn-flex runs on
/// the calling thread; the two column halves go to two threads of the pool instead (each output element is the
/// same dot product; `tests::recurrent_split_equals_matmul`).
fn recurrent(h: Tensor<2>, w_hh: &Tensor<2>) -> Tensor<2> {
    let [b, k] = h.dims();
    let [_, n] = w_hh.dims();
    if b > 2 || n < 2 || rayon::current_num_threads() < 2 {
        return h.matmul(w_hh.clone());
    }
    let half = n / 2;
    let (left, right) = (
        w_hh.clone().slice([0..k, 0..half]),
        w_hh.clone().slice([0..k, half..n]),
    );
    let (a, c) = rayon::join(|| h.clone().matmul(left), || h.clone().matmul(right));
    Tensor::cat(vec![a, c], 1)
}

/// One layer over a `[T, B, in]` sequence from state `init` (zeros if `None`) → `[T, B, H]` and the last
/// `(h, c)`.
fn run_layer(
    layer: &Lstm,
    seq: Tensor<3>,
    init: Option<(Tensor<2>, Tensor<2>)>,
) -> (Tensor<3>, (Tensor<2>, Tensor<2>)) {
    let [t, b, input] = seq.dims();
    let h_dim = layer.d_hidden;
    let (w_ih, w_hh, bias) = fused(layer);
    let device = seq.device();
    let projected = (seq.reshape([t * b, input]).matmul(w_ih) + bias.unsqueeze::<2>()).reshape([
        t,
        b,
        4 * h_dim,
    ]);
    let (mut h, mut c) = init.unwrap_or_else(|| {
        (
            Tensor::<2>::zeros([b, h_dim], &device),
            Tensor::<2>::zeros([b, h_dim], &device),
        )
    });
    let mut out = Vec::with_capacity(t);
    for step in 0..t {
        let gates = projected
            .clone()
            .slice([step..step + 1, 0..b, 0..4 * h_dim])
            .reshape([b, 4 * h_dim])
            + recurrent(h, &w_hh);
        let mut parts = gates.chunk(4, 1).into_iter();
        let (Some(i), Some(f), Some(g), Some(o)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            unreachable!("chunk(4) of a 4H-wide tensor gives four parts")
        };
        c = sigmoid(f) * c + sigmoid(i) * g.tanh();
        h = sigmoid(o) * c.clone().tanh();
        out.push(h.clone());
    }
    (Tensor::stack(out, 0), (h, c))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::recurrent;

    #[test]
    fn recurrent_split_equals_matmul() {
        let device = Device::flex();
        for (b, k, n) in [(1, 512, 2048), (2, 64, 257), (3, 32, 128)] {
            let h = Tensor::<2>::random([b, k], Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 0.1), &device);
            let want = h.clone().matmul(w.clone());
            let got = recurrent(h, &w);
            assert_eq!(got.dims(), want.dims());
            let err: f32 = (got - want.clone()).abs().max().into_scalar();
            let scale: f32 = want.abs().max().into_scalar();
            assert!(
                err <= 1e-5 * scale,
                "b {b} k {k} n {n}: max err {err} (scale {scale})"
            );
        }
    }
}
