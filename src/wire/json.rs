//! Request bodies and query strings in, documented JSON out.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::limits::{MAX_SET_EXPR_DEPTH, MAX_SET_EXPR_SEGMENTS};
use crate::error::{Field, Rule, ValidationError};
use crate::{DeathRecord, Member, Segment, SegmentId, SetExpr};

/// The documented timestamp form: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
///
/// Written field by field: a page of members holds 5,000 of them, and
/// chrono's format strings are parsed anew on every call.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    use std::fmt::Write as _;
    if !(0..=9999).contains(&at.year()) {
        return at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    }
    let mut out = String::with_capacity(27);
    // A leap second's nanoseconds run past 999,999,999: keep six digits.
    let micros = (at.nanosecond() / 1_000).min(999_999);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    out
}

/// A request body: a JSON object, or a 400.
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, ValidationError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ValidationError::new(Field::Body, Rule::NotAnObject)),
    }
}

/// A required string field: absent or null is 422, another type 400.
pub(crate) fn required_str(
    body: &Map<String, Value>,
    field: Field,
) -> Result<&str, ValidationError> {
    optional_str(body, field)?.ok_or_else(|| ValidationError::new(field, Rule::Missing))
}

/// An optional string field: absent or null is `None`, another type 400.
pub(crate) fn optional_str(
    body: &Map<String, Value>,
    field: Field,
) -> Result<Option<&str>, ValidationError> {
    match body.get(field.as_str()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ValidationError::new(
            field,
            Rule::WrongType {
                expected: "a string",
            },
        )),
    }
}

/// The required `segment_id` field: a string holding a UUID.
pub(crate) fn segment_id(body: &Map<String, Value>) -> Result<SegmentId, ValidationError> {
    SegmentId::parse(required_str(body, Field::SegmentId)?)
}

/// The required `minerva_pids` field: an array of strings.
pub(crate) fn pids(body: &Map<String, Value>) -> Result<Vec<&str>, ValidationError> {
    let wrong = || {
        ValidationError::new(
            Field::MinervaPids,
            Rule::WrongType {
                expected: "an array of strings",
            },
        )
    };
    match body.get(Field::MinervaPids.as_str()) {
        None | Some(Value::Null) => Err(ValidationError::new(Field::MinervaPids, Rule::Missing)),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_str().ok_or_else(wrong)).collect(),
        Some(_) => Err(wrong()),
    }
}

/// The required `expression` field: a set expression in JSON, one of
/// `{"segment": "<id>"}`, `{"union": [e, e, …]}`, `{"intersect": [e, e, …]}`
/// (two or more) and `{"minus": [a, b]}` (`a − b`). Its
/// limits are [`SetExpr::check`]'s, checked as it is read, so no input
/// builds more than they allow.
pub(crate) fn expression(body: &Map<String, Value>) -> Result<SetExpr, ValidationError> {
    match body.get(Field::Expression.as_str()) {
        None | Some(Value::Null) => Err(ValidationError::new(Field::Expression, Rule::Missing)),
        Some(value) => {
            let expr = set_expr(value, 1)?;
            expr.check()?;
            Ok(expr)
        }
    }
}

fn set_expr(value: &Value, depth: usize) -> Result<SetExpr, ValidationError> {
    let malformed = || {
        ValidationError::new(
            Field::Expression,
            Rule::Malformed {
                expected: "an object with one of segment, union, intersect or minus",
            },
        )
    };
    let too_deep = || {
        ValidationError::new(
            Field::Expression,
            Rule::TooLong {
                max: MAX_SET_EXPR_DEPTH,
                unit: "levels deep",
            },
        )
    };
    if depth > MAX_SET_EXPR_DEPTH {
        return Err(too_deep());
    }
    let Value::Object(map) = value else {
        return Err(malformed());
    };
    let mut fields = map.iter();
    let (Some((op, operand)), None) = (fields.next(), fields.next()) else {
        return Err(malformed());
    };
    if op == "segment" {
        return match operand {
            Value::String(id) => SegmentId::parse(id).map(SetExpr::segment).map_err(|_| {
                ValidationError::new(
                    Field::Expression,
                    Rule::Malformed {
                        expected: "segment ids that are UUIDs",
                    },
                )
            }),
            _ => Err(malformed()),
        };
    }
    let max = match op.as_str() {
        "union" | "intersect" => MAX_SET_EXPR_SEGMENTS,
        "minus" => 2,
        _ => return Err(malformed()),
    };
    let Value::Array(items) = operand else {
        return Err(malformed());
    };
    if items.len() > MAX_SET_EXPR_SEGMENTS {
        return Err(ValidationError::new(
            Field::Expression,
            Rule::TooLong {
                max: MAX_SET_EXPR_SEGMENTS,
                unit: "segments named",
            },
        ));
    }
    if !(2..=max).contains(&items.len()) {
        return Err(malformed());
    }
    let operands = items
        .iter()
        .map(|item| set_expr(item, depth + 1))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(combine(op, operands))
}

