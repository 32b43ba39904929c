//! The operator's web dashboard, served read-only beside `/metrics` on
//! `[coordinator] http_listen`:
//!
//! ```text
//! GET /                  the job list (index.html; the page fetches /api/jobs)
//! GET /jobs/<id>         one job (the same page; it fetches /api/jobs/<id>)
//! GET /assets/app.js     the page's script: tables and inline SVG charts
//! GET /assets/style.css
//! GET /api/jobs/<id>     the job: its state, its round log as a timeline
//!                        (fedcredit_audit::show) and the verifier's verdict
//!                        on that log (fedcredit_audit::verify)
//! ```
//!
//! Everything a job page shows comes from the job's signed round log: the
//! phases and when they closed, who took part, dropped or left (with the
//! reason code), the published model's pooled metrics, the ROC and KS
//! curves drawn from the evaluation round's published score histograms,
//! the privacy budget as the verifier recomputes it. No row data, and
//! nothing the log does not already show to whoever holds it. The assets
//! are compiled in (`include_str!`): the page makes no request but to this
//! server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fedcredit_referee::consortium::Consortium;
use serde::Serialize;

use crate::metrics::JobView;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// The page may load its own script and style, and talk to this server only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What verifying one job's log needs: the consortium with that job (the
/// trust anchor `verify` checks the log against) and where the log is.
#[derive(Clone, Debug)]
pub struct JobFiles {
    /// The consortium file with the job's spec as its `[job]`.
    pub consortium: Arc<Consortium>,
    /// The job's round log (it may not exist yet: the job has not started).
    pub log: PathBuf,
}

/// What the HTTP layer asks of the program hosting jobs: the service (its
/// job store) or a single job (its one log).
pub trait Jobs: Send + Sync + 'static {
    /// Every job known, in submission order, as `/api/jobs` lists them.
    fn list(&self) -> Vec<JobView>;
    /// The files of job `id`; `None` if no such job is known, or its spec
    /// no longer fits the consortium (the error is the job's own concern).
    fn files(&self, id: &str) -> Option<JobFiles>;
}

/// A single job's host: one log, one consortium.
pub(crate) struct SingleJob {
    pub(crate) view: Arc<dyn Fn() -> JobView + Send + Sync>,
    pub(crate) files: JobFiles,
}

impl Jobs for SingleJob {
    fn list(&self) -> Vec<JobView> {
        // The endpoint is up a moment before the job has opened its log and
        // said what it is: until then there is no job to list, rather than
        // one with no id.
        let v = (self.view)();
        if v.id.is_empty() { Vec::new() } else { vec![v] }
    }

    fn files(&self, id: &str) -> Option<JobFiles> {
        (id == self.files.consortium.job.id).then(|| self.files.clone())
    }
}

/// What a log of a given length says: the timeline and the verdict. A page
/// load of an unchanged log is served from here, not verified again.
#[derive(Clone, Debug, Serialize)]
struct LogView {
    /// Bytes of the log read.
    log_bytes: u64,
    /// The log as a timeline, or why it cannot be read as one.
    timeline: Result<fedcredit_audit::Timeline, String>,
    /// The verifier's report.
    audit: fedcredit_audit::Report,
    /// Its last line (`result: VERIFIED (...)`).
    verdict: String,
    /// The whole report, as `fedcredit audit verify` prints it.
    audit_text: String,
}

/// The dashboard's state: the jobs, and each job's last [`LogView`].
pub(crate) struct Dashboard {
    jobs: Arc<dyn Jobs>,
    cache: Mutex<HashMap<String, Arc<LogView>>>,
}

impl Dashboard {
    pub(crate) fn new(jobs: Arc<dyn Jobs>) -> Arc<Self> {
        Arc::new(Self {
            jobs,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn list(&self) -> Vec<JobView> {
        self.jobs.list()
    }

    /// The log's view, from the cache if the log has the same length as
    /// when it was last verified (a round log only grows by appends).
    fn log_view(&self, id: &str, files: &JobFiles) -> Result<Option<Arc<LogView>>, String> {
        let bytes = match std::fs::read(&files.log) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", files.log.display())),
        };
        let len = bytes.len() as u64;
        if let Some(hit) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(id).filter(|v| v.log_bytes == len).cloned())
        {
            return Ok(Some(hit));
        }
        let audit = fedcredit_audit::verify(&bytes, &files.consortium);
        let audit_text = audit.to_string();
        let verdict = audit_text
            .lines()
            .next_back()
            .unwrap_or_default()
            .to_owned();
        let view = Arc::new(LogView {
            log_bytes: len,
            timeline: fedcredit_audit::show(&bytes).map_err(|e| e.to_string()),
            audit,
            verdict,
            audit_text,
        });
        if let Ok(mut c) = self.cache.lock() {
            c.insert(id.to_owned(), Arc::clone(&view));
        }
        Ok(Some(view))
    }
}

/// `GET /api/jobs/<id>`.
#[derive(Serialize)]
struct JobPage<'a> {
    /// The job's state now, as `/api/jobs` lists it.
    job: JobView,
    /// What its round log says; `null` before the job's first record.
    log: Option<&'a LogView>,
}

