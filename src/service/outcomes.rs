//! The outcomes a key's record holds, and their encoding.
//!
//! # Format
//!
//! A record's outcome is a JSON object with one member, named after the
//! outcome's kind, whose value holds the outcome's fields under the names
//! the public API gives them:
//!
//! ```text
//! {"segment":{"id":"0190…","name":"Q1","description":null,"source":"api",
//!             "current_size":3,"created_at_us":1705314645123456,"updated_at_us":…}}
//! {"added":{"n_added":2,"n_redundant_additions":1,"invalid_pids":["p-bad!"],"new_current_size":9}}
//! {"removed":{"n_deleted":1,"invalid_pids":[],"new_current_size":8}}
//! {"deleted":{}}
//! {"duplicate_name":{"name":"Q1"}}
//! {"not_found":{"id":"0190…"}}
//! ```
//!
//! Times are whole microseconds since the Unix epoch (what every backend
//! stores), so a replay returns exactly the first call's times.
//!
//! Why JSON: a record must stay readable for as long as its key lives, by
//! whichever version of the crate reads it, and by an operator looking at
//! the key table. JSON is a format everyone can read and that `serde_json`
//! (already a dependency of the crate) keeps correct; new fields can be
//! added without a version byte, since the reader ignores members it does
//! not know. The values are built with [`serde_json::json!`] and read from a
//! [`serde_json::Value`] rather than with serde's derive, so that the
//! default build does not compile `serde_derive` (and `syn`) for six small records.
//!
//! Records written by earlier versions of the crate use a hand-written binary encoding whose
//! first byte is 1 (a JSON record starts with `{`); [`decode`] still reads
//! them ([`v1`]), so a key recorded by an older version replays after an
//! upgrade instead of being taken as absent or damaged.

mod v1;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::{AddOutcome, Error, RemoveOutcome, Result, Segment, SegmentId};

/// An outcome a key's record can hold.
pub(super) trait Recordable: Sized {
    fn to_recorded(&self) -> Recorded;
    fn from_recorded(recorded: Recorded) -> Option<Self>;
}

/// The outcomes a record holds.
#[derive(Debug)]
pub(super) enum Recorded {
    Segment(Segment),
    Added(AddOutcome),
    Removed(RemoveOutcome),
    Deleted,
}

impl Recordable for Segment {
    fn to_recorded(&self) -> Recorded {
        Recorded::Segment(self.clone())
    }
    fn from_recorded(recorded: Recorded) -> Option<Self> {
        match recorded {
            Recorded::Segment(s) => Some(s),
            _ => None,
        }
    }
}

impl Recordable for AddOutcome {
    fn to_recorded(&self) -> Recorded {
        Recorded::Added(self.clone())
    }
    fn from_recorded(recorded: Recorded) -> Option<Self> {
        match recorded {
            Recorded::Added(out) => Some(out),
            _ => None,
        }
    }
}

impl Recordable for RemoveOutcome {
    fn to_recorded(&self) -> Recorded {
        Recorded::Removed(self.clone())
    }
    fn from_recorded(recorded: Recorded) -> Option<Self> {
        match recorded {
            Recorded::Removed(out) => Some(out),
            _ => None,
        }
    }
}

impl Recordable for () {
    fn to_recorded(&self) -> Recorded {
        Recorded::Deleted
    }
    fn from_recorded(recorded: Recorded) -> Option<Self> {
        match recorded {
            Recorded::Deleted => Some(()),
            _ => None,
        }
    }
}

const SEGMENT: &str = "segment";
const ADDED: &str = "added";
const REMOVED: &str = "removed";
const DELETED: &str = "deleted";
const DUPLICATE_NAME: &str = "duplicate_name";
const NOT_FOUND: &str = "not_found";

/// The encoding of a successful outcome (see the [module docs](self)).
pub(super) fn encode(outcome: &Recorded) -> Vec<u8> {
    let value = match outcome {
        Recorded::Segment(s) => json!({ SEGMENT: {
            "id": s.id.to_string(),
            "name": s.name,
            "description": s.description,
            "source": s.source,
            "current_size": s.current_size,
            "created_at_us": s.created_at.timestamp_micros(),
            "updated_at_us": s.updated_at.timestamp_micros(),
        }}),
        Recorded::Added(a) => json!({ ADDED: {
            "n_added": a.n_added,
            "n_redundant_additions": a.n_redundant_additions,
            "invalid_pids": a.invalid_pids,
            "new_current_size": a.new_current_size,
        }}),
        Recorded::Removed(r) => json!({ REMOVED: {
            "n_deleted": r.n_deleted,
            "invalid_pids": r.invalid_pids,
            "new_current_size": r.new_current_size,
        }}),
        Recorded::Deleted => json!({ DELETED: {} }),
    };
    value.to_string().into_bytes()
}

