//! Rule R27 (docs/rules.md): `/`, the "Select a Project to Start" list; `/projects/{name}`, the
//! License Information tab with one card per key, live over server-sent events; and the Additional
//! License Registration screen behind "Add License".

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use tollgate_core::{
    reserve_added_message, ActivationSlot, KeyOrLicense, LicenseCard, PairView, ProjectView, Role,
};

use super::page::{
    capital, csrf_field, failure_box, fill_percent, given, iso_date, layout, mask_code, usage_bar,
    usage_text, Section,
};
use super::{html as page_response, respond, App};
use crate::failure::Failure;
use crate::render::{class_title, edition_label, kind_label, pair_class, percent, scheme_label};

/// How often the live page's server side looks at the engine.
const POLL: Duration = Duration::from_millis(250);

/// `GET /`: one card per project with the usage of its Active keys.
pub async fn list(State(app): State<Arc<App>>) -> Response {
    respond(app, |app| {
        let mut views = Vec::new();
        for name in app.engine.projects()? {
            views.push(app.engine.view(&name)?);
        }
        let body = html! {
            h1 { "Select a Project to Start" }
            @if views.is_empty() {
                p { "No projects yet: create one with " code { "tollgate project create NAME" } "." }
            }
            ul.projects {
                @for view in &views { li { (project_card(view)) } }
            }
        };
        Ok(page_response(layout(Some(Section::Projects), "Projects", body)))
    })
    .await
}

fn project_card(view: &ProjectView) -> Markup {
    let name = &view.project;
    html! {
        article.project-card {
            h2 { a href=(project_url(name)) { (name) } }
            @for pair in &view.pairs {
                @let class = pair_class(pair);
                @match pair.cards.first() {
                    Some(active) => {
                        p.pair-line {
                            span.class { (capital(class_title(class))) ": " }
                            "Active key " span.key { (active.key.id) }
                            @if let Some(reserve) = pair.cards.get(1) {
                                ", Reserved key " span.key { (reserve.key.id) }
                            }
                        }
                        (usage_bar(&active.key.id, class, active.used, active.limit))
                    }
                    None => p.pair-line { "No license key yet." }
                }
            }
        }
    }
}

/// `GET /projects/{name}`: the License Information tab.
pub async fn show(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    respond(app, move |app| {
        let view = app.engine.view(&name)?;
        let body = html! {
            p.crumbs { a href="/" { "Projects" } " / " (name) }
            h1 { "Project " (name) }
            div.tabs role="tablist" aria-label="Project" {
                span.tab role="tab" aria-selected="true" id="tab-license" { "License Information" }
            }
            div #live-notice role="status" aria-live="polite" hidden {}
            div #license-info role="tabpanel" aria-labelledby="tab-license"
                data-stream=(format!("{}/stream", project_url(&name))) {
                (license_block(&view))
            }
        };
        Ok(page_response(layout(Some(Section::Projects), &name, body)))
    })
    .await
}

/// The License Information block: per license class, one card per key with a slider between
/// two, and "Add License" exactly when the pair holds one key.
fn license_block(view: &ProjectView) -> Markup {
    let name = &view.project;
    html! {
        @for (p, pair) in view.pairs.iter().enumerate() {
            @let class = pair_class(pair);
            @let count = pair.cards.len();
            section.pair data-class=(pair.class) aria-label=(format!("License Information: {}", class_title(class))) {
                h2 { "License Information" @if view.pairs.len() > 1 { " — " (class_title(class)) } }
                @if count == 0 {
                    p { "No license key yet: add the first with " code { "tollgate key add " (name) " …" } "." }
                }
                div.slider data-count=(count) {
                    @if count > 1 {
                        div.slider-controls {
                            button.prev type="button" aria-label="Previous card" { "‹" }
                            span.slider-pos aria-live="polite" { "Card 1 of " (count) }
                            button.next type="button" aria-label="Next card" { "›" }
                        }
                    }
                    @for (i, card) in pair.cards.iter().enumerate() {
                        (license_card(card, pair, i + 1, count, &format!("tip-{p}-{i}")))
                    }
                }
                @if pair.add_license_available {
                    p { a.button.add-license href=(format!("{}/add-license", project_url(name))) { "Add License" } }
                }
            }
        }
    }
}

