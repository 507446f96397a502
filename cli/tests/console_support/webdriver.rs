//! A small W3C WebDriver client over HTTP (chromedriver driving headless Chromium): sessions,
//! navigation, elements, pointer and key actions, scripts and screenshots.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The key the W3C protocol calls an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Tab key, as WebDriver spells it.
pub const TAB: &str = "\u{E004}";

/// Whether the browser tests may be skipped: only when asked to, never by default (CI does
/// not ask, so a machine without Chromium fails them).
pub fn skipped() -> bool {
    if std::env::var_os("TOLLGATE_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("TOLLGATE_SKIP_BROWSER=1: browser test skipped");
        return true;
    }
    false
}

/// A chromedriver process on a free port, stopped when dropped.
pub struct Driver {
    child: Child,
    base: String,
    /// Chromium's home and temp directory: it writes a certificate store and caches under
    /// $HOME and a profile per session under $TMPDIR (`org.chromium.Chromium.*`), which must
    /// go when the test ends, not stay in the machine's /tmp.
    _home: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver and waits until it answers.
    pub fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = tempfile::tempdir().unwrap();
        let tmp = home.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("HOME", home.path())
            .env("TMPDIR", &tmp)
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .env("XDG_CACHE_HOME", home.path().join(".cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (Debian's chromium-driver; .ci/run installs it)");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _home: home,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut r) = super::agent().get(format!("{}/status", driver.base)).call() {
                let body = r.body_mut().read_to_string().unwrap_or_default();
                if body.contains("\"ready\":true") {
                    return driver;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("chromedriver did not become ready");
    }

    /// A new headless Chromium session with a window `width` × `height`.
    pub fn session(&self, width: u32, height: u32) -> Browser {
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chromium is installed (Debian's chromium; .ci/run installs it)");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", format!("--window-size={width},{height}")]
            }
        }}});
        let value = call(&self.base, "POST", "/session", Some(capabilities));
        let id = value["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Browser {
            base: format!("{}/session/{id}", self.base),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let url = format!("{base}{path}");
    let agent = super::agent();
    let response = match method {
        "GET" => agent.get(&url).call(),
        "DELETE" => agent.delete(&url).call(),
        _ => agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.unwrap_or_else(|| json!({})).to_string()),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(status < 400, "{method} {path}: {status} {text}");
    value["value"].clone()
}

/// One browser session; closed when dropped.
pub struct Browser {
    base: String,
}

/// An element of the page.
#[derive(Clone)]
pub struct Element {
    id: String,
}

impl Element {
    fn reference(&self) -> Value {
        json!({ ELEMENT: self.id })
    }
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(&self.base, method, path, body)
    }

    /// Opens `url`.
    pub fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The elements `css` selects, within `within` if given.
    pub fn all_in(&self, within: Option<&Element>, css: &str) -> Vec<Element> {
        let path = match within {
            Some(e) => format!("/element/{}/elements", e.id),
            None => "/elements".to_owned(),
        };
        let found = self.call(
            "POST",
            &path,
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Element {
                id: e[ELEMENT].as_str().unwrap().to_owned(),
            })
            .collect()
    }

    /// The elements `css` selects.
    pub fn all(&self, css: &str) -> Vec<Element> {
        self.all_in(None, css)
    }

    /// The one element `css` selects (the first), waiting up to 10 s for it.
    pub fn find(&self, css: &str) -> Element {
        self.wait_for(&format!("an element {css}"), || {
            self.all(css).into_iter().next()
        })
    }

    /// Waits up to 10 s for `check` to give something.
    pub fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = check() {
                return found;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The visible text of an element ("" when hidden).
    pub fn text(&self, e: &Element) -> String {
        self.call("GET", &format!("/element/{}/text", e.id), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether an element is displayed.
    pub fn displayed(&self, e: &Element) -> bool {
        self.call("GET", &format!("/element/{}/displayed", e.id), None)
            .as_bool()
            .unwrap_or(false)
    }

    /// An attribute or property of an element.
    pub fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        self.call("GET", &format!("/element/{}/attribute/{name}", e.id), None)
            .as_str()
            .map(str::to_owned)
    }

    /// Clicks an element.
    pub fn click(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/click", e.id), Some(json!({})));
    }

    /// Types `text` into an element.
    pub fn type_into(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &format!("/element/{}/value", e.id),
            Some(json!({ "text": text })),
        );
    }

    /// Runs `script` with an element as `arguments[0]`, returning its value.
    pub fn script(&self, script: &str, e: Option<&Element>) -> Value {
        let args = e.map_or_else(Vec::new, |e| vec![e.reference()]);
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Moves the mouse onto the middle of an element (hover).
    pub fn hover(&self, e: &Element) {
        self.call("POST", "/actions", Some(json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "duration": 0, "origin": e.reference(), "x": 0, "y": 0}]
        }]})));
    }

    /// Moves the mouse to the page's top left corner.
    pub fn hover_away(&self) {
        self.call("POST", "/actions", Some(json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "duration": 0, "origin": "viewport", "x": 1, "y": 1}]
        }]})));
    }

    /// Presses and releases a key (e.g. [`TAB`]) on whatever has the focus.
    pub fn press(&self, key: &str) {
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{
                "type": "key", "id": "keyboard",
                "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
            }]})),
        );
    }

    /// Sets the window size.
    pub fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// The height of the page's viewport.
    fn inner_height(&self) -> u32 {
        self.script("return window.innerHeight", None)
            .as_u64()
            .unwrap_or(0) as u32
    }

    /// Saves a screenshot of the page as a PNG file.
    pub fn screenshot(&self, path: &Path) {
        let data = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Saves a screenshot named `name`.png into $TOLLGATE_CONSOLE_SCREENSHOTS, when it is set
    /// (how docs/console/*.png are made).
    pub fn document(&self, name: &str) {
        if let Some(dir) = std::env::var_os("TOLLGATE_CONSOLE_SCREENSHOTS") {
            std::fs::create_dir_all(&dir).unwrap();
            // The whole page: the window grows to the page's height for the picture.
            let rect = self.call("GET", "/window/rect", None);
            let width = rect["width"].as_u64().unwrap() as u32;
            let height = rect["height"].as_u64().unwrap() as u32;
            let page = self
                .script("return document.documentElement.scrollHeight", None)
                .as_u64()
                .unwrap_or(u64::from(height)) as u32;
            self.resize(
                width,
                page.clamp(height, 2400) + height.saturating_sub(self.inner_height()),
            );
            self.screenshot(&Path::new(&dir).join(format!("{name}.png")));
            self.resize(width, height);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = super::agent().delete(&self.base).call();
    }
}
