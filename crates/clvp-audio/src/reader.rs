//! Streaming decode: an [`AudioReader`] turns a file, a pipe (FIFO, `<(cmd)`) or standard input into planar
//! `f32` blocks, one decoded packet at a time, so a caller can process an hour of audio in the memory of a
//! packet. It knows the stream's rate, channel count and declared length before the first block.
//!
//! [`crate::load_audio`] and [`crate::load_audio_prefix`] are this reader with the blocks collected.

use std::io::{Cursor, ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{
    MediaSource, MediaSourceStream, MediaSourceStreamOptions, ReadOnlySource,
};
use symphonia::core::meta::MetadataOptions;

use crate::audio::find_non_finite;
use crate::error::AudioError;
use crate::error::io_error;
use crate::header::{HEAD_LEN, check_header};
use crate::wav::{WavLayout, WideWav, wide_layout};

/// The path that means standard input (`clvp encodec encode - out.ecdc`).
pub const STDIN_PATH: &str = "-";
/// The label used in errors for standard input.
pub const STDIN_LABEL: &str = "<stdin>";

/// A decoder over one audio stream, handing out planar `f32` blocks (one per packet) in order.
///
/// The checks of [`crate::load_audio`] apply: a stream that changes rate or channel count, a truncated file,
/// non-finite samples (reported once the stream has been read to its end, with their total count, so the
/// message equals the whole-file one) and a panic inside the decoder are errors naming the file.
pub struct AudioReader {
    file: String,
    source: Source,
    sample_rate: u32,
    declared_frames: Option<u64>,
    /// The last decoded block.
    block: Vec<Vec<f32>>,
    /// `block` holds the first packet, decoded by `open` to learn the format, not yet handed out.
    pending: bool,
    /// Frames handed out so far.
    frames: u64,
    skipped: usize,
    first_skip_reason: Option<String>,
    hit_eof: bool,
    /// The stream is over (its end checks passed) or broken (an error was returned).
    finished: bool,
}

impl std::fmt::Debug for AudioReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioReader")
            .field("file", &self.file)
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels())
            .field("declared_frames", &self.declared_frames)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

/// Where the blocks come from.
enum Source {
    /// symphonia's demuxer and decoder for the track.
    Symphonia {
        format: Box<dyn FormatReader>,
        decoder: Box<dyn AudioDecoder>,
        track_id: u32,
    },
    /// A WAV of more channels than symphonia takes ([`crate::wav`]).
    Wav(WideWav),
}

/// Run `f`, turning a panic inside symphonia into [`AudioError::Malformed`]: its parsers still have integer
/// overflows on some corrupt headers (caught as panics where overflow checks are on), and a broken file must
/// not take the caller down. The known cases are caught earlier by [`check_header`].
fn guarded<T>(file: &str, f: impl FnOnce() -> Result<T, AudioError>) -> Result<T, AudioError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
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

