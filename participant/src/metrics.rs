//! What a member's operator watches: the participant daemon's Prometheus
//! metrics (names prefixed `fedcredit_participant_`), served read-only on
//! `metrics_listen` (loopback only) when the config sets it. Counts only:
//! no row data, no values, nothing the member does not already log.
//!
//! The metrics are process-wide ([`METRICS`]): a daemon is one member.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a job ended for this member, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `finished`, `failed` or `refused`.
    pub outcome: String,
}

/// A reason code, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The code's name, e.g. `policy-features`.
    pub reason: String,
}

/// The participant's metrics.
#[derive(Debug)]
pub struct ParticipantMetrics {
    registry: Registry,
    /// Rounds this member contributed to and saw published.
    pub rounds_completed: Counter,
    /// Round attempts it joined that did not complete.
    pub attempts_not_completed: Counter,
    /// Seconds from a round's announcement to its published outcome.
    pub round_seconds: Histogram,
    /// Jobs by how they ended for this member.
    pub jobs: Family<OutcomeLabel, Counter>,
    /// Jobs it refused or left, by reason code.
    pub refusals: Family<ReasonLabel, Counter>,
    /// 1 while the coordinator answers, 0 while it cannot be reached.
    pub coordinator_reachable: Gauge,
}

impl ParticipantMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("fedcredit_participant");
        let m = Self {
            rounds_completed: Counter::default(),
            attempts_not_completed: Counter::default(),
            round_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 20)),
            jobs: Family::default(),
            refusals: Family::default(),
            coordinator_reachable: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "rounds_completed",
            "Rounds this member contributed to and saw published",
            m.rounds_completed.clone(),
        );
        registry.register(
            "round_attempts_not_completed",
            "Round attempts this member joined that did not complete",
            m.attempts_not_completed.clone(),
        );
        registry.register(
            "round_duration_seconds",
            "Time from a round's announcement to its published outcome",
            m.round_seconds.clone(),
        );
        registry.register(
            "jobs",
            "Jobs by how they ended for this member (finished, failed, refused)",
            m.jobs.clone(),
        );
        registry.register(
            "refusals",
            "Jobs this member refused or left, by reason code",
            m.refusals.clone(),
        );
        registry.register(
            "coordinator_reachable",
            "1 while the coordinator answers, 0 while it cannot be reached",
            m.coordinator_reachable.clone(),
        );
        Self { registry, ..m }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a job's end for this member.
    pub fn job_ended(&self, outcome: &str) {
        self.jobs
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a refusal or departure by its reason code.
    pub fn refused(&self, code: fedcredit_proto::v1::ReasonCode) {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: code.label().to_owned(),
            })
            .inc();
    }
}

/// This process's participant metrics.
pub static METRICS: LazyLock<ParticipantMetrics> = LazyLock::new(ParticipantMetrics::new);

/// Binds `addr` (checked to be loopback by the config) and serves
/// `GET /metrics` until the process ends. A taken address is an error.
pub async fn serve(addr: std::net::SocketAddr) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use axum::http::header;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = axum::Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                METRICS.encode(),
            )
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_prefixed_and_labelled() {
        let m = ParticipantMetrics::new();
        m.rounds_completed.inc();
        m.job_ended("refused");
        m.refused(fedcredit_proto::v1::ReasonCode::ReasonPolicyKind);
        let text = m.encode();
        assert!(
            text.contains("fedcredit_participant_rounds_completed_total 1"),
            "{text}"
        );
        assert!(
            text.contains("fedcredit_participant_jobs_total{outcome=\"refused\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fedcredit_participant_refusals_total{reason=\"policy-kind\"} 1"),
            "{text}"
        );
    }
}
