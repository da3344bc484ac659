//! Audio file decoding with symphonia (the Python side uses `torchaudio.load` / `soundfile.read`).
//!
//! Integer PCM is scaled to `[-1, 1)` by symphonia's conversions, which match torchaudio's: 8-bit
//! unsigned `x/128 − 1`, 16-bit `x/32768`, 24-bit `x/2^23`, 32-bit `x/2^31`; floats are passed through
//! (64-bit floats are rounded to `f32`). Lossy codecs (MP3, Vorbis) are decoded gaplessly (encoder delay
//! and padding trimmed, when the container says how much).

use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use crate::audio::{Audio, find_non_finite};
use crate::error::AudioError;

/// The label used in errors for [`decode_bytes`].
pub const MEMORY_LABEL: &str = "<memory>";

/// Load and decode an audio file (WAV 8/16/24/32-bit integer or 32/64-bit float, FLAC, MP3,
/// OGG/Vorbis, AIFF, ADPCM WAV) to planar `f32` at its own sample rate and channel count.
///
/// Errors name the file: missing, unreadable, empty, not audio, unsupported codec, malformed,
/// truncated, zero samples, or non-finite (NaN/Inf) samples.
pub fn load_audio(path: impl AsRef<Path>) -> Result<Audio, AudioError> {
    load_file(path.as_ref(), &|_| None).map(|(audio, _)| audio)
}

/// A decoded beginning of a file (see [`load_audio_prefix`]).
#[derive(Debug, Clone)]
pub struct AudioPrefix {
    /// The first frames of the file, at its own rate and channel count.
    pub audio: Audio,
    /// The length of the whole file in frames: exact when the whole file was decoded, else what the container
    /// declares (`None` when it declares nothing).
    pub total_frames: Option<u64>,
}

/// [`load_audio`], but decoding stops once `limit(sample_rate)` frames are in (packets past them are not read):
/// a feature extractor that keeps the first 6 s of a voice clip needs seconds of an hour-long file, not the hour.
/// The same checks as [`load_audio`] apply to the decoded part; a file shorter than the limit is decoded whole.
pub fn load_audio_prefix(
    path: impl AsRef<Path>,
    limit: impl Fn(u32) -> u64,
) -> Result<AudioPrefix, AudioError> {
    let (audio, total_frames) = load_file(path.as_ref(), &|rate| Some(limit(rate)))?;
    Ok(AudioPrefix {
        audio,
        total_frames,
    })
}

/// The frame limit of a decode, from the stream's sample rate (`None`: decode everything).
type FrameLimit<'a> = &'a dyn Fn(u32) -> Option<u64>;

fn load_file(path: &Path, limit: FrameLimit) -> Result<(Audio, Option<u64>), AudioError> {
    let file = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|e| io_error(&file, e))?;
    if metadata.is_dir() {
        return Err(AudioError::Io {
            file,
            source: std::io::Error::new(ErrorKind::InvalidInput, "it is a directory"),
        });
    }
    if metadata.len() == 0 {
        return Err(AudioError::EmptyFile { file });
    }
    let mut handle = std::fs::File::open(path).map_err(|e| io_error(&file, e))?;
    let mut head = Vec::with_capacity(HEAD_LEN);
    (&mut handle)
        .take(HEAD_LEN as u64)
        .read_to_end(&mut head)
        .and_then(|_| handle.seek(SeekFrom::Start(0)))
        .map_err(|e| io_error(&file, e))?;
    check_header(&head, &file)?;
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    decode_source(Box::new(handle), &hint, &file, limit)
}

