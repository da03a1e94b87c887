//! [`PostgresStore`]: segments in a PostgreSQL database that many app
//! servers share.
//!
//! The same shape as the SQLite backend, file for file: `segments.rs`,
//! `members.rs` (people and memberships), `ledger.rs` (the ledger and its
//! org heads), `as_of.rs` (reads of the past), `deaths.rs`; `schema.rs`
//! holds the tables and their migrations.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::error::SqlState;
use r2d2_postgres::postgres::types::ToSql;
use r2d2_postgres::postgres::{
    self as pg, Client, IsolationLevel, NoTls, Row, Statement, Transaction,
};
use r2d2_postgres::r2d2::{ManageConnection, Pool, PooledConnection};

use crate::store::entries::Batch;
use crate::store::{
    DeathSignalPage, DeathsUpserted, KeyRecord, MemberSlice, MemberStart, MembersAdded,
    MembersRemoved, SegmentChange, SegmentInsert, Stamp, WriteOutcome,
};
use crate::{
    Change, DeathCursor, DeathRecord, Error, MemberCursor, OrgId, PastMember, Pid, Result, Segment,
    SegmentCursor, SegmentId, SegmentStore, SetExpr, StorageFailure,
};

mod as_of;
mod blocking;
mod deaths;
mod keys;
mod ledger;
mod members;
mod schema;
mod segments;
#[cfg(feature = "postgres-tls")]
mod tls;

#[cfg(feature = "postgres-tls")]
pub use tls::PostgresTls;

