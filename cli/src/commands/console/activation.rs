//! Rule R8 (docs/rules.md) on `/activation`: the application activation task. Step 1 the target
//! (all SVMs, the SVMs of one group, or one SVM), step 2 the key (a license file, or an activation
//! code) and "Use the license key as a reserve key", step 3 start; then one result row per SVM with
//! the exact error where the key was not added. The same engine calls as `tollgate key
//! add-reserve` and `tollgate key activate`.

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use tollgate_core::{ActivationSlot, BulkOutcome, BulkTarget, KeyOrLicense};

use super::page::{csrf_field, failure_box, given, head_row, layout, Section};
use super::projects::hide_code;
use super::{respond, App};
use crate::failure::{describe, Failure};

/// The task's form; also what the page shows again after a run.
#[derive(Debug, Default, Deserialize)]
pub struct TaskForm {
    /// `all`, `group` or `project`.
    target: Option<String>,
    /// The group, when the target is a group.
    group: Option<String>,
    /// The project, when the target is one SVM.
    project: Option<String>,
    /// `offline` (a license file) or `online` (an activation code).
    mode: Option<String>,
    /// The license file or key JSON.
    license: Option<String>,
    /// The activation code.
    code: Option<String>,
    /// "Use the license key as a reserve key": present when ticked.
    reserve: Option<String>,
}

/// What a run did: the key, and one outcome per project.
struct Run {
    key: String,
    outcomes: Vec<BulkOutcome>,
}

/// `GET /activation`.
pub async fn show(State(app): State<Arc<App>>) -> Response {
    respond(app, |app| {
        let page = wizard(app, &TaskForm::default(), None)?;
        Ok(super::html(page))
    })
    .await
}

/// `POST /activation`: runs the task.
pub async fn start(State(app): State<Arc<App>>, Form(form): Form<TaskForm>) -> Response {
    respond(app, move |app| {
        let ran = run(app, &form);
        let status = match &ran {
            Ok(_) => axum::http::StatusCode::OK,
            Err(failure) => super::failure_page(failure).status(),
        };
        Ok((status, wizard(app, &form, Some(&ran))?).into_response())
    })
    .await
}

fn run(app: &App, form: &TaskForm) -> Result<Run, Failure> {
    let target = match given(&form.target) {
        Some("group") => BulkTarget::Group(required(&form.group, "choose the group")?),
        Some("project") => {
            BulkTarget::Project(required(&form.project, "choose the SVM (project)")?)
        }
        _ => BulkTarget::All,
    };
    let reserve = form.reserve.is_some();
    let online = form.mode.as_deref() == Some("online");
    if !reserve {
        // Without the check box the key may become an Active key, which is done one SVM at a
        // time (`tollgate key activate PROJECT`, `tollgate key add PROJECT`).
        let BulkTarget::Project(project) = &target else {
            return Err(Failure::refused(
                "INVALID_ARGUMENT",
                "without \"Use the license key as a reserve key\" the task adds the key to one SVM only: choose one SVM, or tick the check box",
                None,
            ));
        };
        let (key, result) = if online {
            let code = required(&form.code, "enter the activation code")?;
            let client = activation_client(app)?;
            match app
                .engine
                .activate_with(project, &code, ActivationSlot::Any, client)
            {
                Ok(activated) => (activated.key, Ok(activated.added)),
                Err(e) => return Err(hide_code(e.into(), &code)),
            }
        } else {
            let key = license(form)?;
            let id = key.id().to_owned();
            (id, app.engine.add_key(project, key))
        };
        return Ok(Run {
            key,
            outcomes: vec![BulkOutcome {
                project: project.clone(),
                result,
            }],
        });
    }
    if online {
        let code = required(&form.code, "enter the activation code")?;
        let client = activation_client(app)?;
        let activated = app
            .engine
            .activate_bulk_with(&target, &code, client)
            .map_err(|e| hide_code(e.into(), &code))?;
        return Ok(Run {
            key: activated.key,
            outcomes: activated.outcomes,
        });
    }
    let key = license(form)?;
    let id = key.id().to_owned();
    Ok(Run {
        key: id,
        outcomes: app.engine.add_reserve_bulk(&target, key)?,
    })
}

fn required(value: &Option<String>, what: &str) -> Result<String, Failure> {
    given(value)
        .map(str::to_owned)
        .ok_or_else(|| Failure::refused("INVALID_ARGUMENT", what, None))
}

fn license(form: &TaskForm) -> Result<KeyOrLicense, Failure> {
    let text = required(&form.license, "paste or upload the license file")?;
    Ok(KeyOrLicense::parse(&text)?)
}

