//! `fedcredit demo`: the whole story on the bundled German credit data.
//! Three banks and a platform hold different slices of the applicants
//! (different sizes and default rates); they train one model by secure
//! aggregation over loopback gRPC, and the joint model is set beside the
//! model each bank could train on its own rows alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fedcredit_model::job::ModelJobSpec;
use fedcredit_model::logistic::newton::fit_newton_central;
use fedcredit_model::logistic::predict_proba;
use fedcredit_model::metrics::metrics_exact;
use fedcredit_model::privacy::{PrivacySetting, PrivacySpec};
use fedcredit_model::scorecard::ScorecardSpec;
use fedcredit_model::stats::local_moments;
use fedcredit_model::{LabelSpec, Schema, Standardizer};
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::{Dataset, load_csv};
use ndarray::{Array1, Array2, Axis, concatenate};
use rand::{Rng, SeedableRng};

use crate::credit::{self, Party, fmt_opt};
use crate::progress::RoundProgress;
use crate::say;

/// The bundled data set (UCI Statlog German credit, CC BY 4.0).
const GERMAN_CREDIT: &str = include_str!("../../data/german_credit.csv");

/// (id, share of good applicants, share of bad applicants): the platform and
/// the small bank see riskier borrowers than the large bank.
const PARTIES: [(&str, f64, f64); 4] = [
    ("bank-a", 0.42, 0.22),
    ("bank-b", 0.25, 0.22),
    ("bank-c", 0.11, 0.22),
    ("platform", 0.22, 0.34),
];

/// ε of the demo's private job when none is given.
pub const DEFAULT_EPSILON: f64 = 8.0;

/// Public bounds of the German credit numeric features, as a consortium would
/// fix them from the product's terms (never read from the rows).
const BOUNDS: [(&str, [f64; 2]); 7] = [
    ("duration_in_month", [0.0, 72.0]),
    ("credit_amount", [0.0, 20_000.0]),
    (
        "installment_rate_in_percentage_of_disposable_income",
        [1.0, 4.0],
    ),
    ("present_residence_since", [1.0, 4.0]),
    ("age_in_years", [18.0, 80.0]),
    ("number_of_existing_credits_at_this_bank", [1.0, 4.0]),
    (
        "number_of_people_being_liable_to_provide_maintenance_for",
        [1.0, 2.0],
    ),
];

/// The demo's privacy setting: (ε, δ) over the public bounds, or none.
fn privacy(schema: &Schema, budget: Option<(f64, f64)>) -> Result<PrivacySetting> {
    let Some((epsilon, delta)) = budget else {
        return Ok(PrivacySetting::None);
    };
    let mut bounds = std::collections::BTreeMap::new();
    for f in &schema.features {
        if let fedcredit_model::Feature::Numeric { name } = f {
            let b = BOUNDS
                .iter()
                .find(|(n, _)| n == name)
                .with_context(|| format!("no public bounds for the numeric feature `{name}`"))?;
            bounds.insert(name.clone(), b.1);
        }
    }
    Ok(PrivacySetting::Private(Box::new(
        PrivacySpec::with_defaults(epsilon, delta, bounds),
    )))
}

