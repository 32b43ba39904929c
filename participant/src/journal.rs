//! The participant's own journal: one JSON line per message it signed (job,
//! round, attempt, phase, SHA-256 of the signed payload, the signature),
//! flushed to disk before the message is sent. It lets a participant show an
//! auditor what it sent (`fedcredit audit verify --participant-journal`),
//! and after a restart it still knows which round attempts it already
//! advertised keys for, so it never takes part in one twice.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::ParticipantError;

pub use fedcredit_proto::journal::JournalEntry;

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    advertised: BTreeSet<(String, u64, u32)>,
}

fn io(path: &Path, e: std::io::Error) -> ParticipantError {
    ParticipantError::ReadInput {
        file: path.to_owned(),
        source: e,
    }
}

impl Journal {
    /// Opens (or creates) the journal and reads what it already holds.
    pub fn open(path: &Path) -> Result<Self, ParticipantError> {
        let mut advertised = BTreeSet::new();
        for entry in read(path)? {
            if entry.phase == "advertise-keys" {
                advertised.insert((entry.job, entry.round, entry.attempt));
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            advertised,
        })
    }

    /// Whether keys were already advertised for this round attempt (by this
    /// process or an earlier one).
    pub fn advertised(&self, job: &str, round: u64, attempt: u32) -> bool {
        self.advertised.contains(&(job.to_owned(), round, attempt))
    }

    /// Records a signed message; durable when this returns.
    pub fn record(
        &mut self,
        job: &str,
        round: u64,
        attempt: u32,
        phase: &str,
        payload: &[u8],
        signature: &[u8],
    ) -> Result<(), ParticipantError> {
        let entry = JournalEntry {
            job: job.to_owned(),
            round,
            attempt,
            phase: phase.to_owned(),
            payload_sha256: hex::encode(Sha256::digest(payload)),
            signature: hex::encode(signature),
            unix_millis: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let mut line =
            serde_json::to_string(&entry).map_err(|e| io(&self.path, std::io::Error::other(e)))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| io(&self.path, e))?;
        self.file.sync_data().map_err(|e| io(&self.path, e))?;
        if phase == "advertise-keys" {
            self.advertised.insert((entry.job, round, attempt));
        }
        Ok(())
    }
}

/// Reads a journal file (missing file = empty). A torn last line (a crash
/// mid-write) is ignored; any other bad line is an error naming it.
pub fn read(path: &Path) -> Result<Vec<JournalEntry>, ParticipantError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path, e)),
    };
    fedcredit_proto::journal::parse(&text).map_err(|e| ParticipantError::BadInput {
        file: path.to_owned(),
        line: 0,
        problem: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_advertised_attempts_across_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.journal");
        let mut j = Journal::open(&path).expect("open");
        j.record("job", 2, 1, "advertise-keys", b"payload", &[7; 64])
            .expect("record");
        j.record("job", 2, 1, "share-keys", b"more", &[8; 64])
            .expect("record");
        drop(j);
        let j = Journal::open(&path).expect("reopen");
        assert!(j.advertised("job", 2, 1));
        assert!(!j.advertised("job", 2, 2));
        let entries = read(&path).expect("read");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].payload_sha256,
            hex::encode(Sha256::digest(b"payload"))
        );
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_other_damage_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.journal");
        let mut j = Journal::open(&path).expect("open");
        j.record("job", 0, 0, "poll", b"p", &[1; 64])
            .expect("record");
        drop(j);
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("{\"job\":\"jo");
        std::fs::write(&path, &text).expect("write");
        assert_eq!(read(&path).expect("torn tail ignored").len(), 1);
        std::fs::write(&path, format!("garbage\n{text}")).expect("write");
        let err = read(&path).expect_err("bad first line");
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
