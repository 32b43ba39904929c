//! A participant's consent policy: which jobs its daemon takes part in.
//! A bank decides, in its own config, what a job may touch of its data; the
//! coordinator only proposes. A job outside the policy is refused with a
//! fixed reason code (which the operator sees in the job's membership and
//! round log) and the detail stays in the participant's own log.
//!
//! ```toml
//! [policy]
//! kinds = ["logistic-regression"]   # job kinds it takes part in: secure-sum, logistic-regression, scorecard, monitor
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
const KINDS: [&str; 4] = ["secure-sum", "logistic-regression", "scorecard", "monitor"];

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
        if let JobKind::Monitor(spec) = &job.kind {
            return self
                .check_monitor(spec)
                .or_else(|(code, detail)| refuse(code, detail));
        }
        let Some(spec) = job.kind.model_spec() else {
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

    /// A monitor job reads the scorecard's features and publishes exact
    /// counts: `features` bounds the columns, and `require_privacy`
    /// refuses it (nothing is noised).
    fn check_monitor(
        &self,
        spec: &fedcredit_referee::monitor::MonitorSpec,
    ) -> Result<(), (ReasonCode, String)> {
        if let (Some(allowed), Some(card)) = (&self.features, &spec.scorecard) {
            let outside: Vec<&str> = card
                .schema
                .features
                .iter()
                .map(Feature::name)
                .filter(|name| !allowed.contains(*name))
                .collect();
            if !outside.is_empty() {
                return Err((
                    ReasonCode::ReasonPolicyFeatures,
                    format!("it reads {outside:?}, which policy.features does not expose"),
                ));
            }
        }
        if self.require_privacy {
            return Err((
                ReasonCode::ReasonPolicyPrivacy,
                "a monitor job publishes exact counts, not differentially private ones; \
                 policy.require_privacy is true"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_crypto::identity::IdentityKey;
    use std::path::Path;

    fn consortium(job: &str, protocol: &str) -> Consortium {
        let key = |s: u8| IdentityKey::from_secret_bytes(&[s; 32]).public().to_hex();
        let mut toml = format!(
            "[coordinator]\nlisten = \"127.0.0.1:1\"\npublic_key = \"{}\"\n[protocol]\n{protocol}\n{job}\n",
            key(9)
        );
        for i in 0..5u8 {
            toml.push_str(&format!(
                "[[participants]]\nid = \"m{i}\"\npublic_key = \"{}\"\n",
                key(i + 1)
            ));
        }
        Consortium::parse(Path::new("c.toml"), &toml).expect("consortium")
    }

    const SUM: &str =
        "[job]\nid = \"s\"\nkind = \"secure-sum\"\ndimension = 2\nfrac_bits = 16\nclip = 1e6\n";

    fn model(privacy: &str) -> String {
        format!(
            "[job]\nid = \"m\"\nkind = \"logistic-regression\"\n{privacy}\n\
             [job.schema.label]\ncolumn = \"default\"\npositive = \"bad\"\nnegative = \"good\"\n\
             [[job.schema.features]]\nkind = \"numeric\"\nname = \"age\"\n\
             [[job.schema.features]]\nkind = \"numeric\"\nname = \"income\"\n"
        )
    }

    const PRIVATE: &str = "[job.privacy]\nepsilon = 4.0\ndelta = 1e-6\n[job.privacy.bounds]\nage = [18, 100]\nincome = [0, 1e6]\n";

    fn policy(toml: &str) -> Policy {
        toml::from_str::<RawPolicy>(toml)
            .expect("parse")
            .validate()
            .expect("valid")
    }

    fn code(p: &Policy, c: &Consortium) -> Option<ReasonCode> {
        p.check(c).err().map(|r| r.code)
    }

    #[test]
    fn a_kits_policy_takes_its_own_kind_only() {
        let p = Policy::only("secure-sum");
        assert_eq!(code(&p, &consortium(SUM, "")), None);
        let m = consortium(&model("privacy = \"none\""), "");
        assert_eq!(code(&p, &m), Some(ReasonCode::ReasonPolicyKind));
    }

    #[test]
    fn each_limit_refuses_with_its_own_code() {
        let exact = consortium(&model("privacy = \"none\""), "");
        let private = consortium(&model(PRIVATE), "");
        let kinds = "kinds = [\"logistic-regression\"]\n";
        let allows = |extra: &str, c: &Consortium| code(&policy(&format!("{kinds}{extra}")), c);
        assert_eq!(allows("", &exact), None);
        assert_eq!(allows("label = \"default\"", &exact), None);
        assert_eq!(
            allows("label = \"income_band\"", &exact),
            Some(ReasonCode::ReasonPolicyLabel)
        );
        assert_eq!(
            allows("features = [\"age\", \"income\", \"x\"]", &exact),
            None
        );
        assert_eq!(
            allows("features = [\"age\"]", &exact),
            Some(ReasonCode::ReasonPolicyFeatures)
        );
        assert_eq!(
            allows("require_privacy = true", &exact),
            Some(ReasonCode::ReasonPolicyPrivacy)
        );
        assert_eq!(
            allows("require_privacy = true\nmax_epsilon = 4.0", &private),
            None
        );
        assert_eq!(
            allows("require_privacy = true\nmax_epsilon = 2.0", &private),
            Some(ReasonCode::ReasonPolicyPrivacy)
        );
        assert_eq!(
            allows("require_privacy = true\nmax_delta = 1e-7", &private),
            Some(ReasonCode::ReasonPolicyPrivacy)
        );
        // n = 5: default threshold 4, minimum cohort 3.
        assert_eq!(allows("min_cohort = 3", &exact), None);
        assert_eq!(
            allows("min_cohort = 4", &exact),
            Some(ReasonCode::ReasonPolicyCohort)
        );
        let wider = consortium(&model("privacy = \"none\""), "min_cohort = 4");
        assert_eq!(allows("min_cohort = 4", &wider), None);
    }

    /// A monitor job of a one-feature scorecard on `age`.
    fn monitor() -> Consortium {
        use fedcredit_model::scorecard::{
            BinStats, BinValues, FeatureBinning, PointsScale, Scorecard, Trend,
        };
        let schema = fedcredit_model::Schema {
            label: fedcredit_model::LabelSpec::binary("y", "bad", "good"),
            features: vec![Feature::Numeric { name: "age".into() }],
        };
        let bin = |values, woe| BinStats {
            values,
            good: 10.0,
            bad: 5.0,
            woe,
        };
        let binning = FeatureBinning {
            name: "age".into(),
            iv: 0.1,
            trend: Trend::Increasing,
            bins: vec![
                bin(BinValues::Edges([None, Some(30.0)]), -0.5),
                bin(BinValues::Edges([Some(30.0), None]), 0.5),
            ],
        };
        let card = Scorecard::new(schema, vec![binning], -1.0, &[-1.0], PointsScale::default())
            .expect("card");
        let spec = fedcredit_referee::consortium::JobSpec {
            id: "m".into(),
            cohort: Default::default(),
            require_all_members: false,
            kind: JobKind::Monitor(fedcredit_referee::monitor::MonitorSpec {
                model: None,
                scorecard: Some(card),
                model_job_spec_hash: Some("ab".into()),
                bands: 10,
            }),
        };
        consortium(SUM, "")
            .with_job(spec, Path::new("offer"))
            .expect("monitor")
    }

    #[test]
    fn a_monitor_job_is_its_own_kind_bounded_by_features_and_privacy() {
        let m = monitor();
        assert_eq!(code(&Policy::only("monitor"), &m), None);
        assert_eq!(
            code(&Policy::only("logistic-regression"), &m),
            Some(ReasonCode::ReasonPolicyKind)
        );
        let allows = |extra: &str| code(&policy(&format!("kinds = [\"monitor\"]\n{extra}")), &m);
        assert_eq!(allows("features = [\"age\"]"), None);
        assert_eq!(
            allows("features = [\"income\"]"),
            Some(ReasonCode::ReasonPolicyFeatures)
        );
        assert_eq!(
            allows("require_privacy = true"),
            Some(ReasonCode::ReasonPolicyPrivacy)
        );
    }

    #[test]
    fn a_policy_that_cannot_mean_anything_is_refused_naming_its_key() {
        for (toml, key) in [
            ("kinds = []", "policy.kinds"),
            ("kinds = [\"everything\"]", "policy.kinds"),
            (
                "kinds = [\"secure-sum\"]\nmax_epsilon = 1.0",
                "policy.require_privacy",
            ),
            (
                "kinds = [\"secure-sum\"]\nrequire_privacy = true\nmax_epsilon = -1.0",
                "policy.max_epsilon",
            ),
        ] {
            let e = toml::from_str::<RawPolicy>(toml)
                .expect("parse")
                .validate()
                .expect_err(toml);
            assert_eq!(e.0, key, "{toml}: {e:?}");
        }
        assert!(toml::from_str::<RawPolicy>("kinds = [\"secure-sum\"]\nlabels = \"x\"").is_err());
    }
}
