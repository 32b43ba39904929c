//! The replay verifier: reads the log with the consortium's coordinator key,
//! then checks every record in order against the consortium file and the
//! protocol, recomputing what the coordinator computed.
//!
//! Layout: this module dispatches records and follows the job-level ones
//! (restarts, leaves, round results, `JobEnded`); `anchor` checks
//! `JobStarted` and announcements against the consortium file; `attempt`
//! replays one round attempt's secure aggregation; `epoch` holds an epoch
//! job's epoch across attempts; `job` replays the job (tasks, progress, the
//! published model).

mod anchor;
mod attempt;
mod epoch;
mod job;
pub use job::json_difference;
mod privacy;

use std::collections::BTreeMap;

use fedcredit_proto::roundlog::{self, End, Entry};
use fedcredit_proto::v1::message::Body;
use fedcredit_proto::v1::{self as pb, log_body};
use fedcredit_proto::{envelope, words};
use fedcredit_referee::consortium::Consortium;
use prost::Message as _;

use fedcredit_crypto::secagg::Phase;
use fedcredit_model::privacy::PrivacyReport;
use fedcredit_referee::TaskDigest;

use crate::report::{
    AttemptReport, AttemptStatus, Check, Departure, Failure, JobEnd, LogEnd, Report, Resumed,
    Summary,
};
use attempt::{AttemptState, body_name};
use job::JobReplay;

/// What every check needs: the consortium and values derived from it once.
#[derive(Debug)]
pub(crate) struct Context<'c> {
    /// The consortium file the log is checked against.
    pub consortium: &'c Consortium,
    /// SHA-256 of the job spec.
    pub spec_hash: [u8; 32],
    /// Parties each phase needs: max(threshold, min_cohort).
    pub need: usize,
}

/// Verifies a round log against the consortium file: the chain and every
/// signature, then every record's meaning, recomputing each round's
/// unmasked sum from the logged masked inputs and reveals, and replaying a
/// model job round by round to the published model. Pure: no files, no
/// network. See [`Report`] for what it says.
pub fn verify(log_bytes: &[u8], consortium: &Consortium) -> Report {
    let file = roundlog::read(log_bytes, Some(consortium.roster.coordinator()));
    let mut v = Verifier::new(consortium);
    for entry in &file.entries {
        v.record(entry);
    }
    // The budget is its own pass: named even when the replay fails.
    let privacy = privacy::audit(&file.entries, consortium).map(|(spent, failures)| {
        v.problems.extend(failures);
        spent
    });
    let log_end = match &file.end {
        End::Clean => LogEnd::Clean,
        End::Truncated {
            offset,
            record,
            detail,
        } => LogEnd::Truncated {
            record: *record,
            offset: *offset,
            detail: detail.clone(),
        },
        End::Broken {
            offset,
            record,
            problem,
        } => LogEnd::Broken {
            record: *record,
            offset: *offset,
            problem: problem.clone(),
        },
    };
    v.finish(
        log_end,
        privacy,
        file.entries.len() as u64,
        file.good_len,
        log_bytes.len() as u64,
    )
}

/// The open attempt: its replayed state, and where its report line is.
#[derive(Debug)]
struct Open {
    line: usize,
    state: AttemptState,
    /// The task the attempt computes (`None` if its announcement failed).
    digest: Option<TaskDigest>,
    /// A check failed: skip the attempt's remaining records.
    failed: bool,
}

