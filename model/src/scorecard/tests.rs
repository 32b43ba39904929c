use std::collections::BTreeMap;

use ndarray::{Array1, Array2};
use proptest::prelude::*;

use super::*;
use crate::schema::LabelSpec;

fn schema(features: Vec<Feature>) -> Schema {
    Schema {
        label: LabelSpec::binary("y", "bad", "good"),
        features,
    }
}

fn numeric(name: &str) -> Feature {
    Feature::Numeric { name: name.into() }
}

fn categorical(name: &str, n: usize) -> Feature {
    Feature::Categorical {
        name: name.into(),
        categories: (0..n).map(|i| format!("c{i}")).collect(),
    }
}

/// A layout with one numeric feature `x` over [0, fine) (fine bins of
/// width 1) whose pooled histogram is `counts` (no missing rows).
fn numeric_binning(counts: &[(u32, u32)], settings: &BinningSettings) -> FeatureBinning {
    let s = schema(vec![numeric("x")]);
    let bounds = BTreeMap::from([("x".to_owned(), [0.0, counts.len() as f64])]);
    let layout = HistogramLayout::new(&s, &bounds, counts.len()).expect("layout");
    let mut pooled: Vec<f64> = counts
        .iter()
        .flat_map(|&(g, b)| [f64::from(g), f64::from(b)])
        .collect();
    pooled.extend([0.0, 0.0]);
    let mut out = layout.bin_features(&pooled, settings).expect("bin");
    out.pop().expect("one feature")
}

/// The three rules of merging, checked on a result.
fn check_rules(b: &FeatureBinning, settings: &BinningSettings, want: Option<Trend>) {
    let regular: Vec<&BinStats> = b
        .bins
        .iter()
        .filter(|s| !matches!(s.values, BinValues::Missing(_)))
        .collect();
    assert!(regular.len() <= settings.max_bins, "{b:?}");
    let total: f64 = regular.iter().map(|s| s.good + s.bad).sum();
    if regular.len() > 1 {
        for s in &regular {
            assert!(
                s.good + s.bad >= settings.min_bin_share * total,
                "share below minimum: {b:?}"
            );
        }
        for w in regular.windows(2) {
            match b.trend {
                Trend::Increasing => assert!(w[1].woe > w[0].woe, "{b:?}"),
                Trend::Decreasing => assert!(w[1].woe < w[0].woe, "{b:?}"),
                Trend::Auto => panic!("the trend is resolved"),
            }
        }
    }
    if let Some(t) = want {
        assert_eq!(b.trend, t);
    }
    assert!(b.iv >= 0.0);
}

#[test]
fn a_rising_bad_rate_merges_to_decreasing_woe_bins() {
    // Bad rate rises with x, with one dip at bin 3 that breaks the trend.
    let counts = [
        (90, 5),
        (85, 8),
        (80, 12),
        (82, 10),
        (70, 20),
        (60, 30),
        (50, 45),
        (3, 1),
    ];
    let settings = BinningSettings::default();
    let b = numeric_binning(&counts, &settings);
    check_rules(&b, &settings, Some(Trend::Decreasing));
    // Edges are contiguous, unbounded at both ends, on fine cut points.
    let edges: Vec<[Option<f64>; 2]> = b
        .bins
        .iter()
        .map(|s| match s.values {
            BinValues::Edges(e) => e,
            _ => panic!("numeric bins have edges"),
        })
        .collect();
    assert_eq!(edges[0][0], None);
    assert_eq!(edges[edges.len() - 1][1], None);
    for w in edges.windows(2) {
        assert_eq!(w[0][1], w[1][0]);
        assert_eq!(w[0][1].map(f64::fract), Some(0.0));
    }
    // The tiny last fine bin is merged into its neighbour.
    let goods: f64 = b.bins.iter().map(|s| s.good).sum();
    assert_eq!(goods, 520.0);
}

#[test]
fn a_declared_trend_is_kept_even_if_it_loses_iv() {
    let counts = [(90, 5), (80, 15), (60, 35), (40, 55)];
    let settings = BinningSettings {
        trends: BTreeMap::from([("x".to_owned(), Trend::Increasing)]),
        ..BinningSettings::default()
    };
    let b = numeric_binning(&counts, &settings);
    check_rules(&b, &settings, Some(Trend::Increasing));
    // Against the data's trend: nothing but one bin is monotonic.
    assert_eq!(b.bins.len(), 1);
    assert!(b.iv.abs() < 1e-15);
}

