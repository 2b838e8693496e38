//! The whole pipeline on images encrypted with the public key alone in the
//! short-exponent (Damgard-Jurik-Nielsen) mode: encrypt, filter chain on the
//! server side, decrypt, and the exact plaintext reference, value for value.
#![allow(clippy::unwrap_used)] // a panic is a test failure

mod common;

use common::border;
use enc_image::Rational as Ratio;
use enc_image::{
    BorderMode, ColorLayout, EncryptedImage, NoProgress, OutputMapping, PixelImage,
    PublicEncryption,
};
use he_filter::{Filter, reference};
use proptest::prelude::*;

fn photo(w: usize, h: usize, color: ColorLayout) -> PixelImage {
    let n = w * h * color.channels();
    PixelImage::new(w, h, color, (0..n).map(|i| (i * 73 % 256) as u8).collect()).unwrap()
}

fn check(img: &PixelImage, chain: &[Filter], border: BorderMode) {
    let kp = common::keypair(1024);
    let (pk, sk) = (kp.public_key(), kp.private_key());
    let opts = he_filter::encrypt_options(chain).unwrap().border(border);
    let enc = EncryptedImage::encrypt_with_public_key(
        img,
        pk,
        PublicEncryption::ShortExponent,
        &opts,
        &NoProgress,
    )
    .unwrap();
    let out = he_filter::apply_chain(&enc, pk, chain, &NoProgress).unwrap();
    let got = out.trim_halo().decrypt(sk, &NoProgress).unwrap();
    let want = reference::apply_chain(img, chain, border).unwrap();
    assert_eq!(got.scale(), want.scale(), "{chain:?}");
    assert_eq!(got.values(), want.values(), "{chain:?} {border:?}");
    for m in OutputMapping::ALL {
        assert_eq!(got.to_pixels_with(m), want.to_pixels_with(m));
    }
}

#[test]
fn filter_chains_on_short_exponent_images_equal_the_reference() {
    let img = photo(37, 9, ColorLayout::Rgb8);
    let chains: [&[Filter]; 4] = [
        &[Filter::Mean { k: 3 }],
        &[Filter::Gaussian { k: 5, sigma: None }, Filter::Sharpen],
        &[
            Filter::SobelX,
            Filter::Contrast {
                factor: Ratio::new(3, 2).unwrap(),
                pivot: 128,
            },
        ],
        &[Filter::Grey, Filter::Invert, Filter::Mean { k: 3 }],
    ];
    for chain in chains {
        for b in [
            BorderMode::Replicate,
            BorderMode::Reflect101,
            BorderMode::Constant(7),
        ] {
            check(&img, chain, b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn random_images_through_a_mean_and_sharpen(
        img in common::image_of(common::color()),
        b in border(),
    ) {
        check(&img, &[Filter::Mean { k: 3 }, Filter::Sharpen], b);
    }
}
