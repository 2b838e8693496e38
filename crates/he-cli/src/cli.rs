//! The command line, as clap definitions: one struct per subcommand.
//!
//! The filter options (`--filter NAME [params]`, repeatable) are an ordered
//! little language: a parameter belongs to the `--filter` before it. Clap
//! parses and documents each flag; [`crate::chain`] puts them back in
//! command-line order from the argument indices and builds the chain.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueHint};

/// Filter images that stay encrypted: the server computes on Paillier
/// ciphertexts and never sees a pixel or holds a private key.
#[derive(Debug, Parser)]
#[command(name = "he", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 done; 1 an error (input, I/O, network, a refusal); \
2 bad usage; 3 a result failed verification (nothing was written)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate a key pair into a file readable by its owner only.
    Keygen(KeygenArgs),
    /// Encrypt an image for a filter chain (the file carries the public key).
    Encrypt(EncryptArgs),
    /// Filter an encrypted file with its public key only (what a server does).
    Filter(FilterArgs),
    /// Decrypt a filtered file, check it, and write the image.
    Decrypt(DecryptArgs),
    /// Encrypt, filter and decrypt in one process, checked against the plain filter.
    Blur(BlurArgs),
    /// Run the online service (HTTP API in docs/SERVICE.md).
    Serve(ServeArgs),
    /// Filter an image on a server: encrypt, upload, wait, download, decrypt, check.
    Submit(SubmitArgs),
    /// Manage the API tokens file of `he serve --tokens FILE` (hashes only).
    #[command(subcommand)]
    Token(TokenCommand),
    /// A bounded load test of the service on loopback, every result checked.
    Loadtest(LoadtestArgs),
    /// Every built-in filter under encryption, on one contact sheet.
    Gallery(GalleryArgs),
    /// Apply a filter chain to a plain image, no encryption: the exact
    /// result a private job must give.
    Preview(PreviewArgs),
    /// A local web page that filters photos privately: the key stays in
    /// this process, the server gets ciphertexts only (docs/STUDIO.md).
    Studio(StudioArgs),
    /// List the built-in filters and their parameters.
    Filters,
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Write man pages (he.1 and one per subcommand) into a directory.
    Man(ManArgs),
}

/// The filter chain options, shared by every command that filters.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Filter chain")]
pub(crate) struct ChainArgs {
    /// A filter (repeat for a chain, applied in order); the parameters after
    /// it belong to it. `he filters` lists them. Default: a 3x3 mean.
    #[arg(long = "filter", value_name = "NAME")]
    pub(crate) filter: Vec<String>,
    /// Odd kernel side of the filter before it (default 3); before any
    /// --filter, the side of the default mean.
    #[arg(short = 'k', value_name = "K")]
    pub(crate) k: Vec<String>,
    /// Gaussian sigma (the size follows from it unless -k).
    #[arg(long, value_name = "S")]
    pub(crate) sigma: Vec<String>,
    /// Unsharp amount, e.g. 1.5 or 3/2 (default 1).
    #[arg(long, value_name = "A")]
    pub(crate) amount: Vec<String>,
    /// Brightness change.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    pub(crate) delta: Vec<String>,
    /// Contrast factor, e.g. 1.5.
    #[arg(long, value_name = "F")]
    pub(crate) factor: Vec<String>,
    /// Contrast pivot (default 128).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub(crate) pivot: Vec<String>,
    /// Separable row weights, e.g. 1,2,1.
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub(crate) row: Vec<String>,
    /// Separable column weights, e.g. 1,2,1.
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub(crate) column: Vec<String>,
    /// Separable divisor (default 1).
    #[arg(long, value_name = "D")]
    pub(crate) divisor: Vec<String>,
    /// A custom kernel from a text file: k lines of k integer weights, then
    /// optionally `divisor D`; `#` starts a comment.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) kernel: Vec<PathBuf>,
    /// How signed results become pixels: saturate (default), abs (as
    /// cv2.convertScaleAbs) or shift128.
    #[arg(long, value_name = "MAPPING")]
    pub(crate) map: Vec<String>,
}

