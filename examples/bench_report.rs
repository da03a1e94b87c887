//! Prints the benchmark table of the spec (§8): each case beside its floor,
//! measured in the same run, as throughputs and their ratio; then the
//! curve of every fill (PIDs/s for each tenth of it: each 100k at 1M).
//!
//! ```text
//! cargo run --release --features wire,postgres --example bench_report -- \
//!     [--only SUBSTRING] [--size N] [--fills N] [--seconds S]
//! ```
//!
//! The `segments import`/`export` rows (`--only import`) run the command's
//! release binary: build it first with
//! `cargo build --release --features cli --bin segments` (or name one in
//! `SEGMENTS_BIN`); without it they say so and are skipped.
//!
//! With `postgres`, the PostgreSQL rows run on a throwaway server started
//! for the run (the tests' harness; it needs the PostgreSQL server
//! binaries), or on the one `SEGMENTS_POSTGRES_URL` names.
//!
//! - `--only`: run the groups whose id contains SUBSTRING (`create`,
//!   `add_members/sqlite_file`, `pid64`, `reads/memory`, …).
//! - `--size`: members of a full segment (fills and reads), 1M by default;
//!   a multiple of 10,000, at least 20,000. Smaller is for a quick look.
//! - `--fills`: whole fills per side of each fill case (by default 2 for
//!   SQLite, 4 for MemoryStore, 1 for PostgreSQL).
//! - `--seconds`: time per round of a rate case (creates, reads), 1 s.
//! - `--rounds`: rounds per side of a rate case, 5 (more for a steadier
//!   median on a noisy machine).
//!
//! Rate cases run alternating rounds (library, floor, library, …) after a
//! warm-up, so that machine noise hits both; a figure is the median of its
//! rounds. Fill cases run a fixed number of whole fills of each side, in
//! the order library, floor, floor, library, … (not time-budgeted rounds);
//! a figure is pooled over the fills (their PIDs over their summed time).

#[path = "../benches/cases/mod.rs"]
mod cases;

use std::time::{Duration, Instant};

use cases::{BATCH, Config, Entry, Fill, PidForm, Routine, count, human};

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

struct Args {
    only: Option<String>,
    config: Config,
    fills: Option<usize>,
    budget: Duration,
    rounds: usize,
}

fn args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!(
            "bench_report [--only SUBSTRING] [--size N (1000000)] [--fills N (2 SQLite, 4 memory)] [--seconds S (1)] [--rounds N (5)]"
        );
        std::process::exit(0);
    }
    let arg = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args.get(i + 1).cloned().expect("a flag takes a value"))
    };
    let mut config = Config::default();
    if let Some(size) = arg("--size") {
        config.size = size.parse().expect("--size takes a number");
        assert!(
            config.size >= 2 * BATCH && config.size % BATCH == 0,
            "--size must be a multiple of {BATCH} and at least twice it"
        );
    }
    let fills = arg("--fills").map(|s| s.parse::<usize>().expect("--fills takes a number"));
    assert!(fills != Some(0), "--fills must be at least 1");
    let rounds: usize = arg("--rounds").map_or(5, |s| s.parse().expect("--rounds takes a number"));
    assert!(rounds >= 1, "--rounds must be at least 1");
    let seconds: f64 =
        arg("--seconds").map_or(1.0, |s| s.parse().expect("--seconds takes a number"));
    Args {
        only: arg("--only"),
        config,
        fills,
        budget: Duration::from_secs_f64(seconds),
        rounds,
    }
}

