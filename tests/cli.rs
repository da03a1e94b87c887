//! The `segments` command, run as a user runs it: the built binary in a
//! child process, on a SQLite file and on PostgreSQL (with the `postgres`
//! feature: a throwaway server, or `SEGMENTS_POSTGRES_URL`; each test uses
//! an org of its own, so tests share the server).
//!
//! Every test runs on every store: import then export gives the same set;
//! a header only, an empty file, malformed lines (with their line numbers),
//! CRLF, a BOM, quoted fields and blank lines; a SIGKILL in the middle of an
//! import, then a rerun: exact counts, one join per PID; stdin; `--as-of`;
//! `list`, `history`; usage errors exit 2, other failures 1.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use segments_engine::limits::IMPORT_BATCH_SIZE;
use segments_engine::{ChangeKind, OrgId, PageOptions, SegmentStore, Segments, SqliteStore};
use tempfile::TempDir;

/// Where a test's segments are: the store options it passes, and a
/// directory for its input and output files.
struct Target {
    store: Vec<String>,
    dir: TempDir,
    org: String,
}

impl Target {
    fn sqlite(test: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("segments.db");
        Self {
            store: vec!["--db".into(), db.display().to_string()],
            dir,
            org: org_for(test),
        }
    }

    #[cfg(feature = "postgres")]
    fn postgres(test: &str) -> Self {
        Self {
            store: vec!["--postgres".into(), support::postgres::url()],
            dir: tempfile::tempdir().unwrap(),
            org: org_for(test),
        }
    }

    /// The service on the same store, for checks the command cannot make.
    fn segments(&self) -> Segments<Box<dyn SegmentStore>> {
        let store: Box<dyn SegmentStore> = match self.store[0].as_str() {
            "--db" => Box::new(SqliteStore::open(&self.store[1]).unwrap()),
            #[cfg(feature = "postgres")]
            "--postgres" => {
                Box::new(segments_engine::PostgresStore::connect(&self.store[1]).unwrap())
            }
            other => unreachable!("{other}"),
        };
        Segments::new(store)
    }

    fn org(&self) -> OrgId {
        OrgId::new(self.org.as_str()).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `contents` to the file `name` in the test's directory.
    fn file(&self, name: &str, contents: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }

    /// The command with `args`, after the store options and `--org`
    /// (after the command's name, as the issue writes it).
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_segments"));
        command
            .args(&args[..1])
            .args(&self.store)
            .args(["--org", self.org.as_str()])
            .args(&args[1..])
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `segments import` with stdin from `input`.
    fn import_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }
}

/// An org no other test (or earlier run on a shared server) uses.
fn org_for(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "cli-{test}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `name: value` lines of an import's summary.
fn totals(summary: &str) -> HashMap<String, String> {
    summary
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn count(totals: &HashMap<String, String>, name: &str) -> u64 {
    totals
        .get(name)
        .unwrap_or_else(|| panic!("no {name:?} in {totals:?}"))
        .parse()
        .unwrap()
}

/// (rows, added, redundant, malformed, size) of an import's summary.
fn counts(summary: &str) -> (u64, u64, u64, u64, u64) {
    let t = totals(summary);
    (
        count(&t, "rows"),
        count(&t, "added"),
        count(&t, "redundant"),
        count(&t, "malformed"),
        count(&t, "size"),
    )
}

/// The PIDs of a CSV export (its first column, after the header).
fn exported_pids(csv: &str) -> Vec<String> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("pid,first_added_at,last_added_at"));
    lines
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect()
}

/// The `i`-th random-looking PID.
fn pid(i: u64) -> String {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("p-{:012x}", (z ^ (z >> 31)) & 0xffff_ffff_ffff)
}

