//! Real logs of finished jobs verify, and show as a timeline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use fedcredit_audit::show::Event;
use fedcredit_audit::{AttemptStatus, JobEnd, LogEnd, show, verify};

#[test]
fn a_secure_sum_log_verifies() {
    let f = common::secure_sum();
    let report = verify(&f.log, &f.consortium);
    eprintln!("{report}");
    assert!(report.ok(), "{report}");
    assert!(report.verified);
    assert_eq!(report.log_end, LogEnd::Clean);
    assert_eq!(report.attempts.len(), 1);
    match &report.attempts[0].status {
        AttemptStatus::Ok {
            contributors,
            dropped,
            ..
        } => {
            assert_eq!(contributors, &["bank-a", "bank-b", "bank-c", "bank-d"]);
            assert!(dropped.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(report.job_end, JobEnd::Ended { ok: true, .. }));
    let text = report.to_string();
    assert!(
        text.contains("round 0 attempt 0: OK, 4 contributors"),
        "{text}"
    );
    assert!(
        text.ends_with("result: VERIFIED (1 round attempt: 1 OK)"),
        "{text}"
    );
    let json = serde_json::to_value(&report).expect("json");
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&json["attempts"]).expect("json")
    );
    assert_eq!(json["verified"], true);
    let a = &json["attempts"][0];
    assert_eq!(a["status"], "ok");
    assert_eq!(a["announcement"], 2);
    assert_eq!(a["record"], 28);
    assert_eq!(a["contributors"][3], "bank-d");
    assert_eq!(json["log_end"]["end"], "clean");
    assert_eq!(json["job_end"]["state"], "ended");
}

#[test]
fn a_credit_model_log_verifies_to_the_published_model() {
    let f = common::credit_model();
    let start = std::time::Instant::now();
    let report = verify(&f.log, &f.consortium);
    eprintln!(
        "{report}\n({} bytes verified in {:?})",
        f.log.len(),
        start.elapsed()
    );
    assert!(report.ok(), "{report}");
    // Moments, centered squares, some Newton steps, the evaluation.
    assert!(report.attempts.len() >= 4, "{report}");
    assert!(
        report
            .attempts
            .iter()
            .all(|a| matches!(a.status, AttemptStatus::Ok { .. })),
        "{report}"
    );
    assert!(
        matches!(
            report.job_end,
            JobEnd::Ended {
                ok: true,
                model_verified: true,
                ..
            }
        ),
        "{report}"
    );
}

#[test]
fn show_prints_the_timeline() {
    let f = common::credit_model();
    let timeline = show(&f.log).expect("a round log");
    let text = timeline.to_string();
    eprintln!("{text}");
    assert!(
        text.starts_with("job \"german-credit-test\": logistic-regression (newton optimizer), 3 members: lender-1, lender-2, lender-3"),
        "{text}"
    );
    assert!(text.contains("coordinator started"), "{text}");
    assert!(text.contains("moments task"), "{text}");
    assert!(text.contains("step max-norm"), "{text}");
    assert!(text.contains("pooled metrics: AUC"), "{text}");
    assert!(text.contains("job ended ok"), "{text}");
    let json = serde_json::to_value(&timeline).expect("json");
    assert_eq!(json["job"]["members"][2], "lender-3");
    // The evaluation round carries the pooled curves, drawn from its
    // published histograms: their KS is the published model's.
    let attempts: Vec<_> = timeline
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Attempt(a) => Some(a),
            _ => None,
        })
        .collect();
    let model_ks = timeline.events.iter().find_map(|e| match e {
        Event::JobEnded { model: Some(m), .. } => m.metrics.and_then(|m| m.ks),
        _ => None,
    });
    let with_curves: Vec<_> = attempts.iter().filter(|a| a.curves.is_some()).collect();
    assert_eq!(with_curves.len(), 1, "only the evaluation round");
    assert_eq!(with_curves[0].task, "evaluate");
    let curves = with_curves[0].curves.as_ref().expect("curves");
    assert_eq!(Some(curves.ks), model_ks);
    assert_eq!(curves.roc.last(), Some(&[1.0, 1.0]));
    // Phase closes are timed, in order, from the announcement on.
    for a in &attempts {
        let mut last = a.opened_unix_ms;
        for p in &a.phases {
            let at = p.closed_unix_ms.expect("closed");
            assert!(at >= last, "{a:?}");
            last = at;
        }
        assert!(a.ended_unix_ms.expect("ended") >= last);
    }

    let f = common::secure_sum();
    let text = show(&f.log).expect("a round log").to_string();
    eprintln!("{text}");
    assert!(
        text.contains("round 0 attempt 0: secure-sum task, 5 values"),
        "{text}"
    );
    assert!(
        text.contains("unmask             bank-a, bank-b, bank-c, bank-d"),
        "{text}"
    );
}

#[test]
fn show_refuses_what_is_not_a_round_log() {
    let err = show(b"").expect_err("empty");
    assert!(err.to_string().contains("no record"), "{err}");
    let err = show(b"\x05hello world").expect_err("garbage");
    assert!(err.to_string().contains("no record"), "{err}");
}
