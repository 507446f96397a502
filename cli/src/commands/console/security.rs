//! Who may use the console: the listen check, the access token, and the CSRF and same-origin
//! checks of every state-changing request.
//!
//! A console that lists every license and changes keys must not be reachable by anyone on the
//! network, nor driven by another web site the operator's browser has open: any address
//! beyond loopback needs a token, and every change is a POST whose form carries this server's
//! random CSRF token and whose `Origin` (or, failing that, `Referer`) is the console itself.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;
use crate::failure::Failure;

/// The cookie that carries the token once `/?token=T` was opened.
const COOKIE: &str = "tollgate_console";

/// The largest form body read (a license file is a few kilobytes).
const MAX_FORM: usize = 1 << 20;

/// Refuses a listen address beyond loopback without a token, and a token a cookie cannot carry;
/// returns the token to require.
pub fn check_listen(listen: SocketAddr, token: Option<&str>) -> Result<Option<String>, Failure> {
    match token {
        Some(token) if !valid_token(token) => Err(Failure::Usage {
            message: "--token (or TOLLGATE_CONSOLE_TOKEN) must be 1 to 256 printable ASCII characters without spaces, ';', ',', '\"' or '\\'".to_owned(),
        }),
        Some(token) => Ok(Some(token.to_owned())),
        None if listen.ip().is_loopback() => Ok(None),
        None => Err(Failure::Usage {
            message: format!(
                "--listen {listen} is not a loopback address: the console shows and changes every license, so beyond this machine it needs --token TOKEN (or TOLLGATE_CONSOLE_TOKEN)"
            ),
        }),
    }
}

fn valid_token(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'))
}

/// A fresh random token, 32 hex digits.
pub fn random_token() -> Result<String, Failure> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        Failure::refused("IO", format!("no randomness for the CSRF token: {e}"), None)
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The middleware in front of every route: the token, then for any method but GET and HEAD
/// the same-origin and CSRF checks; and headers that keep pages out of other sites' frames.
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = match checked(&app, request).await {
        Ok(request) => hide_codes_in(&app, next.run(request).await).await,
        Err(refusal) => refusal,
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn checked(app: &App, request: Request) -> Result<Request, Response> {
    match &app.token {
        Some(token) if !carries_token(request.headers(), token) => {
            return Err(token_from_query(&request, token).unwrap_or_else(unauthorized));
        }
        // Without a token only this machine is trusted, and a web page elsewhere could reach
        // the loopback port through a name it rebinds to 127.0.0.1 (DNS rebinding): such a
        // request names that host, not a loopback one.
        None if !loopback_host(request.headers()) => {
            return Err(forbidden(
                "this console serves loopback only: open it as http://127.0.0.1:PORT/ or http://localhost:PORT/, or start it with --token",
            ));
        }
        _ => {}
    }
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return Ok(request);
    }
    if !same_origin(request.headers()) {
        return Err(forbidden(
            "cross-site request refused: a change must come from a page of this console (its Origin or Referer must be this console)",
        ));
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| forbidden("the form is larger than 1 MiB"))?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
    if !csrf.is_some_and(|given| same_secret(given, &app.csrf)) {
        return Err(forbidden(
            "the form's CSRF token is missing or stale: reload the page and try again",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The HTML page `response` with every activation code the state holds masked, wherever it
/// appears: in a code field, an error, or inside a key id (the bundled activation service names
/// the keys it issues after their code). Other responses (assets, streams) pass unchanged; the
/// live stream masks its own events (`projects::stream`).
async fn hide_codes_in(app: &Arc<App>, response: Response) -> Response {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return internal_error();
    };
    let app = Arc::clone(app);
    let Ok(codes) = tokio::task::spawn_blocking(move || app.activation_codes()).await else {
        return internal_error();
    };
    let text = String::from_utf8_lossy(&bytes);
    let masked = hide_codes(&text, &codes);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(masked))
}

/// `text` with each of `codes` replaced by its mask (longest first, so a code that contains
/// another is masked whole).
pub fn hide_codes(text: &str, codes: &[String]) -> String {
    let mut codes: Vec<&String> = codes.iter().filter(|c| !c.is_empty()).collect();
    codes.sort_by_key(|c| std::cmp::Reverse(c.len()));
    let mut text = text.to_owned();
    for code in codes {
        if text.contains(code.as_str()) {
            text = text.replace(code.as_str(), &super::page::mask_code(code));
        }
    }
    text
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the page could not be read back to mask its activation codes",
    )
        .into_response()
}

/// Whether the request carries the token, as a bearer token or in the cookie.
fn carries_token(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(given.trim(), token));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == COOKIE && same_secret(value, token));
    bearer || cookie
}

