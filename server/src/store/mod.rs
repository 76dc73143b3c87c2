//! Implementations of the domain's store contracts: the in-memory ephemeral store and the SQLite
//! persistent store.

pub mod memory;
pub mod sqlite;
