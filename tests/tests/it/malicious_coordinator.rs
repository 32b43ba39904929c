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

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use fedcredit_crypto::wide::WideFixed;
use fedcredit_model::job::{ModelJobSpec, ModelTask, OptimizerKind};
use fedcredit_model::{LabelSpec, Schema, Standardizer};
use fedcredit_participant::contribution::{SeriesInput, VectorInput};
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::load_csv;
use fedcredit_proto::codec::Codec;
use fedcredit_proto::v1::round_announcement::Task;
use fedcredit_proto::v1::{self as pb};
use fedcredit_referee::consortium::{CohortPolicy, Consortium, JobKind, JobSpec};
use fedcredit_tests::adversary::Rpc;
use fedcredit_tests::knowledge::{assert_private, computable_sums, session, unmask_attributed};
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

/// [`finish`], keeping what each participant's `run` returned, by id.
async fn finish_with_results<C>(
    adv: &mut Adversary,
    honest: Vec<Honest<C>>,
) -> BTreeMap<String, Result<fedcredit_participant::Report, fedcredit_participant::ParticipantError>>
{
    let ids: Vec<String> = honest.iter().map(|h| h.id.clone()).collect();
    adv.finish(&ids).await;
    let mut results = BTreeMap::new();
    for h in honest {
        let id = h.id.clone();
        results.insert(id, h.join().await.0);
    }
    results
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

/// The attack attempt `i` really reached `to` (each received its signed
/// announcement), and none of them confirmed a survivor list or revealed a
/// share for it: refused by the honest participants, not never sent.
fn assert_mounted_and_refused(adv: &Adversary, i: usize, to: &[String]) {
    let at = &adv.attempts[i];
    for id in to {
        assert!(
            at.delivered.contains(id),
            "attempt {i} never reached {id}: the attack was not mounted\n{}",
            adv.summary()
        );
    }
    assert!(
        at.confirmations.is_empty() && at.reveals.is_empty(),
        "attempt {i}: honest members confirmed or revealed\n{}",
        adv.summary()
    );
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
        assert_mounted_and_refused(&adv, 1, &all);
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
        assert_mounted_and_refused(&adv, 1, &all[..3]);
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
        assert_mounted_and_refused(&adv, 1, &all[..3]);
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
        let schema =
            Schema::infer(&header, &strings, LabelSpec::binary("label", "bad", "good")).unwrap();
        let spec = ModelJobSpec {
            schema: schema.clone(),
            l2: 1.0,
            tol: 1e-8,
            max_rounds: 25,
            optimizer: OptimizerKind::Newton,
            fedavg: Default::default(),
            bins: 10_000,
            privacy: Some(fedcredit_model::privacy::PrivacySetting::None),
            scorecard: None,
        };
        let mut c = secure_sum_consortium(4, "", 1, 16, 1e6).unwrap();
        c.job = JobSpec {
            id: "credit-job".into(),
            cohort: Default::default(),
            require_all_members: false,
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
            noise: None,
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

/// Attack f: conflicting survivor lists with one colluder (n = 5, c = 1).
/// The consortium refuses t = 3 (t must exceed (n + c)/2 = 3), so the
/// attack runs with the lowest threshold it accepts, t = 4: bank-a and
/// bank-b are shown {a, b, c, e}, bank-c and bank-d {b, c, d, e}; the
/// colluder bank-e signs both lists and each viewer is relayed every
/// confirmation of its own list. Each list then has 3 signers (two honest
/// and the colluder), below t, so no honest member reveals anything, let
/// alone self-mask shares for one list and key shares for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_conflicting_survivor_lists_with_a_colluder() {
    guarded(async {
        let refused = secure_sum_consortium(5, "max_colluders = 1\nthreshold = 3", DIM, 16, 1e6)
            .expect_err("the consortium accepted t = 3 for n = 5, c = 1");
        for part in ["protocol.threshold", "(n + c)/2 = (5 + 1)/2 = 3", "t = 3"] {
            assert!(refused.contains(part), "{part:?} missing from: {refused}");
        }
        conflicting_lists(fedcredit_tests::adversary::same_list).await;
    })
    .await;
}

/// Attack t: attack f, but each member is relayed the confirmation of
/// every member of the list it was shown, whichever list that member
/// signed (the colluder's of the viewer's list): bank-a gets a, b and e's
/// confirmations of {a, b, c, e} and bank-c's of {b, c, d, e}. Four
/// distinct signers, all in its list, is t, so a member that counted
/// signers without comparing each one's list would reveal. Each honest
/// member finds a confirmation of another list (`SurvivorListMismatch`)
/// and reveals nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_confirmations_of_the_other_list_do_not_count() {
    guarded(async {
        let colluder = member_id(4);
        conflicting_lists(move |viewer, all| {
            let mine = all.iter().find(|c| c.0 == viewer).map(|c| c.1.clone());
            all.iter()
                .filter(|c| mine.as_ref().is_some_and(|l| l.contains(&c.0)))
                .filter(|c| c.0 != colluder || Some(&c.1) == mine.as_ref())
                .map(|c| c.2.clone())
                .collect()
        })
        .await;
    })
    .await;
}

/// Attacks f and t: bank-a and bank-b are shown {a, b, c, e}, bank-c and
/// bank-d {b, c, d, e}, the colluder bank-e signs both, and `relay` picks
/// the confirmations each viewer is sent. Asserts the attack was mounted
/// and no honest member revealed anything.
async fn conflicting_lists(
    relay: impl Fn(&str, &[(String, Vec<String>, pb::Signed)]) -> Vec<pb::Signed>,
) {
    let c = secure_sum_consortium(5, "max_colluders = 1\nthreshold = 4", DIM, 16, 1e6).unwrap();
    let t = c.protocol.thresholds.threshold();
    assert_eq!((t, c.protocol.thresholds.max_colluders()), (4, 1));
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
        vec![member_id(0), member_id(1), member_id(2), colluder.clone()],
        vec![member_id(1), member_id(2), member_id(3), colluder.clone()],
    );
    let shown_a = [member_id(0), member_id(1)];
    let (la, lb) = (a.clone(), b.clone());
    adv.masked_input(move |viewer, _| {
        if shown_a.iter().any(|v| v == viewer) {
            la.clone()
        } else {
            lb.clone()
        }
    })
    .await;
    adv.confirm(relay).await;
    adv.unmask(Some(&a), |_| {}, End::Complete).await;
    finish(&mut adv, honest).await;

    let at = &adv.attempts[0];
    // The attack was mounted: every honest member masked its input and
    // signed the list it was shown; the colluder signed both.
    assert_eq!(at.masked.len(), 5, "{}", adv.summary());
    for list in [&a, &b] {
        let signers: BTreeSet<&String> = at
            .confirmations
            .iter()
            .filter(|(_, l, _)| l == list)
            .map(|(id, _, _)| id)
            .collect();
        assert!(
            signers.contains(&colluder) && signers.len() == 3 && signers.len() < t,
            "list {list:?} signed by {signers:?} (t = {t})\n{}",
            adv.summary()
        );
    }
    let honest_reveals: Vec<&String> = at.reveals.keys().filter(|id| **id != colluder).collect();
    assert!(
        honest_reveals.is_empty(),
        "honest members {honest_reveals:?} revealed shares for a list with fewer than t = {t} confirmations\n{}",
        adv.summary()
    );
    assert_private(&adv, &inputs(&members));
}

