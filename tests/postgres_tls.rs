//! `PostgresStore` over TLS (feature `postgres-tls`), against throwaway
//! servers of its own that take TCP connections over TLS only, with the
//! certificates of `tests/tls/` (made by `tests/tls/make.sh`): a store
//! that trusts the server's authority talks to it; one that does not, or
//! that reaches it by a name its certificate does not hold, is refused; a
//! store with TLS never talks to a TCP server in plain text; a server that
//! asks for a client certificate gets the one given.

#![cfg(feature = "postgres-tls")]

mod support;

use std::process::Command;
use std::time::Duration;

use postgres::{Client, NoTls};
use segments_engine::{
    Error, NewSegment, OrgId, PostgresStore, PostgresTls, Segments, StorageFailure,
};
use support::postgres::TestServer;

const CA: &[u8] = include_bytes!("tls/ca.pem");
const SERVER_CERT: &[u8] = include_bytes!("tls/server.pem");
const SERVER_KEY: &[u8] = include_bytes!("tls/server.key");
const OTHER_CA: &[u8] = include_bytes!("tls/other_ca.pem");
const CLIENT_CA: &[u8] = include_bytes!("tls/client_ca.pem");
const CLIENT_POSTGRES: (&[u8], &[u8]) = (
    include_bytes!("tls/client_postgres.pem"),
    include_bytes!("tls/client_postgres.key"),
);
const CLIENT_SOMEONE_ELSE: (&[u8], &[u8]) = (
    include_bytes!("tls/client_someone_else.pem"),
    include_bytes!("tls/client_someone_else.key"),
);

/// A server that takes TCP connections over TLS only, with a certificate
/// for `localhost` from [`CA`].
fn tls_server() -> TestServer {
    TestServer::start_tls(SERVER_CERT, SERVER_KEY, None)
}

/// A URL naming the server as `host` (which its certificate is checked
/// against) and reaching it at 127.0.0.1, where it listens, whatever
/// `host` resolves to; `sslmode` as given, if any.
fn url(host: &str, port: u16, sslmode: Option<&str>) -> String {
    let mut url = format!("postgresql://postgres@{host}:{port}/postgres?hostaddr=127.0.0.1");
    if let Some(mode) = sslmode {
        url.push_str(&format!("&sslmode={mode}"));
    }
    url
}

/// A store, given 10 s to connect (TLS handshakes on a loaded machine).
fn connect(url: &str, tls: Option<PostgresTls>) -> Result<PostgresStore, Error> {
    let mut builder = PostgresStore::builder(url).connect_timeout(Duration::from_secs(10));
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    builder.connect()
}
/// A store that is expected to be refused for a reason that would not
/// pass, which the error's chain says (`why`): `StorageFailure::Other`,
/// not `Unavailable`, as trying again would fail the same way (`connect`
/// returns as soon as an attempt fails that way). `what` names the case.
fn refused(url: &str, tls: Option<PostgresTls>, what: &str, why: &str) {
    let err = connect(url, tls).expect_err(what);
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::Other),
        "{what}: {}",
        chain(&err)
    );
    assert!(
        chain(&err).contains(why),
        "{what}: the error says why ({why}): {}",
        chain(&err)
    );
}

fn roots(pem: &[u8]) -> PostgresTls {
    PostgresTls::root_certificates_pem(pem).unwrap()
}

/// The error and its sources, one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Creates a segment and adds two members through `store`.
fn works(store: PostgresStore, org: &str) {
    let segments = Segments::new(store);
    let org = OrgId::new(org).unwrap();
    let s = segments.create(&org, NewSegment::new("Over TLS")).unwrap();
    let added = segments
        .add_members(&org, s.id, &["p-a1b2c3d4e5f6", "p-0123456789ab"])
        .unwrap();
    assert_eq!(added.n_added, 2);
    assert_eq!(segments.get(&org, s.id).unwrap().current_size, 2);
}

#[test]
fn a_store_with_tls_works_on_a_server_that_takes_tls_only() {
    let server = tls_server();
    // Plain text is refused by this server: what works below is TLS.
    let plain = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        server.port()
    );
    let Err(err) = Client::connect(&plain, NoTls) else {
        panic!("the server takes TCP connections over TLS only");
    };
    assert!(chain(&err).contains("pg_hba.conf"), "{}", chain(&err));
    // A store without `tls` is told what to do.
    refused(
        &url("localhost", server.port(), Some("require")),
        None,
        "no tls",
        "PostgresTls",
    );

    for sslmode in [Some("require"), Some("prefer"), None] {
        let store = connect(&url("localhost", server.port(), sslmode), Some(roots(CA)))
            .unwrap_or_else(|e| panic!("sslmode={sslmode:?}: {}", chain(&e)));
        works(store, &format!("tls-{}", sslmode.unwrap_or("default")));
    }
}

