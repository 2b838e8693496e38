//! `he submit`: filter an image on a server that only ever sees it
//! encrypted. The client keeps the private key: it encrypts, uploads the
//! public key, the chain and the ciphertexts, waits for the job, downloads
//! the encrypted result, checks and decrypts it, spot-checks it against the
//! same chain recomputed on the input at one random value of every
//! ciphertext and a few thousand more (with `--full-check`, on the whole
//! image too), and writes the image only if every compared value matches.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use enc_image::{EncryptedImage, Limits};
use he_filter::{Filter, reference};
use he_service::client::check_history;
use he_service::client::{Client, ClientOptions};
use he_service::wire::{Envelope, JobSpec};
use paillier::Keypair;

use crate::VerificationFailed;
use crate::chain;
use crate::cli::SubmitArgs;
use crate::files;
use crate::ui::{
    Bar, Input, bytes, count_value_differences, output_paths, secs, timed, write_result_and_view,
};

/// The key pair: loaded from --key, or generated (and saved to --key);
/// what was done, and how long it took.
fn keypair(a: &SubmitArgs) -> Result<(Keypair, String, Duration)> {
    let used = super::keypair(&super::KeySource {
        path: a.key.as_deref(),
        new_key: a.new_key,
        bits: a.key_bits,
        allow_readable: a.allow_readable_key,
        force: a.force,
    })?;
    Ok((used.keypair, used.what, used.took))
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
    // Ask the server first: no key is generated for a server that is not there.
    let info = client
        .info()
        .with_context(|| format!("server {}", a.server))?;
    let img = input.pixels();
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

    let (kp, key_what, t_key) = keypair(&a)?;
    println!("  key: {key_what} ({})", secs(t_key));
    let opts = he_filter::encrypt_options(&spec.filters)?.border(border);
    let bar = Bar::new();
    let (enc, t_encrypt) = timed(|| {
        kp.private_key().precompute();
        EncryptedImage::encrypt(&img, kp.private_key(), &opts, &bar)
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
    let run = client.run_job(&envelope, &bar, Duration::from_secs(a.timeout))?;
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
    let spot = super::spot_check(&img, &spec.filters, border, &meta, &exact, a.spot_checks)?;
    let full = if a.full_check {
        let (want, t_reference) = timed(|| reference::apply_chain(&img, &spec.filters, border));
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
    write_result_and_view(
        &out_path,
        &view_path,
        &exact.to_pixels_with(spec.mapping).to_dynamic()?,
        EncryptedImage::payload_of(&image_bytes).unwrap_or(&image_bytes),
        img.width(),
        a.force,
        quality,
    )
}
