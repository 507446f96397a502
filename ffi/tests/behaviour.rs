//! Behaviour of the C ABI that the C clients cannot observe: the hot path allocates nothing,
//! refusals included; the last error is per thread, lazily rendered and left alone by
//! successes; JSON outputs are valid JSON.
//!
//! The functions are called through the Rust rlib, exactly as C calls them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{c_char, CStr, CString};
use std::ptr::null_mut;

use tollgate::*;

/// Counts the allocations made by the current thread, so that the engine's background threads
/// (clock, event dispatcher) do not disturb a measurement.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: during thread teardown the counter may be gone; such frees/allocs don't matter.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the same arguments; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: as in `alloc`; `ptr` and `layout` come from this allocator, i.e. `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn c(text: &str) -> CString {
    CString::new(text).unwrap()
}

fn key(id: &str, limit: u64) -> CString {
    c(&format!(
        r#"{{"id": "{id}", "delivery": "online", "kind": "commercial", "edition": "standard",
            "scheme": {{"data_volume": {{"limit_bytes": {limit}}}}}}}"#
    ))
}

fn last_error() -> String {
    // SAFETY: `tg_last_error_message` returns a NUL-terminated string that stays valid until
    // the next Tollgate call on this thread; it is copied at once.
    unsafe { CStr::from_ptr(tg_last_error_message()) }
        .to_str()
        .unwrap()
        .to_owned()
}

/// An engine in a temporary directory, closed on drop.
struct Engine {
    ptr: *mut tg_engine,
    _dir: tempfile::TempDir,
}

impl Engine {
    fn open() -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let path = c(dir.path().to_str().unwrap());
        let mut ptr = null_mut();
        // SAFETY: a valid string and a valid out-pointer.
        assert_eq!(
            unsafe { tg_engine_open(path.as_ptr(), &mut ptr) },
            tg_status::TG_OK
        );
        Engine { ptr, _dir: dir }
    }

    fn create(&self, name: &str) {
        let name = c(name);
        // SAFETY: an open engine and a valid string.
        let status = unsafe { tg_project_create(self.ptr, name.as_ptr()) };
        assert_eq!(status, tg_status::TG_OK, "{}", last_error());
    }

    fn add_key(&self, project: &str, id: &str, limit: u64) {
        let (project, key) = (c(project), key(id, limit));
        // SAFETY: an open engine and valid strings.
        let status = unsafe { tg_key_add(self.ptr, project.as_ptr(), key.as_ptr()) };
        assert_eq!(status, tg_status::TG_OK, "{}", last_error());
    }

    fn project(&self, name: &str) -> Project {
        let name = c(name);
        let mut ptr = null_mut();
        // SAFETY: an open engine, a valid string and a valid out-pointer.
        let status = unsafe { tg_project_open(self.ptr, name.as_ptr(), &mut ptr) };
        assert_eq!(status, tg_status::TG_OK, "{}", last_error());
        Project(ptr)
    }

    /// Calls one of the `_json` functions and parses what it returns.
    fn json(
        &self,
        call: impl FnOnce(*mut tg_engine, *mut *mut c_char) -> tg_status,
    ) -> serde_json::Value {
        let mut out = null_mut();
        let status = call(self.ptr, &mut out);
        assert_eq!(status, tg_status::TG_OK, "{}", last_error());
        // SAFETY: on TG_OK, `out` is a NUL-terminated string from Tollgate, freed just below.
        let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
        // SAFETY: `out` came from Tollgate and is freed once.
        unsafe { tg_string_free(out) };
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the engine was opened by `Engine::open` and is closed once.
        unsafe { tg_engine_close(self.ptr) }
    }
}

/// A project handle, closed on drop.
struct Project(*mut tg_project);

impl Project {
    fn consume(&self, bytes: u64) -> tg_status {
        // SAFETY: an open project handle.
        unsafe { tg_consume(self.0, bytes) }
    }

    fn consume_partial(&self, bytes: u64) -> (tg_status, u64) {
        let mut granted = u64::MAX;
        // SAFETY: an open project handle and a valid out-pointer.
        let status = unsafe { tg_consume_partial(self.0, bytes, &mut granted) };
        (status, granted)
    }

    fn consume_batch(&self, amounts: &[u64]) -> (tg_status, usize) {
        let mut count = usize::MAX;
        // SAFETY: an open project handle, `amounts.len()` readable values, a valid out-pointer.
        let status =
            unsafe { tg_consume_batch(self.0, amounts.as_ptr(), amounts.len(), &mut count) };
        (status, count)
    }

    fn usage(&self) -> tg_usage {
        let mut usage = tg_usage::default();
        // SAFETY: an open project handle and a valid out-pointer.
        assert_eq!(
            unsafe { tg_usage_get(self.0, &mut usage) },
            tg_status::TG_OK
        );
        usage
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `Engine::project` and is closed once.
        unsafe { tg_project_close(self.0) }
    }
}

