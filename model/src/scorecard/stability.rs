//! Population stability of a scorecard: the PSI of its score and the CSI
//! of each characteristic, from pooled counts.
//!
//! **The counts.** A party's vector ([`StabilityLayout::add_row`]) holds,
//! for its *development* rows and then for its *new applicants*, the count
//! of rows per score band followed by the count per bin of every
//! characteristic (characteristics in scorecard order, bins in their
//! order). Its length is `2 × (bands + Σ bins)`. Vectors add element-wise,
//! so the pooled counts are the plain (or securely aggregated) sum.
//!
//! **Score bands.** `bands` equal-width bands between the lowest and the
//! highest total points the scorecard can give (the sums over
//! characteristics of their smallest and largest bin points): band `i`
//! holds totals in `[low + i·w, low + (i+1)·w)`, the last band is closed
//! above, so every attainable total has exactly one band. The edges follow
//! from the scorecard alone, so every party bands alike.
//!
//! **Stability index.** With shares `e_i` (development, "expected") and
//! `a_i` (applicants, "actual") over the same bins,
//!
//! ```text
//! PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)
//! ```
//!
//! the PSI of the score bands, the CSI of a characteristic's bins. Each
//! term is ≥ 0 (the two factors have the same sign), so the index is ≥ 0,
//! 0 for identical shares, symmetric in the two samples and unchanged when
//! either sample's counts are scaled.
//!
//! **Smoothing.** A share of 0 (an empty bin in one sample) would make the
//! index infinite. Every share is floored at [`SHARE_FLOOR`] = 10⁻⁴ before
//! the index is taken (shares are not renormalized): an empty bin counts as
//! if it held one row in 10,000. A floor on the *share* rather than a
//! pseudo-count (+0.5 per bin) keeps the index independent of sample size,
//! so the pooled index does not drift with the number of banks.
//!
//! **Alert levels** (credit-risk convention): below 0.10 stable, 0.10 to
//! 0.25 watch, above 0.25 alert.

use serde::{Deserialize, Serialize};

use super::Scorecard;
use super::binning::BinValues;
use crate::error::{ModelError, Result};

/// The smallest share a bin is given before its index term is taken.
pub const SHARE_FLOOR: f64 = 1e-4;
/// Score bands of a monitor job unless it says otherwise.
pub const DEFAULT_BANDS: usize = 10;
/// The most score bands a monitor job may ask for.
pub const MAX_BANDS: usize = 1000;
/// Below this index a population is stable.
pub const WATCH_FROM: f64 = 0.10;
/// Above this index a population has shifted (alert).
pub const ALERT_ABOVE: f64 = 0.25;

/// How far a distribution moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Index below 0.10.
    Stable,
    /// Index from 0.10 to 0.25.
    Watch,
    /// Index above 0.25.
    Alert,
}

impl Level {
    /// The level of an index.
    pub fn of(index: f64) -> Self {
        if index < WATCH_FROM {
            Level::Stable
        } else if index <= ALERT_ABOVE {
            Level::Watch
        } else {
            Level::Alert
        }
    }
}

/// The population stability index of `actual` against `expected`, both
/// counts over the same bins (see the module doc, including the floor).
///
/// ```
/// use fedcredit_model::scorecard::stability::psi;
/// assert_eq!(psi(&[10.0, 30.0], &[1.0, 3.0]).unwrap(), 0.0);
/// let shifted = psi(&[50.0, 50.0], &[10.0, 90.0]).unwrap();
/// assert!((shifted - (0.4 * (5.0f64).ln() + 0.4 * (9.0f64 / 5.0).ln())).abs() < 1e-12);
/// ```
///
/// Errors: different lengths, a negative or non-finite count, or a sample
/// with no rows.
pub fn psi(expected: &[f64], actual: &[f64]) -> Result<f64> {
    let e = shares("expected", expected)?;
    let a = shares("actual", actual)?;
    crate::error::check_len("actual counts", e.len(), a.len())?;
    Ok(e.iter().zip(&a).map(|(&e, &a)| term(e, a)).sum())
}

/// One bin's term, on floored shares.
fn term(e: f64, a: f64) -> f64 {
    let (e, a) = (e.max(SHARE_FLOOR), a.max(SHARE_FLOOR));
    (a - e) * (a / e).ln()
}

