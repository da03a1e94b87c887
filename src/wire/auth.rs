//! Who is calling: API keys to organizations.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::OrgId;

/// Maps the `x-api-key` header of a request to the organization it acts
/// for. The host implements it over its own key store, or uses [`KeyRing`].
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// The org `api_key` belongs to, or `None` for an unknown or revoked key.
    fn authenticate(&self, api_key: &str) -> Option<OrgId>;
}

/// API keys held as SHA-256 digests only: the ring never keeps a key
/// itself, so a dump of it (or of the host's config built from digests)
/// gives no usable key.
///
/// ```
/// use segments_engine::OrgId;
/// use segments_engine::wire::{Authenticator, KeyRing};
/// let mut ring = KeyRing::new();
/// ring.insert("mk_live_secret", OrgId::new("acme")?);
/// assert_eq!(ring.authenticate("mk_live_secret"), Some(OrgId::new("acme")?));
/// assert_eq!(ring.authenticate("mk_live_guess"), None);
/// # Ok::<(), segments_engine::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct KeyRing {
    orgs: HashMap<[u8; 32], OrgId>,
}

impl KeyRing {
    /// An empty ring: every request is unauthorized.
    pub fn new() -> Self {
        Self::default()
    }

    /// The SHA-256 digest of `api_key`, the form the ring stores.
    pub fn digest(api_key: &str) -> [u8; 32] {
        Sha256::digest(api_key.as_bytes()).into()
    }

    /// Lets `api_key` act for `org`; the key itself is not kept.
    pub fn insert(&mut self, api_key: &str, org: OrgId) {
        self.orgs.insert(Self::digest(api_key), org);
    }

    /// Lets the key whose SHA-256 digest is `digest` act for `org`, for hosts
    /// that store only digests.
    pub fn insert_digest(&mut self, digest: [u8; 32], org: OrgId) {
        self.orgs.insert(digest, org);
    }

    /// Revokes `api_key`; returns whether it was known.
    pub fn revoke(&mut self, api_key: &str) -> bool {
        self.orgs.remove(&Self::digest(api_key)).is_some()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.orgs.len()
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.orgs.is_empty()
    }
}

impl Authenticator for KeyRing {
    fn authenticate(&self, api_key: &str) -> Option<OrgId> {
        // Looking up a digest, not the key: how long the lookup takes says
        // nothing about how much of a guessed key was right.
        self.orgs.get(&Self::digest(api_key)).cloned()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither keys nor digests are printed.
        f.debug_struct("KeyRing")
            .field("keys", &self.orgs.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_as_digests_only() {
        let mut ring = KeyRing::new();
        ring.insert("mk_live_abc", OrgId::new("acme").unwrap());
        let debug = format!("{ring:?}");
        assert!(!debug.contains("mk_live_abc"), "{debug}");
        assert_eq!(ring.len(), 1);
        let mut by_digest = KeyRing::new();
        by_digest.insert_digest(KeyRing::digest("mk_live_abc"), OrgId::new("acme").unwrap());
        assert_eq!(
            by_digest.authenticate("mk_live_abc").unwrap().as_str(),
            "acme"
        );
        assert!(ring.revoke("mk_live_abc"));
        assert_eq!(
            ring.authenticate("mk_live_abc"),
            None,
            "a revoked key is unknown"
        );
        assert!(ring.is_empty());
    }
}
