//! Transactions: each starts with its own settings (`SET LOCAL`) and runs
//! its statements, in the store's schema, unprepared: one round trip each,
//! with their parameters' types given (learned once per store); no
//! statement outlives it. With kept statements
//! ([`PostgresStoreBuilder::prepared_statements`]) it runs those its
//! connection prepared instead. Serialization failures, deadlocks and
//! kept statements gone stale run it again, with a pause.

use std::collections::HashMap;
use std::time::Duration;

use r2d2_postgres::postgres::error::SqlState;
use r2d2_postgres::postgres::types::{ToSql, Type};
use r2d2_postgres::postgres::{self as pg, Row, Statement};

use super::builder::PostgresStoreBuilder;
use super::connections::Conn;
use super::errors::{PostgresDb, is_lost};
use super::ledger::PostgresLedger;
use super::members::{self, PostgresMemberCall};
use super::{PostgresStore, blocking, keys, micros, schema};
use crate::store::entries;
use crate::store::{Stamp, WriteOutcome};
use crate::{Error, OrgId, Result, SegmentId};

/// The store's SQL in its schema: each statement's text with the schema
/// named (tables are written `{schema}.table`), made once per store, the
/// first time a call needs it; and how each kind of transaction starts,
/// with its settings, in one round trip.
pub(super) struct Sql {
    /// The schema, quoted as an identifier.
    schema: String,
    texts: std::sync::RwLock<HashMap<&'static str, std::sync::Arc<str>>>,
    /// Each statement's parameter types, as the server inferred them when
    /// the store first prepared it (a statement's types are fixed by its
    /// text and the schema).
    types: std::sync::RwLock<HashMap<&'static str, std::sync::Arc<[Type]>>>,
    /// `START TRANSACTION` of a read (`REPEATABLE READ, READ ONLY`), then
    /// `SET LOCAL` of the time limits and the time zone.
    begin_read: String,
    /// [`begin_read`](Self::begin_read), and no explicit sorts
    /// ([`PostgresStore::read_in_order`]).
    begin_read_in_order: String,
    /// Whether connections keep their statements prepared
    /// ([`PostgresStoreBuilder::prepared_statements`]).
    keep_prepared: bool,
    /// `START TRANSACTION` of a write (`READ COMMITTED`), then the
    /// settings. A write says nothing of its mode: `READ WRITE` is refused
    /// on a standby as a setting ("cannot set transaction read-write mode
    /// during recovery", 0A000), where its first write is refused as
    /// read-only (25006: `StorageFailure::ReadOnly`).
    begin_write: String,
}

impl Sql {
    pub(super) fn new(options: &PostgresStoreBuilder) -> Self {
        let ms = |d: Duration| d.as_millis().min(i32::MAX as u128);
        let settings = format!(
            "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}; \
                 SET LOCAL idle_in_transaction_session_timeout = {}; SET LOCAL TimeZone = 'UTC'",
            ms(options.statement_timeout),
            ms(options.lock_timeout),
            ms(options.idle_in_transaction_session_timeout),
        );
        let read = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";
        Self {
            schema: schema::quoted(&options.schema),
            texts: Default::default(),
            types: Default::default(),
            keep_prepared: options.prepared_statements,
            begin_read: format!("{read}; {settings}"),
            begin_read_in_order: format!("{read}; {settings}; SET LOCAL enable_sort = off"),
            begin_write: format!("START TRANSACTION ISOLATION LEVEL READ COMMITTED; {settings}"),
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

/// One transaction on a pooled connection. It starts with its own
/// settings (`SET LOCAL`) and names every table with its schema. By
/// default it relies on nothing of the session: it runs each statement
/// unprepared, its parameters' types given (`query_typed`: parse, bind
/// and execute in one round trip, on the unnamed statement), so that it
/// runs the same through a pooler that hands each transaction another
/// server session (PgBouncer's transaction pooling). When the store keeps
/// prepared statements, it runs the connection's.
pub(super) struct Tx<'c> {
    sql: &'c Sql,
    conn: &'c mut Conn,
    /// Runs the connection's kept statements. Never in a transaction
    /// that sets a planner hint (`ReadInOrder`): a plan PostgreSQL kept
    /// for a statement would not see the hint.
    keep: bool,
    /// Not yet committed or rolled back: `Drop` rolls it back.
    open: bool,
}

/// Parameters of a statement.
type Params<'p> = [&'p (dyn ToSql + Sync)];

/// Parameters of a statement, each with its type.
type Typed<'p> = Vec<(&'p (dyn ToSql + Sync), Type)>;

