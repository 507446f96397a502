//! `tollgate --store URL lease list|reclaim|write-off`: the operator's side of the fleet store
//! (docs/fleet-store.md), acting on PostgreSQL through `tollgate-store`.
//!
//! The commands whose fleet mode does not exist yet refuse `--store` and `--host` rather than
//! ignore them ([`refuse_fleet_options`]).

use std::io::Write;
use std::time::SystemTime;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tollgate_store::{Error, LeaseId, LeaseRecord, LeaseState, Reclaimed, Store};

use crate::args::LeaseCommand;
use crate::context::Context;
use crate::failure::{describe_store, Failure};
use crate::output::{json_document, table};
use crate::render::timestamp;

/// Refuses `--store` and `--host` (or their environment variables) for a command whose fleet
/// mode does not exist yet: silently using the local state directory instead would meter
/// outside the fleet.
pub fn refuse_fleet_options(ctx: &Context) -> Result<(), Failure> {
    let given: Vec<&str> = [
        (ctx.store.is_some(), "--store (or TOLLGATE_STORE)"),
        (ctx.host.is_some(), "--host (or TOLLGATE_HOST)"),
    ]
    .into_iter()
    .filter_map(|(given, option)| given.then_some(option))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(Failure::Usage {
        message: format!(
            "fleet mode is not available yet for `tollgate {}`: {} {} only with `tollgate lease …`, \
             `project …`, `key add|add-reserve|replace|remove-reserve|list`, `group …`, \
             `pool …`, `instance add|assign|unassign|list`, `usage`, `events` and `pipe` so far; \
             leave {} out to use the state directory",
            ctx.command,
            given.join(" and "),
            if given.len() == 1 { "works" } else { "work" },
            if given.len() == 1 { "it" } else { "them" },
        ),
    })
}

/// Runs one `lease` command.
pub fn run(command: LeaseCommand, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        LeaseCommand::List => list(ctx, out),
        LeaseCommand::Reclaim => {
            no_host(ctx, "reclaims the expired leases of every host")?;
            reclaim(ctx, out)
        }
        LeaseCommand::WriteOff { lease } => {
            no_host(ctx, "names the lease by its id alone")?;
            write_off(ctx, LeaseId(lease), out)
        }
    }
}

/// The fleet store, connected and migrated, with its name for messages (password hidden).
struct Fleet {
    store: Store,
    name: String,
}

impl Fleet {
    /// Connects to `--store` and brings its schema up to date.
    fn open(ctx: &Context) -> Result<Fleet, Failure> {
        let Some(url) = ctx.store.as_deref().filter(|url| !url.trim().is_empty()) else {
            return Err(Failure::Usage {
                message: format!(
                    "`tollgate {}` acts on the fleet store: give --store URL (or set \
                     TOLLGATE_STORE), e.g. --store postgresql://tollgate@db.example/fleet",
                    ctx.command
                ),
            });
        };
        let name = redact(url);
        let mut store = match Store::connect(url) {
            Ok(store) => store,
            Err(Error::InvalidArgument { .. }) => {
                return Err(Failure::Usage {
                    message: format!(
                        "--store \"{name}\" is neither a postgresql:// URL nor key=value \
                         connection parameters"
                    ),
                })
            }
            Err(e) => return Err(failure(&name, e)),
        };
        store.migrate().map_err(|e| failure(&name, e))?;
        Ok(Fleet { store, name })
    }

    /// The failure of a store call, naming the store when it is out of reach.
    fn fail(&self, error: Error) -> Failure {
        failure(&self.name, error)
    }
}

/// A store error as a refusal; an unreachable store is named (`UNAVAILABLE`).
fn failure(name: &str, error: Error) -> Failure {
    let (code, rule) = describe_store(&error);
    match error {
        Error::Unavailable(source) => {
            // The client's error says "error connecting to server"; its sources say why.
            let mut message = format!("the fleet store \"{name}\" is unavailable: {source}");
            let mut cause = std::error::Error::source(&source);
            while let Some(error) = cause {
                message.push_str(&format!(": {error}"));
                cause = error.source();
            }
            Failure::Refused {
                code,
                message,
                rule,
            }
        }
        other => other.into(),
    }
}

/// Refuses `--host` for a `lease` command it has no meaning for.
fn no_host(ctx: &Context, why: &str) -> Result<(), Failure> {
    match &ctx.host {
        Some(host) => Err(Failure::Usage {
            message: format!(
                "`tollgate {}` {why}: --host \"{host}\" (or TOLLGATE_HOST) does not apply to it",
                ctx.command
            ),
        }),
        None => Ok(()),
    }
}

