//! The SSO vault: stores opaque ciphertext by vault address and nothing else.
//!
//! This crate is a trust boundary. It never holds, receives or derives a key: it cannot depend on
//! the `sso` crate (cargo forbids the cycle, since `sso` depends on this one) nor on any AEAD
//! crate, and the test command checks both. Whatever it stores was sealed by the SSO manager
//! before it arrived, so a copy of the vault's storage reveals no credential.
//!
//! Backends, all behind [`VaultStore`]:
//! - [`MemoryVault`]: in memory, for tests and benchmarks.
//! - [`SqliteVault`]: a table in SQLite, in the core's database (the embedded default) or in a
//!   file of its own (the vault service's).
//! - [`PgVault`]: a table in PostgreSQL, in the core's database when several instances share one.
//! - [`GrpcVault`]: the vault service, the `podconnect-vault` process, over gRPC with mutual TLS
//!   (contract `podconnect.vault.v1`); [`VaultServer`] is that service over any other backend.

use std::fmt;

use async_trait::async_trait;

mod client;
mod memory;
mod postgres;
mod server;
mod sqlite;
mod wire;

pub use client::{GrpcVault, GrpcVaultConfig};
pub use memory::MemoryVault;
pub use postgres::PgVault;
pub use server::VaultServer;
pub use sqlite::SqliteVault;

/// Where one device user's entry lives: a keyed hash the SSO manager derives, which says nothing
/// about who the device user is.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VaultAddress([u8; 32]);

impl VaultAddress {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        VaultAddress(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`VaultAddress::to_hex`]'s form (64 lower-case hex characters); `None` for
    /// anything else, upper case included, so one address has one spelling.
    pub fn from_hex(text: &str) -> Option<Self> {
        if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(VaultAddress(bytes))
    }
}

impl fmt::Debug for VaultAddress {
    // Not secret, but long: the first bytes are enough to tell entries apart in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultAddress({}…)", hex::encode(&self.0[..4]))
    }
}

/// One stored entry: the key version it was sealed under (a hint for rotation and rewrap, also
/// inside the envelope) and the sealed bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct VaultEntry {
    pub key_version: u32,
    pub envelope: Vec<u8>,
}

impl fmt::Debug for VaultEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultEntry")
            .field("key_version", &self.key_version)
            .field("envelope_len", &self.envelope.len())
            .finish()
    }
}

/// Largest envelope the vault accepts (credentials are at most a few KiB sealed).
pub const MAX_ENVELOPE: usize = 16 * 1024;

/// Most entries one [`VaultStore::page`] call returns.
pub const MAX_PAGE: usize = 1000;

/// Refuses an entry no backend should store.
pub fn check_entry(entry: &VaultEntry) -> VaultResult<()> {
    if entry.envelope.is_empty() || entry.envelope.len() > MAX_ENVELOPE {
        return Err(VaultError::Invalid(format!(
            "an envelope must be 1 to {MAX_ENVELOPE} bytes, not {}",
            entry.envelope.len()
        )));
    }
    Ok(())
}

/// Why a vault call failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The vault cannot be reached or its storage failed; retrying later can succeed.
    #[error("the vault is unavailable: {0}")]
    Unavailable(String),
    /// The request was malformed (an envelope over [`MAX_ENVELOPE`], a bad page size).
    #[error("invalid vault request: {0}")]
    Invalid(String),
}

pub type VaultResult<T> = Result<T, VaultError>;

/// A vault backend: in memory, a table in the persistent store, or the vault service over gRPC.
#[async_trait]
pub trait VaultStore: Send + Sync + 'static {
    /// Stores `entry` at `address`, replacing what was there. True when something was replaced.
    async fn put(&self, address: &VaultAddress, entry: VaultEntry) -> VaultResult<bool>;
    /// The entry at `address`, if any.
    async fn get(&self, address: &VaultAddress) -> VaultResult<Option<VaultEntry>>;
    /// Deletes the entry at `address`. True when there was one.
    async fn delete(&self, address: &VaultAddress) -> VaultResult<bool>;
    /// Replaces the entry at `address` only while it still holds `expected` (compare and swap,
    /// so a rewrap never overwrites an enrollment that happened meanwhile). True when replaced.
    async fn replace_if(&self, address: &VaultAddress, expected: &VaultEntry, entry: VaultEntry) -> VaultResult<bool>;
    /// Up to `limit` entries in address order, starting after `after` (for rewrap).
    async fn page(&self, after: Option<&VaultAddress>, limit: usize) -> VaultResult<Vec<(VaultAddress, VaultEntry)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_has_one_spelling() {
        let address = VaultAddress::from_bytes([0xab; 32]);
        let hex = address.to_hex();
        assert_eq!(hex, "ab".repeat(32));
        assert_eq!(VaultAddress::from_hex(&hex), Some(address));
        assert_eq!(VaultAddress::from_hex(&hex.to_uppercase()), None);
        assert_eq!(VaultAddress::from_hex(&hex[..62]), None);
        assert_eq!(VaultAddress::from_hex(&format!("{hex}00")), None);
        assert_eq!(VaultAddress::from_hex(&format!("{}zz", &hex[..62])), None);
        assert_eq!(VaultAddress::from_hex(""), None);
    }

    #[test]
    fn debug_shows_no_envelope() {
        let entry = VaultEntry { key_version: 3, envelope: b"sealed-bytes".to_vec() };
        let shown = format!("{entry:?}");
        assert!(!shown.contains("sealed") && !shown.contains("115"), "{shown}");
        assert!(shown.contains("envelope_len: 12"), "{shown}");
    }
}

/// The trust boundary in the build: the vault's own dependencies name no cipher, no key ring and
/// not the SSO manager, so nothing in this crate can decrypt what it stores.
#[cfg(test)]
mod boundary {
    const FORBIDDEN: &[&str] = &[
        "sso",
        "aes",
        "aes-gcm",
        "aes-gcm-siv",
        "aead",
        "chacha20",
        "chacha20poly1305",
        "xchacha20poly1305",
        "ring",
        "aws-lc-rs",
        "openssl",
        "hmac",
        "hkdf",
        "jsonwebtoken",
        "orion",
        "sodiumoxide",
        "age",
    ];

    #[test]
    fn no_key_crates() {
        let manifest = include_str!("../Cargo.toml");
        let mut section = "";
        let mut checked = 0;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
                continue;
            }
            if !section.contains("dependencies") || line.is_empty() || line.starts_with('#') {
                continue;
            }
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            checked += 1;
            assert!(!FORBIDDEN.contains(&name), "the vault crate must not depend on {name} ({section})");
        }
        assert!(checked > 5, "the manifest's dependencies were not found");
    }
}
