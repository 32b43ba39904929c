//! WOE and IV from summed per-party histograms equal the values computed
//! on the pooled rows, to 1e-9, for the same bins.
//!
//! The German credit data is split into four contiguous parties; each
//! makes its histogram vector alone, the vectors are summed (what secure
//! aggregation yields), and the pooled histogram is binned. The reference,
//! `model/reference/german_credit_woe_iv.json`, is computed from the raw
//! rows by `model/reference/woe_iv_reference.py` (numpy) for the bins that
//! fedcredit chose, which this test also checks are still the bins it
//! chooses (so the reference cannot go stale unnoticed).

use std::collections::BTreeMap;

use fedcredit_model::scorecard::{BinValues, BinningSettings, FeatureBinning, HistogramLayout};
use fedcredit_model::{Encoder, Feature, LabelSpec, Schema};
use ndarray::{Array1, Array2};
use serde_json::{Value, json};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/german_credit.csv");
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/reference/german_credit_woe_iv.json"
);
const PARTIES: usize = 4;

fn load() -> (Schema, Array2<f64>, Array1<f64>) {
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
    let schema = Schema::infer(
        &header,
        &rows,
        LabelSpec::binary("creditability", "bad", "good"),
    )
    .expect("infer schema");
    let encoder = Encoder::new(&schema, &header).expect("encoder");
    let mut x = Array2::<f64>::zeros((rows.len(), encoder.width()));
    let mut y = Array1::<f64>::zeros(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let row = x.row_mut(i).into_slice().expect("standard layout");
        y[i] = encoder.encode_into(r, row).expect("row");
    }
    (schema, x, y)
}

/// Bins from the sum of the parties' histograms; bounds are each numeric
/// column's range (fixed public bounds in a consortium).
fn federated_bins() -> Vec<FeatureBinning> {
    let (schema, x, y) = load();
    let mut bounds = BTreeMap::new();
    let mut col = 0;
    for f in &schema.features {
        if let Feature::Numeric { name } = f {
            let c = x.column(col);
            let low = c.iter().copied().fold(f64::INFINITY, f64::min);
            let high = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            bounds.insert(name.clone(), [low, high]);
        }
        col += f.encoded_width();
    }
    let layout = HistogramLayout::new(&schema, &bounds, 20).expect("layout");
    let n = x.nrows();
    let mut pooled = vec![0.0; layout.len()];
    for p in 0..PARTIES {
        let r = p * n / PARTIES..(p + 1) * n / PARTIES;
        let mut own = vec![0.0; layout.len()];
        layout
            .add_rows(
                fedcredit_model::rows::rows2(x.view(), r.clone()),
                fedcredit_model::rows::rows1(y.view(), r),
                &mut own,
            )
            .expect("party histogram");
        for (s, v) in pooled.iter_mut().zip(own) {
            *s += v;
        }
    }
    layout
        .bin_features(&pooled, &BinningSettings::default())
        .expect("binning")
}

/// A bin as the reference file writes its definition.
fn definition(values: &BinValues) -> Value {
    match values {
        BinValues::Edges(e) => json!({ "edges": e }),
        BinValues::Categories(c) => json!({ "categories": c }),
        BinValues::Missing(_) => json!({ "missing": true }),
    }
}

#[test]
fn woe_and_iv_from_summed_histograms_match_the_pooled_rows() {
    let bins = federated_bins();
    let definitions = json!({
        "features": bins.iter().map(|f| json!({
            "name": f.name,
            "bins": f.bins.iter().map(|b| definition(&b.values)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()
    });
    if let Ok(path) = std::env::var("FEDCREDIT_WRITE_WOE_BINS") {
        std::fs::write(&path, definitions.to_string()).expect("write the bins");
    }
    let text = std::fs::read_to_string(REFERENCE).expect("reference file");
    let reference: Value = serde_json::from_str(&text).expect("reference JSON");
    let want = reference["features"].as_array().expect("features");
    assert_eq!(want.len(), 20);
    assert_eq!(want.len(), bins.len());
    let mut informative = 0;
    for (got, want) in bins.iter().zip(want) {
        assert_eq!(got.name, want["name"].as_str().expect("name"));
        let want_bins = want["bins"].as_array().expect("bins");
        assert_eq!(got.bins.len(), want_bins.len(), "{}", got.name);
        for (b, w) in got.bins.iter().zip(want_bins) {
            let mut def = w.clone();
            for k in ["good", "bad", "woe"] {
                def.as_object_mut().expect("bin object").remove(k);
            }
            assert_eq!(
                definition(&b.values),
                def,
                "{}: the bins differ from the reference's; regenerate it (see {REFERENCE})",
                got.name
            );
            assert_eq!(b.good, w["good"].as_f64().expect("good"), "{}", got.name);
            assert_eq!(b.bad, w["bad"].as_f64().expect("bad"), "{}", got.name);
            let woe = w["woe"].as_f64().expect("woe");
            assert!(
                (b.woe - woe).abs() <= 1e-9,
                "{}: woe {} vs {woe}",
                got.name,
                b.woe
            );
        }
        let iv = want["iv"].as_f64().expect("iv");
        assert!(
            (got.iv - iv).abs() <= 1e-9,
            "{}: iv {} vs {iv}",
            got.name,
            got.iv
        );
        if got.bins.len() > 1 {
            informative += 1;
        }
    }
    // The comparison covers merged numeric and categorical bins, not single ones only.
    assert!(
        informative >= 10,
        "{informative} features with several bins"
    );
}
