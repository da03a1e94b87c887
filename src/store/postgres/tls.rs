//! TLS for a [`PostgresStore`](super::PostgresStore)'s connections
//! (feature `postgres-tls`).

use std::fmt;

use postgres_native_tls::MakeTlsConnector;

use crate::{Error, Result, StorageFailure};

/// How a [`PostgresStore`](crate::PostgresStore) encrypts its connections,
/// which servers it trusts, and the certificate it shows if asked (feature
/// `postgres-tls`); give it to
/// [`PostgresStoreBuilder::tls`](crate::PostgresStoreBuilder::tls).
///
/// Built on [`native-tls`](https://docs.rs/native-tls) (OpenSSL on Linux,
/// the platform's own TLS on macOS and Windows) through
/// `postgres-native-tls`. TLS 1.2 at least. TCP connections must use it,
/// and the server's certificate is always verified: it must chain to a
/// trusted root and name the host the URL connects to (libpq's
/// `sslmode=verify-full`).
///
/// ```no_run
/// use segments_engine::{PostgresStore, PostgresTls};
/// // The cloud provider's CA bundle (several PEM certificates).
/// let bundle = std::fs::read("/etc/ssl/db/ca-bundle.pem")?;
/// let store = PostgresStore::builder("postgresql://app@db.internal/app")
///     .tls(PostgresTls::root_certificates_pem(&bundle)?)
///     .connect()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PostgresTls {
    connector: native_tls::TlsConnector,
    /// The roots trusted instead of the system's; none: the system's.
    roots: Vec<native_tls::Certificate>,
    /// The client certificate and key shown to a server that asks.
    identity: Option<native_tls::Identity>,
}

impl fmt::Debug for PostgresTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("PostgresTls");
        if self.roots.is_empty() {
            out.field("roots", &"system");
        } else {
            out.field("root_certificates", &self.roots.len());
        }
        out.field("client_certificate", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresTls {
    /// Trusts the system's root certificates (its trust store), as libpq's
    /// `sslrootcert=system` does: for a server whose certificate a public
    /// certificate authority signed.
    ///
    /// # Errors
    /// [`StorageFailure::CannotOpen`] when the TLS library cannot be set up.
    pub fn system_roots() -> Result<Self> {
        Self::build(Vec::new(), None)
    }

    /// Trusts the certificates in `pem` and no others, as libpq's
    /// `sslrootcert=<file>` does: one or more PEM certificates, such as a
    /// cloud provider's CA bundle or a private CA's certificate.
    ///
    /// # Errors
    /// [`StorageFailure::CannotOpen`] when `pem` holds no certificate or
    /// one that does not parse.
    pub fn root_certificates_pem(pem: &[u8]) -> Result<Self> {
        let roots = native_tls::Certificate::stack_from_pem(pem)
            .map_err(|e| cannot_open("the root certificates do not parse as PEM", e))?;
        if roots.is_empty() {
            return Err(Error::storage_failure(
                StorageFailure::CannotOpen,
                "the root certificates hold no PEM certificate",
            ));
        }
        Self::build(roots, None)
    }

    /// Shows a client certificate to servers that ask for one (`cert`
    /// authentication, or `clientcert=verify-ca` / `verify-full`, in
    /// `pg_hba.conf`), as libpq's `sslcert` and `sslkey`: `cert_pem` is
    /// the certificate chain, leaf first, and `key_pem` the leaf's private
    /// key in PKCS #8 PEM (`-----BEGIN PRIVATE KEY-----`; `openssl pkcs8
    /// -topk8 -nocrypt` converts other forms).
    ///
    /// # Errors
    /// [`StorageFailure::CannotOpen`] when the certificate or the key does
    /// not parse, or they do not go together.
    pub fn client_certificate_pem(self, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let identity = native_tls::Identity::from_pkcs8(cert_pem, key_pem)
            .map_err(|e| cannot_open("the client certificate or its key does not parse", e))?;
        Self::build(self.roots, Some(identity))
    }

    fn build(
        roots: Vec<native_tls::Certificate>,
        identity: Option<native_tls::Identity>,
    ) -> Result<Self> {
        let mut builder = native_tls::TlsConnector::builder();
        builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
        if !roots.is_empty() {
            builder.disable_built_in_roots(true);
            for root in &roots {
                builder.add_root_certificate(root.clone());
            }
        }
        if let Some(identity) = &identity {
            builder.identity(identity.clone());
        }
        let connector = builder
            .build()
            .map_err(|e| cannot_open("cannot set up TLS", e))?;
        Ok(Self {
            connector,
            roots,
            identity,
        })
    }

    /// The connector the pool's manager uses.
    pub(super) fn connector(&self) -> MakeTlsConnector {
        MakeTlsConnector::new(self.connector.clone())
    }
}

fn cannot_open(what: &str, e: native_tls::Error) -> Error {
    Error::storage_failure(StorageFailure::CannotOpen, format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_that_are_not_pem_are_refused() {
        for pem in [
            &b""[..],
            b"not a certificate",
            b"-----BEGIN CERTIFICATE-----\nbm90IGRlcg==\n-----END CERTIFICATE-----\n",
        ] {
            let err = PostgresTls::root_certificates_pem(pem).unwrap_err();
            assert_eq!(
                err.storage_kind(),
                Some(StorageFailure::CannotOpen),
                "{pem:?}: {err:?}"
            );
        }
    }

    #[test]
    fn a_client_certificate_that_does_not_parse_is_refused() {
        let err = PostgresTls::system_roots()
            .unwrap()
            .client_certificate_pem(b"not a certificate", b"not a key")
            .unwrap_err();
        assert_eq!(
            err.storage_kind(),
            Some(StorageFailure::CannotOpen),
            "{err:?}"
        );
    }

    #[test]
    fn system_roots_set_up() {
        let tls = PostgresTls::system_roots().unwrap();
        let shown = format!("{tls:?}");
        assert!(shown.contains("system"), "{shown}");
        assert!(shown.contains("client_certificate: false"), "{shown}");
    }
}
