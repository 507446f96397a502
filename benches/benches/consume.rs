//! Criterion micro-benchmarks of Tollgate's hot path, each group beside its bare-atomic floor.
//!
//! - `hot_path`: `consume`, `consume_partial`, `consume_many` (per amount on a 1,024-amount
//!   slice), `usage`, and `AtomicU64::fetch_add` — one project, one thread.
//! - `round_robin`: `consume` cycling over 1, 1,000 and 65,536 projects (cache behaviour), beside
//!   `fetch_add` cycling over as many padded counters.
//! - `seats`: a seat `acquire` + `release` pair on a per-core pair, and an instance `check`,
//!   beside a `fetch_add` + `fetch_sub` pair.
//! - `switch`: a `consume` that crosses the Active key's limit and switches to the Reserved key,
//!   beside a `consume` over as many distinct projects that crosses nothing.
//!
//! State lives on disk as in production (the 65,536-project state is built in memory and
//! copied, see `fixture::DiskState`), except the switch pool (see `SwitchPool`).
//! Run: `cargo bench -p tollgate-bench` (`-- --quick` for a fast pass).

use std::cell::OnceCell;
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};

use tollgate_bench::contestants::Padded;
use tollgate_bench::fixture::{self, DiskState, Keys};
use tollgate_core::{
    Engine, InstanceOs, Key, LicenseClass, LicenseType, PaymentMode, ProjectHandle, Purchase,
    Scheme,
};

/// Projects in the round-robin fixture.
const MANY_PROJECTS: usize = 65_536;
/// Amounts per `consume_many` call.
const SLICE: usize = 1_024;

fn hot_path(c: &mut Criterion) {
    let dir = fixture::disk_dir().expect("temporary directory");
    let engine = fixture::open(dir.path(), 16).expect("engine opens");
    fixture::populate(&engine, 1, Keys::ActiveAndReserve).expect("project and keys");
    let project = engine.project("p0").expect("project exists");
    let counter = Padded::default();
    let amounts = vec![1u64; SLICE];

    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("atomic_fetch_add", |b| {
        // Relaxed: the counter is the only datum (the floor any metering must pay).
        b.iter(|| black_box(counter.0.fetch_add(1, Ordering::Relaxed)))
    });
    group.bench_function("consume", |b| {
        b.iter(|| project.consume(black_box(1)).expect("granted"))
    });
    group.bench_function("consume_partial", |b| {
        b.iter(|| project.consume_partial(black_box(1)).expect("granted"))
    });
    group.bench_function("usage", |b| b.iter(|| black_box(project.usage())));
    group.throughput(Throughput::Elements(SLICE as u64));
    group.bench_function("consume_many_1024", |b| {
        b.iter(|| {
            let (granted, outcome) = project.consume_many(black_box(&amounts));
            assert_eq!((granted, outcome.is_ok()), (SLICE, true));
        })
    });
    group.finish();
}

/// The 65,536-project state, built once for the groups that walk it.
struct ManyProjects {
    handles: Vec<ProjectHandle>,
    _engine: Engine,
    _state: DiskState,
}

impl ManyProjects {
    fn build() -> ManyProjects {
        let count = MANY_PROJECTS;
        let state = DiskState::build(count, count as u32).expect("65,536-project state");
        let engine = Engine::open_with(state.dir.path(), fixture::options(state.dir.path()))
            .expect("engine opens");
        let handles = fixture::handles(&engine, count).expect("handles");
        // Fault every record's page in now, not in the first timed iterations.
        for project in &handles {
            project.consume(1).expect("granted");
        }
        ManyProjects {
            handles,
            _engine: engine,
            _state: state,
        }
    }
}

/// Built on first use (a filtered run may need none), dropped at the end of `main` so that its
/// directory is removed: a `static` would never be dropped.
type Lazy = OnceCell<ManyProjects>;

fn round_robin(c: &mut Criterion, many: &Lazy) {
    let counters: Vec<Padded> = (0..MANY_PROJECTS).map(|_| Padded::default()).collect();

    let mut group = c.benchmark_group("round_robin");
    group.throughput(Throughput::Elements(1));
    for n in [1, 1_000, MANY_PROJECTS] {
        group.bench_with_input(BenchmarkId::new("atomic_fetch_add", n), &n, |b, &n| {
            let mut i = 0;
            b.iter(|| {
                i = if i + 1 == n { 0 } else { i + 1 };
                // Relaxed: as in `hot_path`.
                black_box(counters[i].0.fetch_add(1, Ordering::Relaxed))
            })
        });
        group.bench_with_input(BenchmarkId::new("consume", n), &n, |b, &n| {
            let handles = &many.get_or_init(ManyProjects::build).handles;
            let mut i = 0;
            b.iter(|| {
                i = if i + 1 == n { 0 } else { i + 1 };
                handles[i].consume(1).expect("granted")
            })
        });
    }
    group.finish();
}

