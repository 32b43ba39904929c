//! The coordinator as a service: one long-running process hosting many
//! jobs, one after another, each with its own spec, round log and results
//! under the state directory:
//!
//! ```text
//! <state_dir>/<job id>/job.toml     the spec as submitted ([job] table)
//!                     /state.json   queued | running | finished | failed | aborted, and its order
//!                     /rounds.log   the job's round log (its state: replayed on restart)
//!                     /results/     result.json, or model.json and metrics.json
//! ```
//!
//! Jobs run **one at a time**, in submission order: a member's daemon serves
//! one job at a time and the participants' port belongs to the running job
//! (every message is bound to its job id). A job is submitted by writing
//! its folder under a temporary name and renaming it into place, so a job
//! that exists is whole. Killed at any moment and restarted, the service
//! resumes the job that was running from its round log (the single job's
//! restart guarantee), then the queued ones.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_proto::envelope;
use fedcredit_proto::v1::{self as pb, admin_command::Action, admin_reply};
use fedcredit_referee::consortium::{Consortium, JobSpec};
use fedcredit_transport::server::ServerTls;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot, watch};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::metrics::{JobView, Metrics};
use crate::{CoordinatorError, JobDriver, JobReport, Listener};

/// What the service needs from its host program for each job: a driver
/// for the job's kind, and where its results go.
pub trait JobFactory: Send + Sync + 'static {
    /// The driver of `consortium.job`.
    fn driver(&self, consortium: &Consortium) -> Result<Box<dyn JobDriver>, String>;
    /// Writes a finished job's results into `out`.
    fn write_results(
        &self,
        consortium: &Consortium,
        report: &JobReport,
        out: &Path,
    ) -> Result<(), String>;
    /// After a job failed: writes into `out` what it had published (for a
    /// secure-sum series, each sum), from its round log. Returns how many
    /// results were written; by default none.
    fn write_before_failure(
        &self,
        _consortium: &Consortium,
        _log: &Path,
        _out: &Path,
    ) -> Result<usize, String> {
        Ok(0)
    }
}

/// A job's state in the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Submitted, waiting for the jobs before it.
    Queued,
    /// Its rounds are running (or it was, when the service stopped).
    Running,
    /// Its results are written.
    Finished,
    /// It failed; its round log says why and keeps its finished rounds.
    Failed,
    /// The operator aborted it.
    Aborted,
}

impl JobState {
    fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
            JobState::Aborted => "aborted",
        }
    }

    fn is_done(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Failed | JobState::Aborted
        )
    }
}

/// `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    seq: u64,
    state: JobState,
    #[serde(default)]
    failure: Option<String>,
    /// Rounds completed when it ended.
    #[serde(default)]
    rounds: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    spec: JobSpec,
    state: StateFile,
}

/// The jobs under the state directory.
struct Store {
    dir: PathBuf,
    jobs: BTreeMap<String, Entry>,
}

