//! `he studio`: a web page on this machine for people who do not use
//! terminals. The local app holds the key; the server (remote, or one
//! started here on loopback) gets the public key and ciphertexts only.
//!
//! - `guard.rs`: the secret, `Host` and `Origin` checks on every request.
//! - `api.rs`: the routes the page calls.
//! - `jobs.rs`: the connection, keys, photos and the queue of jobs;
//!   `meter.rs`: each job's progress; `remote.rs`: the one call into the
//!   client; `compose.rs`: the region tool.
//!
//! docs/STUDIO.md has the security model.

mod api;
mod compose;
mod guard;
mod jobs;
mod meter;
mod remote;
#[cfg(test)]
mod tests;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use he_service::server::{Config, ServerHandle};

use crate::cli::StudioArgs;
use crate::files;
use jobs::{Connection, Studio};

/// How long requests in progress get after Ctrl-C.
const SHUTDOWN: Duration = Duration::from_secs(2);

/// Refuses an address that is not loopback: the page reaches the holder
/// of the private key, so nothing but this machine may open it.
fn check_listen(addr: SocketAddr) -> Result<()> {
    if !addr.ip().is_loopback() {
        bail!(
            "--listen {addr}: the studio listens on a loopback address only \
             (127.0.0.1 or [::1]); the page reaches your private key"
        );
    }
    Ok(())
}

/// The studio's state and its worker thread.
fn start_studio(
    connection: Connection,
    key: Option<paillier::Keypair>,
    ca: Option<Vec<u8>>,
) -> Arc<Studio> {
    let studio = Arc::new(Studio::new(connection, key, ca));
    let weak = Arc::downgrade(&studio);
    std::thread::Builder::new()
        .name("studio-jobs".into())
        .spawn(move || jobs::work(&weak))
        .ok();
    studio
}

/// Opens `url` in the browser; a failure is a warning.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("he: warning: could not open a browser ({opener}: {e}); open the address above");
    }
}

/// Runs `he studio` until Ctrl-C.
pub(crate) fn run(a: StudioArgs) -> Result<()> {
    check_listen(a.listen)?;
    let key = a
        .key
        .as_deref()
        .map(|p| files::load_keypair(p, a.allow_readable_key))
        .transpose()?;
    let ca =
        a.ca.as_deref()
            .map(|p| files::read_capped(p, 1 << 20, "CA certificates"))
            .transpose()?;
    let (embedded, connection) = match a.server {
        Some(server) => (
            None,
            Connection {
                server,
                token: a.token.map(|t| t.0),
                embedded: false,
            },
        ),
        None => {
            let handle = ServerHandle::start(Config {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..Config::default()
            })
            .context("starting the embedded server")?;
            let server = handle.url();
            (
                Some(handle),
                Connection {
                    server,
                    token: None,
                    embedded: true,
                },
            )
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let embedded_note = if embedded.is_some() {
        " (started here, on loopback)"
    } else {
        ""
    };
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        let guard = guard::Guard::new(addr)?;
        let server = connection.server.clone();
        let studio = start_studio(connection, key, ca);
        println!(
            "he studio: open {}\n  (this address holds a secret: do not share it)\n  server: {server}{}; Ctrl-C to stop",
            guard.url(),
            embedded_note
        );
        if a.open {
            open_browser(&guard.url());
        }
        // Ctrl-C stops at once: the page's event stream never ends, so a
        // graceful shutdown would wait for ever, and the jobs live in this
        // process only.
        tokio::select! {
            served = axum::serve(listener, api::router(studio, guard)).into_future() => {
                served.context("the studio stopped")
            }
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    });
    rt.shutdown_timeout(SHUTDOWN);
    if let Some(h) = embedded {
        h.kill().context("stopping the embedded server")?;
    }
    served
}