#[derive(Debug)]
struct Verifier<'c> {
    ctx: Context<'c>,
    job: JobReplay,
    /// Rounds completed so far (the next round's number).
    next_round: u64,
    /// Highest attempt number announced per round.
    highest: BTreeMap<u64, u32>,
    open: Option<Open>,
    /// A restart said where the job resumes; the next announcement must match.
    resume: Option<(u64, u64, u32)>,
    /// Leaves so far: id → reason.
    departed: BTreeMap<String, String>,
    /// The `JobEnded` record, once seen.
    ended: Option<u64>,
    /// The job ended for want of members: the next coordinator start
    /// resumes it (record, reason).
    resumable: Option<(u64, String)>,
    /// Resumed failures.
    resumed: Vec<Resumed>,
    /// The first survivor list (by id, sorted) announced for each task, and
    /// where: a task is contributed to by one contributor set, ever.
    task_sets: BTreeMap<TaskDigest, (u64, Vec<String>)>,
    /// The contributors of each published task.
    published_sets: Vec<(TaskDigest, Vec<String>)>,
    /// Attempts that published nothing although at least t members revealed
    /// shares: the coordinator could unmask their sum privately.
    exposed: Vec<Exposure>,
    /// The epoch an epoch job's last setup set up, while the coordinator
    /// holds it too (dropped at a coordinator start, a new setup, or a slot
    /// abandoned for a missing masked input).
    epoch: Option<epoch::HeldEpoch>,
    /// Why no epoch is held, for an announcement that names one.
    epoch_gone: Option<String>,
    /// The participants' own referee, fed the logged signed outcomes: every
    /// announcement must pass the very check each participant runs. `None`
    /// once it cannot follow the log (the failure is reported once).
    referee: Option<fedcredit_referee::Referee<'c>>,
    /// The digest ([`fedcredit_crypto::secagg::outcome_digest`]) of each
    /// coordinator-signed outcome of the completed rounds, as logged: what
    /// every later announcement must list.
    outcome_digests: Vec<[u8; 32]>,
    attempts: Vec<AttemptReport>,
    departures: Vec<Departure>,
    problems: Vec<Failure>,
    starts: Vec<u64>,
    /// A record came before the first CoordinatorStarted (reported once).
    missing_start: bool,
    job_end: JobEnd,
}

/// An unpublished attempt whose logged reveals let the coordinator unmask.
#[derive(Debug)]
struct Exposure {
    seq: u64,
    round: u64,
    attempt: u32,
    revealers: usize,
    digest: TaskDigest,
    contributors: Vec<String>,
}

impl<'c> Verifier<'c> {
    fn new(consortium: &'c Consortium) -> Self {
        let t = consortium.protocol.thresholds;
        Self {
            ctx: Context {
                consortium,
                spec_hash: consortium.job.hash(),
                need: t.need(),
            },
            job: JobReplay::new(
                &consortium.job,
                fedcredit_referee::plan::noise_cohort(consortium),
            ),
            next_round: 0,
            highest: BTreeMap::new(),
            open: None,
            resume: None,
            departed: BTreeMap::new(),
            ended: None,
            resumable: None,
            resumed: Vec::new(),
            task_sets: BTreeMap::new(),
            published_sets: Vec::new(),
            exposed: Vec::new(),
            epoch: None,
            epoch_gone: None,
            referee: fedcredit_referee::Referee::new(consortium).ok(),
            outcome_digests: Vec::new(),
            attempts: Vec::new(),
            departures: Vec::new(),
            problems: Vec::new(),
            starts: Vec::new(),
            missing_start: false,
            job_end: JobEnd::Unfinished,
        }
    }

    fn problem(&mut self, seq: u64, check: Check, reason: impl Into<String>) {
        self.problems.push(Failure::new(seq, check, reason));
    }

    /// Marks the open attempt failed (keeping only its first failure).
    fn fail_open(&mut self, failure: Failure) {
        if let Some(open) = &mut self.open {
            if !open.failed {
                open.failed = true;
                self.attempts[open.line].status = AttemptStatus::Failed(failure);
            }
        } else {
            self.problems.push(failure);
        }
    }

    /// An attempt ends without publishing: if at least t members revealed
    /// shares, the coordinator could still unmask its sum. That is harmless
    /// only if the same task is published over the very same contributors
    /// (the same sum); [`Self::finish`] checks that once the log is read.
    fn note_unpublished(&mut self, seq: u64) {
        let t = self.ctx.consortium.protocol.thresholds.threshold();
        let Some(open) = &self.open else { return };
        if let Some(digest) = open.digest
            && open.state.revealers() >= t
        {
            let exposure = Exposure {
                seq,
                round: open.state.round,
                attempt: open.state.attempt,
                revealers: open.state.revealers(),
                digest,
                contributors: open.state.survivor_ids(&self.ctx.consortium.roster),
            };
            self.exposed.push(exposure);
        }
    }

