//! Files in and out, never trusted and never clobbered.
//!
//! - Inputs must be regular files (a FIFO would hang us, `/dev/zero` would
//!   be read until memory ran out) and their size is checked against a cap
//!   before a byte is read; images decode under explicit limits.
//! - Outputs appear atomically: the bytes go to a temporary file in the
//!   same directory, which is then linked to the name (refused if anything,
//!   even a dangling symlink, has the name meanwhile) or, with `--force`,
//!   renamed over it. A symlink at the name is replaced, never followed.

use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use paillier::Keypair;

/// Key files are a few KiB.
pub(crate) const MAX_KEY_FILE: u64 = 64 << 10;
/// Encoded input images: a 48 MP 16-bit PNG is about 300 MB.
pub(crate) const MAX_IMAGE_FILE: u64 = 512 << 20;
/// Largest image side accepted when decoding.
pub(crate) const MAX_IMAGE_SIDE: u32 = 16_384;
/// Largest allocation while decoding an image (a 48 MP RGBA 16-bit image
/// is 384 MiB).
pub(crate) const MAX_IMAGE_ALLOC: u64 = 1 << 30;

/// Opens `path` for reading if it is a regular file of at most `max`
/// bytes; `what` names it in errors.
fn open_capped(path: &Path, max: u64, what: &str) -> Result<(File, u64)> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{what} {} is not a regular file (a directory, device or pipe)",
            path.display()
        );
    }
    if meta.len() > max {
        bail!(
            "{what} {} is {} bytes; at most {max} are accepted",
            path.display(),
            meta.len()
        );
    }
    let f = File::open(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok((f, meta.len()))
}

