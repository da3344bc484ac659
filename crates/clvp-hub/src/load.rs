//! Reproduces `model.load_state_dict(sd, strict=True)` for burn modules: every key mapped, every parameter filled, shapes checked first.
//!
//! The module's parameter shapes are read without initializing lazy parameters; every problem
//! (unexpected key, missing parameter, wrong shape, unsupported dtype, broken weight-norm pair) is
//! found before anything is applied and reported together. Tensors are then handed to
//! burn-store's `ModuleSnapshot::apply` as deferred tensors, so each one is read from the
//! memory map and converted (to f32, then to the parameter's float dtype) only when burn takes it.
//! An f32 tensor stored as the parameter wants it is not copied: the parameter is a view of the map.
//! No burn-store adapter is involved: transposes happen exactly where the name table says.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::burn_pack::Error as PackError;
use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::{Bool, DType, Int, Shape, Tensor, TensorData};

use crate::error::{LoadError, ShapeMismatch, WeightsError};
use crate::lstm::{LSTM_GATES, LstmParam, gate_for_burn, gate_shape, transpose};
use crate::norms::{WeightNormPart, check_weight_norm_shapes, fold_weight_norm, weight_norm_part};
use crate::remap::{Layout, NameMap};
use crate::weights::{SourceDtype, TensorEntry, Weights};

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// `(checkpoint key, burn path)` of every parameter loaded (an LSTM key appears four times).
    pub loaded: Vec<(String, String)>,
    /// Checkpoint keys skipped by [`Layout::Ignore`] rows.
    pub ignored: Vec<String>,
}

/// Load `weights` into `module` through `map`; on any problem the module is dropped and every problem reported.
pub fn load_module<M: Module>(module: M, weights: &Weights, map: &NameMap) -> Result<M, LoadError> {
    load_module_with_report(module, weights, map).map(|(m, _)| m)
}

/// [`load_module`], also returning what was loaded and what was ignored.
pub fn load_module_with_report<M: Module>(
    mut module: M,
    weights: &Weights,
    map: &NameMap,
) -> Result<(M, LoadReport), LoadError> {
    map.validate()?;
    let params = param_infos(&module);
    let (canon, mut errors) = canonicalize(weights, map.folds_weight_norm());
    let mut report = LoadReport::default();
    let mut planned: BTreeMap<String, Planned> = BTreeMap::new();
    let mut reached: std::collections::BTreeSet<String> = Default::default();

    for c in &canon {
        let Some((rule, target)) = map.lookup(&c.key) else {
            errors.push(LoadError::UnexpectedKey {
                file: c.file.clone(),
                key: c.key.clone(),
                shape: c.shape.clone(),
                model: map.name().to_string(),
            });
            continue;
        };
        let layout = rule.layout();
        if layout == Layout::Ignore {
            tracing::debug!("{}: ignoring `{}`", c.file.display(), c.key);
            report.ignored.push(c.key.clone());
            continue;
        }
        let outs = outputs(c, &target, layout, map.name());
        // A parameter that a key reaches is not reported missing, even when that key is unusable.
        reached.extend(
            outs.iter()
                .filter_map(|o| o.as_ref().ok())
                .map(|o| o.target.clone()),
        );
        if !c.dtype.is_float() {
            errors.push(LoadError::Weights(WeightsError::UnsupportedDtype {
                file: c.file.clone(),
                key: c.key.clone(),
                dtype: c.dtype.to_string(),
            }));
            continue;
        }
        for out in outs {
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if let Some(e) = check(c, &out, layout, &params) {
                errors.push(e);
                continue;
            }
            if let Some(prev) = planned.get(&out.target) {
                errors.push(LoadError::DuplicateTarget {
                    target: out.target.clone(),
                    first: prev.key.clone(),
                    second: c.key.clone(),
                });
                continue;
            }
            planned.insert(
                out.target.clone(),
                Planned {
                    key: c.key.clone(),
                    canon: c.clone(),
                    out,
                },
            );
        }
    }
    for (path, info) in &params {
        if !reached.contains(path) {
            errors.push(LoadError::MissingKey {
                file: weights.origin().to_path_buf(),
                target: path.clone(),
                expected: info.shape.clone(),
            });
        }
    }
    // Shape and dtype problems first, then unexpected keys, then missing ones: the first lines of a
    // long report are the most specific.
    errors.sort_by_key(|e| match e {
        LoadError::ShapeMismatch(_) | LoadError::DtypeMismatch { .. } | LoadError::Weights(_) => 0,
        LoadError::WeightNorm { .. }
        | LoadError::Layout { .. }
        | LoadError::DuplicateTarget { .. }
        | LoadError::BadTable { .. } => 1,
        LoadError::UnexpectedKey { .. } | LoadError::UnknownTarget { .. } => 2,
        _ => 3,
    });
    LoadError::from_list(errors)?;

    let mut tensors = Vec::with_capacity(planned.len());
    // Problems found while burn reads the tensors (a NaN weight), kept typed: burn only passes strings on.
    let failures = Failures::default();
    for (target, p) in planned {
        let dtype = params.get(&target).map(|i| i.dtype).unwrap_or(DType::F32);
        report.loaded.push((p.key.clone(), target.clone()));
        tensors.push(deferred(target, dtype, p, failures.clone()));
    }
    let result = module.apply(tensors, None, None, false);
    // Sorted, and once each (an LSTM tensor is read once per gate).
    let mut typed: Vec<(String, LoadError)> = failures
        .take()
        .into_iter()
        .map(|e| (e.to_string(), e))
        .collect();
    typed.sort_by(|a, b| a.0.cmp(&b.0));
    typed.dedup_by(|a, b| a.0 == b.0);
    let typed: Vec<LoadError> = typed.into_iter().map(|(_, e)| e).collect();
    LoadError::from_list(typed)?;
    let mut errors: Vec<LoadError> = result
        .errors
        .iter()
        .map(|e| LoadError::Apply {
            target: apply_path(e),
            message: e.to_string(),
        })
        .collect();
    errors.extend(result.missing.iter().map(|(path, _)| {
        LoadError::MissingKey {
            file: weights.origin().to_path_buf(),
            target: path.clone(),
            expected: params
                .get(path)
                .map(|i| i.shape.clone())
                .unwrap_or_default(),
        }
    }));
    errors.extend(result.unused.iter().map(|path| LoadError::Apply {
        target: path.clone(),
        message: "burn did not consume this tensor".into(),
    }));
    LoadError::from_list(errors)?;
    Ok((module, report))
}

