//! Device-user assertions, the infrastructure side of `domain::identity`: `verifier::JwtVerifier`
//! checks a JWT against trusted keys, `jwks` says which keys those are and where they come from
//! (a file, an https URL, or the development issuer), and `dev::DevIssuer` is that development
//! issuer. [`verifier`] builds the checker the core uses from its configuration.

pub mod dev;
pub mod jwks;
#[cfg(test)]
mod tests;
pub mod verifier;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::{AssertionKeys, AssertionSettings};
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::identity::AssertionVerifier;
use dev::DevIssuer;
use jwks::{KeySet, KeySource, RemoteConfig};
use verifier::JwtVerifier;

/// The assertion checker for `settings`, on the machine's clock. With no JWKS configured (the
/// embedded default) it trusts the development issuer under `data_dir`, creating its key if
/// needed, and says so in the log.
pub async fn verifier(settings: &AssertionSettings, data_dir: &Path) -> anyhow::Result<Arc<dyn AssertionVerifier>> {
    verifier_with_clock(settings, data_dir, Arc::new(SystemClock)).await
}

/// [`verifier`] on a given clock (the one the core's sessions use, so tests can shift both).
pub async fn verifier_with_clock(
    settings: &AssertionSettings,
    data_dir: &Path,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<dyn AssertionVerifier>> {
    let keys = match &settings.keys {
        AssertionKeys::Dev => {
            let dev = DevIssuer::load_or_create(data_dir)?;
            tracing::warn!(
                key = %DevIssuer::key_path(data_dir).display(),
                issuer = dev::DEV_ISSUER,
                "device-user assertions are checked against the development issuer: anyone who can read its key \
                 can sign in as anybody; configure the assertion JWKS file or URL for real use"
            );
            KeySource::fixed(KeySet::from_jwks(&dev.jwks()).context("the development issuer's key set")?)
        }
        AssertionKeys::File(path) => {
            let keys = KeySet::from_file(path)?;
            tracing::info!(path = %path.display(), keys = keys.len(), "device-user assertion keys loaded");
            KeySource::fixed(keys)
        }
        AssertionKeys::Url { url, ca_file, refresh_min } => {
            let config = RemoteConfig { url: url.clone(), ca_file: ca_file.clone(), refresh_min: *refresh_min };
            KeySource::remote(config, clock.clone()).await?
        }
    };
    Ok(Arc::new(JwtVerifier::new(keys, settings.issuer.clone(), &settings.audience, settings.leeway, clock)))
}
