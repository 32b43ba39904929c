use fedcredit_crypto::secagg::admission::AdmissionError;
use fedcredit_crypto::secagg::{PartyIndex, Phase, SecAggError};
use fedcredit_proto::WireError;

/// Why the coordinator rejected a message; mapped to a gRPC status in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The envelope or its contents are malformed or badly signed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The message is for another job.
    #[error("message is for job {got:?}, this coordinator runs job {expected:?}")]
    WrongJob {
        /// The coordinator's job.
        expected: String,
        /// The message's job.
        got: String,
    },
    /// The message is for another round or attempt than the one running.
    #[error(
        "message is for round {got_round} attempt {got_attempt}, the coordinator is at round {round} attempt {attempt}"
    )]
    WrongRound {
        /// Current round.
        round: u64,
        /// Current attempt.
        attempt: u32,
        /// The message's round.
        got_round: u64,
        /// The message's attempt.
        got_attempt: u32,
    },
    /// The message belongs to another phase than the one open.
    #[error("message is for phase {got}, but {open}")]
    WrongPhase {
        /// The message's phase.
        got: String,
        /// What is open now.
        open: String,
    },
    /// The message's body belongs to the other way of setting up secure
    /// aggregation: an epoch's setup shares or slot reveal in a per-round
    /// attempt, or a per-round share, confirmation or reveal in an epoch
    /// attempt.
    #[error("a {body} message does not belong in {attempt}")]
    WrongSetup {
        /// The message body.
        body: &'static str,
        /// What the attempt (or the job) is.
        attempt: String,
    },
    /// A slot reveal for another slot than the one the attempt unmasks.
    #[error("{who}: a reveal for slot {got}, but this attempt unmasks slot {slot} of its epoch")]
    WrongSlot {
        /// The sender.
        who: String,
        /// The slot it revealed for.
        got: u32,
        /// The attempt's slot.
        slot: u32,
    },
    /// The RPC does not match the message body inside the envelope.
    #[error("rpc {rpc} carries a {body} message")]
    WrongRpc {
        /// The RPC called.
        rpc: &'static str,
        /// The message body found.
        body: &'static str,
    },
    /// The sender is not in the cohort this phase accepts from.
    #[error("{who} is not in the cohort of phase {phase}")]
    NotInCohort {
        /// The sender.
        who: String,
        /// The phase.
        phase: Phase,
    },
    /// The sender already sent this phase's message.
    #[error("{who} already sent its {phase} message")]
    Duplicate {
        /// The sender.
        who: String,
        /// The phase.
        phase: Phase,
    },
    /// The message content fails a protocol rule.
    #[error("{who}: {source}")]
    Protocol {
        /// The sender.
        who: String,
        /// The broken rule.
        source: SecAggError,
    },
    /// The message content is not acceptable for this round.
    #[error("{who}: {problem}")]
    Invalid {
        /// The sender.
        who: String,
        /// What is wrong.
        problem: String,
    },
    /// The message breaks an admission rule no other variant names.
    #[error(transparent)]
    Inadmissible(AdmissionError),
    /// The round attempt was aborted before this phase completed.
    #[error("round aborted: {0}")]
    Aborted(String),
    /// A newer poll from the same member replaced this one (one pending
    /// poll per member).
    #[error("superseded by a newer poll from the same member")]
    Superseded,
    /// The message's sender is not the member whose certificate
    /// authenticated the connection: one member relaying another's
    /// signed messages.
    #[error(
        "a message from {sender} arrived on {connection}'s connection; members send only their own messages"
    )]
    NotTheConnectionsMember {
        /// Whose certificate the connection presented.
        connection: String,
        /// The message's signed sender.
        sender: String,
    },
    /// A poll that is not fresh: its time is outside the window around the
    /// coordinator's clock, or its nonce was seen before (a replay).
    #[error("{who}: stale poll: {problem}")]
    StalePoll {
        /// The sender.
        who: String,
        /// Why.
        problem: String,
    },
    /// A member's masked input was refused or its stream broke off earlier
    /// in this attempt: its partial input is out of the sum, and it may not
    /// start again until the next attempt.
    #[error(
        "{who}: its masked input was refused or broken off earlier in this attempt ({why}); it is out of this attempt"
    )]
    InputDropped {
        /// The sender.
        who: String,
        /// What ended its input.
        why: String,
    },
    /// A chunk stream ended, or failed, before its last chunk.
    #[error("{who}: the masked-input stream ended after chunk {received} of {total}")]
    StreamCut {
        /// The sender.
        who: String,
        /// Chunks that arrived.
        received: u32,
        /// Chunks it stated.
        total: u32,
    },
    /// The coordinator is shutting down.
    #[error("the coordinator is shutting down")]
    ShuttingDown,
    /// An outcome asked for (`OutcomeChunks`) of a round not published.
    #[error("round {round} has not been published ({published} rounds are)")]
    NotPublished {
        /// The round asked for.
        round: u64,
        /// How many rounds are published.
        published: usize,
    },
}

