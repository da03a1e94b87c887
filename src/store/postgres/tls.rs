//! TLS for a [`PostgresStore`](super::PostgresStore)'s connections
//! (feature `postgres-tls`).

use std::fmt;

use postgres_native_tls::MakeTlsConnector;

use crate::{Error, Result, StorageFailure};

/// How a [`PostgresStore`](crate::PostgresStore) encrypts its connections
/// and which servers it trusts (feature `postgres-tls`); give it to
/// [`PostgresStoreBuilder::tls`](crate::PostgresStoreBuilder::tls).
///
/// Built on [`native-tls`](https://docs.rs/native-tls) (OpenSSL on Linux,
/// the platform's own TLS on macOS and Windows) through
/// `postgres-native-tls`. TLS 1.2 at least. When TLS is used, the server's
/// certificate is always verified: it must chain to a trusted root and
/// name the host the URL connects to (libpq's `sslmode=verify-full`).
///
/// ```no_run
/// use segments::{PostgresStore, PostgresTls};
/// // The cloud provider's CA bundle (several PEM certificates).
/// let bundle = std::fs::read("/etc/ssl/db/ca-bundle.pem")?;
/// let store = PostgresStore::builder("postgresql://app@db.internal/app?sslmode=require")
///     .tls(PostgresTls::root_certificates_pem(&bundle)?)
///     .connect()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PostgresTls {
    connector: native_tls::TlsConnector,
    /// What the roots are, for `Debug`.
    roots: Roots,
}

#[derive(Clone, Copy, Debug)]
enum Roots {
    System,
    Given(usize),
}

impl fmt::Debug for PostgresTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("PostgresTls");
        match self.roots {
            Roots::System => out.field("roots", &"system"),
            Roots::Given(n) => out.field("root_certificates", &n),
        };
        out.finish_non_exhaustive()
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
        Self::build(&[], Roots::System)
    }

    /// Trusts the certificates in `pem` and no others, as libpq's
    /// `sslrootcert=<file>` does: one or more PEM certificates, such as a
    /// cloud provider's CA bundle or a private CA's certificate.
    ///
    /// # Errors
    /// [`StorageFailure::CannotOpen`] when `pem` holds no certificate or
    /// one that does not parse.
    pub fn root_certificates_pem(pem: &[u8]) -> Result<Self> {
        let certificates = native_tls::Certificate::stack_from_pem(pem)
            .map_err(|e| cannot_open("the root certificates do not parse as PEM", e))?;
        if certificates.is_empty() {
            return Err(Error::storage_failure(
                StorageFailure::CannotOpen,
                "the root certificates hold no PEM certificate",
            ));
        }
        Self::build(&certificates, Roots::Given(certificates.len()))
    }

    fn build(certificates: &[native_tls::Certificate], roots: Roots) -> Result<Self> {
        let mut builder = native_tls::TlsConnector::builder();
        builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
        if !certificates.is_empty() {
            builder.disable_built_in_roots(true);
            for certificate in certificates {
                builder.add_root_certificate(certificate.clone());
            }
        }
        let connector = builder
            .build()
            .map_err(|e| cannot_open("cannot set up TLS", e))?;
        Ok(Self { connector, roots })
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
    fn system_roots_set_up() {
        let tls = PostgresTls::system_roots().unwrap();
        assert!(format!("{tls:?}").contains("system"), "{tls:?}");
    }
}
