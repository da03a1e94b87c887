//! [`Roster`]: a segment's members in list order, for [`MemoryStore`].
//!
//! [`MemoryStore`]: super::MemoryStore

use std::collections::BTreeMap;

use crate::Pid;

/// A segment's members in list order (`first_added_at`, then PID), kept as
/// *runs*: one sorted `Vec` of PIDs per `first_added_at`.
///
/// Everyone one call adds for the first time shares that call's time, which
/// is never earlier than any time before it in the org: a call's new members
/// become one run, sorted once and put at the end, instead of one tree
/// insert each (a call that shares the last run's microsecond merges into
/// it). Re-added members go back into the run of their original time, and
/// removed ones leave theirs, a run at a time (linear in the runs a call
/// touches). A cursor is a run lookup and a binary search in it; an offset
/// skips whole runs by their length (so its cost grows with the number of
/// runs before it: one per add call).
#[derive(Debug, Default)]
pub(super) struct Roster {
    runs: BTreeMap<i64, Vec<Pid>>,
    len: usize,
}

impl Roster {
    /// The number of members.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Adds members who were not in the roster, each at its
    /// `first_added_at`, in any order.
    pub(super) fn insert(&mut self, members: Vec<(i64, Pid)>) {
        self.len += members.len();
        for (at, pids) in by_time(members) {
            match self.runs.get_mut(&at) {
                None => {
                    self.runs.insert(at, pids);
                }
                // After the run's last PID (the common case of a call that
                // extends a run of the same microsecond): append.
                Some(run) if run.last() < pids.first() => run.extend(pids),
                Some(run) => *run = merge(std::mem::take(run), pids),
            }
        }
    }

    /// Removes members, each given with its `first_added_at`, in any order.
    /// Every one must be in the roster.
    pub(super) fn remove(&mut self, members: Vec<(i64, Pid)>) {
        for (at, gone) in by_time(members) {
            let Some(run) = self.runs.get_mut(&at) else {
                debug_assert!(false, "removing members the roster does not hold");
                continue;
            };
            let before = run.len();
            // Both sorted: one pass over the run.
            let mut gone = gone.iter().peekable();
            run.retain(|pid| {
                while gone.next_if(|g| *g < pid).is_some() {}
                gone.next_if(|g| *g == pid).is_none()
            });
            self.len -= before - run.len();
            if run.is_empty() {
                self.runs.remove(&at);
            }
        }
    }

    /// Up to `limit` members after `after` (from the start for `None`), in
    /// order, as (`first_added_at`, PID).
    pub(super) fn after<'a>(
        &'a self,
        after: Option<(i64, &'a Pid)>,
        limit: usize,
    ) -> Vec<(i64, &'a Pid)> {
        let mut out = Vec::with_capacity(limit.min(self.len));
        out.extend(self.iter_from(after).take(limit));
        out
    }

