//! A clip encoded as a stream ([`EncodeStream`], PCM pushed in blocks of any size) has the codes and scales of
//! the whole pass ([`EncodecModel::encode_segments`]), and [`EncodecModel::decode_stream`] hands out the samples
//! of [`EncodecModel::decode_segments`], bit for bit: on the unchunked 24 kHz (causal) and 32 kHz (non-causal)
//! fixtures over many tiles (small `with_stream_frames`), and on the chunked stereo 48 kHz one over many chunks
//! and more than one batch of chunks. The push decoder ([`DecodeStream`]) fed pieces of random sizes, from one
//! code frame to whole segments, hands out the same samples, and hands them out before the end. The whole pass itself is checked against transformers by `parity.rs`.

use burn::tensor::{Device, Tensor, TensorData};
use clvp_hub::Checkpoint;
use clvp_parity::fixture_path;
use encodec_codec::{
    CodeEvent, CodesRef, DecodeStream, EncodeStream, EncodecError, EncodecModel, EncodedSegment,
    SegmentRef,
};

fn load(name: &str) -> EncodecModel {
    let ckpt = Checkpoint::local(fixture_path(&format!("encodec/{name}")))
        .unwrap_or_else(|e| panic!("{e}"));
    EncodecModel::from_checkpoint(&ckpt, &Device::flex()).unwrap_or_else(|e| panic!("{e}"))
}

/// A chirp plus pseudo-random noise per channel, planar.
fn clip(channels: usize, len: usize, rate: usize) -> Vec<Vec<f32>> {
    (0..channels)
        .map(|c| {
            let mut s = 17 + c as u64;
            (0..len)
                .map(|i| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let noise = ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
                    let t = i as f32 / rate as f32;
                    0.4 * (std::f32::consts::TAU * (150.0 + 900.0 * t + 70.0 * c as f32) * t).sin()
                        + 0.15 * noise
                })
                .collect()
        })
        .collect()
}

/// A segment on the host: codes `[n_q][T]`, frames, scale.
type Host = (Vec<i64>, usize, Option<f32>);

fn whole(model: &EncodecModel, pcm: &[Vec<f32>], bandwidth: Option<f64>) -> Vec<Host> {
    let (c, len) = (pcm.len(), pcm[0].len());
    let x = Tensor::<3>::from_data(TensorData::new(pcm.concat(), [1, c, len]), &Device::flex());
    let segments = model
        .encode_segments(x, None, bandwidth)
        .unwrap_or_else(|e| panic!("{e}"));
    segments
        .into_iter()
        .map(|s| {
            let t = s.codes.dims()[2];
            let codes = s.codes.into_data().convert::<i64>().try_to_vec::<i64>();
            let scale = s
                .scale
                .map(|v| v.into_data().try_to_vec::<f32>().unwrap_or_default()[0]);
            (codes.unwrap_or_default(), t, scale)
        })
        .collect()
}

/// The segments, and how many code frames came out before `finish`.
fn streamed(
    model: &EncodecModel,
    pcm: &[Vec<f32>],
    bandwidth: Option<f64>,
    block: usize,
) -> (Vec<Host>, usize) {
    let mut stream = EncodeStream::new(model, bandwidth).unwrap_or_else(|e| panic!("{e}"));
    let mut segments: Vec<Host> = Vec::new();
    let mut current: Vec<Vec<i64>> = Vec::new();
    let emitted = std::cell::Cell::new(0);
    let mut sink = |event: CodeEvent<'_>| -> Result<(), EncodecError> {
        match event {
            CodeEvent::Frames { codes, frames } => {
                emitted.set(emitted.get() + frames);
                current.resize(codes.len() / frames.max(1), Vec::new());
                for (row, piece) in current.iter_mut().zip(codes.chunks_exact(frames)) {
                    row.extend_from_slice(piece);
                }
            }
            CodeEvent::EndSegment { scale } => {
                let t = current.first().map_or(0, Vec::len);
                segments.push((std::mem::take(&mut current).concat(), t, scale));
            }
        }
        Ok(())
    };
    let len = pcm[0].len();
    let mut at = 0;
    while at < len {
        let end = (at + block).min(len);
        let piece: Vec<&[f32]> = pcm.iter().map(|c| &c[at..end]).collect();
        stream
            .push(&piece, &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
        at = end;
    }
    let early = emitted.get();
    let summary = stream.finish(&mut sink).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.audio_length, len);
    assert_eq!(summary.segments, segments.len());
    (segments, early)
}

