//! The malicious-coordinator suite: a scripted dishonest coordinator
//! ([`Adversary`]) against the real honest participant code over gRPC on
//! loopback. Each test mounts one attack and asserts the honest outcome: the
//! participants refuse (no masked input or no reveal for it) or the round
//! completes correctly, and nothing the adversary recorded lets it compute
//! an honest member's vector or both of its secrets.
//!
//! Every attack here succeeded against the participant before the referee,
//! the per-task contributor journal, the collusion-safe threshold and the
//! share commitments; each failure message says what the adversary learnt
//! and compares it with the true input.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use fedcredit_crypto::wide::WideFixed;
use fedcredit_model::job::{ModelJobSpec, ModelTask, OptimizerKind};
use fedcredit_model::{LabelSpec, Schema, Standardizer};
use fedcredit_participant::contribution::VectorInput;
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::load_csv;
use fedcredit_proto::codec::Codec;
use fedcredit_proto::consortium::{Consortium, JobKind, JobSpec};
use fedcredit_proto::v1::round_announcement::Task;
use fedcredit_tests::knowledge::{assert_private, unmask_sum};
use fedcredit_tests::setup::{
    Honest, coordinator_key, member_id, member_key, secure_sum_consortium, spawn_honest,
};
use fedcredit_tests::{Adversary, Colluder, End};

/// Values per secure-sum input.
const DIM: usize = 3;

/// A guard against a hung test (a bug), never a way to sequence it.
async fn guarded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(180), f)
        .await
        .expect("the test hung");
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(member_id).collect()
}

/// Member `i`'s secure-sum input: distinct, with fractions.
fn input(i: usize) -> Vec<f64> {
    let k = (i + 1) as f64;
    vec![1000.5 * k, -7.25 * k, 3.0 * k + 0.125]
}

/// An adversary and `members` (indices) of an `n`-member secure-sum
/// consortium running the real participant, each with [`input`].
async fn secure_sum(
    consortium: &Consortium,
    members: &[usize],
    journals: Option<&Path>,
) -> (Adversary, Vec<Honest<VectorInput>>) {
    let adv = Adversary::start(consortium.clone(), coordinator_key()).await;
    let honest = spawn_all(&adv, consortium, members, journals);
    (adv, honest)
}

fn spawn_all(
    adv: &Adversary,
    consortium: &Consortium,
    members: &[usize],
    journals: Option<&Path>,
) -> Vec<Honest<VectorInput>> {
    members
        .iter()
        .map(|&i| {
            let journal = journals.map(|d| d.join(format!("{}.journal", member_id(i))));
            spawn_honest(adv, consortium, i, VectorInput::new(input(i)), journal)
        })
        .collect()
}

fn inputs(members: &[usize]) -> BTreeMap<String, Vec<f64>> {
    members.iter().map(|&i| (member_id(i), input(i))).collect()
}

/// Ends the job for everyone and waits for every participant to return.
async fn finish<C>(adv: &mut Adversary, honest: Vec<Honest<C>>) {
    let ids: Vec<String> = honest.iter().map(|h| h.id.clone()).collect();
    adv.finish(&ids).await;
    for h in honest {
        let _ = h.join().await;
    }
}

fn decoded(adv: &Adversary, attempt: usize, words: &[u64]) -> Vec<f64> {
    adv.attempts[attempt].codec().decode(words).unwrap()
}

fn sum_of(vs: &[Vec<f64>]) -> Vec<f64> {
    (0..vs[0].len())
        .map(|j| vs.iter().map(|v| v[j]).sum())
        .collect()
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3)
}

/// Attack a: re-run a finished task with the target dropped. Round 0 sums
/// all four banks (S); round 1 announces the same secure-sum task and keeps
/// the target out of the survivor list (S'), so S − S' is the target's
/// vector unless the participants refuse the repeated task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_of_a_finished_task_without_the_target() {
    guarded(async {
        let c = secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let all = ids(4);
        let ann = adv.secure_sum_announcement();
        let s = adv
            .run_attempt(0, 0, ann.clone(), &all, &[], End::Complete)
            .await;
        // The first round is honest and correct.
        let s = s.values().next().unwrap().clone().unwrap();
        let expected = sum_of(&members.map(input));
        assert!(close(&decoded(&adv, 0, &s), &expected));
        adv.run_attempt(1, 0, ann, &all, &[member_id(3)], End::Complete)
            .await;
        finish(&mut adv, honest).await;
        assert_private(&adv, &inputs(&members));
    })
    .await;
}

