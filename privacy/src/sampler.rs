//! Exact sampling of the discrete Gaussian (CKS20, Algorithms 1–3) with integer
//! arithmetic only: every random decision is a comparison of a uniform integer
//! with a rational threshold, so no floating-point rounding can bias or leak
//! through the noise (Mironov, CCS 2012).

use crate::PrivacyError;
use rand::Rng;
use rand_core::{CryptoRng, RngCore};

/// A sample is only accepted if `|x| ≤ 2^16 · t` fits the integer arithmetic; see
/// [`DiscreteGaussian`] for why this truncation is immaterial.
const TAIL_FACTOR: u128 = 1 << 16;

/// Uniform integer in `[0, n)`.
///
/// Uses `rand`'s integer `gen_range` (widening multiply with a rejection zone
/// that is a multiple of `n`), so there is no modulo bias and no floating point.
///
/// # Panics
/// If `n == 0`.
pub fn uniform_below<R: RngCore + CryptoRng + ?Sized>(rng: &mut R, n: u128) -> u128 {
    assert!(n > 0, "uniform_below: empty range");
    rng.gen_range(0..n)
}

/// Bernoulli(num / den) for `num ≤ den`, `den > 0`: one uniform draw.
pub fn bernoulli_ratio<R: RngCore + CryptoRng + ?Sized>(rng: &mut R, num: u128, den: u128) -> bool {
    debug_assert!(num <= den);
    uniform_below(rng, den) < num
}

/// Bernoulli(exp(−γ)) for rational `γ = num / den ≥ 0` (CKS20, Algorithm 1).
///
/// For γ ≤ 1 it counts how long a run of Bernoulli(γ/k) successes lasts and
/// returns whether the stopping index is odd (probability Σ (−γ)^j / j! =
/// e^−γ); γ/k is drawn as Bernoulli(γ) ∧ Bernoulli(1/k) so nothing overflows.
/// For γ > 1 it ANDs ⌊γ⌋ draws of Bernoulli(e^−1) with one of
/// Bernoulli(e^−(γ − ⌊γ⌋)), stopping at the first failure.
///
/// # Panics
/// If `den == 0`.
pub fn bernoulli_exp_neg<R: RngCore + CryptoRng + ?Sized>(
    rng: &mut R,
    num: u128,
    den: u128,
) -> bool {
    assert!(den > 0, "bernoulli_exp_neg: zero denominator");
    if num <= den {
        return bernoulli_exp_neg_at_most_one(rng, num, den);
    }
    let whole = num / den;
    let mut k = 0u128;
    while k < whole {
        if !bernoulli_exp_neg_at_most_one(rng, 1, 1) {
            return false;
        }
        k += 1;
    }
    bernoulli_exp_neg_at_most_one(rng, num % den, den)
}

fn bernoulli_exp_neg_at_most_one<R: RngCore + CryptoRng + ?Sized>(
    rng: &mut R,
    num: u128,
    den: u128,
) -> bool {
    let mut k: u128 = 1;
    // A_k ~ Bernoulli(γ / k) = Bernoulli(γ) ∧ Bernoulli(1 / k).
    while bernoulli_ratio(rng, num, den) && bernoulli_ratio(rng, 1, k) {
        k += 1;
    }
    k % 2 == 1
}

/// Discrete Laplace with scale `t` (CKS20, Algorithm 2 with s = 1):
/// P[Y = y] ∝ exp(−|y| / t), restricted to `|y| ≤ limit` by restarting.
///
/// Returns (negative, |y|).
fn discrete_laplace<R: RngCore + CryptoRng + ?Sized>(
    rng: &mut R,
    t: u128,
    limit: u128,
) -> (bool, u128) {
    loop {
        let u = uniform_below(rng, t);
        if !bernoulli_exp_neg(rng, u, t) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp_neg(rng, 1, 1) {
            v += 1;
        }
        // X = U + t·V; anything beyond the limit (or u128) restarts the loop,
        // which conditions the output on |Y| ≤ limit exactly.
        let Some(x) = t.checked_mul(v).and_then(|tv| tv.checked_add(u)) else {
            continue;
        };
        if x > limit {
            continue;
        }
        let negative = bernoulli_ratio(rng, 1, 2);
        if negative && x == 0 {
            continue;
        }
        return (negative, x);
    }
}

/// The discrete Gaussian N_Z(0, σ²) on the integers, P[X = x] ∝ exp(−x² / 2σ²),
/// with σ² = `num / den` rational, sampled exactly (CKS20, Algorithm 3).
///
/// Proposals come from the discrete Laplace with scale t = ⌊σ⌋ + 1 and are
/// accepted with probability exp(−(|y| − σ²/t)² / 2σ²), which in integers is
/// exp(−(|y|·q·t − p)² / (2·p·q·t²)) for σ² = p/q.
///
/// Range: the constructor requires 2·p·q·t² to fit in u128 and
/// |y|·q·t ≤ 2^64 − 1 for every |y| ≤ L = 2^16·t (so q·t² ≲ 2^48, e.g. integer
/// σ² up to about 2^48); otherwise it returns
/// [`PrivacyError::VarianceOutOfRange`]. Proposals with |y| > L are
/// rejected, so the output is exactly the discrete Gaussian conditioned on
/// |x| ≤ L; the mass cut off is below 2·exp(−2^30) (CKS20's tail bound
/// P[X ≥ m] ≤ P[N(0, σ²) ≥ m − 1]), far beyond any observable effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscreteGaussian {
    /// σ² = p / q in lowest terms.
    p: u128,
    q: u128,
    /// t = ⌊σ⌋ + 1, the discrete Laplace scale.
    t: u128,
    /// q · t.
    qt: u128,
    /// 2 · p · q · t², the acceptance exponent's denominator.
    accept_den: u128,
    /// Largest |x| the arithmetic holds (L above), ≤ i64::MAX.
    limit: u128,
}

