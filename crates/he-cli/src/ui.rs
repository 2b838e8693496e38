//! What a person sees: progress bars, summaries, default output names and
//! the picture of what the server saw.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use enc_image::{DecryptedImage, OutputMapping, Phase, PixelImage};
use he_filter::Filter;
use image::DynamicImage;
use indicatif::{ProgressBar, ProgressStyle};

use crate::canvas::ServerView;
use crate::files;

/// The photo used when no input is given (NASA, public domain, via
/// scikit-image), 256 x 256 RGB.
pub(crate) const BUNDLED_PHOTO: &[u8] = include_bytes!("../assets/astronaut-256.png");
/// The bundled photo's name, for default output names.
pub(crate) const BUNDLED_NAME: &str = "astronaut-256.png";

/// The input image: the file named, or the bundled photo; resized if asked.
#[derive(Debug)]
pub(crate) struct Input {
    /// The decoded image, upright, as pixel values (held once: a 48 MP
    /// photo is 144 MB).
    pixels: PixelImage,
    /// Its path (the bundled photo's name when none was given).
    pub(crate) path: PathBuf,
    /// Whether it is the bundled photo.
    pub(crate) bundled: bool,
}

impl Input {
    /// Reads `path` (or the bundled photo), resized to `resize` (`WxH`).
    pub(crate) fn load(path: Option<&Path>, resize: Option<&str>) -> Result<Input> {
        let (image, path, bundled) = match path {
            Some(p) => (files::read_image(p)?, p.to_path_buf(), false),
            None => (
                image::load_from_memory(BUNDLED_PHOTO).context("the bundled photo")?,
                PathBuf::from(BUNDLED_NAME),
                true,
            ),
        };
        let image = match resize {
            Some(s) => {
                let (w, h) = parse_size(s, files::MAX_IMAGE_SIDE)?;
                image.resize_exact(w, h, image::imageops::FilterType::Lanczos3)
            }
            None => image,
        };
        Ok(Input {
            pixels: PixelImage::from_dynamic_owned(image),
            path,
            bundled,
        })
    }

    /// The image as pixel values.
    pub(crate) fn pixels(&self) -> &PixelImage {
        &self.pixels
    }
}

/// `WxH` with both sides in `1..=max`, for `--resize`.
pub(crate) fn parse_size(v: &str, max: u32) -> Result<(u32, u32)> {
    let bad = || anyhow::anyhow!("--resize: expected WxH within 1x1 to {max}x{max}, got {v:?}");
    let (w, h) = v.split_once('x').ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if w == 0 || h == 0 || w > max || h > max {
        return Err(bad());
    }
    Ok((w, h))
}

/// A progress bar on standard error for each phase of work (hidden when
/// standard error is not a terminal).
#[derive(Debug)]
pub(crate) struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar that is not started yet.
    pub(crate) fn new() -> Self {
        Bar {
            bar: ProgressBar::hidden(),
        }
    }

    /// A spinner for work of unknown length (key generation).
    pub(crate) fn spinner(msg: &str) -> Self {
        if QUIET.load(Ordering::Relaxed) {
            return Bar::new();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message(msg.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar }
    }
}

impl enc_image::Progress for Bar {
    fn start(&self, phase: Phase, total: u64) {
        if !QUIET.load(Ordering::Relaxed) {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        self.bar.set_length(total);
        self.bar.set_position(0);
        let template = match phase {
            Phase::Upload | Phase::Download => {
                "{msg:>9} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)"
            }
            Phase::Filter => "{msg:>9} [{bar:40}] {pos}/{len} ciphertexts on the server",
            _ => "{msg:>9} [{bar:40}] {pos}/{len} ciphertexts ({eta} left)",
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

/// Whether progress is shown at all (`--quiet` turns it off).
static QUIET: AtomicBool = AtomicBool::new(false);

/// No progress bars, spinners or progress lines from now on (`--quiet`);
/// summaries and errors still print.
pub(crate) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether progress is to be drawn as bars: standard error is a terminal
/// and `--quiet` was not given.
fn draw_bars() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A duration for people: `42 s`, `3 min 05 s`, `1 h 02 min`.
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// Pixels per second for people: `1.23 MP/s`, or `45.6 kP/s` below one
/// megapixel per second.
fn pixel_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} MP/s", per_sec / 1e6)
    } else {
        format!("{:.1} kP/s", per_sec / 1e3)
    }
}

/// The progress of a pipelined (tiled) job, for the whole job: tiles done
/// of the plan's (those of an interrupted run included), throughput in
/// megapixels per second and the time left. On a terminal, one bar (its
/// length the ciphertexts to decrypt, the phase that paces the job);
/// otherwise one line on standard error when the job starts and at every
/// tenth of its tiles, so that a log stays readable; nothing with
/// `--quiet`.
#[derive(Debug)]
pub(crate) struct JobBar {
    bar: ProgressBar,
    lines: bool,
    tiles: u64,
    tiles_before: u64,
    tiles_done: AtomicU64,
    pixels_todo: u64,
    pixels_done: AtomicU64,
    tenths_said: AtomicU64,
    started: Instant,
    encrypted: AtomicU64,
    encrypt_total: AtomicU64,
}

impl JobBar {
    /// The progress of a job of `tiles` tiles of which `done` are done
    /// already, with `pixels_todo` pixels in the others.
    pub(crate) fn new(tiles: usize, done: usize, pixels_todo: u64) -> Self {
        let lines = !QUIET.load(Ordering::Relaxed) && !std::io::stderr().is_terminal();
        JobBar {
            bar: ProgressBar::hidden(),
            lines,
            tiles: tiles as u64,
            tiles_before: done as u64,
            tiles_done: AtomicU64::new(done as u64),
            pixels_todo,
            pixels_done: AtomicU64::new(0),
            tenths_said: AtomicU64::new(0),
            started: Instant::now(),
            encrypted: AtomicU64::new(0),
            encrypt_total: AtomicU64::new(0),
        }
    }

