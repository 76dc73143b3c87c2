//! Signing in: storefront login and logout of a session, failed-login limits per device and per
//! account, and single sign-on for verified device users (enroll, one-time vault keys, silent
//! login, forget) on top of the SSO manager, which alone ever sees a key or a stored credential.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sso::{Credentials, SsoError, SsoManager};
use vault::VaultAddress;
use zeroize::Zeroizing;

use crate::domain::catalog::{Account, Storefront};
use crate::domain::clock::Clock;
use crate::domain::crypto::random_bytes;
use crate::domain::ephemeral::EphemeralStore;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::identity::AssertionVerifier;
use crate::domain::session::{Session, SessionManager, SessionToken};
use crate::domain::usage::{UsageEvent, UsageKind, UsageSink};

/// Longest user name and password accepted (characters), as the contract says.
pub const MAX_USERNAME_CHARS: usize = 256;
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Longest device-user assertion accepted (bytes).
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;
/// How long a vault key works if unused.
pub const VAULT_KEY_TTL: Duration = Duration::from_secs(120);
/// Length of an encoded vault key: 32 random bytes in unpadded base64url.
const VAULT_KEY_LEN: usize = 43;
/// Ephemeral-store scope of issued vault keys, each named by the SHA-256 of the key.
const VAULT_KEY_SCOPE: &str = "sso-vault-keys";
/// Name of the session's current storefront credentials in its data (for Enroll without any).
const LOGIN_CREDENTIALS: &str = "storefront-login";
/// The one message for an assertion that does not verify; the reason goes to the log.
const ASSERTION_REFUSED: &str = "the device user could not be verified (the sign-in at the printer is not accepted \
                                 here, or it expired); start the session without single sign-on or sign in at the \
                                 printer again";

/// How many failed logins are allowed, and for how long they count.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failed logins one device may make within `window`.
    pub per_device: usize,
    /// Failed logins one account (user name) may get within `window`, from any device.
    pub per_account: usize,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits { per_device: 10, per_account: 5, window: Duration::from_secs(15 * 60) }
    }
}

/// What signing in needs, wired once in `app`.
pub struct SignInDeps {
    pub sessions: Arc<SessionManager>,
    pub storefront: Arc<dyn Storefront>,
    pub verifier: Arc<dyn AssertionVerifier>,
    pub sso: Arc<SsoManager>,
    /// Where one-time vault keys live until used (shared by every instance).
    pub store: Arc<dyn EphemeralStore>,
    pub usage: Arc<dyn UsageSink>,
    pub clock: Arc<dyn Clock>,
    pub limits: LoginLimits,
}

/// A finished login: the session under its new token.
pub struct LoggedIn {
    pub token: SessionToken,
    pub session: Session,
    pub display_name: String,
    /// Whether the credentials were stored for single sign-on.
    pub remembered: bool,
}

impl std::fmt::Debug for LoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedIn").field("remembered", &self.remembered).finish_non_exhaustive()
    }
}

/// A storefront user name and password as a caller sent them.
pub struct Login<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// What a vault key stands for, in the ephemeral store under the key's hash.
#[derive(Serialize, Deserialize)]
struct IssuedVaultKey {
    /// The session it was issued to (its data scope, which a login does not change).
    session_scope: String,
    address: [u8; 32],
}

/// Storefront login and single sign-on for sessions.
pub struct SignIn {
    deps: SignInDeps,
}

impl SignIn {
    pub fn new(deps: SignInDeps) -> Self {
        SignIn { deps }
    }

    /// The vault address of the device user an assertion names; `None` for an empty assertion.
    pub async fn verify_device_user(&self, assertion: &str) -> CoreResult<Option<VaultAddress>> {
        if assertion.is_empty() {
            return Ok(None);
        }
        if assertion.len() > MAX_ASSERTION_BYTES {
            return Err(CoreError::InvalidArgument(format!(
                "device_user_assertion is longer than {} KiB",
                MAX_ASSERTION_BYTES / 1024
            )));
        }
        match self.deps.verifier.verify(assertion).await {
            Ok(user) => Ok(Some(self.deps.sso.address_of(&user.issuer, &user.subject))),
            // The verifier has logged the reason, once.
            Err(_) => Err(CoreError::Unauthenticated(ASSERTION_REFUSED.into())),
        }
    }

    /// Whether the session's device user has credentials stored. A vault that cannot be reached
    /// only means no single sign-on now, never a refused session.
    pub async fn sso_available(&self, session: &Session) -> bool {
        let Some(address) = session.device_user() else { return false };
        match self.deps.sso.exists(address).await {
            Ok(exists) => exists,
            Err(err) => {
                tracing::warn!(error = %err, "cannot ask the SSO vault whether credentials are stored");
                false
            }
        }
    }

