//! Differential privacy of a credit-model job: the budget in the job spec
//! ([`PrivacySpec`]), the noise every member adds to each round
//! ([`TaskNoise`]), and per-borrower sensitivity by construction.
//!
//! Each member adds its share of discrete Gaussian noise (exact integer
//! sampler, `fedcredit-privacy`) to its encoded vector before masking, so
//! only the noisy sum is ever decoded. A round's vector is cut into blocks
//! (counts, a feature's sums, the gradient, the Hessian, a histogram); the
//! contribution of one borrower (one row, added or removed) to block `b` has
//! L2 norm at most `bound_b`, by clipping. Block `b` is multiplied by
//! `scale_b = weight_b / bound_b` (Σ weight² = 1), so one row moves the scaled
//! vector by at most 1 in L2, and one noise level serves every block; the
//! coordinator divides by `scale_b` after decoding. The scaled vector is
//! rounded to multiples of 2^-g (the round's codec has g fractional bits), so
//! in integer units one row moves it by at most `2^g·S + √d` (S the scaled
//! sensitivity, √d the rounding), the sensitivity the accountant uses.
//!
//! Each member's variance is σ²/(t − c): any decoded sum has at least t
//! contributors, at most c of whom collude (and can subtract their own
//! noise), so the honest noise in any decoded sum has variance ≥ σ². The
//! round's zCDP cost is the KLS21 bound for the sum of t − c discrete
//! Gaussians ([`fedcredit_privacy::rho_distributed_discrete_gaussian`]); a
//! job's cost is the sum over its rounds, converted to (ε, δ) with the tight
//! CKS20 conversion.

use std::collections::BTreeMap;

use fedcredit_privacy::accountant::epsilon_from_rho;
use fedcredit_privacy::{Budget, DiscreteGaussian, DistributedNoise, Ledger};
use rand_core::{CryptoRng, RngCore};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ModelError, Result};
use crate::schema::{Feature, Schema};

/// Newton rounds of a private job when the spec does not say.
pub const DEFAULT_PRIVATE_ROUNDS: usize = 4;
/// Score-histogram bins of a private evaluation when the spec does not say.
pub const DEFAULT_PRIVATE_BINS: usize = 50;
/// Fewest bins a private evaluation may use.
pub const MIN_PRIVATE_BINS: usize = 10;
/// Per-row log-loss clip when the spec does not say (a probability of e^-10).
pub const DEFAULT_LOSS_CLIP: f64 = 10.0;
/// Most Newton rounds a private job may plan.
pub const MAX_PRIVATE_ROUNDS: usize = 50;
/// Each member's noise in integer units is sized near 2^22·… so that the
/// exact sampler's integer arithmetic holds it (σ below 2^24) with room.
const TARGET_SIGMA_BITS: i32 = 22;

/// How a job's zCDP budget ρ is divided between its kinds of rounds
/// (fractions of ρ; zCDP composes by adding ρ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetSplit {
    /// The two statistics rounds (counts and sums, then centered squares).
    pub statistics: f64,
    /// The Newton rounds, shared equally.
    pub training: f64,
    /// The evaluation round (score histograms).
    pub evaluation: f64,
}

impl Default for BudgetSplit {
    fn default() -> Self {
        Self {
            statistics: 0.1,
            training: 0.7,
            evaluation: 0.2,
        }
    }
}

fn default_rounds() -> usize {
    DEFAULT_PRIVATE_ROUNDS
}
fn default_loss_clip() -> f64 {
    DEFAULT_LOSS_CLIP
}
fn default_bins() -> usize {
    DEFAULT_PRIVATE_BINS
}

/// `[job.privacy]`: the job's (ε, δ) budget and the public parameters that
/// bound what one borrower can change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySpec {
    /// ε of the whole job (every round), ≥ 0.
    pub epsilon: f64,
    /// δ of the whole job, in (0, 1).
    pub delta: f64,
    /// Newton rounds: fixed, so the number of rounds reveals nothing.
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    /// L2 norm a standardized training row `(1, z)` is clipped to before
    /// the Newton terms; default √(p + 1), the norm of an average row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
    /// Per-row log-loss is clipped to this before it is summed.
    #[serde(default = "default_loss_clip")]
    pub loss_clip: f64,
    /// Score-histogram bins of the private evaluation round.
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// How ρ is divided between statistics, training and evaluation.
    #[serde(default)]
    pub split: BudgetSplit,
    /// Public `[low, high]` of every numeric feature; values are clipped to it.
    pub bounds: BTreeMap<String, [f64; 2]>,
}

