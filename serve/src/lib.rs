//! Online scoring: a fitted `model.json` behind an HTTP JSON API, the
//! serving side of a consortium's model (a decision within a second of an
//! application, with room to spare).
//!
//! ```text
//! POST /v1/score        {"age": 35, "purpose": "car", ...}            → {"probability": 0.12}
//! POST /v1/score/batch  {"applicants": [{...}, {...}]}                 → {"scores": [{...}, ...]}
//! GET  /healthz         → {"status": "ok", "model": {job, spec hash, features}}
//! GET  /metrics         → Prometheus text (`fedcredit_serve_` prefix)
//! ```
//!
//! An applicant is a JSON object with one field per model feature: a
//! number or numeric text for a numeric feature, one of the model's
//! categories for a categorical one. A feature that is missing, or a value
//! outside the model's schema, is answered `422` naming the field (and, in
//! a batch, the applicant's index); fields the model does not use are
//! ignored. `SIGHUP` reloads the model file: requests in flight finish on
//! the model they started with, later ones get the new one, and a file
//! that does not load leaves the old model serving (and says why).

#![forbid(unsafe_code)]

pub mod bench;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fedcredit_model::Encoder;
use fedcredit_model::job::FittedModel;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::{Map, Value};

/// Most applicants in one batch request.
pub const MAX_BATCH: usize = 10_000;

/// Largest request body (a batch of [`MAX_BATCH`] modest applicants).
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Why a model file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The file cannot be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The model file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a model.
    #[error("{file}: not a fedcredit model.json: {message}")]
    Parse {
        /// The model file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A loaded model and the encoder for its features.
#[derive(Debug)]
pub struct Scorer {
    model: FittedModel,
    encoder: Encoder,
    /// Feature column names, in the encoder's header order.
    names: Vec<String>,
}

/// One applicant's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// Probability of the positive (default) event.
    pub probability: f64,
    /// A scorecard's total points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<f64>,
    /// A scorecard's reason codes: up to three characteristics where the
    /// applicant lost the most points against their best bin, most first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
}

/// An applicant that does not fit the model: which field and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// The applicant's index in a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applicant: Option<usize>,
    /// The offending field (`null` when the applicant is not an object).
    pub field: Option<String>,
    /// What is wrong.
    pub error: String,
}

impl Scorer {
    /// Reads and checks `model.json`.
    pub fn load(path: &Path) -> Result<Self, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::Read {
            file: path.to_owned(),
            source,
        })?;
        let parse = |message: String| ServeError::Parse {
            file: path.to_owned(),
            message,
        };
        let model: FittedModel = serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?;
        // A scorecard reads the raw features it binned; the model's own
        // schema holds the WOE features it was fitted on.
        let schema = model
            .scorecard
            .as_ref()
            .map_or(&model.schema, |c| &c.schema);
        let names: Vec<String> = schema
            .features
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        let encoder = Encoder::for_scoring(schema, &names).map_err(|e| parse(e.to_string()))?;
        Ok(Self {
            model,
            encoder,
            names,
        })
    }

    /// The model's feature names.
    pub fn features(&self) -> &[String] {
        &self.names
    }

    /// Scores one applicant (a JSON object of feature fields).
    pub fn score(&self, applicant: &Value) -> Result<Score, FieldError> {
        let bad = |field: Option<&str>, error: String| FieldError {
            applicant: None,
            field: field.map(str::to_owned),
            error,
        };
        let Some(fields) = applicant.as_object() else {
            return Err(bad(
                None,
                "an applicant is a JSON object with one field per model feature".into(),
            ));
        };
        let cells = self.cells(fields).map_err(|(f, e)| bad(Some(f), e))?;
        let mut row = vec![0.0; self.encoder.width()];
        self.encoder
            .encode_features_into(&cells, &mut row)
            .map_err(|e| bad(e.column(), e.to_string()))?;
        if let Some(card) = &self.model.scorecard {
            let a = card
                .assess(&row)
                .map_err(|e| bad(e.column(), e.to_string()))?;
            return Ok(Score {
                probability: a.probability,
                points: Some(a.points),
                reasons: Some(a.reasons.iter().map(|&j| self.names[j].clone()).collect()),
            });
        }
        let probability = self
            .model
            .probability(&row)
            .map_err(|e| bad(None, e.to_string()))?;
        Ok(Score {
            probability,
            points: None,
            reasons: None,
        })
    }

    /// The applicant's fields as the text cells the encoder reads, in
    /// feature order; a missing feature or a value that is neither a number
    /// nor text is an error naming the field.
    fn cells<'a>(&'a self, fields: &Map<String, Value>) -> Result<Vec<String>, (&'a str, String)> {
        self.names
            .iter()
            .map(|name| match fields.get(name) {
                None => Err((
                    name.as_str(),
                    format!("field `{name}` is missing (a feature of the model)"),
                )),
                Some(Value::Number(n)) => Ok(n.to_string()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err((
                    name.as_str(),
                    format!("field `{name}`: expected a number or text, got {other}"),
                )),
            })
            .collect()
    }
}

/// A route and status, as labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
    status: u16,
}

