//! Faults for real, on loopback: a server killed in the middle of a job
//! and started again on the same port, a connection cut in the middle of
//! an upload or a download (by a proxy thread between client and server),
//! a server that accepts connections and never answers, and one that is
//! not there. The client must finish with the right result, value for
//! value, or give up with a clear message before its deadline.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use enc_image::{BorderMode, ColorLayout, EncryptedImage, Limits, NoProgress, PixelImage};
use he_filter::Filter;
use he_filter::reference;
use he_service::client::{Client, ClientOptions, Error, Notice, check_history};
use he_service::server::Config;
use he_service::wire::{Envelope, JobSpec};
use paillier::Keypair;

use common::*;

/// Quick retries, so that the tests take seconds.
fn options() -> ClientOptions {
    ClientOptions {
        io_timeout: Duration::from_secs(10),
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..ClientOptions::default()
    }
}

/// A client of `url` whose notices are kept for the test to read.
fn noted_client(url: &str, options: ClientOptions) -> (Client, Arc<Mutex<Vec<Notice>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&notices);
    let client = Client::with_options(url, options)
        .unwrap()
        .on_notice(move |n| {
            eprintln!("notice: {n}");
            seen.lock().unwrap().push(n.clone());
        });
    (client, notices)
}

/// A job, its input and the envelope the client uploads.
struct Job {
    kp: Keypair,
    img: PixelImage,
    spec: JobSpec,
    enc: EncryptedImage,
    envelope: Vec<u8>,
}

fn job(side: usize, chain: Vec<Filter>) -> Job {
    let kp = key();
    let img = image(side, side, ColorLayout::Rgb8, side as u64);
    let spec = spec(chain);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    let envelope = Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes());
    Job {
        kp,
        img,
        spec,
        enc,
        envelope,
    }
}

/// Loads, checks and decrypts a result, and compares it with the
/// plaintext chain value for value, then pixel for pixel.
fn assert_correct(job: &Job, result: &[u8]) {
    let out = EncryptedImage::from_bytes(result, job.kp.public_key(), &Limits::default()).unwrap();
    check_history(&job.enc, &out, &job.spec).unwrap();
    let got = out.decrypt(job.kp.private_key(), &NoProgress).unwrap();
    let want = reference::apply_chain(&job.img, &job.spec.filters, BorderMode::Replicate).unwrap();
    assert_eq!(got, want);
    assert_eq!(got.to_pixels(), want.to_pixels());
}

fn retries_while(notices: &[Notice], doing: &str) -> Vec<Option<u32>> {
    notices
        .iter()
        .filter_map(|n| match n {
            Notice::Retry {
                doing: d, limit, ..
            } if d.starts_with(doing) => Some(*limit),
            _ => None,
        })
        .collect()
}

/// Sends on its channel once the server reports filter work done and not
/// all of it: the job is running.
#[derive(Default)]
struct WhenRunning {
    total: AtomicU64,
    done: AtomicU64,
    tx: Mutex<Option<mpsc::Sender<(u64, u64)>>>,
}

impl WhenRunning {
    /// A new channel for the next job seen running.
    fn arm(&self) -> mpsc::Receiver<(u64, u64)> {
        let (tx, rx) = mpsc::channel();
        *self.tx.lock().unwrap() = Some(tx);
        rx
    }
}

impl enc_image::Progress for WhenRunning {
    fn start(&self, phase: enc_image::Phase, total: u64) {
        if phase == enc_image::Phase::Filter {
            self.total.store(total, Ordering::SeqCst);
            self.done.store(0, Ordering::SeqCst);
        }
    }
    fn advance(&self, n: u64) {
        let total = self.total.load(Ordering::SeqCst);
        let done = self.done.fetch_add(n, Ordering::SeqCst) + n;
        if total > 0
            && done > 0
            && done < total
            && let Some(tx) = self.tx.lock().unwrap().take()
        {
            let _ = tx.send((done, total));
        }
    }
}