    /// Ends the open attempt with `status` unless it already failed.
    fn close_open(&mut self, status: AttemptStatus) {
        if let Some(open) = self.open.take()
            && !open.failed
        {
            self.attempts[open.line].status = status;
        }
    }

    fn record(&mut self, e: &Entry) {
        let seq = e.body.seq;
        let Some(entry) = &e.body.entry else {
            self.problem(seq, Check::Record, "the record holds no entry");
            return;
        };
        if seq == 0 {
            match entry {
                log_body::Entry::JobStarted(j) => self.job_started(j),
                _ => self.problem(0, Check::JobStarted, "the first record must be JobStarted"),
            }
            return;
        }
        if let (Some(_), log_body::Entry::CoordinatorStarted(_)) = (self.ended, entry)
            && let Some((failed_at, reason)) = self.resumable.take()
        {
            // A failure for want of members: this start resumes the job.
            self.ended = None;
            self.job_end = JobEnd::Unfinished;
            self.resumed.push(Resumed {
                failed_at,
                reason,
                resumed_at: seq,
            });
        }
        if self.ended.is_some() {
            // A coordinator restarted after the end only says so; a member
            // may still announce that it leaves.
            match entry {
                log_body::Entry::CoordinatorStarted(cs) => self.coordinator_started(seq, cs),
                log_body::Entry::Participant(signed) => self.participant(seq, signed),
                _ => self.problem(
                    seq,
                    Check::Record,
                    format!("a {} record after the job ended", entry_name(entry)),
                ),
            }
            return;
        }
        if self.starts.is_empty()
            && !matches!(entry, log_body::Entry::CoordinatorStarted(_))
            && !self.missing_start
        {
            // Every coordinator process, the first included, says it started.
            self.missing_start = true;
            self.problem(
                seq,
                Check::Restart,
                format!(
                    "a {} record before any CoordinatorStarted record",
                    entry_name(entry)
                ),
            );
        }
        match entry {
            log_body::Entry::JobStarted(_) => {
                self.problem(seq, Check::Record, "a second JobStarted record");
            }
            log_body::Entry::CoordinatorStarted(cs) => self.coordinator_started(seq, cs),
            log_body::Entry::Announcement(signed) => self.announcement(seq, signed),
            log_body::Entry::Participant(signed) => self.participant(seq, signed),
            log_body::Entry::PhaseClosed(pc) => {
                let Some(open) = &mut self.open else {
                    self.problem(
                        seq,
                        Check::Record,
                        format!(
                            "closes the {} phase of round {} attempt {}, but no attempt is open",
                            pc.phase, pc.round, pc.attempt
                        ),
                    );
                    return;
                };
                if open.failed {
                    return;
                }
                if let Err(f) = open.state.phase_closed(&self.ctx, seq, pc) {
                    self.fail_open(f);
                    return;
                }
                let survivors = (pc.phase == Phase::MaskedInput.to_string())
                    .then_some(open.digest)
                    .flatten()
                    .map(|d| (d, open.state.survivor_ids(&self.ctx.consortium.roster)));
                if let Some(epoch) = open.state.take_new_epoch() {
                    self.hold_epoch(epoch);
                }
                if let Some((digest, set)) = survivors {
                    self.one_set_per_task(seq, digest, set);
                }
            }
            log_body::Entry::RoundCompleted(rc) => self.round_completed(seq, rc),
            log_body::Entry::RoundAborted(ra) => self.round_aborted(seq, ra),
            log_body::Entry::JobEnded(je) => self.job_ended(seq, je),
        }
    }

    /// Records the survivor list announced for `digest`; a second, different
    /// list for the same task fails: the difference of the two sums would be
    /// the vector of the members in one list and not the other.
    fn one_set_per_task(&mut self, seq: u64, digest: TaskDigest, set: Vec<String>) {
        match self.task_sets.get(&digest) {
            None => {
                self.task_sets.insert(digest, (seq, set));
            }
            Some((first, earlier)) if *earlier != set => {
                let why = format!(
                    "task {digest} gets the survivor list [{}], but record {first} announced \
                     [{}] for the same task: two sums of one task over different sets reveal \
                     what the members in one and not the other contributed",
                    set.join(", "),
                    earlier.join(", ")
                );
                self.fail_open(Failure::new(seq, Check::HiddenWork, why));
            }
            Some(_) => {}
        }
    }

