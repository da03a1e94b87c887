//! What the SQL backends share: how they store a ledger entry (a kind
//! code and the columns the kind uses, the same numbers in every schema),
//! an org's ledger head as a write holds it, the flow of every write that
//! changes segments or members ([`keyed_write`]: the ledger opened first,
//! the idempotency key recorded last), and the batch of a member call.

use chrono::{DateTime, Utc};

use crate::store::rules::{self, clock::ledger_time};
use crate::store::{KeyRecord, Stamp, WriteOutcome};
use crate::{ChangeKind, Error, OrgId, Pid, Result};

/// An org's ledger head as one write transaction holds it: the seqs it
/// hands out, and the one time of all its changes. [`Head::open`] sets
/// that time by the ledger clock
/// ([`ledger_time`](crate::store::rules::clock::ledger_time)): a change
/// stamped earlier than the org's last entry is recorded at that entry's
/// time. Each SQL store reads the
/// head row into it (locking it first, on PostgreSQL) and writes it back
/// when [`Head::moved`].
pub(crate) struct Head<'a> {
    pub(crate) org: &'a str,
    pub(crate) request_id: Option<&'a str>,
    /// The time of every change of this transaction.
    at: i64,
    /// The last seq given, so far.
    last: i64,
    /// The head's seq when the transaction read it.
    opened_at: i64,
}

impl<'a> Head<'a> {
    /// The head of `org` for a write stamped `stamp`, from the org's head
    /// row (`last_seq`, `last_at`), or `None` for an org that never wrote.
    pub(crate) fn open(org: &'a OrgId, stamp: Stamp<'a>, row: Option<(i64, i64)>) -> Self {
        let last = row.map_or(0, |(seq, _)| seq);
        Self {
            org: org.as_str(),
            request_id: stamp.request_id,
            at: ledger_time(stamp.at.timestamp_micros(), row.map(|(_, at)| at)),
            last,
            opened_at: last,
        }
    }

    /// The time of this transaction's changes, in microseconds. Rows
    /// written in the transaction carry it too, so rows and ledger agree.
    pub(crate) fn at(&self) -> i64 {
        self.at
    }

    /// [`Head::at`] as a time.
    pub(crate) fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.at).unwrap_or_default()
    }

    /// The org's last seq before this transaction: what a set operation
    /// in it read its sources at.
    pub(crate) fn read_at(&self) -> i64 {
        self.opened_at
    }

    /// The last seq given so far.
    pub(crate) fn last(&self) -> i64 {
        self.last
    }

    /// Gives the next `n` seqs; returns the last of them.
    pub(crate) fn take(&mut self, n: i64) -> i64 {
        self.last += n;
        self.last
    }

    /// Whether this transaction gave any seq, so the head row must move.
    pub(crate) fn moved(&self) -> bool {
        self.last != self.opened_at
    }
}

/// How a SQL backend holds an org's ledger head for one write transaction
/// on its connection type `C`: [`open`](Self::open) reads the head row
/// (locking it first, on PostgreSQL) into a [`Head`], and
/// [`close`](Self::close) writes the head back when the transaction
/// [`moved`](Head::moved) it. [`keyed_write`] is the one place that opens
/// and closes it.
pub(crate) trait Ledger<'a, C>: Sized {
    /// Reads the head of `org` for a write stamped `stamp`.
    fn open(conn: &mut C, org: &'a OrgId, stamp: Stamp<'a>) -> Result<Self>;

    /// Moves the head past this transaction's entries (nothing to do when
    /// it gave none).
    fn close(self, conn: &mut C) -> Result<()>;
}

/// Every write of a SQL store that changes segments or members (creates,
/// updates, deletes and member calls): opens the org's ledger `L` on `conn` before
/// anything else, runs `f` with it, closes it, then records the stamp's
/// idempotency key, if any, through `put` ([`rules::keys::claimed`]).
/// The caller's transaction commits all of it or none.
///
/// # Errors
/// What opening or closing the ledger, `f` or `put` fail with;
/// `IdempotencyInProgress` when a live record of the key stands.
pub(crate) fn keyed_write<'a, C, L: Ledger<'a, C>, T: WriteOutcome>(
    conn: &mut C,
    org: &'a OrgId,
    stamp: Stamp<'a>,
    f: impl FnOnce(&mut C, &mut L) -> Result<T>,
    put: impl FnOnce(&mut C, &str, &KeyRecord) -> Result<bool>,
) -> Result<T> {
    rules::keys::claimed(
        conn,
        stamp,
        |conn| {
            let mut ledger = L::open(conn, org, stamp)?;
            let out = f(conn, &mut ledger)?;
            ledger.close(conn)?;
            Ok(out)
        },
        put,
    )
}

