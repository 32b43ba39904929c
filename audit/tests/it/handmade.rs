//! Logs made by hand with real client state machines and signatures: the
//! auditor follows dropouts in every phase (recomputing the unmasking from
//! key shares of dropouts), justified aborts and retries, a coordinator
//! crash and restart, members leaving — and names what a dishonest
//! coordinator changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;

use common::handmade::{DIMENSION, Ended, Handmade, Plan, id};
use fedcredit_audit::{AttemptStatus, Check, JobEnd, verify};
use fedcredit_crypto::secagg::Phase;
use fedcredit_proto::v1::{self as pb, log_body};

fn set(v: &[usize]) -> BTreeSet<usize> {
    v.iter().copied().collect()
}

fn expected_sum(members: &[usize]) -> Vec<f64> {
    (0..DIMENSION)
        .map(|j| members.iter().map(|i| Handmade::input(*i)[j]).sum())
        .collect()
}

#[test]
fn dropouts_in_every_phase_verify() {
    let mut h = Handmade::new();
    // m5 never advertises; m4 advertises but sends no shares; m3 sends shares
    // but no masked input (its mask key is reconstructed from key shares).
    let plan = Plan {
        skip_advertise: set(&[4]),
        skip_shares: set(&[3]),
        skip_masked: set(&[2]),
        ..Plan::default()
    };
    // With only m1, m2 left after phase 3 the attempt must abort...
    assert_eq!(h.attempt(0, 0, &plan), Ended::Aborted(Phase::MaskedInput));
    // ...so the retry loses fewer: m5 drops in the masked input, m4 after
    // confirming (no reveal).
    let plan = Plan {
        skip_masked: set(&[4]),
        skip_unmask: set(&[3]),
        ..Plan::default()
    };
    assert_eq!(
        h.attempt(0, 1, &plan),
        Ended::Completed(expected_sum(&[0, 1, 2, 3]))
    );
    h.end(true, "");
    let report = verify(&h.bytes(), &h.consortium);
    eprintln!("{report}");
    assert!(report.ok(), "{report}");
    match &report.attempts[0].status {
        AttemptStatus::Aborted {
            phase,
            justification,
            ..
        } => {
            assert_eq!(phase, "masked-input");
            assert_eq!(
                justification,
                "2 of 3 parties answered in masked-input, 3 needed"
            );
        }
        other => panic!("{other:?}"),
    }
    match &report.attempts[1].status {
        AttemptStatus::Ok {
            contributors,
            dropped,
            ..
        } => {
            assert_eq!(contributors, &["m1", "m2", "m3", "m4"]);
            assert_eq!(dropped, &["m5"]);
        }
        other => panic!("{other:?}"),
    }
    let text = report.to_string();
    assert!(
        text.contains("round 0 attempt 0: ABORTED at masked-input (record "),
        "{text}"
    );
    assert!(
        text.contains("result: VERIFIED (2 round attempts: 1 OK, 1 aborted with cause)"),
        "{text}"
    );
}

#[test]
fn a_crash_mid_attempt_and_the_restart_verify() {
    let mut h = Handmade::new();
    let cut = Plan {
        cut_before_close: Some(Phase::MaskedInput),
        ..Plan::default()
    };
    assert_eq!(h.attempt(0, 0, &cut), Ended::Cut);
    h.restart(0, 1);
    assert!(matches!(
        h.attempt(0, 1, &Plan::default()),
        Ended::Completed(_)
    ));
    h.end(true, "");
    let report = verify(&h.bytes(), &h.consortium);
    eprintln!("{report}");
    assert!(report.ok(), "{report}");
    assert!(matches!(
        report.attempts[0].status,
        AttemptStatus::Interrupted { .. }
    ));
    assert_eq!(report.summary.restarts, 1);
    assert!(report.to_string().contains("coordinator restarted"));

    // The same restart reusing attempt 0 (keys must be fresh) is caught.
    let mut h = Handmade::new();
    h.attempt(0, 0, &cut);
    h.restart(0, 0);
    h.attempt(0, 0, &Plan::default());
    h.end(true, "");
    let report = verify(&h.bytes(), &h.consortium);
    let first = report.first_failure().expect("a failure");
    assert_eq!(first.check, Check::Restart, "{report}");
    assert!(first.reason.contains("already used"), "{report}");

    // A restart that promises attempt 1 but announces attempt 2.
    let mut h = Handmade::new();
    h.attempt(0, 0, &cut);
    h.restart(0, 1);
    h.attempt(0, 2, &Plan::default());
    h.end(true, "");
    let report = verify(&h.bytes(), &h.consortium);
    let first = report.first_failure().expect("a failure");
    assert_eq!(first.check, Check::Restart, "{report}");
    assert!(first.reason.contains("said round 0 attempt 1"), "{report}");
}

