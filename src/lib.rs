//! # segments-engine
//!
//! An embedded segments engine. A **segment** is a named, per-organization
//! list of people (person ids, "PIDs", like `p-a1b2c3d4e5f6`) that a program
//! creates, fills, reads and tracks. This crate is that whole system as a
//! library: no HTTP needed, SQLite by default, in memory, or on a
//! PostgreSQL database that many app servers share.
//!
//! ```
//! use segments_engine::{Error, NewSegment, OrgId, Segments, SqliteStore};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("segments.db");
//! let segments = Segments::new(SqliteStore::open(&path)?); // or MemoryStore::new()
//! let org = OrgId::new("acme")?;
//! let s = segments.create(&org, NewSegment::new("Q1 2024 Enterprise Prospects")
//!     .description("500+ employees, tech"))?;
//! assert_eq!(s.current_size, 0);
//! assert_eq!(segments.get(&org, s.id)?, s);
//!
//! // Names are unique per org, ignoring case, spacing and Unicode form.
//! match segments.create(&org, NewSegment::new("q1 2024  enterprise prospects")) {
//!     Err(e @ Error::DuplicateName { .. }) => assert_eq!(e.status_code(), 404),
//!     other => panic!("expected a duplicate, got {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layers
//! - **Domain**: [`OrgId`], [`SegmentId`], [`SegmentName`], [`Pid`],
//!   [`Segment`], [`Member`], the ledger's [`Change`], [`DeathRecord`], the
//!   [`limits`], and one [`Error`] whose variants know the documented status
//!   code.
//! - **Service**: [`Segments`] validates input, stamps times (from an
//!   injectable [`Clock`](clock::Clock), kept as microseconds since the
//!   epoch, so a leap second folds into the next) and ids
//!   (UUID v7 by default), and calls the store: segments, members (page and
//!   cursor), history (change feed, timelines, as-of reads) and death
//!   signals.
//! - **Stores**: the [`SegmentStore`] trait and what it takes and returns
//!   ([`store`]: what the service settles for every store, and what each
//!   store must enforce itself); [`MemoryStore`]; `SqliteStore` (feature
//!   `sqlite`, on by default, with SQLite bundled); `PostgresStore`
//!   (feature `postgres`).
//! - **Conformance** (feature `conformance`): the shared suite every store
//!   passes, public so other backends can run it too.
//! - **Async facade** (feature `tokio`): `AsyncSegments`, every call of
//!   the service as an `async fn` that runs on Tokio's blocking pool.
//! - **Wire** (feature `wire`): the documented HTTP API as a function from
//!   `http::Request` to `http::Response`, for any host framework.
//!
//! ## Sync core, async hosts
//! The service and the stores are synchronous: a call blocks its thread
//! until the database answers. An async host (axum, tonic, anything on
//! Tokio) turns on the feature `tokio` and calls `AsyncSegments`
//! (`segments.into_async()`), whose methods are the same calls as `async
//! fn`s run on Tokio's blocking pool: `segments.create(&org, new).await?`.
//! Nothing in it panics or aborts because it runs inside a runtime: the
//! store it holds is dropped off the async threads, and a call awaited
//! outside a runtime, or while it shuts down, is an error, not a panic.
//! Its docs show an axum host, and the `server` example is one.
//!
//! ## Decisions where the documented API is silent
//! - A duplicate name answers [`Error::DuplicateName`] with status **404**, as
//!   documented, not 409.
//! - Names are stored trimmed; uniqueness is by key: NFC, internal whitespace
//!   runs collapsed to one space, lowercased (`str::to_lowercase`). A
//!   segment may be renamed to a name with its own key.
//! - Segment ids are UUID v7; listing is in creation order (`created_at`,
//!   then id) with a cursor that survives the deletion of the segment it
//!   came from.
//! - `updated_at` moves on rename and description changes, not on
//!   membership changes.
//! - Source labels are 1–64 ASCII letters, digits, `-`, `_`, `.`, `:`.
//! - Org ids are 1–128 bytes, any printable characters but whitespace.
//! - Deleting a segment frees its name at once.
//! - [`Segments::find_by_name`] with a string that cannot be a name is an
//!   `Invalid` error, not `Ok(None)`.
//! - [`Segments::find_or_create`] checks its whole input (name,
//!   description, source) even when the segment exists, so whether a call
//!   is valid does not depend on what is stored; an existing segment is
//!   returned unchanged. Under an idempotency key, the segment the first
//!   call returned, found or created, is what its retries return.
//! - [`Segments::import_members`] applies atomic batches of
//!   [`limits::IMPORT_BATCH_SIZE`]; the import as a whole is not atomic.
//!   Under the key `k`, batch `i` is keyed `k/i`, so a rerun resumes. A PID
//!   repeated within a batch is redundant there, like a repeat in one
//!   [`Segments::add_members`] call; repeated in a later batch, it is a
//!   redundant addition of that batch: the counts do not depend on where
//!   batches split.
//! - The ledger's times never go backwards within an org (a change stamped
//!   earlier than the last entry is recorded at that entry's time), so "as
//!   of" reads are a prefix of the ledger. Within one member call, entries
//!   follow the order the PIDs were given. `members_as_of` lists in the
//!   members' list order (`first_added_at`, then PID) with a
//!   [`MemberCursor`]; before a segment's first member its size is 0.
//! - A PID repeated within one member call counts once: its first
//!   occurrence is added (or removed), each repeat is one more
//!   `n_redundant_additions` (a removal does not count repeats).
//! - A person's [`timeline`](Segments::timeline) pages like the change
//!   feed (after a seq, up to a limit); every read of a store is bounded.
//! - The documented page API is stateless for the client, so the service
//!   remembers where recent pages ended (a few thousand, in process) and
//!   starts the next page of a walk from there while the segment's members
//!   are unchanged: walking pages in order costs the same per page.
//! - A death-signal poll returns a cursor past everything it looked at, so
//!   the next poll reads only records that arrived since.
//! - Death records are facts about people, shared by every org (the host
//!   ingests them once; each org sees those of its own members). The death
//!   feed's order is the order obituaries were first ingested; an update
//!   keeps a record's place and its first `first_observed_at`.
//!
//! ## Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | `SqliteStore`, with SQLite compiled in (rusqlite `bundled`) |
//! | `conformance` | no | `segments_engine::conformance`, the shared store suite |
//! | `serde` | no | `Serialize`/`Deserialize` for the domain types |
//! | `postgres` | no | `PostgresStore`: PostgreSQL via the sync `postgres` crate and an `r2d2` pool |
//! | `postgres-tls` | no | `PostgresTls`: TLS for `PostgresStore`'s connections (`native-tls`; OpenSSL on Linux) |
//! | `wire` | no | `segments_engine::wire`: the documented HTTP contract, transport-free |
//! | `tokio` | no | `AsyncSegments`: every call as an `async fn` on Tokio's blocking pool; `DropOffRuntime` |
//! | `tracing` | no | a `tracing` span for every call of the service, and error events |
//! | `cli` | no | the `segments` command: import, export, list, history, migrate (see the README) |

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![deny(rustdoc::broken_intra_doc_links)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
mod async_facade;
pub mod clock;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod directory;
mod domain;
mod error;
mod service;
pub mod store;
#[cfg(feature = "wire")]
#[cfg_attr(docsrs, doc(cfg(feature = "wire")))]
pub mod wire;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use async_facade::{AsyncDryRun, AsyncSegments, DropOffRuntime, NotRun};
pub use directory::{KnownPids, PersonDirectory};
pub use domain::death::{
    DeathCursor, DeathRecord, DeathReport, DeathSignals, DeathsIngested, RejectedDeath,
    SignalMetadata,
};
pub use domain::history::{Change, ChangeKind, ChangePage, MembersAsOf, PastMember};
pub use domain::ids::{OrgId, SegmentId};
pub use domain::limits;
pub use domain::member::{
    AddOutcome, ImportOutcome, InvalidPid, Member, MemberCursor, MemberList, MembersPage,
    RemoveOutcome,
};
pub use domain::name::SegmentName;
pub use domain::page::PageOptions;
pub use domain::pid::{Pid, is_well_formed as is_well_formed_pid};
pub use domain::segment::{NewSegment, Segment, SegmentCursor, SegmentPage};
pub use domain::set_expr::{Provenance, SetExpr};
pub use error::{Error, Field, Result, Rule, StorageFailure, ValidationError};
pub use service::{DryRun, IdempotencyRecord, Segments};
pub use store::SegmentStore;
pub use store::memory::MemoryStore;
#[cfg(feature = "postgres-tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-tls")))]
pub use store::postgres::PostgresTls;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::postgres::{PostgresPoolStatus, PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::sqlite::{SqliteStore, SqliteStoreBuilder};

/// SQLite: [`SqliteStore`], its builder, and its
/// settings ([`Synchronous`](sqlite::Synchronous)).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite {
    pub use crate::store::sqlite::{SqliteStore, SqliteStoreBuilder, Synchronous};
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guide's examples (`docs/guide.md`), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
