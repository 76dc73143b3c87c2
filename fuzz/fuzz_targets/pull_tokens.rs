//! Fuzz target: the token part of a pull link (`/print-files/<token>.pdf`) as a printer or a
//! prober sends it, through `PullLinks::take` over the in-memory store. A token nobody issued
//! must get "gone" (`Ok(None)`): never a document, an error or a panic, whatever its length,
//! alphabet or encoding.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use server::domain::jobs::PullLinks;
use server::store::memory::MemoryStore;

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"));
static LINKS: LazyLock<Arc<PullLinks>> = LazyLock::new(|| Arc::new(PullLinks::new(MemoryStore::new())));

fuzz_target!(|data: &[u8]| {
    // The listener hands over the path segment as text; a printer can send any bytes.
    let token = String::from_utf8_lossy(data);
    let taken = RUNTIME.block_on(LINKS.take(&token));
    match taken {
        Ok(None) => {}
        Ok(Some(_)) => panic!("a made-up token {token:?} returned a document"),
        Err(err) => panic!("a made-up token {token:?} is an error instead of gone: {err}"),
    }
});