/// Counts as shares of their total.
fn shares(what: &'static str, counts: &[f64]) -> Result<Vec<f64>> {
    crate::error::check_finite(what, counts)?;
    if let Some(index) = counts.iter().position(|c| *c < 0.0) {
        return Err(ModelError::InconsistentAggregate(format!(
            "{what} count {index} is {}, below 0",
            counts[index]
        )));
    }
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return Err(ModelError::Empty { what });
    }
    Ok(counts.iter().map(|c| c / total).collect())
}

/// The score bands and bin counts of a scorecard: which entry of a party's
/// vector a row adds to.
#[derive(Debug, Clone, PartialEq)]
pub struct StabilityLayout {
    card: Scorecard,
    /// `bands + 1` edges, ascending.
    edges: Vec<f64>,
    /// Each characteristic's first entry after the bands.
    offsets: Vec<usize>,
    /// Entries of one sample: bands and every bin.
    half: usize,
}

impl StabilityLayout {
    /// The layout of `card` with `bands` equal-width score bands (1 to
    /// [`MAX_BANDS`]).
    pub fn new(card: &Scorecard, bands: usize) -> Result<Self> {
        if !(1..=MAX_BANDS).contains(&bands) {
            return Err(ModelError::InvalidSetting(format!(
                "bands = {bands}: expected 1 to {MAX_BANDS}"
            )));
        }
        if card.characteristics.is_empty() {
            return Err(ModelError::InvalidSetting(
                "the scorecard has no characteristics to monitor".into(),
            ));
        }
        if card.characteristics.len() != card.schema.features.len() {
            return Err(ModelError::InvalidSetting(format!(
                "the scorecard has {} characteristics for {} features",
                card.characteristics.len(),
                card.schema.features.len()
            )));
        }
        let (mut low, mut high) = (0.0, 0.0);
        let mut offsets = Vec::with_capacity(card.characteristics.len());
        let mut next = bands;
        for (c, f) in card.characteristics.iter().zip(&card.schema.features) {
            if c.name != f.name() {
                return Err(ModelError::InvalidSetting(format!(
                    "characteristic `{}` where the schema has `{}`",
                    c.name,
                    f.name()
                )));
            }
            if c.bins.is_empty() {
                return Err(ModelError::InvalidSetting(format!(
                    "characteristic `{}` has no bins",
                    c.name
                )));
            }
            let points: Vec<f64> = c.bins.iter().map(|b| b.points).collect();
            crate::error::check_finite("bin points", &points)?;
            low += points.iter().copied().fold(f64::INFINITY, f64::min);
            high += points.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            offsets.push(next);
            next += c.bins.len();
        }
        // k·(high − low)/n before adding, as the fine bins' cuts are made.
        let edges = (0..=bands)
            .map(|k| {
                if k == bands {
                    high
                } else {
                    low + (high - low) * k as f64 / bands as f64
                }
            })
            .collect();
        Ok(Self {
            card: card.clone(),
            edges,
            offsets,
            half: next,
        })
    }

    /// Score bands.
    pub fn bands(&self) -> usize {
        self.edges.len() - 1
    }

    /// The band edges, `bands + 1` of them, ascending.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Length of a party's vector: `2 × (bands + Σ bins)`.
    pub fn dimension(&self) -> usize {
        2 * self.half
    }

    /// The band of a total: the last band whose lower edge it reaches (the
    /// last band is closed above; totals outside clamp to the end bands).
    pub fn band_of(&self, points: f64) -> usize {
        let bands = self.bands();
        // partition_point: edges[1..bands] that are ≤ points.
        self.edges[1..bands].partition_point(|e| *e <= points)
    }

    /// Adds an encoded, unstandardized row (as [`crate::Encoder`] makes
    /// from the scorecard's schema) to `counts`: the development half when
    /// `applicant` is false, else the applicants' half.
    pub fn add_row(&self, counts: &mut [f64], row: &[f64], applicant: bool) -> Result<()> {
        crate::error::check_len("stability counts", self.dimension(), counts.len())?;
        let bins = self.card.bins_of(row)?;
        let points: f64 = self
            .card
            .characteristics
            .iter()
            .zip(&bins)
            .map(|(c, &k)| c.bins[k].points)
            .sum();
        let half = &mut counts[if applicant { self.half } else { 0 }..][..self.half];
        half[self.band_of(points)] += 1.0;
        for (&offset, &k) in self.offsets.iter().zip(&bins) {
            half[offset + k] += 1.0;
        }
        Ok(())
    }

