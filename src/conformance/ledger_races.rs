//! The ledger under racing writers: seqs in commit order, no gaps.

use super::*;

/// What one call of a racing writer did, to check against the ledger.
#[derive(Debug)]
struct RacedCall {
    /// The request id the call was made with: unique to the call.
    request: String,
    /// The time the call was stamped with, before the store's clamp.
    stamped: DateTime<Utc>,
    /// What its entries must be.
    kind: RacedKind,
    /// The segment its entries are about.
    segment: SegmentId,
    /// How many entries it wrote, from its outcome.
    entries: u64,
}

/// The kind of call a racing writer made, and so of its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RacedKind {
    Create,
    Add,
    Remove,
    Rename,
}

impl RacedKind {
    /// Whether `kind` is an entry such a call writes.
    fn fits(self, kind: &ChangeKind) -> bool {
        match self {
            Self::Create => matches!(kind, ChangeKind::Created { .. }),
            Self::Add => kind.joins(),
            Self::Remove => matches!(kind, ChangeKind::MemberRemoved { .. }),
            Self::Rename => matches!(kind, ChangeKind::Renamed { .. }),
        }
    }
}

/// Writers racing on one org (creates, renames, adds and removes, from
/// threads whose clocks disagree) still leave one plain ledger: seqs 1 to n
/// without a gap, numbered in commit order (each thread's calls in the
/// order it made them), times that never go back along seq, and each
/// call's entries together: consecutive seqs, one time, the later of the
/// call's stamp and the entry before it. A change feed poller relies on
/// all of it: a gap or a seq given out of commit order makes it skip
/// entries for good, and a time going back breaks as-of reads.
pub fn racing_writers_number_the_ledger_in_commit_order(store: &dyn SegmentStore) {
    const THREADS: usize = 6;
    const CALLS: usize = 15;
    let ns = Namespace::new();
    let acme = ns.org("acme");
    let (segments, _) = ns.service(store);
    let shared = segments.create(&acme, NewSegment::new("Shared")).unwrap();
    let barrier = Barrier::new(THREADS);
    let calls: Vec<Vec<RacedCall>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, acme) = (&barrier, &acme);
                scope.spawn(move || {
                    let clock = ManualClock::new(start());
                    let segments = Segments::new(store).with_clock(clock.clone());
                    let mut own = None;
                    let mut made = Vec::new();
                    barrier.wait();
                    for i in 0..CALLS {
                        // Clocks that jump back and forth, and disagree
                        // between threads: the store's clamp keeps order.
                        let offset = ((t * 7 + i * 5) % 11) as i64;
                        clock.set(start() + TimeDelta::milliseconds(offset));
                        let request = format!("t{t}-c{i}");
                        let view = segments.for_request(request.clone());
                        let pids: Vec<String> = (0..6)
                            .map(|k| format!("p-{}", (t * 3 + i * 2 + k) % 20))
                            .collect();
                        let (kind, segment, entries) = match i % 5 {
                            0 => {
                                let s = view
                                    .create(acme, NewSegment::new(format!("own {t} {i}")))
                                    .expect("a racing create succeeds");
                                own = Some(s.id);
                                (RacedKind::Create, s.id, 1)
                            }
                            1 => {
                                let out = view
                                    .add_members(acme, shared.id, &pids)
                                    .expect("a racing add succeeds");
                                (RacedKind::Add, shared.id, out.n_added)
                            }
                            2 => {
                                let own = own.expect("made at call 0");
                                let mine: Vec<String> =
                                    (0..4).map(|k| format!("p-t{t}c{i}k{k}")).collect();
                                let out = view
                                    .add_members(acme, own, &mine)
                                    .expect("an add to a thread's own segment succeeds");
                                (RacedKind::Add, own, out.n_added)
                            }
                            3 => {
                                let out = view
                                    .remove_members(acme, shared.id, &pids)
                                    .expect("a racing remove succeeds");
                                (RacedKind::Remove, shared.id, out.n_deleted)
                            }
                            _ => {
                                let own = own.expect("made at call 0");
                                view.rename(acme, own, &format!("own {t} renamed {i}"))
                                    .expect("a racing rename succeeds");
                                (RacedKind::Rename, own, 1)
                            }
                        };
                        made.push(RacedCall {
                            request,
                            stamped: start_micros() + TimeDelta::milliseconds(offset),
                            kind,
                            segment,
                            entries,
                        });
                    }
                    made
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no writer panics"))
            .collect()
    });
    let ledger = whole_ledger(&segments, &acme);
    let seqs: Vec<u64> = ledger.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=ledger.len() as u64).collect::<Vec<_>>(),
        "the org's ledger is numbered 1 to n without a gap"
    );
    let expected: u64 = 1 + calls.iter().flatten().map(|c| c.entries).sum::<u64>();
    assert_eq!(
        ledger.len() as u64,
        expected,
        "one entry per change the calls reported, and the shared segment's creation"
    );
    for pair in ledger.windows(2) {
        assert!(
            pair[0].at <= pair[1].at,
            "times never go back along seq: entry {} at {} is followed by entry {} at {}",
            pair[0].seq,
            pair[0].at,
            pair[1].seq,
            pair[1].at
        );
    }
    for (t, made) in calls.iter().enumerate() {
        let mut last_seq = 0;
        for call in made {
            let entries: Vec<&crate::Change> = ledger
                .iter()
                .filter(|c| c.request_id.as_deref() == Some(call.request.as_str()))
                .collect();
            assert_eq!(
                entries.len() as u64,
                call.entries,
                "{}: one entry per change the call reported",
                call.request
            );
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                continue;
            };
            assert_eq!(
                last.seq - first.seq + 1,
                call.entries,
                "{}: a call's entries have consecutive seqs, with no other call's between",
                call.request
            );
            assert!(
                entries.iter().all(|c| c.at == first.at),
                "{}: a call's entries all have one time",
                call.request
            );
            assert!(
                entries
                    .iter()
                    .all(|c| c.segment_id == call.segment && call.kind.fits(&c.kind)),
                "{}: the call's entries are {:?} entries of its segment: {entries:?}",
                call.request,
                call.kind
            );
            let before = match first.seq {
                1 => None,
                seq => Some(ledger[(seq - 2) as usize].at),
            };
            assert_eq!(
                first.at,
                before.map_or(call.stamped, |b| b.max(call.stamped)),
                "{}: recorded at its stamp, or at the time of the entry before it when \
                 that is later",
                call.request
            );
            assert!(
                first.seq > last_seq,
                "thread {t}: {} committed after the thread's previous call, so it is \
                 numbered after it",
                call.request
            );
            last_seq = last.seq;
        }
    }
}
