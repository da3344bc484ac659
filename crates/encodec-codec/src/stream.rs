//! Exact streaming of a SEANet network over an input of any length in bounded memory (what lets the unchunked
//! `encodec_24khz` and `encodec_32khz` code an hour of audio; transformers runs them in one pass).
//!
//! Each network is a convolution stack with a finite receptive field (the *head*), an LSTM, and another
//! convolution stack (the *tail*). The head and the tail run on overlapping tiles whose margins cover every
//! output's dependencies, reflections at the true edges included ([`crate::conv::EncodecConv1d::span`]), so
//! every output kept from a tile is the one the whole pass computes; the LSTM carries its state from tile to
//! tile. On the host kernels the result is the whole pass's bit for bit, whatever the tile length: every output
//! is summed in the same order in a tile as in the whole input (docs/streaming.md says what that takes). GroupNorm
//! (`time_group_norm`) takes statistics over the whole input and cannot be tiled: those networks run whole,
//! which is what the chunked `encodec_48khz` does anyway (1 s chunks).

use burn::tensor::Tensor;

use crate::lstm::{EncodecLstm, LstmState};

/// Input samples per head tile the models aim at (2^16: 2.7 s at 24 kHz; with the 32 channels of the first
/// layer, 8 MiB per activation). Any tile length gives the same bits (docs/streaming.md); this one is as fast as
/// longer ones or faster (the activations stay nearer the caches) and keeps a 24 kHz encode near 300 MiB where
/// 2^18 took 470 to 580 (docs/memory.md).
pub const TILE_SAMPLES: usize = 1 << 16;

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
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lengths {
    pub input: usize,
    pub mid: usize,
    pub output: usize,
}

/// How much of the input the tiler may read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Extent {
    /// All of it: its lengths are known.
    Whole(Lengths),
    /// The first `available` input samples; more will come (a stream being encoded). Only blocks that lie
    /// wholly inside them, away from the unknown end, are run: the same blocks, read from the same inputs, as
    /// with the whole input.
    Open { available: usize },
}

/// Head → LSTM → tail over an input, resumable: [`Tiler::advance`] runs every block the input read so far
/// allows, and a later call continues where it stopped (the LSTM's state and the LSTM outputs the next tail
/// tile reads are kept in between).
#[derive(Default)]
pub(crate) struct Tiler {
    state: Option<LstmState>,
    /// The LSTM's outputs from `kept` to `done`, as far back as the next tail tile reads.
    buffer: Option<Tensor<3>>,
    kept: usize,
    /// Head frames (LSTM steps) done.
    done: usize,
    /// Tail outputs emitted.
    emitted: usize,
}

impl Tiler {
    /// Whether a block has run.
    pub fn started(&self) -> bool {
        self.done > 0
    }

    /// The first input sample a later [`Tiler::advance`] may read: everything before it can be dropped.
    pub fn input_from(&self, head: &Stack) -> usize {
        head.tile_start(self.done)
    }

    /// Run blocks of `block` head frames while `extent` allows; `emit` receives consecutive pieces of the
    /// tail's output, in order (all of `[0, lengths.output)` once the extent is whole and this returns).
    #[allow(clippy::too_many_arguments)]
    pub fn advance<E>(
        &mut self,
        head: &Stack,
        lstm: &EncodecLstm,
        tail: &Stack,
        input: &mut dyn FnMut(usize, usize) -> Tensor<3>,
        extent: Extent,
        block: usize,
        emit: &mut dyn FnMut(Tensor<3>) -> Result<(), E>,
    ) -> Result<(), E> {
        let block = block.max(1);
        loop {
            let (end, len) = match extent {
                Extent::Whole(l) if self.done < l.mid => ((self.done + block).min(l.mid), l.input),
                Extent::Whole(_) => break,
                Extent::Open { available } => {
                    let end = self.done + block;
                    // The tile's inputs must all be in, the block's own samples included. A block that ends
                    // exactly where the input so far ends is run: its tile reads no padding there (a causal
                    // convolution pads the right only up to a multiple of its stride, which the block's end
                    // is; a non-causal one reads past it, so `needs` waits for those samples).
                    let needs = (head.span)(self.done as i64, end as i64).1;
                    if needs > available as i64 || end * head.down > available {
                        break;
                    }
                    (end, available)
                }
            };
            let x = head.tile(input, len, self.done, end);
            let (y, next) = lstm.forward_with_state(x, self.state.take());
            self.state = Some(next);
            let buf = match self.buffer.take() {
                Some(prev) => Tensor::cat(vec![prev, y], 2),
                None => y,
            };
            self.done = end;
            // With the input open, the tail's length is unknown but larger than `done · up` outputs, more than
            // any tile on `done` LSTM frames can reach: the same outputs are ready as with the length known.
            let (ready, output) = match extent {
                Extent::Whole(l) if self.done == l.mid => (l.output, l.output),
                Extent::Whole(l) => (tail.ready(self.emitted, l.output, self.done), l.output),
                Extent::Open { .. } => {
                    let limit = self.done * tail.up;
                    (tail.ready(self.emitted, limit, self.done), usize::MAX)
                }
            };
            if ready > self.emitted {
                let kept = self.kept;
                let mut read = |lo: usize, hi: usize| {
                    let [n, c, _] = buf.dims();
                    buf.clone().slice([0..n, 0..c, lo - kept..hi - kept])
                };
                emit(tail.tile(&mut read, self.done, self.emitted, ready))?;
                self.emitted = ready;
            }
            let keep_from = if self.emitted < output {
                tail.tile_start(self.emitted).min(self.done)
            } else {
                self.done
            };
            self.buffer = Some(if keep_from > self.kept {
                let [n, c, t] = buf.dims();
                let rest = buf.slice([0..n, 0..c, keep_from - self.kept..t]);
                self.kept = keep_from;
                rest
            } else {
                buf
            });
        }
        Ok(())
    }
}

/// Run head → LSTM → tail over the whole input (read through `input(lo, hi)`), `block` head frames at a time;
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
    Tiler::default().advance(head, lstm, tail, input, Extent::Whole(lengths), block, emit)
}
