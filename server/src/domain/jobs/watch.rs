//! Watching jobs: the hub that relays each running job's changes between instances over the
//! event bus and fans them out to this instance's watchers (keeping nothing for jobs nobody here
//! watches), the WatchJob stream, which also keeps its session alive and reads the job again when
//! changes may have been missed, and the per-session cap on open watches.
//!
//! A change travels sealed under its session's data key: the bus (Redis) relays it unread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{Job, MAX_WATCHES_PER_SESSION, job_key};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::events::{BusMessage, EventBus};
use crate::domain::session::{Session, SessionData, SessionManager};

/// An open WatchJob stream counts as activity of its session at least this often, notices
/// within this time that the session has ended, and reads the job again (a change whose
/// message was lost still arrives).
const WATCH_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Changes of one job a watcher may fall behind by before it reads the job again instead.
const WATCH_BUFFER: usize = 64;

/// What travels on the bus about a job.
#[derive(Serialize, Deserialize)]
enum JobEvent {
    /// The job as it is now, sealed for its session; `terminal` when it has ended.
    Changed { job_id: String, terminal: bool, sealed: Vec<u8> },
    /// The job's session ended: its watches end.
    SessionEnded { job_id: String },
}

/// What a watcher on this instance receives.
#[derive(Clone)]
pub(super) enum Delivery {
    Sealed(Arc<[u8]>),
    /// Changes may have been missed: read the job again.
    Gap,
}

type Channels = Arc<Mutex<HashMap<String, broadcast::Sender<Delivery>>>>;

