//! What the SQL backends share: how they store a ledger entry (a kind
//! code and the columns the kind uses, the same numbers in every schema),
//! and the batch of a member call.

use crate::{ChangeKind, Error, Pid, Result};

/// The PIDs of one member call in PID order, each with its place in the
/// call. Built before a transaction opens.
pub(crate) struct Batch<'p> {
    /// `(place in the call, PID)`, in PID order.
    sorted: Vec<(usize, &'p Pid)>,
    /// The same PIDs as text, in PID order.
    texts: Vec<&'p str>,
}

impl<'p> Batch<'p> {
    /// The batch of `pids`.
    ///
    /// # Errors
    /// `Storage` when a PID is given twice. The service passes each PID of
    /// a call once; a store given a repeat refuses the whole call, rather
    /// than count one person twice.
    pub(crate) fn new(pids: &'p [Pid]) -> Result<Self> {
        let mut sorted: Vec<(usize, &Pid)> = pids.iter().enumerate().collect();
        sorted.sort_unstable_by(|a, b| a.1.cmp(b.1));
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0].1 == pair[1].1) {
            let (first, second) = (pair[0].0.min(pair[1].0), pair[0].0.max(pair[1].0));
            return Err(Error::storage(format!(
                "PID {} is given twice in one member call (at {first} and {second}); \
                 a store takes each PID of a call once",
                pair[0].1
            )));
        }
        let texts = sorted.iter().map(|(_, pid)| pid.as_str()).collect();
        Ok(Self { sorted, texts })
    }

    /// How many PIDs the call holds.
    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The PIDs as text, in PID order.
    pub(crate) fn texts(&self) -> &[&'p str] {
        &self.texts
    }

    /// The place in the call of the `i`-th PID in PID order (from 0).
    pub(crate) fn place(&self, i: usize) -> Option<usize> {
        self.sorted.get(i).map(|&(place, _)| place)
    }

    /// The position in PID order of `pid`.
    pub(crate) fn position(&self, pid: &str) -> Option<usize> {
        self.texts.binary_search(&pid).ok()
    }
}

pub(crate) const CREATED: i16 = 1;
pub(crate) const RENAMED: i16 = 2;
pub(crate) const DESCRIBED: i16 = 3;
pub(crate) const DELETED: i16 = 4;
pub(crate) const ADDED: i16 = 5;
pub(crate) const READDED: i16 = 6;
pub(crate) const REMOVED: i16 = 7;

/// The columns of an entry about a segment (not a member).
pub(crate) struct SegmentEntry<'a> {
    pub(crate) code: i16,
    pub(crate) name: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
}

/// The columns of `kind`, an entry about a segment. Membership entries
/// name a person by number and are written in batches, not through this.
pub(crate) fn segment_entry(kind: &ChangeKind) -> Result<SegmentEntry<'_>> {
    let (code, name, description) = match kind {
        ChangeKind::Created { name, description } => {
            (CREATED, Some(name.as_str()), description.as_deref())
        }
        ChangeKind::Renamed { name } => (RENAMED, Some(name.as_str()), None),
        ChangeKind::DescriptionChanged { description } => (DESCRIBED, None, description.as_deref()),
        ChangeKind::Deleted => (DELETED, None, None),
        other => {
            return Err(Error::storage(format!(
                "a {other:?} entry is a membership entry, written in a batch"
            )));
        }
    };
    Ok(SegmentEntry {
        code,
        name,
        description,
    })
}

/// The kind of a stored entry, from its code and the columns it uses (the
/// PID of a membership entry, the name and description of a segment
/// entry). A code or a missing column that cannot be is a damaged row.
pub(crate) fn kind(
    code: i16,
    pid: Option<Pid>,
    name: Option<String>,
    description: Option<String>,
) -> Result<ChangeKind> {
    let pid = || pid.ok_or_else(|| Error::storage(format!("entry kind {code} has no PID")));
    let name = || name.ok_or_else(|| Error::storage(format!("entry kind {code} has no name")));
    Ok(match code {
        CREATED => ChangeKind::Created {
            name: name()?,
            description,
        },
        RENAMED => ChangeKind::Renamed { name: name()? },
        DESCRIBED => ChangeKind::DescriptionChanged { description },
        DELETED => ChangeKind::Deleted,
        ADDED => ChangeKind::MemberAdded { pid: pid()? },
        READDED => ChangeKind::MemberReAdded { pid: pid()? },
        REMOVED => ChangeKind::MemberRemoved { pid: pid()? },
        other => return Err(Error::storage(format!("unknown ledger entry kind {other}"))),
    })
}

/// Whether a code's entry makes the person a member.
pub(crate) fn joins(code: i16) -> bool {
    code == ADDED || code == READDED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_in_pid_order_and_refuses_a_repeat() {
        let pids: Vec<Pid> = ["p-c", "p-a", "p-b"]
            .iter()
            .map(|p| Pid::parse(p).unwrap())
            .collect();
        let batch = Batch::new(&pids).unwrap();
        assert_eq!(batch.texts(), ["p-a", "p-b", "p-c"], "PID order");
        assert_eq!(
            (0..4).map(|i| batch.place(i)).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(0), None],
            "each PID's place in the call"
        );
        assert_eq!(batch.position("p-c"), Some(2));
        assert_eq!(batch.position("p-d"), None);
        let repeated: Vec<Pid> = ["p-b", "p-a", "p-c", "p-a"]
            .iter()
            .map(|p| Pid::parse(p).unwrap())
            .collect();
        let err = Batch::new(&repeated).err().expect("a repeat is refused");
        assert_eq!(err.storage_kind(), Some(crate::StorageFailure::Other));
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            source.is_some_and(|s| s.contains("p-a")),
            "the error's source names the PID: {err:?}"
        );
    }

    #[test]
    fn every_segment_kind_reads_back_as_written() {
        for kind in [
            ChangeKind::Created {
                name: "A".into(),
                description: Some("d".into()),
            },
            ChangeKind::Created {
                name: "A".into(),
                description: None,
            },
            ChangeKind::Renamed { name: "B".into() },
            ChangeKind::DescriptionChanged {
                description: Some("e".into()),
            },
            ChangeKind::DescriptionChanged { description: None },
            ChangeKind::Deleted,
        ] {
            let e = segment_entry(&kind).unwrap();
            let back = super::kind(
                e.code,
                None,
                e.name.map(str::to_owned),
                e.description.map(str::to_owned),
            )
            .unwrap();
            assert_eq!(back, kind, "kind {} reads back", e.code);
        }
        let pid = Pid::parse("p-a").unwrap();
        for code in [ADDED, READDED, REMOVED] {
            let kind = super::kind(code, Some(pid.clone()), None, None).unwrap();
            assert_eq!(kind.pid(), Some(&pid));
            assert_eq!(kind.joins(), joins(code), "joins agrees for {code}");
            assert!(
                super::kind(code, None, None, None).is_err(),
                "no PID, damaged"
            );
        }
        assert!(super::kind(99, None, None, None).is_err());
    }
}
