//! `he serve` stopping gracefully, as systemd stops it: SIGTERM, then no
//! new connections and no new jobs (`503` with `Retry-After`), the job it
//! holds served to the connection that waits for it, and exit code 0 as
//! soon as that job is collected; or, if it never is, at the drain
//! timeout. The server is the real binary, started from a config file.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use enc_image::{ColorLayout, EncryptedImage, NoProgress, PixelImage};
use he_filter::Filter;
use he_service::client::Client;
use he_service::wire::{Envelope, JOB_CONTENT_TYPE, JobSpec, JobState};
use paillier::Keypair;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("he-cli-drain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server killed when dropped (if the test failed before it stopped).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// `he serve --config FILE ARGS...` on `port`, once it answers.
    fn start(dir: &Path, port: u16, args: &[&str]) -> Server {
        let config = dir.join("he-serve.toml");
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:{port}\"\nworkers = 1\ndrain_timeout = 60\n"),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_he"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server(child);
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "he serve did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Its exit status, waiting at most `limit`.
    fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                t.elapsed() < limit,
                "he serve still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One HTTP/1.1 connection kept alive across requests.
struct Conn(BufReader<TcpStream>);

/// An answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Conn(BufReader::new(s))
    }

    fn send(&mut self, method: &str, path: &str, body: &[u8]) -> Answer {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {JOB_CONTENT_TYPE}\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let s = self.0.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.0.read_line(&mut h).unwrap();
            if h == "\r\n" || h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut answer = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 204 {
            // No body.
        } else if let Some(n) = answer.header("content-length") {
            let mut body = vec![0; n.parse().unwrap()];
            self.0.read_exact(&mut body).unwrap();
            answer.body = body;
        } else {
            assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
            loop {
                let mut size = String::new();
                self.0.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                self.0.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                answer.body.extend_from_slice(&chunk[..n]);
            }
        }
        answer
    }
}

/// A 2048-bit job (the real server refuses smaller keys): the key, the
/// plain image, the spec and the envelope.
fn job() -> (Keypair, PixelImage, JobSpec, Vec<u8>) {
    let kp = Keypair::generate(2048).unwrap();
    let img = PixelImage::new(5, 4, ColorLayout::Luma8, (0..20).map(|i| i * 12).collect()).unwrap();
    let spec = JobSpec::new(vec![Filter::Mean { k: 3 }]);
    let enc = EncryptedImage::encrypt(
        &img,
        kp.private_key(),
        &spec.encrypt_options().unwrap(),
        &NoProgress,
    )
    .unwrap();
    let envelope = Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes());
    (kp, img, spec, envelope)
}

#[test]
fn sigterm_drains_serves_the_held_job_and_exits_0_when_it_is_collected_or_at_the_timeout() {
    let d = scratch("sigterm");
    let (kp, img, spec, envelope) = job();

    // --- a job held and collected: the server stops as soon as it is ---
    let port = free_port();
    let mut server = Server::start(&d, port, &[]);
    let mut conn = Conn::open(port);
    let mut spare = Conn::open(port);
    let accepted = conn.send("POST", "/v1/jobs", &envelope);
    assert_eq!(
        accepted.status,
        202,
        "{}",
        String::from_utf8_lossy(&accepted.body)
    );
    let status: serde_json::Value = serde_json::from_slice(&accepted.body).unwrap();
    let id = status["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    server.sigterm();
    // No new connections: the listening socket closes.
    let closed = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            closed.elapsed() < Duration::from_secs(5),
            "still accepting connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // No new jobs, and a health check that sends load balancers away.
    // (A refused upload's connection may close, its body unread: the job
    // is sent on a connection of its own.)
    for (conn, method, path, body) in [
        (&mut conn, "GET", "/v1/health", &b""[..]),
        (&mut spare, "POST", "/v1/jobs", &b"HEJOB"[..]),
    ] {
        let a = conn.send(method, path, body);
        assert_eq!(a.status, 503, "{method} {path}");
        assert_eq!(a.header("retry-after"), Some("5"), "{method} {path}");
        let text = String::from_utf8_lossy(&a.body);
        assert!(text.contains("stopping"), "{text}");
    }
    // The job held is served, exact.
    let done = conn.send("GET", &format!("/v1/jobs/{id}?wait=30"), &[]);
    let done: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
    assert_eq!(done["state"], "done", "{done}");
    let result = conn.send("GET", &format!("/v1/jobs/{id}/result"), &[]);
    assert_eq!(result.status, 200);
    let out = EncryptedImage::from_bytes(&result.body, kp.public_key(), &Default::default())
        .unwrap()
        .decrypt(kp.private_key(), &NoProgress)
        .unwrap();
    let expected =
        he_filter::reference::apply_chain(&img, &spec.filters, enc_image::BorderMode::Replicate)
            .unwrap();
    assert_eq!(out, expected, "the result served while draining is exact");
    // Still running until the job is collected...
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "stopped before the job was collected"
    );
    assert_eq!(
        conn.send("DELETE", &format!("/v1/jobs/{id}"), &[]).status,
        204
    );
    // ...then it stops at once, well before the 60 s drain timeout.
    let status = server.exit_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());

    // --- a job never collected: the server stops at the drain timeout ---
    // (the flag wins over the file's 60 s)
    let port = free_port();
    let mut server = Server::start(&d, port, &["--drain-timeout", "2"]);
    let client = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let job = client.submit_envelope(&envelope, &NoProgress).unwrap();
    let done = client
        .wait(&job.id, &NoProgress, Duration::from_secs(60))
        .unwrap();
    assert_eq!(done.state, JobState::Done);
    let t = Instant::now();
    server.sigterm();
    let status = server.exit_within(Duration::from_secs(20));
    let took = t.elapsed();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(15),
        "stopped after {took:?} with a drain timeout of 2 s"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
