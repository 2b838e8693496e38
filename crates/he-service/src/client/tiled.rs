//! Tiled jobs from the client: the three requests of the protocol
//! ([`Client::create_tiled_job`], [`Client::upload_tile`],
//! [`Client::download_tile`]), a [`TileServer`] over them
//! ([`TiledSession`]) and the whole exchange for a plain image
//! ([`Client::filter_image_tiled`]): `he_filter`'s tiled pipeline
//! encrypts tile i+1 and decrypts tile i-1 while tile i is uploaded,
//! filtered and downloaded, and every tile is spot-checked against its
//! rows of the image before the caller sees it.
//!
//! For a resumed job: [`TiledRequest::job`] attaches to a job created
//! before (its tile states from [`Client::status`]), and
//! [`TiledRequest::skip`] leaves out the tiles already decrypted; a job
//! the server no longer knows (expired, or lost in a restart) is created
//! again from the same manifest, reported to [`TiledRequest::on_job`],
//! and only the tiles still to decrypt are uploaded to it.

use std::sync::Mutex;
use std::time::Duration;

use enc_image::{BorderMode, NoProgress, Phase, PixelImage, Progress, TilePlan};
use he_filter::tiled::{DecryptedTile, EncryptedTile, TileOptions, TileServer, TiledJob};
use he_filter::{SpotCheck, SpotCheckReport};
use paillier::{Keypair, PublicKey};

use super::endpoints::{Client, Step, check, check_job, json, read_bounded};
use super::error::{Error, Result};
use super::notice::Notice;
use super::retry::Deadline;
use crate::wire::{
    IMAGE_CONTENT_TYPE, IMAGE_HEADER_ROOM, JobSpec, JobStatus, MANIFEST_CONTENT_TYPE, TileState,
    TiledManifest,
};

/// How long one tile download asks the server to hold it while the tile
/// is queued or running (long poll).
const TILE_POLL: Duration = Duration::from_secs(10);

/// What `GET /v1/jobs/{id}/tiles/{i}` answered.
#[derive(Debug, Clone, PartialEq)]
pub enum TileDownload {
    /// The filtered tile (an encrypted image's bytes), whole; the server
    /// has freed it.
    Ready(Vec<u8>),
    /// The tile is still queued or running: the job's status.
    Pending(Box<JobStatus>),
}

impl Client {
    /// `POST /v1/jobs` with a tiled job's manifest (framed with the public
    /// key): creates the job, all tiles `missing`. One try.
    pub fn create_tiled_job(&self, manifest: &TiledManifest, pk: &PublicKey) -> Result<JobStatus> {
        self.create_within(&manifest.encode(&pk.to_bytes()), None)
    }

    fn create_within(&self, framed: &[u8], limit: Option<Duration>) -> Result<JobStatus> {
        let req = self.agent.post(self.url("/v1/jobs"));
        json(check(self.send_body(
            req,
            MANIFEST_CONTENT_TYPE,
            framed,
            &NoProgress,
            limit,
        )?)?)
    }

    /// `PUT /v1/jobs/{id}/tiles/{index}`: uploads tile `index` (an
    /// encrypted image's bytes, [`EncryptedTile::bytes`]), reporting the
    /// upload in bytes. One try. `409` if the tile is uploaded already,
    /// `422` if it does not match the manifest.
    pub fn upload_tile(
        &self,
        id: &str,
        index: usize,
        tile: &[u8],
        progress: &dyn Progress,
    ) -> Result<JobStatus> {
        self.upload_within(id, index, tile, progress, None)?
            .or_404()
    }

    fn upload_within(
        &self,
        id: &str,
        index: usize,
        tile: &[u8],
        progress: &dyn Progress,
        limit: Option<Duration>,
    ) -> Result<Step<JobStatus>> {
        let req = self
            .agent
            .put(self.url(&format!("/v1/jobs/{id}/tiles/{index}")));
        let resp = self.send_body(req, IMAGE_CONTENT_TYPE, tile, progress, limit)?;
        match check_job(resp)? {
            Step::Got(resp) => Ok(Step::Got(json(resp)?)),
            Step::Gone { instance, message } => Ok(Step::Gone { instance, message }),
        }
    }

