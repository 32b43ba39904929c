//! Tampered real logs: every change is found and named — by the chain and
//! signatures when the bytes change, and by the recomputation when a
//! dishonest coordinator re-signs what it changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Fixture, bodies, find, find_message, offsets, participant_message, reseal};
use fedcredit_audit::{AttemptStatus, Check, JobEnd, LogEnd, Report, verify};
use fedcredit_proto::envelope;
use fedcredit_proto::v1::{self as pb, LogBody, coordinator_message, log_body};
use fedcredit_proto::words;
use proptest::prelude::*;
use prost::Message as _;

/// The record holding byte `pos`.
fn record_at(offsets: &[u64], pos: usize) -> u64 {
    offsets
        .windows(2)
        .position(|w| (w[0]..w[1]).contains(&(pos as u64)))
        .expect("inside a record") as u64
}

/// A byte flip at `pos` must be found at the record holding it.
fn assert_flip_found(f: &Fixture, offs: &[u64], pos: usize, mask: u8) -> Report {
    let mut log = f.log.clone();
    log[pos] ^= mask;
    let report = verify(&log, &f.consortium);
    let k = record_at(offs, pos);
    assert!(
        !report.ok(),
        "flip at byte {pos} (record {k}) went unnoticed"
    );
    let named = match &report.log_end {
        LogEnd::Broken { record, .. } | LogEnd::Truncated { record, .. } => *record,
        LogEnd::Clean => panic!("flip at byte {pos}: the log still reads cleanly\n{report}"),
    };
    assert_eq!(named, k, "flip at byte {pos}\n{report}");
    let text = report.to_string();
    assert!(
        text.contains(&format!("at record {k} ")),
        "flip at byte {pos}: the report does not name record {k}\n{text}"
    );
    report
}

/// Byte range of record `k`'s framing (length prefix and record).
fn record_range(offs: &[u64], k: usize) -> std::ops::Range<usize> {
    offs[k] as usize..offs[k + 1] as usize
}

/// Byte offset of `needle` inside record `k`.
fn find_in_record(log: &[u8], offs: &[u64], k: usize, needle: &[u8]) -> usize {
    let r = record_range(offs, k);
    r.start
        + log[r.clone()]
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("needle in record")
}

#[test]
fn flipped_bytes_across_a_secure_sum_log_are_found_and_named() {
    let f = common::secure_sum();
    let offs = offsets(&f.log);
    let mut positions: Vec<usize> = (0..f.log.len()).step_by(11).collect();
    // Inside every masked input's values, and the published sum.
    let b = bodies(f);
    for (k, body) in b.iter().enumerate() {
        let is_masked = participant_message(body)
            .is_some_and(|(m, _)| common::body_kind(m.body.as_ref()) == "masked-input");
        let is_result = matches!(body.entry, Some(log_body::Entry::RoundCompleted(_)));
        if is_masked || is_result {
            let r = record_range(&offs, k);
            positions.extend([r.start + r.len() / 3, r.start + r.len() / 2]);
        }
    }
    positions.push(f.log.len() - 1);
    for (i, pos) in positions.iter().enumerate() {
        let mask = if i % 2 == 0 { 0x01 } else { 0x80 };
        assert_flip_found(f, &offs, *pos, mask);
    }
    eprintln!("{} flips found and named", positions.len());
}