    /// The members after `after` (from the start for `None`), in order, as
    /// (`first_added_at`, PID).
    pub(super) fn iter_from<'a>(
        &'a self,
        after: Option<(i64, &'a Pid)>,
    ) -> impl Iterator<Item = (i64, &'a Pid)> + 'a {
        let from = after.map_or(i64::MIN, |(at, _)| at);
        self.runs.range(from..).flat_map(move |(&at, run)| {
            let start = match after {
                Some((t, pid)) if t == at => run.partition_point(|p| p <= pid),
                _ => 0,
            };
            run[start..].iter().map(move |pid| (at, pid))
        })
    }

    /// Up to `limit` members from position `offset` (from 0), in order.
    pub(super) fn at_offset(&self, offset: usize, limit: usize) -> Vec<(i64, &Pid)> {
        let mut out = Vec::with_capacity(limit.min(self.len.saturating_sub(offset)));
        let mut skip = offset;
        for (&at, run) in &self.runs {
            if skip >= run.len() {
                skip -= run.len();
                continue;
            }
            for pid in &run[skip..] {
                if out.len() == limit {
                    return out;
                }
                out.push((at, pid));
            }
            skip = 0;
        }
        out
    }
}

/// `members` sorted, and grouped by time: one sorted run of PIDs per time.
fn by_time(members: Vec<(i64, Pid)>) -> impl Iterator<Item = (i64, Vec<Pid>)> {
    let mut members = sorted(members).into_iter().peekable();
    std::iter::from_fn(move || {
        let (at, first) = members.next()?;
        let mut pids = vec![first];
        while let Some((_, pid)) = members.next_if(|(t, _)| *t == at) {
            pids.push(pid);
        }
        Some((at, pids))
    })
}

/// `members` in (time, PID) order.
///
/// The sort compares keys made once per member: the time, and the PID's
/// first 16 bytes read as a big-endian number (zero-padded, so that the
/// numbers' order is the bytes' order). They tell most PIDs apart (a PID
/// of up to 14 characters after its `p-` fits whole), and the PIDs
/// themselves are compared only when two keys tie. Every member call sorts
/// the members whose runs it changes this way; comparing the strings
/// themselves took most of an add.
fn sorted(members: Vec<(i64, Pid)>) -> Vec<(i64, Pid)> {
    let mut keys: Vec<(i64, u128, usize)> = members
        .iter()
        .enumerate()
        .map(|(i, (at, pid))| (*at, prefix(pid), i))
        .collect();
    keys.sort_unstable();
    // Members whose keys tie (PIDs longer than 16 bytes that share their
    // first 16) are next to each other: put each such group in PID order.
    let mut start = 0;
    while start < keys.len() {
        let tie = |k: &(i64, u128, usize)| (k.0, k.1) == (keys[start].0, keys[start].1);
        let end = start + keys[start..].iter().take_while(|k| tie(k)).count();
        if end - start > 1 {
            keys[start..end].sort_unstable_by(|a, b| members[a.2].1.cmp(&members[b.2].1));
        }
        start = end;
    }
    let mut members: Vec<Option<(i64, Pid)>> = members.into_iter().map(Some).collect();
    keys.iter()
        .map(|&(_, _, i)| members[i].take().expect("each member is placed once"))
        .collect()
}

/// The first 16 bytes of `pid`, zero-padded, as a big-endian number.
fn prefix(pid: &Pid) -> u128 {
    let bytes = pid.as_str().as_bytes();
    let mut head = [0u8; 16];
    let n = bytes.len().min(16);
    head[..n].copy_from_slice(&bytes[..n]);
    u128::from_be_bytes(head)
}

/// Two sorted runs as one.
fn merge(a: Vec<Pid>, b: Vec<Pid>) -> Vec<Pid> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x <= y => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => return out,
        };
        out.extend(next);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A seeded xorshift: each call gives a number below its argument.
    fn below(mut rng: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        }
    }

    fn pid(n: u32) -> Pid {
        Pid::parse(&format!("p-{n:x}")).unwrap()
    }

    /// The roster agrees with a plain ordered set through random inserts,
    /// removals and reads.
    #[test]
    fn agrees_with_an_ordered_set() {
        let mut next = below(0x2545_f491_4f6c_dd1d);
        let (mut roster, mut model) = (Roster::default(), BTreeSet::new());
        // Each PID's fixed time, as a member's first_added_at is.
        let time_of = |n: u32| i64::from(n % 7) * 10;
        for _ in 0..400 {
            let batch: BTreeSet<u32> = (0..next(12)).map(|_| next(60) as u32).collect();
            if next(3) == 0 {
                let gone: Vec<(i64, Pid)> = batch
                    .iter()
                    .filter(|n| model.remove(&(time_of(**n), pid(**n))))
                    .map(|n| (time_of(*n), pid(*n)))
                    .collect();
                roster.remove(gone);
            } else {
                let new: Vec<(i64, Pid)> = batch
                    .iter()
                    .filter(|n| model.insert((time_of(**n), pid(**n))))
                    .map(|n| (time_of(*n), pid(*n)))
                    .rev()
                    .collect();
                roster.insert(new);
            }
            let all: Vec<(i64, Pid)> = model.iter().cloned().collect();
            let got: Vec<(i64, Pid)> = roster
                .iter_from(None)
                .map(|(t, p)| (t, p.clone()))
                .collect();
            assert_eq!(got, all);
            assert_eq!(roster.len(), all.len());
            let offset = next(all.len() as u64 + 2) as usize;
            let limit = next(5) as usize + 1;
            let page: Vec<(i64, Pid)> = roster
                .at_offset(offset, limit)
                .into_iter()
                .map(|(t, p)| (t, p.clone()))
                .collect();
            let want: Vec<(i64, Pid)> = all.iter().skip(offset).take(limit).cloned().collect();
            assert_eq!(page, want, "offset {offset}, limit {limit}");
            // A cursor at any member, and between members.
            let probe = next(60) as u32;
            let cursor = (time_of(probe), pid(probe));
            let page: Vec<(i64, Pid)> = roster
                .after(Some((cursor.0, &cursor.1)), limit)
                .into_iter()
                .map(|(t, p)| (t, p.clone()))
                .collect();
            let want: Vec<(i64, Pid)> = model
                .range((
                    std::ops::Bound::Excluded(cursor),
                    std::ops::Bound::Unbounded,
                ))
                .take(limit)
                .cloned()
                .collect();
            assert_eq!(page, want);
        }
    }

    /// The key sort agrees with sorting the pairs themselves, for PIDs
    /// shorter than, as long as, and longer than the 16-byte prefix, many
    /// of them sharing one.
    #[test]
    fn sorts_as_the_pairs_themselves_do() {
        let mut next = below(0x9e37_79b9_7f4a_7c15);
        for round in 0..200 {
            let members: Vec<(i64, Pid)> = (0..next(40))
                .map(|_| {
                    // A 14-byte stem shared by many, then 0 to 6 more
                    // characters from a small alphabet: ties in the first
                    // 16 bytes, and PIDs that are prefixes of others.
                    let stem = ["p-0000000000ab", "p-0000000000ac", "p-1"][next(3) as usize];
                    let tail: String = (0..next(7))
                        .map(|_| ['0', '1', 'z'][next(3) as usize])
                        .collect();
                    (
                        next(3) as i64,
                        Pid::parse(&format!("{stem}{tail}")).unwrap(),
                    )
                })
                .collect();
            let mut want = members.clone();
            want.sort();
            assert_eq!(sorted(members), want, "round {round}");
        }
    }

    #[test]
    fn runs_merge_and_empty_runs_go() {
        let mut roster = Roster::default();
        roster.insert(vec![(5, pid(3)), (5, pid(1))]);
        roster.insert(vec![(5, pid(2)), (5, pid(9))]);
        roster.insert(vec![(1, pid(7))]);
        let order: Vec<(i64, String)> = roster
            .after(None, 10)
            .into_iter()
            .map(|(t, p)| (t, p.to_string()))
            .collect();
        assert_eq!(
            order,
            [(1, "p-7"), (5, "p-1"), (5, "p-2"), (5, "p-3"), (5, "p-9")]
                .map(|(t, p)| (t, p.to_owned()))
        );
        roster.remove(vec![(1, pid(7))]);
        assert_eq!(roster.runs.len(), 1, "an emptied run is dropped");
        assert_eq!(roster.len(), 4);
        assert_eq!(roster.at_offset(4, 10), vec![]);
    }
}
