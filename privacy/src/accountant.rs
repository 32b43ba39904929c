//! Zero-concentrated DP (zCDP, Bun & Steinke 2016) accounting: ρ per release,
//! composition by adding ρ, and conversion to (ε, δ)-DP. Floating point is fine
//! here: these are public bookkeeping numbers, not noise.

use crate::PrivacyError;

/// Lower end of the search in x = ln(α − 1), i.e. α = 1 + e^−30.
const X_MIN: f64 = -30.0;
/// Upper end of the search in x = ln(α − 1), i.e. α ≈ e^50 (covers ρ ≥ 1e-40).
const X_MAX: f64 = 50.0;
/// Coarse grid step in x before the golden-section refinement.
const X_STEP: f64 = 0.05;
/// Width in x at which the golden-section refinement stops.
const X_TOL: f64 = 1e-12;

fn check_finite_nonneg(name: &'static str, value: f64) -> Result<f64, PrivacyError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(PrivacyError::InvalidParameter { name, value })
    }
}

fn check_delta(delta: f64) -> Result<f64, PrivacyError> {
    if delta > 0.0 && delta < 1.0 {
        Ok(delta)
    } else {
        Err(PrivacyError::InvalidParameter {
            name: "delta",
            value: delta,
        })
    }
}

/// ρ of the discrete Gaussian N_Z(0, σ²) with L2 sensitivity Δ: Δ² / (2σ²)
/// (CKS20, Theorem 4; the same as the continuous Gaussian).
pub fn rho_discrete_gaussian(l2_sensitivity: f64, sigma2: f64) -> Result<f64, PrivacyError> {
    let l2 = check_finite_nonneg("l2_sensitivity", l2_sensitivity)?;
    let s2 = check_finite_nonneg("sigma2", sigma2)?;
    if s2 == 0.0 {
        return Err(PrivacyError::InvalidParameter {
            name: "sigma2",
            value: sigma2,
        });
    }
    Ok(l2 * l2 / (2.0 * s2))
}

/// Composition: ρ-zCDP releases compose by adding their ρ.
pub fn compose(rhos: &[f64]) -> Result<f64, PrivacyError> {
    rhos.iter()
        .try_fold(0.0, |acc, &r| Ok(acc + check_finite_nonneg("rho", r)?))
}

/// ε(α) for ρ-zCDP at δ, CKS20 Corollary 13 solved for ε:
/// ε = αρ + (ln(1/δ) + (α−1)·ln(1−1/α) − ln α) / (α − 1).
fn epsilon_at(rho: f64, ln_inv_delta: f64, x: f64) -> f64 {
    let am1 = x.exp(); // α − 1
    let alpha = 1.0 + am1;
    alpha * rho + (ln_inv_delta - alpha.ln()) / am1 + (-1.0 / alpha).ln_1p()
}

/// ln δ(α) for ρ-zCDP at ε, CKS20 Corollary 13:
/// δ = exp((α−1)(αρ − ε)) / (α−1) · (1 − 1/α)^α.
fn ln_delta_at(rho: f64, epsilon: f64, x: f64) -> f64 {
    let am1 = x.exp();
    let alpha = 1.0 + am1;
    am1 * (alpha * rho - epsilon) - x + alpha * (-1.0 / alpha).ln_1p()
}

/// Minimum over x = ln(α − 1) ∈ [X_MIN, X_MAX] of `f`: a coarse grid (step
/// 0.05) to locate the basin, then golden section on the two neighbouring grid
/// cells down to width 1e-12 in x. Returns (min value, x).
fn minimise(f: impl Fn(f64) -> f64) -> (f64, f64) {
    let steps = ((X_MAX - X_MIN) / X_STEP) as usize;
    let grid = |i: usize| X_MIN + i as f64 * X_STEP;
    let mut best = 0usize;
    let mut best_v = f64::INFINITY;
    for i in 0..=steps {
        let v = f(grid(i));
        if v < best_v {
            best_v = v;
            best = i;
        }
    }
    let mut lo = grid(best.saturating_sub(1));
    let mut hi = grid((best + 1).min(steps));
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - phi * (hi - lo);
    let mut b = lo + phi * (hi - lo);
    let (mut fa, mut fb) = (f(a), f(b));
    while hi - lo > X_TOL {
        if fa <= fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - phi * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + phi * (hi - lo);
            fb = f(b);
        }
    }
    let x = (lo + hi) / 2.0;
    let v = f(x);
    // Never return worse than the grid's best (guards a non-unimodal cell).
    if v <= best_v {
        (v, x)
    } else {
        (best_v, grid(best))
    }
}

