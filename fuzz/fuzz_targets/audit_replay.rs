//! The auditor's replay of a round log whose chain and signatures are all
//! valid: the input is a sequence of length-delimited `LogBody` encodings,
//! which this target numbers, chains and signs with the coordinator's key
//! (and whose participant messages it re-signs with their senders' keys,
//! and coordinator messages with the coordinator's), as a dishonest
//! coordinator can; then `verify`, `show` and the journal cross-check.
//!
//! Why: `roundlog` stops at the first bad signature, so it rarely reaches
//! the replay; a coordinator signs whatever it likes, so everything behind
//! the chain (cohorts, session ids, unmasking, the job replay, the model
//! comparison) must refuse a crafted log by name, never by a panic.
#![no_main]
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use fedcredit_fuzz::{Fixture, Job, SUM_LOG, fixture, journal_of, split_mode};
use fedcredit_proto::journal::JournalEntry;
use fedcredit_proto::roundlog::{self, GENESIS};
use fedcredit_proto::v1::{LogBody, log_body::Entry};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// Re-signs what a dishonest coordinator could re-sign: its own messages,
/// and (with the fixture's keys) the members' messages, so that the fuzzer's
/// changes to them reach the checks behind the signatures.
fn resign(f: &Fixture, body: &mut LogBody) {
    match &mut body.entry {
        Some(Entry::Participant(s)) => *s = f.sign_participant(&s.payload),
        Some(Entry::Announcement(s)) => *s = f.sign_coordinator(&s.payload),
        Some(Entry::RoundCompleted(rc)) => {
            if let Some(s) = &mut rc.outcome {
                *s = f.sign_coordinator(&s.payload);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let (mode, mut rest) = split_mode(data);
    let f = fixture(Job::SecureSum);
    static JOURNAL: OnceLock<Vec<JournalEntry>> = OnceLock::new();
    let journal = JOURNAL.get_or_init(|| journal_of(f, SUM_LOG, "bank-a"));

    let mut log = Vec::new();
    let mut prev = GENESIS;
    let mut seq = 0u64;
    while !rest.is_empty() {
        let Ok(mut body) = LogBody::decode_length_delimited(&mut rest) else {
            break;
        };
        body.seq = seq;
        body.prev_hash = prev.to_vec().into();
        // Mode bit 0 set: keep the fuzzer's own signatures on messages.
        if mode & 1 == 0 {
            resign(f, &mut body);
        }
        let (framed, hash) = roundlog::seal_record(&f.coordinator, &body);
        log.extend_from_slice(&framed);
        prev = hash;
        seq += 1;
    }

    let report = fedcredit_audit::verify(&log, &f.consortium);
    let _ = report.to_string();
    let _ = serde_json::to_string(&report);
    if let Ok(timeline) = fedcredit_audit::show(&log) {
        let _ = timeline.to_string();
        let _ = serde_json::to_string(&timeline);
    }
    let check = fedcredit_audit::journal::cross_check(&log, &f.consortium, journal);
    let _ = check.to_string();
});