/// Where the key pair comes from.
#[derive(Debug, Args, Clone)]
pub(crate) struct KeyFileArgs {
    /// The key pair file (written by `he keygen`).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) key: PathBuf,
    /// Load a key file that others can read (refused otherwise).
    #[arg(long)]
    pub(crate) allow_readable_key: bool,
}

/// `he keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the key pair (owner-only permissions).
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) output: PathBuf,
    /// Key size in bits: 2048 or more (3072 gives about 128-bit security).
    #[arg(long, default_value_t = paillier::Keypair::default_bits())]
    pub(crate) key_bits: u32,
    /// Also write the public key alone to FILE, for `he encrypt --public-key`.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) public: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `he encrypt`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which_key").required(true).args(["key", "public_key"])))]
pub(crate) struct EncryptArgs {
    /// The image to encrypt (PNG or JPEG).
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) image: PathBuf,
    /// The key pair file (written by `he keygen`): the fast key-holder encryption.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) key: Option<PathBuf>,
    /// Encrypt with a public key file only (written by `he keygen --public`),
    /// as a device that does not hold the private key would.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) public_key: Option<PathBuf>,
    /// With --public-key: Damgard-Jurik-Nielsen short exponents, about 65x
    /// faster; rests on the short-exponent assumption besides the
    /// composite residuosity one (docs/ENCRYPTION-MODES.md). Off by default.
    #[arg(long, conflicts_with = "key")]
    pub(crate) short_exponent: bool,
    /// Load a key file that others can read (refused otherwise).
    #[arg(long)]
    pub(crate) allow_readable_key: bool,
    /// The encrypted file to write.
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) output: PathBuf,
    #[command(flatten)]
    pub(crate) image_opts: ImageArgs,
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// Replace an existing output file.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Options on how an image is read and padded.
#[derive(Debug, Args, Clone)]
pub(crate) struct ImageArgs {
    /// Border at the image's edges: replicate, reflect101, constant or constant:K.
    #[arg(long, default_value = "replicate")]
    pub(crate) border: String,
    /// Resize the input first, e.g. 512x512 (for measurements).
    #[arg(long, value_name = "WxH")]
    pub(crate) resize: Option<String>,
}