/// Attack g: a colluding member (bank-d) reveals a corrupted self-mask
/// share of bank-a during unmask. As the coordinator's Unmasking phase
/// does, the adversary's own unmasking (`Unmasker::accept`) checks each
/// revealed share against its dealer's signed commitment: the bad reveal
/// is refused naming bank-d (not bank-a, whose secret it is), and the round
/// completes with the exact sum from the three good reveals (t = 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
        adv.finish(&honest_ids).await;
        let mut reports = Vec::new();
        for h in honest {
            let (r, _) = h.join().await;
            reports.push(r.unwrap_or_else(|e| panic!("an honest member failed: {e}")));
        }
        let expected = sum_of(&members.map(input));
        let bad = format!("{}", adv.index(&colluder));
        // What the adversary (as the coordinator) published.
        let words = results
            .get(&everyone)
            .cloned()
            .unwrap()
            .unwrap_or_else(|e| panic!("unmasking failed despite t good reveals: {e}"));
        assert!(
            close(&decoded(&adv, 0, &words), &expected),
            "the round completed with a wrong sum"
        );
        let refused = &adv.attempts[0].refused_reveals;
        assert_eq!(
            refused.keys().collect::<Vec<_>>(),
            [&colluder],
            "the bad reveal must be refused, attributed to its revealer"
        );
        assert!(
            refused[&colluder].contains(&bad) && refused[&colluder].contains("revealed"),
            "the refusal does not name the revealer {colluder} ({bad}): {}",
            refused[&colluder]
        );
        // The same unmasking over the records again: same attribution, same sum.
        let at = &adv.attempts[0];
        let (again, refused_again) =
            unmask_attributed(&adv, 0, &at.signed_announcement, &everyone, false).unwrap();
        assert_eq!(again, words);
        assert_eq!(refused_again.keys().collect::<Vec<_>>(), [&colluder]);
        // Every honest member got that outcome.
        for r in &reports {
            assert_eq!(r.rounds.len(), 1);
            assert!(close(&r.rounds[0].sum, &expected), "{:?}", r.rounds[0].sum);
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
            for id in &all[..3] {
                assert!(
                    replayed.delivered.contains(id),
                    "the replayed announcement never reached {id}: the attack was not mounted\n{}",
                    adv.summary()
                );
            }
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

/// Attack i: equivocated announcements. The adversary signs two
/// announcements for the same round attempt that differ only in their
/// `departed` list and sends one to each group of members, hoping to get
/// one sum over members that took part in different announcements (in
/// general: different tasks). The session id binds the signed announcement,
/// so the groups are in different sessions.
/// Attempt 0 (groups {a, b} and {c, d}, every dealer's shares relayed to
/// everyone, as the honest coordinator does): every member gets shares it
/// cannot decrypt, and nobody masks. Attempt 1 (groups {a, b, c} and {d},
/// the first group's shares relayed within it): {a, b, c} is a round of
/// its own, bank-d cannot decrypt their shares and masks nothing; no sum
/// over the mixed group can be unmasked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i_equivocated_announcements_do_not_mix_tasks() {
    guarded(async {
        let c = secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let all = ids(4);
        let x = adv.secure_sum_announcement();
        let mut y = x.clone();
        y.departed.push(pb::Departure {
            participant: member_id(3),
            code: pb::ReasonCode::ReasonShuttingDown as i32,
        });

        // Attempt 0: two groups of two, full relay.
        let (ga, gb) = (all[..2].to_vec(), all[2..].to_vec());
        adv.announce_split(0, 0, vec![(x.clone(), ga.clone()), (y.clone(), gb.clone())])
            .await;
        adv.advertise(&all).await;
        adv.share_keys().await;
        adv.masked_input(|_, senders| senders.to_vec()).await;

        // Attempt 1: {a, b, c} and {d}; the adversary keeps the groups'
        // shares apart for the first group, and gives bank-d everything.
        let (ga1, gb1) = (all[..3].to_vec(), all[3..].to_vec());
        adv.announce_split(0, 1, vec![(x, ga1.clone()), (y, gb1.clone())])
            .await;
        adv.advertise(&all).await;
        let first: Vec<String> = ga1.clone();
        adv.share_keys_relaying(move |viewer, dealer| {
            !first.iter().any(|f| f == viewer) || first.iter().any(|f| f == dealer)
        })
        .await;
        adv.masked_input(|_, senders| senders.to_vec()).await;
        adv.confirm(fedcredit_tests::adversary::same_list).await;
        let results = adv.unmask(None, |_| {}, End::Complete).await;
        finish(&mut adv, honest).await;

        for (i, groups) in [(0, [&ga, &gb]), (1, [&ga1, &gb1])] {
            let at = &adv.attempts[i];
            let announcements = at.announcements();
            assert_eq!(announcements.len(), 2, "attempt {i} was not equivocated");
            // The two groups computed different session ids.
            let (sx, _) = session(&adv, at, at.announcement_of(&groups[0][0]));
            let (sy, _) = session(&adv, at, at.announcement_of(&groups[1][0]));
            assert_ne!(sx, sy, "attempt {i}: one session id for two announcements");
            // Every member advertised and dealt shares: the attack was mounted.
            assert_eq!(at.shares.len(), 4, "attempt {i}\n{}", adv.summary());
            // No sum over the mixed group, in either session.
            for a in &announcements {
                let r = unmask_attributed(&adv, i, a, &all, true);
                assert!(
                    r.is_err(),
                    "attempt {i}: a sum over the mixed group was unmasked\n{}",
                    adv.summary()
                );
            }
        }
        // Attempt 0: every member refused after phase 2 (shares from the
        // other session do not decrypt): no masked input at all.
        let at0 = &adv.attempts[0];
        assert!(at0.masked.is_empty(), "{}", adv.summary());
        for id in &all {
            assert_eq!(
                at0.gave_up.get(id),
                Some(&Rpc::SubmitMaskedInput),
                "{id} in attempt 0\n{}",
                adv.summary()
            );
        }
        // Attempt 1: the first group ran a round of its own; bank-d, shown
        // the other announcement, masked nothing.
        let at1 = &adv.attempts[1];
        assert_eq!(
            at1.masked.keys().collect::<Vec<_>>(),
            ga1.iter().collect::<Vec<_>>(),
            "{}",
            adv.summary()
        );
        assert_eq!(at1.gave_up.get(&all[3]), Some(&Rpc::SubmitMaskedInput));
        let words = results
            .get(&ga1)
            .cloned()
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\n{}", adv.summary()));
        assert!(close(
            &decoded(&adv, 1, &words),
            &sum_of(&[0, 1, 2].map(input))
        ));
        for (i, set, _) in computable_sums(&adv) {
            assert!(
                !set.contains(&all[3]),
                "attempt {i}: a computable sum over {set:?} holds bank-d"
            );
        }
        assert_private(&adv, &inputs(&members));
    })
    .await;
}

