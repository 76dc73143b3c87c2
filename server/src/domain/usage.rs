//! Usage events: what happened, when, to which product, on which printer model; never who.
//! Events have no field that can hold a user, session, device-user or free text, so they can be
//! kept indefinitely. `UsageRecorder` batches them off the request path into a `UsageStore`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::domain::error::CoreResult;
use crate::domain::ids::ProductId;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UsageKind {
    SessionStarted,
    SessionClosed,
    ProductViewed,
    LoginSucceeded,
    LoginFailed,
    DraftCreated,
    PreviewRendered,
    DraftFinalized,
    JobSubmitted,
    JobEnded,
    SsoEnrolled,
    SsoUsed,
    SsoForgotten,
}

impl UsageKind {
    pub const ALL: [UsageKind; 13] = [
        UsageKind::SessionStarted,
        UsageKind::SessionClosed,
        UsageKind::ProductViewed,
        UsageKind::LoginSucceeded,
        UsageKind::LoginFailed,
        UsageKind::DraftCreated,
        UsageKind::PreviewRendered,
        UsageKind::DraftFinalized,
        UsageKind::JobSubmitted,
        UsageKind::JobEnded,
        UsageKind::SsoEnrolled,
        UsageKind::SsoUsed,
        UsageKind::SsoForgotten,
    ];

    /// Stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::SessionStarted => "session_started",
            UsageKind::SessionClosed => "session_closed",
            UsageKind::ProductViewed => "product_viewed",
            UsageKind::LoginSucceeded => "login_succeeded",
            UsageKind::LoginFailed => "login_failed",
            UsageKind::DraftCreated => "draft_created",
            UsageKind::PreviewRendered => "preview_rendered",
            UsageKind::DraftFinalized => "draft_finalized",
            UsageKind::JobSubmitted => "job_submitted",
            UsageKind::JobEnded => "job_ended",
            UsageKind::SsoEnrolled => "sso_enrolled",
            UsageKind::SsoUsed => "sso_used",
            UsageKind::SsoForgotten => "sso_forgotten",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        UsageKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// How a job ended, for `JobEnded` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Completed,
    Canceled,
    Aborted,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Completed => "completed",
            JobOutcome::Canceled => "canceled",
            JobOutcome::Aborted => "aborted",
        }
    }
}

/// One usage event. Every field is either an enum, a number, a time, or a catalog or device-model
/// identifier; by construction none can carry personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    pub kind: UsageKind,
    pub at: SystemTime,
    pub product: Option<ProductId>,
    /// The printer model (not the device id), e.g. "Xerox AltaLink C8170".
    pub device_model: Option<String>,
    pub outcome: Option<JobOutcome>,
    pub pages: Option<u32>,
    pub duration: Option<Duration>,
    /// The region whose stack recorded it (`--region`), set by the recorder.
    pub region: Option<String>,
}

impl UsageEvent {
    pub fn new(kind: UsageKind) -> Self {
        UsageEvent {
            kind,
            at: SystemTime::now(),
            product: None,
            device_model: None,
            outcome: None,
            pages: None,
            duration: None,
            region: None,
        }
    }

    pub fn with_product(mut self, product: ProductId) -> Self {
        self.product = Some(product);
        self
    }
}

/// How to group counted events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UsageGrouping {
    Kind,
    Product,
    Day,
    DeviceModel,
}

/// Which events to count.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Inclusive start.
    pub start: Option<SystemTime>,
    /// Exclusive end.
    pub end: Option<SystemTime>,
    /// Empty means every kind.
    pub kinds: Vec<UsageKind>,
    pub group_by: Vec<UsageGrouping>,
}

/// One group's count; the keys not grouped by are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    pub kind: Option<UsageKind>,
    pub product: Option<String>,
    /// `YYYY-MM-DD` in UTC.
    pub day: Option<String>,
    pub device_model: Option<String>,
    pub count: u64,
}

/// The answer to a usage query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// Every matching event.
    pub total: u64,
    /// One row per combination of group keys; empty when not grouped.
    pub groups: Vec<UsageCount>,
}

/// Where usage events are kept for good (SQLite or PostgreSQL).
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Appends events in one transaction.
    async fn append(&self, events: &[UsageEvent]) -> CoreResult<()>;
    /// Counts events, one row per combination of the grouping keys (one row when not grouped).
    async fn count(&self, query: &UsageQuery) -> CoreResult<Vec<UsageCount>>;
}

/// Where domain services report usage. Recording never fails the user's call.
#[async_trait]
pub trait UsageSink: Send + Sync + 'static {
    async fn record(&self, event: UsageEvent);
}

enum Command {
    Record(UsageEvent),
    Flush(oneshot::Sender<()>),
}

/// Batches usage events in a background task and writes them to a [`UsageStore`], so a request
/// never waits on a database write. The queue is bounded: when the store falls behind, callers
/// wait briefly instead of events being dropped.
#[derive(Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<Command>,
    store: Arc<dyn UsageStore>,
    region: Option<Arc<str>>,
}

const QUEUE: usize = 4096;
const BATCH: usize = 256;
/// How long the writer waits for more events before writing a batch.
const GATHER: std::time::Duration = std::time::Duration::from_millis(50);

