//! `SsoManager`: storefront credentials sealed on the way into the vault and opened on the way
//! out, vault addresses derived from a device user's identity, key rotation and rewrap.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use vault::{VaultAddress, VaultEntry, VaultStore};
use zeroize::Zeroizing;

use crate::SsoError;
use crate::envelope::{self, Purpose};
use crate::keyring::{KeyVersionInfo, Keyring};

/// Longest username stored, in characters.
pub const MAX_USERNAME_CHARS: usize = 256;
/// Longest password stored, in characters.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Separates vault addresses from any other use of the address key.
const ADDRESS_DOMAIN: &[u8] = b"podconnect/sso/address/v1";
/// Entries asked of the vault per page during rewrap.
const REWRAP_PAGE: usize = vault::MAX_PAGE;

/// A device user's storefront login. Debug shows neither field.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &"[redacted]").field("password", &"[redacted]").finish()
    }
}

impl Credentials {
    fn check(&self) -> Result<(), SsoError> {
        let username = self.username.chars().count();
        if username == 0 || username > MAX_USERNAME_CHARS {
            return Err(SsoError::InvalidCredentials(format!(
                "a username must be 1 to {MAX_USERNAME_CHARS} characters, not {username}"
            )));
        }
        let password = self.password.chars().count();
        if password > MAX_PASSWORD_CHARS {
            return Err(SsoError::InvalidCredentials(format!(
                "a password must be at most {MAX_PASSWORD_CHARS} characters, not {password}"
            )));
        }
        Ok(())
    }

    /// JSON in a buffer that is wiped when dropped and sized so it never moves while written.
    fn to_plaintext(&self) -> Result<Zeroizing<Vec<u8>>, SsoError> {
        // JSON escapes one byte as at most six (`\u001f`).
        let room = 64 + 6 * (self.username.len() + self.password.len());
        let mut plaintext = Zeroizing::new(Vec::with_capacity(room));
        serde_json::to_writer(&mut *plaintext, self)
            .map_err(|_| SsoError::InvalidCredentials("the credentials could not be encoded".to_string()))?;
        Ok(plaintext)
    }

    fn from_plaintext(plaintext: &[u8]) -> Result<Credentials, SsoError> {
        // serde_json's message could quote the plaintext: report none of it.
        serde_json::from_slice(plaintext).map_err(|_| SsoError::Corrupt)
    }
}

/// What one [`SsoManager::rewrap`] run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// The newest key version when the run started; every entry it rewrapped is under it or newer.
    pub key_version: u32,
    /// Entries opened and sealed again under the newest version.
    pub rewrapped: u64,
    /// Entries already under that version or newer (including ones enrolled during the run).
    pub already_current: u64,
    /// Entries that could not be opened (retired or unknown key version, tampered); left as they are.
    pub failed: u64,
}

/// Seals storefront credentials before they reach the vault and opens them after: the vault sees
/// only addresses and envelopes, and no plaintext leaves this type except through
/// [`SsoManager::load`].
pub struct SsoManager {
    keyring: Arc<Keyring>,
    vault: Arc<dyn VaultStore>,
}

impl fmt::Debug for SsoManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoManager").field("keyring", &self.keyring).finish_non_exhaustive()
    }
}

impl SsoManager {
    pub fn new(keyring: Arc<Keyring>, vault: Arc<dyn VaultStore>) -> SsoManager {
        SsoManager { keyring, vault }
    }