/// Options of a [`PostgresStore`], set before it connects.
///
/// ```no_run
/// use std::time::Duration;
/// use segments_engine::PostgresStore;
/// let store = PostgresStore::builder("postgresql://app@db.internal/app")
///     .pool_size(16)
///     .statement_timeout(Duration::from_secs(10))
///     .schema("segments_eu")
///     .connect()?;
/// # Ok::<(), segments_engine::Error>(())
/// ```
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    url: String,
    pool_size: u32,
    connect_timeout: Duration,
    statement_timeout: Duration,
    lock_timeout: Duration,
    idle_in_transaction_session_timeout: Duration,
    schema: String,
    max_retries: u32,
    #[cfg(feature = "postgres-tls")]
    tls: Option<PostgresTls>,
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: it is not shown.
        f.debug_struct("PostgresStoreBuilder")
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field(
                "idle_in_transaction_session_timeout",
                &self.idle_in_transaction_session_timeout,
            )
            .field("schema", &self.schema)
            .field("max_retries", &self.max_retries)
            .field("tls", &self.uses_tls())
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_session_timeout: Duration::from_secs(60),
            schema: "segments".to_owned(),
            max_retries: 5,
            #[cfg(feature = "postgres-tls")]
            tls: None,
        }
    }

    /// Whether connections may use TLS.
    fn uses_tls(&self) -> bool {
        #[cfg(feature = "postgres-tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "postgres-tls"))]
        false
    }

    /// The most connections the pool opens; 8 by default. Each call holds
    /// one connection while it runs.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// How long a call waits for a connection (to open one, or for one to
    /// come free) before it fails with [`StorageFailure::Unavailable`];
    /// 5 s by default. It also bounds each TCP connect; a server that
    /// accepts a connection and then never answers holds the pool's attempt
    /// (a thread and a socket of the pool) until the server closes it or
    /// the operating system gives up on it, while calls fail on time.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// PostgreSQL's `statement_timeout`, set in every transaction: a statement
    /// running longer is cancelled and its call fails with
    /// [`StorageFailure::Timeout`], changing nothing; 30 s by default.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// PostgreSQL's `lock_timeout`, set in every transaction: how long a statement waits for a row
    /// lock (another server writing to the same org) before its call fails
    /// with [`StorageFailure::Busy`]; 10 s by default.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// PostgreSQL's `idle_in_transaction_session_timeout`, set in every
    /// transaction: the server ends
    /// a session that sits in an open transaction this long (a host that
    /// stalled mid-call), releasing its locks; 60 s by default.
    pub fn idle_in_transaction_session_timeout(mut self, timeout: Duration) -> Self {
        self.idle_in_transaction_session_timeout = timeout;
        self
    }

    /// The schema that holds the crate's tables, created if missing;
    /// `segments` by default. Stores with different schemas share a
    /// database without seeing each other. A lowercase SQL identifier:
    /// 1–63 of `[a-z0-9_]`, not starting with a digit. Every statement
    /// names its tables with it (quoted), so the store needs no
    /// `search_path`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How many times a call is tried again after a serialization failure
    /// or a deadlock (with a short, random pause); 5 by default. Pooled
    /// connections that the server closed while they sat idle (a restart)
    /// do not count: they are replaced before the call starts, as many as
    /// the pool holds.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Encrypts connections with TLS, trusting the roots of `tls` (feature
    /// `postgres-tls`), as libpq's `sslmode=verify-full` does: a TCP
    /// connection must use TLS, and the server's certificate must chain to
    /// a trusted root and name the URL's host, or the connection fails; it
    /// never goes on in plain text. So with this option the URL's
    /// `sslmode` is taken as `require` when it says `prefer` (the `postgres`
    /// crate's default, which takes a server's "no TLS", something anyone
    /// on the path can send, for an answer), unless the URL names only
    /// unix sockets; `sslmode=disable` turns TLS off. Unix sockets are
    /// never encrypted (PostgreSQL offers no TLS on them): in a URL that
    /// names sockets beside TCP hosts, the sockets then fail to connect,
    /// and the next host is tried.
    ///
    /// Without this option the store connects in plain text, and a URL
    /// with `sslmode=require` fails to connect.
    #[cfg(feature = "postgres-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres-tls")))]
    pub fn tls(mut self, tls: PostgresTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Opens the pool and brings the schema up to date (under an advisory
    /// lock, so servers starting together take turns).
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `schema`) for a bad schema name;
    /// [`StorageFailure::CannotOpen`] for a URL that cannot be parsed;
    /// [`Error::SchemaTooNew`] when a newer version of this crate
    /// wrote the schema (then nothing in it is touched);
    /// [`StorageFailure::Unavailable`] when the server cannot be reached
    /// within [`connect_timeout`](Self::connect_timeout) (tried again
    /// until then); [`StorageFailure::Other`] when it answers but refuses
    /// the connection for a reason that would not pass (a password, a
    /// database that does not exist, a TLS certificate it cannot vouch
    /// for, `sslmode=require` without `tls`), with the
    /// server's or the TLS library's reason; `Storage` for other failures
    /// (a role that may not migrate the schema: `Other`, "permission
    /// denied").
    pub fn connect(self) -> Result<PostgresStore> {
        // A store that fails half-way is dropped in there too.
        blocking::run(|| self.connect_here())
    }

    /// [`connect`](Self::connect), on a thread that may block.
    fn connect_here(self) -> Result<PostgresStore> {
        schema::check_name(&self.schema)?;
        let mut config: pg::Config = self
            .url
            .parse()
            .map_err(|e| Error::storage_failure(StorageFailure::CannotOpen, e))?;
        config.connect_timeout(self.connect_timeout);
        config.application_name("segments-engine");
        #[cfg(feature = "postgres-tls")]
        if self.tls.is_some() && config.get_ssl_mode() == pg::config::SslMode::Prefer {
            let hosts = config.get_hosts();
            // No host: TCP to `hostaddr`.
            let tcp = hosts.is_empty()
                || hosts
                    .iter()
                    .any(|host| matches!(host, pg::config::Host::Tcp(_)));
            if tcp {
                // `prefer` would take a server's "no TLS" for an answer,
                // which anyone on the path can give: with `tls`, a URL
                // that reaches a server over TCP requires it (see `tls`).
                config.ssl_mode(pg::config::SslMode::Require);
            }
        }
        let manager = self.manager(config);
        let sql = Sql::new(&self);
        let last_failure = std::sync::Arc::clone(&manager.last_failure);
        let pool = Pool::builder()
            .max_size(self.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(self.connect_timeout)
            // A connection is checked when it comes back (`has_broken`),
            // not on every checkout; a call that meets a connection the
            // server dropped is tried again on a fresh one.
            .test_on_check_out(false)
            .build_unchecked(manager);
        let store = PostgresStore {
            inner: std::sync::Arc::new(Inner {
                pool: Some(pool),
                last_failure,
                sql,
                options: self,
            }),
        };
        let mut conn = store.first_connection()?;
        schema::migrate(&mut conn, &store.inner.options.schema)?;
        drop(conn);
        Ok(store)
    }
}

impl PostgresStoreBuilder {
    /// The pool's manager: TLS if it was asked for.
    fn manager(&self, config: pg::Config) -> Manager {
        #[cfg(feature = "postgres-tls")]
        if let Some(tls) = &self.tls {
            return Manager::new(Connector::Tls(PostgresConnectionManager::new(
                config,
                tls.connector(),
            )));
        }
        Manager::new(Connector::Plain(PostgresConnectionManager::new(
            config, NoTls,
        )))
    }
}

/// A [`PostgresStore`]'s connection pool at one moment
/// ([`PostgresStore::pool_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresPoolStatus {
    /// Connections open, in use or idle.
    pub connections: u32,
    /// Open connections that no call holds.
    pub idle: u32,
    /// The most the pool opens.
    pub max_size: u32,
}

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
///   refused with [`Error::SchemaTooNew`] and left untouched. Text keys are
///   `COLLATE "C"` (byte order, as the other backends compare); times are
///   `bigint` microseconds since the epoch. Every table's key starts with
///   `org`, except the death records (and the death feed's head), which
///   all orgs share.
/// - **Upgrades.** A build of the crate with a newer schema version
///   migrates the schema when it first connects. Builds of an older
///   version then refuse to connect to it ([`Error::SchemaTooNew`]), but
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
///   [`Error::DuplicateName`], recognized by its constraint's name.
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
///   once it takes writes; nothing acknowledged is lost. A write that
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
///   time zone (`SET LOCAL`); and each prepares the statements it runs
///   and closes them before it ends (a statement kept for the session
///   would stay on a server session that another client gets next, and
///   be missing from the one this client gets). The store is also a pool of its own:
///   `pool_size` times the number of app servers must fit within
///   PgBouncer's `default_pool_size` budget, or the server's
///   `max_connections` without a pooler.
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
///   transaction, so that the reads of one call agree: `BEGIN`, its
///   settings, each statement's preparation and execution, and `COMMIT`,
///   each a round trip.
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
/// - **Where a fill's time goes.** A new member writes a row and two index
///   entries in each of three tables (people, memberships, the ledger),
///   about five times the write-ahead log of a raw upsert of `(segment,
///   pid)` rows, and a 0 → 1M fill runs at a third to two fifths of that
///   upsert's rate (the bench report's PostgreSQL rows). Measured over a
///   whole 1M fill from the server's statement log (16.2 s in all), 88%
///   of the time is in the server: numbering new people 30%, the ledger
///   insert 22%, the membership insert 20%, looking up the batch's known
///   people 13% (a seek per PID that finds no one, in a fill), commits
///   3%. Each of the three inserts costs 0.6–0.8 of the whole raw upsert, so no
///   change to one of them reaches half its rate. The three inserts alone,
///   run raw from a client beside the upsert (person numbers given,
///   nothing classified, nothing returned), took 12.6–12.9 s for 1M
///   members against the upsert's 6.5–7.0 s: 1.9 times its work before a
///   single PID is classified, whether the rows went as `unnest` arrays or
///   binary `COPY` (the same time, once a checkpoint was out of the way).
///   `benches/postgres_designs.sql` times the fill's work inside the
///   server (stored procedures, no client; 100 transactions of 10,000
///   PIDs), for today's tables and for leaner ones, each as a share of the
///   raw upsert's rate in the same run (six runs of each, from three runs
///   of the script): today's tables 0.34–0.39; one membership table keyed
///   by PID text with its list-order index, upserted with `ON CONFLICT DO
///   NOTHING` (the lookup and the insert in one), one ledger row per call
///   (arrays), and no way to find one person's timeline, 0.55–0.67; the
///   same with a B-tree `(org, pid)` for the timeline (and each
///   membership's ledger seqs in an array in its row, for it to read),
///   0.41–0.47; the same lean table with a ledger row per entry and no
///   timeline, 0.48–0.52. (The bench report's row adds each side's client
///   time to both sides, and reads a little higher for today's tables:
///   0.32–0.43.) An earlier measurement of the same kind put a design with
///   no people table, one ledger row per 1,000 entries and the timeline
///   through an inverted GIN index at 0.52 (GIN insertion cost what the
///   B-tree entries did). So a fill reaches half the upsert's rate only
///   without a B-tree for the per-person timeline, and clears it only with
///   a ledger that is not a row per entry as well: the plain ledger and
///   the per-person timeline that every backend keeps hold a fill to about
///   two fifths of it on this server. Also tried and not kept: numbering people with `INSERT … ON CONFLICT DO
///   NOTHING RETURNING` so that new PIDs need no classifying (speculative
///   insertion cost more than the lookups it saved), and a larger
///   `max_wal_size` (fewer checkpoints changed nothing measurable).
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
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    /// Always there, but for the moment `Drop` hands it to another thread.
    pool: Option<Pool<Manager>>,
    /// The manager's (`Manager::last_failure`).
    last_failure: LastFailure,
    /// The store's statements, in its schema.
    sql: Sql,
    options: PostgresStoreBuilder,
}

