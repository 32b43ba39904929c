//! What a job computes, round by round. The round machinery is the same for
//! every job; a [`JobDriver`] says what each round aggregates and takes the
//! unmasked sums. The plans come from `fedcredit_referee`, the same rules
//! every participant and the auditor replay, so the coordinator cannot plan
//! a round they would not accept.

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::wide::WideFixed;
use fedcredit_model::job::{FittedModel, ModelJob, ModelJobSpec, Progress};
use fedcredit_model::privacy::NoiseCohort;
use fedcredit_proto::codec::Codec;
use fedcredit_referee::JobRules;
use tracing::info;

pub use fedcredit_referee::{RoundPlan, max_words};

/// A round's published result.
#[derive(Clone, Debug)]
pub struct RoundResult {
    /// The round number.
    pub round: u64,
    /// The attempt that completed.
    pub attempt: u32,
    /// The decoded sum of the contributors' inputs.
    pub sum: Vec<f64>,
    /// Whose inputs are in the sum (U3), by id.
    pub contributors: Vec<String>,
}

/// Drives a job: plans rounds and consumes their results.
pub trait JobDriver: Send + 'static {
    /// The next round to run, or `None` when the job is done.
    fn next_round(&mut self) -> Result<Option<RoundPlan>, String>;
    /// Takes the result of the round just finished; returns what the job made
    /// of it as JSON (it goes into the round log, for the auditor).
    fn finish_round(&mut self, result: &RoundResult) -> Result<String, String>;
    /// The fitted model of a model job, once done.
    fn model(&self) -> Option<FittedModel> {
        None
    }
    /// (ε spent so far, ε of the whole job) of a private job.
    fn privacy_spent(&self) -> Option<(f64, f64)> {
        None
    }
    /// One line on where the job stands (a model job: the last step's size
    /// and objective), for `fedcredit job status`.
    fn progress(&self) -> Option<String> {
        None
    }
}

/// `secure-sum`: one round per sum; the sums are the job's result.
#[derive(Debug)]
pub struct SecureSum {
    rules: JobRules,
}

impl SecureSum {
    /// A secure sum of `dimension` values with this codec.
    pub fn new(dimension: usize, fixed_point: FixedPoint) -> Self {
        Self::series(dimension, fixed_point, 1)
    }

    /// A series of `rounds` secure sums, one per round.
    pub fn series(dimension: usize, fixed_point: FixedPoint, rounds: u32) -> Self {
        Self {
            rules: JobRules::secure_sum(dimension, fixed_point, rounds),
        }
    }
}

impl JobDriver for SecureSum {
    fn next_round(&mut self) -> Result<Option<RoundPlan>, String> {
        Ok(self.rules.next_plan())
    }

    fn finish_round(&mut self, result: &RoundResult) -> Result<String, String> {
        self.rules.absorb(&result.sum).map_err(|e| e.to_string())
    }
}

/// `monitor`: one round of row counts; its sum makes the stability
/// report (PSI of the score, CSI per characteristic).
#[derive(Debug)]
pub struct Monitor {
    rules: JobRules,
}

impl Monitor {
    /// The monitor job of `spec` (a validated `monitor` job spec).
    pub fn new(spec: &fedcredit_referee::consortium::JobSpec) -> Result<Self, String> {
        let rules = JobRules::new(spec, NoiseCohort::single()).map_err(|e| e.to_string())?;
        match rules {
            JobRules::Monitor { .. } => Ok(Self { rules }),
            _ => Err(format!("job {} is not a monitor job", spec.id)),
        }
    }

    /// The report, once the round was absorbed.
    pub fn report(&self) -> Option<&fedcredit_model::scorecard::stability::MonitorReport> {
        self.rules.monitor_report()
    }
}

impl JobDriver for Monitor {
    fn next_round(&mut self) -> Result<Option<RoundPlan>, String> {
        Ok(self.rules.next_plan())
    }

    fn finish_round(&mut self, result: &RoundResult) -> Result<String, String> {
        let json = self
            .rules
            .absorb(&result.sum)
            .map_err(|e| format!("round {}: {e}", result.round))?;
        if let Some(r) = self.rules.monitor_report() {
            info!(round = result.round, psi = r.score.index, level = ?r.score.level, "stability report");
        }
        Ok(json)
    }