impl<'c> Tx<'c> {
    /// Starts a transaction for `mode` on `client`, with its settings.
    /// The error is `postgres`'s, for the caller to tell a connection
    /// found closed (nothing was sent) from other failures.
    fn start(conn: &'c mut Conn, sql: &'c Sql, mode: Mode) -> Result<Self, pg::Error> {
        let begin = match mode {
            Mode::Read => &sql.begin_read,
            Mode::ReadInOrder => &sql.begin_read_in_order,
            Mode::Write | Mode::DryRun => &sql.begin_write,
        };
        if let Err(e) = conn.client.batch_execute(begin) {
            // A setting refused after the transaction began leaves it
            // open and aborted: it ends here, before the connection goes
            // back to the pool.
            if !is_lost(&e) {
                let _ = conn.client.batch_execute("ROLLBACK");
            }
            return Err(e);
        }
        Ok(Self {
            sql,
            conn,
            keep: sql.keep_prepared && !matches!(mode, Mode::ReadInOrder),
            open: true,
        })
    }

    /// Commits, or rolls back for a dry run.
    fn finish(mut self, commit: bool) -> Result<()> {
        self.open = false;
        self.conn
            .client
            .batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
            .db()
    }

    /// `sql`'s text in the store's schema, and its parameters with their
    /// types. The first use of a statement in a store prepares it once to
    /// learn the types (and closes it at once); later uses only look
    /// them up.
    fn typed<'p>(
        &mut self,
        sql: &'static str,
        params: &Params<'p>,
    ) -> Result<(std::sync::Arc<str>, Typed<'p>)> {
        let text = self.sql.text(sql);
        let known = self
            .sql
            .types
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(sql)
            .cloned();
        let types = match known {
            Some(types) => types,
            None => {
                let types: std::sync::Arc<[Type]> =
                    self.conn.client.prepare(&text).db()?.params().into();
                self.sql
                    .types
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(sql, std::sync::Arc::clone(&types));
                types
            }
        };
        if types.len() != params.len() {
            return Err(Error::storage(format!(
                "a statement of {} parameters was given {}",
                types.len(),
                params.len()
            )));
        }
        let typed = params.iter().copied().zip(types.iter().cloned()).collect();
        Ok((text, typed))
    }

    /// The connection's prepared statement for `sql`, prepared now if it
    /// has none; `None` when the store keeps no statements.
    fn kept(&mut self, sql: &'static str) -> Result<Option<Statement>> {
        if !self.keep {
            return Ok(None);
        }
        if let Some(statement) = self.conn.prepared.get(sql) {
            return Ok(Some(statement.clone()));
        }
        let statement = self.conn.client.prepare(&self.sql.text(sql)).db()?;
        self.conn.prepared.insert(sql, statement.clone());
        Ok(Some(statement))
    }

    /// What running a kept statement returned: when the server no longer
    /// has it, or holds a plan the schema made stale, the connection
    /// forgets its statements, and the call runs again (see
    /// [`is_retryable`]), preparing them afresh.
    fn ran<T>(&mut self, out: Result<T, pg::Error>) -> Result<T> {
        if out.as_ref().is_err_and(is_stale_statement) {
            self.conn.prepared.clear();
        }
        out.db()
    }

    pub(super) fn query(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Vec<Row>> {
        if let Some(statement) = self.kept(sql)? {
            let out = self.conn.client.query(&statement, params);
            return self.ran(out);
        }
        let (text, params) = self.typed(sql, params)?;
        self.conn.client.query_typed(&text, &params).db()
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Option<Row>> {
        if let Some(statement) = self.kept(sql)? {
            let out = self.conn.client.query_opt(&statement, params);
            return self.ran(out);
        }
        let (text, params) = self.typed(sql, params)?;
        self.conn.client.query_typed_opt(&text, &params).db()
    }

    pub(super) fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64> {
        if let Some(statement) = self.kept(sql)? {
            let out = self.conn.client.execute(&statement, params);
            return self.ran(out);
        }
        let (text, params) = self.typed(sql, params)?;
        self.conn.client.execute_typed(&text, &params).db()
    }

    /// A statement built for this call (a set expression's), prepared and
    /// planned for it alone, and closed at once.
    pub(super) fn query_once(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        self.conn.client.query(&self.sql.qualify(sql), params).db()
    }
}

impl Drop for Tx<'_> {
    /// Rolls back a transaction that did not finish (a failed call). A
    /// connection that fails here is broken, and the pool drops it.
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.client.batch_execute("ROLLBACK");
        }
    }
}

