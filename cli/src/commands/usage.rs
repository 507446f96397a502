//! `tollgate usage [PROJECT]`: data-volume usage of every project, or one in detail.

use std::io::Write;

use serde::Serialize;
use tollgate_core::{Engine, LicenseClass, ProjectView, Role, Usage};

use super::Context;
use crate::failure::Failure;
use crate::output::{json_document, table};
use crate::render::{pair_class, percent, quantity, usage, used_of};
use crate::size::{format_size, Units};

/// One project's data-volume usage with the ids of its keys.
#[derive(Serialize)]
struct ProjectUsage {
    project: String,
    active_key: Option<String>,
    reserved_key: Option<String>,
    #[serde(flatten)]
    usage: Usage,
    /// Bytes still grantable on the Active and Reserved keys together.
    remaining: u64,
}

/// Prints the usage table, or one project in detail.
pub fn run(ctx: &Context, project: Option<&str>, out: &mut dyn Write) -> Result<(), Failure> {
    let engine = ctx.existing_engine()?;
    match project {
        Some(name) => {
            let usage = project_usage(&engine, name)?;
            if ctx.json {
                json_document(out, &usage)?;
            } else {
                detail(out, &usage)?;
            }
        }
        None => {
            let mut all = Vec::new();
            for name in engine.projects()? {
                all.push(project_usage(&engine, &name)?);
            }
            if ctx.json {
                json_document(out, &all)?;
            } else {
                overview(out, &all)?;
            }
        }
    }
    Ok(())
}

fn project_usage(engine: &Engine, name: &str) -> Result<ProjectUsage, Failure> {
    let usage = engine.usage(name)?;
    let view = engine.view(name)?;
    let (active_key, reserved_key) = data_volume_keys(&view);
    Ok(ProjectUsage {
        project: view.project,
        active_key,
        reserved_key,
        remaining: usage.active_limit.saturating_sub(usage.active_used)
            + usage.reserved_limit.saturating_sub(usage.reserved_used),
        usage,
    })
}

/// The ids of the Active and Reserved keys of a project's data-volume pair.
pub fn data_volume_keys(view: &ProjectView) -> (Option<String>, Option<String>) {
    let key = |role: Role| {
        view.pairs
            .iter()
            .filter(|pair| pair_class(pair) == LicenseClass::DataVolume)
            .flat_map(|pair| &pair.cards)
            .find(|card| card.status == role)
            .map(|card| card.key.id.clone())
    };
    (key(Role::Active), key(Role::Reserved))
}

fn overview(out: &mut dyn Write, all: &[ProjectUsage]) -> std::io::Result<()> {
    if all.is_empty() {
        return writeln!(
            out,
            "No projects yet: create one with `tollgate project create NAME`."
        );
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|p| {
            let u = &p.usage;
            vec![
                p.project.clone(),
                p.active_key.clone().unwrap_or_else(|| "—".into()),
                if p.active_key.is_some() {
                    format!(
                        "{} ({} %)",
                        used_of(LicenseClass::DataVolume, u.active_used, u.active_limit),
                        percent(u.active_used, u.active_limit)
                    )
                } else {
                    "—".into()
                },
                p.reserved_key.clone().unwrap_or_else(|| "—".into()),
                if p.reserved_key.is_some() {
                    quantity(LicenseClass::DataVolume, u.reserved_limit)
                } else {
                    "—".into()
                },
                format_size(p.remaining, Units::of(u.active_limit)),
                u.switches.to_string(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "PROJECT",
            "ACTIVE",
            "USED",
            "RESERVED",
            "RESERVE LIMIT",
            "LEFT",
            "SWITCHES",
        ],
        &rows,
    )
}

fn detail(out: &mut dyn Write, p: &ProjectUsage) -> std::io::Result<()> {
    let u = &p.usage;
    let class = LicenseClass::DataVolume;
    let units = Units::of(u.active_limit);
    writeln!(out, "Project {} · data volume", p.project)?;
    match &p.active_key {
        Some(id) => writeln!(
            out,
            "  Active    {id}  {}  ({} used)",
            usage(class, u.active_used, u.active_limit),
            format_size(u.active_used, units)
        )?,
        None => writeln!(
            out,
            "  Active    —  no key: metering is refused (NO_ACTIVE_KEY)"
        )?,
    }
    match &p.reserved_key {
        Some(id) => writeln!(
            out,
            "  Reserved  {id}  {}",
            usage(class, u.reserved_used, u.reserved_limit)
        )?,
        None => writeln!(out, "  Reserved  —")?,
    }
    writeln!(
        out,
        "  Left      {} on the Active and Reserved keys",
        format_size(p.remaining, units)
    )?;
    writeln!(out, "  Switches  {}", u.switches)
}
