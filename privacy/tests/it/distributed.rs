//! Distributed noise sizing and the KLS21 bound for summed discrete Gaussians.

use fedcredit_privacy::accountant::rho_discrete_gaussian;
use fedcredit_privacy::distributed::kls21_tau;
use fedcredit_privacy::{
    DiscreteGaussian, DistributedNoise, PrivacyError, member_variance,
    rho_distributed_discrete_gaussian,
};
use proptest::prelude::*;

#[test]
fn member_variance_divides_by_honest_survivors() {
    // σ²_total = 100, n = 10, c = 3: each of the 7 honest survivors adds 100/7.
    assert_eq!(member_variance(10, 3, 100, 1), Ok((100, 7)));
    // Reduced to lowest terms: 201/2 over 3 honest = 67/2.
    assert_eq!(member_variance(5, 2, 201, 2), Ok((67, 2)));
    assert_eq!(member_variance(1, 0, 4, 1), Ok((4, 1)));
    assert_eq!(
        member_variance(4, 4, 1, 1),
        Err(PrivacyError::NoHonestSurvivor {
            members: 4,
            colluding: 4
        })
    );
    assert!(matches!(
        member_variance(4, 1, 0, 1),
        Err(PrivacyError::InvalidVariance { .. })
    ));
    // Denominator would overflow u64: rounded up to ⌈num/(n−c)⌉/den.
    let (num, den) = member_variance(u64::MAX, 0, u64::MAX - 2, u64::MAX).expect("valid");
    assert_eq!(den, u64::MAX);
    assert_eq!(num, (u64::MAX - 2).div_ceil(u64::MAX));
}

proptest! {
    /// (n − c) shares of σ²_member always add up to at least σ²_total, and by
    /// less than one unit of the returned denominator too much.
    #[test]
    fn shares_cover_the_total(n in 1u64..10_000, c_frac in 0.0f64..1.0, num in 1u64..u64::MAX, den in 1u64..u64::MAX) {
        let c = ((n as f64) * c_frac) as u64 % n;
        let (m_num, m_den) = member_variance(n, c, num, den).expect("valid");
        let honest = u128::from(n - c);
        // honest · m_num / m_den ≥ num / den  ⇔  honest · m_num · den ≥ num · m_den.
        let lhs = honest * u128::from(m_num) * u128::from(den);
        let rhs = u128::from(num) * u128::from(m_den);
        prop_assert!(lhs >= rhs);
        prop_assert!(lhs - rhs < honest * u128::from(den));
    }
}

#[test]
fn tau_known_values() {
    // n = 1: one share is a discrete Gaussian, no inflation.
    assert_eq!(kls21_tau(1, 4.0), 0.0);
    // n = 2, σ² = 1/4: 10·exp(−π²/4); n = 3, σ² = 1: 10·(e^−π² + e^−4π²/3).
    assert!((kls21_tau(2, 0.25) - 0.8480497247111379).abs() < 1e-15);
    assert!((kls21_tau(3, 1.0) - 0.0005365032810126549).abs() < 1e-18);
}

fn noise(l2: f64, dim: u64, honest: u64, sigma2: f64) -> DistributedNoise {
    DistributedNoise {
        l2_sensitivity: l2,
        l1_sensitivity: None,
        dim,
        honest,
        sigma2_member: sigma2,
    }
}

#[test]
fn distributed_rho_known_values() {
    // n = 1 is the single discrete Gaussian.
    let single = rho_discrete_gaussian(3.0, 4.0).expect("valid");
    assert_eq!(
        rho_distributed_discrete_gaussian(&noise(3.0, 10, 1, 4.0)),
        Ok(single)
    );
    // n = 2, σ² = 1/4, Δ = 1, d = 1: ρ = min(1 + τ, ...) = 1.8480497247111378
    // (terms b and c are 2.5589...; computed by hand from KLS21's three bounds).
    let rho = rho_distributed_discrete_gaussian(&noise(1.0, 1, 2, 0.25)).expect("valid");
    assert!((rho - 1.8480497247111378).abs() < 1e-12, "{rho}");
    // Large σ²: τ underflows and the sum behaves like N_Z(0, nσ²).
    let rho = rho_distributed_discrete_gaussian(&noise(2.0, 1000, 50, 100.0)).expect("valid");
    let ideal = rho_discrete_gaussian(2.0, 5000.0).expect("valid");
    assert!(
        rho >= ideal && rho - ideal < 1e-12 * ideal,
        "{rho} vs {ideal}"
    );
    // KLS21's bound needs σ ≥ 1/2.
    assert!(rho_distributed_discrete_gaussian(&noise(1.0, 1, 2, 0.2)).is_err());
    assert!(rho_distributed_discrete_gaussian(&noise(1.0, 1, 0, 1.0)).is_err());
}

proptest! {
    /// The sum is never credited with more privacy than one discrete Gaussian
    /// of the summed variance would give.
    #[test]
    fn distributed_rho_at_least_single(l2 in 0.0f64..100.0, dim in 1u64..100_000, honest in 1u64..200, sigma2 in 0.25f64..50.0) {
        let rho = rho_distributed_discrete_gaussian(&noise(l2, dim, honest, sigma2)).expect("valid");
        let single = rho_discrete_gaussian(l2, honest as f64 * sigma2).expect("valid");
        prop_assert!(rho >= single);
    }

    /// Sampler symmetry: with the same seed stream, P[X = x] and P[X = −x]
    /// agree; checked as |#positive − #negative| within 5 SE on 2,000 draws.
    #[test]
    fn sampler_is_symmetric(seed in any::<u64>(), num in 1u64..1000, den in 1u64..10) {
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;
        let dg = DiscreteGaussian::new(num, den).expect("valid");
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut out = vec![0i64; 2000];
        dg.fill(&mut rng, &mut out);
        let pos = out.iter().filter(|&&x| x > 0).count() as f64;
        let neg = out.iter().filter(|&&x| x < 0).count() as f64;
        prop_assert!((pos - neg).abs() <= 5.0 * (pos + neg).sqrt() + 1.0, "{} vs {}", pos, neg);
    }
}
