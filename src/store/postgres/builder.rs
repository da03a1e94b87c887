//! [`PostgresStoreBuilder`]: a store's options, and `connect`.

use std::fmt;
use std::time::Duration;

use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::{self as pg, NoTls};
use r2d2_postgres::r2d2::Pool;

#[cfg(feature = "postgres-tls")]
use super::PostgresTls;
use super::connections::{Connector, Manager};
use super::{PostgresShared, PostgresStore, Sql, blocking, schema};
use crate::{Error, Result, StorageFailure};

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
    pub(super) url: String,
    pub(super) pool_size: u32,
    pub(super) connect_timeout: Duration,
    pub(super) statement_timeout: Duration,
    pub(super) lock_timeout: Duration,
    pub(super) idle_in_transaction_session_timeout: Duration,
    pub(super) schema: String,
    pub(super) max_retries: u32,
    pub(super) prepared_statements: bool,
    #[cfg(feature = "postgres-tls")]
    pub(super) tls: Option<PostgresTls>,
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
            .field("prepared_statements", &self.prepared_statements)
            .field("tls", &self.uses_tls())
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    pub(super) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_session_timeout: Duration::from_secs(60),
            schema: "segments".to_owned(),
            max_retries: 5,
            prepared_statements: false,
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

    /// Whether each statement is prepared once per connection and kept;
    /// off by default.
    ///
    /// Off, the store keeps nothing on a server session: each statement
    /// runs unprepared, parsed and planned on every call (one round trip,
    /// its parameters' types given), so that it works through a pooler
    /// that hands each transaction another session (PgBouncer before 1.21
    /// in transaction pooling). On, a connection prepares each statement
    /// the first time it runs it and reuses it after: the server no longer
    /// parses and plans it on every call, which matters most for short
    /// calls such as a create (measured in the repository's
    /// `docs/benchmarks.md`). Turn it on for direct connections,
    /// or behind a pooler that keeps prepared statements per client
    /// (PgBouncer 1.21 or later with `max_prepared_statements` set).
    /// PostgreSQL plans a kept statement as it plans any prepared one
    /// (`plan_cache_mode`, `auto` by default). A kept statement that the
    /// server no longer knows, or that a change of the schema made stale,
    /// is forgotten by its connection, and the call runs again (as after a
    /// serialization failure, within [`max_retries`](Self::max_retries)),
    /// preparing afresh.
    ///
    /// Never turn it on behind a pooler that does not keep prepared
    /// statements per client (PgBouncer before 1.21, or without
    /// `max_prepared_statements`, in transaction or statement pooling):
    /// there clients share server sessions, and the `postgres` crate names
    /// statements the same way in every process, so a call could run
    /// another process's statement of the same name, or fail on it.
    pub fn prepared_statements(mut self, on: bool) -> Self {
        self.prepared_statements = on;
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
            inner: std::sync::Arc::new(PostgresShared {
                pool: Some(pool),
                last_failure,
                sql,
                options: self,
            }),
        };
        let mut conn = store.first_connection()?;
        schema::migrate(&mut conn.client, &store.inner.options.schema)?;
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
