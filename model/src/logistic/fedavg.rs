//! FedAvg / FedProx comparator: local mini-batch gradient descent, then a
//! count-weighted average of the local models.
//!
//! # Local objective (how the L2 term is shared)
//!
//! The global objective is `F(β) = Σ_i logloss_i + (l2/2)‖w‖²`. Party `k`
//! with `n_k` of the `N` rows takes its share `n_k/N` of the penalty and
//! minimises the per-row average
//!
//! ```text
//! f_k(β) = (1/n_k)·Σ_{i∈k} logloss_i + (l2 / (2N))·‖w‖²  (+ (μ/2)‖β − β⁰‖² for FedProx)
//! ```
//!
//! so that `Σ_k n_k·f_k = F` (without the proximal term): the optima of the
//! parties' objectives average toward the global optimum, whatever the
//! split. `N` is known to every party after the statistics round. Each
//! mini-batch step is `β ← β − lr·∇` with the batch-mean loss gradient.
//!
//! # Layout of a FedAvg-round vector
//!
//! `[n_k·β_0 … n_k·β_p, n_k]` (see [`fedavg_local_terms`]); the
//! aggregate divided by its last entry is the weighted average
//! ([`fedavg_from_aggregate`]).
//!
//! ```
//! use fedcredit_model::logistic::fedavg::{fedavg_combine, local_sgd, SgdConfig};
//! use fedcredit_model::synthetic::{generate, known_beta};
//!
//! let (x, y) = generate(400, 3, &known_beta(3), 1).unwrap();
//! let cfg = SgdConfig { total_rows: 400.0, ..SgdConfig::default() };
//! let a = local_sgd(x.slice(ndarray::s![..200, ..]), y.slice(ndarray::s![..200]), &[0.0; 4], &cfg).unwrap();
//! let b = local_sgd(x.slice(ndarray::s![200.., ..]), y.slice(ndarray::s![200..]), &[0.0; 4], &cfg).unwrap();
//! let avg = fedavg_combine(&[(a, 200), (b, 200)]).unwrap();
//! assert_eq!(avg.len(), 4);
//! ```

use ndarray::{ArrayView1, ArrayView2};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{check_beta, check_labels, link_terms};
use crate::error::{ModelError, Result, check_finite, check_len};

/// Settings of one party's local training in a FedAvg/FedProx round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Global L2 strength (same `l2` as the Newton objective).
    pub l2: f64,
    /// Global row count `N` (from the statistics round); the local penalty
    /// is `l2·n_k/N`, see the module docs.
    pub total_rows: f64,
    /// Passes over the local rows.
    pub epochs: usize,
    /// Rows per mini-batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Step size on the per-row-average objective.
    pub learning_rate: f64,
    /// FedProx proximal strength `μ` toward the round's starting model (0 = FedAvg).
    pub prox_mu: f64,
    /// Seed of the ChaCha20 RNG that shuffles rows each epoch.
    pub seed: u64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            l2: 1.0,
            total_rows: 1.0,
            epochs: 5,
            batch_size: 64,
            learning_rate: 0.1,
            prox_mu: 0.0,
            seed: 0,
        }
    }
}

impl SgdConfig {
    fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| {
            Err(ModelError::InvalidParameter {
                name,
                reason: reason.to_owned(),
            })
        };
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad("l2", "must be finite and ≥ 0");
        }
        if !(self.total_rows.is_finite() && self.total_rows > 0.0) {
            return bad("total_rows", "must be finite and > 0");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be ≥ 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "must be finite and > 0");
        }
        if !(self.prox_mu.is_finite() && self.prox_mu >= 0.0) {
            return bad("prox_mu", "must be finite and ≥ 0");
        }
        Ok(())
    }
}

