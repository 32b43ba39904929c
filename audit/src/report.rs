//! What [`crate::verify`] found: one line per round attempt, the problems
//! outside any attempt, how the log ends and how the job ended. Printable
//! ([`std::fmt::Display`]) and serializable (`--json`).
//!
//! ```text
//! round-log audit of job "exposure-2026q4" (secure-sum, 3 members): 27 records, 9120 bytes
//!   record 1: coordinator started
//!   round 0 attempt 0: OK, 3 contributors (bank-a, bank-b, bank-c), sum recomputed (record 26)
//!   job ended at record 27: ok
//! result: VERIFIED (1 round attempt: 1 OK)
//! ```
//!
//! A failing attempt names the record, the check and the reason:
//!
//! ```text
//!   round 0 attempt 0: FAILED at record 14 [cohort]: bank-b sent a second masked input
//! ```

use std::fmt;

use fedcredit_model::privacy::PrivacyReport;
use serde::Serialize;

/// Which check failed. Serialized in kebab-case (`"masked-input"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Check {
    /// Framing, sequence numbers, the hash chain or the coordinator's signature on a record.
    Chain,
    /// The first record (`JobStarted`) against the consortium file.
    JobStarted,
    /// A record that does not belong where it is (kind or order).
    Record,
    /// A participant's or the coordinator's signature on a logged message.
    Signature,
    /// A message bound to another job, round or attempt.
    Binding,
    /// A message kind the open phase does not accept, or a phase closed out of order.
    Phase,
    /// Who took part: a sender outside its cohort, a duplicate, or a closed
    /// cohort that differs from the logged messages.
    Cohort,
    /// A malformed message field (keys, commitment, lengths, ids).
    Message,
    /// Share ciphertexts not addressed to exactly the dealer's neighbours
    /// (the other members of U1 for the complete graph).
    Shares,
    /// A signed survivor list that differs from U3.
    Survivors,
    /// Revealed shares, or the unmasking recomputed from them.
    Unmask,
    /// The published sum against the sum recomputed from the masked inputs and reveals.
    Sum,
    /// The published contributors against U3.
    Contributors,
    /// The coordinator-signed outcome sent to participants.
    Outcome,
    /// A round announcement's contents (job, members, thresholds, codec, departures).
    Announcement,
    /// The order of rounds and attempts (a repeated round, a reused attempt number).
    Sequence,
    /// The epoch and slot an attempt of an epoch job uses (`[protocol]
    /// setup = "epoch"`): a slot announced twice or out of range, an epoch
    /// never set up or no longer held, a setup that does not use slot 0.
    Epoch,
    /// A coordinator restart record.
    Restart,
    /// The announced task against the replayed job.
    Task,
    /// An abort the log does not justify.
    Abort,
    /// The logged progress of a model job against the replayed one.
    Progress,
    /// The published model against the replayed one.
    Model,
    /// The job's end.
    End,
    /// Work the log hides or repeats: skipped attempt numbers, one task
    /// contributed to by two contributor sets, an unpublished attempt whose
    /// reveals let the coordinator unmask a sum.
    HiddenWork,
    /// A private job's published rounds: ρ recomputed from each announced
    /// noise (never the logged ρ), and their ε over the job's.
    PrivacyBudget,
}

impl Check {
    /// The kebab-case name, as serialized.
    pub fn name(self) -> &'static str {
        match self {
            Check::Chain => "chain",
            Check::JobStarted => "job-started",
            Check::Record => "record",
            Check::Signature => "signature",
            Check::Binding => "binding",
            Check::Phase => "phase",
            Check::Cohort => "cohort",
            Check::Message => "message",
            Check::Shares => "shares",
            Check::Survivors => "survivors",
            Check::Unmask => "unmask",
            Check::Sum => "sum",
            Check::Contributors => "contributors",
            Check::Outcome => "outcome",
            Check::Announcement => "announcement",
            Check::Sequence => "sequence",
            Check::Epoch => "epoch",
            Check::Restart => "restart",
            Check::Task => "task",
            Check::Abort => "abort",
            Check::Progress => "progress",
            Check::Model => "model",
            Check::End => "end",
            Check::HiddenWork => "hidden-work",
            Check::PrivacyBudget => "privacy-budget",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One failed check: where, which, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The record's sequence number (0 is `JobStarted`).
    pub record: u64,
    /// Which check failed.
    pub check: Check,
    /// What is wrong, naming participants, phases and values.
    pub reason: String,
}

impl Failure {
    /// A failure at `record`.
    pub fn new(record: u64, check: Check, reason: impl Into<String>) -> Self {
        Self {
            record,
            check,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {} [{}]: {}",
            self.record, self.check, self.reason
        )
    }
}

/// A survivor's logged reveal holding a share that fails the commitment its
/// dealer signed: the revealer sent a bad share, and was excluded from the
/// unmasking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadReveal {
    /// The revealer's `Unmask` record.
    pub record: u64,
    /// Who sent the bad share.
    pub revealer: String,
    /// Whose secret it claimed to be a share of.
    pub owner: String,
    /// `key` or `self-mask`.
    pub kind: String,
}