impl From<Rejection> for tonic::Status {
    fn from(r: Rejection) -> Self {
        let msg = r.to_string();
        let status = match r {
            Rejection::Wire(WireError::BadSignature { .. } | WireError::UnknownSender(_))
            | Rejection::NotTheConnectionsMember { .. } => tonic::Status::permission_denied(msg),
            Rejection::StalePoll { .. } => tonic::Status::invalid_argument(msg),
            Rejection::Wire(_)
            | Rejection::WrongRpc { .. }
            | Rejection::Invalid { .. }
            | Rejection::StreamCut { .. } => tonic::Status::invalid_argument(msg),
            Rejection::WrongJob { .. }
            | Rejection::WrongRound { .. }
            | Rejection::WrongPhase { .. }
            | Rejection::WrongSetup { .. }
            | Rejection::WrongSlot { .. }
            | Rejection::NotInCohort { .. }
            | Rejection::Duplicate { .. }
            | Rejection::InputDropped { .. }
            | Rejection::Protocol { .. }
            | Rejection::Inadmissible(_) => tonic::Status::failed_precondition(msg),
            Rejection::NotPublished { .. } => tonic::Status::not_found(msg),
            Rejection::Aborted(_) | Rejection::Superseded => tonic::Status::aborted(msg),
            Rejection::ShuttingDown => tonic::Status::unavailable(msg),
        };
        // A refusal is a message turned away for what it is; an aborted
        // attempt, a superseded poll or a shutdown are not.
        let code = status.code();
        if !matches!(code, tonic::Code::Aborted | tonic::Code::Unavailable) {
            crate::metrics::REFUSALS
                .get_or_create(&crate::metrics::RefusalLabel {
                    code: format!("{code:?}"),
                })
                .inc();
        }
        status
    }
}

