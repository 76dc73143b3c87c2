//! What the SSO tests share: key files in a private temporary folder, owners, read-only keyrings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use sso::{ConfiguredKey, KeyPolicy, Keyring, SsoManager};
use vault::{MemoryVault, VaultAddress};
use zeroize::Zeroizing;

/// A folder deleted at drop, with the key file path inside it.
pub(crate) struct KeyDir {
    dir: tempfile::TempDir,
}

impl KeyDir {
    pub(crate) fn new() -> KeyDir {
        KeyDir { dir: tempfile::tempdir().expect("a temporary folder") }
    }

    pub(crate) fn key_file(&self) -> PathBuf {
        self.dir.path().join("sso-keys.json")
    }

    pub(crate) fn keyring(&self, policy: KeyPolicy) -> Keyring {
        Keyring::load_or_create(self.key_file(), policy).expect("the key file opens")
    }
}

pub(crate) fn owner(n: u8) -> VaultAddress {
    VaultAddress::from_bytes([n; 32])
}

/// A read-only keyring with `versions` configured keys (1..=versions), none used yet.
pub(crate) fn read_only_keyring(versions: u32, policy: KeyPolicy) -> Keyring {
    let keys = (1..=versions)
        .map(|version| ConfiguredKey {
            version,
            key: Zeroizing::new([version as u8; 32]),
            created: SystemTime::UNIX_EPOCH,
            seals_used: 0,
        })
        .collect();
    Keyring::read_only(Zeroizing::new([0xAA; 32]), keys, 1, policy).expect("a valid configuration")
}

/// A manager over a fresh key file and an empty memory vault.
pub(crate) fn manager(dir: &KeyDir) -> (SsoManager, Arc<Keyring>, Arc<MemoryVault>) {
    let keyring = Arc::new(dir.keyring(KeyPolicy::default()));
    let vault = Arc::new(MemoryVault::new());
    (SsoManager::new(Arc::clone(&keyring), vault.clone()), keyring, vault)
}
