//! One session's place in the cache.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use session_core::{time::OffsetDateTime, Id, Record};

use crate::index::{Token, UserIndex};

/// What the cache holds per session.
///
/// Behind an [`Arc`] so moka, which hands out copies of values, copies a
/// pointer instead of the record.
pub(crate) type Value = Arc<Slot>;

/// One session's place in the cache.
///
/// The record sits behind a lock so a write that does not push the expiry
/// date past the one moka scheduled can replace it in place: a cache read
/// and a swap, instead of a moka insert, which costs several times more
/// (a new entry, a write log record and its share of moka's maintenance).
pub(crate) struct Slot {
    state: Mutex<State>,
    /// When moka's timer drops the slot: the expiry date of the record it
    /// was inserted with plus the store's slack. Records written in place
    /// never expire later than this.
    pub(crate) scheduled_expiry: OffsetDateTime,
    /// The record's encoded size in bytes (saturated to `u32::MAX`) when the
    /// store weighs by size, else 1.
    pub(crate) weight: u32,
}

/// What a slot's lock guards.
pub(crate) struct State {
    /// The session as stored.
    pub(crate) record: Record,
    /// The user-index listing this slot owns: `Some` exactly when the record
    /// has a user and the slot is live.
    pub(crate) token: Option<Token>,
    /// Whether writes may still go into this slot. A write that replaces or
    /// removes the slot retires it first, under this lock, so a write that
    /// finds it retired knows the cache holds (or is about to hold) another
    /// slot for the id, and goes through the cache instead. Records are
    /// never changed in a retired slot: what a reader finds there is what
    /// was stored until the cache dropped it.
    pub(crate) live: bool,
}

impl Slot {
    pub(crate) fn new(
        record: Record,
        token: Option<Token>,
        scheduled_expiry: OffsetDateTime,
        weight: u32,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                record,
                token,
                live: true,
            }),
            scheduled_expiry,
            weight,
        }
    }

    // A poisoned lock means a panic while the state was being changed, and
    // every change is a move of whole values: the record is whole either
    // way, so the store keeps serving rather than panicking every later
    // caller.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the listing a retired slot still owns, once the cache no
    /// longer shows it (so a lookup never lacks a listing for a record
    /// `load` still returns).
    pub(crate) fn unindex(&self, index: &UserIndex) {
        let mut state = self.lock();
        if let Some(token) = state.token.take() {
            if let Some(user_id) = state.record.user_id.as_deref() {
                index.remove(user_id, state.record.id, token);
            }
        }
    }

    /// moka dropped this slot by itself (evicted or expired) or reports one
    /// the store replaced or removed. In the first case the slot is still
    /// live: retire it and remove its listing. A slot the store retired is
    /// unindexed by the write that retired it.
    pub(crate) fn evicted(&self, id: &Id, index: &UserIndex) {
        let mut state = self.lock();
        if !state.live {
            return;
        }
        state.live = false;
        if let Some(token) = state.token.take() {
            if let Some(user_id) = state.record.user_id.as_deref() {
                index.remove(user_id, *id, token);
            }
        }
    }
}

impl State {
    /// Retires the slot for a successor holding a record of `user_id`, and
    /// says which listing the successor owns: this slot's when the user
    /// stays the same (a write that keeps the user leaves the index alone),
    /// else a fresh one under the new user. This slot's own listing, if it
    /// keeps one, is removed by [`Slot::unindex`] once the successor is in
    /// the cache.
    pub(crate) fn retire_for(&mut self, successor: &Record, index: &UserIndex) -> Option<Token> {
        self.live = false;
        if self.record.user_id == successor.user_id {
            self.token.take()
        } else {
            list(successor, index)
        }
    }
}

/// A fresh listing for a record that enters the cache with no predecessor.
pub(crate) fn list(record: &Record, index: &UserIndex) -> Option<Token> {
    record
        .user_id
        .as_deref()
        .map(|user_id| index.add(user_id, record.id))
}
