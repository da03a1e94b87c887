//! Injectable time and id sources, so tests can be deterministic.
//!
//! [`Segments`](crate::Segments) reads the time from a [`Clock`] and new ids
//! from an [`IdGenerator`]. The defaults are the system clock and UUID v7;
//! tests plug a [`ManualClock`] and [`SequentialIds`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use uuid::{ContextV7, Timestamp, Uuid};

use crate::SegmentId;

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time. The service truncates it to microseconds.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that shows a set time until it is moved. Clones share the time.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use segments_engine::clock::{Clock, ManualClock};
/// let clock = ManualClock::new(Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 45).unwrap());
/// clock.advance(TimeDelta::seconds(1));
/// assert_eq!(clock.now(), Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 46).unwrap());
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Moves the time by `by` (which may be negative).
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A source of new segment ids.
pub trait IdGenerator: Send + Sync + fmt::Debug {
    /// A fresh id, never returned before by this generator, for a segment
    /// created at `at` (the service's clock time).
    fn next_id(&self, at: DateTime<Utc>) -> SegmentId;
}

/// UUID v7 ids holding the creation time (the service's clock), to the
/// millisecond.
///
/// The ids of one sequence never go backwards: an id asked for a time
/// earlier than one the sequence already used holds that later time
/// instead, and ids within one millisecond count up. So a sequence's ids
/// sort in the order they were made. [`UuidV7::shared`] (the default, and
/// what [`SegmentId::now_v7`] uses) is one sequence for the whole process;
/// [`UuidV7::independent`] starts a sequence of its own.
#[derive(Clone, Debug)]
pub struct UuidV7 {
    sequence: Arc<Mutex<ContextV7>>,
}

static SHARED_SEQUENCE: LazyLock<Arc<Mutex<ContextV7>>> =
    LazyLock::new(|| Arc::new(Mutex::new(ContextV7::new())));

impl UuidV7 {
    /// The process-wide sequence.
    pub fn shared() -> Self {
        Self {
            sequence: Arc::clone(&SHARED_SEQUENCE),
        }
    }

    /// A sequence of its own, ordered only with itself.
    pub fn independent() -> Self {
        Self {
            sequence: Arc::new(Mutex::new(ContextV7::new())),
        }
    }
}

impl Default for UuidV7 {
    /// [`UuidV7::shared`].
    fn default() -> Self {
        Self::shared()
    }
}

impl IdGenerator for UuidV7 {
    fn next_id(&self, at: DateTime<Utc>) -> SegmentId {
        // Times before 1970 cannot be a v7 timestamp: they become the epoch.
        let seconds = u64::try_from(at.timestamp()).unwrap_or(0);
        let ts = Timestamp::from_unix(&*self.sequence, seconds, at.timestamp_subsec_nanos());
        SegmentId::from_uuid(Uuid::new_v7(ts))
    }
}

/// Deterministic, well-formed UUID v7 ids: a fixed timestamp and a counter.
/// Clones share the counter.
///
/// The counter fills the low 60 bits of the id, so the ids of one generator
/// sort in the order they were made (until the counter wraps, after 2^60
/// ids).
///
/// ```
/// use segments_engine::clock::{IdGenerator, SequentialIds};
/// let ids = SequentialIds::new();
/// let at = chrono::Utc::now();
/// assert_eq!(ids.next_id(at).to_string(), "00000000-0000-7000-8000-000000000001");
/// assert_eq!(ids.next_id(at).to_string(), "00000000-0000-7000-8000-000000000002");
/// ```
#[derive(Clone, Debug, Default)]
pub struct SequentialIds(Arc<AtomicU64>);

impl SequentialIds {
    /// A generator whose first id ends in `1`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A generator whose first id ends in `n + 1`, then `n + 2`, and so on.
    ///
    /// Segment ids are unique across every org of a store, so tests that
    /// share one database (and run more than once against it) each start
    /// their generator at a point of their own, a random one say, rather
    /// than all at 1. Keep `n` well below 2^60 so that the ids a test makes
    /// do not wrap around and still sort in the order they were made.
    ///
    /// ```
    /// use segments_engine::clock::{IdGenerator, SequentialIds};
    /// let ids = SequentialIds::starting_after(0x41);
    /// let at = chrono::Utc::now();
    /// assert_eq!(ids.next_id(at).to_string(), "00000000-0000-7000-8000-000000000042");
    /// assert_eq!(ids.next_id(at).to_string(), "00000000-0000-7000-8000-000000000043");
    /// assert_eq!(
    ///     SequentialIds::starting_after(0).next_id(at),
    ///     SequentialIds::new().next_id(at),
    /// );
    /// ```
    pub fn starting_after(n: u64) -> Self {
        Self(Arc::new(AtomicU64::new(n)))
    }
}

