//! A store wrapper that fails, slows or holds chosen operations on demand,
//! and counts every call, for testing what sits on top of a store (caches,
//! middleware, the deletion task).

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use session_core::{
    async_trait, time::OffsetDateTime, Error, ExpiredDeletion, Id, Record, Result, SessionStore,
    Update,
};
use tokio::sync::oneshot;

/// A store operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// [`SessionStore::create`].
    Create,
    /// [`SessionStore::save`].
    Save,
    /// [`SessionStore::load`].
    Load,
    /// [`SessionStore::delete`].
    Delete,
    /// [`ExpiredDeletion::delete_expired`].
    DeleteExpired,
    /// [`SessionStore::update`].
    Update,
    /// [`SessionStore::touch`].
    Touch,
    /// [`SessionStore::sessions_of_user`].
    SessionsOfUser,
    /// [`SessionStore::delete_sessions_of_user`].
    DeleteSessionsOfUser,
    /// [`SessionStore::touch_many`].
    TouchMany,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 10] = [
        Operation::Create,
        Operation::Save,
        Operation::Load,
        Operation::Delete,
        Operation::DeleteExpired,
        Operation::Update,
        Operation::Touch,
        Operation::SessionsOfUser,
        Operation::DeleteSessionsOfUser,
        Operation::TouchMany,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// The error a [`FaultyStore`] returns (inside [`Error::Backend`]) for an
/// injected failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFault(pub Operation);

impl std::error::Error for InjectedFault {}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected failure of {:?}", self.0)
    }
}

#[derive(Default)]
struct OperationFaults {
    calls: AtomicU64,
    fail_always: AtomicBool,
    fail_next: AtomicU64,
    latency_micros: AtomicU64,
    hold_before: Mutex<Option<HoldPoint>>,
    hold_after: Mutex<Option<HoldPoint>>,
}

/// Where [`Faults::hold`] stops a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before the wrapped store is called: nothing has happened yet.
    Before,
    /// After the wrapped store answered, before the caller sees the answer.
    After,
}

/// The store's side of a [`Hold`].
struct HoldPoint {
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

impl HoldPoint {
    async fn wait(self) {
        // The test may have dropped its side already: then nobody waits.
        let _ = self.reached.send(());
        let _ = self.release.await;
    }
}

/// The test's side of a call held by [`Faults::hold`]: wait until the call
/// gets there, do what must happen meanwhile, then let it go on.
///
/// Dropping a `Hold` releases the call too, so a failing test never leaves
/// a task hanging.
#[derive(Debug)]
#[must_use = "a hold does nothing unless the test waits for it and releases it"]
pub struct Hold {
    reached: Option<oneshot::Receiver<()>>,
    release: oneshot::Sender<()>,
}

impl Hold {
    /// Waits until a call reached the hold point and stopped there.
    ///
    /// # Panics
    ///
    /// When the store holding the point was dropped first.
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            reached
                .await
                .expect("the held store was dropped before a call reached the hold");
        }
    }

    /// Lets the held call go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

/// The shared controls of a [`FaultyStore`]: cheap to clone, so a test keeps
/// one after moving the store into a layer or a task.
#[derive(Clone, Default)]
pub struct Faults {
    ops: Arc<[OperationFaults; Operation::ALL.len()]>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for op in Operation::ALL {
            map.entry(&op, &self.calls(op));
        }
        map.finish()
    }
}

impl Faults {
    fn of(&self, op: Operation) -> &OperationFaults {
        &self.ops[op.index()]
    }

    /// Makes every call of `op` fail until [`heal`](Self::heal).
    pub fn fail(&self, op: Operation) {
        self.of(op).fail_always.store(true, Ordering::SeqCst);
    }

    /// Makes the next `count` calls of `op` fail.
    pub fn fail_next(&self, op: Operation, count: u64) {
        self.of(op).fail_next.store(count, Ordering::SeqCst);
    }

    /// Stops injecting failures into `op`.
    pub fn heal(&self, op: Operation) {
        let faults = self.of(op);
        faults.fail_always.store(false, Ordering::SeqCst);
        faults.fail_next.store(0, Ordering::SeqCst);
    }

    /// Stops injecting failures into every operation.
    pub fn heal_all(&self) {
        for op in Operation::ALL {
            self.heal(op);
        }
    }

    /// Delays every call of `op` by `latency` before it runs (tokio's timer,
    /// so paused test time applies).
    pub fn set_latency(&self, op: Operation, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.of(op).latency_micros.store(micros, Ordering::SeqCst);
    }

