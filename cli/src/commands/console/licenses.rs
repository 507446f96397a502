//! Rules R22 and R26 (docs/rules.md) on `/licenses`: the pool grid, licenses grouped by type with
//! counts, the five filters and the search box as query parameters, "Buy New Licenses", and the
//! shortfall for a horizon. The same engine calls as `tollgate pool list|buy|shortfall`.

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use time::macros::format_description;
use time::Date;
use tollgate_core::{
    LicenseFilter, LicenseType, PaymentMode, PoolKind, PoolLicense, Purchase, Shortfall,
    TypeListing, MAX_QUANTITY,
};

use super::super::pool::{add_ons, bought};
use super::page::{
    capital, csrf_field, failure_box, given, head_row, invalid, iso_date, layout, notice, Section,
};
use super::projects::encode;
use super::{respond, App};
use crate::failure::Failure;
use crate::render::type_label;

/// The horizon of the shortfall when the page names none, as `pool shortfall` defaults.
const DEFAULT_DAYS: u32 = 30;

/// The query: the seed's filters, the search box and the shortfall horizon.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    /// Only licenses used for this company.
    company: Option<String>,
    /// `commercial` or `trial`.
    kind: Option<String>,
    /// `all`, `valid` or `expired`.
    validity: Option<String>,
    /// `all`, `used` or `unused` (commercial licenses only).
    #[serde(rename = "use")]
    usage: Option<String>,
    /// `only` for Auto-Renew Only.
    auto_renew: Option<String>,
    /// The search box.
    q: Option<String>,
    /// The shortfall horizon, in days.
    days: Option<String>,
}

impl Filters {
    /// The engine's filter, or which value is not one.
    fn filter(&self) -> Result<LicenseFilter, Failure> {
        let kind = match given(&self.kind) {
            None | Some("all") => None,
            Some(k) => Some(
                PoolKind::parse(k).ok_or_else(|| invalid("kind", k, "commercial, trial or all"))?,
            ),
        };
        let choice = |value: &Option<String>, field, yes, no| match given(value) {
            None | Some("all") => Ok(None),
            Some(v) if v == yes => Ok(Some(true)),
            Some(v) if v == no => Ok(Some(false)),
            Some(v) => Err(invalid(field, v, &format!("{yes}, {no} or all"))),
        };
        let auto_renew_only = match given(&self.auto_renew) {
            None | Some("all") => false,
            Some("only") => true,
            Some(v) => return Err(invalid("auto_renew", v, "only or all")),
        };
        Ok(LicenseFilter {
            license_type: None,
            company: given(&self.company).map(str::to_owned),
            kind,
            valid: choice(&self.validity, "validity", "valid", "expired")?,
            used: choice(&self.usage, "use", "used", "unused")?,
            auto_renew_only,
            search: given(&self.q).map(str::to_owned),
        })
    }

    fn days(&self) -> Result<u32, Failure> {
        match given(&self.days) {
            None => Ok(DEFAULT_DAYS),
            Some(d) => d
                .parse()
                .map_err(|_| invalid("days", d, "a whole number of days")),
        }
    }

