//! A credit-model job as a pure state machine: which aggregate each round
//! asks for ([`ModelTask`]), and what the coordinator does with the sum
//! ([`ModelJob::absorb`]). The coordinator runs it live; an auditor replays
//! it on the logged sums and must reach the same model bit for bit.
//!
//! ```text
//! Moments ─▶ CenteredSquares ─▶ Newton (or FedAvg) × k ─▶ Evaluate ─▶ done
//! [n, Σx, Σy]  [Σ(x−mean)²]       until max|Δβ| < tol       histograms
//! ```
//!
//! The statistics take two passes (sums, then centered squares) so that the
//! variance of columns in the millions keeps full precision. The first pass
//! also counts the pooled positive rows: a job whose pooled rows hold only
//! one label class stops there ([`ModelError::PooledClassMissing`]), before
//! any optimization round, and only the pooled count is ever seen.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::logistic::fedavg::{SgdConfig, fedavg_from_aggregate};
use crate::logistic::newton::{NewtonTerms, newton_step, newton_step_damped, newton_terms_len};
use crate::logistic::to_original_units;
use crate::metrics::{Curves, Metrics, ScoreHistogram};
use crate::privacy::{
    NoiseCohort, PrivacyPlan, PrivacyReport, PrivacySetting, TaskNoise, epsilon_spent,
};
use crate::schema::Schema;
use crate::scorecard::{FeatureBinning, HistogramLayout, Scorecard, ScorecardSpec, woe_schema};
use crate::stats::{Standardizer, check_both_classes, mean_from_sums};

/// Most encoded columns a job may have: a Newton round aggregates
/// (p + 1)(p + 2)/2 + p + 2 values per party, about 2.1 million at this bound.
pub const MAX_ENCODED_WIDTH: usize = 2048;

/// A private Newton step adds `RIDGE_FACTOR·s·√m` to the noisy Hessian's
/// diagonal (s the std of its noise, m its size): the noise matrix has
/// spectral norm about 2s√m.
const RIDGE_FACTOR: f64 = 3.0;

/// How the coordinator optimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Federated Newton: exact pooled optimum in a few rounds (default).
    #[default]
    Newton,
    /// FedAvg / FedProx: count-weighted average of locally trained models.
    Fedavg,
}

/// Local training settings of FedAvg rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FedAvgSettings {
    /// Local passes over the rows per round.
    pub epochs: usize,
    /// Rows per mini-batch.
    pub batch_size: usize,
    /// Step size on the per-row objective.
    pub learning_rate: f64,
    /// FedProx proximal strength (0 = plain FedAvg).
    pub prox_mu: f64,
}

impl Default for FedAvgSettings {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 64,
            learning_rate: 0.1,
            prox_mu: 0.0,
        }
    }
}

fn default_l2() -> f64 {
    1.0
}
fn default_tol() -> f64 {
    1e-8
}
fn default_max_rounds() -> usize {
    25
}
fn default_bins() -> usize {
    crate::metrics::DEFAULT_BINS
}

/// What a logistic-regression job fits; part of the hashed job spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelJobSpec {
    /// Label and features.
    pub schema: Schema,
    /// L2 strength: the objective is Σ logloss + (l2/2)·‖w‖² (scikit-learn's C = 1/l2).
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// Stop when the Newton step's max-norm is below this.
    #[serde(default = "default_tol")]
    pub tol: f64,
    /// At most this many optimization rounds.
    #[serde(default = "default_max_rounds")]
    pub max_rounds: usize,
    /// Newton (default) or FedAvg.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// FedAvg settings (ignored by Newton).
    #[serde(default)]
    pub fedavg: FedAvgSettings,
    /// Score-histogram bins of the evaluation round (≥ 1000).
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// Differential privacy: a `[job.privacy]` table, or `"none"`. A job
    /// must say which; there is no silent default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacySetting>,
    /// A points scorecard (`kind = "scorecard"`): the job first bins the
    /// pooled per-label histograms, then fits on WOE-encoded features. Left
    /// out of the canonical JSON when absent, so plain specs keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<ScorecardSpec>,
}

impl ModelJobSpec {
    /// Checks the settings; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        self.schema.validate()?;
        let bad =
            |what: &str, why: String| Err(ModelError::InvalidSetting(format!("{what}: {why}")));
        let width = self.schema.encoded_width();
        if width > MAX_ENCODED_WIDTH {
            return bad(
                "schema",
                format!(
                    "{width} encoded columns; at most {MAX_ENCODED_WIDTH} (a Newton round \
                     aggregates about width²/2 values per party)"
                ),
            );
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(
                "l2",
                format!("must be a finite number >= 0, got {}", self.l2),
            );
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return bad("tol", format!("must be > 0, got {}", self.tol));
        }
        if self.max_rounds == 0 || self.max_rounds > 10_000 {
            return bad(
                "max_rounds",
                format!("must be 1 to 10000, got {}", self.max_rounds),
            );
        }
        ScoreHistogram::new(self.bins)?;
        match &self.privacy {
            None => {
                return bad(
                    "privacy",
                    "a credit-model job must state its privacy: a [job.privacy] table \
                     (epsilon, delta, [job.privacy.bounds] for every numeric feature) or \
                     privacy = \"none\" (exact sums and a 10,000-bin evaluation that can single \
                     out applicants)"
                        .into(),
                );
            }
            Some(PrivacySetting::None) => {}
            Some(PrivacySetting::Private(p)) => {
                p.validate(&self.schema)?;
                if self.optimizer != OptimizerKind::Newton {
                    return bad(
                        "privacy",
                        "a private job trains with Newton rounds (optimizer = \"newton\")".into(),
                    );
                }
            }
        }
        if self.optimizer == OptimizerKind::Fedavg {
            let f = &self.fedavg;
            if f.epochs == 0
                || f.batch_size == 0
                || !(f.learning_rate.is_finite() && f.learning_rate > 0.0)
            {
                return bad(
                    "fedavg",
                    "epochs, batch_size and learning_rate must be positive".into(),
                );
            }
        }
        if let Some(card) = &self.scorecard {
            card.validate(&self.schema)?;
            if self.privacy != Some(PrivacySetting::None) {
                return bad(
                    "privacy",
                    "a scorecard job publishes exact binning histograms: it takes \
                     privacy = \"none\" (private binning is not built)"
                        .into(),
                );
            }
            if self.optimizer != OptimizerKind::Newton {
                return bad(
                    "optimizer",
                    "a scorecard job fits with Newton rounds (optimizer = \"newton\")".into(),
                );
            }
        }
        Ok(())
    }
}

