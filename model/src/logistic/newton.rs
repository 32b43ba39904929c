//! Federated Newton: each party sums gradient and Hessian over its rows, the
//! secure aggregation adds the vectors, and the coordinator takes one
//! Newton step on the penalized objective.
//!
//! # Layout of a Newton-round vector (`p` encoded columns, `m = p + 1`)
//!
//! | offset | length | content |
//! | --- | --- | --- |
//! | `0` | `m` | gradient `Xᵀ(p − y)` with the intercept column first (unpenalized) |
//! | `m` | `m(m+1)/2` | Hessian `XᵀWX`, upper triangle row-major incl. diagonal, `W = diag(p(1−p))` |
//! | `m + m(m+1)/2` | 1 | row count `n` |
//! | `m + m(m+1)/2 + 1` | 1 | `Σ logloss_i` at the current β |
//!
//! Here `X` includes the (never materialised) leading column of ones.
//! The L2 term is added once, by [`newton_step`], not by the parties.
//!
//! ```
//! use fedcredit_model::logistic::newton::{
//!     local_newton_terms, newton_step, newton_terms_len, NewtonTerms,
//! };
//! use ndarray::array;
//!
//! let x = array![[-1.0], [0.5], [1.5], [-0.3]];
//! let y = array![0.0, 1.0, 1.0, 0.0];
//! let mut beta = vec![0.0, 0.0];
//! for _round in 0..20 {
//!     // Two parties, summed element-wise (what secure aggregation returns).
//!     let a = local_newton_terms(x.slice(ndarray::s![..2, ..]), y.slice(ndarray::s![..2]), &beta).unwrap();
//!     let b = local_newton_terms(x.slice(ndarray::s![2.., ..]), y.slice(ndarray::s![2..]), &beta).unwrap();
//!     assert_eq!(a.len(), newton_terms_len(1));
//!     let sum: Vec<f64> = a.iter().zip(&b).map(|(u, v)| u + v).collect();
//!     let step = newton_step(&NewtonTerms::from_aggregate(&sum, 1).unwrap(), &beta, 1.0).unwrap();
//!     beta = step.new_beta;
//!     if step.step_max_norm < 1e-10 { break; }
//! }
//! assert!(beta[1] > 0.0);
//! ```

use ndarray::linalg::{general_mat_mul, general_mat_vec_mul};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Slice, Zip};
use serde::{Deserialize, Serialize};

use super::{check_beta, check_labels, link_terms};
use crate::error::{ModelError, Result, check_finite, check_len};
use crate::linalg::{cholesky, cholesky_solve, packed_len, unpack_upper};
use crate::rows::{rows1, rows2};

/// Rows per block in [`local_newton_terms`]; the scratch matrix is
/// `CHUNK_ROWS × p`.
pub const CHUNK_ROWS: usize = 4096;

/// Length of a Newton-round vector for `p` encoded columns:
/// `(p+1) + (p+1)(p+2)/2 + 2`.
pub fn newton_terms_len(p: usize) -> usize {
    (p + 1) + packed_len(p + 1) + 2
}

/// One party's Newton-round vector at `beta` (layout in the module docs).
///
/// `x` is `n×p` (standardized, without an intercept column), `y` holds 0/1
/// labels, `beta = [b, w_1 … w_p]`. Works in blocks of [`CHUNK_ROWS`] rows
/// with matrix products, so the extra memory is `O(CHUNK_ROWS·p + p²)`; the
/// intercept column is never materialised.
pub fn local_newton_terms(
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
    beta: &[f64],
) -> Result<Vec<f64>> {
    local_newton_terms_clipped(x, y, beta, f64::INFINITY)
}

/// [`local_newton_terms`] with each row's log-loss clipped to `loss_clip`
/// (private rounds: one row then moves the loss sum by at most that).
pub fn local_newton_terms_clipped(
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
    beta: &[f64],
    loss_clip: f64,
) -> Result<Vec<f64>> {
    let mut acc = NewtonAccumulator::new(x.ncols(), beta, loss_clip)?;
    acc.add(x, y)?;
    Ok(acc.finish())
}

