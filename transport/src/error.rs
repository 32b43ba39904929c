//! Errors of setting up TLS, and what a failed handshake means.

use std::path::PathBuf;

/// A certificate, key or TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A certificate or key file cannot be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate file is not usable.
    #[error("{}: {problem}", file.display())]
    Certificate {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A private key file is not usable.
    #[error("{}: {problem}", file.display())]
    Key {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A certificate could not be made.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    /// The TLS configuration is inconsistent.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Why a handshake failed, from the dialling side: each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate is not the coordinator's (pinned: it does
    /// not carry `coordinator.public_key`; CA: not issued by the CA, expired,
    /// or not for the host). Someone else answers at the address.
    NotTheCoordinator(String),
    /// The coordinator refused this participant's certificate (its key is
    /// not the one in the coordinator's consortium file, or it names no
    /// member, or in CA mode it is not issued by the CA or has expired).
    RefusedByCoordinator(String),
    /// The server does not speak TLS (or speaks it wrongly).
    NotTls(String),
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::NotTheCoordinator(why) => {
                write!(f, "the server is not the consortium's coordinator: {why}")
            }
            TlsFailure::RefusedByCoordinator(why) => {
                let hint = if why.contains("CertificateRevoked") {
                    "the CA revoked it (it is on the consortium's revocation list): ask the CA \
                     for a new certificate"
                } else if why.contains("CertificateExpired") {
                    "it has expired: renew it with the CA"
                } else {
                    "is this member's key or certificate the one in the coordinator's \
                     consortium.toml?"
                };
                write!(
                    f,
                    "the coordinator refused this participant's certificate ({why}): {hint}"
                )
            }
            TlsFailure::NotTls(why) => write!(f, "no TLS at the coordinator's address: {why}"),
        }
    }
}

/// Finds a TLS handshake failure anywhere in an error's source chain (a
/// tonic `Status` from a failed call keeps the transport error as its
/// source). `None` when the failure was not TLS (refused connection,
/// timeout, reset).
pub fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(classify(t));
        }
        // `io::Error::source` skips the error it wraps: look inside.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                return Some(classify(t));
            }
            if let Some(f) = inner.downcast_ref::<HandshakeError>() {
                return Some(f.0.clone());
            }
        }
        if let Some(f) = e.downcast_ref::<HandshakeError>() {
            return Some(f.0.clone());
        }
        // An alert received after the handshake (TLS 1.3: the server checks
        // the client's certificate after the client has finished) reaches
        // the caller through h2, which keeps only its text.
        if let Some(f) = alert_text(&e.to_string()) {
            return Some(f);
        }
        next = e.source();
    }
    None
}

/// A classified handshake failure, as the client connector reports it.
#[derive(Debug)]
pub(crate) struct HandshakeError(pub(crate) TlsFailure);

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for HandshakeError {}

fn alert_text(text: &str) -> Option<TlsFailure> {
    const REFUSALS: [&str; 8] = [
        "BadCertificate",
        "CertificateUnknown",
        "CertificateExpired",
        "CertificateRevoked",
        "UnknownCA",
        "AccessDenied",
        "CertificateRequired",
        "DecryptError",
    ];
    let (_, alert) = text.split_once("received fatal alert: ")?;
    let alert = alert.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    Some(if REFUSALS.contains(&alert) {
        TlsFailure::RefusedByCoordinator(format!("it sent the TLS alert {alert}"))
    } else {
        TlsFailure::NotTls(format!("it sent the TLS alert {alert}"))
    })
}

pub(crate) fn classify(e: &rustls::Error) -> TlsFailure {
    use rustls::{AlertDescription as A, Error as E};
    match e {
        E::InvalidCertificate(_) | E::NoCertificatesPresented => {
            TlsFailure::NotTheCoordinator(e.to_string())
        }
        E::AlertReceived(
            A::BadCertificate
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnknownCA
            | A::AccessDenied
            | A::CertificateRequired
            | A::DecryptError,
        ) => TlsFailure::RefusedByCoordinator(e.to_string()),
        _ => TlsFailure::NotTls(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_known_only_by_its_text_is_classified() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "received fatal alert: CertificateUnknown",
        );
        assert!(matches!(
            tls_failure(&io),
            Some(TlsFailure::RefusedByCoordinator(_))
        ));
        let io = std::io::Error::other("received fatal alert: ProtocolVersion");
        assert!(matches!(tls_failure(&io), Some(TlsFailure::NotTls(_))));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_failure(&io), None);
    }

    /// A revoked or expired certificate is not a wrong key: the message
    /// says what to ask the CA for.
    #[test]
    fn a_revoked_or_expired_certificate_says_so() {
        let text = |alert: &str| {
            let io = std::io::Error::other(format!("received fatal alert: {alert}"));
            tls_failure(&io).expect("classified").to_string()
        };
        assert!(text("CertificateRevoked").contains("the CA revoked it"));
        assert!(text("CertificateExpired").contains("renew it with the CA"));
        assert!(text("BadCertificate").contains("the one in the coordinator's consortium.toml"));
    }
}