/// How many secure-aggregation rounds a job will run, known before it
/// starts: what a progress display counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedRounds {
    /// Exactly this many: a private job's Newton rounds are fixed (so that
    /// their number reveals nothing), and FedAvg runs all of `max_rounds`.
    Exactly(usize),
    /// At most this many: an exact Newton job starts its evaluation round
    /// as soon as a step falls below `tol`.
    AtMost(usize),
}

impl PlannedRounds {
    /// The number of rounds, exact or a bound.
    pub fn count(self) -> usize {
        match self {
            PlannedRounds::Exactly(n) | PlannedRounds::AtMost(n) => n,
        }
    }
}

impl ModelJobSpec {
    /// The rounds a job of this spec runs: two statistics rounds (the
    /// moments, then the centered squares), its optimization rounds and one
    /// evaluation round, as [`ModelJob::absorb`] moves through its stages.
    pub fn planned_rounds(&self) -> PlannedRounds {
        // A scorecard's binning round comes first.
        let statistics_and_evaluation = 3 + usize::from(self.scorecard.is_some());
        match (&self.privacy, self.optimizer) {
            (Some(PrivacySetting::Private(p)), _) => {
                PlannedRounds::Exactly(p.rounds + statistics_and_evaluation)
            }
            (_, OptimizerKind::Fedavg) => {
                PlannedRounds::Exactly(self.max_rounds + statistics_and_evaluation)
            }
            (_, OptimizerKind::Newton) => {
                PlannedRounds::AtMost(self.max_rounds + statistics_and_evaluation)
            }
        }
    }
}

/// What one round asks every participant to contribute. Serialized as JSON
/// into the round announcement (floats round-trip exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelTask {
    /// A scorecard's first round: per-label fine histograms of the training
    /// rows (layout of [`HistogramLayout::add_rows`]).
    Binning {
        /// The job's schema (the rows' encoding).
        schema: Schema,
        /// Public bounds of the numeric features.
        bounds: BTreeMap<String, [f64; 2]>,
        /// Equal-width fine bins per numeric feature.
        fine_bins: usize,
        /// Length of the histogram vector.
        values: usize,
    },
    /// A scorecard's later rounds: task `on` over the rows encoded as the
    /// WOE of their bins in `binnings` (one column per feature of `schema`).
    Woe {
        /// The job's schema (the rows' encoding before WOE).
        schema: Schema,
        /// The bins and WOE the binning round published.
        binnings: Vec<FeatureBinning>,
        /// The task on WOE rows.
        on: Box<ModelTask>,
    },
    /// `[n, Σx_1 … Σx_p, Σy]` over the training rows (Σy: the positive rows;
    /// layout of [`crate::stats::local_sums_and_positives`]).
    Moments {
        /// Private jobs: clipping, scaling and each member's noise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        noise: Option<TaskNoise>,
    },
    /// `[Σ(x_j − mean_j)² …]` over the training rows.
    CenteredSquares {
        /// The global means.
        mean: Vec<f64>,
        /// Private jobs: clipping, scaling and each member's noise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        noise: Option<TaskNoise>,
    },
    /// Newton terms at `beta` on the standardized training rows
    /// (layout of [`crate::logistic::newton::local_newton_terms`]).
    Newton {
        /// The global standardization.
        standardizer: Standardizer,
        /// The current model, intercept first.
        beta: Vec<f64>,
        /// Private jobs: clipping, scaling and each member's noise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        noise: Option<TaskNoise>,
    },
    /// `[n_k·β_k …, n_k]` after local training from `beta`.
    FedAvg {
        /// The global standardization.
        standardizer: Standardizer,
        /// The round's starting model.
        beta: Vec<f64>,
        /// Local training settings (seed differs per round).
        sgd: SgdConfig,
    },
    /// Score histograms and log-loss of `beta` on each party's held-out rows
    /// (layout of [`ScoreHistogram::local_terms`]).
    Evaluate {
        /// The global standardization.
        standardizer: Standardizer,
        /// The final model.
        beta: Vec<f64>,
        /// Histogram bins.
        bins: usize,
        /// Private jobs: clipping, scaling and each member's noise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        noise: Option<TaskNoise>,
    },
}

impl ModelTask {
    /// Number of values each participant contributes, for `p` encoded columns.
    pub fn dimension(&self, p: usize) -> usize {
        match self {
            ModelTask::Binning { values, .. } => *values,
            ModelTask::Woe { on, .. } => on.dimension(p),
            ModelTask::Moments { .. } => p + 2,
            ModelTask::CenteredSquares { .. } => p,
            ModelTask::Newton { .. } => newton_terms_len(p),
            ModelTask::FedAvg { .. } => p + 2,
            ModelTask::Evaluate { bins, .. } => 2 * bins + 3,
        }
    }

    /// The task as computed on its rows: a scorecard's WOE task unwrapped.
    pub fn on_rows(&self) -> &ModelTask {
        match self {
            ModelTask::Woe { on, .. } => on.on_rows(),
            other => other,
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ModelTask::Binning { .. } => "binning",
            ModelTask::Woe { on, .. } => on.name(),
            ModelTask::Moments { .. } => "moments",
            ModelTask::CenteredSquares { .. } => "centered-squares",
            ModelTask::Newton { .. } => "newton",
            ModelTask::FedAvg { .. } => "fedavg",
            ModelTask::Evaluate { .. } => "evaluate",
        }
    }

    /// The noise of a private round (`None` for an exact one).
    pub fn noise(&self) -> Option<&TaskNoise> {
        match self {
            ModelTask::Moments { noise }
            | ModelTask::CenteredSquares { noise, .. }
            | ModelTask::Newton { noise, .. }
            | ModelTask::Evaluate { noise, .. } => noise.as_ref(),
            ModelTask::Woe { on, .. } => on.noise(),
            ModelTask::FedAvg { .. } | ModelTask::Binning { .. } => None,
        }
    }

