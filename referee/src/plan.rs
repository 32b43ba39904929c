//! The job as a deterministic sequence of rounds: [`JobRules`] says which
//! [`RoundPlan`] comes next and absorbs each published sum. Pure: the same
//! spec and sums give the same plans everywhere, bit for bit.

use crate::consortium::{JobKind, JobSpec};
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::wide::WideFixed;
use fedcredit_model::job::{FittedModel, ModelJob, ModelTask};
use fedcredit_model::privacy::{NoiseCohort, TaskNoise};
use fedcredit_model::scorecard::HistogramLayout;
use fedcredit_model::scorecard::stability::{MonitorReport, StabilityLayout};
use fedcredit_proto::codec::Codec;
use fedcredit_proto::v1::{self as pb, round_announcement::Task};
use sha2::{Digest, Sha256};

use crate::RefereeError;

/// One round's aggregation: how many values, their codec, and the task
/// participants compute.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundPlan {
    /// Values each participant contributes.
    pub dimension: usize,
    /// How values become words.
    pub codec: Codec,
    /// What participants compute (carried in the announcement).
    pub task: Task,
}

/// The rules of one job: the next round's plan, and what a published sum
/// makes of the job.
#[derive(Debug, Clone)]
pub enum JobRules {
    /// `rounds` sums of `dimension` values in a narrow codec, one per round.
    SecureSum {
        /// The first sum's plan; sum k's task carries index k.
        plan: RoundPlan,
        /// How many sums the job has.
        rounds: u32,
        /// How many sums were absorbed.
        done: u32,
    },
    /// A credit model (statistics, optimization, evaluation rounds).
    Model {
        /// The job's state between rounds.
        job: Box<ModelJob>,
        /// The wide codec of model rounds.
        codec: Codec,
    },
    /// Population stability: one round of row counts (see [`crate::monitor`]).
    Monitor {
        /// The single round.
        plan: RoundPlan,
        /// Which count is which.
        layout: Box<StabilityLayout>,
        /// The report, once the round's sum was absorbed.
        report: Option<Box<MonitorReport>>,
    },
}

/// Who adds noise in the consortium's private rounds: n members, and t − c
/// honest contributors in any decoded sum.
pub fn noise_cohort(consortium: &crate::consortium::Consortium) -> NoiseCohort {
    let t = consortium.protocol.thresholds;
    NoiseCohort {
        members: consortium.roster.len() as u64,
        honest: (t.threshold().saturating_sub(t.max_colluders())).max(1) as u64,
    }
}

/// The codec of a private round: the wide ring with the noise's grid as its
/// fractional bits, so noise and values are integers in the same units.
pub fn noise_codec(noise: &TaskNoise) -> Codec {
    // TaskNoise::plan keeps grid_bits ≤ 120, within 3 limbs' 158.
    Codec::Wide(
        WideFixed::new(WideFixed::model_default().limbs(), noise.grid_bits)
            .unwrap_or_else(|_| WideFixed::model_default()),
    )
}

impl JobRules {
    /// A series of `rounds` secure sums of `dimension` values (one round
    /// each; a single sum is a series of one).
    pub fn secure_sum(dimension: usize, fixed_point: FixedPoint, rounds: u32) -> Self {
        JobRules::SecureSum {
            plan: RoundPlan {
                dimension,
                codec: Codec::Narrow(fixed_point),
                task: Task::SecureSum(pb::SecureSumTask { index: 0 }),
            },
            rounds,
            done: 0,
        }
    }

    /// The rules of `spec` (validated); `cohort` sizes a private job's noise.
    pub fn new(spec: &JobSpec, cohort: NoiseCohort) -> Result<Self, RefereeError> {
        match &spec.kind {
            JobKind::SecureSum {
                dimension,
                frac_bits,
                clip,
                rounds,
            } => {
                let fp = FixedPoint::new(*frac_bits, *clip)
                    .map_err(|e| RefereeError::Spec(e.to_string()))?;
                Ok(JobRules::secure_sum(*dimension, fp, *rounds))
            }
            JobKind::LogisticRegression(model) | JobKind::Scorecard(model) => {
                let job = ModelJob::new(model.clone(), &spec.id, &hex::encode(spec.hash()), cohort)
                    .map_err(|e| RefereeError::Spec(e.to_string()))?;
                Ok(JobRules::Model {
                    job: Box::new(job),
                    codec: Codec::Wide(WideFixed::model_default()),
                })
            }
            JobKind::Monitor(monitor) => {
                let layout = monitor.layout().map_err(RefereeError::Spec)?;
                let codec =
                    crate::monitor::count_codec().map_err(|e| RefereeError::Spec(e.to_string()))?;
                Ok(JobRules::Monitor {
                    // The spec (hashed into the session and the task
                    // digest) says what is counted; the task carries nothing.
                    plan: RoundPlan {
                        dimension: layout.dimension(),
                        codec: Codec::Narrow(codec),
                        task: Task::SecureSum(pb::SecureSumTask { index: 0 }),
                    },
                    layout: Box::new(layout),
                    report: None,
                })
            }
        }
    }

