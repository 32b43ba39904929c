use std::path::PathBuf;

use fedcredit_crypto::secagg::SecAggError;
use fedcredit_proto::WireError;

/// Why a participant stopped or refused a round.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParticipantError {
    /// A config or roster file is wrong.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// An input file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    ReadInput {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An input file holds a value that is not a finite number, or the wrong count.
    #[error("{}:{line}: {problem}", file.display())]
    BadInput {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A training or test CSV file does not fit the job's schema, or is not
    /// well-formed CSV. Found when the file is loaded, before any round.
    #[error("{}:{line}: {problem}", file.display())]
    Data {
        /// The file.
        file: PathBuf,
        /// 1-based line where the offending record starts (the header is line 1).
        line: u64,
        /// What is wrong: the column, the value and what was expected.
        problem: String,
    },
    /// A Parquet file does not fit the job's schema (a missing column, a
    /// column of the wrong type) or holds a value it cannot take (null,
    /// NaN, an undeclared label), found when the file is loaded.
    #[error("{}: {}{problem}", file.display(), row.map_or_else(String::new, |r| format!("row {r}: ")))]
    Table {
        /// The file.
        file: PathBuf,
        /// 1-based data row, when one row is at fault.
        row: Option<u64>,
        /// What is wrong: the column, the value and what was expected.
        problem: String,
    },
    /// The identity key file does not match this member's roster entry.
    #[error("the key file does not match the public key listed for {id} in {}", consortium.display())]
    KeyMismatch {
        /// This member's id.
        id: String,
        /// The consortium file.
        consortium: PathBuf,
    },
    /// The coordinator could not be reached before the connect deadline.
    #[error("cannot reach the coordinator at {url}: {reason}")]
    Unreachable {
        /// Its address.
        url: String,
        /// The last error.
        reason: String,
    },
    /// The TLS handshake with the coordinator failed: retrying cannot help
    /// until a certificate, key or consortium file is fixed.
    #[error("TLS with the coordinator at {url}: {failure}")]
    Tls {
        /// Its address.
        url: String,
        /// What failed, and what to check.
        failure: String,
    },
    /// The coordinator answered with an error this participant cannot recover from.
    #[error("coordinator refused {rpc}: {status}")]
    Refused {
        /// The RPC.
        rpc: &'static str,
        /// Its status message.
        status: String,
    },
    /// The coordinator's message breaks the protocol or the consortium's settings.
    #[error("refusing round {round} attempt {attempt}: {reason}")]
    RefusedRound {
        /// The round.
        round: u64,
        /// The attempt.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// A protocol rule failed while running a round.
    #[error("round {round} attempt {attempt}: {source}")]
    Protocol {
        /// The round.
        round: u64,
        /// The attempt.
        attempt: u32,
        /// The broken rule.
        source: SecAggError,
    },
    /// This participant's contribution could not be computed.
    #[error("cannot contribute to round {round}: {reason}")]
    Contribution {
        /// The round.
        round: u64,
        /// Why.
        reason: String,
    },
    /// An announcement does not follow from the job spec and the published
    /// results (see `fedcredit_referee`).
    #[error("refusing round {round} attempt {attempt}: {source}")]
    Referee {
        /// The round.
        round: u64,
        /// The attempt.
        attempt: u32,
        /// The rule it breaks.
        source: fedcredit_referee::RefereeError,
    },
    /// The coordinator asks for a second contributor set for a task this
    /// participant already confirmed another set for: two sums of one task
    /// over different sets would reveal a member's vector.
    #[error(
        "refusing round {round} attempt {attempt}: task {task} was confirmed with contributors \
         [{confirmed}]; this attempt asks for [{asked}]"
    )]
    ContributorSetChanged {
        /// The round.
        round: u64,
        /// The attempt.
        attempt: u32,
        /// The task's digest (abridged).
        task: String,
        /// The set confirmed before.
        confirmed: String,
        /// The set asked for now.
        asked: String,
    },
    /// The coordinator asks to sum values this member already contributed,
    /// in this or an earlier job, with another contributor set: the two
    /// sums' difference would be a function of fewer members' values (the
    /// cross-job differencing attack).
    #[error(
        "refusing round {round} attempt {attempt}: these exact values were summed in job {job} \
         with contributors [{confirmed}]; this attempt asks for [{asked}]"
    )]
    ContributionRepeated {
        /// The round.
        round: u64,
        /// The attempt.
        attempt: u32,
        /// The job where they were confirmed before.
        job: String,
        /// The set confirmed before.
        confirmed: String,
        /// The set asked for now.
        asked: String,
    },
    /// An attempt uses a slot of an epoch this participant does not hold
    /// (it restarted since the setup, or missed it): it sends nothing, and
    /// the coordinator, short of its masked input, sets up a new epoch.
    #[error(
        "skipping round {round} attempt {attempt}: it uses epoch {epoch}, which this participant \
         does not hold ({}); the next setup includes it again",
        held.as_deref().map_or_else(|| "it holds none".to_owned(), |h| format!("it holds {h}"))
    )]
    EpochNotHeld {
        /// The round.
        round: u64,
        /// The attempt.
        attempt: u32,
        /// The epoch the announcement names (hex).
        epoch: String,
        /// The epoch held, if any (hex).
        held: Option<String>,
    },
    /// Another process holds this participant's journal: two processes
    /// journaling as one member could each confirm a different contributor
    /// set for one task, which the journal exists to prevent.
    #[error(
        "journal {} is in use by another participant{}; run one process per member, or give each config its own `journal`",
        journal.display(),
        pid.map_or_else(String::new, |pid| format!(" (pid {pid})"))
    )]
    JournalInUse {
        /// The journal.
        journal: PathBuf,
        /// The holder's process id, when it could be read.
        pid: Option<u32>,
    },
    /// The journal's lock file cannot be created or locked.
    #[error(transparent)]
    JournalLock(fedcredit_proto::owner::OwnerLockError),
    /// The job finished without success.
    #[error("the coordinator ended the job: {0}")]
    JobFailed(String),
    /// The coordinator ended the job without success after publishing
    /// rounds: those rounds, replayed and checked as a finished job's are,
    /// so that what was published is not lost with the job.
    #[error("the coordinator ended the job: {reason}")]
    JobEnded {
        /// The coordinator's reason.
        reason: String,
        /// The rounds published before the end, as the referee replayed them.
        published: Vec<std::sync::Arc<fedcredit_referee::Published>>,
    },
    /// This participant left the job because it could not compute its
    /// contribution, after rounds were published: those rounds, as it
    /// replayed them from the last announcement it accepted, so that a
    /// member with a bad input file for one period keeps the earlier sums.
    #[error("{source}")]
    LeftAfterPublished {
        /// Why it left.
        source: Box<ParticipantError>,
        /// The rounds published before it left, as the referee replayed them.
        published: Vec<std::sync::Arc<fedcredit_referee::Published>>,
    },
    /// Shut down before the job finished.
    #[error("shut down before the job finished")]
    ShutDown,
}

