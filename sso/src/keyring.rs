//! The keyring: AES-256-GCM key-encryption keys by version, how often each has sealed, the
//! minimum version that may still open, and the key file that keeps them (never the database).
//!
//! Key file (JSON, mode 0600, replaced atomically):
//!
//! ```text
//! { "format": 1, "address_key": "<64 hex>", "min_decryption_version": 1,
//!   "versions": [ { "version": 1, "key": "<64 hex>", "created": "<RFC 3339>",
//!                   "seals_reserved": 4096 } ] }
//! ```
//!
//! Counting seals: NIST SP 800-38D allows at most 2^32 random 96-bit nonces per key. Every seal
//! takes a number from the newest version's counter; the file records a block of numbers ahead
//! (`seals_reserved`), so it is written once per [`SEALS_PER_RESERVATION`] seals, and a restart
//! resumes counting after the whole block: counts are never reused, at worst skipped.

use std::fmt;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use aes_gcm::{Aes256Gcm, KeyInit as _};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vault::VaultAddress;
use zeroize::{Zeroize as _, Zeroizing};

use crate::SsoError;
use crate::envelope::{self, OpenError, Purpose};

/// Seals one write of the key file allows (the block a restart skips at most).
pub const SEALS_PER_RESERVATION: u64 = 4096;
/// Most key versions a keyring holds; rotation past it is refused.
pub const MAX_KEY_VERSIONS: u32 = 10_000;
/// NIST SP 800-38D's bound for random 96-bit nonces under one key.
const NIST_RANDOM_NONCE_LIMIT: u64 = 1 << 32;
const FILE_FORMAT: u32 = 1;
/// Far above [`MAX_KEY_VERSIONS`] versions (about 250 bytes each); anything larger is not ours.
const MAX_KEY_FILE_BYTES: u64 = 8 << 20;
/// A seal retries after an automatic rotation; others may use up the new version meanwhile only
/// under an absurdly low policy, so a few rounds are plenty.
const MAX_SEAL_ROUNDS: usize = 16;

/// When a key version has sealed enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Seals under one version before the next seal needs a newer version: a writable keyring
    /// rotates by itself, a read-only one refuses with [`SsoError::KeysExhausted`]. 0 counts as
    /// 1; values above 2^32 (NIST's bound for random nonces) count as 2^32.
    pub rotate_after_seals: u64,
}

impl Default for KeyPolicy {
    /// 2^30 seals: a quarter of NIST's bound, so the chance of a repeated nonce stays below 2^-37.
    fn default() -> Self {
        KeyPolicy { rotate_after_seals: 1 << 30 }
    }
}

impl KeyPolicy {
    fn limit(self) -> u64 {
        self.rotate_after_seals.clamp(1, NIST_RANDOM_NONCE_LIMIT)
    }
}

/// A key version as operators see it (never the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyVersionInfo {
    pub version: u32,
    pub created: SystemTime,
}

/// A key handed to [`Keyring::read_only`] by configuration.
pub struct ConfiguredKey {
    pub version: u32,
    pub key: Zeroizing<[u8; 32]>,
    pub created: SystemTime,
    /// Seals already made under this version by earlier runs, as far as the configuration knows:
    /// a read-only keyring cannot record its count, so it starts from this one.
    pub seals_used: u64,
}

impl fmt::Debug for ConfiguredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfiguredKey")
            .field("version", &self.version)
            .field("key", &"[redacted]")
            .field("created", &self.created)
            .field("seals_used", &self.seals_used)
            .finish()
    }
}

/// Versioned key-encryption keys. Seal, open, rotate and set-min may run at once from any number
/// of threads or tasks; no lock is held across an await (every method is synchronous).
pub struct Keyring {
    state: RwLock<State>,
    address_key: Zeroizing<[u8; 32]>,
    /// Held by every change, across its key file write, so the file always matches the state.
    writer: Mutex<()>,
    /// The key file, or `None` for a read-only keyring.
    path: Option<PathBuf>,
    policy: KeyPolicy,
}

struct State {
    /// Version `v` at index `v - 1`: versions are 1, 2, 3… with none missing.
    versions: Vec<Arc<KeyVersion>>,
    min_decryption: u32,
}