    /// The next round's plan, or `None` when the job is done.
    pub fn next_plan(&self) -> Option<RoundPlan> {
        match self {
            JobRules::SecureSum { plan, rounds, done } => (done < rounds).then(|| RoundPlan {
                task: Task::SecureSum(pb::SecureSumTask { index: *done }),
                ..plan.clone()
            }),
            JobRules::Model { job, codec } => job.next_task().map(|task| RoundPlan {
                dimension: task.dimension(job.width()),
                codec: task.noise().map_or(*codec, noise_codec),
                task: Task::ModelTask(task.to_bytes().into()),
            }),
            JobRules::Monitor { plan, report, .. } => report.is_none().then(|| plan.clone()),
        }
    }

    /// The next model task, decoded (`None` for a secure sum or a finished job).
    pub fn next_model_task(&self) -> Option<ModelTask> {
        match self {
            JobRules::Model { job, .. } => job.next_task(),
            JobRules::SecureSum { .. } | JobRules::Monitor { .. } => None,
        }
    }

    /// Absorbs the decoded sum of the current round; returns what the job
    /// made of it as JSON (`null` for a secure sum). On error nothing changes.
    pub fn absorb(&mut self, sum: &[f64]) -> Result<String, RefereeError> {
        match self {
            JobRules::SecureSum { plan, rounds, done } => {
                if done >= rounds {
                    return Err(RefereeError::Absorb {
                        round: u64::from(*rounds),
                        message: format!(
                            "a secure-sum job of {rounds} sum(s) is done after its last"
                        ),
                    });
                }
                if sum.len() != plan.dimension {
                    return Err(RefereeError::Absorb {
                        round: 0,
                        message: format!(
                            "the sum has {} values, the job sums {}",
                            sum.len(),
                            plan.dimension
                        ),
                    });
                }
                *done += 1;
                Ok("null".into())
            }
            JobRules::Model { job, .. } => {
                let progress = job.absorb(sum).map_err(|e| RefereeError::Absorb {
                    round: 0,
                    message: e.to_string(),
                })?;
                serde_json::to_string(&progress).map_err(|e| RefereeError::Absorb {
                    round: 0,
                    message: e.to_string(),
                })
            }
            JobRules::Monitor { layout, report, .. } => {
                let absorb = |message: String| RefereeError::Absorb { round: 0, message };
                if report.is_some() {
                    return Err(RefereeError::Absorb {
                        round: 1,
                        message: "a monitor job has one round, and it is done".into(),
                    });
                }
                let made = layout.report(sum).map_err(|e| absorb(e.to_string()))?;
                let json = serde_json::to_string(&made).map_err(|e| absorb(e.to_string()))?;
                *report = Some(Box::new(made));
                Ok(json)
            }
        }
    }

    /// The stability report of a monitor job, once its round was absorbed.
    pub fn monitor_report(&self) -> Option<&MonitorReport> {
        match self {
            JobRules::Monitor { report, .. } => report.as_deref(),
            _ => None,
        }
    }

    /// Whether the next round keeps the job within its privacy budget.
    pub fn check_budget(&self) -> Result<(), String> {
        match self {
            JobRules::Model { job, .. } => job.check_budget().map_err(|e| e.to_string()),
            JobRules::SecureSum { .. } | JobRules::Monitor { .. } => Ok(()),
        }
    }

    /// The privacy spent by the absorbed rounds (private model jobs).
    pub fn privacy_report(&self) -> Option<fedcredit_model::privacy::PrivacyReport> {
        match self {
            JobRules::Model { job, .. } => job.privacy_report(),
            JobRules::SecureSum { .. } | JobRules::Monitor { .. } => None,
        }
    }

    /// The fitted model of a model job, once done.
    pub fn model(&self) -> Option<&FittedModel> {
        match self {
            JobRules::Model { job, .. } => job.model(),
            JobRules::SecureSum { .. } | JobRules::Monitor { .. } => None,
        }
    }
}

/// The largest number of words any round of this job aggregates: the bound a
/// participant and the coordinator hold every message to.
pub fn max_words(kind: &JobKind) -> usize {
    match kind {
        JobKind::SecureSum { dimension, .. } => *dimension,
        JobKind::LogisticRegression(spec) | JobKind::Scorecard(spec) => {
            let p = spec.schema.encoded_width();
            // A scorecard's binning round: its histogram vector.
            let histograms = spec.scorecard.as_ref().map_or(0, |c| {
                HistogramLayout::new(&spec.schema, &c.bounds, c.fine_bins).map_or(0, |l| l.len())
            });
            let values = fedcredit_model::logistic::newton::newton_terms_len(p)
                .max(2 * spec.bins + 3)
                .max(p + 2)
                .max(histograms);
            Codec::Wide(WideFixed::model_default()).words_for(values)
        }
        // An invalid spec is refused before any round: no words.
        JobKind::Monitor(spec) => spec.layout().map_or(0, |l| l.dimension()),
    }
}

