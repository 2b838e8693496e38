//! The online service: filters images it only ever sees encrypted.
//!
//! ```text
//! cargo run --release --example server -- [--listen 127.0.0.1:8787] [--max-body MIB]
//!     [--queue N] [--retention SECS] [--workers N] [--max-side PX] [--max-chain N]
//!     [--upload-timeout SECS] [--max-connections N] [--concurrent-jobs N]
//! ```
//!
//! It holds public keys and ciphertexts only. The API, its limits and the
//! retention of results are in docs/SERVICE.md; logs go to standard error
//! (`RUST_LOG=debug` for more, `RUST_LOG=warn` for less). Plain HTTP: for
//! anything but loopback, put a TLS-terminating reverse proxy in front.

use std::process::ExitCode;
use std::time::Duration;

use he_service::server::Config;
use he_service::wire::DEFAULT_PORT;
use tracing_subscriber::EnvFilter;

const USAGE: &str =
    "usage: server [--listen ADDR] [--max-body MIB] [--queue N] [--retention SECS] \
[--workers N] [--max-side PX] [--max-chain N] [--upload-timeout SECS] [--max-connections N] [--concurrent-jobs N]

  --listen ADDR          address and port (default 127.0.0.1:8787)
  --max-body MIB         largest request body in MiB (default 64)
  --queue N              most jobs in flight before 503 (default 8)
  --retention SECS       how long finished results are kept (default 600)
  --workers N            filter threads (default: one per core)
  --max-side PX          largest image width and height (default 16384)
  --max-chain N          most filters in one request (default 8)
  --upload-timeout SECS  time allowed for an upload (default 120)
  --max-connections N    most open connections (default 512)
  --concurrent-jobs N    jobs filtered at once, each on all workers (default 1)";

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut c = Config::default();
    fn number<T: std::str::FromStr>(
        it: &mut impl Iterator<Item = String>,
        flag: &str,
    ) -> Result<T, String> {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
    }
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--listen" => {
                let v = it.next().ok_or("--listen needs a value")?;
                c.listen = v.parse().map_err(|_| {
                    format!("--listen: {v:?} is not an address such as 127.0.0.1:{DEFAULT_PORT}")
                })?;
            }
            "--max-body" => {
                let mib: usize = number(&mut it, &arg)?;
                c.max_body_bytes = mib
                    .checked_mul(1 << 20)
                    .filter(|&b| b > 0 && b <= u32::MAX as usize)
                    .ok_or("--max-body must be 1 to 4095 MiB")?;
            }
            "--queue" => c.queue_capacity = number(&mut it, &arg)?,
            "--retention" => c.retention = Duration::from_secs(number(&mut it, &arg)?),
            "--workers" => c.workers = std::num::NonZeroUsize::new(number(&mut it, &arg)?),
            "--max-side" => c.max_side = number(&mut it, &arg)?,
            "--max-chain" => c.max_chain_len = number(&mut it, &arg)?,
            "--concurrent-jobs" => c.concurrent_jobs = number(&mut it, &arg)?,
            "--max-connections" => c.max_connections = number(&mut it, &arg)?,
            "--upload-timeout" => c.upload_timeout = Duration::from_secs(number(&mut it, &arg)?),
            s => return Err(format!("unknown argument {s}")),
        }
    }
    Ok(c)
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    eprintln!(
        "he-service on http://{} (Ctrl-C to stop); API: docs/SERVICE.md",
        config.listen
    );
    match he_service::server::run_until_ctrl_c(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
