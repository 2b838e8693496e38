//! Encryptions per second of each mode on all cores, and a 4000-pixel-wide
//! RGB photo (or a band of its rows) encrypted in one mode: the figures of
//! `docs/ENCRYPTION-MODES.md`, which `scripts/compare-pypaillier.sh` runs.
//!
//! ```text
//! cargo run --release --example pk_encrypt_rate -- rate  BITS MODE SECONDS KEYFILE
//! cargo run --release --example pk_encrypt_rate -- photo BITS MODE ROWS KEYFILE
//! cargo run --release --example pk_encrypt_rate -- modulus BITS - - KEYFILE
//! ```
//!
//! MODE is `textbook` (public key), `short` (public key, short exponents),
//! `half` (public key, short exponents of |n|/2 bits) or `holder` (private
//! key). KEYFILE caches a key pair of BITS bits (made on first use). `rate`
//! encrypts batches of 256 on all cores for SECONDS; `photo` encrypts a
//! 4000 x ROWS RGB image packed for 5x5 means. Each prints one line of
//! `key=value` fields (`modulus` prints n in hex, for a peer to
//! encrypt under the same n); the setup (building tables, once per key) is
//! timed apart as `setup_s`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use enc_image::{ColorLayout, EncryptOptions, EncryptedImage, NoProgress, PixelImage};
use paillier::hazmat::Encryptor;
use paillier::{ExponentLength, Integer, Keypair, ShortExponentEncryptor};

const USAGE: &str = "usage: pk_encrypt_rate rate|photo|modulus BITS textbook|short|half|holder SECONDS|ROWS KEYFILE";

fn keypair(bits: u32, path: &Path) -> Result<Keypair, String> {
    if path.exists() {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let kp = Keypair::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if kp.public_key().bits() == bits {
            return Ok(kp);
        }
        return Err(format!(
            "{} holds a {}-bit key",
            path.display(),
            kp.public_key().bits()
        ));
    }
    let kp = Keypair::generate(bits).map_err(|e| e.to_string())?;
    // A measurement key, kept beside the build (owner-only) so runs reuse it.
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
    std::io::Write::write_all(
        &mut f
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?,
        &kp.to_bytes(),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(kp)
}

/// The encryptor of `mode`, and the seconds it took to make it ready.
fn encryptor<'a>(kp: &'a Keypair, mode: &str) -> Result<(Box<dyn Encryptor + 'a>, f64), String> {
    let t = Instant::now();
    let e: Box<dyn Encryptor + 'a> = match mode {
        "textbook" => Box::new(kp.public_key().clone()),
        "short" => Box::new(ShortExponentEncryptor::new(kp.public_key())),
        "half" => Box::new(ShortExponentEncryptor::with_length(
            kp.public_key(),
            ExponentLength::HalfModulus,
        )),
        "holder" => Box::new(kp.private_key().clone()),
        _ => return Err(format!("unknown mode {mode}\n{USAGE}")),
    };
    e.prepare();
    Ok((e, t.elapsed().as_secs_f64()))
}

fn run(args: &[String]) -> Result<String, String> {
    let [what, bits, mode, amount, keyfile] = args else {
        return Err(USAGE.into());
    };
    let bits: u32 = bits.parse().map_err(|_| USAGE.to_string())?;
    let kp = keypair(bits, Path::new(keyfile))?;
    if what == "modulus" {
        return Ok(format!("{:x}", kp.public_key().n()));
    }
    let amount: f64 = amount.parse().map_err(|_| USAGE.to_string())?;
    let (enc, setup) = encryptor(&kp, mode)?;
    let err = |e: paillier::Error| e.to_string();
    match what.as_str() {
        "rate" => {
            use rayon::prelude::*;
            let ms: Vec<Integer> = (0..256u32).map(|i| Integer::from(i) * 7919u32).collect();
            let (t, mut ops) = (Instant::now(), 0usize);
            while t.elapsed().as_secs_f64() < amount {
                let cs: Result<Vec<_>, _> = ms.par_iter().map(|m| enc.encrypt_raw(m)).collect();
                ops += cs.map_err(err)?.len();
            }
            let secs = t.elapsed().as_secs_f64();
            let rate = ops as f64 / secs;
            Ok(format!(
                "rate bits={bits} mode={mode} ops={ops} secs={secs:.2} per_s={rate:.1} setup_s={setup:.3}"
            ))
        }
        "photo" => {
            let (w, h) = (4000usize, amount as usize);
            let px = (0..w * h * 3).map(|i| (i * 73 % 256) as u8).collect();
            let img = PixelImage::new(w, h, ColorLayout::Rgb8, px).map_err(|e| e.to_string())?;
            let t = Instant::now();
            let out = EncryptedImage::encrypt(
                &img,
                enc.as_ref(),
                &EncryptOptions::default(),
                &NoProgress,
            )
            .map_err(|e| e.to_string())?;
            let (secs, n) = (t.elapsed().as_secs_f64(), out.ciphertexts().len());
            Ok(format!(
                "photo bits={bits} mode={mode} rows={h} ciphertexts={n} secs={secs:.2} setup_s={setup:.3}"
            ))
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pk_encrypt_rate: {e}");
            ExitCode::FAILURE
        }
    }
}