/// Attack k: the same values in a second job, without the target. The
/// service hosts many jobs and a member's input file serves them all, so
/// a coordinator can sum the members' values in one job (S, all four) and
/// run the same spec again under another job id with the target left out
/// (S'): S − S' is the target's vector. The per-task journal does not see
/// it (another job is another task); the contribution ledger does: the
/// same values are summed with one contributor set only, in any job. The
/// control runs the second job with fresh journals and reads the vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_the_same_values_in_a_second_job_without_the_target() {
    guarded(async {
        let dir = tempfile::tempdir().unwrap();
        let c = secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap();
        let members = [0, 1, 2, 3];
        let all = ids(4);
        let (mut adv, honest) = secure_sum(&c, &members, Some(dir.path())).await;
        let ann = adv.secure_sum_announcement();
        let s = adv.run_attempt(0, 0, ann, &all, &[], End::Complete).await;
        let s = decoded(&adv, 0, &s.values().next().unwrap().clone().unwrap());
        assert!(close(&s, &sum_of(&members.map(input))));
        finish(&mut adv, honest).await;

        let second = c
            .with_job(
                JobSpec {
                    id: "second-job".into(),
                    ..c.job.clone()
                },
                Path::new("second-job.toml"),
            )
            .unwrap();
        let without = &all[..3];
        let run_second = |journals: Option<std::path::PathBuf>| {
            let second = second.clone();
            async move {
                let (mut adv, honest) = secure_sum(&second, &[0, 1, 2], journals.as_deref()).await;
                let ann = adv.secure_sum_announcement();
                let out = adv
                    .run_attempt(0, 0, ann, without, &[], End::Complete)
                    .await;
                finish(&mut adv, honest).await;
                (adv, out)
            }
        };

        // Control: members without their journals sum again, and the
        // difference is bank-d's vector.
        let fresh = tempfile::tempdir().unwrap();
        let (control, out) = run_second(Some(fresh.path().to_owned())).await;
        let s2 = decoded(&control, 0, &out.values().next().unwrap().clone().unwrap());
        let learnt: Vec<f64> = s.iter().zip(&s2).map(|(a, b)| a - b).collect();
        assert!(
            close(&learnt, &input(3)),
            "the control should read bank-d's vector: {learnt:?} vs {:?}",
            input(3)
        );

        // With their journals, every member refuses to sum the same values
        // with another set: no masked input, so nothing to unmask.
        let (adv, _) = run_second(Some(dir.path().to_owned())).await;
        assert_mounted_and_refused(&adv, 0, without);
        assert!(
            adv.attempts[0].masked.is_empty(),
            "a member sent its masked input\n{}",
            adv.summary()
        );
    })
    .await;
}

