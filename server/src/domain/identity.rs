//! Device users: the person logged in at the printer, as a verified assertion (a JWT from the
//! workplace's authentication solution) names them. Verification itself is infrastructure
//! (`crate::identity`); the domain sees only the verified result or why it was refused.

use std::fmt;

use async_trait::async_trait;

/// A verified device user. Who it is never reaches a log or an error: `Debug` is redacted, and the
/// server keeps only the vault address the SSO manager derives from it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceUser {
    /// The assertion's `iss`: which authentication solution vouches for the person.
    pub issuer: String,
    /// The assertion's `sub`: the person, in that issuer's namespace.
    pub subject: String,
}

impl fmt::Debug for DeviceUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceUser([redacted])")
    }
}

/// Why an assertion was refused. The caller always gets one generic UNAUTHENTICATED message; the
/// reason goes to one log line (never the token), so operators can tell a clock skew from an
/// attack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionRejected {
    #[error("the assertion is not a well-formed JWT")]
    Malformed,
    #[error("the assertion is larger than 16 KiB")]
    TooLarge,
    #[error("the assertion's algorithm {0} is not allowed (EdDSA, ES256 and RS256 only)")]
    Algorithm(String),
    #[error("the assertion's header names a key source ({0}); keys come only from configuration")]
    KeySourceHeader(&'static str),
    #[error("the assertion names no key id, or one the trusted key set does not hold")]
    UnknownKey,
    #[error("the assertion's signature does not verify")]
    Signature,
    #[error("the assertion lacks the required claim {0}")]
    MissingClaim(&'static str),
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion is not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("the assertion's issuer is not the configured one")]
    Issuer,
    #[error("the assertion's audience is not this server")]
    Audience,
    #[error("the trusted key set cannot be loaded: {0}")]
    KeysUnavailable(String),
}

/// Checks device-user assertions. An implementation logs each refusal once, with the reason and
/// never the assertion or whom it names.
#[async_trait]
pub trait AssertionVerifier: Send + Sync + 'static {
    async fn verify(&self, assertion: &str) -> Result<DeviceUser, AssertionRejected>;
}