fn status(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Import then export gives the same set, in CSV and in NDJSON; `list`
/// shows the size.
fn import_then_export_gives_the_same_set(t: &Target) {
    let pids: Vec<String> = (0..25_000).map(pid).collect();
    let mut csv = String::from("email,minerva_pid\n");
    for (i, p) in pids.iter().enumerate() {
        csv.push_str(&format!("u{i}@example.com,{p}\n"));
    }
    let input = t.file("leads.csv", csv.as_bytes());
    let summary = t.ok(&["import", "--segment", "Leads", &input]);
    assert_eq!(
        counts(&summary),
        (25_000, 25_000, 0, 0, 25_000),
        "{summary}"
    );
    assert_eq!(count(&totals(&summary), "batches"), 3);

    let exported = exported_pids(&t.ok(&["export", "--segment", "Leads"]));
    assert_eq!(exported.len(), pids.len(), "each member once");
    let want: BTreeSet<&str> = pids.iter().map(String::as_str).collect();
    let got: BTreeSet<&str> = exported.iter().map(String::as_str).collect();
    assert_eq!(got, want, "the export is the imported set");

    // To a file, as NDJSON: the same members in the same order.
    let out = t.path("out.ndjson");
    t.ok(&[
        "export",
        "--segment",
        "Leads",
        "--format",
        "ndjson",
        out.to_str().unwrap(),
    ]);
    let ndjson: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["first_added_at"].as_str().unwrap().ends_with('Z'));
            v["pid"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ndjson, exported,
        "NDJSON lists the members in the same order"
    );

    let list = t.ok(&["list"]);
    let mut rows = list.lines();
    assert_eq!(rows.next(), Some("name,current_size,id,created_at,source"));
    let row: Vec<&str> = rows.next().expect("one segment").split(',').collect();
    assert_eq!((row[0], row[1], row[4]), ("Leads", "25000", "cli"));
}

/// A header only, and an empty file: nothing to add, exit 0, the segment
/// exists and is empty.
fn header_only_and_empty_files(t: &Target) {
    for (name, contents) in [
        ("header.csv", &b"pid\r\n"[..]),
        ("empty.csv", b""),
        ("blank.csv", b"\n\n  \n"),
    ] {
        let input = t.file(name, contents);
        let summary = t.ok(&["import", "--segment", name, &input]);
        assert_eq!(counts(&summary), (0, 0, 0, 0, 0), "{name}: {summary}");
        let exported = exported_pids(&t.ok(&["export", "--segment", name]));
        assert!(exported.is_empty(), "{name}");
    }
}

/// Quoted fields, CRLF, a BOM, blank lines, and malformed lines reported
/// with the line numbers an editor shows.
fn messy_csv_is_read_as_written(t: &Target) {
    let input = t.file(
        "messy.csv",
        b"\xEF\xBB\xBF\"name\",\"pid\"\r\n\
          \"Smith, Ann\",\"p-a1\"\r\n\
          \r\n\
          \"Lee\r\nBo\",p-b2\r\n\
          Kim,bad!\r\n\
          \"O\"\"Neil\", p-c3 \r\n\
          \r\n\
          Ng,P-UPPER\r\n\
          Roe\r\n\
          Doe,p-a1\r\n",
    );
    let summary = t.ok(&["import", "--segment", "Messy", &input]);
    assert_eq!(counts(&summary), (7, 3, 1, 3, 3), "{summary}");
    let t2 = totals(&summary);
    assert_eq!(
        t2["header"], "line 1, PID column 2 \"pid\"",
        "the BOM hides no header"
    );
    let malformed: Vec<&str> = summary.lines().filter(|l| l.starts_with(&input)).collect();
    assert_eq!(
        malformed,
        [
            format!("{input}:6: \"bad!\""),
            format!("{input}:9: \"P-UPPER\""),
            format!("{input}:10: (no column 2)"),
        ],
        "malformed lines, with the lines an editor shows (a quoted line end is a line): {summary}"
    );
    let got: BTreeSet<String> = exported_pids(&t.ok(&["export", "--segment", "Messy"]))
        .into_iter()
        .collect();
    assert_eq!(
        got,
        BTreeSet::from(["p-a1".into(), "p-b2".into(), "p-c3".into()])
    );

    // --column, by number and by header, on a file without `pid`.
    let input = t.file("other.csv", b"who,person\nx,p-d4\n");
    let out = t.run(&["import", "--segment", "Other", &input]);
    assert_eq!(status(&out), Some(1), "no column named: {}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{input}:1: which column holds the PIDs?")));
    let summary = t.ok(&["import", "--segment", "Other", "--column", "person", &input]);
    assert_eq!(counts(&summary).1, 1);
    let summary = t.ok(&[
        "import",
        "--segment",
        "Other",
        "--column",
        "2",
        "--key",
        "by-number",
        &input,
    ]);
    assert_eq!(counts(&summary).2, 1, "the same PID again, now redundant");
}

