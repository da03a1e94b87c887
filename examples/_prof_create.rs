use segments::{MemoryStore, NewSegment, OrgId, Segments};
use std::time::Instant;
fn main() {
    let n: u64 = std::env::args().nth(1).map_or(1000, |s| s.parse().unwrap());
    let org = OrgId::new("acme").unwrap();
    let rounds = 3_000_000 / n;
    let names: Vec<String> = (0..n).map(|i| format!("segment {i}")).collect();
    let mut total = 0.0;
    for _ in 0..rounds {
        let segments = Segments::new(MemoryStore::new());
        let t = Instant::now();
        for name in &names {
            std::hint::black_box(
                segments
                    .create(&org, NewSegment::new(name.as_str()))
                    .unwrap(),
            );
        }
        total += t.elapsed().as_secs_f64();
    }
    eprintln!("create {:.0}ns", total / (rounds * n) as f64 * 1e9);
}