impl fmt::Display for BadReveal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} revealed a bad {} share of {} (record {}) and was excluded",
            self.revealer, self.kind, self.owner, self.record
        )
    }
}

/// How one round attempt went, as far as the log shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum AttemptStatus {
    /// Every check held: the published sum (and model step) follows from the
    /// logged, signed inputs.
    Ok {
        /// The `RoundCompleted` record.
        record: u64,
        /// U3: whose inputs are in the sum.
        contributors: Vec<String>,
        /// Members of U1 whose input is not in the sum.
        dropped: Vec<String>,
        /// Survivors that revealed a bad share; the sum was recomputed without them.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        bad_reveals: Vec<BadReveal>,
    },
    /// Aborted, and the log shows why (too few parties, or reveals that do not unmask).
    Aborted {
        /// The `RoundAborted` record.
        record: u64,
        /// The phase that could not go on.
        phase: String,
        /// Why the log justifies it.
        justification: String,
        /// The coordinator's reason.
        reason: String,
    },
    /// A check failed; the attempt's later records were not checked.
    Failed(Failure),
    /// Cut by a coordinator restart (nothing was published).
    Interrupted {
        /// The `CoordinatorStarted` record.
        record: u64,
    },
    /// The job ended (as failed) before this attempt finished; nothing was published.
    Stopped {
        /// The `JobEnded` record.
        record: u64,
        /// The coordinator's reason for ending the job.
        reason: String,
    },
    /// Never finished: the log stops first.
    Unfinished {
        /// Why.
        why: String,
    },
}

/// One round attempt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttemptReport {
    /// The round.
    pub round: u64,
    /// The attempt.
    pub attempt: u32,
    /// Its announcement record.
    pub announcement: u64,
    /// What the log shows.
    #[serde(flatten)]
    pub status: AttemptStatus,
}

impl AttemptReport {
    /// The failure, if the attempt failed.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.status {
            AttemptStatus::Failed(f) => Some(f),
            _ => None,
        }
    }
}

/// How the log file ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "end", rename_all = "kebab-case")]
pub enum LogEnd {
    /// Every byte belongs to a good record.
    Clean,
    /// The last record is incomplete (a cut file or a torn write).
    Truncated {
        /// Its would-be sequence number.
        record: u64,
        /// Its byte offset.
        offset: u64,
        /// What is missing.
        detail: String,
    },
    /// A record fails the chain or signature checks: nothing from it on is trusted.
    Broken {
        /// Its sequence number.
        record: u64,
        /// Its byte offset.
        offset: u64,
        /// Which check failed.
        problem: String,
    },
}

/// How the job ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum JobEnd {
    /// A `JobEnded` record.
    Ended {
        /// Its record.
        record: u64,
        /// Whether the coordinator declared success.
        ok: bool,
        /// The coordinator's reason (empty on success).
        reason: String,
        /// Whether a published model was recomputed and found identical.
        model_verified: bool,
    },
    /// No `JobEnded` record: the job is unfinished (or the log was cut).
    Unfinished,
}

/// A member leaving the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Departure {
    /// The participant's `Leave` record.
    pub record: u64,
    /// Who left.
    pub participant: String,
    /// Why, in its own signed words.
    pub reason: String,
}

