//! Throwaway PostgreSQL servers for the tests.
//!
//! [`url()`] gives every test in a test process the URL of one shared server,
//! started lazily on first use, unless `SEGMENTS_POSTGRES_URL` names a server
//! to use instead. [`TestServer`] owns a server of its own, for tests that
//! stop and restart it (an outage, a crash).
//!
//! Each server lives in a fresh temporary directory (its data directory, its
//! log `server.log`, its unix socket) and listens on that socket and on
//! `127.0.0.1` at a port the kernel reported free, so any number of test
//! processes and threads may start servers at once. Durability settings
//! (`fsync`, `synchronous_commit`, `full_page_writes`) keep their defaults.
//!
//! The server binaries are looked up in `SEGMENTS_PG_BIN`, then in
//! `pg_config --bindir`, then in the newest `/usr/lib/postgresql/*/bin`, then
//! on `PATH`. `initdb` refuses to run as root: as root, the binaries run as
//! the `postgres` user (through `runuser`), which owns the directory.
//!
//! Nothing is left behind: a `TestServer` stops its server and removes its
//! directory when dropped, and every server also has a detached watchdog that
//! does the same (an immediate stop) once the test process is gone, however it
//! ended. That is how the shared server, a static never dropped, goes away.

#![allow(dead_code)]

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A server for the tests to use instead of starting one (a URL such as
/// `postgresql://user:password@host:5432/db`). Ignored when empty.
pub const URL_VAR: &str = "SEGMENTS_POSTGRES_URL";

/// The directory holding `initdb`, `pg_ctl` and `postgres`, if they are not
/// where they are looked for.
pub const BIN_VAR: &str = "SEGMENTS_PG_BIN";

/// The role and database every URL names (`initdb -U postgres`).
const SUPERUSER: &str = "postgres";

/// How long `pg_ctl` may wait for a start (crash recovery included) or a stop.
const PG_CTL_TIMEOUT_SECS: &str = "120";

/// How many ports to try when another process takes the free one first.
const PORT_ATTEMPTS: usize = 8;

/// A unix socket path is at most 107 bytes on Linux (`sun_path`).
const MAX_SOCKET_PATH: usize = 107;

/// The URL of a PostgreSQL server the tests may use: `SEGMENTS_POSTGRES_URL`
/// if set, else the `postgres` database of a throwaway server shared by the
/// whole test process, started on first call (thread-safe; callers wait for
/// the one start). Isolate tests from each other by schema, not by server.
pub fn url() -> String {
    if let Some(url) = env_url(URL_VAR) {
        return url;
    }
    shared().url()
}

/// The throwaway server shared by the test process.
fn shared() -> &'static TestServer {
    static SHARED: OnceLock<TestServer> = OnceLock::new();
    SHARED.get_or_init(TestServer::start)
}

/// The URL in the environment variable `var`, unless it is unset or empty.
fn env_url(var: &str) -> Option<String> {
    env::var_os(var).filter(|url| !url.is_empty()).map(|url| {
        url.into_string()
            .unwrap_or_else(|url| panic!("{var} is not valid UTF-8: {url:?}"))
    })
}

/// A PgBouncer for the tests to use instead of starting one, in front of
/// the server `SEGMENTS_POSTGRES_URL` names (needed with that variable).
pub const PGBOUNCER_URL_VAR: &str = "SEGMENTS_PGBOUNCER_URL";

/// The `pgbouncer` binary, if it is not where it is looked for
/// (`/usr/sbin/pgbouncer`, then `PATH`).
pub const PGBOUNCER_BIN_VAR: &str = "SEGMENTS_PGBOUNCER";

