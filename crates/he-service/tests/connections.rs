//! Slow, idle and crowding clients, for real on loopback: the attackers
//! connect from other loopback addresses (127.0.0.2 and up) than the
//! normal client (127.0.0.1), and the normal client must still be served
//! within a few seconds. Timeouts are test-sized.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use enc_image::{BorderMode, ColorLayout, NoProgress};
use he_filter::Filter;
use he_service::client::{Client, ClientOptions, Error};
use he_service::server::{Config, ServerHandle};
use he_service::wire::{Envelope, JOB_CONTENT_TYPE};
use socket2::{Domain, Socket, Type};

use common::*;

/// A connection to `server` from `127.0.0.<last>`.
fn connect_from(last: u8, server: SocketAddr) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let from = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, last), 0);
    s.bind(&from.into())?;
    s.connect_timeout(&server.into(), Duration::from_millis(500))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// Sends a whole `GET path` with `extra` headers and reads the answer (a
/// small JSON body with Content-Length); the connection stays open.
/// `None` if the server closed the connection without answering.
fn get(s: &mut TcpStream, path: &str, extra: &str) -> Option<(u16, String)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).ok()?;
    answer(s, &format!("GET {path}"))
}

/// Reads the answer to the request just sent on `s` (`what` names it):
/// status and body. `None` if the server closed the connection without
/// answering.
fn answer(s: &mut TcpStream, what: &str) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading the answer to {what}: {e}"),
        };
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return Some((status, text[end + 4..end + 4 + len].to_string()));
            }
        }
    }
}

/// How long until the server closes `s` (reads return 0 or an error),
/// reading and dropping anything it sends; `None` if still open after
/// `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        let left = within.saturating_sub(t.elapsed());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut chunk) {
            Ok(0) => return Some(t.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(t.elapsed()),
        }
    }
}

/// Starts an upload of a declared `len` bytes and sends only `sent` of
/// them, with `extra` headers.
fn stalled_upload(s: &mut TcpStream, len: usize, sent: usize, extra: &str) {
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: test\r\nContent-Type: {JOB_CONTENT_TYPE}\r\n\
         Content-Length: {len}\r\n{extra}\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&vec![0u8; sent]).unwrap();
}

