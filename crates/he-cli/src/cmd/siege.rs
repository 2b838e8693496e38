//! `he loadtest --siege`: the service under attack, bounded in time. A
//! server on loopback with API tokens; at once:
//!
//! - slow and idle connections from other loopback addresses (127.0.0.2
//!   and up): headers trickled a byte at a time, bodies declared and never
//!   sent, keep-alive connections left idle;
//! - one token flooding the job store with tiny jobs;
//! - one token submitting a job over the per-job cost budget;
//! - one token running a heavy job within the budget (estimated at twice
//!   the server's heavy-lane threshold, so it runs for minutes);
//!
//! and meanwhile a normal client with its own token asks `/v1/health`
//! every 100 ms and, once the heavy job runs, a small job, which must
//! decrypt exactly. The run fails unless the normal client's health p99 is
//! under 1 s and its job is done within 30 s while the heavy job is still
//! running. Images for the attackers are encrypted trivially
//! (`1 + m n`, valid ciphertexts that cost nothing to make), since only
//! the server's side of them matters.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use enc_image::{ColorLayout, EncryptedImage, Limits, NoProgress, PixelImage};
use he_filter::{Filter, reference};
use he_service::client::{Client, Error};
use he_service::server::tokens::TokenFile;
use he_service::server::{Config, ServerHandle};
use he_service::wire::{Envelope, JobSpec, JobState};
use paillier::hazmat::{Encryptor, trivial_encrypt_raw};
use paillier::{Ciphertext, Integer, Keypair, PublicKey};

use crate::cli::LoadtestArgs;
use crate::ui::secs;

/// "Encrypts" with randomness 1: `1 + m n mod n^2`. A valid ciphertext
/// that costs one multiplication; for attackers' uploads only.
struct Trivial<'a>(&'a PublicKey);

impl Encryptor for Trivial<'_> {
    fn public_key(&self) -> &PublicKey {
        self.0
    }
    fn encrypt_raw(&self, m: &Integer) -> paillier::Result<Ciphertext> {
        trivial_encrypt_raw(self.0, m)
    }
}

/// A `size` x `size` kernel of random 0/1 weights (xorshift): no two rows
/// alike, nothing separable, so no shortcut makes it cheap.
fn random_01_kernel(size: usize) -> Filter {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    Filter::Kernel {
        size,
        weights: (0..size * size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                i64::from(x >> 63 == 1)
            })
            .collect(),
        divisor: 1,
    }
}

/// The smallest square side, from 384 px up by halves, whose job for
/// `chain` under `pk` is estimated at `units` or more (at most 8192).
fn side_for_units(pk: &PublicKey, chain: &[Filter], units: u64) -> Result<usize> {
    let opts = he_filter::encrypt_options(chain)?;
    let mut side = 384;
    loop {
        let meta = enc_image::ImageMeta::for_encryption(
            side,
            side,
            ColorLayout::Rgb8,
            pk.bits(),
            pk.fingerprint(),
            &opts,
        )?;
        if he_filter::estimate_cost(&meta, chain)?.whole_units() >= units || side >= 8192 {
            return Ok(side);
        }
        side += side / 2;
    }
}

/// A job envelope of a `side` x `side` RGB image for `chain`, encrypted
/// trivially under `pk`.
fn cheap_envelope(pk: &PublicKey, side: usize, chain: Vec<Filter>) -> Result<Vec<u8>> {
    let img = PixelImage::new(
        side,
        side,
        ColorLayout::Rgb8,
        (0..side * side * 3).map(|i| (i * 31 % 251) as u8).collect(),
    )?;
    let spec = JobSpec::new(chain);
    let opts = he_filter::encrypt_options(&spec.filters)?;
    let enc = EncryptedImage::encrypt(&img, &Trivial(pk), &opts, &NoProgress)?;
    Ok(Envelope::encode(&spec, &pk.to_bytes(), &enc.to_bytes()))
}

/// What one attacker saw, for the table.
#[derive(Debug, Default)]
struct Tally {
    sent: AtomicUsize,
    accepted: AtomicUsize,
    refused: Mutex<Vec<(u16, usize)>>,
    note: Mutex<String>,
}

impl Tally {
    fn refused(&self, status: u16) {
        let mut r = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match r.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => r.push((status, 1)),
        }
    }
    fn summary(&self) -> String {
        let r = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let refused: Vec<String> = r.iter().map(|(s, n)| format!("{n} x {s}")).collect();
        let note = self
            .note
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        format!(
            "{} sent, {} accepted{}{}",
            self.sent.load(Ordering::SeqCst),
            self.accepted.load(Ordering::SeqCst),
            if refused.is_empty() {
                String::new()
            } else {
                format!(", refused: {}", refused.join(", "))
            },
            if note.is_empty() {
                String::new()
            } else {
                format!("; {note}")
            }
        )
    }
}

fn note(t: &Tally, s: String) {
    *t.note
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = s;
}

