//! How the commands name and recognise their input paths: `-` as standard input, the lowercase extension.

use std::path::Path;

use clvp::raw::audio::{STDIN_LABEL, STDIN_PATH};

/// The path's extension in lower case (empty without one).
pub(crate) fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The input as errors name it: `-` is standard input.
pub(crate) fn label(path: &Path) -> String {
    if path.as_os_str() == STDIN_PATH {
        STDIN_LABEL.to_string()
    } else {
        path.display().to_string()
    }
}