/// Attack l: on a scorecard job, a binning task crafted by the coordinator:
/// 200 fine bins of `months` over [6, 8) instead of the spec's 20 over
/// [0, 72), so the "histogram" tells which single rows have 6 or 7 months,
/// and their labels. Members derive the binning task from the hashed spec,
/// so they refuse this one before computing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l_crafted_binning_task_on_a_scorecard_job() {
    guarded(async {
        let dir = tempfile::tempdir().unwrap();
        let train: Vec<(u32, u32, &str)> = (0..12)
            .map(|k| {
                (
                    6 + k,
                    1000 + 250 * k,
                    if k % 3 == 0 { "bad" } else { "good" },
                )
            })
            .collect();
        let header = ["months", "amount", "label"];
        let strings: Vec<Vec<String>> = train
            .iter()
            .map(|(m, a, l)| vec![m.to_string(), a.to_string(), l.to_string()])
            .collect();
        let schema =
            Schema::infer(&header, &strings, LabelSpec::binary("label", "bad", "good")).unwrap();
        let bounds = BTreeMap::from([
            ("months".to_owned(), [0.0, 72.0]),
            ("amount".to_owned(), [0.0, 20_000.0]),
        ]);
        let spec = ModelJobSpec {
            schema: schema.clone(),
            l2: 1.0,
            tol: 1e-8,
            max_rounds: 25,
            optimizer: OptimizerKind::Newton,
            fedavg: Default::default(),
            bins: 10_000,
            privacy: Some(fedcredit_model::privacy::PrivacySetting::None),
            scorecard: Some(fedcredit_model::scorecard::ScorecardSpec::with_bounds(
                bounds.clone(),
            )),
        };
        let mut c = secure_sum_consortium(4, "", 1, 16, 1e6).unwrap();
        c.job = JobSpec {
            id: "scorecard-job".into(),
            cohort: Default::default(),
            require_all_members: false,
            kind: JobKind::Scorecard(spec),
        };
        let adv = Adversary::start(c.clone(), coordinator_key()).await;
        let mut honest = Vec::new();
        for i in 0..4 {
            let path = dir.path().join(format!("train-{i}.csv"));
            write_rows(&path, &train);
            let data = load_csv(&path, &schema).unwrap();
            honest.push(spawn_honest(&adv, &c, i, CreditData::new(data, None), None));
        }
        let mut adv = adv;
        let mut crafted = bounds;
        crafted.insert("months".into(), [6.0, 8.0]);
        let layout =
            fedcredit_model::scorecard::HistogramLayout::new(&schema, &crafted, 200).unwrap();
        let task = ModelTask::Binning {
            schema: schema.clone(),
            bounds: crafted,
            fine_bins: 200,
            values: layout.len(),
        };
        let ann = adv.announcement(
            Task::ModelTask(task.to_bytes().into()),
            layout.len(),
            Codec::Wide(WideFixed::model_default()),
        );
        let all = ids(4);
        adv.run_attempt(0, 0, ann, &all, &[], End::Complete).await;
        finish(&mut adv, honest).await;
        let sent: Vec<&String> = adv.attempts[0].masked.keys().collect();
        assert!(
            sent.is_empty(),
            "honest members {sent:?} sent masked histograms for a crafted binning task"
        );
        assert!(
            !adv.leaves.is_empty() && adv.leaves.iter().all(|(_, r)| r == "refused-task"),
            "leaves: {:?}",
            adv.leaves
        );
        assert_private(&adv, &BTreeMap::new());
    })
    .await;
}

