//! The job state machine: submit, wait, download, delete, and start
//! again from the bytes still held when the server restarted and lost
//! the job; [`Client::filter`] on top of it for a typed request.

use std::time::{Duration, Instant};

use enc_image::{
    BorderMode, DecryptedImage, EncryptedImage, Limits, NoProgress, PixelImage, Progress,
};
use he_filter::{SpotCheck, SpotCheckReport};
use paillier::{Keypair, PublicKey};

use super::endpoints::{Client, Step, check, json};
use super::error::{Error, Result};
use super::notice::Notice;
use super::retry::Deadline;
use crate::wire::{Envelope, Health, JobSpec, JobState, JobStatus};

/// How long one status request asks the server to hold it (long poll), so
/// that progress is reported about twice a second.
const POLL: Duration = Duration::from_millis(500);

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

/// The deadline of [`FilterRequest::new`]: one hour.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// One image to filter on the server, for [`Client::filter`]: what to
/// send, and how to take the result back. [`FilterRequest::new`] sets
/// the defaults; the fields are public to change them:
///
/// ```no_run
/// # fn demo(client: &he_service::client::Client, kp: &paillier::Keypair,
/// #         spec: &he_service::wire::JobSpec, enc: &enc_image::EncryptedImage)
/// #         -> he_service::client::Result<()> {
/// use he_service::client::FilterRequest;
/// let request = FilterRequest {
///     timeout: std::time::Duration::from_secs(600),
///     ..FilterRequest::new(kp.public_key(), spec, enc)
/// };
/// let (result, status) = client.filter(&request)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct FilterRequest<'a> {
    /// The key the image is encrypted under: the server gets this one only.
    pub public_key: &'a PublicKey,
    /// The filter chain to apply.
    pub spec: &'a JobSpec,
    /// The encrypted image, encrypted with the options the chain needs
    /// ([`JobSpec::encrypt_options`]).
    pub image: &'a EncryptedImage,
    /// The limits the result is loaded with (default [`Limits::default`]).
    pub limits: Limits,
    /// The deadline of the whole exchange, retries and resubmissions
    /// included (default one hour).
    pub timeout: Duration,
    /// Sees every phase: upload, the server's filter progress, download
    /// (default none).
    pub progress: &'a dyn Progress,
}

impl<'a> FilterRequest<'a> {
    /// A request to filter `image` (under `public_key`) with `spec`, with
    /// the default limits, a deadline of one hour and no progress report.
    #[must_use]
    pub fn new(public_key: &'a PublicKey, spec: &'a JobSpec, image: &'a EncryptedImage) -> Self {
        FilterRequest {
            public_key,
            spec,
            image,
            limits: Limits::default(),
            timeout: DEFAULT_TIMEOUT,
            progress: &NoProgress,
        }
    }
}

impl std::fmt::Debug for FilterRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterRequest")
            .field("spec", self.spec)
            .field("image", &self.image.meta())
            .field("limits", &self.limits)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Waits until the job finishes (at most `timeout`), reporting the
    /// server's progress in ciphertexts (phase `"filter"`). Returns the
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
                progress.start(enc_image::Phase::Filter, total);
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

    /// A job the server answered `404` for: the instance now answering if
    /// the server restarted (the job was lost), else the `404` as an error.
    /// Without an instance in the `404`'s body, asks `/v1/health`.
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
        restarted(job, &now, message)
    }

    /// The whole exchange for an encoded [`Envelope`], within `timeout`:
    /// submit, wait, download the result whole, delete it on the server.
    /// Rides out faults as the [module documentation](super) says:
    /// resubmits from `envelope` if the server restarts and loses the job,
    /// retries refused and cut connections, and gives up with
    /// [`Error::Deadline`] naming the server and what it was waiting for
    /// when `timeout` has passed. A failed job is [`Error::Server`] `422`.
    ///
    /// The download is bounded by what the job can return: a filtered
    /// image has no more ciphertexts than the uploaded one, so a result
    /// larger than the envelope (plus room for the history in its header)
    /// is refused without being read.
    pub fn run_job(
        &self,
        envelope: &[u8],
        progress: &dyn Progress,
        timeout: Duration,
    ) -> Result<JobRun> {
        let max_result = envelope.len() as u64 + RESULT_HEADER_ROOM;
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
                        self.result_within(&job.id, progress, Some(limit), max_result)
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

    /// The whole exchange for a typed request: frame the envelope, submit,
    /// wait, download, delete, and load the result with the request's key
    /// and limits, checking that the server applied exactly the chain
    /// asked for ([`check_history`]). The request's [`Progress`] sees every
    /// phase. Faults are handled as by [`Client::run_job`].
    pub fn filter(&self, request: &FilterRequest<'_>) -> Result<(EncryptedImage, JobStatus)> {
        let FilterRequest {
            public_key,
            spec,
            image,
            limits,
            timeout,
            progress,
        } = *request;
        let envelope = Envelope::encode(spec, &public_key.to_bytes(), &image.to_bytes());
        let run = self.run_job(&envelope, progress, timeout)?;
        let out = EncryptedImage::from_bytes(&run.result, public_key, &limits)?;
        check_history(image, &out, spec)?;
        Ok((out, run.status))
    }
}

