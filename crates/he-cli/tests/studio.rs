//! `he studio` and `he preview` as a person starts them: the studio
//! refuses to listen beyond loopback; the preview is the plaintext chain,
//! pixel for pixel. (The studio's HTTP API is tested in
//! `src/cmd/studio/tests.rs`, the page in a real browser by
//! `scripts/studio-test.sh`.)

#![allow(clippy::unwrap_used)]

use std::process::Command;

use enc_image::{BorderMode, OutputMapping, PixelImage};
use he_filter::{Filter, reference};

fn he(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_he"))
        .args(args)
        .output()
        .expect("run he")
}

#[test]
fn the_studio_refuses_addresses_beyond_loopback() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let out = he(&["studio", "--listen", addr, "--server", "http://127.0.0.1:9"]);
        assert_eq!(out.status.code(), Some(1), "{addr}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("loopback address only"), "{addr}: {err}");
    }
}

#[test]
fn preview_is_the_plaintext_chain() {
    let dir = std::env::temp_dir().join(format!("he-preview-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/astronaut-256.png");
    let out = dir.join("p.png");
    let o = he(&[
        "preview",
        src,
        "--resize",
        "40x30",
        "--filter",
        "gaussian",
        "--filter",
        "sobel-y",
        "--map",
        "abs",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let input =
        image::open(src)
            .unwrap()
            .resize_exact(40, 30, image::imageops::FilterType::Lanczos3);
    let want = reference::apply_chain(
        &PixelImage::from_dynamic(&input),
        &[Filter::Gaussian { k: 3, sigma: None }, Filter::SobelY],
        BorderMode::Replicate,
    )
    .unwrap()
    .to_pixels_with(OutputMapping::Abs);
    let got = PixelImage::from_dynamic(&image::open(&out).unwrap());
    assert_eq!(got, want);
    // Never over an existing file without --force.
    let o = he(&["preview", src, "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}
