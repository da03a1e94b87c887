//! The one error type of the crate, with its documented status codes.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::SegmentId;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, in the domain's words.
///
/// Each variant knows the status number the documented HTTP API gives it
/// ([`status_code`](Error::status_code)) and the message it shows to API
/// clients ([`public_message`](Error::public_message)), so any host can map
/// it. Backend failures keep their source chained
/// ([`std::error::Error::source`]); they are never turned into strings.
///
/// ```
/// use segments_engine::{Error, MemoryStore, NewSegment, OrgId, Segments};
/// let segments = Segments::new(MemoryStore::new());
/// let org = OrgId::new("acme")?;
/// segments.create(&org, NewSegment::new("Q1 Leads"))?;
/// let err = segments.create(&org, NewSegment::new(" q1   leads ")).unwrap_err();
/// assert!(matches!(err, Error::DuplicateName { .. }));
/// assert_eq!(err.status_code(), 404); // as documented, not 409
/// assert_eq!(err.to_string(), "Segment name q1   leads already exists");
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input broke a rule: which field and which rule is in the
    /// [`ValidationError`]. Nothing was changed.
    #[error(transparent)]
    Invalid(#[from] ValidationError),

    /// Another segment of the org already has a name with the same key.
    /// Documented with status 404.
    #[error("Segment name {name} already exists")]
    DuplicateName {
        /// The name that was asked for, trimmed.
        name: String,
    },

    /// No segment with this id in this org (it may exist in another org; that
    /// is not said).
    #[error("Segment {id} not found")]
    NotFound {
        /// The id asked for.
        id: SegmentId,
    },

    /// The request carried no API key or an unknown one.
    #[error("Unauthorized")]
    Unauthorized,

    /// The org is over its request rate.
    #[error("You reached your total request-rate limit, please contact help@minerva.io for help")]
    RateLimited {
        /// How long to wait before the next request can succeed.
        retry_after: Duration,
    },

    /// A call or body over a documented size limit. Nothing was applied.
    #[error("More than {limit} {what} in request")]
    TooLarge {
        /// What was counted (`minerva_pids`, `bytes`).
        what: &'static str,
        /// The largest accepted count.
        limit: usize,
    },

    /// The idempotency key was used before, in this org, for a call with
    /// other input. Nothing was applied.
    #[error("Idempotency key {key} was used with a different request")]
    IdempotencyConflict {
        /// The key.
        key: String,
    },

    /// A call with the same idempotency key is being applied now; try again
    /// shortly to get its outcome. Nothing was applied.
    #[error("A request with idempotency key {key} is in progress")]
    IdempotencyInProgress {
        /// The key.
        key: String,
    },

    /// The database was written by a newer version of this crate. It was
    /// left untouched.
    #[error(
        "database schema version {found} is newer than the newest this crate knows ({supported})"
    )]
    SchemaTooNew {
        /// The schema version found in the database.
        found: i64,
        /// The newest schema version this crate knows.
        supported: i64,
    },

    /// The storage backend failed. What kind of failure is in `kind`; the
    /// backend's own error is chained as the source. Nothing was changed.
    #[error("storage failure: {kind}")]
    Storage {
        /// The kind of failure, for callers that react to some (retry when
        /// busy, alert when full).
        kind: StorageFailure,
        /// What the backend reported.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
}

/// The kinds of [`Error::Storage`], as a backend classifies its failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageFailure {
    /// The database cannot be written: a read-only file, directory or
    /// mount, or a PostgreSQL server that only reads (a hot standby).
    ReadOnly,
    /// The disk, or a size limit of the database, is full.
    Full,
    /// The file is not a database, or is damaged.
    Corrupt,
    /// Another connection held a lock for longer than the store waits.
    Busy,
    /// The database file cannot be opened.
    CannotOpen,
    /// The operating system failed to read or write the file.
    Io,
    /// A statement ran past the store's time limit and was cancelled
    /// (PostgreSQL's `statement_timeout`).
    Timeout,
    /// The database server cannot be reached: it is down, restarting,
    /// has no room for another connection, or the connection to it was
    /// lost.
    ///
    /// A write that fails this way may have committed or not (the
    /// connection can drop while the commit is on its way): to retry it
    /// safely, make it with an idempotency key
    /// ([`Segments::with_idempotency_key`](crate::Segments::with_idempotency_key)),
    /// whose retry returns the first outcome if there was one.
    Unavailable,
    /// Any other failure of the backend.
    Other,
}

impl fmt::Display for StorageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReadOnly => "the database is read-only",
            Self::Full => "the disk or the database is full",
            Self::Corrupt => "the database file is damaged or not a database",
            Self::Busy => "the database stayed locked by another connection",
            Self::CannotOpen => "the database file cannot be opened",
            Self::Io => "reading or writing the database file failed",
            Self::Timeout => "a statement ran past its time limit",
            Self::Unavailable => "the database server cannot be reached",
            Self::Other => "the storage backend failed",
        })
    }
}

