//! `tollgate group add|list`: named groups of projects (a cluster of SVMs, rule R8 in
//! docs/rules.md).

use std::io::Write;

use tollgate_core::Error;

use super::Context;
use crate::failure::Failure;
use crate::output::{json_document, table};

/// Adds projects to a group and prints the group as it now is.
pub fn add(
    ctx: &Context,
    group: &str,
    projects: &[String],
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let engine = ctx.engine()?;
    let names: Vec<&str> = projects.iter().map(String::as_str).collect();
    engine.add_to_group(group, &names)?;
    let now = engine
        .groups()?
        .into_iter()
        .find(|g| g.name == group)
        .ok_or_else(|| Error::GroupNotFound {
            name: group.to_owned(),
        })?;
    if ctx.json {
        json_document(out, &now)?;
    } else {
        writeln!(
            out,
            "Group \"{group}\" has {} project{}: {}.",
            now.projects.len(),
            if now.projects.len() == 1 { "" } else { "s" },
            now.projects.join(", ")
        )?;
    }
    Ok(())
}

/// Lists every group with its projects.
pub fn list(ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let groups = ctx.existing_engine()?.groups()?;
    if ctx.json {
        json_document(out, &groups)?;
        return Ok(());
    }
    if groups.is_empty() {
        writeln!(
            out,
            "No groups yet: create one with `tollgate group add GROUP PROJECT…`."
        )?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|g| vec![g.name, g.projects.join(", ")])
        .collect();
    table(out, &["GROUP", "PROJECTS"], &rows)?;
    Ok(())
}
