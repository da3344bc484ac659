//! EnCodec through the facade on a stream (issue 22): a file read block by block ([`AudioReader`]), converted
//! to the model's channels and rate block by block and encoded as it comes, gives the codes of the whole-file
//! path ([`Encodec::encode`] on [`load_audio`]); the codes decoded to a sink block by block give the samples of
//! [`Encodec::decode`], and so do the encoder's events pushed live into [`Encodec::decoder`]. Mono and stereo inputs, resampled or not, the 24 kHz model over many tiles and the
//! 48 kHz one over many chunks.

use std::path::{Path, PathBuf};

use clvp::raw::audio::{AudioReader, load_audio};
use clvp::raw::encodec::{CodeEvent, CodesRef};
use clvp::{CompactCodes, Encodec};

/// The sinks' error: small, and built from any of the library's errors.
type Error = Box<dyn std::error::Error + Send + Sync>;
use clvp_parity::fixture_path;

/// A 16-bit PCM WAV of `frames` at `rate` Hz: a chirp plus noise per channel.
fn write_wav(dir: &Path, rate: u32, channels: u16, frames: usize) -> PathBuf {
    let path = dir.join(format!("in_{rate}_{channels}.wav"));
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap_or_else(|e| panic!("{e}"));
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        for c in 0..channels {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let noise = (s >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            let x = 0.4
                * (std::f64::consts::TAU * (150.0 + 300.0 * t + 70.0 * f64::from(c)) * t).sin()
                + 0.1 * noise;
            w.write_sample((x * 32767.0) as i16)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    w.finalize().unwrap_or_else(|e| panic!("{e}"));
    path
}

fn codec(name: &str, stream_frames: usize) -> Encodec {
    let device = clvp::device::device("cpu").unwrap_or_else(|e| panic!("{e}"));
    let dir = fixture_path(&format!("encodec/{name}"));
    let mut codec =
        Encodec::from_pretrained(&dir.to_string_lossy(), &device).unwrap_or_else(|e| panic!("{e}"));
    codec.raw_mut().set_stream_frames(stream_frames);
    codec
}

#[test]
fn streamed_encode_and_decode_equal_the_whole_file_path() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (model, frames, bandwidth) in [("tiny_24k", 4, 3.6), ("tiny_48k", 75, 7.2)] {
        let codec = codec(model, frames);
        for (rate, channels, seconds) in [
            (24_000, 1, 1.7),
            (22_050, 2, 1.3),
            (48_000, 2, 1.1),
            (44_100, 1, 0.9),
            (16_000, 1, 2.1),
        ] {
            let label = format!("{model} {rate} Hz × {channels}");
            let path = write_wav(
                dir.path(),
                rate,
                channels,
                (seconds * f64::from(rate)) as usize,
            );
            let audio = load_audio(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
            let want = codec
                .encode(&audio, Some(bandwidth))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert!(
                want.chunks.len() > 8 || model == "tiny_24k",
                "{label}: few chunks"
            );

            let mut reader = AudioReader::open(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
            let mut codes = CompactCodes::default();
            let summary = codec
                .encode_stream(&mut reader, Some(bandwidth), &mut |e: CodeEvent<'_>| {
                    codes.push(e).map_err(Error::from)
                })
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(summary.audio_length, want.audio_length, "{label}: length");
            assert!(
                codes.to_audio_codes(summary.audio_length) == want,
                "{label}: codes differ"
            );

            let whole = codec
                .decode(&want)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let mut got = vec![Vec::new(); codec.channels()];
            let mut blocks = 0;
            let n = codec
                .decode_stream(
                    &codes.segment_refs(),
                    codes.num_codebooks,
                    summary.audio_length,
                    &mut |block: &[f32], n: usize| -> Result<(), Error> {
                        for (g, c) in got.iter_mut().zip(block.chunks_exact(n)) {
                            g.extend_from_slice(c);
                        }
                        blocks += 1;
                        Ok(())
                    },
                )
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(n, whole.num_frames(), "{label}: decoded length");
            assert!(blocks > 3, "{label}: decoded in {blocks} block(s)");
            assert!(got == whole.channels, "{label}: decoded samples differ");

            // Live: the encoder's events pushed straight into the push decoder, nothing kept in between.
            let mut live = vec![Vec::new(); codec.channels()];
            let mut audio_sink = |block: &[f32], n: usize| -> Result<(), Error> {
                for (g, c) in live.iter_mut().zip(block.chunks_exact(n)) {
                    g.extend_from_slice(c);
                }
                Ok(())
            };
            let mut decoder = codec
                .decoder(want.num_codebooks, None)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let mut reader = AudioReader::open(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
            let mut early = 0;
            codec
                .encode_stream(&mut reader, Some(bandwidth), &mut |e: CodeEvent<'_>| {
                    match e {
                        CodeEvent::Frames { codes, frames } => {
                            decoder.push(CodesRef::I64(codes), frames, &mut audio_sink)?;
                        }
                        CodeEvent::EndSegment { scale } => {
                            decoder.end_segment(scale, &mut audio_sink)?;
                        }
                    }
                    early = early.max(decoder.handed_out());
                    Ok::<(), Error>(())
                })
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            decoder
                .finish(&mut audio_sink)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            if model == "tiny_24k" {
                assert!(early > 0, "{label}: no audio before the end of the codes");
            }
            live.iter_mut().for_each(|c| c.truncate(whole.num_frames()));
            assert!(live == whole.channels, "{label}: live decode differs");
        }
    }
}

/// A seeded generator of block sizes, log-uniform from 1 to `most`.
struct Cuts(u64);

impl Cuts {
    fn next(&mut self, most: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        ((most as f64).powf(u) as usize).clamp(1, most)
    }
}

/// Issue 26's property: [`Encodec::encoder`] (the input's own rate and channels, converted as it comes) fed
/// blocks of random sizes, from one sample to seconds, gives the codes of [`Encodec::encode`] on the whole clip,
/// at one-frame latency (`set_stream_frames(1)`) and at the default; [`Encodec::decoder`] fed random numbers of
/// frames gives [`Encodec::decode`]'s samples. Both models, mono and stereo inputs, resampled or not.
#[test]
fn random_cuts_through_the_live_encoder_and_decoder_equal_the_whole_pass() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cases = [
        ("tiny_24k", 1.8, 24_000, 1, 2.3),
        ("tiny_24k", 0.9, 22_050, 2, 1.6),
        ("tiny_48k", 3.6, 48_000, 2, 1.4),
        ("tiny_48k", 1.8, 44_100, 1, 1.2),
    ];
    for (case, (model, bandwidth, rate, channels, seconds)) in cases.into_iter().enumerate() {
        let path = write_wav(
            dir.path(),
            rate,
            channels,
            (seconds * f64::from(rate)) as usize,
        );
        let audio = load_audio(&path).unwrap_or_else(|e| panic!("{e}"));
        for frames in [1, 1 << 20] {
            let mut codec = codec(model, 1);
            codec.set_stream_frames(frames);
            let want = codec
                .encode(&audio, Some(bandwidth))
                .unwrap_or_else(|e| panic!("{e}"));
            let whole = codec.decode(&want).unwrap_or_else(|e| panic!("{e}"));
            for seed in 0..3u64 {
                let label =
                    format!("{model} {rate} Hz × {channels}, stream_frames {frames}, seed {seed}");
                let mut cuts = Cuts(seed * 7919 + case as u64);
                let mut encoder = codec
                    .encoder(Some(bandwidth), audio.sample_rate, audio.num_channels())
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                let mut codes = CompactCodes::default();
                let mut sink = |e: CodeEvent<'_>| codes.push(e).map_err(Error::from);
                let (len, mut at) = (audio.num_frames(), 0);
                while at < len {
                    let end = (at + cuts.next(3 * rate as usize)).min(len);
                    let block: Vec<&[f32]> = audio.channels.iter().map(|c| &c[at..end]).collect();
                    encoder
                        .push(&block, &mut sink)
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                    at = end;
                }
                let summary = encoder
                    .finish(&mut sink)
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                assert!(
                    codes.to_audio_codes(summary.audio_length) == want,
                    "{label}: codes differ"
                );

                let mut got = vec![Vec::new(); codec.channels()];
                let mut audio_sink = |block: &[f32], n: usize| -> Result<(), Error> {
                    for (g, c) in got.iter_mut().zip(block.chunks_exact(n)) {
                        g.extend_from_slice(c);
                    }
                    Ok(())
                };
                let mut decoder = codec
                    .decoder(want.num_codebooks, Some(want.audio_length))
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                for chunk in &want.chunks {
                    let mut lo = 0;
                    while lo < chunk.frames {
                        let hi = (lo + cuts.next(200)).min(chunk.frames);
                        let piece: Vec<i64> = (0..want.num_codebooks)
                            .flat_map(|q| {
                                chunk.codes[q * chunk.frames + lo..q * chunk.frames + hi].to_vec()
                            })
                            .collect();
                        decoder
                            .push(CodesRef::I64(&piece), hi - lo, &mut audio_sink)
                            .unwrap_or_else(|e| panic!("{label}: {e}"));
                        lo = hi;
                    }
                    decoder
                        .end_segment(chunk.scale, &mut audio_sink)
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                }
                decoder
                    .finish(&mut audio_sink)
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                assert!(got == whole.channels, "{label}: decoded samples differ");
            }
        }
    }
}

#[test]
fn the_live_encoder_refuses_bad_blocks() {
    let codec = codec("tiny_24k", 4);
    let mut sink = |_: CodeEvent<'_>| Ok::<(), Error>(());
    let mut e = codec
        .encoder(None, 16_000, 2)
        .unwrap_or_else(|e| panic!("{e}"));
    let one = [vec![0.0f32; 10]];
    let err = e.push(&one, &mut sink).expect_err("a block of one channel");
    assert!(
        err.to_string()
            .contains("1 channels pushed to a stream of 2"),
        "{err}"
    );
    let ragged = [vec![0.0f32; 10], vec![0.0; 9]];
    let err = e.push(&ragged, &mut sink).expect_err("ragged");
    assert!(err.to_string().contains("differ in length"), "{err}");
    let nan = [vec![0.0f32, f32::NAN], vec![0.0; 2]];
    let err = e.push(&nan, &mut sink).expect_err("NaN");
    assert!(
        err.to_string()
            .contains("non-finite sample (channel 0, frame 1"),
        "{err}"
    );
    assert!(codec.encoder(None, 16_000, 0).is_err());
    assert!(
        codec.encoder(Some(5.0), 16_000, 1).is_err(),
        "a bandwidth the model lacks"
    );
    assert!(codec.encoder(None, 0, 1).is_err(), "a rate of 0");
}
