//! `eventually`: the one way tests and the harness wait for something that happens in the
//! background (a job ending, an event written, a peer listening): look again every `INTERVAL`
//! until it is there, and fail naming what never came, and what was seen last, after a bound.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// How long to wait between two looks: short, so a test waits little longer than the event.
pub const INTERVAL: Duration = Duration::from_millis(25);

/// What one look found: the value waited for, or not yet (and what was seen instead, for the
/// failure message).
pub trait Look {
    type Found;
    type Seen: Debug;
    fn found(self) -> Result<Self::Found, Self::Seen>;
}

/// `None` means "not yet".
impl<T> Look for Option<T> {
    type Found = T;
    type Seen = NotYet;
    fn found(self) -> Result<T, NotYet> {
        self.ok_or(NotYet)
    }
}

/// `Err(seen)` means "not yet, and this is what was there instead".
impl<T, E: Debug> Look for Result<T, E> {
    type Found = T;
    type Seen = E;
    fn found(self) -> Result<T, E> {
        self
    }
}

/// The `Seen` of a look that returns `Option`.
#[derive(Debug)]
pub struct NotYet;

/// Calls `look` every `INTERVAL` until it finds what it looks for, and returns that; panics,
/// naming `what` and the last thing seen, if `timeout` passes first.
#[track_caller]
pub fn eventually<L, F, Fut>(what: &str, timeout: Duration, mut look: F) -> impl Future<Output = L::Found>
where
    L: Look,
    F: FnMut() -> Fut,
    Fut: Future<Output = L>,
{
    let caller = std::panic::Location::caller();
    let what = what.to_owned();
    async move {
        let attempt = try_eventually(&what, timeout, || {
            let look = look();
            async move { anyhow::Ok(look.await) }
        });
        match attempt.await {
            Ok(found) => found,
            Err(err) => panic!("{err:#} (waited at {caller})"),
        }
    }
}

/// Like `eventually` for the harness and benches, where a failure is an error: `look` returns
/// `Err` to stop at once (say, the process it waits for exited), and a timeout is an error naming
/// `what` and the last thing seen.
pub async fn try_eventually<L, F, Fut>(what: &str, timeout: Duration, mut look: F) -> anyhow::Result<L::Found>
where
    L: Look,
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<L>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = match look().await?.found() {
            Ok(found) => return Ok(found),
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("gave up waiting for {what} after {timeout:?}; last seen: {seen:?}");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
