//! Audio file decoding with symphonia (the Python side uses `torchaudio.load` / `soundfile.read`).
//!
//! Integer PCM is scaled to `[-1, 1)` by symphonia's conversions, which match torchaudio's: 8-bit
//! unsigned `x/128 − 1`, 16-bit `x/32768`, 24-bit `x/2^23`, 32-bit `x/2^31`; floats are passed through
//! (64-bit floats are rounded to `f32`). Lossy codecs (MP3, Vorbis) are decoded gaplessly (encoder delay
//! and padding trimmed, when the container says how much).

use std::io::ErrorKind;
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
    let path = path.as_ref();
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
    let handle = std::fs::File::open(path).map_err(|e| io_error(&file, e))?;
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    decode_source(Box::new(handle), &hint, &file)
}

/// Decode an in-memory audio file. `hint` is an optional file extension (`"wav"`, `"mp3"`, ...)
/// that helps the format probe; errors name the source as [`MEMORY_LABEL`].
pub fn decode_bytes(bytes: impl Into<Vec<u8>>, hint: Option<&str>) -> Result<Audio, AudioError> {
    let bytes = bytes.into();
    let file = MEMORY_LABEL.to_string();
    if bytes.is_empty() {
        return Err(AudioError::EmptyFile { file });
    }
    let mut probe_hint = Hint::new();
    if let Some(ext) = hint {
        probe_hint.with_extension(ext.trim_start_matches('.'));
    }
    decode_source(Box::new(std::io::Cursor::new(bytes)), &probe_hint, &file)
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

fn decode_source(
    source: Box<dyn MediaSource>,
    hint: &Hint,
    file: &str,
) -> Result<Audio, AudioError> {
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

    loop {
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
    Ok(Audio {
        sample_rate,
        channels,
    })
}
