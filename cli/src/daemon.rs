//! The two daemons: the coordinator (one job, or the service hosting many)
//! and the participant (one job, or every job its consent policy allows).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use fedcredit_coordinator::{RoundResult, SecureSum};
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_model::job::OptimizerKind;
use fedcredit_participant::config::ParticipantConfig;
use fedcredit_participant::contribution::{Contributor, SeriesInput, VectorInput};
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::Rows;
use fedcredit_participant::monitor::MonitorData;
use fedcredit_participant::{CrashPoint, Settings};
use fedcredit_referee::consortium::{Consortium, JobKind};
use serde::Serialize;

use crate::{CrashAt, credit, keys, say};

/// The published result of a secure-sum job, as written to disk.
#[derive(Debug, Serialize)]
struct SumReport<'a> {
    job: &'a str,
    /// Which sum of a series (absent for a single sum).
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    round: u64,
    attempt: u32,
    contributors: &'a [String],
    sum: &'a [f64],
}

/// Where sum `index` of a secure-sum job is written: `result.json` for a
/// single sum, `result-<index>.json` for each sum of a series.
pub(crate) fn sum_file(out: &Path, rounds: u32, index: u32) -> PathBuf {
    if rounds > 1 {
        out.join(format!("result-{index}.json"))
    } else {
        out.join("result.json")
    }
}

/// Writes every published sum of a secure-sum job (in published order,
/// sum k of a series being the k-th) and returns the last file.
fn write_sums<'a>(
    out: &Path,
    job: &str,
    rounds: u32,
    published: impl IntoIterator<Item = (u64, u32, &'a [String], &'a [f64])>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut last = None;
    for (index, (round, attempt, contributors, sum)) in (0u32..).zip(published) {
        let path = sum_file(out, rounds, index);
        write_sum_report(
            &path,
            &SumReport {
                job,
                index: (rounds > 1).then_some(index),
                round,
                attempt,
                contributors,
                sum,
            },
        )?;
        last = Some(path);
    }
    last.context("the job finished without a published sum")
}

/// Writes `report` to `path` as pretty JSON and a newline, serialized
/// straight into a buffered file: a sum of d values is about 25·d bytes of
/// text, which is never built in memory (it was, twice, for the coordinator
/// at d = 10,000,000).
fn write_sum_report(path: &Path, report: &SumReport<'_>) -> Result<()> {
    use std::io::Write as _;
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer_pretty(&mut file, report)?;
        file.write_all(b"\n")?;
        file.flush()
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// The signal that asked this process to stop, once one has: a daemon
/// stopped on request exits cleanly (status 0) rather than with an error.
static STOPPED_BY: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Installs the SIGINT and SIGTERM handlers now, so that from here on either
/// signal stops the daemon gracefully (a service manager stops it with
/// SIGTERM), and returns a future that resolves on the first of them.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    Ok(async move {
        let name = tokio::select! {
            Some(()) = interrupt.recv() => "SIGINT",
            Some(()) = terminate.recv() => "SIGTERM",
            else => std::future::pending().await,
        };
        let _ = STOPPED_BY.set(name);
        tracing::info!("received {name}; shutting down");
    })
}

/// Whether a [`shutdown_signal`] fired: then a "shut down" error is the
/// requested outcome, not a failure.
fn stopped_on_request() -> bool {
    STOPPED_BY.get().is_some()
}

pub(crate) fn secure_sum_driver(consortium: &Consortium) -> Result<(SecureSum, usize)> {
    match &consortium.job.kind {
        JobKind::SecureSum {
            dimension,
            frac_bits,
            clip,
            rounds,
        } => {
            let fp = FixedPoint::new(*frac_bits, *clip)?;
            Ok((SecureSum::series(*dimension, fp, *rounds), *dimension))
        }
        JobKind::LogisticRegression(_) | JobKind::Scorecard(_) | JobKind::Monitor(_) => {
            anyhow::bail!("{}: the job is not a secure sum", consortium.path.display())
        }
    }
}

