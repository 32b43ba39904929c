//! A whole credit-model consortium inside this process: a coordinator and
//! one participant per data set, talking real gRPC over loopback with fresh
//! keys, exactly as separate daemons would. Used by `fedcredit local` and
//! `fedcredit demo`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use fedcredit_coordinator::{ModelFit, ProgressLine};
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::secagg::Thresholds;
use fedcredit_model::Metrics;
use fedcredit_model::job::{FittedModel, ModelJobSpec};
use fedcredit_participant::Settings;
use fedcredit_participant::credit::CreditData;
use fedcredit_proto::roster::{ParticipantId, Roster};
use fedcredit_referee::Membership;
use fedcredit_referee::consortium::{
    CohortPolicy, Consortium, JobKind, JobSpec, ProtocolSettings, TlsSettings,
};
use rand::rngs::OsRng;
use serde::Serialize;

/// One party of an in-process consortium.
#[derive(Debug)]
pub struct Party {
    /// Its id.
    pub id: String,
    /// Its rows.
    pub data: CreditData,
}

/// What an in-process job produced.
#[derive(Debug)]
pub struct Outcome {
    /// The joint model.
    pub model: FittedModel,
    /// Each party's own metrics on its own held-out rows, and its training rows.
    pub parties: Vec<PartySummary>,
    /// Whose rows are in the model.
    pub membership: Membership,
}

/// One party's view, for metrics.json.
#[derive(Debug, Clone, Serialize)]
pub struct PartySummary {
    /// The party.
    pub id: String,
    /// Its training rows.
    pub train_rows: usize,
    /// The joint model on its own held-out rows (computed by the party alone).
    pub local_metrics: Option<Metrics>,
}

