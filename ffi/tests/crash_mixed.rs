//! Rule R34 (docs/rules.md) under kill -9, with Rust and C clients at once: per trial, four
//! consumer processes (two Rust, using `tollgate_core` directly, and two C programs, using
//! `tg_consume` and friends through `libtollgate.so`) meter one project through the Active→Reserved
//! switch, two threads each, and record every grant they saw succeed in a shared file. All four are
//! SIGKILLed at a random instant; the state is reopened, and the trial asserts:
//! - acknowledged ≤ charged ≤ acknowledged + in flight (no acknowledged grant lost, nothing
//!   charged that no call asked for);
//! - no key is charged beyond its limit;
//! - the pair switched exactly once if the Active key was used up, never otherwise.
//!
//! Most trials kill at a random point of progress: a random number of acknowledged bytes
//! between none and both keys' worth, then a random delay under a millisecond, so the kill
//! lands before or after the switch whatever the machine's speed. One trial in ten kills at a
//! random instant of the consumers' start-up instead (opening the state, before any grant).
//!
//! `TOLLGATE_CRASH_TRIALS` sets the number of trials (default 50, what CI runs). The 1,000-trial
//! run: `TOLLGATE_CRASH_TRIALS=1000 cargo test --release -p tollgate-ffi --test crash_mixed`.
//!
//! The C client (`tests/c/crash_client.c`) is built once per run with
//! `cc -O2 -Wall -Wextra -Werror` against the `libtollgate.so` of this build, which cargo puts
//! beside this test's executable (see `common`). `$CC` overrides the compiler.
#![cfg(target_os = "linux")]

