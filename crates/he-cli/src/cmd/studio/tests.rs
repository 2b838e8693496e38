//! The studio over real HTTP on loopback: the guard, the job API against
//! an embedded server with a 512-bit test key (given as `--key` would
//! be), exact results and exact regions.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use enc_image::{BorderMode, ColorLayout, OutputMapping, PixelImage};
use he_filter::{Filter, reference};
use he_service::server::tokens::TokenFile;
use he_service::server::{Config, ServerHandle};
use paillier::Keypair;

use super::guard::Guard;
use super::jobs::Connection;
use super::{api, check_listen, start_studio};

/// A studio on a free loopback port, talking to `server` with `token`,
/// with a fixed 512-bit key; its runtime lives as long as the value.
struct TestStudio {
    _rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    guard: Guard,
}

impl TestStudio {
    fn start(server: &ServerHandle, token: Option<String>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let guard = Guard::new(addr).unwrap();
        let key = Keypair::generate_insecure_for_tests(512).unwrap();
        let studio = start_studio(
            Connection {
                server: server.url(),
                token,
                embedded: true,
            },
            Some(key),
            None,
        );
        let app = api::router(studio, guard.clone());
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        TestStudio {
            _rt: rt,
            addr,
            guard,
        }
    }

    /// A request with the right Host and cookie, plus `extra` headers.
    fn call(&self, method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]) -> Answer {
        let cookie = self.guard.cookie();
        let mut headers = vec![("Host", self.guard.host()), ("Cookie", cookie.as_str())];
        headers.extend_from_slice(extra);
        http(self.addr, method, path, &headers, body)
    }

    fn json(&self, method: &str, path: &str, body: &serde_json::Value) -> Answer {
        self.call(
            method,
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    /// Uploads `img` as a PNG; returns the photo's id.
    fn photo(&self, img: &PixelImage) -> String {
        let mut png = std::io::Cursor::new(Vec::new());
        img.to_dynamic()
            .unwrap()
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        let a = self.call("POST", "/api/photos?name=t.png", &[], png.get_ref());
        assert_eq!(a.status, 200, "{}", a.text());
        a.value()["id"].as_str().unwrap().to_string()
    }

    /// Waits for job `id` to finish; returns its view.
    fn wait(&self, id: &str) -> serde_json::Value {
        let t = Instant::now();
        loop {
            let jobs = self.call("GET", "/api/jobs", &[], b"").value();
            let job = jobs["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["id"] == id)
                .cloned()
                .expect("the job is listed");
            if !matches!(job["state"].as_str(), Some("queued" | "running")) {
                return job;
            }
            assert!(t.elapsed() < Duration::from_secs(300), "job {id} hangs");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection, read to its end.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += &format!("Content-Length: {}\r\n\r\n", body.len());
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Answer { status, head, body }
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..line]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[line + 2..line + 2 + n]);
        b = &b[line + 4 + n..];
    }
}

fn server(tokens: Option<TokenFile>) -> ServerHandle {
    ServerHandle::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: std::num::NonZeroUsize::new(2),
        tokens,
        ..Config::default()
    })
    .unwrap()
}

/// An embedded server that takes uploads of at most `max_body_bytes`.
fn small_server(max_body_bytes: usize) -> ServerHandle {
    ServerHandle::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: std::num::NonZeroUsize::new(2),
        max_body_bytes,
        ..Config::default()
    })
    .unwrap()
}

/// The bytes of `img` encrypted whole under `key` for `chain`: what a
/// single upload would carry.
fn whole_upload(img: &PixelImage, chain: &[Filter], key: &Keypair) -> usize {
    let opts = he_filter::encrypt_options(chain).unwrap();
    enc_image::EncryptedImage::encrypt(img, key.private_key(), &opts, &enc_image::NoProgress)
        .unwrap()
        .to_bytes()
        .len()
}

