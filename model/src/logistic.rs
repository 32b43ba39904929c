//! Logistic regression: numerically stable link functions, prediction,
//! unit conversion, and the two federated optimizers.
//!
//! The model is `β = [b, w_1 … w_p]` on globally standardized features; the
//! objective (DESIGN.md) is
//!
//! ```text
//! F(β) = Σ_i logloss_i(β) + (l2/2)·‖w‖²       (intercept b unpenalized)
//! ```
//!
//! which is scikit-learn's `LogisticRegression(C = 1/l2)` on the pooled,
//! standardized rows.
//!
//! - [`newton`]: per-party gradient/Hessian sums, the coordinator's Newton
//!   step, and an in-process reference fit.
//! - [`fedavg`]: local mini-batch gradient descent and count-weighted model
//!   averaging (FedAvg, optionally FedProx).
//!
//! ```
//! use fedcredit_model::logistic::{logloss, sigmoid};
//!
//! assert_eq!(sigmoid(0.0), 0.5);
//! assert_eq!(sigmoid(1000.0), 1.0);
//! assert_eq!(sigmoid(-1000.0), 0.0);
//! assert_eq!(logloss(1000.0, 1.0), 0.0);
//! assert_eq!(logloss(-1000.0, 1.0), 1000.0);
//! ```

pub mod fedavg;
pub mod newton;

use ndarray::{Array1, ArrayView1, ArrayView2};

use crate::error::{ModelError, Result, check_finite, check_len};
use crate::stats::Standardizer;

pub use fedavg::{SgdConfig, fedavg_combine, fedavg_from_aggregate, fedavg_local_terms, local_sgd};
pub use newton::{
    CentralFit, IterationRecord, NewtonStep, NewtonTerms, fit_newton_central, local_newton_terms,
    newton_step, newton_terms_len, penalized_objective,
};