    fn coordinator_started(&mut self, seq: u64, cs: &pb::CoordinatorStarted) {
        let first = self.starts.is_empty();
        self.starts.push(seq);
        // The first start of a new log replays nothing (and follows JobStarted).
        let replayed_ok =
            cs.replayed_records == seq || (first && seq == 1 && cs.replayed_records == 0);
        if !replayed_ok {
            self.problem(
                seq,
                Check::Restart,
                format!(
                    "claims to have replayed {} records, {seq} precede it",
                    cs.replayed_records
                ),
            );
        }
        self.note_unpublished(seq);
        self.close_open(AttemptStatus::Interrupted { record: seq });
        self.open = None;
        // A restarted coordinator holds no epoch: the next attempt sets one up.
        self.drop_epoch(|e| {
            format!(
                "{} was dropped by the coordinator start at record {seq}",
                e.name()
            )
        });
        if self.ended.is_some() {
            return;
        }
        if cs.resume_round != self.next_round {
            self.problem(
                seq,
                Check::Restart,
                format!(
                    "resumes at round {}, but {} rounds completed",
                    cs.resume_round, self.next_round
                ),
            );
        } else if let Some(h) = self.highest.get(&cs.resume_round)
            && cs.resume_attempt <= *h
        {
            self.problem(
                seq,
                Check::Restart,
                format!(
                    "resumes round {} with attempt {}, which was already used (keys must be fresh)",
                    cs.resume_round, cs.resume_attempt
                ),
            );
        }
        self.resume = Some((seq, cs.resume_round, cs.resume_attempt));
    }

    fn announcement(&mut self, seq: u64, signed: &pb::Signed) {
        let c = self.ctx.consortium;
        // The round and attempt, even if the signature fails, to report the line.
        let (message, signature) = match envelope::open_coordinator(signed, c.roster.coordinator())
        {
            Ok((m, _checked)) => (Some(m), None),
            Err(e) => (
                pb::CoordinatorMessage::decode(signed.payload.clone()).ok(),
                Some(e),
            ),
        };
        let Some(message) = message else {
            self.problem(
                seq,
                Check::Announcement,
                "the announcement is not a coordinator message",
            );
            return;
        };
        let (round, attempt) = (message.round, message.attempt);
        let announcement = fedcredit_crypto::secagg::announcement_digest(&signed.payload);
        let expected_attempt = self.highest.get(&round).map_or(0, |h| h.saturating_add(1));
        let skipped = (attempt > expected_attempt).then(|| {
            Failure::new(
                seq,
                Check::HiddenWork,
                format!(
                    "round {round} attempt {attempt} is announced, but the log's last attempt of \
                     round {round} is {}: attempt numbers skip, so attempts may have run \
                     without being logged",
                    self.highest
                        .get(&round)
                        .map_or_else(|| "none".to_owned(), ToString::to_string)
                ),
            )
        });
        self.note_unpublished(seq);
        if let Some(open) = &self.open
            && !open.failed
        {
            let (r, a) = (open.state.round, open.state.attempt);
            self.fail_open(Failure::new(
                seq,
                Check::Sequence,
                format!(
                    "round {r} attempt {a} was abandoned: round {round} attempt {attempt} was announced before it completed or aborted, with no coordinator restart"
                ),
            ));
        }
        self.open = None;
        let line = self.attempts.len();
        self.attempts.push(AttemptReport {
            round,
            attempt,
            announcement: seq,
            status: AttemptStatus::Unfinished {
                why: "the log ends before the attempt completes or aborts".into(),
            },
        });
        let resume = self.resume.take();
        let result = self.check_announcement(seq, &message, signature, resume);
        // A skip the announcement's own checks already explain (a restart
        // that promised another attempt) is reported once, by them.
        if let (Some(f), Ok(_)) = (skipped, &result) {
            self.problems.push(f);
        }
        let highest = self.highest.entry(round).or_insert(attempt);
        *highest = (*highest).max(attempt);
        // The epoch and slot: only once the rest holds (a refused
        // announcement uses no slot of the held epoch).
        let result = result.and_then(|plan| match &message.body {
            Some(pb::coordinator_message::Body::Announce(a)) => {
                Ok((plan, self.epoch_announcement(seq, a)?))
            }
            _ => Ok((plan, None)),
        });
        match result {
            Ok((plan, epoch)) => {
                let digest = match &message.body {
                    Some(pb::coordinator_message::Body::Announce(a)) => {
                        a.task.clone().map(|task| {
                            fedcredit_referee::task_digest(
                                &c.job,
                                &fedcredit_referee::RoundPlan {
                                    dimension: a.dimension as usize,
                                    codec: plan.codec,
                                    task,
                                },
                            )
                        })
                    }
                    _ => None,
                };
                let mut state =
                    AttemptState::new(round, attempt, announcement, Some(plan.codec), plan.words);
                if let Some(epoch) = epoch {
                    state = state.with_epoch(epoch);
                }
                // The list an earlier attempt of this task announced, else
                // the one the job's cohort rules fix.
                let roster = &c.roster;
                state.exact = digest
                    .and_then(|d| self.task_sets.get(&d))
                    .and_then(|(_, ids)| roster.indices("survivor list", ids).ok())
                    .or_else(|| self.referee.as_ref().and_then(|r| r.exact()));
                self.open = Some(Open {
                    line,
                    state,
                    digest,
                    failed: false,
                });
            }
            Err(f) => {
                self.attempts[line].status = AttemptStatus::Failed(f);
                // Skip the attempt's records: it cannot be replayed.
                self.open = Some(Open {
                    line,
                    state: AttemptState::new(round, attempt, announcement, None, 0),
                    digest: None,
                    failed: true,
                });
            }
        }
    }

