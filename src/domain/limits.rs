//! The numeric limits of the domain, as public constants.
//!
//! Every limit the crate enforces is one of these constants, so a host can
//! show them, test against them, or validate early with the same numbers.

/// Maximum length of a segment name, in characters (Unicode scalar values),
/// after surrounding whitespace is trimmed.
pub const MAX_NAME_CHARS: usize = 255;

/// Maximum length of a segment description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// Maximum length of a segment's source label, in characters.
pub const MAX_SOURCE_CHARS: usize = 64;

/// The source label given to segments whose creator sets none, as documented
/// ("Segments created via API are automatically tagged with `source: \"api\"`").
pub const DEFAULT_SOURCE: &str = "api";

/// Maximum length of an organization id, in bytes.
pub const MAX_ORG_ID_BYTES: usize = 128;

/// Maximum length of the part of a PID after `p-`, in characters.
pub const MAX_PID_HASH_CHARS: usize = 64;

/// Maximum number of PIDs in one `add_members` or `remove_members` call.
/// A larger call is refused whole with [`Error::TooLarge`](crate::Error::TooLarge).
pub const MAX_PIDS_PER_CALL: usize = 100_000;

/// Number of members in one page of the documented page API (fixed).
pub const MEMBERS_PAGE_SIZE: usize = 5_000;

/// Largest `limit` accepted by the cursor APIs (members and segments).
pub const MAX_PAGE_LIMIT: usize = 10_000;

/// The `limit` the cursor APIs use when the caller sets none.
pub const DEFAULT_PAGE_LIMIT: usize = 100;

/// Largest request body the wire adapter accepts, in bytes (16 MiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Longest `obituary_id` of a death record, in characters.
pub const MAX_OBITUARY_ID_CHARS: usize = 255;

/// Longest `obituary_url` of a death record, in characters.
pub const MAX_URL_CHARS: usize = 2_048;

/// Longest `source` or `publication_name` of a death record, in characters.
pub const MAX_LABEL_CHARS: usize = 255;

/// Most death reports in one ingestion call.
pub const MAX_DEATHS_PER_CALL: usize = 100_000;

/// Deepest nesting of a [`SetExpr`](crate::SetExpr): `(A ∪ B) − C` is 3
/// levels deep.
pub const MAX_SET_EXPR_DEPTH: usize = 8;

/// Most segments one [`SetExpr`](crate::SetExpr) may name (a segment named
/// twice counts twice).
pub const MAX_SET_EXPR_SEGMENTS: usize = 32;

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// How many PIDs [`Segments::import_members`](crate::Segments::import_members)
/// sends in one call: each batch is one atomic add.
pub const IMPORT_BATCH_SIZE: usize = 10_000;

/// How many skipped PIDs an [`ImportOutcome`](crate::ImportOutcome) lists
/// (it counts them all).
pub const MAX_IMPORT_INVALID_REPORTED: usize = 100;

/// How long an idempotency key is remembered unless the service is told
/// otherwise ([`Segments::with_idempotency_ttl`](crate::Segments::with_idempotency_ttl)):
/// 24 hours.
pub const DEFAULT_IDEMPOTENCY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Most expired idempotency keys one keyed write forgets: a store's keys
/// stay bounded without any write paying for a large clean-up.
pub const EXPIRED_KEYS_PER_WRITE: usize = 64;