/// Mini-batch gradient descent on the local rows from `beta0` (module docs
/// give the objective). Deterministic given `cfg.seed`: rows are shuffled
/// each epoch by a Fisher–Yates shuffle driven by ChaCha20.
pub fn local_sgd(
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
    beta0: &[f64],
    cfg: &SgdConfig,
) -> Result<Vec<f64>> {
    let (n, p) = x.dim();
    check_len("labels (one per row)", n, y.len())?;
    check_beta(beta0, p)?;
    check_labels(y)?;
    cfg.validate()?;
    let mut beta = beta0.to_vec();
    if n == 0 {
        return Ok(beta);
    }
    let penalty = cfg.l2 / cfg.total_rows;
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut grad = vec![0.0; p + 1];
    for _ in 0..cfg.epochs {
        shuffle(&mut order, &mut rng);
        for batch in order.chunks(cfg.batch_size) {
            grad.fill(0.0);
            for &i in batch {
                let row = x.row(i);
                let z = beta[0] + row.iter().zip(&beta[1..]).map(|(a, b)| a * b).sum::<f64>();
                let (pi, _, _) = link_terms(z, y[i]);
                let r = pi - y[i];
                grad[0] += r;
                for (g, v) in grad[1..].iter_mut().zip(row) {
                    *g += r * v;
                }
            }
            let scale = 1.0 / batch.len() as f64;
            for j in 0..=p {
                let mut gj = grad[j] * scale;
                if j > 0 {
                    gj += penalty * beta[j];
                }
                gj += cfg.prox_mu * (beta[j] - beta0[j]);
                beta[j] -= cfg.learning_rate * gj;
            }
        }
    }
    check_finite("local model after SGD (learning rate too large?)", &beta)?;
    Ok(beta)
}

/// Unbiased Fisher–Yates shuffle with rejection sampling on `next_u64`, so
/// the permutation depends only on the ChaCha20 stream (not on `rand`'s
/// sampling algorithms).
fn shuffle(v: &mut [usize], rng: &mut ChaCha20Rng) {
    for i in (1..v.len()).rev() {
        let bound = (i + 1) as u64;
        let zone = u64::MAX - (u64::MAX % bound);
        let j = loop {
            let r = rng.next_u64();
            if r < zone {
                break (r % bound) as usize;
            }
        };
        v.swap(i, j);
    }
}

/// Count-weighted average `Σ n_k β_k / Σ n_k` of local models.
pub fn fedavg_combine(models: &[(Vec<f64>, u64)]) -> Result<Vec<f64>> {
    let first = models.first().ok_or(ModelError::Empty {
        what: "no local models to average",
    })?;
    let len = first.0.len();
    let mut acc = vec![0.0; len + 1];
    for (beta, count) in models {
        check_len("local model", len, beta.len())?;
        let terms = fedavg_local_terms(beta, *count as f64)?;
        for (a, t) in acc.iter_mut().zip(&terms) {
            *a += t;
        }
    }
    fedavg_from_aggregate(&acc)
}

/// One party's FedAvg-round vector `[n·β_0 … n·β_p, n]`.
pub fn fedavg_local_terms(beta: &[f64], count: f64) -> Result<Vec<f64>> {
    check_finite("local model", beta)?;
    if !(count.is_finite() && count >= 0.0) {
        return Err(ModelError::InvalidParameter {
            name: "count",
            reason: format!("{count} (must be finite and ≥ 0)"),
        });
    }
    let mut out: Vec<f64> = beta.iter().map(|b| b * count).collect();
    out.push(count);
    Ok(out)
}

