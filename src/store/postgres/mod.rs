//! [`PostgresStore`]: segments in a PostgreSQL database that many app
//! servers share.
//!
//! The same shape as the SQLite backend, file for file: `segments.rs`,
//! `members.rs` (people and memberships), `ledger.rs` (the ledger and its
//! org heads), `as_of.rs` (reads of the past), `deaths.rs`; `schema.rs`
//! holds the tables and their migrations. Then what SQLite keeps in its
//! `mod.rs`, one idea a file: `builder.rs` (options and `connect`),
//! `connections.rs` (the pool), `transactions.rs` (transactions, their
//! settings and statements, retries), `blocking.rs` (keeping the blocking
//! client off async runtimes' threads), `errors.rs` (failures and stored
//! values); this file holds the store and its `SegmentStore` impl.

use std::fmt;

use chrono::{DateTime, Utc};
use r2d2_postgres::r2d2::Pool;

use crate::store::entries::Batch;
use crate::store::{
    KeyRecord, MemberSlice, MemberStart, Page, SegmentChange, SegmentInsert, Stamp,
    StoreAddOutcome, StoreDeathsIngested, StoreRemoveOutcome, member_calls, segment_calls,
};
use crate::{
    Change, DeathCursor, DeathRecord, DeathSignals, MemberCursor, OrgId, PastMember, Pid, Result,
    Segment, SegmentCursor, SegmentId, SegmentStore, SetExpr,
};
use segments::PostgresSegmentWrite;

mod as_of;
mod blocking;
mod builder;
mod connections;
mod deaths;
mod errors;
mod keys;
mod ledger;
mod members;
mod schema;
mod segments;
#[cfg(feature = "postgres-tls")]
mod tls;
mod transactions;

pub use builder::PostgresStoreBuilder;
pub use connections::PostgresPoolStatus;
#[cfg(feature = "postgres-tls")]
pub use tls::PostgresTls;

#[cfg(doc)]
use crate::{Error, StorageFailure};
use connections::{LastFailure, Manager};
use errors::{PostgresDb, count, damaged, from_micros, get, micros, sql_int, time};
use transactions::{Sql, Tx};

