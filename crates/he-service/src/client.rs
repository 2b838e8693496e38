//! A blocking client of the API, on `ureq` (plain HTTP: for anything but
//! loopback, the server belongs behind a TLS-terminating reverse proxy,
//! and the client would then need ureq's `rustls` feature).
//!
//! # Faults
//!
//! [`Client::run_job`] (and [`Client::filter`] on top of it) carries a job
//! through a slow, dead or restarting server:
//!
//! - every request has a connect timeout and a per-read and per-write
//!   timeout ([`ClientOptions`]), and the whole exchange a deadline;
//! - a refused, reset or timed-out connection while waiting for a job is
//!   retried with backoff until the deadline (the server may be restarting);
//! - an upload or a download cut midway is retried, at most
//!   [`ClientOptions::transfer_retries`] times;
//! - a job the server no longer knows, answered by another server instance
//!   (the server restarted: jobs live in its memory), is submitted again
//!   from the bytes the client still holds, at most
//!   [`ClientOptions::attempts`] times in all. A `404` from the same
//!   instance (the job expired or was deleted) is an error, not a restart.
//!
//! Each of these is reported as a [`Notice`] (on standard error unless
//! [`Client::on_notice`] says otherwise). Nothing the caller gave is
//! changed, and a result is only returned whole: a cut download is
//! fetched again, never returned in part.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use enc_image::{EncryptedImage, Limits, Phase, Progress};
use paillier::PublicKey;
use serde::de::DeserializeOwned;
use ureq::http::Response;
use ureq::{Agent, Body, SendBody};

use crate::error::{Error, Result};
use crate::wire::{
    Envelope, ErrorBody, Health, JOB_CONTENT_TYPE, JobSpec, JobState, JobStatus, ServiceInfo,
};

/// Largest JSON answer read.
const MAX_JSON: u64 = 1 << 20;

/// How long one status request asks the server to hold it (long poll), so
/// that progress is reported about twice a second.
const POLL: Duration = Duration::from_millis(500);

/// How the client copes with a slow, dead or restarting server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Longest wait for a TCP connection (default 10 s).
    pub connect_timeout: Duration,
    /// Longest silence on a connection: one read or one write (default
    /// 60 s). A server that accepts but never answers fails the request
    /// after this.
    pub io_timeout: Duration,
    /// Submissions of one job in all, the first included, when the server
    /// restarts and loses it (default 3).
    pub attempts: u32,
    /// Retries of one upload or download cut midway (default 3).
    pub transfer_retries: u32,
    /// First pause before a retry, doubled after each (default 250 ms).
    pub backoff: Duration,
    /// Longest pause before a retry (default 5 s).
    pub max_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(60),
            attempts: 3,
            transfer_retries: 3,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Something the client did by itself to get past a fault, reported to
/// the callback of [`Client::on_notice`] (by default, on standard error).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The server restarted and no longer knows the job: it is submitted
    /// again.
    JobLost {
        /// The lost job's id.
        job: String,
        /// The instance that had accepted it.
        before: String,
        /// The instance answering now.
        after: String,
        /// The submission about to be made (2 for the first resubmission).
        attempt: u32,
        /// Submissions allowed in all.
        attempts: u32,
    },
    /// A request failed on the way (refused, reset, cut, timed out) and is
    /// tried again after a pause.
    Retry {
        /// What was being done ("uploading the job", ...).
        doing: String,
        /// What went wrong.
        error: String,
        /// The retry about to be made, from 1.
        retry: u32,
        /// The most retries allowed, or `None` for "until the deadline".
        limit: Option<u32>,
        /// The pause before it.
        pause: Duration,
    },
    /// The result was fetched, but deleting it on the server failed: it
    /// stays there until it expires.
    NotDeleted {
        /// The job's id.
        job: String,
        /// What went wrong.
        error: String,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::JobLost {
                job,
                before,
                after,
                attempt,
                attempts,
            } => write!(
                f,
                "server restarted (instance {before} -> {after}), job {job} lost; \
                 resubmitting, attempt {attempt} of {attempts}"
            ),
            Notice::Retry {
                doing,
                error,
                retry,
                limit,
                pause,
            } => {
                write!(
                    f,
                    "{doing}: {error}; retrying in {:.2} s (",
                    pause.as_secs_f64()
                )?;
                match limit {
                    Some(n) => write!(f, "retry {retry} of {n})"),
                    None => write!(f, "retry {retry}, until the deadline)"),
                }
            }
            Notice::NotDeleted { job, error } => write!(
                f,
                "the result of job {job} stays on the server until it expires: {error}"
            ),
        }
    }
}

