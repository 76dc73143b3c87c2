//! The double's shared state (users, tokens, order items) and `Controls`, the handle tests use to
//! change its behaviour at run time and to read what it saw.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::fixtures::{self, Product};

/// How every API call fails while a fail mode is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Answer every call under `/uStoreRestAPI/` with this status (e.g. 503).
    Status(u16),
    /// Close connections without answering: new connections right after accept, requests on open
    /// ones by aborting the connection (h1) or resetting the stream (h2).
    Down,
}

/// Behaviour switches; [`Controls`] changes them.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) latency: Duration,
    pub(crate) token_ttl: Duration,
    pub(crate) throttle_next: u32,
    pub(crate) fail: Option<FailMode>,
    pub(crate) malformed_catalog: bool,
    pub(crate) oversized_catalog: Option<usize>,
    pub(crate) slow_catalog: Option<usize>,
    pub(crate) preview_delay: Duration,
    pub(crate) proof_delay: Duration,
    pub(crate) fail_next_proofs: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            latency: Duration::ZERO,
            token_ttl: Duration::from_secs(20 * 60),
            throttle_next: 0,
            fail: None,
            malformed_catalog: false,
            oversized_catalog: None,
            slow_catalog: None,
            preview_delay: Duration::from_millis(150),
            proof_delay: Duration::from_millis(500),
            fail_next_proofs: 0,
        }
    }
}

pub(crate) struct User {
    pub(crate) id: String,
    /// `None` for anonymous users.
    pub(crate) email: Option<&'static str>,
    pub(crate) first_name: &'static str,
    pub(crate) last_name: &'static str,
    pub(crate) trade: bool,
}

pub(crate) struct Token {
    pub(crate) user_id: String,
    pub(crate) last_used: Instant,
}

pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) started: Instant,
    /// Values in dial order, as `(dial id, value)`.
    pub(crate) values: Vec<(&'static str, String)>,
    pub(crate) fail: bool,
    /// A failed proof reported once is replaced by the next proof call.
    pub(crate) reported: bool,
}

pub(crate) struct OrderItem {
    pub(crate) id: String,
    pub(crate) friendly_id: u64,
    pub(crate) product: &'static Product,
    pub(crate) owner: String,
    pub(crate) quantity: u32,
    /// Saved values by dial id.
    pub(crate) values: HashMap<&'static str, String>,
    /// The newest last; at most [`MAX_PREVIEWS`].
    pub(crate) previews: VecDeque<Job>,
    pub(crate) proof: Option<Job>,
}

/// Bounds on what clients can make the double hold.
pub(crate) const MAX_PREVIEWS: usize = 16;
pub(crate) const MAX_ITEMS: usize = 10_000;
pub(crate) const MAX_USERS: usize = 10_000;

pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) counts: BTreeMap<String, u64>,
    pub(crate) users: HashMap<String, User>,
    pub(crate) tokens: HashMap<String, Token>,
    pub(crate) items: HashMap<String, OrderItem>,
    pub(crate) next_friendly: u64,
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    pub(crate) fn new(settings: Settings) -> Shared {
        let users = fixtures::ACCOUNTS
            .iter()
            .map(|a| {
                let user = User {
                    id: a.id.to_string(),
                    email: Some(a.email),
                    first_name: a.first_name,
                    last_name: a.last_name,
                    trade: a.trade,
                };
                (user.id.clone(), user)
            })
            .collect();
        Shared {
            inner: Mutex::new(Inner {
                settings,
                counts: BTreeMap::new(),
                users,
                tokens: HashMap::new(),
                items: HashMap::new(),
                next_friendly: 5001,
            }),
        }
    }

    /// Never held across an await.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data: take it anyway.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// A new opaque token for `user_id`.
    pub(crate) fn issue_token(&mut self, user_id: &str) -> String {
        let token = format!("{}{}", new_guid().replace('-', ""), new_guid().replace('-', ""));
        self.tokens.insert(token.clone(), Token { user_id: user_id.to_string(), last_used: Instant::now() });
        token
    }

    /// The user behind a live token, and slides its expiry.
    pub(crate) fn authenticate(&mut self, token: &str) -> Option<String> {
        let ttl = self.settings.token_ttl;
        let now = Instant::now();
        let entry = self.tokens.get_mut(token)?;
        if now.duration_since(entry.last_used) >= ttl {
            self.tokens.remove(token);
            return None;
        }
        entry.last_used = now;
        Some(entry.user_id.clone())
    }

    /// Drops expired tokens so a long run stays bounded.
    pub(crate) fn sweep_tokens(&mut self) {
        let ttl = self.settings.token_ttl;
        let now = Instant::now();
        self.tokens.retain(|_, t| now.duration_since(t.last_used) < ttl);
    }
}

