//! The coordinator's side of the round log: appending signed, hash-chained
//! records, and reopening the log after a crash. The format itself lives in
//! `fedcredit_proto::roundlog`, shared with the auditor.
//!
//! Records are written as they happen and flushed to disk (`fdatasync`)
//! before the coordinator acts on them: before any reply, phase change or
//! publication. A crash can therefore lose only records nobody has seen
//! the consequences of.
//!
//! One coordinator owns a log: [`RoundLog::open`] takes the exclusive lock
//! on `<log>.lock` ([`fedcredit_proto::owner`]) before reading, and holds it
//! as long as the log is open. The auditor reads without a lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fedcredit_crypto::identity::{IdentityKey, IdentityPublic};
use fedcredit_proto::owner::{OwnerLock, OwnerLockError};
use fedcredit_proto::roundlog::{self, End, Entry};
use fedcredit_proto::v1::{LogBody, log_body};
use tracing::warn;

use crate::error::CoordinatorError;

/// An open round log, positioned at its end.
#[derive(Debug)]
pub(crate) struct RoundLog {
    path: PathBuf,
    file: File,
    next_seq: u64,
    prev_hash: [u8; 32],
    dirty: bool,
    /// This process's exclusive right to write the log, held while it is open.
    _owner: OwnerLock,
}

fn io(path: &Path, what: &str, e: std::io::Error) -> CoordinatorError {
    CoordinatorError::Log(format!("{}: {what}: {e}", path.display()))
}

impl RoundLog {
    /// Opens (or creates) the log and returns the records already in it.
    /// A torn final record (a crash mid-write) is cut off, and its bytes are
    /// kept beside the log for inspection; any other damage is an error: the
    /// coordinator will not build on a log it cannot trust.
    pub fn open(
        path: &Path,
        coordinator: &IdentityPublic,
    ) -> Result<(Self, Vec<Entry>), CoordinatorError> {
        // Lock before reading: another coordinator may be appending.
        let owner = OwnerLock::acquire(path).map_err(|e| match e {
            OwnerLockError::Held { pid, .. } => CoordinatorError::LogInUse {
                log: path.to_owned(),
                pid,
            },
            e => CoordinatorError::Log(e.to_string()),
        })?;
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(path, "cannot read the round log", e)),
        };
        let log = roundlog::read(&bytes, Some(coordinator));
        match &log.end {
            End::Clean => {}
            End::Truncated {
                offset,
                record,
                detail,
            } => {
                let aside = path.with_extension(format!("torn-{offset}"));
                std::fs::write(&aside, &bytes[log.good_len as usize..])
                    .map_err(|e| io(&aside, "cannot keep the torn tail", e))?;
                warn!(log = %path.display(), record, offset, %detail, kept = %aside.display(), "the round log ends in a torn record (a crash mid-write); cutting it off");
            }
            End::Broken {
                offset,
                record,
                problem,
            } => {
                return Err(CoordinatorError::Log(format!(
                    "{}: record {record} (byte {offset}): {problem}; refusing to continue from a damaged log",
                    path.display()
                )));
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io(path, "cannot open the round log", e))?;
        file.set_len(log.good_len)
            .map_err(|e| io(path, "cannot cut the torn tail", e))?;
        let mut this = Self {
            path: path.to_owned(),
            file,
            next_seq: log.entries.len() as u64,
            prev_hash: log.entries.last().map_or(roundlog::GENESIS, |e| e.hash),
            dirty: false,
            _owner: owner,
        };
        use std::io::Seek;
        this.file
            .seek(std::io::SeekFrom::Start(log.good_len))
            .map_err(|e| io(path, "cannot seek to the end", e))?;
        this.sync()?;
        Ok((this, log.entries))
    }

    /// Appends a record (written now, made durable by the next [`RoundLog::sync`]).
    pub fn append(
        &mut self,
        key: &IdentityKey,
        entry: log_body::Entry,
    ) -> Result<(), CoordinatorError> {
        let unix_millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let body = LogBody {
            seq: self.next_seq,
            prev_hash: self.prev_hash.to_vec().into(),
            unix_millis,
            entry: Some(entry),
        };
        let (framed, hash) = roundlog::seal_record(key, &body);
        self.file
            .write_all(&framed)
            .map_err(|e| io(&self.path, "cannot append", e))?;
        self.next_seq += 1;
        self.prev_hash = hash;
        self.dirty = true;
        Ok(())
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records the log holds.
    pub fn records(&self) -> u64 {
        self.next_seq
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<(), CoordinatorError> {
        if self.dirty {
            self.file
                .sync_data()
                .map_err(|e| io(&self.path, "cannot flush to disk", e))?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_of_a_log_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rounds.log");
        let key = IdentityKey::generate(&mut rand::rngs::OsRng);
        let (held, _) = RoundLog::open(&path, &key.public()).expect("first opener");
        let err = RoundLog::open(&path, &key.public()).expect_err("a second opener");
        match &err {
            CoordinatorError::LogInUse { log, pid } => {
                assert_eq!(log, &path);
                assert_eq!(*pid, Some(std::process::id()));
            }
            other => panic!("expected LogInUse, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("rounds.log")
                && message.contains("another coordinator")
                && message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        // An auditor reads the log while the coordinator holds it.
        std::fs::read(&path).expect("readers take no lock");
        drop(held);
        RoundLog::open(&path, &key.public()).expect("free once the first closed it");
    }
}