    /// `GET /v1/jobs/{id}/tiles/{index}?wait=S`: the filtered tile, whole
    /// and at most `max_bytes` (a larger one is refused without being
    /// read), or its job's status if it is still queued or running after
    /// `wait`. One try. The server frees a tile once it has sent it: a
    /// second download is `410`.
    pub fn download_tile(
        &self,
        id: &str,
        index: usize,
        wait: Duration,
        max_bytes: u64,
    ) -> Result<TileDownload> {
        self.download_within(id, index, wait, max_bytes, &NoProgress, None)?
            .or_404()
    }

    fn download_within(
        &self,
        id: &str,
        index: usize,
        wait: Duration,
        max_bytes: u64,
        progress: &dyn Progress,
        limit: Option<Duration>,
    ) -> Result<Step<TileDownload>> {
        let path = format!("/v1/jobs/{id}/tiles/{index}?wait={}", wait.as_secs_f64());
        let req = self
            .get(&path, limit)
            .config()
            .timeout_per_read(Some(self.options.io_timeout + wait))
            .build();
        let mut resp = match check_job(req.call()?)? {
            Step::Got(resp) => resp,
            Step::Gone { instance, message } => return Ok(Step::Gone { instance, message }),
        };
        if resp.status() == 202 {
            return Ok(Step::Got(TileDownload::Pending(Box::new(json(resp)?))));
        }
        let max = max_bytes.min(self.max_result_bytes);
        Ok(Step::Got(TileDownload::Ready(read_bounded(
            &mut resp, max, progress,
        )?)))
    }
}

/// What a [`TiledSession`] moved, and the faults it got past.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TiledStats {
    /// Tile bytes uploaded (each successful upload).
    pub uploaded: u64,
    /// Result bytes downloaded.
    pub downloaded: u64,
    /// Requests retried after a refused, cut or timed-out connection.
    pub retries: u32,
    /// Jobs created (1, plus one for each job the server no longer knew).
    pub jobs_created: u32,
    /// Tiles uploaded again (a result freed before it arrived whole).
    pub reuploads: u32,
}

/// A tiled job on a server as a [`TileServer`]: `filter_tile` uploads the
/// tile, waits for it (long polls within the session's deadline) and
/// downloads its result, bounded by the upload's size. A job the server
/// no longer knows is created again from the manifest (at most
/// [`ClientOptions::attempts`](super::ClientOptions::attempts) jobs in
/// all), a cut connection retried as [`Client::run_job`] does.
pub struct TiledSession<'a> {
    client: &'a Client,
    /// The framed manifest, to create the job again.
    framed: Vec<u8>,
    count: usize,
    deadline: Deadline,
    on_job: &'a (dyn Fn(&JobStatus) + Sync),
    state: Mutex<SessionState>,
}

struct SessionState {
    job: JobStatus,
    /// The tiles' states when the session attached (all missing for a
    /// job created here): a tile the server holds is not uploaded again.
    known: Vec<TileState>,
    stats: TiledStats,
}

impl std::fmt::Debug for TiledSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiledSession")
            .field("server", &self.client.base_url())
            .field("job", &self.job().id)
            .field("tiles", &self.count)
            .finish_non_exhaustive()
    }
}

