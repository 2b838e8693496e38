//! Support code shared by the toolkit's examples (`blur`, and later the
//! client and server): progress bars, timing summaries, safe output paths
//! and the "what the server saw" picture.
//!
//! The toolkit itself is the three library crates: [`paillier`],
//! [`enc_image`] and [`he_filter`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub mod cli;
pub mod service;

pub use enc_image;
pub use he_filter;
pub use paillier;

/// The photo the examples use when given no input (NASA, public domain,
/// via scikit-image), 256 x 256 RGB.
pub const DEFAULT_IMAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/astronaut-256.png");

/// A progress bar on standard error for each phase of work (hidden when
/// standard error is not a terminal): `upload` and `download` count bytes,
/// other phases (`encrypt`, `filter`, `decrypt`) count ciphertexts.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar that is not started yet.
    #[must_use]
    pub fn new() -> Self {
        let bar = ProgressBar::hidden();
        Bar { bar }
    }

    /// A spinner for work of unknown length (key generation).
    #[must_use]
    pub fn spinner(msg: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_message(msg.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl enc_image::Progress for Bar {
    fn start(&self, phase: enc_image::Phase, total: u64) {
        self.bar
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.bar.set_length(total);
        self.bar.set_position(0);
        let template = if phase.counts_bytes() {
            "{msg:>9} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)"
        } else if phase == enc_image::Phase::Filter {
            "{msg:>9} [{bar:40}] {pos}/{len} ciphertexts on the server"
        } else {
            "{msg:>9} [{bar:40}] {pos}/{len} ciphertexts ({eta} left)"
        };
        self.bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        self.bar.set_message(phase.name());
        self.bar.reset_eta();
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Runs `f`, returning its result and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// Seconds with millisecond precision, for summaries.
#[must_use]
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// A human-readable byte count.
#[must_use]
pub fn bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.2} MiB", n as f64 / f64::from(1 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// Where to write an output the user did not name: `dir/stem-suffix.png`,
/// or with `-1`, `-2`, ... appended if that file exists, so that nothing
/// the user has is overwritten.
#[must_use]
pub fn fresh_path(dir: &Path, stem: &str, suffix: &str) -> PathBuf {
    let first = dir.join(format!("{stem}-{suffix}.png"));
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|i| dir.join(format!("{stem}-{suffix}-{i}.png")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// A picture of bytes as the server sees them: the ciphertext payload laid
/// out as RGB pixels, `width` wide. Uniform noise, whatever the photo.
#[must_use]
pub fn noise_picture(payload: &[u8], width: u32) -> image::RgbImage {
    let width = width.max(1);
    let height = (payload.len() / 3).div_ceil(width as usize).max(1) as u32;
    let mut data = payload.to_vec();
    data.resize((width * height * 3) as usize, 0);
    image::RgbImage::from_raw(width, height, data)
        .unwrap_or_else(|| image::RgbImage::new(width, height))
}

/// Number of samples that differ between two images of the same size (or
/// all of them if the sizes differ).
#[must_use]
pub fn count_differences(a: &enc_image::PixelImage, b: &enc_image::PixelImage) -> usize {
    if a.width() != b.width() || a.height() != b.height() || a.color() != b.color() {
        return a.len().max(b.len());
    }
    a.data()
        .iter()
        .zip(b.data())
        .filter(|(x, y)| x != y)
        .count()
}

/// The default output suffix for a chain: `blurred` for a mean, else the
/// filters' names (`sobel-x`, `gaussian-sharpen`).
#[must_use]
pub fn output_suffix(chain: &[he_filter::Filter]) -> String {
    if let [he_filter::Filter::Mean { .. }] = chain {
        return "blurred".into();
    }
    let names: Vec<String> = chain
        .iter()
        .map(|f| {
            f.label()
                .split(' ')
                .next()
                .unwrap_or("filtered")
                .to_string()
        })
        .collect();
    names.join("-")
}

/// Where a filter example writes its result and the picture of what the
/// server saw. `output` is the user's `-o` (refused if it exists, unless
/// `force`); without it, a fresh name from `input`'s stem and
/// [`output_suffix`]: in the current directory for the bundled photo
/// (`bundled`), beside the input otherwise. Nothing existing is
/// overwritten unless `force`.
pub fn output_paths(
    output: Option<&Path>,
    input: &Path,
    bundled: bool,
    chain: &[he_filter::Filter],
    force: bool,
) -> Result<(PathBuf, PathBuf), String> {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image")
        .to_string();
    let out = match output {
        Some(p) => {
            if p.exists() && !force {
                return Err(format!(
                    "{} exists; choose another -o or pass --force to overwrite it",
                    p.display()
                ));
            }
            p.to_path_buf()
        }
        None if bundled => fresh_path(Path::new("."), &stem, &output_suffix(chain)),
        None => fresh_path(
            input.parent().unwrap_or(Path::new(".")),
            &stem,
            &output_suffix(chain),
        ),
    };
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(format!(
            "cannot write {}: {} is not a directory",
            out.display(),
            dir.display()
        ));
    }
    let out_stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
    let view = fresh_path(dir, out_stem, "server-view");
    Ok((out, view))
}

/// How many values of a decryption differ from the plaintext reference:
/// the exact values (any difference in scale or length counts too), or
/// the pixels under `mapping`, whichever is more. 0 means exactly equal.
#[must_use]
pub fn count_value_differences(
    got: &enc_image::DecryptedImage,
    want: &enc_image::DecryptedImage,
    mapping: enc_image::OutputMapping,
) -> usize {
    let exact = got
        .values()
        .iter()
        .zip(want.values())
        .filter(|(a, b)| a != b)
        .count()
        + usize::from(got.scale() != want.scale() || got.values().len() != want.values().len());
    count_differences(&got.to_pixels_with(mapping), &want.to_pixels_with(mapping)).max(exact)
}
