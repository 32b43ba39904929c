//! A readable timeline of a round log, for people: the job, coordinator
//! (re)starts, every round attempt with who took part in each phase and who
//! dropped, aborts and leaves with their reasons, model step sizes, and the
//! final model's metrics. It checks nothing (no signatures, no
//! recomputation): that is [`crate::verify`]'s work.
//!
//! ```text
//! job "exposure-2026q4": secure-sum, 3 members: bank-a, bank-b, bank-c (threshold 3, minimum cohort 3)
//! record    1  coordinator started
//! record    2  round 0 attempt 0: secure-sum task, 3 values
//!                advertise-keys     bank-a, bank-b, bank-c
//!                ...
//!                completed (record 26): 3 contributors
//! record   27  job ended ok
//! log: 28 records, clean (signatures not checked here; `fedcredit audit verify` checks them)
//! ```

use fedcredit_model::Metrics;
use fedcredit_model::job::{FittedModel, ModelTask, Progress, evaluation_curves};
use fedcredit_model::metrics::Curves;
use fedcredit_proto::codec::Codec;
use fedcredit_proto::roundlog::{self, End};
use fedcredit_proto::v1::message::Body;
use fedcredit_proto::v1::{self as pb, coordinator_message, log_body, round_announcement::Task};
use fedcredit_referee::consortium::{JobKind, JobSpec};
use prost::Message as _;
use serde::Serialize;

use crate::error::{AuditError, Result};
use crate::report::LogEnd;

mod display;

use display::metrics_text;

/// The job, from the first record.
#[derive(Clone, Debug, Serialize)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// `secure-sum` or `logistic-regression`.
    pub kind: String,
    /// For a model job: the optimizer.
    pub optimizer: Option<String>,
    /// Member ids, in Shamir-index order.
    pub members: Vec<String>,
    /// Shares needed to unmask, and parties needed per phase.
    pub threshold: u32,
    /// Below this many parties nobody continues.
    pub min_cohort: u32,
}

/// One closed phase.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseLine {
    /// The phase.
    pub phase: String,
    /// Who took part.
    pub cohort: Vec<String>,
    /// Who was expected but did not answer.
    pub missing: Vec<String>,
    /// False if the log has messages of the phase but no `PhaseClosed` for it.
    pub closed: bool,
    /// When the coordinator logged its close (ms since the Unix epoch; the
    /// coordinator's clock, informational); `None` if it never closed.
    pub closed_unix_ms: Option<u64>,
}

/// How an attempt ended.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// A sum was published.
    Completed {
        /// The `RoundCompleted` record.
        record: u64,
        /// Whose inputs are in it.
        contributors: Vec<String>,
        /// What the job made of it (model jobs), as logged.
        progress: Option<serde_json::Value>,
        /// The same, in words.
        summary: Option<String>,
    },
    /// Stopped, with the coordinator's reason.
    Aborted {
        /// The `RoundAborted` record.
        record: u64,
        /// The phase that could not go on.
        phase: String,
        /// Why.
        reason: String,
    },
    /// A coordinator restart cut it.
    Interrupted {
        /// The `CoordinatorStarted` record.
        record: u64,
    },
    /// The log shows no end (the job ended, or the log stops).
    Open,
}

/// One round attempt.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptLine {
    /// Its announcement record.
    pub announcement: u64,
    /// The round.
    pub round: u64,
    /// The attempt.
    pub attempt: u32,
    /// What it aggregates (`secure-sum`, `moments`, `newton`, ...).
    pub task: String,
    /// Values per participant.
    pub dimension: u64,
    /// A private round's noise, as announced (not checked here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<NoiseLine>,
    /// An epoch job's attempt: the epoch and slot it uses, as announced
    /// (not checked here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<Box<EpochLine>>,
    /// The closed phases, in order.
    pub phases: Vec<PhaseLine>,
    /// When it was announced (ms since the Unix epoch, the coordinator's
    /// clock): with the phases' closes, the phases' durations.
    pub opened_unix_ms: u64,
    /// When its completion or abort was logged.
    pub ended_unix_ms: Option<u64>,
    /// An evaluation round's pooled ROC and KS curves, from its published
    /// sum (the pooled score histograms), read as the job reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curves: Option<Curves>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: AttemptOutcome,
}

/// The epoch and slot an attempt of an epoch job announces.
#[derive(Clone, Debug, Serialize)]
pub struct EpochLine {
    /// The epoch's id in hex; empty when the attempt sets up a new epoch.
    pub epoch: String,
    /// The slot it uses (0 for a setup).
    pub slot: u32,
    /// Slots per epoch.
    pub slots: u32,
}

