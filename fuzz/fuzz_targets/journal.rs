//! The participant journal (one JSON line per signed message), read two
//! ways: by the participant on restart (`Journal::open`, which rebuilds
//! what it promised: attempts it advertised keys for, the contributor set
//! it confirmed per task) and by the auditor (`journal::parse`, then the
//! cross-check against the demo's real round log).
//!
//! Why: the journal comes from disk, possibly torn by a crash mid-write, and
//! the auditor is handed it by a participant it does not trust; a damaged
//! journal must be refused by line, never crash either reader.
#![no_main]
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use fedcredit_fuzz::{Job, SUM_LOG, fixture};
use fedcredit_participant::journal::Journal;
use fedcredit_proto::journal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture(Job::SecureSum);
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"));

    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(entries) = journal::parse(text)
    {
        let check = fedcredit_audit::journal::cross_check(SUM_LOG, &f.consortium, &entries);
        let _ = check.to_string();
    }

    let path = dir.path().join("fuzz.journal");
    if std::fs::write(&path, data).is_ok()
        && let Ok(j) = Journal::open(&path)
    {
        let job = &f.consortium.job.id;
        let _ = j.advertised(job, 0, 0);
        if let Ok(referee) = fedcredit_referee::Referee::new(&f.consortium)
            && let Some(plan) = referee.next_plan()
        {
            let _ = j.confirmed(job, &referee.digest(&plan));
        }
    }
});
