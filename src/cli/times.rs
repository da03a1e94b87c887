//! How times are written: RFC 3339 in UTC with microseconds, as the wire
//! format writes them (`2026-03-01T12:00:00.000000Z`).

use chrono::{DateTime, SecondsFormat, Utc};

/// A time as the commands write it.
pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_with_microseconds() {
        let at = DateTime::from_timestamp_micros(1_772_366_400_000_007).unwrap();
        assert_eq!(rfc3339(at), "2026-03-01T12:00:00.000007Z");
    }
}
