//! `he serve` and `he submit` over HTTPS, as a person runs them: plain
//! HTTP off loopback refused at start, a job through TLS with `--ca`, and
//! a client trusting another CA refused with a message naming `--ca`.
//! Certificates are made here (rcgen).

#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

fn he() -> Command {
    Command::new(env!("CARGO_BIN_EXE_he"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("he-cli-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `ca.pem` (the CA), `cert.pem` and `key.pem` (the server's, for
/// localhost, signed by the CA) and `other-ca.pem` (an unrelated CA).
fn certificates(dir: &Path) {
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    };
    let ours = ca("he test CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ours)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ours.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), ca("someone else").pem()).unwrap();
}

/// A server killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn plain_http_on_a_public_address_is_refused_at_start() {
    let mut child = Server(
        // Anonymous on purpose, so that the transport rule is what refuses.
        he().args(["serve", "--listen", "0.0.0.0:0", "--anonymous"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "he serve is serving plain HTTP on 0.0.0.0"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "he serve started: {err}");
    assert!(
        err.contains("plain HTTP") && err.contains("--allow-plain-http"),
        "{err}"
    );
}

#[test]
fn submit_through_tls_with_the_servers_ca_and_refused_with_another() {
    let d = scratch("e2e");
    certificates(&d);
    let port = free_port();
    let server = Server(
        he().args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tls-cert",
            s(&d.join("cert.pem")),
            "--tls-key",
            s(&d.join("key.pem")),
            "--workers",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "he serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://localhost:{port}");
    let photo = d.join("photo.png");
    image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/astronaut-256.png"
    ))
    .unwrap()
    .resize_exact(8, 6, image::imageops::FilterType::Triangle)
    .save(&photo)
    .unwrap();
    let submit = |ca: &str, out: &Path| {
        he().args([
            "submit",
            s(&photo),
            "-o",
            s(out),
            "--server",
            &url,
            "--ca",
            s(&d.join(ca)),
            "--timeout",
            "120",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap()
    };
    // Another CA: refused before anything is sent, with what to do.
    let wrong = submit("other-ca.pem", &d.join("wrong.png"));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(err.contains("TLS") && err.contains("--ca"), "{err}");
    assert!(!d.join("wrong.png").exists());
    // The server's CA: the job goes through.
    let good = submit("ca.pem", &d.join("good.png"));
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let img = image::open(d.join("good.png")).unwrap();
    assert_eq!((img.width(), img.height()), (8, 6));
    drop(server);
    std::fs::remove_dir_all(&d).unwrap();
}
