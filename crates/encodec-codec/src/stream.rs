//! Exact streaming of a SEANet network over an input of any length in bounded memory (what lets the unchunked
//! `encodec_24khz` and `encodec_32khz` code an hour of audio; transformers runs them in one pass).
//!
//! Each network is a convolution stack with a finite receptive field (the *head*), an LSTM, and another
//! convolution stack (the *tail*). The head and the tail run on overlapping tiles whose margins cover every
//! output's dependencies, reflections at the true edges included ([`crate::conv::EncodecConv1d::span`]), so
//! every output kept from a tile is the one the whole pass computes; the LSTM carries its state from tile to
//! tile. The result equals the whole pass up to the summation order inside the convolutions. GroupNorm
//! (`time_group_norm`) takes statistics over the whole input and cannot be tiled: those networks run whole,
//! which is what the chunked `encodec_48khz` does anyway (1 s chunks).

use burn::tensor::Tensor;

use crate::lstm::{EncodecLstm, LstmState};

/// Input samples per head tile the models aim at (2^18: 11 s at 24 kHz; with the 32 channels of the first
/// layer, about 32 MiB per activation).
pub const TILE_SAMPLES: usize = 1 << 18;

/// A convolution stack seen from the tiler.
pub(crate) struct Stack<'a> {
    /// Inputs `[lo, hi)` that outputs `[a, b)` depend on (may reach past the edges).
    pub span: &'a dyn Fn(i64, i64) -> (i64, i64),
    /// Inputs per output when the stack downsamples (tile starts are multiples of it), else 1.
    pub down: usize,
    /// Outputs per input when the stack upsamples, else 1.
    pub up: usize,
    /// The whole stack on one tile.
    pub forward: &'a dyn Fn(Tensor<3>) -> Tensor<3>,
}

impl Stack<'_> {
    /// The first input of the tile computing outputs from `a` on.
    fn tile_start(&self, a: usize) -> usize {
        let lo = (self.span)(a as i64, a as i64 + 1).0.max(0) as usize;
        lo / self.down * self.down
    }

    /// Outputs `[a, b)` over an input of `len` read through `input(lo, hi)`.
    fn tile(
        &self,
        input: &mut dyn FnMut(usize, usize) -> Tensor<3>,
        len: usize,
        a: usize,
        b: usize,
    ) -> Tensor<3> {
        let lo = self.tile_start(a);
        let hi = ((self.span)(a as i64, b as i64).1.max(0) as usize).min(len);
        let y = (self.forward)(input(lo, hi));
        let offset = lo / self.down * self.up;
        let [n, c, _] = y.dims();
        y.slice([0..n, 0..c, a - offset..b - offset])
    }

    /// The end of the longest run of outputs from `from` whose inputs all lie before `available`.
    fn ready(&self, from: usize, limit: usize, available: usize) -> usize {
        let fits = |e: usize| e == from || (self.span)(from as i64, e as i64).1 <= available as i64;
        let (mut ok, mut bad) = (from, limit + 1);
        while bad - ok > 1 {
            let mid = ok + (bad - ok) / 2;
            if fits(mid) {
                ok = mid;
            } else {
                bad = mid;
            }
        }
        ok
    }
}

/// The lengths along the way: network input, head output (= LSTM length), tail output.
pub(crate) struct Lengths {
    pub input: usize,
    pub mid: usize,
    pub output: usize,
}

/// Run head → LSTM → tail over the input (read through `input(lo, hi)`), `block` head frames at a time;
/// `emit` receives consecutive pieces of the tail's output, in order, covering `[0, lengths.output)`.
pub(crate) fn run<E>(
    head: &Stack,
    lstm: &EncodecLstm,
    tail: &Stack,
    input: &mut dyn FnMut(usize, usize) -> Tensor<3>,
    lengths: Lengths,
    block: usize,
    emit: &mut dyn FnMut(Tensor<3>) -> Result<(), E>,
) -> Result<(), E> {
    let block = block.max(1);
    let mut state: Option<LstmState> = None;
    // The LSTM's outputs from `kept` to `done`, as far back as the next tail tile reads.
    let mut kept = 0;
    let mut buffer: Option<Tensor<3>> = None;
    let (mut done, mut emitted) = (0, 0);
    while done < lengths.mid {
        let end = (done + block).min(lengths.mid);
        let x = head.tile(input, lengths.input, done, end);
        let (y, next) = lstm.forward_with_state(x, state.take());
        state = Some(next);
        let buf = match buffer.take() {
            Some(prev) => Tensor::cat(vec![prev, y], 2),
            None => y,
        };
        done = end;
        let ready = if done == lengths.mid {
            lengths.output
        } else {
            tail.ready(emitted, lengths.output, done)
        };
        if ready > emitted {
            let mut read = |lo: usize, hi: usize| {
                let [n, c, _] = buf.dims();
                buf.clone().slice([0..n, 0..c, lo - kept..hi - kept])
            };
            emit(tail.tile(&mut read, lengths.mid, emitted, ready))?;
            emitted = ready;
        }
        let keep_from = if emitted < lengths.output {
            tail.tile_start(emitted).min(done)
        } else {
            done
        };
        buffer = Some(if keep_from > kept {
            let [n, c, t] = buf.dims();
            let rest = buf.slice([0..n, 0..c, keep_from - kept..t]);
            kept = keep_from;
            rest
        } else {
            buf
        });
    }
    Ok(())
}
