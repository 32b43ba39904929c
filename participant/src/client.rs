//! Drives rounds against the coordinator: poll, then the five phases with
//! the `fedcredit_crypto::secagg::client` types, verifying every relayed
//! message before using it.
//!
//! In a job with `[protocol] setup = "epoch"` an attempt is instead a slot
//! of an epoch (`fedcredit_crypto::secagg::epoch`): an announcement with an
//! empty `epoch` sets one up (advertise keys, deal `EpochShares`, open the
//! others') and uses its slot 0; one naming the epoch held uses its `slot`:
//! a masked input and a `SlotReveal` only. The epoch lives in memory for
//! the job's run; a slot of an epoch not held is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::ring::Ring;
use fedcredit_crypto::secagg::client::{AdvertiseKeys, Confirmation, DealtToMe, SurvivorDigest};
use fedcredit_crypto::secagg::epoch::{
    self, EpochDealtToMe, EpochKeys, EpochMember, Slot, Slots, TaskLedger,
};
use fedcredit_crypto::secagg::{
    self, Advertisement, PartyIndex, SessionBinding, announcement_digest, outcome_digest,
};
use fedcredit_proto::chunks::{self, ChunkedReplyError};
use fedcredit_proto::envelope::{self, CheckedCoordinator};
use fedcredit_proto::epoch::{self as epoch_wire, EpochDealtShares};
use fedcredit_proto::roster::{Member, ParticipantId, Roster};
use fedcredit_proto::shares::{self, DealtShares};
use fedcredit_proto::v1::coordinator_client::CoordinatorClient;
use fedcredit_proto::v1::{self as pb, coordinator_message, message::Body};
use fedcredit_proto::words;
use fedcredit_referee::consortium::Consortium;
use rand::SeedableRng;
use rand::rngs::OsRng;
use tokio::time::{Instant, sleep};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::{Instrument, info, info_span, warn};

use fedcredit_referee::history::Replayed;
use fedcredit_referee::{Referee, RoundPlan, TaskDigest};

use crate::ParticipantError;
use crate::contribution::Contributor;
use crate::journal::{Journal, TaskContributors};
use crate::metrics::METRICS;

/// Where a participant process kills itself, to test dropout recovery with
/// real processes (`fedcredit participant --crash-at`). Never set in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After advertising keys, before sending shares: in U1, not U2.
    ShareKeys,
    /// After sending the masked input, before confirming survivors: in U3, not U4.
    MaskedInput,
    /// Half-way through sending a chunked masked input: its stream breaks
    /// off, so its partial input must not stay in the sum.
    MidInput,
    /// After confirming survivors (in an epoch's slot: after the survivor
    /// list came back), before revealing shares: in U4, not U5.
    Unmask,
}

/// How a participant runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This participant's id.
    pub id: ParticipantId,
    /// The coordinator's URL.
    pub coordinator: String,
    /// The consortium file: roster, keys, thresholds, the job.
    pub consortium: Consortium,
    /// How long to keep retrying an unreachable coordinator.
    pub connect_timeout: Duration,
    /// Test hook: die at this point of the first round.
    pub crash_at: Option<CrashPoint>,
    /// Most words per masked-input chunk: an input longer than this is
    /// streamed in chunks (`SubmitMaskedChunks`), so no message is larger
    /// than one chunk. At most [`fedcredit_proto::chunks::MAX_CHUNK_WORDS`]
    /// (the coordinator refuses larger requests); small in tests.
    pub chunk_words: usize,
    /// Where to journal every message this participant signs (see
    /// [`crate::journal`]); `None` keeps the journal in memory, so its
    /// promises (one contributor set per task, keys never reused) hold for
    /// this process only. The daemon always gives a file.
    pub journal: Option<std::path::PathBuf>,
    /// Mutual TLS with the coordinator (`https://` URL); `None` dials
    /// plaintext (`http://`, which the config allows only on loopback).
    pub tls: Option<fedcredit_transport::client::ClientTls>,
}

/// A round this participant completed.
#[derive(Clone, Debug)]
pub struct RoundSeen {
    /// The round.
    pub round: u64,
    /// The attempt that completed.
    pub attempt: u32,
    /// The published sum, decoded.
    pub sum: Vec<f64>,
    /// Whose inputs are in it.
    pub contributors: Vec<String>,
    /// The coordinator-signed outcome as received and checked: every later
    /// announcement must list this very outcome (its digest, which the
    /// check took) for this round.
    pub outcome: CheckedCoordinator,
}

/// What a participant saw of the job.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Completed rounds this participant took part in, in order.
    pub rounds: Vec<RoundSeen>,
    /// The job's result as this participant replayed it from the signed
    /// outcomes of every round (set when the job finished).
    pub result: Option<JobResult>,
}

/// The job's result, derived by the participant itself (the referee's
/// replay of every published round), never taken from the coordinator.
#[derive(Clone, Debug)]
pub struct JobResult {
    /// Every published round, replayed.
    pub published: Vec<std::sync::Arc<fedcredit_referee::Published>>,
    /// The fitted model of a model job.
    pub model: Option<fedcredit_model::job::FittedModel>,
    /// Whose rows are in it.
    pub membership: fedcredit_referee::Membership,
}

