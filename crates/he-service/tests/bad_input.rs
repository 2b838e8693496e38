//! Bad input against the real server: every request gets its 4xx with a
//! JSON error that says what is wrong, and the server keeps serving.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use enc_image::{BorderMode, ColorLayout, EncryptedImage, NoProgress};
use he_filter::Filter;
use he_service::client::{self, Client, FilterRequest};
use he_service::server::ServerHandle;
use he_service::wire::{
    ENVELOPE_FORMAT, Envelope, ErrorBody, IMAGE_CONTENT_TYPE, JOB_CONTENT_TYPE, JobSpec,
};
use paillier::Keypair;

use common::*;

/// Posts `body` with `content_type`; returns the status and the error message.
fn post(server: &ServerHandle, content_type: Option<&str>, body: &[u8]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.post(format!("{}/v1/jobs", server.url()));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    if status >= 400 {
        let e: ErrorBody = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{status} without a JSON error body: {text}"));
        (status, e.error)
    } else {
        (status, text)
    }
}

/// Replaces the trailing SHA-256 digest of an encoded image, so that a
/// deliberately wrong image reaches the checks behind the digest.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    use sha2::Digest;
    let n = bytes.len() - 32;
    // The framing's body length (after magic and version) follows the change.
    let body = (n - enc_image::FORMAT.header_len()) as u64;
    bytes[10..18].copy_from_slice(&body.to_le_bytes());
    let d: [u8; 32] = sha2::Sha256::digest(&bytes[..n]).into();
    bytes[n..].copy_from_slice(&d);
    bytes
}

fn job(server: &ServerHandle, body: &[u8]) -> (u16, String) {
    post(server, Some(JOB_CONTENT_TYPE), body)
}