impl DiscreteGaussian {
    /// The discrete Gaussian with variance parameter σ² = `sigma2_num / sigma2_den`.
    pub fn new(sigma2_num: u64, sigma2_den: u64) -> Result<Self, PrivacyError> {
        let invalid = PrivacyError::InvalidVariance {
            num: sigma2_num,
            den: sigma2_den,
        };
        if sigma2_num == 0 || sigma2_den == 0 {
            return Err(invalid);
        }
        let out_of_range = |why| PrivacyError::VarianceOutOfRange {
            num: sigma2_num,
            den: sigma2_den,
            why,
        };
        let g = gcd(u128::from(sigma2_num), u128::from(sigma2_den));
        let p = u128::from(sigma2_num) / g;
        let q = u128::from(sigma2_den) / g;
        // ⌊σ⌋ = ⌊√⌊p/q⌋⌋.
        let t = (p / q).isqrt() + 1;
        let qt = q
            .checked_mul(t)
            .ok_or_else(|| out_of_range("q·t exceeds u128"))?;
        let accept_den = qt
            .checked_mul(t)
            .and_then(|v| v.checked_mul(p))
            .and_then(|v| v.checked_mul(2))
            .ok_or_else(|| out_of_range("2·p·q·t² exceeds u128"))?;
        // |y|·q·t ≤ u64::MAX keeps |(|y|·q·t − p)| < 2^64, so its square fits u128.
        let limit = (u128::from(u64::MAX) / qt).min(i64::MAX as u128);
        let needed = TAIL_FACTOR
            .checked_mul(t)
            .ok_or_else(|| out_of_range("2^16·t exceeds u128"))?;
        if limit < needed {
            return Err(out_of_range(
                "cannot represent samples up to 2^16·σ (need q·t² ≲ 2^48)",
            ));
        }
        let limit = needed;
        Ok(Self {
            p,
            q,
            t,
            qt,
            accept_den,
            limit,
        })
    }

    /// σ² as (numerator, denominator) in lowest terms.
    pub fn sigma2(&self) -> (u128, u128) {
        (self.p, self.q)
    }

    /// One draw from N_Z(0, σ²).
    pub fn sample<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        loop {
            let (negative, y) = discrete_laplace(rng, self.t, self.limit);
            // y ≤ limit ≤ u64::MAX / qt, so neither product overflows.
            let a = y * self.qt;
            let diff = a.abs_diff(self.p);
            let accept_num = diff * diff;
            if bernoulli_exp_neg(rng, accept_num, self.accept_den) {
                let y = i64::try_from(y).unwrap_or(i64::MAX); // y ≤ limit ≤ i64::MAX
                return if negative { -y } else { y };
            }
        }
    }

    /// Fills `out` with independent draws.
    pub fn fill<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R, out: &mut [i64]) {
        for x in out {
            *x = self.sample(rng);
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_zero_and_huge_variances() {
        assert!(matches!(
            DiscreteGaussian::new(0, 1),
            Err(PrivacyError::InvalidVariance { .. })
        ));
        assert!(matches!(
            DiscreteGaussian::new(1, 0),
            Err(PrivacyError::InvalidVariance { .. })
        ));
        assert!(matches!(
            DiscreteGaussian::new(u64::MAX, 1),
            Err(PrivacyError::VarianceOutOfRange { .. })
        ));
        assert!(matches!(
            DiscreteGaussian::new((1 << 47) + 2, (1 << 47) + 1), // q·t² ≈ 2^49
            Err(PrivacyError::VarianceOutOfRange { .. })
        ));
        // Integer σ² up to 2^46 is in range; a tiny σ² is too.
        DiscreteGaussian::new(1 << 46, 1).expect("2^46");
        DiscreteGaussian::new(1, 1000).expect("1/1000");
    }

    #[test]
    fn reduces_and_sizes_the_laplace_scale() {
        let d = DiscreteGaussian::new(201, 2).expect("100.5");
        assert_eq!(d.sigma2(), (201, 2));
        assert_eq!(d.t, 11); // ⌊√100.5⌋ + 1
        let d = DiscreteGaussian::new(8, 2).expect("4");
        assert_eq!(d.sigma2(), (4, 1));
        assert_eq!(d.t, 3);
        assert_eq!(d.accept_den, 2 * 4 * 9);
    }
}