/// Attack m: a graph other than the consortium file's (SecAgg+). The file
/// gives a Harary graph (`neighbours = 2`, `share_threshold = 2`; n = 5,
/// c = 1, t = 4); the coordinator announces the complete graph (0 / 0),
/// under which a member would deal and mask along edges the file does not
/// agree to. Every member checks the announced graph against its own file
/// and refuses before advertising a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m_an_announced_graph_other_than_the_files_is_refused() {
    guarded(async {
        let c =
            secure_sum_consortium(5, "neighbours = 2\nshare_threshold = 2", DIM, 16, 1e6).unwrap();
        assert_eq!(c.protocol.graph_fields(), (2, 2));
        let members = [0, 1, 2, 3, 4];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let all = ids(5);
        let mut ann = adv.secure_sum_announcement();
        (ann.neighbours, ann.share_threshold) = (0, 0);
        adv.run_attempt(0, 0, ann, &all, &[], End::Complete).await;
        finish(&mut adv, honest).await;
        assert_mounted_and_refused(&adv, 0, &all);
        assert!(
            adv.attempts[0].adverts.is_empty(),
            "members advertised keys for an announcement of another graph: {:?}",
            adv.attempts[0].adverts.keys().collect::<Vec<_>>()
        );
        assert_private(&adv, &inputs(&members));
    })
    .await;
}

/// Attack n: shares relayed from non-neighbours. The announcement carries
/// the file's graph (n = 7, k = 2, share threshold 2), but the coordinator
/// relays every dealer's signed shares to every member, as for the
/// complete graph, hoping members take shares (and later mask or reveal)
/// along edges the derived graph does not have. Each member finds dealers
/// that are not its neighbours in the list and refuses before masking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_shares_relayed_from_non_neighbours_are_refused() {
    guarded(async {
        let c =
            secure_sum_consortium(7, "neighbours = 2\nshare_threshold = 2", DIM, 16, 1e6).unwrap();
        let members = [0, 1, 2, 3, 4, 5, 6];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let all = ids(7);
        let ann = adv.secure_sum_announcement();
        adv.announce(0, 0, ann, &all).await;
        let advertised = adv.advertise(&all).await;
        assert_eq!(advertised.len(), 7, "{}", adv.summary());
        let dealt = adv.share_keys().await;
        assert_eq!(dealt.len(), 7, "{}", adv.summary());
        // Every dealer dealt to its 2 neighbours only (the file's graph),
        // and each member was relayed all 6 other dealers.
        for (id, dealing) in &adv.attempts[0].shares {
            assert_eq!(
                dealing.ciphertexts.len(),
                2,
                "{id} dealt over another graph"
            );
        }
        assert!(adv.attempts[0].relayed.values().all(|d| d.len() == 6));
        let sent = adv.masked_input(|_, senders| senders.to_vec()).await;
        finish(&mut adv, honest).await;
        assert!(
            sent.is_empty() && adv.attempts[0].masked.is_empty(),
            "members masked after shares from non-neighbours: {sent:?}\n{}",
            adv.summary()
        );
        assert_private(&adv, &inputs(&members));
    })
    .await;
}

/// A four-member secure sum set up once per epoch of four slots.
fn epoch_consortium() -> Consortium {
    let c = secure_sum_consortium(4, "setup = \"epoch\"\nslots = 4", DIM, 16, 1e6).unwrap();
    assert_eq!(c.protocol.epoch_slots_field(), 4);
    c
}

/// Sets up an epoch in attempt (0, `attempt`) with `cohort` and collects
/// slot 0's masked inputs, showing every sender `shown(senders)`. Returns
/// the epoch's session id.
async fn epoch_setup_and_slot_inputs(
    adv: &mut Adversary,
    attempt: u32,
    cohort: &[String],
    shown: impl Fn(&[String]) -> Vec<String>,
) -> fedcredit_crypto::kx::SessionId {
    let ann = adv.secure_sum_announcement();
    adv.announce(0, attempt, ann, cohort).await;
    let advertised = adv.advertise(cohort).await;
    assert_eq!(advertised.len(), cohort.len(), "{}", adv.summary());
    let epoch = adv.epoch_share_keys().await;
    adv.slot_masked_input(cohort, |_, senders| shown(senders))
        .await;
    epoch
}

/// Epoch mode, the honest path first: an announcement naming an epoch no
/// member holds is refused by all (no masked input: a member never masks
/// with keys it did not agree); then an epoch set up with all four sums
/// exactly, unmasked by the adversary's own `SlotUnmasker` from the slot
/// reveals alone (no key is ever revealed, no consistency round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o_an_unknown_epoch_is_refused_and_an_honest_slot_sums_exactly() {
    guarded(async {
        let c = epoch_consortium();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let all = ids(4);
        let forged = fedcredit_crypto::kx::SessionId([7; 32]);
        let ann = Adversary::slot_announcement(adv.secure_sum_announcement(), &forged, 1);
        adv.announce(0, 0, ann, &all).await;
        let sent = adv.slot_masked_input(&all, |_, s| s.to_vec()).await;
        for id in &all {
            assert!(adv.attempts[0].delivered.contains(id), "{id}: not mounted");
        }
        assert!(sent.is_empty(), "masked for an unknown epoch: {sent:?}");

        epoch_setup_and_slot_inputs(&mut adv, 1, &all, <[String]>::to_vec).await;
        assert_eq!(adv.attempts[1].masked.len(), 4, "{}", adv.summary());
        let sum = adv.slot_unmask(0, End::Complete).await.unwrap();
        assert_eq!(adv.attempts[1].slot_reveals.len(), 4);
        assert!(adv.attempts[1].reveals.is_empty() && adv.attempts[1].confirmations.is_empty());
        let expected = sum_of(&members.map(input));
        assert!(
            close(&decoded(&adv, 1, &sum), &expected),
            "{:?}",
            decoded(&adv, 1, &sum)
        );
        finish(&mut adv, honest).await;
    })
    .await;
}

