//! The local app's routes: the page, its catalogue and settings, the
//! connection check, photos, jobs, pictures and the live progress
//! (server-sent events). Every route sits behind [`guard::check`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;

use super::compose::{MAX_REGIONS, Region};
use super::guard::{self, Guard};
use super::jobs::{Connection, JobRequest, Photo, Studio, plain_error};
use crate::{chain, files};

/// The page and its script and style, built in.
const INDEX: &str = include_str!("../../../studio/index.html");
const SCRIPT: &str = include_str!("../../../studio/studio.js");
const STYLE: &str = include_str!("../../../studio/studio.css");

/// Most filters in one chain from the page.
const MAX_CHAIN: usize = 8;
/// Largest JSON body (a job with its regions).
const MAX_JSON: usize = 64 << 10;
/// How often the progress stream looks for changes.
const TICK: Duration = Duration::from_millis(250);

/// An error answer: a status and a sentence for the page.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

type ApiResult<T> = Result<T, ApiError>;

/// The studio's routes, guarded.
pub(super) fn router(studio: Arc<Studio>, guard: Guard) -> Router {
    let max_image = usize::try_from(files::MAX_IMAGE_FILE).unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/studio.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/studio.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/catalogue", get(catalogue))
        .route("/api/settings", get(settings))
        .route("/api/connection", post(connection))
        .route(
            "/api/photos",
            post(photo).layer(DefaultBodyLimit::max(max_image)),
        )
        .route("/api/jobs", get(list).post(create))
        .route("/api/jobs/{id}", delete(cancel))
        .route("/api/jobs/{id}/{picture}", get(picture))
        .route("/api/events", get(events))
        .layer(DefaultBodyLimit::max(MAX_JSON))
        .layer(middleware::from_fn_with_state(guard, guard::check))
        .with_state(studio)
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The filter catalogue (the CLI's), the output mappings and the default.
async fn catalogue() -> Json<serde_json::Value> {
    let filters: Vec<_> = he_filter::BUILTINS
        .iter()
        .map(|b| json!({ "name": b.name, "summary": b.summary, "params": b.params }))
        .collect();
    Json(json!({
        "filters": filters,
        "mappings": ["saturate", "abs", "shift128"],
        "default": { "name": "mean", "params": { "k": "3" } },
        "key_sizes": [2048, 3072],
        "default_key_bits": paillier::Keypair::default_bits(),
    }))
}

/// The server and key the studio starts with (never the token itself).
async fn settings(State(s): State<Arc<Studio>>) -> Json<serde_json::Value> {
    let c = s.connection();
    Json(json!({
        "server": c.server,
        "token_set": c.token.is_some(),
        "embedded": c.embedded,
        "key_file_bits": s.fixed_key_bits(),
        "max_upload_bytes": files::MAX_IMAGE_FILE,
        "max_side": files::MAX_IMAGE_SIDE,
    }))
}

/// `POST /api/connection`: a server (and token) to check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionForm {
    server: String,
    /// `None` keeps the token the studio has for the same server (none for
    /// another: a token never follows a new URL); `""` means none.
    token: Option<String>,
}

/// Sends the next jobs to a server (and token) and checks it: its
/// `/v1/info`, and the token on a job route.
async fn connection(
    State(s): State<Arc<Studio>>,
    Json(form): Json<ConnectionForm>,
) -> ApiResult<Json<serde_json::Value>> {
    let current = s.connection();
    let server = form.server.trim().to_string();
    if server.is_empty() || server.len() > 2048 {
        return Err(bad("give the server's URL, e.g. https://he.example.org"));
    }
    let token = match form.token {
        // A token is for the server it was given with: a URL typed on the
        // page (a typo, another host) never receives it.
        None if server == current.server => current.token.clone(),
        None => None,
        Some(t) if t.is_empty() => None,
        Some(t) => Some(t),
    };
    let c = Connection {
        embedded: current.embedded && server == current.server,
        server,
        token,
    };
    // The next jobs go where the page's fields say, answering or not, so
    // that what the page shows is what is used.
    s.set_connection(c.clone());
    let studio = Arc::clone(&s);
    let checked = c;
    let info = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let client = studio.client(&checked)?;
        let info = client.info()?;
        // A job route tells a wrong token (401) from a right one (404).
        match client.status(&"0".repeat(32), Duration::ZERO) {
            Err(he_service::client::Error::Server { status: 404, .. }) | Ok(_) => Ok(info),
            Err(e) => Err(e.into()),
        }
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, plain_error(&e)))?;
    Ok(Json(json!({
        "service": info.service,
        "version": info.version,
        "max_body_bytes": info.limits.max_body_bytes,
        "retention_seconds": info.retention_seconds,
    })))
}

/// `POST /api/photos?name=FILE`: the bytes of a PNG or JPEG.
#[derive(Debug, Deserialize)]
struct PhotoQuery {
    name: Option<String>,
}