fn apply_path(e: &burn::store::ApplyError) -> String {
    use burn::store::ApplyError as A;
    match e {
        A::ShapeMismatch { path, .. }
        | A::DTypeMismatch { path, .. }
        | A::AdapterError { path, .. }
        | A::LoadError { path, .. } => path.clone(),
    }
}

/// A module parameter as the loader sees it.
#[derive(Debug, Clone)]
struct ParamInfo {
    shape: Vec<usize>,
    float: bool,
    dtype: DType,
}

#[derive(Default)]
struct ParamVisitor {
    path: Vec<String>,
    params: BTreeMap<String, ParamInfo>,
}

impl ParamVisitor {
    fn record(&mut self, shape: Shape, float: bool, dtype: DType) {
        self.params.insert(
            self.path.join("."),
            ParamInfo {
                shape: shape.to_vec(),
                float,
                dtype,
            },
        );
    }
}

impl ModuleVisitor for ParamVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let dtype = if param.is_initialized() {
            param.val().dtype()
        } else {
            param.lazy_device().settings().float_dtype.into()
        };
        self.record(param.lazy_shape(), true, dtype);
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        self.record(param.lazy_shape(), false, DType::I64);
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        self.record(param.lazy_shape(), false, DType::I64);
    }
}

/// Every parameter path of `module` with its shape, without initializing lazy parameters.
fn param_infos<M: Module>(module: &M) -> BTreeMap<String, ParamInfo> {
    let mut v = ParamVisitor::default();
    module.visit(&mut v);
    v.params
}

/// A checkpoint tensor after weight-norm folding.
#[derive(Clone)]
struct Canon {
    key: String,
    file: PathBuf,
    shape: Vec<usize>,
    dtype: SourceDtype,
    src: Src,
}

#[derive(Clone)]
enum Src {
    One(TensorEntry),
    Norm { g: TensorEntry, v: TensorEntry },
}

impl Canon {
    /// The values as f32, every one finite (weight-norm pairs folded).
    fn read(&self) -> Result<Vec<f32>, LoadError> {
        match &self.src {
            Src::One(e) => Ok(e.to_f32()?),
            Src::Norm { g, v } => {
                let wn = |message: String| LoadError::WeightNorm {
                    file: v.file().to_path_buf(),
                    prefix: self.key.trim_end_matches(".weight").to_string(),
                    message,
                };
                let gv = g.to_f32()?;
                let vv = v.to_f32()?;
                let w = fold_weight_norm(&gv, &vv, v.shape()).map_err(wn)?;
                if w.iter().any(|x| !x.is_finite()) {
                    return Err(wn(format!(
                        "folding g · v / ‖v‖ gives non-finite values (a slice of `{}` is all zeros?)",
                        v.key()
                    )));
                }
                Ok(w)
            }
        }
    }
}

