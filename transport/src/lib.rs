//! Mutual TLS 1.3 between the coordinator and the participants.
//!
//! Every connection is authenticated on both ends during the handshake,
//! before any gRPC request is read:
//!
//! - the coordinator presents a certificate bound to the coordinator in
//!   `consortium.toml`, and each participant one bound to its own member id;
//! - a client that is not a listed member fails the handshake.
//!
//! Two [`Trust`] modes:
//!
//! - **pinned** (default): each party's certificate is self-signed and
//!   carries its Ed25519 identity key itself, so the consortium file alone
//!   says who is who; no CA to run. Dates, names and issuers are not
//!   checked: the key is the identity (rotation and revocation are edits of
//!   the consortium file). Why reusing the identity key is safe: see
//!   [`fedcredit_crypto::identity::IdentityKey::to_pkcs8_der`].
//! - **ca**: a bank's own PKI. Chains are verified by webpki against the
//!   configured CA certificates (dates, key usage, signatures); a member's
//!   certificate must name its member id (a SAN DNS name equal to the id, or
//!   the URI `urn:fedcredit:member:<id>`), and the id must be in the roster.
//!   The coordinator's certificate must be valid for the host of the URL
//!   the participants dial.
//!
//! The crypto provider is rustls' *ring*: it builds with a C compiler alone
//! (aws-lc-rs needs CMake and takes several times longer to build, which
//! matters for CI on two cores), and it has everything a TLS 1.3-only
//! configuration with Ed25519, ECDSA and RSA certificates needs. What it
//! lacks is a FIPS mode and post-quantum key exchange (X25519MLKEM768); a
//! consortium that needs either switches the provider in one place,
//! [`provider`].
//!
//! The server side ([`server`]) accepts TCP connections, runs handshakes
//! under limits (a timeout, a cap on handshakes in flight overall and per
//! source address, a cap on connections), and hands tonic only
//! authenticated streams, each tagged with its member ([`Peer`]). The
//! client side ([`client`]) is a connector for tonic's `Endpoint`.
#![forbid(unsafe_code)]

mod cert;
pub mod client;
mod error;
pub mod server;
pub mod setup;
mod verify;

use std::sync::Arc;

use rustls_pki_types::CertificateRevocationListDer;

pub use cert::{
    Credentials, MEMBER_URI_PREFIX, member_names, pinned_certificate_pem, read_certificates,
    read_crls,
};
pub use error::{TlsFailure, TransportError, tls_failure};
pub use server::{Limits, Peer};

/// How parties recognise each other's certificates.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Certificates carry the identity keys listed in `consortium.toml`.
    Pinned,
    /// Certificates are issued by one of these CAs and name the member id.
    Ca {
        /// The trust anchors, parsed from the consortium's CA file.
        roots: Arc<rustls::RootCertStore>,
        /// Revocation lists; when there are any, a revoked certificate, or
        /// one whose issuer no list covers, fails the handshake.
        crls: Arc<Vec<CertificateRevocationListDer<'static>>>,
    },
}

impl Trust {
    /// The mode's name as written in the consortium file.
    pub fn name(&self) -> &'static str {
        match self {
            Trust::Pinned => "pinned",
            Trust::Ca { .. } => "ca",
        }
    }

    /// Reads CA certificates (PEM) into a [`Trust::Ca`] without revocation lists.
    pub fn ca_from_pem_file(path: &std::path::Path) -> Result<Self, TransportError> {
        Self::ca_from_pem_files(path, &[])
    }

    /// Reads CA certificates and revocation lists (PEM) into a [`Trust::Ca`].
    pub fn ca_from_pem_files(
        path: &std::path::Path,
        crl_files: &[std::path::PathBuf],
    ) -> Result<Self, TransportError> {
        let certs = read_certificates(path)?;
        let mut roots = rustls::RootCertStore::empty();
        for (i, c) in certs.into_iter().enumerate() {
            roots.add(c).map_err(|e| TransportError::Certificate {
                file: path.to_owned(),
                problem: format!("certificate {} is not a usable CA certificate: {e}", i + 1),
            })?;
        }
        let mut crls = Vec::new();
        for f in crl_files {
            crls.extend(read_crls(f)?);
        }
        Ok(Trust::Ca {
            roots: Arc::new(roots),
            crls: Arc::new(crls),
        })
    }
}

/// The crypto provider every configuration uses: rustls' *ring* provider,
/// TLS 1.3 cipher suites only.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites
        .retain(|s| s.version() == &rustls::version::TLS13);
    Arc::new(p)
}

/// The ALPN protocol both sides insist on: gRPC runs over HTTP/2.
const ALPN_H2: &[u8] = b"h2";
