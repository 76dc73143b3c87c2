//! Watching jobs: the hub that fans each running job's changes out to its watchers (and keeps
//! nothing for jobs nobody watches), the WatchJob stream, which also keeps its session alive, and
//! the per-session cap on open watches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::{Job, MAX_WATCHES_PER_SESSION};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::session::{Session, SessionManager};

/// An open WatchJob stream counts as activity of its session at least this often (and notices
/// within this time that the session has ended).
const WATCH_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// State changes of running jobs, for watchers.
#[derive(Default)]
pub(super) struct Hub(Mutex<HashMap<String, broadcast::Sender<Job>>>);

impl Hub {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Job>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn subscribe(&self, id: &str) -> broadcast::Receiver<Job> {
        self.map().entry(id.to_owned()).or_insert_with(|| broadcast::channel(64).0).subscribe()
    }

    /// Sends a change to the job's watchers, if it has any; a terminal change is the last.
    pub(super) fn publish(&self, job: &Job) {
        let mut map = self.map();
        if let Some(sender) = map.get(&job.id) {
            let _ = sender.send(job.clone());
        }
        if job.state.is_terminal() {
            map.remove(&job.id);
        }
    }

    /// Ends every watch of a job without a last change (its session ended).
    pub(super) fn forget(&self, id: &str) {
        self.map().remove(id);
    }

    /// Drops a job's channel that no watcher uses (a watch that found the job already ended).
    pub(super) fn release(&self, id: &str) {
        let mut map = self.map();
        if map.get(id).is_some_and(|sender| sender.receiver_count() == 0) {
            map.remove(id);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map().len()
    }
}

/// One WatchJob stream: the job's changes until it ends, while the session stays open.
pub struct Watch {
    pub(super) receiver: broadcast::Receiver<Job>,
    pub(super) sessions: Arc<SessionManager>,
    pub(super) session: Session,
    pub(super) _slot: WatchSlot,
}

impl Watch {
    /// The next change; `None` after the terminal one. An error when the session has ended.
    pub async fn next(&mut self) -> Option<CoreResult<Job>> {
        let every = WATCH_KEEP_ALIVE.min(self.sessions.limits().idle / 2).max(Duration::from_millis(10));
        let mut keep_alive = tokio::time::interval(every);
        keep_alive.tick().await;
        loop {
            tokio::select! {
                change = self.receiver.recv() => match change {
                    Ok(job) => return Some(Ok(job)),
                    // A slow watcher skipped some changes; the next one still arrives.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    // Dropped without a terminal change: the session ended (or the server stops).
                    Err(broadcast::error::RecvError::Closed) => return Some(Err(session_ended())),
                },
                _ = keep_alive.tick() => match self.sessions.keep_alive(&self.session).await {
                    Ok(true) => continue,
                    Ok(false) => return Some(Err(session_ended())),
                    Err(err) => return Some(Err(err)),
                },
            }
        }
    }
}

fn session_ended() -> CoreError {
    CoreError::Unauthenticated(
        "the session ended while the job was being watched; start a new session to see the printer's jobs".into(),
    )
}

/// A place among a session's open watches, given back when the stream ends.
pub(super) struct WatchSlot {
    watches: Arc<Mutex<HashMap<String, usize>>>,
    scope: String,
}

impl WatchSlot {
    pub(super) fn take(watches: &Arc<Mutex<HashMap<String, usize>>>, session: &Session) -> CoreResult<WatchSlot> {
        let scope = session.scope();
        let mut map = watches.lock().unwrap_or_else(|p| p.into_inner());
        let open = map.entry(scope.clone()).or_default();
        if *open >= MAX_WATCHES_PER_SESSION {
            return Err(CoreError::ResourceExhausted(format!(
                "this session already watches {MAX_WATCHES_PER_SESSION} jobs, the most it may; end a watch first"
            )));
        }
        *open += 1;
        Ok(WatchSlot { watches: watches.clone(), scope })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut map = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = map.get_mut(&self.scope) {
            *open -= 1;
            if *open == 0 {
                map.remove(&self.scope);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::jobs::tests::job;
    use crate::domain::printing::JobState;

    #[test]
    fn the_watcher_hub_keeps_nothing_for_jobs_nobody_watches() {
        let hub = Hub::default();
        // Changes of unwatched jobs leave nothing behind.
        hub.publish(&job("a", JobState::Processing));
        assert_eq!(hub.len(), 0);
        // A watch that finds its job already ended gives its channel back.
        let receiver = hub.subscribe("b");
        drop(receiver);
        hub.release("b");
        assert_eq!(hub.len(), 0);
        // A watched job's channel goes with its terminal change, or when its session ends.
        let mut receiver = hub.subscribe("c");
        hub.publish(&job("c", JobState::Completed));
        assert_eq!(receiver.try_recv().unwrap().state, JobState::Completed);
        assert_eq!(hub.len(), 0);
        let mut receiver = hub.subscribe("d");
        hub.forget("d");
        assert!(matches!(receiver.try_recv(), Err(broadcast::error::TryRecvError::Closed)));
        assert_eq!(hub.len(), 0);
    }
}
