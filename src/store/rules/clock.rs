//! The ledger clock: an org's ledger time never goes backwards.

/// The time of a write stamped `stamped`, in an org whose last ledger
/// entry is at `last` (`None` for an org that never wrote): the stamp, or
/// the last entry's time when that is later, so that entry times never go
/// backwards even when clocks do. Times of any ordered form (µs, `DateTime`).
pub(crate) fn ledger_time<T: Ord>(stamped: T, last: Option<T>) -> T {
    match last {
        Some(last) => stamped.max(last),
        None => stamped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A later stamp is kept; an earlier one takes the last entry's time;
    /// a first write keeps its stamp.
    #[test]
    fn ledger_time_never_goes_backwards() {
        assert_eq!(ledger_time(10, Some(5)), 10, "a later stamp is kept");
        assert_eq!(ledger_time(3, Some(5)), 5, "an earlier stamp is clamped");
        assert_eq!(ledger_time(3, None), 3, "a first write keeps its stamp");
    }
}
