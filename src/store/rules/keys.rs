//! The idempotency-key record a keyed write leaves.

use crate::store::{KeyClaim, KeyRecord, Stamp, WriteOutcome};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::{Error, Result};

/// The record of a write stamped `stamp` that claimed `claim`, once it
/// has applied and returned `out`: the claim's fingerprint and expiry,
/// the outcome as the claim encodes it, the call's request id and time.
pub(crate) fn record(claim: &KeyClaim<'_>, stamp: Stamp<'_>, out: &impl WriteOutcome) -> KeyRecord {
    KeyRecord {
        fingerprint: claim.fingerprint,
        outcome: (claim.outcome)(out.written()),
        request_id: stamp.request_id.map(str::to_owned),
        recorded_at: stamp.at,
        expires_at: claim.expires_at,
    }
}

/// Runs write `f` on `conn`; when `stamp` claims an idempotency key,
/// records it with the write's outcome through `put` (which records unless
/// a live record of the key stands, and says whether it did).
///
/// # Errors
/// What `f` fails with; `IdempotencyInProgress` when a live record stands
/// (the caller's transaction then rolls the write back), or what `put`
/// fails with.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn claimed<C, T: WriteOutcome>(
    conn: &mut C,
    stamp: Stamp<'_>,
    f: impl FnOnce(&mut C) -> Result<T>,
    put: impl FnOnce(&mut C, &str, &KeyRecord) -> Result<bool>,
) -> Result<T> {
    let out = f(conn)?;
    let Some(claim) = stamp.key else {
        return Ok(out);
    };
    if put(conn, claim.key, &record(claim, stamp, &out))? {
        Ok(out)
    } else {
        Err(Error::IdempotencyInProgress {
            key: claim.key.to_owned(),
        })
    }
}

/// Records `record` through `put` unless a live record stands; the record
/// that stands, read through `get` (`conn` is what both work on).
///
/// # Errors
/// What `put` or `get` fail with; a storage error when the record `put`
/// saw standing is gone.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn record_or_standing<C>(
    conn: &mut C,
    record: KeyRecord,
    put: impl FnOnce(&mut C, &KeyRecord) -> Result<bool>,
    get: impl FnOnce(&mut C) -> Result<Option<KeyRecord>>,
) -> Result<KeyRecord> {
    if put(conn, &record)? {
        return Ok(record);
    }
    get(conn)?
        .ok_or_else(|| Error::storage("an idempotency key's record vanished inside a transaction"))
}