/// Records an idempotency key's record, or replaces the key's expired
/// record; changes no row while a live record stands (`$8` is now). The
/// key rule of both SQL stores, in one statement: PostgreSQL runs it with
/// its schema for `{schema}`, SQLite without the prefix (SQLite numbers
/// `$1` … `$8` by their first appearance, which is their order here).
pub(crate) const KEY_UPSERT: &str = "INSERT INTO {schema}.segment_keys
        (org, key, fingerprint, outcome, request_id, recorded_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (org, key) DO UPDATE SET
        fingerprint = excluded.fingerprint,
        outcome     = excluded.outcome,
        request_id  = excluded.request_id,
        recorded_at = excluded.recorded_at,
        expires_at  = excluded.expires_at
    WHERE segment_keys.expires_at <= $8";

/// The PIDs of one member call in PID order, each with its place in the
/// call. Built before a transaction opens.
pub(crate) struct Batch<'p> {
    /// `(place in the call, PID)`, in PID order.
    sorted: Vec<(usize, &'p Pid)>,
    /// The same PIDs as text, in PID order.
    texts: Vec<&'p str>,
}

impl<'p> Batch<'p> {
    /// The batch of `pids`.
    ///
    /// # Errors
    /// `Storage` when a PID is given twice. The service passes each PID of
    /// a call once; a store given a repeat refuses the whole call, rather
    /// than count one person twice.
    pub(crate) fn new(pids: &'p [Pid]) -> Result<Self> {
        let mut sorted: Vec<(usize, &Pid)> = pids.iter().enumerate().collect();
        sorted.sort_unstable_by(|a, b| a.1.cmp(b.1));
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0].1 == pair[1].1) {
            let (first, second) = (pair[0].0.min(pair[1].0), pair[0].0.max(pair[1].0));
            return Err(Error::storage(format!(
                "PID {} is given twice in one member call (at {first} and {second}); \
                 a store takes each PID of a call once",
                pair[0].1
            )));
        }
        let texts = sorted.iter().map(|(_, pid)| pid.as_str()).collect();
        Ok(Self { sorted, texts })
    }

    /// How many PIDs the call holds.
    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The PIDs as text, in PID order.
    pub(crate) fn texts(&self) -> &[&'p str] {
        &self.texts
    }

    /// The place in the call of the `i`-th PID in PID order (from 0).
    pub(crate) fn place(&self, i: usize) -> Option<usize> {
        self.sorted.get(i).map(|&(place, _)| place)
    }

    /// The position in PID order of `pid`.
    pub(crate) fn position(&self, pid: &str) -> Option<usize> {
        self.texts.binary_search(&pid).ok()
    }
}

/// The tables of the latest schema that both SQL stores hold, each of
/// which a usable database holds (PostgreSQL's also has
/// `death_feed_head`).
pub(crate) const SQL_TABLES: &[&str] = &[
    "segment_heads",
    "segments",
    "segment_people",
    "segment_memberships",
    "segment_ledger",
    "segment_ops",
    "segment_sizes",
    "death_records",
    "segment_keys",
];

pub(crate) const CREATED: i16 = 1;
pub(crate) const RENAMED: i16 = 2;
pub(crate) const DESCRIBED: i16 = 3;
pub(crate) const DELETED: i16 = 4;
pub(crate) const ADDED: i16 = 5;
pub(crate) const READDED: i16 = 6;
pub(crate) const REMOVED: i16 = 7;

/// The ledger code of a joining member's entry.
pub(crate) fn join_code(joined: crate::store::rules::members::Joined) -> i16 {
    match joined {
        crate::store::rules::members::Joined::Added => ADDED,
        crate::store::rules::members::Joined::ReAdded => READDED,
    }
}

