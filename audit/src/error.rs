/// Errors of the audit crate. Verification never fails with an error (it
/// reports what it found, see [`crate::Report`]); only reading a log for
/// display can.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Not a single record could be read.
    #[error("no record of the round log can be read: {0}")]
    Unreadable(String),
    /// The first record is not `JobStarted`, so this is not a round log.
    #[error("record 0 is not a JobStarted record: this is not a fedcredit round log")]
    NotARoundLog,
    /// The logged job specification cannot be parsed.
    #[error("record 0: the logged job specification is not readable: {0}")]
    JobSpec(String),
}

/// Results of the audit crate.
pub type Result<T> = std::result::Result<T, AuditError>;
