//! TLS from the consortium and participant files: what the daemons and
//! `fedcredit check` build.

use std::path::Path;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_proto::roster::ParticipantId;
use fedcredit_referee::consortium::{Consortium, TrustSetting};

use crate::client::ClientTls;
use crate::server::ServerTls;
use crate::{Credentials, TransportError, Trust};

/// The trust mode a consortium file sets, with its CA certificates read.
pub fn trust(setting: &TrustSetting) -> Result<Trust, TransportError> {
    match setting {
        TrustSetting::Pinned => Ok(Trust::Pinned),
        TrustSetting::Ca { ca_file, crl_files } => Trust::ca_from_pem_files(ca_file, crl_files),
    }
}

/// The coordinator's TLS, or `None` when the consortium file sets
/// `plaintext` (which it allows only on a loopback address).
pub fn coordinator(
    consortium: &Consortium,
    key: &IdentityKey,
) -> Result<Option<ServerTls>, TransportError> {
    let tls = &consortium.tls;
    if tls.plaintext {
        return Ok(None);
    }
    let trust = trust(&tls.trust)?;
    let credentials = match &trust {
        Trust::Pinned => {
            Credentials::pinned(key, "coordinator", tls.coordinator_cert_file.as_deref())?
        }
        Trust::Ca { .. } => {
            let need = |what: &str| {
                TransportError::Config(format!(
                    "{}: `coordinator.{what}` is required with trust = \"ca\"",
                    consortium.path.display()
                ))
            };
            let cert = tls
                .coordinator_cert_file
                .as_deref()
                .ok_or_else(|| need("cert_file"))?;
            let tls_key = tls
                .coordinator_tls_key_file
                .as_deref()
                .ok_or_else(|| need("tls_key_file"))?;
            let credentials = Credentials::from_pem_files(cert, tls_key)?;
            crate::cert::judge_own(
                &trust,
                &credentials,
                cert,
                crate::cert::Presented::ByCoordinator,
            )?;
            credentials
        }
    };
    ServerTls::new(credentials, &trust, &consortium.roster).map(Some)
}

/// A member's TLS: its certificate (pinned: made from or checked against
/// its identity `key`; CA: `cert_file` and `tls_key_file`), and the
/// coordinator it accepts.
pub fn member(
    consortium: &Consortium,
    id: &ParticipantId,
    key: &IdentityKey,
    cert_file: Option<&Path>,
    tls_key_file: Option<&Path>,
) -> Result<ClientTls, TransportError> {
    let trust = trust(&consortium.tls.trust)?;
    let credentials = match (&trust, cert_file, tls_key_file) {
        (Trust::Pinned, cert, _) => Credentials::pinned(key, id.as_str(), cert)?,
        (Trust::Ca { .. }, Some(cert), Some(tls_key)) => {
            let credentials = Credentials::from_pem_files(cert, tls_key)?;
            crate::cert::judge_own(&trust, &credentials, cert, crate::cert::Presented::ByMember)?;
            // Say now, not at the coordinator's handshake, if the
            // certificate names someone else.
            let names = crate::member_names(credentials.certificate());
            if !names.iter().any(|n| n == id.as_str()) {
                return Err(TransportError::Certificate {
                    file: cert.to_owned(),
                    problem: format!(
                        "it does not name {id} (its SAN names: {names:?}); a member's certificate \
                         names its id as a DNS name or as {}{id}",
                        crate::MEMBER_URI_PREFIX
                    ),
                });
            }
            credentials
        }
        (Trust::Ca { .. }, _, _) => {
            return Err(TransportError::Config(format!(
                "{}: trust = \"ca\" needs this member's cert_file and tls_key_file",
                consortium.path.display()
            )));
        }
    };
    ClientTls::new(credentials, &trust, consortium.roster.coordinator())
}
