//! `PostgresStore` across a failover, as deployed for high availability: a
//! primary with a synchronous hot standby, writers on a multi-host URL
//! (`target_session_attrs=read-write`) making keyed writes; the primary
//! stops the way a crash stops it (`-m immediate`), at the worst moment
//! (each writer's last add committed and on the standby, and the writer
//! not told), and the standby is promoted. Both servers are the tests' own (loopback only), stopped at
//! the end; every wait is bounded.

#![cfg(feature = "postgres")]

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use segments_engine::{
    Error, NewSegment, OrgId, PageOptions, PostgresStore, SegmentId, Segments, StorageFailure,
};
use support::postgres::TestServer;

/// Keyed writers.
const WRITERS: usize = 3;

/// How long writers may take to resume once the standby is promoted.
const RESUME_WITHIN: Duration = Duration::from_secs(10);

/// The most any wait of this test takes before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// What one writer saw.
#[derive(Debug, Default)]
struct Seen {
    /// The PID of the add it waits for, if it waits for one.
    pending: Option<String>,
    /// The PIDs whose add was acknowledged, by their idempotency key.
    acked: BTreeMap<String, String>,
    /// When each acknowledgement came.
    acked_at: Vec<Instant>,
    /// The failures before an acknowledgement, and when.
    failures: Vec<(Instant, Error)>,
}

