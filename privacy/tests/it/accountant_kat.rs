//! Known answers for the zCDP → (ε, δ) conversion, computed with Google's
//! dp-accounting 0.6.0 by `privacy/kat/zcdp_kat.py` (its output is
//! `privacy/kat/zcdp_kat.out`). dp-accounting's `compute_epsilon` /
//! `compute_delta` use the same CKS20 bound as ours, minimised over a dense
//! grid of 138,053 orders; the grid can only overstate the infimum, by far less
//! than the tolerance.

use fedcredit_privacy::accountant::{
    compose, delta_from_rho, epsilon_from_rho, epsilon_from_rho_simple, rho_discrete_gaussian,
};
use fedcredit_privacy::{Budget, Ledger, PrivacyError};

/// Relative agreement required with dp-accounting.
const REL_TOL: f64 = 1e-6;

/// (ρ, δ, ε, dp-accounting's optimal order α).
const EPSILON_FROM_DELTA: &[(f64, f64, f64, f64)] = &[
    (0.001, 0.001, 0.09036205126423924, 54.874032395259704),
    (0.001, 1e-6, 0.18289537734328953, 97.12625113025771),
    (0.001, 1e-9, 0.24511925391431783, 127.01412187578674),
    (0.01, 0.001, 0.35431848687477907, 20.692865936099658),
    (0.01, 1e-6, 0.62169265456023, 33.117620650325115),
    (0.01, 1e-9, 0.8101744688503443, 42.20561894259596),
    (0.1, 0.001, 1.3561931063960415, 7.9529013511106115),
    (0.1, 1e-6, 2.1419389287457102, 11.65829201982846),
    (0.1, 1e-9, 2.7154818894684043, 14.435738957906361),
    (0.5, 0.001, 3.5365618473642346, 4.30108598242157),
    (0.5, 1e-6, 5.221534445059177, 5.907080292016922),
    (0.5, 1e-9, 6.474070021048591, 7.125232139077884),
    (1.0, 0.001, 5.419919169417888, 3.3850867001070077),
    (1.0, 1e-6, 7.766216625324967, 4.508503093119716),
    (1.0, 1e-9, 9.521463679484633, 5.363713249196588),
    (5.0, 0.001, 15.458183167352416, 2.110032082799905),
    (5.0, 1e-6, 20.55194882724071, 2.603593596389459),
    (5.0, 1e-9, 24.405987573154583, 2.9813787718781146),
];

/// (ρ, ε, δ, dp-accounting's optimal order α).
const DELTA_FROM_EPSILON: &[(f64, f64, f64, f64)] = &[
    (0.01, 1.0, 1.6641140313357556e-13, 51.48257640223104),
    (0.1, 2.0, 4.325210930735396e-06, 10.977203331955826),
    (0.5, 4.0, 0.0001957954197265662, 4.737278028586407),
    (1.0, 8.0, 4.3453416907344755e-07, 4.621706226937663),
    (0.05, 0.5, 0.023031697910940382, 7.033208174099525),
];

/// 50 rounds of ρ = 0.002 composed inside dp-accounting, at δ = 1e-6.
const COMPOSED_50_X_0_002: f64 = 2.1419389287457102;

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn epsilon_matches_dp_accounting() {
    for &(rho, delta, want, _) in EPSILON_FROM_DELTA {
        let got = epsilon_from_rho(rho, delta).expect("valid");
        assert!(
            rel(got, want) < REL_TOL,
            "ρ = {rho}, δ = {delta}: {got} vs {want}"
        );
        // The dense grid can only overstate the infimum.
        assert!(
            got <= want * (1.0 + 1e-12),
            "ρ = {rho}, δ = {delta}: {got} > {want}"
        );
    }
}

#[test]
fn delta_matches_dp_accounting() {
    for &(rho, eps, want, _) in DELTA_FROM_EPSILON {
        let got = delta_from_rho(rho, eps).expect("valid");
        assert!(
            rel(got, want) < REL_TOL,
            "ρ = {rho}, ε = {eps}: {got} vs {want}"
        );
    }
}

