//! The participant's own journal: one JSON line per message it signed (job,
//! round, attempt, phase, SHA-256 of the signed payload, the signature),
//! flushed to disk before the message is sent. It lets a participant show an
//! auditor what it sent (`fedcredit audit verify --participant-journal`),
//! and it is the participant's memory across restarts:
//!
//! - which round attempts it already advertised keys for, so it never takes
//!   part in one twice (keys are never reused);
//! - which contributor set it confirmed for each task (by
//!   [`fedcredit_referee::TaskDigest`]): it never confirms another set for
//!   the same task, so no two sums of one task over different sets can be
//!   unmasked, and their difference can never be one member's vector. The
//!   per-round protocol confirms with its survivor-list confirmation
//!   (`consistency-check`); an epoch's slot, which has no such phase, with
//!   its reveal (`unmask`, journaled with the epoch's cohort).
//!
//! It only keeps those promises with one writer: [`Journal::open`] takes the
//! exclusive lock on `<journal>.lock` ([`fedcredit_proto::owner`]) before
//! reading, held while the journal is open, so a second process of the same
//! member fails at once, naming the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ParticipantError;
use fedcredit_proto::owner::{OwnerLock, OwnerLockError};
use fedcredit_referee::TaskDigest;

pub use fedcredit_proto::journal::JournalEntry;

/// The contributor set of a task, as a masked input or a confirmation
/// commits to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskContributors {
    /// The task.
    pub task: TaskDigest,
    /// Member ids, sorted.
    pub contributors: Vec<String>,
    /// The keyed fingerprint of the values contributed (see
    /// [`JournalEntry::contribution`]).
    pub contribution: Option<[u8; 32]>,
}

/// An open journal: a file, or (for in-process tests, the demo and
/// benchmarks, which pass no path) memory that lasts as long as the process.
#[derive(Debug)]
pub struct Journal {
    /// The file, and this process's exclusive right to write it.
    file: Option<(PathBuf, File, OwnerLock)>,
    advertised: BTreeSet<(String, u64, u32)>,
    /// (job, task) → the survivor list confirmed for it.
    confirmed: BTreeMap<(String, TaskDigest), Vec<String>>,
    /// Fingerprint of contributed values → (job, the survivor list confirmed
    /// for them): across jobs, the same values go into one sum only.
    by_contribution: BTreeMap<[u8; 32], (String, Vec<String>)>,
    /// The last message signed (read back or recorded): where this member
    /// stands, for the line it logs when stopped.
    last: Option<JournalEntry>,
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
        let owner = OwnerLock::acquire(path).map_err(|e| match e {
            OwnerLockError::Held { pid, .. } => ParticipantError::JournalInUse {
                journal: path.to_owned(),
                pid,
            },
            e => ParticipantError::JournalLock(e),
        })?;
        let mut journal = Self::in_memory();
        for entry in read(path)? {
            journal.remember(&entry);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        journal.file = Some((path.to_owned(), file, owner));
        Ok(journal)
    }

    /// A journal kept in memory only: its promises hold for this process.
    pub fn in_memory() -> Self {
        Self {
            file: None,
            advertised: BTreeSet::new(),
            confirmed: BTreeMap::new(),
            by_contribution: BTreeMap::new(),
            last: None,
        }
    }

    fn remember(&mut self, entry: &JournalEntry) {
        self.last = Some(entry.clone());
        match entry.phase.as_str() {
            "advertise-keys" => {
                self.advertised
                    .insert((entry.job.clone(), entry.round, entry.attempt));
            }
            // A confirmation, or a slot reveal journaled with its set (a
            // per-round reveal carries none).
            "consistency-check" | "unmask" => {
                if let (Some(task), Some(set)) = (&entry.task, &entry.contributors)
                    && let Some(task) = TaskDigest::from_hex(task)
                {
                    self.confirmed
                        .entry((entry.job.clone(), task))
                        .or_insert_with(|| set.clone());
                }
                if let (Some(fp), Some(set)) = (&entry.contribution, &entry.contributors)
                    && let Some(fp) = hex::decode(fp)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                {
                    self.by_contribution
                        .entry(fp)
                        .or_insert_with(|| (entry.job.clone(), set.clone()));
                }
            }
            _ => {}
        }
    }

    /// Whether keys were already advertised for this round attempt (by this
    /// process or an earlier one).
    pub fn advertised(&self, job: &str, round: u64, attempt: u32) -> bool {
        self.advertised.contains(&(job.to_owned(), round, attempt))
    }

    /// The survivor list this participant confirmed for `task`, if any.
    pub fn confirmed(&self, job: &str, task: &TaskDigest) -> Option<&[String]> {
        self.confirmed
            .get(&(job.to_owned(), *task))
            .map(Vec::as_slice)
    }

    /// The job and survivor list these very values were confirmed for
    /// before, if any (in any job).
    pub fn confirmed_contribution(&self, fingerprint: &[u8; 32]) -> Option<(&str, &[String])> {
        self.by_contribution
            .get(fingerprint)
            .map(|(job, set)| (job.as_str(), set.as_slice()))
    }

    /// Where this member stands, for a log line: the journal and the last
    /// message in it (every record is synced before it is sent, so this is
    /// all a restart needs).
    pub fn summary(&self) -> String {
        let last = self.last.as_ref().map_or_else(
            || "nothing signed yet".to_owned(),
            |e| {
                format!(
                    "last signed job {} round {} attempt {} ({})",
                    e.job, e.round, e.attempt, e.phase
                )
            },
        );
        match &self.file {
            Some((path, _, _)) => format!("journal {} (synced): {last}", path.display()),
            None => format!("journal in memory: {last}"),
        }
    }

