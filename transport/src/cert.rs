//! Certificates and keys: the pinned mode's self-signed certificates over
//! identity keys, and PEM files for the CA mode.

use std::path::Path;

use fedcredit_crypto::identity::{IdentityKey, IdentityPublic};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

use crate::TransportError;

/// The SAN URI prefix that names a member in a CA-issued certificate
/// (`urn:fedcredit:member:bank-a`); a SAN DNS name equal to the id also does.
pub const MEMBER_URI_PREFIX: &str = "urn:fedcredit:member:";

/// What a party presents in the handshake: its certificate chain (end
/// entity first) and the private key of the first certificate.
#[derive(Debug)]
pub struct Credentials {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Credentials {
    /// Pinned mode: a certificate that carries `identity`'s public key, and
    /// the identity key to sign the handshake. `cert_file` (PEM), when
    /// given, must carry that key (`fedcredit provision` writes it);
    /// otherwise the certificate is made in memory, as `fedcredit demo` does.
    /// `name` is the certificate's subject (the member id, or `coordinator`).
    pub fn pinned(
        identity: &IdentityKey,
        name: &str,
        cert_file: Option<&Path>,
    ) -> Result<Self, TransportError> {
        let chain = match cert_file {
            Some(path) => {
                let chain = read_certificates(path)?;
                check_carries(path, &chain[0], &identity.public())?;
                chain
            }
            None => vec![pinned_certificate(identity, name)?.der().clone()],
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.to_pkcs8_der().to_vec()));
        Ok(Self { chain, key })
    }

    /// CA mode: the certificate chain (PEM, end entity first) and its
    /// private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert_file: &Path, key_file: &Path) -> Result<Self, TransportError> {
        let chain = read_certificates(cert_file)?;
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TransportError::Key {
            file: key_file.to_owned(),
            problem: format!("no usable PEM private key: {e}"),
        })?;
        // A key that does not match the certificate would fail only in the
        // peer's handshake; say it here, naming both files.
        let signer = crate::provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| TransportError::Key {
                file: key_file.to_owned(),
                problem: format!("not a key rustls can sign with: {e}"),
            })?;
        let spki = signer.public_key().ok_or_else(|| TransportError::Key {
            file: key_file.to_owned(),
            problem: "its public key cannot be derived".into(),
        })?;
        let ee = webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| bad(cert_file, e))?;
        if ee.subject_public_key_info().as_ref() != spki.as_ref() {
            return Err(TransportError::Key {
                file: key_file.to_owned(),
                problem: format!(
                    "it is not the key of the certificate in {}",
                    cert_file.display()
                ),
            });
        }
        Ok(Self { chain, key })
    }

    /// The end-entity certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

/// A self-signed certificate over `identity`'s key, as PEM: what `fedcredit
/// provision` writes beside each party's key for the pinned mode.
pub fn pinned_certificate_pem(
    identity: &IdentityKey,
    name: &str,
) -> Result<String, TransportError> {
    Ok(pinned_certificate(identity, name)?.pem())
}

fn pinned_certificate(
    identity: &IdentityKey,
    name: &str,
) -> Result<rcgen::Certificate, TransportError> {
    let pkcs8 = identity.to_pkcs8_der();
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.as_slice()),
        &rcgen::PKCS_ED25519,
    )
    .map_err(|e| TransportError::Generate(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "fedcredit consortium (pinned identity key)",
    );
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
        .self_signed(&key)
        .map_err(|e| TransportError::Generate(e.to_string()))
}

/// Every certificate in a PEM file, in order; at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let chain: Vec<CertificateDer<'static>> = read_pem(path, "certificates", "CERTIFICATE")?;
    for c in &chain {
        webpki::EndEntityCert::try_from(c).map_err(|e| bad(path, e))?;
    }
    Ok(chain)
}

/// Every certificate revocation list in a PEM file, in order; at least one,
/// each checked to parse.
pub fn read_crls(
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TransportError> {
    let crls: Vec<CertificateRevocationListDer<'static>> =
        read_pem(path, "revocation lists", "X509 CRL")?;
    for (i, c) in crls.iter().enumerate() {
        webpki::OwnedCertRevocationList::from_der(c.as_ref()).map_err(|e| {
            TransportError::Certificate {
                file: path.to_owned(),
                problem: format!("revocation list {} is not a valid X.509 CRL: {e:?}", i + 1),
            }
        })?;
    }
    Ok(crls)
}

/// Every `section` of a PEM file (`what`, for the error), in order; at
/// least one.
fn read_pem<T: PemObject>(
    path: &Path,
    what: &str,
    section: &str,
) -> Result<Vec<T>, TransportError> {
    let bytes = std::fs::read(path).map_err(|source| TransportError::Read {
        file: path.to_owned(),
        source,
    })?;
    let items = T::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::Certificate {
            file: path.to_owned(),
            problem: format!("not PEM {what}: {e}"),
        })?;
    if items.is_empty() {
        return Err(TransportError::Certificate {
            file: path.to_owned(),
            problem: format!("no {section} section in the file"),
        });
    }
    Ok(items)
}