/// Attack b: retry with a different cohort. Attempt 0 runs through masked
/// inputs and reveals (the adversary unmasks S) and is then "aborted";
/// attempt 1 of the same round leaves the target out (S'), so S − S' is the
/// target's vector unless the retry is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_retry_after_an_abort_without_the_target() {
    guarded(async {
        let c = secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let all = ids(4);
        let ann = adv.secure_sum_announcement();
        adv.run_attempt(0, 0, ann.clone(), &all, &[], End::Abort)
            .await;
        assert_eq!(adv.attempts[0].reveals.len(), 4, "all four revealed");
        adv.run_attempt(0, 1, ann, &all[..3], &[], End::Complete)
            .await;
        finish(&mut adv, honest).await;
        assert_private(&adv, &inputs(&members));
    })
    .await;
}

/// Attack c: repeat a round's task after a restart. Round 0 completes with
/// all four; every participant is restarted from its journal; the adversary
/// then announces round 0 attempt 1 (as a restarted coordinator would) to
/// the three others with the same task, so S − S' is the target's vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_repeat_after_a_restart_without_the_target() {
    guarded(async {
        let dir = tempfile::tempdir().unwrap();
        let c = secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, Some(dir.path())).await;
        let all = ids(4);
        let ann = adv.secure_sum_announcement();
        adv.run_attempt(0, 0, ann.clone(), &all, &[], End::Complete)
            .await;
        for h in honest {
            let _ = h.stop().await;
        }
        adv.restarted(&all);
        let honest = spawn_all(&adv, &c, &members, Some(dir.path()));
        adv.run_attempt(0, 1, ann, &all[..3], &[], End::Complete)
            .await;
        finish(&mut adv, honest).await;
        assert_private(&adv, &inputs(&members));
    })
    .await;
}

/// Bins of the crafted evaluation task: 10^9, so a participant that
/// computed the task before checking it would try to allocate 2·10^9 values
/// (tens of GB). The referee compares the announced task with the one the
/// job spec gives before anything is computed or allocated.
const CRAFTED_BINS: usize = 1_000_000_000;
/// β = M·e_j with this M on the `months` column.
const M: f64 = 0.05;