    /// Logs the session in to a storefront account, rotating its token; with `remember` and a
    /// verified device user, also stores the credentials for single sign-on.
    pub async fn login(&self, session: &Session, login: Login<'_>, remember: bool) -> CoreResult<LoggedIn> {
        let account = self.check_with_storefront(session, &login).await?;
        let credentials = credentials(&login);
        let remembered = remember && self.remember(session, &credentials).await;
        let display_name = account.display_name.clone();
        let (token, session) = self.deps.sessions.rotate(session, Some(account)).await?;
        self.keep_credentials(&session, &credentials).await?;
        self.usage(UsageKind::LoginSucceeded).await;
        Ok(LoggedIn { token, session, display_name, remembered })
    }

    /// Asks the storefront whether `login` is right, within the failed-login limits: a refusal
    /// counts against the device and the account, a success clears the account's count.
    async fn check_with_storefront(&self, session: &Session, login: &Login<'_>) -> CoreResult<Account> {
        check_credentials(login)?;
        let account_key = account_key(login.username);
        self.check_limits(session, &account_key).await?;
        let visit = self.deps.sessions.visit(session);
        match self.deps.storefront.login(&visit, login.username, login.password).await {
            Ok(account) => {
                self.deps.store.delete_scope(&failures_scope(&account_key)).await?;
                Ok(account)
            }
            Err(err) => {
                if matches!(err, CoreError::PermissionDenied(_)) {
                    self.count_failure(session, &account_key).await?;
                    self.usage(UsageKind::LoginFailed).await;
                }
                Err(err)
            }
        }
    }

    /// Ends the session's storefront login; the session and its token stay.
    pub async fn logout(&self, session: &Session) -> CoreResult<()> {
        self.deps.sessions.data(session).delete(LOGIN_CREDENTIALS).await?;
        self.deps.storefront.logout(&self.deps.sessions.visit(session)).await?;
        self.deps.sessions.log_out(session).await?;
        Ok(())
    }

    /// Stores credentials for the session's device user: `login`, checked with the storefront
    /// first, or those of the session's current login. Returns the account's display name and
    /// whether earlier credentials were replaced.
    pub async fn enroll(&self, session: &Session, login: Option<Login<'_>>) -> CoreResult<(String, bool)> {
        let address = device_user(session)?;
        let (credentials, display_name) = match login {
            Some(login) => {
                let account = self.check_with_storefront(session, &login).await?;
                (credentials(&login), account.display_name)
            }
            None => {
                let not_logged_in = || {
                    CoreError::FailedPrecondition(
                        "the session is not logged in to the storefront: log in first, or send the credentials to \
                         remember"
                            .into(),
                    )
                };
                let account = session.login().ok_or_else(not_logged_in)?;
                let stored =
                    self.deps.sessions.data(session).get(LOGIN_CREDENTIALS).await?.ok_or_else(not_logged_in)?;
                let credentials: Credentials = serde_json::from_slice(&stored)
                    .map_err(|e| CoreError::internal("the session's login is unreadable", e))?;
                (credentials, account.display_name.clone())
            }
        };
        let replaced = self.deps.sso.store(address, &credentials).await.map_err(sso_error)?;
        self.usage(UsageKind::SsoEnrolled).await;
        Ok((display_name, replaced))
    }

    /// A one-time vault key for the session's device user, and when it stops working.
    pub async fn vault_key(&self, session: &Session) -> CoreResult<(String, SystemTime)> {
        let address = device_user(session)?;
        if !self.deps.sso.exists(address).await.map_err(sso_error)? {
            return Err(CoreError::NotFound(
                "nothing is stored for single sign-on for this device user: log in with \"remember me\" first".into(),
            ));
        }
        let key = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let issued = IssuedVaultKey { session_scope: session.scope(), address: *address.as_bytes() };
        let value = Zeroizing::new(
            postcard::to_allocvec(&issued).map_err(|e| CoreError::internal("cannot issue a vault key", e))?,
        );
        let ttl = VAULT_KEY_TTL.min(session.expires_at().duration_since(self.deps.clock.system()).unwrap_or_default());
        self.deps.store.put(VAULT_KEY_SCOPE, &hash(&key), value.to_vec(), ttl).await?;
        Ok((key, self.deps.clock.system() + ttl))
    }