impl Inner {
    fn pool(&self) -> &Pool<Manager> {
        self.pool
            .as_ref()
            .expect("the pool is there until the store is dropped")
    }
}

impl Drop for Inner {
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

/// `r2d2_postgres`'s manager, which remembers why the last connection
/// failed.
struct Manager {
    connector: Connector,
    /// Why the last connection failed, if it did (cleared by one that
    /// opens).
    last_failure: LastFailure,
}

/// Why the pool's last attempt to open a connection failed, shared by the
/// pool's manager (which sets it) and the store (which reads it).
type LastFailure = std::sync::Arc<std::sync::Mutex<Option<Refusal>>>;

/// Opens connections, in plain text or with TLS.
enum Connector {
    Plain(PostgresConnectionManager<NoTls>),
    #[cfg(feature = "postgres-tls")]
    Tls(PostgresConnectionManager<postgres_native_tls::MakeTlsConnector>),
}

impl Manager {
    fn new(connector: Connector) -> Self {
        Self {
            connector,
            last_failure: Default::default(),
        }
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.connector {
            Connector::Plain(_) => "Manager::Plain",
            #[cfg(feature = "postgres-tls")]
            Connector::Tls(_) => "Manager::Tls",
        })
    }
}

/// Runs `$body` with `$manager` bound to whichever manager it is.
macro_rules! each_manager {
    ($self:expr, $manager:ident => $body:expr) => {
        match &$self.connector {
            Connector::Plain($manager) => $body,
            #[cfg(feature = "postgres-tls")]
            Connector::Tls($manager) => $body,
        }
    };
}

