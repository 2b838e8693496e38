//! The handlers of the API's routes: health, info, submitting a job,
//! its status (long poll), its result and deleting it; and running an
//! accepted job on the filter pool.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use enc_image::FORMAT_VERSION;
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{error, info, warn};

use super::admission::{Checked, check_content_type, content_length, read_body, validate};
use super::catalogue;
use super::config::Config;
use super::error::{Error, Result};
use super::jobs::{Deleted, JobInfo, JobProgress, Snapshot, valid_id};
use super::pools::{Task, on_pool};
use super::redis_store::Removed;
use super::service::{Held, Service, Shared};
use super::tokens::Caller;
use crate::wire::{
    ENVELOPE_VERSION, Health, IMAGE_CONTENT_TYPE, JOB_CONTENT_TYPE, JobStatus, LimitsInfo,
    ServiceInfo,
};

pub(super) async fn health(State(s): State<Service>) -> Response {
    let c = &s.shared.config;
    let mut h = Health {
        status: "ok".into(),
        instance: s.instance().to_string(),
        node: s.instance().to_string(),
        jobs_in_flight: c.queue_capacity - s.shared.queue.available_permits(),
        queue_capacity: c.queue_capacity,
        jobs_stored: s.shared.jobs.len(),
        stored_bytes: s.shared.jobs.bytes().0,
        inflight_bytes: s.shared.jobs.bytes().1,
        store: c.store.name().into(),
        role: c.role.name().into(),
        store_reachable: true,
    };
    if let Some(store) = &s.shared.redis {
        let read = match store.counts().await {
            Ok(n) => store.instance().await.map(|i| (n, i)),
            Err(e) => Err(e),
        };
        match read {
            Ok((n, instance)) => {
                h.instance = instance;
                h.jobs_in_flight = n.inflight_jobs;
                h.jobs_stored = n.jobs;
                h.stored_bytes = n.stored_bytes;
                h.inflight_bytes = n.inflight_bytes;
            }
            Err(e) => {
                warn!(error = %e, "health: the store is unreachable");
                h.status = "store unreachable".into();
                h.store_reachable = false;
                // So that a proxy or an orchestrator takes this node out.
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                    Json(h),
                )
                    .into_response();
            }
        }
    }
    Json(h).into_response()
}

/// `GET /v1/info`; its instance is the one job statuses carry (the
/// store's, with Redis).
pub(super) async fn service_info(State(s): State<Service>) -> Result<Json<ServiceInfo>> {
    let c = &s.shared.config;
    let instance = match &s.shared.redis {
        Some(store) => store.instance().await?,
        None => s.instance().to_string(),
    };
    Ok(Json(ServiceInfo {
        service: "he-service".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        instance,
        job_content_type: JOB_CONTENT_TYPE.into(),
        result_content_type: IMAGE_CONTENT_TYPE.into(),
        envelope_version: ENVELOPE_VERSION,
        image_format_version: FORMAT_VERSION,
        filters: catalogue::supported(),
        limits: LimitsInfo {
            max_body_bytes: c.max_body_bytes,
            max_width: c.max_side,
            max_height: c.max_side,
            max_ciphertexts: c.max_ciphertexts,
            max_chain_len: c.max_chain_len,
            min_key_bits: paillier::MIN_KEY_BITS,
            max_key_bits: paillier::MAX_KEY_BITS,
            max_kernel_size: he_filter::MAX_KERNEL_SIZE,
            max_weight: he_filter::MAX_WEIGHT,
            queue_capacity: c.queue_capacity,
            max_wait_seconds: c.max_wait.as_secs(),
            max_job_cost_units: c.max_job_cost,
        },
        retention_seconds: c.retention.as_secs(),
        tiled_jobs: true,
    }))
}

pub(super) async fn submit(
    State(s): State<Service>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let r = submit_inner(&s, &headers, body).await;
    match &r {
        Err(e @ Error::Internal(_)) => error!(status = 500, error = %e, "job refused"),
        Err(e) => warn!(status = e.status().as_u16(), error = %e, "job refused"),
        Ok(_) => {}
    }
    r
}

/// The caller of a request, from its `Authorization` header (`401` if a
/// token is needed and missing or unknown).
pub(super) fn caller(s: &Service, headers: &HeaderMap) -> Result<Caller> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| {
            v.to_str()
                .map_err(|_| Error::Unauthorized("the Authorization header is not text".into()))
        })
        .transpose()?;
    s.shared.caller(auth)
}

