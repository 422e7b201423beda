//! The conformance checks, one public async function each.
//!
//! [`conformance_suite!`](crate::conformance_suite) turns them into tests;
//! call them directly to run a single check or to wrap one in set-up of your
//! own. Each takes a fresh store behind an [`Arc`] (an `Arc<S>` is a store
//! too) and panics with a message naming the broken rule.

use std::{collections::HashSet, sync::Arc, time::Duration as StdDuration};

use serde_json::{json, Value};
use session_core::{
    support::MAX_VERSION,
    time::{Duration, OffsetDateTime, UtcOffset},
    Data, ExpiredDeletion, Id, Record, SessionStore, Update,
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
            version: 0,
            user_id: None,
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

// ---------------------------------------------------------------------------
// Contract version 2: versions, `update`, `touch` and the user index.
// ---------------------------------------------------------------------------

async fn must_update<S: SessionStore>(store: &S, record: &mut Record) -> Update {
    match store.update(record).await {
        Ok(update) => update,
        Err(error) => panic!("update failed: {error}"),
    }
}

async fn must_touch<S: SessionStore>(store: &S, id: &Id, expiry_date: OffsetDateTime) -> bool {
    match store.touch(id, expiry_date).await {
        Ok(touched) => touched,
        Err(error) => panic!("touch failed: {error}"),
    }
}

async fn must_list<S: SessionStore>(store: &S, user_id: &str) -> Vec<Record> {
    match store.sessions_of_user(user_id).await {
        Ok(mut records) => {
            records.sort_by_key(|r| r.id.0);
            records
        }
        Err(error) => panic!("sessions_of_user({user_id:?}) failed: {error}"),
    }
}

fn sorted(mut records: Vec<Record>) -> Vec<Record> {
    records.sort_by_key(|r| r.id.0);
    records
}

fn of_user(user: &str, data: Value) -> Record {
    let mut record = record_expiring_in(HOUR, data);
    record.user_id = Some(user.to_owned());
    record
}

/// A record's version and user come back as stored, through `create` and
/// `save` alike.
pub async fn version_and_user_round_trip<S: SessionStore>(store: Arc<S>) {
    let mut created = of_user("ünï user: \"quoted\" 🔑", json!({"k": 1}));
    must_create(&*store, &mut created).await;
    assert_eq!(
        must_load(&*store, &created.id).await,
        created,
        "a created record with a user must load unchanged"
    );
    assert_eq!(created.version, 0, "create must not change the version");

    let mut saved = record_expiring_in(HOUR, json!({"k": 2}));
    saved.version = 41;
    must_save(&*store, &saved).await;
    assert_eq!(
        must_load(&*store, &saved.id).await,
        saved,
        "save must keep the version as given"
    );
    saved.version = 3;
    saved.user_id = Some("someone".into());
    must_save(&*store, &saved).await;
    assert_eq!(
        must_load(&*store, &saved.id).await,
        saved,
        "save must replace version and user as given"
    );
}

/// `update` over the stored version writes the whole record and bumps the
/// version by one, in the store and in the caller's record.
pub async fn update_writes_and_bumps_the_version<S: SessionStore>(store: Arc<S>) {
    let mut record = record_expiring_in(HOUR, json!({"a": 1, "b": 2}));
    must_create(&*store, &mut record).await;

    record.data = to_data(json!({"b": 3, "c": [4]}));
    record.expiry_date = now_micros() + Duration::days(3);
    record.user_id = Some("ferris".into());
    assert_eq!(must_update(&*store, &mut record).await, Update::Written);
    assert_eq!(record.version, 1, "update must bump the caller's version");
    assert_eq!(
        must_load(&*store, &record.id).await,
        record,
        "update must store the whole record at the next version"
    );

    record.data.remove("b");
    record.expiry_date = now_micros() + Duration::minutes(5);
    record.user_id = None;
    assert_eq!(must_update(&*store, &mut record).await, Update::Written);
    assert_eq!(record.version, 2);
    assert_eq!(
        must_load(&*store, &record.id).await,
        record,
        "an update may shorten the expiry and clear the user"
    );
}

/// `update` with a version that is no longer the stored one writes nothing
/// and returns the stored record.
pub async fn update_with_a_stale_version_conflicts<S: SessionStore>(store: Arc<S>) {
    let mut record = record_expiring_in(HOUR, json!({"n": 0}));
    must_create(&*store, &mut record).await;
    let mut first = record.clone();
    let mut second = record.clone();

    first.data.insert("n".into(), json!(1));
    assert_eq!(must_update(&*store, &mut first).await, Update::Written);

    second.data.insert("n".into(), json!(2));
    match must_update(&*store, &mut second).await {
        Update::Conflict(current) => assert_eq!(
            current, first,
            "a conflict must return the record as stored now"
        ),
        other => panic!("an update over a stale version must conflict, got {other:?}"),
    }
    assert_eq!(
        second.version, 0,
        "a conflicting update must leave the caller's version alone"
    );
    assert_eq!(
        must_load(&*store, &record.id).await,
        first,
        "a conflicting update must not write"
    );

    // A version ahead of the stored one conflicts too.
    let mut ahead = first.clone();
    ahead.version += 5;
    assert!(
        must_update(&*store, &mut ahead).await.is_conflict(),
        "an update over a version the store never had must conflict"
    );
    assert_eq!(must_load(&*store, &record.id).await, first);
}

/// `update` never creates a record: not for an unknown id, not after a
/// delete, not over an expired record.
pub async fn update_never_creates<S: SessionStore>(store: Arc<S>) {
    let mut unknown = record_expiring_in(HOUR, json!({"k": "v"}));
    assert_eq!(
        must_update(&*store, &mut unknown).await,
        Update::Gone,
        "an update of an unknown id must be Gone"
    );
    must_be_gone(&*store, &unknown.id, "an update must not create a record").await;

    let mut deleted = record_expiring_in(HOUR, json!({"k": "v"}));
    must_create(&*store, &mut deleted).await;
    store.delete(&deleted.id).await.expect("delete");
    assert_eq!(
        must_update(&*store, &mut deleted).await,
        Update::Gone,
        "an update after a delete must be Gone"
    );
    must_be_gone(
        &*store,
        &deleted.id,
        "an update must not bring back a deleted record",
    )
    .await;

    let mut expired = record_expiring_in(-Duration::seconds(5), json!({"k": "v"}));
    must_save(&*store, &expired).await;
    expired.expiry_date = now_micros() + HOUR;
    assert_eq!(
        must_update(&*store, &mut expired).await,
        Update::Gone,
        "an update over an expired record must be Gone"
    );
    must_be_gone(
        &*store,
        &expired.id,
        "an update must not bring back an expired record",
    )
    .await;
}

/// Of many updates over one version at once, exactly one is written; every
/// other conflicts and sees the winner. An update that reads, then writes,
/// lets several win.
pub async fn concurrent_updates_of_one_version_write_once<S: SessionStore>(store: Arc<S>) {
    const TASKS: usize = 16;
    let mut record = record_expiring_in(HOUR, json!({"writer": null}));
    must_create(&*store, &mut record).await;
    let start = Arc::new(Barrier::new(TASKS));

    let mut tasks = JoinSet::new();
    for writer in 0..TASKS {
        let store = Arc::clone(&store);
        let start = Arc::clone(&start);
        let mut mine = record.clone();
        mine.data.insert("writer".into(), json!(writer));
        tasks.spawn(async move {
            start.wait().await;
            let update = must_update(&*store, &mut mine).await;
            (mine, update)
        });
    }
    let mut winners = Vec::new();
    let mut conflicts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("update task panicked") {
            (mine, Update::Written) => winners.push(mine),
            (_, Update::Conflict(current)) => conflicts.push(current),
            (_, other) => panic!("a concurrent update of a live record returned {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{} concurrent updates of one version were written",
        winners.len()
    );
    let winner = &winners[0];
    assert_eq!(winner.version, 1);
    assert_eq!(must_load(&*store, &record.id).await, *winner);
    for current in conflicts {
        assert_eq!(
            current, *winner,
            "a conflict must return the winning record"
        );
    }
}

/// Updates racing with a delete never leave the session alive: whichever
/// comes first, the delete is final. Several writers keep updating (merging
/// on conflict) until they see `Gone`; the delete lands among them. An
/// update that reads, then writes, brings the session back when the delete
/// falls in between.
pub async fn concurrent_update_and_delete_never_resurrect<S: SessionStore>(store: Arc<S>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    const ROUNDS: usize = 4;
    const WRITERS: usize = 4;
    const MAX_UPDATES: usize = 200;
    for round in 0..ROUNDS {
        let mut record = record_expiring_in(HOUR, json!({ "round": round }));
        must_create(&*store, &mut record).await;
        let written = Arc::new(AtomicU64::new(0));
        let mut writers = JoinSet::new();
        for writer in 0..WRITERS {
            let store = Arc::clone(&store);
            let written = Arc::clone(&written);
            let mut mine = record.clone();
            writers.spawn(async move {
                for update in 0..MAX_UPDATES {
                    mine.data.insert(format!("w{writer}"), json!(update));
                    match must_update(&*store, &mut mine).await {
                        Update::Written => {
                            written.fetch_add(1, Ordering::SeqCst);
                        }
                        Update::Conflict(current) => {
                            let data = mine.data.clone();
                            mine = current;
                            mine.data.extend(data);
                        }
                        _ => return,
                    }
                }
            });
        }
        // Delete once the writers are busy.
        while written.load(Ordering::SeqCst) < WRITERS as u64 && !writers.is_empty() {
            tokio::task::yield_now().await;
            if let Some(Ok(())) = writers.try_join_next() {}
        }
        store
            .delete(&record.id)
            .await
            .expect("delete during updates");
        while let Some(joined) = writers.join_next().await {
            joined.expect("update task panicked");
        }
        must_be_gone(
            &*store,
            &record.id,
            "an update racing a delete brought the session back",
        )
        .await;
    }
}

/// A version can reach [`MAX_VERSION`] and no further: the update past it
/// is an encode error and writes nothing.
pub async fn versions_stop_at_the_maximum<S: SessionStore>(store: Arc<S>) {
    let mut record = record_expiring_in(HOUR, json!({"k": 1}));
    record.version = MAX_VERSION - 1;
    must_save(&*store, &record).await;
    assert_eq!(must_update(&*store, &mut record).await, Update::Written);
    assert_eq!(record.version, MAX_VERSION);
    assert_eq!(must_load(&*store, &record.id).await, record);

    let mut past = record.clone();
    past.data.insert("k".into(), json!(2));
    match store.update(&mut past).await {
        Err(error) if error.is_encode() => {}
        other => {
            panic!("an update past the highest version must be an encode error, got {other:?}")
        }
    }
    assert_eq!(
        must_load(&*store, &record.id).await,
        record,
        "a refused update must not write"
    );
}

/// `touch` moves the expiry date forward, never backward, and leaves data
/// and version alone.
pub async fn touch_moves_expiry_forward_only<S: SessionStore>(store: Arc<S>) {
    let mut record = record_expiring_in(HOUR, json!({"k": "v"}));
    must_create(&*store, &mut record).await;
    record.data.insert("k".into(), json!("w"));
    assert_eq!(must_update(&*store, &mut record).await, Update::Written);

    let later = now_micros() + Duration::days(2);
    assert!(
        must_touch(&*store, &record.id, later).await,
        "touch of an active record must be true"
    );
    let touched = must_load(&*store, &record.id).await;
    assert_eq!(
        touched.expiry_date, later,
        "touch must move the expiry date"
    );
    assert_eq!(
        (touched.data, touched.version, touched.user_id),
        (record.data.clone(), record.version, record.user_id.clone()),
        "touch must not change data, version or user"
    );

    assert!(
        must_touch(&*store, &record.id, now_micros() + Duration::minutes(1)).await,
        "touch of an active record with an earlier date must still be true"
    );
    assert_eq!(
        must_load(&*store, &record.id).await.expiry_date,
        later,
        "touch must never move the expiry date backward"
    );

    // The version did not move, so an update over it goes through.
    record.expiry_date = later;
    assert_eq!(
        must_update(&*store, &mut record).await,
        Update::Written,
        "touch must not change the version"
    );
}

/// `touch` of a missing, deleted or expired id is `false` and brings
/// nothing back.
pub async fn touch_of_missing_or_expired_is_false<S: SessionStore>(store: Arc<S>) {
    let later = now_micros() + HOUR;
    assert!(
        !must_touch(&*store, &Id::default(), later).await,
        "touch of an unknown id must be false"
    );
    must_be_gone(&*store, &Id::default(), "touch must not create a record").await;

    let mut deleted = record_expiring_in(HOUR, json!({}));
    must_create(&*store, &mut deleted).await;
    store.delete(&deleted.id).await.expect("delete");
    assert!(
        !must_touch(&*store, &deleted.id, later).await,
        "touch of a deleted id must be false"
    );
    must_be_gone(
        &*store,
        &deleted.id,
        "touch must not bring back a deleted record",
    )
    .await;

    let expired = record_expiring_in(-Duration::seconds(5), json!({}));
    must_save(&*store, &expired).await;
    assert!(
        !must_touch(&*store, &expired.id, later).await,
        "touch of an expired record must be false"
    );
    must_be_gone(
        &*store,
        &expired.id,
        "touch must not bring back an expired record",
    )
    .await;
}

/// `touch_many` moves each active record forward (never backward) and says
/// which ids had an active record, in order.
pub async fn touch_many_answers_in_order<S: SessionStore>(store: Arc<S>) {
    let mut first = record_expiring_in(HOUR, json!({"n": 1}));
    must_create(&*store, &mut first).await;
    let mut second = record_expiring_in(Duration::days(3), json!({"n": 2}));
    must_create(&*store, &mut second).await;
    let expired = record_expiring_in(-Duration::seconds(5), json!({}));
    must_save(&*store, &expired).await;

    let later = now_micros() + Duration::days(1);
    let touched = match store
        .touch_many(&[
            (first.id, later),
            (Id::default(), later),
            (second.id, later),
            (expired.id, later),
        ])
        .await
    {
        Ok(touched) => touched,
        Err(error) => panic!("touch_many failed: {error}"),
    };
    assert_eq!(
        touched,
        [true, false, true, false],
        "touch_many must say, in order, which ids had an active record"
    );
    assert_eq!(must_load(&*store, &first.id).await.expiry_date, later);
    assert_eq!(
        must_load(&*store, &second.id).await.expiry_date,
        second.expiry_date,
        "touch_many must never move an expiry date backward"
    );
    must_be_gone(
        &*store,
        &expired.id,
        "touch_many must not bring back an expired record",
    )
    .await;
    assert_eq!(
        store.touch_many(&[]).await.expect("touch_many of nothing"),
        Vec::<bool>::new()
    );
}

/// `sessions_of_user` lists exactly the user's active sessions, however
/// they got the user (`create`, `save`, `update`), and `user_id`s are
/// matched exactly, as opaque text.
pub async fn sessions_of_user_lists_exactly_theirs<S: SessionStore>(store: Arc<S>) {
    let alice = "alice";
    let mut created = of_user(alice, json!({"via": "create"}));
    must_create(&*store, &mut created).await;
    let saved = of_user(alice, json!({"via": "save"}));
    must_save(&*store, &saved).await;
    let mut updated = record_expiring_in(HOUR, json!({"via": "update"}));
    must_create(&*store, &mut updated).await;
    updated.user_id = Some(alice.into());
    assert_eq!(must_update(&*store, &mut updated).await, Update::Written);

    let mut expired = of_user(alice, json!({"via": "expired"}));
    expired.expiry_date = now_micros() - Duration::seconds(1);
    must_save(&*store, &expired).await;
    let mut nobody = record_expiring_in(HOUR, json!({}));
    must_create(&*store, &mut nobody).await;

    // Users whose names a pattern or a prefix match would confuse with
    // alice's, or with each other.
    let lookalikes = [
        "Alice",
        "alice ",
        "alice*",
        "alic?",
        "alic%",
        "alice:1",
        "al_ce",
        "",
        "*",
        "%",
        "a'lice\"; --",
        "ålice",
    ];
    let mut others = Vec::new();
    for user in lookalikes {
        let mut record = of_user(user, json!({ "user": user }));
        must_create(&*store, &mut record).await;
        others.push(record);
    }

    assert_eq!(
        must_list(&*store, alice).await,
        sorted(vec![created, saved, updated]),
        "sessions_of_user must list exactly the user's active sessions"
    );
    for record in others {
        let user = record.user_id.clone().unwrap_or_default();
        assert_eq!(
            must_list(&*store, &user).await,
            vec![record],
            "user ids must match exactly: {user:?}"
        );
    }
    assert!(
        must_list(&*store, "nobody-has-this-user").await.is_empty(),
        "an unknown user has no sessions"
    );
}

/// The index follows a record from user to user, forgets it on `delete`
/// and when the user is cleared, and keeps listing the record's current
/// contents.
pub async fn user_index_follows_changes<S: SessionStore>(store: Arc<S>) {
    let mut record = of_user("u1", json!({"step": 1}));
    must_create(&*store, &mut record).await;
    assert_eq!(must_list(&*store, "u1").await, vec![record.clone()]);

    record.user_id = Some("u2".into());
    record.data.insert("step".into(), json!(2));
    assert_eq!(must_update(&*store, &mut record).await, Update::Written);
    assert!(
        must_list(&*store, "u1").await.is_empty(),
        "a session moved to another user must leave the old user's list"
    );
    assert_eq!(must_list(&*store, "u2").await, vec![record.clone()]);

    record.user_id = None;
    must_save(&*store, &record).await;
    assert!(
        must_list(&*store, "u2").await.is_empty(),
        "a session whose user was cleared must leave the list"
    );

    record.user_id = Some("u1".into());
    must_save(&*store, &record).await;
    assert_eq!(must_list(&*store, "u1").await, vec![record.clone()]);
    let later = now_micros() + Duration::days(1);
    assert!(must_touch(&*store, &record.id, later).await);
    record.expiry_date = later;
    assert_eq!(
        must_list(&*store, "u1").await,
        vec![record.clone()],
        "the list must show the record as stored now"
    );

    store.delete(&record.id).await.expect("delete");
    assert!(
        must_list(&*store, "u1").await.is_empty(),
        "a deleted session must leave the list"
    );
}

/// `delete_sessions_of_user` ends every active session of the user but the
/// one kept, counts them, and leaves everybody else's alone.
pub async fn delete_sessions_of_user_keeps_one<S: SessionStore>(store: Arc<S>) {
    let mut alice = Vec::new();
    for i in 0..3 {
        let mut record = of_user("alice", json!({ "device": i }));
        must_create(&*store, &mut record).await;
        alice.push(record);
    }
    let mut expired = of_user("alice", json!({"device": "old"}));
    expired.expiry_date = now_micros() - Duration::seconds(1);
    must_save(&*store, &expired).await;
    let mut bob = of_user("bob", json!({}));
    must_create(&*store, &mut bob).await;
    let mut anonymous = record_expiring_in(HOUR, json!({}));
    must_create(&*store, &mut anonymous).await;

    let removed = store
        .delete_sessions_of_user("alice", Some(&alice[1].id))
        .await
        .expect("delete_sessions_of_user");
    must_be_gone(&*store, &alice[0].id, "a session of the user survived").await;
    must_be_gone(&*store, &alice[2].id, "a session of the user survived").await;
    match store.load(&alice[1].id).await {
        Ok(Some(kept)) => assert_eq!(kept, alice[1], "the kept session changed"),
        other => panic!("the kept session must survive, got {other:?}"),
    }
    assert_eq!(
        removed, 2,
        "delete_sessions_of_user must count the active sessions it ended"
    );
    assert_eq!(
        must_load(&*store, &bob.id).await,
        bob,
        "another user's session was ended"
    );
    assert_eq!(must_load(&*store, &anonymous.id).await, anonymous);
    assert_eq!(must_list(&*store, "alice").await, vec![alice[1].clone()]);

    let removed = store
        .delete_sessions_of_user("alice", None)
        .await
        .expect("delete_sessions_of_user");
    assert_eq!(removed, 1);
    must_be_gone(&*store, &alice[1].id, "without keep, every session ends").await;
    assert!(must_list(&*store, "alice").await.is_empty());
    assert_eq!(
        store
            .delete_sessions_of_user("alice", None)
            .await
            .expect("delete_sessions_of_user"),
        0
    );
    assert_eq!(
        store
            .delete_sessions_of_user("alice*", None)
            .await
            .expect("delete_sessions_of_user"),
        0,
        "user ids are not patterns"
    );
    assert_eq!(must_load(&*store, &bob.id).await, bob);
}

/// Concurrent writers moving one session between two users leave the index
/// agreeing with the record: listed under its final user, not the other.
/// Lookups run during the writes too (a store that repairs its index on read
/// must not lose an entry a writer is adding), and never see the session
/// under a user it does not have. Checked after each of several bursts,
/// since one burst may end agreeing by luck even on a store whose index lags
/// its records.
pub async fn concurrent_user_changes_leave_the_index_exact<S: SessionStore>(store: Arc<S>) {
    const WRITERS: usize = 8;
    const READERS: usize = 2;
    const BURSTS: usize = 10;
    let record = of_user("left", json!({}));
    must_save(&*store, &record).await;
    for burst in 0..BURSTS {
        let start = Arc::new(Barrier::new(WRITERS + READERS));
        let mut tasks = JoinSet::new();
        for reader in 0..READERS {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            tasks.spawn(async move {
                let user = if reader % 2 == 0 { "left" } else { "right" };
                start.wait().await;
                for _ in 0..4 {
                    for listed in must_list(&*store, user).await {
                        assert_eq!(
                            listed.user_id.as_deref(),
                            Some(user),
                            "a lookup listed a session of another user"
                        );
                    }
                }
            });
        }
        for writer in 0..WRITERS {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            let mut mine = record.clone();
            tasks.spawn(async move {
                let user = if (writer + burst) % 2 == 0 {
                    "left"
                } else {
                    "right"
                };
                mine.user_id = Some(user.into());
                mine.data.insert("by".into(), json!(writer));
                start.wait().await;
                must_save(&*store, &mine).await;
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("writer task panicked");
        }
        let stored = must_load(&*store, &record.id).await;
        let (mine, other) = match stored.user_id.as_deref() {
            Some("left") => ("left", "right"),
            Some("right") => ("right", "left"),
            other => panic!("the record ended with user {other:?}"),
        };
        assert_eq!(
            must_list(&*store, mine).await,
            vec![stored],
            "the index lost a session its user holds (burst {burst})"
        );
        assert!(
            must_list(&*store, other).await.is_empty(),
            "the index lists a session under a user it no longer has (burst {burst})"
        );
    }
}

/// A sweep removes expired records from the user index too, and a user
/// deletion afterwards counts only what is left.
pub async fn delete_expired_cleans_the_user_index<S: ExpiredDeletion>(store: Arc<S>, sweep: Sweep) {
    let mut active = of_user("carol", json!({"active": true}));
    must_create(&*store, &mut active).await;
    for i in 0..2 {
        let mut expired = of_user("carol", json!({ "expired": i }));
        expired.expiry_date = now_micros() - Duration::seconds(i + 1);
        must_save(&*store, &expired).await;
    }
    let removed = store.delete_expired().await.expect("delete_expired");
    match sweep {
        Sweep::Exact => assert_eq!(removed, 2, "delete_expired must count what it removed"),
        Sweep::Native => assert!(
            removed <= 2,
            "delete_expired removed {removed} of 2 expired"
        ),
    }
    assert_eq!(must_list(&*store, "carol").await, vec![active.clone()]);
    assert_eq!(
        store
            .delete_sessions_of_user("carol", None)
            .await
            .expect("delete_sessions_of_user"),
        1,
        "after a sweep, only the active session is left to delete"
    );
    assert!(must_list(&*store, "carol").await.is_empty());
}

/// No span or event carries a session id, whatever the operation: an id in
/// a log is a credential. Every span and event of the process is captured
/// (at every level) while the store works, and searched for the ids used.
pub async fn no_session_id_in_traces<S: SessionStore>(store: Arc<S>) {
    assert!(
        crate::traces::install(),
        "another tracing subscriber is installed for this process: this check needs to be the \
         process's global subscriber (run it in a test binary that installs none)"
    );
    let mut record = of_user("traced", json!({"k": 1}));
    must_create(&*store, &mut record).await;
    must_save(&*store, &record).await;
    must_load(&*store, &record.id).await;
    let mut stale = record.clone();
    assert_eq!(must_update(&*store, &mut record).await, Update::Written);
    assert!(must_update(&*store, &mut stale).await.is_conflict());
    assert!(must_touch(&*store, &record.id, now_micros() + HOUR).await);
    let _ = store
        .touch_many(&[(record.id, now_micros() + HOUR)])
        .await
        .expect("touch_many");
    must_list(&*store, "traced").await;
    store.delete(&record.id).await.expect("delete");
    assert_eq!(must_update(&*store, &mut record).await, Update::Gone);
    let mut other = of_user("traced", json!({}));
    must_create(&*store, &mut other).await;
    store
        .delete_sessions_of_user("traced", None)
        .await
        .expect("delete_sessions_of_user");
    let mut taken = record_expiring_in(HOUR, json!({}));
    taken.id = other.id;
    must_save(&*store, &taken).await;
    let mut colliding = record_expiring_in(HOUR, json!({}));
    colliding.id = other.id;
    must_create(&*store, &mut colliding).await;

    for id in [record.id, other.id, colliding.id] {
        for needle in [id.to_string(), id.0.to_string()] {
            let leaks = crate::traces::lines_containing(&needle);
            assert!(
                leaks.is_empty(),
                "a session id reached a trace (an id in a log is a credential): {leaks:?}"
            );
        }
    }
}
