//! `segments import` of a CSV file of [`Config::size`] random 14-character
//! PIDs (a `pid` header, one PID a line) into a fresh SQLite file, beside
//! the `add_members` fill of the same PIDs in [`BATCH`]-PID calls on
//! another fresh file (WAL, NORMAL); then `segments export` of those
//! members to a CSV file. The spec's row (§8) is at 10M
//! (`--size 10000000`): the import at ≥ 0.8 of the fill's rate, with a
//! peak RSS under 150 MB.
//!
//! The import is the command as a user runs it, timed whole: the process
//! starting, hashing the file for its key, reading the CSV, writing every
//! batch. The fill is timed as the fill cases time it: the `add_members`
//! calls only, the PIDs made untimed. The command is the release binary
//! beside the report's (`target/release/segments`, built by
//! `cargo build --release --features cli --bin segments`), or the one
//! `SEGMENTS_BIN` names. Its peak RSS is the kernel's maximum resident set
//! of the child, from `/usr/bin/time -f %M` (wait4's `ru_maxrss`) when that
//! is installed, else the highest `VmHWM` read from `/proc/PID/status`
//! every 10 ms while it runs.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use segments_engine::{NewSegment, OrgId, Segments, SqliteStore};

use super::pids::{self, PidForm};
use super::{BATCH, Config, Curve, Entry, count, fresh_dir, human};

/// The peak RSS the spec allows the import, in bytes.
const MAX_RSS_BYTES: u64 = 150 * 1024 * 1024;

/// The target: the import's rows/s over the fill's PIDs/s.
const TARGET: f64 = 0.8;

/// The case: one import, one fill, one export, reported as a small table.
pub fn sqlite(config: Config) -> Vec<Entry> {
    vec![Entry::Curve(Curve {
        id: "import/sqlite_file/pid14".to_owned(),
        run: Box::new(move || match binary() {
            Some(bin) => run(&bin, config.size),
            None => "segments import/export (SQLite file): skipped, the command is not built: \
                 cargo build --release --features cli --bin segments (or set SEGMENTS_BIN)"
                .to_owned(),
        }),
    })]
}

/// The `segments` binary: `SEGMENTS_BIN`, the one cargo built for the
/// criterion benches, or the release binary beside the report's.
fn binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("SEGMENTS_BIN") {
        return Some(bin.into());
    }
    if let Some(bin) = option_env!("CARGO_BIN_EXE_segments") {
        return Some(bin.into());
    }
    // target/release/examples/bench_report -> target/release/segments
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("segments");
    bin.exists().then_some(bin)
}

/// What one run of the command took.
struct Run {
    time: Duration,
    /// Peak resident set, bytes.
    peak_rss: u64,
    /// How the peak was measured.
    rss_from: &'static str,
    stdout: String,
}

