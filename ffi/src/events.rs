//! The audit log, and the event callback.
//!
//! # The callback and its thread
//! `tg_engine_on_event` subscribes to the core's in-process events (`Engine::subscribe`, the
//! stream the dispatcher thread feeds after writing each event to the audit log) and starts one
//! thread per engine, `tollgate-callback`, that calls the C function for each event. The hot
//! path is not touched: `tg_consume` only queues its 16-byte record as before, and the
//! dispatcher offers each event to the subscription with a `try_send` that never waits. The C
//! function runs on a thread of its own rather than on the dispatcher itself, so a slow
//! callback delays only its own events (a callback that falls [`TG_EVENT_BACKLOG`] events
//! behind misses the newer ones, which stay in the audit log) and never the audit log, nor the
//! draining of the hot queue.

use std::ffi::{c_char, c_void, CString};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender, TryRecvError};
use serde::Serialize;
use tollgate_core::{Error, Event, EventKind, Subscription};

use crate::boundary::json_out;
use crate::engine::tg_engine;
use crate::status::tg_status;

/// Stores in `*out_json` a JSON array of up to `max` audit events with a sequence number above
/// `after_seq`, oldest first, from every process sharing the state: `{"seq": n, "at": RFC 3339,
/// "project": name, "kind": "switched"|"key_added"|"threshold"|"refused"|…, …}`. Poll with the
/// last `seq` seen. Events of the hot path reach the log a few milliseconds after the call that
/// caused them (at the latest when the engine closes). NULL on failure. Free it with
/// `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_events_json(
    engine: *const tg_engine,
    after_seq: u64,
    max: usize,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        json_out(&engine.core.events_after(after_seq, max)?, &mut out_json)
    })
}

/// What an event says happened: `tg_event.kind`. The numbers are part of the ABI and never
/// change; a newer library may deliver a number this header does not name, whose details are
/// in `tg_event.json`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tg_event_kind {
    /// A project was created (`project_created`).
    TG_EVENT_PROJECT_CREATED = 1,
    /// A key entered a slot (`key_added`): `key`, and `reason` is its slot, `"active"` or
    /// `"reserved"`.
    TG_EVENT_KEY_ADDED = 2,
    /// The Reserved key became the Active key (`switched`): `previous_key` stopped being Active,
    /// `key` is the new Active key, `reason` is `"exhausted"` or `"expired"`.
    TG_EVENT_SWITCHED = 3,
    /// A reserve key left its slot (`reserve_removed`): `key`, `reason` `"requested"` or
    /// `"expires_before_new_term"`.
    TG_EVENT_RESERVE_REMOVED = 4,
    /// The Active key was replaced (`key_replaced`): `previous_key` by `key`.
    TG_EVENT_KEY_REPLACED = 5,
    /// A key's usage reached `percent` (80, 90 or 100) of its limit for the first time
    /// (`threshold`): `key`.
    TG_EVENT_THRESHOLD = 6,
    /// A request was refused, reported once per generation of the pair (`refused`): `reason`
    /// `"exhausted"`, `"expired"` or `"no_active_key"`.
    TG_EVENT_REFUSED = 7,
    /// After a crash, the catalog was brought back in line with the hot state; or, at an upgrade
    /// of the state format, the state was converted (`recovered`).
    TG_EVENT_RECOVERED = 8,
    /// The system clock was set back beyond the tolerance (`clock_rolled_back`).
    TG_EVENT_CLOCK_ROLLED_BACK = 9,
    /// A usage ratchet was recorded (`checkpoint`, its kind in the event's JSON).
    TG_EVENT_RATCHET = 10,
    /// An operator accepted a state refused as rolled back (`rollback_accepted`).
    TG_EVENT_ROLLBACK_ACCEPTED = 11,
    /// An operator lowered the latest time seen to the clock (`clock_accepted`).
    TG_EVENT_CLOCK_ACCEPTED = 12,
    /// Seats of a process that ended were taken back (`seats_reclaimed`).
    TG_EVENT_SEATS_RECLAIMED = 13,
    /// Licenses were bought into a pool (`licenses_purchased`).
    TG_EVENT_LICENSES_PURCHASED = 14,
    /// An instance was registered (`instance_added`).
    TG_EVENT_INSTANCE_ADDED = 15,
    /// A pool license was assigned to an instance (`license_assigned`).
    TG_EVENT_LICENSE_ASSIGNED = 16,
    /// A pool license went back to its pool (`license_unassigned`).
    TG_EVENT_LICENSE_UNASSIGNED = 17,
    /// A project joined a group (`group_joined`).
    TG_EVENT_GROUP_JOINED = 18,
    /// The state now trusts a vendor public key (`vendor_key_trusted`).
    TG_EVENT_VENDOR_KEY_TRUSTED = 19,
    /// The automatic renewal of `key` failed (`renewal_failed`); `reason` says why and that
    /// manual renewal is needed.
    TG_EVENT_RENEWAL_FAILED = 20,
    /// The expired Active `key` went on granting in its grace (`grace_started`), as no valid
    /// reserve could take over; `reason` is when the grace ends (RFC 3339).
    TG_EVENT_GRACE_STARTED = 21,
    /// The grace of the expired `key` ended (`grace_ended`): requests are refused.
    TG_EVENT_GRACE_ENDED = 22,
    /// `key`, with no reserve held, granted its first byte past its limit, into its overage
    /// (`overage_started`).
    TG_EVENT_OVERAGE_STARTED = 23,
    /// A usage period of `key` (a key with a `reset` term) closed (`period_closed`): its
    /// usage returned to 0; `reason` is when the new period started (RFC 3339), the event's
    /// JSON has the period's usage.
    TG_EVENT_PERIOD_CLOSED = 24,
}