    fn progress(&self) -> Option<String> {
        self.rules
            .monitor_report()
            .map(|r| format!("score PSI {:.4} ({:?})", r.score.index, r.score.level))
    }
}

/// A line of progress of a model job, for whoever watches it.
#[derive(Clone, Debug)]
pub struct ProgressLine {
    /// The secure-aggregation round that produced it.
    pub round: u64,
    /// How many participants contributed.
    pub contributors: usize,
    /// What the round computed and found.
    pub progress: Progress,
}

/// Called after every round of a model job.
type ProgressFn = Box<dyn Fn(&ProgressLine) + Send>;

/// A logistic-regression job: statistics, optimization, evaluation rounds,
/// every one a secure sum; the coordinator sees only the sums.
pub struct ModelFit {
    rules: JobRules,
    on_progress: Option<ProgressFn>,
    /// The last round's progress, said in one line.
    last: Option<String>,
}

impl std::fmt::Debug for ModelFit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFit")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl ModelFit {
    /// A job fitting `spec`; values travel in the wide codec (never
    /// clipped; a private round's codec has the noise's grid). `cohort`
    /// sizes a private job's noise ([`fedcredit_referee::plan::noise_cohort`]).
    pub fn new(
        spec: ModelJobSpec,
        job_id: &str,
        job_spec_hash: &str,
        cohort: NoiseCohort,
    ) -> Result<Self, String> {
        Ok(Self {
            rules: JobRules::Model {
                job: Box::new(
                    ModelJob::new(spec, job_id, job_spec_hash, cohort)
                        .map_err(|e| e.to_string())?,
                ),
                codec: Codec::Wide(WideFixed::model_default()),
            },
            on_progress: None,
            last: None,
        })
    }

    /// Calls `f` after every round (for progress displays).
    pub fn on_progress(mut self, f: impl Fn(&ProgressLine) + Send + 'static) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }
}

impl JobDriver for ModelFit {
    fn next_round(&mut self) -> Result<Option<RoundPlan>, String> {
        Ok(self.rules.next_plan())
    }

    fn finish_round(&mut self, result: &RoundResult) -> Result<String, String> {
        let json = self.rules.absorb(&result.sum).map_err(|e| match e {
            // Said with the round's own number, once.
            fedcredit_referee::RefereeError::Absorb { message, .. } => {
                format!("round {}: {message}", result.round)
            }
            other => other.to_string(),
        })?;
        let progress: Progress = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        self.last = Some(match &progress {
            Progress::Binned { rows } => {
                info!(round = result.round, rows, "binning round");
                format!("binning: {rows} training rows")
            }
            Progress::Standardized { rows } => {
                info!(round = result.round, rows, "statistics round");
                format!("statistics: {rows} training rows")
            }
            Progress::Step(r) => {
                info!(round = result.round, step = r.round, rows = r.rows, step_max_norm = r.step_max_norm, objective = ?r.objective, "optimization round");
                match r.objective {
                    Some(o) => format!(
                        "step {}: step size (max-norm) {:.3e}, objective {o:.6}",
                        r.round, r.step_max_norm
                    ),
                    None => format!(
                        "step {}: step size (max-norm) {:.3e}",
                        r.round, r.step_max_norm
                    ),
                }
            }
            Progress::Evaluated(m) => {
                info!(round = result.round, metrics = ?m, "evaluation round");
                "evaluated".to_owned()
            }
        });
        if let Some(f) = &self.on_progress {
            f(&ProgressLine {
                round: result.round,
                contributors: result.contributors.len(),
                progress,
            });
        }
        Ok(json)
    }

    fn model(&self) -> Option<FittedModel> {
        self.rules.model().cloned()
    }

    fn privacy_spent(&self) -> Option<(f64, f64)> {
        match &self.rules {
            JobRules::Model { job, .. } => {
                job.privacy_report().map(|r| (r.epsilon_spent, r.epsilon))
            }
            _ => None,
        }
    }

    fn progress(&self) -> Option<String> {
        self.last.clone()
    }
}
