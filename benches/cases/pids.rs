//! PIDs that look like users' PIDs: random-looking, never repeated.
//!
//! The `i`-th PID is a pure function of `i`, so a library routine and its
//! floor get the same PIDs in the same order without storing them. Its
//! first 12 hex digits are a permutation of the 48-bit numbers applied to
//! `i`: distinct indexes (below 2^48) give distinct PIDs, so a fill of 1M
//! has no repeats by construction ([`check_distinct`] counts them anyway).

/// The two PID forms the fills use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidForm {
    /// `p-` and 12 hex digits: 14 characters, the documented form.
    Short,
    /// `p-` and 62 hex digits: 64 characters in all.
    Long,
}

impl PidForm {
    /// Characters in one PID.
    pub fn chars(self) -> usize {
        match self {
            Self::Short => 14,
            Self::Long => 64,
        }
    }

    /// `pid14`, `pid64`: for case ids.
    pub fn tag(self) -> String {
        format!("pid{}", self.chars())
    }

    /// How the report names the form.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Short => "14-char PIDs (p- + 12 hex)",
            Self::Long => "64-char PIDs (p- + 62 hex)",
        }
    }
}

const MASK48: u64 = (1 << 48) - 1;

/// A permutation of `0..2^48`: an added constant, then xor-shifts and
/// multiplications by odd constants, each invertible modulo 2^48.
fn mix48(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x5851_f42d_4c95) & MASK48;
    z ^= z >> 23;
    z = z.wrapping_mul(0x9e37_79b9_7f4b) & MASK48;
    z ^= z >> 21;
    z = z.wrapping_mul(0xbf58_476d_1ce5) & MASK48;
    z ^= z >> 25;
    z
}

/// splitmix64's finalizer: for the digits after the first 12 of a long PID.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `i`-th PID of `form`.
pub fn pid(form: PidForm, i: u64) -> String {
    assert!(i <= MASK48, "PID index {i} out of range");
    let mut s = format!("p-{:012x}", mix48(i));
    if form == PidForm::Long {
        let mut k = 0u64;
        while s.len() < 64 {
            let more = splitmix(i.wrapping_mul(4).wrapping_add(k) ^ 0x243f_6a88_85a3_08d3);
            s.push_str(&format!("{more:016x}"));
            k += 1;
        }
        s.truncate(64);
    }
    debug_assert_eq!(s.len(), form.chars());
    s
}

/// PIDs `start..start + count` of `form`.
pub fn batch(form: PidForm, start: u64, count: u64) -> Vec<String> {
    (start..start + count).map(|i| pid(form, i)).collect()
}

/// Checks that PIDs `0..n` of `form` are distinct; returns `n`.
pub fn check_distinct(form: PidForm, n: u64) -> u64 {
    let mut seen = std::collections::HashSet::with_capacity(n as usize);
    for i in 0..n {
        assert!(seen.insert(pid(form, i)), "PID {i} repeats");
    }
    n
}
