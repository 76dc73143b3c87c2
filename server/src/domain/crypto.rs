//! AES-256-GCM sealing with associated data, the one primitive behind "everything stored is
//! encrypted": session data under per-session data keys, session records under the store key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

/// Format version of a sealed blob; bump when the layout changes.
const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 256-bit AES key. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct Key256(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Key256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key256([redacted])")
    }
}

/// Why a sealed blob could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("sealed data is truncated")]
    Truncated,
    #[error("sealed data has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("sealed data failed authentication (wrong key, wrong owner or tampered)")]
    Authentication,
}

impl Key256 {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        Key256(Zeroizing::new(random_bytes::<32>()))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key256(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Encrypts `plaintext`, binding it to `aad` (who owns it and what it is), as
    /// `version || nonce || ciphertext+tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(self.0.as_ref().into());
        let nonce = random_bytes::<NONCE_LEN>();
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption cannot fail for in-memory buffers under 64 GiB");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a blob made by [`Key256::seal`] with the same key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (&version, rest) = sealed.split_first().ok_or(OpenError::Truncated)?;
        if version != SEAL_VERSION {
            return Err(OpenError::UnknownVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Truncated);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new(self.0.as_ref().into());
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| OpenError::Authentication)
    }
}

/// `N` bytes from the operating system's random number generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS RNG failing means the machine cannot do cryptography at all; continuing would be
    // worse than stopping.
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = Key256::generate();
        let sealed = key.seal(b"owner-a/draft", b"hello");
        assert_eq!(key.open(b"owner-a/draft", &sealed).unwrap(), b"hello");
        assert_eq!(key.open(b"owner-b/draft", &sealed), Err(OpenError::Authentication));
        assert_eq!(Key256::generate().open(b"owner-a/draft", &sealed), Err(OpenError::Authentication));
    }

    #[test]
    fn tampering_and_truncation_are_errors_not_panics() {
        let key = Key256::generate();
        let sealed = key.seal(b"aad", b"some plaintext");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(key.open(b"aad", &bad).is_err(), "flipping byte {i} must fail");
        }
        for len in [0, 1, 12, 17, 28] {
            assert!(key.open(b"aad", &sealed[..len]).is_err(), "length {len} must fail");
        }
        let mut other_version = sealed.clone();
        other_version[0] = 2;
        assert_eq!(key.open(b"aad", &other_version), Err(OpenError::UnknownVersion(2)));
    }

    #[test]
    fn nonces_do_not_repeat() {
        let key = Key256::generate();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let sealed = key.seal(b"", b"x");
            assert!(seen.insert(sealed[1..13].to_vec()));
        }
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = Key256::from_bytes([0xAB; 32]);
        assert!(!format!("{key:?}").to_lowercase().contains("ab"));
    }
}
