//! Text a person reads: license cards (rule R27 in docs/rules.md), usage bars and event lines.

use std::io::{self, Write};

use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use tollgate_core::{
    Edition, Event, EventKind, InstanceOs, Key, KeyKind, LicenseCard, LicenseClass, LicenseType,
    PairView, ProjectView, RefusalReason, RemovalReason, Role, Scheme, SwitchReason,
};

use crate::size::{format_size, Units};

/// Cells in a usage bar.
const BAR_CELLS: u64 = 10;

/// Whole percent of `used` in `limit`, rounded down so 100 % means used up.
pub fn percent(used: u64, limit: u64) -> u64 {
    if limit == 0 {
        return 0;
    }
    (u128::from(used) * 100 / u128::from(limit)) as u64
}

/// A ten-cell bar: `█████░░░░░`.
pub fn bar(used: u64, limit: u64) -> String {
    let filled = if limit == 0 {
        0
    } else {
        (u128::from(used.min(limit)) * u128::from(BAR_CELLS) / u128::from(limit)) as usize
    };
    let mut bar = "█".repeat(filled);
    bar.push_str(&"░".repeat(BAR_CELLS as usize - filled));
    bar
}

/// An amount of what a class limits: bytes, machines, cores or instances. A size is shown in
/// the unit system it is round in (see [`Units::of`]): pass limits here, and a used amount to
/// [`used_of`].
pub fn quantity(class: LicenseClass, amount: u64) -> String {
    let plural =
        |one: &str, many: &str| format!("{amount} {}", if amount == 1 { one } else { many });
    match class {
        LicenseClass::DataVolume => format_size(amount, Units::of(amount)),
        LicenseClass::ServerMachines => plural("server machine", "server machines"),
        LicenseClass::DesktopMachines => plural("desktop machine", "desktop machines"),
        LicenseClass::Cores => plural("core", "cores"),
        LicenseClass::Instance => plural("instance", "instances"),
    }
}

/// A used amount of a limit, `250.00 MB of 1.00 GB`: a size in the unit system of its limit.
pub fn used_of(class: LicenseClass, used: u64, limit: u64) -> String {
    match class {
        LicenseClass::DataVolume => format!(
            "{} of {}",
            format_size(used, Units::of(limit)),
            quantity(class, limit)
        ),
        _ => format!("{} of {}", quantity(class, used), quantity(class, limit)),
    }
}

/// The usage bar with its figures: `█████░░░░░ 52 % of 1.00 GiB`.
pub fn usage(class: LicenseClass, used: u64, limit: u64) -> String {
    format!(
        "{} {} % of {}",
        bar(used, limit),
        percent(used, limit),
        quantity(class, limit)
    )
}

/// A heading for a license class.
pub fn class_title(class: LicenseClass) -> &'static str {
    match class {
        LicenseClass::DataVolume => "data volume",
        LicenseClass::ServerMachines => "server machines",
        LicenseClass::DesktopMachines => "desktop machines",
        LicenseClass::Cores => "processor cores",
        LicenseClass::Instance => "instance",
    }
}

/// The class of a pair view (the engine names it with `LicenseClass::as_str`).
pub fn pair_class(pair: &PairView) -> LicenseClass {
    LicenseClass::parse(&pair.class).unwrap_or(LicenseClass::DataVolume)
}

/// A card label for a key kind.
pub fn kind_label(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Commercial => "Commercial",
        KeyKind::Trial => "Trial",
        KeyKind::Subscription => "Subscription",
    }
}

/// A card label for an edition.
pub fn edition_label(edition: Edition) -> &'static str {
    match edition {
        Edition::Standard => "Standard",
        Edition::Enterprise => "Enterprise",
    }
}

/// What a scheme limits, for a key listing: `data volume`, `50 server machines`, ….
pub fn scheme_label(scheme: &Scheme) -> String {
    match scheme {
        Scheme::DataVolume { .. } => "data volume".to_owned(),
        other => quantity(other.class(), other.amount()),
    }
}

/// An instant as `2027-01-01 00:00:00 UTC`.
pub fn timestamp(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// A key's expiry, or `never`.
pub fn expiry(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "never".to_owned(), timestamp)
}

/// Draws a project's License Information: one card per key, then the Add License action.
pub fn write_view(out: &mut dyn Write, view: &ProjectView) -> io::Result<()> {
    writeln!(out, "Project {}", view.project)?;
    for pair in &view.pairs {
        let class = pair_class(pair);
        writeln!(out)?;
        writeln!(out, "License Information · {}", class_title(class))?;
        if pair.cards.is_empty() {
            writeln!(
                out,
                "  No license key yet: add one with `tollgate key add {} …`.",
                view.project
            )?;
            continue;
        }
        let count = pair.cards.len();
        for (i, card) in pair.cards.iter().enumerate() {
            write_card(out, class, card, i + 1, count)?;
        }
        if pair.add_license_available {
            writeln!(
                out,
                "  [Add License] available: `tollgate key add {} …` adds a Reserved key.",
                view.project
            )?;
        } else if count == 1 {
            writeln!(
                out,
                "  [Add License] not shown: a subscription key takes no Reserved key."
            )?;
        } else {
            writeln!(
                out,
                "  [Add License] not shown: the project has two keys, the most it can hold."
            )?;
        }
    }
    Ok(())
}