/// A private round's noise, as its task announces it.
#[derive(Clone, Debug, Serialize)]
pub struct NoiseLine {
    /// Each member's discrete Gaussian variance, in grid units.
    pub sigma2_member: u64,
    /// Values are multiples of 2^-grid_bits.
    pub grid_bits: u32,
    /// The round's zCDP ρ, as logged (`verify` recomputes it).
    pub rho: f64,
}

/// The published model, in brief.
#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    /// Encoded features.
    pub features: usize,
    /// Optimization rounds.
    pub rounds: usize,
    /// Whether the optimizer converged.
    pub converged: bool,
    /// Pooled metrics on the held-out rows.
    pub metrics: Option<Metrics>,
}

/// One event of the timeline.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A coordinator process started.
    CoordinatorStarted {
        /// The record.
        record: u64,
        /// Whether an earlier process ran this job.
        restart: bool,
        /// Records it replayed.
        replayed_records: u64,
        /// Where it resumes.
        resume_round: u64,
        /// With which attempt.
        resume_attempt: u32,
    },
    /// A round attempt.
    Attempt(AttemptLine),
    /// A member left.
    Leave {
        /// The record.
        record: u64,
        /// Who.
        participant: String,
        /// Why.
        reason: String,
    },
    /// The job ended.
    JobEnded {
        /// The record.
        record: u64,
        /// Whether it succeeded.
        ok: bool,
        /// Why not.
        reason: String,
        /// The published model.
        model: Option<ModelSummary>,
    },
    /// A record that does not fit the timeline.
    Note {
        /// The record.
        record: u64,
        /// What it is.
        text: String,
    },
}

/// A round log as a timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    /// The job.
    pub job: JobInfo,
    /// What happened, in record order (an attempt at its announcement).
    pub events: Vec<Event>,
    /// Records read.
    pub records: u64,
    /// How the file ends (framing and chain only).
    pub log_end: LogEnd,
}