/// Runs the demo; keeps its files in `dir` (default: a fresh temporary
/// folder). `budget` is the private job's (ε, δ); `None` trains exactly.
pub async fn run(dir: Option<PathBuf>, budget: Option<(f64, f64)>) -> Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("fedcredit-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = split(&dir)?;

    let label = LabelSpec::binary("creditability", "bad", "good");
    let schema = {
        let mut reader = csv::Reader::from_reader(GERMAN_CREDIT.as_bytes());
        let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.map(|r| r.iter().map(str::to_owned).collect()))
            .collect::<Result<_, _>>()?;
        Schema::infer(&header, &rows, label)?
    };
    let spec = ModelJobSpec {
        schema: schema.clone(),
        l2: 1.0,
        tol: 1e-8,
        max_rounds: 25,
        optimizer: Default::default(),
        fedavg: Default::default(),
        bins: fedcredit_model::metrics::DEFAULT_BINS,
        privacy: Some(privacy(&schema, budget)?),
        scorecard: None,
    };

    say(
        "fedcredit demo: one credit-risk model, trained across 3 banks and 1 platform that never share rows",
    );
    say(&format!(
        "  data: German credit (1,000 applicants, {} encoded features), split non-IID:",
        schema.encoded_width()
    ));
    let mut parties = Vec::new();
    let mut tests = Vec::new();
    let mut trains = Vec::new();
    for ((id, _, _), (train_path, test_path)) in PARTIES.iter().zip(&files) {
        let train = load_csv(train_path, &schema)?;
        let test = load_csv(test_path, &schema)?;
        say(&format!(
            "    {id:<9} {:>4} training rows (default rate {:.1}%), {:>3} held out",
            train.y.len(),
            100.0 * train.y.mean().unwrap_or(0.0),
            test.y.len()
        ));
        trains.push(load_csv(train_path, &schema)?);
        tests.push(load_csv(test_path, &schema)?);
        parties.push(Party {
            id: (*id).to_owned(),
            data: CreditData::new(train, Some(test)),
        });
    }
    say("  secure aggregation rounds (each party sends only masked sums; progress on stderr)");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let log_path = out.join("rounds.log");
    let progress = RoundProgress::start(spec.planned_rounds());
    let outcome = credit::run(
        "german-credit-demo",
        spec,
        parties,
        &log_path,
        progress.reporter(),
    )
    .await?;
    drop(progress);
    credit::write_outputs(&out, &outcome)?;

    // The comparison the consortium cares about: every model on the same
    // pooled held-out applicants. (Only this demo, which holds every slice,
    // can compute it; in production each bank sees only its own.)
    let test_x = concatenate(
        Axis(0),
        &tests.iter().map(|t| t.x.view()).collect::<Vec<_>>(),
    )?;
    let test_y = concatenate(
        Axis(0),
        &tests.iter().map(|t| t.y.view()).collect::<Vec<_>>(),
    )?;
    say(&format!("  on all {} held-out applicants:", test_y.len()));
    say(&format!("    {:<34} {:>7} {:>7}", "model", "AUC", "KS"));
    let pooled = outcome.model.metrics;
    say(&format!(
        "    {:<34} {:>7} {:>7}",
        "joint model (secure pooled metrics)",
        fmt_opt(pooled.and_then(|m| m.auc)),
        fmt_opt(pooled.and_then(|m| m.ks))
    ));
    if outcome.model.privacy.is_some() {
        // The published metrics are noisy; this demo, which holds every
        // slice, can also score the private model exactly.
        let scores = test_x
            .rows()
            .into_iter()
            .map(|r| outcome.model.probability(&r.to_vec()))
            .collect::<Result<Vec<f64>, _>>()?;
        let exact = metrics_exact(&scores, &test_y.to_vec())?;
        say(&format!(
            "    {:<34} {:>7} {:>7}",
            "joint model (exact; demo only)",
            fmt_opt(exact.auc),
            fmt_opt(exact.ks)
        ));
    }
    say(&format!("    {}", credit::describe_privacy(&outcome.model)));
    if let Some(c) = &outcome.model.calibration {
        say(&format!("    {}", credit::describe_calibration(c)));
    }
    for ((id, _, _), train) in PARTIES.iter().zip(&trains) {
        if id.starts_with("platform") {
            continue;
        }
        let (auc, ks) = alone(train, &test_x, &test_y, 1.0)?;
        say(&format!(
            "    {:<34} {:>7} {:>7}",
            format!("{id} alone (its own rows only)"),
            fmt_opt(auc),
            fmt_opt(ks)
        ));
    }
    say(&format!("  round log: {}", log_path.display()));
    say(&format!(
        "  check it: fedcredit audit verify {} --consortium {}",
        log_path.display(),
        out.join("consortium.toml").display()
    ));
    say(&format!("  model:   {}", out.join("model.json").display()));
    say(&format!(
        "  metrics: {}",
        out.join("metrics.json").display()
    ));
    scorecard(&dir, &schema, &files, &test_x).await
}