/// [`local_newton_terms_clipped`] over rows that arrive in pieces (a file
/// read batch by batch), with memory `O(CHUNK_ROWS·p + p²)` whatever the
/// row count.
///
/// Rows are summed in blocks of [`CHUNK_ROWS`] counted from the start of
/// each piece, so when every piece but the last holds a multiple of
/// `CHUNK_ROWS` rows the blocks are those of one call over all rows, and
/// the vector is the same bit for bit.
///
/// ```
/// use fedcredit_model::logistic::newton::{CHUNK_ROWS, NewtonAccumulator, local_newton_terms};
/// use fedcredit_model::synthetic::{generate, known_beta};
/// use ndarray::s;
///
/// let (x, y) = generate(CHUNK_ROWS + 10, 2, &known_beta(2), 1).unwrap();
/// let beta = [0.1, 0.2, -0.3];
/// let mut acc = NewtonAccumulator::new(2, &beta, f64::INFINITY).unwrap();
/// acc.add(x.slice(s![..CHUNK_ROWS, ..]), y.slice(s![..CHUNK_ROWS])).unwrap();
/// acc.add(x.slice(s![CHUNK_ROWS.., ..]), y.slice(s![CHUNK_ROWS..])).unwrap();
/// assert_eq!(acc.finish(), local_newton_terms(x.view(), y.view(), &beta).unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct NewtonAccumulator {
    b0: f64,
    w: Array1<f64>,
    loss_clip: f64,
    g0: f64,
    g: Array1<f64>,
    h00: f64,
    h0: Array1<f64>,
    hxx: Array2<f64>,
    loss: f64,
    rows: usize,
    /// Scratch for one block (grown to the largest block seen, at most
    /// `CHUNK_ROWS` rows): linear predictor, residual, weight, `W·X`.
    eta: Array1<f64>,
    resid: Array1<f64>,
    weight: Array1<f64>,
    wx: Array2<f64>,
}

impl NewtonAccumulator {
    /// An empty sum for `p` encoded columns at `beta = [b, w_1 … w_p]`,
    /// each row's log-loss clipped to `loss_clip` (`f64::INFINITY`: none).
    pub fn new(p: usize, beta: &[f64], loss_clip: f64) -> Result<Self> {
        check_beta(beta, p)?;
        Ok(Self {
            b0: beta[0],
            w: Array1::from(beta[1..].to_vec()),
            loss_clip,
            g0: 0.0,
            g: Array1::zeros(p),
            h00: 0.0,
            h0: Array1::zeros(p),
            hxx: Array2::zeros((p, p)),
            loss: 0.0,
            rows: 0,
            eta: Array1::zeros(0),
            resid: Array1::zeros(0),
            weight: Array1::zeros(0),
            wx: Array2::zeros((0, p)),
        })
    }

