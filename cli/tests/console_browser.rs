//! `tollgate console` in a real headless Chromium, driven through WebDriver (chromedriver):
//! the reserve, pop-up, tooltips, slider and live switch of rules R27 and R28 (docs/rules.md);
//! the filters and purchase rule of R26 and R22; the activation task of R8. Each result is compared
//! with what the engine says through the CLI.
//!
//! These tests need Debian's `chromium` and `chromium-driver` (.ci/run installs them); they
//! fail without them, and are skipped only when TOLLGATE_SKIP_BROWSER=1. With
//! TOLLGATE_CONSOLE_SCREENSHOTS=DIR they also save the screenshots of docs/console/.

// The helpers are shared by every test binary; this one needs only some of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
mod console_support;

use std::io::Write;
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::State;
use console_support::webdriver::{skipped, Browser, Driver, Element, TAB};
use console_support::{
    cli_bulk, engine_rows, key_json, seed000, seed001, seed002, task_key, Console, TypeRows,
};
use serde_json::Value;

/// One browser at a time: the machine has few cores, and the waits are bounded.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// The console, chromedriver and a 1280 × 900 session, serialised with the other tests.
struct Bench {
    browser: Browser,
    _driver: Driver,
    console: Console,
    _turn: MutexGuard<'static, ()>,
}

impl Bench {
    fn new(state: &State) -> Bench {
        let turn = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
        let console = Console::start(state, &[]);
        let driver = Driver::start();
        let browser = driver.session(1280, 900);
        Bench {
            browser,
            _driver: driver,
            console,
            _turn: turn,
        }
    }

    fn open(&self, path: &str) {
        self.browser.open(&self.console.url(path));
    }

    fn text_of(&self, css: &str) -> String {
        let e = self.browser.find(css);
        self.browser.text(&e)
    }

    /// The page's address, without the console's base.
    fn path(&self) -> String {
        let href = self.browser.script("return location.href", None);
        href.as_str()
            .unwrap()
            .trim_start_matches(&self.console.base)
            .to_owned()
    }
}

#[test]
fn adding_a_reserve_license_and_reading_the_pop_up() {
    if skipped() {
        return;
    }
    let state = State::new();
    seed000(&state);
    let bench = Bench::new(&state);
    let b = &bench.browser;
    bench.open("/");
    assert_eq!(bench.text_of("h1"), "Select a Project to Start");
    b.document("projects");
    b.click(&b.find("a[href='/projects/warehouse']"));
    assert_eq!(bench.text_of(".card .status"), "Active");
    assert_eq!(bench.text_of(".card dd.type"), "Online");
    assert_eq!(bench.text_of(".card dd.expiration"), "2030-01-01");
    assert_eq!(bench.text_of(".card dd.code"), "••••••••••••••••7788");
    b.click(&b.find("a.add-license"));
    assert_eq!(bench.text_of("h1"), "Additional License Registration");
    assert!(
        b.displayed(&b.find("#code")),
        "online first: an activation code"
    );
    b.click(&b.find("nav.modes a[href$='mode=offline']"));
    // Upload the license file: the page reads it into the text box.
    let file = state.installation.path().join("K-2.json");
    std::fs::write(&file, key_json("K-2", "online", "commercial", 20_000_000)).unwrap();
    let upload = b.find("#license-file");
    b.type_into(&upload, file.to_str().unwrap());
    let textarea = b.find("#license");
    b.wait_for("the uploaded file in the text box", || {
        let value = b.script("return arguments[0].value", Some(&textarea));
        value
            .as_str()
            .filter(|v| v.contains("K-2"))
            .map(str::to_owned)
    });
    assert_eq!(bench.text_of("button[type=submit]"), "Next");
    b.click(&b.find("#next"));
    // The Next button became "Add Reserve License".
    let add = b.find("#add-reserve");
    assert_eq!(b.text(&add), "Add Reserve License");
    assert!(b.all("#next").is_empty());
    b.document("registration");
    b.click(&add);
    let popup = b.find("#popup");
    b.wait_for("the pop-up", || b.displayed(&popup).then_some(()));
    assert_eq!(
        bench.text_of("#popup .popup-text"),
        "You have added an additional license key for project warehouse. After the first key\u{2019}s data usage is exhausted, migration will automatically continue with the reserved key."
    );
    b.document("pop-up");
    b.click(&b.find("#popup-ok"));
    b.wait_for("the project list", || (bench.path() == "/").then_some(()));
    assert_eq!(bench.text_of("h1"), "Select a Project to Start");
    // Two cards now, one at a time on a slider, and no Add License.
    bench.open("/projects/warehouse");
    assert_eq!(bench.text_of(".slider-pos"), "Card 1 of 2");
    let cards = b.all(".card");
    assert!(b.displayed(&cards[0]) && !b.displayed(&cards[1]));
    b.click(&b.find("button.next"));
    assert_eq!(bench.text_of(".slider-pos"), "Card 2 of 2");
    assert!(!b.displayed(&cards[0]) && b.displayed(&cards[1]));
    assert_eq!(b.text(&b.all_in(Some(&cards[1]), ".status")[0]), "Reserved");
    assert_eq!(
        b.text(&b.all_in(Some(&cards[1]), "dd.expiration")[0]),
        "Reserved"
    );
    assert!(b.all("a.add-license").is_empty());
    b.document("license-information");
    let keys = state.json("key list warehouse");
    assert_eq!(keys[1]["status"], "reserved");
}