impl PrivacySpec {
    /// (ε, δ) over `bounds` with every other setting at its default.
    pub fn with_defaults(epsilon: f64, delta: f64, bounds: BTreeMap<String, [f64; 2]>) -> Self {
        Self {
            epsilon,
            delta,
            rounds: DEFAULT_PRIVATE_ROUNDS,
            clip_norm: None,
            loss_clip: DEFAULT_LOSS_CLIP,
            bins: DEFAULT_PRIVATE_BINS,
            split: BudgetSplit::default(),
            bounds,
        }
    }

    /// The job's (ε, δ).
    pub fn budget(&self) -> Result<Budget> {
        Budget::new(self.epsilon, self.delta).map_err(|e| invalid(format!("budget: {e}")))
    }

    /// The clip norm for `p` encoded columns.
    pub fn clip_norm_for(&self, p: usize) -> f64 {
        self.clip_norm.unwrap_or(((p + 1) as f64).sqrt())
    }

    /// Checks the settings against the schema; errors name the setting.
    pub fn validate(&self, schema: &Schema) -> Result<()> {
        self.budget()?;
        if self.epsilon <= 0.0 || self.epsilon > 1e3 {
            return Err(invalid(format!(
                "epsilon: {} (must be > 0 and at most 1000; for no privacy write privacy = \"none\")",
                self.epsilon
            )));
        }
        if !(1..=MAX_PRIVATE_ROUNDS).contains(&self.rounds) {
            return Err(invalid(format!(
                "rounds: {} (must be 1 to {MAX_PRIVATE_ROUNDS})",
                self.rounds
            )));
        }
        if let Some(c) = self.clip_norm
            && !(c.is_finite() && (1.5..=1e6).contains(&c))
        {
            return Err(invalid(format!(
                "clip_norm: {c} (must be between 1.5 and 1e6: a row (1, z) has norm ≥ 1)"
            )));
        }
        if !(self.loss_clip.is_finite() && self.loss_clip > 0.0 && self.loss_clip <= 1e3) {
            return Err(invalid(format!(
                "loss_clip: {} (must be > 0 and at most 1000)",
                self.loss_clip
            )));
        }
        if !(MIN_PRIVATE_BINS..=crate::metrics::MAX_BINS).contains(&self.bins) {
            return Err(invalid(format!(
                "bins: {} (must be {MIN_PRIVATE_BINS} to {})",
                self.bins,
                crate::metrics::MAX_BINS
            )));
        }
        let s = self.split;
        let parts = [
            ("statistics", s.statistics),
            ("training", s.training),
            ("evaluation", s.evaluation),
        ];
        for (name, v) in parts {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(format!("split.{name}: {v} (must be > 0)")));
            }
        }
        let total = s.statistics + s.training + s.evaluation;
        if total > 1.0 + 1e-12 {
            return Err(invalid(format!(
                "split: statistics + training + evaluation = {total} (must be at most 1: the \
                 rounds would spend more than the budget)"
            )));
        }
        for f in &schema.features {
            if let Feature::Numeric { name } = f {
                let Some([lo, hi]) = self.bounds.get(name) else {
                    return Err(invalid(format!(
                        "bounds: numeric feature `{name}` has no public bounds (add \
                         `{name} = [low, high]` to [job.privacy.bounds])"
                    )));
                };
                if !(lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo) <= 1e15) {
                    return Err(invalid(format!(
                        "bounds.{name}: [{lo}, {hi}] (must be finite with low < high)"
                    )));
                }
            }
        }
        for name in self.bounds.keys() {
            let numeric = schema
                .features
                .iter()
                .any(|f| matches!(f, Feature::Numeric { name: n } if n == name));
            if !numeric {
                return Err(invalid(format!(
                    "bounds.{name}: no numeric feature of the schema has this name"
                )));
            }
        }
        Ok(())
    }

    /// Per encoded column: `Some((low, high))` for a numeric feature's
    /// column, `None` for a one-hot column (in {0, 1}).
    pub fn column_bounds(&self, schema: &Schema) -> Vec<Option<(f64, f64)>> {
        let mut out = Vec::with_capacity(schema.encoded_width());
        for f in &schema.features {
            match f {
                Feature::Numeric { name } => {
                    let [lo, hi] = self.bounds.get(name).copied().unwrap_or([0.0, 1.0]);
                    out.push(Some((lo, hi)));
                }
                Feature::Categorical { .. } => {
                    out.extend(std::iter::repeat_n(None, f.encoded_width()));
                }
            }
        }
        out
    }
}

