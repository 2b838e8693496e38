//! Filter a photo on a server that only ever sees it encrypted.
//!
//! ```text
//! cargo run --release --example server -- --listen 127.0.0.1:8787     # in one terminal
//! cargo run --release --example client -- INPUT -o OUTPUT --filter blur -k 3 \
//!     --server http://127.0.0.1:8787                                  # in another
//! ```
//!
//! The client keeps the private key: it encrypts, uploads the public key,
//! the filter chain and the ciphertexts, waits for the job, downloads the
//! encrypted result, decrypts it, writes OUTPUT, and checks it against the
//! same chain computed in plain, value for value. Same filter options as
//! the blur example.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use enc_image::{BorderMode, EncryptedImage, Limits, OutputMapping, PixelImage};
use he_filter::{Filter, reference};
use he_service::client::{Client, ClientOptions, check_history};
use he_service::wire::{DEFAULT_PORT, Envelope, JobSpec};
use he_toolkit::cli::{FILTER_HELP, FilterCli, flag_value, number, size};
use he_toolkit::service::{load_keypair, save_keypair};
use he_toolkit::{Bar, bytes, count_value_differences, noise_picture, output_paths, secs, timed};
use paillier::Keypair;

const USAGE_HEAD: &str =
    "usage: client [INPUT] [-o OUTPUT] [--server URL] [--filter NAME [PARAMS]]... \
[--kernel FILE] [--map MAPPING] [--key FILE [--new-key]] [--key-bits BITS] \
[--border replicate|reflect101|constant[:K]] [--threads N] [--resize WxH] [--timeout SECS] \
[--io-timeout SECS] [--attempts N] [--allow-readable-key] [--force]

  INPUT          PNG or JPEG to filter (default: the bundled astronaut photo)
  -o OUTPUT      where to write the result (default: INPUT-FILTER.png, never overwriting)
  --server URL   the server (default http://127.0.0.1:8787)
  -k K           odd kernel size of the default K x K mean (default 3)";

const USAGE_TAIL: &str =
    "  --key FILE     keep the key pair in FILE: loaded (and checked) if it exists,
                 else generated and written with owner-only permissions
  --new-key      generate a new key pair into --key FILE (an existing one only with --force)
  --key-bits B   size of a generated key, 2048 or more (default 3072)
  --border MODE  replicate (default), reflect101, constant or constant:K
  --threads N    client threads for encryption and decryption (default: all cores)
  --resize WxH   resize the input first (e.g. 512x512)
  --timeout S    overall deadline for the exchange with the server (upload, filter,
                 download, retries), in seconds (default 3600)
  --io-timeout S longest silence of the server on a connection (default 60)
  --attempts N   submissions of a job lost in a server restart, the first included (default 3)
  --allow-readable-key  load a --key FILE that others can read (refused otherwise)
  --force        overwrite OUTPUT (and with --new-key, the key file) if it exists";

fn usage() -> String {
    format!("{USAGE_HEAD}\n{FILTER_HELP}\n{USAGE_TAIL}")
}

#[derive(Debug)]
struct Args {
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    server: String,
    chain: Vec<Filter>,
    mapping: OutputMapping,
    key: Option<PathBuf>,
    new_key: bool,
    key_bits: u32,
    border: BorderMode,
    threads: Option<usize>,
    resize: Option<(u32, u32)>,
    timeout: Duration,
    options: ClientOptions,
    force: bool,
    allow_readable_key: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        input: None,
        output: None,
        server: format!("http://127.0.0.1:{DEFAULT_PORT}"),
        chain: Vec::new(),
        mapping: OutputMapping::Saturate,
        key: None,
        new_key: false,
        key_bits: Keypair::default_bits(),
        border: BorderMode::Replicate,
        threads: None,
        resize: None,
        timeout: Duration::from_secs(3600),
        options: ClientOptions::default(),
        force: false,
        allow_readable_key: false,
    };
    let mut filters = FilterCli::new();
    while let Some(arg) = it.next() {
        if filters.accept(&arg, &mut it)? {
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "-o" | "--output" => a.output = Some(flag_value(&mut it, &arg)?.into()),
            "--server" => a.server = flag_value(&mut it, &arg)?,
            "--key" => a.key = Some(flag_value(&mut it, &arg)?.into()),
            "--new-key" => a.new_key = true,
            "--key-bits" => a.key_bits = number(&flag_value(&mut it, &arg)?, "--key-bits")?,
            "--border" => a.border = flag_value(&mut it, &arg)?.parse()?,
            "--threads" => a.threads = Some(number(&flag_value(&mut it, &arg)?, "--threads")?),
            "--timeout" => {
                a.timeout = Duration::from_secs(number(&flag_value(&mut it, &arg)?, "--timeout")?);
            }
            "--io-timeout" => {
                a.options.io_timeout =
                    Duration::from_secs(number(&flag_value(&mut it, &arg)?, "--io-timeout")?);
            }
            "--attempts" => a.options.attempts = number(&flag_value(&mut it, &arg)?, "--attempts")?,
            "--resize" => a.resize = Some(size(&flag_value(&mut it, &arg)?, "--resize", 16384)?),
            "--force" => a.force = true,
            "--allow-readable-key" => a.allow_readable_key = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ if a.input.is_none() => a.input = Some(arg.into()),
            _ => return Err(format!("unexpected argument {arg:?} (only one INPUT)")),
        }
    }
    (a.chain, a.mapping) = filters.finish()?;
    if a.new_key && a.key.is_none() {
        return Err("--new-key needs --key FILE to write the key to".into());
    }
    if a.options.attempts == 0 || a.options.io_timeout.is_zero() || a.timeout.is_zero() {
        return Err("--attempts, --io-timeout and --timeout must be at least 1".into());
    }
    if a.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    if let Some((w, h)) = a.resize {
        if w == 0 || h == 0 || w > 16384 || h > 16384 {
            return Err(format!("--resize: {w}x{h} is outside 1x1 to 16384x16384"));
        }
    }
    Ok(a)
}