/// Decode an in-memory audio file. `hint` is an optional file extension (`"wav"`, `"mp3"`, ...)
/// that helps the format probe; errors name the source as [`MEMORY_LABEL`].
pub fn decode_bytes(bytes: impl Into<Vec<u8>>, hint: Option<&str>) -> Result<Audio, AudioError> {
    let bytes = bytes.into();
    let file = MEMORY_LABEL.to_string();
    if bytes.is_empty() {
        return Err(AudioError::EmptyFile { file });
    }
    check_header(&bytes[..bytes.len().min(HEAD_LEN)], &file)?;
    let mut probe_hint = Hint::new();
    if let Some(ext) = hint {
        probe_hint.with_extension(ext.trim_start_matches('.'));
    }
    decode_source(
        Box::new(std::io::Cursor::new(bytes)),
        &probe_hint,
        &file,
        &|_| None,
    )
    .map(|(audio, _)| audio)
}

/// How much of a file [`check_header`] looks at.
const HEAD_LEN: usize = 4096;

/// Reject a WAV `fmt ` or AIFF `COMM` chunk whose frame (`channels × bytes per sample`) does not fit 16 bits
/// before symphonia reads it: symphonia 0.6.1 computes that product in `u16`, which panics where overflow
/// checks are on (debug builds: a header declaring 65535 channels of 16 bits crashed `clvp features`) and wraps
/// in release. Anything that is not a RIFF/WAVE or FORM/AIFF header within `head` is left to symphonia.
fn check_header(head: &[u8], file: &str) -> Result<(), AudioError> {
    let (big_endian, fmt_id) = match (head.get(0..4), head.get(8..12)) {
        (Some(b"RIFF"), Some(b"WAVE")) => (false, b"fmt "),
        (Some(b"FORM"), Some(b"AIFF" | b"AIFC")) => (true, b"COMM"),
        _ => return Ok(()),
    };
    let u16_at = |b: &[u8], i: usize| {
        let v = [b[i], b[i + 1]];
        if big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    };
    let mut pos = 12usize;
    while let Some(chunk) = head.get(pos..pos.saturating_add(8)) {
        let size = [chunk[4], chunk[5], chunk[6], chunk[7]];
        let size = if big_endian {
            u32::from_be_bytes(size)
        } else {
            u32::from_le_bytes(size)
        } as usize;
        if &chunk[0..4] == fmt_id {
            let Some(fmt) = head.get(pos + 8..pos + 24) else {
                return Ok(());
            };
            // WAV: channels at 2, bits at 14; AIFF: channels at 0, bits at 6.
            let (channels, bits) = if big_endian {
                (u16_at(fmt, 0), u16_at(fmt, 6))
            } else {
                (u16_at(fmt, 2), u16_at(fmt, 14))
            };
            let frame = u32::from(channels) * u32::from(bits).div_ceil(8);
            if frame > u32::from(u16::MAX) {
                return Err(AudioError::Malformed {
                    file: file.to_string(),
                    reason: format!(
                        "the header declares {channels} channels of {bits} bits: a frame of {frame} bytes, \
                         more than the format can hold (65535)"
                    ),
                });
            }
            return Ok(());
        }
        // Chunks are padded to an even size.
        pos = pos
            .saturating_add(8)
            .saturating_add(size.saturating_add(size & 1));
    }
    Ok(())
}

fn io_error(file: &str, source: std::io::Error) -> AudioError {
    if source.kind() == ErrorKind::NotFound {
        AudioError::NotFound {
            file: file.to_string(),
        }
    } else {
        AudioError::Io {
            file: file.to_string(),
            source,
        }
    }
}

/// [`decode_unguarded`], with a panic inside the decoder reported as malformed data: symphonia's parsers
/// still have integer overflows on some corrupt headers (caught as panics where overflow checks are on), and a
/// broken file must not take the caller down. The known cases are caught earlier by [`check_header`].
fn decode_source(
    source: Box<dyn MediaSource>,
    hint: &Hint,
    file: &str,
    limit: FrameLimit,
) -> Result<(Audio, Option<u64>), AudioError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_unguarded(source, hint, file, limit)
    }))
    .unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(AudioError::Malformed {
            file: file.to_string(),
            reason: format!("the decoder failed on this data: {what}"),
        })
    })
}

