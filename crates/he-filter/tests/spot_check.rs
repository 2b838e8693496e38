//! The spot check against a server that returns well-formed wrong results:
//! a single ciphertext of a 1000x750 RGB result replaced (by a fresh
//! encryption, by another ciphertext of the same image, by Enc(0)), two
//! swapped, the input returned unfiltered; and an honest result passes at
//! a fraction of the cost of the full reference.
#![allow(clippy::unwrap_used)] // a panic is a test failure

mod common;

use std::sync::OnceLock;

use enc_image::{
    BorderMode, ColorLayout, DecryptedImage, EncryptedImage, NoProgress, PixelImage, Rational,
};
use he_filter::{Error, Filter, Mismatch, SpotCheck, SpotCheckReport, spot_check};
use paillier::{Ciphertext, Integer, Keypair};

const W: usize = 1000;
const H: usize = 750;
const CHAIN: [Filter; 1] = [Filter::Mean { k: 3 }];
const BORDER: BorderMode = BorderMode::Reflect101;

struct Setup {
    kp: &'static Keypair,
    input: PixelImage,
    /// The input as encrypted (with its halo rows).
    enc: EncryptedImage,
    /// The honest result, trimmed as a server returns it.
    out: EncryptedImage,
    /// Its decryption.
    exact: DecryptedImage,
}

/// Pixels in 1..=254 that look random, so that a 3x3 sum is never 0 and
/// never 9 * 255, and neighbouring sums differ.
fn input() -> PixelImage {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data = (0..W * H * 3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 254) as u8 + 1
        })
        .collect();
    PixelImage::new(W, H, ColorLayout::Rgb8, data).unwrap()
}

/// One encryption, one filter and one decryption of the 1000x750 image,
/// shared by the tests of this binary (a 512-bit test key: the smallest
/// that packs a 3x3 mean densely).
fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let kp = common::keypair(512);
        let input = input();
        let opts = he_filter::encrypt_options(&CHAIN).unwrap().border(BORDER);
        let enc = EncryptedImage::encrypt(&input, kp.private_key(), &opts, &NoProgress).unwrap();
        let out = he_filter::apply_chain(&enc, kp.public_key(), &CHAIN, &NoProgress)
            .unwrap()
            .trim_halo();
        let exact = out.decrypt(kp.private_key(), &NoProgress).unwrap();
        Setup {
            kp,
            input,
            enc,
            out,
            exact,
        }
    })
}

fn check(
    s: &Setup,
    meta: &EncryptedImage,
    exact: &DecryptedImage,
) -> he_filter::Result<SpotCheckReport> {
    spot_check(
        &s.input,
        &CHAIN,
        BORDER,
        meta.meta(),
        exact,
        &SpotCheck::default(),
    )
}

/// The result with its ciphertexts changed by `edit`, decrypted: the
/// decryption must succeed (the tampering is well-formed), and the spot
/// check must fail.
fn tampered(s: &Setup, edit: impl FnOnce(&mut Vec<Ciphertext>)) -> Mismatch {
    let mut cts = s.out.ciphertexts().to_vec();
    edit(&mut cts);
    let bad = EncryptedImage::from_parts(s.out.meta().clone(), cts).unwrap();
    let exact = bad
        .decrypt(s.kp.private_key(), &NoProgress)
        .expect("a well-formed forgery decrypts");
    assert_ne!(exact, s.exact, "the edit changed nothing");
    match check(s, &bad, &exact) {
        Err(Error::Verification(m)) => m,
        other => panic!("a tampered result was not caught: {other:?}"),
    }
}

/// The honest values ciphertext `i` carries, in slot order.
fn values(s: &Setup, i: usize) -> Vec<i64> {
    let ch = 3;
    s.out
        .meta()
        .values_of(i)
        .iter()
        .map(|p| s.exact.values()[(p.y * W + p.x) * ch + p.channel])
        .collect()
}

