//! Differential privacy for fedcredit: exact integer noise for the
//! secure-aggregation ring, distributed noise sizing, and a zCDP accountant.
//!
//! # Mechanism choice
//!
//! Members add integer noise to their quantised updates before masking, so the
//! noise lives in the same ring as the secure-aggregation sum. Two published
//! integer mechanisms fit:
//!
//! * **Discrete Gaussian** (Canonne, Kamath, Steinke, NeurIPS 2020, "CKS20"):
//!   an exact sampler that needs only uniform integers and rational
//!   arithmetic is published (their Algorithms 1–3) and widely reviewed and
//!   reimplemented. It is *not* closed under sums — the sum of the members'
//!   shares is not itself a discrete Gaussian — but Kairouz, Liu, Steinke
//!   (ICML 2021, "KLS21") give a tight published bound for that sum, which
//!   [`distributed`] implements.
//! * **Skellam** (Agarwal, Kairouz, Liu 2021): closed under sums, but an exact
//!   sampler needs exact Poisson sampling at large λ, which has no comparably
//!   reviewed integer-only algorithm.
//!
//! We use the discrete Gaussian: the sampler is the part that must be exact
//! (floating-point samplers leak through their low bits, Mironov 2012), and for
//! it the published, reviewed algorithm exists.
//!
//! # Modules
//!
//! * [`sampler`]: [`DiscreteGaussian`], Bernoulli(exp(−γ)), discrete Laplace,
//!   uniform integers; integer arithmetic only.
//! * [`distributed`]: each member's share of the variance, and the KLS21 ρ
//!   bound for the sum of the honest members' shares.
//! * [`accountant`]: zCDP ρ, composition, conversion to (ε, δ), [`Ledger`].
#![forbid(unsafe_code)]

pub mod accountant;
pub mod distributed;
mod error;
pub mod sampler;

pub use accountant::{Budget, Ledger};
pub use distributed::{DistributedNoise, member_variance, rho_distributed_discrete_gaussian};
pub use error::PrivacyError;
pub use sampler::DiscreteGaussian;
