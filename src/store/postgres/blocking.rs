//! Blocking work, wherever the caller is: the `postgres` client runs a
//! small tokio runtime of its own for every statement and every close, and
//! tokio refuses to start a runtime on a thread that drives one ("Cannot
//! start a runtime from within a runtime"). So every call, `connect` and
//! the last drop of a store's pool run through [`run`], which moves them
//! off such a thread when there is one.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, which blocks on the `postgres` client, so that it never runs
/// on a thread that drives a tokio runtime:
///
/// - outside any runtime, `f` runs here;
/// - in a multi-threaded runtime, through [`tokio::task::block_in_place`]:
///   on one of its worker threads, the worker hands its other tasks to
///   another thread while `f` runs here; on its blocking pool (a call from
///   `spawn_blocking`), `f` just runs here;
/// - in any other runtime (a current-thread runtime, as `#[tokio::test]`
///   starts), on a thread of its own, which this thread waits for. tokio
///   does not say whether this thread is the one that drives the runtime
///   or one of its blocking pool, so the thread is taken in both cases.
///
/// The call works in every case. On a runtime's own thread it blocks that
/// thread for its time, as any blocking call would: an async host should
/// run it on the blocking pool (`AsyncSegments`, feature `tokio`, does).
pub(super) fn run<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let Ok(handle) = Handle::try_current() else {
        return f();
    };
    match handle.runtime_flavor() {
        RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => std::thread::scope(|scope| {
            scope
                .spawn(f)
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
    }
}

/// Drops `value` (a pool of `postgres` clients) off any runtime's thread:
/// on a thread of its own when this thread is in a tokio runtime's
/// context, waiting for it (closing idle connections takes a moment).
pub(super) fn drop_off_runtime<T: Send + 'static>(value: T) {
    if Handle::try_current().is_err() {
        drop(value);
        return;
    }
    // Kept out of the closure until the thread runs: a closure that fails
    // to start a thread is dropped here, with what it holds.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(value)));
    let theirs = std::sync::Arc::clone(&slot);
    let dropped = std::thread::Builder::new()
        .name("segments-pg-drop".to_owned())
        .spawn(move || drop(theirs.lock().map(|mut v| v.take())));
    match dropped {
        // A panic in a drop was already reported on that thread; a drop
        // must not panic again here.
        Ok(thread) => {
            let _ = thread.join();
        }
        // No thread to spare: the connections are leaked rather than
        // closed on this thread (which would panic); the server closes
        // them when the process ends.
        Err(_) => {
            if let Ok(mut value) = slot.lock() {
                std::mem::forget(value.take());
            }
        }
    }
}
