//! The segment writes of the SQL backends, written once: create, rename or
//! describe, delete; what each reads, which rule it asks, what it writes
//! and in which order. A backend implements [`SegmentSql`] with its
//! statements, and calls [`insert`], [`create_from`], [`update`] and
//! [`delete`] inside the
//! write that [`keyed_write`](super::entries::keyed_write) opened.

use chrono::{DateTime, Utc};

use super::{SegmentChange, SegmentInsert, StoreAddOutcome};
use crate::{ChangeKind, Result, Segment, SegmentId, SetExpr};

/// One segment write of one org, inside its write transaction, with the
/// org's ledger open: the statements a SQL backend runs for each step.
pub(crate) trait SegmentSql {
    /// The time of this transaction's changes (the ledger head's).
    fn time(&self) -> DateTime<Utc>;

    /// The org's segment `id`; `NotFound` when the org has none.
    fn segment(&mut self, id: SegmentId) -> Result<Segment>;

    /// `NotFound` unless the org has segment `id` (a cheaper
    /// [`segment`](Self::segment)).
    fn exists(&mut self, id: SegmentId) -> Result<()>;

    /// Inserts the row of `new`, created now; `DuplicateName` when the
    /// org has a segment of that name (the unique index decides between
    /// racing creates).
    fn insert(&mut self, new: &SegmentInsert) -> Result<()>;

    /// Applies `change` to segment `id`, updated now; `DuplicateName`
    /// when a rename takes another segment's name.
    fn change(&mut self, id: SegmentId, change: &SegmentChange) -> Result<()>;

    /// Deletes segment `id` with its memberships and sizes (its ledger
    /// entries stay); `NotFound` when the org has none.
    fn delete(&mut self, id: SegmentId) -> Result<()>;

    /// Appends the ledger entry `kind` about segment `id`.
    fn append(&mut self, id: SegmentId, kind: &ChangeKind) -> Result<()>;
}

/// Creates segment `new` and records its `Created` entry.
pub(crate) fn insert(sql: &mut impl SegmentSql, new: &SegmentInsert) -> Result<Segment> {
    sql.insert(new)?;
    let segment = new.clone().into_segment(sql.time());
    let created = ChangeKind::Created {
        name: segment.name.clone(),
        description: segment.description.clone(),
    };
    sql.append(segment.id, &created)?;
    Ok(segment)
}

/// Creates segment `new` and makes the members of `expr` its members
/// through `add`, the backend's member call on the new segment
/// ([`add_from`](super::member_calls::add_from)). The sources are checked
/// first: a missing one creates nothing.
pub(crate) fn create_from<S: SegmentSql>(
    sql: &mut S,
    new: &SegmentInsert,
    expr: &SetExpr,
    add: impl FnOnce(&mut S, SegmentId) -> Result<StoreAddOutcome>,
) -> Result<Segment> {
    for source in expr.segments() {
        sql.exists(source)?;
    }
    let created = insert(sql, new)?;
    let added = add(sql, created.id)?;
    Ok(Segment {
        current_size: added.new_current_size,
        ..created
    })
}

/// Applies a rename or a new description and records it; a change that
/// changes nothing writes nothing and returns the segment as it is.
pub(crate) fn update(
    sql: &mut impl SegmentSql,
    id: SegmentId,
    change: &SegmentChange,
) -> Result<Segment> {
    let current = sql.segment(id)?;
    if change.is_no_op(&current) {
        return Ok(current);
    }
    sql.change(id, change)?;
    let kind = match change {
        SegmentChange::Rename(name) => ChangeKind::Renamed {
            name: name.as_str().to_owned(),
        },
        SegmentChange::Describe(description) => ChangeKind::DescriptionChanged {
            description: description.clone(),
        },
    };
    sql.append(id, &kind)?;
    sql.segment(id)
}

