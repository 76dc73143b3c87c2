//! The HTTP side of the uStore backend: one pooled reqwest client (rustls, HTTP/2 where the server
//! offers it), every call bounded in time and its answer in size before it is read, JSON decoded
//! into typed models, bounded retries with jitter on idempotent reads only, and a circuit breaker
//! so a failing uStore is not hammered and callers hear at once that it is down.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{ACCEPT, ACCEPT_LANGUAGE, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::config::UstoreSettings;
use crate::storefront::ustore::models::ErrorBody;

/// The largest JSON answer read (a 200-product page is well below).
pub(crate) const MAX_JSON_BYTES: usize = 4 * 1024 * 1024;
/// The largest file downloaded (a proof PDF, a preview or a thumbnail image).
pub(crate) const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// Attempts of an idempotent read (the first and the retries).
const READ_ATTEMPTS: u32 = 3;

/// Why a call to uStore did not give an answer to use.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("uStore cannot be reached: {0}")]
    Unreachable(String),
    #[error("uStore did not answer within {0:?}")]
    Timeout(Duration),
    #[error("uStore is failing; calls are held back for a while (circuit breaker open)")]
    BreakerOpen,
    #[error("uStore answered HTTP {status}: {type_name}: {message}")]
    Refused { status: u16, type_name: String, message: String },
    #[error("uStore's answer is malformed: {0}")]
    Malformed(String),
    #[error("uStore's answer is larger than {0} bytes")]
    TooLarge(usize),
}

impl UpstreamError {
    /// The token is unknown or stale: log in again (once).
    pub(crate) fn is_access_denied(&self) -> bool {
        matches!(self, UpstreamError::Refused { status: 401, .. })
            || matches!(self, UpstreamError::Refused { type_name, .. } if type_name == "AccessDenied")
    }

