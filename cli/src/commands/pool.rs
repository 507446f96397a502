//! `tollgate pool buy|list|shortfall`: license pools (rules R22 and R26 in docs/rules.md).

use std::io::{self, Write};

use serde::Serialize;
use tollgate_core::{NeedReason, PoolKind, PoolLicense, Purchase, Shortfall, TypeListing};

use super::Context;
use crate::args::{BuyArgs, ListArgs};
use crate::failure::Failure;
use crate::output::{json_document, table};
use crate::render::{expiry, pool_name, type_label};

/// Purchases of up to this many licenses print every id; larger ones print the first and last.
const IDS_IN_FULL: usize = 6;

#[derive(Serialize)]
struct Bought<'a> {
    purchase: &'a Purchase,
    licenses: &'a [String],
}

/// Buys licenses and prints their ids.
pub fn buy(ctx: &Context, args: &BuyArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let purchase = Purchase {
        kind: if args.trial {
            PoolKind::Trial
        } else {
            PoolKind::Commercial
        },
        company: args.company.clone(),
        expires_at: args.expires,
        auto_renew: args.auto_renew,
        premium_support: args.premium_support,
        onboarding: args.onboarding,
        ..Purchase::new(args.license_type.into(), args.quantity, args.mode.into())
    };
    let ids = ctx.engine()?.buy_licenses(&purchase)?;
    if ctx.json {
        json_document(
            out,
            &Bought {
                purchase: &purchase,
                licenses: &ids,
            },
        )?;
        return Ok(());
    }
    writeln!(out, "{}", bought(&ids, &purchase))?;
    let renews = if purchase.auto_renew {
        "renews automatically"
    } else {
        "does not renew automatically"
    };
    writeln!(out, "Term ends: {}; {renews}.", expiry(purchase.expires_at))?;
    let services = add_ons(purchase.premium_support, purchase.onboarding);
    if !services.is_empty() {
        writeln!(out, "Add-on services: {}.", services.join(", "))?;
    }
    Ok(())
}

/// What a purchase bought, in one sentence: `Bought 2 commercial server licenses into the
/// global pool, paid annual: server-1-1, server-1-2.` (the console says it too).
pub fn bought(ids: &[String], purchase: &Purchase) -> String {
    let listed = match ids {
        [first, .., last] if ids.len() > IDS_IN_FULL => format!("{first} … {last}"),
        all => all.join(", "),
    };
    format!(
        "Bought {} {} {} license{} into {}, paid {}: {listed}.",
        ids.len(),
        purchase.kind.as_str(),
        purchase.license_type.as_str(),
        if ids.len() == 1 { "" } else { "s" },
        pool_name(purchase.company.as_deref()),
        purchase.payment_mode.as_str(),
    )
}

/// Lists pool licenses grouped by type.
pub fn list(ctx: &Context, args: &ListArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let engine = ctx.existing_engine()?;
    let listings = engine.list_licenses(&args.filter())?;
    if ctx.json {
        json_document(out, &listings)?;
        return Ok(());
    }
    let mode = engine.payment_mode()?;
    if let Some(mode) = mode {
        writeln!(
            out,
            "Payment mode: {} (fixed by the first purchase)",
            mode.as_str()
        )?;
    }
    for (i, listing) in listings.iter().enumerate() {
        if i > 0 || mode.is_some() {
            writeln!(out)?;
        }
        write_listing(out, listing)?;
    }
    Ok(())
}

fn write_listing(out: &mut dyn Write, listing: &TypeListing) -> io::Result<()> {
    let title = type_label(listing.license_type);
    if let Some(message) = &listing.message {
        return writeln!(out, "{title} licenses: {message}");
    }
    if listing.licenses.is_empty() {
        return writeln!(out, "{title} licenses: none match");
    }
    writeln!(
        out,
        "{title} licenses: {} shown, {} used",
        listing.count, listing.used
    )?;
    let rows: Vec<Vec<String>> = listing.licenses.iter().map(license_row).collect();
    let mut cells = Vec::new();
    table(
        &mut cells,
        &[
            "ID",
            "KIND",
            "COMPANY",
            "EXPIRES",
            "AUTO-RENEW",
            "ASSIGNED TO",
            "ADD-ONS",
        ],
        &rows,
    )?;
    for line in String::from_utf8_lossy(&cells).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

fn license_row(license: &PoolLicense) -> Vec<String> {
    let none = || "—".to_owned();
    let services = add_ons(license.premium_support, license.onboarding);
    vec![
        license.id.clone(),
        license.kind.as_str().to_owned(),
        license.company.clone().unwrap_or_else(none),
        format!(
            "{}{}",
            expiry(license.expires_at),
            if license.valid { "" } else { " (expired)" }
        ),
        if license.auto_renew { "yes" } else { "no" }.to_owned(),
        license.assigned_to.clone().unwrap_or_else(none),
        if services.is_empty() {
            none()
        } else {
            services.join(", ")
        },
    ]
}

/// The add-on services a purchase carried, by their seed-002 names.
pub fn add_ons(premium_support: bool, onboarding: bool) -> Vec<&'static str> {
    [
        (premium_support, "Premium Support"),
        (onboarding, "Onboarding"),
    ]
    .into_iter()
    .filter_map(|(bought, name)| bought.then_some(name))
    .collect()
}

/// Prints how many licenses of each type to buy, and which instances need them.
pub fn shortfall(ctx: &Context, days: u32, out: &mut dyn Write) -> Result<(), Failure> {
    let shortfall = ctx.existing_engine()?.shortfall(days)?;
    if ctx.json {
        json_document(out, &shortfall)?;
    } else {
        write_shortfall(out, &shortfall)?;
    }
    Ok(())
}

fn write_shortfall(out: &mut dyn Write, shortfall: &Shortfall) -> io::Result<()> {
    let days = shortfall.days;
    if shortfall.needs.is_empty() {
        return writeln!(
            out,
            "Every instance is licensed for the next {days} days: nothing to buy."
        );
    }
    writeln!(
        out,
        "To keep every instance licensed for the next {days} days:"
    )?;
    let types: Vec<Vec<String>> = shortfall
        .types
        .iter()
        .map(|t| {
            vec![
                type_label(t.license_type).to_owned(),
                t.needed.to_string(),
                t.covered.to_string(),
                t.to_buy.to_string(),
            ]
        })
        .collect();
    table(out, &["TYPE", "NEEDED", "COVERED", "TO BUY"], &types)?;
    writeln!(out)?;
    let none = || "—".to_owned();
    let needs: Vec<Vec<String>> = shortfall
        .needs
        .iter()
        .map(|n| {
            vec![
                n.instance.clone(),
                match n.reason {
                    NeedReason::Unlicensed => "no valid license",
                    NeedReason::ExpiresSoon => "expires, no auto-renew",
                }
                .to_owned(),
                type_label(n.license_type).to_owned(),
                n.company.clone().unwrap_or_else(none),
                n.covered_by.clone().unwrap_or_else(none),
            ]
        })
        .collect();
    table(
        out,
        &[
            "INSTANCE",
            "NEEDS A LICENSE",
            "TYPE",
            "COMPANY",
            "COVERED BY",
        ],
        &needs,
    )
}
