//! The ephemeral store contract: short-lived, owner-scoped blobs with a time limit on every entry.
//! Implementations (memory, Redis) store bytes only; encryption happens above them in
//! [`crate::domain::session::SessionData`], so no backend ever sees plaintext.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::error::CoreError;

/// Result of an ephemeral store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A failure of the ephemeral store itself (not "not found", which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the ephemeral store is unavailable: {0}")]
    Unavailable(String),
}

// Here rather than in `error`, so the error module depends on nothing in the domain.
impl From<StoreError> for CoreError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "ephemeral store unavailable");
                CoreError::Unavailable("session storage is unavailable; try again shortly".into())
            }
        }
    }
}

/// Owner-scoped key-value storage where every entry expires.
///
/// A *scope* groups everything one owner made (for example one session) so it can be deleted in
/// one call; a *name* identifies an entry inside its scope. Every write carries a time limit:
/// there is no way to store something forever.
#[async_trait]
pub trait EphemeralStore: Send + Sync + 'static {
    /// Stores `value`, replacing any previous entry, expiring after `ttl`.
    async fn put(&self, scope: &str, name: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()>;
    /// Stores `value` only when there is no live entry (a lease); true when it did.
    async fn put_new(&self, scope: &str, name: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<bool>;
    /// Resets the time limit of the entry only while it still holds `expected` (a lease's owner
    /// renewing it); false when it is gone or someone else's.
    async fn touch_if(&self, scope: &str, name: &str, expected: &[u8], ttl: Duration) -> StoreResult<bool>;
    /// Removes the entry only while it still holds `expected` (a lease given back by its owner).
    async fn delete_if(&self, scope: &str, name: &str, expected: &[u8]) -> StoreResult<bool>;
    /// The live entry, if any.
    async fn get(&self, scope: &str, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Resets the time limit of a live entry to `ttl`; false when there is no live entry.
    async fn touch(&self, scope: &str, name: &str, ttl: Duration) -> StoreResult<bool>;
    /// Removes and returns the entry atomically: at most one caller ever gets it.
    async fn take(&self, scope: &str, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Removes one entry; true when it existed.
    async fn delete(&self, scope: &str, name: &str) -> StoreResult<bool>;
    /// Removes every entry of a scope; returns how many were removed.
    async fn delete_scope(&self, scope: &str) -> StoreResult<u64>;
    /// Names of the live entries of a scope (for audits and tests; not for hot paths).
    async fn names(&self, scope: &str) -> StoreResult<Vec<String>>;
    /// Scopes that hold at least one live entry (for audits and tests; not for hot paths).
    async fn scopes(&self) -> StoreResult<Vec<String>>;
}

/// One session's own corner of the ephemeral store, sealed and bound to the session, as a
/// storefront backend sees it: where a remote storefront keeps what it holds per session (uStore's
/// token), so it ends with the session and no other session can read it.
#[async_trait]
pub trait SessionStash: Send + Sync + 'static {
    async fn put(&self, name: &str, value: &[u8]) -> Result<(), CoreError>;
    /// The plaintext, wiped from memory when the caller drops it.
    async fn get(&self, name: &str) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, CoreError>;
    async fn delete(&self, name: &str) -> Result<bool, CoreError>;
}