/// Segments in PostgreSQL: one database that many app servers share, each
/// with its own pool of connections.
///
/// Open it with [`PostgresStore::connect`] (or [`PostgresStore::builder`]
/// for options) and use it like any store:
///
/// ```no_run
/// use segments_engine::{NewSegment, OrgId, PostgresStore, Segments};
/// let segments = Segments::new(PostgresStore::connect("postgresql://app@db.internal/app")?);
/// let org = OrgId::new("acme")?;
/// let s = segments.create(&org, NewSegment::new("Watchlist"))?;
/// segments.add_members(&org, s.id, &["p-a1b2c3d4e5f6"])?;
/// # Ok::<(), segments_engine::Error>(())
/// ```
///
/// - Built on the sync [`postgres`](https://docs.rs/postgres) crate, pooled
///   with `r2d2` (`r2d2_postgres`). Each call takes a connection from the
///   pool for the time it runs.
/// - **Async hosts.** The store blocks, like every store: an async host
///   runs its calls on the blocking pool (`spawn_blocking`, or the async
///   API `AsyncSegments`, feature `tokio`). The `postgres` client runs a
///   small tokio runtime of its own, which cannot start on a thread that
///   drives one; so a call, a `connect` or the drop of the last clone of
///   a store made on such a thread is moved off it (in a multi-threaded
///   runtime through `block_in_place`, otherwise on a thread of its own):
///   it works, and never panics, but it blocks that thread for its time.
/// - **Schema.** The crate's tables live in one schema (`segments`, or
///   [`PostgresStoreBuilder::schema`]), versioned in its table
///   `segments_schema`. Migrations run in one transaction under a
///   transaction-scoped advisory lock, so servers starting at the same
///   moment take turns; a schema written by a newer version of the crate is
///   refused with [`Error::SchemaTooNew`](crate::Error::SchemaTooNew) and left untouched. Text keys are
///   `COLLATE "C"` (byte order, as the other backends compare); times are
///   `bigint` microseconds since the epoch. Every table's key starts with
///   `org`, except the death records (and the death feed's head), which
///   all orgs share.
/// - **Upgrades.** A build of the crate with a newer schema version
///   migrates the schema when it first connects. Builds of an older
///   version then refuse to connect to it ([`Error::SchemaTooNew`](crate::Error::SchemaTooNew)), but
///   those already running are not told, and would go on writing the
///   older way. So change schema versions as any database migration:
///   stop the servers of the older version, then start the newer (its
///   first `connect` migrates, the others wait for it on the lock). Builds
///   that share a schema version run side by side.
/// - **Privileges.** Migrating (the first `connect` to a schema, and the
///   first of a build with a newer schema version) needs `CREATE` on the
///   database if the schema is not there yet, or else ownership of the
///   schema and its tables (an administrator may create the schema for
///   the role: `CREATE SCHEMA segments AUTHORIZATION app_owner`). Once the
///   schema is at the build's version, `connect` only reads the version,
///   and the store needs no more than `USAGE` on the schema and `SELECT`,
///   `INSERT`, `UPDATE` and `DELETE` on its tables: `GRANT … ON ALL TABLES
///   IN SCHEMA segments` after each migration, or once `ALTER DEFAULT
///   PRIVILEGES FOR ROLE app_owner IN SCHEMA segments GRANT SELECT, INSERT,
///   UPDATE, DELETE ON TABLES TO app`. So app servers may run as a role
///   that cannot change the schema, while a deploy step connects once as
///   the owner. A role without the rights a migration needs is refused at
///   `connect` with [`StorageFailure::Other`] and the server's reason
///   (SQLSTATE 42501: "permission denied …", "must be owner of …"), and
///   nothing is written.
/// - **Order.** Every write of an org first locks the org's head row
///   (`segment_heads`: last seq, last time) and holds it to commit, so the
///   org's writes take turns, seq order is commit order, and a client
///   polling [`changes_since`](crate::Segments::changes_since) never skips
///   an entry, however many servers write. Death records take their feed
///   positions the same way, from the feed's head row. Reads run in a
///   `REPEATABLE READ` snapshot and take no locks.
/// - **Set-based writes.** A member call of any size is about ten
///   statements: the batch travels as arrays (`unnest`), in PID order, and
///   the ledger entries are one `INSERT … SELECT`.
/// - **Failures.** A unique violation of a segment's name is
///   [`Error::DuplicateName`](crate::Error::DuplicateName), recognized by its constraint's name.
///   Serialization failures and deadlocks are tried again, up to
///   [`max_retries`](PostgresStoreBuilder::max_retries) times with a
///   random pause. A timeout is [`StorageFailure::Timeout`] (a statement)
///   or [`StorageFailure::Busy`] (a lock); a lost connection or a server
///   that is down is [`StorageFailure::Unavailable`], and only those: an
///   error that would come again the same way is
///   [`StorageFailure::Other`] (a call whose pool cannot open a connection
///   because the server refuses it, for a password or a database that is
///   gone, gets that refusal), a stored value that does not decode
///   [`StorageFailure::Corrupt`]. Nothing is ever half-written: a
///   transaction commits whole or not at all. But a write that fails with
///   `Unavailable` has an unknown outcome: the connection may have dropped
///   after `COMMIT` was sent, and then the write applied. Make writes you
///   may retry with an idempotency key
///   ([`Segments::with_idempotency_key`](crate::Segments::with_idempotency_key)):
///   a retry with the key applies the write once, or replays the first
///   outcome. The pool replaces broken connections: the first call after
///   the server is back succeeds (idle connections that a restart closed
///   are replaced before it starts).
/// - **Costs**, as the bench report measures them: a create is one
///   transaction of a few statements; an add or remove of `n` PIDs is about
///   ten statements whose cost grows with `n`; `get` reads one row; a
///   member page by cursor, a change-feed page and a timeline page cost
///   the same at any depth; a member page by offset grows with the offset
///   (the service's page walk avoids it); `size_as_of` is one index read; a
///   death-signal poll reads the death records after its cursor.
/// - **TLS.** With the feature `postgres-tls`,
///   `PostgresStoreBuilder::tls` encrypts connections and verifies the
///   server's certificate against the roots it is given (`PostgresTls`:
///   the system's, or a PEM bundle), as libpq's `verify-full` does, and
///   can show a client certificate; TCP connections then use TLS unless
///   the URL says `sslmode=disable`. Without it, connections are plain
///   text: reach the server over a unix socket, a trusted network or a
///   TLS-terminating proxy; a URL asking for `sslmode=require` then fails
///   to connect rather than fall back.
/// - **High availability.** Run a primary with a synchronous hot standby
///   (`synchronous_standby_names` naming it, so that a commit is
///   acknowledged only once the standby has it), and give the store both
///   in one multi-host URL that connects only to the one taking writes:
///   `postgresql://app@db-a:5432,db-b:5432/app?target_session_attrs=read-write`.
///   When the primary fails and the standby is promoted (by hand or by a
///   failover manager such as Patroni), calls fail with
///   [`StorageFailure::Unavailable`] or [`StorageFailure::Timeout`] during
///   the outage, and the pool reconnects to the new primary by itself
///   once it takes writes; nothing acknowledged is lost (but a commit
///   that waits for the standby longer than
///   [`statement_timeout`](PostgresStoreBuilder::statement_timeout) is
///   cancelled and, by PostgreSQL's rule, counts as committed without it:
///   watch the standby's health). A write that
///   failed may still have committed, so make the writes you retry with
///   an idempotency key
///   ([`Segments::with_idempotency_key`](crate::Segments::with_idempotency_key)):
///   the retry applies the write once, or replays its first outcome. A
///   store given a standby alone reads, and its writes fail with
///   [`StorageFailure::ReadOnly`]. The tests run this failover
///   (`tests/postgres_failover.rs`).
/// - **Connection poolers.** The store relies on nothing of a session
///   beyond one transaction, so it works through PgBouncer in transaction
///   pooling (`pool_mode = transaction`, stock settings otherwise), as
///   directly: it sends no startup `options`; every table is named with
///   its schema; each transaction starts with its own time limits and
///   time zone (`SET LOCAL`); and it prepares no statement: each runs
///   on the unnamed statement, its parameters' types given, in one round
///   trip (a statement prepared for the session would stay on a server
///   session that another client gets next, and be missing from the one
///   this client gets). On a direct connection,
///   [`PostgresStoreBuilder::prepared_statements`] keeps each statement
///   prepared on its connection instead (less parsing and planning per
///   call; for a pooler only if it keeps prepared statements per client).
///   The store is also a pool
///   of its own: without a pooler, `pool_size` times the number of app
///   servers must fit within the server's `max_connections`; through
///   PgBouncer, within its `max_client_conn`.
/// - **Plans.** The store changes no planner setting for a session: plans
///   come from the indexes and the tables' statistics (autovacuum's, or
///   an `ANALYZE` after a bulk load). One hint is set, for its transaction
///   only: a read of a page that an index gives in order (a member page,
///   a change-feed page, a segment list, a size as of a time) turns off
///   explicit sorts (`SET LOCAL enable_sort = off`), because before a table
///   is first analyzed the planner takes a segment for a row or two and
///   would sort all of it. A plan test checks each statement's plan at
///   the server's defaults.
/// - **Round trips.** A read is a `REPEATABLE READ` read-only
///   transaction, so that the reads of one call agree. A call's round
///   trips: `BEGIN` with its settings, one for each statement, and
///   `COMMIT` (the first use of a statement in a store prepares it once
///   more, to learn its parameters' types, or, with kept statements, the
///   first use on a connection prepares it there; a set operation's
///   statement, built for the call, is prepared and run).
/// - **Page walks across servers.** The page API
///   ([`Segments::members_page`](crate::Segments::members_page)) starts a
///   page where the previous one ended from a hint the service keeps in
///   memory, per [`Segments`](crate::Segments) value (its clones share it),
///   so per process. Several app servers behind a load balancer do not
///   share their hints: a page served by another server than the page
///   before it counts its offset from the start, and costs what a page by
///   offset costs. The cursor API
///   ([`Segments::members`](crate::Segments::members)) costs the same on
///   any server.
/// - **Fill rates.** How a 0 → 1M fill's time divides between the
///   tables, and the designs measured against it, are in the crate's
///   `benches/README.md`.
///
/// # Sharding by org (Citus)
/// Every table but the death records is keyed by `org` first, so the
/// schema can be distributed by org on a sharded PostgreSQL such as Citus.
/// **This has not been tested.** The statements would be, in the store's
/// schema, after the store created it:
///
/// ```sql
/// -- A global unique index cannot be kept on a distributed table: ids
/// -- stay unique by construction (UUID v7), not by the database.
/// DROP INDEX segments_id_unique;
/// SELECT create_distributed_table('segment_heads', 'org');
/// SELECT create_distributed_table('segments', 'org', colocate_with => 'segment_heads');
/// SELECT create_distributed_table('segment_people', 'org', colocate_with => 'segment_heads');
/// SELECT create_distributed_table('segment_memberships', 'org', colocate_with => 'segment_heads');
/// SELECT create_distributed_table('segment_ledger', 'org', colocate_with => 'segment_heads');
/// SELECT create_distributed_table('segment_ops', 'org', colocate_with => 'segment_heads');
/// SELECT create_distributed_table('segment_sizes', 'org', colocate_with => 'segment_heads');
/// SELECT create_distributed_table('segment_keys', 'org', colocate_with => 'segment_heads');
/// SELECT create_reference_table('death_records');
/// SELECT create_reference_table('death_feed_head');
/// ```
///
/// What would change: each org's writes already stay on the org's shard
/// (one head row per org), so they scale out; the death records are a
/// reference table, copied to every node, so ingesting them costs a write
/// on every node, and a death-signal poll joins them locally; the person
/// numbers come from one identity sequence, which Citus supports on
/// distributed tables but hands out in ranges per node.
///
/// Clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: std::sync::Arc<PostgresShared>,
}

