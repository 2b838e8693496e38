//! Resuming an interrupted tiled job: the finished tiles' pixels are kept
//! in a file next to the output, so that running the same command again
//! neither encrypts, filters nor decrypts them a second time.
//!
//! `OUT.he-partial` is owner-only (0600, like the key file), created
//! atomically and never opened through a symlink. It is a framed header
//! ([`paillier::frame`]: magic, version, length, body, SHA-256) saying what
//! the run is, then one framed record per finished tile, appended and
//! synced as each tile is checked:
//!
//! ```text
//! header   JSON of RunHeader: the input's SHA-256 and dimensions, the chain,
//!          border and output mapping, the tile plan, the key's fingerprint
//! tile     the header's digest, the tile's index (u32 LE), its channels (u8),
//!          its rows' pixels
//! job      the header's digest, JSON of ServiceJob (server URL and job id),
//!          for `he submit`: the last one counts
//! ...
//! ```
//!
//! On start, a state whose header differs from this run's is refused with
//! what differs (never overwritten); `--restart` deletes it. A record cut
//! short at the end of the file (the client killed while writing it) is
//! dropped and its tile done again; any other damage is refused. The file
//! is deleted once the output is written.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use enc_image::{BorderMode, ColorLayout, OutputMapping, PixelImage, TilePlan};
use he_filter::Filter;
use paillier::PublicKey;
use paillier::frame::{DIGEST_LEN, Format, sha256};
use serde::{Deserialize, Serialize};

use crate::canvas::Canvas;
use crate::files;

/// The header of a partial file (its version is the frame's).
const HEADER: Format<8> = Format::new(*b"HEPARTL\0", 1, "resume state");
/// One finished tile.
const RECORD: Format<8> = Format::new(*b"HETILE\0\0", 1, "resume state tile");
/// The job on a server that holds the run's other tiles.
const JOB: Format<8> = Format::new(*b"HEJOBID\0", 1, "resume state job");
/// Largest job record body (a URL and an id).
const MAX_JOB: usize = 64 << 10;
/// Largest header body accepted (a chain of custom kernels fits easily).
const MAX_HEADER: usize = 1 << 20;

/// The suffix of the state file, after the output's name.
pub(crate) const SUFFIX: &str = ".he-partial";

/// Where the state of a run writing `output` lives: `OUT.he-partial`.
pub(crate) fn state_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// A job on a server, for a client that resumes through the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServiceJob {
    /// The server's base URL.
    pub(crate) url: String,
    /// The job's id on that server.
    pub(crate) job_id: String,
}

/// Everything the finished tiles depend on: a run may use them only if all
/// of it is the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunHeader {
    /// SHA-256 of the input's pixels (after any `--resize`), hex.
    pub(crate) input_sha256: String,
    /// The input's width.
    pub(crate) width: usize,
    /// The input's height.
    pub(crate) height: usize,
    /// The input's colour layout.
    pub(crate) color: ColorLayout,
    /// The filter chain.
    pub(crate) chain: Vec<Filter>,
    /// The border at the image's edges.
    pub(crate) border: BorderMode,
    /// How exact values become pixels.
    pub(crate) mapping: OutputMapping,
    /// How the image is cut into tiles.
    pub(crate) plan: TilePlan,
    /// SHA-256 fingerprint of the public key, hex.
    pub(crate) key_fingerprint: String,
}

impl RunHeader {
    /// The header of a run of `chain` on `img` cut by `plan` under `pk`.
    pub(crate) fn new(
        img: &PixelImage,
        chain: &[Filter],
        border: BorderMode,
        mapping: OutputMapping,
        plan: TilePlan,
        pk: &PublicKey,
    ) -> Self {
        RunHeader {
            input_sha256: hex(&sha256(img.data())),
            width: img.width(),
            height: img.height(),
            color: img.color(),
            chain: chain.to_vec(),
            border,
            mapping,
            plan,
            key_fingerprint: hex(&pk.fingerprint()),
        }
    }