/// Runs a credit-model job over loopback gRPC among `parties`.
pub async fn run(
    job_id: &str,
    spec: ModelJobSpec,
    parties: Vec<Party>,
    log_path: &std::path::Path,
    on_progress: impl Fn(&ProgressLine) + Send + 'static,
) -> Result<Outcome> {
    let n = parties.len();
    if n == 0 {
        bail!("no data sets given");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let addr = listener.local_addr()?;
    let coordinator_key = IdentityKey::generate(&mut OsRng);
    let keys: Vec<IdentityKey> = parties
        .iter()
        .map(|_| IdentityKey::generate(&mut OsRng))
        .collect();
    let mut members = Vec::with_capacity(n);
    for (p, k) in parties.iter().zip(&keys) {
        members.push((ParticipantId::new(&p.id)?, k.public()));
    }
    let roster = Roster::new(members, coordinator_key.public())?;
    // Everything here belongs to one owner, so the minimum cohort only has to
    // fit the number of data sets; the colluder bound and threshold keep
    // their defaults, checked by the same rule as a consortium file's.
    let max_colluders = Thresholds::default_colluders(n);
    let thresholds = Thresholds::new(
        n,
        Thresholds::default_threshold(n, max_colluders),
        max_colluders,
        n.min(3),
    )
    .context("the in-process consortium's thresholds")?;
    let job = JobSpec {
        id: job_id.to_owned(),
        cohort: CohortPolicy::Fixed,
        // One owner, all its data: a model without one of its files is not the job asked for.
        require_all_members: true,
        kind: if spec.scorecard.is_some() {
            JobKind::Scorecard(spec.clone())
        } else {
            JobKind::LogisticRegression(spec.clone())
        },
    };
    let spec_hash = hex::encode(job.hash());
    let consortium = Consortium {
        path: "<in-process consortium>".into(),
        listen: addr,
        http_listen: None,
        state_dir: None,
        admin_listen: None,
        coordinator_key_file: None,
        coordinator_log_file: log_path.to_owned(),
        roster,
        protocol: ProtocolSettings {
            thresholds,
            join_deadline: Duration::from_secs(60),
            // Participants compute their contribution before advertising keys.
            phase_deadline: Duration::from_secs(600),
            max_attempts: 1,
            epoch_slots: None,
        },
        job,
        // Mutual TLS on loopback too: the tested path is the deployed path.
        tls: TlsSettings::default(),
    };
    // The consortium file an auditor checks the round log against.
    let dir = log_path.parent().unwrap_or(std::path::Path::new("."));
    let toml_path = dir.join("consortium.toml");
    std::fs::write(&toml_path, consortium_toml(&consortium)?)
        .with_context(|| format!("writing {}", toml_path.display()))?;
    // And the coordinator's key (mode 0600), which signs the job's
    // regulator report (`fedcredit report --key`): this consortium's only
    // operator is whoever ran this command.
    crate::keys::save(&coordinator_key, &dir.join("coordinator.key"), true)?;
    let max_bytes = fedcredit_coordinator::max_reply_bytes(&consortium);
    let driver = ModelFit::new(
        spec,
        job_id,
        &spec_hash,
        fedcredit_referee::plan::noise_cohort(&consortium),
    )
    .map_err(anyhow::Error::msg)?
    .on_progress(on_progress);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let tls = fedcredit_transport::setup::coordinator(&consortium, &coordinator_key)?;
    let coordinator = tokio::spawn(fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, tls),
        consortium.clone(),
        coordinator_key,
        Box::new(driver),
        max_bytes,
        crate::demo_sum::fresh_log(log_path)?,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let mut tasks = Vec::with_capacity(n);
    for (party, key) in parties.into_iter().zip(keys) {
        let id = ParticipantId::new(&party.id)?;
        let tls = fedcredit_transport::setup::member(&consortium, &id, &key, None, None)?;
        let settings = Settings {
            id,
            coordinator: format!("https://{addr}"),
            consortium: consortium.clone(),
            connect_timeout: Duration::from_secs(60),
            crash_at: None,
            chunk_words: fedcredit_proto::chunks::MAX_CHUNK_WORDS,
            journal: None,
            tls: Some(tls),
        };
        let mut data = party.data;
        let id = party.id;
        tasks.push(tokio::spawn(async move {
            let r =
                fedcredit_participant::run(settings, key, &mut data, std::future::pending()).await;
            (id, data, r)
        }));
    }
    let report = coordinator.await.context("coordinator task")??;
    drop(stop_tx);
    let mut summaries = Vec::with_capacity(n);
    for t in tasks {
        let (id, data, r) = t.await.context("participant task")?;
        r.with_context(|| format!("participant {id}"))?;
        summaries.push(PartySummary {
            id,
            train_rows: data.train_rows(),
            local_metrics: data.local_metrics(),
        });
    }
    let model = report
        .model
        .clone()
        .context("the job finished without a model")?;
    Ok(Outcome {
        model,
        parties: summaries,
        membership: report.membership,
    })
}

/// metrics.json.
#[derive(Debug, Serialize)]
pub struct MetricsFile<'a> {
    /// The job.
    pub job_id: &'a str,
    /// Pooled metrics on all held-out rows, from the secure evaluation round.
    pub pooled: Option<Metrics>,
    /// The pooled calibration table by score band (Brier, Hosmer–Lemeshow),
    /// from the same evaluation round; absent without held-out rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<&'a fedcredit_model::metrics::Calibration>,
    /// Optimization rounds used.
    pub rounds: usize,
    /// Whether the optimizer converged.
    pub converged: bool,
    /// The (ε, δ) the model was trained and evaluated under; `null` for a
    /// job with `privacy = "none"` (exact sums and histograms).
    pub privacy: Option<fedcredit_model::privacy::PrivacyReport>,
    /// Whose rows trained the model: contributors, dropouts, absentees.
    pub membership: &'a Membership,
    /// Per party: training rows and the joint model on its own held-out rows
    /// (only the parties this process ran).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub parties: &'a [PartySummary],
}

/// model.json: the fitted model and the statement of whose rows trained it
/// (`score` reads the model and ignores the statement).
#[derive(Debug, Serialize)]
pub struct ModelFile<'a> {
    /// The model.
    #[serde(flatten)]
    pub model: &'a FittedModel,
    /// Whose rows trained it.
    pub membership: &'a Membership,
}

/// Writes model.json and metrics.json into `dir`.
pub fn write_outputs(dir: &std::path::Path, outcome: &Outcome) -> Result<()> {
    write_model(dir, &outcome.model, &outcome.membership, &outcome.parties)
}

