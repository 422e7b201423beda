//! The one way every store benchmark in this workspace drives a store, so
//! ours, the raw driver (the floor) and the tower-sessions peer do the same
//! work in the same run.
//!
//! A [`Target`] is anything that can load, save, create and delete a session
//! picked by a number. [`bench_target`] runs the four workloads (`load`,
//! `save`, `create`, `mixed`: 80% load, 15% save, 4% create, 1% delete) at 1
//! and 64 concurrent tasks on a two-worker tokio runtime and reports the time
//! per operation (criterion's throughput is operations per second over all
//! tasks).

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BenchmarkGroup, Throughput};
use serde_json::json;
use session_core::{time::OffsetDateTime, Data, Id, Record, SessionStore};

pub use criterion;

/// The concurrency levels every store is measured at.
pub const CONCURRENCY: [usize; 2] = [1, 64];

/// The workloads every store is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Load an existing session.
    Load,
    /// Save (upsert) an existing session.
    Save,
    /// Create a new session.
    Create,
    /// 80% load, 15% save, 4% create, 1% delete.
    Mixed,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 4] = [
        Workload::Load,
        Workload::Save,
        Workload::Create,
        Workload::Mixed,
    ];

    /// The name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Load => "load",
            Workload::Save => "save",
            Workload::Create => "create",
            Workload::Mixed => "mixed",
        }
    }
}

/// Something a benchmark drives: a store, a raw driver or a peer store,
/// holding a population of sessions picked by `key % population`.
pub trait Target: Send + Sync + 'static {
    /// Loads the session picked by `key`.
    fn load(&self, key: u64) -> impl Future<Output = ()> + Send;
    /// Saves the session picked by `key` (an upsert).
    fn save(&self, key: u64) -> impl Future<Output = ()> + Send;
    /// Creates a new session.
    fn create(&self) -> impl Future<Output = ()> + Send;
    /// Deletes the session picked by `key`.
    fn delete(&self, key: u64) -> impl Future<Output = ()> + Send;
}

/// A realistic session's data: a user, a few flags, a small cart; about 300
/// bytes of JSON.
pub fn sample_data() -> Data {
    let value = json!({
        "user_id": 421_337,
        "user_name": "ferris@example.com",
        "roles": ["customer", "beta"],
        "csrf": "c2Vzc2lvbi13b3Jrc3BhY2UtY3NyZi10b2tlbg",
        "cart": [
            {"sku": "CRAB-PLUSH-01", "qty": 2, "price": 19.99},
            {"sku": "RUST-MUG-XL", "qty": 1, "price": 12.5}
        ],
        "last_seen": 1_763_769_600,
        "flash": null
    });
    match value {
        serde_json::Value::Object(map) => map.into_iter().collect(),
        _ => Data::new(),
    }
}

/// A record with [`sample_data`] expiring in a day.
pub fn sample_record() -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + session_core::time::Duration::days(1));
    record.data = sample_data();
    record
}

/// `count` fresh ids, for a target's population.
pub fn population(count: usize) -> Vec<Id> {
    (0..count).map(|_| Id::default()).collect()
}

/// Any of our stores as a [`Target`]: a population of [`sample_record`]s
/// saved up front, loaded, saved and deleted by key; `create` makes a fresh
/// record from the same template.
#[derive(Debug)]
pub struct StoreTarget<S> {
    store: S,
    records: Vec<Record>,
    template: Record,
}

impl<S: SessionStore> StoreTarget<S> {
    /// Saves `population` sample records into `store`.
    pub async fn populated(store: S, population_size: usize) -> Self {
        let template = sample_record();
        let records: Vec<Record> = population(population_size)
            .into_iter()
            .map(|id| Record {
                id,
                ..template.clone()
            })
            .collect();
        for record in &records {
            store.save(record).await.expect("populate the store");
        }
        Self {
            store,
            records,
            template,
        }
    }

    /// The store under test.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The record picked by `key`.
    pub fn pick(&self, key: u64) -> &Record {
        &self.records[key as usize % self.records.len()]
    }
}

impl<S: SessionStore> Target for StoreTarget<S> {
    async fn load(&self, key: u64) {
        std::hint::black_box(self.store.load(&self.pick(key).id).await.expect("load"));
    }

    async fn save(&self, key: u64) {
        self.store.save(self.pick(key)).await.expect("save");
    }

    async fn create(&self) {
        let mut record = Record {
            id: Id::default(),
            ..self.template.clone()
        };
        self.store.create(&mut record).await.expect("create");
    }

    async fn delete(&self, key: u64) {
        self.store.delete(&self.pick(key).id).await.expect("delete");
    }
}