/// Reads a round log into a [`Timeline`]. Signatures are not checked (no
/// consortium file is needed); a damaged tail ends the timeline early and
/// is noted in [`Timeline::log_end`].
pub fn show(log_bytes: &[u8]) -> Result<Timeline> {
    let file = roundlog::read(log_bytes, None);
    let log_end = match file.end {
        End::Clean => LogEnd::Clean,
        End::Truncated {
            offset,
            record,
            detail,
        } => LogEnd::Truncated {
            record,
            offset,
            detail,
        },
        End::Broken {
            offset,
            record,
            problem,
        } => LogEnd::Broken {
            record,
            offset,
            problem,
        },
    };
    let Some(first) = file.entries.first() else {
        return Err(AuditError::Unreadable(match &log_end {
            LogEnd::Clean => "the file is empty".into(),
            LogEnd::Truncated { detail, .. } => detail.clone(),
            LogEnd::Broken { problem, .. } => problem.clone(),
        }));
    };
    let Some(log_body::Entry::JobStarted(started)) = &first.body.entry else {
        return Err(AuditError::NotARoundLog);
    };
    let spec: JobSpec = serde_json::from_slice(&started.job_spec_json)
        .map_err(|e| AuditError::JobSpec(e.to_string()))?;
    let (kind, optimizer) = match &spec.kind {
        JobKind::SecureSum { .. } => ("secure-sum", None),
        JobKind::Monitor(_) => ("monitor", None),
        JobKind::LogisticRegression(m) | JobKind::Scorecard(m) => (
            spec.kind.name(),
            serde_json::to_value(m.optimizer)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
        ),
    };
    let job = JobInfo {
        id: started.job_id.clone(),
        kind: kind.into(),
        optimizer,
        members: started.roster.iter().map(|r| r.id.clone()).collect(),
        threshold: started.threshold,
        min_cohort: started.min_cohort,
    };
    let mut events = Vec::new();
    // Index into `events` of the latest attempt.
    let mut current: Option<usize> = None;
    // Senders per phase of each attempt (by event index), for phases never closed.
    let mut seen: Vec<(usize, &'static str, String)> = Vec::new();
    let mut starts = 0usize;
    // The latest attempt's task and codec, if it is an evaluation round.
    let mut evaluation: Option<(ModelTask, Codec)> = None;
    for e in file.entries.iter().skip(1) {
        let record = e.body.seq;
        let millis = e.body.unix_millis;
        let Some(entry) = &e.body.entry else {
            events.push(Event::Note {
                record,
                text: "an empty record".into(),
            });
            continue;
        };
        match entry {
            log_body::Entry::CoordinatorStarted(cs) => {
                starts += 1;
                if let Some(Event::Attempt(a)) = current.and_then(|i| events.get_mut(i))
                    && matches!(a.outcome, AttemptOutcome::Open)
                {
                    a.outcome = AttemptOutcome::Interrupted { record };
                }
                events.push(Event::CoordinatorStarted {
                    record,
                    restart: starts > 1,
                    replayed_records: cs.replayed_records,
                    resume_round: cs.resume_round,
                    resume_attempt: cs.resume_attempt,
                });
            }
            log_body::Entry::Announcement(signed) => {
                match pb::CoordinatorMessage::decode(signed.payload.clone()) {
                    Ok(pb::CoordinatorMessage {
                        round,
                        attempt,
                        body: Some(coordinator_message::Body::Announce(a)),
                        ..
                    }) => {
                        current = Some(events.len());
                        evaluation = evaluation_of(&a);
                        events.push(Event::Attempt(AttemptLine {
                            announcement: record,
                            round,
                            attempt,
                            task: task_name(a.task.as_ref()),
                            dimension: a.dimension,
                            noise: task_noise(a.task.as_ref()),
                            epoch: (a.epoch_slots > 0).then(|| {
                                Box::new(EpochLine {
                                    epoch: hex::encode(&a.epoch),
                                    slot: a.slot,
                                    slots: a.epoch_slots,
                                })
                            }),
                            phases: Vec::new(),
                            opened_unix_ms: millis,
                            ended_unix_ms: None,
                            curves: None,
                            outcome: AttemptOutcome::Open,
                        }));
                    }
                    _ => events.push(Event::Note {
                        record,
                        text: "an unreadable announcement".into(),
                    }),
                }
            }
            log_body::Entry::Participant(signed) => {
                // Leaves are events; phase messages show in the phase lines.
                match pb::Message::decode(signed.payload.clone()) {
                    Ok(pb::Message {
                        sender,
                        body: Some(Body::Leave(l)),
                        ..
                    }) => events.push(Event::Leave {
                        record,
                        participant: sender,
                        reason: pb::ReasonCode::label_of(l.code).to_owned(),
                    }),
                    Ok(m) => {
                        if let (Some(i), Some(phase)) = (current, phase_of(m.body.as_ref()))
                            && attempt_mut(&mut events, current, m.round, m.attempt).is_some()
                        {
                            seen.push((i, phase, m.sender));
                        }
                    }
                    Err(_) => events.push(Event::Note {
                        record,
                        text: "an unreadable participant message".into(),
                    }),
                }
            }
            log_body::Entry::PhaseClosed(pc) => {
                match attempt_mut(&mut events, current, pc.round, pc.attempt) {
                    Some(a) => a.phases.push(PhaseLine {
                        phase: pc.phase.clone(),
                        cohort: pc.cohort.clone(),
                        missing: pc.missing.clone(),
                        closed: true,
                        closed_unix_ms: Some(millis),
                    }),
                    None => events.push(Event::Note {
                        record,
                        text: format!(
                            "{} closed for round {} attempt {}, which was not announced",
                            pc.phase, pc.round, pc.attempt
                        ),
                    }),
                }
            }
            log_body::Entry::RoundCompleted(rc) => {
                let progress = serde_json::from_str::<serde_json::Value>(&rc.progress_json)
                    .ok()
                    .filter(|v| !v.is_null());
                let outcome = AttemptOutcome::Completed {
                    record,
                    contributors: rc.contributors.clone(),
                    summary: describe_progress(&rc.progress_json),
                    progress,
                };
                match attempt_mut(&mut events, current, rc.round, rc.attempt) {
                    Some(a) => {
                        a.outcome = outcome;
                        a.ended_unix_ms = Some(millis);
                        a.curves = evaluation
                            .as_ref()
                            .and_then(|(task, codec)| curves_of(task, codec, &rc.sum));
                    }
                    None => events.push(Event::Note {
                        record,
                        text: format!(
                            "round {} attempt {} completed without an announcement",
                            rc.round, rc.attempt
                        ),
                    }),
                }
            }
            log_body::Entry::RoundAborted(ra) => {
                let outcome = AttemptOutcome::Aborted {
                    record,
                    phase: ra.phase.clone(),
                    reason: ra.reason.clone(),
                };
                match attempt_mut(&mut events, current, ra.round, ra.attempt) {
                    Some(a) => {
                        a.outcome = outcome;
                        a.ended_unix_ms = Some(millis);
                    }
                    None => events.push(Event::Note {
                        record,
                        text: format!(
                            "round {} attempt {} aborted without an announcement: {}",
                            ra.round, ra.attempt, ra.reason
                        ),
                    }),
                }
            }
            log_body::Entry::JobEnded(je) => {
                let model = serde_json::from_str::<FittedModel>(&je.model_json)
                    .ok()
                    .map(|m| ModelSummary {
                        features: m.features.len(),
                        rounds: m.rounds,
                        converged: m.converged,
                        metrics: m.metrics,
                    });
                events.push(Event::JobEnded {
                    record,
                    ok: je.ok,
                    reason: je.reason.clone(),
                    model,
                });
            }
            log_body::Entry::JobStarted(_) => events.push(Event::Note {
                record,
                text: "a second JobStarted record".into(),
            }),
        }
    }
    // Phases with messages but no close (cut by a restart, an abort or the log's end).
    for (i, phase, sender) in seen {
        let Some(Event::Attempt(a)) = events.get_mut(i) else {
            continue;
        };
        if a.phases.iter().any(|p| p.phase == phase && p.closed) {
            continue;
        }
        match a.phases.iter_mut().find(|p| p.phase == phase) {
            Some(p) => p.cohort.push(sender),
            None => a.phases.push(PhaseLine {
                phase: phase.into(),
                cohort: vec![sender],
                missing: Vec::new(),
                closed: false,
                closed_unix_ms: None,
            }),
        }
    }
    Ok(Timeline {
        job,
        events,
        records: file.entries.len() as u64,
        log_end,
    })
}

fn attempt_mut(
    events: &mut [Event],
    current: Option<usize>,
    round: u64,
    attempt: u32,
) -> Option<&mut AttemptLine> {
    match events.get_mut(current?) {
        Some(Event::Attempt(a)) if a.round == round && a.attempt == attempt => Some(a),
        _ => None,
    }
}

fn phase_of(body: Option<&Body>) -> Option<&'static str> {
    Some(match body? {
        Body::Advertise(_) => "advertise-keys",
        Body::Shares(_) | Body::EpochShares(_) => "share-keys",
        Body::MaskedInput(_) | Body::MaskedChunk(_) => "masked-input",
        Body::Consistency(_) => "consistency-check",
        Body::Unmask(_) | Body::SlotReveal(_) => "unmask",
        Body::Poll(_) | Body::Leave(_) | Body::FetchOutcome(_) => return None,
    })
}

