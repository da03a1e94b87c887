//! Dropping the service where a drop cannot panic for being on an async
//! thread.
//!
//! A store may not be dropped on a thread that runs a Tokio runtime:
//! the sync `postgres::Client`, for one, blocks on a runtime of its own
//! when it closes, which panics there. [`Shared`] is what every
//! [`AsyncSegments`](super::AsyncSegments) handle of one service points
//! at; when the last handle goes, its drop moves the service to Tokio's
//! blocking pool, or to a thread of its own when the runtime is shutting
//! down, so it is dropped off the async threads whatever the store.

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{SegmentStore, Segments};

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

/// The service every handle of one [`AsyncSegments`](super::AsyncSegments)
/// shares; dropped off the async threads (see the module docs).
#[derive(Debug)]
pub(super) struct Shared<S: SegmentStore + 'static> {
    /// `None` only while [`Drop::drop`] hands it away.
    segments: Option<Segments<S>>,
}

impl<S: SegmentStore + 'static> Shared<S> {
    pub(super) fn new(segments: Segments<S>) -> Self {
        Self {
            segments: Some(segments),
        }
    }

    /// The service.
    pub(super) fn segments(&self) -> &Segments<S> {
        self.segments
            .as_ref()
            .expect("the service is taken only when the last handle is dropped")
    }
}

impl<S: SegmentStore + 'static> Drop for Shared<S> {
    fn drop(&mut self) {
        if let Some(segments) = self.segments.take() {
            drop_off_runtime(segments);
        }
    }
}

/// Drops `value` where no runtime is entered: here when this thread runs
/// no runtime (or runs a call of the facade on the blocking pool), else
/// on the blocking pool, else (the runtime is shutting down and refuses
/// new blocking work) on a new thread.
pub(super) fn drop_off_runtime<T: Send + 'static>(value: T) {
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
