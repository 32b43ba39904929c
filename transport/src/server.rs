//! The coordinator's side: accepts TCP connections, runs each TLS handshake
//! under limits, and hands tonic only streams from authenticated members,
//! each tagged with its [`Peer`].
//!
//! What an unauthenticated client can make the coordinator hold is bounded
//! before any handshake work: at most [`Limits::max_handshakes`] handshakes
//! in flight (and [`Limits::max_handshakes_per_address`] from one address),
//! each for at most [`Limits::handshake_timeout`]; a connection beyond
//! either cap is closed at once. Members' established connections are not
//! affected, so a flood delays no running round. Only a member gets a
//! connection slot ([`Limits::max_connections`]), and at most
//! [`Limits::max_connections_per_member`] of them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use fedcredit_proto::roster::{ParticipantId, Roster};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use crate::verify::{MemberVerifier, Members};
use crate::{ALPN_H2, Credentials, TransportError, Trust};

/// Who is at the other end of a connection; tonic puts it in every
/// request's extensions.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The remote address.
    pub addr: SocketAddr,
    /// The member its certificate authenticated; `None` on a plaintext
    /// (loopback, explicitly allowed) connection.
    pub member: Option<ParticipantId>,
}

/// Bounds on what connecting clients can make the coordinator hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A handshake not finished in this time is dropped.
    pub handshake_timeout: Duration,
    /// Handshakes in flight at once, from everyone.
    pub max_handshakes: usize,
    /// Handshakes in flight at once from one IP address.
    pub max_handshakes_per_address: usize,
    /// Authenticated connections held at once.
    pub max_connections: usize,
    /// Connections one member may hold at once (a member needs one, two
    /// while it reconnects): no member can take the others' slots.
    pub max_connections_per_member: usize,
}

impl Limits {
    /// Defaults for a consortium of `members`: a member needs one
    /// connection (two while it reconnects), so four each and a margin.
    pub fn for_members(members: usize) -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 64,
            max_handshakes_per_address: 8,
            max_connections: 4 * members + 8,
            max_connections_per_member: 4,
        }
    }
}

/// The coordinator's TLS: its credentials, and the members it accepts.
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    members: Arc<Members>,
}

impl ServerTls {
    /// A TLS 1.3 server that requires a client certificate of a member of
    /// `roster`, recognised by `trust`.
    pub fn new(
        credentials: Credentials,
        trust: &Trust,
        roster: &Roster,
    ) -> Result<Self, TransportError> {
        let members = Arc::new(Members::new(trust, roster));
        let verifier = MemberVerifier::new(trust, Arc::clone(&members))?;
        let mut config = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Config(e.to_string()))?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(credentials.chain, credentials.key)
            .map_err(|e| TransportError::Config(format!("the coordinator's certificate: {e}")))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        // No resumption: every connection proves its certificate afresh,
        // so a member removed from the roster cannot resume a session.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Self {
            config: Arc::new(config),
            members,
        })
    }
}

/// A bound listener and how its connections are secured.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    tls: Option<ServerTls>,
}

impl Listener {
    /// Mutual TLS on `tcp`.
    pub fn tls(tcp: TcpListener, tls: ServerTls) -> Self {
        Self {
            tcp,
            tls: Some(tls),
        }
    }

    /// `tls`, or plaintext when `None` (which the caller has checked is
    /// allowed: a loopback address that both sides agreed on, or a test).
    pub fn new(tcp: TcpListener, tls: Option<ServerTls>) -> Self {
        Self { tcp, tls }
    }

