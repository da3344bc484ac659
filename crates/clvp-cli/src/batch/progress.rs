//! Progress of a batch shard: an indicatif bar with items/s and audio-seconds/s on a terminal, a plain log
//! line every [`LOG_EVERY`] otherwise (a Slurm or Kubernetes log).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The interval of the plain log lines.
const LOG_EVERY: Duration = Duration::from_secs(30);

pub struct Progress {
    label: String,
    total: usize,
    done: usize,
    failed: usize,
    audio_seconds: f64,
    start: Instant,
    last_log: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(label: &str, total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} {bar:30} {pos}/{len} items {msg} [{elapsed}<{eta}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            failed: 0,
            audio_seconds: 0.0,
            start: now,
            last_log: now,
            bar,
        }
    }

    fn rates(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let mut s = format!(
            "{:.2} items/s, {:.1} audio-s/s",
            self.done as f64 / secs,
            self.audio_seconds / secs
        );
        if self.failed > 0 {
            s.push_str(&format!(", {} failed", self.failed));
        }
        s
    }

    /// One item is done: `audio_seconds` of audio read or made, failed or not.
    pub fn item(&mut self, audio_seconds: f64, failed: bool) {
        self.done += 1;
        self.audio_seconds += audio_seconds;
        self.failed += usize::from(failed);
        if let Some(bar) = &self.bar {
            bar.set_message(self.rates());
            bar.inc(1);
        } else if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            eprintln!(
                "batch: {}: {}/{} items, {}",
                self.label,
                self.done,
                self.total,
                self.rates()
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!(
            "batch: {}: computed {} items in {:.1} s, {}",
            self.label,
            self.done,
            self.start.elapsed().as_secs_f64(),
            self.rates()
        );
    }
}