/// Attack p: a slot masked twice. Attempt 0 sets up an epoch, collects
/// slot 0's masked inputs and reveals (the adversary now knows every slot-0
/// self mask) and aborts; attempt 1 announces slot 0 of the same epoch
/// again. A second input under the same masks would publish the difference
/// of the two inputs; every member refuses to mask a used slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p_a_slot_is_never_masked_twice() {
    guarded(async {
        let c = epoch_consortium();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let all = ids(4);
        let epoch = epoch_setup_and_slot_inputs(&mut adv, 0, &all, <[String]>::to_vec).await;
        assert_eq!(adv.attempts[0].masked.len(), 4, "{}", adv.summary());
        let _ = adv.slot_unmask(0, End::Abort).await;
        assert_eq!(
            adv.attempts[0].slot_reveals.len(),
            4,
            "all four revealed slot 0"
        );

        let ann = Adversary::slot_announcement(adv.secure_sum_announcement(), &epoch, 0);
        adv.announce(0, 1, ann, &all).await;
        let sent = adv.slot_masked_input(&all, |_, s| s.to_vec()).await;
        finish(&mut adv, honest).await;
        for id in &all {
            assert!(adv.attempts[1].delivered.contains(id), "{id}: not mounted");
        }
        assert!(
            sent.is_empty(),
            "members masked slot 0 a second time: {sent:?}\n{}",
            adv.summary()
        );
    })
    .await;
}

/// Attack q: the same task over another cohort in a new epoch. Attempt 0
/// sums the task over all four (reveals collected, then "aborted");
/// attempt 1 sets up a new epoch without the target. The difference of the
/// two sums would be the target's input: each member bound the task to the
/// four when it revealed and refuses to mask it for three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q_a_new_epoch_without_the_target_is_refused_for_the_same_task() {
    guarded(async {
        let dir = tempfile::tempdir().unwrap();
        let c = epoch_consortium();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, Some(dir.path())).await;
        let all = ids(4);
        epoch_setup_and_slot_inputs(&mut adv, 0, &all, <[String]>::to_vec).await;
        let _ = adv.slot_unmask(0, End::Abort).await;
        assert_eq!(adv.attempts[0].slot_reveals.len(), 4);

        let three = &all[..3];
        epoch_setup_and_slot_inputs(&mut adv, 1, three, <[String]>::to_vec).await;
        finish(&mut adv, honest).await;
        for id in three {
            assert!(adv.attempts[1].delivered.contains(id), "{id}: not mounted");
        }
        assert!(
            adv.attempts[1].masked.is_empty() && adv.attempts[1].slot_reveals.is_empty(),
            "members masked or revealed the task for another cohort\n{}",
            adv.summary()
        );
    })
    .await;
}

/// Attack r: a slot's survivor list without a member. In an epoch a slot
/// is unmasked only over the whole cohort C (no pairwise key is ever
/// revealed, so a missing input could never be unmasked); a list without
/// the target, shown after everyone masked, is refused by every member:
/// no reveal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a_slot_survivor_list_without_a_member_gets_no_reveal() {
    guarded(async {
        let c = epoch_consortium();
        let members = [0, 1, 2, 3];
        let (mut adv, honest) = secure_sum(&c, &members, None).await;
        let all = ids(4);
        let target = member_id(3);
        epoch_setup_and_slot_inputs(&mut adv, 0, &all, |senders| {
            senders.iter().filter(|s| **s != target).cloned().collect()
        })
        .await;
        assert_eq!(adv.attempts[0].masked.len(), 4, "{}", adv.summary());
        let result = adv.slot_unmask(0, End::Complete).await;
        finish(&mut adv, honest).await;
        assert!(
            adv.attempts[0].slot_reveals.is_empty(),
            "members revealed for a list without {target}: {:?}",
            adv.attempts[0].slot_reveals.keys().collect::<Vec<_>>()
        );
        assert!(result.is_err());
    })
    .await;
}

/// Member `i`'s input for sum `k` of a series: [`input`] moved by 100·k.
fn series_input(i: usize, k: u32) -> Vec<f64> {
    input(i).iter().map(|x| x + 100.0 * f64::from(k)).collect()
}

/// A two-sum secure-sum series with `cohort = "shrink"` (a smaller set is
/// allowed from one sum to the next), four members reading one file per
/// sum, and sum 0 published over all four (checked exact).
async fn series_after_sum_0(dir: &Path) -> (Adversary, Vec<Honest<SeriesInput>>) {
    series_after_sum_0_over(dir, CohortPolicy::Shrink, &ids(4)).await
}