    fn participant(&mut self, seq: u64, signed: &pb::Signed) {
        let c = self.ctx.consortium;
        let opened = match envelope::open(signed, &c.roster) {
            Ok(o) => o,
            Err(e) => {
                self.fail_open(Failure::new(
                    seq,
                    Check::Signature,
                    format!("a participant message: {e}"),
                ));
                return;
            }
        };
        let who = opened.sender.id.to_string();
        let message = &opened.message;
        if message.job_id != c.job.id {
            self.fail_open(Failure::new(
                seq,
                Check::Binding,
                format!(
                    "{who}'s {} message is for job {:?}, not {:?}",
                    body_name(message.body.as_ref()),
                    message.job_id,
                    c.job.id
                ),
            ));
            return;
        }
        if let Some(Body::Leave(l)) = &message.body {
            let reason = pb::ReasonCode::label_of(l.code).to_owned();
            self.departed.insert(who.clone(), reason.clone());
            self.departures.push(Departure {
                record: seq,
                participant: who,
                reason,
            });
            return;
        }
        if self.ended.is_some() {
            self.problem(
                seq,
                Check::Record,
                format!(
                    "a {} message from {who} after the job ended",
                    body_name(message.body.as_ref())
                ),
            );
            return;
        }
        let Some(open) = &mut self.open else {
            self.problem(
                seq,
                Check::Phase,
                format!(
                    "a {} message from {who} for round {} attempt {}, but no attempt is open",
                    body_name(message.body.as_ref()),
                    message.round,
                    message.attempt
                ),
            );
            return;
        };
        if open.failed {
            return;
        }
        let sender = opened.sender;
        if let Err(f) = open.state.participant(&self.ctx, seq, message, sender) {
            self.fail_open(f);
        }
    }

