//! `/instances`: every instance with its OS, company and license, and the forms that assign a
//! pool license to one or give it back, as `tollgate instance assign|unassign` do (rules R23–R25 in
//! docs/rules.md).

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use tollgate_core::{Instance, LicenseType};

use super::page::{csrf_field, failure_box, given, head_row, invalid, layout, notice, Section};
use super::{respond, App};
use crate::failure::Failure;
use crate::render::{os_label, type_label};

/// `GET /instances`.
pub async fn show(State(app): State<Arc<App>>) -> Response {
    respond(app, |app| Ok(super::html(page(app, None)?))).await
}

fn page(app: &App, outcome: Option<Result<String, &Failure>>) -> Result<Markup, Failure> {
    let instances = app.engine.instances()?;
    let body = html! {
        h1 { "Instances" }
        @match &outcome {
            Some(Ok(text)) => (notice(text)),
            Some(Err(failure)) => (failure_box(failure)),
            None => {}
        }
        @if instances.is_empty() {
            p { "No instances yet: add one with " code { "tollgate instance add NAME --os …" } "." }
        } @else {
            div.table-wrap {
                table #instances {
                    (head_row(&["Instance", "OS", "Company", "License", "Action"]))
                    tbody {
                        @for (i, instance) in instances.iter().enumerate() { (row(app, i, instance)) }
                    }
                }
            }
        }
    };
    Ok(layout(Some(Section::Instances), "Instances", body))
}

fn row(app: &App, i: usize, instance: &Instance) -> Markup {
    html! {
        tr data-instance=(instance.name) {
            td { (instance.name) }
            td { (os_label(instance.os)) }
            td { (instance.company.as_deref().unwrap_or("—")) }
            td.license { (instance.license.as_deref().unwrap_or("—")) }
            td {
                @if instance.license.is_some() {
                    form.inline method="post" action="/instances/unassign" {
                        (csrf_field(&app.csrf))
                        input type="hidden" name="name" value=(instance.name);
                        button type="submit" aria-label=(format!("Unassign the license of {}", instance.name)) { "Unassign" }
                    }
                } @else {
                    form.inline method="post" action="/instances/assign" {
                        (csrf_field(&app.csrf))
                        input type="hidden" name="name" value=(instance.name);
                        label.visually-hidden for=(format!("type-{i}")) { "License type for " (instance.name) }
                        select id=(format!("type-{i}")) name="type" {
                            option value="" { "Any type that fits" }
                            @for t in LicenseType::ALL {
                                @if t.fits(instance.os) { option value=(t.as_str()) { (type_label(t)) } }
                            }
                        }
                        " "
                        button type="submit" aria-label=(format!("Assign a license to {}", instance.name)) { "Assign" }
                    }
                }
            }
        }
    }
}

/// An assign or unassign form.
#[derive(Debug, Deserialize)]
pub struct InstanceForm {
    /// The instance.
    name: String,
    /// Only this license type (assign); empty for any that fits.
    #[serde(rename = "type")]
    license_type: Option<String>,
}

/// `POST /instances/assign`.
pub async fn assign(State(app): State<Arc<App>>, Form(form): Form<InstanceForm>) -> Response {
    respond(app, move |app| {
        let done = (|| {
            let license_type = match given(&form.license_type) {
                None => None,
                Some(t) => Some(
                    LicenseType::parse(t)
                        .ok_or_else(|| invalid("type", t, "server, desktop or workstation"))?,
                ),
            };
            let assignment = app.engine.assign(&form.name, license_type)?;
            let mut text = format!(
                "Assigned {} license {} to instance \"{}\".",
                assignment.license_type.as_str(),
                assignment.license,
                form.name
            );
            if let Some(old) = &assignment.replaced_expired {
                text.push_str(&format!(
                    " Its expired license {old} went back to its pool."
                ));
            }
            Ok(text)
        })();
        answer(app, done)
    })
    .await
}

/// `POST /instances/unassign`.
pub async fn unassign(State(app): State<Arc<App>>, Form(form): Form<InstanceForm>) -> Response {
    respond(app, move |app| {
        let done = app
            .engine
            .unassign(&form.name)
            .map(|license| {
                format!(
                    "License {license} went back to its pool; instance \"{}\" is no longer licensed.",
                    form.name
                )
            })
            .map_err(Failure::from);
        answer(app, done)
    })
    .await
}

fn answer(app: &App, done: Result<String, Failure>) -> Result<Response, Failure> {
    Ok(match done {
        Ok(text) => super::html(page(app, Some(Ok(text)))?),
        Err(failure) => {
            let status = super::failure_page(&failure).status();
            (status, page(app, Some(Err(&failure)))?).into_response()
        }
    })
}
