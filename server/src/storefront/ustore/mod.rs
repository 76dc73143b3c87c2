//! The XMPie uStore storefront backend: the catalog, the property forms, previews and print-ready
//! proofs come from a uStore storefront over its REST API (see `docs/ustore.md` for the readings
//! of that API podconnect chose). The core is the only thing that talks to uStore.
//!
//! Who calls uStore: anonymous catalog reads and form look-ups go out as one shared anonymous
//! uStore user of this core; a session's drafts are order items of its own uStore user (an
//! anonymous one made with `loginByUrl` on first need, or the account it logged in to), whose
//! token is kept sealed in the session's stash and so ends with the session.

mod cache;
mod catalog;
mod client;
mod drafts;
pub(crate) mod form;
mod models;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use crate::config::UstoreSettings;
use crate::domain::catalog::{
    Account, Category, Image, Product, ProductFilter, ProductId, ProductSlice, Shopper, Storefront, Visit,
};
use crate::domain::ephemeral::SessionStash;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::records::now_ms;
use crate::storefront::ustore::cache::TtlCache;
use crate::storefront::ustore::client::{Call, Upstream, UpstreamError};
use crate::storefront::ustore::models::{LoginByUrlAnswer, TokenAnswer, UserModel};

/// Stash entries (sealed in the session's data).
const STASH_ANONYMOUS: &str = "ustore/anonymous";
const STASH_ACCOUNT: &str = "ustore/account";
const STASH_CREDENTIALS: &str = "ustore/credentials";

/// The XMPie uStore backend; implements both `Storefront` and `Customizer`.
pub struct UstoreStorefront {
    upstream: Upstream,
    settings: UstoreSettings,
    /// The core's own anonymous uStore user, for what every anonymous shopper sees alike.
    shared: Mutex<Option<HeldToken>>,
    catalog_cache: TtlCache<Arc<serde_json::Value>>,
    forms: TtlCache<Arc<form::MappedForm>>,
    currency: std::sync::Mutex<Option<String>>,
    /// Products whose form widgets were degraded to text and already logged.
    degraded_logged: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Whose uStore token a call goes out with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    /// The core's shared anonymous user.
    Shared,
    /// The session's own anonymous user.
    SessionAnonymous,
    /// The account the session logged in to.
    Account,
}

/// A uStore token and when it was issued or last renewed. Wiped from memory when dropped.
#[derive(Clone, Serialize, Deserialize)]
struct HeldToken {
    token: String,
    user_id: Option<String>,
    issued_ms: u64,
}

impl Drop for HeldToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

/// The account's credentials, kept for the one re-login after uStore forgot the token.
#[derive(Serialize, Deserialize)]
struct StoredCredentials {
    email: String,
    password: String,
}

impl Drop for StoredCredentials {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

impl UstoreStorefront {
    pub fn new(settings: UstoreSettings) -> anyhow::Result<Self> {
        Ok(UstoreStorefront {
            upstream: Upstream::new(&settings)?,
            catalog_cache: TtlCache::new(settings.cache_ttl, 1024),
            forms: TtlCache::new(settings.cache_ttl.max(Duration::from_secs(60)), 256),
            settings,
            shared: Mutex::new(None),
            currency: std::sync::Mutex::new(None),
            degraded_logged: Default::default(),
        })
    }

    /// The storefront's name for the ready line and logs.
    pub fn describe(&self) -> String {
        format!("XMPie uStore at {}", self.settings.base_url.origin().ascii_serialization())
    }

    /// Calls uStore as `who`, logging in again exactly once when uStore no longer accepts the
    /// token; a second refusal is an error.
    pub(crate) async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        visit: &Visit,
        who: Who,
        call: impl Fn(&str) -> Call,
    ) -> CoreResult<T> {
        let body = self.call_bytes(visit, who, call, client::MAX_JSON_BYTES).await?;
        client::decode(&body).map_err(|e| upstream_error(e, "read the storefront's answer"))
    }