#[test]
fn the_hot_path_allocates_nothing_even_when_it_refuses() {
    let engine = Engine::open();
    engine.create("hot");
    engine.create("keyless");
    engine.add_key("hot", "H-1", 1_000);
    engine.add_key("hot", "H-2", 1_000);
    let hot = engine.project("hot");
    let keyless = engine.project("keyless");

    let mut statuses = Vec::with_capacity(16);
    let allocations = allocations_during(|| {
        statuses.push(hot.consume(600));
        statuses.push(hot.consume(2_000)); // refused: exhausted
        statuses.push(hot.consume(700)); // crosses into the reserve: the switch
        statuses.push(hot.consume_batch(&[100, 100, 100]).0);
        statuses.push(hot.consume_batch(&[100, 100, 10_000]).0); // refused after two
        statuses.push(hot.consume_partial(10_000).0); // takes the rest
        statuses.push(hot.consume_partial(1).0); // refused: nothing left
        statuses.push(keyless.consume(1)); // refused: no active key
                                           // SAFETY: NULL is a documented argument; it is refused.
        statuses.push(unsafe { tg_consume(null_mut(), 1) });
        let usage = hot.usage();
        statuses.push(if usage.switches == 1 {
            tg_status::TG_OK
        } else {
            tg_status::TG_PANIC
        });
    });
    assert_eq!(allocations, 0, "the hot path allocated");
    assert_eq!(
        allocations_during(|| drop(std::hint::black_box(vec![1u8]))),
        1,
        "the counter counts"
    );
    use tg_status::*;
    assert_eq!(
        statuses,
        [
            TG_OK,
            TG_EXHAUSTED,
            TG_OK,
            TG_OK,
            TG_EXHAUSTED,
            TG_OK,
            TG_EXHAUSTED,
            TG_NO_ACTIVE_KEY,
            TG_INVALID_ARGUMENT,
            TG_OK
        ]
    );
    let usage = hot.usage();
    assert_eq!(
        (usage.active_used, usage.active_limit, usage.has_reserved),
        (1_000, 1_000, false)
    );
}

#[test]
fn a_refusal_is_rendered_only_when_asked_and_kept_until_the_next_failure() {
    let engine = Engine::open();
    engine.create("p");
    engine.add_key("p", "P-1", 100);
    let p = engine.project("p");

    assert_eq!(p.consume(150), tg_status::TG_EXHAUSTED);
    let message = last_error();
    assert_eq!(
        message,
        "license exhausted: 150 bytes requested but only 100 remain on the active and reserved keys"
    );
    // Successes leave it alone, and asking again gives the same text at the same address.
    assert_eq!(p.consume(10), tg_status::TG_OK);
    let first = tg_last_error_message();
    assert_eq!(last_error(), message);
    assert_eq!(first, tg_last_error_message());
    // The next failure replaces it.
    assert_eq!(p.consume(1_000), tg_status::TG_EXHAUSTED);
    assert!(last_error().contains("1000 bytes requested but only 90 remain"));
    // SAFETY: NULL is a documented argument; it is refused.
    assert_eq!(
        unsafe { tg_consume_partial(p.0, 1, null_mut()) },
        tg_status::TG_INVALID_ARGUMENT
    );
    assert_eq!(last_error(), "argument `granted` is NULL");
    // Another thread has its own last error.
    std::thread::spawn(|| assert_eq!(last_error(), ""))
        .join()
        .unwrap();
}

#[test]
fn json_outputs_are_valid_json() {
    let engine = Engine::open();
    engine.create("j");
    engine.add_key("j", "J-1", 100);
    engine.add_key("j", "J-2", 100);
    let j = engine.project("j");
    assert_eq!(j.consume(150), tg_status::TG_OK);
    let name = c("j");

    // SAFETY (all four closures): an open engine, a valid string, a valid out-pointer.
    let projects = engine.json(|e, out| unsafe { tg_project_list_json(e, out) });
    assert_eq!(projects, serde_json::json!(["j"]));
    let keys = engine.json(|e, out| unsafe { tg_keys_json(e, name.as_ptr(), out) });
    assert_eq!(keys[0]["status"], "retired");
    assert_eq!(keys[0]["used"], 100);
    assert_eq!(keys[1]["status"], "active");
    assert_eq!(keys[1]["used"], 50);
    let view = engine.json(|e, out| unsafe { tg_project_view_json(e, name.as_ptr(), out) });
    assert_eq!(view["project"], "j");
    assert_eq!(view["pairs"][0]["cards"][0]["key"]["id"], "J-2");
    assert_eq!(view["pairs"][0]["add_license_available"], true);
    let events = engine.json(|e, out| unsafe { tg_events_json(e, 0, 100, out) });
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["kind"], "project_created");
}

#[test]
fn status_names_cover_every_number() {
    for code in 0..=17u32 {
        // SAFETY: `tg_status_name` returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(tg_status_name(code)) };
        assert!(name.to_str().unwrap().starts_with("TG_"), "{name:?}");
    }
    for code in [18, 1_000, u32::MAX] {
        // SAFETY: as above; numbers that are no status are allowed.
        let name = unsafe { CStr::from_ptr(tg_status_name(code)) };
        assert_eq!(name, c"TG_UNKNOWN");
    }
    // SAFETY: `tg_version` returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(tg_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
