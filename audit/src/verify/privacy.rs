//! The privacy ledger of a private credit-model job: its own pass over the
//! log, independent of the replay, so that a log whose announcements carry
//! weaker noise is named over budget even when the replay's checks also fail.
//!
//! For every published round (`RoundCompleted`), the task of the announcement
//! of that round and attempt is read, its noise's ρ is recomputed from the
//! parameters alone (the logged `rho` is never used, only compared), with
//! t − c taken from the consortium file; the rounds' ρ add up (zCDP) and are
//! converted to ε at the job's δ, which must not exceed the job's ε.

use std::collections::BTreeMap;

use fedcredit_model::job::ModelTask;
use fedcredit_model::privacy::{NoiseCohort, PrivacyReport, PrivacySpec, epsilon_spent};
use fedcredit_proto::roundlog::Entry;
use fedcredit_proto::v1::{self as pb, coordinator_message, log_body, round_announcement::Task};
use fedcredit_referee::consortium::{Consortium, JobKind};
use prost::Message as _;

use crate::report::{Check, Failure};

/// Relative slack on ε and on a logged ρ (float conversions, not policy).
const SLACK: f64 = 1e-9;

/// One published round, as the ledger sees it.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// Its `RoundCompleted` record.
    pub record: u64,
    /// The round.
    pub round: u64,
    /// The announced task, or why it cannot be read.
    pub task: Result<ModelTask, String>,
    /// Whose inputs are in the sum, sorted.
    pub contributors: Vec<String>,
}

/// The job's privacy spec, if it is a private credit-model job.
pub(crate) fn private_spec(consortium: &Consortium) -> Option<&PrivacySpec> {
    match &consortium.job.kind {
        JobKind::LogisticRegression(spec) | JobKind::Scorecard(spec) => {
            spec.privacy.as_ref()?.spec()
        }
        JobKind::SecureSum { .. } | JobKind::Monitor(_) => None,
    }
}

/// The ledger pass over a log's records: `None` for a job without privacy.
pub(crate) fn audit(
    entries: &[Entry],
    consortium: &Consortium,
) -> Option<(PrivacyReport, Vec<Failure>)> {
    let spec = private_spec(consortium)?;
    let cohort = fedcredit_referee::plan::noise_cohort(consortium);
    Some(charge(spec, cohort, &published(entries)))
}

/// Every published round with the task of its announcement (the latest
/// announcement of that round and attempt before it).
fn published(entries: &[Entry]) -> Vec<Published> {
    let mut announced: BTreeMap<(u64, u32), Result<ModelTask, String>> = BTreeMap::new();
    let mut out = Vec::new();
    for e in entries {
        match &e.body.entry {
            Some(log_body::Entry::Announcement(signed)) => {
                // What participants were shown, whatever its signature says:
                // the cost is charged either way.
                if let Ok(m) = pb::CoordinatorMessage::decode(signed.payload.clone())
                    && let Some(coordinator_message::Body::Announce(a)) = &m.body
                {
                    let task = match &a.task {
                        Some(Task::ModelTask(bytes)) => {
                            ModelTask::from_bytes(bytes).map_err(|e| e.to_string())
                        }
                        _ => Err("the announced task is not a model task".into()),
                    };
                    announced.insert((m.round, m.attempt), task);
                }
            }
            Some(log_body::Entry::RoundCompleted(rc)) => {
                let mut contributors = rc.contributors.clone();
                contributors.sort();
                out.push(Published {
                    record: e.body.seq,
                    round: rc.round,
                    task: announced
                        .get(&(rc.round, rc.attempt))
                        .cloned()
                        .unwrap_or_else(|| {
                            Err(format!(
                                "no announcement of attempt {} is logged",
                                rc.attempt
                            ))
                        }),
                    contributors,
                });
            }
            _ => {}
        }
    }
    out
}

