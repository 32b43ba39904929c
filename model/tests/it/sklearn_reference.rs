//! Exactness: the federated Newton fit on the German credit data, split into
//! four contiguous parties and combined only through element-wise sums (what
//! secure aggregation yields), equals scikit-learn's
//! `LogisticRegression(C = 1/l2)` on the pooled standardized rows.
//!
//! The reference is `model/reference/german_credit_l2_1.json`, produced by
//! `python3 model/reference/sklearn_reference.py` from the workspace root.

use fedcredit_model::logistic::{
    NewtonTerms, fit_newton_central, local_newton_terms, newton_step, newton_terms_len,
};
use fedcredit_model::rows::{rows1, rows2};
use fedcredit_model::stats::{
    Standardizer, local_centered_squares, local_moments, local_sums, mean_from_sums,
};
use fedcredit_model::{Encoder, Feature, LabelSpec, Schema};
use ndarray::{Array1, Array2};
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/german_credit.csv");
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/reference/german_credit_l2_1.json"
);
const PARTIES: usize = 4;
const TOL: f64 = 1e-8;

fn add_into(acc: &mut [f64], v: &[f64]) {
    assert_eq!(acc.len(), v.len());
    for (a, b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}

struct Loaded {
    schema: Schema,
    x: Array2<f64>,
    y: Array1<f64>,
}

fn load() -> Loaded {
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

    // The category lists are the sorted unique values, reference = first,
    // which is exactly what `Schema::infer` does.
    let schema = Schema::infer(
        &header,
        &rows,
        LabelSpec::binary("creditability", "bad", "good"),
    )
    .expect("infer schema");
    let numeric = schema
        .features
        .iter()
        .filter(|f| matches!(f, Feature::Numeric { .. }))
        .count();
    assert_eq!((schema.features.len(), numeric), (20, 7));

    let encoder = Encoder::new(&schema, &header).expect("encoder");
    let mut x = Array2::<f64>::zeros((rows.len(), encoder.width()));
    let mut y = Array1::<f64>::zeros(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let row = x.row_mut(i).into_slice().expect("standard layout");
        y[i] = encoder
            .encode_into(r, row)
            .unwrap_or_else(|e| panic!("{DATA}:{}: {e}", i + 2));
    }
    Loaded { schema, x, y }
}

fn reference() -> Value {
    let text = std::fs::read_to_string(REFERENCE).expect("read reference json");
    serde_json::from_str(&text).expect("parse reference json")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

#[test]
fn federated_newton_matches_sklearn_and_central_fit() {
    let Loaded { schema, x, y } = load();
    let reference = reference();
    let l2 = f(&reference["l2"]);
    assert_eq!(l2, 1.0);

    // Same encoding as the script: features, category lists, column names.
    let ref_features: Vec<Feature> =
        serde_json::from_value(reference["features"].clone()).expect("features");
    assert_eq!(schema.features, ref_features);
    let coefs = reference["coefficients"].as_array().expect("coefficients");
    let names: Vec<String> = coefs
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(schema.encoded_names(), names);
    let p = names.len();
    assert_eq!(p, 48);
    assert_eq!(y.sum(), f(&reference["n_positive"]));

    let n = x.nrows();
    let bounds: Vec<usize> = (0..=PARTIES).map(|k| k * n / PARTIES).collect();
    let range = |k: usize| bounds[k]..bounds[k + 1];

    // Statistics round: each party's moments, summed.
    let mut moments = vec![0.0; 1 + 2 * p];
    for k in 0..PARTIES {
        add_into(&mut moments, &local_moments(rows2(x.view(), range(k))));
    }
    let standardizer = Standardizer::from_moments(&moments, p).expect("standardizer");
    assert!(standardizer.zero_variance().is_empty());
    for (j, c) in coefs.iter().enumerate() {
        let (m, sd) = (f(&c["mean"]), f(&c["std"]));
        assert!(
            (standardizer.mean()[j] - m).abs() <= 1e-12 * (1.0 + m.abs()),
            "mean {j}"
        );
        assert!((standardizer.std()[j] - sd).abs() <= 1e-12 * sd, "std {j}");
    }

    // The two-pass statistics round gives the same standardization.
    let mut sums = vec![0.0; 1 + p];
    for k in 0..PARTIES {
        add_into(&mut sums, &local_sums(rows2(x.view(), range(k))));
    }
    let mean = mean_from_sums(sums[0], &sums[1..]).expect("mean");
    let mut centered = vec![0.0; p];
    for k in 0..PARTIES {
        add_into(
            &mut centered,
            &local_centered_squares(rows2(x.view(), range(k)), &mean).expect("centered"),
        );
    }
    let two_pass = Standardizer::from_two_pass(sums[0], &sums[1..], &centered).expect("two pass");
    for j in 0..p {
        assert!((two_pass.std()[j] - standardizer.std()[j]).abs() <= 1e-12 * standardizer.std()[j]);
    }

    // Each party standardizes its own rows with the global statistics.
    let mut z = x.clone();
    standardizer.apply(&mut z).expect("apply");

    // Newton rounds: local terms, element-wise sum, one step.
    let mut beta = vec![0.0; p + 1];
    let mut rounds = 0;
    let mut last = None;
    while rounds < 50 {
        let mut agg = vec![0.0; newton_terms_len(p)];
        for k in 0..PARTIES {
            let (zk, yk) = (rows2(z.view(), range(k)), rows1(y.view(), range(k)));
            add_into(
                &mut agg,
                &local_newton_terms(zk, yk, &beta).expect("local terms"),
            );
        }
        let terms = NewtonTerms::from_aggregate(&agg, p).expect("aggregate");
        assert_eq!(terms.count, n as f64);
        let step = newton_step(&terms, &beta, l2).expect("newton step");
        eprintln!(
            "round {:>2}: objective {:.12} |g|max {:.3e} |Δ|max {:.3e}",
            rounds + 1,
            step.objective,
            step.gradient_max_norm,
            step.step_max_norm
        );
        beta = step.new_beta.clone();
        rounds += 1;
        let done = step.step_max_norm < TOL;
        last = Some(step);
        if done {
            break;
        }
    }
    let last = last.expect("at least one round");
    assert!(
        last.step_max_norm < TOL,
        "did not converge in {rounds} rounds"
    );

    // Against scikit-learn.
    let mut sk = vec![f(&reference["intercept"])];
    sk.extend(coefs.iter().map(|c| f(&c["coef"])));
    let diff_sk = beta
        .iter()
        .zip(&sk)
        .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
    let objective_sk = f(&reference["objective"]);
    eprintln!(
        "federated Newton: {rounds} rounds; max |β − β_sklearn| = {diff_sk:.3e}; \
         objective {:.15} (sklearn {objective_sk:.15})",
        last.objective
    );
    assert!(diff_sk < 1e-5, "max abs diff vs sklearn {diff_sk:e}");
    assert!((last.objective - objective_sk).abs() < 1e-9 * objective_sk);

    // Against the in-process central fit on the pooled rows.
    let central = fit_newton_central(z.view(), y.view(), l2, TOL, 50).expect("central fit");
    assert!(central.converged);
    let diff_central = beta
        .iter()
        .zip(&central.beta)
        .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!(
        "central Newton: {} iterations; max |β_fed − β_central| = {diff_central:.3e}",
        central.iterations
    );
    assert!(diff_central < 1e-9, "federated vs central {diff_central:e}");
    assert_eq!(central.iterations, rounds);
}

#[test]
fn schema_hash_is_reproducible() {
    let Loaded { schema, .. } = load();
    let text = serde_json::to_string(&schema).expect("serialize");
    let back: Schema = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(back.hash(), schema.hash());
    assert_eq!(schema.encoded_width(), 48);
}