/// Writes model.json and metrics.json for `model` into `dir`; `parties` are
/// the per-party summaries this process may show (its own).
pub fn write_model(
    dir: &std::path::Path,
    model: &FittedModel,
    membership: &Membership,
    parties: &[PartySummary],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = serde_json::to_string_pretty(&ModelFile { model, membership })?;
    std::fs::write(dir.join("model.json"), file + "\n")
        .with_context(|| format!("writing {}/model.json", dir.display()))?;
    let metrics = MetricsFile {
        job_id: &model.job_id,
        pooled: model.metrics,
        calibration: model.calibration.as_ref(),
        rounds: model.rounds,
        converged: model.converged,
        privacy: model.privacy,
        membership,
        parties,
    };
    std::fs::write(
        dir.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)? + "\n",
    )
    .with_context(|| format!("writing {}/metrics.json", dir.display()))?;
    Ok(())
}

/// One line on a pooled calibration table.
pub fn describe_calibration(c: &fedcredit_model::metrics::Calibration) -> String {
    format!(
        "calibration ({} score bands in metrics.json): Brier {:.4}, Hosmer–Lemeshow χ² {:.2} (df {}), p = {:.3}",
        c.bands.len(),
        c.brier,
        c.hosmer_lemeshow,
        c.hl_df,
        c.hl_p_value
    )
}

/// Formats an optional metric.
pub fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.4}"))
}

/// The consortium file of an in-process consortium (the public keys and the
/// job), so that `fedcredit audit verify` can check its round log.
pub fn consortium_toml(c: &Consortium) -> Result<String> {
    #[derive(Serialize)]
    struct File<'a> {
        coordinator: Coordinator,
        protocol: Protocol,
        job: &'a JobSpec,
        participants: Vec<Member>,
    }
    #[derive(Serialize)]
    struct Coordinator {
        listen: String,
        public_key: String,
    }
    #[derive(Serialize)]
    struct Protocol {
        max_colluders: usize,
        threshold: usize,
        min_cohort: usize,
    }
    #[derive(Serialize)]
    struct Member {
        id: String,
        public_key: String,
    }
    let file = File {
        coordinator: Coordinator {
            listen: c.listen.to_string(),
            public_key: c.roster.coordinator().to_hex(),
        },
        protocol: Protocol {
            max_colluders: c.protocol.thresholds.max_colluders(),
            threshold: c.protocol.thresholds.threshold(),
            min_cohort: c.protocol.thresholds.min_cohort(),
        },
        job: &c.job,
        participants: c
            .roster
            .members()
            .map(|m| Member {
                id: m.id.to_string(),
                public_key: m.key.to_hex(),
            })
            .collect(),
    };
    Ok(format!(
        "# The in-process consortium of this run: check its round log with\n\
         # fedcredit audit verify rounds.log --consortium consortium.toml\n{}",
        toml::to_string(&file).context("writing the consortium file")?
    ))
}

/// A private job's settings with every numeric feature's bounds taken from
/// `ranges` (per encoded column, its smallest and largest value in the
/// files; see [`crate::local::column_ranges`]). Only for `fedcredit local`
/// and benchmarks: bounds read from the rows are themselves about the
/// rows, so a real consortium fixes them in the job spec from public
/// knowledge.
pub fn privacy_from_ranges(
    schema: &fedcredit_model::Schema,
    ranges: &[[f64; 2]],
    epsilon: f64,
    delta: f64,
) -> fedcredit_model::privacy::PrivacySpec {
    use fedcredit_model::Feature;
    let mut bounds = std::collections::BTreeMap::new();
    let mut col = 0;
    for f in &schema.features {
        if let Feature::Numeric { name } = f {
            let [mut lo, mut hi] = ranges
                .get(col)
                .copied()
                .unwrap_or([f64::INFINITY, f64::NEG_INFINITY]);
            if !(lo.is_finite() && hi.is_finite()) {
                (lo, hi) = (0.0, 1.0);
            }
            if hi <= lo {
                (lo, hi) = (lo - 0.5, hi + 0.5);
            }
            bounds.insert(name.clone(), [lo, hi]);
        }
        col += f.encoded_width();
    }
    fedcredit_model::privacy::PrivacySpec::with_defaults(epsilon, delta, bounds)
}

/// "ε 0.98 of 1 spent (δ 1e-6)", or "no differential privacy".
pub fn describe_privacy(model: &FittedModel) -> String {
    match model.privacy {
        Some(p) => format!(
            "differential privacy: ε {:.3} of {} spent (δ {:e}) over {} noisy rounds",
            p.epsilon_spent, p.epsilon, p.delta, p.rounds
        ),
        None => "no differential privacy (privacy = \"none\"): exact sums and histograms".into(),
    }
}