#[test]
fn a_server_the_roots_do_not_vouch_for_is_refused() {
    let server = tls_server();
    let port = server.port();
    let cases = [
        (
            "another authority's root",
            url("localhost", port, Some("require")),
            roots(OTHER_CA),
        ),
        (
            "the system's roots",
            url("localhost", port, Some("require")),
            PostgresTls::system_roots().unwrap(),
        ),
        (
            // The right authority, but the certificate names `localhost`.
            "a name the certificate does not hold",
            url("127.0.0.1", port, Some("require")),
            roots(CA),
        ),
        (
            // `prefer` does not fall back to plain text either.
            "another authority's root, sslmode=prefer",
            url("localhost", port, Some("prefer")),
            roots(OTHER_CA),
        ),
    ];
    for (what, url, tls) in cases {
        refused(&url, Some(tls), what, "certificate");
    }
}

#[test]
fn a_store_with_tls_never_talks_plain_text_over_tcp() {
    // A server without TLS: a store given `tls` refuses it unless the URL
    // says `sslmode=disable`, whether it says `prefer` or nothing.
    let server = TestServer::start();
    for sslmode in [None, Some("prefer"), Some("require")] {
        refused(
            &url("localhost", server.port(), sslmode),
            Some(roots(CA)),
            &format!("sslmode={sslmode:?}"),
            "does not support TLS",
        );
    }
    let store = connect(
        &url("localhost", server.port(), Some("disable")),
        Some(roots(CA)),
    )
    .unwrap();
    works(store, "tls-disabled");
}

#[test]
fn the_unix_socket_needs_no_tls() {
    let server = tls_server();
    // PostgreSQL offers no TLS on a unix socket; a store set up for TLS
    // connects there in plain text.
    let url = format!(
        "host={} port={} user=postgres dbname=postgres",
        server.socket_dir().display(),
        server.port()
    );
    works(
        connect(&url, Some(PostgresTls::system_roots().unwrap())).unwrap(),
        "tls-socket",
    );
}

#[test]
fn a_client_certificate_is_shown_to_a_server_that_asks() {
    let server = TestServer::start_tls(SERVER_CERT, SERVER_KEY, Some(CLIENT_CA));
    let url = url("localhost", server.port(), Some("require"));
    // No certificate, or one for another user: refused, and not as
    // `Unavailable`.
    refused(
        &url,
        Some(roots(CA)),
        "no client certificate",
        "certificate",
    );
    let (cert, key) = CLIENT_SOMEONE_ELSE;
    refused(
        &url,
        Some(roots(CA).client_certificate_pem(cert, key).unwrap()),
        "another user's certificate",
        "certificate authentication failed",
    );
    // The user's own certificate, from the authority the server trusts.
    let (cert, key) = CLIENT_POSTGRES;
    let tls = roots(CA).client_certificate_pem(cert, key).unwrap();
    assert!(
        format!("{tls:?}").contains("client_certificate: true"),
        "{tls:?}"
    );
    works(
        connect(&url, Some(tls)).unwrap_or_else(|e| panic!("{}", chain(&e))),
        "tls-client",
    );
}

/// The variable that makes [`system_roots_are_the_systems_and_given_roots_replace_them`]
/// the child half of itself, with the server's port.
const CHILD_PORT: &str = "SEGMENTS_TLS_TEST_CHILD_PORT";

#[test]
fn system_roots_are_the_systems_and_given_roots_replace_them() {
    if let Ok(port) = std::env::var(CHILD_PORT) {
        // The child: OpenSSL's default trust store is the file
        // SSL_CERT_FILE names, which holds the server's authority.
        let port: u16 = port.parse().unwrap();
        let url = url("localhost", port, Some("require"));
        works(
            connect(&url, Some(PostgresTls::system_roots().unwrap()))
                .unwrap_or_else(|e| panic!("the system's roots: {}", chain(&e))),
            "tls-system",
        );
        // Given roots replace the system's: the system's would do, these
        // do not.
        refused(&url, Some(roots(OTHER_CA)), "given roots", "certificate");
        println!("child checked");
        return;
    }
    let server = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let trusted = dir.path().join("trusted.pem");
    std::fs::write(&trusted, CA).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "system_roots_are_the_systems_and_given_roots_replace_them",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PORT, server.port().to_string())
        .env("SSL_CERT_FILE", &trusted)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child checked"),
        "the child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
