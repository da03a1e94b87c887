//! Death signals: obituary records of people, and what a segment sees of them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::pid::Pid;
use crate::error::{Field, Rule, ValidationError};

use crate::domain::limits::{MAX_LABEL_CHARS, MAX_OBITUARY_ID_CHARS, MAX_URL_CHARS};

/// Where a death signal came from and how sure it is, in the documented
/// shape.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SignalMetadata {
    /// The kind of source (`obituary_database`).
    pub source: String,
    /// Where the obituary can be read.
    pub obituary_url: Option<String>,
    /// The publication that printed it.
    pub publication_name: Option<String>,
    /// How sure the match is, from 0 to 1.
    pub confidence_score: f64,
}

/// A death record as a host reports it, before it is checked:
/// [`Segments::ingest_deaths`](crate::Segments::ingest_deaths) turns each
/// into a [`DeathRecord`] or rejects it with a reason.
#[derive(Clone, Debug, PartialEq)]
pub struct DeathReport {
    /// The person's PID.
    pub minerva_pid: String,
    /// The obituary's id: the record's identity. Reporting it again updates
    /// the record.
    pub obituary_id: String,
    /// `YYYY-MM-DD`.
    pub date_of_death: String,
    /// `YYYY-MM-DD`, if the publication says.
    pub publication_last_update_date: Option<String>,
    /// When the signal was first detected; the time of ingestion when `None`.
    /// Kept from the first report of an obituary.
    pub first_observed_at: Option<DateTime<Utc>>,
    /// Source, link and confidence.
    pub signal_metadata: SignalMetadata,
}

/// A checked death record, as stored and as the documented
/// `signals/deaths` route shows it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeathRecord {
    /// The person.
    pub minerva_pid: Pid,
    /// The obituary's id.
    pub obituary_id: String,
    /// The date of death.
    pub date_of_death: NaiveDate,
    /// When the publication last updated it.
    pub publication_last_update_date: Option<NaiveDate>,
    /// When the signal was first detected, truncated to microseconds.
    pub first_observed_at: DateTime<Utc>,
    /// Source, link and confidence.
    pub signal_metadata: SignalMetadata,
}

/// A record refused by [`Segments::ingest_deaths`](crate::Segments::ingest_deaths).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedDeath {
    /// Its position in the batch, from 0.
    pub index: usize,
    /// Its `obituary_id` as given.
    pub obituary_id: String,
    /// Which field broke which rule.
    pub reason: ValidationError,
}

/// What a batch of death reports did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeathsIngested {
    /// Obituaries seen for the first time.
    pub n_inserted: u64,
    /// Obituaries already known, now updated (their `first_observed_at` and
    /// feed position kept).
    pub n_updated: u64,
    /// Reports refused, each with its reason; the rest were stored.
    pub rejected: Vec<RejectedDeath>,
}

/// A position in the feed of death records, in the order obituaries were
/// first ingested. Its text form is a number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeathCursor(pub(crate) u64);

impl DeathCursor {
    /// The start of the feed: every record comes after it.
    pub const START: Self = Self(0);

    /// The cursor just after the record ingested `n`-th (from 1).
    pub fn new(n: u64) -> Self {
        Self(n)
    }

    /// The position as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for DeathCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for DeathCursor {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self).map_err(|_| {
            ValidationError::new(
                Field::Cursor,
                Rule::Malformed {
                    expected: "a cursor returned by a previous death-signals call",
                },
            )
        })
    }
}

/// Death records of a segment's members, newer than a cursor, and where
/// the next read starts: what
/// [`Segments::death_signals_since`](crate::Segments::death_signals_since)
/// returns, as the store read it
/// ([`SegmentStore::death_signals`](crate::SegmentStore::death_signals)).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeathSignals {
    /// The records, in feed order.
    pub records: Vec<DeathRecord>,
    /// The cursor to pass next time: after the last record when the page
    /// is full (`limit` records), otherwise the end of the death feed as
    /// this read saw it (never before the cursor given), so that the next
    /// poll reads only what entered the feed since and does not look again
    /// at records of people who are not members.
    pub next: DeathCursor,
}

fn date(field: Field, s: &str) -> Result<NaiveDate, ValidationError> {
    // Exactly YYYY-MM-DD: chrono alone would take "2023-1-5".
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shaped
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            ValidationError::new(
                field,
                Rule::Malformed {
                    expected: "a date YYYY-MM-DD",
                },
            )
        })
}

fn text(field: Field, s: &str, max: usize, required: bool) -> Result<(), ValidationError> {
    let invalid = |rule| ValidationError::new(field, rule);
    if required && s.trim().is_empty() {
        return Err(invalid(Rule::Blank));
    }
    if s.chars().count() > max {
        return Err(invalid(Rule::TooLong {
            max,
            unit: "characters",
        }));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(Rule::ControlCharacter));
    }
    Ok(())
}

