//! The one task that owns the job: the lobby, the open round phase and its
//! deadline, pending long polls, and the round log. gRPC handlers send it
//! [`Request`]s with a reply channel; nothing else touches the state.
//!
//! The log is the coordinator's only state: [`Actor::new`] replays it, so a
//! coordinator killed at any point and restarted keeps every finished round
//! and resumes the unfinished one with a new attempt (fresh keys).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::epoch::{EpochView, Slot};
use fedcredit_crypto::secagg::{PartyIndex, Phase, outcome_digest};
use fedcredit_proto::v1::{self as pb, coordinator_message, log_body};
use fedcredit_proto::{envelope, words};
use fedcredit_referee::consortium::Consortium;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use crate::JobReport;
use crate::error::{CoordinatorError, Rejection};
use crate::job::{JobDriver, RoundPlan, RoundResult};
use crate::log::RoundLog;
use crate::metrics::{Metrics, PhaseLabel};
use crate::records::{aborted_entry, job_started};
use crate::replay::Replay;
use crate::requests::{At, BodySetup, Request, RoundMsg};
use crate::round::{
    Abort, Advertising, Attempt, Closed, CollectingInputs, InputAnswer, Piece, Reply, Round, Setup,
    Taken,
};

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

/// An epoch of secure aggregation the coordinator holds across the rounds
/// of a job (`[protocol] setup = "epoch"`): set up by one attempt, whose
/// slot 0 it used; each later attempt announces its next slot.
#[derive(Debug)]
struct HeldEpoch {
    /// The epoch's session id (its setup attempt's session id).
    id: SessionId,
    /// Its cohort C and the commitments to check reveals against.
    view: Arc<EpochView>,
    /// C: every slot's contributors.
    cohort: BTreeSet<PartyIndex>,
    /// The next slot to announce; a slot is announced at most once, even if
    /// its attempt aborts.
    next_slot: Slot,
}

/// Owns the job until it finishes.
/// The signed outcome of every published round, in order.
pub(crate) type Published = Arc<std::sync::RwLock<Vec<pb::Signed>>>;

pub(crate) struct Actor {
    consortium: Arc<Consortium>,
    key: IdentityKey,
    driver: Box<dyn JobDriver>,
    log: RoundLog,
    stage: Stage,
    /// Long polls waiting for the next announcement.
    polls: Vec<(PartyIndex, Option<At>, Reply<pb::Signed>)>,
    /// Members believed alive: joined and not missing a deadline since.
    active: BTreeSet<PartyIndex>,
    results: Vec<RoundResult>,
    /// The signed outcome of every completed round, in order: every
    /// announcement lists their digests, so each participant can replay the
    /// job (fetching any it lacks) and check that the announced task
    /// follows (the referee).
    /// Shared with the gRPC service, which answers `OutcomeChunks` from it
    /// for as long as the server runs, also after the job's end.
    published: Published,
    /// [`outcome_digest`] of each of `published`, taken once.
    published_digests: Vec<Bytes>,
    /// The contributors of every completed round, in order (for the job's
    /// cohort policy).
    contributor_sets: Vec<BTreeSet<PartyIndex>>,
    /// The survivor list announced in an attempt of the current round: any
    /// retry must end with exactly this set (members confirm one contributor
    /// set per task, and would refuse another).
    pinned: Option<(u64, BTreeSet<PartyIndex>)>,
    /// Members that left the job, with their reason code (told to the others).
    departed: BTreeMap<PartyIndex, i32>,
    /// The epoch in use (epoch mode only). Never restored from the log: a
    /// restarted coordinator sets up a new one.
    epoch: Option<HeldEpoch>,
    /// Where the next round starts: after a restart, the unfinished round
    /// resumes with an attempt number no earlier run has used.
    resume: At,
    /// First attempt of the current round in this process (for max_attempts).
    attempt_floor: u32,
    failure: Option<CoordinatorError>,
    /// What the operator watches (`/metrics`, `/api/jobs`).
    metrics: Arc<Metrics>,
}

/// Writes a record, turning a log failure into the job's failure.
macro_rules! log_or_fail {
    ($self:ident, $entry:expr) => {
        if let Err(e) = $self.log.append(&$self.key, $entry) {
            $self.fail_hard(e);
            return;
        }
    };
}

impl Actor {
    /// Opens the round log at `log_path`, replays it and prepares to go on.
    /// The published outcomes, shared with the service that answers
    /// `OutcomeChunks` from them.
    pub(crate) fn published(&self) -> Published {
        Arc::clone(&self.published)
    }

