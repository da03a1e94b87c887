//! Set expressions: a segment made of others, by union, intersection and
//! difference, nested.

use crate::SegmentId;
use crate::domain::limits::{MAX_SET_EXPR_DEPTH, MAX_SET_EXPR_SEGMENTS};
use crate::error::{Field, Rule, ValidationError};

/// An expression over an org's segments: the people it stands for are the
/// active members of the segments it names, combined by union (`∪`),
/// intersection (`∩`) and difference (`−`), nested to any depth up to
/// [`MAX_SET_EXPR_DEPTH`](crate::limits::MAX_SET_EXPR_DEPTH).
///
/// ```
/// use segments_engine::{SegmentId, SetExpr};
/// # let (a, b, c) = (SegmentId::now_v7(), SegmentId::now_v7(), SegmentId::now_v7());
/// // (A ∪ B) − C
/// let expr = SetExpr::segment(a).union(SetExpr::segment(b)).minus(SetExpr::segment(c));
/// assert_eq!(expr.depth(), 3);
/// assert_eq!(expr.segments().len(), 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SetExpr {
    /// The active members of one segment.
    Segment(SegmentId),
    /// Everyone in either.
    Union(Box<SetExpr>, Box<SetExpr>),
    /// Everyone in both.
    Intersect(Box<SetExpr>, Box<SetExpr>),
    /// Everyone in the first but not in the second.
    Minus(Box<SetExpr>, Box<SetExpr>),
}

impl SetExpr {
    /// The active members of segment `id`.
    pub fn segment(id: SegmentId) -> Self {
        Self::Segment(id)
    }

    /// `self ∪ other`.
    pub fn union(self, other: SetExpr) -> Self {
        Self::Union(Box::new(self), Box::new(other))
    }

    /// `self ∩ other`.
    pub fn intersect(self, other: SetExpr) -> Self {
        Self::Intersect(Box::new(self), Box::new(other))
    }

    /// `self − other`.
    pub fn minus(self, other: SetExpr) -> Self {
        Self::Minus(Box::new(self), Box::new(other))
    }

    /// How deeply the expression nests: 1 for a single segment.
    pub fn depth(&self) -> usize {
        match self {
            Self::Segment(_) => 1,
            Self::Union(a, b) | Self::Intersect(a, b) | Self::Minus(a, b) => {
                1 + a.depth().max(b.depth())
            }
        }
    }

    /// The segments the expression names, each once, in id order.
    pub fn segments(&self) -> Vec<SegmentId> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn collect(&self, out: &mut Vec<SegmentId>) {
        match self {
            Self::Segment(id) => out.push(*id),
            Self::Union(a, b) | Self::Intersect(a, b) | Self::Minus(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// How many places name a segment (a segment named twice counts
    /// twice).
    fn leaves(&self) -> usize {
        match self {
            Self::Segment(_) => 1,
            Self::Union(a, b) | Self::Intersect(a, b) | Self::Minus(a, b) => {
                a.leaves() + b.leaves()
            }
        }
    }

    /// Checks the limits: at most
    /// [`MAX_SET_EXPR_DEPTH`](crate::limits::MAX_SET_EXPR_DEPTH) levels
    /// and [`MAX_SET_EXPR_SEGMENTS`](crate::limits::MAX_SET_EXPR_SEGMENTS)
    /// segments named.
    ///
    /// # Errors
    /// [`ValidationError`] on field `expression`.
    pub fn check(&self) -> Result<(), ValidationError> {
        if self.depth() > MAX_SET_EXPR_DEPTH {
            return Err(ValidationError::new(
                Field::Expression,
                Rule::TooLong {
                    max: MAX_SET_EXPR_DEPTH,
                    unit: "levels deep",
                },
            ));
        }
        if self.leaves() > MAX_SET_EXPR_SEGMENTS {
            return Err(ValidationError::new(
                Field::Expression,
                Rule::TooLong {
                    max: MAX_SET_EXPR_SEGMENTS,
                    unit: "segments named",
                },
            ));
        }
        Ok(())
    }
}

/// Where the members of a set operation came from, as its ledger entries
/// record it ([`Change::provenance`](crate::Change::provenance)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Provenance {
    /// The segments the expression named, each once, in id order.
    pub sources: Vec<SegmentId>,
    /// The org's ledger seq the sources were read at: their members were
    /// as every entry up to this one left them.
    pub read_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> SegmentId {
        SegmentId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn depth_and_segments() {
        let e = SetExpr::segment(id(3))
            .union(SetExpr::segment(id(1)))
            .minus(SetExpr::segment(id(3)).intersect(SetExpr::segment(id(2))));
        assert_eq!(e.depth(), 3);
        assert_eq!(e.segments(), [id(1), id(2), id(3)], "each once, in order");
        assert!(e.check().is_ok());
    }

    #[test]
    fn limits_are_checked() {
        let mut deep = SetExpr::segment(id(1));
        for _ in 1..MAX_SET_EXPR_DEPTH {
            deep = deep.union(SetExpr::segment(id(2)));
        }
        assert_eq!(deep.depth(), MAX_SET_EXPR_DEPTH);
        assert!(deep.check().is_ok(), "the limit is inclusive");
        let too_deep = deep.union(SetExpr::segment(id(3)));
        let err = too_deep.check().unwrap_err();
        assert_eq!(err.field(), Field::Expression);
        assert_eq!(
            err.to_string(),
            format!("'expression' must be at most {MAX_SET_EXPR_DEPTH} levels deep")
        );
        // Wide but shallow: many segments named.
        let mut wide: Vec<SetExpr> = (0..=MAX_SET_EXPR_SEGMENTS as u128)
            .map(|n| SetExpr::segment(id(n)))
            .collect();
        while wide.len() > 1 {
            let b = wide.pop().unwrap();
            let a = wide.pop().unwrap();
            wide.insert(0, a.union(b));
        }
        let err = wide[0].check().unwrap_err();
        assert!(err.to_string().contains("segments named"), "{err}");
    }
}
