//! EnCodec on streams: audio read block by block from an [`AudioReader`] (a file, a pipe, stdin), converted to
//! the model's channels and rate block by block and encoded as it comes; codes decoded to a sink block by
//! block. Memory stays at a block's worth of audio whatever the length; the codes and samples are those of
//! [`Encodec::encode`] and [`Encodec::decode`] on the whole clip.

use clvp_audio::{AudioError, AudioReader};
use std::io::Read;

use encodec_codec::ecdc::{EcdcFile, EcdcPiece, EcdcReader};
use encodec_codec::streaming::{AudioSink, CodeSink};
use encodec_codec::{CodeEvent, CodesRef, DecodeStream, EncodecError, SegmentRef, StreamSummary};

use super::{AudioCodes, ChunkCodes, CodecError, Encodec};

/// Converted samples gathered before they are pushed to the encoder (a packet is often only 1152 frames).
const PUSH_FRAMES: usize = 1 << 14;

/// Code frames read from an `.ecdc` stream at a time.
const ECDC_PIECE_FRAMES: usize = 1 << 10;

impl Encodec {
    /// Encode the audio of `reader` at `bandwidth` kbps (`None`: the model's smallest): its blocks go through
    /// a [`crate::codec::StreamEncoder`] (converted to the model's channels and rate, pushed to the model in
    /// blocks of 16 384 frames); `sink` receives the codes as they are final, segment by segment. The codes
    /// equal [`Encodec::encode`]'s on the whole file.
    ///
    /// The sink's error type is the caller's (an `anyhow::Error`, a boxed error): large error types in closures
    /// are costly.
    pub fn encode_stream<E: From<CodecError> + From<EncodecError>>(
        &self,
        reader: &mut AudioReader,
        bandwidth: Option<f64>,
        sink: &mut CodeSink<'_, E>,
    ) -> Result<StreamSummary, E> {
        let audio = |e: AudioError| E::from(CodecError::from(e));
        let mut encoder = self
            .encoder(bandwidth, reader.sample_rate(), reader.channels())?
            .with_gather(PUSH_FRAMES);
        while let Some(block) = reader.next_block().map_err(audio)? {
            encoder.push(block, sink)?;
        }
        encoder.finish(sink)
    }

    /// Samples per channel [`Encodec::decode_stream`] hands out for `segments`.
    pub fn decoded_length(&self, segments: &[SegmentRef<'_>], audio_length: usize) -> usize {
        self.model.decoded_length(segments, audio_length)
    }

    /// Decode segments of codes (checked first) to audio at the model's rate, cut to `audio_length` samples,
    /// handing `sink` planar blocks (`[channel][frame]`, and the frame count) as they are final. Returns the
    /// samples per channel handed out ([`Encodec::decoded_length`]). The samples equal [`Encodec::decode`]'s.
    pub fn decode_stream<E: From<EncodecError>>(
        &self,
        segments: &[SegmentRef<'_>],
        num_codebooks: usize,
        audio_length: usize,
        sink: &mut AudioSink<'_, E>,
    ) -> Result<usize, E> {
        self.model
            .decode_stream(segments, num_codebooks, audio_length, sink)
    }
}

impl Encodec {
    /// A push decoder ([`DecodeStream`]) for codes of `num_codebooks` codebooks: push code frames as they
    /// arrive, receive the samples that are final; the audio is cut to `audio_length` when given. The samples
    /// equal [`Encodec::decode`]'s.
    pub fn decoder(
        &self,
        num_codebooks: usize,
        audio_length: Option<usize>,
    ) -> Result<DecodeStream<'_>, CodecError> {
        Ok(DecodeStream::new(&self.model, num_codebooks, audio_length)?)
    }

    /// Decode an `.ecdc` stream as it is read (its header already read by [`EcdcReader::new`]), handing `sink`
    /// planar blocks as they are final: memory holds a piece of codes and a tile of the decoder, whatever the
    /// length. Returns the samples per channel handed out (the header's audio length). The file's model must
    /// have this model's layout.
    pub fn decode_ecdc_stream<R: Read, E: From<CodecError> + From<EncodecError>>(
        &self,
        reader: &mut EcdcReader<R>,
        sink: &mut AudioSink<'_, E>,
    ) -> Result<usize, E> {
        let expected = self.ecdc_model()?;
        if reader.model() != expected {
            return Err(CodecError::Codes(format!(
                "the file was written by {}, but this model has the layout of {}",
                reader.model().name,
                expected.name
            ))
            .into());
        }
        let mut stream = self.decoder(reader.num_codebooks(), Some(reader.audio_length()))?;
        while let Some(piece) = reader
            .next_piece(ECDC_PIECE_FRAMES)
            .map_err(|e| E::from(CodecError::from(e)))?
        {
            match piece {
                EcdcPiece::Frames { codes, frames } => {
                    stream.push(CodesRef::U16(codes), frames, sink)?;
                }
                EcdcPiece::EndSegment { scale } => stream.end_segment(scale, sink)?,
            }
        }
        stream.finish(sink)
    }
}

impl AudioCodes {
    /// The chunks as segments for [`Encodec::decode_stream`] (no copy).
    pub fn segment_refs(&self) -> Vec<SegmentRef<'_>> {
        self.chunks
            .iter()
            .map(|c| SegmentRef {
                codes: CodesRef::I64(&c.codes),
                frames: c.frames,
                scale: c.scale,
            })
            .collect()
    }
}