/// The columns of an entry about a segment (not a member).
pub(crate) struct SegmentColumns<'a> {
    pub(crate) code: i16,
    pub(crate) name: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
}

/// The columns of `kind`, an entry about a segment. Membership entries
/// name a person by number and are written in batches, not through this.
pub(crate) fn segment_entry(kind: &ChangeKind) -> Result<SegmentColumns<'_>> {
    let (code, name, description) = match kind {
        ChangeKind::Created { name, description } => {
            (CREATED, Some(name.as_str()), description.as_deref())
        }
        ChangeKind::Renamed { name } => (RENAMED, Some(name.as_str()), None),
        ChangeKind::DescriptionChanged { description } => (DESCRIBED, None, description.as_deref()),
        ChangeKind::Deleted => (DELETED, None, None),
        other => {
            return Err(Error::storage(format!(
                "a {other:?} entry is a membership entry, written in a batch"
            )));
        }
    };
    Ok(SegmentColumns {
        code,
        name,
        description,
    })
}

/// The kind of a stored entry, from its code and the columns it uses (the
/// PID of a membership entry, the name and description of a segment
/// entry). A code or a missing column that cannot be is a damaged row.
pub(crate) fn kind(
    code: i16,
    pid: Option<Pid>,
    name: Option<String>,
    description: Option<String>,
) -> Result<ChangeKind> {
    let pid = || pid.ok_or_else(|| Error::storage(format!("entry kind {code} has no PID")));
    let name = || name.ok_or_else(|| Error::storage(format!("entry kind {code} has no name")));
    Ok(match code {
        CREATED => ChangeKind::Created {
            name: name()?,
            description,
        },
        RENAMED => ChangeKind::Renamed { name: name()? },
        DESCRIBED => ChangeKind::DescriptionChanged { description },
        DELETED => ChangeKind::Deleted,
        ADDED => ChangeKind::MemberAdded { pid: pid()? },
        READDED => ChangeKind::MemberReAdded { pid: pid()? },
        REMOVED => ChangeKind::MemberRemoved { pid: pid()? },
        other => return Err(Error::storage(format!("unknown ledger entry kind {other}"))),
    })
}