fn activation_client(app: &App) -> Result<&tollgate_activation::ActivationClient, Failure> {
    app.activation.as_ref().ok_or_else(|| {
        Failure::refused(
            "NO_ACTIVATION_SERVICE",
            "this console was started without --activation-url: activation codes cannot be activated here",
            Some("start the console with --activation-url URL, or use a license file"),
        )
    })
}

fn wizard(
    app: &App,
    form: &TaskForm,
    ran: Option<&Result<Run, Failure>>,
) -> Result<Markup, Failure> {
    let groups = app.engine.groups()?;
    let projects = app.engine.projects()?;
    let target = given(&form.target).unwrap_or("all");
    let online = form.mode.as_deref() == Some("online");
    // A fresh page ticks the check box; a run shows it as it was sent.
    let reserve = ran.is_none() || form.reserve.is_some();
    let body = html! {
        h1 { "Application activation task" }
        p { "Adds a license key to the SVMs (projects) you choose. With " em { "Use the license key as a reserve key" } " the key is added as the Reserved key on every SVM that already has an Active key of its class; where it cannot be, the row says why." }
        @match ran {
            Some(Ok(run)) => (results(run)),
            Some(Err(failure)) => (failure_box(failure)),
            None => {}
        }
        form.wizard method="post" action="/activation" {
            (csrf_field(&app.csrf))
            fieldset #step-1 {
                legend { "Step 1 of 3: Where" }
                p { label { input type="radio" name="target" value="all" checked[target == "all"]; " All SVMs (every project)" } }
                p {
                    label { input #target-group type="radio" name="target" value="group" checked[target == "group"] disabled[groups.is_empty()]; " The SVMs of one group (cluster)" }
                    " "
                    label.visually-hidden for="group" { "Group" }
                    select #group name="group" disabled[groups.is_empty()] {
                        @for g in &groups {
                            option value=(g.name) selected[given(&form.group) == Some(g.name.as_str())] { (g.name) " (" (g.projects.len()) " SVMs)" }
                        }
                    }
                }
                p {
                    label { input #target-project type="radio" name="target" value="project" checked[target == "project"] disabled[projects.is_empty()]; " One SVM" }
                    " "
                    label.visually-hidden for="project" { "SVM" }
                    select #project name="project" disabled[projects.is_empty()] {
                        @for p in &projects {
                            option value=(p) selected[given(&form.project) == Some(p.as_str())] { (p) }
                        }
                    }
                }
            }
            fieldset #step-2 {
                legend { "Step 2 of 3: License key" }
                p {
                    label { input type="radio" name="mode" value="offline" checked[!online]; " License file" }
                    " "
                    label { input #mode-online type="radio" name="mode" value="online" checked[online] disabled[app.activation.is_none()]; " Activation code" }
                }
                p {
                    label for="license" { "License file (paste its text)" }
                    textarea #license name="license" rows="6" {}
                }
                p {
                    label for="license-file" { "Or upload a license file" }
                    input #license-file type="file" accept=".lic,.json,application/json,text/plain" data-into="license";
                }
                @if app.activation.is_some() {
                    p {
                        label for="code" { "Activation code" }
                        input #code type="text" name="code" autocomplete="off" spellcheck="false";
                    }
                }
                p { label { input #reserve type="checkbox" name="reserve" value="on" checked[reserve]; " Use the license key as a reserve key" } }
            }
            fieldset #step-3 {
                legend { "Step 3 of 3: Start" }
                button.primary #start type="submit" { "Start" }
            }
        }
    };
    Ok(layout(Some(Section::Activation), "Activation task", body))
}

fn results(run: &Run) -> Markup {
    let refused = run.outcomes.iter().filter(|o| o.result.is_err()).count();
    html! {
        section.results aria-labelledby="results-title" {
            h2 #results-title { "Results for key " (run.key) }
            p #summary {
                @if run.outcomes.is_empty() { "No projects yet: the key was added nowhere." }
                @else { (run.outcomes.len() - refused) " of " (run.outcomes.len()) " SVMs took the key." }
            }
            div.table-wrap {
                table #results {
                    (head_row(&["SVM", "Result", "Code", "Message"]))
                    tbody {
                        @for outcome in &run.outcomes {
                            @match &outcome.result {
                                Ok(added) => {
                                    tr.added data-project=(outcome.project) {
                                        td { (outcome.project) }
                                        td.result { "Added as the " @if added.role == tollgate_core::Role::Active { "Active" } @else { "Reserved" } " key" }
                                        td.code { "—" }
                                        td.message { (added.message.as_deref().unwrap_or("")) }
                                    }
                                }
                                Err(error) => {
                                    tr.refused data-project=(outcome.project) {
                                        td { (outcome.project) }
                                        td.result { "Not added" }
                                        td.code { (describe(error).0) }
                                        td.message { (error) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
