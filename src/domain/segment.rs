//! Segments: what is stored, what a caller asks for, and list cursors.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::domain::ids::SegmentId;
use crate::error::{Field, Rule, ValidationError};

/// A segment as stored: a named, per-organization list of people.
///
/// Timestamps are UTC and carry at most microseconds, so every backend
/// returns exactly what it stored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Segment {
    /// The segment's id (UUID v7 when the crate generated it).
    pub id: SegmentId,
    /// The name as given at creation or last rename, trimmed.
    pub name: String,
    /// The optional description.
    pub description: Option<String>,
    /// Where the segment came from: `"api"` unless the creator set a label.
    pub source: String,
    /// The number of active members, exact and O(1) to read.
    pub current_size: u64,
    /// When the segment was created.
    pub created_at: DateTime<Utc>,
    /// When the segment's name or description last changed (its creation
    /// time until then). Membership changes do not move it.
    pub updated_at: DateTime<Utc>,
}

impl Segment {
    /// The cursor that lists the segments created after this one.
    pub fn cursor(&self) -> SegmentCursor {
        SegmentCursor {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// What a caller asks for when creating a segment; validated by
/// [`Segments::create`](crate::Segments::create).
///
/// ```
/// use segments_engine::NewSegment;
/// let new = NewSegment::new("Q1 2024 Enterprise Prospects")
///     .description("500+ employees, tech")
///     .source("crm-import");
/// assert_eq!(new.name(), "Q1 2024 Enterprise Prospects");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSegment {
    name: String,
    description: Option<String>,
    source: Option<String>,
}

impl NewSegment {
    /// A segment named `name` (trimmed and checked at creation), with no
    /// description and the default source `"api"`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            source: None,
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the source label (default [`DEFAULT_SOURCE`](crate::limits::DEFAULT_SOURCE)).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn into_parts(self) -> (String, Option<String>, Option<String>) {
        (self.name, self.description, self.source)
    }
}

/// A position in the list of an org's segments, in creation order
/// (`created_at`, then id).
///
/// The cursor stays valid when the segment it came from is deleted. Its text
/// form, for hosts that hand it to clients, is
/// `{created_at as Unix microseconds}.{id as 32 hex digits}`.
///
/// ```
/// use segments_engine::SegmentCursor;
/// let c: SegmentCursor = "1705314645123456.0190a1b2c3d47e5f8a9b0c1d2e3f4a5b".parse()?;
/// assert_eq!(c.to_string().parse::<SegmentCursor>()?, c);
/// # Ok::<(), segments_engine::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentCursor {
    created_at: DateTime<Utc>,
    id: SegmentId,
}

impl SegmentCursor {
    /// The cursor just after the segment created at `created_at` with `id`.
    pub fn new(created_at: DateTime<Utc>, id: SegmentId) -> Self {
        Self { created_at, id }
    }

    /// Creation time of the last segment seen.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// Id of the last segment seen.
    pub fn id(&self) -> SegmentId {
        self.id
    }
}

impl fmt::Display for SegmentCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.created_at.timestamp_micros(),
            self.id.as_uuid().simple()
        )
    }
}

impl FromStr for SegmentCursor {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || {
            ValidationError::new(
                Field::Cursor,
                Rule::Malformed {
                    expected: "a cursor returned by a previous list call",
                },
            )
        };
        let (micros, id) = s.split_once('.').ok_or_else(malformed)?;
        let micros: i64 = micros.parse().map_err(|_| malformed())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(malformed)?;
        if id.len() != 32 {
            return Err(malformed());
        }
        let id = SegmentId::parse(id).map_err(|_| malformed())?;
        Ok(Self { created_at, id })
    }
}

/// One page of an org's segments, in creation order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentPage {
    /// The segments of this page.
    pub segments: Vec<Segment>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<SegmentCursor>,
}
