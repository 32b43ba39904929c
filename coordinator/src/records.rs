//! Builders of the coordinator's own round-log records.

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_proto::v1::{self as pb, log_body};
use fedcredit_referee::consortium::Consortium;

use crate::round::{Abort, Attempt};

pub(crate) fn job_started(consortium: &Consortium, key: &IdentityKey) -> log_body::Entry {
    let t = consortium.protocol.thresholds;
    log_body::Entry::JobStarted(pb::JobStarted {
        job_id: consortium.job.id.clone(),
        job_spec_json: serde_json::to_vec(&consortium.job)
            .unwrap_or_default()
            .into(),
        job_spec_hash: consortium.job.hash().to_vec().into(),
        roster: consortium
            .roster
            .members()
            .map(|m| pb::RosterEntry {
                id: m.id.to_string(),
                public_key: m.key.to_bytes().to_vec().into(),
            })
            .collect(),
        threshold: t.threshold() as u32,
        min_cohort: t.min_cohort() as u32,
        max_colluders: t.max_colluders() as u32,
        neighbours: consortium.protocol.graph_fields().0,
        share_threshold: consortium.protocol.graph_fields().1,
        epoch_slots: consortium.protocol.epoch_slots_field(),
        coordinator_key: key.public().to_bytes().to_vec().into(),
    })
}

pub(crate) fn aborted_entry(attempt: &Attempt, abort: &Abort) -> log_body::Entry {
    log_body::Entry::RoundAborted(pb::RoundAborted {
        round: attempt.round,
        attempt: attempt.attempt,
        phase: abort.phase.to_string(),
        reason: abort.reason.clone(),
    })
}