fn main() {
    let args = args();
    let config = args.config;
    let started = Instant::now();
    let groups: Vec<_> = cases::all()
        .into_iter()
        .filter(|(group, _)| args.only.as_deref().is_none_or(|o| group.contains(o)))
        .collect();

    println!(
        "segments bench report: full segment = {} members, fills in {}-PID batches; SQLite {} (bundled), files in {} (WAL, synchronous=NORMAL)",
        count(config.size),
        count(BATCH),
        rusqlite::version(),
        std::env::temp_dir().display(),
    );
    println!(
        "rate cases: {} alternating rounds per side of ~{:.1?} each after a warm-up, medians; fill cases: a fixed number of whole fills per side ({}; 0 -> {}, each in a fresh database or map, only the add calls timed), run library, floor, floor, library, …, figures pooled over the fills (PIDs / summed time)",
        args.rounds,
        args.budget,
        args.fills
            .map_or("2 SQLite, 4 MemoryStore".to_owned(), |n| n.to_string()),
        count(config.size),
    );
    if groups.iter().any(|(g, _)| g.starts_with("add_members")) {
        for form in [PidForm::Short, PidForm::Long] {
            let n = cases::pids::check_distinct(form, config.size);
            println!(
                "PIDs: {}: random-looking, {} distinct in a fill (checked)",
                form.describe(),
                count(n)
            );
        }
    }
    println!();
    println!("| case | library | floor | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    let mut after_table = Vec::new();
    for (group, make) in groups {
        let group_started = Instant::now();
        for entry in make(config) {
            match entry {
                Entry::Rate(case) => run(case, args.budget, args.rounds),
                Entry::Fill(fill) => {
                    let fills = args.fills.unwrap_or(fill.fills);
                    after_table.push(run_fill(fill, config, fills));
                }
                Entry::Curve(curve) => {
                    eprintln!("  {}", curve.id);
                    after_table.push((curve.run)());
                }
            }
        }
        eprintln!("  {group}: {:.0?}", group_started.elapsed());
    }
    for text in after_table {
        println!();
        println!("{text}");
    }
    println!();
    println!("measured in {:.0?}", started.elapsed());
    if !cfg!(feature = "wire") {
        println!("(the wire adapter's row needs the feature: add --features wire)");
    }
    if !cfg!(feature = "postgres") {
        println!("(the PostgreSQL rows need the feature: add --features postgres)");
    }
}

/// Prints one row.
fn row(name: &str, unit: &str, lib: f64, floor: f64, target: cases::Target) {
    println!(
        "| {name} | {} {unit}/s | {} {unit}/s | {:.2} | {} | {} |",
        human(lib),
        human(floor),
        lib / floor,
        target.describe(),
        target.verdict(lib, floor),
    );
}

/// Measures one rate case and prints its row.
fn run(mut case: cases::Case, budget: Duration, rounds: usize) {
    // Warm both up once (this also builds a fixture built on first use).
    rate(&mut case.library, case.ops_per_iter, budget / 4);
    rate(&mut case.floor, case.ops_per_iter, budget / 4);
    let (mut lib, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        lib.push(rate(&mut case.library, case.ops_per_iter, budget));
        floor.push(rate(&mut case.floor, case.ops_per_iter, budget));
    }
    row(
        &case.name,
        case.unit,
        median(lib),
        median(floor),
        case.target,
    );
}

/// PIDs per second over batches `range` of every fill in `runs`.
fn pooled(runs: &[Vec<Duration>], range: std::ops::Range<usize>) -> f64 {
    let time: Duration = runs
        .iter()
        .map(|r| r[range.clone()].iter().sum::<Duration>())
        .sum();
    (range.len() as u64 * BATCH * runs.len() as u64) as f64 / time.as_secs_f64()
}

/// Runs `fills` whole fills of each side of `fill`, prints its two rows
/// (whole fill, last step) and returns its curve.
fn run_fill(mut fill: Fill, config: Config, fills: usize) -> String {
    let (mut lib, mut floor) = (Vec::new(), Vec::new());
    let mut also: Vec<Vec<Vec<Duration>>> = fill.also.iter().map(|_| Vec::new()).collect();
    let one = |side: &str, routine: &mut cases::FillRoutine, into: &mut Vec<Vec<Duration>>| {
        let times = routine();
        let total: Duration = times.iter().sum();
        eprintln!(
            "  {} {side} fill {}: {} PIDs/s ({total:.1?})",
            fill.id,
            into.len() + 1,
            human(fill.size as f64 / total.as_secs_f64())
        );
        into.push(times);
    };
    for round in 0..fills {
        if round % 2 == 0 {
            one("library", &mut fill.library, &mut lib);
            one("floor", &mut fill.floor, &mut floor);
        } else {
            one("floor", &mut fill.floor, &mut floor);
            one("library", &mut fill.library, &mut lib);
        }
        for ((label, routine), runs) in fill.also.iter_mut().zip(&mut also) {
            one(label, routine, runs);
        }
    }
    let batches = lib[0].len();
    let per_step = (config.step() / BATCH) as usize;
    let step = count(config.step());
    let whole = 0..batches;
    let last = batches.saturating_sub(per_step)..batches;
    row(
        &format!("{}: whole fill", fill.name),
        "PIDs",
        pooled(&lib, whole.clone()),
        pooled(&floor, whole.clone()),
        fill.whole,
    );
    row(
        &format!("{}: last {step}", fill.name),
        "PIDs",
        pooled(&lib, last.clone()),
        pooled(&floor, last.clone()),
        fill.last,
    );
    for ((label, _), runs) in fill.also.iter().zip(&also) {
        for (what, range) in [("whole fill", whole.clone()), ("last", last.clone())] {
            row(
                &format!("{}: {what}, vs {label}", fill.name),
                "PIDs",
                pooled(&lib, range.clone()),
                pooled(runs, range),
                cases::Target::Report,
            );
        }
    }

    let each = |runs: &[Vec<Duration>]| {
        runs.iter()
            .map(|r| human(pooled(std::slice::from_ref(r), whole.clone())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "fill curve: {}\n{} fills per side; whole-fill PIDs/s of each fill: library {}; floor {}\n\n| members after | library PIDs/s | floor PIDs/s | ratio |\n|---|---|---|---|",
        fill.name,
        lib.len(),
        each(&lib),
        each(&floor),
    );
    let mut start = 0;
    while start < batches {
        let end = (start + per_step).min(batches);
        let (l, f) = (pooled(&lib, start..end), pooled(&floor, start..end));
        out.push_str(&format!(
            "\n| {} | {} | {} | {:.2} |",
            count(end as u64 * BATCH),
            human(l),
            human(f),
            l / f
        ));
        start = end;
    }
    out
}
