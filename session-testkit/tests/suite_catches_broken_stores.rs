//! The suite is only worth running if it fails a store that breaks the
//! contract: each store here breaks one rule, and the check for that rule
//! must panic.

// The broken stores are test doubles: a poisoned lock there is a test bug.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use session_core::{
    async_trait, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore, Update,
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
    /// `update` writes whatever version it is given.
    update_ignores_version: bool,
    /// `update` of a missing or expired record stores it (an upsert).
    update_upserts: bool,
    /// `update` checks the version, yields, then writes: not atomic.
    update_reads_then_writes: bool,
    /// A conflict returns the caller's record, not the stored one.
    conflict_returns_callers_record: bool,
    /// `update` stores the record but leaves the caller's version alone.
    update_forgets_callers_version: bool,
    /// `touch` sets the expiry date even when it is earlier.
    touch_moves_backward: bool,
    /// `touch` bumps the version.
    touch_bumps_version: bool,
    /// `touch` writes the expiry of an expired record, bringing it back.
    touch_revives: bool,
    /// The user index remembers every user a session ever had.
    index_keeps_old_users: bool,
    /// `sessions_of_user` lists expired sessions too.
    index_lists_expired: bool,
    /// The index is updated in a step of its own after the record write.
    index_updated_later: bool,
    /// `sessions_of_user` matches user ids as prefixes.
    index_matches_prefixes: bool,
    /// `delete_sessions_of_user` ignores `keep`.
    delete_of_user_ignores_keep: bool,
    /// `delete_sessions_of_user` counts expired sessions it removes.
    delete_of_user_counts_expired: bool,
    /// A sweep leaves expired sessions in the user index, and user deletions
    /// count them.
    sweep_leaves_index: bool,
    /// Per user, the ids of their sessions.
    index: Mutex<HashMap<String, HashSet<Id>>>,
    /// `load` logs the id it was asked for.
    logs_ids: bool,
    /// Per user, swept sessions a broken sweep left in the index.
    ghosts: Mutex<HashMap<String, u64>>,
}

impl Broken {
    fn get(&self, id: &Id) -> Option<Record> {
        self.map.lock().unwrap().get(id).cloned()
    }

    /// Moves `id` from `old`'s set to `new`'s.
    fn reindex(&self, id: Id, old: Option<&str>, new: Option<&str>) {
        let mut index = self.index.lock().unwrap();
        if let Some(old) = old.filter(|_| !self.index_keeps_old_users) {
            if let Some(ids) = index.get_mut(old) {
                ids.remove(&id);
            }
        }
        if let Some(new) = new {
            index.entry(new.to_owned()).or_default().insert(id);
        }
    }

    fn indexed(&self, user_id: &str) -> Vec<Id> {
        self.index
            .lock()
            .unwrap()
            .iter()
            .filter(|(user, _)| {
                *user == user_id || (self.index_matches_prefixes && user.starts_with(user_id))
            })
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
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
        let id = copy.id;
        let new = copy.user_id.clone();
        if self.index_updated_later {
            // Reads the old user, then writes record and index in steps of
            // their own: other writers come in between.
            let old = self.get(&id).and_then(|r| r.user_id);
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            self.map.lock().unwrap().insert(id, copy);
            tokio::task::yield_now().await;
            self.reindex(id, old.as_deref(), new.as_deref());
            return Ok(());
        }
        let mut map = self.map.lock().unwrap();
        let old = map.insert(id, copy).and_then(|r| r.user_id);
        // Under the map lock: record and index change in one step.
        self.reindex(id, old.as_deref(), new.as_deref());
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        if self.logs_ids {
            tracing::debug!(session = %id, "loading");
        }
        let record = self.get(id);
        if self.ignore_expiry {
            return Ok(record);
        }
        Ok(record.filter(|r| r.is_active()))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        let mut map = self.map.lock().unwrap();
        let old = map.remove(id).and_then(|r| r.user_id);
        self.reindex(*id, old.as_deref(), None);
        Ok(())
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        let mut copy = record.clone();
        copy.version += 1;
        {
            let mut map = self.map.lock().unwrap();
            let stored = map
                .get(&record.id)
                .filter(|r| self.update_upserts || r.is_active());
            match stored {
                None if !self.update_upserts => return Ok(Update::Gone),
                Some(stored)
                    if stored.version != record.version && !self.update_ignores_version =>
                {
                    if self.conflict_returns_callers_record {
                        return Ok(Update::Conflict(record.clone()));
                    }
                    return Ok(Update::Conflict(stored.clone()));
                }
                _ => {}
            }
            if !self.update_reads_then_writes {
                let old = map.insert(copy.id, copy.clone()).and_then(|r| r.user_id);
                self.reindex(copy.id, old.as_deref(), copy.user_id.as_deref());
            }
        }
        if self.update_reads_then_writes {
            // The round trip between the check and the write of an update
            // done from the client.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            self.save(&copy).await?;
        }
        if !self.update_forgets_callers_version {
            record.version += 1;
        }
        Ok(Update::Written)
    }