/// One plain image to filter on the server and get back verified, for
/// [`Client::filter_image`]: the client encrypts it with its key pair,
/// the server sees the public key and ciphertexts only, and the client
/// decrypts and spot-checks the result against the image it owns.
#[derive(Clone, Copy)]
pub struct ImageRequest<'a> {
    /// The key pair: the private key stays here.
    pub keypair: &'a Keypair,
    /// The image to filter.
    pub image: &'a PixelImage,
    /// The filter chain.
    pub spec: &'a JobSpec,
    /// The border at the image's edges (default replicate).
    pub border: BorderMode,
    /// How many values to recompute besides one of every ciphertext
    /// (default [`SpotCheck::default`]: 2000).
    pub spot_check: SpotCheck,
    /// The deadline of the whole exchange (default one hour).
    pub timeout: Duration,
    /// Sees every phase (default none).
    pub progress: &'a dyn Progress,
}

impl<'a> ImageRequest<'a> {
    /// A request with the defaults: replicate border, 2000 random values
    /// spot-checked besides one of every ciphertext, one hour, no progress.
    #[must_use]
    pub fn new(keypair: &'a Keypair, image: &'a PixelImage, spec: &'a JobSpec) -> Self {
        ImageRequest {
            keypair,
            image,
            spec,
            border: BorderMode::Replicate,
            spot_check: SpotCheck::default(),
            timeout: DEFAULT_TIMEOUT,
            progress: &NoProgress,
        }
    }
}

impl std::fmt::Debug for ImageRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageRequest")
            .field("image", &(self.image.width(), self.image.height()))
            .field("spec", self.spec)
            .field("border", &self.border)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Filters a plain image on the server and returns it decrypted and
    /// verified: encrypts it (key-holder encryption) with the options the
    /// chain needs, runs the job ([`Client::filter`], which checks the
    /// history), decrypts, and spot-checks the result against the image
    /// (`he_filter::spot_check`: one value of every output ciphertext and
    /// 2000 random values by default, recomputed from the input). A server
    /// that changed a fraction g of the values escapes with probability
    /// about (1-g)^2000; one that replaced or swapped any ciphertext is
    /// caught by its sampled value. A result that fails is
    /// [`Error::Verification`], never returned.
    pub fn filter_image(
        &self,
        request: &ImageRequest<'_>,
    ) -> Result<(DecryptedImage, SpotCheckReport, JobStatus)> {
        let ImageRequest {
            keypair,
            image,
            spec,
            border,
            spot_check,
            timeout,
            progress,
        } = *request;
        let opts = he_filter::encrypt_options(&spec.filters)
            .map_err(Error::Filter)?
            .border(border);
        keypair.private_key().precompute();
        let enc = EncryptedImage::encrypt(image, keypair.private_key(), &opts, progress)?;
        let (out, status) = self.filter(&FilterRequest {
            timeout,
            progress,
            ..FilterRequest::new(keypair.public_key(), spec, &enc)
        })?;
        let exact = out.decrypt(keypair.private_key(), progress)?;
        let report = he_filter::spot_check(
            image,
            &spec.filters,
            border,
            out.meta(),
            &exact,
            &spot_check,
        )
        .map_err(|e| match e {
            he_filter::Error::Verification(m) => Error::Verification(m),
            other => Error::Filter(other),
        })?;
        Ok((exact, report, status))
    }
}

/// Whether a `404` for `job`, from the server instance `now`, means that
/// the server restarted and lost it: then the new instance, else the
/// `404` (with `message`) as an error. An empty instance is one the
/// server did not say: no restart can be told from it.
fn restarted(job: &JobStatus, now: &str, message: String) -> Result<String> {
    if !job.instance.is_empty() && !now.is_empty() && now != job.instance {
        return Ok(now.to_string());
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

/// Room for a result's header beyond the uploaded image's: the history of
/// the chain's labels, which the envelope's spec bounds.
const RESULT_HEADER_ROOM: u64 = 64 * 1024;

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

    fn job(instance: &str) -> JobStatus {
        JobStatus {
            id: "0".repeat(32),
            instance: instance.into(),
            state: JobState::Queued,
            filters: vec![],
            width: 1,
            height: 1,
            key_bits: 512,
            ciphertexts: 1,
            progress_done: 0,
            progress_total: 0,
            validate_seconds: 0.0,
            queued_seconds: None,
            filter_seconds: None,
            result_bytes: None,
            expires_in_seconds: None,
            error: None,
            tiles: None,
        }
    }

    /// A `404` from the instance that holds the job means expired or
    /// deleted; from another instance, lost in a restart; with an instance
    /// unsaid on either side, nothing can be told.
    #[test]
    fn a_404_is_a_restart_only_from_another_instance() {
        let a = "0123456789abcdef";
        let b = "fedcba9876543210";
        assert_eq!(restarted(&job(a), b, "gone".into()).unwrap(), b);
        let err = restarted(&job(a), a, "gone".into()).unwrap_err();
        assert!(
            matches!(&err, Error::Server { status: 404, message }
                if message.starts_with("gone (") && message.contains("expired or was deleted")),
            "{err}"
        );
        for (held, now) in [("", b), (a, "")] {
            let err = restarted(&job(held), now, "gone".into()).unwrap_err();
            assert!(err.to_string().contains("does not say"), "{err}");
        }
    }
}
