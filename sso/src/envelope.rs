//! The sealed envelope: its layout, its associated data, and the order in which opening checks it.
//!
//! ```text
//! 0        1 byte    format version (0x01)
//! 1..5     4 bytes   key version (u32, big-endian)      the 17 header bytes, also bound
//! 5..17    12 bytes  nonce (96 random bits per seal)    into the associated data
//! 17..     ciphertext || 16-byte GCM tag
//! ```
//!
//! Associated data: the domain label, the purpose and the owner (each length-prefixed) and the
//! header, so an envelope copied to another owner, read for another purpose, or given another
//! key version or nonce fails authentication.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroizing;

use crate::SsoError;

/// The one format this code seals and opens.
pub const FORMAT_V1: u8 = 0x01;
pub const NONCE_LEN: usize = 12;
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
pub const TAG_LEN: usize = 16;
/// The shortest envelope that can open (an empty plaintext).
pub const MIN_LEN: usize = HEADER_LEN + TAG_LEN;
/// The longest plaintext a seal takes: its envelope still fits the vault.
pub const MAX_PLAINTEXT: usize = vault::MAX_ENVELOPE - MIN_LEN;

/// Separates these envelopes from anything else ever sealed under the same key.
const DOMAIN: &[u8] = b"podconnect/sso/v1";

/// What a sealed plaintext is for; bound into the associated data, so an envelope sealed for one
/// purpose never opens as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A device user's username and password for the storefront.
    StorefrontCredentials,
    /// A login token a storefront hands out instead of taking a password.
    StorefrontToken,
}

impl Purpose {
    /// The label bound into the associated data; never change one once envelopes exist.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::StorefrontCredentials => "storefront-credentials",
            Purpose::StorefrontToken => "storefront-token",
        }
    }
}

/// Why an envelope did not open. Checked in this order, as Vault's transit engine does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the envelope is truncated (shorter than {MIN_LEN} bytes)")]
    Truncated,
    #[error("the envelope has unknown format version {0}")]
    UnknownFormat(u8),
    #[error("the envelope names key version {0}, which this keyring never had")]
    UnknownKeyVersion(u32),
    #[error("the envelope names key version {version}, newer than the newest this keyring holds ({latest})")]
    TooNew { version: u32, latest: u32 },
    #[error(
        "the envelope's key version {version} is retired (minimum decryption version {min}); lower the minimum to read it, or rewrap"
    )]
    TooOld { version: u32, min: u32 },
    #[error("the envelope failed authentication (wrong key, wrong owner or purpose, or tampered)")]
    Authentication,
}

/// The key version an envelope names, read without any check beyond its length and format: a
/// hint for callers (vault entries, rewrap), never a reason to trust the envelope.
pub fn key_version(envelope: &[u8]) -> Option<u32> {
    check_frame(envelope).ok()
}

/// The first two checks of opening (length, format); returns the key version named.
pub(crate) fn check_frame(envelope: &[u8]) -> Result<u32, OpenError> {
    if envelope.len() < MIN_LEN {
        return Err(OpenError::Truncated);
    }
    if envelope[0] != FORMAT_V1 {
        return Err(OpenError::UnknownFormat(envelope[0]));
    }
    Ok(u32::from_be_bytes([envelope[1], envelope[2], envelope[3], envelope[4]]))
}

/// Seals `plaintext` under `cipher` (key version `key_version`) with a fresh random nonce.
pub(crate) fn seal(
    cipher: &Aes256Gcm,
    key_version: u32,
    purpose: Purpose,
    owner: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SsoError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(SsoError::PlaintextTooLarge { len: plaintext.len(), max: MAX_PLAINTEXT });
    }
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| SsoError::Random(e.to_string()))?;
    let mut out = Vec::with_capacity(MIN_LEN + plaintext.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&key_version.to_be_bytes());
    out.extend_from_slice(&nonce);
    let aad = associated_data(purpose, owner, &out[..HEADER_LEN]);
    out.extend_from_slice(plaintext);
    seal_in_place(cipher, &nonce, &aad, &mut out, HEADER_LEN)
        .map_err(|_| SsoError::PlaintextTooLarge { len: plaintext.len(), max: MAX_PLAINTEXT })?;
    Ok(out)
}