fn license_card(card: &LicenseCard, pair: &PairView, n: usize, of: usize, tip: &str) -> Markup {
    let key = &card.key;
    let status = match card.status {
        Role::Active => "Active",
        Role::Reserved => "Reserved",
    };
    let expiration = match (card.status, key.expires_at) {
        (Role::Reserved, _) => "Reserved".to_owned(),
        (Role::Active, Some(at)) => iso_date(at),
        (Role::Active, None) => "Never".to_owned(),
    };
    html! {
        article.card data-key=(key.id) data-status=(status.to_lowercase()) {
            h3.card-title { "Card " (n) " of " (of) }
            dl {
                dt { "Key" } dd.key { (key.id) }
                dt { "Status" }
                dd {
                    span.status { (status) }
                    " "
                    span.tip {
                        button.info type="button" aria-label=(format!("About the {status} status"))
                            aria-describedby=(tip) { "i" }
                        span.tip-text role="tooltip" id=(tip) { (card.tooltip) }
                    }
                }
                dt { "Type" } dd.type { (card.type_label) }
                dt { "License" }
                dd { (kind_label(key.kind)) " " (edition_label(key.edition)) ", " (scheme_label(&key.scheme)) }
                dt { "Company" } dd { (key.company.as_deref().unwrap_or("—")) }
                dt { "Expiration date" } dd.expiration { (expiration) @if card.expired { " (expired)" } }
                @if let Some(until) = &card.grace_until {
                    dt { "Grace" } dd.grace { "In grace until " (until) }
                }
                @if let Some(overage) = card.overage {
                    dt { "Overage" } dd.overage { "Overage " (crate::render::used_of(tollgate_core::LicenseClass::DataVolume, overage.used, overage.allowed)) " allowed" }
                }
                @if let (Some(reset), Some(at)) = (key.reset, &card.resets_at) {
                    dt { "Reset" } dd.reset { "Resets " (reset) ", next on " (at) }
                }
                dt { "Auto-renew" } dd { @if key.auto_renew { "Yes" } @else { "No" } }
                @if let Some(code) = &key.activation_code {
                    dt { "Activation code" } dd.code { (mask_code(code)) }
                }
                dt { "Usage" } dd { (usage_bar(&key.id, pair_class(pair), card.used, card.limit)) }
            }
        }
    }
}

/// One push of the live page.
#[derive(Serialize)]
struct Update {
    /// Every key's bar.
    bars: Vec<Bar>,
    /// The License Information block anew, when its cards changed (a switch, a key added).
    html: Option<String>,
    /// What switched, in words, when an Active key gave way to its reserve.
    switch: Option<String>,
}

/// A bar's figures, as the page shows them.
#[derive(Serialize, Clone, PartialEq)]
struct Bar {
    key: String,
    fill: f64,
    percent: u64,
    text: String,
}

/// What the live page last showed: which key sits where, and the bars.
#[derive(Default)]
struct Shown {
    cards: Option<Vec<(String, String, Role)>>,
    bars: Vec<Bar>,
}

impl Shown {
    /// The update that brings the page from what it showed to `view`, if anything changed.
    fn update(&mut self, view: &ProjectView) -> Option<Update> {
        let cards: Vec<(String, String, Role)> = view
            .pairs
            .iter()
            .flat_map(|p| {
                p.cards
                    .iter()
                    .map(|c| (p.class.clone(), c.key.id.clone(), c.status))
            })
            .collect();
        let bars: Vec<Bar> = view
            .pairs
            .iter()
            .flat_map(|p| {
                p.cards.iter().map(|c| Bar {
                    key: c.key.id.clone(),
                    fill: fill_percent(c.used, c.limit),
                    percent: percent(c.used, c.limit),
                    text: usage_text(pair_class(p), c.used, c.limit),
                })
            })
            .collect();
        let first = self.cards.is_none();
        let cards_changed = self.cards.as_ref() != Some(&cards);
        if !cards_changed && bars == self.bars {
            return None;
        }
        let switch = match &self.cards {
            Some(before) if cards_changed => switch_text(before, &cards),
            _ => None,
        };
        self.cards = Some(cards);
        self.bars.clone_from(&bars);
        Some(Update {
            bars,
            html: (cards_changed && !first).then(|| license_block(view).into_string()),
            switch,
        })
    }
}

/// "The Active key "A" was used up or expired: "B" is now the Active key." when, in some class,
/// the Active key left and its reserve took its place.
fn switch_text(
    before: &[(String, String, Role)],
    now: &[(String, String, Role)],
) -> Option<String> {
    let active = |cards: &[(String, String, Role)]| -> BTreeMap<String, String> {
        cards
            .iter()
            .filter(|(_, _, role)| *role == Role::Active)
            .map(|(class, key, _)| (class.clone(), key.clone()))
            .collect()
    };
    let (old, new) = (active(before), active(now));
    let texts: Vec<String> = new
        .iter()
        .filter_map(|(class, to)| {
            let from = old.get(class)?;
            let was_reserve = before
                .iter()
                .any(|(c, k, role)| c == class && k == to && *role == Role::Reserved);
            (from != to && was_reserve).then(|| {
                format!("The Active key \"{from}\" was used up or expired: the Reserved key \"{to}\" is now the Active key.")
            })
        })
        .collect();
    (!texts.is_empty()).then(|| texts.join(" "))
}

