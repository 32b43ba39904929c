//! The fedcredit coordinator: a gRPC server that runs a job's rounds of
//! secure aggregation and publishes each round's sum. Participants dial in;
//! the coordinator never dials out.
//!
//! ```text
//!  lobby ──(all joined, or join deadline with ≥ t)──▶ round r, attempt a:
//!    Advertising ─▶ SharingKeys ─▶ CollectingInputs ─▶ Confirming ─▶ Unmasking ─▶ outcome
//!        │ each phase closes when its whole cohort answered, or at its deadline
//!        └─ fewer than t left ─▶ abort ─▶ attempt a+1 with fresh keys, or the job fails
//!  outcome ─▶ JobDriver::finish_round ─▶ next round, or finished (participants told)
//! ```
//!
//! Layout: [`actor`] owns all state (one task); [`service`] verifies and
//! forwards; [`round`] holds the phase types; [`job`] says what rounds compute.
#![forbid(unsafe_code)]

mod actor;
mod error;
pub mod job;
mod round;
mod service;

use std::future::Future;
use std::sync::Arc;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_proto::consortium::Consortium;
use fedcredit_proto::v1::coordinator_server::CoordinatorServer;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;

pub use error::{CoordinatorError, Rejection};
pub use job::{JobDriver, RoundPlan, RoundResult, SecureSum};

/// Runs one job on an already-bound listener until it finishes, fails, or
/// `shutdown` resolves. Returns every round's published result.
pub async fn run(
    listener: TcpListener,
    consortium: Consortium,
    key: IdentityKey,
    driver: Box<dyn JobDriver>,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Vec<RoundResult>, CoordinatorError> {
    if key.public() != *consortium.roster.coordinator() {
        return Err(CoordinatorError::Job(format!(
            "the coordinator key does not match coordinator.public_key in {}",
            consortium.path.display()
        )));
    }
    let consortium = Arc::new(consortium);
    let (tx, rx) = mpsc::channel(1024);
    let roster = Arc::new(consortium.roster.clone());
    let service = service::Service::new(roster, &consortium.job.id, tx);
    let server = tonic::transport::Server::builder()
        .add_service(
            CoordinatorServer::new(service)
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown);
    let actor = actor::Actor::new(consortium, key, driver);
    let server = tokio::spawn(server);
    let outcome = actor.run(rx).await;
    server.abort();
    outcome
}

/// The largest message a job of `dimension` values needs, with room for the envelope.
pub fn max_message_bytes(dimension: usize) -> usize {
    dimension.saturating_mul(8).saturating_add(1 << 20)
}