/// A ciphertext in the middle of the image, and another of the same
/// channel and chunk column whose every value differs from it slot for
/// slot (so that replacing one by the other changes whichever value is
/// sampled).
fn victim_and_donor(s: &Setup) -> (usize, usize) {
    let meta = s.out.meta();
    let (rows, row_len) = (meta.rows(), meta.row_len());
    let victim = meta.index(1, rows / 2, row_len / 2);
    let want = values(s, victim);
    assert!(want.len() > 10);
    let donor = (0..rows)
        .map(|t| meta.index(1, t, row_len / 2))
        .find(|&d| {
            let got = values(s, d);
            d != victim && got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| a != b)
        })
        .expect("a ciphertext whose values all differ");
    (victim, donor)
}

#[test]
fn an_honest_result_passes_at_a_fraction_of_the_cost() {
    let s = setup();
    let report = check(s, &s.out, &s.exact).unwrap();
    eprintln!("{report:?}");
    let meta = s.out.meta();
    let outputs = (0..meta.ciphertext_count())
        .filter(|&i| !meta.values_of(i).is_empty())
        .count();
    assert_eq!(report.ciphertexts_sampled, outputs);
    assert_eq!(outputs, s.out.ciphertexts().len());
    assert_eq!(report.total_values, W * H * 3);
    assert!(report.pixels_evaluated <= outputs + report.random_values);
    assert_eq!(report.values_compared, 3 * report.pixels_evaluated);
    // The full reference recomputes all W * H pixels: the check does less
    // than a tenth of that.
    assert!(
        report.pixels_evaluated * 10 < W * H,
        "{report:?} against {} pixels",
        W * H
    );
    // Only the chosen values, not all of them (a 1000x750 image has ~59k
    // output ciphertexts of 38 values at 512 bits).
    assert!(report.pixels_evaluated > 1000);
}

#[test]
fn a_single_ciphertext_replaced_by_another_of_the_image_is_caught() {
    let s = setup();
    let (victim, donor) = victim_and_donor(s);
    let m = tampered(s, |cts| cts[victim] = cts[donor].clone());
    assert!(
        matches!(m, Mismatch::Value { ciphertext, .. } if ciphertext == victim),
        "{m}"
    );
}

#[test]
fn a_single_ciphertext_replaced_by_a_fresh_encryption_is_caught() {
    let s = setup();
    let (victim, _) = victim_and_donor(s);
    // Every slot at 9 * 255, a valid 3x3 sum that no sum of this input
    // reaches; encrypted with the public key, as a server can.
    let enc_image::Packing::Packed(g) = s.out.meta().packing() else {
        panic!("packed")
    };
    let slots = enc_image::Geometry::total_slots(s.kp.public_key().bits(), g.slot_bits);
    let mut m = Integer::new();
    for i in 0..slots {
        m += Integer::from(9 * 255) << (g.slot_bits * i);
    }
    let fresh = paillier::hazmat::encrypt_raw(s.kp.public_key(), &m).unwrap();
    let m = tampered(s, |cts| cts[victim] = fresh);
    assert!(
        matches!(m, Mismatch::Value { ciphertext, found: 2295, .. } if ciphertext == victim),
        "{m}"
    );
}

#[test]
fn a_ciphertext_replaced_by_an_encryption_of_zero_is_caught() {
    let s = setup();
    let (victim, _) = victim_and_donor(s);
    let zero = s.kp.public_key().encrypt(&Integer::from(0)).unwrap();
    let m = tampered(s, |cts| cts[victim] = zero);
    assert!(
        matches!(m, Mismatch::Value { ciphertext, found: 0, .. } if ciphertext == victim),
        "{m}"
    );
}

#[test]
fn two_swapped_ciphertexts_are_caught() {
    let s = setup();
    let (a, b) = victim_and_donor(s);
    let m = tampered(s, |cts| cts.swap(a, b));
    assert!(
        matches!(m, Mismatch::Value { ciphertext, .. } if ciphertext == a || ciphertext == b),
        "{m}"
    );
}