impl Rejection {
    /// A broken admission rule ([`fedcredit_crypto::secagg::admission`]),
    /// naming parties by `who` (their roster id).
    pub(crate) fn admission(e: AdmissionError, who: impl Fn(PartyIndex) -> String) -> Self {
        let invalid = |party: PartyIndex, problem: String| Rejection::Invalid {
            who: who(party),
            problem,
        };
        match e {
            AdmissionError::NotInCohort { phase, party } => Rejection::NotInCohort {
                who: who(party),
                phase,
            },
            AdmissionError::Duplicate { phase, party } => Rejection::Duplicate {
                who: who(party),
                phase,
            },
            AdmissionError::Excluded { party } => Rejection::Protocol {
                who: who(party),
                source: SecAggError::ExcludedRevealer(party),
            },
            AdmissionError::ShareToSelf { dealer } => invalid(
                dealer,
                "a share addressed to itself is not one per other member of U1".into(),
            ),
            AdmissionError::ShareNotForU1 { dealer, recipient } => invalid(
                dealer,
                format!(
                    "share addressed to {}, who is not in U1, is not one per other member of U1",
                    who(recipient)
                ),
            ),
            AdmissionError::ShareNotForNeighbour { dealer, recipient } => invalid(
                dealer,
                format!(
                    "share addressed to {}, who is not its neighbour in the round's graph (derived from the session id)",
                    who(recipient)
                ),
            ),
            AdmissionError::ShareTwice { dealer, recipient } => invalid(
                dealer,
                format!(
                    "two shares addressed to {} are not one per other member of U1",
                    who(recipient)
                ),
            ),
            AdmissionError::SharesMissing {
                dealer,
                got,
                expected,
                missing,
            } => invalid(
                dealer,
                format!(
                    "sent {got} share ciphertexts, expected one for each of its {expected} neighbours in U1 (none for {})",
                    missing
                        .iter()
                        .map(|p| who(*p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            AdmissionError::CommitmentsNotForU1 {
                dealer,
                got,
                expected,
            } => Rejection::Protocol {
                who: who(dealer),
                source: SecAggError::ShareCommitmentsNotForU1 {
                    dealer,
                    got,
                    expected,
                },
            },
            AdmissionError::WrongLength {
                party,
                expected,
                got,
            } => invalid(
                party,
                format!("masked input: {got} words, the round aggregates {expected} words"),
            ),
            AdmissionError::PartialRingValue {
                party,
                words,
                limbs,
            } => invalid(
                party,
                format!(
                    "masked input: {words} words is not a whole number of ring values of {limbs} u64 limbs each"
                ),
            ),
            AdmissionError::WrongSession { party } => Rejection::Protocol {
                who: who(party),
                source: SecAggError::SessionMismatch(party),
            },
            AdmissionError::SurvivorListMismatch { party, .. } => invalid(
                party,
                "signed a survivor list that differs from the one announced".into(),
            ),
            e @ (AdmissionError::ChunkWrongSession { party }
            | AdmissionError::ChunkOutOfOrder { party, .. }
            | AdmissionError::ChunkOutOfBounds { party, .. }) => invalid(party, e.to_string()),
            e => Rejection::Inadmissible(e),
        }
    }
}

/// Why a job failed or the coordinator could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Too few members are present to start (or the job needs them all).
    #[error("join: {have} of {members} members are here, {need} are needed{}{}", left_part(.left), absent_part(.absent))]
    TooFewJoined {
        /// How many are here.
        have: usize,
        /// Members of the consortium.
        members: usize,
        /// How many are needed.
        need: usize,
        /// Members that arrived, then left: (id, reason code).
        left: Vec<(String, String)>,
        /// Members never heard from.
        absent: Vec<String>,
    },
    /// Every attempt of a round was aborted.
    #[error("round {round} failed after {attempts} attempt(s); last: {reason}")]
    RoundFailed {
        /// The round.
        round: u64,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt was aborted.
        reason: String,
    },
    /// The next round cannot publish: members it needs left the job with a
    /// signed departure and have not come back. Failing at once beats
    /// announcing an attempt that everyone left would refuse in silence.
    #[error("round {round} cannot publish: {need}; left the job: {}", left_list(.left))]
    CohortLeft {
        /// The round.
        round: u64,
        /// What the round needs, in words.
        need: String,
        /// The members it needs that left: (id, reason code).
        left: Vec<(String, String)>,
    },
    /// The job's inputs or settings cannot run.
    #[error("job: {0}")]
    Job(String),
    /// The round log cannot be read, trusted or written.
    #[error("round log: {0}")]
    Log(String),
    /// Another process holds the round log: two coordinators writing one log
    /// would overwrite each other's records.
    #[error(
        "round log {} is in use by another coordinator{}; stop that one first, or give this one its own log (`--log`)",
        log.display(),
        pid.map_or_else(String::new, |pid| format!(" (pid {pid})"))
    )]
    LogInUse {
        /// The round log.
        log: std::path::PathBuf,
        /// The holder's process id, when it could be read.
        pid: Option<u32>,
    },
    /// Shut down before the job finished.
    #[error("shut down before the job finished")]
    ShutDown,
    /// The operator abandoned the job: it is never resumed.
    #[error("abandoned by the operator: {0}")]
    Abandoned(String),
}

impl CoordinatorError {
    /// The job failed for want of members, not for its data, its settings or
    /// its log: a restarted coordinator resumes it once they are back.
    pub fn resumable(&self) -> bool {
        matches!(
            self,
            CoordinatorError::TooFewJoined { .. }
                | CoordinatorError::RoundFailed { .. }
                | CoordinatorError::CohortLeft { .. }
        )
    }
}

fn left_part(left: &[(String, String)]) -> String {
    if left.is_empty() {
        return String::new();
    }
    format!("; arrived, then left: {}", left_list(left))
}

fn left_list(left: &[(String, String)]) -> String {
    let each: Vec<String> = left
        .iter()
        .map(|(id, why)| format!("{id} ({why})"))
        .collect();
    each.join(", ")
}

fn absent_part(absent: &[String]) -> String {
    if absent.is_empty() {
        return String::new();
    }
    format!("; never arrived: {}", absent.join(", "))
}
