//! `he serve`: the online service. It holds public keys and ciphertexts
//! only; the API, limits and retention are in docs/SERVICE.md. Logs go to
//! standard error (`RUST_LOG=debug` for more, `RUST_LOG=warn` for less).

use std::time::Duration;

use anyhow::Result;
use he_service::server::tokens::TokenFile;
use he_service::server::{Config, TlsFiles};
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;

/// The service's configuration from the command line, over the defaults.
pub(crate) fn config(a: &ServeArgs) -> Result<Config> {
    let mut c = Config {
        listen: a.listen,
        allow_anonymous: a.anonymous,
        ..Config::default()
    };
    if let Some(path) = &a.tokens {
        c.tokens = Some(TokenFile::load(path)?);
    }
    if let Some(n) = a.max_job_cost {
        c.max_job_cost = n;
    }
    if let Some(mib) = a.max_body {
        c.max_body_bytes = (mib as usize) << 20;
    }
    if let Some(n) = a.queue {
        c.queue_capacity = n;
    }
    if let Some(s) = a.retention {
        c.retention = Duration::from_secs(s);
    }
    if let Some(n) = a.workers {
        c.workers = Some(n);
    }
    if let Some(n) = a.max_side {
        c.max_side = n;
    }
    if let Some(n) = a.max_chain {
        c.max_chain_len = n;
    }
    if let Some(s) = a.upload_timeout {
        c.upload_timeout = Duration::from_secs(s);
    }
    if let Some(n) = a.max_connections {
        c.max_connections = n;
    }
    if let Some(n) = a.concurrent_jobs {
        c.concurrent_jobs = n;
    }
    if let Some(n) = a.heavy_job_units {
        c.heavy_job_units = n;
    }
    // connections and TLS
    if let Some(s) = a.header_timeout {
        c.header_timeout = Duration::from_secs(s);
    }
    if let Some(s) = a.idle_timeout {
        c.idle_timeout = Duration::from_secs(s);
    }
    if let Some(s) = a.body_read_timeout {
        c.body_read_timeout = Duration::from_secs(s);
    }
    if let Some(kib) = a.min_upload_rate {
        c.min_upload_rate = kib.saturating_mul(1024);
    }
    if let Some(n) = a.max_connections_per_client {
        c.max_connections_per_client = usize::try_from(n).unwrap_or(usize::MAX);
    }
    c.trusted_proxies.clone_from(&a.trusted_proxies);
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        c.tls = Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    c.allow_plain_http = a.allow_plain_http;
    Ok(c)
}

/// Runs `he serve` until Ctrl-C.
pub(crate) fn run(a: ServeArgs) -> Result<()> {
    let config = config(&a)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let who = match &config.tokens {
        Some(t) => format!("{} API tokens", t.tokens.len()),
        None => "anonymous: no tokens".to_string(),
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!(
        "he serve on {scheme}://{} ({who}; Ctrl-C to stop); API: docs/SERVICE.md",
        config.listen
    );
    he_service::server::run_until_ctrl_c(config)?;
    Ok(())
}
