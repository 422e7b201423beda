//! The one way every store benchmark in this workspace drives a store, so
//! ours, the raw driver (the floor) and the tower-sessions peer do the same
//! work in the same run.
//!
//! A [`Target`] is anything that can load, save, create and delete a session
//! picked by a number. [`Contenders`], the load tool, runs the four workloads
//! (`load`, `save`, `create`, `mixed`: 80% load, 15% save, 4% create, 1%
//! delete) at 1 and 64 concurrent tasks on a two-worker tokio runtime, for
//! several interleaved rounds per target, and reports the median time per
//! operation. Micro-benchmarks (ids, the codec) use criterion instead.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::json;
use session_core::{time::OffsetDateTime, Data, Id, Record, SessionStore};

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
    /// Write an existing session back with a compare-and-swap `update` over
    /// its current version (ours); a target without one (raw drivers, the
    /// peers) saves instead, which is what tower-sessions does.
    Update,
    /// Move an existing session's expiry forward (sliding expiry) with
    /// `touch` (ours); a target without one (raw drivers, the peers) saves
    /// instead, which is what tower-sessions does for a sliding session.
    Touch,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 6] = [
        Workload::Load,
        Workload::Save,
        Workload::Create,
        Workload::Mixed,
        Workload::Update,
        Workload::Touch,
    ];

    /// The name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Load => "load",
            Workload::Save => "save",
            Workload::Create => "create",
            Workload::Mixed => "mixed",
            Workload::Update => "update",
            Workload::Touch => "touch",
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
    /// Writes the session picked by `key` back over its current version;
    /// by default a [`save`](Self::save), for targets with no `update`.
    fn update(&self, key: u64) -> impl Future<Output = ()> + Send {
        self.save(key)
    }
    /// Moves the expiry of the session picked by `key` forward; by default
    /// a [`save`](Self::save).
    fn touch(&self, key: u64) -> impl Future<Output = ()> + Send {
        self.save(key)
    }
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

/// `data` with its `last_seen` moved by one second: what a save writes
/// differs from what the one before it wrote. A backend may skip rewriting
/// bytes it already holds (SQLite does, for a row written back unchanged),
/// which no real save is: a session is saved because it changed.
pub fn changed_data(data: &Data) -> Data {
    let mut changed = data.clone();
    let last_seen = changed
        .get("last_seen")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    changed.insert("last_seen".to_owned(), json!(last_seen + 1));
    changed
}

/// Which of two versions of a session the next save of it writes, per
/// session: they take turns, so no save writes what is already stored.
///
/// Every target's `save` uses it (with [`changed_data`] as the second
/// version), ours, raw and peer alike: SQLite and MariaDB skip most of the
/// work of a write that changes nothing (SQLite leaves the row's page alone,
/// InnoDB reports the row unchanged), and a save that only ever wrote the
/// stored bytes back would measure that shortcut instead of a save.
#[derive(Debug)]
pub struct Flips(Vec<AtomicBool>);

impl Flips {
    /// One turn-taker for each of `population` sessions.
    pub fn new(population: usize) -> Self {
        Self(
            (0..population.max(1))
                .map(|_| AtomicBool::new(false))
                .collect(),
        )
    }

    /// The version this save of the session picked by `key` writes:
    /// `first` and `second` in turns.
    pub fn pick<'a, T: ?Sized>(&self, key: u64, first: &'a T, second: &'a T) -> &'a T {
        if self.0[key as usize % self.0.len()].fetch_xor(true, Ordering::Relaxed) {
            second
        } else {
            first
        }
    }
}

