#![forbid(unsafe_code)]
//! `fedcredit-model`: the pure numerics of fedcredit — everything a party
//! computes on its own rows and everything the coordinator (and the
//! auditor) computes from aggregated sums. No I/O, no async, deterministic
//! given inputs and seeds.
//!
//! Layout:
//!
//! - [`schema`]: the job schema (label, numeric and categorical features),
//!   schema inference and hashing.
//! - [`encoder`]: CSV record → encoded row and 0/1 label.
//! - [`job`]: a model job as a state machine: the task of each round and
//!   what the coordinator does with its sum.
//! - [`stats`]: the statistics round (count, Σx, Σx² → global mean/std).
//! - [`logistic`]: stable link functions, the Newton round
//!   ([`logistic::newton`]), the FedAvg comparator ([`logistic::fedavg`]),
//!   unit conversion.
//! - [`linalg`]: packed triangles and Cholesky for the Newton step.
//! - [`metrics`]: exact and histogram-pooled AUC, KS, log-loss.
//! - [`scorecard`]: binning from pooled per-label histograms, WOE/IV,
//!   points and reason codes.
//! - [`synthetic`]: seeded data from a known logistic model.
//! - [`rows`]: row-range views (ndarray's `s!` is unusable under
//!   `forbid(unsafe_code)`).
//! - [`error`]: the crate's error type, [`ModelError`].
//!
//! Every round's vector layout is documented in the module that produces it;
//! the vectors are meant to be summed element-wise by secure aggregation.
//!
//! The objective is `Σ_i logloss_i + (l2/2)·‖w‖²` on globally standardized
//! features with an unpenalized intercept, i.e. scikit-learn's
//! `LogisticRegression(C = 1/l2)` on the pooled, standardized rows.

pub mod encoder;
pub mod error;
pub mod job;
pub mod linalg;
pub mod logistic;
pub mod metrics;
pub mod privacy;
pub mod rows;
pub mod schema;
pub mod scorecard;
pub mod stats;
pub mod synthetic;

pub use encoder::Encoder;
pub use error::{ModelError, Result};
pub use metrics::{Metrics, ScoreHistogram};
pub use schema::{Feature, LabelSpec, Negatives, Schema};
pub use stats::Standardizer;