/// Runs the command to its end, timing it and measuring its peak RSS.
fn run_command(bin: &Path, args: &[&str], dir: &Path) -> Run {
    let time_tool = Path::new("/usr/bin/time");
    let rss_file = dir.join("maxrss");
    let mut command = if time_tool.exists() {
        let mut c = Command::new(time_tool);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let start = Instant::now();
    let mut child = command.spawn().expect("the command starts");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let mut polled = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        polled = polled.max(vm_hwm(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    };
    let time = start.elapsed();
    let stdout = reader.join().unwrap();
    assert!(status.success(), "segments {args:?} failed: {status}");
    let (peak_rss, rss_from) = match std::fs::read_to_string(&rss_file) {
        Ok(kb) => (
            kb.trim()
                .parse::<u64>()
                .expect("time -f %M prints kilobytes")
                * 1024,
            "/usr/bin/time -f %M (ru_maxrss)",
        ),
        Err(_) => (polled, "VmHWM of /proc/PID/status, polled every 10 ms"),
    };
    Run {
        time,
        peak_rss,
        rss_from,
        stdout,
    }
}

/// `VmHWM` of a process, in bytes (the child itself: with `/usr/bin/time`
/// in between, that is `time`, which is why its own figure is preferred).
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn run(bin: &Path, size: u64) -> String {
    let form = PidForm::Short;
    let (dir, db) = fresh_dir("import.db");
    let csv = dir.path().join("pids.csv");
    {
        let mut out = BufWriter::new(File::create(&csv).unwrap());
        writeln!(out, "pid").unwrap();
        for b in 0..size / BATCH {
            for pid in pids::batch(form, b * BATCH, BATCH) {
                writeln!(out, "{pid}").unwrap();
            }
        }
        out.flush().unwrap();
    }
    let csv_bytes = std::fs::metadata(&csv).unwrap().len();
    let (db_arg, csv_arg) = (db.display().to_string(), csv.display().to_string());
    eprintln!("  import: {} rows ({} MB)", count(size), csv_bytes >> 20);
    let import = run_command(
        bin,
        &[
            "import",
            "--db",
            &db_arg,
            "--org",
            "acme",
            "--segment",
            "import",
            &csv_arg,
        ],
        dir.path(),
    );
    assert!(
        import.stdout.contains(&format!("\nadded: {size}\n")),
        "every PID added: {}",
        import.stdout
    );
    let import_rate = size as f64 / import.time.as_secs_f64();
    eprintln!(
        "  import: {} rows/s ({:.1?}), peak RSS {} MB",
        human(import_rate),
        import.time,
        import.peak_rss >> 20
    );

    let fill_time = fill(form, size);
    let fill_rate = size as f64 / fill_time.as_secs_f64();
    eprintln!("  fill: {} PIDs/s ({fill_time:.1?})", human(fill_rate));

    let exported = dir.path().join("export.csv");
    let export = run_command(
        bin,
        &[
            "export",
            "--db",
            &db_arg,
            "--org",
            "acme",
            "--segment",
            "import",
            exported.to_str().unwrap(),
        ],
        dir.path(),
    );
    let lines = std::io::BufRead::lines(std::io::BufReader::new(File::open(&exported).unwrap()))
        .count() as u64;
    assert_eq!(lines, size + 1, "a header and every member");
    let export_rate = size as f64 / export.time.as_secs_f64();
    drop(dir);

    let ratio = import_rate / fill_rate;
    let met = |ok: bool| if ok { "yes" } else { "NO" };
    format!(
        "segments import / export: {n} random {form} in a CSV file ({mb} MB), SQLite file (WAL, NORMAL), one run each\n\
         peak RSS from {rss_from}\n\n\
         | case | command | floor | ratio | target | met |\n|---|---|---|---|---|---|\n\
         | segments import of a {n}-line CSV vs add_members fill of the same PIDs in {b}-PID calls | {ir} rows/s ({it:.1?}) | {fr} PIDs/s ({ft:.1?}) | {ratio:.2} | >= {TARGET:.2} | {m1} |\n\
         | segments import, peak RSS | {rss} MB | | | < {max} MB | {m2} |\n\
         | segments export (CSV) of the {n} members | {er} rows/s ({et:.1?}), peak RSS {erss} MB | | | (reported) | - |",
        n = count(size),
        form = form.describe(),
        mb = csv_bytes >> 20,
        rss_from = import.rss_from,
        b = count(BATCH),
        ir = human(import_rate),
        it = import.time,
        fr = human(fill_rate),
        ft = fill_time,
        m1 = met(ratio >= TARGET),
        rss = import.peak_rss >> 20,
        max = MAX_RSS_BYTES >> 20,
        m2 = met(import.peak_rss < MAX_RSS_BYTES),
        er = human(export_rate),
        et = export.time,
        erss = export.peak_rss >> 20,
    )
}

/// The floor: `add_members` of the same PIDs in [`BATCH`]-PID calls on a
/// fresh file; the calls timed, the PIDs made untimed.
fn fill(form: PidForm, size: u64) -> Duration {
    let (dir, path) = fresh_dir("fill.db");
    let segments = Segments::new(SqliteStore::open(&path).unwrap());
    let org = OrgId::new("acme").unwrap();
    let id = segments.create(&org, NewSegment::new("fill")).unwrap().id;
    let mut time = Duration::ZERO;
    for b in 0..size / BATCH {
        let batch = pids::batch(form, b * BATCH, BATCH);
        let start = Instant::now();
        let out = segments.add_members(&org, id, &batch).unwrap();
        time += start.elapsed();
        assert_eq!(out.n_added, BATCH);
    }
    drop(segments);
    drop(dir);
    time
}
