//! What a job computes, round by round. The round machinery is the same for
//! every job; a [`JobDriver`] says what each round aggregates and takes the
//! unmasked sums.

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::wide::WideFixed;
use fedcredit_model::job::{FittedModel, ModelJob, ModelJobSpec, Progress};
use fedcredit_proto::codec::Codec;
use fedcredit_proto::v1 as pb;
use tracing::info;

/// One round's aggregation: how many values, their codec, and the task sent to participants.
#[derive(Clone, Debug)]
pub struct RoundPlan {
    /// Values each participant contributes.
    pub dimension: usize,
    /// How values become words.
    pub codec: Codec,
    /// What participants compute (carried in the announcement).
    pub task: pb::round_announcement::Task,
}

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
}

/// The largest number of words any round of this job aggregates.
pub fn max_words(kind: &fedcredit_proto::consortium::JobKind) -> usize {
    use fedcredit_proto::consortium::JobKind;
    match kind {
        JobKind::SecureSum { dimension, .. } => *dimension,
        JobKind::LogisticRegression(spec) => {
            let p = spec.schema.encoded_width();
            let values = fedcredit_model::logistic::newton::newton_terms_len(p)
                .max(2 * spec.bins + 3)
                .max(p + 2);
            Codec::Wide(WideFixed::model_default()).words_for(values)
        }
    }
}

/// `secure-sum`: one round; the sum is the job's result.
#[derive(Debug)]
pub struct SecureSum {
    plan: RoundPlan,
    done: bool,
}

impl SecureSum {
    /// A secure sum of `dimension` values with this codec.
    pub fn new(dimension: usize, fixed_point: FixedPoint) -> Self {
        Self {
            plan: RoundPlan {
                dimension,
                codec: Codec::Narrow(fixed_point),
                task: pb::round_announcement::Task::SecureSum(pb::SecureSumTask {}),
            },
            done: false,
        }
    }
}

impl JobDriver for SecureSum {
    fn next_round(&mut self) -> Result<Option<RoundPlan>, String> {
        Ok((!self.done).then(|| self.plan.clone()))
    }

    fn finish_round(&mut self, _result: &RoundResult) -> Result<String, String> {
        self.done = true;
        Ok("null".into())
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
    job: ModelJob,
    codec: Codec,
    on_progress: Option<ProgressFn>,
}

impl std::fmt::Debug for ModelFit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFit")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl ModelFit {
    /// A job fitting `spec`; values travel in the wide codec (never clipped).
    pub fn new(spec: ModelJobSpec, job_id: &str, job_spec_hash: &str) -> Result<Self, String> {
        Ok(Self {
            job: ModelJob::new(spec, job_id, job_spec_hash).map_err(|e| e.to_string())?,
            codec: Codec::Wide(WideFixed::model_default()),
            on_progress: None,
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
        Ok(self.job.next_task().map(|task| RoundPlan {
            dimension: task.dimension(self.job.width()),
            codec: self.codec,
            task: pb::round_announcement::Task::ModelTask(task.to_bytes().into()),
        }))
    }

    fn finish_round(&mut self, result: &RoundResult) -> Result<String, String> {
        let progress = self
            .job
            .absorb(&result.sum)
            .map_err(|e| format!("round {}: {e}", result.round))?;
        match &progress {
            Progress::Standardized { rows } => {
                info!(round = result.round, rows, "statistics round")
            }
            Progress::Step(r) => {
                info!(round = result.round, step = r.round, rows = r.rows, step_max_norm = r.step_max_norm, objective = ?r.objective, "optimization round")
            }
            Progress::Evaluated(m) => info!(round = result.round, metrics = ?m, "evaluation round"),
        }
        let json = serde_json::to_string(&progress).map_err(|e| e.to_string())?;
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
        self.job.model().cloned()
    }
}