/// Defines a [`Target`] type `$name` for tower-sessions stores, given the
/// `tower-sessions-core` crate they implement (the peers span several
/// releases, so this cannot be one generic type): `$name::populated(store,
/// n).await` saves the same [`sample_record`]s as [`StoreTarget::populated`].
///
/// ```ignore
/// bench::peer_target!(PeerTarget, tower_sessions_core_0_15);
/// let peer = PeerTarget::populated(tower_sessions_memory_store::MemoryStore::default(), 10_000).await;
/// ```
#[macro_export]
macro_rules! peer_target {
    ($name:ident, $core:ident) => {
        struct $name<S> {
            store: S,
            records: Vec<$core::session::Record>,
            template: $core::session::Record,
        }

        impl<S: $core::SessionStore> $name<S> {
            async fn populated(store: S, population_size: usize) -> Self {
                let ours = $crate::sample_record();
                let template = $core::session::Record {
                    id: $core::session::Id(ours.id.0),
                    data: ours.data,
                    expiry_date: ours.expiry_date,
                };
                let records: Vec<_> = $crate::population(population_size)
                    .into_iter()
                    .map(|id| $core::session::Record {
                        id: $core::session::Id(id.0),
                        ..template.clone()
                    })
                    .collect();
                for record in &records {
                    store.save(record).await.expect("populate the peer store");
                }
                Self {
                    store,
                    records,
                    template,
                }
            }

            fn pick(&self, key: u64) -> &$core::session::Record {
                &self.records[key as usize % self.records.len()]
            }
        }

        impl<S: $core::SessionStore> $crate::Target for $name<S> {
            async fn load(&self, key: u64) {
                ::std::hint::black_box(self.store.load(&self.pick(key).id).await.expect("load"));
            }

            async fn save(&self, key: u64) {
                self.store.save(self.pick(key)).await.expect("save");
            }

            async fn create(&self) {
                let mut record = $core::session::Record {
                    id: $core::session::Id::default(),
                    ..self.template.clone()
                };
                self.store.create(&mut record).await.expect("create");
            }

            async fn delete(&self, key: u64) {
                self.store.delete(&self.pick(key).id).await.expect("delete");
            }
        }
    };
}
/// The runtime benchmarks run on: two workers, like the machine's two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the benchmark runtime")
}

// A cheap per-task generator: the workload mix must not cost more than the
// operations it picks.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn run_op<T: Target>(target: &T, workload: Workload, state: &mut u64) {
    let key = next(state);
    match workload {
        Workload::Load => target.load(key).await,
        Workload::Save => target.save(key).await,
        Workload::Create => target.create().await,
        Workload::Mixed => match key % 100 {
            0..=79 => target.load(key >> 8).await,
            80..=94 => target.save(key >> 8).await,
            95..=98 => target.create().await,
            _ => target.delete(key >> 8).await,
        },
    }
}

/// Runs `ops` operations of `workload` spread over `tasks` tasks and returns
/// the wall time they took together.
pub async fn drive<T: Target>(
    target: Arc<T>,
    workload: Workload,
    tasks: usize,
    ops: u64,
) -> Duration {
    let tasks = tasks.max(1);
    let per_task = ops / tasks as u64;
    let extra = ops % tasks as u64;
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let target = Arc::clone(&target);
        let count = per_task + u64::from((task as u64) < extra);
        handles.push(tokio::spawn(async move {
            let mut state =
                0x9E37_79B9_7F4A_7C15 ^ (task as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            for _ in 0..count {
                run_op(&*target, workload, &mut state).await;
            }
        }));
    }
    for handle in handles {
        handle.await.expect("benchmark task panicked");
    }
    start.elapsed()
}

type Runner<'a> = Box<dyn Fn(Workload, usize, u64) -> Duration + 'a>;

/// Several targets measured side by side: for each workload and concurrency
/// level, every target runs in turn before the next cell starts (who goes
/// first rotates from cell to cell), so a noisy moment of the machine hits
/// all of them alike instead of one.
///
/// ```no_run
/// # use std::sync::Arc;
/// # fn demo<A: bench::Target, B: bench::Target>(c: &mut criterion::Criterion, a: Arc<A>, b: Arc<B>) {
/// let runtime = bench::runtime();
/// let mut group = c.benchmark_group("store");
/// bench::Contenders::new(&runtime)
///     .add("ours", a)
///     .add("raw", b)
///     .run(&mut group, &bench::Workload::ALL);
/// # }
/// ```
pub struct Contenders<'a> {
    runtime: &'a tokio::runtime::Runtime,
    entries: Vec<(String, Runner<'a>)>,
}

impl<'a> Contenders<'a> {
    /// No targets yet, on `runtime`.
    pub fn new(runtime: &'a tokio::runtime::Runtime) -> Self {
        Self {
            runtime,
            entries: Vec::new(),
        }
    }

    /// Adds `target` under `name`.
    pub fn add<T: Target>(mut self, name: &str, target: Arc<T>) -> Self {
        let runtime = self.runtime;
        self.entries.push((
            name.to_owned(),
            Box::new(move |workload, tasks, ops| {
                runtime.block_on(drive(Arc::clone(&target), workload, tasks, ops))
            }),
        ));
        self
    }

    /// Measures every target on `workloads` at every concurrency level, as
    /// `<workload>/<tasks>/<name>` in `group`.
    pub fn run(
        &self,
        group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
        workloads: &[Workload],
    ) {
        group.throughput(Throughput::Elements(1));
        let count = self.entries.len().max(1);
        let mut cell = 0;
        for &workload in workloads {
            for tasks in CONCURRENCY {
                // Rotate who goes first, so drift in the machine's load
                // within a cell does not always fall on the same target.
                for turn in 0..self.entries.len() {
                    let (name, runner) = &self.entries[(cell + turn) % count];
                    let id = format!("{}/{tasks}/{name}", workload.name());
                    group.bench_function(id, |b| b.iter_custom(|ops| runner(workload, tasks, ops)));
                }
                cell += 1;
            }
        }
    }
}

/// Measures one `target` under `name` on every workload at every concurrency
/// level. Prefer [`Contenders`] to compare targets: it interleaves them.
pub fn bench_target<T: Target>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    target: Arc<T>,
) {
    Contenders::new(runtime)
        .add(name, target)
        .run(group, &Workload::ALL);
}

/// Measures one `target` under `name` on one workload at every concurrency
/// level.
pub fn bench_workload<T: Target>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    target: Arc<T>,
    workload: Workload,
) {
    Contenders::new(runtime)
        .add(name, target)
        .run(group, &[workload]);
}
