//! Audio file decoding with symphonia (the Python side uses `torchaudio.load` / `soundfile.read`).
//!
//! Integer PCM is scaled to `[-1, 1)` by symphonia's conversions, which match torchaudio's: 8-bit
//! unsigned `x/128 − 1`, 16-bit `x/32768`, 24-bit `x/2^23`, 32-bit `x/2^31`; floats are passed through
//! (64-bit floats are rounded to `f32`). Lossy codecs (MP3, Vorbis) are decoded gaplessly (encoder delay
//! and padding trimmed, when the container says how much).

use std::path::Path;

use symphonia::core::formats::probe::Hint;

use crate::audio::{Audio, find_non_finite};
use crate::error::AudioError;
use crate::header::{HEAD_LEN, check_header};
use crate::reader::AudioReader;

/// The label used in errors for [`decode_bytes`].
pub const MEMORY_LABEL: &str = "<memory>";

/// Load and decode an audio file (WAV 8/16/24/32-bit integer or 32/64-bit float, FLAC, MP3,
/// OGG/Vorbis, AIFF, ADPCM WAV) to planar `f32` at its own sample rate and channel count.
///
/// Errors name the file: missing, unreadable, empty, not audio, unsupported codec, malformed,
/// truncated, zero samples, or non-finite (NaN/Inf) samples.
///
/// `path` may be a named pipe (`<(cmd)`) or a device; `-` is standard input ([`crate::STDIN_PATH`]). To
/// process a long file without holding it all, read it with [`AudioReader`] instead.
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
    read_all(AudioReader::open(path)?, limit)
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
    let head = bytes[..bytes.len().min(HEAD_LEN)].to_vec();
    let reader = AudioReader::from_source(
        Box::new(std::io::Cursor::new(bytes)),
        &head,
        &probe_hint,
        file,
    )?;
    read_all(reader, &|_| None).map(|(audio, _)| audio)
}

/// Collect a reader's blocks (up to `limit(rate)` frames) into [`Audio`], with the whole-file checks: the
/// non-finite samples of the kept part are counted and the first one located. The buffers grow with the
/// data actually decoded; memory that cannot be had is an [`AudioError::OutOfMemory`], not an abort.
fn read_all(
    mut reader: AudioReader,
    limit: FrameLimit,
) -> Result<(Audio, Option<u64>), AudioError> {
    let sample_rate = reader.sample_rate();
    let max = limit(sample_rate);
    let file = reader.label().to_string();
    let mut channels: Vec<Vec<f32>> = vec![Vec::new(); reader.channels()];
    let mut stopped = false;
    while let Some(block) = reader.next_raw()? {
        for (dst, src) in channels.iter_mut().zip(block) {
            if dst.try_reserve(src.len()).is_err() {
                return Err(AudioError::OutOfMemory {
                    file,
                    what: "the decoded audio".into(),
                    bytes: (dst.len() + src.len()) as u64 * 4 * block.len() as u64,
                });
            }
            dst.extend_from_slice(src);
        }
        if let Some(max) = max
            && reader.frames_read() >= max
        {
            stopped = true;
            for c in &mut channels {
                c.truncate(usize::try_from(max).unwrap_or(usize::MAX));
            }
            break;
        }
    }
    if let Some((count, channel, frame)) = find_non_finite(channels.iter().map(Vec::as_slice)) {
        return Err(AudioError::NonFinite {
            file,
            count,
            channel,
            frame,
        });
    }
    let total = if stopped {
        reader.declared_frames()
    } else {
        Some(reader.frames_read())
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
    use std::io::SeekFrom;
    use symphonia::core::io::MediaSource;

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
        let err = AudioReader::from_source(Box::new(Exploding), &[], &Hint::new(), "x.wav".into())
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