/// What the clones of a [`PostgresStore`] share.
struct PostgresShared {
    /// Always there, but for the moment `Drop` hands it to another thread.
    pool: Option<Pool<Manager>>,
    /// The manager's (`Manager::last_failure`).
    last_failure: LastFailure,
    /// The store's statements, in its schema.
    sql: Sql,
    options: PostgresStoreBuilder,
}

impl PostgresShared {
    fn pool(&self) -> &Pool<Manager> {
        self.pool
            .as_ref()
            .expect("the pool is there until the store is dropped")
    }
}

impl Drop for PostgresShared {
    /// Closes the idle connections off any async runtime's thread, where
    /// closing a `postgres` client would panic.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            blocking::drop_off_runtime(pool);
        }
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.options.schema)
            .field("pool_size", &self.inner.options.pool_size)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with the default options (see [`PostgresStore::builder`]).
    ///
    /// # Errors
    /// As [`PostgresStoreBuilder::connect`].
    pub fn connect(url: &str) -> Result<Self> {
        Self::builder(url).connect()
    }

    /// Options to set before connecting to `url` (a `postgresql://` URL or
    /// a `key=value` connection string).
    pub fn builder(url: &str) -> PostgresStoreBuilder {
        PostgresStoreBuilder::new(url)
    }

    /// The schema that holds the store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.options.schema
    }

    /// The connection pool as it is now, for a host's metrics: how many
    /// connections are open, how many of them wait idle, and how many it
    /// may open ([`pool_size`](PostgresStoreBuilder::pool_size)). The
    /// store's clones share one pool.
    ///
    /// ```no_run
    /// # use segments_engine::PostgresStore;
    /// let store = PostgresStore::builder("postgresql://app@db.internal/app")
    ///     .pool_size(8)
    ///     .connect()?;
    /// let status = store.pool_status();
    /// assert_eq!(status.max_size, 8);
    /// println!("{} of {} in use", status.connections - status.idle, status.max_size);
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    pub fn pool_status(&self) -> PostgresPoolStatus {
        let state = self.inner.pool().state();
        PostgresPoolStatus {
            connections: state.connections,
            idle: state.idle_connections,
            max_size: self.inner.pool().max_size(),
        }
    }
}