impl Error {
    /// Wraps a backend failure of no particular kind, keeping it as the
    /// source.
    pub fn storage(source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Self::storage_failure(StorageFailure::Other, source)
    }

    /// Wraps a backend failure of a known kind, keeping it as the source.
    pub fn storage_failure(
        kind: StorageFailure,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Self::Storage {
            kind,
            source: source.into(),
        }
    }

    /// The kind of a storage failure; `None` for other errors.
    pub fn storage_kind(&self) -> Option<StorageFailure> {
        match self {
            Self::Storage { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The HTTP status the documented API gives this error.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Invalid(e) => e.status_code(),
            Self::DuplicateName { .. } | Self::NotFound { .. } => 404,
            Self::IdempotencyConflict { .. } => 422,
            Self::IdempotencyInProgress { .. } => 409,
            Self::Unauthorized => 401,
            Self::RateLimited { .. } => 429,
            Self::TooLarge { .. } => 413,
            Self::SchemaTooNew { .. } | Self::Storage { .. } => 500,
        }
    }

    /// The message an API client may see: the documented text for domain
    /// errors, and only `Internal server error` for backend failures, whose
    /// details must not leak.
    pub fn public_message(&self) -> Cow<'static, str> {
        match self {
            Self::SchemaTooNew { .. } | Self::Storage { .. } => {
                Cow::Borrowed("Internal server error")
            }
            Self::Unauthorized => Cow::Borrowed("Unauthorized"),
            other => Cow::Owned(other.to_string()),
        }
    }
}

/// Which input field a [`ValidationError`] is about. Its
/// [`as_str`](Field::as_str) is the documented API's field name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The request body as a whole.
    Body,
    /// A segment's name.
    Name,
    /// A segment's description.
    Description,
    /// A segment's source label.
    Source,
    /// A segment id.
    SegmentId,
    /// An organization id.
    OrgId,
    /// A page number of the documented page API.
    Page,
    /// A page size of a cursor API.
    Limit,
    /// A cursor of a cursor API.
    Cursor,
    /// The list of PIDs of a member operation.
    MinervaPids,
    /// The PID of a death record.
    MinervaPid,
    /// A death record's obituary id.
    ObituaryId,
    /// A death record's date of death.
    DateOfDeath,
    /// A death record's publication update date.
    PublicationLastUpdateDate,
    /// A death signal's source.
    SignalSource,
    /// A death signal's obituary link.
    ObituaryUrl,
    /// A death signal's publication name.
    PublicationName,
    /// A death signal's confidence.
    ConfidenceScore,
    /// The database schema a store is told to use.
    Schema,
    /// A set expression ([`SetExpr`](crate::SetExpr)).
    Expression,
    /// An idempotency key.
    IdempotencyKey,
}

impl Field {
    /// The field's name in the documented API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::Name => "name",
            Self::Description => "description",
            Self::Source => "source",
            Self::SegmentId => "segment_id",
            Self::OrgId => "org_id",
            Self::Page => "page",
            Self::Limit => "limit",
            Self::Cursor => "cursor",
            Self::MinervaPids => "minerva_pids",
            Self::MinervaPid => "minerva_pid",
            Self::ObituaryId => "obituary_id",
            Self::DateOfDeath => "date_of_death",
            Self::PublicationLastUpdateDate => "publication_last_update_date",
            Self::SignalSource => "source",
            Self::ObituaryUrl => "obituary_url",
            Self::PublicationName => "publication_name",
            Self::ConfidenceScore => "confidence_score",
            Self::Schema => "schema",
            Self::Expression => "expression",
            Self::IdempotencyKey => "idempotency_key",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which rule a [`ValidationError`] broke.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// The body is not a JSON object (status 400).
    NotAnObject,
    /// The field has the wrong JSON type (status 400).
    WrongType {
        /// What was expected, with its article: `a string`.
        expected: &'static str,
    },
    /// The required field is absent or null.
    Missing,
    /// Empty, or only whitespace.
    Blank,
    /// Longer than the limit.
    TooLong {
        /// The limit.
        max: usize,
        /// What the limit counts: `characters` or `bytes`.
        unit: &'static str,
    },
    /// Contains a control character.
    ControlCharacter,
    /// Contains a NUL character.
    NulCharacter,
    /// Contains whitespace.
    Whitespace,
    /// Not of the expected form.
    Malformed {
        /// The expected form, with its article: `a UUID`.
        expected: &'static str,
    },
    /// A real number outside its range (or not a number at all).
    NotBetween {
        /// The smallest accepted value, as written in messages.
        min: &'static str,
        /// The largest accepted value, as written in messages.
        max: &'static str,
    },
    /// A number outside its range.
    OutOfRange {
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value, if any.
        max: Option<u64>,
    },
}

