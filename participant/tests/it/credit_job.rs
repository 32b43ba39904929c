//! Four participants, each with a quarter of the German credit data in its
//! own CSV file, answer a `ModelJob`'s rounds through the `Contributor`
//! trait; the vectors are summed element-wise (what secure aggregation
//! yields) and absorbed by the job. The fitted model must equal
//! scikit-learn's on the pooled rows, and the pooled evaluation must agree
//! with exact metrics on the pooled test rows.

use std::path::{Path, PathBuf};

use fedcredit_model::job::{ModelJob, ModelJobSpec, OptimizerKind};
use fedcredit_model::metrics::metrics_exact;
use fedcredit_model::{LabelSpec, Schema};
use fedcredit_participant::contribution::Contributor;
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::load_csv;
use fedcredit_proto::v1::round_announcement::Task;
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/german_credit.csv");
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../model/reference/german_credit_l2_1.json"
);
const PARTIES: usize = 4;
/// Parties 0 and 2 also hold a test file: the last 100 rows of their part.
/// (They stay in the training rows too, so that the fit is the pooled fit
/// on all 1000 rows that the scikit-learn reference is.)
const TEST_ROWS: usize = 100;

struct Setup {
    _dir: tempfile::TempDir,
    schema: Schema,
    train: Vec<PathBuf>,
    test: Vec<Option<PathBuf>>,
}

fn write_csv(path: &Path, header: &[String], rows: &[Vec<String>]) {
    let mut w = csv::Writer::from_path(path).expect("create csv");
    w.write_record(header).expect("write header");
    for r in rows {
        w.write_record(r).expect("write row");
    }
    w.flush().expect("flush");
}

