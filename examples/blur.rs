//! Blur (or otherwise filter) a photo that the server only ever sees
//! encrypted.
//!
//! ```text
//! cargo run --release --example blur -- [INPUT] [-o OUTPUT] [-k 3] [--key-bits 3072]
//!     [--filter NAME [params]]... [--kernel FILE] [--map saturate|abs|shift128]
//!     [--border replicate|reflect101|constant[:K]] [--threads N] [--resize WxH]
//!     [--unpacked] [--force]
//! ```
//!
//! One process plays both sides, exactly as the network would see them: the
//! client generates keys and encrypts; the server receives only the bytes of
//! the public key, of the filter chain and of the encrypted image, filters,
//! and returns bytes; the client decrypts, writes OUTPUT and a picture of
//! what the server saw, and checks the result against the same chain
//! computed in plain, value for value.

use std::path::PathBuf;
use std::process::ExitCode;

use enc_image::{BorderMode, EncryptOptions, EncryptedImage, Limits, OutputMapping, PixelImage};
use he_filter::{Filter, reference};
use he_toolkit::cli::{FILTER_HELP, FilterCli, flag_value, number, size};
use he_toolkit::{Bar, bytes, count_value_differences, noise_picture, output_paths, secs, timed};
use paillier::{Keypair, PublicKey};

const USAGE_HEAD: &str = "usage: blur [INPUT] [-o OUTPUT] [-k K] [--filter NAME [PARAMS]]... \
[--kernel FILE] [--map MAPPING] [--key-bits BITS] [--border replicate|reflect101|constant[:K]] \
[--threads N] [--resize WxH] [--unpacked] [--force]

  INPUT          PNG or JPEG to filter (default: the bundled astronaut photo)
  -o OUTPUT      where to write the result (default: INPUT-blurred.png, or
                 INPUT-FILTER.png for another filter)
  -k K           odd kernel size of the default K x K mean (default 3)";

const USAGE_TAIL: &str = "  --key-bits B   Paillier key size, 2048 or more (default 3072)
  --border MODE  replicate (default), reflect101, constant or constant:K
  --threads N    worker threads (default: all cores)
  --resize WxH   resize the input first (e.g. 512x512), for measurements
  --unpacked     one pixel value per ciphertext (the slow naive baseline)
  --force        overwrite OUTPUT if it exists";

fn usage() -> String {
    format!("{USAGE_HEAD}\n{FILTER_HELP}\n{USAGE_TAIL}")
}

#[derive(Debug)]
struct Args {
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    chain: Vec<Filter>,
    mapping: OutputMapping,
    key_bits: u32,
    border: BorderMode,
    threads: Option<usize>,
    resize: Option<(u32, u32)>,
    unpacked: bool,
    force: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        input: None,
        output: None,
        chain: Vec::new(),
        mapping: OutputMapping::Saturate,
        key_bits: Keypair::default_bits(),
        border: BorderMode::Replicate,
        threads: None,
        resize: None,
        unpacked: false,
        force: false,
    };
    let mut filters = FilterCli::new();
    while let Some(arg) = it.next() {
        if filters.accept(&arg, &mut it)? {
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "-o" | "--output" => a.output = Some(flag_value(&mut it, &arg)?.into()),
            "--key-bits" => a.key_bits = number(&flag_value(&mut it, &arg)?, "--key-bits")?,
            "--border" => a.border = flag_value(&mut it, &arg)?.parse()?,
            "--threads" => a.threads = Some(number(&flag_value(&mut it, &arg)?, "--threads")?),
            "--resize" => a.resize = Some(size(&flag_value(&mut it, &arg)?, "--resize", 16384)?),
            "--unpacked" => a.unpacked = true,
            "--force" => a.force = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ if a.input.is_none() => a.input = Some(arg.into()),
            _ => return Err(format!("unexpected argument {arg:?} (only one INPUT)")),
        }
    }
    (a.chain, a.mapping) = filters.finish()?;
    if a.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    Ok(a)
}

/// The server: it gets bytes and returns bytes, and holds no secret.
mod server {
    use super::*;

    /// What the server did, for the summary.
    pub(super) struct Report {
        pub(super) validate: std::time::Duration,
        pub(super) filter: std::time::Duration,
        pub(super) ciphertexts_out: usize,
    }

    pub(super) fn handle(
        public_key: &[u8],
        chain_json: &[u8],
        image: &[u8],
    ) -> Result<(Vec<u8>, Report), String> {
        let (loaded, validate) = timed(|| -> Result<_, String> {
            let pk = PublicKey::from_bytes(public_key).map_err(|e| format!("server: {e}"))?;
            let enc = EncryptedImage::from_bytes(image, &pk, &Limits::default())
                .map_err(|e| format!("server: {e}"))?;
            let chain: Vec<Filter> = serde_json::from_slice(chain_json)
                .map_err(|e| format!("server: filter request: {e}"))?;
            he_filter::check_chain(enc.meta(), &chain).map_err(|e| format!("server: {e}"))?;
            Ok((pk, enc, chain))
        });
        let (pk, enc, chain) = loaded?;
        let bar = Bar::new();
        let (out, filter) =
            timed(|| he_filter::apply_chain(&enc, &pk, &chain, &bar).map(|o| o.trim_halo()));
        let out = out.map_err(|e| format!("server: {e}"))?;
        let report = Report {
            validate,
            filter,
            ciphertexts_out: out.ciphertexts().len(),
        };
        Ok((out.to_bytes(), report))
    }
}