impl ManageConnection for Manager {
    type Connection = Client;
    type Error = Connecting;

    /// Opens a connection; nothing is set on it, nothing is kept on it
    /// (each transaction sets what it needs, and prepares its statements).
    fn connect(&self) -> std::result::Result<Client, Connecting> {
        let opened = each_manager!(self, m => m.connect()).map_err(|e| Refusal::from_server(&e));
        let mut last = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        match opened {
            Ok(client) => {
                *last = None;
                Ok(client)
            }
            Err(refusal) => {
                let shown = Connecting(refusal.reason.clone());
                *last = Some(refusal);
                Err(shown)
            }
        }
    }

    fn is_valid(&self, client: &mut Client) -> std::result::Result<(), Connecting> {
        each_manager!(self, m => m.is_valid(client)).map_err(|e| Connecting::from(&e))
    }

    fn has_broken(&self, client: &mut Client) -> bool {
        each_manager!(self, m => m.has_broken(client))
    }
}

/// Why the pool could not open a connection: of what kind, why (with
/// every cause: the pool keeps only the text of its last failure), and
/// when, so that a caller reports only a failure that happened while it
/// waited.
#[derive(Clone, Debug)]
struct Refusal {
    kind: StorageFailure,
    reason: String,
    at: std::time::Instant,
}

impl Refusal {
    fn new(kind: StorageFailure, reason: String) -> Self {
        Self {
            kind,
            reason,
            at: std::time::Instant::now(),
        }
    }

    /// A connection the server refused ([`failure_kind`]), saying what to
    /// do when the URL asks for TLS and the store has none.
    fn from_server(e: &pg::Error) -> Self {
        let no_tls = std::error::Error::source(e).is_some_and(|s| s.is::<pg::tls::NoTlsError>());
        if !no_tls {
            return Self::new(failure_kind(e), crate::error::chain(e));
        }
        let hint = if cfg!(feature = "postgres-tls") {
            "give the builder `tls(PostgresTls::…)`"
        } else {
            "build with the feature `postgres-tls` and give the builder `tls(PostgresTls::…)`"
        };
        Self::new(
            StorageFailure::Other,
            format!(
                "the URL asks for TLS (sslmode=require) and the store has none: {hint} ({})",
                crate::error::chain(e)
            ),
        )
    }

    /// Would not pass by waiting: anything but `Unavailable`.
    fn lasting(&self) -> bool {
        self.kind != StorageFailure::Unavailable
    }

    fn error(&self) -> Error {
        Error::storage_failure(self.kind, self.reason.clone())
    }
}

/// Why the pool could not open a connection, said with every cause: the
/// pool keeps only the text of its last connection error for the error a
/// call gets, and a `postgres` error's own text leaves its cause out ("db
/// error", "error performing TLS handshake").
#[derive(Debug)]
struct Connecting(String);

