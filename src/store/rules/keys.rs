//! The idempotency-key record a keyed write leaves.

use crate::store::{KeyClaim, KeyRecord, Stamp, WriteOutcome};

/// The record of a write stamped `stamp` that claimed `claim`, once it
/// has applied and returned `out`: the claim's fingerprint and expiry,
/// the outcome as the claim encodes it, the call's request id and time.
pub(crate) fn record(claim: &KeyClaim<'_>, stamp: Stamp<'_>, out: &impl WriteOutcome) -> KeyRecord {
    KeyRecord {
        fingerprint: claim.fingerprint,
        outcome: (claim.outcome)(out.written()),
        request_id: stamp.request_id.map(str::to_owned),
        recorded_at: stamp.at,
        expires_at: claim.expires_at,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::store::{MembersAdded, Written};

    /// The record holds the claim's fingerprint and expiry, the call's
    /// request id and time, and the outcome as the claim encodes it.
    #[test]
    fn a_record_holds_the_claim_the_call_and_the_outcome() {
        let encode = |written: Written<'_>| match written {
            Written::Added(added) => vec![added.n_added as u8],
            _ => Vec::new(),
        };
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let expires_at = at + chrono::Duration::hours(24);
        let claim = KeyClaim {
            key: "k-1",
            fingerprint: [7; 32],
            expires_at,
            outcome: &encode,
        };
        let stamp = Stamp {
            at,
            request_id: Some("req-1"),
            dry_run: false,
            key: Some(&claim),
        };
        let out = MembersAdded {
            n_added: 3,
            n_redundant: 1,
            new_current_size: 9,
        };
        let record = record(&claim, stamp, &out);
        assert_eq!(record.fingerprint, [7; 32], "the claim's fingerprint");
        assert_eq!(record.outcome, vec![3], "the outcome, encoded by the claim");
        assert_eq!(
            record.request_id.as_deref(),
            Some("req-1"),
            "the request id"
        );
        assert_eq!(
            (record.recorded_at, record.expires_at),
            (at, expires_at),
            "recorded at the call's time, expiring with the claim"
        );
    }
}