impl<'a> TiledSession<'a> {
    /// A session for `manifest` under `pk`: attached to job `attach` if
    /// given and the server still knows it (its tiles must be the
    /// manifest's, else [`Error::Protocol`]), else on a new job. Every
    /// job created (the first one too) is reported to `on_job`. Every
    /// request ends within `timeout` from now.
    pub fn open(
        client: &'a Client,
        manifest: &TiledManifest,
        pk: &PublicKey,
        attach: Option<&str>,
        timeout: Duration,
        on_job: &'a (dyn Fn(&JobStatus) + Sync),
    ) -> Result<Self> {
        let count = manifest.plan.count();
        let deadline = Deadline::after(timeout);
        let mut stats = TiledStats::default();
        let framed = manifest.encode(&pk.to_bytes());
        let mut gone = None;
        let found = match attach {
            Some(id) => {
                let doing = format!("asking for tiled job {id}");
                match client.retrying(&deadline, &doing, false, &mut stats.retries, |limit| {
                    client.status_within(id, Duration::ZERO, Some(limit))
                })? {
                    Step::Got(st) => {
                        check_attached(&st, manifest)?;
                        Some(st)
                    }
                    Step::Gone { message, .. } => {
                        gone = Some((id.to_string(), message));
                        None
                    }
                }
            }
            None => None,
        };
        let job = match found {
            Some(st) => st,
            None => {
                let st = client.retrying(
                    &deadline,
                    "creating the tiled job",
                    true,
                    &mut stats.retries,
                    |limit| client.create_within(&framed, Some(limit)),
                )?;
                stats.jobs_created += 1;
                if let Some((old, why)) = gone {
                    (client.notice)(&Notice::TiledJobRecreated {
                        old,
                        new: st.id.clone(),
                        why,
                    });
                }
                on_job(&st);
                st
            }
        };
        let known = job
            .tiles
            .as_ref()
            .map_or_else(|| vec![TileState::Missing; count], |t| t.states.clone());
        Ok(TiledSession {
            client,
            framed,
            count,
            deadline,
            on_job,
            state: Mutex::new(SessionState { job, known, stats }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The job's last status seen (its id changes if it was created again).
    #[must_use]
    pub fn job(&self) -> JobStatus {
        self.lock().job.clone()
    }

    /// What the session moved so far.
    #[must_use]
    pub fn stats(&self) -> TiledStats {
        self.lock().stats
    }

    /// Deletes the job on the server (its tiles not downloaded go with
    /// it); a failure is a [`Notice::NotDeleted`].
    pub fn delete(&self) {
        let id = self.job().id;
        if let Err(e) = self.client.delete(&id) {
            (self.client.notice)(&Notice::NotDeleted {
                job: id,
                error: e.to_string(),
            });
        }
    }

    /// Creates the job again after the server said `why` about job `old`.
    fn recreate(&self, old: &str, why: String) -> Result<String> {
        let mut retries = 0;
        let created = self.lock().stats.jobs_created;
        if created >= self.client.options.attempts {
            return Err(Error::Server {
                status: 404,
                message: format!("{why} (tiled job {old}; {created} jobs created, giving up)"),
            });
        }
        let st = self.client.retrying(
            &self.deadline,
            "creating the tiled job again",
            true,
            &mut retries,
            |limit| self.client.create_within(&self.framed, Some(limit)),
        )?;
        (self.client.notice)(&Notice::TiledJobRecreated {
            old: old.to_string(),
            new: st.id.clone(),
            why,
        });
        (self.on_job)(&st);
        let id = st.id.clone();
        let mut s = self.lock();
        s.stats.retries += retries;
        s.stats.jobs_created += 1;
        s.known = vec![TileState::Missing; self.count];
        s.job = st;
        Ok(id)
    }

    /// Uploads tile `index` unless the server holds it; then waits for
    /// its result and downloads it. The bytes sent and received count in
    /// `progress`'s upload and download phases (which the job, not the
    /// tile, starts and finishes).
    fn run_tile(&self, index: usize, tile: &[u8], progress: &dyn Progress) -> Result<Vec<u8>> {
        let max = tile.len() as u64 + IMAGE_HEADER_ROOM;
        let (mut id, known) = {
            let s = self.lock();
            (s.job.id.clone(), s.known.get(index).copied())
        };
        let mut upload = !matches!(
            known,
            Some(TileState::Queued | TileState::Running | TileState::Done)
        );
        let mut retries = 0;
        let mut reuploads = 0;
        let result = 'job: loop {
            if upload {
                let doing = format!("uploading tile {index} of job {id}");
                let step =
                    self.client
                        .retrying(&self.deadline, &doing, true, &mut retries, |limit| {
                            match self.client.upload_within(
                                &id,
                                index,
                                tile,
                                &InPhase(progress, Phase::Upload),
                                Some(limit),
                            ) {
                                // Uploaded already: a retried upload the server had read.
                                Err(Error::Server { status: 409, .. }) => Ok(None),
                                r => r.map(Some),
                            }
                        })?;
                match step {
                    Some(Step::Gone { message, .. }) => {
                        id = self.recreate(&id, message)?;
                        continue 'job;
                    }
                    Some(Step::Got(st)) => {
                        let mut s = self.lock();
                        s.stats.uploaded += tile.len() as u64;
                        s.job = st;
                    }
                    None => {}
                }
            }
            loop {
                let doing = format!("waiting for tile {index} of job {id}");
                let got =
                    self.client
                        .retrying(&self.deadline, &doing, false, &mut retries, |limit| {
                            match self.client.download_within(
                                &id,
                                index,
                                TILE_POLL.min(limit),
                                max,
                                &InPhase(progress, Phase::Download),
                                Some(limit),
                            ) {
                                // The result was freed (a download cut after the
                                // server sent it) or the upload is unknown: upload again.
                                Err(Error::Server {
                                    status: status @ (409 | 410),
                                    message,
                                }) => Ok(Err((status, message))),
                                r => r.map(Ok),
                            }
                        })?;
                match got {
                    Ok(Step::Got(TileDownload::Ready(bytes))) => break 'job bytes,
                    Ok(Step::Got(TileDownload::Pending(st))) => self.lock().job = *st,
                    Ok(Step::Gone { message, .. }) => {
                        id = self.recreate(&id, message)?;
                        upload = true;
                        continue 'job;
                    }
                    Err((status, message)) => {
                        reuploads += 1;
                        if reuploads > self.client.options.transfer_retries {
                            return Err(Error::Server { status, message });
                        }
                        (self.client.notice)(&Notice::TileUploadedAgain {
                            job: id.clone(),
                            tile: index,
                            why: message,
                        });
                        upload = true;
                        continue 'job;
                    }
                }
            }
        };
        let mut s = self.lock();
        s.stats.downloaded += result.len() as u64;
        s.stats.retries += retries;
        s.stats.reuploads += reuploads;
        if let Some(k) = s.known.get_mut(index) {
            *k = TileState::Fetched;
        }
        Ok(result)
    }
}

impl TileServer for TiledSession<'_> {
    type Error = Error;

    fn filter_tile(&self, tile: EncryptedTile, progress: &dyn Progress) -> Result<Vec<u8>> {
        self.run_tile(tile.index, &tile.bytes, progress)
    }
}

/// One transfer's bytes as units of `phase` of a job's progress: the
/// transfer's own start and finish are left out, the job has its phases.
struct InPhase<'a>(&'a dyn Progress, Phase);

impl Progress for InPhase<'_> {
    fn advance(&self, n: u64) {
        self.0.advance_phase(self.1, n);
    }
}