/// Counts for the last line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Round attempts announced.
    pub attempts: usize,
    /// Attempts verified OK.
    pub ok: usize,
    /// Attempts aborted with cause.
    pub aborted: usize,
    /// Attempts with a failed check.
    pub failed: usize,
    /// Attempts cut by a coordinator restart.
    pub interrupted: usize,
    /// Attempts stopped by the job's (failed) end.
    pub stopped: usize,
    /// Attempts that never finished.
    pub unfinished: usize,
    /// Coordinator restarts (starts after the first).
    pub restarts: usize,
    /// Failed checks outside any attempt.
    pub problems: usize,
}

/// The auditor's verdict on one round log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// True only if every check held, the log ends cleanly, and the job ended.
    pub verified: bool,
    /// The job, from the consortium file.
    pub job_id: String,
    /// `secure-sum` or `logistic-regression`.
    pub kind: String,
    /// Consortium members.
    pub members: usize,
    /// Good records read.
    pub records: u64,
    /// Bytes of good records.
    pub good_bytes: u64,
    /// Bytes in the file.
    pub total_bytes: u64,
    /// Records of coordinator (re)starts.
    pub coordinator_starts: Vec<u64>,
    /// One entry per announced round attempt, in order.
    pub attempts: Vec<AttemptReport>,
    /// Members that left, in order.
    pub departures: Vec<Departure>,
    /// Failed checks outside any attempt (the job header, stray records, the job's end).
    pub problems: Vec<Failure>,
    /// How the file ends.
    pub log_end: LogEnd,
    /// Failures for want of members that a later coordinator start resumed.
    pub resumed: Vec<Resumed>,
    /// How the job ended.
    pub job_end: JobEnd,
    /// A private job's budget (ε, δ) and what its published rounds spent,
    /// recomputed from their announced noise; `null` for a job without
    /// differential privacy (`privacy = "none"`, or a secure sum).
    pub privacy: Option<PrivacyReport>,
    /// Counts.
    pub summary: Summary,
}

/// A job that failed for want of members and was resumed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resumed {
    /// The `JobEnded` record of the failure.
    pub failed_at: u64,
    /// Why it failed.
    pub reason: String,
    /// The `CoordinatorStarted` record that resumed it.
    pub resumed_at: u64,
}

impl Report {
    /// True only if every check held, the log ends cleanly (no truncation,
    /// no broken record) and it records the job's end.
    pub fn ok(&self) -> bool {
        self.log_end == LogEnd::Clean
            && matches!(self.job_end, JobEnd::Ended { .. })
            && self.problems.is_empty()
            && self.attempts.iter().all(|a| {
                !matches!(
                    a.status,
                    AttemptStatus::Failed(_) | AttemptStatus::Unfinished { .. }
                )
            })
    }

    /// Every failed check, in record order (a broken chain included).
    pub fn failures(&self) -> Vec<Failure> {
        let mut all: Vec<Failure> = self
            .problems
            .iter()
            .chain(self.attempts.iter().filter_map(AttemptReport::failure))
            .cloned()
            .collect();
        if let LogEnd::Broken {
            record, problem, ..
        } = &self.log_end
        {
            all.push(Failure::new(*record, Check::Chain, problem.clone()));
        }
        all.sort_by_key(|f| f.record);
        all
    }

    /// The first failed check, if any.
    pub fn first_failure(&self) -> Option<Failure> {
        self.failures().into_iter().next()
    }
}

fn list(names: &[String]) -> String {
    names.join(", ")
}

