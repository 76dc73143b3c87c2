//! The development issuer: an Ed25519 signing key generated once under the data folder, the JWKS
//! the core trusts when no other key set is configured, and assertions for a named device user
//! (`podconnect-server dev-assertion`). Only for the embedded default and tests: anyone who can
//! read the data folder can sign in as anybody.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// The `iss` of the development issuer's assertions.
pub const DEV_ISSUER: &str = "podconnect-dev-issuer";
/// The `aud` a core expects unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "podconnect";
/// The longest an assertion from the development issuer may live.
pub const MAX_DEV_TTL: Duration = Duration::from_secs(24 * 3600);
/// Device-user names longer than this are refused.
const MAX_USER_CHARS: usize = 256;

/// The development issuer's signing key and the audience it signs for.
pub struct DevIssuer {
    key: EncodingKey,
    jwk: Jwk,
    kid: String,
    audience: String,
    key_path: PathBuf,
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuer")
            .field("kid", &self.kid)
            .field("key", &"[redacted]")
            .field("key_path", &self.key_path)
            .finish()
    }
}

impl DevIssuer {
    /// Where the signing key lives under a data folder.
    pub fn key_path(data_dir: &Path) -> PathBuf {
        data_dir.join("identity").join("dev-issuer.key")
    }

    /// Loads the signing key under `data_dir`, generating it (mode 0600, written atomically) on
    /// first use. Also writes the public JWKS beside it (`dev-issuer.jwks.json`), which can be
    /// configured as a JWKS file elsewhere.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<DevIssuer> {
        let key_path = Self::key_path(data_dir);
        let dir = key_path.parent().context("the key lives in a folder")?.to_path_buf();
        let dir = dir.as_path();
        crate::store::private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let pem = match std::fs::read_to_string(&key_path) {
            Ok(pem) => pem,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => create_key(&key_path)?,
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", key_path.display())),
        };
        {
            use std::os::unix::fs::PermissionsExt as _;
            // An older or copied file is narrowed too.
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make {} private", key_path.display()))?;
        }
        let pair = rcgen::KeyPair::from_pem(&pem).map_err(|_| {
            anyhow::anyhow!("{} is not a PEM private key; delete it to make a new one", key_path.display())
        })?;
        if pair.algorithm() != &rcgen::PKCS_ED25519 {
            bail!("{} is not an Ed25519 key; delete it to make a new one", key_path.display());
        }
        let key = EncodingKey::from_ed_der(&pair.serialize_der());
        let public = URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: public,
            }),
        };
        // The RFC 7638 thumbprint: the same key always gets the same kid.
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).context("cannot compute the development key's id")?;
        jwk.common.key_id = Some(kid.clone());
        let issuer = DevIssuer { key, jwk, kid, audience: DEFAULT_AUDIENCE.to_owned(), key_path };
        // A key the signer cannot use is found now, not at the first assertion.
        issuer.issue("probe", Duration::from_secs(1)).context("the development key cannot sign")?;
        let jwks = serde_json::to_vec_pretty(&issuer.jwks()).context("cannot write the development JWKS")?;
        write_atomically(&dir.join("dev-issuer.jwks.json"), &jwks, 0o644, true)?;
        Ok(issuer)
    }

    /// The same issuer, signing for another audience (the core's configured one).
    pub fn with_audience(mut self, audience: impl Into<String>) -> DevIssuer {
        self.audience = audience.into();
        self
    }

    /// The key id assertions carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key set that verifies this issuer's assertions.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.jwk.clone()] }
    }

    /// An assertion for `user`, valid from now for `ttl` (at most [`MAX_DEV_TTL`]).
    pub fn issue(&self, user: &str, ttl: Duration) -> anyhow::Result<String> {
        self.issue_at(user, ttl, SystemTime::now())
    }

    /// An assertion for `user` issued at `now` (tests on a shifted clock).
    pub fn issue_at(&self, user: &str, ttl: Duration, now: SystemTime) -> anyhow::Result<String> {
        ensure!(!user.trim().is_empty(), "the device user's name is empty");
        ensure!(
            user.chars().count() <= MAX_USER_CHARS,
            "the device user's name is longer than {MAX_USER_CHARS} characters"
        );
        ensure!(!ttl.is_zero() && ttl <= MAX_DEV_TTL, "an assertion lives longer than zero and at most a day");
        let iat = now.duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_secs();
        let claims = serde_json::json!({
            "iss": DEV_ISSUER,
            "aud": self.audience,
            "sub": user,
            "iat": iat,
            "nbf": iat,
            "exp": iat + ttl.as_secs().max(1),
        });
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).context("cannot sign the assertion")
    }
}

/// Generates a key and stores it at `path` unless another process got there first; returns the
/// PEM now at `path`.
fn create_key(path: &Path) -> anyhow::Result<String> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).context("cannot generate the development key")?;
    let pem = pair.serialize_pem();
    match write_atomically(path, pem.as_bytes(), 0o600, false) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "development assertion issuer key created");
            Ok(pem)
        }
        // Someone else created it meanwhile: theirs is the key.
        Err(_) if path.exists() => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
        }
        Err(err) => Err(err),
    }
}

/// Writes `contents` to a temporary file beside `path` (with `mode`, synced) and moves it into
/// place: readers see the old file or the whole new one. Without `replace`, an existing `path`
/// is left alone and the write fails.
fn write_atomically(path: &Path, contents: &[u8], mode: u32, replace: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().context("the file lives in a folder")?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("no randomness for a temporary file name: {e}"))?;
    let name = path.file_name().context("the file has a name")?.to_string_lossy();
    let temp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        if replace { std::fs::rename(&temp, path) } else { std::fs::hard_link(&temp, path) }
    })();
    // After a rename there is nothing left to remove; after a link, or a failure, the temporary name goes.
    let _ = std::fs::remove_file(&temp);
    written.with_context(|| format!("cannot write {}", path.display()))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        // The new name survives a crash only once the folder is synced.
        let _ = dir.sync_all();
    }
    Ok(())
}
