//! Helpers shared by the integration tests: a server on a free loopback
//! port, small keys, deterministic images.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use enc_image::{BorderMode, ColorLayout, EncryptedImage, NoProgress, PixelImage};
use he_filter::Filter;
use he_service::server::{Config, ServerHandle};
use he_service::wire::JobSpec;
use paillier::Keypair;

/// A server on 127.0.0.1 and a free port, with `tweak` applied to the defaults.
pub fn server(tweak: impl FnOnce(&mut Config)) -> ServerHandle {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        workers: std::num::NonZeroUsize::new(2),
        ..Config::default()
    };
    tweak(&mut config);
    ServerHandle::start(config).expect("the server starts")
}

/// A 512-bit key: fast, and insecure (tests only).
pub fn key() -> Keypair {
    Keypair::generate_insecure_for_tests(512).expect("a test key")
}

/// A deterministic pseudo-random image (xorshift), so failures reproduce.
pub fn image(w: usize, h: usize, color: ColorLayout, seed: u64) -> PixelImage {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..w * h * color.channels())
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect();
    PixelImage::new(w, h, color, data).expect("an image")
}

/// Encrypts `img` for `spec` with the options the chain needs.
pub fn encrypt(
    img: &PixelImage,
    kp: &Keypair,
    spec: &JobSpec,
    border: BorderMode,
) -> EncryptedImage {
    let opts = spec
        .encrypt_options()
        .expect("options for the chain")
        .border(border);
    EncryptedImage::encrypt(img, kp.private_key(), &opts, &NoProgress).expect("encryption")
}

pub fn spec(filters: Vec<Filter>) -> JobSpec {
    JobSpec::new(filters)
}

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Reads one HTTP/1.1 request from `conn` for the tests' fake servers:
/// its request line (lower case) and its body (by `Content-Length`),
/// answering `Expect: 100-continue`. `None` when the peer sent nothing.
pub fn read_request(conn: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push(line.to_ascii_lowercase());
    }
    let request = head.first().cloned()?;
    let header = |name: &str| {
        head.iter()
            .find_map(|h| h.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    if header("expect:").as_deref() == Some("100-continue") {
        let _ = conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let len: usize = header("content-length:").map_or(0, |v| v.parse().unwrap_or(0));
    let mut body = vec![0u8; len];
    let _ = reader.read_exact(&mut body);
    Some((request, body))
}
