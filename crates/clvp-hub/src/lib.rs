//! Checkpoint files and weights: local directories, the Hugging Face cache layout, downloads, and
//! safetensors / PyTorch checkpoints loaded into burn modules with strict validation.
//!
//! ```text
//! --model ARG ──Source::parse──► Local(dir) | Hub(owner/name@rev)
//!                                      │            │ HubCache (HF_HUB_CACHE / HF_HOME/hub / ~/.cache/huggingface/hub)
//!                                      │            │ else hf-hub download (HF_ENDPOINT, progress bar), etag-verified
//!                                      ▼            ▼
//!                                   Checkpoint ── config() / generation_config() / tokenizer_files() / weights()
//!                                                                                      │
//!  Weights (mmap'd safetensors, shards, pytorch_model.bin; F32/F16/BF16 → f32) ◄───────┘
//!        │  weight-norm folding (norms), NameMap table (remap): transposes, LSTM gates (lstm), ignores
//!        ▼
//!  load_module(module, &weights, &map) → module with every parameter filled, or LoadError listing every problem
//! ```
//!
//! * [`source`]: the model argument (directory or hub id, revision).
//! * [`cache`]: the hub cache layout and [`HubOptions`] from the environment.
//! * [`download`](crate::Checkpoint::file): files fetched with `hf-hub` and checked against their etag.
//! * [`checkpoint`]: [`Checkpoint`], typed access to a checkpoint's files.
//! * [`config`]: [`JsonConfig`] and [`JsonConfigError::Inconsistent`] for model configs' checks.
//! * [`weights`]: [`Weights`], every stored tensor read lazily.
//! * [`remap`]: [`NameMap`], one documented key table per model.
//! * [`convert`]: [`Conversion`], an original checkpoint (Tortoise's `.pth`) under a converted checkpoint's keys.
//! * [`norms`], [`lstm`]: weight-norm folding and LSTM gate splitting.
//! * [`load`]: [`load_module`], strict loading into a burn module through `burn::store`.
//! * [`kind`]: [`ModelKind`], what a checkpoint is (an EnCodec checkpoint given to CLVP is named as such).
//!
//! What burn-store (0.22.1) does and why it is only partly used here:
//! * `PyTorchToBurnAdapter` transposes the weight of **every** module whose type is `Linear`, and
//!   `PytorchStore` always applies it: a GPT-2 `Conv1D` loaded into a burn `Linear` would be transposed
//!   wrongly. It also renames `weight`/`bias` to `gamma`/`beta` for norm layers.
//! * `PytorchStore` renumbers list indices to be contiguous by default (EnCodec's `layers.{0,1,3}`
//!   would become `{0,1,2}`); `SafetensorsStore` does not.
//! * The applier keeps the **source** dtype (an F16 tensor becomes an F16 parameter) and checks only
//!   the shape, reporting problems in an `ApplyResult` rather than failing.
//! * Adapters see one tensor at a time, so weight-norm folding (two tensors → one) and LSTM splitting
//!   (one → four) cannot be adapters.
//!
//! So this crate reads the files itself (safetensors via memmap2, PyTorch via burn-store's
//! `pytorch_reader`), maps names with its own table, validates everything up front, and hands burn
//! `ModuleSnapshot::apply` deferred f32 tensors with no adapter.
//!
//! An f32 safetensors tensor that needs no rearranging is not copied: the parameter is a view of the
//! memory map (burn's shared bytes, copy-on-write). Loading reads each such tensor once to check that every
//! value is finite (as every weight is checked), then hands its pages back, so pages come in again as a
//! computation first touches them. The map stays open while any such parameter lives, so a
//! checkpoint file must not be rewritten in place while a model loaded from it is in use (the hub
//! cache never does; its blobs are immutable).

pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod convert;
pub mod device;
#[cfg(feature = "download")]
mod download;
mod entry;
pub mod error;
pub mod kind;
pub mod load;
pub mod lstm;
pub mod norms;
mod pytorch;
pub mod remap;
mod safetensors;
pub mod source;
pub mod weights;

pub use cache::{DEFAULT_ENDPOINT, HubCache, HubOptions};
pub use checkpoint::{Checkpoint, TokenizerFiles};
pub use config::{JsonConfig, inconsistent};
pub use convert::{Conversion, Relayout};
pub use device::is_cpu;
pub use error::{
    DownloadError, HubError, JsonConfigError, LoadError, ShapeMismatch, SourceError, WeightsError,
};
pub use kind::ModelKind;
pub use load::{LoadReport, load_module, load_module_with_report};
pub use remap::{Layout, NameMap, Rule};
pub use source::{DEFAULT_REVISION, HubId, Source};
pub use weights::{MappedPages, SourceDtype, TensorEntry, WeightFormat, Weights};
