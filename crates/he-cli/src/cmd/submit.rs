//! `he submit`: filter an image on a server that only ever sees it
//! encrypted. The client keeps the private key: it encrypts, uploads the
//! public key, the chain and the ciphertexts, waits for the job, downloads
//! the encrypted result, checks and decrypts it, spot-checks it against the
//! same chain recomputed on the input at one random value of every
//! ciphertext and a few thousand more (with `--full-check`, on the whole
//! image too), and writes the image only if every compared value matches.
//!
//! By default the image goes as a tiled job (`Client::filter_image_tiled`):
//! bands of rows pipelined through encryption, the server and decryption,
//! each tile checked as it arrives, so that any image size fits the
//! server's body limit and the client's memory. `--single-upload` sends
//! the whole image in one request, as before tiles.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use enc_image::{EncryptedImage, Limits};
use he_filter::tiled::TileOptions;
use he_filter::{Filter, reference};
use he_service::client::check_history;
use he_service::client::{self, Client, ClientOptions, TiledRequest};
use he_service::wire::{Envelope, JobSpec};
use paillier::Keypair;

use crate::VerificationFailed;
use crate::canvas::{Canvas, ServerView};
use crate::chain::{self, ChainSpec};
use crate::cli::SubmitArgs;
use crate::files;
use crate::resume::{self, Partial, RunHeader, ServiceJob};
use crate::ui::{
    Bar, Input, JobBar, bytes, count_value_differences, output_paths, secs, timed,
    write_result_and_view,
};

/// The key pair: loaded from --key, or generated (and saved to --key).
fn keypair(a: &SubmitArgs) -> Result<super::KeyUsed> {
    super::keypair(&super::KeySource {
        path: a.key.as_deref(),
        new_key: a.new_key,
        bits: a.key_bits,
        allow_readable: a.allow_readable_key,
        force: a.force,
    })
}

