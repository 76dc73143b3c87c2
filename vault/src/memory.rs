//! A vault in memory: for tests and benchmarks, and a server run without a persistent store.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{VaultAddress, VaultEntry, VaultError, VaultResult, VaultStore, check_entry};

/// Entries in a map behind a lock; nothing survives the process.
#[derive(Default)]
pub struct MemoryVault {
    entries: Mutex<BTreeMap<VaultAddress, VaultEntry>>,
}

impl MemoryVault {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many entries are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<VaultAddress, VaultEntry>> {
        // A panic elsewhere cannot leave a map half-changed: every change is one insert or remove.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl VaultStore for MemoryVault {
    async fn put(&self, address: &VaultAddress, entry: VaultEntry) -> VaultResult<bool> {
        check_entry(&entry)?;
        Ok(self.lock().insert(address.clone(), entry).is_some())
    }

    async fn get(&self, address: &VaultAddress) -> VaultResult<Option<VaultEntry>> {
        Ok(self.lock().get(address).cloned())
    }

    async fn delete(&self, address: &VaultAddress) -> VaultResult<bool> {
        Ok(self.lock().remove(address).is_some())
    }

    async fn replace_if(&self, address: &VaultAddress, expected: &VaultEntry, entry: VaultEntry) -> VaultResult<bool> {
        check_entry(&entry)?;
        let mut entries = self.lock();
        match entries.get_mut(address) {
            Some(current) if current == expected => {
                *current = entry;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn page(&self, after: Option<&VaultAddress>, limit: usize) -> VaultResult<Vec<(VaultAddress, VaultEntry)>> {
        if limit == 0 || limit > crate::MAX_PAGE {
            return Err(VaultError::Invalid(format!("page size must be 1 to {}", crate::MAX_PAGE)));
        }
        let entries = self.lock();
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        Ok(entries.range((start, Bound::Unbounded)).take(limit).map(|(a, e)| (a.clone(), e.clone())).collect())
    }
}
