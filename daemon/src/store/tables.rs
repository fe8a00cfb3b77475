//! Every redb table, in one place, so the on-disk layout reads like a schema.
//!
//! Values are JSON (serde) so fields can be added without a migration; keys are typed.
//! Secondary indexes are separate tables written in the same transaction as the row
//! they index. The layout is described in `docs/store.md`.

use redb::{MultimapTableDefinition, TableDefinition};

/// `schema_version`, `next_job_id`, `next_event_id`, `next_mail_id`, `staff_seeded`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// job id → Job (JSON).
pub const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
/// (status index key, job id) → ().
pub const JOBS_BY_STATUS: TableDefinition<(u8, u64), ()> = TableDefinition::new("jobs_by_status");
/// file SHA-256 (hex) → job ids that use it (any version).
pub const JOBS_BY_HASH: MultimapTableDefinition<&str, u64> =
    MultimapTableDefinition::new("jobs_by_hash");
/// (created_at µs, job id) → ().
pub const JOBS_BY_CREATED: TableDefinition<(i64, u64), ()> =
    TableDefinition::new("jobs_by_created");
/// (job id, version) → FileVersion (JSON).
pub const FILE_VERSIONS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("file_versions");
/// blob SHA-256 (hex) → size in bytes: the blobs the store vouches for.
pub const BLOBS: TableDefinition<&str, u64> = TableDefinition::new("blobs");

/// event id → Event (JSON). Append-only: no code path updates or removes a row.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub const EVENTS_BY_JOB: MultimapTableDefinition<u64, u64> =
    MultimapTableDefinition::new("events_by_job");
pub const EVENTS_BY_STAFF: MultimapTableDefinition<&str, u64> =
    MultimapTableDefinition::new("events_by_staff");
pub const EVENTS_BY_TYPE: MultimapTableDefinition<&str, u64> =
    MultimapTableDefinition::new("events_by_type");
/// (timestamp µs, event id) → ().
pub const EVENTS_BY_TIME: TableDefinition<(i64, u64), ()> = TableDefinition::new("events_by_time");

/// staff name → StaffMember (JSON).
pub const STAFF: TableDefinition<&str, &[u8]> = TableDefinition::new("staff");
/// workstation id → WorkstationRecord (JSON; the token only as its SHA-256).
pub const WORKSTATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("workstations");
/// SHA-256 of a confirmation token (hex) → ConfirmationToken (JSON).
pub const CONFIRM_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("confirm_tokens");
/// mail id → OutboxMail (JSON).
pub const MAIL_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("mail_outbox");
/// printer id → PrinterRecord (JSON).
pub const PRINTERS: TableDefinition<&str, &[u8]> = TableDefinition::new("printers");

/// task id → Task (JSON): the durable processing queue.
pub const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");

/// name → secret bytes made once per store (`status_links`: the HMAC key of the
/// students' status-page links).
pub const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// mail id → (): the outbox rows not yet sent or failed, so the worker does not read
/// every mail ever sent on each pass. Written by `WriteCtx::put_mail` only.
pub const MAIL_PENDING: TableDefinition<u64, ()> = TableDefinition::new("mail_pending");
/// job id → PickupReminder (JSON): when the next "still waiting for you" mail is due.
pub const PICKUP_REMINDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("pickup_reminders");
/// job id → SyncEntry (JSON): the cloud-sync outbox, one coalesced row per changed job.
pub const SYNC_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("sync_outbox");
/// bucket object path → SHA-256 it holds: what this store already put in the bucket.
pub const SYNC_OBJECTS: TableDefinition<&str, &str> = TableDefinition::new("sync_objects");
/// `bucket`, `last_success`, `last_error`, `last_snapshot` → JSON: the sync worker's state.
pub const SYNC_STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("sync_status");
