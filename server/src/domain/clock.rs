//! The time every time limit is measured by (session idle and absolute limits, ephemeral-store
//! expiry), behind a trait so tests can pass a limit without waiting for it.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Where the time comes from. Both readings move together: `instant` for durations (monotonic),
/// `system` for times that are stored or shown.
pub trait Clock: Send + Sync {
    fn instant(&self) -> Instant;
    fn system(&self) -> SystemTime;
}

/// The machine's clocks: what the binary uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn system(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The machine's clocks plus an offset that only grows: time runs as usual and [`advance`]
/// jumps it forward, so a test reaches a time limit at once while everything else (network
/// timeouts, tasks) keeps real time.
///
/// [`advance`]: ShiftedClock::advance
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset: Mutex<Duration>,
}

impl ShiftedClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += by;
    }

    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ShiftedClock {
    fn instant(&self) -> Instant {
        Instant::now() + self.offset()
    }

    fn system(&self) -> SystemTime {
        SystemTime::now() + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_runs_ahead_by_what_it_was_advanced() {
        let clock = ShiftedClock::new();
        let before = clock.instant();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.instant() >= before + Duration::from_secs(3600));
        assert!(clock.system() >= SystemTime::now() + Duration::from_secs(3599));
    }
}
