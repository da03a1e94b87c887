//! `AsyncSegments` (feature `tokio`): every kind of call through the
//! facade, its views, where its service is dropped, and what it does where
//! no call can run.
//!
//! The stores are `SqliteStore`s (in memory, or on a file where a test
//! reopens it). Where a service is dropped is observed with [`DropProbe`],
//! a clock whose drop does what the sync `postgres::Client` does when it
//! closes: it blocks on a runtime of its own, which panics on a thread
//! that runs a Tokio runtime.

use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};
use segments_engine::clock::Clock;
use segments_engine::{
    AsyncSegments, ChangeKind, DeathReport, DropOffRuntime, Error, NewSegment, NotRun, OrgId,
    PageOptions, PersonDirectory, Pid, SegmentStore, Segments, SetExpr, SignalMetadata,
    SqliteStore, StorageFailure,
};

const A: &str = "p-a1b2c3d4e5f6";
const B: &str = "p-x9y8z7w6v5u4";
const C: &str = "p-c0ffee000001";

fn org() -> OrgId {
    OrgId::new("acme").expect("a valid org")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn sqlite() -> Segments<SqliteStore> {
    Segments::new(SqliteStore::open_in_memory().expect("an in-memory store"))
}

/// Where a [`DropProbe`] was dropped.
#[derive(Debug, PartialEq, Eq)]
enum DropSite {
    /// Where a sync PostgreSQL client could close: no runtime entered.
    OffRuntime,
    /// On a thread that runs a runtime: a sync PostgreSQL client panics.
    OnRuntime,
}

/// A clock that reports where it is dropped, by doing what
/// `postgres::Client::drop` does: `block_on` on a runtime of its own.
#[derive(Debug)]
struct DropProbe(mpsc::Sender<DropSite>);

impl DropProbe {
    fn new() -> (Self, mpsc::Receiver<DropSite>) {
        let (tx, rx) = mpsc::channel();
        (Self(tx), rx)
    }
}

impl Clock for DropProbe {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        let closed = std::panic::catch_unwind(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime of the probe's own")
                .block_on(async {})
        });
        let site = match closed {
            Ok(()) => DropSite::OffRuntime,
            Err(_) => DropSite::OnRuntime,
        };
        let _ = self.0.send(site);
    }
}

fn report(pid: &str, obituary: &str) -> DeathReport {
    DeathReport {
        minerva_pid: pid.to_owned(),
        obituary_id: obituary.to_owned(),
        date_of_death: "2024-01-02".to_owned(),
        publication_last_update_date: None,
        first_observed_at: None,
        signal_metadata: SignalMetadata {
            source: "obituary_database".to_owned(),
            obituary_url: None,
            publication_name: None,
            confidence_score: 0.9,
        },
    }
}

#[test]
fn segment_calls_work_through_the_facade() {
    runtime().block_on(async {
        let segments = sqlite().into_async();
        let org = org();
        let s = segments
            .create(&org, NewSegment::new("Q1 Leads").description("tech"))
            .await
            .expect("created");
        assert_eq!((s.name.as_str(), s.current_size), ("Q1 Leads", 0));
        assert_eq!(segments.get(&org, s.id).await.expect("read"), s);
        let found = segments.find_by_name(&org, " q1   leads ").await;
        assert_eq!(found.expect("found").map(|f| f.id), Some(s.id));
        assert!(
            matches!(
                segments.create(&org, NewSegment::new("q1 leads")).await,
                Err(Error::DuplicateName { .. })
            ),
            "names stay unique through the facade"
        );
        assert!(
            matches!(
                segments.create(&org, NewSegment::new("  ")).await,
                Err(Error::Invalid(_))
            ),
            "a blank name is a typed error"
        );

        let renamed = segments
            .rename(&org, s.id, "Q2 Leads")
            .await
            .expect("renamed");
        assert_eq!(renamed.name, "Q2 Leads");
        let described = segments
            .set_description(&org, s.id, Some("500+ employees"))
            .await
            .expect("described");
        assert_eq!(described.description.as_deref(), Some("500+ employees"));
        let other = segments
            .create(&org, NewSegment::new("Other"))
            .await
            .expect("created");
        let page = segments
            .list(&org, PageOptions::new().limit(1))
            .await
            .expect("listed");
        assert_eq!(page.segments[0].id, s.id, "creation order");
        let rest = segments
            .list(
                &org,
                PageOptions::new().after(page.next.expect("a next page")),
            )
            .await
            .expect("listed");
        assert_eq!(rest.segments[0].id, other.id);

        segments.delete(&org, other.id).await.expect("deleted");
        assert!(
            matches!(
                segments.get(&org, other.id).await,
                Err(Error::NotFound { .. })
            ),
            "a deleted segment is gone"
        );
    });
}