/// The URL of a PgBouncer in transaction pooling in front of the server of
/// [`url()`]: `SEGMENTS_PGBOUNCER_URL` if set, else one PgBouncer shared by
/// the whole test process, started on first call beside the throwaway
/// server ([`PgBouncer`]).
pub fn pgbouncer() -> String {
    if let Some(url) = env_url(PGBOUNCER_URL_VAR) {
        return url;
    }
    assert!(
        env_url(URL_VAR).is_none(),
        "{URL_VAR} names a server, and the tests cannot start a PgBouncer in front of it \
         (they do not know its password): set {PGBOUNCER_URL_VAR} to a PgBouncer in front of \
         that server, with pool_mode = transaction"
    );
    static SHARED: OnceLock<PgBouncer> = OnceLock::new();
    SHARED.get_or_init(|| PgBouncer::start(shared())).url()
}

/// Debian's PgBouncer (`apt-get install pgbouncer`) in front of a
/// [`TestServer`], in a temporary directory of its own (its configuration,
/// log and socket), listening on `127.0.0.1` at a free port: transaction
/// pooling (`pool_mode = transaction`), and the stock settings otherwise
/// (20 server connections per user and database, 100 clients, no
/// `ignore_startup_parameters`), with no authentication for the server's
/// superuser (`auth_type = trust`), as the server itself.
///
/// As root it runs as the `postgres` user (`-u postgres`: it refuses
/// root). Dropping it stops it (SIGTERM), and a detached watchdog does the
/// same once the test process is gone, however it ended.
pub struct PgBouncer {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
    /// Last field: removed after `Drop::drop` has stopped PgBouncer.
    dir: TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer in front of `server` and waits until it accepts
    /// connections; panics with its log if it does not.
    pub fn start(server: &TestServer) -> PgBouncer {
        let bin = pgbouncer_bin();
        let as_postgres = server.pg.as_postgres;
        let dir = tempfile::Builder::new()
            .prefix("segments-pgb-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for PgBouncer: {e}"));
        let chown = |path: &Path| {
            if as_postgres {
                let (uid, gid) = postgres_user();
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("cannot chown {} to postgres: {e}", path.display()));
            }
        };
        chown(dir.path());
        let log = dir.path().join("pgbouncer.log");
        let userlist = dir.path().join("userlist.txt");
        fs::write(&userlist, format!("\"{SUPERUSER}\" \"\"\n"))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", userlist.display()));
        chown(&userlist);
        let mut last_log = String::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let ini = dir.path().join("pgbouncer.ini");
            let text = format!(
                "[databases]\n\
                 * = host=127.0.0.1 port={server_port}\n\
                 \n\
                 [pgbouncer]\n\
                 pool_mode = transaction\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir = {dir}\n\
                 auth_type = trust\n\
                 auth_file = {userlist}\n\
                 logfile = {log}\n\
                 pidfile = {dir}/pgbouncer.pid\n",
                server_port = server.port(),
                dir = dir.path().display(),
                userlist = userlist.display(),
                log = log.display(),
            );
            fs::write(&ini, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", ini.display()));
            chown(&ini);
            let mut cmd = Command::new(&bin);
            if as_postgres {
                cmd.args(["-u", SUPERUSER]);
            }
            cmd.arg(&ini)
                .current_dir(dir.path())
                .env("LC_ALL", "C")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = cmd.spawn().unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (Debian: apt-get install pgbouncer, or set \
                     {PGBOUNCER_BIN_VAR}): {e}",
                    bin.display()
                )
            });
            let mut child = child;
            if wait_for_tcp(&mut child, port, &log) {
                let bouncer = PgBouncer {
                    child,
                    port,
                    log,
                    dir,
                };
                bouncer.spawn_watchdog();
                return bouncer;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = read_log(&log);
            let port_taken = last_log.contains("Address already in use");
            if !port_taken || attempt == PORT_ATTEMPTS {
                break;
            }
        }
        panic!("PgBouncer ({}) did not start:\n{last_log}", bin.display())
    }

    /// `postgresql://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{SUPERUSER}@127.0.0.1:{}/{SUPERUSER}",
            self.port
        )
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// A detached `sh` that waits for this process to end, then stops
    /// PgBouncer and removes its directory (as [`TestServer`]'s).
    #[allow(clippy::zombie_processes)] // it exits only after this process has
    fn spawn_watchdog(&self) {
        const SCRIPT: &str = r#"pid=$1; dir=$2; bouncer=$3
while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
kill -TERM "$bouncer" 2>/dev/null
rm -rf "$dir""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("segments-pgbouncer-watchdog")
            .arg(process::id().to_string())
            .arg(self.dir.path())
            .arg(self.child.id().to_string())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot spawn the PgBouncer watchdog (sh): {e}"));
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // SIGTERM: PgBouncer closes its connections and exits.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Waits until the PgBouncer `child` accepts TCP connections on `port`;
/// false if it exited first.
fn wait_for_tcp(child: &mut process::Child, port: u16, log: &Path) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "PgBouncer runs but {addr} refuses connections:\n{}",
                read_log(log)
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A log file's text so far.
fn read_log(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// The `pgbouncer` binary: `SEGMENTS_PGBOUNCER`, `/usr/sbin/pgbouncer`,
/// or on `PATH`.
fn pgbouncer_bin() -> PathBuf {
    if let Some(bin) = env::var_os(PGBOUNCER_BIN_VAR).filter(|bin| !bin.is_empty()) {
        return PathBuf::from(bin);
    }
    let debian = PathBuf::from("/usr/sbin/pgbouncer");
    if debian.is_file() {
        return debian;
    }
    env::var_os("PATH")
        .and_then(|path| {
            env::split_paths(&path)
                .map(|dir| dir.join("pgbouncer"))
                .find(|bin| bin.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "PgBouncer was not found (looked in {PGBOUNCER_BIN_VAR}, /usr/sbin and PATH); \
                 install it (Debian: apt-get install pgbouncer) or set {PGBOUNCER_URL_VAR}"
            )
        })
}

/// One throwaway PostgreSQL server in a temporary directory of its own.
///
/// Dropping it stops the server (`-m fast`) and removes the directory.
pub struct TestServer {
    /// The binaries, and whether they run as the `postgres` user.
    pg: &'static Binaries,
    /// The server's data directory, `<dir>/data`.
    data: PathBuf,
    /// The server log, `<dir>/server.log`.
    log: PathBuf,
    port: u16,
    /// TLS is on, and TCP connections must use it (`start_tls`); and
    /// whether they must also show a client certificate.
    tls: Option<ClientCertificates>,
    /// Last field: removed after `Drop::drop` has stopped the server.
    dir: TempDir,
}

impl TestServer {
    /// Creates a cluster in a fresh temporary directory (`initdb`), starts it
    /// (`pg_ctl start -w`) and waits until it accepts connections. Panics, with
    /// the tools' output and the server log, if any step fails.
    pub fn start() -> TestServer {
        Self::start_with(None)
    }

    /// [`start`](Self::start), with TLS on (`ssl = on`, with `cert_pem` and
    /// `key_pem` as the server's certificate and key), and TCP connections
    /// accepted only over TLS (`hostssl` lines in `pg_hba.conf`; the unix
    /// socket stays open, in plain text). With `client_ca_pem`, a TCP
    /// connection must also show a client certificate that this authority
    /// signed, naming the user (`cert` authentication).
    pub fn start_tls(cert_pem: &[u8], key_pem: &[u8], client_ca_pem: Option<&[u8]>) -> TestServer {
        Self::start_with(Some(TlsFiles {
            cert: cert_pem,
            key: key_pem,
            client_ca: client_ca_pem,
        }))
    }

    fn start_with(tls: Option<TlsFiles<'_>>) -> TestServer {
        let pg = binaries();
        let dir = tempfile::Builder::new()
            .prefix("segments-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for PostgreSQL: {e}"));
        let socket_len = dir.path().as_os_str().len() + "/.s.PGSQL.65535".len();
        assert!(
            socket_len <= MAX_SOCKET_PATH,
            "the temporary directory {} is too long a path for a unix socket in it; \
             set TMPDIR to a shorter directory",
            dir.path().display()
        );
        if pg.as_postgres {
            // Root created it 0700; the postgres user creates the cluster in it.
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!("cannot chown {} to postgres: {e}", dir.path().display())
            });
        }
        let server = TestServer {
            pg,
            data: dir.path().join("data"),
            log: dir.path().join("server.log"),
            port: 0,
            tls: tls.as_ref().map(|files| match files.client_ca {
                Some(_) => ClientCertificates::Required,
                None => ClientCertificates::NotAsked,
            }),
            dir,
        };
        // From here on a panic drops `server`, which cleans up; the watchdog
        // cleans up if the process dies some other way.
        server.spawn_watchdog();
        server.initdb();
        if let Some(files) = tls {
            server.require_tls(&files);
        }
        server.start_on_a_free_port()
    }

    /// `postgresql://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{SUPERUSER}@127.0.0.1:{}/{SUPERUSER}",
            self.port
        )
    }

    /// The TCP port on `127.0.0.1`, the same after [`start_again`](Self::start_again).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server the way a crash would (`pg_ctl stop -m immediate`: no
    /// shutdown checkpoint; the next start runs crash recovery). Returns once
    /// the server is gone.
    pub fn stop_immediate(&self) {
        let out = self.pg_ctl_stop("immediate");
        if !out.status.success() {
            self.fail("pg_ctl stop -m immediate", &out);
        }
    }

    /// Starts the same data directory on the same port again and waits until
    /// it accepts connections (after crash recovery, if it was stopped with
    /// [`stop_immediate`](Self::stop_immediate)).
    pub fn start_again(&self) {
        let out = self.pg_ctl_start();
        if !out.status.success() {
            self.fail(&format!("pg_ctl start (again, port {})", self.port), &out);
        }
        self.wait_for_tcp();
    }

    /// A hot standby of `primary` in a temporary directory of its own:
    /// its data copied with `pg_basebackup -R -c fast` (which writes the
    /// `primary_conninfo` and `standby.signal` that make it a standby),
    /// started on a free port of its own. Returns once it accepts
    /// connections and streams from the primary.
    ///
    /// It is not synchronous yet: see [`make_synchronous`](Self::make_synchronous).
    pub fn start_standby_of(primary: &TestServer) -> TestServer {
        let pg = primary.pg;
        let dir = tempfile::Builder::new()
            .prefix("segments-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for PostgreSQL: {e}"));
        if pg.as_postgres {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!("cannot chown {} to postgres: {e}", dir.path().display())
            });
        }
        let standby = TestServer {
            pg,
            data: dir.path().join("data"),
            log: dir.path().join("server.log"),
            port: 0,
            tls: None,
            dir,
        };
        standby.spawn_watchdog();
        let mut cmd = pg.command("pg_basebackup", standby.dir.path());
        cmd.arg("-D")
            .arg(&standby.data)
            .args(["-R", "-c", "fast", "-X", "stream", "-h", "127.0.0.1"])
            .args(["-p", &primary.port.to_string(), "-U", SUPERUSER]);
        let out = output(cmd, "pg_basebackup");
        if !out.status.success() {
            standby.fail("pg_basebackup", &out);
        }
        // The copy's own settings (port, socket directory) replace the
        // primary's, which came with the data directory.
        let standby = standby.start_on_a_free_port();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !primary.streams_to_a_standby() {
            assert!(
                Instant::now() < deadline,
                "the standby on port {} does not stream from the primary:\n{}",
                standby.port,
                standby.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        standby
    }

    /// Whether a standby streams from this server (`pg_stat_replication`).
    pub fn streams_to_a_standby(&self) -> bool {
        self.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            .map(|n| n.trim() != "0")
            .unwrap_or(false)
    }

    /// Makes every commit on this server wait for a standby to have it
    /// (`synchronous_standby_names = '*'`), once one streams.
    pub fn make_synchronous(&self) {
        assert!(
            self.streams_to_a_standby(),
            "a synchronous standby must stream first"
        );
        self.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
            .and_then(|_| self.psql("SELECT pg_reload_conf()"))
            .unwrap_or_else(|e| panic!("cannot make the standby synchronous: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
            .map(|n| n.trim() == "0")
            .unwrap_or(true)
        {
            assert!(
                Instant::now() < deadline,
                "the standby did not become synchronous:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes every commit on this server wait for a standby that never
    /// comes (`synchronous_standby_names = 'nobody'`): each commit is
    /// written and streamed to the standbys, and its client never told.
    /// (A commit waiting longer than its `statement_timeout` is cancelled,
    /// and then counts as committed, with a warning.)
    pub fn hold_commits(&self) {
        self.psql("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
            .and_then(|_| self.psql("SELECT pg_reload_conf()"))
            .unwrap_or_else(|e| panic!("cannot hold the commits: {e}"));
    }

    /// Promotes this standby to a primary (`pg_ctl promote -w`): returns
    /// once it accepts writes.
    pub fn promote(&self) {
        let mut cmd = self.pg.command("pg_ctl", self.dir.path());
        cmd.arg("promote")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS]);
        let out = output(cmd, "pg_ctl promote");
        if !out.status.success() {
            self.fail("pg_ctl promote", &out);
        }
    }

    /// One value from `psql` on the unix socket (as the superuser), or why
    /// it failed.
    fn psql(&self, sql: &str) -> Result<String, String> {
        let mut cmd = self.pg.command("psql", self.dir.path());
        cmd.arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                SUPERUSER,
            ])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let out = output(cmd, "psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        match fs::read(&self.log) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(cannot read {}: {e})", self.log.display()),
        }
    }

    fn initdb(&self) {
        let mut cmd = self.pg.command("initdb", self.dir.path());
        cmd.arg("-D")
            .arg(&self.data)
            .args(["--locale=C", "-E", "UTF8", "-A", "trust", "-U", SUPERUSER])
            // Skips only initdb's own final fsync of the new cluster (seconds);
            // the server's durability settings are untouched, and crash
            // recovery syncs the data directory before it replays anything.
            .arg("--no-sync");
        let out = output(cmd, "initdb");
        if !out.status.success() {
            self.fail("initdb", &out);
        }
        let conf = self.data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", conf.display()));
        text.push_str("\n# Throwaway test server settings (tests/support/postgres.rs).\n");
        text.push_str("include_if_exists = 'segments_test.conf'\n");
        fs::write(&conf, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
    }

    /// Puts the server's certificate and key (and the client authority's,
    /// if any) in the data directory, the key readable by its owner only,
    /// as the server demands, and lets TCP connections in over TLS only.
    fn require_tls(&self, tls: &TlsFiles<'_>) {
        let method = if tls.client_ca.is_some() {
            "cert"
        } else {
            "trust"
        };
        let hba = format!(
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 {method}\n\
             hostssl all all ::1/128 {method}\n"
        );
        let mut files = vec![
            ("server.crt", tls.cert, 0o644),
            ("server.key", tls.key, 0o600),
            ("pg_hba.conf", hba.as_bytes(), 0o600),
        ];
        if let Some(client_ca) = tls.client_ca {
            files.push(("client_ca.crt", client_ca, 0o644));
        }
        for (name, bytes, mode) in files {
            let path = self.data.join(name);
            fs::write(&path, bytes)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
            if self.pg.as_postgres {
                let (uid, gid) = postgres_user();
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("cannot chown {} to postgres: {e}", path.display()));
            }
        }
    }

    /// Writes the settings for `port` where `postgresql.conf` includes them.
    fn configure(&self, port: u16) {
        let mut conf = String::new();
        conf.push_str("listen_addresses = '127.0.0.1'\n");
        writeln!(conf, "port = {port}").unwrap();
        writeln!(
            conf,
            "unix_socket_directories = '{}'",
            self.dir
                .path()
                .to_str()
                .expect("a UTF-8 temporary directory")
                .replace('\'', "''")
        )
        .unwrap();
        conf.push_str("max_connections = 200\n");
        conf.push_str("shared_buffers = 128MB\n");
        if let Some(client_certificates) = self.tls {
            // server.crt and server.key in the data directory (`require_tls`).
            conf.push_str("ssl = on\n");
            if client_certificates == ClientCertificates::Required {
                conf.push_str("ssl_ca_file = 'client_ca.crt'\n");
            }
        }
        if cfg!(target_os = "linux") && self.major_version() >= 14 {
            // Before crash recovery, one syncfs() of the file system instead
            // of an fsync() per file of the data directory: as durable, and a
            // restart after `stop_immediate` takes a fraction of a second
            // instead of about three.
            conf.push_str("recovery_init_sync_method = syncfs\n");
        }
        let path = self.data.join("segments_test.conf");
        fs::write(&path, conf).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        if self.pg.as_postgres {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("cannot chown {} to postgres: {e}", path.display()));
        }
    }

    /// The cluster's major version, from `PG_VERSION` (`15`, or `9` for 9.6).
    fn major_version(&self) -> u32 {
        let path = self.data.join("PG_VERSION");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        text.trim()
            .split('.')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Starts the server on a port the kernel reports free; tries another if
    /// some other process binds that one between the check and the start.
    fn start_on_a_free_port(mut self) -> TestServer {
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            self.configure(port);
            let log_before = self.log().len();
            let out = self.pg_ctl_start();
            if out.status.success() {
                self.port = port;
                self.wait_for_tcp();
                return self;
            }
            let log = self.log();
            let tail = log.get(log_before..).unwrap_or(&log);
            let port_taken =
                tail.contains("could not bind") || tail.contains("Address already in use");
            if !port_taken || attempt == PORT_ATTEMPTS {
                self.fail(
                    &format!("pg_ctl start (port {port}, attempt {attempt})"),
                    &out,
                );
            }
        }
        unreachable!()
    }

    fn pg_ctl_start(&self) -> Output {
        let mut cmd = self.pg.command("pg_ctl", self.dir.path());
        cmd.arg("start")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS]);
        output(cmd, "pg_ctl")
    }

    fn pg_ctl_stop(&self, mode: &str) -> Output {
        let mut cmd = self.pg.command("pg_ctl", self.dir.path());
        cmd.arg("stop").arg("-D").arg(&self.data).args([
            "-m",
            mode,
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
        ]);
        output(cmd, "pg_ctl")
    }

    /// `pg_ctl -w` has seen the server ready; check that its TCP socket is
    /// there too (it is the address every URL names).
    fn wait_for_tcp(&self) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(_) => return,
                Err(e) if Instant::now() >= deadline => panic!(
                    "the PostgreSQL server in {} started but {addr} refuses connections: {e}\n\
                     --- server log ({}) ---\n{}",
                    self.dir.path().display(),
                    self.log.display(),
                    self.log()
                ),
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// A detached `sh` that waits for this process to end, then stops the
    /// server (`-m immediate`) if it still runs and removes the directory.
    /// Its own process group, so a Ctrl-C to the tests does not kill it, and
    /// no stdio, so `cargo test` does not wait for it to close a pipe.
    #[allow(clippy::zombie_processes)] // it exits only after this process has
    fn spawn_watchdog(&self) {
        const SCRIPT: &str = r#"pid=$1; dir=$2; shift 2
while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
if [ -e "$dir/data/postmaster.pid" ]; then "$@"; fi
rm -rf "$dir""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("segments-pg-watchdog")
            .arg(process::id().to_string())
            .arg(self.dir.path());
        if self.pg.as_postgres {
            cmd.args(["runuser", "-u", SUPERUSER, "--"]);
        }
        cmd.arg(self.pg.bin.join("pg_ctl"))
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", PG_CTL_TIMEOUT_SECS]);
        cmd.current_dir("/")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // Never waited for: it outlives this process on purpose.
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot spawn the PostgreSQL watchdog (sh): {e}"));
    }

    /// Panics with what a tool printed and the server log.
    fn fail(&self, what: &str, out: &Output) -> ! {
        let as_postgres = if self.pg.as_postgres {
            "\n(the tests run as root, so the server binaries run as the postgres user, which \
             must be able to enter every directory down to this one: set TMPDIR if need be)"
        } else {
            ""
        };
        panic!(
            "{what} failed ({status}) for the test server in {dir}{as_postgres}\n\
             --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n\
             --- server log ({log}) ---\n{server_log}",
            status = out.status,
            dir = self.dir.path().display(),
            stdout = String::from_utf8_lossy(&out.stdout).trim_end(),
            stderr = String::from_utf8_lossy(&out.stderr).trim_end(),
            log = self.log.display(),
            server_log = self.log().trim_end(),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Quietly: this may run while a failed test unwinds.
        if self.data.join("postmaster.pid").exists() {
            let stopped = self.pg_ctl_stop("fast").status.success();
            if !stopped {
                let _ = self.pg_ctl_stop("immediate");
            }
        }
        // `self.dir` is removed next, as the field drops.
    }
}