impl UsageRecorder {
    /// Starts the writer task. It ends after every sender is gone and the queue is written out.
    pub fn spawn(store: Arc<dyn UsageStore>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write_loop(rx, store.clone()));
        (UsageRecorder { tx, store, region: None }, task)
    }

    /// Records every event as made in `region` (a stack of the scaled deployment).
    pub fn in_region(mut self, region: Option<String>) -> Self {
        self.region = region.map(Into::into);
        self
    }

    /// Waits until every event recorded before this call is in the store.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Command::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Counts events, including every one recorded before this call. Groups come in the order
    /// of `group_by` (kinds in their declared order, other keys by text); without grouping there
    /// are no groups, only the total.
    pub async fn count(&self, query: &UsageQuery) -> CoreResult<UsageReport> {
        self.flush().await;
        let mut groups = self.store.count(query).await?;
        groups.retain(|g| g.count > 0);
        let total = groups.iter().map(|g| g.count).sum();
        if query.group_by.is_empty() {
            return Ok(UsageReport { total, groups: Vec::new() });
        }
        let mut order: Vec<UsageGrouping> = Vec::new();
        for key in &query.group_by {
            if !order.contains(key) {
                order.push(*key);
            }
        }
        groups.sort_by(|a, b| {
            order.iter().fold(std::cmp::Ordering::Equal, |acc, key| {
                acc.then_with(|| match key {
                    UsageGrouping::Kind => a.kind.cmp(&b.kind),
                    UsageGrouping::Product => a.product.cmp(&b.product),
                    UsageGrouping::Day => a.day.cmp(&b.day),
                    UsageGrouping::DeviceModel => a.device_model.cmp(&b.device_model),
                })
            })
        });
        Ok(UsageReport { total, groups })
    }
}

#[async_trait]
impl UsageSink for UsageRecorder {
    async fn record(&self, mut event: UsageEvent) {
        if event.region.is_none() {
            event.region = self.region.as_deref().map(str::to_owned);
        }
        if self.tx.send(Command::Record(event)).await.is_err() {
            tracing::error!("usage writer has stopped; a usage event was not recorded");
        }
    }
}

async fn write_loop(mut rx: mpsc::Receiver<Command>, store: Arc<dyn UsageStore>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut acks = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Gather for a moment so one write carries many events; a flush ends the wait at once.
        let deadline = tokio::time::Instant::now() + GATHER;
        while let Some(command) = next.take() {
            match command {
                Command::Record(event) => batch.push(event),
                Command::Flush(ack) => acks.push(ack),
            }
            if batch.len() >= BATCH || !acks.is_empty() {
                break;
            }
            next = tokio::time::timeout_at(deadline, rx.recv()).await.unwrap_or_default();
        }
        if !batch.is_empty() {
            if let Err(err) = store.append(&batch).await {
                // The database is the only copy; say plainly how much was lost.
                tracing::error!(error = %err, lost = batch.len(), "could not write usage events");
            }
            batch.clear();
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Keeps events in memory and counts by kind and product: enough to test the recorder.
    #[derive(Default)]
    struct MemoryUsageStore {
        events: tokio::sync::Mutex<Vec<UsageEvent>>,
    }

    #[async_trait]
    impl UsageStore for MemoryUsageStore {
        async fn append(&self, events: &[UsageEvent]) -> CoreResult<()> {
            self.events.lock().await.extend_from_slice(events);
            Ok(())
        }

        async fn count(&self, query: &UsageQuery) -> CoreResult<Vec<UsageCount>> {
            let events = self.events.lock().await;
            let mut groups: BTreeMap<(Option<UsageKind>, Option<String>), u64> = BTreeMap::new();
            for event in events.iter() {
                let in_range = query.start.is_none_or(|s| event.at >= s) && query.end.is_none_or(|e| event.at < e);
                let kind_ok = query.kinds.is_empty() || query.kinds.contains(&event.kind);
                if in_range && kind_ok {
                    let kind = query.group_by.contains(&UsageGrouping::Kind).then_some(event.kind);
                    let product = query
                        .group_by
                        .contains(&UsageGrouping::Product)
                        .then(|| event.product.as_ref().map(|p| p.to_string()))
                        .flatten();
                    *groups.entry((kind, product)).or_default() += 1;
                }
            }
            Ok(groups
                .into_iter()
                .map(|((kind, product), count)| UsageCount { kind, product, day: None, device_model: None, count })
                .collect())
        }
    }

    #[tokio::test]
    async fn recorder_writes_everything_before_a_count() {
        let store = Arc::new(MemoryUsageStore::default());
        let (recorder, _task) = UsageRecorder::spawn(store.clone());
        for _ in 0..1000 {
            recorder.record(UsageEvent::new(UsageKind::ProductViewed)).await;
        }
        recorder.record(UsageEvent::new(UsageKind::SessionStarted)).await;
        let report =
            recorder.count(&UsageQuery { group_by: vec![UsageGrouping::Kind], ..Default::default() }).await.unwrap();
        assert_eq!(report.total, 1001);
        let kinds: Vec<_> = report.groups.iter().map(|c| (c.kind, c.count)).collect();
        assert_eq!(kinds, vec![(Some(UsageKind::SessionStarted), 1), (Some(UsageKind::ProductViewed), 1000)]);
        let ungrouped = recorder.count(&UsageQuery::default()).await.unwrap();
        assert_eq!((ungrouped.total, ungrouped.groups.len()), (1001, 0));
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in UsageKind::ALL {
            assert_eq!(UsageKind::parse(kind.as_str()), Some(kind));
        }
    }
}
