//! Rotation and rewrap through the manager: Vault's rotation test as a script, rewrap that
//! counts, pages, skips what it cannot open, and never overwrites a newer enrollment.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sso::{Credentials, KeyPolicy, OpenError, Purpose, RewrapReport, SsoError, SsoManager};
use vault::{MemoryVault, VaultAddress, VaultEntry, VaultResult, VaultStore};
use zeroize::Zeroizing;

use crate::support::{KeyDir, manager};

fn credentials(n: u32) -> Credentials {
    Credentials { username: format!("user{n}@example.com"), password: Zeroizing::new(format!("secret-{n}")) }
}

#[tokio::test]
async fn rotation_script() {
    let dir = KeyDir::new();
    let (manager, _keyring, vault) = manager(&dir);
    let users: Vec<VaultAddress> =
        (1..=4).map(|n| manager.address_of("https://idp.example", &format!("u{n}"))).collect();

    for (n, address) in (1..=4).zip(&users) {
        if n > 1 {
            assert_eq!(manager.rotate_key().await.unwrap().version, n);
        }
        assert!(!manager.store(address, &credentials(n)).await.unwrap());
        assert_eq!(vault.get(address).await.unwrap().unwrap().key_version, n);
    }
    assert_eq!(manager.latest_version(), 4);
    for (n, address) in (1..=4).zip(&users) {
        assert_eq!(manager.load(address).await.unwrap(), Some(credentials(n)));
    }

    manager.set_min_decryption_version(3).unwrap();
    for (n, address) in (1..=4).zip(&users) {
        match manager.load(address).await {
            Err(SsoError::Unseal(OpenError::TooOld { version, min: 3 })) if n < 3 => assert_eq!(version, n),
            Ok(Some(found)) if n >= 3 => assert_eq!(found, credentials(n)),
            other => panic!("user {n}: {other:?}"),
        }
    }

    manager.set_min_decryption_version(1).unwrap();
    for (n, address) in (1..=4).zip(&users) {
        assert_eq!(manager.load(address).await.unwrap(), Some(credentials(n)), "user {n} after lowering");
    }

    let mut before = Vec::new();
    for address in &users {
        before.push(vault.get(address).await.unwrap().unwrap());
    }
    let report = manager.rewrap().await.unwrap();
    assert_eq!(report, RewrapReport { key_version: 4, rewrapped: 3, already_current: 1, failed: 0 });
    for (n, (address, old)) in (1..=4).zip(users.iter().zip(&before)) {
        let now = vault.get(address).await.unwrap().unwrap();
        assert_eq!(now.key_version, 4);
        assert_eq!(sso::envelope::key_version(&now.envelope), Some(4));
        assert_eq!(now == *old, n == 4, "user {n}: replaced exactly when it was under an older version");
        assert_eq!(manager.load(address).await.unwrap(), Some(credentials(n)), "user {n}: plaintext unchanged");
    }

    let again = manager.rewrap().await.unwrap();
    assert_eq!(again, RewrapReport { key_version: 4, rewrapped: 0, already_current: 4, failed: 0 });

    // Rewrapped entries no longer need the old versions.
    manager.set_min_decryption_version(4).unwrap();
    for (n, address) in (1..=4).zip(&users) {
        assert_eq!(manager.load(address).await.unwrap(), Some(credentials(n)));
    }
}

#[tokio::test]
async fn rewrap_pages_through_more_than_one_page() {
    let dir = KeyDir::new();
    let (manager, _keyring, vault) = manager(&dir);
    let count = vault::MAX_PAGE as u32 * 2 + 345;
    for n in 0..count {
        manager.store(&manager.address_of("idp", &n.to_string()), &credentials(n)).await.unwrap();
    }
    manager.rotate_key().await.unwrap();
    let report = manager.rewrap().await.unwrap();
    assert_eq!(report, RewrapReport { key_version: 2, rewrapped: u64::from(count), already_current: 0, failed: 0 });
    let mut after = None;
    let mut seen = 0;
    loop {
        let page = vault.page(after.as_ref(), vault::MAX_PAGE).await.unwrap();
        seen += page.iter().filter(|(_, e)| e.key_version == 2).count();
        match page.last() {
            Some((last, _)) => after = Some(last.clone()),
            None => break,
        }
    }
    assert_eq!(seen, count as usize);
}