impl SegmentStore for PostgresStore {
    fn insert_segment(&self, org: &OrgId, new: SegmentInsert, stamp: Stamp<'_>) -> Result<Segment> {
        self.keyed(org, stamp, |tx, ledger| {
            segment_calls::insert(&mut PostgresSegmentWrite { tx, ledger, org }, &new)
        })
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        self.read(|tx| segments::get_segment(tx, org, id))
    }

    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
        self.read(|tx| segments::by_key(tx, org, key))
    }

    fn segments(&self, org: &OrgId, page: Page<Option<SegmentCursor>>) -> Result<Vec<Segment>> {
        self.read_in_order(|tx| segments::list(tx, org, page))
    }

    fn update_segment(
        &self,
        org: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        self.keyed(org, stamp, |tx, ledger| {
            segment_calls::update(&mut PostgresSegmentWrite { tx, ledger, org }, id, change)
        })
    }

    fn delete_segment(&self, org: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()> {
        self.keyed(org, stamp, |tx, ledger| {
            segment_calls::delete(&mut PostgresSegmentWrite { tx, ledger, org }, id)
        })
    }

    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<StoreAddOutcome> {
        let batch = Batch::new(pids)?;
        self.member_call(org, id, stamp, |call| member_calls::add(call, &batch))
    }

    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome> {
        let batch = Batch::new(pids)?;
        self.member_call(org, id, stamp, |call| member_calls::remove(call, &batch))
    }

    fn create_from(
        &self,
        org: &OrgId,
        segment: SegmentInsert,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        self.keyed(org, stamp, |tx, ledger| {
            segment_calls::create_from(
                &mut PostgresSegmentWrite { tx, ledger, org },
                &segment,
                expr,
                |w, id| members::add_to_new(w, id, expr),
            )
        })
    }

    fn add_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreAddOutcome> {
        self.member_call(org, id, stamp, |call| member_calls::add_from(call, expr))
    }

    fn remove_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome> {
        self.member_call(org, id, stamp, |call| member_calls::remove_from(call, expr))
    }

    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<MemberStart<'_>>,
    ) -> Result<MemberSlice> {
        self.read_in_order(|tx| members::slice(tx, org, id, page))
    }

    fn changes_since(&self, org: &OrgId, page: Page<u64>) -> Result<Vec<Change>> {
        self.read_in_order(|tx| ledger::since(tx, org, page))
    }

    fn last_seq(&self, org: &OrgId) -> Result<u64> {
        self.read(|tx| ledger::last_seq(tx, org))
    }

    fn timeline(&self, org: &OrgId, pid: &Pid, page: Page<u64>) -> Result<Vec<Change>> {
        self.read(|tx| ledger::timeline(tx, org, pid, page))
    }

    fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        self.read_in_order(|tx| as_of::size(tx, org, id, at))
    }

    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        page: Page<Option<&MemberCursor>>,
    ) -> Result<Vec<PastMember>> {
        self.read(|tx| as_of::members(tx, org, id, at, page))
    }

    fn idempotency_record(
        &self,
        org: &OrgId,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>> {
        self.read(|tx| keys::get_record(tx, org, key, now))
    }

    fn record_idempotency(
        &self,
        org: &OrgId,
        key: &str,
        record: KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord> {
        self.write(|tx| keys::record(tx, org, key, &record, now))
    }

    fn upsert_deaths(
        &self,
        records: &[DeathRecord],
        at: DateTime<Utc>,
    ) -> Result<StoreDeathsIngested> {
        self.write(|tx| deaths::upsert(tx, records, at))
    }

    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<DeathCursor>,
    ) -> Result<DeathSignals> {
        self.read(|tx| deaths::signals(tx, org, id, page))
    }
}

#[cfg(test)]
mod plan_fixture;
#[cfg(test)]
mod tests;
