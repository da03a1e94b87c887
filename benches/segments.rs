//! Criterion benches: every case beside its floor, in one group per case.
//! `cargo bench`; the same cases as a ratio table:
//! `cargo run --release --example bench_report`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod cases;

fn bench(c: &mut Criterion) {
    for (_, make) in cases::all() {
        for mut case in make() {
            let mut group = c.benchmark_group(case.id);
            group.throughput(Throughput::Elements(case.ops_per_iter));
            group.bench_function("library", |b| b.iter_custom(|iters| (case.library)(iters)));
            group.bench_function("floor", |b| b.iter_custom(|iters| (case.floor)(iters)));
            group.finish();
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