/// Charges the published rounds to the job's budget: ρ recomputed per
/// round (t − c from `cohort`), each distinct task once, ε at the job's δ.
/// Every failure is [`Check::PrivacyBudget`], at the round it concerns.
pub(crate) fn charge(
    spec: &PrivacySpec,
    cohort: NoiseCohort,
    rounds: &[Published],
) -> (PrivacyReport, Vec<Failure>) {
    let mut failures = Vec::new();
    let mut fail = |record: u64, why: String| {
        failures.push(Failure::new(record, Check::PrivacyBudget, why));
    };
    let mut rho_spent = 0.0;
    let mut charged: Vec<(&ModelTask, &[String], u64)> = Vec::new();
    let mut over = false;
    for p in rounds {
        let r = p.round;
        let task = match &p.task {
            Ok(t) => t,
            Err(why) => {
                fail(
                    p.record,
                    format!(
                        "round {r} is published, but its task cannot be read ({why}): its privacy cost is unknown"
                    ),
                );
                continue;
            }
        };
        if let Some((_, set, first)) = charged.iter().find(|(t, ..)| *t == task) {
            // The same task over the same members is the same noisy sum.
            if *set != p.contributors.as_slice() {
                fail(
                    p.record,
                    format!(
                        "round {r} publishes the {} task of record {first} again over other \
                         contributors: each member's noise repeats with the task, so the two \
                         sums' difference is less noisy than the guarantee assumes",
                        task.name()
                    ),
                );
            }
            continue;
        }
        let Some(noise) = task.noise() else {
            fail(
                p.record,
                format!(
                    "round {r} publishes a {} sum without noise in a private job",
                    task.name()
                ),
            );
            continue;
        };
        if noise.honest != cohort.honest {
            fail(
                p.record,
                format!(
                    "round {r}'s noise counts on t − c = {} honest members; the consortium's \
                     thresholds give {} (ρ is recomputed with {})",
                    noise.honest, cohort.honest, cohort.honest
                ),
            );
        }
        let mut ours = noise.clone();
        ours.honest = cohort.honest;
        let rho = match ours.recompute_rho() {
            Ok(rho) => rho,
            Err(e) => {
                fail(
                    p.record,
                    format!("round {r}'s noise parameters give no ρ: {e}"),
                );
                continue;
            }
        };
        if noise.honest == cohort.honest && !close(noise.rho, rho) {
            fail(
                p.record,
                format!(
                    "round {r}'s task states ρ = {}, its noise parameters give ρ = {rho}",
                    noise.rho
                ),
            );
        }
        rho_spent += rho;
        charged.push((task, p.contributors.as_slice(), p.record));
        let eps = epsilon_spent(rho_spent, spec.delta).unwrap_or(f64::INFINITY);
        if !over && eps > spec.epsilon * (1.0 + SLACK) {
            over = true;
            fail(
                p.record,
                format!(
                    "after round {r} the published rounds have spent ε = {eps:.6} at δ = {} \
                     (ρ = {rho_spent:.6e} over {} rounds), over the job's ε = {}",
                    spec.delta,
                    charged.len(),
                    spec.epsilon
                ),
            );
        }
    }
    let report = PrivacyReport {
        epsilon: spec.epsilon,
        delta: spec.delta,
        epsilon_spent: epsilon_spent(rho_spent, spec.delta).unwrap_or(f64::INFINITY),
        rho_spent,
        rounds: charged.len() as u64,
    };
    (report, failures)
}

