//! The keys trusted to sign device-user assertions: a JWKS parsed into verification keys by key
//! id (keys we cannot or must not use are skipped with a log line), and where the set comes from:
//! fixed at start (a file, the development issuer) or an https URL, cached and fetched again when
//! an assertion names a key id the set lacks, at most once per interval, one fetch at a time.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::domain::clock::Clock;
use crate::domain::identity::AssertionRejected;

/// A JWKS larger than this is refused: real ones hold a few keys in a few KiB.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Keys a set may hold; more is refused (a set that large is not a set of signing keys).
pub const MAX_KEYS: usize = 64;
/// The whole fetch of a JWKS URL (connect, TLS, body) must finish within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A fetched set older than this is fetched again on its next use, so a key the issuer withdrew
/// stops being trusted even when no new key id ever turns up.
pub const MAX_KEYS_AGE: Duration = Duration::from_secs(3600);

/// RSA moduli outside these bounds are skipped: shorter is too weak, longer only costs time.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;
/// Key ids longer than this are skipped (they would only fill logs).
const MAX_KID_CHARS: usize = 256;

/// Why a key set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read the JWKS file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the JWKS is larger than {} KiB", MAX_JWKS_BYTES / 1024)]
    TooLarge,
    #[error("not a JWKS (a JSON object with a \"keys\" array): {0}")]
    NotJwks(String),
    #[error("the JWKS holds more than {MAX_KEYS} keys")]
    TooManyKeys,
    #[error(
        "the JWKS holds no usable key (each needs a kid, and is an Ed25519 key for EdDSA, a P-256 key for ES256 \
         or an RSA key of {RSA_MIN_BITS} to {RSA_MAX_BITS} bits for RS256)"
    )]
    NoUsableKey,
    #[error("cannot fetch the JWKS at {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("cannot set up TLS for the JWKS URL: {0}")]
    Tls(String),
}

/// The algorithms an assertion may be signed with.
pub(crate) const ALLOWED: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

/// One key that may verify assertions, and the one algorithm it verifies.
struct TrustedKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// A parsed key set: verification keys by key id.
pub struct KeySet {
    by_kid: HashMap<String, Vec<TrustedKey>>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet").field("keys", &self.len()).finish()
    }
}

/// What a key id and algorithm find in a set.
pub(crate) enum Lookup<'a> {
    Found(&'a DecodingKey),
    /// The set has no key with this id: a fetch may bring it.
    NoSuchKid,
    /// The id is known, but its key is for another algorithm.
    WrongAlgorithm,
}

impl KeySet {
    /// Parses a JWKS document. Keys that cannot be used are skipped with a log line; a set left
    /// with no key is an error.
    pub fn from_json(json: &[u8]) -> Result<KeySet, JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let document: serde_json::Value =
            serde_json::from_slice(json).map_err(|err| JwksError::NotJwks(err.to_string()))?;
        let Some(keys) = document.get("keys").and_then(|keys| keys.as_array()) else {
            return Err(JwksError::NotJwks("no \"keys\" array".into()));
        };
        if keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut parsed = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            match serde_json::from_value::<Jwk>(key.clone()) {
                Ok(jwk) => parsed.push(jwk),
                Err(err) => tracing::warn!(index, reason = %err, "JWKS key skipped: not a JWK"),
            }
        }
        Self::from_jwks(&JwkSet { keys: parsed })
    }

    /// Builds the set from parsed JWKs, with the same rules as [`KeySet::from_json`].
    pub fn from_jwks(set: &JwkSet) -> Result<KeySet, JwksError> {
        if set.keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut by_kid: HashMap<String, Vec<TrustedKey>> = HashMap::new();
        for (index, jwk) in set.keys.iter().enumerate() {
            let kid = jwk.common.key_id.as_deref().unwrap_or_default();
            match trusted_key(jwk) {
                Ok(key) => {
                    let same_kid = by_kid.entry(kid.to_owned()).or_default();
                    if same_kid.iter().any(|other| other.alg == key.alg) {
                        tracing::warn!(index, kid, "JWKS key skipped: an earlier key has the same kid and alg");
                    } else {
                        same_kid.push(key);
                    }
                }
                Err(reason) => tracing::warn!(index, kid = %printable(kid), reason, "JWKS key skipped"),
            }
        }
        if by_kid.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(KeySet { by_kid })
    }

    /// Reads and parses a JWKS file; errors name the file.
    pub fn from_file(path: &Path) -> Result<KeySet, JwksError> {
        let read_error = |reason: String| JwksError::Read { path: path.display().to_string(), reason };
        let metadata = std::fs::metadata(path).map_err(|err| read_error(err.to_string()))?;
        if metadata.len() > MAX_JWKS_BYTES as u64 {
            return Err(read_error(JwksError::TooLarge.to_string()));
        }
        let bytes = std::fs::read(path).map_err(|err| read_error(err.to_string()))?;
        KeySet::from_json(&bytes).map_err(|err| read_error(err.to_string()))
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.by_kid.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }

    pub(crate) fn lookup(&self, kid: &str, alg: Algorithm) -> Lookup<'_> {
        match self.by_kid.get(kid) {
            None => Lookup::NoSuchKid,
            Some(keys) => match keys.iter().find(|key| key.alg == alg) {
                Some(key) => Lookup::Found(&key.key),
                None => Lookup::WrongAlgorithm,
            },
        }
    }
}

