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
use fedcredit_proto::v1::{LogBody, Signed, log_body};
use prost::Message as _;
use tracing::warn;

use crate::error::CoordinatorError;

/// Where one appended record is in the file, and its hash: enough to read
/// it back and know it is the very record written (a partial masked input
/// is taken out of the sum by reading its chunks back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    /// Byte offset of its length prefix.
    pub offset: u64,
    /// Bytes of the framed record (prefix included).
    pub len: usize,
    /// SHA-256 of the record's encoding (the next record's `prev_hash`).
    pub hash: [u8; 32],
}

/// An open round log, positioned at its end.
#[derive(Debug)]
pub(crate) struct RoundLog {
    path: PathBuf,
    file: File,
    /// Bytes in the file: where the next record goes.
    end: u64,
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
            end: log.good_len,
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
        self.append_located(key, entry).map(|_| ())
    }

    /// [`RoundLog::append`], saying where the record went.
    pub fn append_located(
        &mut self,
        key: &IdentityKey,
        entry: log_body::Entry,
    ) -> Result<Located, CoordinatorError> {
        let unix_millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let body = LogBody {
            seq: self.next_seq,
            prev_hash: self.prev_hash.to_vec().into(),
            unix_millis,
            entry: Some(entry),
        };
        // Written in its parts: a round's record (the published sum, and
        // the signed outcome that carries it again) is held once, encoded.
        let sealed = roundlog::SealedRecord::new(key, &body);
        drop(body);
        for part in sealed.parts() {
            self.file
                .write_all(part)
                .map_err(|e| io(&self.path, "cannot append", e))?;
        }
        let located = Located {
            offset: self.end,
            len: sealed.len(),
            hash: sealed.hash,
        };
        self.end += sealed.len() as u64;
        self.next_seq += 1;
        self.prev_hash = sealed.hash;
        self.dirty = true;
        Ok(located)
    }

    /// Reads back the participant message of a record this log appended,
    /// refusing it unless its bytes hash to the hash they had when written.
    pub fn read_participant(&self, at: &Located) -> Result<Signed, CoordinatorError> {
        use std::io::{Read, Seek, SeekFrom};
        let bad = |problem: String| {
            CoordinatorError::Log(format!(
                "{}: reading back the record at byte {}: {problem}",
                self.path.display(),
                at.offset
            ))
        };
        let mut file =
            File::open(&self.path).map_err(|e| io(&self.path, "cannot reopen to read back", e))?;
        file.seek(SeekFrom::Start(at.offset))
            .map_err(|e| io(&self.path, "cannot seek to read back", e))?;
        let mut framed = vec![0u8; at.len];
        file.read_exact(&mut framed)
            .map_err(|e| io(&self.path, "cannot read back", e))?;
        let mut cursor = framed.as_slice();
        let len = prost::encoding::decode_varint(&mut cursor)
            .map_err(|e| bad(format!("bad length prefix: {e}")))?;
        if len != cursor.len() as u64 {
            return Err(bad("it is not the record written there".into()));
        }
        let (body, hash) = roundlog::body_and_hash(cursor).map_err(bad)?;
        if hash != at.hash {
            return Err(bad("it is not the record written there".into()));
        }
        let body = LogBody::decode(body).map_err(|e| bad(e.to_string()))?;
        match body.entry {
            Some(log_body::Entry::Participant(signed)) => Ok(signed),
            _ => Err(bad("not a participant message".into())),
        }
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