/// What a TLS server is given: its certificate and key (PEM), and the
/// authority whose client certificates it requires, if any.
struct TlsFiles<'a> {
    cert: &'a [u8],
    key: &'a [u8],
    client_ca: Option<&'a [u8]>,
}

/// Whether a TLS server asks its clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientCertificates {
    NotAsked,
    Required,
}

/// Where the server binaries are, and how to run them.
struct Binaries {
    /// Holds `initdb`, `pg_ctl` and `postgres`.
    bin: PathBuf,
    /// This process is root, so they run as the `postgres` user.
    as_postgres: bool,
}

impl Binaries {
    /// `program` from the bin directory, run as the `postgres` user if need
    /// be, in `cwd` (which that user must be able to enter), with untranslated
    /// messages and no stdin.
    fn command(&self, program: &str, cwd: &Path) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", SUPERUSER, "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        cmd.current_dir(cwd).env("LC_ALL", "C").stdin(Stdio::null());
        cmd
    }
}

/// Runs `cmd` to completion, capturing its output; panics if it cannot start.
fn output(mut cmd: Command, what: &str) -> Output {
    cmd.output().unwrap_or_else(|e| {
        let hint = if cmd.get_program() == "runuser" {
            " (runuser, from util-linux, runs the server binaries as the postgres user when the \
             tests run as root)"
        } else {
            ""
        };
        panic!("cannot run {what} ({cmd:?}): {e}{hint}")
    })
}