/// Which end of the handshake a certificate is presented at.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Presented {
    /// By a member, to the coordinator.
    ByMember,
    /// By the coordinator, to the members.
    ByCoordinator,
}

/// In CA mode, judges this party's own chain (from `file`) as the other
/// end will: issued by the consortium's CA, valid now, for its usage, and
/// not revoked by the lists. A daemon with a certificate the peers would
/// refuse then says so at start, and `fedcredit check` before it.
pub(crate) fn judge_own(
    trust: &crate::Trust,
    credentials: &Credentials,
    file: &Path,
    presented: Presented,
) -> Result<(), TransportError> {
    let crate::Trust::Ca { roots, crls } = trust else {
        return Ok(());
    };
    let problem = |why: String| TransportError::Certificate {
        file: file.to_owned(),
        problem: why,
    };
    let ee =
        webpki::EndEntityCert::try_from(credentials.certificate()).map_err(|e| bad(file, e))?;
    let lists = crls
        .iter()
        .map(|c| webpki::OwnedCertRevocationList::from_der(c.as_ref()).map(Into::into))
        .collect::<Result<Vec<webpki::CertRevocationList<'static>>, _>>()
        .map_err(|e| problem(format!("a revocation list does not parse: {e:?}")))?;
    let refs: Vec<&webpki::CertRevocationList<'_>> = lists.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&refs)
        .ok()
        .map(webpki::RevocationOptionsBuilder::build);
    let usage = match presented {
        Presented::ByMember => webpki::KeyUsage::client_auth(),
        Presented::ByCoordinator => webpki::KeyUsage::server_auth(),
    };
    let now = rustls_pki_types::UnixTime::now();
    let algorithms = crate::provider().signature_verification_algorithms.all;
    ee.verify_for_usage(
        algorithms,
        &roots.roots,
        &credentials.chain[1..],
        now,
        usage,
        revocation,
        None,
    )
    .map(|_| ())
    .map_err(|e| {
        let why = match e {
            webpki::Error::CertRevoked => {
                "it is revoked (a list in tls.crl_files names it): ask the CA for a new one".into()
            }
            webpki::Error::CertExpired { .. } => "it has expired: renew it with the CA".into(),
            webpki::Error::CertNotValidYet { .. } => "it is not valid yet".into(),
            webpki::Error::UnknownIssuer => "it is not issued by a CA in tls.ca_file".into(),
            webpki::Error::UnknownRevocationStatus => {
                "no list in tls.crl_files covers its issuer, so its revocation status is unknown"
                    .into()
            }
            other => format!("the consortium's CA would refuse it: {other:?}"),
        };
        problem(format!("the peers would refuse this certificate: {why}"))
    })
}

/// Checks that `cert` carries `key` (pinned mode).
fn check_carries(
    path: &Path,
    cert: &CertificateDer<'_>,
    key: &IdentityPublic,
) -> Result<(), TransportError> {
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| bad(path, e))?;
    if ee.subject_public_key_info().as_ref() != key.to_spki_der().as_slice() {
        return Err(TransportError::Certificate {
            file: path.to_owned(),
            problem: format!(
                "it does not carry the identity key {key} (pinned mode: the certificate must be \
                 made from the party's own key file; `fedcredit provision` writes one)"
            ),
        });
    }
    Ok(())
}

fn bad(path: &Path, e: webpki::Error) -> TransportError {
    TransportError::Certificate {
        file: path.to_owned(),
        problem: format!("not a valid X.509 certificate: {e:?}"),
    }
}

