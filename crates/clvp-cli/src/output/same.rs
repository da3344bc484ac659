//! Refusing an output that is one of the inputs, or another output, before any work is done; and two inputs
//! that both read standard input (`-`), which can be read only once.
//!
//! Two names are the same file when both exist and have the same device and inode (a hard link, a symlink,
//! `./x` and `x`), or, when one does not exist yet, when their directories resolve to the same one and the
//! file names agree. Character devices (`/dev/null`) are never compared: writing one twice is fine.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::{Output, Target};

/// An input file and the argument that named it (`--audio`, `the input`, `--model`).
pub struct Input {
    pub arg: &'static str,
    pub path: PathBuf,
}

impl Input {
    pub fn new(arg: &'static str, path: &Path) -> Input {
        Input {
            arg,
            path: path.to_path_buf(),
        }
    }
}

/// The files of a local checkpoint directory, or the checkpoint file itself (Meta's `.th`), given as `arg` (none
/// for a hub id): they are read, so an output must not be one of them.
pub fn model_files(arg: &'static str, spec: &Path) -> Vec<Input> {
    if spec.is_file() {
        // A checkpoint file (Meta's `.th`; Tortoise's `.pth`, loaded with its partner and the config beside it).
        let mut files = vec![spec.to_path_buf()];
        if spec.extension().is_some_and(|e| e == "pth")
            && let Some(dir) = spec.parent()
        {
            for name in ["autoregressive.pth", "clvp2.pth", "config.json"] {
                let p = dir.join(name);
                if p.is_file() && p != spec {
                    files.push(p);
                }
            }
        }
        return files.into_iter().map(|path| Input { arg, path }).collect();
    }
    let Ok(entries) = std::fs::read_dir(spec) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|path| Input { arg, path })
        .collect()
}

#[derive(PartialEq)]
enum Id {
    /// An existing file: device and inode.
    Inode(u64, u64),
    /// A name not taken yet: its resolved directory and file name.
    Name(PathBuf),
}

/// The identity of `path`, or `None` for a character device (never compared).
fn identity(path: &Path) -> Option<Id> {
    match std::fs::metadata(path) {
        Ok(m) => inode(&m),
        Err(_) => {
            let name = path.file_name()?;
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            Some(Id::Name(dir.join(name)))
        }
    }
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> Option<Id> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if m.file_type().is_char_device() {
        return None;
    }
    Some(Id::Inode(m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn inode(_m: &std::fs::Metadata) -> Option<Id> {
    None
}

/// `--output x and --audio y` (or `--output and --audio` when both are spelled the same).
fn both(a: &str, pa: &Path, b: &str, pb: &Path) -> String {
    if pa == pb {
        format!("{a} and {b} name the same file {}", pa.display())
    } else {
        format!(
            "{a} {} and {b} {} name the same file",
            pa.display(),
            pb.display()
        )
    }
}

/// Whether an input is `-`, standard input.
fn is_stdin(input: &Input) -> bool {
    input.path.as_os_str() == "-"
}

/// Fail, naming both arguments, if more than one input is `-`: standard input can be read only once.
fn refuse_stdin_twice(inputs: &[Input]) -> Result<()> {
    let mut dashes = inputs.iter().filter(|i| is_stdin(i));
    if let (Some(first), Some(second)) = (dashes.next(), dashes.next()) {
        if first.arg == second.arg {
            bail!(
                "{} - is given twice: standard input can be read only once; give a file for all but one",
                first.arg
            );
        }
        bail!(
            "{} - and {} - both read standard input, which can be read only once; give a file for one of them",
            first.arg,
            second.arg
        );
    }
    Ok(())
}

/// Fail if the input `arg` is `-` and standard input is a terminal: audio or codes cannot be typed, and the
/// command would wait for them forever.
pub fn refuse_terminal_stdin(arg: &str, path: &Path, what: &str) -> Result<()> {
    use std::io::IsTerminal;
    if path.as_os_str() == "-" && std::io::stdin().is_terminal() {
        bail!(
            "{arg} -: standard input is a terminal, which cannot give {what}; pipe or redirect them into it"
        );
    }
    Ok(())
}

/// Fail, naming both arguments, if an output is an input or another output, or if two inputs are `-`.
pub fn refuse_same(outputs: &[&Output], inputs: &[Input]) -> Result<()> {
    refuse_stdin_twice(inputs)?;
    let ids: Vec<Option<Id>> = outputs
        .iter()
        .map(|o| match &o.target {
            Target::Stdout => None,
            Target::Special => identity(&o.given),
            Target::File(file) => identity(file),
        })
        .collect();
    for (k, out) in outputs.iter().enumerate() {
        for earlier in &outputs[..k] {
            if matches!(out.target, Target::Stdout) && matches!(earlier.target, Target::Stdout) {
                bail!(
                    "{} and {} both name standard output (-); give a file for one of them",
                    earlier.arg,
                    out.arg
                );
            }
        }
        let Some(id) = &ids[k] else { continue };
        for (j, earlier) in outputs[..k].iter().enumerate() {
            if ids[j].as_ref() == Some(id) {
                bail!("{}", both(earlier.arg, &earlier.given, out.arg, &out.given));
            }
        }
        for input in inputs.iter().filter(|i| !is_stdin(i)) {
            if identity(&input.path).as_ref() == Some(id) {
                bail!("{}", both(out.arg, &out.given, input.arg, &input.path));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tortoise_file_brings_its_partner_and_config() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for name in [
            "autoregressive.pth",
            "clvp2.pth",
            "config.json",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        let mut got: Vec<String> = model_files("--model", &dir.path().join("clvp2.pth"))
            .into_iter()
            .filter_map(|i| i.path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        got.sort();
        assert_eq!(got, ["autoregressive.pth", "clvp2.pth", "config.json"]);
        let th = dir.path().join("encodec_24khz.th");
        std::fs::write(&th, b"x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(model_files("--model", &th).len(), 1);
    }
}