/// The second job: a points scorecard, binned from securely summed
/// per-label histograms over the public bounds; then its strongest
/// characteristics and three held-out applicants' points and reasons.
async fn scorecard(
    dir: &Path,
    schema: &Schema,
    files: &[(PathBuf, PathBuf)],
    test_x: &Array2<f64>,
) -> Result<()> {
    let bounds = BOUNDS
        .iter()
        .map(|(n, b)| ((*n).to_owned(), *b))
        .collect::<std::collections::BTreeMap<_, _>>();
    let spec = ModelJobSpec {
        schema: schema.clone(),
        l2: 1.0,
        tol: 1e-8,
        max_rounds: 25,
        optimizer: Default::default(),
        fedavg: Default::default(),
        bins: fedcredit_model::metrics::DEFAULT_BINS,
        privacy: Some(PrivacySetting::None),
        scorecard: Some(ScorecardSpec::with_bounds(bounds)),
    };
    say("");
    say(
        "fedcredit demo, part 2: a points scorecard (kind = \"scorecard\"): bins from securely \
         summed per-label histograms, then Newton rounds on WOE",
    );
    say(
        "  (exact job: the pooled bin counts are published without noise; private binning is \
         not built)",
    );
    let mut parties = Vec::new();
    for ((id, _, _), (train, test)) in PARTIES.iter().zip(files) {
        parties.push(Party {
            id: (*id).to_owned(),
            data: CreditData::new(load_csv(train, schema)?, Some(load_csv(test, schema)?)),
        });
    }
    let out = dir.join("scorecard");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let log_path = out.join("rounds.log");
    let progress = RoundProgress::start(spec.planned_rounds());
    let outcome = credit::run(
        "german-credit-scorecard",
        spec,
        parties,
        &log_path,
        progress.reporter(),
    )
    .await?;
    drop(progress);
    credit::write_outputs(&out, &outcome)?;
    let model = &outcome.model;
    let card = model
        .scorecard
        .as_ref()
        .context("internal: the scorecard job published no scorecard")?;
    if let Some(m) = model.metrics {
        say(&format!(
            "  pooled held-out metrics: AUC {}  KS {}",
            fmt_opt(m.auc),
            fmt_opt(m.ks)
        ));
    }
    say(&format!(
        "  points: {} at {}:1 good:bad, {} points to double the odds; strongest characteristics:",
        card.base_score, card.base_odds, card.pdo
    ));
    for c in card.by_iv().into_iter().take(5) {
        say(&format!(
            "    IV {:.3}  {} ({} bins)",
            c.iv,
            c.name,
            c.bins.len()
        ));
    }
    // Three held-out applicants: the best, the median and the worst score.
    let mut assessed = test_x
        .rows()
        .into_iter()
        .map(|r| card.assess(&r.to_vec()))
        .collect::<Result<Vec<_>, _>>()?;
    assessed.sort_by(|a, b| b.points.total_cmp(&a.points));
    say("  three held-out applicants (best, median, worst score):");
    for a in [
        &assessed[0],
        &assessed[assessed.len() / 2],
        &assessed[assessed.len() - 1],
    ] {
        let reasons: Vec<&str> = a
            .reasons
            .iter()
            .map(|&j| card.characteristics[j].name.as_str())
            .collect();
        say(&format!(
            "    {:>4.0} points, P(default) {:.2}; reasons: {}",
            a.points,
            a.probability,
            if reasons.is_empty() {
                "none (best bin everywhere)".to_owned()
            } else {
                reasons.join(", ")
            }
        ));
    }
    say(&format!(
        "  scorecard: {}; score applicants: fedcredit score --model {} --data FILE",
        out.join("model.json").display(),
        out.join("model.json").display()
    ));
    say(&format!(
        "  check it: fedcredit audit verify {} --consortium {}",
        log_path.display(),
        out.join("consortium.toml").display()
    ));
    // The regulator report: checked against the verified log, then signed
    // by the coordinator key.
    let report = out.join("report.html");
    crate::report::write(
        &crate::report::Paths {
            model: &out.join("model.json"),
            log: &log_path,
            consortium: &out.join("consortium.toml"),
            job: None,
            monitor: None,
        },
        &out.join("coordinator.key"),
        &report,
    )?;
    say(&format!(
        "  regulator report: {} (open it in a browser; check its signature: fedcredit report \
         verify {} --consortium {})",
        report.display(),
        report.display(),
        out.join("consortium.toml").display()
    ));
    Ok(())
}

/// A bank's own model: standardized and fitted on its rows alone, scored on the pooled test rows.
fn alone(
    train: &Dataset,
    test_x: &Array2<f64>,
    test_y: &Array1<f64>,
    l2: f64,
) -> Result<(Option<f64>, Option<f64>)> {
    let p = train.x.ncols();
    let standardizer = Standardizer::from_moments(&local_moments(train.x.view()), p)?;
    let mut x = train.x.clone();
    standardizer.apply(&mut x)?;
    let fit = fit_newton_central(x.view(), train.y.view(), l2, 1e-8, 50)?;
    let mut tx = test_x.clone();
    standardizer.apply(&mut tx)?;
    let scores = predict_proba(tx.view(), &fit.beta)?;
    let m = metrics_exact(
        scores.as_slice().context("contiguous scores")?,
        test_y.as_slice().context("contiguous labels")?,
    )?;
    Ok((m.auc, m.ks))
}

/// Writes each party's training and held-out CSV files; returns their paths.
fn split(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut lines = GERMAN_CREDIT.lines();
    let header = lines.next().context("the bundled data set is empty")?;
    let label_col = header
        .split(',')
        .position(|c| c == "creditability")
        .context("no label column")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261122);
    let mut out: Vec<(Vec<&str>, Vec<&str>)> =
        PARTIES.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for line in lines {
        // The label is the last field and never quoted in this file.
        let bad = line.rsplit(',').next() == Some("bad");
        debug_assert!(label_col > 0);
        let draw: f64 = rng.r#gen();
        let mut acc = 0.0;
        let mut who = PARTIES.len() - 1;
        for (i, (_, good_share, bad_share)) in PARTIES.iter().enumerate() {
            acc += if bad { bad_share } else { good_share };
            if draw < acc {
                who = i;
                break;
            }
        }
        if rng.gen_bool(0.25) {
            out[who].1.push(line);
        } else {
            out[who].0.push(line);
        }
    }
    let mut paths = Vec::new();
    for ((id, _, _), (train, test)) in PARTIES.iter().zip(out) {
        let train_path = dir.join(format!("{id}.csv"));
        let test_path = dir.join(format!("{id}-holdout.csv"));
        for (path, rows) in [(&train_path, train), (&test_path, test)] {
            let mut text = String::with_capacity(rows.len() * 300);
            text.push_str(header);
            text.push('\n');
            for r in rows {
                text.push_str(r);
                text.push('\n');
            }
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        paths.push((train_path, test_path));
    }
    Ok(paths)
}