/// The encoding of an error outcome (only errors that wrote nothing and
/// would be the same on a retry are recorded).
pub(super) fn encode_error(error: &Error) -> Vec<u8> {
    let value = match error {
        Error::DuplicateName { name } => json!({ DUPLICATE_NAME: { "name": name } }),
        Error::NotFound { id } => json!({ NOT_FOUND: { "id": id.to_string() } }),
        other => unreachable!("{other:?} is not recorded"),
    };
    value.to_string().into_bytes()
}

/// Reads what [`encode`] and [`encode_error`] wrote, and records of the
/// earlier binary encoding ([`v1`]).
pub(super) fn decode(bytes: &[u8]) -> Result<Result<Recorded, Error>> {
    match bytes.first() {
        Some(&v1::VERSION) => v1::decode(bytes),
        Some(b'{') => decode_json(bytes),
        Some(_) => Err(damaged()),
        None => Err(Error::storage("an idempotency record is cut short")),
    }
}

fn damaged() -> Error {
    Error::storage("an idempotency record is damaged")
}

fn decode_json(bytes: &[u8]) -> Result<Result<Recorded, Error>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| damaged())?;
    let Some((kind, fields)) = value.as_object().and_then(only_member) else {
        return Err(damaged());
    };
    let f = Fields(fields.as_object().ok_or_else(damaged)?);
    Ok(match kind {
        SEGMENT => Ok(Recorded::Segment(Segment {
            id: f.id("id")?,
            name: f.text("name")?,
            description: f.optional_text("description")?,
            source: f.text("source")?,
            current_size: f.u64("current_size")?,
            created_at: f.time("created_at_us")?,
            updated_at: f.time("updated_at_us")?,
        })),
        ADDED => Ok(Recorded::Added(AddOutcome {
            n_added: f.u64("n_added")?,
            n_redundant_additions: f.u64("n_redundant_additions")?,
            invalid_pids: f.texts("invalid_pids")?,
            new_current_size: f.u64("new_current_size")?,
        })),
        REMOVED => Ok(Recorded::Removed(RemoveOutcome {
            n_deleted: f.u64("n_deleted")?,
            invalid_pids: f.texts("invalid_pids")?,
            new_current_size: f.u64("new_current_size")?,
        })),
        DELETED => Ok(Recorded::Deleted),
        DUPLICATE_NAME => Err(Error::DuplicateName {
            name: f.text("name")?,
        }),
        NOT_FOUND => Err(Error::NotFound { id: f.id("id")? }),
        _ => return Err(damaged()),
    })
}

/// The one member of an object, if it has exactly one.
fn only_member(object: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut members = object.iter();
    match (members.next(), members.next()) {
        (Some((kind, fields)), None) => Some((kind.as_str(), fields)),
        _ => None,
    }
}

