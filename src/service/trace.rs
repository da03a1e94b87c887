//! Spans and events of the service's calls (feature `tracing`).
//!
//! Every public call of [`Segments`](super::Segments) runs in an `INFO`
//! span named after it (`segments.add_members`, …), with `org`, the
//! segment id when there is one, the input's size (`n_pids`), and once it
//! returns its `outcome` (`ok`, or the error's code: `not_found`,
//! `invalid`, `storage`, …) and its counts (`n_added`, `n_redundant_additions`,
//! `n_deleted`, `n_invalid`, `size`, `n_items`); `keyed` and `replayed` for
//! writes with an idempotency key. A storage failure is also an `ERROR`
//! event with the error's chain (the first line of each cause: a database
//! may quote row values on later lines); every failed call is a `DEBUG`
//! event with the whole chain.
//!
//! No PID, segment name or description is ever written above `DEBUG`:
//! PIDs identify people. Without the feature, or with no subscriber at
//! `INFO`, none of this costs more than a check of two statics (the
//! spans do not go to tracing's `log` compatibility layer: a host that
//! wants them installs a `tracing` subscriber).

/// Runs `$body`, a `Result`, in the call's span (feature `tracing`), and
/// records its outcome there. Without the feature, `$body` as it is.
macro_rules! traced {
    ($name:literal, $org:expr, $segment:expr, [$($field:ident = $value:expr),* $(,)?], $body:expr) => {{
        // With no subscriber at INFO, no span at all: tracing's own macro
        // would still evaluate every field for its `log` feature.
        #[cfg(feature = "tracing")]
        let span = if !tracing::level_enabled!(tracing::Level::INFO) {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                $name,
                org = $org.map(tracing::field::display),
                segment = $segment.map(tracing::field::display),
                $($field = $value,)*
                outcome = tracing::field::Empty,
                n_added = tracing::field::Empty,
                n_redundant_additions = tracing::field::Empty,
                n_deleted = tracing::field::Empty,
                n_invalid = tracing::field::Empty,
                size = tracing::field::Empty,
                n_items = tracing::field::Empty,
                keyed = tracing::field::Empty,
                replayed = tracing::field::Empty,
            )
        };
        #[cfg(feature = "tracing")]
        let _entered = span.enter();
        let out = $body;
        #[cfg(feature = "tracing")]
        $crate::service::trace::finish(&span, &out);
        out
    }};
}

pub(crate) use traced;

#[cfg(feature = "tracing")]
pub(crate) use with_feature::*;

#[cfg(feature = "tracing")]
mod with_feature {
    use tracing::Span;

    use crate::{
        AddOutcome, ChangePage, DeathRecord, DeathSignals, DeathsIngested, Error,
        IdempotencyRecord, ImportOutcome, MemberList, MembersAsOf, MembersPage, RemoveOutcome,
        Result, Segment, SegmentPage,
    };

    /// Records a call's outcome in its span, and its error as events.
    ///
    /// A span no subscriber wants records nothing: recording looks each
    /// field up by name, a few hundred instructions a call.
    pub(crate) fn finish<T: Traced>(span: &Span, out: &Result<T>) {
        if !span.is_disabled() {
            match out {
                Ok(t) => {
                    span.record("outcome", "ok");
                    t.record(span);
                }
                Err(e) => {
                    span.record("outcome", code(e));
                }
            }
        }
        if let Err(e) = out {
            if matches!(e, Error::Storage { .. } | Error::SchemaTooNew { .. }) {
                tracing::error!(error = %first_lines(e), "segments call failed");
            }
            tracing::debug!(error = %crate::error::chain(e), "segments call failed");
        }
    }

    /// Marks the current call as keyed, and whether it was a replay.
    pub(crate) fn keyed(replayed: bool) {
        let span = Span::current();
        if span.is_disabled() {
            return;
        }
        span.record("keyed", true);
        span.record("replayed", replayed);
    }

