//! Certificate verifiers: who the peer is, decided during the handshake.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedcredit_crypto::identity::IdentityPublic;
use fedcredit_proto::roster::{ParticipantId, Roster};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{Trust, member_names};

/// Pinned certificates carry Ed25519 identity keys: nothing else verifies.
static ED25519_ONLY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[webpki::ring::ED25519],
    mapping: &[(SignatureScheme::ED25519, &[webpki::ring::ED25519])],
};

fn refuse(why: String) -> Error {
    #[derive(Debug)]
    struct Why(String);
    impl std::fmt::Display for Why {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Why {}
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Why(why)))))
}

/// The roster as the handshake sees it: which certificate is which member.
#[derive(Debug)]
pub(crate) struct Members {
    pinned: bool,
    by_spki: BTreeMap<Vec<u8>, ParticipantId>,
    ids: BTreeSet<ParticipantId>,
}

impl Members {
    pub(crate) fn new(trust: &Trust, roster: &Roster) -> Self {
        Self {
            pinned: matches!(trust, Trust::Pinned),
            by_spki: roster
                .members()
                .map(|m| (m.key.to_spki_der(), m.id.clone()))
                .collect(),
            ids: roster.members().map(|m| m.id.clone()).collect(),
        }
    }

    /// The member a (chain-verified, in CA mode) end-entity certificate
    /// belongs to, or why it belongs to none.
    pub(crate) fn identify(&self, cert: &CertificateDer<'_>) -> Result<ParticipantId, String> {
        if self.pinned {
            let ee = webpki::EndEntityCert::try_from(cert)
                .map_err(|e| format!("not a valid X.509 certificate: {e:?}"))?;
            let spki = ee.subject_public_key_info();
            return self.by_spki.get(spki.as_ref()).cloned().ok_or_else(|| {
                "its key is not the identity key of any member in consortium.toml".to_owned()
            });
        }
        let named: Vec<ParticipantId> = member_names(cert)
            .iter()
            .filter_map(|n| self.ids.get(n.as_str()).cloned())
            .collect();
        match named.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(format!(
                "it names no member of consortium.toml (SAN names: {:?})",
                member_names(cert)
            )),
            many => Err(format!(
                "it names {} members ({}); a member's certificate names exactly one",
                many.len(),
                many.iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The coordinator's check of a participant's certificate: in the
/// handshake, so an unlisted client never reaches gRPC.
#[derive(Debug)]
pub(crate) struct MemberVerifier {
    members: Arc<Members>,
    /// CA mode: webpki's chain verification, run first.
    chain: Option<Arc<dyn ClientCertVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl MemberVerifier {
    pub(crate) fn new(trust: &Trust, members: Arc<Members>) -> Result<Self, crate::TransportError> {
        let provider = crate::provider();
        Ok(match trust {
            Trust::Pinned => Self {
                members,
                chain: None,
                algorithms: ED25519_ONLY,
            },
            Trust::Ca { roots, crls } => Self {
                members,
                chain: Some(
                    rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::clone(roots),
                        Arc::clone(&provider),
                    )
                    .with_crls(crls.iter().cloned())
                    .build()
                    .map_err(|e| crate::TransportError::Config(e.to_string()))?,
                ),
                algorithms: provider.signature_verification_algorithms,
            },
        })
    }
}

impl ClientCertVerifier for MemberVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.as_ref().map_or(&[], |c| c.root_hint_subjects())
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if let Some(chain) = &self.chain {
            chain.verify_client_cert(end_entity, intermediates, now)?;
        }
        self.members.identify(end_entity).map_err(refuse)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        // The configuration offers TLS 1.3 only.
        Err(Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A participant's check, pinned mode: the server's certificate carries
/// `coordinator.public_key`. Its name and dates do not matter.
#[derive(Debug)]
pub(crate) struct PinnedCoordinator {
    spki: Vec<u8>,
}

impl PinnedCoordinator {
    pub(crate) fn new(key: &IdentityPublic) -> Self {
        Self {
            spki: key.to_spki_der(),
        }
    }
}

impl ServerCertVerifier for PinnedCoordinator {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let ee = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| refuse(format!("not a valid X.509 certificate: {e:?}")))?;
        if ee.subject_public_key_info().as_ref() != self.spki.as_slice() {
            return Err(refuse(
                "its key is not coordinator.public_key in consortium.toml".to_owned(),
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &ED25519_ONLY)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ED25519_ONLY.supported_schemes()
    }
}