/// State changes of running jobs, for watchers on every instance.
pub(super) struct Hub {
    bus: Arc<dyn EventBus>,
    channels: Channels,
    relay: tokio::task::JoinHandle<()>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

fn lock(channels: &Channels) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Delivery>>> {
    channels.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    pub(super) fn new(bus: Arc<dyn EventBus>) -> Self {
        let channels = Channels::default();
        let relay = tokio::spawn(relay(bus.subscribe(), channels.clone()));
        Hub { bus, channels, relay }
    }

    pub(super) fn subscribe(&self, id: &str) -> broadcast::Receiver<Delivery> {
        lock(&self.channels).entry(id.to_owned()).or_insert_with(|| broadcast::channel(WATCH_BUFFER).0).subscribe()
    }

    /// Sends a change to the job's watchers on every instance; a terminal change is the last.
    pub(super) async fn publish(&self, data: &SessionData, job: &Job) {
        let sealed = match postcard::to_allocvec(job) {
            Ok(plain) => data.seal_message(&job.id, &plain),
            Err(err) => return tracing::error!(error = %err, "cannot encode a job change"),
        };
        let event = JobEvent::Changed { job_id: job.id.clone(), terminal: job.state.is_terminal(), sealed };
        self.send(&event).await;
    }

    /// Ends every watch of a job without a last change (its session ended).
    pub(super) async fn forget(&self, id: &str) {
        self.send(&JobEvent::SessionEnded { job_id: id.to_owned() }).await;
    }

    async fn send(&self, event: &JobEvent) {
        let Ok(bytes) = postcard::to_allocvec(event) else { return };
        // Watchers read the job again every few seconds, so a lost change still reaches them.
        if let Err(err) = self.bus.publish(bytes).await {
            tracing::warn!(error = %err, "cannot publish a job change; watchers will read it on their next check");
        }
    }

    /// Drops a job's channel that no watcher uses (a watch that found the job already ended).
    pub(super) fn release(&self, id: &str) {
        let mut map = lock(&self.channels);
        if map.get(id).is_some_and(|sender| sender.receiver_count() == 0) {
            map.remove(id);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.channels).len()
    }
}

/// Hands each event from the bus to this instance's watchers of its job.
async fn relay(mut events: broadcast::Receiver<BusMessage>, channels: Channels) {
    loop {
        let message = match events.recv().await {
            Ok(BusMessage::Event(bytes)) => bytes,
            Ok(BusMessage::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => {
                for sender in lock(&channels).values() {
                    let _ = sender.send(Delivery::Gap);
                }
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Ok(event) = postcard::from_bytes::<JobEvent>(&message) else {
            tracing::warn!("an unreadable message on the event bus was dropped");
            continue;
        };
        let mut map = lock(&channels);
        match event {
            JobEvent::Changed { job_id, terminal, sealed } => {
                if let Some(sender) = map.get(&job_id) {
                    let _ = sender.send(Delivery::Sealed(sealed.into()));
                }
                if terminal {
                    map.remove(&job_id);
                }
            }
            JobEvent::SessionEnded { job_id } => {
                map.remove(&job_id);
            }
        }
    }
}

/// One WatchJob stream: the job's changes until it ends, while the session stays open.
pub struct Watch {
    pub(super) receiver: broadcast::Receiver<Delivery>,
    pub(super) sessions: Arc<SessionManager>,
    pub(super) session: Session,
    /// The job as the watcher last saw it: older or repeated changes are skipped.
    pub(super) last: Job,
    pub(super) _slot: WatchSlot,
}

impl Watch {
    /// The next change; `None` after the terminal one. An error when the session has ended.
    pub async fn next(&mut self) -> Option<CoreResult<Job>> {
        if self.last.state.is_terminal() {
            return None;
        }
        let every = WATCH_KEEP_ALIVE.min(self.sessions.limits().idle / 2).max(Duration::from_millis(10));
        let mut keep_alive = tokio::time::interval(every);
        keep_alive.tick().await;
        loop {
            let seen = tokio::select! {
                delivery = self.receiver.recv() => match delivery {
                    Ok(Delivery::Sealed(sealed)) => match self.open(&sealed) {
                        Ok(job) => Some(job),
                        Err(err) => return Some(Err(err)),
                    },
                    Ok(Delivery::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => match self.reload().await {
                        Ok(job) => job,
                        Err(err) => return Some(Err(err)),
                    },
                    // The session ended (or the server stops).
                    Err(broadcast::error::RecvError::Closed) => return Some(Err(session_ended())),
                },
                _ = keep_alive.tick() => match self.sessions.keep_alive(&self.session).await {
                    Ok(true) => match self.reload().await {
                        Ok(job) => job,
                        Err(err) => return Some(Err(err)),
                    },
                    Ok(false) => return Some(Err(session_ended())),
                    Err(err) => return Some(Err(err)),
                },
            };
            if let Some(job) = seen
                && job != self.last
                && job.updated_ms >= self.last.updated_ms
            {
                self.last = job.clone();
                return Some(Ok(job));
            }
        }
    }

    fn data(&self) -> SessionData {
        self.sessions.data(&self.session)
    }

    fn open(&self, sealed: &[u8]) -> CoreResult<Job> {
        let plain = self.data().open_message(&self.last.id, sealed)?;
        Job::read(&plain).map_err(|e| CoreError::internal("a job change is unreadable", e))
    }

    /// The job as stored now; `None` when it is gone with its session.
    async fn reload(&self) -> CoreResult<Option<Job>> {
        let Some(bytes) = self.data().get(&job_key(&self.last.id)).await? else {
            return Err(session_ended());
        };
        Job::read(&bytes).map(Some).map_err(|e| CoreError::internal("a stored job is unreadable", e))
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
    use crate::store::memory::LocalBus;

    /// Lets the relay task handle what was published.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn the_watcher_hub_keeps_nothing_for_jobs_nobody_watches() {
        let hub = Hub::new(LocalBus::new());
        let (data, _store) = crate::domain::jobs::tests::session_data().await;
        // Changes of unwatched jobs leave nothing behind.
        hub.publish(&data, &job("a", JobState::Processing)).await;
        settle().await;
        assert_eq!(hub.len(), 0);
        // A watch that finds its job already ended gives its channel back.
        let receiver = hub.subscribe("b");
        drop(receiver);
        hub.release("b");
        assert_eq!(hub.len(), 0);
        // A watched job's channel goes with its terminal change, or when its session ends.
        let mut receiver = hub.subscribe("c");
        hub.publish(&data, &job("c", JobState::Completed)).await;
        settle().await;
        let Ok(Delivery::Sealed(sealed)) = receiver.try_recv() else { panic!("the change arrives") };
        let plain = data.open_message("c", &sealed).unwrap();
        assert_eq!(postcard::from_bytes::<Job>(&plain).unwrap().state, JobState::Completed);
        assert_eq!(hub.len(), 0);
        let mut receiver = hub.subscribe("d");
        hub.forget("d").await;
        settle().await;
        assert!(matches!(receiver.try_recv(), Err(broadcast::error::TryRecvError::Closed)));
        assert_eq!(hub.len(), 0);
    }

    #[tokio::test]
    async fn changes_cross_the_bus_sealed() {
        let hub = Hub::new(LocalBus::new());
        let (data, _store) = crate::domain::jobs::tests::session_data().await;
        let mut receiver = hub.subscribe("e");
        let mut change = job("e", JobState::Processing);
        change.message = "a marker only the session may read".into();
        hub.publish(&data, &change).await;
        settle().await;
        let Ok(Delivery::Sealed(sealed)) = receiver.try_recv() else { panic!("the change arrives") };
        let needle = b"a marker only";
        assert!(!sealed.windows(needle.len()).any(|w| w == needle), "the bus never carries plaintext");
        assert!(data.open_message("other-job", &sealed).is_err(), "bound to its job");
    }
}