/// The driver of a consortium's job.
pub(crate) fn job_driver(
    consortium: &Consortium,
) -> Result<Box<dyn fedcredit_coordinator::JobDriver>> {
    Ok(match &consortium.job.kind {
        JobKind::SecureSum { .. } => Box::new(secure_sum_driver(consortium)?.0),
        JobKind::LogisticRegression(spec) | JobKind::Scorecard(spec) => Box::new(
            fedcredit_coordinator::ModelFit::new(
                spec.clone(),
                &consortium.job.id,
                &hex::encode(consortium.job.hash()),
                fedcredit_referee::plan::noise_cohort(consortium),
            )
            .map_err(anyhow::Error::msg)?,
        ),
        JobKind::Monitor(_) => Box::new(
            fedcredit_coordinator::Monitor::new(&consortium.job).map_err(anyhow::Error::msg)?,
        ),
    })
}

/// The stability report of a monitor job from its published sum, by the
/// job's rules (as every party and the auditor make it).
fn monitor_report(
    consortium: &Consortium,
    sum: &[f64],
) -> Result<fedcredit_model::scorecard::stability::MonitorReport> {
    let mut rules = fedcredit_referee::JobRules::new(
        &consortium.job,
        fedcredit_referee::plan::noise_cohort(consortium),
    )?;
    rules.absorb(sum)?;
    rules
        .monitor_report()
        .cloned()
        .context("the job is not a monitor job")
}

