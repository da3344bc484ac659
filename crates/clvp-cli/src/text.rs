//! Text files named on the command line (`--text-file`): a regular file, a pipe (`<(cmd)`, a FIFO), a device or
//! `-` (standard input), read up to [`TEXT_FILE_CAP`] bytes. A source with no end (`/dev/zero`, `yes |`) or a
//! file too large for a text is an error naming the file and the cap, after reading no more than the cap.

use std::io::Read;
use std::path::Path;

/// The most bytes a text file may hold: 1 MiB, thousands of sentences (a text of more than a few hundred
/// tokens does not fit the models anyway).
pub const TEXT_FILE_CAP: u64 = 1 << 20;

/// A text file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TextFileError {
    /// Missing, unreadable, a directory.
    #[error("cannot read text file {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    /// More than [`TEXT_FILE_CAP`] bytes (or no end).
    #[error(
        "cannot read text file {file}: it holds more than {cap} bytes (1 MiB), the limit of a text file; \
         split it"
    )]
    TooLarge { file: String, cap: u64 },
    /// Not UTF-8.
    #[error(
        "cannot read text file {file}: stream did not contain valid UTF-8 (the first invalid byte is at \
         offset {offset}); convert the file to UTF-8"
    )]
    NotUtf8 { file: String, offset: usize },
}

/// The name of `path` in messages: `-` is standard input.
fn label(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "- (standard input)".to_string()
    } else {
        path.display().to_string()
    }
}

/// Read the text file `path` (`-`: standard input), at most [`TEXT_FILE_CAP`] bytes of UTF-8.
pub fn read_text_file(path: &Path) -> Result<String, TextFileError> {
    let file = label(path);
    let io = |source| TextFileError::Io {
        file: file.clone(),
        source,
    };
    let mut bytes = Vec::new();
    // One byte past the cap tells a file of exactly the cap from a larger one.
    let limit = TEXT_FILE_CAP + 1;
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .map_err(io)?;
    }
    if bytes.len() as u64 > TEXT_FILE_CAP {
        return Err(TextFileError::TooLarge {
            file,
            cap: TEXT_FILE_CAP,
        });
    }
    String::from_utf8(bytes).map_err(|e| TextFileError::NotUtf8 {
        file,
        offset: e.utf8_error().valid_up_to(),
    })
}

/// The one text of a file (`embed-text`, `generate`): its content less the line break that ends it.
pub fn read_one_text(path: &Path) -> Result<String, TextFileError> {
    let mut text = read_text_file(path)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// The text of `--text` or, without it, of `--text-file` (see [`read_one_text`]).
pub fn text_arg(text: Option<&str>, file: Option<&Path>) -> anyhow::Result<String> {
    match (text, file) {
        (Some(t), _) => Ok(t.to_string()),
        (None, Some(p)) => Ok(read_one_text(p)?),
        (None, None) => anyhow::bail!("no text: give --text TEXT or --text-file FILE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (at, over) = (dir.path().join("at.txt"), dir.path().join("over.txt"));
        let cap = TEXT_FILE_CAP as usize;
        std::fs::write(&at, "a".repeat(cap)).expect("write");
        std::fs::write(&over, "a".repeat(cap + 1)).expect("write");
        assert_eq!(read_text_file(&at).expect("at the cap").len(), cap);
        let err = read_text_file(&over).expect_err("over the cap").to_string();
        assert!(
            err.contains("over.txt") && err.contains("1048576 bytes"),
            "{err}"
        );
    }

    #[test]
    fn one_text_loses_its_final_line_break_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("t.txt");
        std::fs::write(&p, "Hello.\n\nWorld.\r\n").expect("write");
        assert_eq!(read_one_text(&p).expect("read"), "Hello.\n\nWorld.");
    }
}
