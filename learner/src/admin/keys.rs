//! API keys and who a `/v1` call comes from.
//!
//! A key is minted from 32 random bytes the caller supplies (the HTTP layer takes them from the
//! OS): its secret is `mgk_` and those bytes in hex, shown once in the answer to
//! `POST /v1/keys`; the store keeps only the secret's SHA-256 (hex). A secret of 256 random bits
//! needs no slow password hash: nobody can search that space, so the digest cannot be inverted,
//! and looking a key up by its digest compares digests, not secrets, so the lookup's timing says
//! nothing about the secret. The key's id (`key_` and 8 of the bytes in hex) names it in lists,
//! the audit log and `DELETE /v1/keys/{id}`, and is not a credential.
//!
//! Who may do what ([`Principal::may`]):
//!
//! | credential (`Authorization: Bearer ...`) | read `/v1` | write pools, experiments, gates | manage keys, read the audit log |
//! | --- | --- | --- | --- |
//! | the learner's `--token` (bootstrap) | yes | yes | yes |
//! | a `write` key | yes | yes | no (403) |
//! | a `read` key | yes | no (403) | no (403) |
//! | none, an unknown or a revoked key | 401 | 401 | 401 |
//!
//! An `--open` learner (loopback only) asks for nothing here either, as everywhere else.

use sha2::{Digest, Sha256};

use crate::admin::model::Scope;
use crate::admin::store::ApiKey;

/// Every key secret starts with this, so a key is recognisable in a config file or a log.
pub const SECRET_PREFIX: &str = "mgk_";
/// Random bytes behind one key.
pub const KEY_BYTES: usize = 32;

/// A key just minted: the record to store, its secret (shown once) and the secret's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedKey {
    pub key: ApiKey,
    pub secret: String,
    pub secret_sha256: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `secret`, lowercase hex.
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A key of `scope` from `random` (the secret) and `id_random` (its id).
pub fn mint(
    random: &[u8; KEY_BYTES],
    scope: Scope,
    label: String,
    created_by: String,
    now_ms: u64,
) -> MintedKey {
    let secret = format!("{SECRET_PREFIX}{}", hex(random));
    let secret_sha256 = sha256_hex(&secret);
    // The id comes from the digest, not from the secret's bytes: it tells nothing about them.
    let id = format!("key_{}", &secret_sha256[..16]);
    MintedKey {
        key: ApiKey { id, scope, label, created_by, created_ms: now_ms, revoked_ms: None },
        secret,
        secret_sha256,
    }
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    /// Keys and the audit log: the bootstrap token only.
    Admin,
}

/// Who made a `/v1` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The learner's `--token`.
    LearnerToken,
    /// An API key that is not revoked.
    Key { id: String, scope: Scope },
    /// An `--open` learner: nobody asked.
    Open,
}

impl Principal {
    /// The audit log's `actor`.
    pub fn actor(&self) -> String {
        match self {
            Principal::LearnerToken => "learner-token".into(),
            Principal::Key { id, .. } => format!("key:{id}"),
            Principal::Open => "open".into(),
        }
    }

    pub fn may(&self, need: Need) -> bool {
        match (self, need) {
            (Principal::LearnerToken | Principal::Open, _) => true,
            (Principal::Key { .. }, Need::Read) => true,
            (Principal::Key { scope, .. }, Need::Write) => *scope == Scope::Write,
            (Principal::Key { .. }, Need::Admin) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sha256_matches_the_fips_vector() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn scopes_allow_what_the_table_says() {
        let read = Principal::Key { id: "k".into(), scope: Scope::Read };
        let write = Principal::Key { id: "k".into(), scope: Scope::Write };
        let can = |p: &Principal| [Need::Read, Need::Write, Need::Admin].map(|n| p.may(n));
        assert_eq!(can(&read), [true, false, false]);
        assert_eq!(can(&write), [true, true, false]);
        assert_eq!(can(&Principal::LearnerToken), [true, true, true]);
        assert_eq!(write.actor(), "key:k");
    }

    proptest! {
        /// Secrets carry every random byte, ids tell nothing of them, and the digest is what
        /// identifies the secret.
        #[test]
        fn minted_keys_are_distinct_and_hashed(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            let ka = mint(&a, Scope::Read, String::new(), "t".into(), 1);
            let kb = mint(&b, Scope::Write, String::new(), "t".into(), 1);
            prop_assert!(ka.secret.starts_with(SECRET_PREFIX));
            prop_assert_eq!(ka.secret.len(), SECRET_PREFIX.len() + 64);
            prop_assert_eq!(&ka.secret_sha256, &sha256_hex(&ka.secret));
            prop_assert!(!ka.secret.contains(&ka.key.id[4..]));
            prop_assert_eq!(a == b, ka.secret == kb.secret);
            prop_assert_eq!(a == b, ka.key.id == kb.key.id);
        }
    }
}
