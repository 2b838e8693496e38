//! The endpoints of the API, one request each: [`Client`] and its
//! connection settings, health, info, submit, status, result, delete.
//! Retries and the whole exchange of a job are built on these
//! (`retry.rs`, `job.rs`).

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use enc_image::{EncryptedImage, Progress};
use paillier::PublicKey;
use serde::de::DeserializeOwned;
use ureq::http::Response;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Body, SendBody};

use super::error::{Error, Result};
use super::notice::{Notice, NoticeFn};
use super::options::ClientOptions;
use crate::wire::{Envelope, ErrorBody, Health, JOB_CONTENT_TYPE, JobSpec, JobStatus, ServiceInfo};

/// Largest JSON answer read.
const MAX_JSON: u64 = 1 << 20;

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    pub(super) base: String,
    pub(super) agent: Agent,
    pub(super) max_result_bytes: u64,
    pub(super) options: ClientOptions,
    pub(super) notice: NoticeFn,
    /// The API token sent as `Authorization: Bearer`, if any.
    token: Option<Arc<str>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("options", &self.options)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The answer about a job: what was asked for, or "no such job" (`404`)
/// with the instance id of the server that said so.
pub(super) enum Step<T> {
    /// What was asked for.
    Got(T),
    /// The server does not know the job.
    Gone {
        /// The instance id in the `404`'s body, if there was one.
        instance: Option<String>,
        /// The `404`'s message.
        message: String,
    },
}

impl<T> Step<T> {
    /// For the single-step methods: "no such job" is an error.
    pub(super) fn or_404(self) -> Result<T> {
        match self {
            Step::Got(v) => Ok(v),
            Step::Gone { message, .. } => Err(Error::Server {
                status: 404,
                message,
            }),
        }
    }
}

/// Reads a byte slice, reporting progress (the upload bar).
struct ProgressReader<'a> {
    pub(super) data: &'a [u8],
    pub(super) progress: &'a dyn Progress,
}

impl Read for ProgressReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Small pieces, so that the bar moves smoothly.
        let n = buf.len().min(self.data.len()).min(64 * 1024);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// The message and the server instance of an error answer.
fn error_body(resp: &mut Response<Body>) -> (String, Option<String>) {
    let text = resp
        .body_mut()
        .with_config()
        .limit(MAX_JSON)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(b) => (b.error, b.instance),
        Err(_) => (plain_message(resp.status(), &text), None),
    }
}

/// The message of an error answer that is not the service's JSON (a
/// proxy's page, say): its first line of text, at most 200 characters,
/// or the status's reason for an HTML page or an empty body.
fn plain_message(status: ureq::http::StatusCode, text: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("error");
    let line = text.trim().lines().next().unwrap_or("").trim();
    if line.is_empty() || line.starts_with('<') {
        return format!("{reason} (not from the service: a proxy in front of it?)");
    }
    line.chars().take(200).collect()
}

/// Turns an error answer into [`Error::Server`] with the server's message
/// ([`Error::Unauthorized`] for a `401`).
pub(super) fn check(mut resp: Response<Body>) -> Result<Response<Body>> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let (message, _) = error_body(&mut resp);
    if status == 401 {
        return Err(Error::Unauthorized { message });
    }
    Err(Error::Server {
        status: status.as_u16(),
        message,
    })
}

/// As [`check`], but a `404` about a job is [`Step::Gone`], with the
/// instance of the server that said so.
pub(super) fn check_job(mut resp: Response<Body>) -> Result<Step<Response<Body>>> {
    if resp.status() == 404 {
        let (message, instance) = error_body(&mut resp);
        return Ok(Step::Gone { instance, message });
    }
    check(resp).map(Step::Got)
}

pub(super) fn json<T: DeserializeOwned>(mut resp: Response<Body>) -> Result<T> {
    let text = resp
        .body_mut()
        .with_config()
        .limit(MAX_JSON)
        .read_to_string()?;
    serde_json::from_str(&text).map_err(|e| Error::Protocol(format!("{e} in {text:.200}")))
}