    /// The wire encoding (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        // A plain enum of numbers and vectors always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the wire encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| ModelError::InvalidSetting(format!("model task: {e}")))
    }
}

/// One optimization round, for progress reports and the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// 1-based optimization round.
    pub round: usize,
    /// Rows that contributed.
    pub rows: f64,
    /// Penalized objective at the round's starting model (Newton only).
    pub objective: Option<f64>,
    /// max |β_new − β|.
    pub step_max_norm: f64,
}

/// Coefficients in one parametrization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficients {
    /// The intercept.
    pub intercept: f64,
    /// One per encoded feature, in [`FittedModel::features`] order.
    pub coefficients: Vec<f64>,
}

/// The published model (`model.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedModel {
    /// File format tag.
    pub format: String,
    /// The job that fitted it.
    pub job_id: String,
    /// Hex SHA-256 of the job specification (see the consortium file).
    pub job_spec_hash: String,
    /// Encoded feature names.
    pub features: Vec<String>,
    /// The schema the features come from (to encode new rows).
    pub schema: Schema,
    /// On globally standardized features.
    pub standardized: Coefficients,
    /// On the original (encoded, unstandardized) features.
    pub original: Coefficients,
    /// The global standardization.
    pub standardization: Standardizer,
    /// L2 strength used.
    pub l2: f64,
    /// Optimizer used.
    pub optimizer: OptimizerKind,
    /// Optimization rounds used.
    pub rounds: usize,
    /// Whether the step fell below `tol` within `max_rounds`.
    pub converged: bool,
    /// Per optimization round.
    pub history: Vec<RoundRecord>,
    /// Pooled metrics on the participants' held-out rows, if any.
    pub metrics: Option<Metrics>,
    /// The (ε, δ) the model was trained and evaluated under; absent for a
    /// job with `privacy = "none"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyReport>,
    /// The points scorecard, for a model fitted on WOE-encoded features
    /// (`fedcredit local --kind scorecard`); absent for a plain model, whose
    /// file is then byte for byte what it was before scorecards existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<crate::scorecard::Scorecard>,
    /// The calibration table of the pooled evaluation (observed against
    /// predicted default rates by score band, Brier, Hosmer–Lemeshow), if
    /// there were held-out rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::metrics::Calibration>,
}

impl FittedModel {
    /// Probability of the positive class for one encoded, unstandardized row.
    pub fn probability(&self, row: &[f64]) -> Result<f64> {
        if row.len() != self.features.len() {
            return Err(ModelError::InvalidSetting(format!(
                "row has {} encoded values, the model has {} features",
                row.len(),
                self.features.len()
            )));
        }
        let mut z = self.standardized.intercept;
        for (((x, m), s), w) in row
            .iter()
            .zip(self.standardization.mean())
            .zip(self.standardization.std())
            .zip(&self.standardized.coefficients)
        {
            z += w * (x - m) / s;
        }
        Ok(crate::logistic::sigmoid(z))
    }

    /// The linear predictor for scoring a batch column by column, with the
    /// same arithmetic per row as [`FittedModel::probability`].
    pub fn linear(&self) -> Result<Linear> {
        let (m, s, w) = (
            self.standardization.mean(),
            self.standardization.std(),
            &self.standardized.coefficients,
        );
        if m.len() != w.len() || s.len() != w.len() || w.len() != self.features.len() {
            return Err(ModelError::InvalidSetting(format!(
                "the model has {} features, {} coefficients and standardization for {}",
                self.features.len(),
                w.len(),
                m.len()
            )));
        }
        Ok(Linear {
            intercept: self.standardized.intercept,
            terms: m
                .iter()
                .zip(s)
                .zip(w)
                .map(|((&m, &s), &w)| Term { w, m, s })
                .collect(),
        })
    }
}

/// A model's linear predictor `z = b + Σ_j w_j·(x_j − m_j)/s_j`, applied a
/// column at a time to a batch of rows (`z[i]` per row).
///
/// Each term is computed and added in the same order and with the same
/// operations as [`FittedModel::probability`], so the scores are bit for bit
/// the same as row by row; only the loop order changes, so that the loop over
/// a column's rows vectorizes. (Folding `1/s_j` into `w_j` would save the
/// division but change the last bits, and centering after the fold would
/// cancel badly for columns whose mean is large against their spread.)
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    intercept: f64,
    terms: Vec<Term>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Term {
    w: f64,
    m: f64,
    s: f64,
}

impl Term {
    #[inline]
    fn of(self, x: f64) -> f64 {
        self.w * (x - self.m) / self.s
    }
}

impl Linear {
    /// Encoded features.
    pub fn width(&self) -> usize {
        self.terms.len()
    }

    /// Starts a batch: every `z` is the intercept.
    pub fn start(&self, z: &mut [f64]) {
        z.fill(self.intercept);
    }

    /// Adds encoded feature `j`'s term for one value per row.
    ///
    /// # Panics
    /// If `j` is not below [`Linear::width`] or the slices differ in length.
    pub fn add_column(&self, j: usize, x: &[f64], z: &mut [f64]) {
        assert_eq!(x.len(), z.len(), "one value per row");
        let t = self.terms[j];
        for (z, &x) in z.iter_mut().zip(x) {
            *z += t.of(x);
        }
    }

    /// [`Linear::add_column`] for values stored as 8 little-endian bytes
    /// each (Parquet's `PLAIN` doubles), read where they lie, uncopied.
    ///
    /// # Panics
    /// If `j` is not below [`Linear::width`] or the slices differ in length.
    pub fn add_column_le(&self, j: usize, x: &[[u8; 8]], z: &mut [f64]) {
        assert_eq!(x.len(), z.len(), "one value per row");
        let t = self.terms[j];
        for (z, x) in z.iter_mut().zip(x) {
            *z += t.of(f64::from_le_bytes(*x));
        }
    }

    /// Adds encoded feature `j`'s term for one row's value.
    ///
    /// # Panics
    /// If `j` is not below [`Linear::width`].
    #[inline]
    pub fn add_one(&self, j: usize, x: f64, z: &mut f64) {
        *z += self.terms[j].of(x);
    }

