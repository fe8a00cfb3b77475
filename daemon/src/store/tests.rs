use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::model::{Actor, EventDraft, EventType};

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
        .single()
        .expect("time")
        + Duration::minutes(minutes)
}

fn staff(name: &str) -> Actor {
    Actor::Staff {
        name: name.into(),
        workstation: "kiosk-1".into(),
    }
}

fn append(store: &Store, job: u64, actor: &Actor, kind: EventType, at: DateTime<Utc>) {
    store
        .write(|ctx| {
            let draft = EventDraft {
                event_type: kind,
                details: json!({}),
            };
            ctx.append_event(Some(JobId(job)), actor, draft, at)
                .map(|_| ())
        })
        .expect("append");
}

#[test]
fn events_are_found_through_each_index_oldest_first() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("open");
    append(&store, 1, &Actor::Student, EventType::JobCreated, t(0));
    append(&store, 1, &staff("Ada"), EventType::StaffApproved, t(1));
    append(&store, 2, &Actor::Student, EventType::JobCreated, t(2));
    append(&store, 2, &staff("Grace"), EventType::StaffRejected, t(3));
    append(&store, 1, &staff("Ada"), EventType::NotesUpdated, t(4));

    let query = |q: EventQuery| {
        let (events, _) = store
            .events(&EventQuery { limit: 100, ..q })
            .expect("query");
        events.iter().map(|e| e.id).collect::<Vec<_>>()
    };
    assert_eq!(
        query(EventQuery {
            job: Some(JobId(1)),
            ..Default::default()
        }),
        [1, 2, 5]
    );
    assert_eq!(
        query(EventQuery {
            staff: Some("Ada".into()),
            ..Default::default()
        }),
        [2, 5]
    );
    assert_eq!(
        query(EventQuery {
            event_type: Some("JobCreated".into()),
            ..Default::default()
        }),
        [1, 3]
    );
    assert_eq!(
        query(EventQuery {
            since: Some(t(3)),
            ..Default::default()
        }),
        [4, 5]
    );
    assert_eq!(
        query(EventQuery {
            job: Some(JobId(1)),
            staff: Some("Ada".into()),
            since: Some(t(2)),
            ..Default::default()
        }),
        [5]
    );
    // Paging: two at a time, following the cursor.
    let (page, cursor) = store
        .events(&EventQuery {
            limit: 2,
            ..Default::default()
        })
        .expect("page");
    assert_eq!(page.len(), 2);
    let (rest, end) = store
        .events(&EventQuery {
            limit: 10,
            after: cursor,
            ..Default::default()
        })
        .expect("rest");
    assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(end, None);
}

#[test]
fn a_store_from_a_newer_farmhand_is_refused_and_an_older_one_migrated() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("farmhand.redb");
    {
        let db = redb::Database::create(&path).expect("create");
        schema::prepare_with(&db, schema::CURRENT + 1, &[]).expect("prepare newer");
    }
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("newer Farmhand"), "{err}");

    // A synthetic older store walks through each migration once, in order.
    let old = tempfile::tempdir().expect("dir");
    let db = redb::Database::create(old.path().join("x.redb")).expect("create");
    schema::prepare_with(&db, 1, &[]).expect("v1");
    fn mark(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        let mut meta = txn.open_table(META)?;
        let runs = meta.get("migrations_run")?.map_or(0, |v| v.value());
        meta.insert("migrations_run", runs + 1)?;
        Ok(())
    }
    let steps = [
        schema::Migration {
            from: 1,
            describe: "one",
            run: mark,
        },
        schema::Migration {
            from: 2,
            describe: "two",
            run: mark,
        },
    ];
    schema::prepare_with(&db, 3, &steps).expect("migrate");
    let txn = db.begin_read().expect("read");
    let meta = txn.open_table(META).expect("meta");
    assert_eq!(
        meta.get("schema_version").expect("get").map(|v| v.value()),
        Some(3)
    );
    assert_eq!(
        meta.get("migrations_run").expect("get").map(|v| v.value()),
        Some(2)
    );
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("open");
    let result: Result<(), StoreError> = store.write(|ctx| {
        let draft = EventDraft {
            event_type: EventType::JobCreated,
            details: json!({}),
        };
        ctx.append_event(Some(JobId(1)), &Actor::Student, draft, t(0))?;
        Err(StoreError::Io(std::io::Error::other(
            "simulated failure after the event",
        )))
    });
    assert!(result.is_err());
    let (events, _) = store
        .events(&EventQuery {
            limit: 10,
            ..Default::default()
        })
        .expect("query");
    assert!(
        events.is_empty(),
        "the event must roll back with its transaction"
    );
}
