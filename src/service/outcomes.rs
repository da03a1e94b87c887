//! The outcomes a key's record holds, and their encoding.

use chrono::{DateTime, Utc};

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

// The encoding of outcomes: a version byte, a tag, then the fields, each
// integer big-endian, each text length-prefixed.

const VERSION: u8 = 1;
const SEGMENT: u8 = 1;
const ADDED: u8 = 2;
const REMOVED: u8 = 3;
const DELETED: u8 = 4;
const DUPLICATE_NAME: u8 = 5;
const NOT_FOUND: u8 = 6;

pub(super) fn encode(outcome: &Result<Recorded, ()>) -> Vec<u8> {
    let mut out = vec![VERSION];
    let text = |out: &mut Vec<u8>, s: &str| {
        out.extend((s.len() as u64).to_be_bytes());
        out.extend(s.as_bytes());
    };
    let texts = |out: &mut Vec<u8>, items: &[String]| {
        out.extend((items.len() as u64).to_be_bytes());
        for item in items {
            text(out, item);
        }
    };
    match outcome {
        Ok(Recorded::Segment(s)) => {
            out.push(SEGMENT);
            out.extend(s.id.as_bytes());
            text(&mut out, &s.name);
            match &s.description {
                None => out.push(0),
                Some(d) => {
                    out.push(1);
                    text(&mut out, d);
                }
            }
            text(&mut out, &s.source);
            out.extend(s.current_size.to_be_bytes());
            out.extend(s.created_at.timestamp_micros().to_be_bytes());
            out.extend(s.updated_at.timestamp_micros().to_be_bytes());
        }
        Ok(Recorded::Added(a)) => {
            out.push(ADDED);
            out.extend(a.n_added.to_be_bytes());
            out.extend(a.n_redundant_additions.to_be_bytes());
            texts(&mut out, &a.invalid_pids);
            out.extend(a.new_current_size.to_be_bytes());
        }
        Ok(Recorded::Removed(r)) => {
            out.push(REMOVED);
            out.extend(r.n_deleted.to_be_bytes());
            texts(&mut out, &r.invalid_pids);
            out.extend(r.new_current_size.to_be_bytes());
        }
        Ok(Recorded::Deleted) => out.push(DELETED),
        Err(()) => unreachable!("errors go through encode_error"),
    }
    out
}

/// The encoding of an error outcome (only errors that wrote nothing and
/// would be the same on a retry are recorded).
pub(super) fn encode_error(error: &Error) -> Vec<u8> {
    let mut out = vec![VERSION];
    match error {
        Error::DuplicateName { name } => {
            out.push(DUPLICATE_NAME);
            out.extend((name.len() as u64).to_be_bytes());
            out.extend(name.as_bytes());
        }
        Error::NotFound { id } => {
            out.push(NOT_FOUND);
            out.extend(id.as_bytes());
        }
        other => unreachable!("{other:?} is not recorded"),
    }
    out
}

/// Reads what [`encode`] and [`encode_error`] wrote.
pub(super) fn decode(bytes: &[u8]) -> Result<Result<Recorded, Error>> {
    let damaged = || Error::storage("an idempotency record is damaged");
    let mut r = Reader(bytes);
    if r.byte()? != VERSION {
        return Err(damaged());
    }
    let outcome = match r.byte()? {
        SEGMENT => Ok(Recorded::Segment(Segment {
            id: r.id()?,
            name: r.text()?,
            description: match r.byte()? {
                0 => None,
                _ => Some(r.text()?),
            },
            source: r.text()?,
            current_size: r.u64()?,
            created_at: r.time()?,
            updated_at: r.time()?,
        })),
        ADDED => Ok(Recorded::Added(AddOutcome {
            n_added: r.u64()?,
            n_redundant_additions: r.u64()?,
            invalid_pids: r.texts()?,
            new_current_size: r.u64()?,
        })),
        REMOVED => Ok(Recorded::Removed(RemoveOutcome {
            n_deleted: r.u64()?,
            invalid_pids: r.texts()?,
            new_current_size: r.u64()?,
        })),
        DELETED => Ok(Recorded::Deleted),
        DUPLICATE_NAME => Err(Error::DuplicateName { name: r.text()? }),
        NOT_FOUND => Err(Error::NotFound { id: r.id()? }),
        _ => return Err(damaged()),
    };
    if !r.0.is_empty() {
        return Err(damaged());
    }
    Ok(outcome)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(Error::storage("an idempotency record is cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn time(&mut self) -> Result<DateTime<Utc>> {
        let micros = i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| Error::storage("an idempotency record holds a bad time"))
    }

    fn id(&mut self) -> Result<SegmentId> {
        let bytes: [u8; 16] = self.take(16)?.try_into().expect("16 bytes");
        Ok(SegmentId::from_uuid(uuid::Uuid::from_bytes(bytes)))
    }

    fn text(&mut self) -> Result<String> {
        let len = usize::try_from(self.u64()?)
            .map_err(|_| Error::storage("an idempotency record is damaged"))?;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| Error::storage("an idempotency record holds bad text"))
    }

    fn texts(&mut self) -> Result<Vec<String>> {
        let n = self.u64()?;
        (0..n).map(|_| self.text()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_back_as_written() {
        let at = DateTime::from_timestamp_micros(1_705_314_645_123_456).unwrap();
        let segment = Segment {
            id: SegmentId::from_uuid(uuid::Uuid::from_u128(7)),
            name: "Q1 Leads".into(),
            description: Some("désc".into()),
            source: "api".into(),
            current_size: 3,
            created_at: at,
            updated_at: at,
        };
        let added = AddOutcome {
            n_added: 2,
            n_redundant_additions: 1,
            invalid_pids: vec!["p-bad!".into(), String::new()],
            new_current_size: 9,
        };
        let removed = RemoveOutcome {
            n_deleted: 1,
            invalid_pids: vec![],
            new_current_size: 8,
        };
        let back = |r: Recorded| decode(&encode(&Ok(r))).unwrap().unwrap();
        assert_eq!(
            Segment::from_recorded(back(segment.to_recorded())),
            Some(segment)
        );
        assert_eq!(
            AddOutcome::from_recorded(back(added.to_recorded())),
            Some(added)
        );
        assert_eq!(
            RemoveOutcome::from_recorded(back(removed.to_recorded())),
            Some(removed)
        );
        assert_eq!(<()>::from_recorded(back(().to_recorded())), Some(()));
        let dup = Error::DuplicateName { name: "x".into() };
        assert!(
            matches!(decode(&encode_error(&dup)).unwrap(), Err(Error::DuplicateName { name }) if name == "x")
        );
        assert!(decode(&[VERSION, 99]).is_err(), "an unknown tag is damage");
        assert!(
            decode(&[VERSION, SEGMENT, 1]).is_err(),
            "a cut record is damage"
        );
    }
}
