//! The CLVP networks in burn, reproducing transformers 5.23 `modeling_clvp.py`:
//!
//! * [`ClvpEncoder`] — the text and speech encoders;
//! * [`ClvpConditioningEncoder`] — voice clip + text → conditioning embeddings;
//! * [`ClvpForCausalLM`] — the GPT-2-style speech decoder, with a preallocated [`KvCache`] kept outside;
//! * [`ClvpConfig`] — the checkpoint's `config.json`, with HF's defaults and consistency checks.
//!
//! Field names mirror the HF weight keys, so loading a checkpoint is close to an identity map.

pub mod attention;
pub mod conditioning;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod generate;
pub mod host;
pub mod linear;
pub mod model;
pub mod rotary;
pub mod torch_order;

pub use conditioning::{ClvpConditioningEncoder, pad_extra_bos_eos};
pub use config::{ClvpConfig, ClvpDecoderConfig, ClvpEncoderConfig, ConfigError};
pub use decoder::{ClvpDecoder, ClvpDecoderLayer, ClvpForCausalLM, ClvpModel, KvCache};
pub use encoder::{ClvpEncoder, ClvpEncoderOutput};
pub use error::NnError;
pub use generate::{
    EarlyStopping, GenerateOutput, GenerationConfig, PrefillPositions, TORTOISE_PROMPT_ID,
    apply_logits_processors, apply_repetition_penalty, apply_top_k, apply_top_p,
    fix_speech_decoder_output, generate, generate_with_progress, length_penalty_range,
    pad_to_max_mel_tokens, teacher_forced_logits,
};
pub use model::tortoise;
pub use model::{
    ClvpModelForConditionalGeneration, ClvpOutput, Embeddings, LoadModelError, LoadedClvp,
    clvp_name_map,
};
pub use tortoise::{AUTOREGRESSIVE_FILE, CLVP_FILE, tortoise_conversion, tortoise_files};