    pub(crate) async fn call_bytes(
        &self,
        visit: &Visit,
        who: Who,
        call: impl Fn(&str) -> Call,
        limit: usize,
    ) -> CoreResult<bytes::Bytes> {
        let token = self.token(visit, who).await?;
        match self.upstream.bytes(call(&token.token), limit).await {
            Err(err) if err.is_access_denied() => {
                tracing::info!(who = ?who, "uStore no longer accepts the token; logging in again once");
                let token = self.relogin(visit, who, &token).await?;
                match self.upstream.bytes(call(&token.token), limit).await {
                    Err(err) if err.is_access_denied() => Err(refused_twice(who)),
                    other => other.map_err(|e| upstream_error(e, "reach the storefront")),
                }
            }
            other => other.map_err(|e| upstream_error(e, "reach the storefront")),
        }
    }

    /// The token to call as `who`: the held one, renewed first when it is getting old, or a
    /// fresh login when there is none.
    async fn token(&self, visit: &Visit, who: Who) -> CoreResult<HeldToken> {
        let held = match who {
            Who::Shared => self.shared.lock().await.clone(),
            Who::SessionAnonymous | Who::Account => load(stash(visit)?, stash_name(who)).await?,
        };
        let Some(held) = held else {
            return match who {
                Who::Account => Err(logged_out()),
                _ => self.login_anonymous(visit, who, None).await,
            };
        };
        let age = Duration::from_millis(now_ms().saturating_sub(held.issued_ms));
        if age < self.settings.renew_after {
            return Ok(held);
        }
        let renewed = self
            .upstream
            .json::<TokenAnswer>(Call::send(Method::POST, "v1/store/login/renew", Some(&held.token), json!({})))
            .await;
        match renewed {
            Ok(answer) => {
                let token =
                    HeldToken { token: answer.token.clone(), user_id: held.user_id.clone(), issued_ms: now_ms() };
                self.keep(visit, who, &token).await?;
                Ok(token)
            }
            // Too late to renew: log in again instead.
            Err(err) if err.is_access_denied() => self.relogin(visit, who, &held).await,
            Err(err) => Err(upstream_error(err, "renew the storefront login")),
        }
    }

    /// Logs in again as `who` after uStore refused `stale`: the same anonymous user (its order
    /// items stay reachable), or the account with its kept credentials.
    async fn relogin(&self, visit: &Visit, who: Who, stale: &HeldToken) -> CoreResult<HeldToken> {
        match who {
            Who::Shared | Who::SessionAnonymous => self.login_anonymous(visit, who, stale.user_id.clone()).await,
            Who::Account => {
                let stash = stash(visit)?;
                let bytes = stash.get(STASH_CREDENTIALS).await?.ok_or_else(logged_out)?;
                let credentials: StoredCredentials = serde_json::from_slice(&bytes)
                    .map_err(|e| CoreError::internal("stored storefront credentials are unreadable", e))?;
                let token =
                    self.login_account(&credentials.email, &credentials.password).await.map_err(|err| match err {
                        CoreError::PermissionDenied(_) => refused_twice(who),
                        other => other,
                    })?;
                let held = HeldToken { token, user_id: stale.user_id.clone(), issued_ms: now_ms() };
                self.keep(visit, who, &held).await?;
                Ok(held)
            }
        }
    }

    async fn login_anonymous(&self, visit: &Visit, who: Who, user_id: Option<String>) -> CoreResult<HeldToken> {
        let body = json!({ "FullURL": self.settings.storefront_url, "UserID": user_id });
        let answer: LoginByUrlAnswer = self
            .upstream
            .json(Call::send(Method::POST, "v1/store/loginByUrl", None, body))
            .await
            .map_err(|e| upstream_error(e, "start an anonymous storefront visit"))?;
        if answer.url.as_deref().is_some_and(|url| !url.is_empty()) {
            // A B2B store: it sends people to its own login page instead.
            tracing::warn!("uStore wants an interactive login for anonymous shoppers (a B2B store?)");
            return Err(CoreError::FailedPrecondition(
                "this storefront does not allow anonymous shopping: log in with your storefront account first".into(),
            ));
        }
        let held =
            HeldToken { token: answer.token.token.clone(), user_id: answer.user_id.clone(), issued_ms: now_ms() };
        self.keep(visit, who, &held).await?;
        Ok(held)
    }

    /// Checks an account with uStore; its token on success.
    async fn login_account(&self, email: &str, password: &str) -> CoreResult<String> {
        let body = json!({ "Email": email, "Password": password, "StoreID": self.settings.store_id });
        match self.upstream.json::<TokenAnswer>(Call::send(Method::POST, "v1/store/login", None, body)).await {
            Ok(answer) => Ok(answer.token.clone()),
            Err(UpstreamError::Refused { status: 400 | 401 | 403, .. }) => {
                Err(CoreError::PermissionDenied(crate::storefront::accounts::REFUSED.into()))
            }
            Err(err) => Err(upstream_error(err, "check the storefront login")),
        }
    }

