//! The studio's state: the server it talks to, the keys it holds, the
//! photos the page sent, and the queue of jobs with one worker thread
//! that runs them one after the other. Jobs are kept here, not in the
//! page, so that a reload finds them again.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use enc_image::{BorderMode, OutputMapping, PixelImage};
use he_filter::Filter;
use he_service::client::{Client, ClientOptions};
use he_service::wire::JobSpec;
use paillier::Keypair;
use serde::Serialize;

use super::compose::{self, Region};
use super::meter::{KEY, Meter, PhaseView};
use super::remote;

/// Photos kept at once (the oldest goes first).
const MAX_PHOTOS: usize = 16;
/// Pixel bytes of all photos kept at once.
const MAX_PHOTO_BYTES: usize = 1 << 30;
/// Jobs kept at once, finished ones dropped oldest first.
const MAX_JOBS: usize = 32;
/// Jobs waiting in the queue at once.
const MAX_QUEUED: usize = 16;
/// How long the worker sleeps between looks at an empty queue.
const IDLE: Duration = Duration::from_secs(1);

/// The server the jobs go to.
#[derive(Clone)]
pub(super) struct Connection {
    /// Its base URL.
    pub(super) server: String,
    /// The API token, if any.
    pub(super) token: Option<String>,
    /// Whether it is the server started in this process.
    pub(super) embedded: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("embedded", &self.embedded)
            .finish()
    }
}

/// A photo the page sent, decoded and upright.
#[derive(Debug)]
pub(super) struct Photo {
    /// The file name the page gave.
    pub(super) name: String,
    /// The pixels.
    pub(super) pixels: Arc<PixelImage>,
}

/// What a job is to do.
#[derive(Debug, Clone)]
pub(super) struct JobRequest {
    /// The chain.
    pub(super) filters: Vec<Filter>,
    /// How signed results become pixels.
    pub(super) mapping: OutputMapping,
    /// The size of the key to use (ignored with `--key`).
    pub(super) key_bits: u32,
    /// Where the filter is kept (empty: everywhere).
    pub(super) regions: Vec<Region>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum State {
    /// Waiting for the worker.
    Queued,
    /// Being worked on.
    Running,
    /// Finished, verified.
    Done,
    /// Failed: see the error.
    Failed,
    /// Cancelled by the page.
    Cancelled,
}

impl State {
    fn finished(self) -> bool {
        matches!(self, State::Done | State::Failed | State::Cancelled)
    }
}

/// What the worker needs to run a job.
#[derive(Debug)]
struct Work {
    request: JobRequest,
    input: Arc<PixelImage>,
    connection: Connection,
}

/// The pictures of a finished job, PNG-encoded.
#[derive(Debug)]
pub(super) struct Pictures {
    /// The photo as it was sent.
    pub(super) original: Vec<u8>,
    /// The result (composited into the regions, if any).
    pub(super) result: Vec<u8>,
    /// The ciphertext bytes the server got, as RGB noise.
    pub(super) server_view: Vec<u8>,
}

/// One job.
#[derive(Debug)]
struct Job {
    id: String,
    name: String,
    width: usize,
    height: usize,
    chain: String,
    key_bits: u32,
    regions: usize,
    server: String,
    state: State,
    error: Option<String>,
    verification: Option<String>,
    server_seconds: Option<f64>,
    meter: Arc<Meter>,
    /// The work, until the worker takes it.
    work: Option<Work>,
    pictures: Option<Arc<Pictures>>,
}

/// One job as the page sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct JobView {
    /// Its id in this studio.
    pub(super) id: String,
    /// The photo's file name.
    pub(super) name: String,
    /// The photo's width.
    pub(super) width: usize,
    /// The photo's height.
    pub(super) height: usize,
    /// The chain in words.
    pub(super) chain: String,
    /// The key size.
    pub(super) key_bits: u32,
    /// Rectangles the filter is kept in (0: the whole photo).
    pub(super) regions: usize,
    /// The server's URL.
    pub(super) server: String,
    /// Where it is.
    pub(super) state: State,
    /// What went wrong, in words.
    pub(super) error: Option<String>,
    /// What was checked, once done.
    pub(super) verification: Option<String>,
    /// The server's own filter time.
    pub(super) server_seconds: Option<f64>,
    /// Every phase's progress and time.
    pub(super) phases: Vec<PhaseView>,
}

