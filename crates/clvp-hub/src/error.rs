//! Typed errors of the crate: each names the file, the key and what was expected against what was found.

use std::path::PathBuf;

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The `--model` / `from_pretrained` argument could not be resolved.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A file could not be fetched from the hub.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// A JSON configuration file is unreadable or inconsistent.
    #[error(transparent)]
    Config(#[from] JsonConfigError),
    /// A weights file is unreadable or malformed.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The weights do not fit the module they are loaded into (boxed: it carries shapes and paths).
    #[error(transparent)]
    Load(#[from] Box<LoadError>),
    /// The checkpoint is of another model (an EnCodec checkpoint given to CLVP, say).
    #[error("{location} is {found}, not {expected} ({evidence})")]
    WrongModel {
        /// The checkpoint (directory, hub id or weights file).
        location: String,
        /// What the model it was given to loads (`a CLVP checkpoint`, `an EnCodec checkpoint`).
        expected: String,
        /// What it is (`an EnCodec checkpoint`, a `` `bert` checkpoint ``).
        found: String,
        /// How that was found (`config.json has model_type "encodec"`).
        evidence: String,
    },
}

impl From<LoadError> for HubError {
    fn from(e: LoadError) -> Self {
        HubError::Load(Box::new(e))
    }
}

/// A model argument that is neither a local directory nor a usable hub id, or a file it lacks.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The argument is not an existing directory and not of the form `owner/name[@revision]`.
    #[error(
        "`{spec}` is not a local directory and not a hub id (`owner/name` or `owner/name@revision`): {reason}"
    )]
    Invalid {
        /// The argument as given.
        spec: String,
        /// Why it was rejected.
        reason: String,
    },
    /// `owner/name@rev` and an explicit revision disagree.
    #[error("`{spec}` names revision `{in_spec}` but revision `{explicit}` was also requested")]
    ConflictingRevision {
        /// The argument as given.
        spec: String,
        /// The revision after `@`.
        in_spec: String,
        /// The explicit revision.
        explicit: String,
    },
    /// Offline (`HF_HUB_OFFLINE`) and the revision is not in the cache.
    #[error(
        "{repo}@{revision} is not in the Hugging Face cache at {cache} and downloads are disabled (HF_HUB_OFFLINE); \
         run once online or point HF_HUB_CACHE at a cache that has it"
    )]
    NotCached {
        /// The hub repository id.
        repo: String,
        /// The requested revision.
        revision: String,
        /// The cache root that was searched.
        cache: PathBuf,
    },
    /// A required file is absent from the checkpoint.
    #[error("{file} not found in {location}")]
    MissingFile {
        /// The file name inside the checkpoint.
        file: String,
        /// The directory or `repo@revision` that was searched.
        location: String,
    },
    /// No home directory to derive the default cache from.
    #[error(
        "cannot locate the Hugging Face cache: HF_HUB_CACHE and HF_HOME are unset and there is no home directory"
    )]
    NoCacheDir,
}

