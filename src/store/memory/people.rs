//! [`People`]: an org's people by PID, in the order they first joined.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::members::Person;
use crate::Pid;

/// The most people one org of a [`MemoryStore`](super::MemoryStore) may
/// have: positions are kept in 32 bits.
pub(super) const MAX_PEOPLE: usize = u32::MAX as usize;

/// An org's people by PID, in the order they first joined. People are
/// never removed (their timelines outlive segments), so a person's
/// position never changes.
///
/// The people sit in a `Vec`, and a hash table maps each PID to its
/// position. A slot of the table holds the position and 32 bits of the
/// PID's hash: a probe tells other PIDs apart by those bits without
/// reading their people (a lookup reads only the person it finds), and a
/// growing table rehashes from its slots alone. The table stays small, 8
/// bytes a slot against 32 for a map that holds the PIDs themselves: at a
/// million people, random accesses into it are most of what a fill of new
/// people costs, and a smaller table makes them cheaper.
pub(super) struct People {
    table: HashTable<Slot>,
    list: Vec<(Pid, Person)>,
    hasher: foldhash::fast::RandomState,
    /// At most this many people ([`MAX_PEOPLE`]; lower in tests).
    max: usize,
}

impl Default for People {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            list: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
            max: MAX_PEOPLE,
        }
    }
}

fn room_for(len: usize, more: usize, max: usize) -> bool {
    len.checked_add(more).is_some_and(|n| n <= max)
}

#[derive(Clone, Copy)]
struct Slot {
    position: u32,
    hash: u32,
}

/// The table's hash of a slot: its 32 bits of the PID's hash, spread over
/// 64 (the table takes positions from the low bits and tags from the
/// high ones).
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl People {
    /// Whether the org has room for `more` new people (at most
    /// [`MAX_PEOPLE`] in all).
    pub(super) fn has_room_for(&self, more: usize) -> bool {
        room_for(self.list.len(), more, self.max)
    }

    /// Lowers the most people the org may have, so that a test can reach
    /// the limit.
    #[cfg(test)]
    pub(super) fn set_max(&mut self, max: usize) {
        self.max = max.min(MAX_PEOPLE);
    }

    fn hash(&self, pid: &Pid) -> u32 {
        (self.hasher.hash_one(pid) >> 32) as u32
    }

    fn position(&self, pid: &Pid) -> Option<usize> {
        let hash = self.hash(pid);
        let list = &self.list;
        self.table
            .find(spread(hash), |slot| {
                slot.hash == hash && list[slot.position as usize].0 == *pid
            })
            .map(|slot| slot.position as usize)
    }

    pub(super) fn get(&self, pid: &Pid) -> Option<&Person> {
        self.position(pid).map(|i| &self.list[i].1)
    }

    pub(super) fn get_mut(&mut self, pid: &Pid) -> Option<&mut Person> {
        self.position(pid).map(|i| &mut self.list[i].1)
    }

    /// The person of `pid`, added at the end with `new` if the org never
    /// saw them. The caller checks first that the org has room
    /// ([`MAX_PEOPLE`]) for everyone it adds.
    pub(super) fn get_or_insert_with(
        &mut self,
        pid: &Pid,
        new: impl FnOnce() -> Person,
    ) -> &mut Person {
        let hash = self.hash(pid);
        let Self { table, list, .. } = self;
        let entry = table.entry(
            spread(hash),
            |slot| slot.hash == hash && list[slot.position as usize].0 == *pid,
            |slot| spread(slot.hash),
        );
        let position = match entry {
            Entry::Occupied(slot) => slot.get().position as usize,
            Entry::Vacant(slot) => {
                let position = list.len();
                // Below MAX_PEOPLE, which the caller checked.
                let stored = u32::try_from(position)
                    .expect("the caller checked that the org has room for its new people");
                // The person first, then the slot that points at them.
                list.push((pid.clone(), new()));
                slot.insert(Slot {
                    position: stored,
                    hash,
                });
                position
            }
        };
        &mut list[position].1
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use smallvec::SmallVec;

    use super::*;

    fn person(last_entry: usize) -> Person {
        Person {
            last_entry,
            memberships: SmallVec::new(),
        }
    }

    /// People agree with a plain map through inserts, lookups and growth,
    /// and keep their positions.
    #[test]
    fn agrees_with_a_map() {
        let mut people = People::default();
        let mut model = HashMap::new();
        let pid = |n: u64| Pid::parse(&format!("p-{:x}", n.wrapping_mul(0x2545_f491))).unwrap();
        for round in 0..3u64 {
            for n in 0..100_000u64 {
                // Each round sees the earlier ones' PIDs again and new ones.
                let n = n + round * 50_000;
                let seen = model.contains_key(&n);
                let got = if seen {
                    people.get_or_insert_with(&pid(n), || unreachable!("PID {n} is known"))
                } else {
                    people.get_or_insert_with(&pid(n), || person(n as usize))
                };
                let want = *model.entry(n).or_insert(n as usize);
                assert_eq!(got.last_entry, want, "PID {n}");
            }
        }
        assert_eq!(people.list.len(), model.len());
        for n in 0..200_000u64 {
            assert_eq!(
                people.get(&pid(n)).map(|p| p.last_entry),
                model.get(&n).copied(),
                "PID {n}"
            );
        }
        // First joined, first listed.
        let order: Vec<usize> = people.list.iter().map(|(_, p)| p.last_entry).collect();
        assert_eq!(order, (0..200_000).collect::<Vec<_>>());
        people.get_mut(&pid(7)).unwrap().last_entry = 1;
        assert_eq!(people.get(&pid(7)).unwrap().last_entry, 1);
        assert!(people.get_mut(&pid(999_999)).is_none());
    }

    /// Two PIDs whose 32 bits of hash are the same are told apart by the
    /// PIDs themselves.
    #[test]
    fn pids_that_share_their_hash_bits_stay_apart() {
        let mut people = People::default();
        let pid = |n: u64| Pid::parse(&format!("p-{n:x}")).unwrap();
        // Among 2M PIDs about 465 pairs share 32 bits of hash (the hasher
        // is seeded at random): find one.
        let mut seen = HashMap::new();
        let (a, b) = (0..2_000_000u64)
            .find_map(|n| {
                seen.insert(people.hash(&pid(n)), n)
                    .map(|earlier| (earlier, n))
            })
            .expect("a pair of PIDs with the same 32 bits of hash");
        assert_eq!(people.hash(&pid(a)), people.hash(&pid(b)));
        people.get_or_insert_with(&pid(a), || person(1));
        assert!(people.get(&pid(b)).is_none(), "b is not a");
        people.get_or_insert_with(&pid(b), || person(2));
        // And after the table has grown many times over.
        for n in 0..100_000u64 {
            people.get_or_insert_with(&Pid::parse(&format!("p-x{n:x}")).unwrap(), || person(0));
        }
        assert_eq!(people.get(&pid(a)).unwrap().last_entry, 1);
        assert_eq!(people.get(&pid(b)).unwrap().last_entry, 2);
        assert_eq!(people.list.len(), 100_002);
    }

    #[test]
    fn room_is_counted_up_to_the_limit() {
        assert!(room_for(0, MAX_PEOPLE, MAX_PEOPLE));
        assert!(room_for(MAX_PEOPLE - 10, 10, MAX_PEOPLE));
        assert!(!room_for(MAX_PEOPLE - 10, 11, MAX_PEOPLE));
        assert!(!room_for(usize::MAX, 1, MAX_PEOPLE), "no overflow");
        assert!(People::default().has_room_for(100_000));
    }
}
