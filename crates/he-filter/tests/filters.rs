//! Decrypted results equal the plaintext filter on every pixel: random
//! images (including 1x1, 1xN, Nx1 and sizes that do not divide the
//! packing), kernel sizes, border modes, colour layouts and both layouts.
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use common::{border, color, image_of};
use enc_image::{
    BorderMode, ColorLayout, EncryptOptions, EncryptedImage, Layout, NoProgress, PixelImage,
};
use he_filter::{Kernel, reference};
use paillier::Keypair;
use proptest::prelude::*;

fn keypair() -> &'static Keypair {
    common::keypair(512)
}

fn image() -> impl Strategy<Value = PixelImage> {
    image_of(color())
}

/// Filters `img` under encryption and checks exact values and pixels.
fn check(img: &PixelImage, kernel: &Kernel, opts: EncryptOptions) -> Result<(), TestCaseError> {
    let kp = keypair();
    let enc = EncryptedImage::encrypt(img, kp.private_key(), &opts, &NoProgress).expect("encrypt");
    let out = he_filter::apply(&enc, kp.public_key(), kernel, &NoProgress).expect("filter");
    let dec = out.decrypt(kp.private_key(), &NoProgress).expect("decrypt");
    let want = reference::filter_sums(img, kernel, opts.border);
    prop_assert_eq!(dec.values(), &want[..], "exact sums");
    prop_assert_eq!(
        dec.to_pixels(),
        reference::filter(img, kernel, opts.border),
        "rounded pixels"
    );
    // Trimming the halo changes nothing but the size.
    let trimmed = out.trim_halo();
    prop_assert!(trimmed.ciphertexts().len() <= out.ciphertexts().len());
    let again = trimmed
        .decrypt(kp.private_key(), &NoProgress)
        .expect("decrypt");
    prop_assert_eq!(again.values(), &want[..]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn packed_mean_equals_plaintext_mean(img in image(), k in prop_oneof![Just(1usize), Just(3), Just(5), Just(7)], b in border()) {
        let kernel = Kernel::mean(k).unwrap();
        check(&img, &kernel, EncryptOptions::for_mean(k as u32).border(b))?;
    }

    #[test]
    fn packed_mean_with_a_larger_halo_than_needed(img in image(), b in border()) {
        check(&img, &Kernel::mean(3).unwrap(), EncryptOptions::for_mean(7).border(b))?;
    }

    #[test]
    fn unpacked_mean_equals_plaintext_mean(img in image(), k in prop_oneof![Just(1usize), Just(3), Just(5)], b in border()) {
        let small = PixelImage::new(img.width().min(9), img.height().min(9), img.color(),
            (0..img.width().min(9) * img.height().min(9) * img.channels()).map(|i| img.data()[i % img.len()]).collect()).unwrap();
        check(&small, &Kernel::mean(k).unwrap(), EncryptOptions::unpacked().border(b))?;
    }

    #[test]
    fn random_integer_kernels_with_negative_weights(
        img in image(),
        r in 0usize..=3,
        seed in proptest::collection::vec(-9i64..=9, 49),
        divisor in 1u64..=20,
        b in border(),
    ) {
        let k = 2 * r + 1;
        let kernel = Kernel::new(k, seed[..k * k].to_vec(), divisor).unwrap();
        let hi = 255 * kernel.weights().iter().filter(|w| **w > 0).sum::<i64>();
        let lo = 255 * kernel.weights().iter().filter(|w| **w < 0).sum::<i64>();
        check(&img, &kernel, EncryptOptions::for_kernel(r as u32, hi, lo).border(b))?;
    }
}

fn grey(w: usize, h: usize) -> PixelImage {
    PixelImage::new(
        w,
        h,
        ColorLayout::Luma8,
        (0..w * h).map(|i| (i * 37 % 256) as u8).collect(),
    )
    .unwrap()
}

#[test]
fn separable_and_full_paths_both_match_the_reference() {
    // Sobel x takes the separable path (one large exponentiation per input),
    // the Laplacian the full path (one per kernel row); both are exact.
    let img = grey(23, 11);
    let sobel = Kernel::new(3, vec![-1, 0, 1, -2, 0, 2, -1, 0, 1], 1).unwrap();
    assert!(sobel.separable().is_some());
    let laplacian = Kernel::new(3, vec![0, 1, 0, 1, -4, 1, 0, 1, 0], 1).unwrap();
    assert!(laplacian.separable().is_none());
    for k in [&sobel, &laplacian] {
        check(&img, k, EncryptOptions::for_kernel(1, 1020, -1020)).unwrap();
    }
}

#[test]
fn kernel_beyond_the_halo_is_refused_before_any_work() {
    let kp = keypair();
    let enc = EncryptedImage::encrypt(
        &grey(9, 9),
        kp.private_key(),
        &EncryptOptions::for_mean(5),
        &NoProgress,
    )
    .unwrap();
    let err = he_filter::mean_filter(&enc, kp.public_key(), 9)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("9x9 kernel needs a halo of 4") && err.contains("halo 2"),
        "{err}"
    );
    // And after a 3x3, only one ring of halo remains: a 5x5 is refused.
    let once = he_filter::mean_filter(&enc, kp.public_key(), 3).unwrap();
    let err = he_filter::mean_filter(&once, kp.public_key(), 5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("used by earlier filters"), "{err}");
    assert!(he_filter::mean_filter(&enc, kp.public_key(), 4).is_err());
}

#[test]
fn slot_too_narrow_for_the_sum_is_refused() {
    let kp = keypair();
    let opts = EncryptOptions {
        layout: Layout::Packed {
            slot_bits: 10,
            halo: 2,
        },
        border: BorderMode::Replicate,
    };
    let enc = EncryptedImage::encrypt(&grey(9, 9), kp.private_key(), &opts, &NoProgress).unwrap();
    let err = he_filter::mean_filter(&enc, kp.public_key(), 5)
        .unwrap_err()
        .to_string();
    // Already the vertical pass (5 x 255 = 1275) exceeds 10 bits.
    assert!(
        err.contains("mean 5x5") && err.contains("[0, 1275]") && err.contains("10-bit slots"),
        "{err}"
    );
    // 3x3 fits in 12 bits, not in 10 either.
    assert!(he_filter::mean_filter(&enc, kp.public_key(), 3).is_err());
}

#[test]
fn wrong_key_is_refused() {
    let kp = keypair();
    let other = Keypair::generate_insecure_for_tests(512).unwrap();
    let enc = EncryptedImage::encrypt(
        &grey(5, 5),
        kp.private_key(),
        &EncryptOptions::for_mean(3),
        &NoProgress,
    )
    .unwrap();
    let err = he_filter::mean_filter(&enc, other.public_key(), 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another public key"), "{err}");
    let err = enc
        .decrypt(other.private_key(), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another public key"), "{err}");
}

#[test]
fn parallel_and_single_threaded_filters_agree() {
    let kp = keypair();
    let img = grey(31, 17);
    let enc = EncryptedImage::encrypt(
        &img,
        kp.private_key(),
        &EncryptOptions::for_mean(3),
        &NoProgress,
    )
    .unwrap();
    let par = he_filter::mean_filter(&enc, kp.public_key(), 3).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let seq = pool.install(|| he_filter::mean_filter(&enc, kp.public_key(), 3).unwrap());
    // Filtering is deterministic: identical ciphertexts.
    assert_eq!(par.ciphertexts(), seq.ciphertexts());
}