/// Runs `he submit`.
pub(crate) fn run(a: SubmitArgs, m: &ArgMatches) -> Result<()> {
    let spec = chain::from_matches(m)?;
    super::set_threads(a.threads)?;
    crate::ui::set_quiet(a.quiet);
    let border = super::border(&a.image_opts.border)?;
    let input = Input::load(a.image.as_deref(), a.image_opts.resize.as_deref())?;
    let (out_path, view_path) = output_paths(a.output.as_deref(), &input, &spec.filters, a.force)?;
    let quality = files::jpeg_quality(&out_path, a.quality)?;
    let mut options = ClientOptions::default();
    if let Some(s) = a.io_timeout {
        options.io_timeout = Duration::from_secs(s);
    }
    if let Some(n) = a.attempts {
        options.attempts = n;
    }
    if let Some(path) = &a.ca {
        options.ca_pem = Some(files::read_capped(path, 1 << 20, "CA certificates")?);
    }
    let attempts = options.attempts;
    let mut client = Client::with_options(&a.server, options)?.on_notice(|n| eprintln!("  {n}"));
    if let Some(t) = &a.token {
        client = client.with_token(&t.0)?;
    }
    // Ask the server first: no key is generated for a server that is not
    // there. The question counts against the deadline of the exchange.
    let img = input.pixels();
    let limit = deadline(&a, img);
    let (info, t_info) = timed(|| client.info_within(limit));
    let info = info.with_context(|| format!("server {}", a.server))?;
    let timeout = limit.saturating_sub(t_info);
    let labels: Vec<String> = spec.filters.iter().map(Filter::label).collect();
    println!(
        "{}: {}x{} {:?}, {}, border {}, server {} ({} {})",
        input.path.display(),
        img.width(),
        img.height(),
        img.color(),
        labels.join(" then "),
        border.name(),
        client.base_url(),
        info.service,
        info.version
    );

    // A server that takes no tiled jobs (an older one with the Redis
    // store) gets the image in one upload.
    let single_upload = a.single_upload || !info.tiled_jobs;
    if !a.single_upload && !info.tiled_jobs {
        println!("  this server takes no tiled jobs: sending the image in one upload");
    }
    // Resuming needs the tiles and the key of the interrupted run: a state
    // file this run cannot use is refused before any work.
    if single_upload {
        resume::refuse_stale(
            &out_path,
            a.restart,
            "this run is not tiled (--single-upload)",
        )?;
    } else if a.key.is_none() {
        resume::refuse_stale(
            &out_path,
            a.restart,
            "this run keeps no key: pass the --key FILE of that run",
        )?;
    }
    let key = keypair(&a)?;
    println!("  key: {} ({})", key.what, secs(key.took));
    let kp = key.keypair;
    if !single_upload {
        if !key.kept {
            println!(
                "  not resumable: the key is not kept (pass --key FILE to resume after an interruption)"
            );
        }
        return run_tiled(
            &a,
            (&client, timeout),
            &spec,
            border,
            (&kp, key.kept),
            input,
            (&out_path, &view_path, quality),
        );
    }
    let opts = he_filter::encrypt_options(&spec.filters)?.border(border);
    let bar = Bar::new();
    let (enc, t_encrypt) = timed(|| {
        kp.private_key().precompute();
        EncryptedImage::encrypt(img, kp.private_key(), &opts, &bar)
    });
    let enc = enc?;
    let job = JobSpec {
        filters: spec.filters.clone(),
    };
    let image_bytes = enc.to_bytes();
    let envelope = Envelope::encode(&job, &kp.public_key().to_bytes(), &image_bytes);
    if envelope.len() > info.limits.max_body_bytes {
        bail!(
            "the upload is {}, the server takes at most {}",
            bytes(envelope.len()),
            bytes(info.limits.max_body_bytes)
        );
    }

    let bar = Bar::new();
    let run = client.run_job(&envelope, &bar, timeout)?;
    drop(bar);
    let (status, download) = (run.status, run.result);
    println!(
        "  job {} done on server instance {}{}",
        status.id,
        status.instance,
        if run.attempts > 1 || run.retries > 0 {
            format!(
                " (attempt {} of {attempts}, {} requests retried)",
                run.attempts, run.retries
            )
        } else {
            String::new()
        }
    );

    let bar = Bar::new();
    let (decrypted, t_decrypt) = timed(|| -> Result<_> {
        let out = EncryptedImage::from_bytes(&download, kp.public_key(), &Limits::default())
            .map_err(|e| VerificationFailed(format!("the result from the server: {e}")))?;
        check_history(&enc, &out, &job).map_err(|e| VerificationFailed(e.to_string()))?;
        let exact = out
            .decrypt(kp.private_key(), &bar)
            .map_err(|e| VerificationFailed(format!("decryption: {e}")))?;
        Ok((out.meta().clone(), exact))
    });
    let (meta, exact) = decrypted?;
    drop(bar);
    let spot = super::spot_check(img, &spec.filters, border, &meta, &exact, a.spot_checks)?;
    let full = if a.full_check {
        let (want, t_reference) = timed(|| reference::apply_chain(img, &spec.filters, border));
        Some((
            count_value_differences(&exact, &want?, spec.mapping),
            t_reference,
        ))
    } else {
        None
    };

    println!(
        "  encrypt (client)    {:>10}   {} ciphertexts",
        secs(t_encrypt),
        enc.ciphertexts().len()
    );
    println!(
        "  upload              {:>10}   {}",
        secs(run.upload),
        bytes(envelope.len())
    );
    println!(
        "  filter (server)     {:>10}   {} ciphertexts of work",
        secs(Duration::from_secs_f64(
            status.filter_seconds.unwrap_or(0.0)
        )),
        status.progress_total
    );
    println!(
        "  waiting (client)    {:>10}   (from accepted to done)",
        secs(run.wait)
    );
    println!(
        "  download            {:>10}   {}",
        secs(run.download),
        bytes(download.len())
    );
    println!(
        "  decrypt (client)    {:>10}   (includes loading and checking)",
        secs(t_decrypt)
    );
    println!("{spot}");
    if let Some((differing, t_reference)) = full {
        println!(
            "  plaintext reference ({}): {differing} of {} values differ",
            secs(t_reference),
            img.len()
        );
        if differing != 0 {
            return Err(VerificationFailed(format!(
                "the server's result differs from the plaintext filter in {differing} values"
            ))
            .into());
        }
    }
    let mut seen = ServerView::new(img.width(), img.height());
    seen.push(EncryptedImage::payload_of(&image_bytes).unwrap_or(&image_bytes));
    write_result_and_view(
        &out_path,
        &view_path,
        exact.to_pixels_with(spec.mapping),
        &seen,
        a.force,
        quality,
    )
}

