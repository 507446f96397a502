//! License keys: adding, the reserve, replacement (renewal) and listing.
//!
//! `key_json` is the key JSON of the core (`tollgate_core::Key`):
//! `{"id": "A-1", "delivery": "online", "kind": "commercial", "edition": "standard",
//!   "scheme": {"data_volume": {"limit_bytes": 1073741824}}, "expires_at": "2027-01-01T00:00:00Z"}`,
//! or the text of a signed license file (`KEY.lic`, itself JSON), which a state that trusts a
//! vendor key requires for every offline key (see `tg_engine_trust`). A license that is
//! unsigned where a signature is required, altered, signed by an untrusted key or malformed is
//! `TG_BAD_SIGNATURE`, and nothing changes.

use std::ffi::c_char;

use tollgate_core::KeyOrLicense;

use crate::boundary::json_out;
use crate::engine::tg_engine;
use crate::status::tg_status;

/// Adds a key to the slot pair of its class in `project`: the first key becomes Active, a second
/// one Reserved, under rules R5–R7 in docs/rules.md; a refusal (`TG_TYPE_MISMATCH`,
/// `TG_RESERVE_OCCUPIED`, …) changes nothing and the message names the rule and keys at fault.
/// `key_json` is key JSON or the text of a signed license file; once the state trusts a vendor
/// key (`tg_engine_trust`), an offline key must be a license signed by a trusted key, else
/// `TG_BAD_SIGNATURE`. The same holds for `tg_key_add_reserve` and `tg_key_replace`.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `project` and `key_json` are NULL or NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn tg_key_add(
    engine: *mut tg_engine,
    project: *const c_char,
    key_json: *const c_char,
) -> tg_status {
    boundary!({
        key_change(
            &held!(engine).core,
            text!(project),
            text!(key_json),
            |e, p, k| e.add_key(p, k).map(drop),
        )
    })
}

/// Adds a key as the Reserved key only (the activation task of rule R8 in docs/rules.md):
/// `TG_NO_ACTIVE_KEY` when the pair of its class has no Active key, instead of making it Active.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `project` and `key_json` are NULL or NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn tg_key_add_reserve(
    engine: *mut tg_engine,
    project: *const c_char,
    key_json: *const c_char,
) -> tg_status {
    boundary!({
        key_change(
            &held!(engine).core,
            text!(project),
            text!(key_json),
            |e, p, k| e.add_reserve(p, k).map(drop),
        )
    })
}

/// Replaces the Active key of the new key's class (a renewal). The old key's usage becomes
/// final; a Reserved key that expires before the new key's term ends is removed, with an event.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `project` and `key_json` are NULL or NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn tg_key_replace(
    engine: *mut tg_engine,
    project: *const c_char,
    key_json: *const c_char,
) -> tg_status {
    boundary!({
        key_change(
            &held!(engine).core,
            text!(project),
            text!(key_json),
            |e, p, k| e.replace_active_key(p, k).map(drop),
        )
    })
}

/// Removes the Reserved key `key_id` from `project` before it is used. `TG_NOT_FOUND` if that
/// key is not the project's reserve.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `project` and `key_id` are NULL or NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn tg_key_remove_reserve(
    engine: *mut tg_engine,
    project: *const c_char,
    key_id: *const c_char,
) -> tg_status {
    boundary!({
        let engine = held!(engine);
        let project = text!(project);
        let key_id = text!(key_id);
        engine.core.remove_reserve(project, key_id)?;
        Ok(())
    })
}

/// The shared body of the calls that bring a key from key JSON or a license file into a
/// project.
fn key_change(
    engine: &tollgate_core::Engine,
    project: &str,
    key_json: &str,
    change: impl FnOnce(&tollgate_core::Engine, &str, KeyOrLicense) -> tollgate_core::Result<()>,
) -> Result<(), tg_status> {
    change(engine, project, KeyOrLicense::parse(key_json)?)?;
    Ok(())
}

/// Stores in `*out_json` a JSON array of every key `project` ever held: `{"key": {…},
/// "status": "active"|"reserved"|"retired"|"removed", "used": bytes}`. NULL on failure. Free it
/// with `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `project` is NULL or a NUL-terminated string; `out_json`
/// is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_keys_json(
    engine: *const tg_engine,
    project: *const c_char,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        let project = text!(project);
        json_out(&engine.core.keys(project)?, &mut out_json)
    })
}

/// Closes every usage period that has ended for a key with a `reset` term (as each engine's
/// background thread does once a second), then stores in `*out_json` a JSON array of the
/// closed periods of key `key_id`, oldest first: `{"key", "starts_at", "ends_at"` (Unix
/// seconds)`, "used"` (bytes over every project)`, "closed_at"` (RFC 3339)`}`. NULL on failure.
/// Free it with `tg_string_free`. A key the state never held is `TG_INVALID_ARGUMENT`.
///
/// Blocks while another process, or another thread, makes an admin change (it waits for the
/// admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `key_id` is NULL or a NUL-terminated string;
/// `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_key_periods_json(
    engine: *const tg_engine,
    key_id: *const c_char,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        let key_id = text!(key_id);
        engine.core.close_periods()?;
        json_out(&engine.core.periods(key_id)?, &mut out_json)
    })
}
