//! `JwtVerifier`: checks a device-user assertion (a JWT) against the trusted keys. The header is
//! read by hand first, so key-source headers, `none`, HMAC and any other algorithm are refused
//! before a key is chosen; then jsonwebtoken checks the signature with the key named by `kid`,
//! the required claims, `iss` and `aud`; the times (`exp`, `nbf`, `iat`) are checked here against
//! the server's clock with a leeway of at most 30 s.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::jwks::{ALLOWED, KeySet, KeySource, Lookup, printable};
use crate::config::MAX_ASSERTION_LEEWAY;
use crate::domain::clock::Clock;
use crate::domain::identity::{AssertionRejected, AssertionVerifier, DeviceUser};

/// Assertions longer than this are refused unread (the gRPC layer bounds the field too).
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;
/// Headers that would let the token choose its own key; keys come only from configuration.
const KEY_SOURCE_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "x5c"];
/// Claims every assertion must carry.
const REQUIRED_CLAIMS: [&str; 6] = ["exp", "nbf", "iat", "iss", "aud", "sub"];

/// Checks assertions from one issuer, for one audience, against one key source.
pub struct JwtVerifier {
    keys: KeySource,
    issuer: String,
    leeway: Duration,
    clock: Arc<dyn Clock>,
    /// One jsonwebtoken validation per allowed algorithm, in the order of `ALLOWED`.
    validations: [Validation; 3],
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// The claims read from a verified assertion. Every field is optional and loosely typed so that
/// a missing or odd claim is reported by name instead of failing the whole parse.
#[derive(Deserialize)]
struct Claims {
    iss: Option<serde_json::Value>,
    sub: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
}

impl JwtVerifier {
    /// A verifier that accepts assertions whose `iss` is `issuer` and whose `aud` names
    /// `audience`. `leeway` is capped at 30 s.
    pub fn new(
        keys: KeySource,
        issuer: impl Into<String>,
        audience: &str,
        leeway: Duration,
        clock: Arc<dyn Clock>,
    ) -> JwtVerifier {
        let issuer = issuer.into();
        let leeway = leeway.min(MAX_ASSERTION_LEEWAY);
        let validation = |alg: Algorithm| {
            let mut validation = Validation::new(alg);
            // jsonwebtoken's exp/nbf checks read the system clock and ignore iat; ours (in
            // `check_times`) use the server's clock, so tests and the core agree to the second.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.leeway = leeway.as_secs();
            // Otherwise a token without `aud` would pass.
            validation.validate_aud = true;
            validation.set_required_spec_claims(&REQUIRED_CLAIMS);
            validation.set_issuer(&[issuer.as_str()]);
            validation.set_audience(&[audience]);
            validation
        };
        let validations = ALLOWED.map(validation);
        JwtVerifier { keys, issuer, leeway, clock, validations }
    }

    /// Checks one assertion; the caller logs a refusal ([`AssertionVerifier::verify`] does).
    pub async fn check(&self, assertion: &str) -> Result<DeviceUser, AssertionRejected> {
        let (alg, kid) = read_header(assertion)?;
        let keys = self.keys.current().await?;
        let claims = match keys.lookup(&kid, alg) {
            Lookup::Found(key) => self.decode(assertion, key, alg)?,
            Lookup::WrongAlgorithm => return Err(AssertionRejected::UnknownKey),
            Lookup::NoSuchKid => {
                // A new key at the issuer: fetch the set again (rate-limited) and look once more.
                let keys = self.keys.refreshed(&keys).await?;
                self.decode_with(&keys, assertion, &kid, alg)?
            }
        };
        self.check_times(&claims)?;
        let issuer = match claims.iss {
            Some(serde_json::Value::String(iss)) if iss == self.issuer => iss,
            _ => return Err(AssertionRejected::Issuer),
        };
        let subject = match claims.sub {
            Some(serde_json::Value::String(sub)) if !sub.is_empty() => sub,
            _ => return Err(AssertionRejected::Malformed),
        };
        Ok(DeviceUser { issuer, subject })
    }

    fn decode_with(
        &self,
        keys: &KeySet,
        assertion: &str,
        kid: &str,
        alg: Algorithm,
    ) -> Result<Claims, AssertionRejected> {
        match keys.lookup(kid, alg) {
            Lookup::Found(key) => self.decode(assertion, key, alg),
            Lookup::NoSuchKid | Lookup::WrongAlgorithm => Err(AssertionRejected::UnknownKey),
        }
    }