impl fmt::Display for AttemptReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "round {} attempt {}: ", self.round, self.attempt)?;
        match &self.status {
            AttemptStatus::Ok {
                record,
                contributors,
                dropped,
                bad_reveals,
            } => {
                write!(
                    f,
                    "OK, {} contributors ({}), sum recomputed (record {record})",
                    contributors.len(),
                    list(contributors)
                )?;
                if !dropped.is_empty() {
                    write!(f, "; dropped: {}", list(dropped))?;
                }
                for b in bad_reveals {
                    write!(f, "; {b}")?;
                }
                Ok(())
            }
            AttemptStatus::Aborted {
                record,
                phase,
                justification,
                reason,
            } => write!(
                f,
                "ABORTED at {phase} (record {record}), justified: {justification}; coordinator's reason: {reason}"
            ),
            AttemptStatus::Failed(fail) => write!(
                f,
                "FAILED at record {} [{}]: {}",
                fail.record, fail.check, fail.reason
            ),
            AttemptStatus::Interrupted { record } => write!(
                f,
                "INTERRUPTED by a coordinator restart (record {record}); nothing published"
            ),
            AttemptStatus::Stopped { record, reason } => write!(
                f,
                "STOPPED: the job ended as failed at record {record} before the attempt finished ({reason}); nothing published"
            ),
            AttemptStatus::Unfinished { why } => write!(f, "UNFINISHED: {why}"),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "round-log audit of job {:?} ({}, {} members): {} records, {} bytes",
            self.job_id, self.kind, self.members, self.records, self.good_bytes
        )?;
        // Interleave attempts, starts, departures and problems by record.
        let mut lines: Vec<(u64, String)> = Vec::new();
        for (i, r) in self.coordinator_starts.iter().enumerate() {
            let what = if i == 0 {
                "coordinator started"
            } else {
                "coordinator restarted"
            };
            lines.push((*r, format!("record {r}: {what}")));
        }
        for a in &self.attempts {
            lines.push((a.announcement, a.to_string()));
        }
        for d in &self.departures {
            lines.push((
                d.record,
                format!("record {}: {} left: {}", d.record, d.participant, d.reason),
            ));
        }
        for p in &self.problems {
            lines.push((p.record, format!("FAILED {p}")));
        }
        lines.sort_by_key(|(r, _)| *r);
        for (_, line) in &lines {
            writeln!(f, "  {line}")?;
        }
        match &self.log_end {
            LogEnd::Clean => {}
            LogEnd::Truncated {
                record,
                offset,
                detail,
            } => writeln!(
                f,
                "  log: TRUNCATED at record {record} (byte {offset} of {}): {detail}",
                self.total_bytes
            )?,
            LogEnd::Broken {
                record,
                offset,
                problem,
            } => writeln!(
                f,
                "  log: BROKEN at record {record} (byte {offset}): {problem}; nothing from there on is trusted"
            )?,
        }
        for r in &self.resumed {
            writeln!(
                f,
                "  job failed at record {} ({}) and was resumed at record {}",
                r.failed_at, r.reason, r.resumed_at
            )?;
        }
        match &self.job_end {
            JobEnd::Ended {
                record,
                ok,
                reason,
                model_verified,
            } => {
                let how = if *ok {
                    "ok".to_owned()
                } else {
                    format!("failed: {reason}")
                };
                let model = if *model_verified {
                    "; published model recomputed and identical"
                } else {
                    ""
                };
                writeln!(f, "  job ended at record {record}: {how}{model}")?;
            }
            JobEnd::Unfinished => writeln!(f, "  job UNFINISHED: the log has no JobEnded record")?,
        }
        if let Some(p) = &self.privacy {
            writeln!(
                f,
                "  privacy: spent (ε = {:.6}, δ = {:e}) over {} published round(s) (ρ = {:.6e}); the job's budget is ε = {}",
                p.epsilon_spent, p.delta, p.rounds, p.rho_spent, p.epsilon
            )?;
        }
        let s = &self.summary;
        let mut parts = vec![format!("{} OK", s.ok)];
        for (n, what) in [
            (s.aborted, "aborted with cause"),
            (s.failed, "failed"),
            (s.interrupted, "interrupted"),
            (s.stopped, "stopped by the job's end"),
            (s.unfinished, "unfinished"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let mut tail = format!(
            "{} round attempt{}: {}",
            s.attempts,
            if s.attempts == 1 { "" } else { "s" },
            parts.join(", ")
        );
        if s.restarts > 0 {
            tail.push_str(&format!("; {} coordinator restart(s)", s.restarts));
        }
        if s.problems > 0 {
            tail.push_str(&format!("; {} other failed check(s)", s.problems));
        }
        if let JobEnd::Ended { ok: false, .. } = self.job_end {
            tail.push_str("; the job itself failed, see its end above");
        }
        let verdict = if self.ok() {
            "VERIFIED"
        } else {
            "NOT VERIFIED"
        };
        write!(f, "result: {verdict} ({tail})")
    }
}
