//! Latency and speed of the stream encoder and decoder, pushed as live audio would be (docs/streaming.md):
//!
//! ```sh
//! cargo run --release -p encodec-codec --example stream_latency -- MODEL_DIR [SECONDS] [STREAM_FRAMES]
//! ```
//!
//! The encoder gets one code frame's samples (the hop) per push, the decoder one code frame per push. For each
//! push it records the wall time of the call and how far the output lags the input: for the encoder, the input
//! samples pushed that no emitted code frame covers yet; for the decoder, the samples of the pushed frames not
//! handed out yet. It prints the lag (samples and ms, the most after the clip's first second, and at the
//! start), the per-push compute time (p50, p99, max) and the real-time factor (compute time / audio time), and
//! checks that the streamed codes and samples equal the whole pass's.

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use clvp_hub::Checkpoint;
use encodec_codec::{CodeEvent, CodesRef, DecodeStream, EncodeStream, EncodecError, EncodecModel};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn summary(label: &str, times: &mut [f64], audio_s: f64) {
    let total: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    println!(
        "| {label} | {:.2} | {:.2} | {:.2} | {:.3} |",
        percentile(times, 0.5) * 1e3,
        percentile(times, 0.99) * 1e3,
        times.last().copied().unwrap_or(f64::NAN) * 1e3,
        total / audio_s
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        return Err("usage: stream_latency MODEL_DIR [SECONDS] [STREAM_FRAMES]".into());
    };
    let seconds: f64 = args.get(1).map_or(Ok(20.0), |s| s.parse())?;
    let frames: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let device = Device::flex();
    let model = EncodecModel::from_checkpoint(&Checkpoint::local(dir)?, &device)?
        .with_stream_frames(frames);
    let config = &model.config;
    let (rate, channels, hop) = (
        config.sampling_rate,
        config.audio_channels,
        config.hop_length(),
    );
    let len = (seconds * rate as f64) as usize;
    let ms = |samples: usize| samples as f64 * 1e3 / rate as f64;
    // A chirp with a little noise.
    let mut seed = 7u64;
    let pcm: Vec<Vec<f32>> = (0..channels)
        .map(|c| {
            (0..len)
                .map(|i| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let t = i as f32 / rate as f32;
                    let noise = ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
                    0.4 * (std::f32::consts::TAU * (200.0 + 300.0 * t + 50.0 * c as f32) * t).sin()
                        + 0.1 * noise
                })
                .collect()
        })
        .collect();
    println!(
        "{dir}: {rate} Hz, {channels} channel(s), hop {hop}, chunk {:?}; {seconds} s; stream_frames {frames}; \
         {} threads\n",
        config.chunk_length(),
        rayon::current_num_threads()
    );

    // Encoder: one hop per push.
    let mut stream = EncodeStream::new(&model, None)?;
    let (emitted, mut pushed) = (std::cell::Cell::new(0usize), 0usize);
    let mut segments: Vec<(Vec<Vec<i64>>, Option<f32>)> = vec![(Vec::new(), None)];
    let (mut times, mut lag_after_1s, mut first_out) = (Vec::new(), 0usize, None);
    let mut sink = |event: CodeEvent<'_>| -> Result<(), EncodecError> {
        match event {
            CodeEvent::Frames { codes, frames } => {
                let rows = &mut segments.last_mut().expect("a segment").0;
                rows.resize(codes.len() / frames.max(1), Vec::new());
                for (row, piece) in rows.iter_mut().zip(codes.chunks_exact(frames)) {
                    row.extend_from_slice(piece);
                }
                emitted.set(emitted.get() + frames);
            }
            CodeEvent::EndSegment { scale } => {
                segments.last_mut().expect("a segment").1 = scale;
                segments.push((Vec::new(), None));
            }
        }
        Ok(())
    };
    while pushed < len {
        let end = (pushed + hop).min(len);
        let block: Vec<&[f32]> = pcm.iter().map(|c| &c[pushed..end]).collect();
        let start = Instant::now();
        stream.push(&block, &mut sink)?;
        times.push(start.elapsed().as_secs_f64());
        pushed = end;
        let covered = (emitted.get() * hop).min(pushed);
        if first_out.is_none() && emitted.get() > 0 {
            first_out = Some(pushed);
        }
        if pushed > rate {
            lag_after_1s = lag_after_1s.max(pushed - covered);
        }
    }
    let start = Instant::now();
    stream.finish(&mut sink)?;
    let finish_s = start.elapsed().as_secs_f64();
    segments.pop();
    println!("| direction | per push p50 (ms) | p99 (ms) | max (ms) | real-time factor |");
    println!("|---|---|---|---|---|");
    summary("encode (a hop per push)", &mut times, seconds);
    let enc_lag = lag_after_1s;
    let enc_first = first_out.unwrap_or(len);

    // The whole pass, for the check.
    let x = Tensor::<3>::from_data(TensorData::new(pcm.concat(), [1, channels, len]), &device);
    let whole = model.encode_segments(x, None, None)?;
    let same_codes = whole.len() == segments.len()
        && whole.iter().zip(&segments).all(|(w, (rows, scale))| {
            let codes = w
                .codes
                .clone()
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap_or_default();
            codes == rows.concat()
                && w.scale
                    .clone()
                    .map(|s| s.into_data().try_to_vec::<f32>().unwrap_or_default()[0])
                    == *scale
        });

    // Decoder: one code frame per push.
    let k = segments.first().map_or(0, |s| s.0.len());
    let mut decoder = DecodeStream::new(&model, k, Some(len))?;
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); channels];
    let mut audio_sink = |block: &[f32], n: usize| -> Result<(), EncodecError> {
        for (c, o) in out.iter_mut().enumerate() {
            o.extend_from_slice(&block[c * n..(c + 1) * n]);
        }
        Ok(())
    };
    let (mut times, mut held_after_1s, mut frames_in, mut first_out) =
        (Vec::new(), 0usize, 0, None);
    // Where a segment starts in the audio: chunked models' chunks every `stride` samples.
    let stride = config.chunk_stride().unwrap_or(len);
    for (i, (rows, scale)) in segments.iter().enumerate() {
        let t = rows.first().map_or(0, Vec::len);
        for f in 0..t {
            let frame: Vec<i64> = rows.iter().map(|r| r[f]).collect();
            let start = Instant::now();
            decoder.push(CodesRef::I64(&frame), 1, &mut audio_sink)?;
            if f + 1 == t {
                // A segment's end is pushed with its last frame (the chunked models decode it then).
                decoder.end_segment(*scale, &mut audio_sink)?;
            }
            times.push(start.elapsed().as_secs_f64());
            frames_in += 1;
            let given = decoder.handed_out();
            if first_out.is_none() && given > 0 {
                first_out = Some(frames_in);
            }
            let pos = (i * stride + (f + 1) * hop).min(len);
            if pos > rate {
                held_after_1s = held_after_1s.max(pos.saturating_sub(given));
            }
        }
    }
    let start = Instant::now();
    decoder.finish(&mut audio_sink)?;
    let dec_finish_s = start.elapsed().as_secs_f64();
    summary("decode (a frame per push)", &mut times, seconds);
    let whole_audio = model
        .decode_segments(whole, Some(len))?
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let same_audio = whole_audio == out.concat();
    println!();
    println!(
        "encoder: the first code frame after {enc_first} samples ({:.1} ms); after the first second the codes lag \
         the input by at most {enc_lag} samples ({:.1} ms); finish {:.1} ms",
        ms(enc_first),
        ms(enc_lag),
        finish_s * 1e3
    );
    println!(
        "decoder: the first samples after {} frame(s); after the first second at most {held_after_1s} samples \
         ({:.1} ms) of the pushed frames are held back; finish {:.1} ms",
        first_out.unwrap_or(0),
        ms(held_after_1s),
        dec_finish_s * 1e3
    );
    println!("codes equal to the whole pass: {same_codes}; audio equal: {same_audio}");
    if !same_codes || !same_audio {
        return Err("the stream differs from the whole pass".into());
    }
    Ok(())
}
