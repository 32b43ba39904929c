//! Typed errors of the privacy crate.

use thiserror::Error;

/// Why a parameter or a round was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PrivacyError {
    /// σ² must be a positive rational with a non-zero denominator.
    #[error("variance {num}/{den} is not a positive rational")]
    InvalidVariance {
        /// Numerator as given.
        num: u64,
        /// Denominator as given.
        den: u64,
    },
    /// σ² is valid but the sampler's integer arithmetic could not hold it exactly.
    #[error("variance {num}/{den} is beyond the sampler's exact range: {why}")]
    VarianceOutOfRange {
        /// Numerator as given.
        num: u64,
        /// Denominator as given.
        den: u64,
        /// Which limit was hit.
        why: &'static str,
    },
    /// At least one member must be honest and survive: need `colluding < members`.
    #[error("{colluding} colluding or dropped of {members} members leaves no honest survivor")]
    NoHonestSurvivor {
        /// n.
        members: u64,
        /// c.
        colluding: u64,
    },
    /// An accounting input was outside its domain (NaN, negative, δ ∉ (0,1), ...).
    #[error("invalid accounting parameter {name} = {value}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Offending value.
        value: f64,
    },
    /// Charging the planned round would take the ledger over its ε budget.
    #[error(
        "round refused: spent ε = {spent_epsilon}, with this round ε would be {planned_epsilon} > budget ε = {budget_epsilon} (δ = {delta})"
    )]
    BudgetExceeded {
        /// ε of the rounds already charged, at the budget's δ.
        spent_epsilon: f64,
        /// ε after also charging the planned round, at the budget's δ.
        planned_epsilon: f64,
        /// The budget's ε.
        budget_epsilon: f64,
        /// The budget's δ.
        delta: f64,
    },
}
