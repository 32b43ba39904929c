//! The referee: the rules of a job, written once and run alike by the
//! coordinator (to plan rounds), by every participant (to refuse anything
//! else) and by the auditor (to check the log).
//!
//! Secure aggregation protects each member from the coordinator, so the
//! coordinator must not be free to choose what members compute. Every round
//! announcement lists the digests of the coordinator-signed outcomes of all
//! earlier rounds (a member fetches any it lacks); from the job spec (in the
//! consortium file every member holds) and those outcomes,
//! [`Referee::replay`] (or [`Referee::resume`] and
//! [`Referee::absorb_signed`]) recomputes the one task that may come next, and [`Referee::check_announcement`] refuses any other task, round
//! number, codec, dimension, bin count, clip or fraction-bits value.
//!
//! Layout:
//! - [`consortium`]: the consortium file (members, keys, thresholds,
//!   deadlines, the job spec), the trust anchor every party reads alike;
//! - [`plan`]: [`JobRules`], the job as a deterministic sequence of
//!   [`RoundPlan`]s (secure sum: one round; credit model: statistics,
//!   optimization, evaluation), and the [`task_digest`] that names a task
//!   independently of its round and attempt numbers;
//! - [`cohort`]: how contributor sets may change between tasks
//!   ([`CohortPolicy`]);
//! - [`history`]: [`Referee`], the job replayed from signed outcomes;
//! - [`membership`]: [`Membership`], whose rows are in the result;
//! - [`monitor`]: the `monitor` job's spec (the scorecard it embeds) and codec;
//! - [`error`]: [`RefereeError`], why the referee refuses.
//!
//! ```
//! use fedcredit_referee::consortium::{CohortPolicy, JobKind, JobSpec};
//! use fedcredit_referee::JobRules;
//!
//! let spec = JobSpec {
//!     id: "exposure".into(),
//!     cohort: CohortPolicy::Fixed,
//!     require_all_members: false,
//!     kind: JobKind::SecureSum { dimension: 3, frac_bits: 16, clip: 1e6, rounds: 1 },
//! };
//! // A secure sum adds no noise; a private model job sizes it for n and t − c.
//! let cohort = fedcredit_model::privacy::NoiseCohort::single();
//! let mut rules = JobRules::new(&spec, cohort)?;
//! let plan = rules.next_plan().expect("one round");
//! assert_eq!(plan.dimension, 3);
//! rules.absorb(&[1.0, 2.0, 3.0])?;
//! assert!(rules.next_plan().is_none());
//! # Ok::<(), fedcredit_referee::RefereeError>(())
//! ```
#![forbid(unsafe_code)]

pub mod cohort;
pub mod consortium;
pub mod error;
pub mod history;
pub mod membership;
pub mod monitor;
pub mod plan;

pub use cohort::CohortPolicy;
pub use error::RefereeError;
pub use history::{Published, Referee};
pub use membership::Membership;
pub use plan::{JobRules, RoundPlan, TaskDigest, max_words, task_digest};
