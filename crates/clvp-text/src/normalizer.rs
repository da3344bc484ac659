//! HF `EnglishNormalizer` (`transformers/models/clvp/number_normalizer.py`, 5.23), step by step.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use crate::numbers;

/// Compile one of this module's constant patterns (they are all valid; the unit tests compile every one).
fn pattern(re: &str) -> Regex {
    #[allow(clippy::expect_used)] // A constant pattern, not user input.
    Regex::new(re).expect("constant regex pattern")
}

/// Rule a: `([0-9][0-9,]+[0-9])` → the match without commas.
static COMMA_NUMBER: LazyLock<Regex> = LazyLock::new(|| pattern(r"[0-9][0-9,]+[0-9]"));
/// Rule c: `\$([0-9.,]*[0-9])` → `_expand_dollars`.
static DOLLARS: LazyLock<Regex> = LazyLock::new(|| pattern(r"\$([0-9.,]*[0-9])"));
/// Rule d: `([0-9]++\.[0-9]+)` → `.` replaced by ` point ` (the possessive `++` cannot change a match here:
/// giving back a digit never lets `\.` match).
static DECIMAL: LazyLock<Regex> = LazyLock::new(|| pattern(r"[0-9]+\.[0-9]+"));
/// Rule e: `[0-9]++(st|nd|rd|th)` → `_expand_ordinal` (possessive as in rule d, same reasoning).
static ORDINAL: LazyLock<Regex> = LazyLock::new(|| pattern(r"([0-9]+)(?:st|nd|rd|th)"));
/// Rule f: `[0-9]+` → `_expand_number`.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| pattern(r"[0-9]+"));

/// The abbreviations in HF's order: `\b<abbr>\.` (case-insensitive) → expansion.
const ABBREVIATIONS: [(&str, &str); 18] = [
    ("mrs", "misess"),
    ("mr", "mister"),
    ("dr", "doctor"),
    ("st", "saint"),
    ("co", "company"),
    ("jr", "junior"),
    ("maj", "major"),
    ("gen", "general"),
    ("drs", "doctors"),
    ("rev", "reverend"),
    ("lt", "lieutenant"),
    ("hon", "honorable"),
    ("sgt", "sergeant"),
    ("capt", "captain"),
    ("esq", "esquire"),
    ("ltd", "limited"),
    ("col", "colonel"),
    ("ft", "fort"),
];

static ABBREVIATION_PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    ABBREVIATIONS
        .iter()
        .map(|&(abbr, expansion)| (pattern(&format!(r"(?i)\b{abbr}\.")), expansion))
        .collect()
});

/// HF's `EnglishNormalizer`: ASCII-only, lower case, numbers spelt out, abbreviations expanded, whitespace
/// collapsed, double quotes removed.
///
/// Python `re` semantics are reproduced exactly: every substitution is leftmost and non-overlapping and runs
/// over the output of the previous one. After the first step the text is pure ASCII, so Python's Unicode-aware
/// `\b` and `\s` reduce to their ASCII meaning (`\s` including the separators `\x1c`–`\x1f`).
///
/// Where HF raises instead of returning a string (see the crate documentation), this returns a best-effort
/// string instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnglishNormalizer;

impl EnglishNormalizer {
    /// The normaliser (stateless).
    pub fn new() -> Self {
        Self
    }

    /// Normalise one piece of text (HF `EnglishNormalizer.__call__`).
    pub fn normalize(&self, text: &str) -> String {
        let text = convert_to_ascii(text).to_ascii_lowercase();
        let text = normalize_numbers(&text);
        let text = expand_abbreviations(text);
        collapse_whitespace(&text).replace('"', "")
    }
}

/// `text.encode("ascii", "ignore").decode()`: drop every non-ASCII character.
fn convert_to_ascii(text: &str) -> String {
    text.chars().filter(char::is_ascii).collect()
}

/// HF `normalize_numbers`: rules a–f in order (rule b, for `£`, can never match after `convert_to_ascii`).
fn normalize_numbers(text: &str) -> String {
    let text = COMMA_NUMBER.replace_all(text, |c: &Captures| c[0].replace(',', ""));
    let text = DOLLARS.replace_all(&text, |c: &Captures| numbers::expand_dollars(&c[1]));
    let text = DECIMAL.replace_all(&text, |c: &Captures| c[0].replace('.', " point "));
    let text = ORDINAL.replace_all(&text, |c: &Captures| numbers::expand_ordinal(&c[1]));
    NUMBER
        .replace_all(&text, |c: &Captures| numbers::expand_number(&c[0]))
        .into_owned()
}

/// HF `expand_abbreviations`: each pattern in turn over the whole text.
fn expand_abbreviations(mut text: String) -> String {
    for (re, expansion) in ABBREVIATION_PATTERNS.iter() {
        // `NoExpand`: the expansion is literal text.
        text = re
            .replace_all(&text, regex::NoExpand(expansion))
            .into_owned();
    }
    text
}

/// Python's `str.isspace()` (what `\s` matches in a `str` pattern): Unicode White_Space plus the information
/// separators `\x1c`–`\x1f`.
pub(crate) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `re.sub(r"\s+", " ", text)`; leading and trailing runs become one space, they are not stripped.
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if is_python_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every expected string below is derived by hand from the rules of spec §2.2 step 2.

    fn norm(text: &str) -> String {
        EnglishNormalizer::new().normalize(text)
    }

    #[test]
    fn every_pattern_compiles() {
        for re in [&COMMA_NUMBER, &DOLLARS, &DECIMAL, &ORDINAL, &NUMBER] {
            assert!(!re.as_str().is_empty());
        }
        assert_eq!(ABBREVIATION_PATTERNS.len(), ABBREVIATIONS.len());
    }

    #[test]
    fn ascii_lowercase_and_quotes() {
        assert_eq!(norm("Café"), "caf");
        assert_eq!(norm("don\u{2019}t"), "dont");
        assert_eq!(norm("a \" b"), "a  b");
        assert_eq!(norm("  x\t\n\x0b\x0c\r\x1c\x1d\x1e\x1fy  "), " x y ");
    }

    #[test]
    fn number_rules_in_order() {
        // a: commas inside a digit run go, then f spells the number.
        assert_eq!(norm("12,345"), "twelve thousand, three hundred forty-five");
        // a needs three characters: "1," and ",5" keep their comma.
        assert_eq!(norm("1, ,5"), "one, ,five");
        // c after a: "$1,5" became "$15".
        assert_eq!(norm("$1,5"), "fifteen dollars");
        assert_eq!(norm("$1.50"), "one dollar, fifty cents");
        assert_eq!(norm("$5."), "five dollars.");
        // c with three parts keeps the amount, d then takes the first decimal only.
        assert_eq!(norm("$1.2.3"), "one point two.three dollars");
        // d: decimals, then f on each side.
        assert_eq!(norm("3.05"), "three point five");
        // e: ordinal quirk.
        assert_eq!(norm("2nd"), "twond");
        // f on an out-of-range number.
        assert_eq!(norm("1000000000000000000"), "number out of range");
    }

    #[test]
    fn abbreviations_need_a_word_boundary_and_a_period() {
        assert_eq!(norm("Mrs. Mr. Drs. Dr."), "misess mister doctors doctor");
        assert_eq!(norm("first. st.john"), "first. saintjohn");
        assert_eq!(norm("mr"), "mr");
        assert_eq!(norm("_mr."), "_mr.");
    }
}
