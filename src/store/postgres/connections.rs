//! The pool's connections: the `r2d2` manager, in plain text or with TLS;
//! why the last connection failed, and when; and how a call waits for a
//! connection.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::{self as pg, Client, NoTls, Statement};
use r2d2_postgres::r2d2::{ManageConnection, PooledConnection};

use super::PostgresStore;
use super::errors::failure_kind;
use crate::{Error, Result, StorageFailure};

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

/// `r2d2_postgres`'s manager, which remembers why the last connection
/// failed.
pub(super) struct Manager {
    connector: Connector,
    /// Why the last connection failed, if it did (cleared by one that
    /// opens).
    pub(super) last_failure: LastFailure,
}

/// Why the pool's last attempt to open a connection failed, shared by the
/// pool's manager (which sets it) and the store (which reads it).
pub(super) type LastFailure = std::sync::Arc<std::sync::Mutex<Option<OpenFailure>>>;

/// Opens connections, in plain text or with TLS.
pub(super) enum Connector {
    Plain(PostgresConnectionManager<NoTls>),
    #[cfg(feature = "postgres-tls")]
    Tls(PostgresConnectionManager<postgres_native_tls::MakeTlsConnector>),
}

impl Manager {
    pub(super) fn new(connector: Connector) -> Self {
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

/// A pooled connection, and the statements kept prepared on it (none
/// unless the store keeps them:
/// [`PostgresStoreBuilder::prepared_statements`](super::PostgresStoreBuilder::prepared_statements)).
pub(super) struct Conn {
    pub(super) client: Client,
    /// Statements prepared on this connection, by their text in the crate.
    pub(super) prepared: HashMap<&'static str, Statement>,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = Connecting;

    /// Opens a connection; nothing is set on it (each transaction sets
    /// what it needs), and it starts with no statement prepared.
    fn connect(&self) -> std::result::Result<Conn, Connecting> {
        let opened =
            each_manager!(self, m => m.connect()).map_err(|e| OpenFailure::from_server(&e));
        let mut last = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        match opened {
            Ok(client) => {
                *last = None;
                Ok(Conn {
                    client,
                    prepared: HashMap::new(),
                })
            }
            Err(refusal) => {
                let shown = Connecting(refusal.reason.clone());
                *last = Some(refusal);
                Err(shown)
            }
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), Connecting> {
        each_manager!(self, m => m.is_valid(&mut conn.client)).map_err(|e| Connecting::from(&e))
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        each_manager!(self, m => m.has_broken(&mut conn.client))
    }
}

/// Why the pool could not open a connection: of what kind, why (with
/// every cause: the pool keeps only the text of its last failure), and
/// when, so that a caller reports only a failure that happened while it
/// waited.
#[derive(Clone, Debug)]
pub(super) struct OpenFailure {
    kind: StorageFailure,
    reason: String,
    at: std::time::Instant,
}

impl OpenFailure {
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
pub(super) struct Connecting(String);

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

impl PostgresStore {
    /// The store's first connection, for [`PostgresStoreBuilder::connect`]:
    /// waits up to the connect timeout for the pool to open one, as any
    /// call does, but fails as soon as an attempt failed for a reason
    /// that would not pass (the manager's `last_failure`): the pool itself
    /// tells only that it timed out, with the text of its last failure. A
    /// refused or lost connection stays `Unavailable`; a password, a
    /// certificate or a database the server refuses is not.
    pub(super) fn first_connection(&self) -> Result<PooledConnection<Manager>> {
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
    fn failure_since(&self, since: std::time::Instant) -> Option<OpenFailure> {
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
    pub(super) fn connection(&self) -> Result<PooledConnection<Manager>> {
        let started = std::time::Instant::now();
        self.inner.pool().get().map_err(|e| {
            match self.failure_since(started).filter(OpenFailure::lasting) {
                Some(refusal) => refusal.error(),
                None => Error::storage_failure(StorageFailure::Unavailable, e),
            }
        })
    }
}
