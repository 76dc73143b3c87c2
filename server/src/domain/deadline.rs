//! The caller's deadline, for work that waits, polls or retries on the caller's behalf (a uStore
//! preview, a retried read): the edge sets it around a call, and such work ends within it with its
//! own message instead of being cut off mid-way. Scoped to the call's task, like a tracing span.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static CALLER_DEADLINE: Instant;
}

/// Runs `work` with the caller's deadline `after` from now (none: no deadline).
pub async fn within<F: Future>(after: Option<Duration>, work: F) -> F::Output {
    match after {
        Some(after) => CALLER_DEADLINE.scope(Instant::now() + after, work).await,
        None => work.await,
    }
}

/// What is left of the caller's deadline, if the call has one.
pub fn remaining() -> Option<Duration> {
    CALLER_DEADLINE.try_with(|deadline| deadline.saturating_duration_since(Instant::now())).ok()
}

/// Time kept back from the caller's deadline, so work that runs out answers with its own message
/// before the edge cuts the call off.
const MARGIN: Duration = Duration::from_millis(100);

/// `limit`, or less when the caller's deadline (less a small margin) comes sooner.
pub fn capped(limit: Duration) -> Duration {
    remaining().map_or(limit, |left| left.saturating_sub(MARGIN).min(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_caps_limits_only_inside_the_call() {
        assert_eq!(capped(Duration::from_secs(20)), Duration::from_secs(20));
        within(Some(Duration::from_secs(2)), async {
            let capped = capped(Duration::from_secs(20));
            assert!(capped < Duration::from_secs(2) && capped > Duration::from_secs(1), "{capped:?}");
            assert_eq!(super::capped(Duration::from_millis(5)), Duration::from_millis(5));
        })
        .await;
        within(None, async { assert!(remaining().is_none()) }).await;
    }
}
