//! Every outbound HTTP client of the node, built in one place.
//!
//! The stacks-node RPC providers (`nexus-stacks`: reads, broadcasts, the gap
//! fill's block replay) and the webhook sender (`nexus-delivery`) take their
//! `reqwest::Client` from [`Outbound::client`]: rustls, the platform's
//! trusted roots (read at run time from the system store, `/etc/ssl/certs`
//! on Debian), the certificates of `ca_cert_path` when the operator trusts a
//! private CA as well (an internal RPC provider or webhook receiver), and the
//! timeouts. One place, so that a root the operator adds is trusted by every
//! call and no client is built without it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What every outbound client trusts besides the platform's roots. Cheap to
/// clone; [`Outbound::default`] trusts the platform's roots only.
#[derive(Clone, Default)]
pub struct Outbound {
    /// `ca_cert_path`'s certificates, read and checked once at start.
    extra_roots: Vec<reqwest::Certificate>,
    /// The file they came from (for `Debug` and logs).
    source: Option<PathBuf>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("extra_roots", &self.extra_roots.len())
            .field("source", &self.source)
            .finish()
    }
}

/// Why the outbound clients cannot be built. Every variant is permanent: a
/// file or setting to fix, which no retry changes, so the node refuses to
/// start rather than fail each call.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// `ca_cert_path` cannot be read (missing, a directory, no permission).
    #[error("ca_cert_path {}: cannot read it", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file holds no `-----BEGIN CERTIFICATE-----` block (not PEM, or
    /// only a key).
    #[error("ca_cert_path {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE----- blocks)", path.display())]
    NoCertificate { path: PathBuf },
    /// A certificate block that is not a valid X.509 certificate.
    #[error("ca_cert_path {}: not a valid PEM certificate", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    /// The TLS stack refused the client's settings.
    #[error("could not build an HTTP client")]
    Client(#[source] reqwest::Error),
}

impl OutboundError {
    /// Never: see the type's documentation.
    pub fn is_temporary(&self) -> bool {
        false
    }
}

/// The timeout of the client built to check `ca_cert_path` (never used for a call).
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

impl Outbound {
    /// The platform's roots, plus `ca_cert_path`'s when it is set.
    pub fn new(ca_cert_path: Option<&Path>) -> Result<Self, OutboundError> {
        match ca_cert_path {
            Some(path) => Self::with_ca_file(path),
            None => Ok(Self::default()),
        }
    }

    /// The platform's roots plus every certificate of the PEM file at
    /// `path` (one or several `-----BEGIN CERTIFICATE-----` blocks). The
    /// file is checked whole here: rustls parses a root only when a client
    /// is built, so one is built now rather than at the first call.
    pub fn with_ca_file(path: &Path) -> Result<Self, OutboundError> {
        let pem = std::fs::read(path).map_err(|source| OutboundError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |source| OutboundError::Invalid {
            path: path.to_path_buf(),
            source,
        };
        let extra_roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(invalid)?;
        if extra_roots.is_empty() {
            return Err(OutboundError::NoCertificate {
                path: path.to_path_buf(),
            });
        }
        let out = Outbound {
            extra_roots,
            source: Some(path.to_path_buf()),
        };
        out.builder(CHECK_TIMEOUT).build().map_err(invalid)?;
        Ok(out)
    }

    /// How many certificates `ca_cert_path` added (0 without one).
    pub fn extra_roots(&self) -> usize {
        self.extra_roots.len()
    }

    /// A client whose requests (connect included) give up after `timeout`
    /// unless a request sets its own. `http://` and `https://` alike.
    pub fn client(&self, timeout: Duration) -> Result<reqwest::Client, OutboundError> {
        self.builder(timeout).build().map_err(OutboundError::Client)
    }

    fn builder(&self, timeout: Duration) -> reqwest::ClientBuilder {
        let mut b = reqwest::Client::builder()
            // The one TLS backend the workspace enables; named so that a
            // dependency switching on native-tls cannot swap it silently.
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout);
        for root in &self.extra_roots {
            b = b.add_root_certificate(root.clone());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_pem_bundle_adds_every_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let two = format!("{}\n{}", ca_pem(), ca_pem());
        let out = Outbound::new(Some(&file(&dir, "ca.pem", &two))).unwrap();
        assert_eq!(out.extra_roots(), 2);
        out.client(Duration::from_secs(1)).unwrap();
        assert_eq!(Outbound::new(None).unwrap().extra_roots(), 0);
    }

    /// Each refusal names the file, so the start-up error says what to fix.
    #[test]
    fn a_bad_file_is_refused_naming_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.pem");
        let not_pem = file(&dir, "notes.txt", "just some text\n");
        let key_only = file(
            &dir,
            "key.pem",
            &rcgen::KeyPair::generate().unwrap().serialize_pem(),
        );
        let bad_der = file(
            &dir,
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
        );
        let kind = |e: &OutboundError| match e {
            OutboundError::Read { .. } => "read",
            OutboundError::NoCertificate { .. } => "no certificate",
            OutboundError::Invalid { .. } => "invalid",
            OutboundError::Client(_) => "client",
        };
        for (path, expected) in [
            (&missing, "read"),
            (&not_pem, "no certificate"),
            (&key_only, "no certificate"),
            (&bad_der, "invalid"),
        ] {
            let err = Outbound::new(Some(path)).unwrap_err();
            assert_eq!(kind(&err), expected, "{}: {err:?}", path.display());
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
            assert!(!err.is_temporary());
        }
    }
}