/// The fields of a recorded outcome; a field missing or of the wrong type
/// is damage.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, name: &str) -> Result<&Value> {
        self.0.get(name).ok_or_else(damaged)
    }

    fn u64(&self, name: &str) -> Result<u64> {
        self.get(name)?.as_u64().ok_or_else(damaged)
    }

    fn text(&self, name: &str) -> Result<String> {
        Ok(self.get(name)?.as_str().ok_or_else(damaged)?.to_owned())
    }

    fn optional_text(&self, name: &str) -> Result<Option<String>> {
        match self.get(name)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(damaged()),
        }
    }

    fn texts(&self, name: &str) -> Result<Vec<String>> {
        let items = self.get(name)?.as_array().ok_or_else(damaged)?;
        items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(damaged))
            .collect()
    }

    fn time(&self, name: &str) -> Result<DateTime<Utc>> {
        let micros = self.get(name)?.as_i64().ok_or_else(damaged)?;
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| Error::storage("an idempotency record holds a bad time"))
    }

    fn id(&self, name: &str) -> Result<SegmentId> {
        let text = self.get(name)?.as_str().ok_or_else(damaged)?;
        SegmentId::parse(text).map_err(|_| damaged())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// One outcome of every kind, with text that JSON must escape.
    pub(in crate::service) fn every_kind() -> (Segment, AddOutcome, RemoveOutcome) {
        let at = DateTime::from_timestamp_micros(1_705_314_645_123_456).unwrap();
        let segment = Segment {
            id: SegmentId::from_uuid(uuid::Uuid::from_u128(7)),
            name: "Q1 \"Leads\"\n".into(),
            description: Some("désc \u{1f600} \\".into()),
            source: "api".into(),
            current_size: u64::MAX,
            created_at: at,
            updated_at: DateTime::from_timestamp_micros(-1).unwrap(),
        };
        let added = AddOutcome {
            n_added: 2,
            n_redundant_additions: 1,
            invalid_pids: vec!["p-bad!".into(), String::new(), "\u{0}".into()],
            new_current_size: 9,
        };
        let removed = RemoveOutcome {
            n_deleted: 1,
            invalid_pids: vec![],
            new_current_size: 8,
        };
        (segment, added, removed)
    }

    /// Checks that `decode` reads back every kind of outcome, as encoded by
    /// `encode` and `encode_error`.
    pub(in crate::service) fn reads_back(
        encode: fn(&Recorded) -> Vec<u8>,
        encode_error: fn(&Error) -> Vec<u8>,
    ) {
        let (segment, added, removed) = every_kind();
        let back = |r: Recorded| decode(&encode(&r)).unwrap().unwrap();
        let no_description = Segment {
            description: None,
            ..segment.clone()
        };
        assert_eq!(
            Segment::from_recorded(back(segment.to_recorded())),
            Some(segment),
            "a segment"
        );
        assert_eq!(
            Segment::from_recorded(back(no_description.to_recorded())),
            Some(no_description),
            "a segment without a description"
        );
        assert_eq!(
            AddOutcome::from_recorded(back(added.to_recorded())),
            Some(added),
            "an add"
        );
        assert_eq!(
            RemoveOutcome::from_recorded(back(removed.to_recorded())),
            Some(removed),
            "a removal"
        );
        assert_eq!(
            <()>::from_recorded(back(().to_recorded())),
            Some(()),
            "a delete"
        );
        let dup = Error::DuplicateName {
            name: "x \"y\"".into(),
        };
        assert!(
            matches!(decode(&encode_error(&dup)).unwrap(), Err(Error::DuplicateName { name }) if name == "x \"y\""),
            "a duplicate name"
        );
        let id = SegmentId::from_uuid(uuid::Uuid::from_u128(9));
        assert!(
            matches!(decode(&encode_error(&Error::NotFound { id })).unwrap(), Err(Error::NotFound { id: found }) if found == id),
            "an unknown segment"
        );
    }

    #[test]
    fn outcomes_read_back_as_written() {
        reads_back(encode, encode_error);
    }

    #[test]
    fn outcomes_are_json_with_the_api_field_names() {
        let (_, added, _) = every_kind();
        let value: Value = serde_json::from_slice(&encode(&added.to_recorded())).unwrap();
        assert_eq!(
            value,
            json!({"added": {
                "n_added": 2,
                "n_redundant_additions": 1,
                "invalid_pids": ["p-bad!", "", "\u{0}"],
                "new_current_size": 9,
            }}),
            "the format is documented in the module docs; changing it breaks stored records"
        );
        assert_eq!(encode(&Recorded::Deleted), br#"{"deleted":{}}"#.to_vec());
    }

    #[test]
    fn damage_is_an_error_not_an_absent_record() {
        for bytes in [
            &b""[..],
            b"{",
            b"{}",
            b"[]",
            br#"{"added":{}}"#,
            br#"{"added":{"n_added":-1,"n_redundant_additions":0,"invalid_pids":[],"new_current_size":0}}"#,
            br#"{"deleted":{},"added":{}}"#,
            br#"{"unknown":{}}"#,
            br#"{"not_found":{"id":"nope"}}"#,
            &[2, 1],
        ] {
            assert!(
                matches!(decode(bytes), Err(Error::Storage { .. })),
                "{:?} is damage",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