    /// Stops the next call of `op` at `when` until the returned [`Hold`] is
    /// released: the way to force an interleaving (a load that read the
    /// store and has not filled a cache yet, a write in flight while another
    /// request ends the session) deterministically, without sleeps.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use session_core::{time::{Duration, OffsetDateTime}, Record, SessionStore};
    /// use session_memory::MemoryStore;
    /// use session_testkit::{FaultyStore, Operation, When};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let store = Arc::new(FaultyStore::new(MemoryStore::default()));
    /// let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    /// store.save(&record).await.unwrap();
    ///
    /// let id = record.id;
    /// let mut hold = store.faults().hold(Operation::Update, When::Before);
    /// let writer = tokio::spawn({
    ///     let store = Arc::clone(&store);
    ///     async move { store.update(&mut record).await.unwrap() }
    /// });
    /// hold.reached().await; // the update is in flight ...
    /// store.delete(&id).await.unwrap(); // ... when the session ends
    /// hold.release();
    /// assert!(writer.await.unwrap().is_gone());
    /// # });
    /// ```
    pub fn hold(&self, op: Operation, when: When) -> Hold {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        let point = HoldPoint {
            reached: reached_tx,
            release: release_rx,
        };
        let faults = self.of(op);
        let slot = match when {
            When::Before => &faults.hold_before,
            When::After => &faults.hold_after,
        };
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(point);
        Hold {
            reached: Some(reached_rx),
            release: release_tx,
        }
    }

    async fn hold_point(&self, op: Operation, when: When) {
        let faults = self.of(op);
        let slot = match when {
            When::Before => &faults.hold_before,
            When::After => &faults.hold_after,
        };
        let point = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(point) = point {
            point.wait().await;
        }
    }

    /// How many times `op` was called, failed calls included.
    pub fn calls(&self, op: Operation) -> u64 {
        self.of(op).calls.load(Ordering::SeqCst)
    }

    /// How many calls of any operation were made.
    pub fn total_calls(&self) -> u64 {
        Operation::ALL.iter().map(|op| self.calls(*op)).sum()
    }

    /// Sets every call counter back to zero.
    pub fn reset_calls(&self) {
        for op in Operation::ALL {
            self.of(op).calls.store(0, Ordering::SeqCst);
        }
    }

    async fn enter(&self, op: Operation) -> Result<()> {
        let faults = self.of(op);
        faults.calls.fetch_add(1, Ordering::SeqCst);
        self.hold_point(op, When::Before).await;
        let latency = faults.latency_micros.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
        let planned = faults
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if planned || faults.fail_always.load(Ordering::SeqCst) {
            return Err(Error::backend(InjectedFault(op)));
        }
        Ok(())
    }
}

/// Wraps a store, failing or delaying chosen operations and counting calls.
///
/// ```
/// use session_core::SessionStore;
/// use session_memory::MemoryStore;
/// use session_testkit::{FaultyStore, Operation};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let store = FaultyStore::new(MemoryStore::default());
/// let faults = store.faults();
/// faults.fail_next(Operation::Load, 1);
/// assert!(store.load(&Default::default()).await.unwrap_err().is_backend());
/// assert!(store.load(&Default::default()).await.unwrap().is_none());
/// assert_eq!(faults.calls(Operation::Load), 2);
/// # });
/// ```
#[derive(Clone)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Faults,
}

impl<S> FaultyStore<S> {
    /// Wraps `inner` with no faults injected.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            faults: Faults::default(),
        }
    }

    /// The controls and counters, shared with every clone of this store.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .field("calls", &self.faults)
            .finish()
    }
}

impl Faults {
    /// Runs one wrapped call: faults first, then the call, then the hold
    /// point after it.
    async fn call<T>(
        &self,
        op: Operation,
        call: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        self.enter(op).await?;
        let answer = call.await;
        self.hold_point(op, When::After).await;
        Ok(answer)
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for FaultyStore<S> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.faults
            .call(Operation::Create, self.inner.create(record))
            .await?
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.faults
            .call(Operation::Save, self.inner.save(record))
            .await?
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        self.faults
            .call(Operation::Load, self.inner.load(session_id))
            .await?
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.faults
            .call(Operation::Delete, self.inner.delete(session_id))
            .await?
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        self.faults
            .call(Operation::Update, self.inner.update(record))
            .await?
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        self.faults
            .call(Operation::Touch, self.inner.touch(session_id, expiry_date))
            .await?
    }

    async fn touch_many(&self, touches: &[(Id, OffsetDateTime)]) -> Result<Vec<bool>> {
        self.faults
            .call(Operation::TouchMany, self.inner.touch_many(touches))
            .await?
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        self.faults
            .call(
                Operation::SessionsOfUser,
                self.inner.sessions_of_user(user_id),
            )
            .await?
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        self.faults
            .call(
                Operation::DeleteSessionsOfUser,
                self.inner.delete_sessions_of_user(user_id, keep),
            )
            .await?
    }
}

#[async_trait]
impl<S: ExpiredDeletion> ExpiredDeletion for FaultyStore<S> {
    async fn delete_expired(&self) -> Result<u64> {
        self.faults
            .call(Operation::DeleteExpired, self.inner.delete_expired())
            .await?
    }
}