async fn submit_inner(s: &Service, headers: &HeaderMap, body: Body) -> Result<Response> {
    let c = &s.shared.config;
    let who = caller(s, headers)?;
    check_content_type(headers)?;
    let declared = content_length(headers)?;
    if let Some(n) = declared.filter(|&n| n > c.max_body_bytes) {
        return Err(Error::TooLarge(format!(
            "the body is {n} bytes, at most {} allowed",
            c.max_body_bytes
        )));
    }
    // The upload's bytes are reserved (its declared length, or the most
    // a body may be) until the job ends.
    let reserve = declared.unwrap_or(c.max_body_bytes);
    if let Some(store) = &s.shared.redis {
        let _held = Held::new(&s.shared);
        let mut reservation = store.reserve(&who, reserve).await?;
        let (body, upload) = read_upload(c, body, declared).await?;
        reservation.shrink_to(body.len()).await?;
        let (checked, info) = check_upload(s, body.clone()).await?;
        let cost = checked.cost;
        drop(checked);
        store.charge_compute(&who, cost.whole_units()).await?;
        let (id, status) = store.create(reservation, &info, body.clone()).await?;
        log_accepted(&id, &who, &info, cost, body.len(), upload);
        return Ok(accepted(&id, status));
    }
    // Admission before reading: the token's quotas, then the server's
    // bytes and slots.
    let mut reservation = s.shared.jobs.reserve(&who, reserve)?;
    let permit = Arc::clone(&s.shared.queue)
        .try_acquire_owned()
        .map_err(|_| {
            Error::Busy(format!(
                "the queue is full ({} jobs in flight); retry later",
                c.queue_capacity
            ))
        })?;
    let (body, upload) = read_upload(c, body, declared).await?;
    reservation.shrink_to(body.len());
    let bytes_in = body.len();
    let (checked, info) = check_upload(s, body).await?;
    s.shared
        .jobs
        .charge_compute(&who, checked.cost.whole_units())?;
    let cost = checked.cost;
    let (id, status, progress) = s.shared.jobs.create(reservation, info.clone())?;
    log_accepted(&id, &who, &info, cost, bytes_in, upload);
    let shared = Arc::clone(&s.shared);
    let job_id = id.clone();
    let task: Task = Box::new(move || run_job(&shared, &job_id, checked, &progress, permit));
    s.shared
        .dispatch
        .push(Arc::clone(&who.name), id.clone(), cost.whole_units(), task);
    Ok(accepted(&id, status))
}

/// Reads an upload's body within the limits; returns it and the time taken.
async fn read_upload(c: &Config, body: Body, declared: Option<usize>) -> Result<(Bytes, Duration)> {
    let t = Instant::now();
    let limit = declared.unwrap_or(c.max_body_bytes);
    let body = read_body(body, limit, declared, c.upload_timeout).await?;
    Ok((body, t.elapsed()))
}

/// Checks an upload on the check pool (`validate`); returns it and what
/// its job record says about it.
async fn check_upload(s: &Service, body: Bytes) -> Result<(Checked, JobInfo)> {
    let t = Instant::now();
    let config = s.shared.config.clone();
    let checked = on_pool(&s.shared.check_pool, move || validate(&config, &body)).await?;
    let meta = checked.image.meta();
    let info = JobInfo {
        labels: checked.labels.clone(),
        width: meta.width() as u32,
        height: meta.height() as u32,
        key_bits: meta.key_bits(),
        ciphertexts: checked.image.ciphertexts().len() as u64,
        validate: t.elapsed(),
    };
    Ok((checked, info))
}

fn log_accepted(
    id: &str,
    who: &Caller,
    info: &JobInfo,
    cost: he_filter::Cost,
    bytes_in: usize,
    upload: Duration,
) {
    info!(
        job = %id,
        token = %who.name,
        filters = ?info.labels,
        width = info.width,
        height = info.height,
        key_bits = info.key_bits,
        ciphertexts = info.ciphertexts,
        cost_units = cost.units(),
        bytes_in,
        upload_ms = upload.as_millis() as u64,
        validate_ms = info.validate.as_millis() as u64,
        "job accepted"
    );
}

/// The `202` of an accepted job.
fn accepted(id: &str, status: JobStatus) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/jobs/{id}"))],
        Json(status),
    )
        .into_response()
}

