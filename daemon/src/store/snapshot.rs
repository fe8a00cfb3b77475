//! A consistent copy of the whole database while the farm keeps running.
//!
//! redb has no online backup, and copying the file under a live writer could catch a
//! half-written commit. Instead one read transaction (a frozen view: later commits do
//! not change what it sees) is copied table by table into a fresh redb file. The list
//! of tables is [`copy_all`]'s; a test checks it names every table the store has, so a
//! table added later cannot be silently left out of backups.

use std::path::Path;

use redb::{
    Database, MultimapTableDefinition, ReadTransaction, ReadableDatabase, ReadableMultimapTable,
    ReadableTable, TableDefinition, WriteTransaction,
};

use super::tables::*;
use super::{Store, StoreError};

impl Store {
    /// Writes a snapshot of the store to `path` (a new redb file) and fsyncs it.
    pub fn snapshot_to(&self, path: &Path) -> Result<(), StoreError> {
        let source = self.db.begin_read()?;
        let target = Database::create(path)?;
        let txn = target.begin_write()?;
        copy_all(&source, &txn)?;
        txn.commit()?;
        drop(target);
        std::fs::File::open(path)?.sync_all()?;
        Ok(())
    }
}

fn copy_all(from: &ReadTransaction, to: &WriteTransaction) -> Result<(), StoreError> {
    copy(from, to, META)?;
    copy(from, to, JOBS)?;
    copy(from, to, JOBS_BY_STATUS)?;
    copy_multi(from, to, JOBS_BY_HASH)?;
    copy(from, to, JOBS_BY_CREATED)?;
    copy(from, to, FILE_VERSIONS)?;
    copy(from, to, BLOBS)?;
    copy(from, to, EVENTS)?;
    copy_multi(from, to, EVENTS_BY_JOB)?;
    copy_multi(from, to, EVENTS_BY_STAFF)?;
    copy_multi(from, to, EVENTS_BY_TYPE)?;
    copy(from, to, EVENTS_BY_TIME)?;
    copy(from, to, STAFF)?;
    copy(from, to, WORKSTATIONS)?;
    copy(from, to, CONFIRM_TOKENS)?;
    copy(from, to, MAIL_OUTBOX)?;
    copy(from, to, PRINTERS)?;
    copy(from, to, TASKS)?;
    copy(from, to, SECRETS)?;
    copy(from, to, MAIL_PENDING)?;
    copy(from, to, PICKUP_REMINDERS)?;
    copy(from, to, SYNC_OUTBOX)?;
    copy(from, to, SYNC_OBJECTS)?;
    copy(from, to, SYNC_STATUS)?;
    Ok(())
}

fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let source = from.open_table(table)?;
    let mut target = to.open_table(table)?;
    for row in source.iter()? {
        let (key, value) = row?;
        target.insert(key.value(), value.value())?;
    }
    Ok(())
}

fn copy_multi<K: redb::Key + 'static, V: redb::Key + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: MultimapTableDefinition<K, V>,
) -> Result<(), StoreError> {
    let source = from.open_multimap_table(table)?;
    let mut target = to.open_multimap_table(table)?;
    for row in source.iter()? {
        let (key, values) = row?;
        for value in values {
            target.insert(key.value(), value?.value())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{MultimapTableHandle, TableHandle};

    #[test]
    fn a_snapshot_holds_every_table_of_the_store() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("live")).expect("open");
        store
            .write(|ctx| ctx.set_meta("next_job_id", 42))
            .expect("write");
        let path = dir.path().join("snap.redb");
        store.snapshot_to(&path).expect("snapshot");
        let names = |db: &Database| -> Vec<String> {
            let txn = db.begin_read().expect("read");
            let mut names: Vec<String> = txn
                .list_tables()
                .expect("tables")
                .map(|t| t.name().to_string())
                .chain(
                    txn.list_multimap_tables()
                        .expect("multimap tables")
                        .map(|t| t.name().to_string()),
                )
                .collect();
            names.sort();
            names
        };
        let copy = Database::open(&path).expect("open snapshot");
        assert_eq!(
            names(&copy),
            names(&store.db),
            "add the new table to snapshot::copy_all"
        );
        let txn = copy.begin_read().expect("read");
        let meta = txn.open_table(META).expect("meta");
        assert_eq!(
            meta.get("next_job_id").expect("get").map(|v| v.value()),
            Some(42)
        );
    }
}
