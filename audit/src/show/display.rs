//! How a [`Timeline`] prints.

use std::fmt;

use fedcredit_model::Metrics;

use super::{AttemptOutcome, Event, Timeline};
use crate::report::LogEnd;

/// Pooled metrics in words.
pub(super) fn metrics_text(m: &Metrics) -> String {
    let opt = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.4}"));
    format!(
        "AUC {}, KS {}, log-loss {:.4}, default rate {:.4} on {} held-out rows",
        opt(m.auc),
        opt(m.ks),
        m.logloss,
        m.default_rate,
        m.n
    )
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let j = &self.job;
        let kind = match &j.optimizer {
            Some(o) => format!("{} ({o} optimizer)", j.kind),
            None => j.kind.clone(),
        };
        writeln!(
            f,
            "job {:?}: {kind}, {} members: {} (threshold {}, minimum cohort {})",
            j.id,
            j.members.len(),
            j.members.join(", "),
            j.threshold,
            j.min_cohort
        )?;
        let pad = "               ";
        for e in &self.events {
            match e {
                Event::CoordinatorStarted {
                    record,
                    restart,
                    replayed_records,
                    resume_round,
                    resume_attempt,
                } => {
                    if *restart {
                        writeln!(
                            f,
                            "record {record:>4}  coordinator RESTARTED (replayed {replayed_records} records; resumes round {resume_round} attempt {resume_attempt})"
                        )?;
                    } else {
                        writeln!(f, "record {record:>4}  coordinator started")?;
                    }
                }
                Event::Attempt(a) => {
                    writeln!(
                        f,
                        "record {:>4}  round {} attempt {}: {} task, {} values",
                        a.announcement, a.round, a.attempt, a.task, a.dimension
                    )?;
                    if let Some(e) = &a.epoch {
                        let what = if e.epoch.is_empty() {
                            "sets up a new epoch".to_owned()
                        } else {
                            format!("epoch {}…", e.epoch.get(..16).unwrap_or(&e.epoch))
                        };
                        writeln!(
                            f,
                            "{pad}{:<18} {what}, slot {} of {}",
                            "epoch", e.slot, e.slots
                        )?;
                    }
                    if let Some(n) = &a.noise {
                        writeln!(
                            f,
                            "{pad}{:<18} σ² {} per member (grid 2^-{}), ρ {:.3e} as announced",
                            "noise", n.sigma2_member, n.grid_bits, n.rho
                        )?;
                    }
                    for p in &a.phases {
                        let mut dropped = if p.missing.is_empty() {
                            String::new()
                        } else {
                            format!("   dropped: {}", p.missing.join(", "))
                        };
                        if !p.closed {
                            dropped.push_str("   (phase never closed)");
                        }
                        writeln!(f, "{pad}{:<18} {}{dropped}", p.phase, p.cohort.join(", "))?;
                    }
                    match &a.outcome {
                        AttemptOutcome::Completed {
                            record,
                            contributors,
                            summary,
                            ..
                        } => {
                            let s = summary
                                .as_ref()
                                .map(|s| format!("; {s}"))
                                .unwrap_or_default();
                            writeln!(
                                f,
                                "{pad}completed (record {record}): {} contributors{s}",
                                contributors.len()
                            )?;
                        }
                        AttemptOutcome::Aborted {
                            record,
                            phase,
                            reason,
                        } => writeln!(f, "{pad}ABORTED in {phase} (record {record}): {reason}")?,
                        AttemptOutcome::Interrupted { record } => writeln!(
                            f,
                            "{pad}INTERRUPTED by the coordinator restart at record {record}; nothing published"
                        )?,
                        AttemptOutcome::Open => {
                            writeln!(f, "{pad}not finished in this log")?;
                        }
                    }
                }
                Event::Leave {
                    record,
                    participant,
                    reason,
                } => writeln!(
                    f,
                    "record {record:>4}  {participant} LEFT the job: {reason}"
                )?,
                Event::JobEnded {
                    record,
                    ok,
                    reason,
                    model,
                } => {
                    if *ok {
                        writeln!(f, "record {record:>4}  job ended ok")?;
                    } else {
                        writeln!(f, "record {record:>4}  job FAILED: {reason}")?;
                    }
                    if let Some(m) = model {
                        let converged = if m.converged {
                            "converged"
                        } else {
                            "not converged"
                        };
                        writeln!(
                            f,
                            "{pad}model: {} features, {} optimization rounds ({converged})",
                            m.features, m.rounds
                        )?;
                        if let Some(metrics) = &m.metrics {
                            writeln!(f, "{pad}pooled metrics: {}", metrics_text(metrics))?;
                        }
                    }
                }
                Event::Note { record, text } => writeln!(f, "record {record:>4}  note: {text}")?,
            }
        }
        let end = match &self.log_end {
            LogEnd::Clean => "clean".to_owned(),
            LogEnd::Truncated {
                record,
                offset,
                detail,
            } => format!("TRUNCATED at record {record} (byte {offset}): {detail}"),
            LogEnd::Broken {
                record,
                offset,
                problem,
            } => format!("BROKEN at record {record} (byte {offset}): {problem}"),
        };
        write!(
            f,
            "log: {} records, {end} (signatures not checked here; `fedcredit audit verify` checks them)",
            self.records
        )
    }
}