/// `1 / (1 + e^(−z))`, without overflow for any finite `z`.
pub fn sigmoid(z: f64) -> f64 {
    let e = (-z.abs()).exp();
    if z >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)`, accurate for large `|z|`.
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// Negative log-likelihood of label `y` at linear predictor (logit) `z`:
/// `y·ln(1+e^(−z)) + (1−y)·ln(1+e^z)`, without cancellation.
pub fn logloss(z: f64, y: f64) -> f64 {
    y * softplus(-z) + (1.0 - y) * softplus(z)
}

/// The per-row quantities of the hot loop from a single `exp`:
/// `(p, p(1−p), logloss)`.
#[inline]
pub(crate) fn link_terms(z: f64, y: f64) -> (f64, f64, f64) {
    let e = (-z.abs()).exp();
    let inv = 1.0 / (1.0 + e);
    let p = if z >= 0.0 { inv } else { e * inv };
    let w = e * inv * inv;
    let loss = e.ln_1p() + y * (-z).max(0.0) + (1.0 - y) * z.max(0.0);
    (p, w, loss)
}

/// Error unless every label is exactly 0 or 1.
pub(crate) fn check_labels(y: ArrayView1<'_, f64>) -> Result<()> {
    match y.iter().position(|v| *v != 0.0 && *v != 1.0) {
        Some(index) => Err(ModelError::InvalidLabel {
            index,
            value: y[index],
        }),
        None => Ok(()),
    }
}

/// Error unless `beta` has `p + 1` finite values.
pub(crate) fn check_beta(beta: &[f64], p: usize) -> Result<()> {
    check_len(
        "beta (intercept + one per encoded column)",
        p + 1,
        beta.len(),
    )?;
    check_finite("beta", beta)
}

/// Linear predictor `b + X·w` for every row.
pub fn linear_predictor(x: ArrayView2<'_, f64>, beta: &[f64]) -> Result<Array1<f64>> {
    check_beta(beta, x.ncols())?;
    let w = ArrayView1::from(&beta[1..]);
    Ok(x.dot(&w) + beta[0])
}

/// Predicted probability of the positive class for every row.
pub fn predict_proba(x: ArrayView2<'_, f64>, beta: &[f64]) -> Result<Array1<f64>> {
    Ok(linear_predictor(x, beta)?.mapv_into(sigmoid))
}

/// Convert coefficients on standardized features to coefficients on the
/// original (encoded, unstandardized) features:
/// `w_orig_j = w_j / std_j`, `b_orig = b − Σ_j w_j·mean_j / std_j`,
/// so that `b_orig + x·w_orig = b + z·w` with `z = (x − mean) / std`.
///
/// ```
/// use fedcredit_model::logistic::to_original_units;
/// use fedcredit_model::stats::Standardizer;
///
/// let s = Standardizer::from_mean_std(10.0, vec![2.0], vec![4.0]).unwrap();
/// let orig = to_original_units(&[1.0, 8.0], &s).unwrap();
/// assert_eq!(orig, [1.0 - 8.0 * 2.0 / 4.0, 2.0]);
/// ```
pub fn to_original_units(beta: &[f64], standardizer: &Standardizer) -> Result<Vec<f64>> {
    check_beta(beta, standardizer.width())?;
    let mut out = Vec::with_capacity(beta.len());
    let mut b = beta[0];
    out.push(0.0);
    for ((w, m), s) in beta[1..]
        .iter()
        .zip(standardizer.mean())
        .zip(standardizer.std())
    {
        let w_orig = w / s;
        b -= w_orig * m;
        out.push(w_orig);
    }
    out[0] = b;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn stable_at_extremes() {
        for z in [-1000.0, -745.0, -40.0, 0.0, 40.0, 745.0, 1000.0] {
            let p = sigmoid(z);
            assert!((0.0..=1.0).contains(&p));
            for y in [0.0, 1.0] {
                let l = logloss(z, y);
                assert!(l.is_finite() && l >= 0.0, "z={z} y={y} l={l}");
                let (lp, lw, ll) = link_terms(z, y);
                assert_eq!(lp, p);
                assert!(lw.is_finite() && lw >= 0.0);
                assert!((ll - l).abs() <= 1e-12 * (1.0 + l));
            }
        }
        assert_eq!(logloss(1000.0, 0.0), 1000.0);
        assert_eq!(logloss(-1000.0, 0.0), 0.0);
        assert_eq!(logloss(1000.0, 1.0), 0.0);
        assert_eq!(logloss(-1000.0, 1.0), 1000.0);
        assert_eq!(softplus(1000.0), 1000.0);
        assert_eq!(softplus(-1000.0), 0.0);
        // Tiny tails are kept, not rounded to zero.
        assert!((logloss(40.0, 1.0) - (-40.0f64).exp()).abs() < 1e-30);
        assert!((sigmoid(-40.0) - (-40.0f64).exp()).abs() < 1e-30);
        assert_eq!(link_terms(1000.0, 1.0).1, 0.0);
    }

    #[test]
    fn units_conversion_preserves_predictions() {
        let x = array![[1.0, 100.0], [3.0, 250.0], [2.0, 175.0]];
        let s = Standardizer::from_moments(&crate::stats::local_moments(x.view()), 2).expect("ok");
        let mut z = x.clone();
        s.apply(&mut z).expect("ok");
        let beta = [0.3, -1.2, 0.7];
        let orig = to_original_units(&beta, &s).expect("ok");
        let a = linear_predictor(z.view(), &beta).expect("ok");
        let b = linear_predictor(x.view(), &orig).expect("ok");
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-12);
        }
    }

    #[test]
    fn label_and_beta_checks() {
        assert!(check_labels(array![0.0, 1.0].view()).is_ok());
        assert!(matches!(
            check_labels(array![0.0, 0.5].view()),
            Err(ModelError::InvalidLabel { index: 1, .. })
        ));
        assert!(linear_predictor(array![[1.0]].view(), &[0.0]).is_err());
    }

    proptest! {
        #[test]
        fn sigmoid_and_logloss_are_stable(z in -1000.0f64..1000.0) {
            let p = sigmoid(z);
            let q = sigmoid(-z);
            prop_assert!((0.0..=1.0).contains(&p));
            prop_assert!((p + q - 1.0).abs() <= 2.0 * f64::EPSILON);
            let l1 = logloss(z, 1.0);
            let l0 = logloss(z, 0.0);
            prop_assert!(l1.is_finite() && l0.is_finite() && l1 >= 0.0 && l0 >= 0.0);
            // softplus(z) − softplus(−z) = z
            prop_assert!((l0 - l1 - z).abs() <= 1e-12 * (1.0 + z.abs()));
            let (_, w, _) = link_terms(z, 1.0);
            prop_assert!((w - p * q).abs() <= 1e-15);
        }
    }
}
