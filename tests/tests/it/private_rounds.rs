//! Differential privacy under attack, with real participants and a
//! coordinator that is the adversary: the noise of a private round survives
//! dropouts and colluders, and a round announced with less noise (or
//! weaker clipping) than the job's privacy setting is refused.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use fedcredit_model::job::{ModelJobSpec, ModelTask, OptimizerKind};
use fedcredit_model::privacy::{Clipping, PrivacySetting, PrivacySpec, TaskNoise, clip_columns};
use fedcredit_model::stats::local_sums_and_positives;
use fedcredit_model::{Feature, LabelSpec, Schema};
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::{Dataset, load_csv};
use fedcredit_proto::v1::round_announcement::Task;
use fedcredit_referee::Referee;
use fedcredit_referee::consortium::{Consortium, JobKind, JobSpec};
use fedcredit_tests::setup::{
    Honest, coordinator_key, member_id, member_key, secure_sum_consortium, spawn_honest,
};
use fedcredit_tests::{Adversary, End};
use rand::SeedableRng;

/// Categories of the wide categorical feature: the statistics round then
/// has about this many values, each a sample of the summed noise.
const CATEGORIES: usize = 1500;

async fn guarded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(240), f)
        .await
        .expect("the test hung");
}

fn schema() -> Schema {
    Schema {
        label: LabelSpec::binary("label", "bad", "good"),
        features: vec![
            Feature::Numeric {
                name: "amount".into(),
            },
            Feature::Categorical {
                name: "sector".into(),
                categories: (0..CATEGORIES).map(|k| format!("s{k}")).collect(),
            },
        ],
    }
}

/// A private credit job over `n` members (default thresholds).
fn consortium(n: usize) -> Consortium {
    let spec = ModelJobSpec {
        schema: schema(),
        l2: 1.0,
        tol: 1e-8,
        max_rounds: 25,
        optimizer: OptimizerKind::Newton,
        fedavg: Default::default(),
        bins: 10_000,
        privacy: Some(PrivacySetting::Private(Box::new(PrivacySpec {
            epsilon: 1.0,
            delta: 1e-6,
            rounds: 3,
            clip_norm: None,
            loss_clip: 10.0,
            bins: 50,
            split: Default::default(),
            bounds: [("amount".to_string(), [0.0, 1000.0])].into(),
        }))),
        scorecard: None,
    };
    let mut c = secure_sum_consortium(n, "", 1, 16, 1e6).unwrap();
    c.job = JobSpec {
        id: "private-credit".into(),
        cohort: Default::default(),
        require_all_members: false,
        kind: JobKind::LogisticRegression(spec),
    };
    c
}

/// Member `i`'s rows: amounts (some beyond the public bound) and sectors.
fn rows(dir: &Path, i: usize) -> Dataset {
    let mut text = String::from("amount,sector,label\n");
    for r in 0..20 {
        let amount = 50 * (r + 1) + 7 * i + if r == 3 { 5000 } else { 0 };
        let sector = (i * 37 + r * 11) % CATEGORIES;
        let label = if (r + i).is_multiple_of(3) {
            "bad"
        } else {
            "good"
        };
        text.push_str(&format!("{amount},s{sector},{label}\n"));
    }
    let path = dir.join(format!("{}.csv", member_id(i)));
    std::fs::write(&path, text).unwrap();
    load_csv(&path, &schema()).unwrap()
}

/// The job's first planned round, as every honest member computes it.
fn first_plan(c: &Consortium) -> (fedcredit_referee::RoundPlan, TaskNoise, [u8; 32]) {
    let referee = Referee::new(c).unwrap();
    let plan = referee.next_plan().unwrap();
    let Task::ModelTask(bytes) = &plan.task else {
        panic!("a model task")
    };
    let noise = ModelTask::from_bytes(bytes)
        .unwrap()
        .noise()
        .cloned()
        .expect("a private job's first task carries noise");
    let digest = *referee.digest(&plan).as_bytes();
    (plan, noise, digest)
}

/// Member `i`'s noise share for the task: what a colluder knows of its own.
fn share_of(i: usize, noise: &TaskNoise, digest: &[u8; 32]) -> Vec<i64> {
    let seed = member_key(i).derive_seed(&[b"fedcredit/v1/dp-noise\0".as_slice(), digest].concat());
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(*seed);
    noise.sample_share(&mut rng).unwrap()
}

async fn finish<C>(adv: &mut Adversary, honest: Vec<Honest<C>>) {
    let ids: Vec<String> = honest.iter().map(|h| h.id.clone()).collect();
    adv.finish(&ids).await;
    for h in honest {
        let _ = h.join().await;
    }
}