#[test]
fn member_history_and_death_calls_work_through_the_facade() {
    runtime().block_on(async {
        let segments = sqlite().into_async();
        let org = org();
        let s = segments
            .create(&org, NewSegment::new("Watchlist"))
            .await
            .expect("created");
        let added = segments
            .add_members(&org, s.id, &[A, B, "p-bad!"])
            .await
            .expect("added");
        assert_eq!((added.n_added, added.new_current_size), (2, 2));
        assert_eq!(
            added.invalid_pids,
            ["p-bad!"],
            "malformed PIDs are reported"
        );
        let owned: Vec<String> = vec![C.to_owned()];
        let added = segments
            .add_members(&org, s.id, &owned)
            .await
            .expect("added");
        assert_eq!(added.new_current_size, 3, "owned PIDs work too");

        let page = segments.members_page(&org, s.id, 1).await.expect("page 1");
        assert_eq!((page.total_count, page.items.len()), (3, 3));
        assert!(!page.list_continues);
        let first = segments
            .members(&org, s.id, PageOptions::new().limit(2))
            .await
            .expect("a cursor page");
        assert_eq!(first.members.len(), 2);
        let rest = segments
            .members(
                &org,
                s.id,
                PageOptions::new().after(first.next.expect("more")),
            )
            .await
            .expect("the next cursor page");
        assert_eq!(rest.members.len(), 1);
        let at = Utc::now();

        let removed = segments
            .remove_members(&org, s.id, &[A])
            .await
            .expect("removed");
        assert_eq!((removed.n_deleted, removed.new_current_size), (1, 2));

        let feed = segments
            .changes_since(&org, PageOptions::new().limit(100))
            .await
            .expect("the feed");
        assert!(matches!(feed.changes[0].kind, ChangeKind::Created { .. }));
        assert_eq!(feed.changes.len(), 5, "created, three added, one removed");
        assert_eq!(segments.last_seq(&org).await.expect("last seq"), feed.next);
        let timeline = segments
            .timeline(&org, A, PageOptions::new().limit(10))
            .await
            .expect("timeline");
        assert_eq!(timeline.changes.len(), 2, "A joined, then left");
        assert!(
            matches!(
                segments
                    .timeline(&org, "p-bad!", PageOptions::new().limit(10))
                    .await,
                Err(Error::Invalid(_))
            ),
            "a malformed PID in a timeline is a typed error"
        );
        assert_eq!(segments.size_as_of(&org, s.id, at).await.expect("size"), 3);
        let then = segments
            .members_as_of(&org, s.id, at, PageOptions::new().limit(2))
            .await
            .expect("members as of");
        assert_eq!(then.members.len(), 2);
        let then_rest = segments
            .members_as_of(
                &org,
                s.id,
                at,
                PageOptions::new()
                    .after(then.next.clone().unwrap())
                    .limit(2),
            )
            .await
            .expect("members as of, next page");
        assert_eq!(then_rest.members.len(), 1, "three members then");

        let ingested = segments
            .ingest_deaths(vec![report(B, "ob-1"), report("p-bad!", "ob-2")])
            .await
            .expect("ingested");
        assert_eq!((ingested.n_inserted, ingested.rejected.len()), (1, 1));
        let deaths = segments.death_signals(&org, s.id).await.expect("signals");
        assert_eq!(deaths.len(), 1);
        assert_eq!(deaths[0].minerva_pid.as_str(), B);
        let since = segments
            .death_signals_since(&org, s.id, PageOptions::new().limit(10))
            .await
            .expect("signals since");
        assert_eq!(since.records.len(), 1);
        let none_new = segments
            .death_signals_since(&org, s.id, PageOptions::new().after(since.next).limit(10))
            .await
            .expect("signals since the last poll");
        assert!(none_new.records.is_empty());
    });
}

