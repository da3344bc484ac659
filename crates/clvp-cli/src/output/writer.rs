//! Outputs written as they are produced ([`OutputWriter`]), and scratch files for data that must wait before it
//! can go to its output ([`Scratch`]).
//!
//! A regular file is written to its temporary file ([`super::staging`]) piece by piece and moved into place by
//! [`OutputWriter::commit`]; dropped without it, nothing is left. Standard output, a device or a FIFO is written
//! in place as the data comes (what was written before a failure stays there, as with the shell's `>`).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use super::staging::{self, Staged};
use super::{Output, Target, parent_dir, plain};

/// Bytes gathered before each write to the file, device or pipe.
const BUFFER: usize = 1 << 16;

/// Where an [`OutputWriter`]'s bytes go.
enum Sink {
    Stdout(BufWriter<io::StdoutLock<'static>>),
    Special(BufWriter<File>),
    File {
        staged: BufWriter<Staged>,
        target: PathBuf,
    },
}

/// An output written piece by piece: [`Write`] to it, then [`OutputWriter::commit`]. Its write errors name the
/// output as [`super::write_all`]'s do (`cannot write {path}: …`).
pub struct OutputWriter<'a> {
    out: &'a Output,
    sink: Sink,
}

impl Output {
    /// Start writing this output: a regular file's temporary file is created (in its directory), a device or
    /// FIFO is opened (a FIFO waits for its reader), standard output is locked.
    pub fn writer(&self) -> Result<OutputWriter<'_>> {
        let given = &self.given;
        let sink = match &self.target {
            Target::Stdout => Sink::Stdout(BufWriter::with_capacity(BUFFER, io::stdout().lock())),
            Target::Special => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(given)
                    .map_err(|e| anyhow!("cannot write {}: {}", given.display(), plain(&e)))?;
                Sink::Special(BufWriter::with_capacity(BUFFER, f))
            }
            Target::File(file) => {
                let dir = parent_dir(file);
                let staged = staging::create(dir).map_err(|e| {
                    anyhow!(
                        "cannot write {}: cannot create a file in {}: {}",
                        given.display(),
                        dir.display(),
                        plain(&e)
                    )
                })?;
                Sink::File {
                    staged: BufWriter::with_capacity(BUFFER, staged),
                    target: file.clone(),
                }
            }
        };
        Ok(OutputWriter { out: self, sink })
    }
}

impl OutputWriter<'_> {
    /// `e` as an error naming the output.
    fn named(&self, e: &io::Error) -> io::Error {
        let msg = match self.sink {
            Sink::Stdout(_) => format!(
                "cannot write to standard output ({} -): {}",
                self.out.arg,
                plain(e)
            ),
            _ => format!("cannot write {}: {}", self.out.given.display(), plain(e)),
        };
        io::Error::new(e.kind(), msg)
    }

    /// Overwrite the first bytes written with `bytes` (a header whose sizes are known only at the end):
    /// `false`, doing nothing, when the output is a stream (standard output, a FIFO, a device).
    pub fn rewrite_start(&mut self, bytes: &[u8]) -> Result<bool> {
        let Sink::File { staged, .. } = &mut self.sink else {
            return Ok(false);
        };
        let r = staged
            .flush()
            .and_then(|()| staged.get_mut().rewrite_start(bytes));
        r.map_err(|e| anyhow!("cannot write {}: {}", self.out.given.display(), plain(&e)))?;
        Ok(true)
    }

    /// Finish the output: flush it; a regular file is synced, given mode 0644 and moved into place.
    pub fn commit(self) -> Result<()> {
        let out = self.out;
        let fail = |e: &io::Error| anyhow!("cannot write {}: {}", out.given.display(), plain(e));
        match self.sink {
            Sink::Stdout(mut w) => w.flush().map_err(|e| {
                anyhow!(
                    "cannot write to standard output ({} -): {}",
                    out.arg,
                    plain(&e)
                )
            }),
            Sink::Special(mut w) => w.flush().map_err(|e| fail(&e)),
            Sink::File { staged, target } => {
                let mut staged = staged.into_inner().map_err(|e| fail(e.error()))?;
                staged.finish().map_err(|e| fail(&e))?;
                staged.commit(&target).map_err(|e| {
                    anyhow!(
                        "cannot move the output into place at {}: {}",
                        out.given.display(),
                        plain(&e)
                    )
                })
            }
        }
    }
}

