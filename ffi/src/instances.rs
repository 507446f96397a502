//! Instances licensed from pools (rules R22–R26 in docs/rules.md): registering them, assigning and
//! unassigning pool licenses, and the hot-path check a backup job makes.
//!
//! `tg_instance_check` is the hot path: it checks its argument, calls the core's lock-free
//! handle and maps the result, keeping a refusal as plain data (see `boundary`).

use std::ffi::c_char;

use tollgate_core::{InstanceHandle, InstanceOs, LicenseType};

use crate::boundary::{drop_handle, invalid_value, json_out, new_handle, string_out};
use crate::engine::tg_engine;
use crate::status::tg_status;

/// An instance's hot-path handle: looked up once by `tg_instance_open`, then checked before
/// every backup run, from any number of threads at once. Opaque. It keeps the state open: it
/// stays valid after `tg_engine_close` until `tg_instance_close`.
#[allow(non_camel_case_types)]
pub struct tg_instance(InstanceHandle);

/// Registers the instance `name` (a new project licensed per instance) running `os` —
/// `"windows"`, `"macos"` or `"linux"` — in `company`'s pool, or in no company's when `company`
/// is NULL. `TG_ALREADY_EXISTS` if a project of that name exists.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `name` and `os` are NULL or NUL-terminated strings;
/// `company` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tg_instance_add(
    engine: *mut tg_engine,
    name: *const c_char,
    os: *const c_char,
    company: *const c_char,
) -> tg_status {
    boundary!({
        let engine = held!(engine);
        let name = text!(name);
        let os = text!(os);
        let company = optional_text!(company);
        let os = InstanceOs::parse(os).ok_or_else(|| {
            invalid_value(
                "os",
                format_args!("{os:?} is not an instance OS: use windows, macos or linux"),
            )
        })?;
        engine.core.add_instance(name, os, company)?;
        Ok(())
    })
}

/// Looks the instance `name` up once and stores its hot-path handle in `*out` (NULL on
/// failure). `TG_NOT_FOUND` if there is no such instance. Close it with `tg_instance_close`.
///
/// # Safety
/// `engine` is NULL or an open engine; `name` is NULL or a NUL-terminated string; `out` is NULL
/// or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_instance_open(
    engine: *const tg_engine,
    name: *const c_char,
    out: *mut *mut tg_instance,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let engine = held!(engine);
        let name = text!(name);
        out.write(new_handle(tg_instance(engine.core.instance(name)?)));
        Ok(())
    })
}

/// Closes an instance handle. NULL is a no-op.
///
/// # Safety
/// `instance` is NULL or from `tg_instance_open`, not closed yet, and no other thread is using
/// it.
#[no_mangle]
pub unsafe extern "C" fn tg_instance_close(instance: *mut tg_instance) {
    boundary!({
        // SAFETY: the caller hands back a handle from `tg_instance_open`, used by no one else.
        unsafe { drop_handle(instance) }
    })
}

/// Whether the instance may work now: `TG_OK` when a valid license covers it, otherwise
/// `TG_NO_ACTIVE_KEY` (no license assigned) or `TG_EXPIRED`. Lock-free; no allocation.
///
/// # Safety
/// `instance` is NULL or an open instance handle.
#[no_mangle]
pub unsafe extern "C" fn tg_instance_check(instance: *const tg_instance) -> tg_status {
    boundary!({
        let instance = borrow!(instance);
        instance.0.check()?;
        Ok(())
    })
}

/// Assigns a valid, unassigned pool license to the instance `name`: from its company's pool
/// first, then the global pool; of `license_type` (`"server"`, `"desktop"` or `"workstation"`),
/// or when it is NULL of any type that fits the instance's OS, the narrowest first. Stores in
/// `*out_json` the assignment: `{"instance": name, "license": id, "license_type": type,
/// "from_company_pool": bool, "replaced_expired": id|null}` (NULL on failure; free it with
/// `tg_string_free`). Refusals: `TG_LICENSE_TYPE_UNFIT` (a workstation license for macOS or
/// Linux), `TG_NO_LICENSE_AVAILABLE`, `TG_ALREADY_ASSIGNED`, `TG_NOT_FOUND`.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `name` is NULL or a NUL-terminated string;
/// `license_type` is NULL or a NUL-terminated string; `out_json` is NULL or valid for writing a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_instance_assign(
    engine: *mut tg_engine,
    name: *const c_char,
    license_type: *const c_char,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        let name = text!(name);
        let license_type = optional_text!(license_type)
            .map(|t| {
                LicenseType::parse(t).ok_or_else(|| {
                    invalid_value(
                        "license_type",
                        format_args!(
                            "{t:?} is not a license type: use server, desktop or workstation"
                        ),
                    )
                })
            })
            .transpose()?;
        json_out(&engine.core.assign(name, license_type)?, &mut out_json)
    })
}

/// Takes the pool license off the instance `name` and returns it to its pool; stores the
/// license id in `*out_license` (NULL on failure; free it with `tg_string_free`). `TG_NOT_FOUND`
/// if there is no such instance or it holds no license.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `name` is NULL or a NUL-terminated string; `out_license`
/// is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_instance_unassign(
    engine: *mut tg_engine,
    name: *const c_char,
    out_license: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_license = out!(out_license);
        out_license.write(std::ptr::null_mut());
        let engine = held!(engine);
        let name = text!(name);
        string_out(&engine.core.unassign(name)?, &mut out_license)
    })
}

/// Stores in `*out_json` a JSON array of every instance, by name: `{"name": name, "os":
/// "windows"|"macos"|"linux", "company": name|null, "license": id|null}`. NULL on failure. Free
/// it with `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_instances_json(
    engine: *const tg_engine,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        json_out(&engine.core.instances()?, &mut out_json)
    })
}