fn setup() -> Setup {
    let mut reader = csv::Reader::from_path(DATA).expect("open german_credit.csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("record").iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 1000);
    let schema = Schema::infer(
        &header,
        &rows,
        LabelSpec::binary("creditability", "bad", "good"),
    )
    .expect("infer schema");

    let dir = tempfile::tempdir().expect("tempdir");
    let n = rows.len();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for k in 0..PARTIES {
        let part = &rows[k * n / PARTIES..(k + 1) * n / PARTIES];
        let path = dir.path().join(format!("party-{k}.csv"));
        write_csv(&path, &header, part);
        train.push(path);
        test.push((k % 2 == 0).then(|| {
            let path = dir.path().join(format!("party-{k}-test.csv"));
            write_csv(&path, &header, &part[part.len() - TEST_ROWS..]);
            path
        }));
    }
    Setup {
        _dir: dir,
        schema,
        train,
        test,
    }
}

fn parties(s: &Setup) -> Vec<CreditData> {
    s.train
        .iter()
        .zip(&s.test)
        .map(|(train, test)| {
            let train = load_csv(train, &s.schema).expect("load train");
            let test = test
                .as_ref()
                .map(|t| load_csv(t, &s.schema).expect("load test"));
            CreditData::new(train, test)
        })
        .collect()
}

/// Runs the job to the end; returns the number of rounds.
fn drive(job: &mut ModelJob, parties: &mut [CreditData]) -> u64 {
    let mut round = 0;
    while let Some(task) = job.next_task() {
        round += 1;
        assert!(round <= 40, "the job does not finish");
        // A scorecard's width changes after its binning round.
        let dimension = task.dimension(job.width());
        let wire = Task::ModelTask(task.to_bytes().into());
        let mut sum = vec![0.0; dimension];
        for c in parties.iter_mut() {
            let v = c
                .contribute(round, &wire, dimension)
                .unwrap_or_else(|e| panic!("round {round} ({}): {e}", task.name()));
            assert_eq!(v.len(), dimension);
            for (s, x) in sum.iter_mut().zip(&v) {
                *s += x;
            }
        }
        job.absorb(&sum)
            .unwrap_or_else(|e| panic!("absorb round {round} ({}): {e}", task.name()));
    }
    round
}

fn spec(schema: Schema, optimizer: OptimizerKind, max_rounds: usize) -> ModelJobSpec {
    ModelJobSpec {
        schema,
        l2: 1.0,
        tol: 1e-8,
        max_rounds,
        optimizer,
        fedavg: Default::default(),
        bins: 10_000,
        privacy: Some(fedcredit_model::privacy::PrivacySetting::None),
        scorecard: None,
    }
}

fn reference() -> Value {
    let text = std::fs::read_to_string(REFERENCE).expect("read reference json");
    serde_json::from_str(&text).expect("parse reference json")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

/// Exact metrics of `model` on all parties' test rows, concatenated.
fn pooled_exact(s: &Setup, model: &fedcredit_model::job::FittedModel) -> fedcredit_model::Metrics {
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for path in s.test.iter().flatten() {
        let d = load_csv(path, &s.schema).expect("load test");
        for (row, y) in d.x.rows().into_iter().zip(&d.y) {
            scores.push(model.probability(&row.to_vec()).expect("score"));
            labels.push(*y);
        }
    }
    assert_eq!(scores.len(), 2 * TEST_ROWS);
    metrics_exact(&scores, &labels).expect("exact metrics")
}

#[test]
fn four_csv_parties_reach_the_sklearn_model() {
    let s = setup();
    let mut parties = parties(&s);
    assert_eq!(
        parties.iter().map(CreditData::train_rows).sum::<usize>(),
        1000
    );
    let mut job = ModelJob::new(
        spec(s.schema.clone(), OptimizerKind::Newton, 25),
        "german-credit",
        "test",
        fedcredit_model::privacy::NoiseCohort::single(),
    )
    .expect("job");
    let rounds = drive(&mut job, &mut parties);
    let model = job.model().expect("the job is done");

    // Newton converged quickly: moments, centered squares, k Newton, evaluate.
    assert!(model.converged);
    assert!(model.rounds <= 10, "{} Newton rounds", model.rounds);
    assert_eq!(rounds, model.rounds as u64 + 3);

    // Against scikit-learn's LogisticRegression(C = 1) on the pooled rows.
    let reference = reference();
    let coefs = reference["coefficients"].as_array().expect("coefficients");
    assert_eq!(model.features.len(), coefs.len());
    let mut diff = (model.standardized.intercept - f(&reference["intercept"])).abs();
    for (j, c) in coefs.iter().enumerate() {
        assert_eq!(model.features[j], c["name"].as_str().expect("name"));
        diff = diff.max((model.standardized.coefficients[j] - f(&c["coef"])).abs());
    }
    eprintln!(
        "{} Newton rounds; max |β − β_sklearn| = {diff:.3e}",
        model.rounds
    );
    assert!(diff < 1e-5, "max abs diff vs sklearn {diff:e}");

    // The pooled evaluation (histograms summed over parties 0 and 2) agrees
    // with exact metrics on their concatenated test rows.
    let pooled = model.metrics.expect("pooled metrics");
    let exact = pooled_exact(&s, model);
    let (auc_p, auc_e) = (
        pooled.auc.expect("pooled auc"),
        exact.auc.expect("exact auc"),
    );
    eprintln!(
        "pooled AUC {auc_p:.6} exact {auc_e:.6}; KS {:?} {:?}; log-loss {:.6} {:.6}",
        pooled.ks, exact.ks, pooled.logloss, exact.logloss
    );
    assert_eq!(pooled.n, exact.n);
    assert!((auc_p - auc_e).abs() < 1e-3);
    assert!((pooled.logloss - exact.logloss).abs() < 1e-9);
    assert!((pooled.default_rate - exact.default_rate).abs() < 1e-12);

    // Each party with a test file kept its own exact metrics; the others none.
    for (k, party) in parties.iter().enumerate() {
        match (&s.test[k], party.local_metrics()) {
            (Some(path), Some(local)) => {
                let d = load_csv(path, &s.schema).expect("load test");
                let scores: Vec<f64> =
                    d.x.rows()
                        .into_iter()
                        .map(|r| model.probability(&r.to_vec()).expect("score"))
                        .collect();
                let own = metrics_exact(&scores, &d.y.to_vec()).expect("exact");
                assert_eq!(local.n, TEST_ROWS as f64);
                assert!((local.auc.expect("auc") - own.auc.expect("auc")).abs() < 1e-9);
                assert!((local.logloss - own.logloss).abs() < 1e-9);
            }
            (None, None) => {}
            (test, local) => panic!("party {k}: test file {test:?}, local metrics {local:?}"),
        }
    }
}

#[test]
fn four_csv_parties_run_fedavg_rounds() {
    let s = setup();
    let mut parties = parties(&s);
    let mut job = ModelJob::new(
        spec(s.schema.clone(), OptimizerKind::Fedavg, 3),
        "german-credit-fedavg",
        "test",
        fedcredit_model::privacy::NoiseCohort::single(),
    )
    .expect("job");
    let rounds = drive(&mut job, &mut parties);
    let model = job.model().expect("the job is done");
    assert_eq!((rounds, model.rounds), (6, 3));
    assert!(!model.converged);
    assert!(
        model
            .standardized
            .coefficients
            .iter()
            .all(|c| c.is_finite())
    );
    let auc = model.metrics.expect("metrics").auc.expect("auc");
    eprintln!("FedAvg, 3 rounds: pooled AUC {auc:.4}");
    assert!(auc > 0.7, "{auc}");
}

/// A scorecard spec over the German credit data: bounds from the pooled
/// rows' ranges (public in this test), default binning and points.
fn scorecard_spec(s: &Setup) -> ModelJobSpec {
    let all = load_csv(Path::new(DATA), &s.schema).expect("load all rows");
    let mut bounds = std::collections::BTreeMap::new();
    let mut col = 0;
    for f in &s.schema.features {
        if let fedcredit_model::Feature::Numeric { name } = f {
            let c = all.x.column(col);
            let low = c.iter().copied().fold(f64::INFINITY, f64::min);
            let high = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            bounds.insert(name.clone(), [low, high.max(low + 1.0)]);
        }
        col += f.encoded_width();
    }
    let toml = format!(
        "bounds = {{ {} }}",
        bounds
            .iter()
            .map(|(k, [lo, hi])| format!("\"{k}\" = [{lo:?}, {hi:?}]"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut spec = spec(s.schema.clone(), OptimizerKind::Newton, 25);
    spec.scorecard = Some(toml::from_str(&toml).expect("scorecard table"));
    spec.validate().expect("valid scorecard spec");
    spec
}

#[test]
fn a_federated_scorecard_equals_the_one_on_the_pooled_rows() {
    let s = setup();
    let spec = scorecard_spec(&s);
    let run = |parties: &mut [CreditData]| {
        let mut job = ModelJob::new(
            spec.clone(),
            "scorecard",
            "test",
            fedcredit_model::privacy::NoiseCohort::single(),
        )
        .expect("job");
        assert_eq!(
            job.next_task().map(|t| t.name()),
            Some("binning"),
            "a scorecard starts with its binning round"
        );
        let rounds = drive(&mut job, parties);
        (job.model().expect("done").clone(), rounds)
    };
    let (federated, rounds) = run(&mut parties(&s));
    // One party holding every row: the pooled computation.
    let all = load_csv(Path::new(DATA), &s.schema).expect("load all rows");
    let (pooled, _) = run(&mut [CreditData::new(all, None)]);

    // binning, moments, centered squares, Newton steps, evaluation.
    assert_eq!(rounds, federated.rounds as u64 + 4);
    let (f, p) = (
        federated.scorecard.as_ref().expect("federated scorecard"),
        pooled.scorecard.as_ref().expect("pooled scorecard"),
    );
    assert_eq!(f.characteristics.len(), s.schema.features.len());
    assert_eq!(federated.features.len(), s.schema.features.len());
    let mut worst = 0.0f64;
    for (a, b) in f.characteristics.iter().zip(&p.characteristics) {
        assert_eq!(a.name, b.name);
        // The bins, counts, WOE and IV come from the pooled counts alone,
        // which secure aggregation sums exactly: bit for bit the same.
        assert_eq!(a.iv, b.iv, "{}", a.name);
        assert_eq!(a.bins.len(), b.bins.len(), "{}", a.name);
        for (x, y) in a.bins.iter().zip(&b.bins) {
            assert_eq!(
                (&x.values, x.good, x.bad, x.woe),
                (&y.values, y.good, y.bad, y.woe)
            );
            worst = worst.max((x.points - y.points).abs());
        }
    }
    // The fit on WOE sums the same rows in other groupings.
    assert!(worst < 1e-6, "points differ by {worst:e}");
    assert!(
        f.characteristics.iter().any(|c| c.iv > 0.1),
        "some characteristic is predictive"
    );
    // Every applicant's points are Offset + Factor·ln(odds of good).
    let rows = load_csv(Path::new(DATA), &s.schema).expect("rows");
    for r in rows.x.rows().into_iter().take(50) {
        let a = f.assess(&r.to_vec()).expect("assess");
        let logit = (a.probability / (1.0 - a.probability)).ln();
        assert!((a.points - (f.offset - f.factor * logit)).abs() < 1e-6);
    }
    // Held-out rows were scored on their WOE encoding.
    assert_eq!(federated.metrics.expect("pooled metrics").n, 200.0);
}

#[test]
fn a_participant_refuses_a_second_set_of_bins() {
    let s = setup();
    let mut job = ModelJob::new(
        scorecard_spec(&s),
        "scorecard",
        "test",
        fedcredit_model::privacy::NoiseCohort::single(),
    )
    .expect("job");
    let mut parties = parties(&s);
    let task = job.next_task().expect("binning");
    let dimension = task.dimension(job.width());
    let wire = Task::ModelTask(task.to_bytes().into());
    let mut sum = vec![0.0; dimension];
    for c in parties.iter_mut() {
        let v = c.contribute(1, &wire, dimension).expect("binning");
        for (s, x) in sum.iter_mut().zip(&v) {
            *s += x;
        }
    }
    job.absorb(&sum).expect("absorb binning");
    let task = job.next_task().expect("moments on WOE");
    let dimension = task.dimension(job.width());
    parties[0]
        .contribute(2, &Task::ModelTask(task.to_bytes().into()), dimension)
        .expect("moments");
    // A coordinator that announces other bins (to re-encode the rows under
    // a second WOE) is refused.
    let fedcredit_model::job::ModelTask::Woe {
        schema,
        mut binnings,
        on,
    } = task
    else {
        panic!("a WOE task");
    };
    binnings[0].bins[0].woe += 1.0;
    let other = fedcredit_model::job::ModelTask::Woe {
        schema,
        binnings,
        on,
    };
    let err = parties[0]
        .contribute(3, &Task::ModelTask(other.to_bytes().into()), dimension)
        .expect_err("other bins are refused");
    assert!(err.contains("WOE bins differ"), "{err}");
}
