//! `PostgresStore` over TLS (feature `postgres-tls`), against a throwaway
//! server of its own that takes TCP connections over TLS only, with
//! certificates made here: a store that trusts the server's authority talks
//! to it, one that does not, or that reaches it by a name its certificate
//! does not hold, is refused, and nothing falls back to plain text.

#![cfg(feature = "postgres-tls")]

mod support;

use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Name, X509NameBuilder};
use postgres::{Client, NoTls};
use segments::{Error, NewSegment, OrgId, PostgresStore, PostgresTls, Segments, StorageFailure};
use support::postgres::TestServer;

/// A certificate and its key.
struct Issued {
    cert: X509,
    key: PKey<Private>,
}

impl Issued {
    fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }
}

fn name(common_name: &str) -> X509Name {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", common_name).unwrap();
    name.build()
}

fn p256_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A self-signed certificate authority, valid from now for a day.
fn authority(common_name: &str) -> Issued {
    let key = p256_key();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name(common_name)).unwrap();
    b.set_issuer_name(&name(common_name)).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

/// A server certificate for `localhost` (and no other name or address),
/// signed by `ca`.
fn server_certificate(ca: &Issued) -> Issued {
    issue(ca, "localhost", Use::Server)
}

/// What a certificate is for.
#[derive(PartialEq)]
enum Use {
    /// A server's, for `localhost`.
    Server,
    /// A client's, for the user its common name names.
    Client,
}

fn issue(ca: &Issued, common_name: &str, usage: Use) -> Issued {
    let key = p256_key();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(2).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name(common_name)).unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    if usage == Use::Server {
        let names = SubjectAlternativeName::new()
            .dns("localhost")
            .build(&b.x509v3_context(Some(&ca.cert), None))
            .unwrap();
        b.append_extension(names).unwrap();
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
            .unwrap();
    } else {
        b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
            .unwrap();
    }
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    Issued {
        cert: b.build(),
        key,
    }
}

/// A server that takes TCP connections over TLS only, with a certificate
/// for `localhost` from the returned authority.
fn tls_server() -> (TestServer, Issued) {
    let ca = authority("segments test CA");
    let leaf = server_certificate(&ca);
    let server = TestServer::start_tls(
        &leaf.cert_pem(),
        &leaf.key.private_key_to_pem_pkcs8().unwrap(),
        None,
    );
    (server, ca)
}

fn url(host: &str, port: u16, sslmode: &str) -> String {
    format!("postgresql://postgres@{host}:{port}/postgres?sslmode={sslmode}")
}

/// Connects a store quickly: a refused connection fails in a second.
fn connect(url: &str, tls: Option<PostgresTls>) -> Result<PostgresStore, Error> {
    let mut builder = PostgresStore::builder(url).connect_timeout(Duration::from_secs(1));
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    builder.connect()
}

/// The error and its sources, one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[test]
fn a_store_with_tls_works_on_a_server_that_takes_tls_only() {
    let (server, ca) = tls_server();
    // Plain text is refused by this server: what works below is TLS.
    let Err(err) = Client::connect(&url("127.0.0.1", server.port(), "disable"), NoTls) else {
        panic!("the server takes TCP connections over TLS only");
    };
    assert!(chain(&err).contains("no encryption"), "{}", chain(&err));
    // A store without `tls` is told what to do.
    let refused = connect(&url("localhost", server.port(), "require"), None).unwrap_err();
    assert_eq!(
        refused.storage_kind(),
        Some(StorageFailure::Other),
        "{}",
        chain(&refused)
    );
    assert!(
        chain(&refused).contains("PostgresTls"),
        "{}",
        chain(&refused)
    );

    for sslmode in ["require", "prefer"] {
        let tls = PostgresTls::root_certificates_pem(&ca.cert_pem()).unwrap();
        let store = connect(&url("localhost", server.port(), sslmode), Some(tls))
            .unwrap_or_else(|e| panic!("sslmode={sslmode}: {}", chain(&e)));
        let segments = Segments::new(store);
        let org = OrgId::new(format!("tls-{sslmode}")).unwrap();
        let s = segments.create(&org, NewSegment::new("Over TLS")).unwrap();
        let added = segments
            .add_members(&org, s.id, &["p-a1b2c3d4e5f6", "p-0123456789ab"])
            .unwrap();
        assert_eq!(added.n_added, 2);
        assert_eq!(segments.get(&org, s.id).unwrap().current_size, 2);
    }
}