/// One writer: adds a new PID at a time to its segment, each with a key
/// of its own, and retries a failed add with the same key until it is
/// acknowledged (or until `PATIENCE` runs out); stops once `stop` is set
/// and its last add is acknowledged.
fn writer(
    segments: &Segments<PostgresStore>,
    org: &OrgId,
    id: SegmentId,
    w: usize,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
) {
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let key = format!("w{w}-{i}");
        let pid = format!("p-w{w}n{i:06}");
        seen.lock().unwrap().pending = Some(pid.clone());
        let started = Instant::now();
        loop {
            match segments
                .with_idempotency_key(key.clone())
                .add_members(org, id, &[pid.as_str()])
            {
                Ok(outcome) => {
                    // A retry of an add that had committed replays its
                    // first outcome: applied once, as one new member.
                    assert_eq!(
                        (outcome.n_added, outcome.n_redundant_additions),
                        (1, 0),
                        "{key}: the add applied once, whatever the retries"
                    );
                    let mut seen = seen.lock().unwrap();
                    seen.pending = None;
                    seen.acked.insert(key, pid);
                    seen.acked_at.push(Instant::now());
                    break;
                }
                Err(e) => {
                    assert!(
                        started.elapsed() < PATIENCE,
                        "{key}: still failing after {PATIENCE:?}: {e:?}"
                    );
                    seen.lock().unwrap().failures.push((Instant::now(), e));
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// Sets its flag when dropped, on every path out of a scope.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn raw(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("a raw connection")
}

/// Waits until `ready`, or fails saying `what` after [`PATIENCE`].
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keyed_writers_ride_a_failover_to_a_synchronous_standby() {
    let primary = TestServer::start();
    let standby = TestServer::start_standby_of(&primary);
    primary.make_synchronous();
    let url = format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/postgres\
         ?target_session_attrs=read-write&connect_timeout=2",
        primary.port(),
        standby.port()
    );
    let store = PostgresStore::builder(&url)
        .schema("failover")
        .connect_timeout(Duration::from_secs(2))
        .pool_size(WRITERS as u32)
        .connect()
        .expect("the store connects to the primary");
    let segments = Segments::new(store);
    // An org per writer: a writer whose commit waits holds its org's
    // head, and only its own.
    let orgs: Vec<OrgId> = (0..WRITERS)
        .map(|w| OrgId::new(format!("ha-{w}")).unwrap())
        .collect();
    let ids: Vec<SegmentId> = orgs
        .iter()
        .map(|org| segments.create(org, NewSegment::new("writer")).unwrap().id)
        .collect();

    // A store on the standby itself reads, and its writes are refused as
    // read-only (not as any other failure).
    let on_standby = Segments::new(
        PostgresStore::builder(&standby.url())
            .schema("failover")
            .connect()
            .expect("a store connects to the standby: the schema is there already"),
    );
    wait_until("the standby has the writers' segments", || {
        on_standby.get(&orgs[WRITERS - 1], ids[WRITERS - 1]).is_ok()
    });
    let refused = on_standby
        .create(&orgs[0], NewSegment::new("on the standby"))
        .unwrap_err();
    assert_eq!(
        refused.storage_kind(),
        Some(StorageFailure::ReadOnly),
        "a write on a standby: {refused:?}"
    );
    drop(on_standby);
    // And a schema it would have to make is refused the same way.
    let err = PostgresStore::builder(&standby.url())
        .schema("not_on_a_standby")
        .connect()
        .unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::ReadOnly),
        "a migration on a standby: {err:?}"
    );

    let stop = AtomicBool::new(false);
    let seen: Vec<Mutex<Seen>> = (0..WRITERS).map(|_| Mutex::default()).collect();
    let promoted_at = std::thread::scope(|scope| {
        for (w, ((id, org), seen)) in ids.iter().zip(&orgs).zip(&seen).enumerate() {
            let (segments, stop) = (&segments, &stop);
            scope.spawn(move || writer(segments, org, *id, w, stop, seen));
        }
        // Whatever happens below (a failed wait panics), the writers stop.
        let _stop = StopOnDrop(&stop);
        let acks = |seen: &[Mutex<Seen>]| -> Vec<usize> {
            seen.iter().map(|s| s.lock().unwrap().acked.len()).collect()
        };
        wait_until("every writer writes to the primary", || {
            acks(&seen).iter().all(|&n| n >= 20)
        });
        // The worst moment for a crash: every writer's add committed and
        // on the standby, and no writer told.
        primary.hold_commits();
        let mut on_standby = raw(&standby.url());
        wait_until(
            "every writer's add is on the standby, unacknowledged",
            || {
                let pending: Vec<String> = seen
                    .iter()
                    .filter_map(|s| s.lock().unwrap().pending.clone())
                    .collect();
                pending.len() == WRITERS && {
                    let there: i64 = on_standby
                        .query_one(
                            "SELECT count(*) FROM failover.segment_people
                             WHERE pid = ANY($1)",
                            &[&pending],
                        )
                        .unwrap()
                        .get(0);
                    there == WRITERS as i64
                        && seen.iter().all(|s| {
                            s.lock()
                                .unwrap()
                                .pending
                                .as_ref()
                                .is_some_and(|p| pending.contains(p))
                        })
                }
            },
        );
        let in_doubt: Vec<String> = seen
            .iter()
            .map(|s| s.lock().unwrap().pending.clone().unwrap())
            .collect();
        primary.stop_immediate();
        // The outage: every writer meets it.
        wait_until("every writer sees the primary gone", || {
            seen.iter().all(|s| !s.lock().unwrap().failures.is_empty())
        });
        let before = acks(&seen);
        standby.promote();
        let promoted_at = Instant::now();
        wait_until("every writer writes to the new primary", || {
            acks(&seen)
                .iter()
                .zip(&before)
                .all(|(now, then)| *now >= then + 20)
        });
        (promoted_at, in_doubt)
    });
    let (promoted_at, in_doubt) = promoted_at;

    // During the outage: only typed, passing failures.
    for (w, seen) in seen.iter().enumerate() {
        let seen = seen.lock().unwrap();
        println!(
            "writer {w}: {} adds acknowledged, {} failures on the way",
            seen.acked.len(),
            seen.failures.len()
        );
        for (_, e) in &seen.failures {
            assert!(
                matches!(
                    e.storage_kind(),
                    Some(StorageFailure::Unavailable | StorageFailure::Timeout)
                ),
                "writer {w} saw {e:?}, not Unavailable or Timeout"
            );
        }
        // Resumed by itself, soon after the promotion.
        let resumed = seen
            .acked_at
            .iter()
            .find(|at| **at >= promoted_at)
            .expect("an acknowledgement after the promotion");
        assert!(
            resumed.duration_since(promoted_at) <= RESUME_WITHIN,
            "writer {w} resumed {:?} after the promotion",
            resumed.duration_since(promoted_at)
        );
    }

    // On the new primary: every acknowledged write, each once, and the
    // ledger without a gap.
    let after = Segments::new(
        PostgresStore::builder(&standby.url())
            .schema("failover")
            .connect()
            .expect("the promoted standby takes writes"),
    );
    for (w, ((id, org), seen)) in ids.iter().zip(&orgs).zip(&seen).enumerate() {
        let seen = seen.lock().unwrap();
        let mut members = Vec::new();
        let mut options = PageOptions::new().limit(1_000);
        loop {
            let page = after.members(org, *id, options.clone()).unwrap();
            members.extend(page.members.into_iter().map(|m| m.pid.to_string()));
            match page.next {
                Some(next) => options = options.after(next),
                None => break,
            }
        }
        members.sort();
        let mut acked: Vec<String> = seen.acked.values().cloned().collect();
        acked.sort();
        assert_eq!(
            members, acked,
            "writer {w}: the new primary holds exactly the acknowledged adds"
        );
        // The add in doubt at the crash was committed once, and its
        // retry (acknowledged with one new member) replayed it.
        assert!(
            acked.contains(&in_doubt[w]),
            "writer {w}: the add in doubt ({}) was acknowledged by its retry",
            in_doubt[w]
        );
        let mut seqs = Vec::new();
        let mut next = 0;
        loop {
            let page = after
                .changes_since(org, PageOptions::new().after(next).limit(1_000))
                .unwrap();
            if page.changes.is_empty() {
                break;
            }
            seqs.extend(page.changes.iter().map(|c| c.seq));
            next = page.next;
        }
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(
            seqs, expected,
            "writer {w}: its org's ledger is gapless, from 1"
        );
        assert_eq!(
            seqs.len(),
            1 + acked.len(),
            "writer {w}: one entry for the create and one per acknowledged add: \
             no add applied twice"
        );
        assert_eq!(after.last_seq(org).unwrap(), seqs.len() as u64);
    }
}
