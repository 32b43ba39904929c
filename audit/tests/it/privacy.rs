//! A private job's budget: the auditor recomputes what a real log's
//! published rounds spent, and names a log over budget when a dishonest
//! coordinator announces weaker noise and re-signs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{PRIVATE_EPSILON, bodies, find, reseal};
use fedcredit_audit::{Check, Report, show, verify};
use fedcredit_model::job::ModelTask;
use fedcredit_model::privacy::{PrivacySetting, TaskNoise};
use fedcredit_proto::envelope;
use fedcredit_proto::v1::{coordinator_message, log_body, round_announcement::Task};
use fedcredit_referee::consortium::JobKind;

fn noise_mut(task: &mut ModelTask) -> Option<&mut TaskNoise> {
    match task {
        ModelTask::Moments { noise }
        | ModelTask::CenteredSquares { noise, .. }
        | ModelTask::Newton { noise, .. }
        | ModelTask::Evaluate { noise, .. } => noise.as_mut(),
        ModelTask::Woe { on, .. } => noise_mut(on),
        ModelTask::FedAvg { .. } | ModelTask::Binning { .. } => None,
    }
}

fn privacy_failures(report: &Report) -> Vec<fedcredit_audit::Failure> {
    report
        .failures()
        .into_iter()
        .filter(|f| f.check == Check::PrivacyBudget)
        .collect()
}

#[test]
fn a_private_jobs_log_verifies_and_reports_the_budget_it_spent() {
    let f = common::private_credit_model();
    let report = verify(&f.log, &f.consortium);
    eprintln!("{report}");
    assert!(report.ok(), "{report}");
    let p = report.privacy.expect("a private job reports its budget");
    // Two statistics rounds, two Newton rounds, one evaluation.
    assert_eq!(p.rounds, 5);
    assert_eq!((p.epsilon, p.delta), (PRIVATE_EPSILON, 1e-6));
    assert!(p.epsilon_spent <= PRIVATE_EPSILON * (1.0 + 1e-9), "{p:?}");
    assert!(p.epsilon_spent > 0.9 * PRIVATE_EPSILON, "{p:?}");
    // The coordinator's own accounting, in the published model, agrees.
    let b = bodies(f);
    let Some(log_body::Entry::JobEnded(je)) = &b[b.len() - 1].entry else {
        panic!("the last record is JobEnded")
    };
    let model: serde_json::Value = serde_json::from_str(&je.model_json).expect("model");
    assert_eq!(
        model["privacy"]["rho_spent"],
        serde_json::json!(p.rho_spent)
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(
        json["privacy"]["epsilon"],
        serde_json::json!(PRIVATE_EPSILON)
    );
    assert_eq!(json["privacy"]["delta"], serde_json::json!(1e-6));
    assert_eq!(
        json["privacy"]["epsilon_spent"],
        serde_json::json!(p.epsilon_spent)
    );
    assert_eq!(json["privacy"]["rho_spent"], serde_json::json!(p.rho_spent));
    assert_eq!(json["privacy"]["rounds"], 5);
    let text = report.to_string();
    assert!(text.contains("  privacy: spent (ε = "), "{text}");
    // A job without privacy says null.
    let plain = verify(
        &common::credit_model().log,
        &common::credit_model().consortium,
    );
    assert!(serde_json::to_value(&plain).expect("json")["privacy"].is_null());
    // A private evaluation's curves are read as its metrics are: unscaled,
    // made monotone; their KS is the published model's.
    let events = show(&f.log).expect("timeline").events;
    let curves_ks = events.iter().find_map(|e| match e {
        fedcredit_audit::show::Event::Attempt(a) => a.curves.as_ref().map(|c| c.ks),
        _ => None,
    });
    let model_ks = events.iter().find_map(|e| match e {
        fedcredit_audit::show::Event::JobEnded { model: Some(m), .. } => {
            m.metrics.and_then(|m| m.ks)
        }
        _ => None,
    });
    assert!(curves_ks.is_some());
    assert_eq!(curves_ks, model_ks);
    // The timeline shows each round's noise.
    let timeline = show(&f.log).expect("timeline").to_string();
    assert_eq!(
        timeline.matches("per member (grid 2^-").count(),
        5,
        "{timeline}"
    );
}

#[test]
fn announcements_with_weaker_noise_re_signed_are_named_over_budget() {
    let f = common::private_credit_model();
    let key = f.coordinator_key();
    let mut b = bodies(f);
    // The dishonest coordinator gives the evaluation round a sixteenth of
    // the planned variance, keeps the planned ρ in the task, and re-signs.
    let eval = b
        .iter()
        .rposition(|x| matches!(x.entry, Some(log_body::Entry::Announcement(_))))
        .expect("an announcement");
    let Some(log_body::Entry::Announcement(signed)) = &mut b[eval].entry else {
        unreachable!()
    };
    let (mut message, _) = envelope::open_coordinator(signed, &key.public()).expect("open");
    let Some(coordinator_message::Body::Announce(a)) = &mut message.body else {
        panic!("an announcement")
    };
    let Some(Task::ModelTask(bytes)) = &mut a.task else {
        panic!("a model task")
    };
    let mut task = ModelTask::from_bytes(bytes).expect("task");
    assert_eq!(task.name(), "evaluate");
    let noise = noise_mut(&mut task).expect("a private task");
    noise.sigma2_member /= 16;
    *bytes = task.to_bytes().into();
    *signed = envelope::seal_coordinator(&key, &message);
    let done = eval
        + find(&b[eval..], |e| {
            matches!(e, log_body::Entry::RoundCompleted(_))
        });

    let report = verify(&reseal(&b, &key), &f.consortium);
    eprintln!("{report}");
    assert!(!report.ok());
    let failures = privacy_failures(&report);
    assert!(
        failures
            .iter()
            .any(|f| f.record == done as u64 && f.reason.contains("over the job's ε = 2")),
        "{failures:?}"
    );
    assert!(
        failures.iter().any(|f| f.reason.contains("task states ρ")),
        "the logged ρ is compared, not trusted: {failures:?}"
    );
    let p = report.privacy.expect("privacy");
    assert!(p.epsilon_spent > PRIVATE_EPSILON, "{p:?}");
    let text = report.to_string();
    assert!(text.contains("[privacy-budget]"), "{text}");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["verified"], false);
    assert!(json["privacy"]["epsilon_spent"].as_f64().expect("number") > PRIVATE_EPSILON);
}

#[test]
fn a_log_is_charged_against_the_consortiums_epsilon() {
    let f = common::private_credit_model();
    let mut consortium = f.consortium.clone();
    let JobKind::LogisticRegression(spec) = &mut consortium.job.kind else {
        panic!("a model job")
    };
    let Some(PrivacySetting::Private(p)) = &mut spec.privacy else {
        panic!("a private job")
    };
    p.epsilon = PRIVATE_EPSILON / 4.0;
    let report = verify(&f.log, &consortium);
    assert!(!report.ok());
    let failures = privacy_failures(&report);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].reason.contains("over the job's ε = 0.5"),
        "{failures:?}"
    );
}
