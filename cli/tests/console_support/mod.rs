//! What the console tests share: a real `tollgate console` on a free port over a test state,
//! a plain HTTP client for it, and a WebDriver client for headless Chromium.

pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{State, BIN};

/// A running `tollgate console`, stopped when dropped.
pub struct Console {
    child: Child,
    /// `http://127.0.0.1:PORT`, without the trailing slash.
    pub base: String,
}

impl Console {
    /// `tollgate --state DIR console --listen 127.0.0.1:0 EXTRA…`, once it says where it serves.
    pub fn start(state: &State, extra: &[&str]) -> Console {
        let mut child = Command::new(BIN)
            .env_remove("TOLLGATE_HOME")
            .env_remove("TOLLGATE_CONSOLE_TOKEN")
            .env_remove("TOLLGATE_ACTIVATION_URL")
            .env("TOLLGATE_INSTALLATION", state.installation.path())
            .arg("--state")
            .arg(state.dir.path())
            .args(["console", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tollgate console starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("console on ")
            .unwrap_or_else(|| panic!("first line names the address: {line:?}"));
        Console {
            child,
            base: url.trim_end_matches('/').to_owned(),
        }
    }

    /// The full address of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.get_with(path, &[])
    }

    /// `GET path` with extra headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut request = agent().get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.call())
    }

    /// `POST path` of a form, from this console's own origin.
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        self.post_with(path, fields, &[("Origin", &self.base)])
    }

    /// `POST path` of a form with the headers given (and no others).
    pub fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut request = agent().post(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send_form(fields.iter().copied()))
    }

    /// `POST path` of a form from this console's own origin that must redirect: where to.
    pub fn post_redirect(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let response = agent()
            .post(self.url(path))
            .header("Origin", &self.base)
            .send_form(fields.iter().copied())
            .expect("the console answers");
        assert_eq!(response.status().as_u16(), 303, "{path} redirects");
        response.headers()["location"]
            .to_str()
            .expect("an ASCII Location")
            .to_owned()
    }

    /// The CSRF token the console's forms carry.
    pub fn csrf(&self) -> String {
        let (status, page) = self.get("/licenses");
        assert_eq!(status, 200);
        between(&page, "name=\"csrf\" value=\"", "\"")
            .expect("a form carries the CSRF token")
            .to_owned()
    }
}

impl Console {
    /// Sends SIGTERM and waits up to 10 s for the console to end; its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the console did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that reports every status and follows no redirect.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    let mut response = response.expect("the console answers");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, body)
}

/// The text between the first `start` and the next `end` after it.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

/// How many times `needle` occurs in `text`.
pub fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// A data-volume key as the JSON `key add --file` reads.
pub fn key_json(id: &str, delivery: &str, kind: &str, limit: u64) -> String {
    format!(
        r#"{{"id": "{id}", "delivery": "{delivery}", "kind": "{kind}", "edition": "standard", "scheme": {{"data_volume": {{"limit_bytes": {limit}}}}}}}"#
    )
}

/// Adds a data-volume key to `project` through the CLI.
pub fn add_key(state: &State, project: &str, id: &str, delivery: &str, kind: &str, limit: &str) {
    state
        .run(&format!(
            "key add {project} --id {id} --delivery {delivery} --kind {kind} --limit {limit}"
        ))
        .success();
}

/// The activation code of the warehouse key, which no page may show in full.
pub const SECRET_CODE: &str = "ACT-2027-SECRET-7788";

/// The projects of the data-volume cards (rules R27 and R28 in docs/rules.md): `warehouse` with one
/// online key of 10 MB (an activation code, a company, an expiry), `archive` with an Active and a
/// Reserved offline key, `empty` with none.
pub fn seed000(state: &State) {
    for project in ["warehouse", "archive", "empty"] {
        state.run(&format!("project create {project}")).success();
    }
    state
        .run(&format!(
            "key add warehouse --id K-1 --delivery online --limit 10MB --company Acme \
             --expires 2030-01-01 --auto-renew --activation-code {SECRET_CODE}"
        ))
        .success();
    add_key(state, "archive", "A-1", "offline", "commercial", "1GB");
    add_key(state, "archive", "A-2", "offline", "commercial", "1GB");
}