type NoticeFn = Arc<dyn Fn(&Notice) + Send + Sync>;

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: Agent,
    max_result_bytes: u64,
    options: ClientOptions,
    notice: NoticeFn,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What [`Client::run_job`] brought back, and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRun {
    /// The final status of the job whose result was fetched.
    pub status: JobStatus,
    /// The encrypted result's bytes, whole (not yet loaded or checked).
    pub result: Vec<u8>,
    /// Submissions made: 1, or more if the server restarted and lost the job.
    pub attempts: u32,
    /// Requests retried after a refused, reset, cut or timed-out connection.
    pub retries: u32,
    /// Time spent uploading (every attempt, retries included).
    pub upload: Duration,
    /// Time spent waiting for the job to finish (every attempt).
    pub wait: Duration,
    /// Time spent downloading the result (retries included).
    pub download: Duration,
}

/// The answer about a job: what was asked for, or "no such job" (`404`)
/// with the instance id of the server that said so.
enum Step<T> {
    Got(T),
    Gone {
        instance: Option<String>,
        message: String,
    },
}

impl<T> Step<T> {
    /// For the single-step methods: "no such job" is an error.
    fn or_404(self) -> Result<T> {
        match self {
            Step::Got(v) => Ok(v),
            Step::Gone { message, .. } => Err(Error::Server {
                status: 404,
                message,
            }),
        }
    }
}

/// The overall deadline of an exchange.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    fn after(total: Duration) -> Self {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// Why a request failed, if retrying may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing answers (connection refused, connect timeout): the server
    /// may be restarting.
    Unreachable,
    /// The connection broke or went silent during the exchange.
    Cut,
}

fn fault(e: &Error) -> Option<Fault> {
    use std::io::ErrorKind;
    match e {
        Error::Http(ureq::Error::ConnectionFailed | ureq::Error::HostNotFound)
        | Error::Http(ureq::Error::Timeout(ureq::Timeout::Connect)) => Some(Fault::Unreachable),
        Error::Http(ureq::Error::Io(io)) | Error::Io(io) => {
            Some(if io.kind() == ErrorKind::ConnectionRefused {
                Fault::Unreachable
            } else {
                Fault::Cut
            })
        }
        Error::Http(
            ureq::Error::Timeout(_) | ureq::Error::Protocol(_) | ureq::Error::BodyStalled,
        ) => Some(Fault::Cut),
        _ => None,
    }
}

/// Reads a byte slice, reporting progress (the upload bar).
struct ProgressReader<'a> {
    data: &'a [u8],
    progress: &'a dyn Progress,
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
        Err(_) => (text, None),
    }
}

/// Turns an error answer into [`Error::Server`] with the server's message.
fn check(mut resp: Response<Body>) -> Result<Response<Body>> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let (message, _) = error_body(&mut resp);
    Err(Error::Server {
        status: status.as_u16(),
        message,
    })
}

/// As [`check`], but a `404` about a job is [`Step::Gone`], with the
/// instance of the server that said so.
fn check_job(mut resp: Response<Body>) -> Result<Step<Response<Body>>> {
    if resp.status() == 404 {
        let (message, instance) = error_body(&mut resp);
        return Ok(Step::Gone { instance, message });
    }
    check(resp).map(Step::Got)
}