    pub fn new(
        consortium: Arc<Consortium>,
        key: IdentityKey,
        mut driver: Box<dyn JobDriver>,
        log_path: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Self, CoordinatorError> {
        let (mut log, entries) = RoundLog::open(log_path, &key.public())?;
        let replay = Replay::run(&consortium, &key, driver.as_mut(), &entries, log_path)?;
        if entries.is_empty() {
            log.append(&key, job_started(&consortium, &key))?;
        }
        log.append(
            &key,
            log_body::Entry::CoordinatorStarted(pb::CoordinatorStarted {
                replayed_records: entries.len() as u64,
                resume_round: replay.resume.round,
                resume_attempt: replay.resume.attempt,
            }),
        )?;
        log.sync()?;
        metrics.job(|j| {
            j.id = consortium.job.id.clone();
            j.kind = consortium.job.kind.name().to_owned();
            j.state = "waiting".into();
            j.rounds_completed = replay.results.len() as u64;
        });
        if let Some((spent, budget)) = driver.privacy_spent() {
            metrics.epsilon_spent.set(spent);
            metrics.epsilon_budget.set(budget);
            metrics.job(|j| j.privacy = Some((spent, budget)));
        }
        if !entries.is_empty() {
            metrics.restarts.inc();
            info!(
                log = %log_path.display(),
                records = entries.len(),
                rounds_done = replay.results.len(),
                resume_round = replay.resume.round,
                resume_attempt = replay.resume.attempt,
                "replayed the round log"
            );
        }
        if let Some(why) = &replay.failed_before {
            warn!(
                failure = %why,
                resume_round = replay.resume.round,
                "the job failed for want of members; resuming it from its first unfinished round"
            );
        }
        let deadline = Instant::now() + consortium.protocol.join_deadline;
        let mut actor = Self {
            consortium,
            key,
            driver,
            log,
            stage: Stage::Lobby {
                joined: BTreeSet::new(),
                deadline,
            },
            polls: Vec::new(),
            active: BTreeSet::new(),
            results: replay.results,
            published_digests: replay
                .published
                .iter()
                .map(|o| Bytes::copy_from_slice(&outcome_digest(&o.payload)))
                .collect(),
            published: Arc::new(std::sync::RwLock::new(replay.published)),
            contributor_sets: replay.contributor_sets,
            pinned: replay.pinned,
            departed: replay.departed,
            epoch: None,
            resume: replay.resume,
            attempt_floor: 0,
            failure: None,
            metrics,
        };
        if let Some(ended) = replay.ended {
            // The job finished before: tell whoever asks, do not run it again.
            let result = if ended.ok {
                Ok(())
            } else {
                Err(CoordinatorError::Job(ended.reason.clone()))
            };
            actor.enter_finished(result, false);
        }
        Ok(actor)
    }

    /// Runs until the job is finished and every active member was told (or the
    /// linger deadline passed), until the request channel closes, or until
    /// `shutdown` resolves (see [`Actor::shut_down`]).
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        shutdown: impl std::future::Future<Output = ()>,
        abort: impl std::future::Future<Output = String>,
    ) -> Result<JobReport, CoordinatorError> {
        tokio::pin!(shutdown);
        tokio::pin!(abort);
        let mut aborted = false;
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
                // The operator aborts the job: it ends now, signed in the
                // log, and the members are told as for any failed job.
                reason = &mut abort, if !aborted => {
                    aborted = true;
                    if !matches!(self.stage, Stage::Finished { .. }) {
                        warn!(reason = %reason, rounds = self.results.len(), "job aborted by the operator; its log keeps the finished rounds");
                        self.finish(Err(CoordinatorError::Abandoned(reason)));
                    }
                }
                () = &mut shutdown => {
                    if matches!(self.stage, Stage::Finished { .. }) {
                        // The job has ended: return its result rather than lose it.
                        info!("shutdown requested after the job ended; publishing its result");
                        break;
                    }
                    return Err(self.shut_down());
                }
            }
        }
        let membership = fedcredit_referee::Membership::new(
            &self.consortium.roster,
            &self.contributor_sets,
            &self.departed,
        );
        match self.failure {
            Some(e) => Err(e),
            None => Ok(JobReport {
                model: self.driver.model(),
                rounds: self.results,
                membership,
            }),
        }
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::Poll { from, seen, reply } => self.on_poll(from, seen, reply),
            Request::Leave {
                from,
                signed,
                code,
                reply,
            } => self.on_leave(from, signed, code, reply),
            Request::Round {
                from,
                at,
                signed,
                msg,
            } => self.on_round_message(from, at, signed, msg),
            Request::StreamCut { from, at, why } => self.on_stream_cut(from, at, why),
        }
    }

    /// A member's chunk stream broke off: its partial input is out of the
    /// attempt (taken out of the sum when the phase closes), and the phase
    /// closes as soon as everyone else is done.
    fn on_stream_cut(&mut self, from: PartyIndex, at: At, why: String) {
        let Stage::Running { round, .. } = &mut self.stage else {
            return;
        };
        let current = At {
            round: round.attempt().round,
            attempt: round.attempt().attempt,
        };
        let Round::CollectingInputs(p) = &mut **round else {
            return;
        };
        if at != current {
            return;
        }
        warn!(participant = %self.consortium.roster.name_of(from), reason = %why, "masked-input stream broke off; its partial input is out of this attempt");
        p.drop_input(from, why);
        if self.phase_can_close() {
            self.close_phase();
        }
    }

    /// A masked-input piece: checked and added into the sum, logged, and
    /// answered (the next chunk is asked for at once; a whole input hears
    /// the survivor list when the phase closes).
    fn on_masked(
        &mut self,
        from: PartyIndex,
        signed: pb::Signed,
        piece: Piece,
        values: &[u8],
        reply: Reply<InputAnswer>,
    ) {
        let roster = &self.consortium.roster;
        let Stage::Running { round, .. } = &mut self.stage else {
            return;
        };
        let Round::CollectingInputs(p) = &mut **round else {
            return;
        };
        let taken = match p.accept(roster, from, &piece, values) {
            Ok(t) => t,
            Err(r) => {
                warn!(participant = %roster.name_of(from), error = %r, "masked input refused; its input is out of this attempt");
                let _ = reply.send(Err(r));
                if self.phase_can_close() {
                    self.close_phase();
                }
                return;
            }
        };
        // Written now, made durable before the phase closes (the first
        // moment anyone learns of it). Where a chunk went is kept, to take
        // it out of the sum again should the input never complete.
        let at = match self
            .log
            .append_located(&self.key, log_body::Entry::Participant(signed))
        {
            Ok(at) => at,
            Err(e) => {
                self.fail_hard(e);
                return;
            }
        };
        let Stage::Running { round, .. } = &mut self.stage else {
            return;
        };
        let Round::CollectingInputs(p) = &mut **round else {
            return;
        };
        match (taken, &piece) {
            (Taken::More, Piece::Chunk { header, .. }) => {
                p.logged(from, header, at);
                let _ = reply.send(Ok(InputAnswer::Next));
            }
            _ => p.wait(reply),
        }
        if self.phase_can_close() {
            self.close_phase();
        }
    }

    fn name(&self, p: PartyIndex) -> String {
        self.consortium.roster.name_of(p)
    }

    fn need(&self) -> usize {
        self.consortium.protocol.thresholds.need()
    }

    fn on_leave(
        &mut self,
        from: PartyIndex,
        signed: pb::Signed,
        code: i32,
        reply: Reply<pb::LeaveAck>,
    ) {
        warn!(participant = %self.name(from), reason = pb::ReasonCode::label_of(code), "participant left the job");
        self.metrics.departures.inc();
        log_or_fail!(self, log_body::Entry::Participant(signed));
        if let Err(e) = self.log.sync() {
            self.fail_hard(e);
            return;
        }
        self.active.remove(&from);
        self.departed.insert(from, code);
        self.metrics
            .participants_connected
            .set(self.active.len() as i64);
        let _ = reply.send(Ok(pb::LeaveAck {}));
        if let Stage::Lobby { joined, .. } = &mut self.stage {
            joined.remove(&from);
            self.decide_lobby(false);
        } else if self.phase_can_close() {
            // A member that has said it is gone is not waited for: the phase
            // closes once everyone else has answered, not at the deadline.
            self.close_phase();
        }
    }

    /// Whether the open phase can close now: everyone it waits for has
    /// answered, or has left the job with a signed `Leave` and not come back
    /// since (a poll makes a member active again).
    fn phase_can_close(&self) -> bool {
        let Stage::Running { round, .. } = &self.stage else {
            return false;
        };
        let gone = |p: &PartyIndex| self.departed.contains_key(p) && !self.active.contains(p);
        // Checked on every accepted message: the set of those still awaited
        // is only built when someone has left and not come back.
        round.is_complete() || (self.departed.keys().any(gone) && round.awaited().iter().all(gone))
    }

    /// In the lobby: starts once every member is accounted for (here, or
    /// left with a reason) or, at the join deadline, with those here; fails
    /// (resumably) when too few are here. Every member left out is logged.
    fn decide_lobby(&mut self, deadline_passed: bool) {
        let Stage::Lobby { joined, .. } = &self.stage else {
            return;
        };
        let roster = &self.consortium.roster;
        let members = roster.len();
        let need = if self.consortium.job.require_all_members {
            members
        } else {
            self.need()
        };
        let left: Vec<(String, String)> = self
            .departed
            .iter()
            .filter(|(p, _)| !joined.contains(p))
            .map(|(p, code)| {
                (
                    roster.name_of(*p),
                    pb::ReasonCode::label_of(*code).to_owned(),
                )
            })
            .collect();
        let absent: Vec<String> = roster
            .members()
            .map(|m| m.index)
            .filter(|p| !joined.contains(p) && !self.departed.contains_key(p))
            .map(|p| roster.name_of(p))
            .collect();
        let have = joined.len();
        if !deadline_passed && !absent.is_empty() {
            return;
        }
        if have >= need && have > 0 {
            for id in &absent {
                warn!(participant = %id, "never arrived before the join deadline; the job starts without it");
            }
            for (id, why) in &left {
                warn!(participant = %id, reason = %why, "left before the first round; the job starts without it");
            }
            if deadline_passed {
                info!(
                    joined = have,
                    "join deadline passed; starting with those present"
                );
            }
            self.start_next_round();
        } else {
            self.finish(Err(CoordinatorError::TooFewJoined {
                have,
                members,
                need,
                left,
                absent,
            }));
        }
    }

    fn on_poll(&mut self, from: PartyIndex, seen: Option<At>, reply: Reply<pb::Signed>) {
        self.active.insert(from);
        // One pending poll per member: a newer poll supersedes the older one,
        // so a member (or someone replaying its signed polls) cannot pile up
        // waiting calls.
        if let Some(i) = self.polls.iter().position(|(p, _, _)| *p == from) {
            let (_, _, old) = self.polls.swap_remove(i);
            let _ = old.send(Err(Rejection::Superseded));
        }
        let name = self.name(from);
        match &mut self.stage {
            Stage::Lobby { joined, .. } => {
                joined.insert(from);
                info!(participant = %name, joined = joined.len(), "participant joined");
                self.metrics
                    .participants_connected
                    .set(self.active.len() as i64);
                self.polls.push((from, seen, reply));
                self.decide_lobby(false);
            }
            Stage::Running {
                round,
                announcement,
                ..
            } if round.is_first_phase() => {
                let at = At {
                    round: round.attempt().round,
                    attempt: round.attempt().attempt,
                };
                if is_newer(at, seen) {
                    // A slot attempt's cohort is the epoch's: nobody is
                    // added to what it expects.
                    if let Round::Advertising(adv) = &mut **round {
                        adv.expect(from);
                    }
                    let _ = reply.send(Ok(announcement.clone()));
                } else {
                    self.polls.push((from, seen, reply));
                }
            }
            Stage::Running { .. } => self.polls.push((from, seen, reply)),
            Stage::Finished { message, told, .. } => {
                // Told only if the caller still waits (a poll held too long
                // is answered by the service and its reply dropped).
                if reply.send(Ok(message.clone())).is_ok() {
                    told.insert(from);
                }
            }
        }
    }

    fn on_round_message(&mut self, from: PartyIndex, at: At, signed: pb::Signed, msg: RoundMsg) {
        let open = self.open_description();
        let Stage::Running { round, .. } = &mut self.stage else {
            let got = msg.phase().to_string();
            msg.reject(Rejection::WrongPhase { got, open });
            return;
        };
        let roster = &self.consortium.roster;
        let current = At {
            round: round.attempt().round,
            attempt: round.attempt().attempt,
        };
        if at != current {
            msg.reject(Rejection::WrongRound {
                round: current.round,
                attempt: current.attempt,
                got_round: at.round,
                got_attempt: at.attempt,
            });
            return;
        }
        let setup = round.attempt().setup;
        let fits = match msg.setup() {
            BodySetup::Any => true,
            BodySetup::PerRound => !setup.is_epoch(),
            BodySetup::Epoch => setup.is_epoch(),
        };
        if !fits {
            let body = msg.body();
            msg.reject(Rejection::WrongSetup {
                body,
                attempt: setup.describe(),
            });
            return;
        }
        let msg = match msg {
            RoundMsg::Masked {
                piece,
                values,
                reply,
            } if matches!(**round, Round::CollectingInputs(_)) => {
                self.on_masked(from, signed, piece, &values, reply);
                return;
            }
            other => other,
        };
        let accepted = match (&mut **round, msg) {
            (Round::Advertising(p), RoundMsg::Advertise { ad, reply }) => {
                p.accept(roster, from, signed.clone(), ad, reply)
            }
            (
                Round::SharingKeys(p),
                RoundMsg::Shares {
                    dealt,
                    ciphertexts,
                    reply,
                },
            ) => p.accept(roster, from, dealt, ciphertexts, signed.clone(), reply),
            (
                Round::Confirming(p),
                RoundMsg::Confirm {
                    survivors,
                    session,
                    reply,
                },
            ) => p.accept(roster, from, &survivors, &session, signed.clone(), reply),
            (
                Round::Unmasking(p),
                RoundMsg::Unmask {
                    self_mask,
                    keys,
                    reply,
                },
            ) => p.accept(roster, from, self_mask, keys, reply),
            (
                Round::EpochSharing(p),
                RoundMsg::EpochShares {
                    record,
                    ciphertexts,
                    reply,
                },
            ) => p.accept(roster, from, record, &ciphertexts, signed.clone(), reply),
            (
                Round::SlotUnmasking(p),
                RoundMsg::SlotReveal {
                    slot,
                    shares,
                    reply,
                },
            ) => p.accept(roster, from, slot, shares, reply),
            (_, msg) => {
                let got = msg.phase().to_string();
                msg.reject(Rejection::WrongPhase { got, open });
                return;
            }
        };
        // `accepted` also holds for a reveal refused for a bad share: it is
        // logged as signed evidence against its sender.
        if !accepted {
            return;
        }
        // Written now, made durable before the phase closes (the first
        // moment anyone learns of it).
        log_or_fail!(self, log_body::Entry::Participant(signed));
        if self.phase_can_close() {
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
            Stage::Lobby { .. } => self.decide_lobby(true),
            Stage::Running { round, .. } => {
                let missing = round.missing();
                for p in &missing {
                    warn!(participant = %self.name(*p), phase = %round.phase(), "no answer before the deadline; counted as dropped");
                    self.active.remove(p);
                    self.metrics.dropouts.inc();
                }
                self.metrics
                    .participants_connected
                    .set(self.active.len() as i64);
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
            deadline,
        } = stage
        else {
            self.stage = stage;
            return;
        };
        let opened = deadline.checked_sub(self.consortium.protocol.phase_deadline);
        let mut round = round;
        if let Round::CollectingInputs(p) = &mut *round {
            // Partial chunked inputs leave the sum before anything is decided
            // on it: from here on it is exactly U3's inputs.
            let log = &self.log;
            let rolled = p.roll_back(&self.consortium.roster, |at| {
                let signed = log.read_participant(at)?;
                chunk_values(&signed).ok_or_else(|| {
                    CoordinatorError::Log(format!(
                        "{}: the record at byte {} is not a masked-input chunk",
                        log.path().display(),
                        at.offset
                    ))
                })
            });
            match rolled {
                Ok(out) => {
                    for p in out {
                        warn!(participant = %self.name(p), "took an incomplete chunked masked input out of the sum");
                    }
                }
                Err(e) => {
                    self.fail_hard(CoordinatorError::Log(e.to_string()));
                    return;
                }
            }
        }
        let attempt = round.attempt().clone();
        let phase = round.phase();
        let cohort_at_close = round.cohort();
        // Record how the phase closes before anyone hears of it.
        let names =
            |set: &BTreeSet<PartyIndex>| set.iter().map(|p| self.name(*p)).collect::<Vec<_>>();
        let entry = match round.check_count(&self.consortium.roster) {
            Ok(()) => log_body::Entry::PhaseClosed(pb::PhaseClosed {
                round: attempt.round,
                attempt: attempt.attempt,
                phase: phase.to_string(),
                cohort: names(&round.cohort()),
                missing: names(&round.missing()),
            }),
            Err(abort) => aborted_entry(&attempt, &abort),
        };
        let logged_abort = matches!(entry, log_body::Entry::RoundAborted(_));
        let label = PhaseLabel {
            phase: phase.to_string(),
        };
        self.metrics.phases_completed.get_or_create(&label).inc();
        if let Some(opened) = opened {
            self.metrics
                .phase_seconds
                .get_or_create(&label)
                .observe(opened.elapsed().as_secs_f64());
        }
        log_or_fail!(self, entry);
        if let Err(e) = self.log.sync() {
            self.fail_hard(e);
            return;
        }
        match (*round).close(&self.consortium.roster) {
            Ok(Closed::Next(next)) => {
                if phase == Phase::ShareKeys
                    && let Round::CollectingInputs(p) = &*next
                    && let Some((view, slot)) = p.slot()
                {
                    // The epoch is set up: held for this job's next rounds.
                    info!(job = %attempt.job_id, round = attempt.round, attempt = attempt.attempt, members = view.dealt.len(), slots = view.slots.get(), "epoch set up");
                    self.epoch = Some(HeldEpoch {
                        id: view.epoch,
                        view: Arc::clone(view),
                        cohort: view.dealt.keys().copied().collect(),
                        next_slot: slot + 1,
                    });
                }
                if phase == Phase::MaskedInput
                    && self
                        .pinned
                        .as_ref()
                        .is_none_or(|(r, _)| *r != attempt.round)
                {
                    // The survivor list goes out now: from here on this
                    // round's task has its contributor set.
                    self.pinned = Some((attempt.round, cohort_at_close));
                }
                info!(job = %attempt.job_id, round = attempt.round, attempt = attempt.attempt, phase = %next.phase(), "phase open");
                let open = next.phase().to_string();
                self.metrics.job(|j| j.phase = Some(open));
                let deadline = Instant::now() + self.consortium.protocol.phase_deadline;
                self.stage = Stage::Running {
                    round: next,
                    plan,
                    announcement,
                    deadline,
                };
                // Everyone the new phase waits for may have left already.
                if self.phase_can_close() {
                    self.close_phase();
                }
            }
            Ok(Closed::Done(done)) => {
                let (attempt, outcome) = *done;
                self.complete_round(attempt, outcome, plan)
            }
            Err(abort) => {
                if !logged_abort {
                    log_or_fail!(self, aborted_entry(&attempt, &abort));
                    if let Err(e) = self.log.sync() {
                        self.fail_hard(e);
                        return;
                    }
                }
                // A slot whose masked inputs cannot all be unmasked (a
                // member of C sent none, or C is not the set this round
                // must end with) is abandoned before any reveal, and so is
                // its epoch: the next attempt sets up a new one. A failed
                // unmask keeps the epoch (its other slots are unused).
                if phase == Phase::MaskedInput
                    && attempt.setup.is_epoch()
                    && self.epoch.take().is_some()
                {
                    warn!(job = %attempt.job_id, round = attempt.round, attempt = attempt.attempt, "dropped the epoch: the next attempt sets up a new one");
                }
                self.on_abort(attempt, abort, plan);
            }
        }
    }

    fn complete_round(
        &mut self,
        attempt: Attempt,
        mut outcome: crate::round::Outcome,
        plan: RoundPlan,
    ) {
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
        let signed = envelope::seal_coordinator(
            &self.key,
            &pb::CoordinatorMessage {
                job_id: attempt.job_id.clone(),
                round: attempt.round,
                attempt: attempt.attempt,
                body: Some(coordinator_message::Body::Outcome(pb::RoundOutcome {
                    sum: words::to_bytes(&outcome.sum).into(),
                    contributors: contributors.clone(),
                })),
            },
        );
        // From here on the published sum is held once, in the signed
        // outcome: the words, their bytes and the unsigned message are gone,
        // and the log's copy of the sum is a view into the signed payload.
        outcome.sum = Vec::new();
        let contributor_set = outcome.contributors.clone();
        let result = RoundResult {
            round: attempt.round,
            attempt: attempt.attempt,
            sum,
            contributors: contributors.clone(),
        };
        // A sum the job refuses (e.g. a pooled class count of zero) is still
        // published and logged, with no progress: the coordinator unmasked
        // it, so hiding it would be hidden work. The job then ends.
        let (progress, refused) = match self.driver.finish_round(&result) {
            Ok(p) => (p, None),
            Err(e) => (String::new(), Some(e)),
        };
        log_or_fail!(
            self,
            log_body::Entry::RoundCompleted(pb::RoundCompleted {
                round: attempt.round,
                attempt: attempt.attempt,
                sum: outcome_sum(&signed),
                contributors,
                progress_json: progress,
                outcome: Some(signed.clone()),
            })
        );
        if let Err(e) = self.log.sync() {
            self.fail_hard(e);
            return;
        }
        for w in outcome.waiters {
            let _ = w.send(Ok(signed.clone()));
        }
        if let Some(e) = refused {
            self.finish(Err(CoordinatorError::Job(e)));
            return;
        }
        self.published_digests
            .push(Bytes::copy_from_slice(&outcome_digest(&signed.payload)));
        self.published
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(signed);
        self.contributor_sets.push(contributor_set);
        self.pinned = None;
        info!(job = %attempt.job_id, round = attempt.round, attempt = attempt.attempt, contributors = result.contributors.len(), "round complete");
        self.metrics.rounds_completed.inc();
        let privacy = self.driver.privacy_spent();
        if let Some((spent, budget)) = privacy {
            self.metrics.epsilon_spent.set(spent);
            self.metrics.epsilon_budget.set(budget);
        }
        let done = self.results.len() as u64 + 1;
        let progress = self.driver.progress();
        self.metrics.job(|j| {
            j.rounds_completed = done;
            j.cohort = result.contributors.clone();
            j.progress = progress;
            j.privacy = privacy;
        });
        self.results.push(result);
        self.start_next_round();
    }

    fn on_abort(&mut self, attempt: Attempt, abort: Abort, plan: RoundPlan) {
        warn!(job = %attempt.job_id, round = attempt.round, attempt = attempt.attempt, reason = %abort, "round attempt aborted");
        self.metrics.attempts_aborted.inc();
        let tried = attempt.attempt + 1 - self.attempt_floor;
        if tried < self.consortium.protocol.max_attempts {
            self.announce(attempt.round, attempt.attempt + 1, plan);
        } else {
            self.finish(Err(CoordinatorError::RoundFailed {
                round: attempt.round,
                attempts: tried,
                reason: abort.to_string(),
            }));
        }
    }

    fn start_next_round(&mut self) {
        let round = self.results.last().map_or(0, |r| r.round + 1);
        let attempt = if round == self.resume.round {
            self.resume.attempt
        } else {
            0
        };
        self.attempt_floor = attempt;
        match self.driver.next_round() {
            Ok(Some(plan)) => self.announce(round, attempt, plan),
            Ok(None) => self.finish(Ok(())),
            Err(e) => self.finish(Err(CoordinatorError::Job(e))),
        }
    }

    fn announce(&mut self, round: u64, attempt: u32, plan: RoundPlan) {
        let (codec_spec, limbs) = plan.codec.to_pb();
        let c = Arc::clone(&self.consortium);
        let spec_hash = c.job.hash();
        let policy_allowed =
            fedcredit_referee::cohort::allowed(&c.job, &c.roster, &self.contributor_sets);
        let pinned = self
            .pinned
            .as_ref()
            .filter(|(r, _)| *r == round)
            .map(|(_, set)| set.clone());
        let exact = pinned.or_else(|| {
            fedcredit_referee::cohort::exact(&c.job, &c.roster, &self.contributor_sets)
        });
        let allowed = match (&exact, policy_allowed) {
            (Some(e), _) => Some(e.clone()),
            (None, a) => a,
        };
        if let Err(e) = self.can_still_publish(round, exact.as_ref(), allowed.as_ref()) {
            self.finish(Err(e));
            return;
        }
        let (setup, epoch_field, slot_view) =
            self.epoch_for(round, attempt, allowed.as_ref(), exact.as_ref());
        self.metrics.job(|j| {
            j.state = "running".into();
            j.round = round;
            j.attempt = attempt;
            j.phase = Some(
                if slot_view.is_some() {
                    Phase::MaskedInput
                } else {
                    Phase::AdvertiseKeys
                }
                .to_string(),
            );
        });
        let message = pb::CoordinatorMessage {
            job_id: c.job.id.clone(),
            round,
            attempt,
            body: Some(coordinator_message::Body::Announce(pb::RoundAnnouncement {
                members: c.roster.members().map(|m| m.id.to_string()).collect(),
                threshold: c.protocol.thresholds.threshold() as u32,
                min_cohort: c.protocol.thresholds.min_cohort() as u32,
                max_colluders: c.protocol.thresholds.max_colluders() as u32,
                neighbours: c.protocol.graph_fields().0,
                share_threshold: c.protocol.graph_fields().1,
                epoch_slots: c.protocol.epoch_slots_field(),
                epoch: epoch_field,
                slot: match setup {
                    Setup::Slot { slot } => slot,
                    Setup::PerRound | Setup::NewEpoch { .. } => 0,
                },
                dimension: plan.dimension as u64,
                fixed_point: Some(codec_spec),
                limbs,
                departed: self.departures(),
                job_spec_hash: spec_hash.to_vec().into(),
                task: Some(plan.task.clone()),
                previous_outcome_digests: self.published_digests.clone(),
            })),
        };
        let announcement = envelope::seal_coordinator(&self.key, &message);
        log_or_fail!(self, log_body::Entry::Announcement(announcement.clone()));
        if let Err(e) = self.log.sync() {
            self.fail_hard(e);
            return;
        }
        let info = Attempt {
            job_id: c.job.id.clone(),
            spec_hash,
            round,
            attempt,
            thresholds: c.protocol.thresholds,
            announcement: fedcredit_crypto::secagg::announcement_digest(&announcement.payload),
            dimension: plan.codec.words_for(plan.dimension),
            allowed,
            exact,
            ring: plan.codec.ring(),
            setup,
        };
        let mut first = match slot_view {
            Some((view, slot)) => match CollectingInputs::for_slot(info, view, slot) {
                Ok(p) => Round::CollectingInputs(p),
                Err(abort) => {
                    // Not reached: the slot was checked against the epoch.
                    self.finish(Err(CoordinatorError::Job(abort.to_string())));
                    return;
                }
            },
            None => Round::Advertising(Advertising::new(info, self.active.clone())),
        };
        let at = At { round, attempt };
        let mut waiting = Vec::new();
        for (from, seen, reply) in self.polls.drain(..) {
            if is_newer(at, seen) {
                // A member answered with an announcement is alive again,
                // even if an earlier deadline counted it as dropped: it must
                // be told the job's end before the coordinator stops.
                self.active.insert(from);
                if let Round::Advertising(adv) = &mut first {
                    adv.expect(from);
                }
                let _ = reply.send(Ok(announcement.clone()));
            } else {
                waiting.push((from, seen, reply));
            }
        }
        self.polls = waiting;
        info!(job = %c.job.id, round, attempt, dimension = plan.dimension, "round announced");
        let deadline = Instant::now() + c.protocol.phase_deadline;
        self.stage = Stage::Running {
            round: Box::new(first),
            plan,
            announcement,
            deadline,
        };
    }

    /// Whether the round about to be announced can still publish, given the
    /// members that left with a signed `Leave` and have not polled since:
    /// every member of an exact cohort must be able to answer, and enough of
    /// those the policy allows to meet the threshold. A member that merely
    /// went quiet may come back and is still counted.
    fn can_still_publish(
        &self,
        round: u64,
        exact: Option<&BTreeSet<PartyIndex>>,
        allowed: Option<&BTreeSet<PartyIndex>>,
    ) -> Result<(), CoordinatorError> {
        let gone = |p: &PartyIndex| self.departed.contains_key(p) && !self.active.contains(p);
        let left = |set: &mut dyn Iterator<Item = PartyIndex>| -> Vec<(String, String)> {
            set.filter(|p| gone(p))
                .map(|p| {
                    let code = self.departed.get(&p).copied().unwrap_or_default();
                    (self.name(p), pb::ReasonCode::label_of(code).to_owned())
                })
                .collect()
        };
        if let Some(x) = exact {
            let missing = left(&mut x.iter().copied());
            if !missing.is_empty() {
                let names: Vec<String> = x.iter().map(|p| self.name(*p)).collect();
                return Err(CoordinatorError::CohortLeft {
                    round,
                    need: format!(
                        "it must end with exactly the contributors [{}] (the job's cohort policy, or the set members already confirmed)",
                        names.join(", ")
                    ),
                    left: missing,
                });
            }
            return Ok(());
        }
        let roster = &self.consortium.roster;
        let candidates: Vec<PartyIndex> = match allowed {
            Some(a) => a.iter().copied().collect(),
            None => roster.members().map(|m| m.index).collect(),
        };
        let need = self.need();
        let able = candidates.iter().filter(|p| !gone(p)).count();
        if able < need {
            return Err(CoordinatorError::CohortLeft {
                round,
                need: format!(
                    "it needs {need} contributors and only {able} of the {} the cohort policy allows can still answer",
                    candidates.len()
                ),
                left: left(&mut candidates.into_iter()),
            });
        }
        Ok(())
    }

    /// How the attempt about to be announced sets up secure aggregation:
    /// the per-round protocol; in epoch mode, the held epoch's next slot
    /// (advanced at once: a slot is announced at most once) while it has
    /// one and its cohort can still contribute to this round, else a new
    /// epoch. Returns the setup, the announcement's `epoch` field, and for a
    /// slot attempt the epoch's view and the slot.
    #[allow(clippy::type_complexity)]
    fn epoch_for(
        &mut self,
        round: u64,
        attempt: u32,
        allowed: Option<&BTreeSet<PartyIndex>>,
        exact: Option<&BTreeSet<PartyIndex>>,
    ) -> (Setup, Bytes, Option<(Arc<EpochView>, Slot)>) {
        let Some(slots) = self.consortium.protocol.epoch_slots else {
            return (Setup::PerRound, Bytes::new(), None);
        };
        if let Some(e) = self.epoch.as_mut() {
            let why_not = if e.next_slot >= slots.get() {
                Some("its slots are used up")
            } else if allowed.is_some_and(|a| !e.cohort.is_subset(a))
                || exact.is_some_and(|x| *x != e.cohort)
            {
                Some("its cohort is not the one this round's cohort policy allows")
            } else if e.cohort.iter().any(|p| self.departed.contains_key(p)) {
                Some("a member of its cohort left the job")
            } else {
                None
            };
            match why_not {
                None => {
                    let slot = e.next_slot;
                    e.next_slot += 1;
                    return (
                        Setup::Slot { slot },
                        Bytes::copy_from_slice(e.id.as_bytes()),
                        Some((Arc::clone(&e.view), slot)),
                    );
                }
                Some(why) => {
                    info!(round, attempt, reason = why, "setting up a new epoch");
                }
            }
        }
        // A setup attempt: any epoch held is dropped (members drop theirs
        // on an announcement with an empty `epoch`).
        self.epoch = None;
        (Setup::NewEpoch { slots }, Bytes::new(), None)
    }

    /// Records that the operator abandoned the job (see [`crate::abandon`]).
    pub fn abandon(mut self, reason: &str) -> Result<(), CoordinatorError> {
        if let Stage::Finished { .. } = self.stage {
            return Err(CoordinatorError::Job(
                "the job already ended (see `fedcredit audit show`); there is nothing to abandon"
                    .into(),
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(CoordinatorError::Job(
                "say why the job is abandoned (it goes into the signed log)".into(),
            ));
        }
        self.finish(Err(CoordinatorError::Abandoned(reason.to_owned())));
        warn!(
            rounds = self.results.len(),
            "job abandoned; its log keeps the finished rounds"
        );
        match self.failure {
            Some(CoordinatorError::Abandoned(_)) => Ok(()),
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The members that left with a signed departure, for announcements and
    /// the job's end.
    fn departures(&self) -> Vec<pb::Departure> {
        self.departed
            .iter()
            .map(|(p, code)| pb::Departure {
                participant: self.name(*p),
                code: *code,
            })
            .collect()
    }

    /// Ends the job: logs it, then tells everyone waiting.
    fn finish(&mut self, result: Result<(), CoordinatorError>) {
        self.enter_finished(result, true);
    }

    fn enter_finished(&mut self, result: Result<(), CoordinatorError>, write: bool) {
        let (ok, reason, resumable) = match &result {
            Ok(()) => (true, String::new(), false),
            Err(e) => (false, e.to_string(), e.resumable()),
        };
        self.metrics.job(|j| {
            j.state = if ok { "finished" } else { "failed" }.into();
            j.phase = None;
            j.failure = (!ok).then(|| reason.clone());
        });
        if write {
            let model_json = self
                .driver
                .model()
                .and_then(|m| serde_json::to_string(&m).ok())
                .unwrap_or_default();
            let logged = self
                .log
                .append(
                    &self.key,
                    log_body::Entry::JobEnded(pb::JobEnded {
                        ok,
                        reason: reason.clone(),
                        model_json,
                        resumable,
                    }),
                )
                .and_then(|()| self.log.sync());
            if let Err(e) = logged {
                warn!(error = %e, "could not record the job's end");
            }
        }
        if let Err(e) = result {
            if resumable {
                warn!(error = %e, "job failed; its finished rounds are kept: restart the coordinator to resume once enough members are back");
            } else {
                warn!(error = %e, "job failed");
            }
            self.failure = Some(e);
        } else {
            info!(job = %self.consortium.job.id, rounds = self.results.len(), "job finished");
        }
        let last = self.results.last();
        let message = pb::CoordinatorMessage {
            job_id: self.consortium.job.id.clone(),
            round: last.map_or(0, |r| r.round),
            attempt: last.map_or(0, |r| r.attempt),
            body: Some(coordinator_message::Body::Finished(pb::JobFinished {
                ok,
                reason,
                outcome_digests: self.published_digests.clone(),
                departed: self.departures(),
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

    /// Stops an unfinished job on request: makes the log durable, tells the
    /// members waiting on a poll, and logs where the job was left, which is
    /// where a restart with the same log resumes (with a fresh attempt).
    fn shut_down(mut self) -> CoordinatorError {
        if let Err(e) = self.log.sync() {
            return e;
        }
        for (_, _, reply) in self.polls.drain(..) {
            let _ = reply.send(Err(Rejection::ShuttingDown));
        }
        info!(
            job = %self.consortium.job.id,
            rounds_published = self.results.len(),
            log = %self.log.path().display(),
            records = self.log.records(),
            "stopped before the job finished: {}; the round log is synced, and starting again with it resumes the job",
            self.open_description()
        );
        CoordinatorError::ShutDown
    }

    /// The log cannot be written: nothing more may happen. Every waiting
    /// caller is refused and the job fails.
    fn fail_hard(&mut self, e: CoordinatorError) {
        warn!(error = %e, "stopping: the round log cannot be written");
        self.failure = Some(e);
        self.polls.clear();
        self.active.clear();
        let deadline = Instant::now();
        let message = pb::Signed::default();
        self.stage = Stage::Finished {
            message,
            told: BTreeSet::new(),
            deadline,
        };
    }
}

/// The words of a logged masked-input chunk.
fn chunk_values(signed: &pb::Signed) -> Option<Bytes> {
    use prost::Message as _;
    let m = pb::Message::decode(signed.payload.clone()).ok()?;
    match m.body {
        Some(pb::message::Body::MaskedChunk(c)) => Some(c.values),
        _ => None,
    }
}

/// The sum in a signed round outcome this coordinator sealed: a view into
/// its payload (decoding `Bytes` copies no `bytes` field).
fn outcome_sum(signed: &pb::Signed) -> Bytes {
    use prost::Message as _;
    match pb::CoordinatorMessage::decode(signed.payload.clone()).map(|m| m.body) {
        Ok(Some(coordinator_message::Body::Outcome(o))) => o.sum,
        _ => Bytes::new(),
    }
}

fn is_newer(at: At, seen: Option<At>) -> bool {
    match seen {
        None => true,
        Some(s) => (at.round, at.attempt) > (s.round, s.attempt),
    }
}