    /// Adds the rows of `x` (standardized, `p` columns) with 0/1 labels `y`.
    pub fn add(&mut self, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> Result<()> {
        let (n, p) = x.dim();
        check_len("labels (one per row)", n, y.len())?;
        check_len("matrix columns", self.w.len(), p)?;
        check_labels(y)?;
        let chunk = CHUNK_ROWS.min(n);
        if self.eta.len() < chunk {
            self.eta = Array1::zeros(chunk);
            self.resid = Array1::zeros(chunk);
            self.weight = Array1::zeros(chunk);
            self.wx = Array2::zeros((chunk, p));
        }
        let mut start = 0;
        while start < n {
            let end = (start + CHUNK_ROWS).min(n);
            let m = end - start;
            let xc = rows2(x, start..end);
            let yc = rows1(y, start..end);
            let mut eta_c = self.eta.slice_axis_mut(Axis(0), Slice::from(..m));
            general_mat_vec_mul(1.0, &xc, &self.w, 0.0, &mut eta_c);
            let mut r_c = self.resid.slice_axis_mut(Axis(0), Slice::from(..m));
            let mut w_c = self.weight.slice_axis_mut(Axis(0), Slice::from(..m));
            for i in 0..m {
                let (pi, wi, li) = link_terms(eta_c[i] + self.b0, yc[i]);
                r_c[i] = pi - yc[i];
                w_c[i] = wi;
                self.g0 += r_c[i];
                self.h00 += wi;
                self.loss += li.min(self.loss_clip);
            }
            // gradient and first Hessian row: Xᵀr, Xᵀw
            general_mat_vec_mul(1.0, &xc.t(), &r_c, 1.0, &mut self.g);
            general_mat_vec_mul(1.0, &xc.t(), &w_c, 1.0, &mut self.h0);
            // XᵀWX += Xcᵀ (W Xc)
            let mut wx_c = self.wx.slice_axis_mut(Axis(0), Slice::from(..m));
            Zip::from(wx_c.rows_mut())
                .and(xc.rows())
                .and(&w_c)
                .for_each(|mut out, row, &wi| {
                    out.zip_mut_with(&row, |o, &v| *o = wi * v);
                });
            general_mat_mul(1.0, &xc.t(), &wx_c, 1.0, &mut self.hxx);
            start = end;
        }
        self.rows += n;
        Ok(())
    }

    /// The Newton-round vector (layout in the module docs).
    pub fn finish(self) -> Vec<f64> {
        let p = self.w.len();
        let mut out = Vec::with_capacity(newton_terms_len(p));
        out.push(self.g0);
        out.extend(self.g.iter());
        out.push(self.h00);
        out.extend(self.h0.iter());
        for i in 0..p {
            out.extend(self.hxx.row(i).iter().skip(i));
        }
        out.push(self.rows as f64);
        out.push(self.loss);
        out
    }
}

/// A Newton-round aggregate, unpacked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewtonTerms {
    /// `Xᵀ(p − y)`, intercept first (`p + 1` values), unpenalized.
    pub gradient: Vec<f64>,
    /// `XᵀWX`, full symmetric `(p+1)×(p+1)`, unpenalized.
    pub hessian: Array2<f64>,
    /// Total row count.
    pub count: f64,
    /// `Σ logloss_i` at the β the terms were computed at.
    pub loss_sum: f64,
}

impl NewtonTerms {
    /// Unpack an aggregated vector for `p` encoded columns. Rejects a wrong
    /// length, non-finite values and a non-positive count.
    pub fn from_aggregate(v: &[f64], p: usize) -> Result<Self> {
        check_len("Newton-round vector", newton_terms_len(p), v.len())?;
        check_finite("Newton-round vector", v)?;
        let m = p + 1;
        let (gradient, rest) = v.split_at(m);
        let (packed, tail) = rest.split_at(packed_len(m));
        let count = tail[0];
        if count <= 0.0 {
            return Err(ModelError::Empty {
                what: "the Newton-round row count is not positive",
            });
        }
        Ok(Self {
            gradient: gradient.to_vec(),
            hessian: unpack_upper(packed, m)?,
            count,
            loss_sum: tail[1],
        })
    }

    /// Number of encoded columns `p`.
    pub fn width(&self) -> usize {
        self.gradient.len().saturating_sub(1)
    }
}

/// The coordinator's result for one Newton round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewtonStep {
    /// `β − H⁻¹g` (penalized `H` and `g`).
    pub new_beta: Vec<f64>,
    /// `max_j |Δ_j|`, the convergence criterion.
    pub step_max_norm: f64,
    /// Penalized objective `Σ logloss + (l2/2)‖w‖²` at the *input* β.
    pub objective: f64,
    /// `max_j |g_j|` of the penalized gradient at the input β.
    pub gradient_max_norm: f64,
}

/// `loss_sum + (l2/2)·Σ_{j≥1} β_j²` (the intercept `β_0` is not penalized).
pub fn penalized_objective(loss_sum: f64, beta: &[f64], l2: f64) -> f64 {
    loss_sum + 0.5 * l2 * beta.iter().skip(1).map(|b| b * b).sum::<f64>()
}

/// One Newton step on `Σ logloss + (l2/2)‖w‖²`: adds `l2` to the Hessian
/// diagonal and `l2·w` to the gradient (both except the intercept), solves
/// `H Δ = g` by Cholesky and returns `β − Δ`.
///
/// Fails with [`ModelError::NotPositiveDefinite`] naming the pivot when the
/// penalized Hessian is singular (e.g. `l2 = 0` with a constant or collinear
/// column).
pub fn newton_step(terms: &NewtonTerms, beta: &[f64], l2: f64) -> Result<NewtonStep> {
    newton_step_damped(terms, beta, l2, 0.0)
}