#[test]
fn composition_adds_rho_and_matches_dp_accounting() {
    let rho = compose(&[0.002; 50]).expect("valid");
    assert!(rel(rho, 0.1) < 1e-12);
    let got = epsilon_from_rho(rho, 1e-6).expect("valid");
    assert!(
        rel(got, COMPOSED_50_X_0_002) < REL_TOL,
        "{got} vs {COMPOSED_50_X_0_002}"
    );
}

#[test]
fn conversions_are_inverse() {
    for &(rho, delta, _, _) in EPSILON_FROM_DELTA {
        let eps = epsilon_from_rho(rho, delta).expect("valid");
        let back = delta_from_rho(rho, eps).expect("valid");
        assert!(
            rel(back, delta) < 1e-6,
            "ρ = {rho}: δ {delta} → ε {eps} → δ {back}"
        );
    }
}

#[test]
fn simple_bound_is_looser_than_tight() {
    for &(rho, delta, tight, _) in EPSILON_FROM_DELTA {
        let simple = epsilon_from_rho_simple(rho, delta).expect("valid");
        assert!(
            simple > tight,
            "ρ = {rho}, δ = {delta}: simple {simple} ≤ tight {tight}"
        );
    }
    // Hand check: ρ = 0.5, δ = e^-8: 0.5 + 2·√4 = 4.5.
    let e = epsilon_from_rho_simple(0.5, (-8f64).exp()).expect("valid");
    assert!((e - 4.5).abs() < 1e-12);
}

#[test]
fn rho_of_discrete_gaussian() {
    assert_eq!(rho_discrete_gaussian(2.0, 4.0), Ok(0.5));
    assert_eq!(rho_discrete_gaussian(1.0, 100.5), Ok(1.0 / 201.0));
    assert!(rho_discrete_gaussian(1.0, 0.0).is_err());
    assert!(rho_discrete_gaussian(f64::NAN, 1.0).is_err());
}

#[test]
fn refuses_bad_parameters() {
    assert!(epsilon_from_rho(-1.0, 1e-6).is_err());
    assert!(epsilon_from_rho(1.0, 0.0).is_err());
    assert!(epsilon_from_rho(1.0, 1.0).is_err());
    assert!(delta_from_rho(1.0, f64::INFINITY).is_err());
    assert!(Budget::new(1.0, 2.0).is_err());
    assert_eq!(epsilon_from_rho(0.0, 1e-6), Ok(0.0));
}

#[test]
fn ledger_refuses_the_round_that_would_exceed_the_budget() {
    // ε = 2.1419... at δ = 1e-6 is ρ = 0.1 (dp-accounting, above): 50 rounds
    // of 0.002 fit in ε = 2.15 and the 51st does not.
    let budget = Budget::new(2.15, 1e-6).expect("valid");
    let mut ledger = Ledger::new(budget);
    for _ in 0..50 {
        ledger.charge(0.002).expect("within budget");
    }
    assert_eq!(ledger.rounds(), 50);
    let spent = ledger.spent_epsilon().expect("valid");
    assert!(rel(spent, COMPOSED_50_X_0_002) < REL_TOL);
    let err = ledger
        .charge(0.002)
        .expect_err("51st round exceeds ε = 2.15");
    match err {
        PrivacyError::BudgetExceeded {
            spent_epsilon,
            planned_epsilon,
            budget_epsilon,
            delta,
        } => {
            assert!(rel(spent_epsilon, COMPOSED_50_X_0_002) < REL_TOL);
            assert!(
                planned_epsilon > 2.15 && planned_epsilon < 2.2,
                "{planned_epsilon}"
            );
            assert_eq!(budget_epsilon, 2.15);
            assert_eq!(delta, 1e-6);
        }
        other => panic!("wrong error {other:?}"),
    }
    // A refused round leaves the ledger unchanged; a smaller one still fits.
    assert_eq!(ledger.rounds(), 50);
    assert!(ledger.check(1e-5).is_ok());
}

#[test]
fn max_rho_inverts_the_conversion() {
    let budget = Budget::new(COMPOSED_50_X_0_002, 1e-6).expect("valid");
    let rho = budget.max_rho().expect("valid");
    assert!(rel(rho, 0.1) < 1e-6, "{rho}");
    assert!(epsilon_from_rho(rho, 1e-6).expect("valid") <= budget.epsilon);
}
