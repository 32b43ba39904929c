//! Why a report was refused, or a report's signature does not check.

/// A report that cannot be written, or a signature that does not verify.
/// Every variant names what differs, so that the operator can tell a
/// stale model file from a tampered log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// model.json is not a fedcredit model file.
    #[error("the model file is not a fedcredit model: {0}")]
    ModelFile(#[source] serde_json::Error),
    /// The model was fitted by another job than the consortium's.
    #[error("the model's job id is {model:?}, the consortium's job is {consortium:?}")]
    JobId {
        /// model.json's `job_id`.
        model: String,
        /// The consortium (or `--job`) job's id.
        consortium: String,
    },
    /// The model's `job_spec_hash` is not the hash of the consortium's job spec.
    #[error(
        "the model's job_spec_hash is {model}, but the job spec of the consortium hashes to {consortium}: the model was not fitted under this spec"
    )]
    SpecHash {
        /// model.json's `job_spec_hash`.
        model: String,
        /// SHA-256 of the consortium's (or `--job`'s) canonical job spec.
        consortium: String,
    },
    /// The auditor's replay of the round log failed.
    #[error("the round log does not verify ({verdict}); first failed check: {first}")]
    LogNotVerified {
        /// The verifier's last line (`result: NOT VERIFIED (...)`).
        verdict: String,
        /// Its first failure, or how the log ends.
        first: String,
    },
    /// The log verifies but records a job that failed or published no model.
    #[error("the round log verifies, but {0}")]
    NoModel(String),
    /// model.json is not the model the log published.
    #[error("model.json is not the model the round log published: {0}")]
    ModelDiffers(String),
    /// The monitor file is unreadable or monitored another model.
    #[error("the monitor file: {0}")]
    Monitor(String),
    /// The `.sig` file is not one Ed25519 signature in hex.
    #[error("the signature file is malformed: {0}")]
    SignatureMalformed(String),
    /// The signature does not verify under the coordinator key.
    #[error("{0}")]
    SignatureMismatch(String),
}

/// This crate's results.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;