/// The segments of an `.ecdc` file for [`Encodec::decode_stream`] (no copy of its 16-bit codes).
pub fn ecdc_segment_refs(file: &EcdcFile) -> Vec<SegmentRef<'_>> {
    file.segments
        .iter()
        .map(|s| SegmentRef {
            codes: CodesRef::U16(&s.codes),
            frames: s.frames(),
            scale: s.scale,
        })
        .collect()
}

/// The codes of [`Encodec::encode_stream`] gathered in 32 bits per code (a quarter of [`AudioCodes`]' `i64`):
/// segment by segment, codebook-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactCodes {
    /// Finished segments: codes `[n_q][frames]`, frames, scale.
    pub segments: Vec<(Vec<u32>, usize, Option<f32>)>,
    /// Codebooks per frame.
    pub num_codebooks: usize,
    /// The current segment's codes, one row per codebook.
    rows: Vec<Vec<u32>>,
}

impl CompactCodes {
    /// Take one event of [`Encodec::encode_stream`].
    pub fn push(&mut self, event: CodeEvent<'_>) -> Result<(), CodecError> {
        match event {
            CodeEvent::Frames { codes, frames } => {
                let k = codes.len().checked_div(frames).unwrap_or(0);
                if self.rows.is_empty() {
                    self.rows = vec![Vec::new(); k];
                    self.num_codebooks = k;
                }
                if k != self.num_codebooks || k * frames != codes.len() {
                    return Err(CodecError::Codes(format!(
                        "{} codes in a piece of {frames} frames of {} codebooks",
                        codes.len(),
                        self.num_codebooks
                    )));
                }
                for (row, piece) in self.rows.iter_mut().zip(codes.chunks_exact(frames)) {
                    for &c in piece {
                        row.push(u32::try_from(c).map_err(|_| {
                            CodecError::Codes(format!("code {c} does not fit 32 bits"))
                        })?);
                    }
                }
            }
            CodeEvent::EndSegment { scale } => {
                let frames = self.rows.first().map_or(0, Vec::len);
                let codes = self.rows.iter_mut().flat_map(std::mem::take).collect();
                self.rows.clear();
                self.segments.push((codes, frames, scale));
            }
        }
        Ok(())
    }

    /// The segments for [`Encodec::decode_stream`].
    pub fn segment_refs(&self) -> Vec<SegmentRef<'_>> {
        self.segments
            .iter()
            .map(|(codes, frames, scale)| SegmentRef {
                codes: CodesRef::U32(codes),
                frames: *frames,
                scale: *scale,
            })
            .collect()
    }

    /// As [`AudioCodes`] of `audio_length` samples (HF's tensor form goes through it).
    pub fn to_audio_codes(&self, audio_length: usize) -> AudioCodes {
        AudioCodes {
            chunks: self
                .segments
                .iter()
                .map(|(codes, frames, scale)| ChunkCodes {
                    codes: codes.iter().map(|&c| i64::from(c)).collect(),
                    frames: *frames,
                    scale: *scale,
                })
                .collect(),
            num_codebooks: self.num_codebooks,
            audio_length,
        }
    }
}