/// [`newton_step`] with `ridge` added to the whole Hessian diagonal (the
/// intercept's too) but not to the gradient: the step is damped, the
/// optimum it heads for is unchanged. Private Newton rounds use it to keep
/// a noisy Hessian positive definite.
pub fn newton_step_damped(
    terms: &NewtonTerms,
    beta: &[f64],
    l2: f64,
    ridge: f64,
) -> Result<NewtonStep> {
    let p = terms.width();
    check_beta(beta, p)?;
    if !(l2.is_finite() && l2 >= 0.0) {
        return Err(ModelError::InvalidParameter {
            name: "l2",
            reason: format!("{l2} (must be finite and ≥ 0)"),
        });
    }
    let mut g = terms.gradient.clone();
    let mut h = terms.hessian.clone();
    for j in 1..=p {
        g[j] += l2 * beta[j];
        h[[j, j]] += l2;
    }
    for j in 0..=p {
        h[[j, j]] += ridge;
    }
    let l = cholesky(&h)?;
    let delta = cholesky_solve(&l, &g)?;
    let new_beta: Vec<f64> = beta.iter().zip(&delta).map(|(b, d)| b - d).collect();
    check_finite("new beta", &new_beta)?;
    Ok(NewtonStep {
        new_beta,
        step_max_norm: max_abs(&delta),
        objective: penalized_objective(terms.loss_sum, beta, l2),
        gradient_max_norm: max_abs(&g),
    })
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// One iteration of a fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Penalized objective at the iterate before the step.
    pub objective: f64,
    /// `max |Δ|` of the step taken.
    pub step_max_norm: f64,
    /// `max |g|` of the penalized gradient before the step.
    pub gradient_max_norm: f64,
}

/// Result of [`fit_newton_central`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentralFit {
    /// Final `[b, w_1 … w_p]` (standardized units).
    pub beta: Vec<f64>,
    /// Newton steps taken.
    pub iterations: usize,
    /// Whether the last step's max-norm fell below `tol`.
    pub converged: bool,
    /// One record per step.
    pub history: Vec<IterationRecord>,
}

