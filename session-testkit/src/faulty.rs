//! A store wrapper that fails or slows chosen operations on demand, and
//! counts every call, for testing what sits on top of a store (caches,
//! middleware, the deletion task).

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use session_core::{async_trait, Error, ExpiredDeletion, Id, Record, Result, SessionStore};

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
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 5] = [
        Operation::Create,
        Operation::Save,
        Operation::Load,
        Operation::Delete,
        Operation::DeleteExpired,
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
}

/// The shared controls of a [`FaultyStore`]: cheap to clone, so a test keeps
/// one after moving the store into a layer or a task.
#[derive(Clone, Default)]
pub struct Faults {
    ops: Arc<[OperationFaults; 5]>,
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

#[async_trait]
impl<S: SessionStore> SessionStore for FaultyStore<S> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.faults.enter(Operation::Create).await?;
        self.inner.create(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.faults.enter(Operation::Save).await?;
        self.inner.save(record).await
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        self.faults.enter(Operation::Load).await?;
        self.inner.load(session_id).await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.faults.enter(Operation::Delete).await?;
        self.inner.delete(session_id).await
    }
}

#[async_trait]
impl<S: ExpiredDeletion> ExpiredDeletion for FaultyStore<S> {
    async fn delete_expired(&self) -> Result<u64> {
        self.faults.enter(Operation::DeleteExpired).await?;
        self.inner.delete_expired().await
    }
}
