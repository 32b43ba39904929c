//! Cross-checks a participant's journal (what it says it signed) against the
//! round log (what the coordinator says it received and used).
//!
//! - A log record from that participant that its journal does not list is a
//!   failure: the participant never signed it as far as it knows (a lost
//!   journal, or a forgery that got past the signature checks).
//! - A journal entry missing from the log is reported, not failed: the
//!   coordinator may rightly have refused it (too late for its phase) or lost
//!   it to a crash before writing it; the auditor sees which round attempt.
//! - But a round attempt the participant took part in whose announcement is
//!   not in the log is a failure: the coordinator logs (durably) every
//!   announcement before sending it, so the attempt ran hidden from the log.

use std::collections::BTreeMap;
use std::fmt;

use fedcredit_proto::envelope;
use fedcredit_proto::journal::JournalEntry;
use fedcredit_proto::roundlog;
use fedcredit_proto::v1::log_body;
use fedcredit_referee::consortium::Consortium;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The outcome of one journal cross-check.
#[derive(Debug, Clone, Serialize)]
pub struct JournalReport {
    /// Whose journal it is, as found in the log (`None` if no entry matched).
    pub participant: Option<String>,
    /// Journal entries (for this job) found in the log, signature and all.
    pub matched: usize,
    /// Journal entries for this job not in the log: (round, attempt, phase).
    pub not_logged: Vec<(u64, u32, String)>,
    /// Log records from this participant its journal does not list: (record, phase).
    pub unlisted: Vec<(u64, String)>,
    /// Round attempts the participant took part in that the log never
    /// announced: (round, attempt).
    pub hidden_attempts: Vec<(u64, u32)>,
    /// Journal entries for other jobs (ignored).
    pub other_jobs: usize,
}

impl JournalReport {
    /// True if the participant is identified and every log record of it is in its journal.
    pub fn ok(&self) -> bool {
        self.participant.is_some() && self.unlisted.is_empty() && self.hidden_attempts.is_empty()
    }
}

fn phase_of(body: &Option<fedcredit_proto::v1::message::Body>) -> &'static str {
    body.as_ref().map_or("empty", |b| b.phase_name())
}

/// Cross-checks `journal` against the log.
pub fn cross_check(
    log_bytes: &[u8],
    consortium: &Consortium,
    journal: &[JournalEntry],
) -> JournalReport {
    let log = roundlog::read(log_bytes, Some(consortium.roster.coordinator()));
    // Every participant record: (payload hash, signature) -> (record, sender, phase).
    let mut in_log: BTreeMap<(String, String), (u64, String, &'static str)> = BTreeMap::new();
    let mut announced = std::collections::BTreeSet::new();
    for e in &log.entries {
        if let Some(log_body::Entry::Announcement(signed)) = &e.body.entry
            && let Ok((m, _)) = envelope::open_coordinator(signed, consortium.roster.coordinator())
        {
            announced.insert((m.round, m.attempt));
        }
        if let Some(log_body::Entry::Participant(signed)) = &e.body.entry
            && let Ok(o) = envelope::open(signed, &consortium.roster)
        {
            let key = (
                hex::encode(Sha256::digest(&signed.payload)),
                hex::encode(&signed.signature),
            );
            in_log.insert(
                key,
                (
                    e.body.seq,
                    o.sender.id.to_string(),
                    phase_of(&o.message.body),
                ),
            );
        }
    }
    let job = &consortium.job.id;
    let mut report = JournalReport {
        participant: None,
        matched: 0,
        not_logged: Vec::new(),
        unlisted: Vec::new(),
        hidden_attempts: Vec::new(),
        other_jobs: 0,
    };
    let mut listed = std::collections::BTreeSet::new();
    for entry in journal {
        if &entry.job != job {
            report.other_jobs += 1;
            continue;
        }
        // A leave may come before any round (round 0, attempt 0, unannounced).
        if entry.phase != "leave"
            && !announced.contains(&(entry.round, entry.attempt))
            && !report
                .hidden_attempts
                .contains(&(entry.round, entry.attempt))
        {
            report.hidden_attempts.push((entry.round, entry.attempt));
        }
        match in_log.get(&(entry.payload_sha256.clone(), entry.signature.clone())) {
            Some((record, sender, _)) => {
                report.matched += 1;
                listed.insert(*record);
                report.participant.get_or_insert_with(|| sender.clone());
            }
            None => report
                .not_logged
                .push((entry.round, entry.attempt, entry.phase.clone())),
        }
    }
    if let Some(who) = &report.participant {
        for (record, sender, phase) in in_log.values() {
            if sender == who && !listed.contains(record) {
                report.unlisted.push((*record, (*phase).to_owned()));
            }
        }
        report.unlisted.sort();
    }
    report
}

impl fmt::Display for JournalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(who) = &self.participant else {
            return write!(
                f,
                "journal: NOT MATCHED: none of its {} entries for this job is in the log",
                self.not_logged.len()
            );
        };
        writeln!(
            f,
            "journal of {who}: {} signed messages found in the log",
            self.matched
        )?;
        for (round, attempt, phase) in &self.not_logged {
            writeln!(
                f,
                "  round {round} attempt {attempt}: its {phase} message is not in the log (refused by the coordinator, or lost to a coordinator crash)"
            )?;
        }
        for (round, attempt) in &self.hidden_attempts {
            writeln!(
                f,
                "  FAILED: it took part in round {round} attempt {attempt}, which the log never announced (an attempt hidden from the log)"
            )?;
        }
        for (record, phase) in &self.unlisted {
            writeln!(
                f,
                "  FAILED: record {record} holds a {phase} message from {who} that its journal does not list"
            )?;
        }
        if self.other_jobs > 0 {
            writeln!(f, "  ({} entries of other jobs ignored)", self.other_jobs)?;
        }
        write!(
            f,
            "journal: {}",
            if self.ok() {
                "CONSISTENT"
            } else {
                "NOT CONSISTENT"
            }
        )
    }
}