/// A session whose uploads are shown to a hook first, and whose tiles
/// count as the server's work once their results are here.
struct Watched<'s, 'a> {
    session: &'s TiledSession<'a>,
    on_upload: &'s (dyn Fn(usize, &[u8]) + Sync),
    job: &'s TiledJob<'s>,
}

impl TileServer for Watched<'_, '_> {
    type Error = Error;

    fn filter_tile(&self, tile: EncryptedTile, progress: &dyn Progress) -> Result<Vec<u8>> {
        let index = tile.index;
        (self.on_upload)(index, &tile.bytes);
        let out = self.session.filter_tile(tile, progress)?;
        progress.advance_phase(Phase::Filter, self.job.totals_of([index]).filter);
        Ok(out)
    }
}

/// Checks that job `st` is a tiled job of `manifest`'s image and chain.
fn check_attached(st: &JobStatus, manifest: &TiledManifest) -> Result<()> {
    let plan = &manifest.plan;
    let labels: Vec<String> = manifest
        .filters
        .iter()
        .map(he_filter::Filter::label)
        .collect();
    let same = st.tiles.as_ref().is_some_and(|t| {
        t.states.len() == plan.count()
            && t.tile_rows as usize == plan.tile_rows()
            && t.halo_rows == plan.halo_rows()
    }) && (st.width as usize, st.height as usize) == (plan.width(), plan.height())
        && st.filters == labels;
    if same {
        Ok(())
    } else {
        Err(Error::Protocol(format!(
            "job {} is not a tiled job of this image and chain ({}x{}, {:?})",
            st.id, st.width, st.height, st.filters
        )))
    }
}