/// The embedded server's jobs stored, from its `/v1/health`.
fn jobs_stored(srv: &ServerHandle) -> usize {
    he_service::client::Client::new(&srv.url())
        .unwrap()
        .health()
        .unwrap()
        .jobs_stored
}

/// A deterministic RGB image (xorshift).
fn image(w: usize, h: usize, seed: u64) -> PixelImage {
    let mut s = seed | 1;
    let data = (0..w * h * 3)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect();
    PixelImage::new(w, h, ColorLayout::Rgb8, data).unwrap()
}

fn decode(png: &[u8]) -> PixelImage {
    PixelImage::from_dynamic(&image::load_from_memory(png).unwrap())
}

#[test]
fn the_secret_host_and_origin_are_checked_on_every_request() {
    let srv = server(None);
    let st = TestStudio::start(&srv, None);
    let host = st.guard.host().to_string();
    let cookie = st.guard.cookie();
    let get = |headers: &[(&str, &str)]| http(st.addr, "GET", "/api/settings", headers, b"");

    assert_eq!(get(&[("Host", &host)]).status, 403, "no secret");
    let wrong = format!("{}0", cookie);
    assert_eq!(get(&[("Host", &host), ("Cookie", &wrong)]).status, 403);
    let a = get(&[("Host", &host), ("Cookie", &cookie)]);
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.value()["embedded"], true);
    assert!(
        !a.text().contains("token\":\""),
        "no token goes to the page"
    );
    // DNS rebinding: the right cookie, but the Host of another name.
    let port = st.addr.port().to_string();
    let rebound = format!("evil.example:{port}");
    let a = get(&[("Host", &rebound), ("Cookie", &cookie)]);
    assert_eq!(a.status, 403);
    assert!(a.text().contains("Host"), "{}", a.text());
    assert_eq!(get(&[("Cookie", &cookie)]).status, 403, "no Host");
    let other_port = format!("127.0.0.1:{}", st.addr.port() ^ 1);
    assert_eq!(
        get(&[("Host", &other_port), ("Cookie", &cookie)]).status,
        403
    );
    // Another site's page, even with the cookie (a browser would send it).
    for origin in ["http://evil.example", "null", &format!("https://{host}")] {
        let a = get(&[("Host", &host), ("Cookie", &cookie), ("Origin", origin)]);
        assert_eq!(a.status, 403, "Origin {origin}");
    }
    let own = format!("http://{host}");
    assert_eq!(
        get(&[("Host", &host), ("Cookie", &cookie), ("Origin", &own)]).status,
        200
    );
    let a = get(&[
        ("Host", &host),
        ("Cookie", &cookie),
        ("Sec-Fetch-Site", "cross-site"),
    ]);
    assert_eq!(a.status, 403);
    // No CORS, ever.
    assert!(!a.head.to_ascii_lowercase().contains("access-control"));

    // The printed URL swaps its secret for the cookie and drops it.
    let url = st.guard.url();
    let path = &url[url.find("/?").unwrap()..];
    let a = http(st.addr, "GET", path, &[("Host", &host)], b"");
    assert_eq!(a.status, 303);
    let head = a.head.to_ascii_lowercase();
    assert!(head.contains("location: /\r\n"), "{head}");
    assert!(
        head.contains(&format!(
            "set-cookie: {}; httponly; samesite=strict",
            cookie.to_ascii_lowercase()
        )),
        "{head}"
    );
    let bad = format!("{path}0");
    assert_eq!(
        http(st.addr, "GET", &bad, &[("Host", &host)], b"").status,
        403
    );
    // The page, then, with its script and style.
    for (p, what) in [
        ("/", "Filter privately"),
        ("/studio.js", "EventSource"),
        ("/studio.css", "body"),
    ] {
        let a = st.call("GET", p, &[], b"");
        assert_eq!(a.status, 200);
        assert!(a.text().contains(what), "{p}");
        assert!(!a.head.to_ascii_lowercase().contains("access-control"));
    }
    srv.stop().unwrap();
}