/// A job's privacy setting: a [`PrivacySpec`], or `"none"` (exact sums and
/// the exact 10,000-bin evaluation, which can single out applicants).
#[derive(Debug, Clone, PartialEq)]
pub enum PrivacySetting {
    /// `privacy = "none"`.
    None,
    /// `[job.privacy]` (boxed: it holds a table of bounds).
    Private(Box<PrivacySpec>),
}

impl PrivacySetting {
    /// The spec, if private.
    pub fn spec(&self) -> Option<&PrivacySpec> {
        match self {
            PrivacySetting::None => None,
            PrivacySetting::Private(s) => Some(s),
        }
    }
}

impl Serialize for PrivacySetting {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            PrivacySetting::None => s.serialize_str("none"),
            PrivacySetting::Private(spec) => spec.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for PrivacySetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PrivacySetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"none\" or a [job.privacy] table (epsilon, delta, bounds)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                if v == "none" {
                    Ok(PrivacySetting::None)
                } else {
                    Err(E::custom(format!(
                        "privacy = {v:?}: write privacy = \"none\", or a [job.privacy] table"
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                // Name the table: inside a flattened [job] the parser's
                // position is the table's start, not the key's.
                PrivacySpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|s| PrivacySetting::Private(Box::new(s)))
                    .map_err(|e| de::Error::custom(format!("[job.privacy]: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

fn invalid(why: String) -> ModelError {
    ModelError::InvalidSetting(format!("privacy: {why}"))
}

/// Who adds noise to a round: the roster size n and t − c, the fewest honest
/// contributors of any decoded sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseCohort {
    /// Members of the consortium (n).
    pub members: u64,
    /// Threshold minus the collusion bound (t − c), ≥ 1.
    pub honest: u64,
}

impl NoiseCohort {
    /// A single party that adds all the noise itself (n = 1, t − c = 1).
    pub fn single() -> Self {
        Self {
            members: 1,
            honest: 1,
        }
    }
}

/// One block of a round's vector: `len` values whose per-row contribution
/// has L2 norm ≤ `bound` and which are multiplied by `scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseBlock {
    /// Values in the block.
    pub len: usize,
    /// L2 bound of one row's contribution to the block, in raw units.
    pub bound: f64,
    /// Multiplier applied before rounding and noise (0: the block is not sent).
    pub scale: f64,
}

/// The noise of one round, carried in its task (so in the round log): what
/// every member adds, and the zCDP cost of publishing the sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskNoise {
    /// Scaled values are rounded to multiples of 2^-grid_bits (the round's
    /// codec has this many fractional bits); noise is in these units.
    pub grid_bits: u32,
    /// Each member adds N_Z(0, sigma2_member) per value, in grid units.
    pub sigma2_member: u64,
    /// t − c: the honest contributors the guarantee counts on.
    pub honest: u64,
    /// n: the members that may add noise (for the Hessian ridge).
    pub members: u64,
    /// The blocks, in vector order; their lengths add to the dimension.
    pub blocks: Vec<NoiseBlock>,
    /// How each member bounds one row's contribution (the blocks' bounds
    /// hold because of it).
    pub clip: Clipping,
    /// zCDP ρ of publishing this round's sum (KLS21 bound).
    pub rho: f64,
}

/// What a member clips before it computes a private round's vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Clipping {
    /// Each encoded column to its public `[low, high]` (numeric) or
    /// `[0, 1]` (one-hot, `None`); numeric columns centred on the bounds'
    /// midpoint when `centre`.
    Columns {
        /// Per encoded column.
        bounds: Vec<Option<[f64; 2]>>,
        /// Subtract the midpoint (statistics' first pass).
        centre: bool,
    },
    /// Each standardized row `(1, z)` to L2 norm `norm`, each row's
    /// log-loss to `loss`.
    RowNorm {
        /// Row norm bound C.
        norm: f64,
        /// Per-row log-loss bound.
        loss: f64,
    },
    /// Each row's log-loss to `loss` (evaluation; a row fills one bin).
    Loss {
        /// Per-row log-loss bound.
        loss: f64,
    },
}

impl TaskNoise {
    /// Sizes the noise of a round whose blocks are `blocks` (len, bound,
    /// weight²) so that publishing its sum costs at most `rho_target`.
    pub fn plan(
        rho_target: f64,
        cohort: NoiseCohort,
        blocks: &[(usize, f64, f64)],
        clip: Clipping,
    ) -> Result<Self> {
        if !(rho_target.is_finite() && rho_target > 0.0) {
            return Err(invalid(format!("a round's ρ of {rho_target}")));
        }
        if cohort.honest == 0 || cohort.honest > cohort.members {
            return Err(invalid(format!(
                "t − c = {} of {} members",
                cohort.honest, cohort.members
            )));
        }
        let total_w: f64 = blocks.iter().map(|b| b.2).sum();
        let blocks: Vec<NoiseBlock> = blocks
            .iter()
            .map(|&(len, bound, w2)| NoiseBlock {
                len,
                bound,
                scale: if w2 > 0.0 && total_w > 0.0 && bound > 0.0 {
                    (w2 / total_w).sqrt() / bound
                } else {
                    0.0
                },
            })
            .collect();
        let dim: usize = blocks.iter().map(|b| b.len).sum();
        // Scaled sensitivity ≤ 1: σ² (scaled) for ρ is 1/(2ρ).
        let sigma2_total = 1.0 / (2.0 * rho_target);
        let sigma2_member = sigma2_total / cohort.honest as f64;
        let sigma_member = sigma2_member.sqrt();
        let g = (f64::from(TARGET_SIGMA_BITS) - sigma_member.log2()).floor();
        if !(0.0..=120.0).contains(&g) {
            return Err(invalid(format!(
                "a round's ρ of {rho_target} needs noise σ = {sigma_member:.3e} per member, \
                 outside what the codec holds; raise or lower epsilon"
            )));
        }
        let grid_bits = g as u32;
        let scale = 2f64.powi(grid_bits as i32);
        // Cover the rounding: the integer sensitivity is 2^g·1 + √d.
        let inflate = 1.0 + (dim as f64).sqrt() / scale;
        let sigma2_int = (sigma2_member * scale * scale * inflate * inflate).ceil();
        let mut noise = Self {
            grid_bits,
            sigma2_member: sigma2_int as u64,
            honest: cohort.honest,
            members: cohort.members,
            blocks,
            clip,
            rho: 0.0,
        };
        noise.rho = noise.recompute_rho()?;
        if noise.rho > rho_target * (1.0 + 1e-9) {
            return Err(invalid(format!(
                "internal: planned ρ {} above the round's share {rho_target}",
                noise.rho
            )));
        }
        Ok(noise)
    }

    /// Values in the round.
    pub fn dimension(&self) -> usize {
        self.blocks.iter().map(|b| b.len).sum()
    }

    /// L2 sensitivity of the scaled vector: √Σ (bound·scale)².
    pub fn scaled_sensitivity(&self) -> f64 {
        self.blocks
            .iter()
            .map(|b| (b.bound * b.scale).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// ρ from the parameters alone (the auditor's recomputation): KLS21 for
    /// t − c members of σ² each, sensitivity 2^g·S + √d in grid units.
    pub fn recompute_rho(&self) -> Result<f64> {
        let dim = self.dimension();
        if dim == 0 || self.grid_bits > 120 || self.sigma2_member == 0 {
            return Err(invalid(format!(
                "noise parameters: dimension {dim}, grid_bits {}, sigma2_member {}",
                self.grid_bits, self.sigma2_member
            )));
        }
        if let Some(b) = self.blocks.iter().find(|b| {
            !(b.bound.is_finite() && b.bound >= 0.0 && b.scale.is_finite() && b.scale >= 0.0)
        }) {
            return Err(invalid(format!("noise block {b:?}")));
        }
        let l2 = 2f64.powi(self.grid_bits as i32) * self.scaled_sensitivity() + (dim as f64).sqrt();
        fedcredit_privacy::rho_distributed_discrete_gaussian(&DistributedNoise {
            l2_sensitivity: l2,
            l1_sensitivity: None,
            dim: dim as u64,
            honest: self.honest,
            sigma2_member: self.sigma2_member as f64,
        })
        .map_err(|e| invalid(format!("noise parameters: {e}")))
    }

    /// Multiplies each block by its scale (before encoding).
    pub fn scale(&self, values: &mut [f64]) {
        self.for_blocks(values, |v, b| *v *= b.scale);
    }

    /// Divides each block by its scale (after decoding); blocks not sent are 0.
    pub fn unscale(&self, values: &mut [f64]) {
        self.for_blocks(values, |v, b| {
            *v = if b.scale > 0.0 { *v / b.scale } else { 0.0 }
        });
    }

    fn for_blocks(&self, values: &mut [f64], f: impl Fn(&mut f64, &NoiseBlock)) {
        let mut rest = values;
        for b in &self.blocks {
            let n = b.len.min(rest.len());
            let (head, tail) = rest.split_at_mut(n);
            head.iter_mut().for_each(|v| f(v, b));
            rest = tail;
        }
    }

    /// One member's noise share: `dimension` draws of N_Z(0, sigma2_member),
    /// in grid units.
    pub fn sample_share<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> Result<Vec<i64>> {
        let dg = DiscreteGaussian::new(self.sigma2_member, 1)
            .map_err(|e| invalid(format!("noise sampler: {e}")))?;
        let mut out = vec![0i64; self.dimension()];
        dg.fill(rng, &mut out);
        Ok(out)
    }

    /// The standard deviation, in raw units of block `index`, of the noise
    /// of `contributors` members (at least `honest` in any decoded sum).
    pub fn raw_std(&self, index: usize, contributors: u64) -> f64 {
        let b = self.blocks.get(index).map_or(0.0, |b| b.scale);
        let s = ((contributors as f64) * self.sigma2_member as f64).sqrt()
            / 2f64.powi(self.grid_bits as i32);
        if b > 0.0 { s / b } else { f64::INFINITY }
    }
}

/// The (ε, δ) a model was trained and evaluated under, in model.json.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrivacyReport {
    /// The job's ε budget.
    pub epsilon: f64,
    /// The job's δ.
    pub delta: f64,
    /// ε spent by the rounds that ran (at δ).
    pub epsilon_spent: f64,
    /// zCDP ρ spent.
    pub rho_spent: f64,
    /// Rounds charged.
    pub rounds: u64,
}

/// The planned ρ of each kind of round of a private job.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivacyPlan {
    /// The job's privacy settings.
    pub spec: PrivacySpec,
    /// Who adds noise.
    pub cohort: NoiseCohort,
    /// ρ of each statistics round (two of them).
    pub rho_statistics: f64,
    /// ρ of each Newton round.
    pub rho_training: f64,
    /// ρ of the evaluation round.
    pub rho_evaluation: f64,
    /// Per encoded column: numeric bounds, or `None` for one-hot.
    pub columns: Vec<Option<(f64, f64)>>,
    /// Encoded columns of each feature, in order (group sizes).
    pub groups: Vec<(usize, bool)>,
}

impl PrivacyPlan {
    /// Splits the budget over the job's rounds and checks that they fit.
    pub fn new(spec: &PrivacySpec, schema: &Schema, cohort: NoiseCohort) -> Result<Self> {
        spec.validate(schema)?;
        let budget = spec.budget()?;
        let rho = budget
            .max_rho()
            .map_err(|e| invalid(format!("budget: {e}")))?;
        let s = spec.split;
        let plan = Self {
            spec: spec.clone(),
            cohort,
            rho_statistics: rho * s.statistics / 2.0,
            rho_training: rho * s.training / spec.rounds as f64,
            rho_evaluation: rho * s.evaluation,
            columns: spec.column_bounds(schema),
            groups: schema
                .features
                .iter()
                .map(|f| (f.encoded_width(), matches!(f, Feature::Numeric { .. })))
                .collect(),
        };
        // The accountant must accept every planned round.
        let mut ledger = Ledger::new(budget);
        let rounds = std::iter::repeat_n(plan.rho_statistics, 2)
            .chain(std::iter::repeat_n(plan.rho_training, spec.rounds))
            .chain(std::iter::once(plan.rho_evaluation));
        for r in rounds {
            ledger
                .charge(r)
                .map_err(|e| invalid(format!("the planned rounds exceed the budget: {e}")))?;
        }
        Ok(plan)
    }

    /// The noise of the first statistics round `[n, Σx…, Σy]`: count, each
    /// feature (numeric centred on its bounds' midpoint; one-hot columns,
    /// of which a row sets at most one) and the label, equally weighted.
    pub fn moments(&self) -> Result<TaskNoise> {
        let mut blocks = vec![(1, 1.0, 1.0)];
        for (j, &(width, numeric)) in self.groups.iter().enumerate() {
            let bound = if numeric {
                let (lo, hi) = self.numeric_bounds(j);
                (hi - lo) / 2.0
            } else {
                1.0
            };
            blocks.push((width, bound, 1.0));
        }
        blocks.push((1, 1.0, 1.0));
        TaskNoise::plan(
            self.rho_statistics,
            self.cohort,
            &blocks,
            self.column_clipping(true),
        )
    }

    /// The noise of the centred-squares round: numeric columns only (a
    /// one-hot column's variance is m(1 − m), from its mean).
    pub fn centered_squares(&self, mean: &[f64]) -> Result<TaskNoise> {
        let mut blocks = Vec::new();
        let mut col = 0;
        for &(width, numeric) in &self.groups {
            if numeric {
                let (lo, hi) = self.columns[col].unwrap_or((0.0, 1.0));
                let m = mean.get(col).copied().unwrap_or(lo).clamp(lo, hi);
                let bound = (hi - m).max(m - lo).powi(2);
                blocks.push((width, bound, 1.0));
            } else {
                blocks.push((width, 1.0, 0.0));
            }
            col += width;
        }
        TaskNoise::plan(
            self.rho_statistics,
            self.cohort,
            &blocks,
            self.column_clipping(false),
        )
    }

    /// The noise of a Newton round on `p` columns: gradient (row norm ≤ C),
    /// Hessian (≤ C²/4), count and clipped loss. The step uses only the
    /// gradient and the Hessian; the count and the loss are only reported,
    /// so they get 1% of the weight each.
    pub fn newton(&self, p: usize) -> Result<TaskNoise> {
        let c = self.spec.clip_norm_for(p);
        let m = p + 1;
        let blocks = [
            (m, c, 0.49),
            (m * (m + 1) / 2, c * c / 4.0, 0.49),
            (1, 1.0, 0.01),
            (1, self.spec.loss_clip, 0.01),
        ];
        let clip = Clipping::RowNorm {
            norm: c,
            loss: self.spec.loss_clip,
        };
        TaskNoise::plan(self.rho_training, self.cohort, &blocks, clip)
    }

    /// The noise of the evaluation round: both histograms (a row adds 1 to
    /// one bin) and the clipped loss. The two counts are not sent (weight
    /// 0): the decoding takes the class totals from the histograms.
    pub fn evaluate(&self) -> Result<TaskNoise> {
        let b = self.spec.bins;
        let blocks = [
            (2 * b, 1.0, 0.98),
            (1, self.spec.loss_clip, 0.02),
            (2, std::f64::consts::SQRT_2, 0.0),
        ];
        let clip = Clipping::Loss {
            loss: self.spec.loss_clip,
        };
        TaskNoise::plan(self.rho_evaluation, self.cohort, &blocks, clip)
    }

    fn column_clipping(&self, centre: bool) -> Clipping {
        Clipping::Columns {
            bounds: self
                .columns
                .iter()
                .map(|c| c.map(|(lo, hi)| [lo, hi]))
                .collect(),
            centre,
        }
    }

    fn numeric_bounds(&self, group: usize) -> (f64, f64) {
        let col: usize = self.groups[..group].iter().map(|g| g.0).sum();
        self.columns
            .get(col)
            .copied()
            .flatten()
            .unwrap_or((0.0, 1.0))
    }
}

/// ε spent by rounds of total ρ, at δ.
pub fn epsilon_spent(rho: f64, delta: f64) -> Result<f64> {
    epsilon_from_rho(rho, delta).map_err(|e| invalid(format!("accountant: {e}")))
}

/// Clips every encoded column to its public bounds (numeric) or [0, 1]
/// (one-hot), and centres numeric columns on their bounds' midpoint: the
/// rows a private statistics round sums.
pub fn clip_columns<S: ndarray::DataMut<Elem = f64>>(
    x: &mut ndarray::ArrayBase<S, ndarray::Ix2>,
    columns: &[Option<[f64; 2]>],
    centre: bool,
) {
    for mut row in x.rows_mut() {
        for (v, c) in row.iter_mut().zip(columns) {
            *v = match c {
                Some([lo, hi]) => {
                    let clipped = v.clamp(*lo, *hi);
                    if centre {
                        clipped - (lo + hi) / 2.0
                    } else {
                        clipped
                    }
                }
                None => v.clamp(0.0, 1.0),
            };
        }
    }
}

/// Scales every row `z` of a standardized matrix so that `‖(1, z)‖ ≤ c`
/// (idempotent: clipped rows stay as they are).
pub fn clip_row_norms<S: ndarray::DataMut<Elem = f64>>(
    x: &mut ndarray::ArrayBase<S, ndarray::Ix2>,
    c: f64,
) {
    let limit2 = (c * c - 1.0).max(0.0);
    for mut row in x.rows_mut() {
        let n2: f64 = row.iter().map(|v| v * v).sum();
        if n2 > limit2 {
            let f = (limit2 / n2).sqrt();
            row.iter_mut().for_each(|v| *v *= f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::LabelSpec;

    fn schema() -> Schema {
        Schema {
            label: LabelSpec::binary("y", "bad", "good"),
            features: vec![
                Feature::Numeric {
                    name: "amount".into(),
                },
                Feature::Categorical {
                    name: "purpose".into(),
                    categories: vec!["a".into(), "b".into(), "c".into()],
                },
            ],
        }
    }

    fn spec() -> PrivacySpec {
        PrivacySpec {
            epsilon: 1.0,
            delta: 1e-6,
            rounds: 4,
            clip_norm: None,
            loss_clip: 10.0,
            bins: 100,
            split: BudgetSplit::default(),
            bounds: [("amount".to_string(), [0.0, 1000.0])].into(),
        }
    }

    #[test]
    fn planned_rounds_fit_the_budget_and_recompute_exactly() {
        let cohort = NoiseCohort {
            members: 5,
            honest: 3,
        };
        let plan = PrivacyPlan::new(&spec(), &schema(), cohort).expect("plan");
        let rounds = [
            plan.moments().expect("moments"),
            plan.centered_squares(&[500.0, 0.3, 0.3]).expect("cs"),
            plan.newton(3).expect("newton"),
            plan.evaluate().expect("evaluate"),
        ];
        for (r, target) in rounds.iter().zip([
            plan.rho_statistics,
            plan.rho_statistics,
            plan.rho_training,
            plan.rho_evaluation,
        ]) {
            assert!(r.rho <= target * (1.0 + 1e-9), "{} > {target}", r.rho);
            assert!(r.rho > 0.99 * target, "{} much below {target}", r.rho);
            assert_eq!(r.recompute_rho().expect("rho"), r.rho);
            assert!(r.scaled_sensitivity() <= 1.0 + 1e-12);
        }
        let total = rounds[0].rho + rounds[1].rho + 4.0 * rounds[2].rho + rounds[3].rho;
        let eps = epsilon_spent(total, 1e-6).expect("eps");
        assert!(eps <= 1.0 + 1e-6, "{eps}");
    }

    #[test]
    fn settings_are_checked_by_name() {
        let mut s = spec();
        s.bounds.clear();
        let e = s.validate(&schema()).expect_err("no bounds");
        assert!(
            e.to_string().contains("`amount` has no public bounds"),
            "{e}"
        );
        let mut s = spec();
        s.split.training = 0.9;
        let e = s.validate(&schema()).expect_err("split");
        assert!(e.to_string().contains("must be at most 1"), "{e}");
        let mut s = spec();
        s.bounds.insert("purpose".into(), [0.0, 1.0]);
        assert!(s.validate(&schema()).is_err());
    }

    #[test]
    fn privacy_setting_reads_none_or_a_table() {
        let none: PrivacySetting = serde_json::from_str("\"none\"").expect("none");
        assert_eq!(none, PrivacySetting::None);
        let e = serde_json::from_str::<PrivacySetting>("\"off\"").expect_err("off");
        assert!(e.to_string().contains("privacy = \"off\""), "{e}");
        let e = serde_json::from_str::<PrivacySetting>(r#"{"epsilon": "lots"}"#).expect_err("bad");
        assert!(
            e.to_string().starts_with("[job.privacy]: invalid type"),
            "{e}"
        );
        let json = serde_json::to_string(&PrivacySetting::Private(Box::new(spec()))).expect("json");
        let back: PrivacySetting = serde_json::from_str(&json).expect("back");
        assert_eq!(back, PrivacySetting::Private(Box::new(spec())));
    }

    #[test]
    fn scale_and_unscale_invert() {
        let n = TaskNoise::plan(
            0.01,
            NoiseCohort::single(),
            &[(2, 10.0, 1.0), (1, 1.0, 0.0), (1, 2.0, 3.0)],
            Clipping::Loss { loss: 1.0 },
        )
        .expect("plan");
        let mut v = vec![5.0, -5.0, 7.0, 1.0];
        n.scale(&mut v);
        assert_eq!(v[2], 0.0, "a block of weight 0 is not sent");
        n.unscale(&mut v);
        assert!((v[0] - 5.0).abs() < 1e-12 && (v[3] - 1.0).abs() < 1e-12);
    }

    /// Two held-out sets that differ in one row (added, or changed): their
    /// scaled evaluation vectors differ by at most the scaled sensitivity
    /// the accountant charged, far inside the noise every bin receives.
    #[test]
    fn one_held_out_row_moves_the_histograms_within_the_noise() {
        let cohort = NoiseCohort {
            members: 4,
            honest: 2,
        };
        let plan = PrivacyPlan::new(&spec(), &schema(), cohort).expect("plan");
        let noise = plan.evaluate().expect("evaluate");
        let h = crate::ScoreHistogram::private(plan.spec.bins).expect("bins");
        let loss = plan.spec.loss_clip;
        let scores: Vec<f64> = (0..300).map(|i| (i as f64 + 0.5) / 300.0).collect();
        let labels: Vec<f64> = (0..300).map(|i| f64::from(i % 3 == 0)).collect();
        let base = h
            .local_terms_clipped(&scores, &labels, loss)
            .expect("terms");
        // A confident wrong prediction: its log-loss (≈ 36.7) is clipped to 10.
        let mut added = (scores.clone(), labels.clone());
        added.0.push(0.0);
        added.1.push(1.0);
        let mut changed = (scores.clone(), labels.clone());
        changed.0[7] = 1.0 - 1e-16;
        changed.1[7] = 0.0;
        let sigma = noise.raw_std(0, noise.honest) * noise.blocks[0].scale;
        for (what, (s, l), allowed) in [("added", added, 1.0), ("changed", changed, 2.0)] {
            let other = h.local_terms_clipped(&s, &l, loss).expect("terms");
            let (mut a, mut b) = (base.clone(), other);
            noise.scale(&mut a);
            noise.scale(&mut b);
            let d2: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum();
            // A change is a removal and an addition: twice the sensitivity.
            assert!(
                d2.sqrt() <= allowed * noise.scaled_sensitivity() + 1e-12,
                "{what}: moved {} > {}",
                d2.sqrt(),
                allowed * noise.scaled_sensitivity()
            );
            // At this budget the noise on every value is over 5 times that move.
            assert!(
                sigma > 5.0 * d2.sqrt(),
                "{what}: σ {sigma} vs move {}",
                d2.sqrt()
            );
        }
    }

    #[test]
    fn row_clipping_bounds_the_norm_with_the_intercept() {
        let mut x = ndarray::array![[3.0, 4.0], [0.1, 0.1]];
        clip_row_norms(&mut x, 2.0);
        let n0 = 1.0 + x[[0, 0]].powi(2) + x[[0, 1]].powi(2);
        assert!((n0.sqrt() - 2.0).abs() < 1e-12);
        assert_eq!(x[[1, 0]], 0.1);
    }
}
