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
//! Layout: [`actor`] owns all state (one task) and runs the event loop;
//! [`service`] verifies and forwards [`requests`] to it; [`round`] holds the
//! phase types; [`replay`] rebuilds the state from the round log and
//! [`records`] builds the coordinator's own log records; [`job`] says what
//! rounds compute; [`host`] runs many jobs as a service; [`metrics`] and
//! [`dashboard`] serve what the operator watches.
#![forbid(unsafe_code)]

mod actor;
mod dashboard;
mod error;
mod freshness;
pub mod host;
pub mod job;
mod log;
pub mod metrics;
mod records;
mod replay;
mod requests;
mod round;
mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_proto::v1::coordinator_server::CoordinatorServer;
use fedcredit_referee::consortium::Consortium;
use fedcredit_transport::server::Limits;
use tokio::sync::mpsc;

pub use error::{CoordinatorError, Rejection};
pub use fedcredit_transport::server::Listener;
pub use job::{
    JobDriver, ModelFit, Monitor, ProgressLine, RoundPlan, RoundResult, SecureSum, max_words,
};

/// What a finished job published.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// Every round's result, in order.
    pub rounds: Vec<RoundResult>,
    /// The fitted model of a model job.
    pub model: Option<fedcredit_model::job::FittedModel>,
    /// Whose rows are in the result: contributors, dropouts (from which
    /// round, why), members that never joined (why).
    pub membership: fedcredit_referee::Membership,
}

/// Runs one job on an already-bound listener until it finishes, fails, or
/// `shutdown` resolves. On a TLS listener every connection is mutual TLS
/// from a member and each message must come from the connection's member. The round log at `log_path` is the coordinator's
/// state: if it exists, it is replayed and the job carries on from it.
/// Serves `[coordinator] http_listen` while it runs, if set.
/// Returns every round's published result.
pub async fn run(
    listener: Listener,
    consortium: Consortium,
    key: IdentityKey,
    driver: Box<dyn JobDriver>,
    max_message_bytes: usize,
    log_path: std::path::PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<JobReport, CoordinatorError> {
    check_key(&consortium, &key)?;
    let metrics = metrics::Metrics::new();
    // The read-only HTTP endpoint, if configured: bound first, so a taken
    // address stops the start, naming it, before the round log is touched.
    let http = match consortium.http_listen {
        None => None,
        Some(addr) => {
            let for_view = Arc::clone(&metrics);
            let jobs = Arc::new(dashboard::SingleJob {
                view: Arc::new(move || for_view.job_view()),
                files: dashboard::JobFiles {
                    consortium: Arc::new(consortium.clone()),
                    log: log_path.clone(),
                },
            });
            Some(metrics::bind_http(addr, Arc::clone(&metrics), jobs).await?)
        }
    };
    let outcome = run_job(
        listener,
        consortium,
        key,
        driver,
        max_message_bytes,
        log_path,
        shutdown,
        std::future::pending(),
        metrics,
    )
    .await;
    if let Some(http) = http {
        http.abort();
    }
    outcome
}

fn check_key(consortium: &Consortium, key: &IdentityKey) -> Result<(), CoordinatorError> {
    if key.public() != *consortium.roster.coordinator() {
        return Err(CoordinatorError::Job(format!(
            "the coordinator key does not match coordinator.public_key in {}",
            consortium.path.display()
        )));
    }
    Ok(())
}

/// The coordinator-signed offer of the consortium's job (round 0, attempt 0).
fn job_offer(consortium: &Consortium, key: &IdentityKey) -> fedcredit_proto::v1::Signed {
    use fedcredit_proto::v1 as pb;
    fedcredit_proto::envelope::seal_coordinator(
        key,
        &pb::CoordinatorMessage {
            job_id: consortium.job.id.clone(),
            round: 0,
            attempt: 0,
            body: Some(pb::coordinator_message::Body::Offer(pb::JobOffer {
                spec_json: consortium.job.to_json().into(),
            })),
        },
    )
}

/// [`run`] without the HTTP endpoint, reporting to `metrics` (the service
/// keeps one endpoint and one set of metrics across its jobs). When `abort`
/// resolves, the job ends as abandoned for the reason it gives.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_job(
    listener: Listener,
    consortium: Consortium,
    key: IdentityKey,
    driver: Box<dyn JobDriver>,
    max_message_bytes: usize,
    log_path: std::path::PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
    abort: impl Future<Output = String> + Send + 'static,
    metrics: Arc<metrics::Metrics>,
) -> Result<JobReport, CoordinatorError> {
    check_key(&consortium, &key)?;
    let consortium = Arc::new(consortium);
    let offer = job_offer(&consortium, &key);
    // Replay the log first: a damaged log or one of another job stops here,
    // before any participant is served.
    let actor = actor::Actor::new(
        Arc::clone(&consortium),
        key,
        driver,
        &log_path,
        Arc::clone(&metrics),
    )?;
    let (tx, rx) = mpsc::channel(1024);
    let roster = Arc::new(consortium.roster.clone());
    let limits = Limits::for_members(consortium.roster.len());
    let service = service::Service::new(
        roster,
        &consortium.job.id,
        tx,
        listener.is_tls(),
        consortium.protocol.phase_deadline,
        offer,
        consortium.protocol.epoch_slots,
    )
    .published(actor.published())
    .max_reply(max_message_bytes);
    // The actor hears of `shutdown` and stops the job; the server stops
    // after it, so that the actor's last replies still go out.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = done_rx.await;
    };
    let (incoming, open) = fedcredit_transport::server::incoming_watched(
        listener,
        limits,
        Arc::clone(&metrics.traffic),
    );
    // A member makes one call at a time (and a Leave); a few streams per
    // connection are plenty, and bound what one connection can queue.
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(8))
        // No call outlives this (a held poll is answered after POLL_HOLD;
        // phase calls within the phase deadline): a backstop.
        .timeout(
            service::POLL_HOLD + consortium.protocol.phase_deadline * 2 + Duration::from_secs(30),
        )
        .http2_max_header_list_size(Some(16 * 1024))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(
            // What participants send is bounded by one chunk, whatever the
            // round's dimension: a larger request is refused before it is
            // buffered. What goes out (a round's outcome) needs the round's
            // size.
            CoordinatorServer::new(service)
                .max_decoding_message_size(
                    max_message_bytes.min(fedcredit_proto::chunks::MAX_REQUEST_BYTES),
                )
                .max_encoding_message_size(max_message_bytes),
        )
        .serve_with_incoming_shutdown(incoming, stop);
    let server = tokio::spawn(server);
    let outcome = actor.run(rx, shutdown, abort).await;
    // The job's end was handed to the last members' polls, but the answer
    // may still be on its way when the actor returns, and a member that sat
    // a round out then fetches that round's outcome (`OutcomeChunks`, served
    // from the shared list, not by the actor); a shutdown would cut either
    // off (seen under load: the member waited out its connect timeout and
    // failed, though the job had succeeded). A member hangs up once it has
    // replayed the job: wait for that, at most one phase deadline.
    if !matches!(outcome, Err(CoordinatorError::ShutDown)) {
        let limit = consortium.protocol.phase_deadline.min(HANG_UP_WAIT);
        let still_open = open.closed_within(limit).await;
        if still_open > 0 {
            tracing::info!(
                connections = still_open,
                waited_secs = limit.as_secs_f64(),
                "stopping with member connections still open"
            );
        }
    }
    let _ = done_tx.send(());
    if tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .is_err()
    {
        tracing::warn!("the gRPC server did not stop within 10 s");
    }
    outcome
}

