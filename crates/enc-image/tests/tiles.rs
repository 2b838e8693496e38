//! A tile is its rows of the image, and its vertical halo holds the
//! image's neighbouring rows (the border only beyond the image's top and
//! bottom): checked slot by slot in the decrypted plaintexts, on random
//! sizes, tile heights down to one row, halos, borders and colour layouts.
#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

use std::sync::OnceLock;

use enc_image::{
    BorderMode, ColorLayout, EncryptOptions, EncryptedImage, Layout, NoProgress, Packing,
    PixelImage, TilePlan,
};
use paillier::{Integer, Keypair};
use proptest::prelude::*;

fn keypair() -> &'static Keypair {
    static KP: OnceLock<Keypair> = OnceLock::new();
    KP.get_or_init(|| Keypair::generate_insecure_for_tests(512).expect("keygen"))
}

fn border() -> impl Strategy<Value = BorderMode> {
    prop_oneof![
        Just(BorderMode::Replicate),
        Just(BorderMode::Reflect101),
        any::<u8>().prop_map(BorderMode::Constant)
    ]
}

fn image() -> impl Strategy<Value = PixelImage> {
    let side = || prop_oneof![Just(1usize), 2usize..6, 6usize..30];
    let color = prop_oneof![
        Just(ColorLayout::Luma8),
        Just(ColorLayout::LumaA8),
        Just(ColorLayout::Rgb8),
        Just(ColorLayout::Rgba8)
    ];
    (side(), side(), color).prop_flat_map(|(w, h, c)| {
        proptest::collection::vec(any::<u8>(), w * h * c.channels())
            .prop_map(move |d| PixelImage::new(w, h, c, d).unwrap())
    })
}

/// Every slot of every ciphertext of tile `index`, decrypted, against the
/// pixel (or border value) it must hold.
fn check_tile(
    img: &PixelImage,
    plan: &TilePlan,
    index: usize,
    opts: &EncryptOptions,
) -> Result<(), TestCaseError> {
    let kp = keypair();
    let enc = EncryptedImage::encrypt_tile(img, plan, index, kp.private_key(), opts, &NoProgress)
        .unwrap();
    let rows = plan.rows(index).unwrap();
    let meta = enc.meta();
    prop_assert_eq!((meta.width(), meta.height()), (img.width(), rows.len()));
    let Packing::Packed(g) = meta.packing() else {
        unreachable!()
    };
    let mask = (Integer::from(1) << g.slot_bits) - 1u32;
    for c in 0..img.channels() {
        for t in 0..meta.rows() {
            for j in 0..meta.row_len() {
                let ct = &enc.ciphertexts()[meta.index(c, t, j)];
                let m = paillier::hazmat::decrypt_raw(kp.private_key(), ct).unwrap();
                for s in 0..g.chunk_slots() {
                    let got = (m.clone() >> (g.slot_bits as usize * s)) & &mask;
                    let want = match g.source(img.width(), t, j, s) {
                        Some((x, y)) => opts.border.sample(img, c, x, rows.start as i64 + y),
                        None => 0,
                    };
                    prop_assert_eq!(got, Integer::from(want), "c {} t {} j {} s {}", c, t, j, s);
                }
            }
        }
    }
    // And it decrypts to its rows of the image.
    let back = enc
        .decrypt(kp.private_key(), &NoProgress)
        .unwrap()
        .to_pixels();
    let row_len = img.width() * img.channels();
    prop_assert_eq!(
        back.data(),
        &img.data()[rows.start * row_len..rows.end * row_len]
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn tiles_hold_their_rows_and_the_rows_around_them(
        img in image(),
        tile_rows in prop_oneof![Just(1usize), 1usize..40],
        halo in 0u32..=3,
        b in border(),
    ) {
        let opts = EncryptOptions {
            layout: Layout::Packed { slot_bits: 12, halo },
            border: b,
        };
        let plan = TilePlan::for_encryption(
            img.width(), img.height(), img.color(), 512, &opts, Some(tile_rows),
        ).unwrap();
        prop_assert_eq!(plan.halo_rows(), halo);
        for index in 0..plan.count() {
            check_tile(&img, &plan, index, &opts)?;
        }
    }
}

#[test]
fn a_plan_for_another_image_or_halo_is_refused() {
    let kp = keypair();
    let img = PixelImage::new(5, 6, ColorLayout::Luma8, vec![7; 30]).unwrap();
    let opts = EncryptOptions::for_mean(3);
    let sk = kp.private_key();
    let enc = |plan: &TilePlan, index: usize, opts: &EncryptOptions| {
        EncryptedImage::encrypt_tile(&img, plan, index, sk, opts, &NoProgress)
    };
    let plan = TilePlan::new(5, 6, 2, 1).unwrap();
    assert!(enc(&plan, 2, &opts).is_ok());
    let err = enc(&plan, 3, &opts).unwrap_err().to_string();
    assert!(err.contains("tile 3") && err.contains("3 tiles"), "{err}");
    let err = enc(&TilePlan::new(5, 7, 2, 1).unwrap(), 0, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("5x7"), "{err}");
    let err = enc(&TilePlan::new(5, 6, 2, 2).unwrap(), 0, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("halo"), "{err}");
    // The whole-image plan of the unpacked layout is the whole image.
    let unpacked = EncryptOptions::unpacked();
    let whole = TilePlan::for_encryption(5, 6, img.color(), 512, &unpacked, None).unwrap();
    let tile = enc(&whole, 0, &unpacked).unwrap();
    let back = tile.decrypt(sk, &NoProgress).unwrap().to_pixels();
    assert_eq!(back, img);
}