    /// Every parameter by its name in the query, as given.
    fn fields(&self) -> [(&'static str, Option<&str>); 7] {
        [
            ("company", given(&self.company)),
            ("kind", given(&self.kind)),
            ("validity", given(&self.validity)),
            ("use", given(&self.usage)),
            ("auto_renew", given(&self.auto_renew)),
            ("q", given(&self.q)),
            ("days", given(&self.days)),
        ]
    }

    /// Hidden fields that keep every parameter but `except` through a GET form.
    fn hidden_fields(&self, except: &str) -> Markup {
        html! {
            @for (name, value) in self.fields() {
                @if let (true, Some(value)) = (name != except, value) {
                    input type="hidden" name=(name) value=(value);
                }
            }
        }
    }

    /// This page's address with one parameter set to `value` (`None`: removed).
    fn with(&self, name: &str, value: Option<&str>) -> String {
        let mut pairs: Vec<String> = Vec::new();
        for (key, v) in self.fields() {
            let v = if key == name { value } else { v };
            if let Some(v) = v {
                pairs.push(format!("{key}={}", encode(v)));
            }
        }
        if pairs.is_empty() {
            "/licenses".to_owned()
        } else {
            format!("/licenses?{}", pairs.join("&"))
        }
    }

    fn current(&self, name: &str) -> Option<&str> {
        self.fields()
            .into_iter()
            .find_map(|(key, value)| (key == name).then_some(value)?)
    }
}

/// `GET /licenses`.
pub async fn show(State(app): State<Arc<App>>, Query(filters): Query<Filters>) -> Response {
    respond(app, move |app| {
        let body = grid(app, &filters, None)?;
        Ok(super::html(body))
    })
    .await
}

/// What a purchase form did, shown above the grid.
enum Outcome {
    Bought(String),
    Refused(Failure),
}

fn grid(app: &App, filters: &Filters, outcome: Option<&Outcome>) -> Result<Markup, Failure> {
    let filter = filters.filter()?;
    let days = filters.days()?;
    let engine = &app.engine;
    let listings = engine.list_licenses(&filter)?;
    let companies = engine.companies()?;
    let mode = engine.payment_mode()?;
    let shortfall = engine.shortfall(days)?;
    let body = html! {
        h1 { "Licenses" }
        @match outcome {
            Some(Outcome::Bought(text)) => (notice(text)),
            Some(Outcome::Refused(failure)) => (failure_box(failure)),
            None => {}
        }
        section.filters aria-label="Filters" {
            (choices(filters, "company", "Company",
                &std::iter::once(("all", "All".to_owned()))
                    .chain(companies.iter().map(|c| (c.as_str(), c.clone())))
                    .collect::<Vec<_>>()))
            (choices(filters, "kind", "Commercial/Trial",
                &[("all", "All".to_owned()), ("commercial", "Commercial".to_owned()), ("trial", "Trial".to_owned())]))
            (choices(filters, "validity", "All/Valid/Expired",
                &[("all", "All".to_owned()), ("valid", "Valid".to_owned()), ("expired", "Expired".to_owned())]))
            (choices(filters, "use", "All/Used/Unused",
                &[("all", "All".to_owned()), ("used", "Used".to_owned()), ("unused", "Unused".to_owned())]))
            p.hint #use-note { "Used/Unused applies to commercial licenses only: with Used or Unused, trial licenses are left out." }
            (choices(filters, "auto_renew", "All/Auto-Renew Only",
                &[("all", "All".to_owned()), ("only", "Auto-Renew Only".to_owned())]))
            form.search method="get" action="/licenses" role="search" {
                (filters.hidden_fields("q"))
                label for="q" { "Search" }
                input #q type="search" name="q" value=[given(&filters.q)] placeholder="id, type, company or instance";
                button type="submit" { "Search" }
            }
        }
        @if let Some(mode) = mode {
            p #payment-mode { "Payment mode: " (capital(mode.as_str())) " (fixed by the first purchase)" }
        }
        section.grid aria-label="Licenses by type" {
            @for listing in &listings { (type_section(listing)) }
        }
        (buy_form(app, mode))
        (shortfall_section(filters, &shortfall))
    };
    Ok(layout(Some(Section::Licenses), "Licenses", body))
}

/// One filter: a labelled row of links, the current choice marked.
fn choices(filters: &Filters, name: &str, label: &str, options: &[(&str, String)]) -> Markup {
    let current = filters.current(name).unwrap_or("all");
    html! {
        nav.filter aria-label=(label) data-filter=(name) {
            span.filter-label { (label) ": " }
            @for (value, text) in options {
                @let href = filters.with(name, (*value != "all").then_some(*value));
                @if *value == current {
                    a.chip.on href=(href) aria-current="true" { (text) }
                } @else {
                    a.chip href=(href) { (text) }
                }
            }
        }
    }
}

/// A license type: its counts, and its licenses (expandable when there are several); or the
/// seed's message for a type never purchased.
fn type_section(listing: &TypeListing) -> Markup {
    let title = type_label(listing.license_type);
    let kind = listing.license_type.as_str();
    html! {
        section.type data-type=(kind) aria-label=(format!("{title} licenses")) {
            @if let Some(message) = &listing.message {
                h2 { (title) }
                p.not-purchased { (message) }
            } @else if listing.licenses.is_empty() {
                h2 { (title) }
                p.none { "No " (kind) " licenses match these filters." }
            } @else if listing.count > 1 {
                details {
                    summary { h2 { (title) } " " span.counts { (counts(listing)) } }
                    (license_table(&listing.licenses))
                }
            } @else {
                h2 { (title) " " span.counts { (counts(listing)) } }
                (license_table(&listing.licenses))
            }
        }
    }
}

fn counts(listing: &TypeListing) -> String {
    let s = if listing.count == 1 { "" } else { "s" };
    format!("{} license{s}, {} used", listing.count, listing.used)
}

fn license_table(licenses: &[PoolLicense]) -> Markup {
    html! {
        div.table-wrap {
            table.licenses {
                (head_row(&["ID", "Kind", "Company", "Expires", "Auto-renew", "Assigned to", "Add-ons"]))
                tbody {
                    @for l in licenses {
                        tr data-license=(l.id) {
                            td { (l.id) }
                            td { (capital(l.kind.as_str())) }
                            td { (l.company.as_deref().unwrap_or("—")) }
                            td { (l.expires_at.map_or_else(|| "Never".to_owned(), iso_date)) @if !l.valid { " (expired)" } }
                            td { @if l.auto_renew { "Yes" } @else { "No" } }
                            td { (l.assigned_to.as_deref().unwrap_or("—")) }
                            td {
                                @let services = add_ons(l.premium_support, l.onboarding);
                                @if services.is_empty() { "—" } @else { (services.join(", ")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn buy_form(app: &App, mode: Option<PaymentMode>) -> Markup {
    html! {
        section.buy aria-labelledby="buy-title" {
            h2 #buy-title { "Buy New Licenses" }
            form method="post" action="/licenses/buy" {
                (csrf_field(&app.csrf))
                p {
                    label for="buy-type" { "License type" }
                    select #buy-type name="type" {
                        @for t in LicenseType::ALL { option value=(t.as_str()) { (type_label(t)) } }
                    }
                }
                p {
                    label for="buy-quantity" { "Quantity" }
                    input #buy-quantity type="number" name="quantity" min="1" max=(MAX_QUANTITY) value="1" required;
                }
                p {
                    label for="buy-company" { "Company (empty: the global pool)" }
                    input #buy-company type="text" name="company";
                }
                p {
                    label for="buy-expires" { "Term ends, YYYY-MM-DD (empty: never)" }
                    input #buy-expires type="text" name="expires" placeholder="YYYY-MM-DD" pattern="[0-9]{4}-[0-9]{2}-[0-9]{2}" inputmode="numeric";
                }
                fieldset {
                    legend { "Options" }
                    label { input type="checkbox" name="trial" value="on"; " Trial licenses" }
                    label { input type="checkbox" name="auto_renew" value="on"; " Auto-renew" }
                    label { input #buy-premium type="checkbox" name="premium_support" value="on"; " Premium Support" }
                    label { input #buy-onboarding type="checkbox" name="onboarding" value="on"; " Onboarding" }
                }
                fieldset #payment {
                    legend { "Payment mode" }
                    @for m in [PaymentMode::Monthly, PaymentMode::Annual] {
                        @let fixed_other = mode.is_some_and(|fixed| fixed != m);
                        label {
                            input type="radio" name="mode" value=(m.as_str()) id=(format!("mode-{}", m.as_str()))
                                checked[mode == Some(m) || (mode.is_none() && m == PaymentMode::Monthly)]
                                disabled[fixed_other];
                            " " (capital(m.as_str()))
                        }
                    }
                    p.hint {
                        @match mode {
                            Some(m) => { "The payment mode is fixed by the first purchase: " (capital(m.as_str())) "." }
                            None => "You can choose the payment mode at the first purchase only.",
                        }
                    }
                }
                p { button.primary #buy type="submit" { "Buy" } }
            }
        }
    }
}

fn shortfall_section(filters: &Filters, shortfall: &Shortfall) -> Markup {
    html! {
        section.shortfall aria-labelledby="shortfall-title" {
            h2 #shortfall-title { "How many to buy" }
            form method="get" action="/licenses" {
                (filters.hidden_fields("days"))
                label for="days" { "Horizon (days)" }
                input #days type="number" name="days" min="0" value=(shortfall.days);
                button type="submit" { "Show" }
            }
            @if shortfall.needs.is_empty() {
                p #shortfall-none { "Every instance is licensed for the next " (shortfall.days) " days: nothing to buy." }
            } @else {
                div.table-wrap {
                    table #shortfall {
                        (head_row(&["Type", "Needed", "Covered", "To buy"]))
                        tbody {
                            @for t in &shortfall.types {
                                tr data-type=(t.license_type.as_str()) {
                                    td { (type_label(t.license_type)) } td { (t.needed) } td { (t.covered) } td.to-buy { (t.to_buy) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The purchase form.
#[derive(Debug, Deserialize)]
pub struct BuyForm {
    /// server, desktop or workstation.
    #[serde(rename = "type")]
    license_type: Option<String>,
    /// How many.
    quantity: Option<String>,
    /// monthly or annual.
    mode: Option<String>,
    /// The company pool, or empty for the global pool.
    company: Option<String>,
    /// `YYYY-MM-DD`, or empty for never.
    expires: Option<String>,
    /// Trial licenses instead of commercial ones (a check box: present when ticked).
    trial: Option<String>,
    /// The licenses renew automatically (a check box).
    auto_renew: Option<String>,
    /// The Premium Support add-on (a check box).
    premium_support: Option<String>,
    /// The Onboarding add-on (a check box).
    onboarding: Option<String>,
}

impl BuyForm {
    fn purchase(&self) -> Result<Purchase, Failure> {
        let license_type = given(&self.license_type).unwrap_or_default();
        let license_type = LicenseType::parse(license_type)
            .ok_or_else(|| invalid("type", license_type, "server, desktop or workstation"))?;
        let quantity = given(&self.quantity).unwrap_or_default();
        let quantity = quantity
            .parse()
            .map_err(|_| invalid("quantity", quantity, "a whole number"))?;
        let mode = given(&self.mode).unwrap_or_default();
        let mode =
            PaymentMode::parse(mode).ok_or_else(|| invalid("mode", mode, "monthly or annual"))?;
        let expires_at = match given(&self.expires) {
            None => None,
            Some(text) => Some(
                Date::parse(text, format_description!("[year]-[month]-[day]"))
                    .map_err(|_| invalid("expires", text, "a date like 2027-12-31"))?
                    .midnight()
                    .assume_utc(),
            ),
        };
        Ok(Purchase {
            kind: if self.trial.is_some() {
                PoolKind::Trial
            } else {
                PoolKind::Commercial
            },
            company: given(&self.company).map(str::to_owned),
            expires_at,
            auto_renew: self.auto_renew.is_some(),
            premium_support: self.premium_support.is_some(),
            onboarding: self.onboarding.is_some(),
            ..Purchase::new(license_type, quantity, mode)
        })
    }
}

/// `POST /licenses/buy`: `tollgate pool buy`; a payment mode other than the first purchase's
/// is refused with the engine's error.
pub async fn buy(State(app): State<Arc<App>>, Form(form): Form<BuyForm>) -> Response {
    respond(app, move |app| {
        let purchased = form
            .purchase()
            .and_then(|purchase| Ok((app.engine.buy_licenses(&purchase)?, purchase)));
        let (status, outcome) = match purchased {
            Ok((ids, purchase)) => (StatusCode::OK, Outcome::Bought(bought(&ids, &purchase))),
            Err(failure) => (
                super::failure_page(&failure).status(),
                Outcome::Refused(failure),
            ),
        };
        let page = grid(app, &Filters::default(), Some(&outcome))?;
        Ok((status, page).into_response())
    })
    .await
}
