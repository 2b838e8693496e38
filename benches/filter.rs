//! Filtering encrypted RGB images: encryption, the 3x3 mean filter,
//! decryption and the whole pipeline, at 64x64, 256x256 and 512x512 and
//! at 2048 and 3072 bits; and the packed layout against one value per
//! ciphertext on a small image.
//!
//! Groups (each benchmark is `<group>/<bits>/<side>`, throughput in pixel
//! values, `side * side * 3`):
//!
//! - `filter_encrypt`: `EncryptedImage::encrypt` with the private key
//!   (packed for a 3x3 mean, replicate border).
//! - `filter_mean3`: `he_filter::mean_filter(.., 3)` with the public key.
//! - `filter_decrypt`: `trim_halo`, `decrypt` and `to_pixels`.
//! - `filter_pipeline`: all three in a row.
//! - `filter_layout`: the pipeline on a 16x16 RGB image at 2048 bits,
//!   `packed/16` (`EncryptOptions::for_mean(3)`) against `unpacked/16`
//!   (`EncryptOptions::unpacked()`, 768 encryptions and decryptions).
//!
//! Everything runs on rayon's default pool, all threads: what a user gets.
//! Keys are generated once per size, and only when a benchmark that needs
//! them is selected; inputs of the filter and decrypt benchmarks are made
//! once, and the decrypted result is checked against the plain filter.
//!
//! Sizes are chosen by environment variables (comma-separated lists):
//!
//! - `FILTER_BENCH_SIDES`: image sides, default `64,256,512`;
//! - `FILTER_BENCH_BITS`: key sizes, default `2048,3072`.
//!
//! `filter_layout` always uses a 16x16 image and a 2048-bit key.
//!
//! Two more groups measure the other filters on the server (public key
//! only), on one `FILTER_EACH_SIDE` (default 512) RGB image at
//! `FILTER_EACH_BITS` (default 2048), each encrypted with what the filter
//! needs (`he_filter::encrypt_options`):
//!
//! - `filter_each/<filter>`: every built-in filter (`Filter::every_builtin()`);
//! - `filter_separable/<filter>/{1d_passes,full_2d}`: separable kernels
//!   run as two 1-D passes against the same kernel forced through the
//!   full `k x k` evaluation (`Kernel::without_1d_passes`).
//!
//! A full run takes a long time: an iteration of the 512x512 pipeline takes
//! about 10 s at 2048 bits and 20-25 s at 3072 bits on two cores, and each
//! benchmark takes 10 samples. Examples:
//!
//! ```text
//! cargo bench --bench filter                                   # everything
//! cargo bench --bench filter -- filter_pipeline                # one group
//! cargo bench --bench filter -- 'filter_mean3/2048/'           # one key size
//! FILTER_BENCH_SIDES=64 cargo bench --bench filter             # quick
//! FILTER_BENCH_SIDES=64,256 FILTER_BENCH_BITS=2048 cargo bench --bench filter
//! cargo bench --bench filter -- filter_layout                  # packing
//! cargo bench --bench filter -- 'filter_each|filter_separable'  # other filters
//! ```

use std::cell::OnceCell;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::WallTime};
use enc_image::{ColorLayout, EncryptOptions, EncryptedImage, NoProgress, PixelImage};
use he_filter::{Filter, Kernel};
use paillier::Keypair;

/// Image sides when `FILTER_BENCH_SIDES` is not set.
const DEFAULT_SIDES: &str = "64,256,512";
/// Key sizes when `FILTER_BENCH_BITS` is not set.
const DEFAULT_BITS: &str = "2048,3072";
/// Side of the image of the packed against unpacked comparison.
const LAYOUT_SIDE: usize = 16;
/// Key size of the packed against unpacked comparison.
const LAYOUT_BITS: u32 = 2048;
/// Seed of the pseudo-random pixels.
const SEED: u64 = 0x5EED_F11E_2024_0001;

/// The comma-separated list in environment variable `var`, or `default`.
fn list_from_env<T: std::str::FromStr>(var: &str, default: &str) -> Vec<T> {
    let text = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let list: Vec<T> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("{var}: {s:?} is not a number"))
        })
        .collect();
    assert!(!list.is_empty(), "{var} is empty");
    list
}

/// Image sides to measure (`FILTER_BENCH_SIDES`).
fn sides() -> Vec<usize> {
    list_from_env("FILTER_BENCH_SIDES", DEFAULT_SIDES)
}

/// Key sizes to measure (`FILTER_BENCH_BITS`).
fn key_sizes() -> Vec<u32> {
    list_from_env("FILTER_BENCH_BITS", DEFAULT_BITS)
}

/// The key pair of `bits` bits, generated (and precomputed) on first use
/// and shared by every group for the rest of the run.
fn keypair(bits: u32) -> &'static Keypair {
    static KEYS: Mutex<Vec<(u32, &'static Keypair)>> = Mutex::new(Vec::new());
    let mut keys = KEYS.lock().expect("key cache lock");
    if let Some(&(_, kp)) = keys.iter().find(|(b, _)| *b == bits) {
        return kp;
    }
    let kp = Keypair::generate(bits).expect("keygen");
    kp.private_key().precompute();
    let kp: &'static Keypair = Box::leak(Box::new(kp));
    keys.push((bits, kp));
    kp
}