struct KeyVersion {
    version: u32,
    /// Kept to write the key file; zeroized on drop, as is the cipher's key schedule.
    key: Zeroizing<[u8; 32]>,
    cipher: Aes256Gcm,
    created: SystemTime,
    /// Next seal number; may run past `limit` by the seals that were refused.
    used: AtomicU64,
    /// Seal numbers below this are recorded in the key file (`u64::MAX` when read-only).
    reserved: AtomicU64,
}

impl KeyVersion {
    fn new(version: u32, key: Zeroizing<[u8; 32]>, created: SystemTime, used: u64, reserved: u64) -> Self {
        let cipher = Aes256Gcm::new(key.as_ref().into());
        KeyVersion { version, key, cipher, created, used: AtomicU64::new(used), reserved: AtomicU64::new(reserved) }
    }

    fn info(&self) -> KeyVersionInfo {
        KeyVersionInfo { version: self.version, created: self.created }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("latest_version", &state.versions.len())
            .field("min_decryption_version", &state.min_decryption)
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl Keyring {
    /// Opens the key file at `path`, or creates it (version 1 and a new address key, mode 0600)
    /// when there is none. Refuses a file that group or others may read.
    pub fn load_or_create(path: impl AsRef<Path>, policy: KeyPolicy) -> Result<Keyring, SsoError> {
        let path = path.as_ref();
        match read_key_file(path)? {
            Some(doc) => Keyring::from_doc(path, &doc, policy),
            None => Keyring::create(path, policy),
        }
    }

    /// A keyring whose keys come from configuration: it seals and opens, but refuses to rotate
    /// or change the minimum version ([`SsoError::ReadOnly`]), and once the newest version has
    /// sealed `policy.rotate_after_seals` times it refuses to seal ([`SsoError::KeysExhausted`]).
    /// Its counts live only in this process, starting from each key's `seals_used`.
    pub fn read_only(
        address_key: Zeroizing<[u8; 32]>,
        mut keys: Vec<ConfiguredKey>,
        min_decryption_version: u32,
        policy: KeyPolicy,
    ) -> Result<Keyring, SsoError> {
        keys.sort_by_key(|k| k.version);
        check_versions(keys.iter().map(|k| k.version), min_decryption_version)
            .map_err(|why| SsoError::InvalidVersion(format!("configured keys: {why}")))?;
        let versions = keys
            .into_iter()
            .map(|k| Arc::new(KeyVersion::new(k.version, k.key, k.created, k.seals_used, u64::MAX)))
            .collect();
        Ok(Keyring {
            state: RwLock::new(State { versions, min_decryption: min_decryption_version }),
            address_key,
            writer: Mutex::new(()),
            path: None,
            policy,
        })
    }

    /// Seals `plaintext` for `owner` and `purpose` under the newest key version. Counts the seal;
    /// at the policy's limit it first rotates (writable) or refuses (read-only).
    pub fn seal(&self, purpose: Purpose, owner: &VaultAddress, plaintext: &[u8]) -> Result<Vec<u8>, SsoError> {
        if plaintext.len() > envelope::MAX_PLAINTEXT {
            return Err(SsoError::PlaintextTooLarge { len: plaintext.len(), max: envelope::MAX_PLAINTEXT });
        }
        let limit = self.policy.limit();
        for _ in 0..MAX_SEAL_ROUNDS {
            let key = self.newest();
            let number = key.used.fetch_add(1, Ordering::Relaxed);
            if number >= limit {
                self.rotate_exhausted(key.version)?;
                continue;
            }
            if number >= key.reserved.load(Ordering::Acquire) {
                self.reserve(&key, number)?;
            }
            return envelope::seal(&key.cipher, key.version, purpose, owner.as_bytes(), plaintext);
        }
        Err(SsoError::KeysExhausted)
    }

    /// Opens an envelope sealed for `owner` and `purpose`. Checks, in order: length, format, key
    /// version known, not newer than the newest, not below the minimum, then authentication.
    pub fn open(&self, purpose: Purpose, owner: &VaultAddress, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let version = envelope::check_frame(sealed)?;
        let key = {
            let state = self.read();
            let latest = state.latest();
            if version == 0 {
                return Err(OpenError::UnknownKeyVersion(version));
            }
            if version > latest {
                return Err(OpenError::TooNew { version, latest });
            }
            if version < state.min_decryption {
                return Err(OpenError::TooOld { version, min: state.min_decryption });
            }
            Arc::clone(&state.versions[version as usize - 1])
        };
        envelope::open(&key.cipher, purpose, owner.as_bytes(), sealed)
    }

    /// Makes a new newest version, written to the key file before anything seals under it.
    pub fn rotate(&self) -> Result<KeyVersionInfo, SsoError> {
        let _writer = self.lock_writer();
        self.rotate_locked()
    }

    /// The newest key version, the one that seals.
    pub fn latest_version(&self) -> u32 {
        self.read().latest()
    }

    /// The oldest key version that may still open.
    pub fn min_decryption_version(&self) -> u32 {
        self.read().min_decryption
    }

    /// Retires (or, lowered again, restores) the versions below `version`, 1 ≤ `version` ≤ latest;
    /// persisted before it takes effect.
    pub fn set_min_decryption_version(&self, version: u32) -> Result<(), SsoError> {
        let path = self.path.as_deref().ok_or(SsoError::ReadOnly)?;
        let _writer = self.lock_writer();
        let versions = self.read().versions.clone();
        let latest = versions.len() as u32;
        if version == 0 || version > latest {
            return Err(SsoError::InvalidVersion(format!(
                "the minimum decryption version must be 1 to {latest} (the newest), not {version}"
            )));
        }
        write_key_file(path, &self.address_key, &versions, version, None)?;
        self.write().min_decryption = version;
        tracing::info!(min_decryption_version = version, "SSO minimum decryption key version set");
        Ok(())
    }

    /// Every version, oldest first.
    pub fn key_versions(&self) -> Vec<KeyVersionInfo> {
        self.read().versions.iter().map(|v| v.info()).collect()
    }

    /// Seals counted under `version` so far (in this process or reserved before it started).
    pub fn seals_counted(&self, version: u32) -> Option<u64> {
        let state = self.read();
        let key = state.versions.get((version as usize).checked_sub(1)?)?;
        Some(key.used.load(Ordering::Relaxed).min(self.policy.limit()))
    }

    /// True when keys come from configuration and nothing is written.
    pub fn is_read_only(&self) -> bool {
        self.path.is_none()
    }

    /// The key file, if the keyring has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The HMAC key vault addresses are derived with; the same across KEK rotations.
    pub(crate) fn address_key(&self) -> &[u8; 32] {
        &self.address_key
    }

    fn create(path: &Path, policy: KeyPolicy) -> Result<Keyring, SsoError> {
        let address_key = random_key()?;
        let first = Arc::new(KeyVersion::new(1, random_key()?, SystemTime::now(), 0, first_block(policy)));
        let bytes = key_file_bytes(&address_key, std::slice::from_ref(&first), 1, None)?;
        match create_private(path, &bytes) {
            Ok(()) => {}
            // Another process created it first: use that one, never overwrite it.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let doc = read_key_file(path)?.ok_or_else(|| key_file_error(path, "vanished while being created"))?;
                return Keyring::from_doc(path, &doc, policy);
            }
            Err(e) => return Err(key_file_error(path, &format!("cannot be created: {e}"))),
        }
        tracing::info!(path = %path.display(), "SSO key file created with key version 1");
        Ok(Keyring {
            state: RwLock::new(State { versions: vec![first], min_decryption: 1 }),
            address_key,
            writer: Mutex::new(()),
            path: Some(path.to_path_buf()),
            policy,
        })
    }

    fn from_doc(path: &Path, doc: &KeyFileDoc, policy: KeyPolicy) -> Result<Keyring, SsoError> {
        let bad = |why: &str| key_file_error(path, &format!("is not a valid key file: {why}"));
        if doc.format != FILE_FORMAT {
            return Err(bad(&format!("format {} is not the supported format {FILE_FORMAT}", doc.format)));
        }
        check_versions(doc.versions.iter().map(|v| v.version), doc.min_decryption_version).map_err(|why| bad(&why))?;
        let address_key = decode_key(&doc.address_key).ok_or_else(|| bad("address_key is not 64 hex digits"))?;
        let mut versions = Vec::with_capacity(doc.versions.len());
        for entry in &doc.versions {
            let key = decode_key(&entry.key)
                .ok_or_else(|| bad(&format!("the key of version {} is not 64 hex digits", entry.version)))?;
            let created = OffsetDateTime::parse(&entry.created, &Rfc3339)
                .map_err(|_| bad(&format!("the created time of version {} is not RFC 3339", entry.version)))?;
            // Resume after everything reserved: those numbers may have been used before a crash.
            let reserved = entry.seals_reserved;
            versions.push(Arc::new(KeyVersion::new(entry.version, key, created.into(), reserved, reserved)));
        }
        Ok(Keyring {
            state: RwLock::new(State { versions, min_decryption: doc.min_decryption_version }),
            address_key,
            writer: Mutex::new(()),
            path: Some(path.to_path_buf()),
            policy,
        })
    }

    fn newest(&self) -> Arc<KeyVersion> {
        let state = self.read();
        // A keyring always holds at least one version (checked when built).
        Arc::clone(&state.versions[state.versions.len() - 1])
    }

    /// Version `exhausted` reached the policy's limit: rotate unless someone already did.
    fn rotate_exhausted(&self, exhausted: u32) -> Result<(), SsoError> {
        let _writer = self.lock_writer();
        if self.read().latest() != exhausted {
            return Ok(());
        }
        if self.path.is_none() {
            return Err(SsoError::KeysExhausted);
        }
        let info = self.rotate_locked()?;
        tracing::info!(
            version = info.version,
            "SSO key version rotated automatically: the previous one reached its seal limit"
        );
        Ok(())
    }

    /// Records in the key file that seal numbers up to `number` may be used.
    fn reserve(&self, key: &KeyVersion, number: u64) -> Result<(), SsoError> {
        let Some(path) = self.path.as_deref() else { return Ok(()) };
        let _writer = self.lock_writer();
        if key.reserved.load(Ordering::Acquire) > number {
            return Ok(());
        }
        let reserved = number.saturating_add(SEALS_PER_RESERVATION).min(self.policy.limit());
        let (versions, min) = {
            let state = self.read();
            (state.versions.clone(), state.min_decryption)
        };
        // No seal may use the new numbers before the file records them.
        write_key_file(path, &self.address_key, &versions, min, Some((key.version, reserved)))?;
        key.reserved.store(reserved, Ordering::Release);
        Ok(())
    }

    /// Needs the writer lock.
    fn rotate_locked(&self) -> Result<KeyVersionInfo, SsoError> {
        let path = self.path.as_deref().ok_or(SsoError::ReadOnly)?;
        let (mut versions, min) = {
            let state = self.read();
            (state.versions.clone(), state.min_decryption)
        };
        let latest = versions.len() as u32;
        if latest >= MAX_KEY_VERSIONS {
            return Err(SsoError::KeysExhausted);
        }
        let next = Arc::new(KeyVersion::new(latest + 1, random_key()?, SystemTime::now(), 0, first_block(self.policy)));
        versions.push(Arc::clone(&next));
        write_key_file(path, &self.address_key, &versions, min, None)?;
        self.write().versions.push(Arc::clone(&next));
        tracing::info!(version = next.version, "SSO key version created");
        Ok(next.info())
    }

    // A panic elsewhere cannot leave the state half-changed: every change is one push or store.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn latest(&self) -> u32 {
        self.versions.len() as u32
    }
}