fn decode_unguarded(
    source: Box<dyn MediaSource>,
    hint: &Hint,
    file: &str,
    limit: FrameLimit,
) -> Result<(Audio, Option<u64>), AudioError> {
    let f = || file.to_string();
    let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymphoniaError::Unsupported(reason) => AudioError::NotAudio {
                file: f(),
                reason: reason.to_string(),
            },
            SymphoniaError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
                AudioError::Truncated {
                    file: f(),
                    detail: "the data ends inside the header".into(),
                }
            }
            SymphoniaError::IoError(io) => AudioError::Io {
                file: f(),
                source: io,
            },
            other => AudioError::Malformed {
                file: f(),
                reason: other.to_string(),
            },
        })?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::NoAudioTrack { file: f() })?;
    let track_id = track.id;
    let declared_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::NoAudioTrack { file: f() })?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(reason) => AudioError::Unsupported {
                file: f(),
                reason: reason.to_string(),
            },
            other => AudioError::Malformed {
                file: f(),
                reason: other.to_string(),
            },
        })?;

    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut sample_rate: Option<u32> = None;
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    let mut skipped = 0usize;
    let mut first_skip_reason: Option<String> = None;
    let mut hit_eof = false;
    let mut stopped_at: Option<u64> = None;

    loop {
        if let (Some(rate), Some(first)) = (sample_rate, channels.first())
            && let Some(max) = limit(rate)
            && first.len() as u64 >= max
        {
            stopped_at = Some(max);
            break;
        }
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::IoError(io)) if io.kind() == ErrorKind::UnexpectedEof => {
                hit_eof = true;
                break;
            }
            Err(SymphoniaError::ResetRequired) => {
                tracing::warn!(
                    file,
                    "the stream changes its track layout (chained stream); decoding only the first part"
                );
                break;
            }
            Err(SymphoniaError::IoError(io)) => {
                return Err(AudioError::Io {
                    file: f(),
                    source: io,
                });
            }
            Err(other) => {
                return Err(AudioError::Malformed {
                    file: f(),
                    reason: other.to_string(),
                });
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(e @ (SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_))) => {
                skipped += 1;
                first_skip_reason.get_or_insert_with(|| e.to_string());
                continue;
            }
            Err(SymphoniaError::Unsupported(reason)) => {
                return Err(AudioError::Unsupported {
                    file: f(),
                    reason: reason.to_string(),
                });
            }
            Err(other) => {
                return Err(AudioError::Malformed {
                    file: f(),
                    reason: other.to_string(),
                });
            }
        };
        let spec = buffer.spec();
        let rate = spec.rate();
        let count = spec.channels().count();
        if buffer.frames() == 0 {
            continue;
        }
        match sample_rate {
            None => {
                sample_rate = Some(rate);
                channels = vec![Vec::new(); count];
            }
            Some(r) if r != rate || channels.len() != count => {
                return Err(AudioError::Malformed {
                    file: f(),
                    reason: format!(
                        "the stream changes from {} channels at {r} Hz to {count} channels at {rate} Hz",
                        channels.len()
                    ),
                });
            }
            Some(_) => {}
        }
        buffer.copy_to_vecs_planar(&mut scratch);
        for (dst, src) in channels.iter_mut().zip(&scratch) {
            dst.extend_from_slice(src);
        }
    }

    if let Some(max) = stopped_at {
        for c in &mut channels {
            c.truncate(max as usize);
        }
    }
    let frames = channels.first().map_or(0, Vec::len) as u64;
    if skipped > 0 {
        tracing::warn!(
            file,
            skipped,
            reason = first_skip_reason.as_deref(),
            "skipped undecodable packets"
        );
    }
    if hit_eof {
        match declared_frames {
            Some(declared) if frames < declared => {
                return Err(AudioError::Truncated {
                    file: f(),
                    detail: format!(
                        "the data ends after {frames} of the {declared} frames the header declares"
                    ),
                });
            }
            _ => tracing::warn!(
                file,
                frames,
                "the stream ends in the middle of a packet; keeping the decoded frames"
            ),
        }
    }
    let Some(sample_rate) = sample_rate.filter(|_| frames > 0) else {
        return Err(match first_skip_reason {
            Some(reason) => AudioError::Malformed { file: f(), reason },
            None => AudioError::ZeroLength { file: f() },
        });
    };
    if sample_rate == 0 {
        return Err(AudioError::Malformed {
            file: f(),
            reason: "the sample rate is 0 Hz".into(),
        });
    }
    if let Some((count, channel, frame)) = find_non_finite(channels.iter().map(Vec::as_slice)) {
        return Err(AudioError::NonFinite {
            file: f(),
            count,
            channel,
            frame,
        });
    }
    let total = if stopped_at.is_some() {
        declared_frames
    } else {
        Some(frames)
    };
    Ok((
        Audio {
            sample_rate,
            channels,
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit PCM WAV header declaring `channels`, with `data` bytes of samples.
    fn wav(channels: u16, data: usize) -> Vec<u8> {
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&(36 + data as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&22050u32.to_le_bytes());
        v.extend_from_slice(&(22050u32 * 2).to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data as u32).to_le_bytes());
        v.resize(v.len() + data, 0);
        v
    }

    #[test]
    fn a_frame_too_large_for_a_wav_block_is_malformed_not_a_panic() {
        // Before: symphonia panicked with "attempt to multiply with overflow" (debug builds).
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("many.wav");
        std::fs::write(&path, wav(65535, 6)).unwrap_or_else(|e| panic!("{e}"));
        for err in [
            load_audio(&path).map(|_| ()).unwrap_err(),
            decode_bytes(wav(40000, 6), Some("wav"))
                .map(|_| ())
                .unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(matches!(err, AudioError::Malformed { .. }), "{msg}");
            assert!(msg.contains("channels of 16 bits"), "{msg}");
        }
        assert!(msg_of(load_audio(&path)).contains("many.wav"));
        // An ordinary header passes the check and decodes.
        let ok = decode_bytes(wav(2, 8), Some("wav")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((ok.num_channels(), ok.num_frames()), (2, 2));
    }

    #[test]
    fn an_aiff_frame_too_large_is_malformed_not_a_panic() {
        // A fuzzed AIFF with 50689 channels of 16 bits panicked in symphonia's `make_packet_info`.
        let mut v = b"FORM".to_vec();
        v.extend_from_slice(&46u32.to_be_bytes());
        v.extend_from_slice(b"AIFFCOMM");
        v.extend_from_slice(&18u32.to_be_bytes());
        v.extend_from_slice(&50689u16.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&16u16.to_be_bytes());
        v.extend_from_slice(&[0x40, 0x0d, 0xac, 0x44, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(b"SSND");
        v.extend_from_slice(&12u32.to_be_bytes());
        v.extend_from_slice(&[0; 12]);
        let err = decode_bytes(v, Some("aiff")).map(|_| ()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, AudioError::Malformed { .. }), "{msg}");
        assert!(msg.contains("50689 channels of 16 bits"), "{msg}");
    }

    #[test]
    fn a_panic_in_the_decoder_is_an_error() {
        struct Exploding;
        impl std::io::Read for Exploding {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                panic!("boom")
            }
        }
        impl std::io::Seek for Exploding {
            fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
                Ok(0)
            }
        }
        impl MediaSource for Exploding {
            fn is_seekable(&self) -> bool {
                false
            }
            fn byte_len(&self) -> Option<u64> {
                None
            }
        }
        let err = decode_source(Box::new(Exploding), &Hint::new(), "x.wav", &|_| None)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.wav: malformed audio data (the decoder failed on this data: boom)"
        );
    }

    fn msg_of(r: Result<Audio, AudioError>) -> String {
        r.map(|_| String::new()).unwrap_or_else(|e| e.to_string())
    }
}
