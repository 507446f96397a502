//! # The C ABI of Tollgate
//!
//! `libtollgate.so` / `libtollgate.a` with the header `include/tollgate.h`, generated from this
//! crate by cbindgen. Every function returns a [`tg_status`] (or cannot fail), never lets a
//! panic cross into C, rejects NULL and non-UTF-8 arguments with `TG_INVALID_ARGUMENT`, and
//! leaves a thread-local message for `tg_last_error_message`.
//!
//! Each exported function only checks its arguments, calls [`tollgate_core`] and maps the
//! result; the machinery for that is in the `boundary` module (the macro every body runs in, the
//! last error, pointer ownership). Handles: a `tg_engine *` owns an `Engine`; a `tg_project *`,
//! `tg_seats *` and `tg_instance *` own the core's hot-path handles (each keeps the state
//! open); all are boxes given to C and taken back by their `_close`. Strings returned to C are
//! `CString`s freed by `tg_string_free`.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[macro_use]
mod boundary;
mod activation;
mod engine;
mod events;
mod groups;
mod instances;
mod keys;
mod pools;
mod project;
mod renewal;
mod seats;
mod status;
mod thread_project;
mod trust;

use std::ffi::c_char;

pub use activation::{tg_engine_machine_id, tg_key_activate, tg_key_activate_bulk};
pub use boundary::{tg_last_error_message, tg_string_free};
pub use engine::{
    tg_engine, tg_engine_close, tg_engine_flush, tg_engine_open, tg_engine_open_with,
    tg_engine_open_with_options, tg_engine_options, tg_engine_options_free, tg_engine_options_new,
    tg_engine_options_set_admin_lock_timeout_ms, tg_engine_options_set_capacity,
    tg_engine_options_set_flush_interval_ms, tg_engine_options_set_installation_dir,
    tg_engine_options_set_open_existing, tg_engine_options_trust, tg_open_options,
};
pub use events::{
    tg_engine_on_event, tg_event, tg_event_callback, tg_event_kind, tg_events_json,
    TG_EVENT_BACKLOG,
};
pub use groups::{tg_group_add, tg_groups_json, tg_key_add_reserve_bulk};
pub use instances::{
    tg_instance, tg_instance_add, tg_instance_assign, tg_instance_check, tg_instance_close,
    tg_instance_open, tg_instance_unassign, tg_instances_json,
};
pub use keys::{
    tg_key_add, tg_key_add_reserve, tg_key_remove_reserve, tg_key_replace, tg_keys_json,
};
pub use pools::{tg_pool_buy, tg_pool_list_json, tg_pool_shortfall_json};
pub use project::{
    tg_consume, tg_consume_batch, tg_consume_partial, tg_project, tg_project_close,
    tg_project_create, tg_project_list_json, tg_project_open, tg_project_view_json, tg_usage,
    tg_usage_get, tg_usage_v2, tg_usage_v2_get, TG_KEY_ID_SIZE,
};
pub use renewal::{
    tg_engine_enable_renewal, tg_renew_now, tg_renewal_options, tg_renewal_status_json,
};
pub use seats::{
    tg_seat_acquire, tg_seat_held, tg_seat_release, tg_seat_usage, tg_seat_usage_get, tg_seats,
    tg_seats_close, tg_seats_open, tg_seats_reclaim_json,
};
pub use status::{tg_status, tg_status_code, tg_status_message, tg_status_name};
pub use thread_project::{
    tg_thread_consume, tg_thread_consume_partial, tg_thread_fast, tg_thread_project,
    tg_thread_project_close, tg_thread_project_fast, tg_thread_project_open,
    tg_thread_project_room,
};
pub use trust::{tg_engine_open_trusted, tg_engine_trust, tg_trusted_keys_json};

/// The major version of the header (and of the library it was generated with).
pub const TOLLGATE_VERSION_MAJOR: u32 = 0;
/// The minor version of the header.
pub const TOLLGATE_VERSION_MINOR: u32 = 1;
/// The patch version of the header.
pub const TOLLGATE_VERSION_PATCH: u32 = 0;
/// `MAJOR * 1000000 + MINOR * 1000 + PATCH` of the header, as SQLite numbers its versions;
/// compare it with `tg_version_number()`, the library's, to detect a header and a library of
/// different versions.
pub const TOLLGATE_VERSION_NUMBER: u32 =
    TOLLGATE_VERSION_MAJOR * 1_000_000 + TOLLGATE_VERSION_MINOR * 1_000 + TOLLGATE_VERSION_PATCH;

// The header's numbers are literals (cbindgen cannot read the package version); these make a
// version bump in Cargo.toml that forgets them fail to compile.
const _: () = assert!(TOLLGATE_VERSION_MAJOR == decimal(env!("CARGO_PKG_VERSION_MAJOR")));
const _: () = assert!(TOLLGATE_VERSION_MINOR == decimal(env!("CARGO_PKG_VERSION_MINOR")));
const _: () = assert!(TOLLGATE_VERSION_PATCH == decimal(env!("CARGO_PKG_VERSION_PATCH")));

/// A decimal number, at compile time.
const fn decimal(text: &str) -> u32 {
    let bytes = text.as_bytes();
    let mut value = 0;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "not a decimal number");
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}

/// The library's version, `"MAJOR.MINOR.PATCH"`, as a static string. Never free it.
#[no_mangle]
pub extern "C" fn tg_version() -> *const c_char {
    boundary!({ VERSION.as_ptr() })
}

/// The library's version as `MAJOR * 1000000 + MINOR * 1000 + PATCH`: equal to the header's
/// `TOLLGATE_VERSION_NUMBER` when the header and the library loaded are of one version.
#[no_mangle]
pub extern "C" fn tg_version_number() -> u32 {
    boundary!({ TOLLGATE_VERSION_NUMBER })
}

const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(version) => version,
    Err(_) => panic!("CARGO_PKG_VERSION contains a NUL byte"),
};
