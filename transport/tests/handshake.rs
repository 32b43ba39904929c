//! Handshakes on loopback, mounted for real: a listed member gets through
//! tagged with its id; an unlisted certificate, a server that is not the
//! coordinator, plaintext to the TLS port, an unknown CA and an expired
//! certificate all fail during the handshake, before any byte of gRPC.

use std::sync::Arc;
use std::time::Duration;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_proto::roster::{ParticipantId, Roster};
use fedcredit_transport::client::{ClientTls, handshake};
use fedcredit_transport::server::{Conn, Limits, Listener, ServerTls, incoming};
use fedcredit_transport::{Credentials, TlsFailure, Trust, tls_failure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tonic::transport::server::Connected;

fn key(seed: u8) -> IdentityKey {
    IdentityKey::from_secret_bytes(&[seed; 32])
}

const COORDINATOR: u8 = 9;
const MEMBERS: [(&str, u8); 3] = [("bank-a", 1), ("bank-b", 2), ("bank-c", 3)];

fn roster() -> Roster {
    Roster::new(
        MEMBERS
            .iter()
            .map(|(id, seed)| (ParticipantId::new(id).expect("id"), key(*seed).public()))
            .collect(),
        key(COORDINATOR).public(),
    )
    .expect("roster")
}

/// A coordinator-side listener: the stream of authenticated connections
/// and the address to dial.
async fn serve(
    tls: ServerTls,
) -> (
    tokio_stream::wrappers::ReceiverStream<std::io::Result<Conn>>,
    std::net::SocketAddr,
) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let mut limits = Limits::for_members(3);
    limits.handshake_timeout = Duration::from_secs(2);
    (incoming(Listener::tls(tcp, tls), limits), addr)
}

fn pinned_server() -> ServerTls {
    let creds = Credentials::pinned(&key(COORDINATOR), "coordinator", None).expect("creds");
    ServerTls::new(creds, &Trust::Pinned, &roster()).expect("server tls")
}

fn pinned_client(seed: u8, name: &str) -> ClientTls {
    let creds = Credentials::pinned(&key(seed), name, None).expect("creds");
    ClientTls::new(creds, &Trust::Pinned, &key(COORDINATOR).public()).expect("client tls")
}

/// Dials, handshakes, writes a line and reads one back through the server.
async fn exchange(client: &ClientTls, addr: std::net::SocketAddr) -> std::io::Result<Vec<u8>> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = handshake(client, "127.0.0.1", tcp).await?;
    tls.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await?;
    Ok(buf.to_vec())
}

/// Connects with `client` and asserts that the coordinator's side refused
/// the handshake (`why` names the case in a failure).
async fn refused_by_coordinator(client: &ClientTls, addr: std::net::SocketAddr, why: &str) {
    let e = exchange(client, addr).await.expect_err(why);
    assert!(
        matches!(tls_failure(&e), Some(TlsFailure::RefusedByCoordinator(_))),
        "{why}: {e}"
    );
}

/// Echoes the first 4 bytes of every accepted connection; sends who it was.
fn echo(
    mut conns: tokio_stream::wrappers::ReceiverStream<std::io::Result<Conn>>,
) -> tokio::sync::mpsc::Receiver<Option<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(Ok(mut c)) = conns.next().await {
            let who = c.connect_info().member.map(|m| m.to_string());
            let _ = tx.send(who).await;
            // Each connection is served (and held) until its client closes.
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                if c.read_exact(&mut buf).await.is_ok() {
                    let _ = c.write_all(&buf).await;
                    let _ = c.flush().await;
                    let mut rest = Vec::new();
                    let _ = c.read_to_end(&mut rest).await;
                }
            });
        }
    });
    rx
}

#[tokio::test]
async fn a_listed_member_connects_and_is_named_by_its_key() {
    let (conns, addr) = serve(pinned_server()).await;
    let mut accepted = echo(conns);
    let got = exchange(&pinned_client(2, "bank-b"), addr)
        .await
        .expect("bank-b gets through");
    assert_eq!(got, b"ping");
    assert_eq!(accepted.recv().await, Some(Some("bank-b".to_owned())));
}

