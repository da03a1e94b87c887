//! How the SQL backends store a ledger entry: a kind code and the columns
//! the kind uses, the same numbers in every schema.

use crate::{ChangeKind, Error, Pid, Result};

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