/// Presses Tab until `target` has the focus, as a keyboard user reaches it.
fn tab_to(b: &Browser, target: &Element) {
    for _ in 0..40 {
        b.press(TAB);
        let focused = b.script(
            "return document.activeElement === arguments[0]",
            Some(target),
        );
        if focused == Value::Bool(true) {
            return;
        }
    }
    panic!("Tab never reached the element");
}

#[test]
fn each_tooltip_shows_on_hover_and_on_keyboard_focus() {
    if skipped() {
        return;
    }
    let state = State::new();
    seed000(&state);
    let bench = Bench::new(&state);
    let b = &bench.browser;
    let texts = [
        ("Active", "Migration data for project archive is processed under this license key."),
        ("Reserved", "This is a reserved key. Migration will automatically continue with this key after the first key expires."),
    ];
    for (i, (status, text)) in texts.iter().enumerate() {
        bench.open("/projects/archive");
        if i == 1 {
            b.click(&b.find("button.next"));
        }
        let card = &b.all(".card")[i];
        assert_eq!(b.text(&b.all_in(Some(card), ".status")[0]), *status);
        let info = &b.all_in(Some(card), "button.info")[0];
        let tip = &b.all_in(Some(card), ".tip-text")[0];
        assert_eq!(
            b.attribute(info, "aria-describedby"),
            b.attribute(tip, "id")
        );
        assert_eq!(b.attribute(tip, "role").as_deref(), Some("tooltip"));
        assert!(!b.displayed(tip), "hidden until asked for");
        b.hover(info);
        b.wait_for("the tooltip on hover", || b.displayed(tip).then_some(()));
        assert_eq!(b.text(tip), *text);
        if i == 0 {
            b.document("tooltip");
        }
        b.hover_away();
        b.wait_for("the tooltip to go", || (!b.displayed(tip)).then_some(()));
        // Keyboard: Tab from the top of the page to the ⓘ.
        bench.open("/projects/archive");
        if i == 1 {
            let next = b.find("button.next");
            b.click(&next);
        }
        let card = &b.all(".card")[i];
        let info = &b.all_in(Some(card), "button.info")[0];
        let tip = &b.all_in(Some(card), ".tip-text")[0];
        b.hover_away();
        tab_to(b, info);
        b.wait_for("the tooltip on focus", || b.displayed(tip).then_some(()));
        assert_eq!(b.text(tip), *text);
    }
}

/// Per license type, the rows the grid shows once every type with several licenses is
/// expanded.
fn shown_rows(b: &Browser) -> Vec<TypeRows> {
    b.all("section.type")
        .iter()
        .map(|section| {
            let kind = b.attribute(section, "data-type").unwrap();
            for summary in b.all_in(Some(section), "summary") {
                if b.attribute(&b.all_in(Some(section), "details")[0], "open")
                    .is_none()
                {
                    b.click(&summary);
                }
            }
            let rows = b
                .all_in(Some(section), "tr[data-license]")
                .iter()
                .filter(|r| b.displayed(r))
                .count();
            let message = b
                .all_in(Some(section), ".not-purchased")
                .first()
                .map(|m| b.text(m));
            (kind, rows, message)
        })
        .collect()
}

