//! Death records, in the order of the death feed.

use foldhash::HashMap;

use crate::store::rules::deaths::{self, Place};
use crate::store::{Page, StoreDeathsIngested};
use crate::{DeathCursor, DeathRecord, DeathSignals, Pid};

/// Death records, in feed order: record `n` (from 1) is `records[n - 1]`.
#[derive(Default)]
pub(super) struct Deaths {
    /// `None` where a record was before it moved to the end of the feed.
    records: Vec<Option<DeathRecord>>,
    by_obituary: HashMap<String, usize>,
}

impl Deaths {
    /// The number of places in the feed.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    pub(super) fn upsert(&mut self, records: &[DeathRecord]) -> StoreDeathsIngested {
        let mut done = StoreDeathsIngested::default();
        for record in records {
            let mut record = record.clone();
            let known = self.by_obituary.get(&record.obituary_id).and_then(|&i| {
                let old = self.records[i].as_ref()?;
                Some((i, old.minerva_pid.as_str(), old.first_observed_at))
            });
            let (place, first) = deaths::place(
                known,
                record.minerva_pid.as_str(),
                record.first_observed_at,
                &mut done,
            );
            record.first_observed_at = first;
            match place {
                Place::Kept(i) => self.records[i] = Some(record),
                Place::End { moved_from } => {
                    if let Some(i) = moved_from {
                        self.records[i] = None;
                    }
                    self.by_obituary
                        .insert(record.obituary_id.clone(), self.records.len());
                    self.records.push(Some(record));
                }
            }
        }
        done
    }

    /// Up to `limit` records after `after` whose person `is_member` says
    /// yes to: a look at each record after the cursor, and no further than
    /// the page needs.
    pub(super) fn signals(
        &self,
        Page { after, limit }: Page<DeathCursor>,
        is_member: impl Fn(&Pid) -> bool,
    ) -> DeathSignals {
        let start = usize::try_from(after.get()).unwrap_or(usize::MAX);
        let mut records = Vec::new();
        let mut last = None;
        for (i, record) in self.records.iter().enumerate().skip(start) {
            let Some(record) = record.as_ref().filter(|r| is_member(&r.minerva_pid)) else {
                continue;
            };
            records.push(record.clone());
            // Feed places count from 1.
            last = Some(i as u64 + 1);
            if records.len() == limit {
                break;
            }
        }
        let end = || Ok::<_, std::convert::Infallible>(self.records.len() as u64);
        let Ok(next) = deaths::next_cursor(after, limit, records.len(), last, end);
        DeathSignals { records, next }
    }
}
