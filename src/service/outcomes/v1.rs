//! The first encoding of recorded outcomes (before JSON), read so that keys
//! recorded by an older version still replay: a version byte (1), a tag,
//! then the fields, each integer big-endian, each text length-prefixed.
//! Nothing writes it any more; its encoder lives on in the tests, which
//! check that this reader reads what it wrote.

use chrono::{DateTime, Utc};

use super::Recorded;
use crate::{AddOutcome, Error, RemoveOutcome, Result, Segment, SegmentId};

/// The first byte of every record of this encoding.
pub(super) const VERSION: u8 = 1;

const SEGMENT: u8 = 1;
const ADDED: u8 = 2;
const REMOVED: u8 = 3;
const DELETED: u8 = 4;
const DUPLICATE_NAME: u8 = 5;
const NOT_FOUND: u8 = 6;

fn damaged() -> Error {
    Error::storage("an idempotency record is damaged")
}

/// Reads a record of this encoding.
pub(super) fn decode(bytes: &[u8]) -> Result<Result<Recorded, Error>> {
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
        let len = usize::try_from(self.u64()?).map_err(|_| damaged())?;
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
    use super::super::tests::{every_kind, reads_back};
    use super::super::{Recordable, decode as decode_any};
    use super::*;

    /// The encoder of this format, as the crate shipped it before JSON.
    fn encode(outcome: &Recorded) -> Vec<u8> {
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
            Recorded::Segment(s) => {
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
            Recorded::Added(a) => {
                out.push(ADDED);
                out.extend(a.n_added.to_be_bytes());
                out.extend(a.n_redundant_additions.to_be_bytes());
                texts(&mut out, &a.invalid_pids);
                out.extend(a.new_current_size.to_be_bytes());
            }
            Recorded::Removed(r) => {
                out.push(REMOVED);
                out.extend(r.n_deleted.to_be_bytes());
                texts(&mut out, &r.invalid_pids);
                out.extend(r.new_current_size.to_be_bytes());
            }
            Recorded::Deleted => out.push(DELETED),
        }
        out
    }

    /// The error encoder of this format, as the crate shipped it.
    fn encode_error(error: &Error) -> Vec<u8> {
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

    /// A key recorded before the JSON format replays its outcome, of every
    /// kind, through the same `decode` the service calls.
    #[test]
    fn records_of_the_first_encoding_still_replay() {
        reads_back(encode, encode_error);
    }

    /// Fixed bytes, as a v1 writer stored them, so that this test does not
    /// depend on the test encoder above being faithful.
    #[test]
    fn fixed_v1_records_decode() {
        let mut added = vec![VERSION, ADDED];
        added.extend(2u64.to_be_bytes());
        added.extend(1u64.to_be_bytes());
        added.extend(1u64.to_be_bytes());
        added.extend(6u64.to_be_bytes());
        added.extend(b"p-bad!");
        added.extend(9u64.to_be_bytes());
        let out = AddOutcome::from_recorded(decode_any(&added).unwrap().unwrap());
        assert_eq!(
            out,
            Some(AddOutcome {
                n_added: 2,
                n_redundant_additions: 1,
                invalid_pids: vec!["p-bad!".into()],
                new_current_size: 9,
            })
        );
        assert!(
            matches!(
                decode_any(&[VERSION, DELETED]).unwrap(),
                Ok(Recorded::Deleted)
            ),
            "a delete"
        );
        let (segment, _, _) = every_kind();
        assert_eq!(
            encode(&segment.to_recorded())[..2],
            [VERSION, SEGMENT],
            "a v1 record starts with its version, then its tag"
        );
    }

    #[test]
    fn damaged_v1_records_are_errors() {
        assert!(decode(&[VERSION, 99]).is_err(), "an unknown tag is damage");
        assert!(
            decode(&[VERSION, SEGMENT, 1]).is_err(),
            "a cut record is damage"
        );
        assert!(
            decode(&[VERSION, DELETED, 0]).is_err(),
            "trailing bytes are damage"
        );
    }
}