    /// The error's code: its kind, without its text (a duplicate name's
    /// message holds the name).
    pub(crate) fn code(e: &Error) -> &'static str {
        match e {
            Error::Invalid(_) => "invalid",
            Error::DuplicateName { .. } => "duplicate_name",
            Error::NotFound { .. } => "not_found",
            Error::Unauthorized => "unauthorized",
            Error::RateLimited { .. } => "rate_limited",
            Error::TooLarge { .. } => "too_large",
            Error::IdempotencyConflict { .. } => "idempotency_conflict",
            Error::IdempotencyInProgress { .. } => "idempotency_in_progress",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::Storage { .. } => "storage",
        }
    }

    /// The error and its causes, the first line of each: a database's
    /// detail lines (PostgreSQL's `DETAIL: Key (…)=(…)`) may quote values.
    pub(crate) fn first_lines(e: &Error) -> String {
        let line = |s: String| s.lines().next().unwrap_or_default().to_owned();
        let mut out = line(e.to_string());
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&line(cause.to_string()));
            source = cause.source();
        }
        out
    }

    /// What a call's result records in its span.
    pub(crate) trait Traced {
        fn record(&self, span: &Span);
    }

    impl Traced for () {
        fn record(&self, _: &Span) {}
    }

    impl Traced for u64 {
        fn record(&self, span: &Span) {
            span.record("size", self);
        }
    }

    impl Traced for Segment {
        fn record(&self, span: &Span) {
            span.record("segment", tracing::field::display(self.id));
            span.record("size", self.current_size);
        }
    }

    impl Traced for Option<Segment> {
        fn record(&self, span: &Span) {
            span.record("n_items", u64::from(self.is_some()));
            if let Some(s) = self {
                s.record(span);
            }
        }
    }

    impl Traced for Option<IdempotencyRecord> {
        fn record(&self, span: &Span) {
            span.record("n_items", u64::from(self.is_some()));
        }
    }

    impl Traced for AddOutcome {
        fn record(&self, span: &Span) {
            span.record("n_added", self.n_added);
            span.record("n_redundant_additions", self.n_redundant_additions);
            span.record("n_invalid", self.invalid_pids.len());
            span.record("size", self.new_current_size);
        }
    }

    impl Traced for ImportOutcome {
        fn record(&self, span: &Span) {
            span.record("n_added", self.n_added);
            span.record("n_redundant_additions", self.n_redundant_additions);
            span.record("n_invalid", self.n_invalid);
            span.record("size", self.new_current_size);
            span.record("n_items", self.n_batches);
        }
    }

    impl Traced for RemoveOutcome {
        fn record(&self, span: &Span) {
            span.record("n_deleted", self.n_deleted);
            span.record("n_invalid", self.invalid_pids.len());
            span.record("size", self.new_current_size);
        }
    }

    impl Traced for SegmentPage {
        fn record(&self, span: &Span) {
            span.record("n_items", self.segments.len());
        }
    }

    impl Traced for MembersPage {
        fn record(&self, span: &Span) {
            span.record("n_items", self.items.len());
            span.record("size", self.total_count);
        }
    }

    impl Traced for MemberList {
        fn record(&self, span: &Span) {
            span.record("n_items", self.members.len());
        }
    }

    impl Traced for MembersAsOf {
        fn record(&self, span: &Span) {
            span.record("n_items", self.members.len());
        }
    }

    impl Traced for ChangePage {
        fn record(&self, span: &Span) {
            span.record("n_items", self.changes.len());
        }
    }

    impl Traced for Vec<DeathRecord> {
        fn record(&self, span: &Span) {
            span.record("n_items", self.len());
        }
    }

    impl Traced for DeathSignals {
        fn record(&self, span: &Span) {
            span.record("n_items", self.records.len());
        }
    }

    impl Traced for DeathsIngested {
        fn record(&self, span: &Span) {
            span.record("n_added", self.n_inserted);
            span.record("n_items", self.n_inserted + self.n_updated);
            span.record("n_invalid", self.rejected.len());
        }
    }
}