/// Sends raw bytes over TCP and returns the status line and body.
fn raw(server: &ServerHandle, request: &[u8], close_write: bool) -> String {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    if close_write {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

struct Fixture {
    kp: Keypair,
    spec: JobSpec,
    enc: EncryptedImage,
}

impl Fixture {
    fn new() -> Self {
        let kp = key();
        let spec = spec(vec![Filter::Mean { k: 3 }]);
        let enc = encrypt(
            &image(8, 8, ColorLayout::Rgb8, 3),
            &kp,
            &spec,
            BorderMode::Replicate,
        );
        Fixture { kp, spec, enc }
    }
    fn envelope_with(&self, spec: &JobSpec, image: &[u8]) -> Vec<u8> {
        Envelope::encode(spec, &self.kp.public_key().to_bytes(), image)
    }
    fn envelope(&self) -> Vec<u8> {
        self.envelope_with(&self.spec, &self.enc.to_bytes())
    }
}

fn assert_status(got: (u16, String), status: u16, words: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert!(
        got.1.to_lowercase().contains(&words.to_lowercase()),
        "{status}: {:?} does not say {words:?}",
        got.1
    );
}

fn still_serving(server: &ServerHandle, f: &Fixture) {
    let client = Client::new(&server.url()).unwrap();
    assert_eq!(client.health().unwrap().status, "ok");
    let request = FilterRequest {
        timeout: TIMEOUT,
        ..FilterRequest::new(f.kp.public_key(), &f.spec, &f.enc)
    };
    let (out, _) = client.filter(&request).unwrap();
    assert_eq!(out.meta().history(), ["mean 3x3"]);
}

#[test]
fn malformed_envelopes_and_images_get_400() {
    let server = server(|_| {});
    let f = Fixture::new();
    let good = f.envelope();
    assert_eq!(job(&server, &good).0, 202);

    // An empty body is no envelope at all.
    let (status, msg) = job(&server, &[]);
    assert_eq!(status, 400, "empty: {msg}");
    // Truncated bodies, at several places.
    for n in [5, 12, 40, good.len() / 2, good.len() - 1] {
        let (status, msg) = job(&server, &good[..n]);
        assert_eq!(status, 400, "{n} bytes: {msg}");
        assert!(msg.contains("truncated"), "{n} bytes: {msg}");
    }
    // Wrong magic and version of the envelope.
    let mut bad = good.clone();
    bad[..5].copy_from_slice(b"HTTP/");
    assert_status(job(&server, &bad), 400, "bad magic");
    let mut bad = good.clone();
    bad[8] = 9;
    assert_status(job(&server, &bad), 400, "envelope format version 9");

    // Wrong magic and version of the encrypted image inside.
    let img = f.enc.to_bytes();
    let mut bad = img.clone();
    bad[0] = b'X';
    assert_status(
        job(&server, &f.envelope_with(&f.spec, &bad)),
        400,
        "bad magic",
    );
    let mut bad = img.clone();
    bad[8] = 7;
    assert_status(
        job(&server, &f.envelope_with(&f.spec, &bad)),
        400,
        "format version 7",
    );

    // Bytes changed in transit: the image's digest says so.
    let mut bad = img.clone();
    bad[28] ^= 1;
    assert_status(
        job(&server, &f.envelope_with(&f.spec, &bad)),
        400,
        "digest mismatch",
    );
    // Mismatched dimensions: the header of a 24x40 image on the payload of
    // an 8x8 one, sealed with a correct digest.
    let taller = encrypt(
        &image(24, 40, ColorLayout::Rgb8, 4),
        &f.kp,
        &f.spec,
        BorderMode::Replicate,
    )
    .to_bytes();
    let hlen = |b: &[u8]| 22 + u32::from_le_bytes([b[18], b[19], b[20], b[21]]) as usize;
    let mut spliced = taller[..hlen(&taller)].to_vec();
    spliced.extend_from_slice(EncryptedImage::payload_of(&img).unwrap());
    spliced.extend_from_slice(&[0; 32]);
    assert_ne!(spliced.len(), taller.len());
    assert_status(
        job(&server, &f.envelope_with(&f.spec, &reseal(spliced))),
        400,
        "payload is",
    );
    // A ciphertext out of range: all ones is at least n^2.
    let mut bad = img.clone();
    let width = enc_image::ciphertext_width(512);
    let end = bad.len() - 32;
    bad[end - width..end].fill(0xff);
    assert_status(
        job(&server, &f.envelope_with(&f.spec, &reseal(bad))),
        400,
        "out of range",
    );
    // An image under another key.
    let other = key();
    let bad = Envelope::encode(&f.spec, &other.public_key().to_bytes(), &img);
    assert_status(job(&server, &bad), 400, "another public key");
    // A public key that is not one.
    let bad = Envelope::encode(&f.spec, b"PAIL\x01\x01\x00garbage", &img);
    assert_status(job(&server, &bad), 400, "public key");
    // A spec that is not JSON, names an unknown filter, or no filter.
    let mut bad = good.clone();
    bad[22] = b'!';
    assert_status(job(&server, &bad), 400, "envelope: digest mismatch");
    assert_status(job(&server, &reseal_envelope(&bad)), 400, "filter spec");
    let json = br#"{"filters":[{"filter":"unsharpen","k":3}]}"#;
    let key_bytes = f.kp.public_key().to_bytes();
    let bad = raw_envelope(json, &key_bytes, &img);
    assert_status(job(&server, &bad), 400, "unknown variant");
    assert_status(
        job(&server, &f.envelope_with(&spec(vec![]), &img)),
        400,
        "no filter",
    );

    still_serving(&server, &f);
}

#[test]
fn filters_that_do_not_fit_the_image_get_422() {
    let server = server(|_| {});
    let f = Fixture::new();
    let img = f.enc.to_bytes();
    // The image was encrypted with halo 1 (for 3x3): 5x5 is beyond it.
    let (status, msg) = job(
        &server,
        &f.envelope_with(&spec(vec![Filter::Mean { k: 5 }]), &img),
    );
    assert_eq!(status, 422, "{msg}");
    assert!(msg.contains("halo of 2") && msg.contains("halo 1"), "{msg}");
    // Two 3x3 means need a halo of 2 too.
    let twice = spec(vec![Filter::Mean { k: 3 }, Filter::Mean { k: 3 }]);
    assert_status(job(&server, &f.envelope_with(&twice, &img)), 422, "halo");
    // Weights whose results do not fit the slots.
    let heavy = Filter::Kernel {
        size: 3,
        weights: vec![1 << 20; 9],
        divisor: 1,
    };
    assert_status(
        job(&server, &f.envelope_with(&spec(vec![heavy]), &img)),
        422,
        "do not fit",
    );
    // Kernels that are not kernels.
    let even = Filter::Kernel {
        size: 2,
        weights: vec![1; 4],
        divisor: 1,
    };
    assert_status(
        job(&server, &f.envelope_with(&spec(vec![even]), &img)),
        422,
        "odd",
    );
    let zero = Filter::Kernel {
        size: 1,
        weights: vec![1],
        divisor: 0,
    };
    assert_status(
        job(&server, &f.envelope_with(&spec(vec![zero]), &img)),
        422,
        "divisor",
    );
    // Too long a chain.
    let long = spec(vec![Filter::Mean { k: 1 }; 9]);
    assert_status(
        job(&server, &f.envelope_with(&long, &img)),
        422,
        "at most 8",
    );

    still_serving(&server, &f);
}

#[test]
fn oversized_bodies_get_413_and_wrong_content_types_415() {
    let server = server(|c| {
        c.max_body_bytes = 8 * 1024;
        c.max_side = 64;
    });
    let f = Fixture::new();
    let good = f.envelope();
    assert!(good.len() < 8 * 1024, "{}", good.len());

    // Declared too large: refused before the body is read.
    let big = vec![0u8; 64 * 1024];
    assert_status(job(&server, &big), 413, "at most 8192");
    // Far larger than the socket buffers: the client's Expect: 100-continue
    // lets it read the refusal instead of failing midway.
    let client = Client::new(&server.url()).unwrap();
    match client.submit_envelope(&vec![0u8; 16 << 20], &NoProgress) {
        Err(client::Error::Server {
            status: 413,
            message,
        }) => {
            assert!(message.contains("at most 8192"), "{message}");
        }
        other => panic!("expected 413, got {other:?}"),
    }
    // Chunked, so no Content-Length: refused while reading.
    let mut req = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: {JOB_CONTENT_TYPE}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..4 {
        req.extend_from_slice(b"1000\r\n");
        req.extend_from_slice(&[0u8; 0x1000]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(&server, &req, false);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("exceeds the limit"), "{answer}");
    // An image beyond the configured dimensions.
    let wide = encrypt(
        &image(65, 1, ColorLayout::Luma8, 5),
        &f.kp,
        &f.spec,
        BorderMode::Replicate,
    );
    assert_status(
        job(&server, &f.envelope_with(&f.spec, &wide.to_bytes())),
        413,
        "65x1",
    );

    // Content types.
    assert_status(
        post(&server, Some("application/json"), &good),
        415,
        "application/json",
    );
    assert_status(post(&server, None, &good), 415, JOB_CONTENT_TYPE);
    assert_status(
        post(&server, Some(IMAGE_CONTENT_TYPE), &good),
        415,
        "Content-Type",
    );
    let (status, _) = post(&server, Some(&format!("{JOB_CONTENT_TYPE}; v=1")), &good);
    assert_eq!(status, 202);

    still_serving(&server, &f);
}

#[test]
fn broken_http_unknown_jobs_and_routes() {
    let server = server(|_| {});
    let f = Fixture::new();
    // A body shorter than its Content-Length, then the client stops sending.
    let req = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: {JOB_CONTENT_TYPE}\r\nContent-Length: 1000\r\n\r\nHEJOB"
    );
    let answer = raw(&server, req.as_bytes(), true);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("ended early"), "{answer}");
    // Garbage instead of HTTP.
    let answer = raw(&server, b"\x00\x01\x02 not http\r\n\r\n", true);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    let client = Client::new(&server.url()).unwrap();
    for id in ["0123456789abcdef0123456789abcdef", "nope", "..%2F..%2Fetc"] {
        let e = client.status(id, Duration::ZERO).unwrap_err();
        assert!(
            matches!(e, client::Error::Server { status: 404, .. }),
            "{e}"
        );
        let e = client.result(id, &NoProgress).unwrap_err();
        assert!(
            matches!(e, client::Error::Server { status: 404, .. }),
            "{e}"
        );
    }
    let answer = raw(
        &server,
        b"GET /v1/jobs/x?wait=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        false,
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let answer = raw(
        &server,
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        false,
    );
    assert!(
        answer.starts_with("HTTP/1.1 404") && answer.contains("\"error\""),
        "{answer}"
    );
    let answer = raw(
        &server,
        b"PUT /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        false,
    );
    assert!(
        answer.starts_with("HTTP/1.1 405") && answer.contains("\"error\""),
        "{answer}"
    );

    still_serving(&server, &f);
}

/// An envelope around raw spec bytes, bypassing the typed `JobSpec`.
fn raw_envelope(spec: &[u8], key: &[u8], image: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in [spec, key, image] {
        paillier::frame::write_part(&mut body, p);
    }
    ENVELOPE_FORMAT.seal(&body)
}

/// An envelope with its framing recomputed after a deliberate change, so
/// that a broken part reaches the checks behind the digest.
fn reseal_envelope(env: &[u8]) -> Vec<u8> {
    let head = ENVELOPE_FORMAT.header_len();
    ENVELOPE_FORMAT.seal(&env[head..env.len() - paillier::frame::DIGEST_LEN])
}

#[test]
fn hostile_specs_get_4xx_never_500() {
    let server = server(|_| {});
    let f = Fixture::new();
    let (key, img) = (f.kp.public_key().to_bytes(), f.enc.to_bytes());
    let big = format!(
        r#"{{"filters":[{{"filter":"kernel","size":63,"weights":[{}],"divisor":1}}]}}"#,
        vec!["16777216"; 63 * 63].join(",")
    );
    let deep = format!(r#"{{"filters":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let specs: Vec<&str> = vec![
        r#"{"filters":[{"filter":"mean","k":18446744073709551615}]}"#,
        r#"{"filters":[{"filter":"mean","k":-1}]}"#,
        r#"{"filters":[{"filter":"mean","k":4}]}"#,
        r#"{"filters":[{"filter":"gaussian","k":0,"sigma":1e300}]}"#,
        r#"{"filters":[{"filter":"gaussian","k":0,"sigma":0}]}"#,
        r#"{"filters":[{"filter":"gaussian","k":0,"sigma":-1}]}"#,
        r#"{"filters":[{"filter":"gaussian","k":3,"sigma":1e-300}]}"#,
        &big,
        r#"{"filters":[{"filter":"kernel","size":3,"weights":[1,2],"divisor":1}]}"#,
        r#"{"filters":[{"filter":"kernel","size":3,"weights":[9223372036854775807,9223372036854775807,9223372036854775807,1,1,1,1,1,1],"divisor":1}]}"#,
        r#"{"filters":[{"filter":"brightness","delta":9223372036854775807}]}"#,
        r#"{"filters":[{"filter":"brightness","delta":-9223372036854775808}]}"#,
        r#"{"filters":[{"filter":"contrast","factor":{"num":2,"den":1},"pivot":-9223372036854775808}]}"#,
        r#"{"filters":[{"filter":"contrast","factor":{"num":1,"den":0},"pivot":128}]}"#,
        r#"{"filters":[{"filter":"contrast","factor":{"num":9223372036854775807,"den":1},"pivot":9223372036854775807}]}"#,
        r#"{"filters":[{"filter":"unsharp","k":3,"amount":{"num":-9223372036854775808,"den":18446744073709551615}}]}"#,
        r#"{"filters":[{"filter":"separable","column":[],"row":[],"divisor":1}]}"#,
        r#"{"filters":[{"filter":"separable","column":[1,1,1],"row":[1],"divisor":1}]}"#,
        r#"{"filters":[{"filter":"grey"},{"filter":"grey"}]}"#,
        r#"{"filters":[{"filter":"invert"},{"filter":"invert"},{"filter":"invert"},{"filter":"invert"},{"filter":"invert"},{"filter":"invert"},{"filter":"invert"},{"filter":"invert"}]}"#,
        r#"{"filters":[{"filter":"mean","k":3}],"extra":1}"#,
        r#"{"filters":[{"filter":"mean","k":3,"x":1}]}"#,
        r#"{"filters":"mean"}"#,
        r#"{"filters":[null]}"#,
        &deep,
        "",
        "\u{0}\u{1}",
    ];
    for spec in specs {
        let (status, msg) = job(&server, &raw_envelope(spec.as_bytes(), &key, &img));
        assert!(
            matches!(status, 202 | 400 | 413 | 422),
            "{status} for {:.120}: {msg}",
            spec
        );
    }
    let (status, _) = job(&server, &raw_envelope(b"\xff\xfe{", &key, &img));
    assert_eq!(status, 400);
    still_serving(&server, &f);
}

#[test]
fn random_corruptions_never_crash_the_server() {
    let server = server(|_| {});
    let f = Fixture::new();
    let good = f.envelope();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: usize| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % n as u64) as usize
    };
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let mut bad = good.clone();
        for _ in 0..1 + next(4) {
            let i = next(bad.len());
            bad[i] ^= 1 << next(8);
        }
        if next(4) == 0 {
            bad.truncate(next(bad.len()));
        }
        let (status, msg) = job(&server, &bad);
        assert!(matches!(status, 202 | 400 | 413 | 422), "{status}: {msg}");
        *seen.entry(status).or_insert(0) += 1;
    }
    assert!(seen.get(&400).copied().unwrap_or(0) > 50, "{seen:?}");
    still_serving(&server, &f);
}
