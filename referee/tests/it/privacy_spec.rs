//! A credit-model job states its privacy, and the consortium file is refused
//! when the privacy setting is missing or plans more than its budget.

use std::path::Path;

use fedcredit_model::job::ModelTask;
use fedcredit_proto::v1::round_announcement::Task;
use fedcredit_referee::Referee;
use fedcredit_referee::consortium::Consortium;

/// The fuzzing seed of a small private credit job (ε = 1, δ = 1e-6).
const PRIVATE: &str = include_str!("../../../fuzz/seeds/consortium_toml/credit-private.toml");

fn parse(text: &str) -> Result<Consortium, String> {
    Consortium::parse(Path::new("consortium.toml"), text).map_err(|e| e.to_string())
}

#[test]
fn a_private_job_plans_noisy_rounds_in_the_noise_codec() {
    let c = parse(PRIVATE).expect("the private seed parses");
    let referee = Referee::new(&c).expect("the job fits its budget");
    let plan = referee.next_plan().expect("a first round");
    let Task::ModelTask(bytes) = &plan.task else {
        panic!("a model task")
    };
    let task = ModelTask::from_bytes(bytes).expect("task");
    let noise = task
        .noise()
        .expect("the first round of a private job is noisy");
    let (fp, _) = plan.codec.to_pb();
    assert_eq!(
        fp.frac_bits, noise.grid_bits,
        "values and noise share one grid"
    );
    assert_eq!(noise.recompute_rho().expect("rho"), noise.rho);
}

#[test]
fn a_job_without_a_privacy_setting_is_refused_naming_both_ways() {
    let (start, end) = (
        PRIVATE.find("[job.privacy]").expect("fixture"),
        PRIVATE.find("[job.schema.label]").expect("fixture"),
    );
    let text = format!("{}{}", &PRIVATE[..start], &PRIVATE[end..]);
    let e = parse(&text)
        .and_then(|c| Referee::new(&c).map(|_| ()).map_err(|e| e.to_string()))
        .expect_err("no privacy setting");
    assert!(
        e.contains("[job.privacy]") && e.contains("privacy = \"none\""),
        "{e}"
    );
}

#[test]
fn a_job_whose_rounds_exceed_its_budget_is_refused() {
    let text = PRIVATE.replace(
        "split = { statistics = 0.2, training = 0.6, evaluation = 0.2 }",
        "split = { statistics = 0.2, training = 0.7, evaluation = 0.2 }",
    );
    assert_ne!(text, PRIVATE, "the fixture has the split line");
    let e = parse(&text)
        .and_then(|c| Referee::new(&c).map(|_| ()).map_err(|e| e.to_string()))
        .expect_err("over budget");
    assert!(e.contains("would spend more than the budget"), "{e}");
}

#[test]
fn bounds_must_cover_every_numeric_feature() {
    let text = PRIVATE.replace("duration_in_month = [0, 72]\n", "");
    let e = parse(&text)
        .and_then(|c| Referee::new(&c).map(|_| ()).map_err(|e| e.to_string()))
        .expect_err("no bounds");
    assert!(
        e.contains("`duration_in_month` has no public bounds"),
        "{e}"
    );
}