/// `he filter`.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// A file written by `he encrypt`.
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) input: PathBuf,
    /// The filtered file to write.
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) output: PathBuf,
    /// The chain to apply (default: the one the file was encrypted for).
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// Replace an existing output file.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `he decrypt`.
#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    /// A file written by `he filter`.
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) input: PathBuf,
    #[command(flatten)]
    pub(crate) key: KeyFileArgs,
    /// The image to write (PNG or JPEG, by extension).
    #[arg(short, long, value_name = "IMAGE", value_hint = ValueHint::FilePath)]
    pub(crate) output: PathBuf,
    /// JPEG quality of the output, 1 to 100 (default 90); for a .jpg or
    /// .jpeg output only. No metadata of the input is ever copied.
    #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub(crate) quality: Option<u8>,
    /// The original image: checks that it is the one encrypted, and every
    /// decrypted value against the chain computed in plain.
    #[arg(long = "input", value_name = "IMAGE", value_hint = ValueHint::FilePath)]
    pub(crate) original: Option<PathBuf>,
    /// The chain the file must have been filtered with, and `--map`. A
    /// file made by `he encrypt --key` carries its chain under a tag of
    /// your key, so `--filter` is optional; one made with `--public-key`
    /// cannot prove its chain: restate it here.
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// Replace an existing output file.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `he blur`.
#[derive(Debug, Args)]
pub(crate) struct BlurArgs {
    /// The image to filter (default: the bundled astronaut photo).
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) image: Option<PathBuf>,
    /// Where to write the result (default: IMAGE-blurred.png, or
    /// IMAGE-FILTER.png for another filter, never overwriting).
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) output: Option<PathBuf>,
    /// JPEG quality of the output, 1 to 100 (default 90); for a .jpg or
    /// .jpeg output only. No metadata of the input is ever copied.
    #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub(crate) quality: Option<u8>,
    /// Key size in bits, 2048 or more.
    #[arg(long, default_value_t = paillier::Keypair::default_bits())]
    pub(crate) key_bits: u32,
    #[command(flatten)]
    pub(crate) image_opts: ImageArgs,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) threads: Option<u16>,
    /// One pixel value per ciphertext (the slow naive baseline; whole
    /// image, not tiled).
    #[arg(long)]
    pub(crate) unpacked: bool,
    /// Rows per tile: the image is encrypted, filtered and decrypted as a
    /// pipeline of bands of rows, a few tiles in memory at a time (default:
    /// about 4 MiB of ciphertexts per tile, at least 16 rows).
    #[arg(long, value_name = "N", conflicts_with = "unpacked",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) tile_rows: Option<u32>,
    /// Encrypt, filter and decrypt the whole image at once, one phase after
    /// the other (the path before tiles, for comparison).
    #[arg(long, conflicts_with = "tile_rows")]
    pub(crate) untiled: bool,
    /// Keep the key pair in FILE: loaded if it exists, else generated and
    /// written with owner-only permissions. A tiled run with a kept key
    /// saves each finished tile in OUT.he-partial, so that the same command
    /// run again after an interruption resumes where it stopped.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) key: Option<PathBuf>,
    /// Load a --key FILE that others can read (refused otherwise).
    #[arg(long)]
    pub(crate) allow_readable_key: bool,
    /// Delete the state of an interrupted run (OUT.he-partial) and start
    /// over instead of resuming it.
    #[arg(long)]
    pub(crate) restart: bool,
    /// No progress bar or progress lines (the summary still prints).
    #[arg(long, short)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// Overwrite the output if it exists.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `he serve`. Every flag but `--config` is also a key of the config