/// A lease as `lease list --json` prints it.
#[derive(Serialize)]
struct LeaseJson<'a> {
    id: i64,
    key: &'a str,
    host: &'a str,
    /// `open`, `reclaimed`, `settled` or `written_off`.
    state: &'static str,
    granted: u64,
    drawn: u64,
    reported: u64,
    in_doubt: u64,
    settled: Option<u64>,
    seq: u64,
    taken_at: String,
    expires_at: String,
}

/// The state as the store's `state` column spells it.
fn state_name(state: LeaseState) -> &'static str {
    match state {
        LeaseState::Open => "open",
        LeaseState::Reclaimed => "reclaimed",
        LeaseState::Settled => "settled",
        LeaseState::WrittenOff => "written_off",
    }
}

/// An instant in RFC 3339, UTC.
fn rfc3339(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl<'a> From<&'a LeaseRecord> for LeaseJson<'a> {
    fn from(lease: &'a LeaseRecord) -> LeaseJson<'a> {
        LeaseJson {
            id: lease.id.0,
            key: &lease.key,
            host: &lease.host,
            state: state_name(lease.state),
            granted: lease.granted,
            drawn: lease.drawn,
            reported: lease.reported,
            in_doubt: lease.in_doubt,
            settled: lease.settled,
            seq: lease.seq,
            taken_at: rfc3339(lease.taken_at),
            expires_at: rfc3339(lease.expires_at),
        }
    }
}

/// `lease list`: every lease (of `--host` only, when given), oldest first.
fn list(ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let mut fleet = Fleet::open(ctx)?;
    let mut leases = fleet.store.list_leases().map_err(|e| fleet.fail(e))?;
    if let Some(host) = &ctx.host {
        leases.retain(|lease| &lease.host == host);
    }
    if ctx.json {
        let leases: Vec<LeaseJson> = leases.iter().map(LeaseJson::from).collect();
        json_document(out, &leases)?;
        return Ok(());
    }
    if leases.is_empty() {
        match &ctx.host {
            Some(host) => writeln!(out, "Host \"{host}\" holds no leases in the fleet store.")?,
            None => writeln!(out, "No leases in the fleet store.")?,
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|lease| {
            vec![
                lease.id.to_string(),
                lease.key.clone(),
                lease.host.clone(),
                lease.granted.to_string(),
                lease.drawn.to_string(),
                lease.reported.to_string(),
                lease.state.to_string(),
                timestamp(OffsetDateTime::from(lease.expires_at)),
                lease.in_doubt.to_string(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "LEASE", "KEY", "HOST", "GRANTED", "DRAWN", "REPORTED", "STATE", "EXPIRES", "IN DOUBT",
        ],
        &rows,
    )?;
    let in_doubt: Vec<&LeaseRecord> = leases
        .iter()
        .filter(|lease| lease.state == LeaseState::Reclaimed && lease.in_doubt > 0)
        .collect();
    if !in_doubt.is_empty() {
        let total: u64 = in_doubt.iter().map(|lease| lease.in_doubt).sum();
        writeln!(
            out,
            "{total} in doubt over {} reclaimed lease{}: counted until the host settles it, or \
             until `tollgate lease write-off LEASE` gives it up.",
            in_doubt.len(),
            if in_doubt.len() == 1 { "" } else { "s" },
        )?;
    }
    Ok(())
}

/// A reclaimed lease as `lease reclaim --json` prints it.
#[derive(Serialize)]
struct ReclaimedJson<'a> {
    lease: i64,
    key: &'a str,
    host: &'a str,
    returned: u64,
    in_doubt: u64,
}

/// `lease reclaim`: closes every expired lease and prints what each gave back and left in doubt.
fn reclaim(ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let mut fleet = Fleet::open(ctx)?;
    let reclaimed: Vec<Reclaimed> = fleet.store.reclaim_expired().map_err(|e| fleet.fail(e))?;
    if ctx.json {
        let reclaimed: Vec<ReclaimedJson> = reclaimed
            .iter()
            .map(|r| ReclaimedJson {
                lease: r.lease.0,
                key: &r.key,
                host: &r.host,
                returned: r.returned,
                in_doubt: r.in_doubt,
            })
            .collect();
        json_document(out, &reclaimed)?;
        return Ok(());
    }
    if reclaimed.is_empty() {
        writeln!(out, "No open lease has expired: nothing to reclaim.")?;
        return Ok(());
    }
    writeln!(
        out,
        "Reclaimed {} expired lease{}:",
        reclaimed.len(),
        if reclaimed.len() == 1 { "" } else { "s" }
    )?;
    let rows: Vec<Vec<String>> = reclaimed
        .iter()
        .map(|r| {
            vec![
                r.lease.to_string(),
                r.key.clone(),
                r.host.clone(),
                r.returned.to_string(),
                r.in_doubt.to_string(),
            ]
        })
        .collect();
    table(
        out,
        &["LEASE", "KEY", "HOST", "RETURNED", "IN DOUBT"],
        &rows,
    )?;
    if reclaimed.iter().any(|r| r.in_doubt > 0) {
        writeln!(
            out,
            "Returned: never drawn, free again. In doubt: drawn but not reported, perhaps granted; \
             it stays counted until the host settles the lease, or until `tollgate lease \
             write-off LEASE` gives it up."
        )?;
    }
    Ok(())
}

/// `lease write-off LEASE --json`.
#[derive(Serialize)]
struct WrittenOffJson {
    lease: i64,
    written_off: u64,
}

/// `lease write-off LEASE`: gives up a reclaimed lease's in-doubt part, once.
fn write_off(ctx: &Context, lease: LeaseId, out: &mut dyn Write) -> Result<(), Failure> {
    let mut fleet = Fleet::open(ctx)?;
    let written_off = fleet.store.write_off(lease).map_err(|e| fleet.fail(e))?;
    if ctx.json {
        json_document(
            out,
            &WrittenOffJson {
                lease: lease.0,
                written_off,
            },
        )?;
    } else {
        writeln!(
            out,
            "Wrote off lease {lease}: its {written_off} in doubt is counted as written off and \
             never leased again."
        )?;
    }
    Ok(())
}

/// The connection string with its password replaced by `***`, for messages: in a URL's user
/// information (`postgresql://user:secret@host/db`), a `password=` query parameter, or a
/// `password=` key of key=value parameters (quoted or not).
fn redact(params: &str) -> String {
    if let Some(scheme_end) = params.find("://") {
        let rest_start = scheme_end + 3;
        let rest = &params[rest_start..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let mut redacted = params[..rest_start].to_owned();
        match authority.rfind('@') {
            Some(at) => {
                let user_info = &authority[..at];
                match user_info.find(':') {
                    Some(colon) => {
                        redacted.push_str(&user_info[..colon]);
                        redacted.push_str(":***");
                    }
                    None => redacted.push_str(user_info),
                }
                redacted.push_str(&authority[at..]);
            }
            None => redacted.push_str(authority),
        }
        let tail = &rest[authority_end..];
        match tail.split_once('?') {
            Some((path, query)) => {
                redacted.push_str(path);
                redacted.push('?');
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some(("password", _)) => "password=***".to_owned(),
                        _ => pair.to_owned(),
                    })
                    .collect();
                redacted.push_str(&query.join("&"));
            }
            None => redacted.push_str(tail),
        }
        return redacted;
    }
    redact_key_value(params)
}

/// `password=…` hidden in key=value parameters, whose values may be quoted with `'` and escape
/// with `\`.
fn redact_key_value(params: &str) -> String {
    let mut redacted = String::with_capacity(params.len());
    let mut rest = params;
    loop {
        let trimmed = rest.trim_start();
        redacted.push_str(&rest[..rest.len() - trimmed.len()]);
        rest = trimmed;
        if rest.is_empty() {
            return redacted;
        }
        let key_end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let key = &rest[..key_end];
        redacted.push_str(key);
        rest = &rest[key_end..];
        let after_spaces = rest.trim_start();
        let Some(value) = after_spaces.strip_prefix('=') else {
            // Not key=value: copy the rest as it is.
            redacted.push_str(rest);
            return redacted;
        };
        redacted.push_str(&rest[..rest.len() - after_spaces.len()]);
        redacted.push('=');
        let value_start = value.trim_start();
        redacted.push_str(&value[..value.len() - value_start.len()]);
        let value_len = value_length(value_start);
        if key == "password" {
            redacted.push_str("***");
        } else {
            redacted.push_str(&value_start[..value_len]);
        }
        rest = &value_start[value_len..];
    }
}

/// The length of a key=value parameter's value at the start of `text`: quoted up to its closing
/// quote, else up to the next space.
fn value_length(text: &str) -> usize {
    if !text.starts_with('\'') {
        return text.find(char::is_whitespace).unwrap_or(text.len());
    }
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => return i + 1,
            _ => {}
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden_in_urls_and_key_value_parameters() {
        assert_eq!(
            redact("postgresql://tollgate:s3cr@t@db.example:5432/fleet?sslmode=disable"),
            "postgresql://tollgate:***@db.example:5432/fleet?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://db.example/fleet?user=t&password=hunter2&x=1"),
            "postgres://db.example/fleet?user=t&password=***&x=1"
        );
        assert_eq!(
            redact("postgresql://tollgate@db.example/fleet"),
            "postgresql://tollgate@db.example/fleet"
        );
        assert_eq!(
            redact("host=/run/postgresql user=t password='a \\' b' dbname=fleet"),
            "host=/run/postgresql user=t password=*** dbname=fleet"
        );
        assert_eq!(
            redact("host=/tmp password = hunter2"),
            "host=/tmp password = ***"
        );
        assert_eq!(
            redact("host=/tmp/x user=postgres"),
            "host=/tmp/x user=postgres"
        );
    }
}
