//! The suite is only worth running if it fails a store that breaks the
//! contract: each store here breaks one rule, and the check for that rule
//! must panic.

// The broken stores are test doubles: a poisoned lock there is a test bug.
#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use session_core::{
    async_trait, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore,
};
use session_memory::MemoryStore;
use session_testkit::{__private::run, suite, Sweep};

/// A store built from a plain map, with switches that break one rule each.
#[derive(Debug, Default)]
struct Broken {
    map: Mutex<HashMap<Id, Record>>,
    overwrite_on_create: bool,
    check_then_insert: bool,
    ignore_expiry: bool,
    truncate_to_millis: bool,
    truncate_big_values: bool,
    miscount_sweep: bool,
}

impl Broken {
    fn get(&self, id: &Id) -> Option<Record> {
        self.map.lock().unwrap().get(id).cloned()
    }
}

#[async_trait]
impl SessionStore for Broken {
    async fn create(&self, record: &mut Record) -> Result<()> {
        if !self.overwrite_on_create {
            while self.get(&record.id).is_some() {
                record.id = Id::default();
            }
        }
        if self.check_then_insert {
            // The round trip between check and insert that a non-atomic
            // create has, in which another task checks too.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.save(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let mut copy = record.clone();
        if self.truncate_to_millis {
            let e = copy.expiry_date;
            copy.expiry_date = e.replace_millisecond(e.millisecond()).unwrap();
        }
        if self.truncate_big_values {
            for value in copy.data.values_mut() {
                if let Some(text) = value.as_str() {
                    if text.len() > 65_535 {
                        *value = text[..65_535].into();
                    }
                }
            }
        }
        self.map.lock().unwrap().insert(copy.id, copy);
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let record = self.get(id);
        if self.ignore_expiry {
            return Ok(record);
        }
        Ok(record.filter(|r| r.is_active()))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.map.lock().unwrap().remove(id);
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for Broken {
    async fn delete_expired(&self) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        let mut map = self.map.lock().unwrap();
        let before = map.len();
        map.retain(|_, r| r.is_active_at(now));
        let removed = (before - map.len()) as u64;
        Ok(if self.miscount_sweep { 0 } else { removed })
    }
}

#[test]
fn the_reference_store_passes_the_checks_used_below() {
    run(suite::create_never_overwrites_an_existing_id(Arc::new(
        Broken::default(),
    )));
    run(suite::load_of_expired_record_is_none(Arc::new(
        Broken::default(),
    )));
    run(suite::payloads_from_empty_to_one_mib(Arc::new(
        Broken::default(),
    )));
    run(suite::timestamps_keep_microseconds(Arc::new(
        Broken::default(),
    )));
    run(suite::delete_expired_removes_exactly_the_expired(
        Arc::new(Broken::default()),
        Sweep::Exact,
    ));
    run(suite::round_trip_keeps_nested_json(Arc::new(
        MemoryStore::default(),
    )));
}

#[test]
#[should_panic(expected = "create must assign a fresh id on collision")]
fn overwriting_create_is_caught() {
    run(suite::create_never_overwrites_an_existing_id(Arc::new(
        Broken {
            overwrite_on_create: true,
            ..Broken::default()
        },
    )));
}

#[test]
#[should_panic(expected = "ended with the same id")]
fn check_then_insert_create_is_caught() {
    run(suite::concurrent_creates_with_one_id_get_distinct_ids(
        Arc::new(Broken {
            check_then_insert: true,
            ..Broken::default()
        }),
    ));
}

#[test]
#[should_panic(expected = "must not load")]
fn returning_expired_records_is_caught() {
    run(suite::load_of_expired_record_is_none(Arc::new(Broken {
        ignore_expiry: true,
        ..Broken::default()
    })));
}

#[test]
#[should_panic(expected = "must not load")]
fn ignoring_the_expiry_boundary_is_caught() {
    run(suite::expiry_boundary_is_respected(Arc::new(Broken {
        ignore_expiry: true,
        ..Broken::default()
    })));
}

#[test]
#[should_panic(expected = "lost precision")]
fn millisecond_timestamps_are_caught() {
    run(suite::timestamps_keep_microseconds(Arc::new(Broken {
        truncate_to_millis: true,
        ..Broken::default()
    })));
}

#[test]
#[should_panic(expected = "did not round-trip")]
fn truncated_payloads_are_caught() {
    run(suite::payloads_from_empty_to_one_mib(Arc::new(Broken {
        truncate_big_values: true,
        ..Broken::default()
    })));
}

#[test]
#[should_panic(expected = "must count what it removed")]
fn miscounted_sweeps_are_caught() {
    run(suite::delete_expired_removes_exactly_the_expired(
        Arc::new(Broken {
            miscount_sweep: true,
            ..Broken::default()
        }),
        Sweep::Exact,
    ));
}
