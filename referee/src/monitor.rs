//! A `monitor` job: population stability of a scorecard, pooled securely.
//!
//! ```toml
//! [job]
//! id = "stability-2026q4"
//! kind = "monitor"
//! model = "sme-default-2026q4/model.json"   # a model with a `scorecard`, relative to this file's folder
//! bands = 10                                # optional: equal-width score bands (default 10)
//! ```
//!
//! The spec must be self-contained: its canonical JSON is hashed into every
//! session id, and every party derives the round's plan from it alone. So
//! the loaders ([`crate::consortium::Consortium::load`],
//! [`crate::consortium::JobSpec::load`]) replace `model` by the model's
//! `scorecard` and `job_spec_hash` ([`MonitorSpec::resolve`]); a spec that
//! still names a file (a job offer, a submitted text) is refused by
//! validation, so no party ever reads a file a remote spec names.
//!
//! The job is one round of `2 × (bands + Σ bins)` row counts (development
//! rows, then new applicants; see
//! [`fedcredit_model::scorecard::stability`]) in the narrow codec with 0
//! fractional bits and clip 2^40: integer counts up to 2^40 per member are
//! exact, and so is their sum.

use std::path::{Path, PathBuf};

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_model::job::FittedModel;
use fedcredit_model::scorecard::Scorecard;
use fedcredit_model::scorecard::stability::{DEFAULT_BANDS, StabilityLayout};
use fedcredit_proto::WireError;
use serde::{Deserialize, Serialize};

/// The largest count a member may contribute per band or bin: the clip of
/// the round's codec (exact in an f64 and in the ring).
pub const MAX_COUNT: f64 = (1u64 << 40) as f64;

/// The codec of a monitor round: integers, clipped at [`MAX_COUNT`]
/// (2^40 · 2^0 < 2^63, so it is always valid).
pub fn count_codec() -> Result<FixedPoint, fedcredit_crypto::CryptoError> {
    FixedPoint::new(0, MAX_COUNT)
}

fn default_bands() -> usize {
    DEFAULT_BANDS
}

/// What a monitor job monitors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    /// As written in a job file: the `model.json` to monitor, relative to
    /// the file's folder. The loaders replace it by `scorecard` and
    /// `model_job_spec_hash`; a spec still naming a file is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// The scorecard monitored: characteristics, bins and points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<Scorecard>,
    /// The `job_spec_hash` of the job that fitted the model (lineage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_job_spec_hash: Option<String>,
    /// Equal-width score bands between the lowest and highest total points.
    #[serde(default = "default_bands")]
    pub bands: usize,
}

impl MonitorSpec {
    /// Reads `model` (relative to `dir`) and embeds its scorecard and
    /// job spec hash; `file` names the job's file in errors. A spec
    /// without `model` is returned as it is.
    pub fn resolve(mut self, dir: &Path, file: &Path) -> Result<Self, WireError> {
        let Some(model) = self.model.take() else {
            return Ok(self);
        };
        let path = dir.join(&model);
        let invalid = |expected: String| WireError::InvalidConfig {
            file: file.to_owned(),
            key: "job.model".into(),
            expected,
        };
        let text = std::fs::read_to_string(&path).map_err(|source| WireError::ReadConfig {
            file: path.clone(),
            source,
        })?;
        let fitted: FittedModel = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "a model.json made by fedcredit; {} is not one: {e}",
                path.display()
            ))
        })?;
        let Some(card) = fitted.scorecard else {
            return Err(invalid(format!(
                "a model with a `scorecard` (made by `fedcredit local --kind scorecard`); {} has none",
                path.display()
            )));
        };
        if self.scorecard.is_some() || self.model_job_spec_hash.is_some() {
            return Err(invalid(
                "either `model` or an embedded `scorecard`, not both".into(),
            ));
        }
        self.scorecard = Some(card);
        self.model_job_spec_hash = Some(fitted.job_spec_hash);
        Ok(self)
    }

    /// The layout of the job's counts; the error says what is wrong with
    /// the spec.
    pub fn layout(&self) -> Result<StabilityLayout, String> {
        if let Some(model) = &self.model {
            return Err(format!(
                "`model = {:?}` was not read into the spec: a monitor job's spec embeds the \
                 scorecard (load it from the consortium file or a job file, which read the model)",
                model.display()
            ));
        }
        let card = self
            .scorecard
            .as_ref()
            .ok_or("a monitor job needs `model`, the model.json with the scorecard to monitor")?;
        StabilityLayout::new(card, self.bands).map_err(|e| e.to_string())
    }
}