/// A failed or corrupted download.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The hub client reported an error (network, HTTP status, missing headers, I/O).
    #[error("downloading {file} of {repo}@{revision} from {url} failed: {message}")]
    Request {
        /// The hub repository id.
        repo: String,
        /// The requested revision.
        revision: String,
        /// The file name.
        file: String,
        /// The resolve URL.
        url: String,
        /// The client's error.
        message: String,
    },
    /// The downloaded bytes do not match the hash the server announced (etag); the file was removed.
    #[error(
        "downloaded {file} of {repo} is corrupted: {check} expected {expected}, found {found}; the file was removed from the cache"
    )]
    Corrupted {
        /// The hub repository id.
        repo: String,
        /// The file name.
        file: String,
        /// Which check failed (`sha256`, `git-sha1`).
        check: &'static str,
        /// The announced value.
        expected: String,
        /// The value of the bytes on disk.
        found: String,
    },
    /// The file is not in the hub cache, and this build cannot download (clvp-hub without its `download`
    /// feature, i.e. `clvp` without `hub`).
    #[error(
        "{file} of {repo}@{revision} is not in the Hugging Face cache, and this build has no downloads (built \
         without the `hub` feature of clvp): fetch it elsewhere into the cache, or give a local directory"
    )]
    Disabled {
        /// The hub repository id.
        repo: String,
        /// The requested revision.
        revision: String,
        /// The file name.
        file: String,
    },
    /// Reading back or cleaning up a downloaded file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A configuration file (`config.json`, `generation_config.json`, ...) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JsonConfigError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{file} is not valid JSON (line {line}, column {column}): {message}")]
    NotJson {
        /// The file.
        file: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The file is JSON but not an object.
    #[error("{file} must hold a JSON object, found {found}")]
    NotObject {
        /// The file.
        file: PathBuf,
        /// The JSON type found (`array`, `string`, ...).
        found: &'static str,
    },
    /// A field has the wrong type or a required field is missing.
    #[error("{file}: field `{field}`: {message}")]
    Field {
        /// The file.
        file: PathBuf,
        /// The field (dotted path where known).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Fields that are each valid but cannot work together (e.g. heads not dividing the hidden size).
    #[error("{file}: field `{field}` is inconsistent: {message}")]
    Inconsistent {
        /// The file.
        file: PathBuf,
        /// The offending field.
        field: String,
        /// Why the values cannot work together.
        message: String,
    },
}

/// A weights file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be opened or mapped.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a (complete) safetensors file.
    #[error("{file} is not a valid safetensors file: {message}")]
    NotSafetensors {
        /// The file.
        file: PathBuf,
        /// What the parser found (truncation, bad header, ...).
        message: String,
    },
    /// The PyTorch checkpoint could not be parsed or a tensor could not be read.
    #[error("{file} is not a readable PyTorch checkpoint: {message}")]
    Pytorch {
        /// The file.
        file: PathBuf,
        /// The reader's message.
        message: String,
    },
    /// The sharded index is not of the form `{"weight_map": {key: shard}}`.
    #[error("{file} is not a valid safetensors index: {message}")]
    BadIndex {
        /// The index file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The index names a shard file that does not exist.
    #[error("{index} maps `{key}` to shard {shard}, which does not exist")]
    MissingShard {
        /// The index file.
        index: PathBuf,
        /// The first key that lives in the shard.
        key: String,
        /// The shard file name.
        shard: String,
    },
    /// The index maps a key to a shard that does not contain it.
    #[error("{index} maps `{key}` to {shard}, but that shard has no such tensor")]
    KeyNotInShard {
        /// The index file.
        index: PathBuf,
        /// The key.
        key: String,
        /// The shard file.
        shard: PathBuf,
    },
    /// A shard holds a tensor the index does not list (or two files hold the same key).
    #[error("`{key}` appears in {file} but the checkpoint already has it from {other}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// The file with the second copy.
        file: PathBuf,
        /// The file with the first copy.
        other: PathBuf,
    },
    /// A tensor's dtype cannot be converted to the compute dtype.
    #[error(
        "{file}: tensor `{key}` has dtype {dtype}; only F32, F16, BF16 and F64 weights are supported"
    )]
    UnsupportedDtype {
        /// The file.
        file: PathBuf,
        /// The key.
        key: String,
        /// The dtype found.
        dtype: String,
    },
    /// A weight is NaN or infinite (an F64 value beyond float32's range becomes infinite): the model would
    /// compute NaN from it.
    #[error(
        "{file}: tensor `{key}` has {count} non-finite values (NaN or infinity), the first {value} at index \
         {index}: the weights are corrupt; re-download or re-export the checkpoint"
    )]
    NonFinite {
        /// The file.
        file: PathBuf,
        /// The key.
        key: String,
        /// How many values are not finite.
        count: usize,
        /// Flat index of the first.
        index: usize,
        /// The first (as float32).
        value: f32,
    },
    /// No weights file in the checkpoint.
    #[error(
        "no weights in {location}: looked for model.safetensors, model.safetensors.index.json and pytorch_model.bin"
    )]
    NoWeights {
        /// The directory or `repo@revision`.
        location: String,
    },
}