/// The first reservation, written with the version itself: one write instead of two.
fn first_block(policy: KeyPolicy) -> u64 {
    SEALS_PER_RESERVATION.min(policy.limit())
}

/// Versions must be 1, 2, 3… (sorted), at most [`MAX_KEY_VERSIONS`], and `min` one of them.
fn check_versions(versions: impl Iterator<Item = u32>, min: u32) -> Result<(), String> {
    let mut count = 0u32;
    for (index, version) in versions.enumerate() {
        let expected = index as u64 + 1;
        if u64::from(version) != expected {
            return Err(format!(
                "key versions must be 1, 2, 3… without gaps; found {version} where {expected} belongs"
            ));
        }
        count = version;
    }
    if count == 0 {
        return Err("there is no key version".to_string());
    }
    if count > MAX_KEY_VERSIONS {
        return Err(format!("there are {count} key versions; at most {MAX_KEY_VERSIONS} are supported"));
    }
    if min == 0 || min > count {
        return Err(format!("min_decryption_version must be 1 to {count}, not {min}"));
    }
    Ok(())
}

fn random_key() -> Result<Zeroizing<[u8; 32]>, SsoError> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut()).map_err(|e| SsoError::Random(e.to_string()))?;
    Ok(key)
}

fn decode_key(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text, key.as_mut()).ok()?;
    Some(key)
}

