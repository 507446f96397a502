//! Groups of projects (a cluster of SVMs) and bulk reserve activation (rule R8 in docs/rules.md,
//! the activation task).

use std::ffi::c_char;

use serde::{Deserialize, Serialize};
use tollgate_core::{BulkOutcome, BulkTarget, KeyOrLicense, Role};

use crate::boundary::{invalid_value, json_out};
use crate::engine::tg_engine;
use crate::status::tg_status;

/// Adds the projects named by `projects_json`, a JSON array of project names, to the group
/// `group`, creating it; a project already in it stays once. Every project must exist
/// (`TG_NOT_FOUND` otherwise), else nothing changes.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `group` and `projects_json` are NULL or NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn tg_group_add(
    engine: *mut tg_engine,
    group: *const c_char,
    projects_json: *const c_char,
) -> tg_status {
    boundary!({
        let engine = held!(engine);
        let group = text!(group);
        let projects: Vec<&str> = serde_json::from_str(text!(projects_json))
            .map_err(|e| invalid_value("projects_json", format_args!("{e}")))?;
        engine.core.add_to_group(group, &projects)?;
        Ok(())
    })
}

/// Stores in `*out_json` a JSON array of every group, by name: `{"name": group, "projects":
/// [name, ...]}`. NULL on failure. Free it with `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_groups_json(
    engine: *const tg_engine,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        json_out(&engine.core.groups()?, &mut out_json)
    })
}

/// Adds the key `key_json` (key JSON or a signed license file, as for `tg_key_add`) as the
/// Reserved key of every project `target_json` names —
/// `{"all": true}`, `{"group": "G"}` or `{"project": "P"}` — under rules R5–R7 in docs/rules.md,
/// each project on its own: a project takes it only where an Active key of its class exists, and a
/// refusal on one never stops the others. Returns `TG_OK` once every project was tried, and
/// stores in `*out_json` a JSON array of one outcome per project, by name: `{"project": name,
/// "status": "TG_OK" or the refusal's status name, "code": its number, "role":
/// "reserved"|"active"|null, "message": the text of rule R28 for a key that became the reserve, or
/// the refusal's message, or null}`. The call itself fails (`*out_json` NULL) only when the
/// target or the key is malformed, the key is refused for its signature (`TG_BAD_SIGNATURE`),
/// or the group or project does not exist (`TG_NOT_FOUND`).
/// Free it with `tg_string_free`.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `target_json` and `key_json` are NULL or NUL-terminated
/// strings; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_key_add_reserve_bulk(
    engine: *mut tg_engine,
    target_json: *const c_char,
    key_json: *const c_char,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        let target_json = text!(target_json);
        let key_json = text!(key_json);
        let target = bulk_target(target_json)?;
        let key = KeyOrLicense::parse(key_json)?;
        let outcomes = engine.core.add_reserve_bulk(&target, key)?;
        let outcomes: Vec<Outcome<'_>> = outcomes.iter().map(Outcome::from).collect();
        json_out(&outcomes, &mut out_json)
    })
}

/// The JSON form of a [`BulkTarget`]: an object with exactly one of these fields.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum TargetJson {
    All(bool),
    Group(String),
    Project(String),
}

pub(crate) fn bulk_target(json: &str) -> Result<BulkTarget, tg_status> {
    const FORMS: &str = r#"{"all": true}, {"group": "G"} or {"project": "P"}"#;
    let invalid = |reason: std::fmt::Arguments<'_>| invalid_value("target_json", reason);
    match serde_json::from_str(json).map_err(|e| invalid(format_args!("expected {FORMS}: {e}")))? {
        TargetJson::All(true) => Ok(BulkTarget::All),
        TargetJson::All(false) => Err(invalid(format_args!(
            r#"{{"all": false}} targets nothing: expected {FORMS}"#
        ))),
        TargetJson::Group(group) => Ok(BulkTarget::Group(group)),
        TargetJson::Project(project) => Ok(BulkTarget::Project(project)),
    }
}

/// One project's outcome of a bulk addition, as C reads it.
#[derive(Serialize)]
pub(crate) struct Outcome<'a> {
    project: &'a str,
    status: &'static str,
    code: u32,
    role: Option<&'static str>,
    message: Option<String>,
}

impl<'a> From<&'a BulkOutcome> for Outcome<'a> {
    fn from(outcome: &'a BulkOutcome) -> Outcome<'a> {
        let (status, role, message) = match &outcome.result {
            Ok(added) => (
                tg_status::TG_OK,
                Some(match added.role {
                    Role::Active => "active",
                    Role::Reserved => "reserved",
                }),
                added.message.clone(),
            ),
            Err(refusal) => (tg_status::from(refusal), None, Some(refusal.to_string())),
        };
        Outcome {
            project: &outcome.project,
            status: status.name().to_str().expect("status names are ASCII"),
            code: status as u32,
            role,
            message,
        }
    }
}
