//! Liveness probes of the store, for the systemd watchdog (`crate::service`).
//!
//! A probe is a real read transaction and a real write transaction on the same redb
//! file every request uses, so it blocks exactly when requests would: a stuck disk, a
//! write transaction that never ends, a dead lock. The caller puts a timeout around it.

use redb::{ReadableDatabase, ReadableTable};

use super::tables::META;
use super::{Store, StoreError};

impl Store {
    /// Reads the schema version, then bumps a counter in a write transaction.
    ///
    /// The write is not fsynced (`Durability::None`): the probe runs every few seconds
    /// for years on an SD card, and what it proves is that the write path is not stuck,
    /// not that the card persists (redb fsyncs every real commit anyway).
    pub fn probe(&self) -> Result<(), StoreError> {
        {
            let txn = self.db.begin_read()?;
            let meta = txn.open_table(META)?;
            meta.get("schema_version")?;
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        {
            let mut meta = txn.open_table(META)?;
            let probes = meta.get("watchdog_probes")?.map_or(0, |v| v.value());
            meta.insert("watchdog_probes", probes.wrapping_add(1))?;
        }
        txn.commit()?;
        Ok(())
    }

    /// DEBUG BUILDS ONLY, a fault for tests: opens a write transaction and never ends
    /// it, so every later write (requests, workers, [`Store::probe`]) blocks, as it
    /// would behind a disk that stopped answering. Blocks the calling thread forever.
    #[cfg(debug_assertions)]
    pub fn debug_hold_write_lock_forever(&self) -> Result<(), StoreError> {
        let _txn = self.db.begin_write()?;
        loop {
            std::thread::park();
        }
    }
}
