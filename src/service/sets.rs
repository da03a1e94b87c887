//! Set operations and dry runs.

use super::Segments;
use super::trace::traced;
use crate::store::{Stamp, StoreAddOutcome, StoreRemoveOutcome, Written};
use crate::{
    AddOutcome, NewSegment, OrgId, RemoveOutcome, Result, Segment, SegmentId, SegmentStore, SetExpr,
};

impl<S: SegmentStore> Segments<S> {
    /// Creates a segment whose members are those of `expr`, computed by the
    /// store from the org's segments as they are now: `A ∪ B`, `A ∩ B`,
    /// `A − B` and their nesting (see [`SetExpr`]). Atomic: the segment and
    /// all its members, or nothing. Each member's ledger entry records its
    /// [`Provenance`](crate::Provenance): the source segments and the
    /// ledger seq they were read at.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments, SetExpr};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let a = segments.create(&org, NewSegment::new("A"))?.id;
    /// let b = segments.create(&org, NewSegment::new("B"))?.id;
    /// let c = segments.create(&org, NewSegment::new("C"))?.id;
    /// segments.add_members(&org, a, &["p-1", "p-2"])?;
    /// segments.add_members(&org, b, &["p-3"])?;
    /// segments.add_members(&org, c, &["p-2"])?;
    /// let expr = SetExpr::segment(a).union(SetExpr::segment(b)).minus(SetExpr::segment(c));
    /// let s = segments.create_from(&org, NewSegment::new("A or B, not C"), &expr)?;
    /// assert_eq!(s.current_size, 2); // p-1 and p-3
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Invalid` for a bad name, description or source, or an expression
    /// deeper than [`MAX_SET_EXPR_DEPTH`](crate::limits::MAX_SET_EXPR_DEPTH)
    /// (field `expression`); `NotFound` for a source that is unknown,
    /// deleted or another org's; `DuplicateName`; `Storage`. Nothing
    /// changes on error.
    pub fn create_from(&self, org: &OrgId, new: NewSegment, expr: &SetExpr) -> Result<Segment> {
        traced!(
            "segments.create_from",
            Some(org),
            None::<SegmentId>,
            [],
            (|| {
                expr.check()?;
                let stamp = self.stamp();
                let insert = self.checked_insert(new, stamp)?;
                let input = self.input("create_from", |f| {
                    f.insert(&insert).expr(expr);
                });
                self.keyed(org, stamp, input, &super::written_segment, |stamp| {
                    self.store.create_from(org, insert, expr, stamp)
                })
            })()
        )
    }

    /// Adds the members of `expr` to segment `target`, as
    /// [`add_members`](Segments::add_members) would with those PIDs (in
    /// PID order), each entry with its provenance. `target` may be one of
    /// the sources. Atomic.
    ///
    /// # Errors
    /// `Invalid` for an expression over the limits; `NotFound` for the
    /// target or a source; `Storage`. Nothing changes on error.
    pub fn add_from(&self, org: &OrgId, target: SegmentId, expr: &SetExpr) -> Result<AddOutcome> {
        traced!(
            "segments.add_from",
            Some(org),
            Some(target),
            [],
            self.add_from_with(org, target, expr, false)
        )
    }

    /// Removes the members of `expr` from segment `target`, as
    /// [`remove_members`](Segments::remove_members) would, each entry with
    /// its provenance. Atomic.
    ///
    /// # Errors
    /// As [`add_from`](Segments::add_from).
    pub fn remove_from(
        &self,
        org: &OrgId,
        target: SegmentId,
        expr: &SetExpr,
    ) -> Result<RemoveOutcome> {
        traced!(
            "segments.remove_from",
            Some(org),
            Some(target),
            [],
            self.remove_from_with(org, target, expr, false)
        )
    }

    /// [`add_from`](Self::add_from), or its dry run.
    fn add_from_with(
        &self,
        org: &OrgId,
        target: SegmentId,
        expr: &SetExpr,
        dry_run: bool,
    ) -> Result<AddOutcome> {
        expr.check()?;
        if dry_run {
            let done = self.store.add_from(org, target, expr, self.dry_stamp())?;
            return Ok(added(&done));
        }
        let input = self.input("add_from", |f| {
            f.id(target).expr(expr);
        });
        let outcome = |w: Written<'_>| match w {
            Written::Added(done) => Some(added(done)),
            _ => None,
        };
        self.keyed(org, self.stamp(), input, &outcome, |stamp| {
            Ok(added(&self.store.add_from(org, target, expr, stamp)?))
        })
    }

    /// [`remove_from`](Self::remove_from), or its dry run.
    fn remove_from_with(
        &self,
        org: &OrgId,
        target: SegmentId,
        expr: &SetExpr,
        dry_run: bool,
    ) -> Result<RemoveOutcome> {
        expr.check()?;
        if dry_run {
            let done = self
                .store
                .remove_from(org, target, expr, self.dry_stamp())?;
            return Ok(removed(&done));
        }
        let input = self.input("remove_from", |f| {
            f.id(target).expr(expr);
        });
        let outcome = |w: Written<'_>| match w {
            Written::Removed(done) => Some(removed(done)),
            _ => None,
        };
        self.keyed(org, self.stamp(), input, &outcome, |stamp| {
            Ok(removed(&self.store.remove_from(org, target, expr, stamp)?))
        })
    }

    /// The dry-run view: member calls and set operations that report
    /// exactly what they would do now (the same outcome the real call
    /// would return at this moment) and change nothing: no membership, no
    /// ledger entry, no size.
    ///
    /// ```
    /// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
    /// let segments = Segments::new(MemoryStore::new());
    /// let org = OrgId::new("acme")?;
    /// let s = segments.create(&org, NewSegment::new("Prospects"))?;
    /// let would = segments.dry_run().add_members(&org, s.id, &["p-a1b2c3d4e5f6", "p-bad!"])?;
    /// assert_eq!((would.n_added, would.new_current_size), (1, 1));
    /// assert_eq!(segments.get(&org, s.id)?.current_size, 0, "nothing was written");
    /// # Ok::<(), segments_engine::Error>(())
    /// ```
    pub fn dry_run(&self) -> DryRun<'_, S> {
        DryRun { segments: self }
    }

    /// A stamp for a dry run.
    pub(super) fn dry_stamp(&self) -> Stamp<'_> {
        Stamp {
            dry_run: true,
            ..self.stamp()
        }
    }
}

