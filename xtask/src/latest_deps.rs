//! `cargo xtask latest-deps`: the workspace's tests on the newest versions its caret requirements allow.
//!
//! The library crates state caret requirements (a downstream project resolves them afresh); `Cargo.lock`
//! pins what CI and the parity runs use. This command copies the tracked files of the working tree to
//! `target/latest-deps/ws`, resolves the dependencies there anew (`cargo update`), prints which packages
//! moved, and runs `cargo test --workspace` on that resolve with its own target directory, so the repository's
//! lockfile and build are untouched. The parity tests compare against the committed reference fixtures, so a
//! pass means parity holds on the fresh resolve too.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::repo_root;

pub fn run() -> Result<()> {
    let root = repo_root();
    let base = root.join("target/latest-deps");
    let ws = base.join("ws");
    if ws.exists() {
        std::fs::remove_dir_all(&ws).with_context(|| format!("removing {}", ws.display()))?;
    }
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root)
        .output()
        .context("git ls-files")?;
    if !listed.status.success() {
        bail!("git ls-files failed");
    }
    let mut copied = 0usize;
    for name in listed.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let rel = Path::new(std::str::from_utf8(name).context("a non-UTF-8 file name")?);
        let src = root.join(rel);
        if !src.is_file() {
            continue; // deleted in the working tree
        }
        let dst = ws.join(rel);
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(&src, &dst).with_context(|| format!("copying {}", rel.display()))?;
        copied += 1;
    }
    println!("copied {copied} files to {}", ws.display());
    let update = Command::new("cargo")
        .arg("update")
        .current_dir(&ws)
        .output()
        .context("cargo update")?;
    let log = String::from_utf8_lossy(&update.stderr);
    if !update.status.success() {
        bail!("cargo update failed:\n{log}");
    }
    let moved: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("Updating ") || l.starts_with("Adding ") || l.starts_with("Removing ")
        })
        .filter(|l| !l.starts_with("Updating crates.io index") && !l.contains(" index"))
        .collect();
    println!("{} packages differ from Cargo.lock:", moved.len());
    for l in &moved {
        println!("  {l}");
    }
    let status = Command::new("cargo")
        .args(["test", "--workspace"])
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", base.join("target"))
        .status()
        .context("cargo test")?;
    if !status.success() {
        bail!(
            "the tests fail on the fresh resolve ({} packages moved)",
            moved.len()
        );
    }
    println!(
        "latest-deps: every test passes with the newest compatible versions ({} packages moved)",
        moved.len()
    );
    Ok(())
}