fn close(logged: f64, recomputed: f64) -> bool {
    (logged - recomputed).abs() <= SLACK * recomputed.abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_model::privacy::{BudgetSplit, Clipping, TaskNoise};

    fn spec(epsilon: f64) -> PrivacySpec {
        PrivacySpec {
            epsilon,
            delta: 1e-6,
            rounds: 2,
            clip_norm: None,
            loss_clip: 10.0,
            bins: 100,
            split: BudgetSplit::default(),
            bounds: BTreeMap::new(),
        }
    }

    const COHORT: NoiseCohort = NoiseCohort {
        members: 3,
        honest: 3,
    };

    /// A round of 4 values, sensitivity 2^20 + 2 in grid units: each member's
    /// σ² of 2^46 costs ρ ≈ 0.0026, of 2^36 ρ ≈ 2.7.
    fn noise(sigma2_member: u64) -> TaskNoise {
        let mut n = TaskNoise {
            grid_bits: 20,
            sigma2_member,
            honest: 3,
            members: 3,
            blocks: vec![fedcredit_model::privacy::NoiseBlock {
                len: 4,
                bound: 2.0,
                scale: 0.5,
            }],
            clip: Clipping::Loss { loss: 10.0 },
            rho: 0.0,
        };
        n.rho = n.recompute_rho().expect("rho");
        n
    }

    fn round(record: u64, round: u64, noise: Option<TaskNoise>) -> Published {
        Published {
            record,
            round,
            task: Ok(ModelTask::CenteredSquares {
                mean: vec![round as f64],
                noise,
            }),
            contributors: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    #[test]
    fn rounds_within_the_budget_pass_and_are_summed() {
        let n = noise(1 << 46);
        let rounds = [round(10, 0, Some(n.clone())), round(20, 1, Some(n.clone()))];
        let (report, failures) = charge(&spec(1.0), COHORT, &rounds);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(report.rounds, 2);
        assert_eq!(report.rho_spent, 2.0 * n.rho);
        assert_eq!(
            report.epsilon_spent,
            epsilon_spent(2.0 * n.rho, 1e-6).expect("eps")
        );
        assert!(report.epsilon_spent < 1.0);
    }

    #[test]
    fn weaker_noise_is_named_over_budget_at_the_round_that_overspends() {
        // 2^-10 of the variance: ρ grows about a thousandfold.
        let weak = noise(1 << 36);
        let rounds = [round(10, 0, Some(noise(1 << 46))), round(20, 1, Some(weak))];
        let eps = charge(&spec(1.0), COHORT, &rounds[..1]).0.epsilon_spent;
        assert!(eps < 1.0);
        let (report, failures) = charge(&spec(1.0), COHORT, &rounds);
        assert!(report.epsilon_spent > 1.0, "{report:?}");
        assert_eq!(failures.len(), 1, "{failures:?}");
        let f = &failures[0];
        assert_eq!((f.record, f.check), (20, Check::PrivacyBudget));
        assert!(f.reason.contains("over the job's ε = 1"), "{}", f.reason);
        assert_eq!(Check::PrivacyBudget.name(), "privacy-budget");
    }

    #[test]
    fn a_logged_rho_is_never_trusted() {
        let mut lying = noise(1 << 36);
        lying.rho /= 1000.0;
        let (report, failures) = charge(&spec(1.0), COHORT, &[round(7, 0, Some(lying.clone()))]);
        assert_eq!(report.rho_spent, lying.recompute_rho().expect("rho"));
        assert!(
            failures.iter().any(|f| f.reason.contains("states ρ")),
            "{failures:?}"
        );
        assert!(
            failures.iter().any(|f| f.reason.contains("over the job's")),
            "{failures:?}"
        );
    }

    #[test]
    fn a_claimed_honest_count_above_the_consortiums_is_not_believed() {
        let mut n = noise(1 << 46);
        n.honest = 30;
        n.rho = n.recompute_rho().expect("rho");
        let (report, failures) = charge(&spec(1.0), COHORT, &[round(7, 0, Some(n.clone()))]);
        assert!(report.rho_spent > n.rho, "{report:?}");
        assert!(failures[0].reason.contains("t − c = 30"), "{failures:?}");
    }

    #[test]
    fn a_republished_task_costs_once_and_a_round_without_noise_fails() {
        let n = noise(1 << 46);
        let same = [round(10, 0, Some(n.clone())), round(20, 0, Some(n.clone()))];
        let (report, failures) = charge(&spec(1.0), COHORT, &same);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!((report.rounds, report.rho_spent), (1, n.rho));
        let mut other = same.clone();
        other[1].contributors.pop();
        let (_, failures) = charge(&spec(1.0), COHORT, &other);
        assert!(
            failures[0].reason.contains("over other contributors"),
            "{failures:?}"
        );
        let (_, failures) = charge(&spec(1.0), COHORT, &[round(5, 0, None)]);
        assert!(failures[0].reason.contains("without noise"), "{failures:?}");
    }
}