/// A `side x side` RGB image of pseudo-random pixels (xorshift64* from a
/// fixed seed), the same on every run.
fn test_image(side: usize) -> PixelImage {
    let mut state = SEED ^ (side as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let data = (0..side * side * 3)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect();
    PixelImage::new(side, side, ColorLayout::Rgb8, data).expect("test image")
}

/// Pixel values of a `side x side` RGB image, for the throughput.
fn values(side: usize) -> Throughput {
    Throughput::Elements((side * side * 3) as u64)
}

/// Encrypts `img` with the key holder's fast path.
fn encrypt(img: &PixelImage, kp: &Keypair, opts: &EncryptOptions) -> EncryptedImage {
    EncryptedImage::encrypt(img, kp.private_key(), opts, &NoProgress).expect("encrypt")
}

/// The server's step: the 3x3 mean filter with the public key.
fn mean3(enc: &EncryptedImage, kp: &Keypair) -> EncryptedImage {
    he_filter::mean_filter(enc, kp.public_key(), 3).expect("mean filter")
}

/// The client's last step: drop the halo rows, decrypt, round to pixels.
fn decrypt(filtered: &EncryptedImage, kp: &Keypair) -> PixelImage {
    filtered
        .trim_halo()
        .decrypt(kp.private_key(), &NoProgress)
        .expect("decrypt")
        .to_pixels()
}

/// Encrypt, filter, decrypt.
fn pipeline(img: &PixelImage, kp: &Keypair, opts: &EncryptOptions) -> PixelImage {
    decrypt(&mean3(&encrypt(img, kp, opts), kp), kp)
}

/// Checks a decrypted result against the 3x3 mean filter on the plain image.
fn check(img: &PixelImage, out: &PixelImage, opts: &EncryptOptions) {
    let kernel = Kernel::mean(3).expect("3x3 mean kernel");
    let want = he_filter::reference::filter(img, &kernel, opts.border);
    assert!(
        *out == want,
        "the decrypted {}x{} image differs from the plain filter",
        img.width(),
        img.height()
    );
}

/// A group with the settings every group here shares: the fewest samples
/// criterion allows and short warm-up and measurement targets (a long
/// benchmark then takes 10 samples of one iteration each).
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g
}

