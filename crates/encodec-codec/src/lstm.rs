//! `EncodecLSTM` (transformers 5.23): a stacked, sequence-first `nn.LSTM(dim, dim, num_layers)` with zero
//! initial state whose output is added to its input. The parameters live in burn `Lstm` gate controllers
//! (loaded by clvp-hub's `LstmGates` layout); the forward is one input matmul for all steps, then a tight
//! host step loop over the fused `[4H, H]` recurrent matrix, gates in PyTorch's order i, f, g, o.

use burn::module::Module;
use burn::nn::{Lstm, LstmConfig};
use burn::tensor::{Device, Tensor, TensorData};

use crate::host::values as host;

mod steps;

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

/// One layer over a `[T, B, in]` sequence from state `init` (zeros if `None`) → `[T, B, H]` and the last
/// `(h, c)`: the input projection of all steps as one matmul on the device, then the recurrence as one host
/// loop ([`steps`]) on the threads of the pool.
fn run_layer(
    layer: &Lstm,
    seq: Tensor<3>,
    init: Option<(Tensor<2>, Tensor<2>)>,
) -> (Tensor<3>, (Tensor<2>, Tensor<2>)) {
    let [t, b, input] = seq.dims();
    let hidden = layer.d_hidden;
    let (w_ih, w_hh, bias) = fused(layer);
    let device = seq.device();
    let projected = seq.reshape([t * b, input]).matmul(w_ih) + bias.unsqueeze::<2>();
    let (h, c) = match init {
        Some((h, c)) => (host(h), host(c)),
        None => (vec![0.0; b * hidden], vec![0.0; b * hidden]),
    };
    let run = steps::Recurrence {
        projected: &host(projected),
        w_hh: &host(w_hh.transpose()),
        steps: t,
        batch: b,
        hidden,
    }
    .run(h, c, rayon::current_num_threads());
    let tensor = |values: Vec<f32>, shape: Vec<usize>| TensorData::new(values, shape);
    (
        Tensor::from_data(tensor(run.out, vec![t, b, hidden]), &device),
        (
            Tensor::from_data(tensor(run.h, vec![b, hidden]), &device),
            Tensor::from_data(tensor(run.c, vec![b, hidden]), &device),
        ),
    )
}
