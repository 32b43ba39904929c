//! The `monitor` job kind: its spec read from a consortium file (the model
//! embedded), its one round's plan, and what absorbing the sum makes.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_model::privacy::NoiseCohort;
use fedcredit_model::scorecard::stability::Level;
use fedcredit_model::scorecard::{
    BinStats, BinValues, FeatureBinning, PointsScale, Scorecard, Trend,
};
use fedcredit_model::{Feature, LabelSpec, Schema};
use fedcredit_proto::codec::Codec;
use fedcredit_referee::JobRules;
use fedcredit_referee::consortium::{Consortium, JobKind, JobSpec};

fn card() -> Scorecard {
    let schema = Schema {
        label: LabelSpec::binary("y", "bad", "good"),
        features: vec![
            Feature::Numeric { name: "age".into() },
            Feature::Categorical {
                name: "housing".into(),
                categories: vec!["own".into(), "rent".into()],
            },
        ],
    };
    let stats = |values, woe| BinStats {
        values,
        good: 10.0,
        bad: 5.0,
        woe,
    };
    let bins = vec![
        FeatureBinning {
            name: "age".into(),
            iv: 0.1,
            trend: Trend::Increasing,
            bins: vec![
                stats(BinValues::Edges([None, Some(30.0)]), -0.5),
                stats(BinValues::Edges([Some(30.0), None]), 0.6),
                stats(BinValues::Missing(true), 0.0),
            ],
        },
        FeatureBinning {
            name: "housing".into(),
            iv: 0.1,
            trend: Trend::Increasing,
            bins: vec![
                stats(BinValues::Categories(vec!["rent".into()]), -0.3),
                stats(BinValues::Categories(vec!["own".into()]), 0.4),
            ],
        },
    ];
    Scorecard::new(schema, bins, -1.0, &[-1.0, -0.8], PointsScale::default()).unwrap()
}

/// A model.json with `card` (or none) in `dir`.
fn write_model(dir: &Path, name: &str, card: Option<&Scorecard>) {
    let mut model: serde_json::Value = serde_json::from_str(
        r#"{
          "format": "fedcredit-model/1", "job_id": "dev", "job_spec_hash": "ab12",
          "features": ["age", "housing=rent"],
          "schema": {
            "label": {"column": "y", "positive": "bad", "negative": "good"},
            "features": [
              {"kind": "numeric", "name": "age"},
              {"kind": "categorical", "name": "housing", "categories": ["own", "rent"]}
            ]
          },
          "standardized": {"intercept": 0.1, "coefficients": [1.0, 1.0]},
          "original": {"intercept": 0.0, "coefficients": [0.0, 0.0]},
          "standardization": {"count": 10.0, "mean": [0.0, 0.0], "std": [1.0, 1.0], "zero_variance": []},
          "l2": 1.0, "optimizer": "newton", "rounds": 1, "converged": true,
          "history": [], "metrics": null
        }"#,
    )
    .unwrap();
    if let Some(card) = card {
        model["scorecard"] = serde_json::to_value(card).unwrap();
    }
    std::fs::write(dir.join(name), serde_json::to_string(&model).unwrap()).unwrap();
}

fn consortium_text(job: &str) -> String {
    let key = |seed: u8| {
        IdentityKey::from_secret_bytes(&[seed; 32])
            .public()
            .to_hex()
    };
    let mut text = format!(
        "[coordinator]\nlisten = \"127.0.0.1:50051\"\npublic_key = \"{}\"\n\n[job]\n{job}\n",
        key(9)
    );
    for (id, seed) in [("bank-a", 1), ("bank-b", 2), ("bank-c", 3)] {
        text.push_str(&format!(
            "\n[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
            key(seed)
        ));
    }
    text
}

