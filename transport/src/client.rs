//! The participant's side: a tonic channel whose connections are TLS 1.3
//! with this member's certificate, to a server that proves it is the
//! consortium's coordinator.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use fedcredit_crypto::identity::IdentityPublic;
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use crate::error::{HandshakeError, classify};
use crate::verify::PinnedCoordinator;
use crate::{ALPN_H2, Credentials, TransportError, Trust};

/// A participant's TLS: its credentials, and how it recognises the
/// coordinator.
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// TLS 1.3 presenting `credentials`, accepting only the coordinator:
    /// pinned, a certificate carrying `coordinator`; CA, a chain from the
    /// CA valid for the host of the URL dialled.
    pub fn new(
        credentials: Credentials,
        trust: &Trust,
        coordinator: &IdentityPublic,
    ) -> Result<Self, TransportError> {
        let builder = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Config(e.to_string()))?;
        let builder = match trust {
            Trust::Pinned => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCoordinator::new(coordinator))),
            Trust::Ca { roots, crls } => builder.with_webpki_verifier(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::clone(roots),
                    crate::provider(),
                )
                .with_crls(crls.iter().cloned())
                .build()
                .map_err(|e| TransportError::Config(e.to_string()))?,
            ),
        };
        let mut config = builder
            .with_client_auth_cert(credentials.chain, credentials.key)
            .map_err(|e| TransportError::Config(format!("this participant's certificate: {e}")))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// A lazily connecting channel to `url`: TLS when `tls` is given (then
/// `url` must be `https://`), plaintext otherwise (`http://`).
pub fn channel(
    url: &str,
    tls: Option<ClientTls>,
    connect_timeout: Duration,
) -> Result<Channel, TransportError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| TransportError::Config(format!("coordinator URL {url:?}: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    let https = endpoint.uri().scheme_str() == Some("https");
    match tls {
        Some(tls) if https => Ok(endpoint.connect_with_connector_lazy(Connector { tls })),
        None if !https => Ok(endpoint.connect_lazy()),
        Some(_) => Err(TransportError::Config(format!(
            "coordinator URL {url:?}: TLS needs an https:// URL"
        ))),
        None => Err(TransportError::Config(format!(
            "coordinator URL {url:?}: https:// without TLS settings"
        ))),
    }
}

/// Dials TCP, then runs the TLS handshake.
#[derive(Clone, Debug)]
struct Connector {
    tls: ClientTls,
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<Prefixed>>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Prefixed>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let stream = handshake(&tls, &host, tcp).await?;
            Ok(TokioIo::new(verdict(stream).await?))
        })
    }
}

/// Waits for the coordinator's first bytes after the handshake. In TLS 1.3
/// the server checks this side's certificate only after this side has
/// finished; a refusal then arrives as an alert, which HTTP/2 would report
/// only as a broken pipe or a bare "transport error" (timing decides
/// which). An HTTP/2 server speaks first (its SETTINGS frame), so the first
/// read is either that, kept for hyper, or the alert, classified here.
async fn verdict(mut stream: TlsStream) -> std::io::Result<Prefixed> {
    use tokio::io::AsyncReadExt;
    let mut first = vec![0u8; 512];
    match tokio::time::timeout(VERDICT_WAIT, stream.read(&mut first)).await {
        Ok(Ok(0)) => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the coordinator closed the connection right after the TLS handshake",
        )),
        Ok(Ok(n)) => {
            first.truncate(n);
            Ok(Prefixed {
                prefix: first,
                pos: 0,
                inner: stream,
            })
        }
        Ok(Err(e)) => Err(
            match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(t) => std::io::Error::other(HandshakeError(classify(t))),
                None => e,
            },
        ),
        // Nothing yet (a slow server): go on; a refusal then shows later.
        Err(_) => Ok(Prefixed {
            prefix: Vec::new(),
            pos: 0,
            inner: stream,
        }),
    }
}

/// How long [`verdict`] waits for the server's first bytes.
const VERDICT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS stream whose first bytes were already read: they are read again
/// first.
#[derive(Debug)]
struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: TlsStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Runs the TLS handshake on a connected `tcp` to `host` (its name or IP
/// address). A failed handshake is an I/O error wrapping a classified
/// [`crate::TlsFailure`] (see [`crate::tls_failure`]). In TLS 1.3 the
/// server checks this side's certificate after this side has finished, so
/// a refusal shows at the first read.
pub async fn handshake(
    tls: &ClientTls,
    host: &str,
    tcp: TcpStream,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::other(format!("{host:?} is not a host name for TLS: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::clone(&tls.config))
        .connect(name, tcp)
        .await
        .map_err(
            |e| match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(t) => std::io::Error::other(HandshakeError(classify(t))),
                None => e,
            },
        )
}
