//! Schema versions and migrations.
//!
//! The version is a number in the `meta` table. A new store gets [`CURRENT`]. An older
//! store runs each migration from its version up, all in one write transaction, so a
//! crash mid-migration leaves the old version intact. A newer store is refused: an old
//! binary must not guess at data it does not understand.
//!
//! History:
//! - 1: first release (jobs, file versions, blobs, events with four indexes, staff,
//!   workstations, confirmation tokens, mail outbox, printers, processing tasks).

use redb::{Database, ReadableTable, WriteTransaction};

use super::StoreError;
use super::tables::*;

/// The schema this binary writes.
pub const CURRENT: u64 = 1;

/// One step from `from` to `from + 1`.
pub struct Migration {
    pub from: u64,
    pub describe: &'static str,
    pub run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// The migrations, in order. Schema 1 is the first: nothing to migrate yet.
pub const MIGRATIONS: &[Migration] = &[];

/// Creates every table and brings the schema up to [`CURRENT`].
pub fn prepare(db: &Database) -> Result<(), StoreError> {
    prepare_with(db, CURRENT, MIGRATIONS)
}

/// [`prepare`] with an explicit target and migration list (tests use their own).
pub fn prepare_with(
    db: &Database,
    target: u64,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    create_tables(&txn)?;
    let found = txn
        .open_table(META)?
        .get("schema_version")?
        .map(|v| v.value());
    match found {
        None => {}
        Some(version) if version > target => {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known: target,
            });
        }
        Some(mut version) => {
            while version < target {
                let step = migrations.iter().find(|m| m.from == version);
                let Some(step) = step else {
                    return Err(StoreError::SchemaTooNew {
                        found: version,
                        known: target,
                    });
                };
                tracing::info!(from = version, "migrating store: {}", step.describe);
                (step.run)(&txn)?;
                version += 1;
            }
        }
    }
    txn.open_table(META)?.insert("schema_version", target)?;
    txn.commit()?;
    Ok(())
}

fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(JOBS)?;
    txn.open_table(JOBS_BY_STATUS)?;
    txn.open_multimap_table(JOBS_BY_HASH)?;
    txn.open_table(JOBS_BY_CREATED)?;
    txn.open_table(FILE_VERSIONS)?;
    txn.open_table(BLOBS)?;
    txn.open_table(EVENTS)?;
    txn.open_multimap_table(EVENTS_BY_JOB)?;
    txn.open_multimap_table(EVENTS_BY_STAFF)?;
    txn.open_multimap_table(EVENTS_BY_TYPE)?;
    txn.open_table(EVENTS_BY_TIME)?;
    txn.open_table(STAFF)?;
    txn.open_table(WORKSTATIONS)?;
    txn.open_table(CONFIRM_TOKENS)?;
    txn.open_table(MAIL_OUTBOX)?;
    txn.open_table(PRINTERS)?;
    txn.open_table(TASKS)?;
    txn.open_table(SECRETS)?;
    txn.open_table(PICKUP_REMINDERS)?;
    txn.open_table(MAIL_PENDING)?;
    super::mail::index_pending_mail(txn)?;
    txn.open_table(SYNC_OUTBOX)?;
    txn.open_table(SYNC_OBJECTS)?;
    txn.open_table(SYNC_STATUS)?;
    Ok(())
}