/// file, with the same name (`-` as `_`) and the same unit
/// (docs/OPERATIONS.md); a flag given on the command line wins.
///
/// Serialized, a field left unset on the command line (`None`, `false`,
/// empty) is absent, so that it does not hide the file's value.
#[derive(Debug, Default, Args, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServeArgs {
    /// A config file (TOML) with any of the flags below as keys.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// Address and port to listen on (default 127.0.0.1:8787).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Largest request body, in MiB.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..4096))]
    pub(crate) max_body: Option<u64>,
    /// Most jobs in flight before answering 503.
    #[arg(long, value_name = "N")]
    pub(crate) queue: Option<usize>,
    /// How long finished results are kept, in seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) retention: Option<u64>,
    /// Filter threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<std::num::NonZeroUsize>,
    /// Largest image width and height.
    #[arg(long, value_name = "PX")]
    pub(crate) max_side: Option<usize>,
    /// Most filters in one request.
    #[arg(long, value_name = "N")]
    pub(crate) max_chain: Option<usize>,
    /// Time allowed for an upload, in seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) upload_timeout: Option<u64>,
    /// Most open connections.
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Jobs filtered at once in each lane (light and heavy), each on all
    /// workers.
    #[arg(long, value_name = "N")]
    pub(crate) concurrent_jobs: Option<usize>,
    /// Jobs estimated at this many cost units or more run in the heavy
    /// lane, on a pool of their own, so they never hold back small jobs.
    #[arg(long, value_name = "UNITS")]
    pub(crate) heavy_job_units: Option<u64>,
    /// API tokens file (`he token create NAME --tokens FILE`): every job
    /// request needs one of its tokens. Without it, only a loopback
    /// address is served (anonymously) unless --anonymous.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) tokens: Option<PathBuf>,
    /// Serve without tokens on an address other than loopback: anyone who
    /// can reach it may use it.
    #[arg(long, conflicts_with = "tokens")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) anonymous: bool,
    /// Largest estimated cost of one job, in cost units (about 6
    /// core-seconds each; default 2000); larger jobs get 422.
    #[arg(long, value_name = "UNITS")]
    pub(crate) max_job_cost: Option<u64>,
    // --- connections and TLS ---
    /// Longest time for a request's headers to arrive, in seconds (default 10).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) header_timeout: Option<u64>,
    /// Close a connection idle (no request, no bytes) this long, in seconds (default 30).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) idle_timeout: Option<u64>,
    /// Longest silence while an upload is read or an answer written, in seconds (default 10).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) body_read_timeout: Option<u64>,
    /// Slowest upload accepted, in KiB/s (default 16; 0: no minimum); slower gets 408.
    #[arg(long, value_name = "KIB")]
    pub(crate) min_upload_rate: Option<u64>,
    /// Most connections at once from one client address (default 32).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_connections_per_client: Option<u64>,
    /// A reverse proxy whose X-Forwarded-For is believed (repeatable).
    #[arg(long = "trusted-proxy", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) trusted_proxies: Vec<std::net::IpAddr>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key", value_hint = ValueHint::FilePath)]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert", value_hint = ValueHint::FilePath)]
    pub(crate) tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (a TLS-terminating proxy is in front).
    #[arg(long, conflicts_with = "tls_cert")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) allow_plain_http: bool,
    // --- operations (docs/OPERATIONS.md) ---
    /// On SIGTERM or Ctrl-C, how long to wait for jobs in flight to finish
    /// and their results to be collected before stopping anyway, in
    /// seconds (default 30); new jobs get 503 meanwhile.
    #[arg(long, value_name = "SECS")]
    pub(crate) drain_timeout: Option<u64>,
    /// A file holding the bearer token that `GET /metrics` needs (one
    /// line). Without it, /metrics is served to loopback clients only.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) metrics_token_file: Option<PathBuf>,
    // --- several nodes sharing a Redis (docs/OPERATIONS.md) ---
    /// Where jobs are kept: `memory` (the default) or
    /// `redis://HOST:PORT/DB`, shared by API nodes and workers; also read
    /// from the environment variable HE_STORE. A URL with a password is
    /// refused here (the process list shows it): put it in the config
    /// file or HE_STORE, or the password in redis_password_file.
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// What this process does with a Redis store: all (the default), api
    /// (uploads, status, results) or worker (filters; serves only
    /// /v1/health and /metrics).
    #[arg(long, value_name = "ROLE", value_parser = ["all", "api", "worker"])]
    pub(crate) role: Option<String>,
    /// A file holding the Redis password (one line), for example a
    /// systemd credential; it replaces a password in the URL.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) redis_password_file: Option<PathBuf>,
    /// The prefix of every key in Redis (default `he:`), so that two
    /// deployments can share one Redis.
    #[arg(long, value_name = "PREFIX")]
    pub(crate) redis_prefix: Option<String>,
    /// Seconds a worker may hold a unit of work without a sign of life
    /// before another worker takes it over (default 30).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) visibility_timeout: Option<u64>,
    /// A unit of work handed out this many times without finishing fails
    /// its job (default 3).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_deliveries: Option<u32>,
}

/// `he token`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Draw a new token for NAME, store its hash, print the token once.
    Create(TokenCreateArgs),
    /// List the tokens' names and creation times (never the tokens).
    List(TokenFileArgs),
    /// Remove the token NAME (the server reads the file when it starts).
    Revoke(TokenCreateArgs),
}

/// The tokens file of `he token`.
#[derive(Debug, Args)]
pub(crate) struct TokenFileArgs {
    /// The tokens file (created by the first `he token create`).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) tokens: PathBuf,
}

/// `he token create NAME` and `he token revoke NAME`.
#[derive(Debug, Args)]
pub(crate) struct TokenCreateArgs {
    /// The token's name (1 to 64 of A-Z a-z 0-9 - _ . @); jobs belong to it.
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) file: TokenFileArgs,
}