    /// What differs between the run that wrote `self` and `now`, in words
    /// (empty when they match).
    fn differences(&self, now: &RunHeader) -> Vec<String> {
        let mut out = Vec::new();
        if (self.width, self.height, self.color) != (now.width, now.height, now.color) {
            out.push(format!(
                "the input image is {}x{} {:?}, it was {}x{} {:?}",
                now.width, now.height, now.color, self.width, self.height, self.color
            ));
        } else if self.input_sha256 != now.input_sha256 {
            out.push(format!(
                "the input image's pixels differ (SHA-256 {} now, {} then)",
                short(&now.input_sha256),
                short(&self.input_sha256)
            ));
        }
        if self.chain != now.chain {
            out.push(format!(
                "the filter chain is {:?}, it was {:?}",
                labels(&now.chain),
                labels(&self.chain)
            ));
        }
        if self.border != now.border {
            out.push(format!(
                "the border is {}, it was {}",
                now.border.name(),
                self.border.name()
            ));
        }
        if self.mapping != now.mapping {
            out.push(format!(
                "the output mapping is {:?}, it was {:?}",
                now.mapping, self.mapping
            ));
        }
        // The halo follows from the chain: a plan that differs only there
        // is said by the chain's line.
        if self.plan.tile_rows() != now.plan.tile_rows()
            || (self.plan != now.plan && self.chain == now.chain)
        {
            // Named: the default height may have changed since (it did
            // in the version that picks the height that packs best).
            out.push(format!(
                "the tiles are {} rows (+{} halo), they were {} rows (+{} halo); \
                 pass --tile-rows {} to go on with them",
                now.plan.tile_rows(),
                now.plan.halo_rows(),
                self.plan.tile_rows(),
                self.plan.halo_rows(),
                self.plan.tile_rows()
            ));
        }
        if self.key_fingerprint != now.key_fingerprint {
            out.push(format!(
                "the key is {}..., it was {}...; pass the --key FILE of that run",
                short(&now.key_fingerprint),
                short(&self.key_fingerprint)
            ));
        }
        out
    }
}

fn labels(chain: &[Filter]) -> Vec<String> {
    chain.iter().map(Filter::label).collect()
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 characters of a hex digest, for messages.
fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// The pixels of one finished tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DoneTile {
    /// Which tile of the plan.
    pub(crate) index: usize,
    /// Its colour layout (the chain's output, which may differ from the
    /// input's).
    pub(crate) color: ColorLayout,
    /// Its rows' pixels, interleaved.
    pub(crate) pixels: Vec<u8>,
}

/// What an interrupted run left besides its tiles (which
/// [`Partial::open`] puts on the canvas as it reads them): how many there
/// were, and its server job.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// How many finished tiles the state held, each checked.
    pub(crate) tiles: usize,
    /// The last job on a server it recorded.
    pub(crate) job: Option<ServiceJob>,
}

impl Found {
    /// Says what an interrupted run left (in `state`'s file).
    pub(crate) fn report(&self, state: &Partial) {
        if self.tiles > 0 {
            println!(
                "  resuming: {} of {} tiles were done by an interrupted run (kept in {})",
                self.tiles,
                state.plan.count(),
                state.path().display()
            );
        }
    }
}

/// The state of a run: its file, open for appending finished tiles.
#[derive(Debug)]
pub(crate) struct Partial {
    path: PathBuf,
    file: File,
    header_digest: [u8; DIGEST_LEN],
    plan: TilePlan,
}

/// The error for a state file found where this run cannot use it.
fn stale(path: &Path, why: &str) -> anyhow::Error {
    anyhow!(
        "{} holds the finished tiles of an interrupted run, and {why}. Run the same \
         command as then to resume it, or add --restart to delete it and start over",
        path.display()
    )
}

/// For a run that cannot resume (no kept key, or not tiled): refuses to go
/// on while a state file of another run is there, unless `restart`, which
/// deletes it. `why` says why this run cannot use it.
pub(crate) fn refuse_stale(output: &Path, restart: bool, why: &str) -> Result<()> {
    let path = state_path(output);
    if path.symlink_metadata().is_err() {
        return Ok(());
    }
    if restart {
        return remove(&path);
    }
    Err(stale(&path, why))
}

fn remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).with_context(|| format!("cannot delete {}", path.display()))
}

