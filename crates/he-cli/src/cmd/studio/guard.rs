//! Who may talk to the studio: the page opened from the address it
//! printed, and nothing else on this machine or the web.
//!
//! Like Jupyter's notebook server: a random secret (32 bytes from the OS
//! CSPRNG) travels once in the printed URL (`/?token=...`), is swapped for
//! an `HttpOnly`, `SameSite=Strict` cookie and a redirect that drops it
//! from the address bar, and is checked on every request after that.
//! Besides, `Host` must be the loopback address and port the studio
//! listens on (a DNS-rebinding page has its own host name there), an
//! `Origin`, when sent, must be the studio's own, and a browser's
//! `Sec-Fetch-Site: cross-site` is refused. No CORS header is ever sent.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The secret and the addresses a request must match.
#[derive(Clone)]
pub(super) struct Guard {
    /// The secret, hex.
    secret: String,
    /// `127.0.0.1:PORT` (or `[::1]:PORT`): the only `Host` accepted.
    host: String,
    /// The cookie's name, with the port (cookies do not tell ports apart).
    cookie: String,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard with a fresh secret for the studio on `addr`.
    pub(super) fn new(addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
        Ok(Guard {
            secret: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            host: addr.to_string(),
            cookie: format!("he_studio_{}", addr.port()),
        })
    }

    /// The address to open: the page with the secret in it.
    pub(super) fn url(&self) -> String {
        format!("http://{}/?token={}", self.host, self.secret)
    }

    /// The `Cookie` header value that carries the secret (for tests).
    #[cfg(test)]
    pub(super) fn cookie(&self) -> String {
        format!("{}={}", self.cookie, self.secret)
    }

    /// The `Host` the studio answers to.
    #[cfg(test)]
    pub(super) fn host(&self) -> &str {
        &self.host
    }

    /// Why a request is refused, or `None`.
    fn refuse(&self, headers: &HeaderMap) -> Option<&'static str> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if !host.is_some_and(|h| h.eq_ignore_ascii_case(&self.host)) {
            return Some(
                "this studio answers only to the loopback address it printed (Host header)",
            );
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let own = format!("http://{}", self.host);
            if !origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(&own)) {
                return Some("requests from other sites are refused (Origin header)");
            }
        }
        if headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site")
        {
            return Some("requests from other sites are refused (Sec-Fetch-Site header)");
        }
        None
    }

    /// Whether the request carries the secret in its cookie.
    fn has_cookie(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == self.cookie && same(v.as_bytes(), self.secret.as_bytes()))
    }

    /// Whether the query has `token=SECRET`.
    fn has_token(&self, query: Option<&str>) -> bool {
        query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| k == "token" && same(v.as_bytes(), self.secret.as_bytes()))
    }
}

/// Equality in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn forbidden(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "Forbidden: {why}.\nOpen the address `he studio` printed (with ?token=...) in this browser.\n"
        ),
    )
        .into_response()
}

/// The middleware: refuses what [`Guard`] refuses with `403`, swaps the
/// URL's secret for the cookie, and sets the headers every answer
/// carries (no caching, no sniffing, no framing, scripts and styles from
/// the studio only).
pub(super) async fn check(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if let Some(why) = guard.refuse(req.headers()) {
        return forbidden(why);
    }
    let mut resp = if req.method() == Method::GET
        && req.uri().path() == "/"
        && guard.has_token(req.uri().query())
    {
        let cookie = format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            guard.cookie, guard.secret
        );
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    } else if guard.has_cookie(req.headers()) {
        next.run(req).await
    } else {
        return forbidden("the studio's secret is missing or wrong");
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    resp
}
