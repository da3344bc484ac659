//! Reproduces a state-dict key conversion as one documented table per model: regex → burn path, with the layout change.
//!
//! A [`NameMap`] is an ordered list of rows. Each checkpoint key (after weight-norm folding, see
//! [`crate::norms`]) is matched against the rows in order; the first row whose pattern matches the
//! **whole** key wins. Its target is the burn module path, with `$1` / `${1}` / `${name}` replaced by
//! the captures (write `${1}_proj`, not `$1_proj`, when a letter follows). A key no row matches is an
//! [`crate::LoadError::UnexpectedKey`]; a module parameter no key reaches is a
//! [`crate::LoadError::MissingKey`].
//!
//! | layout | stored | burn | for |
//! |---|---|---|---|
//! | [`Layout::AsIs`] | as is | as is | embeddings, biases, norms, convs (burn `Conv1d` / `ConvTranspose1d` use PyTorch's layout), GPT-2 `Conv1D` (`[in, out]`, already burn's `Linear` layout) |
//! | [`Layout::Transpose`] | `[out, in]` | `[in, out]` | PyTorch `nn.Linear` weights into a burn `Linear` of the default (row) layout; a copy. A `Linear` built with `LinearLayout::Col` takes `[out, in]` as is instead (CLVP's tables do that, so the weight needs no copy) |
//! | [`Layout::LstmGates`] | `[4H, in]`, `[4H]` | 4 × `{target}.{gate}.{input,hidden}_transform.{weight,bias}` | PyTorch `nn.LSTM` (target = the burn `Lstm` of that layer) |
//! | [`Layout::Ignore`] | — | — | buffers inference does not use (EnCodec `cluster_size`, `embed_avg`, `inited`) |
//!
//! PyTorch norm layers store `weight`/`bias`; burn's `LayerNorm`/`GroupNorm` call them `gamma`/`beta`,
//! so a table renames them explicitly (`(.*norm)\.weight` → `$1.gamma`).

use regex::Regex;

use crate::error::LoadError;

/// How a stored tensor becomes a burn parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Copied as stored.
    AsIs,
    /// A rank-2 PyTorch `nn.Linear` weight `[out, in]`, transposed to burn's `[in, out]`.
    Transpose,
    /// A packed PyTorch LSTM tensor split into burn's four gate controllers (see [`crate::lstm`]).
    LstmGates,
    /// A known buffer that is not loaded.
    Ignore,
}

impl Layout {
    /// Short description for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Layout::AsIs => "as stored",
            Layout::Transpose => "transposed [out,in]→[in,out]",
            Layout::LstmGates => "one LSTM gate",
            Layout::Ignore => "ignored",
        }
    }
}

/// One row of a name table.
#[derive(Debug, Clone)]
pub struct Rule {
    pattern: String,
    regex: Result<Regex, String>,
    target: String,
    layout: Layout,
}

impl Rule {
    /// The pattern as written (matched against the whole key).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The target template.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

/// A model's name table: checkpoint key → burn path, first matching row wins.
#[derive(Debug, Clone)]
pub struct NameMap {
    name: String,
    rules: Vec<Rule>,
    fold_weight_norm: bool,
}

impl NameMap {
    /// An empty table named `name` (the name appears in error messages); weight-norm folding on.
    pub fn new(name: &str) -> Self {
        NameMap {
            name: name.to_string(),
            rules: Vec::new(),
            fold_weight_norm: true,
        }
    }

    /// Append a row. An invalid pattern is reported as [`LoadError::BadTable`] when loading.
    pub fn rule(mut self, pattern: &str, target: &str, layout: Layout) -> Self {
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string());
        self.rules.push(Rule {
            pattern: pattern.to_string(),
            regex,
            target: target.to_string(),
            layout,
        });
        self
    }

    /// Append a row for keys that are present but not loaded.
    pub fn ignore(self, pattern: &str) -> Self {
        self.rule(pattern, "", Layout::Ignore)
    }