impl Partial {
    /// Opens the state of `header`'s run writing `output`: a new one (no
    /// state file yet, or `restart`, which deletes the old one), or the
    /// one there if it is this run's, whose finished tiles are put on
    /// `canvas` one by one as they are read and checked (never all in
    /// memory at once) and whose server job is returned. A state of
    /// another run is refused with what differs.
    pub(crate) fn open(
        output: &Path,
        header: &RunHeader,
        restart: bool,
        canvas: &mut Canvas,
    ) -> Result<(Partial, Found)> {
        let path = state_path(output);
        if restart && path.symlink_metadata().is_ok() {
            remove(&path)?;
        }
        let body = serde_json::to_vec(header)?;
        let sealed = HEADER.seal(&body);
        let header_digest = digest_of(&sealed);
        if path.symlink_metadata().is_err() {
            files::write_atomic(&path, &sealed, false, true)?;
            let file = files::open_for_append(&path, "resume state")?;
            return Ok((
                Partial {
                    path,
                    file,
                    header_digest,
                    plan: header.plan,
                },
                Found::default(),
            ));
        }
        let mut file = files::open_for_append(&path, "resume state")?;
        let (theirs, their_digest, mut at) = read_header(&mut file, &path)?;
        let differs = theirs.differences(header);
        if !differs.is_empty() {
            return Err(stale(
                &path,
                &format!("this run differs: {}", differs.join("; ")),
            ));
        }
        let mut found = Found::default();
        let mut seen = vec![false; header.plan.count()];
        let max_tile = DIGEST_LEN + 5 + header.plan.tile_rows() * header.plan.width() * 4;
        let kinds = [(&RECORD, max_tile), (&JOB, MAX_JOB)];
        while let Some((kind, record)) = read_frame(&mut file, &path, &kinds)? {
            at += record.len() as u64;
            if kind == 1 {
                found.job = Some(check_job(&record, &their_digest, &path)?);
                continue;
            }
            let tile = check_record(&record, &their_digest, &header.plan, &path)?;
            if std::mem::replace(&mut seen[tile.index], true) {
                bail!(
                    "{}: tile {} is recorded twice; the file was changed. \
                     Add --restart to delete it and start over",
                    path.display(),
                    tile.index
                );
            }
            // Into place at once, one tile in memory at a time.
            canvas
                .put(tile.index, tile.color, &tile.pixels)
                .map_err(|e| {
                    anyhow!(
                        "{}: {e}; the file was changed. Add --restart to delete it and start over",
                        path.display()
                    )
                })?;
            found.tiles += 1;
        }
        // A record cut short by an interruption is dropped: its tile is
        // done again.
        file.set_len(at)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok((
            Partial {
                path,
                file,
                header_digest: their_digest,
                plan: header.plan,
            },
            found,
        ))
    }

    /// The state file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records a finished, checked tile: appended and synced to disk
    /// before this returns.
    pub(crate) fn save(&mut self, index: usize, color: ColorLayout, pixels: &[u8]) -> Result<()> {
        let rows = self
            .plan
            .rows(index)
            .ok_or_else(|| anyhow!("tile {index} is not in the plan"))?;
        if pixels.len() != rows.len() * self.plan.width() * color.channels() {
            bail!(
                "tile {index}: {} bytes of pixels for {} rows",
                pixels.len(),
                rows.len()
            );
        }
        let mut w = RECORD.writer(DIGEST_LEN + 5 + pixels.len());
        let body = w.body();
        body.extend_from_slice(&self.header_digest);
        body.extend_from_slice(&u32::try_from(index)?.to_le_bytes());
        body.push(color.channels() as u8);
        body.extend_from_slice(pixels);
        self.append(&w.finish())
    }

    /// Records the job on a server that holds this run's tiles, so that a
    /// resume attaches to it: appended and synced before this returns.
    pub(crate) fn record_job(&mut self, job: &ServiceJob) -> Result<()> {
        let json = serde_json::to_vec(job)?;
        let mut w = JOB.writer(DIGEST_LEN + json.len());
        w.body().extend_from_slice(&self.header_digest);
        w.body().extend_from_slice(&json);
        self.append(&w.finish())
    }

