//! Running the `clvp` binary from an end-to-end suite: its output, its stderr as text, a path as an argument.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `clvp ARGS…`, waited for.
pub fn clvp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clvp"))
        .args(args)
        .output()
        .expect("the clvp binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as an argument (the suites' temporary and fixture paths are UTF-8).
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
