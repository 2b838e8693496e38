//! Identity and memory in bytes against the real server: API tokens
//! (401 without one, 404 for another token's jobs), per-token quotas
//! (429 with `Retry-After` and the quota's name), and byte limits on
//! uploads in flight (503).

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::time::Duration;

use enc_image::{BorderMode, ColorLayout, NoProgress};
use he_filter::Filter;
use he_service::client::{self, Client};
use he_service::server::tokens::TokenFile;
use he_service::server::{QuotaOverrides, ServerHandle};
use he_service::wire::{Envelope, ErrorBody, JOB_CONTENT_TYPE, JobState};

use common::*;

/// A raw request: status, headers we look at, and the JSON error body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    www_authenticate: Option<String>,
    body: Option<ErrorBody>,
}

fn raw(
    server: &ServerHandle,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{path}", server.url());
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut resp = match (method, body) {
        ("POST", Some(b)) => {
            let mut r = agent.post(&url).header("content-type", JOB_CONTENT_TYPE);
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            r.send(b).unwrap()
        }
        ("DELETE", _) => {
            let mut r = agent.delete(&url);
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            r.call().unwrap()
        }
        _ => {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            r.call().unwrap()
        }
    };
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (retry_after, www_authenticate) = (header("retry-after"), header("www-authenticate"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        retry_after,
        www_authenticate,
        body: (status >= 400).then(|| {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{status} without a JSON error body: {text}"))
        }),
    }
}

/// A tiny job's envelope: a 4x4 image, a 3x3 mean, a 512-bit key.
fn tiny_envelope(seed: u64) -> Vec<u8> {
    let kp = key();
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let img = image(4, 4, ColorLayout::Luma8, seed);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes())
}