    /// The vault address of a device user, from the identity provider's issuer and subject:
    /// HMAC-SHA256 under the address key, so it tells nothing of who it is, and the same across
    /// key rotations.
    pub fn address_of(&self, issuer: &str, subject: &str) -> VaultAddress {
        let mut mac =
            <Hmac<Sha256>>::new_from_slice(self.keyring.address_key()).expect("HMAC accepts keys of any length");
        for part in [ADDRESS_DOMAIN, issuer.as_bytes(), subject.as_bytes()] {
            // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        VaultAddress::from_bytes(mac.finalize().into_bytes().into())
    }

    /// Seals `credentials` for `address` and stores them, replacing what was there (true then).
    pub async fn store(&self, address: &VaultAddress, credentials: &Credentials) -> Result<bool, SsoError> {
        credentials.check()?;
        let plaintext = credentials.to_plaintext()?;
        let entry = self.seal(address, &plaintext)?;
        Ok(self.vault.put(address, entry).await?)
    }

    /// The credentials stored for `address`; [`SsoError::Unseal`] when the entry cannot be opened.
    pub async fn load(&self, address: &VaultAddress) -> Result<Option<Credentials>, SsoError> {
        let Some(entry) = self.vault.get(address).await? else { return Ok(None) };
        let plaintext = self.keyring.open(Purpose::StorefrontCredentials, address, &entry.envelope)?;
        Credentials::from_plaintext(&plaintext).map(Some)
    }

    /// Whether credentials are stored for `address` (without opening them).
    pub async fn exists(&self, address: &VaultAddress) -> Result<bool, SsoError> {
        Ok(self.vault.get(address).await?.is_some())
    }

    /// Deletes the credentials stored for `address`; true when there were some.
    pub async fn forget(&self, address: &VaultAddress) -> Result<bool, SsoError> {
        Ok(self.vault.delete(address).await?)
    }

    /// Makes a new newest key version (persisted before use). Entries stay under their old
    /// versions until [`SsoManager::rewrap`]. [`SsoError::ReadOnly`] for a configured keyring.
    pub async fn rotate_key(&self) -> Result<KeyVersionInfo, SsoError> {
        let keyring = Arc::clone(&self.keyring);
        // Writes and fsyncs the key file: off the async workers.
        tokio::task::spawn_blocking(move || keyring.rotate()).await.map_err(|e| SsoError::Interrupted(e.to_string()))?
    }

    /// Seals every entry under an older key version again under the newest, page by page. Each
    /// replacement is a compare-and-swap, so an entry enrolled or forgotten meanwhile is left
    /// alone. Idempotent: a second run finds everything current.
    pub async fn rewrap(&self) -> Result<RewrapReport, SsoError> {
        let target = self.keyring.latest_version();
        let mut report = RewrapReport { key_version: target, ..RewrapReport::default() };
        let mut after: Option<VaultAddress> = None;
        loop {
            let page = self.vault.page(after.as_ref(), REWRAP_PAGE).await?;
            let full = page.len() == REWRAP_PAGE;
            for (address, entry) in &page {
                self.rewrap_one(address, entry, target, &mut report).await?;
            }
            match page.into_iter().next_back() {
                Some((last, _)) if full => after = Some(last),
                _ => break,
            }
        }
        tracing::info!(
            key_version = report.key_version,
            rewrapped = report.rewrapped,
            already_current = report.already_current,
            failed = report.failed,
            "SSO vault rewrapped"
        );
        Ok(report)
    }

    /// Retires (or restores) key versions below `version`; see [`Keyring::set_min_decryption_version`].
    pub fn set_min_decryption_version(&self, version: u32) -> Result<(), SsoError> {
        self.keyring.set_min_decryption_version(version)
    }

    /// The newest key version.
    pub fn latest_version(&self) -> u32 {
        self.keyring.latest_version()
    }

    fn seal(&self, address: &VaultAddress, plaintext: &[u8]) -> Result<VaultEntry, SsoError> {
        let envelope = self.keyring.seal(Purpose::StorefrontCredentials, address, plaintext)?;
        // The keyring just wrote this header; the fallback is never taken.
        let key_version = envelope::key_version(&envelope).unwrap_or_default();
        Ok(VaultEntry { key_version, envelope })
    }

    async fn rewrap_one(
        &self,
        address: &VaultAddress,
        entry: &VaultEntry,
        target: u32,
        report: &mut RewrapReport,
    ) -> Result<(), SsoError> {
        // The envelope's own header decides, not the entry's hint.
        if envelope::key_version(&entry.envelope).is_some_and(|v| v >= target) {
            report.already_current += 1;
            return Ok(());
        }
        let sealed = match self.keyring.open(Purpose::StorefrontCredentials, address, &entry.envelope) {
            Ok(plaintext) => self.seal(address, &plaintext)?,
            Err(error) => {
                report.failed += 1;
                tracing::warn!(address = ?address, key_version = entry.key_version, %error, "SSO rewrap skipped an entry");
                return Ok(());
            }
        };
        if self.vault.replace_if(address, entry, sealed).await? {
            report.rewrapped += 1;
            return Ok(());
        }
        // Changed since the page was read: a new enrollment is sealed under the newest version.
        match self.vault.get(address).await? {
            Some(now) if envelope::key_version(&now.envelope).is_some_and(|v| v >= target) => {
                report.already_current += 1
            }
            Some(_) => report.failed += 1,
            None => {}
        }
        Ok(())
    }
}