impl ParticipantError {
    /// The rounds published before the job ended for this member without
    /// success (the coordinator failed it, or this member left because its
    /// own contribution failed), as it replayed and checked them.
    pub fn published_before(&self) -> Option<&[std::sync::Arc<fedcredit_referee::Published>]> {
        match self {
            ParticipantError::JobEnded { published, .. }
            | ParticipantError::LeftAfterPublished { published, .. } => Some(published),
            _ => None,
        }
    }

    /// The fixed reason code that tells the coordinator (and, through it,
    /// every member) why this participant leaves; never the details, which
    /// may hold row data and stay in this participant's own log.
    pub fn reason_code(&self) -> fedcredit_proto::v1::ReasonCode {
        use fedcredit_proto::v1::ReasonCode;
        match self {
            ParticipantError::BadInput { .. }
            | ParticipantError::Data { .. }
            | ParticipantError::Table { .. } => ReasonCode::ReasonInvalidData,
            ParticipantError::Wire(_)
            | ParticipantError::ReadInput { .. }
            | ParticipantError::JournalInUse { .. }
            | ParticipantError::JournalLock(_)
            | ParticipantError::Tls { .. } => ReasonCode::ReasonLocalConfig,
            ParticipantError::RefusedRound { .. }
            | ParticipantError::Referee { .. }
            | ParticipantError::ContributorSetChanged { .. }
            | ParticipantError::ContributionRepeated { .. }
            | ParticipantError::EpochNotHeld { .. } => ReasonCode::ReasonRefusedTask,
            ParticipantError::Protocol { .. } | ParticipantError::Refused { .. } => {
                ReasonCode::ReasonProtocolViolation
            }
            ParticipantError::Contribution { .. } => ReasonCode::ReasonContributionFailed,
            ParticipantError::KeyMismatch { .. } => ReasonCode::ReasonKeyMismatch,
            ParticipantError::ShutDown => ReasonCode::ReasonShuttingDown,
            ParticipantError::LeftAfterPublished { source, .. } => source.reason_code(),
            ParticipantError::Unreachable { .. }
            | ParticipantError::JobFailed(_)
            | ParticipantError::JobEnded { .. } => ReasonCode::ReasonUnspecified,
        }
    }
}