impl From<&pg::Error> for Connecting {
    fn from(e: &pg::Error) -> Self {
        Self(crate::error::chain(e))
    }
}

impl fmt::Display for Connecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Connecting {}

/// The store's SQL in its schema: each statement's text with the schema
/// named (tables are written `{schema}.table`), made once per store, the
/// first time a call needs it; and the settings each transaction starts
/// with.
pub(super) struct Sql {
    /// The schema, quoted as an identifier.
    schema: String,
    texts: std::sync::RwLock<HashMap<&'static str, std::sync::Arc<str>>>,
    /// `SET LOCAL` of the time limits and the time zone.
    settings: String,
    /// [`settings`](Self::settings), and no explicit sorts
    /// ([`PostgresStore::read_in_order`]).
    settings_in_order: String,
}

impl Sql {
    fn new(options: &PostgresStoreBuilder) -> Self {
        let ms = |d: Duration| d.as_millis().min(i32::MAX as u128);
        let settings = format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}; \
                 SET LOCAL idle_in_transaction_session_timeout = {}; SET LOCAL TimeZone = 'UTC'",
            ms(options.statement_timeout),
            ms(options.lock_timeout),
            ms(options.idle_in_transaction_session_timeout),
        );
        Self {
            schema: schema::quoted(&options.schema),
            texts: Default::default(),
            settings_in_order: format!("{settings}; SET LOCAL enable_sort = off"),
            settings,
        }
    }

    /// `sql` in the store's schema.
    fn text(&self, sql: &'static str) -> std::sync::Arc<str> {
        let texts = self.texts.read().unwrap_or_else(|e| e.into_inner());
        if let Some(text) = texts.get(sql) {
            return std::sync::Arc::clone(text);
        }
        drop(texts);
        let text: std::sync::Arc<str> = self.qualify(sql).into();
        self.texts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sql, std::sync::Arc::clone(&text));
        text
    }

    /// `sql` (a statement made for one call) in the store's schema.
    fn qualify(&self, sql: &str) -> String {
        sql.replace("{schema}", &self.schema)
    }
}

/// One transaction on a pooled connection. It relies on nothing of the
/// session: it starts with its own settings (`SET LOCAL`), names every
/// table with its schema, and prepares its statements itself, closing them
/// before it ends, so that it runs the same through a pooler that hands
/// each transaction another server session (PgBouncer's transaction
/// pooling).
pub(super) struct Tx<'c> {
    /// The statements prepared in this transaction. The first field, so
    /// that they are closed (dropped) before `tx` ends, on every path.
    statements: HashMap<&'static str, Statement>,
    sql: &'c Sql,
    tx: Transaction<'c>,
}