    /// Adds the terms of a categorical feature whose indicators start at
    /// encoded column `first`, `levels − 1` of them, for category `index`
    /// (0 the reference level, all indicators 0), as
    /// [`crate::Encoder::category_into`] encodes it.
    ///
    /// # Panics
    /// If the indicators are not all below [`Linear::width`].
    pub fn add_category(&self, first: usize, levels: usize, index: usize, z: &mut f64) {
        for k in 1..levels {
            self.add_one(first + k - 1, if k == index { 1.0 } else { 0.0 }, z);
        }
    }

    /// The probability of each row from its `z`, in place.
    pub fn probabilities(z: &mut [f64]) {
        for z in z {
            *z = crate::logistic::sigmoid(*z);
        }
    }
}

/// What absorbing a round's sum led to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum Progress {
    /// A scorecard's features are binned.
    Binned {
        /// Total training rows.
        rows: f64,
    },
    /// The statistics are known.
    Standardized {
        /// Total training rows.
        rows: f64,
    },
    /// An optimization round finished.
    Step(RoundRecord),
    /// The evaluation round finished; the job is done.
    Evaluated(Option<Metrics>),
}

#[derive(Debug, Clone)]
enum Stage {
    Binning,
    Moments,
    CenteredSquares {
        count: f64,
        sums: Vec<f64>,
        mean: Vec<f64>,
    },
    Optimize {
        standardizer: Standardizer,
        beta: Vec<f64>,
    },
    Evaluate {
        standardizer: Standardizer,
        beta: Vec<f64>,
        converged: bool,
    },
    Done(Box<FittedModel>),
}

/// The job's state between rounds.
#[derive(Debug, Clone)]
pub struct ModelJob {
    spec: ModelJobSpec,
    job_id: String,
    job_spec_hash: String,
    width: usize,
    stage: Stage,
    history: Vec<RoundRecord>,
    /// Private jobs: the budget's split over the rounds.
    privacy: Option<PrivacyPlan>,
    /// Private jobs: the noise of the next task (planned when its stage begins).
    next_noise: Option<TaskNoise>,
    /// zCDP ρ of the rounds absorbed so far, and how many.
    spent_rho: f64,
    charged_rounds: u64,
    /// Scorecards: the fine bins of the binning round.
    layout: Option<HistogramLayout>,
    /// Scorecards: the bins the binning round published; the later rounds
    /// run on rows encoded as their WOE.
    binnings: Option<Vec<FeatureBinning>>,
}

