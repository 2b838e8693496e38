//! `he loadtest`: a bounded load test of the service. It starts the server
//! in this process on a free loopback port, or loads a running service
//! (`--server URL`: one node, or a proxy in front of several), runs a fixed
//! number of concurrent clients, each with its own key and image, for a
//! fixed number of requests each, then stops by itself and checks that
//! every result decrypts, under its own client's key, to that client's
//! image filtered in plain.
//!
//! Latency is one request's round trip as a client sees it: upload, queue,
//! filter, polling, download and delete (retries included: a full queue's
//! `503`, a proxy's `502`, a cut connection).
//! Encryption and decryption are done before and after the timed run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clap::ArgMatches;
use enc_image::{DecryptedImage, EncryptedImage, Limits, NoProgress, PixelImage};
use he_filter::{Filter, reference};
use he_service::client::check_history;
use he_service::client::{Client, ClientOptions};
use he_service::server::{Config, ServerHandle};
use he_service::wire::{Envelope, JobSpec};
use paillier::Keypair;
use rayon::prelude::*;

use crate::chain;
use crate::cli::LoadtestArgs;
use crate::ui::{BUNDLED_PHOTO, Bar, bytes, secs, timed};

/// Runs `he loadtest`; fails if any request was lost, wrong or left behind.
pub(crate) fn run(a: LoadtestArgs, m: &ArgMatches) -> Result<()> {
    if a.siege {
        return super::siege::run(&a);
    }
    let spec = chain::from_matches(m)?;
    if a.log {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    match run_checked(&a, &spec.filters).map_err(|e| anyhow!(e))? {
        0 => Ok(()),
        n => Err(anyhow!("{n} requests were lost, wrong or left behind")),
    }
}

/// One client's material, prepared before the timed run.
struct Prepared {
    kp: Keypair,
    enc: EncryptedImage,
    envelope: Vec<u8>,
    want: DecryptedImage,
}

/// What one request brought back.
struct Outcome {
    client: usize,
    latency: Duration,
    busy_retries: u32,
    result: Result<Vec<u8>, String>,
}

/// A distinct image per client: the bundled photo, shifted and offset by
/// the client's number.
fn client_image(photo: &image::DynamicImage, size: u32, client: usize) -> PixelImage {
    let img = photo.resize_exact(size, size, image::imageops::FilterType::Triangle);
    let mut rgb = img.to_rgb8();
    for (i, p) in rgb.pixels_mut().enumerate() {
        let shift = (client * 37 + i % 7) as u8;
        for c in &mut p.0 {
            *c = c.wrapping_add(shift);
        }
    }
    PixelImage::from_dynamic(&image::DynamicImage::ImageRgb8(rgb))
}

/// Pauses between retries: short, so that a full queue is tried again
/// soon, and capped, so that a node restarting behind a proxy or a store
/// coming back is noticed within a second.
fn client_options() -> ClientOptions {
    ClientOptions {
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(1),
        ..ClientOptions::default()
    }
}

/// One request: upload, wait, download and delete, riding out what the
/// client rides out (a full queue's `503`, a proxy's `502`, cut or refused
/// connections) until the deadline. The count is of requests retried.
fn request(client: &Client, envelope: &[u8]) -> (Result<Vec<u8>, String>, u32) {
    match client.run_job(envelope, &NoProgress, REQUEST_DEADLINE) {
        Ok(run) => (Ok(run.result), run.retries),
        Err(e) => (Err(e.to_string()), 0),
    }
}

/// The longest one request may take, retries included.
const REQUEST_DEADLINE: Duration = Duration::from_secs(600);

/// What the load test runs against.
enum Target {
    /// A server started in this process, stopped at the end.
    Local(ServerHandle),
    /// A running service (`--server URL`), maybe shared with others.
    Remote(String),
}

impl Target {
    fn url(&self) -> String {
        match self {
            Target::Local(server) => server.url(),
            Target::Remote(url) => url.clone(),
        }
    }
}

/// A client of the target, with the token and CA of the command line.
fn client(args: &LoadtestArgs, url: &str) -> Result<Client, String> {
    let mut options = client_options();
    if let Some(path) = &args.ca {
        options.ca_pem = Some(
            crate::files::read_capped(path, 1 << 20, "CA certificates")
                .map_err(|e| format!("{e:#}"))?,
        );
    }
    let mut client = Client::with_options(url, options).map_err(|e| e.to_string())?;
    if let Some(t) = &args.token {
        client = client.with_token(&t.0).map_err(|e| e.to_string())?;
    }
    Ok(client)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn run_checked(args: &LoadtestArgs, chain: &[Filter]) -> Result<usize, String> {
    let target = match &args.server {
        Some(url) => Target::Remote(url.trim_end_matches('/').to_string()),
        None => Target::Local(
            ServerHandle::start(Config {
                listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
                queue_capacity: args.queue as usize,
                workers: args.workers,
                ..Config::default()
            })
            .map_err(|e| e.to_string())?,
        ),
    };
    let url = target.url();
    // A service that cannot be reached fails here, before any key is made.
    client(args, &url)?
        .info()
        .map_err(|e| format!("the service at {url}: {e}"))?;
    let labels: Vec<String> = chain.iter().map(Filter::label).collect();
    let queue = match &target {
        Target::Local(_) => format!(" (queue {})", args.queue),
        Target::Remote(_) => String::new(),
    };
    println!(
        "server on {url}{queue}, {} clients x {} requests, {}x{} RGB, {}, {}-bit keys",
        args.clients,
        args.requests,
        args.size,
        args.size,
        labels.join(" then "),
        args.key_bits
    );

    // Keys, images, encryption and references, before the clock starts.
    let photo = image::load_from_memory(BUNDLED_PHOTO).map_err(|e| e.to_string())?;
    let spec = JobSpec {
        filters: chain.to_vec(),
    };
    let opts = he_filter::encrypt_options(chain).map_err(|e| e.to_string())?;
    let spin = Bar::spinner("preparing keys, images and ciphertexts");
    let (prepared, t_prepare) = timed(|| {
        (0..args.clients as usize)
            .into_par_iter()
            .map(|c| -> Result<Prepared, String> {
                let kp = Keypair::generate(args.key_bits).map_err(|e| e.to_string())?;
                let img = client_image(&photo, args.size, c);
                let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress)
                    .map_err(|e| e.to_string())?;
                let envelope =
                    Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes());
                let want =
                    reference::apply_chain(&img, chain, opts.border).map_err(|e| e.to_string())?;
                Ok(Prepared {
                    kp,
                    enc,
                    envelope,
                    want,
                })
            })
            .collect::<Result<Vec<_>, String>>()
    });
    drop(spin);
    let prepared = prepared?;
    println!(
        "  prepared in {} (upload {} per request)",
        secs(t_prepare),
        bytes(prepared[0].envelope.len())
    );

    // The timed run: every client thread sends its requests one after another.
    let outcomes = Mutex::new(Vec::with_capacity(
        args.clients as usize * args.requests as usize,
    ));
    let start = Instant::now();
    std::thread::scope(|s| {
        for (c, p) in prepared.iter().enumerate() {
            let (outcomes, url) = (&outcomes, &url);
            s.spawn(move || {
                let client = match client(args, url) {
                    Ok(cl) => cl,
                    Err(e) => {
                        eprintln!("client {c}: {e}");
                        return;
                    }
                };
                for _ in 0..args.requests {
                    let t = Instant::now();
                    let (result, busy_retries) = request(&client, &p.envelope);
                    let o = Outcome {
                        client: c,
                        latency: t.elapsed(),
                        busy_retries,
                        result,
                    };
                    outcomes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(o);
                }
            });
        }
    });
    let wall = start.elapsed();
    let outcomes = outcomes
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let health = client(args, &url)?.health().map_err(|e| e.to_string())?;
    // Jobs left behind count as failures on a server of our own only.
    let left_behind = match target {
        Target::Local(server) => {
            server.stop().map_err(|e| e.to_string())?;
            health.jobs_stored
        }
        Target::Remote(_) => 0,
    };

    // Check every result under its own client's key, against its own image.
    let expected = args.clients as usize * args.requests as usize;
    let checks: Vec<Result<(), String>> = outcomes
        .par_iter()
        .map(|o| {
            let p = &prepared[o.client];
            let bytes = o.result.as_ref().map_err(|e| e.clone())?;
            let out = EncryptedImage::from_bytes(bytes, p.kp.public_key(), &Limits::default())
                .map_err(|e| format!("client {}: result does not load: {e}", o.client))?;
            check_history(&p.enc, &out, &spec).map_err(|e| e.to_string())?;
            let got = out
                .decrypt(p.kp.private_key(), &NoProgress)
                .map_err(|e| format!("client {}: {e}", o.client))?;
            if got != p.want {
                return Err(format!(
                    "client {}: the result is not its image filtered",
                    o.client
                ));
            }
            Ok(())
        })
        .collect();
    let failures: Vec<&String> = checks.iter().filter_map(|c| c.as_ref().err()).collect();
    let lost = expected - outcomes.len();

    let mut lat: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    lat.sort();
    let retries: u32 = outcomes.iter().map(|o| o.busy_retries).sum();
    let n = outcomes.len().max(1);
    let values = (args.size as usize).pow(2) * 3;
    println!(
        "  {} requests in {} from {} clients: {:.2} requests/s, {:.0} pixel values/s",
        outcomes.len(),
        secs(wall),
        args.clients,
        n as f64 / wall.as_secs_f64(),
        (n * values) as f64 / wall.as_secs_f64()
    );
    if !lat.is_empty() {
        println!(
            "  latency: p50 {}, p90 {}, p99 {}, max {} (mean {})",
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.90)),
            ms(percentile(&lat, 0.99)),
            ms(lat[lat.len() - 1]),
            ms(lat.iter().sum::<Duration>() / lat.len() as u32)
        );
    }
    println!(
        "  requests retried (a full queue's 503, a proxy's 502, cut connections): {retries}; jobs left on the server: {}{}",
        health.jobs_stored,
        if args.server.is_some() {
            " (its own count, every client's)"
        } else {
            ""
        }
    );
    println!(
        "  checked: {} of {expected} results decrypt under their own client's key to that client's filtered image; {} lost, {} failed",
        checks.iter().filter(|c| c.is_ok()).count(),
        lost,
        failures.len()
    );
    for f in failures.iter().take(5) {
        eprintln!("  failure: {f}");
    }
    Ok(failures.len() + lost + left_behind)
}