#[test]
fn a_log_without_its_first_start_record_fails() {
    let mut h = Handmade::new();
    h.attempt(0, 0, &Plan::default());
    h.end(true, "");
    h.bodies.remove(1);
    let report = verify(&h.bytes(), &h.consortium);
    let first = report.first_failure().expect("a failure");
    assert_eq!((first.record, first.check), (1, Check::Restart), "{report}");
}

#[test]
fn an_abort_without_cause_is_a_failure() {
    let mut h = Handmade::new();
    let plan = Plan {
        cut_before_close: Some(Phase::ConsistencyCheck),
        ..Plan::default()
    };
    h.attempt(0, 0, &plan);
    // All five confirmed, yet the coordinator says it had to stop.
    h.push(log_body::Entry::RoundAborted(pb::RoundAborted {
        round: 0,
        attempt: 0,
        phase: "consistency-check".into(),
        reason: "consistency-check: only 2 parties remain, 3 are needed".into(),
    }));
    h.end(false, "round 0 failed");
    let report = verify(&h.bytes(), &h.consortium);
    eprintln!("{report}");
    assert!(!report.ok());
    let f = report.attempts[0].failure().expect("failed");
    assert_eq!(f.check, Check::Abort);
    assert!(
        f.reason
            .contains("aborted in the consistency-check phase with 5 parties answering (3 needed): the log shows no cause"),
        "{f}"
    );
}

#[test]
fn a_failed_job_is_reported_and_its_log_still_verifies() {
    let mut h = Handmade::new();
    let plan = Plan {
        skip_shares: set(&[0, 1, 2]),
        ..Plan::default()
    };
    assert_eq!(h.attempt(0, 0, &plan), Ended::Aborted(Phase::ShareKeys));
    h.end(
        false,
        "round 0 failed after 1 attempt: share-keys: only 2 parties remain",
    );
    let report = verify(&h.bytes(), &h.consortium);
    eprintln!("{report}");
    assert!(report.ok(), "{report}");
    assert!(matches!(report.job_end, JobEnd::Ended { ok: false, .. }));
    assert!(report.to_string().contains("job ended at record"));
    // Declaring such a job a success is not.
    let last = h.bodies.len() - 1;
    h.bodies[last].entry = Some(log_body::Entry::JobEnded(pb::JobEnded {
        ok: true,
        reason: String::new(),
        model_json: String::new(),
        resumable: false,
    }));
    let report = verify(&h.bytes(), &h.consortium);
    let first = report.first_failure().expect("a failure");
    assert_eq!(first.check, Check::End, "{report}");
}

#[test]
fn leaves_are_reported_and_departures_must_be_real() {
    let mut h = Handmade::new();
    h.leave(4, pb::ReasonCode::ReasonInvalidData);
    assert!(matches!(
        h.attempt(0, 0, &Plan::default()),
        Ended::Completed(_)
    ));
    h.end(true, "");
    let report = verify(&h.bytes(), &h.consortium);
    eprintln!("{report}");
    assert!(report.ok(), "{report}");
    assert_eq!(report.departures.len(), 1);
    assert_eq!(report.departures[0].participant, "m5");
    assert!(report.to_string().contains("m5 left: invalid-data"));

    // Remove the Leave: the announcement now names a departure nobody signed.
    let leave = h
        .bodies
        .iter()
        .position(|b| common::participant_message(b).is_some())
        .expect("the leave");
    h.bodies.remove(leave);
    let report = verify(&h.bytes(), &h.consortium);
    let first = report.first_failure().expect("a failure");
    assert_eq!(first.check, Check::Announcement, "{report}");
    assert!(
        first
            .reason
            .contains("lists m5 as departed, but no Leave from m5 is logged"),
        "{first}"
    );
}

#[test]
fn a_phase_closed_that_hides_a_contributor_is_named() {
    let mut h = Handmade::new();
    h.attempt(0, 0, &Plan::default());
    h.end(true, "");
    // The coordinator claims m3's masked input never came.
    let i = common::find(
        &h.bodies,
        |e| matches!(e, log_body::Entry::PhaseClosed(pc) if pc.phase == "masked-input"),
    );
    let Some(log_body::Entry::PhaseClosed(pc)) = &mut h.bodies[i].entry else {
        unreachable!()
    };
    pc.cohort.retain(|m| m != "m3");
    pc.missing.push("m3".into());
    let report = verify(&h.bytes(), &h.consortium);
    let f = report.attempts[0].failure().expect("failed");
    assert_eq!((f.record, f.check), (i as u64, Check::Cohort), "{report}");
    assert!(f.reason.contains("a message but not listed: m3"), "{f}");
}