impl ModelJob {
    /// Starts a job; the spec is validated. The id and hash are recorded in
    /// the model; `cohort` says who adds noise in a private job (the
    /// consortium's n and t − c).
    pub fn new(
        spec: ModelJobSpec,
        job_id: &str,
        job_spec_hash: &str,
        cohort: NoiseCohort,
    ) -> Result<Self> {
        spec.validate()?;
        let width = spec.schema.encoded_width();
        let privacy = match spec.privacy.as_ref().and_then(PrivacySetting::spec) {
            Some(p) => Some(PrivacyPlan::new(p, &spec.schema, cohort)?),
            None => None,
        };
        let next_noise = privacy.as_ref().map(PrivacyPlan::moments).transpose()?;
        let layout = spec
            .scorecard
            .as_ref()
            .map(|c| HistogramLayout::new(&spec.schema, &c.bounds, c.fine_bins))
            .transpose()?;
        Ok(Self {
            stage: if layout.is_some() {
                Stage::Binning
            } else {
                Stage::Moments
            },
            layout,
            binnings: None,
            spec,
            job_id: job_id.to_owned(),
            job_spec_hash: job_spec_hash.to_owned(),
            width,
            history: Vec::new(),
            privacy,
            next_noise,
            spent_rho: 0.0,
            charged_rounds: 0,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &ModelJobSpec {
        &self.spec
    }

    /// Encoded width p.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The privacy spent so far, for a private job.
    pub fn privacy_report(&self) -> Option<PrivacyReport> {
        let plan = self.privacy.as_ref()?;
        Some(PrivacyReport {
            epsilon: plan.spec.epsilon,
            delta: plan.spec.delta,
            epsilon_spent: epsilon_spent(self.spent_rho, plan.spec.delta).ok()?,
            rho_spent: self.spent_rho,
            rounds: self.charged_rounds,
        })
    }

    /// Whether the next task would keep the job within its budget: the
    /// check a participant makes before it adds anything to a round.
    pub fn check_budget(&self) -> Result<()> {
        let (Some(plan), Some(noise)) = (&self.privacy, &self.next_noise) else {
            return Ok(());
        };
        let budget = plan.spec.budget()?;
        let mut ledger = fedcredit_privacy::Ledger::new(budget);
        ledger
            .charge(self.spent_rho)
            .and_then(|_| ledger.check(noise.rho))
            .map(|_| ())
            .map_err(|e| ModelError::InvalidSetting(format!("privacy: {e}")))
    }

    /// The next round's task, or `None` when the job is done.
    pub fn next_task(&self) -> Option<ModelTask> {
        let task = self.next_plain_task()?;
        Some(match &self.binnings {
            Some(binnings) => ModelTask::Woe {
                schema: self.spec.schema.clone(),
                binnings: binnings.clone(),
                on: Box::new(task),
            },
            None => task,
        })
    }

    /// The next task as it is computed on its rows (before any WOE encoding).
    fn next_plain_task(&self) -> Option<ModelTask> {
        let noise = self.next_noise.clone();
        match &self.stage {
            Stage::Binning => {
                let (card, layout) = (self.spec.scorecard.as_ref()?, self.layout.as_ref()?);
                Some(ModelTask::Binning {
                    schema: self.spec.schema.clone(),
                    bounds: card.bounds.clone(),
                    fine_bins: card.fine_bins,
                    values: layout.len(),
                })
            }
            Stage::Moments => Some(ModelTask::Moments { noise }),
            Stage::CenteredSquares { mean, .. } => Some(ModelTask::CenteredSquares {
                mean: mean.clone(),
                noise,
            }),
            Stage::Optimize { standardizer, beta } => Some(match self.spec.optimizer {
                OptimizerKind::Newton => ModelTask::Newton {
                    standardizer: standardizer.clone(),
                    beta: beta.clone(),
                    noise,
                },
                OptimizerKind::Fedavg => {
                    let f = self.spec.fedavg;
                    ModelTask::FedAvg {
                        standardizer: standardizer.clone(),
                        beta: beta.clone(),
                        sgd: SgdConfig {
                            l2: self.spec.l2,
                            total_rows: standardizer.count(),
                            epochs: f.epochs,
                            batch_size: f.batch_size,
                            learning_rate: f.learning_rate,
                            prox_mu: f.prox_mu,
                            seed: self.history.len() as u64,
                        },
                    }
                }
            }),
            Stage::Evaluate {
                standardizer, beta, ..
            } => Some(ModelTask::Evaluate {
                standardizer: standardizer.clone(),
                beta: beta.clone(),
                bins: self
                    .privacy
                    .as_ref()
                    .map_or(self.spec.bins, |p| p.spec.bins),
                noise,
            }),
            Stage::Done(_) => None,
        }
    }

    /// The noise of the task that follows `stage` (private jobs).
    fn plan_noise(&self, stage: &Stage) -> Result<Option<TaskNoise>> {
        let Some(plan) = &self.privacy else {
            return Ok(None);
        };
        Ok(match stage {
            Stage::Binning => None,
            Stage::Moments => Some(plan.moments()?),
            Stage::CenteredSquares { mean, .. } => Some(plan.centered_squares(mean)?),
            Stage::Optimize { .. } => Some(plan.newton(self.width)?),
            Stage::Evaluate { .. } => Some(plan.evaluate()?),
            Stage::Done(_) => None,
        })
    }

    /// Takes the decoded sum of the current task's contributions and moves on.
    /// On error the state is unchanged.
    pub fn absorb(&mut self, sum: &[f64]) -> Result<Progress> {
        let Some(noise) = self.next_noise.clone() else {
            return self.absorb_exact(sum);
        };
        let before = (self.stage.clone(), self.history.clone());
        let result = self.absorb_private(sum, &noise).and_then(|progress| {
            let next = self.plan_noise(&self.stage)?;
            Ok((progress, next))
        });
        match result {
            Ok((progress, next)) => {
                self.spent_rho += noise.rho;
                self.charged_rounds += 1;
                self.next_noise = next;
                let report = self.privacy_report();
                if let Stage::Done(model) = &mut self.stage {
                    model.privacy = report;
                }
                Ok(progress)
            }
            Err(e) => {
                (self.stage, self.history) = before;
                Err(e)
            }
        }
    }

    /// [`ModelJob::absorb`] of a private round: the sum is unscaled, then
    /// read as noisy (post-processing only: clamps, floors, a ridge).
    fn absorb_private(&mut self, sum: &[f64], noise: &TaskNoise) -> Result<Progress> {
        let Some(plan) = self.privacy.clone() else {
            return Err(ModelError::InvalidSetting(
                "internal: no privacy plan".into(),
            ));
        };
        let task = self
            .next_task()
            .ok_or_else(|| ModelError::InvalidSetting("the job is already finished".into()))?;
        let p = self.width;
        let expected = task.dimension(p);
        if sum.len() != expected || noise.dimension() != expected {
            return Err(ModelError::InvalidSetting(format!(
                "the {} aggregate has {} values, expected {expected}",
                task.name(),
                sum.len()
            )));
        }
        crate::error::check_finite("aggregate", sum)?;
        let mut v = sum.to_vec();
        noise.unscale(&mut v);
        let (stage, progress) = match self.stage.clone() {
            Stage::Binning => {
                return Err(ModelError::InvalidSetting(
                    "a private job has no binning round".into(),
                ));
            }
            Stage::Moments => {
                let (count, positives) = (v[0], v[p + 1]);
                if count < 1.0 {
                    return Err(ModelError::Empty {
                        what: "the noisy pooled row count is below 1",
                    });
                }
                // The noisy label sum is not checked against the count: at
                // small ε its noise (σ in the hundreds of rows) would fail
                // jobs whose pool has both classes. It is only reported.
                let _ = positives;
                let mean = plan
                    .columns
                    .iter()
                    .zip(&v[1..=p])
                    .map(|(c, s)| match c {
                        Some((lo, hi)) => ((lo + hi) / 2.0 + s / count).clamp(*lo, *hi),
                        None => (s / count).clamp(0.0, 1.0),
                    })
                    .collect();
                (
                    Stage::CenteredSquares {
                        count,
                        sums: v[1..=p].to_vec(),
                        mean,
                    },
                    Progress::Standardized { rows: count },
                )
            }
            Stage::CenteredSquares { count, mean, .. } => {
                let std = plan
                    .columns
                    .iter()
                    .zip(&v)
                    .zip(&mean)
                    .map(|((c, q), m)| match c {
                        Some((lo, hi)) => {
                            let r = hi - lo;
                            (q / count)
                                .clamp((r * 1e-3).powi(2), (r / 2.0).powi(2))
                                .sqrt()
                        }
                        // A one-hot column's variance follows from its mean.
                        None => (m * (1.0 - m)).max(1e-4).sqrt(),
                    })
                    .collect();
                let standardizer = Standardizer::from_mean_std(count, mean, std)?;
                (
                    Stage::Optimize {
                        standardizer,
                        beta: vec![0.0; p + 1],
                    },
                    Progress::Standardized { rows: count },
                )
            }
            Stage::Optimize { standardizer, beta } => {
                // The count is only reported; keep it positive for the unpacking.
                let n = newton_terms_len(p);
                v[n - 2] = v[n - 2].max(1.0);
                let terms = NewtonTerms::from_aggregate(&v, p)?;
                // A symmetric matrix of independent N(0, s²) entries has
                // spectral norm about 2s√m; 3s√m keeps H + ridge·I positive
                // definite with overwhelming probability, and the step is
                // retried with twice the ridge if it is not.
                let s = noise.raw_std(1, noise.members);
                let mut ridge = RIDGE_FACTOR * s * ((p + 1) as f64).sqrt();
                let mut tries = 0;
                let step = loop {
                    match newton_step_damped(&terms, &beta, self.spec.l2, ridge) {
                        Err(ModelError::NotPositiveDefinite { .. }) if tries < 40 => {
                            ridge = (ridge * 2.0).max(1e-6);
                            tries += 1;
                        }
                        other => break other?,
                    }
                };
                let record = RoundRecord {
                    round: self.history.len() + 1,
                    rows: terms.count,
                    objective: step.objective.is_finite().then_some(step.objective),
                    step_max_norm: step.step_max_norm,
                };
                self.history.push(record.clone());
                let beta = step.new_beta;
                let stage = if self.history.len() >= plan.spec.rounds {
                    Stage::Evaluate {
                        standardizer,
                        beta,
                        converged: false,
                    }
                } else {
                    Stage::Optimize { standardizer, beta }
                };
                (stage, Progress::Step(record))
            }
            Stage::Evaluate {
                standardizer,
                beta,
                converged,
            } => {
                let metrics = match private_metrics(&v, plan.spec.bins) {
                    Ok(m) => Some(m),
                    Err(ModelError::Empty { .. }) => None,
                    Err(e) => return Err(e),
                };
                let calibration = metrics
                    .map(|_| {
                        let mut w = v.to_vec();
                        monotone_histograms(&mut w, plan.spec.bins);
                        let b = plan.spec.bins;
                        crate::metrics::calibration(&w[..b], &w[b..2 * b])
                    })
                    .transpose()?;
                let model = self.fitted(&standardizer, &beta, converged, metrics, calibration)?;
                (Stage::Done(Box::new(model)), Progress::Evaluated(metrics))
            }
            Stage::Done(_) => {
                return Err(ModelError::InvalidSetting(
                    "the job is already finished".into(),
                ));
            }
        };
        self.stage = stage;
        Ok(progress)
    }

    /// The published model of a finished job (exact or private).
    fn fitted(
        &self,
        standardizer: &Standardizer,
        beta: &[f64],
        converged: bool,
        metrics: Option<Metrics>,
        calibration: Option<crate::metrics::Calibration>,
    ) -> Result<FittedModel> {
        let original = to_original_units(beta, standardizer)?;
        // A scorecard's model is over the WOE columns; its points follow
        // from the coefficients on them (unstandardized).
        let (schema, scorecard) = match (&self.binnings, &self.spec.scorecard) {
            (Some(binnings), Some(card)) => (
                woe_schema(&self.spec.schema),
                Some(Scorecard::new(
                    self.spec.schema.clone(),
                    binnings.clone(),
                    original[0],
                    &original[1..],
                    card.scale(),
                )?),
            ),
            _ => (self.spec.schema.clone(), None),
        };
        Ok(FittedModel {
            format: "fedcredit-model/1".into(),
            job_id: self.job_id.clone(),
            job_spec_hash: self.job_spec_hash.clone(),
            features: schema.encoded_names(),
            schema,
            standardized: Coefficients {
                intercept: beta[0],
                coefficients: beta[1..].to_vec(),
            },
            original: Coefficients {
                intercept: original[0],
                coefficients: original[1..].to_vec(),
            },
            standardization: standardizer.clone(),
            l2: self.spec.l2,
            optimizer: self.spec.optimizer,
            rounds: self.history.len(),
            converged,
            history: self.history.clone(),
            metrics,
            privacy: None,
            scorecard,
            calibration,
        })
    }

    /// [`ModelJob::absorb`] of an exact (non-private) round.
    fn absorb_exact(&mut self, sum: &[f64]) -> Result<Progress> {
        let task = self
            .next_task()
            .ok_or_else(|| ModelError::InvalidSetting("the job is already finished".into()))?;
        let expected = task.dimension(self.width);
        if sum.len() != expected {
            return Err(ModelError::InvalidSetting(format!(
                "the {} aggregate has {} values, expected {expected}",
                task.name(),
                sum.len()
            )));
        }
        let p = self.width;
        let (stage, progress) = match std::mem::replace(&mut self.stage, Stage::Moments) {
            Stage::Binning => match self.bin(sum) {
                Ok(rows) => (Stage::Moments, Progress::Binned { rows }),
                Err(e) => {
                    self.stage = Stage::Binning;
                    return Err(e);
                }
            },
            Stage::Moments => {
                let restore = Stage::Moments;
                let (count, positives) = (sum[0], sum[p + 1]);
                let checked = mean_from_sums(count, &sum[1..=p]).and_then(|mean| {
                    check_both_classes(count, positives, &self.spec.schema.label).map(|()| mean)
                });
                match checked {
                    Ok(mean) => (
                        Stage::CenteredSquares {
                            count,
                            sums: sum[1..=p].to_vec(),
                            mean,
                        },
                        Progress::Standardized { rows: count },
                    ),
                    Err(e) => {
                        self.stage = restore;
                        return Err(e);
                    }
                }
            }
            Stage::CenteredSquares { count, sums, mean } => {
                match Standardizer::from_two_pass(count, &sums, sum) {
                    Ok(standardizer) => {
                        let rows = standardizer.count();
                        (
                            Stage::Optimize {
                                standardizer,
                                beta: vec![0.0; p + 1],
                            },
                            Progress::Standardized { rows },
                        )
                    }
                    Err(e) => {
                        self.stage = Stage::CenteredSquares { count, sums, mean };
                        return Err(e);
                    }
                }
            }
            Stage::Optimize { standardizer, beta } => {
                let step = match self.spec.optimizer {
                    OptimizerKind::Newton => {
                        NewtonTerms::from_aggregate(sum, p).and_then(|terms| {
                            newton_step(&terms, &beta, self.spec.l2).map(|s| (terms.count, s))
                        })
                    }
                    OptimizerKind::Fedavg => fedavg_from_aggregate(sum).map(|new_beta| {
                        let step = new_beta
                            .iter()
                            .zip(&beta)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0.0, f64::max);
                        let rows = sum[p + 1];
                        (
                            rows,
                            crate::logistic::newton::NewtonStep {
                                new_beta,
                                step_max_norm: step,
                                objective: f64::NAN,
                                gradient_max_norm: f64::NAN,
                            },
                        )
                    }),
                };
                let (rows, step) = match step {
                    Ok(s) => s,
                    Err(e) => {
                        self.stage = Stage::Optimize { standardizer, beta };
                        return Err(e);
                    }
                };
                let record = RoundRecord {
                    round: self.history.len() + 1,
                    rows,
                    objective: step.objective.is_finite().then_some(step.objective),
                    step_max_norm: step.step_max_norm,
                };
                self.history.push(record.clone());
                let converged = self.spec.optimizer == OptimizerKind::Newton
                    && step.step_max_norm < self.spec.tol;
                let beta = step.new_beta;
                let stage = if converged || self.history.len() >= self.spec.max_rounds {
                    Stage::Evaluate {
                        standardizer,
                        beta,
                        converged,
                    }
                } else {
                    Stage::Optimize { standardizer, beta }
                };
                (stage, Progress::Step(record))
            }
            Stage::Evaluate {
                standardizer,
                beta,
                converged,
            } => {
                let metrics = match ScoreHistogram::new(self.spec.bins).and_then(|h| h.pooled(sum))
                {
                    Ok(m) => Some(m),
                    // No held-out rows anywhere: nothing to report.
                    Err(ModelError::Empty { .. }) => None,
                    Err(e) => {
                        self.stage = Stage::Evaluate {
                            standardizer,
                            beta,
                            converged,
                        };
                        return Err(e);
                    }
                };
                let b = self.spec.bins;
                let calibration = match metrics {
                    Some(_) => match crate::metrics::calibration(&sum[..b], &sum[b..2 * b]) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            self.stage = Stage::Evaluate {
                                standardizer,
                                beta,
                                converged,
                            };
                            return Err(e);
                        }
                    },
                    None => None,
                };
                let model = match self.fitted(&standardizer, &beta, converged, metrics, calibration)
                {
                    Ok(m) => m,
                    Err(e) => {
                        self.stage = Stage::Evaluate {
                            standardizer,
                            beta,
                            converged,
                        };
                        return Err(e);
                    }
                };
                (Stage::Done(Box::new(model)), Progress::Evaluated(metrics))
            }
            Stage::Done(m) => {
                self.stage = Stage::Done(m);
                return Err(ModelError::InvalidSetting(
                    "the job is already finished".into(),
                ));
            }
        };
        self.stage = stage;
        Ok(progress)
    }