/// Reads an encrypted image of at most `max_bytes` from `resp`, whole,
/// reporting the download in bytes: a larger announced length is refused
/// without reading, a longer body is cut, and a body that ends before its
/// announced length is an error, never a partial result.
pub(super) fn read_bounded(
    resp: &mut Response<Body>,
    max_bytes: u64,
    progress: &dyn Progress,
) -> Result<Vec<u8>> {
    let len = resp.body().content_length();
    if let Some(n) = len.filter(|&n| n > max_bytes) {
        return Err(Error::Protocol(format!(
            "the server announced a result of {n} bytes; a result of this job is at most \
             {max_bytes}: refused without reading it"
        )));
    }
    progress.start(enc_image::Phase::Download, len.unwrap_or(0));
    let mut reader = resp.body_mut().with_config().limit(max_bytes).reader();
    let mut out = Vec::with_capacity(len.unwrap_or(0).min(max_bytes) as usize);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        progress.advance(n as u64);
    }
    if let Some(len) = len.filter(|&n| n != out.len() as u64) {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the download ended after {} of {len} bytes", out.len()),
        )));
    }
    progress.finish();
    Ok(out)
}

/// The CAs in `ca_pem`, or the system's roots.
fn roots(ca_pem: Option<&[u8]>) -> Result<RootCerts> {
    let Some(pem) = ca_pem else {
        return Ok(RootCerts::PlatformVerifier);
    };
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(Error::Options(format!("CA certificates: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(Error::Options(
            "CA certificates: no CERTIFICATE block in the PEM given".into(),
        ));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// Whether a `http://HOST[:PORT]` URL names a loopback host (`localhost`,
/// `127.0.0.0/8`, `[::1]`).
fn loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    /// A client of the server at `base_url` (`http://HOST:PORT` or
    /// `https://HOST:PORT`), with the default [`ClientOptions`].
    pub fn new(base_url: &str) -> Result<Self> {
        Self::with_options(base_url, ClientOptions::default())
    }

    /// A client of the server at `base_url` with its own timeouts and retries.
    pub fn with_options(base_url: &str, options: ClientOptions) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(Error::Options(format!(
                "server URL {base_url:?} must start with http:// or https://"
            )));
        }
        if options.attempts == 0 || options.io_timeout.is_zero() {
            return Err(Error::Options(
                "at least one attempt and a positive I/O timeout are needed".into(),
            ));
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_per_read(Some(options.io_timeout))
            .timeout_per_write(Some(options.io_timeout))
            .tls_config(
                TlsConfig::builder()
                    .provider(TlsProvider::Rustls)
                    .root_certs(roots(options.ca_pem.as_deref())?)
                    .build(),
            )
            .build()
            .into();
        Ok(Client {
            base,
            agent,
            max_result_bytes: 4 << 30,
            options,
            notice: Arc::new(|n: &Notice| eprintln!("he-service client: {n}")),
            token: None,
        })
    }

    /// Sends `token` as `Authorization: Bearer TOKEN` with every request
    /// (a server started with a tokens file needs one). A token is a
    /// reusable credential: it is refused ([`Error::Options`]) for a plain
    /// `http://` server other than loopback, where anyone on the way could
    /// read it; use `https://`.
    pub fn with_token(mut self, token: &str) -> Result<Self> {
        if self.base.starts_with("http://") && !loopback_url(&self.base) {
            return Err(Error::Options(format!(
                "an API token would cross the network in clear to {}: use https://",
                self.base
            )));
        }
        self.token = Some(Arc::from(token.trim()));
        Ok(self)
    }

    /// The `Authorization` header's value, if the client has a token.
    pub(super) fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// Reports what the client does by itself to get past faults (retries,
    /// resubmissions) to `f` instead of standard error.
    #[must_use]
    pub fn on_notice(mut self, f: impl Fn(&Notice) + Send + Sync + 'static) -> Self {
        self.notice = Arc::new(f);
        self
    }

    /// The timeouts and retries.
    #[must_use]
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The server's base URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with at most `limit` for the whole exchange (the rest of a
    /// deadline), on top of the per-read and per-write timeouts.
    pub(super) fn get(
        &self,
        path: &str,
        limit: Option<Duration>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let mut req = self.agent.get(self.url(path));
        if let Some(a) = self.authorization() {
            req = req.header("authorization", a);
        }
        match limit {
            Some(d) => req.config().timeout_global(Some(d)).build(),
            None => req,
        }
    }

    /// Sends `body` (`content_type`) with `req` (a `POST` or a `PUT`),
    /// with the token and within `limit`, reporting the upload in bytes
    /// (phase `"upload"`). The request says `Expect: 100-continue`: the
    /// server admits or refuses (`413`, `415`, `503`) before the body is
    /// sent, so a refusal is read as such instead of breaking the upload
    /// midway. One try.
    pub(super) fn send_body(
        &self,
        mut req: ureq::RequestBuilder<ureq::typestate::WithBody>,
        content_type: &str,
        body: &[u8],
        progress: &dyn Progress,
        limit: Option<Duration>,
    ) -> Result<Response<Body>> {
        progress.start(enc_image::Phase::Upload, body.len() as u64);
        let mut reader = ProgressReader {
            data: body,
            progress,
        };
        if let Some(a) = self.authorization() {
            req = req.header("authorization", a);
        }
        if let Some(d) = limit {
            req = req.config().timeout_global(Some(d)).build();
        }
        let resp = req
            .header("content-type", content_type)
            .header("content-length", body.len().to_string())
            .header("expect", "100-continue")
            .send(SendBody::from_reader(&mut reader))?;
        progress.finish();
        Ok(resp)
    }

    /// `GET /v1/health`.
    pub fn health(&self) -> Result<Health> {
        json(check(self.get("/v1/health", None).call()?)?)
    }

    /// `GET /v1/info`: the filters and limits the server supports.
    pub fn info(&self) -> Result<ServiceInfo> {
        json(check(self.get("/v1/info", None).call()?)?)
    }

    /// [`Client::info`] within `limit` for the whole exchange. One try: a
    /// server that is not there is an error at once. A server that takes
    /// the connection and stays silent is [`Error::Deadline`] after
    /// `limit`, or after the I/O timeout if that comes first.
    pub fn info_within(&self, limit: Duration) -> Result<ServiceInfo> {
        let doing = "asking for its filters and limits";
        let asked = self
            .get("/v1/info", Some(limit))
            .call()
            .map_err(Error::from)
            .and_then(check)
            .and_then(json);
        let gave_up = |after, last| Error::gave_up(&self.base, doing, after, last);
        asked.map_err(|e| match e {
            Error::Http(ureq::Error::Timeout(ureq::Timeout::Global)) => {
                gave_up(limit, "no answer".into())
            }
            Error::Http(ureq::Error::Timeout(ureq::Timeout::PerRead)) => {
                let silent = self.options.io_timeout;
                gave_up(silent, format!("silent for {} s", silent.as_secs()))
            }
            e => e,
        })
    }

    /// `POST /v1/jobs` with an encoded [`Envelope`], reporting the upload
    /// in bytes (phase `"upload"`). One try: [`Client::run_job`] retries.
    ///
    /// The request says `Expect: 100-continue`: the server admits or
    /// refuses (`413`, `415`, `503`) before the body is sent, so a refusal
    /// is read as such instead of breaking the upload midway.
    pub fn submit_envelope(&self, envelope: &[u8], progress: &dyn Progress) -> Result<JobStatus> {
        self.submit_within(envelope, progress, None)
    }

    pub(super) fn submit_within(
        &self,
        envelope: &[u8],
        progress: &dyn Progress,
        limit: Option<Duration>,
    ) -> Result<JobStatus> {
        let req = self.agent.post(self.url("/v1/jobs"));
        json(check(self.send_body(
            req,
            JOB_CONTENT_TYPE,
            envelope,
            progress,
            limit,
        )?)?)
    }

    /// Submits a job: the public key, the filter chain and the encrypted image.
    pub fn submit(
        &self,
        pk: &PublicKey,
        spec: &JobSpec,
        image: &EncryptedImage,
        progress: &dyn Progress,
    ) -> Result<JobStatus> {
        let envelope = Envelope::encode(spec, &pk.to_bytes(), &image.to_bytes());
        self.submit_envelope(&envelope, progress)
    }

    /// `GET /v1/jobs/{id}?wait=S`: the server answers when the job finishes
    /// or after `wait` (at most its `max_wait`), whichever comes first.
    pub fn status(&self, id: &str, wait: Duration) -> Result<JobStatus> {
        self.status_within(id, wait, None)?.or_404()
    }

    pub(super) fn status_within(
        &self,
        id: &str,
        wait: Duration,
        limit: Option<Duration>,
    ) -> Result<Step<JobStatus>> {
        let path = format!("/v1/jobs/{id}?wait={}", wait.as_secs_f64());
        // The server is silent while it holds the request.
        let req = self
            .get(&path, limit)
            .config()
            .timeout_per_read(Some(self.options.io_timeout + wait))
            .build();
        match check_job(req.call()?)? {
            Step::Got(resp) => Ok(Step::Got(json(resp)?)),
            Step::Gone { instance, message } => Ok(Step::Gone { instance, message }),
        }
    }

    /// `GET /v1/jobs/{id}/result`: the encrypted result's bytes, reporting
    /// the download in bytes (phase `"download"`). One try: a download cut
    /// midway is an error, never a partial result.
    pub fn result(&self, id: &str, progress: &dyn Progress) -> Result<Vec<u8>> {
        self.result_within(id, progress, None, self.max_result_bytes)?
            .or_404()
    }

    pub(super) fn result_within(
        &self,
        id: &str,
        progress: &dyn Progress,
        limit: Option<Duration>,
        max_bytes: u64,
    ) -> Result<Step<Vec<u8>>> {
        let max_bytes = max_bytes.min(self.max_result_bytes);
        let mut resp = match check_job(self.get(&format!("/v1/jobs/{id}/result"), limit).call()?)? {
            Step::Got(resp) => resp,
            Step::Gone { instance, message } => return Ok(Step::Gone { instance, message }),
        };
        read_bounded(&mut resp, max_bytes, progress).map(Step::Got)
    }

    /// `DELETE /v1/jobs/{id}`: frees the result on the server, or stops
    /// the job if it is still queued or running.
    pub fn delete(&self, id: &str) -> Result<()> {
        let mut req = self.agent.delete(self.url(&format!("/v1/jobs/{id}")));
        if let Some(a) = self.authorization() {
            req = req.header("authorization", a);
        }
        check(req.call()?)?;
        Ok(())
    }
}

