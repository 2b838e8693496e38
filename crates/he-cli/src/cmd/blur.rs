//! `he blur`: both sides in one process, exactly as the network would see
//! them: the client encrypts; the "server" gets only the bytes of the
//! public key, the chain and the ciphertexts, filters and returns bytes; the
//! client decrypts and checks every value against the chain computed in
//! plain (the whole-image path also spot-checks the result first, as `he
//! submit` does). The result is written only if all of them match.
//!
//! By default the image goes through as tiles (bands of rows, see
//! `he_filter::tiled`): encryption, the server's filter and decryption
//! overlap, and only a few tiles of ciphertexts exist at a time. Each
//! decrypted tile is checked against its rows of the plaintext chain.
//! `--untiled` (and `--unpacked`) run the whole image one phase after the
//! other.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ArgMatches;
use enc_image::{EncryptOptions, EncryptedImage, Limits, PixelImage, Progress};
use he_filter::tiled::{EncryptedTile, LocalServer, TileOptions, TileServer, TiledJob};
use he_filter::{Filter, reference};
use paillier::{Keypair, PublicKey};

use crate::VerificationFailed;
use crate::canvas::{Canvas, ServerView};
use crate::chain::{self, ChainSpec};
use crate::cli::BlurArgs;
use crate::files;
use crate::resume::{self, Partial, RunHeader};
use crate::ui::{
    Bar, Input, JobBar, bytes, count_value_differences, output_paths, secs, timed,
    write_result_and_view,
};

/// The server's side: bytes in, bytes out, no secret.
fn serve(public_key: &[u8], chain_json: &[u8], image: &[u8]) -> Result<(Vec<u8>, usize)> {
    let pk = PublicKey::from_bytes(public_key).context("server")?;
    let enc = EncryptedImage::from_bytes(image, &pk, &Limits::default()).context("server")?;
    let chain: Vec<Filter> =
        serde_json::from_slice(chain_json).context("server: filter request")?;
    he_filter::check_chain(enc.meta(), &chain).context("server")?;
    let out = he_filter::apply_chain(&enc, &pk, &chain, &Bar::new())?.trim_halo();
    Ok((out.to_bytes(), out.ciphertexts().len()))
}

/// What both paths report.
struct Outcome {
    /// The picture to write.
    result: enc_image::PixelImage,
    /// The first bytes the server received, for the picture of what it saw.
    seen: ServerView,
    /// The state of a resumable run, deleted once the output is written.
    state: Option<Partial>,
}

/// Runs `he blur`.
pub(crate) fn run(a: BlurArgs, m: &ArgMatches) -> Result<()> {
    let spec = chain::from_matches(m)?;
    super::set_threads(a.threads)?;
    crate::ui::set_quiet(a.quiet);
    let border = super::border(&a.image_opts.border)?;
    let input = Input::load(a.image.as_deref(), a.image_opts.resize.as_deref())?;
    let (out_path, view_path) = output_paths(a.output.as_deref(), &input, &spec.filters, a.force)?;
    let quality = files::jpeg_quality(&out_path, a.quality)?;
    let img = input.pixels();
    let labels: Vec<String> = spec.filters.iter().map(Filter::label).collect();
    let tiled = !(a.unpacked || a.untiled);
    // Resuming needs the tiles and the key of the interrupted run: a state
    // file this run cannot use is refused before any work.
    if !tiled {
        resume::refuse_stale(
            &out_path,
            a.restart,
            "this run is not tiled (--untiled or --unpacked)",
        )?;
    } else if a.key.is_none() {
        resume::refuse_stale(
            &out_path,
            a.restart,
            "this run keeps no key: pass the --key FILE of that run",
        )?;
    }
    let key = super::keypair(&super::KeySource {
        path: a.key.as_deref(),
        new_key: false,
        bits: a.key_bits,
        allow_readable: a.allow_readable_key,
        force: false,
    })?;
    let kp = key.keypair;
    println!(
        "{}: {}x{} {:?}, {}, {}-bit key, border {}, {}",
        input.path.display(),
        img.width(),
        img.height(),
        img.color(),
        labels.join(" then "),
        kp.public_key().bits(),
        border.name(),
        if a.unpacked {
            "one value per ciphertext"
        } else if tiled {
            "packed, tiled"
        } else {
            "packed, whole image"
        }
    );
    println!(
        "  key                 {:>10}   (reported apart) {}",
        secs(key.took),
        key.what
    );
    if tiled && !key.kept {
        println!(
            "  not resumable: the key is not kept (pass --key FILE to resume after an interruption)"
        );
    }
    let opts = if a.unpacked {
        EncryptOptions::unpacked()
    } else {
        he_filter::encrypt_options(&spec.filters)?
    }
    .border(border);
    let outcome = if tiled {
        let tiles = TileOptions {
            tile_rows: a.tile_rows.map(|n| n as usize),
            ..TileOptions::default()
        };
        let resume = key.kept.then_some(Resume {
            output: &out_path,
            restart: a.restart,
        });
        run_tiled(img, &spec, &kp, &opts, &tiles, resume)?
    } else {
        run_whole(img, &spec, &kp, &opts)?
    };
    drop(input);
    write_result_and_view(
        &out_path,
        &view_path,
        outcome.result,
        &outcome.seen,
        a.force,
        quality,
    )?;
    if let Some(state) = outcome.state {
        let path = state.path().to_path_buf();
        if let Err(e) = state.finish() {
            eprintln!("he: warning: {e:#}; delete {} yourself", path.display());
        }
    }
    Ok(())
}

