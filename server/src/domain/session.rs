//! Sessions: a 256-bit bearer token per app launch, kept only as its SHA-256, with idle and
//! absolute limits; and `SessionData`, the encrypted, session-scoped view of the ephemeral store.
//!
//! The session record (which holds the session's data key) lives under the hash of the token and
//! expires after the idle limit unless touched; everything the session makes is sealed under that
//! data key. Deleting or expiring the record therefore shreds all of the session's data at once.
//!
//! Sessions are capped per device and in total, because StartSession needs no credential: a
//! device at its cap loses its least recently used session (at a kiosk that is the person who
//! walked away, so whoever stands at the screen always gets in); a server at its total cap
//! refuses with RESOURCE_EXHAUSTED and a retry time rather than push out sessions people are
//! using on other devices.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use vault::VaultAddress;

use crate::domain::catalog::{Account, Shopper, Visit};
use crate::domain::clock::{Clock, SystemClock};
use crate::domain::crypto::{Key256, random_bytes};
use crate::domain::ephemeral::{EphemeralStore, SessionStash};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::ids::DeviceId;
use crate::domain::usage::{UsageEvent, UsageKind, UsageSink};

/// Scope of the session records, each named by the hex SHA-256 of its token.
const TOKEN_SCOPE: &str = "session-tokens";
/// Scope of the session index: one entry per live session, named like its record, holding the
/// session's data scope. It outlives the record, so whoever takes it first (CloseSession, the
/// next call with the dead token, or the sweep) ends the session exactly once.
const INDEX_SCOPE: &str = "session-index";
/// Scope of renames: a login rotates the token, so the record moves to the new token's hash; the
/// old hash points here to the new one (for background work that names the session by its record,
/// such as a running job or a pull link). Never used to authenticate.
const RENAME_SCOPE: &str = "session-renamed";
/// Most renames followed (logins are rate-limited, so a chain stays short).
const MAX_RENAMES: usize = 64;

/// A session's index entry: where its data lives, and the model of its device for usage events.
#[derive(Serialize, Deserialize)]
struct IndexEntry {
    scope: String,
    device_model: String,
}

/// A usage event of a session, naming its device's model when it has one.
fn device_event(kind: UsageKind, device_model: &str) -> UsageEvent {
    let mut event = UsageEvent::new(kind);
    event.device_model = Some(device_model.to_owned()).filter(|m| !m.is_empty());
    event
}
/// How long an index entry outlives the absolute limit, so the sweep can still see it.
const INDEX_GRACE: Duration = Duration::from_secs(300);
/// Length of an encoded token: 32 random bytes in unpadded base64url.
const TOKEN_LEN: usize = 43;

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Without a call for this long, the session ends.
    pub idle: Duration,
    /// The session ends this long after it started, whatever happens.
    pub absolute: Duration,
    /// Sessions open at once on one device; another closes the least recently used.
    pub max_per_device: usize,
    /// Sessions open at once on this instance; beyond it StartSession is refused.
    pub max_total: usize,
}

/// The bearer token handed to the app at launch. Never logged: `Debug` is redacted.
pub struct SessionToken(String);

