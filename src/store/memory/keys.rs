//! Idempotency keys: each org's records, by key and by expiry.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use foldhash::HashMap;

use crate::limits::EXPIRED_KEYS_PER_WRITE;
use crate::store::{KeyClaim, KeyRecord, Stamp, WriteOutcome, rules};
use crate::{Error, OrgId, Result};

/// Every org's idempotency keys.
#[derive(Default)]
pub(super) struct Keys {
    orgs: HashMap<OrgId, OrgKeys>,
}

#[derive(Default)]
struct OrgKeys {
    records: HashMap<String, KeyRecord>,
    /// `(expires_at, key)` of every record, to forget the expired ones
    /// oldest first.
    by_expiry: BTreeSet<(DateTime<Utc>, String)>,
}

impl Keys {
    /// The record of `key` in `org`, unless it expired by `now`.
    pub(super) fn get(&self, org: &OrgId, key: &str, now: DateTime<Utc>) -> Option<&KeyRecord> {
        self.orgs
            .get(org)?
            .records
            .get(key)
            .filter(|r| r.expires_at > now)
    }

    /// Fails with `IdempotencyInProgress` when the key a write claims has a
    /// live record: the write must then apply nothing.
    pub(super) fn check(
        &self,
        org: &OrgId,
        claim: &KeyClaim<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        match self.get(org, claim.key, now) {
            Some(_) => Err(Error::IdempotencyInProgress {
                key: claim.key.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Records the key a write claimed, with its outcome.
    pub(super) fn claim(
        &mut self,
        org: &OrgId,
        claim: &KeyClaim<'_>,
        stamp: Stamp<'_>,
        out: &impl WriteOutcome,
    ) {
        self.put(
            org,
            claim.key,
            rules::keys::record(claim, stamp, out),
            stamp.at,
        );
    }

    /// Records `record` for `key` unless a live record stands; returns the
    /// record that stands.
    pub(super) fn record(
        &mut self,
        org: &OrgId,
        key: &str,
        record: KeyRecord,
        now: DateTime<Utc>,
    ) -> KeyRecord {
        if let Some(standing) = self.get(org, key, now) {
            return standing.clone();
        }
        self.put(org, key, record.clone(), now);
        record
    }

    /// Puts `record` in place of any record of `key`, and forgets a
    /// bounded number of the org's expired keys.
    fn put(&mut self, org: &OrgId, key: &str, record: KeyRecord, now: DateTime<Utc>) {
        let keys = match self.orgs.get_mut(org) {
            Some(keys) => keys,
            None => self.orgs.entry(org.clone()).or_default(),
        };
        let expired: Vec<_> = keys
            .by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .take(EXPIRED_KEYS_PER_WRITE)
            .cloned()
            .collect();
        for entry in expired {
            keys.records.remove(&entry.1);
            keys.by_expiry.remove(&entry);
        }
        let expires_at = record.expires_at;
        if let Some(old) = keys.records.insert(key.to_owned(), record) {
            keys.by_expiry.remove(&(old.expires_at, key.to_owned()));
        }
        keys.by_expiry.insert((expires_at, key.to_owned()));
    }

    /// How many records the org holds, expired ones included.
    #[cfg(test)]
    pub(super) fn held(&self, org: &OrgId) -> usize {
        self.orgs.get(org).map_or(0, |k| k.records.len())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::rules::keys::check_keyed_writes_forget_a_bounded_number_of_expired_keys;
    use crate::{MemoryStore, OrgId};

    #[test]
    fn keyed_writes_forget_a_bounded_number_of_expired_keys() {
        let store = MemoryStore::new();
        let org = OrgId::new("acme").unwrap();
        let held = || store.read().keys.held(&org);
        check_keyed_writes_forget_a_bounded_number_of_expired_keys(store.clone(), held);
    }
}