/// Job ids name folders: letters, digits, `.`, `_`, `-`, not starting with
/// a dot (no `..`, no `/`: a submitted id cannot reach outside the state
/// directory).
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "job.id {id:?}: the service needs letters, digits, '.', '_' or '-' (not starting with '.'), as it names the job's folder"
        ))
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, synced.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Store {
    /// Reads every job folder; a folder that cannot be read stops the
    /// start, naming it (nothing is skipped silently).
    fn open(dir: &Path) -> Result<Self, CoordinatorError> {
        let err = |what: &Path, e: &dyn std::fmt::Display| {
            CoordinatorError::Job(format!("state_dir: {}: {e}", what.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| err(dir, &e))?;
        let mut jobs = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| err(dir, &e))? {
            let entry = entry.map_err(|e| err(dir, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            // A submission interrupted before its rename: never acknowledged.
            if name.starts_with(".submit-") {
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            if !path.is_dir() {
                continue;
            }
            let spec_path = path.join("job.toml");
            let text = std::fs::read_to_string(&spec_path).map_err(|e| err(&spec_path, &e))?;
            let spec = JobSpec::from_toml(&spec_path, &text).map_err(|e| err(&spec_path, &e))?;
            if spec.id != name {
                return Err(err(
                    &spec_path,
                    &format!("job.id is {:?}, but the folder is {name:?}", spec.id),
                ));
            }
            let state_path = path.join("state.json");
            let state: StateFile = std::fs::read(&state_path)
                .map_err(|e| err(&state_path, &e))
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| err(&state_path, &e)))?;
            jobs.insert(name, Entry { spec, state });
        }
        Ok(Self {
            dir: dir.to_owned(),
            jobs,
        })
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Adds a job: its folder is written whole under a temporary name, then
    /// renamed into place.
    fn submit(&mut self, spec: JobSpec, text: &str) -> Result<u64, String> {
        check_id(&spec.id)?;
        if self.jobs.contains_key(&spec.id) {
            return Err(format!(
                "job {:?} exists already (ids are never reused: a job's log and results keep its id)",
                spec.id
            ));
        }
        let seq = self.jobs.values().map(|e| e.state.seq).max().unwrap_or(0) + 1;
        let state = StateFile {
            seq,
            state: JobState::Queued,
            failure: None,
            rounds: 0,
        };
        let tmp = self.dir.join(format!(".submit-{}", spec.id));
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp)?;
            write_atomic(&tmp.join("job.toml"), text.as_bytes())?;
            write_atomic(
                &tmp.join("state.json"),
                &serde_json::to_vec_pretty(&state).unwrap_or_default(),
            )?;
            std::fs::rename(&tmp, self.job_dir(&spec.id))?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| format!("writing the job into {}: {e}", self.dir.display()))?;
        self.jobs.insert(spec.id.clone(), Entry { spec, state });
        Ok(seq)
    }

    fn set(&mut self, id: &str, state: JobState, failure: Option<String>) {
        let path = self.job_dir(id).join("state.json");
        let Some(entry) = self.jobs.get_mut(id) else {
            return;
        };
        entry.state.state = state;
        entry.state.failure = failure;
        let bytes = serde_json::to_vec_pretty(&entry.state).unwrap_or_default();
        if let Err(e) = write_atomic(&path, &bytes) {
            // The round log stays the truth for a running job; a lost state
            // change only means the job is looked at again on restart.
            warn!(file = %path.display(), error = %e, "cannot record the job's state");
        }
    }

    /// The next job to run: the one that was running, else the first queued.
    fn next(&self) -> Option<(String, JobSpec)> {
        self.jobs
            .iter()
            .filter(|(_, e)| !e.state.state.is_done())
            .min_by_key(|(_, e)| (e.state.state != JobState::Running, e.state.seq))
            .map(|(id, e)| (id.clone(), e.spec.clone()))
    }
}

/// What the admin API and the job loop share.
struct Shared {
    store: Mutex<Store>,
    /// A job was submitted.
    submitted: Notify,
    /// The running job's id and how to abort it.
    running: Mutex<Option<(String, Option<oneshot::Sender<()>>)>>,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn views(&self) -> Vec<JobView> {
        let live = self.metrics.job_view();
        let Ok(store) = self.store.lock() else {
            return Vec::new();
        };
        let mut views: Vec<JobView> = store
            .jobs
            .iter()
            .map(|(id, e)| {
                if e.state.state == JobState::Running && live.id == *id {
                    // The job's actor has ended it, but the service has not
                    // yet written its results and recorded its state: not
                    // finished until then (`job wait` reads the results next).
                    let ending = matches!(live.state.as_str(), "finished" | "failed" | "aborted");
                    return JobView {
                        seq: e.state.seq,
                        state: if ending {
                            "running".into()
                        } else {
                            live.state.clone()
                        },
                        phase: if ending {
                            Some("ending".into())
                        } else {
                            live.phase.clone()
                        },
                        ..live.clone()
                    };
                }
                JobView {
                    id: id.clone(),
                    kind: e.spec.kind.name().to_owned(),
                    state: e.state.state.name().to_owned(),
                    failure: e.state.failure.clone(),
                    rounds_completed: e.state.rounds,
                    round: e.state.rounds,
                    seq: e.state.seq,
                    ..JobView::default()
                }
            })
            .collect();
        views.sort_by_key(|v| v.seq);
        views
    }
}

/// The service's jobs as the dashboard sees them: the store's list, and
/// each job's consortium (the base file with the job's spec) and log.
struct ServiceJobs {
    shared: Arc<Shared>,
    base: Arc<Consortium>,
}

impl crate::dashboard::Jobs for ServiceJobs {
    fn list(&self) -> Vec<JobView> {
        self.shared.views()
    }

    fn files(&self, id: &str) -> Option<crate::dashboard::JobFiles> {
        let (spec, dir) = {
            let store = self.shared.store.lock().ok()?;
            (store.jobs.get(id)?.spec.clone(), store.job_dir(id))
        };
        let consortium = self.base.with_job(spec, &dir.join("job.toml")).ok()?;
        Some(crate::dashboard::JobFiles {
            consortium: Arc::new(consortium),
            log: dir.join("rounds.log"),
        })
    }
}

fn status_of(v: &JobView) -> pb::JobStatus {
    let (spent, budget) = v.privacy.unwrap_or((0.0, 0.0));
    pb::JobStatus {
        id: v.id.clone(),
        kind: v.kind.clone(),
        state: v.state.clone(),
        round: v.round,
        attempt: v.attempt,
        phase: v.phase.clone().unwrap_or_default(),
        rounds_completed: v.rounds_completed,
        cohort: v.cohort.clone(),
        progress: v.progress.clone().unwrap_or_default(),
        epsilon_spent: spent,
        epsilon_budget: budget,
        failure: v.failure.clone().unwrap_or_default(),
        submitted_seq: v.seq,
    }
}

/// The reason an operator's abort gives, in the log and the job's state.
const ABORTED: &str = "aborted by the operator";

/// How long a signed job command stays valid, either way of the service's
/// clock.
const COMMAND_WINDOW: Duration = Duration::from_secs(60);

/// Most nonces remembered at once: a flood of validly signed commands
/// (only the operator can sign) is refused past this rather than grow.
const MAX_NONCES: usize = 100_000;

/// The operator's job API.
struct Admin {
    shared: Arc<Shared>,
    base: Arc<Consortium>,
    /// Nonces of commands seen within the window, with when they expire.
    seen: Mutex<HashMap<Vec<u8>, SystemTime>>,
}

impl Admin {
    /// Verifies the signature, then the time and nonce: an old, future or
    /// repeated command is refused.
    fn open(&self, req: &pb::AdminRequest) -> Result<Action, Status> {
        let command = envelope::open_admin(req, self.base.roster.coordinator())
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        let now = SystemTime::now();
        let issued = UNIX_EPOCH + Duration::from_millis(command.issued_at_ms);
        let skew = now.duration_since(issued).unwrap_or_else(|e| e.duration());
        if skew > COMMAND_WINDOW {
            return Err(Status::unauthenticated(format!(
                "the command was issued {:.0} s from the service's clock (at most {} s): a replay, or clocks apart",
                skew.as_secs_f64(),
                COMMAND_WINDOW.as_secs()
            )));
        }
        if command.nonce.len() != 16 {
            return Err(Status::invalid_argument(
                "the command's nonce is not 16 bytes",
            ));
        }
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| Status::internal("nonce set poisoned"))?;
        seen.retain(|_, expires| *expires > now);
        if seen.len() >= MAX_NONCES {
            return Err(Status::resource_exhausted(
                "too many job commands in a minute",
            ));
        }
        if seen
            .insert(command.nonce.to_vec(), now + 2 * COMMAND_WINDOW)
            .is_some()
        {
            return Err(Status::unauthenticated(
                "this command was received before (a replay)",
            ));
        }
        command
            .action
            .ok_or_else(|| Status::invalid_argument("the command has no action"))
    }

    fn status(&self, id: &str) -> Result<pb::JobStatus, Status> {
        self.shared
            .views()
            .iter()
            .find(|v| v.id == id)
            .map(status_of)
            .ok_or_else(|| Status::not_found(format!("no job {id:?}")))
    }

    fn submit(&self, text: &str) -> Result<pb::JobStatus, Status> {
        let source = Path::new("<the submitted job spec>");
        let spec = JobSpec::from_toml(source, text)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Checked against the consortium exactly as the file's own [job].
        self.base
            .with_job(spec.clone(), source)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let id = spec.id.clone();
        let seq = self
            .shared
            .store
            .lock()
            .map_err(|_| Status::internal("job store poisoned"))?
            .submit(spec, text)
            .map_err(Status::failed_precondition)?;
        info!(job = %id, seq, "job submitted");
        self.shared.submitted.notify_one();
        self.status(&id)
    }

    fn abort(&self, id: &str) -> Result<pb::JobStatus, Status> {
        {
            let mut store = self
                .shared
                .store
                .lock()
                .map_err(|_| Status::internal("job store poisoned"))?;
            let state = store
                .jobs
                .get(id)
                .map(|e| e.state.state)
                .ok_or_else(|| Status::not_found(format!("no job {id:?}")))?;
            match state {
                JobState::Queued => {
                    store.set(id, JobState::Aborted, Some(ABORTED.into()));
                    info!(job = %id, "queued job aborted");
                }
                JobState::Running => {
                    let mut running = self
                        .shared
                        .running
                        .lock()
                        .map_err(|_| Status::internal("poisoned"))?;
                    match running.as_mut() {
                        Some((rid, stop)) if rid == id => {
                            if let Some(stop) = stop.take() {
                                let _ = stop.send(());
                                info!(job = %id, "abort requested");
                            }
                        }
                        // Running when the service stopped, not started yet
                        // again: it will not be.
                        _ => store.set(id, JobState::Aborted, Some(ABORTED.into())),
                    }
                }
                done => {
                    return Err(Status::failed_precondition(format!(
                        "job {id} is {} already",
                        done.name()
                    )));
                }
            }
        }
        self.status(id)
    }

    fn log(&self, id: &str) -> Result<pb::JobLog, Status> {
        let dir = {
            let store = self
                .shared
                .store
                .lock()
                .map_err(|_| Status::internal("job store poisoned"))?;
            if !store.jobs.contains_key(id) {
                return Err(Status::not_found(format!("no job {id:?}")));
            }
            store.job_dir(id)
        };
        let path = dir.join("rounds.log");
        let round_log = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Status::internal(format!("{}: {e}", path.display()))),
        };
        let spec = dir.join("job.toml");
        let spec_toml = std::fs::read_to_string(&spec)
            .map_err(|e| Status::internal(format!("{}: {e}", spec.display())))?;
        Ok(pb::JobLog {
            round_log: round_log.into(),
            spec_toml,
        })
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for Admin {
    async fn call(
        &self,
        req: Request<pb::AdminRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        let body = match self.open(req.get_ref())? {
            Action::Submit(text) => admin_reply::Body::Submitted(self.submit(&text)?),
            Action::List(_) => admin_reply::Body::List(pb::JobList {
                jobs: self.shared.views().iter().map(status_of).collect(),
            }),
            Action::Status(id) => admin_reply::Body::Status(self.status(&id)?),
            Action::Abort(id) => admin_reply::Body::Aborted(self.abort(&id)?),
            Action::Log(id) => admin_reply::Body::Log(self.log(&id)?),
        };
        Ok(Response::new(pb::AdminReply { body: Some(body) }))
    }
}

