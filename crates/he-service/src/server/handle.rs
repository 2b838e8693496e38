//! Running the service: [`ServerHandle`] on its own thread and runtime
//! (tests, the load test, embedding), or [`run_until_ctrl_c`] on the
//! current thread (the server program).

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
    shutdown: Option<oneshot::Sender<()>>,
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
        let (tx, rx) = oneshot::channel::<()>();
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
                    let serve = svc.serve(listener, async {
                        let _ = rx.await;
                    });
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
            shutdown: Some(tx),
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
    /// waits for the server thread.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
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
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
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

/// Serves `config` on the current thread until Ctrl-C (the server example).
pub fn run_until_ctrl_c(config: Config) -> Result<()> {
    let service = Service::new(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("he-service-io")
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listen = service.config().listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {listen}: {e}")))?;
        service
            .serve(listener, async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    info!("Ctrl-C: finishing requests in progress");
                }
            })
            .await
    })
}
