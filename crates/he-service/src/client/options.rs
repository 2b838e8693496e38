//! How the client copes with a slow, dead or restarting server.

use std::time::Duration;

/// How the client copes with a slow, dead or restarting server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Longest wait for a TCP connection (default 10 s).
    pub connect_timeout: Duration,
    /// Longest silence on a connection: one read or one write (default
    /// 60 s). A server that accepts but never answers fails the request
    /// after this.
    pub io_timeout: Duration,
    /// Submissions of one job in all, the first included, when the server
    /// restarts and loses it (default 3).
    pub attempts: u32,
    /// Retries of one upload or download cut midway (default 3).
    pub transfer_retries: u32,
    /// First pause before a retry, doubled after each (default 250 ms).
    pub backoff: Duration,
    /// Longest pause before a retry (default 5 s).
    pub max_backoff: Duration,
    /// For `https://` servers: the certificates (PEM) of the CAs to trust
    /// instead of the system's roots, for a server whose certificate is
    /// signed by a CA of your own (default `None`: the system's roots).
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(60),
            attempts: 3,
            transfer_retries: 3,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            ca_pem: None,
        }
    }
}