/// The outcome of a set operation that added `done`.
fn added(done: &StoreAddOutcome) -> AddOutcome {
    AddOutcome {
        n_added: done.n_added,
        n_redundant_additions: done.n_redundant_additions,
        invalid_pids: Vec::new(),
        new_current_size: done.new_current_size,
    }
}

/// The outcome of a set operation that removed `done`.
fn removed(done: &StoreRemoveOutcome) -> RemoveOutcome {
    RemoveOutcome {
        n_deleted: done.n_deleted,
        invalid_pids: Vec::new(),
        new_current_size: done.new_current_size,
    }
}

/// Member calls and set operations that change nothing and say what they
/// would do ([`Segments::dry_run`]). Every method takes the same input and
/// gives the same outcome and errors as its namesake on [`Segments`].
#[derive(Debug)]
pub struct DryRun<'s, S> {
    segments: &'s Segments<S>,
}

impl<S: SegmentStore> DryRun<'_, S> {
    /// What [`Segments::add_members`] would do now.
    ///
    /// # Errors
    /// As [`Segments::add_members`].
    pub fn add_members<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
    ) -> Result<AddOutcome> {
        traced!(
            "segments.dry_run.add_members",
            Some(org),
            Some(id),
            [n_pids = pids.len()],
            {
                let s = self.segments;
                s.add_members_with(org, id, pids, true)
            }
        )
    }

    /// What [`Segments::remove_members`] would do now.
    ///
    /// # Errors
    /// As [`Segments::remove_members`].
    pub fn remove_members<P: AsRef<str>>(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[P],
    ) -> Result<RemoveOutcome> {
        traced!(
            "segments.dry_run.remove_members",
            Some(org),
            Some(id),
            [n_pids = pids.len()],
            {
                let s = self.segments;
                s.remove_members_with(org, id, pids, true)
            }
        )
    }

    /// What [`Segments::add_from`] would do now.
    ///
    /// # Errors
    /// As [`Segments::add_from`].
    pub fn add_from(&self, org: &OrgId, target: SegmentId, expr: &SetExpr) -> Result<AddOutcome> {
        traced!("segments.dry_run.add_from", Some(org), Some(target), [], {
            let s = self.segments;
            s.add_from_with(org, target, expr, true)
        })
    }

    /// What [`Segments::remove_from`] would do now.
    ///
    /// # Errors
    /// As [`Segments::remove_from`].
    pub fn remove_from(
        &self,
        org: &OrgId,
        target: SegmentId,
        expr: &SetExpr,
    ) -> Result<RemoveOutcome> {
        traced!(
            "segments.dry_run.remove_from",
            Some(org),
            Some(target),
            [],
            {
                let s = self.segments;
                s.remove_from_with(org, target, expr, true)
            }
        )
    }
}
