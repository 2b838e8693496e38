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
        "loadtest",
        "gallery",
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