/// One event, as the callback of `tg_engine_on_event` receives it. Owned by Tollgate: it and
/// every string in it are valid only until the callback returns; copy what you keep. Fields may
/// be added at the end in later versions (the library always allocates it).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug)]
pub struct tg_event {
    /// Position in the audit log: the `seq` of `tg_events_json`.
    pub seq: u64,
    /// When it was recorded, in Unix seconds (UTC).
    pub at_unix_secs: i64,
    /// What happened.
    pub kind: tg_event_kind,
    /// The project concerned; `""` for events about the whole state.
    pub project: *const c_char,
    /// The key the event is about (see `tg_event_kind`), or NULL.
    pub key: *const c_char,
    /// The key that `key` took over from (`TG_EVENT_SWITCHED`, `TG_EVENT_KEY_REPLACED`), or
    /// NULL.
    pub previous_key: *const c_char,
    /// Why, or which slot (see `tg_event_kind`), or NULL.
    pub reason: *const c_char,
    /// The percentage of `TG_EVENT_THRESHOLD`, else 0.
    pub percent: u32,
    /// The whole event as one JSON object, exactly as `tg_events_json` lists it.
    pub json: *const c_char,
}

/// The function `tg_engine_on_event` calls for each event, with the `user_data` given there.
/// It runs on the engine's callback thread, never on one of the program's own threads; it must
/// not unwind (a C++ exception must not leave it) and should return quickly. It may call
/// Tollgate, `tg_engine_close` of its own engine included.
#[allow(non_camel_case_types)]
pub type tg_event_callback =
    Option<unsafe extern "C" fn(event: *const tg_event, user_data: *mut c_void)>;

/// How many events may wait for a slow callback before newer ones are dropped (they stay in
/// the audit log; the count is in the core's `Engine::dropped_events`).
pub const TG_EVENT_BACKLOG: usize = 4096;