/// `operands` combined by `op`: `minus` as `a − b`; a union or an
/// intersection (associative) as a balanced tree, so that a list of n
/// operands nests log₂ n levels deep, not n.
fn combine(op: &str, mut operands: Vec<SetExpr>) -> SetExpr {
    if operands.len() == 1 {
        return operands.pop().expect("one operand");
    }
    let right = operands.split_off(operands.len() / 2);
    let (a, b) = (combine(op, operands), combine(op, right));
    match op {
        "union" => a.union(b),
        "intersect" => a.intersect(b),
        _ => a.minus(b),
    }
}

/// The first value of each query parameter.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(crate) fn get(&self, field: Field) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == field.as_str())
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn segment_id(&self) -> Result<SegmentId, ValidationError> {
        SegmentId::parse(
            self.get(Field::SegmentId)
                .ok_or_else(|| ValidationError::new(Field::SegmentId, Rule::Missing))?,
        )
    }

    /// The documented `page` parameter: a whole number, however large.
    /// A number past `u64` is past the end of any segment: it is read as
    /// `u64::MAX` (a page past the end) and answered with its own digits.
    pub(crate) fn page(&self) -> Result<Option<PageParam>, ValidationError> {
        let Some(text) = self.get(Field::Page) else {
            return Ok(None);
        };
        let digits = text.strip_prefix('+').unwrap_or(text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let digits = digits.trim_start_matches('0');
            if let Ok(n) = digits.parse::<u64>() {
                return Ok(Some(PageParam::Number(n)));
            }
            if !digits.is_empty() {
                return Ok(Some(PageParam::Beyond(digits.to_owned())));
            }
            return Ok(Some(PageParam::Number(0)));
        }
        Err(ValidationError::new(
            Field::Page,
            Rule::Malformed {
                expected: "a whole number",
            },
        ))
    }

    /// An optional non-negative integer parameter.
    pub(crate) fn number(&self, field: Field) -> Result<Option<u64>, ValidationError> {
        self.get(field)
            .map(|v| {
                v.parse().map_err(|_| {
                    ValidationError::new(
                        field,
                        Rule::Malformed {
                            expected: "a whole number",
                        },
                    )
                })
            })
            .transpose()
    }
}

/// A `page` parameter ([`Query::page`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PageParam {
    /// A page that fits in `u64`.
    Number(u64),
    /// A page past `u64::MAX`: its digits, without leading zeros.
    Beyond(String),
}

/// The page a members response names: the page asked for, as a JSON
/// number, however large.
pub(crate) enum PageNumber<'a> {
    Number(u64),
    /// Digits without leading zeros ([`PageParam::Beyond`]).
    Digits(&'a str),
}

impl Serialize for PageNumber<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PageNumber::Number(n) => s.serialize_u64(*n),
            PageNumber::Digits(digits) => {
                serde_json::value::RawValue::from_string((*digits).to_owned())
                    .map_err(serde::ser::Error::custom)?
                    .serialize(s)
            }
        }
    }
}

/// `{"api_request_id", "segment_id", "request_completed_at"}`.
#[derive(Serialize)]
pub(crate) struct SegmentIdResponse<'a> {
    pub(crate) api_request_id: &'a str,
    pub(crate) segment_id: String,
    pub(crate) request_completed_at: String,
}