/// A file name safe in a header and a download name.
fn safe_name(name: Option<&str>) -> String {
    let n: String = name
        .unwrap_or("photo")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if n.trim_matches(['.', '_']).is_empty() {
        "photo".into()
    } else {
        n
    }
}

/// Decodes a photo (limits of `files.rs`, EXIF orientation applied) and
/// keeps it.
async fn photo(
    State(s): State<Arc<Studio>>,
    Query(q): Query<PhotoQuery>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let name = safe_name(q.name.as_deref());
    let what = format!("the photo {name}");
    let decoded = tokio::task::spawn_blocking(move || {
        files::decode_image(Vec::from(body), &what)
            .map(|img| enc_image::PixelImage::from_dynamic(&img))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| bad(format!("{}. Choose a PNG or JPEG photo.", plain_error(&e))))?;
    let (width, height) = (decoded.width(), decoded.height());
    let id = s
        .add_photo(Photo {
            name: name.clone(),
            pixels: Arc::new(decoded),
        })
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(
        json!({ "id": id, "name": name, "width": width, "height": height }),
    ))
}

/// One filter of the page's chain: a built-in name and its parameters as
/// typed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterForm {
    name: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

/// `POST /api/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobForm {
    photo: String,
    filters: Vec<FilterForm>,
    #[serde(default)]
    map: Option<String>,
    key_bits: u32,
    #[serde(default)]
    regions: Vec<Region>,
}

/// The request a form asks for, checked: built-in filters with their own
/// parameters only, a chain the encryption can carry, 2048 or 3072 bits.
fn request(form: &JobForm) -> ApiResult<JobRequest> {
    if form.filters.is_empty() || form.filters.len() > MAX_CHAIN {
        return Err(bad(format!("choose 1 to {MAX_CHAIN} filters")));
    }
    if ![2048, 3072].contains(&form.key_bits) {
        return Err(bad("the key size is 2048 or 3072 bits"));
    }
    if form.regions.len() > MAX_REGIONS {
        return Err(bad(format!("at most {MAX_REGIONS} regions")));
    }
    let mut flags: Vec<(&str, String)> = Vec::new();
    for f in &form.filters {
        let Some(b) = he_filter::BUILTINS
            .iter()
            .find(|b| b.name == f.name || b.aliases.contains(&f.name.as_str()))
        else {
            return Err(bad(format!("there is no filter named {:?}", f.name)));
        };
        flags.push(("--filter", b.name.to_string()));
        for (p, v) in &f.params {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let flag = chain::param_flag(p)
                .filter(|_| b.params.contains(&p.as_str()))
                .ok_or_else(|| bad(format!("{} takes no parameter {p:?}", b.name)))?;
            flags.push((flag, v.to_string()));
        }
    }
    if let Some(m) = &form.map {
        flags.push(("--map", m.clone()));
    }
    let spec = chain::from_flags(flags).map_err(|e| bad(format!("{e:#}")))?;
    he_filter::encrypt_options(&spec.filters).map_err(bad)?;
    Ok(JobRequest {
        filters: spec.filters,
        mapping: spec.mapping,
        key_bits: form.key_bits,
        regions: form.regions.clone(),
    })
}

/// Queues a job.
async fn create(
    State(s): State<Arc<Studio>>,
    Json(form): Json<JobForm>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let req = request(&form)?;
    let id = s
        .add_job(&form.photo, req)
        .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

/// Every job.
async fn list(State(s): State<Arc<Studio>>) -> Json<serde_json::Value> {
    Json(json!({ "jobs": s.jobs() }))
}

/// Cancels or forgets a job.
async fn cancel(State(s): State<Arc<Studio>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    if s.cancel(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, "no such job".into()))
    }
}

/// `original.png`, `result.png`, `server-view.png` of a finished job, or
/// `download` (the result as an attachment).
async fn picture(
    State(s): State<Arc<Studio>>,
    Path((id, which)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (name, p) = s
        .pictures(&id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "no finished job with that id".into()))?;
    let bytes = match which.as_str() {
        "original.png" => p.original.clone(),
        "result.png" | "download" => p.result.clone(),
        "server-view.png" => p.server_view.clone(),
        _ => return Err(ApiError(StatusCode::NOT_FOUND, "no such picture".into())),
    };
    let mut resp = ([(header::CONTENT_TYPE, "image/png")], bytes).into_response();
    if which == "download" {
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let disposition = format!("attachment; filename=\"{stem}-private.png\"");
        if let Ok(v) = header::HeaderValue::from_str(&disposition) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}

/// The jobs, pushed whenever anything in them changed (`event: jobs`).
async fn events(
    State(s): State<Arc<Studio>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((s, None), |(s, last)| async move {
        if last.is_some() {
            tokio::time::sleep(TICK).await;
        }
        loop {
            let now = serde_json::to_string(&s.jobs()).unwrap_or_default();
            if last.as_ref() != Some(&now) {
                let event = Event::default().event("jobs").data(now.clone());
                return Some((Ok(event), (s, Some(now))));
            }
            tokio::time::sleep(TICK).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