/// The verification key a JWK stands for, or why it is skipped.
fn trusted_key(jwk: &Jwk) -> Result<TrustedKey, &'static str> {
    let kid = jwk.common.key_id.as_deref().unwrap_or_default();
    if kid.is_empty() {
        return Err("no kid: assertions pick their key by kid");
    }
    if kid.chars().count() > MAX_KID_CHARS {
        return Err("kid longer than 256 characters");
    }
    if jwk.common.public_key_use.as_ref().is_some_and(|usage| *usage != PublicKeyUse::Signature) {
        return Err("use is not \"sig\"");
    }
    if jwk.common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify)) {
        return Err("key_ops lacks \"verify\"");
    }
    let (alg, key) = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(params) => {
            if params.curve != EllipticCurve::Ed25519 {
                return Err("OKP key on a curve other than Ed25519");
            }
            if decoded_len(&params.x) != Some(32) {
                return Err("Ed25519 key whose x is not 32 bytes");
            }
            (Algorithm::EdDSA, DecodingKey::from_ed_components(&params.x).map_err(|_| "Ed25519 key unreadable")?)
        }
        AlgorithmParameters::EllipticCurve(params) => {
            if params.curve != EllipticCurve::P256 {
                return Err("EC key on a curve other than P-256");
            }
            if decoded_len(&params.x) != Some(32) || decoded_len(&params.y) != Some(32) {
                return Err("P-256 key whose x or y is not 32 bytes");
            }
            let key = DecodingKey::from_ec_components(&params.x, &params.y).map_err(|_| "P-256 key unreadable")?;
            // The point is parsed when a verifier is built: a bad one fails here, not per call.
            if jsonwebtoken::crypto::verify("AA", b"probe", &key, Algorithm::ES256).is_err() {
                return Err("P-256 key that is not a point on the curve");
            }
            (Algorithm::ES256, key)
        }
        AlgorithmParameters::RSA(params) => {
            let modulus = URL_SAFE_NO_PAD.decode(&params.n).map_err(|_| "RSA key whose n is not base64url")?;
            let exponent = URL_SAFE_NO_PAD.decode(&params.e).map_err(|_| "RSA key whose e is not base64url")?;
            let bits = significant_bits(&modulus);
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                return Err("RSA key shorter than 2048 or longer than 8192 bits");
            }
            if exponent.is_empty() || exponent.len() > 4 {
                return Err("RSA key with an unusual public exponent");
            }
            (Algorithm::RS256, DecodingKey::from_rsa_raw_components(&modulus, &exponent))
        }
        AlgorithmParameters::OctetKey(_) => return Err("symmetric (oct) keys are never trusted"),
        _ => return Err("key type not supported (OKP Ed25519, EC P-256 and RSA only)"),
    };
    match jwk.common.key_algorithm {
        None => {}
        Some(stated) if key_algorithm(alg) == stated => {}
        Some(_) => return Err("alg does not match the key type (EdDSA, ES256 and RS256 only)"),
    }
    Ok(TrustedKey { alg, key })
}

fn key_algorithm(alg: Algorithm) -> KeyAlgorithm {
    match alg {
        Algorithm::EdDSA => KeyAlgorithm::EdDSA,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::RS256,
    }
}

fn decoded_len(b64: &str) -> Option<usize> {
    URL_SAFE_NO_PAD.decode(b64).ok().map(|bytes| bytes.len())
}

fn significant_bits(big_endian: &[u8]) -> usize {
    match big_endian.iter().position(|&byte| byte != 0) {
        None => 0,
        Some(first) => (big_endian.len() - first) * 8 - big_endian[first].leading_zeros() as usize,
    }
}

/// A value from outside, shortened and stripped to printable ASCII for a log line.
pub(crate) fn printable(raw: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

/// Where the trusted keys come from.
pub struct KeySource(Source);

enum Source {
    Fixed(Arc<KeySet>),
    // Boxed: it is large and there is one per server.
    Remote(Box<RemoteKeys>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Fixed(set) => f.debug_tuple("KeySource::Fixed").field(set).finish(),
            Source::Remote(remote) => f.debug_tuple("KeySource::Remote").field(&remote.url.as_str()).finish(),
        }
    }
}

/// A JWKS URL and how it is fetched.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub url: reqwest::Url,
    /// CA certificates (PEM) the server must chain to; `None`: the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Fetches caused by unknown key ids (or an old set) are at least this far apart.
    pub refresh_min: Duration,
}

