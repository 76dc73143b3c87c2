//! The SSO manager's cryptography: versioned key-encryption keys, the sealed envelope, vault
//! addresses, rotation and rewrap. The only code that ever holds a KEK or a plaintext credential
//! on its way to or from the vault.
