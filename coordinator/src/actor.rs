//! The one task that owns the job: the lobby, the open round phase and its
//! deadline, pending long polls. gRPC handlers send it [`Request`]s with a
//! reply channel; nothing else touches the state.

use std::collections::BTreeSet;
use std::sync::Arc;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::secagg::{Advertisement, PartyIndex, Phase};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::consortium::Consortium;
use fedcredit_proto::envelope;
use fedcredit_proto::v1 as pb;
use fedcredit_proto::words;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use crate::JobReport;
use crate::error::{CoordinatorError, Rejection};
use crate::job::{JobDriver, RoundPlan, RoundResult};
use crate::round::{Abort, Advertising, Attempt, Closed, Reply, Round};

/// Round and attempt a message is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At {
    pub round: u64,
    pub attempt: u32,
}

/// A verified, decoded participant message with its reply channel.
#[derive(Debug)]
pub(crate) enum Request {
    Poll {
        from: PartyIndex,
        seen: Option<At>,
        reply: Reply<pb::Signed>,
    },
    Advertise {
        from: PartyIndex,
        at: At,
        signed: pb::Signed,
        ad: Advertisement,
        reply: Reply<pb::AdvertisedKeys>,
    },
    Shares {
        from: PartyIndex,
        at: At,
        commitment: [u8; 32],
        ciphertexts: Vec<(PartyIndex, Bytes)>,
        reply: Reply<pb::SharesForYou>,
    },
    Masked {
        from: PartyIndex,
        at: At,
        values: Vec<u64>,
        reply: Reply<pb::Survivors>,
    },
    Confirm {
        from: PartyIndex,
        at: At,
        survivors: BTreeSet<PartyIndex>,
        signed: pb::Signed,
        reply: Reply<pb::SurvivorSignatures>,
    },
    Unmask {
        from: PartyIndex,
        at: At,
        self_mask: Vec<(PartyIndex, Share)>,
        keys: Vec<(PartyIndex, Share)>,
        reply: Reply<pb::Signed>,
    },
    Leave {
        from: PartyIndex,
        reason: String,
        reply: Reply<pb::LeaveAck>,
    },
}

enum Stage {
    Lobby {
        joined: BTreeSet<PartyIndex>,
        deadline: Instant,
    },
    Running {
        round: Box<Round>,
        plan: RoundPlan,
        announcement: pb::Signed,
        deadline: Instant,
    },
    Finished {
        message: pb::Signed,
        told: BTreeSet<PartyIndex>,
        deadline: Instant,
    },
}

/// Owns the job until it finishes.
pub(crate) struct Actor {
    consortium: Arc<Consortium>,
    key: IdentityKey,
    driver: Box<dyn JobDriver>,
    stage: Stage,
    /// Long polls waiting for the next announcement.
    polls: Vec<(PartyIndex, Option<At>, Reply<pb::Signed>)>,
    /// Members believed alive: joined and not missing a deadline since.
    active: BTreeSet<PartyIndex>,
    results: Vec<RoundResult>,
    /// Members that left the job, with their reason (told to the others).
    departed: std::collections::BTreeMap<PartyIndex, String>,
    failure: Option<CoordinatorError>,
}

impl Actor {
    pub fn new(consortium: Arc<Consortium>, key: IdentityKey, driver: Box<dyn JobDriver>) -> Self {
        let deadline = Instant::now() + consortium.protocol.join_deadline;
        Self {
            consortium,
            key,
            driver,
            stage: Stage::Lobby {
                joined: BTreeSet::new(),
                deadline,
            },
            polls: Vec::new(),
            active: BTreeSet::new(),
            results: Vec::new(),
            departed: std::collections::BTreeMap::new(),
            failure: None,
        }
    }