#[tokio::test]
async fn an_unlisted_certificate_fails_in_the_handshake() {
    let (conns, addr) = serve(pinned_server()).await;
    let mut accepted = echo(conns);
    // A key that is in no roster, under a member's name.
    refused_by_coordinator(&pinned_client(77, "bank-a"), addr, "refused").await;
    // Nothing reached the server's side: no connection was handed on.
    let none = tokio::time::timeout(Duration::from_millis(300), accepted.recv()).await;
    assert!(none.is_err(), "an unlisted client was accepted: {none:?}");
}

#[tokio::test]
async fn a_server_that_is_not_the_coordinator_is_refused_by_the_member() {
    // Someone with a valid-looking certificate of its own key answers.
    let impostor = ServerTls::new(
        Credentials::pinned(&key(55), "coordinator", None).expect("creds"),
        &Trust::Pinned,
        &roster(),
    )
    .expect("server");
    let (conns, addr) = serve(impostor).await;
    let _accepted = echo(conns);
    let e = exchange(&pinned_client(1, "bank-a"), addr)
        .await
        .expect_err("refused");
    match tls_failure(&e) {
        Some(TlsFailure::NotTheCoordinator(why)) => {
            assert!(why.contains("coordinator.public_key"), "{why}")
        }
        other => panic!("expected NotTheCoordinator, got {other:?} ({e})"),
    }
}

#[tokio::test]
async fn plaintext_to_the_tls_port_gets_nothing() {
    let (conns, addr) = serve(pinned_server()).await;
    let mut accepted = echo(conns);
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // The HTTP/2 preface a plaintext gRPC client sends first.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    // The server answers with at most a TLS alert record (content type 21)
    // and closes: no HTTP/2 byte comes back.
    let read = read.expect("the server closes the connection");
    assert!(
        read.is_err() || buf.is_empty() || buf[0] == 21,
        "unexpected answer to plaintext: {buf:?}"
    );
    let none = tokio::time::timeout(Duration::from_millis(300), accepted.recv()).await;
    assert!(none.is_err(), "a plaintext client was accepted");
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_and_does_not_block_members() {
    let (conns, addr) = serve(pinned_server()).await;
    let mut accepted = echo(conns);
    // Connections that never send a byte, from another loopback address
    // (the per-address cap would otherwise also cover the member).
    let mut idle = Vec::new();
    for _ in 0..100 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind 127.0.0.2");
        if let Ok(s) = socket.connect(addr).await {
            idle.push(s);
        }
    }
    let got = exchange(&pinned_client(3, "bank-c"), addr)
        .await
        .expect("a member gets through beside a hundred idle connections");
    assert_eq!(got, b"ping");
    assert_eq!(accepted.recv().await, Some(Some("bank-c".to_owned())));
    // Every idle connection is closed: at once beyond the caps, the rest
    // at the handshake timeout (2 s here).
    let mut closed = 0;
    for mut s in idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 100, "idle connections left open");
}