/// A bad file stops the import where it is bad, naming the file and the
/// line, and applies nothing of the batch it is in.
fn unreadable_input_fails_naming_file_and_line(t: &Target) {
    let mut csv = String::new();
    for i in 0..(IMPORT_BATCH_SIZE as u64 + 5) {
        csv.push_str(&pid(i));
        csv.push('\n');
    }
    csv.push_str("\"p-open\n");
    let input = t.file("open.csv", csv.as_bytes());
    let out = t.run(&["import", "--segment", "Open", &input]);
    assert_eq!(status(&out), Some(1), "{}", stderr(&out));
    let line = IMPORT_BATCH_SIZE + 6;
    assert!(
        stderr(&out).contains(&format!("{input}:{line}: a quoted field is never closed")),
        "{}",
        stderr(&out)
    );
    let segments = t.segments();
    let s = segments.find_by_name(&t.org(), "Open").unwrap().unwrap();
    assert_eq!(
        s.current_size, IMPORT_BATCH_SIZE as u64,
        "the whole first batch is applied, nothing of the second"
    );

    let out = t.run(&["import", "--segment", "Open", "missing.csv"]);
    assert_eq!(status(&out), Some(1));
    assert!(
        stderr(&out).contains("missing.csv: cannot open it"),
        "{}",
        stderr(&out)
    );
}

/// Rows of the file the kill test imports: random PIDs, every 997th a
/// repeat of an earlier one, every 4,999th malformed.
const KILL_ROWS: u64 = 300_000;

fn kill_row(i: u64) -> String {
    match i {
        i if i % 4_999 == 4_998 => format!("bad-{i}"),
        i if i % 997 == 996 => pid(i / 2),
        i => pid(i),
    }
}

