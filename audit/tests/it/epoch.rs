//! Epoch-job logs made by hand (`[protocol] setup = "epoch"`) with the
//! real epoch state machines and signatures: the auditor replays the
//! epoch across attempts, and names what a dishonest coordinator changes —
//! a reused slot, a slot of an epoch it does not hold, an altered revealed
//! share, a published sum that is not the slot's unmasked sum.
//!
//! A secure-sum job has one round, so the slots are used by attempts of
//! that round: the setup's slot 0 and slot 1 fall short of reveals (the
//! epoch stays held), slot 2 completes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;

use common::epoch::{EpochJob, SlotPlan};
use common::handmade::{DIMENSION, Ended, Handmade, id};
use fedcredit_audit::{AttemptStatus, Check, Report, verify};
use fedcredit_crypto::secagg::Phase;
use fedcredit_proto::v1::{self as pb, CoordinatorMessage, Message, coordinator_message, log_body};
use fedcredit_proto::{envelope, words};
use prost::Message as _;

fn set(v: &[usize]) -> BTreeSet<usize> {
    v.iter().copied().collect()
}

fn expected_sum(members: &[usize]) -> Vec<f64> {
    (0..DIMENSION)
        .map(|j| members.iter().map(|i| Handmade::input(*i)[j]).sum())
        .collect()
}

/// Reveals from two members only: below the threshold of 3.
fn short_of_reveals() -> SlotPlan {
    SlotPlan {
        skip_reveal: set(&[2, 3, 4]),
        ..SlotPlan::default()
    }
}

/// Setup (slot 0) and slot 1 abort for want of reveals; slot 2 completes,
/// m5 revealing a bad share.
fn three_slots() -> EpochJob {
    let mut j = EpochJob::new(4);
    assert_eq!(
        j.setup(0, 0, &short_of_reveals()),
        Ended::Aborted(Phase::Unmask)
    );
    assert_eq!(
        j.slot(0, 1, 1, &short_of_reveals()),
        Ended::Aborted(Phase::Unmask)
    );
    let plan = SlotPlan {
        bad_reveal: set(&[4]),
        ..SlotPlan::default()
    };
    assert_eq!(
        j.slot(0, 2, 2, &plan),
        Ended::Completed(expected_sum(&[0, 1, 2, 3, 4]))
    );
    j.h.end(true, "");
    j
}

fn report(j: &EpochJob) -> Report {
    let r = verify(&j.h.bytes(), &j.h.consortium);
    eprintln!("{r}");
    r
}

/// The records of one kind, by position.
fn positions(j: &EpochJob, pick: impl Fn(&log_body::Entry) -> bool) -> Vec<usize> {
    j.h.bodies
        .iter()
        .enumerate()
        .filter(|(_, b)| b.entry.as_ref().is_some_and(&pick))
        .map(|(k, _)| k)
        .collect()
}

fn announcements(j: &EpochJob) -> Vec<usize> {
    positions(j, |e| matches!(e, log_body::Entry::Announcement(_)))
}

/// Changes the announcement at record `k` and re-signs it with the
/// coordinator key (a dishonest coordinator can always re-sign its own log).
fn reannounce(j: &mut EpochJob, k: usize, change: impl Fn(&mut pb::RoundAnnouncement)) {
    let Some(log_body::Entry::Announcement(signed)) = &j.h.bodies[k].entry else {
        panic!("record {k} is not an announcement");
    };
    let mut m = CoordinatorMessage::decode(signed.payload.clone()).expect("message");
    let Some(coordinator_message::Body::Announce(a)) = &mut m.body else {
        panic!("not an announcement");
    };
    change(a);
    let resigned = envelope::seal_coordinator(&j.h.coordinator, &m);
    j.h.bodies[k].entry = Some(log_body::Entry::Announcement(resigned));
}