#[test]
fn jobs_need_a_token_and_belong_to_it() {
    let mut tokens = TokenFile::default();
    let alice = tokens.create("alice", 1).unwrap();
    let bob = tokens.create("bob", 2).unwrap();
    let server = server(|c| c.tokens = Some(tokens));
    let envelope = tiny_envelope(1);

    // No token: 401, the challenge, and a message that says what to do.
    let a = raw(&server, "POST", "/v1/jobs", None, Some(&envelope));
    assert_eq!(a.status, 401);
    assert_eq!(
        a.www_authenticate.as_deref(),
        Some("Bearer realm=\"he-service\"")
    );
    assert!(a.body.unwrap().error.contains("needs an API token"));
    // A wrong token: 401, invalid_token.
    let a = raw(
        &server,
        "POST",
        "/v1/jobs",
        Some("he_nope"),
        Some(&envelope),
    );
    assert_eq!(a.status, 401);
    assert!(a.www_authenticate.unwrap().contains("invalid_token"));
    // The client says so in words.
    let err = Client::new(&server.url())
        .unwrap()
        .with_token("he_wrong")
        .unwrap()
        .submit_envelope(&envelope, &NoProgress)
        .unwrap_err();
    assert!(matches!(err, client::Error::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("the server refused the token"),
        "{err}"
    );
    // Health and info stay open (probes, discovery).
    assert_eq!(raw(&server, "GET", "/v1/health", None, None).status, 200);

    // Alice's job is hers: Bob and the anonymous get nothing of it.
    let alice_client = Client::new(&server.url())
        .unwrap()
        .with_token(&alice)
        .unwrap();
    let job = alice_client
        .submit_envelope(&envelope, &NoProgress)
        .unwrap();
    let done = alice_client.wait(&job.id, &NoProgress, TIMEOUT).unwrap();
    assert_eq!(done.state, JobState::Done);
    let path = format!("/v1/jobs/{}", job.id);
    let result = format!("/v1/jobs/{}/result", job.id);
    for (method, p) in [("GET", &path), ("GET", &result), ("DELETE", &path)] {
        let a = raw(&server, method, p, Some(&bob), None);
        assert_eq!(a.status, 404, "{method} {p} by another token");
        assert_eq!(raw(&server, method, p, None, None).status, 401);
    }
    // Still Alice's after Bob's attempts.
    alice_client.result(&job.id, &NoProgress).unwrap();
    alice_client.delete(&job.id).unwrap();
}

#[test]
fn a_token_over_its_quota_gets_429_with_the_quota_and_retry_after_or_422_if_it_never_fits() {
    let mut tokens = TokenFile::default();
    let thrifty = tokens.create("thrifty", 1).unwrap();
    let small = tokens.create("small", 1).unwrap();
    let other = tokens.create("other", 1).unwrap();
    tokens.tokens[0].quota = QuotaOverrides {
        compute_per_hour: Some(0),
        ..QuotaOverrides::default()
    };
    let envelope = tiny_envelope(2);
    // Room for one upload, then for its result, not for a second upload
    // while the result is held.
    tokens.tokens[1].quota = QuotaOverrides {
        stored_bytes: Some(envelope.len() + 1),
        ..QuotaOverrides::default()
    };
    let server = server(|c| c.tokens = Some(tokens));

    // A job larger than the token's whole hourly compute can never run:
    // 422 with the estimate and the quota, not a 429 retried every hour.
    // (The 429 of an hour already spent is the unit test in quota.rs.)
    let a = raw(&server, "POST", "/v1/jobs", Some(&thrifty), Some(&envelope));
    assert_eq!(a.status, 422);
    let body = a.body.unwrap();
    assert_eq!(body.budget_units, Some(0));
    assert!(body.estimate_units.is_some_and(|e| e > 0));
    assert!(body.error.contains("compute per hour"), "{}", body.error);

    let c = Client::new(&server.url())
        .unwrap()
        .with_token(&small)
        .unwrap();
    let job = c.submit_envelope(&envelope, &NoProgress).unwrap();
    c.wait(&job.id, &NoProgress, TIMEOUT).unwrap();
    let a = raw(&server, "POST", "/v1/jobs", Some(&small), Some(&envelope));
    assert_eq!(a.status, 429);
    assert_eq!(a.body.unwrap().quota.as_deref(), Some("stored_bytes"));
    assert!(a.retry_after.is_some());
    // Deleting the result gives the bytes back.
    c.delete(&job.id).unwrap();
    let job = c.submit_envelope(&envelope, &NoProgress).unwrap();
    c.wait(&job.id, &NoProgress, TIMEOUT).unwrap();
    // Another token is not held back by theirs.
    let a = raw(&server, "POST", "/v1/jobs", Some(&other), Some(&envelope));
    assert_eq!(a.status, 202);
}

#[test]
fn many_tiny_jobs_of_one_token_cannot_fill_the_store_for_everyone() {
    let mut tokens = TokenFile::default();
    let flood = tokens.create("flood", 1).unwrap();
    let normal = tokens.create("normal", 1).unwrap();
    let server = server(|c| c.tokens = Some(tokens));
    let envelope = tiny_envelope(3);
    let c = Client::new(&server.url())
        .unwrap()
        .with_token(&flood)
        .unwrap();
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..1024 {
        match c.submit_envelope(&envelope, &NoProgress) {
            Ok(job) => {
                accepted += 1;
                // Tiny jobs finish at once; wait so that only the store
                // (not the jobs in flight) limits the flood.
                c.wait(&job.id, &NoProgress, TIMEOUT).unwrap();
            }
            Err(client::Error::Server { status, message }) => {
                refused = Some((status, message));
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (status, message) = refused.expect("1024 jobs of one token were all stored");
    assert_eq!(status, 429, "{message}");
    assert!(message.contains("jobs stored"), "{message}");
    assert!(accepted < 1024, "{accepted}");
    // Everyone else is still served.
    let n = Client::new(&server.url())
        .unwrap()
        .with_token(&normal)
        .unwrap();
    let job = n.submit_envelope(&envelope, &NoProgress).unwrap();
    assert_eq!(
        n.wait(&job.id, &NoProgress, TIMEOUT).unwrap().state,
        JobState::Done
    );
}

#[test]
fn uploads_in_flight_are_bounded_in_bytes_server_wide() {
    let envelope = tiny_envelope(4);
    let server = server(|c| c.max_inflight_bytes = envelope.len() + 10);
    // A declared length beyond what is left: 503 before the body is read.
    let big = vec![0u8; envelope.len() * 2];
    let a = raw(&server, "POST", "/v1/jobs", None, Some(&big));
    assert_eq!(a.status, 503);
    assert_eq!(a.retry_after.as_deref(), Some("5"));
    assert!(a.body.unwrap().error.contains("in flight"));
    // One that fits is served, and gives its bytes back when done.
    let c = Client::new(&server.url()).unwrap();
    let job = c.submit_envelope(&envelope, &NoProgress).unwrap();
    c.wait(&job.id, &NoProgress, Duration::from_secs(60))
        .unwrap();
    let h = c.health().unwrap();
    assert_eq!(h.inflight_bytes, 0);
    assert!(h.stored_bytes > 0);
    c.delete(&job.id).unwrap();
    assert_eq!(c.health().unwrap().stored_bytes, 0);
}

/// The status `token` gets for a job nobody has: 404 for a known token,
/// 401 for an unknown one.
fn unknown_job_status(server: &he_service::server::ServerHandle, token: &str) -> u16 {
    raw(
        server,
        "GET",
        "/v1/jobs/00000000000000000000000000000000",
        Some(token),
        None,
    )
    .status
}

/// A tokens file changed after it was read and before the server watches
/// it (on a busy machine, the watcher's thread may start late) is read
/// again: the watcher starts from the file as it was read, not as it is
/// when the thread first runs.
#[test]
fn a_tokens_file_changed_before_the_watcher_starts_is_read_again() {
    let dir = std::env::temp_dir().join(format!("he-tokens-early-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let mut tokens = TokenFile::default();
    let alice = tokens.create("alice", 1).unwrap();
    std::fs::write(&path, tokens.to_json()).unwrap();
    let loaded = TokenFile::load(&path).unwrap();
    // Changed between loading and serving.
    tokens.revoke("alice");
    let bob = tokens.create("bob", 2).unwrap();
    let tmp = dir.join("tokens.json.tmp");
    std::fs::write(&tmp, tokens.to_json()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let server = server(|c| c.tokens = Some(loaded));
    let status = |token: &str| unknown_job_status(&server, token);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while status(&bob) != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never read the tokens file changed before it watched it"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(&alice), 401, "a revoked token still works");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `he token revoke` and `he token create` take effect on a running
/// server: it reads its tokens file again when the file changes, and a
/// file that does not load leaves the tokens in force.
#[test]
fn a_changed_tokens_file_is_read_again_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("he-tokens-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let mut tokens = TokenFile::default();
    let alice = tokens.create("alice", 1).unwrap();
    std::fs::write(&path, tokens.to_json()).unwrap();
    let loaded = TokenFile::load(&path).unwrap();
    let server = server(|c| c.tokens = Some(loaded));
    let status = |token: &str| unknown_job_status(&server, token);
    // Known token, unknown job: 404; an unknown token: 401.
    assert_eq!(status(&alice), 404);
    let until = |want: u16, token: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while status(token) != want {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not pick up the changed tokens file"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Revoked and a new token created, the file replaced as `he token` does.
    tokens.revoke("alice");
    let bob = tokens.create("bob", 2).unwrap();
    let tmp = dir.join("tokens.json.tmp");
    std::fs::write(&tmp, tokens.to_json()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    until(404, &bob);
    assert_eq!(status(&alice), 401, "a revoked token still works");

    // A broken file keeps the tokens in force.
    std::fs::write(&path, "{ not json").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(status(&bob), 404, "a broken tokens file locked bob out");
    assert_eq!(status(&alice), 401);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
