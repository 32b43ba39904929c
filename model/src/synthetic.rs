//! Seeded synthetic data from a known logistic model, for tests and
//! benchmarks.
//!
//! Features are independent standard normals (Box–Muller on a ChaCha20
//! stream, so the data depend only on the seed, not on `rand`'s sampling
//! algorithms); `y_i ~ Bernoulli(sigmoid(β_0 + x_i·w))`.
//!
//! ```
//! use fedcredit_model::synthetic::{generate, known_beta, split_rows};
//!
//! let beta = known_beta(5);
//! let (x, y) = generate(1000, 5, &beta, 42).unwrap();
//! assert_eq!(x.dim(), (1000, 5));
//! let parts = split_rows(x.view(), y.view(), 3).unwrap();
//! assert_eq!(parts.iter().map(|(px, _)| px.nrows()).collect::<Vec<_>>(), [334, 333, 333]);
//! ```

use std::ops::Range;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::error::{ModelError, Result, check_len};
use crate::logistic::{check_beta, sigmoid};
use crate::rows::{rows1, rows2};

/// A fixed, recognisable coefficient vector for `d` features:
/// intercept −1, then `w_j = (−1)^j · 1.5 / (1 + j/2)` (j = 0-based), so
/// effects shrink and alternate in sign.
pub fn known_beta(d: usize) -> Vec<f64> {
    let mut beta = Vec::with_capacity(d + 1);
    beta.push(-1.0);
    for j in 0..d {
        let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
        beta.push(sign * 1.5 / (1.0 + j as f64 / 2.0));
    }
    beta
}

/// Uniform in `[0, 1)` with 53 random bits.
fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A pair of independent standard normals (Box–Muller).
fn normal_pair(rng: &mut ChaCha20Rng) -> (f64, f64) {
    let u1 = 1.0 - uniform(rng); // (0, 1]: ln is finite
    let u2 = uniform(rng);
    let r = (-2.0 * u1.ln()).sqrt();
    let t = std::f64::consts::TAU * u2;
    (r * t.cos(), r * t.sin())
}

/// `n` rows × `d` standard-normal features and 0/1 labels drawn from the
/// logistic model `beta = [b, w_1 … w_d]`. Deterministic given `seed`.
pub fn generate(n: usize, d: usize, beta: &[f64], seed: u64) -> Result<(Array2<f64>, Array1<f64>)> {
    check_beta(beta, d)?;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut x = Array2::<f64>::zeros((n, d));
    if let Some(flat) = x.as_slice_mut() {
        let mut chunks = flat.chunks_exact_mut(2);
        for pair in &mut chunks {
            let (a, b) = normal_pair(&mut rng);
            pair[0] = a;
            pair[1] = b;
        }
        if let [last] = chunks.into_remainder() {
            *last = normal_pair(&mut rng).0;
        }
    }
    let mut y = Array1::<f64>::zeros(n);
    for (row, yi) in x.rows().into_iter().zip(y.iter_mut()) {
        let z = beta[0] + row.iter().zip(&beta[1..]).map(|(a, b)| a * b).sum::<f64>();
        *yi = if uniform(&mut rng) < sigmoid(z) {
            1.0
        } else {
            0.0
        };
    }
    Ok((x, y))
}

/// `k` contiguous, near-equal row ranges covering `0..n` (the first
/// `n mod k` ranges get one extra row).
pub fn split_ranges(n: usize, k: usize) -> Result<Vec<Range<usize>>> {
    if k == 0 {
        return Err(ModelError::InvalidParameter {
            name: "k",
            reason: "cannot split into 0 parts".to_owned(),
        });
    }
    let (base, extra) = (n / k, n % k);
    let mut start = 0;
    Ok((0..k)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect())
}

/// Views of `k` contiguous parts of `(x, y)`, as from [`split_ranges`].
pub fn split_rows<'a>(
    x: ArrayView2<'a, f64>,
    y: ArrayView1<'a, f64>,
    k: usize,
) -> Result<Vec<(ArrayView2<'a, f64>, ArrayView1<'a, f64>)>> {
    check_len("labels (one per row)", x.nrows(), y.len())?;
    Ok(split_ranges(x.nrows(), k)?
        .into_iter()
        .map(|r| (rows2(x, r.clone()), rows1(y, r)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logistic::fit_newton_central;
    use proptest::prelude::*;

    #[test]
    fn deterministic_and_roughly_standard_normal() {
        let beta = known_beta(3);
        let (x1, y1) = generate(20_001, 3, &beta, 3).expect("ok");
        let (x2, y2) = generate(20_001, 3, &beta, 3).expect("ok");
        assert_eq!(x1, x2);
        assert_eq!(y1, y2);
        let (x3, _) = generate(20_001, 3, &beta, 4).expect("ok");
        assert_ne!(x1, x3);
        for j in 0..3 {
            let c = x1.column(j);
            assert!(c.mean().expect("rows").abs() < 0.03);
            assert!((c.std(0.0) - 1.0).abs() < 0.03);
        }
    }

    #[test]
    fn recovers_the_known_beta() {
        let beta = known_beta(4);
        let (x, y) = generate(50_000, 4, &beta, 8).expect("ok");
        let fit = fit_newton_central(x.view(), y.view(), 1e-6, 1e-10, 50).expect("fit");
        for (a, b) in fit.beta.iter().zip(&beta) {
            assert!((a - b).abs() < 0.06, "{:?} vs {beta:?}", fit.beta);
        }
    }

    #[test]
    fn bad_arguments() {
        assert!(generate(3, 2, &[0.0; 2], 0).is_err());
        assert!(split_ranges(3, 0).is_err());
        assert_eq!(split_ranges(2, 3).expect("ok"), [0..1, 1..2, 2..2]);
    }

    proptest! {
        #[test]
        fn split_ranges_partition(n in 0usize..1000, k in 1usize..20) {
            let r = split_ranges(n, k).expect("ok");
            prop_assert_eq!(r.len(), k);
            prop_assert_eq!(r[0].start, 0);
            prop_assert_eq!(r[k - 1].end, n);
            for w in r.windows(2) {
                prop_assert_eq!(w[0].end, w[1].start);
                prop_assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
            }
        }
    }
}