    async fn touch(&self, id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        let mut map = self.map.lock().unwrap();
        let Some(stored) = map.get_mut(id) else {
            return Ok(false);
        };
        if !stored.is_active() && !self.touch_revives {
            return Ok(false);
        }
        stored.expiry_date = if self.touch_moves_backward {
            expiry_date
        } else {
            stored.expiry_date.max(expiry_date)
        };
        if self.touch_bumps_version {
            stored.version += 1;
        }
        Ok(true)
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        // The correct store checks each listed record's user on read; the
        // broken index modes trust the index.
        let trusts_index =
            self.index_keeps_old_users || self.index_updated_later || self.index_matches_prefixes;
        Ok(self
            .indexed(user_id)
            .iter()
            .filter_map(|id| self.get(id))
            .filter(|r| self.index_lists_expired || r.is_active())
            .filter(|r| trusts_index || r.user_id.as_deref() == Some(user_id))
            .collect())
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        let mut removed = 0;
        for id in self.indexed(user_id) {
            let Some(record) = self.get(&id) else {
                continue;
            };
            if record.user_id.as_deref() != Some(user_id)
                || (Some(&id) == keep && !self.delete_of_user_ignores_keep)
            {
                continue;
            }
            self.delete(&id).await?;
            if record.is_active() || self.delete_of_user_counts_expired {
                removed += 1;
            }
        }
        if self.sweep_leaves_index {
            // Counts the ghosts the sweep left behind.
            removed += self.ghosts.lock().unwrap().remove(user_id).unwrap_or(0);
        }
        Ok(removed)
    }
}

