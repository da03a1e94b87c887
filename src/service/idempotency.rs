//! Idempotency keys: a keyed write and its retries apply once, and every
//! retry gets the first call's outcome, byte for byte.
//!
//! The service fingerprints a call's input (SHA-256 of the operation, the
//! org and every input field, in a fixed encoding) and encodes its outcome
//! (as JSON, see `outcomes.rs`); the store records both with the key, in the write's own
//! transaction ([`KeyClaim`]), or, for an outcome that wrote nothing (a
//! duplicate name, an unknown segment), on its own
//! ([`SegmentStore::record_idempotency`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::Segments;
use super::outcomes::{Recordable, decode, encode, encode_error};
use super::trace::traced;
use crate::error::{Field, Rule, ValidationError};
use crate::limits::MAX_IDEMPOTENCY_KEY_BYTES;
use crate::store::{KeyClaim, KeyRecord, SegmentInsert, Stamp, Written};
use crate::{Error, OrgId, Result, Segment, SegmentId, SegmentStore, SetExpr};

/// What a key's record tells about the first call made with it
/// ([`Segments::idempotency_record`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The first call's request id, if it had one
    /// ([`Segments::for_request`]): a replayed answer carries it.
    pub request_id: Option<String>,
    /// When the first call was recorded.
    pub recorded_at: DateTime<Utc>,
    /// When the key will be forgotten.
    pub expires_at: DateTime<Utc>,
}

impl<S: SegmentStore> Segments<S> {
    /// The same service, for calls that may be retried: every write it
    /// makes (create, rename, description, delete, member calls, set
    /// operations) records `key` in the org with the call's outcome. A
    /// call retried with the same key and the same input applies nothing
    /// again and returns the first call's outcome, byte for byte, its
    /// errors included (a duplicate name, say); the same key with other
    /// input is [`Error::IdempotencyConflict`] (422). Keys are per org and
    /// are forgotten after [`with_idempotency_ttl`](Segments::with_idempotency_ttl)
    /// (24 hours by default). Cheap, like [`for_request`](Segments::for_request).
    ///
    /// Keys apply to writes: reads, [`ingest_deaths`](Segments::ingest_deaths)
    /// (which no org owns) and dry runs do not record them.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("Watchlist"))?;
    /// let retry_safe = segments.with_idempotency_key("k-123");
    /// let first = retry_safe.add_members(&org, s.id, &["p-a1b2c3d4e5f6"])?;
    /// let again = retry_safe.add_members(&org, s.id, &["p-a1b2c3d4e5f6"])?;
    /// assert_eq!(again, first, "the first outcome, not a redundant add");
    /// assert!(retry_safe.add_members(&org, s.id, &["p-x9y8z7w6v5u4"]).is_err(), "other input");
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    pub fn with_idempotency_key(&self, key: impl Into<String>) -> Segments<&S> {
        let mut view = self.view();
        view.idempotency_key = Some(key.into().into());
        view
    }