fn client(server: &ServerHandle) -> Client {
    Client::with_options(
        &server.url(),
        ClientOptions {
            io_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

fn in_flight(server: &ServerHandle) -> usize {
    client(server).health().unwrap().jobs_in_flight
}

#[test]
fn silent_uploads_are_cut_with_408_and_a_normal_job_gets_through() {
    let server = common::server(|c: &mut Config| {
        c.queue_capacity = 8;
        c.body_read_timeout = Duration::from_secs(2);
        c.header_timeout = Duration::from_secs(5);
    });
    // 8 uploads from 8 addresses that declare 1 MB, send 100 bytes and go
    // silent: every upload slot is taken.
    let mut attackers: Vec<TcpStream> = (2..10)
        .map(|i| {
            let mut s = connect_from(i, server.addr()).unwrap();
            stalled_upload(&mut s, 1 << 20, 100, "");
            s
        })
        .collect();
    let t = Instant::now();
    while in_flight(&server) < 8 {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the uploads were not admitted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A normal client with a valid job, retrying while the server is busy.
    let kp = key();
    let spec = spec(vec![Filter::Mean { k: 3 }]);
    let img = image(6, 5, ColorLayout::Rgb8, 7);
    let enc = encrypt(&img, &kp, &spec, BorderMode::Replicate);
    let envelope = Envelope::encode(&spec, &kp.public_key().to_bytes(), &enc.to_bytes());
    let client = client(&server);
    let t = Instant::now();
    let run = loop {
        match client.run_job(&envelope, &NoProgress, Duration::from_secs(20)) {
            Ok(run) => break run,
            Err(Error::Server {
                status: 503 | 429, ..
            }) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the normal job failed after {:?}: {e}", t.elapsed()),
        }
    };
    assert_eq!(run.status.state, he_service::wire::JobState::Done);
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "the normal job took {:?}",
        t.elapsed()
    );
    // Each silent upload was answered 408 and closed.
    for s in &mut attackers {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:.200}");
        assert!(answer.contains("stalled"), "{answer:.400}");
    }
}

#[test]
fn connections_that_never_finish_their_headers_do_not_lock_out_a_client() {
    let header_timeout = Duration::from_secs(4);
    let server = common::server(|c: &mut Config| {
        c.max_connections = 64;
        c.header_timeout = header_timeout;
    });
    // 300 connections from 10 addresses (30 each, under the per-address
    // cap), each sending the start of a request and nothing more.
    let t = Instant::now();
    let mut attackers = Vec::new();
    for i in 0..300 {
        let Ok(mut s) = connect_from(2 + (i % 10) as u8, server.addr()) else {
            continue;
        };
        if s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: te").is_ok() {
            attackers.push(s);
        }
    }
    eprintln!(
        "{} attackers connected in {:?}",
        attackers.len(),
        t.elapsed()
    );
    assert!(
        attackers.len() >= 200,
        "only {} attackers connected",
        attackers.len()
    );
    let t = Instant::now();
    let health = client(&server).health();
    let took = t.elapsed();
    assert!(health.is_ok(), "health failed after {took:?}: {health:?}");
    // Well within the header timeout, which is what would free a place
    // if attackers were not evicted (3 s: a loaded 2-core machine).
    assert!(took < Duration::from_secs(3), "health took {took:?}");
    // Every attacker's connection is closed within the header timeout
    // (or earlier, to make room).
    let t = Instant::now();
    for s in &mut attackers {
        let left = (header_timeout + Duration::from_secs(2)).saturating_sub(t.elapsed());
        assert!(
            closed_within(s, left).is_some(),
            "an attacker's connection is still open after {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = common::server(|c: &mut Config| {
        c.idle_timeout = Duration::from_secs(1);
        c.header_timeout = Duration::from_secs(5);
    });
    let mut s = connect_from(1, server.addr()).unwrap();
    let (status, _) = get(&mut s, "/v1/health", "").unwrap();
    assert_eq!(status, 200);
    // Still usable right away (kept alive)...
    let (status, _) = get(&mut s, "/v1/health", "").unwrap();
    assert_eq!(status, 200);
    // ...and closed once idle for the idle timeout, not before.
    let closed = closed_within(&mut s, Duration::from_secs(4));
    let closed = closed.expect("the idle connection was not closed within 4 s");
    assert!(
        closed > Duration::from_millis(800),
        "closed after {closed:?}"
    );
}

#[test]
fn the_connection_beyond_the_per_address_cap_is_refused_another_address_gets_in() {
    let server = common::server(|c: &mut Config| {
        c.max_connections_per_client = 3;
    });
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = connect_from(2, server.addr()).unwrap();
            assert_eq!(get(&mut s, "/v1/health", "").unwrap().0, 200);
            s
        })
        .collect();
    let mut fourth = connect_from(2, server.addr()).unwrap();
    assert_eq!(
        get(&mut fourth, "/v1/health", ""),
        None,
        "a 4th connection from 127.0.0.2 was served"
    );
    let mut other = connect_from(3, server.addr()).unwrap();
    assert_eq!(get(&mut other, "/v1/health", "").unwrap().0, 200);
    // One closed: its place is free again.
    drop(held.pop());
    let t = Instant::now();
    loop {
        let mut s = connect_from(2, server.addr()).unwrap();
        if get(&mut s, "/v1/health", "").is_some() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the place was not freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let server = common::server(|c: &mut Config| {
        c.max_connections_per_client = 2;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    });
    // From an untrusted peer the header is ignored: three "different"
    // forwarded clients are one address, and the third is refused.
    let mut from_4: Vec<TcpStream> = Vec::new();
    for (i, fwd) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let mut s = connect_from(4, server.addr()).unwrap();
        let answer = get(&mut s, "/v1/health", &format!("X-Forwarded-For: {fwd}\r\n"));
        if i < 2 {
            assert_eq!(answer.unwrap().0, 200);
        } else {
            assert_eq!(answer, None, "X-Forwarded-For was believed from 127.0.0.4");
        }
        from_4.push(s);
    }
    // Through the trusted proxy (127.0.0.1), its own connections are not
    // capped, and each request counts for the forwarded client: two
    // requests in flight for 198.51.100.7, so a third gets 429...
    let xff = "X-Forwarded-For: 192.0.2.99, 198.51.100.7\r\n";
    let mut uploads: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect_from(1, server.addr()).unwrap();
            stalled_upload(&mut s, 1000, 10, xff);
            s
        })
        .collect();
    let t = Instant::now();
    while in_flight(&server) < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the uploads were not admitted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut third = connect_from(1, server.addr()).unwrap();
    let (status, body) = get(&mut third, "/v1/health", xff).unwrap();
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("198.51.100.7"), "{body}");
    // ...while another forwarded client, on the same proxy, gets in.
    let mut fourth = connect_from(1, server.addr()).unwrap();
    let other = "X-Forwarded-For: 192.0.2.99, 198.51.100.8\r\n";
    assert_eq!(get(&mut fourth, "/v1/health", other).unwrap().0, 200);
    uploads.clear();
}

