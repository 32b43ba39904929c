//! A participant's consent policy: which jobs its daemon takes part in.
//! A bank decides, in its own config, what a job may touch of its data; the
//! coordinator only proposes. A job outside the policy is refused with a
//! fixed reason code (which the operator sees in the job's membership and
//! round log) and the detail stays in the participant's own log.
//!
//! ```toml
//! [policy]
//! kinds = ["logistic-regression"]   # job kinds it takes part in: secure-sum, logistic-regression
//! label = "default"                 # model jobs: the only label column it allows
//! features = ["age", "income"]      # model jobs: the columns it exposes; a job reading another is refused
//! require_privacy = true            # model jobs: only differentially private ones
//! max_epsilon = 8.0                 # ... spending at most this ε for the whole job
//! max_delta = 1e-5                  # ... and at most this δ
//! min_cohort = 3                    # the job's minimum cohort and threshold are at least this
//! ```
//!
//! Every key is optional except `kinds`; an absent key does not restrict.

use std::collections::BTreeSet;

use fedcredit_model::schema::Feature;
use fedcredit_proto::v1::ReasonCode;
use fedcredit_referee::consortium::{Consortium, JobKind};
use serde::Deserialize;

/// The `[policy]` table as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    kinds: Vec<String>,
    label: Option<String>,
    features: Option<Vec<String>>,
    #[serde(default)]
    require_privacy: bool,
    max_epsilon: Option<f64>,
    max_delta: Option<f64>,
    min_cohort: Option<usize>,
}

/// The job kinds a policy may name.
const KINDS: [&str; 2] = ["secure-sum", "logistic-regression"];

/// A validated consent policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Job kinds allowed.
    pub kinds: BTreeSet<String>,
    /// Model jobs: the label column allowed (`None`: any).
    pub label: Option<String>,
    /// Model jobs: the columns it exposes (`None`: any).
    pub features: Option<BTreeSet<String>>,
    /// Model jobs: only differentially private ones.
    pub require_privacy: bool,
    /// Largest ε of a private job.
    pub max_epsilon: Option<f64>,
    /// Largest δ of a private job.
    pub max_delta: Option<f64>,
    /// Smallest minimum cohort and threshold.
    pub min_cohort: Option<usize>,
}

/// Why a job is refused: a fixed code for the coordinator, the detail for
/// the participant's log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the consent policy refuses job {job}: {detail}")]
pub struct Refusal {
    /// The job refused.
    pub job: String,
    /// What is told to the coordinator.
    pub code: ReasonCode,
    /// What the participant logs (it may name local columns).
    pub detail: String,
}

impl RawPolicy {
    /// Checks the table; the error is the key and what was expected.
    pub(crate) fn validate(self) -> Result<Policy, (&'static str, String)> {
        if self.kinds.is_empty() {
            return Err((
                "policy.kinds",
                format!("at least one of {KINDS:?}: an empty list refuses every job"),
            ));
        }
        for k in &self.kinds {
            if !KINDS.contains(&k.as_str()) {
                return Err((
                    "policy.kinds",
                    format!("job kinds among {KINDS:?}, got {k:?}"),
                ));
            }
        }
        for (key, v) in [
            ("policy.max_epsilon", self.max_epsilon),
            ("policy.max_delta", self.max_delta),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err((key, format!("a positive number, got {v}")));
            }
        }
        if (self.max_epsilon.is_some() || self.max_delta.is_some()) && !self.require_privacy {
            return Err((
                "policy.require_privacy",
                "true when max_epsilon or max_delta is set (a job without privacy has no ε to bound)"
                    .into(),
            ));
        }
        Ok(Policy {
            kinds: self.kinds.into_iter().collect(),
            label: self.label,
            features: self.features.map(|f| f.into_iter().collect()),
            require_privacy: self.require_privacy,
            max_epsilon: self.max_epsilon,
            max_delta: self.max_delta,
            min_cohort: self.min_cohort,
        })
    }
}

impl Policy {
    /// A policy that takes part in jobs of `kind` only (what `fedcredit
    /// provision` writes into a kit).
    pub fn only(kind: &str) -> Self {
        Self {
            kinds: [kind.to_owned()].into(),
            label: None,
            features: None,
            require_privacy: false,
            max_epsilon: None,
            max_delta: None,
            min_cohort: None,
        }
    }

    /// Whether this member takes part in the consortium's job.
    pub fn check(&self, consortium: &Consortium) -> Result<(), Refusal> {
        let job = &consortium.job;
        let refuse = |code, detail: String| {
            Err(Refusal {
                job: job.id.clone(),
                code,
                detail,
            })
        };
        let kind = job.kind.name();
        if !self.kinds.contains(kind) {
            return refuse(
                ReasonCode::ReasonPolicyKind,
                format!("a {kind} job; policy.kinds allows {:?}", self.kinds),
            );
        }
        let t = &consortium.protocol.thresholds;
        if let Some(min) = self.min_cohort
            && (t.min_cohort() < min || t.threshold() < min)
        {
            return refuse(
                ReasonCode::ReasonPolicyCohort,
                format!(
                    "minimum cohort {} and threshold {}; policy.min_cohort is {min}",
                    t.min_cohort(),
                    t.threshold()
                ),
            );
        }
        let JobKind::LogisticRegression(spec) = &job.kind else {
            return Ok(());
        };
        if let Some(label) = &self.label
            && spec.schema.label.column != *label
        {
            return refuse(
                ReasonCode::ReasonPolicyLabel,
                format!(
                    "label column {:?}; policy.label allows {label:?}",
                    spec.schema.label.column
                ),
            );
        }
        if let Some(allowed) = &self.features {
            let outside: Vec<&str> = spec
                .schema
                .features
                .iter()
                .map(Feature::name)
                .filter(|name| !allowed.contains(*name))
                .collect();
            if !outside.is_empty() {
                return refuse(
                    ReasonCode::ReasonPolicyFeatures,
                    format!("it reads {outside:?}, which policy.features does not expose"),
                );
            }
        }
        if self.require_privacy {
            let Some(p) = spec.privacy.as_ref().and_then(|p| p.spec()) else {
                return refuse(
                    ReasonCode::ReasonPolicyPrivacy,
                    "it is not differentially private; policy.require_privacy is true".into(),
                );
            };
            if let Some(max) = self.max_epsilon
                && p.epsilon > max
            {
                return refuse(
                    ReasonCode::ReasonPolicyPrivacy,
                    format!("ε = {} for the job; policy.max_epsilon is {max}", p.epsilon),
                );
            }
            if let Some(max) = self.max_delta
                && p.delta > max
            {
                return refuse(
                    ReasonCode::ReasonPolicyPrivacy,
                    format!("δ = {} for the job; policy.max_delta is {max}", p.delta),
                );
            }
        }
        Ok(())
    }
}