/// A SIGKILL in the middle of an import, then the same command again:
/// the counts are the uninterrupted import's and the ledger records each
/// PID's join once.
fn killed_import_resumes(t: &Target) {
    let mut csv = String::from("pid\n");
    let mut distinct = BTreeSet::new();
    let (mut malformed, mut repeats) = (0, 0);
    for i in 0..KILL_ROWS {
        let row = kill_row(i);
        if row.starts_with("bad") {
            malformed += 1;
        } else if !distinct.insert(row.clone()) {
            repeats += 1;
        }
        csv.push_str(&row);
        csv.push('\n');
    }
    let input = t.file("big.csv", csv.as_bytes());
    let segments = t.segments();
    let org = t.org();

    let mut child: Child = t
        .command(&["import", "--segment", "Big", &input])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill once two batches are in, before the last.
    let started = Instant::now();
    loop {
        let seq = segments.last_seq(&org).unwrap();
        if seq > 2 * IMPORT_BATCH_SIZE as u64 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the import never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let killed = child.wait().unwrap();
    assert_eq!(killed.code(), None, "killed by the signal, not finished");
    let s = segments.find_by_name(&org, "Big").unwrap().unwrap();
    let size_at_kill = segments.get(&org, s.id).unwrap().current_size;
    assert!(
        size_at_kill < distinct.len() as u64,
        "killed partway (size {size_at_kill})"
    );

    let rerun = t.run(&["import", "--segment", "Big", &input]);
    assert_eq!(status(&rerun), Some(0), "{}", stderr(&rerun));
    assert!(
        !stderr(&rerun).contains("made before"),
        "a resume is not a replay"
    );
    let summary = String::from_utf8(rerun.stdout).unwrap();
    assert_eq!(
        counts(&summary),
        (
            KILL_ROWS,
            distinct.len() as u64,
            repeats,
            malformed,
            distinct.len() as u64
        ),
        "the rerun counts as one uninterrupted import (killed at size {size_at_kill}): {summary}"
    );

    let mut joins: HashMap<String, u32> = HashMap::new();
    let mut after = 0;
    loop {
        let page = segments
            .changes_since(&org, PageOptions::new().after(after).limit(10_000))
            .unwrap();
        for change in &page.changes {
            if let ChangeKind::MemberAdded { pid } | ChangeKind::MemberReAdded { pid } =
                &change.kind
            {
                *joins.entry(pid.as_str().to_owned()).or_default() += 1;
            }
        }
        if page.changes.is_empty() {
            break;
        }
        after = page.next;
    }
    assert_eq!(joins.len(), distinct.len(), "every PID joined");
    assert!(joins.values().all(|&n| n == 1), "each PID joined once");

    // Once more: a replay of the finished import, which says so.
    let seq = segments.last_seq(&org).unwrap();
    let replay = t.run(&["import", "--segment", "Big", &input]);
    assert_eq!(status(&replay), Some(0));
    assert_eq!(
        counts(&String::from_utf8(replay.stdout.clone()).unwrap()),
        counts(&summary)
    );
    assert!(
        stderr(&replay).contains("made before under the same key"),
        "{}",
        stderr(&replay)
    );
    assert_eq!(
        segments.last_seq(&org).unwrap(),
        seq,
        "a replay writes nothing"
    );
}

/// Stdin: with `--key` the import is resumable (a rerun replays it);
/// without, it says it is not.
fn stdin_imports(t: &Target) {
    let input = format!("{}\n{}\nnope\n", pid(1), pid(2));
    let out = t.import_stdin(
        &["import", "--segment", "Piped", "--key", "piped-1", "-"],
        input.as_bytes(),
    );
    assert_eq!(status(&out), Some(0), "{}", stderr(&out));
    let summary = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(counts(&summary), (3, 2, 0, 1, 2), "{summary}");
    assert!(summary.contains("stdin:3: \"nope\""), "{summary}");
    assert!(!stderr(&out).contains("not resumable"));
    let again = t.import_stdin(
        &["import", "--segment", "Piped", "--key", "piped-1", "-"],
        input.as_bytes(),
    );
    assert_eq!(
        counts(&String::from_utf8(again.stdout).unwrap()),
        (3, 2, 0, 1, 2),
        "the same key replays the first outcome"
    );

    let out = t.import_stdin(&["import", "--segment", "Piped", "-"], input.as_bytes());
    assert_eq!(status(&out), Some(0));
    assert!(stderr(&out).contains("not resumable"), "{}", stderr(&out));
    assert_eq!(
        counts(&String::from_utf8(out.stdout).unwrap()),
        (3, 0, 2, 1, 2)
    );
}

/// `--as-of` lists the members of that time, with `joined_at`.
fn export_as_of(t: &Target) {
    let first = t.file(
        "first.csv",
        format!("{}\n{}\n", pid(10), pid(11)).as_bytes(),
    );
    t.ok(&["import", "--segment", "Grows", &first]);
    let history = t.ok(&["history"]);
    let last: serde_json::Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
    let then = last["at"].as_str().unwrap().to_owned();
    let second = t.file("second.csv", format!("{}\n", pid(12)).as_bytes());
    t.ok(&["import", "--segment", "Grows", &second]);

    let past = t.ok(&["export", "--segment", "Grows", "--as-of", &then]);
    let mut lines = past.lines();
    assert_eq!(lines.next(), Some("pid,first_added_at,joined_at"));
    let got: BTreeSet<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(got, BTreeSet::from([pid(10).as_str(), pid(11).as_str()]));
    let now = exported_pids(&t.ok(&["export", "--segment", "Grows"]));
    assert_eq!(now.len(), 3);
    let before = t.ok(&["export", "--segment", "Grows", "--as-of", "2000-01-01"]);
    assert_eq!(
        before, "pid,first_added_at,joined_at\n",
        "nobody before the first join"
    );
}

/// `history` writes the feed as NDJSON from `--after`; `--follow` shows
/// changes made while it runs.
fn history_follows(t: &Target) {
    let input = t.file("h.csv", format!("{}\n{}\n", pid(20), pid(21)).as_bytes());
    t.ok(&["import", "--segment", "Feed", &input]);
    let all: Vec<serde_json::Value> = t
        .ok(&["history"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = all.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "member_added", "member_added"]);
    assert_eq!(all[0]["name"], "Feed");
    let seqs: Vec<u64> = all.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let tail = t.ok(&["history", "--after", "2"]);
    assert_eq!(tail.lines().count(), 1);

    let mut follower = t
        .command(&["history", "--after", "3", "--follow", "--interval-ms", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let more = t.file("more.csv", format!("{}\n", pid(22)).as_bytes());
    t.ok(&["import", "--segment", "Feed", &more]);
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let next: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    follower.kill().unwrap();
    follower.wait().unwrap();
    assert_eq!(
        (next["seq"].as_u64(), next["pid"].as_str()),
        (Some(4), Some(pid(22).as_str()))
    );
}

/// Usage errors exit 2 and change nothing; other failures exit 1.
fn usage_errors_exit_2(t: &Target) {
    let input = t.file("u.csv", b"p-1\n");
    let long_key = "k".repeat(300);
    for args in [
        &["import", "--segment", "U"][..],
        &["import", "--segment", "U", "--column", "0", &input],
        &["import", "--segment", "   ", &input],
        &["import", "--segment", "U", "--key", &long_key, &input],
        &["export", "--segment", "U", "--format", "xml"],
        &["export", "--segment", "U", "--as-of", "yesterday"],
        &["history", "--interval-ms", "5"],
        &["frobnicate"],
    ] {
        let out = t.run(args);
        assert_eq!(status(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("error"), "{args:?}: a message");
    }
    let segments = t.segments();
    assert!(
        segments.find_by_name(&t.org(), "U").unwrap().is_none(),
        "a usage error changes nothing"
    );

    // No org, a bad org, no store, two stores.
    let bin = env!("CARGO_BIN_EXE_segments");
    for args in [
        vec!["list".to_owned()]
            .into_iter()
            .chain(t.store.clone())
            .collect::<Vec<_>>(),
        ["list", "--org", "has space"]
            .iter()
            .map(|s| s.to_string())
            .chain(t.store.clone())
            .collect(),
        vec!["list".into(), "--org".into(), "acme".into()],
        vec![
            "list".into(),
            "--org".into(),
            "acme".into(),
            "--db".into(),
            "a.db".into(),
            "--postgres".into(),
            "x".into(),
        ],
    ] {
        let out = Command::new(bin)
            .args(&args)
            .current_dir(t.dir.path())
            .output()
            .unwrap();
        assert_eq!(status(&out), Some(2), "{args:?}: {}", stderr(&out));
    }

    let out = t.run(&["export", "--segment", "Nobody"]);
    assert_eq!(
        status(&out),
        Some(1),
        "an unknown segment is a failure, not a usage error"
    );
    assert!(
        stderr(&out).contains("no segment named \"Nobody\""),
        "{}",
        stderr(&out)
    );
}

/// `migrate` creates the schema; read commands refuse a missing file.
fn migrate_and_missing_files(t: &Target) {
    assert!(t.ok(&["migrate"]).contains("schema up to date"));
    let out = Command::new(env!("CARGO_BIN_EXE_segments"))
        .args(["list", "--org", "acme", "--db"])
        .arg(t.path("typo.db"))
        .output()
        .unwrap();
    assert_eq!(status(&out), Some(1), "{}", stderr(&out));
    assert!(!t.path("typo.db").exists(), "a read creates no database");
}

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_without_the_feature_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_segments"))
        .args([
            "list",
            "--org",
            "acme",
            "--postgres",
            "postgresql://localhost/x",
        ])
        .output()
        .unwrap();
    assert_eq!(status(&out), Some(2));
    assert!(
        stderr(&out).contains("built without PostgreSQL"),
        "{}",
        stderr(&out)
    );
}

macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $test() {
                super::$test(&super::Target::sqlite(stringify!($test)));
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[test]
            fn $test() {
                super::$test(&super::Target::postgres(stringify!($test)));
            })*
        }
    };
}

on_every_store!(
    import_then_export_gives_the_same_set,
    header_only_and_empty_files,
    messy_csv_is_read_as_written,
    unreadable_input_fails_naming_file_and_line,
    killed_import_resumes,
    stdin_imports,
    export_as_of,
    history_follows,
    usage_errors_exit_2,
    migrate_and_missing_files,
);
