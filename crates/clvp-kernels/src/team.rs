//! A fork-join for the decoding step's products: the calling thread plus helper threads that stay
//! awake between calls.
//!
//! A decoding step runs about 120 products one after another, with small host and tensor ops between
//! them. Called from outside rayon's pool, each product through rayon queues its job, blocks the
//! caller on a latch and wakes workers that went to sleep in the gap: futex round trips, and shares
//! that start late. Here the caller computes share 0 itself and `rayon::current_num_threads() − 1`
//! helpers the others; an idle helper spins, then yields its core, for `SPIN` after each call (so
//! the next product starts on every thread at once) and parks after that. A call made while the team
//! is busy (nested, or from another thread), or with another thread count, runs through rayon.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle helper spins before it parks.
const SPIN: Duration = Duration::from_micros(500);

/// A job: called once with every index `0..=helpers`.
type Job<'a> = dyn Fn(usize) + Sync + 'a;

struct Team {
    helpers: Vec<Helper>,
    /// Bumped once per call; a helper runs the job when it sees a new value.
    seq: AtomicUsize,
    /// Helpers done with the current call.
    done: AtomicUsize,
    /// The current call's job, written only while every helper is idle (before `seq` is bumped).
    job: UnsafeCell<Option<&'static Job<'static>>>,
    panicked: AtomicBool,
    /// Held for a call; a call that finds it held (nested, or from another thread) runs on rayon.
    busy: Mutex<()>,
}

struct Helper {
    thread: Thread,
    parked: AtomicBool,
}

// SAFETY: `job` is written by the caller holding `busy` while every helper is idle, and read by the
// helpers only between the `seq` bump (Release/Acquire) and their `done` increment.
unsafe impl Sync for Team {}

/// Run `f(0)`, …, `f(n - 1)` in parallel, `n` being rayon's thread count: on the helper team when it
/// is free and of that size, else through rayon. Returns once every call has returned; a panic in
/// any of them is resumed here.
pub fn fork_join(f: &(dyn Fn(usize) + Sync)) {
    let n = rayon::current_num_threads();
    if n > 1
        && let Some(team) = team()
        && team.helpers.len() + 1 == n
    {
        // A panicking job poisons the lock; the team itself is consistent again by then.
        let guard = match team.busy.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(guard) = guard {
            team.run(f);
            drop(guard);
            return;
        }
    }
    rayon::scope(|s| {
        for i in 1..n {
            s.spawn(move |_| f(i));
        }
        f(0);
    });
}

/// `f(0)`, …, `f(parts - 1)` over the threads of [`fork_join`] (thread `i` takes parts `i`, `i + n`, …),
/// the results in order.
pub fn map_parts<T: Send>(parts: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let slots: Vec<Mutex<Option<T>>> = (0..parts).map(|_| Mutex::new(None)).collect();
    let n = rayon::current_num_threads().max(1);
    fork_join(&|i| {
        for (k, slot) in slots.iter().enumerate().skip(i).step_by(n) {
            let value = f(k);
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        }
    });
    slots
        .into_iter()
        .filter_map(|s| s.into_inner().unwrap_or_else(PoisonError::into_inner))
        .collect()
}

fn team() -> Option<&'static Team> {
    static TEAM: OnceLock<Option<&'static Team>> = OnceLock::new();
    *TEAM.get_or_init(|| Team::start(rayon::current_num_threads().saturating_sub(1)))
}