/// [`series_after_sum_0`] with cohort policy `policy`, sum 0 announced to
/// and published over `first` only: the others never see round 0.
async fn series_after_sum_0_over(
    dir: &Path,
    policy: CohortPolicy,
    first: &[String],
) -> (Adversary, Vec<Honest<SeriesInput>>) {
    let mut c = secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap();
    c.job.cohort = policy;
    let JobKind::SecureSum { rounds, .. } = &mut c.job.kind else {
        unreachable!("a secure-sum consortium")
    };
    *rounds = 2;
    let mut adv = Adversary::start(c.clone(), coordinator_key()).await;
    let honest = (0..4)
        .map(|i| {
            for k in 0..2 {
                let text: Vec<String> = series_input(i, k).iter().map(f64::to_string).collect();
                let file = dir.join(format!("{}-{k}.txt", member_id(i)));
                std::fs::write(file, text.join("\n")).unwrap();
            }
            let template = dir.join(format!("{}-{{index}}.txt", member_id(i)));
            let series = SeriesInput::open(&template, 2, DIM).unwrap();
            spawn_honest(&adv, &c, i, series, None)
        })
        .collect();
    let s = adv
        .run_attempt(
            0,
            0,
            adv.secure_sum_announcement(),
            first,
            &[],
            End::Complete,
        )
        .await;
    let s = s.values().next().unwrap().clone().unwrap();
    let over: Vec<usize> = (0..4).filter(|&i| first.contains(&member_id(i))).collect();
    let want = sum_of(&over.iter().map(|&i| series_input(i, 0)).collect::<Vec<_>>());
    assert!(close(&decoded(&adv, 0, &s), &want), "sum 0 is exact");
    (adv, honest)
}

/// Attack s: a series' sum asked for twice. A two-sum series (cohort
/// `shrink`) publishes sum 0 over all four; the adversary announces round 1
/// with sum 0's task again and the target dropped, so S₀ − S₀' would be the
/// target's first vector. The referee names round 1's task as sum 1, so the
/// replayed index is refused. The control, in a fresh consortium: round 1
/// as planned (sum 1) with the same target dropped sums the three exactly,
/// so it is the index that is refused, not the smaller set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s_a_series_sum_asked_for_again_without_the_target() {
    guarded(async {
        let all = ids(4);
        let dir = tempfile::tempdir().unwrap();
        let (mut adv, honest) = series_after_sum_0(dir.path()).await;
        let sum0 = adv.secure_sum_announcement();
        adv.run_attempt(1, 0, sum0, &all, &[member_id(3)], End::Complete)
            .await;
        finish(&mut adv, honest).await;
        assert_mounted_and_refused(&adv, 1, &all);
        let first: BTreeMap<String, Vec<f64>> =
            (0..4).map(|i| (member_id(i), series_input(i, 0))).collect();
        assert_private(&adv, &first);

        let dir = tempfile::tempdir().unwrap();
        let (mut adv, honest) = series_after_sum_0(dir.path()).await;
        let mut sum1 = adv.secure_sum_announcement();
        sum1.task = Some(Task::SecureSum(pb::SecureSumTask { index: 1 }));
        let s = adv
            .run_attempt(1, 0, sum1, &all, &[member_id(3)], End::Complete)
            .await;
        finish(&mut adv, honest).await;
        let s = s.values().next().unwrap().clone().unwrap();
        let want = sum_of(&(0..3).map(|i| series_input(i, 1)).collect::<Vec<_>>());
        assert!(
            close(&decoded(&adv, 1, &s), &want),
            "sum 1 over the three is exact\n{}",
            adv.summary()
        );
    })
    .await;
}

/// Round 0's published outcome with one bit of its sum flipped, signed
/// again with the coordinator's key: a history the coordinator rewrote.
fn rewritten_sum_0(published: &pb::Signed) -> pb::Signed {
    let (mut m, _) =
        fedcredit_proto::envelope::open_coordinator(published, &coordinator_key().public())
            .unwrap();
    let Some(pb::coordinator_message::Body::Outcome(o)) = &mut m.body else {
        panic!("round 0's outcome")
    };
    let mut sum = o.sum.to_vec();
    sum[0] ^= 1;
    o.sum = sum.into();
    fedcredit_proto::envelope::seal_coordinator(&coordinator_key(), &m)
}

/// Attack u: a rewritten history. The coordinator holds its own key, so it
/// can sign another outcome for a round it already published. After sum 0
/// of a series is published over all four, it re-signs round 0 with a
/// different sum and puts that in round 1's announcement. Members keep
/// what they replayed between announcements and skip re-checking outcomes
/// they already checked; the rewritten one is not one of those, and every
/// member must refuse the round (naming round 0) before it advertises a
/// key, rather than take the new history as the job's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u_a_rewritten_history_is_refused() {
    guarded(async {
        let all = ids(4);
        let dir = tempfile::tempdir().unwrap();
        let (mut adv, honest) = series_after_sum_0(dir.path()).await;
        let rewritten = rewritten_sum_0(&adv.published[0]);
        assert_ne!(rewritten.payload, adv.published[0].payload);
        adv.published[0] = rewritten;
        let mut sum1 = adv.secure_sum_announcement();
        sum1.task = Some(Task::SecureSum(pb::SecureSumTask { index: 1 }));
        adv.run_attempt(1, 0, sum1, &all, &[], End::Complete).await;
        let results = finish_with_results(&mut adv, honest).await;
        assert_mounted_and_refused(&adv, 1, &all);
        assert!(
            adv.attempts[1].adverts.is_empty() && adv.attempts[1].masked.is_empty(),
            "members took part under the rewritten history\n{}",
            adv.summary()
        );
        for r in results.into_values() {
            let e = r.expect_err("the member refuses the job");
            assert!(
                e.to_string()
                    .contains("another published result for round 0"),
                "{e}"
            );
        }
        let first: BTreeMap<String, Vec<f64>> =
            (0..4).map(|i| (member_id(i), series_input(i, 0))).collect();
        assert_private(&adv, &first);
    })
    .await;
}

