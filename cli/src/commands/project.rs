//! `tollgate project create|list|show`.

use std::io::Write;

use serde::Serialize;
use tollgate_core::{ProjectView, Role};

use super::Context;
use crate::failure::Failure;
use crate::output::{json_document, table};
use crate::render::write_view;

#[derive(Serialize)]
struct Created<'a> {
    project: &'a str,
    created: bool,
}

/// A row of `project list`.
#[derive(Serialize)]
struct Listed {
    name: String,
    active: Vec<String>,
    reserved: Vec<String>,
    add_license_available: bool,
}

/// Creates a project.
pub fn create(ctx: &Context, name: &str, out: &mut dyn Write) -> Result<(), Failure> {
    ctx.engine()?.create_project(name)?;
    if ctx.json {
        json_document(
            out,
            &Created {
                project: name,
                created: true,
            },
        )?;
    } else {
        writeln!(
            out,
            "Created project \"{name}\". Add its first license key with `tollgate key add {name} …`."
        )?;
    }
    Ok(())
}

/// Lists every project with its Active and Reserved keys.
pub fn list(ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let engine = ctx.existing_engine()?;
    let mut rows = Vec::new();
    for name in engine.projects()? {
        rows.push(listed(engine.view(&name)?));
    }
    if ctx.json {
        json_document(out, &rows)?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(
            out,
            "No projects yet: create one with `tollgate project create NAME`."
        )?;
        return Ok(());
    }
    let ids = |ids: &[String]| {
        if ids.is_empty() {
            "—".to_owned()
        } else {
            ids.join(", ")
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.name.clone(),
                ids(&row.active),
                ids(&row.reserved),
                if row.add_license_available {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
            ]
        })
        .collect();
    table(
        out,
        &["PROJECT", "ACTIVE", "RESERVED", "ADD LICENSE"],
        &cells,
    )?;
    Ok(())
}

fn listed(view: ProjectView) -> Listed {
    let keys = |role: Role| {
        view.pairs
            .iter()
            .flat_map(|pair| &pair.cards)
            .filter(|card| card.status == role)
            .map(|card| card.key.id.clone())
            .collect()
    };
    Listed {
        active: keys(Role::Active),
        reserved: keys(Role::Reserved),
        add_license_available: view.pairs.iter().any(|p| p.add_license_available),
        name: view.project,
    }
}

/// Shows a project's license cards.
pub fn show(ctx: &Context, name: &str, out: &mut dyn Write) -> Result<(), Failure> {
    let view = ctx.existing_engine()?.view(name)?;
    if ctx.json {
        json_document(out, &view)?;
    } else {
        write_view(out, &view)?;
    }
    Ok(())
}