    /// The signature, then the required claims, `iss` and `aud`, by jsonwebtoken.
    fn decode(&self, assertion: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims, AssertionRejected> {
        let index = ALLOWED.iter().position(|allowed| *allowed == alg).ok_or_else(|| rejected_alg(alg))?;
        match jsonwebtoken::decode::<Claims>(assertion, key, &self.validations[index]) {
            Ok(data) => Ok(data.claims),
            Err(err) => Err(match err.into_kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidKeyFormat => AssertionRejected::Signature,
                ErrorKind::MissingRequiredClaim(claim) => missing(&claim),
                ErrorKind::InvalidIssuer => AssertionRejected::Issuer,
                ErrorKind::InvalidAudience => AssertionRejected::Audience,
                ErrorKind::ExpiredSignature => AssertionRejected::Expired,
                ErrorKind::ImmatureSignature => AssertionRejected::NotYetValid,
                ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => rejected_alg(alg),
                _ => AssertionRejected::Malformed,
            }),
        }
    }

    /// `exp` passed, `nbf` or `iat` in the future: each with the leeway, against the clock.
    fn check_times(&self, claims: &Claims) -> Result<(), AssertionRejected> {
        let exp = numeric_date(claims.exp.as_ref(), "exp")?;
        let nbf = numeric_date(claims.nbf.as_ref(), "nbf")?;
        let iat = numeric_date(claims.iat.as_ref(), "iat")?;
        let now = self.clock.system().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let leeway = self.leeway.as_secs_f64();
        if exp + leeway < now {
            return Err(AssertionRejected::Expired);
        }
        if nbf - leeway > now || iat - leeway > now {
            return Err(AssertionRejected::NotYetValid);
        }
        Ok(())
    }
}

#[async_trait]
impl AssertionVerifier for JwtVerifier {
    async fn verify(&self, assertion: &str) -> Result<DeviceUser, AssertionRejected> {
        let checked = self.check(assertion).await;
        if let Err(rejected) = &checked {
            // The reason only: never the assertion, never whom it names.
            tracing::warn!(reason = %rejected, "device-user assertion refused");
        }
        checked
    }
}

/// The algorithm and key id from the header, after refusing everything we never accept.
fn read_header(assertion: &str) -> Result<(Algorithm, String), AssertionRejected> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(AssertionRejected::TooLarge);
    }
    let mut segments = assertion.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(AssertionRejected::Malformed);
    };
    let base64url = |segment: &str| {
        !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !(base64url(header) && base64url(payload) && base64url(signature)) {
        return Err(AssertionRejected::Malformed);
    }
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| AssertionRejected::Malformed)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|_| AssertionRejected::Malformed)?;
    if let Some(name) = KEY_SOURCE_HEADERS.into_iter().find(|name| header.contains_key(*name)) {
        return Err(AssertionRejected::KeySourceHeader(name));
    }
    // No extension is understood, so none may be critical (RFC 7515 4.1.11).
    if header.contains_key("crit") {
        return Err(AssertionRejected::Malformed);
    }
    let alg = match header.get("alg") {
        Some(serde_json::Value::String(alg)) => match alg.as_str() {
            "EdDSA" => Algorithm::EdDSA,
            "ES256" => Algorithm::ES256,
            "RS256" => Algorithm::RS256,
            other => return Err(AssertionRejected::Algorithm(printable(other))),
        },
        _ => return Err(AssertionRejected::Malformed),
    };
    match header.get("kid") {
        Some(serde_json::Value::String(kid)) if !kid.is_empty() => Ok((alg, kid.clone())),
        Some(serde_json::Value::String(_)) | None => Err(AssertionRejected::UnknownKey),
        Some(_) => Err(AssertionRejected::Malformed),
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional) that must be present.
fn numeric_date(value: Option<&serde_json::Value>, claim: &'static str) -> Result<f64, AssertionRejected> {
    match value {
        None | Some(serde_json::Value::Null) => Err(AssertionRejected::MissingClaim(claim)),
        Some(serde_json::Value::Number(number)) => {
            number.as_f64().filter(|seconds| seconds.is_finite() && *seconds >= 0.0).ok_or(AssertionRejected::Malformed)
        }
        Some(_) => Err(AssertionRejected::Malformed),
    }
}

fn missing(claim: &str) -> AssertionRejected {
    match REQUIRED_CLAIMS.into_iter().find(|required| *required == claim) {
        Some(required) => AssertionRejected::MissingClaim(required),
        None => AssertionRejected::Malformed,
    }
}

fn rejected_alg(alg: Algorithm) -> AssertionRejected {
    AssertionRejected::Algorithm(format!("{alg:?}"))
}