    /// One more tile of `pixels` pixels is done (checked and saved).
    pub(crate) fn tile_done(&self, pixels: u64) {
        let done = self.tiles_done.fetch_add(1, Ordering::Relaxed) + 1;
        self.pixels_done.fetch_add(pixels, Ordering::Relaxed);
        self.show();
        let todo = (self.tiles - self.tiles_before).max(1);
        let tenths = 10 * (done - self.tiles_before) / todo;
        if self.lines && self.tenths_said.fetch_max(tenths, Ordering::Relaxed) < tenths {
            eprintln!("  progress: {}", self.status(done));
        }
    }

    /// Tiles, share, throughput and time left, in words.
    fn status(&self, done: u64) -> String {
        let elapsed = self.started.elapsed();
        let pixels = self.pixels_done.load(Ordering::Relaxed);
        let rate = pixels as f64 / elapsed.as_secs_f64().max(1e-3);
        let left = if pixels == 0 {
            String::new()
        } else if pixels >= self.pixels_todo {
            ", done".into()
        } else {
            let secs = (self.pixels_todo - pixels) as f64 / rate.max(1e-9);
            format!(
                ", about {} left",
                human_duration(Duration::from_secs_f64(secs))
            )
        };
        format!(
            "{done}/{} tiles ({}%), {}, {}{left}",
            self.tiles,
            100 * done / self.tiles.max(1),
            human_duration(elapsed),
            pixel_rate(rate)
        )
    }