    /// Bins the pooled histograms of a scorecard's binning round; the later
    /// rounds then run on WOE columns. Returns the pooled row count.
    fn bin(&mut self, pooled: &[f64]) -> Result<f64> {
        let (Some(card), Some(layout)) = (&self.spec.scorecard, &self.layout) else {
            return Err(ModelError::InvalidSetting(
                "internal: a binning round in a job without a scorecard".into(),
            ));
        };
        let [good, bad] = layout.totals(pooled)?;
        check_both_classes(good + bad, bad, &self.spec.schema.label)?;
        let binnings = layout.bin_features(pooled, &card.binning())?;
        self.width = binnings.len();
        self.binnings = Some(binnings);
        Ok(good + bad)
    }

    /// The fitted model once the job is done.
    pub fn model(&self) -> Option<&FittedModel> {
        match &self.stage {
            Stage::Done(m) => Some(m),
            _ => None,
        }
    }
}

/// The pooled ROC and KS curves ([`crate::metrics::curves`]) of an
/// evaluation round, from its task and its decoded, published sum, read as
/// the job reads it for its metrics: a private round's sum is unscaled and
/// its histograms made monotone first (post-processing only). Any other
/// task, or a sum of the wrong length, is an error naming it.
pub fn evaluation_curves(task: &ModelTask, sum: &[f64], points: usize) -> Result<Curves> {
    let ModelTask::Evaluate { bins, noise, .. } = task.on_rows() else {
        return Err(ModelError::InvalidSetting(format!(
            "a {} round has no score histograms",
            task.name()
        )));
    };
    let bins = *bins;
    crate::error::check_len("evaluation-round sum", 2 * bins + 3, sum.len())?;
    let mut v = sum.to_vec();
    if let Some(noise) = noise {
        noise.unscale(&mut v);
        monotone_histograms(&mut v, bins);
    }
    crate::metrics::curves(&v[..bins], &v[bins..2 * bins], points)
}