/// The member ids a CA-issued certificate names: its SAN DNS names and its
/// `urn:fedcredit:member:<id>` URIs. The caller decides which are members.
pub fn member_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return Vec::new();
    };
    let mut names: Vec<String> = ee.valid_dns_names().map(str::to_owned).collect();
    names.extend(
        ee.valid_uri_names()
            .filter_map(|u| u.strip_prefix(MEMBER_URI_PREFIX))
            .map(str::to_owned),
    );
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA named `name`: its PEM and its issuer.
    fn ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, name);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = ca.self_signed(&key).expect("ca").pem();
        (pem, rcgen::Issuer::new(ca, key))
    }

    /// A member certificate `issuer` issued with serial 7, valid from
    /// `from` to `to` days from now, written as `file`.crt and `file`.key.
    fn member(
        dir: &Path,
        file: &str,
        issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
        (from, to): (i64, i64),
    ) -> Credentials {
        let mut leaf = rcgen::CertificateParams::new(vec!["bank-a".to_owned()]).expect("params");
        let now = time::OffsetDateTime::now_utc();
        leaf.not_before = now + time::Duration::days(from);
        leaf.not_after = now + time::Duration::days(to);
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        leaf.serial_number = Some(rcgen::SerialNumber::from(7u64));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = leaf.signed_by(&key, issuer).expect("leaf");
        let (crt, pem) = (
            dir.join(format!("{file}.crt")),
            dir.join(format!("{file}.key")),
        );
        std::fs::write(&crt, cert.pem()).expect("write");
        std::fs::write(&pem, key.serialize_pem()).expect("write");
        Credentials::from_pem_files(&crt, &pem).expect("credentials")
    }

    /// A list by `issuer` revoking `serials`, as a PEM file `name`.
    fn crl(
        dir: &Path,
        name: &str,
        issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
        serials: &[u64],
    ) -> std::path::PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let path = dir.join(name);
        let pem = params.signed_by(issuer).expect("crl").pem().expect("pem");
        std::fs::write(&path, pem).expect("write");
        path
    }

    /// A party's own certificate is judged at start as its peers will judge
    /// it: revoked, expired, from another CA, or with no list for its
    /// issuer, each refused with the reason; a good one passes.
    #[test]
    fn an_own_certificate_the_peers_would_refuse_is_named_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let (ca_pem, issuer) = ca("Consortium CA");
        std::fs::write(d.join("ca.pem"), &ca_pem).expect("write");
        let judge = |crls: &[std::path::PathBuf], creds: &Credentials| {
            let trust = crate::Trust::ca_from_pem_files(&d.join("ca.pem"), crls).expect("trust");
            judge_own(&trust, creds, &d.join("a.crt"), Presented::ByMember)
                .map_err(|e| e.to_string())
        };
        let good = member(d, "a", &issuer, (-1, 30));
        let fine = crl(d, "fine.crl", &issuer, &[8]);
        assert_eq!(judge(&[], &good), Ok(()));
        assert_eq!(judge(&[fine], &good), Ok(()));

        let revoked = crl(d, "revoked.crl", &issuer, &[7]);
        let e = judge(&[revoked], &good).expect_err("revoked");
        assert!(e.contains("a.crt") && e.contains("it is revoked"), "{e}");

        let (_, other) = ca("Someone else's CA");
        let foreign = crl(d, "foreign.crl", &other, &[]);
        let e = judge(&[foreign], &good).expect_err("unknown status");
        assert!(e.contains("covers its issuer"), "{e}");

        let expired = member(d, "expired", &issuer, (-30, -1));
        let e = judge(&[], &expired).expect_err("expired");
        assert!(e.contains("it has expired"), "{e}");

        let stranger = member(d, "stranger", &other, (-1, 30));
        let e = judge(&[], &stranger).expect_err("another CA");
        assert!(e.contains("not issued by a CA in tls.ca_file"), "{e}");
    }

    fn key(seed: u8) -> IdentityKey {
        IdentityKey::from_secret_bytes(&[seed; 32])
    }

    #[test]
    fn a_pinned_certificate_carries_the_identity_key() {
        let k = key(1);
        let c = Credentials::pinned(&k, "bank-a", None).expect("certificate");
        let ee = webpki::EndEntityCert::try_from(c.certificate()).expect("parses");
        assert_eq!(
            ee.subject_public_key_info().as_ref(),
            k.public().to_spki_der().as_slice()
        );
    }

    #[test]
    fn a_certificate_file_of_another_key_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bank-a.crt");
        std::fs::write(
            &path,
            pinned_certificate_pem(&key(2), "bank-a").expect("pem"),
        )
        .expect("write");
        let e = Credentials::pinned(&key(1), "bank-a", Some(&path)).expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("bank-a.crt"), "{text}");
        assert!(text.contains("does not carry the identity key"), "{text}");
        // Its own file is accepted.
        std::fs::write(
            &path,
            pinned_certificate_pem(&key(1), "bank-a").expect("pem"),
        )
        .expect("write");
        Credentials::pinned(&key(1), "bank-a", Some(&path)).expect("accepted");
    }

    #[test]
    fn a_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.crt");
        std::fs::write(&path, "not pem\n").expect("write");
        let e = read_certificates(&path).expect_err("refused").to_string();
        assert!(
            e.contains("empty.crt") && e.contains("no CERTIFICATE"),
            "{e}"
        );
    }
}
