//! What the operator watches: the coordinator's Prometheus metrics (names
//! prefixed `fedcredit_`) and the job's state, served read-only over HTTP
//! on `[coordinator] http_listen` at `/metrics` (OpenMetrics text) and
//! `/api/jobs` (JSON), beside the dashboard (`dashboard/`). Nothing
//! here carries row data or anything the round log does not already show.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// A protocol phase, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PhaseLabel {
    pub phase: String,
}

/// A refusal's gRPC code, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusalLabel {
    pub code: String,
}

/// Messages refused with a reason (bad signature, wrong phase, not a
/// member, inadmissible...), by gRPC code. Process-wide: refusals are made
/// where a rejection becomes a gRPC status, far from any one job's state.
pub(crate) static REFUSALS: LazyLock<Family<RefusalLabel, Counter>> =
    LazyLock::new(Family::default);

/// Phase durations from 1 ms to about 9 min.
fn phase_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// The job as `/api/jobs` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// `secure-sum` or `model`.
    pub kind: String,
    /// `queued` (the service), `waiting` (lobby), `running`, `finished`,
    /// `failed` or `aborted`.
    pub state: String,
    /// The round running (or the number of rounds done once finished).
    pub round: u64,
    /// The attempt of that round.
    pub attempt: u32,
    /// The open phase while running.
    pub phase: Option<String>,
    /// Rounds completed.
    pub rounds_completed: u64,
    /// Why the job failed, if it did.
    pub failure: Option<String>,
    /// The contributors of the last completed round.
    pub cohort: Vec<String>,
    /// Where a model job stands (the last step's size and objective).
    pub progress: Option<String>,
    /// (ε spent, ε of the whole job) of a private job.
    pub privacy: Option<(f64, f64)>,
    /// Order of submission (the service); 0 for a single job.
    pub seq: u64,
}

/// The coordinator's metrics and job view.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) rounds_completed: Counter,
    pub(crate) attempts_aborted: Counter,
    pub(crate) phases_completed: Family<PhaseLabel, Counter>,
    pub(crate) phase_seconds: Family<PhaseLabel, Histogram, fn() -> Histogram>,
    pub(crate) participants_connected: Gauge,
    pub(crate) dropouts: Counter,
    pub(crate) departures: Counter,
    pub(crate) restarts: Counter,
    pub(crate) epsilon_spent: Gauge<f64, AtomicU64>,
    pub(crate) epsilon_budget: Gauge<f64, AtomicU64>,
    bytes_received: Counter,
    bytes_sent: Counter,
    /// What the participants' connections carried, counted by the transport.
    pub(crate) traffic: Arc<fedcredit_transport::server::Traffic>,
    /// The traffic already added to the byte counters.
    traffic_counted: Mutex<(u64, u64)>,
    job: Mutex<JobView>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("fedcredit");
        let m = Self {
            rounds_completed: Counter::default(),
            attempts_aborted: Counter::default(),
            phases_completed: Family::default(),
            phase_seconds: Family::new_with_constructor(phase_buckets),
            participants_connected: Gauge::default(),
            dropouts: Counter::default(),
            departures: Counter::default(),
            restarts: Counter::default(),
            epsilon_spent: Gauge::default(),
            epsilon_budget: Gauge::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            traffic: Arc::default(),
            traffic_counted: Mutex::default(),
            job: Mutex::new(JobView::default()),
            registry: Registry::default(),
        };
        registry.register(
            "rounds_completed",
            "Rounds whose sum was published",
            m.rounds_completed.clone(),
        );
        registry.register(
            "round_attempts_aborted",
            "Round attempts aborted (too few members left in a phase)",
            m.attempts_aborted.clone(),
        );
        registry.register(
            "phases_completed",
            "Protocol phases closed, by phase",
            m.phases_completed.clone(),
        );
        registry.register(
            "phase_duration_seconds",
            "Time from a phase's opening to its close, by phase",
            m.phase_seconds.clone(),
        );
        registry.register(
            "participants_connected",
            "Members joined and not counted dropped since",
            m.participants_connected.clone(),
        );
        registry.register(
            "dropouts",
            "Members that missed a phase deadline",
            m.dropouts.clone(),
        );
        registry.register(
            "departures",
            "Members that left the job with a reason code",
            m.departures.clone(),
        );
        registry.register(
            "coordinator_restarts",
            "Starts of this coordinator that resumed an existing round log",
            m.restarts.clone(),
        );
        registry.register(
            "privacy_epsilon_spent",
            "Differential privacy: epsilon spent so far by a private job's rounds",
            m.epsilon_spent.clone(),
        );
        registry.register(
            "privacy_epsilon_budget",
            "Differential privacy: the private job's whole epsilon",
            m.epsilon_budget.clone(),
        );
        registry.register(
            "received_bytes",
            "Bytes members sent on the participants' port (gRPC, inside TLS)",
            m.bytes_received.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes sent to members on the participants' port (gRPC, inside TLS)",
            m.bytes_sent.clone(),
        );
        registry.register(
            "refusals",
            "Messages refused with a reason, by gRPC code",
            REFUSALS.clone(),
        );
        Arc::new(Self { registry, ..m })
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        if let Ok(mut counted) = self.traffic_counted.lock() {
            let now = (
                self.traffic.received.load(Relaxed),
                self.traffic.sent.load(Relaxed),
            );
            self.bytes_received.inc_by(now.0.saturating_sub(counted.0));
            self.bytes_sent.inc_by(now.1.saturating_sub(counted.1));
            *counted = now;
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Updates the job view.
    pub(crate) fn job(&self, update: impl FnOnce(&mut JobView)) {
        if let Ok(mut job) = self.job.lock() {
            update(&mut job);
        }
    }

    /// The job view now.
    pub fn job_view(&self) -> JobView {
        self.job.lock().map(|j| j.clone()).unwrap_or_default()
    }
}