/// `records` with their data changed ([`changed_data`]): the second
/// version [`Flips`] hands out.
pub fn changed_records(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .map(|record| Record {
            data: changed_data(&record.data),
            ..record.clone()
        })
        .collect()
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
    /// Each record's version as last written by an `update`.
    versions: Vec<std::sync::atomic::AtomicU64>,
    /// Each record, lent to one `update` at a time: the compare-and-swap
    /// writes it in place, so the harness adds no copy that `save` (which
    /// takes the record by reference) does not pay either. A task that finds
    /// the slot taken (another task on the same key) works on a copy.
    lent: Vec<std::sync::Mutex<Option<Record>>>,
    /// Each record with one value of its data changed; saves of one session
    /// write the two in turn (see [`changed_data`]).
    changed: Vec<Record>,
    flips: Flips,
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
        let versions = records
            .iter()
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        let lent = records
            .iter()
            .map(|record| std::sync::Mutex::new(Some(record.clone())))
            .collect();
        let changed = changed_records(&records);
        let flips = Flips::new(records.len());
        Self {
            store,
            records,
            versions,
            lent,
            changed,
            flips,
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
        let records = self.flips.pick(key, &self.records, &self.changed);
        self.store
            .save(&records[key as usize % records.len()])
            .await
            .expect("save");
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

    /// A compare-and-swap over the version this target last wrote; a
    /// conflict (another task wrote it first) counts as an operation too
    /// and learns the stored version. A deleted session (the mixed
    /// workload deletes some) is saved back at its version.
    async fn update(&self, key: u64) {
        let index = key as usize % self.records.len();
        let version = &self.versions[index];
        let slot = &self.lent[index];
        let taken = slot.lock().ok().and_then(|mut slot| slot.take());
        let mut record = taken.unwrap_or_else(|| self.records[index].clone());
        record.version = version.load(Ordering::Relaxed);
        match self.store.update(&mut record).await.expect("update") {
            session_core::Update::Written => version.store(record.version, Ordering::Relaxed),
            session_core::Update::Conflict(current) => {
                version.store(current.version, Ordering::Relaxed);
            }
            _ => self.store.save(&record).await.expect("save a gone session"),
        }
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(record);
        }
    }

    async fn touch(&self, key: u64) {
        let expiry_date = OffsetDateTime::now_utc() + session_core::time::Duration::days(1);
        std::hint::black_box(
            self.store
                .touch(&self.pick(key).id, expiry_date)
                .await
                .expect("touch"),
        );
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
            /// Each record with its data changed ([`$crate::changed_data`]);
            /// saves of one session write the two in turn.
            changed: Vec<$core::session::Record>,
            flips: $crate::Flips,
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
                let changed = records
                    .iter()
                    .map(|record| $core::session::Record {
                        data: $crate::changed_data(&record.data),
                        ..record.clone()
                    })
                    .collect();
                let flips = $crate::Flips::new(records.len());
                Self {
                    store,
                    records,
                    changed,
                    flips,
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
                let records = self.flips.pick(key, &self.records, &self.changed);
                let record = &records[key as usize % records.len()];
                self.store.save(record).await.expect("save");
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
        Workload::Update => target.update(key).await,
        Workload::Touch => target.touch(key).await,
        Workload::Mixed => match key % 100 {
            0..=79 => target.load(key >> 8).await,
            80..=94 => target.save(key >> 8).await,
            95..=98 => target.create().await,
            _ => target.delete(key >> 8).await,
        },
    }
}

/// Runs `workload` on `tasks` tasks for `length` and returns how many
/// operations completed and the wall time they took (from the start until the
/// last task finished its operation in flight when time was up).
pub async fn drive_for<T: Target>(
    target: Arc<T>,
    workload: Workload,
    tasks: usize,
    length: Duration,
) -> (u64, Duration) {
    let tasks = tasks.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let target = Arc::clone(&target);
        let stop = Arc::clone(&stop);
        handles.push(tokio::spawn(async move {
            let mut state =
                0x9E37_79B9_7F4A_7C15 ^ (task as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let mut done = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                run_op(&*target, workload, &mut state).await;
                done += 1;
            }
            done
        }));
    }
    // A plain thread keeps time: a store whose calls never wait (memory,
    // moka, sled) keeps both workers busy, and tokio's timer would not fire
    // until a worker parks.
    let timer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(length);
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut ops = 0;
    for handle in handles {
        ops += handle.await.expect("benchmark task panicked");
    }
    let elapsed = start.elapsed();
    timer.join().expect("benchmark timer panicked");
    (ops, elapsed)
}