#[test]
fn each_filter_shows_the_rows_the_engine_lists() {
    if skipped() {
        return;
    }
    let state = State::new();
    state.run("init").success();
    seed002(&state);
    let bench = Bench::new(&state);
    let b = &bench.browser;
    bench.open("/licenses");
    assert_eq!(shown_rows(b), engine_rows(&state, ""));
    b.document("licenses");
    // (filter, choice as shown, flags of `pool list`)
    let clicks = [
        ("company", "Acme", "--company Acme"),
        ("company", "All", ""),
        ("kind", "Commercial", "--commercial"),
        ("kind", "Trial", "--trial"),
        ("kind", "All", ""),
        ("validity", "Valid", "--valid"),
        ("validity", "Expired", "--expired"),
        ("validity", "All", ""),
        ("use", "Used", "--used"),
        ("use", "Unused", "--unused"),
        ("use", "All", ""),
        ("auto_renew", "Auto-Renew Only", "--auto-renew"),
        ("auto_renew", "All", ""),
    ];
    for (filter, choice, flags) in clicks {
        let chips = b.all(&format!("nav.filter[data-filter='{filter}'] a"));
        let chip = chips
            .iter()
            .find(|c| b.text(c) == choice)
            .unwrap_or_else(|| panic!("a {choice} choice for {filter}"));
        b.click(chip);
        b.wait_for("the filter to apply", || {
            let on = b.find(&format!(
                "nav.filter[data-filter='{filter}'] a[aria-current]"
            ));
            (b.text(&on) == choice).then_some(())
        });
        assert_eq!(
            shown_rows(b),
            engine_rows(&state, flags),
            "{filter} = {choice}"
        );
    }
    assert!(bench
        .text_of("#use-note")
        .contains("commercial licenses only"));
    // The search box.
    let search = b.find("#q");
    b.type_into(&search, "win-1");
    b.click(&b.find("form.search button"));
    b.wait_for("the search", || {
        bench.path().contains("q=win-1").then_some(())
    });
    assert_eq!(shown_rows(b), engine_rows(&state, "--search win-1"));
    // Fits 800 px: nothing wider than the window.
    b.resize(800, 900);
    bench.open("/licenses");
    let fits = b.script(
        "return document.documentElement.scrollWidth <= window.innerWidth",
        None,
    );
    assert_eq!(fits, Value::Bool(true));
    b.document("licenses-800px");
    bench.open("/instances");
    b.document("instances");
    bench.open("/events");
    b.document("events");
}

#[test]
fn a_second_payment_mode_is_refused() {
    if skipped() {
        return;
    }
    let state = State::new();
    state.run("init").success();
    let bench = Bench::new(&state);
    let b = &bench.browser;
    bench.open("/licenses");
    // Before any purchase both modes can be chosen.
    assert_eq!(b.attribute(&b.find("#mode-monthly"), "disabled"), None);
    assert_eq!(b.attribute(&b.find("#mode-annual"), "disabled"), None);
    // Meanwhile, the first purchase is made elsewhere, annually.
    state
        .run("pool buy --type server --quantity 1 --mode annual")
        .success();
    b.click(&b.find("#buy-type option[value='desktop']"));
    let quantity = b.find("#buy-quantity");
    b.script("arguments[0].value = ''", Some(&quantity));
    b.type_into(&quantity, "3");
    b.click(&b.find("#buy-premium"));
    b.click(&b.find("#buy-onboarding"));
    b.click(&b.find("#mode-monthly"));
    b.click(&b.find("#buy"));
    let refusal = bench.text_of(".refusal");
    let cli = state.refusal("pool buy --type desktop --quantity 3 --mode monthly");
    assert!(refusal.contains("PAYMENT_MODE_MISMATCH"), "{refusal}");
    assert!(
        refusal.contains(cli["error"]["message"].as_str().unwrap()),
        "{refusal}"
    );
    b.document("buy-refused");
    // The page now offers the first purchase's mode only.
    assert!(b.attribute(&b.find("#mode-monthly"), "disabled").is_some());
    assert_eq!(state.json("pool list --type desktop")[0]["count"], 0);
}

#[test]
fn the_activation_task_on_a_group_reports_each_svm() {
    if skipped() {
        return;
    }
    let (state, twin) = (State::new(), State::new());
    seed001(&state);
    seed001(&twin);
    let bench = Bench::new(&state);
    let b = &bench.browser;
    bench.open("/activation");
    b.click(&b.find("#target-group"));
    b.click(&b.find("#group option[value='cluster-1']"));
    assert_eq!(
        b.attribute(&b.find("#reserve"), "checked").as_deref(),
        Some("true")
    );
    assert!(bench
        .text_of("#step-2")
        .contains("Use the license key as a reserve key"));
    let key = task_key();
    b.type_into(&b.find("#license"), &key);
    b.click(&b.find("#start"));
    let table = b.find("#results");
    let rows = b.all_in(Some(&table), "tbody tr");
    let expected = cli_bulk(&twin, "cluster-1", &key);
    assert_eq!(rows.len(), expected.len());
    for (row, (project, status, code, message)) in rows.iter().zip(&expected) {
        let cells: Vec<String> = b
            .all_in(Some(row), "td")
            .iter()
            .map(|c| b.text(c))
            .collect();
        assert_eq!(&cells[0], project);
        if status == "added" {
            assert_eq!(cells[1], "Added as the Reserved key");
        } else {
            assert_eq!(cells[1], "Not added");
            assert_eq!(&cells[2], code);
            assert_eq!(&cells[3], message);
        }
    }
    let codes: Vec<&str> = expected.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        codes,
        ["", "NO_ACTIVE_KEY", "SUBSCRIPTION", "TYPE_MISMATCH"]
    );
    b.document("activation");
}