#[test]
fn find_or_create_and_import_members_work_through_the_facade() {
    runtime().block_on(async {
        let segments = sqlite().into_async();
        let org = org();
        let made = segments
            .find_or_create(&org, NewSegment::new("Leads").description("first"))
            .await
            .expect("created");
        let found = segments
            .find_or_create(&org, NewSegment::new(" leads ").description("second"))
            .await
            .expect("found");
        assert_eq!(found, made, "the same segment, unchanged");
        assert!(matches!(
            segments.find_or_create(&org, NewSegment::new("")).await,
            Err(Error::Invalid(_))
        ));

        // From a file, read on the blocking pool, one line at a time.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pids.txt");
        let lines: String = (0..12_000)
            .map(|i| {
                if i == 5 {
                    "not a pid\n".to_owned()
                } else {
                    format!("p-{:012x}\n", i % 11_000)
                }
            })
            .collect();
        std::fs::write(&path, lines).unwrap();
        let reader = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let pids = std::io::BufRead::lines(reader).map_while(Result::ok);
        let keyed = segments.with_idempotency_key("import-1");
        let out = keyed
            .import_members(&org, made.id, pids)
            .await
            .expect("imported");
        assert_eq!((out.n_batches, out.n_invalid), (2, 1));
        assert_eq!(
            out.n_added + out.n_redundant_additions + out.n_invalid,
            12_000
        );
        assert_eq!(
            out.new_current_size, 11_000,
            "11,000 distinct PIDs (the malformed line's comes again at line 11,005)"
        );
        let last = segments.last_seq(&org).await.unwrap();

        // Rerun with the same key: the batches replay, nothing is applied.
        let pids: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let again = keyed.import_members(&org, made.id, pids).await.unwrap();
        assert_eq!(again, out, "the first import's counts");
        assert_eq!(
            segments.last_seq(&org).await.unwrap(),
            last,
            "nothing reapplied"
        );

        assert!(matches!(
            segments
                .import_members(&org, segments_engine::SegmentId::now_v7(), vec![A])
                .await,
            Err(Error::NotFound { .. })
        ));
    });
}

#[test]
fn set_operations_and_dry_runs_work_and_a_dry_run_changes_nothing() {
    runtime().block_on(async {
        let segments = sqlite().into_async();
        let org = org();
        let a = segments
            .create(&org, NewSegment::new("A"))
            .await
            .unwrap()
            .id;
        let b = segments
            .create(&org, NewSegment::new("B"))
            .await
            .unwrap()
            .id;
        segments.add_members(&org, a, &[A, B]).await.unwrap();
        segments.add_members(&org, b, &[B, C]).await.unwrap();
        let last = segments.last_seq(&org).await.unwrap();

        let dry = segments.dry_run();
        let would_add = dry.add_members(&org, a, &[C, "p-bad!"]).await.unwrap();
        assert_eq!((would_add.n_added, would_add.new_current_size), (1, 3));
        assert_eq!(would_add.invalid_pids, ["p-bad!"]);
        let would_remove = dry.remove_members(&org, a, &[A]).await.unwrap();
        assert_eq!(
            (would_remove.n_deleted, would_remove.new_current_size),
            (1, 1)
        );
        let would_add_from = dry.add_from(&org, a, &SetExpr::segment(b)).await.unwrap();
        assert_eq!(would_add_from.n_added, 1, "C would join A");
        let would_remove_from = dry.remove_from(&org, a, &SetExpr::segment(b)).await;
        assert_eq!(would_remove_from.unwrap().n_deleted, 1, "B would leave A");
        assert_eq!(segments.get(&org, a).await.unwrap().current_size, 2);
        assert_eq!(
            segments.last_seq(&org).await.unwrap(),
            last,
            "a dry run writes no ledger entry"
        );
        // A dry run on a keyed view records no key either.
        let keyed_dry = segments.with_idempotency_key("dry-1").dry_run();
        keyed_dry.add_members(&org, a, &[C]).await.unwrap();
        assert_eq!(
            segments.idempotency_record(&org, "dry-1").await.unwrap(),
            None
        );

        let both = segments
            .create_from(
                &org,
                NewSegment::new("A and B"),
                &SetExpr::segment(a).intersect(SetExpr::segment(b)),
            )
            .await
            .expect("created from an expression");
        assert_eq!(both.current_size, 1, "only B is in both");
        let added = segments
            .add_from(&org, a, &SetExpr::segment(b))
            .await
            .unwrap();
        assert_eq!((added.n_added, added.new_current_size), (1, 3));
        let removed = segments
            .remove_from(&org, a, &SetExpr::segment(both.id))
            .await
            .unwrap();
        assert_eq!((removed.n_deleted, removed.new_current_size), (1, 2));
    });
}

