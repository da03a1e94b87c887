//! [`AsyncSegments`]: the service for async hosts (feature `tokio`).

use std::fmt;
use std::sync::Arc;

use crate::SegmentCursor;
use crate::{
    Error, NewSegment, OrgId, PageOptions, Result, Segment, SegmentId, SegmentPage, SegmentStore,
    Segments, StorageFailure,
};

mod deaths;
mod history;
mod idempotency;
mod members;
mod off_runtime;
mod sets;

pub use off_runtime::DropOffRuntime;
pub use sets::AsyncDryRun;

use off_runtime::OnPool;

/// What every handle of one [`AsyncSegments`] shares.
type Shared<S> = DropOffRuntime<Segments<S>>;

/// Runs `$call` with `$s` bound to the service as this handle's view
/// sees it (its request id and idempotency key, if any), on the
/// blocking pool.
macro_rules! in_view {
    ($this:expr, |$s:ident| $call:expr) => {{
        let request_id = $this.request_id.clone();
        let key = $this.idempotency_key.clone();
        $this
            .run(
                move |segments| match (request_id.as_deref(), key.as_deref()) {
                    (None, None) => {
                        let $s = segments;
                        $call
                    }
                    (Some(request_id), None) => {
                        let $s = &segments.for_request(request_id);
                        $call
                    }
                    (None, Some(key)) => {
                        let $s = &segments.with_idempotency_key(key);
                        $call
                    }
                    (Some(request_id), Some(key)) => {
                        let for_request = segments.for_request(request_id);
                        let $s = &for_request.with_idempotency_key(key);
                        $call
                    }
                },
            )
            .await
    }};
}
use in_view;

/// [`Segments`] for async hosts: every call is an `async fn` that runs the
/// store call on Tokio's blocking pool
/// ([`spawn_blocking`](tokio::task::spawn_blocking)), so it never stalls
/// the runtime's async threads (feature `tokio`).
///
/// Made with [`AsyncSegments::new`], [`Segments::into_async`], or
/// [`AsyncSegments::open`], which also opens the store off the async
/// threads. Cheap to clone: clones share one service (one store, one
/// clock, one cache of page ends), so put it in a router's state as is.
///
/// ```no_run
/// use axum::extract::{Path, State};
/// use axum::http::StatusCode;
/// use axum::response::{IntoResponse, Response};
/// use axum::routing::post;
/// use axum::Router;
/// use segments_engine::{AsyncSegments, Error, NewSegment, OrgId, Segments, SqliteStore};
///
/// /// The router's state: the service, shared by every request.
/// type AppState = AsyncSegments<SqliteStore>;
///
/// /// `POST /orgs/{org}/segments` with the name as the body.
/// async fn create(
///     State(segments): State<AppState>,
///     Path(org): Path<String>,
///     name: String,
/// ) -> Result<String, AppError> {
///     let org = OrgId::new(org).map_err(Error::from)?;
///     let s = segments.create(&org, NewSegment::new(name)).await?;
///     Ok(s.id.to_string())
/// }
///
/// /// An error as the documented API answers it: its status, its message.
/// struct AppError(Error);
///
/// impl From<Error> for AppError {
///     fn from(e: Error) -> Self {
///         AppError(e)
///     }
/// }
///
/// impl IntoResponse for AppError {
///     fn into_response(self) -> Response {
///         let status = StatusCode::from_u16(self.0.status_code())
///             .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
///         (status, self.0.public_message().into_owned()).into_response()
///     }
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     // Opening a store blocks too: `open` does it on the blocking pool.
///     let segments =
///         AsyncSegments::open(|| Ok(Segments::new(SqliteStore::open("segments.db")?))).await?;
///     let app = Router::new()
///         .route("/orgs/{org}/segments", post(create))
///         .with_state(segments);
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
///     axum::serve(listener, app)
///         .with_graceful_shutdown(async {
///             let _ = tokio::signal::ctrl_c().await;
///         })
///         .await?;
///     Ok(())
/// }
/// ```
///
/// # What runs where
/// - **Every call runs on the blocking pool**, with the same input,
///   outcome, errors and guarantees as its namesake on [`Segments`]
///   (each method's docs link to it).
/// - **Borrowed input is copied**, since a blocking call cannot borrow
///   from the caller's stack: `&OrgId`, names, PID slices and set
///   expressions are cloned before the call (one allocation per PID for
///   the member calls; the store's own work per PID is larger), the way
///   `tokio::fs::write` copies its bytes. Owned input
///   ([`NewSegment`], [`ingest_deaths`](Self::ingest_deaths)' reports)
///   moves.
/// - **Dropping a call's future does not cancel the call**: once started
///   on the pool, a store call runs to its end, and a write may be
///   applied though nobody awaits its outcome (a client that hung up,
///   a timeout). To retry a write safely, make it with an idempotency key
///   ([`with_idempotency_key`](Self::with_idempotency_key)).
/// - **Spans follow the call** (feature `tracing`): the call's span nests
///   under the span current where it was awaited, on the pool too.
/// - **A panic in the call** (a bug: in the store, a plugged clock or
///   person directory) **is resumed in the awaiting task**
///   ([`std::panic::resume_unwind`]), as if the call had been made there.
///   It is not turned into an error: a panic is not an outcome of the
///   call a host can act on, and Tokio already confines it to the task.
/// - **Outside a Tokio runtime**, or **while the runtime shuts down**, a
///   call is not run; it returns [`Error::Storage`] whose source is a
///   [`NotRun`] saying which (kind [`StorageFailure::Other`] and
///   [`StorageFailure::Unavailable`]), never a panic.
/// - **Dropping the last handle is safe on any thread**, inside a runtime
///   or not, whatever the store: the service, and so the store, is
///   dropped on the blocking pool when the last handle goes on an async
///   thread (on a thread of its own if the runtime is shutting down),
///   since a store such as the sync `postgres::Client` panics when it is
///   closed on one. A host that keeps the store in types of its own too
///   (the `wire` adapter, say) holds them in a [`DropOffRuntime`].
///
/// # Views and settings
/// [`for_request`](Self::for_request), [`with_idempotency_key`](Self::with_idempotency_key)
/// and [`dry_run`](Self::dry_run) return owned views (`'static`, cheap:
/// they share the service) that behave as the sync views do. The
/// settings that build a service ([`Segments::with_clock`],
/// [`with_id_generator`](Segments::with_id_generator),
/// [`with_person_directory`](Segments::with_person_directory),
/// [`with_idempotency_ttl`](Segments::with_idempotency_ttl)) are set on
/// [`Segments`] before it becomes an `AsyncSegments`.
pub struct AsyncSegments<S: SegmentStore + 'static> {
    shared: Arc<Shared<S>>,
    request_id: Option<Arc<str>>,
    idempotency_key: Option<Arc<str>>,
}

