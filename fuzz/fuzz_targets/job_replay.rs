//! A credit-model job replayed from published round outcomes, as every
//! participant does before it answers an announcement and as the auditor
//! does over the whole log: each outcome's sum is decoded with the round's
//! codec and absorbed by the job (statistics, Newton or FedAvg steps, the
//! pooled evaluation), and the next announcement is checked against it.
//!
//! The first byte picks the optimizer (even: Newton, odd: FedAvg); the rest
//! is the sums, round after round: each round takes the little-endian words
//! its plan needs, and zeros once the input runs out (so that short inputs
//! still reach the evaluation and the fitted model). Each sum travels as a
//! coordinator-signed `RoundOutcome`, signed here, from all members.
//!
//! Why: the coordinator chooses the published sums; whatever it publishes,
//! replaying them must end in a model or a named refusal, never a panic.
#![no_main]
#![forbid(unsafe_code)]

use fedcredit_crypto::secagg::outcome_digest;
use fedcredit_fuzz::{Job, fixture, split_mode};
use fedcredit_proto::v1::{self as pb, coordinator_message};
use fedcredit_referee::Referee;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// More rounds than any fixture job has (max_rounds = 6, plus statistics
/// and evaluation), so that a job that will not end is noticed as one.
const MAX_ROUNDS: u64 = 16;

fuzz_target!(|data: &[u8]| {
    let (mode, mut sums) = split_mode(data);
    let f = fixture(if mode % 2 == 0 {
        Job::CreditNewton
    } else {
        Job::CreditFedavg
    });
    let Ok(mut referee) = Referee::new(&f.consortium) else {
        return;
    };
    let contributors: Vec<String> = f
        .consortium
        .roster
        .members()
        .map(|m| m.id.to_string())
        .collect();
    // The digests of the outcomes absorbed, as each announcement lists them.
    let mut listed: Vec<prost::bytes::Bytes> = Vec::new();
    for round in 0..MAX_ROUNDS {
        let Some(plan) = referee.next_plan() else {
            break;
        };
        let mut sum = vec![0u8; plan.codec.words_for(plan.dimension) * 8];
        let take = sum.len().min(sums.len());
        sum[..take].copy_from_slice(&sums[..take]);
        sums = &sums[take..];
        let message = pb::CoordinatorMessage {
            job_id: f.consortium.job.id.clone(),
            round,
            attempt: 0,
            body: Some(coordinator_message::Body::Outcome(pb::RoundOutcome {
                sum: sum.into(),
                contributors: contributors.clone(),
            })),
        };
        let signed = f.sign_coordinator(&message.encode_to_vec());
        // The announcement of this round must pass before its outcome.
        let (spec, limbs) = plan.codec.to_pb();
        let announcement = pb::RoundAnnouncement {
            members: contributors.clone(),
            threshold: f.consortium.protocol.thresholds.threshold() as u32,
            min_cohort: f.consortium.protocol.thresholds.min_cohort() as u32,
            max_colluders: f.consortium.protocol.thresholds.max_colluders() as u32,
            neighbours: f.consortium.protocol.graph_fields().0,
            share_threshold: f.consortium.protocol.graph_fields().1,
            epoch_slots: 0,
            epoch: Default::default(),
            slot: 0,
            dimension: plan.dimension as u64,
            fixed_point: Some(spec),
            job_spec_hash: f.consortium.job.hash().to_vec().into(),
            limbs,
            departed: Vec::new(),
            previous_outcome_digests: listed.clone(),
            task: Some(plan.task.clone()),
        };
        let _ = referee.check_announcement(round, &announcement);
        if referee.absorb_signed(&signed).is_err() {
            break;
        }
        listed.push(outcome_digest(&signed.payload).to_vec().into());
    }
    if let Some(model) = referee.rules().model() {
        let _ = serde_json::to_string(model);
    }
});
