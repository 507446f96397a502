//! `/events`: the audit log, newest first, optionally of one project (`?project=NAME`), as
//! `tollgate events` reads it.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::page::{given, head_row, iso_instant, layout, Section};
use super::{respond, App};
use crate::render::event_text;

/// Events read from the log per query.
const PAGE: usize = 1_000;

/// The most events the page shows.
const SHOWN: usize = 500;

/// The query.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Only this project's events.
    project: Option<String>,
}

/// `GET /events`.
pub async fn show(State(app): State<Arc<App>>, Query(query): Query<EventsQuery>) -> Response {
    respond(app, move |app| {
        let project = given(&query.project).map(str::to_owned);
        if let Some(name) = &project {
            app.engine.project(name)?;
        }
        let mut latest = VecDeque::with_capacity(SHOWN);
        let mut after = 0;
        loop {
            let page = app.engine.events_after(after, PAGE)?;
            let full = page.len() == PAGE;
            for event in page {
                after = event.seq;
                if project.as_ref().is_none_or(|p| *p == event.project) {
                    if latest.len() == SHOWN {
                        latest.pop_front();
                    }
                    latest.push_back(event);
                }
            }
            if !full {
                break;
            }
        }
        let body = html! {
            h1 { "Events" @if let Some(p) = &project { " of project " (p) } }
            p { "The audit log, newest first (the latest " (SHOWN) " at most). Filter by project with " code { "?project=NAME" } "." }
            @if latest.is_empty() {
                p { "No events." }
            } @else {
                div.table-wrap {
                    table #events {
                        (head_row(&["#", "Time", "Project", "What happened"]))
                        tbody {
                            @for event in latest.iter().rev() {
                                tr {
                                    td { (event.seq) }
                                    td { (iso_instant(event.at)) }
                                    td { (if event.project.is_empty() { "—" } else { &event.project }) }
                                    td { (event_text(&event.kind)) }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(super::html(layout(Some(Section::Events), "Events", body)))
    })
    .await
}