    /// Whether connections are mutual TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A connection tonic serves: TLS from a member, or plaintext on loopback.
#[derive(Debug)]
pub struct Conn {
    io: Io,
    traffic: Arc<Traffic>,
    peer: Peer,
    _slot: OwnedSemaphorePermit,
    _member_slot: Option<KeySlot<ParticipantId>>,
}

#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl Conn {
    fn count_sent(&self, written: &Poll<std::io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written {
            self.traffic
                .sent
                .fetch_add(*n as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        let n = buf.filled().len().saturating_sub(before) as u64;
        this.traffic
            .received
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        this.count_sent(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        this.count_sent(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Counts held per key (handshakes per source address, connections per
/// member), each at most a cap.
#[derive(Debug)]
struct PerKey<K: std::hash::Hash + Eq + Clone>(Mutex<HashMap<K, usize>>);

impl<K: std::hash::Hash + Eq + Clone> Default for PerKey<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

/// One count of a [`PerKey`], given back when dropped.
#[derive(Debug)]
struct KeySlot<K: std::hash::Hash + Eq + Clone> {
    table: Arc<PerKey<K>>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Clone> PerKey<K> {
    fn take(self: &Arc<Self>, key: K, max: usize) -> Option<KeySlot<K>> {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(KeySlot {
            table: Arc::clone(self),
            key,
        })
    }
}

impl<K: std::hash::Hash + Eq + Clone> Drop for KeySlot<K> {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = t.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.key);
            }
        }
    }
}

/// Says refused connections at the default level, at most a few per 10 s,
/// so that a flood cannot fill the operator's log.
#[derive(Debug)]
struct Quiet(Mutex<(Instant, u64, u64)>);

impl Quiet {
    fn new() -> Self {
        Self(Mutex::new((Instant::now(), 0, 0)))
    }

    /// Whether to say this one; returns also how many were held back since.
    fn allow(&self) -> (bool, u64) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.0.elapsed() >= Duration::from_secs(10) {
            let held = s.2;
            *s = (Instant::now(), 1, 0);
            return (true, held);
        }
        if s.1 < 5 {
            s.1 += 1;
            (true, 0)
        } else {
            s.2 += 1;
            (false, 0)
        }
    }
}

struct Shared {
    traffic: Arc<Traffic>,
    tls: Option<ServerTls>,
    limits: Limits,
    handshakes: Arc<Semaphore>,
    per_address: Arc<PerKey<IpAddr>>,
    per_member: Arc<PerKey<ParticipantId>>,
    connections: Arc<Semaphore>,
    quiet: Quiet,
}

/// Bytes through the served connections since they were counted from:
/// what members sent (`received`) and what they were sent (`sent`), at
/// the gRPC (HTTP/2) layer, inside TLS.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes read from members.
    pub received: std::sync::atomic::AtomicU64,
    /// Bytes written to members.
    pub sent: std::sync::atomic::AtomicU64,
}

/// The connections tonic serves: `serve_with_incoming(incoming(…))`.
/// The accept loop stops when the stream is dropped.
pub fn incoming(listener: Listener, limits: Limits) -> ReceiverStream<std::io::Result<Conn>> {
    incoming_counted(listener, limits, Arc::default())
}

/// [`incoming`], counting every connection's bytes into `traffic`.
pub fn incoming_counted(
    listener: Listener,
    limits: Limits,
    traffic: Arc<Traffic>,
) -> ReceiverStream<std::io::Result<Conn>> {
    incoming_watched(listener, limits, traffic).0
}

/// [`incoming_counted`], with a handle that tells how many of its
/// connections are open: a server about to stop can wait for its callers
/// to hang up, so that the answers it already gave are not cut off.
pub fn incoming_watched(
    listener: Listener,
    limits: Limits,
    traffic: Arc<Traffic>,
) -> (ReceiverStream<std::io::Result<Conn>>, OpenConnections) {
    let Listener { tcp: listener, tls } = listener;
    let (tx, rx) = mpsc::channel(16);
    let shared = Arc::new(Shared {
        handshakes: Arc::new(Semaphore::new(limits.max_handshakes)),
        connections: Arc::new(Semaphore::new(limits.max_connections)),
        per_address: Arc::default(),
        per_member: Arc::default(),
        quiet: Quiet::new(),
        traffic,
        tls,
        limits,
    });
    let open = OpenConnections {
        slots: Arc::clone(&shared.connections),
        max: shared.limits.max_connections,
    };
    tokio::spawn(accept_loop(listener, shared, tx));
    (ReceiverStream::new(rx), open)
}

/// How many connections of one [`incoming_watched`] are open (past the
/// handshake and not yet dropped).
#[derive(Clone, Debug)]
pub struct OpenConnections {
    slots: Arc<Semaphore>,
    max: usize,
}

impl OpenConnections {
    /// Connections open now.
    pub fn count(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Waits until every connection has closed, at most `limit`; returns
    /// how many were still open at the end.
    pub async fn closed_within(&self, limit: Duration) -> usize {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let open = self.count();
            if open == 0 || tokio::time::Instant::now() >= until {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tx: mpsc::Sender<std::io::Result<Conn>>,
) {
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (tcp, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Without it every long-poll reply waits ~40 ms for a delayed ACK.
        let _ = tcp.set_nodelay(true);
        let Ok(handshake) = Arc::clone(&shared.handshakes).try_acquire_owned() else {
            say(
                &shared,
                addr,
                "too many handshakes in flight; connection closed",
            );
            continue;
        };
        let shared2 = Arc::clone(&shared);
        let tx = tx.clone();
        tokio::spawn(async move {
            let _handshake = handshake;
            if let Some(conn) = handshake_one(&shared2, tcp, addr).await {
                let _ = tx.send(Ok(conn)).await;
            }
        });
    }
}

/// A handshake error in words: a refused certificate says why.
fn reason(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))) => {
            format!("the client's certificate: {}", o.0)
        }
        Some(rustls::Error::InvalidCertificate(c)) => format!("the client's certificate: {c:?}"),
        Some(t) => t.to_string(),
        None => e.to_string(),
    }
}

fn say(shared: &Shared, addr: SocketAddr, what: &str) {
    let (yes, held) = shared.quiet.allow();
    if held > 0 {
        warn!(
            held_back = held,
            "more connections were refused in the last 10 s"
        );
    }
    if yes {
        warn!(peer = %addr, "{what}");
    } else {
        debug!(peer = %addr, "{what}");
    }
}

async fn handshake_one(shared: &Shared, tcp: TcpStream, addr: SocketAddr) -> Option<Conn> {
    let Some(_per_address) = shared
        .per_address
        .take(addr.ip(), shared.limits.max_handshakes_per_address)
    else {
        say(
            shared,
            addr,
            "too many handshakes in flight from this address; connection closed",
        );
        return None;
    };
    let (io, member) = match &shared.tls {
        None => (Io::Plain(tcp), None),
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls.config));
            let stream =
                match tokio::time::timeout(shared.limits.handshake_timeout, acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        say(
                            shared,
                            addr,
                            &format!("TLS handshake refused: {}", reason(&e)),
                        );
                        return None;
                    }
                    Err(_) => {
                        say(
                            shared,
                            addr,
                            &format!(
                                "TLS handshake not finished within {} s; connection closed",
                                shared.limits.handshake_timeout.as_secs_f64()
                            ),
                        );
                        return None;
                    }
                };
            let member = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| tls.members.identify(c));
            match member {
                Some(Ok(m)) => (Io::Tls(Box::new(stream)), Some(m)),
                // The verifier accepted it, so this does not happen; refuse anyway.
                _ => return None,
            }
        }
    };
    let member_slot = match &member {
        None => None,
        Some(m) => {
            let Some(slot) = shared
                .per_member
                .take(m.clone(), shared.limits.max_connections_per_member)
            else {
                say(
                    shared,
                    addr,
                    &format!(
                        "{m} already holds {} connections, the most one member may; connection closed",
                        shared.limits.max_connections_per_member
                    ),
                );
                return None;
            };
            Some(slot)
        }
    };
    let Ok(slot) = Arc::clone(&shared.connections).try_acquire_owned() else {
        say(
            shared,
            addr,
            &format!(
                "{} connections are open, the most allowed; connection closed",
                shared.limits.max_connections
            ),
        );
        return None;
    };
    debug!(peer = %addr, member = ?member, "connection accepted");
    Some(Conn {
        io,
        traffic: Arc::clone(&shared.traffic),
        peer: Peer { addr, member },
        _slot: slot,
        _member_slot: member_slot,
    })
}