    /// Sets how long idempotency keys are remembered; 24 hours by default
    /// ([`DEFAULT_IDEMPOTENCY_TTL`](crate::limits::DEFAULT_IDEMPOTENCY_TTL)).
    pub fn with_idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.idempotency_ttl = ttl;
        self
    }

    /// The record of idempotency key `key` in `org`, if it was used and has
    /// not expired: how a host learns that an answer was a replay, and of
    /// which request.
    ///
    /// # Errors
    /// `Invalid` (field `idempotency_key`) for a key that could not be one;
    /// `Storage`.
    pub fn idempotency_record(&self, org: &OrgId, key: &str) -> Result<Option<IdempotencyRecord>> {
        traced!(
            "segments.idempotency_record",
            Some(org),
            None::<SegmentId>,
            [],
            (|| {
                check_key(key)?;
                Ok(self
                    .store
                    .idempotency_record(org, key, self.now())?
                    .map(|r| IdempotencyRecord {
                        request_id: r.request_id,
                        recorded_at: r.recorded_at,
                        expires_at: r.expires_at,
                    }))
            })()
        )
    }

    /// The input of a write named `op`, for its fingerprint: `None`, and
    /// `write` not called, when the service has no idempotency key.
    pub(super) fn input(
        &self,
        op: &str,
        write: impl FnOnce(&mut Fingerprint),
    ) -> Option<Fingerprint> {
        self.idempotency_key.as_ref()?;
        let mut input = Fingerprint::new(op);
        write(&mut input);
        Some(input)
    }

    /// Runs a write: as it is without a key; with one, once per key and
    /// input, replaying the recorded outcome after the first.
    ///
    /// `input` is the call's input ([`input`](Self::input)); `outcome`
    /// turns what the store wrote into the call's outcome; `run` makes the
    /// call with the stamp it is given (`stamp`, with the key's claim).
    pub(super) fn keyed<T: Recordable>(
        &self,
        org: &OrgId,
        stamp: Stamp<'_>,
        input: Option<Fingerprint>,
        outcome: &(dyn Fn(Written<'_>) -> Option<T> + Sync),
        run: impl FnOnce(Stamp<'_>) -> Result<T>,
    ) -> Result<T> {
        let (key, fingerprint) = match self.first_use(org, stamp, input)? {
            KeyUse::Unkeyed => return run(stamp),
            KeyUse::Replay(record, key, fingerprint) => return replay(key, &record, &fingerprint),
            KeyUse::First(key, fingerprint) => (key, fingerprint),
        };
        let encode = |written: Written<'_>| -> Vec<u8> {
            outcome(written).map_or_else(Vec::new, |t| encode(&t.to_recorded()))
        };
        let claim = KeyClaim {
            key,
            fingerprint,
            expires_at: self.expiry(stamp.at),
            outcome: &encode,
        };
        let keyed = Stamp {
            key: Some(&claim),
            ..stamp
        };
        match run(keyed) {
            Ok(out) => Ok(out),
            Err(Error::IdempotencyInProgress { .. }) => {
                self.in_progress(org, key, stamp.at, &fingerprint)
            }
            // An outcome that wrote nothing but would be the same on a
            // retry is recorded too, so a retry gets it even if the world
            // has changed since.
            Err(e @ (Error::DuplicateName { .. } | Error::NotFound { .. })) => {
                self.standing(org, key, stamp, fingerprint, encode_error(&e))
            }
            Err(e) => Err(e),
        }
    }

    /// How a write uses its key: not at all, for the first time, or again
    /// (with the record that stands).
    fn first_use<'k>(
        &'k self,
        org: &OrgId,
        stamp: Stamp<'_>,
        input: Option<Fingerprint>,
    ) -> Result<KeyUse<'k>> {
        let (Some(key), Some(input)) = (self.idempotency_key.as_deref(), input) else {
            return Ok(KeyUse::Unkeyed);
        };
        check_key(key)?;
        let fingerprint = input.finish(org);
        let record = self.store.idempotency_record(org, key, stamp.at)?;
        #[cfg(feature = "tracing")]
        super::trace::keyed(record.is_some());
        Ok(match record {
            Some(record) => KeyUse::Replay(record, key, fingerprint),
            None => KeyUse::First(key, fingerprint),
        })
    }

    /// Another call with this key got there first: its outcome.
    fn in_progress<T: Recordable>(
        &self,
        org: &OrgId,
        key: &str,
        at: DateTime<Utc>,
        fingerprint: &[u8; 32],
    ) -> Result<T> {
        #[cfg(feature = "tracing")]
        super::trace::keyed(true);
        match self.store.idempotency_record(org, key, at)? {
            Some(record) => replay(key, &record, fingerprint),
            None => Err(Error::IdempotencyInProgress {
                key: key.to_owned(),
            }),
        }
    }

    /// Records `outcome` under the key when it wrote nothing (a found
    /// segment, a refusal that a retry must see again), and answers the
    /// record that stands (another call's, if it recorded first).
    fn standing<T: Recordable>(
        &self,
        org: &OrgId,
        key: &str,
        stamp: Stamp<'_>,
        fingerprint: [u8; 32],
        outcome: Vec<u8>,
    ) -> Result<T> {
        let record = KeyRecord {
            fingerprint,
            outcome,
            request_id: stamp.request_id.map(str::to_owned),
            recorded_at: stamp.at,
            expires_at: self.expiry(stamp.at),
        };
        let standing = self.store.record_idempotency(org, key, record, stamp.at)?;
        replay(key, &standing, &fingerprint)
    }

    /// Runs a find-or-create ([`Segments::find_or_create`]): `find` looks
    /// the name up; `create` inserts the segment with the stamp it is given
    /// (with the key's claim, when keyed).
    ///
    /// A create that loses a race to another call with the same name
    /// (`DuplicateName`) looks again and returns the winner's segment. With
    /// a key, a found segment is the call's outcome as much as a created
    /// one: it is recorded under the key, so a retry gets the same segment
    /// even after a rename.
    pub(super) fn found_or_created(
        &self,
        org: &OrgId,
        stamp: Stamp<'_>,
        input: Option<Fingerprint>,
        find: impl Fn() -> Result<Option<Segment>>,
        create: impl Fn(Stamp<'_>) -> Result<Segment>,
    ) -> Result<Segment> {
        // A lost race means the winner's segment exists; it can only be
        // missing again if it was deleted in between, so a few rounds do.
        const ROUNDS: usize = 3;
        let keyed = match self.first_use(org, stamp, input)? {
            KeyUse::Unkeyed => None,
            KeyUse::Replay(record, key, fingerprint) => return replay(key, &record, &fingerprint),
            KeyUse::First(key, fingerprint) => Some((key, fingerprint)),
        };
        let mut lost = None;
        for _ in 0..ROUNDS {
            if let Some(found) = find()? {
                let Some((key, fingerprint)) = keyed else {
                    return Ok(found);
                };
                let outcome = encode(&found.to_recorded());
                return self.standing(org, key, stamp, fingerprint, outcome);
            }
            let created = match keyed {
                None => create(stamp),
                Some((key, fingerprint)) => {
                    let encode = |written: Written<'_>| -> Vec<u8> {
                        match written {
                            Written::Segment(s) => encode(&s.to_recorded()),
                            _ => Vec::new(),
                        }
                    };
                    let claim = KeyClaim {
                        key,
                        fingerprint,
                        expires_at: self.expiry(stamp.at),
                        outcome: &encode,
                    };
                    match create(Stamp {
                        key: Some(&claim),
                        ..stamp
                    }) {
                        Err(Error::IdempotencyInProgress { .. }) => {
                            return self.in_progress(org, key, stamp.at, &fingerprint);
                        }
                        other => other,
                    }
                }
            };
            match created {
                Err(e @ Error::DuplicateName { .. }) => lost = Some(e),
                other => return other,
            }
        }
        Err(lost.expect("every round that does not return lost a race"))
    }

    fn expiry(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        chrono::TimeDelta::from_std(self.idempotency_ttl)
            .ok()
            .and_then(|ttl| at.checked_add_signed(ttl))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// How a write uses its idempotency key ([`Segments::first_use`]).
enum KeyUse<'k> {
    /// The service has no key (or the call records none).
    Unkeyed,
    /// The key's first use: the key and the input's fingerprint.
    First(&'k str, [u8; 32]),
    /// The key was used before: its record, the key and the fingerprint.
    Replay(KeyRecord, &'k str, [u8; 32]),
}

/// Checks an idempotency key: 1 to
/// [`MAX_IDEMPOTENCY_KEY_BYTES`] bytes, no control characters.
fn check_key(key: &str) -> Result<(), ValidationError> {
    let rule = if key.is_empty() {
        Some(Rule::Blank)
    } else if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        Some(Rule::TooLong {
            max: MAX_IDEMPOTENCY_KEY_BYTES,
            unit: "bytes",
        })
    } else if key.chars().any(char::is_control) {
        Some(Rule::ControlCharacter)
    } else {
        None
    };
    match rule {
        Some(rule) => Err(ValidationError::new(Field::IdempotencyKey, rule)),
        None => Ok(()),
    }
}

/// The recorded outcome of `key`, if `fingerprint` is the one it was
/// recorded with.
fn replay<T: Recordable>(key: &str, record: &KeyRecord, fingerprint: &[u8; 32]) -> Result<T> {
    if record.fingerprint != *fingerprint {
        return Err(Error::IdempotencyConflict {
            key: key.to_owned(),
        });
    }
    match decode(&record.outcome)? {
        Ok(recorded) => T::from_recorded(recorded).ok_or_else(|| Error::IdempotencyConflict {
            key: key.to_owned(),
        }),
        Err(error) => Err(error),
    }
}

/// A call's input, in the fingerprint's encoding: every field
/// length-prefixed, so that no two inputs encode alike.
pub(super) struct Fingerprint(Sha256);

impl Fingerprint {
    /// The input of operation `op`.
    pub(super) fn new(op: &str) -> Self {
        let mut f = Self(Sha256::new());
        f.text(op);
        f
    }

    pub(super) fn text(&mut self, s: &str) -> &mut Self {
        self.0.update((s.len() as u64).to_be_bytes());
        self.0.update(s.as_bytes());
        self
    }

    pub(super) fn maybe(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            None => self.0.update([0]),
            Some(s) => {
                self.0.update([1]);
                self.text(s);
            }
        }
        self
    }

    pub(super) fn id(&mut self, id: SegmentId) -> &mut Self {
        self.0.update(id.as_bytes());
        self
    }

    pub(super) fn texts<P: AsRef<str>>(&mut self, items: &[P]) -> &mut Self {
        self.0.update((items.len() as u64).to_be_bytes());
        for item in items {
            self.text(item.as_ref());
        }
        self
    }

    /// A new segment's name, description and source (not its id, which
    /// every call draws afresh).
    pub(super) fn insert(&mut self, insert: &SegmentInsert) -> &mut Self {
        self.text(insert.name.as_str())
            .maybe(insert.description.as_deref())
            .text(&insert.source)
    }

    pub(super) fn expr(&mut self, expr: &SetExpr) -> &mut Self {
        match expr {
            SetExpr::Segment(id) => {
                self.0.update([0]);
                self.id(*id);
            }
            SetExpr::Union(a, b) | SetExpr::Intersect(a, b) | SetExpr::Minus(a, b) => {
                let tag = match expr {
                    SetExpr::Union(..) => 1,
                    SetExpr::Intersect(..) => 2,
                    _ => 3,
                };
                self.0.update([tag]);
                self.expr(a);
                self.expr(b);
            }
        }
        self
    }

    fn finish(mut self, org: &OrgId) -> [u8; 32] {
        self.text(org.as_str());
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_inputs_apart() {
        let org = OrgId::new("acme").unwrap();
        let other = OrgId::new("other").unwrap();
        let fp = |op: &str, pids: &[&str], org: &OrgId| {
            let mut f = Fingerprint::new(op);
            f.texts(pids);
            f.finish(org)
        };
        let a = fp("add", &["p-a", "p-b"], &org);
        assert_ne!(a, fp("add", &["p-ab"], &org), "lengths separate fields");
        assert_ne!(a, fp("add", &["p-b", "p-a"], &org), "order counts");
        assert_ne!(
            a,
            fp("remove", &["p-a", "p-b"], &org),
            "the operation counts"
        );
        assert_ne!(a, fp("add", &["p-a", "p-b"], &other), "the org counts");
        assert_eq!(a, fp("add", &["p-a", "p-b"], &org), "the same input");
        let mut m = Fingerprint::new("describe");
        m.maybe(None);
        let mut e = Fingerprint::new("describe");
        e.maybe(Some(""));
        assert_ne!(
            m.finish(&org),
            e.finish(&org),
            "no description is not an empty one"
        );
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("k-123").is_ok());
        assert!(check_key(&"k".repeat(MAX_IDEMPOTENCY_KEY_BYTES)).is_ok());
        for bad in [
            "",
            "a\nb",
            "\u{7f}",
            &"k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1),
        ] {
            assert_eq!(
                check_key(bad).unwrap_err().field(),
                Field::IdempotencyKey,
                "{bad:?}"
            );
        }
    }
}