/// The binaries, found once per process.
fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| Binaries {
        bin: find_bin_dir(),
        as_postgres: running_as_root(),
    })
}

fn find_bin_dir() -> PathBuf {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Some(dir) = env::var_os(BIN_VAR).filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            has_initdb(&dir),
            "{BIN_VAR}={} holds no initdb; point it at the directory holding the PostgreSQL \
             server binaries (initdb, pg_ctl, postgres)",
            dir.display()
        );
        return dir;
    }
    if let Ok(out) = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_initdb(&dir) {
            return dir;
        }
    }
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .max();
    if let Some((_, dir)) = newest {
        return dir;
    }
    if let Some(dir) =
        env::var_os("PATH").and_then(|path| env::split_paths(&path).find(|dir| has_initdb(dir)))
    {
        return dir;
    }
    panic!(
        "the PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found; install them \
         (Debian: apt-get install postgresql) or set {URL_VAR} to a server the tests may use \
         (looked in {BIN_VAR}, `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH)"
    )
}

/// Whether this process runs as root (the owner of a directory it creates).
fn running_as_root() -> bool {
    let probe =
        tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
    let meta = fs::metadata(probe.path())
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", probe.path().display()));
    meta.uid() == 0
}

/// The `postgres` user's uid and gid, for a process running as root.
fn postgres_user() -> (u32, u32) {
    static USER: OnceLock<(u32, u32)> = OnceLock::new();
    *USER.get_or_init(|| {
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, SUPERUSER])
                .output()
                .unwrap_or_else(|e| panic!("cannot run id: {e}"));
            assert!(
                out.status.success(),
                "the tests run as root, and initdb refuses to, but there is no `{SUPERUSER}` \
                 user to run it as (`id {flag} {SUPERUSER}`: {}); create one, run the tests as \
                 another user, or set {URL_VAR}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("`id {flag} {SUPERUSER}` printed no number: {e}"))
        };
        (id("-u"), id("-g"))
    })
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}