impl IdGenerator for SequentialIds {
    fn next_id(&self, _at: DateTime<Utc>) -> SegmentId {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        // Version 7 nibble and RFC 4122 variant bits, counter in the low 64 bits.
        let bits = (0x7u128 << 76) | (0x8u128 << 60) | u128::from(n & 0x0fff_ffff_ffff_ffff);
        SegmentId::from_uuid(Uuid::from_u128(bits))
    }
}

/// `at` with its sub-microsecond part dropped, and a leap second folded
/// into the second after it: exactly what a store keeps (SQLite keeps
/// microseconds since the epoch), so that ordering times and ordering their
/// microseconds always agree.
pub(crate) fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = at.nanosecond();
    if nanos < 1_000_000_000 {
        // Within the second: drop the digits below the microsecond in
        // place, on the naive UTC time (no date arithmetic; a
        // `DateTime`'s own `with_nanosecond` goes through its offset).
        // Below 10^9 nanoseconds it cannot fail.
        return at
            .naive_utc()
            .with_nanosecond(nanos - nanos % 1_000)
            .map_or(at, |t| t.and_utc());
    }
    // A leap second's time: normalized through the microsecond count.
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn truncation_keeps_microseconds() {
        let at = Utc.timestamp_opt(1_705_314_645, 123_456_789).unwrap();
        let t = truncate_to_micros(at);
        assert_eq!(t.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(truncate_to_micros(t), t);
        let before_epoch = Utc.timestamp_opt(-5, 999_999_999).unwrap();
        assert_eq!(
            truncate_to_micros(before_epoch).timestamp_subsec_nanos(),
            999_999_000
        );
        assert_eq!(truncate_to_micros(before_epoch).timestamp(), -5);
        // A leap second (nanoseconds past 999,999,999) is folded into the
        // next second, as its microseconds since the epoch say.
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_234_567_891)
            .unwrap()
            .and_utc();
        let t = truncate_to_micros(leap);
        assert_eq!(t, Utc.timestamp_opt(1_483_228_800, 234_567_000).unwrap());
        assert_eq!(t.timestamp_micros(), leap.timestamp_micros());
        assert!(t > leap, "the fold moves it past the leap second");
    }

    #[test]
    fn v7_ids_carry_the_creation_time_and_are_ordered() {
        let ids = UuidV7::independent();
        let at = Utc.timestamp_opt(1_705_314_645, 123_456_789).unwrap();
        let a = ids.next_id(at);
        let b = ids.next_id(at);
        assert_eq!(a.as_uuid().get_version_num(), 7);
        let millis = |id: SegmentId| {
            let (secs, nanos) = id.as_uuid().get_timestamp().unwrap().to_unix();
            (secs, nanos / 1_000_000)
        };
        assert_eq!(
            millis(a),
            (1_705_314_645, 123),
            "the id holds the time to the ms"
        );
        assert!(a < b, "ids of one millisecond are ordered by creation");
        let later = ids.next_id(at + TimeDelta::milliseconds(1));
        assert!(later > b);
        let earlier = ids.next_id(at - TimeDelta::seconds(5));
        assert!(earlier > later, "a sequence never goes backwards");
        assert_eq!(
            millis(earlier),
            (1_705_314_645, 124),
            "it holds the latest time used"
        );
        let fresh = UuidV7::independent().next_id(at - TimeDelta::seconds(5));
        assert_eq!(
            millis(fresh),
            (1_705_314_640, 123),
            "another sequence is not held back"
        );
    }

    #[test]
    fn sequential_ids_are_v7() {
        let ids = SequentialIds::new();
        let at = Utc::now();
        let a = ids.next_id(at);
        let b = ids.clone().next_id(at);
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert_eq!(a.as_uuid().get_variant(), uuid::Variant::RFC4122);
        assert!(a < b, "clones share the counter");
    }

    #[test]
    fn sequential_ids_can_start_anywhere() {
        let at = Utc::now();
        let start = (1u64 << 59) + 7;
        let ids = SequentialIds::starting_after(start);
        let a = ids.next_id(at);
        let b = ids.next_id(at);
        assert_eq!(
            a.as_uuid().as_u128() & u128::from(u64::MAX >> 4),
            u128::from(start + 1),
            "the first id holds the start plus one"
        );
        assert_eq!(a.as_uuid().get_version_num(), 7, "still UUID v7");
        assert_eq!(
            a.as_uuid().get_variant(),
            uuid::Variant::RFC4122,
            "still the RFC 4122 variant"
        );
        assert!(a < b, "ids from a start count up");
    }
}