/// Where a tiled run keeps its finished tiles, to resume.
#[derive(Debug, Clone, Copy)]
struct Resume<'a> {
    /// The output the state belongs to.
    output: &'a std::path::Path,
    /// Delete an existing state instead of resuming it.
    restart: bool,
}

/// The error for decrypted values that differ from the plaintext chain.
fn differs(differing: usize) -> anyhow::Error {
    VerificationFailed(format!(
        "the decrypted image differs from the plaintext filter in {differing} values"
    ))
    .into()
}

/// The server's side of a tiled job, counting what crosses the "network"
/// and keeping the first bytes it sees for the picture.
struct Counting {
    server: LocalServer,
    uploaded: AtomicUsize,
    downloaded: AtomicUsize,
    seen: Mutex<ServerView>,
}

impl TileServer for Counting {
    type Error = anyhow::Error;
    fn filter_tile(&self, tile: EncryptedTile, progress: &dyn Progress) -> Result<Vec<u8>> {
        self.uploaded.fetch_add(tile.bytes.len(), Ordering::Relaxed);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(EncryptedImage::payload_of(&tile.bytes).unwrap_or(&tile.bytes));
        }
        // A plain message: only the client's own errors (decryption and
        // checks) count as a failed verification.
        let out = self
            .server
            .filter(&tile.bytes, progress)
            .map_err(|e| anyhow::anyhow!("server, tile {}: {e}", tile.index))?;
        self.downloaded.fetch_add(out.len(), Ordering::Relaxed);
        Ok(out)
    }
}

/// Encrypt, filter and decrypt as a pipeline of tiles; every tile checked
/// against its rows of the plaintext chain as it arrives, and with
/// `resume`, saved to the run's state: the tiles found there are not done
/// again.
fn run_tiled(
    img: &PixelImage,
    spec: &ChainSpec,
    kp: &Keypair,
    opts: &EncryptOptions,
    tiles: &TileOptions,
    resume: Option<Resume<'_>>,
) -> Result<Outcome> {
    let job = TiledJob::new(img, &spec.filters, opts, kp.public_key(), tiles)?;
    let plan = *job.plan();
    let mut canvas = Canvas::new(plan);
    let mut state = match resume {
        Some(r) => {
            let header = RunHeader::new(
                img,
                &spec.filters,
                opts.border,
                spec.mapping,
                plan,
                kp.public_key(),
            );
            let (state, found) = Partial::open(r.output, &header, r.restart, &mut canvas)?;
            found.report(&state);
            Some(state)
        }
        None => None,
    };
    let todo: Vec<usize> = (0..plan.count()).filter(|&i| !canvas.has(i)).collect();
    let key_bytes = kp.public_key().to_bytes();
    let server = Counting {
        server: LocalServer::from_bytes(&key_bytes, &spec.filters, Limits::default())
            .context("server")?,
        uploaded: AtomicUsize::new(key_bytes.len()),
        downloaded: AtomicUsize::new(0),
        seen: Mutex::new(ServerView::new(img.width(), img.height())),
    };
    let (mut differing, mut compared, mut t_reference) = (0, 0, Duration::ZERO);
    let pixels_todo = todo
        .iter()
        .filter_map(|&i| plan.rows(i))
        .map(|r| (r.len() * plan.width()) as u64)
        .sum();
    let bar = JobBar::new(plan.count(), plan.count() - todo.len(), pixels_todo);
    let (done, t_all) = timed(|| {
        kp.private_key().precompute();
        job.run_tiles(&todo, kp.private_key(), &server, &bar, |tile| {
            let (want, t) = timed(|| {
                reference::apply_chain_rows(img, &spec.filters, opts.border, tile.rows.clone())
            });
            t_reference += t;
            let want = want.map_err(|e| anyhow::anyhow!("plaintext reference: {e}"))?;
            let wrong = count_value_differences(&tile.image, &want, spec.mapping);
            differing += wrong;
            compared += want.values().len();
            let part = tile.image.to_pixels_with(spec.mapping);
            canvas.put(tile.index, part.color(), part.data())?;
            // Only a tile that passed its check is kept for a resume.
            if let (Some(state), 0) = (state.as_mut(), wrong) {
                state.save(tile.index, part.color(), part.data())?;
            }
            bar.tile_done((tile.rows.len() * plan.width()) as u64);
            Ok(())
        })
    });
    drop(bar);
    // What is left of he_filter's errors comes from the client's side:
    // loading, checking and decrypting the server's results.
    done.map_err(|e| match e.downcast::<he_filter::Error>() {
        Ok(e) => VerificationFailed(format!("decryption: {e}")).into(),
        Err(e) => e,
    })?;
    let totals = job.totals_of(todo.iter().copied());
    let (up, down) = (
        server.uploaded.load(Ordering::Relaxed),
        server.downloaded.load(Ordering::Relaxed),
    );
    println!(
        "  encrypt+filter+decrypt {:>7}   {} of {} rows (+{} halo rows each side), pipelined{}",
        secs(t_all),
        match plan.count() {
            1 => "1 tile".to_string(),
            n => format!("{n} tiles"),
        },
        plan.tile_rows(),
        plan.halo_rows(),
        match plan.count() - todo.len() {
            0 => String::new(),
            n => format!(", {n} resumed"),
        }
    );
    println!(
        "  ciphertexts: {} encrypted, {} computed by the server, {} decrypted",
        totals.encrypt, totals.filter, totals.decrypt
    );
    print_traffic(up, down, img.len());
    println!(
        "  plaintext reference ({}, tile by tile, within the pipeline): {differing} of {compared} values differ (exact values and pixels)",
        secs(t_reference)
    );
    if differing != 0 {
        return Err(differs(differing));
    }
    Ok(Outcome {
        result: canvas.into_image()?,
        seen: server
            .seen
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        state: state.take(),
    })
}