/// A random lowercase GUID (version 4 shape).
pub(crate) fn new_guid() -> String {
    let mut b = [0u8; 16];
    // No entropy at all is not something a test can recover from.
    getrandom::fill(&mut b).expect("operating system randomness");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Who holds an order item (see [`Controls::order_items`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderItemInfo {
    pub item_id: String,
    pub product_id: String,
    pub user_id: String,
    /// `None` for an anonymous user.
    pub email: Option<String>,
    pub quantity: u32,
    /// Saved values by dial key.
    pub values: BTreeMap<String, String>,
}

/// A cloneable handle on a running double: switches (all effective from the next request) and
/// counters.
#[derive(Clone)]
pub struct Controls {
    pub(crate) shared: Arc<Shared>,
}

impl Controls {
    fn set(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.shared.lock().settings);
    }

    /// A fixed delay before every request is answered.
    pub fn set_latency(&self, latency: Duration) {
        self.set(|s| s.latency = latency);
    }

    /// The next `n` preview and proof calls (labels `preview-create`, `preview-poll`, `proof`)
    /// answer 429 "Too much requests.".
    pub fn throttle_next(&self, n: u32) {
        self.set(|s| s.throttle_next = n);
    }

    /// Every token issued so far stops working.
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// Tokens expire this long after their last use (default 20 minutes).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.set(|s| s.token_ttl = ttl);
    }

    /// `Some(mode)` makes every API call fail; `None` heals.
    pub fn set_fail(&self, mode: Option<FailMode>) {
        self.set(|s| s.fail = mode);
    }

    /// Catalog answers (categories, products, search, product, thumbnails) are cut-off JSON.
    pub fn set_malformed_catalog(&self, on: bool) {
        self.set(|s| s.malformed_catalog = on);
    }

    /// Catalog answers are a streamed JSON document of about `bytes` (e.g. 64 MiB), no length given.
    pub fn set_oversized_catalog(&self, bytes: Option<usize>) {
        self.set(|s| s.oversized_catalog = bytes);
    }

    /// Catalog answers send their headers at once, then the body at `bytes_per_second`.
    pub fn set_slow_catalog(&self, bytes_per_second: Option<usize>) {
        self.set(|s| s.slow_catalog = bytes_per_second.map(|b| b.max(1)));
    }

    /// How long a preview takes to render (default 150 ms).
    pub fn set_preview_delay(&self, delay: Duration) {
        self.set(|s| s.preview_delay = delay);
    }

    /// How long a proof takes to render (default 500 ms).
    pub fn set_proof_delay(&self, delay: Duration) {
        self.set(|s| s.proof_delay = delay);
    }

    /// The next `n` proofs started end in Status 3.
    pub fn fail_next_proofs(&self, n: u32) {
        self.set(|s| s.fail_next_proofs = n);
    }

    /// Requests seen with this endpoint label (see the module docs for the labels).
    pub fn count(&self, label: &str) -> u64 {
        self.shared.lock().counts.get(label).copied().unwrap_or(0)
    }

    /// Every label seen and its count.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.shared.lock().counts.clone()
    }

    pub fn reset_counts(&self) {
        self.shared.lock().counts.clear();
    }

    /// Every order item and who holds it.
    pub fn order_items(&self) -> Vec<OrderItemInfo> {
        let inner = self.shared.lock();
        let mut items: Vec<OrderItemInfo> = inner
            .items
            .values()
            .map(|item| OrderItemInfo {
                item_id: item.id.clone(),
                product_id: item.product.id.to_string(),
                user_id: item.owner.clone(),
                email: inner.users.get(&item.owner).and_then(|u| u.email).map(str::to_string),
                quantity: item.quantity,
                values: item
                    .values
                    .iter()
                    .filter_map(|(id, v)| item.product.dial_by_id(id).map(|d| (d.key.to_string(), v.clone())))
                    .collect(),
            })
            .collect();
        items.sort_by(|a, b| a.item_id.cmp(&b.item_id));
        items
    }

    /// A live token for a registered user (by email), as if they had logged in; `None` if unknown.
    /// Lets a test call the double as one user on another's order item.
    pub fn token_for(&self, email: &str) -> Option<String> {
        let account = fixtures::account_by_email(email)?;
        Some(self.shared.lock().issue_token(account.id))
    }

    /// The live tokens a registered user holds (what a client logged in as them was handed).
    pub fn live_tokens_of(&self, email: &str) -> Vec<String> {
        let Some(account) = fixtures::account_by_email(email) else { return Vec::new() };
        let mut inner = self.shared.lock();
        inner.sweep_tokens();
        inner.tokens.iter().filter(|(_, t)| t.user_id == account.id).map(|(token, _)| token.clone()).collect()
    }

    /// Live tokens right now (each login and renew makes one; renew retires the old).
    pub fn live_tokens(&self) -> usize {
        let mut inner = self.shared.lock();
        inner.sweep_tokens();
        inner.tokens.len()
    }
}

/// Anonymous and registered users known so far.
pub(crate) fn user_count(inner: &Inner) -> usize {
    inner.users.len()
}
