//! The tiled job's routes: `POST /v1/jobs` with a manifest creates it
//! (any other body goes to the single-upload handler), `PUT
//! /v1/jobs/{id}/tiles/{i}` uploads a tile, checked against the manifest
//! and queued at once, and `GET /v1/jobs/{id}/tiles/{i}` downloads its
//! result (long poll with `?wait=S`). Each route works on the in-memory
//! store or, for a server with the Redis store, on Redis (where each
//! tile is a unit of work for any worker).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use enc_image::EncryptedImage;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{info, warn};

use super::admission::{content_length, read_body};
use super::error::{Error, Result};
use super::handlers::{WaitQuery, caller, checked_id, filter_logged, submit, tile_task_id};
use super::jobs::{JobInfo, JobProgress, Snapshot, TileFetch};
use super::pools::{Task, on_pool};
use super::redis_store::{POLL_INTERVAL, TileFetched};
use super::service::{Held, Service, Shared};
use super::tiles::{TileSpec, check_manifest, check_tile};
use crate::wire::{
    IMAGE_CONTENT_TYPE, MANIFEST_CONTENT_TYPE, MAX_KEY_BYTES, MAX_SPEC_BYTES, TiledManifest,
};

/// Largest manifest body: its JSON, the key and the framing.
const MAX_MANIFEST_BYTES: usize = MAX_SPEC_BYTES + MAX_KEY_BYTES + 4096;

/// Whether the request's `Content-Type` is `ct` (parameters ignored).
fn content_type_is(headers: &HeaderMap, ct: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|e| e.trim().eq_ignore_ascii_case(ct))
}

/// `POST /v1/jobs`: a tiled job's manifest, or a single upload.
pub(super) async fn post_job(
    State(s): State<Service>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    if !content_type_is(&headers, MANIFEST_CONTENT_TYPE) {
        return submit(State(s), headers, body).await;
    }
    let r = create(&s, &headers, body).await;
    if let Err(e) = &r {
        warn!(status = e.status().as_u16(), error = %e, "tiled job refused");
    }
    r
}

async fn create(s: &Service, headers: &HeaderMap, body: Body) -> Result<Response> {
    let c = &s.shared.config;
    let who = caller(s, headers)?;
    let declared = content_length(headers)?;
    if let Some(n) = declared.filter(|&n| n > MAX_MANIFEST_BYTES) {
        return Err(Error::TooLarge(format!(
            "the manifest is {n} bytes, at most {MAX_MANIFEST_BYTES} allowed"
        )));
    }
    let t = Instant::now();
    let body = read_body(body, MAX_MANIFEST_BYTES, declared, c.upload_timeout).await?;
    let config = c.clone();
    let framed = body.clone();
    let (spec, units) = on_pool(&s.shared.check_pool, move || {
        check_manifest(&config, &framed)
    })
    .await?;
    let plan = spec.manifest.plan;
    let count = plan.count();
    let info = JobInfo {
        labels: spec.chain.iter().map(he_filter::Filter::label).collect(),
        width: plan.width() as u32,
        height: plan.height() as u32,
        key_bits: spec.pk.bits(),
        ciphertexts: (spec.full.ciphertext_count() * (count - 1) + spec.last.ciphertext_count())
            as u64,
        validate: t.elapsed(),
    };
    // Charged once the job exists, so that a manifest refused for room
    // (503, 429) costs nothing; a job over the hour's quota goes again.
    let (id, status) = if let Some(store) = &s.shared.redis {
        let (id, status) = store.create_tiled(&who, &info, &body, &plan).await?;
        if let Err(e) = store.charge_compute(&who, units).await {
            let _ = store.delete(&id, &who.name).await;
            return Err(e);
        }
        (id, status)
    } else {
        let (id, status) = s
            .shared
            .jobs
            .create_tiled(&who, info.clone(), Arc::new(spec))?;
        if let Err(e) = s.shared.jobs.charge_compute(&who, units) {
            let _ = s.shared.jobs.delete(&id, &who.name);
            return Err(e);
        }
        (id, status)
    };
    info!(
        job = %id,
        token = %who.name,
        filters = ?info.labels,
        width = info.width,
        height = info.height,
        key_bits = info.key_bits,
        tiles = count,
        tile_rows = plan.tile_rows(),
        cost_units = units,
        "tiled job created"
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/jobs/{id}"))],
        Json(status),
    )
        .into_response())
}