    /// Records a signed message, by the SHA-256 of its payload (as
    /// [`fedcredit_proto::envelope::seal_digested`] returns it); durable when
    /// this returns. `contribution` goes with a masked input or a
    /// confirmation.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        job: &str,
        round: u64,
        attempt: u32,
        phase: &str,
        payload_sha256: &[u8; 32],
        signature: &[u8],
        contribution: Option<&TaskContributors>,
    ) -> Result<(), ParticipantError> {
        let entry = JournalEntry {
            job: job.to_owned(),
            round,
            attempt,
            phase: phase.to_owned(),
            payload_sha256: hex::encode(payload_sha256),
            signature: hex::encode(signature),
            unix_millis: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            task: contribution.map(|c| c.task.to_hex()),
            contributors: contribution.map(|c| c.contributors.clone()),
            contribution: contribution.and_then(|c| c.contribution.map(hex::encode)),
        };
        if let Some((path, file, _)) = &mut self.file {
            let mut line =
                serde_json::to_string(&entry).map_err(|e| io(path, std::io::Error::other(e)))?;
            line.push('\n');
            file.write_all(line.as_bytes()).map_err(|e| io(path, e))?;
            file.sync_data().map_err(|e| io(path, e))?;
        }
        self.remember(&entry);
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
    use sha2::{Digest, Sha256};

    fn sha(payload: &[u8]) -> [u8; 32] {
        Sha256::digest(payload).into()
    }

    #[test]
    fn remembers_advertised_attempts_across_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.journal");
        let mut j = Journal::open(&path).expect("open");
        j.record(
            "job",
            2,
            1,
            "advertise-keys",
            &sha(b"payload"),
            &[7; 64],
            None,
        )
        .expect("record");
        j.record("job", 2, 1, "share-keys", &sha(b"more"), &[8; 64], None)
            .expect("record");
        drop(j);
        let j = Journal::open(&path).expect("reopen");
        assert!(
            j.summary()
                .ends_with("(synced): last signed job job round 2 attempt 1 (share-keys)"),
            "{}",
            j.summary()
        );
        assert!(j.advertised("job", 2, 1));
        assert!(!j.advertised("job", 2, 2));
        let entries = read(&path).expect("read");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].payload_sha256, hex::encode(sha(b"payload")));
    }

    #[test]
    fn remembers_the_survivor_list_confirmed_per_task_across_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.journal");
        let task = TaskDigest::from_hex(&"ab".repeat(32)).expect("digest");
        let other = TaskDigest::from_hex(&"cd".repeat(32)).expect("digest");
        let set = TaskContributors {
            task,
            contributors: vec!["bank-a".into(), "bank-b".into(), "bank-c".into()],
            contribution: None,
        };
        let mut j = Journal::open(&path).expect("open");
        j.record(
            "job",
            3,
            0,
            "masked-input",
            &sha(b"m"),
            &[1; 64],
            Some(&set),
        )
        .expect("record");
        assert_eq!(
            j.confirmed("job", &task),
            None,
            "a masked input is no confirmation"
        );
        j.record(
            "job",
            3,
            0,
            "consistency-check",
            &sha(b"c"),
            &[2; 64],
            Some(&set),
        )
        .expect("record");
        drop(j);
        let j = Journal::open(&path).expect("reopen");
        assert_eq!(j.confirmed("job", &task), Some(&set.contributors[..]));
        assert_eq!(j.confirmed("job", &other), None);
        assert_eq!(j.confirmed("other-job", &task), None);
    }

    #[test]
    fn a_slot_reveal_journaled_with_its_set_confirms_the_task_across_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.journal");
        let task = TaskDigest::from_hex(&"ab".repeat(32)).expect("digest");
        let other = TaskDigest::from_hex(&"cd".repeat(32)).expect("digest");
        let set = TaskContributors {
            task,
            contributors: vec!["bank-a".into(), "bank-b".into(), "bank-c".into()],
            contribution: Some([9; 32]),
        };
        let mut j = Journal::open(&path).expect("open");
        // A per-round reveal carries no set and confirms nothing.
        j.record("job", 1, 0, "unmask", &sha(b"u"), &[1; 64], None)
            .expect("record");
        assert_eq!(j.confirmed("job", &task), None);
        // An epoch's slot reveal is its confirmation.
        j.record("job", 3, 0, "unmask", &sha(b"r"), &[2; 64], Some(&set))
            .expect("record");
        assert_eq!(j.confirmed("job", &task), Some(&set.contributors[..]));
        drop(j);
        let j = Journal::open(&path).expect("reopen");
        assert_eq!(j.confirmed("job", &task), Some(&set.contributors[..]));
        assert_eq!(j.confirmed("job", &other), None);
        assert_eq!(
            j.confirmed_contribution(&[9; 32]),
            Some(("job", &set.contributors[..]))
        );
    }

    #[test]
    fn a_second_opener_of_a_journal_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bank-a.journal");
        let held = Journal::open(&path).expect("first opener");
        let err = Journal::open(&path).expect_err("a second opener");
        match &err {
            ParticipantError::JournalInUse { journal, pid } => {
                assert_eq!(journal, &path);
                assert_eq!(*pid, Some(std::process::id()));
            }
            other => panic!("expected JournalInUse, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("bank-a.journal")
                && message.contains("another participant")
                && message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        // The auditor cross-checks a journal while its participant runs.
        read(&path).expect("readers take no lock");
        drop(held);
        Journal::open(&path).expect("free once the first closed it");
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_other_damage_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.journal");
        let mut j = Journal::open(&path).expect("open");
        j.record("job", 0, 0, "poll", &sha(b"p"), &[1; 64], None)
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