/// Writes `monitor.json` (pretty, with a newline) into `out`; returns its path.
fn write_monitor(
    out: &Path,
    consortium: &Consortium,
    contributors: &[String],
    sum: &[f64],
) -> Result<PathBuf> {
    #[derive(Serialize)]
    struct File<'a> {
        job: &'a str,
        job_spec_hash: String,
        model_job_spec_hash: Option<&'a str>,
        contributors: &'a [String],
        #[serde(flatten)]
        report: fedcredit_model::scorecard::stability::MonitorReport,
    }
    let JobKind::Monitor(spec) = &consortium.job.kind else {
        anyhow::bail!("the job is not a monitor job");
    };
    let file = File {
        job: &consortium.job.id,
        job_spec_hash: hex::encode(consortium.job.hash()),
        model_job_spec_hash: spec.model_job_spec_hash.as_deref(),
        contributors,
        report: monitor_report(consortium, sum)?,
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("monitor.json");
    let mut text = serde_json::to_string_pretty(&file).context("writing the report")?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Writes a finished job's results into `out`: `result.json` for a secure
/// sum, `model.json` and `metrics.json` for a model. `print`: say them on
/// stdout too (the one-job command).
fn write_results(
    consortium: &Consortium,
    report: &fedcredit_coordinator::JobReport,
    out: &Path,
    print: bool,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    match &report.model {
        None if matches!(consortium.job.kind, JobKind::Monitor(_)) => {
            let last: &RoundResult = report
                .rounds
                .last()
                .context("the job finished without a round")?;
            let path = write_monitor(out, consortium, &last.contributors, &last.sum)?;
            if print {
                say(&format!("stability report: {}", path.display()));
            }
            tracing::info!(result = %path.display(), "stability report written");
        }
        None => {
            let rounds = consortium.job.kind.sums();
            let path = write_sums(
                out,
                &consortium.job.id,
                rounds,
                report
                    .rounds
                    .iter()
                    .map(|r: &RoundResult| (r.round, r.attempt, &r.contributors[..], &r.sum[..])),
            )?;
            if rounds > 1 {
                if print {
                    say(&format!(
                        "{} sums: {} … {}",
                        report.rounds.len(),
                        sum_file(out, rounds, 0).display(),
                        path.display()
                    ));
                }
            } else if print {
                // Said as written, read back from the file a buffer at a time.
                let mut file = std::fs::File::open(&path)
                    .with_context(|| format!("reading back {}", path.display()))?;
                std::io::copy(&mut file, &mut std::io::stdout().lock())
                    .context("printing the result")?;
            }
            tracing::info!(result = %path.display(), "result written");
        }
        Some(model) => {
            credit::write_model(out, model, &report.membership, &[])?;
            let (path, mpath) = (out.join("model.json"), out.join("metrics.json"));
            if print {
                say(&format!(
                    "model: {}  metrics: {}",
                    path.display(),
                    mpath.display()
                ));
            }
        }
    }
    Ok(())
}

/// The service's jobs, made and written as the one-job command does.
struct Jobs;

impl fedcredit_coordinator::host::JobFactory for Jobs {
    fn driver(
        &self,
        consortium: &Consortium,
    ) -> std::result::Result<Box<dyn fedcredit_coordinator::JobDriver>, String> {
        job_driver(consortium).map_err(|e| format!("{e:#}"))
    }

    fn write_results(
        &self,
        consortium: &Consortium,
        report: &fedcredit_coordinator::JobReport,
        out: &Path,
    ) -> std::result::Result<(), String> {
        write_results(consortium, report, out, false).map_err(|e| format!("{e:#}"))
    }

    fn write_before_failure(
        &self,
        consortium: &Consortium,
        log: &Path,
        out: &Path,
    ) -> std::result::Result<usize, String> {
        if consortium.job.kind.sums() < 2 {
            return Ok(0);
        }
        match write_sums_before_failure(consortium, log, out) {
            Ok(written) => Ok(written.map_or(0, |(n, _)| n)),
            Err(e) => Err(format!("{e:#}")),
        }
    }
}

/// The `[job]` table of a consortium file as a job spec file's text.
fn job_table(config: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let value: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", config.display()))?;
    let job = value
        .get("job")
        .cloned()
        .with_context(|| format!("{}: no [job] table", config.display()))?;
    let mut file = toml::Table::new();
    file.insert("job".into(), job);
    toml::to_string(&file).context("writing the job table")
}

pub(crate) async fn coordinator(
    config: &Path,
    out: Option<PathBuf>,
    log: Option<PathBuf>,
    abandon: Option<String>,
) -> Result<()> {
    let shutdown = shutdown_signal()?;
    let consortium = Consortium::load(config)?;
    let key_file = consortium.coordinator_key_file.clone().with_context(|| {
        format!(
            "{}: `coordinator.key_file`: the coordinator's secret key file is required to run it",
            config.display()
        )
    })?;
    let key = keys::load(&key_file)?;
    if let Some(dir) = &consortium.state_dir {
        if out.is_some() || log.is_some() || abandon.is_some() {
            anyhow::bail!(
                "{}: coordinator.state_dir is set, so this is the service: each job's round log and \
                 results are under {}, and `fedcredit job --config {} abort ID` ends a job \
                 (--out, --log and --abandon are for a single job)",
                config.display(),
                dir.display(),
                config.display()
            );
        }
        let tls = fedcredit_transport::setup::coordinator(&consortium, &key)?;
        let first = (consortium.job.clone(), job_table(config)?);
        tracing::info!(state_dir = %dir.display(), listen = %consortium.listen, "coordinator service starting (jobs run one at a time)");
        return match fedcredit_coordinator::host::serve(
            consortium,
            key,
            tls,
            Arc::new(Jobs),
            Some(first),
            shutdown,
        )
        .await
        {
            Err(fedcredit_coordinator::CoordinatorError::ShutDown) => Ok(()),
            r => Ok(r?),
        };
    }
    let job_id = consortium.job.id.clone();
    let out = out.unwrap_or_else(|| config.parent().unwrap_or(Path::new(".")).join(&job_id));
    let log_path = log.unwrap_or_else(|| consortium.coordinator_log_file.clone());
    tracing::info!(log = %log_path.display(), "round log");
    let driver = job_driver(&consortium)?;
    if let Some(reason) = abandon {
        fedcredit_coordinator::abandon(consortium, key, driver, &log_path, &reason)?;
        say(&format!(
            "job {job_id} abandoned; {} keeps its finished rounds for the auditor",
            log_path.display()
        ));
        return Ok(());
    }
    let max_bytes = fedcredit_coordinator::max_reply_bytes(&consortium);
    let tls = fedcredit_transport::setup::coordinator(&consortium, &key)?;
    let listener = fedcredit_coordinator::host::bind(consortium.listen).await?;
    match &tls {
        Some(_) => {
            tracing::info!(listen = %listener.local_addr()?, trust = consortium.tls.trust_name(), "coordinator listening (mutual TLS 1.3)")
        }
        None => {
            tracing::warn!(listen = %listener.local_addr()?, "coordinator listening in PLAINTEXT (coordinator.plaintext = true; loopback only); never for a deployment")
        }
    }
    let consortium_for_results = consortium.clone();
    let report = match fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, tls),
        consortium,
        key,
        driver,
        max_bytes,
        log_path.clone(),
        shutdown,
    )
    .await
    {
        // The coordinator has logged where it left the job.
        Err(fedcredit_coordinator::CoordinatorError::ShutDown) if stopped_on_request() => {
            return Ok(());
        }
        Err(e) => {
            if consortium_for_results.job.kind.sums() > 1 {
                let written = write_sums_before_failure(&consortium_for_results, &log_path, &out);
                say_sums_before_failure(&consortium_for_results, &out, written);
            }
            return Err(e.into());
        }
        Ok(r) => r,
    };
    write_results(&consortium_for_results, &report, &out, true)
}