impl<S: SegmentStore + 'static> Clone for AsyncSegments<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            request_id: self.request_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
        }
    }
}

impl<S: SegmentStore + 'static> fmt::Debug for AsyncSegments<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSegments")
            .field("segments", &**self.shared)
            .field("request_id", &self.request_id)
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

impl<S: SegmentStore + 'static> From<Segments<S>> for AsyncSegments<S> {
    fn from(segments: Segments<S>) -> Self {
        Self::new(segments)
    }
}

/// Why a call of [`AsyncSegments`] was not run: the source of the
/// [`Error::Storage`] it returned. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum NotRun {
    /// The call was awaited outside a Tokio runtime, which has no
    /// blocking pool to run it on (kind [`StorageFailure::Other`]).
    #[error(
        "AsyncSegments runs its calls on Tokio's blocking pool: await them inside a Tokio runtime"
    )]
    NoRuntime,
    /// The Tokio runtime is shutting down and runs no new blocking work
    /// (kind [`StorageFailure::Unavailable`]).
    #[error("the Tokio runtime is shutting down: the call was not run")]
    ShuttingDown,
}

impl From<NotRun> for Error {
    fn from(reason: NotRun) -> Self {
        let kind = match reason {
            NotRun::NoRuntime => StorageFailure::Other,
            NotRun::ShuttingDown => StorageFailure::Unavailable,
        };
        Error::storage_failure(kind, reason)
    }
}