/// A tile index from the path (`404` if it is not a number).
fn tile_index(s: &str) -> Result<usize> {
    s.parse()
        .map_err(|_| Error::NotFound(format!("no tile {s:.20} (tiles are numbered from 0)")))
}

/// `PUT /v1/jobs/{id}/tiles/{i}`: tile `i` as an encrypted image, checked
/// against the manifest and queued for filtering. `202` with the job's
/// status.
pub(super) async fn put_tile(
    State(s): State<Service>,
    headers: HeaderMap,
    Path((id, index)): Path<(String, String)>,
    body: Body,
) -> Result<Response> {
    let r = put_tile_inner(&s, &headers, &id, &index, body).await;
    if let Err(e) = &r {
        warn!(status = e.status().as_u16(), error = %e, "tile refused");
    }
    r
}

async fn put_tile_inner(
    s: &Service,
    headers: &HeaderMap,
    id: &str,
    index: &str,
    body: Body,
) -> Result<Response> {
    let c = &s.shared.config;
    let who = caller(s, headers)?;
    let id = checked_id(id)?;
    let index = tile_index(index)?;
    if !content_type_is(headers, IMAGE_CONTENT_TYPE) {
        return Err(Error::UnsupportedMediaType(format!(
            "tiles are sent as {IMAGE_CONTENT_TYPE} (an encrypted image)"
        )));
    }
    let declared = content_length(headers)?;
    let spec = match &s.shared.redis {
        Some(store) => {
            // The manifest was checked when the job was made; loading it
            // again here is the same code as in the worker.
            let framed = store.tile_manifest(id, &who.name, index).await?;
            let config = c.clone();
            let (spec, _) = on_pool(&s.shared.check_pool, move || {
                check_manifest(&config, &framed)
            })
            .await?;
            Arc::new(spec)
        }
        None => s.shared.jobs.tile_spec(id, &who.name, index)?,
    };
    let expected = TiledManifest::tile_bytes(spec.expected(index));
    let limit = usize::try_from(expected)
        .unwrap_or(usize::MAX)
        .min(c.max_body_bytes);
    if let Some(n) = declared.filter(|&n| n > limit) {
        return Err(Error::TooLarge(format!(
            "the body is {n} bytes, tile {index} takes at most {limit}"
        )));
    }
    // A tile is a job of its own for the lanes: small by design, heavy
    // only if a client chose tiles as large as the body limit allows.
    let units = he_filter::estimate_cost(spec.expected(index), &spec.chain)
        .map_err(|e| Error::Unprocessable(e.to_string()))?
        .whole_units();
    if let Some(store) = &s.shared.redis {
        let _held = Held::new(&s.shared);
        let mut reservation = store
            .reserve_tile(&who, id, index, declared.unwrap_or(limit))
            .await?;
        if reservation.is_again() {
            store.charge_compute(&who, units).await?;
        }
        let body = read_body(body, limit, declared, c.upload_timeout).await?;
        reservation.shrink_to(body.len()).await?;
        let (config, check, payload) = (c.clone(), Arc::clone(&spec), body.clone());
        on_pool(&s.shared.check_pool, move || {
            check_tile(&config, &check, index, &payload).map(drop)
        })
        .await?;
        let status = store.queue_tile(reservation, &body).await?;
        info!(job = %id, tile = index, "tile queued");
        return Ok((StatusCode::ACCEPTED, Json(status)).into_response());
    }
    let mut reservation = s
        .shared
        .jobs
        .reserve_tile(&who, id, index, declared.unwrap_or(limit))?;
    if reservation.is_again() {
        // Filtered before: the manifest's charge covered it once.
        s.shared.jobs.charge_compute(&who, units)?;
    }
    let permit = Arc::clone(&s.shared.queue)
        .try_acquire_owned()
        .map_err(|_| {
            Error::Busy(format!(
                "the queue is full ({} jobs and tiles in flight); retry later",
                c.queue_capacity
            ))
        })?;
    let body = read_body(body, limit, declared, c.upload_timeout).await?;
    reservation.shrink_to(body.len());
    let config = c.clone();
    let check = Arc::clone(&spec);
    let image = on_pool(&s.shared.check_pool, move || {
        check_tile(&config, &check, index, &body)
    })
    .await?;
    let (status, progress) = s.shared.jobs.queue_tile(reservation)?;
    let shared = Arc::clone(&s.shared);
    let job_id = id.to_string();
    let queued = Instant::now();
    let task: Task = Box::new(move || {
        run_tile(
            &shared, &job_id, index, &spec, image, &progress, queued, permit,
        )
    });
    s.shared
        .dispatch
        .push(Arc::clone(&who.name), tile_task_id(id, index), units, task);
    info!(job = %id, tile = index, "tile queued");
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

/// Filters one tile (on the filter pool, from a dispatcher) and stores
/// its outcome; the queue slot is released as soon as the filter is over.
#[allow(clippy::too_many_arguments)]
fn run_tile(
    shared: &Shared,
    id: &str,
    index: usize,
    spec: &TileSpec,
    image: EncryptedImage,
    progress: &JobProgress,
    queued: Instant,
    permit: OwnedSemaphorePermit,
) {
    shared.jobs.start_tile(id, index);
    let what = tile_task_id(id, index);
    let out = filter_logged(
        &what,
        &image,
        &spec.pk,
        &spec.chain,
        progress,
        queued.elapsed(),
    );
    drop(image);
    // The slot is free once the work is; waiters are woken after this.
    drop(permit);
    shared.jobs.finish_tile(id, index, out);
}

/// `GET /v1/jobs/{id}/tiles/{i}?wait=S`: the tile's result (`200`, an
/// encrypted image), freed on the server once sent; while it is queued
/// or running, waits up to `S` seconds (at most the server's
/// `max_wait`) and then answers `202` with the job's status.
pub(super) async fn get_tile(
    State(s): State<Service>,
    headers: HeaderMap,
    Path((id, index)): Path<(String, String)>,
    query: std::result::Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response> {
    let who = caller(&s, &headers)?;
    let id = checked_id(&id)?;
    let index = tile_index(&index)?;
    let wait = query
        .map_err(|e| Error::BadRequest(format!("query: {e}")))?
        .0
        .seconds()?;
    let wait = wait.min(s.shared.config.max_wait);
    let deadline = Instant::now() + wait;
    if let Some(store) = &s.shared.redis {
        loop {
            if let TileFetched::Ready(bytes) = store.fetch_tile(id, &who.name, index).await? {
                return Ok(tile_sent(id, index, bytes));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let st = store.status(id, &who.name, Duration::ZERO).await?;
                return Ok((StatusCode::ACCEPTED, Json(st)).into_response());
            }
            tokio::time::sleep(left.min(POLL_INTERVAL)).await;
        }
    }
    loop {
        match s.shared.jobs.tile_result(id, &who.name, index)? {
            TileFetch::Ready(bytes) => return Ok(tile_sent(id, index, bytes)),
            TileFetch::Pending(mut rx) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let st = match s.shared.jobs.snapshot(id, &who.name)? {
                        Snapshot::Finished(st) | Snapshot::Pending(st, _) => st,
                    };
                    return Ok((StatusCode::ACCEPTED, Json(st)).into_response());
                }
                // Woken by any change of the job's tiles; then look again.
                let _ =
                    tokio::time::timeout(left.min(Duration::from_secs(3600)), rx.changed()).await;
            }
        }
    }
}

/// The `200` of a tile's result.
fn tile_sent(id: &str, index: usize, bytes: axum::body::Bytes) -> Response {
    info!(job = %id, tile = index, bytes_out = bytes.len(), "tile sent");
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(IMAGE_CONTENT_TYPE),
        )],
        bytes,
    )
        .into_response()
}