/// How long and how often [`Contenders`] measures each cell, from the
/// environment:
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `BENCH_ROUNDS` | 7 | measured rounds per target and cell (the median is reported) |
/// | `BENCH_ROUND_MS` | 500 | length of one round |
/// | `BENCH_WARM_UP_MS` | 200 | one unmeasured round per target before each cell |
///
/// and from the command line (`cargo bench -p bench --bench redis -- save/64`):
/// the first argument that is not a flag keeps only the cells whose
/// `<workload>/<tasks>` contains it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Measured rounds per target and cell.
    pub rounds: usize,
    /// Length of one round.
    pub round: Duration,
    /// Length of the warm-up round.
    pub warm_up: Duration,
    /// Only cells whose `<workload>/<tasks>` contains this.
    pub filter: Option<String>,
}

impl Settings {
    /// Reads the settings from the environment and the command line.
    pub fn from_env() -> Self {
        fn env_or(name: &str, default: u64) -> u64 {
            std::env::var(name)
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        }
        Self {
            rounds: usize::try_from(env_or("BENCH_ROUNDS", 7))
                .unwrap_or(7)
                .max(1),
            round: Duration::from_millis(env_or("BENCH_ROUND_MS", 500)),
            warm_up: Duration::from_millis(env_or("BENCH_WARM_UP_MS", 200)),
            filter: filter_argument(std::env::args().skip(1)),
        }
    }

    /// Whether the benchmark binary was started by `cargo bench` (which
    /// passes `--bench`) rather than by `cargo test --benches`, which only
    /// checks that it runs: the load tool then does nothing.
    pub fn is_bench_run() -> bool {
        std::env::args().any(|arg| arg == "--bench")
    }
}

/// The first argument that is neither a flag nor a flag's value: `cargo
/// bench -- save/64` passes `save/64 --bench`; criterion-style flags such
/// as `--warm-up-time 1` are skipped with their value.
fn filter_argument(args: impl Iterator<Item = String>) -> Option<String> {
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "--bench" {
            continue;
        }
        if arg.starts_with('-') {
            if !arg.contains('=') && args.peek().is_some_and(|next| !next.starts_with('-')) {
                args.next();
            }
            continue;
        }
        return Some(arg);
    }
    None
}

/// CPU time this process has used so far (user and system, all threads),
/// from `/proc/self/stat` in clock ticks of 10 ms; `None` where that file
/// does not exist.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the file, 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The median of `values` (which must not be empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

type Runner<'a> = Box<dyn Fn(Workload, usize, Duration) -> (u64, Duration) + 'a>;

/// The load tool: several targets measured side by side. For each workload
/// and concurrency level (a cell), every target warms up, then the targets
/// take turns for [`Settings::rounds`] rounds (who goes first rotates from
/// round to round), so a noisy moment of the machine hits all of them alike
/// instead of one. Each target's figure is the median of its rounds, in
/// microseconds per operation (at 64 tasks, wall time over operations: the
/// inverse of throughput).
///
/// The first target added is "ours": the table ends with `ours ÷ x` for every
/// other target x, our throughput over x's (above 1, ours is faster).
///
/// ```no_run
/// # use std::sync::Arc;
/// # fn demo<A: bench::Target, B: bench::Target>(a: Arc<A>, b: Arc<B>) {
/// let runtime = bench::runtime();
/// bench::Contenders::new(&runtime)
///     .add("ours", a)
///     .add("raw", b)
///     .run("store", &bench::Workload::ALL);
/// # }
/// ```
pub struct Contenders<'a> {
    runtime: &'a tokio::runtime::Runtime,
    entries: Vec<(String, Runner<'a>)>,
    settings: Settings,
}

impl<'a> Contenders<'a> {
    /// No targets yet, on `runtime`, with [`Settings::from_env`].
    pub fn new(runtime: &'a tokio::runtime::Runtime) -> Self {
        Self {
            runtime,
            entries: Vec::new(),
            settings: Settings::from_env(),
        }
    }

