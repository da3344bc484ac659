//! Reproduces a checkpoint conversion script (transformers' `convert_clvp_to_hf.py`) as one table: each row maps
//! an original key onto one or more of the converted checkpoint's keys, with the re-layout the script does, and the
//! result is a [`Weights`] under the converted keys that a model's ordinary [`NameMap`](crate::NameMap) loads.
//!
//! Nothing is converted up front: a renamed tensor is the original entry under its new key (read, or mapped,
//! as before), and a re-laid-out one is computed from its source when the loader reads it, so loading an
//! original checkpoint holds one tensor's copy at a time, as loading a converted one does. The rows are matched
//! like a [`NameMap`](crate::NameMap)'s (first whole-key match wins, `$1` / `${name}` in targets); a key no row
//! matches is a [`LoadError::UnexpectedKey`], so an original checkpoint is loaded as strictly as a converted
//! one (missing keys are then reported by the model's table under their converted names).
//!
//! | re-layout | stored | converted | for |
//! |---|---|---|---|
//! | [`Relayout::AsIs`] | as is | as is | renames |
//! | [`Relayout::Squeeze`] | `[out, in, 1]` | `[out, in]` | a kernel-1 `Conv1d` that the converted model holds as `nn.Linear` |
//! | [`Relayout::Transpose`] | `[in, out]` | `[out, in]` | a GPT-2 `Conv1D` that the converted model holds as `nn.Linear` |
//! | [`Relayout::Rows`] | `[parts·n, …]` | `[n, …]` | one block of a fused bias (`c_attn.bias` → q, k, v) |
//! | [`Relayout::ColumnsTransposed`] | `[in, parts·out]` | `[out, in]` | one block of a fused GPT-2 `Conv1D` (`c_attn.weight` → q, k, v) |
//! | [`Relayout::HeadRows`] | `[3·C, …(, 1)]` | `[C, …]` | q, k or v of a fused legacy attention (`QKVAttentionLegacy`: per head, q, k, v rows one after another) |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;

use crate::entry::{Data, Derive, TensorEntry, insert};
use crate::error::{LoadError, WeightsError};
use crate::weights::{WeightFormat, Weights};

/// How an original tensor becomes a converted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayout {
    /// Unchanged (a rename).
    AsIs,
    /// `[out, in, 1]` → `[out, in]`.
    Squeeze,
    /// `[a, b]` → `[b, a]`.
    Transpose,
    /// Block `part` of `parts` equal blocks along the first axis.
    Rows {
        /// Which block (0-based).
        part: usize,
        /// How many blocks.
        parts: usize,
    },
    /// `[in, parts·out]` → block `part` of the columns, transposed: `[out, in]`.
    ColumnsTransposed {
        /// Which block (0-based).
        part: usize,
        /// How many blocks.
        parts: usize,
    },
    /// A fused `[3·C, …]` projection (a trailing length-1 axis dropped) of `heads` heads laid out per head as
    /// `[q_h; k_h; v_h]` (each `C / heads` rows): the `part` rows (0 = q, 1 = k, 2 = v) of every head, in head
    /// order.
    HeadRows {
        /// Number of heads.
        heads: usize,
        /// 0 = q, 1 = k, 2 = v.
        part: usize,
    },
}

impl Relayout {
    /// Short description for error messages.
    pub fn describe(self) -> String {
        match self {
            Relayout::AsIs => "as stored".into(),
            Relayout::Squeeze => "squeezed [out,in,1]→[out,in]".into(),
            Relayout::Transpose => "transposed".into(),
            Relayout::Rows { part, parts } => format!("row block {part} of {parts}"),
            Relayout::ColumnsTransposed { part, parts } => {
                format!("column block {part} of {parts}, transposed")
            }
            Relayout::HeadRows { heads, part } => {
                format!(
                    "{} rows of a fused legacy qkv of {heads} heads",
                    ["q", "k", "v"][part % 3]
                )
            }
        }
    }