/// `GET /any?token=T`: sets the cookie and redirects to the same address without the token,
/// so the token leaves the address bar and the history.
fn token_from_query(request: &Request, token: &str) -> Option<Response> {
    if request.method() != Method::GET {
        return None;
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(request.uri().query()?).ok()?;
    let given = fields.iter().find(|(k, _)| k == "token")?;
    if !same_secret(&given.1, token) {
        return None;
    }
    let rest: Vec<&(String, String)> = fields.iter().filter(|(k, _)| k != "token").collect();
    let query = serde_urlencoded::to_string(&rest).unwrap_or_default();
    let location = if query.is_empty() {
        request.uri().path().to_owned()
    } else {
        format!("{}?{query}", request.uri().path())
    };
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    Some(
        (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
        )
            .into_response(),
    )
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "401 Unauthorized: this console needs its token: send `Authorization: Bearer TOKEN`, or open /?token=TOKEN once in the browser\n",
    )
        .into_response()
}

fn forbidden(message: &str) -> Response {
    (StatusCode::FORBIDDEN, format!("403 Forbidden: {message}\n")).into_response()
}

/// Whether the `Host` the request was sent to is a loopback name or address.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // `name:port`, `v4:port` or `[v6]:port`; the port is the console's and not checked.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a state-changing request comes from this console's own pages: its `Origin`, or
/// without one its `Referer`, names the host the request was sent to. A request with
/// neither is refused: browsers send `Origin` with every POST.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // Plain http as served, or https where a proxy in front of the console ends TLS.
    let own = [format!("http://{host}"), format!("https://{host}")];
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(origin), _) => own.iter().any(|o| origin == o),
        (None, Some(referer)) => own
            .iter()
            .any(|o| referer == o || referer.starts_with(&format!("{o}/"))),
        (None, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_at_start() {
        let remote: SocketAddr = "0.0.0.0:8480".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8480".parse().unwrap();
        assert!(check_listen(remote, None).is_err());
        assert!(check_listen(local, None).unwrap().is_none());
        assert!(check_listen(remote, Some("s3cret")).unwrap().is_some());
        assert!(check_listen(local, Some("a b")).is_err());
        assert!(check_listen(local, Some("")).is_err());
    }

    #[test]
    fn origin_must_be_the_console() {
        let headers = |pairs: &[(header::HeaderName, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(name, HeaderValue::from_str(value).unwrap());
            }
            map
        };
        let host = (header::HOST, "127.0.0.1:9");
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:9")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example")
        ])));
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::REFERER, "http://127.0.0.1:9/licenses")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::REFERER, "http://127.0.0.1:99/")
        ])));
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "https://127.0.0.1:9")
        ])));
        assert!(!same_origin(&headers(&[host])));
    }

    #[test]
    fn without_a_token_only_loopback_hosts_are_served() {
        let host = |value: &str| {
            let mut map = HeaderMap::new();
            map.insert(header::HOST, HeaderValue::from_str(value).unwrap());
            map
        };
        for ok in [
            "127.0.0.1:8480",
            "localhost:8480",
            "LOCALHOST",
            "[::1]:8480",
            "127.9.9.9:1",
        ] {
            assert!(loopback_host(&host(ok)), "{ok}");
        }
        for bad in [
            "evil.example:8480",
            "10.0.0.1:8480",
            "[2001:db8::1]:8480",
            "localhost.evil.example",
        ] {
            assert!(!loopback_host(&host(bad)), "{bad}");
        }
        assert!(!loopback_host(&HeaderMap::new()));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
    }
}
