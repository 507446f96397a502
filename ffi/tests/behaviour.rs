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

mod common;
use common::{c, last_error};

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

fn key(id: &str, limit: u64) -> CString {
    c(&format!(
        r#"{{"id": "{id}", "delivery": "online", "kind": "commercial", "edition": "standard",
            "scheme": {{"data_volume": {{"limit_bytes": {limit}}}}}}}"#
    ))
}

fn seat_key(id: &str, class: &str, amount: u32) -> CString {
    let scheme = match class {
        "cores" => format!(r#"{{"per_core": {{"max_cores": {amount}}}}}"#),
        os => format!(r#"{{"per_machine": {{"os": "{os}", "max_machines": {amount}}}}}"#),
    };
    c(&format!(
        r#"{{"id": "{id}", "delivery": "online", "kind": "commercial", "edition": "standard",
            "scheme": {scheme}}}"#
    ))
}

/// An engine in a temporary directory, closed on drop.
struct Engine {
    ptr: *mut tg_engine,
    _dir: tempfile::TempDir,
}

impl Engine {
    fn open() -> Engine {
        common::isolate_process_installation();
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

    fn add_seat_key(&self, project: &str, id: &str, class: &str, amount: u32) {
        let (project, key) = (c(project), seat_key(id, class, amount));
        // SAFETY: an open engine and valid strings.
        let status = unsafe { tg_key_add(self.ptr, project.as_ptr(), key.as_ptr()) };
        assert_eq!(status, tg_status::TG_OK, "{}", last_error());
    }

    fn seats(&self, project: &str, class: &str) -> Seats {
        let (project, class) = (c(project), c(class));
        let mut ptr = null_mut();
        // SAFETY: an open engine, valid strings and a valid out-pointer.
        let status = unsafe { tg_seats_open(self.ptr, project.as_ptr(), class.as_ptr(), &mut ptr) };
        assert_eq!(status, tg_status::TG_OK, "{}", last_error());
        Seats(ptr)
    }

    fn add_instance(&self, name: &str, os: &str) {
        let (name, os) = (c(name), c(os));
        // SAFETY: an open engine, valid strings; NULL is a documented `company`.
        let status =
            unsafe { tg_instance_add(self.ptr, name.as_ptr(), os.as_ptr(), std::ptr::null()) };
        assert_eq!(status, tg_status::TG_OK, "{}", last_error());
    }

    fn instance(&self, name: &str) -> Instance {
        let name = c(name);
        let mut ptr = null_mut();
        // SAFETY: an open engine, a valid string and a valid out-pointer.
        let status = unsafe { tg_instance_open(self.ptr, name.as_ptr(), &mut ptr) };
        assert_eq!(status, tg_status::TG_OK, "{}", last_error());
        Instance(ptr)
    }

    /// Buys licenses with the purchase JSON `purchase`.
    fn buy(&self, purchase: &str) -> serde_json::Value {
        let purchase = c(purchase);
        // SAFETY: an open engine, a valid string, a valid out-pointer.
        self.json(|e, out| unsafe { tg_pool_buy(e, purchase.as_ptr(), out) })
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

/// A seats handle, closed on drop.
struct Seats(*mut tg_seats);

impl Seats {
    fn acquire(&self, units: u64) -> tg_status {
        // SAFETY: an open seats handle.
        unsafe { tg_seat_acquire(self.0, units) }
    }

    fn release(&self, units: u64) -> tg_status {
        // SAFETY: an open seats handle.
        unsafe { tg_seat_release(self.0, units) }
    }

    fn held(&self) -> u64 {
        let mut held = u64::MAX;
        // SAFETY: an open seats handle and a valid out-pointer.
        assert_eq!(unsafe { tg_seat_held(self.0, &mut held) }, tg_status::TG_OK);
        held
    }

    fn usage(&self) -> tg_seat_usage {
        let mut usage = tg_seat_usage::default();
        // SAFETY: an open seats handle and a valid out-pointer.
        assert_eq!(
            unsafe { tg_seat_usage_get(self.0, &mut usage) },
            tg_status::TG_OK
        );
        usage
    }
}

impl Drop for Seats {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `Engine::seats` and is closed once.
        unsafe { tg_seats_close(self.0) }
    }
}

/// An instance handle, closed on drop.
struct Instance(*mut tg_instance);

impl Instance {
    fn check(&self) -> tg_status {
        // SAFETY: an open instance handle.
        unsafe { tg_instance_check(self.0) }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `Engine::instance` and is closed once.
        unsafe { tg_instance_close(self.0) }
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
    // Audit position 1 is the ratchet written at open, which is not an event.
    assert_eq!(events[0]["seq"], 2);
    assert_eq!(events[0]["kind"], "project_created");
}

#[test]
fn status_names_cover_every_number() {
    for code in 0..=29u32 {
        // SAFETY: `tg_status_name` returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(tg_status_name(code)) };
        assert!(name.to_str().unwrap().starts_with("TG_"), "{name:?}");
    }
    for code in [30, 1_000, u32::MAX] {
        // SAFETY: as above; numbers that are no status are allowed.
        let name = unsafe { CStr::from_ptr(tg_status_name(code)) };
        assert_eq!(name, c"TG_UNKNOWN");
    }
    // SAFETY: `tg_version` returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(tg_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

/// Opens a state with a server-seat pair of 3 seats ("svm"), a project without keys
/// ("keyless"), and two Linux instances, one licensed and one not.
fn seat_and_instance_fixture() -> (Engine, Seats, Seats, Instance, Instance) {
    let engine = Engine::open();
    engine.create("svm");
    engine.create("keyless");
    engine.add_seat_key("svm", "S-1", "server", 3);
    engine.add_instance("licensed", "linux");
    engine.add_instance("unlicensed", "linux");
    engine.buy(r#"{"license_type": "desktop", "quantity": 1, "payment_mode": "annual"}"#);
    let name = c("licensed");
    // SAFETY: an open engine, a valid string, a valid out-pointer; NULL is a documented
    // `license_type`.
    engine.json(|e, out| unsafe { tg_instance_assign(e, name.as_ptr(), std::ptr::null(), out) });
    let svm = engine.seats("svm", "server");
    let keyless = engine.seats("keyless", "cores");
    let licensed = engine.instance("licensed");
    let unlicensed = engine.instance("unlicensed");
    (engine, svm, keyless, licensed, unlicensed)
}

/// Runs each call once, checks its status and that it allocated nothing.
fn assert_no_allocation(calls: &[(&str, &dyn Fn() -> tg_status, tg_status)]) {
    for (what, call, want) in calls {
        let mut got = tg_status::TG_PANIC;
        let allocations = allocations_during(|| got = call());
        assert_eq!(got, *want, "{what}: {}", last_error());
        assert_eq!(allocations, 0, "{what} allocated");
    }
}

#[test]
fn seats_and_instance_checks_allocate_nothing_even_when_they_refuse() {
    let (_engine, svm, keyless, licensed, unlicensed) = seat_and_instance_fixture();
    let ok_if = |holds: bool| {
        if holds {
            tg_status::TG_OK
        } else {
            tg_status::TG_PANIC
        }
    };
    // SAFETY: NULL is a documented argument; it is refused.
    let acquire_null = || unsafe { tg_seat_acquire(null_mut(), 1) };
    // SAFETY: as above.
    let release_null = || unsafe { tg_seat_release(null_mut(), 1) };
    // SAFETY: as above.
    let check_null = || unsafe { tg_instance_check(null_mut()) };
    use tg_status::*;
    assert_no_allocation(&[
        ("acquire 2 of 3", &|| svm.acquire(2), TG_OK),
        ("acquire the last", &|| svm.acquire(1), TG_OK),
        ("release more than held", &|| svm.release(4), TG_NOT_HELD),
        ("release all", &|| svm.release(3), TG_OK),
        ("held", &|| ok_if(svm.held() == 0), TG_OK),
        ("usage", &|| ok_if(svm.usage().limit == 3), TG_OK),
        (
            "acquire without a key",
            &|| keyless.acquire(1),
            TG_NO_ACTIVE_KEY,
        ),
        (
            "release without holding",
            &|| keyless.release(1),
            TG_NOT_HELD,
        ),
        ("acquire on NULL", &acquire_null, TG_INVALID_ARGUMENT),
        ("release on NULL", &release_null, TG_INVALID_ARGUMENT),
        ("check a licensed instance", &|| licensed.check(), TG_OK),
        (
            "check an unlicensed instance",
            &|| unlicensed.check(),
            TG_NO_ACTIVE_KEY,
        ),
        ("check NULL", &check_null, TG_INVALID_ARGUMENT),
    ]);
    // The refusals were kept as data and render on demand.
    assert_eq!(keyless.release(2), TG_NOT_HELD);
    assert_eq!(last_error(), "cannot release 2 seats: only 0 are held");
    assert_eq!(svm.acquire(4), TG_EXHAUSTED);
    assert_eq!(
        last_error(),
        "no free seats: 4 requested but only 3 of the active key's seats are free in all the projects that hold it"
    );
}

/// A refusal for lack of seats allocates nothing either: the boundary keeps `SeatsExhausted` as
/// plain data, and the core only raises a flag for its reclaimer thread.
#[test]
fn a_seat_refusal_for_lack_of_seats_allocates_nothing() {
    let (_engine, svm, ..) = seat_and_instance_fixture();
    assert_no_allocation(&[
        ("acquire all", &|| svm.acquire(3), tg_status::TG_OK),
        (
            "acquire past the bound",
            &|| svm.acquire(1),
            tg_status::TG_EXHAUSTED,
        ),
    ]);
}

#[test]
fn new_statuses_keep_their_numbers_and_names() {
    use tg_status::*;
    for (status, number, name) in [
        (TG_NOT_HELD, 18, "TG_NOT_HELD"),
        (TG_PAYMENT_MODE_MISMATCH, 19, "TG_PAYMENT_MODE_MISMATCH"),
        (TG_NO_LICENSE_AVAILABLE, 20, "TG_NO_LICENSE_AVAILABLE"),
        (TG_LICENSE_TYPE_UNFIT, 21, "TG_LICENSE_TYPE_UNFIT"),
        (TG_ALREADY_ASSIGNED, 22, "TG_ALREADY_ASSIGNED"),
        (TG_BAD_SIGNATURE, 23, "TG_BAD_SIGNATURE"),
        (TG_TAMPERED, 24, "TG_TAMPERED"),
    ] {
        assert_eq!(status as u32, number, "{name}");
        // SAFETY: `tg_status_name` returns a static NUL-terminated string.
        let got = unsafe { CStr::from_ptr(tg_status_name(number)) };
        assert_eq!(got.to_str().unwrap(), name);
    }
}

/// Calls a function with a `char **` out-parameter that holds garbage first: on success returns
/// the string (freed), on failure checks that the out-parameter was reset to NULL.
fn with_out(call: impl FnOnce(*mut *mut c_char) -> tg_status) -> (tg_status, Option<String>) {
    let mut out: *mut c_char = std::ptr::NonNull::dangling().as_ptr();
    let status = call(&mut out);
    if status != tg_status::TG_OK {
        assert!(out.is_null(), "a failed call left its out-parameter set");
        return (status, None);
    }
    // SAFETY: on TG_OK, `out` is a NUL-terminated string from Tollgate, freed just below.
    let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
    // SAFETY: `out` came from Tollgate and is freed once.
    unsafe { tg_string_free(out) };
    (status, Some(text))
}

/// Each refusal of seats, pools, instances and groups through the C functions: its status and
/// the words of its message.
#[test]
fn seat_pool_instance_and_group_refusals_have_their_statuses() {
    let engine = Engine::open();
    let e = engine.ptr;
    engine.create("svm");
    engine.add_seat_key("svm", "S-1", "server", 1);
    engine.add_instance("mac", "macos");
    engine.add_instance("win", "windows");
    engine.buy(r#"{"license_type": "workstation", "quantity": 1, "payment_mode": "annual"}"#);
    let svm = engine.seats("svm", "server");
    let (svm_name, mac, win, ghost) = (c("svm"), c("mac"), c("win"), c("ghost"));
    let none = std::ptr::null::<c_char>();

    let open_seats = |project: &CString, class: &str| {
        let class = c(class);
        let mut seats = std::ptr::NonNull::dangling().as_ptr();
        // SAFETY: an open engine, valid strings, a valid out-pointer.
        let status = unsafe { tg_seats_open(e, project.as_ptr(), class.as_ptr(), &mut seats) };
        assert!(seats.is_null());
        status
    };
    let buy = |json: &str| {
        let json = c(json);
        // SAFETY: an open engine, a valid string, a valid out-pointer.
        with_out(|out| unsafe { tg_pool_buy(e, json.as_ptr(), out) }).0
    };
    let assign = |name: &CString, license_type: Option<&str>| {
        let license_type = license_type.map(c);
        let license_type = license_type.as_ref().map_or(none, |t| t.as_ptr());
        // SAFETY: an open engine, valid strings or NULL where documented, a valid out-pointer.
        with_out(|out| unsafe { tg_instance_assign(e, name.as_ptr(), license_type, out) }).0
    };
    let bulk = |target: &str| {
        let (target, key) = (c(target), seat_key("B-1", "server", 1));
        // SAFETY: an open engine, valid strings, a valid out-pointer.
        with_out(|out| unsafe { tg_key_add_reserve_bulk(e, target.as_ptr(), key.as_ptr(), out) }).0
    };
    let group_add = |projects: &str| {
        let (group, projects) = (c("cluster"), c(projects));
        // SAFETY: an open engine and valid strings.
        unsafe { tg_group_add(e, group.as_ptr(), projects.as_ptr()) }
    };
    let add_instance = |name: &CString, os: &str| {
        let os = c(os);
        // SAFETY: an open engine, valid strings; NULL is a documented `company`.
        unsafe { tg_instance_add(e, name.as_ptr(), os.as_ptr(), none) }
    };
    let list = |filter: &str| {
        let filter = c(filter);
        // SAFETY: an open engine, a valid string, a valid out-pointer.
        with_out(|out| unsafe { tg_pool_list_json(e, filter.as_ptr(), out) }).0
    };
    // SAFETY: an open engine, a valid string, a valid out-pointer.
    let unassign =
        |name: &CString| with_out(|out| unsafe { tg_instance_unassign(e, name.as_ptr(), out) }).0;
    let open_instance = |name: &CString| {
        let mut instance = std::ptr::NonNull::dangling().as_ptr();
        // SAFETY: an open engine, a valid string, a valid out-pointer.
        let status = unsafe { tg_instance_open(e, name.as_ptr(), &mut instance) };
        assert!(instance.is_null());
        status
    };
    assert_eq!(assign(&win, None), tg_status::TG_OK, "{}", last_error());

    use tg_status::*;
    let cases: [(&str, &dyn Fn() -> tg_status, tg_status, &str); 24] = [
        ("acquire past the bound", &|| svm.acquire(2), TG_EXHAUSTED,
            "no free seats: 2 requested but only 1 of the active key's seats are free in all the projects that hold it"),
        ("release what is not held", &|| svm.release(1), TG_NOT_HELD,
            "cannot release 1 seats: only 0 are held"),
        ("a data-volume seat class", &|| open_seats(&svm_name, "data_volume"), TG_INVALID_ARGUMENT,
            "invalid seat_class: \"data_volume\" is not a seat class"),
        ("an unknown seat class", &|| open_seats(&svm_name, "laptop"), TG_INVALID_ARGUMENT,
            "invalid seat_class: \"laptop\""),
        ("seats of no project", &|| open_seats(&ghost, "cores"), TG_NOT_FOUND,
            "project \"ghost\" does not exist"),
        ("the other payment mode",
            &|| buy(r#"{"license_type": "server", "quantity": 1, "payment_mode": "monthly"}"#),
            TG_PAYMENT_MODE_MISMATCH,
            "payment mode monthly refused: the payment mode was fixed to annual at the first purchase"),
        ("a malformed purchase", &|| buy(r#"{"license_type": "server"}"#), TG_INVALID_ARGUMENT,
            "invalid purchase"),
        ("no fitting license", &|| assign(&mac, None), TG_NO_LICENSE_AVAILABLE,
            "no license available for instance \"mac\": no valid, unassigned desktop or server license in the global pool"),
        ("a workstation license for macOS", &|| assign(&mac, Some("workstation")), TG_LICENSE_TYPE_UNFIT,
            "a workstation license cannot license a macos instance"),
        ("an unknown license type", &|| assign(&mac, Some("laptop")), TG_INVALID_ARGUMENT,
            "invalid license_type: \"laptop\""),
        ("assigned twice", &|| assign(&win, None), TG_ALREADY_ASSIGNED,
            "instance \"win\" already holds license"),
        ("assign no instance", &|| assign(&ghost, None), TG_NOT_FOUND,
            "instance \"ghost\" does not exist"),
        ("assign a project that is no instance", &|| assign(&svm_name, None), TG_NOT_FOUND,
            "instance \"svm\" does not exist"),
        ("unassign an unlicensed instance", &|| unassign(&mac), TG_NOT_FOUND,
            "instance \"mac\" holds no pool license"),
        ("open no instance", &|| open_instance(&ghost), TG_NOT_FOUND,
            "instance \"ghost\" does not exist"),
        ("an unknown OS", &|| add_instance(&ghost, "beos"), TG_INVALID_ARGUMENT,
            "invalid os: \"beos\" is not an instance OS"),
        ("an instance named like a project", &|| add_instance(&svm_name, "linux"), TG_ALREADY_EXISTS,
            "project \"svm\" already exists"),
        ("a malformed filter", &|| list(r#"{"colour": "red"}"#), TG_INVALID_ARGUMENT,
            "invalid filter"),
        ("bulk to no group", &|| bulk(r#"{"group": "nope"}"#), TG_NOT_FOUND,
            "group \"nope\" does not exist"),
        ("a malformed bulk target", &|| bulk(r#"{"cluster": "c"}"#), TG_INVALID_ARGUMENT,
            "invalid target_json: expected {\"all\": true}, {\"group\": \"G\"} or {\"project\": \"P\"}: unknown variant `cluster`"),
        ("two bulk targets at once", &|| bulk(r#"{"all": true, "group": "g"}"#),
            TG_INVALID_ARGUMENT, "invalid target_json: expected {\"all\": true}"),
        ("a bulk target of nothing", &|| bulk(r#"{"all": false}"#), TG_INVALID_ARGUMENT,
            "invalid target_json: {\"all\": false} targets nothing: expected {\"all\": true}"),
        ("a group of projects that are not a JSON array", &|| group_add(r#""svm""#),
            TG_INVALID_ARGUMENT, "invalid projects_json"),
        ("a group with no such project", &|| group_add(r#"["svm", "ghost"]"#), TG_NOT_FOUND,
            "project \"ghost\" does not exist"),
    ];
    for (what, call, status, message) in cases {
        assert_eq!(call(), status, "{what}: {}", last_error());
        assert!(last_error().contains(message), "{what}: {}", last_error());
    }
}

/// Every pointer argument of the seat, pool, instance and group functions refuses NULL,
/// naming the argument, and leaves out-parameters NULL.
#[test]
fn null_arguments_are_refused_by_name() {
    let engine = Engine::open();
    engine.create("p");
    engine.add_instance("i", "windows");
    let seats = engine.seats("p", "cores");
    let (e, s) = (engine.ptr, seats.0);
    let (project, class, name, json) = (c("p"), c("cores"), c("i"), c("{}"));
    let (p, class, name, json) = (
        project.as_ptr(),
        class.as_ptr(),
        name.as_ptr(),
        json.as_ptr(),
    );
    let no_text = std::ptr::null::<c_char>();
    let mut string: *mut c_char = std::ptr::NonNull::dangling().as_ptr();
    let mut seats_out: *mut tg_seats = std::ptr::NonNull::dangling().as_ptr();
    let mut instance_out: *mut tg_instance = std::ptr::NonNull::dangling().as_ptr();
    let (mut held, mut usage) = (0u64, tg_seat_usage::default());
    let (out, seats_out_ptr, instance_out_ptr) =
        (&raw mut string, &raw mut seats_out, &raw mut instance_out);
    let (held, usage) = (&raw mut held, &raw mut usage);

    /// A call with one NULL argument, named.
    macro_rules! null {
        ($argument:literal, $call:expr) => {
            (
                $argument,
                // SAFETY: every argument is NULL, or valid as its function documents: the
                // engine and handles are open, the strings are live CStrings, the out-pointers
                // point to locals that outlive the calls.
                Box::new(move || unsafe { $call }) as Box<dyn Fn() -> tg_status>,
            )
        };
    }
    let cases = [
        null!("engine", tg_seats_open(null_mut(), p, class, seats_out_ptr)),
        null!("project", tg_seats_open(e, no_text, class, seats_out_ptr)),
        null!("seat_class", tg_seats_open(e, p, no_text, seats_out_ptr)),
        null!("out", tg_seats_open(e, p, class, null_mut())),
        null!("seats", tg_seat_acquire(null_mut(), 1)),
        null!("seats", tg_seat_release(null_mut(), 1)),
        null!("seats", tg_seat_held(null_mut(), held)),
        null!("out", tg_seat_held(s, null_mut())),
        null!("seats", tg_seat_usage_get(null_mut(), usage)),
        null!("out", tg_seat_usage_get(s, null_mut())),
        null!("engine", tg_seats_reclaim_json(null_mut(), out)),
        null!("out_json", tg_seats_reclaim_json(e, null_mut())),
        null!("engine", tg_instance_add(null_mut(), name, json, no_text)),
        null!("name", tg_instance_add(e, no_text, json, no_text)),
        null!("os", tg_instance_add(e, name, no_text, no_text)),
        null!(
            "engine",
            tg_instance_open(null_mut(), name, instance_out_ptr)
        ),
        null!("name", tg_instance_open(e, no_text, instance_out_ptr)),
        null!("out", tg_instance_open(e, name, null_mut())),
        null!("instance", tg_instance_check(null_mut())),
        null!("engine", tg_instance_assign(null_mut(), name, no_text, out)),
        null!("name", tg_instance_assign(e, no_text, no_text, out)),
        null!("out_json", tg_instance_assign(e, name, no_text, null_mut())),
        null!("engine", tg_instance_unassign(null_mut(), name, out)),
        null!("name", tg_instance_unassign(e, no_text, out)),
        null!("out_license", tg_instance_unassign(e, name, null_mut())),
        null!("engine", tg_instances_json(null_mut(), out)),
        null!("out_json", tg_instances_json(e, null_mut())),
        null!("engine", tg_pool_buy(null_mut(), json, out)),
        null!("purchase_json", tg_pool_buy(e, no_text, out)),
        null!("out_json", tg_pool_buy(e, json, null_mut())),
        null!("engine", tg_pool_list_json(null_mut(), json, out)),
        null!("out_json", tg_pool_list_json(e, json, null_mut())),
        null!("engine", tg_pool_shortfall_json(null_mut(), 30, out)),
        null!("out_json", tg_pool_shortfall_json(e, 30, null_mut())),
        null!("engine", tg_group_add(null_mut(), name, json)),
        null!("group", tg_group_add(e, no_text, json)),
        null!("projects_json", tg_group_add(e, name, no_text)),
        null!("engine", tg_groups_json(null_mut(), out)),
        null!("out_json", tg_groups_json(e, null_mut())),
        null!(
            "engine",
            tg_key_add_reserve_bulk(null_mut(), json, json, out)
        ),
        null!(
            "target_json",
            tg_key_add_reserve_bulk(e, no_text, json, out)
        ),
        null!("key_json", tg_key_add_reserve_bulk(e, json, no_text, out)),
        null!(
            "out_json",
            tg_key_add_reserve_bulk(e, json, json, null_mut())
        ),
    ];
    for (argument, call) in cases {
        assert_eq!(call(), tg_status::TG_INVALID_ARGUMENT, "NULL `{argument}`");
        assert_eq!(last_error(), format!("argument `{argument}` is NULL"));
    }
    // The out-parameters that were given were reset to NULL.
    assert!(string.is_null() && seats_out.is_null() && instance_out.is_null());
}

/// The JSON the new cold-path functions return, parsed: bulk outcomes per project, the pool
/// listing with the message of rule R26 in docs/rules.md, the shortfall, instances, groups,
/// reclaimed seats.
#[test]
fn pool_instance_group_and_bulk_json_outputs() {
    let engine = Engine::open();
    let e = engine.ptr;
    for svm in ["svm-1", "svm-2", "svm-3"] {
        engine.create(svm);
    }
    engine.add_seat_key("svm-1", "A-1", "server", 5);
    engine.add_seat_key("svm-2", "A-2", "server", 5);
    let (group, projects) = (c("cluster"), c(r#"["svm-1", "svm-2", "svm-3", "svm-1"]"#));
    // SAFETY: an open engine and valid strings.
    let status = unsafe { tg_group_add(e, group.as_ptr(), projects.as_ptr()) };
    assert_eq!(status, tg_status::TG_OK, "{}", last_error());
    // SAFETY (every closure below): an open engine, valid strings, a valid out-pointer.
    let groups = engine.json(|e, out| unsafe { tg_groups_json(e, out) });
    assert_eq!(
        groups,
        serde_json::json!([{"name": "cluster", "projects": ["svm-1", "svm-2", "svm-3"]}])
    );

    let (target, key) = (c(r#"{"group": "cluster"}"#), seat_key("R-1", "server", 5));
    let outcomes = engine
        .json(|e, out| unsafe { tg_key_add_reserve_bulk(e, target.as_ptr(), key.as_ptr(), out) });
    let added = |project: &str| {
        serde_json::json!({
            "project": project, "status": "TG_OK", "code": 0, "role": "reserved",
            "message": format!("You have added an additional license key for project {project}. \
                After the first key expires, protection of server machines will automatically \
                continue with the reserved key."),
        })
    };
    assert_eq!(
        outcomes,
        serde_json::json!([added("svm-1"), added("svm-2"), {
            "project": "svm-3", "status": "TG_NO_ACTIVE_KEY", "code": 6, "role": null,
            "message": "no active license key: add a key before metering or adding a reserve",
        }])
    );
    let (target, key) = (c(r#"{"project": "svm-1"}"#), seat_key("R-1", "server", 5));
    let outcomes = engine
        .json(|e, out| unsafe { tg_key_add_reserve_bulk(e, target.as_ptr(), key.as_ptr(), out) });
    assert_eq!(outcomes[0]["status"], "TG_RESERVE_OCCUPIED");
    assert_eq!(outcomes[0]["code"], 7);
    assert_eq!(outcomes.as_array().unwrap().len(), 1);

    engine.add_instance("win", "windows");
    engine.add_instance("tux", "linux");
    let ids = engine.buy(
        r#"{"license_type": "desktop", "quantity": 2, "payment_mode": "monthly",
            "premium_support": true}"#,
    );
    assert_eq!(ids.as_array().unwrap().len(), 2);
    let tux = c("tux");
    let assignment =
        engine.json(|e, out| unsafe { tg_instance_assign(e, tux.as_ptr(), std::ptr::null(), out) });
    assert_eq!(assignment["instance"], "tux");
    assert_eq!(assignment["license"], ids[0]);
    assert_eq!(assignment["license_type"], "desktop");
    assert_eq!(assignment["from_company_pool"], false);

    let instances = engine.json(|e, out| unsafe { tg_instances_json(e, out) });
    assert_eq!(
        instances,
        serde_json::json!([
            {"name": "tux", "os": "linux", "company": null, "license": ids[0]},
            {"name": "win", "os": "windows", "company": null, "license": null},
        ])
    );
    let listing = engine.json(|e, out| unsafe { tg_pool_list_json(e, std::ptr::null(), out) });
    let types: Vec<_> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["license_type"])
        .collect();
    assert_eq!(types, ["server", "desktop", "workstation"]);
    assert_eq!(
        listing[0]["message"],
        "You have not purchased licenses of this type"
    );
    assert_eq!(
        (listing[1]["count"].as_u64(), listing[1]["used"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(listing[1]["message"], serde_json::Value::Null);
    assert_eq!(listing[1]["licenses"][0]["premium_support"], true);
    let filter = c(r#"{"used": false}"#);
    let unused = engine.json(|e, out| unsafe { tg_pool_list_json(e, filter.as_ptr(), out) });
    assert_eq!(unused.as_array().unwrap().len(), 3);
    assert_eq!(unused[1]["licenses"][0]["id"], ids[1]);

    let shortfall = engine.json(|e, out| unsafe { tg_pool_shortfall_json(e, 30, out) });
    assert_eq!(shortfall["days"], 30);
    assert_eq!(shortfall["needs"][0]["instance"], "win");
    assert_eq!(shortfall["needs"][0]["reason"], "unlicensed");
    assert_eq!(shortfall["needs"][0]["covered_by"], ids[1]);

    let (status, license) = with_out(|out| unsafe { tg_instance_unassign(e, tux.as_ptr(), out) });
    assert_eq!(status, tg_status::TG_OK, "{}", last_error());
    assert_eq!(license.as_deref(), ids[0].as_str());

    let reclaimed = engine.json(|e, out| unsafe { tg_seats_reclaim_json(e, out) });
    assert_eq!(reclaimed, serde_json::json!([]));
}
