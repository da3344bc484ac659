//! Whole-clip band-limited resampling with rubato (stands in for `torchaudio.functional.resample` /
//! `librosa.resample`; bit parity with those is not a goal, a documented accuracy is).
//!
//! # Settings
//!
//! The resampler is rubato's synchronous [`rubato::Fft`]: a windowed-sinc low-pass filter applied by
//! FFT convolution at the exact rational ratio `L/M = target/source` (reduced by their gcd).
//!
//! * **sinc length**: the FFT blocks are `fft_size_in = k · M` input and `fft_size_out = k · L` output
//!   frames, with `k` the smallest **even** number that makes the shorter block at least
//!   [`MIN_SINC_LEN`] = 2048 frames; the sinc spans `fft_size_in` input frames (e.g. 4096 for
//!   44.1 → 22.05 kHz, 2560 for 16 → 22.05 kHz, 2240 for 8 → 22.05 kHz, 2058 for 22.05 → 24 kHz);
//! * **window**: [`WindowFunction::BlackmanHarris2`] (squared Blackman-Harris);
//! * **cutoff**: rubato's `calculate_cutoff` for the shorter block and the window (the highest cutoff
//!   that keeps aliasing under the window's side lobes): about 0.993 of the lower Nyquist frequency;
//! * **oversampling / interpolation**: none needed: the ratio is exact, so every output sample is a
//!   direct dot product with the filter (no interpolation between tabulated sinc points);
//! * **precision**: computed in `f64`, stored as `f32`.
//!
//! # Delay
//!
//! The filter is centred at `fft_size_in / 2` input frames, i.e. `fft_size_out / 2` output frames;
//! [`Resampler::process_all_into_buffer`] trims exactly `fft_size_out / 2` frames. Because `k` is even,
//! both FFT sizes are even, so that trim is the exact group delay: output frame `j` is the input
//! signal evaluated at time `j / target_rate` (no fractional offset). The output is then cut to
//! `round(frames · target / source)` frames (halves round up).
//!
//! Why not rubato's asynchronous `Async::new_sinc`: with its `process_all` the output lands a
//! fraction of a sample off the ideal grid (it trims `floor(sinc_len · ratio / 2)` frames, and the
//! cubic sinc-table interpolation adds a further `1/oversampling` input-sample shift, as read from
//! rubato 5.0.1's source). An offset of `d` samples costs up to `2π·f/rate·d` of a unit sine's
//! amplitude: 0.23 for a 4 kHz tone at 22.05 kHz with `d = 0.2`.
//!
//! # Accuracy
//!
//! Against an analytic band-limited reference (five sines up to 0.9 of the lower Nyquist frequency,
//! amplitudes summing to 0.95, evaluated at the new rate) the interior error is at the `f32` rounding
//! level: at most 6.4e-8 over 10 rate pairs (8 kHz to 192 kHz, including 22050 → 44101). The test
//! asserts [`ACCURACY_BOUND`] = 1e-6; rerun and print with
//! `cargo test -p clvp-audio --test resample -- --nocapture`.

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

use crate::error::{AudioError, try_with_capacity};

/// The shortest anti-aliasing sinc, in input frames.
pub const MIN_SINC_LEN: usize = 2048;

/// The largest FFT block (input or output frames) the resampler may use. Rates far apart with a small gcd need
/// huge blocks (1 Hz → 22050 Hz: 45 million output frames per block, minutes of work and gigabytes; a rate
/// near `u32::MAX` → 22050 Hz: 4 billion input frames, an aborted allocation): such pairs are refused. Every
/// pair of rates from 100 Hz to 192 kHz stays far below it (1000 → 22050 Hz: 45 864 frames).
pub const MAX_FFT_BLOCK: usize = 1 << 22;

/// The documented accuracy bound (max abs error in the interior, full-scale sine mix up to 0.9 ×
/// the lower Nyquist frequency) asserted by the resampling test.
pub const ACCURACY_BOUND: f64 = 1e-6;

/// The number of output frames for `frames` input frames: `round(frames · to / from)`, halves up.
pub fn resampled_len(frames: usize, from: u32, to: u32) -> usize {
    let (n, from, to) = (frames as u128, u128::from(from), u128::from(to));
    if from == 0 {
        return 0;
    }
    ((2 * n * to + from) / (2 * from)) as usize
}