    /// Logs the session in with the credentials a vault key of this session points to.
    pub async fn silent_login(&self, session: &Session, vault_key: &str) -> CoreResult<LoggedIn> {
        if vault_key.len() != VAULT_KEY_LEN || URL_SAFE_NO_PAD.decode(vault_key).is_err() {
            return Err(CoreError::InvalidArgument(
                "vault_key is empty or malformed: send the one SsoService.GetVaultKey returned".into(),
            ));
        }
        let unknown = || {
            CoreError::NotFound(
                "the vault key is unknown, expired or already used: get a new one with SsoService.GetVaultKey".into(),
            )
        };
        // Taken, so it works once whoever uses it: a stolen key used elsewhere is spent.
        let taken = self.deps.store.take(VAULT_KEY_SCOPE, &hash(vault_key)).await?.ok_or_else(unknown)?;
        let issued: IssuedVaultKey = postcard::from_bytes(&taken).map_err(|_| unknown())?;
        if issued.session_scope != session.scope() {
            return Err(unknown());
        }
        let address = VaultAddress::from_bytes(issued.address);
        let credentials = match self.deps.sso.load(&address).await {
            Ok(Some(credentials)) => credentials,
            Ok(None) => {
                return Err(CoreError::NotFound(
                    "the stored sign-in was removed meanwhile: log in with \"remember me\" to store it again".into(),
                ));
            }
            Err(err @ (SsoError::Unseal(_) | SsoError::Corrupt)) => {
                tracing::warn!(reason = %err, "stored SSO credentials cannot be opened; they are deleted");
                self.drop_unusable(&address).await?;
                return Err(CoreError::FailedPrecondition(
                    "your saved sign-in can no longer be used (it was made with a retired key or is damaged) and was \
                     removed: log in again, and choose \"remember me\" to save it anew"
                        .into(),
                ));
            }
            Err(err) => return Err(sso_error(err)),
        };
        let visit = self.deps.sessions.visit(session);
        let account = match self.deps.storefront.login(&visit, &credentials.username, &credentials.password).await {
            Ok(account) => account,
            Err(CoreError::PermissionDenied(_)) => {
                self.drop_unusable(&address).await?;
                self.usage(UsageKind::LoginFailed).await;
                return Err(CoreError::FailedPrecondition(
                    "the storefront no longer accepts your saved sign-in (the password may have changed), so it was \
                     removed: log in again, and choose \"remember me\" to save it anew"
                        .into(),
                ));
            }
            Err(err) => return Err(err),
        };
        let display_name = account.display_name.clone();
        let (token, session) = self.deps.sessions.rotate(session, Some(account)).await?;
        self.keep_credentials(&session, &credentials).await?;
        self.usage(UsageKind::LoginSucceeded).await;
        self.usage(UsageKind::SsoUsed).await;
        Ok(LoggedIn { token, session, display_name, remembered: true })
    }

    /// Deletes what is stored for the session's device user. True when something was.
    pub async fn forget(&self, session: &Session) -> CoreResult<bool> {
        let address = device_user(session)?;
        let deleted = self.deps.sso.forget(address).await.map_err(sso_error)?;
        if deleted {
            self.usage(UsageKind::SsoForgotten).await;
        }
        Ok(deleted)
    }

    /// A new newest key-encryption key (operators).
    pub async fn rotate_key(&self) -> CoreResult<sso::KeyVersionInfo> {
        self.deps.sso.rotate_key().await.map_err(sso_error)
    }

    /// Re-encrypts every entry under the newest key (operators).
    pub async fn rewrap(&self) -> CoreResult<sso::RewrapReport> {
        self.deps.sso.rewrap().await.map_err(sso_error)
    }

    /// Sets the oldest key version that may decrypt (operators); returns (newest, oldest).
    pub fn set_min_decryption_version(&self, version: u32) -> CoreResult<(u32, u32)> {
        self.deps.sso.set_min_decryption_version(version).map_err(sso_error)?;
        Ok((self.deps.sso.latest_version(), version))
    }

    async fn remember(&self, session: &Session, credentials: &Credentials) -> bool {
        let Some(address) = session.device_user() else { return false };
        match self.deps.sso.store(address, credentials).await {
            Ok(_) => {
                self.usage(UsageKind::SsoEnrolled).await;
                true
            }
            Err(err) => {
                // The login itself worked; the person is told it was not remembered.
                tracing::warn!(error = %err, "cannot store credentials for single sign-on");
                false
            }
        }
    }

    /// Keeps the login's credentials, sealed in the session's data, for a later Enroll.
    async fn keep_credentials(&self, session: &Session, credentials: &Credentials) -> CoreResult<()> {
        let encoded = Zeroizing::new(
            serde_json::to_vec(credentials).map_err(|e| CoreError::internal("cannot keep the login", e))?,
        );
        self.deps.sessions.data(session).put(LOGIN_CREDENTIALS, &encoded).await
    }