fn write_card(
    out: &mut dyn Write,
    class: LicenseClass,
    card: &LicenseCard,
    number: usize,
    count: usize,
) -> io::Result<()> {
    let status = match card.status {
        Role::Active => "Active",
        Role::Reserved => "Reserved",
    };
    let key: &Key = &card.key;
    let title = format!("─ Card {number} of {count} · {status} ");
    writeln!(
        out,
        "  ┌{title}{}",
        "─".repeat(60usize.saturating_sub(title.chars().count()))
    )?;
    let row =
        |out: &mut dyn Write, label: &str, value: &str| writeln!(out, "  │ {label:<16} {value}");
    row(out, "License key", &key.id)?;
    row(out, "Status", status)?;
    row(out, "Type", card.type_label)?;
    row(
        out,
        "License",
        &format!(
            "{} · {} edition",
            kind_label(key.kind),
            edition_label(key.edition)
        ),
    )?;
    if let Some(company) = &key.company {
        row(out, "Company", company)?;
    }
    let expiration = match card.status {
        Role::Reserved => card.expiration.clone(),
        Role::Active => key.expires_at.map_or_else(|| "Never".to_owned(), timestamp),
    };
    let expired = if card.expired { " (expired)" } else { "" };
    row(out, "Expiration date", &format!("{expiration}{expired}"))?;
    if let Some(until) = &card.grace_until {
        row(out, "Grace", &format!("In grace until {until}"))?;
    }
    if let Some(overage) = card.overage {
        let used = used_of(LicenseClass::DataVolume, overage.used, overage.allowed);
        row(out, "Overage", &format!("Overage {used} allowed"))?;
    }
    if let (Some(reset), Some(at)) = (key.reset, &card.resets_at) {
        row(out, "Reset", &format!("Resets {reset}, next on {at}"))?;
    }
    row(out, "Auto-renew", if key.auto_renew { "yes" } else { "no" })?;
    row(out, "Usage", &usage(class, card.used, card.limit))?;
    writeln!(out, "  │ ⓘ {}", card.tooltip)?;
    writeln!(out, "  └{}", "─".repeat(60))
}

/// What an event says, in words.
pub fn event_text(kind: &EventKind) -> String {
    match kind {
        EventKind::ProjectCreated => "project created".to_owned(),
        EventKind::KeyAdded { key, role } => {
            let role = match role {
                Role::Active => "Active",
                Role::Reserved => "Reserved",
            };
            format!("key {key} added as the {role} key")
        }
        EventKind::Switched { from, to, reason } => {
            let why = match reason {
                SwitchReason::Exhausted => "used up",
                SwitchReason::Expired => "expired",
            };
            format!("switched: {from} {why}, Reserved key {to} is now the Active key")
        }
        EventKind::ReserveRemoved { key, reason } => match reason {
            RemovalReason::Requested => format!("Reserved key {key} removed on request"),
            RemovalReason::ExpiresBeforeNewTerm => format!(
                "Reserved key {key} removed: it expires before the new Active key's term ends"
            ),
        },
        EventKind::KeyReplaced { old, new } => format!("Active key {old} replaced by {new}"),
        EventKind::Threshold { key, percent } => {
            format!("key {key} reached {percent} % of its limit")
        }
        EventKind::Refused { reason } => format!("request refused: {}", refusal_text(*reason)),
        // An upgrade's conversion is no crash; its detail says what it was.
        EventKind::Recovered { detail } if detail.starts_with("upgraded from ") => detail.clone(),
        EventKind::Recovered { detail } => format!("recovered after a crash: {detail}"),
        EventKind::SeatsReclaimed { pid, units } => {
            let seats = if *units == 1 { "seat" } else { "seats" };
            format!("{units} {seats} of ended process {pid} reclaimed")
        }
        EventKind::LicensesPurchased {
            license_type,
            license_kind,
            quantity,
            company,
            first,
            last,
        } => format!(
            "{quantity} {} {} license{} bought into {} ({first} … {last})",
            license_kind.as_str(),
            license_type.as_str(),
            if *quantity == 1 { "" } else { "s" },
            pool_name(company.as_deref())
        ),
        EventKind::InstanceAdded { os, company } => match company {
            Some(company) => format!("{} instance of {company} added", os_label(*os)),
            None => format!("{} instance added", os_label(*os)),
        },
        EventKind::LicenseAssigned {
            license,
            license_type,
        } => format!("{} license {license} assigned", license_type.as_str()),
        EventKind::LicenseUnassigned { license } => {
            format!("license {license} returned to its pool")
        }
        EventKind::GroupJoined { group } => format!("joined group {group}"),
        EventKind::VendorKeyTrusted { public_key } => {
            format!("vendor public key {public_key} trusted")
        }
        EventKind::RenewalFailed { reason, .. } => reason.clone(),
        EventKind::GraceStarted { key, until } => format!(
            "key {key} expired with no valid Reserved key: it grants on in its grace, until {until}"
        ),
        EventKind::OverageStarted { key } => {
            format!("key {key} passed its limit with no Reserved key: now using its overage")
        }
        EventKind::PeriodClosed {
            key,
            starts_at,
            ends_at,
            used,
        } => format!(
            "key {key}: the period {starts_at} to {ends_at} closed with {used} bytes used; its usage starts again at 0"
        ),
        EventKind::GraceEnded { key } => {
            format!("the grace of expired key {key} ended: requests are refused")
        }
        EventKind::ClockRolledBack {
            behind_secs,
            latest_seen,
        } => format!(
            "clock set back {behind_secs} s behind the latest time seen ({latest_seen}); expiry is judged by the latest time"
        ),
        EventKind::Ratchet {
            seq, total_used, ..
        } => format!("usage checkpoint {seq}: {total_used} bytes charged in all"),
        EventKind::RollbackAccepted { reason, .. } => {
            format!("an operator accepted a refused state: {reason}")
        }
        EventKind::ClockAccepted { from, to, .. } => {
            format!("an operator lowered the latest time seen from {from} to the clock's, {to}")
        }
    }
}

