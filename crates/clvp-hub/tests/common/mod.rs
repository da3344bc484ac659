//! Shared by the integration tests: the burn twin of `xtask/python/ref_hub.py`'s module, its name
//! table, the reference comparison, and a helper that lays files out as a hub cache.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, Lstm, LstmConfig,
};
use burn::tensor::{Device, Int, Tensor, TensorData};
use clvp_hub::{Layout, NameMap};
use clvp_parity::{FixtureTensor, Recorder, compare, fixture_path, read_safetensors, tolerance};

/// The repository id the hub tests use.
pub const REPO: &str = "clvp-test/hub-ref";
/// The commit the hub tests pretend the repository is at.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// EnCodec-style codebook buffers: only `embed` is a parameter.
#[derive(Module, Debug)]
pub struct Codebook {
    pub embed: Param<Tensor<2>>,
}

/// The burn twin of `HubRefModel` in `ref_hub.py` (random init: every value must come from the file).
#[derive(Module, Debug)]
pub struct HubRef {
    pub linear: Linear,
    pub c_fc: Linear,
    pub embedding: Embedding,
    pub layer_norm: LayerNorm,
    pub wn_old: Conv1d,
    pub wn_new: Conv1d,
    pub wn_tr: ConvTranspose1d,
    pub lstm: Vec<Lstm>,
    pub codebook: Codebook,
}

impl HubRef {
    pub fn new(device: &Device) -> Self {
        HubRef {
            linear: LinearConfig::new(6, 5).init(device),
            c_fc: LinearConfig::new(6, 7).init(device),
            embedding: EmbeddingConfig::new(11, 6).init(device),
            layer_norm: LayerNormConfig::new(6).init(device),
            wn_old: Conv1dConfig::new(4, 5, 3).init(device),
            wn_new: Conv1dConfig::new(4, 5, 3).init(device),
            wn_tr: ConvTranspose1dConfig::new([5, 4], 4)
                .with_stride(2)
                .init(device),
            lstm: (0..2)
                .map(|_| {
                    LstmConfig::new(6, 6, true)
                        .with_batch_first(false)
                        .init(device)
                })
                .collect(),
            codebook: Codebook {
                embed: Param::from_tensor(Tensor::zeros([8, 6], device)),
            },
        }
    }
}

/// The `hub_ref` name table: one row per key family, as a model crate would write it.
///
/// | checkpoint key | burn path | layout |
/// |---|---|---|
/// | `linear.weight` | `linear.weight` | transposed (nn.Linear) |
/// | `mlp.c_fc.{weight,bias}` | `c_fc.*` | as is (GPT-2 Conv1D is already [in, out]) |
/// | `layer_norm.{weight,bias}` | `layer_norm.{gamma,beta}` | as is |
/// | `wn_*.{weight,bias}` (weight folded from g/v) | same | as is |
/// | `lstm.{weight,bias}_{ih,hh}_l{k}` | `lstm.{k}.{gate}.{input,hidden}_transform.*` | LSTM gates |
/// | `codebook.{inited,cluster_size,embed_avg}` | — | ignored |
pub fn table() -> NameMap {
    NameMap::new("hub_ref")
        .rule(r"linear\.weight", "linear.weight", Layout::Transpose)
        .rule(r"linear\.bias", "linear.bias", Layout::AsIs)
        .rule(r"mlp\.c_fc\.(weight|bias)", "c_fc.$1", Layout::AsIs)
        .rule(r"embedding\.weight", "embedding.weight", Layout::AsIs)
        .rule(r"layer_norm\.weight", "layer_norm.gamma", Layout::AsIs)
        .rule(r"layer_norm\.bias", "layer_norm.beta", Layout::AsIs)
        .rule(
            r"(wn_old|wn_new|wn_tr)\.(weight|bias)",
            "$1.$2",
            Layout::AsIs,
        )
        .rule(
            r"lstm\.(?:weight|bias)_(?:ih|hh)_l(\d+)",
            "lstm.$1",
            Layout::LstmGates,
        )
        .rule(r"codebook\.embed", "codebook.embed", Layout::AsIs)
        // The EMA buffers of EnCodec's codebooks, as encodec-codec's table ignores them.
        .ignore(r"(?:.*\.)?codebook\.(inited|cluster_size|embed_avg)")
}