    /// The converted shape of a tensor stored as `shape`, or why it cannot take this re-layout.
    pub fn shape(self, shape: &[usize]) -> Result<Vec<usize>, String> {
        match (self, shape) {
            (Relayout::AsIs, s) => Ok(s.to_vec()),
            (Relayout::Squeeze, [o, i, 1]) => Ok(vec![*o, *i]),
            (Relayout::Squeeze, _) => Err("expected rank 3 with a last axis of 1".into()),
            (Relayout::Transpose, [a, b]) => Ok(vec![*b, *a]),
            (Relayout::Transpose, _) => Err("expected rank 2".into()),
            (Relayout::Rows { part, parts }, [n, rest @ ..]) => {
                if parts == 0 || part >= parts || n % parts != 0 {
                    return Err(format!("{n} rows do not split into {parts} equal blocks"));
                }
                Ok([&[n / parts][..], rest].concat())
            }
            (Relayout::Rows { .. }, []) => Err("a scalar has no rows".into()),
            (Relayout::ColumnsTransposed { part, parts }, [i, n]) => {
                if parts == 0 || part >= parts || n % parts != 0 {
                    return Err(format!(
                        "{n} columns do not split into {parts} equal blocks"
                    ));
                }
                Ok(vec![n / parts, *i])
            }
            (Relayout::ColumnsTransposed { .. }, _) => Err("expected rank 2".into()),
            (Relayout::HeadRows { heads, part }, [n, rest @ ..]) => {
                let rest = match rest {
                    [_, 1] => &rest[..1],
                    other => other,
                };
                if part > 2 || heads == 0 || n % (3 * heads) != 0 {
                    return Err(format!("{n} rows are not 3 × {heads} heads of equal size"));
                }
                Ok([&[n / 3][..], rest].concat())
            }
            (Relayout::HeadRows { .. }, []) => Err("a scalar has no rows".into()),
        }
    }

    /// Rearrange `values` (row-major, stored `shape`) into the converted layout.
    fn apply(self, values: &[f32], shape: &[usize]) -> Vec<f32> {
        match self {
            Relayout::AsIs | Relayout::Squeeze => values.to_vec(),
            Relayout::Transpose => transpose(values, shape[0], shape[1]),
            Relayout::Rows { part, parts } => {
                let block = values.len() / parts;
                values[part * block..(part + 1) * block].to_vec()
            }
            Relayout::ColumnsTransposed { part, parts } => {
                let (rows, cols) = (shape[0], shape[1]);
                let width = cols / parts;
                let mut out = Vec::with_capacity(rows * width);
                for c in part * width..(part + 1) * width {
                    out.extend((0..rows).map(|r| values[r * cols + c]));
                }
                out
            }
            Relayout::HeadRows { heads, part } => {
                let row_len = values.len() / shape[0];
                let per_head = shape[0] / (3 * heads);
                let mut out = Vec::with_capacity(values.len() / 3);
                for h in 0..heads {
                    let first = (3 * h + part) * per_head;
                    out.extend_from_slice(&values[first * row_len..(first + per_head) * row_len]);
                }
                out
            }
        }
    }
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    for c in 0..cols {
        out.extend((0..rows).map(|r| values[r * cols + c]));
    }
    out
}

/// A converted tensor computed from an original one.
#[derive(Debug)]
pub(crate) struct Derived {
    source: TensorEntry,
    relayout: Relayout,
}

impl Derive for Derived {
    fn to_f32(&self) -> Result<Vec<f32>, WeightsError> {
        let values = self.source.to_f32()?;
        Ok(self.relayout.apply(&values, self.source.shape()))
    }
}

/// One row: an original key pattern and the converted keys it becomes (none: present and not used).
#[derive(Debug, Clone)]
struct Row {
    pattern: String,
    regex: Result<Regex, String>,
    targets: Vec<(String, Relayout)>,
}

/// A conversion table: original key → converted key(s), first whole-key match wins.
#[derive(Debug, Clone)]
pub struct Conversion {
    name: String,
    rows: Vec<Row>,
}

impl Conversion {
    /// An empty table named `name` (in error messages).
    pub fn new(name: &str) -> Self {
        Conversion {
            name: name.to_string(),
            rows: Vec::new(),
        }
    }