    fn round_completed(&mut self, seq: u64, rc: &pb::RoundCompleted) {
        let Some(mut open) = self.open.take() else {
            self.problem(
                seq,
                Check::Record,
                format!(
                    "completes round {} attempt {}, but no attempt is open",
                    rc.round, rc.attempt
                ),
            );
            return;
        };
        if (rc.round, rc.attempt) != (open.state.round, open.state.attempt) {
            let f = Failure::new(
                seq,
                Check::Binding,
                format!(
                    "completes round {} attempt {}, but round {} attempt {} is open",
                    rc.round, rc.attempt, open.state.round, open.state.attempt
                ),
            );
            self.open = Some(open);
            self.fail_open(f);
            self.open = None;
            return;
        }
        // A completed round is the next round, whatever its checks say.
        self.next_round = rc.round + 1;
        match &rc.outcome {
            // A sum the job refused is published but absorbed by nobody.
            Some(_) if rc.progress_json.is_empty() => {}
            Some(outcome) => {
                self.outcome_digests
                    .push(fedcredit_crypto::secagg::outcome_digest(&outcome.payload));
                if let Some(referee) = &mut self.referee
                    && let Err(e) = referee.absorb_signed(outcome)
                {
                    self.referee = None;
                    self.problem(
                        seq,
                        Check::Task,
                        format!("the participants' referee refuses the published outcome: {e}"),
                    );
                }
            }
            None => {
                self.referee = None;
                self.problem(
                    seq,
                    Check::Outcome,
                    "a completed round without its signed outcome",
                );
            }
        }
        if let Some(digest) = open.digest {
            let mut set = rc.contributors.clone();
            set.sort();
            self.published_sets.push((digest, set));
        }
        if open.failed {
            // Follow the published sum so that later rounds can still be checked.
            let published = words::from_bytes("published sum", &rc.sum)
                .ok()
                .and_then(|w| open.state.codec()?.decode(&w).ok());
            self.job.follow_unverified(published);
            return;
        }
        let roster = &self.ctx.consortium.roster;
        let outcome = open.state.completed(&self.ctx, seq, rc).and_then(|sum| {
            self.job
                .absorb(&sum, &rc.progress_json)
                .map_err(|(check, why)| Failure::new(seq, check, why))
        });
        self.attempts[open.line].status = match outcome {
            Ok(()) => AttemptStatus::Ok {
                record: seq,
                contributors: open.state.contributors(roster),
                dropped: open.state.dropped(roster),
                bad_reveals: open.state.bad_reveals(roster),
            },
            Err(f) => {
                if f.check != Check::Progress {
                    let published = words::from_bytes("published sum", &rc.sum)
                        .ok()
                        .and_then(|w| open.state.codec()?.decode(&w).ok());
                    self.job.follow_unverified(published);
                }
                AttemptStatus::Failed(f)
            }
        };
    }

    fn round_aborted(&mut self, seq: u64, ra: &pb::RoundAborted) {
        self.note_unpublished(seq);
        let Some(mut open) = self.open.take() else {
            self.problem(
                seq,
                Check::Record,
                format!(
                    "aborts round {} attempt {}, but no attempt is open",
                    ra.round, ra.attempt
                ),
            );
            return;
        };
        if open.failed {
            return;
        }
        // A slot with a missing masked input is never unmasked: the
        // coordinator drops the epoch, and the next attempt sets up anew.
        if let Some(e) = open.state.abandons_epoch() {
            let why = format!(
                "{} was dropped when record {seq} abandoned slot {} (round {} attempt {}) for a \
                 missing masked input",
                e.name(),
                open.state.epoch_slot().unwrap_or_default(),
                ra.round,
                ra.attempt
            );
            self.drop_epoch(|_| why);
        }
        self.attempts[open.line].status = match open.state.aborted(&self.ctx, seq, ra) {
            Ok(j) => AttemptStatus::Aborted {
                record: seq,
                phase: j.phase,
                justification: j.justification,
                reason: ra.reason.clone(),
            },
            Err(f) => AttemptStatus::Failed(f),
        };
    }

