//! A license key from the command line: a key JSON or license file, standard input, or flags.

use std::io::Read;

use tollgate_core::{Edition, Key, KeyKind, KeyOrLicense, Scheme};

use crate::args::KeyArgs;
use crate::failure::Failure;

/// The key the flags describe, built and validated, or the key JSON or signed license file
/// `--file` names, for the engine to check against the state's trust.
pub fn key_from_args(args: &KeyArgs) -> Result<KeyOrLicense, Failure> {
    if let Some(path) = &args.file {
        let text = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| unreadable("standard input", &e))?;
            text
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| unreadable(&path.display().to_string(), &e))?
        };
        return Ok(KeyOrLicense::parse(&text)?);
    }
    let key = Key {
        id: args.id.clone().ok_or_else(|| missing("--id"))?,
        delivery: args.delivery.ok_or_else(|| missing("--delivery"))?.into(),
        kind: args.kind.map_or(KeyKind::Commercial, Into::into),
        edition: args.edition.map_or(Edition::Standard, Into::into),
        scheme: scheme(args)?,
        expires_at: args.expires,
        auto_renew: args.auto_renew,
        company: args.company.clone(),
        activation_code: args.activation_code.clone(),
        grace_days: args.grace_days,
        overage_percent: args.overage_percent,
        reset: args.reset.map(Into::into),
    };
    key.validate()?;
    Ok(key.into())
}

fn scheme(args: &KeyArgs) -> Result<Scheme, Failure> {
    Ok(match (args.limit, args.machines, args.os, args.cores) {
        (Some(limit_bytes), ..) => Scheme::DataVolume { limit_bytes },
        (_, Some(max_machines), Some(os), _) => Scheme::PerMachine {
            os: os.into(),
            max_machines,
        },
        (_, _, _, Some(max_cores)) => Scheme::PerCore { max_cores },
        _ if args.per_instance => Scheme::PerInstance,
        _ => {
            return Err(missing(
                "--limit, --machines with --os, --cores or --per-instance",
            ))
        }
    })
}

fn missing(what: &str) -> Failure {
    Failure::refused(
        "INVALID_ARGUMENT",
        format!("a key needs {what} unless --file is given"),
        None,
    )
}

fn unreadable(source: &str, error: &std::io::Error) -> Failure {
    Failure::refused(
        "INVALID_ARGUMENT",
        format!("cannot read the key from {source}: {error}"),
        None,
    )
}