/// Whether a code's entry makes the person a member.
#[cfg(any(feature = "sqlite", test))]
pub(crate) fn joins(code: i16) -> bool {
    code == ADDED || code == READDED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_numbers_from_its_row_and_never_goes_back_in_time() {
        let org = OrgId::new("acme").unwrap();
        let stamp = |micros: i64| Stamp {
            at: DateTime::from_timestamp_micros(micros).unwrap(),
            request_id: Some("r-1"),
            dry_run: false,
            key: None,
        };
        // An org that never wrote: seqs from 1, at the stamp's time.
        let mut head = Head::open(&org, stamp(1_000), None);
        assert_eq!((head.at(), head.read_at(), head.moved()), (1_000, 0, false));
        assert_eq!(head.take(1), 1);
        assert_eq!(head.take(3), 4, "the last of the seqs given");
        assert!(head.moved());
        // A stamp before the org's last entry: that entry's time.
        let head = Head::open(&org, stamp(500), Some((7, 2_000)));
        assert_eq!((head.at(), head.last(), head.read_at()), (2_000, 7, 7));
        assert_eq!(head.time().timestamp_micros(), 2_000);
        // A later stamp: its own time.
        let head = Head::open(&org, stamp(3_000), Some((7, 2_000)));
        assert_eq!(head.at(), 3_000);
        assert_eq!((head.org, head.request_id), ("acme", Some("r-1")));
    }

    #[test]
    fn a_batch_is_in_pid_order_and_refuses_a_repeat() {
        let pids: Vec<Pid> = ["p-c", "p-a", "p-b"]
            .iter()
            .map(|p| Pid::parse(p).unwrap())
            .collect();
        let batch = Batch::new(&pids).unwrap();
        assert_eq!(batch.texts(), ["p-a", "p-b", "p-c"], "PID order");
        assert_eq!(
            (0..4).map(|i| batch.place(i)).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(0), None],
            "each PID's place in the call"
        );
        assert_eq!(batch.position("p-c"), Some(2));
        assert_eq!(batch.position("p-d"), None);
        let repeated: Vec<Pid> = ["p-b", "p-a", "p-c", "p-a"]
            .iter()
            .map(|p| Pid::parse(p).unwrap())
            .collect();
        let err = Batch::new(&repeated).err().expect("a repeat is refused");
        assert_eq!(err.storage_kind(), Some(crate::StorageFailure::Other));
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            source.is_some_and(|s| s.contains("p-a")),
            "the error's source names the PID: {err:?}"
        );
    }

    #[test]
    fn every_segment_kind_reads_back_as_written() {
        for kind in [
            ChangeKind::Created {
                name: "A".into(),
                description: Some("d".into()),
            },
            ChangeKind::Created {
                name: "A".into(),
                description: None,
            },
            ChangeKind::Renamed { name: "B".into() },
            ChangeKind::DescriptionChanged {
                description: Some("e".into()),
            },
            ChangeKind::DescriptionChanged { description: None },
            ChangeKind::Deleted,
        ] {
            let e = segment_entry(&kind).unwrap();
            let back = super::kind(
                e.code,
                None,
                e.name.map(str::to_owned),
                e.description.map(str::to_owned),
            )
            .unwrap();
            assert_eq!(back, kind, "kind {} reads back", e.code);
        }
        let pid = Pid::parse("p-a").unwrap();
        for code in [ADDED, READDED, REMOVED] {
            let kind = super::kind(code, Some(pid.clone()), None, None).unwrap();
            assert_eq!(kind.pid(), Some(&pid));
            assert_eq!(kind.joins(), joins(code), "joins agrees for {code}");
            assert!(
                super::kind(code, None, None, None).is_err(),
                "no PID, damaged"
            );
        }
        assert!(super::kind(99, None, None, None).is_err());
    }

    /// A ledger over a log of what a write did, in order.
    struct LoggedLedger;

    impl<'a> Ledger<'a, Vec<&'static str>> for LoggedLedger {
        fn open(log: &mut Vec<&'static str>, _: &'a OrgId, _: Stamp<'a>) -> Result<Self> {
            log.push("open");
            Ok(Self)
        }
        fn close(self, log: &mut Vec<&'static str>) -> Result<()> {
            log.push("close");
            Ok(())
        }
    }

    /// A keyed write opens the ledger before the write, closes it after,
    /// and records the key last; a failed write closes nothing and records
    /// nothing; a live record of the key is `IdempotencyInProgress`.
    #[test]
    fn a_keyed_write_opens_the_ledger_first_and_records_its_key_last() {
        use crate::store::{KeyClaim, StoreAddOutcome};
        let org = OrgId::new("acme").unwrap();
        let encode = |_: crate::store::Written<'_>| vec![1];
        let claim = KeyClaim {
            key: "k-1",
            fingerprint: [7; 32],
            expires_at: DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
            outcome: &encode,
        };
        let stamp = Stamp {
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            request_id: None,
            dry_run: false,
            key: Some(&claim),
        };
        let write = |log: &mut Vec<&'static str>, _: &mut LoggedLedger| {
            log.push("write");
            Ok(StoreAddOutcome::default())
        };
        let put = |log: &mut Vec<&'static str>, _: &str, _: &KeyRecord| {
            log.push("key");
            Ok(true)
        };
        let mut log = Vec::new();
        keyed_write(&mut log, &org, stamp, write, put).unwrap();
        assert_eq!(log, ["open", "write", "close", "key"]);

        let mut log = Vec::new();
        let failed = keyed_write(
            &mut log,
            &org,
            stamp,
            |log: &mut Vec<&'static str>, _: &mut LoggedLedger| {
                log.push("write");
                Err::<StoreAddOutcome, _>(Error::storage("the write fails"))
            },
            |_, _, _| panic!("a failed write records no key"),
        );
        assert!(failed.is_err());
        assert_eq!(log, ["open", "write"], "nothing closed after a failure");

        let standing = keyed_write(&mut Vec::new(), &org, stamp, write, |_, _, _| Ok(false));
        assert!(
            matches!(standing, Err(Error::IdempotencyInProgress { ref key }) if key == "k-1"),
            "{standing:?}"
        );
    }
}