fn key_file_error(path: &Path, what: &str) -> SsoError {
    SsoError::KeyFile(format!("{} {what}", path.display()))
}

/// The key file as stored. Key strings are wiped when the document is dropped.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileDoc {
    format: u32,
    address_key: String,
    min_decryption_version: u32,
    versions: Vec<KeyFileVersion>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileVersion {
    version: u32,
    key: String,
    created: String,
    seals_reserved: u64,
}

impl Drop for KeyFileDoc {
    fn drop(&mut self) {
        self.address_key.zeroize();
    }
}

impl Drop for KeyFileVersion {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// The key file's document, or `None` when there is no file.
fn read_key_file(path: &Path) -> Result<Option<KeyFileDoc>, SsoError> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(key_file_error(path, &format!("cannot be opened: {e}"))),
    };
    let meta = file.metadata().map_err(|e| key_file_error(path, &format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(key_file_error(path, "is not a regular file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_file_error(
            path,
            &format!(
                "holds secret keys but group or others may access it (mode {mode:04o}); run `chmod 600 {}`",
                path.display()
            ),
        ));
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(key_file_error(path, &format!("is {} bytes, larger than any key file", meta.len())));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    (&mut file)
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| key_file_error(path, &format!("cannot be read: {e}")))?;
    // serde_json's message can quote the offending text, which may be key material: keep only where.
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        key_file_error(
            path,
            &format!("is not a valid key file ({:?} error at line {} column {})", e.classify(), e.line(), e.column()),
        )
    })
}