#[test]
fn the_input_returned_unfiltered_is_caught() {
    let s = setup();
    let unfiltered = s.enc.trim_halo();
    assert_eq!(unfiltered.ciphertexts().len(), s.out.ciphertexts().len());
    // As it is: scale 1, not the mean's 1/9.
    let exact = unfiltered.decrypt(s.kp.private_key(), &NoProgress).unwrap();
    match check(s, &unfiltered, &exact) {
        Err(Error::Verification(Mismatch::Scale { expected, found })) => {
            assert_eq!(
                (expected, found),
                (Rational::new(1, 9).unwrap(), Rational::ONE)
            );
        }
        other => panic!("not caught: {other:?}"),
    }
    // Dressed as the filtered result (its description, the input's
    // ciphertexts): every value is wrong.
    let m = tampered(s, |cts| *cts = unfiltered.ciphertexts().to_vec());
    assert!(matches!(m, Mismatch::Value { .. }), "{m}");
}

/// The check is what catches these: without samples, the same forgery
/// passes (so the tests above can fail).
#[test]
fn without_samples_a_forgery_passes() {
    let s = setup();
    let (victim, donor) = victim_and_donor(s);
    let mut cts = s.out.ciphertexts().to_vec();
    cts[victim] = cts[donor].clone();
    let bad = EncryptedImage::from_parts(s.out.meta().clone(), cts).unwrap();
    let exact = bad.decrypt(s.kp.private_key(), &NoProgress).unwrap();
    let mut none = SpotCheck::default();
    none.random_values = 0;
    none.every_ciphertext = false;
    let r = spot_check(&s.input, &CHAIN, BORDER, bad.meta(), &exact, &none).unwrap();
    assert_eq!(r.pixels_evaluated, 0);
}

/// Signed chains, grey, other borders, small images: honest results pass
/// and a changed value is caught (a full-image check on tiny images).
#[test]
fn chains_and_small_images() {
    let kp = common::keypair(1024);
    let chains: [&[Filter]; 3] = [
        &[Filter::Gaussian { k: 3, sigma: None }, Filter::SobelX],
        &[Filter::Grey, Filter::Laplacian],
        &[Filter::Sharpen, Filter::Invert],
    ];
    for (w, h) in [(1, 1), (7, 2), (1, 9)] {
        let img = PixelImage::new(
            w,
            h,
            ColorLayout::Rgb8,
            (0..w * h * 3).map(|v| (v * 97 % 256) as u8).collect(),
        )
        .unwrap();
        for chain in chains {
            let opts = he_filter::encrypt_options(chain)
                .unwrap()
                .border(BorderMode::Constant(200));
            let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
            let out = he_filter::apply_chain(&enc, kp.public_key(), chain, &NoProgress).unwrap();
            let exact = out.decrypt(kp.private_key(), &NoProgress).unwrap();
            let opt = SpotCheck::default();
            let r = spot_check(&img, chain, opts.border, out.meta(), &exact, &opt).unwrap();
            assert_eq!(r.pixels_evaluated, w * h, "2000 samples cover a tiny image");
            // One value off by one.
            let mut values = exact.values().to_vec();
            let last = values.len() - 1;
            values[last] += 1;
            let off = DecryptedImage::new(w, h, exact.color(), values, exact.scale()).unwrap();
            let e = spot_check(&img, chain, opts.border, out.meta(), &off, &opt).unwrap_err();
            assert!(
                matches!(e, Error::Verification(Mismatch::Value { .. })),
                "{e}"
            );
        }
    }
    // A result of the wrong size or layout.
    let img = PixelImage::new(3, 3, ColorLayout::Rgb8, vec![9; 27]).unwrap();
    let opts = he_filter::encrypt_options(&CHAIN).unwrap();
    let enc = EncryptedImage::encrypt(&img, kp.private_key(), &opts, &NoProgress).unwrap();
    let out = he_filter::apply_chain(&enc, kp.public_key(), &CHAIN, &NoProgress).unwrap();
    let exact = out.decrypt(kp.private_key(), &NoProgress).unwrap();
    let grey = [Filter::Mean { k: 3 }, Filter::Grey];
    let e = spot_check(
        &img,
        &grey,
        opts.border,
        out.meta(),
        &exact,
        &SpotCheck::default(),
    );
    assert!(
        matches!(e, Err(Error::Verification(Mismatch::Shape { .. }))),
        "{e:?}"
    );
}
