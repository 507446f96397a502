//! Projects: creating and listing them, the project view, and the hot-path handle with its
//! metering calls.
//!
//! `tg_consume`, `tg_consume_partial`, `tg_consume_batch` and `tg_usage_get` are the hot path:
//! they check their arguments, call the core's lock-free handle and map the result. None of them
//! allocates, locks or makes a syscall, refusals included (see `boundary` for how the last error
//! is kept).

use std::ffi::c_char;

use tollgate_core::{LifetimeUsage, ProjectHandle, Usage, MAX_NAME_BYTES};

use crate::boundary::{drop_handle, json_out, new_handle, slice};
use crate::engine::tg_engine;
use crate::status::tg_status;

/// A project's hot-path handle: looked up once by `tg_project_open`, then used for every
/// batch, from any number of threads at once. Opaque. It keeps the state open: it stays valid
/// after `tg_engine_close` until `tg_project_close`.
#[allow(non_camel_case_types)]
pub struct tg_project(pub(crate) ProjectHandle);

/// Usage of a project's data-volume slot pair, in bytes.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct tg_usage {
    /// Bytes charged to the Active key.
    pub active_used: u64,
    /// The Active key's limit (0 without a key).
    pub active_limit: u64,
    /// Bytes charged to the Reserved key (0 until it becomes Active).
    pub reserved_used: u64,
    /// The Reserved key's limit (0 without one).
    pub reserved_limit: u64,
    /// Whether a Reserved key is present.
    pub has_reserved: bool,
    /// How many Active→Reserved switches the pair has made.
    pub switches: u64,
}

impl From<Usage> for tg_usage {
    fn from(usage: Usage) -> tg_usage {
        tg_usage {
            active_used: usage.active_used,
            active_limit: usage.active_limit,
            reserved_used: usage.reserved_used,
            reserved_limit: usage.reserved_limit,
            has_reserved: usage.has_reserved,
            switches: usage.switches,
        }
    }
}

/// The size of a key id buffer in `tg_usage_v2`: the longest key id (64 bytes of UTF-8) and its
/// terminating NUL.
pub const TG_KEY_ID_SIZE: usize = 65;

const _: () = assert!(TG_KEY_ID_SIZE == MAX_NAME_BYTES + 1);

/// Usage of a project's data-volume slot pair over its whole life (`tg_usage_v2_get`): the
/// `tg_usage` of now, then the total charged across switches and renewals, and the ids of the
/// keys in the slots.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tg_usage_v2 {
    /// The keys in the slots now, as `tg_usage_get` gives them.
    pub current: tg_usage,
    /// Bytes ever charged to the pair: every key it held, the ones a switch or a replacement
    /// retired included. Never goes down.
    pub total_used: u64,
    /// The Active key's id, NUL-terminated; `""` without an Active key.
    pub active_key: [c_char; TG_KEY_ID_SIZE],
    /// The Reserved key's id, NUL-terminated; `""` without a Reserved key.
    pub reserved_key: [c_char; TG_KEY_ID_SIZE],
}

impl From<LifetimeUsage> for tg_usage_v2 {
    fn from(lifetime: LifetimeUsage) -> tg_usage_v2 {
        tg_usage_v2 {
            current: lifetime.usage.into(),
            total_used: lifetime.total_used,
            active_key: key_id(lifetime.active_key.as_deref()),
            reserved_key: key_id(lifetime.reserved_key.as_deref()),
        }
    }
}

/// `id` as a NUL-terminated buffer; ids are at most 64 bytes with no NUL (checked when a key is
/// added), so nothing is cut.
fn key_id(id: Option<&str>) -> [c_char; TG_KEY_ID_SIZE] {
    let mut buffer = [0; TG_KEY_ID_SIZE];
    let bytes = id.unwrap_or("").as_bytes();
    for (slot, &byte) in buffer[..TG_KEY_ID_SIZE - 1].iter_mut().zip(bytes) {
        *slot = byte as c_char;
    }
    buffer
}

/// Creates a project named `name` (1..=64 bytes of UTF-8, no control characters) with an empty
/// data-volume slot pair. `TG_ALREADY_EXISTS` if the name is taken.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tg_project_create(
    engine: *mut tg_engine,
    name: *const c_char,
) -> tg_status {
    boundary!({
        let engine = held!(engine);
        let name = text!(name);
        engine.core.create_project(name)?;
        Ok(())
    })
}

/// Stores in `*out_json` a JSON array of every project name, sorted (NULL on failure). Free it
/// with `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_project_list_json(
    engine: *const tg_engine,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        json_out(&engine.core.projects()?, &mut out_json)
    })
}