/// A reservation to write that the keyring does not hold yet: (version, seals reserved).
type Reservation = Option<(u32, u64)>;

fn key_file_bytes(
    address_key: &[u8; 32],
    versions: &[Arc<KeyVersion>],
    min_decryption_version: u32,
    pending: Reservation,
) -> Result<Zeroizing<Vec<u8>>, SsoError> {
    let mut entries = Vec::with_capacity(versions.len());
    for v in versions {
        let created = OffsetDateTime::from(v.created).format(&Rfc3339).map_err(|e| {
            SsoError::KeyFile(format!("the created time of key version {} cannot be written: {e}", v.version))
        })?;
        let seals_reserved = match pending {
            Some((version, reserved)) if version == v.version => reserved,
            _ => v.reserved.load(Ordering::Acquire),
        };
        entries.push(KeyFileVersion { version: v.version, key: hex::encode(v.key.as_ref()), created, seals_reserved });
    }
    let doc = KeyFileDoc {
        format: FILE_FORMAT,
        address_key: hex::encode(address_key),
        min_decryption_version,
        versions: entries,
    };
    // Room for everything up front, so the buffer never moves and leaves a copy of the keys.
    let mut bytes = Zeroizing::new(Vec::with_capacity(512 + 256 * versions.len()));
    serde_json::to_writer_pretty(&mut *bytes, &doc)
        .map_err(|e| SsoError::KeyFile(format!("the key file could not be encoded: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn write_key_file(
    path: &Path,
    address_key: &[u8; 32],
    versions: &[Arc<KeyVersion>],
    min_decryption_version: u32,
    pending: Reservation,
) -> Result<(), SsoError> {
    let bytes = key_file_bytes(address_key, versions, min_decryption_version, pending)?;
    replace_private(path, &bytes).map_err(|e| key_file_error(path, &format!("cannot be written: {e}")))
}

/// Writes `contents` to a new 0600 file beside `path`, flushed to disk; returns its path.
fn write_temp(path: &Path, contents: &[u8]) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let temp = path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), hex::encode(suffix)));
    let written = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    match written {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Atomically replaces `path` with `contents` (mode 0600): a reader sees the old file or the new.
fn replace_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temp = write_temp(path, contents)?;
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(path)
}

/// Creates `path` with `contents` (mode 0600) only if it does not exist (`AlreadyExists`).
fn create_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temp = write_temp(path, contents)?;
    // A hard link never replaces an existing file, unlike rename.
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    linked?;
    sync_dir(path)
}

/// Makes the rename or link itself durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}