fn task_name(task: Option<&Task>) -> String {
    match task {
        Some(Task::SecureSum(sum)) if sum.index == 0 => "secure-sum".into(),
        Some(Task::SecureSum(sum)) => format!("secure-sum #{}", sum.index),
        Some(Task::ModelTask(bytes)) => ModelTask::from_bytes(bytes)
            .map_or_else(|_| "unreadable model".into(), |t| t.name().into()),
        None => "no".into(),
    }
}

/// Points per plotted curve: enough for a chart, small for a page.
const CURVE_POINTS: usize = 200;

/// The task and codec of an announced evaluation round.
fn evaluation_of(a: &pb::RoundAnnouncement) -> Option<(ModelTask, Codec)> {
    let Some(Task::ModelTask(bytes)) = &a.task else {
        return None;
    };
    let task = ModelTask::from_bytes(bytes).ok()?;
    if !matches!(task.on_rows(), ModelTask::Evaluate { .. }) {
        return None;
    }
    Some((task, Codec::from_pb(a.fixed_point.as_ref()?, a.limbs).ok()?))
}

/// An evaluation round's curves from its published sum; `None` if the sum
/// does not decode or holds one class only (nothing to draw).
fn curves_of(task: &ModelTask, codec: &Codec, sum: &[u8]) -> Option<Curves> {
    let words = fedcredit_proto::words::from_bytes("published sum", sum).ok()?;
    let values = codec.decode(&words).ok()?;
    evaluation_curves(task, &values, CURVE_POINTS).ok()
}

/// A private model task's noise, if the task is readable and has one.
fn task_noise(task: Option<&Task>) -> Option<NoiseLine> {
    let Some(Task::ModelTask(bytes)) = task else {
        return None;
    };
    let task = ModelTask::from_bytes(bytes).ok()?;
    task.noise().map(|n| NoiseLine {
        sigma2_member: n.sigma2_member,
        grid_bits: n.grid_bits,
        rho: n.rho,
    })
}

/// A model job's logged progress in words; `None` for a secure sum.
fn describe_progress(json: &str) -> Option<String> {
    let json = json.trim();
    if json.is_empty() || json == "null" {
        return None;
    }
    Some(match serde_json::from_str::<Progress>(json) {
        Ok(Progress::Binned { rows }) => format!("binning over {rows} rows"),
        Ok(Progress::Standardized { rows }) => format!("statistics over {rows} rows"),
        Ok(Progress::Step(r)) => format!(
            "optimization step {}: step max-norm {:.3e}{}, {} rows",
            r.round,
            r.step_max_norm,
            r.objective
                .map(|o| format!(", objective {o:.6}"))
                .unwrap_or_default(),
            r.rows
        ),
        Ok(Progress::Evaluated(Some(m))) => format!("evaluation: {}", metrics_text(&m)),
        Ok(Progress::Evaluated(None)) => "evaluation: no held-out rows".into(),
        Err(_) => format!("progress {json}"),
    })
}