#[test]
fn when_full_an_idle_connection_makes_room_and_busy_ones_make_newcomers_wait() {
    let server = common::server(|c: &mut Config| {
        c.max_connections = 1;
        c.body_read_timeout = Duration::from_secs(30);
    });
    // An idle connection gives its place to a new one.
    let mut idle = connect_from(2, server.addr()).unwrap();
    assert_eq!(get(&mut idle, "/v1/health", "").unwrap().0, 200);
    let mut s = connect_from(3, server.addr()).unwrap();
    assert_eq!(get(&mut s, "/v1/health", "").unwrap().0, 200);
    assert!(closed_within(&mut idle, Duration::from_secs(1)).is_some());
    drop(s);
    // A connection with a request in flight keeps it: the next one waits
    // until it ends.
    // Its "100 Continue" says the server is reading the body: the request
    // is in flight (no sleep to guess when).
    let mut busy = connect_from(2, server.addr()).unwrap();
    stalled_upload(&mut busy, 1000, 0, "Expect: 100-continue\r\n");
    busy.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut go_on = [0u8; 25];
    busy.read_exact(&mut go_on).unwrap();
    assert_eq!(&go_on, b"HTTP/1.1 100 Continue\r\n\r\n");
    busy.write_all(&[0u8; 10]).unwrap();
    let mut waiting = connect_from(3, server.addr()).unwrap();
    waiting
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answer = [0u8; 12];
    assert!(
        waiting.read(&mut answer).is_err(),
        "a connection beyond the limit was served while the only place was busy"
    );
    drop(busy);
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    waiting.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}

#[test]
fn a_refused_upload_through_a_trusted_proxy_is_read_before_the_answer() {
    let server = common::server(|c: &mut Config| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    });
    // The proxy streams a 24 MiB upload that the API refuses before
    // reading it (not a job's content type). Before, the server answered
    // and closed the socket, and the proxy's writes failed: nginx then
    // gave its client 502 instead of the answer.
    let len: usize = 24 << 20;
    let mut s = connect_from(1, server.addr()).unwrap();
    let mut w = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let head = format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n\
             Content-Length: {len}\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n"
        );
        w.write_all(head.as_bytes())?;
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..len >> 20 {
            w.write_all(&chunk)?;
        }
        Ok::<(), std::io::Error>(())
    });
    let (status, body) = answer(&mut s, "the refused upload").expect("an answer");
    assert_eq!(status, 415, "{body}");
    sender
        .join()
        .unwrap()
        .expect("the server took the whole body before it answered");
    // The connection stays usable for the proxy's next request.
    assert_eq!(get(&mut s, "/v1/health", "").unwrap().0, 200);
}
