//! Every built-in filter, pixel-wise operation and random chain of them,
//! computed under encryption, equals the plaintext reference value for
//! value: random images (1x1, 1xN, Nx1, sizes that straddle chunks), every
//! border mode, every colour layout.
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use common::{border, color, filter, image_of};
use enc_image::{
    BorderMode, ColorLayout, EncryptOptions, EncryptedImage, NoProgress, OutputMapping, PixelImage,
};
use he_filter::{Filter, reference};
use paillier::Keypair;
use proptest::prelude::*;

/// 1024 bits: wide slots (Gaussian with sigma needs 25) still leave room
/// for a halo of several pixels.
fn keypair() -> &'static Keypair {
    common::keypair(1024)
}

/// Encrypts with what the chain needs, runs it on the server side,
/// decrypts, and compares exact values and every output mapping.
fn check(img: &PixelImage, chain: &[Filter], border: BorderMode) -> Result<(), TestCaseError> {
    let kp = keypair();
    let opts = he_filter::encrypt_options(chain).unwrap().border(border);
    let enc = EncryptedImage::encrypt(img, kp.private_key(), &opts, &NoProgress).unwrap();
    let out = he_filter::apply_chain(&enc, kp.public_key(), chain, &NoProgress).unwrap();
    let labels: Vec<String> = chain.iter().map(Filter::label).collect();
    prop_assert_eq!(out.meta().history(), &labels[..]);
    let got = out
        .trim_halo()
        .decrypt(kp.private_key(), &NoProgress)
        .unwrap();
    let want = reference::apply_chain(img, chain, border).unwrap();
    prop_assert_eq!(got.scale(), want.scale(), "scale");
    prop_assert_eq!(got.color(), want.color());
    prop_assert_eq!(got.values(), want.values(), "exact values of {:?}", labels);
    for m in OutputMapping::ALL {
        prop_assert_eq!(got.to_pixels_with(m), want.to_pixels_with(m));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn any_single_filter_equals_its_reference(img in image_of(color()), f in filter(), b in border()) {
        check(&img, &[f], b)?;
    }

    #[test]
    fn chains_equal_their_reference(
        img in image_of(color()),
        chain in proptest::collection::vec(filter(), 2..=3),
        b in border(),
    ) {
        // Chains whose values outgrow the widest slot are refused up front;
        // those are tested apart.
        prop_assume!(he_filter::encrypt_options(&chain).is_ok());
        let opts = he_filter::encrypt_options(&chain).unwrap();
        let enc_image::Layout::Packed { halo, slot_bits } = opts.layout else { unreachable!() };
        prop_assume!(enc_image::Geometry::total_slots(1024, slot_bits) > 4 * halo);
        check(&img, &chain, b)?;
    }

    #[test]
    fn grey_in_chains(
        img in image_of(prop_oneof![Just(ColorLayout::Rgb8), Just(ColorLayout::Rgba8)]),
        before in proptest::option::of(filter()),
        after in proptest::option::of(filter()),
        b in border(),
    ) {
        let chain: Vec<Filter> = before.into_iter().chain([Filter::Grey]).chain(after).collect();
        prop_assume!(he_filter::encrypt_options(&chain).is_ok());
        check(&img, &chain, b)?;
    }
}

fn photo(w: usize, h: usize, color: ColorLayout) -> PixelImage {
    let n = w * h * color.channels();
    PixelImage::new(w, h, color, (0..n).map(|i| (i * 73 % 256) as u8).collect()).unwrap()
}

#[test]
fn every_builtin_filter_equals_its_reference() {
    let img = photo(37, 9, ColorLayout::Rgb8);
    for f in Filter::every_builtin() {
        for b in [
            BorderMode::Replicate,
            BorderMode::Reflect101,
            BorderMode::Constant(200),
        ] {
            check(&img, std::slice::from_ref(&f), b).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
}

#[test]
fn separable_filters_take_both_paths_exactly() {
    let kp = keypair();
    let img = photo(29, 13, ColorLayout::Luma8);
    for f in [
        Filter::Gaussian { k: 5, sigma: None },
        Filter::SobelX,
        Filter::MotionH { k: 5 },
    ] {
        let k = f.kernel().unwrap().unwrap();
        assert!(k.separable().is_some(), "{f}");
        let opts = he_filter::encrypt_options(std::slice::from_ref(&f)).unwrap();
        let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
        let want = reference::filter_sums(&img, &k, opts.border);
        for kernel in [k.clone(), k.clone().without_1d_passes()] {
            let out = he_filter::apply(&enc, kp.public_key(), &kernel, &NoProgress).unwrap();
            let got = out.decrypt(kp.private_key(), &NoProgress).unwrap();
            assert_eq!(got.values(), &want[..], "{f}");
        }
    }
}

#[test]
fn gradient_magnitude_of_decrypted_sobel_pair() {
    let kp = keypair();
    let img = photo(20, 7, ColorLayout::Luma8);
    let opts = he_filter::encrypt_options(&[Filter::SobelX]).unwrap();
    let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
    let d = |f: Filter| {
        he_filter::apply_chain(&enc, kp.public_key(), &[f], &NoProgress)
            .unwrap()
            .decrypt(kp.private_key(), &NoProgress)
            .unwrap()
    };
    let (gx, gy) = (d(Filter::SobelX), d(Filter::SobelY));
    let mag = he_filter::gradient_magnitude(&gx, &gy).unwrap();
    let b = opts.border;
    let rx = reference::apply_chain(&img, &[Filter::SobelX], b).unwrap();
    let ry = reference::apply_chain(&img, &[Filter::SobelY], b).unwrap();
    assert_eq!(mag, he_filter::gradient_magnitude(&rx, &ry).unwrap());
    // Spot check one pixel by floating point.
    let i = 7 * 3 + 5;
    let want = f64::from(rx.values()[i] as i32)
        .hypot(f64::from(ry.values()[i] as i32))
        .round()
        .min(255.0);
    assert_eq!(f64::from(mag.data()[i]), want);
}

#[test]
fn chains_that_do_not_fit_are_refused_before_any_work() {
    let kp = keypair();
    let img = photo(9, 9, ColorLayout::Rgb8);
    let opts = he_filter::encrypt_options(&[Filter::Mean { k: 3 }]).unwrap();
    let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
    let pk = kp.public_key();
    // Halo: a 3x3 then another 3x3 needs radius 2, the image has 1.
    let err = he_filter::apply_chain(
        &enc,
        pk,
        &[Filter::Mean { k: 3 }, Filter::Sharpen],
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("sharpen") && err.contains("used by earlier filters"),
        "{err}"
    );
    // Slot width: Sobel's negative values span more than the mean's 12 bits.
    let err = he_filter::apply_chain(&enc, pk, &[Filter::ScharrX], &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("scharr-x") && err.contains("slots"), "{err}");
    // Grey on a grey image.
    let opts = he_filter::encrypt_options(&[Filter::Grey]).unwrap();
    let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
    let grey = he_filter::apply_chain(&enc, pk, &[Filter::Grey], &NoProgress).unwrap();
    let err = he_filter::apply_chain(&grey, pk, &[Filter::Grey], &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("RGB"), "{err}");
    // A chain beyond the widest slot is refused when planning encryption.
    let gain = |bits: u32| Filter::Kernel {
        size: 1,
        weights: vec![1 << bits],
        divisor: 1,
    };
    // 255 * 2^55 needs 63 bits.
    let err = he_filter::encrypt_options(&[gain(19), gain(18), gain(18)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("largest slot"), "{err}");
}

#[test]
fn unpacked_layout_runs_single_filters_and_refuses_neighbourhood_chains() {
    let kp = keypair();
    let img = photo(4, 3, ColorLayout::Luma8);
    let b = BorderMode::Constant(17);
    let opts = EncryptOptions::unpacked().border(b);
    let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
    let pk = kp.public_key();
    let chain = [Filter::SobelX, Filter::Invert];
    let got = he_filter::apply_chain(&enc, pk, &chain, &NoProgress)
        .unwrap()
        .decrypt(kp.private_key(), &NoProgress)
        .unwrap();
    assert_eq!(got, reference::apply_chain(&img, &chain, b).unwrap());
    let err = he_filter::apply_chain(
        &enc,
        pk,
        &[Filter::Invert, Filter::Mean { k: 3 }],
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unpacked layout"), "{err}");
}