#[test]
fn only_loopback_addresses_are_served() {
    for bad in [
        "0.0.0.0:8766",
        "192.168.1.10:8766",
        "[::]:8766",
        "10.0.0.1:0",
    ] {
        let err = check_listen(bad.parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("loopback"), "{bad}: {err}");
    }
    for good in ["127.0.0.1:8766", "127.0.0.1:0", "[::1]:8766"] {
        check_listen(good.parse().unwrap()).unwrap();
    }
}

#[test]
fn jobs_filter_exactly_and_regions_composite_exactly() {
    let srv = server(None);
    let st = TestStudio::start(&srv, None);
    let img = image(23, 17, 7);
    let photo = st.photo(&img);

    // A chain of two, as the page sends it.
    let a = st.json(
        "POST",
        "/api/jobs",
        &serde_json::json!({
            "photo": photo,
            "filters": [
                { "name": "mean", "params": { "k": "3" } },
                { "name": "sobel-x", "params": {} }
            ],
            "map": "abs",
            "key_bits": 2048
        }),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    let whole = a.value()["id"].as_str().unwrap().to_string();
    // The same photo again, the filter kept in two rectangles only.
    let regions = serde_json::json!([{ "x": 2, "y": 3, "w": 5, "h": 4 }, { "x": 20, "y": 10, "w": 9, "h": 9 }]);
    let a = st.json(
        "POST",
        "/api/jobs",
        &serde_json::json!({
            "photo": photo,
            "filters": [{ "name": "mean", "params": { "k": "5" } }],
            "key_bits": 3072,
            "regions": regions
        }),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    let part = a.value()["id"].as_str().unwrap().to_string();

    let job = st.wait(&whole);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["key_bits"], 512, "the --key key is used");
    assert!(job["verification"].as_str().unwrap().contains("all match"));
    for p in job["phases"].as_array().unwrap() {
        assert_eq!(p["state"], "done", "{job}");
    }
    let chain = [Filter::Mean { k: 3 }, Filter::SobelX];
    let want = reference::apply_chain(&img, &chain, BorderMode::Replicate)
        .unwrap()
        .to_pixels_with(OutputMapping::Abs);
    let got = st.call("GET", &format!("/api/jobs/{whole}/result.png"), &[], b"");
    assert_eq!(got.status, 200);
    assert_eq!(
        decode(&got.body),
        want,
        "every pixel as the plaintext chain"
    );
    let dl = st.call("GET", &format!("/api/jobs/{whole}/download"), &[], b"");
    assert!(
        dl.head.contains("attachment; filename=\"t-private.png\""),
        "{}",
        dl.head
    );
    assert_eq!(dl.body, got.body);
    let orig = st.call("GET", &format!("/api/jobs/{whole}/original.png"), &[], b"");
    assert_eq!(decode(&orig.body), img);
    let view = st.call(
        "GET",
        &format!("/api/jobs/{whole}/server-view.png"),
        &[],
        b"",
    );
    assert_eq!(decode(&view.body).width(), 23);

    let job = st.wait(&part);
    assert_eq!(job["state"], "done", "{job}");
    let filtered = reference::apply_chain(&img, &[Filter::Mean { k: 5 }], BorderMode::Replicate)
        .unwrap()
        .to_pixels_with(OutputMapping::Saturate);
    let got = decode(
        &st.call("GET", &format!("/api/jobs/{part}/result.png"), &[], b"")
            .body,
    );
    let inside = |x: usize, y: usize| {
        (2..7).contains(&x) && (3..7).contains(&y) || (20..23).contains(&x) && (10..17).contains(&y)
    };
    for y in 0..17 {
        for x in 0..23 {
            let src = if inside(x, y) { &filtered } else { &img };
            for c in 0..3 {
                assert_eq!(got.get(x, y, c), src.get(x, y, c), "({x}, {y}) channel {c}");
            }
        }
    }
    assert_ne!(got, img);
    assert_ne!(got, filtered);

    // A finished job can be removed; then it is gone.
    assert_eq!(
        st.call("DELETE", &format!("/api/jobs/{part}"), &[], b"")
            .status,
        204
    );
    assert_eq!(
        st.call("GET", &format!("/api/jobs/{part}/result.png"), &[], b"")
            .status,
        404
    );
    srv.stop().unwrap();
}

#[test]
fn bad_requests_are_refused_in_words() {
    let srv = server(None);
    let st = TestStudio::start(&srv, None);
    let a = st.call(
        "POST",
        "/api/photos?name=x.png",
        &[],
        b"not an image at all",
    );
    assert_eq!(a.status, 400);
    assert!(
        a.value()["error"]
            .as_str()
            .unwrap()
            .contains("Choose a PNG or JPEG")
    );
    let photo = st.photo(&image(5, 4, 1));
    for (form, says) in [
        (
            serde_json::json!({ "photo": photo, "filters": [{ "name": "mean" }], "key_bits": 1024 }),
            "2048 or 3072",
        ),
        (
            serde_json::json!({ "photo": photo, "filters": [{ "name": "nope" }], "key_bits": 2048 }),
            "no filter named",
        ),
        (
            serde_json::json!({ "photo": photo, "filters": [{ "name": "sharpen", "params": { "k": "5" } }], "key_bits": 2048 }),
            "takes no parameter",
        ),
        (
            serde_json::json!({ "photo": photo, "filters": [{ "name": "mean", "params": { "kernel": "/etc/passwd" } }], "key_bits": 2048 }),
            "takes no parameter",
        ),
        (
            serde_json::json!({ "photo": photo, "filters": [], "key_bits": 2048 }),
            "choose 1 to",
        ),
        (
            serde_json::json!({ "photo": photo, "filters": [{ "name": "mean", "params": { "k": "4" } }], "key_bits": 2048 }),
            "odd",
        ),
    ] {
        let a = st.json("POST", "/api/jobs", &form);
        assert_eq!(a.status, 400, "{form}: {}", a.text());
        let e = a.value()["error"].as_str().unwrap().to_string();
        assert!(e.contains(says), "{form}: {e}");
    }
    let a = st.json(
        "POST",
        "/api/jobs",
        &serde_json::json!({ "photo": "0000", "filters": [{ "name": "mean" }], "key_bits": 2048 }),
    );
    assert_eq!(a.status, 409);
    assert!(a.text().contains("choose it again"));
    srv.stop().unwrap();
}

/// The studio's token was given for its server: switching the page to
/// another URL without typing a token sends that server none.
#[test]
fn a_token_never_follows_a_new_server_url() {
    let mut tokens = TokenFile::default();
    let alice = tokens.create("alice", 1_764_000_000).unwrap();
    let srv = server(Some(tokens));
    let st = TestStudio::start(&srv, Some(alice.clone()));
    // Another "server": records the first request's headers, answers 503.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_url = format!("http://{}", other.local_addr().unwrap());
    let seen = std::thread::spawn(move || {
        let (mut c, _) = other.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
            head.push(b[0]);
        }
        let _ = c.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    });
    let a = st.json(
        "POST",
        "/api/connection",
        &serde_json::json!({ "server": other_url }),
    );
    assert_ne!(a.status, 200, "{}", a.text());
    let head = seen.join().unwrap();
    assert!(head.starts_with("get /v1/info"), "{head}");
    assert!(
        !head.contains("authorization") && !head.contains(&alice[3..]),
        "the studio's token went to another server: {head}"
    );
    srv.stop().unwrap();
}