#[cfg(test)]
mod message_tests {
    use super::plain_message;
    use ureq::http::StatusCode;

    #[test]
    fn a_proxy_page_is_named_not_pasted() {
        let page =
            "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>...</body>\n</html>\n";
        assert_eq!(
            plain_message(StatusCode::BAD_GATEWAY, page),
            "Bad Gateway (not from the service: a proxy in front of it?)"
        );
        assert_eq!(
            plain_message(StatusCode::SERVICE_UNAVAILABLE, ""),
            "Service Unavailable (not from the service: a proxy in front of it?)"
        );
        let long = format!("upstream said no\n{}", "x".repeat(500));
        assert_eq!(
            plain_message(StatusCode::BAD_GATEWAY, &long),
            "upstream said no"
        );
        assert_eq!(
            plain_message(StatusCode::BAD_GATEWAY, &"y".repeat(500)).len(),
            200
        );
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn a_token_never_goes_in_clear_beyond_loopback() {
        for ok in [
            "http://127.0.0.1:8787",
            "http://localhost:1",
            "http://[::1]:8787/",
            "https://example.org",
            "https://10.0.0.1:8443",
        ] {
            assert!(Client::new(ok).unwrap().with_token("t").is_ok(), "{ok}");
        }
        for bad in [
            "http://example.org",
            "http://10.0.0.1:8787",
            "http://127.0.0.1.example.org",
            "http://user@example.org:80",
        ] {
            let e = Client::new(bad).unwrap().with_token("t").unwrap_err();
            assert!(e.to_string().contains("https://"), "{bad}: {e}");
        }
    }
}