/// The longest the exchange with the server may take: `--timeout`, or
/// [`super::job_deadline`] of the photo.
fn deadline(a: &SubmitArgs, img: &enc_image::PixelImage) -> Duration {
    a.timeout.map_or_else(
        || super::job_deadline(img.width(), img.height()),
        Duration::from_secs,
    )
}

/// The tiled path: every tile encrypted, uploaded, filtered, downloaded,
/// decrypted and spot-checked in a pipeline; the picture written only
/// when every tile has passed.
/// `(client, timeout)`: the server and the time left for the exchange;
/// `(kp, resumable)`: the key pair and whether it is kept in a file (then
/// each finished tile is saved for a resume); `(out_path, view_path,
/// quality)`: where the result and the server's view go.
fn run_tiled(
    a: &SubmitArgs,
    (client, timeout): (&Client, Duration),
    spec: &ChainSpec,
    border: enc_image::BorderMode,
    (kp, resumable): (&Keypair, bool),
    input: Input,
    (out_path, view_path, quality): (&std::path::Path, &std::path::Path, u8),
) -> Result<()> {
    let img = input.pixels();
    let job = JobSpec {
        filters: spec.filters.clone(),
    };
    let seen = Mutex::new(ServerView::new(img.width(), img.height()));
    let on_upload = |_: usize, tile: &[u8]| {
        if let Ok(mut seen) = seen.lock() {
            seen.push(EncryptedImage::payload_of(tile).unwrap_or(tile));
        }
    };
    let request = TiledRequest {
        border,
        spot_check: he_filter::SpotCheck::with_random_values(a.spot_checks),
        tiles: TileOptions {
            tile_rows: a.tile_rows.map(|n| n as usize),
            ..TileOptions::default()
        },
        timeout,
        on_upload: &on_upload,
        ..TiledRequest::new(kp, img, &job)
    };
    let plan = request.plan()?;
    // The finished tiles of an interrupted run, and its job on the server.
    let mut canvas = Canvas::new(plan);
    let mut attach = None;
    let state = if resumable {
        let header = RunHeader::new(
            img,
            &spec.filters,
            border,
            spec.mapping,
            plan,
            kp.public_key(),
        );
        let (state, found) = Partial::open(out_path, &header, a.restart, &mut canvas)?;
        found.report(&state);
        // The job is asked for again only on the same server.
        attach = found
            .job
            .filter(|j| j.url == client.base_url())
            .map(|j| j.job_id);
        Some(state)
    } else {
        None
    };
    let state = Mutex::new(state);
    let skip: Vec<usize> = (0..plan.count()).filter(|&i| canvas.has(i)).collect();
    let on_job = |st: &he_service::wire::JobStatus| {
        if let Ok(mut guard) = state.lock()
            && let Some(state) = guard.as_mut()
        {
            let job = ServiceJob {
                url: client.base_url().to_string(),
                job_id: st.id.clone(),
            };
            if let Err(e) = state.record_job(&job) {
                eprintln!("  warning: {e:#} (a resume will start a new job)");
            }
        }
    };
    let pixels_todo = (0..plan.count())
        .filter(|i| !skip.contains(i))
        .filter_map(|i| plan.rows(i))
        .map(|r| (r.len() * plan.width()) as u64)
        .sum();
    let bar = JobBar::new(plan.count(), skip.len(), pixels_todo);
    let request = TiledRequest {
        progress: &bar,
        job: attach.as_deref(),
        skip: &skip,
        on_job: &on_job,
        ..request
    };
    let (mut differing, mut compared, mut t_reference) = (0, 0, Duration::ZERO);
    let (run, t_all) = timed(|| {
        client.filter_image_tiled(&request, |tile, _report| {
            let mut wrong = 0;
            if a.full_check {
                let (want, t) = timed(|| {
                    reference::apply_chain_rows(img, &spec.filters, border, tile.rows.clone())
                });
                t_reference += t;
                wrong = count_value_differences(&tile.image, &want?, spec.mapping);
                differing += wrong;
                compared += tile.image.values().len();
            }
            let part = tile.image.to_pixels_with(spec.mapping);
            canvas.put(tile.index, part.color(), part.data())?;
            // Only a tile that passed its checks is kept for a resume.
            if wrong == 0
                && let Ok(mut guard) = state.lock()
                && let Some(state) = guard.as_mut()
                && let Err(e) = state.save(tile.index, part.color(), part.data())
            {
                eprintln!("  warning: {e:#} (a resume will do this tile again)");
            }
            bar.tile_done((tile.rows.len() * img.width()) as u64);
            Ok(())
        })
    });
    drop(bar);
    // Whatever the server's results made fail on this side is a failed
    // verification: nothing is written.
    let run = run.map_err(|e| match e {
        client::Error::Verification(m) => VerificationFailed(format!("spot check: {m}")).into(),
        e @ (client::Error::Filter(_) | client::Error::Image(_)) => {
            VerificationFailed(format!("the result from the server: {e}")).into()
        }
        e => {
            // A deadline, a server gone: the tiles done so far are kept.
            if let Ok(Some(state)) = state.lock().as_deref() {
                let done = (0..plan.count()).filter(|&i| canvas.has(i)).count();
                eprintln!(
                    "he: {done} of {} tiles are done and kept in {}: run the same command \
                     again to go on from there",
                    plan.count(),
                    state.path().display()
                );
            }
            anyhow::Error::from(e)
        }
    })?;
    let job = run.job.as_ref().map_or_else(
        || "no job: every tile was saved already".to_string(),
        |j| format!("job {} on server instance {}", j.id, j.instance),
    );
    println!(
        "  {job}: {} of {} rows (+{} halo rows each side){}",
        match plan.count() {
            1 => "1 tile".to_string(),
            n => format!("{n} tiles"),
        },
        plan.tile_rows(),
        plan.halo_rows(),
        if run.stats.retries > 0 || run.stats.jobs_created > 1 || run.stats.reuploads > 0 {
            format!(
                " ({} requests retried, {} jobs created, {} tiles uploaded again)",
                run.stats.retries, run.stats.jobs_created, run.stats.reuploads
            )
        } else {
            String::new()
        }
    );
    println!(
        "  encrypt+upload+filter+download+decrypt {:>8}   pipelined; uploaded {}, downloaded {}",
        secs(t_all),
        bytes(run.stats.uploaded as usize),
        bytes(run.stats.downloaded as usize)
    );
    println!(
        "  spot check (each tile): {} of {} pixels recomputed ({} ciphertexts sampled, {} random values per tile): all match",
        run.pixels_checked,
        img.width() * img.height(),
        run.ciphertexts_checked,
        a.spot_checks
    );
    if a.full_check {
        println!(
            "  plaintext reference ({}, tile by tile): {differing} of {compared} values differ{}",
            secs(t_reference),
            match skip.len() {
                0 => String::new(),
                n => format!(
                    " (in the tiles of this run; {n} tiles saved by the interrupted run were \
                     checked when they first came back, not again)"
                ),
            }
        );
        if differing != 0 {
            return Err(VerificationFailed(format!(
                "the server's result differs from the plaintext filter in {differing} values"
            ))
            .into());
        }
    }
    // The photo is not needed any more: only the result is held while
    // it is written.
    drop(input);
    let seen = seen
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    write_result_and_view(
        out_path,
        view_path,
        canvas.into_image()?,
        &seen,
        a.force,
        quality,
    )?;
    if let Some(state) = state.into_inner().ok().flatten() {
        let path = state.path().to_path_buf();
        if let Err(e) = state.finish() {
            eprintln!("he: warning: {e:#}; delete {} yourself", path.display());
        }
    }
    Ok(())
}