fn decode_whole(model: &EncodecModel, segments: &[Host], n_q: usize, len: usize) -> Vec<f32> {
    let device = Device::flex();
    let segs = segments
        .iter()
        .map(|(codes, t, scale)| EncodedSegment {
            codes: Tensor::from_data(TensorData::new(codes.clone(), [1, n_q, *t]), &device),
            scale: scale.map(|s| Tensor::from_data(TensorData::new(vec![s], [1]), &device)),
        })
        .collect();
    let out = model
        .decode_segments(segs, Some(len))
        .unwrap_or_else(|e| panic!("{e}"));
    out.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// The streamed decode, planar `[C][L]` like the whole pass's tensor.
fn decode_streamed(model: &EncodecModel, segments: &[Host], n_q: usize, len: usize) -> Vec<f32> {
    let c = model.config.audio_channels;
    let refs: Vec<SegmentRef> = segments
        .iter()
        .map(|(codes, t, scale)| SegmentRef {
            codes: CodesRef::I64(codes),
            frames: *t,
            scale: *scale,
        })
        .collect();
    let mut channels = vec![Vec::new(); c];
    let mut blocks = 0;
    let mut sink = |block: &[f32], n: usize| -> Result<(), EncodecError> {
        for (dst, src) in channels.iter_mut().zip(block.chunks_exact(n)) {
            dst.extend_from_slice(src);
        }
        blocks += 1;
        Ok(())
    };
    let n = model
        .decode_stream(&refs, n_q, len, &mut sink)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, model.decoded_length(&refs, len));
    assert!(blocks > 1 || segments.len() == 1, "handed out in one block");
    channels.concat()
}

