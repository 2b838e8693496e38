//! Operations on a real server: `/metrics` counts a job, its bytes and
//! the refusals, and answers only loopback clients that come directly or
//! the holder of the metrics token.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::time::{Duration, Instant};

use enc_image::{BorderMode, ColorLayout, NoProgress};
use he_filter::Filter;
use he_service::client::Client;
use he_service::server::MetricsToken;
use he_service::wire::JobState;

use common::*;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// `GET /metrics` with `headers`: the status and the text.
fn scrape(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = agent().get(format!("{url}/metrics"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    if status == 200 {
        let ct = resp.headers()["content-type"].to_str().unwrap();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    }
    (status, resp.body_mut().read_to_string().unwrap())
}

/// The value of the sample `series` (its name and labels as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

#[test]
fn metrics_count_a_job_its_bytes_and_the_refusals() {
    let server = server(|_| {});
    let url = server.url();
    let (status, before) = scrape(&url, &[]);
    assert_eq!(status, 200, "{before}");
    assert_eq!(value(&before, "he_jobs_stored"), 0.0);
    assert_eq!(value(&before, "he_job_duration_seconds_count"), 0.0);
    assert_eq!(value(&before, "he_draining"), 0.0);
    assert!(value(&before, "he_connections_open") >= 1.0, "this one");

    let client = Client::new(&url).unwrap();
    let kp = key();
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let img = image(6, 5, ColorLayout::Luma8, 7);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    let job = client
        .submit(kp.public_key(), &spec, &enc, &NoProgress)
        .unwrap();
    let done = client.wait(&job.id, &NoProgress, TIMEOUT).unwrap();
    assert_eq!(done.state, JobState::Done);
    // The dispatcher records the duration just after the job is stored.
    let t = Instant::now();
    let text = loop {
        let (_, text) = scrape(&url, &[]);
        if value(&text, "he_job_duration_seconds_count") == 1.0 {
            break text;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(value(&text, "he_jobs{state=\"finished\"}"), 1.0, "{text}");
    assert_eq!(value(&text, "he_jobs{state=\"running\"}"), 0.0);
    assert_eq!(value(&text, "he_jobs{state=\"queued\"}"), 0.0);
    assert_eq!(value(&text, "he_jobs_in_flight"), 0.0);
    assert_eq!(value(&text, "he_jobs_stored"), 1.0);
    assert_eq!(
        value(&text, "he_stored_bytes"),
        done.result_bytes.unwrap() as f64,
        "the result is what is stored"
    );
    assert_eq!(value(&text, "he_inflight_bytes"), 0.0);
    assert_eq!(
        value(&text, "he_job_duration_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert!(value(&text, "he_job_duration_seconds_sum") > 0.0);

    // A refusal is counted by its status and reason.
    let missing = format!("{url}/v1/jobs/{}", "0".repeat(32));
    assert_eq!(agent().get(&missing).call().unwrap().status().as_u16(), 404);
    let (_, text) = scrape(&url, &[]);
    assert_eq!(
        value(
            &text,
            "he_refusals_total{code=\"404\",reason=\"not_found\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&text, "he_refusals_total{code=\"503\",reason=\"busy\"}"),
        0.0
    );

    // Collected and deleted: nothing is held any more.
    client.result(&job.id, &NoProgress).unwrap();
    client.delete(&job.id).unwrap();
    let (_, text) = scrape(&url, &[]);
    assert_eq!(value(&text, "he_jobs_stored"), 0.0);
    assert_eq!(value(&text, "he_jobs{state=\"finished\"}"), 0.0);
    assert_eq!(value(&text, "he_stored_bytes"), 0.0);
    assert!(value(&text, "he_requests_total") >= 8.0, "{text}");
    assert!(value(&text, "he_connections_total") >= 3.0, "{text}");
}

#[test]
fn metrics_answer_loopback_clients_that_come_directly_or_the_token() {
    // Behind a trusted proxy, the client is the forwarded address.
    let proxied = server(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]);
    let url = proxied.url();
    assert_eq!(scrape(&url, &[]).0, 200);
    let (status, body) = scrape(&url, &[("x-forwarded-for", "203.0.113.7")]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("loopback"), "{body}");
    // Forwarded at all, even for a loopback client: a proxy on this
    // machine would otherwise open /metrics to everyone behind it.
    assert_eq!(scrape(&url, &[("x-forwarded-for", "127.0.0.1")]).0, 403);
    let direct = server(|_| {});
    assert_eq!(
        scrape(&direct.url(), &[("x-real-ip", "198.51.100.1")]).0,
        403
    );
    assert_eq!(
        scrape(&direct.url(), &[("forwarded", "for=1.2.3.4")]).0,
        403
    );

    // With a token, the token is what counts, from anywhere.
    let token = "metrics-token-for-the-test-0123";
    let guarded = server(|c| c.metrics_token = Some(MetricsToken::new(token).unwrap()));
    let url = guarded.url();
    let (status, body) = scrape(&url, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("metrics token"), "{body}");
    assert!(!body.contains(token));
    let wrong = "Bearer metrics-token-for-the-test-0124";
    assert_eq!(scrape(&url, &[("authorization", wrong)]).0, 401);
    let right = format!("Bearer {token}");
    let (status, text) = scrape(
        &url,
        &[
            ("authorization", &right),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        value(
            &text,
            "he_refusals_total{code=\"401\",reason=\"unauthorized\"}"
        ),
        2.0
    );
    assert!(!text.contains(token));
}

#[test]
fn a_drained_server_stops_once_its_jobs_are_collected_or_at_the_timeout() {
    // Nothing held: the drain ends at once, far before its timeout.
    let idle = server(|c| c.drain_timeout = Duration::from_secs(60));
    let addr = idle.addr();
    let t = Instant::now();
    idle.drain().unwrap();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening"
    );

    // A finished job nobody collects: the drain lasts its timeout.
    let held = server(|c| c.drain_timeout = Duration::from_millis(600));
    let client = Client::new(&held.url()).unwrap();
    let kp = key();
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let enc = encrypt(
        &image(4, 4, ColorLayout::Luma8, 1),
        &kp,
        &spec,
        BorderMode::Replicate,
    );
    let job = client
        .submit(kp.public_key(), &spec, &enc, &NoProgress)
        .unwrap();
    client.wait(&job.id, &NoProgress, TIMEOUT).unwrap();
    let t = Instant::now();
    held.drain().unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(20),
        "{took:?}"
    );
}