/// Runs the participant until the job finishes, fails, or `shutdown` resolves.
pub async fn run(
    settings: Settings,
    key: IdentityKey,
    contributor: &mut dyn Contributor,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, ParticipantError> {
    let me = settings
        .consortium
        .roster
        .member(settings.id.as_str())?
        .clone();
    if me.key != key.public() {
        return Err(ParticipantError::KeyMismatch {
            id: me.id.to_string(),
            consortium: settings.consortium.path.clone(),
        });
    }
    let channel = fedcredit_transport::client::channel(
        &settings.coordinator,
        settings.tls.clone(),
        Duration::from_secs(5),
    )
    .map_err(|e| ParticipantError::Unreachable {
        url: settings.coordinator.clone(),
        reason: e.to_string(),
    })?;
    let grpc = CoordinatorClient::new(channel)
        .max_decoding_message_size(1 << 30)
        .max_encoding_message_size(1 << 30);
    let journal = match &settings.journal {
        Some(path) => Journal::open(path)?,
        None => Journal::in_memory(),
    };
    let mut p = Participant {
        settings,
        key,
        me,
        grpc,
        journal: std::sync::Mutex::new(journal),
        epoch: None,
        ledger: TaskLedger::new(),
        replayed: None,
    };
    let result = tokio::select! {
        r = p.run(contributor) => r,
        () = shutdown => Err(ParticipantError::ShutDown),
    };
    if matches!(result, Err(ParticipantError::ShutDown))
        && let Ok(journal) = p.journal()
    {
        info!(
            "stopped before the job finished; {}; starting again with it carries on",
            journal.summary()
        );
    }
    result
}

struct Participant {
    settings: Settings,
    key: IdentityKey,
    me: Member,
    grpc: CoordinatorClient<Channel>,
    /// Written while sealing, which happens while `grpc` is borrowed.
    journal: std::sync::Mutex<Journal>,
    /// The epoch this member holds (`[protocol] setup = "epoch"`), kept
    /// across the rounds of the job until the coordinator sets up another.
    /// Never persisted: after a restart a member holds none, and skips
    /// slot rounds until the next setup.
    epoch: Option<EpochMember>,
    /// The contributor set each task was revealed for, across epochs (the
    /// journal keeps the same promise across restarts).
    ledger: TaskLedger,
    /// The published outcomes of the last announcement that passed the
    /// referee, as replayed: the next announcement's are checked from there.
    replayed: Option<Replayed>,
}

/// Runs `f`, a member's local computation (a pass over its rows may take
/// minutes), without stalling the connection meanwhile: on a multi-thread
/// runtime this worker first hands its other tasks (the HTTP/2 connection,
/// which must answer the coordinator's keepalive pings) to another thread.
/// Elsewhere (a current-thread runtime, as in tests) `f` just runs.
fn local_work<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// How a round ended for this participant, short of success.
enum RoundEnd {
    /// Leave the job and stop.
    Fatal(ParticipantError),
    /// Give up this attempt and poll again.
    Skip(ParticipantError),
}

/// Why [`Participant::replay_listed`] could not replay a listed history.
enum Unlisted {
    /// The referee refuses an outcome.
    Referee(fedcredit_referee::RefereeError),
    /// The outcome of this round is not the one the list names.
    Differs(usize),
    /// An outcome could not be fetched.
    Fetch(RoundEnd),
}

impl From<ParticipantError> for RoundEnd {
    fn from(e: ParticipantError) -> Self {
        RoundEnd::Skip(e)
    }
}

impl From<fedcredit_proto::WireError> for RoundEnd {
    fn from(e: fedcredit_proto::WireError) -> Self {
        RoundEnd::Skip(e.into())
    }
}

/// Reads a coordinator-signed answer sent in pieces (`PollChunks`,
/// `UnmaskChunks`) and puts the envelope back together. A piece out of
/// order, repeated, past the end or over `limit`, or a stream that ends
/// short, is the inner error (the answer is void); a failed call or a
/// stream broken by the transport is the outer `Status`, as for a unary
/// call. The caller checks the envelope's signature as before.
async fn assemble(
    mut stream: tonic::Streaming<pb::SignedChunk>,
    what: &'static str,
    limit: u64,
) -> Result<Result<pb::Signed, ChunkedReplyError>, Status> {
    let mut answer = chunks::Assembler::new(what, limit);
    while let Some(piece) = stream.message().await? {
        if let Err(e) = answer.push(piece) {
            return Ok(Err(e));
        }
    }
    Ok(answer.finish())
}

/// An RPC's failure: a coordinator that crashed or cannot be reached is
/// "unreachable" (the call never got an answer), not "refused".
fn refused(url: &str, rpc: &'static str, s: Status) -> ParticipantError {
    if let Some(e) = tls_refused(url, &s) {
        return e;
    }
    let transport = matches!(s.code(), Code::Unavailable | Code::Cancelled)
        || (s.code() == Code::Unknown && s.message().contains("transport error"));
    if transport {
        return ParticipantError::Unreachable {
            url: url.to_owned(),
            reason: format!("{rpc}: {}", s.message()),
        };
    }
    ParticipantError::Refused {
        rpc,
        status: format!("{:?}: {}", s.code(), s.message()),
    }
}

/// A failed TLS handshake behind a status, as an error that says what to
/// fix. Not retried: a certificate that was refused stays refused.
fn tls_refused(url: &str, s: &Status) -> Option<ParticipantError> {
    fedcredit_transport::tls_failure(s).map(|f| ParticipantError::Tls {
        url: url.to_owned(),
        failure: f.to_string(),
    })
}

impl Participant {
    /// Signs a message; every message but a poll is journaled (durably)
    /// before it can be sent.
    fn seal(&self, round: u64, attempt: u32, body: Body) -> Result<pb::Signed, ParticipantError> {
        self.seal_with(round, attempt, body, None)
    }

    /// [`Self::seal`], journaling the task and contributor set a masked
    /// input or a confirmation commits to.
    fn seal_with(
        &self,
        round: u64,
        attempt: u32,
        body: Body,
        contribution: Option<&TaskContributors>,
    ) -> Result<pb::Signed, ParticipantError> {
        let phase =
            (!matches!(body, Body::Poll(_) | Body::FetchOutcome(_))).then(|| body.phase_name());
        let message = pb::Message {
            job_id: self.settings.consortium.job.id.clone(),
            round,
            attempt,
            sender: self.me.id.to_string(),
            body: Some(body),
        };
        let (signed, digest) = envelope::seal_digested(&self.key, &message);
        if let Some(phase) = phase {
            let mut journal = self.journal()?;
            journal.record(
                &message.job_id,
                round,
                attempt,
                phase,
                &digest,
                &signed.signature,
                contribution,
            )?;
        }
        Ok(signed)
    }

    /// The journal, locked.
    fn journal(&self) -> Result<std::sync::MutexGuard<'_, Journal>, ParticipantError> {
        self.journal.lock().map_err(|_| ParticipantError::Refused {
            rpc: "journal",
            status: "the journal lock is poisoned".into(),
        })
    }

    fn advertised_before(&self, round: u64, attempt: u32) -> bool {
        self.journal.lock().map_or(true, |j| {
            j.advertised(&self.settings.consortium.job.id, round, attempt)
        })
    }

    /// The contributor set this participant confirmed for `task`, if any.
    fn confirmed_for(&self, task: &TaskDigest) -> Result<Option<Vec<String>>, ParticipantError> {
        let journal = self.journal()?;
        Ok(journal
            .confirmed(&self.settings.consortium.job.id, task)
            .map(<[String]>::to_vec))
    }

    /// Tells the coordinator that this participant leaves, with the reason
    /// code of `e` only (the details stay in this participant's log).
    async fn leave_with(
        &mut self,
        at: (u64, u32),
        e: &ParticipantError,
    ) -> Result<(), ParticipantError> {
        warn!(round = at.0, attempt = at.1, error = %e, code = e.reason_code().label(), "leaving the job");
        let leave = self.seal(
            at.0,
            at.1,
            Body::Leave(pb::Leave {
                code: e.reason_code() as i32,
            }),
        )?;
        let mut grpc = self.grpc.clone();
        if let Err(s) = self.within("Leave", grpc.leave(leave)).await {
            warn!(error = %s, "could not tell the coordinator that this participant leaves");
        }
        Ok(())
    }

    /// Awaits one phase call, for at most two phase deadlines and a margin:
    /// a coordinator that never answers cannot hold a member forever.
    async fn within<T>(
        &self,
        rpc: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<tonic::Response<T>, ParticipantError> {
        let limit = self.settings.consortium.protocol.phase_deadline * 2 + Duration::from_secs(30);
        match tokio::time::timeout(limit, call).await {
            Ok(r) => r.map_err(|s| refused(&self.settings.coordinator, rpc, s)),
            Err(_) => Err(ParticipantError::Refused {
                rpc,
                status: format!("no answer within {} s", limit.as_secs()),
            }),
        }
    }

    async fn run(&mut self, contributor: &mut dyn Contributor) -> Result<Report, ParticipantError> {
        let mut report = Report::default();
        let mut seen: Option<(u64, u32)> = None;
        let mut used = BTreeSet::new();
        let mut latest_round = 0u64;
        let mut told_departures = BTreeSet::new();
        let mut last_contact = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut last_said: Option<Instant> = None;
        loop {
            let (round, attempt) = seen.unwrap_or((0, 0));
            let poll = self.seal(round, attempt, Body::Poll(pb::Poll::now(seen.is_none())))?;
            let answer = match self.grpc.poll_chunks(poll).await {
                Ok(r) => assemble(r.into_inner(), "poll answer", chunks::MAX_ANSWER_BYTES).await,
                Err(s) => Err(s),
            };
            let signed = match answer {
                Ok(pieced) => {
                    if last_said.take().is_some() {
                        info!(coordinator = %self.settings.coordinator, "the coordinator is reachable again");
                    }
                    last_contact = Instant::now();
                    backoff = Duration::from_millis(50);
                    pieced.map_err(fedcredit_proto::WireError::from)?
                }
                Err(s) if s.code() == Code::DeadlineExceeded => {
                    // The coordinator held the poll and had nothing to
                    // announce: it is alive; poll again at once.
                    last_contact = Instant::now();
                    continue;
                }
                Err(s) if tls_refused(&self.settings.coordinator, &s).is_some() => {
                    return Err(refused(&self.settings.coordinator, "Poll", s));
                }
                Err(s)
                    if matches!(
                        s.code(),
                        Code::Unavailable | Code::Unknown | Code::Cancelled
                    ) =>
                {
                    METRICS.coordinator_reachable.set(0);
                    let waited = last_contact.elapsed();
                    if waited > self.settings.connect_timeout {
                        return Err(ParticipantError::Unreachable {
                            url: self.settings.coordinator.clone(),
                            reason: s.message().to_owned(),
                        });
                    }
                    // Said at the default level, once at first and then every
                    // 10 s: an operator sees what it waits for and until when.
                    if last_said.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10)) {
                        last_said = Some(Instant::now());
                        warn!(
                            coordinator = %self.settings.coordinator,
                            error = %s.message(),
                            next_attempt_in = ?backoff,
                            gives_up_in = ?self.settings.connect_timeout.saturating_sub(waited),
                            "the coordinator is unreachable; retrying (connect_timeout_secs = {} without contact)",
                            self.settings.connect_timeout.as_secs_f64()
                        );
                    }
                    sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
                Err(s) => return Err(refused(&self.settings.coordinator, "Poll", s)),
            };
            METRICS.coordinator_reachable.set(1);
            let (message, _checked) =
                envelope::open_coordinator(&signed, self.settings.consortium.roster.coordinator())?;
            if message.job_id != self.settings.consortium.job.id {
                return Err(ParticipantError::JobFailed(format!(
                    "the coordinator runs job {:?}, this participant joined {:?}",
                    message.job_id, self.settings.consortium.job.id
                )));
            }
            match message.body {
                Some(coordinator_message::Body::Finished(f)) if f.ok => {
                    report.result = Some(self.replay_result(&f, &report).await?);
                    info!(job = %message.job_id, rounds = report.rounds.len(), "job finished; its result replayed and checked");
                    return Ok(report);
                }
                Some(coordinator_message::Body::Finished(f)) => {
                    return Err(self.ended_without_success(f, &report).await);
                }
                Some(coordinator_message::Body::Offer(_)) => {
                    return Err(ParticipantError::JobFailed(
                        "the coordinator answered a poll with a job offer".into(),
                    ));
                }
                Some(coordinator_message::Body::Announce(a)) => {
                    let at = (message.round, message.attempt);
                    seen = Some(at);
                    for d in &a.departed {
                        if told_departures.insert(d.participant.clone()) {
                            warn!(participant = %d.participant, reason = pb::ReasonCode::label_of(d.code), "a member left the job");
                        }
                    }
                    if at.0 < latest_round {
                        warn!(
                            round = at.0,
                            attempt = at.1,
                            latest_round,
                            "refusing an announcement of an earlier round (a replay)"
                        );
                        continue;
                    }
                    latest_round = at.0;
                    if !used.insert(at) || self.advertised_before(at.0, at.1) {
                        warn!(
                            round = at.0,
                            attempt = at.1,
                            "refusing a round attempt already taken part in: keys are never reused"
                        );
                        continue;
                    }
                    // The history an announcement lists must hold the very
                    // outcomes this participant received: a coordinator that
                    // shows members different histories is caught here.
                    if let Some(r) = report.rounds.iter().find(|r| {
                        a.previous_outcome_digests
                            .get(r.round as usize)
                            .is_some_and(|d| d[..] != r.outcome.digest())
                    }) {
                        let e = ParticipantError::RefusedRound {
                            round: at.0,
                            attempt: at.1,
                            reason: format!(
                                "the announcement shows another published result for round {} \
                                 than the one the coordinator sent this participant",
                                r.round
                            ),
                        };
                        self.leave_with(at, &e).await?;
                        return Err(e);
                    }
                    let span =
                        info_span!("round", job = %message.job_id, round = at.0, attempt = at.1);
                    let started = Instant::now();
                    let caught_up = self
                        .catch_up(at, &a.previous_outcome_digests, &report)
                        .instrument(span.clone())
                        .await;
                    let attempted = match caught_up {
                        Ok(()) => {
                            self.round(
                                at.0,
                                at.1,
                                &a,
                                announcement_digest(&signed.payload),
                                contributor,
                            )
                            .instrument(span)
                            .await
                        }
                        Err(e) => Err(e),
                    };
                    match attempted {
                        Ok(r) => {
                            METRICS.rounds_completed.inc();
                            METRICS
                                .round_seconds
                                .observe(started.elapsed().as_secs_f64());
                            info!(
                                round = r.round,
                                attempt = r.attempt,
                                contributors = r.contributors.len(),
                                "round complete"
                            );
                            contributor.round_finished(r.round, &r.sum);
                            report.rounds.push(r);
                        }
                        Err(RoundEnd::Skip(e)) => {
                            METRICS.attempts_not_completed.inc();
                            warn!(round = at.0, attempt = at.1, error = %e, "round attempt not completed")
                        }
                        Err(RoundEnd::Fatal(e)) => {
                            self.leave_with(at, &e).await?;
                            return Err(self.left_after(e));
                        }
                    }
                }
                Some(coordinator_message::Body::Outcome(_)) | None => {
                    return Err(ParticipantError::RefusedRound {
                        round: message.round,
                        attempt: message.attempt,
                        reason: "the coordinator answered a poll with neither an announcement nor the job's end".into(),
                    });
                }
            }
        }
    }

    /// The error for leaving the job: when this member's own contribution
    /// failed after rounds were published, it carries those rounds (as
    /// replayed from the last announcement that passed the referee). A
    /// member that leaves because the coordinator broke a rule keeps none.
    fn left_after(&self, e: ParticipantError) -> ParticipantError {
        match &self.replayed {
            Some(r)
                if matches!(e, ParticipantError::Contribution { .. })
                    && !r.history().is_empty() =>
            {
                ParticipantError::LeftAfterPublished {
                    source: Box::new(e),
                    published: r.history().to_vec(),
                }
            }
            _ => e,
        }
    }

    /// The error for a job the coordinator ended without success, with the
    /// rounds it had published, replayed and checked as a finished job's
    /// are. If they do not check out, the failure says so and keeps none.
    async fn ended_without_success(&self, f: pb::JobFinished, report: &Report) -> ParticipantError {
        if f.outcome_digests.is_empty() {
            return ParticipantError::JobFailed(f.reason);
        }
        let bad = |reason: String| format!("the coordinator ends the job, but {reason}");
        let c = self.settings.consortium.clone();
        match self.replay_published(&c, &f, report, bad).await {
            Ok(referee) => ParticipantError::JobEnded {
                reason: f.reason,
                published: referee.history().to_vec(),
            },
            Err(ParticipantError::JobFailed(why)) => {
                ParticipantError::JobFailed(format!("{}; {why}", f.reason))
            }
            Err(e) => ParticipantError::JobFailed(format!("{}; {e}", f.reason)),
        }
    }

    /// Replays the outcomes a job's end lists (by digest): they must hold the
    /// very outcomes this participant received and follow the job's rules;
    /// any it did not receive is fetched and checked against its digest.
    async fn replay_published<'c>(
        &self,
        c: &'c Consortium,
        f: &pb::JobFinished,
        report: &Report,
        bad: impl Fn(String) -> String,
    ) -> Result<Referee<'c>, ParticipantError> {
        let bad = |reason: String| ParticipantError::JobFailed(bad(reason));
        for r in &report.rounds {
            let same = f
                .outcome_digests
                .get(r.round as usize)
                .is_some_and(|d| d[..] == r.outcome.digest());
            if !same {
                return Err(bad(format!(
                    "its list of published rounds does not hold the outcome of round {} this participant received",
                    r.round
                )));
            }
        }
        self.replay_listed(c, &f.outcome_digests, report)
            .await
            .map_err(|e| match e {
                Unlisted::Referee(e) => {
                    bad(format!("the referee refuses its published rounds: {e}"))
                }
                Unlisted::Differs(i) => bad(format!(
                    "its outcome of round {i} is not the one its list names"
                )),
                Unlisted::Fetch(RoundEnd::Skip(e) | RoundEnd::Fatal(e)) => {
                    bad(format!("its published rounds could not be fetched: {e}"))
                }
            })
    }

    /// Replays the finished job from the outcomes its end lists: they must
    /// hold the very outcomes this participant received, follow the job's
    /// rules, and finish the job; the model is the replay's own.
    async fn replay_result(
        &self,
        f: &pb::JobFinished,
        report: &Report,
    ) -> Result<JobResult, ParticipantError> {
        let c = self.settings.consortium.clone();
        let said =
            |reason: String| format!("the coordinator declares the job finished, but {reason}");
        let bad = |reason: String| ParticipantError::JobFailed(said(reason));
        let referee = self.replay_published(&c, f, report, said).await?;
        if referee.next_plan().is_some() {
            return Err(bad(format!(
                "the job's rules still ask for round {} after the {} published",
                referee.history().len(),
                f.outcome_digests.len()
            )));
        }
        let mut departures = BTreeMap::new();
        for d in &f.departed {
            let m = c.roster.member(&d.participant)?;
            departures.insert(m.index, d.code);
        }
        Ok(JobResult {
            published: referee.history().to_vec(),
            model: referee.rules().model().cloned(),
            membership: referee.membership(&departures),
        })
    }

    fn crash(&self, point: CrashPoint) {
        if self.settings.crash_at == Some(point) {
            warn!(?point, "test hook: crashing now");
            std::process::abort();
        }
    }

    /// Phase 3 for an input of at most one chunk: one signed message.
    async fn send_whole(
        &self,
        round: u64,
        attempt: u32,
        masked: &[u64],
        contribution: &TaskContributors,
    ) -> Result<pb::Survivors, ParticipantError> {
        let body = Body::MaskedInput(pb::MaskedInput {
            values: words::to_bytes(masked).into(),
        });
        let signed = self.seal_with(round, attempt, body, Some(contribution))?;
        if self.settings.crash_at == Some(CrashPoint::MaskedInput) {
            // Send, give the coordinator time to take it, then die while waiting.
            let mut grpc = self.grpc.clone();
            let sent = signed.clone();
            tokio::spawn(async move { grpc.submit_masked_input(sent).await });
            sleep(Duration::from_millis(500)).await;
            self.crash(CrashPoint::MaskedInput);
        }
        let mut grpc = self.grpc.clone();
        let call = grpc.submit_masked_input(signed);
        Ok(self.within("SubmitMaskedInput", call).await?.into_inner())
    }

    /// Phase 3 for a longer input: a stream of chunks, each its own signed
    /// (and journaled) message, sealed one at a time as the stream asks for
    /// them, so no more than a couple of chunks are ever encoded at once.
    #[allow(clippy::too_many_arguments)]
    async fn send_chunks(
        &self,
        round: u64,
        attempt: u32,
        session: &SessionId,
        limbs: u32,
        masked: &[u64],
        chunk_words: usize,
        contribution: &TaskContributors,
    ) -> Result<pb::Survivors, ParticipantError> {
        // No more chunks than the coordinator admits (`max_chunks`): larger
        // chunks, in whole values, if `chunk_words` would make too many.
        let fewest = masked
            .len()
            .div_ceil(fedcredit_crypto::secagg::admission::max_chunks(
                masked.len(),
            ))
            .next_multiple_of(limbs.max(1) as usize);
        let pieces = fedcredit_proto::chunks::split(masked.len(), chunk_words.max(fewest), limbs);
        let total = u32::try_from(pieces.len()).map_err(|_| ParticipantError::Refused {
            rpc: "SubmitMaskedChunks",
            status: format!("{} chunks are too many", pieces.len()),
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::Signed>(1);
        let mut grpc = self.grpc.clone();
        let call = grpc.submit_masked_chunks(tokio_stream::wrappers::ReceiverStream::new(rx));
        let feed = async move {
            for (index, (offset, len)) in (0u32..).zip(&pieces) {
                if index == total / 2 && self.settings.crash_at == Some(CrashPoint::MidInput) {
                    // Let the coordinator take the chunks sent so far, then die.
                    sleep(Duration::from_millis(500)).await;
                    self.crash(CrashPoint::MidInput);
                }
                let body = Body::MaskedChunk(pb::MaskedChunk {
                    session_id: session.as_bytes().to_vec().into(),
                    index,
                    total,
                    offset: *offset as u64,
                    values: words::to_bytes(&masked[*offset..offset + len]).into(),
                });
                let signed = self.seal_with(round, attempt, body, Some(contribution))?;
                if tx.send(signed).await.is_err() {
                    // The call ended (refused, or the coordinator is gone): its
                    // status says why.
                    break;
                }
            }
            Ok::<(), ParticipantError>(())
        };
        let (answer, fed) = tokio::join!(self.within("SubmitMaskedChunks", call), feed);
        let answer = answer?;
        fed?;
        Ok(answer.into_inner())
    }

    /// One attempt of a round. Shared by both protocols: the referee's check
    /// of the announcement and this member's input to the task (its values,
    /// encoded, with its share of the noise). Then the per-round protocol
    /// (`epoch_slots` 0), or a slot of an epoch: a new epoch's setup and its
    /// slot 0 (empty `epoch`), or slot `slot` of the epoch held.
    async fn round(
        &mut self,
        round: u64,
        attempt: u32,
        a: &pb::RoundAnnouncement,
        announcement_digest: [u8; 32],
        contributor: &mut dyn Contributor,
    ) -> Result<RoundSeen, RoundEnd> {
        let c = self.settings.consortium.clone();
        let checked = self.check_announcement(round, attempt, a, &c)?;
        self.replayed = Some(checked.0.replayed().clone());
        let Some(slots) = c.protocol.epoch_slots.filter(|_| a.epoch_slots > 0) else {
            if a.epoch_slots > 0 || !a.epoch.is_empty() || a.slot != 0 {
                return Err(RoundEnd::Skip(ParticipantError::RefusedRound {
                    round,
                    attempt,
                    reason: "an announcement of the per-round protocol names an epoch or a slot"
                        .into(),
                }));
            }
            let input = self.prepare_input(round, &checked, contributor)?;
            return self
                .per_round(round, attempt, &c, &checked, &input, announcement_digest)
                .await;
        };
        // Whether this member can take part is known from the announcement
        // alone: nothing is computed for a slot of an epoch it does not hold.
        let step = epoch_step(
            round,
            attempt,
            a,
            self.epoch.as_ref().map(EpochMember::epoch),
        )?;
        if step == EpochStep::Setup {
            self.epoch = None;
        }
        let input = self.prepare_input(round, &checked, contributor)?;
        let (mut member, slot) = match step {
            EpochStep::Setup => (
                self.set_up_epoch(round, attempt, &c, slots, announcement_digest)
                    .await?,
                0,
            ),
            EpochStep::Slot(slot) => {
                let member = self.epoch.take().ok_or_else(|| {
                    RoundEnd::Skip(ParticipantError::EpochNotHeld {
                        round,
                        attempt,
                        epoch: hex::encode(&a.epoch),
                        held: None,
                    })
                })?;
                (member, slot)
            }
        };
        // The member is held again whatever the slot's end: its other slots
        // stay usable, and a used slot stays refused.
        let seen = self
            .epoch_slot(round, attempt, &c, &checked, &input, &mut member, slot)
            .await;
        self.epoch = Some(member);
        seen
    }

    /// Brings the referee's replay up to the history an announcement lists
    /// (the digests of every published outcome, in order), as
    /// [`Self::replay_listed`] does, and keeps it for the next announcement.
    /// Announcements carry no outcomes, so a round costs no transfer,
    /// hashing or check of the earlier sums.
    async fn catch_up(
        &mut self,
        at: (u64, u32),
        digests: &[prost::bytes::Bytes],
        report: &Report,
    ) -> Result<(), RoundEnd> {
        let (round, attempt) = at;
        let c = self.settings.consortium.clone();
        let referee = self
            .replay_listed(&c, digests, report)
            .await
            .map_err(|e| match e {
                Unlisted::Referee(source) => RoundEnd::Fatal(ParticipantError::Referee {
                    round,
                    attempt,
                    source,
                }),
                Unlisted::Differs(i) => RoundEnd::Fatal(ParticipantError::RefusedRound {
                    round,
                    attempt,
                    reason: format!(
                        "the coordinator's outcome of round {i} is not the one its announcement lists"
                    ),
                }),
                Unlisted::Fetch(e) => e,
            })?;
        self.replayed = Some(referee.replayed().clone());
        Ok(())
    }

    /// The job replayed over the outcomes `digests` lists (each the SHA-256
    /// of a signed outcome's payload, in round order): resumed from what was
    /// replayed before when that is their prefix; each later outcome the one
    /// this member received in its round or else fetched from the
    /// coordinator, checked against its digest before anything is read
    /// from it, then absorbed by the referee.
    async fn replay_listed<'c>(
        &self,
        c: &'c Consortium,
        digests: &[prost::bytes::Bytes],
        report: &Report,
    ) -> Result<Referee<'c>, Unlisted> {
        let mut referee =
            Referee::resume(c, self.replayed.as_ref(), digests).map_err(Unlisted::Referee)?;
        let mut fetched = 0usize;
        for (i, digest) in digests.iter().enumerate().skip(referee.absorbed()) {
            let received = report
                .rounds
                .iter()
                .find(|r| r.round == i as u64)
                .map(|r| r.outcome.clone());
            let checked = match received {
                Some(known) => known,
                None => {
                    // Round i's outcome is as long as its plan says (the
                    // next plan of a referee that absorbed rounds 0..i): a
                    // longer one is refused unread.
                    let plan = referee.next_plan().ok_or_else(|| {
                        Unlisted::Referee(fedcredit_referee::RefereeError::BadOutcome {
                            round: i as u64,
                            problem: "the job was already finished".into(),
                        })
                    })?;
                    let limit = chunks::outcome_limit(plan.codec.words_for(plan.dimension));
                    fetched += 1;
                    let signed = self
                        .fetch_outcome(i as u64, limit)
                        .await
                        .map_err(Unlisted::Fetch)?;
                    match envelope::check_coordinator(signed.clone(), c.roster.coordinator()) {
                        Ok(checked) => checked,
                        // Another payload than the listed one is named as
                        // such, whatever its signature.
                        Err(_) if outcome_digest(&signed.payload)[..] != digest[..] => {
                            return Err(Unlisted::Differs(i));
                        }
                        Err(e) => {
                            return Err(Unlisted::Referee(
                                fedcredit_referee::RefereeError::BadOutcome {
                                    round: i as u64,
                                    problem: e.to_string(),
                                },
                            ));
                        }
                    }
                }
            };
            if checked.digest()[..] != digest[..] {
                return Err(Unlisted::Differs(i));
            }
            referee.absorb(&checked).map_err(Unlisted::Referee)?;
        }
        if fetched > 0 {
            info!(
                fetched,
                published = digests.len(),
                "fetched the published outcomes this member had not received, each matching the announcement's digest"
            );
        }
        Ok(referee)
    }

    /// The coordinator-signed outcome of published round `published`, asked
    /// for with a signed `FetchOutcome` and sent in pieces. The caller checks
    /// it against the digest the announcement lists.
    async fn fetch_outcome(&self, published: u64, limit: u64) -> Result<pb::Signed, RoundEnd> {
        let ask = self.seal(published, 0, Body::FetchOutcome(pb::FetchOutcome {}))?;
        let mut grpc = self.grpc.clone();
        let call = async move {
            let pieces = grpc.outcome_chunks(ask).await?.into_inner();
            Ok::<_, Status>(tonic::Response::new(
                assemble(pieces, "published outcome", limit).await?,
            ))
        };
        Ok(self
            .within("OutcomeChunks", call)
            .await?
            .into_inner()
            .map_err(fedcredit_proto::WireError::from)?)
    }

    /// The referee: replays the job from the spec and the signed published
    /// results, and takes part only in the one task that follows from them.
    /// Nothing is computed or allocated for a task before this passes.
    fn check_announcement<'c>(
        &self,
        round: u64,
        attempt: u32,
        a: &pb::RoundAnnouncement,
        c: &'c Consortium,
    ) -> Result<(Referee<'c>, RoundPlan), RoundEnd> {
        let referee_error = |source| {
            RoundEnd::Fatal(ParticipantError::Referee {
                round,
                attempt,
                source,
            })
        };
        // [`Self::catch_up`] absorbed every outcome listed before this.
        let referee = Referee::resume(c, self.replayed.as_ref(), &a.previous_outcome_digests)
            .map_err(referee_error)?;
        let plan = referee
            .check_announcement(round, a)
            .map_err(referee_error)?;
        if let Some(allowed) = referee.allowed()
            && !allowed.contains(&self.me.index)
        {
            return Err(RoundEnd::Skip(ParticipantError::RefusedRound {
                round,
                attempt,
                reason: format!(
                    "the job's cohort policy `{}` leaves this member out of the rounds that follow",
                    c.job.cohort.name()
                ),
            }));
        }
        Ok((referee, plan))
    }

    /// This member's input to the announced task: its values, encoded, with
    /// its share of the noise in a private round; and what its journal knows
    /// of the task and of these values.
    fn prepare_input(
        &self,
        round: u64,
        (referee, plan): &(Referee<'_>, RoundPlan),
        contributor: &mut dyn Contributor,
    ) -> Result<Input, RoundEnd> {
        let c = &self.settings.consortium;
        let digest = referee.digest(plan);
        let confirmed = self.confirmed_for(&digest)?;
        let codec = plan.codec;
        let dimension = plan.dimension;
        let values = local_work(|| contributor.contribute(round, &plan.task, dimension))
            .map_err(|reason| RoundEnd::Fatal(ParticipantError::Contribution { round, reason }))?;
        if values.len() != dimension {
            return Err(RoundEnd::Fatal(ParticipantError::Contribution {
                round,
                reason: format!(
                    "computed {} values, the round aggregates {dimension}",
                    values.len()
                ),
            }));
        }
        let contribution_error =
            |reason: String| RoundEnd::Fatal(ParticipantError::Contribution { round, reason });
        // The same values summed with two contributor sets, in any two jobs,
        // give away the difference: one set per set of values, ever.
        let fingerprint = contribution_fingerprint(&self.key, dimension, &values);
        let earlier = self
            .journal()?
            .confirmed_contribution(&fingerprint)
            .map(|(job, set)| (job.to_owned(), set.to_vec()));
        let mut encoded = codec
            .encode(&values, c.roster.len())
            .map_err(|e| contribution_error(e.to_string()))?;
        // A private round: add this member's share of the noise in the ring,
        // before masking, so no party ever sees a noise-free sum. The noise is
        // seeded from the identity key and the task, so a retried task sends
        // the same noise (retries cannot be averaged away).
        if let Some(noise) = referee
            .rules()
            .next_model_task()
            .and_then(|t| t.noise().cloned())
        {
            let seed = self
                .key
                .derive_seed(&[b"fedcredit/v1/dp-noise\0".as_slice(), digest.as_bytes()].concat());
            let mut rng = rand_chacha::ChaCha20Rng::from_seed(*seed);
            let share = noise
                .sample_share(&mut rng)
                .map_err(|e| contribution_error(e.to_string()))?;
            let grid = 2f64.powi(-(noise.grid_bits as i32));
            // |z| < 2^41 (the sampler stops at 2^16·σ, σ < 2^24): exact in f64.
            let share: Vec<f64> = share.iter().map(|z| *z as f64 * grid).collect();
            let words = codec
                .encode(&share, c.roster.len())
                .map_err(|e| contribution_error(e.to_string()))?;
            codec
                .ring()
                .add_assign(&mut encoded, &words)
                .map_err(|e| contribution_error(e.to_string()))?;
        }
        Ok(Input {
            digest,
            confirmed,
            earlier,
            fingerprint,
            encoded,
        })
    }

    /// Phase 1, and the first step of an epoch's setup: advertises `ad`
    /// and verifies every advertisement relayed back (U1).
    async fn advertise(
        &self,
        round: u64,
        attempt: u32,
        c: &Consortium,
        ad: &Advertisement,
    ) -> Result<BTreeMap<PartyIndex, Advertisement>, RoundEnd> {
        let body = Body::Advertise(pb::KeyAdvertisement {
            share_enc_public: ad.share_enc.to_bytes().to_vec().into(),
            mask_agree_public: ad.mask_agree.to_bytes().to_vec().into(),
        });
        let mut grpc = self.grpc.clone();
        let call = grpc.advertise_keys(self.seal(round, attempt, body)?);
        let adverts = self.within("AdvertiseKeys", call).await?;
        let mut cohort = BTreeMap::new();
        for o in envelope::open_all(&adverts.get_ref().adverts, &c.roster)? {
            check_binding(&o.message, &c.job.id, round, attempt)?;
            let Some(Body::Advertise(k)) = &o.message.body else {
                return Err(bad_relay("advertisement list", &o.sender.id).into());
            };
            let ad = Advertisement::try_from(k)?;
            if cohort.insert(o.sender.index, ad).is_some() {
                return Err(bad_relay("advertisement list (duplicate)", &o.sender.id).into());
            }
        }
        Ok(cohort)
    }

    /// Phase 3's sending: the masked input whole, or in chunks of the
    /// session `session` (the round's, or the slot's in an epoch); answered
    /// with the survivor list.
    async fn send_masked(
        &self,
        round: u64,
        attempt: u32,
        session: &SessionId,
        ring: Ring,
        masked: &[u64],
        contribution: &TaskContributors,
    ) -> Result<pb::Survivors, ParticipantError> {
        let chunk_words = self
            .settings
            .chunk_words
            .clamp(1, fedcredit_proto::chunks::MAX_CHUNK_WORDS);
        if masked.len() <= chunk_words {
            self.send_whole(round, attempt, masked, contribution).await
        } else {
            self.send_chunks(
                round,
                attempt,
                session,
                ring.limbs(),
                masked,
                chunk_words,
                contribution,
            )
            .await
        }
    }

    /// The last phase: sends the reveal `body` (journaled, with
    /// `commitment` when it binds the task), then reads the coordinator-signed
    /// outcome and checks it: this round and attempt, the plan's length, and
    /// exactly `contributors` (sorted ids), else `differ` names the refusal.
    #[allow(clippy::too_many_arguments)]
    async fn reveal_and_read_outcome(
        &self,
        round: u64,
        attempt: u32,
        c: &Consortium,
        plan: &RoundPlan,
        body: Body,
        commitment: Option<&TaskContributors>,
        contributors: &[String],
        differ: &'static str,
    ) -> Result<RoundSeen, RoundEnd> {
        let codec = plan.codec;
        let mut grpc = self.grpc.clone();
        let request = self.seal_with(round, attempt, body, commitment)?;
        // The outcome holds 8 bytes per word of this round's dimension, and
        // room for its contributors: a longer one is refused unread.
        let limit = chunks::outcome_limit(codec.words_for(plan.dimension));
        let call = async move {
            let pieces = grpc.unmask_chunks(request).await?.into_inner();
            Ok::<_, Status>(tonic::Response::new(
                assemble(pieces, "round outcome", limit).await?,
            ))
        };
        let outcome = self
            .within("UnmaskChunks", call)
            .await?
            .into_inner()
            .map_err(fedcredit_proto::WireError::from)?;
        let checked = envelope::check_coordinator(outcome, c.roster.coordinator())?;
        let message = checked.message();
        if message.round != round || message.attempt != attempt || message.job_id != c.job.id {
            return Err(bad_relay("round outcome", "the coordinator").into());
        }
        let Some(coordinator_message::Body::Outcome(o)) = &message.body else {
            return Err(bad_relay("round outcome", "the coordinator").into());
        };
        let sum = words::from_bytes("round outcome", &o.sum)?;
        if sum.len() != codec.words_for(plan.dimension) {
            return Err(bad_relay("round outcome (length)", "the coordinator").into());
        }
        let mut published = o.contributors.clone();
        published.sort();
        if published != contributors {
            return Err(bad_relay(differ, "the coordinator").into());
        }
        Ok(RoundSeen {
            round,
            attempt,
            sum: codec.decode(&sum)?,
            contributors: o.contributors.clone(),
            outcome: checked,
        })
    }

    /// The per-round protocol: fresh keys, shares, masked input, the
    /// consistency check and the unmask, all in this attempt.
    async fn per_round(
        &mut self,
        round: u64,
        attempt: u32,
        c: &Consortium,
        (referee, plan): &(Referee<'_>, RoundPlan),
        input: &Input,
        announcement_digest: [u8; 32],
    ) -> Result<RoundSeen, RoundEnd> {
        let roster = &c.roster;
        let codec = plan.codec;
        let digest = input.digest;
        let protocol = |source| ParticipantError::Protocol {
            round,
            attempt,
            source,
        };
        let thresholds = c.protocol.thresholds;

        // Phase 1: advertise fresh keys; verify every advertisement relayed back.
        let keys = AdvertiseKeys::new(self.me.index, thresholds, &mut OsRng);
        let cohort = self
            .advertise(round, attempt, c, &keys.advertisement())
            .await?;
        let session = session_of(c, round, attempt, &announcement_digest, &cohort);
        info!(cohort = cohort.len(), session = %session.to_hex(), "keys advertised");
        self.crash(CrashPoint::ShareKeys);

        // Phase 2: share the self-mask seed and the mask key, encrypted to each peer.
        let (state, out) = keys
            .share_keys(session, cohort, &mut OsRng)
            .map_err(protocol)?;
        let body = Body::Shares(shares::to_pb(roster, out.ciphertexts, &out.dealt));
        let mut grpc = self.grpc.clone();
        let call = grpc.share_keys(self.seal(round, attempt, body)?);
        let received = self.within("ShareKeys", call).await?;
        // Each dealer's own signed message: our ciphertext and the
        // commitments it signed for our shares (checked on decryption).
        let mut from_peers = Vec::new();
        for o in envelope::open_all(&received.get_ref().dealt, roster)? {
            check_binding(&o.message, &c.job.id, round, attempt)?;
            let Some(Body::Shares(m)) = &o.message.body else {
                return Err(bad_relay("share list", &o.sender.id).into());
            };
            let from = o.sender.index;
            let DealtShares { dealt, ciphertexts } = DealtShares::from_pb(roster, from, m)?;
            let mine = |what: &str| bad_relay(what, &o.sender.id);
            let commitment = *dealt
                .shares
                .get(&self.me.index)
                .ok_or_else(|| mine("share list (no commitment for this party)"))?;
            let mut addressed = ciphertexts
                .into_iter()
                .filter(|(to, _)| *to == self.me.index);
            let (_, ciphertext) = addressed
                .next()
                .ok_or_else(|| mine("share list (no ciphertext for this party)"))?;
            if addressed.next().is_some() {
                return Err(mine("share list (two ciphertexts for this party)").into());
            }
            from_peers.push(DealtToMe {
                from,
                ciphertext: ciphertext.to_vec(),
                commitment,
            });
        }

        // Phase 3: masked input. A task confirmed before with a contributor
        // set can only complete with that same set, so mask only if every
        // member of it is still here.
        let (state, masked) = state
            .masked_input(codec.ring(), &input.encoded, from_peers)
            .map_err(protocol)?;
        let u2_ids = ids_of(roster, state.u2());
        if let Some(confirmed) = &input.confirmed
            && !confirmed.iter().all(|id| u2_ids.contains(id))
        {
            return Err(RoundEnd::Skip(ParticipantError::ContributorSetChanged {
                round,
                attempt,
                task: digest.to_string(),
                confirmed: confirmed.join(", "),
                asked: u2_ids.join(", "),
            }));
        }
        if let Some((job, confirmed)) = &input.earlier
            && !confirmed.iter().all(|id| u2_ids.contains(id))
        {
            return Err(RoundEnd::Skip(ParticipantError::ContributionRepeated {
                round,
                attempt,
                job: job.clone(),
                confirmed: confirmed.join(", "),
                asked: u2_ids.join(", "),
            }));
        }
        let contribution = input.contributors(u2_ids);
        let survivors = self
            .send_masked(
                round,
                attempt,
                &session,
                codec.ring(),
                &masked,
                &contribution,
            )
            .await?;
        let u3 = roster.indices("survivor list", &survivors.survivors)?;

        // Phase 4: consistency check — sign U3, verify the others' signatures
        // on it. U3 is the set the sum will be over: it must follow the job's
        // cohort policy, and for a task confirmed before it must be the very
        // same set. The confirmation is journaled (durably) before it is sent.
        let u3_ids = ids_of(roster, &u3);
        input.check_set(round, attempt, referee, &u3, &u3_ids)?;
        let state = state.confirm(u3).map_err(protocol)?;
        let ours = SurvivorDigest::of(state.survivors());
        let body = Body::Consistency(pb::SurvivorList {
            session_id: state.session().as_bytes().to_vec().into(),
            survivors_digest: ours.as_bytes().to_vec().into(),
        });
        let commitment = input.contributors(u3_ids.clone());
        let mut grpc = self.grpc.clone();
        let call =
            grpc.confirm_survivors(self.seal_with(round, attempt, body, Some(&commitment))?);
        let sigs = self.within("ConfirmSurvivors", call).await?;
        let mut confirmations = Vec::new();
        for o in envelope::open_all(&sigs.get_ref().confirmations, roster)? {
            check_binding(&o.message, &c.job.id, round, attempt)?;
            let Some(Body::Consistency(list)) = &o.message.body else {
                return Err(bad_relay("survivor confirmations", &o.sender.id).into());
            };
            let session = SessionId(
                list.session_id
                    .as_ref()
                    .try_into()
                    .map_err(|_| bad_relay("survivor confirmation (session id)", &o.sender.id))?,
            );
            confirmations.push(Confirmation {
                signer: o.sender.index,
                session,
                survivors: SurvivorDigest::from_bytes(&list.survivors_digest)
                    .map_err(|_| bad_relay("survivor confirmation (digest)", &o.sender.id))?,
                checked: o.checked,
            });
        }
        self.crash(CrashPoint::Unmask);

        // Phase 5: reveal (never both shares of one peer), then read the signed outcome.
        let reveal = state.unmask(&confirmations).map_err(protocol)?;
        let to_pb = |list: Vec<(PartyIndex, fedcredit_crypto::shamir::Share)>| {
            list.into_iter()
                .map(|(owner, s)| pb::RevealedShare {
                    owner: roster.name_of(owner),
                    share: s.to_bytes().to_vec().into(),
                })
                .collect()
        };
        let body = Body::Unmask(pb::UnmaskShares {
            self_mask_shares: to_pb(reveal.self_mask_shares),
            key_shares: to_pb(reveal.key_shares),
        });
        self.reveal_and_read_outcome(
            round,
            attempt,
            c,
            plan,
            body,
            None,
            &u3_ids,
            "round outcome (its contributors differ from the survivor list this participant confirmed)",
        )
        .await
    }

    /// An epoch's setup (the announcement names no epoch): fresh keys and
    /// one self-mask seed per slot, advertised; every slot seed shared among
    /// U1 (`EpochShares`); the shares every other member dealt this one
    /// opened and checked against their signed commitments. The epoch's
    /// cohort C is every member that dealt, which must be all of U1.
    async fn set_up_epoch(
        &self,
        round: u64,
        attempt: u32,
        c: &Consortium,
        slots: Slots,
        announcement_digest: [u8; 32],
    ) -> Result<EpochMember, RoundEnd> {
        let roster = &c.roster;
        let protocol = |source| ParticipantError::Protocol {
            round,
            attempt,
            source,
        };
        let keys = EpochKeys::new(self.me.index, c.protocol.thresholds, slots, &mut OsRng);
        let cohort = self
            .advertise(round, attempt, c, &keys.advertisement())
            .await?;
        // The epoch's id is the session id this attempt would have had.
        let id = session_of(c, round, attempt, &announcement_digest, &cohort);
        info!(cohort = cohort.len(), epoch = %id.to_hex(), slots = slots.get(), "keys advertised for a new epoch");
        self.crash(CrashPoint::ShareKeys);

        let (sharing, out) = keys.share_keys(id, cohort, &mut OsRng).map_err(protocol)?;
        let body = Body::EpochShares(epoch_wire::to_pb(roster, out));
        let mut grpc = self.grpc.clone();
        let call = grpc.share_keys(self.seal(round, attempt, body)?);
        let received = self.within("ShareKeys", call).await?;
        // One Ed25519 batch for the whole relay, as for a round's shares.
        let mut from_peers = Vec::new();
        for o in envelope::open_all(&received.get_ref().dealt, roster)? {
            from_peers.push(epoch_dealt_to_me(
                roster,
                &c.job.id,
                (round, attempt),
                self.me.index,
                slots,
                &o,
            )?);
        }
        let member = sharing.open(from_peers).map_err(protocol)?;
        info!(epoch = %id.to_hex(), cohort = member.cohort().len(), "epoch set up");
        Ok(member)
    }

    /// Slot `slot` of the epoch `member`: the masked input of the slot and,
    /// once the survivor list is the epoch's cohort C and the task's
    /// contributor set C is journaled, the reveal of the slot's shares.
    #[allow(clippy::too_many_arguments)]
    async fn epoch_slot(
        &mut self,
        round: u64,
        attempt: u32,
        c: &Consortium,
        (referee, plan): &(Referee<'_>, RoundPlan),
        input: &Input,
        member: &mut EpochMember,
        slot: Slot,
    ) -> Result<RoundSeen, RoundEnd> {
        let roster = &c.roster;
        let protocol = |source| ParticipantError::Protocol {
            round,
            attempt,
            source,
        };
        // The sum is over C or nothing: the same guards as the per-round
        // protocol's survivor list, before anything is masked.
        let cohort = member.cohort().clone();
        let ids = ids_of(roster, &cohort);
        input.check_set(round, attempt, referee, &cohort, &ids)?;

        // Masked input: the slot is used now, whatever follows.
        let ring = plan.codec.ring();
        let masked = member.mask(slot, ring, &input.encoded).map_err(protocol)?;
        let session = epoch::slot_session(member.epoch(), slot);
        info!(epoch = %member.epoch().to_hex(), slot, cohort = cohort.len(), "slot masked");
        let contribution = input.contributors(ids.clone());
        let survivors = self
            .send_masked(round, attempt, &session, ring, &masked, &contribution)
            .await?;
        check_epoch_survivors(roster, &survivors, &cohort)?;
        self.crash(CrashPoint::Unmask);

        // Reveal: the task is bound to C in the ledger, and journaled with
        // C (durably) before the reveal is sent.
        let reveal = member
            .reveal(slot, *input.digest.as_bytes(), &mut self.ledger)
            .map_err(protocol)?;
        let body = Body::SlotReveal(epoch_wire::reveal_to_pb(roster, reveal.slot, reveal.shares));
        self.reveal_and_read_outcome(
            round,
            attempt,
            c,
            plan,
            body,
            Some(&contribution),
            &ids,
            "round outcome (its contributors are not the epoch's cohort this participant revealed for)",
        )
        .await
    }
}

/// This member's input to one task, and what its journal knows of the task.
struct Input {
    /// The task.
    digest: TaskDigest,
    /// The contributor set confirmed for the task before, if any.
    confirmed: Option<Vec<String>>,
    /// The job and contributor set these very values were confirmed with
    /// before, if any.
    earlier: Option<(String, Vec<String>)>,
    /// The keyed fingerprint of the values.
    fingerprint: [u8; 32],
    /// The values in the ring, with the noise share.
    encoded: Vec<u64>,
}

impl Input {
    /// The task and these values, contributed with `contributors` (sorted ids).
    fn contributors(&self, contributors: Vec<String>) -> TaskContributors {
        TaskContributors {
            task: self.digest,
            contributors,
            contribution: Some(self.fingerprint),
        }
    }

    /// The guards on the exact set `set` (sorted ids `ids`) a sum of this
    /// input will be over: the job's cohort policy, the set confirmed for
    /// the task before, the set these values were confirmed with before.
    fn check_set(
        &self,
        round: u64,
        attempt: u32,
        referee: &Referee<'_>,
        set: &BTreeSet<PartyIndex>,
        ids: &[String],
    ) -> Result<(), RoundEnd> {
        referee.check_contributors(set).map_err(|source| {
            RoundEnd::Skip(ParticipantError::Referee {
                round,
                attempt,
                source,
            })
        })?;
        if let Some(confirmed) = &self.confirmed
            && confirmed != ids
        {
            return Err(RoundEnd::Skip(ParticipantError::ContributorSetChanged {
                round,
                attempt,
                task: self.digest.to_string(),
                confirmed: confirmed.join(", "),
                asked: ids.join(", "),
            }));
        }
        if let Some((job, confirmed)) = &self.earlier
            && confirmed != ids
        {
            return Err(RoundEnd::Skip(ParticipantError::ContributionRepeated {
                round,
                attempt,
                job: job.clone(),
                confirmed: confirmed.join(", "),
                asked: ids.join(", "),
            }));
        }
        Ok(())
    }
}

/// What an announcement of an epoch-mode job asks of this member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EpochStep {
    /// Set up a new epoch (dropping any held), then use its slot 0.
    Setup,
    /// Use this slot of the epoch held.
    Slot(Slot),
}

/// Reads an epoch-mode announcement against the epoch held (its id): an
/// empty `epoch` sets up a new one, and must name slot 0; a named epoch
/// must be the one held, else the attempt is skipped (after a restart, or
/// when this member missed the setup, the coordinator's next attempt sets
/// up anew).
fn epoch_step(
    round: u64,
    attempt: u32,
    a: &pb::RoundAnnouncement,
    held: Option<&SessionId>,
) -> Result<EpochStep, ParticipantError> {
    if a.epoch.is_empty() {
        if a.slot != 0 {
            return Err(ParticipantError::RefusedRound {
                round,
                attempt,
                reason: format!(
                    "the announcement sets up a new epoch but names slot {}; a setup uses slot 0",
                    a.slot
                ),
            });
        }
        return Ok(EpochStep::Setup);
    }
    match held {
        Some(id) if id.as_bytes().as_slice() == a.epoch.as_ref() => Ok(EpochStep::Slot(a.slot)),
        _ => Err(ParticipantError::EpochNotHeld {
            round,
            attempt,
            epoch: hex::encode(&a.epoch),
            held: held.map(SessionId::to_hex),
        }),
    }
}

/// One dealer's epoch setup message as relayed to this member: the
/// ciphertext addressed to `me` and the commitments the dealer signed.
fn epoch_dealt_to_me(
    roster: &Roster,
    job: &str,
    (round, attempt): (u64, u32),
    me: PartyIndex,
    slots: Slots,
    o: &envelope::Opened<'_>,
) -> Result<EpochDealtToMe, ParticipantError> {
    check_binding(&o.message, job, round, attempt)?;
    let Some(Body::EpochShares(m)) = &o.message.body else {
        return Err(bad_relay("epoch share list", &o.sender.id));
    };
    let from = o.sender.index;
    let mine = |what: &str| bad_relay(what, &o.sender.id);
    if from == me {
        return Err(mine("epoch share list (this party's own)"));
    }
    let EpochDealtShares {
        record,
        ciphertexts,
    } = EpochDealtShares::from_pb(roster, from, slots, m)?;
    let mut addressed = ciphertexts.into_iter().filter(|(to, _)| *to == me);
    let (_, ciphertext) = addressed
        .next()
        .ok_or_else(|| mine("epoch share list (no ciphertext for this party)"))?;
    if addressed.next().is_some() {
        return Err(mine("epoch share list (two ciphertexts for this party)"));
    }
    Ok(EpochDealtToMe {
        from,
        ciphertext: ciphertext.to_vec(),
        dealt: record.dealt,
    })
}

/// A slot's survivor list must be the epoch's cohort exactly: the
/// coordinator abandons a slot with a missing masked input before any
/// reveal, and a sum over another set is not this epoch's.
fn check_epoch_survivors(
    roster: &Roster,
    survivors: &pb::Survivors,
    cohort: &BTreeSet<PartyIndex>,
) -> Result<(), ParticipantError> {
    let u3 = roster.indices("survivor list", &survivors.survivors)?;
    if u3 != *cohort {
        return Err(bad_relay(
            "survivor list (not the epoch's cohort)",
            "the coordinator",
        ));
    }
    Ok(())
}

/// The session id of an attempt (the epoch's id when it sets one up).
fn session_of(
    c: &Consortium,
    round: u64,
    attempt: u32,
    announcement_digest: &[u8; 32],
    cohort: &BTreeMap<PartyIndex, Advertisement>,
) -> SessionId {
    let spec_hash = c.job.hash();
    let binding = SessionBinding {
        job_id: &c.job.id,
        job_spec_hash: &spec_hash,
        announcement: announcement_digest,
        round,
        attempt,
        thresholds: c.protocol.thresholds,
    };
    secagg::session_id(&binding, cohort)
}

/// Member ids of a set, sorted (the journal's form of a contributor set).
fn ids_of(roster: &fedcredit_proto::roster::Roster, set: &BTreeSet<PartyIndex>) -> Vec<String> {
    let mut ids: Vec<String> = set.iter().map(|p| roster.name_of(*p)).collect();
    ids.sort();
    ids
}

fn check_binding(
    m: &pb::Message,
    job: &str,
    round: u64,
    attempt: u32,
) -> Result<(), ParticipantError> {
    if m.job_id != job || m.round != round || m.attempt != attempt {
        return Err(ParticipantError::RefusedRound {
            round,
            attempt,
            reason: format!(
                "a relayed message from {} is for job {:?} round {} attempt {}",
                m.sender, m.job_id, m.round, m.attempt
            ),
        });
    }
    Ok(())
}

/// A keyed fingerprint of the values a member contributes: HKDF of its
/// identity key over their SHA-256 (with the length), so that the journal
/// recognises the same values again without revealing them.
fn contribution_fingerprint(key: &IdentityKey, dimension: usize, values: &[f64]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((dimension as u64).to_le_bytes());
    for v in values {
        h.update(v.to_bits().to_le_bytes());
    }
    let mut context = b"fedcredit/v1/contribution-fingerprint\0".to_vec();
    context.extend_from_slice(&h.finalize());
    *key.derive_seed(&context)
}

fn bad_relay(what: &str, who: &(impl std::fmt::Display + ?Sized)) -> ParticipantError {
    ParticipantError::Refused {
        rpc: "relay",
        status: format!("{what}: unexpected message from {who}"),
    }
}

/// Tells the coordinator that this participant leaves the job, and why
/// (e.g. its data fails the schema), before taking part in any round.
/// Retries an unreachable coordinator for up to `patience`: a member that
/// failed its local checks says why it leaves if it can, but does not wait
/// for the network to report its own error.
pub async fn leave(
    settings: &Settings,
    key: &IdentityKey,
    code: pb::ReasonCode,
    patience: Duration,
) -> Result<(), ParticipantError> {
    let message = pb::Message {
        job_id: settings.consortium.job.id.clone(),
        round: 0,
        attempt: 0,
        sender: settings.id.to_string(),
        body: Some(Body::Leave(pb::Leave { code: code as i32 })),
    };
    let (signed, digest) = envelope::seal_digested(key, &message);
    if let Some(path) = &settings.journal {
        Journal::open(path)?.record(
            &message.job_id,
            0,
            0,
            "leave",
            &digest,
            &signed.signature,
            None,
        )?;
    }
    let unreachable = |reason: String| ParticipantError::Unreachable {
        url: settings.coordinator.clone(),
        reason,
    };
    let channel = fedcredit_transport::client::channel(
        &settings.coordinator,
        settings.tls.clone(),
        patience.min(Duration::from_secs(5)),
    )
    .map_err(|e| unreachable(e.to_string()))?;
    let mut grpc = CoordinatorClient::new(channel);
    let start = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        match grpc.leave(signed.clone()).await {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == Code::Unavailable && start.elapsed() + backoff < patience => {
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(s) => return Err(refused(&settings.coordinator, "Leave", s)),
        }
    }
}

/// Asks the coordinator which job it runs now and checks the answer: signed
/// by the coordinator key of `settings.consortium`, an offer, and a spec
/// whose id is the envelope's. The spec is then checked against the
/// consortium by [`Consortium::with_job`] and against the member's consent
/// policy by the caller. An unreachable coordinator is
/// [`ParticipantError::Unreachable`], for the caller to retry.
pub async fn offered_job(
    settings: &Settings,
) -> Result<fedcredit_referee::consortium::JobSpec, ParticipantError> {
    let unreachable = |reason: String| ParticipantError::Unreachable {
        url: settings.coordinator.clone(),
        reason,
    };
    let channel = fedcredit_transport::client::channel(
        &settings.coordinator,
        settings.tls.clone(),
        Duration::from_secs(5),
    )
    .map_err(|e| unreachable(e.to_string()))?;
    let signed = match CoordinatorClient::new(channel)
        .offer(pb::OfferRequest {})
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == Code::Unavailable => return Err(unreachable(s.message().into())),
        Err(s) => return Err(refused(&settings.coordinator, "Offer", s)),
    };
    let (message, _checked) =
        envelope::open_coordinator(&signed, settings.consortium.roster.coordinator())?;
    let Some(coordinator_message::Body::Offer(offer)) = message.body else {
        return Err(bad_relay("a job offer", "the coordinator"));
    };
    let spec = fedcredit_referee::consortium::JobSpec::from_json(&offer.spec_json)
        .map_err(|e| ParticipantError::JobFailed(format!("the offered job spec: {e}")))?;
    if spec.id != message.job_id {
        return Err(bad_relay(
            "a job offer whose spec has another id",
            "the coordinator",
        ));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_crypto::secagg::Thresholds;
    use fedcredit_crypto::secagg::epoch::{EpochView, SlotUnmasker};

    const JOB: &str = "job-epoch";
    const AT: (u64, u32) = (2, 1);

    fn id(i: usize) -> String {
        format!("bank-{i}")
    }

    fn identity(i: usize) -> IdentityKey {
        IdentityKey::from_secret_bytes(&[i as u8; 32])
    }

    fn roster(n: usize) -> Roster {
        let members = (1..=n)
            .map(|i| {
                (
                    ParticipantId::new(&id(i)).expect("id"),
                    identity(i).public(),
                )
            })
            .collect();
        Roster::new(members, IdentityKey::from_secret_bytes(&[99; 32]).public()).expect("roster")
    }

    fn signed(i: usize, (round, attempt): (u64, u32), body: Body) -> pb::Signed {
        envelope::seal(
            &identity(i),
            &pb::Message {
                job_id: JOB.into(),
                round,
                attempt,
                sender: id(i),
                body: Some(body),
            },
        )
    }

    /// An epoch of four members set up as the daemons do it: each deals,
    /// its `EpochShares` is signed and relayed, and each member opens the
    /// others' messages through [`epoch_dealt_to_me`].
    struct Epoch {
        roster: Roster,
        parties: Vec<PartyIndex>,
        slots: Slots,
        messages: Vec<pb::Signed>,
        members: Vec<EpochMember>,
        view: EpochView,
    }

    fn set_up() -> Epoch {
        let n = 4;
        let roster = roster(n);
        let thresholds = Thresholds::new(n, 3, 1, 3).expect("thresholds");
        let slots = Slots::new(4).expect("slots");
        let parties: Vec<PartyIndex> = (1..=n)
            .map(|i| roster.member(&id(i)).expect("member").index)
            .collect();
        let keys: Vec<EpochKeys> = parties
            .iter()
            .map(|p| EpochKeys::new(*p, thresholds, slots, &mut OsRng))
            .collect();
        let cohort: BTreeMap<PartyIndex, Advertisement> = parties
            .iter()
            .zip(&keys)
            .map(|(p, k)| (*p, k.advertisement()))
            .collect();
        let epoch = SessionId([5; 32]);
        let mut sharings = Vec::new();
        let mut messages = Vec::new();
        let mut records = BTreeMap::new();
        for (i, k) in keys.into_iter().enumerate() {
            let (sharing, out) = k
                .share_keys(epoch, cohort.clone(), &mut OsRng)
                .expect("share keys");
            records.insert(parties[i], out.record.clone());
            messages.push(signed(
                i + 1,
                AT,
                Body::EpochShares(epoch_wire::to_pb(&roster, out)),
            ));
            sharings.push(sharing);
        }
        let members = sharings
            .into_iter()
            .enumerate()
            .map(|(i, sharing)| {
                let received = messages
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, m)| {
                        let o = envelope::open(m, &roster).expect("open");
                        epoch_dealt_to_me(&roster, JOB, AT, parties[i], slots, &o)
                            .expect("shares for this member")
                    })
                    .collect();
                sharing.open(received).expect("open")
            })
            .collect();
        let view = EpochView::new(epoch, thresholds, slots, records).expect("view");
        Epoch {
            roster,
            parties,
            slots,
            messages,
            members,
            view,
        }
    }

    #[test]
    fn an_epoch_set_up_over_the_wire_sums_slots_and_refuses_a_used_one() {
        let mut e = set_up();
        let cohort: BTreeSet<PartyIndex> = e.parties.iter().copied().collect();
        let mut ledger = TaskLedger::new();
        for slot in [0, 2] {
            let ring = Ring::U64;
            let mut sum = vec![0u64; 3];
            let mut expected = vec![0u64; 3];
            for (i, m) in e.members.iter_mut().enumerate() {
                assert_eq!(m.cohort(), &cohort);
                let input = vec![i as u64 + 1, 100 * slot as u64, 7];
                ring.add_assign(&mut expected, &input).expect("add");
                let masked = m.mask(slot, ring, &input).expect("mask");
                ring.add_assign(&mut sum, &masked).expect("add");
            }
            assert_ne!(sum, expected, "masked inputs alone give nothing away");
            let survivors = pb::Survivors {
                survivors: (1..=4).map(id).collect(),
            };
            check_epoch_survivors(&e.roster, &survivors, &cohort).expect("C exactly");
            let mut unmasker = SlotUnmasker::new(&e.view, slot).expect("unmasker");
            for (i, m) in e.members.iter_mut().enumerate() {
                let reveal = m
                    .reveal(slot, [slot as u8; 32], &mut ledger)
                    .expect("reveal");
                let wire = epoch_wire::reveal_to_pb(&e.roster, reveal.slot, reveal.shares);
                let (got_slot, shares) =
                    epoch_wire::reveal_from_pb(&e.roster, &wire).expect("decode");
                assert_eq!(got_slot, slot);
                unmasker.accept(e.parties[i], shares).expect("accept");
            }
            unmasker.finish(ring, &mut sum).expect("finish");
            assert_eq!(sum, expected, "slot {slot}");
        }
        let err = ParticipantError::Protocol {
            round: 3,
            attempt: 0,
            source: e.members[0]
                .mask(2, Ring::U64, &[1, 2, 3])
                .expect_err("slot 2 is used"),
        };
        let text = err.to_string();
        assert!(
            text.contains("round 3 attempt 0") && text.contains('2'),
            "{text}"
        );
        assert_eq!(e.members[0].unused_slots().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(e.slots.get(), 4);
    }

    #[test]
    fn a_survivor_list_other_than_the_epochs_cohort_is_refused() {
        let e = set_up();
        let cohort: BTreeSet<PartyIndex> = e.parties.iter().copied().collect();
        let short = pb::Survivors {
            survivors: (1..=3).map(id).collect(),
        };
        let err = check_epoch_survivors(&e.roster, &short, &cohort).expect_err("one missing");
        assert!(err.to_string().contains("not the epoch's cohort"), "{err}");
        let stranger = pb::Survivors {
            survivors: vec![id(1), id(2), id(3), "bank-9".into()],
        };
        check_epoch_survivors(&e.roster, &stranger, &cohort).expect_err("not a member");
    }

    #[test]
    fn relayed_epoch_shares_must_be_this_attempts_anothers_and_epoch_shares() {
        let e = set_up();
        let me = e.parties[0];
        let opened = |m: &pb::Signed| envelope::open(m, &e.roster).expect("open");
        // Dealt for another attempt of the round.
        let Some(Body::EpochShares(m)) = envelope::open(&e.messages[1], &e.roster)
            .expect("open")
            .message
            .body
        else {
            panic!("an epoch share list");
        };
        let stale = signed(2, (AT.0, AT.1 + 1), Body::EpochShares(m));
        let err =
            epoch_dealt_to_me(&e.roster, JOB, AT, me, e.slots, &opened(&stale)).expect_err("stale");
        assert!(
            matches!(err, ParticipantError::RefusedRound { .. }),
            "{err}"
        );
        // A per-round body where an epoch's setup is expected.
        let advert = signed(2, AT, Body::Advertise(pb::KeyAdvertisement::default()));
        let err =
            epoch_dealt_to_me(&e.roster, JOB, AT, me, e.slots, &opened(&advert)).expect_err("body");
        assert!(err.to_string().contains("epoch share list"), "{err}");
        // This member's own message relayed back to it.
        let err = epoch_dealt_to_me(&e.roster, JOB, AT, me, e.slots, &opened(&e.messages[0]))
            .expect_err("own");
        assert!(err.to_string().contains("own"), "{err}");
        // Decoded with another slot count than the epoch's.
        let other = Slots::new(3).expect("slots");
        epoch_dealt_to_me(&e.roster, JOB, AT, me, other, &opened(&e.messages[1]))
            .expect_err("slot count");
    }

    #[test]
    fn the_run_future_stays_send_with_an_epoch_held_across_awaits() {
        fn send<T: Send>(_: &T) {}
        // Type-checked only: the daemons and the test suites spawn `run`.
        fn check(settings: Settings, key: IdentityKey, c: &mut dyn Contributor) {
            let f = run(settings, key, c, std::future::pending());
            send(&f);
        }
        let _ = check;
    }

    #[test]
    fn an_announcement_sets_up_an_epoch_or_uses_the_one_held() {
        let held = SessionId([7; 32]);
        let announce = |epoch: &[u8], slot| pb::RoundAnnouncement {
            epoch_slots: 4,
            epoch: epoch.to_vec().into(),
            slot,
            ..Default::default()
        };
        assert_eq!(
            epoch_step(1, 0, &announce(&[], 0), Some(&held)).expect("setup"),
            EpochStep::Setup
        );
        assert_eq!(
            epoch_step(1, 0, &announce(&[], 0), None).expect("setup"),
            EpochStep::Setup
        );
        let err = epoch_step(1, 0, &announce(&[], 2), None).expect_err("setup at slot 2");
        assert!(
            matches!(err, ParticipantError::RefusedRound { .. }),
            "{err}"
        );
        assert_eq!(
            epoch_step(1, 0, &announce(&[7; 32], 3), Some(&held)).expect("slot"),
            EpochStep::Slot(3)
        );
        match epoch_step(4, 2, &announce(&[7; 32], 1), None) {
            Err(ParticipantError::EpochNotHeld {
                round: 4,
                attempt: 2,
                epoch,
                held: None,
            }) => assert_eq!(epoch, "07".repeat(32)),
            other => panic!("expected EpochNotHeld, got {other:?}"),
        }
        let err = epoch_step(4, 2, &announce(&[8; 32], 1), Some(&held)).expect_err("another");
        assert!(
            err.to_string().contains(&"08".repeat(32)) && err.to_string().contains(&held.to_hex()),
            "{err}"
        );
        epoch_step(4, 2, &announce(&[7; 31], 1), Some(&held)).expect_err("31 bytes");
    }
}