/// One plain image to filter on the server tile by tile, for
/// [`Client::filter_image_tiled`]. [`TiledRequest::new`] sets the
/// defaults; the fields are public to change them.
#[derive(Clone, Copy)]
pub struct TiledRequest<'a> {
    /// The key pair: the private key stays here.
    pub keypair: &'a Keypair,
    /// The image to filter.
    pub image: &'a PixelImage,
    /// The filter chain.
    pub spec: &'a JobSpec,
    /// The border at the image's edges (default replicate).
    pub border: BorderMode,
    /// What each tile's spot check samples (default
    /// [`SpotCheck::default`]: one value of every ciphertext and 2000
    /// random values, per tile).
    pub spot_check: SpotCheck,
    /// Rows per tile and the window of tiles alive (default
    /// [`TileOptions::default`]: about 4 MiB of ciphertexts per tile, 3
    /// tiles).
    pub tiles: TileOptions,
    /// The deadline of the whole exchange (default one hour).
    pub timeout: Duration,
    /// Sees the encrypt, filter and decrypt phases, and the bytes sent
    /// and received in the upload and download phases, which it starts
    /// itself if it wants them (default none).
    pub progress: &'a dyn Progress,
    /// Attach to this tiled job (made for the same image, chain, key and
    /// plan) instead of creating one (default none).
    pub job: Option<&'a str>,
    /// Tiles not to run, already decrypted (default none).
    pub skip: &'a [usize],
    /// Told about every job created, the first one and any created again
    /// when the server no longer knew the job (default: nothing).
    pub on_job: &'a (dyn Fn(&JobStatus) + Sync),
    /// Sees each tile's bytes (index, encrypted image) just before they
    /// are sent, as the server will see them (default: nothing).
    pub on_upload: &'a (dyn Fn(usize, &[u8]) + Sync),
}

impl<'a> TiledRequest<'a> {
    /// A request with the defaults (see the fields).
    #[must_use]
    pub fn new(keypair: &'a Keypair, image: &'a PixelImage, spec: &'a JobSpec) -> Self {
        TiledRequest {
            keypair,
            image,
            spec,
            border: BorderMode::Replicate,
            spot_check: SpotCheck::default(),
            tiles: TileOptions::default(),
            timeout: Duration::from_secs(3600),
            progress: &NoProgress,
            job: None,
            skip: &[],
            on_job: &|_| {},
            on_upload: &|_, _| {},
        }
    }

    /// The tile plan the request runs (what a resume records).
    pub fn plan(&self) -> Result<TilePlan> {
        let opts = he_filter::encrypt_options(&self.spec.filters)?.border(self.border);
        Ok(TilePlan::for_encryption(
            self.image.width(),
            self.image.height(),
            self.image.color(),
            self.keypair.public_key().bits(),
            &opts,
            self.tiles.tile_rows,
        )?)
    }
}

impl std::fmt::Debug for TiledRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiledRequest")
            .field("image", &(self.image.width(), self.image.height()))
            .field("spec", self.spec)
            .field("border", &self.border)
            .field("tiles", &self.tiles)
            .field("job", &self.job)
            .field("skip", &self.skip.len())
            .finish_non_exhaustive()
    }
}