#[test]
fn rare_categories_are_merged_and_the_missing_bin_stays_apart() {
    let s = schema(vec![categorical("k", 5)]);
    let layout = HistogramLayout::new(&s, &BTreeMap::new(), 20).expect("layout");
    // c0..c4, then missing: c3 is rare, c4 never seen.
    let pooled = [
        300.0, 20.0, 200.0, 60.0, 250.0, 100.0, 10.0, 5.0, 0.0, 0.0, 30.0, 25.0,
    ];
    let b = layout
        .bin_features(&pooled, &BinningSettings::default())
        .expect("bin")
        .pop()
        .expect("one");
    let groups: Vec<&BinValues> = b.bins.iter().map(|s| &s.values).collect();
    assert_eq!(groups.last(), Some(&&BinValues::Missing(true)));
    let mut all: Vec<String> = Vec::new();
    for g in &groups {
        if let BinValues::Categories(c) = g {
            all.extend(c.iter().cloned());
        }
    }
    all.sort();
    assert_eq!(all, ["c0", "c1", "c2", "c3", "c4"]);
    // The rare pair c3 (15 rows, under 5% of 945) and c4 sit together.
    assert!(groups.iter().any(|g| match g {
        BinValues::Categories(c) => c.contains(&"c3".to_owned()) && c.contains(&"c4".to_owned()),
        _ => false,
    }));
    let missing = b.bins.last().expect("missing bin");
    assert_eq!((missing.good, missing.bad), (30.0, 25.0));
}

#[test]
fn histograms_read_encoded_rows_with_missing_values() {
    let s = schema(vec![numeric("a"), categorical("k", 3)]);
    let bounds = BTreeMap::from([("a".to_owned(), [0.0, 10.0])]);
    let layout = HistogramLayout::new(&s, &bounds, 2).expect("layout");
    // a: bins [.., 5), [5, ..), missing; k: c0, c1, c2, missing.
    assert_eq!(layout.len(), 2 * 3 + 2 * 4);
    let x = ndarray::array![
        [-3.0, 0.0, 0.0],               // a in bin 0 (below the bounds), k = c0
        [5.0, 1.0, 0.0],                // a at the cut: bin 1; k = c1
        [99.0, 0.0, 1.0],               // a above the bounds: bin 1; k = c2
        [f64::NAN, f64::NAN, f64::NAN], // both missing
    ];
    let y = ndarray::array![1.0, 0.0, 0.0, 1.0];
    let mut hist = vec![0.0; layout.len()];
    layout.add_rows(x.view(), y.view(), &mut hist).expect("add");
    assert_eq!(
        hist,
        [
            0.0, 1.0, 2.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0
        ]
    );
    let bad = layout.add_rows(
        x.view(),
        ndarray::array![1.0, 0.0, 2.0, 1.0].view(),
        &mut hist,
    );
    assert!(bad.is_err());
}

#[test]
fn the_scorecard_round_trips_through_json() {
    let s = schema(vec![numeric("a"), categorical("k", 2)]);
    let bins = vec![
        FeatureBinning {
            name: "a".into(),
            iv: 0.1,
            trend: Trend::Increasing,
            bins: vec![
                BinStats {
                    values: BinValues::Edges([None, Some(3.5)]),
                    good: 10.0,
                    bad: 5.0,
                    woe: -0.2,
                },
                BinStats {
                    values: BinValues::Edges([Some(3.5), None]),
                    good: 20.0,
                    bad: 3.0,
                    woe: 0.4,
                },
                BinStats {
                    values: BinValues::Missing(true),
                    good: 2.0,
                    bad: 2.0,
                    woe: -0.1,
                },
            ],
        },
        FeatureBinning {
            name: "k".into(),
            iv: 0.0,
            trend: Trend::Increasing,
            bins: vec![BinStats {
                values: BinValues::Categories(vec!["c0".into(), "c1".into()]),
                good: 32.0,
                bad: 10.0,
                woe: 0.0,
            }],
        },
    ];
    let card = Scorecard::new(s, bins, -1.0, &[-0.9, -1.1], PointsScale::default()).expect("card");
    let json = serde_json::to_value(&card).expect("json");
    let first = &json["characteristics"][0]["bins"];
    assert_eq!(first[0]["edges"], serde_json::json!([null, 3.5]));
    assert_eq!(first[2]["missing"], serde_json::json!(true));
    assert_eq!(
        json["characteristics"][1]["bins"][0]["categories"],
        serde_json::json!(["c0", "c1"])
    );
    let back: Scorecard = serde_json::from_value(json).expect("parse");
    assert_eq!(back, card);
    // A value at an edge goes to the upper bin; NaN to the missing bin.
    assert_eq!(card.bins_of(&[3.5, 1.0]).expect("bins"), [1, 0]);
    assert_eq!(card.bins_of(&[-1e300, 0.0]).expect("bins"), [0, 0]);
    assert_eq!(card.bins_of(&[f64::NAN, 0.0]).expect("bins"), [2, 0]);
    // `k` had no missing rows, so it has no bin for one: the error names it.
    let err = card.bins_of(&[1.0, f64::NAN]).expect_err("no missing bin");
    assert_eq!(
        err.to_string(),
        "column `k`: value `NaN` falls in no bin of the scorecard"
    );
    assert_eq!((err.column(), err.value()), (Some("k"), Some("NaN")));
}