#[test]
fn a_server_the_roots_do_not_vouch_for_is_refused() {
    let (server, ca) = tls_server();
    let stranger = authority("another CA");
    let cases = [
        (
            "another authority's root",
            url("localhost", server.port(), "require"),
            PostgresTls::root_certificates_pem(&stranger.cert_pem()).unwrap(),
        ),
        (
            "the system's roots",
            url("localhost", server.port(), "require"),
            PostgresTls::system_roots().unwrap(),
        ),
        (
            // The right authority, but the certificate names `localhost`.
            "a name the certificate does not hold",
            url("127.0.0.1", server.port(), "require"),
            PostgresTls::root_certificates_pem(&ca.cert_pem()).unwrap(),
        ),
        (
            // `prefer` does not fall back to plain text either.
            "another authority's root, sslmode=prefer",
            url("localhost", server.port(), "prefer"),
            PostgresTls::root_certificates_pem(&stranger.cert_pem()).unwrap(),
        ),
    ];
    for (what, url, tls) in cases {
        let err = connect(&url, Some(tls)).expect_err(what);
        // Not `Unavailable`: trying again would fail the same way.
        assert_eq!(
            err.storage_kind(),
            Some(StorageFailure::Other),
            "{what}: {}",
            chain(&err)
        );
        assert!(
            chain(&err).contains("certificate"),
            "{what}: the error says why: {}",
            chain(&err)
        );
    }
}

#[test]
fn the_unix_socket_needs_no_tls() {
    let (server, _ca) = tls_server();
    // PostgreSQL offers no TLS on a unix socket; with `prefer`, a store set
    // up for TLS connects there in plain text.
    let url = format!(
        "host={} port={} user=postgres dbname=postgres",
        server.socket_dir().display(),
        server.port()
    );
    let store = connect(&url, Some(PostgresTls::system_roots().unwrap())).unwrap();
    let segments = Segments::new(store);
    let org = OrgId::new("tls-socket").unwrap();
    segments.create(&org, NewSegment::new("Local")).unwrap();
}

#[test]
fn a_client_certificate_is_shown_to_a_server_that_asks() {
    let ca = authority("segments test CA");
    let clients = authority("segments test client CA");
    let leaf = server_certificate(&ca);
    let server = TestServer::start_tls(
        &leaf.cert_pem(),
        &leaf.key.private_key_to_pem_pkcs8().unwrap(),
        Some(&clients.cert_pem()),
    );
    let url = url("localhost", server.port(), "require");
    let roots = || PostgresTls::root_certificates_pem(&ca.cert_pem()).unwrap();

    // No certificate, or one for another user: refused, and not as
    // `Unavailable`.
    let err = connect(&url, Some(roots())).unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::Other),
        "{}",
        chain(&err)
    );
    let someone_else = issue(&clients, "someone_else", Use::Client);
    let tls = roots()
        .client_certificate_pem(
            &someone_else.cert_pem(),
            &someone_else.key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
    let err = connect(&url, Some(tls)).unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageFailure::Other),
        "{}",
        chain(&err)
    );
    assert!(
        chain(&err).contains("certificate authentication failed"),
        "{}",
        chain(&err)
    );

    // The user's own certificate, from the authority the server trusts.
    let postgres = issue(&clients, "postgres", Use::Client);
    let tls = roots()
        .client_certificate_pem(
            &postgres.cert_pem(),
            &postgres.key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
    assert!(
        format!("{tls:?}").contains("client_certificate: true"),
        "{tls:?}"
    );
    let segments =
        Segments::new(connect(&url, Some(tls)).unwrap_or_else(|e| panic!("{}", chain(&e))));
    let org = OrgId::new("tls-client").unwrap();
    let s = segments
        .create(&org, NewSegment::new("Mutual TLS"))
        .unwrap();
    assert_eq!(segments.get(&org, s.id).unwrap().current_size, 0);
}