/// The averaged model from an aggregated FedAvg-round vector.
pub fn fedavg_from_aggregate(v: &[f64]) -> Result<Vec<f64>> {
    check_finite("FedAvg-round vector", v)?;
    match v.split_last() {
        Some((&n, sums)) if n > 0.0 => Ok(sums.iter().map(|s| s / n).collect()),
        _ => Err(ModelError::Empty {
            what: "the FedAvg-round row count is not positive",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logistic::fit_newton_central;
    use crate::rows::{rows1, rows2};
    use crate::synthetic::{generate, known_beta, split_ranges};
    use proptest::prelude::*;

    #[test]
    fn deterministic_given_seed() {
        let (x, y) = generate(300, 3, &known_beta(3), 5).expect("data");
        let cfg = SgdConfig {
            total_rows: 300.0,
            seed: 42,
            ..SgdConfig::default()
        };
        let a = local_sgd(x.view(), y.view(), &[0.0; 4], &cfg).expect("ok");
        let b = local_sgd(x.view(), y.view(), &[0.0; 4], &cfg).expect("ok");
        assert_eq!(a, b);
        let c = local_sgd(
            x.view(),
            y.view(),
            &[0.0; 4],
            &SgdConfig { seed: 43, ..cfg },
        )
        .expect("ok");
        assert_ne!(a, c);
    }

    #[test]
    fn fedavg_approaches_the_newton_optimum() {
        let n = 4000;
        let (x, y) = generate(n, 4, &known_beta(4), 9).expect("data");
        let exact = fit_newton_central(x.view(), y.view(), 1.0, 1e-10, 50).expect("fit");
        let mut beta = vec![0.0; 5];
        for round in 0..40u64 {
            let mut models = Vec::new();
            for (k, r) in split_ranges(n, 4).expect("split").into_iter().enumerate() {
                let cfg = SgdConfig {
                    l2: 1.0,
                    total_rows: n as f64,
                    epochs: 1,
                    batch_size: 100,
                    learning_rate: 1.0 / (1.0 + round as f64 / 4.0),
                    prox_mu: 0.0,
                    seed: round * 16 + k as u64,
                };
                let m = local_sgd(
                    rows2(x.view(), r.clone()),
                    rows1(y.view(), r.clone()),
                    &beta,
                    &cfg,
                )
                .expect("sgd");
                models.push((m, r.len() as u64));
            }
            beta = fedavg_combine(&models).expect("avg");
        }
        let diff = beta
            .iter()
            .zip(&exact.beta)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("FedAvg vs Newton max abs diff after 40 rounds: {diff:.4}");
        assert!(diff < 0.05, "FedAvg {beta:?} vs Newton {:?}", exact.beta);
    }

    #[test]
    fn combine_and_aggregate() {
        let avg = fedavg_combine(&[(vec![1.0, 2.0], 1), (vec![4.0, 5.0], 2)]).expect("ok");
        assert_eq!(avg, [3.0, 4.0]);
        assert!(fedavg_combine(&[]).is_err());
        assert!(fedavg_combine(&[(vec![1.0], 0)]).is_err());
        assert!(fedavg_combine(&[(vec![1.0], 1), (vec![1.0, 2.0], 1)]).is_err());
        assert_eq!(
            fedavg_local_terms(&[1.0, -2.0], 3.0).expect("ok"),
            [3.0, -6.0, 3.0]
        );
    }

    #[test]
    fn config_is_validated() {
        let (x, y) = generate(10, 1, &known_beta(1), 1).expect("data");
        for cfg in [
            SgdConfig {
                batch_size: 0,
                ..SgdConfig::default()
            },
            SgdConfig {
                learning_rate: 0.0,
                ..SgdConfig::default()
            },
            SgdConfig {
                total_rows: 0.0,
                ..SgdConfig::default()
            },
            SgdConfig {
                l2: -1.0,
                ..SgdConfig::default()
            },
        ] {
            assert!(matches!(
                local_sgd(x.view(), y.view(), &[0.0; 2], &cfg),
                Err(ModelError::InvalidParameter { .. })
            ));
        }
    }

    proptest! {
        #[test]
        fn shuffle_is_a_permutation(n in 0usize..200, seed in any::<u64>()) {
            let mut v: Vec<usize> = (0..n).collect();
            shuffle(&mut v, &mut ChaCha20Rng::seed_from_u64(seed));
            v.sort_unstable();
            prop_assert_eq!(v, (0..n).collect::<Vec<_>>());
        }

        #[test]
        fn averaging_identical_models_is_identity(
            beta in prop::collection::vec(-10.0f64..10.0, 1..8),
            counts in prop::collection::vec(1u64..1000, 1..6),
        ) {
            let models: Vec<_> = counts.iter().map(|c| (beta.clone(), *c)).collect();
            let avg = fedavg_combine(&models).expect("ok");
            for (a, b) in avg.iter().zip(&beta) {
                prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()));
            }
        }
    }
}