/// Attack w: a rewritten outcome for a member that must fetch it. An
/// announcement lists only the digests of the earlier outcomes; a member
/// fetches any it did not receive. Sum 0 of a series (cohort `open`) is
/// published over three members, the target never shown round 0; round 1
/// is announced to all four listing sum 0's true digest, and the target's
/// fetch of sum 0 is answered with a re-signed, different sum. The target
/// must refuse the job, naming the mismatch, before it advertises a key.
/// The control: the same fetch answered honestly, the target takes part and
/// sum 1 over all four is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w_a_fetched_outcome_that_differs_from_its_digest_is_refused() {
    guarded(async {
        let all = ids(4);
        let three: Vec<String> = all[..3].to_vec();
        let target = member_id(3);
        for attack in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (mut adv, honest) =
                series_after_sum_0_over(dir.path(), CohortPolicy::Open, &three).await;
            let mut sum1 = adv.secure_sum_announcement();
            sum1.task = Some(Task::SecureSum(pb::SecureSumTask { index: 1 }));
            if attack {
                // Served on fetch; the announcement lists the true digest.
                adv.published[0] = rewritten_sum_0(&adv.published[0]);
            }
            let s = adv.run_attempt(1, 0, sum1, &all, &[], End::Complete).await;
            assert!(
                adv.trace
                    .iter()
                    .any(|t| t.starts_with(&format!("FetchOutcome {target} r0"))),
                "the target never fetched sum 0: the attack was not mounted\n{}",
                adv.summary()
            );
            let results = finish_with_results(&mut adv, honest).await;
            if attack {
                assert!(
                    !adv.attempts[1].adverts.contains_key(&target),
                    "the target took part under a rewritten sum 0\n{}",
                    adv.summary()
                );
                let e = results[&target]
                    .as_ref()
                    .expect_err("the target refuses the job");
                assert!(
                    e.to_string()
                        .contains("outcome of round 0 is not the one its announcement lists"),
                    "{e}"
                );
            } else {
                let s = s.values().next().unwrap().clone().unwrap();
                let want = sum_of(&(0..4).map(|i| series_input(i, 1)).collect::<Vec<_>>());
                assert!(
                    close(&decoded(&adv, 1, &s), &want),
                    "sum 1 over all four is exact\n{}",
                    adv.summary()
                );
                assert!(results[&target].is_ok(), "{:?}", results[&target]);
            }
        }
    })
    .await;
}

/// Attack v: a failed series' end with a rewritten history. A member that
/// is told a series failed keeps the sums published before the failure (its
/// daemon writes them), replayed from the list the end carries. After sum 0
/// is published over all four, the coordinator re-signs round 0 with a
/// different sum and ends the job as failed with that list: every member
/// must keep nothing and name round 0. The control, in a fresh consortium:
/// the same end with the true list gives each member sum 0 exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v_a_failed_end_with_a_rewritten_history_keeps_nothing() {
    guarded(async {
        let all = ids(4);
        let want = sum_of(&(0..4).map(|i| series_input(i, 0)).collect::<Vec<_>>());
        let end = async |adv: &mut Adversary, honest: Vec<Honest<SeriesInput>>| {
            adv.end_job(&all, false, "round 1 cannot publish").await;
            let mut out = Vec::new();
            for h in honest {
                out.push(h.join().await.0);
            }
            out
        };

        let dir = tempfile::tempdir().unwrap();
        let (mut adv, honest) = series_after_sum_0(dir.path()).await;
        for r in end(&mut adv, honest).await {
            match r {
                Err(fedcredit_participant::ParticipantError::JobEnded { reason, published }) => {
                    assert_eq!(reason, "round 1 cannot publish");
                    assert_eq!(published.len(), 1);
                    assert!(close(&published[0].sum, &want), "the true sum 0 is kept");
                }
                other => panic!("the control keeps sum 0: {other:?}"),
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let (mut adv, honest) = series_after_sum_0(dir.path()).await;
        adv.published[0] = rewritten_sum_0(&adv.published[0]);
        for r in end(&mut adv, honest).await {
            match r {
                Err(e @ fedcredit_participant::ParticipantError::JobFailed(_)) => {
                    let e = e.to_string();
                    assert!(e.contains("round 1 cannot publish"), "{e}");
                    assert!(e.contains("does not hold the outcome of round 0"), "{e}");
                }
                other => panic!("a rewritten history is not kept: {other:?}"),
            }
        }
    })
    .await;
}