    /// Runs until the job is finished and every active member was told (or the
    /// linger deadline passed), or until the request channel closes.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
    ) -> Result<JobReport, CoordinatorError> {
        info!(job = %self.consortium.job.id, members = self.consortium.roster.len(), "waiting for participants");
        loop {
            if let Stage::Finished { told, .. } = &self.stage
                && self.active.iter().all(|p| told.contains(p))
            {
                break;
            }
            let deadline = match &self.stage {
                Stage::Lobby { deadline, .. }
                | Stage::Running { deadline, .. }
                | Stage::Finished { deadline, .. } => *deadline,
            };
            tokio::select! {
                req = rx.recv() => match req {
                    Some(req) => self.handle(req),
                    None => return Err(CoordinatorError::ShutDown),
                },
                () = sleep_until(deadline) => {
                    if matches!(self.stage, Stage::Finished { .. }) {
                        break;
                    }
                    self.on_deadline();
                }
            }
        }
        let departed = self
            .departed
            .iter()
            .map(|(p, r)| (self.name(*p), r.clone()))
            .collect();
        match self.failure {
            Some(e) => Err(e),
            None => Ok(JobReport {
                model: self.driver.model(),
                rounds: self.results,
                departed,
            }),
        }
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::Poll { from, seen, reply } => self.on_poll(from, seen, reply),
            Request::Leave {
                from,
                reason,
                reply,
            } => {
                warn!(participant = %self.name(from), %reason, "participant left the job");
                self.active.remove(&from);
                self.departed.insert(from, reason);
                let _ = reply.send(Ok(pb::LeaveAck {}));
                if let Stage::Lobby { joined, .. } = &mut self.stage {
                    joined.remove(&from);
                    if !joined.is_empty()
                        && joined.len() + self.departed.len() == self.consortium.roster.len()
                    {
                        self.start_next_round();
                    }
                }
            }
            other => self.on_round_message(other),
        }
    }

    fn name(&self, p: PartyIndex) -> String {
        self.consortium
            .roster
            .id_of(p)
            .map_or_else(|| p.to_string(), ToString::to_string)
    }

    fn on_poll(&mut self, from: PartyIndex, seen: Option<At>, reply: Reply<pb::Signed>) {
        self.active.insert(from);
        let name = self.name(from);
        match &mut self.stage {
            Stage::Lobby { joined, .. } => {
                joined.insert(from);
                info!(participant = %name, joined = joined.len(), "participant joined");
                self.polls.push((from, seen, reply));
                if joined.len() + self.departed.len() == self.consortium.roster.len() {
                    self.start_next_round();
                }
            }
            Stage::Running {
                round,
                announcement,
                ..
            } if matches!(**round, Round::Advertising(_)) => {
                let Round::Advertising(adv) = &mut **round else {
                    return;
                };
                let at = At {
                    round: adv.attempt.round,
                    attempt: adv.attempt.attempt,
                };
                if is_newer(at, seen) {
                    adv.expect(from);
                    let _ = reply.send(Ok(announcement.clone()));
                } else {
                    self.polls.push((from, seen, reply));
                }
            }
            Stage::Running { .. } => self.polls.push((from, seen, reply)),
            Stage::Finished { message, told, .. } => {
                told.insert(from);
                let _ = reply.send(Ok(message.clone()));
            }
        }
    }

    fn on_round_message(&mut self, req: Request) {
        let Stage::Running { round, .. } = &mut self.stage else {
            let got = phase_name(&req);
            reject_request(
                req,
                Rejection::WrongPhase {
                    got,
                    open: self.open_description(),
                },
            );
            return;
        };
        let roster = &self.consortium.roster;
        let current = At {
            round: round.attempt().round,
            attempt: round.attempt().attempt,
        };
        if let Some(at) = req_at(&req)
            && at != current
        {
            reject_request(
                req,
                Rejection::WrongRound {
                    round: current.round,
                    attempt: current.attempt,
                    got_round: at.round,
                    got_attempt: at.attempt,
                },
            );
            return;
        }
        match (&mut **round, req) {
            (
                Round::Advertising(p),
                Request::Advertise {
                    from,
                    signed,
                    ad,
                    reply,
                    ..
                },
            ) => p.accept(roster, from, signed, ad, reply),
            (
                Round::SharingKeys(p),
                Request::Shares {
                    from,
                    commitment,
                    ciphertexts,
                    reply,
                    ..
                },
            ) => p.accept(roster, from, commitment, ciphertexts, reply),
            (
                Round::CollectingInputs(p),
                Request::Masked {
                    from,
                    values,
                    reply,
                    ..
                },
            ) => p.accept(roster, from, &values, reply),
            (
                Round::Confirming(p),
                Request::Confirm {
                    from,
                    survivors,
                    signed,
                    reply,
                    ..
                },
            ) => p.accept(roster, from, &survivors, signed, reply),
            (
                Round::Unmasking(p),
                Request::Unmask {
                    from,
                    self_mask,
                    keys,
                    reply,
                    ..
                },
            ) => p.accept(roster, from, self_mask, keys, reply),
            (round, req) => {
                let open = format!(
                    "round {} attempt {} is in phase {}",
                    current.round,
                    current.attempt,
                    round.phase()
                );
                let got = phase_name(&req);
                reject_request(req, Rejection::WrongPhase { got, open });
                return;
            }
        }
        if round_is_complete(&self.stage) {
            self.close_phase();
        }
    }

    fn open_description(&self) -> String {
        match &self.stage {
            Stage::Lobby { .. } => "the coordinator is waiting for participants to join".into(),
            Stage::Running { round, .. } => format!(
                "round {} attempt {} is in phase {}",
                round.attempt().round,
                round.attempt().attempt,
                round.phase()
            ),
            Stage::Finished { .. } => "the job is finished".into(),
        }
    }

    fn on_deadline(&mut self) {
        match &self.stage {
            Stage::Lobby { joined, .. } => {
                let need = self
                    .consortium
                    .protocol
                    .thresholds
                    .threshold
                    .max(self.consortium.protocol.thresholds.min_cohort);
                if joined.len() >= need {
                    info!(
                        joined = joined.len(),
                        "join deadline passed; starting with those present"
                    );
                    self.start_next_round();
                } else {
                    let e = CoordinatorError::TooFewJoined {
                        have: joined.len(),
                        members: self.consortium.roster.len(),
                        need,
                    };
                    self.finish(Err(e));
                }
            }
            Stage::Running { round, .. } => {
                let missing = round.missing();
                for p in &missing {
                    warn!(participant = %self.name(*p), phase = %round.phase(), "no answer before the deadline; counted as dropped");
                    self.active.remove(p);
                }
                self.close_phase();
            }
            Stage::Finished { .. } => {}
        }
    }

    fn close_phase(&mut self) {
        let stage = std::mem::replace(
            &mut self.stage,
            Stage::Lobby {
                joined: BTreeSet::new(),
                deadline: Instant::now(),
            },
        );
        let Stage::Running {
            round,
            plan,
            announcement,
            ..
        } = stage
        else {
            self.stage = stage;
            return;
        };
        let attempt = round.attempt().clone();
        let from_phase = round.phase();
        match (*round).close(&self.consortium.roster) {
            Ok(Closed::Next(next)) => {
                info!(job = %attempt.job_id, round = attempt.round, attempt = attempt.attempt, phase = %next.phase(), "phase open");
                let deadline = Instant::now() + self.consortium.protocol.phase_deadline;
                self.stage = Stage::Running {
                    round: Box::new(next),
                    plan,
                    announcement,
                    deadline,
                };
            }
            Ok(Closed::Done(attempt, outcome)) => {
                let sum = match plan.codec.decode(&outcome.sum) {
                    Ok(s) => s,
                    Err(e) => {
                        self.finish(Err(CoordinatorError::Job(format!(
                            "round {}: cannot decode the sum: {e}",
                            attempt.round
                        ))));
                        return;
                    }
                };
                let contributors: Vec<String> =
                    outcome.contributors.iter().map(|p| self.name(*p)).collect();
                let message = pb::CoordinatorMessage {
                    job_id: attempt.job_id.clone(),
                    round: attempt.round,
                    attempt: attempt.attempt,
                    body: Some(pb::coordinator_message::Body::Outcome(pb::RoundOutcome {
                        sum: words::to_bytes(&outcome.sum).into(),
                        contributors: contributors.clone(),
                    })),
                };
                let signed = envelope::seal_coordinator(&self.key, &message);
                for w in outcome.waiters {
                    let _ = w.send(Ok(signed.clone()));
                }
                info!(job = %attempt.job_id, round = attempt.round, attempt = attempt.attempt, contributors = contributors.len(), "round complete");
                let result = RoundResult {
                    round: attempt.round,
                    attempt: attempt.attempt,
                    sum,
                    contributors,
                };
                if let Err(e) = self.driver.finish_round(&result) {
                    self.results.push(result);
                    self.finish(Err(CoordinatorError::Job(e)));
                    return;
                }
                self.results.push(result);
                self.start_next_round();
            }
            Err(abort) => self.on_abort(attempt, from_phase, abort, plan),
        }
    }

    fn on_abort(&mut self, attempt: Attempt, phase: Phase, abort: Abort, plan: RoundPlan) {
        warn!(job = %attempt.job_id, round = attempt.round, attempt = attempt.attempt, %phase, reason = %abort, "round attempt aborted");
        if attempt.attempt + 1 < self.consortium.protocol.max_attempts {
            self.announce(attempt.round, attempt.attempt + 1, plan);
        } else {
            self.finish(Err(CoordinatorError::RoundFailed {
                round: attempt.round,
                attempts: attempt.attempt + 1,
                reason: abort.to_string(),
            }));
        }
    }

    fn start_next_round(&mut self) {
        let round = self.results.last().map_or(0, |r| r.round + 1);
        match self.driver.next_round() {
            Ok(Some(plan)) => self.announce(round, 0, plan),
            Ok(None) => self.finish(Ok(())),
            Err(e) => self.finish(Err(CoordinatorError::Job(e))),
        }
    }

    fn announce(&mut self, round: u64, attempt: u32, plan: RoundPlan) {
        let (codec_spec, digits) = plan.codec.to_pb();
        let c = &self.consortium;
        let spec_hash = c.job.hash();
        let message = pb::CoordinatorMessage {
            job_id: c.job.id.clone(),
            round,
            attempt,
            body: Some(pb::coordinator_message::Body::Announce(
                pb::RoundAnnouncement {
                    members: c.roster.members().map(|m| m.id.to_string()).collect(),
                    threshold: c.protocol.thresholds.threshold as u32,
                    min_cohort: c.protocol.thresholds.min_cohort as u32,
                    dimension: plan.dimension as u64,
                    fixed_point: Some(codec_spec),
                    digits,
                    departed: self
                        .departed
                        .iter()
                        .map(|(p, reason)| pb::Departure {
                            participant: self.name(*p),
                            reason: reason.clone(),
                        })
                        .collect(),
                    job_spec_hash: spec_hash.to_vec().into(),
                    task: Some(plan.task.clone()),
                },
            )),
        };
        let announcement = envelope::seal_coordinator(&self.key, &message);
        let info = Attempt {
            job_id: c.job.id.clone(),
            spec_hash,
            round,
            attempt,
            thresholds: c.protocol.thresholds,
            dimension: plan.codec.words_for(plan.dimension),
        };
        let mut adv = Advertising::new(info, self.active.clone());
        let at = At { round, attempt };
        let mut waiting = Vec::new();
        for (from, seen, reply) in self.polls.drain(..) {
            if is_newer(at, seen) {
                adv.expect(from);
                let _ = reply.send(Ok(announcement.clone()));
            } else {
                waiting.push((from, seen, reply));
            }
        }
        self.polls = waiting;
        info!(job = %c.job.id, round, attempt, dimension = plan.dimension, "round announced");
        let deadline = Instant::now() + c.protocol.phase_deadline;
        self.stage = Stage::Running {
            round: Box::new(Round::Advertising(adv)),
            plan,
            announcement,
            deadline,
        };
    }

    fn finish(&mut self, result: Result<(), CoordinatorError>) {
        let (ok, reason) = match &result {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e.to_string()),
        };
        if let Err(e) = result {
            warn!(error = %e, "job failed");
            self.failure = Some(e);
        } else {
            info!(job = %self.consortium.job.id, rounds = self.results.len(), "job finished");
        }
        let last = self.results.last();
        let message = pb::CoordinatorMessage {
            job_id: self.consortium.job.id.clone(),
            round: last.map_or(0, |r| r.round),
            attempt: last.map_or(0, |r| r.attempt),
            body: Some(pb::coordinator_message::Body::Finished(pb::JobFinished {
                ok,
                reason,
            })),
        };
        let signed = envelope::seal_coordinator(&self.key, &message);
        let mut told = BTreeSet::new();
        for (from, _, reply) in self.polls.drain(..) {
            told.insert(from);
            let _ = reply.send(Ok(signed.clone()));
        }
        // Linger one phase deadline so that members still finishing the last
        // round can learn that the job is over.
        let deadline = Instant::now() + self.consortium.protocol.phase_deadline;
        self.stage = Stage::Finished {
            message: signed,
            told,
            deadline,
        };
    }
}

