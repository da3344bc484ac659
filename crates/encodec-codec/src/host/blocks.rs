//! SEANet's blocks on the host: `EncodecConv1d`, `EncodecConvTranspose1d` and `EncodecResnetBlock` over
//! [`Signal`]s, built from the kernels of `kernels.rs` (the burn path of the same blocks is in `conv.rs` and
//! `seanet.rs`).

use burn::tensor::Tensor;
use rayon::prelude::*;

use super::{Pool, Signal};
use crate::conv::Weights;
use crate::conv::{EncodecConv1d, EncodecConvTranspose1d};
use crate::seanet::EncodecResnetBlock;
use clvp_kernels::conv::*;

impl EncodecConv1d {
    /// The conv's (and its GroupNorm's) parameters on the host, read on first use.
    fn host_weights(&self) -> &Weights {
        self.host.get(&self.conv, self.norm.as_ref())
    }

    /// [`Self::host_forward`] of a tensor, read back and written out again.
    pub(crate) fn host_forward_tensor(&self, x: Tensor<3>, elu: bool) -> Tensor<3> {
        let device = x.device();
        self.host_forward(&Signal::read(x), elu, &mut Pool::default())
            .into_tensor(&device)
    }

    /// [`EncodecConv1d::forward`] of `ELU(x)` (when `elu`) or `x` on the host.
    pub(crate) fn host_forward(&self, x: &Signal, elu: bool, pool: &mut Pool) -> Signal {
        let wts = self.host_weights();
        let mut out = Signal::uninit(x.b, wts.b.len(), self.out_len(x.t), pool);
        out.fill_rows(|o| wts.b[o]);
        self.accumulate(x, elu, &mut out, pool);
        if let Some(norm) = &wts.norm {
            for y in out.data.chunks_exact_mut((out.c * out.t).max(1)) {
                group_norm(y, out.t, norm);
            }
        }
        out
    }

    /// Output length for an input of `len` samples.
    fn out_len(&self, len: usize) -> usize {
        let (left, right) = self.padding(len);
        let k_eff = (self.kernel - 1) * self.dilation + 1;
        (left + len + right)
            .checked_sub(k_eff)
            .map_or(0, |n| n / self.stride + 1)
    }

    /// `out += W ∗ pad(ELU(x) or x)`: the convolution without bias or norm, added to `out`.
    fn accumulate(&self, x: &Signal, elu: bool, out: &mut Signal, pool: &mut Pool) {
        let wts = self.host_weights();
        let (k, s, d) = (self.kernel, self.stride, self.dilation);
        let (cin, cout, tout) = (x.c, wts.b.len(), self.out_len(x.t));
        assert!(
            wts.w.len() == cout * cin * k && out.c == cout && out.t == tout && out.b == x.b,
            "conv weight [{cout}, {cin}, {k}] does not take [{}, {cin}, {}] to [{}, {}, {}]",
            x.b,
            x.t,
            out.b,
            out.c,
            out.t
        );
        let (left, right) = self.padding(x.t);
        let lpad = left + x.t + right;
        // A 1×1 conv of the input itself reads the input in place.
        let direct = left + right == 0 && !elu && k == 1 && s == 1;
        let mut p = pool.take(if direct { 0 } else { cin * lpad });
        // Few input channels (the first conv): one product over an explicit [cin·k, tout] matrix.
        let unfold = cin * k <= 16 && k > 1;
        let mut cols = pool.take(if unfold { cin * k * tout } else { 0 });
        for i in 0..x.b {
            let src = if direct {
                x.item(i)
            } else {
                x.item(i)
                    .par_chunks(x.t.max(1))
                    .zip(p.par_chunks_mut(lpad.max(1)))
                    .for_each(|(row, dst)| {
                        pad_row(row, left, right, kernel_pad(self.pad_mode), elu, dst)
                    });
                &p[..]
            };
            let y = &mut out.data[i * cout * tout..(i + 1) * cout * tout];
            if unfold {
                for (r, col) in cols.chunks_exact_mut(tout).enumerate() {
                    let (c, j) = (r / k, r % k);
                    let row = &src[c * lpad + j * d..];
                    col.iter_mut()
                        .enumerate()
                        .for_each(|(t, v)| *v = row[t * s]);
                }
                // SAFETY: W is [cout, cin·k], cols [cin·k, tout], y [cout, tout], all in bounds.
                unsafe {
                    gemm_acc(
                        [cout, tout, cin * k],
                        y.as_mut_ptr(),
                        [tout, 1],
                        wts.w.as_ptr(),
                        [cin * k, 1],
                        cols.as_ptr(),
                        [tout, 1],
                    );
                }
            } else {
                for j in 0..k {
                    // SAFETY: tap j of W [cout, cin, k] is W[o, c, j]; the input view src[c, j·d + t·s]
                    // ends at (cin − 1)·lpad + (k − 1)·d + (tout − 1)·s < cin·lpad = src.len(); y is
                    // [cout, tout] (checked above).
                    unsafe {
                        gemm_acc(
                            [cout, tout, cin],
                            y.as_mut_ptr(),
                            [tout, 1],
                            wts.w.as_ptr().add(j),
                            [cin * k, k],
                            src.as_ptr().add(j * d),
                            [lpad, s],
                        );
                    }
                }
            }
        }
        pool.give(p);
        pool.give(cols);
    }
}