/// Input that broke a rule: names the field and the rule.
///
/// Its `Display` is the precise sentence the wire adapter shows, for example
/// `Input data must contain a 'name' field` or
/// `'name' must be at most 255 characters`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ValidationError {
    field: Field,
    rule: Rule,
}

impl ValidationError {
    /// `field` broke `rule`.
    pub fn new(field: Field, rule: Rule) -> Self {
        Self { field, rule }
    }

    /// The field at fault.
    pub fn field(&self) -> Field {
        self.field
    }

    /// The rule it broke.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// 400 for a body that is not an object or a field of the wrong type,
    /// 422 for a missing or invalid value, as documented.
    pub fn status_code(&self) -> u16 {
        match self.rule {
            Rule::NotAnObject | Rule::WrongType { .. } => 400,
            _ => 422,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field.as_str();
        match &self.rule {
            Rule::NotAnObject => f.write_str("Request body must be a JSON object"),
            Rule::WrongType { expected } | Rule::Malformed { expected } => {
                write!(f, "'{field}' must be {expected}")
            }
            Rule::Missing => write!(f, "Input data must contain a '{field}' field"),
            Rule::Blank => write!(f, "'{field}' must not be empty or only whitespace"),
            Rule::TooLong { max, unit } => write!(f, "'{field}' must be at most {max} {unit}"),
            Rule::ControlCharacter => write!(f, "'{field}' must not contain control characters"),
            Rule::NulCharacter => write!(f, "'{field}' must not contain NUL characters"),
            Rule::Whitespace => write!(f, "'{field}' must not contain whitespace"),
            Rule::NotBetween { min, max } => write!(f, "'{field}' must be between {min} and {max}"),
            Rule::OutOfRange { min, max: None } => write!(f, "'{field}' must be at least {min}"),
            Rule::OutOfRange {
                min,
                max: Some(max),
            } => {
                write!(f, "'{field}' must be between {min} and {max}")
            }
        }
    }
}

impl StdError for ValidationError {}

/// An error and its causes, each in full, `: `-separated: for logs, and
/// for the text of errors (a pool's) that keep no source.
#[cfg(any(feature = "tracing", feature = "postgres"))]
pub(crate) fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_messages_and_status_codes() {
        let missing = Error::from(ValidationError::new(Field::Name, Rule::Missing));
        assert_eq!(
            missing.to_string(),
            "Input data must contain a 'name' field"
        );
        assert_eq!(missing.status_code(), 422);
        let not_object = ValidationError::new(Field::Body, Rule::NotAnObject);
        assert_eq!(not_object.to_string(), "Request body must be a JSON object");
        assert_eq!(not_object.status_code(), 400);
        let wrong = ValidationError::new(
            Field::Name,
            Rule::WrongType {
                expected: "a string",
            },
        );
        assert_eq!(wrong.to_string(), "'name' must be a string");
        assert_eq!(wrong.status_code(), 400);
        let page = ValidationError::new(Field::Page, Rule::OutOfRange { min: 1, max: None });
        assert_eq!(page.to_string(), "'page' must be at least 1");
        assert_eq!(page.status_code(), 422);
        let dup = Error::DuplicateName {
            name: "Q1 2024 Enterprise Leads".into(),
        };
        assert_eq!(
            dup.to_string(),
            "Segment name Q1 2024 Enterprise Leads already exists"
        );
        assert_eq!(dup.status_code(), 404);
        let id = SegmentId::parse("550e8400-e29b-41d4-a716-446655440000").unwrap();
        assert_eq!(
            Error::NotFound { id }.to_string(),
            "Segment 550e8400-e29b-41d4-a716-446655440000 not found"
        );
        let big = Error::TooLarge {
            what: "minerva_pids",
            limit: 100_000,
        };
        assert_eq!(big.to_string(), "More than 100000 minerva_pids in request");
        assert_eq!(big.status_code(), 413);
        assert_eq!(Error::Unauthorized.status_code(), 401);
        let limited = Error::RateLimited {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(limited.status_code(), 429);
        assert_eq!(
            limited.to_string(),
            "You reached your total request-rate limit, please contact help@minerva.io for help"
        );
    }

    #[test]
    fn storage_errors_chain_their_source_and_never_leak_it() {
        let io = std::io::Error::other("disk on fire at /secret/path");
        let err = Error::storage(io);
        assert_eq!(err.status_code(), 500);
        assert_eq!(err.public_message(), "Internal server error");
        let source = err.source().expect("the source is chained");
        assert_eq!(source.to_string(), "disk on fire at /secret/path");
        assert!(
            source.downcast_ref::<std::io::Error>().is_some(),
            "the source keeps its type"
        );
    }
}