#[test]
fn the_page_follows_a_migration_through_the_switch() {
    if skipped() {
        return;
    }
    let state = State::new();
    state.run("project create mig").success();
    console_support::add_key(&state, "mig", "K-1", "online", "commercial", "8MB");
    console_support::add_key(&state, "mig", "K-2", "online", "commercial", "8MB");
    let bench = Bench::new(&state);
    let b = &bench.browser;
    bench.open("/projects/mig");
    assert_eq!(b.all(".card").len(), 2);
    assert!(b.all("a.add-license").is_empty());
    // A migration in another process: 12 MB through `tollgate pipe`, 500 kB at a time.
    let mut pipe = std::process::Command::new(common::BIN)
        .env_remove("TOLLGATE_HOME")
        .env("TOLLGATE_INSTALLATION", state.installation.path())
        .arg("--state")
        .arg(state.dir.path())
        .args(["pipe", "--project", "mig"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = pipe.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..24 {
            stdin.write_all(&vec![0u8; 500_000]).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(120));
        }
    });
    // The bar moves before the switch.
    let bar = b.find(".bar[data-key='K-1']");
    b.wait_for("K-1's bar to move", || {
        let now = b.attribute(&bar, "aria-valuenow")?.parse::<u64>().ok()?;
        (now > 0 && now < 100).then_some(())
    });
    b.document("live-usage");
    // The switch appears, and only the new Active card remains, with Add License.
    let notice = b.find("#live-notice");
    let told = b.wait_for("the switch notice", || {
        let text = b.text(&notice);
        (!text.is_empty()).then_some(text)
    });
    assert_eq!(
        told,
        "The Active key \"K-1\" was used up or expired: the Reserved key \"K-2\" is now the Active key."
    );
    b.wait_for("one card", || (b.all(".card").len() == 1).then_some(()));
    let card = b.find(".card");
    assert_eq!(b.attribute(&card, "data-key").as_deref(), Some("K-2"));
    assert_eq!(bench.text_of(".card .status"), "Active");
    assert!(b.displayed(&b.find("a.add-license")));
    writer.join().unwrap();
    assert!(pipe.wait().unwrap().success());
    // The bar ends where the engine says.
    let keys = state.json("key list mig");
    let used = keys[1]["used"].as_u64().unwrap();
    assert_eq!(used, 4_000_000);
    b.wait_for("K-2's final figures", || {
        let text = bench.text_of(".card .bar-text");
        (text == "4.00 MB of 8.00 MB (50 %)").then_some(())
    });
    b.document("live-switch");
}

#[test]
fn every_page_fits_1280_and_800_pixels_and_labels_its_controls() {
    if skipped() {
        return;
    }
    let state = State::new();
    seed000(&state);
    seed001(&state);
    seed002(&state);
    let bench = Bench::new(&state);
    let b = &bench.browser;
    let pages = [
        "/",
        "/projects/archive",
        "/projects/warehouse/add-license",
        "/projects/warehouse/add-license?mode=offline",
        "/licenses",
        "/instances",
        "/activation",
        "/events",
    ];
    let check = "const controls = [...document.querySelectorAll(\
        'input:not([type=hidden]), select, textarea, button')];\
        return { fits: document.documentElement.scrollWidth <= window.innerWidth,\
                 unlabelled: controls.filter(e => !(e.labels && e.labels.length)\
                     && !e.getAttribute('aria-label') && !e.textContent.trim())\
                     .map(e => e.outerHTML) };";
    for width in [1280, 800] {
        b.resize(width, 900);
        for page in pages {
            bench.open(page);
            let found = b.script(check, None);
            assert_eq!(found["fits"], Value::Bool(true), "{page} at {width} px");
            assert_eq!(found["unlabelled"], serde_json::json!([]), "{page}");
        }
    }
}