/// Filters one job (on the filter pool, from a dispatcher) and stores the
/// outcome; the queue slot is released as soon as the filter is over.
fn run_job(
    shared: &Shared,
    id: &str,
    job: Checked,
    progress: &JobProgress,
    permit: OwnedSemaphorePermit,
) {
    let waited = shared.jobs.start(id);
    let outcome = filter_logged(id, &job.image, &job.pk, &job.chain, progress, waited);
    drop(job.image);
    // The slot is free once the work is; waiters are woken after this.
    drop(permit);
    shared.jobs.finish(id, outcome);
}

/// Runs `chain` on a checked image (a job's or a tile's, named `what` in
/// the log), drops the vertical halo and returns the result's bytes, or
/// what went wrong in words (a panic included). Logs the outcome.
pub(super) fn filter_logged(
    what: &str,
    image: &enc_image::EncryptedImage,
    pk: &paillier::PublicKey,
    chain: &[he_filter::Filter],
    progress: &JobProgress,
    waited: Duration,
) -> std::result::Result<Bytes, String> {
    let t = Instant::now();
    let out = catch_unwind(AssertUnwindSafe(|| {
        if enc_image::Progress::cancelled(progress) {
            return Err(he_filter::Error::Cancelled);
        }
        he_filter::apply_chain(image, pk, chain, progress).map(|o| o.trim_halo().to_bytes())
    }));
    let took = t.elapsed();
    let labels: Vec<String> = chain.iter().map(he_filter::Filter::label).collect();
    match out {
        Ok(Ok(bytes)) => {
            info!(
                job = %what,
                filters = ?labels,
                queued_ms = waited.as_millis() as u64,
                filter_ms = took.as_millis() as u64,
                bytes_out = bytes.len(),
                "job done"
            );
            Ok(Bytes::from(bytes))
        }
        Ok(Err(e)) => {
            warn!(job = %what, filters = ?labels, error = %e, "job failed");
            Err(e.to_string())
        }
        Err(_) => {
            error!(job = %what, filters = ?labels, "the filter panicked");
            Err("internal error while filtering".into())
        }
    }
}

/// The query of a status request: `?wait=S`, seconds to hold it.
#[derive(Debug, Deserialize)]
pub(super) struct WaitQuery {
    wait: Option<f64>,
}

impl WaitQuery {
    /// The time asked for (0 without `?wait=`), at most an hour; `400` for
    /// a negative or non-finite number.
    pub(super) fn seconds(&self) -> Result<Duration> {
        let wait = self.wait.unwrap_or(0.0);
        if !wait.is_finite() || wait < 0.0 {
            return Err(Error::BadRequest(
                "wait must be a number of seconds, 0 or more".into(),
            ));
        }
        Ok(Duration::from_secs_f64(wait.min(3600.0)))
    }
}

pub(super) fn checked_id(id: &str) -> Result<&str> {
    if valid_id(id) {
        Ok(id)
    } else {
        Err(Error::NotFound(
            "no such job (ids are 32 lowercase hex digits)".into(),
        ))
    }
}

pub(super) async fn job_status(
    State(s): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: std::result::Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<JobStatus>> {
    let who = caller(&s, &headers)?;
    let id = checked_id(&id)?;
    let wait = query
        .map_err(|e| Error::BadRequest(format!("query: {e}")))?
        .0
        .seconds()?
        .min(s.shared.config.max_wait);
    if let Some(store) = &s.shared.redis {
        return Ok(Json(store.status(id, &who.name, wait).await?));
    }
    match s.shared.jobs.snapshot(id, &who.name)? {
        Snapshot::Finished(st) => Ok(Json(st)),
        Snapshot::Pending(st, _) if wait.is_zero() => Ok(Json(st)),
        Snapshot::Pending(_, mut rx) => {
            // Woken when the job finishes; on timeout, report where it is.
            let _ = tokio::time::timeout(wait, rx.wait_for(|&done| done)).await;
            match s.shared.jobs.snapshot(id, &who.name)? {
                Snapshot::Finished(st) | Snapshot::Pending(st, _) => Ok(Json(st)),
            }
        }
    }
}

pub(super) async fn job_result(
    State(s): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    let who = caller(&s, &headers)?;
    let id = checked_id(&id)?;
    let bytes = match &s.shared.redis {
        Some(store) => store.result(id, &who.name).await?,
        None => s.shared.jobs.result(id, &who.name)?,
    };
    info!(job = %id, bytes_out = bytes.len(), "result sent");
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(IMAGE_CONTENT_TYPE),
        )],
        bytes,
    )
        .into_response())
}

