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
            Trust::Ca { roots } => builder.with_webpki_verifier(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::clone(roots),
                    crate::provider(),
                )
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

type Connecting = Pin<
    Box<
        dyn Future<Output = std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>>
            + Send,
    >,
>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
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
            Ok(TokioIo::new(handshake(&tls, &host, tcp).await?))
        })
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