#[test]
fn the_consortium_file_embeds_the_scorecard_and_its_lineage() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dev")).unwrap();
    write_model(&dir.path().join("dev"), "model.json", Some(&card()));
    let path = dir.path().join("consortium.toml");
    std::fs::write(
        &path,
        consortium_text("id = \"m\"\nkind = \"monitor\"\nmodel = \"dev/model.json\"\nbands = 4"),
    )
    .unwrap();
    let c = Consortium::load(&path).unwrap();
    let JobKind::Monitor(spec) = &c.job.kind else {
        panic!("{:?}", c.job.kind)
    };
    assert_eq!(spec.model, None, "the path is not part of the spec");
    assert_eq!(spec.scorecard.as_ref(), Some(&card()));
    assert_eq!(spec.model_job_spec_hash.as_deref(), Some("ab12"));
    assert_eq!(c.job.kind.name(), "monitor");
    // The canonical JSON is self-contained: a job offer parses to the same spec.
    let back = JobSpec::from_json(&c.job.to_json()).unwrap();
    assert_eq!(back, c.job);
    assert!(c.with_job(back, Path::new("offer")).is_ok());

    // A job offer naming a file is refused: no party reads what a remote spec names.
    let named = br#"{"id":"m","kind":"monitor","model":"/etc/passwd","bands":4}"#;
    let offered = JobSpec::from_json(named).unwrap();
    let err = c
        .with_job(offered, Path::new("offer"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("job.model") && err.contains("was not read"),
        "{err}"
    );
}

#[test]
fn a_model_without_a_scorecard_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "plain.json", None);
    let path = dir.path().join("consortium.toml");
    std::fs::write(
        &path,
        consortium_text("id = \"m\"\nkind = \"monitor\"\nmodel = \"plain.json\""),
    )
    .unwrap();
    let err = Consortium::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("plain.json") && err.contains("scorecard") && err.contains("job.model"),
        "{err}"
    );
    std::fs::write(
        &path,
        consortium_text("id = \"m\"\nkind = \"monitor\"\nmodel = \"absent.json\""),
    )
    .unwrap();
    let err = Consortium::load(&path).unwrap_err().to_string();
    assert!(err.contains("absent.json"), "{err}");
}

#[test]
fn one_round_of_counts_then_the_report() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "model.json", Some(&card()));
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        "[job]\nid = \"m\"\nkind = \"monitor\"\nmodel = \"model.json\"\nbands = 5\n",
    )
    .unwrap();
    let spec = JobSpec::load(&job).unwrap();
    let mut rules = JobRules::new(&spec, NoiseCohort::single()).unwrap();
    let plan = rules.next_plan().unwrap();
    // 2 × (5 bands + 3 + 2 bins).
    assert_eq!(plan.dimension, 20);
    assert_eq!(fedcredit_referee::max_words(&spec.kind), 20);
    let Codec::Narrow(fp) = plan.codec else {
        panic!("{:?}", plan.codec)
    };
    assert_eq!((fp.frac_bits(), fp.clip()), (0, (1u64 << 40) as f64));
    // Counts near the clip survive the codec and a sum of many members exactly.
    let big = (1u64 << 40) as f64 - 1.0;
    assert_eq!(
        fp.decode(fp.encode(big).unwrap().wrapping_mul(1000)),
        big * 1000.0
    );

    assert!(rules.absorb(&[1.0; 19]).is_err(), "wrong length");
    assert!(rules.next_plan().is_some(), "a refused sum changes nothing");
    // Development: spread over every bin; applicants: all in the first age bin.
    let mut sum = vec![0.0; 20];
    sum[..10].copy_from_slice(&[2.0, 2.0, 2.0, 2.0, 2.0, 4.0, 4.0, 2.0, 5.0, 5.0]);
    sum[10..].copy_from_slice(&[10.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 5.0, 5.0]);
    let json = rules.absorb(&sum).unwrap();
    assert!(rules.next_plan().is_none());
    assert!(rules.absorb(&sum).is_err(), "one round only");
    let report = rules.monitor_report().unwrap();
    assert_eq!(report.development_rows, 10.0);
    assert_eq!(report.applicant_rows, 10.0);
    assert_eq!(report.characteristics[0].level, Level::Alert);
    assert_eq!(report.characteristics[1].index, 0.0);
    assert_eq!(serde_json::to_string(report).unwrap(), json);
}