/// `DELETE /v1/jobs/{id}`: a finished job goes with its result (`204`); a
/// queued one is taken out of its queue (`204`); a running one is told to
/// stop, which it does within about the time of one ciphertext per thread
/// (`202`), and goes when it has.
pub(super) async fn delete_job(
    State(s): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let who = caller(&s, &headers)?;
    let id = checked_id(&id)?;
    if let Some(store) = &s.shared.redis {
        return Ok(match store.delete(id, &who.name).await? {
            Removed::Removed => {
                info!(job = %id, "job deleted");
                StatusCode::NO_CONTENT
            }
            Removed::Cancelling => {
                info!(job = %id, "running job cancelled");
                StatusCode::ACCEPTED
            }
        });
    }
    match s.shared.jobs.delete(id, &who.name)? {
        Deleted::Removed => {
            info!(job = %id, "job deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        Deleted::Cancelling => {
            if let Some(task) = s.shared.dispatch.remove(id) {
                // Never started: dropping its work frees its slot and bytes.
                drop(task);
                s.shared.jobs.finish(id, Err("cancelled".into()));
                info!(job = %id, "queued job deleted");
                Ok(StatusCode::NO_CONTENT)
            } else {
                info!(job = %id, "running job cancelled");
                Ok(StatusCode::ACCEPTED)
            }
        }
        Deleted::Tiles(queued) => {
            for i in queued {
                if let Some(task) = s.shared.dispatch.remove(&tile_task_id(id, i)) {
                    drop(task);
                    s.shared.jobs.finish_tile(id, i, Err("cancelled".into()));
                }
            }
            info!(job = %id, "tiled job cancelled");
            // Gone at once unless a tile is still being filtered or read.
            Ok(if s.shared.jobs.holds(id) {
                StatusCode::ACCEPTED
            } else {
                StatusCode::NO_CONTENT
            })
        }
    }
}

/// The id of tile `index` of job `id` in the dispatch queue.
pub(super) fn tile_task_id(id: &str, index: usize) -> String {
    format!("{id}/{index}")
}

/// Admission seen from a client: needs both halves of the crate.
#[cfg(all(test, feature = "client"))]
mod tests {
    use super::*;
    use crate::client::{self, Client};
    use crate::server::Config;
    use crate::wire::{JobSpec, JobState};
    use enc_image::{ColorLayout, EncryptedImage, NoProgress, PixelImage};
    use he_filter::Filter;
    use std::num::NonZeroUsize;

    #[test]
    fn a_full_queue_answers_503_and_admits_again_when_a_slot_frees() {
        let service = crate::server::Service::new(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            queue_capacity: 1,
            workers: NonZeroUsize::new(1),
            ..Config::default()
        })
        .unwrap();
        let server = crate::server::ServerHandle::start_service(service.clone()).unwrap();
        let client = Client::new(&server.url()).unwrap();
        let kp = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let spec = JobSpec {
            filters: vec![Filter::Mean { k: 3 }],
        };
        let img = PixelImage::new(4, 4, ColorLayout::Luma8, vec![9; 16]).unwrap();
        let enc = EncryptedImage::encrypt(
            &img,
            kp.private_key(),
            &spec.encrypt_options().unwrap(),
            &NoProgress,
        )
        .unwrap();

        // A job in flight holds the only slot.
        let slot = service.shared.queue.try_acquire().unwrap();
        assert_eq!(client.health().unwrap().jobs_in_flight, 1);
        let err = client
            .submit(kp.public_key(), &spec, &enc, &NoProgress)
            .unwrap_err();
        match err {
            client::Error::Server { status, message } => {
                assert_eq!(status, 503);
                assert!(message.contains("queue is full"), "{message}");
            }
            e => panic!("expected 503, got {e}"),
        }
        // The answer says when to retry.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let resp = agent
            .post(format!("{}/v1/jobs", server.url()))
            .header("content-type", JOB_CONTENT_TYPE)
            .send(&b"HEJOB"[..])
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
        // A large upload is refused before it is sent (Expect: 100-continue),
        // so the client reads the 503 instead of a broken pipe.
        let big = vec![0u8; 8 << 20];
        let err = client.submit_envelope(&big, &NoProgress).unwrap_err();
        assert!(
            matches!(err, client::Error::Server { status: 503, .. }),
            "expected 503, got {err}"
        );
        drop(slot);
        let job = client
            .submit(kp.public_key(), &spec, &enc, &NoProgress)
            .unwrap();
        let done = client
            .wait(&job.id, &NoProgress, Duration::from_secs(60))
            .unwrap();
        assert_eq!(done.state, JobState::Done);
        // The finished job released its slot.
        assert_eq!(client.health().unwrap().jobs_in_flight, 0);
    }
}