/// A small PKI: a CA, and member and coordinator certificates it issues.
struct Pki {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
    /// The serial number of each certificate issued, by file name.
    serials: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        Self {
            ca_pem: cert.pem(),
            ca: rcgen::Issuer::new(params, key),
            serials: std::sync::Mutex::default(),
        }
    }

    /// A certificate for `names` (SAN DNS names), valid from `from` to `to`
    /// (days from now), written as PEM files; returns their credentials.
    fn issue(
        &self,
        dir: &std::path::Path,
        file: &str,
        names: &[&str],
        from: i64,
        to: i64,
    ) -> Credentials {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let now = time_now();
        params.not_before = now + time::Duration::days(from);
        params.not_after = now + time::Duration::days(to);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let serial = {
            let mut serials = self.serials.lock().expect("serials");
            let serial = serials.len() as u64 + 1000;
            serials.insert(file.to_owned(), serial);
            serial
        };
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("issue");
        let crt = dir.join(format!("{file}.crt"));
        let pem = dir.join(format!("{file}.key.pem"));
        std::fs::write(&crt, cert.pem()).expect("write cert");
        std::fs::write(&pem, key.serialize_pem()).expect("write key");
        Credentials::from_pem_files(&crt, &pem).expect("credentials")
    }

    fn trust(&self, dir: &std::path::Path) -> Trust {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write ca");
        Trust::ca_from_pem_file(&path).expect("trust")
    }

    /// A revocation list (PEM file `name`) revoking the certificates
    /// issued as `files`.
    fn crl(&self, dir: &std::path::Path, name: &str, files: &[&str]) -> std::path::PathBuf {
        let now = time_now();
        let serials = self.serials.lock().expect("serials");
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: files
                .iter()
                .map(|f| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(serials[*f]),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let path = dir.join(name);
        let crl = params.signed_by(&self.ca).expect("crl");
        std::fs::write(&path, crl.pem().expect("pem")).expect("write crl");
        path
    }

    /// [`Pki::trust`] with revocation lists.
    fn trust_with_crls(&self, dir: &std::path::Path, crls: &[std::path::PathBuf]) -> Trust {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write ca");
        Trust::ca_from_pem_files(&path, crls).expect("trust")
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn ca_client(creds: Credentials, trust: &Trust) -> ClientTls {
    // In CA mode the coordinator key plays no part in the handshake.
    ClientTls::new(creds, trust, &key(COORDINATOR).public()).expect("client tls")
}

async fn ca_server(
    pki: &Pki,
    dir: &std::path::Path,
) -> (
    tokio::sync::mpsc::Receiver<Option<String>>,
    std::net::SocketAddr,
) {
    let trust = pki.trust(dir);
    let creds = pki.issue(dir, "coordinator", &["127.0.0.1", "localhost"], -1, 30);
    let tls = ServerTls::new(creds, &trust, &roster()).expect("server");
    let (conns, addr) = serve(tls).await;
    (echo(conns), addr)
}

#[tokio::test]
async fn ca_mode_accepts_a_member_named_in_its_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("Consortium CA");
    let (mut accepted, addr) = ca_server(&pki, dir.path()).await;
    let trust = pki.trust(dir.path());
    let creds = pki.issue(dir.path(), "bank-a", &["bank-a"], -1, 30);
    let got = exchange(&ca_client(creds, &trust), addr)
        .await
        .expect("bank-a");
    assert_eq!(got, b"ping");
    assert_eq!(accepted.recv().await, Some(Some("bank-a".to_owned())));
}

#[tokio::test]
async fn ca_mode_refuses_an_unknown_ca_an_expired_certificate_and_a_non_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("Consortium CA");
    let (mut accepted, addr) = ca_server(&pki, dir.path()).await;
    let trust = pki.trust(dir.path());

    // Issued by another CA, for a listed member.
    let other = Pki::new("Someone else's CA");
    let foreign = other.issue(dir.path(), "foreign", &["bank-a"], -1, 30);
    refused_by_coordinator(&ca_client(foreign, &trust), addr, "unknown CA").await;

    // Issued by the CA, expired yesterday.
    let expired = pki.issue(dir.path(), "expired", &["bank-b"], -30, -1);
    refused_by_coordinator(&ca_client(expired, &trust), addr, "expired").await;

    // Issued by the CA, naming no member.
    let stranger = pki.issue(dir.path(), "stranger", &["mallory"], -1, 30);
    refused_by_coordinator(&ca_client(stranger, &trust), addr, "not a member").await;

    let none = tokio::time::timeout(Duration::from_millis(300), accepted.recv()).await;
    assert!(none.is_err(), "a refused client was accepted");
}