#[test]
fn a_keyed_retry_replays_and_views_record_their_request_id() {
    runtime().block_on(async {
        let segments = sqlite().into_async();
        let org = org();
        let s = segments
            .create(&org, NewSegment::new("Keyed"))
            .await
            .unwrap();

        let retry_safe = segments.for_request("req-1").with_idempotency_key("k-1");
        let first = retry_safe.add_members(&org, s.id, &[A]).await.unwrap();
        let again = retry_safe.add_members(&org, s.id, &[A]).await.unwrap();
        assert_eq!(again, first, "the first outcome, not a redundant add");
        assert_eq!(first.n_added, 1);
        assert!(
            matches!(
                retry_safe.add_members(&org, s.id, &[B]).await,
                Err(Error::IdempotencyConflict { .. })
            ),
            "the same key with other input"
        );
        let record = segments
            .idempotency_record(&org, "k-1")
            .await
            .unwrap()
            .expect("the key is recorded");
        assert_eq!(record.request_id.as_deref(), Some("req-1"));
        assert!(matches!(
            segments.idempotency_record(&org, "").await,
            Err(Error::Invalid(_))
        ));

        // A replayed create answers the first segment, even a moved one.
        let keyed = segments.with_idempotency_key("create-1");
        let created = keyed.create(&org, NewSegment::new("Once")).await.unwrap();
        let replayed = keyed.create(&org, NewSegment::new("Once")).await.unwrap();
        assert_eq!(replayed, created);

        // A view is 'static: a task can take it.
        let view = segments.for_request("req-2");
        let task_org = org.clone();
        let spawned =
            tokio::spawn(
                async move { view.create(&task_org, NewSegment::new("From a task")).await },
            );
        spawned.await.expect("the task ends").expect("created");

        let feed = segments
            .changes_since(&org, PageOptions::new().limit(100))
            .await
            .unwrap();
        let ids: Vec<Option<&str>> = feed
            .changes
            .iter()
            .map(|c| c.request_id.as_deref())
            .collect();
        assert_eq!(
            ids,
            [None, Some("req-1"), None, Some("req-2")],
            "one entry per write applied, with its view's request id"
        );
    });
}

#[test]
fn dropping_a_handle_and_a_clone_on_a_runtime_thread_drops_the_service_off_it() {
    let (probe, dropped) = DropProbe::new();
    let runtime = runtime();
    runtime.block_on(async {
        let segments = sqlite().with_clock(probe).into_async();
        let clone = segments.clone();
        let org = org();
        clone.create(&org, NewSegment::new("Kept")).await.unwrap();
        // Dropped on a worker thread, in a task.
        tokio::spawn(async move { drop(clone) }).await.unwrap();
        drop(segments);
    });
    assert_eq!(
        dropped.recv().expect("the service is dropped"),
        DropSite::OffRuntime
    );

    // The last handle dropped inside a call (a view kept only by the call's
    // future) is dropped off the runtime too.
    let (probe, dropped) = DropProbe::new();
    runtime.block_on(async {
        let view = sqlite().with_clock(probe).into_async().for_request("r");
        view.create(&org(), NewSegment::new("Once")).await.unwrap();
    });
    assert_eq!(dropped.recv().unwrap(), DropSite::OffRuntime);

    // The probe sees the hazard: dropped on a runtime thread, it says so.
    let (probe, dropped) = DropProbe::new();
    runtime.block_on(async { drop(sqlite().with_clock(probe)) });
    assert_eq!(dropped.recv().unwrap(), DropSite::OnRuntime);
}