/// Smallest ε such that ρ-zCDP implies (ε, δ)-DP by CKS20's conversion
/// (Proposition 12 / Corollary 13 in arXiv 2004.00010v4):
/// δ = inf over α > 1 of exp((α−1)(αρ − ε)) / (α−1) · (1 − 1/α)^α.
///
/// For each α this is solved for ε in closed form, so ε = min over α of ε(α);
/// the minimum is found numerically (grid + golden section on ln(α − 1), see
/// [`delta_from_rho`] for the inverse). The search is accurate to about 1e-12
/// relative; it agrees with Google's dp-accounting (same formula, dense
/// orders) to 1e-6 in the known-answer tests. A rounding error can only make
/// the returned ε larger than the true infimum by that much, never smaller
/// by more than float rounding.
pub fn epsilon_from_rho(rho: f64, delta: f64) -> Result<f64, PrivacyError> {
    let rho = check_finite_nonneg("rho", rho)?;
    let delta = check_delta(delta)?;
    if rho == 0.0 {
        return Ok(0.0);
    }
    let ln_inv_delta = -delta.ln();
    let (eps, _) = minimise(|x| epsilon_at(rho, ln_inv_delta, x));
    Ok(eps.max(0.0))
}

/// Smallest δ such that ρ-zCDP implies (ε, δ)-DP by the same CKS20 conversion
/// as [`epsilon_from_rho`], minimising ln δ(α) over α numerically; capped at 1.
pub fn delta_from_rho(rho: f64, epsilon: f64) -> Result<f64, PrivacyError> {
    let rho = check_finite_nonneg("rho", rho)?;
    let epsilon = check_finite_nonneg("epsilon", epsilon)?;
    if rho == 0.0 {
        return Ok(0.0);
    }
    let (ln_delta, _) = minimise(|x| ln_delta_at(rho, epsilon, x));
    Ok(ln_delta.exp().min(1.0))
}

/// The simple conversion ε = ρ + 2·√(ρ·ln(1/δ)) (Bun & Steinke 2016,
/// Proposition 1.3), looser than [`epsilon_from_rho`]; kept for comparison.
pub fn epsilon_from_rho_simple(rho: f64, delta: f64) -> Result<f64, PrivacyError> {
    let rho = check_finite_nonneg("rho", rho)?;
    let delta = check_delta(delta)?;
    Ok(rho + 2.0 * (rho * -delta.ln()).sqrt())
}

/// A total (ε, δ)-DP budget for the training job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// ε ≥ 0.
    pub epsilon: f64,
    /// δ ∈ (0, 1).
    pub delta: f64,
}

impl Budget {
    /// A budget, validated (finite ε ≥ 0, 0 < δ < 1).
    pub fn new(epsilon: f64, delta: f64) -> Result<Self, PrivacyError> {
        Ok(Self {
            epsilon: check_finite_nonneg("epsilon", epsilon)?,
            delta: check_delta(delta)?,
        })
    }

    /// The largest total ρ whose ε at this δ stays within ε: bisection on ρ
    /// (ε is increasing in ρ) to 1e-12 relative, returning the lower end so the
    /// answer never overshoots the budget.
    pub fn max_rho(&self) -> Result<f64, PrivacyError> {
        let within = |rho: f64| epsilon_from_rho(rho, self.delta).map(|e| e <= self.epsilon);
        let mut lo = 0.0;
        let mut hi = self.epsilon.max(1.0);
        while within(hi)? {
            lo = hi;
            hi *= 2.0;
        }
        while hi - lo > 1e-12 * hi {
            let mid = (lo + hi) / 2.0;
            if within(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// Running zCDP spend of a job against its [`Budget`]: each round adds its ρ;
/// a round that would take ε (at the budget's δ) over the budget is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    budget: Budget,
    spent_rho: f64,
    rounds: u64,
}

impl Ledger {
    /// An empty ledger for `budget`.
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            spent_rho: 0.0,
            rounds: 0,
        }
    }

    /// The budget this ledger enforces.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Total ρ charged so far.
    pub fn spent_rho(&self) -> f64 {
        self.spent_rho
    }

    /// Rounds charged so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// ε spent so far, at the budget's δ.
    pub fn spent_epsilon(&self) -> Result<f64, PrivacyError> {
        epsilon_from_rho(self.spent_rho, self.budget.delta)
    }

    /// Would a round of `planned_rho` fit? Returns the ε after it, or
    /// [`PrivacyError::BudgetExceeded`] naming the spent and planned ε.
    pub fn check(&self, planned_rho: f64) -> Result<f64, PrivacyError> {
        let planned_rho = check_finite_nonneg("planned_rho", planned_rho)?;
        let planned_epsilon = epsilon_from_rho(self.spent_rho + planned_rho, self.budget.delta)?;
        if planned_epsilon > self.budget.epsilon {
            return Err(PrivacyError::BudgetExceeded {
                spent_epsilon: self.spent_epsilon()?,
                planned_epsilon,
                budget_epsilon: self.budget.epsilon,
                delta: self.budget.delta,
            });
        }
        Ok(planned_epsilon)
    }

    /// Charges a round of `rho` if it fits ([`Ledger::check`]); otherwise
    /// leaves the ledger unchanged and returns the error.
    pub fn charge(&mut self, rho: f64) -> Result<f64, PrivacyError> {
        let eps = self.check(rho)?;
        self.spent_rho += rho;
        self.rounds += 1;
        Ok(eps)
    }
}