impl AudioReader {
    /// Open an audio file, a named pipe or a character device; the path `-` ([`STDIN_PATH`]) is standard
    /// input. Streams that cannot seek (pipes, stdin) are read once, front to back.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AudioError> {
        let path = path.as_ref();
        if path.as_os_str() == STDIN_PATH {
            return Self::from_read(std::io::stdin(), STDIN_LABEL, None);
        }
        let file = path.display().to_string();
        let metadata = std::fs::metadata(path).map_err(|e| io_error(&file, e))?;
        if metadata.is_dir() {
            return Err(AudioError::Io {
                file,
                source: std::io::Error::new(ErrorKind::InvalidInput, "it is a directory"),
            });
        }
        // Only a regular file's size means anything: a FIFO or a device reports 0 bytes and has data.
        if metadata.is_file() && metadata.len() == 0 {
            return Err(AudioError::EmptyFile { file });
        }
        let mut handle = std::fs::File::open(path).map_err(|e| io_error(&file, e))?;
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        if !metadata.is_file() {
            return Self::from_stream(handle, file, hint);
        }
        let head = read_head(&mut handle, &file)?;
        handle
            .seek(SeekFrom::Start(0))
            .map_err(|e| io_error(&file, e))?;
        check_header(&head, &file)?;
        Self::from_source(Box::new(handle), &head, &hint, file)
    }

    /// Decode a stream that cannot seek (a pipe, a socket, standard input), named `label` in errors; `hint` is
    /// an optional file extension that helps the format probe.
    pub fn from_read(
        reader: impl Read + Send + Sync + 'static,
        label: &str,
        hint: Option<&str>,
    ) -> Result<Self, AudioError> {
        let mut probe_hint = Hint::new();
        if let Some(ext) = hint {
            probe_hint.with_extension(ext.trim_start_matches('.'));
        }
        Self::from_stream(reader, label.to_string(), probe_hint)
    }

    fn from_stream(
        mut reader: impl Read + Send + Sync + 'static,
        file: String,
        hint: Hint,
    ) -> Result<Self, AudioError> {
        let head = read_head(&mut reader, &file)?;
        if head.is_empty() {
            return Err(AudioError::EmptyFile { file });
        }
        check_header(&head, &file)?;
        let wide = wide_layout(&head, &file)?;
        let source = ReadOnlySource::new(Cursor::new(head).chain(reader));
        Self::open_source(Box::new(source), wide, &hint, file)
    }

    /// Probe `source` (whose first bytes are `head`), pick its default audio track and decode up to the first
    /// packet with samples.
    pub(crate) fn from_source(
        source: Box<dyn MediaSource>,
        head: &[u8],
        hint: &Hint,
        file: String,
    ) -> Result<Self, AudioError> {
        let wide = wide_layout(head, &file)?;
        Self::open_source(source, wide, hint, file)
    }

    fn open_source(
        source: Box<dyn MediaSource>,
        wide: Option<WavLayout>,
        hint: &Hint,
        file: String,
    ) -> Result<Self, AudioError> {
        let label = file.clone();
        guarded(&label, move || match wide {
            Some(layout) => {
                let wav = WideWav::open(Box::new(source), layout, &file)?;
                let declared_frames = wav.declared_frames;
                Self::start(file, Source::Wav(wav), declared_frames)
            }
            None => Self::open_unguarded(source, hint, file),
        })
    }

    fn open_unguarded(
        source: Box<dyn MediaSource>,
        hint: &Hint,
        file: String,
    ) -> Result<Self, AudioError> {
        let f = || file.clone();
        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let format = symphonia::default::get_probe()
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
        let decoder = symphonia::default::get_codecs()
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
        let source = Source::Symphonia {
            format,
            decoder,
            track_id,
        };
        Self::start(file, source, declared_frames)
    }

    /// The reader over `source`, its first block decoded (to learn the rate and channels).
    fn start(
        file: String,
        source: Source,
        declared_frames: Option<u64>,
    ) -> Result<Self, AudioError> {
        let mut reader = AudioReader {
            file,
            source,
            sample_rate: 0,
            declared_frames,
            block: Vec::new(),
            pending: false,
            frames: 0,
            skipped: 0,
            first_skip_reason: None,
            hit_eof: false,
            finished: false,
        };
        if !reader.decode_next()? {
            // No samples at all: the end checks say why (truncated, undecodable, or empty).
            reader.end_checks()?;
            return Err(AudioError::ZeroLength { file: reader.file });
        }
        if reader.sample_rate == 0 {
            return Err(AudioError::Malformed {
                file: reader.file,
                reason: "the sample rate is 0 Hz".into(),
            });
        }
        reader.pending = true;
        Ok(reader)
    }

    /// The name used in errors: the path as given, [`STDIN_LABEL`] or a caller's label.
    pub fn label(&self) -> &str {
        &self.file
    }

    /// The stream's sample rate in Hz (positive).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The stream's channel count (at least 1).
    pub fn channels(&self) -> usize {
        self.block.len()
    }

    /// The length in frames the container declares, if any (a pipe often declares none, or a wrong one).
    pub fn declared_frames(&self) -> Option<u64> {
        self.declared_frames
    }

    /// Frames handed out so far.
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// The next block of samples (`[channel][frame]`, at least one frame), or `None` at the end of the
    /// stream. A block with non-finite samples is an error, raised once the rest of the stream has been read
    /// to count them; after an error the reader returns `None`.
    pub fn next_block(&mut self) -> Result<Option<&[Vec<f32>]>, AudioError> {
        if !self.advance()? {
            return Ok(None);
        }
        if self.block.iter().flatten().all(|x| x.is_finite()) {
            return Ok(Some(&self.block));
        }
        // As the whole-file check reports it: the total count, and the first bad frame of the first channel
        // that has one.
        let mut count = 0;
        let mut first: Vec<Option<u64>> = vec![None; self.block.len()];
        loop {
            let start = self.frames - self.block[0].len() as u64;
            for (channel, samples) in self.block.iter().enumerate() {
                if let Some((n, _, frame)) = find_non_finite([samples.as_slice()]) {
                    count += n;
                    first[channel].get_or_insert(start + frame as u64);
                }
            }
            if !self.advance()? {
                break;
            }
        }
        let (channel, frame) = first
            .iter()
            .enumerate()
            .find_map(|(c, f)| f.map(|f| (c, f)))
            .unwrap_or_default();
        Err(AudioError::NonFinite {
            file: self.file.clone(),
            count,
            channel,
            frame: usize::try_from(frame).unwrap_or(usize::MAX),
        })
    }

    /// [`Self::next_block`] without the non-finite check (the caller checks what it keeps).
    pub(crate) fn next_raw(&mut self) -> Result<Option<&[Vec<f32>]>, AudioError> {
        Ok(self.advance()?.then_some(&self.block[..]))
    }

    /// Move to the next block; `false` at the end (whose checks have passed).
    fn advance(&mut self) -> Result<bool, AudioError> {
        if self.finished {
            return Ok(false);
        }
        if std::mem::take(&mut self.pending) {
            self.frames += self.block[0].len() as u64;
            return Ok(true);
        }
        let label = self.file.clone();
        let got = guarded(&label, || self.decode_next());
        let result = match got {
            Ok(true) => {
                self.frames += self.block[0].len() as u64;
                return Ok(true);
            }
            Ok(false) => self.end_checks(),
            Err(e) => Err(e),
        };
        self.finished = true;
        result.map(|()| false)
    }

    /// Decode packets up to the next one with samples into `block`; `false` at the end of the stream.
    fn decode_next(&mut self) -> Result<bool, AudioError> {
        let (format, decoder, track_id) = match &mut self.source {
            Source::Wav(wav) => {
                let got = wav.next_block(&mut self.block, &self.file)?;
                self.sample_rate = wav.sample_rate();
                self.hit_eof |= wav.hit_eof;
                return Ok(got);
            }
            Source::Symphonia {
                format,
                decoder,
                track_id,
            } => (format, decoder, *track_id),
        };
        let f = || self.file.clone();
        loop {
            let packet = match format.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(false),
                Err(SymphoniaError::IoError(io)) if io.kind() == ErrorKind::UnexpectedEof => {
                    self.hit_eof = true;
                    return Ok(false);
                }
                Err(SymphoniaError::ResetRequired) => {
                    tracing::warn!(
                        file = self.file,
                        "the stream changes its track layout (chained stream); decoding only the first part"
                    );
                    return Ok(false);
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
                    self.skipped += 1;
                    self.first_skip_reason.get_or_insert_with(|| e.to_string());
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
            let (rate, count) = (spec.rate(), spec.channels().count());
            if buffer.frames() == 0 {
                continue;
            }
            if self.block.is_empty() {
                self.sample_rate = rate;
            } else if rate != self.sample_rate || count != self.block.len() {
                return Err(AudioError::Malformed {
                    file: f(),
                    reason: format!(
                        "the stream changes from {} channels at {} Hz to {count} channels at {rate} Hz",
                        self.block.len(),
                        self.sample_rate
                    ),
                });
            }
            buffer.copy_to_vecs_planar(&mut self.block);
            return Ok(true);
        }
    }

    /// What the end of the stream says: skipped packets (a warning), a stream cut short of its declared
    /// length (an error), or one ending inside a packet (a warning).
    fn end_checks(&self) -> Result<(), AudioError> {
        let (file, frames) = (self.file.as_str(), self.frames);
        if self.skipped > 0 {
            tracing::warn!(
                file,
                skipped = self.skipped,
                reason = self.first_skip_reason.as_deref(),
                "skipped undecodable packets"
            );
        }
        if self.hit_eof {
            match self.declared_frames {
                Some(declared) if frames < declared => {
                    return Err(AudioError::Truncated {
                        file: file.to_string(),
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
        if frames == 0
            && let Some(reason) = &self.first_skip_reason
        {
            return Err(AudioError::Malformed {
                file: file.to_string(),
                reason: reason.clone(),
            });
        }
        Ok(())
    }
}

/// The first [`HEAD_LEN`] bytes of a stream (fewer if it is shorter).
fn read_head(reader: &mut impl Read, file: &str) -> Result<Vec<u8>, AudioError> {
    let mut head = Vec::with_capacity(HEAD_LEN);
    reader
        .take(HEAD_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| io_error(file, e))?;
    Ok(head)
}