/// The bytes of a regular file of at most `max` bytes (checked before
/// reading, and again while reading in case it grows).
pub(crate) fn read_capped(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let (f, len) = open_capped(path, max, what)?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(max + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if buf.len() as u64 > max {
        bail!("{what} {} grew past {max} bytes while read", path.display());
    }
    Ok(buf)
}

/// A UTF-8 text file of at most `max` bytes.
pub(crate) fn read_text(path: &Path, max: u64, what: &str) -> Result<String> {
    String::from_utf8(read_capped(path, max, what)?)
        .map_err(|_| anyhow!("{what} {} is not UTF-8 text", path.display()))
}

/// Decodes an image under explicit limits and applies its EXIF orientation,
/// so that a portrait photo from a phone comes out upright.
pub(crate) fn read_image(path: &Path) -> Result<DynamicImage> {
    let bytes = read_capped(path, MAX_IMAGE_FILE, "image")?;
    decode_image(bytes, &format!("image {}", path.display()))
}

/// Decodes the bytes of an encoded image (PNG or JPEG, at most
/// [`MAX_IMAGE_FILE`]) under explicit limits and applies its EXIF
/// orientation; `what` names it in errors.
pub(crate) fn decode_image(bytes: Vec<u8>, what: &str) -> Result<DynamicImage> {
    if bytes.len() as u64 > MAX_IMAGE_FILE {
        bail!(
            "{what} is {} bytes; at most {MAX_IMAGE_FILE} are accepted",
            bytes.len()
        );
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("cannot read {what}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .with_context(|| format!("cannot decode {what}"))?;
    let orientation = decoder
        .orientation()
        .with_context(|| format!("cannot decode {what}"))?;
    let mut img = DynamicImage::from_decoder(decoder).with_context(|| {
        format!(
            "cannot decode {what} (limits: {MAX_IMAGE_SIDE} px a side, {} MiB)",
            MAX_IMAGE_ALLOC >> 20
        )
    })?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Refuses `path` if something has its name, unless `force`: the early
/// check, so that no work is wasted. [`write_atomic`] checks again.
pub(crate) fn check_free(path: &Path, force: bool) -> Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        bail!(
            "{} exists; choose another path or pass --force to overwrite it",
            path.display()
        );
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        bail!(
            "cannot write {}: {} is not a directory",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `bytes` to `path` atomically: all or nothing, never through a
/// symlink, never over an existing file unless `force`. A `secret` file is
/// created owner-only (0600 on Unix).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], force: bool, secret: bool) -> Result<()> {
    write_atomic_with(path, force, secret, |w| Ok(w.write_all(bytes)?))
}

/// [`write_atomic`] for content that `write` streams into the file (an
/// encoder), so that it is never held in memory whole.
pub(crate) fn write_atomic_with(
    path: &Path,
    force: bool,
    secret: bool,
    write: impl FnOnce(&mut std::io::BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("cannot write {}: not a file name", path.display()))?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("the OS random source failed: {e}"))?;
    let tmp = dir.join(format!(
        ".{}.{:016x}.tmp",
        name.to_string_lossy(),
        u64::from_le_bytes(nonce)
    ));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = secret;
    let result = (|| -> Result<()> {
        let f = opts
            .open(&tmp)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        write(&mut w).with_context(|| format!("cannot write {}", tmp.display()))?;
        let f = w
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .and_then(|f| f.sync_all().map(|()| f))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        drop(f);
        if force {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        } else {
            // A hard link fails if anything has the name, even a dangling
            // symlink: the no-overwrite rule, checked at the last moment.
            std::fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow!(
                        "{} exists; choose another path or pass --force to overwrite it",
                        path.display()
                    )
                } else {
                    anyhow!("cannot write {}: {e}", path.display())
                }
            })?;
            std::fs::remove_file(&tmp)
                .with_context(|| format!("cannot remove {}", tmp.display()))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Opens an existing regular file to read and to append to, never through
/// a symlink: the name must be a regular file before the open and still
/// the very file opened after it. `what` names it in errors.
pub(crate) fn open_for_append(path: &Path, what: &str) -> Result<File> {
    let before = path
        .symlink_metadata()
        .with_context(|| format!("cannot open {what} {}", path.display()))?;
    if !before.file_type().is_file() {
        bail!(
            "{what} {} is not a regular file (a symlink, directory or device); refused",
            path.display()
        );
    }
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {what} {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let after = f
            .metadata()
            .with_context(|| format!("cannot open {what} {}", path.display()))?;
        if (after.dev(), after.ino()) != (before.dev(), before.ino()) {
            bail!(
                "{what} {} was replaced while opened; refused",
                path.display()
            );
        }
    }
    Ok(f)
}

/// JPEG quality when none is asked for (`--quality`).
pub(crate) const DEFAULT_JPEG_QUALITY: u8 = 90;

/// The JPEG quality to write `path` with: `quality` (`--quality`) if
/// given, which only a JPEG output (`.jpg`, `.jpeg`) takes, else
/// [`DEFAULT_JPEG_QUALITY`]. Checked before any work is done.
pub(crate) fn jpeg_quality(path: &Path, quality: Option<u8>) -> Result<u8> {
    let Some(q) = quality else {
        return Ok(DEFAULT_JPEG_QUALITY);
    };
    if ImageFormat::from_path(path).ok() != Some(ImageFormat::Jpeg) {
        bail!(
            "--quality applies to JPEG output only, and {} is not written as JPEG \
             (name it .jpg for a JPEG, or drop --quality)",
            path.display()
        );
    }
    if !(1..=100).contains(&q) {
        bail!("--quality must be between 1 and 100, not {q}");
    }
    Ok(q)
}

/// Encodes `img` in the format its path's extension names (PNG or JPEG,
/// at [`DEFAULT_JPEG_QUALITY`]) and writes it atomically.
pub(crate) fn write_image(path: &Path, img: &DynamicImage, force: bool) -> Result<()> {
    write_image_with(path, img, force, DEFAULT_JPEG_QUALITY)
}

/// Encodes `img` in the format its path's extension names (PNG, or JPEG at
/// `quality`, 1 to 100) and writes it atomically, owner-only (0600 on
/// Unix): a decrypted photo is what the whole toolkit keeps private. No
/// metadata of the input (EXIF, ICC, text) is carried over: the encoders
/// write pixels only.
pub(crate) fn write_image_with(
    path: &Path,
    img: &DynamicImage,
    force: bool,
    quality: u8,
) -> Result<()> {
    let format = ImageFormat::from_path(path).map_err(|_| {
        anyhow!(
            "cannot tell the image format of {} from its extension (use .png or .jpg)",
            path.display()
        )
    })?;
    // Encoded straight into the file: a large photo's PNG or JPEG is
    // never held in memory beside its pixels.
    write_atomic_with(path, force, true, |w| {
        match format {
            ImageFormat::Jpeg => {
                let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(
                    &mut *w,
                    quality.clamp(1, 100),
                );
                // JPEG holds 8-bit grey or RGB only; those are written as
                // they are, the rest converted.
                match img {
                    DynamicImage::ImageRgb8(_) | DynamicImage::ImageLuma8(_) => {
                        img.write_with_encoder(enc)
                    }
                    _ if img.color().has_color() => {
                        DynamicImage::ImageRgb8(img.to_rgb8()).write_with_encoder(enc)
                    }
                    _ => DynamicImage::ImageLuma8(img.to_luma8()).write_with_encoder(enc),
                }
            }
            _ => img.write_to(&mut *w, format),
        }
        .with_context(|| format!("cannot encode {}", path.display()))
    })
}

/// Loads a key pair written by [`save_keypair`]: refuses a file that
/// others can read (on Unix) unless `allow_readable`, or that is not a
/// regular file of key size, then checks the key in full.
pub(crate) fn load_keypair(path: &Path, allow_readable: bool) -> Result<Keypair> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_file() && mode & 0o077 != 0 && !allow_readable {
            bail!(
                "{} holds a private key but is readable by others (mode {mode:o}); \
                 run chmod 600 {} if it is yours (or pass --allow-readable-key)",
                path.display(),
                path.display()
            );
        }
    }
    let _ = allow_readable;
    let bytes = read_capped(path, MAX_KEY_FILE, "key file")?;
    Keypair::from_bytes(&bytes).with_context(|| format!("key file {}", path.display()))
}

/// Loads a public key file (written by `he keygen --public`).
pub(crate) fn load_public_key(path: &Path) -> Result<paillier::PublicKey> {
    let bytes = read_capped(path, MAX_KEY_FILE, "public key file")?;
    paillier::PublicKey::from_bytes(&bytes)
        .with_context(|| format!("public key file {}", path.display()))
}

/// Saves a key pair with owner-only permissions; refuses to replace an
/// existing file unless `force`.
pub(crate) fn save_keypair(path: &Path, kp: &Keypair, force: bool) -> Result<()> {
    write_atomic(path, &kp.to_bytes(), force, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("he-cli-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn outputs_are_never_clobbered_and_secrets_are_private() {
        let dir = scratch("write");
        let p = dir.join("out.bin");
        write_atomic(&p, b"one", false, true).unwrap();
        let e = write_atomic(&p, b"two", false, true).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two", true, true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = load_keypair(&p, false).unwrap_err();
            assert!(e.to_string().contains("readable by others"), "{e}");
            let e = load_keypair(&p, true).unwrap_err();
            assert!(!e.to_string().contains("readable by others"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_is_not_followed() {
        let dir = scratch("symlink");
        let target = dir.join("elsewhere.png");
        let link = dir.join("out.png");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(check_free(&link, false).is_err());
        assert!(write_atomic(&link, b"x", false, false).is_err());
        assert!(!target.exists(), "the write went through the symlink");
        // Forced, the link itself is replaced, not its target.
        write_atomic(&link, b"x", true, false).unwrap();
        assert!(!target.exists());
        assert!(!link.symlink_metadata().unwrap().file_type().is_symlink());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = scratch("read");
        assert!(read_capped(&dir, 10, "key file").is_err());
        #[cfg(unix)]
        {
            let e = read_capped(Path::new("/dev/zero"), 10, "key file").unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        let p = dir.join("big");
        std::fs::write(&p, [0u8; 100]).unwrap();
        let e = read_capped(&p, 10, "kernel file").unwrap_err();
        assert!(e.to_string().contains("at most 10"), "{e}");
        assert_eq!(read_capped(&p, 100, "kernel file").unwrap().len(), 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_format_follows_the_extension_and_jpeg_quality_counts() {
        let dir = scratch("formats");
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(32, 32, |x, y| {
            image::Rgba([(x * 8) as u8, (y * 8) as u8, ((x ^ y) * 8) as u8, 200])
        }));
        let (png, lo, hi) = (dir.join("a.png"), dir.join("lo.jpg"), dir.join("hi.jpeg"));
        write_image(&png, &img, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&png).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "a decrypted image readable by others");
        }
        write_image_with(&lo, &img, false, 10).unwrap();
        write_image_with(&hi, &img, false, 95).unwrap();
        assert_eq!(
            image::ImageReader::open(&png)
                .unwrap()
                .with_guessed_format()
                .unwrap()
                .format(),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            image::ImageReader::open(&hi)
                .unwrap()
                .with_guessed_format()
                .unwrap()
                .format(),
            Some(ImageFormat::Jpeg)
        );
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        assert!(size(&lo) < size(&hi), "{} !< {}", size(&lo), size(&hi));
        assert!(write_image(&dir.join("x.unknown"), &img, false).is_err());
        assert_eq!(jpeg_quality(&lo, Some(10)).unwrap(), 10);
        assert_eq!(jpeg_quality(&png, None).unwrap(), DEFAULT_JPEG_QUALITY);
        let e = jpeg_quality(&png, Some(80)).unwrap_err();
        assert!(e.to_string().contains("JPEG output only"), "{e}");
        assert!(jpeg_quality(&hi, Some(0)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_portrait_photo_from_a_phone_comes_out_upright() {
        // A 16x8 landscape JPEG whose EXIF says "rotate 90 degrees
        // clockwise to display" (orientation 6), as phones write portraits.
        let dir = scratch("exif");
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(16, 8, |x, _| {
            image::Rgb(if x < 8 { [0, 0, 0] } else { [255, 255, 255] })
        }));
        let mut jpeg = Vec::new();
        img.write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&[6, 0, 0, 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut with_exif = jpeg[..2].to_vec(); // SOI
        with_exif.extend_from_slice(&[0xff, 0xe1]);
        with_exif.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        with_exif.extend_from_slice(&app1);
        with_exif.extend_from_slice(&jpeg[2..]);
        let p = dir.join("portrait.jpg");
        std::fs::write(&p, &with_exif).unwrap();
        let upright = read_image(&p).unwrap();
        assert_eq!((upright.width(), upright.height()), (8, 16));
        // Rotated clockwise: the left (black) half is now on top.
        let rgb = upright.to_rgb8();
        assert!(rgb.get_pixel(4, 2).0[0] < 64 && rgb.get_pixel(4, 13).0[0] > 192);
        // The plain JPEG stays as it is.
        std::fs::write(&p, &jpeg).unwrap();
        let plain = read_image(&p).unwrap();
        assert_eq!((plain.width(), plain.height()), (16, 8));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_image_declaring_huge_dimensions_is_refused() {
        // A valid PNG header declaring 20000 x 20000 pixels, then nothing.
        let dir = scratch("bomb");
        let p = dir.join("bomb.png");
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&20_000u32.to_be_bytes());
        ihdr.extend_from_slice(&20_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&(ihdr.len() as u32).to_be_bytes());
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&ihdr);
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        std::fs::write(&p, &png).unwrap();
        let e = format!("{:#}", read_image(&p).unwrap_err());
        assert!(e.contains("limit") || e.contains("Limit"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
