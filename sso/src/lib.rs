//! The SSO manager's cryptography: versioned key-encryption keys, the sealed envelope, vault
//! addresses, rotation and rewrap. The only code that ever holds a KEK or a plaintext credential
//! on its way to or from the vault.
//!
//! - [`Keyring`]: AES-256-GCM KEKs by version, loaded from a key file of their own (never the
//!   database), counted per seal and rotated before the count reaches NIST's bound.
//! - [`envelope`]: the sealed format and the order in which opening checks it.
//! - [`SsoManager`]: credentials in, ciphertext to the vault; vault addresses; rotation and rewrap.

pub mod envelope;
mod error;
mod keyring;
mod manager;

pub use envelope::{OpenError, Purpose};
pub use error::SsoError;
pub use keyring::{ConfiguredKey, KeyPolicy, KeyVersionInfo, Keyring, MAX_KEY_VERSIONS, SEALS_PER_RESERVATION};
pub use manager::{Credentials, MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS, RewrapReport, SsoManager};