/// A connection from `127.0.0.{host}` to `addr`.
fn connect_from(host: u8, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), 0);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&local.into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// Holds `n` slow or idle connections until `stop`, spread over loopback
/// addresses from 127.0.0.2, 5 per address; returns how many the server
/// closed, and how many could not connect at all.
fn slow_and_idle(addr: SocketAddr, n: usize, stop: &AtomicBool) -> (usize, usize, usize) {
    let mut conns: Vec<(TcpStream, usize)> = Vec::new();
    let mut failed = 0;
    for i in 0..n {
        let host = 2 + (i / 5) as u8;
        match connect_from(host, addr) {
            Ok(c) => {
                let _ = c.set_nonblocking(true);
                // Three kinds: headers trickled, a body declared and never
                // sent, an idle keep-alive connection.
                let _ = (&c).write_all(match i % 3 {
                    0 => b"GET /v1/health HTTP/1.1\r\nHo".as_slice(),
                    1 => b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.he-toolkit.job\r\nContent-Length: 60000000\r\n\r\nHEJOB\0\0\0".as_slice(),
                    _ => b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n".as_slice(),
                });
                conns.push((c, i % 3));
            }
            Err(_) => failed += 1,
        }
    }
    let opened = conns.len();
    let mut closed = 0;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) && !conns.is_empty() {
        std::thread::sleep(Duration::from_millis(500));
        conns.retain_mut(|(c, kind)| {
            // Trickle one byte to the header-stallers and the slow uploads.
            if *kind != 2 {
                let _ = c.write_all(b"x");
            }
            loop {
                match c.read(&mut buf) {
                    Ok(0) => {
                        closed += 1;
                        return false;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(_) => {
                        closed += 1;
                        return false;
                    }
                }
            }
        });
    }
    (opened, closed, failed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Runs the siege; fails if the normal client was not served.
pub(crate) fn run(a: &LoadtestArgs) -> Result<()> {
    let mut tokens = TokenFile::default();
    let now = 0;
    let normal = tokens.create("normal", now)?;
    let flood = tokens.create("flood", now)?;
    let greedy = tokens.create("greedy", now)?;
    let heavy = tokens.create("heavy", now)?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        tokens: Some(tokens),
        ..Config::default()
    };
    let heavy_units = 2 * config.heavy_job_units;
    let server = ServerHandle::start(config)?;
    let url = server.url();
    let addr = server.addr();
    println!(
        "siege of {url}: {} slow or idle connections, a flooding token, an over-budget job, a heavy job; \
         {}-bit keys, {} s",
        a.slow, a.key_bits, a.seconds
    );

    // Material, before the clock starts.
    let kp = Keypair::generate(a.key_bits)?;
    let pk = kp.public_key();
    let tiny = cheap_envelope(pk, 8, vec![Filter::Mean { k: 3 }])?;
    // Dense, so that the job is heavy for its upload's size.
    let heavy_chain = vec![random_01_kernel(11)];
    let heavy_side = side_for_units(pk, &heavy_chain, heavy_units)?;
    let heavy_env = cheap_envelope(pk, heavy_side, heavy_chain)?;
    let big_kernel = random_01_kernel(63);
    // The job: about 59 MiB of 4096-bit ciphertexts and a 63x63
    // kernel, inside every size limit but hours of work.
    let big_key = Keypair::generate(4096)?;
    let greedy_env = cheap_envelope(big_key.public_key(), 1280, vec![big_kernel])?;
    let photo = PixelImage::new(
        64,
        64,
        ColorLayout::Rgb8,
        (0..64 * 64 * 3).map(|i| (i * 13 % 256) as u8).collect(),
    )?;
    let chain = vec![Filter::Mean { k: 3 }];
    let spec = JobSpec::new(chain.clone());
    let normal_enc = EncryptedImage::encrypt(
        &photo,
        kp.private_key(),
        &he_filter::encrypt_options(&chain)?,
        &NoProgress,
    )?;
    let normal_env = Envelope::encode(&spec, &pk.to_bytes(), &normal_enc.to_bytes());
    let want = reference::apply_chain(&photo, &chain, normal_enc.meta().border())?;

    let stop = AtomicBool::new(false);
    let (flood_t, greedy_t, heavy_t) = (Tally::default(), Tally::default(), Tally::default());
    let health: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let health_failures = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let mut slow_result = (0, 0, 0);
    let mut normal_job: Result<(Duration, bool)> = Err(anyhow::anyhow!("not run"));
    let heavy_running = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| slow_result = slow_and_idle(addr, a.slow as usize, &stop));
        s.spawn(|| {
            let Ok(c) = Client::new(&url).and_then(|c| c.with_token(&flood)) else {
                return;
            };
            while !stop.load(Ordering::SeqCst) {
                flood_t.sent.fetch_add(1, Ordering::SeqCst);
                match c.submit_envelope(&tiny, &NoProgress) {
                    Ok(_) => {
                        flood_t.accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(Error::Server { status, .. }) => {
                        flood_t.refused(status);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        s.spawn(|| {
            let Ok(c) = Client::new(&url).and_then(|c| c.with_token(&greedy)) else {
                return;
            };
            greedy_t.sent.fetch_add(1, Ordering::SeqCst);
            match c.submit_envelope(&greedy_env, &NoProgress) {
                Ok(_) => {
                    greedy_t.accepted.fetch_add(1, Ordering::SeqCst);
                }
                Err(Error::Server { status, message }) => {
                    greedy_t.refused(status);
                    note(&greedy_t, message.chars().take(120).collect());
                }
                Err(e) => note(&greedy_t, e.to_string()),
            }
        });
        s.spawn(|| {
            let Ok(c) = Client::new(&url).and_then(|c| c.with_token(&heavy)) else {
                return;
            };
            heavy_t.sent.fetch_add(1, Ordering::SeqCst);
            match c.submit_envelope(&heavy_env, &NoProgress) {
                Ok(st) => {
                    heavy_t.accepted.fetch_add(1, Ordering::SeqCst);
                    let (mut last, mut errors) = (st.state, 0);
                    // A status request that fails once (a busy machine) is
                    // asked again; five failures in a row end the watch.
                    while !stop.load(Ordering::SeqCst) && last != JobState::Done && errors < 5 {
                        match c.status(&st.id, Duration::from_millis(500)) {
                            Ok(st) => (last, errors) = (st.state, 0),
                            Err(_) => {
                                errors += 1;
                                std::thread::sleep(Duration::from_millis(100));
                                continue;
                            }
                        }
                        heavy_running.store(last == JobState::Running, Ordering::SeqCst);
                    }
                    heavy_running.store(false, Ordering::SeqCst);
                    note(&heavy_t, format!("job {last:?} at the end of the run"));
                    let _ = c.delete(&st.id);
                }
                Err(Error::Server { status, message }) => {
                    heavy_t.refused(status);
                    note(&heavy_t, message.chars().take(120).collect());
                }
                Err(e) => note(&heavy_t, e.to_string()),
            }
        });
        s.spawn(|| {
            let Ok(c) = Client::new(&url).and_then(|c| c.with_token(&normal)) else {
                return;
            };
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let t = Instant::now();
                match c.health() {
                    Ok(_) => health
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(t.elapsed()),
                    Err(_) => {
                        health_failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        // The normal client's job, once the heavy job runs (at least two
        // seconds into the siege, at most fifteen).
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        while !heavy_running.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(100));
        }
        normal_job = (|| -> Result<(Duration, bool)> {
            let c = Client::new(&url)?.with_token(&normal)?;
            let t = Instant::now();
            let ran_beside = heavy_running.load(Ordering::SeqCst);
            let run = c.run_job(&normal_env, &NoProgress, Duration::from_secs(60))?;
            let took = t.elapsed();
            if !(ran_beside && heavy_running.load(Ordering::SeqCst)) {
                bail!(
                    "the heavy job was not running from the start to the end of the normal \
                     client's job ({}), so the run shows nothing about it",
                    secs(took)
                );
            }
            let out = EncryptedImage::from_bytes(&run.result, pk, &Limits::default())?;
            let got = out.decrypt(kp.private_key(), &NoProgress)?;
            Ok((took, got == want))
        })();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::SeqCst);
    });
    server.stop().context("stopping the server")?;

    let mut lat = health
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    lat.sort();
    let (opened, closed, failed) = slow_result;
    println!("| who | what they did | what they got |");
    println!("|---|---|---|");
    println!(
        "| slow and idle connections | {opened} opened from 127.0.0.2 and up ({failed} could not connect): headers trickled, 60 MB bodies declared and trickled, idle keep-alive | {closed} closed by the server within {} s |",
        a.seconds
    );
    println!(
        "| flooding token | tiny jobs, as fast as answered | {} |",
        flood_t.summary()
    );
    println!(
        "| over-budget token | one 1280x1280 RGB job at 4096 bits with a 63x63 kernel (about 59 MiB) | {} |",
        greedy_t.summary()
    );
    println!(
        "| heavy token | one {heavy_side}x{heavy_side} RGB job with a random 11x11 kernel (estimated at {heavy_units} units or more: the heavy lane) | {} |",
        heavy_t.summary()
    );
    let (p50, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default(),
    );
    let job = match &normal_job {
        Ok((t, exact)) => format!(
            "its 64x64 job done in {}, {}",
            secs(*t),
            if *exact { "exact" } else { "WRONG" }
        ),
        Err(e) => format!("its job failed: {e:#}"),
    };
    println!(
        "| normal client | /v1/health every 100 ms, one small job | health: {} answers, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, {} failed; {job} |",
        lat.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        health_failures.load(Ordering::SeqCst)
    );
    let failed = health_failures.load(Ordering::SeqCst);
    if lat.is_empty() || failed > 0 {
        bail!(
            "the normal client's /v1/health failed {failed} times ({} answers)",
            lat.len()
        );
    }
    match normal_job {
        Ok((t, true)) if t <= Duration::from_secs(30) && p99 < Duration::from_secs(1) => Ok(()),
        Ok((t, exact)) => bail!(
            "the normal client was not served: job {} ({}), health p99 {:.0} ms",
            secs(t),
            if exact { "exact" } else { "wrong" },
            p99.as_secs_f64() * 1e3
        ),
        Err(e) => Err(e.context("the normal client's job")),
    }
}
