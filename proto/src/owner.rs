//! Exclusive ownership of a file that exactly one process may write: the
//! coordinator's round log, a participant's journal. Two writers would
//! interleave or overwrite records (two coordinators on one log) or break
//! the journal's promises (two participants, one journal, each confirming a
//! different contributor set for one task).
//!
//! The owner holds an exclusive [`File::try_lock`] on a sidecar file
//! `<file>.lock` for as long as it writes, and writes its process id into
//! it, so a second process fails at once and can name the holder. Readers
//! (the auditor) take no lock. The lock is the operating system's: it goes
//! with the process, even one killed with `SIGKILL`, so a stale `.lock` file
//! left behind never blocks anyone.
//!
//! ```
//! use fedcredit_proto::owner::{OwnerLock, OwnerLockError};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = dir.path().join("rounds.log");
//! let held = OwnerLock::acquire(&log).unwrap();
//! match OwnerLock::acquire(&log) {
//!     Err(OwnerLockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
//!     other => panic!("a second owner got {other:?}"),
//! }
//! drop(held);
//! OwnerLock::acquire(&log).unwrap();
//! ```

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why a process could not become the owner of a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerLockError {
    /// Another process (or another handle in this one) owns the file.
    #[error("{} is locked by another process{}", file.display(), pid_note(*pid))]
    Held {
        /// The owned file.
        file: PathBuf,
        /// The holder's process id, as it wrote it into the lock file
        /// (`None` if it has not written it yet).
        pid: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("{}: cannot lock: {source}", lock.display())]
    Io {
        /// The lock file.
        lock: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn pid_note(pid: Option<u32>) -> String {
    pid.map_or_else(String::new, |pid| format!(" (pid {pid})"))
}

/// The exclusive right to write one file, held until dropped.
#[derive(Debug)]
pub struct OwnerLock {
    lock: PathBuf,
    file: File,
}

/// The sidecar lock file of `file`: `rounds.log` → `rounds.log.lock`.
pub fn lock_path(file: &Path) -> PathBuf {
    let mut name = OsString::from(file.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

impl OwnerLock {
    /// Takes the exclusive lock on `<file>.lock` (created if missing) and
    /// writes this process's id into it. Fails at once, without waiting, if
    /// another process holds it.
    pub fn acquire(file: &Path) -> Result<Self, OwnerLockError> {
        let lock = lock_path(file);
        let io = |source| OwnerLockError::Io {
            lock: lock.clone(),
            source,
        };
        // Not truncated on open: until we hold the lock, the pid in it is the holder's.
        let mut handle = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock)
            .map_err(io)?;
        match handle.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder may not have written its pid yet: then it is unknown.
                let pid = handle
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(OwnerLockError::Held {
                    file: file.to_owned(),
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        handle
            .set_len(0)
            .and_then(|()| handle.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(handle, "{}", std::process::id()))
            .and_then(|()| handle.sync_data())
            .map_err(io)?;
        Ok(Self { lock, file: handle })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.lock
    }
}

impl Drop for OwnerLock {
    /// Clears the pid before the lock goes (the file stays: removing it
    /// could let two processes lock two different files of one name).
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_handle_in_the_same_process_is_refused_and_told_the_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("rounds.log");
        let held = OwnerLock::acquire(&log).expect("first owner");
        assert_eq!(held.path(), dir.path().join("rounds.log.lock"));
        let err = OwnerLock::acquire(&log).expect_err("a second owner must be refused");
        match &err {
            OwnerLockError::Held { file, pid } => {
                assert_eq!(file, &log);
                assert_eq!(*pid, Some(std::process::id()));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("rounds.log")
                && message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
    }

    #[test]
    fn the_lock_goes_with_its_holder_and_the_pid_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = dir.path().join("bank-a.journal");
        drop(OwnerLock::acquire(&journal).expect("first owner"));
        let again = OwnerLock::acquire(&journal).expect("free once dropped");
        assert_eq!(
            std::fs::read_to_string(again.path()).expect("read"),
            format!("{}\n", std::process::id())
        );
        drop(again);
        assert_eq!(
            std::fs::read_to_string(lock_path(&journal)).expect("read"),
            "",
            "a released lock names no holder"
        );
    }

    #[test]
    fn an_unwritten_pid_is_unknown_not_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("rounds.log");
        let held = OwnerLock::acquire(&log).expect("first owner");
        // As if the holder had locked but not yet written its pid.
        std::fs::write(held.path(), "").expect("clear");
        match OwnerLock::acquire(&log) {
            Err(OwnerLockError::Held { pid: None, .. }) => {}
            other => panic!("expected Held without pid, got {other:?}"),
        }
    }
}