/// Runs `bench(g, bits, side, kp, img)` for every selected key size and
/// side, with the throughput set; the key and image are made only if the
/// benchmark is selected (criterion calls the closure only then).
fn for_each_size(
    g: &mut BenchmarkGroup<'_, WallTime>,
    mut bench: impl FnMut(&mut BenchmarkGroup<'_, WallTime>, BenchmarkId, &dyn Fn() -> Inputs),
) {
    for bits in key_sizes() {
        for side in sides() {
            g.throughput(values(side));
            let id = BenchmarkId::new(format!("{bits}"), side);
            bench(g, id, &|| Inputs {
                kp: keypair(bits),
                img: test_image(side),
            });
        }
    }
}

/// A key pair and a plain image.
struct Inputs {
    /// The key pair.
    kp: &'static Keypair,
    /// The plain image.
    img: PixelImage,
}

/// `filter_encrypt`: encryption of a whole image with the private key.
fn bench_encrypt(c: &mut Criterion) {
    let opts = EncryptOptions::for_mean(3);
    let mut g = group(c, "filter_encrypt");
    for_each_size(&mut g, |g, id, inputs| {
        let setup = OnceCell::new();
        g.bench_function(id, |b| {
            let Inputs { kp, img } = setup.get_or_init(inputs);
            b.iter(|| encrypt(black_box(img), kp, black_box(&opts)));
        });
    });
    g.finish();
}

/// `filter_mean3`: the 3x3 mean filter on an encrypted image.
fn bench_mean3(c: &mut Criterion) {
    let opts = EncryptOptions::for_mean(3);
    let mut g = group(c, "filter_mean3");
    for_each_size(&mut g, |g, id, inputs| {
        let setup = OnceCell::new();
        g.bench_function(id, |b| {
            let (kp, enc) = setup.get_or_init(|| {
                let Inputs { kp, img } = inputs();
                (kp, encrypt(&img, kp, &opts))
            });
            b.iter(|| mean3(black_box(enc), kp));
        });
    });
    g.finish();
}

/// `filter_decrypt`: trimming, decryption and rounding of a filtered image.
fn bench_decrypt(c: &mut Criterion) {
    let opts = EncryptOptions::for_mean(3);
    let mut g = group(c, "filter_decrypt");
    for_each_size(&mut g, |g, id, inputs| {
        let setup = OnceCell::new();
        g.bench_function(id, |b| {
            let (kp, filtered) = setup.get_or_init(|| {
                let Inputs { kp, img } = inputs();
                let filtered = mean3(&encrypt(&img, kp, &opts), kp);
                check(&img, &decrypt(&filtered, kp), &opts);
                (kp, filtered)
            });
            b.iter(|| decrypt(black_box(filtered), kp));
        });
    });
    g.finish();
}

/// `filter_pipeline`: encrypt, filter and decrypt, end to end.
fn bench_pipeline(c: &mut Criterion) {
    let opts = EncryptOptions::for_mean(3);
    let mut g = group(c, "filter_pipeline");
    for_each_size(&mut g, |g, id, inputs| {
        let setup = OnceCell::new();
        g.bench_function(id, |b| {
            let Inputs { kp, img } = setup.get_or_init(inputs);
            b.iter(|| pipeline(black_box(img), kp, black_box(&opts)));
        });
    });
    g.finish();
}

/// `filter_layout`: the pipeline with packed plaintexts against one value
/// per ciphertext, on a 16x16 RGB image at 2048 bits.
fn bench_layout(c: &mut Criterion) {
    let mut g = group(c, "filter_layout");
    g.throughput(values(LAYOUT_SIDE));
    for (name, opts) in [
        ("packed", EncryptOptions::for_mean(3)),
        ("unpacked", EncryptOptions::unpacked()),
    ] {
        let setup = OnceCell::new();
        g.bench_function(BenchmarkId::new(name, LAYOUT_SIDE), |b| {
            let (kp, img) = setup.get_or_init(|| {
                let (kp, img) = (keypair(LAYOUT_BITS), test_image(LAYOUT_SIDE));
                check(&img, &pipeline(&img, kp, &opts), &opts);
                (kp, img)
            });
            b.iter(|| pipeline(black_box(img), kp, black_box(&opts)));
        });
    }
    g.finish();
}

/// The image side and key size of `filter_each` and `filter_separable`.
fn each_inputs() -> (usize, u32) {
    let side = list_from_env::<usize>("FILTER_EACH_SIDE", "512")[0];
    let bits = list_from_env::<u32>("FILTER_EACH_BITS", "2048")[0];
    (side, bits)
}

/// The file-name form of a filter's label.
fn slug(f: &Filter) -> String {
    f.label().replace([' ', '=', '/', '.'], "_")
}

/// `filter_each`: every built-in filter on the server.
fn bench_each(c: &mut Criterion) {
    let (side, bits) = each_inputs();
    let mut g = group(c, "filter_each");
    g.throughput(values(side));
    for f in Filter::every_builtin() {
        let setup = OnceCell::new();
        g.bench_function(BenchmarkId::new(slug(&f), side), |b| {
            let (kp, enc) = setup.get_or_init(|| {
                let kp = keypair(bits);
                let opts = he_filter::encrypt_options(std::slice::from_ref(&f)).expect("options");
                (kp, encrypt(&test_image(side), kp, &opts))
            });
            b.iter(|| {
                he_filter::apply_chain(
                    black_box(enc),
                    kp.public_key(),
                    std::slice::from_ref(&f),
                    &NoProgress,
                )
                .expect("filter")
            });
        });
    }
    g.finish();
}

/// `filter_separable`: two 1-D passes against the full `k x k` form.
fn bench_separable(c: &mut Criterion) {
    let (side, bits) = each_inputs();
    let mut g = group(c, "filter_separable");
    g.throughput(values(side));
    for f in [
        Filter::Mean { k: 5 },
        Filter::Gaussian { k: 5, sigma: None },
        Filter::SobelX,
        Filter::MotionH { k: 9 },
    ] {
        let kernel = f.kernel().expect("kernel").expect("a neighbourhood filter");
        assert!(kernel.separable().is_some(), "{f} is separable");
        let setup = OnceCell::new();
        for (how, k) in [
            ("1d_passes", kernel.clone()),
            ("full_2d", kernel.clone().without_1d_passes()),
        ] {
            g.bench_function(BenchmarkId::new(format!("{}/{how}", slug(&f)), side), |b| {
                let (kp, enc) = setup.get_or_init(|| {
                    let kp = keypair(bits);
                    let opts =
                        he_filter::encrypt_options(std::slice::from_ref(&f)).expect("options");
                    (kp, encrypt(&test_image(side), kp, &opts))
                });
                b.iter(|| {
                    he_filter::apply(black_box(enc), kp.public_key(), &k, &NoProgress)
                        .expect("filter")
                });
            });
        }
    }
    g.finish();
}

/// criterion's macros generate an undocumented `pub fn`: they live here,
/// where the lints that want documentation are allowed.
#[allow(missing_docs, unreachable_pub)]
mod run {
    use super::{
        bench_decrypt, bench_each, bench_encrypt, bench_layout, bench_mean3, bench_pipeline,
        bench_separable,
    };

    criterion::criterion_group!(
        benches,
        bench_encrypt,
        bench_mean3,
        bench_decrypt,
        bench_pipeline,
        bench_layout,
        bench_each,
        bench_separable
    );
}

criterion::criterion_main!(run::benches);