/// Seven members (c = 2, t = 5, so each adds σ²/3). The adversary drops two
/// of them after their masked inputs and, colluding with two survivors,
/// subtracts their noise: what remains of the noise in the decoded sum must
/// still have the variance the accountant counted on (3 honest shares).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_survives_dropouts_and_colluders() {
    guarded(async {
        let dir = tempfile::tempdir().unwrap();
        let n = 7;
        let c = consortium(n);
        let t = c.protocol.thresholds;
        assert_eq!((t.threshold(), t.max_colluders()), (5, 2));
        let (plan, noise, digest) = first_plan(&c);
        assert_eq!(noise.honest, 3);
        let data: Vec<Dataset> = (0..n).map(|i| rows(dir.path(), i)).collect();
        let mut adv = Adversary::start(c.clone(), coordinator_key()).await;
        let honest: Vec<_> = (0..n)
            .map(|i| {
                let d = CreditData::new(rows(dir.path(), i), None);
                spawn_honest(&adv, &c, i, d, None)
            })
            .collect();
        let all: Vec<String> = (0..n).map(member_id).collect();
        let dropped = [member_id(5), member_id(6)];
        let ann = adv.announcement(plan.task.clone(), plan.dimension, plan.codec);
        let results = adv
            .run_attempt(0, 0, ann, &all, &dropped, End::Complete)
            .await;
        finish(&mut adv, honest).await;
        let words = results
            .values()
            .find_map(|r| r.as_ref().ok())
            .cloned()
            .unwrap_or_else(|| panic!("no sum was decoded\n{}", adv.summary()));

        // The noise-free sum of the five survivors, encoded as they encode it.
        let Clipping::Columns { bounds, centre } = &noise.clip else {
            panic!("the statistics round clips columns")
        };
        let codec = plan.codec;
        let mut exact = vec![0u64; codec.words_for(plan.dimension)];
        for d in &data[..5] {
            let mut x = d.x.clone();
            clip_columns(&mut x, bounds, *centre);
            let mut v = local_sums_and_positives(x.view(), d.y.view()).unwrap();
            noise.scale(&mut v);
            let w = codec.encode(&v, n).unwrap();
            codec.ring().add_assign(&mut exact, &w).unwrap();
        }
        let grid = 2f64.powi(noise.grid_bits as i32);
        let total: Vec<f64> = codec
            .decode(&words)
            .unwrap()
            .iter()
            .zip(codec.decode(&exact).unwrap())
            .map(|(a, b)| ((a - b) * grid).round())
            .collect();
        // Exactly the five survivors' shares: the dropped members' noise is not in it.
        let shares: Vec<Vec<i64>> = (0..n).map(|i| share_of(i, &noise, &digest)).collect();
        for (j, z) in total.iter().enumerate() {
            let five: i64 = shares[..5].iter().map(|s| s[j]).sum();
            assert_eq!(*z, five as f64, "coordinate {j}");
        }
        // The coalition (coordinator + bank-a, bank-b) removes what it knows.
        let left: Vec<f64> = total
            .iter()
            .enumerate()
            .map(|(j, z)| z - (shares[0][j] + shares[1][j]) as f64)
            .collect();
        let var = left.iter().map(|v| v * v).sum::<f64>() / left.len() as f64;
        let target = noise.honest as f64 * noise.sigma2_member as f64;
        // d ≈ 1500 samples: the estimate's relative sd is √(2/d) ≈ 3.7 %.
        assert!(
            var >= 0.85 * target,
            "noise variance left after dropouts and colluders {var:.4e} is below the \
             target {target:.4e}"
        );
        let all_var = total.iter().map(|v| v * v).sum::<f64>() / total.len() as f64;
        assert!(
            all_var >= 0.85 * 5.0 * noise.sigma2_member as f64,
            "{all_var:.4e}"
        );
    })
    .await;
}

/// The adversary announces the job's first task with half the noise (ρ
/// restated to match, so the task is self-consistent), then with no noise at
/// all, then with wider clipping bounds. Honest
/// members send nothing for any of them: each is refused as not the noise
/// and clipping the job's privacy setting gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_under_noised_or_under_clipped_task_is_refused() {
    guarded(async {
        let dir = tempfile::tempdir().unwrap();
        let n = 4;
        let c = consortium(n);
        let (plan, noise, _) = first_plan(&c);
        let mut half = noise.clone();
        half.sigma2_member /= 2;
        half.rho = half.recompute_rho().unwrap();
        let mut wide = noise.clone();
        if let Clipping::Columns { bounds, .. } = &mut wide.clip {
            bounds[0] = Some([0.0, 1e9]);
        }
        let crafted = [
            (
                "half the noise",
                ModelTask::Moments { noise: Some(half) },
                plan.codec,
                "noise",
            ),
            (
                "no noise",
                ModelTask::Moments { noise: None },
                plan.codec,
                "noise",
            ),
            (
                "wider bounds",
                ModelTask::Moments { noise: Some(wide) },
                plan.codec,
                "clipping",
            ),
        ];
        // A refused task ends an honest member's run, so each attack gets a
        // fresh consortium run.
        for (what, task, codec, named) in crafted {
            let mut adv = Adversary::start(c.clone(), coordinator_key()).await;
            let honest: Vec<_> = (0..n)
                .map(|i| {
                    let d = CreditData::new(rows(dir.path(), i), None);
                    spawn_honest(&adv, &c, i, d, None)
                })
                .collect();
            let all: Vec<String> = (0..n).map(member_id).collect();
            let ann = adv.announcement(
                Task::ModelTask(task.to_bytes().into()),
                plan.dimension,
                codec,
            );
            adv.run_attempt(0, 0, ann, &all, &[], End::Complete).await;
            finish(&mut adv, honest).await;
            let at = &adv.attempts[0];
            assert_eq!(
                at.delivered.len(),
                n,
                "{what}: the attack was not mounted\n{}",
                adv.summary()
            );
            assert!(
                at.masked.is_empty(),
                "{what}: honest members sent masked inputs for a task with weaker noise or \
                 clipping than the job's: {:?}",
                at.masked.keys().collect::<Vec<_>>()
            );
            let leaves: BTreeMap<_, _> = adv.leaves.iter().cloned().collect();
            assert!(
                leaves.len() == n && leaves.values().all(|r| r == "refused-task"),
                "{what}: leaves {leaves:?}"
            );
            let summary = adv.summary();
            assert!(
                summary.contains(&format!("announced {named}")),
                "{what}: the refusal does not name the {named}\n{summary}"
            );
        }
    })
    .await;
}
