//! Identifiers: organizations and segments.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::domain::limits::MAX_ORG_ID_BYTES;
use crate::error::{Field, Rule, ValidationError};

/// The organization every operation is scoped to.
///
/// An `OrgId` is 1 to [`MAX_ORG_ID_BYTES`] bytes of printable text: no
/// whitespace and no control characters. Nothing ever crosses organizations:
/// a segment of one org is invisible to every other.
///
/// ```
/// use segments_engine::OrgId;
/// let org = OrgId::new("acme")?;
/// assert_eq!(org.as_str(), "acme");
/// assert!(OrgId::new("two words").is_err());
/// # Ok::<(), segments_engine::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct OrgId(String);

impl OrgId {
    /// Validates `id` and wraps it.
    ///
    /// # Errors
    /// [`ValidationError`] on field `org_id` when `id` is empty, longer than
    /// [`MAX_ORG_ID_BYTES`] bytes, or contains whitespace or control characters.
    pub fn new(id: impl Into<String>) -> Result<Self, ValidationError> {
        let id = id.into();
        let invalid = |rule| ValidationError::new(Field::OrgId, rule);
        if id.is_empty() {
            return Err(invalid(Rule::Blank));
        }
        if id.len() > MAX_ORG_ID_BYTES {
            return Err(invalid(Rule::TooLong {
                max: MAX_ORG_ID_BYTES,
                unit: "bytes",
            }));
        }
        if id.chars().any(char::is_control) {
            return Err(invalid(Rule::ControlCharacter));
        }
        if id.chars().any(char::is_whitespace) {
            return Err(invalid(Rule::Whitespace));
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OrgId").field(&self.0).finish()
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for OrgId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for OrgId {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<OrgId> for String {
    fn from(id: OrgId) -> Self {
        id.0
    }
}

impl AsRef<str> for OrgId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A segment's id: a UUID, version 7 when the crate generates it.
///
/// Version 7 UUIDs are time-ordered, which keeps B-tree inserts local. The
/// id is opaque to callers; its text form is lowercase and hyphenated
/// (`550e8400-e29b-41d4-a716-446655440000`). Parsing accepts any UUID a
/// host may already hold, in any of the forms [`Uuid`] parses.
///
/// ```
/// use segments_engine::SegmentId;
/// let id: SegmentId = "550E8400-E29B-41D4-A716-446655440000".parse()?;
/// assert_eq!(id.to_string(), "550e8400-e29b-41d4-a716-446655440000");
/// # Ok::<(), segments_engine::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct SegmentId(Uuid);

impl SegmentId {
    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// A fresh UUID v7 for the current time from the process-wide sequence
    /// ([`UuidV7::shared`](crate::clock::UuidV7::shared)): ordered after
    /// every id that sequence made before it.
    pub fn now_v7() -> Self {
        use crate::clock::{IdGenerator, UuidV7};
        UuidV7::shared().next_id(chrono::Utc::now())
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The 16 bytes of the UUID, big-endian, as stored by the SQLite backend.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Parses the text form of a UUID.
    ///
    /// # Errors
    /// [`ValidationError`] on field `segment_id` when `s` is not a UUID.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Uuid::try_parse(s).map(Self).map_err(|_| {
            ValidationError::new(Field::SegmentId, Rule::Malformed { expected: "a UUID" })
        })
    }
}

impl fmt::Debug for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentId({})", self.0.hyphenated())
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for SegmentId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<Uuid> for SegmentId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<SegmentId> for Uuid {
    fn from(id: SegmentId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_id_rules() {
        assert!(OrgId::new("acme").is_ok());
        assert!(OrgId::new("org_42:eu-west").is_ok());
        assert!(OrgId::new("é-ü").is_ok(), "printable non-ASCII is allowed");
        assert!(OrgId::new("x".repeat(MAX_ORG_ID_BYTES)).is_ok());
        let rule = |s: &str| OrgId::new(s).unwrap_err().rule().clone();
        assert_eq!(rule(""), Rule::Blank);
        assert_eq!(
            rule(&"x".repeat(MAX_ORG_ID_BYTES + 1)),
            Rule::TooLong {
                max: 128,
                unit: "bytes"
            }
        );
        // 43 three-byte characters are 129 bytes: the limit is in bytes.
        assert!(matches!(rule(&"€".repeat(43)), Rule::TooLong { .. }));
        assert_eq!(rule("a b"), Rule::Whitespace);
        assert_eq!(rule("a\u{a0}b"), Rule::Whitespace);
        assert_eq!(rule("a\u{0}b"), Rule::ControlCharacter);
        assert_eq!(rule("a\tb"), Rule::ControlCharacter);
        assert_eq!(OrgId::new("").unwrap_err().field(), Field::OrgId);
    }

    #[test]
    fn segment_id_text_form_is_lowercase_hyphenated() {
        let id = SegmentId::parse("550E8400E29B41D4A716446655440000").unwrap();
        assert_eq!(id.to_string(), "550e8400-e29b-41d4-a716-446655440000");
        assert_eq!(
            format!("{id:?}"),
            "SegmentId(550e8400-e29b-41d4-a716-446655440000)"
        );
        let err = SegmentId::parse("not-a-uuid").unwrap_err();
        assert_eq!(err.field(), Field::SegmentId);
        assert_eq!(err.to_string(), "'segment_id' must be a UUID");
    }

    #[test]
    fn generated_ids_are_v7_and_ordered() {
        let a = SegmentId::now_v7();
        let b = SegmentId::now_v7();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b, "v7 ids from one process are ordered by creation");
    }
}
