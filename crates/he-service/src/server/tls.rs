//! HTTPS: the certificate and key files, the rustls acceptor (ring
//! provider, TLS 1.2 and 1.3, HTTP/1.1 by ALPN), and the rule that plain
//! HTTP is served on loopback only unless asked for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::config::Config;
use super::error::{Error, Result};

/// The acceptor for [`Config::tls`], or `None` for plain HTTP.
pub(super) fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>> {
    let Some(files) = &config.tls else {
        return Ok(None);
    };
    let bad = |what: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
        Error::Config(format!("TLS {what} {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| bad("certificate", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(bad(
            "certificate",
            &files.cert,
            &"no CERTIFICATE block in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad("key", &files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Config(format!(
                "TLS certificate {} and key {} do not make a usable pair: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// Refuses plain HTTP on an address other than loopback, unless
/// [`Config::allow_plain_http`] says a TLS-terminating proxy is in front.
pub(super) fn check_transport(addr: SocketAddr, config: &Config) -> Result<()> {
    if config.tls.is_some() || config.allow_plain_http || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "refusing to serve plain HTTP on {addr}, which is not a loopback address: \
         give a certificate and key (he serve --tls-cert FILE --tls-key FILE), or, \
         if a TLS-terminating proxy is in front, say so with --allow-plain-http"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::TlsFiles;

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let c = Config::default();
        assert!(check_transport("127.0.0.1:1".parse().unwrap(), &c).is_ok());
        assert!(check_transport("[::1]:1".parse().unwrap(), &c).is_ok());
        let e = check_transport("0.0.0.0:1".parse().unwrap(), &c).unwrap_err();
        assert!(e.to_string().contains("--allow-plain-http"), "{e}");
        let c = Config {
            allow_plain_http: true,
            ..Config::default()
        };
        assert!(check_transport("0.0.0.0:1".parse().unwrap(), &c).is_ok());
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = std::env::temp_dir().join(format!("he-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let c = Config {
            tls: Some(TlsFiles {
                cert: empty.clone(),
                key: dir.join("missing.pem"),
            }),
            ..Config::default()
        };
        let Err(e) = acceptor(&c) else {
            panic!("an empty certificate file was accepted")
        };
        let e = e.to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