    fn show(&self) {
        if self.bar.is_hidden() {
            return;
        }
        let total = self.encrypt_total.load(Ordering::Relaxed).max(1);
        let pct = 100 * self.encrypted.load(Ordering::Relaxed) / total;
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.pixels_done.load(Ordering::Relaxed) as f64 / elapsed;
        self.bar.set_message(format!(
            "tile {}/{}, {}, encrypted {pct}%",
            self.tiles_done.load(Ordering::Relaxed),
            self.tiles,
            pixel_rate(rate)
        ));
    }
}

impl enc_image::Progress for JobBar {
    fn start(&self, phase: Phase, total: u64) {
        match phase {
            Phase::Encrypt => self.encrypt_total.store(total, Ordering::Relaxed),
            Phase::Decrypt => {
                if self.lines {
                    eprintln!(
                        "  progress: {} of {} tiles to do{}",
                        self.tiles - self.tiles_before,
                        self.tiles,
                        match self.tiles_before {
                            0 => String::new(),
                            n => format!(" ({n} done by an interrupted run)"),
                        }
                    );
                }
                if !draw_bars() {
                    return;
                }
                self.bar
                    .set_draw_target(indicatif::ProgressDrawTarget::stderr());
                self.bar.set_length(total);
                self.bar.set_style(
                    ProgressStyle::with_template(
                        "[{elapsed_precise}] [{bar:30}] {percent:>3}% {msg} ({eta} left)",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                self.show();
            }
            _ => {}
        }
    }
    fn advance_phase(&self, phase: Phase, n: u64) {
        match phase {
            Phase::Decrypt => self.bar.inc(n),
            Phase::Encrypt => {
                let total = self.encrypt_total.load(Ordering::Relaxed).max(1);
                let before = self.encrypted.fetch_add(n, Ordering::Relaxed);
                if 100 * before / total != 100 * (before + n) / total {
                    self.show();
                }
            }
            _ => {}
        }
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for JobBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Runs `f`, returning its result and how long it took.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// Seconds with millisecond precision, for summaries.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// A human-readable byte count.
pub(crate) fn bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.2} MiB", n as f64 / f64::from(1 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// `dir/stem-suffix.png`, or with `-1`, `-2`, ... appended if that name is
/// taken, so that nothing the user has is overwritten.
fn fresh_path(dir: &Path, stem: &str, suffix: &str) -> PathBuf {
    let first = dir.join(format!("{stem}-{suffix}.png"));
    if first.symlink_metadata().is_err() {
        return first;
    }
    (1..)
        .map(|i| dir.join(format!("{stem}-{suffix}-{i}.png")))
        .find(|p| p.symlink_metadata().is_err())
        .unwrap_or(first)
}

/// The default output suffix for a chain: `blurred` for a mean, else the
/// filters' names (`sobel-x`, `gaussian-sharpen`).
pub(crate) fn output_suffix(chain: &[Filter]) -> String {
    if let [Filter::Mean { .. }] = chain {
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

/// Where a filtering command writes its result and the picture of what the
/// server saw. `output` is the user's `-o` (refused if it exists, unless
/// `force`); without it, a fresh name from the input's stem and
/// [`output_suffix`]: in the current directory for the bundled photo,
/// beside the input otherwise.
pub(crate) fn output_paths(
    output: Option<&Path>,
    input: &Input,
    chain: &[Filter],
    force: bool,
) -> Result<(PathBuf, PathBuf)> {
    let stem = input
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image")
        .to_string();
    let out = match output {
        Some(p) => p.to_path_buf(),
        None if input.bundled => fresh_path(Path::new("."), &stem, &output_suffix(chain)),
        None => fresh_path(
            input.path.parent().unwrap_or(Path::new(".")),
            &stem,
            &output_suffix(chain),
        ),
    };
    files::check_free(&out, force)?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let out_stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
    let view = fresh_path(dir, out_stem, "server-view");
    Ok((out, view))
}

/// Writes a checked result to `out` (a JPEG at `quality`, see
/// [`files::jpeg_quality`]) and the picture of what the server saw to
/// `view_path`, and says so: the last step of `he blur` and `he submit`.
pub(crate) fn write_result_and_view(
    out: &Path,
    view_path: &Path,
    result: PixelImage,
    view: &ServerView,
    force: bool,
    quality: u8,
) -> Result<()> {
    files::write_image_with(out, &result.into_dynamic()?, force, quality)?;
    files::write_image(view_path, &DynamicImage::ImageRgb8(view.picture()), false)?;
    println!(
        "wrote {} and {} (what the server saw)",
        out.display(),
        view_path.display()
    );
    Ok(())
}

/// Number of samples that differ between two images of the same size (or
/// all of them if the sizes differ).
pub(crate) fn count_differences(a: &PixelImage, b: &PixelImage) -> usize {
    if a.width() != b.width() || a.height() != b.height() || a.color() != b.color() {
        return a.len().max(b.len());
    }
    a.data()
        .iter()
        .zip(b.data())
        .filter(|(x, y)| x != y)
        .count()
}

/// How many values of a decryption differ from the plaintext reference:
/// the exact values (any difference in scale or length counts too), or
/// the pixels under `mapping`, whichever is more. 0 means exactly equal.
pub(crate) fn count_value_differences(
    got: &DecryptedImage,
    want: &DecryptedImage,
    mapping: OutputMapping,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_read_well() {
        assert_eq!(human_duration(Duration::from_secs(42)), "42 s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3 min 05 s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1 h 02 min");
        assert_eq!(pixel_rate(1_234_000.0), "1.23 MP/s");
        assert_eq!(pixel_rate(45_600.0), "45.6 kP/s");
    }

    #[test]
    fn sizes_parse_within_bounds() {
        assert_eq!(parse_size("512x256", 16384).unwrap(), (512, 256));
        for bad in ["512", "0x5", "5x0", "x", "20000x10", "axb"] {
            assert!(parse_size(bad, 16384).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_names_never_overwrite() {
        let dir = std::env::temp_dir().join(format!("he-cli-ui-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let taken = dir.join("x-blurred.png");
        std::fs::write(&taken, b"mine").unwrap();
        assert_eq!(
            fresh_path(&dir, "x", "blurred"),
            dir.join("x-blurred-1.png")
        );
        assert_eq!(output_suffix(&[Filter::Mean { k: 5 }]), "blurred");
        assert_eq!(
            output_suffix(&[Filter::Sharpen, Filter::SobelX]),
            "sharpen-sobel-x"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
