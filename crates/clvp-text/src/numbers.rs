//! Number words: HF `EnglishNormalizer.number_to_words` and the helpers of the number rules.
//!
//! Numbers arrive as ASCII digit strings of any length. Python holds them as unbounded `int`s; here a value is
//! kept as a `u64` when it is below 10^18 (the largest value `number_to_words` spells) and as "out of range"
//! otherwise, which is all the rules need: the 1000..3000 test, `% 100`, `% 10`, `== 1` and `== 0` are answered
//! from the value or from the last digits of the string.

/// What `number_to_words` returns for values ≥ 10^18.
const OUT_OF_RANGE: &str = "number out of range";
/// 10^18: the first value `number_to_words` does not spell.
const LIMIT: u64 = 1_000_000_000_000_000_000;

const ONES: [&str; 10] = [
    "", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
const TEENS: [&str; 10] = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
/// The groups above a thousand, largest last: (size, name).
const GROUPS: [(u64, &str); 5] = [
    (1_000, "thousand"),
    (1_000_000, "million"),
    (1_000_000_000, "billion"),
    (1_000_000_000_000, "trillion"),
    (1_000_000_000_000_000, "quadrillion"),
];

/// The digits without leading zeros (`"0"` for an all-zero or empty string), i.e. `str(int(digits))`.
pub(crate) fn canonical_digits(digits: &str) -> &str {
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() { "0" } else { trimmed }
}

/// `int(digits)` when it is below 10^18, `None` when it is out of `number_to_words`'s range.
///
/// `digits` must be ASCII digits (the callers pass regex matches of `[0-9]+`).
pub(crate) fn parse_digits(digits: &str) -> Option<u64> {
    let significant = canonical_digits(digits);
    if significant.len() > 18 {
        return None;
    }
    // At most 18 digits: below 10^18, so no overflow.
    Some(significant.bytes().fold(0u64, |acc, b| {
        acc * 10 + u64::from(b.wrapping_sub(b'0') % 10)
    }))
}

/// HF `number_to_words(n)` (no "and", a comma after every thousand/million/… group, "number out of range" from
/// 10^18 on).
pub(crate) fn number_to_words(n: u64) -> String {
    let mut out = String::new();
    push_words(n, &mut out);
    out
}

fn push_words(n: u64, out: &mut String) {
    if n == 0 {
        out.push_str("zero");
    } else if n < 10 {
        out.push_str(ONES[n as usize]);
    } else if n < 20 {
        out.push_str(TEENS[(n - 10) as usize]);
    } else if n < 100 {
        out.push_str(TENS[(n / 10) as usize]);
        if !n.is_multiple_of(10) {
            out.push('-');
            push_words(n % 10, out);
        }
    } else if n < 1000 {
        out.push_str(ONES[(n / 100) as usize]);
        out.push_str(" hundred");
        if !n.is_multiple_of(100) {
            out.push(' ');
            push_words(n % 100, out);
        }
    } else if n >= LIMIT {
        out.push_str(OUT_OF_RANGE);
    } else {
        // The largest group not above n (n < 10^18, so one of the five applies).
        let (size, name) = GROUPS
            .iter()
            .rev()
            .copied()
            .find(|&(size, _)| n >= size)
            .unwrap_or(GROUPS[0]);
        push_words(n / size, out);
        out.push(' ');
        out.push_str(name);
        if !n.is_multiple_of(size) {
            out.push_str(", ");
            push_words(n % size, out);
        }
    }
}

/// `number_to_words(int(digits))` for a digit string of any length.
fn digits_to_words(digits: &str) -> String {
    match parse_digits(digits) {
        Some(n) => number_to_words(n),
        None => OUT_OF_RANGE.to_owned(),
    }
}

/// HF `_expand_number` (rule f) for the digit run `digits`.
pub(crate) fn expand_number(digits: &str) -> String {
    let Some(n) = parse_digits(digits) else {
        return OUT_OF_RANGE.to_owned();
    };
    if n > 1000 && n < 3000 {
        if n == 2000 {
            "two thousand".to_owned()
        } else if n > 2000 && n < 2010 {
            format!("two thousand {}", number_to_words(n % 100))
        } else if n % 100 == 0 {
            format!("{} hundred", number_to_words(n / 100))
        } else {
            number_to_words(n)
        }
    } else {
        number_to_words(n)
    }
}

/// HF `_expand_ordinal` (rule e) for the digits before the two-letter suffix: the words of the number followed
/// by a suffix recomputed from the value (`th` for n % 100 in 10..=20, else `st`/`nd`/`rd` for a last digit
/// 1/2/3, else `th`), e.g. `"1"` → `"onest"`, `"12"` → `"twelveth"`.
pub(crate) fn expand_ordinal(digits: &str) -> String {
    // n % 100 and n % 10 are the last two digits of the decimal string.
    let bytes = digits.as_bytes();
    let last = |k: usize| -> u64 {
        bytes
            .len()
            .checked_sub(k)
            .and_then(|i| bytes.get(i))
            .map_or(0, |b| u64::from(b.wrapping_sub(b'0') % 10))
    };
    let mod100 = last(2) * 10 + last(1);
    let suffix = if (10..=20).contains(&mod100) {
        "th"
    } else {
        match mod100 % 10 {
            1 => "st",
            2 => "nd",
            3 => "rd",
            _ => "th",
        }
    };
    let mut words = digits_to_words(digits);
    words.push_str(suffix);
    words
}

/// `str(int(part)) if part else 0` for one side of a dollar amount.
///
/// HF raises `ValueError` from `int()` when the part holds a comma (only possible for a comma before the first
/// or after the last digit of a run, e.g. `$,5` or `$5,.5`; rule a removes the others); here such commas are
/// ignored. Leading zeros are dropped as `int()` does.
fn dollar_part(part: &str) -> String {
    let digits: String = part.chars().filter(|c| c.is_ascii_digit()).collect();
    canonical_digits(&digits).to_owned()
}

/// HF `_expand_dollars` (rule c) for the text after `$` (matched by `[0-9.,]*[0-9]`).
///
/// The amounts stay digits; rule f spells them later.
pub(crate) fn expand_dollars(amount: &str) -> String {
    let parts: Vec<&str> = amount.split('.').collect();
    if parts.len() > 2 {
        return format!("{amount} dollars");
    }
    let dollars = parts
        .first()
        .map_or_else(|| "0".to_owned(), |p| dollar_part(p));
    let cents = parts
        .get(1)
        .map_or_else(|| "0".to_owned(), |p| dollar_part(p));
    let unit =
        |value: &str, one: &'static str, many: &'static str| if value == "1" { one } else { many };
    match (dollars != "0", cents != "0") {
        (true, true) => format!(
            "{dollars} {}, {cents} {}",
            unit(&dollars, "dollar", "dollars"),
            unit(&cents, "cent", "cents")
        ),
        (true, false) => format!("{dollars} {}", unit(&dollars, "dollar", "dollars")),
        (false, true) => format!("{cents} {}", unit(&cents, "cent", "cents")),
        (false, false) => "zero dollars".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings follow from the rules of spec §2.2 step 2.3 (`words(n)` and the f/e/c rules).

    #[test]
    fn words_follow_the_documented_grammar() {
        assert_eq!(number_to_words(0), "zero");
        assert_eq!(number_to_words(7), "seven");
        assert_eq!(number_to_words(13), "thirteen");
        assert_eq!(number_to_words(40), "forty");
        assert_eq!(number_to_words(84), "eighty-four");
        assert_eq!(number_to_words(300), "three hundred");
        assert_eq!(number_to_words(305), "three hundred five");
        assert_eq!(
            number_to_words(1984),
            "one thousand, nine hundred eighty-four"
        );
        assert_eq!(
            number_to_words(12345),
            "twelve thousand, three hundred forty-five"
        );
        assert_eq!(number_to_words(1_000_000), "one million");
        assert_eq!(number_to_words(1_000_001), "one million, one");
        assert_eq!(number_to_words(LIMIT - 1).split(", ").count(), 6);
        assert!(number_to_words(LIMIT - 1).starts_with("nine hundred ninety-nine quadrillion, "));
        assert_eq!(number_to_words(LIMIT), OUT_OF_RANGE);
        assert_eq!(number_to_words(u64::MAX), OUT_OF_RANGE);
    }

    #[test]
    fn digit_strings_of_any_length_do_not_overflow() {
        assert_eq!(parse_digits("000"), Some(0));
        assert_eq!(parse_digits("0000000000000000000000000042"), Some(42));
        assert_eq!(parse_digits("999999999999999999"), Some(LIMIT - 1));
        assert_eq!(parse_digits("1000000000000000000"), None);
        let huge = "9".repeat(5000);
        assert_eq!(expand_number(&huge), OUT_OF_RANGE);
        assert_eq!(expand_ordinal(&huge), format!("{OUT_OF_RANGE}th"));
        assert_eq!(
            expand_ordinal(&format!("{huge}1")),
            format!("{OUT_OF_RANGE}st")
        );
    }

    #[test]
    fn expand_number_special_cases_between_1000_and_3000() {
        assert_eq!(expand_number("1000"), "one thousand");
        assert_eq!(expand_number("1500"), "fifteen hundred");
        assert_eq!(expand_number("2000"), "two thousand");
        assert_eq!(expand_number("2005"), "two thousand five");
        assert_eq!(expand_number("2010"), "two thousand, ten");
        assert_eq!(expand_number("2100"), "twenty-one hundred");
        assert_eq!(expand_number("3000"), "three thousand");
        assert_eq!(expand_number("007"), "seven");
    }

    #[test]
    fn ordinal_suffix_is_recomputed() {
        assert_eq!(expand_ordinal("1"), "onest");
        assert_eq!(expand_ordinal("2"), "twond");
        assert_eq!(expand_ordinal("3"), "threerd");
        assert_eq!(expand_ordinal("4"), "fourth");
        assert_eq!(expand_ordinal("12"), "twelveth");
        assert_eq!(expand_ordinal("20"), "twentyth");
        assert_eq!(expand_ordinal("21"), "twenty-onest");
        assert_eq!(expand_ordinal("100"), "one hundredth");
        assert_eq!(expand_ordinal("0"), "zeroth");
    }

    #[test]
    fn dollars() {
        assert_eq!(expand_dollars("1.50"), "1 dollar, 50 cents");
        assert_eq!(expand_dollars("0.99"), "99 cents");
        assert_eq!(expand_dollars("0.01"), "1 cent");
        assert_eq!(expand_dollars("1"), "1 dollar");
        assert_eq!(expand_dollars("0.00"), "zero dollars");
        assert_eq!(expand_dollars(".5"), "5 cents");
        assert_eq!(expand_dollars("007"), "7 dollars");
        assert_eq!(expand_dollars("1.2.3"), "1.2.3 dollars");
        // HF raises ValueError here; the comma is ignored.
        assert_eq!(expand_dollars(",5"), "5 dollars");
    }
}