/// `{"api_request_id", "results": …, "request_completed_at"}`.
#[derive(Serialize)]
pub(crate) struct ResultsResponse<'a, R> {
    pub(crate) api_request_id: &'a str,
    pub(crate) results: R,
    pub(crate) request_completed_at: String,
}

#[derive(Serialize)]
pub(crate) struct AddResults<'a> {
    pub(crate) invalid_minerva_pids: &'a [String],
    pub(crate) n_redundant_additions: u64,
    pub(crate) n_added: u64,
    pub(crate) new_current_size: u64,
}

#[derive(Serialize)]
pub(crate) struct RemoveResults<'a> {
    pub(crate) invalid_minerva_pids: &'a [String],
    pub(crate) n_deleted: u64,
    pub(crate) new_current_size: u64,
}

#[derive(Serialize)]
pub(crate) struct MemberItem<'a> {
    pub(crate) minerva_pid: &'a str,
    pub(crate) first_added_at: String,
}

impl<'a> From<&'a Member> for MemberItem<'a> {
    fn from(m: &'a Member) -> Self {
        Self {
            minerva_pid: m.pid.as_str(),
            first_added_at: timestamp(m.first_added_at),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct MembersResults<'a> {
    pub(crate) items: Vec<MemberItem<'a>>,
    pub(crate) total_count: u64,
    pub(crate) page: PageNumber<'a>,
    pub(crate) list_continues: bool,
}

/// A segment's metadata (extension routes).
#[derive(Serialize)]
pub(crate) struct SegmentItem<'a> {
    pub(crate) segment_id: String,
    pub(crate) name: &'a str,
    pub(crate) description: Option<&'a str>,
    pub(crate) source: &'a str,
    pub(crate) current_size: u64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl<'a> From<&'a Segment> for SegmentItem<'a> {
    fn from(s: &'a Segment) -> Self {
        Self {
            segment_id: s.id.to_string(),
            name: &s.name,
            description: s.description.as_deref(),
            source: &s.source,
            current_size: s.current_size,
            created_at: timestamp(s.created_at),
            updated_at: timestamp(s.updated_at),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ListResults<'a> {
    pub(crate) items: Vec<SegmentItem<'a>>,
    pub(crate) next_cursor: Option<String>,
}

/// A death record, in the documented `signals/deaths` shape.
#[derive(Serialize)]
pub(crate) struct DeathItem<'a> {
    pub(crate) minerva_pid: &'a str,
    pub(crate) obituary_id: &'a str,
    pub(crate) date_of_death: String,
    pub(crate) publication_last_update_date: Option<String>,
    pub(crate) first_observed_at: String,
    pub(crate) signal_metadata: SignalItem<'a>,
}

#[derive(Serialize)]
pub(crate) struct SignalItem<'a> {
    pub(crate) source: &'a str,
    pub(crate) obituary_url: Option<&'a str>,
    pub(crate) publication_name: Option<&'a str>,
    pub(crate) confidence_score: f64,
}

impl<'a> From<&'a DeathRecord> for DeathItem<'a> {
    fn from(r: &'a DeathRecord) -> Self {
        let m = &r.signal_metadata;
        Self {
            minerva_pid: r.minerva_pid.as_str(),
            obituary_id: &r.obituary_id,
            date_of_death: r.date_of_death.format("%Y-%m-%d").to_string(),
            publication_last_update_date: r
                .publication_last_update_date
                .map(|d| d.format("%Y-%m-%d").to_string()),
            first_observed_at: timestamp(r.first_observed_at),
            signal_metadata: SignalItem {
                source: &m.source,
                obituary_url: m.obituary_url.as_deref(),
                publication_name: m.publication_name.as_deref(),
                confidence_score: m.confidence_score,
            },
        }
    }
}

/// The documented rate-limit shape; `null` means no limit on that axis.
#[derive(Serialize)]
pub(crate) struct LimitsResponse<'a> {
    pub(crate) api_request_id: &'a str,
    pub(crate) rps_limit: Option<u32>,
    pub(crate) burst_limit: Option<u32>,
    pub(crate) daily_quota: Option<u64>,
    pub(crate) daily_quota_used: Option<u64>,
    pub(crate) reset_at_utc: Option<String>,
    pub(crate) request_completed_at: String,
}