impl Team {
    /// A team of `helpers` threads, kept for the life of the process; `None` for no helpers or when a
    /// thread cannot be spawned (the helpers spawned so far then exit).
    fn start(helpers: usize) -> Option<&'static Team> {
        if helpers == 0 {
            return None;
        }
        let mut threads = Vec::with_capacity(helpers);
        let mut handoff = Vec::with_capacity(helpers);
        for i in 1..=helpers {
            // Each helper waits for the team it belongs to, which needs every helper's handle first.
            let (tx, rx) = std::sync::mpsc::channel::<&'static Team>();
            let spawned = std::thread::Builder::new()
                .name(format!("clvp-team-{i}"))
                .spawn(move || {
                    if let Ok(team) = rx.recv() {
                        team.serve(i);
                    }
                })
                .ok()?;
            // Helper `i` is `helpers[i - 1]`: spawn order, so a call unparks the thread it means.
            threads.push(spawned.thread().clone());
            handoff.push(tx);
        }
        let team: &'static Team = Box::leak(Box::new(Team {
            helpers: threads
                .into_iter()
                .map(|thread| Helper {
                    thread,
                    parked: AtomicBool::new(false),
                })
                .collect(),
            seq: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            panicked: AtomicBool::new(false),
            busy: Mutex::new(()),
        }));
        for tx in handoff {
            // Each helper is waiting in `recv`; a send fails only for one that has died.
            let _ = tx.send(team);
        }
        Some(team)
    }

    /// One call; the caller holds `busy`.
    fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        // SAFETY: the reference is only used until every helper has incremented `done` below, and
        // this function does not return (or unwind) before that.
        let job: &'static Job<'static> = unsafe { std::mem::transmute(f) };
        // SAFETY: every helper is idle (the previous call waited for all of them).
        unsafe { *self.job.get() = Some(job) };
        self.done.store(0, Ordering::Relaxed);
        self.panicked.store(false, Ordering::Relaxed);
        self.seq.fetch_add(1, Ordering::SeqCst);
        for h in &self.helpers {
            if h.parked.load(Ordering::SeqCst) {
                h.thread.unpark();
            }
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        let mut spins = 0u32;
        while self.done.load(Ordering::Acquire) != self.helpers.len() {
            if spins < 1 << 14 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: every helper is done with the job.
        unsafe { *self.job.get() = None };
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if self.panicked.load(Ordering::Acquire) {
            panic!("a decoding helper thread panicked");
        }
    }

    /// Helper `i`'s loop: wait for a call (spinning, then parked), run the job with `i`, report.
    fn serve(&self, i: usize) {
        let me = &self.helpers[i - 1];
        // The first call may bump `seq` before this thread gets here: start from its initial value.
        let mut seen = 0;
        loop {
            let mut since = Instant::now();
            let mut spins = 0u32;
            loop {
                let s = self.seq.load(Ordering::Acquire);
                if s != seen {
                    seen = s;
                    break;
                }
                spins = spins.wrapping_add(1);
                if spins < 1 << 11 {
                    std::hint::spin_loop();
                    continue;
                }
                if since.elapsed() < SPIN {
                    std::thread::yield_now();
                    continue;
                }
                me.parked.store(true, Ordering::SeqCst);
                if self.seq.load(Ordering::SeqCst) == seen {
                    std::thread::park();
                }
                me.parked.store(false, Ordering::SeqCst);
                since = Instant::now();
                spins = 0;
            }
            // SAFETY: set before `seq` was bumped, cleared only after `done` counts this helper.
            if let Some(job) = unsafe { *self.job.get() }
                && catch_unwind(AssertUnwindSafe(|| job(i))).is_err()
            {
                self.panicked.store(true, Ordering::Release);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_index_runs_once_per_call() {
        for round in 0..200u64 {
            let n = rayon::current_num_threads();
            let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            fork_join(&|i| {
                hits[i].fetch_add(round + 1, Ordering::Relaxed);
            });
            for h in &hits {
                assert_eq!(h.load(Ordering::Relaxed), round + 1);
            }
            if round % 50 == 0 {
                // Long enough for the helpers to park.
                std::thread::sleep(SPIN * 3);
            }
        }
    }

    /// Three helpers, parked between some calls: each call wakes and runs every index, so a helper's
    /// park flag and handle belong to the same thread.
    #[test]
    fn a_team_of_three_wakes_each_helper() {
        let Some(team) = Team::start(3) else {
            panic!("cannot spawn three helper threads");
        };
        for round in 0..40u64 {
            let hits: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
            team.run(&|i| {
                hits[i].fetch_add(round + 1, Ordering::Relaxed);
            });
            for h in &hits {
                assert_eq!(h.load(Ordering::Relaxed), round + 1);
            }
            if round % 4 == 0 {
                std::thread::sleep(SPIN * 3);
            }
        }
    }

    #[test]
    fn map_parts_keeps_the_order() {
        for parts in [0, 1, 2, 3, 7] {
            let got = map_parts(parts, |k| k * 10);
            assert_eq!(got, (0..parts).map(|k| k * 10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn nested_calls_and_panics() {
        let total = AtomicU64::new(0);
        fork_join(&|_| {
            fork_join(&|_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        });
        let n = rayon::current_num_threads() as u64;
        assert_eq!(total.load(Ordering::Relaxed), n * n);
        let caught = catch_unwind(|| {
            fork_join(&|i| {
                if i + 1 == rayon::current_num_threads() {
                    panic!("job {i}");
                }
            })
        });
        assert!(caught.is_err());
        // The team is usable afterwards.
        let after = AtomicU64::new(0);
        fork_join(&|_| {
            after.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(after.load(Ordering::Relaxed), n);
    }
}