/// The service's metrics.
#[derive(Debug)]
struct Metrics {
    registry: Registry,
    requests: Family<RouteLabel, Counter>,
    seconds: Histogram,
    scored: Counter,
    reloads: Family<RouteLabel, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("fedcredit_serve");
        let m = Self {
            requests: Family::default(),
            // 10 µs to about 5 s.
            seconds: Histogram::new(exponential_buckets(1e-5, 2.0, 20)),
            scored: Counter::default(),
            reloads: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests by route and HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a scoring request, in the handler",
            m.seconds.clone(),
        );
        registry.register("applicants_scored", "Applicants scored", m.scored.clone());
        registry.register(
            "model_reloads",
            "Model reloads on SIGHUP (status 200: loaded, 500: kept the old model)",
            m.reloads.clone(),
        );
        Self { registry, ..m }
    }

    fn count(&self, route: &str, status: StatusCode) {
        self.requests
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
                status: status.as_u16(),
            })
            .inc();
    }
}

/// The service's state: the model now served, its file, and the metrics.
#[derive(Debug)]
pub struct Service {
    path: PathBuf,
    scorer: RwLock<Arc<Scorer>>,
    metrics: Metrics,
}

impl Service {
    /// Loads the model at `path`.
    pub fn new(path: &Path) -> Result<Arc<Self>, ServeError> {
        Ok(Arc::new(Self {
            path: path.to_owned(),
            scorer: RwLock::new(Arc::new(Scorer::load(path)?)),
            metrics: Metrics::new(),
        }))
    }

    /// The model served now (requests keep the one they started with).
    fn current(&self) -> Arc<Scorer> {
        match self.scorer.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Loads the model file again; on failure the old model stays.
    pub fn reload(&self) -> Result<(), ServeError> {
        let label = |status: StatusCode| RouteLabel {
            route: "reload".into(),
            status: status.as_u16(),
        };
        match Scorer::load(&self.path) {
            Ok(s) => {
                let features = s.features().len();
                match self.scorer.write() {
                    Ok(mut slot) => *slot = Arc::new(s),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(s),
                }
                self.metrics
                    .reloads
                    .get_or_create(&label(StatusCode::OK))
                    .inc();
                tracing::info!(model = %self.path.display(), features, "model reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics
                    .reloads
                    .get_or_create(&label(StatusCode::INTERNAL_SERVER_ERROR))
                    .inc();
                tracing::error!(error = %e, "model reload failed; the old model keeps serving");
                Err(e)
            }
        }
    }
}

fn unprocessable(e: FieldError) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Json(e)).into_response()
}

async fn score_one(State(svc): State<Arc<Service>>, body: axum::body::Bytes) -> Response {
    let start = Instant::now();
    let scorer = svc.current();
    let response = match serde_json::from_slice::<Value>(&body) {
        Err(e) => unprocessable(FieldError {
            applicant: None,
            field: None,
            error: format!("the body is not JSON: {e}"),
        }),
        Ok(applicant) => match scorer.score(&applicant) {
            Ok(score) => {
                svc.metrics.scored.inc();
                Json(score).into_response()
            }
            Err(e) => unprocessable(e),
        },
    };
    svc.metrics.seconds.observe(start.elapsed().as_secs_f64());
    svc.metrics.count("/v1/score", response.status());
    response
}

async fn score_batch(State(svc): State<Arc<Service>>, body: axum::body::Bytes) -> Response {
    let start = Instant::now();
    let scorer = svc.current();
    let bad = |error: String| {
        unprocessable(FieldError {
            applicant: None,
            field: None,
            error,
        })
    };
    let response = match serde_json::from_slice::<Value>(&body) {
        Err(e) => bad(format!("the body is not JSON: {e}")),
        Ok(v) => match v.get("applicants").and_then(Value::as_array) {
            None => bad("expected {\"applicants\": [ ... ]}".into()),
            Some(list) if list.len() > MAX_BATCH => bad(format!(
                "{} applicants in one batch; at most {MAX_BATCH}",
                list.len()
            )),
            Some(list) => {
                let scored: Result<Vec<Score>, FieldError> = list
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        scorer.score(a).map_err(|e| FieldError {
                            applicant: Some(i),
                            ..e
                        })
                    })
                    .collect();
                match scored {
                    Ok(scores) => {
                        svc.metrics.scored.inc_by(scores.len() as u64);
                        Json(serde_json::json!({ "scores": scores })).into_response()
                    }
                    Err(e) => unprocessable(e),
                }
            }
        },
    };
    svc.metrics.seconds.observe(start.elapsed().as_secs_f64());
    svc.metrics.count("/v1/score/batch", response.status());
    response
}

async fn healthz(State(svc): State<Arc<Service>>) -> Response {
    let s = svc.current();
    Json(serde_json::json!({
        "status": "ok",
        "model": {
            "job_id": s.model.job_id,
            "job_spec_hash": s.model.job_spec_hash,
            "features": s.names,
        }
    }))
    .into_response()
}

async fn metrics(State(svc): State<Arc<Service>>) -> Response {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &svc.metrics.registry);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The routes.
pub fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/v1/score", post(score_one))
        .route("/v1/score/batch", post(score_batch))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(svc)
}

/// Serves `model` on `listen` until `shutdown` resolves, reloading it on
/// every SIGHUP. Calls `ready` with the bound address once listening.
pub async fn serve(
    model: &Path,
    listen: SocketAddr,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let svc = Service::new(model)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen {listen}: cannot listen: {e}"))?;
    ready(listener.local_addr()?);
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let for_reload = Arc::clone(&svc);
    let reloader = tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // The error is logged; the old model keeps serving.
            let _ = for_reload.reload();
        }
    });
    let served = axum::serve(listener, router(svc))
        .with_graceful_shutdown(shutdown)
        .await;
    reloader.abort();
    Ok(served?)
}