/// Each job's actor owns a key; the service keeps the one it was given.
fn copy_key(key: &IdentityKey) -> IdentityKey {
    IdentityKey::from_secret_bytes(&key.secret_bytes())
}

/// Binds the participants' address (`coordinator.listen`), retrying for
/// five seconds while it is in use: the previous job's server, or a
/// coordinator just killed, may still be letting its port go. A port that
/// stays taken is named, with the likeliest cause when it lies in the
/// kernel's ephemeral range (an outgoing connection's source port).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, CoordinatorError> {
    let mut tries = 0;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if tries < 50 && e.kind() == std::io::ErrorKind::AddrInUse => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                let hint = match ephemeral_range() {
                    Some((lo, hi))
                        if e.kind() == std::io::ErrorKind::AddrInUse
                            && (lo..=hi).contains(&addr.port()) =>
                    {
                        format!(
                            " (port {} is in this machine's ephemeral range {lo}-{hi}, where outgoing connections take their source ports: choose a port outside it)",
                            addr.port()
                        )
                    }
                    _ => String::new(),
                };
                return Err(CoordinatorError::Job(format!(
                    "coordinator.listen = {addr}: cannot listen: {e}{hint}"
                )));
            }
        }
    }
}

/// The kernel's range of ephemeral ports (outgoing connections' source
/// ports), where Linux says.
pub fn ephemeral_range() -> Option<(u16, u16)> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(str::parse::<u16>);
    Some((it.next()?.ok()?, it.next()?.ok()?))
}

