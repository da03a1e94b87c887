//! [`DropOffRuntime`]: dropping a store where a drop cannot panic for
//! being on an async thread.

use std::cell::Cell;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

thread_local! {
    /// Whether this thread is running a call of the facade on the
    /// blocking pool, where a drop is safe.
    static ON_POOL: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as running on the blocking pool while it lives.
#[derive(Debug)]
pub(super) struct OnPool {
    /// What the mark was before (a call inside a call's drop).
    before: bool,
}

impl OnPool {
    /// Marks this thread until the returned guard is dropped.
    pub(super) fn enter() -> Self {
        Self {
            before: ON_POOL.replace(true),
        }
    }
}

impl Drop for OnPool {
    fn drop(&mut self) {
        ON_POOL.set(self.before);
    }
}

/// A value that is dropped off Tokio's async threads (feature `tokio`).
///
/// A sync store may not be dropped on a thread that runs a Tokio runtime:
/// the sync `postgres::Client`, for one, blocks on a runtime of its own
/// when it closes, which panics there. [`AsyncSegments`](crate::AsyncSegments)
/// keeps its service in one of these; a host that keeps a store in types
/// of its own (the `wire` adapter, say) shares them as
/// `Arc<DropOffRuntime<_>>`, and whichever handle goes last, wherever, the
/// value is dropped safely:
///
/// - on the thread that drops it, when that thread runs no runtime (or is
///   on the blocking pool);
/// - else on Tokio's blocking pool;
/// - else, when the runtime is shutting down and refuses new blocking
///   work, on a thread of its own (which the process may outlive: a
///   store's connections then close with the process);
/// - and if no thread can be started, never: it is leaked rather than
///   dropped where it could panic.
///
/// ```
/// use std::sync::Arc;
/// use segments_engine::{DropOffRuntime, MemoryStore, Segments};
/// # #[tokio::main]
/// # async fn main() {
/// let shared = Arc::new(DropOffRuntime::new(Segments::new(MemoryStore::new())));
/// let handle = Arc::clone(&shared);
/// tokio::spawn(async move { drop(handle) }).await.unwrap();
/// drop(shared); // the last handle, on an async thread: the service goes to the blocking pool
/// # }
/// ```
pub struct DropOffRuntime<T: Send + 'static> {
    /// `None` only once [`Drop::drop`] or [`into_inner`](Self::into_inner)
    /// took it.
    value: Option<T>,
}

impl<T: Send + 'static> DropOffRuntime<T> {
    /// Holds `value` until it is dropped off the async threads.
    pub fn new(value: T) -> Self {
        Self { value: Some(value) }
    }

    /// Takes the value back; dropping it is then the caller's business.
    pub fn into_inner(mut self) -> T {
        self.value.take().expect("the value is taken only once")
    }
}

impl<T: Send + 'static> std::ops::Deref for DropOffRuntime<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value
            .as_ref()
            .expect("the value is taken only when the holder goes")
    }
}

impl<T: Send + fmt::Debug + 'static> fmt::Debug for DropOffRuntime<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DropOffRuntime").field(&self.value).finish()
    }
}

impl<T: Send + 'static> Drop for DropOffRuntime<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            drop_off_runtime(value);
        }
    }
}

/// Drops `value` where no runtime is entered: here when this thread runs
/// no runtime (or runs a call of the facade on the blocking pool), else
/// on the blocking pool, else (the runtime is shutting down and refuses
/// new blocking work) on a new thread.
fn drop_off_runtime<T: Send + 'static>(value: T) {
    if ON_POOL.get() {
        return drop(value);
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return drop(value);
    };
    let parcel = Parcel(Some(value));
    // A runtime that is shutting down drops the closure without running
    // it, on this thread: the parcel's own drop then takes over.
    drop(runtime.spawn_blocking(move || {
        let _pool = OnPool::enter();
        parcel.open();
    }));
}

/// A value to drop on the blocking pool; if the closure that carries it
/// is dropped unrun, the value goes to a thread of its own.
struct Parcel<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> Parcel<T> {
    /// Drops the value here.
    fn open(mut self) {
        drop(self.0.take());
    }
}

impl<T: Send + 'static> Drop for Parcel<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            drop_on_a_thread(value);
        }
    }
}

/// Drops `value` on a new thread. If no thread can be started, `value` is
/// leaked: never dropped here, where it might panic.
fn drop_on_a_thread<T: Send + 'static>(value: T) {
    let slot = Arc::new(Mutex::new(Some(value)));
    let theirs = Arc::clone(&slot);
    let started = std::thread::Builder::new()
        .name("segments-drop".into())
        .spawn(move || drop(take(&theirs)));
    if started.is_err() {
        // The closure was dropped unrun: the value is still in the slot.
        std::mem::forget(take(&slot));
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}
