//! The conformance checks, one public async function each.
//!
//! [`conformance_suite!`](crate::conformance_suite) turns them into tests;
//! call them directly to run a single check or to wrap one in set-up of your
//! own. Each takes a fresh store behind an [`Arc`] (an `Arc<S>` is a store
//! too) and panics with a message naming the broken rule.

use std::{collections::HashSet, sync::Arc, time::Duration as StdDuration};

use serde_json::{json, Value};
use session_core::{
    time::{Duration, OffsetDateTime, UtcOffset},
    Data, ExpiredDeletion, Id, Record, SessionStore,
};
use tokio::{sync::Barrier, task::JoinSet};

/// How a store removes expired records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// `delete_expired` removes expired records and returns exactly how many.
    Exact,
    /// The backend expires records by itself; `delete_expired` may return 0
    /// but never more than there were.
    Native,
}

/// Now, truncated to the microsecond: the precision every store keeps.
pub fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// A record expiring `ttl` from now (microsecond precision) holding `data`.
pub fn record_expiring_in(ttl: Duration, data: Value) -> Record {
    let mut record = Record::new(now_micros() + ttl);
    record.data = to_data(data);
    record
}

fn to_data(value: Value) -> Data {
    match value {
        Value::Object(map) => map.into_iter().collect(),
        other => panic!("session data must be a JSON object, got {other}"),
    }
}

const HOUR: Duration = Duration::hours(1);

async fn must_load<S: SessionStore>(store: &S, id: &Id) -> Record {
    match store.load(id).await {
        Ok(Some(record)) => record,
        Ok(None) => panic!("record {id} should load but is missing"),
        Err(error) => panic!("load of {id} failed: {error}"),
    }
}

async fn must_be_gone<S: SessionStore>(store: &S, id: &Id, why: &str) {
    match store.load(id).await {
        Ok(None) => {}
        Ok(Some(record)) => panic!("{why}: load returned {record:?}"),
        Err(error) => panic!("{why}: load failed: {error}"),
    }
}

async fn must_create<S: SessionStore>(store: &S, record: &mut Record) {
    if let Err(error) = store.create(record).await {
        panic!("create failed: {error}");
    }
}

async fn must_save<S: SessionStore>(store: &S, record: &Record) {
    if let Err(error) = store.save(record).await {
        panic!("save failed: {error}");
    }
}

/// `create` stores the record under its id; `load` returns it whole.
pub async fn create_stores_a_loadable_record<S: SessionStore>(store: Arc<S>) {
    let mut record = record_expiring_in(HOUR, json!({"user": "ferris", "visits": 3}));
    must_create(&*store, &mut record).await;
    assert_eq!(must_load(&*store, &record.id).await, record);
}

/// Nested JSON with unicode keys, big integers, exact floats, nulls and
/// arrays comes back equal.
pub async fn round_trip_keeps_nested_json<S: SessionStore>(store: Arc<S>) {
    let mut record = record_expiring_in(
        HOUR,
        json!({
            "ünïcödé ключ 鍵 🔑": "välue ✓",
            "": "empty key",
            "quotes \"'`\\; DROP TABLE": "NUL \u{0} inside, and \n newlines \t tabs",
            "ints": [0, -1, i64::MAX, i64::MIN, u64::MAX],
            "floats": [0.1, 1.5, 2.0, -3.25, 1e-300, f64::MAX, f64::MIN_POSITIVE, 5e-324],
            "null": null,
            "bools": [true, false],
            "empty": {"array": [], "object": {}, "string": ""},
            "nested": {"a": {"b": {"c": {"d": [1, [2, [3, [4, {"e": null}]]]]}}}},
            "mixed": [1, "two", 3.5, null, {"k": "v"}, [true]],
        }),
    );
    must_create(&*store, &mut record).await;
    let loaded = must_load(&*store, &record.id).await;
    for (key, value) in &record.data {
        assert_eq!(
            loaded.data.get(key),
            Some(value),
            "value of key {key:?} changed"
        );
    }
    assert_eq!(loaded, record);
}