/// What [`Client::filter_image_tiled`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct TiledRun {
    /// The job's last status (the job is deleted on the server at the end);
    /// `None` when every tile was skipped (a resume that already held them
    /// all): then the server was not asked anything.
    pub job: Option<JobStatus>,
    /// The tile plan.
    pub plan: TilePlan,
    /// Tiles run (the plan's, less those skipped).
    pub ran: usize,
    /// Bytes moved and faults ridden out.
    pub stats: TiledStats,
    /// The spot checks of every tile, added up.
    pub pixels_checked: usize,
    /// Values compared by the spot checks, all tiles.
    pub values_checked: usize,
    /// Ciphertexts of which a value was compared, all tiles.
    pub ciphertexts_checked: usize,
}

impl Client {
    /// Filters a plain image on the server tile by tile and hands each
    /// tile to `sink`, decrypted and verified, in plan order: the image
    /// is cut by a [`TilePlan`] ([`TiledRequest::tiles`]), a tiled job is
    /// created from its manifest (or attached to, [`TiledRequest::job`]),
    /// and `he_filter`'s pipeline encrypts, uploads, waits for,
    /// downloads and decrypts the tiles with at most the window's tiles
    /// alive, so that memory stays bounded whatever the image's size and
    /// uploads keep to the pace of decryption. Every tile is checked to be
    /// the chain's result at its rows (dimensions and history when loaded,
    /// then [`he_filter::spot_check_rows`]: one value of every ciphertext
    /// and the request's random values); a tile that fails is
    /// [`Error::Verification`] and stops the job before `sink` sees it.
    /// The decrypted tiles, in order, are bit for bit the whole image's
    /// result. The job is deleted on the server at the end.
    pub fn filter_image_tiled(
        &self,
        request: &TiledRequest<'_>,
        mut sink: impl FnMut(DecryptedTile, SpotCheckReport) -> Result<()>,
    ) -> Result<TiledRun> {
        let TiledRequest {
            keypair,
            image,
            spec,
            border,
            spot_check,
            tiles,
            timeout,
            progress,
            job,
            skip,
            on_job,
            on_upload,
        } = *request;
        let opts = he_filter::encrypt_options(&spec.filters)?.border(border);
        let pk = keypair.public_key();
        let tiled = TiledJob::new(image, &spec.filters, &opts, pk, &tiles)?;
        let plan = *tiled.plan();
        let manifest = TiledManifest::new(spec.filters.clone(), image.color(), plan, &opts);
        let todo: Vec<usize> = (0..plan.count()).filter(|i| !skip.contains(i)).collect();
        if todo.is_empty() {
            // Nothing to send: no job to open or charge, and no server to
            // reach (it may be down; the job it held expires on its own).
            return Ok(TiledRun {
                job: None,
                plan,
                ran: 0,
                stats: TiledStats::default(),
                pixels_checked: 0,
                values_checked: 0,
                ciphertexts_checked: 0,
            });
        }
        keypair.private_key().precompute();
        let session = TiledSession::open(self, &manifest, pk, job, timeout, on_job)?;
        let server = Watched {
            session: &session,
            on_upload,
            job: &tiled,
        };
        let (mut pixels, mut values, mut ciphertexts) = (0, 0, 0);
        tiled.run_tiles(&todo, keypair.private_key(), &server, progress, |tile| {
            let report = he_filter::spot_check_rows(
                image,
                &spec.filters,
                border,
                &tile.meta,
                &tile.image,
                tile.rows.clone(),
                &spot_check,
            )?;
            pixels += report.pixels_evaluated;
            values += report.values_compared;
            ciphertexts += report.ciphertexts_sampled;
            sink(tile, report)
        })?;
        session.delete();
        Ok(TiledRun {
            job: Some(session.job()),
            plan,
            ran: todo.len(),
            stats: session.stats(),
            pixels_checked: pixels,
            values_checked: values,
            ciphertexts_checked: ciphertexts,
        })
    }
}
