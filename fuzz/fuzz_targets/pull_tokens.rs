//! Fuzz target: the token part of a pull link (`/print-files/<token>.pdf`) as a printer or a
//! prober sends it, through `PullLinks::open` over the in-memory store. A token nobody issued
//! must get "gone" (`Ok(None)`): never a document, an error or a panic, whatever its length,
//! alphabet or encoding.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use std::time::Duration;

use server::domain::crypto::Key256;
use server::domain::jobs::PullLinks;
use server::domain::session::{SessionLimits, SessionManager};
use server::domain::usage::{UsageEvent, UsageSink};
use server::store::memory::MemoryStore;

struct NoUsage;

#[async_trait::async_trait]
impl UsageSink for NoUsage {
    async fn record(&self, _event: UsageEvent) {}
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"));
static LINKS: LazyLock<Arc<PullLinks>> = LazyLock::new(|| {
    let store = MemoryStore::new();
    let limits = SessionLimits {
        idle: Duration::from_secs(60),
        absolute: Duration::from_secs(600),
        max_per_device: 8,
        max_total: 64,
    };
    let sessions = Arc::new(SessionManager::new(store.clone(), Key256::generate(), limits, Arc::new(NoUsage)));
    Arc::new(PullLinks::new(store, sessions))
});

fuzz_target!(|data: &[u8]| {
    // The listener hands over the path segment as text; a printer can send any bytes.
    let token = String::from_utf8_lossy(data);
    let opened = RUNTIME.block_on(LINKS.open(&token)).map(|download| download.map(|d| d.pdf));
    match opened {
        Ok(None) => {}
        Ok(Some(_)) => panic!("a made-up token {token:?} returned a document"),
        Err(err) => panic!("a made-up token {token:?} is an error instead of gone: {err}"),
    }
});