#[test]
fn a_value_held_in_drop_off_runtime_is_dropped_off_the_runtime() {
    let (probe, dropped) = DropProbe::new();
    let runtime = runtime();
    runtime.block_on(async {
        let shared = std::sync::Arc::new(DropOffRuntime::new(sqlite().with_clock(probe)));
        let handle = std::sync::Arc::clone(&shared);
        tokio::spawn(async move { handle.create(&org(), NewSegment::new("S")) })
            .await
            .unwrap()
            .expect("the service works through the holder");
        drop(shared);
    });
    assert_eq!(dropped.recv().unwrap(), DropSite::OffRuntime);

    // Outside a runtime it is dropped at once, on this thread.
    let (probe, dropped) = DropProbe::new();
    drop(DropOffRuntime::new(probe));
    assert_eq!(dropped.try_recv().unwrap(), DropSite::OffRuntime);

    // Taken back, the value is the caller's.
    let (probe, dropped) = DropProbe::new();
    let probe = DropOffRuntime::new(probe).into_inner();
    assert!(dropped.try_recv().is_err(), "not dropped yet");
    drop(probe);
    assert_eq!(dropped.try_recv().unwrap(), DropSite::OffRuntime);
}

#[test]
fn a_handle_dropped_while_the_runtime_shuts_down_is_dropped_off_it() {
    for flavor in ["multi_thread", "current_thread"] {
        let (probe, dropped) = DropProbe::new();
        let runtime = match flavor {
            "multi_thread" => runtime(),
            _ => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        let segments = sqlite().with_clock(probe).into_async();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        // A task that holds the only handle and never ends: the runtime
        // drops it while shutting down.
        runtime.spawn(async move {
            let _segments = segments;
            let _ = started.send(());
            std::future::pending::<()>().await;
        });
        runtime.block_on(running).expect("the task runs");
        drop(runtime);
        assert_eq!(
            dropped.recv().expect("the service is dropped"),
            DropSite::OffRuntime,
            "{flavor}"
        );
    }
}

#[test]
fn a_store_reopened_after_the_facade_is_dropped_has_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segments.db");
    let runtime = runtime();
    let id = runtime.block_on(async {
        let opening = path.clone();
        let segments = AsyncSegments::open(move || Ok(Segments::new(SqliteStore::open(opening)?)))
            .await
            .expect("opened on the pool");
        let s = segments
            .create(&org(), NewSegment::new("Durable"))
            .await
            .unwrap();
        segments.add_members(&org(), s.id, &[A, B]).await.unwrap();
        s.id
    });
    drop(runtime);
    let reopened = Segments::new(SqliteStore::open(&path).expect("reopened"));
    assert_eq!(reopened.get(&org(), id).unwrap().current_size, 2);

    let refused = runtime_free_poll(AsyncSegments::<SqliteStore>::open(|| {
        Err(Error::storage("the open failed"))
    }));
    assert!(
        matches!(refused, Poll::Ready(Err(Error::Storage { .. }))),
        "{refused:?}"
    );
}

/// Polls `future` once, on this thread, with no runtime.
fn runtime_free_poll<F: std::future::Future>(future: F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    pin!(future).poll(&mut cx)
}

#[test]
fn a_call_outside_a_runtime_is_an_error_not_a_panic() {
    let segments = sqlite().into_async();
    let outcome = runtime_free_poll(segments.create(&org(), NewSegment::new("Never")));
    let Poll::Ready(Err(error)) = outcome else {
        panic!("expected an error at once, got {outcome:?}");
    };
    assert_eq!(error.storage_kind(), Some(StorageFailure::Other));
    let source = std::error::Error::source(&error).expect("a source");
    assert_eq!(source.downcast_ref::<NotRun>(), Some(&NotRun::NoRuntime));
    assert!(
        segments
            .segments()
            .list(&org(), PageOptions::new())
            .unwrap()
            .segments
            .is_empty(),
        "nothing was created"
    );
}

#[test]
fn a_call_while_the_runtime_shuts_down_is_unavailable_not_run() {
    let runtime = runtime();
    let segments = sqlite().into_async();
    let handle = runtime.handle().clone();
    runtime.shutdown_background();
    let _entered = handle.enter();
    let outcome = runtime_free_poll(segments.create(&org(), NewSegment::new("Never")));
    let Poll::Ready(Err(error)) = outcome else {
        panic!("expected an error at once, got {outcome:?}");
    };
    assert_eq!(error.storage_kind(), Some(StorageFailure::Unavailable));
    let source = std::error::Error::source(&error).expect("a source");
    assert_eq!(source.downcast_ref::<NotRun>(), Some(&NotRun::ShuttingDown));
}