    /// Adds `target` under `name` (unless `BENCH_TARGETS`, a comma-separated
    /// list of names, leaves it out: handy under a profiler).
    pub fn add<T: Target>(mut self, name: &str, target: Arc<T>) -> Self {
        if let Ok(names) = std::env::var("BENCH_TARGETS") {
            if !names.split(',').any(|wanted| wanted.trim() == name) {
                return self;
            }
        }
        let runtime = self.runtime;
        self.entries.push((
            name.to_owned(),
            Box::new(move |workload, tasks, length| {
                runtime.block_on(drive_for(Arc::clone(&target), workload, tasks, length))
            }),
        ));
        self
    }

    /// Measures every target on `workloads` at every concurrency level,
    /// printing each cell as it completes and, at the end, a Markdown table
    /// under the heading `title`. Returns the table.
    #[allow(clippy::print_stdout, clippy::print_stderr)] // The table is the output.
    pub fn run(&self, title: &str, workloads: &[Workload]) -> String {
        let settings = &self.settings;
        let names: Vec<&str> = self.entries.iter().map(|(name, _)| name.as_str()).collect();
        let mut table = format!(
            "{title} (µs per operation, median of {} interleaved rounds of {} ms)\n\n| workload | tasks |",
            settings.rounds,
            settings.round.as_millis()
        );
        for name in &names {
            table.push_str(&format!(" {name} |"));
        }
        for name in names.iter().skip(1) {
            table.push_str(&format!(" {} ÷ {name} |", names[0]));
        }
        table.push_str("\n|---|---|");
        table.push_str(&"---|".repeat(names.len() * 2 - 1));
        table.push('\n');
        let count = self.entries.len();
        for &workload in workloads {
            for tasks in CONCURRENCY {
                let cell = format!("{}/{tasks}", workload.name());
                if let Some(filter) = &settings.filter {
                    if !cell.contains(filter.as_str()) {
                        continue;
                    }
                }
                for (_, runner) in &self.entries {
                    runner(workload, tasks, settings.warm_up);
                }
                let mut figures: Vec<Vec<f64>> = vec![Vec::new(); count];
                // Client CPU (this process) over all rounds: total and ops.
                let mut cpu = vec![(Duration::ZERO, 0_u64); count];
                for round in 0..settings.rounds {
                    for turn in 0..count {
                        let index = (round + turn) % count;
                        let cpu_before = process_cpu_time();
                        let (ops, elapsed) =
                            (self.entries[index].1)(workload, tasks, settings.round);
                        if let (Some(before), Some(after)) = (cpu_before, process_cpu_time()) {
                            cpu[index].0 += after.saturating_sub(before);
                            cpu[index].1 += ops;
                        }
                        figures[index].push(elapsed.as_secs_f64() * 1e6 / ops.max(1) as f64);
                    }
                }
                let medians: Vec<f64> = figures.iter().cloned().map(median).collect();
                let mut line = format!("| {} | {tasks} |", workload.name());
                for (index, figure) in medians.iter().enumerate() {
                    line.push_str(&format!(" {} |", three_digits(*figure)));
                    let low = figures[index].iter().copied().fold(f64::INFINITY, f64::min);
                    let high = figures[index].iter().copied().fold(0.0, f64::max);
                    let (cpu_time, cpu_ops) = cpu[index];
                    eprintln!(
                        "{title} {cell} {}: median {} µs/op (rounds {}..{}), client CPU {} µs/op",
                        names[index],
                        three_digits(*figure),
                        three_digits(low),
                        three_digits(high),
                        three_digits(cpu_time.as_secs_f64() * 1e6 / cpu_ops.max(1) as f64)
                    );
                }
                for figure in medians.iter().skip(1) {
                    line.push_str(&format!(" {:.2}x |", figure / medians[0]));
                }
                table.push_str(&line);
                table.push('\n');
            }
        }
        println!("\n{table}");
        table
    }
}

/// `value` with three significant digits (at least none after the point).
pub fn three_digits(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}