/// `he submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The image to filter (default: the bundled astronaut photo).
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) image: Option<PathBuf>,
    /// Where to write the result (default: IMAGE-FILTER.png, never overwriting).
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) output: Option<PathBuf>,
    /// JPEG quality of the output, 1 to 100 (default 90); for a .jpg or
    /// .jpeg output only. No metadata of the input is ever copied.
    #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub(crate) quality: Option<u8>,
    /// The server's URL.
    #[arg(long, default_value_t = format!("http://127.0.0.1:{}", he_service::wire::DEFAULT_PORT))]
    pub(crate) server: String,
    /// API token for a server with tokens (`he token create`).
    #[arg(long, value_name = "TOKEN", env = "HE_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<Secret>,
    /// Keep the key pair in FILE: loaded (and checked) if it exists, else
    /// generated and written with owner-only permissions.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) key: Option<PathBuf>,
    /// Generate a new key pair into --key FILE (an existing one only with --force).
    #[arg(long, requires = "key")]
    pub(crate) new_key: bool,
    /// Size of a generated key, 2048 or more.
    #[arg(long, default_value_t = paillier::Keypair::default_bits())]
    pub(crate) key_bits: u32,
    /// Load a --key FILE that others can read (refused otherwise).
    #[arg(long)]
    pub(crate) allow_readable_key: bool,
    #[command(flatten)]
    pub(crate) image_opts: ImageArgs,
    /// Client threads for encryption and decryption (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) threads: Option<u16>,
    /// Overall deadline for the exchange with the server, in seconds
    /// (default: an hour per started 12 megapixels of the photo). A tiled
    /// run stopped by it keeps its finished tiles: run it again to go on.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: Option<u64>,
    /// Longest silence of the server on a connection, in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) io_timeout: Option<u64>,
    /// Submissions of a job lost in a server restart, the first included.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) attempts: Option<u32>,
    /// Trust the CA certificates (PEM) in FILE for an https:// server,
    /// instead of the system's roots.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) ca: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// Random values the spot check recomputes, besides one of every
    /// ciphertext (1% of values changed is missed with probability
    /// 0.99^N).
    #[arg(long, value_name = "N", default_value_t = he_filter::DEFAULT_RANDOM_VALUES)]
    pub(crate) spot_checks: usize,
    /// Compare every value with the chain computed in plain on the whole
    /// image (tile by tile), after the spot check (slower; the spot check
    /// alone is the default).
    #[arg(long)]
    pub(crate) full_check: bool,
    /// Rows per tile: the image goes to the server as a tiled job, bands
    /// of rows encrypted, uploaded, filtered, downloaded and decrypted as
    /// a pipeline, each spot-checked (default: about 4 MiB of ciphertexts
    /// per tile, at least 16 rows).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) tile_rows: Option<u32>,
    /// Send the whole encrypted image in one upload instead of tiles (the
    /// path before tiles; refused by the server above its body limit).
    #[arg(long, conflicts_with = "tile_rows")]
    pub(crate) single_upload: bool,
    /// Delete the state of an interrupted run (OUT.he-partial) and start
    /// over instead of resuming it. A tiled run with a kept --key saves
    /// each finished tile there, and the same command run again resumes.
    #[arg(long)]
    pub(crate) restart: bool,
    /// Overwrite the output (and with --new-key, the key file) if it exists.
    #[arg(long)]
    pub(crate) force: bool,
    /// No progress bar or progress lines (the summary still prints).
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// `he loadtest`.
#[derive(Debug, Args)]
pub(crate) struct LoadtestArgs {
    /// Concurrent clients, each with its own key and image.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) clients: u32,
    /// Requests per client, one after another.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) requests: u32,
    /// Key size in bits.
    #[arg(long, default_value_t = 2048)]
    pub(crate) key_bits: u32,
    /// Side of the square RGB images.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) size: u32,
    /// The server's queue capacity (some 503s are expected and retried).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "server")]
    pub(crate) queue: u64,
    /// The server's filter threads (default: one per core).
    #[arg(long, conflicts_with = "server")]
    pub(crate) workers: Option<std::num::NonZeroUsize>,
    /// Load a running service at URL (a node, or a proxy in front of
    /// several) instead of a server started in this process. Its jobs
    /// left behind are reported, not counted: others may use it too.
    #[arg(long, value_name = "URL", conflicts_with_all = ["siege", "log"])]
    pub(crate) server: Option<String>,
    /// With --server: the API token, if the service has tokens.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HE_TOKEN",
        hide_env_values = true,
        requires = "server"
    )]
    pub(crate) token: Option<Secret>,
    /// With --server: trust the CA certificates (PEM) in FILE for an
    /// https:// URL instead of the system's roots.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, requires = "server")]
    pub(crate) ca: Option<PathBuf>,
    /// Print the server's logs.
    #[arg(long)]
    pub(crate) log: bool,
    /// The service under attack instead: slow and idle connections, a
    /// flooding token, an over-budget job and a heavy job, while a normal
    /// client must stay served (health p99 under 1 s, its job within 30 s).
    #[arg(long)]
    pub(crate) siege: bool,
    /// With --siege: slow or idle connections held.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(0..=2000))]
    pub(crate) slow: u32,
    /// With --siege: how long the siege lasts, in seconds.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(5..=600))]
    pub(crate) seconds: u64,
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
}