impl PostgresStore {
    /// Runs `f` in a write transaction (`READ COMMITTED`; the org's head
    /// row, locked by the first statement, orders the org's writers): it
    /// commits when `f` returns `Ok` and rolls back otherwise. A
    /// serialization failure or a deadlock runs it again; so does a
    /// connection that turns out to be broken before anything was sent.
    pub(super) fn write<T: Send>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        self.attempt(Mode::Write, &mut f)
    }

    /// [`write`](Self::write), or for a dry run the same transaction rolled
    /// back once `f` has worked out its outcome: exactly what the write
    /// would do at this moment (with the org's head locked), and nothing
    /// written.
    pub(super) fn write_or_try<T: Send>(
        &self,
        dry_run: bool,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        let mode = if dry_run { Mode::DryRun } else { Mode::Write };
        self.attempt(mode, &mut f)
    }

    /// [`write_or_try`](Self::write_or_try) for a write that changes
    /// segments or members: `f` runs with the org's ledger open (its head
    /// locked first), and the key the stamp may claim ([`Stamp::key`]) is
    /// recorded in the same transaction ([`entries::keyed_write`]).
    pub(super) fn keyed<T: WriteOutcome + Send>(
        &self,
        org: &OrgId,
        stamp: Stamp<'_>,
        mut f: impl FnMut(&mut Tx<'_>, &mut PostgresLedger<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        self.write_or_try(stamp.dry_run, |tx| {
            entries::keyed_write(
                tx,
                org,
                stamp,
                |tx: &mut Tx<'_>, ledger: &mut PostgresLedger<'_>| f(tx, ledger),
                |tx, key, record| keys::put(tx, org, key, record, micros(stamp.at)),
            )
        })
    }

    /// [`keyed`](Self::keyed) for a member call on segment `id` of `org`:
    /// `f` runs with the segment located and the org's ledger open.
    pub(super) fn member_call<T: WriteOutcome + Send>(
        &self,
        org: &OrgId,
        id: SegmentId,
        stamp: Stamp<'_>,
        f: impl Fn(&mut PostgresMemberCall<'_, '_, '_>) -> Result<T> + Sync,
    ) -> Result<T> {
        self.keyed(org, stamp, |tx, ledger| {
            members::on_segment(tx, ledger, org, id, &f)
        })
    }

    /// Runs `f` in a read-only `REPEATABLE READ` transaction: everything it
    /// reads is one snapshot.
    pub(super) fn read<T: Send>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        self.attempt(Mode::Read, &mut f)
    }

    /// [`read`](Self::read) of a page that an index gives in order, in a
    /// transaction that also turns off explicit sorts (`SET LOCAL
    /// enable_sort = off`): before a table is first analyzed, the planner
    /// takes any segment (or org's ledger) for a row or two, and would
    /// read all of it and sort it rather than walk the index that gives
    /// its order. The plan test shows it, statement by statement; on
    /// analyzed tables the hint changes no plan.
    pub(super) fn read_in_order<T: Send>(
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
            let mut tx = match Tx::start(&mut conn, &self.inner.sql, mode) {
                Ok(tx) => tx,
                // Nothing was sent: take another connection (this one is
                // dropped as it goes back to the pool).
                Err(e) if is_lost(&e) && closed < max_closed => {
                    closed += 1;
                    continue;
                }
                Err(e) => return Err(e).db(),
            };
            let outcome = f(&mut tx).and_then(|out| {
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
pub(super) enum Mode {
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

/// Whether a failed transaction may simply run again (PostgreSQL rolled
/// it back whole): a serialization failure, a deadlock, or a kept
/// statement gone stale (which its connection has forgotten since).
fn is_retryable(e: &Error) -> bool {
    let Some(e) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<pg::Error>()) else {
        return false;
    };
    is_stale_statement(e)
        || e.code().is_some_and(|code| {
            *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        })
}

/// A kept statement the server no longer has (its session was reset),
/// or whose kept plan a change of the schema made unusable ("cached plan
/// must not change result type", told by the server's routine, whose
/// name is not translated as the message may be).
fn is_stale_statement(e: &pg::Error) -> bool {
    match e.code() {
        Some(code) if *code == SqlState::INVALID_SQL_STATEMENT_NAME => true,
        Some(code) if *code == SqlState::FEATURE_NOT_SUPPORTED => e
            .as_db_error()
            .is_some_and(|db| db.routine() == Some("RevalidateCachedQuery")),
        _ => false,
    }
}

/// A pause before retry `n` (from 1): 2, 4, 8 … ms, capped at 100 ms, of
/// which a random part, so that racing servers do not meet again.
fn backoff(n: u32) -> Duration {
    let ceiling = 2u64.saturating_pow(n).min(100);
    let jitter = uuid::Uuid::now_v7().as_u128() as u64 % (ceiling * 1_000);
    Duration::from_micros(ceiling * 500 + jitter / 2)
}

#[cfg(test)]
mod tests {
    use super::super::tests::server;
    use super::*;
    use crate::{NewSegment, Segments};

    /// A store with one connection in a schema of its own, and that
    /// connection's statements as the server lists them.
    fn store(prepared_statements: bool) -> (PostgresStore, String) {
        let schema = format!(
            "kept_{}",
            uuid::Uuid::now_v7().simple().to_string().get(20..).unwrap()
        );
        let store = PostgresStore::builder(&server::url())
            .schema(schema.clone())
            .pool_size(1)
            .prepared_statements(prepared_statements)
            .connect()
            .unwrap();
        (store, schema)
    }

    fn on_the_server(conn: &mut Conn) -> usize {
        let n: i64 = conn
            .client
            // (Not counting this query, which `postgres` prepares too.)
            .query_one(
                "SELECT count(*) FROM pg_prepared_statements \
                 WHERE statement NOT LIKE '%pg_prepared_statements%'",
                &[],
            )
            .unwrap()
            .get(0);
        usize::try_from(n).unwrap()
    }

    fn drop_schema(store: PostgresStore, schema: &str) {
        let mut conn = store.connection().unwrap();
        conn.client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
    }

    #[test]
    fn kept_statements_are_prepared_once_and_again_when_the_server_forgot_them() {
        let (store, schema) = store(true);
        let segments = Segments::new(store.clone());
        let org = OrgId::new("acme").unwrap();
        segments.create(&org, NewSegment::new("First")).unwrap();
        let kept = {
            let mut conn = store.connection().unwrap();
            let kept = conn.prepared.len();
            assert!(kept > 0, "the create's statements are kept");
            assert_eq!(on_the_server(&mut conn), kept, "and prepared on the server");
            // The server forgets them, as when a pooler hands the
            // connection another session.
            conn.client.batch_execute("DEALLOCATE ALL").unwrap();
            kept
        };
        let second = segments.create(&org, NewSegment::new("Second"));
        assert!(
            second.is_ok(),
            "the call ran again, preparing afresh: {second:?}"
        );
        let mut conn = store.connection().unwrap();
        // (The first create also made the org's ledger head.)
        let again = conn.prepared.len();
        assert!(
            again > 0 && again <= kept,
            "the second create's statements, kept again: {again} of {kept}"
        );
        assert_eq!(on_the_server(&mut conn), again);
        drop(conn);
        segments.create(&org, NewSegment::new("Third")).unwrap();
        assert_eq!(
            store.connection().unwrap().prepared.len(),
            again,
            "a call whose statements the connection has prepares nothing"
        );
        drop_schema(store, &schema);
    }

    #[test]
    fn a_kept_statement_that_a_schema_change_made_stale_is_prepared_afresh() {
        let (store, schema) = store(true);
        let segments = Segments::new(store.clone());
        let org = OrgId::new("acme").unwrap();
        let s = segments.create(&org, NewSegment::new("First")).unwrap();
        assert_eq!(segments.get(&org, s.id).unwrap().name, "First");
        {
            // The result type of every kept read of a segment changes.
            let mut conn = store.connection().unwrap();
            let kept = conn.prepared.len();
            conn.client
                .batch_execute(&format!(
                    "ALTER TABLE {schema}.segments ALTER COLUMN name TYPE varchar(200)"
                ))
                .unwrap();
            assert_eq!(conn.prepared.len(), kept, "still kept");
        }
        let got = segments.get(&org, s.id);
        assert_eq!(
            got.map(|s| s.name).ok().as_deref(),
            Some("First"),
            "the read ran again, preparing afresh"
        );
        drop_schema(store, &schema);
    }

    #[test]
    fn by_default_nothing_is_kept_on_the_session() {
        let (store, schema) = store(false);
        let segments = Segments::new(store.clone());
        let org = OrgId::new("acme").unwrap();
        let s = segments.create(&org, NewSegment::new("First")).unwrap();
        segments
            .add_members(&org, s.id, &["p-a1b2c3d4e5f6"])
            .unwrap();
        let mut conn = store.connection().unwrap();
        assert!(conn.prepared.is_empty());
        assert_eq!(
            on_the_server(&mut conn),
            0,
            "no statement outlives its call"
        );
        drop(conn);
        drop_schema(store, &schema);
    }
}