/// Stores in `*out_json` the project card (rule R27 in docs/rules.md) as JSON: per slot pair, one
/// card per key with its details, `type` (Online/Offline), `status` (`active`/`reserved`), tooltip,
/// expiration, usage, and whether "Add License" is available. NULL on failure. Free it with
/// `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `project` is NULL or a NUL-terminated string; `out_json`
/// is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_project_view_json(
    engine: *const tg_engine,
    project: *const c_char,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        let project = text!(project);
        json_out(&engine.core.view(project)?, &mut out_json)
    })
}

/// Looks the project `name` up once and stores its hot-path handle in `*out` (NULL on failure).
/// `TG_NOT_FOUND` if there is no such project. Close it with `tg_project_close`.
///
/// # Safety
/// `engine` is NULL or an open engine; `name` is NULL or a NUL-terminated string; `out` is NULL
/// or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_project_open(
    engine: *const tg_engine,
    name: *const c_char,
    out: *mut *mut tg_project,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let engine = held!(engine);
        let name = text!(name);
        out.write(new_handle(tg_project(engine.core.project(name)?)));
        Ok(())
    })
}

/// Closes a project handle. NULL is a no-op.
///
/// # Safety
/// `project` is NULL or from `tg_project_open`, not closed yet, and no other thread is using it.
#[no_mangle]
pub unsafe extern "C" fn tg_project_close(project: *mut tg_project) {
    boundary!({
        // SAFETY: the caller hands back a handle from `tg_project_open`, used by no one else.
        unsafe { drop_handle(project) }
    })
}

/// Asks to move `bytes` bytes: grants and charges all of them (`TG_OK`), or charges nothing and
/// refuses with `TG_EXHAUSTED`, `TG_EXPIRED` or `TG_NO_ACTIVE_KEY`. A grant that crosses the
/// Active key's limit charges the rest to the Reserved key, which becomes Active. Lock-free;
/// no allocation or syscall.
///
/// # Safety
/// `project` is NULL or an open project handle.
#[no_mangle]
pub unsafe extern "C" fn tg_consume(project: *mut tg_project, bytes: u64) -> tg_status {
    boundary!({
        let project = borrow!(project);
        project.0.consume(bytes)?;
        Ok(())
    })
}

/// Asks to move up to `bytes` bytes: grants as much as remains, stores the amount in `*granted`
/// and returns `TG_OK`; refuses (with `*granted` = 0) only when nothing remains. Lock-free; no
/// allocation or syscall.
///
/// # Safety
/// `project` is NULL or an open project handle; `granted` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn tg_consume_partial(
    project: *mut tg_project,
    bytes: u64,
    granted: *mut u64,
) -> tg_status {
    boundary!({
        let mut granted = out!(granted);
        granted.write(0);
        let project = borrow!(project);
        granted.write(project.0.consume_partial(bytes)?);
        Ok(())
    })
}

/// Asks for each of the `n` amounts in order, each all or nothing, stopping at the first
/// refusal; the granted prefix is charged in one atomic step. Stores how many were granted in
/// `*granted_count`: `n` with `TG_OK`, or the prefix length with the refusal of the first that
/// was not granted. `amounts` may be NULL only when `n` is 0. Lock-free; no allocation or
/// syscall.
///
/// # Safety
/// `project` is NULL or an open project handle; `amounts` is NULL or points to `n` readable
/// `uint64_t`; `granted_count` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn tg_consume_batch(
    project: *mut tg_project,
    amounts: *const u64,
    n: usize,
    granted_count: *mut usize,
) -> tg_status {
    boundary!({
        let mut granted_count = out!(granted_count);
        granted_count.write(0);
        let project = borrow!(project);
        // SAFETY: the caller guarantees `amounts` is NULL or holds `n` readable values.
        let amounts = unsafe { slice(amounts, n, "amounts") }?;
        let (count, outcome) = project.0.consume_many(amounts);
        granted_count.write(count);
        outcome?;
        Ok(())
    })
}

/// Stores the project's current usage in `*out`. Lock-free; no allocation or syscall.
///
/// # Safety
/// `project` is NULL or an open project handle; `out` is NULL or valid for writing a `tg_usage`.
#[no_mangle]
pub unsafe extern "C" fn tg_usage_get(project: *const tg_project, out: *mut tg_usage) -> tg_status {
    boundary!({
        let mut out = out!(out);
        let project = borrow!(project);
        out.write(project.0.usage().into());
        Ok(())
    })
}

/// Stores the project's usage over the pair's whole life in `*out`: what `tg_usage_get` gives,
/// plus the total charged across switches and renewals and the ids of the Active and Reserved
/// keys. Not for the hot path: it reads the catalog, and waits while an admin change of this
/// process is in progress (not for other processes).
///
/// # Safety
/// `project` is NULL or an open project handle; `out` is NULL or valid for writing a
/// `tg_usage_v2`.
#[no_mangle]
pub unsafe extern "C" fn tg_usage_v2_get(
    project: *const tg_project,
    out: *mut tg_usage_v2,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        let project = borrow!(project);
        out.write(project.0.lifetime_usage()?.into());
        Ok(())
    })
}