/// Bytes up and down, and per pixel value.
fn print_traffic(up: usize, down: usize, values: usize) {
    println!(
        "  uploaded {} ({:.2} bytes per pixel value), downloaded {} ({:.2} bytes per pixel value)",
        bytes(up),
        up as f64 / values as f64,
        bytes(down),
        down as f64 / values as f64
    );
}

/// The whole image at once, one phase after the other.
fn run_whole(
    img: &PixelImage,
    spec: &ChainSpec,
    kp: &Keypair,
    opts: &EncryptOptions,
) -> Result<Outcome> {
    let labels: Vec<String> = spec.filters.iter().map(Filter::label).collect();
    let bar = Bar::new();
    let (enc, t_encrypt) = timed(|| {
        kp.private_key().precompute();
        EncryptedImage::encrypt(img, kp.private_key(), opts, &bar)
    });
    let enc = enc?;
    let ciphertexts_in = enc.ciphertexts().len();
    let (key_bytes, upload) = (kp.public_key().to_bytes(), enc.to_bytes());
    drop(enc);
    let chain_json = serde_json::to_vec(&spec.filters)?;

    let (served, t_filter) = timed(|| serve(&key_bytes, &chain_json, &upload));
    let (download, ciphertexts_out) = served?;

    let bar = Bar::new();
    let (exact, t_decrypt) = timed(|| -> Result<_> {
        let enc = EncryptedImage::from_bytes(&download, kp.public_key(), &Limits::default())
            .context("the result")?;
        if enc.meta().history() != labels {
            return Err(VerificationFailed(format!(
                "the server applied {:?}, not {labels:?}",
                enc.meta().history()
            ))
            .into());
        }
        let exact = enc
            .decrypt(kp.private_key(), &bar)
            .map_err(|e| VerificationFailed(format!("decryption: {e}")))?;
        Ok((enc.meta().clone(), exact))
    });
    let (meta, exact) = exact?;
    drop(bar);
    let spot = super::spot_check(
        img,
        &spec.filters,
        opts.border,
        &meta,
        &exact,
        he_filter::DEFAULT_RANDOM_VALUES,
    )?;
    let (want, t_reference) = timed(|| reference::apply_chain(img, &spec.filters, opts.border));
    let want = want?;
    let differing = count_value_differences(&exact, &want, spec.mapping);
    println!(
        "  encrypt (client)    {:>10}   {ciphertexts_in} ciphertexts",
        secs(t_encrypt)
    );
    println!(
        "  filter (server)     {:>10}   {} ciphertexts out (includes loading and checking)",
        secs(t_filter),
        ciphertexts_out
    );
    println!(
        "  decrypt (client)    {:>10}   (includes loading and checking the result)",
        secs(t_decrypt)
    );
    println!(
        "  encrypt+filter+decrypt {:>7}",
        secs(t_encrypt + t_filter + t_decrypt)
    );
    print_traffic(key_bytes.len() + upload.len(), download.len(), img.len());
    println!("{spot}");
    println!(
        "  plaintext reference ({}): {differing} of {} values differ (exact values and pixels)",
        secs(t_reference),
        want.values().len()
    );
    if differing != 0 {
        return Err(differs(differing));
    }
    let mut seen = ServerView::new(img.width(), img.height());
    seen.push(EncryptedImage::payload_of(&upload).unwrap_or(&upload));
    Ok(Outcome {
        result: exact.to_pixels_with(spec.mapping),
        seen,
        state: None,
    })
}