pub fn device() -> Device {
    Device::flex()
}

pub fn hub_fixture(rel: &str) -> PathBuf {
    fixture_path(&format!("hub/{rel}"))
}

pub fn reference(variant: &str) -> HashMap<String, FixtureTensor> {
    let path = hub_fixture(&format!("reference_{variant}.safetensors"));
    read_safetensors(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn float<const D: usize>(t: &FixtureTensor, device: &Device) -> Tensor<D> {
    let v: Vec<f32> = t.f64.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, t.shape.clone()), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap_or_else(|e| panic!("{e:?}"))
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Run every sub-module on the reference inputs and record each output against the reference.
pub fn check_outputs(m: &HubRef, variant: &str, rec: &mut Recorder, case: &str) {
    let r = reference(variant);
    let d = device();
    let get = |k: &str| r.get(k).unwrap_or_else(|| panic!("reference has no {k}"));
    let tol = tolerance("hub");
    let mut record = |name: &str, ours: Vec<f64>| {
        let c = compare(&ours, &get(name).f64, tol);
        rec.record(&format!("{case}/{name}"), &c);
    };
    record(
        "linear.output",
        values(m.linear.forward(float::<2>(get("linear.input"), &d))),
    );
    record(
        "c_fc.output",
        values(m.c_fc.forward(float::<2>(get("c_fc.input"), &d))),
    );
    let ids = get("embedding.ids");
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids.i64.clone(), ids.shape.clone()), &d);
    record("embedding.output", values(m.embedding.forward(ids)));
    record(
        "layer_norm.output",
        values(
            m.layer_norm
                .forward(float::<2>(get("layer_norm.input"), &d)),
        ),
    );
    record(
        "wn_old.output",
        values(m.wn_old.forward(float::<3>(get("conv.input"), &d))),
    );
    record(
        "wn_new.output",
        values(m.wn_new.forward(float::<3>(get("conv.input"), &d))),
    );
    record(
        "wn_tr.output",
        values(m.wn_tr.forward(float::<3>(get("wn_tr.input"), &d))),
    );
    record("wn_old.weight", values(m.wn_old.weight.val()));
    record("wn_new.weight", values(m.wn_new.weight.val()));
    record("wn_tr.weight", values(m.wn_tr.weight.val()));
    let mut h = float::<3>(get("lstm.input"), &d);
    for layer in &m.lstm {
        h = layer.forward(h, None).0;
    }
    record("lstm.output", values(h));
    record("codebook.embed", values(m.codebook.embed.val()));
}

/// Lay `files` (name → source file) out as the hub cache of [`REPO`] at [`COMMIT`], `refs/main` included,
/// with blobs and relative snapshot links as huggingface_hub writes them.
pub fn make_cache(root: &Path, files: &[(&str, PathBuf)]) {
    let repo = root.join(format!("models--{}", REPO.replace('/', "--")));
    let blobs = repo.join("blobs");
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&blobs).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(repo.join("refs")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(repo.join("refs").join("main"), COMMIT).unwrap_or_else(|e| panic!("{e}"));
    for (name, src) in files {
        let blob = blobs.join(format!("blob-{}", name.replace('/', "_")));
        std::fs::copy(src, &blob).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let link = snap.join(name);
        let parent = link.parent().unwrap_or(&snap);
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        let depth = name.matches('/').count() + 2;
        let target = PathBuf::from("../".repeat(depth))
            .join("blobs")
            .join(blob.file_name().unwrap_or_default());
        std::os::unix::fs::symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Every file of a fixture directory, for [`make_cache`].
pub fn dir_files(dir: &str) -> Vec<(String, PathBuf)> {
    let d = hub_fixture(dir);
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
        .collect();
    v.sort();
    v
}

/// A safetensors file's tensors as raw bytes (name, dtype, shape, data), sorted by name.
pub type Raw = Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>;

/// The tensors of the safetensors file at `path`.
pub fn read_raw(path: &Path) -> Raw {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut v: Raw = st
        .tensors()
        .into_iter()
        .map(|(k, t)| (k, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Write `raw` as a safetensors file at `path`.
pub fn write_raw(path: &Path, raw: &Raw) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = raw
        .iter()
        .map(|(k, d, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b)
                    .unwrap_or_else(|e| panic!("{k}: {e}")),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
}