/// The same Newton iteration in-process on one matrix, from β = 0, until
/// the step max-norm is below `tol` or `max_iter` steps were taken. This is
/// the "central" reference fit.
///
/// ```
/// use fedcredit_model::logistic::fit_newton_central;
/// use ndarray::array;
///
/// let x = array![[-1.0], [0.5], [1.5], [-0.3]];
/// let y = array![0.0, 1.0, 1.0, 0.0];
/// let fit = fit_newton_central(x.view(), y.view(), 1.0, 1e-10, 50).unwrap();
/// assert!(fit.converged && fit.iterations < 10);
/// ```
pub fn fit_newton_central(
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
    l2: f64,
    tol: f64,
    max_iter: usize,
) -> Result<CentralFit> {
    if !(tol.is_finite() && tol > 0.0) {
        return Err(ModelError::InvalidParameter {
            name: "tol",
            reason: format!("{tol} (must be finite and > 0)"),
        });
    }
    let p = x.ncols();
    let mut beta = vec![0.0; p + 1];
    let mut history = Vec::new();
    let mut converged = false;
    while history.len() < max_iter {
        let v = local_newton_terms(x, y, &beta)?;
        let terms = NewtonTerms::from_aggregate(&v, p)?;
        let step = newton_step(&terms, &beta, l2)?;
        history.push(IterationRecord {
            objective: step.objective,
            step_max_norm: step.step_max_norm,
            gradient_max_norm: step.gradient_max_norm,
        });
        beta = step.new_beta;
        if step.step_max_norm < tol {
            converged = true;
            break;
        }
    }
    Ok(CentralFit {
        beta,
        iterations: history.len(),
        converged,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logistic::logloss;
    use ndarray::{Array2, ShapeBuilder};
    use proptest::prelude::*;

    /// Straightforward O(n·p²) reference with an explicit intercept column.
    fn naive_terms(x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>, beta: &[f64]) -> Vec<f64> {
        let (n, p) = x.dim();
        let m = p + 1;
        let mut g = vec![0.0; m];
        let mut h = Array2::<f64>::zeros((m, m));
        let mut loss = 0.0;
        for i in 0..n {
            let mut xi = vec![1.0];
            xi.extend(x.row(i).iter());
            let z: f64 = xi.iter().zip(beta).map(|(a, b)| a * b).sum();
            let pi = 1.0 / (1.0 + (-z).exp());
            loss += logloss(z, y[i]);
            for a in 0..m {
                g[a] += (pi - y[i]) * xi[a];
                for b in 0..m {
                    h[[a, b]] += pi * (1.0 - pi) * xi[a] * xi[b];
                }
            }
        }
        let mut out = g;
        for a in 0..m {
            for b in a..m {
                out.push(h[[a, b]]);
            }
        }
        out.push(n as f64);
        out.push(loss);
        out
    }

    fn data(n: usize, p: usize, seed: u64) -> (Array2<f64>, Array1<f64>) {
        let (x, y) = crate::synthetic::generate(n, p, &crate::synthetic::known_beta(p), seed)
            .expect("synthetic");
        (x, y)
    }

    #[test]
    fn blocked_terms_match_naive_across_chunk_boundaries() {
        let (x, y) = data(2 * CHUNK_ROWS + 17, 4, 7);
        let beta = [0.2, -0.5, 0.1, 0.0, 1.3];
        let fast = local_newton_terms(x.view(), y.view(), &beta).expect("ok");
        let slow = naive_terms(x.view(), y.view(), &beta);
        assert_eq!(fast.len(), newton_terms_len(4));
        for (k, (a, b)) in fast.iter().zip(&slow).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                "index {k}: {a} vs {b}"
            );
        }
    }

    /// Pieces that hold whole blocks give the one-call vector bit for
    /// bit; other cuts change only the rounding.
    #[test]
    fn pieces_of_whole_blocks_sum_to_the_same_bits() {
        let (x, y) = data(3 * CHUNK_ROWS + 5, 3, 11);
        let beta = [0.3, -0.2, 0.5, 0.1];
        let whole = local_newton_terms_clipped(x.view(), y.view(), &beta, 2.0).expect("ok");
        let cuts = |ends: &[usize]| {
            let mut acc = NewtonAccumulator::new(3, &beta, 2.0).expect("new");
            let mut start = 0;
            for &end in ends {
                acc.add(rows2(x.view(), start..end), rows1(y.view(), start..end))
                    .expect("add");
                start = end;
            }
            acc.finish()
        };
        let n = x.nrows();
        assert_eq!(cuts(&[CHUNK_ROWS, 3 * CHUNK_ROWS, n]), whole);
        assert_eq!(cuts(&[2 * CHUNK_ROWS, 2 * CHUNK_ROWS, n]), whole);
        let ragged = cuts(&[100, CHUNK_ROWS + 7, n]);
        assert_ne!(ragged, whole, "a ragged cut should change some rounding");
        for (a, b) in ragged.iter().zip(&whole) {
            assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
        }
        assert!(matches!(
            NewtonAccumulator::new(3, &beta, 2.0)
                .expect("new")
                .add(rows2(x.view(), 0..2), rows1(y.view(), 0..3)),
            Err(ModelError::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn column_major_and_empty_inputs() {
        let (x, y) = data(50, 3, 1);
        let beta = [0.1, 0.2, -0.3, 0.4];
        let c = local_newton_terms(x.view(), y.view(), &beta).expect("ok");
        let mut fx = Array2::<f64>::zeros((50, 3).f());
        fx.assign(&x);
        assert!(!fx.is_standard_layout());
        let d = local_newton_terms(fx.view(), y.view(), &beta).expect("ok");
        for (a, b) in c.iter().zip(&d) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
        }
        let e =
            local_newton_terms(rows2(x.view(), 0..0), rows1(y.view(), 0..0), &beta).expect("ok");
        assert!(e.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn input_errors() {
        let (x, y) = data(10, 2, 1);
        assert!(matches!(
            local_newton_terms(x.view(), y.view(), &[0.0, 0.0]),
            Err(ModelError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            local_newton_terms(x.view(), rows1(y.view(), 0..9), &[0.0; 3]),
            Err(ModelError::DimensionMismatch { .. })
        ));
        let mut bad = y.clone();
        bad[3] = 2.0;
        assert!(matches!(
            local_newton_terms(x.view(), bad.view(), &[0.0; 3]),
            Err(ModelError::InvalidLabel { index: 3, .. })
        ));
        let v = local_newton_terms(x.view(), y.view(), &[0.0; 3]).expect("ok");
        assert!(NewtonTerms::from_aggregate(&v[1..], 2).is_err());
        let mut nan = v.clone();
        nan[4] = f64::NAN;
        assert!(matches!(
            NewtonTerms::from_aggregate(&nan, 2),
            Err(ModelError::NonFinite { index: 4, .. })
        ));
        let t = NewtonTerms::from_aggregate(&v, 2).expect("ok");
        assert!(newton_step(&t, &[0.0; 3], -1.0).is_err());
        assert!(newton_step(&t, &[0.0; 2], 1.0).is_err());
    }

    #[test]
    fn singular_hessian_without_penalty_names_the_pivot() {
        // Column 1 duplicates column 0: pivot 2 (encoded feature 1) fails.
        let (x0, y) = data(200, 1, 3);
        let x = ndarray::concatenate![ndarray::Axis(1), x0, x0];
        let v = local_newton_terms(x.view(), y.view(), &[0.0; 3]).expect("ok");
        let t = NewtonTerms::from_aggregate(&v, 2).expect("ok");
        match newton_step(&t, &[0.0; 3], 0.0) {
            Err(ModelError::NotPositiveDefinite { pivot, .. }) => assert_eq!(pivot, 2),
            other => panic!("{other:?}"),
        }
        assert!(newton_step(&t, &[0.0; 3], 1e-3).is_ok());
    }

    #[test]
    fn central_fit_reaches_a_stationary_point() {
        let (x, y) = data(500, 5, 11);
        let fit = fit_newton_central(x.view(), y.view(), 0.5, 1e-12, 50).expect("ok");
        assert!(fit.converged, "{fit:?}");
        let v = local_newton_terms(x.view(), y.view(), &fit.beta).expect("ok");
        for (j, (g, b)) in v.iter().zip(&fit.beta).enumerate() {
            let pen = if j == 0 { 0.0 } else { 0.5 * b };
            assert!((g + pen).abs() < 1e-9, "gradient {j}: {}", g + pen);
        }
        // Objective decreases monotonically for this well-posed problem.
        for w in fit.history.windows(2) {
            assert!(w[1].objective <= w[0].objective + 1e-9);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn four_way_split_equals_central(
            n in 12usize..80,
            p in 1usize..5,
            seed in any::<u64>(),
            l2 in 0.05f64..5.0,
            c1 in 0.0f64..1.0,
            c2 in 0.0f64..1.0,
            c3 in 0.0f64..1.0,
        ) {
            let (x, y) = data(n, p, seed);
            // With one class only the unpenalized intercept has no finite
            // optimum (the Hessian vanishes): not a case of the property.
            prop_assume!(y.iter().any(|v| *v > 0.5) && y.iter().any(|v| *v < 0.5));
            let mut cuts = [0, (c1 * n as f64) as usize, (c2 * n as f64) as usize, (c3 * n as f64) as usize, n];
            cuts.sort_unstable();
            let central = fit_newton_central(x.view(), y.view(), l2, 1e-11, 100).expect("central");
            prop_assert!(central.converged);
            let mut beta = vec![0.0; p + 1];
            let mut rounds = 0;
            loop {
                let mut sum = vec![0.0; newton_terms_len(p)];
                for k in 0..4 {
                    let v = local_newton_terms(
                        rows2(x.view(), cuts[k]..cuts[k + 1]),
                        rows1(y.view(), cuts[k]..cuts[k + 1]),
                        &beta,
                    ).expect("local");
                    for (s, v) in sum.iter_mut().zip(&v) { *s += v; }
                }
                let step = newton_step(&NewtonTerms::from_aggregate(&sum, p).expect("agg"), &beta, l2).expect("step");
                beta = step.new_beta;
                rounds += 1;
                if step.step_max_norm < 1e-11 || rounds >= 100 { break; }
            }
            for (a, b) in beta.iter().zip(&central.beta) {
                prop_assert!((a - b).abs() < 1e-8, "{a} vs {b}");
            }
        }
    }
}