/// Runs the service until `shutdown` resolves: the admin API on
/// `admin_listen`, the read-only HTTP endpoints on `http_listen`, and the
/// jobs under `state_dir` one after another on `listen`. The consortium
/// file's own `[job]` is submitted at start unless a job of that id exists.
pub async fn serve(
    consortium: Consortium,
    key: IdentityKey,
    tls: Option<ServerTls>,
    factory: Arc<dyn JobFactory>,
    first: Option<(JobSpec, String)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CoordinatorError> {
    crate::check_key(&consortium, &key)?;
    let state_dir = consortium.state_dir.clone().ok_or_else(|| {
        CoordinatorError::Job(format!(
            "{}: coordinator.state_dir is needed to run the service",
            consortium.path.display()
        ))
    })?;
    let metrics = Metrics::new();
    let shared = Arc::new(Shared {
        store: Mutex::new(Store::open(&state_dir)?),
        submitted: Notify::new(),
        running: Mutex::new(None),
        metrics: Arc::clone(&metrics),
    });
    let base = Arc::new(consortium);
    if let Some((spec, text)) = first
        && let Ok(mut store) = shared.store.lock()
        && !store.jobs.contains_key(&spec.id)
    {
        let id = spec.id.clone();
        store.submit(spec, &text).map_err(CoordinatorError::Job)?;
        info!(job = %id, "the consortium file's job submitted");
    }
    let http = match base.http_listen {
        None => None,
        Some(addr) => {
            let jobs = Arc::new(ServiceJobs {
                shared: Arc::clone(&shared),
                base: Arc::clone(&base),
            });
            Some(crate::metrics::bind_http(addr, Arc::clone(&metrics), jobs).await?)
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let admin = match base.admin_listen {
        None => None,
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                CoordinatorError::Job(format!(
                    "coordinator.admin_listen = {addr}: cannot listen: {e}"
                ))
            })?;
            info!(admin = %addr, "job API listening (commands signed by the operator key)");
            let service = Admin {
                shared: Arc::clone(&shared),
                base: Arc::clone(&base),
                seen: Mutex::default(),
            };
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(
                        pb::admin_server::AdminServer::new(service)
                            .max_decoding_message_size(1 << 20)
                            .max_encoding_message_size(usize::MAX),
                    )
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(listener),
                        async move {
                            let _ = stop.wait_for(|s| *s).await;
                        },
                    ),
            ))
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let outcome = run_jobs(&shared, &base, &key, tls, factory, stop_rx).await;
    if let Some(http) = http {
        http.abort();
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    outcome
}

