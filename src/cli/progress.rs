//! Progress of an import on stderr: a bar (indicatif) on a terminal, plain
//! lines every few seconds otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often plain progress lines are printed.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Rows read and the rate, shown while an import runs.
#[derive(Debug)]
pub(crate) struct Progress {
    shown: Shown,
    started: Instant,
}

#[derive(Debug)]
enum Shown {
    Bar(ProgressBar),
    Lines { last: Instant },
}

impl Progress {
    /// Starts showing progress; `total_bytes` is the input's size when it
    /// is known (a file, not stdin).
    pub(crate) fn start(total_bytes: Option<u64>) -> Self {
        let now = Instant::now();
        let shown = if std::io::stderr().is_terminal() {
            let bar = match total_bytes {
                Some(total) => ProgressBar::new(total).with_style(
                    ProgressStyle::with_template(
                        "[{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
                    )
                    .expect("a valid template"),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} {msg}")
                        .expect("a valid template"),
                ),
            };
            bar.enable_steady_tick(Duration::from_millis(200));
            Shown::Bar(bar)
        } else {
            Shown::Lines { last: now }
        };
        Self {
            shown,
            started: now,
        }
    }

    /// Records that `rows` data rows, `bytes` bytes of input, were read.
    pub(crate) fn update(&mut self, rows: u64, bytes: u64) {
        let rate = rows as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        match &mut self.shown {
            Shown::Bar(bar) => {
                bar.set_position(bytes);
                bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
            }
            Shown::Lines { last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("read {rows} rows ({rate:.0} rows/s)");
                }
            }
        }
    }

    /// Stops showing progress (the bar is cleared; the totals follow).
    pub(crate) fn finish(&self) {
        if let Shown::Bar(bar) = &self.shown {
            bar.finish_and_clear();
        }
    }
}