/// The push decoder ([`DecodeStream`]) fed pieces of pseudo-random sizes (1 frame to whole segments), planar
/// `[C][L]`, and the samples it handed out before `finish`.
fn decode_pushed(
    model: &EncodecModel,
    segments: &[Host],
    n_q: usize,
    len: usize,
    seed: u64,
) -> (Vec<f32>, usize) {
    let c = model.config.audio_channels;
    let mut channels = vec![Vec::new(); c];
    let mut sink = |block: &[f32], n: usize| -> Result<(), EncodecError> {
        for (dst, src) in channels.iter_mut().zip(block.chunks_exact(n)) {
            dst.extend_from_slice(src);
        }
        Ok(())
    };
    let mut stream = DecodeStream::new(model, n_q, Some(len)).unwrap_or_else(|e| panic!("{e}"));
    let mut s = seed;
    for (codes, t, scale) in segments {
        let mut lo = 0;
        while lo < *t {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let size = [1, 2, 3, 7, 50, 1000, usize::MAX][(s >> 33) as usize % 7];
            let hi = lo.saturating_add(size).min(*t);
            let piece: Vec<i64> = (0..n_q)
                .flat_map(|q| codes[q * t + lo..q * t + hi].iter().copied())
                .collect();
            stream
                .push(CodesRef::I64(&piece), hi - lo, &mut sink)
                .unwrap_or_else(|e| panic!("{e}"));
            lo = hi;
        }
        stream
            .end_segment(*scale, &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let early = stream.handed_out();
    let n = stream.finish(&mut sink).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, channels[0].len());
    (channels.concat(), early)
}

fn check(name: &str, lens: &[usize], stream_frames: &[usize], blocks: &[usize]) {
    let base = load(name);
    let (rate, c) = (base.config.sampling_rate, base.config.audio_channels);
    for &bandwidth in &base.config.target_bandwidths {
        let n_q = base.config.num_quantizers_for_bandwidth(bandwidth);
        for &len in lens {
            let pcm = clip(c, len, rate);
            for &frames in stream_frames {
                let model = load(name).with_stream_frames(frames);
                let want = whole(&model, &pcm, Some(bandwidth));
                for &block in blocks {
                    let label =
                        format!("{name} bw={bandwidth} L={len} tile={frames} block={block}");
                    let (got, early) = streamed(&model, &pcm, Some(bandwidth), block);
                    // Codes come out while the clip is still being pushed, once it spans many blocks.
                    let blocks_in_clip = len / (frames * model.config.hop_length()).max(1);
                    let chunked = model.config.chunk_length().is_some();
                    if block < len / 2 && (blocks_in_clip > 4 || chunked && len > 300_000) {
                        assert!(early > 0, "{label}: nothing before finish");
                    }
                    assert_eq!(got.len(), want.len(), "{label}: segments");
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.1, w.1, "{label}: segment {i} frames");
                        assert!(g.0 == w.0, "{label}: segment {i} codes differ");
                        assert_eq!(
                            g.2.map(f32::to_bits),
                            w.2.map(f32::to_bits),
                            "{label}: segment {i} scale"
                        );
                    }
                }
                let a = decode_whole(&model, &want, n_q, len);
                let b = decode_streamed(&model, &want, n_q, len);
                assert_eq!(
                    a.len(),
                    b.len(),
                    "{name} L={len} tile={frames}: decoded length"
                );
                let worst = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    worst == 0.0,
                    "{name} L={len} tile={frames}: decode differs by {worst}"
                );
                for seed in [1, 2, 3] {
                    let (p, early) = decode_pushed(&model, &want, n_q, len, seed);
                    assert!(
                        p == a,
                        "{name} L={len} tile={frames} seed={seed}: pushed decode differs"
                    );
                    let tiles = len / (frames * model.config.hop_length()).max(1);
                    let chunked = model.config.chunk_length().is_some();
                    if if chunked { want.len() > 60 } else { tiles > 4 } {
                        assert!(
                            early > 0,
                            "{name} L={len} tile={frames}: nothing before finish"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn unchunked_24k_streams_exactly() {
    let hop = 320;
    check(
        "tiny_24k",
        &[40 * hop + 17, 9 * hop],
        &[1, 3, 7, 4096],
        &[1000, 4801, usize::MAX],
    );
}

#[test]
fn unchunked_32k_streams_exactly() {
    let hop = 640;
    check("tiny_32k", &[30 * hop - 1], &[2, 5], &[333, usize::MAX]);
}

#[test]
fn chunked_48k_streams_exactly() {
    // 4800-sample chunks every 4752, 54 to a batch: 64 chunks are two batches and a short last chunk.
    check(
        "tiny_48k",
        &[60 * 4752 + 1234, 4700],
        &[1],
        &[4096, 100_000, usize::MAX],
    );
}

#[test]
fn one_sample_pushes_match_too() {
    let model = load("tiny_24k").with_stream_frames(2);
    let pcm = clip(1, 9 * 320 + 5, 24_000);
    let bw = Some(1.8);
    assert_eq!(streamed(&model, &pcm, bw, 1).0, whole(&model, &pcm, bw));
}

#[test]
fn stream_errors_are_typed() {
    let model = load("tiny_48k");
    let mut stream = EncodeStream::new(&model, Some(1.8)).unwrap_or_else(|e| panic!("{e}"));
    let mut sink = |_: CodeEvent<'_>| -> Result<(), EncodecError> { Ok(()) };
    let err = stream.push(&[vec![0.0f32; 4]], &mut sink).unwrap_err();
    assert!(
        err.to_string()
            .contains("2 audio channel(s), the input has 1"),
        "{err}"
    );
    let err = stream.finish(&mut sink).unwrap_err();
    assert!(err.to_string().contains("no audio"), "{err}");
    let err = EncodeStream::new(&model, Some(5.0)).unwrap_err();
    assert!(err.to_string().contains("bandwidth of 5 kbps"), "{err}");
}

#[test]
fn push_decoder_errors_are_typed() {
    let model = load("tiny_24k");
    let mut sink = |_: &[f32], _: usize| -> Result<(), EncodecError> { Ok(()) };
    let err = DecodeStream::new(&model, 0, None).unwrap_err();
    assert!(err.to_string().contains("0 codebooks"), "{err}");
    let mut stream = DecodeStream::new(&model, 2, None).unwrap_or_else(|e| panic!("{e}"));
    let err = stream
        .push(CodesRef::I64(&[1, 2, 3]), 2, &mut sink)
        .unwrap_err();
    assert!(err.to_string().contains("3 codes for 2 codebooks"), "{err}");
    let size = model.config.codebook_size as i64;
    let err = stream
        .push(CodesRef::I64(&[1, 2, 3, size]), 2, &mut sink)
        .unwrap_err();
    assert!(
        matches!(
            err,
            EncodecError::CodeOutOfRange {
                codebook: 1,
                frame: 1,
                ..
            }
        ),
        "{err}"
    );
    let stream = DecodeStream::new(&model, 2, None).unwrap_or_else(|e| panic!("{e}"));
    let err = stream.finish(&mut sink).unwrap_err();
    assert!(err.to_string().contains("no chunks"), "{err}");
    let mut stream = DecodeStream::new(&model, 1, None).unwrap_or_else(|e| panic!("{e}"));
    stream
        .push(CodesRef::I64(&[1, 2]), 2, &mut sink)
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .end_segment(None, &mut sink)
        .unwrap_or_else(|e| panic!("{e}"));
    let err = stream.push(CodesRef::I64(&[1]), 1, &mut sink).unwrap_err();
    assert!(err.to_string().contains("does not chunk"), "{err}");
    let chunked = load("tiny_48k");
    let mut stream = DecodeStream::new(&chunked, 1, None).unwrap_or_else(|e| panic!("{e}"));
    stream
        .push(CodesRef::I64(&[1, 2]), 2, &mut sink)
        .unwrap_or_else(|e| panic!("{e}"));
    let err = stream.end_segment(None, &mut sink).unwrap_err();
    assert!(err.to_string().contains("no scale"), "{err}");
    let err = stream.end_segment(Some(f32::NAN), &mut sink).unwrap_err();
    assert!(err.to_string().contains("scale"), "{err}");
}