    /// The report of pooled counts (a vector of [`Self::dimension`]
    /// values, as [`Self::add_row`] fills them and secure aggregation sums
    /// them).
    pub fn report(&self, counts: &[f64]) -> Result<MonitorReport> {
        crate::error::check_len("stability counts", self.dimension(), counts.len())?;
        crate::error::check_finite("stability counts", counts)?;
        let (dev, new) = counts.split_at(self.half);
        let bands = self.bands();
        let band_values: Vec<Bucket> = (0..bands)
            .map(|i| Bucket::Band {
                low: self.edges[i],
                high: self.edges[i + 1],
            })
            .collect();
        let score = Item::new(
            "score".to_owned(),
            band_values,
            &dev[..bands],
            &new[..bands],
        )?;
        let mut characteristics = Vec::with_capacity(self.offsets.len());
        for (c, &offset) in self.card.characteristics.iter().zip(&self.offsets) {
            let range = offset..offset + c.bins.len();
            characteristics.push(Item::new(
                c.name.clone(),
                c.bins
                    .iter()
                    .map(|b| Bucket::Bin(b.values.clone()))
                    .collect(),
                &dev[range.clone()],
                &new[range],
            )?);
        }
        Ok(MonitorReport {
            format: "fedcredit-monitor/1".into(),
            share_floor: SHARE_FLOOR,
            development_rows: score.development_rows,
            applicant_rows: score.applicant_rows,
            score,
            characteristics,
        })
    }
}

/// What a band or bin of the report holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bucket {
    /// A score band: totals `low ≤ points < high` (the last band: `≤ high`).
    Band {
        /// Lower edge.
        low: f64,
        /// Upper edge.
        high: f64,
    },
    /// A characteristic's bin, as the scorecard has it.
    Bin(BinValues),
}

/// One band or bin: pooled counts, shares and its term of the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// What it holds.
    pub values: Bucket,
    /// Pooled development rows in it.
    pub development: f64,
    /// Pooled new applicants in it.
    pub applicants: f64,
    /// Its share of the development rows.
    pub development_share: f64,
    /// Its share of the new applicants.
    pub applicant_share: f64,
    /// Its term of the index (on floored shares).
    pub contribution: f64,
}

/// The PSI of the score, or the CSI of one characteristic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// `score`, or the characteristic's name.
    pub name: String,
    /// The index.
    pub index: f64,
    /// Its level.
    pub level: Level,
    /// Pooled development rows.
    pub development_rows: f64,
    /// Pooled new applicants.
    pub applicant_rows: f64,
    /// Per band or bin.
    pub rows: Vec<Row>,
}

impl Item {
    fn new(name: String, values: Vec<Bucket>, dev: &[f64], new: &[f64]) -> Result<Self> {
        let e = shares("development counts", dev)?;
        let a = shares("applicant counts", new)?;
        let rows: Vec<Row> = values
            .into_iter()
            .enumerate()
            .map(|(i, values)| Row {
                values,
                development: dev[i],
                applicants: new[i],
                development_share: e[i],
                applicant_share: a[i],
                contribution: term(e[i], a[i]),
            })
            .collect();
        let index = rows.iter().map(|r| r.contribution).sum();
        Ok(Self {
            name,
            index,
            level: Level::of(index),
            development_rows: dev.iter().sum(),
            applicant_rows: new.iter().sum(),
            rows,
        })
    }
}