fn fine_counts() -> impl Strategy<Value = Vec<(u32, u32)>> {
    prop::collection::vec((0u32..300, 0u32..300), 2..40)
}

proptest! {
    #[test]
    fn merging_keeps_max_bins_min_share_and_a_strict_trend(
        counts in fine_counts(),
        max_bins in 1usize..8,
        min_share in 0.0f64..0.3,
        trend in prop::sample::select(vec![Trend::Auto, Trend::Increasing, Trend::Decreasing]),
    ) {
        prop_assume!(counts.iter().any(|c| c.0 > 0) && counts.iter().any(|c| c.1 > 0));
        let settings = BinningSettings {
            fine_bins: counts.len().max(2),
            max_bins: max_bins.min(counts.len()),
            min_bin_share: min_share,
            trend,
            trends: BTreeMap::new(),
        };
        let b = numeric_binning(&counts, &settings);
        check_rules(&b, &settings, (trend != Trend::Auto).then_some(trend));
        let (g, d): (f64, f64) = b.bins.iter().fold((0.0, 0.0), |a, s| (a.0 + s.good, a.1 + s.bad));
        prop_assert_eq!(g, counts.iter().map(|c| f64::from(c.0)).sum::<f64>());
        prop_assert_eq!(d, counts.iter().map(|c| f64::from(c.1)).sum::<f64>());
    }

    #[test]
    fn categories_merge_under_the_same_rules(
        counts in prop::collection::vec((0u32..300, 0u32..300), 1..15),
        missing in (0u32..50, 0u32..50),
        max_bins in 1usize..6,
    ) {
        prop_assume!(counts.iter().any(|c| c.0 > 0) && counts.iter().any(|c| c.1 > 0));
        let s = schema(vec![categorical("k", counts.len())]);
        let layout = HistogramLayout::new(&s, &BTreeMap::new(), 20).expect("layout");
        let mut pooled: Vec<f64> =
            counts.iter().flat_map(|&(g, b)| [f64::from(g), f64::from(b)]).collect();
        pooled.extend([f64::from(missing.0), f64::from(missing.1)]);
        let settings = BinningSettings { max_bins, ..BinningSettings::default() };
        let b = layout.bin_features(&pooled, &settings).expect("bin").pop().expect("one");
        check_rules(&b, &settings, Some(Trend::Increasing));
        let mut seen: Vec<String> = b.bins.iter().flat_map(|s| match &s.values {
            BinValues::Categories(c) => c.clone(),
            _ => Vec::new(),
        }).collect();
        seen.sort();
        let mut want: Vec<String> = (0..counts.len()).map(|i| format!("c{i}")).collect();
        want.sort();
        prop_assert_eq!(seen, want);
        let has_missing = b.bins.iter().any(|s| matches!(s.values, BinValues::Missing(_)));
        prop_assert_eq!(has_missing, missing.0 + missing.1 > 0);
    }

    #[test]
    fn party_histograms_add_up_to_the_pooled_histogram(
        rows in prop::collection::vec((-5.0f64..15.0, 0usize..3, prop::bool::ANY, prop::bool::ANY), 1..60),
        split in 0usize..60,
    ) {
        let s = schema(vec![numeric("a"), categorical("k", 3)]);
        let bounds = BTreeMap::from([("a".to_owned(), [0.0, 10.0])]);
        let layout = HistogramLayout::new(&s, &bounds, 7).expect("layout");
        let n = rows.len();
        let mut x = Array2::<f64>::zeros((n, 3));
        let mut y = Array1::<f64>::zeros(n);
        for (i, &(a, k, bad, missing)) in rows.iter().enumerate() {
            x[[i, 0]] = if missing { f64::NAN } else { a };
            if k > 0 { x[[i, k]] = 1.0; }
            y[i] = f64::from(u8::from(bad));
        }
        let cut = split.min(n);
        let mut pooled = vec![0.0; layout.len()];
        layout.add_rows(x.view(), y.view(), &mut pooled).expect("pooled");
        let mut sum = vec![0.0; layout.len()];
        for r in [0..cut, cut..n] {
            let mut part = vec![0.0; layout.len()];
            layout.add_rows(crate::rows::rows2(x.view(), r.clone()), crate::rows::rows1(y.view(), r), &mut part).expect("part");
            for (s, p) in sum.iter_mut().zip(&part) { *s += p; }
        }
        prop_assert_eq!(&sum, &pooled);
        prop_assert_eq!(pooled.iter().sum::<f64>(), 2.0 * n as f64);
    }

    #[test]
    fn total_points_are_offset_plus_factor_times_log_odds_of_good(
        woes in prop::collection::vec(prop::collection::vec(-3.0f64..3.0, 1..6), 1..8),
        betas in prop::collection::vec(-2.0f64..2.0, 8),
        intercept in -4.0f64..2.0,
        pdo in 1.0f64..100.0,
        base_score in 0.0f64..1000.0,
        base_odds in 0.01f64..1000.0,
        pick in prop::collection::vec(0usize..6, 8),
    ) {
        let p = woes.len();
        let features: Vec<Feature> = (0..p).map(|j| numeric(&format!("f{j}"))).collect();
        let binnings: Vec<FeatureBinning> = woes.iter().enumerate().map(|(j, w)| FeatureBinning {
            name: format!("f{j}"),
            iv: 0.0,
            trend: Trend::Increasing,
            bins: w.iter().enumerate().map(|(k, &woe)| BinStats {
                values: BinValues::Edges([
                    (k > 0).then_some(k as f64),
                    (k + 1 < w.len()).then_some(k as f64 + 1.0),
                ]),
                good: 1.0, bad: 1.0, woe,
            }).collect(),
        }).collect();
        let scale = PointsScale { pdo, base_score, base_odds };
        let card = Scorecard::new(schema(features), binnings, intercept, &betas[..p], scale)
            .expect("card");
        let row: Vec<f64> = (0..p).map(|j| (pick[j] % woes[j].len()) as f64 + 0.5).collect();
        let a = card.assess(&row).expect("assess");
        let log_odds_good = ((1.0 - a.probability) / a.probability).ln();
        let want = scale.offset() + scale.factor() * log_odds_good;
        // `want` goes through ln((1 − p)/p), which loses about ε/min(p, 1 − p)
        // relative to the card's own log-odds when p is near 0 or 1: the
        // tolerance allows for that, or the check fails on its own rounding.
        let conditioning = 4.0 * f64::EPSILON / a.probability.min(1.0 - a.probability);
        let tolerance = 1e-9 * (1.0 + want.abs()) + scale.factor().abs() * conditioning;
        prop_assert!((a.points - want).abs() <= tolerance, "{} vs {}", a.points, want);
        // Reasons: at most three, each a feature that lost points, most first.
        prop_assert!(a.reasons.len() <= 3);
        let bins = card.bins_of(&row).expect("bins");
        let lost = |j: usize| {
            let c = &card.characteristics[j];
            c.bins.iter().map(|b| b.points).fold(f64::NEG_INFINITY, f64::max) - c.bins[bins[j]].points
        };
        for w in a.reasons.windows(2) { prop_assert!(lost(w[0]) >= lost(w[1])); }
        for &j in &a.reasons { prop_assert!(lost(j) > 0.0); }
        if a.reasons.len() < 3 {
            let losers = (0..p).filter(|&j| lost(j) > 0.0).count();
            prop_assert_eq!(losers, a.reasons.len());
        }
    }
}