/// `create` with an id that exists leaves the existing record alone and gives
/// the new record a fresh id.
pub async fn create_never_overwrites_an_existing_id<S: SessionStore>(store: Arc<S>) {
    let mut first = record_expiring_in(HOUR, json!({"owner": "first"}));
    must_create(&*store, &mut first).await;

    let mut second = record_expiring_in(HOUR, json!({"owner": "second"}));
    second.id = first.id;
    must_create(&*store, &mut second).await;

    assert_ne!(
        second.id, first.id,
        "create must assign a fresh id on collision"
    );
    assert_eq!(
        must_load(&*store, &first.id).await,
        first,
        "existing record was overwritten"
    );
    assert_eq!(must_load(&*store, &second.id).await, second);
}

/// Many tasks creating records that all start with the same free id end
/// with distinct ids, each holding its own data: exactly one of them keeps the
/// id. A create that checks and then inserts, instead of inserting if absent,
/// lets two tasks both take the id.
pub async fn concurrent_creates_with_one_id_get_distinct_ids<S: SessionStore>(store: Arc<S>) {
    const TASKS: usize = 32;
    let shared = Id::default();
    // Every task starts its create at the same moment, so a race in the
    // store has the widest window to show.
    let start = Arc::new(Barrier::new(TASKS));

    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        let start = Arc::clone(&start);
        tasks.spawn(async move {
            let mut record = record_expiring_in(HOUR, json!({ "task": task }));
            record.id = shared;
            start.wait().await;
            must_create(&*store, &mut record).await;
            record
        });
    }
    let mut records = Vec::new();
    let mut ids = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let record = joined.expect("create task panicked");
        assert!(
            ids.insert(record.id),
            "two creates ended with the same id {}",
            record.id
        );
        records.push(record);
    }
    assert!(
        ids.contains(&shared),
        "no create kept the free id it asked for"
    );
    for record in &records {
        assert_eq!(
            must_load(&*store, &record.id).await,
            *record,
            "a concurrent create's record was overwritten"
        );
    }
}

/// `save` of a record that was never created inserts it.
pub async fn save_inserts_without_create<S: SessionStore>(store: Arc<S>) {
    let record = record_expiring_in(HOUR, json!({"saved": true}));
    must_save(&*store, &record).await;
    assert_eq!(must_load(&*store, &record.id).await, record);
}

/// `save` replaces the whole record: keys removed stay removed, and the new
/// expiry date (later or earlier) is the one that counts.
pub async fn save_upserts_data_and_expiry<S: SessionStore>(store: Arc<S>) {
    let mut record = record_expiring_in(HOUR, json!({"a": 1, "b": 2}));
    must_create(&*store, &mut record).await;

    record.data = to_data(json!({"b": 3, "c": [4]}));
    record.expiry_date = now_micros() + Duration::days(30);
    must_save(&*store, &record).await;
    assert_eq!(must_load(&*store, &record.id).await, record);

    record.expiry_date = now_micros() + Duration::minutes(5);
    must_save(&*store, &record).await;
    assert_eq!(must_load(&*store, &record.id).await, record);

    // Saving an expiry in the past ends the session.
    record.expiry_date = now_micros() - Duration::minutes(5);
    must_save(&*store, &record).await;
    must_be_gone(
        &*store,
        &record.id,
        "a record saved with a past expiry must not load",
    )
    .await;
}

/// `load` of an id that was never stored is `None`.
pub async fn load_of_missing_id_is_none<S: SessionStore>(store: Arc<S>) {
    must_be_gone(&*store, &Id::default(), "an unknown id must not load").await;
}

/// A record whose expiry date has passed, or is exactly now, is not returned
/// even though nothing deleted it.
pub async fn load_of_expired_record_is_none<S: SessionStore>(store: Arc<S>) {
    let long_gone = record_expiring_in(-Duration::days(400), json!({"k": "v"}));
    must_save(&*store, &long_gone).await;
    must_be_gone(
        &*store,
        &long_gone.id,
        "a record expired long ago must not load",
    )
    .await;

    let just_gone = record_expiring_in(-Duration::seconds(1), json!({"k": "v"}));
    must_save(&*store, &just_gone).await;
    must_be_gone(
        &*store,
        &just_gone.id,
        "a record expired a second ago must not load",
    )
    .await;

    // Expiry "now": by the time the store looks, it is not in the future.
    let now = record_expiring_in(Duration::ZERO, json!({"k": "v"}));
    must_save(&*store, &now).await;
    must_be_gone(&*store, &now.id, "a record expiring now must not load").await;

    let mut expired_on_create = record_expiring_in(-HOUR, json!({"k": "v"}));
    must_create(&*store, &mut expired_on_create).await;
    must_be_gone(
        &*store,
        &expired_on_create.id,
        "an expired record created must not load",
    )
    .await;
}