/// Writes `rows` (months, amount, label) as a CSV file.
fn write_rows(path: &Path, rows: &[(u32, u32, &str)]) {
    let mut text = String::from("months,amount,label\n");
    for (m, a, l) in rows {
        text.push_str(&format!("{m},{a},{l}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// Attack d: an evaluation task crafted by the coordinator on a model job,
/// sent as the job's first round: β = M·e_j (j = `months`), an identity
/// standardization and many more bins than the job's, so each of the
/// target's held-out rows lands in its own bin: its months and label read
/// straight off the "histogram".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_crafted_evaluation_task_reads_single_rows() {
    guarded(async {
        let dir = tempfile::tempdir().unwrap();
        let train: Vec<(u32, u32, &str)> = (0..12)
            .map(|k| {
                (
                    6 + 3 * k,
                    1000 + 250 * k,
                    if k % 3 == 0 { "bad" } else { "good" },
                )
            })
            .collect();
        // Only the target (bank-a) holds test rows: distinct months.
        let test_rows: Vec<(u32, u32, &str)> = vec![
            (7, 1200, "good"),
            (13, 5400, "bad"),
            (22, 800, "good"),
            (31, 2500, "good"),
            (48, 9100, "bad"),
        ];
        let header = ["months", "amount", "label"];
        let strings: Vec<Vec<String>> = train
            .iter()
            .map(|(m, a, l)| vec![m.to_string(), a.to_string(), l.to_string()])
            .collect();
        let schema = Schema::infer(&header, &strings, LabelSpec::new("label", "bad")).unwrap();
        let spec = ModelJobSpec {
            schema: schema.clone(),
            l2: 1.0,
            tol: 1e-8,
            max_rounds: 25,
            optimizer: OptimizerKind::Newton,
            fedavg: Default::default(),
            bins: 10_000,
        };
        let mut c = secure_sum_consortium(4, "", 1, 16, 1e6).unwrap();
        c.job = JobSpec {
            id: "credit-job".into(),
            cohort: Default::default(),
            kind: JobKind::LogisticRegression(spec),
        };
        let adv = Adversary::start(c.clone(), coordinator_key()).await;
        let mut honest = Vec::new();
        for i in 0..4 {
            let train_path = dir.path().join(format!("train-{i}.csv"));
            write_rows(&train_path, &train);
            let data = load_csv(&train_path, &schema).unwrap();
            let test = (i == 0).then(|| {
                let p = dir.path().join("test-0.csv");
                write_rows(&p, &test_rows);
                load_csv(&p, &schema).unwrap()
            });
            honest.push(spawn_honest(&adv, &c, i, CreditData::new(data, test), None));
        }
        let mut adv = adv;
        let names = schema.encoded_names();
        let p = names.len();
        let j = names.iter().position(|n| n == "months").unwrap();
        let mut beta = vec![0.0; p + 1];
        beta[1 + j] = M;
        let task = ModelTask::Evaluate {
            standardizer: Standardizer::from_mean_std(1.0, vec![0.0; p], vec![1.0; p]).unwrap(),
            beta,
            bins: CRAFTED_BINS,
        };
        let dimension = task.dimension(p);
        let ann = adv.announcement(
            Task::ModelTask(task.to_bytes().into()),
            dimension,
            Codec::Wide(WideFixed::model_default()),
        );
        let all = ids(4);
        let results = adv.run_attempt(0, 0, ann, &all, &[], End::Complete).await;
        finish(&mut adv, honest).await;

        // What the adversary reads off the sum: (months, label) per occupied bin.
        let mut recovered = Vec::new();
        if let Some(Ok(words)) = results.values().next() {
            let h = decoded(&adv, 0, words);
            for (k, count) in h[..2 * CRAFTED_BINS].iter().enumerate() {
                if *count > 0.5 {
                    let (bin, label) = (
                        k % CRAFTED_BINS,
                        if k < CRAFTED_BINS { "bad" } else { "good" },
                    );
                    let score = (bin as f64 + 0.5) / CRAFTED_BINS as f64;
                    let months = (score / (1.0 - score)).ln() / M;
                    recovered.push((months.round() as u32, label, *count));
                }
            }
        }
        let mut truth: Vec<(u32, &str, f64)> =
            test_rows.iter().map(|(m, _, l)| (*m, *l, 1.0)).collect();
        truth.sort_by(|a, b| a.partial_cmp(b).unwrap());
        recovered.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let sent: Vec<&String> = adv.attempts[0].masked.keys().collect();
        assert!(
            sent.is_empty(),
            "honest members {sent:?} sent masked inputs for a crafted evaluation task; \
             the adversary read the target's rows (months, label, count) {recovered:?} \
             (the target's true test rows: {truth:?}, equal: {})",
            recovered == truth
        );
        // They leave with the fixed code, never more.
        assert!(
            !adv.leaves.is_empty() && adv.leaves.iter().all(|(_, r)| r == "refused-task"),
            "leaves: {:?}",
            adv.leaves
        );
        assert_private(&adv, &BTreeMap::new());
    })
    .await;
}

/// Attack e: the announcement's codec differs from the consortium's job
/// spec (frac_bits 16, clip 1e6): attempt 0 announces clip 1.0 (every input
/// silently clipped: a wrong published sum), attempt 1 frac_bits 40. Honest
/// participants send no masked input under a codec the job spec does not give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_wrong_clip_or_fraction_bits() {
    guarded(async {
        let c = secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let all = ids(4);
        let mut sums = Vec::new();
        for (attempt, (frac_bits, clip)) in [(16, 1.0), (40, 1e6)].into_iter().enumerate() {
            let mut ann = adv.secure_sum_announcement();
            ann.fixed_point = Some(fedcredit_proto::v1::FixedPointSpec { frac_bits, clip });
            let r = adv
                .run_attempt(0, attempt as u32, ann, &all, &[], End::Complete)
                .await;
            if let Some(Ok(w)) = r.values().next() {
                sums.push(decoded(&adv, attempt, w));
            }
        }
        finish(&mut adv, honest).await;
        let sent: Vec<Vec<&String>> = adv
            .attempts
            .iter()
            .map(|a| a.masked.keys().collect())
            .collect();
        assert!(
            sent.iter().all(Vec::is_empty),
            "honest members sent masked inputs under codecs the job spec does not give: {sent:?}; \
             published sums {sums:?} (the job's true sum: {:?})",
            sum_of(&members.map(input))
        );
        assert!(
            !adv.leaves.is_empty() && adv.leaves.iter().all(|(_, r)| r == "refused-task"),
            "leaves: {:?}",
            adv.leaves
        );
        assert_private(&adv, &inputs(&members));
    })
    .await;
}

/// Attack f: conflicting survivor lists (n = 5, t = 3, one colluder).
/// bank-a and bank-b are shown {a, b, e}, bank-c and bank-d {c, d, e}; the
/// colluder bank-e signs both lists. Each half reveals self-mask shares of
/// its own half and key shares of the other: with the colluder's shares the
/// adversary has both secrets of every honest member. Refusing the
/// consortium's threshold (t must exceed (n + c)/2) is an honest outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails until t > (n + c)/2 is enforced (max_colluders) and survivor lists are bound to the session: both secrets of every honest member leak"]
async fn f_conflicting_survivor_lists_with_a_colluder() {
    guarded(async {
        let Ok(c) = secure_sum_consortium(5, "threshold = 3", DIM, 16, 1e6) else {
            return; // The consortium refuses t = 3 for n = 5: the attack cannot start.
        };
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let colluder = member_id(4);
        adv.add_colluder(Colluder::new(
            &colluder,
            adv.index(&colluder),
            member_key(4),
            0.0,
        ));
        let honest_ids = ids(4);
        let ann = adv.secure_sum_announcement();
        adv.announce(0, 0, ann, &honest_ids).await;
        adv.advertise(&honest_ids).await;
        adv.share_keys().await;
        let (a, b) = (
            vec![member_id(0), member_id(1), colluder.clone()],
            vec![member_id(2), member_id(3), colluder.clone()],
        );
        let (la, lb) = (a.clone(), b.clone());
        adv.masked_input(move |viewer, _| {
            if la.contains(&viewer.to_owned()) {
                la.clone()
            } else {
                lb.clone()
            }
        })
        .await;
        adv.confirm(fedcredit_tests::adversary::same_list).await;
        adv.unmask(Some(&a), |_| {}, End::Complete).await;
        finish(&mut adv, honest).await;
        assert_private(&adv, &inputs(&members));
    })
    .await;
}

/// Attack g: a colluding member (bank-d) reveals a corrupted self-mask
/// share of bank-a during unmask. The shared unmasking code must either
/// finish with the correct sum without that share, or name bank-d as the
/// bad sender (not fail blaming bank-a, whose secret it could not rebuild).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails until revealed shares are checked against per-share commitments: today unmasking fails naming the owner (bank-a), not the sender"]
async fn g_a_corrupted_revealed_share_is_attributed() {
    guarded(async {
        let c = secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap();
        let members = [0, 1, 2];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let colluder = member_id(3);
        adv.add_colluder(Colluder::new(
            &colluder,
            adv.index(&colluder),
            member_key(3),
            0.0,
        ));
        let honest_ids = ids(3);
        let ann = adv.secure_sum_announcement();
        adv.announce(0, 0, ann, &honest_ids).await;
        adv.advertise(&honest_ids).await;
        adv.share_keys().await;
        adv.masked_input(|_, senders| senders.to_vec()).await;
        adv.confirm(fedcredit_tests::adversary::same_list).await;
        let everyone = ids(4);
        let results = adv
            .unmask(
                Some(&everyone),
                |u| {
                    for s in &mut u.self_mask_shares {
                        if s.owner == "bank-a" {
                            let mut b = s.share.to_vec();
                            b[4] ^= 1; // lowest byte of y0: still a canonical scalar
                            s.share = b.into();
                        }
                    }
                },
                End::Complete,
            )
            .await;
        finish(&mut adv, honest).await;
        let result = results.get(&everyone).cloned().unwrap();
        // Also the unmasking over the same records in any other order.
        let again = unmask_sum(&adv, 0, &everyone, false);
        let expected = sum_of(&members.map(input));
        for r in [result, again] {
            match r {
                Ok(words) => assert!(
                    close(&decoded(&adv, 0, &words), &expected),
                    "the round completed with a wrong sum"
                ),
                Err(e) => assert!(
                    e.contains(&colluder) || e.contains(&format!("{}", adv.index(&colluder))),
                    "unmasking failed without naming the bad sender {colluder}: {e}"
                ),
            }
        }
        assert_private(&adv, &inputs(&members));
    })
    .await;
}

/// Attack h: replay of an old announcement. Round 0 completes; the
/// adversary re-sends round 0's signed announcement to three members (to
/// get S' without the target), first to the running participants, then
/// again after restarting them from their journals. They must not take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_replayed_announcement_is_refused() {
    guarded(async {
        let dir = tempfile::tempdir().unwrap();
        let c = secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, Some(dir.path())).await;
        let all = ids(4);
        let ann = adv.secure_sum_announcement();
        adv.run_attempt(0, 0, ann, &all, &[], End::Complete).await;
        let old = adv.attempts[0].signed_announcement.clone();
        adv.replay(old.clone(), &all[..3]).await;
        adv.run_phases(&all[..3], &[], End::Complete).await;
        for h in honest {
            let _ = h.stop().await;
        }
        adv.restarted(&all);
        let honest = spawn_all(&adv, &c, &members, Some(dir.path()));
        adv.replay(old, &all[..3]).await;
        adv.run_phases(&all[..3], &[], End::Complete).await;
        finish(&mut adv, honest).await;
        for replayed in &adv.attempts[1..] {
            assert!(
                replayed.adverts.is_empty(),
                "members advertised keys for a replayed announcement: {:?}",
                replayed.adverts.keys().collect::<Vec<_>>()
            );
        }
        assert_private(&adv, &inputs(&members));
    })
    .await;
}