    async fn drop_unusable(&self, address: &VaultAddress) -> CoreResult<()> {
        if self.deps.sso.forget(address).await.map_err(sso_error)? {
            self.usage(UsageKind::SsoForgotten).await;
        }
        Ok(())
    }

    async fn check_limits(&self, session: &Session, account_key: &str) -> CoreResult<()> {
        let limits = self.deps.limits;
        let device = self.retry_after(&device_key(session), limits.per_device).await?;
        let account = self.retry_after(account_key, limits.per_account).await?;
        match (device, account) {
            (None, None) => Ok(()),
            (Some(wait), None) => Err(CoreError::ResourceExhausted(format!(
                "too many failed logins on this printer; retry in about {} s",
                wait.as_secs().max(1)
            ))),
            (device, Some(wait)) => Err(CoreError::ResourceExhausted(format!(
                "too many failed logins for this account; retry in about {} s",
                device.map_or(wait, |d| d.max(wait)).as_secs().max(1)
            ))),
        }
    }

    /// How long until `key` may try again, when it has `limit` failures within the window.
    async fn retry_after(&self, key: &str, limit: usize) -> CoreResult<Option<Duration>> {
        let names = self.deps.store.names(&failures_scope(key)).await?;
        if names.len() < limit {
            return Ok(None);
        }
        // Each failure is an entry named by its time; it is allowed again when enough of them
        // have left the window that fewer than `limit` remain.
        let mut times: Vec<u64> = names.iter().filter_map(|n| n.split('-').next()?.parse().ok()).collect();
        times.sort_unstable();
        let Some(&freeing) = times.get(times.len().saturating_sub(limit)) else { return Ok(None) };
        let age = Duration::from_millis(unix_ms(self.deps.clock.system()).saturating_sub(freeing));
        Ok(Some(self.deps.limits.window.saturating_sub(age).max(Duration::from_secs(1))))
    }

    /// Counts a failure for the device and the account, in the ephemeral store so that every
    /// instance counts the same failures; each is an entry of its own that expires with the
    /// window, so concurrent failures on several instances never overwrite each other.
    async fn count_failure(&self, session: &Session, account_key: &str) -> CoreResult<()> {
        let now = unix_ms(self.deps.clock.system());
        let window = self.deps.limits.window;
        for key in [device_key(session), account_key.to_owned()] {
            let name = format!("{now}-{}", hex::encode(crate::domain::crypto::random_bytes::<6>()));
            self.deps.store.put(&failures_scope(&key), &name, Vec::new(), window).await?;
        }
        Ok(())
    }

    async fn usage(&self, kind: UsageKind) {
        self.deps.usage.record(UsageEvent::new(kind)).await;
    }
}

/// The ephemeral-store scope of one counter's failures.
fn failures_scope(key: &str) -> String {
    format!("login-failures-{key}")
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn credentials(login: &Login<'_>) -> Credentials {
    Credentials { username: login.username.trim().to_owned(), password: Zeroizing::new(login.password.to_owned()) }
}

fn check_credentials(login: &Login<'_>) -> CoreResult<()> {
    let username = login.username.trim();
    if username.is_empty() || username.chars().count() > MAX_USERNAME_CHARS {
        return Err(CoreError::InvalidArgument(format!("username must be 1 to {MAX_USERNAME_CHARS} characters")));
    }
    if login.password.is_empty() || login.password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(CoreError::InvalidArgument(format!("password must be 1 to {MAX_PASSWORD_CHARS} characters")));
    }
    Ok(())
}

fn device_user(session: &Session) -> CoreResult<&VaultAddress> {
    session.device_user().ok_or_else(|| {
        CoreError::FailedPrecondition(
            "single sign-on needs a device user: start the session with a device_user_assertion from the printer's \
             sign-in"
                .into(),
        )
    })
}

/// The failure counter of a device.
fn device_key(session: &Session) -> String {
    format!("device:{}", session.device_id())
}

/// The failure counter of an account: a hash, so the table never holds a user name.
fn account_key(username: &str) -> String {
    format!("account:{}", hash(&username.trim().to_lowercase()))
}

fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn sso_error(err: SsoError) -> CoreError {
    match err {
        SsoError::Vault(vault::VaultError::Unavailable(_)) => {
            CoreError::Unavailable("the SSO vault cannot be reached right now; try again later".into())
        }
        SsoError::ReadOnly => CoreError::FailedPrecondition(
            "this server's key ring comes from configuration and cannot change at run time: rotate it there".into(),
        ),
        SsoError::InvalidVersion(why) => CoreError::InvalidArgument(format!("min_decryption_version: {why}")),
        other => CoreError::internal("single sign-on failed", other),
    }
}