    fn append(&mut self, frame: &[u8]) -> Result<()> {
        self.file
            .write_all(frame)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// The output is written: the state is no longer needed.
    pub(crate) fn finish(self) -> Result<()> {
        drop(self.file);
        remove(&self.path)
    }
}

/// The SHA-256 that ends a sealed frame.
fn digest_of(sealed: &[u8]) -> [u8; DIGEST_LEN] {
    let mut d = [0u8; DIGEST_LEN];
    d.copy_from_slice(&sealed[sealed.len() - DIGEST_LEN..]);
    d
}

/// Reads the next frame at the file's position, of one of `kinds` (a
/// format and its largest body): `None` at the end of the file or when the
/// frame is cut short there (an interrupted write), else which kind and
/// the frame's bytes, checked.
fn read_frame(
    file: &mut File,
    path: &Path,
    kinds: &[(&Format<8>, usize)],
) -> Result<Option<(usize, Vec<u8>)>> {
    let what = || format!("cannot read {}", path.display());
    let changed = |what: String| {
        anyhow!(
            "{}: {what}; the file was changed. Add --restart to delete it and start over",
            path.display()
        )
    };
    let head_len = HEADER.header_len();
    let mut buf = Vec::with_capacity(head_len);
    Read::by_ref(file)
        .take(head_len as u64)
        .read_to_end(&mut buf)
        .with_context(what)?;
    if buf.len() < head_len {
        return Ok(None);
    }
    let (kind, (format, max_body)) = kinds
        .iter()
        .enumerate()
        .find(|(_, (f, _))| buf[..8] == f.magic()[..])
        .ok_or_else(|| changed("a record of an unknown kind".into()))?;
    let mut len = [0u8; 8];
    len.copy_from_slice(&buf[10..18]);
    let len = u64::from_le_bytes(len);
    if len > *max_body as u64 {
        return Err(changed(format!(
            "a {} of {len} bytes, at most {max_body} expected",
            format.name()
        )));
    }
    let rest = len + DIGEST_LEN as u64;
    Read::by_ref(file)
        .take(rest)
        .read_to_end(&mut buf)
        .with_context(what)?;
    if (buf.len() as u64) < head_len as u64 + rest {
        return Ok(None);
    }
    format
        .open(&buf, *max_body)
        .map_err(|e| changed(e.to_string()))?;
    Ok(Some((kind, buf)))
}

/// The header at the start of the file, its digest and its length.
fn read_header(file: &mut File, path: &Path) -> Result<(RunHeader, [u8; DIGEST_LEN], u64)> {
    let (_, sealed) = read_frame(file, path, &[(&HEADER, MAX_HEADER)])?.ok_or_else(|| {
        anyhow!(
            "{} is cut short: no header. Add --restart to delete it and start over",
            path.display()
        )
    })?;
    let body = HEADER.open(&sealed, MAX_HEADER)?;
    let header: RunHeader = serde_json::from_slice(body).with_context(|| {
        format!(
            "{}: the header cannot be read. Add --restart to delete it and start over",
            path.display()
        )
    })?;
    Ok((header, digest_of(&sealed), sealed.len() as u64))
}

/// A job record's job, after checking it belongs to this state.
fn check_job(sealed: &[u8], header_digest: &[u8; DIGEST_LEN], path: &Path) -> Result<ServiceJob> {
    let body = JOB.open(sealed, MAX_JOB)?;
    if body.len() < DIGEST_LEN || body[..DIGEST_LEN] != header_digest[..] {
        bail!(
            "{}: a job record of another run; the file was changed. \
             Add --restart to delete it and start over",
            path.display()
        );
    }
    serde_json::from_slice(&body[DIGEST_LEN..]).with_context(|| {
        format!(
            "{}: a job record cannot be read. Add --restart to delete it and start over",
            path.display()
        )
    })
}

/// A record's tile, after checking it belongs to this state and plan.
fn check_record(
    sealed: &[u8],
    header_digest: &[u8; DIGEST_LEN],
    plan: &TilePlan,
    path: &Path,
) -> Result<DoneTile> {
    let changed = |what: &str| {
        anyhow!(
            "{}: {what}; the file was changed. Add --restart to delete it and start over",
            path.display()
        )
    };
    let body = RECORD.open(sealed, usize::MAX)?;
    if body.len() < DIGEST_LEN + 5 || body[..DIGEST_LEN] != header_digest[..] {
        return Err(changed("a tile record of another run"));
    }
    let mut index = [0u8; 4];
    index.copy_from_slice(&body[DIGEST_LEN..DIGEST_LEN + 4]);
    let index = u32::from_le_bytes(index) as usize;
    let rows = plan
        .rows(index)
        .ok_or_else(|| changed(&format!("tile {index} is not in the plan")))?;
    let color = ColorLayout::from_channels(usize::from(body[DIGEST_LEN + 4]))
        .ok_or_else(|| changed(&format!("tile {index} has no valid colour layout")))?;
    let pixels = &body[DIGEST_LEN + 5..];
    if pixels.len() != rows.len() * plan.width() * color.channels() {
        return Err(changed(&format!(
            "tile {index} holds {} bytes of pixels, not {} rows",
            pixels.len(),
            rows.len()
        )));
    }
    Ok(DoneTile {
        index,
        color,
        pixels: pixels.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("he-cli-resume-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn header(pk: &PublicKey) -> RunHeader {
        let img = PixelImage::new(4, 5, ColorLayout::Luma8, (0..20).collect()).unwrap();
        let plan = TilePlan::new(4, 5, 2, 1).unwrap();
        RunHeader::new(
            &img,
            &[Filter::Mean { k: 3 }],
            BorderMode::Replicate,
            OutputMapping::default(),
            plan,
            pk,
        )
    }

    #[test]
    fn tiles_saved_are_found_again_and_a_cut_record_is_dropped() {
        let kp = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let d = scratch("roundtrip");
        let out = d.join("out.png");
        let h = header(kp.public_key());
        let (mut p, found) = Partial::open(&out, &h, false, &mut Canvas::new(h.plan)).unwrap();
        assert!(found.tiles == 0 && found.job.is_none());
        assert_eq!(p.path(), d.join("out.png.he-partial"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let job = |id: &str| ServiceJob {
            url: "http://127.0.0.1:8787".into(),
            job_id: id.into(),
        };
        p.save(0, ColorLayout::Luma8, &[1; 8]).unwrap();
        p.record_job(&job("first")).unwrap();
        p.save(2, ColorLayout::Luma8, &[3; 4]).unwrap();
        p.record_job(&job("second")).unwrap();
        assert!(
            p.save(1, ColorLayout::Luma8, &[3; 4]).is_err(),
            "wrong size"
        );
        drop(p);
        // Half a record at the end, as a kill while writing leaves it.
        let path = state_path(&out);
        let whole = std::fs::read(&path).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&RECORD.seal(&[7; 60])[..40]).unwrap();
        drop(f);
        let mut canvas = Canvas::new(h.plan);
        let (mut p, found) = Partial::open(&out, &h, false, &mut canvas).unwrap();
        assert_eq!(found.tiles, 2);
        assert!(canvas.has(0) && !canvas.has(1) && canvas.has(2));
        assert_eq!(found.job, Some(job("second")));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            whole,
            "the cut record is not dropped"
        );
        p.save(1, ColorLayout::Luma8, &[2; 8]).unwrap();
        drop(p);
        let mut canvas = Canvas::new(h.plan);
        let (p, found) = Partial::open(&out, &h, false, &mut canvas).unwrap();
        assert_eq!(found.tiles, 3);
        // The tiles are in place: the whole picture, as saved.
        let pixels = canvas.into_image().unwrap();
        assert_eq!(pixels.data(), [vec![1; 8], vec![2; 8], vec![3; 4]].concat());
        p.finish().unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn another_run_or_a_changed_file_is_refused_and_restart_starts_over() {
        let kp = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let other = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let d = scratch("refuse");
        let out = d.join("out.png");
        let h = header(kp.public_key());
        let (mut p, _) = Partial::open(&out, &h, false, &mut Canvas::new(h.plan)).unwrap();
        p.save(0, ColorLayout::Luma8, &[1; 8]).unwrap();
        drop(p);
        let path = state_path(&out);
        let kept = std::fs::read(&path).unwrap();
        let refused = |h: &RunHeader| {
            format!(
                "{:#}",
                Partial::open(&out, h, false, &mut Canvas::new(h.plan)).unwrap_err()
            )
        };
        let mut chain = h.clone();
        chain.chain = vec![Filter::Mean { k: 5 }];
        let e = refused(&chain);
        assert!(e.contains("filter chain") && e.contains("--restart"), "{e}");
        let e = refused(&header(other.public_key()));
        assert!(e.contains("the key is") && e.contains("--key"), "{e}");
        let mut input = h.clone();
        input.input_sha256 = hex(&[9; 32]);
        assert!(refused(&input).contains("pixels differ"));
        let mut plan = h.clone();
        plan.plan = TilePlan::new(4, 5, 3, 1).unwrap();
        // The height of then is named (the saved tiles are 2 rows).
        assert!(refused(&plan).contains("pass --tile-rows 2 to go on"));
        // Nothing was overwritten by the refusals.
        assert_eq!(std::fs::read(&path).unwrap(), kept);
        // Any byte changed in the header or a record is refused.
        for at in [20, kept.len() - 40, kept.len() - 3] {
            let mut bad = kept.clone();
            bad[at] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            let e = refused(&h);
            assert!(e.contains("--restart"), "{e}");
        }
        // refuse_stale names the file; --restart deletes it.
        let e = refuse_stale(&out, false, "this run keeps no key").unwrap_err();
        assert!(e.to_string().contains("he-partial"), "{e}");
        let (_, found) = Partial::open(&out, &h, true, &mut Canvas::new(h.plan)).unwrap();
        assert_eq!(found.tiles, 0);
        refuse_stale(&out, true, "").unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_state_is_never_opened_through_a_symlink() {
        let kp = paillier::Keypair::generate_insecure_for_tests(512).unwrap();
        let d = scratch("symlink");
        let out = d.join("out.png");
        let target = d.join("elsewhere");
        std::fs::write(&target, b"mine").unwrap();
        std::os::unix::fs::symlink(&target, state_path(&out)).unwrap();
        let h = header(kp.public_key());
        assert!(Partial::open(&out, &h, false, &mut Canvas::new(h.plan)).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"mine");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