impl DeathReport {
    /// Checks every field; `now` stands in for a missing `first_observed_at`.
    pub(crate) fn check(self, now: DateTime<Utc>) -> Result<DeathRecord, ValidationError> {
        let minerva_pid = Pid::parse(&self.minerva_pid)
            .map_err(|e| ValidationError::new(Field::MinervaPid, e.rule().clone()))?;
        text(
            Field::ObituaryId,
            &self.obituary_id,
            MAX_OBITUARY_ID_CHARS,
            true,
        )?;
        let date_of_death = date(Field::DateOfDeath, &self.date_of_death)?;
        let publication_last_update_date = self
            .publication_last_update_date
            .as_deref()
            .map(|d| date(Field::PublicationLastUpdateDate, d))
            .transpose()?;
        let m = &self.signal_metadata;
        text(Field::SignalSource, &m.source, MAX_LABEL_CHARS, true)?;
        if let Some(url) = &m.obituary_url {
            text(Field::ObituaryUrl, url, MAX_URL_CHARS, false)?;
        }
        if let Some(name) = &m.publication_name {
            text(Field::PublicationName, name, MAX_LABEL_CHARS, false)?;
        }
        if !(0.0..=1.0).contains(&m.confidence_score) {
            return Err(ValidationError::new(
                Field::ConfidenceScore,
                Rule::NotBetween { min: "0", max: "1" },
            ));
        }
        Ok(DeathRecord {
            minerva_pid,
            obituary_id: self.obituary_id,
            date_of_death,
            publication_last_update_date,
            first_observed_at: crate::clock::truncate_to_micros(
                self.first_observed_at.unwrap_or(now),
            ),
            signal_metadata: self.signal_metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn report() -> DeathReport {
        DeathReport {
            minerva_pid: "p-a1b2c3d4e5f6".into(),
            obituary_id: "obit-xyz789".into(),
            date_of_death: "2023-12-15".into(),
            publication_last_update_date: Some("2023-12-18".into()),
            first_observed_at: Some(Utc.with_ymd_and_hms(2023, 12, 20, 8, 30, 0).unwrap()),
            signal_metadata: SignalMetadata {
                source: "obituary_database".into(),
                obituary_url: Some("https://example.com/obituary/xyz789".into()),
                publication_name: Some("Local News".into()),
                confidence_score: 0.95,
            },
        }
    }

    #[test]
    fn the_documented_record_is_accepted() {
        let now = Utc::now();
        let record = report().check(now).unwrap();
        assert_eq!(
            record.date_of_death,
            NaiveDate::from_ymd_opt(2023, 12, 15).unwrap()
        );
        assert_eq!(
            record.first_observed_at,
            Utc.with_ymd_and_hms(2023, 12, 20, 8, 30, 0).unwrap()
        );
        let unobserved = DeathReport {
            first_observed_at: None,
            ..report()
        };
        assert_eq!(
            unobserved.check(now).unwrap().first_observed_at,
            crate::clock::truncate_to_micros(now)
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let now = Utc::now();
        let field = |r: DeathReport| r.check(now).unwrap_err().field();
        assert_eq!(
            field(DeathReport {
                minerva_pid: "p-BAD".into(),
                ..report()
            }),
            Field::MinervaPid
        );
        assert_eq!(
            field(DeathReport {
                obituary_id: " ".into(),
                ..report()
            }),
            Field::ObituaryId
        );
        for bad in [
            "2023-13-01",
            "2023-02-30",
            "2023-1-5",
            "15/12/2023",
            "",
            "2023-12-15T00:00:00",
        ] {
            assert_eq!(
                field(DeathReport {
                    date_of_death: bad.into(),
                    ..report()
                }),
                Field::DateOfDeath,
                "{bad:?}"
            );
        }
        assert_eq!(
            field(DeathReport {
                publication_last_update_date: Some("yesterday".into()),
                ..report()
            }),
            Field::PublicationLastUpdateDate
        );
        for score in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
            let mut r = report();
            r.signal_metadata.confidence_score = score;
            let err = r.check(now).unwrap_err();
            assert_eq!(err.field(), Field::ConfidenceScore, "{score}");
            assert_eq!(
                err.to_string(),
                "'confidence_score' must be between 0 and 1"
            );
        }
        for score in [0.0, 1.0] {
            let mut r = report();
            r.signal_metadata.confidence_score = score;
            assert!(r.check(now).is_ok(), "{score} is in range");
        }
        let mut r = report();
        r.signal_metadata.source = String::new();
        assert_eq!(field(r), Field::SignalSource);
    }

    #[test]
    fn cursors_are_numbers() {
        assert_eq!("42".parse::<DeathCursor>().unwrap(), DeathCursor::new(42));
        assert_eq!(DeathCursor::new(7).to_string(), "7");
        assert_eq!(
            "x".parse::<DeathCursor>().unwrap_err().field(),
            Field::Cursor
        );
    }
}