/// Says which sums published before a series failed were written (or warns
/// that they could not be).
fn say_sums_before_failure(
    consortium: &Consortium,
    out: &Path,
    written: Result<Option<(usize, PathBuf)>>,
) {
    match written {
        Ok(Some((1, last))) => say(&format!(
            "the sum published before the failure: {}",
            last.display()
        )),
        Ok(Some((n, last))) => say(&format!(
            "the {n} sums published before the failure: {} … {}",
            sum_file(out, consortium.job.kind.sums(), 0).display(),
            last.display()
        )),
        Ok(None) => {}
        Err(w) => {
            tracing::warn!(error = %format!("{w:#}"), "the sums published before the failure were not written")
        }
    }
}

/// After a secure-sum series fails: writes each sum published before the
/// failure, as `result-<index>.json`, from the coordinator-signed outcomes in
/// the round log, replayed by the referee as every party replays them;
/// before, they were only in the log. Returns how many and the last file.
fn write_sums_before_failure(
    consortium: &Consortium,
    log_path: &Path,
    out: &Path,
) -> Result<Option<(usize, PathBuf)>> {
    use fedcredit_proto::roundlog;
    use fedcredit_proto::v1::log_body::Entry;
    let bytes =
        std::fs::read(log_path).with_context(|| format!("reading {}", log_path.display()))?;
    let log = roundlog::read(&bytes, Some(consortium.roster.coordinator()));
    let outcomes: Vec<_> = log
        .entries
        .iter()
        .filter_map(|e| match &e.body.entry {
            Some(Entry::RoundCompleted(rc)) => rc.outcome.clone(),
            _ => None,
        })
        .collect();
    if outcomes.is_empty() {
        return Ok(None);
    }
    let referee = fedcredit_referee::Referee::replay(consortium, &outcomes)
        .with_context(|| format!("{}: the published rounds", log_path.display()))?;
    let last = write_published_sums(out, consortium, referee.history())?;
    Ok(Some((referee.history().len(), last)))
}

/// Writes the sums of a secure-sum job as the referee replayed them (each
/// party's own account of what was published); returns the last file.
fn write_published_sums(
    out: &Path,
    consortium: &Consortium,
    published: &[Arc<fedcredit_referee::Published>],
) -> Result<PathBuf> {
    let names: Vec<Vec<String>> = published
        .iter()
        .map(|p| {
            p.contributors
                .iter()
                .map(|i| consortium.roster.name_of(*i))
                .collect()
        })
        .collect();
    write_sums(
        out,
        &consortium.job.id,
        consortium.job.kind.sums(),
        published
            .iter()
            .zip(&names)
            .map(|(p, n)| (p.round, p.attempt, &n[..], &p.sum[..])),
    )
}