/// The sinc length (input FFT block, in input frames) used for `from` → `to` Hz: `k · from/gcd` with
/// `k` the smallest even number making both FFT blocks at least [`MIN_SINC_LEN`] frames.
pub fn sinc_len(from: u32, to: u32) -> usize {
    let (from, to) = (from.max(1) as usize, to.max(1) as usize);
    let g = gcd(from, to);
    let (min_block_in, min_block_out) = (from / g, to / g);
    let blocks = MIN_SINC_LEN
        .div_ceil(min_block_in)
        .max(MIN_SINC_LEN.div_ceil(min_block_out))
        .div_ceil(2)
        * 2;
    blocks * min_block_in
}

/// rubato's resampler for `from` → `to` Hz over `nch` channels, with the settings above; rates that are not
/// positive or too far apart are an error.
fn make_resampler(from: u32, to: u32, nch: usize) -> Result<Fft<f64>, AudioError> {
    let fail = |reason: String| AudioError::Resample { from, to, reason };
    if from == 0 || to == 0 {
        return Err(fail("sample rates must be positive".into()));
    }
    let (from_us, to_us) = (from as usize, to as usize);
    let g = gcd(from_us, to_us);
    let block_in = sinc_len(from, to);
    let block_out = (block_in / (from_us / g)).saturating_mul(to_us / g);
    let block = block_in.max(block_out);
    if block > MAX_FFT_BLOCK {
        return Err(fail(format!(
            "the rates are too far apart for the resampler (FFT blocks of {block} frames, at most {MAX_FFT_BLOCK}); \
             convert the file to a common rate (8 kHz to 192 kHz) first"
        )));
    }
    let resampler = Fft::<f64>::new_custom(
        from_us,
        to_us,
        block_in,
        1,
        nch,
        WindowFunction::BlackmanHarris2,
        FixedSync::Both,
    )
    .map_err(|e| fail(e.to_string()))?;
    tracing::debug!(
        from,
        to,
        sinc_len = resampler.fft_size_in(),
        cutoff = resampler.cutoff(),
        "resampling"
    );
    Ok(resampler)
}

/// Resample planar channels (all of the same length) from `from` Hz to `to` Hz.
///
/// The whole clip is held three times (the `f64` input, the `f64` output and the result); a long input is
/// better streamed through [`StreamResampler`], which gives the same samples.
pub fn resample_planar(
    channels: &[Vec<f32>],
    from: u32,
    to: u32,
) -> Result<Vec<Vec<f32>>, AudioError> {
    let fail = |reason: String| AudioError::Resample { from, to, reason };
    if from == 0 || to == 0 {
        return Err(fail("sample rates must be positive".into()));
    }
    let frames = channels.first().map_or(0, Vec::len);
    if channels.is_empty() || frames == 0 {
        return Err(fail("the audio is empty".into()));
    }
    if channels.iter().any(|c| c.len() != frames) {
        return Err(fail("the channels have different lengths".into()));
    }
    if from == to {
        return Ok(channels.to_vec());
    }
    let out_len = resampled_len(frames, from, to);
    if out_len == 0 {
        return Err(fail(format!(
            "a clip of {frames} frames is shorter than one output sample"
        )));
    }
    let nch = channels.len();
    let mut resampler = make_resampler(from, to, nch)?;
    let mut input = Vec::with_capacity(nch);
    for c in channels {
        let mut v = try_with_capacity(c.len(), "resampling", "the resampler's input")?;
        v.extend(c.iter().map(|&x| f64::from(x)));
        input.push(v);
    }
    let input = SequentialSliceOfVecs::new(&input, nch, frames).map_err(|e| fail(e.to_string()))?;
    let needed = resampler.process_all_needed_output_len(frames);
    let mut output = Vec::with_capacity(nch);
    for _ in 0..nch {
        let mut v = try_with_capacity(needed, "resampling", "the resampler's output")?;
        v.resize(needed, 0.0f64);
        output.push(v);
    }
    let mut output_adapter = SequentialSliceOfVecs::new_mut(&mut output, nch, needed)
        .map_err(|e| fail(e.to_string()))?;
    let (_, produced) = resampler
        .process_all_into_buffer(&input, &mut output_adapter, frames, None)
        .map_err(|e| fail(e.to_string()))?;
    if produced < out_len {
        return Err(fail(format!(
            "the resampler produced {produced} frames, expected {out_len}"
        )));
    }
    let mut result = Vec::with_capacity(nch);
    for c in output {
        let mut v = try_with_capacity(out_len, "resampling", "the resampled audio")?;
        v.extend(c[..out_len].iter().map(|&x| x as f32));
        result.push(v);
    }
    Ok(result)
}

