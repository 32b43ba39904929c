//! [`RefereeError`]: why an announcement, an outcome or a survivor list does
//! not follow from the job spec and the published results.

/// Why the referee refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefereeError {
    /// The job spec itself cannot be run.
    #[error("the job spec cannot be run: {0}")]
    Spec(String),
    /// A published outcome (as relayed in an announcement) is not valid.
    #[error("published outcome of round {round}: {problem}")]
    BadOutcome {
        /// The round it claims to be.
        round: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// An announcement's round number is not the next one after the
    /// published results.
    #[error(
        "announces round {got}, but {published} rounds are published, so round {published} comes next"
    )]
    WrongRound {
        /// The announced round.
        got: u64,
        /// How many rounds are published.
        published: u64,
    },
    /// The job is over according to its spec and the published results.
    #[error("the job is finished after {published} published rounds; round {got} cannot follow")]
    JobFinished {
        /// The announced round.
        got: u64,
        /// How many rounds are published.
        published: u64,
    },
    /// An announcement field differs from what the job spec and the
    /// published results give.
    #[error(
        "round {round}: announced {field} {announced} differs from the {expected} that follows from the job spec and the published results"
    )]
    Mismatch {
        /// The round.
        round: u64,
        /// Which field (task, codec, dimension, threshold, ...).
        field: &'static str,
        /// What was announced (abridged).
        announced: String,
        /// What the referee expects (abridged).
        expected: String,
    },
    /// A contributor set breaks the job's cohort policy.
    #[error("round {round}: contributors {got} break the job's cohort policy `{policy}`: {why}")]
    Cohort {
        /// The round.
        round: u64,
        /// The policy's name.
        policy: &'static str,
        /// The offending set, by id.
        got: String,
        /// What the policy requires.
        why: String,
    },
    /// The round would take the job over its privacy budget.
    #[error("round {round}: refused by the privacy budget: {message}")]
    Budget {
        /// The round.
        round: u64,
        /// The accountant's reason.
        message: String,
    },
    /// A published sum could not be absorbed by the job.
    #[error("round {round}: the published sum cannot be used: {message}")]
    Absorb {
        /// The round.
        round: u64,
        /// The job's error.
        message: String,
    },
}