fn round_is_complete(stage: &Stage) -> bool {
    matches!(stage, Stage::Running { round, .. } if round.is_complete())
}

fn is_newer(at: At, seen: Option<At>) -> bool {
    match seen {
        None => true,
        Some(s) => (at.round, at.attempt) > (s.round, s.attempt),
    }
}

fn req_at(req: &Request) -> Option<At> {
    match req {
        Request::Advertise { at, .. }
        | Request::Shares { at, .. }
        | Request::Masked { at, .. }
        | Request::Confirm { at, .. }
        | Request::Unmask { at, .. } => Some(*at),
        Request::Poll { .. } | Request::Leave { .. } => None,
    }
}

fn phase_name(req: &Request) -> String {
    match req {
        Request::Advertise { .. } => Phase::AdvertiseKeys.to_string(),
        Request::Shares { .. } => Phase::ShareKeys.to_string(),
        Request::Masked { .. } => Phase::MaskedInput.to_string(),
        Request::Confirm { .. } => Phase::ConsistencyCheck.to_string(),
        Request::Unmask { .. } => Phase::Unmask.to_string(),
        Request::Poll { .. } => "poll".into(),
        Request::Leave { .. } => "leave".into(),
    }
}

fn reject_request(req: Request, r: Rejection) {
    match req {
        Request::Poll { reply, .. } => drop(reply.send(Err(r))),
        Request::Advertise { reply, .. } => drop(reply.send(Err(r))),
        Request::Shares { reply, .. } => drop(reply.send(Err(r))),
        Request::Masked { reply, .. } => drop(reply.send(Err(r))),
        Request::Confirm { reply, .. } => drop(reply.send(Err(r))),
        Request::Unmask { reply, .. } => drop(reply.send(Err(r))),
        Request::Leave { reply, .. } => drop(reply.send(Err(r))),
    }
}
