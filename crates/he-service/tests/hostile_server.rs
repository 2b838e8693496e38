//! A server that lies about its result: the client bounds every download
//! by what the job can return, and refuses a larger answer without
//! reading it.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use enc_image::{BorderMode, ColorLayout, NoProgress};
use he_filter::Filter;
use he_service::client::{Client, ClientOptions};
use he_service::wire::{Envelope, JobState, JobStatus};

use common::*;

fn status(state: JobState) -> JobStatus {
    JobStatus {
        id: format!("{:032x}", 7),
        instance: "cccccccccccccccc".into(),
        state,
        filters: vec!["mean 3x3".into()],
        width: 4,
        height: 4,
        key_bits: 512,
        ciphertexts: 1,
        progress_done: 1,
        progress_total: 1,
        validate_seconds: 0.0,
        queued_seconds: Some(0.0),
        filter_seconds: Some(0.0),
        result_bytes: Some(1 << 40),
        expires_in_seconds: Some(600),
        error: None,
        tiles: None,
    }
}

/// A server that accepts the job, says it is done, and answers the result
/// with a body of `announced` bytes (streaming zeros until the client
/// hangs up; `None`: no length announced, chunked forever). Counts the
/// result bytes the client took before hanging up.
fn liar(announced: Option<u64>) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                let Some((request, _)) = read_request(&mut conn) else {
                    return;
                };
                if request.contains("/result ") {
                    let head = match announced {
                        Some(n) => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
                             content-length: {n}\r\nconnection: close\r\n\r\n"
                        ),
                        None => "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
                                 transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                            .to_string(),
                    };
                    if conn.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    let chunk = vec![0u8; 64 * 1024];
                    let framed = [
                        format!("{:x}\r\n", chunk.len()).into_bytes(),
                        chunk.clone(),
                        b"\r\n".to_vec(),
                    ]
                    .concat();
                    // At most 1 GiB, then stop: the test is bounded even if the client reads on.
                    for _ in 0..16 * 1024 {
                        let w = if announced.is_some() { &chunk } else { &framed };
                        if conn.write_all(w).is_err() {
                            return;
                        }
                        counter.fetch_add(w.len() as u64, Ordering::SeqCst);
                    }
                    return;
                }
                let (code, json) = if request.starts_with("post /v1/jobs ") {
                    (
                        "202 Accepted",
                        serde_json::to_string(&status(JobState::Queued)).unwrap(),
                    )
                } else {
                    (
                        "200 OK",
                        serde_json::to_string(&status(JobState::Done)).unwrap(),
                    )
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{json}",
                    json.len()
                );
            });
        }
    });
    (url, sent)
}

fn envelope() -> Vec<u8> {
    let kp = key();
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let img = image(4, 4, ColorLayout::Luma8, 7);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes())
}

#[test]
fn a_result_announced_larger_than_the_job_can_return_is_refused_unread() {
    let (url, _) = liar(Some(1 << 40));
    let client = Client::with_options(
        &url,
        ClientOptions {
            attempts: 1,
            transfer_retries: 0,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let t = Instant::now();
    let err = client
        .run_job(&envelope(), &NoProgress, Duration::from_secs(60))
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused without reading"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn a_result_streamed_past_the_bound_is_cut() {
    let (url, sent) = liar(None);
    let client = Client::with_options(
        &url,
        ClientOptions {
            attempts: 1,
            transfer_retries: 0,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let t = Instant::now();
    let err = client.run_job(&envelope(), &NoProgress, Duration::from_secs(60));
    assert!(err.is_err(), "an endless result was accepted");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // The bound is the envelope plus 64 KiB; socket buffers hold a few MiB more.
    std::thread::sleep(Duration::from_millis(200));
    let taken = sent.load(Ordering::SeqCst);
    assert!(
        taken < 32 << 20,
        "the client read {taken} bytes of an endless result"
    );
}
