//! `tollgate key add|add-reserve|replace|remove-reserve|list`; `add-reserve` also in bulk
//! (the activation task of rule R8 in docs/rules.md: all projects, a group, or one project).

use std::io::Write;

use serde::Serialize;
use tollgate_core::{
    BulkOutcome, BulkTarget, KeyAdded, KeyReplaced, KeyStatus, LicenseClass, Role,
};

use super::Context;
use crate::args::{KeyArgs, ReserveTarget};
use crate::failure::{describe, Failure};
use crate::keyspec::key_from_args;
use crate::output::{json_document, table};
use crate::render::{edition_label, expiry, kind_label, percent, quantity, scheme_label, used_of};

/// Which slot an added key may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Active if the pair is empty, else Reserved (`Engine::add_key`).
    Any,
    /// Reserved only (`Engine::add_reserve`).
    ReserveOnly,
}

#[derive(Serialize)]
struct Added<'a> {
    project: &'a str,
    key: &'a str,
    #[serde(flatten)]
    added: KeyAdded,
}

#[derive(Serialize)]
struct Replaced<'a> {
    project: &'a str,
    new: &'a str,
    #[serde(flatten)]
    replaced: KeyReplaced,
}

#[derive(Serialize)]
struct Removed<'a> {
    project: &'a str,
    removed: &'a str,
}

/// What a bulk addition did on one project, as `--json` prints it.
#[derive(Serialize)]
struct BulkLine<'a> {
    project: &'a str,
    /// `added` or `refused`.
    status: &'static str,
    /// The slot the key took, when added.
    role: Option<Role>,
    /// The rule code, when refused.
    code: Option<&'static str>,
    /// The pop-up text when added, why when refused.
    message: Option<String>,
    /// The rule in words, when refused by one.
    rule: Option<&'static str>,
    #[serde(skip)]
    outcome: &'a BulkOutcome,
}

