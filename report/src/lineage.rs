//! What a report may state, checked before any HTML is made: the round
//! log verifies (the auditor's own replay, [`fedcredit_audit::verify`]),
//! its job ended with a published model, and model.json is that model —
//! same job id, same spec hash, same coefficients, metrics and calibration
//! — including, for a scorecard, its bins, pooled counts, WOE and points.
//! Anything else is a [`ReportError`] naming what differs.

use fedcredit_audit::{JobEnd, LogEnd, Report as AuditReport, Timeline};
use fedcredit_model::job::FittedModel;
use fedcredit_model::metrics::Curves;
use fedcredit_proto::roundlog;
use fedcredit_proto::v1::log_body;
use fedcredit_referee::Membership;
use fedcredit_referee::consortium::Consortium;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{ReportError, Result};

/// A model, its round log and its consortium, checked against each other.
/// Only [`check`] makes one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Checked {
    /// model.json's model (with its scorecard, if any).
    pub model: FittedModel,
    /// model.json's membership (whose rows are in it), if the file has one.
    pub membership: Option<Membership>,
    /// The verifier's report on the log.
    pub audit: AuditReport,
    /// That report as `fedcredit audit verify` prints it.
    pub audit_text: String,
    /// The log as a timeline (members, rounds, the evaluation's curves).
    pub timeline: Timeline,
    /// The pooled ROC and KS curves of the log's last completed evaluation
    /// round (`None`: no held-out rows, or one class only).
    pub curves: Option<Curves>,
    /// Hex SHA-256 of the job spec: the consortium's, model.json's and the
    /// log's `JobStarted` (the verifier checks the last against the first).
    pub spec_hash: String,
    /// Hex hash of the log's last record: the head of the hash chain.
    pub final_hash: String,
    /// Hex SHA-256 of the whole log file.
    pub log_sha256: String,
    /// Bytes in the log.
    pub log_bytes: usize,
    /// The coordinator's public key (hex), as the consortium file has it.
    pub coordinator_key: String,
    /// The job kind as the consortium names it.
    pub job_kind: String,
}

/// model.json beside the model: `local` and the coordinator write
/// `membership` next to the model's own fields.
#[derive(Deserialize)]
struct Extras {
    #[serde(default)]
    membership: Option<Membership>,
}

/// Checks `model_json` (the text of model.json) and `log` (the round log's
/// bytes) against `consortium` (with the job to check against as its
/// `[job]`). See the module docs for what must hold.
pub fn check(model_json: &str, log: &[u8], consortium: &Consortium) -> Result<Checked> {
    let model: FittedModel = serde_json::from_str(model_json).map_err(ReportError::ModelFile)?;
    let extras: Extras = serde_json::from_str(model_json).map_err(ReportError::ModelFile)?;
    let spec_hash = hex::encode(consortium.job.hash());
    if model.job_id != consortium.job.id {
        return Err(ReportError::JobId {
            model: model.job_id.clone(),
            consortium: consortium.job.id.clone(),
        });
    }
    if model.job_spec_hash != spec_hash {
        return Err(ReportError::SpecHash {
            model: model.job_spec_hash.clone(),
            consortium: spec_hash,
        });
    }

    let audit = fedcredit_audit::verify(log, consortium);
    let audit_text = audit.to_string();
    if !audit.ok() {
        let verdict = audit_text
            .lines()
            .next_back()
            .unwrap_or_default()
            .to_owned();
        let first = match (audit.first_failure(), &audit.log_end, &audit.job_end) {
            (Some(f), _, _) => f.to_string(),
            (None, LogEnd::Truncated { record, detail, .. }, _) => {
                format!("the log is cut at record {record}: {detail}")
            }
            (
                None,
                LogEnd::Broken {
                    record, problem, ..
                },
                _,
            ) => format!("record {record}: {problem}"),
            (None, LogEnd::Clean, JobEnd::Unfinished) => "the log records no end of the job".into(),
            (None, LogEnd::Clean, JobEnd::Ended { .. }) => "see `fedcredit audit verify`".into(),
        };
        return Err(ReportError::LogNotVerified { verdict, first });
    }
    match &audit.job_end {
        JobEnd::Ended {
            ok: true,
            model_verified: true,
            ..
        } => {}
        JobEnd::Ended {
            ok: false, reason, ..
        } => {
            return Err(ReportError::NoModel(format!("its job failed: {reason}")));
        }
        _ => {
            return Err(ReportError::NoModel(
                "it publishes no model recomputed from its sums".into(),
            ));
        }
    }

    // The model the log published (the verifier found it equal to its replay).
    let file = roundlog::read(log, Some(consortium.roster.coordinator()));
    let published = file
        .entries
        .iter()
        .rev()
        .find_map(|e| match &e.body.entry {
            Some(log_body::Entry::JobEnded(je)) => Some(je.model_json.clone()),
            _ => None,
        })
        .ok_or_else(|| ReportError::NoModel("it has no JobEnded record".into()))?;
    let published: FittedModel = serde_json::from_str(&published)
        .map_err(|e| ReportError::NoModel(format!("its published model is not readable: {e}")))?;
    // A scorecard job publishes its scorecard (bins, counts, WOE, points)
    // in the model, so the whole file must be the published model.
    if model != published {
        let ours = serde_json::to_value(&model).map_err(ReportError::ModelFile)?;
        let theirs = serde_json::to_value(&published).map_err(ReportError::ModelFile)?;
        let detail = fedcredit_audit::json_difference(&ours, &theirs, ("model.json", "the log"))
            .unwrap_or_else(|| "a value that does not survive JSON".into());
        return Err(ReportError::ModelDiffers(detail));
    }

    let timeline = fedcredit_audit::show(log)
        .map_err(|e| ReportError::NoModel(format!("its timeline cannot be read: {e}")))?;
    let curves = timeline.events.iter().rev().find_map(|e| match e {
        fedcredit_audit::show::Event::Attempt(a) if a.task == "evaluate" => a.curves.clone(),
        _ => None,
    });
    let final_hash = file
        .entries
        .last()
        .map(|e| hex::encode(e.hash))
        .unwrap_or_default();
    Ok(Checked {
        model,
        membership: extras.membership,
        audit,
        audit_text,
        timeline,
        curves,
        spec_hash,
        final_hash,
        log_sha256: hex::encode(Sha256::digest(log)),
        log_bytes: log.len(),
        coordinator_key: consortium.roster.coordinator().to_hex(),
        job_kind: consortium.job.kind.name().to_owned(),
    })
}
