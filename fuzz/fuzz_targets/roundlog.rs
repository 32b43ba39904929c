//! The round log as a file: framing, record decoding, sequence numbers, the
//! hash chain and the coordinator's signatures (`roundlog::read`, shared by
//! the coordinator's restart and the auditor), then everything the auditor
//! does with a log it is handed: `verify` against the demo consortium,
//! `show` (the timeline), and the cross-check of bank-a's journal.
//!
//! Why: the log comes from the coordinator, the party the protocol guards
//! against, and from disk after a crash; a torn, cut or forged file must be
//! named as such, never crash the auditor or the restarting coordinator.
#![no_main]
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use fedcredit_fuzz::{Job, SUM_LOG, fixture, journal_of};
use fedcredit_proto::journal::JournalEntry;
use fedcredit_proto::roundlog;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture(Job::SecureSum);
    static JOURNAL: OnceLock<Vec<JournalEntry>> = OnceLock::new();
    let journal = JOURNAL.get_or_init(|| journal_of(f, SUM_LOG, "bank-a"));

    let _ = roundlog::read(data, None);
    let file = roundlog::read(data, Some(f.consortium.roster.coordinator()));
    let _ = (file.entries.len(), file.good_len, file.end);

    let report = fedcredit_audit::verify(data, &f.consortium);
    let _ = report.to_string();
    let _ = serde_json::to_string(&report);
    if let Ok(timeline) = fedcredit_audit::show(data) {
        let _ = timeline.to_string();
        let _ = serde_json::to_string(&timeline);
    }
    let check = fedcredit_audit::journal::cross_check(data, &f.consortium, journal);
    let _ = check.to_string();
});