pub(crate) async fn participant(
    config: &Path,
    crash_at: Option<CrashAt>,
    serve: bool,
) -> Result<()> {
    let shutdown = shutdown_signal()?;
    // Local checks first (config, consortium file, key, every data row), so
    // that a local error is reported at once, before any network wait.
    let cfg = ParticipantConfig::load(config)?;
    let key = keys::load(&cfg.key_file)?;
    let me = cfg.consortium.roster.member(cfg.id.as_str())?;
    if me.key != key.public() {
        // Nothing can be told to the coordinator: it would not trust a
        // message signed with this key.
        return Err(fedcredit_participant::ParticipantError::KeyMismatch {
            id: cfg.id.to_string(),
            consortium: cfg.consortium.path.clone(),
        }
        .into());
    }
    let tls = if cfg.plaintext {
        tracing::warn!(coordinator = %cfg.coordinator, "PLAINTEXT: no TLS to the coordinator (allowed on loopback by plaintext = true in this config and in consortium.toml); never for a deployment");
        None
    } else {
        let tls = fedcredit_transport::setup::member(
            &cfg.consortium,
            &cfg.id,
            &key,
            cfg.cert_file.as_deref(),
            cfg.tls_key_file.as_deref(),
        )?;
        tracing::info!(
            trust = cfg.consortium.tls.trust_name(),
            "mutual TLS 1.3 with the coordinator"
        );
        Some(tls)
    };
    if let Some(addr) = cfg.metrics_listen {
        fedcredit_participant::metrics::serve(addr)
            .await
            .with_context(|| format!("metrics_listen = {addr}: cannot listen"))?;
        tracing::info!(metrics = %addr, "serving /metrics");
    }
    let settings = Settings {
        id: cfg.id.clone(),
        coordinator: cfg.coordinator.clone(),
        consortium: cfg.consortium.clone(),
        connect_timeout: cfg.connect_timeout,
        tls,
        crash_at: crash_at.map(|c| match c {
            CrashAt::ShareKeys => CrashPoint::ShareKeys,
            CrashAt::MaskedInput => CrashPoint::MaskedInput,
            CrashAt::MidInput => CrashPoint::MidInput,
            CrashAt::Unmask => CrashPoint::Unmask,
        }),
        chunk_words: fedcredit_proto::chunks::MAX_CHUNK_WORDS,
        journal: Some(cfg.journal.clone()),
    };
    if !serve {
        if let Some(policy) = &cfg.policy
            && let Err(refusal) = policy.check(&cfg.consortium)
        {
            refuse(&settings, &key, &refusal).await;
            return Err(refusal.into());
        }
        let out = cfg.results.clone();
        return one_job(&cfg, settings, key, &out, shutdown).await;
    }
    serve_jobs(&cfg, settings, key, shutdown).await
}

/// Tells the coordinator, by reason code only, that this member refuses a
/// job its consent policy does not allow; the detail stays in this log.
async fn refuse(
    settings: &Settings,
    key: &fedcredit_crypto::identity::IdentityKey,
    refusal: &fedcredit_participant::policy::Refusal,
) {
    tracing::warn!(job = %refusal.job, reason = refusal.code.label(), detail = %refusal.detail, "refusing the job (consent policy)");
    let metrics = &fedcredit_participant::metrics::METRICS;
    metrics.job_ended("refused");
    metrics.refused(refusal.code);
    let patience = std::time::Duration::from_secs(5);
    if let Err(e) = fedcredit_participant::leave(settings, key, refusal.code, patience).await {
        tracing::warn!(error = %e, "could not tell the coordinator");
    }
}

