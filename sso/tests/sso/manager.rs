//! The manager as the server uses it: store, load, exists, forget; vault addresses; limits;
//! nothing secret in Debug or errors; a damaged entry is an unseal error.

use std::sync::Arc;

use sso::{Credentials, KeyPolicy, MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS, OpenError, SsoError, SsoManager};
use vault::{MemoryVault, VaultStore};
use zeroize::Zeroizing;

use crate::support::{KeyDir, manager, read_only_keyring};

fn alice() -> Credentials {
    Credentials { username: "alice@example.com".to_string(), password: Zeroizing::new("correct horse".to_string()) }
}

#[tokio::test]
async fn credentials_round_trip() {
    let dir = KeyDir::new();
    let (manager, _, vault) = manager(&dir);
    let address = manager.address_of("https://idp.example", "alice");
    assert_eq!(manager.load(&address).await.unwrap(), None);
    assert!(!manager.exists(&address).await.unwrap());

    assert!(!manager.store(&address, &alice()).await.unwrap(), "nothing replaced");
    assert!(manager.exists(&address).await.unwrap());
    assert_eq!(manager.load(&address).await.unwrap(), Some(alice()));
    let stored = vault.get(&address).await.unwrap().unwrap();
    assert!(!stored.envelope.windows(b"correct horse".len()).any(|w| w == b"correct horse"), "vault holds plaintext");
    assert!(!stored.envelope.windows(b"alice@".len()).any(|w| w == b"alice@"), "vault holds the username");

    let changed = Credentials { password: Zeroizing::new("battery staple".to_string()), ..alice() };
    assert!(manager.store(&address, &changed).await.unwrap(), "replaced");
    assert_eq!(manager.load(&address).await.unwrap(), Some(changed));

    assert!(manager.forget(&address).await.unwrap());
    assert!(!manager.forget(&address).await.unwrap());
    assert!(!manager.exists(&address).await.unwrap());
    assert_eq!(manager.load(&address).await.unwrap(), None);
}

#[tokio::test]
async fn address_of_is_keyed_stable_and_unambiguous() {
    let dir = KeyDir::new();
    let (manager, _, _) = manager(&dir);
    let address = manager.address_of("https://idp.example", "alice");
    assert_eq!(manager.address_of("https://idp.example", "alice"), address);
    assert_ne!(manager.address_of("https://idp.example", "bob"), address);
    assert_ne!(manager.address_of("https://other.example", "alice"), address);
    assert_ne!(manager.address_of("ab", "c"), manager.address_of("a", "bc"));
    assert_ne!(manager.address_of("", "x"), manager.address_of("x", ""));

    manager.rotate_key().await.unwrap();
    assert_eq!(manager.address_of("https://idp.example", "alice"), address, "stable across rotation");
    drop(manager);
    let reopened = SsoManager::new(Arc::new(dir.keyring(KeyPolicy::default())), Arc::new(MemoryVault::new()));
    assert_eq!(reopened.address_of("https://idp.example", "alice"), address, "stable across restarts");

    let other = KeyDir::new();
    let (elsewhere, _, _) = crate::support::manager(&other);
    assert_ne!(elsewhere.address_of("https://idp.example", "alice"), address, "keyed: another address key differs");
}

#[tokio::test]
async fn credentials_over_limits_are_refused() {
    let dir = KeyDir::new();
    let (manager, _, vault) = manager(&dir);
    let address = manager.address_of("idp", "x");
    let make = |username: String, password: String| Credentials { username, password: Zeroizing::new(password) };

    // Limits count characters, and the largest escape-heavy credentials still fit one envelope.
    let largest = make("é".repeat(MAX_USERNAME_CHARS), "\u{1}".repeat(MAX_PASSWORD_CHARS));
    manager.store(&address, &largest).await.unwrap();
    assert_eq!(manager.load(&address).await.unwrap(), Some(largest));

    let secret = "p".repeat(MAX_PASSWORD_CHARS + 1);
    for bad in [
        make(String::new(), "p".to_string()),
        make("u".repeat(MAX_USERNAME_CHARS + 1), "p".to_string()),
        make("u".to_string(), secret.clone()),
    ] {
        match manager.store(&address, &bad).await {
            Err(error @ SsoError::InvalidCredentials(_)) => {
                assert!(!error.to_string().contains(&secret), "{error}")
            }
            other => panic!("expected InvalidCredentials, got {other:?}"),
        }
    }
    assert_eq!(vault.len(), 1, "nothing refused was stored");
}

#[test]
fn debug_output_shows_no_credentials() {
    let debug = format!("{:?}", alice());
    assert!(!debug.contains("alice") && !debug.contains("horse"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
}

#[tokio::test]
async fn damaged_or_moved_entry_is_an_unseal_error() {
    let dir = KeyDir::new();
    let (manager, _, vault) = manager(&dir);
    let (alice_at, mallory_at) = (manager.address_of("idp", "alice"), manager.address_of("idp", "mallory"));
    manager.store(&alice_at, &alice()).await.unwrap();
    let mut entry = vault.get(&alice_at).await.unwrap().unwrap();

    // Moved to another device user's address.
    vault.put(&mallory_at, entry.clone()).await.unwrap();
    assert!(matches!(manager.load(&mallory_at).await, Err(SsoError::Unseal(OpenError::Authentication))));

    let last = entry.envelope.len() - 1;
    entry.envelope[last] ^= 1;
    vault.put(&alice_at, entry.clone()).await.unwrap();
    assert!(matches!(manager.load(&alice_at).await, Err(SsoError::Unseal(OpenError::Authentication))));
    entry.envelope.truncate(10);
    vault.put(&alice_at, entry).await.unwrap();
    assert!(matches!(manager.load(&alice_at).await, Err(SsoError::Unseal(OpenError::Truncated))));
}

#[tokio::test]
async fn read_only_manager_stores_but_refuses_rotation() {
    let manager = SsoManager::new(Arc::new(read_only_keyring(2, KeyPolicy::default())), Arc::new(MemoryVault::new()));
    let address = manager.address_of("idp", "alice");
    manager.store(&address, &alice()).await.unwrap();
    assert_eq!(manager.load(&address).await.unwrap(), Some(alice()));
    assert!(matches!(manager.rotate_key().await, Err(SsoError::ReadOnly)));
    assert!(matches!(manager.set_min_decryption_version(2), Err(SsoError::ReadOnly)));
    assert_eq!(manager.latest_version(), 2);
}
