//! Seats on per-machine, per-core and per-instance slot pairs (rules R16 and R17 in docs/rules.md):
//! the hot-path handle with its acquire and release, and reclaiming the seats of dead processes.
//!
//! `tg_seat_acquire`, `tg_seat_release`, `tg_seat_held` and `tg_seat_usage_get` are the hot
//! path: they check their arguments, call the core's lock-free handle and map the result,
//! keeping a refusal as plain data (see `boundary`).

use std::ffi::c_char;

use tollgate_core::{LicenseClass, SeatHandle, SeatUsage};

use crate::boundary::{drop_handle, invalid_value, json_out, new_handle};
use crate::engine::tg_engine;
use crate::status::tg_status;

/// One slot pair's seats, held by this process: opened by `tg_seats_open`, then used from any
/// number of threads at once. Opaque. The seats it takes belong to the process; if the process
/// ends without releasing them they are reclaimed (`tg_seats_reclaim_json`, or by any process
/// that opens the state or is refused for lack of seats). It keeps the state open: it stays
/// valid after `tg_engine_close` until `tg_seats_close`. It belongs to the process that opened
/// it: after `fork`, the child opens its own.
#[allow(non_camel_case_types)]
pub struct tg_seats(SeatHandle);

/// A seat pair's seats and keys (`tg_seat_usage_get`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct tg_seat_usage {
    /// Seats held now, by every process together.
    pub held: u64,
    /// The Active key's amount (machines, cores or instances); 0 without a key.
    pub limit: u64,
    /// The Reserved key's amount; 0 without one.
    pub reserved_limit: u64,
    /// Whether a Reserved key is present.
    pub has_reserved: bool,
    /// How many Active→Reserved switches the pair has made.
    pub switches: u64,
}

impl From<SeatUsage> for tg_seat_usage {
    fn from(usage: SeatUsage) -> tg_seat_usage {
        tg_seat_usage {
            held: usage.held,
            limit: usage.limit,
            reserved_limit: usage.reserved_limit,
            has_reserved: usage.has_reserved,
            switches: usage.switches,
        }
    }
}

/// The license class named by a `seat_class` argument.
fn seat_class(name: &str) -> Result<LicenseClass, tg_status> {
    LicenseClass::from_seat_name(name).ok_or_else(|| {
        invalid_value(
            "seat_class",
            format_args!("{name:?} is not a seat class: use server, desktop, cores or instance"),
        )
    })
}

/// Opens the seats of `project`'s slot pair of `seat_class` — `"server"` or `"desktop"`
/// (per-machine keys), `"cores"` (per-core keys) or `"instance"` (per-instance keys) — and
/// stores the handle in `*out` (NULL on failure). A pair without a key yet is created empty, so
/// acquiring refuses with `TG_NO_ACTIVE_KEY` until a key of that class is added. Another class
/// name is refused with `TG_INVALID_ARGUMENT`; `TG_NOT_FOUND` if there is no such project.
/// Close it with `tg_seats_close`.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `project` and `seat_class` are NULL or NUL-terminated
/// strings; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_seats_open(
    engine: *mut tg_engine,
    project: *const c_char,
    seat_class: *const c_char,
    out: *mut *mut tg_seats,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let engine = held!(engine);
        let project = text!(project);
        let class = self::seat_class(text!(seat_class))?;
        out.write(new_handle(tg_seats(engine.core.seats(project, class)?)));
        Ok(())
    })
}

/// Closes a seats handle. Seats it still holds stay held until released through another handle
/// of this process or reclaimed after the process ends. NULL is a no-op.
///
/// # Safety
/// `seats` is NULL or from `tg_seats_open`, not closed yet, and no other thread is using it.
#[no_mangle]
pub unsafe extern "C" fn tg_seats_close(seats: *mut tg_seats) {
    boundary!({
        // SAFETY: the caller hands back a handle from `tg_seats_open`, used by no one else.
        unsafe { drop_handle(seats) }
    })
}

/// Takes `units` seats, all or nothing: `TG_OK`, or nothing is taken and the call refuses with
/// `TG_EXHAUSTED` (the Active key has fewer free), `TG_EXPIRED` (no valid key covers the pair)
/// or `TG_NO_ACTIVE_KEY`. An expired Active key is switched to the reserve on the way.
/// Lock-free, no syscall, no allocation, refusals included. A `TG_EXHAUSTED` refusal also asks
/// the engine's reclaimer thread to take back the seats of processes that are gone, so a retry
/// a moment later may succeed.
///
/// # Safety
/// `seats` is NULL or an open seats handle.
#[no_mangle]
pub unsafe extern "C" fn tg_seat_acquire(seats: *mut tg_seats, units: u64) -> tg_status {
    boundary!({
        let seats = borrow!(seats);
        seats.0.acquire(units)?;
        Ok(())
    })
}

/// Gives back `units` seats this process holds on the pair; `TG_NOT_HELD` (nothing released)
/// when it holds fewer. Releasing never depends on the keys' validity. Lock-free; no allocation.
///
/// # Safety
/// `seats` is NULL or an open seats handle.
#[no_mangle]
pub unsafe extern "C" fn tg_seat_release(seats: *mut tg_seats, units: u64) -> tg_status {
    boundary!({
        let seats = borrow!(seats);
        seats.0.release(units)?;
        Ok(())
    })
}

/// Stores in `*out` how many seats this process holds on the pair. Lock-free; no allocation.
///
/// # Safety
/// `seats` is NULL or an open seats handle; `out` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn tg_seat_held(seats: *const tg_seats, out: *mut u64) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(0);
        let seats = borrow!(seats);
        out.write(seats.0.held());
        Ok(())
    })
}

/// Stores the pair's seats and keys now in `*out`. Lock-free; no allocation.
///
/// # Safety
/// `seats` is NULL or an open seats handle; `out` is NULL or valid for writing a
/// `tg_seat_usage`.
#[no_mangle]
pub unsafe extern "C" fn tg_seat_usage_get(
    seats: *const tg_seats,
    out: *mut tg_seat_usage,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        let seats = borrow!(seats);
        out.write(seats.0.usage().into());
        Ok(())
    })
}

/// Takes back the seats of every process that ended without releasing them, and stores in
/// `*out_json` a JSON array of what was reclaimed: `{"project": name, "class": "per_machine
/// server"|"per_machine desktop"|"per_core"|"per_instance", "pid": n, "units": n}` (each also
/// goes to the audit log). NULL on failure. Free it with `tg_string_free`.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_seats_reclaim_json(
    engine: *mut tg_engine,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        json_out(&engine.core.reclaim_seats()?, &mut out_json)
    })
}
