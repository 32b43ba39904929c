//! The job replayed from the consortium's job spec with the participants'
//! own rules (`fedcredit_referee::JobRules`): which round each announcement
//! must ask for, what each sum must make of the job (`progress_json`), and
//! the model it must publish. The rules are deterministic, so the published
//! model must be identical, bit for bit. This module only adds what an
//! auditor needs beyond a participant: following a log past a failed round,
//! and saying where a published value differs.

use fedcredit_model::job::{FittedModel, ModelTask, Progress};
use fedcredit_proto::codec::Codec;
use fedcredit_proto::v1::{self as pb, round_announcement::Task};
use fedcredit_referee::JobRules;
use fedcredit_referee::consortium::JobSpec;
use serde_json::Value;

use crate::report::Check;

/// What an announcement must say, as the replayed job sees it.
#[derive(Debug)]
pub(crate) struct Planned {
    /// The codec of the round.
    pub codec: Codec,
    /// Words per masked input.
    pub words: usize,
}

/// The job as replayed so far.
#[derive(Debug)]
pub(crate) struct JobReplay {
    /// The job's rules, or why the spec cannot be replayed.
    rules: Result<JobRules, String>,
    /// Set once the replay cannot follow the log any more.
    lost: Option<String>,
    /// The job refused a published sum (its rules cannot absorb it): only
    /// the job's failure may follow.
    refused: Option<String>,
}

/// A check failure without its record number.
pub(crate) type Mismatch = (Check, String);

impl JobReplay {
    /// Starts the replay of `spec`.
    pub fn new(spec: &JobSpec, cohort: fedcredit_model::privacy::NoiseCohort) -> Self {
        Self {
            rules: JobRules::new(spec, cohort)
                .map_err(|e| format!("the job spec cannot be replayed: {e}")),
            lost: None,
            refused: None,
        }
    }