/// Which pool a license belongs to: `the global pool` or `company "Acme"'s pool`.
pub fn pool_name(company: Option<&str>) -> String {
    company.map_or_else(
        || "the global pool".to_owned(),
        |c| format!("company \"{c}\"'s pool"),
    )
}

/// A pool license type as a heading: `Server`, `Desktop`, `Workstation`.
pub fn type_label(license_type: LicenseType) -> &'static str {
    match license_type {
        LicenseType::Server => "Server",
        LicenseType::Desktop => "Desktop",
        LicenseType::Workstation => "Workstation",
    }
}

/// An operating system as people write it.
pub fn os_label(os: InstanceOs) -> &'static str {
    match os {
        InstanceOs::Windows => "Windows",
        InstanceOs::Macos => "macOS",
        InstanceOs::Linux => "Linux",
    }
}

/// Why a request was refused, in words with the code.
pub fn refusal_text(reason: RefusalReason) -> &'static str {
    match reason {
        RefusalReason::Exhausted => "not enough left on the Active and Reserved keys (EXHAUSTED)",
        RefusalReason::Expired => "the keys that could cover it have expired (EXPIRED)",
        RefusalReason::NoActiveKey => "the project has no Active key (NO_ACTIVE_KEY)",
    }
}

/// One audit-log line: `   12  2026-05-01 10:00:00 UTC  project  what happened`.
pub fn event_line(event: &Event) -> String {
    format!(
        "{:>6}  {}  {}  {}",
        event.seq,
        timestamp(event.at),
        // Pool events concern no project.
        if event.project.is_empty() {
            "—"
        } else {
            &event.project
        },
        event_text(&event.kind)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_round_down() {
        assert_eq!(bar(52, 100), "█████░░░░░");
        assert_eq!(bar(0, 100), "░░░░░░░░░░");
        assert_eq!(bar(100, 100), "██████████");
        assert_eq!(bar(99, 100), "█████████░");
        assert_eq!(bar(5, 0), "░░░░░░░░░░");
        assert_eq!(percent(999, 1000), 99);
    }

    #[test]
    fn usage_reads_like_the_card() {
        assert_eq!(
            usage(LicenseClass::DataVolume, 52 << 20, 100 << 20),
            "█████░░░░░ 52 % of 100.00 MiB"
        );
        assert_eq!(
            usage(LicenseClass::ServerMachines, 1, 1),
            "██████████ 100 % of 1 server machine"
        );
    }

    /// Regression: a subscription key's card says why Add License is not offered.
    #[test]
    fn a_subscription_card_offers_no_add_license() {
        let key = Key {
            kind: KeyKind::Subscription,
            ..Key::data_volume("SUB", 1_000_000_000)
        };
        let view = ProjectView {
            project: "P".into(),
            pairs: vec![PairView {
                class: LicenseClass::DataVolume.to_string(),
                cards: vec![LicenseCard {
                    key,
                    type_label: "Online",
                    status: Role::Active,
                    tooltip: "t".into(),
                    expiration: "Never".into(),
                    used: 0,
                    limit: 1_000_000_000,
                    expired: false,
                    grace_until: None,
                    overage: None,
                    resets_at: None,
                }],
                add_license_available: false,
            }],
        };
        let mut out = Vec::new();
        write_view(&mut out, &view).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(
                "  [Add License] not shown: a subscription key takes no Reserved key.\n"
            ),
            "{text}"
        );
    }
}