    async fn keep(&self, visit: &Visit, who: Who, token: &HeldToken) -> CoreResult<()> {
        match who {
            Who::Shared => {
                *self.shared.lock().await = Some(token.clone());
                Ok(())
            }
            _ => {
                let bytes = zeroize::Zeroizing::new(
                    serde_json::to_vec(token)
                        .map_err(|e| CoreError::internal("cannot keep the storefront login", e))?,
                );
                stash(visit)?.put(stash_name(who), &bytes).await
            }
        }
    }

    /// The store's currency code (ISO 4217), asked once.
    async fn currency(&self, visit: &Visit) -> CoreResult<String> {
        if let Some(code) = self.currency.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(code);
        }
        let anonymous = Visit::without_session(Shopper::Anonymous);
        let visit = if visit.shopper == Shopper::Anonymous { &anonymous } else { visit };
        let who = self.reader(visit);
        let store: models::StoreModel = self.call_json(visit, who, |t| Call::get("v1/store", Some(t))).await?;
        let currencies: Vec<models::CurrencyModel> =
            self.call_json(visit, who, |t| Call::get("v1/store/currencies", Some(t))).await?;
        let code = currencies
            .iter()
            .find(|c| Some(&c.id) == store.primary_currency_id.as_ref())
            .or(currencies.first())
            .map(|c| c.code.clone())
            .unwrap_or_else(|| "USD".into());
        *self.currency.lock().unwrap_or_else(|p| p.into_inner()) = Some(code.clone());
        Ok(code)
    }

    /// Whose token catalog reads go out with: a logged-in shopper's own (their private view),
    /// everyone else's the shared anonymous one.
    fn reader(&self, visit: &Visit) -> Who {
        match visit.shopper {
            Shopper::Account(_) => Who::Account,
            Shopper::Anonymous => Who::Shared,
        }
    }
}

#[async_trait]
impl Storefront for UstoreStorefront {
    async fn categories(&self, visit: &Visit) -> CoreResult<Vec<Category>> {
        catalog::categories(self, visit).await
    }

    async fn products(
        &self,
        visit: &Visit,
        filter: &ProductFilter,
        offset: u32,
        limit: u32,
    ) -> CoreResult<ProductSlice> {
        catalog::products(self, visit, filter, offset, limit).await
    }

    async fn product(&self, visit: &Visit, id: &ProductId) -> CoreResult<Product> {
        catalog::product(self, visit, id).await
    }

    async fn thumbnail(&self, visit: &Visit, id: &ProductId) -> CoreResult<Image> {
        catalog::thumbnail(self, visit, id).await
    }

    async fn login(&self, visit: &Visit, username: &str, password: &str) -> CoreResult<Account> {
        let token = self.login_account(username, password).await?;
        let user: UserModel = self
            .upstream
            .json(Call::get("v1/store/login/user", Some(&token)))
            .await
            .map_err(|e| upstream_error(e, "read the storefront account"))?;
        let display_name = [user.first_name.as_deref(), user.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|part| !part.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let held = HeldToken { token, user_id: Some(user.id.clone()), issued_ms: now_ms() };
        self.keep(visit, Who::Account, &held).await?;
        let credentials = zeroize::Zeroizing::new(
            serde_json::to_vec(&StoredCredentials { email: username.to_owned(), password: password.to_owned() })
                .map_err(|e| CoreError::internal("cannot keep the storefront login", e))?,
        );
        stash(visit)?.put(STASH_CREDENTIALS, &credentials).await?;
        Ok(Account {
            id: user.id,
            display_name: if display_name.is_empty() { username.to_owned() } else { display_name },
        })
    }

    async fn logout(&self, visit: &Visit) -> CoreResult<()> {
        let stash = stash(visit)?;
        stash.delete(STASH_ACCOUNT).await?;
        stash.delete(STASH_CREDENTIALS).await?;
        catalog::forget_private_views(stash).await
    }

    async fn check_reachable(&self) -> CoreResult<()> {
        if self.upstream.breaker_open() {
            return Err(CoreError::Unavailable("the storefront keeps failing; calls to it are held back".into()));
        }
        let visit = Visit::without_session(Shopper::Anonymous);
        self.call_json::<serde_json::Value>(&visit, Who::Shared, |t| Call::get("v1/store", Some(t))).await.map(|_| ())
    }
}

fn stash(visit: &Visit) -> CoreResult<&Arc<dyn SessionStash>> {
    visit.stash.as_ref().ok_or_else(|| CoreError::internal("uStore needs a session", "a visit without a stash"))
}

fn stash_name(who: Who) -> &'static str {
    match who {
        Who::Account => STASH_ACCOUNT,
        _ => STASH_ANONYMOUS,
    }
}

