//! EnCodec on streams: audio read block by block from an [`AudioReader`] (a file, a pipe, stdin), converted to
//! the model's channels and rate block by block and encoded as it comes; codes decoded to a sink block by
//! block. Memory stays at a block's worth of audio whatever the length; the codes and samples are those of
//! [`Encodec::encode`] and [`Encodec::decode`] on the whole clip.

use clvp_audio::{AudioError, AudioReader};
use std::io::Read;

use encodec_codec::ecdc::{EcdcFile, EcdcPiece, EcdcReader};
use encodec_codec::streaming::{AudioSink, CodeSink};
use encodec_codec::{CodesRef, DecodeStream, EncodecError, SegmentRef, StreamSummary};

use super::{CodecError, Encodec};

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

/// The segments of an `.ecdc` file for [`Encodec::decode_stream`] (no copy of its 16-bit codes):
/// [`EcdcFile::segment_refs`].
pub fn ecdc_segment_refs(file: &EcdcFile) -> Vec<SegmentRef<'_>> {
    file.segment_refs()
}