#[test]
fn a_job_lost_when_the_server_is_killed_is_resubmitted_to_the_restarted_server() {
    // About two seconds of filtering on two workers: long enough to be
    // killed in the middle.
    let job = job(
        96,
        vec![
            Filter::Gaussian {
                k: 0,
                sigma: Some(1.0),
            },
            Filter::Sharpen,
        ],
    );
    let first = server(|_| {});
    let addr = first.addr();
    let before = first.service().instance().to_string();
    let (client, notices) = noted_client(&first.url(), options());
    let progress = Arc::new(WhenRunning::default());
    let rx = progress.arm();
    let envelope = job.envelope.clone();
    let p = Arc::clone(&progress);
    let run = thread::spawn(move || client.run_job(&envelope, &*p, TIMEOUT));

    let (done, total) = rx.recv_timeout(TIMEOUT).unwrap();
    eprintln!("killing the server with the job running: {done} of {total} done");
    first.kill().unwrap();
    // Nothing listens for a moment: the client's polls are refused.
    thread::sleep(Duration::from_millis(700));
    let second = server(|c| c.listen = addr);
    let after = second.service().instance().to_string();
    assert_ne!(before, after);

    let run = run.join().unwrap().unwrap();
    assert_eq!(run.attempts, 2);
    assert_eq!(run.status.instance, after);
    assert_correct(&job, &run.result);
    let notices = notices.lock().unwrap();
    assert!(
        notices.iter().any(|n| matches!(n,
            Notice::JobLost { before: b, after: a, attempt: 2, attempts: 3, .. }
                if *b == before && *a == after)),
        "{notices:?}"
    );
    // The polls cut and refused were retried until the deadline, not counted.
    let polls = retries_while(&notices, "waiting for job");
    assert!(
        !polls.is_empty() && polls.iter().all(Option::is_none),
        "{notices:?}"
    );
    // The new server holds nothing: the result was deleted once fetched.
    assert_eq!(
        Client::new(&second.url())
            .unwrap()
            .health()
            .unwrap()
            .jobs_stored,
        0
    );
}

#[test]
fn a_job_lost_on_every_attempt_is_given_up_after_the_bounded_attempts() {
    let job = job(
        96,
        vec![
            Filter::Gaussian {
                k: 0,
                sigma: Some(1.0),
            },
            Filter::Sharpen,
        ],
    );
    let mut now = server(|_| {});
    let addr = now.addr();
    let (client, notices) = noted_client(
        &now.url(),
        ClientOptions {
            attempts: 2,
            ..options()
        },
    );
    let progress = Arc::new(WhenRunning::default());
    let mut rx = progress.arm();
    let envelope = job.envelope.clone();
    let p = Arc::clone(&progress);
    let run = thread::spawn(move || client.run_job(&envelope, &*p, TIMEOUT));
    // Kill the server twice, each time with the job running.
    for kill in 1..=2 {
        let (done, total) = rx.recv_timeout(TIMEOUT).unwrap();
        eprintln!("kill {kill}: {done} of {total} done");
        rx = progress.arm();
        now.kill().unwrap();
        now = server(|c| c.listen = addr);
    }
    let err = run.join().unwrap().unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::JobLost { attempts: 2, .. }),
        "expected JobLost after 2 attempts, got {msg}"
    );
    assert!(
        msg.contains(&now.url()) && msg.contains(now.service().instance()),
        "{msg}"
    );
    let lost = notices
        .lock()
        .unwrap()
        .iter()
        .filter(|n| matches!(n, Notice::JobLost { .. }))
        .count();
    assert_eq!(lost, 1, "one resubmission, then the error");
}

/// Where the proxy cuts a connection.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// `after` bytes into the request that starts with `POST /v1/jobs`.
    Upload { after: usize },
    /// `after` bytes into the response carrying an encrypted image.
    Download { after: usize },
    /// Just before the `202 Accepted` answer to an upload: the server has
    /// the whole job, the client never hears of it.
    Accepted,
}

