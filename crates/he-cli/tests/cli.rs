//! The `he` binary as a person runs it: keys, encrypt, filter, decrypt,
//! with every check, on a small image and 2048-bit keys.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn he(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_he"))
        .args(args)
        .output()
        .expect("run he")
}

fn ok(args: &[&str]) -> String {
    let out = he(args);
    assert!(
        out.status.success(),
        "he {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("he-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small test image (the bundled photo, resized) written as PNG.
fn small_photo(dir: &Path) -> PathBuf {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/astronaut-256.png");
    let p = dir.join("photo.png");
    image::open(src)
        .unwrap()
        .resize_exact(12, 9, image::imageops::FilterType::Triangle)
        .save(&p)
        .unwrap();
    p
}

#[test]
fn keygen_encrypt_filter_decrypt_checks_every_step() {
    let d = scratch("flow");
    let photo = small_photo(&d);
    let key = d.join("key");
    ok(&["keygen", "-o", s(&key), "--key-bits", "2048"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Never overwritten without --force.
    let again = he(&["keygen", "-o", s(&key), "--key-bits", "2048"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let enc = d.join("photo.hej");
    ok(&[
        "encrypt",
        s(&photo),
        "--key",
        s(&key),
        "-o",
        s(&enc),
        "--filter",
        "gaussian",
        "-k",
        "5",
        "--filter",
        "sobel-x",
    ]);
    let filtered = d.join("filtered.hej");
    ok(&["filter", s(&enc), "-o", s(&filtered)]);
    // Another chain than the one encrypted for is refused, with the reason.
    let other = he(&[
        "filter",
        s(&enc),
        "-o",
        s(&d.join("x.hej")),
        "--filter",
        "sharpen",
    ]);
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stderr).contains("encrypted for"));

    let out = d.join("out.png");
    let said = ok(&[
        "decrypt",
        s(&filtered),
        "--key",
        s(&key),
        "-o",
        s(&out),
        "--input",
        s(&photo),
        "--map",
        "abs",
    ]);
    assert!(said.contains("every value"), "{said}");
    assert!(out.exists());

    // A result decrypted as it was encrypted: not filtered yet.
    let e = he(&[
        "decrypt",
        s(&enc),
        "--key",
        s(&key),
        "-o",
        s(&d.join("raw.png")),
    ]);
    assert_eq!(e.status.code(), Some(1));
    assert!(!d.join("raw.png").exists());

    // Another key: refused, nothing written.
    let key2 = d.join("key2");
    ok(&["keygen", "-o", s(&key2), "--key-bits", "2048"]);
    let out2 = d.join("out2.png");
    let e = he(&["decrypt", s(&filtered), "--key", s(&key2), "-o", s(&out2)]);
    assert_eq!(e.status.code(), Some(1));
    assert!(!out2.exists());

    // Another image given as --input: refused, nothing written.
    let not_it = d.join("other.png");
    image::open(&photo).unwrap().fliph().save(&not_it).unwrap();
    let e = he(&[
        "decrypt",
        s(&filtered),
        "--key",
        s(&key),
        "-o",
        s(&out2),
        "--input",
        s(&not_it),
    ]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("not the image"));
    assert!(!out2.exists());

    // A damaged file: refused by its digest, nothing written.
    let mut bytes = std::fs::read(&filtered).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let damaged = d.join("damaged.hej");
    std::fs::write(&damaged, &bytes).unwrap();
    let e = he(&["decrypt", s(&damaged), "--key", s(&key), "-o", s(&out2)]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("damaged"));
    assert!(!out2.exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn small_keys_are_refused() {
    let d = scratch("small");
    let e = he(&["keygen", "-o", s(&d.join("k")), "--key-bits", "1024"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(!d.join("k").exists());
    let e = he(&["blur", "--key-bits", "512", "-o", s(&d.join("b.png"))]);
    assert_eq!(e.status.code(), Some(1));
    assert!(!d.join("b.png").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_usage_exits_2_and_help_lists_every_command() {
    assert_eq!(he(&["encrypt"]).status.code(), Some(2));
    assert_eq!(he(&["nope"]).status.code(), Some(2));
    let help = ok(&["--help"]);
    for c in [
        "keygen",
        "encrypt",
        "filter",
        "decrypt",
        "blur",
        "serve",
        "submit",
        "token",
        "loadtest",
        "gallery",
        "preview",
        "studio",
        "filters",
        "completions",
        "man",
    ] {
        assert!(help.contains(c), "{c} missing from --help");
    }
    let list = ok(&["filters"]);
    for name in [
        "mean",
        "gaussian",
        "sobel-x",
        "separable",
        "contrast",
        "grey",
    ] {
        assert!(list.contains(name), "{name} missing from he filters");
    }
    assert!(ok(&["completions", "bash"]).contains("_he()"));
    let d = scratch("man");
    ok(&["man", "-o", s(&d)]);
    let page = std::fs::read_to_string(d.join("he-encrypt.1")).unwrap();
    assert!(page.contains(".TH"), "{page}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn inputs_that_are_not_regular_files_are_refused_quickly() {
    let d = scratch("fifo");
    #[cfg(unix)]
    {
        let e = he(&[
            "blur",
            "/dev/zero",
            "--key-bits",
            "2048",
            "-o",
            s(&d.join("z.png")),
        ]);
        assert_eq!(e.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&e.stderr).contains("not a regular file"));
        let e = he(&[
            "blur",
            "--key-bits",
            "2048",
            "--filter",
            "mean",
            "--kernel",
            "/dev/zero",
            "-o",
            s(&d.join("z.png")),
        ]);
        assert_eq!(e.status.code(), Some(1));
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_device_with_the_public_key_only_encrypts_in_either_mode() {
    let d = scratch("public");
    let photo = small_photo(&d);
    let (key, public) = (d.join("key"), d.join("key.pub"));
    ok(&[
        "keygen",
        "-o",
        s(&key),
        "--key-bits",
        "2048",
        "--public",
        s(&public),
    ]);
    // --short-exponent is a choice of the public-key mode only.
    let e = he(&[
        "encrypt",
        s(&photo),
        "--key",
        s(&key),
        "--short-exponent",
        "-o",
        s(&d.join("x")),
    ]);
    assert_eq!(e.status.code(), Some(2));
    for (name, extra) in [("textbook", &[][..]), ("short", &["--short-exponent"][..])] {
        let enc = d.join(format!("{name}.hej"));
        let mut args = vec![
            "encrypt",
            s(&photo),
            "--public-key",
            s(&public),
            "-o",
            s(&enc),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--filter", "sharpen"]);
        ok(&args);
        let filtered = d.join(format!("{name}-f.hej"));
        ok(&["filter", s(&enc), "-o", s(&filtered)]);
        let out = d.join(format!("{name}.png"));
        // Made with the public key only, the file cannot prove its chain:
        // the key holder restates it, and another one is refused.
        let e = he(&["decrypt", s(&filtered), "--key", s(&key), "-o", s(&out)]);
        assert_eq!(e.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&e.stderr).contains("restate"));
        let e = he(&[
            "decrypt",
            s(&filtered),
            "--key",
            s(&key),
            "-o",
            s(&out),
            "--filter",
            "emboss",
        ]);
        assert_eq!(e.status.code(), Some(3));
        assert!(!out.exists());
        let said = ok(&[
            "decrypt",
            s(&filtered),
            "--key",
            s(&key),
            "-o",
            s(&out),
            "--input",
            s(&photo),
            "--filter",
            "sharpen",
        ]);
        assert!(said.contains("every value"), "{said}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn tokens_are_created_listed_and_revoked_and_only_hashes_are_stored() {
    let d = scratch("tokens");
    let file = d.join("tokens.json");
    let token = ok(&["token", "create", "alice", "--tokens", s(&file)]);
    let token = token.trim();
    assert!(token.starts_with("he_") && token.len() == 67, "{token}");
    ok(&["token", "create", "bob", "--tokens", s(&file)]);
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(&token[3..]), "the token itself was stored");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the tokens file is readable by others");
    }
    // A name twice is refused, and the file is unchanged.
    assert_eq!(
        he(&["token", "create", "alice", "--tokens", s(&file)])
            .status
            .code(),
        Some(1)
    );
    let list = ok(&["token", "list", "--tokens", s(&file)]);
    assert!(list.contains("alice") && list.contains("bob"), "{list}");
    assert!(
        list.contains("UTC") && !list.contains(&token[3..]),
        "{list}"
    );
    ok(&["token", "revoke", "alice", "--tokens", s(&file)]);
    let list = ok(&["token", "list", "--tokens", s(&file)]);
    assert!(!list.contains("alice") && list.contains("bob"), "{list}");
    assert_eq!(
        he(&["token", "revoke", "alice", "--tokens", s(&file)])
            .status
            .code(),
        Some(1)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn serve_refuses_a_public_address_without_tokens() {
    let out = he(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without API tokens") && err.contains("--anonymous"),
        "{err}"
    );
}

#[test]
fn submit_sends_its_token_and_a_wrong_one_is_refused_in_words() {
    let d = scratch("submit-token");
    let file = d.join("tokens.json");
    let token = ok(&["token", "create", "alice", "--tokens", s(&file)]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_he"))
        .args(["serve", "--listen", &listen, "--tokens", s(&file)])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(t.elapsed().as_secs() < 30, "he serve did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let photo = small_photo(&d);
    let submit = |token: &str, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_he"))
            .args(["submit", s(&photo), "--server", &url, "--key-bits", "2048"])
            .args(["-o", s(&d.join(out))])
            .env("HE_TOKEN", token)
            .output()
            .unwrap()
    };
    let wrong = submit("he_0000", "wrong.png");
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{err}");
    assert!(err.contains("the server refused the token"), "{err}");
    assert!(!d.join("wrong.png").exists());
    let right = submit(token.trim(), "right.png");
    // `he loadtest --server` loads this running service with the token.
    let loadtest = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_he"))
            .args([
                "loadtest",
                "--server",
                &url,
                "--clients",
                "2",
                "--requests",
                "1",
            ])
            .args(["--size", "8"])
            .env("HE_TOKEN", token)
            .output()
            .unwrap()
    };
    let refused = loadtest("he_0000");
    let load = loadtest(token.trim());
    server.kill().unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("the server refused the token"), "{err}");
    let out = String::from_utf8_lossy(&load.stdout);
    assert!(
        load.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        out.contains(&format!("server on {url}, 2 clients x 1 requests")),
        "{out}"
    );
    assert!(out.contains("checked: 2 of 2 results decrypt"), "{out}");
    let _ = server.wait();
    assert!(
        right.status.success(),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );
    assert!(d.join("right.png").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn blur_tiled_and_untiled_write_the_same_exact_picture() {
    let d = scratch("blur-tiles");
    let photo = small_photo(&d);
    let run = |name: &str, extra: &[&str]| {
        let out = d.join(name);
        let mut args = vec![
            "blur",
            s(&photo),
            "--key-bits",
            "2048",
            "--border",
            "reflect101",
            "--filter",
            "gaussian",
            "-k",
            "5",
            "-o",
            s(&out),
        ];
        args.extend_from_slice(extra);
        let text = ok(&args);
        assert!(text.contains(" 0 of "), "{text}");
        (text, image::open(&out).unwrap().to_rgb8())
    };
    // 9 rows in tiles of 2: five tiles, each with 2 halo rows on each side.
    let (text, tiled) = run("tiled.png", &["--tile-rows", "2"]);
    assert!(text.contains("5 tiles of 2 rows"), "{text}");
    let (text, whole) = run("whole.png", &["--untiled"]);
    assert!(text.contains("decrypt (client)"), "{text}");
    assert_eq!(tiled, whole);
    // Tiles need the packed layout.
    let e = he(&[
        "blur",
        "--unpacked",
        "--tile-rows",
        "2",
        "-o",
        s(&d.join("x.png")),
    ]);
    assert_eq!(e.status.code(), Some(2));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn keygen_never_writes_the_public_key_over_the_key_pair() {
    let d = scratch("keygen-same");
    let key = d.join("k");
    let e = he(&[
        "keygen",
        "-o",
        s(&key),
        "--public",
        s(&key),
        "--key-bits",
        "2048",
    ]);
    assert_eq!(e.status.code(), Some(1));
    ok(&["keygen", "-o", s(&key), "--key-bits", "2048"]);
    let before = std::fs::read(&key).unwrap();
    let e = he(&[
        "keygen",
        "-o",
        s(&key),
        "--public",
        s(&key),
        "--key-bits",
        "2048",
        "--force",
    ]);
    assert_eq!(e.status.code(), Some(1));
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the key pair was replaced"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// `jpeg` with an EXIF block (orientation 1, and a maker string) inserted
/// after its start marker, as a phone writes it.
fn with_exif(jpeg: &[u8], maker: &[u8]) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&[1, 0, 0, 0]); // upright
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    tiff.extend_from_slice(maker);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn jpeg_outputs_take_a_quality_and_carry_no_input_metadata() {
    let d = scratch("quality");
    let png = small_photo(&d);
    let mut jpeg = Vec::new();
    image::open(&png)
        .unwrap()
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let photo = d.join("phone.jpg");
    let maker = b"SECRET-PHONE-SERIAL-4711";
    std::fs::write(&photo, with_exif(&jpeg, maker)).unwrap();
    let blur = |out: &Path, quality: &str| {
        ok(&[
            "blur",
            s(&photo),
            "--key-bits",
            "2048",
            "--tile-rows",
            "4",
            "-o",
            s(out),
            "--quality",
            quality,
        ]);
        std::fs::read(out).unwrap()
    };
    let (lo, hi) = (
        blur(&d.join("lo.jpg"), "5"),
        blur(&d.join("hi.jpeg"), "100"),
    );
    for bytes in [&lo, &hi] {
        assert_eq!(
            image::guess_format(bytes).unwrap(),
            image::ImageFormat::Jpeg
        );
        assert!(!contains(bytes, b"Exif\0\0"), "EXIF copied to the output");
        assert!(
            !contains(bytes, maker),
            "the maker string reached the output"
        );
    }
    assert!(lo.len() < hi.len(), "{} !< {}", lo.len(), hi.len());
    // A PNG output takes no quality: refused before any work.
    let e = he(&[
        "blur",
        s(&photo),
        "-o",
        s(&d.join("x.png")),
        "--quality",
        "80",
    ]);
    assert_eq!(e.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("JPEG output only"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    assert!(!d.join("x.png").exists());
    let e = he(&[
        "decrypt",
        s(&d.join("none.he")),
        "--key",
        s(&d.join("none.key")),
        "-o",
        s(&d.join("y.png")),
        "--quality",
        "80",
    ]);
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("JPEG output only"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    // Out of range is bad usage.
    let e = he(&["blur", "-o", s(&d.join("z.jpg")), "--quality", "0"]);
    assert_eq!(e.status.code(), Some(2));
    std::fs::remove_dir_all(&d).unwrap();
}

/// The bundled photo resized to `w`x`h`, written as PNG.
fn photo_of(dir: &Path, w: u32, h: u32) -> PathBuf {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/astronaut-256.png");
    let p = dir.join(format!("photo-{w}x{h}.png"));
    image::open(src)
        .unwrap()
        .resize_exact(w, h, image::imageops::FilterType::Triangle)
        .save(&p)
        .unwrap();
    p
}

/// The number after `prefix` in `text`.
fn number_after(text: &str, prefix: &str) -> u64 {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
        + prefix.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
#[cfg(unix)]
fn a_killed_blur_resumes_with_the_remaining_tiles_only_and_exactly() {
    let d = scratch("resume");
    let photo = photo_of(&d, 48, 80);
    let key = d.join("key");
    ok(&["keygen", "-o", s(&key), "--key-bits", "2048"]);
    let args_with = |out: &Path, key: &Path| -> Vec<String> {
        [
            "blur",
            s(&photo),
            "--key",
            s(key),
            "--tile-rows",
            "1",
            "--threads",
            "1",
            "-o",
            s(out),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let args = |out: &Path| args_with(out, &key);
    // An uninterrupted run: the result to match and the work of 80 tiles.
    let whole = d.join("whole.png");
    let text = ok(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    let full = number_after(&text, "ciphertexts: ");
    assert!(
        !d.join("whole.png.he-partial").exists(),
        "state left behind"
    );
    // The same run, killed (SIGKILL) once a few tiles are saved.
    let out = d.join("out.png");
    let state = d.join("out.png.he-partial");
    let mut child = Command::new(env!("CARGO_BIN_EXE_he"))
        .args(args(&out))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_once_tiles_saved(&mut child, &state, 3);
    assert!(!out.exists());
    let kept = std::fs::read(&state).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the state holds decrypted pixels");
    }
    // Runs that differ, or cannot resume, are refused and change nothing.
    let refused = |extra: &[&str], want: &str| {
        let mut a = args(&out);
        a.extend(extra.iter().map(|s| s.to_string()));
        let e = he(&a.iter().map(String::as_str).collect::<Vec<_>>());
        let err = String::from_utf8_lossy(&e.stderr);
        assert_eq!(e.status.code(), Some(1), "{err}");
        assert!(err.contains(want) && err.contains("--restart"), "{err}");
        assert_eq!(std::fs::read(&state).unwrap(), kept);
    };
    refused(&["--filter", "mean", "-k", "5"], "filter chain");
    refused(&["--border", "reflect101"], "border");
    let e = he(&[
        "blur",
        s(&photo),
        "--key",
        s(&key),
        "--untiled",
        "-o",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(
        err.contains("not tiled") && err.contains("--restart"),
        "{err}"
    );
    let other = d.join("other-key");
    ok(&["keygen", "-o", s(&other), "--key-bits", "2048"]);
    let e = he(&args_with(&out, &other)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(
        err.contains("the key is") && err.contains("--restart"),
        "{err}"
    );
    let no_key: Vec<&str> = vec!["blur", s(&photo), "--tile-rows", "1", "-o", s(&out)];
    let e = he(&no_key);
    assert!(String::from_utf8_lossy(&e.stderr).contains("keeps no key"));
    // A changed byte anywhere is refused.
    for at in [30, kept.len() / 2, kept.len() - 1] {
        let mut bad = kept.clone();
        bad[at] ^= 0x20;
        std::fs::write(&state, &bad).unwrap();
        let e = he(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(e.status.code(), Some(1), "byte {at} changed, accepted");
        assert!(String::from_utf8_lossy(&e.stderr).contains("--restart"));
    }
    std::fs::write(&state, &kept).unwrap();
    // The same command resumes: only the remaining tiles are done, and the
    // result is the uninterrupted one, exactly.
    let text = ok(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    let resumed = number_after(&text, "resuming: ");
    assert!((2..80).contains(&resumed), "{text}");
    let rest = number_after(&text, "ciphertexts: ");
    assert_eq!(rest * 80, full * (80 - resumed), "{text}");
    assert!(text.contains(" 0 of "), "{text}");
    assert_eq!(
        image::open(&out).unwrap().to_rgb8(),
        image::open(&whole).unwrap().to_rgb8()
    );
    assert!(!state.exists(), "the state outlived the output");
    // --restart starts over.
    let mut a = args(&d.join("again.png"));
    a.push("--restart".into());
    let text = ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(number_after(&text, "ciphertexts: "), full);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn progress_without_a_terminal_is_a_few_lines_and_quiet_is_none() {
    let d = scratch("progress");
    let photo = photo_of(&d, 40, 60);
    let run = |out: &str, extra: &[&str]| {
        let out = d.join(out);
        let mut args = vec![
            "blur",
            s(&photo),
            "--key-bits",
            "2048",
            "--tile-rows",
            "1",
            "-o",
            s(&out),
        ];
        args.extend_from_slice(extra);
        let o = he(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // Standard error is a pipe here: 60 tiles give a line at the start and
    // one per tenth, not one per tile.
    let err = run("a.png", &[]);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("progress:")).collect();
    assert!((3..=12).contains(&lines.len()), "{err}");
    assert!(lines[0].contains("60 of 60 tiles to do"), "{err}");
    let last = lines[lines.len() - 1];
    assert!(
        last.contains("60/60 tiles (100%)") && last.contains("P/s"),
        "{err}"
    );
    assert!(lines[1..].iter().all(|l| l.contains("tiles (")), "{err}");
    assert!(
        !err.contains('\r') && !err.contains('\u{1b}'),
        "bar drawn to a pipe: {err:?}"
    );
    // --quiet: nothing at all on standard error.
    assert_eq!(run("b.png", &["--quiet"]), "");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn submit_in_tiles_and_in_one_upload_write_the_same_picture() {
    submit_tiled_and_single("submit-tiles", &[]);
}

#[test]
fn submit_runs_tiled_against_a_redis_backed_server() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    submit_tiled_and_single("submit-redis", &["--store", &redis.url, "--role", "all"]);
}

/// A `redis-server` of the test's own on a free loopback port, no
/// persistence, killed when dropped.
struct TestRedis {
    _child: Served,
    url: String,
}

impl TestRedis {
    /// Starts one, or `None` (after saying why) if `redis-server` is not
    /// installed and `HE_REQUIRE_REDIS` is unset.
    fn start() -> Option<TestRedis> {
        let Ok(found) = Command::new("redis-server")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
        else {
            assert!(
                std::env::var_os("HE_REQUIRE_REDIS").is_none(),
                "HE_REQUIRE_REDIS is set but redis-server is not on the PATH"
            );
            eprintln!(
                "\n!!!!!!!! SKIPPED: redis-server is not on the PATH, he submit against the \
                 Redis store is NOT tested (set HE_REQUIRE_REDIS=1 to make this a failure) \
                 !!!!!!!!\n"
            );
            return None;
        };
        assert!(found.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Served(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(std::env::temp_dir())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let t = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed().as_secs() < 10, "redis-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(TestRedis {
            _child: child,
            url: format!("redis://127.0.0.1:{port}/0"),
        })
    }
}

/// `he submit` in tiles and in one upload against `he serve` (with
/// `serve_args`) write the same picture, the tiled run checked in full.
fn submit_tiled_and_single(name: &str, serve_args: &[&str]) {
    let d = scratch(name);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_he"))
        .args(["serve", "--listen", &listen])
        .args(serve_args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(t.elapsed().as_secs() < 30, "he serve did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let photo = small_photo(&d);
    let key = d.join("key.json");
    let submit = |out: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_he"))
            .args(["submit", s(&photo), "--server", &url, "--key-bits", "2048"])
            .args(["--key", s(&key), "-o", s(&d.join(out))])
            .args(extra)
            .output()
            .unwrap()
    };
    let tiled = submit("tiled.png", &["--tile-rows", "3", "--full-check"]);
    let single = submit("single.png", &["--single-upload"]);
    server.kill().unwrap();
    let _ = server.wait();
    for out in [&tiled, &single] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let said = String::from_utf8_lossy(&tiled.stdout);
    assert!(said.contains("tiles of 3 rows"), "{said}");
    assert!(!said.contains("takes no tiled jobs"), "{said}");
    assert!(
        said.contains("0 of") && said.contains("values differ"),
        "{said}"
    );
    let (a, b) = (
        image::open(d.join("tiled.png")).unwrap(),
        image::open(d.join("single.png")).unwrap(),
    );
    assert_eq!(a.as_bytes(), b.as_bytes());
    std::fs::remove_dir_all(&d).unwrap();
}

/// The tiles saved in a resume state file (none if it is not there).
fn saved_tiles(p: &Path) -> usize {
    std::fs::read(p)
        .map(|b| b.windows(8).filter(|w| w == b"HETILE\0\0").count())
        .unwrap_or(0)
}

/// Kills `child` (SIGKILL) once its resume state `state` holds `n` tiles.
/// The child is paused (SIGSTOP) while they are counted, so it cannot
/// finish in between, however fast the machine.
#[cfg(unix)]
fn kill_once_tiles_saved(child: &mut std::process::Child, state: &Path, n: usize) {
    let pid = child.id().to_string();
    let signal = |sig: &str| {
        let st = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(st.success(), "kill {sig} {pid}");
    };
    let t = std::time::Instant::now();
    loop {
        signal("-STOP");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        if saved_tiles(state) >= n {
            break;
        }
        signal("-CONT");
        assert!(t.elapsed().as_secs() < 120, "no tile saved in two minutes");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A child process killed when dropped, a failed test included.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[cfg(unix)]
fn a_killed_submit_resumes_on_its_server_job_and_writes_the_same_picture() {
    let d = scratch("submit-resume");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let server = Served(
        Command::new(env!("CARGO_BIN_EXE_he"))
            .args(["serve", "--listen", &listen])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://{listen}");
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(t.elapsed().as_secs() < 30, "he serve did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let photo = photo_of(&d, 32, 60);
    let key = d.join("key");
    ok(&["keygen", "-o", s(&key), "--key-bits", "2048"]);
    let submit = |out: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_he"));
        c.args(["submit", s(&photo), "--server", &url, "--key", s(&key)])
            .args(["--tile-rows", "1", "--threads", "1", "-o", s(out)]);
        c
    };
    let whole = d.join("whole.png");
    let o = submit(&whole).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Stopped by its deadline: it says where its tiles are and how to go on.
    // The server is paused (SIGSTOP) once a tile is saved, so that the
    // deadline passes on any machine: a fast one finishes this photo within
    // a second otherwise.
    let signal = |sig: &str| {
        let pid = server.0.id().to_string();
        let st = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(st.success(), "kill {sig} {pid}");
    };
    let late = d.join("late.png");
    let child = submit(&late)
        .args(["--timeout", "4"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Served(child);
    let t = std::time::Instant::now();
    while saved_tiles(&d.join("late.png.he-partial")) < 1 {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the run ended before the server was paused"
        );
        assert!(t.elapsed().as_secs() < 120, "no tile saved in two minutes");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    signal("-STOP");
    let mut err = String::new();
    let mut pipe = child.0.stderr.take().unwrap();
    let read = std::io::Read::read_to_string(&mut pipe, &mut err);
    let status = child.0.wait();
    signal("-CONT");
    read.unwrap();
    assert_eq!(status.unwrap().code(), Some(1), "{err}");
    assert!(
        err.contains("of 60 tiles are done and kept in")
            && err.contains("run the same command again")
            && err.contains("gave up after 4 s"),
        "{err}"
    );
    assert!(d.join("late.png.he-partial").exists() && !late.exists());
    // Killed once a few tiles are saved.
    let out = d.join("out.png");
    let state = d.join("out.png.he-partial");
    let mut child = submit(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_once_tiles_saved(&mut child, &state, 3);
    assert!(!out.exists());
    // --single-upload cannot resume: refused, the state kept.
    let o = Command::new(env!("CARGO_BIN_EXE_he"))
        .args(["submit", s(&photo), "--server", &url, "--key", s(&key)])
        .args(["--single-upload", "-o", s(&out)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not tiled") && err.contains("--restart"),
        "{err}"
    );
    // The same command resumes: only the other tiles are done.
    let o = submit(&out).output().unwrap();
    drop(server);
    let (text, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    let resumed = number_after(&text, "resuming: ");
    assert!((2..60).contains(&resumed), "{text}");
    let todo = number_after(&err, "progress: ");
    assert_eq!(todo + resumed, 60, "{err}");
    assert!(
        err.contains(&format!("({resumed} done by an interrupted run)")),
        "{err}"
    );
    assert_eq!(
        image::open(&out).unwrap().to_rgb8(),
        image::open(&whole).unwrap().to_rgb8()
    );
    assert!(!state.exists(), "the state outlived the output");
    std::fs::remove_dir_all(&d).unwrap();
}
