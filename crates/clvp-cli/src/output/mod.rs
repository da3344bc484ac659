//! The outputs of the commands, resolved and checked before any work, written once the work is done
//! ([`write_all`]) or as it is produced ([`Output::writer`], [`writer`]); the only way the commands write.
//!
//! A regular file (or a name not taken yet) is replaced atomically: the data goes to a temporary file in the
//! destination's directory, flushed, and renamed into place, so a failure or a signal never leaves a
//! half-written output or a temporary file behind ([`staging`], [`cleanup`]). A symlink is followed and its
//! target replaced the same way (the link stays a link). A character or block device or a FIFO is written in
//! place, as the shell's `>` does, and its write errors are reported (`/dev/full`: no space left on device);
//! a socket, which cannot be opened as a file, is refused. `-` is standard output where the command allows it.
//! An output that is one of the inputs, or another output, is refused before any work ([`same`]). Data that
//! must wait before it can go to its output waits in an unnamed scratch file ([`scratch`]); a safetensors
//! output too large to build in memory is written header first ([`safetensors_header`]).

mod cleanup;
mod same;
mod staging;
mod tensors;
mod writer;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use safetensors::{Dtype, View};

pub use same::{Input, model_files, refuse_same, refuse_terminal_stdin};
pub use tensors::{TensorHead, safetensors_header};
pub use writer::{OutputWriter, Scratch, ScratchReader, scratch};

/// One tensor to write: name, dtype, shape, little-endian bytes.
pub struct TensorOut {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl TensorOut {
    pub fn f32(name: &str, shape: Vec<usize>, values: &[f32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorOut {
            name: name.to_string(),
            dtype: Dtype::F32,
            shape,
            data,
        }
    }

    pub fn i64(name: &str, shape: Vec<usize>, values: &[i64]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorOut {
            name: name.to_string(),
            dtype: Dtype::I64,
            shape,
            data,
        }
    }
}

impl View for &TensorOut {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Where an output's bytes go.
enum Target {
    /// Standard output (`-`).
    Stdout,
    /// A device or FIFO: opened and written in place.
    Special,
    /// A regular file or a name not taken yet (a symlink's final target): replaced atomically.
    File(PathBuf),
}

/// One output of a command: the argument that named it, the path as given, and where it resolved to.
pub struct Output {
    arg: &'static str,
    given: PathBuf,
    target: Target,
}

/// Whether a command accepts `-` for this output (standard output).
#[derive(Clone, Copy)]
pub enum Dash {
    /// `-` is standard output; `what` names the format, for the refusal to write it to a terminal.
    Stdout { what: &'static str },
    /// `-` is refused with this reason.
    Refused { why: &'static str },
}

/// Symlinks followed before giving up, as the kernel's limit (ELOOP).
const MAX_LINKS: usize = 40;

/// `path`'s directory (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An I/O error as the OS words it, without the path some wrappers append.
fn plain(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::from(e.kind()),
    }
}

impl Output {
    /// Resolve the output `arg` names: `-`, a special file, or the regular file (through any symlinks) to
    /// replace, whose directory must exist.
    pub fn new(arg: &'static str, path: &Path, dash: Dash) -> Result<Output> {
        let output = |target| Output {
            arg,
            given: path.to_path_buf(),
            target,
        };
        if path.as_os_str().is_empty() {
            bail!("{arg}: the output path is empty");
        }
        if path.as_os_str() == "-" {
            return match dash {
                Dash::Stdout { what } if std::io::stdout().is_terminal() => bail!(
                    "{arg} -: standard output is a terminal, which is no place for {what}; \
                     redirect it to a file or a pipe"
                ),
                Dash::Stdout { .. } => Ok(output(Target::Stdout)),
                Dash::Refused { why } => {
                    bail!("{arg} -: standard output is not accepted here: {why}")
                }
            };
        }
        let mut file = path.to_path_buf();
        for _ in 0..MAX_LINKS {
            let meta = match std::fs::symlink_metadata(&file) {
                Ok(m) => m,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    // Not there yet (ENOTDIR: a component of the path is a file): its directory must be.
                    check_dir(path, parent_dir(&file))?;
                    if path.as_os_str().to_string_lossy().ends_with('/') {
                        bail!(
                            "cannot write {}: the name ends in /, as a directory's",
                            path.display()
                        );
                    }
                    return Ok(output(Target::File(file)));
                }
                Err(e) => bail!("cannot write {}: {}", path.display(), plain(&e)),
            };
            let kind = meta.file_type();
            if kind.is_symlink() {
                let link = std::fs::read_link(&file).with_context(|| {
                    format!("cannot write {}: cannot read the symlink", path.display())
                })?;
                file = parent_dir(&file).join(link);
            } else if kind.is_dir() {
                bail!("cannot write {}: it is a directory", path.display());
            } else if kind.is_file() {
                check_dir(path, parent_dir(&file))?;
                return Ok(output(Target::File(file)));
            } else {
                if is_socket(&meta) {
                    bail!(
                        "cannot write {}: it is a socket, which cannot be opened as a file",
                        path.display()
                    );
                }
                return Ok(output(Target::Special));
            }
        }
        bail!(
            "cannot write {}: too many levels of symbolic links",
            path.display()
        )
    }

