//! Cost against the real server: a job over the per-job budget gets 422
//! with its estimate before any work; a running job stops within about a
//! second of `DELETE`; and tokens are served round-robin, so that one
//! token's heavy jobs do not hold back another's small one.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::time::{Duration, Instant};

use enc_image::{BorderMode, ColorLayout, NoProgress};
use he_filter::Filter;
use he_service::client::{self, Client};
use he_service::server::tokens::TokenFile;
use he_service::wire::{Envelope, JobState};

use common::*;

/// A 15x15 kernel of 0/1 weights (xorshift, fixed seed): not separable,
/// so each output ciphertext costs 15 long exponentiations.
fn heavy_filter() -> Filter {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let weights = (0..15 * 15)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as i64 & 1
        })
        .collect();
    Filter::Kernel {
        size: 15,
        weights,
        divisor: 1,
    }
}

/// A job's envelope for `filter` on a `side x side` grey image, 512-bit key.
fn envelope(filter: Filter, side: usize, seed: u64) -> Vec<u8> {
    let kp = key();
    let spec = spec(vec![filter]);
    let img = image(side, side, ColorLayout::Luma8, seed);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes())
}

#[test]
fn a_job_over_the_budget_gets_422_with_its_estimate() {
    let server = server(|c| c.max_job_cost = 1);
    let c = Client::new(&server.url()).unwrap();
    // A small job is within a budget of one unit...
    let small = envelope(Filter::Mean { k: 3 }, 16, 1);
    let job = c.submit_envelope(&small, &NoProgress).unwrap();
    c.wait(&job.id, &NoProgress, TIMEOUT).unwrap();
    // ...a large kernel on a larger image is not, and nothing runs.
    let big = envelope(heavy_filter(), 256, 2);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(format!("{}/v1/jobs", server.url()))
        .header("content-type", he_service::wire::JOB_CONTENT_TYPE)
        .send(&big[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body: he_service::wire::ErrorBody =
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let estimate = body.estimate_units.unwrap();
    assert!(estimate > 1, "{estimate}");
    assert_eq!(body.budget_units, Some(1));
    assert!(body.error.contains("estimated at"), "{}", body.error);
    assert_eq!(c.health().unwrap().jobs_in_flight, 0);
}

#[test]
fn deleting_a_running_job_stops_it_within_a_second() {
    let server = server(|_| {});
    let c = Client::new(&server.url()).unwrap();
    let job = c
        .submit_envelope(&envelope(heavy_filter(), 384, 3), &NoProgress)
        .unwrap();
    // Wait until it runs and has done some work.
    let t = Instant::now();
    loop {
        let st = c.status(&job.id, Duration::ZERO).unwrap();
        assert!(!st.state.is_finished(), "the heavy job finished too soon");
        if st.state == JobState::Running && st.progress_done > 0 {
            break;
        }
        assert!(t.elapsed() < TIMEOUT, "the job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = Instant::now();
    c.delete(&job.id).unwrap();
    // Gone for the client at once; its slot free within about a second.
    let err = c.status(&job.id, Duration::ZERO).unwrap_err();
    assert!(
        matches!(err, client::Error::Server { status: 404, .. }),
        "{err}"
    );
    while c.health().unwrap().jobs_in_flight > 0 {
        assert!(
            asked.elapsed() < Duration::from_millis(1500),
            "the job still runs {:?} after DELETE",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("stopped {:?} after DELETE", asked.elapsed());
    assert_eq!(c.health().unwrap().inflight_bytes, 0);
}

#[test]
fn a_heavy_token_does_not_hold_back_another_tokens_small_job() {
    let mut tokens = TokenFile::default();
    let heavy = tokens.create("heavy", 1).unwrap();
    let light = tokens.create("light", 1).unwrap();
    let server = server(|c| c.tokens = Some(tokens));
    let a = Client::new(&server.url())
        .unwrap()
        .with_token(&heavy)
        .unwrap();
    let b = Client::new(&server.url())
        .unwrap()
        .with_token(&light)
        .unwrap();
    let big = envelope(heavy_filter(), 192, 4);
    // Token A queues three heavy jobs, then token B one small job.
    let heavy_jobs: Vec<_> = (0..3)
        .map(|_| a.submit_envelope(&big, &NoProgress).unwrap())
        .collect();
    let small = b
        .submit_envelope(&envelope(Filter::Mean { k: 3 }, 16, 5), &NoProgress)
        .unwrap();
    let b_done = b.wait(&small.id, &NoProgress, TIMEOUT).unwrap();
    assert_eq!(b_done.state, JobState::Done);
    // B waited for at most the heavy job already running: A's second is
    // not done (nor, being served after B, did it start before B ended).
    let second = a.status(&heavy_jobs[1].id, Duration::ZERO).unwrap();
    assert!(
        !second.state.is_finished(),
        "token B's small job waited behind token A's second heavy job"
    );
    for j in &heavy_jobs {
        a.delete(&j.id).unwrap();
    }
}