#[test]
fn flipped_bytes_in_a_credit_model_log_are_found_and_named() {
    let f = common::credit_model();
    let offs = offsets(&f.log);
    let b = bodies(f);
    let mut positions: Vec<usize> = (0..f.log.len()).step_by(f.log.len() / 40).collect();
    // A masked input of the evaluation round (the largest), deep inside.
    let last_round = b
        .iter()
        .filter_map(|x| match &x.entry {
            Some(log_body::Entry::RoundCompleted(rc)) => Some(rc.round),
            _ => None,
        })
        .max()
        .expect("rounds");
    let k = find_message(&b, "lender-2", "masked-input", last_round);
    let r = record_range(&offs, k);
    positions.push(r.start + r.len() * 3 / 4);
    // A coefficient digit in the published model, and a step size in a progress record.
    let end = b.len() - 1;
    positions.push(find_in_record(&f.log, &offs, end, b"\"coefficients\":[") + 20);
    let step = find(
        &b,
        |e| matches!(e, log_body::Entry::RoundCompleted(rc) if rc.progress_json.contains("step_max_norm")),
    );
    positions.push(find_in_record(&f.log, &offs, step, b"step_max_norm") + 16);
    for pos in positions {
        let report = assert_flip_found(f, &offs, pos, 0x04);
        // Everything before the damaged record still verifies.
        let k = record_at(&offs, pos);
        for a in &report.attempts {
            if let AttemptStatus::Ok { record, .. } = a.status {
                assert!(record < k);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn any_flipped_byte_is_found(pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let f = common::secure_sum();
        let offs = offsets(&f.log);
        assert_flip_found(f, &offs, pos.index(f.log.len()), mask);
    }
}

#[test]
fn a_deleted_record_is_found_even_when_the_log_is_re_signed() {
    let f = common::secure_sum();
    let offs = offsets(&f.log);
    let b = bodies(f);
    let key = f.coordinator_key();
    for k in 0..b.len() {
        // Cut out of the file: the chain breaks right there.
        let mut log = f.log.clone();
        log.drain(record_range(&offs, k));
        let report = verify(&log, &f.consortium);
        assert!(!report.ok(), "deleting record {k}");
        if k + 1 < b.len() {
            match &report.log_end {
                LogEnd::Broken {
                    record, problem, ..
                } => {
                    assert_eq!(*record, k as u64);
                    assert!(
                        problem.contains("a record was removed or moved"),
                        "{problem}"
                    );
                }
                other => panic!("deleting record {k}: {other:?}"),
            }
        } else {
            assert_eq!(report.job_end, JobEnd::Unfinished);
            assert!(report.to_string().contains("job UNFINISHED"));
        }
        // Re-numbered, re-chained and re-signed: the meaning breaks instead.
        let mut shorter = b.clone();
        shorter.remove(k);
        let report = verify(&reseal(&shorter, &key), &f.consortium);
        assert!(!report.ok(), "re-signed deletion of record {k}\n{report}");
        if k == 14 {
            eprintln!("re-signed deletion of record {k}:\n{report}");
        }
    }
}

#[test]
fn swapped_records_are_found() {
    let f = common::secure_sum();
    let offs = offsets(&f.log);
    let b = bodies(f);
    for k in 0..b.len() - 1 {
        let mut log = f.log[..offs[k] as usize].to_vec();
        log.extend_from_slice(&f.log[record_range(&offs, k + 1)]);
        log.extend_from_slice(&f.log[record_range(&offs, k)]);
        log.extend_from_slice(&f.log[offs[k + 2] as usize..]);
        let report = verify(&log, &f.consortium);
        assert!(
            matches!(report.log_end, LogEnd::Broken { record, .. } if record == k as u64),
            "swapping records {k} and {}: {:?}",
            k + 1,
            report.log_end
        );
    }
    // Re-signed: the share-keys phase now closes after the first masked
    // input, which arrives while that phase is still open.
    let close = find(
        &b,
        |e| matches!(e, log_body::Entry::PhaseClosed(pc) if pc.phase == "share-keys"),
    );
    let mut swapped = b.clone();
    swapped.swap(close, close + 1);
    let report = verify(&reseal(&swapped, &f.coordinator_key()), &f.consortium);
    let fail = report.attempts[0].failure().expect("failed");
    eprintln!("{fail}");
    assert_eq!(fail.record, close as u64);
    assert!(
        fail.reason.starts_with("a masked-input message from bank-")
            && fail.reason.ends_with("while the share-keys phase is open"),
        "{fail}"
    );
}

fn set_participant(b: &mut [LogBody], k: usize, signed: pb::Signed) {
    b[k].entry = Some(log_body::Entry::Participant(signed));
}

fn signed_at(b: &[LogBody], k: usize) -> pb::Signed {
    participant_message(&b[k]).expect("participant").1.clone()
}

/// Indices of `sender`'s masked-input chunk records, in log order.
fn chunk_records(b: &[LogBody], sender: &str) -> Vec<usize> {
    (0..b.len())
        .filter(|k| {
            participant_message(&b[*k]).is_some_and(|(m, _)| {
                m.sender == sender && matches!(m.body, Some(pb::message::Body::MaskedChunk(_)))
            })
        })
        .collect()
}

#[test]
fn a_chunked_secure_sum_verifies_every_chunk_as_its_members_message() {
    let f = common::secure_sum_chunked();
    let report = verify(&f.log, &f.consortium);
    assert!(report.ok(), "{report}");
    let b = bodies(f);
    for id in ["bank-a", "bank-b", "bank-c", "bank-d"] {
        assert_eq!(chunk_records(&b, id).len(), 3, "{id}");
    }
}

#[test]
fn a_chunk_left_out_of_the_log_is_named() {
    let f = common::secure_sum_chunked();
    let mut b = bodies(f);
    let chunks = chunk_records(&b, "bank-c");
    b.remove(chunks[1]);
    let report = verify(&reseal(&b, &f.coordinator_key()), &f.consortium);
    let fail = report.first_failure().expect("a failure");
    // bank-c's chunk 2 (one record earlier now) comes where chunk 1 is due.
    assert_eq!(
        (fail.record, fail.check),
        (chunks[2] as u64 - 1, Check::Message)
    );
    assert!(
        fail.reason.contains("bank-c's masked-input chunk")
            && fail
                .reason
                .contains("chunk 2 of 3 at word 4 is out of order"),
        "{fail}"
    );
}

#[test]
fn a_chunk_logged_twice_is_named() {
    let f = common::secure_sum_chunked();
    let mut b = bodies(f);
    let chunks = chunk_records(&b, "bank-a");
    let again = b[chunks[0]].clone();
    b.insert(chunks[0] + 1, again);
    let report = verify(&reseal(&b, &f.coordinator_key()), &f.consortium);
    let fail = report.first_failure().expect("a failure");
    assert_eq!(
        (fail.record, fail.check),
        (chunks[0] as u64 + 1, Check::Message)
    );
    assert!(fail.reason.contains("out of order"), "{fail}");
}

#[test]
fn a_chunk_altered_and_re_signed_does_not_add_up_to_the_published_sum() {
    // A member colluding with the coordinator re-signs an altered chunk:
    // every signature holds, the recomputed sum does not.
    let f = common::secure_sum_chunked();
    let mut b = bodies(f);
    let k = chunk_records(&b, "bank-c")[1];
    let (mut m, _) = participant_message(&b[k]).expect("message");
    let Some(pb::message::Body::MaskedChunk(c)) = &mut m.body else {
        unreachable!()
    };
    let mut w = words::from_bytes("w", &c.values).expect("words");
    w[0] = w[0].wrapping_add(1 << 16);
    c.values = words::to_bytes(&w).into();
    set_participant(&mut b, k, envelope::seal(&f.member_key("bank-c"), &m));
    let report = verify(&reseal(&b, &f.coordinator_key()), &f.consortium);
    let done = find(&b, |e| matches!(e, log_body::Entry::RoundCompleted(_)));
    let fail = report.first_failure().expect("a failure");
    assert_eq!((fail.record, fail.check), (done as u64, Check::Sum));
    assert!(fail.reason.contains("(first at word 2 of 5"), "{fail}");
}

#[test]
fn another_participants_masked_input_in_its_place_is_named() {
    let f = common::secure_sum();
    let mut b = bodies(f);
    let a = find_message(&b, "bank-a", "masked-input", 0);
    let bb = find_message(&b, "bank-b", "masked-input", 0);
    let stolen = signed_at(&b, bb);
    set_participant(&mut b, a, stolen);
    let report = verify(&reseal(&b, &f.coordinator_key()), &f.consortium);
    eprintln!("{report}");
    let fail = report.first_failure().expect("a failure");
    assert_eq!((fail.record, fail.check), (a.max(bb) as u64, Check::Cohort));
    assert!(
        fail.reason
            .contains("bank-b sent a second masked-input message"),
        "{fail}"
    );
    let json = serde_json::to_value(&report).expect("json");
    let a = &json["attempts"][0];
    assert_eq!(a["status"], "failed");
    assert_eq!(a["check"], "cohort");
    assert_eq!(a["record"], fail.record);
    assert_eq!(json["verified"], false);
}

#[test]
fn a_masked_input_from_another_round_is_named() {
    let f = common::credit_model();
    let mut b = bodies(f);
    let old = find_message(&b, "lender-1", "masked-input", 2);
    let k = find_message(&b, "lender-1", "masked-input", 3);
    let replay = signed_at(&b, old);
    set_participant(&mut b, k, replay);
    let report = verify(&reseal(&b, &f.coordinator_key()), &f.consortium);
    let fail = report.first_failure().expect("a failure");
    assert_eq!((fail.record, fail.check), (k as u64, Check::Binding));
    assert!(
        fail.reason.contains(
            "lender-1's masked-input message is for round 2 attempt 0, but round 3 attempt 0 is open"
        ),
        "{fail}"
    );
}

#[test]
fn an_input_that_does_not_add_up_to_the_published_sum_is_named() {
    // A participant colluding with the coordinator re-signs an altered input:
    // the signatures hold, the recomputed sum does not.
    let f = common::secure_sum();
    let mut b = bodies(f);
    let k = find_message(&b, "bank-c", "masked-input", 0);
    let (mut m, _) = participant_message(&b[k]).expect("message");
    let Some(pb::message::Body::MaskedInput(mi)) = &mut m.body else {
        unreachable!()
    };
    let mut w = words::from_bytes("w", &mi.values).expect("words");
    w[2] = w[2].wrapping_add(1 << 16);
    mi.values = words::to_bytes(&w).into();
    set_participant(&mut b, k, envelope::seal(&f.member_key("bank-c"), &m));
    let report = verify(&reseal(&b, &f.coordinator_key()), &f.consortium);
    eprintln!("{report}");
    let done = find(&b, |e| matches!(e, log_body::Entry::RoundCompleted(_)));
    let fail = report.first_failure().expect("a failure");
    assert_eq!((fail.record, fail.check), (done as u64, Check::Sum));
    assert!(
        fail.reason.contains("the published sum differs from the sum recomputed from the 4 logged masked inputs and 4 reveals (first at word 2 of 5"),
        "{fail}"
    );
}

#[test]
fn a_published_sum_changed_and_re_signed_is_named() {
    let f = common::secure_sum();
    let key = f.coordinator_key();
    let mut b = bodies(f);
    let done = find(&b, |e| matches!(e, log_body::Entry::RoundCompleted(_)));
    let Some(log_body::Entry::RoundCompleted(rc)) = &mut b[done].entry else {
        unreachable!()
    };
    let mut w = words::from_bytes("sum", &rc.sum).expect("words");
    w[0] = w[0].wrapping_add(65536 * 1000);
    rc.sum = words::to_bytes(&w).into();
    // The coordinator signs a matching outcome too.
    let (mut message, _) =
        envelope::open_coordinator(rc.outcome.as_ref().expect("outcome"), &key.public())
            .expect("outcome");
    if let Some(coordinator_message::Body::Outcome(o)) = &mut message.body {
        o.sum = rc.sum.clone();
    }
    rc.outcome = Some(envelope::seal_coordinator(&key, &message));
    let report = verify(&reseal(&b, &key), &f.consortium);
    let fail = report.first_failure().expect("a failure");
    assert_eq!((fail.record, fail.check), (done as u64, Check::Sum));
    assert!(fail.reason.contains("first at word 0 of 5"), "{fail}");
}

#[test]
fn an_altered_published_coefficient_is_caught_by_the_recomputation() {
    let f = common::credit_model();
    let mut b = bodies(f);
    let end = b.len() - 1;
    let Some(log_body::Entry::JobEnded(je)) = &mut b[end].entry else {
        panic!("the last record is JobEnded")
    };
    let mut model: serde_json::Value = serde_json::from_str(&je.model_json).expect("model");
    let c = &mut model["standardized"]["coefficients"][3];
    let v = c.as_f64().expect("number");
    *c = serde_json::json!(v + 1e-9);
    je.model_json = serde_json::to_string(&model).expect("json");
    // Re-signed by the coordinator: chain and signatures all hold.
    let log = reseal(&b, &f.coordinator_key());
    let report = verify(&log, &f.consortium);
    eprintln!("{report}");
    assert_eq!(report.log_end, LogEnd::Clean);
    assert!(!report.ok());
    let fail = report.first_failure().expect("a failure");
    assert_eq!((fail.record, fail.check), (end as u64, Check::Model));
    assert!(
        fail.reason.contains(
            "the published model differs from the model recomputed from the logged sums at standardized.coefficients[3]"
        ),
        "{fail}"
    );
    assert!(matches!(
        report.job_end,
        JobEnd::Ended {
            model_verified: false,
            ..
        }
    ));
}

#[test]
fn an_altered_step_size_is_caught_by_the_recomputation() {
    let f = common::credit_model();
    let mut b = bodies(f);
    let k = find(
        &b,
        |e| matches!(e, log_body::Entry::RoundCompleted(rc) if rc.progress_json.contains("step_max_norm")),
    );
    let Some(log_body::Entry::RoundCompleted(rc)) = &mut b[k].entry else {
        unreachable!()
    };
    let mut p: serde_json::Value = serde_json::from_str(&rc.progress_json).expect("progress");
    p["value"]["step_max_norm"] = serde_json::json!(1e-12);
    rc.progress_json = p.to_string();
    let report = verify(&reseal(&b, &f.coordinator_key()), &f.consortium);
    let fail = report.first_failure().expect("a failure");
    assert_eq!(
        (fail.record, fail.check),
        (k as u64, Check::Progress),
        "{report}"
    );
    assert!(
        fail.reason.contains("value.step_max_norm: published 1e-12"),
        "{fail}"
    );
}

#[test]
fn a_truncated_log_is_reported_as_truncated() {
    let f = common::credit_model();
    let offs = offsets(&f.log);
    let n = offs.len() - 1;
    for k in [1, 5, n / 2, n - 1] {
        let r = record_range(&offs, k);
        for cut in [r.start + 1, r.start + r.len() / 2, r.end - 1] {
            let report = verify(&f.log[..cut], &f.consortium);
            assert!(!report.ok());
            assert!(
                matches!(&report.log_end, LogEnd::Truncated { record, .. } if *record == k as u64),
                "cut at {cut}: {:?}",
                report.log_end
            );
            let text = report.to_string();
            assert!(
                text.contains(&format!("log: TRUNCATED at record {k} (byte {}", r.start)),
                "{text}"
            );
            assert_eq!(report.job_end, JobEnd::Unfinished);
            if k == n / 2 && cut == r.start + r.len() / 2 {
                eprintln!("{text}");
                assert!(
                    report.attempts.iter().any(|a| matches!(&a.status, AttemptStatus::Unfinished { why } if why.contains("truncated"))),
                    "{text}"
                );
            }
        }
    }
    // Cut exactly between records: it reads cleanly, but the job has not ended.
    let report = verify(&f.log[..offs[n / 2] as usize], &f.consortium);
    assert_eq!(report.log_end, LogEnd::Clean);
    assert!(!report.ok());
    assert!(report.to_string().contains("job UNFINISHED"));
}

#[test]
fn a_log_checked_against_another_consortium_fails_at_its_first_record() {
    let f = common::secure_sum();
    // Another coordinator key.
    let mut other = f.consortium.clone();
    let members: Vec<_> = other
        .roster
        .members()
        .map(|m| (m.id.clone(), m.key))
        .collect();
    let impostor = fedcredit_crypto::identity::IdentityKey::from_secret_bytes(&[7; 32]);
    other.roster =
        fedcredit_proto::roster::Roster::new(members.clone(), impostor.public()).expect("roster");
    let report = verify(&f.log, &other);
    assert!(
        matches!(&report.log_end, LogEnd::Broken { record: 0, problem, .. } if problem.contains("signature")),
        "{report}"
    );
    // Another threshold.
    let mut other = f.consortium.clone();
    let t = other.protocol.thresholds;
    let n = other.roster.len();
    other.protocol.thresholds = [t.threshold() + 1, t.threshold().saturating_sub(1)]
        .into_iter()
        .find_map(|x| {
            fedcredit_crypto::secagg::Thresholds::new(n, x, t.max_colluders(), t.min_cohort()).ok()
        })
        .expect("another valid threshold");
    let report = verify(&f.log, &other);
    let fail = report.first_failure().expect("a failure");
    assert_eq!((fail.record, fail.check), (0, Check::JobStarted));
    assert!(
        fail.reason
            .contains(&format!("threshold {}", t.threshold())),
        "{fail}"
    );
    // Another colluder bound: it is in the session id too.
    let mut other = f.consortium.clone();
    other.protocol.thresholds = [t.max_colluders() + 1, t.max_colluders().saturating_sub(1)]
        .into_iter()
        .find_map(|c| {
            fedcredit_crypto::secagg::Thresholds::new(n, t.threshold(), c, t.min_cohort()).ok()
        })
        .unwrap_or(t);
    if other.protocol.thresholds != t {
        let report = verify(&f.log, &other);
        let fail = report.first_failure().expect("a failure");
        assert_eq!((fail.record, fail.check), (0, Check::JobStarted));
        assert!(fail.reason.contains("colluder bound"), "{fail}");
    }
    // Another job spec.
    let mut other = f.consortium.clone();
    if let fedcredit_referee::consortium::JobKind::SecureSum { clip, .. } = &mut other.job.kind {
        *clip = 2e9;
    }
    let report = verify(&f.log, &other);
    let fail = report.first_failure().expect("a failure");
    assert_eq!((fail.record, fail.check), (0, Check::JobStarted));
    assert!(fail.reason.contains("job spec hash"), "{fail}");
}

#[test]
fn a_decoded_record_round_trips() {
    // The re-sealing helper itself changes nothing.
    let f = common::credit_model();
    let b = bodies(f);
    let again = reseal(&b, &f.coordinator_key());
    let report = verify(&again, &f.consortium);
    assert!(report.ok(), "{report}");
    let _ = pb::LogRecord::decode(&again[3..]).is_ok();
}

/// Changes byte `pos` of record `record`'s body (mod the sizes) and
/// re-signs the log; `None` if the change does not decode or changes nothing.
fn re_signed_change(
    f: &Fixture,
    record: usize,
    pos: prop::sample::Index,
    mask: u8,
) -> Option<(usize, usize, Report)> {
    let b = bodies(f);
    let k = 1 + record % (b.len() - 1);
    let mut encoded = b[k].encode_to_vec();
    let p = pos.index(encoded.len());
    encoded[p] ^= mask;
    let changed = LogBody::decode(&encoded[..]).ok()?;
    if changed.entry == b[k].entry {
        return None;
    }
    let mut tampered = b;
    tampered[k] = changed;
    Some((
        k,
        p,
        verify(&reseal(&tampered, &f.coordinator_key()), &f.consortium),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, .. ProptestConfig::default() })]

    /// A dishonest coordinator changes a byte of one record's body and
    /// re-signs the whole log: whatever the change means, the auditor
    /// never panics, and any change to what a record says is found.
    #[test]
    fn re_signed_random_changes_never_pass(record in any::<usize>(), pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let changed = re_signed_change(common::secure_sum(), record, pos, mask);
        prop_assume!(changed.is_some());
        let (k, p, report) = changed.expect("changed");
        prop_assert!(!report.ok(), "record {} byte {} ^ {:#x} went unnoticed\n{}", k, p, mask, report);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, .. ProptestConfig::default() })]

    /// The same on the credit-model log (fewer cases: each replays the model).
    #[test]
    fn re_signed_random_changes_to_a_model_log_never_pass(record in any::<usize>(), pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let changed = re_signed_change(common::credit_model(), record, pos, mask);
        prop_assume!(changed.is_some());
        let (k, p, report) = changed.expect("changed");
        prop_assert!(!report.ok(), "record {} byte {} ^ {:#x} went unnoticed\n{}", k, p, mask, report);
    }
}