    /// Whether the output is standard output or a device or FIFO: a stream with no extension to pick a format.
    pub fn is_stream(&self) -> bool {
        !matches!(self.target, Target::File(_))
    }

    /// The output as given on the command line.
    pub fn path(&self) -> &Path {
        &self.given
    }

    /// Write `bytes` to this output (see [`write_all`]).
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        write_all(&[(self, bytes)])
    }
}

#[cfg(unix)]
fn is_socket(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_socket()
}

#[cfg(not(unix))]
fn is_socket(_meta: &std::fs::Metadata) -> bool {
    false
}

/// The directory an output is written into must exist.
fn check_dir(path: &Path, dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Err(_) => bail!(
            "cannot write {}: the directory {} does not exist",
            path.display(),
            dir.display()
        ),
        Ok(m) if !m.is_dir() => bail!(
            "cannot write {}: {} is not a directory",
            path.display(),
            dir.display()
        ),
        Ok(_) => Ok(()),
    }
}

/// Write several outputs: the regular files are staged (written to temporary files) first, then the streams
/// are written, then the staged files are renamed into place; a failure before the renames leaves none of
/// the regular files behind.
pub fn write_all(outputs: &[(&Output, &[u8])]) -> Result<()> {
    let mut staged = Vec::new();
    for (out, bytes) in outputs {
        if let Target::File(file) = &out.target {
            let dir = parent_dir(file);
            let mut s = staging::create(dir).map_err(|e| {
                anyhow!(
                    "cannot write {}: cannot create a file in {}: {}",
                    out.given.display(),
                    dir.display(),
                    plain(&e)
                )
            })?;
            s.fill(bytes)
                .map_err(|e| anyhow!("cannot write {}: {}", out.given.display(), plain(&e)))?;
            staged.push((out, file, s));
        }
    }
    for (out, bytes) in outputs {
        match out.target {
            Target::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(bytes)
                    .and_then(|()| stdout.flush())
                    .map_err(|e| {
                        anyhow!(
                            "cannot write to standard output ({} -): {}",
                            out.arg,
                            plain(&e)
                        )
                    })?;
            }
            Target::Special => {
                let fail = |e: std::io::Error| {
                    anyhow!("cannot write {}: {}", out.given.display(), plain(&e))
                };
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&out.given)
                    .map_err(fail)?;
                f.write_all(bytes).and_then(|()| f.flush()).map_err(fail)?;
            }
            Target::File(_) => {}
        }
    }
    for (out, file, s) in staged {
        s.commit(file).map_err(|e| {
            anyhow!(
                "cannot move the output into place at {}: {}",
                out.given.display(),
                plain(&e)
            )
        })?;
    }
    Ok(())
}

/// The bytes of a safetensors file holding `tensors`.
pub fn safetensors_bytes(tensors: &[TensorOut]) -> Result<Vec<u8>> {
    let views: Vec<(&str, &TensorOut)> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    safetensors::serialize(views, None).context("cannot serialize the safetensors output")
}

/// Serialize tensors to a safetensors output.
pub fn write_safetensors(out: &Output, tensors: &[TensorOut]) -> Result<()> {
    out.write(&safetensors_bytes(tensors)?)
}