/// The key pair: loaded from --key, or generated (and saved to --key);
/// what was done, how long it took, and whether it was loaded.
fn keypair(args: &Args) -> Result<(Keypair, String, Duration, bool), String> {
    if let Some(path) = args.key.as_ref().filter(|p| p.exists() && !args.new_key) {
        let (kp, t) = timed(|| load_keypair(path, args.allow_readable_key));
        let kp = kp?;
        let what = format!("{}-bit key from {}", kp.public_key().bits(), path.display());
        return Ok((kp, what, t, true));
    }
    if let Some(path) = args.key.as_ref().filter(|p| p.exists() && !args.force) {
        return Err(format!(
            "{} exists; pass --force with --new-key to replace it",
            path.display()
        ));
    }
    let spin = Bar::spinner(&format!("generating a {}-bit key", args.key_bits));
    let (kp, t) = timed(|| Keypair::generate(args.key_bits));
    drop(spin);
    let kp = kp.map_err(|e| e.to_string())?;
    let what = match &args.key {
        Some(path) => {
            save_keypair(path, &kp, args.force)?;
            format!(
                "new {}-bit key, written to {} (owner-only)",
                args.key_bits,
                path.display()
            )
        }
        None => format!("new {}-bit key, not kept (use --key FILE)", args.key_bits),
    };
    Ok((kp, what, t, false))
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
    let client = Client::with_options(&args.server, args.options.clone())
        .map_err(|e| e.to_string())?
        .on_notice(|n| eprintln!("  {n}"));
    // Ask the server first: no key is generated for a server that is not there.
    let info = client
        .info()
        .map_err(|e| format!("server {}: {e}", args.server))?;
    let mut photo =
        image::open(&input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    if let Some((w, h)) = args.resize {
        photo = photo.resize_exact(w, h, image::imageops::FilterType::Lanczos3);
    }
    let img = PixelImage::from_dynamic(&photo);
    let values = img.len();
    let labels: Vec<String> = args.chain.iter().map(Filter::label).collect();
    println!(
        "{}: {}x{} {:?}, {}, border {}, server {} ({} {})",
        input.display(),
        img.width(),
        img.height(),
        img.color(),
        labels.join(" then "),
        args.border.name(),
        client.base_url(),
        info.service,
        info.version
    );

    // Client: keys and encryption.
    let (kp, key_what, t_keygen, key_loaded) = keypair(&args)?;
    println!("  key: {key_what}");
    let opts = he_filter::encrypt_options(&args.chain)
        .map_err(|e| e.to_string())?
        .border(args.border);
    let bar = Bar::new();
    let (enc, t_encrypt) = timed(|| {
        kp.private_key().precompute();
        EncryptedImage::encrypt(&img, kp.private_key(), &opts, &bar)
    });
    let enc = enc.map_err(|e| e.to_string())?;
    let spec = JobSpec {
        filters: args.chain.clone(),
    };
    let (upload, t_serialize) = timed(|| {
        let image = enc.to_bytes();
        (
            Envelope::encode(&spec, &kp.public_key().to_bytes(), &image),
            image,
        )
    });
    let (envelope, image_bytes) = upload;
    if envelope.len() > info.limits.max_body_bytes {
        return Err(format!(
            "the upload is {}, the server takes at most {}",
            bytes(envelope.len()),
            bytes(info.limits.max_body_bytes)
        ));
    }
    let ciphertexts_in = enc.ciphertexts().len();

    // Over the network: upload, wait, download, with retries and
    // resubmissions (said on stderr) within the deadline.
    let bar = Bar::new();
    let run = client
        .run_job(&envelope, &bar, args.timeout)
        .map_err(|e| e.to_string())?;
    drop(bar);
    let (status, download) = (run.status, run.result);
    let (t_upload, t_wait, t_download) = (run.upload, run.wait, run.download);
    println!(
        "  job {} done on server instance {}{}",
        status.id,
        status.instance,
        if run.attempts > 1 || run.retries > 0 {
            format!(
                " (attempt {} of {}, {} requests retried)",
                run.attempts, args.options.attempts, run.retries
            )
        } else {
            String::new()
        }
    );

    // Client: check, decrypt, compare.
    let bar = Bar::new();
    let (exact, t_decrypt) = timed(|| -> Result<_, String> {
        let out = EncryptedImage::from_bytes(&download, kp.public_key(), &Limits::default())
            .map_err(|e| format!("result from the server: {e}"))?;
        check_history(&enc, &out, &spec).map_err(|e| e.to_string())?;
        out.decrypt(kp.private_key(), &bar)
            .map_err(|e| e.to_string())
    });
    let exact = exact?;
    let result = exact.to_pixels_with(args.mapping);
    let (want, t_reference) = timed(|| reference::apply_chain(&img, &args.chain, args.border));
    let want = want.map_err(|e| e.to_string())?;
    let differing = count_value_differences(&exact, &want, args.mapping);

    result
        .to_dynamic()
        .and_then(|d| Ok(d.save(&out_path)?))
        .map_err(|e| format!("cannot write {}: {e}", out_path.display()))?;
    noise_picture(
        EncryptedImage::payload_of(&image_bytes).unwrap_or(&image_bytes),
        img.width() as u32,
    )
    .save(&view_path)
    .map_err(|e| format!("cannot write {}: {e}", view_path.display()))?;

    let filter = Duration::from_secs_f64(status.filter_seconds.unwrap_or(0.0));
    let work = t_encrypt + filter + t_decrypt;
    println!(
        "  {}{:>10}   (reported apart)",
        if key_loaded {
            "key loading (check) "
        } else {
            "key generation      "
        },
        secs(t_keygen)
    );
    println!(
        "  encrypt (client)    {:>10}   {ciphertexts_in} ciphertexts",
        secs(t_encrypt)
    );
    println!("  serialize           {:>10}", secs(t_serialize));
    println!(
        "  upload              {:>10}   {}",
        secs(t_upload),
        bytes(envelope.len())
    );
    println!(
        "  validate (server)   {:>10}",
        secs(Duration::from_secs_f64(status.validate_seconds))
    );
    println!(
        "  queued (server)     {:>10}",
        secs(Duration::from_secs_f64(
            status.queued_seconds.unwrap_or(0.0)
        ))
    );
    println!(
        "  filter (server)     {:>10}   {} ciphertexts of work",
        secs(filter),
        status.progress_total
    );
    println!(
        "  waiting (client)    {:>10}   (from accepted to done, polling)",
        secs(t_wait)
    );
    println!(
        "  download            {:>10}   {}",
        secs(t_download),
        bytes(download.len())
    );
    println!(
        "  decrypt (client)    {:>10}   (includes loading and checking the result)",
        secs(t_decrypt)
    );
    println!("  encrypt+filter+decrypt {:>7}", secs(work));
    println!(
        "  uploaded {} ({:.2} bytes per pixel value), downloaded {} ({:.2} bytes per pixel value)",
        bytes(envelope.len()),
        envelope.len() as f64 / values as f64,
        bytes(download.len()),
        download.len() as f64 / values as f64
    );
    println!(
        "  plaintext reference ({}): {differing} of {values} values differ (exact values and pixels)",
        secs(t_reference)
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