    /// Preview and proof calls answer "Too much requests." when asked too often.
    pub(crate) fn is_throttled(&self) -> bool {
        matches!(self, UpstreamError::Refused { status: 429, .. })
            || matches!(self, UpstreamError::Refused { message, .. } if message.starts_with("Too much requests"))
    }

    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, UpstreamError::Refused { status: 404, .. })
            || matches!(self, UpstreamError::Refused { type_name, .. }
                if type_name.starts_with("ResourceNotAvailable") || type_name.starts_with("ResourceNotPermitted"))
    }

    /// A failure of uStore itself (not of the request), which the breaker counts.
    fn is_outage(&self) -> bool {
        match self {
            UpstreamError::Unreachable(_) | UpstreamError::Timeout(_) => true,
            UpstreamError::Refused { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// One request to the REST API.
pub(crate) struct Call {
    pub method: Method,
    /// Relative to the base URL (`v1/store/...`), or an absolute path on the server (`/uStore/...`).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    pub token: Option<String>,
    /// Only reads that change nothing are retried.
    pub idempotent: bool,
}

impl Call {
    pub(crate) fn get(path: impl Into<String>, token: Option<&str>) -> Self {
        Call {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
            token: token.map(str::to_owned),
            idempotent: true,
        }
    }

    pub(crate) fn send(method: Method, path: impl Into<String>, token: Option<&str>, body: serde_json::Value) -> Self {
        let body = (!body.is_null()).then_some(body);
        Call { method, path: path.into(), query: Vec::new(), body, token: token.map(str::to_owned), idempotent: false }
    }

    pub(crate) fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    /// A GET of an absolute URL on the uStore server (a file uStore listed), query included.
    pub(crate) fn get_url(url: &Url, token: Option<&str>) -> Self {
        let mut call = Call::get(url.path(), token);
        call.query = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        call
    }
}

/// uStore over HTTPS.
pub(crate) struct Upstream {
    http: reqwest::Client,
    base: Url,
    culture: HeaderValue,
    timeout: Duration,
    breaker: Breaker,
}

impl Upstream {
    pub(crate) fn new(settings: &UstoreSettings) -> anyhow::Result<Self> {
        let culture = HeaderValue::from_str(&settings.culture)?;
        Ok(Upstream {
            http: https_client(settings.ca_file.as_deref(), settings.connect_timeout)?,
            base: settings.base_url.clone(),
            culture,
            timeout: settings.timeout,
            breaker: Breaker::new(settings.breaker_failures, settings.breaker_cooldown),
        })
    }

    /// The call's JSON answer as `T`.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, UpstreamError> {
        let body = self.bytes(call, MAX_JSON_BYTES).await?;
        decode(&body)
    }

    /// The call's answer body, at most `limit` bytes; retried with jitter when idempotent.
    pub(crate) async fn bytes(&self, call: Call, limit: usize) -> Result<Bytes, UpstreamError> {
        let attempts = if call.idempotent { READ_ATTEMPTS } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.once(&call, limit).await {
                // A timeout is not retried: a slow uStore stays slow, and the caller's time is gone.
                Err(err) if attempt < attempts && err.is_outage() && !matches!(err, UpstreamError::Timeout(_)) => {
                    // 100-200 ms, then 200-400 ms: enough for a restarting node, short for a caller.
                    let base = 100u64 << (attempt - 1);
                    let jitter = u64::from(crate::domain::crypto::random_bytes::<2>()[0]) * base / 255;
                    tracing::debug!(error = %err, attempt, "uStore read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
                other => return other,
            }
        }
    }

    /// Whether the breaker lets calls through now.
    pub(crate) fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// The absolute URL of a path uStore handed out (`Items[].Url`, thumbnails): only on the
    /// configured server, so a malicious answer cannot send the core elsewhere.
    pub(crate) fn resolve(&self, path: &str) -> Result<Url, UpstreamError> {
        let url = self.base.join(path).map_err(|e| UpstreamError::Malformed(format!("URL {path:?}: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(UpstreamError::Malformed(format!("URL {url} is not on the uStore server")));
        }
        Ok(url)
    }

    async fn once(&self, call: &Call, limit: usize) -> Result<Bytes, UpstreamError> {
        let probe = self.breaker.admit()?;
        let result = self.exchange(call, limit).await;
        self.breaker.report(probe, result.as_ref().err().is_none_or(|e| !e.is_outage()));
        result
    }

    async fn exchange(&self, call: &Call, limit: usize) -> Result<Bytes, UpstreamError> {
        let mut url = self.resolve(&call.path)?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(ACCEPT_LANGUAGE, self.culture.clone());
        if let Some(token) = &call.token {
            let value = HeaderValue::from_str(&format!("uStore {token}"))
                .map_err(|_| UpstreamError::Malformed("uStore handed out a token that is not a header value".into()))?;
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = &call.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.to_string());
        }
        // One answer gets `timeout`, or what is left of the caller's deadline.
        let timeout = crate::domain::deadline::capped(self.timeout);
        let deadline = Instant::now() + timeout;
        let exchange = async {
            let mut response = request.send().await.map_err(|e| transport_error(&e, timeout))?;
            let status = response.status();
            let limit = if status.is_success() { limit } else { 64 * 1024 };
            if response.content_length().is_some_and(|length| length > limit as u64) {
                return Err(UpstreamError::TooLarge(limit));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e, timeout))? {
                if body.len() + chunk.len() > limit {
                    return Err(UpstreamError::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            if status.is_success() { Ok(Bytes::from(body)) } else { Err(refusal(status, &body)) }
        };
        match tokio::time::timeout_at(deadline.into(), exchange).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout(timeout)),
        }
    }
}

/// JSON into a model; what is wrong goes in the error (for the log), never to the caller.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, UpstreamError> {
    serde_json::from_slice(body).map_err(|e| UpstreamError::Malformed(format!("JSON: {e}")))
}

fn refusal(status: StatusCode, body: &[u8]) -> UpstreamError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    UpstreamError::Refused {
        status: status.as_u16(),
        type_name: parsed.type_name.unwrap_or_default(),
        // uStore's own words, cut short: they reach logs, and field errors reach people.
        message: parsed.message.unwrap_or_default().chars().take(300).collect(),
    }
}

fn transport_error(err: &reqwest::Error, timeout: Duration) -> UpstreamError {
    if err.is_timeout() {
        return UpstreamError::Timeout(timeout);
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    UpstreamError::Unreachable(text)
}

/// https only, our rustls configuration with the configured CA or the system's roots, ALPN h2
/// then http/1.1, pooled, no redirects (a redirect would carry the token elsewhere).
fn https_client(ca_file: Option<&Path>, connect_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut tls = crate::tls::outbound_client_config(ca_file, "uStore")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(32)
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("podconnect/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// A circuit breaker: `failures` outages in a row open it; while open, calls fail at once; after
/// `cooldown` one call goes through as a probe, and its outcome closes or reopens it.
struct Breaker {
    failures: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Clone, Copy)]
enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; everyone else is refused until it returns.
    Probing,
}

/// Whether the call that was let through is the probe.
#[derive(Clone, Copy)]
struct Probe(bool);

impl Breaker {
    fn new(failures: u32, cooldown: Duration) -> Self {
        Breaker { failures, cooldown, state: Mutex::new(BreakerState::Closed { failures: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_open(&self) -> bool {
        !matches!(*self.lock(), BreakerState::Closed { .. })
    }

    fn admit(&self) -> Result<Probe, UpstreamError> {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed { .. } => Ok(Probe(false)),
            BreakerState::Open { until } if Instant::now() >= until => {
                *state = BreakerState::Probing;
                Ok(Probe(true))
            }
            _ => Err(UpstreamError::BreakerOpen),
        }
    }

    fn report(&self, probe: Probe, healthy: bool) {
        let mut state = self.lock();
        let next = match (*state, healthy) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Probing, false) if probe.0 => BreakerState::Open { until: Instant::now() + self.cooldown },
            (BreakerState::Closed { failures }, false) if failures + 1 >= self.failures => {
                tracing::warn!(failures = failures + 1, "uStore keeps failing; holding calls back");
                BreakerState::Open { until: Instant::now() + self.cooldown }
            }
            (BreakerState::Closed { failures }, false) => BreakerState::Closed { failures: failures + 1 },
            (other, false) => other,
        };
        if matches!(*state, BreakerState::Probing | BreakerState::Open { .. })
            && matches!(next, BreakerState::Closed { .. })
        {
            tracing::info!("uStore answers again");
        }
        *state = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_outages_lets_one_probe_through_and_closes_on_success() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..3 {
            let probe = breaker.admit().unwrap();
            breaker.report(probe, false);
        }
        assert!(matches!(breaker.admit(), Err(UpstreamError::BreakerOpen)));
        std::thread::sleep(Duration::from_millis(40));
        let probe = breaker.admit().expect("the probe goes through after the cooldown");
        assert!(matches!(breaker.admit(), Err(UpstreamError::BreakerOpen)), "only one probe at a time");
        breaker.report(probe, false);
        assert!(matches!(breaker.admit(), Err(UpstreamError::BreakerOpen)), "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        let probe = breaker.admit().unwrap();
        breaker.report(probe, true);
        assert!(breaker.admit().is_ok() && !breaker.is_open());
    }

    #[test]
    fn a_success_resets_the_count_of_failures() {
        let breaker = Breaker::new(2, Duration::from_secs(60));
        breaker.report(Probe(false), false);
        breaker.report(Probe(false), true);
        breaker.report(Probe(false), false);
        assert!(breaker.admit().is_ok(), "two failures, but not in a row");
    }

    #[test]
    fn errors_are_classified_by_status_and_ustore_type() {
        let refused = |status, type_name: &str, message: &str| UpstreamError::Refused {
            status,
            type_name: type_name.into(),
            message: message.into(),
        };
        assert!(refused(401, "", "").is_access_denied());
        assert!(refused(403, "AccessDenied", "").is_access_denied());
        assert!(refused(400, "OperationFailed", "Too much requests.").is_throttled());
        assert!(refused(429, "", "").is_throttled());
        assert!(refused(404, "", "").is_not_found());
        assert!(refused(403, "ResourceNotPermitted.Order", "").is_not_found());
        assert!(refused(503, "", "").is_outage() && !refused(400, "", "").is_outage());
        assert!(refusal(StatusCode::BAD_GATEWAY, b"<html>oops</html>").is_outage());
    }

    #[test]
    fn models_tolerate_unknown_members_and_refuse_wrong_types() {
        use crate::storefront::ustore::models::ProductList;
        let ok: ProductList =
            decode(br#"{"Products":[{"ID":"a","Name":"Card","Type":1,"NewThing":{"x":1}}],"Count":1,"Extra":true}"#)
                .unwrap();
        assert_eq!(ok.products[0].name, "Card");
        let err = decode::<ProductList>(br#"{"Products":[],"Count":"many"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }
}
