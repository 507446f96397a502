//! Activation by code (rule R9 in docs/rules.md): the
//! vendor's activation service turns an activation code into a signed online key for this
//! machine, and the key is added like any other — verified against the vendor keys the state
//! trusts, under rules R5–R7 in docs/rules.md.
//!
//! The service counts a code's activations by machine; the machine is this installation
//! (`tg_engine_machine_id`). Activating the same code again from it gets the same key and
//! spends no other activation. A failure of the service is `TG_ACTIVATION_FAILED` with the
//! service's reason; any refusal changes nothing in the state.

use std::ffi::c_char;
use std::path::Path;

use tollgate_activation::{ActivationClient, ClientOptions};
use tollgate_core::ActivationSlot;

use crate::boundary::{invalid_value, json_out, string_out};
use crate::engine::tg_engine;
use crate::groups::{bulk_target, Outcome};
use crate::status::tg_status;

/// The client of the service at `url`, trusting the certificates of the PEM file `ca_file`
/// for https when one is given.
fn client(url: &str, ca_file: Option<&str>) -> Result<ActivationClient, tg_status> {
    ActivationClient::with_ca_file(url, ClientOptions::default(), ca_file.map(Path::new)).map_err(
        |e| match ca_file {
            Some(_) if matches!(e, tollgate_activation::RenewalError::InvalidCa { .. }) => {
                invalid_value("ca_file", e)
            }
            _ => invalid_value("activation_url", e),
        },
    )
}

/// Activates `code` through the activation service at `activation_url` (`http://HOST:PORT`
/// or `https://…`) and adds the key it issues to `project`: the first key of its class
/// becomes Active and a second one Reserved, as `tg_key_add` does, or, when `reserve_only`, it
/// may only become the Reserved key, as `tg_key_add_reserve` does. `ca_file` is NULL, or a PEM
/// file whose certificates alone are trusted for https (the vendor's own authority, or the
/// service's self-signed certificate). Each request takes at most 10 s, and failures other than
/// a refusal are tried 5 times in all. Stores in `*out_json` `{"key": id, "role":
/// "active"|"reserved", "switched_from", "message"}`; NULL on failure. Free it with
/// `tg_string_free`.
///
/// `TG_NOT_FOUND` for a project that does not exist (the service is not asked),
/// `TG_ACTIVATION_FAILED` when the service does not give a license for the code, and the
/// refusals of `tg_key_add` (`TG_BAD_SIGNATURE` under trust, …) for the key it gave.
///
/// Blocks for the vendor's activation service, up to its timeout, and while another process
/// or thread makes an admin change to the state, at most the engine's admin-lock timeout
/// (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `project`, `code`, `activation_url` and `ca_file` are
/// NULL or NUL-terminated strings; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_key_activate(
    engine: *mut tg_engine,
    project: *const c_char,
    code: *const c_char,
    activation_url: *const c_char,
    ca_file: *const c_char,
    reserve_only: bool,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        let project = text!(project);
        let code = text!(code);
        let client = client(text!(activation_url), optional_text!(ca_file))?;
        let slot = if reserve_only {
            ActivationSlot::Reserve
        } else {
            ActivationSlot::Any
        };
        let activated = engine.core.activate_with(project, code, slot, &client)?;
        json_out(&activated, &mut out_json)
    })
}

/// Activates `code` once through the activation service at `activation_url` and adds the key
/// as the Reserved key of every project `target_json` names — `{"all": true}`, `{"group":
/// "G"}` or `{"project": "P"}` — as `tg_key_add_reserve_bulk` does, with its outcomes in
/// `*out_json`. `ca_file` is as for `tg_key_activate`. The call itself fails (`*out_json`
/// NULL) when the target is malformed or does not exist (the service is not asked then), the
/// activation fails (`TG_ACTIVATION_FAILED`), or the key is refused for its signature.
///
/// Blocks for the vendor's activation service, up to its timeout, and while another process
/// or thread makes an admin change to the state, at most the engine's admin-lock timeout
/// (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `target_json`, `code`, `activation_url` and `ca_file`
/// are NULL or NUL-terminated strings; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_key_activate_bulk(
    engine: *mut tg_engine,
    target_json: *const c_char,
    code: *const c_char,
    activation_url: *const c_char,
    ca_file: *const c_char,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        let target = bulk_target(text!(target_json))?;
        let code = text!(code);
        let client = client(text!(activation_url), optional_text!(ca_file))?;
        let activated = engine.core.activate_bulk_with(&target, code, &client)?;
        let outcomes: Vec<Outcome<'_>> = activated.outcomes.iter().map(Outcome::from).collect();
        json_out(&outcomes, &mut out_json)
    })
}

/// Stores in `*out_id` this installation's identity for the activation service: 64 hex digits
/// derived one-way from the installation key, the same for every engine of the installation.
/// Free it with `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `out_id` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_machine_id(
    engine: *const tg_engine,
    out_id: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_id = out!(out_id);
        out_id.write(std::ptr::null_mut());
        let engine = held!(engine);
        string_out(&engine.core.machine_id(), &mut out_id)
    })
}
