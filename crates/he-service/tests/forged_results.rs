//! A server that returns a well-formed but wrong result: the right
//! history, the right key, the right dimensions, every ciphertext valid,
//! and two ciphertexts swapped (or one replaced by Enc(0)). The history
//! and format checks accept it; `Client::filter_image` decrypts it,
//! spot-checks it against the image it owns, and refuses it.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use enc_image::{ColorLayout, EncryptedImage, Limits, NoProgress};
use he_filter::{Filter, reference};
use he_service::client::{Client, Error, ImageRequest};
use he_service::wire::{Envelope, JobState, JobStatus};
use paillier::PublicKey;

use common::*;

/// How the forger spoils the honest result.
#[derive(Clone, Copy, Debug)]
enum Forgery {
    Swap,
    Zero,
}

fn spoil(out: &EncryptedImage, pk: &PublicKey, how: Forgery) -> EncryptedImage {
    let mut cts = out.ciphertexts().to_vec();
    match how {
        Forgery::Swap => {
            let last = cts.len() - 1;
            cts.swap(0, last);
        }
        Forgery::Zero => {
            let mid = cts.len() / 2;
            cts[mid] = pk.encrypt(&paillier::Integer::from(0)).unwrap();
        }
    }
    EncryptedImage::from_parts(out.meta().clone(), cts).unwrap()
}

/// The forged result's bytes and the status that goes with it.
type Answer = (Vec<u8>, JobStatus);

/// A server that filters honestly with the public key, then spoils the
/// result before answering.
fn forger(how: Forgery) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let result: Arc<Mutex<Option<Answer>>> = Arc::new(Mutex::new(None));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some((request, body)) = read_request(&mut conn) else {
                continue;
            };
            let (code, ctype, answer): (&str, &str, Vec<u8>) = if request.starts_with("post ") {
                let env = Envelope::decode(&body).unwrap();
                let pk = PublicKey::from_bytes(env.public_key).unwrap();
                let enc = EncryptedImage::from_bytes(env.image, &pk, &Limits::default()).unwrap();
                let out = he_filter::apply_chain(&enc, &pk, &env.spec.filters, &NoProgress)
                    .unwrap()
                    .trim_halo();
                let bad = spoil(&out, &pk, how);
                let st = JobStatus {
                    id: format!("{:032x}", 9),
                    instance: "dddddddddddddddd".into(),
                    state: JobState::Done,
                    filters: env.spec.labels(),
                    width: enc.meta().width() as u32,
                    height: enc.meta().height() as u32,
                    key_bits: pk.bits(),
                    ciphertexts: enc.ciphertexts().len() as u64,
                    progress_done: 1,
                    progress_total: 1,
                    validate_seconds: 0.0,
                    queued_seconds: Some(0.0),
                    filter_seconds: Some(0.0),
                    result_bytes: None,
                    expires_in_seconds: Some(600),
                    error: None,
                    tiles: None,
                };
                let json = serde_json::to_vec(&st).unwrap();
                *result.lock().unwrap() = Some((bad.to_bytes(), st));
                ("202 Accepted", "application/json", json)
            } else if request.contains("/result ") {
                let r = result.lock().unwrap().clone().unwrap();
                ("200 OK", "application/octet-stream", r.0)
            } else if request.starts_with("delete ") {
                ("204 No Content", "application/json", Vec::new())
            } else {
                let r = result.lock().unwrap().clone().unwrap();
                (
                    "200 OK",
                    "application/json",
                    serde_json::to_vec(&r.1).unwrap(),
                )
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {code}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                answer.len()
            );
            let _ = conn.write_all(&answer);
        }
    });
    url
}

#[test]
fn an_honest_result_is_returned_decrypted_and_verified() {
    let server = server(|_| {});
    let kp = key();
    let img = image(40, 30, ColorLayout::Rgb8, 5);
    let spec = spec(vec![
        Filter::Gaussian { k: 3, sigma: None },
        Filter::Sharpen,
    ]);
    let client = Client::new(&server.url()).unwrap();
    let (got, report, _) = client
        .filter_image(&ImageRequest::new(&kp, &img, &spec))
        .unwrap();
    let want =
        reference::apply_chain(&img, &spec.filters, enc_image::BorderMode::Replicate).unwrap();
    assert_eq!(got, want);
    assert!(report.ciphertexts_sampled > 0);
}

#[test]
fn a_forged_result_that_passes_every_format_check_is_refused() {
    let kp = key();
    let img = image(40, 30, ColorLayout::Rgb8, 6);
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    for how in [Forgery::Swap, Forgery::Zero] {
        let client = Client::new(&forger(how)).unwrap();
        // The lower-level call, which checks format, key and history only,
        // accepts the forgery: this is what the spot check is for.
        let opts = spec.encrypt_options().unwrap();
        let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
        let plain = client.filter(&he_service::client::FilterRequest::new(
            kp.public_key(),
            &spec,
            &enc,
        ));
        assert!(plain.is_ok(), "{how:?}: the forgery did not even load");
        let err = client
            .filter_image(&ImageRequest::new(&kp, &img, &spec))
            .unwrap_err();
        assert!(matches!(err, Error::Verification(_)), "{how:?}: {err}");
    }
}
