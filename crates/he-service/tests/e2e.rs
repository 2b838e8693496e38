//! End to end on loopback: the real server on a free port, the real
//! client, several filters and image kinds; every decrypted result must
//! equal the plaintext filter pixel for pixel.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use enc_image::{BorderMode, ColorLayout, NoProgress};
use he_filter::Filter;
use he_filter::reference;
use he_service::client::{self, Client, FilterRequest};
use he_service::wire::JobState;

use common::*;

#[test]
fn filters_chains_and_image_kinds_match_the_plaintext_filter() {
    let server = server(|_| {});
    let client = Client::new(&server.url()).unwrap();
    assert_eq!(client.health().unwrap().status, "ok");
    let kp = key();
    let emboss_like = Filter::Kernel {
        size: 3,
        weights: vec![-2, -1, 0, -1, 1, 1, 0, 1, 3],
        divisor: 2,
    };
    let gauss = Filter::Gaussian {
        k: 0,
        sigma: Some(1.0),
    };
    let cases: Vec<(Vec<Filter>, usize, usize, ColorLayout, BorderMode)> = vec![
        (
            vec![Filter::Mean { k: 3 }],
            13,
            7,
            ColorLayout::Rgb8,
            BorderMode::Replicate,
        ),
        (
            vec![Filter::Mean { k: 5 }],
            9,
            11,
            ColorLayout::Luma8,
            BorderMode::Reflect101,
        ),
        (
            vec![Filter::Mean { k: 1 }],
            1,
            9,
            ColorLayout::LumaA8,
            BorderMode::Replicate,
        ),
        (
            vec![Filter::Sharpen],
            17,
            5,
            ColorLayout::Rgba8,
            BorderMode::Replicate,
        ),
        (
            vec![Filter::SobelX],
            9,
            1,
            ColorLayout::Luma8,
            BorderMode::Constant(7),
        ),
        (
            vec![gauss],
            20,
            12,
            ColorLayout::Rgb8,
            BorderMode::Replicate,
        ),
        (
            vec![emboss_like],
            6,
            6,
            ColorLayout::Luma8,
            BorderMode::Reflect101,
        ),
        (
            vec![Filter::Grey, Filter::Mean { k: 3 }, Filter::Invert],
            11,
            8,
            ColorLayout::Rgba8,
            BorderMode::Replicate,
        ),
        (
            vec![Filter::Gaussian { k: 3, sigma: None }, Filter::Laplacian],
            10,
            10,
            ColorLayout::Rgb8,
            BorderMode::Replicate,
        ),
    ];
    for (i, (chain, w, h, color, border)) in cases.into_iter().enumerate() {
        let img = image(w, h, color, i as u64);
        let spec = spec(chain.clone());
        let enc = encrypt(&img, &kp, &spec, border);
        let request = FilterRequest {
            timeout: TIMEOUT,
            ..FilterRequest::new(kp.public_key(), &spec, &enc)
        };
        let (out, status) = client.filter(&request).unwrap();
        assert_eq!(status.state, JobState::Done);
        let labels: Vec<String> = chain.iter().map(Filter::label).collect();
        assert_eq!(status.filters, labels);
        // Exact values and scale, then pixels.
        let got = out.decrypt(kp.private_key(), &NoProgress).unwrap();
        let want = reference::apply_chain(&img, &chain, border).unwrap();
        assert_eq!(got, want, "{labels:?} on {w}x{h} {color:?}");
        assert_eq!(got.to_pixels(), want.to_pixels());
    }
    // Every result was deleted after download.
    assert_eq!(client.health().unwrap().jobs_stored, 0);
}

#[test]
fn jobs_can_be_polled_and_results_fetched_twice_until_deleted() {
    let server = server(|_| {});
    let client = Client::new(&server.url()).unwrap();
    let kp = key();
    let img = image(12, 12, ColorLayout::Rgb8, 42);
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    let job = client
        .submit(kp.public_key(), &spec, &enc, &NoProgress)
        .unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!((job.width, job.height, job.key_bits), (12, 12, 512));
    let done = client.wait(&job.id, &NoProgress, TIMEOUT).unwrap();
    assert_eq!(done.state, JobState::Done);
    assert!(done.progress_total > 0 && done.progress_done == done.progress_total);
    assert!(done.expires_in_seconds.unwrap() <= 600);
    let a = client.result(&job.id, &NoProgress).unwrap();
    let b = client.result(&job.id, &NoProgress).unwrap();
    assert_eq!(a, b);
    assert_eq!(done.result_bytes, Some(a.len() as u64));
    client.delete(&job.id).unwrap();
    let gone = client.result(&job.id, &NoProgress).unwrap_err();
    assert!(
        matches!(gone, client::Error::Server { status: 404, .. }),
        "{gone}"
    );
}

#[test]
fn results_expire_after_the_retention_time() {
    let server = server(|c| c.retention = std::time::Duration::from_millis(300));
    let client = Client::new(&server.url()).unwrap();
    let info = client.info().unwrap();
    assert_eq!(info.retention_seconds, 0);
    assert!(info.tiled_jobs, "the in-memory store takes tiled jobs");
    let kp = key();
    let img = image(5, 5, ColorLayout::Luma8, 1);
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    let job = client
        .submit(kp.public_key(), &spec, &enc, &NoProgress)
        .unwrap();
    client.wait(&job.id, &NoProgress, TIMEOUT).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let e = client
        .status(&job.id, std::time::Duration::ZERO)
        .unwrap_err();
    assert!(
        matches!(e, client::Error::Server { status: 404, .. }),
        "{e}"
    );
    // The sweeper, every 100 ms, removes the expired job from the store.
    let t = std::time::Instant::now();
    while client.health().unwrap().jobs_stored > 0 {
        assert!(t.elapsed().as_secs() < 10, "the expired job stays stored");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