/// With the CA's revocation list, the coordinator refuses a member whose
/// certificate is revoked and still accepts the others; a member refuses a
/// revoked coordinator certificate; and with a list that does not cover
/// the issuer, nobody's revocation status is known, so nobody gets in.
#[tokio::test]
async fn ca_mode_refuses_revoked_certificates_on_both_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("Consortium CA");
    let server_creds = pki.issue(dir.path(), "coordinator", &["127.0.0.1"], -1, 30);
    let bank_a = pki.issue(dir.path(), "bank-a", &["bank-a"], -1, 30);
    let bank_b = pki.issue(dir.path(), "bank-b", &["bank-b"], -1, 30);
    let revoked_b = pki.crl(dir.path(), "ca.crl", &["bank-b"]);
    let trust = pki.trust_with_crls(dir.path(), std::slice::from_ref(&revoked_b));
    let tls = ServerTls::new(server_creds, &trust, &roster()).expect("server");
    let (conns, addr) = serve(tls).await;
    let mut accepted = echo(conns);

    let got = exchange(&ca_client(bank_a.clone(), &trust), addr)
        .await
        .expect("bank-a is not revoked");
    assert_eq!(got, b"ping");
    assert_eq!(accepted.recv().await, Some(Some("bank-a".to_owned())));
    refused_by_coordinator(&ca_client(bank_b, &trust), addr, "bank-b is revoked").await;

    // The coordinator's own certificate revoked: the member refuses it.
    let revoked_coordinator = pki.crl(dir.path(), "ca2.crl", &["coordinator"]);
    let member_trust = pki.trust_with_crls(dir.path(), &[revoked_coordinator]);
    let e = exchange(&ca_client(bank_a.clone(), &member_trust), addr)
        .await
        .expect_err("the coordinator is revoked");
    assert!(
        matches!(tls_failure(&e), Some(TlsFailure::NotTheCoordinator(_))),
        "{e}"
    );

    // A list from another CA: the issuer's status is unknown, refused.
    let other = Pki::new("Someone else's CA");
    let _ = other.issue(dir.path(), "other", &["bank-c"], -1, 30);
    let foreign_crl = other.crl(dir.path(), "other.crl", &["other"]);
    let unknown = pki.trust_with_crls(dir.path(), &[foreign_crl]);
    let e = exchange(&ca_client(bank_a, &unknown), addr)
        .await
        .expect_err("no list covers the coordinator's issuer");
    assert!(
        matches!(tls_failure(&e), Some(TlsFailure::NotTheCoordinator(_))),
        "{e}"
    );

    // A file that is not a revocation list is named.
    let junk = dir.path().join("junk.crl");
    std::fs::write(&junk, "not a crl\n").expect("write");
    let err = Trust::ca_from_pem_files(&dir.path().join("ca.pem"), &[junk])
        .expect_err("junk")
        .to_string();
    assert!(
        err.contains("junk.crl") && err.contains("no X509 CRL section"),
        "{err}"
    );
}

#[tokio::test]
async fn ca_mode_member_refuses_a_coordinator_certificate_for_another_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("Consortium CA");
    let trust = pki.trust(dir.path());
    let creds = pki.issue(dir.path(), "coordinator", &["coordinator.example"], -1, 30);
    let tls = ServerTls::new(creds, &trust, &roster()).expect("server");
    let (conns, addr) = serve(tls).await;
    let _accepted = echo(conns);
    let member = pki.issue(dir.path(), "bank-a", &["bank-a"], -1, 30);
    let e = exchange(&ca_client(member, &trust), addr)
        .await
        .expect_err("wrong host");
    assert!(
        matches!(tls_failure(&e), Some(TlsFailure::NotTheCoordinator(_))),
        "{e}"
    );
}

#[test]
fn limits_scale_with_the_roster() {
    let l = Limits::for_members(10);
    assert_eq!(l.max_connections, 48);
    assert!(l.max_handshakes_per_address < l.max_handshakes);
    let _ = Arc::new(l);
}

/// A member (it holds a listed key) that opens connection after connection
/// gets at most its share; the fifth is closed at once, and another member
/// still gets through.
#[tokio::test]
async fn one_member_cannot_take_every_connection_slot() {
    let (conns, addr) = serve(pinned_server()).await;
    let mut accepted = echo(conns);
    let greedy = pinned_client(1, "bank-a");
    let mut held = Vec::new();
    for _ in 0..4 {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut tls = handshake(&greedy, "127.0.0.1", tcp)
            .await
            .expect("handshake");
        tls.write_all(b"ping").await.expect("write");
        let mut b = [0u8; 4];
        tls.read_exact(&mut b).await.expect("echo");
        assert_eq!(accepted.recv().await, Some(Some("bank-a".to_owned())));
        held.push(tls);
    }
    let e = exchange(&greedy, addr)
        .await
        .expect_err("a fifth connection");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
        ),
        "{e:?}"
    );
    let got = exchange(&pinned_client(2, "bank-b"), addr)
        .await
        .expect("another member");
    assert_eq!(got, b"ping");
    // Once one is closed, bank-a may connect again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    exchange(&greedy, addr)
        .await
        .expect("a slot was given back");
}