#[async_trait]
impl ExpiredDeletion for Broken {
    async fn delete_expired(&self) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        let mut map = self.map.lock().unwrap();
        let before = map.len();
        let mut swept = Vec::new();
        map.retain(|_, r| {
            let keep = r.is_active_at(now);
            if !keep {
                swept.push(r.clone());
            }
            keep
        });
        drop(map);
        let removed = (before - self.map.lock().unwrap().len()) as u64;
        for record in swept {
            match (record.user_id.as_deref(), self.sweep_leaves_index) {
                (Some(user), true) => {
                    *self
                        .ghosts
                        .lock()
                        .unwrap()
                        .entry(user.to_owned())
                        .or_default() += 1;
                }
                (user, _) => self.reindex(record.id, user, None),
            }
        }
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

#[test]
fn the_reference_store_passes_the_version_2_checks_used_below() {
    run(suite::update_with_a_stale_version_conflicts(Arc::new(
        Broken::default(),
    )));
    run(suite::update_never_creates(Arc::new(Broken::default())));
    run(suite::concurrent_updates_of_one_version_write_once(
        Arc::new(Broken::default()),
    ));
    run(suite::concurrent_update_and_delete_never_resurrect(
        Arc::new(Broken::default()),
    ));
    run(suite::update_writes_and_bumps_the_version(Arc::new(
        Broken::default(),
    )));
    run(suite::touch_moves_expiry_forward_only(Arc::new(
        Broken::default(),
    )));
    run(suite::touch_of_missing_or_expired_is_false(Arc::new(
        Broken::default(),
    )));
    run(suite::sessions_of_user_lists_exactly_theirs(Arc::new(
        Broken::default(),
    )));
    run(suite::user_index_follows_changes(Arc::new(
        Broken::default(),
    )));
    run(suite::delete_sessions_of_user_keeps_one(Arc::new(
        Broken::default(),
    )));
    run(suite::concurrent_user_changes_leave_the_index_exact(
        Arc::new(Broken::default()),
    ));
    run(suite::delete_expired_cleans_the_user_index(
        Arc::new(Broken::default()),
        Sweep::Exact,
    ));
}

/// A broken store with one switch on.
macro_rules! broken {
    ($switch:ident) => {
        Arc::new(Broken {
            $switch: true,
            ..Broken::default()
        })
    };
}

#[test]
#[should_panic(expected = "must conflict")]
fn an_update_ignoring_the_version_is_caught() {
    run(suite::update_with_a_stale_version_conflicts(broken!(
        update_ignores_version
    )));
}

#[test]
#[should_panic(expected = "must return the record as stored now")]
fn a_conflict_without_the_stored_record_is_caught() {
    run(suite::update_with_a_stale_version_conflicts(broken!(
        conflict_returns_callers_record
    )));
}

#[test]
#[should_panic(expected = "must bump the caller's version")]
fn an_update_leaving_the_callers_version_is_caught() {
    run(suite::update_writes_and_bumps_the_version(broken!(
        update_forgets_callers_version
    )));
}

#[test]
#[should_panic(expected = "must be Gone")]
fn an_upserting_update_is_caught() {
    run(suite::update_never_creates(broken!(update_upserts)));
}

#[test]
#[should_panic(expected = "concurrent updates of one version were written")]
fn a_read_then_write_update_is_caught_by_concurrent_updates() {
    run(suite::concurrent_updates_of_one_version_write_once(
        broken!(update_reads_then_writes),
    ));
}

#[test]
#[should_panic(expected = "brought the session back")]
fn a_read_then_write_update_is_caught_racing_a_delete() {
    run(suite::concurrent_update_and_delete_never_resurrect(
        broken!(update_reads_then_writes),
    ));
}

#[test]
#[should_panic(expected = "never move the expiry date backward")]
fn a_touch_moving_backward_is_caught() {
    run(suite::touch_moves_expiry_forward_only(broken!(
        touch_moves_backward
    )));
}

#[test]
#[should_panic(expected = "must not change data, version or user")]
fn a_touch_bumping_the_version_is_caught() {
    run(suite::touch_moves_expiry_forward_only(broken!(
        touch_bumps_version
    )));
}

#[test]
#[should_panic(expected = "touch of an expired record must be false")]
fn a_touch_reviving_an_expired_record_is_caught() {
    run(suite::touch_of_missing_or_expired_is_false(broken!(
        touch_revives
    )));
}

#[test]
#[should_panic(expected = "must leave the old user's list")]
fn an_index_keeping_old_users_is_caught() {
    run(suite::user_index_follows_changes(broken!(
        index_keeps_old_users
    )));
}

#[test]
#[should_panic(expected = "exactly the user's active sessions")]
fn an_index_listing_expired_sessions_is_caught() {
    run(suite::sessions_of_user_lists_exactly_theirs(broken!(
        index_lists_expired
    )));
}

#[test]
#[should_panic(expected = "must list exactly the user's active sessions")]
fn an_index_matching_prefixes_is_caught() {
    run(suite::sessions_of_user_lists_exactly_theirs(broken!(
        index_matches_prefixes
    )));
}

#[test]
#[should_panic(expected = "the index")]
fn an_index_updated_apart_from_the_record_is_caught() {
    run(suite::concurrent_user_changes_leave_the_index_exact(
        broken!(index_updated_later),
    ));
}

#[test]
#[should_panic(expected = "the kept session must survive")]
fn a_user_deletion_ignoring_keep_is_caught() {
    run(suite::delete_sessions_of_user_keeps_one(broken!(
        delete_of_user_ignores_keep
    )));
}

#[test]
#[should_panic(expected = "must count the active sessions it ended")]
fn a_user_deletion_counting_expired_sessions_is_caught() {
    run(suite::delete_sessions_of_user_keeps_one(broken!(
        delete_of_user_counts_expired
    )));
}

#[test]
#[should_panic(expected = "only the active session is left")]
fn a_sweep_leaving_the_index_is_caught() {
    run(suite::delete_expired_cleans_the_user_index(
        broken!(sweep_leaves_index),
        Sweep::Exact,
    ));
}

#[test]
fn the_reference_store_keeps_ids_out_of_traces() {
    run(suite::no_session_id_in_traces(Arc::new(Broken::default())));
}

#[test]
#[should_panic(expected = "a session id reached a trace")]
fn a_store_logging_ids_is_caught() {
    run(suite::no_session_id_in_traces(broken!(logs_ids)));
}