    /// Append a row mapping keys matching `pattern` (the whole key) onto `targets`.
    pub fn row<S: AsRef<str>>(mut self, pattern: &str, targets: &[(S, Relayout)]) -> Self {
        self.rows.push(Row {
            pattern: pattern.to_string(),
            regex: Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string()),
            targets: targets
                .iter()
                .map(|(t, r)| (t.as_ref().to_string(), *r))
                .collect(),
        });
        self
    }

    /// Append a rename row (`pattern` → `target`, as stored).
    pub fn rename(self, pattern: &str, target: &str) -> Self {
        self.row(pattern, &[(target, Relayout::AsIs)])
    }

    /// Append a row for keys that are present and not used (buffers, heads inference does not run).
    pub fn ignore(self, pattern: &str) -> Self {
        self.row::<&str>(pattern, &[])
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table as Markdown: original pattern, converted key(s), re-layout.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "| `{}` key | converted key | re-layout |\n|---|---|---|\n",
            self.name
        );
        for r in &self.rows {
            if r.targets.is_empty() {
                s.push_str(&format!("| `{}` | — | not used |\n", r.pattern));
            }
            for (t, l) in &r.targets {
                s.push_str(&format!("| `{}` | `{t}` | {} |\n", r.pattern, l.describe()));
            }
        }
        s
    }

    /// The converted checkpoint of `sources` (each an opened original file): every key matched by a row,
    /// every target's shape checked against its re-layout, and no converted key produced twice. `origin` names
    /// the result in messages (the directory, or the first file).
    pub fn apply(&self, sources: &[&Weights], origin: &Path) -> Result<Weights, LoadError> {
        let mut errors = Vec::new();
        let mut tensors = std::collections::BTreeMap::new();
        for weights in sources {
            for entry in weights.iter() {
                match self.convert(entry) {
                    Ok(converted) => {
                        for t in converted {
                            if let Err(e) = insert(&mut tensors, t) {
                                errors.push(LoadError::Weights(e));
                            }
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        LoadError::from_list(errors)?;
        Ok(Weights {
            tensors,
            origin: PathBuf::from(origin),
            format: sources
                .first()
                .map_or(WeightFormat::Pytorch, |w| w.format()),
        })
    }

    fn convert(&self, entry: &TensorEntry) -> Result<Vec<TensorEntry>, LoadError> {
        let key = entry.key();
        let found = self.rows.iter().find_map(|r| {
            let re = match &r.regex {
                Ok(re) => re,
                Err(e) => return Some(Err((r, e.clone()))),
            };
            re.captures(key).map(|caps| Ok((r, caps)))
        });
        let (row, caps) = match found {
            Some(Ok(found)) => found,
            Some(Err((r, message))) => {
                return Err(LoadError::BadTable {
                    model: self.name.clone(),
                    pattern: r.pattern.clone(),
                    message: format!("invalid regex: {message}"),
                });
            }
            None => {
                return Err(LoadError::UnexpectedKey {
                    file: entry.file().to_path_buf(),
                    key: key.to_string(),
                    shape: entry.shape().to_vec(),
                    model: self.name.clone(),
                });
            }
        };
        let mut out = Vec::with_capacity(row.targets.len());
        for (template, relayout) in &row.targets {
            let mut target = String::new();
            caps.expand(template, &mut target);
            let shape = relayout
                .shape(entry.shape())
                .map_err(|message| LoadError::Layout {
                    file: entry.file().to_path_buf(),
                    key: key.to_string(),
                    stored: entry.shape().to_vec(),
                    layout: relayout.describe(),
                    message,
                })?;
            let mut converted = entry.clone();
            converted.key = target;
            if *relayout != Relayout::AsIs {
                converted.shape = shape;
                converted.data = Data::Derived(Arc::new(Derived {
                    source: entry.clone(),
                    relayout: *relayout,
                }));
            }
            out.push(converted);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relaid(values: &[f32], shape: &[usize], relayout: Relayout) -> Vec<f32> {
        relayout.apply(values, shape)
    }

    #[test]
    fn columns_transposed_is_a_block_of_the_transpose() {
        // [in=2, 3·out=6]: column c holds 10·c + r.
        let values: Vec<f32> = (0..2)
            .flat_map(|r| (0..6).map(move |c| (10 * c + r) as f32))
            .collect();
        let k = Relayout::ColumnsTransposed { part: 1, parts: 3 };
        assert_eq!(k.shape(&[2, 6]), Ok(vec![2, 2]));
        assert_eq!(relaid(&values, &[2, 6], k), vec![20.0, 21.0, 30.0, 31.0]);
    }

    #[test]
    fn head_rows_pick_each_heads_block() {
        // 2 heads, C = 4 (2 rows per head per part), inner 1, trailing kernel axis 1: row i holds i.
        let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let shape = [12, 1, 1];
        let k = Relayout::HeadRows { heads: 2, part: 1 };
        assert_eq!(k.shape(&shape), Ok(vec![4, 1]));
        // head 0: rows q 0-1, k 2-3, v 4-5; head 1: q 6-7, k 8-9, v 10-11.
        assert_eq!(relaid(&values, &shape, k), vec![2.0, 3.0, 8.0, 9.0]);
        let v = Relayout::HeadRows { heads: 2, part: 2 };
        assert_eq!(relaid(&values, &[12], v), vec![4.0, 5.0, 10.0, 11.0]);
    }

    #[test]
    fn bad_shapes_are_reported() {
        assert!(Relayout::Rows { part: 0, parts: 3 }.shape(&[4]).is_err());
        assert!(
            Relayout::HeadRows { heads: 5, part: 0 }
                .shape(&[12, 3])
                .is_err()
        );
        assert!(Relayout::Squeeze.shape(&[4, 4, 3]).is_err());
        assert!(Relayout::Transpose.shape(&[4]).is_err());
        assert_eq!(
            Relayout::Rows { part: 2, parts: 3 }.shape(&[6, 5]),
            Ok(vec![2, 5])
        );
        assert_eq!(
            relaid(
                &[1., 2., 3., 4., 5., 6.],
                &[6],
                Relayout::Rows { part: 2, parts: 3 }
            ),
            vec![5.0, 6.0]
        );
        assert_eq!(
            relaid(&[1., 2., 3., 4., 5., 6.], &[2, 3], Relayout::Transpose),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