/// Calls `callback(event, user_data)` for each event this process records on `engine`'s state
/// from now on, in the order they were recorded, on one thread the engine starts for it (the
/// event callback thread, fed by the engine's dispatcher), never on one of the program's own
/// threads: `tg_consume` neither waits for nor runs the callback. A switch is reported once, a
/// moment after the `tg_consume` that made it returned `TG_OK` (unless the hot path's event
/// queue overflowed, which `tg_consume` counts and never waits for).
///
/// Replaces the callback set before; a NULL `callback` removes it. When this returns, the
/// previous callback is not called any more (if a call to it was in progress on the callback
/// thread, this waits for it to return), so its `user_data` may be freed. It may be called from
/// inside the callback. Events of other processes sharing the state reach the audit log only
/// (`tg_events_json`). A callback that falls 4096 events behind misses the newer ones; they
/// remain in the audit log.
///
/// # Safety
/// `engine` is NULL or an open engine. `callback` is NULL or a function that may be called
/// from another thread with `user_data` until this function is called again for `engine` or
/// `tg_engine_close` returns.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_on_event(
    engine: *mut tg_engine,
    callback: tg_event_callback,
    user_data: *mut c_void,
) -> tg_status {
    boundary!({
        let engine = borrow!(engine);
        let running = match callback {
            Some(function) => {
                let target = Target {
                    function,
                    user_data,
                };
                let subscription = engine.core.subscribe(TG_EVENT_BACKLOG);
                Some(
                    Running::start(subscription, target).map_err(|source| Error::Io {
                        context: "start the event callback thread".into(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        // Stopped outside the lock: the old callback may itself be calling this function.
        drop(engine.listener.replace(running));
        Ok(())
    })
}

/// The callback thread of one engine, if any.
#[derive(Default)]
pub(crate) struct Listener(Mutex<Option<Running>>);

impl Listener {
    /// Puts `running` in place and returns the one it replaces, to be stopped by the caller
    /// once the lock is released.
    fn replace(&self, running: Option<Running>) -> Option<Running> {
        // A panic while the lock was held cannot have left the Option half-written.
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, running)
    }
}

/// The C function and its argument.
struct Target {
    function: unsafe extern "C" fn(event: *const tg_event, user_data: *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the caller of `tg_engine_on_event` guarantees that `function` may be called with
// `user_data` from another thread; nothing else is done with the pointer.
unsafe impl Send for Target {}

/// A running callback thread. Dropping it stops the thread: at once when dropped on that very
/// thread (the callback closed the engine or replaced itself), else after the call in progress.
/// In a child of `fork()` the thread does not exist: dropping it there leaves it alone.
struct Running {
    /// Dropped to tell the thread to stop.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The process that started the thread.
    process: u32,
}

impl Running {
    fn start(subscription: Subscription, target: Target) -> std::io::Result<Running> {
        let (stop, stopped) = crossbeam::channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("tollgate-callback".into())
            .spawn(move || deliver(&subscription, &stopped, &target))?;
        Ok(Running {
            stop: Some(stop),
            thread: Some(thread),
            process: std::process::id(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.process != std::process::id() {
            // Joining or waking a thread of the parent would fail or touch its memory.
            std::mem::forget(self.thread.take());
            std::mem::forget(self.stop.take());
            return;
        }
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// The callback thread: each event to the C function until told to stop.
fn deliver(subscription: &Subscription, stopped: &Receiver<()>, target: &Target) {
    loop {
        crossbeam::channel::select! {
            recv(stopped) -> _ => return,
            recv(subscription.receiver()) -> event => {
                let Ok(event) = event else { return };
                // `select!` picks at random among ready operations: once `Running` is dropped,
                // no further event is delivered.
                if let Err(TryRecvError::Disconnected) = stopped.try_recv() {
                    return;
                }
                // A panic making the C view of the event skips that event, not the rest.
                let _ = std::panic::catch_unwind(|| call(target, &event));
            }
        }
    }
}

/// Builds the C view of `event` and calls the target with it.
fn call(target: &Target, event: &Event) {
    let text = |s: &str| CString::new(s.replace('\0', "\\0")).unwrap_or_default();
    let json = serde_json::to_string(event).unwrap_or_default();
    let (kind, key, previous_key, reason, percent) = describe(&event.kind);
    let project = text(&event.project);
    let json = text(&json);
    let key = key.map(text);
    let previous_key = previous_key.map(text);
    let reason = reason.map(|r| text(&r));
    let pointer = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    let view = tg_event {
        seq: event.seq,
        at_unix_secs: event.at.unix_timestamp(),
        kind,
        project: project.as_ptr(),
        key: pointer(&key),
        previous_key: pointer(&previous_key),
        reason: pointer(&reason),
        percent,
        json: json.as_ptr(),
    };
    // SAFETY: `view` and the strings it points to live until after the call; the caller of
    // `tg_engine_on_event` guaranteed the function may be called here with `user_data`.
    unsafe { (target.function)(&view, target.user_data) }
}

/// An event's kind, key, previous key, reason and percentage, as `tg_event` carries them.
type Described<'a> = (
    tg_event_kind,
    Option<&'a str>,
    Option<&'a str>,
    Option<String>,
    u32,
);

/// The typed fields of `tg_event` for `kind`.
fn describe(kind: &EventKind) -> Described<'_> {
    use tg_event_kind::*;
    match kind {
        EventKind::ProjectCreated => (TG_EVENT_PROJECT_CREATED, None, None, None, 0),
        EventKind::KeyAdded { key, role } => (TG_EVENT_KEY_ADDED, Some(key), None, word(role), 0),
        EventKind::Switched { from, to, reason } => {
            (TG_EVENT_SWITCHED, Some(to), Some(from), word(reason), 0)
        }
        EventKind::ReserveRemoved { key, reason } => {
            (TG_EVENT_RESERVE_REMOVED, Some(key), None, word(reason), 0)
        }
        EventKind::KeyReplaced { old, new } => {
            (TG_EVENT_KEY_REPLACED, Some(new), Some(old), None, 0)
        }
        EventKind::Threshold { key, percent } => (
            TG_EVENT_THRESHOLD,
            Some(key),
            None,
            None,
            u32::from(*percent),
        ),
        EventKind::Refused { reason } => (TG_EVENT_REFUSED, None, None, word(reason), 0),
        EventKind::Recovered { .. } => (TG_EVENT_RECOVERED, None, None, None, 0),
        EventKind::ClockRolledBack { .. } => (TG_EVENT_CLOCK_ROLLED_BACK, None, None, None, 0),
        EventKind::Ratchet { .. } => (TG_EVENT_RATCHET, None, None, None, 0),
        EventKind::RollbackAccepted { .. } => (TG_EVENT_ROLLBACK_ACCEPTED, None, None, None, 0),
        EventKind::ClockAccepted { .. } => (TG_EVENT_CLOCK_ACCEPTED, None, None, None, 0),
        EventKind::SeatsReclaimed { .. } => (TG_EVENT_SEATS_RECLAIMED, None, None, None, 0),
        EventKind::LicensesPurchased { .. } => (TG_EVENT_LICENSES_PURCHASED, None, None, None, 0),
        EventKind::InstanceAdded { .. } => (TG_EVENT_INSTANCE_ADDED, None, None, None, 0),
        EventKind::LicenseAssigned { .. } => (TG_EVENT_LICENSE_ASSIGNED, None, None, None, 0),
        EventKind::LicenseUnassigned { .. } => (TG_EVENT_LICENSE_UNASSIGNED, None, None, None, 0),
        EventKind::GroupJoined { .. } => (TG_EVENT_GROUP_JOINED, None, None, None, 0),
        EventKind::VendorKeyTrusted { .. } => (TG_EVENT_VENDOR_KEY_TRUSTED, None, None, None, 0),
        EventKind::GraceStarted { key, until } => (
            TG_EVENT_GRACE_STARTED,
            Some(key),
            None,
            Some(until.clone()),
            0,
        ),
        EventKind::GraceEnded { key } => (TG_EVENT_GRACE_ENDED, Some(key), None, None, 0),
        EventKind::OverageStarted { key } => (TG_EVENT_OVERAGE_STARTED, Some(key), None, None, 0),
        EventKind::PeriodClosed { key, ends_at, .. } => (
            TG_EVENT_PERIOD_CLOSED,
            Some(key),
            None,
            Some(ends_at.clone()),
            0,
        ),
        EventKind::RenewalFailed { key, reason } => (
            TG_EVENT_RENEWAL_FAILED,
            Some(key),
            None,
            Some(reason.clone()),
            0,
        ),
    }
}

/// The JSON word a reason or role serialises to (`"exhausted"`, `"active"`), as the audit log
/// writes it.
fn word(value: &impl Serialize) -> Option<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(word)) => Some(word),
        _ => None,
    }
}
