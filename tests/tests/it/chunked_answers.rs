//! Signed answers in pieces (`PollChunks`, `UnmaskChunks`, `OutcomeChunks`)
//! from a dishonest coordinator: the real participant must refuse a round
//! outcome, a job's end or a fetched outcome whose pieces come out of
//! order, twice, past the end, or cut short, and never take a result from
//! such a stream.
//!
//! Each attack is mounted three times against four real participants: on
//! the round outcome (the members must not count the round: their reports
//! show no completed round, where an untampered run shows one), on the
//! job's end after an honest round (each member's run fails with the typed
//! error that names the broken piece), and on the outcome a member that sat
//! the round out fetches at the job's end (it keeps no result, naming the
//! piece, where an untampered fetch replays the job).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::Duration;

use fedcredit_participant::contribution::VectorInput;
use fedcredit_participant::{ParticipantError, Report};
use fedcredit_referee::consortium::Consortium;
use fedcredit_tests::adversary::{PIECE_BYTES, PieceTamper, Rpc, same_list};
use fedcredit_tests::setup::{
    Honest, coordinator_key, member_id, secure_sum_consortium, spawn_honest,
};
use fedcredit_tests::{Adversary, End};

/// Values per input: the outcome (8 bytes a value) spans many pieces.
const DIM: usize = 64;

/// A guard against a hung test (a bug), never a way to sequence it.
async fn guarded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(180), f)
        .await
        .expect("the test hung");
}

fn ids() -> Vec<String> {
    (0..4).map(member_id).collect()
}

fn consortium() -> Consortium {
    secure_sum_consortium(4, "", DIM, 16, 1e6).unwrap()
}

async fn start(c: &Consortium) -> (Adversary, Vec<Honest<VectorInput>>) {
    let adv = Adversary::start(c.clone(), coordinator_key()).await;
    let honest = (0..4)
        .map(|i| {
            let v = (0..DIM).map(|j| (i * DIM + j) as f64 * 0.5).collect();
            spawn_honest(&adv, c, i, VectorInput::new(v), None)
        })
        .collect();
    (adv, honest)
}

/// One round attempt with every member, its outcome's pieces broken as
/// `tamper` says; then the job ends honestly. Each member's report.
async fn tampered_outcome(tamper: Option<PieceTamper>) -> Vec<Report> {
    let c = consortium();
    let (mut adv, honest) = start(&c).await;
    let all = ids();
    let ann = adv.secure_sum_announcement();
    adv.announce(0, 0, ann, &all).await;
    // Every member has its announcement once it advertises: only the
    // outcome's pieces are broken.
    adv.advertise(&all).await;
    adv.share_keys().await;
    adv.masked_input(|_, senders| senders.to_vec()).await;
    adv.confirm(same_list).await;
    // Only the outcome's pieces: the job's end goes out whole.
    adv.tamper_pieces(tamper.map(|t| (Rpc::Unmask, t)));
    let list = adv.current_shown();
    let results = adv.unmask(list.as_deref(), |_| {}, End::Complete).await;
    assert!(
        results.values().all(Result::is_ok),
        "the adversary could not unmask: the attack was not mounted\n{}",
        adv.summary()
    );
    adv.finish(&all).await;
    let mut reports = Vec::new();
    for h in honest {
        let (r, _) = h.join().await;
        reports.push(r.unwrap_or_else(|e| panic!("the job's end was not broken: {e}")));
    }
    reports
}

/// An honest round, then the job's end with its pieces broken as `tamper`
/// says. Each member's error.
async fn tampered_end(tamper: PieceTamper) -> Vec<ParticipantError> {
    let c = consortium();
    let (mut adv, honest) = start(&c).await;
    let all = ids();
    let ann = adv.secure_sum_announcement();
    adv.run_attempt(0, 0, ann, &all, &[], End::Complete).await;
    // The job's end lists outcomes by digest: a reason long enough makes it
    // several pieces.
    let reason = "the job's end, padded so that it spans pieces; ".repeat(8);
    adv.tamper_pieces(Some((Rpc::Poll, tamper)));
    adv.end_job(&all, true, &reason).await;
    let mut errors = Vec::new();
    for h in honest {
        match h.join().await.0 {
            Ok(_) => panic!("a member accepted a job's end sent in broken pieces ({tamper:?})"),
            Err(e) => errors.push(e),
        }
    }
    errors
}

/// Sum 0 published over three members, the fourth never shown its round;
/// then the job's end, and the fourth fetches sum 0 (`OutcomeChunks`) in
/// pieces broken as `tamper` says. The fourth member's result (the three
/// others must finish).
async fn tampered_fetch(tamper: Option<PieceTamper>) -> Result<Report, ParticipantError> {
    let c = consortium();
    let (mut adv, honest) = start(&c).await;
    let all = ids();
    let ann = adv.secure_sum_announcement();
    adv.run_attempt(0, 0, ann, &all[..3], &[], End::Complete)
        .await;
    // The outcome the fourth member fetches spans several pieces.
    assert!(adv.published[0].payload.len() > 3 * PIECE_BYTES);
    adv.tamper_pieces(tamper.map(|t| (Rpc::FetchOutcome, t)));
    adv.finish(&all).await;
    assert!(
        adv.trace
            .iter()
            .any(|t| t.starts_with(&format!("FetchOutcome {} r0", all[3]))),
        "the fourth member never fetched sum 0: the attack was not mounted\n{}",
        adv.summary()
    );
    let mut fourth = None;
    for (i, h) in honest.into_iter().enumerate() {
        let (r, _) = h.join().await;
        if i == 3 {
            fourth = Some(r);
        } else {
            r.unwrap_or_else(|e| panic!("member {i}: {e}"));
        }
    }
    fourth.unwrap()
}

async fn mount(tamper: PieceTamper, says: &str) {
    guarded(async {
        // On the round outcome: nobody counts the round.
        for r in tampered_outcome(Some(tamper)).await {
            assert!(
                r.rounds.is_empty(),
                "a member accepted an outcome sent in broken pieces ({tamper:?})"
            );
        }
        // On the job's end: every member refuses it, naming the piece.
        for e in tampered_end(tamper).await {
            let e = e.to_string();
            assert!(
                e.contains("poll answer") && e.contains(says),
                "{tamper:?}: {e}"
            );
        }
        // On an outcome fetched at the job's end: the member that fetched
        // it keeps no result, naming the piece.
        let e = tampered_fetch(Some(tamper))
            .await
            .expect_err("a member accepted an outcome fetched in broken pieces")
            .to_string();
        assert!(
            e.contains("published outcome") && e.contains(says),
            "{tamper:?}: {e}"
        );
    })
    .await;
}

/// The control: the same run with whole pieces completes the round for
/// every member (so the tests below can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_pieces_are_accepted() {
    guarded(async {
        for r in tampered_outcome(None).await {
            assert_eq!(r.rounds.len(), 1);
            assert_eq!(r.rounds[0].sum.len(), DIM);
        }
        // The member that fetched sum 0 whole replays the job.
        let r = tampered_fetch(None)
            .await
            .expect("the fetched outcome is whole");
        let result = r.result.expect("the job's result");
        assert_eq!(result.published.len(), 1);
        assert_eq!(result.published[0].sum.len(), DIM);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piece_out_of_order_is_refused() {
    mount(PieceTamper::OutOfOrder, "arrived out of order").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_piece_is_refused() {
    mount(PieceTamper::Duplicate, "arrived twice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piece_past_the_end_is_refused() {
    mount(PieceTamper::PastEnd, "past the end").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_stream_is_refused() {
    mount(PieceTamper::Truncated, "the stream ended after").await;
}