    /// Turn weight-norm folding off (keys `weight_g`/`weight_v` are then matched as they are).
    pub fn without_weight_norm_folding(mut self) -> Self {
        self.fold_weight_norm = false;
        self
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rows in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether `weight_g`/`weight_v` pairs are folded before matching.
    pub fn folds_weight_norm(&self) -> bool {
        self.fold_weight_norm
    }

    /// Check every row compiles and that targets are non-empty.
    pub fn validate(&self) -> Result<(), LoadError> {
        for r in &self.rules {
            let bad = |message: String| LoadError::BadTable {
                model: self.name.clone(),
                pattern: r.pattern.clone(),
                message,
            };
            if let Err(e) = &r.regex {
                return Err(bad(format!("invalid regex: {e}")));
            }
            if r.layout != Layout::Ignore && r.target.is_empty() {
                return Err(bad("empty target".into()));
            }
        }
        Ok(())
    }

    /// The first row matching `key`, with the expanded target (empty for [`Layout::Ignore`]).
    pub fn lookup(&self, key: &str) -> Option<(&Rule, String)> {
        self.rules.iter().find_map(|r| {
            let re = r.regex.as_ref().ok()?;
            let caps = re.captures(key)?;
            let mut target = String::new();
            caps.expand(&r.target, &mut target);
            Some((r, target))
        })
    }

    /// The table as Markdown (for docs and `--explain` output).
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "| `{}` key | burn path | layout |\n|---|---|---|\n",
            self.name
        );
        for r in &self.rules {
            s.push_str(&format!(
                "| `{}` | `{}` | {} |\n",
                r.pattern,
                r.target,
                r.layout.describe()
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NameMap {
        NameMap::new("t")
            .rule(
                r"(.*)\.(q|k|v|out)_proj\.weight",
                "$1.${2}_proj.weight",
                Layout::Transpose,
            )
            .rule(
                r"(.*)\.mlp\.(c_fc|c_proj)\.(weight|bias)",
                "$1.mlp.$2.$3",
                Layout::AsIs,
            )
            .ignore(r"(?:.*\.)?codebook\.(inited|cluster_size|embed_avg)")
            .rule(r"(.*)", "$1", Layout::AsIs)
    }

    #[test]
    fn first_matching_row_wins_and_expands() {
        let t = table();
        let (r, target) = t
            .lookup("layers.0.attn.q_proj.weight")
            .unwrap_or_else(|| panic!("no match"));
        assert_eq!(
            (r.layout(), target.as_str()),
            (Layout::Transpose, "layers.0.attn.q_proj.weight")
        );
        let (r, target) = t
            .lookup("h.3.mlp.c_fc.weight")
            .unwrap_or_else(|| panic!("no match"));
        assert_eq!(
            (r.layout(), target.as_str()),
            (Layout::AsIs, "h.3.mlp.c_fc.weight")
        );
        let (r, _) = t
            .lookup("quantizer.layers.0.codebook.embed_avg")
            .unwrap_or_else(|| panic!("no match"));
        assert_eq!(r.layout(), Layout::Ignore);
        let (r, _) = t
            .lookup("quantizer.layers.0.codebook.embed")
            .unwrap_or_else(|| panic!("no match"));
        assert_eq!(r.layout(), Layout::AsIs);
    }

    #[test]
    fn patterns_are_anchored() {
        let t = NameMap::new("t").rule(r"a\.weight", "a.weight", Layout::AsIs);
        assert!(t.lookup("xa.weight").is_none());
        assert!(t.lookup("a.weight.x").is_none());
    }

    #[test]
    fn bad_rows_are_reported() {
        let e = NameMap::new("m")
            .rule("(", "x", Layout::AsIs)
            .validate()
            .map_err(|e| e.to_string());
        assert!(
            e.as_ref()
                .is_err_and(|m| m.contains("name table `m`") && m.contains("invalid regex")),
            "{e:?}"
        );
        assert!(
            NameMap::new("m")
                .rule("a", "", Layout::AsIs)
                .validate()
                .is_err()
        );
        assert!(table().validate().is_ok());
        assert!(table().to_markdown().contains("| `(.*)\\.mlp"));
    }
}