mod common;

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{compiler_fence, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{assert_success, compiler, library_dir, this_build_library, workspace, Language};
use tollgate_core::{EventKind, Key, KeyStatus, Refusal};

const ACTIVE: u64 = 48 << 20;
const RESERVE: u64 = 48 << 20;
const RUST_PROCESSES: usize = 2;
const C_PROCESSES: usize = 2;
const PROCESSES: usize = RUST_PROCESSES + C_PROCESSES;
const THREADS: usize = 2;
const SLOTS: usize = PROCESSES * THREADS;
/// The acknowledgement file, in 64-bit words, as `crash_client.c` describes it: word 0 is "go",
/// word 1 + p is process p's "ready", and slot s is the pair of words at `HEADER_WORDS + 2 s`
/// (bytes acknowledged, bytes of the call in flight).
const HEADER_WORDS: usize = 8;
const WORDS: usize = HEADER_WORDS + 2 * SLOTS;
/// How long consumers may take to start, or to make the progress a trial waits for.
const PATIENCE: Duration = Duration::from_secs(60);

/// The acknowledgement file, mapped shared: every consumer process maps the same file.
///
/// Memory ordering: while the consumers run, the test reads the file only to decide when to
/// kill, a progress estimate for which `Relaxed` suffices. The reading that matters happens
/// after every consumer was SIGKILLed and reaped: a SIGKILL stops a thread at an instruction
/// boundary, every store it executed before that point is in the shared page once `wait`
/// returns (stores are never discarded; the kernel's exit and wait paths are full barriers), so
/// the only reordering a consumer must prevent is the compiler's, as for a signal handler on
/// its own thread: `compiler_fence(SeqCst)` between its `Relaxed` stores (see `meter_forever`).
struct AckFile {
    words: *mut AtomicU64,
}

mod sys {
    //! The two libc calls the mapping needs (this crate has no `libc` dependency; std links
    //! libc on Linux). Linux values of the constants.
    use std::ffi::c_void;
    pub const PROT_READ: i32 = 1;
    pub const PROT_WRITE: i32 = 2;
    pub const MAP_SHARED: i32 = 1;
    extern "C" {
        pub fn mmap(
            addr: *mut c_void,
            len: usize,
            prot: i32,
            flags: i32,
            fd: i32,
            offset: i64,
        ) -> *mut c_void;
        pub fn munmap(addr: *mut c_void, len: usize) -> i32;
    }
}

impl AckFile {
    const BYTES: usize = WORDS * 8;

    /// Maps `path`, creating it zero-filled if needed.
    fn map(path: &Path) -> AckFile {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .expect("open the acknowledgement file");
        file.set_len(Self::BYTES as u64)
            .expect("size the acknowledgement file");
        // SAFETY: a fresh shared mapping of a file descriptor that is open for reading and
        // writing and at least `BYTES` long; the result is checked for MAP_FAILED.
        let ptr = unsafe {
            sys::mmap(
                std::ptr::null_mut(),
                Self::BYTES,
                sys::PROT_READ | sys::PROT_WRITE,
                sys::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert!(
            ptr as isize != -1,
            "map the acknowledgement file: {}",
            std::io::Error::last_os_error()
        );
        AckFile { words: ptr.cast() }
    }

    fn word(&self, index: usize) -> &AtomicU64 {
        assert!(index < WORDS);
        // SAFETY: the mapping is `WORDS` words long, page-aligned (so 8-byte aligned), lives
        // until `self` is dropped, and is only ever accessed through atomics, which are valid
        // for any bit pattern; other processes touch it only through atomics too.
        unsafe { &*self.words.add(index) }
    }

    fn go(&self) -> &AtomicU64 {
        self.word(0)
    }

    fn ready(&self, process: usize) -> &AtomicU64 {
        self.word(1 + process)
    }

    fn acked(&self, slot: usize) -> &AtomicU64 {
        self.word(HEADER_WORDS + 2 * slot)
    }

    fn in_flight(&self, slot: usize) -> &AtomicU64 {
        self.word(HEADER_WORDS + 2 * slot + 1)
    }

    /// (acknowledged, in flight), summed over every slot.
    fn totals(&self) -> (u64, u64) {
        // Relaxed: a progress estimate while consumers run; final values once they are reaped
        // (see the type's documentation).
        (0..SLOTS).fold((0, 0), |(acked, in_flight), s| {
            (
                acked + self.acked(s).load(Ordering::Relaxed),
                in_flight + self.in_flight(s).load(Ordering::Relaxed),
            )
        })
    }
}

impl Drop for AckFile {
    fn drop(&mut self) {
        // SAFETY: `words` is the mapping made in `map`, of `BYTES` bytes, and no reference
        // into it outlives `self`.
        unsafe { sys::munmap(self.words.cast(), Self::BYTES) };
    }
}

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Sync for AckFile {}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn dv(id: &str, limit_bytes: u64) -> Key {
    Key::data_volume(id, limit_bytes)
}

/// One metering call of a random kind, as in `crash_client.c`: all or nothing, partial, or a
/// batch of four. Publishes the amount asked for in `in_flight` before the call and returns the
/// bytes granted; a refusal other than exhaustion ends the process.
fn meter(project: &tollgate_core::ProjectHandle, rng: &mut u64, in_flight: &AtomicU64) -> u64 {
    let kind = xorshift(rng) % 8;
    let batch: [u64; 4] = std::array::from_fn(|_| 1 + xorshift(rng) % 128);
    let amount = 1 + xorshift(rng) % 512;
    let asked = if kind == 0 {
        batch.iter().sum()
    } else {
        amount
    };
    // Relaxed, then a compiler fence: see `AckFile`. The amount is in flight before the call
    // can charge it.
    in_flight.store(asked, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    let outcome = match kind {
        0 => match project.consume_many(&batch) {
            (count, Ok(())) | (count, Err(Refusal::Exhausted { .. })) => {
                Ok(batch[..count].iter().sum())
            }
            (_, Err(e)) => Err(e),
        },
        1 => project.consume_partial(amount),
        _ => project.consume(amount).map(|()| amount),
    };
    compiler_fence(Ordering::SeqCst);
    match outcome {
        Ok(granted) => granted,
        Err(Refusal::Exhausted { .. }) => 0,
        Err(e) => {
            eprintln!("rust consumer: unexpected refusal: {e}");
            std::process::exit(3);
        }
    }
}

/// One consumer thread: waits for "go", then meters until killed.
fn meter_forever(project: &tollgate_core::ProjectHandle, acks: &AckFile, slot: usize, seed: u64) {
    let (acked, in_flight) = (acks.acked(slot), acks.in_flight(slot));
    let mut rng = seed;
    // Relaxed: only this thread writes its slot.
    let mut total = acked.load(Ordering::Relaxed);
    // Relaxed: "go" is a bare flag; it publishes no other data.
    while acks.go().load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_micros(50));
    }
    loop {
        let granted = meter(project, &mut rng, in_flight);
        if granted > 0 {
            total += granted;
            // Relaxed: see `AckFile`; the fences around it keep program order.
            acked.store(total, Ordering::Relaxed);
        }
        compiler_fence(Ordering::SeqCst);
        // Relaxed: as above.
        in_flight.store(0, Ordering::Relaxed);
    }
}

/// The Rust consumer process: this test binary re-executed on this ignored test.
#[test]
#[ignore = "child process entry point; run by sigkill_mixed_clients_loses_no_acknowledged_grant"]
fn crash_mixed_rust_child() {
    let Ok(dir) = std::env::var("TOLLGATE_TEST_DIR") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let process: usize = var("TOLLGATE_TEST_PROCESS").parse().unwrap();
    let seed: u64 = var("TOLLGATE_TEST_SEED").parse().unwrap();
    let acks = AckFile::map(Path::new(&var("TOLLGATE_TEST_ACKS")));
    let engine = common::open(&dir).unwrap();
    let project = engine.project(&var("TOLLGATE_TEST_PROJECT")).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (project, acks) = (&project, &acks);
            let thread_seed = (seed + t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            s.spawn(move || meter_forever(project, acks, process * THREADS + t, thread_seed));
        }
        // Relaxed: the flag only tells the test that this process is up.
        acks.ready(process).store(1, Ordering::Relaxed);
    });
}