/// The same rule as the service's job ids: letters, digits, `.`, `_`, `-`,
/// not starting with a dot. Checked again here: a path segment reaches
/// the file system through [`Jobs::files`].
fn valid_id(id: &str) -> bool {
    crate::host::check_id(id).is_ok()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn job_page(State(d): State<Arc<Dashboard>>, Path(id): Path<String>) -> Response {
    if !valid_id(&id) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{id:?} is not a job id (letters, digits, '.', '_' or '-', not starting with '.')"
            ),
        );
    }
    let Some(job) = d.list().into_iter().find(|j| j.id == id) else {
        return error(StatusCode::NOT_FOUND, format!("no job {id:?}"));
    };
    let Some(files) = d.jobs.files(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no files of job {id:?}"));
    };
    // Verifying a long log is CPU work: off the async workers.
    let for_view = Arc::clone(&d);
    let log = match tokio::task::spawn_blocking(move || for_view.log_view(&id, &files)).await {
        Ok(Ok(log)) => log,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the round log: {e}"),
            );
        }
    };
    axum::Json(JobPage {
        job,
        log: log.as_deref(),
    })
    .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// The dashboard's routes (the page, its assets, the job API).
pub(crate) fn routes(d: Arc<Dashboard>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/", get(|| async { page() }))
        .route("/jobs/{id}", get(|| async { page() }))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/jobs/{id}", get(job_page))
        .with_state(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One job, `sum-1`, whose log is `log` (a garbage log verifies to NOT
    /// VERIFIED, which is all these tests need).
    struct OneJob {
        files: JobFiles,
    }

    impl Jobs for OneJob {
        fn list(&self) -> Vec<JobView> {
            vec![JobView {
                id: "sum-1".into(),
                kind: "secure-sum".into(),
                state: "finished".into(),
                ..JobView::default()
            }]
        }

        fn files(&self, id: &str) -> Option<JobFiles> {
            (id == "sum-1").then(|| self.files.clone())
        }
    }

    fn dashboard(dir: &std::path::Path) -> Arc<Dashboard> {
        let key = |s: u8| {
            fedcredit_crypto::identity::IdentityKey::from_secret_bytes(&[s; 32])
                .public()
                .to_hex()
        };
        let toml = format!(
            "[coordinator]\nlisten = \"127.0.0.1:50051\"\npublic_key = \"{}\"\n\
             [job]\nid = \"sum-1\"\nkind = \"secure-sum\"\ndimension = 2\nfrac_bits = 16\nclip = 1e6\n\
             [[participants]]\nid = \"bank-a\"\npublic_key = \"{}\"\n\
             [[participants]]\nid = \"bank-b\"\npublic_key = \"{}\"\n\
             [[participants]]\nid = \"bank-c\"\npublic_key = \"{}\"\n",
            key(9),
            key(1),
            key(2),
            key(3)
        );
        let consortium = Consortium::parse(&dir.join("consortium.toml"), &toml).expect("parse");
        Dashboard::new(Arc::new(OneJob {
            files: JobFiles {
                consortium: Arc::new(consortium),
                log: dir.join("rounds.log"),
            },
        }))
    }

    async fn status(d: &Arc<Dashboard>, id: &str) -> StatusCode {
        job_page(State(Arc::clone(d)), Path(id.to_owned()))
            .await
            .status()
    }

    #[tokio::test]
    async fn unknown_ids_are_not_found_and_malformed_ones_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dashboard(dir.path());
        // No log yet: the job is shown, without one.
        assert_eq!(status(&d, "sum-1").await, StatusCode::OK);
        assert_eq!(status(&d, "sum-2").await, StatusCode::NOT_FOUND);
        for bad in ["../sum-1", "..", ".hidden", "a/b", "", "sum 1"] {
            assert_eq!(status(&d, bad).await, StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[test]
    fn an_unchanged_log_is_verified_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dashboard(dir.path());
        let files = d.jobs.files("sum-1").expect("files");
        assert!(d.log_view("sum-1", &files).expect("read").is_none());
        std::fs::write(&files.log, b"\x05hello").expect("write");
        let first = d.log_view("sum-1", &files).expect("read").expect("a log");
        assert!(!first.audit.verified);
        assert!(
            first.verdict.starts_with("result: NOT VERIFIED"),
            "{}",
            first.verdict
        );
        let again = d.log_view("sum-1", &files).expect("read").expect("a log");
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
        // The log grew: verified again.
        std::fs::write(&files.log, b"\x05hello world").expect("write");
        let grown = d.log_view("sum-1", &files).expect("read").expect("a log");
        assert!(!Arc::ptr_eq(&first, &grown));
        assert_eq!(grown.log_bytes, 12);
    }
}