/// `he gallery`.
#[derive(Debug, Args)]
pub(crate) struct GalleryArgs {
    /// The image (default: the bundled astronaut photo).
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) image: Option<PathBuf>,
    /// Output directory, created if missing.
    #[arg(short, long, value_name = "DIR", default_value = "gallery", value_hint = ValueHint::DirPath)]
    pub(crate) output: PathBuf,
    /// Key size in bits (2048 by default: every filter is decrypted, and
    /// the gallery is a demonstration).
    #[arg(long, default_value_t = 2048)]
    pub(crate) key_bits: u32,
    /// Resize the input first, e.g. 48x48.
    #[arg(long, value_name = "WxH")]
    pub(crate) resize: Option<String>,
    /// Overwrite files already in the directory.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `he preview`.
#[derive(Debug, Args)]
pub(crate) struct PreviewArgs {
    /// The image to filter (PNG or JPEG).
    #[arg(value_hint = ValueHint::FilePath)]
    pub(crate) image: PathBuf,
    /// The image to write (PNG or JPEG, by extension).
    #[arg(short, long, value_name = "IMAGE", value_hint = ValueHint::FilePath)]
    pub(crate) output: PathBuf,
    #[command(flatten)]
    pub(crate) image_opts: ImageArgs,
    #[command(flatten)]
    pub(crate) chain: ChainArgs,
    /// Replace an existing output file.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `he studio`.
#[derive(Debug, Args)]
pub(crate) struct StudioArgs {
    /// Loopback address and port of the page (port 0: any free port).
    /// Other addresses are refused: the page reaches the private key.
    #[arg(long, default_value = "127.0.0.1:8766")]
    pub(crate) listen: SocketAddr,
    /// The server's URL (default: a server started in this process on
    /// loopback).
    #[arg(long, value_name = "URL")]
    pub(crate) server: Option<String>,
    /// API token for a server with tokens (`he token create`).
    #[arg(long, value_name = "TOKEN", env = "HE_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<Secret>,
    /// Trust the CA certificates (PEM) in FILE for an https:// server,
    /// instead of the system's roots.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) ca: Option<PathBuf>,
    /// Use the key pair in FILE for every job (default: a new key of the
    /// size chosen on the page, kept in memory only).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) key: Option<PathBuf>,
    /// Load a --key FILE that others can read (refused otherwise).
    #[arg(long)]
    pub(crate) allow_readable_key: bool,
    /// Open the page in the browser.
    #[arg(long)]
    pub(crate) open: bool,
}

/// `he completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    pub(crate) shell: clap_complete::Shell,
}

/// `he man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The directory to write the pages into (created if missing).
    #[arg(short, long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub(crate) output: PathBuf,
}

/// A secret from the command line (an API token): its `Debug` shows no
/// character of it, so no log or debug print of the arguments leaks it.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}