#[derive(Debug, Default)]
struct Tables {
    photos: VecDeque<(String, Photo)>,
    jobs: VecDeque<Job>,
}

/// Everything the studio holds.
pub(super) struct Studio {
    connection: Mutex<Connection>,
    ca_pem: Option<Vec<u8>>,
    /// The key of `--key`, used for every job.
    fixed_key: Option<Arc<Keypair>>,
    /// Keys generated here, one per size, in memory only.
    keys: Mutex<HashMap<u32, Arc<Keypair>>>,
    tables: Mutex<Tables>,
    wake: Condvar,
}

impl std::fmt::Debug for Studio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Studio").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh random id: 16 hex digits from the OS CSPRNG.
fn new_id() -> Result<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| anyhow!("the OS random source failed: {e}"))?;
    Ok(format!("{:016x}", u64::from_le_bytes(b)))
}

fn png(img: &image::DynamicImage) -> Result<Vec<u8>> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .context("cannot encode a PNG")?;
    Ok(buf.into_inner())
}

impl Studio {
    /// The studio's state, talking to `connection`, with the key of
    /// `--key` if given and the CA certificates of `--ca`.
    pub(super) fn new(
        connection: Connection,
        fixed_key: Option<Keypair>,
        ca_pem: Option<Vec<u8>>,
    ) -> Self {
        Studio {
            connection: Mutex::new(connection),
            ca_pem,
            fixed_key: fixed_key.map(Arc::new),
            keys: Mutex::new(HashMap::new()),
            tables: Mutex::new(Tables::default()),
            wake: Condvar::new(),
        }
    }

    /// The server jobs go to now.
    pub(super) fn connection(&self) -> Connection {
        lock(&self.connection).clone()
    }

    /// Sends jobs to `c` from now on.
    pub(super) fn set_connection(&self, c: Connection) {
        *lock(&self.connection) = c;
    }

    /// The size of the `--key` key, if one was given.
    pub(super) fn fixed_key_bits(&self) -> Option<u32> {
        self.fixed_key.as_ref().map(|k| k.public_key().bits())
    }

    /// A client for `c`.
    pub(super) fn client(&self, c: &Connection) -> Result<Client> {
        let options = ClientOptions {
            ca_pem: self.ca_pem.clone(),
            ..ClientOptions::default()
        };
        let mut client = Client::with_options(&c.server, options)?;
        if let Some(t) = &c.token {
            client = client.with_token(t)?;
        }
        Ok(client)
    }

    /// The key for a job: `--key`'s, or one of `bits` bits generated once.
    fn keypair(&self, bits: u32) -> Result<Arc<Keypair>> {
        if let Some(k) = &self.fixed_key {
            return Ok(Arc::clone(k));
        }
        if let Some(k) = lock(&self.keys).get(&bits) {
            return Ok(Arc::clone(k));
        }
        let kp = Arc::new(Keypair::generate(bits)?);
        lock(&self.keys)
            .entry(bits)
            .or_insert_with(|| Arc::clone(&kp));
        Ok(kp)
    }

    /// Keeps a photo; returns its id. The oldest photos go first when more
    /// than [`MAX_PHOTOS`] or [`MAX_PHOTO_BYTES`] would be kept.
    pub(super) fn add_photo(&self, photo: Photo) -> Result<String> {
        let id = new_id()?;
        let mut t = lock(&self.tables);
        t.photos.push_back((id.clone(), photo));
        while t.photos.len() > MAX_PHOTOS
            || t.photos.iter().map(|(_, p)| p.pixels.len()).sum::<usize>() > MAX_PHOTO_BYTES
        {
            t.photos.pop_front();
        }
        Ok(id)
    }