#[tokio::test]
async fn rewrap_counts_and_keeps_entries_it_cannot_open() {
    let dir = KeyDir::new();
    let (manager, keyring, vault) = manager(&dir);
    let good = manager.address_of("idp", "good");
    manager.store(&good, &credentials(1)).await.unwrap();
    let garbage = VaultAddress::from_bytes([7; 32]);
    let garbage_entry = VaultEntry { key_version: 1, envelope: vec![1, 0, 0, 0, 1, 9, 9, 9] };
    vault.put(&garbage, garbage_entry.clone()).await.unwrap();
    // Another owner's envelope copied here: authentic, but not for this address.
    let copied = VaultAddress::from_bytes([8; 32]);
    let copied_entry = vault.get(&good).await.unwrap().unwrap();
    vault.put(&copied, copied_entry.clone()).await.unwrap();

    keyring.rotate().unwrap();
    let report = manager.rewrap().await.unwrap();
    assert_eq!(report, RewrapReport { key_version: 2, rewrapped: 1, already_current: 0, failed: 2 });
    assert_eq!(vault.get(&garbage).await.unwrap(), Some(garbage_entry));
    assert_eq!(vault.get(&copied).await.unwrap(), Some(copied_entry));
    assert_eq!(manager.load(&good).await.unwrap(), Some(credentials(1)));
}

/// A vault where the device user enrolls again while rewrap is between reading and replacing.
struct EnrollsDuringRewrap {
    inner: MemoryVault,
    enrollment: Mutex<Option<(VaultAddress, VaultEntry)>>,
}

#[async_trait]
impl VaultStore for EnrollsDuringRewrap {
    async fn put(&self, address: &VaultAddress, entry: VaultEntry) -> VaultResult<bool> {
        self.inner.put(address, entry).await
    }
    async fn get(&self, address: &VaultAddress) -> VaultResult<Option<VaultEntry>> {
        self.inner.get(address).await
    }
    async fn delete(&self, address: &VaultAddress) -> VaultResult<bool> {
        self.inner.delete(address).await
    }
    async fn replace_if(&self, address: &VaultAddress, expected: &VaultEntry, entry: VaultEntry) -> VaultResult<bool> {
        let enrollment = self.enrollment.lock().unwrap().take_if(|(a, _)| a == address);
        if let Some((_, fresh)) = enrollment {
            self.inner.put(address, fresh).await?;
        }
        self.inner.replace_if(address, expected, entry).await
    }
    async fn page(&self, after: Option<&VaultAddress>, limit: usize) -> VaultResult<Vec<(VaultAddress, VaultEntry)>> {
        self.inner.page(after, limit).await
    }
}

#[tokio::test]
async fn rewrap_never_overwrites_a_newer_enrollment() {
    let dir = KeyDir::new();
    let keyring = Arc::new(dir.keyring(KeyPolicy::default()));
    let vault = Arc::new(EnrollsDuringRewrap { inner: MemoryVault::new(), enrollment: Mutex::new(None) });
    let manager = SsoManager::new(Arc::clone(&keyring), vault.clone());
    let (alice, bob) = (manager.address_of("idp", "alice"), manager.address_of("idp", "bob"));
    manager.store(&alice, &credentials(1)).await.unwrap();
    manager.store(&bob, &credentials(2)).await.unwrap();
    manager.rotate_key().await.unwrap();

    let fresh = credentials(99);
    let sealed = keyring.seal(Purpose::StorefrontCredentials, &alice, &serde_json::to_vec(&fresh).unwrap()).unwrap();
    *vault.enrollment.lock().unwrap() = Some((alice.clone(), VaultEntry { key_version: 2, envelope: sealed }));

    let report = manager.rewrap().await.unwrap();
    assert_eq!(report, RewrapReport { key_version: 2, rewrapped: 1, already_current: 1, failed: 0 });
    assert_eq!(manager.load(&alice).await.unwrap(), Some(fresh), "the enrollment made during rewrap stays");
    assert_eq!(manager.load(&bob).await.unwrap(), Some(credentials(2)));
}