/// The longest the server keeps running after the job ended for the
/// members to hang up, so that the answers already handed out reach them.
const HANG_UP_WAIT: Duration = Duration::from_secs(30);

/// Ends a job that will not be resumed: replays the round log at
/// `log_path` and records, signed, that the operator abandoned it
/// (`reason`), keeping every finished round for the auditor. A job that
/// already ended (finished, or abandoned before) is refused.
pub fn abandon(
    consortium: Consortium,
    key: IdentityKey,
    driver: Box<dyn JobDriver>,
    log_path: &std::path::Path,
    reason: &str,
) -> Result<(), CoordinatorError> {
    check_key(&consortium, &key)?;
    if !log_path.exists() {
        return Err(CoordinatorError::Log(format!(
            "{}: no round log to abandon",
            log_path.display()
        )));
    }
    actor::Actor::new(
        Arc::new(consortium),
        key,
        driver,
        log_path,
        metrics::Metrics::new(),
    )?
    .abandon(reason)
}

/// The largest message a round of `words` u64 words needs, with room for
/// the envelope: the outcome and announcements sent to participants.
/// Participants' requests are held to one chunk
/// ([`fedcredit_proto::chunks::MAX_REQUEST_BYTES`]).
pub fn max_message_bytes(words: usize) -> usize {
    words.saturating_mul(8).saturating_add(4 << 20)
}

/// The largest reply the coordinator encodes for `consortium`: a round of
/// its job's largest vector ([`max_message_bytes`]) or, with epochs, the
/// setup's relay of every dealer's shares to one member, which grows as
/// n²·slots ([`fedcredit_referee::consortium::epoch_relay_bytes`]).
pub fn max_reply_bytes(consortium: &Consortium) -> usize {
    let round = max_message_bytes(max_words(&consortium.job.kind));
    consortium.protocol.epoch_slots.map_or(round, |slots| {
        let relay =
            fedcredit_referee::consortium::epoch_relay_bytes(consortium.roster.len(), slots.get());
        round.max(relay.saturating_add(1 << 20))
    })
}
