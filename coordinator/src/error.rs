use fedcredit_crypto::secagg::{Phase, SecAggError};
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
    /// The round attempt was aborted before this phase completed.
    #[error("round aborted: {0}")]
    Aborted(String),
    /// A newer poll from the same member replaced this one (one pending
    /// poll per member).
    #[error("superseded by a newer poll from the same member")]
    Superseded,
    /// The coordinator is shutting down.
    #[error("the coordinator is shutting down")]
    ShuttingDown,
}

impl From<Rejection> for tonic::Status {
    fn from(r: Rejection) -> Self {
        let msg = r.to_string();
        match r {
            Rejection::Wire(WireError::BadSignature { .. } | WireError::UnknownSender(_)) => {
                tonic::Status::permission_denied(msg)
            }
            Rejection::Wire(_) | Rejection::WrongRpc { .. } | Rejection::Invalid { .. } => {
                tonic::Status::invalid_argument(msg)
            }
            Rejection::WrongJob { .. }
            | Rejection::WrongRound { .. }
            | Rejection::WrongPhase { .. }
            | Rejection::NotInCohort { .. }
            | Rejection::Duplicate { .. }
            | Rejection::Protocol { .. } => tonic::Status::failed_precondition(msg),
            Rejection::Aborted(_) | Rejection::Superseded => tonic::Status::aborted(msg),
            Rejection::ShuttingDown => tonic::Status::unavailable(msg),
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
    /// Too few participants arrived before the join deadline.
    #[error(
        "join: only {have} of {members} participants arrived before the deadline, {need} are needed"
    )]
    TooFewJoined {
        /// How many arrived.
        have: usize,
        /// Members of the consortium.
        members: usize,
        /// How many are needed.
        need: usize,
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
    /// The job's inputs or settings cannot run.
    #[error("job: {0}")]
    Job(String),
    /// The round log cannot be read, trusted or written.
    #[error("round log: {0}")]
    Log(String),
    /// Shut down before the job finished.
    #[error("shut down before the job finished")]
    ShutDown,
}