/// Pools and instances (rules R22–R26 in docs/rules.md): commercial server licenses in the global
/// pool (annual, auto-renew), commercial desktop licenses of Acme with Premium Support, a trial, a
/// desktop license that has expired; a Windows instance of Acme holding a license, a Linux one
/// without.
pub fn seed002(state: &State) {
    state
        .run("pool buy --type server --quantity 3 --mode annual --auto-renew")
        .success();
    state
        .run("pool buy --type desktop --quantity 2 --mode annual --company Acme --premium-support")
        .success();
    state
        .run("pool buy --type server --quantity 1 --mode annual --trial --onboarding")
        .success();
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    state
        .run(&format!(
            "pool buy --type desktop --quantity 1 --mode annual --expires {soon}"
        ))
        .success();
    state
        .run("instance add win-1 --os windows --company Acme")
        .success();
    state.run("instance add lin-1 --os linux").success();
    state.run("instance assign win-1").success();
    std::thread::sleep(Duration::from_millis(2500));
}

/// The SVMs of the activation task (rule R8 in docs/rules.md) in group `cluster-1`: `svm-1` with an
/// online Active key, `svm-2` with none, `svm-3` with an online subscription key, `svm-4` with an
/// offline key; `svm-5` outside.
pub fn seed001(state: &State) {
    for svm in ["svm-1", "svm-2", "svm-3", "svm-4", "svm-5"] {
        state.run(&format!("project create {svm}")).success();
    }
    add_key(state, "svm-1", "S1", "online", "commercial", "1GB");
    add_key(state, "svm-3", "S3", "online", "subscription", "1GB");
    add_key(state, "svm-4", "S4", "offline", "commercial", "1GB");
    add_key(state, "svm-5", "S5", "online", "commercial", "1GB");
    state
        .run("group add cluster-1 svm-1 svm-2 svm-3 svm-4")
        .success();
}

/// The reserve key the activation task adds: online, commercial, 1 GB.
pub fn task_key() -> String {
    key_json("R-1", "online", "commercial", 1_000_000_000)
}

/// What `tollgate key add-reserve --group GROUP --file KEY --json` says on `state`: per
/// project, `(status, code, message)`.
pub fn cli_bulk(state: &State, group: &str, key: &str) -> Vec<(String, String, String, String)> {
    let file = state.installation.path().join("task-key.json");
    std::fs::write(&file, key).unwrap();
    let output = state
        .cmd(&["key", "add-reserve", "--group", group, "--file"])
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    let lines: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let text = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
            (
                text("project"),
                text("status"),
                text("code"),
                text("message"),
            )
        })
        .collect()
}

/// Unescapes the five entities maud writes.
pub fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The activation code the test's activation service knows.
pub const SERVICE_CODE: &str = "ACT-CONSOLE-4242";

/// A vendor's activation service, `tollgate serve-activation` on a free loopback port with a
/// fresh vendor key and one code, [`SERVICE_CODE`], for online data-volume keys of 1 GiB.
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Makes the vendor key and the code catalog, and starts the service.
    pub fn start() -> Service {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(BIN)
            .args(["license", "keygen", "--out"])
            .arg(dir.path().join("vendor"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let catalog = format!(
            r#"{{"codes": [{{"code": "{SERVICE_CODE}", "term_days": 365, "renewals_left": 5,
              "key": {{"kind": "commercial", "edition": "standard",
                      "scheme": {{"data_volume": {{"limit_bytes": 1073741824}}}}}}}}]}}"#
        );
        std::fs::write(dir.path().join("codes.json"), catalog).unwrap();
        let mut child = Command::new(BIN)
            .env_remove("TOLLGATE_HOME")
            .current_dir(dir.path())
            .arg("serve-activation")
            .arg("--codes")
            .arg(dir.path().join("codes.json"))
            .arg("--key")
            .arg(dir.path().join("vendor/vendor.key"))
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Service {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Per license type: its name, how many licenses are listed, and the message of a type never
/// purchased.
pub type TypeRows = (String, usize, Option<String>);

/// What `tollgate pool list FLAGS --json` lists on `state`, per type.
pub fn engine_rows(state: &State, flags: &str) -> Vec<TypeRows> {
    state
        .json(&format!("pool list {flags}"))
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["license_type"].as_str().unwrap().to_owned(),
                t["licenses"].as_array().unwrap().len(),
                t["message"].as_str().map(str::to_owned),
            )
        })
        .collect()
}