impl Write for OutputWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = match &mut self.sink {
            Sink::Stdout(w) => w.write(buf),
            Sink::Special(w) => w.write(buf),
            Sink::File { staged, .. } => staged.write(buf),
        };
        r.map_err(|e| self.named(&e))
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = match &mut self.sink {
            Sink::Stdout(w) => w.flush(),
            Sink::Special(w) => w.flush(),
            Sink::File { staged, .. } => staged.flush(),
        };
        r.map_err(|e| self.named(&e))
    }
}

/// An unnamed temporary file in the temporary directory (`TMPDIR`, else `/tmp`): data that must wait for its
/// output (an `.ecdc` body before its header, samples before their peak is known) waits on disk, not in
/// memory. Nothing of it outlives the process, whatever ends it (where the file system has no `O_TMPFILE`, its
/// name is removed the moment it is made).
pub struct Scratch {
    file: BufWriter<File>,
    dir: PathBuf,
}

/// A new, empty [`Scratch`] file.
pub fn scratch() -> Result<Scratch> {
    let dir = std::env::temp_dir();
    let file = staging::create(&dir)
        .and_then(Staged::into_scratch)
        .map_err(|e| {
            anyhow!(
                "cannot create a temporary file in {}: {} (set TMPDIR to a writable directory)",
                dir.display(),
                plain(&e)
            )
        })?;
    Ok(Scratch {
        file: BufWriter::with_capacity(BUFFER, file),
        dir,
    })
}

fn scratch_error(dir: &Path, what: &str, e: &io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "cannot {what} a temporary file in {}: {}",
            dir.display(),
            plain(e)
        ),
    )
}

impl Scratch {
    /// Everything written so far, read from the start (the file is flushed and rewound).
    pub fn into_reader(self) -> Result<ScratchReader> {
        let dir = self.dir;
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| scratch_error(&dir, "write", e.error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| scratch_error(&dir, "read back", &e))?;
        Ok(ScratchReader {
            file: BufReader::with_capacity(BUFFER, file),
            dir,
        })
    }
}

impl Write for Scratch {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .write(buf)
            .map_err(|e| scratch_error(&self.dir, "write", &e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file
            .flush()
            .map_err(|e| scratch_error(&self.dir, "write", &e))
    }
}

/// A [`Scratch`] file read back from its start.
pub struct ScratchReader {
    file: BufReader<File>,
    dir: PathBuf,
}

impl Read for ScratchReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file
            .read(buf)
            .map_err(|e| scratch_error(&self.dir, "read back", &e))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::scratch;
    use crate::output::{Dash, Output};

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_writer_leaves_nothing_unless_committed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.bin");
        std::fs::write(&path, b"old").expect("write");
        let out = Output::new("--output", &path, Dash::Refused { why: "test" }).expect("output");
        let mut w = out.writer().expect("writer");
        w.write_all(b"half of it").expect("write");
        drop(w);
        assert_eq!(names(dir.path()), ["out.bin"]);
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        let mut w = out.writer().expect("writer");
        for piece in [&b"new "[..], b"and ", b"whole"] {
            w.write_all(piece).expect("write");
        }
        w.commit().expect("commit");
        assert_eq!(names(dir.path()), ["out.bin"]);
        assert_eq!(std::fs::read(&path).expect("read"), b"new and whole");
    }

    #[test]
    fn a_scratch_file_reads_back_what_was_written() {
        let mut s = scratch().expect("scratch");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        s.write_all(&data).expect("write");
        let mut back = Vec::new();
        s.into_reader()
            .expect("reader")
            .read_to_end(&mut back)
            .expect("read");
        assert!(back == data);
    }
}
