//! Prints the benchmark table of the spec: each case beside its floor,
//! measured in the same run, as throughputs and their ratio.
//!
//! ```text
//! cargo run --release --example bench_report [-- --seconds S] [-- --only SUBSTRING]
//! ```
//!
//! Each case runs in alternating rounds (library, floor, library, ...) so
//! that machine noise hits both; the figures are the medians of the rounds.

#[path = "../benches/cases/mod.rs"]
mod cases;

use std::time::{Duration, Instant};

use cases::{Routine, human};

/// Operations per second of `routine`, measured for about `budget`.
fn rate(routine: &mut Routine, ops_per_iter: u64, budget: Duration) -> f64 {
    // Grow the iteration count until one run takes a tenth of the budget.
    let mut iters = 1u64;
    let mut elapsed = routine(iters);
    while elapsed < budget / 10 {
        iters = iters.saturating_mul(2);
        elapsed = routine(iters);
    }
    (iters * ops_per_iter) as f64 / elapsed.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let seconds: f64 =
        arg("--seconds").map_or(1.0, |s| s.parse().expect("--seconds takes a number"));
    let only = arg("--only");
    let budget = Duration::from_secs_f64(seconds);

    println!("| case | library | floor | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    let started = Instant::now();
    for (group, make) in cases::all() {
        if only.as_deref().is_some_and(|o| !group.contains(o)) {
            continue;
        }
        for case in make() {
            run(case, budget);
        }
    }
    eprintln!("measured in {:.0?}", started.elapsed());
    if !cfg!(feature = "wire") {
        eprintln!("the wire adapter's row needs the feature: add --features wire");
    }
}

/// Measures one case and prints its row.
fn run(mut case: cases::Case, budget: Duration) {
    const ROUNDS: usize = 5;
    // Warm both up once.
    rate(&mut case.library, case.ops_per_iter, budget / 4);
    rate(&mut case.floor, case.ops_per_iter, budget / 4);
    let (mut lib, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        lib.push(rate(&mut case.library, case.ops_per_iter, budget));
        floor.push(rate(&mut case.floor, case.ops_per_iter, budget));
    }
    let (lib, floor) = (median(lib), median(floor));
    let met = if case.target.met(lib, floor) {
        "yes"
    } else {
        "NO"
    };
    println!(
        "| {} | {} {}/s | {} {}/s | {:.2} | {} | {} |",
        case.name,
        human(lib),
        case.unit,
        human(floor),
        case.unit,
        lib / floor,
        case.target.describe(),
        met,
    );
}
