//! Unix pieces of the suites: device nodes and FIFOs made in a temporary directory, and a look at what a
//! running `clvp` holds open.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::DEADLINE;

/// A character device `major:minor` made at `path` (a test never touches the real /dev/null or /dev/full), or
/// the reason it cannot be made or opened here.
pub fn char_device(path: &Path, major: u32, minor: u32) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated path that outlives the call.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    if r != 0 {
        return Err(format!(
            "mknod {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // A file system mounted nodev, or a container's device rules, let the node be made but not opened.
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|e| format!("open {}: {e}", path.display()))
}

pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a NUL-terminated path that outlives the call.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        r,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn is_char_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

pub fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Wait until `child` holds a temporary file in `dir` open: `Ok(true)` for an unnamed one (`O_TMPFILE`),
/// `Ok(false)` for a named `.clvp-*` file; `Err` if it ends first or the deadline passes.
pub fn temp_file_open(child: &mut std::process::Child, dir: &Path) -> Result<bool, String> {
    let dir = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("ended ({status}) before it could be interrupted"));
        }
        for fd in std::fs::read_dir(&fds).into_iter().flatten().flatten() {
            let Ok(to) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if to.parent() != Some(dir.as_path()) {
                continue;
            }
            let name = to.to_string_lossy();
            if name.contains("/.clvp-") {
                return Ok(false);
            }
            if name.ends_with(" (deleted)") {
                return Ok(true);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("no temporary file after {DEADLINE:?}"))
}
