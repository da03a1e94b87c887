//! Set operations: the members of an expression over segments, computed
//! from the rosters, and written to a target.

use std::cmp::Ordering;

use super::ledger::Origin;
use super::{Contents, members};
use crate::store::{SegmentInsert, Stamp, StoreAddOutcome, StoreRemoveOutcome};
use crate::{OrgId, Pid, Provenance, Result, Segment, SegmentId, SetExpr};

impl Contents {
    /// Checks that `org` has every source of `expr`, naming the first
    /// missing one in id order.
    fn check_sources(&self, org: &OrgId, expr: &SetExpr) -> Result<Vec<SegmentId>> {
        let sources = expr.segments();
        for &id in &sources {
            self.stored(org, id)?;
        }
        Ok(sources)
    }

    /// The members of `expr`, in PID order, and the provenance of entries
    /// made from them. Call after [`Contents::check_sources`].
    fn evaluate(
        &self,
        org_id: &OrgId,
        expr: &SetExpr,
        sources: Vec<SegmentId>,
    ) -> (Vec<Pid>, Provenance) {
        let org = &self.orgs[org_id];
        let members = eval(self, expr).into_iter().cloned().collect();
        let provenance = Provenance {
            sources,
            read_at: org.ledger.last_seq(),
        };
        (members, provenance)
    }

    pub(super) fn create_from(
        &mut self,
        org: &OrgId,
        new: SegmentInsert,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        let sources = self.check_sources(org, expr)?;
        let (pids, provenance) = self.evaluate(org, expr, sources);
        let segment = self.insert_segment(org, new, stamp)?;
        let id = segment.id;
        let (org, stored) = self.stored_mut(org, id)?;
        let origin = org.ledger.origin(provenance);
        let added = members::add(org, stored, id, &pids, stamp, origin);
        Ok(Segment {
            current_size: added.new_current_size,
            ..segment
        })
    }

    pub(super) fn add_from(
        &mut self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreAddOutcome> {
        let (pids, origin) = self.prepare(org, id, expr, stamp)?;
        let (org, stored) = self.stored_mut(org, id)?;
        Ok(members::add(org, stored, id, &pids, stamp, origin))
    }

    pub(super) fn remove_from(
        &mut self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome> {
        let (pids, origin) = self.prepare(org, id, expr, stamp)?;
        let (org, stored) = self.stored_mut(org, id)?;
        members::remove(org, stored, id, &pids, stamp, origin)
    }

    /// Checks the target and the sources, computes the members of `expr`
    /// and records the provenance their entries will name (nothing for a
    /// dry run, which records nothing).
    fn prepare(
        &mut self,
        org_id: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<(Vec<Pid>, Origin)> {
        self.stored(org_id, id)?;
        let sources = self.check_sources(org_id, expr)?;
        let (pids, provenance) = self.evaluate(org_id, expr, sources);
        let origin = if stamp.dry_run || pids.is_empty() {
            Origin::NONE
        } else {
            self.orgs
                .get_mut(org_id)
                .expect("checked above")
                .ledger
                .origin(provenance)
        };
        Ok((pids, origin))
    }
}

/// The members of `expr`, in PID order, each once.
fn eval<'s>(state: &'s Contents, expr: &SetExpr) -> Vec<&'s Pid> {
    match expr {
        SetExpr::Segment(id) => {
            let mut pids: Vec<&Pid> = state.segments[id]
                .members
                .active
                .iter_from(None)
                .map(|(_, pid)| pid)
                .collect();
            pids.sort_unstable();
            pids
        }
        SetExpr::Union(a, b) => merge(eval(state, a), eval(state, b), true, true, true),
        SetExpr::Intersect(a, b) => merge(eval(state, a), eval(state, b), false, true, false),
        SetExpr::Minus(a, b) => merge(eval(state, a), eval(state, b), true, false, false),
    }
}

/// Two sorted sets walked together: keeps what is only in `a`, in both, or
/// only in `b`, as asked.
fn merge<'s>(
    a: Vec<&'s Pid>,
    b: Vec<&'s Pid>,
    only_a: bool,
    both: bool,
    only_b: bool,
) -> Vec<&'s Pid> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Less => {
                    let x = a.next().unwrap();
                    if only_a {
                        out.push(x);
                    }
                }
                Ordering::Greater => {
                    let y = b.next().unwrap();
                    if only_b {
                        out.push(y);
                    }
                }
                Ordering::Equal => {
                    let x = a.next().unwrap();
                    b.next();
                    if both {
                        out.push(x);
                    }
                }
            },
            (Some(_), None) => {
                let x = a.next().unwrap();
                if only_a {
                    out.push(x);
                }
            }
            (None, Some(_)) => {
                let y = b.next().unwrap();
                if only_b {
                    out.push(y);
                }
            }
            (None, None) => return out,
        }
    }
}