/// Metrics from a decoded, unscaled private evaluation vector: each class's
/// noisy cumulative histogram is made non-decreasing
/// ([`monotone_histograms`]), then read by
/// [`ScoreHistogram::pooled_noisy`]. Post-processing only.
pub fn private_metrics(v: &[f64], bins: usize) -> Result<Metrics> {
    let mut v = v.to_vec();
    monotone_histograms(&mut v, bins);
    ScoreHistogram::private(bins).and_then(|h| h.pooled_noisy(&v))
}

/// Post-processing of a noisy evaluation vector: each class's cumulative
/// histogram (non-decreasing in truth) is replaced by its least-squares
/// non-decreasing fit (pool-adjacent-violators), floored at 0, and the bins
/// are its differences (so every bin is ≥ 0 and the class total is the
/// fitted cumulative's last value).
fn monotone_histograms(v: &mut [f64], bins: usize) {
    for class in 0..2 {
        let Some(h) = v.get_mut(class * bins..(class + 1) * bins) else {
            return;
        };
        let mut cum = 0.0;
        let cumulative: Vec<f64> = h
            .iter()
            .map(|c| {
                cum += c;
                cum
            })
            .collect();
        let fitted = isotonic(&cumulative);
        let mut prev = 0.0;
        for (b, f) in h.iter_mut().zip(fitted) {
            let f = f.max(prev);
            *b = f - prev;
            prev = f;
        }
    }
}