    /// The job kind's name (`secure-sum`, `logistic-regression`, `scorecard`).
    pub fn kind(spec: &JobSpec) -> &'static str {
        spec.kind.name()
    }

    /// The next task's name, for messages.
    fn next_name(rules: &JobRules) -> &'static str {
        rules.next_model_task().map_or("further", |t| t.name())
    }

    /// Checks an announcement's codec, dimension and task against the
    /// replayed job; `members` is the consortium's size.
    pub fn plan(&self, a: &pb::RoundAnnouncement, members: usize) -> Result<Planned, Mismatch> {
        let bad = |why: String| (Check::Announcement, why);
        let spec = a
            .fixed_point
            .ok_or_else(|| bad("the announcement has no fixed-point settings".into()))?;
        let codec = Codec::from_pb(&spec, a.limbs).map_err(|e| bad(format!("codec: {e}")))?;
        codec
            .check(members)
            .map_err(|e| bad(format!("codec: {e}")))?;
        let dimension = usize::try_from(a.dimension)
            .map_err(|_| bad(format!("dimension {} is impossible", a.dimension)))?;
        let rules = self.rules.as_ref().map_err(|e| (Check::Task, e.clone()))?;
        if let Some(why) = &self.refused {
            return Err((
                Check::Sequence,
                format!(
                    "announces a round after the job refused a sum ({why}); only its end may follow"
                ),
            ));
        }
        // A monitor job is one round of counts, as a secure sum is.
        let secure_sum = matches!(rules, JobRules::SecureSum { .. } | JobRules::Monitor { .. });
        let planned = Planned {
            words: codec.words_for(dimension),
            codec,
        };
        if self.lost.is_some() {
            if secure_sum {
                return Err((
                    Check::Sequence,
                    format!(
                        "a {} job has one round, and it already completed",
                        rules_kind(rules)
                    ),
                ));
            }
            // The task is unverified: its size is not computed from it (a
            // hostile one could overflow); only its form is checked.
            if !matches!(codec, Codec::Wide(_)) {
                return Err(bad(
                    "a model round must use the wide codec (values are never clipped)".into(),
                ));
            }
            let Some(Task::ModelTask(bytes)) = &a.task else {
                return Err((
                    Check::Task,
                    "the task of a model job must be a model task".into(),
                ));
            };
            ModelTask::from_bytes(bytes)
                .map_err(|e| (Check::Task, format!("the announced task: {e}")))?;
            return Ok(planned);
        }
        let Some(expected) = rules.next_plan() else {
            return Err((
                Check::Sequence,
                if secure_sum {
                    format!(
                        "a {} job has one round, and it already completed",
                        rules_kind(rules)
                    )
                } else {
                    "announces a round, but the replayed job is already finished".into()
                },
            ));
        };
        if codec != expected.codec {
            return Err(bad(format!(
                "announces codec {codec:?}, the job gives {:?}",
                expected.codec
            )));
        }
        match (&a.task, &expected.task) {
            (Some(Task::SecureSum(_)), Task::SecureSum(_)) => {}
            (Some(Task::ModelTask(bytes)), Task::ModelTask(wanted)) => {
                let task = ModelTask::from_bytes(bytes)
                    .map_err(|e| (Check::Task, format!("the announced task: {e}")))?;
                let replayed = ModelTask::from_bytes(wanted)
                    .map_err(|e| (Check::Task, format!("the replayed task: {e}")))?;
                // Byte-identical to the replay's encoding, or else equal
                // values (only the formatting differs).
                if bytes != wanted && task != replayed {
                    let detail = first_difference(&to_value(&task), &to_value(&replayed))
                        .map(|d| format!(" (at {d})"))
                        .unwrap_or_default();
                    return Err((
                        Check::Task,
                        format!(
                            "announces a {} task, but the replayed job asks for a {} task{detail}",
                            task.name(),
                            replayed.name()
                        ),
                    ));
                }
            }
            (_, Task::SecureSum(_)) => {
                return Err((
                    Check::Task,
                    "the task of a secure-sum job must be a secure sum".into(),
                ));
            }
            (_, Task::ModelTask(_)) => {
                return Err((
                    Check::Task,
                    "the task of a model job must be a model task".into(),
                ));
            }
        }
        if dimension != expected.dimension {
            return Err(bad(format!(
                "announces {dimension} values, the job gives {}",
                expected.dimension
            )));
        }
        Ok(planned)
    }

    /// Takes a verified round's decoded sum and checks the logged progress.
    pub fn absorb(&mut self, sum: &[f64], progress_json: &str) -> Result<(), Mismatch> {
        if let Some(why) = &self.lost {
            return Err((Check::Progress, why.clone()));
        }
        let rules = self
            .rules
            .as_mut()
            .map_err(|e| (Check::Progress, e.clone()))?;
        let secure_sum = matches!(rules, JobRules::SecureSum { .. });
        let monitor = matches!(rules, JobRules::Monitor { .. });
        if progress_json.is_empty() {
            // The coordinator says the job refused this sum: the rules must
            // refuse it too (they are left unchanged by a refusal).
            return match rules.clone().absorb(sum) {
                Err(e) => {
                    self.refused = Some(e.to_string());
                    Ok(())
                }
                Ok(_) => Err((
                    Check::Progress,
                    "the round logs no progress (a refused sum), but the job's rules accept the sum"
                        .into(),
                )),
            };
        }
        let progress = match rules.absorb(sum) {
            Ok(p) => p,
            Err(e) => {
                let why = format!("the replayed job cannot absorb the sum: {e}");
                self.lost = Some(why.clone());
                return Err((Check::Progress, why));
            }
        };
        if progress == progress_json || (secure_sum && progress_json.trim() == progress) {
            return Ok(());
        }
        if secure_sum {
            return Err((
                Check::Progress,
                format!("a secure-sum round logs progress \"null\", not {progress_json:?}"),
            ));
        }
        if monitor {
            return compare_json(&progress, progress_json, "stability report");
        }
        compare_progress(&progress, progress_json)
    }

    /// After a round that failed a check but was published anyway: follow
    /// the published sum so that later rounds can still be checked.
    pub fn follow_unverified(&mut self, sum: Option<Vec<f64>>) {
        if self.lost.is_some() {
            return;
        }
        let Ok(rules) = self.rules.as_mut() else {
            return;
        };
        let followed = sum.is_some_and(|s| rules.absorb(&s).is_ok());
        if !followed {
            self.lost =
                Some("the replay stopped at an earlier round that failed its checks".into());
        }
    }

    /// Checks the job's end. Returns whether a published model was verified.
    pub fn end(&self, ok: bool, model_json: &str) -> Result<bool, Mismatch> {
        let rules = self.rules.as_ref().map_err(|e| (Check::Model, e.clone()))?;
        if let Some(why) = &self.refused {
            if ok || !model_json.is_empty() {
                return Err((
                    Check::End,
                    format!(
                        "the job refused a published sum ({why}), so it must end failed, without a model"
                    ),
                ));
            }
            return Ok(false);
        }
        if let JobRules::SecureSum { .. } | JobRules::Monitor { .. } = rules {
            let done = self.lost.is_some() || rules.next_plan().is_none();
            if !model_json.is_empty() {
                return Err((
                    Check::Model,
                    format!("a {} job publishes no model", rules_kind(rules)),
                ));
            }
            if ok && !done {
                return Err((
                    Check::End,
                    "the job is declared finished, but its round never completed".into(),
                ));
            }
            if !ok && done {
                return Err((
                    Check::End,
                    "the job is declared failed, but its one round completed".into(),
                ));
            }
            return Ok(false);
        }
        if let Some(why) = &self.lost
            && (ok || !model_json.is_empty())
        {
            return Err((
                Check::Model,
                format!("the published model cannot be checked: {why}"),
            ));
        }
        if !ok && rules.model().is_some() {
            return Err((
                Check::End,
                "the job is declared failed, but its logged rounds finished it".into(),
            ));
        }
        match (rules.model(), model_json.is_empty()) {
            (Some(model), false) => compare_model(model, model_json).map(|()| true),
            (Some(_), true) if ok => Err((
                Check::Model,
                "the job is declared finished but publishes no model".into(),
            )),
            (Some(_), true) => Ok(false),
            (None, false) => Err((
                Check::Model,
                format!(
                    "a model is published, but the logged rounds do not finish the job (it still asks for a {} round)",
                    Self::next_name(rules)
                ),
            )),
            (None, true) if ok => Err((
                Check::End,
                format!(
                    "the job is declared finished, but it still asks for a {} round",
                    Self::next_name(rules)
                ),
            )),
            (None, true) => Ok(false),
        }
    }
}