    /// Queues a job for photo `photo`; returns its id.
    pub(super) fn add_job(&self, photo: &str, request: JobRequest) -> Result<String> {
        let connection = self.connection();
        let id = new_id()?;
        let mut t = lock(&self.tables);
        let Some((_, p)) = t.photos.iter().find(|(pid, _)| pid == photo) else {
            bail!("that photo is no longer here; choose it again");
        };
        let (name, pixels) = (p.name.clone(), Arc::clone(&p.pixels));
        if t.jobs.iter().filter(|j| j.state == State::Queued).count() >= MAX_QUEUED {
            bail!("{MAX_QUEUED} jobs are already waiting; wait for some to finish");
        }
        let chain = request
            .filters
            .iter()
            .map(Filter::label)
            .collect::<Vec<_>>()
            .join(" then ");
        let key_bits = self.fixed_key_bits().unwrap_or(request.key_bits);
        t.jobs.push_back(Job {
            id: id.clone(),
            name,
            width: pixels.width(),
            height: pixels.height(),
            chain,
            key_bits,
            regions: request.regions.len(),
            server: connection.server.clone(),
            state: State::Queued,
            error: None,
            verification: None,
            server_seconds: None,
            meter: Arc::new(Meter::new()),
            work: Some(Work {
                request,
                input: pixels,
                connection,
            }),
            pictures: None,
        });
        while t.jobs.len() > MAX_JOBS {
            let Some(i) = t.jobs.iter().position(|j| j.state.finished()) else {
                break;
            };
            t.jobs.remove(i);
        }
        drop(t);
        self.wake.notify_all();
        Ok(id)
    }

    /// Every job, oldest first.
    pub(super) fn jobs(&self) -> Vec<JobView> {
        lock(&self.tables)
            .jobs
            .iter()
            .map(|j| JobView {
                id: j.id.clone(),
                name: j.name.clone(),
                width: j.width,
                height: j.height,
                chain: j.chain.clone(),
                key_bits: j.key_bits,
                regions: j.regions,
                server: j.server.clone(),
                state: j.state,
                error: j.error.clone(),
                verification: j.verification.clone(),
                server_seconds: j.server_seconds,
                phases: j.meter.view(),
            })
            .collect()
    }

    /// The pictures of a finished job.
    pub(super) fn pictures(&self, id: &str) -> Option<(String, Arc<Pictures>)> {
        let t = lock(&self.tables);
        let j = t.jobs.iter().find(|j| j.id == id)?;
        Some((j.name.clone(), Arc::clone(j.pictures.as_ref()?)))
    }

    /// Cancels a queued or running job, or forgets a finished one.
    /// Whether the job was there.
    pub(super) fn cancel(&self, id: &str) -> bool {
        let mut t = lock(&self.tables);
        let Some(i) = t.jobs.iter().position(|j| j.id == id) else {
            return false;
        };
        let j = &mut t.jobs[i];
        if j.state.finished() {
            t.jobs.remove(i);
        } else {
            j.meter.cancel();
            j.state = State::Cancelled;
            j.work = None;
            j.error = Some("cancelled".into());
        }
        true
    }

    /// Takes the next queued job, waiting up to [`IDLE`] for one.
    fn next(&self) -> Option<(String, Arc<Meter>, Work)> {
        let mut t = lock(&self.tables);
        loop {
            if let Some(j) = t.jobs.iter_mut().find(|j| j.state == State::Queued) {
                let work = j.work.take()?;
                j.state = State::Running;
                return Some((j.id.clone(), Arc::clone(&j.meter), work));
            }
            let (guard, timeout) = self
                .wake
                .wait_timeout(t, IDLE)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t = guard;
            if timeout.timed_out() {
                return None;
            }
        }
    }

