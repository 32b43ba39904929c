//! Sizing each member's noise share, and the privacy of the summed shares.
//!
//! Every member adds N_Z(0, σ²_member) to its update; secure aggregation only
//! reveals the sum. Dropped members add nothing, and colluding members know
//! (so can subtract) their own noise, so only the n − c honest survivors' noise
//! protects anyone. The sum of independent discrete Gaussians is **not** a
//! discrete Gaussian, so its privacy is not simply Δ²/(2·(n−c)·σ²_member);
//! [`rho_distributed_discrete_gaussian`] implements the published bound for the
//! sum (Kairouz, Liu, Steinke, ICML 2021, arXiv 2102.06387, Proposition 14 /
//! eq. 17, the basis of their Theorem 1).

use crate::PrivacyError;
use crate::accountant::rho_discrete_gaussian;

/// σ²_member = σ²_total / (n − c) as a rational (num, den), so that the noise
/// of any n − c honest survivors sums to variance ≥ σ²_total (as a variance
/// parameter: N_Z(0, σ²) has variance strictly below σ², but CKS20 bound the
/// gap, which is under 1e-15 relative for σ² ≥ 1).
///
/// Exact (in lowest terms) when the denominator fits in u64; otherwise rounded
/// up to ⌈num / (n − c)⌉ / den.
pub fn member_variance(
    members: u64,
    colluding: u64,
    total_num: u64,
    total_den: u64,
) -> Result<(u64, u64), PrivacyError> {
    if total_num == 0 || total_den == 0 {
        return Err(PrivacyError::InvalidVariance {
            num: total_num,
            den: total_den,
        });
    }
    if colluding >= members {
        return Err(PrivacyError::NoHonestSurvivor { members, colluding });
    }
    let honest = u128::from(members - colluding);
    let num = u128::from(total_num);
    let den = u128::from(total_den) * honest; // < 2^128
    let g = gcd(num, den);
    let (num_r, den_r) = (num / g, den / g);
    if let (Ok(n), Ok(d)) = (u64::try_from(num_r), u64::try_from(den_r)) {
        return Ok((n, d));
    }
    let up = num.div_ceil(honest);
    // up ≤ total_num, so it fits u64.
    Ok((u64::try_from(up).unwrap_or(u64::MAX), total_den))
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Inputs of the KLS21 bound for the sum of `honest` independent d-dimensional
/// N_Z(0, σ²_member) shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistributedNoise {
    /// L2 sensitivity Δ₂ of the summed (integer) update.
    pub l2_sensitivity: f64,
    /// L1 sensitivity Δ₁, if known; `None` uses the always-valid √d·Δ₂.
    pub l1_sensitivity: Option<f64>,
    /// Dimension d of the noised vector.
    pub dim: u64,
    /// n − c: honest, surviving members whose noise is summed.
    pub honest: u64,
    /// Each member's σ²; KLS21 require σ ≥ 1/2.
    pub sigma2_member: f64,
}

/// τ = 10 · Σ_{k=1}^{n−1} exp(−2π²σ² · k/(k+1)), KLS21's inflation for the sum
/// of n discrete Gaussians of parameter σ² each (0 for n = 1).
pub fn kls21_tau(honest: u64, sigma2_member: f64) -> f64 {
    let c = 2.0 * std::f64::consts::PI * std::f64::consts::PI * sigma2_member;
    let mut sum = 0.0;
    for k in 1..honest {
        let k = k as f64;
        sum += (-c * k / (k + 1.0)).exp();
    }
    10.0 * sum
}

/// zCDP ρ of releasing the sum of the honest members' discrete Gaussian noise
/// added to a query with the given sensitivities (KLS21, Proposition 14 / eq. 17).
///
/// With s² = n·σ²_member and τ = [`kls21_tau`], KLS21 bound the Rényi
/// divergence of order α ≥ 1 by the minimum of
/// (a) α·Δ₂²/(2s²) + τd,
/// (b) (α/2)·(Δ₂²/s² + 2Δ₁τ/s + τ²d),
/// (c) (α/2)·(Δ₂/s + τ√d)².
/// (b) and (c) are ρ-zCDP as they stand; (a) has an additive term, which we
/// make zCDP with τd ≤ ατd (α ≥ 1), giving ρ = Δ₂²/(2s²) + τd. The result is
/// the minimum of the three ρ and is never below the single discrete Gaussian's
/// Δ₂²/(2s²) (CKS20 Theorem 4), which it equals for n = 1.
///
/// Transcribed from the paper's authors' published accounting code
/// (`compute_rdp_dgaussian` in google-research/federated, distributed_dp),
/// which cites this proposition.
pub fn rho_distributed_discrete_gaussian(p: &DistributedNoise) -> Result<f64, PrivacyError> {
    if p.honest == 0 {
        return Err(PrivacyError::NoHonestSurvivor {
            members: 0,
            colluding: 0,
        });
    }
    if !(p.sigma2_member.is_finite() && p.sigma2_member >= 0.25) {
        return Err(PrivacyError::InvalidParameter {
            name: "sigma2_member (KLS21 need σ ≥ 1/2)",
            value: p.sigma2_member,
        });
    }
    if p.dim == 0 {
        return Err(PrivacyError::InvalidParameter {
            name: "dim",
            value: 0.0,
        });
    }
    let n = p.honest as f64;
    let d = p.dim as f64;
    let s2 = n * p.sigma2_member;
    let s = s2.sqrt();
    let base = rho_discrete_gaussian(p.l2_sensitivity, s2)?; // Δ₂²/(2s²)
    let l2 = p.l2_sensitivity;
    let l1 = match p.l1_sensitivity {
        Some(v) if v.is_finite() && v >= 0.0 => v,
        Some(v) => {
            return Err(PrivacyError::InvalidParameter {
                name: "l1_sensitivity",
                value: v,
            });
        }
        None => d.sqrt() * l2,
    };
    let tau = kls21_tau(p.honest, p.sigma2_member);
    let rho_a = base + tau * d;
    let rho_b = base + l1 * tau / s + tau * tau * d / 2.0;
    let rho_c = 0.5 * (l2 / s + tau * d.sqrt()).powi(2);
    // Each term is ≥ base in exact arithmetic; the max keeps float rounding
    // (e.g. τ = 0 in term c) from crediting the sum below one Gaussian.
    Ok(rho_a.min(rho_b).min(rho_c).max(base))
}
