//! A `404` for a job is a restart only when another server instance says
//! it: the client resubmits a job lost in a restart, and reports a job
//! that expired or was deleted on the same instance as an error. Without
//! an instance in the `404`, the client asks `/v1/health` which instance
//! answers now.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enc_image::{BorderMode, ColorLayout, NoProgress};
use he_filter::Filter;
use he_service::client::{Client, ClientOptions, Error, Notice};
use he_service::wire::{Envelope, Health, JobState, JobStatus};

use common::*;

/// An envelope of a real job (the fake server below never reads it).
fn envelope() -> Vec<u8> {
    let kp = key();
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let img = image(4, 4, ColorLayout::Luma8, 7);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes())
}

fn quick() -> ClientOptions {
    ClientOptions {
        backoff: Duration::from_millis(20),
        io_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

/// The real server forgets a finished job at once (retention 1 ns): the
/// client's next question gets a `404` from the instance that accepted
/// the job, which is an error, not a restart, and nothing is resubmitted.
#[test]
fn a_404_from_the_same_instance_is_an_error_not_a_restart() {
    let server = server(|c| c.retention = Duration::from_nanos(1));
    let notices = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&notices);
    let client = Client::with_options(&server.url(), quick())
        .unwrap()
        .on_notice(move |n| seen.lock().unwrap().push(n.clone()));
    let err = client
        .run_job(&envelope(), &NoProgress, TIMEOUT)
        .unwrap_err();
    let instance = server.service().instance();
    assert!(
        matches!(&err, Error::Server { status: 404, message }
            if message.contains(&format!("same server instance {instance}"))
                && message.contains("expired or was deleted")),
        "{err}"
    );
    let notices = notices.lock().unwrap();
    assert!(
        !notices.iter().any(|n| matches!(n, Notice::JobLost { .. })),
        "{notices:?}"
    );
}

const ACCEPTED_BY: &str = "aaaaaaaaaaaaaaaa";

/// A server that accepts every job as instance [`ACCEPTED_BY`], answers
/// every question about a job with a `404` that names no instance, and
/// reports `health_instance` in `/v1/health`. Counts the jobs submitted.
fn forgetful_server(health_instance: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let submitted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&submitted);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some((request, _)) = read_request(&mut conn) else {
                continue;
            };
            let (status, json) = if request.starts_with("post /v1/jobs ") {
                count.fetch_add(1, Ordering::SeqCst);
                let st = JobStatus {
                    id: format!("{:032x}", count.load(Ordering::SeqCst)),
                    instance: ACCEPTED_BY.into(),
                    state: JobState::Queued,
                    filters: vec!["mean 3x3".into()],
                    width: 4,
                    height: 4,
                    key_bits: 512,
                    ciphertexts: 1,
                    progress_done: 0,
                    progress_total: 0,
                    validate_seconds: 0.0,
                    queued_seconds: None,
                    filter_seconds: None,
                    result_bytes: None,
                    expires_in_seconds: None,
                    error: None,
                    tiles: None,
                };
                ("202 Accepted", serde_json::to_string(&st).unwrap())
            } else if request.starts_with("get /v1/health ") {
                let h = Health {
                    status: "ok".into(),
                    instance: health_instance.into(),
                    node: health_instance.into(),
                    jobs_in_flight: 0,
                    queue_capacity: 1,
                    jobs_stored: 0,
                    stored_bytes: 0,
                    inflight_bytes: 0,
                    store: "memory".into(),
                    role: "all".into(),
                    store_reachable: true,
                };
                ("200 OK", serde_json::to_string(&h).unwrap())
            } else {
                ("404 Not Found", r#"{"error":"no such job"}"#.to_string())
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{json}",
                json.len()
            );
        }
    });
    (url, submitted)
}

#[test]
fn without_an_instance_in_the_404_the_client_asks_health_and_resubmits_after_a_restart() {
    let (url, submitted) = forgetful_server("bbbbbbbbbbbbbbbb");
    let options = ClientOptions {
        attempts: 2,
        ..quick()
    };
    let notices = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&notices);
    let client = Client::with_options(&url, options)
        .unwrap()
        .on_notice(move |n| seen.lock().unwrap().push(n.clone()));
    let err = client
        .run_job(&envelope(), &NoProgress, TIMEOUT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::JobLost { before, after, attempts: 2, .. }
            if before == ACCEPTED_BY && after == "bbbbbbbbbbbbbbbb"),
        "{err}"
    );
    assert_eq!(submitted.load(Ordering::SeqCst), 2);
    let notices = notices.lock().unwrap();
    assert!(
        matches!(
            &notices[..],
            [Notice::JobLost {
                attempt: 2,
                attempts: 2,
                ..
            }]
        ),
        "{notices:?}"
    );
}

#[test]
fn without_an_instance_in_the_404_the_same_instance_in_health_is_an_error() {
    let (url, submitted) = forgetful_server(ACCEPTED_BY);
    let client = Client::with_options(&url, quick()).unwrap();
    let err = client
        .run_job(&envelope(), &NoProgress, TIMEOUT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Server { status: 404, message }
            if message.starts_with("no such job") && message.contains("expired or was deleted")),
        "{err}"
    );
    assert_eq!(submitted.load(Ordering::SeqCst), 1);
}