/// The job loop: runs the next job, records how it ended, waits for a
/// submission when none is left.
async fn run_jobs(
    shared: &Arc<Shared>,
    base: &Arc<Consortium>,
    key: &IdentityKey,
    tls: Option<ServerTls>,
    factory: Arc<dyn JobFactory>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), CoordinatorError> {
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let next = shared.store.lock().ok().and_then(|s| s.next());
        let Some((id, spec)) = next else {
            tokio::select! {
                () = shared.submitted.notified() => continue,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
        };
        let dir = shared
            .store
            .lock()
            .map(|s| s.job_dir(&id))
            .map_err(|_| CoordinatorError::Job("job store poisoned".into()))?;
        let fail = |state: JobState, why: String| {
            warn!(job = %id, reason = %why, "job {}", state.name());
            if let Ok(mut s) = shared.store.lock() {
                s.set(&id, state, Some(why));
            }
        };
        let consortium = match base.with_job(spec, &dir.join("job.toml")) {
            Ok(c) => c,
            Err(e) => {
                fail(JobState::Failed, e.to_string());
                continue;
            }
        };
        let driver = match factory.driver(&consortium) {
            Ok(d) => d,
            Err(e) => {
                fail(JobState::Failed, e);
                continue;
            }
        };
        if let Ok(mut s) = shared.store.lock() {
            s.set(&id, JobState::Running, None);
        }
        shared.metrics.job(|j| {
            *j = JobView {
                id: id.clone(),
                kind: consortium.job.kind.name().to_owned(),
                // "waiting" once the actor has opened and synced its round
                // log: a stop before then leaves no log to resume from.
                state: "starting".into(),
                ..JobView::default()
            }
        });
        let (abort_tx, abort_rx) = oneshot::channel();
        if let Ok(mut r) = shared.running.lock() {
            *r = Some((id.clone(), Some(abort_tx)));
        }
        let listener = Listener::new(bind(base.listen).await?, tls.clone());
        info!(job = %id, kind = consortium.job.kind.name(), listen = %base.listen, "job starting");
        let job_stop = {
            let mut stop = stop.clone();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };
        let abort = async move {
            match abort_rx.await {
                Ok(()) => ABORTED.to_owned(),
                // Never aborted: this job ends some other way.
                Err(_) => std::future::pending().await,
            }
        };
        let log_path = dir.join("rounds.log");
        let outcome = crate::run_job(
            listener,
            consortium.clone(),
            copy_key(key),
            driver,
            crate::max_reply_bytes(&consortium),
            log_path.clone(),
            job_stop,
            abort,
            Arc::clone(&shared.metrics),
        )
        .await;
        if let Ok(mut r) = shared.running.lock() {
            *r = None;
        }
        let rounds = shared.metrics.job_view().rounds_completed;
        if let Ok(mut s) = shared.store.lock()
            && let Some(e) = s.jobs.get_mut(&id)
        {
            e.state.rounds = rounds;
        }
        match outcome {
            Ok(report) => {
                let out = dir.join("results");
                match std::fs::create_dir_all(&out)
                    .map_err(|e| format!("{}: {e}", out.display()))
                    .and_then(|()| factory.write_results(&consortium, &report, &out))
                {
                    Ok(()) => {
                        info!(job = %id, results = %out.display(), "job finished");
                        if let Ok(mut s) = shared.store.lock() {
                            s.set(&id, JobState::Finished, None);
                        }
                    }
                    Err(e) => fail(JobState::Failed, format!("writing its results: {e}")),
                }
            }
            Err(CoordinatorError::Abandoned(why)) => {
                fail(JobState::Aborted, why);
                shared.metrics.job(|j| j.state = "aborted".into());
            }
            // The service is stopping: the job stays `running`, resumed from
            // its log at the next start.
            Err(CoordinatorError::ShutDown) => return Ok(()),
            Err(e) => {
                let out = dir.join("results");
                match factory.write_before_failure(&consortium, &log_path, &out) {
                    Ok(0) => {}
                    Ok(n) => {
                        info!(job = %id, results = %out.display(), published = n, "what the job published before it failed is written")
                    }
                    Err(w) => {
                        warn!(job = %id, error = %w, "what the job published before it failed was not written")
                    }
                }
                fail(JobState::Failed, e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port held for a moment (a coordinator just killed) is bound once
    /// it is let go; one held for good is refused, naming the address.
    #[tokio::test]
    async fn binding_waits_for_a_port_let_go_and_names_one_kept() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            drop(held);
        });
        let bound = bind(addr).await.expect("bound once let go");
        assert_eq!(bound.local_addr().expect("addr"), addr);
        release.join().expect("released");
        let e = bind(addr).await.expect_err("still held by `bound`");
        let text = e.to_string();
        assert!(
            text.contains(&format!("coordinator.listen = {addr}")) && text.contains("in use"),
            "{text}"
        );
        if let Some((lo, hi)) = ephemeral_range() {
            assert_eq!(
                text.contains("ephemeral range"),
                (lo..=hi).contains(&addr.port()),
                "{text}"
            );
        }
    }

    #[test]
    fn job_ids_cannot_leave_the_state_directory() {
        for bad in ["../etc", "a/b", ".hidden", "", "a b", "..", "x\\y"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        for good in ["exposure-2026q4", "model_1", "a.b"] {
            assert!(check_id(good).is_ok(), "{good:?}");
        }
    }

    fn spec(id: &str) -> (JobSpec, String) {
        let text = format!(
            "[job]\nid = \"{id}\"\nkind = \"secure-sum\"\ndimension = 3\nfrac_bits = 16\nclip = 1e6\n"
        );
        (
            JobSpec::from_toml(Path::new("t.toml"), &text).expect("spec"),
            text,
        )
    }

    #[test]
    fn jobs_survive_a_restart_in_order_and_the_running_one_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path()).expect("open");
        for id in ["a", "b", "c"] {
            let (s, t) = spec(id);
            store.submit(s, &t).expect("submit");
        }
        let (s, t) = spec("b");
        assert!(store.submit(s, &t).is_err(), "a repeated id is refused");
        store.set("b", JobState::Running, None);
        store.set("a", JobState::Finished, None);
        // An interrupted submission is not a job.
        std::fs::create_dir_all(dir.path().join(".submit-d")).expect("mkdir");
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.jobs.len(), 3);
        assert_eq!(store.next().map(|(id, _)| id).as_deref(), Some("b"));
        assert_eq!(store.jobs["a"].state.state, JobState::Finished);
        assert_eq!(store.jobs["c"].state.seq, 3);
    }

    #[test]
    fn a_damaged_state_file_stops_the_start_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path()).expect("open");
        let (s, t) = spec("a");
        store.submit(s, &t).expect("submit");
        std::fs::write(
            dir.path().join("a/state.json"),
            b"{\"seq\": 1, \"state\": \"runn",
        )
        .expect("write");
        let e = Store::open(dir.path()).err().expect("refused").to_string();
        assert!(e.contains("a/state.json"), "{e}");
    }
}
