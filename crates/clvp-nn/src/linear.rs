//! PyTorch `nn.Linear` and GPT-2 `Conv1D` forwards on burn's `Linear`, tuned for the CPU matmul.
//!
//! An `nn.Linear` keeps PyTorch's `[out, in]` weight (burn's `LinearLayout::Col`: the buffer the
//! checkpoint holds, seen as an `[in, out]` transposed view), so the loader maps it as is and, for an
//! f32 safetensors file, uses it straight from the memory map. A GPT-2 `Conv1D` stores `[in, out]`,
//! burn's default layout. [`forward`] runs either as one 2-D matmul (burn's batched path reshapes the
//! weight to 3-D, which copies a transposed view on every call) and spreads the small matmuls of
//! decoding over two threads (below, the CPU backend runs them on the calling thread).

use burn::nn::{Linear, LinearConfig, LinearLayout};
use burn::tensor::{Device, Tensor};

/// How a [`Linear`]'s weight buffer is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// `[out, in]`: PyTorch `nn.Linear` (built by [`torch_linear`]).
    OutIn,
    /// `[in, out]`: GPT-2 `Conv1D` and burn's default `Linear`.
    InOut,
}

/// Up to this many rows an `[out, in]` layer computes `y = x·Wᵀ` as `(W·xᵀ)ᵀ`, which streams each
/// weight row once for all rows of `x`: 1.2–1.6× faster for 2–16 rows here (`examples/mm_layout.rs`).
const SWAP_ROWS: usize = 32;

/// Up to this many rows a layer no wider out than in (the encoders' q/k/v, `out_proj` and `fc2`) is
/// swapped as well: at 101 rows (a 100-code candidate through the speech encoder) gemm runs `x·Wᵀ`
/// for a 768-wide output at about half the rate of the swapped product (`examples/mm_layout.rs`:
/// 768→768 1.12 → 0.86 ms, 1536→768 3.02 → 1.41 ms), while a 4× wider one (`fc1`) is faster
/// unswapped; from a few hundred rows on the two orientations are even or `x·Wᵀ` wins.
const SWAP_ROWS_NARROW: usize = 128;

/// burn-flex (and gemm's matrix-vector path, at one row) run a matmul below this many
/// multiply-adds on the calling thread; such a layer is split in two halves of its outputs, one per
/// thread.
const SERIAL_MACS: usize = 192 * 192 * 192;

/// Output width below which a split does not pay for the thread hand-off.
const MIN_SPLIT_OUT: usize = 256;

/// An `nn.Linear(d_in, d_out, bias)`, its weight laid out `[d_out, d_in]` as PyTorch's.
pub fn torch_linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_layout(LinearLayout::Col)
        .init(device)
}

/// `x·W + b` over the last dimension of `x` (`[..., d_in]` → `[..., d_out]`), `W` being the layer's
/// `[in, out]` view and `stored` how its buffer is laid out.
pub fn forward<const D: usize>(linear: &Linear, x: Tensor<D>, stored: Stored) -> Tensor<D> {
    let bias = linear.bias.as_ref().map(|b| b.val());
    apply(x, linear.weight.val(), bias, stored)
}

/// [`forward`] with the weight given directly: `w` is `[in, out]` (a view of an `[out, in]` buffer
/// when `stored` is [`Stored::OutIn`]), `bias` `[out]`.
pub fn apply<const D: usize>(
    x: Tensor<D>,
    w: Tensor<2>,
    bias: Option<Tensor<1>>,
    stored: Stored,
) -> Tensor<D> {
    let [d_in, d_out] = w.dims();
    let mut dims = x.dims();
    let rows: usize = dims[..D - 1].iter().product();
    let x = x.reshape([rows, d_in]);
    let serial = rows == 1 || rows * d_in * d_out < SERIAL_MACS;
    let y = if serial && d_out >= MIN_SPLIT_OUT && rayon::current_num_threads() > 1 {
        let half = d_out / 2;
        let (left, right) = (
            w.clone().slice([0..d_in, 0..half]),
            w.slice([0..d_in, half..d_out]),
        );
        let (a, b) = rayon::join(
            || matmul(x.clone(), left, stored),
            || matmul(x.clone(), right, stored),
        );
        Tensor::cat(vec![a, b], 1)
    } else {
        matmul(x, w, stored)
    };
    let y = match bias {
        Some(b) => y + b.unsqueeze::<2>(),
        None => y,
    };
    dims[D - 1] = d_out;
    y.reshape(dims)
}

/// An `[out, in]` contiguous copy of an `[in, out]` weight, returned as its `[in, out]` view (use it
/// with [`Stored::OutIn`]).
pub fn out_in_copy(w: Tensor<2>) -> Tensor<2> {
    let device = w.device();
    Tensor::<2>::from_data(w.transpose().into_data(), &device).transpose()
}

/// `x [rows, in] · w [in, out]` in the faster orientation for the weight's layout.
fn matmul(x: Tensor<2>, w: Tensor<2>, stored: Stored) -> Tensor<2> {
    let [rows, _] = x.dims();
    let [d_in, d_out] = w.dims();
    let narrow = d_out <= d_in && rows <= SWAP_ROWS_NARROW;
    if stored == Stored::OutIn && (rows <= SWAP_ROWS || narrow) {
        w.transpose().matmul(x.transpose()).transpose()
    } else {
        x.matmul(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// Both layouts, both orientations, split and not, against burn's own `Linear::forward`.
    #[test]
    fn matches_burn_linear() {
        let device = Device::default();
        let col = torch_linear(24, 600, true, &device);
        let row = LinearConfig::new(24, 600).init(&device);
        for (lin, stored) in [(&col, Stored::OutIn), (&row, Stored::InOut)] {
            for rows in [1, 3, SWAP_ROWS, SWAP_ROWS + 5, 2000] {
                let x = Tensor::<3>::random([1, rows, 24], Distribution::Default, &device);
                let ours = forward(lin, x.clone(), stored).into_data();
                let theirs = lin.forward(x).into_data();
                ours.assert_approx_eq::<f32>(&theirs, Tolerance::absolute(1e-4));
            }
        }
        // A layer narrower out than in, on both sides of the narrow swap's row limit.
        let narrow = torch_linear(96, 40, true, &device);
        for rows in [SWAP_ROWS + 1, SWAP_ROWS_NARROW, SWAP_ROWS_NARROW + 1] {
            let x = Tensor::<3>::random([1, rows, 96], Distribution::Default, &device);
            let ours = forward(&narrow, x.clone(), Stored::OutIn).into_data();
            let theirs = narrow.forward(x).into_data();
            ours.assert_approx_eq::<f32>(&theirs, Tolerance::absolute(1e-4));
        }
        let copy = out_in_copy(row.weight.val());
        let x = Tensor::<2>::random([4, 24], Distribution::Default, &device);
        let bias = row.bias.as_ref().map(|b| b.val());
        apply(x.clone(), copy, bias, Stored::OutIn)
            .into_data()
            .assert_approx_eq::<f32>(&row.forward(x).into_data(), Tolerance::absolute(1e-4));
        let no_bias = torch_linear(24, 40, false, &device);
        let x = Tensor::<2>::random([2, 24], Distribution::Default, &device);
        let w = no_bias.weight.val();
        forward(&no_bias, x.clone(), Stored::OutIn)
            .into_data()
            .assert_approx_eq::<f32>(&x.matmul(w).into_data(), Tolerance::absolute(1e-5));
    }
}