impl SessionToken {
    fn generate() -> Self {
        SessionToken(URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
    }

    /// The token to send back to the caller (the only place it is exposed).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// An authenticated session, as the handlers of one call see it.
#[derive(Clone)]
pub struct Session {
    id: [u8; 16],
    token_hash: String,
    data_key: Key256,
    device_id: DeviceId,
    expires_at: SystemTime,
    /// Where the verified device user's SSO entry lives; `None` without a device user.
    device_user: Option<VaultAddress>,
    /// The storefront account the session is logged in to.
    login: Option<Account>,
}

impl Session {
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// When the session ends at the latest (the absolute limit).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The name of the session's record: says whether the session is open
    /// ([`SessionManager::is_record_open`]) and reveals nothing else.
    pub fn record_name(&self) -> &str {
        &self.token_hash
    }

    /// The ephemeral-store scope holding everything this session made.
    pub fn scope(&self) -> String {
        format!("session-{}", hex::encode(self.id))
    }

    /// The vault address of the session's verified device user, if it has one.
    pub fn device_user(&self) -> Option<&VaultAddress> {
        self.device_user.as_ref()
    }

    /// The storefront account the session is logged in to, if any.
    pub fn login(&self) -> Option<&Account> {
        self.login.as_ref()
    }

    /// Who is browsing, for the catalog.
    pub fn shopper(&self) -> Shopper {
        self.login.clone().map_or(Shopper::Anonymous, Shopper::Account)
    }

    fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at.duration_since(now).unwrap_or(Duration::ZERO)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

/// What is stored under the token hash, sealed under the store key.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    id: [u8; 16],
    data_key: [u8; 32],
    device_id: DeviceId,
    expires_at_ms: u64,
    device_user: Option<[u8; 32]>,
    login: Option<Account>,
}

/// Starts, checks and ends sessions.
pub struct SessionManager {
    store: Arc<dyn EphemeralStore>,
    record_key: Key256,
    limits: SessionLimits,
    usage: Arc<dyn UsageSink>,
    open: Mutex<OpenSessions>,
    clock: Arc<dyn Clock>,
}

/// The sessions this instance opened and has not seen end, by device, for the caps. An entry is
/// dropped when its session closes, is pushed out, or has passed its idle or absolute limit (the
/// store expires the record at the same moment). With a store shared by several instances each
/// instance caps what it opened.
#[derive(Default)]
struct OpenSessions {
    devices: HashMap<String, Vec<OpenSession>>,
    total: usize,
    /// When the whole table was last pruned, and the earliest end it saw then.
    pruned_at: Option<Instant>,
    next_end: Option<Instant>,
}

struct OpenSession {
    token_hash: String,
    last_active: Instant,
    ends_at: Instant,
}

impl OpenSession {
    fn end(&self, idle: Duration) -> Instant {
        (self.last_active + idle).min(self.ends_at)
    }
}

impl OpenSessions {
    fn prune_device(&mut self, device: &str, now: Instant, idle: Duration) {
        if let Some(list) = self.devices.get_mut(device) {
            let before = list.len();
            list.retain(|s| s.end(idle) > now);
            self.total -= before - list.len();
            if list.is_empty() {
                self.devices.remove(device);
            }
        }
    }

    fn prune_all(&mut self, now: Instant, idle: Duration) {
        let mut total = 0;
        let mut next_end: Option<Instant> = None;
        self.devices.retain(|_, list| {
            list.retain(|s| s.end(idle) > now);
            total += list.len();
            for s in list.iter() {
                next_end = Some(next_end.map_or(s.end(idle), |e| e.min(s.end(idle))));
            }
            !list.is_empty()
        });
        self.total = total;
        self.pruned_at = Some(now);
        self.next_end = next_end;
    }

    /// The open session of `device` whose record is `token_hash`.
    fn find_mut(&mut self, device: &str, token_hash: &str) -> Option<&mut OpenSession> {
        self.devices.get_mut(device)?.iter_mut().find(|s| s.token_hash == token_hash)
    }

    fn remove(&mut self, device: &str, token_hash: &str) {
        if let Some(list) = self.devices.get_mut(device)
            && let Some(at) = list.iter().position(|s| s.token_hash == token_hash)
        {
            list.swap_remove(at);
            self.total -= 1;
            if list.is_empty() {
                self.devices.remove(device);
            }
        }
    }
}

/// How often a server at its session cap re-counts every open session (the count is exact
/// between prunes for sessions closed or pushed out, and only late for ones that timed out).
const FULL_PRUNE_EVERY: Duration = Duration::from_secs(1);

impl SessionManager {
    /// `record_key` seals session records; with a shared store (Redis) every instance must use
    /// the same one.
    pub fn new(
        store: Arc<dyn EphemeralStore>,
        record_key: Key256,
        limits: SessionLimits,
        usage: Arc<dyn UsageSink>,
    ) -> Self {
        let clock = Arc::new(SystemClock);
        SessionManager { store, record_key, limits, usage, open: Mutex::new(OpenSessions::default()), clock }
    }

    /// Measures the limits by `clock` (the store's entries must expire by the same one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn open(&self) -> MutexGuard<'_, OpenSessions> {
        // Every change to the table is a few plain map operations; a poisoned lock is consistent.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sessions this instance has open, in total and on one device.
    pub fn open_sessions(&self, device: Option<&DeviceId>) -> usize {
        let now = self.clock.instant();
        let mut open = self.open();
        open.prune_all(now, self.limits.idle);
        match device {
            Some(device) => open.devices.get(device.as_str()).map_or(0, Vec::len),
            None => open.total,
        }
    }

    /// Makes room for one more session on `device` and counts it: pushes out the device's least
    /// recently used session when the device is at its cap (returned, to be ended), or refuses
    /// when the server is at its total cap.
    fn admit(&self, device: &DeviceId, token_hash: &str) -> CoreResult<Option<String>> {
        let (now, idle) = (self.clock.instant(), self.limits.idle);
        let mut open = self.open();
        open.prune_device(device.as_str(), now, idle);
        let on_device = open.devices.get(device.as_str()).map_or(0, Vec::len);
        let mut pushed_out = None;
        if on_device >= self.limits.max_per_device {
            let list = open.devices.get_mut(device.as_str()).expect("the device has sessions");
            let oldest = (0..list.len()).min_by_key(|&i| list[i].last_active).expect("at least one");
            pushed_out = Some(list.swap_remove(oldest).token_hash);
            open.total -= 1;
        } else if open.total >= self.limits.max_total {
            if open.pruned_at.is_none_or(|at| now.duration_since(at) >= FULL_PRUNE_EVERY) {
                open.prune_all(now, idle);
            }
            if open.total >= self.limits.max_total {
                let retry = open.next_end.map_or(idle, |end| end.saturating_duration_since(now)).as_secs().max(1);
                return Err(CoreError::ResourceExhausted(format!(
                    "too many sessions are open on the server; retry in about {retry} s"
                )));
            }
        }
        open.devices.entry(device.as_str().to_owned()).or_default().push(OpenSession {
            token_hash: token_hash.to_owned(),
            last_active: now,
            ends_at: now + self.limits.absolute,
        });
        open.total += 1;
        Ok(pushed_out)
    }

    fn touch_open(&self, device: &DeviceId, token_hash: &str) {
        if let Some(session) = self.open().find_mut(device.as_str(), token_hash) {
            session.last_active = self.clock.instant();
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Opens a new session for a device and returns its token (shown once, never stored).
    /// `device_model` (as registered; may be empty) goes with the session's usage events.
    pub async fn start(&self, device_id: DeviceId, device_model: &str) -> CoreResult<(SessionToken, Session)> {
        self.start_as(device_id, device_model, None).await
    }

    /// Like [`SessionManager::start`], for a verified device user whose SSO entry lives at
    /// `device_user` (the only thing the session keeps of who they are).
    pub async fn start_as(
        &self,
        device_id: DeviceId,
        device_model: &str,
        device_user: Option<VaultAddress>,
    ) -> CoreResult<(SessionToken, Session)> {
        let token = SessionToken::generate();
        let session = Session {
            id: random_bytes::<16>(),
            token_hash: hash_token(token.expose()),
            data_key: Key256::generate(),
            device_id,
            expires_at: self.clock.system() + self.limits.absolute,
            device_user,
            login: None,
        };
        if let Some(pushed_out) = self.admit(&session.device_id, &session.token_hash)? {
            // The record goes first, so the pushed-out token stops working at once.
            self.store.delete(TOKEN_SCOPE, &pushed_out).await?;
            self.end(&pushed_out).await?;
            tracing::debug!("a device at its session cap: its least recently used session was closed");
        }
        if let Err(err) = self.write_record(&session).await {
            self.open().remove(session.device_id.as_str(), &session.token_hash);
            return Err(err);
        }
        let index_ttl = self.limits.absolute + INDEX_GRACE;
        let entry = IndexEntry { scope: session.scope(), device_model: device_model.to_owned() };
        let entry = postcard::to_allocvec(&entry).map_err(|e| CoreError::internal("cannot index the session", e))?;
        self.store.put(INDEX_SCOPE, &session.token_hash, entry, index_ttl).await?;
        self.usage.record(device_event(UsageKind::SessionStarted, device_model)).await;
        Ok((token, session))
    }

    /// The live session a token belongs to, refreshing its idle limit.
    pub async fn authenticate(&self, token: &str) -> CoreResult<Session> {
        self.find(token, true).await
    }

    /// Whether the session is still open (for background work that outlives a call).
    pub async fn is_open(&self, session: &Session) -> CoreResult<bool> {
        self.is_record_open(&session.token_hash).await
    }

    /// Whether the session whose record is named `record` (see [`Session::record_name`]) is still
    /// open, also after a login renamed it; for things handed out without the session's keys,
    /// such as pull links.
    pub async fn is_record_open(&self, record: &str) -> CoreResult<bool> {
        Ok(self.current_record(record).await?.is_some())
    }

    /// The name the record once called `record` has now (logins rename it), while it exists.
    async fn current_record(&self, record: &str) -> CoreResult<Option<String>> {
        let mut name = record.to_owned();
        for _ in 0..MAX_RENAMES {
            if self.store.get(TOKEN_SCOPE, &name).await?.is_some() {
                return Ok(Some(name));
            }
            match self.store.get(RENAME_SCOPE, &name).await? {
                Some(next) => {
                    name = String::from_utf8(next).map_err(|e| CoreError::internal("bad session rename", e))?
                }
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Counts as activity of an open session (an open WatchJob stream keeps its session alive):
    /// resets the idle limit. False once the session has ended, which then finishes ending it.
    pub async fn keep_alive(&self, session: &Session) -> CoreResult<bool> {
        let ttl = session.remaining(self.clock.system()).min(self.limits.idle);
        let record = self.current_record(&session.token_hash).await?;
        let name = record.as_deref().unwrap_or(&session.token_hash);
        if !ttl.is_zero() && self.store.touch(TOKEN_SCOPE, name, ttl).await? {
            return Ok(true);
        }
        self.end(name).await?;
        Ok(false)
    }

    /// Logs the session in to `login` (or out, with `None`) under a new token: the old token
    /// stops working at once, everything the session made stays, and its limits do not move.
    pub async fn rotate(&self, session: &Session, login: Option<Account>) -> CoreResult<(SessionToken, Session)> {
        let token = SessionToken::generate();
        let renamed = Session { token_hash: hash_token(token.expose()), login, ..session.clone() };
        let remaining = session.remaining(self.clock.system());
        if remaining.is_zero() {
            return Err(expired());
        }
        // Taking the index entry decides a race of two logins with one token: one wins, the other
        // finds the session gone. The old record goes last, so a sweep running meanwhile never
        // finds an index entry without its record and ends the session by mistake.
        let Some(entry) = self.store.take(INDEX_SCOPE, &session.token_hash).await? else {
            return Err(expired());
        };
        let moved = async {
            self.write_record(&renamed).await?;
            self.store.put(INDEX_SCOPE, &renamed.token_hash, entry.clone(), remaining + INDEX_GRACE).await?;
            self.store
                .put(RENAME_SCOPE, &session.token_hash, renamed.token_hash.clone().into_bytes(), remaining)
                .await?;
            CoreResult::Ok(())
        };
        if let Err(err) = moved.await {
            // Back as it was, as far as the store lets us; the old token keeps working.
            let _ = self.store.delete(TOKEN_SCOPE, &renamed.token_hash).await;
            let _ = self.store.delete(INDEX_SCOPE, &renamed.token_hash).await;
            let _ = self.store.put(INDEX_SCOPE, &session.token_hash, entry, remaining + INDEX_GRACE).await;
            return Err(err);
        }
        self.store.delete(TOKEN_SCOPE, &session.token_hash).await?;
        if let Some(entry) = self.open().find_mut(session.device_id.as_str(), &session.token_hash) {
            entry.token_hash = renamed.token_hash.clone();
        }
        Ok((token, renamed))
    }

    /// Ends the session's storefront login; the token stays the same.
    pub async fn log_out(&self, session: &Session) -> CoreResult<Session> {
        let anonymous = Session { login: None, ..session.clone() };
        self.write_record(&anonymous).await?;
        Ok(anonymous)
    }

    /// Whether a token belongs to a live session, without counting as activity.
    pub async fn is_live(&self, token: &str) -> bool {
        self.find(token, false).await.is_ok()
    }

    async fn find(&self, token: &str, touch: bool) -> CoreResult<Session> {
        if token.len() != TOKEN_LEN || URL_SAFE_NO_PAD.decode(token).is_err() {
            return Err(CoreError::Unauthenticated(
                "the session token is malformed; start a new session with SessionService.StartSession".into(),
            ));
        }
        let token_hash = hash_token(token);
        let Some(sealed) = self.store.get(TOKEN_SCOPE, &token_hash).await? else {
            // The record expired (or never existed): finish ending the session if nobody has.
            self.end(&token_hash).await?;
            return Err(expired());
        };
        let session = self.open_record(token_hash, &sealed)?;
        let remaining = session.remaining(self.clock.system());
        if remaining.is_zero() {
            self.close(&session).await?;
            return Err(expired());
        }
        let ttl = remaining.min(self.limits.idle);
        if touch {
            if !self.store.touch(TOKEN_SCOPE, &session.token_hash, ttl).await? {
                self.end(&session.token_hash).await?;
                return Err(expired());
            }
            self.touch_open(&session.device_id, &session.token_hash);
        }
        Ok(session)
    }

    /// Decodes a sealed session record.
    fn open_record(&self, token_hash: String, sealed: &[u8]) -> CoreResult<Session> {
        // The record's plaintext holds the session's data key: wiped as soon as it is decoded.
        let mut stored: StoredSession = self
            .record_key
            .open(record_aad(&token_hash).as_bytes(), sealed)
            .ok()
            .map(zeroize::Zeroizing::new)
            .and_then(|plain| postcard::from_bytes(&plain).ok())
            .ok_or_else(|| CoreError::internal("session record is unreadable", "session record failed to open"))?;
        let data_key = Key256::from_bytes(stored.data_key);
        zeroize::Zeroize::zeroize(&mut stored.data_key);
        Ok(Session {
            id: stored.id,
            token_hash,
            data_key,
            device_id: stored.device_id.clone(),
            expires_at: UNIX_EPOCH + Duration::from_millis(stored.expires_at_ms),
            device_user: stored.device_user.map(VaultAddress::from_bytes),
            login: stored.login.take(),
        })
    }

    /// The open session whose record is named `record` (also after a login renamed it), without
    /// counting as activity: how an instance taking over a running job finds its session.
    pub async fn by_record(&self, record: &str) -> CoreResult<Option<Session>> {
        let Some(name) = self.current_record(record).await? else { return Ok(None) };
        let Some(sealed) = self.store.get(TOKEN_SCOPE, &name).await? else { return Ok(None) };
        let session = self.open_record(name, &sealed)?;
        Ok((!session.remaining(self.clock.system()).is_zero()).then_some(session))
    }

    /// Ends the session: the token stops working and everything the session stored is deleted.
    pub async fn close(&self, session: &Session) -> CoreResult<()> {
        // The record goes first: it holds the data key, so the data is unreadable from here on
        // even if deleting the scope fails halfway.
        self.store.delete(TOKEN_SCOPE, &session.token_hash).await?;
        self.open().remove(session.device_id.as_str(), &session.token_hash);
        self.end(&session.token_hash).await?;
        // Also when the sweep got there first: the scope must be gone when this returns.
        self.store.delete_scope(&session.scope()).await?;
        Ok(())
    }

    /// Ends every session whose record has expired: deletes its data and counts it as closed.
    /// Returns how many it ended. Run periodically; safe to run on several instances at once.
    pub async fn sweep(&self) -> CoreResult<usize> {
        let mut ended = 0;
        for token_hash in self.store.names(INDEX_SCOPE).await? {
            if self.store.get(TOKEN_SCOPE, &token_hash).await?.is_none() && self.end(&token_hash).await? {
                ended += 1;
            }
        }
        self.open().prune_all(self.clock.instant(), self.limits.idle);
        Ok(ended)
    }

    /// Takes the session's index entry; whoever gets it deletes the data and records the end.
    async fn end(&self, token_hash: &str) -> CoreResult<bool> {
        let Some(entry) = self.store.take(INDEX_SCOPE, token_hash).await? else { return Ok(false) };
        let entry: Option<IndexEntry> = postcard::from_bytes(&entry).ok();
        if let Some(entry) = &entry {
            self.store.delete_scope(&entry.scope).await?;
        }
        let model = entry.as_ref().map_or("", |e| e.device_model.as_str());
        self.usage.record(device_event(UsageKind::SessionClosed, model)).await;
        Ok(true)
    }

    /// The encrypted, session-scoped view of the ephemeral store.
    pub fn data(&self, session: &Session) -> SessionData {
        SessionData { store: self.store.clone(), session: session.clone(), clock: self.clock.clone() }
    }

    /// The session as a storefront sees it: who shops, and the session's data as its stash.
    pub fn visit(&self, session: &Session) -> Visit {
        Visit { shopper: session.shopper(), stash: Some(Arc::new(self.data(session))) }
    }

    async fn write_record(&self, session: &Session) -> CoreResult<()> {
        let mut stored = StoredSession {
            id: session.id,
            data_key: *session.data_key.as_bytes(),
            device_id: session.device_id.clone(),
            expires_at_ms: session.expires_at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
            device_user: session.device_user.as_ref().map(|a| *a.as_bytes()),
            login: session.login.clone(),
        };
        let encoded = postcard::to_allocvec(&stored);
        zeroize::Zeroize::zeroize(&mut stored.data_key);
        let plain = zeroize::Zeroizing::new(encoded.map_err(|e| CoreError::internal("cannot encode session", e))?);
        let sealed = self.record_key.seal(record_aad(&session.token_hash).as_bytes(), &plain);
        let ttl = self.limits.idle.min(session.remaining(self.clock.system()));
        Ok(self.store.put(TOKEN_SCOPE, &session.token_hash, sealed, ttl).await?)
    }
}

/// One session's data in the ephemeral store, sealed under the session's data key and bound to
/// its scope and name, and never outliving the session's absolute limit.
pub struct SessionData {
    store: Arc<dyn EphemeralStore>,
    session: Session,
    clock: Arc<dyn Clock>,
}

impl SessionData {
    pub async fn put(&self, name: &str, value: &[u8]) -> CoreResult<()> {
        let scope = self.session.scope();
        let sealed = self.session.data_key.seal(data_aad(&scope, name).as_bytes(), value);
        let ttl = self.session.remaining(self.clock.system());
        Ok(self.store.put(&scope, name, sealed, ttl).await?)
    }

    /// The plaintext, wiped from memory when the caller drops it.
    pub async fn get(&self, name: &str) -> CoreResult<Option<zeroize::Zeroizing<Vec<u8>>>> {
        let scope = self.session.scope();
        let Some(sealed) = self.store.get(&scope, name).await? else {
            return Ok(None);
        };
        self.session
            .data_key
            .open(data_aad(&scope, name).as_bytes(), &sealed)
            .map(|plain| Some(zeroize::Zeroizing::new(plain)))
            .map_err(|e| CoreError::internal("stored session data is unreadable", e))
    }

    pub async fn delete(&self, name: &str) -> CoreResult<bool> {
        Ok(self.store.delete(&self.session.scope(), name).await?)
    }

    /// Seals a message about `subject` for the session's eyes only (an event other instances
    /// relay without being able to read it).
    pub fn seal_message(&self, subject: &str, plain: &[u8]) -> Vec<u8> {
        self.session.data_key.seal(message_aad(&self.session.scope(), subject).as_bytes(), plain)
    }

    /// Opens what [`SessionData::seal_message`] sealed about `subject` for this session.
    pub fn open_message(&self, subject: &str, sealed: &[u8]) -> CoreResult<zeroize::Zeroizing<Vec<u8>>> {
        self.session
            .data_key
            .open(message_aad(&self.session.scope(), subject).as_bytes(), sealed)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| CoreError::internal("a session message is unreadable", e))
    }
}

#[async_trait::async_trait]
impl SessionStash for SessionData {
    async fn put(&self, name: &str, value: &[u8]) -> CoreResult<()> {
        SessionData::put(self, name, value).await
    }

    async fn get(&self, name: &str) -> CoreResult<Option<zeroize::Zeroizing<Vec<u8>>>> {
        SessionData::get(self, name).await
    }

    async fn delete(&self, name: &str) -> CoreResult<bool> {
        SessionData::delete(self, name).await
    }
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn record_aad(token_hash: &str) -> String {
    format!("podconnect/session-record/v1/{token_hash}")
}

fn data_aad(scope: &str, name: &str) -> String {
    format!("podconnect/session-data/v1/{scope}/{name}")
}

fn message_aad(scope: &str, subject: &str) -> String {
    format!("podconnect/session-message/v1/{scope}/{subject}")
}

fn expired() -> CoreError {
    CoreError::Unauthenticated(
        "the session token is unknown, closed or expired; start a new session with SessionService.StartSession".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[derive(Default)]
    struct Count(std::sync::Mutex<Vec<UsageKind>>);

    #[async_trait::async_trait]
    impl UsageSink for Count {
        async fn record(&self, event: UsageEvent) {
            self.0.lock().unwrap().push(event.kind);
        }
    }

    impl Count {
        fn closed(&self) -> usize {
            self.0.lock().unwrap().iter().filter(|k| **k == UsageKind::SessionClosed).count()
        }
    }

    fn manager(idle: Duration, absolute: Duration) -> (Arc<MemoryStore>, SessionManager) {
        let (store, manager, _, _) = counted(idle, absolute);
        (store, manager)
    }

    /// A manager and its store on a clock the test moves, and what it counted.
    fn counted(
        idle: Duration,
        absolute: Duration,
    ) -> (Arc<MemoryStore>, SessionManager, Arc<Count>, Arc<crate::domain::clock::ShiftedClock>) {
        let clock = Arc::new(crate::domain::clock::ShiftedClock::new());
        let store = MemoryStore::with_clock(clock.clone());
        let limits = SessionLimits { idle, absolute, max_per_device: 32, max_total: 1000 };
        let count = Arc::new(Count::default());
        let manager =
            SessionManager::new(store.clone(), Key256::generate(), limits, count.clone()).with_clock(clock.clone());
        (store, manager, count, clock)
    }

    #[tokio::test]
    async fn every_session_end_is_counted_once_and_deletes_its_data() {
        let (store, manager, count, clock) = counted(Duration::from_secs(60), Duration::from_secs(600));
        let (closed, a) = manager.start(device(), "").await.unwrap();
        let (expired_used, b) = manager.start(device(), "").await.unwrap();
        let (_expired_idle, c) = manager.start(device(), "").await.unwrap();
        for session in [&a, &b, &c] {
            manager.data(session).put("draft/1", b"x").await.unwrap();
        }
        manager.close(&manager.authenticate(closed.expose()).await.unwrap()).await.unwrap();
        assert_eq!(count.closed(), 1);
        clock.advance(Duration::from_secs(61));

        // A call with an idle-expired token ends that session at once.
        assert!(manager.authenticate(expired_used.expose()).await.is_err());
        assert_eq!(count.closed(), 2);
        assert!(store.names(&b.scope()).await.unwrap().is_empty());
        assert!(manager.authenticate(expired_used.expose()).await.is_err());
        assert_eq!(count.closed(), 2, "counted once");

        // The sweep ends the one nobody touched again, and only that one.
        assert_eq!(manager.sweep().await.unwrap(), 1);
        assert_eq!(manager.sweep().await.unwrap(), 0);
        assert_eq!(count.closed(), 3);
        assert!(store.names(&c.scope()).await.unwrap().is_empty());
        assert!(store.scopes().await.unwrap().is_empty(), "nothing of any session is left");
    }

    fn device() -> DeviceId {
        DeviceId::parse("mfd-1").unwrap()
    }

    #[tokio::test]
    async fn token_is_stored_only_as_hash() {
        let (store, manager) = manager(Duration::from_secs(60), Duration::from_secs(600));
        let (token, _) = manager.start(device(), "").await.unwrap();
        let names = store.names(TOKEN_SCOPE).await.unwrap();
        assert_eq!(names, vec![hash_token(token.expose())]);
        for scope in store.scopes().await.unwrap() {
            assert!(!scope.contains(token.expose()));
            for name in store.names(&scope).await.unwrap() {
                let value = store.get(&scope, &name).await.unwrap().unwrap();
                let needle = token.expose().as_bytes();
                assert!(!value.windows(needle.len()).any(|w| w == needle));
            }
        }
    }

    #[tokio::test]
    async fn tokens_are_unique_and_full_strength() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let token = SessionToken::generate();
            assert_eq!(URL_SAFE_NO_PAD.decode(token.expose()).unwrap().len(), 32);
            assert!(seen.insert(token.0));
        }
    }

    #[tokio::test]
    async fn absolute_limit_ends_session_even_when_active() {
        let (_, manager, _, clock) = counted(Duration::from_secs(60), Duration::from_secs(150));
        let (token, _) = manager.start(device(), "").await.unwrap();
        for _ in 0..2 {
            clock.advance(Duration::from_secs(50));
            manager.authenticate(token.expose()).await.expect("activity keeps it past the idle limit");
        }
        clock.advance(Duration::from_secs(50));
        assert!(matches!(manager.authenticate(token.expose()).await, Err(CoreError::Unauthenticated(_))));
    }

    #[tokio::test]
    async fn session_data_is_isolated_and_shredded_on_close() {
        let (store, manager) = manager(Duration::from_secs(60), Duration::from_secs(600));
        let (_, a) = manager.start(device(), "").await.unwrap();
        let (_, b) = manager.start(device(), "").await.unwrap();
        manager.data(&a).put("draft/1", b"secret of a").await.unwrap();
        assert_eq!(manager.data(&b).get("draft/1").await.unwrap(), None);

        // Even a copy of A's ciphertext placed in B's scope does not open with B's key.
        let sealed = store.get(&a.scope(), "draft/1").await.unwrap().unwrap();
        store.put(&b.scope(), "draft/1", sealed, Duration::from_secs(60)).await.unwrap();
        assert!(manager.data(&b).get("draft/1").await.is_err());

        manager.close(&a).await.unwrap();
        assert!(store.names(&a.scope()).await.unwrap().is_empty());
        assert!(manager.authenticate("x".repeat(TOKEN_LEN).as_str()).await.is_err());
    }

    #[tokio::test]
    async fn a_device_at_its_cap_loses_its_least_recently_used_session_and_a_full_server_refuses() {
        let store = MemoryStore::new();
        let limits = SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
            max_per_device: 2,
            max_total: 3,
        };
        let manager = SessionManager::new(store.clone(), Key256::generate(), limits, Arc::new(Count::default()));
        let kiosk = DeviceId::parse("kiosk").unwrap();
        let (first, a) = manager.start(kiosk.clone(), "").await.unwrap();
        let (second, _) = manager.start(kiosk.clone(), "").await.unwrap();
        manager.data(&a).put("draft/1", b"typed by the first person").await.unwrap();
        manager.authenticate(first.expose()).await.unwrap();

        let (third, _) = manager.start(kiosk.clone(), "").await.unwrap();
        assert!(manager.authenticate(second.expose()).await.is_err(), "the least recently used one made room");
        manager.authenticate(first.expose()).await.unwrap();
        manager.authenticate(third.expose()).await.unwrap();
        assert_eq!(manager.open_sessions(Some(&kiosk)), 2);

        let (_, lobby) = manager.start(DeviceId::parse("lobby").unwrap(), "").await.unwrap();
        let refused = manager.start(DeviceId::parse("other").unwrap(), "").await.unwrap_err();
        assert!(matches!(&refused, CoreError::ResourceExhausted(m) if m.contains("retry in about")), "{refused:?}");
        // Closing one makes room at once.
        manager.close(&lobby).await.unwrap();
        manager.start(DeviceId::parse("other").unwrap(), "").await.unwrap();
        assert_eq!(manager.open_sessions(None), 3);
        assert!(store.names(&a.scope()).await.unwrap().len() == 1, "the first person's draft is untouched");
    }

    #[test]
    fn debug_output_hides_token() {
        let token = SessionToken::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
    }
}