/// Projects whose next 1-byte `consume` switches: Active key of 1 byte unused, Reserved key
/// present. After the switch the former reserve (1 byte, unused) is Active, so adding one key
/// re-arms the project.
///
/// The pool lives in memory (`/dev/shm`): re-arming is an admin transaction, which on disk
/// costs an `fsync` (about 1 ms here, more under load), so criterion would get only a few
/// hundred switches and its mean would be ruled by a handful of preemptions. The timed
/// `consume` itself does no I/O either way; `compare`'s switch-latency run is on disk.
struct SwitchPool {
    engine: Engine,
    projects: Vec<ProjectHandle>,
    cursor: usize,
    keys: u64,
    _dir: tempfile::TempDir,
}

impl SwitchPool {
    fn new() -> SwitchPool {
        let dir = fixture::memory_dir().expect("temporary directory");
        SwitchPool {
            engine: fixture::open(dir.path(), 1 << 20).expect("engine opens"),
            projects: Vec::new(),
            cursor: 0,
            keys: 0,
            _dir: dir,
        }
    }

    fn add_key(&mut self, project: &str) {
        self.keys += 1;
        let key = fixture::key(&format!("k{}", self.keys), 1);
        self.engine.add_key(project, key).expect("key added");
    }

    /// An armed project that no pending input holds: the next one of the ring, re-armed, or a
    /// new one when the next one is still armed (its consume has not run yet).
    fn next_armed(&mut self) -> ProjectHandle {
        if let Some(project) = self.projects.get(self.cursor).cloned() {
            let usage = project.usage();
            if !usage.has_reserved {
                // The timed consume took the 1-byte Active key and switched to the reserve,
                // which is now Active and untouched.
                assert_eq!(usage.active_used, 0, "the timed consume did not switch");
                self.add_key(project.name());
                self.cursor = (self.cursor + 1) % self.projects.len();
                return project;
            }
        }
        let name = format!("s{}", self.projects.len());
        self.engine.create_project(&name).expect("project created");
        self.add_key(&name);
        self.add_key(&name);
        let project = self.engine.project(&name).expect("project exists");
        self.projects.push(project.clone());
        self.cursor = 0;
        project
    }
}

fn switch(c: &mut Criterion, many: &Lazy) {
    let mut pool = SwitchPool::new();

    let mut group = c.benchmark_group("switch");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("consume_crossing_active_limit", |b| {
        b.iter_batched_ref(
            || pool.next_armed(),
            |project| project.consume(1).expect("granted across the switch"),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("consume_not_crossing_round_robin", |b| {
        let plain = &many.get_or_init(ManyProjects::build).handles;
        let mut i = 0;
        b.iter(|| {
            i = if i + 1 == MANY_PROJECTS { 0 } else { i + 1 };
            plain[i].consume(1).expect("granted")
        })
    });
    group.finish();
}

fn seats(c: &mut Criterion) {
    let dir = fixture::disk_dir().expect("temporary directory");
    let engine = fixture::open(dir.path(), 16).expect("engine opens");
    engine.create_project("svm").expect("project");
    let key = Key {
        scheme: Scheme::PerCore { max_cores: 1_000 },
        ..Key::data_volume("CORES", 1)
    };
    engine.add_key("svm", key).expect("per-core key");
    let seats = engine
        .seats("svm", LicenseClass::Cores)
        .expect("seat handle");
    engine
        .buy_licenses(&Purchase::new(LicenseType::Server, 1, PaymentMode::Annual))
        .expect("purchase");
    engine
        .add_instance("backup-01", InstanceOs::Linux, None)
        .expect("instance");
    engine.assign("backup-01", None).expect("assignment");
    let instance = engine.instance("backup-01").expect("instance handle");
    let counter = Padded::default();

    let mut group = c.benchmark_group("seats");
    group.throughput(Throughput::Elements(1));
    group.bench_function("atomic_fetch_add_sub", |b| {
        // Relaxed: the counter is the only datum (the floor of a gauge).
        b.iter(|| {
            black_box(counter.0.fetch_add(1, Ordering::Relaxed));
            black_box(counter.0.fetch_sub(1, Ordering::Relaxed))
        })
    });
    group.bench_function("acquire_release", |b| {
        b.iter(|| {
            seats.acquire(black_box(1)).expect("seat free");
            seats.release(black_box(1)).expect("seat held");
        })
    });
    group.bench_function("instance_check", |b| {
        b.iter(|| instance.check().expect("licensed"))
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let many = Lazy::new();
    hot_path(&mut c);
    seats(&mut c);
    round_robin(&mut c, &many);
    switch(&mut c, &many);
    c.final_summary();
}
