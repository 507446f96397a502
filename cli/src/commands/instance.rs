//! `tollgate instance add|assign|check|unassign|list`: per-instance licensing (rules R23–R25 in
//! docs/rules.md).

use std::io::Write;

use serde::Serialize;
use tollgate_core::{Engine, Error, InstanceOs, LicenseType};

use super::Context;
use crate::failure::Failure;
use crate::output::{json_document, table};
use crate::render::{os_label, pool_name};

#[derive(Serialize)]
struct Added<'a> {
    instance: &'a str,
    os: InstanceOs,
    company: Option<&'a str>,
}

#[derive(Serialize)]
struct Checked<'a> {
    instance: &'a str,
    licensed: bool,
    license: Option<String>,
}

#[derive(Serialize)]
struct Unassigned<'a> {
    instance: &'a str,
    license: &'a str,
}

/// Registers an instance.
pub fn add(
    ctx: &Context,
    name: &str,
    os: InstanceOs,
    company: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    ctx.engine()?.add_instance(name, os, company)?;
    if ctx.json {
        json_document(
            out,
            &Added {
                instance: name,
                os,
                company,
            },
        )?;
        return Ok(());
    }
    let of = company.map_or_else(String::new, |c| format!(" of company \"{c}\""));
    writeln!(
        out,
        "Added {} instance \"{name}\"{of}. License it with `tollgate instance assign {name}`.",
        os_label(os)
    )?;
    Ok(())
}

/// Assigns a pool license to an instance.
pub fn assign(
    ctx: &Context,
    name: &str,
    license_type: Option<LicenseType>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let engine = ctx.engine()?;
    let assignment = engine.assign(name, license_type)?;
    if ctx.json {
        json_document(out, &assignment)?;
        return Ok(());
    }
    let company = if assignment.from_company_pool {
        instance_company(&engine, name)?
    } else {
        None
    };
    writeln!(
        out,
        "Assigned {} license {} to instance \"{name}\" from {}.",
        assignment.license_type.as_str(),
        assignment.license,
        pool_name(company.as_deref())
    )?;
    if let Some(old) = &assignment.replaced_expired {
        writeln!(out, "Its expired license {old} went back to its pool.")?;
    }
    Ok(())
}

/// The check a backup job makes: success when a valid license covers the instance now.
pub fn check(ctx: &Context, name: &str, out: &mut dyn Write) -> Result<(), Failure> {
    let engine = ctx.engine()?;
    let checked = engine.check_instance(name);
    let license = engine
        .instances()?
        .into_iter()
        .find(|i| i.name == name)
        .and_then(|i| i.license);
    checked.map_err(|e| refusal(name, license.as_deref(), e))?;
    if ctx.json {
        json_document(
            out,
            &Checked {
                instance: name,
                licensed: true,
                license,
            },
        )?;
    } else {
        writeln!(
            out,
            "Instance \"{name}\" is licensed by {}.",
            license.as_deref().unwrap_or("its license")
        )?;
    }
    Ok(())
}

/// Words an operator understands for the hot-path refusals, which name no instance.
fn refusal(name: &str, license: Option<&str>, error: Error) -> Failure {
    let rule = Some("an instance may back up only while a valid pool license is assigned to it");
    match error {
        Error::NoActiveKey => Failure::refused(
            "NO_ACTIVE_KEY",
            format!(
                "instance \"{name}\" holds no license: assign one with `tollgate instance assign {name}`"
            ),
            rule,
        ),
        Error::Expired => Failure::refused(
            "EXPIRED",
            format!(
                "the license{} of instance \"{name}\" has expired: assign it a valid one",
                license.map(|l| format!(" {l}")).unwrap_or_default()
            ),
            rule,
        ),
        other => other.into(),
    }
}

/// Returns an instance's license to its pool.
pub fn unassign(ctx: &Context, name: &str, out: &mut dyn Write) -> Result<(), Failure> {
    let license = ctx.engine()?.unassign(name)?;
    if ctx.json {
        json_document(
            out,
            &Unassigned {
                instance: name,
                license: &license,
            },
        )?;
    } else {
        writeln!(
            out,
            "License {license} went back to its pool; instance \"{name}\" is no longer licensed."
        )?;
    }
    Ok(())
}

/// Lists every instance.
pub fn list(ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let instances = ctx.existing_engine()?.instances()?;
    if ctx.json {
        json_document(out, &instances)?;
        return Ok(());
    }
    if instances.is_empty() {
        writeln!(
            out,
            "No instances yet: add one with `tollgate instance add NAME --os …`."
        )?;
        return Ok(());
    }
    let none = || "—".to_owned();
    let rows: Vec<Vec<String>> = instances
        .into_iter()
        .map(|i| {
            vec![
                i.name,
                os_label(i.os).to_owned(),
                i.company.unwrap_or_else(none),
                i.license.unwrap_or_else(none),
            ]
        })
        .collect();
    table(out, &["INSTANCE", "OS", "COMPANY", "LICENSE"], &rows)?;
    Ok(())
}

fn instance_company(engine: &Engine, name: &str) -> Result<Option<String>, Failure> {
    Ok(engine
        .instances()?
        .into_iter()
        .find(|i| i.name == name)
        .and_then(|i| i.company))
}
