//! In-memory ephemeral store and event bus, the embedded default (one instance). Entries expire
//! lazily on access and are purged by a periodic sweep, so memory is reclaimed even for entries
//! nobody reads again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::domain::clock::{Clock, SystemClock};

use async_trait::async_trait;

use tokio::sync::broadcast;

use crate::domain::ephemeral::{EphemeralStore, StoreResult};
use crate::domain::events::{BUS_BUFFER, BusMessage, EventBus};

struct Entry {
    value: Vec<u8>,
    expires_at: Instant,
}

type Scopes = HashMap<Box<str>, HashMap<Box<str>, Entry>>;

/// An [`EphemeralStore`] held in process memory. Lost on restart, which is what "ephemeral"
/// promises.
pub struct MemoryStore {
    scopes: Mutex<Scopes>,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    pub fn new() -> Arc<Self> {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A store whose entries expire by `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(MemoryStore { scopes: Mutex::default(), clock })
    }

    /// Starts a background task that purges expired entries every `every`. It stops by itself
    /// when the store is dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { return };
                store.purge_expired();
            }
        });
    }

    /// Removes every expired entry now; returns how many went.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.instant();
        let mut scopes = self.lock();
        let mut removed = 0;
        scopes.retain(|_, entries| {
            let before = entries.len();
            entries.retain(|_, entry| entry.expires_at > now);
            removed += before - entries.len();
            !entries.is_empty()
        });
        removed
    }

    fn lock(&self) -> MutexGuard<'_, Scopes> {
        // A panic while holding the lock cannot leave an entry half-written (every mutation is a
        // single map operation), so a poisoned lock is still consistent.
        self.scopes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn live<'a>(scopes: &'a mut Scopes, scope: &str, name: &str, now: Instant) -> Option<&'a mut Entry> {
    let entries = scopes.get_mut(scope)?;
    if entries.get(name).is_some_and(|entry| entry.expires_at <= now) {
        entries.remove(name);
        return None;
    }
    entries.get_mut(name)
}

#[async_trait]
impl EphemeralStore for MemoryStore {
    async fn put(&self, scope: &str, name: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()> {
        let entry = Entry { value, expires_at: self.clock.instant() + ttl };
        let mut scopes = self.lock();
        scopes.entry(scope.into()).or_default().insert(name.into(), entry);
        Ok(())
    }

    async fn put_new(&self, scope: &str, name: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<bool> {
        let now = self.clock.instant();
        let mut scopes = self.lock();
        if live(&mut scopes, scope, name, now).is_some() {
            return Ok(false);
        }
        scopes.entry(scope.into()).or_default().insert(name.into(), Entry { value, expires_at: now + ttl });
        Ok(true)
    }

    async fn touch_if(&self, scope: &str, name: &str, expected: &[u8], ttl: Duration) -> StoreResult<bool> {
        let now = self.clock.instant();
        let mut scopes = self.lock();
        Ok(match live(&mut scopes, scope, name, now) {
            Some(entry) if entry.value == expected => {
                entry.expires_at = now + ttl;
                true
            }
            _ => false,
        })
    }

    async fn delete_if(&self, scope: &str, name: &str, expected: &[u8]) -> StoreResult<bool> {
        let now = self.clock.instant();
        let mut scopes = self.lock();
        if live(&mut scopes, scope, name, now).is_none_or(|entry| entry.value != expected) {
            return Ok(false);
        }
        let entries = scopes.get_mut(scope).expect("the entry was just found");
        entries.remove(name);
        if entries.is_empty() {
            scopes.remove(scope);
        }
        Ok(true)
    }

    async fn get(&self, scope: &str, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let mut scopes = self.lock();
        Ok(live(&mut scopes, scope, name, self.clock.instant()).map(|entry| entry.value.clone()))
    }

    async fn touch(&self, scope: &str, name: &str, ttl: Duration) -> StoreResult<bool> {
        let now = self.clock.instant();
        let mut scopes = self.lock();
        Ok(match live(&mut scopes, scope, name, now) {
            Some(entry) => {
                entry.expires_at = now + ttl;
                true
            }
            None => false,
        })
    }

    async fn take(&self, scope: &str, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let now = self.clock.instant();
        let mut scopes = self.lock();
        let Some(entries) = scopes.get_mut(scope) else { return Ok(None) };
        let taken = entries.remove(name).filter(|entry| entry.expires_at > now);
        if entries.is_empty() {
            scopes.remove(scope);
        }
        Ok(taken.map(|entry| entry.value))
    }

    async fn delete(&self, scope: &str, name: &str) -> StoreResult<bool> {
        let mut scopes = self.lock();
        let Some(entries) = scopes.get_mut(scope) else { return Ok(false) };
        let existed = entries.remove(name).is_some();
        if entries.is_empty() {
            scopes.remove(scope);
        }
        Ok(existed)
    }

    async fn delete_scope(&self, scope: &str) -> StoreResult<u64> {
        let mut scopes = self.lock();
        Ok(scopes.remove(scope).map_or(0, |entries| entries.len() as u64))
    }

    async fn names(&self, scope: &str) -> StoreResult<Vec<String>> {
        let now = self.clock.instant();
        let scopes = self.lock();
        let Some(entries) = scopes.get(scope) else { return Ok(Vec::new()) };
        Ok(entries.iter().filter(|(_, e)| e.expires_at > now).map(|(name, _)| name.to_string()).collect())
    }

    async fn scopes(&self) -> StoreResult<Vec<String>> {
        let now = self.clock.instant();
        let scopes = self.lock();
        Ok(scopes
            .iter()
            .filter(|(_, entries)| entries.values().any(|e| e.expires_at > now))
            .map(|(scope, _)| scope.to_string())
            .collect())
    }
}

/// The event bus of a single instance: a broadcast channel in process.
pub struct LocalBus(broadcast::Sender<BusMessage>);

impl LocalBus {
    pub fn new() -> Arc<Self> {
        Arc::new(LocalBus(broadcast::channel(BUS_BUFFER).0))
    }
}

#[async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, message: Vec<u8>) -> StoreResult<()> {
        // Nobody listening is fine: nothing watches the job.
        let _ = self.0.send(BusMessage::Event(message.into()));
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn put_get_delete_scope() {
        let store = MemoryStore::new();
        store.put("a", "x", b"1".to_vec(), LONG).await.unwrap();
        store.put("a", "y", b"2".to_vec(), LONG).await.unwrap();
        store.put("b", "x", b"3".to_vec(), LONG).await.unwrap();
        assert_eq!(store.get("a", "x").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.get("b", "y").await.unwrap(), None);
        assert_eq!(store.delete_scope("a").await.unwrap(), 2);
        assert_eq!(store.get("a", "y").await.unwrap(), None);
        assert_eq!(store.scopes().await.unwrap(), vec!["b".to_string()]);
    }

    #[tokio::test]
    async fn entries_expire_and_touch_extends() {
        let store = MemoryStore::new();
        store.put("s", "short", b"v".to_vec(), Duration::ZERO).await.unwrap();
        assert_eq!(store.get("s", "short").await.unwrap(), None);
        assert!(!store.touch("s", "short", LONG).await.unwrap());

        store.put("s", "kept", b"v".to_vec(), Duration::ZERO).await.unwrap();
        store.put("s", "other", b"v".to_vec(), LONG).await.unwrap();
        assert_eq!(store.purge_expired(), 1);
        assert!(store.touch("s", "other", LONG).await.unwrap());
    }

    #[tokio::test]
    async fn entries_expire_by_the_stores_clock() {
        let clock = Arc::new(crate::domain::clock::ShiftedClock::new());
        let store = MemoryStore::with_clock(clock.clone());
        store.put("s", "x", b"v".to_vec(), LONG).await.unwrap();
        clock.advance(LONG - Duration::from_secs(1));
        assert!(store.get("s", "x").await.unwrap().is_some(), "not yet");
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.get("s", "x").await.unwrap(), None, "expired on the store's clock");
    }

    #[tokio::test]
    async fn a_lease_has_one_owner_at_a_time() {
        let clock = Arc::new(crate::domain::clock::ShiftedClock::new());
        let store = MemoryStore::with_clock(clock.clone());
        let ttl = Duration::from_secs(5);
        assert!(store.put_new("leases", "job", b"a".to_vec(), ttl).await.unwrap());
        assert!(!store.put_new("leases", "job", b"b".to_vec(), ttl).await.unwrap(), "a holds it");
        assert!(!store.touch_if("leases", "job", b"b", ttl).await.unwrap(), "b cannot renew a's lease");
        assert!(store.touch_if("leases", "job", b"a", ttl).await.unwrap());
        clock.advance(ttl);
        assert!(store.put_new("leases", "job", b"b".to_vec(), ttl).await.unwrap(), "expired: b takes it");
        assert!(!store.delete_if("leases", "job", b"a").await.unwrap(), "a can no longer give it back");
        assert!(store.delete_if("leases", "job", b"b").await.unwrap());
        assert!(store.scopes().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn take_hands_out_once() {
        let store = MemoryStore::new();
        store.put("s", "once", b"v".to_vec(), LONG).await.unwrap();
        assert!(store.take("s", "once").await.unwrap().is_some());
        assert!(store.take("s", "once").await.unwrap().is_none());
        assert!(store.scopes().await.unwrap().is_empty());
    }
}