/// Compiles `tests/c/crash_client.c` into `out_dir`, optimised as a production client is.
fn build_c_client(out_dir: &Path) -> PathBuf {
    let lib = library_dir();
    let exe = out_dir.join("crash_client");
    let mut cmd = Command::new(compiler(Language::C));
    cmd.args(["-O2", "-Wall", "-Wextra", "-Werror", "-std=c11", "-I"])
        .arg(workspace().join("include"))
        .arg(workspace().join("tests/c/crash_client.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib)
        .arg("-ltollgate")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lpthread", "-ldl", "-lm"]);
    let output = cmd.output().expect("run the C compiler");
    assert_success("compile tests/c/crash_client.c", &output);
    exe
}

/// Where a trial's consumers write and what they meter.
struct Trial<'a> {
    state: &'a Path,
    project: &'a str,
    acks: &'a Path,
    c_client: &'a Path,
    seed: u64,
}

impl Trial<'_> {
    /// Starts consumer `process` under `nice -n 19`: the consumers keep both cores busy, and
    /// the lowest priority lets the test's polling thread run the moment it wakes, so that the
    /// kill lands close to the progress it aimed at.
    fn spawn(&self, process: usize) -> Child {
        let seed = self.seed.wrapping_add(process as u64 * 0x1_0000_0001);
        let mut cmd = Command::new("nice");
        this_build_library(&mut cmd).args(["-n", "19"]);
        common::with_installation(&mut cmd, self.state);
        if process < RUST_PROCESSES {
            cmd.arg(std::env::current_exe().unwrap())
                .args([
                    "--include-ignored",
                    "--exact",
                    "crash_mixed_rust_child",
                    "--test-threads=1",
                ])
                .env("TOLLGATE_TEST_DIR", self.state)
                .env("TOLLGATE_TEST_PROJECT", self.project)
                .env("TOLLGATE_TEST_ACKS", self.acks)
                .env("TOLLGATE_TEST_PROCESS", process.to_string())
                .env("TOLLGATE_TEST_SEED", seed.to_string());
        } else {
            cmd.arg(self.c_client)
                .arg(self.state)
                .arg(self.project)
                .arg(self.acks)
                .arg(process.to_string())
                .arg((process * THREADS).to_string())
                .arg(THREADS.to_string())
                .arg(seed.to_string());
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a consumer")
    }
}

/// A trial's consumer processes. Dropping them (a failed assertion included) SIGKILLs and reaps
/// every one, so that no consumer outlives its test.
struct Consumers {
    trial: usize,
    children: Vec<Child>,
}

impl Consumers {
    /// Fails the test if a consumer exited on its own: consumers only ever end by SIGKILL.
    fn assert_all_running(&mut self) {
        for (process, child) in self.children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait().expect("poll a consumer") {
                panic!(
                    "trial {}: consumer {process} exited by itself with {status}",
                    self.trial
                );
            }
        }
    }

    /// Polls until `done` holds, failing the trial after `PATIENCE` or if a consumer died.
    fn wait_until(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            self.assert_all_running();
            assert!(
                Instant::now() < deadline,
                "trial {}: no {what} in {PATIENCE:?}",
                self.trial
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// SIGKILLs every consumer, then reaps them all.
    fn kill(&mut self) {
        for child in &mut self.children {
            // An error means the child is already reaped; `Drop` may come after `kill`.
            let _ = child.kill();
        }
        for child in &mut self.children {
            child.wait().expect("reap a consumer");
        }
    }
}

impl Drop for Consumers {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a trial's kill interrupted.
#[derive(Default)]
struct Tally {
    during_startup: usize,
    before_switch: usize,
    after_switch: usize,
    /// Bytes acknowledged to the Rust consumers and to the C consumers, over every trial.
    rust_bytes: u64,
    c_bytes: u64,
}

#[test]
fn sigkill_mixed_clients_loses_no_acknowledged_grant() {
    let trials: usize = std::env::var("TOLLGATE_CRASH_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let scratch = tempfile::tempdir().unwrap();
    let c_client = build_c_client(scratch.path());
    let state = scratch.path().join("state");
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash_mixed seed {seed}");
    let started = Instant::now();
    let mut tally = Tally::default();
    for trial in 0..trials {
        let project = format!("M{trial}");
        {
            let engine = common::open(&state).unwrap();
            engine.create_project(&project).unwrap();
            engine
                .add_key(&project, dv(&format!("A{trial}"), ACTIVE))
                .unwrap();
            engine
                .add_key(&project, dv(&format!("R{trial}"), RESERVE))
                .unwrap();
        }
        let acks_path = scratch.path().join(format!("acks-{trial}"));
        let acks = AckFile::map(&acks_path);
        let spec = Trial {
            state: &state,
            project: &project,
            acks: &acks_path,
            c_client: &c_client,
            seed: xorshift(&mut seed),
        };
        let mut consumers = Consumers {
            trial,
            children: (0..PROCESSES).map(|p| spec.spawn(p)).collect(),
        };

        let kill_at_startup = xorshift(&mut seed).is_multiple_of(10);
        if kill_at_startup {
            std::thread::sleep(Duration::from_micros(xorshift(&mut seed) % 30_000));
        } else {
            // Relaxed (ready and go): bare flags, see `AckFile`.
            consumers.wait_until("start of every consumer", || {
                (0..PROCESSES).all(|p| acks.ready(p).load(Ordering::Relaxed) == 1)
            });
            acks.go().store(1, Ordering::Relaxed);
            let target = xorshift(&mut seed) % (ACTIVE + RESERVE);
            consumers.wait_until("progress", || acks.totals().0 >= target);
            std::thread::sleep(Duration::from_micros(xorshift(&mut seed) % 1_000));
        }
        consumers.kill();

        let (acked, in_flight) = acks.totals();
        let engine = common::open(&state).unwrap();
        let keys = engine.keys(&project).unwrap();
        let charged: u64 = keys.iter().map(|k| k.used).sum();
        assert!(
            acked <= charged && charged <= acked + in_flight,
            "trial {trial}: acknowledged {acked}, charged {charged}, in flight {in_flight}"
        );
        for k in &keys {
            let limit = k.key.scheme.amount();
            assert!(
                k.used <= limit,
                "trial {trial}: key {} charged {} of {limit}",
                k.key.id,
                k.used
            );
            if k.status == KeyStatus::Removed {
                assert_eq!(k.used, 0, "trial {trial}: removed key {}", k.key.id);
            }
        }
        let switches = engine.usage(&project).unwrap().switches;
        assert_eq!(
            switches,
            u64::from(charged >= ACTIVE),
            "trial {trial}: {switches} switches with {charged} charged of an Active {ACTIVE}"
        );
        // The killed processes' dispatchers may not have logged the switch; reopening does,
        // and never twice (rule R14 invariant 4, rule R29 in docs/rules.md).
        let logged = engine
            .events_after(0, usize::MAX)
            .unwrap()
            .into_iter()
            .filter(|e| e.project == project && matches!(e.kind, EventKind::Switched { .. }))
            .count() as u64;
        assert_eq!(
            logged, switches,
            "trial {trial}: switch events in the audit log"
        );
        if kill_at_startup {
            assert_eq!(charged, 0, "trial {trial}: charged before go");
            tally.during_startup += 1;
        } else if charged >= ACTIVE {
            tally.after_switch += 1;
        } else {
            tally.before_switch += 1;
        }
        // Relaxed: the consumers are reaped (see `AckFile`).
        let rust_slots = RUST_PROCESSES * THREADS;
        let acked_in = |slots: std::ops::Range<usize>| -> u64 {
            slots.map(|s| acks.acked(s).load(Ordering::Relaxed)).sum()
        };
        tally.rust_bytes += acked_in(0..rust_slots);
        tally.c_bytes += acked_in(rust_slots..SLOTS);
        drop(acks);
        std::fs::remove_file(&acks_path).unwrap();
    }
    println!(
        "crash_mixed: {trials} trials of {RUST_PROCESSES} Rust + {C_PROCESSES} C consumers \
         ({THREADS} threads each) in {:.1?}: {} killed before the switch, {} after it, {} during \
         start-up; acknowledged {} MiB to Rust clients, {} MiB to C clients",
        started.elapsed(),
        tally.before_switch,
        tally.after_switch,
        tally.during_startup,
        tally.rust_bytes >> 20,
        tally.c_bytes >> 20,
    );
    // A handful of metering trials is plenty for both languages to have been granted bytes.
    if tally.before_switch + tally.after_switch >= 5 {
        assert!(
            tally.rust_bytes > 0 && tally.c_bytes > 0,
            "one language's consumers never metered"
        );
    }
}