/// A TCP proxy on a free loopback port in front of `target` that cuts the
/// first `times` connections matching `cut`, and passes everything else.
fn proxy(target: SocketAddr, cut: Cut, times: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let left = Arc::new(AtomicUsize::new(times));
    let cuts = Arc::new(AtomicUsize::new(0));
    let (left2, cuts2) = (Arc::clone(&left), Arc::clone(&cuts));
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(down) = conn else { return };
            let Ok(up) = TcpStream::connect(target) else {
                return;
            };
            let (marker, from_client, after): (&[u8], bool, usize) = match cut {
                Cut::Upload { after } => (b"POST /v1/jobs", true, after),
                Cut::Download { after } => (b"application/vnd.he-toolkit.image", false, after),
                Cut::Accepted => (b"202 Accepted", false, 0),
            };
            let ends = [down.try_clone().unwrap(), up.try_clone().unwrap()];
            for (to_server, mut src, mut dst) in [
                (true, down.try_clone().unwrap(), up.try_clone().unwrap()),
                (false, up.try_clone().unwrap(), down.try_clone().unwrap()),
            ] {
                let watch = to_server == from_client;
                let (left, cuts) = (Arc::clone(&left2), Arc::clone(&cuts2));
                let ends = [ends[0].try_clone().unwrap(), ends[1].try_clone().unwrap()];
                thread::spawn(move || {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut sent = 0usize;
                    let mut stop_at: Option<usize> = None;
                    loop {
                        let n = match src.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if watch
                            && stop_at.is_none()
                            && let Some(i) =
                                buf[..n].windows(marker.len()).position(|w| w == marker)
                        {
                            let take = left
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| {
                                    l.checked_sub(1)
                                })
                                .is_ok();
                            if take {
                                stop_at = Some(sent + i + after);
                            }
                        }
                        let m = stop_at.map_or(n, |s| n.min(s.saturating_sub(sent)));
                        if dst.write_all(&buf[..m]).is_err() {
                            break;
                        }
                        sent += m;
                        if stop_at.is_some_and(|s| sent >= s) {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            for e in &ends {
                                let _ = e.shutdown(Shutdown::Both);
                            }
                            break;
                        }
                    }
                    let _ = dst.shutdown(Shutdown::Write);
                });
            }
        }
    });
    (addr, cuts)
}

/// A gateway on a free loopback port in front of `target`, as a proxy
/// whose upstream is restarting would be: the first requests that open a
/// connection with `GET` are answered with each status of `answers` in
/// turn (and the connection closed); every other request is forwarded,
/// one request per connection (`connection: close` is added), so that
/// each request of the client opens a connection the gateway sees.
fn gateway(target: SocketAddr, answers: Vec<u16>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&answered);
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut down) = conn else { return };
            let (answers, count) = (Arc::clone(&answers), Arc::clone(&count));
            thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match down.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                if head.starts_with(b"GET ")
                    && let Some(code) = answers.lock().unwrap().next()
                {
                    let body = format!("{{\"error\":\"the upstream answered nothing ({code})\"}}");
                    let _ = write!(
                        down,
                        "HTTP/1.1 {code} Unavailable\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = down.shutdown(Shutdown::Both);
                    return;
                }
                let Ok(mut up) = TcpStream::connect(target) else {
                    return;
                };
                let line_end = head.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
                let mut sent = head[..line_end].to_vec();
                sent.extend_from_slice(b"connection: close\r\n");
                sent.extend_from_slice(&head[line_end..]);
                if up.write_all(&sent).is_err() {
                    return;
                }
                let (mut up2, mut down2) = (up.try_clone().unwrap(), down.try_clone().unwrap());
                let to_server = thread::spawn(move || {
                    let _ = std::io::copy(&mut down2, &mut up2);
                    let _ = up2.shutdown(Shutdown::Write);
                });
                let _ = std::io::copy(&mut up, &mut down);
                let _ = down.shutdown(Shutdown::Both);
                let _ = to_server.join();
            });
        }
    });
    (addr, answered)
}