impl<S: SegmentStore + 'static> AsyncSegments<S> {
    /// The async facade of `segments` (the same as
    /// [`segments.into_async()`](Segments::into_async)).
    pub fn new(segments: Segments<S>) -> Self {
        Self::from_shared(Arc::new(DropOffRuntime::new(segments)))
    }

    fn from_shared(shared: Arc<Shared<S>>) -> Self {
        Self {
            shared,
            request_id: None,
            idempotency_key: None,
        }
    }

    /// Runs `open` on the blocking pool and makes its service async: for
    /// opening a store, which blocks (and, for `PostgresStore`, may not
    /// run on an async thread at all).
    ///
    /// ```no_run
    /// # async fn f() -> segments_engine::Result<()> {
    /// use segments_engine::{AsyncSegments, Segments, SqliteStore};
    /// let segments = AsyncSegments::open(|| Ok(Segments::new(SqliteStore::open("s.db")?))).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// What `open` returns; [`Error::Storage`] with a [`NotRun`] source
    /// outside a Tokio runtime or while it shuts down. If this future is
    /// dropped before `open` returns, the service it opened is dropped
    /// on the blocking pool.
    pub async fn open<F>(open: F) -> Result<Self>
    where
        F: FnOnce() -> Result<Segments<S>> + Send + 'static,
    {
        let shared = on_pool(move || Ok(Arc::new(DropOffRuntime::new(open()?)))).await?;
        Ok(Self::from_shared(shared))
    }

    /// Runs `call` with the service on the blocking pool, and waits for
    /// it (see "What runs where").
    async fn run<R, F>(&self, call: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Segments<S>) -> Result<R> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        on_pool(move || {
            let outcome = call(&shared);
            // The last handle may go here, on the pool.
            drop(shared);
            outcome
        })
        .await
    }

    /// The sync service underneath, for code that already runs off the
    /// async threads (in a `spawn_blocking` of its own, say): its calls
    /// block, so make them there. It has no view's request id or key:
    /// those apply to this handle's calls.
    pub fn segments(&self) -> &Segments<S> {
        &self.shared
    }

    /// The store underneath. Its calls block, like the service's: make
    /// them off the async threads.
    pub fn store(&self) -> &S {
        self.shared.store()
    }

    /// The same service, for one request: every change it makes is
    /// recorded in the ledger with `request_id`
    /// ([`Segments::for_request`]). Cheap; the view is owned, so a task
    /// can take it.
    pub fn for_request(&self, request_id: impl Into<String>) -> AsyncSegments<S> {
        let mut view = self.clone();
        view.request_id = Some(Arc::from(request_id.into()));
        view
    }

    /// [`Segments::create`], on the blocking pool.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> segments_engine::Result<()> {
    /// let segments = Segments::new(MemoryStore::new()).into_async();
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("Watchlist")).await?;
    /// assert_eq!(segments.get(&org, s.id).await?, s);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Segments::create`]; [`Error::Storage`] with a [`NotRun`]
    /// source when the call could not be run.
    pub async fn create(&self, org: &OrgId, new: NewSegment) -> Result<Segment> {
        let org = org.clone();
        in_view!(self, |s| s.create(&org, new))
    }

    /// [`Segments::find_or_create`], on the blocking pool: the org's
    /// segment with `new`'s name key as it is, or else a new one.
    /// Race-safe, as the sync call is.
    ///
    /// # Errors
    /// As [`Segments::find_or_create`]; `Storage` with a [`NotRun`]
    /// source.
    pub async fn find_or_create(&self, org: &OrgId, new: NewSegment) -> Result<Segment> {
        let org = org.clone();
        in_view!(self, |s| s.find_or_create(&org, new))
    }

    /// [`Segments::get`], on the blocking pool.
    ///
    /// # Errors
    /// As [`Segments::get`]; `Storage` with a [`NotRun`] source.
    pub async fn get(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        let org = org.clone();
        self.run(move |s| s.get(&org, id)).await
    }

    /// [`Segments::find_by_name`], on the blocking pool (`name` is copied).
    ///
    /// # Errors
    /// As [`Segments::find_by_name`]; `Storage` with a [`NotRun`] source.
    pub async fn find_by_name(&self, org: &OrgId, name: &str) -> Result<Option<Segment>> {
        let (org, name) = (org.clone(), name.to_owned());
        self.run(move |s| s.find_by_name(&org, &name)).await
    }

    /// [`Segments::list`], on the blocking pool.
    ///
    /// # Errors
    /// As [`Segments::list`]; `Storage` with a [`NotRun`] source.
    pub async fn list(
        &self,
        org: &OrgId,
        options: PageOptions<SegmentCursor>,
    ) -> Result<SegmentPage> {
        let org = org.clone();
        self.run(move |s| s.list(&org, options)).await
    }

    /// [`Segments::rename`], on the blocking pool (`name` is copied).
    ///
    /// # Errors
    /// As [`Segments::rename`]; `Storage` with a [`NotRun`] source.
    pub async fn rename(&self, org: &OrgId, id: SegmentId, name: &str) -> Result<Segment> {
        let (org, name) = (org.clone(), name.to_owned());
        in_view!(self, |s| s.rename(&org, id, &name))
    }

    /// [`Segments::set_description`], on the blocking pool (`description`
    /// is copied).
    ///
    /// # Errors
    /// As [`Segments::set_description`]; `Storage` with a [`NotRun`]
    /// source.
    pub async fn set_description(
        &self,
        org: &OrgId,
        id: SegmentId,
        description: Option<&str>,
    ) -> Result<Segment> {
        let (org, description) = (org.clone(), description.map(str::to_owned));
        in_view!(self, |s| s.set_description(
            &org,
            id,
            description.as_deref()
        ))
    }

    /// [`Segments::delete`], on the blocking pool.
    ///
    /// # Errors
    /// As [`Segments::delete`]; `Storage` with a [`NotRun`] source.
    pub async fn delete(&self, org: &OrgId, id: SegmentId) -> Result<()> {
        let org = org.clone();
        in_view!(self, |s| s.delete(&org, id))
    }
}

/// Runs `call` on the blocking pool of the current Tokio runtime, marked
/// as on the pool, and waits for it; a panic in it is resumed here.
async fn on_pool<R, F>(call: F) -> Result<R>
where
    R: Send + 'static,
    F: FnOnce() -> Result<R> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| NotRun::NoRuntime)?;
    // The call's own spans (feature `tracing`) nest under the caller's.
    #[cfg(feature = "tracing")]
    let span = tracing::Span::current();
    let task = runtime.spawn_blocking(move || {
        let _pool = OnPool::enter();
        #[cfg(feature = "tracing")]
        let _entered = span.enter();
        call()
    });
    match task.await {
        Ok(outcome) => outcome,
        Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
        Err(_) => Err(NotRun::ShuttingDown.into()),
    }
}
