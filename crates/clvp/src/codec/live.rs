//! Live EnCodec: audio of any rate and channel count pushed as it arrives ([`StreamEncoder`]), and the
//! latency knob of both stream directions ([`Encodec::set_stream_frames`]).

use clvp_audio::{AudioError, StreamResampler, convert_channels};
use encodec_codec::streaming::CodeSink;
use encodec_codec::{EncodeStream, EncodecError, StreamSummary};

use super::{CodecError, Encodec};

/// An [`EncodeStream`] with encodec's `convert_audio` in front: push planar blocks of the input's own rate and
/// channel count, of any size, as they arrive; each block is brought to the model's channels
/// ([`convert_channels`]) and rate ([`StreamResampler`], which gives the samples of the whole-clip resampler)
/// and pushed on, and the sink receives the code frames that are final. The codes equal [`Encodec::encode`]'s on
/// the whole clip, however the input is cut.
///
/// A block is pushed to the model once `gather` converted frames are waiting ([`StreamEncoder::with_gather`];
/// 0, the default, pushes every block at once: the lowest latency).
pub struct StreamEncoder<'m> {
    stream: EncodeStream<'m>,
    resampler: StreamResampler,
    input_channels: usize,
    channels: usize,
    converted: Vec<Vec<f32>>,
    gather: usize,
}

impl std::fmt::Debug for StreamEncoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncoder")
            .field("stream", &self.stream)
            .field("input_channels", &self.input_channels)
            .field("gather", &self.gather)
            .finish_non_exhaustive()
    }
}

impl Encodec {
    /// A [`StreamEncoder`] at `bandwidth` kbps (`None`: the model's smallest) for input of `input_rate` Hz and
    /// `input_channels` channels.
    pub fn encoder(
        &self,
        bandwidth: Option<f64>,
        input_rate: u32,
        input_channels: usize,
    ) -> Result<StreamEncoder<'_>, CodecError> {
        let channels = self.channels();
        if input_channels == 0 {
            return Err(CodecError::Audio(AudioError::ChannelConversion {
                from: 0,
                to: channels,
            }));
        }
        if input_channels != channels && channels != 1 && input_channels != 1 {
            return Err(CodecError::Audio(AudioError::ChannelConversion {
                from: input_channels,
                to: channels,
            }));
        }
        Ok(StreamEncoder {
            stream: EncodeStream::new(&self.model, bandwidth)?,
            resampler: StreamResampler::new(input_rate, self.sample_rate(), channels)?,
            input_channels,
            channels,
            converted: vec![Vec::new(); channels],
            gather: 0,
        })
    }

    /// Code frames per block of the stream encoder and decoder (the model's tile; default 2^16 samples'
    /// worth, 204 frames at 24 kHz). A block runs once its frames are in, so this is their latency: 1 hands out
    /// each code frame (encoder) and each frame's samples (decoder) as soon as what it depends on has arrived,
    /// at the cost of recomputing the convolutions' margins for every block (`docs/streaming.md` measures
    /// both). The codes and samples are the same whatever the value. Chunked models (48 kHz) stream chunk by
    /// chunk whatever it is.
    pub fn set_stream_frames(&mut self, frames: usize) {
        self.model.set_stream_frames(frames);
    }
}

impl StreamEncoder<'_> {
    /// Push converted frames to the model in blocks of at least `frames` (the last block of the clip may be
    /// shorter): fewer, larger pushes cost less per sample, more latency.
    pub fn with_gather(mut self, frames: usize) -> Self {
        self.gather = frames;
        self
    }

    /// Input frames taken so far, at the model's rate (after conversion).
    pub fn pushed(&self) -> usize {
        self.stream.pushed()
    }

    /// Push one planar block (`[channel][frame]`, the input's channel count, every channel the same length)
    /// and hand `sink` the code frames that are final.
    pub fn push<S: AsRef<[f32]>, E: From<CodecError> + From<EncodecError>>(
        &mut self,
        block: &[S],
        sink: &mut CodeSink<'_, E>,
    ) -> Result<(), E> {
        let audio = |e: AudioError| E::from(CodecError::from(e));
        if block.len() != self.input_channels {
            return Err(E::from(CodecError::Input(format!(
                "a block of {} channels pushed to a stream of {}",
                block.len(),
                self.input_channels
            ))));
        }
        let len = block.first().map_or(0, |c| c.as_ref().len());
        if block.iter().any(|c| c.as_ref().len() != len) {
            return Err(E::from(CodecError::Input(
                "the channels of a pushed block differ in length".into(),
            )));
        }
        let bad = block.iter().enumerate().find_map(|(c, x)| {
            x.as_ref()
                .iter()
                .position(|v| !v.is_finite())
                .map(|t| (c, t))
        });
        if let Some((channel, frame)) = bad {
            return Err(E::from(CodecError::Input(format!(
                "a pushed block holds a non-finite sample (channel {channel}, frame {frame} of the block)"
            ))));
        }
        let block = convert_channels(block, self.channels).map_err(audio)?;
        self.resampler
            .push(&block, &mut self.converted)
            .map_err(audio)?;
        if self.converted[0].len() > self.gather.saturating_sub(1) && !self.converted[0].is_empty()
        {
            self.stream.push(&self.converted, sink)?;
            self.converted.iter_mut().for_each(Vec::clear);
        }
        Ok(())
    }

    /// The end of the input: flush the resampler and the encoder (the last frame's padding as the whole pass
    /// treats it) and hand out the rest of the codes.
    pub fn finish<E: From<CodecError> + From<EncodecError>>(
        mut self,
        sink: &mut CodeSink<'_, E>,
    ) -> Result<StreamSummary, E> {
        let audio = |e: AudioError| E::from(CodecError::from(e));
        self.resampler.finish(&mut self.converted).map_err(audio)?;
        self.stream.push(&self.converted, sink)?;
        self.stream.finish(sink)
    }
}