#[test]
fn a_gateway_answering_502_503_504_meanwhile_is_waited_out() {
    // What a client sees through nginx while the node behind it restarts,
    // or from a node whose store is unreachable: a status that says "not
    // now". The client waits it out within its deadline.
    let server = server(|_| {});
    let job = job(20, vec![Filter::Mean { k: 3 }]);
    let (addr, answered) = gateway(server.addr(), vec![503, 502, 504]);
    let (client, notices) = noted_client(&format!("http://{addr}"), options());
    let run = client.run_job(&job.envelope, &NoProgress, TIMEOUT).unwrap();
    assert_eq!(answered.load(Ordering::SeqCst), 3);
    assert_correct(&job, &run.result);
    assert_eq!(run.attempts, 1);
    let notices = notices.lock().unwrap();
    assert_eq!(
        retries_while(&notices, "waiting for job"),
        vec![None, None, None],
        "{notices:?}"
    );
}

#[test]
fn an_upload_cut_midway_is_retried_and_leaves_nothing_behind() {
    let server = server(|_| {});
    let job = job(80, vec![Filter::Mean { k: 3 }]);
    assert!(job.envelope.len() > 60_000, "{}", job.envelope.len());
    let (addr, cuts) = proxy(server.addr(), Cut::Upload { after: 30_000 }, 2);
    let (client, notices) = noted_client(&format!("http://{addr}"), options());
    let run = client.run_job(&job.envelope, &NoProgress, TIMEOUT).unwrap();
    assert_eq!(cuts.load(Ordering::SeqCst), 2);
    assert_correct(&job, &run.result);
    assert_eq!((run.attempts, run.retries), (1, 2));
    let notices = notices.lock().unwrap();
    assert_eq!(
        retries_while(&notices, "uploading the job"),
        vec![Some(3), Some(3)],
        "{notices:?}"
    );
    // The broken uploads made no job; the good one was deleted.
    assert_eq!(
        Client::new(&server.url())
            .unwrap()
            .health()
            .unwrap()
            .jobs_stored,
        0
    );
}

#[test]
fn an_answer_lost_after_the_upload_is_uploaded_again_and_the_orphan_expires() {
    let server = server(|c| c.retention = Duration::from_secs(3));
    let job = job(20, vec![Filter::Mean { k: 3 }]);
    let (addr, cuts) = proxy(server.addr(), Cut::Accepted, 1);
    let (client, notices) = noted_client(&format!("http://{addr}"), options());
    let run = client.run_job(&job.envelope, &NoProgress, TIMEOUT).unwrap();
    assert_eq!(cuts.load(Ordering::SeqCst), 1);
    assert_correct(&job, &run.result);
    assert_eq!((run.attempts, run.retries), (1, 1));
    assert_eq!(
        retries_while(&notices.lock().unwrap(), "uploading the job"),
        vec![Some(3)]
    );
    // The first upload's job ran with nobody to fetch it: it stays until
    // the retention time, then the sweeper deletes it.
    let direct = Client::new(&server.url()).unwrap();
    assert_eq!(direct.health().unwrap().jobs_stored, 1);
    let t = Instant::now();
    while direct.health().unwrap().jobs_stored > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the orphan never expired"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_download_cut_midway_is_retried_never_returned_in_part() {
    let server = server(|_| {});
    let job = job(80, vec![Filter::Sharpen]);
    let (addr, cuts) = proxy(server.addr(), Cut::Download { after: 20_000 }, 1);
    let (client, notices) = noted_client(&format!("http://{addr}"), options());
    let run = client.run_job(&job.envelope, &NoProgress, TIMEOUT).unwrap();
    assert_eq!(cuts.load(Ordering::SeqCst), 1);
    assert!(run.result.len() > 20_000, "{}", run.result.len());
    assert_correct(&job, &run.result);
    assert_eq!((run.attempts, run.retries), (1, 1));
    let notices = notices.lock().unwrap();
    assert_eq!(
        retries_while(&notices, "downloading the result"),
        vec![Some(3)],
        "{notices:?}"
    );
}

