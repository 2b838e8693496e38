//! HTTPS for real on loopback, with certificates made here (rcgen): a job
//! through the real client trusting the test CA, and a client trusting
//! another CA refused with a message that says what to do.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::path::PathBuf;
use std::time::Duration;

use enc_image::{BorderMode, ColorLayout};
use he_filter::Filter;
use he_service::client::{Client, ClientOptions, Error, FilterRequest};
use he_service::server::{Config, ServerHandle, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use common::*;

/// A CA: its certificate (PEM) and what signs with it.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A server certificate for localhost and 127.0.0.1 signed by `ca`,
/// written with its key to a fresh directory.
fn server_files(ca: &CertifiedIssuer<'static, KeyPair>, tag: &str) -> (TlsFiles, PathBuf) {
    let dir = std::env::temp_dir().join(format!("he-tls-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    (files, dir)
}

fn tls_server(files: TlsFiles) -> ServerHandle {
    common::server(|c: &mut Config| c.tls = Some(files))
}

fn client(url: &str, ca_pem: Option<String>) -> Client {
    Client::with_options(
        url,
        ClientOptions {
            io_timeout: Duration::from_secs(10),
            ca_pem: ca_pem.map(String::into_bytes),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn a_job_goes_through_https_with_the_client_trusting_the_servers_ca() {
    let ca = ca("he test CA");
    let (files, dir) = server_files(&ca, "ok");
    let server = tls_server(files);
    assert!(server.url().starts_with("https://"), "{}", server.url());
    // By name, as a certificate is usually checked.
    let url = format!("https://localhost:{}", server.addr().port());
    let client = client(&url, Some(ca.pem()));
    assert_eq!(
        client.health().unwrap().instance,
        server.service().instance()
    );
    let kp = key();
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let img = image(7, 5, ColorLayout::Rgb8, 3);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    let mut request = FilterRequest::new(kp.public_key(), &spec, &enc);
    request.timeout = TIMEOUT;
    let (out, status) = client.filter(&request).unwrap();
    assert_eq!(status.state, he_service::wire::JobState::Done);
    let got = out
        .decrypt(kp.private_key(), &enc_image::NoProgress)
        .unwrap();
    let want =
        he_filter::reference::apply_chain(&img, &spec.filters, BorderMode::Replicate).unwrap();
    assert_eq!(got, want);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_client_trusting_another_ca_is_refused_with_a_clear_message() {
    let ca = ca("he test CA");
    let other = ca_other();
    let (files, dir) = server_files(&ca, "wrong");
    let server = tls_server(files);
    let url = format!("https://localhost:{}", server.addr().port());
    let e = client(&url, Some(other.pem())).health().unwrap_err();
    let msg = e.to_string();
    eprintln!("refused: {msg}");
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    assert!(
        msg.contains("UnknownIssuer") || msg.contains("issuer"),
        "{msg}"
    );
    assert!(msg.contains("--ca"), "{msg}");
    // Plain HTTP to the TLS port does not get an answer either.
    let plain = format!("http://127.0.0.1:{}", server.addr().port());
    assert!(client(&plain, None).health().is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

fn ca_other() -> CertifiedIssuer<'static, KeyPair> {
    ca("someone else's CA")
}

#[test]
fn plain_http_off_loopback_is_refused_unless_allowed() {
    // Anonymous on purpose, so that the transport rule is what refuses.
    let config = Config {
        listen: "0.0.0.0:0".parse().unwrap(),
        allow_anonymous: true,
        ..Config::default()
    };
    let e = ServerHandle::start(config.clone()).unwrap_err().to_string();
    assert!(e.contains("--allow-plain-http"), "{e}");
    let allowed = Config {
        allow_plain_http: true,
        workers: std::num::NonZeroUsize::new(1),
        ..config
    };
    let server = ServerHandle::start(allowed).unwrap();
    let url = format!("http://127.0.0.1:{}", server.addr().port());
    client(&url, None).health().unwrap();
}
