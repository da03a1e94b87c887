//! The mixed load of SPEC §8 on a `Segments<SqliteStore>`, shared by
//! `examples/load_direct.rs` and the `mixed/` bench case
//! (`benches/cases/mixed.rs`): each thread, in a loop until the time is
//! up, makes 10% `create`, 60% `add_members` of 10 random PIDs (`p-` and
//! 12 hex digits) to one of its last 32 segments, 30% `members_page(1)` of
//! one of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use segments_engine::{NewSegment, OrgId, SegmentId, Segments, SqliteStore};

/// The share of each call in the mix, out of 100.
const CREATE_PERCENT: u64 = 10;
const ADD_PERCENT: u64 = 60;
/// PIDs in each add.
const PIDS_PER_ADD: usize = 10;
/// How many of its latest segments a thread spreads its calls over.
const RECENT: usize = 32;

/// What a run of the mix did.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub ops: usize,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

impl Outcome {
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.seconds
    }
}

/// A small, fast generator (xorshift64*), seeded per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What one thread did.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// Runs the mix on `segments` from `threads` threads for `time`, in `org`.
pub fn run(
    segments: &Arc<Segments<SqliteStore>>,
    org: &OrgId,
    threads: usize,
    time: Duration,
) -> Outcome {
    let until = Instant::now() + time;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let segments = Arc::clone(segments);
            let org = org.clone();
            std::thread::spawn(move || {
                let mut rng =
                    Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) << 32) ^ std::process::id() as u64);
                let mut mine: Vec<SegmentId> = Vec::new();
                let mut tally = Tally::default();
                let mut created = 0u64;
                while Instant::now() < until {
                    let roll = rng.next() % 100;
                    let began = Instant::now();
                    let ok = if mine.is_empty() || roll < CREATE_PERCENT {
                        created += 1;
                        let name = format!("direct {t} {created} {:x}", rng.next());
                        segments
                            .create(&org, NewSegment::new(name))
                            .map(|s| mine.push(s.id))
                            .is_ok()
                    } else {
                        let recent = &mine[mine.len().saturating_sub(RECENT)..];
                        let id = recent[(rng.next() % recent.len() as u64) as usize];
                        if roll < CREATE_PERCENT + ADD_PERCENT {
                            let pids: Vec<String> = (0..PIDS_PER_ADD)
                                .map(|_| format!("p-{:012x}", rng.next() >> 16))
                                .collect();
                            segments.add_members(&org, id, &pids).is_ok()
                        } else {
                            segments.members_page(&org, id, 1).is_ok()
                        }
                    };
                    let micros = began.elapsed().as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    tally.errors += u64::from(!ok);
                }
                tally
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for handle in handles {
        let tally = handle.join().expect("a load thread does not panic");
        latencies.extend(tally.latencies_us);
        errors += tally.errors;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        f64::from(latencies[i]) / 1000.0
    };
    Outcome {
        ops: latencies.len(),
        seconds,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        errors,
    }
}