    /// Records how a job ended, unless it was cancelled meanwhile.
    fn settle(&self, id: &str, outcome: Result<Finished>) {
        let mut t = lock(&self.tables);
        let Some(j) = t.jobs.iter_mut().find(|j| j.id == id) else {
            return;
        };
        if j.state != State::Running {
            return;
        }
        match outcome {
            Ok(f) => {
                j.state = State::Done;
                j.verification = Some(f.verification);
                j.server_seconds = f.server_seconds;
                j.pictures = Some(Arc::new(f.pictures));
            }
            Err(e) => {
                j.state = State::Failed;
                j.error = Some(plain_error(&e));
            }
        }
    }

    /// One job, from key to pictures.
    fn run(
        &self,
        meter: &Meter,
        request: &JobRequest,
        input: &PixelImage,
        connection: &Connection,
    ) -> Result<Finished> {
        meter.begin(KEY, 0);
        let kp = self.keypair(request.key_bits)?;
        meter.end();
        if meter.is_cancelled() {
            bail!("cancelled");
        }
        let client = self.client(connection)?;
        let spec = JobSpec {
            filters: request.filters.clone(),
        };
        let outcome = remote::filter_privately(
            &client,
            &kp,
            input,
            &spec,
            (BorderMode::Replicate, request.mapping),
            meter,
        )?;
        if meter.is_cancelled() {
            bail!("cancelled");
        }
        let shown = compose::composite(input, &outcome.result, &request.regions)?;
        let r = &outcome.checked;
        Ok(Finished {
            verification: format!(
                "Verified: the server applied exactly {} (history checked), and {} values \
                 recomputed here from the photo ({} ciphertexts sampled, {} random values \
                 in each of {} {}) all match.",
                spec.filters
                    .iter()
                    .map(Filter::label)
                    .collect::<Vec<_>>()
                    .join(" then "),
                r.values,
                r.ciphertexts,
                r.random_per_tile,
                r.tiles,
                if r.tiles == 1 { "tile" } else { "tiles" }
            ),
            server_seconds: outcome.status.as_ref().and_then(|s| s.filter_seconds),
            pictures: Pictures {
                original: png(&input.to_dynamic()?)?,
                result: png(&shown.to_dynamic()?)?,
                server_view: png(&image::DynamicImage::ImageRgb8(outcome.seen.picture()))?,
            },
        })
    }
}

/// The worker: runs queued jobs one after the other, until the studio is
/// gone.
pub(super) fn work(studio: &Weak<Studio>) {
    while let Some(s) = studio.upgrade() {
        let Some((id, meter, work)) = s.next() else {
            continue;
        };
        let outcome = s.run(&meter, &work.request, &work.input, &work.connection);
        meter.end_all();
        s.settle(&id, outcome);
    }
}

/// A job's end, done.
struct Finished {
    verification: String,
    server_seconds: Option<f64>,
    pictures: Pictures,
}

/// An error in words a person can act on.
pub(super) fn plain_error(e: &anyhow::Error) -> String {
    use he_service::client::Error as C;
    let detail = e
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    match e.chain().find_map(|c| c.downcast_ref::<C>()) {
        Some(C::Unauthorized { message }) => format!(
            "The server refused the token ({message}). Enter the right token under Server and \
             check the connection."
        ),
        Some(C::Http(_) | C::Deadline { .. } | C::Retries { .. } | C::Io(_)) => {
            format!("Could not reach the server, or the connection was cut: {detail}")
        }
        Some(C::Tls(_)) => format!("The secure connection to the server failed: {detail}"),
        Some(C::Server { status, message }) => {
            format!("The server refused the job ({status}): {message}")
        }
        Some(C::Verification(_) | C::Protocol(_)) => {
            format!("The server's result failed verification, so it is not shown: {detail}")
        }
        _ => detail,
    }
}