/// Weights that do not fit the module they are loaded into.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A module parameter has no tensor in the checkpoint.
    #[error(
        "{file}: missing key for `{target}` (expected shape {expected:?}): no checkpoint key maps there"
    )]
    MissingKey {
        /// The checkpoint (file or directory).
        file: PathBuf,
        /// The module parameter's path.
        target: String,
        /// The parameter's shape.
        expected: Vec<usize>,
    },
    /// A checkpoint tensor that no table row maps and that is not a known ignorable buffer.
    #[error(
        "{file}: unexpected key `{key}` (shape {shape:?}): no row of the `{model}` name table maps it"
    )]
    UnexpectedKey {
        /// The file holding it.
        file: PathBuf,
        /// The key.
        key: String,
        /// Its stored shape.
        shape: Vec<usize>,
        /// The name table used.
        model: String,
    },
    /// A table row maps a key to a parameter the module does not have.
    #[error("{file}: key `{key}` maps to `{target}`, which the module does not have")]
    UnknownTarget {
        /// The file holding the key.
        file: PathBuf,
        /// The key.
        key: String,
        /// The module path the table produced.
        target: String,
    },
    /// A tensor's shape does not fit the parameter (boxed to keep the error small).
    #[error("{0}")]
    ShapeMismatch(Box<ShapeMismatch>),
    /// A tensor cannot take the layout its table row asks for (e.g. transposing a rank-3 tensor).
    #[error("{file}: key `{key}` has shape {stored:?}, which cannot be {layout}: {message}")]
    Layout {
        /// The file holding the key.
        file: PathBuf,
        /// The key.
        key: String,
        /// The shape stored in the file.
        stored: Vec<usize>,
        /// The layout asked for.
        layout: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor's dtype cannot go into the parameter.
    #[error("{file}: key `{key}` has dtype {found}, `{target}` expects {expected}")]
    DtypeMismatch {
        /// The file holding the key.
        file: PathBuf,
        /// The key.
        key: String,
        /// The module path.
        target: String,
        /// The parameter's dtype.
        expected: String,
        /// The tensor's dtype.
        found: String,
    },
    /// Half of a weight-norm pair is missing, or the pair does not fit together.
    #[error("{file}: weight norm of `{prefix}`: {message}")]
    WeightNorm {
        /// The file holding the pair.
        file: PathBuf,
        /// The module prefix (`encoder.layers.0.conv`).
        prefix: String,
        /// What is wrong.
        message: String,
    },
    /// Two checkpoint keys land on the same parameter.
    #[error("`{target}` would be loaded twice: from `{first}` and from `{second}`")]
    DuplicateTarget {
        /// The module path.
        target: String,
        /// The first key.
        first: String,
        /// The second key.
        second: String,
    },
    /// A name-table row is malformed (a programming error in a model's table).
    #[error("name table `{model}`: row `{pattern}`: {message}")]
    BadTable {
        /// The name table.
        model: String,
        /// The row's pattern.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// Reading or converting a tensor failed.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// burn refused a tensor while applying it.
    #[error("applying `{target}`: {message}")]
    Apply {
        /// The module path.
        target: String,
        /// burn's message.
        message: String,
    },
    /// Several of the above at once (all listed).
    #[error("{} problems loading weights:\n  - {}", .0.len(), list(.0))]
    Many(Vec<LoadError>),
}

/// The details of [`LoadError::ShapeMismatch`].
#[derive(Debug, thiserror::Error)]
#[error(
    "{file}: key `{key}` has shape {stored:?} ({layout}: {found:?}) but `{target}` expects {expected:?}"
)]
pub struct ShapeMismatch {
    /// The file holding the key.
    pub file: PathBuf,
    /// The key.
    pub key: String,
    /// The module path.
    pub target: String,
    /// The shape stored in the file.
    pub stored: Vec<usize>,
    /// The layout applied (as stored, transposed, LSTM gate, weight norm).
    pub layout: String,
    /// The shape after the layout.
    pub found: Vec<usize>,
    /// The parameter's shape.
    pub expected: Vec<usize>,
}

fn list(errors: &[LoadError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n  - ")
}

impl LoadError {
    /// Every individual problem (flattens [`LoadError::Many`]).
    pub fn problems(&self) -> Vec<&LoadError> {
        match self {
            LoadError::Many(all) => all.iter().flat_map(|e| e.problems()).collect(),
            other => vec![other],
        }
    }

    pub(crate) fn from_list(mut errors: Vec<LoadError>) -> Result<(), LoadError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(LoadError::Many(errors)),
        }
    }
}
