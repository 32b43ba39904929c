//! `bench-credit --epsilon`: the private job against the exact central fit,
//! both scored exactly on seeded held-out rows, and (`--eval-epsilon`) a
//! private evaluation round alone at its own budget.
//!
//! The synthetic features are standard normals (`model::synthetic`), so
//! their public bounds are [−6, 6] for every feature (a value outside is
//! clipped, about 2 in 10⁹).

use anyhow::{Context, Result};
use fedcredit_crypto::secagg::Thresholds;
use fedcredit_model::job::FittedModel;
use fedcredit_model::logistic::predict_proba;
use fedcredit_model::metrics::{Metrics, ScoreHistogram, metrics_exact};
use fedcredit_model::privacy::{BudgetSplit, NoiseCohort, PrivacyPlan, PrivacySpec};
use fedcredit_model::{Schema, Standardizer};
use ndarray::{Array2, ArrayView1};
use rand::rngs::OsRng;

/// Public bounds of every synthetic (standard-normal) feature.
pub const SYNTHETIC_BOUNDS: [f64; 2] = [-6.0, 6.0];

/// A private job's settings over the synthetic schema.
pub fn spec(schema: &Schema, epsilon: f64, delta: f64, split: BudgetSplit) -> PrivacySpec {
    let bounds = schema
        .features
        .iter()
        .map(|f| (f.name().to_owned(), SYNTHETIC_BOUNDS))
        .collect();
    PrivacySpec {
        split,
        ..PrivacySpec::with_defaults(epsilon, delta, bounds)
    }
}

/// The noise cohort of `credit::run`'s in-process consortium of `n`.
pub fn cohort(n: usize) -> NoiseCohort {
    let c = Thresholds::default_colluders(n);
    let t = Thresholds::default_threshold(n, c);
    NoiseCohort {
        members: n as u64,
        honest: t.saturating_sub(c).max(1) as u64,
    }
}

/// Probabilities of `beta` (standardized units) on raw rows `x`.
pub fn scores(x: &Array2<f64>, standardizer: &Standardizer, beta: &[f64]) -> Result<Vec<f64>> {
    let mut z = x.clone();
    standardizer.apply(&mut z)?;
    Ok(predict_proba(z.view(), beta)?.to_vec())
}

/// Exact metrics of scores on labels.
pub fn exact(scores: &[f64], y: ArrayView1<'_, f64>) -> Result<Metrics> {
    Ok(metrics_exact(scores, &y.to_vec())?)
}

/// A private evaluation round alone, spending (ε, δ): the job's own
/// evaluation noise ([`PrivacyPlan::evaluate`], every one of the `cohort`'s
/// members adding its share), planned with (almost) all of the budget on the
/// evaluation round, applied to the exact histograms in grid units, decoded
/// as the coordinator does.
pub fn private_evaluation(
    schema: &Schema,
    scores: &[f64],
    y: ArrayView1<'_, f64>,
    epsilon: f64,
    delta: f64,
    cohort: NoiseCohort,
) -> Result<Metrics> {
    let split = BudgetSplit {
        statistics: 1e-9,
        training: 1e-9,
        evaluation: 1.0 - 2e-9,
    };
    let spec = spec(schema, epsilon, delta, split);
    let plan = PrivacyPlan::new(&spec, schema, cohort)?;
    let noise = plan.evaluate()?;
    let h = ScoreHistogram::private(plan.spec.bins)?;
    let mut v = h.local_terms_clipped(scores, &y.to_vec(), spec.loss_clip)?;
    noise.scale(&mut v);
    let grid = 2f64.powi(noise.grid_bits as i32);
    let mut ints: Vec<i64> = v.iter().map(|x| (x * grid).round() as i64).collect();
    for _ in 0..cohort.members {
        let share = noise.sample_share(&mut OsRng)?;
        ints.iter_mut().zip(share).for_each(|(a, b)| *a += b);
    }
    let mut out: Vec<f64> = ints.iter().map(|&a| a as f64 / grid).collect();
    noise.unscale(&mut out);
    fedcredit_model::job::private_metrics(&out, h.bins()).context("decoding the noisy evaluation")
}

/// The federated model's standardized β, intercept first.
pub fn beta_of(model: &FittedModel) -> Vec<f64> {
    std::iter::once(model.standardized.intercept)
        .chain(model.standardized.coefficients.iter().copied())
        .collect()
}