/// Parameters of a statement.
type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<'c> Tx<'c> {
    /// Sets the transaction's settings on `tx`, for `mode`.
    fn start(tx: Transaction<'c>, sql: &'c Sql, mode: Mode) -> Result<Self> {
        let mut tx = Self {
            statements: HashMap::new(),
            sql,
            tx,
        };
        let settings = match mode {
            Mode::ReadInOrder => &sql.settings_in_order,
            Mode::Read | Mode::Write | Mode::DryRun => &sql.settings,
        };
        tx.tx.batch_execute(settings).db()?;
        Ok(tx)
    }

    /// Commits, or rolls back for a dry run, once the statements are closed.
    fn finish(self, commit: bool) -> Result<()> {
        let Self { statements, tx, .. } = self;
        drop(statements);
        if commit {
            tx.commit().db()
        } else {
            tx.rollback().db()
        }
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(&self.sql.text(sql)).db()?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(super) fn query(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.tx.query(&statement, params).db()
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Option<Row>> {
        let statement = self.statement(sql)?;
        self.tx.query_opt(&statement, params).db()
    }

    pub(super) fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.tx.execute(&statement, params).db()
    }

    /// A statement built for this call (a set expression's), prepared and
    /// planned for it alone, and closed at once.
    pub(super) fn query_once(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        self.tx.query(&self.sql.qualify(sql), params).db()
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

    /// The store's first connection, for [`PostgresStoreBuilder::connect`]:
    /// waits up to the connect timeout for the pool to open one, as any
    /// call does, but fails as soon as an attempt failed for a reason
    /// that would not pass (the manager's `last_failure`): the pool itself
    /// tells only that it timed out, with the text of its last failure. A
    /// refused or lost connection stays `Unavailable`; a password, a
    /// certificate, a database the server refuses or a session without
    /// the store's settings is not.
    fn first_connection(&self) -> Result<PooledConnection<Manager>> {
        /// How often the failure is looked at while the pool tries.
        const GLANCE: Duration = Duration::from_millis(50);
        let started = std::time::Instant::now();
        let timeout = self.inner.options.connect_timeout;
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            let waited = self
                .inner
                .pool()
                .get_timeout(left.clamp(Duration::from_millis(1), GLANCE));
            let timed_out = match waited {
                Ok(conn) => return Ok(conn),
                Err(e) => e,
            };
            let last = self.failure_since(started);
            if let Some(refusal) = last.as_ref().filter(|r| r.lasting()) {
                return Err(refusal.error());
            }
            if started.elapsed() >= timeout {
                return Err(match last {
                    Some(refusal) => refusal.error(),
                    None => Error::storage_failure(StorageFailure::Unavailable, timed_out),
                });
            }
        }
    }

    /// The pool's last failure to open a connection, if it happened after
    /// `since` (and no connection has opened since it).
    fn failure_since(&self, since: std::time::Instant) -> Option<Refusal> {
        let last = self
            .inner
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        last.as_ref().filter(|r| r.at >= since).cloned()
    }

    /// A connection from the pool. When the pool cannot open one in time,
    /// the error is `Unavailable`, unless the pool's last attempt while
    /// this call waited failed for a reason that would not pass, which it
    /// then is (as at `connect`, but after the whole connect timeout).
    fn connection(&self) -> Result<PooledConnection<Manager>> {
        let started = std::time::Instant::now();
        self.inner.pool().get().map_err(|e| {
            match self.failure_since(started).filter(Refusal::lasting) {
                Some(refusal) => refusal.error(),
                None => Error::storage_failure(StorageFailure::Unavailable, e),
            }
        })
    }

    /// Runs `f` in a write transaction (`READ COMMITTED`; the org's head
    /// row, locked by the first statement, orders the org's writers): it
    /// commits when `f` returns `Ok` and rolls back otherwise. A
    /// serialization failure or a deadlock runs it again; so does a
    /// connection that turns out to be broken before anything was sent.
    fn write<T: Send>(&self, mut f: impl FnMut(&mut Tx<'_>) -> Result<T> + Send) -> Result<T> {
        self.attempt(Mode::Write, &mut f)
    }

    /// [`write`](Self::write), or for a dry run the same transaction rolled
    /// back once `f` has worked out its outcome: exactly what the write
    /// would do at this moment (with the org's head locked), and nothing
    /// written.
    fn write_or_try<T: Send>(
        &self,
        dry_run: bool,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        let mode = if dry_run { Mode::DryRun } else { Mode::Write };
        self.attempt(mode, &mut f)
    }

    /// [`write_or_try`](Self::write_or_try) for a write that may claim an
    /// idempotency key ([`Stamp::key`]): the key is recorded in the same
    /// transaction.
    fn keyed<T: WriteOutcome + Send>(
        &self,
        org: &OrgId,
        stamp: Stamp<'_>,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        self.write_or_try(stamp.dry_run, |tx| keys::claimed(tx, org, stamp, &mut f))
    }

    /// Runs `f` in a read-only `REPEATABLE READ` transaction: everything it
    /// reads is one snapshot.
    fn read<T: Send>(&self, mut f: impl FnMut(&mut Tx<'_>) -> Result<T> + Send) -> Result<T> {
        self.attempt(Mode::Read, &mut f)
    }

    /// [`read`](Self::read) of a page that an index gives in order, in a
    /// transaction that also turns off explicit sorts (`SET LOCAL
    /// enable_sort = off`): before a table is first analyzed, the planner
    /// takes any segment (or org's ledger) for a row or two, and would
    /// read all of it and sort it rather than walk the index that gives
    /// its order. The plan test shows it, statement by statement; on
    /// analyzed tables the hint changes no plan.
    fn read_in_order<T: Send>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        self.attempt(Mode::ReadInOrder, &mut f)
    }

    /// Runs `f` in a transaction for `mode`, off any async runtime's thread
    /// ([`blocking::run`]).
    fn attempt<T: Send>(
        &self,
        mode: Mode,
        f: &mut (dyn FnMut(&mut Tx<'_>) -> Result<T> + Send),
    ) -> Result<T> {
        blocking::run(|| self.attempt_here(mode, f))
    }

    /// [`attempt`](Self::attempt), on a thread that may block.
    fn attempt_here<T>(
        &self,
        mode: Mode,
        f: &mut (dyn FnMut(&mut Tx<'_>) -> Result<T> + Send),
    ) -> Result<T> {
        let (isolation, read_only) = match mode {
            Mode::Read | Mode::ReadInOrder => (IsolationLevel::RepeatableRead, true),
            Mode::Write | Mode::DryRun => (IsolationLevel::ReadCommitted, false),
        };
        let mut retries = 0;
        // Idle connections the server dropped (a restart, an idle
        // timeout) are found closed at BEGIN, before anything was sent,
        // and replaced. The pool holds at most `pool_size` of them, so one
        // try more than that reaches a fresh connection; these tries do
        // not count against `max_retries`.
        let mut closed = 0;
        let max_closed = self.inner.options.pool_size.max(1) + 1;
        loop {
            let mut conn = self.connection()?;
            let mut builder = conn.build_transaction().isolation_level(isolation);
            // A write says nothing of its mode: `READ WRITE` is refused
            // on a standby as a setting ("cannot set transaction read-write
            // mode during recovery", 0A000), where its first write is
            // refused as read-only (25006: `StorageFailure::ReadOnly`).
            if read_only {
                builder = builder.read_only(true);
            }
            let started = builder.start();
            let tx = match started {
                Ok(tx) => tx,
                // Nothing was sent: take another connection (this one is
                // dropped as it goes back to the pool).
                Err(e) if is_lost(&e) && closed < max_closed => {
                    closed += 1;
                    continue;
                }
                Err(e) => return Err(e).db(),
            };
            let outcome = Tx::start(tx, &self.inner.sql, mode).and_then(|mut tx| {
                let out = f(&mut tx)?;
                tx.finish(!matches!(mode, Mode::DryRun))?;
                Ok(out)
            });
            match outcome {
                Err(e) if is_retryable(&e) && retries < self.inner.options.max_retries => {
                    retries += 1;
                    std::thread::sleep(backoff(retries));
                }
                other => return other,
            }
        }
    }
}

/// What a transaction is for.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// A snapshot to read.
    Read,
    /// A snapshot to read a page in index order from
    /// ([`PostgresStore::read_in_order`]).
    ReadInOrder,
    /// A write, committed.
    Write,
    /// A write worked out and rolled back.
    DryRun,
}

/// Whether the connection itself failed (closed, or an I/O error), rather
/// than a statement.
fn is_lost(e: &pg::Error) -> bool {
    e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// Whether a failed transaction may simply run again: a serialization
/// failure or a deadlock (PostgreSQL rolled it back whole).
fn is_retryable(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<pg::Error>())
        .and_then(pg::Error::code)
        .is_some_and(|code| {
            *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        })
}

/// A pause before retry `n` (from 1): 2, 4, 8 … ms, capped at 100 ms, of
/// which a random part, so that racing servers do not meet again.
fn backoff(n: u32) -> Duration {
    let ceiling = 2u64.saturating_pow(n).min(100);
    let jitter = uuid::Uuid::now_v7().as_u128() as u64 % (ceiling * 1_000);
    Duration::from_micros(ceiling * 500 + jitter / 2)
}

/// The one place `postgres` errors become the crate's: a backend failure,
/// classified by [`failure_kind`], with the `postgres` error kept as the
/// source. A unique violation of a segment's name is recognized by its
/// constraint's name where a statement can meet it (see `segments.rs`).
pub(super) trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for std::result::Result<T, pg::Error> {
    fn db(self) -> Result<T> {
        self.map_err(|e| Error::storage_failure(failure_kind(&e), e))
    }
}

/// What a `postgres` error says of the storage: by its SQLSTATE when the
/// server sent one. Without one, [`StorageFailure::Unavailable`] only when
/// the connection itself failed (closed, or an I/O error: refused, reset,
/// timed out), which may pass; anything else (a statement that returned
/// another number of rows than it must, a parameter or value that does
/// not convert) is [`StorageFailure::Other`]: it would fail the same way
/// again, and a host that retries `Unavailable` must not retry it forever.
fn failure_kind(e: &pg::Error) -> StorageFailure {
    if is_lost(e) {
        return StorageFailure::Unavailable;
    }
    match e.code() {
        Some(c) if *c == SqlState::QUERY_CANCELED => StorageFailure::Timeout,
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => StorageFailure::Busy,
        Some(c)
            if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
                // No room for another connection now: it may pass.
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || c.code().starts_with("08") =>
        {
            StorageFailure::Unavailable
        }
        Some(c) if *c == SqlState::DISK_FULL => StorageFailure::Full,
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => StorageFailure::ReadOnly,
        Some(c) if c.code().starts_with("XX") => StorageFailure::Corrupt,
        Some(_) | None => StorageFailure::Other,
    }
}

/// A column. A value that does not decode as this crate wrote it is a
/// damaged row: [`StorageFailure::Corrupt`].
pub(super) fn get<'r, T: pg::types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|e| Error::storage_failure(StorageFailure::Corrupt, e))
}

/// A row that is not what this crate wrote.
pub(super) fn damaged(what: String) -> Error {
    Error::storage_failure(StorageFailure::Corrupt, what)
}

/// A count column; a negative value is a damaged row.
pub(super) fn count(row: &Row, i: usize) -> Result<u64> {
    let v: i64 = get(row, i)?;
    u64::try_from(v).map_err(|_| damaged(format!("stored count {v} is negative")))
}

/// A time column (microseconds since the epoch).
pub(super) fn time(row: &Row, i: usize) -> Result<DateTime<Utc>> {
    let v: i64 = get(row, i)?;
    from_micros(v)
}

pub(super) fn from_micros(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| damaged(format!("stored time {v} is out of range")))
}

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A `limit` or position as PostgreSQL's `bigint`.
pub(super) fn sql_int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl SegmentStore for PostgresStore {
    fn insert_segment(&self, org: &OrgId, new: SegmentInsert, stamp: Stamp<'_>) -> Result<Segment> {
        self.keyed(org, stamp, |tx| segments::insert(tx, org, &new, stamp))
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        self.read(|tx| segments::get_segment(tx, org, id))
    }

    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
        self.read(|tx| segments::by_key(tx, org, key))
    }

    fn segments(
        &self,
        org: &OrgId,
        after: Option<SegmentCursor>,
        limit: usize,
    ) -> Result<Vec<Segment>> {
        self.read_in_order(|tx| segments::list(tx, org, after, limit))
    }

    fn update_segment(
        &self,
        org: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        self.keyed(org, stamp, |tx| {
            segments::update(tx, org, id, change, stamp)
        })
    }

    fn delete_segment(&self, org: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()> {
        self.keyed(org, stamp, |tx| segments::delete(tx, org, id, stamp))
    }

    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<MembersAdded> {
        let batch = Batch::new(pids)?;
        self.keyed(org, stamp, |tx| members::add(tx, org, id, &batch, stamp))
    }

    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<MembersRemoved> {
        let batch = Batch::new(pids)?;
        self.keyed(org, stamp, |tx| members::remove(tx, org, id, &batch, stamp))
    }

    fn create_from(
        &self,
        org: &OrgId,
        segment: SegmentInsert,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        self.keyed(org, stamp, |tx| {
            members::create_from(tx, org, &segment, expr, stamp)
        })
    }

    fn add_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<MembersAdded> {
        self.keyed(org, stamp, |tx| members::add_from(tx, org, id, expr, stamp))
    }

    fn remove_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<MembersRemoved> {
        self.keyed(org, stamp, |tx| {
            members::remove_from(tx, org, id, expr, stamp)
        })
    }

    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        from: MemberStart<'_>,
        limit: usize,
    ) -> Result<MemberSlice> {
        self.read_in_order(|tx| members::slice(tx, org, id, from, limit))
    }

    fn changes_since(&self, org: &OrgId, after: u64, limit: usize) -> Result<Vec<Change>> {
        self.read_in_order(|tx| ledger::since(tx, org, after, limit))
    }

    fn last_seq(&self, org: &OrgId) -> Result<u64> {
        self.read(|tx| ledger::last_seq(tx, org))
    }

    fn timeline(&self, org: &OrgId, pid: &Pid, after: u64, limit: usize) -> Result<Vec<Change>> {
        self.read(|tx| ledger::timeline(tx, org, pid, after, limit))
    }

    fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        self.read_in_order(|tx| as_of::size(tx, org, id, at))
    }

    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        after: Option<&MemberCursor>,
        limit: usize,
    ) -> Result<Vec<PastMember>> {
        self.read(|tx| as_of::members(tx, org, id, at, after, limit))
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

    fn upsert_deaths(&self, records: &[DeathRecord], at: DateTime<Utc>) -> Result<DeathsUpserted> {
        self.write(|tx| deaths::upsert(tx, records, at))
    }

    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        after: DeathCursor,
        limit: usize,
    ) -> Result<DeathSignalPage> {
        self.read(|tx| deaths::signals(tx, org, id, after, limit))
    }
}

#[cfg(test)]
mod tests;