/// Typed errors raised inside burn's `apply` (which keeps only their text), shared by the deferred tensors.
#[derive(Clone, Default)]
struct Failures(std::sync::Arc<std::sync::Mutex<Vec<LoadError>>>);

impl Failures {
    /// Keep `e`; burn gets its text.
    fn record(&self, e: LoadError) -> PackError {
        let message = e.to_string();
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(e);
        PackError::ValidationError(message)
    }

    fn take(&self) -> Vec<LoadError> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// The g and v halves of a weight-norm pair, as found.
type Pair<'a> = (Option<&'a TensorEntry>, Option<&'a TensorEntry>);

/// Fold weight-norm pairs into `{prefix}.weight`; everything else passes through.
fn canonicalize(weights: &Weights, fold: bool) -> (Vec<Canon>, Vec<LoadError>) {
    let mut plain = Vec::new();
    let mut pairs: BTreeMap<(String, usize), Pair<'_>> = BTreeMap::new();
    for e in weights.iter() {
        match weight_norm_part(e.key()).filter(|_| fold) {
            Some((prefix, part, spelling)) => {
                let slot = pairs.entry((prefix.to_string(), spelling)).or_default();
                match part {
                    WeightNormPart::G => slot.0 = Some(e),
                    WeightNormPart::V => slot.1 = Some(e),
                }
            }
            None => plain.push(Canon {
                key: e.key().to_string(),
                file: e.file().to_path_buf(),
                shape: e.shape().to_vec(),
                dtype: e.dtype().clone(),
                src: Src::One(e.clone()),
            }),
        }
    }
    let mut errors = Vec::new();
    let mut out = plain;
    for ((prefix, _), (g, v)) in pairs {
        let wn = |file: &std::path::Path, message: String| LoadError::WeightNorm {
            file: file.to_path_buf(),
            prefix: prefix.clone(),
            message,
        };
        let (g, v) = match (g, v) {
            (Some(g), Some(v)) => (g, v),
            (Some(one), None) | (None, Some(one)) => {
                errors.push(wn(
                    one.file(),
                    format!(
                        "`{}` has no partner (weight norm needs both g and v)",
                        one.key()
                    ),
                ));
                continue;
            }
            (None, None) => continue,
        };
        if let Err(m) = check_weight_norm_shapes(g.shape(), v.shape()) {
            errors.push(wn(v.file(), m));
            continue;
        }
        let key = format!("{prefix}.weight");
        if out.iter().any(|c| c.key == key) {
            errors.push(wn(
                v.file(),
                format!(
                    "both `{key}` and a weight-norm pair (`{}`) are present",
                    v.key()
                ),
            ));
            continue;
        }
        let dtype = if g.dtype().is_float() {
            v.dtype().clone()
        } else {
            g.dtype().clone()
        };
        out.push(Canon {
            key,
            file: v.file().to_path_buf(),
            shape: v.shape().to_vec(),
            dtype,
            src: Src::Norm {
                g: g.clone(),
                v: v.clone(),
            },
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    (out, errors)
}

/// One burn parameter a checkpoint tensor produces.
#[derive(Clone)]
struct Out {
    target: String,
    shape: Vec<usize>,
    layout: Layout,
    gate: usize,
}

struct Planned {
    key: String,
    canon: Canon,
    out: Out,
}

fn outputs(c: &Canon, target: &str, layout: Layout, model: &str) -> Vec<Result<Out, LoadError>> {
    let layout_err = |why: &str| LoadError::Layout {
        file: c.file.clone(),
        key: c.key.clone(),
        stored: c.shape.clone(),
        layout: layout.describe().to_string(),
        message: why.to_string(),
    };
    match layout {
        Layout::AsIs => vec![Ok(Out {
            target: target.to_string(),
            shape: c.shape.clone(),
            layout,
            gate: 0,
        })],
        Layout::Transpose => match c.shape.as_slice() {
            [a, b] => vec![Ok(Out {
                target: target.to_string(),
                shape: vec![*b, *a],
                layout,
                gate: 0,
            })],
            _ => vec![Err(layout_err("a transposed weight must have rank 2"))],
        },
        Layout::LstmGates => {
            let last = c.key.rsplit('.').next().unwrap_or_default();
            let Some((param, _layer)) = LstmParam::parse(last) else {
                return vec![Err(LoadError::BadTable {
                    model: model.to_string(),
                    pattern: c.key.clone(),
                    message: format!(
                        "`{last}` is not a PyTorch LSTM parameter (weight_ih_lK, weight_hh_lK, bias_ih_lK, bias_hh_lK)"
                    ),
                })];
            };
            let shape = match gate_shape(&c.shape) {
                Ok(s) if param.is_weight() == (c.shape.len() == 2) => s,
                Ok(_) | Err(_) => {
                    return vec![Err(layout_err(
                        "an LSTM weight is [4H, in] and a bias [4H], with 4H divisible by 4",
                    ))];
                }
            };
            LSTM_GATES
                .iter()
                .enumerate()
                .map(|(gate, name)| {
                    Ok(Out {
                        target: format!("{target}.{name}.{}", param.burn_suffix()),
                        shape: shape.clone(),
                        layout,
                        gate,
                    })
                })
                .collect()
        }
        Layout::Ignore => vec![],
    }
}

fn check(
    c: &Canon,
    out: &Out,
    layout: Layout,
    params: &BTreeMap<String, ParamInfo>,
) -> Option<LoadError> {
    let Some(info) = params.get(&out.target) else {
        return Some(LoadError::UnknownTarget {
            file: c.file.clone(),
            key: c.key.clone(),
            target: out.target.clone(),
        });
    };
    if !info.float {
        return Some(LoadError::DtypeMismatch {
            file: c.file.clone(),
            key: c.key.clone(),
            target: out.target.clone(),
            expected: "an integer or bool tensor".into(),
            found: c.dtype.to_string(),
        });
    }
    if info.shape != out.shape {
        let layout = match (&c.src, layout) {
            (Src::Norm { .. }, l) => format!("weight-norm folded, {}", l.describe()),
            (_, l) => l.describe().to_string(),
        };
        return Some(LoadError::ShapeMismatch(Box::new(ShapeMismatch {
            file: c.file.clone(),
            key: c.key.clone(),
            target: out.target.clone(),
            stored: c.shape.clone(),
            layout,
            found: out.shape.clone(),
            expected: info.shape.clone(),
        })));
    }
    None
}

/// A tensor burn reads only when it applies it: read (every value checked finite), fold, transpose or split,
/// convert.
fn deferred(
    target: String,
    dtype: DType,
    p: Planned,
    failures: Failures,
) -> burn::store::burn_pack::Tensor {
    let Planned { canon, out, .. } = p;
    let shape = out.shape.clone();
    bridge::deferred(target, dtype, Shape::from(shape.clone()), None, move || {
        // The common case (an f32 safetensors tensor that needs no rearranging) is not copied at all:
        // the parameter reads the mapped file. Its values are checked once; the pages the check read are
        // handed back, so only those a computation touches stay in the process.
        if let (Layout::AsIs, DType::F32, Src::One(entry)) = (out.layout, dtype, &canon.src)
            && let Some(bytes) = entry.mapped_f32()
        {
            entry
                .check_finite_bytes(&bytes)
                .map_err(|e| failures.record(e.into()))?;
            if let Some(pages) = entry.mapped_pages() {
                pages.release();
            }
            return TensorData::try_from_bytes(bytes, shape.clone(), DType::F32)
                .map_err(|e| PackError::ValidationError(format!("`{}`: {e}", canon.key)));
        }
        let values = canon.read().map_err(|e| failures.record(e))?;
        let values = match out.layout {
            Layout::AsIs => values,
            Layout::Transpose => match canon.shape.as_slice() {
                [rows, cols] => {
                    transpose(&values, *rows, *cols).map_err(PackError::ValidationError)?
                }
                other => {
                    return Err(PackError::ValidationError(format!(
                        "cannot transpose {other:?}"
                    )));
                }
            },
            Layout::LstmGates => gate_for_burn(&values, &canon.shape, out.gate)
                .map_err(PackError::ValidationError)?,
            Layout::Ignore => {
                return Err(PackError::ValidationError(
                    "ignored tensor was applied".into(),
                ));
            }
        };
        let data = TensorData::new(values, shape.clone());
        Ok(if dtype == DType::F32 {
            data
        } else {
            data.convert_dtype(dtype)
        })
    })
}
