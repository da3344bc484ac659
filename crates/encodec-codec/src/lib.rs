//! EnCodec neural audio codec in burn: SEANet encoder/decoder, residual VQ, the 24/48/32 kHz models
//! and Meta's `.ecdc` container.
//!
//! ```text
//! audio [B, C, L] ─► EncodecModel::encode ─► chunks (config.chunk_length / chunk_stride, else one)
//!                      │ per chunk: × padding mask, RMS scale (normalize), EncodecEncoder → latent [B, D, T]
//!                      │            EncodecResidualVectorQuantizer::encode (n_q from the bandwidth)
//!                      ▼
//!                    EncodedAudio { audio_codes [chunks, B, n_q, T], audio_scales, last_frame_pad_length }
//!                      │ EncodecModel::decode: RVQ decode → EncodecDecoder → × scale → overlap-add → trim
//!                      ▼
//!                    audio [B, C, L']
//! ```
//!
//! * [`config`]: [`EncodecConfig`] from `config.json`, derived values, checks.
//! * [`conv`]: `EncodecConv1d` / `EncodecConvTranspose1d` with EnCodec's padding (reflect + workaround).
//! * [`lstm`], [`seanet`], [`quantizer`]: the networks; on a CPU backend the SEANet stacks run on host
//!   kernels (`gemm` on shifted views, fused ELU and padding) unless [`EncodecModel::set_host_kernels`] turns
//!   them off.
//! * [`feature_extractor`]: `EncodecFeatureExtractor`'s chunk-aware padding and mask.
//! * [`model`]: [`EncodecModel`], the name tables (transformers' keys and Meta's own `.th` files), loading.
//! * [`ecdc`]: Meta's `.ecdc` container (raw mode).
//! * [`codes`]: codes on the host ([`AudioCodes`]) and the moves between them, HF's tensors ([`HfCodes`]) and
//!   `.ecdc` files.
//! * [`streaming`]: one clip as a stream: [`EncodeStream`] (PCM pushed, codes out as they are final) and
//!   [`EncodecModel::decode_stream`] (codes in, audio out block by block), in bounded memory.

pub mod codes;
pub mod config;
pub mod conv;
pub mod ecdc;
pub mod error;
pub mod feature_extractor;
mod host;
pub mod lstm;
pub mod model;
pub mod quantizer;
mod readback;
pub mod seanet;
pub mod stream;
pub mod streaming;

pub use codes::{AudioCodes, ChunkCodes, CodesError, CompactCodes, HfCodes};
pub use config::{EncodecConfig, NormType, PadMode};
pub use error::{EncodecError, check_scale, is_valid_scale};
pub use feature_extractor::{EncodecFeatureExtractor, FeatureBatch, PadOptions, Padding};
pub use model::{EncodecModel, EncodedAudio, EncodedSegment, encodec_name_map, meta_name_map};
pub use streaming::{CodeEvent, CodesRef, DecodeStream, EncodeStream, SegmentRef, StreamSummary};
