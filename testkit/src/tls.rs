//! A local TLS server for tests of https calls. Each [`TlsFront`] makes a
//! test CA of its own (rcgen, in memory, never on disk in the repository)
//! and a certificate for `127.0.0.1` signed by it, terminates TLS on an
//! ephemeral loopback port, and forwards the plain bytes of every
//! connection to a plain TCP server of the test (an axum router, the RPC
//! double): the test's server answers over `https://` without knowing it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A running TLS front; stops (closing every connection) when dropped.
pub struct TlsFront {
    /// Where clients connect: `https://{addr}`.
    pub addr: SocketAddr,
    /// The test CA's certificate, PEM: trust it to reach this front.
    pub ca_pem: String,
    task: AbortHandle,
}

impl TlsFront {
    /// A front for `upstream`, its certificate issued by a fresh test CA.
    pub async fn start(upstream: SocketAddr) -> TlsFront {
        let (ca_pem, config) = certificates();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the TLS front");
        let addr = listener.local_addr().expect("TLS front address");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it ends every connection too.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(forward(acceptor.clone(), client, upstream));
                while connections.try_join_next().is_some() {}
            }
        })
        .abort_handle();
        TlsFront { addr, ca_pem, task }
    }

    /// `https://{addr}`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Write the CA certificate to `dir/name` (for a `ca_cert_path`).
    pub fn write_ca(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.ca_pem).expect("write the test CA");
        path
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: the handshake, then bytes both ways until either side
/// closes. A failed handshake (a client that does not trust the CA) just
/// ends the connection, as a real server would.
async fn forward(acceptor: TlsAcceptor, client: TcpStream, upstream: SocketAddr) {
    let Ok(mut tls) = acceptor.accept(client).await else {
        return;
    };
    let Ok(mut plain) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
}

/// A fresh CA (its PEM) and a server configuration whose certificate, for
/// `127.0.0.1` and `localhost`, that CA signed.
fn certificates() -> (String, ServerConfig) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "nexus-testkit test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
        .expect("self-signed CA");
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf.distinguished_name
        .push(DnType::CommonName, "nexus-testkit server");
    let key = KeyPair::generate().expect("server key");
    let cert = leaf.signed_by(&key, &ca).expect("server certificate");
    // ring explicitly, like reqwest's rustls: no process-wide default needed.
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server TLS config");
    (ca.pem(), config)
}