/// `GET /projects/{name}/stream`: server-sent events, one JSON [`Update`] whenever the bars or
/// the cards change, looked at every 250 ms. The stream ends when the project cannot be read.
pub async fn stream(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let probe = Arc::clone(&app);
    let first = name.clone();
    let exists = tokio::task::spawn_blocking(move || probe.engine.view(&first))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())?;
    if let Err(error) = exists {
        return Err(super::failure_page(&error.into()));
    }
    let live = (app, name, Shown::default(), true);
    let events = futures_util::stream::unfold(live, |(app, name, mut shown, first)| async move {
        let mut stopping = app.stopping.clone();
        // The first push goes out at once; every later look waits a poll interval.
        let mut wait = !first;
        loop {
            if wait {
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    _ = stopping.wait_for(|stop| *stop) => return None,
                }
            }
            wait = true;
            let (reader, project) = (Arc::clone(&app), name.clone());
            let looked = tokio::task::spawn_blocking(move || {
                reader
                    .engine
                    .view(&project)
                    .map(|view| (view, reader.activation_codes()))
            });
            let (view, codes) = match looked.await {
                Ok(Ok(looked)) => looked,
                _ => return None,
            };
            if let Some(update) = shown.update(&view) {
                let data = serde_json::to_string(&update).unwrap_or_default();
                let data = super::security::hide_codes(&data, &codes);
                return Some((Ok(Event::default().data(data)), (app, name, shown, false)));
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The query of the registration screen.
#[derive(Deserialize)]
pub struct RegistrationQuery {
    /// `online` (an activation code, the default) or `offline` (a license file).
    mode: Option<String>,
    /// The key just added, for the "Add Reserve License" step.
    added: Option<String>,
}

/// `GET /projects/{name}/add-license`: the Additional License Registration screen; after a
/// key was added (`?added=KEY`), its Next button is "Add Reserve License", which opens the
/// seed's pop-up.
pub async fn registration(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<RegistrationQuery>,
) -> Response {
    respond(app, move |app| {
        let view = app.engine.view(&name)?;
        let offline = query.mode.as_deref() == Some("offline");
        let added = query.added.as_deref().and_then(|tag| {
            view.pairs.iter().find_map(|p| {
                p.cards
                    .iter()
                    .find(|c| added_tag(&c.key.id) == tag && c.status == Role::Reserved)
                    .map(|c| {
                        (
                            c.key.id.as_str(),
                            reserve_added_message(&name, pair_class(p)),
                        )
                    })
            })
        });
        let body = match added {
            Some((id, message)) => activated(&name, id, &message),
            None => registration_form(app, &name, offline, None),
        };
        Ok(page_response(layout(
            Some(Section::Projects),
            "Additional License Registration",
            body,
        )))
    })
    .await
}

/// What the registration page's `?added=` names the key just added by: a digest of its id, not
/// the id, since an id issued by the activation service carries the activation code, and a URL
/// stays in the browser's history.
fn added_tag(id: &str) -> String {
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() has fixed keys: the same id gives the same tag in every request.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn registration_form(app: &App, name: &str, offline: bool, error: Option<&Failure>) -> Markup {
    let action = format!("{}/add-license", project_url(name));
    html! {
        p.crumbs { a href="/" { "Projects" } " / " a href=(project_url(name)) { (name) } }
        h1 { "Additional License Registration" }
        p { "Add a second license key to project " strong { (name) } ". It becomes the Reserved key and takes over automatically when the Active key runs out. Both keys must be of the same type (both Online or both Offline)." }
        @if let Some(error) = error { (failure_box(error)) }
        nav.modes aria-label="License type" {
            @if offline {
                a href=(action) { "Online" }
                a href=(format!("{action}?mode=offline")) aria-current="true" { "Offline" }
            } @else {
                a href=(action) aria-current="true" { "Online" }
                a href=(format!("{action}?mode=offline")) { "Offline" }
            }
        }
        form.registration method="post" action=(action) {
            (csrf_field(&app.csrf))
            @if offline {
                input type="hidden" name="mode" value="offline";
                p {
                    label for="license" { "License file (paste its text)" }
                    textarea #license name="license" rows="8" required {}
                }
                p {
                    label for="license-file" { "Or upload a license file" }
                    input #license-file type="file" accept=".lic,.json,application/json,text/plain" data-into="license";
                }
            } @else {
                input type="hidden" name="mode" value="online";
                p {
                    label for="code" { "Activation code" }
                    input #code name="code" type="text" autocomplete="off" spellcheck="false" required;
                }
                @if app.activation.is_none() {
                    p.hint { "This console was started without --activation-url, so activation codes cannot be activated here: switch to Offline and use a license file." }
                }
            }
            p.actions {
                button.primary #next type="submit" { "Next" }
                " "
                a href=(project_url(name)) { "Cancel" }
            }
        }
    }
}

fn activated(name: &str, id: &str, message: &str) -> Markup {
    html! {
        p.crumbs { a href="/" { "Projects" } " / " a href=(project_url(name)) { (name) } }
        h1 { "Additional License Registration" }
        (super::page::notice(&format!("Key {id} is activated for project {name}.")))
        p.actions {
            button.primary #add-reserve type="button" data-dialog="popup" { "Add Reserve License" }
        }
        dialog #popup aria-labelledby="popup-title" {
            h2 #popup-title { "Reserved license added" }
            p.popup-text { (message) }
            p { a.button.primary #popup-ok href="/" { "OK" } }
        }
    }
}

/// The registration form.
#[derive(Deserialize)]
pub struct RegistrationForm {
    /// `online` or `offline`.
    mode: Option<String>,
    /// The activation code (online).
    code: Option<String>,
    /// The license file or key JSON (offline).
    license: Option<String>,
}

/// `POST /projects/{name}/add-license`: activates the code, or reads the license file, and
/// adds the key as the Reserved key, as `tollgate key activate NAME --reserve` and `tollgate
/// key add-reserve NAME --file` do; then shows the "Add Reserve License" step.
pub async fn register(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Form(form): Form<RegistrationForm>,
) -> Response {
    respond(app, move |app| {
        let offline = form.mode.as_deref() == Some("offline");
        let added = if offline {
            add_license_file(app, &name, given(&form.license))
        } else {
            activate_code(app, &name, given(&form.code))
        };
        match added {
            Ok(id) => Ok((
                StatusCode::SEE_OTHER,
                [(
                    header::LOCATION,
                    format!(
                        "{}/add-license?added={}",
                        project_url(&name),
                        added_tag(&id)
                    ),
                )],
            )
                .into_response()),
            Err(failure) => {
                let status = super::failure_page(&failure).status();
                let body = registration_form(app, &name, offline, Some(&failure));
                let page = layout(
                    Some(Section::Projects),
                    "Additional License Registration",
                    body,
                );
                Ok((status, page).into_response())
            }
        }
    })
    .await
}

fn add_license_file(app: &App, name: &str, text: Option<&str>) -> Result<String, Failure> {
    let text = text.ok_or_else(|| {
        Failure::refused("INVALID_ARGUMENT", "paste or upload the license file", None)
    })?;
    let key = KeyOrLicense::parse(text)?;
    let id = key.id().to_owned();
    app.engine.add_reserve(name, key)?;
    Ok(id)
}

fn activate_code(app: &App, name: &str, code: Option<&str>) -> Result<String, Failure> {
    let code = code
        .ok_or_else(|| Failure::refused("INVALID_ARGUMENT", "enter the activation code", None))?;
    let client = app.activation.as_ref().ok_or_else(|| {
        Failure::refused(
            "NO_ACTIVATION_SERVICE",
            "this console was started without --activation-url: activation codes cannot be activated here",
            Some("start the console with --activation-url URL, or switch to Offline and use a license file"),
        )
    })?;
    app.engine
        .activate_with(name, code, ActivationSlot::Reserve, client)
        .map(|activated| activated.key)
        .map_err(|e| hide_code(e.into(), code))
}

/// A failure whose message may quote an activation code, with the code masked.
pub fn hide_code(failure: Failure, code: &str) -> Failure {
    match failure {
        Failure::Refused {
            code: rule_code,
            message,
            rule,
        } => Failure::Refused {
            code: rule_code,
            message: message.replace(code, &mask_code(code)),
            rule,
        },
        other => other,
    }
}

/// The address of a project's page.
pub fn project_url(name: &str) -> String {
    format!("/projects/{}", encode(name))
}

/// Percent-encodes a path segment or query value: every byte but the unreserved ones.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_for_addresses() {
        assert_eq!(encode("wh 1/ü"), "wh%201%2F%C3%BC");
        assert_eq!(project_url("a-b_c.d~"), "/projects/a-b_c.d~");
    }

    #[test]
    fn a_switch_is_told_once_the_reserve_took_over() {
        let card = |key: &str, role| ("data_volume".to_owned(), key.to_owned(), role);
        let before = [card("K1", Role::Active), card("K2", Role::Reserved)];
        let after = [card("K2", Role::Active)];
        assert!(switch_text(&before, &after).unwrap().contains("\"K1\""));
        assert_eq!(switch_text(&before, &before), None);
        assert_eq!(switch_text(&[card("K1", Role::Active)], &before), None);
    }
}
