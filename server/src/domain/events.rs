//! The event bus contract: messages every instance of the core must hear (a job's state changes,
//! for WatchJob streams on any instance). Implementations: in process (memory) and Redis pub/sub.
//! Messages are opaque bytes; what carries session data is sealed before it is published.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::ephemeral::StoreResult;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum BusMessage {
    Event(Arc<[u8]>),
    /// Messages may have been missed (the bus reconnected): subscribers read the state again.
    Gap,
}

/// Publishes to every instance's subscribers, this instance's included.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    async fn publish(&self, message: Vec<u8>) -> StoreResult<()>;
    /// Messages published from now on. A lagging receiver (`RecvError::Lagged`) missed some,
    /// like [`BusMessage::Gap`].
    fn subscribe(&self) -> broadcast::Receiver<BusMessage>;
}

/// Messages a subscriber may fall behind by before it is told it missed some.
pub const BUS_BUFFER: usize = 1024;
