//! Temporary names removed when the process is stopped by SIGINT, SIGTERM or SIGHUP.
//!
//! An output is written to a temporary file beside it. On Linux that file has no name until the moment before
//! it is renamed into place (`O_TMPFILE`), so nothing is left even on SIGKILL; the short-lived name it gets for
//! the rename, and the named temporary file used where the file system has no `O_TMPFILE`, are registered here.
//! The handler, installed on the first registration, removes every registered name, then lets the signal take
//! its usual course (the exit status says the process was interrupted). A signal the process ignores (`nohup`)
//! stays ignored.

use std::path::Path;

/// A name registered for removal on a signal; dropping it unregisters the name (it does not remove the file).
pub struct Registered {
    #[cfg(unix)]
    slot: Option<(usize, *mut std::ffi::c_char)>,
}

#[cfg(unix)]
mod imp {
    use std::ffi::{CString, c_char, c_int};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::null_mut;
    use std::sync::Once;
    use std::sync::atomic::{AtomicPtr, Ordering};

    use super::Registered;

    /// Room for the names of one run: a command writes at most two outputs, each with one name at a time.
    const SLOTS: usize = 16;

    /// The registered names, as C strings leaked by `CString::into_raw`. The handler takes a name out with an
    /// atomic swap (async-signal-safe) before removing it; [`Registered`]'s drop frees a name only if it is
    /// still in its slot, so the two never both own one.
    static NAMES: [AtomicPtr<c_char>; SLOTS] = [const { AtomicPtr::new(null_mut()) }; SLOTS];
    static INSTALL: Once = Once::new();

    pub fn register(path: &Path) -> Registered {
        INSTALL.call_once(install);
        let Ok(name) = CString::new(path.as_os_str().as_bytes()) else {
            return Registered { slot: None };
        };
        let raw = name.into_raw();
        for (i, slot) in NAMES.iter().enumerate() {
            if slot
                .compare_exchange(null_mut(), raw, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Registered {
                    slot: Some((i, raw)),
                };
            }
        }
        // SAFETY: `raw` came from `CString::into_raw` above and was stored nowhere.
        drop(unsafe { CString::from_raw(raw) });
        tracing::debug!(path = %path.display(), "no free slot: this temporary name is not removed on a signal");
        Registered { slot: None }
    }

    impl Drop for Registered {
        fn drop(&mut self) {
            if let Some((i, raw)) = self.slot
                && NAMES[i]
                    .compare_exchange(raw, null_mut(), Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                // SAFETY: the name was in its slot, so the handler did not take it; it came from
                // `CString::into_raw` in `register` and nobody else can reach it now.
                drop(unsafe { CString::from_raw(raw) });
            }
        }
    }

    fn install() {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: plain sigaction calls with zero-initialised (valid) structs; the handler only does
            // async-signal-safe work (atomic swaps, unlink, signal, raise).
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
                new.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaction(sig, &new, std::ptr::null_mut());
            }
        }
    }

    extern "C" fn on_signal(sig: c_int) {
        for slot in &NAMES {
            let name = slot.swap(null_mut(), Ordering::SeqCst);
            if !name.is_null() {
                // SAFETY: a NUL-terminated string from `CString::into_raw`, now owned by this handler (never
                // freed: the process is about to end).
                unsafe { libc::unlink(name) };
            }
        }
        // SAFETY: async-signal-safe; the signal is blocked while this handler runs, so it is delivered with
        // its default action (the process ends as interrupted) as soon as the handler returns.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// Register `path` for removal if the process is stopped by a signal while the returned value lives.
#[cfg(unix)]
pub fn register(path: &Path) -> Registered {
    imp::register(path)
}

/// Signals are not handled here off Unix: the name is not registered.
#[cfg(not(unix))]
pub fn register(_path: &Path) -> Registered {
    Registered {}
}