/// A task's identity, independent of round and attempt numbers: two rounds
/// with the same digest ask every member for the same vector, so a member
/// contributes to a digest with one contributor set only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskDigest([u8; 32]);

impl TaskDigest {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, as the participant journal stores it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the journal's hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = hex::decode(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl std::fmt::Display for TaskDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex()[..16])
    }
}

/// SHA-256 over a domain tag, the job (id and spec hash), the codec, the
/// dimension and the task's bytes. Round and attempt numbers are left out on
/// purpose: a retry or a later round asking the same thing is the same task.
pub fn task_digest(spec: &JobSpec, plan: &RoundPlan) -> TaskDigest {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/task\0");
    h.update((spec.id.len() as u64).to_be_bytes());
    h.update(spec.id.as_bytes());
    h.update(spec.hash());
    let (fp, limbs) = plan.codec.to_pb();
    h.update(fp.frac_bits.to_be_bytes());
    h.update(fp.clip.to_bits().to_be_bytes());
    h.update(limbs.to_be_bytes());
    h.update((plan.dimension as u64).to_be_bytes());
    match &plan.task {
        Task::SecureSum(sum) => {
            h.update(b"secure-sum\0");
            // A series' later sums are other tasks; a single sum (index 0)
            // keeps the digest it had before series existed.
            if sum.index > 0 {
                h.update(sum.index.to_be_bytes());
            }
        }
        Task::ModelTask(bytes) => {
            h.update(b"model-task\0");
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
    }
    TaskDigest(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consortium::CohortPolicy;

    fn secure_sum(clip: f64) -> JobSpec {
        series(clip, 1)
    }

    fn series(clip: f64, rounds: u32) -> JobSpec {
        JobSpec {
            id: "j".into(),
            cohort: CohortPolicy::Fixed,
            require_all_members: false,
            kind: JobKind::SecureSum {
                dimension: 2,
                frac_bits: 16,
                clip,
                rounds,
            },
        }
    }

    #[test]
    fn a_series_is_one_task_per_sum_and_a_single_sum_keeps_its_hash() {
        let spec = series(1e6, 3);
        let mut rules = JobRules::new(&spec, NoiseCohort::single()).expect("valid");
        let mut digests = Vec::new();
        for k in 0..3 {
            let plan = rules.next_plan().expect("a sum is left");
            assert_eq!(plan.task, Task::SecureSum(pb::SecureSumTask { index: k }));
            digests.push(task_digest(&spec, &plan));
            rules.absorb(&[1.0, 2.0]).expect("absorbs");
        }
        assert!(rules.next_plan().is_none(), "three sums, then done");
        assert!(rules.absorb(&[1.0, 2.0]).is_err());
        digests.sort_by_key(TaskDigest::to_hex);
        digests.dedup();
        assert_eq!(
            digests.len(),
            3,
            "no two sums of a series are the same task"
        );
        // `rounds = 1` is left out of the canonical spec: old hashes hold.
        let single = serde_json::to_string(&secure_sum(1e6).kind).expect("json");
        assert!(!single.contains("rounds"), "{single}");
        assert!(
            serde_json::to_string(&spec.kind)
                .expect("json")
                .contains("\"rounds\":3")
        );
    }

    #[test]
    fn a_secure_sum_has_exactly_one_round() {
        let mut rules = JobRules::new(&secure_sum(1e6), NoiseCohort::single()).expect("valid");
        assert!(rules.next_plan().is_some());
        assert!(rules.absorb(&[1.0]).is_err(), "wrong length is refused");
        assert!(rules.next_plan().is_some(), "a refused sum changes nothing");
        rules.absorb(&[1.0, 2.0]).expect("absorbs");
        assert!(rules.next_plan().is_none());
        assert!(rules.absorb(&[1.0, 2.0]).is_err());
    }

    #[test]
    fn digest_depends_on_settings_not_on_round() {
        let a = secure_sum(1e6);
        let b = secure_sum(2e6);
        let pa = JobRules::new(&a, NoiseCohort::single())
            .expect("a")
            .next_plan()
            .expect("plan");
        let pb_ = JobRules::new(&b, NoiseCohort::single())
            .expect("b")
            .next_plan()
            .expect("plan");
        assert_eq!(task_digest(&a, &pa), task_digest(&a, &pa.clone()));
        assert_ne!(task_digest(&a, &pa), task_digest(&b, &pb_));
        let d = task_digest(&a, &pa);
        assert_eq!(TaskDigest::from_hex(&d.to_hex()), Some(d));
    }
}