/// `participant --serve`: stays connected across jobs, takes part in each
/// job the coordinator offers that the `[policy]` allows, refuses the others
/// with a reason code, and keeps each job's results in `results/<job id>`.
async fn serve_jobs(
    cfg: &ParticipantConfig,
    settings: Settings,
    key: fedcredit_crypto::identity::IdentityKey,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use fedcredit_participant::ParticipantError;
    let policy = cfg.policy.clone().with_context(|| {
        format!(
            "{}: --serve takes part in whichever jobs the coordinator offers, so the config needs a \
             [policy] table saying which (e.g. kinds = [\"logistic-regression\"])",
            cfg.path.display()
        )
    })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = || *stop_rx.borrow();
    let pause = |secs: u64| {
        let mut stop = stop_rx.clone();
        async move {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(secs)) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
    };
    // Jobs finished, failed or refused by this process: not joined again.
    let mut settled = std::collections::BTreeSet::new();
    let mut last_wait = None;
    tracing::info!(coordinator = %settings.coordinator, "serving jobs as the consent policy allows");
    loop {
        if stopped() {
            return Ok(());
        }
        let spec = match fedcredit_participant::offered_job(&settings).await {
            Ok(spec) => spec,
            Err(ParticipantError::Unreachable { reason, .. }) => {
                if last_wait.as_deref() != Some(reason.as_str()) {
                    tracing::info!(reason = %reason, "no job offered yet (the coordinator is between jobs or unreachable); waiting");
                    last_wait = Some(reason);
                }
                pause(1).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the coordinator's job offer is refused");
                pause(2).await;
                continue;
            }
        };
        last_wait = None;
        if settled.contains(&spec.id) {
            pause(1).await;
            continue;
        }
        let id = spec.id.clone();
        let consortium = match cfg
            .consortium
            .with_job(spec, Path::new("<the job the coordinator offers>"))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "the offered job does not fit the consortium; not taking part");
                settled.insert(id);
                continue;
            }
        };
        let job_settings = Settings {
            consortium,
            ..settings.clone()
        };
        if let Err(refusal) = policy.check(&job_settings.consortium) {
            refuse(&job_settings, &key, &refusal).await;
            settled.insert(id);
            continue;
        }
        tracing::info!(job = %id, kind = job_settings.consortium.job.kind.name(), "taking part in the job (the consent policy allows it)");
        let out = cfg.results.join(&id);
        let mut stop = stop_rx.clone();
        let job_stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let key_copy =
            fedcredit_crypto::identity::IdentityKey::from_secret_bytes(&key.secret_bytes());
        match one_job(cfg, job_settings, key_copy, &out, job_stop).await {
            Ok(()) => {
                tracing::info!(job = %id, results = %out.display(), "job done");
                fedcredit_participant::metrics::METRICS.job_ended("finished");
                settled.insert(id);
            }
            Err(_) if stopped() => return Ok(()),
            Err(e) => {
                let unreachable = e
                    .downcast_ref::<ParticipantError>()
                    .is_some_and(|p| matches!(p, ParticipantError::Unreachable { .. }));
                tracing::warn!(job = %id, error = %format!("{e:#}"), "the job ended without a result");
                // A coordinator that went away may resume the job: rejoin it
                // when it is offered again (the journal keeps keys unused).
                if !unreachable {
                    fedcredit_participant::metrics::METRICS.job_ended("failed");
                    settled.insert(id);
                }
            }
        }
    }
}