struct RemoteKeys {
    url: reqwest::Url,
    client: reqwest::Client,
    refresh_min: Duration,
    clock: Arc<dyn Clock>,
    cached: RwLock<Cached>,
    /// Held while fetching, so concurrent callers wait for one fetch instead of starting more.
    /// It holds when the last fetch was attempted.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Cached {
    keys: Option<(Arc<KeySet>, Instant)>,
    /// Why the last fetch failed, for callers when there is no set at all.
    last_error: Option<String>,
}

impl KeySource {
    /// A set that never changes: a JWKS file or the development issuer.
    pub fn fixed(keys: KeySet) -> KeySource {
        KeySource(Source::Fixed(Arc::new(keys)))
    }

    /// A JWKS URL, fetched once now. A failed first fetch is logged, not fatal: assertions are
    /// refused (KeysUnavailable) until a later fetch, at most one per `refresh_min`, succeeds.
    pub async fn remote(config: RemoteConfig, clock: Arc<dyn Clock>) -> anyhow::Result<KeySource> {
        let client = https_client(config.ca_file.as_deref())?;
        let remote = RemoteKeys {
            url: config.url,
            client,
            refresh_min: config.refresh_min,
            clock,
            cached: RwLock::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(None),
        };
        remote.refresh(None).await;
        Ok(KeySource(Source::Remote(Box::new(remote))))
    }

    /// The set to check an assertion against now.
    pub(crate) async fn current(&self) -> Result<Arc<KeySet>, AssertionRejected> {
        let remote = match &self.0 {
            Source::Fixed(keys) => return Ok(keys.clone()),
            Source::Remote(remote) => remote,
        };
        let (keys, fetched_at) = remote.cached();
        match keys {
            Some(keys) if remote.clock.instant().saturating_duration_since(fetched_at) < MAX_KEYS_AGE => Ok(keys),
            seen => remote.refresh(seen.as_ref()).await.ok_or_else(|| remote.unavailable()),
        }
    }

    /// The set after a fetch caused by a key id `seen` lacks. No fetch happens when another
    /// caller fetched meanwhile or the last fetch was less than `refresh_min` ago; a fixed set
    /// is returned as it is.
    pub(crate) async fn refreshed(&self, seen: &Arc<KeySet>) -> Result<Arc<KeySet>, AssertionRejected> {
        match &self.0 {
            Source::Fixed(keys) => Ok(keys.clone()),
            Source::Remote(remote) => remote.refresh(Some(seen)).await.ok_or_else(|| remote.unavailable()),
        }
    }
}

impl RemoteKeys {
    fn cached(&self) -> (Option<Arc<KeySet>>, Instant) {
        let cached = self.cached.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        match &cached.keys {
            Some((keys, at)) => (Some(keys.clone()), *at),
            None => (None, self.clock.instant()),
        }
    }

    fn unavailable(&self) -> AssertionRejected {
        let cached = self.cached.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let reason = cached.last_error.clone().unwrap_or_else(|| "it has not been fetched yet".into());
        AssertionRejected::KeysUnavailable(format!("the JWKS at {}: {reason}", self.url))
    }

    /// Fetches the set unless someone else did since the caller saw `seen` or the last attempt
    /// is too recent; returns the set held afterwards (the old one when a fetch fails).
    async fn refresh(&self, seen: Option<&Arc<KeySet>>) -> Option<Arc<KeySet>> {
        let mut last_attempt = self.fetching.lock().await;
        let (held, _) = self.cached();
        let changed = match (&held, seen) {
            (Some(held), Some(seen)) => !Arc::ptr_eq(held, seen),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let now = self.clock.instant();
        let too_soon = last_attempt.is_some_and(|at| now.saturating_duration_since(at) < self.refresh_min);
        if changed || too_soon {
            return held;
        }
        *last_attempt = Some(now);
        match self.fetch().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                tracing::info!(url = %self.url, keys = keys.len(), "device-user assertion keys fetched");
                let mut cached = self.cached.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                cached.keys = Some((keys.clone(), now));
                cached.last_error = None;
                Some(keys)
            }
            Err(err) => {
                tracing::warn!(url = %self.url, error = %err, "device-user assertion keys not fetched; keeping the keys held");
                let mut cached = self.cached.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                cached.last_error = Some(err.to_string());
                held
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let fetch_error = |reason: String| JwksError::Fetch { url: self.url.to_string(), reason };
        let mut response = self
            .client
            .get(self.url.clone())
            .header("accept", "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(|err| fetch_error(error_chain(&err)))?;
        if !response.status().is_success() {
            return Err(fetch_error(format!("HTTP status {}", response.status().as_u16())));
        }
        if response.content_length().is_some_and(|length| length > MAX_JWKS_BYTES as u64) {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| fetch_error(error_chain(&err)))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::from_json(&body)
    }
}

/// An error with its causes, which say what went wrong (a refused certificate, a timeout).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The client for JWKS URLs: https only, our rustls config (ring) with the configured CA or the
/// system's roots, no redirects, bounded in time.
fn https_client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let tls = crate::tls::outbound_client_config(ca_file, "assertion JWKS")?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .connect_timeout(FETCH_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("podconnect/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| JwksError::Tls(error_chain(&err)).into())
}