impl<'a> BulkLine<'a> {
    fn new(outcome: &'a BulkOutcome) -> BulkLine<'a> {
        let project = outcome.project.as_str();
        match &outcome.result {
            Ok(added) => BulkLine {
                project,
                status: "added",
                role: Some(added.role),
                code: None,
                message: added.message.clone(),
                rule: None,
                outcome,
            },
            Err(error) => {
                let (code, rule) = describe(error);
                BulkLine {
                    project,
                    status: "refused",
                    role: None,
                    code: Some(code),
                    message: Some(error.to_string()),
                    rule,
                    outcome,
                }
            }
        }
    }

    /// `wh: added as reserve` or `wh: NO_ACTIVE_KEY no active license key: …`.
    fn text(&self) -> String {
        match &self.outcome.result {
            Ok(KeyAdded {
                switched_from: Some(old),
                ..
            }) => format!(
                "{}: added as reserve, and took over at once: the Active key \"{old}\" was used up or expired",
                self.project
            ),
            Ok(_) => format!("{}: added as reserve", self.project),
            Err(error) => format!(
                "{}: {} {error}",
                self.project,
                self.code.unwrap_or_default()
            ),
        }
    }
}

/// `key add-reserve`: to one project as `key add` reports it, or in bulk with one line per
/// project; a bulk run with any refusal fails with exit status 1 after printing every line.
pub fn add_reserve(
    ctx: &Context,
    target: &ReserveTarget,
    args: &KeyArgs,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let target = match bulk_target(target) {
        Ok(target) => target,
        Err(project) => return add(ctx, project, args, Slot::ReserveOnly, out),
    };
    let key = key_from_args(args)?;
    let id = key.id().to_owned();
    let outcomes = ctx.engine()?.add_reserve_bulk(&target, key)?;
    report_bulk(ctx, &id, &outcomes, out)
}

/// The bulk target of `key add-reserve` and `key activate`, or the one project of their single
/// form.
pub fn bulk_target(target: &ReserveTarget) -> Result<BulkTarget, &str> {
    match (&target.project, &target.group, &target.only) {
        (Some(project), ..) => Err(project),
        (_, Some(group), _) => Ok(BulkTarget::Group(group.clone())),
        (.., Some(project)) => Ok(BulkTarget::Project(project.clone())),
        _ => Ok(BulkTarget::All),
    }
}

/// Prints one line per project of a bulk addition of key `id`; a run with any refusal fails
/// with exit status 1 after printing every line.
pub fn report_bulk(
    ctx: &Context,
    id: &str,
    outcomes: &[BulkOutcome],
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let lines: Vec<BulkLine> = outcomes.iter().map(BulkLine::new).collect();
    if ctx.json {
        json_document(out, &lines)?;
    } else if outcomes.is_empty() {
        writeln!(out, "No projects yet: key \"{id}\" was added nowhere.")?;
    } else {
        for line in &lines {
            writeln!(out, "{}", line.text())?;
        }
    }
    let refused = lines.iter().filter(|l| l.status == "refused").count();
    if refused > 0 {
        return Err(Failure::Shown {
            message: format!(
                "{refused} of {} projects refused reserve key \"{id}\"",
                lines.len(),
            ),
        });
    }
    Ok(())
}

/// Adds a key; prints the pop-up text of rule R28 when it became the Reserved key.
pub fn add(
    ctx: &Context,
    project: &str,
    args: &KeyArgs,
    slot: Slot,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let key = key_from_args(args)?;
    let engine = ctx.engine()?;
    let id = key.id().to_owned();
    let added = match slot {
        Slot::Any => engine.add_key(project, key)?,
        Slot::ReserveOnly => engine.add_reserve(project, key)?,
    };
    report_added(ctx, project, &id, added, out)
}

/// Prints what adding key `id` to `project` did: the slot it took, and the pop-up of rule R28
/// text when it became the Reserved key.
pub fn report_added(
    ctx: &Context,
    project: &str,
    id: &str,
    added: KeyAdded,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    if ctx.json {
        json_document(
            out,
            &Added {
                project,
                key: id,
                added,
            },
        )?;
        return Ok(());
    }
    let role = match added.role {
        Role::Active => "Active",
        Role::Reserved => "Reserved",
    };
    writeln!(
        out,
        "Added key \"{id}\" to project \"{project}\" as the {role} key."
    )?;
    if let Some(old) = &added.switched_from {
        writeln!(
            out,
            "The Active key \"{old}\" was used up or expired, so \"{id}\" took over at once."
        )?;
    }
    if let Some(message) = &added.message {
        writeln!(out)?;
        writeln!(out, "  {message}")?;
    }
    Ok(())
}

/// Replaces the Active key.
pub fn replace(
    ctx: &Context,
    project: &str,
    args: &KeyArgs,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let key = key_from_args(args)?;
    let id = key.id().to_owned();
    let replaced = ctx.engine()?.replace_active_key(project, key)?;
    if ctx.json {
        json_document(
            out,
            &Replaced {
                project,
                new: &id,
                replaced,
            },
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "Replaced the Active key \"{}\" of project \"{project}\" with \"{id}\"; the usage of \"{}\" is final.",
        replaced.old, replaced.old
    )?;
    if let Some(reserve) = &replaced.removed_reserve {
        writeln!(
            out,
            "Removed the Reserved key \"{reserve}\": it expires before the new Active key's term ends."
        )?;
    }
    Ok(())
}

/// Removes the Reserved key.
pub fn remove_reserve(
    ctx: &Context,
    project: &str,
    key_id: &str,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    ctx.engine()?.remove_reserve(project, key_id)?;
    if ctx.json {
        json_document(
            out,
            &Removed {
                project,
                removed: key_id,
            },
        )?;
    } else {
        writeln!(
            out,
            "Removed the Reserved key \"{key_id}\" from project \"{project}\"; Add License is available again."
        )?;
    }
    Ok(())
}

/// Lists every key a project ever held.
pub fn list(ctx: &Context, project: &str, out: &mut dyn Write) -> Result<(), Failure> {
    let keys = ctx.existing_engine()?.keys(project)?;
    if ctx.json {
        json_document(out, &keys)?;
        return Ok(());
    }
    if keys.is_empty() {
        writeln!(
            out,
            "Project \"{project}\" has no keys yet: add one with `tollgate key add {project} …`."
        )?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let class = k.key.scheme.class();
            let limit = k.key.scheme.amount();
            vec![
                k.key.id.clone(),
                status_label(k.status).to_owned(),
                k.key.delivery.label().to_owned(),
                format!(
                    "{} {}",
                    kind_label(k.key.kind),
                    edition_label(k.key.edition)
                ),
                scheme_label(&k.key.scheme),
                format!(
                    "{} ({} %)",
                    used_of(class, k.used, limit),
                    percent(k.used, limit)
                ),
                expiry(k.key.expires_at),
            ]
        })
        .collect();
    table(
        out,
        &[
            "KEY", "STATUS", "TYPE", "LICENSE", "LIMITS", "USED", "EXPIRES",
        ],
        &rows,
    )?;
    Ok(())
}

/// `tollgate key periods KEY`: the closed usage periods of a key with a reset.
pub fn periods(ctx: &Context, key_id: &str, out: &mut dyn Write) -> Result<(), Failure> {
    let engine = ctx.existing_engine()?;
    // A period that ended is closed before it is listed, as every running engine would.
    engine.close_periods()?;
    let periods = engine.periods(key_id)?;
    if ctx.json {
        json_document(out, &periods)?;
        return Ok(());
    }
    if periods.is_empty() {
        writeln!(out, "Key \"{key_id}\" has no closed usage period.")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = periods
        .iter()
        .map(|p| {
            vec![
                unix_text(p.starts_at),
                unix_text(p.ends_at),
                quantity(LicenseClass::DataVolume, p.used),
                p.closed_at.clone(),
            ]
        })
        .collect();
    table(out, &["FROM", "TO", "USED", "CLOSED AT"], &rows)?;
    Ok(())
}

/// A Unix second as RFC 3339.
fn unix_text(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

fn status_label(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => "Active",
        KeyStatus::Reserved => "Reserved",
        KeyStatus::Retired => "Retired",
        KeyStatus::Removed => "Removed",
    }
}
