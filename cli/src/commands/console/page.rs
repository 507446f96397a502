//! What every page shares: the layout and navigation, usage bars, dates, masked codes, and
//! the boxes that tell what a form did or why the engine refused it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use tollgate_core::LicenseClass;

use crate::failure::Failure;
use crate::render::{percent, used_of};

/// The pages of the navigation bar, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/` and `/projects/…`.
    Projects,
    /// `/licenses`.
    Licenses,
    /// `/instances`.
    Instances,
    /// `/activation`.
    Activation,
    /// `/events`.
    Events,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Projects, "/", "Projects"),
    (Section::Licenses, "/licenses", "Licenses"),
    (Section::Instances, "/instances", "Instances"),
    (Section::Activation, "/activation", "Activation task"),
    (Section::Events, "/events", "Events"),
];

/// A whole page: head, navigation, and `body` as its main content.
pub fn layout(section: Option<Section>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tollgate console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Tollgate" }
                    nav aria-label="Console" {
                        ul {
                            @for (s, href, label) in SECTIONS {
                                li {
                                    @if Some(s) == section {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The hidden field that carries the CSRF token in every form.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A table's head: one column header per name.
pub fn head_row(names: &[&str]) -> Markup {
    html! {
        thead { tr { @for name in names { th scope="col" { (name) } } } }
    }
}

/// A usage bar with its figures, `250.00 MB of 1.00 GB (25 %)`, named by key for live updates.
pub fn usage_bar(key: &str, class: LicenseClass, used: u64, limit: u64) -> Markup {
    html! {
        div.usage {
            div.bar role="progressbar" data-key=(key) aria-label=(format!("Usage of key {key}"))
                aria-valuemin="0" aria-valuemax="100" aria-valuenow=(percent(used, limit)) {
                div.fill style=(format!("width: {:.1}%", fill_percent(used, limit))) {}
            }
            span.bar-text { (usage_text(class, used, limit)) }
        }
    }
}

/// The figures beside a bar.
pub fn usage_text(class: LicenseClass, used: u64, limit: u64) -> String {
    format!(
        "{} ({} %)",
        used_of(class, used, limit),
        percent(used, limit)
    )
}

/// How much of a bar is filled, 0 to 100 with a fraction.
pub fn fill_percent(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        return 0.0;
    }
    (used.min(limit) as f64) * 100.0 / (limit as f64)
}

/// A date in ISO form, `2027-01-01` (UTC).
pub fn iso_date(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// An instant in ISO form, `2027-01-01 12:00:00 UTC`.
pub fn iso_instant(at: OffsetDateTime) -> String {
    crate::render::timestamp(at)
}

/// An activation code as the console shows it: all but the last 4 characters masked.
pub fn mask_code(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    // A code of 4 characters or fewer is masked whole: its last 4 would be all of it.
    let hidden = if chars.len() > 4 {
        chars.len() - 4
    } else {
        chars.len()
    };
    let mut masked = "•".repeat(hidden.max(4));
    masked.extend(&chars[hidden..]);
    masked
}

/// What a form did.
pub fn notice(text: &str) -> Markup {
    html! { div.notice role="status" { (text) } }
}

/// Why the engine (or the console) refused a form: the rule code, the message, the rule.
pub fn refusal(code: &str, message: &str, rule: Option<&str>) -> Markup {
    html! {
        div.refusal role="alert" {
            p { strong.code { (code) } " " span.message { (message) } }
            @if let Some(rule) = rule { p.rule { "Rule: " (rule) } }
        }
    }
}

/// A failure's code, message and rule, as [`refusal`] shows them.
pub fn failure_parts(failure: &Failure) -> (&'static str, String, Option<&'static str>) {
    match failure {
        Failure::Refused {
            code,
            message,
            rule,
        }
        | Failure::NotCovered {
            code,
            message,
            rule,
        } => (code, message.clone(), *rule),
        Failure::Usage { message } | Failure::Shown { message } => {
            ("INVALID_ARGUMENT", message.clone(), None)
        }
        Failure::Output(e) => ("IO", e.to_string(), None),
    }
}

/// A refusal box for a failure.
pub fn failure_box(failure: &Failure) -> Markup {
    let (code, message, rule) = failure_parts(failure);
    refusal(code, &message, rule)
}

/// A page that only says why the request failed.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    rule: Option<&str>,
) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (title) }
        (refusal(code, message, rule))
        p { a href="/" { "Back to the projects" } }
    };
    (status, layout(None, title, body)).into_response()
}

/// An invalid form or query value, named.
pub fn invalid(field: &str, value: &str, expected: &str) -> Failure {
    Failure::refused(
        "INVALID_ARGUMENT",
        format!("{field} \"{value}\" is not {expected}"),
        None,
    )
}

/// `text` with its first letter in upper case: `annual` → `Annual`.
pub fn capital(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A form field that is present and not blank.
pub fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_show_only_their_last_four_characters() {
        assert_eq!(mask_code("ACT-2027-XYZW-1234"), "••••••••••••••1234");
        assert_eq!(mask_code("AB"), "••••");
        assert!(!mask_code("SECRET-9876").contains("SECRET"));
    }
}