#[test]
fn a_wrong_token_is_told_in_words() {
    let mut tokens = TokenFile::default();
    let right = tokens.create("alice", 1_764_000_000).unwrap();
    let srv = server(Some(tokens));
    let st = TestStudio::start(&srv, Some("he_wrong".into()));
    let url = srv.url();
    let a = st.json(
        "POST",
        "/api/connection",
        &serde_json::json!({ "server": url }),
    );
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(a.text().contains("refused the token"), "{}", a.text());
    let photo = st.photo(&image(6, 5, 3));
    let form =
        serde_json::json!({ "photo": photo, "filters": [{ "name": "mean" }], "key_bits": 2048 });
    let id = st.json("POST", "/api/jobs", &form).value()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = st.wait(&id);
    assert_eq!(job["state"], "failed");
    assert!(
        job["error"].as_str().unwrap().contains("refused the token"),
        "{job}"
    );
    // The right token, checked, and the next job goes through.
    let a = st.json(
        "POST",
        "/api/connection",
        &serde_json::json!({ "server": url, "token": right }),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let id = st.json("POST", "/api/jobs", &form).value()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(st.wait(&id)["state"], "done");
    // A server that is not there.
    let a = st.json(
        "POST",
        "/api/connection",
        &serde_json::json!({ "server": "http://127.0.0.1:9" }),
    );
    assert_eq!(a.status, 502);
    assert!(
        a.text().contains("Could not reach the server"),
        "{}",
        a.text()
    );
    srv.stop().unwrap();
}

#[test]
fn progress_is_pushed_and_jobs_can_be_cancelled() {
    let srv = server(None);
    let st = TestStudio::start(&srv, None);
    // The event stream needs the secret like every route.
    let host = st.guard.host().to_string();
    assert_eq!(
        http(st.addr, "GET", "/api/events", &[("Host", &host)], b"").status,
        403
    );
    // A larger photo first, so that the last job is surely still queued
    // when it is cancelled.
    let big = st.photo(&image(192, 160, 4));
    let photo = st.photo(&image(9, 7, 5));
    let form = |p: &str| serde_json::json!({ "photo": p, "filters": [{ "name": "mean" }], "key_bits": 2048 });
    let ids: Vec<String> = [&big, &photo, &photo]
        .iter()
        .map(|p| {
            st.json("POST", "/api/jobs", &form(p)).value()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // The last one is still queued behind the others: cancel it.
    assert_eq!(
        st.call("DELETE", &format!("/api/jobs/{}", ids[2]), &[], b"")
            .status,
        204
    );
    let job = st.wait(&ids[2]);
    assert_eq!(job["state"], "cancelled", "{job}");
    assert_eq!(
        st.call("GET", &format!("/api/jobs/{}/result.png", ids[2]), &[], b"")
            .status,
        404
    );
    assert_eq!(st.wait(&ids[0])["state"], "done");
    assert_eq!(st.wait(&ids[1])["state"], "done");
    assert_eq!(st.call("DELETE", "/api/jobs/nope", &[], b"").status, 404);

    // Server-sent events: the job list, at once.
    let mut s = TcpStream::connect(st.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "GET /api/events HTTP/1.1\r\nHost: {host}\r\nCookie: {}\r\n\r\n",
        st.guard.cookie()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(&ids[1]) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    assert!(text.contains("event: jobs"), "{text}");
    srv.stop().unwrap();
}

/// A photo whose single upload is over the server's limit goes up in
/// tiles, each within it, and comes back exact.
#[test]
fn a_photo_over_the_upload_limit_goes_through_in_tiles() {
    const LIMIT: usize = 64 << 10;
    let img = image(64, 96, 11);
    let chain = [Filter::Mean { k: 3 }];
    let key = Keypair::generate_insecure_for_tests(512).unwrap();
    let whole = whole_upload(&img, &chain, &key);
    assert!(
        whole > LIMIT,
        "the test needs a photo over the limit: {whole}"
    );
    let srv = small_server(LIMIT);
    let st = TestStudio::start(&srv, None);
    let photo = st.photo(&img);
    let a = st.json(
        "POST",
        "/api/jobs",
        &serde_json::json!({ "photo": photo, "filters": [{ "name": "mean" }], "key_bits": 2048 }),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    let id = a.value()["id"].as_str().unwrap().to_string();
    let job = st.wait(&id);
    assert_eq!(job["state"], "done", "{job}");
    let verification = job["verification"].as_str().unwrap();
    assert!(verification.contains("all match"), "{verification}");
    assert!(!verification.contains("each of 1 tile"), "{verification}");
    for p in job["phases"].as_array().unwrap() {
        assert_eq!(p["state"], "done", "{job}");
    }
    let upload = &job["phases"][2];
    assert_eq!(upload["name"], "upload");
    assert!(
        upload["done"].as_u64().unwrap() as usize >= whole - 4096,
        "{job}"
    );
    let want = reference::apply_chain(&img, &chain, BorderMode::Replicate)
        .unwrap()
        .to_pixels_with(OutputMapping::Saturate);
    let got = st.call("GET", &format!("/api/jobs/{id}/result.png"), &[], b"");
    assert_eq!(got.status, 200);
    assert_eq!(
        decode(&got.body),
        want,
        "every pixel as the plaintext chain"
    );
    let seen = st.call("GET", &format!("/api/jobs/{id}/server-view.png"), &[], b"");
    assert_eq!(seen.status, 200, "{}", seen.text());
    assert_eq!(decode(&seen.body).width(), img.width());
    assert_eq!(jobs_stored(&srv), 0, "the server's job is deleted");
    srv.stop().unwrap();
}

/// Cancelling a running multi-tile job stops it between tiles: the page's
/// job is cancelled, its decryption stopped short, and the server's job
/// deleted.
#[test]
fn a_cancelled_tiled_job_stops_and_is_deleted_on_the_server() {
    let srv = small_server(48 << 10);
    let st = TestStudio::start(&srv, None);
    let photo = st.photo(&image(64, 2400, 12)); // 240 tiles
    let a = st.json(
        "POST",
        "/api/jobs",
        &serde_json::json!({ "photo": photo, "filters": [{ "name": "mean" }], "key_bits": 2048 }),
    );
    let id = a.value()["id"].as_str().unwrap().to_string();
    // Running, the server's job made, and some tiles decrypted already.
    let t = Instant::now();
    loop {
        let jobs = st.call("GET", "/api/jobs", &[], b"").value();
        let job = &jobs["jobs"][0];
        assert!(
            matches!(job["state"].as_str(), Some("queued" | "running")),
            "{job}"
        );
        if job["phases"][5]["done"].as_u64().unwrap() > 0 && jobs_stored(&srv) == 1 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "{job}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        st.call("DELETE", &format!("/api/jobs/{id}"), &[], b"")
            .status,
        204
    );
    // The server's job goes soon (the tile in flight ends first).
    let t = Instant::now();
    while jobs_stored(&srv) != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the server's job stays"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let job = st.wait(&id);
    assert_eq!(job["state"], "cancelled", "{job}");
    // The worker stopped short of the end, and is free for the next job.
    let small = st.photo(&image(9, 7, 13));
    let a = st.json(
        "POST",
        "/api/jobs",
        &serde_json::json!({ "photo": small, "filters": [{ "name": "mean" }], "key_bits": 2048 }),
    );
    let next = a.value()["id"].as_str().unwrap().to_string();
    assert_eq!(st.wait(&next)["state"], "done");
    let jobs = st.call("GET", "/api/jobs", &[], b"").value();
    let cancelled = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id.as_str())
        .unwrap();
    let decrypt = &cancelled["phases"][5];
    assert_eq!(decrypt["state"], "stopped", "{cancelled}");
    assert!(
        decrypt["done"].as_u64().unwrap() < decrypt["total"].as_u64().unwrap(),
        "{cancelled}"
    );
    srv.stop().unwrap();
}