/// The documented error body; `body` is the deprecated JSON-in-a-string
/// form `{"error": …, "status_code": …}`.
#[derive(Serialize)]
pub(crate) struct ErrorResponse<'a> {
    pub(crate) api_request_id: &'a str,
    pub(crate) error_message: &'a str,
    #[serde(rename = "statusCode")]
    pub(crate) status_code: u16,
    pub(crate) body: String,
}

#[derive(Serialize)]
pub(crate) struct LegacyErrorBody<'a> {
    pub(crate) error: &'a str,
    pub(crate) status_code: u16,
}

/// Serializes a response body. The shapes above hold only strings,
/// booleans, integers and checked confidence scores (finite, 0 to 1), which
/// always serialize.
pub(crate) fn to_vec(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("response shapes always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_have_six_fractional_digits_and_a_z() {
        let at = Utc.timestamp_opt(1_705_314_645, 123_456_000).unwrap();
        assert_eq!(timestamp(at), "2024-01-15T10:30:45.123456Z");
        let whole = Utc.timestamp_opt(1_705_314_645, 0).unwrap();
        assert_eq!(timestamp(whole), "2024-01-15T10:30:45.000000Z");
        // The same as chrono's own formatting, across a spread of times.
        for secs in [
            0_i64,
            951_782_400,
            1_709_164_799,
            4_102_444_799,
            253_402_300_799,
        ] {
            for nanos in [0, 1_000, 999_999_000, 123_456_789] {
                let at = Utc.timestamp_opt(secs, nanos).unwrap();
                assert_eq!(
                    timestamp(at),
                    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                    "{at:?}"
                );
            }
        }
    }

    #[test]
    fn fields_are_told_apart_by_presence_and_type() {
        let body = object(br#"{"name": "x", "n": null, "num": 5, "pids": ["p-a", 3]}"#).unwrap();
        assert_eq!(required_str(&body, Field::Name).unwrap(), "x");
        let missing = required_str(&body, Field::Description).unwrap_err();
        assert_eq!(
            (missing.status_code(), missing.to_string().as_str()),
            (422, "Input data must contain a 'description' field")
        );
        assert!(object(b"[1, 2]").is_err());
        assert!(object(b"{not json").is_err());
        assert!(object(b"").is_err());
        let wrong = pids(&object(br#"{"minerva_pids": ["p-a", 3]}"#).unwrap()).unwrap_err();
        assert_eq!(
            (wrong.status_code(), wrong.to_string().as_str()),
            (400, "'minerva_pids' must be an array of strings")
        );
    }

    #[test]
    fn query_parameters_are_decoded() {
        let q = Query::parse(Some(
            "segment_id=550e8400-e29b-41d4-a716-446655440000&page=2&page=3&x=%20y",
        ));
        assert_eq!(
            q.number(Field::Page).unwrap(),
            Some(2),
            "the first value wins"
        );
        assert!(q.segment_id().is_ok());
        assert_eq!(Query::parse(None).get(Field::Page), None);
        let page = |q: &str| Query::parse(Some(q)).page();
        assert_eq!(page("page=7").unwrap(), Some(PageParam::Number(7)));
        assert_eq!(page("page=%2B007").unwrap(), Some(PageParam::Number(7)));
        assert_eq!(page("page=000").unwrap(), Some(PageParam::Number(0)));
        assert_eq!(
            page("page=0018446744073709551616").unwrap(),
            Some(PageParam::Beyond("18446744073709551616".to_owned())),
            "past u64: the digits, without leading zeros"
        );
        for bad in [
            "page=",
            "page=%2B",
            "page=-1",
            "page=1.5",
            "page=%201",
            "page=1e3",
        ] {
            assert!(page(bad).is_err(), "{bad} is not a whole number");
        }
        assert_eq!(
            Query::parse(Some("page=two"))
                .number(Field::Page)
                .unwrap_err()
                .status_code(),
            422
        );
    }
}