/// A record loads until its expiry date and not after it.
pub async fn expiry_boundary_is_respected<S: SessionStore>(store: Arc<S>) {
    // Whole seconds of lead time: some backends keep a TTL in seconds.
    let ttl = Duration::milliseconds(2_000);
    let mut record = record_expiring_in(ttl, json!({"short": "lived"}));
    must_create(&*store, &mut record).await;
    assert_eq!(must_load(&*store, &record.id).await, record);

    sleep_until(record.expiry_date - Duration::milliseconds(700)).await;
    assert_eq!(
        must_load(&*store, &record.id).await,
        record,
        "record must load shortly before its expiry date"
    );

    sleep_until(record.expiry_date + Duration::milliseconds(300)).await;
    must_be_gone(
        &*store,
        &record.id,
        "record must not load after its expiry date",
    )
    .await;
}

async fn sleep_until(instant: OffsetDateTime) {
    let wait = instant - OffsetDateTime::now_utc();
    if wait.is_positive() {
        tokio::time::sleep(StdDuration::from_micros(wait.whole_microseconds() as u64)).await;
    }
}

/// Expiry dates in any UTC offset mean the same instant: a past instant
/// written in a zone whose wall clock is ahead is still expired, and a future
/// one in a zone behind is still active.
pub async fn expiry_dates_with_non_utc_offsets<S: SessionStore>(store: Arc<S>) {
    let offsets = [(14, 0, 0), (5, 30, 0), (-3, -30, 0), (-12, 0, 0), (0, 0, 1)];
    for (hours, minutes, seconds) in offsets {
        let offset = UtcOffset::from_hms(hours, minutes, seconds).expect("valid offset");
        let mut future = record_expiring_in(HOUR, json!({ "offset": offset.to_string() }));
        future.expiry_date = future.expiry_date.to_offset(offset);
        must_save(&*store, &future).await;
        assert_eq!(
            must_load(&*store, &future.id).await,
            future,
            "future expiry written at offset {offset} must load unchanged"
        );

        let mut past = record_expiring_in(-HOUR, json!({ "offset": offset.to_string() }));
        past.expiry_date = past.expiry_date.to_offset(offset);
        must_save(&*store, &past).await;
        must_be_gone(
            &*store,
            &past.id,
            &format!("past expiry written at offset {offset} must not load"),
        )
        .await;
    }
}

/// Expiry dates keep their microseconds through a store.
pub async fn timestamps_keep_microseconds<S: SessionStore>(store: Arc<S>) {
    let mut record = record_expiring_in(HOUR, json!({}));
    record.expiry_date = record
        .expiry_date
        .replace_microsecond(123_457)
        .expect("valid microsecond");
    must_save(&*store, &record).await;
    let loaded = must_load(&*store, &record.id).await;
    assert_eq!(
        loaded.expiry_date, record.expiry_date,
        "expiry date lost precision"
    );
}

/// `delete` of a missing id is fine; a deleted record is gone; deleting it
/// again is fine.
pub async fn delete_is_idempotent<S: SessionStore>(store: Arc<S>) {
    if let Err(error) = store.delete(&Id::default()).await {
        panic!("delete of a missing id must be Ok: {error}");
    }
    let mut record = record_expiring_in(HOUR, json!({"k": 1}));
    must_create(&*store, &mut record).await;
    store.delete(&record.id).await.expect("delete");
    must_be_gone(&*store, &record.id, "a deleted record must not load").await;
    store
        .delete(&record.id)
        .await
        .expect("second delete must be Ok");
}

/// Deleting one session leaves the others alone.
pub async fn delete_leaves_other_sessions<S: SessionStore>(store: Arc<S>) {
    let mut records = Vec::new();
    for i in 0..5 {
        let mut record = record_expiring_in(HOUR, json!({ "i": i }));
        must_create(&*store, &mut record).await;
        records.push(record);
    }
    store.delete(&records[2].id).await.expect("delete");
    for (i, record) in records.iter().enumerate() {
        if i == 2 {
            must_be_gone(&*store, &record.id, "deleted record must not load").await;
        } else {
            assert_eq!(must_load(&*store, &record.id).await, *record);
        }
    }
}

