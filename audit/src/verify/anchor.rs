//! The checks against the consortium file, the trust anchor: the
//! `JobStarted` record, and every round announcement (job, members,
//! thresholds, the order of rounds and attempts, departures, and what the
//! replayed job says the round must aggregate).

use fedcredit_proto::v1::{self as pb, coordinator_message};
use sha2::{Digest, Sha256};

use super::{Verifier, job};
use crate::report::{Check, Failure};

impl Verifier<'_> {
    /// Record 0 against the consortium file.
    pub(super) fn job_started(&mut self, j: &pb::JobStarted) {
        let c = self.ctx.consortium;
        let mut bad = Vec::new();
        if j.job_id != c.job.id {
            bad.push(format!(
                "job id {:?}, the consortium file's is {:?}",
                j.job_id, c.job.id
            ));
        }
        let json_hash: [u8; 32] = Sha256::digest(&j.job_spec_json).into();
        if j.job_spec_hash.as_ref() != json_hash {
            bad.push("the job spec hash is not the SHA-256 of the logged job spec".into());
        }
        if j.job_spec_hash.as_ref() != self.ctx.spec_hash {
            bad.push(format!(
                "job spec hash {}, the consortium file's job hashes to {}",
                hex::encode(&j.job_spec_hash),
                hex::encode(self.ctx.spec_hash)
            ));
        }
        let logged: Vec<(String, Vec<u8>)> = j
            .roster
            .iter()
            .map(|r| (r.id.clone(), r.public_key.to_vec()))
            .collect();
        let ours: Vec<(String, Vec<u8>)> = c
            .roster
            .members()
            .map(|m| (m.id.to_string(), m.key.to_bytes().to_vec()))
            .collect();
        if logged != ours {
            let detail = if logged.len() != ours.len() {
                format!(
                    "{} members, the consortium file lists {}",
                    logged.len(),
                    ours.len()
                )
            } else {
                logged
                    .iter()
                    .zip(&ours)
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| {
                        if a.0 == b.0 {
                            format!("the key of {} differs from the consortium file's", a.0)
                        } else {
                            format!("member {:?} where the consortium file has {:?}", a.0, b.0)
                        }
                    })
                    .unwrap_or_default()
            };
            bad.push(format!("the roster differs: {detail}"));
        }
        let t = c.protocol.thresholds;
        if j.threshold as usize != t.threshold()
            || j.min_cohort as usize != t.min_cohort()
            || j.max_colluders as usize != t.max_colluders()
        {
            bad.push(format!(
                "threshold {} / minimum cohort {} / colluder bound {}, the consortium file's are {} / {} / {}",
                j.threshold,
                j.min_cohort,
                j.max_colluders,
                t.threshold(),
                t.min_cohort(),
                t.max_colluders()
            ));
        }
        let graph = c.protocol.graph_fields();
        if (j.neighbours, j.share_threshold) != graph {
            bad.push(format!(
                "graph {} neighbours / share threshold {} (0 / 0: complete), the consortium file's are {} / {}",
                j.neighbours, j.share_threshold, graph.0, graph.1
            ));
        }
        let slots = c.protocol.epoch_slots_field();
        if j.epoch_slots != slots {
            bad.push(format!(
                "setup {} slots per epoch (0: every attempt), the consortium file's is {slots}",
                j.epoch_slots
            ));
        }
        if j.coordinator_key.as_ref() != c.roster.coordinator().to_bytes() {
            bad.push("the coordinator key differs from the consortium file's".into());
        }
        for b in bad {
            self.problem(0, Check::JobStarted, b);
        }
    }

    /// Checks an announcement against the consortium file, the order of
    /// rounds and attempts, the logged departures and the replayed job.
    pub(super) fn check_announcement(
        &self,
        seq: u64,
        message: &pb::CoordinatorMessage,
        signature: Option<fedcredit_proto::WireError>,
        resume: Option<(u64, u64, u32)>,
    ) -> Result<job::Planned, Failure> {
        let c = self.ctx.consortium;
        let fail = |check: Check, why: String| Failure::new(seq, check, why);
        if let Some(e) = signature {
            return Err(fail(Check::Signature, format!("the announcement: {e}")));
        }
        let Some(coordinator_message::Body::Announce(a)) = &message.body else {
            return Err(fail(
                Check::Announcement,
                "the announcement record holds another kind of coordinator message".into(),
            ));
        };
        let (round, attempt) = (message.round, message.attempt);
        if message.job_id != c.job.id {
            return Err(fail(
                Check::Binding,
                format!("announces job {:?}, not {:?}", message.job_id, c.job.id),
            ));
        }
        if round != self.next_round {
            return Err(fail(
                Check::Sequence,
                format!(
                    "announces round {round}, but the next round is {} ({} completed)",
                    self.next_round, self.next_round
                ),
            ));
        }
        if let Some(h) = self.highest.get(&round)
            && attempt <= *h
        {
            return Err(fail(
                Check::Sequence,
                format!(
                    "announces attempt {attempt} of round {round}, but attempt {h} was already announced (attempt numbers, and keys, are never reused)"
                ),
            ));
        }
        if let Some((record, r, at)) = resume
            && (r, at) != (round, attempt)
        {
            return Err(fail(
                Check::Restart,
                format!(
                    "announces round {round} attempt {attempt}, but the restart at record {record} said round {r} attempt {at}"
                ),
            ));
        }
        if a.job_spec_hash.as_ref() != self.ctx.spec_hash {
            return Err(fail(
                Check::Announcement,
                "the announced job spec hash differs from the consortium file's".into(),
            ));
        }
        let t = c.protocol.thresholds;
        if a.threshold as usize != t.threshold()
            || a.min_cohort as usize != t.min_cohort()
            || a.max_colluders as usize != t.max_colluders()
        {
            return Err(fail(
                Check::Announcement,
                format!(
                    "announces threshold {} / minimum cohort {} / colluder bound {}, the consortium file's are {} / {} / {}",
                    a.threshold,
                    a.min_cohort,
                    a.max_colluders,
                    t.threshold(),
                    t.min_cohort(),
                    t.max_colluders()
                ),
            ));
        }
        let graph = c.protocol.graph_fields();
        if (a.neighbours, a.share_threshold) != graph {
            return Err(fail(
                Check::Announcement,
                format!(
                    "announces the graph {} neighbours / share threshold {} (0 / 0: complete), the consortium file's is {} / {}",
                    a.neighbours, a.share_threshold, graph.0, graph.1
                ),
            ));
        }
        let slots = c.protocol.epoch_slots_field();
        if a.epoch_slots != slots {
            return Err(fail(
                Check::Announcement,
                format!(
                    "announces a setup of {} slots per epoch (0: every attempt), the consortium file's is {slots}",
                    a.epoch_slots
                ),
            ));
        }
        let members: Vec<String> = c.roster.members().map(|m| m.id.to_string()).collect();
        let mut announced = a.members.clone();
        announced.sort();
        if announced != members {
            return Err(fail(
                Check::Announcement,
                format!(
                    "announces members [{}], the consortium file lists [{}]",
                    a.members.join(", "),
                    members.join(", ")
                ),
            ));
        }
        for d in &a.departed {
            match self.departed.get(&d.participant) {
                Some(reason) if reason == pb::ReasonCode::label_of(d.code) => {}
                Some(_) => {
                    return Err(fail(
                        Check::Announcement,
                        format!(
                            "lists {} as departed with a reason it never gave",
                            d.participant
                        ),
                    ));
                }
                None => {
                    return Err(fail(
                        Check::Announcement,
                        format!(
                            "lists {} as departed, but no Leave from {} is logged",
                            d.participant, d.participant
                        ),
                    ));
                }
            }
        }
        // The history the announcement shows participants is the logged one.
        let shown: Vec<&[u8]> = a
            .previous_outcome_digests
            .iter()
            .map(|d| d.as_ref())
            .collect();
        let logged: Vec<&[u8]> = self.outcome_digests.iter().map(|d| &d[..]).collect();
        if shown != logged {
            return Err(fail(
                Check::Announcement,
                format!(
                    "shows participants {} published outcomes that differ from the {} logged ones",
                    shown.len(),
                    logged.len()
                ),
            ));
        }
        // Exactly the check every participant runs before taking part.
        if let Some(referee) = &self.referee {
            referee.check_announcement(round, a).map_err(|e| {
                fail(
                    Check::Task,
                    format!("the participants' referee refuses it: {e}"),
                )
            })?;
        }
        self.job
            .plan(a, c.roster.len())
            .map_err(|(check, why)| fail(check, why))
    }
}