/// What a monitor job publishes (`monitor.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorReport {
    /// File format tag.
    pub format: String,
    /// The floor every share was raised to before its term was taken.
    pub share_floor: f64,
    /// Pooled development rows.
    pub development_rows: f64,
    /// Pooled new applicants.
    pub applicant_rows: f64,
    /// The PSI of the score over its bands.
    pub score: Item,
    /// The CSI of each characteristic over its bins, in scorecard order.
    pub characteristics: Vec<Item>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorecard::{BinStats, FeatureBinning, PointsScale, Trend};
    use crate::{Encoder, Feature, LabelSpec, Schema};
    use proptest::prelude::*;

    fn card() -> Scorecard {
        let schema = Schema {
            label: LabelSpec::binary("y", "bad", "good"),
            features: vec![
                Feature::Numeric { name: "age".into() },
                Feature::Categorical {
                    name: "housing".into(),
                    categories: vec!["own".into(), "rent".into(), "free".into()],
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
                    stats(BinValues::Edges([Some(30.0), Some(50.0)]), 0.1),
                    stats(BinValues::Edges([Some(50.0), None]), 0.6),
                ],
            },
            FeatureBinning {
                name: "housing".into(),
                iv: 0.1,
                trend: Trend::Increasing,
                bins: vec![
                    stats(
                        BinValues::Categories(vec!["rent".into(), "free".into()]),
                        -0.3,
                    ),
                    stats(BinValues::Categories(vec!["own".into()]), 0.4),
                ],
            },
        ];
        Scorecard::new(schema, bins, -1.0, &[-1.0, -0.8], PointsScale::default()).expect("card")
    }

    fn rows(card: &Scorecard, cells: &[(&str, &str)]) -> Vec<Vec<f64>> {
        let enc = Encoder::for_scoring(&card.schema, &["age", "housing"]).expect("encoder");
        cells
            .iter()
            .map(|(a, h)| {
                let mut row = vec![0.0; enc.width()];
                enc.encode_features_into(&[*a, *h], &mut row).expect("row");
                row
            })
            .collect()
    }

    #[test]
    fn layout_counts_bands_and_bins_in_two_halves() {
        let card = card();
        let layout = StabilityLayout::new(&card, 4).expect("layout");
        assert_eq!(layout.dimension(), 2 * (4 + 3 + 2));
        let mut counts = vec![0.0; layout.dimension()];
        for r in rows(&card, &[("25", "rent"), ("60", "own")]) {
            layout.add_row(&mut counts, &r, false).expect("dev");
        }
        for r in rows(&card, &[("40", "own")]) {
            layout.add_row(&mut counts, &r, true).expect("new");
        }
        // Development: the worst row is in the lowest band, the best in the highest.
        assert_eq!(&counts[..4], &[1.0, 0.0, 0.0, 1.0]);
        assert_eq!(&counts[4..9], &[1.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(counts[9..].iter().sum::<f64>(), 3.0);
        assert_eq!(&counts[9 + 4..], &[0.0, 1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn band_edges_span_the_attainable_points_and_clamp() {
        let card = card();
        let layout = StabilityLayout::new(&card, 10).expect("layout");
        let e = layout.edges();
        assert_eq!(e.len(), 11);
        let min: f64 = card
            .characteristics
            .iter()
            .map(|c| {
                c.bins
                    .iter()
                    .map(|b| b.points)
                    .fold(f64::INFINITY, f64::min)
            })
            .sum();
        assert_eq!(e[0], min);
        assert_eq!(layout.band_of(e[0] - 100.0), 0);
        assert_eq!(layout.band_of(e[10]), 9, "the last band is closed above");
        assert_eq!(layout.band_of(e[3]), 3, "a band includes its lower edge");
        assert!(StabilityLayout::new(&card, 0).is_err());
    }

    #[test]
    fn an_empty_bin_is_floored_not_infinite() {
        // Development has no row in bin 2; 10% of applicants fall there.
        let v = psi(&[50.0, 50.0, 0.0], &[45.0, 45.0, 10.0]).expect("psi");
        let expected =
            2.0 * (0.45 - 0.5) * (0.45f64 / 0.5).ln() + (0.1 - 1e-4) * (0.1f64 / 1e-4).ln();
        assert!((v - expected).abs() < 1e-12, "{v} vs {expected}");
        assert!(v.is_finite() && v > ALERT_ABOVE);
        // Both samples empty in a bin: no term at all.
        assert_eq!(psi(&[1.0, 0.0], &[2.0, 0.0]).expect("psi"), 0.0);
    }

    #[test]
    fn levels_follow_the_convention() {
        assert_eq!(Level::of(0.0), Level::Stable);
        assert_eq!(Level::of(0.0999), Level::Stable);
        assert_eq!(Level::of(0.10), Level::Watch);
        assert_eq!(Level::of(0.25), Level::Watch);
        assert_eq!(Level::of(0.2501), Level::Alert);
    }

    #[test]
    fn bad_counts_are_refused() {
        assert!(psi(&[1.0], &[1.0, 2.0]).is_err());
        assert!(psi(&[0.0, 0.0], &[1.0, 2.0]).is_err());
        assert!(psi(&[-1.0, 3.0], &[1.0, 2.0]).is_err());
        assert!(psi(&[f64::NAN, 3.0], &[1.0, 2.0]).is_err());
        let layout = StabilityLayout::new(&card(), 3).expect("layout");
        assert!(layout.report(&vec![1.0; layout.dimension() - 1]).is_err());
    }

    #[test]
    fn the_report_has_the_psi_of_the_score_and_each_csi() {
        let card = card();
        let layout = StabilityLayout::new(&card, 5).expect("layout");
        let mut counts = vec![0.0; layout.dimension()];
        let dev = [("25", "rent"), ("35", "own"), ("55", "own"), ("45", "free")];
        for r in rows(&card, &dev) {
            layout.add_row(&mut counts, &r, false).expect("dev");
        }
        // Same housing, all young: age shifts, housing does not.
        let new = [("21", "rent"), ("22", "own"), ("23", "own"), ("24", "free")];
        for r in rows(&card, &new) {
            layout.add_row(&mut counts, &r, true).expect("new");
        }
        let report = layout.report(&counts).expect("report");
        assert_eq!(report.development_rows, 4.0);
        assert_eq!(report.applicant_rows, 4.0);
        assert_eq!(report.characteristics[0].name, "age");
        assert_eq!(report.characteristics[0].level, Level::Alert);
        assert_eq!(report.characteristics[1].index, 0.0);
        assert_eq!(report.characteristics[1].level, Level::Stable);
        let json = serde_json::to_string(&report).expect("json");
        assert!(json.contains("\"edges\":[null,30.0]"), "{json}");
        let back: MonitorReport = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, report);
    }

    fn counts(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(0u32..1000, 1..max_len)
            .prop_filter("some rows", |v| v.iter().any(|c| *c > 0))
            .prop_map(|v| v.into_iter().map(f64::from).collect())
    }

    proptest! {
        #[test]
        fn psi_is_nonnegative_symmetric_and_scale_free(
            (e, a) in (2usize..12).prop_flat_map(|n| (counts_n(n), counts_n(n))),
            k in 1u32..1000,
        ) {
            let v = psi(&e, &a).expect("psi");
            prop_assert!(v >= 0.0 && v.is_finite());
            prop_assert_eq!(psi(&e, &e).expect("psi"), 0.0);
            let w = psi(&a, &e).expect("psi");
            prop_assert!((v - w).abs() <= 1e-12 * v.max(1.0), "{} vs {}", v, w);
            let scaled: Vec<f64> = a.iter().map(|c| c * f64::from(k)).collect();
            let s = psi(&e, &scaled).expect("psi");
            prop_assert!((v - s).abs() <= 1e-12 * v.max(1.0), "{} vs {}", v, s);
        }

        #[test]
        fn any_counts_make_a_finite_report(c in counts(40)) {
            let layout = StabilityLayout::new(&card(), 3).expect("layout");
            let mut v: Vec<f64> = c.iter().cycle().take(layout.dimension()).copied().collect();
            // Every half needs rows in its bands and in each characteristic.
            for x in v.iter_mut() { *x += 1.0; }
            let r = layout.report(&v).expect("report");
            prop_assert!(r.score.index >= 0.0 && r.score.index.is_finite());
            for c in &r.characteristics {
                prop_assert!(c.index >= 0.0 && c.index.is_finite());
            }
        }
    }

    fn counts_n(n: usize) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(0u32..1000, n)
            .prop_filter("some rows", |v| v.iter().any(|c| *c > 0))
            .prop_map(|v| v.into_iter().map(f64::from).collect())
    }
}