/// Least-squares non-decreasing fit (pool adjacent violators).
fn isotonic(y: &[f64]) -> Vec<f64> {
    let mut blocks: Vec<(f64, usize)> = Vec::with_capacity(y.len());
    for &v in y {
        blocks.push((v, 1));
        while blocks.len() > 1 {
            let (b, nb) = blocks[blocks.len() - 1];
            let (a, na) = blocks[blocks.len() - 2];
            if a <= b {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = ((a * na as f64 + b * nb as f64) / (na + nb) as f64, na + nb);
        }
    }
    blocks
        .into_iter()
        .flat_map(|(v, n)| std::iter::repeat_n(v, n))
        .collect()
}

#[cfg(test)]
mod monotone_tests {
    use super::*;

    #[test]
    fn noisy_histograms_become_non_negative_with_monotone_cumulatives() {
        assert_eq!(isotonic(&[1.0, 3.0, 2.0, 4.0]), [1.0, 2.5, 2.5, 4.0]);
        // bins = 3: positives, negatives, then the loss (untouched).
        let mut v = vec![-2.0, 5.0, 1.0, 4.0, -1.0, 3.0, 7.0];
        monotone_histograms(&mut v, 3);
        assert!(v[..6].iter().all(|b| *b >= 0.0), "{v:?}");
        assert_eq!(v[6], 7.0);
        assert!((v[..3].iter().sum::<f64>() - 4.0).abs() < 1e-12);
    }

    #[test]
    fn only_an_evaluation_round_has_curves() {
        let e = evaluation_curves(&ModelTask::Moments { noise: None }, &[1.0; 3], 10)
            .expect_err("moments");
        assert_eq!(
            e.to_string(),
            ModelError::InvalidSetting("a moments round has no score histograms".into())
                .to_string()
        );
    }
}

#[cfg(test)]
mod linear_tests {
    use super::*;

    /// A model on a numeric `n`, a categorical `c` (levels a, b, c) and a
    /// numeric `big` whose mean is large against its spread.
    fn model() -> FittedModel {
        serde_json::from_str(
            r#"{
              "format": "fedcredit-model/1", "job_id": "t", "job_spec_hash": "00",
              "features": ["n", "c=b", "c=c", "big"],
              "schema": {
                "label": {"column": "y", "positive": "1", "negative": "0"},
                "features": [
                  {"kind": "numeric", "name": "n"},
                  {"kind": "categorical", "name": "c", "categories": ["a", "b", "c"]},
                  {"kind": "numeric", "name": "big"}
                ]
              },
              "standardized": {"intercept": 0.1, "coefficients": [1.7, -0.3, 0.9, -2.1]},
              "original": {"intercept": 0.0, "coefficients": [0.0, 0.0, 0.0, 0.0]},
              "standardization": {"count": 10.0, "mean": [0.3, 0.4, 0.2, 987654.3],
                                  "std": [2.9, 0.49, 0.4, 0.7], "zero_variance": []},
              "l2": 1.0, "optimizer": "newton", "rounds": 1, "converged": true,
              "history": [], "metrics": null
            }"#,
        )
        .expect("model")
    }

    #[test]
    fn column_by_column_is_the_per_row_probability_bit_for_bit() {
        let m = model();
        let linear = m.linear().expect("linear");
        assert_eq!(linear.width(), 4);
        let n = 1000;
        let ns: Vec<f64> = (0..n)
            .map(|i| (f64::from(i) * 0.731).sin() * 40.0)
            .collect();
        let bigs: Vec<f64> = (0..n)
            .map(|i| 987_650.0 + f64::from(i % 97) * 0.1)
            .collect();
        let levels: Vec<usize> = (0..n).map(|i| (i % 3) as usize).collect();
        let mut z = vec![f64::NAN; n as usize];
        linear.start(&mut z);
        linear.add_column(0, &ns, &mut z);
        for (z, &level) in z.iter_mut().zip(&levels) {
            linear.add_category(1, 3, level, z);
        }
        linear.add_column(3, &bigs, &mut z);
        Linear::probabilities(&mut z);
        for i in 0..n as usize {
            let mut row = [ns[i], 0.0, 0.0, bigs[i]];
            if levels[i] > 0 {
                row[levels[i]] = 1.0;
            }
            let want = m.probability(&row).expect("row");
            assert_eq!(
                z[i].to_bits(),
                want.to_bits(),
                "row {i}: {} vs {want}",
                z[i]
            );
        }
    }

    #[test]
    fn a_model_whose_lengths_differ_has_no_linear_predictor() {
        let mut m = model();
        m.standardized.coefficients.pop();
        assert!(m.linear().is_err());
        m.features.pop();
        assert!(m.linear().is_err(), "standardization still has 4");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Feature, LabelSpec};

    fn job(label: LabelSpec) -> ModelJob {
        let spec = ModelJobSpec {
            schema: Schema {
                label,
                features: vec![Feature::Numeric { name: "x".into() }],
            },
            l2: 1.0,
            tol: 1e-8,
            max_rounds: 25,
            optimizer: OptimizerKind::Newton,
            fedavg: FedAvgSettings::default(),
            bins: crate::metrics::DEFAULT_BINS,
            privacy: Some(PrivacySetting::None),
            scorecard: None,
        };
        ModelJob::new(spec, "j", "h", NoiseCohort::single()).expect("job")
    }

    /// The statistics round's pooled label count stops a one-class job
    /// before any optimization round; the state is left as it was.
    #[test]
    fn a_one_class_pool_stops_at_the_statistics_round() {
        let mut j = job(LabelSpec::binary("y", "yes", "no"));
        assert_eq!(j.next_task().map(|t| t.dimension(1)), Some(3));
        let err = j.absorb(&[10.0, 55.0, 0.0]).expect_err("no positives");
        assert_eq!(
            err.to_string(),
            "the pooled data has no positive rows (label `yes` in column `y`), so no model can \
             be fitted; check the label spec against the data"
        );
        assert_eq!(j.next_task(), Some(ModelTask::Moments { noise: None }));
        let err = j.absorb(&[10.0, 55.0, 10.0]).expect_err("no negatives");
        assert!(
            err.to_string()
                .starts_with("the pooled data has no negative rows (label `no` in column `y`)"),
            "{err}"
        );
        let mut all = job(LabelSpec::all_others("y", "yes"));
        let err = all.absorb(&[10.0, 55.0, 10.0]).expect_err("no negatives");
        assert!(
            err.to_string()
                .contains("no negative rows (any label other than `yes` in column `y`)"),
            "{err}"
        );
        // Both classes present: the job moves on to the centered squares.
        assert_eq!(
            j.absorb(&[10.0, 55.0, 3.0]).expect("both classes"),
            Progress::Standardized { rows: 10.0 }
        );
        assert_eq!(
            j.next_task(),
            Some(ModelTask::CenteredSquares {
                mean: vec![5.5],
                noise: None
            })
        );
    }
}