/// [`resample_planar`] block by block: push planar blocks of any size as they are decoded, then
/// [`StreamResampler::finish`]; the output is the same samples, bit for bit, in memory of a few FFT blocks.
///
/// rubato's `process_all_into_buffer` runs fixed chunks of `fft_size_in` frames through one stateful resampler
/// (the last, partial one zero-padded, then zero chunks until the output is long enough) and drops the first
/// `fft_size_out / 2` frames; this runs the same chunks through the same calls as the input arrives, and drops
/// and cuts the same frames.
pub struct StreamResampler {
    from: u32,
    to: u32,
    /// `None` when the rates are equal (the samples pass through).
    inner: Option<Fft<f64>>,
    /// Input frames not yet resampled, `[channel][frame]`.
    pending: Vec<Vec<f64>>,
    /// One chunk's output.
    chunk: Vec<Vec<f64>>,
    /// Output frames still to drop (the filter's delay).
    delay: usize,
    frames_in: u64,
    frames_out: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("frames_in", &self.frames_in)
            .field("frames_out", &self.frames_out)
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// A resampler from `from` Hz to `to` Hz for `channels` channels (errors as [`resample_planar`]'s).
    pub fn new(from: u32, to: u32, channels: usize) -> Result<Self, AudioError> {
        let fail = |reason: String| AudioError::Resample { from, to, reason };
        if channels == 0 {
            return Err(fail("the audio has no channels".into()));
        }
        let inner = if from == to {
            if from == 0 {
                return Err(fail("sample rates must be positive".into()));
            }
            None
        } else {
            Some(make_resampler(from, to, channels)?)
        };
        let (delay, out) = inner
            .as_ref()
            .map_or((0, 0), |r| (r.output_delay(), r.output_frames_next()));
        Ok(StreamResampler {
            from,
            to,
            inner,
            pending: vec![Vec::new(); channels],
            chunk: vec![vec![0.0; out]; channels],
            delay,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Resample one block (`[channel][frame]`, every channel the same length) and append the output frames
    /// that are final to `out` (one vector per channel).
    pub fn push<S: AsRef<[f32]>>(
        &mut self,
        block: &[S],
        out: &mut [Vec<f32>],
    ) -> Result<(), AudioError> {
        let frames = block.first().map_or(0, |c| c.as_ref().len());
        if block.len() != self.pending.len() || out.len() != self.pending.len() {
            return Err(self.fail(format!(
                "a block of {} channels (output {}) for a resampler of {}",
                block.len(),
                out.len(),
                self.pending.len()
            )));
        }
        if block.iter().any(|c| c.as_ref().len() != frames) {
            return Err(self.fail("the channels have different lengths".into()));
        }
        self.frames_in += frames as u64;
        let Some(resampler) = &self.inner else {
            for (o, c) in out.iter_mut().zip(block) {
                o.extend_from_slice(c.as_ref());
            }
            self.frames_out += frames as u64;
            return Ok(());
        };
        let chunk_in = resampler.input_frames_next();
        for (p, c) in self.pending.iter_mut().zip(block) {
            p.extend(c.as_ref().iter().map(|&x| f64::from(x)));
        }
        // A chunk is resampled only when more input follows it, as `process_all_into_buffer` does: the last
        // chunk, full or not, goes through its partial path in `finish`.
        let mut at = 0;
        while self.pending[0].len() - at > chunk_in {
            self.run_chunk(at, None, out, u64::MAX)?;
            at += chunk_in;
        }
        for p in &mut self.pending {
            p.drain(..at);
        }
        Ok(())
    }

    /// Flush the input's end (the zero-padded last chunk, then zero chunks until enough output) into `out`,
    /// cut to `round(frames · to / from)` frames in all. Errors for input shorter than one output sample.
    pub fn finish(mut self, out: &mut [Vec<f32>]) -> Result<(), AudioError> {
        if out.len() != self.pending.len() {
            return Err(self.fail(format!(
                "an output of {} channels for a resampler of {}",
                out.len(),
                self.pending.len()
            )));
        }
        let frames = self.frames_in;
        if frames == 0 {
            return Err(self.fail("the audio is empty".into()));
        }
        let total = usize::try_from(frames)
            .map(|n| resampled_len(n, self.from, self.to) as u64)
            .unwrap_or(u64::MAX);
        if total == 0 {
            return Err(self.fail(format!(
                "a clip of {frames} frames is shorter than one output sample"
            )));
        }
        if self.inner.is_none() {
            return Ok(());
        }
        let rest = self.pending[0].len();
        if rest > 0 {
            self.run_chunk(0, Some(rest), out, total)?;
        }
        while self.frames_out < total {
            self.run_chunk(0, Some(0), out, total)?;
        }
        Ok(())
    }

    /// Frames pushed so far.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Frames handed out so far.
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    fn fail(&self, reason: String) -> AudioError {
        AudioError::Resample {
            from: self.from,
            to: self.to,
            reason,
        }
    }

    /// One chunk from `pending[at..]` (`partial`: how many frames are real), appended to `out` after the delay
    /// is dropped, up to `limit` frames handed out in all.
    fn run_chunk(
        &mut self,
        at: usize,
        partial: Option<usize>,
        out: &mut [Vec<f32>],
        limit: u64,
    ) -> Result<(), AudioError> {
        let (from, to) = (self.from, self.to);
        let fail = |reason: String| AudioError::Resample { from, to, reason };
        let Some(resampler) = &mut self.inner else {
            return Ok(());
        };
        let nch = self.pending.len();
        let len = self.pending[0].len();
        let chunk_out = resampler.output_frames_next();
        let input =
            SequentialSliceOfVecs::new(&self.pending, nch, len).map_err(|e| fail(e.to_string()))?;
        let mut output = SequentialSliceOfVecs::new_mut(&mut self.chunk, nch, chunk_out)
            .map_err(|e| fail(e.to_string()))?;
        let indexing = Indexing {
            input_offset: at,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let (_, produced) = resampler
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| fail(e.to_string()))?;
        let skip = self.delay.min(produced);
        self.delay -= skip;
        let keep = ((produced - skip) as u64).min(limit.saturating_sub(self.frames_out)) as usize;
        for (o, c) in out.iter_mut().zip(&self.chunk) {
            o.extend(c[skip..skip + keep].iter().map(|&x| x as f32));
        }
        self.frames_out += keep as u64;
        Ok(())
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_half_up() {
        assert_eq!(resampled_len(44100, 44100, 22050), 22050);
        assert_eq!(resampled_len(3, 44100, 22050), 2);
        assert_eq!(resampled_len(1, 44100, 8000), 0);
        assert_eq!(resampled_len(93680, 16000, 24000), 140520);
        assert_eq!(resampled_len(93680, 16000, 48000), 281040);
    }

    #[test]
    fn rates_too_far_apart_are_an_error_not_a_hang() {
        // 1 Hz → 22050 Hz took 74 s and 3.5 GB for 100 samples (2000 samples: over 2 minutes); a rate near
        // u32::MAX asked for a 4-billion-frame FFT block and aborted.
        for (from, to, frames) in [
            (1, 22050, 100),
            (8, 22050, 100),
            (u32::MAX / 2, 22050, 200_000),
        ] {
            let err = resample_planar(&[vec![0.1; frames]], from, to)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("from {from} Hz to {to} Hz"))
                    && err.contains("too far apart"),
                "{err}"
            );
        }
        // The widest pairs in use still work.
        for (from, to) in [
            (100, 22050),
            (1000, 22050),
            (192_000, 22050),
            (22050, 44101),
        ] {
            let out =
                resample_planar(&[vec![0.1; 300]], from, to).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out[0].len(), resampled_len(300, from, to));
        }
    }

    #[test]
    fn too_short_is_an_error() {
        let err = resample_planar(&[vec![0.5]], 44100, 8000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shorter than one output sample"), "{err}");
    }
}
