//! `SsoError`, the one error of the SSO manager and its keyring.

use crate::envelope::OpenError;

/// Why an SSO operation failed. No message carries a key, a credential or a device user's identity.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// A vault entry could not be opened (tampered, sealed for another owner, or under a key
    /// version that is retired or unknown).
    #[error("the stored credentials cannot be opened: {0}")]
    Unseal(#[from] OpenError),
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    /// The keyring's keys come from configuration: rotate by changing the configuration.
    #[error("the keyring is read-only (its keys come from configuration); change the configuration to rotate keys")]
    ReadOnly,
    /// A read-only keyring's newest key reached its use limit.
    #[error(
        "the newest key version has sealed as many times as the policy allows; add a newer key version to the configuration"
    )]
    KeysExhausted,
    /// The key file cannot be read, written or understood; the message names the file.
    #[error("key file: {0}")]
    KeyFile(String),
    /// A key version outside what the keyring holds.
    #[error("invalid key version: {0}")]
    InvalidVersion(String),
    /// A plaintext too large for one envelope (the vault's entry limit).
    #[error("data to seal is {len} bytes; at most {max} fit in one envelope")]
    PlaintextTooLarge { len: usize, max: usize },
    /// The operating system's random number generator failed; nothing was sealed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// Credentials over the size limits or otherwise not storable.
    #[error("invalid credentials: {0}")]
    InvalidCredentials(String),
    /// An entry opened but did not hold credentials in the expected form.
    #[error("the stored credentials are not in the expected form (sealed by an incompatible version?)")]
    Corrupt,
    /// A background task that writes the key file did not finish (the runtime is shutting down).
    #[error("the key file task did not finish: {0}")]
    Interrupted(String),
}