#[test]
fn a_reveal_from_outside_the_survivors_is_named() {
    // m5 confirmed nothing (not in U4), yet an unmask message of it is logged.
    let mut h = Handmade::new();
    let plan = Plan {
        skip_confirm: set(&[4]),
        ..Plan::default()
    };
    h.attempt(0, 0, &plan);
    h.end(true, "");
    let report = verify(&h.bytes(), &h.consortium);
    assert!(report.ok(), "{report}");
    // Move m4's reveal to sender m5: the coordinator cannot forge m5's
    // signature, so the record fails as a signature, not as a reveal.
    let i = common::find_message(&h.bodies, &id(3), "unmask", 0);
    let Some(log_body::Entry::Participant(signed)) = &mut h.bodies[i].entry else {
        unreachable!()
    };
    let mut m: pb::Message = prost::Message::decode(signed.payload.clone()).expect("message");
    m.sender = id(4);
    signed.payload = prost::Message::encode_to_vec(&m).into();
    let report = verify(&h.bytes(), &h.consortium);
    let f = report.attempts[0].failure().expect("failed");
    assert_eq!(
        (f.record, f.check),
        (i as u64, Check::Signature),
        "{report}"
    );
    assert!(
        f.reason.contains("bad signature on a message from m5"),
        "{f}"
    );
}

#[test]
fn show_tells_who_dropped_who_left_and_why_attempts_stopped() {
    let mut h = Handmade::new();
    h.leave(4, pb::ReasonCode::ReasonInvalidData);
    let plan = Plan {
        skip_shares: set(&[1, 2]),
        ..Plan::default()
    };
    h.attempt(0, 0, &plan);
    let plan = Plan {
        skip_masked: set(&[3]),
        ..Plan::default()
    };
    h.attempt(0, 1, &plan);
    h.end(true, "");
    let text = fedcredit_audit::show(&h.bytes())
        .expect("timeline")
        .to_string();
    eprintln!("{text}");
    for line in [
        "record    2  m5 LEFT the job: invalid-data",
        "round 0 attempt 0: secure-sum task, 3 values",
        "ABORTED in share-keys (record ",
        "share-keys: only 2 parties remain, 3 are needed (2 of 4 answered before the deadline)",
        "masked-input       m1, m2, m3   dropped: m4",
        "completed (record ",
        "job ended ok",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn a_bad_revealed_share_is_attributed_to_its_sender_and_the_round_verifies() {
    let mut h = Handmade::new();
    // m2 reveals a self-mask share that fails its dealer's commitment; the
    // coordinator logged it, left m2 out, and unmasked with the other four.
    let plan = Plan {
        bad_reveal: set(&[1]),
        ..Plan::default()
    };
    assert_eq!(
        h.attempt(0, 0, &plan),
        Ended::Completed(expected_sum(&[0, 1, 2, 3, 4]))
    );
    h.end(true, "");
    let report = verify(&h.bytes(), &h.consortium);
    eprintln!("{report}");
    assert!(report.ok(), "{report}");
    match &report.attempts[0].status {
        AttemptStatus::Ok { bad_reveals, .. } => {
            assert_eq!(bad_reveals.len(), 1, "{report}");
            assert_eq!(bad_reveals[0].revealer, "m2");
            assert_eq!(bad_reveals[0].owner, "m1");
            assert_eq!(bad_reveals[0].kind, "self-mask");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        report
            .to_string()
            .contains("m2 revealed a bad self-mask share of m1"),
        "{report}"
    );
}

#[test]
fn too_many_bad_reveals_justify_the_abort_and_name_their_senders() {
    let mut h = Handmade::new();
    let plan = Plan {
        bad_reveal: set(&[0, 1, 2]),
        ..Plan::default()
    };
    assert_eq!(h.attempt(0, 0, &plan), Ended::Aborted(Phase::Unmask));
    h.end(false, "round 0 failed");
    let report = verify(&h.bytes(), &h.consortium);
    eprintln!("{report}");
    match &report.attempts[0].status {
        AttemptStatus::Aborted { justification, .. } => {
            for who in ["m1 revealed", "m2 revealed", "m3 revealed"] {
                assert!(justification.contains(who), "{justification}");
            }
        }
        other => panic!("{other:?}"),
    }
}