/// Records from empty to 1 MiB of data round-trip, past the 64 KiB limit of
/// some column types.
pub async fn payloads_from_empty_to_one_mib<S: SessionStore>(store: Arc<S>) {
    let sizes = [0usize, 1, 1_024, 70_000, 1 << 20];
    for size in sizes {
        let data = if size == 0 {
            json!({})
        } else {
            // Varied text so compression or deduplication cannot hide a
            // truncation.
            let blob: String = (0..size)
                .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
                .collect();
            json!({ "blob": blob })
        };
        let mut record = record_expiring_in(HOUR, data);
        must_create(&*store, &mut record).await;
        let loaded = must_load(&*store, &record.id).await;
        assert!(
            loaded == record,
            "a payload of {size} bytes did not round-trip"
        );
    }
}

/// Concurrent saves of one id leave exactly one of the saved versions, never
/// a mix of two, and every load in between sees a whole version.
pub async fn concurrent_saves_leave_one_whole_version<S: SessionStore>(store: Arc<S>) {
    const WRITERS: usize = 16;
    const ROUNDS: usize = 10;
    const KEYS: usize = 24;
    let id = Id::default();

    fn version(id: Id, writer: usize, round: usize) -> Record {
        let tag = format!("{writer}-{round}");
        let data = (0..KEYS)
            .map(|k| (format!("key{k}"), Value::String(tag.clone())))
            .collect();
        Record {
            id,
            data,
            expiry_date: now_micros() + HOUR,
        }
    }

    fn assert_whole(record: &Record) {
        let first = record.data.get("key0").expect("key0 present");
        assert_eq!(record.data.len(), KEYS, "a version lost or gained keys");
        for value in record.data.values() {
            assert_eq!(value, first, "a load saw two versions mixed: {record:?}");
        }
    }

    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for round in 0..ROUNDS {
                must_save(&*store, &version(id, writer, round)).await;
                if let Some(seen) = store.load(&id).await.expect("load during saves") {
                    assert_whole(&seen);
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("writer task panicked");
    }
    assert_whole(&must_load(&*store, &id).await);
}

/// `delete_expired` removes the expired records (and reports how many, for
/// [`Sweep::Exact`]) and leaves the active ones loadable.
pub async fn delete_expired_removes_exactly_the_expired<S: ExpiredDeletion>(
    store: Arc<S>,
    sweep: Sweep,
) {
    let mut active = Vec::new();
    for i in 0..4 {
        let mut record = record_expiring_in(HOUR + Duration::seconds(i), json!({ "i": i }));
        must_create(&*store, &mut record).await;
        active.push(record);
    }
    let mut expired = Vec::new();
    for i in 0..3 {
        let record = record_expiring_in(-Duration::seconds(i + 1), json!({ "i": i }));
        must_save(&*store, &record).await;
        expired.push(record);
    }

    let removed = match store.delete_expired().await {
        Ok(removed) => removed,
        Err(error) => panic!("delete_expired failed: {error}"),
    };
    match sweep {
        Sweep::Exact => assert_eq!(removed, 3, "delete_expired must count what it removed"),
        Sweep::Native => assert!(
            removed <= 3,
            "delete_expired removed {removed} of 3 expired"
        ),
    }
    for record in &active {
        assert_eq!(
            must_load(&*store, &record.id).await,
            *record,
            "an active record was swept"
        );
    }
    for record in &expired {
        must_be_gone(&*store, &record.id, "an expired record survived the sweep").await;
    }
    let again = store.delete_expired().await.expect("second sweep");
    assert_eq!(
        again, 0,
        "a second sweep found {again} more expired records"
    );
}

/// A sweep of a store with nothing expired removes nothing.
pub async fn delete_expired_of_nothing_is_zero<S: ExpiredDeletion>(store: Arc<S>, _sweep: Sweep) {
    assert_eq!(
        store
            .delete_expired()
            .await
            .expect("sweep of an empty store"),
        0
    );
    let mut record = record_expiring_in(HOUR, json!({"k": "v"}));
    must_create(&*store, &mut record).await;
    assert_eq!(store.delete_expired().await.expect("sweep"), 0);
    assert_eq!(must_load(&*store, &record.id).await, record);
}