fn run(args: Args) -> Result<usize, String> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| e.to_string())?;
    }
    let input = args
        .input
        .clone()
        .unwrap_or_else(|| PathBuf::from(he_toolkit::DEFAULT_IMAGE));
    let (out_path, view_path) = output_paths(
        args.output.as_deref(),
        &input,
        args.input.is_none(),
        &args.chain,
        args.force,
    )?;
    let mut photo =
        image::open(&input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    if let Some((w, h)) = args.resize {
        photo = photo.resize_exact(w, h, image::imageops::FilterType::Lanczos3);
    }
    let img = PixelImage::from_dynamic(&photo);
    let values = img.len();
    let labels: Vec<String> = args.chain.iter().map(Filter::label).collect();
    println!(
        "{}: {}x{} {:?}, {}, {}-bit key, border {}, {}",
        input.display(),
        img.width(),
        img.height(),
        img.color(),
        labels.join(" then "),
        args.key_bits,
        args.border.name(),
        if args.unpacked {
            "one value per ciphertext"
        } else {
            "packed"
        }
    );

    // Client: keys and encryption.
    let spin = Bar::spinner(&format!("generating a {}-bit key", args.key_bits));
    let (kp, t_keygen) = timed(|| Keypair::generate(args.key_bits));
    drop(spin);
    let kp = kp.map_err(|e| e.to_string())?;
    let opts = if args.unpacked {
        EncryptOptions::unpacked()
    } else {
        he_filter::encrypt_options(&args.chain).map_err(|e| e.to_string())?
    }
    .border(args.border);
    let bar = Bar::new();
    let (enc, t_encrypt) = timed(|| {
        kp.private_key().precompute();
        EncryptedImage::encrypt(&img, kp.private_key(), &opts, &bar)
    });
    let enc = enc.map_err(|e| e.to_string())?;
    let ((key_bytes, upload), t_serialize) = timed(|| (kp.public_key().to_bytes(), enc.to_bytes()));
    let chain_json = serde_json::to_vec(&args.chain).map_err(|e| e.to_string())?;
    let ciphertexts_in = enc.ciphertexts().len();
    drop(enc);

    // Server: bytes in, bytes out.
    let (download, report) = server::handle(&key_bytes, &chain_json, &upload)?;

    // Client: check, decrypt, compare.
    let bar = Bar::new();
    let (result, t_decrypt) = timed(|| -> Result<_, String> {
        let enc = EncryptedImage::from_bytes(&download, kp.public_key(), &Limits::default())
            .map_err(|e| format!("result from the server: {e}"))?;
        if enc.meta().history() != labels {
            return Err(format!(
                "the server applied {:?}, not {:?}",
                enc.meta().history(),
                labels
            ));
        }
        enc.decrypt(kp.private_key(), &bar)
            .map_err(|e| e.to_string())
    });
    let exact = result?;
    let result = exact.to_pixels_with(args.mapping);
    let (want, t_reference) = timed(|| reference::apply_chain(&img, &args.chain, args.border));
    let want = want.map_err(|e| e.to_string())?;
    let differing = count_value_differences(&exact, &want, args.mapping);

    result
        .to_dynamic()
        .and_then(|d| Ok(d.save(&out_path)?))
        .map_err(|e| format!("cannot write {}: {e}", out_path.display()))?;
    noise_picture(
        EncryptedImage::payload_of(&upload).unwrap_or(&upload),
        img.width() as u32,
    )
    .save(&view_path)
    .map_err(|e| format!("cannot write {}: {e}", view_path.display()))?;

    let work = t_encrypt + report.filter + t_decrypt;
    println!(
        "  key generation      {:>10}   (reported apart)",
        secs(t_keygen)
    );
    println!(
        "  encrypt (client)    {:>10}   {ciphertexts_in} ciphertexts",
        secs(t_encrypt)
    );
    println!("  serialize           {:>10}", secs(t_serialize));
    println!("  validate (server)   {:>10}", secs(report.validate));
    println!(
        "  filter (server)     {:>10}   {} ciphertexts out",
        secs(report.filter),
        report.ciphertexts_out
    );
    println!(
        "  decrypt (client)    {:>10}   (includes loading and checking the result)",
        secs(t_decrypt)
    );
    println!("  encrypt+filter+decrypt {:>7}", secs(work));
    println!(
        "  uploaded {} ({:.2} bytes per pixel value), downloaded {} ({:.2} bytes per pixel value)",
        bytes(key_bytes.len() + upload.len()),
        (key_bytes.len() + upload.len()) as f64 / values as f64,
        bytes(download.len()),
        download.len() as f64 / values as f64
    );
    println!(
        "  plaintext reference ({}): {differing} of {} values differ (exact values and pixels)",
        secs(t_reference),
        want.values().len()
    );
    println!(
        "wrote {} and {} (what the server saw)",
        out_path.display(),
        view_path.display()
    );
    Ok(differing)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            eprintln!("error: the decrypted image differs from the plaintext filter in {n} values");
            ExitCode::FAILURE
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
