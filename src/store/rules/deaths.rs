//! Where an upserted death record goes in the death feed, and where the
//! next poll of a segment's death signals starts.

use crate::DeathCursor;
use crate::store::StoreDeathsIngested;

/// Where a death record goes, for a feed whose places are `K`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place<K> {
    /// Updated where it is: the same obituary about the same person.
    Kept(K),
    /// At the end of the feed: a new obituary, or one now about another
    /// person (`moved_from` its old place, which the feed forgets), so
    /// that a poller past its old place sees it again.
    End {
        /// The record's old place, if it had one.
        moved_from: Option<K>,
    },
}

/// Where a record about `pid` goes, given what the feed holds for its
/// obituary (`known`: place, person, `first_observed_at`), and the
/// `first_observed_at` it keeps (the first one seen, across updates).
/// Counts the record in `done`: inserted when the obituary is new,
/// updated otherwise.
pub(crate) fn place<K, F>(
    known: Option<(K, &str, F)>,
    pid: &str,
    first_observed_at: F,
    done: &mut StoreDeathsIngested,
) -> (Place<K>, F) {
    match known {
        None => {
            done.n_inserted += 1;
            (Place::End { moved_from: None }, first_observed_at)
        }
        Some((at, known_pid, first)) => {
            done.n_updated += 1;
            if known_pid == pid {
                (Place::Kept(at), first)
            } else {
                (
                    Place::End {
                        moved_from: Some(at),
                    },
                    first,
                )
            }
        }
    }
}

/// The cursor after a page of death signals read from `after`, which
/// found `found` records (of at most `limit`), the last at feed place
/// `last`: after that record when the page is full; otherwise everything
/// up to the end of the feed was seen, so the end as the read saw it
/// (`feed_end`, asked only then), never before `after`.
///
/// # Errors
/// What `feed_end` fails with.
pub(crate) fn next_cursor<E>(
    after: DeathCursor,
    limit: usize,
    found: usize,
    last: Option<u64>,
    feed_end: impl FnOnce() -> Result<u64, E>,
) -> Result<DeathCursor, E> {
    match last {
        Some(last) if found == limit => Ok(DeathCursor::new(last)),
        _ => Ok(DeathCursor::new(after.get().max(feed_end()?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new obituary goes to the end; the same person stays in place; a
    /// new person moves to the end; the first observation is kept.
    #[test]
    fn records_go_where_pollers_see_their_changes() {
        let mut done = StoreDeathsIngested::default();
        assert_eq!(
            place::<u64, i64>(None, "p-1", 5, &mut done),
            (Place::End { moved_from: None }, 5),
            "a new obituary goes to the end, observed now"
        );
        assert_eq!(
            place(Some((3u64, "p-1", 1i64)), "p-1", 5, &mut done),
            (Place::Kept(3), 1),
            "same person: in place, first observation kept"
        );
        assert_eq!(
            place(Some((3u64, "p-1", 1i64)), "p-2", 5, &mut done),
            (
                Place::End {
                    moved_from: Some(3)
                },
                1
            ),
            "another person: moved to the end, first observation kept"
        );
        assert_eq!((done.n_inserted, done.n_updated), (1, 2), "counts");
    }

    /// A full page resumes after its last record; a short one at the end
    /// of the feed, which it reads only then, and never before the cursor.
    #[test]
    fn a_poll_resumes_after_a_full_page_or_at_the_feeds_end() {
        let after = DeathCursor::new(4);
        let full = next_cursor::<()>(after, 2, 2, Some(9), || panic!("not asked"));
        assert_eq!(full, Ok(DeathCursor::new(9)), "after the last record");
        let short = next_cursor::<()>(after, 2, 1, Some(9), || Ok(12));
        assert_eq!(short, Ok(DeathCursor::new(12)), "the feed's end");
        let empty = next_cursor::<()>(after, 2, 0, None, || Ok(12));
        assert_eq!(empty, Ok(DeathCursor::new(12)));
        let behind = next_cursor::<()>(after, 2, 0, None, || Ok(3));
        assert_eq!(behind, Ok(after), "never before the cursor given");
    }
}