async fn load(stash: &Arc<dyn SessionStash>, name: &str) -> CoreResult<Option<HeldToken>> {
    match stash.get(name).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CoreError::internal("a stored storefront login is unreadable", e)),
    }
}

fn logged_out() -> CoreError {
    CoreError::FailedPrecondition(
        "the storefront login of this session has ended; log in again (SessionService.Login)".into(),
    )
}

fn refused_twice(who: Who) -> CoreError {
    match who {
        Who::Account => CoreError::FailedPrecondition(
            "the storefront no longer accepts this session's login, even after logging in again; log in again \
             (SessionService.Login)"
                .into(),
        ),
        _ => {
            tracing::error!("uStore refused a fresh anonymous login's token");
            CoreError::Unavailable(
                "the storefront refuses podconnect's visits right now; try again later, and if it persists ask the \
                 shop's IT team to check the uStore storefront URL and store settings"
                    .into(),
            )
        }
    }
}

/// The one place an upstream failure becomes a domain error. Details go to the log; the caller
/// hears what happened and what to do.
pub(crate) fn upstream_error(err: UpstreamError, doing: &str) -> CoreError {
    match err {
        UpstreamError::Unreachable(_) | UpstreamError::BreakerOpen => {
            tracing::warn!(error = %err, "uStore unavailable");
            CoreError::Unavailable(format!(
                "could not {doing}: the storefront (XMPie uStore) cannot be reached right now; try again in a \
                 minute, and if it keeps failing ask the shop's IT team to check the uStore server"
            ))
        }
        UpstreamError::Refused { status, .. } if status >= 500 => {
            tracing::warn!(error = %err, "uStore failed");
            CoreError::Unavailable(format!(
                "could not {doing}: the storefront (XMPie uStore) is failing right now (HTTP {status}); try again in \
                 a minute"
            ))
        }
        UpstreamError::Timeout(limit) => {
            tracing::warn!(error = %err, "uStore too slow");
            CoreError::DeadlineExceeded(format!(
                "could not {doing}: the storefront (XMPie uStore) did not answer within {}s; try again",
                limit.as_secs_f32()
            ))
        }
        ref refused if refused.is_throttled() => CoreError::ResourceExhausted(format!(
            "could not {doing}: the storefront is busy; try again in a few seconds"
        )),
        ref refused if refused.is_not_found() => {
            CoreError::NotFound(format!("could not {doing}: the storefront does not have it (or no longer)"))
        }
        UpstreamError::Malformed(_) | UpstreamError::TooLarge(_) | UpstreamError::Refused { .. } => {
            CoreError::internal(format!("could not {doing}: the storefront's answer cannot be used"), err)
        }
    }
}

/// How long an operation of several calls (a preview, a proof) may take in all.
pub(crate) struct Budget {
    until: Instant,
    limit: Duration,
}

impl Budget {
    /// `limit`, or what is left of the caller's deadline when that is sooner.
    pub(crate) fn new(limit: Duration) -> Self {
        let limit = crate::domain::deadline::capped(limit);
        Budget { until: Instant::now() + limit, limit }
    }

    /// Waits `pause`, or fails when the budget would run out meanwhile.
    pub(crate) async fn pause(&self, pause: Duration, doing: &str) -> CoreResult<()> {
        if Instant::now() + pause >= self.until {
            return Err(CoreError::DeadlineExceeded(format!(
                "could not {doing}: the storefront (XMPie uStore) did not finish within {:.1}s; try again",
                self.limit.as_secs_f32()
            )));
        }
        tokio::time::sleep(pause).await;
        Ok(())
    }
}