#[test]
fn downloads_cut_more_often_than_the_retries_give_up_with_the_count() {
    let server = server(|_| {});
    let job = job(80, vec![Filter::Sharpen]);
    let (addr, cuts) = proxy(server.addr(), Cut::Download { after: 20_000 }, 100);
    let (client, _) = noted_client(
        &format!("http://{addr}"),
        ClientOptions {
            transfer_retries: 2,
            ..options()
        },
    );
    let err = client
        .run_job(&job.envelope, &NoProgress, TIMEOUT)
        .unwrap_err();
    assert!(matches!(err, Error::Retries { tries: 3, .. }), "{err}");
    assert_eq!(cuts.load(Ordering::SeqCst), 3);
    let msg = err.to_string();
    assert!(
        msg.contains("downloading the result of job") && msg.contains(&addr.to_string()),
        "{msg}"
    );
}

#[test]
fn a_server_that_never_answers_or_is_not_there_times_out_clearly() {
    // Accepts, reads everything, answers nothing.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    thread::spawn(move || {
        for conn in silent.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let url = format!("http://{addr}");
    let opts = ClientOptions {
        io_timeout: Duration::from_secs(1),
        ..options()
    };
    let (client, _) = noted_client(&url, opts.clone());
    let job = job(6, vec![Filter::Mean { k: 3 }]);

    let t = Instant::now();
    let err = client.info().unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(err.to_string().contains("timeout"), "{err}");
    // Within a deadline: the shorter of it and the I/O timeout, in words.
    for (limit, after) in [
        (Duration::from_millis(600), 1),
        (Duration::from_secs(30), 1),
    ] {
        let t = Instant::now();
        let err = client.info_within(limit).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
        let msg = err.to_string();
        assert!(
            matches!(err, Error::Deadline { seconds, .. } if seconds == after)
                && msg.contains(&url)
                && msg.contains("asking for its filters and limits"),
            "{msg}"
        );
    }

    let deadline = Duration::from_secs(4);
    let t = Instant::now();
    let err = client
        .run_job(&job.envelope, &NoProgress, deadline)
        .unwrap_err();
    let took = t.elapsed();
    let msg = err.to_string();
    eprintln!("{msg} ({took:?})");
    assert!(
        matches!(err, Error::Deadline { .. } | Error::Retries { .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&url) && msg.contains("uploading the job"),
        "{msg}"
    );
    assert!(took < deadline + Duration::from_secs(3), "{took:?}");

    // Nothing listens on this port: refused until the deadline.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (refused, notices) = noted_client(&url, opts);
    let t = Instant::now();
    let err = refused
        .run_job(&job.envelope, &NoProgress, Duration::from_secs(2))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Deadline { seconds: 2, .. }), "{msg}");
    assert!(
        msg.contains(&url) && msg.contains("uploading the job") && msg.contains("refused"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // Refusals are waited out, not counted against the transfer retries.
    let n = notices.lock().unwrap();
    assert!(
        n.len() >= 3 && retries_while(&n, "uploading").iter().all(Option::is_none),
        "{n:?}"
    );
}

#[test]
fn a_restarted_server_reports_another_instance_everywhere() {
    let first = server(|_| {});
    let addr = first.addr();
    let c = Client::new(&first.url()).unwrap();
    let a = c.health().unwrap().instance;
    assert_eq!(a.len(), 16);
    assert_eq!(c.info().unwrap().instance, a);
    let job = job(6, vec![Filter::Mean { k: 3 }]);
    let st = c.submit_envelope(&job.envelope, &NoProgress).unwrap();
    assert_eq!(st.instance, a);
    first.kill().unwrap();
    let second = server(|c: &mut Config| c.listen = addr);
    // A new client: `c`'s pooled connection went down with the first
    // server (the client's retries are tested above, not here).
    let c = Client::new(&second.url()).unwrap();
    let b = c.health().unwrap().instance;
    assert_ne!(a, b);
    // The old job is unknown, and the 404 says which instance answered.
    let resp = ureq::get(format!("{}/v1/jobs/{}", second.url(), st.id))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let body: serde_json::Value =
        serde_json::from_str(&resp.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(body["instance"], serde_json::Value::String(b));
}
