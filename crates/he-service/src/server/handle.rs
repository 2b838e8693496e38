//! Running the service: [`ServerHandle`] on its own thread and runtime
//! (tests, the load test, embedding), or [`run_until_stopped`] on the
//! current thread (the server program), which drains on SIGTERM or
//! Ctrl-C (`drain.rs`).

use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::config::Config;
use super::error::{Error, Result};
use super::service::Service;

/// A server running on its own thread and runtime, for tests, the load
/// test and embedding. Dropping it shuts the server down.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    service: Service,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// Binds `config.listen` (port 0 picks a free port) and serves in the background.
    pub fn start(config: Config) -> Result<Self> {
        Self::start_service(Service::new(config)?)
    }

    /// Serves an existing [`Service`] in the background.
    pub fn start_service(service: Service) -> Result<Self> {
        let listen = service.config().listen;
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| Error::Config(format!("cannot listen on {listen}: {e}")))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        // Refused settings fail here, not later on the server's thread.
        super::tls::check_transport(addr, service.config())?;
        super::tls::acceptor(service.config())?;
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let svc = service.clone();
        let thread = std::thread::Builder::new()
            .name("he-service".into())
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("he-service-io")
                    .enable_all()
                    .build()?;
                let served = rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    // Stopped and drained through the service's stage.
                    let serve = svc.serve(listener, std::future::pending());
                    // Only a kill sent ends this early; a dropped sender does not.
                    let killed = async {
                        if kill_rx.await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        r = serve => r,
                        () = killed => {
                            warn!("he-service killed: connections cut, jobs in flight lost");
                            Ok(())
                        }
                    }
                });
                // Cancels every connection task at once (after a kill, the
                // ones still open): their sockets close without an answer.
                rt.shutdown_background();
                served
            })?;
        Ok(ServerHandle {
            addr,
            service,
            kill: Some(kill_tx),
            thread: Some(thread),
        })
    }

    /// The address served.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://ADDR`, or `https://ADDR` with TLS.
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.service.config().tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The service served.
    #[must_use]
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Stops accepting connections, lets requests in progress finish, and
    /// waits for the server thread. Jobs held are not waited for (see
    /// [`ServerHandle::drain`]).
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    /// Stops gracefully, as on SIGTERM: accepting stops, new jobs get
    /// `503`, and the server stops once the jobs it holds are finished and
    /// collected, or after [`Config::drain_timeout`]; then waits for the
    /// server thread.
    pub fn drain(mut self) -> Result<()> {
        self.service.shared.drain.begin();
        self.join()
    }

    /// Stops at once, as a crash would: the listener and every open
    /// connection are closed without an answer, and the jobs in the store
    /// are forgotten (a filter already running finishes on its pool, and
    /// its result is dropped). For fault tests: a server started afterwards
    /// on the same address has another [`Service::instance`].
    pub fn kill(mut self) -> Result<()> {
        if let Some(tx) = self.kill.take() {
            let _ = tx.send(());
        }
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        self.service.shared.drain.stop_now();
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Internal("the server thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Serves `config` on the current thread until SIGTERM or Ctrl-C, then
/// drains (`drain.rs`: no new connections or jobs, up to
/// [`Config::drain_timeout`] for the jobs held to finish and be
/// collected) and returns. A second signal stops at once.
pub fn run_until_stopped(config: Config) -> Result<()> {
    let service = Service::new(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("he-service-io")
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // Listening for signals before the socket is bound: a signal sent
        // once the port answers is never missed.
        let signals = Signals::new()?;
        let listen = service.config().listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {listen}: {e}")))?;
        let shared = std::sync::Arc::clone(&service.shared);
        let stopper = tokio::spawn(async move {
            let mut signals = signals;
            let first = signals.next().await;
            if shared.drain.begin() {
                info!(signal = first, "stopping gracefully: draining");
            }
            let second = signals.next().await;
            warn!(signal = second, "second signal: stopping now");
            shared.drain.stop_now();
        });
        let served = service.serve(listener, std::future::pending()).await;
        stopper.abort();
        served
    })
}

/// SIGTERM (on Unix) and Ctrl-C.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        Ok(Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            // A stream that ended or a handler that failed is no signal.
            tokio::select! {
                Some(()) = self.term.recv() => "SIGTERM",
                Ok(()) = tokio::signal::ctrl_c() => "Ctrl-C",
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}
