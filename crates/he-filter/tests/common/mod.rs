//! Strategies and keys shared by the filter tests.
#![allow(dead_code, unreachable_pub)] // each test binary uses a part

use std::sync::OnceLock;

use enc_image::{BorderMode, ColorLayout, PixelImage, Rational};
use he_filter::Filter;
use paillier::Keypair;
use proptest::prelude::*;

/// A test key of `bits` bits (512 or 1024), made once per test binary.
pub fn keypair(bits: u32) -> &'static Keypair {
    static K512: OnceLock<Keypair> = OnceLock::new();
    static K1024: OnceLock<Keypair> = OnceLock::new();
    let cell = if bits <= 512 { &K512 } else { &K1024 };
    cell.get_or_init(|| Keypair::generate_insecure_for_tests(bits).expect("keygen"))
}

/// Every border mode, with any constant.
pub fn border() -> impl Strategy<Value = BorderMode> {
    prop_oneof![
        Just(BorderMode::Replicate),
        Just(BorderMode::Reflect101),
        any::<u8>().prop_map(BorderMode::Constant)
    ]
}

/// Every colour layout.
pub fn color() -> impl Strategy<Value = ColorLayout> {
    prop_oneof![
        Just(ColorLayout::Luma8),
        Just(ColorLayout::Rgb8),
        Just(ColorLayout::LumaA8),
        Just(ColorLayout::Rgba8)
    ]
}

/// Sizes skewed to the edges: 1, small, and ones that straddle chunks.
pub fn side() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), 2usize..6, 6usize..48]
}

/// Images of the given layouts, pixel data skewed to 0 and 255 as well as
/// uniform values.
pub fn image_of(color: impl Strategy<Value = ColorLayout>) -> impl Strategy<Value = PixelImage> {
    (side(), side(), color).prop_flat_map(|(w, h, c)| {
        let n = w * h * c.channels();
        let px = prop_oneof![Just(0u8), Just(255u8), any::<u8>()];
        proptest::collection::vec(px, n)
            .prop_map(move |d| PixelImage::new(w, h, c, d).expect("valid image"))
    })
}

/// Small rationals, negative and positive.
pub fn ratio() -> impl Strategy<Value = Rational> {
    (-8i64..=8, 1u64..=4).prop_map(|(n, d)| Rational::new(n, d).unwrap())
}

/// Any filter but grey (which needs colour), with small random parameters.
pub fn filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (0usize..=2).prop_map(|r| Filter::Mean { k: 2 * r + 1 }),
        (0usize..=2).prop_map(|r| Filter::Gaussian {
            k: 2 * r + 1,
            sigma: None
        }),
        (0usize..=1, 1u32..=20).prop_map(|(r, s)| Filter::Gaussian {
            k: 2 * r + 1,
            sigma: Some(f64::from(s) / 10.0)
        }),
        Just(Filter::Sharpen),
        (0usize..=1, (0i64..=6, 1u64..=4)).prop_map(|(r, (n, d))| Filter::Unsharp {
            k: 2 * r + 1,
            amount: Rational::new(n, d).unwrap()
        }),
        Just(Filter::Laplacian),
        Just(Filter::SobelX),
        Just(Filter::SobelY),
        Just(Filter::PrewittX),
        Just(Filter::PrewittY),
        Just(Filter::ScharrX),
        Just(Filter::ScharrY),
        Just(Filter::Emboss),
        (0usize..=2).prop_map(|r| Filter::MotionH { k: 2 * r + 1 }),
        (0usize..=2).prop_map(|r| Filter::MotionV { k: 2 * r + 1 }),
        (
            proptest::collection::vec(-3i64..=3, 3),
            proptest::collection::vec(-3i64..=3, 3),
            1u64..=9
        )
            .prop_map(|(column, row, divisor)| Filter::Separable {
                column,
                row,
                divisor
            }),
        (proptest::collection::vec(-5i64..=5, 9), 1u64..=10).prop_map(|(weights, divisor)| {
            Filter::Kernel {
                size: 3,
                weights,
                divisor,
            }
        }),
        Just(Filter::Invert),
        (-300i64..=300).prop_map(|delta| Filter::Brightness { delta }),
        (ratio(), 0i64..=255).prop_map(|(factor, pivot)| Filter::Contrast { factor, pivot }),
    ]
}