/// Takes part in `settings.consortium.job` with this member's data, and
/// writes the result it replayed into `out`.
async fn one_job(
    cfg: &ParticipantConfig,
    settings: Settings,
    key: fedcredit_crypto::identity::IdentityKey,
    out: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let config = cfg.path.as_path();
    let loaded: Result<Box<dyn Contributor>, fedcredit_participant::ParticipantError> =
        match &settings.consortium.job.kind {
            JobKind::SecureSum {
                dimension, rounds, ..
            } => {
                let path = cfg.input.as_ref().with_context(|| {
                    format!(
                        "{}: `input`: a secure-sum job needs the file of values to contribute",
                        config.display()
                    )
                })?;
                if *rounds > 1 {
                    SeriesInput::open(path, *rounds, *dimension)
                        .map(|v| Box::new(v) as Box<dyn Contributor>)
                } else {
                    VectorInput::from_file(path).map(|v| Box::new(v) as Box<dyn Contributor>)
                }
            }
            JobKind::LogisticRegression(spec) | JobKind::Scorecard(spec) => {
                let path = cfg.data.as_ref().with_context(|| {
                format!(
                    "{}: `data`: a credit-model job needs the CSV or Parquet file of training rows",
                    config.display()
                )
            })?;
                // Held in memory when the matrix fits `max_memory_mb`, else
                // streamed from the (Parquet) file every round; checked either way.
                Rows::open(path, &spec.schema, cfg.max_memory).and_then(|train| {
                    if matches!(spec.optimizer, OptimizerKind::Fedavg)
                        && !matches!(train, Rows::InMemory(_))
                    {
                        return Err(fedcredit_proto::WireError::InvalidConfig {
                            file: config.to_owned(),
                            key: "max_memory_mb".into(),
                            expected: format!(
                                "room for the training matrix of {} ({} rows): the job's FedAvg \
                                 rounds shuffle the rows in memory, which a streamed file cannot",
                                path.display(),
                                train.rows()
                            ),
                        }
                        .into());
                    }
                    let left = cfg.max_memory.minus(train.memory_bytes());
                    let test = cfg
                        .test
                        .as_ref()
                        .map(|t| Rows::open(t, &spec.schema, left))
                        .transpose()?;
                    let data = CreditData::from_rows(train, test);
                    tracing::info!(rows = data.train_rows(), "training rows checked");
                    Ok(Box::new(data) as Box<dyn Contributor>)
                })
            }
            JobKind::Monitor(spec) => MonitorData::load(cfg, spec).map(|m| {
                tracing::info!(
                    development = m.development_rows(),
                    applicants = m.applicant_rows(),
                    "development rows and new applicants counted"
                );
                Box::new(m) as Box<dyn Contributor>
            }),
        };
    let mut contributor = match loaded {
        Ok(c) => c,
        Err(e) => {
            // The error names a cell value (row data): it stays here. Only
            // the reason code goes to the coordinator, if it answers soon.
            tracing::error!(error = %e, "the data fails the job's checks; leaving the job");
            let patience = std::time::Duration::from_secs(5);
            tracing::info!(coordinator = %settings.coordinator, ?patience, "telling the coordinator why this member leaves");
            if let Err(l) =
                fedcredit_participant::leave(&settings, &key, e.reason_code(), patience).await
            {
                tracing::warn!(error = %l, "could not tell the coordinator");
            }
            return Err(e.into());
        }
    };
    let settings_consortium = settings.consortium.clone();
    let settings_kind = &settings_consortium.job.kind;
    let report =
        match fedcredit_participant::run(settings, key, contributor.as_mut(), shutdown).await {
            // The participant has logged where it left the job.
            Err(fedcredit_participant::ParticipantError::ShutDown) if stopped_on_request() => {
                return Ok(());
            }
            // A series that failed (or that this member left) after publishing
            // sums: this member's own replay of them is written, as the
            // coordinator writes its own.
            Err(e) if settings_kind.sums() > 1 && e.published_before().is_some() => {
                if let Some(published) = e.published_before() {
                    let written = write_published_sums(out, &settings_consortium, published)
                        .map(|last| Some((published.len(), last)));
                    say_sums_before_failure(&settings_consortium, out, written);
                }
                return Err(e.into());
            }
            r => r?,
        };
    for r in &report.rounds {
        tracing::info!(
            round = r.round,
            contributors = r.contributors.len(),
            values = r.sum.len(),
            "round published"
        );
    }
    let result = report
        .result
        .context("the job finished without a result to replay")?;
    match (&result.model, result.published.last()) {
        (Some(model), _) => {
            credit::write_model(out, model, &result.membership, &[])?;
            tracing::info!(results = %out.display(), "model.json and metrics.json written (replayed from the published rounds)");
        }
        (None, Some(last)) if matches!(settings_kind, JobKind::Monitor(_)) => {
            let contributors: Vec<String> = last
                .contributors
                .iter()
                .map(|p| settings_consortium.roster.name_of(*p))
                .collect();
            let path = write_monitor(out, &settings_consortium, &contributors, &last.sum)?;
            tracing::info!(result = %path.display(), "stability report written (replayed from the published round)");
        }
        (None, Some(_)) => {
            let path = write_published_sums(out, &settings_consortium, &result.published)?;
            tracing::info!(result = %path.display(), "result written (replayed from the published rounds)");
        }
        (None, None) => anyhow::bail!("the job finished without a published round"),
    }
    Ok(())
}