#[test]
fn an_epoch_job_with_a_setup_and_two_slot_attempts_verifies() {
    let j = three_slots();
    let r = report(&j);
    assert!(r.ok(), "{r}");
    assert_eq!(r.attempts.len(), 3);
    for a in &r.attempts[..2] {
        match &a.status {
            AttemptStatus::Aborted {
                phase,
                justification,
                ..
            } => {
                assert_eq!(phase, "unmask");
                assert!(
                    justification.contains("2 of 5 parties answered in unmask"),
                    "{r}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    match &r.attempts[2].status {
        AttemptStatus::Ok {
            contributors,
            dropped,
            bad_reveals,
            ..
        } => {
            assert_eq!(contributors, &["m1", "m2", "m3", "m4", "m5"]);
            assert!(dropped.is_empty());
            assert_eq!(bad_reveals.len(), 1, "{r}");
            assert_eq!(bad_reveals[0].revealer, "m5");
            assert_eq!(bad_reveals[0].kind, "slot 2 self-mask");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        r.to_string()
            .contains("m5 revealed a bad slot 2 self-mask share of m1"),
        "{r}"
    );

    // `audit show` names each attempt's epoch and slot.
    let timeline = fedcredit_audit::show(&j.h.bytes())
        .expect("show")
        .to_string();
    eprintln!("{timeline}");
    assert!(
        timeline.contains("sets up a new epoch, slot 0 of 4"),
        "{timeline}"
    );
    let id = j.last_id.expect("an epoch").to_hex();
    assert!(
        timeline.contains(&format!("epoch {}…, slot 2 of 4", &id[..16])),
        "{timeline}"
    );
}

#[test]
fn a_reused_slot_is_named() {
    let mut j = three_slots();
    let last = announcements(&j)[2];
    reannounce(&mut j, last, |a| a.slot = 1);
    let r = report(&j);
    let f = r.first_failure().expect("a failure");
    assert_eq!((f.record, f.check), (last as u64, Check::Epoch), "{r}");
    assert!(f.reason.contains("slot 1"), "{f}");
    assert!(f.reason.contains("already announced"), "{f}");
}

#[test]
fn a_slot_out_of_range_or_a_setup_on_another_slot_is_named() {
    let mut j = three_slots();
    let last = announcements(&j)[2];
    reannounce(&mut j, last, |a| a.slot = 4);
    let f = report(&j).first_failure().expect("a failure");
    assert_eq!((f.record, f.check), (last as u64, Check::Epoch));
    assert!(f.reason.contains("which has 4 slots"), "{f}");

    let mut j = three_slots();
    let first = announcements(&j)[0];
    reannounce(&mut j, first, |a| a.slot = 3);
    let f = report(&j).first_failure().expect("a failure");
    assert_eq!((f.record, f.check), (first as u64, Check::Epoch));
    assert!(f.reason.contains("a setup uses slot 0"), "{f}");
}

#[test]
fn a_slot_of_an_epoch_never_set_up_is_named() {
    let mut j = three_slots();
    let second = announcements(&j)[1];
    reannounce(&mut j, second, |a| a.epoch = vec![7u8; 32].into());
    let r = report(&j);
    let f = r.first_failure().expect("a failure");
    assert_eq!((f.record, f.check), (second as u64, Check::Epoch), "{r}");
    assert!(f.reason.contains(&"07".repeat(32)), "{f}");
    assert!(f.reason.contains("the epoch held is epoch"), "{f}");
}

#[test]
fn a_slot_after_a_coordinator_restart_is_named() {
    // The restarted coordinator holds no epoch: it must set up anew.
    let mut j = EpochJob::new(4);
    assert_eq!(
        j.setup(0, 0, &short_of_reveals()),
        Ended::Aborted(Phase::Unmask)
    );
    j.h.restart(0, 1);
    j.slot(0, 1, 1, &SlotPlan::default());
    j.h.end(true, "");
    let r = report(&j);
    let f = r.first_failure().expect("a failure");
    let second = announcements(&j)[1];
    assert_eq!((f.record, f.check), (second as u64, Check::Epoch), "{r}");
    assert!(f.reason.contains("no epoch is held"), "{f}");
    assert!(f.reason.contains("coordinator start"), "{f}");
}

#[test]
fn an_altered_revealed_share_is_named() {
    let mut j = three_slots();
    // m1's slot reveal in the completing attempt, altered and re-signed
    // with m1's own key: its share no longer matches its dealer's
    // commitment, so m1 is out of the unmasking the log says it was in.
    let k =
        j.h.bodies
            .iter()
            .position(|b| {
                common::participant_message(b).is_some_and(|(m, _)| {
                    m.attempt == 2
                        && m.sender == "m1"
                        && matches!(m.body, Some(pb::message::Body::SlotReveal(_)))
                })
            })
            .expect("m1's reveal");
    let (mut m, _) = common::participant_message(&j.h.bodies[k]).expect("message");
    let Some(pb::message::Body::SlotReveal(r)) = &mut m.body else {
        unreachable!()
    };
    let mut share = r.shares[1].share.to_vec();
    share[4] = share[4].wrapping_add(1);
    r.shares[1].share = share.into();
    j.h.bodies[k].entry = Some(log_body::Entry::Participant(envelope::seal(
        &j.h.keys[0],
        &m,
    )));
    let r = report(&j);
    let f = r.first_failure().expect("a failure");
    let close = positions(
        &j,
        |e| matches!(e, log_body::Entry::PhaseClosed(pc) if pc.attempt == 2 && pc.phase == "unmask"),
    )[0];
    assert_eq!((f.record, f.check), (close as u64, Check::Cohort), "{r}");
    assert!(f.reason.contains("m1"), "{f}");

    // Not re-signed, it is not m1's message at all.
    let mut j = three_slots();
    let (mut m, _) = common::participant_message(&j.h.bodies[k]).expect("message");
    let Some(pb::message::Body::SlotReveal(r)) = &mut m.body else {
        unreachable!()
    };
    let mut share = r.shares[1].share.to_vec();
    share[4] = share[4].wrapping_add(1);
    r.shares[1].share = share.into();
    let Some(log_body::Entry::Participant(signed)) = &mut j.h.bodies[k].entry else {
        unreachable!()
    };
    signed.payload = m.encode_to_vec().into();
    let f = report(&j).first_failure().expect("a failure");
    assert_eq!((f.record, f.check), (k as u64, Check::Signature));
}

#[test]
fn a_published_sum_that_differs_is_named() {
    let mut j = three_slots();
    let done = positions(&j, |e| matches!(e, log_body::Entry::RoundCompleted(_)))[0];
    let Some(log_body::Entry::RoundCompleted(rc)) = &mut j.h.bodies[done].entry else {
        unreachable!()
    };
    let mut sum = words::from_bytes("sum", &rc.sum).expect("words");
    sum[0] = sum[0].wrapping_add(1 << 16);
    rc.sum = words::to_bytes(&sum).into();
    let r = report(&j);
    let f = r.first_failure().expect("a failure");
    assert_eq!((f.record, f.check), (done as u64, Check::Sum), "{r}");
    assert!(f.reason.contains("published sum differs"), "{f}");
}

#[test]
fn a_slot_with_a_missing_input_aborts_and_drops_the_epoch() {
    // m5 sends no masked input in the setup's slot 0: the slot is
    // abandoned, and the next attempt sets up a new epoch.
    let plan = SlotPlan {
        skip_masked: set(&[4]),
        ..SlotPlan::default()
    };
    let mut j = EpochJob::new(4);
    assert_eq!(j.setup(0, 0, &plan), Ended::Aborted(Phase::MaskedInput));
    assert!(matches!(
        j.setup(0, 1, &SlotPlan::default()),
        Ended::Completed(_)
    ));
    j.h.end(true, "");
    let r = report(&j);
    assert!(r.ok(), "{r}");
    match &r.attempts[0].status {
        AttemptStatus::Aborted { justification, .. } => {
            assert!(
                justification.contains("slot 0 abandoned before any reveal: m5"),
                "{r}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Using another slot of the abandoned epoch instead is named.
    let mut j = EpochJob::new(4);
    j.setup(0, 0, &plan);
    let epoch_id = *j.last_id.expect("an epoch").as_bytes();
    j.h.announce(0, 1, &epoch_id, 1);
    j.h.end(false, "stopped");
    let r = report(&j);
    let f = r.first_failure().expect("a failure");
    assert_eq!(f.check, Check::Epoch, "{r}");
    assert!(f.reason.contains("abandoned slot 0"), "{f}");

    // A masked-input phase closed without m5's input is not an epoch slot.
    let mut j = EpochJob::new(4);
    j.setup(0, 0, &plan);
    let abort = j.h.bodies.len() - 1;
    j.h.bodies[abort].entry = Some(log_body::Entry::PhaseClosed(pb::PhaseClosed {
        round: 0,
        attempt: 0,
        phase: "masked-input".into(),
        cohort: (0..4).map(id).collect(),
        missing: vec![id(4)],
    }));
    j.h.end(false, "stopped");
    let r = report(&j);
    let f = r.first_failure().expect("a failure");
    assert_eq!((f.record, f.check), (abort as u64, Check::Abort), "{r}");
    assert!(f.reason.contains("m5 sent none"), "{f}");
}

#[test]
fn a_setup_member_that_does_not_deal_forces_an_abort() {
    let plan = SlotPlan {
        skip_shares: set(&[2]),
        ..SlotPlan::default()
    };
    let mut j = EpochJob::new(4);
    assert_eq!(j.setup(0, 0, &plan), Ended::Aborted(Phase::ShareKeys));
    assert!(matches!(
        j.setup(0, 1, &SlotPlan::default()),
        Ended::Completed(_)
    ));
    j.h.end(true, "");
    let r = report(&j);
    assert!(r.ok(), "{r}");
    match &r.attempts[0].status {
        AttemptStatus::Aborted { justification, .. } => {
            assert!(justification.contains("m3 sent no epoch shares"), "{r}");
        }
        other => panic!("{other:?}"),
    }

    // Closing the share-keys phase without m3's shares is named.
    let mut j = EpochJob::new(4);
    j.setup(0, 0, &plan);
    let abort = j.h.bodies.len() - 1;
    j.h.bodies[abort].entry = Some(log_body::Entry::PhaseClosed(pb::PhaseClosed {
        round: 0,
        attempt: 0,
        phase: "share-keys".into(),
        cohort: [0, 1, 3, 4].into_iter().map(id).collect(),
        missing: vec![id(2)],
    }));
    j.h.end(false, "stopped");
    let r = report(&j);
    let f = r.first_failure().expect("a failure");
    assert_eq!((f.record, f.check), (abort as u64, Check::Abort), "{r}");
    assert!(f.reason.contains("without epoch shares from m3"), "{f}");
}

#[test]
fn per_round_bodies_are_refused_in_an_epoch_attempt() {
    let mut j = three_slots();
    // A per-round UnmaskShares in place of m2's slot reveal.
    let k =
        j.h.bodies
            .iter()
            .position(|b| {
                common::participant_message(b).is_some_and(|(m, _)| {
                    m.attempt == 2
                        && m.sender == "m2"
                        && matches!(m.body, Some(pb::message::Body::SlotReveal(_)))
                })
            })
            .expect("m2's reveal");
    let m = Message {
        body: Some(pb::message::Body::Unmask(pb::UnmaskShares::default())),
        ..common::participant_message(&j.h.bodies[k])
            .expect("message")
            .0
    };
    j.h.bodies[k].entry = Some(log_body::Entry::Participant(envelope::seal(
        &j.h.keys[1],
        &m,
    )));
    let r = report(&j);
    let f = r.first_failure().expect("a failure");
    assert_eq!((f.record, f.check), (k as u64, Check::Phase), "{r}");
    assert!(f.reason.contains("in an attempt of an epoch"), "{f}");
}

#[test]
fn a_real_epoch_credit_job_verifies() {
    // The coordinator and participants in this process, over loopback
    // gRPC, in epochs of 2 slots: the log they write must verify.
    let f = common::epoch_credit_model();
    let r = verify(&f.log, &f.consortium);
    eprintln!("{r}");
    assert!(r.ok(), "{r}");
    assert!(r.attempts.len() >= 3, "{r}");
    let timeline = fedcredit_audit::show(&f.log).expect("show").to_string();
    assert!(
        timeline.contains("sets up a new epoch, slot 0 of 2"),
        "{timeline}"
    );
    assert!(timeline.contains(", slot 1 of 2"), "{timeline}");
}
