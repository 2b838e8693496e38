//! A blocking client of the API, on `ureq` (plain HTTP: for anything but
//! loopback, the server belongs behind a TLS-terminating reverse proxy,
//! and the client would then need ureq's `rustls` feature).

use std::io::Read;
use std::time::{Duration, Instant};

use enc_image::{EncryptedImage, Limits, Progress};
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

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: Agent,
    max_result_bytes: u64,
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

/// Turns an error answer into [`Error::Server`] with the server's message.
fn check(mut resp: Response<Body>) -> Result<Response<Body>> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp
        .body_mut()
        .with_config()
        .limit(MAX_JSON)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.error)
        .unwrap_or(text);
    Err(Error::Server {
        status: status.as_u16(),
        message,
    })
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
    /// A client of the server at `base_url` (`http://HOST:PORT`).
    pub fn new(base_url: &str) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(Error::Config(format!(
                "server URL {base_url:?} must start with http:// (TLS belongs in a reverse proxy)"
            )));
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            // The server holds a status request for at most its max_wait.
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .build()
            .into();
        Ok(Client {
            base,
            agent,
            max_result_bytes: 4 << 30,
        })
    }

    /// The server's base URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /v1/health`.
    pub fn health(&self) -> Result<Health> {
        json(check(self.agent.get(self.url("/v1/health")).call()?)?)
    }

    /// `GET /v1/info`: the filters and limits the server supports.
    pub fn info(&self) -> Result<ServiceInfo> {
        json(check(self.agent.get(self.url("/v1/info")).call()?)?)
    }

    /// `POST /v1/jobs` with an encoded [`Envelope`], reporting the upload
    /// in bytes (phase `"upload"`).
    ///
    /// The request says `Expect: 100-continue`: the server admits or
    /// refuses (`413`, `415`, `503`) before the body is sent, so a refusal
    /// is read as such instead of breaking the upload midway.
    pub fn submit_envelope(&self, envelope: &[u8], progress: &dyn Progress) -> Result<JobStatus> {
        progress.start("upload", envelope.len() as u64);
        let mut reader = ProgressReader {
            data: envelope,
            progress,
        };
        let resp = self
            .agent
            .post(self.url("/v1/jobs"))
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
        let url = self.url(&format!("/v1/jobs/{id}?wait={}", wait.as_secs_f64()));
        json(check(self.agent.get(url).call()?)?)
    }

    /// Waits until the job finishes (at most `timeout`), reporting the
    /// server's progress in ciphertexts (phase `"filter"`). Returns the
    /// final status, `done` or `failed`.
    pub fn wait(&self, id: &str, progress: &dyn Progress, timeout: Duration) -> Result<JobStatus> {
        let start = Instant::now();
        let (mut total, mut done) = (0, 0);
        loop {
            let st = self.status(id, Duration::from_millis(500))?;
            if st.progress_total != total {
                total = st.progress_total;
                progress.start("filter", total);
                done = 0;
            }
            progress.advance(st.progress_done.saturating_sub(done));
            done = done.max(st.progress_done);
            if st.state.is_finished() {
                progress.finish();
                return Ok(st);
            }
            if start.elapsed() > timeout {
                return Err(Error::Timeout(format!(
                    "job {id} did not finish within {} s",
                    timeout.as_secs()
                )));
            }
        }
    }

    /// `GET /v1/jobs/{id}/result`: the encrypted result's bytes, reporting
    /// the download in bytes (phase `"download"`).
    pub fn result(&self, id: &str, progress: &dyn Progress) -> Result<Vec<u8>> {
        let mut resp = check(
            self.agent
                .get(self.url(&format!("/v1/jobs/{id}/result")))
                .call()?,
        )?;
        let len = resp.body().content_length();
        progress.start("download", len.unwrap_or(0));
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
        progress.finish();
        Ok(out)
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

    /// The whole exchange: submit, wait, download, delete, and load the
    /// result with `pk` and `limits`, checking that the server applied
    /// exactly the chain asked for. One [`Progress`] sees every phase.
    pub fn filter(
        &self,
        pk: &PublicKey,
        spec: &JobSpec,
        image: &EncryptedImage,
        limits: &Limits,
        progress: &dyn Progress,
        timeout: Duration,
    ) -> Result<(EncryptedImage, JobStatus)> {
        let job = self.submit(pk, spec, image, progress)?;
        let st = self.wait(&job.id, progress, timeout)?;
        if st.state == JobState::Failed {
            return Err(Error::Server {
                status: 422,
                message: st.error.unwrap_or_default(),
            });
        }
        let bytes = self.result(&job.id, progress)?;
        self.delete(&job.id)?;
        let out = EncryptedImage::from_bytes(&bytes, pk, limits)?;
        check_history(image, &out, spec)?;
        Ok((out, st))
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