/// A person directory that panics: a bug in a host's plug-in.
#[derive(Debug)]
struct PanickingDirectory;

impl PersonDirectory for PanickingDirectory {
    fn known(&self, _: &OrgId, _: &[Pid]) -> segments_engine::Result<Vec<bool>> {
        panic!("the directory is broken");
    }
}

#[test]
fn a_panic_in_the_call_is_resumed_in_the_awaiting_task() {
    runtime().block_on(async {
        let segments = sqlite()
            .with_person_directory(PanickingDirectory)
            .into_async();
        let s = segments.create(&org(), NewSegment::new("S")).await.unwrap();
        let caller = segments.clone();
        let task = tokio::spawn(async move { caller.add_members(&org(), s.id, &[A]).await });
        let failed = task.await.expect_err("the awaiting task panicked");
        let payload = failed.into_panic();
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"the directory is broken"),
            "the call's own panic, resumed"
        );
        assert_eq!(
            segments.get(&org(), s.id).await.unwrap().current_size,
            0,
            "the service still answers; nothing was added"
        );
    });
}

#[test]
fn the_facade_is_send_sync_and_static_for_a_router_state() {
    fn shareable<T: Clone + Send + Sync + 'static>(_: &T) {}
    let segments = sqlite().into_async();
    shareable(&segments);
    shareable(&segments.dry_run());
    let boxed: AsyncSegments<Box<dyn SegmentStore>> = AsyncSegments::new(Segments::new(Box::new(
        SqliteStore::open_in_memory().unwrap(),
    )));
    shareable(&boxed);
    assert_eq!(boxed.store().last_seq(&org()).unwrap(), 0);
    let org = org();
    let future = segments.get(&org, segments_engine::SegmentId::now_v7());
    fn send<T: Send>(_: &T) {}
    send(&future);
}

/// Every line a subscriber wrote, kept.
#[cfg(feature = "tracing")]
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(feature = "tracing")]
impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "tracing")]
#[test]
fn a_calls_span_nests_under_the_span_it_was_awaited_in() {
    use tracing::Instrument as _;
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_span_list(true)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // Global: the call's span is made on a thread of the blocking pool.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber here");
    runtime().block_on(async {
        let segments = sqlite().into_async();
        let traced = OrgId::new("traced").unwrap();
        segments
            .create(&traced, NewSegment::new("Traced"))
            .instrument(tracing::info_span!("host_request"))
            .await
            .expect("created");
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let closed: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        // Other tests of this binary run meanwhile: this one's org only.
        .filter(|l: &serde_json::Value| {
            l["span"]["name"] == "segments.create" && l["span"]["org"] == "traced"
        })
        .collect();
    assert_eq!(closed.len(), 1, "one create span closed: {text}");
    let names: Vec<&str> = closed[0]["spans"]
        .as_array()
        .expect("the span list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["host_request"],
        "its parent, the host's span: {text}"
    );
}

/// The names of the `pub fn`s and `pub async fn`s in the `.rs` files under
/// `dir` (of the crate's sources).
fn public_fns(dir: &str) -> std::collections::BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("the sources") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let line = line.trim_start();
                let rest = line
                    .strip_prefix("pub fn ")
                    .or_else(|| line.strip_prefix("pub async fn "));
                if let Some(rest) = rest {
                    let end = rest.find(['(', '<']).expect("a fn's name ends");
                    names.insert(rest[..end].to_owned());
                }
            }
        }
    }
    names
}

#[test]
fn every_call_of_segments_and_its_dry_run_has_an_async_namesake() {
    // What builds a service or takes it apart: set on `Segments` before
    // it becomes async (see the `AsyncSegments` docs).
    let not_calls = [
        "new",
        "with_clock",
        "with_id_generator",
        "with_person_directory",
        "with_idempotency_ttl",
        "into_store",
        "into_async",
    ];
    let sync = public_fns("src/service");
    let facade = public_fns("src/async_facade");
    let missing: Vec<&String> = sync
        .iter()
        .filter(|name| !not_calls.contains(&name.as_str()) && !facade.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "methods of Segments or DryRun with no AsyncSegments namesake: {missing:?}"
    );
    assert!(
        sync.contains("import_members") && facade.contains("create"),
        "the scan reads both"
    );
}
