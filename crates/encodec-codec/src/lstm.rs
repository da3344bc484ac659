//! `EncodecLSTM` (transformers 5.23): a stacked, sequence-first `nn.LSTM(dim, dim, num_layers)` with zero
//! initial state whose output is added to its input. The parameters live in burn `Lstm` gate controllers
//! (loaded by clvp-hub's `LstmGates` layout) and are read to the host once, on first use; the forward runs
//! on the host on any device: one input matmul for all steps, then a tight step loop (`lstm::steps`) over the
//! packed recurrent matrix, gates in PyTorch's order i, f, g, o.

use std::sync::{Arc, OnceLock};

use burn::module::Module;
use burn::nn::{Lstm, LstmConfig};
use burn::tensor::{Device, Tensor, TensorData};

use crate::readback::values;
use clvp_kernels::conv::matmul_acc;

use clvp_kernels::lstm as steps;

/// `EncodecLSTM`.
#[derive(Module, Debug)]
pub struct EncodecLstm {
    /// One burn `Lstm` per PyTorch layer (`lstm.weight_ih_l{k}` → `lstm.{k}`).
    pub lstm: Vec<Lstm>,
    /// The layers' parameters on the host, read on first use (the loaded tensors do not change afterwards).
    #[module(skip)]
    host: HostLayers,
}

#[derive(Debug, Clone, Default)]
struct HostLayers(Arc<OnceLock<Vec<HostLayer>>>);

/// One layer's fused parameters: `W_ihᵀ` `[in, 4H]`, `b_ih + b_hh` `[4H]` and the packed `W_hh`.
#[derive(Debug)]
struct HostLayer {
    input: usize,
    w_ih: Vec<f32>,
    bias: Vec<f32>,
    w_hh: steps::PackedHh,
}

impl EncodecLstm {
    /// `layers` stacked LSTMs of width `dim`.
    pub fn new(dim: usize, layers: usize, device: &Device) -> Self {
        let config = LstmConfig::new(dim, dim, true).with_batch_first(false);
        EncodecLstm {
            lstm: (0..layers).map(|_| config.init(device)).collect(),
            host: HostLayers::default(),
        }
    }

    /// `[B, C, T]` → `[B, C, T]`: `lstm(x) + x` along time.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with_state(x, None).0
    }

    /// [`Self::forward`] from a carried state (`None`: zeros, as PyTorch), returning the state after the last
    /// step: running a sequence in pieces, each from the previous piece's state, gives the whole sequence's
    /// output.
    ///
    /// Crate-internal: the stream's tiler is its only caller and passes the widths and states it made; a
    /// mismatch there is a bug of this crate (asserted below), never a caller's input.
    pub(crate) fn forward_with_state(
        &self,
        x: Tensor<3>,
        state: Option<LstmState>,
    ) -> (Tensor<3>, LstmState) {
        let device = x.device();
        let [b, c, t] = x.dims();
        let x = values(x);
        // [B, C, T] → [T, B, C]
        let mut seq = vec![0.0f32; x.len()];
        for (bc, row) in x.chunks_exact(t.max(1)).enumerate() {
            for (ti, v) in row.iter().enumerate() {
                seq[(ti * b + bc / c) * c + bc % c] = *v;
            }
        }
        let layers = self
            .host
            .0
            .get_or_init(|| self.lstm.iter().map(host_layer).collect());
        let mut carried = state.map(|s| s.layers.into_iter());
        let mut last = Vec::with_capacity(layers.len());
        let mut h = seq;
        for layer in layers {
            let hidden = layer.bias.len() / 4;
            assert_eq!(
                h.len(),
                t * b * layer.input,
                "the LSTM's input has {c} channels where the layer takes {}",
                layer.input
            );
            let (h0, c0) = match carried.as_mut().and_then(Iterator::next) {
                Some(state) => state,
                None => (vec![0.0; b * hidden], vec![0.0; b * hidden]),
            };
            assert_eq!(
                h0.len(),
                b * hidden,
                "an LSTM state from another batch size"
            );
            let mut projected: Vec<f32> = layer.bias.repeat(t * b);
            matmul_acc(
                &mut projected,
                &h,
                &layer.w_ih,
                [t * b, 4 * hidden, layer.input],
            );
            let run = steps::Recurrence {
                projected: &projected,
                w_hh: &layer.w_hh,
                steps: t,
                batch: b,
            }
            .run(h0, c0, rayon::current_num_threads());
            h = run.out;
            last.push((run.h, run.c));
        }
        // lstm(x) + x, [T, B, H] → [B, H, T]
        let mut y = x;
        for (bc, row) in y.chunks_exact_mut(t.max(1)).enumerate() {
            for (ti, v) in row.iter_mut().enumerate() {
                *v += h[(ti * b + bc / c) * c + bc % c];
            }
        }
        (
            Tensor::from_data(TensorData::new(y, [b, c, t]), &device),
            LstmState { layers: last },
        )
    }
}

/// The hidden and cell state `([B, H], [B, H])` of every layer after a step.
#[derive(Debug, Clone)]
pub struct LstmState {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
}

/// A layer's four gates fused in i, f, g, o order, on the host.
fn host_layer(layer: &Lstm) -> HostLayer {
    let forget = layer.forget_gate.as_ref().unwrap_or(&layer.input_gate);
    let gates = [
        &layer.input_gate,
        forget,
        &layer.cell_gate,
        &layer.output_gate,
    ];
    let cat = |weights: Vec<Tensor<2>>| values(Tensor::cat(weights, 1));
    let w_ih = cat(gates
        .iter()
        .map(|g| g.input_transform.weight.val())
        .collect());
    // burn's `Linear` weights are `[in, out]`: the hidden ones concatenated are `W_hhᵀ` `[H, 4H]`.
    let w_hh_t = cat(gates
        .iter()
        .map(|g| g.hidden_transform.weight.val())
        .collect());
    let hidden = layer.d_hidden;
    let mut w_hh = vec![0.0f32; w_hh_t.len()];
    for (j, row) in w_hh_t.chunks_exact(4 * hidden).enumerate() {
        for (r, v) in row.iter().enumerate() {
            w_hh[r * hidden + j] = *v;
        }
    }
    let bias = |t: fn(&burn::nn::GateController) -> &burn::nn::Linear| -> Vec<f32> {
        gates
            .iter()
            .flat_map(|g| match &t(g).bias {
                Some(b) => values(b.val()),
                None => vec![0.0; hidden],
            })
            .collect()
    };
    let bias: Vec<f32> = bias(|g| &g.input_transform)
        .iter()
        .zip(bias(|g| &g.hidden_transform))
        .map(|(a, b)| a + b)
        .collect();
    HostLayer {
        input: w_ih.len() / (4 * hidden),
        w_ih,
        bias,
        w_hh: steps::PackedHh::new(&w_hh, hidden),
    }
}