/// Opens an envelope whose frame and key version the keyring has already checked, under the key
/// of that version. Only the AEAD check is left.
pub(crate) fn open(
    cipher: &Aes256Gcm,
    purpose: Purpose,
    owner: &[u8],
    envelope: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if envelope.len() < MIN_LEN {
        return Err(OpenError::Truncated);
    }
    let (header, body) = envelope.split_at(HEADER_LEN);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&header[5..HEADER_LEN]);
    let aad = associated_data(purpose, owner, header);
    open_raw(cipher, &nonce, &aad, body)
}

/// `len(DOMAIN) DOMAIN len(purpose) purpose len(owner) owner header`, lengths as u32 big-endian,
/// so no two different inputs give the same bytes.
pub(crate) fn associated_data(purpose: Purpose, owner: &[u8], header: &[u8]) -> Vec<u8> {
    let purpose = purpose.label().as_bytes();
    let mut aad = Vec::with_capacity(12 + DOMAIN.len() + purpose.len() + owner.len() + header.len());
    for part in [DOMAIN, purpose, owner] {
        // Parts are a constant, a label and a 32-byte address: far below u32::MAX.
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(header);
    aad
}

/// AES-256-GCM over `buf[start..]` in place, appending the tag: the one encryption in this crate,
/// which the Wycheproof vectors exercise with their own nonces and associated data.
/// Fails only for a message over GCM's 2^36-byte limit. Callers reserve room for the tag, so the
/// buffer never moves (a moved buffer would leave a plaintext copy behind).
pub(crate) fn seal_in_place(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut Vec<u8>,
    start: usize,
) -> Result<(), aes_gcm::Error> {
    let tag = cipher.encrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut buf[start..])?;
    buf.extend_from_slice(&tag);
    Ok(())
}

/// AES-256-GCM decryption of `ciphertext || tag`: the one decryption in this crate.
pub(crate) fn open_raw(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let split = ciphertext_and_tag.len().checked_sub(TAG_LEN).ok_or(OpenError::Truncated)?;
    let (ciphertext, tag) = ciphertext_and_tag.split_at(split);
    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut plaintext, Tag::from_slice(tag))
        .map_err(|_| OpenError::Authentication)?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use aes_gcm::KeyInit as _;
    use wycheproof::TestResult;
    use wycheproof::aead::{TestName, TestSet};

    use super::*;

    /// Wycheproof's AES-GCM vectors (C2SP/wycheproof, Apache-2.0, as packaged by the `wycheproof`
    /// crate), the groups our envelope can meet: 256-bit keys, 96-bit nonces, 128-bit tags.
    /// Valid ones must seal to exactly their ciphertext and tag and open again; invalid ones
    /// (modified tags and ciphertexts) must fail authentication.
    #[test]
    fn wycheproof_aes_256_gcm_vectors() {
        let set = TestSet::load(TestName::AesGcm).expect("the packaged vectors parse");
        let (mut valid, mut invalid) = (0, 0);
        let groups = set.test_groups.iter().filter(|g| g.key_size == 256 && g.nonce_size == 96 && g.tag_size == 128);
        for test in groups.flat_map(|g| &g.tests) {
            let cipher = Aes256Gcm::new_from_slice(&test.key).expect("256-bit key");
            let nonce: [u8; NONCE_LEN] = test.nonce.as_slice().try_into().expect("96-bit nonce");
            let mut sealed = test.ct.to_vec();
            sealed.extend_from_slice(&test.tag);
            let opened = open_raw(&cipher, &nonce, &test.aad, &sealed);
            match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    let mut buf = Vec::with_capacity(test.pt.len() + TAG_LEN);
                    buf.extend_from_slice(&test.pt);
                    seal_in_place(&cipher, &nonce, &test.aad, &mut buf, 0).expect("small message");
                    assert_eq!(buf, sealed, "tcId {} ({}) seals differently", test.tc_id, test.comment);
                    assert_eq!(
                        opened.as_deref().map(Vec::as_slice),
                        Ok(test.pt.as_slice()),
                        "tcId {} ({}) does not open",
                        test.tc_id,
                        test.comment
                    );
                    valid += 1;
                }
                TestResult::Invalid => {
                    assert_eq!(
                        opened.as_deref().map(Vec::as_slice),
                        Err(&OpenError::Authentication),
                        "tcId {} ({}) opened",
                        test.tc_id,
                        test.comment
                    );
                    invalid += 1;
                }
            }
        }
        // The packaged file's counts for these groups: a different file would show here.
        assert_eq!((valid, invalid), (39, 27));
    }
}
