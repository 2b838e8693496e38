//! A bounded load test of the service on loopback: it starts the server in
//! this process on a free port, runs a fixed number of concurrent clients,
//! each with its own key and image, for a fixed number of requests each,
//! then stops by itself and checks that every result decrypts, under its
//! own client's key, to that client's image filtered in plain.
//!
//! ```text
//! cargo run --release --example loadtest -- [--clients 8] [--requests 6] [--key-bits 2048]
//!     [--size 128] [--queue 4] [--workers N] [--filter NAME [PARAMS]]... [--log]
//! ```
//!
//! Latency is one request's round trip as a client sees it: upload, queue,
//! filter, polling, download and delete (retries after a `503` included).
//! Encryption and decryption are done before and after the timed run.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use enc_image::{DecryptedImage, EncryptedImage, Limits, NoProgress, PixelImage};
use he_filter::{Filter, reference};
use he_service::client::{Client, Error, check_history};
use he_service::server::{Config, ServerHandle};
use he_service::wire::{Envelope, JobSpec, JobState};
use he_toolkit::cli::{FILTER_HELP, FilterCli};
use he_toolkit::{Bar, secs, timed};
use paillier::Keypair;
use rayon::prelude::*;

const USAGE: &str = "usage: loadtest [--clients N] [--requests N] [--key-bits B] [--size PX] \
[--queue N] [--workers N] [--filter NAME [PARAMS]]... [--log]

  --clients N    concurrent clients, each with its own key and image (default 8)
  --requests N   requests per client, one after another (default 6)
  --key-bits B   key size, 2048 or more (default 2048)
  --size PX      side of the square RGB images (default 128)
  --queue N      the server's queue capacity (default 4: some 503s are expected and retried)
  --workers N    the server's filter threads (default: one per core)
  --log          print the server's logs";

#[derive(Debug)]
struct Args {
    clients: usize,
    requests: usize,
    key_bits: u32,
    size: u32,
    queue: usize,
    workers: usize,
    chain: Vec<Filter>,
    log: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        clients: 8,
        requests: 6,
        key_bits: 2048,
        size: 128,
        queue: 4,
        workers: 0,
        chain: Vec::new(),
        log: false,
    };
    fn number<T: std::str::FromStr>(
        it: &mut impl Iterator<Item = String>,
        flag: &str,
    ) -> Result<T, String> {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
    }
    let mut filters = FilterCli::new();
    while let Some(arg) = it.next() {
        if filters.accept(&arg, &mut it)? {
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--clients" => a.clients = number(&mut it, &arg)?,
            "--requests" => a.requests = number(&mut it, &arg)?,
            "--key-bits" => a.key_bits = number(&mut it, &arg)?,
            "--size" => a.size = number(&mut it, &arg)?,
            "--queue" => a.queue = number(&mut it, &arg)?,
            "--workers" => a.workers = number(&mut it, &arg)?,
            "--log" => a.log = true,
            s => return Err(format!("unknown argument {s}")),
        }
    }
    (a.chain, _) = filters.finish()?;
    if a.clients == 0 || a.requests == 0 || a.queue == 0 {
        return Err("--clients, --requests and --queue must be at least 1".into());
    }
    if a.size == 0 || a.size > 4096 {
        return Err("--size must be 1 to 4096".into());
    }
    Ok(a)
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

/// One request, retried after a 503 (the queue is full) until accepted.
fn request(client: &Client, envelope: &[u8]) -> (Result<Vec<u8>, String>, u32) {
    let mut retries = 0;
    let job = loop {
        match client.submit_envelope(envelope, &NoProgress) {
            Err(Error::Server { status: 503, .. }) => {
                retries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other,
        }
    };
    let run = || -> Result<Vec<u8>, Error> {
        let job = job?;
        let st = client.wait(&job.id, &NoProgress, Duration::from_secs(600))?;
        if st.state != JobState::Done {
            return Err(Error::Protocol(format!("job failed: {:?}", st.error)));
        }
        let bytes = client.result(&job.id, &NoProgress)?;
        client.delete(&job.id)?;
        Ok(bytes)
    };
    (run().map_err(|e| e.to_string()), retries)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn run(args: Args) -> Result<usize, String> {
    if args.log {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let server = ServerHandle::start(Config {
        listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        queue_capacity: args.queue,
        workers: std::num::NonZeroUsize::new(args.workers),
        ..Config::default()
    })
    .map_err(|e| e.to_string())?;
    let labels: Vec<String> = args.chain.iter().map(Filter::label).collect();
    println!(
        "server on {} (queue {}), {} clients x {} requests, {}x{} RGB, {}, {}-bit keys",
        server.url(),
        args.queue,
        args.clients,
        args.requests,
        args.size,
        args.size,
        labels.join(" then "),
        args.key_bits
    );

    // Keys, images, encryption and references, before the clock starts.
    let photo = image::open(he_toolkit::DEFAULT_IMAGE).map_err(|e| e.to_string())?;
    let spec = JobSpec {
        filters: args.chain.clone(),
    };
    let opts = he_filter::encrypt_options(&args.chain).map_err(|e| e.to_string())?;
    let spin = Bar::spinner("preparing keys, images and ciphertexts");
    let (prepared, t_prepare) = timed(|| {
        (0..args.clients)
            .into_par_iter()
            .map(|c| -> Result<Prepared, String> {
                let kp = Keypair::generate(args.key_bits).map_err(|e| e.to_string())?;
                let img = client_image(&photo, args.size, c);
                let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress)
                    .map_err(|e| e.to_string())?;
                let envelope =
                    Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes());
                let want = reference::apply_chain(&img, &args.chain, opts.border)
                    .map_err(|e| e.to_string())?;
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
        he_toolkit::bytes(prepared[0].envelope.len())
    );

    // The timed run: every client thread sends its requests one after another.
    let outcomes = Mutex::new(Vec::with_capacity(args.clients * args.requests));
    let start = Instant::now();
    std::thread::scope(|s| {
        for (c, p) in prepared.iter().enumerate() {
            let (outcomes, url) = (&outcomes, server.url());
            s.spawn(move || {
                let client = match Client::new(&url) {
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
    let health = Client::new(&server.url())
        .and_then(|c| c.health())
        .map_err(|e| e.to_string())?;
    server.stop().map_err(|e| e.to_string())?;

    // Check every result under its own client's key, against its own image.
    let expected = args.clients * args.requests;
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
        "  503 answers (queue full, retried after 20 ms): {retries}; jobs left on the server: {}",
        health.jobs_stored
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
    Ok(failures.len() + lost + health.jobs_stored)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}\n{FILTER_HELP}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}\n{FILTER_HELP}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            eprintln!("error: {n} requests were lost, wrong or left behind");
            ExitCode::FAILURE
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