/// Deletes segment `id` and records its `Deleted` entry.
pub(crate) fn delete(sql: &mut impl SegmentSql, id: SegmentId) -> Result<()> {
    sql.delete(id)?;
    sql.append(id, &ChangeKind::Deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, SegmentName};

    /// One org's segments in memory that records what the flows ask of
    /// it, in order.
    #[derive(Default)]
    struct SegmentRecorder {
        segments: Vec<Segment>,
        calls: Vec<String>,
        entries: Vec<ChangeKind>,
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    impl SegmentSql for SegmentRecorder {
        fn time(&self) -> DateTime<Utc> {
            at()
        }
        fn segment(&mut self, id: SegmentId) -> Result<Segment> {
            self.calls.push("segment".into());
            let found = self.segments.iter().find(|s| s.id == id);
            found.cloned().ok_or(Error::NotFound { id })
        }
        fn exists(&mut self, id: SegmentId) -> Result<()> {
            self.calls.push("exists".into());
            let found = self.segments.iter().any(|s| s.id == id);
            found.then_some(()).ok_or(Error::NotFound { id })
        }
        fn insert(&mut self, new: &SegmentInsert) -> Result<()> {
            self.calls.push("insert".into());
            if self.segments.iter().any(|s| s.name == new.name.as_str()) {
                return Err(Error::DuplicateName {
                    name: new.name.as_str().to_owned(),
                });
            }
            self.segments.push(new.clone().into_segment(at()));
            Ok(())
        }
        fn change(&mut self, id: SegmentId, change: &SegmentChange) -> Result<()> {
            self.calls.push("change".into());
            if let SegmentChange::Rename(name) = change {
                let taken = self
                    .segments
                    .iter()
                    .any(|s| s.name == name.as_str() && s.id != id);
                if taken {
                    return Err(Error::DuplicateName {
                        name: name.as_str().to_owned(),
                    });
                }
            }
            let segment = self.segments.iter_mut().find(|s| s.id == id).unwrap();
            match change {
                SegmentChange::Rename(name) => segment.name = name.as_str().to_owned(),
                SegmentChange::Describe(d) => segment.description.clone_from(d),
            }
            Ok(())
        }
        fn delete(&mut self, id: SegmentId) -> Result<()> {
            self.calls.push("delete".into());
            let before = self.segments.len();
            self.segments.retain(|s| s.id != id);
            if self.segments.len() == before {
                return Err(Error::NotFound { id });
            }
            Ok(())
        }
        fn append(&mut self, _: SegmentId, kind: &ChangeKind) -> Result<()> {
            self.calls.push("append".into());
            self.entries.push(kind.clone());
            Ok(())
        }
    }

    fn new_segment(name: &str) -> SegmentInsert {
        SegmentInsert {
            id: SegmentId::from_uuid(uuid::Uuid::now_v7()),
            name: SegmentName::parse(name).unwrap(),
            description: Some("first".into()),
            source: "api".into(),
        }
    }

    /// A create writes the row, then a `Created` entry with its name and
    /// description; a duplicate name writes no entry.
    #[test]
    fn a_create_writes_its_row_then_its_entry_and_a_refused_one_neither() {
        let mut sql = SegmentRecorder::default();
        let new = new_segment("Leads");
        let created = insert(&mut sql, &new).unwrap();
        assert_eq!((created.id, created.created_at), (new.id, at()));
        assert_eq!(sql.calls, ["insert", "append"]);
        assert_eq!(
            sql.entries,
            [ChangeKind::Created {
                name: "Leads".into(),
                description: Some("first".into()),
            }]
        );
        let again = insert(&mut sql, &new_segment("Leads"));
        assert!(
            matches!(again, Err(Error::DuplicateName { .. })),
            "{again:?}"
        );
        assert_eq!(sql.entries.len(), 1, "a refused create records nothing");
    }

    /// An update that changes nothing reads and writes nothing more; one
    /// that does changes the row, records what changed, and reads the
    /// segment back.
    #[test]
    fn an_update_records_what_changed_and_a_no_op_writes_nothing() {
        let mut sql = SegmentRecorder::default();
        let id = insert(&mut sql, &new_segment("Leads")).unwrap().id;
        sql.calls.clear();
        let same = SegmentChange::Rename(SegmentName::parse("Leads").unwrap());
        assert_eq!(update(&mut sql, id, &same).unwrap().name, "Leads");
        assert_eq!(sql.calls, ["segment"], "a no-op writes nothing");
        sql.calls.clear();
        let renamed = update(
            &mut sql,
            id,
            &SegmentChange::Rename(SegmentName::parse("Prospects").unwrap()),
        )
        .unwrap();
        assert_eq!(renamed.name, "Prospects");
        assert_eq!(sql.calls, ["segment", "change", "append", "segment"]);
        let described = update(&mut sql, id, &SegmentChange::Describe(None)).unwrap();
        assert_eq!(described.description, None);
        assert_eq!(
            sql.entries[1..],
            [
                ChangeKind::Renamed {
                    name: "Prospects".into()
                },
                ChangeKind::DescriptionChanged { description: None },
            ]
        );
    }

    /// A delete records `Deleted` after the row goes; a missing segment is
    /// `NotFound` and records nothing.
    #[test]
    fn a_delete_records_its_entry_only_when_the_segment_was_there() {
        let mut sql = SegmentRecorder::default();
        let id = insert(&mut sql, &new_segment("Leads")).unwrap().id;
        delete(&mut sql, id).unwrap();
        assert_eq!(sql.entries.last(), Some(&ChangeKind::Deleted));
        let entries = sql.entries.len();
        assert!(matches!(delete(&mut sql, id), Err(Error::NotFound { .. })));
        assert_eq!(
            sql.entries.len(),
            entries,
            "a missing segment records nothing"
        );
    }

    /// A create from a set operation checks every source before it writes
    /// (a missing one creates nothing), then adds the members to the new
    /// segment, whose size is what the add left.
    #[test]
    fn a_create_from_checks_its_sources_first_and_takes_the_adds_size() {
        let mut sql = SegmentRecorder::default();
        let source = insert(&mut sql, &new_segment("Leads")).unwrap().id;
        let missing = SegmentId::from_uuid(uuid::Uuid::now_v7());
        sql.calls.clear();
        let expr = SetExpr::segment(source).union(SetExpr::segment(missing));
        let refused = create_from(&mut sql, &new_segment("Both"), &expr, |_, _| {
            unreachable!("no add after a missing source")
        });
        assert!(matches!(refused, Err(Error::NotFound { id }) if id == missing));
        assert_eq!(sql.calls, ["exists", "exists"], "nothing written");
        let made = create_from(
            &mut sql,
            &new_segment("Copy"),
            &SetExpr::segment(source),
            |sql, id| {
                sql.calls.push(format!(
                    "add to {}",
                    sql.segments.iter().position(|s| s.id == id).unwrap()
                ));
                Ok(StoreAddOutcome {
                    n_added: 3,
                    n_redundant_additions: 0,
                    new_current_size: 3,
                })
            },
        )
        .unwrap();
        assert_eq!((made.name.as_str(), made.current_size), ("Copy", 3));
        assert_eq!(sql.calls[2..], ["exists", "insert", "append", "add to 1"]);
    }

    /// A rename to a taken name, an update of a missing segment and a
    /// create from a set operation under a taken name record nothing; the
    /// last one never reaches its add.
    #[test]
    fn refused_updates_and_creates_record_nothing() {
        let mut sql = SegmentRecorder::default();
        let leads = insert(&mut sql, &new_segment("Leads")).unwrap().id;
        insert(&mut sql, &new_segment("Prospects")).unwrap();
        let entries = sql.entries.len();
        let taken = SegmentChange::Rename(SegmentName::parse("Prospects").unwrap());
        let refused = update(&mut sql, leads, &taken);
        assert!(
            matches!(refused, Err(Error::DuplicateName { .. })),
            "{refused:?}"
        );
        let missing = SegmentId::from_uuid(uuid::Uuid::now_v7());
        let refused = update(&mut sql, missing, &SegmentChange::Describe(None));
        assert!(matches!(refused, Err(Error::NotFound { id }) if id == missing));
        let refused = create_from(
            &mut sql,
            &new_segment("Leads"),
            &SetExpr::segment(leads),
            |_, _| unreachable!("no add after a refused insert"),
        );
        assert!(
            matches!(refused, Err(Error::DuplicateName { .. })),
            "{refused:?}"
        );
        assert_eq!(sql.entries.len(), entries, "nothing recorded");
    }
}
