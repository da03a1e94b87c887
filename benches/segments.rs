//! Criterion benches: every case beside its floor, in one group per case.
//! `cargo bench`; the same cases as one table of ratios, with the fill
//! curves: `cargo run --release --features wire --example bench_report`.
//!
//! Fills (`add_members/…`) are timed whole: one iteration is one fill of a
//! fresh segment from empty to 1M members, and each of the 10 samples is one
//! fill (flat sampling), so they take a while (a SQLite fill of 1M is tens
//! of seconds). Set operations (`sets/…`) are sampled the same way, ten
//! operations a side. `SEGMENTS_BENCH_SIZE=100000 cargo bench` fills (and
//! reads, and builds set sources) at another size, a multiple of 10,000.

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

mod cases;

use cases::{Config, Entry};

fn config() -> Config {
    let mut config = Config::default();
    if let Ok(size) = std::env::var("SEGMENTS_BENCH_SIZE") {
        config.size = size.parse().expect("SEGMENTS_BENCH_SIZE takes a number");
        assert!(
            config.size >= 2 * cases::BATCH && config.size % cases::BATCH == 0,
            "SEGMENTS_BENCH_SIZE must be a multiple of {} and at least twice it",
            cases::BATCH
        );
    }
    config
}

fn bench(c: &mut Criterion) {
    let config = config();
    for (_, make) in cases::all() {
        for entry in make(config) {
            match entry {
                Entry::Rate(mut case) => {
                    // A set operation on 1M-member sources takes seconds:
                    // ten samples of one operation each.
                    let slow = case.id.starts_with("sets/");
                    let mut group = c.benchmark_group(case.id);
                    group.throughput(Throughput::Elements(case.ops_per_iter));
                    if slow {
                        group
                            .sampling_mode(SamplingMode::Flat)
                            .sample_size(10)
                            .warm_up_time(Duration::from_millis(1))
                            .measurement_time(Duration::from_secs(1));
                    }
                    group.bench_function("library", |b| b.iter_custom(|i| (case.library)(i)));
                    group.bench_function("floor", |b| b.iter_custom(|i| (case.floor)(i)));
                    group.finish();
                }
                Entry::Fill(mut fill) => {
                    let mut group = c.benchmark_group(fill.id);
                    group
                        .throughput(Throughput::Elements(fill.size))
                        .sampling_mode(SamplingMode::Flat)
                        .sample_size(10)
                        .warm_up_time(Duration::from_millis(1))
                        .measurement_time(Duration::from_secs(1));
                    let whole = |routine: &mut cases::FillRoutine, iters: u64| {
                        (0..iters).map(|_| routine().iter().sum::<Duration>()).sum()
                    };
                    group.bench_function("library", |b| {
                        b.iter_custom(|i| whole(&mut fill.library, i))
                    });
                    group.bench_function("floor", |b| b.iter_custom(|i| whole(&mut fill.floor, i)));
                    for (label, routine) in &mut fill.also {
                        group.bench_function(*label, |b| b.iter_custom(|i| whole(routine, i)));
                    }
                    group.finish();
                }
                // Printed by the report only.
                Entry::Curve(_) => {}
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