/// Binds `addr` and serves the read-only endpoints until aborted; a taken
/// address is an error naming the key and the address.
pub(crate) async fn bind_http(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    jobs: Arc<dyn crate::dashboard::Jobs>,
) -> Result<tokio::task::JoinHandle<()>, crate::CoordinatorError> {
    serve(addr, metrics, jobs, std::future::pending())
        .await
        .map_err(|e| {
            crate::CoordinatorError::Job(format!(
                "coordinator.http_listen = {addr}: cannot listen: {e}"
            ))
        })
}

/// Binds `addr` and serves `/metrics`, `/api/jobs` and the dashboard until
/// `stop` resolves. Errors if the address cannot be bound (named in the
/// error).
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    jobs: Arc<dyn crate::dashboard::Jobs>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, std::io::Error> {
    use axum::http::header;
    use axum::routing::get;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let for_metrics = Arc::clone(&metrics);
    let dashboard = crate::dashboard::Dashboard::new(jobs);
    let for_list = Arc::clone(&dashboard);
    let app = crate::dashboard::routes(dashboard)
        .route(
            "/metrics",
            get(move || {
                let body = for_metrics.encode();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .route(
            "/api/jobs",
            get(move || {
                let jobs = for_list.list();
                async move { axum::Json(jobs) }
            }),
        );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %e, "the HTTP endpoint stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prefixed_and_counted() {
        let m = Metrics::new();
        m.rounds_completed.inc();
        m.phases_completed
            .get_or_create(&PhaseLabel {
                phase: "unmask".into(),
            })
            .inc();
        m.phase_seconds
            .get_or_create(&PhaseLabel {
                phase: "unmask".into(),
            })
            .observe(0.02);
        let text = m.encode();
        assert!(
            text.contains("fedcredit_rounds_completed_total 1"),
            "{text}"
        );
        assert!(
            text.contains("fedcredit_phases_completed_total{phase=\"unmask\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fedcredit_phase_duration_seconds_count{phase=\"unmask\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn refusals_count_messages_turned_away_not_aborts() {
        let label = RefusalLabel {
            code: "FailedPrecondition".into(),
        };
        let before = REFUSALS.get_or_create(&label).get();
        let _ = tonic::Status::from(crate::Rejection::WrongPhase {
            got: "unmask".into(),
            open: "masked-input".into(),
        });
        let _ = tonic::Status::from(crate::Rejection::Superseded);
        let _ = tonic::Status::from(crate::Rejection::ShuttingDown);
        // At least: tests in this process run in parallel.
        assert!(REFUSALS.get_or_create(&label).get() > before);
        let text = Metrics::new().encode();
        assert!(text.contains("fedcredit_refusals_total{code=\"FailedPrecondition\"}"));
        assert!(!text.contains("code=\"Aborted\""), "{text}");
        assert!(!text.contains("code=\"Unavailable\""), "{text}");
    }
}