impl EncodecConvTranspose1d {
    /// The conv's (and its GroupNorm's) parameters on the host, read on first use.
    fn host_weights(&self) -> &Weights {
        self.host.get(&self.conv, self.norm.as_ref())
    }

    /// [`EncodecConvTranspose1d::forward`] of `ELU(x)` on the host.
    pub(crate) fn host_forward_elu(&self, x: &Signal, pool: &mut Pool) -> Signal {
        let wts = self.host_weights();
        let (k, s) = (self.kernel, self.stride);
        let (cin, cout, tin) = (x.c, wts.b.len(), x.t);
        assert_eq!(
            wts.w.len(),
            cin * cout * k,
            "conv weight is not [{cin}, {cout}, {k}]"
        );
        let full = (tin.max(1) - 1) * s + k;
        let left = self.trim_left();
        let right = k.saturating_sub(s) - left;
        let kept = full - left - right;
        let mut out = Signal::uninit(x.b, cout, kept, pool);
        let mut p = pool.take(cin * tin);
        let mut y = pool.take(cout * full);
        for i in 0..x.b {
            x.item(i)
                .par_chunks(tin.max(1))
                .zip(p.par_chunks_mut(tin.max(1)))
                .for_each(|(src, dst)| elu_into(src, dst));
            for (row, &b) in y.chunks_exact_mut(full).zip(&wts.b) {
                row.fill(b);
            }
            for j in 0..k {
                // SAFETY: tap j of W [cin, cout, k] as [cout, cin] is W[c, o, j]; it lands on outputs
                // i·s + j of y [cout, full], the last at (tin − 1)·s + k − 1 < full.
                unsafe {
                    gemm_acc(
                        [cout, tin, cin],
                        y.as_mut_ptr().add(j),
                        [full, s],
                        wts.w.as_ptr().add(j),
                        [k, cout * k],
                        p.as_ptr(),
                        [tin, 1],
                    );
                }
            }
            if let Some(norm) = &wts.norm {
                group_norm(&mut y, full, norm);
            }
            let dst = &mut out.data[i * cout * kept..(i + 1) * cout * kept];
            for (d, row) in dst.chunks_exact_mut(kept).zip(y.chunks_exact(full)) {
                d.copy_from_slice(&row[left..left + kept]);
            }
        }
        pool.give(p);
        pool.give(y);
        out
    }
}

impl EncodecResnetBlock {
    /// [`EncodecResnetBlock::forward`] on the host.
    pub(crate) fn host_forward(&self, x: Signal, pool: &mut Pool) -> Signal {
        let [convs @ .., last] = &self.block[..] else {
            return x;
        };
        let mut h: Option<Signal> = None;
        for conv in convs {
            let next = conv.host_forward(h.as_ref().unwrap_or(&x), true, pool);
            if let Some(done) = h.replace(next) {
                pool.give(done.data);
            }
        }
        let h = h.unwrap_or_else(|| x.clone());
        let fused = last.norm.is_none() && self.shortcut.as_ref().is_none_or(|c| c.norm.is_none());
        let y = if fused {
            // skip + last(ELU(h)) as one sum: both convolutions accumulate into one buffer that
            // starts as their biases (and the input itself without a shortcut conv).
            let bias = &last.host_weights().b;
            let mut y = Signal::uninit(x.b, bias.len(), x.t, pool);
            match &self.shortcut {
                Some(conv) => {
                    let sb = &conv.host_weights().b;
                    y.fill_rows(|c| bias[c] + sb[c]);
                    conv.accumulate(&x, false, &mut y, pool);
                }
                None => {
                    y.data.copy_from_slice(&x.data);
                    add_rows(&mut y, bias);
                }
            }
            last.accumulate(&h, true, &mut y, pool);
            y
        } else {
            let mut y = last.host_forward(&h, true, pool);
            match &self.shortcut {
                Some(conv) => {
                    let skip = conv.host_forward(&x, false, pool);
                    add_in_place(&mut y.data, &skip.data);
                    pool.give(skip.data);
                }
                None => add_in_place(&mut y.data, &x.data),
            }
            y
        };
        pool.give(h.data);
        pool.give(x.data);
        y
    }
}

/// `bias[c]` added to every row of channel `c`.
fn add_rows(y: &mut Signal, bias: &[f32]) {
    let (c, t) = (y.c.max(1), y.t.max(1));
    for (r, row) in y.data.chunks_exact_mut(t).enumerate() {
        let b = bias[r % c];
        row.iter_mut().for_each(|v| *v += b);
    }
}

/// The kernels' name for a config's padding mode.
pub(super) fn kernel_pad(mode: crate::config::PadMode) -> PadMode {
    match mode {
        crate::config::PadMode::Reflect => PadMode::Reflect,
        crate::config::PadMode::Constant => PadMode::Constant,
        crate::config::PadMode::Replicate => PadMode::Replicate,
    }
}