/// `secure-sum` or `monitor`: the one-round kinds, for messages.
fn rules_kind(rules: &JobRules) -> &'static str {
    match rules {
        JobRules::Monitor { .. } => "monitor",
        _ => "secure-sum",
    }
}

/// A logged JSON result must be the replayed one: equal values (the
/// replay's bytes are compared first, by the caller).
fn compare_json(ours: &str, logged: &str, what: &str) -> Result<(), Mismatch> {
    let ours: Value = serde_json::from_str(ours).map_err(|e| (Check::Progress, e.to_string()))?;
    let parsed: Value = serde_json::from_str(logged).map_err(|e| {
        (
            Check::Progress,
            format!("the logged {what} is not readable: {e}"),
        )
    })?;
    if parsed == ours {
        return Ok(());
    }
    let detail = first_difference(&parsed, &ours)
        .map(|d| format!(" (at {d})"))
        .unwrap_or_default();
    Err((
        Check::Progress,
        format!("the logged {what} is not the one the published sum makes{detail}"),
    ))
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The logged progress must be the replayed one: byte-identical JSON, or
/// (if only the formatting differs) equal values.
fn compare_progress(ours: &str, logged: &str) -> Result<(), Mismatch> {
    let progress: Progress =
        serde_json::from_str(ours).map_err(|e| (Check::Progress, e.to_string()))?;
    let parsed: Progress = serde_json::from_str(logged).map_err(|e| {
        (
            Check::Progress,
            format!("the logged progress is not readable: {e}"),
        )
    })?;
    if parsed == progress {
        return Ok(());
    }
    let detail = first_difference(&to_value(&parsed), &to_value(&progress))
        .unwrap_or_else(|| "values".into());
    Err((
        Check::Progress,
        format!("the logged progress differs from the replayed one at {detail}"),
    ))
}

/// The published model must be the replayed one.
fn compare_model(model: &FittedModel, logged: &str) -> Result<(), Mismatch> {
    let ours = serde_json::to_string(model).map_err(|e| (Check::Model, e.to_string()))?;
    if ours == logged {
        return Ok(());
    }
    let parsed: FittedModel = serde_json::from_str(logged).map_err(|e| {
        (
            Check::Model,
            format!("the published model is not readable: {e}"),
        )
    })?;
    if parsed == *model {
        return Ok(());
    }
    // A model published before calibration tables existed has none: the
    // table is post-processing of the logged evaluation sum, recomputed
    // here, so its absence claims nothing.
    if parsed.calibration.is_none() && model.calibration.is_some() {
        let without = FittedModel {
            calibration: None,
            ..model.clone()
        };
        if parsed == without {
            return Ok(());
        }
    }
    let detail =
        first_difference(&to_value(&parsed), &to_value(model)).unwrap_or_else(|| "values".into());
    Err((
        Check::Model,
        format!(
            "the published model differs from the model recomputed from the logged sums at {detail}"
        ),
    ))
}

/// The first place two JSON values differ: `path: published X, recomputed Y`.
pub(crate) fn first_difference(published: &Value, replayed: &Value) -> Option<String> {
    json_difference(published, replayed, ("published", "recomputed"))
}

/// The first place two JSON values differ, in key order:
/// `path: <names.0> X, <names.1> Y` (`"the top level"` for the root; long
/// values shortened). `None` if they are equal. The report builder names
/// a model file against the model its round log published this way.
///
/// ```
/// use fedcredit_audit::json_difference;
/// let a = serde_json::json!({"l2": 1.0, "c": [1, 2]});
/// let b = serde_json::json!({"l2": 1.0, "c": [1, 3]});
/// assert_eq!(
///     json_difference(&a, &b, ("model.json", "the log")).as_deref(),
///     Some("c[1]: model.json 2, the log 3")
/// );
/// ```
pub fn json_difference(a: &Value, b: &Value, names: (&str, &str)) -> Option<String> {
    fn walk(a: &Value, b: &Value, path: &str, names: (&str, &str)) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                keys.into_iter().find_map(|k| {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        &p,
                        names,
                    )
                })
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (u, v))| walk(u, v, &format!("{path}[{i}]"), names)),
            _ if a == b => None,
            _ => Some(format!(
                "{}: {} {}, {} {}",
                if path.is_empty() {
                    "the top level"
                } else {
                    path
                },
                names.0,
                short(a),
                names.1,
                short(b)
            )),
        }
    }
    walk(a, b, "", names)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let head: String = s.chars().take(77).collect();
        format!("{head}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_difference_names_the_path() {
        let a = json!({"standardized": {"coefficients": [1.0, 2.0, 3.0]}, "l2": 1.0});
        let b = json!({"standardized": {"coefficients": [1.0, 2.5, 3.0]}, "l2": 1.0});
        let d = first_difference(&a, &b).expect("differs");
        assert_eq!(
            d,
            "standardized.coefficients[1]: published 2.0, recomputed 2.5"
        );
        assert_eq!(first_difference(&a, &a), None);
    }
}
