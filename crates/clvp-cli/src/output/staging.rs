//! Temporary files beside an output, renamed over it once complete.
//!
//! On Linux the file is created without a name (`O_TMPFILE` in the destination's directory): until the rename,
//! nothing of it is visible, and a crash or SIGKILL leaves nothing. Since `linkat` cannot replace a file, it is
//! linked to a fresh unique name and that name renamed over the destination; the short-lived name is
//! registered with the signal handler ([`super::cleanup`]). Where the file system has no `O_TMPFILE` (or
//! `CLVP_NO_TMPFILE` is set, which the tests use to reach this path), the file is created under a unique name
//! (`.clvp-XXXXXXXXXXXXXXXX.tmp`) registered from before its creation to its rename.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::cleanup::{Registered, register};

/// Setting this environment variable (to anything) skips `O_TMPFILE`, as on a file system without it.
pub const NO_TMPFILE: &str = "CLVP_NO_TMPFILE";

/// Attempts at a fresh name before giving up (a collision of 64 random bits is already unheard of).
const ATTEMPTS: usize = 100;

/// A temporary file in `dir` (open for reading and writing), not yet under its destination's name. Dropping it
/// without [`Staged::commit`] removes it.
pub struct Staged {
    file: File,
    dir: PathBuf,
    named: Option<Named>,
}

/// Written piece by piece ([`Staged::finish`] once complete).
impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A temporary file's name and its registration; dropping it removes the file.
struct Named {
    path: PathBuf,
    _registered: Registered,
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A name for a temporary file in `dir` that no other call of this process, and almost surely no other
/// process, picks.
fn fresh_name(dir: &Path) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded from the OS once per thread and stepped for each new one.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    dir.join(format!(".clvp-{:016x}.tmp", h.finish()))
}

/// Create an empty temporary file in `dir`.
pub fn create(dir: &Path) -> io::Result<Staged> {
    #[cfg(target_os = "linux")]
    if std::env::var_os(NO_TMPFILE).is_none() {
        use std::os::unix::fs::OpenOptionsExt;
        let unnamed = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        match unnamed {
            Ok(file) => {
                return Ok(Staged {
                    file,
                    dir: dir.to_path_buf(),
                    named: None,
                });
            }
            // No O_TMPFILE on this file system (EOPNOTSUPP), or a kernel before 3.11 (EISDIR, EINVAL).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    for _ in 0..ATTEMPTS {
        let path = fresh_name(dir);
        // Registered before it exists: a signal at any moment after the file appears removes it.
        let registered = register(&path);
        match options.open(&path) {
            Ok(file) => {
                return Ok(Staged {
                    file,
                    dir: dir.to_path_buf(),
                    named: Some(Named {
                        path,
                        _registered: registered,
                    }),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from(io::ErrorKind::AlreadyExists))
}

impl Staged {
    /// Write `bytes` to the file, flushed to disk, and give it mode 0644.
    pub fn fill(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.finish()
    }

    /// A scratch file: the same temporary file with no name at all (a named one loses its name now), read and
    /// written by this process only and gone when the handle is closed.
    pub fn into_scratch(self) -> io::Result<File> {
        let Staged { file, named, .. } = self;
        if let Some(named) = named {
            // Removed here to report a failure; dropping `named` then finds nothing under the name.
            std::fs::remove_file(&named.path)?;
        }
        Ok(file)
    }

    /// Overwrite the file's first bytes with `bytes` (a header whose sizes are known only at the end) and go
    /// back to its end.
    pub fn rewrite_start(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(bytes)?;
        self.file.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// Flush the written data to disk and give the file mode 0644.
    pub fn finish(&mut self) -> io::Result<()> {
        self.file.sync_all()?;
        // Created 0600; an output file gets the usual 0644 (as `File::create` under umask 022). Best effort:
        // some file systems (FAT, SMB mounts) have no modes to set.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = self
                .file
                .set_permissions(std::fs::Permissions::from_mode(0o644));
        }
        Ok(())
    }

    /// Move the file to `target` (atomic within one file system), replacing what is there.
    pub fn commit(mut self, target: &Path) -> io::Result<()> {
        let named = match self.named.take() {
            Some(named) => named,
            None => self.link()?,
        };
        std::fs::rename(&named.path, target)?;
        // Renamed: nothing to remove (dropping `named` tries, and finds nothing under the name).
        drop(named);
        Ok(())
    }

    /// Give the unnamed file a fresh name in its directory (registered before it is made).
    #[cfg(target_os = "linux")]
    fn link(&self) -> io::Result<Named> {
        for _ in 0..ATTEMPTS {
            let path = fresh_name(&self.dir);
            let registered = register(&path);
            match link_unnamed(&self.file, &path) {
                Ok(()) => {
                    return Ok(Named {
                        path,
                        _registered: registered,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::from(io::ErrorKind::AlreadyExists))
    }

    #[cfg(not(target_os = "linux"))]
    fn link(&self) -> io::Result<Named> {
        // Every file is named off Linux (`create` never makes an unnamed one).
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// `linkat` of an `O_TMPFILE` file to `path`: through `/proc/self/fd/N` (any user), or where `/proc` is not
/// mounted through `AT_EMPTY_PATH` (which older kernels allow only with CAP_DAC_READ_SEARCH).
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, path: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;

    let fd = file.as_raw_fd();
    let to = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let proc = CString::new(format!("/proc/self/fd/{fd}"))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: NUL-terminated strings that outlive the call; `fd` is open for the life of `file`.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOENT) {
        return Err(e);
    }
    // SAFETY: as above; the empty path with AT_EMPTY_PATH names `fd` itself.
    let r = unsafe {
        libc::linkat(
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