/// The check every store's tests run on its own key table: keyed writes
/// forget expired keys at most
/// [`EXPIRED_KEYS_PER_WRITE`](crate::limits::EXPIRED_KEYS_PER_WRITE) at a time, and
/// a later keyed write forgets the rest. `held` counts the keys the store
/// holds for `acme`, however it keeps them.
#[cfg(test)]
pub(crate) fn check_keyed_writes_forget_a_bounded_number_of_expired_keys<S>(
    store: S,
    held: impl Fn() -> usize,
) where
    S: crate::SegmentStore,
{
    use std::time::Duration;

    use chrono::TimeDelta;

    use crate::clock::ManualClock;
    use crate::limits::EXPIRED_KEYS_PER_WRITE;
    use crate::{NewSegment, OrgId, Segments};

    let clock = ManualClock::new(chrono::Utc::now());
    let segments = Segments::new(store)
        .with_clock(clock.clone())
        .with_idempotency_ttl(Duration::from_secs(60));
    let org = OrgId::new("acme").unwrap();
    let s = segments.create(&org, NewSegment::new("s")).unwrap();
    let used = EXPIRED_KEYS_PER_WRITE + 10;
    for i in 0..used {
        segments
            .with_idempotency_key(format!("k-{i}"))
            .add_members(&org, s.id, &["p-a"])
            .unwrap();
    }
    assert_eq!(held(), used);
    clock.advance(TimeDelta::minutes(2));
    segments
        .with_idempotency_key("k-new")
        .add_members(&org, s.id, &["p-a"])
        .unwrap();
    assert_eq!(
        held(),
        used - EXPIRED_KEYS_PER_WRITE + 1,
        "64 forgotten, one new"
    );
    segments
        .with_idempotency_key("k-newer")
        .add_members(&org, s.id, &["p-a"])
        .unwrap();
    assert_eq!(held(), 2, "the rest forgotten by the next keyed write");
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::store::{StoreAddOutcome, Written};

    /// The record holds the claim's fingerprint and expiry, the call's
    /// request id and time, and the outcome as the claim encodes it.
    #[test]
    fn a_record_holds_the_claim_the_call_and_the_outcome() {
        let encode = |written: Written<'_>| match written {
            Written::Added(added) => vec![added.n_added as u8],
            _ => Vec::new(),
        };
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let expires_at = at + chrono::Duration::hours(24);
        let claim = KeyClaim {
            key: "k-1",
            fingerprint: [7; 32],
            expires_at,
            outcome: &encode,
        };
        let stamp = Stamp {
            at,
            request_id: Some("req-1"),
            dry_run: false,
            key: Some(&claim),
        };
        let out = StoreAddOutcome {
            n_added: 3,
            n_redundant_additions: 1,
            new_current_size: 9,
        };
        let record = record(&claim, stamp, &out);
        assert_eq!(record.fingerprint, [7; 32], "the claim's fingerprint");
        assert_eq!(record.outcome, vec![3], "the outcome, encoded by the claim");
        assert_eq!(
            record.request_id.as_deref(),
            Some("req-1"),
            "the request id"
        );
        assert_eq!(
            (record.recorded_at, record.expires_at),
            (at, expires_at),
            "recorded at the call's time, expiring with the claim"
        );
    }

    /// A write without a key records nothing; one whose key has a live
    /// record is in progress; a record seen standing is the answer, and
    /// one that vanished is damage.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn a_claim_records_once_and_a_standing_record_answers() {
        let encode = |_: Written<'_>| vec![1];
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let claim = KeyClaim {
            key: "k-1",
            fingerprint: [7; 32],
            expires_at: at,
            outcome: &encode,
        };
        let out = StoreAddOutcome::default();
        let unkeyed = Stamp {
            at,
            request_id: None,
            dry_run: false,
            key: None,
        };
        let write = |writes: &mut Vec<&str>| {
            writes.push("the write");
            Ok(out)
        };
        let mut writes = Vec::new();
        let got = claimed(&mut writes, unkeyed, write, |_, _, _| {
            panic!("no key, nothing to put")
        })
        .unwrap();
        assert_eq!((got, writes), (out, vec!["the write"]), "the write alone");
        let keyed = Stamp {
            key: Some(&claim),
            ..unkeyed
        };
        let mut writes = Vec::new();
        claimed(&mut writes, keyed, write, |writes, key, _| {
            writes.push("the key");
            Ok(key == "k-1")
        })
        .expect("recorded");
        assert_eq!(writes, ["the write", "the key"], "the key after the write");
        let err = claimed(&mut Vec::new(), keyed, write, |_, _, _| Ok(false)).unwrap_err();
        assert!(
            matches!(err, Error::IdempotencyInProgress { ref key } if key == "k-1"),
            "a live record means in progress: {err:?}"
        );
        let failed = claimed(
            &mut Vec::<&str>::new(),
            keyed,
            |_| Err::<StoreAddOutcome, _>(Error::storage("the write fails")),
            |_, _, _| panic!("a failed write claims nothing"),
        );
        assert!(failed.is_err(), "the write's failure is the call's");
        let mine = record(&claim, keyed, &out);
        let standing = KeyRecord {
            fingerprint: [9; 32],
            ..mine.clone()
        };
        let got = record_or_standing(&mut (), mine.clone(), |_, _| Ok(true), |_| Ok(None)).unwrap();
        assert_eq!(got, mine, "put: the new record stands");
        let got = record_or_standing(
            &mut (),
            mine.clone(),
            |_, _| Ok(false),
            |_| Ok(Some(standing.clone())),
        )
        .unwrap();
        assert_eq!(got, standing, "not put: the standing record answers");
        assert!(
            record_or_standing(&mut (), mine, |_, _| Ok(false), |_| Ok(None)).is_err(),
            "a standing record that vanished is damage"
        );
    }
}
