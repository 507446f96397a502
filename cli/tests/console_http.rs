//! `tollgate console` over plain HTTP: who may use it (the listen check, the token, CSRF and
//! same-origin), and what each route shows, counted against the engine's own listings through
//! the CLI's `--json`.

// The helpers are shared by every test binary; this one needs only some of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
mod console_support;

use std::io::{BufRead, BufReader};

use common::State;
use console_support::{
    agent, between, cli_bulk, count, engine_rows, key_json, seed000, seed001, seed002, task_key,
    unescape, Console, Service, TypeRows, SECRET_CODE, SERVICE_CODE,
};
use serde_json::Value;

#[test]
fn a_remote_address_needs_a_token() {
    let state = State::new();
    state.run("init").success();
    let refused = state
        .cmd(&["console", "--listen", "0.0.0.0:0"])
        .env_remove("TOLLGATE_CONSOLE_TOKEN")
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("is not a loopback address"), "{stderr}");
    assert!(stderr.contains("--token"), "{stderr}");
    // A token a cookie cannot carry is refused the same way.
    state.cmd(&["console", "--token", "a;b"]).assert().code(2);
}

#[test]
fn every_request_needs_the_token() {
    let state = State::new();
    seed000(&state);
    let console = Console::start(&state, &["--token", "s3cret-T0ken"]);
    for path in [
        "/",
        "/projects/warehouse",
        "/licenses",
        "/assets/console.css",
        "/events",
    ] {
        let (status, body) = console.get(path);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(!body.contains("warehouse"));
        let (status, _) = console.get_with(path, &[("Authorization", "Bearer wrong")]);
        assert_eq!(status, 401, "{path}");
        let (status, _) = console.get_with(path, &[("Authorization", "Bearer s3cret-T0ken")]);
        assert_eq!(status, 200, "{path}");
    }
    // /?token=T once sets a cookie and sends the browser on without the token in the address.
    let mut response = agent()
        .get(console.url("/licenses?kind=trial&token=s3cret-T0ken"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/licenses?kind=trial");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let _ = response.body_mut().read_to_string();
    let pair = cookie.split(';').next().unwrap();
    let (status, body) = console.get_with(&location, &[("Cookie", pair)]);
    assert_eq!(status, 200);
    assert!(body.contains("Licenses"));
    let (status, _) = console.get("/?token=wrong");
    assert_eq!(status, 401);
    // A POST with the token but without the CSRF token is still refused.
    let (status, _) = console.post_with(
        "/licenses/buy",
        &[("type", "server"), ("quantity", "1"), ("mode", "annual")],
        &[
            ("Authorization", "Bearer s3cret-T0ken"),
            ("Origin", &console.base),
        ],
    );
    assert_eq!(status, 403);
}

/// Form fields, or request headers.
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// A purchase of 2 server licenses, paid annually, carrying `csrf`.
fn buy_form(csrf: &str) -> Fields<'_> {
    vec![
        ("type", "server"),
        ("quantity", "2"),
        ("mode", "annual"),
        ("csrf", csrf),
    ]
}

#[test]
fn changes_need_the_csrf_token_and_the_console_origin() {
    let state = State::new();
    state.run("init").success();
    let console = Console::start(&state, &[]);
    let csrf = console.csrf();
    let form = buy_form(&csrf);
    let own = [("Origin", console.base.as_str())];
    let cases: [(&str, Fields, Fields); 5] = [
        (
            "cross-site Origin",
            form.clone(),
            vec![("Origin", "http://evil.example")],
        ),
        (
            "cross-site Referer",
            form.clone(),
            vec![("Referer", "http://evil.example/licenses")],
        ),
        ("neither Origin nor Referer", form.clone(), vec![]),
        ("no CSRF token", form[..3].to_vec(), own.to_vec()),
        (
            "a wrong CSRF token",
            buy_form("0123456789abcdef0123456789abcdef"),
            own.to_vec(),
        ),
    ];
    for (what, fields, headers) in &cases {
        let (status, body) = console.post_with("/licenses/buy", fields, headers);
        assert_eq!(status, 403, "{what}: {body}");
    }
    // Nothing was bought by any of them.
    let listed = state.json("pool list");
    assert!(listed.as_array().unwrap().iter().all(|t| t["count"] == 0));
    // The console's own form, from its own page, buys.
    let (status, body) = console.post("/licenses/buy", &form);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Bought 2 commercial server licenses into the global pool, paid annual"));
    let (status, _) = console.post_with(
        "/licenses/buy",
        &form,
        &[("Referer", &console.url("/licenses"))],
    );
    assert_eq!(status, 200);
    // A page elsewhere that rebinds its name to 127.0.0.1 reaches the port, but not the
    // console: without a token only loopback host names are served.
    let (status, body) = console.get_with("/licenses", &[("Host", "rebound.example:8480")]);
    assert_eq!(status, 403);
    assert!(body.contains("loopback only"));
    let (status, _) = console.post_with(
        "/licenses/buy",
        &buy_form(&csrf),
        &[
            ("Host", "rebound.example"),
            ("Origin", "http://rebound.example"),
        ],
    );
    assert_eq!(status, 403);
    // Changes are POST only.
    let (status, _) = console.get("/licenses/buy");
    assert_eq!(status, 405);
}

#[test]
fn the_project_list_and_license_cards() {
    let state = State::new();
    seed000(&state);
    let console = Console::start(&state, &[]);
    let (status, home) = console.get("/");
    assert_eq!(status, 200);
    assert!(home.contains("Select a Project to Start"));
    assert_eq!(count(&home, "class=\"project-card\""), 3);
    for project in ["warehouse", "archive", "empty"] {
        assert!(home.contains(&format!("href=\"/projects/{project}\"")));
    }
    assert!(home.contains("0 B of 10.00 MB (0 %)"), "usage with units");

    let (_, one) = console.get("/projects/warehouse");
    let one = unescape(&one);
    assert_eq!(count(&one, "class=\"card\""), 1);
    assert!(one.contains("Card 1 of 1"));
    assert!(one.contains("<span class=\"status\">Active</span>"));
    assert!(one.contains("<dd class=\"type\">Online</dd>"));
    assert!(one.contains("<dd class=\"expiration\">2030-01-01</dd>"));
    assert!(
        one.contains("Migration data for project warehouse is processed under this license key.")
    );
    assert!(one.contains("aria-describedby=\"tip-0-0\""));
    assert_eq!(count(&one, ">Add License</a>"), 1, "one key: Add License");
    assert!(
        !one.contains(SECRET_CODE),
        "the activation code is never shown in full"
    );
    assert!(one.contains("7788"));
    assert!(!one.contains("SECRET"));

    let (_, two) = console.get("/projects/archive");
    let two = unescape(&two);
    assert_eq!(count(&two, "class=\"card\""), 2);
    assert!(two.contains("Card 1 of 2") && two.contains("Card 2 of 2"));
    assert!(two.contains("<span class=\"status\">Reserved</span>"));
    assert!(two.contains("<dd class=\"expiration\">Reserved</dd>"));
    assert!(two.contains("This is a reserved key. Migration will automatically continue with this key after the first key expires."));
    assert!(
        !two.contains(">Add License</a>"),
        "two keys: no Add License"
    );

    // A seat key's card counts machines, with the text that names what it licenses.
    state.run("project create svm").success();
    state
        .run("key add svm --id M-1 --delivery online --machines 5 --os server")
        .success();
    state
        .run("seat acquire svm --class server --units 2")
        .success();
    let (_, seats) = console.get("/projects/svm");
    let seats = unescape(&seats);
    assert!(
        seats.contains("2 server machines of 5 server machines (40 %)"),
        "{seats}"
    );
    assert!(seats
        .contains("Protected server machines of project svm are counted under this license key."));
    assert!(seats.contains("License Information"));

    let (_, none) = console.get("/projects/empty");
    assert!(!none.contains(">Add License</a>"));
    let (status, missing) = console.get("/projects/nope");
    assert_eq!(status, 404);
    assert!(missing.contains("PROJECT_NOT_FOUND"));
}

#[test]
fn adding_a_reserve_through_the_registration_screen() {
    let state = State::new();
    seed000(&state);
    let console = Console::start(&state, &[]);
    let (_, online) = console.get("/projects/warehouse/add-license");
    assert!(online.contains("Additional License Registration"));
    assert!(online.contains("<label for=\"code\">Activation code</label>"));
    let (_, offline) = console.get("/projects/warehouse/add-license?mode=offline");
    assert!(offline.contains("<textarea id=\"license\" name=\"license\""));
    assert!(offline.contains("type=\"file\""));
    // Online without an activation service: a clear refusal, nothing added.
    let csrf = console.csrf();
    let (status, body) = console.post(
        "/projects/warehouse/add-license",
        &[
            ("mode", "online"),
            ("code", "ACT-0000-9999"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 409);
    assert!(body.contains("NO_ACTIVATION_SERVICE"));
    assert!(!body.contains("ACT-0000-9999"));
    // Offline: a license file (key JSON in a state that trusts no vendor key).
    let key = key_json("K-2", "online", "commercial", 20_000_000);
    let location = console.post_redirect(
        "/projects/warehouse/add-license",
        &[("mode", "offline"), ("license", &key), ("csrf", &csrf)],
    );
    // The step after names the key by a digest of its id (an id may carry a code), so a
    // made-up or an Active key's name shows the form again.
    assert!(location.starts_with("/projects/warehouse/add-license?added="));
    assert!(!location.contains("K-2"), "{location}");
    for made_up in ["K-1", "K-2", "0000000000000000"] {
        let (_, page) = console.get(&format!("/projects/warehouse/add-license?added={made_up}"));
        assert!(!page.contains("Add Reserve License"), "{made_up}");
    }
    let (_, added) = console.get(&location);
    let added = unescape(&added);
    assert!(added.contains(">Add Reserve License</button>"));
    assert!(!added.contains(">Next</button>"));
    assert!(added.contains("You have added an additional license key for project warehouse. After the first key\u{2019}s data usage is exhausted, migration will automatically continue with the reserved key."));
    assert!(added.contains("<a class=\"button primary\" id=\"popup-ok\" href=\"/\">OK</a>"));
    let keys = state.json("key list warehouse");
    assert_eq!(keys[1]["key"]["id"], "K-2");
    assert_eq!(keys[1]["status"], "reserved");
    let (_, page) = console.get("/projects/warehouse");
    assert_eq!(count(&page, "class=\"card\""), 2);
    assert!(!page.contains(">Add License</a>"));
    // A third key is refused with the engine's own error, as `key add-reserve` says it.
    let third = key_json("K-3", "online", "commercial", 1000);
    let (status, body) = console.post(
        "/projects/warehouse/add-license",
        &[("mode", "offline"), ("license", &third), ("csrf", &csrf)],
    );
    assert_eq!(status, 409);
    let file = state.installation.path().join("k3.json");
    std::fs::write(&file, &third).unwrap();
    let cli = state
        .cmd(&["key", "add-reserve", "warehouse", "--file"])
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(cli["error"]["code"], "RESERVE_OCCUPIED");
    let message = cli["error"]["message"].as_str().unwrap();
    assert!(unescape(&body).contains(message), "{body}");
}

/// The rows per license type that `/licenses?QUERY` shows, by type.
fn grid_rows(page: &str) -> Vec<TypeRows> {
    page.split("<section class=\"type\" data-type=\"")
        .skip(1)
        .map(|section| {
            let kind = section.split('"').next().unwrap().to_owned();
            let message = between(section, "<p class=\"not-purchased\">", "<").map(str::to_owned);
            (kind, count(section, "<tr data-license="), message)
        })
        .collect()
}

#[test]
fn every_filter_counts_what_the_engine_lists() {
    let state = State::new();
    state.run("init").success();
    seed002(&state);
    let console = Console::start(&state, &[]);
    let cases = [
        ("", ""),
        ("company=Acme", "--company Acme"),
        ("kind=commercial", "--commercial"),
        ("kind=trial", "--trial"),
        ("validity=valid", "--valid"),
        ("validity=expired", "--expired"),
        ("use=used", "--used"),
        ("use=unused", "--unused"),
        ("auto_renew=only", "--auto-renew"),
        ("q=win-1", "--search win-1"),
        (
            "kind=commercial&use=unused&company=Acme",
            "--commercial --unused --company Acme",
        ),
        ("kind=all&validity=all&use=all", ""),
    ];
    for (query, flags) in cases {
        let (status, page) = console.get(&format!("/licenses?{query}"));
        assert_eq!(status, 200, "{query}");
        let expected = engine_rows(&state, flags);
        assert_eq!(
            grid_rows(&page),
            expected,
            "/licenses?{query} against pool list {flags}"
        );
    }
    let (_, all) = console.get("/licenses");
    assert!(all.contains("You have not purchased licenses of this type"));
    assert!(all.contains("Used/Unused applies to commercial licenses only"));
    assert!(all.contains("Payment mode: Annual (fixed by the first purchase)"));
    // A type with more than one license expands to its list; one with a single license does not.
    let server = between(&all, "data-type=\"server\"", "</section>").unwrap();
    assert!(server.contains("<details>"));
    let (_, acme_trial) = console.get("/licenses?kind=trial");
    let trial = between(&acme_trial, "data-type=\"server\"", "</section>").unwrap();
    assert!(!trial.contains("<details>") && trial.contains("1 license, 0 used"));
    // Each filter says which choice is on.
    assert!(all.contains("aria-current=\"true\">All</a>"));
    let (status, body) = console.get("/licenses?validity=soon");
    assert_eq!(status, 400);
    assert!(unescape(&body).contains("validity \"soon\" is not valid, expired or all"));
    // The shortfall, for a horizon.
    let (_, page) = console.get("/licenses?days=90");
    let shortfall = state.json("pool shortfall --days 90");
    for t in shortfall["types"].as_array().unwrap() {
        let row = format!("<tr data-type=\"{}\">", t["license_type"].as_str().unwrap());
        let cells = between(&page, &row, "</tr>").expect("a shortfall row per type");
        assert!(cells.contains(&format!("<td class=\"to-buy\">{}</td>", t["to_buy"])));
    }
}

#[test]
fn a_second_payment_mode_is_refused_with_the_engines_error() {
    let state = State::new();
    state.run("init").success();
    state
        .run("pool buy --type server --quantity 1 --mode annual")
        .success();
    let console = Console::start(&state, &[]);
    let (_, page) = console.get("/licenses");
    assert!(
        page.contains("id=\"mode-monthly\" disabled"),
        "monthly is no longer selectable"
    );
    let csrf = console.csrf();
    let (status, body) = console.post(
        "/licenses/buy",
        &[
            ("type", "desktop"),
            ("quantity", "2"),
            ("mode", "monthly"),
            ("premium_support", "on"),
            ("onboarding", "on"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 409);
    let cli = state.refusal("pool buy --type desktop --quantity 2 --mode monthly");
    assert_eq!(cli["error"]["code"], "PAYMENT_MODE_MISMATCH");
    let body = unescape(&body);
    assert!(body.contains("PAYMENT_MODE_MISMATCH"));
    assert!(
        body.contains(cli["error"]["message"].as_str().unwrap()),
        "{body}"
    );
    // With the add-ons and the first purchase's mode it goes through.
    let (status, body) = console.post(
        "/licenses/buy",
        &[
            ("type", "desktop"),
            ("quantity", "2"),
            ("mode", "annual"),
            ("premium_support", "on"),
            ("onboarding", "on"),
            ("company", "Acme"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 200);
    assert!(unescape(&body).contains(
        "Bought 2 commercial desktop licenses into company \"Acme\"'s pool, paid annual"
    ));
    let listed = state.json("pool list --type desktop");
    let license = &listed[0]["licenses"][0];
    assert_eq!(license["premium_support"], true);
    assert_eq!(license["onboarding"], true);
}

#[test]
fn instances_are_assigned_and_unassigned() {
    let state = State::new();
    state.run("init").success();
    seed002(&state);
    let console = Console::start(&state, &[]);
    let (_, page) = console.get("/instances");
    let listed = state.json("instance list");
    assert_eq!(
        count(&page, "<tr data-instance="),
        listed.as_array().unwrap().len()
    );
    let csrf = console.csrf();
    let (status, body) = console.post(
        "/instances/assign",
        &[("name", "lin-1"), ("type", ""), ("csrf", &csrf)],
    );
    assert_eq!(status, 200, "{body}");
    let listed = state.json("instance list");
    let lin = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "lin-1")
        .unwrap();
    let license = lin["license"].as_str().expect("lin-1 is licensed");
    assert!(unescape(&body).contains(&format!("license {license} to instance \"lin-1\"")));
    let (status, body) = console.post("/instances/unassign", &[("name", "lin-1"), ("csrf", &csrf)]);
    assert_eq!(status, 200);
    assert!(body.contains(&format!("License {license} went back to its pool")));
    // A Linux instance cannot take a Workstation license: the engine's error.
    let (status, body) = console.post(
        "/instances/assign",
        &[("name", "lin-1"), ("type", "workstation"), ("csrf", &csrf)],
    );
    assert_eq!(status, 409);
    assert!(body.contains("LICENSE_TYPE_UNFIT"));
}

#[test]
fn the_activation_task_reports_each_svm_as_the_cli_does() {
    let (state, twin) = (State::new(), State::new());
    seed001(&state);
    seed001(&twin);
    let console = Console::start(&state, &[]);
    let (_, page) = console.get("/activation");
    assert!(page.contains("Use the license key as a reserve key"));
    assert!(page.contains("Step 2 of 3"));
    let csrf = console.csrf();
    let key = task_key();
    let (status, body) = console.post(
        "/activation",
        &[
            ("target", "group"),
            ("group", "cluster-1"),
            ("mode", "offline"),
            ("license", &key),
            ("reserve", "on"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let body = unescape(&body);
    let expected = cli_bulk(&twin, "cluster-1", &key);
    assert_eq!(expected.len(), 4);
    assert_eq!(
        count(&body, "<tr class=\"added\"") + count(&body, "<tr class=\"refused\""),
        4
    );
    for (project, status, code, message) in expected {
        let row = between(&body, &format!("data-project=\"{project}\">"), "</tr>").unwrap();
        if status == "added" {
            assert!(row.contains("Added as the Reserved key"), "{row}");
        } else {
            assert!(
                row.contains(&format!("<td class=\"code\">{code}</td>")),
                "{row}"
            );
            assert!(
                row.contains(&format!("<td class=\"message\">{message}</td>")),
                "{row}"
            );
        }
    }
    assert!(!body.contains("data-project=\"svm-5\""));
    // Without the check box, a bulk target is refused and nothing changes.
    let (status, body) = console.post(
        "/activation",
        &[
            ("target", "all"),
            ("mode", "offline"),
            ("license", &key),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 400);
    assert!(body.contains("to one SVM only"));
    // Without it, on one SVM, the key may become the Active key, as `key add` does.
    let first = key_json("F-1", "online", "commercial", 1_000_000);
    let (status, body) = console.post(
        "/activation",
        &[
            ("target", "project"),
            ("project", "svm-2"),
            ("mode", "offline"),
            ("license", &first),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 200);
    let row = between(&body, "data-project=\"svm-2\">", "</tr>").unwrap();
    assert!(row.contains("Added as the Active key"), "{row}");
    assert_eq!(state.json("key list svm-2")[0]["status"], "active");
}

#[test]
fn events_and_the_live_stream() {
    let state = State::new();
    seed000(&state);
    let console = Console::start(&state, &[]);
    let (_, page) = console.get("/events");
    let events = state.json("events");
    assert_eq!(count(&page, "<tr><td>"), events.as_array().unwrap().len());
    let (_, archive) = console.get("/events?project=archive");
    assert!(archive.contains("key A-2 added as the Reserved key"));
    assert!(!archive.contains("K-1"));

    let response = agent()
        .get(console.url("/projects/warehouse/stream"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut lines = BufReader::new(response.into_body().into_reader()).lines();
    let data = lines
        .find_map(|l| l.unwrap().strip_prefix("data: ").map(str::to_owned))
        .unwrap();
    let update: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(update["bars"][0]["key"], "K-1");
    assert_eq!(update["bars"][0]["text"], "0 B of 10.00 MB (0 %)");
    let (status, _) = console.get("/projects/nope/stream");
    assert_eq!(status, 404);
    // SIGTERM stops the console although the stream is still open, and the stream ends.
    let mut console = console;
    assert!(console.terminate().success());
    assert!(lines.all(|l| l.is_ok()), "the stream ends cleanly");
}

#[test]
fn activation_codes_go_through_the_service_and_are_never_shown_in_full() {
    let state = State::new();
    seed000(&state);
    seed001(&state);
    let service = Service::start();
    let console = Console::start(&state, &["--activation-url", &service.url]);
    let csrf = console.csrf();
    let (_, form) = console.get("/projects/warehouse/add-license");
    assert!(!form.contains("without --activation-url"));
    // A code the service does not know: the engine's refusal, with the code masked.
    let (status, body) = console.post(
        "/projects/warehouse/add-license",
        &[
            ("mode", "online"),
            ("code", "ACT-WRONG-0001"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("ACTIVATION_FAILED"));
    assert!(!body.contains("ACT-WRONG-0001"), "{body}");
    assert!(body.contains("••••••••••0001"));
    // The code the service knows: the online key it issues becomes the Reserved key.
    let location = console.post_redirect(
        "/projects/warehouse/add-license",
        &[("mode", "online"), ("code", SERVICE_CODE), ("csrf", &csrf)],
    );
    assert!(!location.contains(SERVICE_CODE), "{location}");
    let keys = state.json("key list warehouse");
    assert_eq!(keys[1]["status"], "reserved");
    assert_eq!(keys[1]["key"]["activation_code"], SERVICE_CODE);
    let id = keys[1]["key"]["id"].as_str().unwrap().to_owned();
    // The service names the key after the code: the id is masked like the code, everywhere.
    assert!(id.contains(SERVICE_CODE), "{id}");
    let (_, added) = console.get(&location);
    assert!(added.contains(">Add Reserve License</button>"));
    for path in [
        "/",
        "/projects/warehouse",
        "/events",
        "/activation",
        &location,
    ] {
        let (status, page) = console.get(path);
        assert_eq!(status, 200, "{path}");
        assert!(
            !page.contains(SERVICE_CODE),
            "{path} shows the code in full"
        );
    }
    let (_, page) = console.get("/projects/warehouse");
    let codes: Vec<&str> = page
        .split("<dd class=\"code\">")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap())
        .collect();
    assert_eq!(codes, ["••••••••••••••••7788", "••••••••••••4242"]);
    // The activation task with the code, on a group: activated once, one row per SVM.
    let (status, body) = console.post(
        "/activation",
        &[
            ("target", "group"),
            ("group", "cluster-1"),
            ("mode", "online"),
            ("code", SERVICE_CODE),
            ("reserve", "on"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains(SERVICE_CODE),
        "the task's rows show the code in full"
    );
    let body = unescape(&body);
    let svm1 = between(&body, "data-project=\"svm-1\">", "</tr>").unwrap();
    assert!(svm1.contains("Added as the Reserved key"), "{svm1}");
    let svm2 = between(&body, "data-project=\"svm-2\">", "</tr>").unwrap();
    assert!(svm2.contains("NO_ACTIVE_KEY"), "{svm2}");
    assert_eq!(state.json("key list svm-1")[1]["key"]["id"], id.as_str());
}

#[test]
fn with_json_the_first_line_says_where_it_serves() {
    let state = State::new();
    state.run("init").success();
    let mut child = std::process::Command::new(common::BIN)
        .env_remove("TOLLGATE_HOME")
        .env("TOLLGATE_INSTALLATION", state.installation.path())
        .arg("--state")
        .arg(state.dir.path())
        .args(["--json", "console", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let first: Value = serde_json::from_str(&line).unwrap();
    let url = first["listening"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
}