    fn job_ended(&mut self, seq: u64, je: &pb::JobEnded) {
        self.ended = Some(seq);
        if je.resumable {
            if je.ok {
                self.problem(seq, Check::End, "a finished job cannot be marked resumable");
            } else {
                self.resumable = Some((seq, je.reason.clone()));
            }
        }
        self.note_unpublished(seq);
        if let Some(open) = &self.open
            && !open.failed
        {
            if je.ok {
                let (r, a) = (open.state.round, open.state.attempt);
                self.fail_open(Failure::new(
                    seq,
                    Check::End,
                    format!(
                        "the job is declared finished while round {r} attempt {a} is still open"
                    ),
                ));
            } else {
                self.close_open(AttemptStatus::Stopped {
                    record: seq,
                    reason: je.reason.clone(),
                });
            }
        }
        self.open = None;
        if !je.ok && je.reason.trim().is_empty() {
            self.problem(
                seq,
                Check::End,
                "the job is declared failed without a reason",
            );
        }
        let model_verified = match self.job.end(je.ok, &je.model_json) {
            Ok(v) => v,
            Err((check, why)) => {
                self.problem(seq, check, why);
                false
            }
        };
        self.job_end = JobEnd::Ended {
            record: seq,
            ok: je.ok,
            reason: je.reason.clone(),
            model_verified,
        };
    }

    fn finish(
        mut self,
        log_end: LogEnd,
        privacy: Option<PrivacyReport>,
        records: u64,
        good: u64,
        total: u64,
    ) -> Report {
        self.note_unpublished(records);
        for e in std::mem::take(&mut self.exposed) {
            let republished = self
                .published_sets
                .iter()
                .any(|(d, set)| *d == e.digest && *set == e.contributors);
            if !republished {
                self.problem(
                    e.seq,
                    Check::HiddenWork,
                    format!(
                        "round {} attempt {} published nothing, yet {} members revealed shares \
                         (the threshold is {}): the coordinator can unmask its sum over [{}], \
                         and the same task is never published over that set",
                        e.round,
                        e.attempt,
                        e.revealers,
                        self.ctx.consortium.protocol.thresholds.threshold(),
                        e.contributors.join(", ")
                    ),
                );
            }
        }
        if let Some(open) = self.open.take()
            && !open.failed
        {
            let why = match &log_end {
                LogEnd::Clean => "the log ends before the attempt completes or aborts".into(),
                LogEnd::Truncated { record, .. } => {
                    format!("the log is truncated at record {record}")
                }
                LogEnd::Broken { record, .. } => {
                    format!("the log is broken at record {record}")
                }
            };
            self.attempts[open.line].status = AttemptStatus::Unfinished { why };
        }
        if records == 0 && matches!(log_end, LogEnd::Clean) {
            self.problem(0, Check::JobStarted, "the log is empty");
        }
        let mut summary = Summary {
            attempts: self.attempts.len(),
            restarts: self.starts.len().saturating_sub(1),
            problems: self.problems.len(),
            ..Summary::default()
        };
        for a in &self.attempts {
            match a.status {
                AttemptStatus::Ok { .. } => summary.ok += 1,
                AttemptStatus::Aborted { .. } => summary.aborted += 1,
                AttemptStatus::Failed(_) => summary.failed += 1,
                AttemptStatus::Interrupted { .. } => summary.interrupted += 1,
                AttemptStatus::Stopped { .. } => summary.stopped += 1,
                AttemptStatus::Unfinished { .. } => summary.unfinished += 1,
            }
        }
        let c = self.ctx.consortium;
        let mut report = Report {
            verified: false,
            job_id: c.job.id.clone(),
            kind: JobReplay::kind(&c.job).into(),
            members: c.roster.len(),
            records,
            good_bytes: good,
            total_bytes: total,
            coordinator_starts: self.starts,
            attempts: self.attempts,
            departures: self.departures,
            problems: self.problems,
            log_end,
            resumed: self.resumed,
            job_end: self.job_end,
            privacy,
            summary,
        };
        report.verified = report.ok();
        report
    }
}

/// The kind of a record's entry, for messages.
pub(crate) fn entry_name(entry: &log_body::Entry) -> &'static str {
    match entry {
        log_body::Entry::Participant(_) => "participant message",
        log_body::Entry::JobStarted(_) => "JobStarted",
        log_body::Entry::Announcement(_) => "announcement",
        log_body::Entry::PhaseClosed(_) => "PhaseClosed",
        log_body::Entry::RoundCompleted(_) => "RoundCompleted",
        log_body::Entry::RoundAborted(_) => "RoundAborted",
        log_body::Entry::JobEnded(_) => "JobEnded",
        log_body::Entry::CoordinatorStarted(_) => "CoordinatorStarted",
    }
}