fn json<T: DeserializeOwned>(mut resp: Response<Body>) -> Result<T> {
    let text = resp
        .body_mut()
        .with_config()
        .limit(MAX_JSON)
        .read_to_string()?;
    serde_json::from_str(&text).map_err(|e| Error::Protocol(format!("{e} in {text:.200}")))
}

impl Client {
    /// A client of the server at `base_url` (`http://HOST:PORT`), with the
    /// default [`ClientOptions`].
    pub fn new(base_url: &str) -> Result<Self> {
        Self::with_options(base_url, ClientOptions::default())
    }

    /// A client of the server at `base_url` with its own timeouts and retries.
    pub fn with_options(base_url: &str, options: ClientOptions) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(Error::Config(format!(
                "server URL {base_url:?} must start with http:// (TLS belongs in a reverse proxy)"
            )));
        }
        if options.attempts == 0 || options.io_timeout.is_zero() {
            return Err(Error::Config(
                "at least one attempt and a positive I/O timeout are needed".into(),
            ));
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_per_read(Some(options.io_timeout))
            .timeout_per_write(Some(options.io_timeout))
            .build()
            .into();
        Ok(Client {
            base,
            agent,
            max_result_bytes: 4 << 30,
            options,
            notice: Arc::new(|n: &Notice| eprintln!("he-service client: {n}")),
        })
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with at most `limit` for the whole exchange (the rest of a
    /// deadline), on top of the per-read and per-write timeouts.
    fn get(
        &self,
        path: &str,
        limit: Option<Duration>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let req = self.agent.get(self.url(path));
        match limit {
            Some(d) => req.config().timeout_global(Some(d)).build(),
            None => req,
        }
    }

    /// `GET /v1/health`.
    pub fn health(&self) -> Result<Health> {
        json(check(self.get("/v1/health", None).call()?)?)
    }

    /// `GET /v1/info`: the filters and limits the server supports.
    pub fn info(&self) -> Result<ServiceInfo> {
        json(check(self.get("/v1/info", None).call()?)?)
    }

    /// `POST /v1/jobs` with an encoded [`Envelope`], reporting the upload
    /// in bytes (phase [`Phase::Upload`]). One try: [`Client::run_job`] retries.
    ///
    /// The request says `Expect: 100-continue`: the server admits or
    /// refuses (`413`, `415`, `503`) before the body is sent, so a refusal
    /// is read as such instead of breaking the upload midway.
    pub fn submit_envelope(&self, envelope: &[u8], progress: &dyn Progress) -> Result<JobStatus> {
        self.submit_within(envelope, progress, None)
    }

    fn submit_within(
        &self,
        envelope: &[u8],
        progress: &dyn Progress,
        limit: Option<Duration>,
    ) -> Result<JobStatus> {
        progress.start(Phase::Upload, envelope.len() as u64);
        let mut reader = ProgressReader {
            data: envelope,
            progress,
        };
        let mut req = self.agent.post(self.url("/v1/jobs"));
        if let Some(d) = limit {
            req = req.config().timeout_global(Some(d)).build();
        }
        let resp = req
            .header("content-type", JOB_CONTENT_TYPE)
            .header("content-length", envelope.len().to_string())
            .header("expect", "100-continue")
            .send(SendBody::from_reader(&mut reader))?;
        progress.finish();
        json(check(resp)?)
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

    fn status_within(
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

    /// Waits until the job finishes (at most `timeout`), reporting the
    /// server's progress in ciphertexts (phase [`Phase::Filter`]). Returns the
    /// final status, `done` or `failed`. A refused or cut connection is
    /// retried until the deadline; a job the server does not know is
    /// [`Error::Server`] `404`.
    pub fn wait(&self, id: &str, progress: &dyn Progress, timeout: Duration) -> Result<JobStatus> {
        let mut retries = 0;
        self.wait_until(id, progress, &Deadline::after(timeout), &mut retries)?
            .or_404()
    }

    fn wait_until(
        &self,
        id: &str,
        progress: &dyn Progress,
        deadline: &Deadline,
        retries: &mut u32,
    ) -> Result<Step<JobStatus>> {
        let doing = format!("waiting for job {id} to finish");
        let (mut total, mut done) = (0, 0);
        loop {
            let st = match self.retrying(deadline, &doing, false, retries, |limit| {
                self.status_within(id, POLL.min(limit), Some(limit))
            })? {
                Step::Got(st) => st,
                gone => return Ok(gone),
            };
            if st.progress_total != total {
                total = st.progress_total;
                progress.start(Phase::Filter, total);
                done = 0;
            }
            progress.advance(st.progress_done.saturating_sub(done));
            done = done.max(st.progress_done);
            if st.state.is_finished() {
                progress.finish();
                return Ok(Step::Got(st));
            }
            if deadline.remaining().is_zero() {
                return Err(self.deadline_error(
                    deadline,
                    &doing,
                    format!(
                        "the job is still {}, {} of {} ciphertexts of work done",
                        if st.state == JobState::Queued {
                            "queued"
                        } else {
                            "running"
                        },
                        st.progress_done,
                        st.progress_total
                    ),
                ));
            }
        }
    }

    /// `GET /v1/jobs/{id}/result`: the encrypted result's bytes, reporting
    /// the download in bytes (phase [`Phase::Download`]). One try: a download cut
    /// midway is an error, never a partial result.
    pub fn result(&self, id: &str, progress: &dyn Progress) -> Result<Vec<u8>> {
        self.result_within(id, progress, None)?.or_404()
    }

    fn result_within(
        &self,
        id: &str,
        progress: &dyn Progress,
        limit: Option<Duration>,
    ) -> Result<Step<Vec<u8>>> {
        let mut resp = match check_job(self.get(&format!("/v1/jobs/{id}/result"), limit).call()?)? {
            Step::Got(resp) => resp,
            Step::Gone { instance, message } => return Ok(Step::Gone { instance, message }),
        };
        let len = resp.body().content_length();
        progress.start(Phase::Download, len.unwrap_or(0));
        let mut reader = resp
            .body_mut()
            .with_config()
            .limit(self.max_result_bytes)
            .reader();
        let mut out = Vec::with_capacity(len.unwrap_or(0).min(self.max_result_bytes) as usize);
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
        Ok(Step::Got(out))
    }

    /// `DELETE /v1/jobs/{id}`: frees the result on the server.
    pub fn delete(&self, id: &str) -> Result<()> {
        check(
            self.agent
                .delete(self.url(&format!("/v1/jobs/{id}")))
                .call()?,
        )?;
        Ok(())
    }

    fn deadline_error(&self, deadline: &Deadline, doing: &str, last: String) -> Error {
        Error::Deadline {
            server: self.base.clone(),
            doing: doing.to_string(),
            seconds: deadline.total.as_secs(),
            last,
        }
    }

    /// Runs `f` with the time left, retrying what retrying may cure: a
    /// server that does not answer, until the deadline; a connection cut
    /// during the exchange, until the deadline if `bounded` is false,
    /// else at most `transfer_retries` times. Pauses grow from `backoff`
    /// to `max_backoff`; each retry is a [`Notice::Retry`].
    fn retrying<T>(
        &self,
        deadline: &Deadline,
        doing: &str,
        bounded: bool,
        retries: &mut u32,
        mut f: impl FnMut(Duration) -> Result<T>,
    ) -> Result<T> {
        let (mut cuts, mut tries) = (0, 0);
        let mut pause = self.options.backoff;
        loop {
            let limit = deadline.remaining();
            if limit.is_zero() {
                return Err(self.deadline_error(deadline, doing, "no time left".into()));
            }
            let e = match f(limit) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(kind) = fault(&e) else {
                return Err(e);
            };
            let limited = bounded && kind == Fault::Cut;
            if limited {
                cuts += 1;
                if cuts > self.options.transfer_retries {
                    return Err(Error::Retries {
                        server: self.base.clone(),
                        doing: doing.to_string(),
                        tries: cuts,
                        last: e.to_string(),
                    });
                }
            }
            if deadline.remaining() <= pause {
                return Err(self.deadline_error(deadline, doing, e.to_string()));
            }
            tries += 1;
            (self.notice)(&Notice::Retry {
                doing: doing.to_string(),
                error: e.to_string(),
                retry: if limited { cuts } else { tries },
                limit: limited.then_some(self.options.transfer_retries),
                pause,
            });
            // A backoff between tries: the server may be restarting.
            std::thread::sleep(pause);
            *retries += 1;
            pause = (pause * 2).min(self.options.max_backoff);
        }
    }

    /// A job the server answered `404` for: the instance now answering if
    /// the server restarted (the job was lost), else the `404` as an error.
    fn lost(
        &self,
        job: &JobStatus,
        instance: Option<String>,
        message: String,
        deadline: &Deadline,
        retries: &mut u32,
    ) -> Result<String> {
        let now = match instance {
            Some(i) => i,
            None => {
                self.retrying(
                    deadline,
                    "asking the server for its instance",
                    false,
                    retries,
                    |limit| json::<Health>(check(self.get("/v1/health", Some(limit)).call()?)?),
                )?
                .instance
            }
        };
        if !job.instance.is_empty() && !now.is_empty() && now != job.instance {
            return Ok(now);
        }
        let why = if now.is_empty() || job.instance.is_empty() {
            "the server does not say whether it restarted".to_string()
        } else {
            format!(
                "same server instance {now}: the job expired or was deleted, it was not lost in a restart"
            )
        };
        Err(Error::Server {
            status: 404,
            message: format!("{message} ({why})"),
        })
    }

    /// The whole exchange for an encoded [`Envelope`], within `timeout`:
    /// submit, wait, download the result whole, delete it on the server.
    /// Rides out faults as the [module documentation](self) says:
    /// resubmits from `envelope` if the server restarts and loses the job,
    /// retries refused and cut connections, and gives up with
    /// [`Error::Deadline`] naming the server and what it was waiting for
    /// when `timeout` has passed. A failed job is [`Error::Server`] `422`.
    pub fn run_job(
        &self,
        envelope: &[u8],
        progress: &dyn Progress,
        timeout: Duration,
    ) -> Result<JobRun> {
        let deadline = Deadline::after(timeout);
        let mut retries = 0;
        let (mut upload, mut wait, mut download) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut attempt = 1;
        loop {
            let t = Instant::now();
            let job = self.retrying(
                &deadline,
                "uploading the job",
                true,
                &mut retries,
                |limit| self.submit_within(envelope, progress, Some(limit)),
            )?;
            upload += t.elapsed();
            let t = Instant::now();
            let step = self.wait_until(&job.id, progress, &deadline, &mut retries)?;
            wait += t.elapsed();
            let (instance, message) = match step {
                Step::Got(st) if st.state == JobState::Failed => {
                    return Err(Error::Server {
                        status: 422,
                        message: st.error.unwrap_or_default(),
                    });
                }
                Step::Got(st) => {
                    let t = Instant::now();
                    let doing = format!("downloading the result of job {}", job.id);
                    let got = self.retrying(&deadline, &doing, true, &mut retries, |limit| {
                        self.result_within(&job.id, progress, Some(limit))
                    })?;
                    download += t.elapsed();
                    match got {
                        Step::Got(result) => {
                            if let Err(e) = self.delete(&job.id) {
                                (self.notice)(&Notice::NotDeleted {
                                    job: job.id.clone(),
                                    error: e.to_string(),
                                });
                            }
                            return Ok(JobRun {
                                status: st,
                                result,
                                attempts: attempt,
                                retries,
                                upload,
                                wait,
                                download,
                            });
                        }
                        Step::Gone { instance, message } => (instance, message),
                    }
                }
                Step::Gone { instance, message } => (instance, message),
            };
            let after = self.lost(&job, instance, message, &deadline, &mut retries)?;
            if attempt >= self.options.attempts {
                return Err(Error::JobLost {
                    server: self.base.clone(),
                    job: job.id,
                    before: job.instance,
                    after,
                    attempts: attempt,
                });
            }
            attempt += 1;
            (self.notice)(&Notice::JobLost {
                job: job.id,
                before: job.instance,
                after,
                attempt,
                attempts: self.options.attempts,
            });
        }
    }

    /// The whole exchange: submit, wait, download, delete, and load the
    /// result with `pk` and `limits`, checking that the server applied
    /// exactly the chain asked for. One [`Progress`] sees every phase.
    /// Faults are handled as by [`Client::run_job`].
    pub fn filter(
        &self,
        pk: &PublicKey,
        spec: &JobSpec,
        image: &EncryptedImage,
        limits: &Limits,
        progress: &dyn Progress,
        timeout: Duration,
    ) -> Result<(EncryptedImage, JobStatus)> {
        let envelope = Envelope::encode(spec, &pk.to_bytes(), &image.to_bytes());
        let run = self.run_job(&envelope, progress, timeout)?;
        let out = EncryptedImage::from_bytes(&run.result, pk, limits)?;
        check_history(image, &out, spec)?;
        Ok((out, run.status))
    }
}

/// Checks that the result's history is the input's followed by the
/// chain's labels, so that a server applying something else is caught.
pub fn check_history(
    input: &EncryptedImage,
    output: &EncryptedImage,
    spec: &JobSpec,
) -> Result<()> {
    let mut want = input.meta().history().to_vec();
    want.extend(spec.filters.iter().map(|f| f.label()));
    if output.meta().history() != want {
        return Err(Error::Protocol(format!(
            "the server applied {:?}, not {:?}",
            output.meta().history(),
            want
        )));
    }
    if (output.meta().width(), output.meta().height())
        != (input.meta().width(), input.meta().height())
    {
        return Err(Error::Protocol("the result has other dimensions".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ServerHandle};
    use enc_image::NoProgress;

    /// A `404` from the instance that holds the job means expired or
    /// deleted; from another instance, lost in a restart.
    #[test]
    fn a_404_is_a_restart_only_from_another_instance() {
        let server = ServerHandle::start(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            ..Config::default()
        })
        .unwrap();
        let client = Client::new(&server.url()).unwrap();
        let kp = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let spec = JobSpec {
            filters: vec![crate::Filter::Mean { k: 3 }],
        };
        let img =
            enc_image::PixelImage::new(4, 4, enc_image::ColorLayout::Luma8, vec![7; 16]).unwrap();
        let opts = crate::filters::encrypt_options(&spec.filters).unwrap();
        let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
        let job = client
            .submit(kp.public_key(), &spec, &enc, &NoProgress)
            .unwrap();
        assert_eq!(job.instance, server.service().instance());
        client
            .wait(&job.id, &NoProgress, Duration::from_secs(60))
            .unwrap();
        client.delete(&job.id).unwrap();
        let Step::Gone { instance, message } =
            client.status_within(&job.id, Duration::ZERO, None).unwrap()
        else {
            panic!("a deleted job is still there")
        };
        assert_eq!(instance.as_deref(), Some(server.service().instance()));
        let deadline = Deadline::after(Duration::from_secs(10));
        let mut retries = 0;
        let err = client
            .lost(
                &job,
                instance.clone(),
                message.clone(),
                &deadline,
                &mut retries,
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::Server { status: 404, message } if message.contains("expired or was deleted")),
            "{err}"
        );
        // The same answer about a job another instance had accepted.
        let elsewhere = JobStatus {
            instance: "0123456789abcdef".into(),
            ..job.clone()
        };
        assert_eq!(
            client
                .lost(
                    &elsewhere,
                    instance,
                    message.clone(),
                    &deadline,
                    &mut retries
                )
                .unwrap(),
            server.service().instance()
        );
        // Without an instance in the body, the client asks /v1/health.
        assert_eq!(
            client
                .lost(&elsewhere, None, message, &deadline, &mut retries)
                .unwrap(),
            server.service().instance()
        );
    }
}
