//! Credit scorecards from pooled counts: binning, weight of evidence,
//! points and reason codes.
//!
//! Everything here works on *pooled* per-label histograms, so a federated
//! job only has to securely sum the parties' histogram vectors
//! ([`HistogramLayout::add_rows`]); no row leaves a party.
//!
//! - [`binning`]: equal-width fine bins over public bounds, category
//!   counts, the missing bin, and merging to at most `max_bins` monotonic
//!   bins of at least `min_bin_share` of the rows.
//! - [`settings`]: `max_bins`, `min_bin_share`, trends.
//! - [`woe`]: WOE and IV, with the convention `ln(good share / bad share)`.
//! - [`stability`]: PSI of the score and CSI per characteristic, from
//!   pooled counts of development rows and new applicants.
//! - [`Scorecard`] (here): points per bin from a logistic regression on the
//!   WOE-encoded features, and reason codes.
//!
//! **Points.** With `Factor = pdo / ln 2` and
//! `Offset = base_score − Factor·ln(base_odds)` (odds of good to bad), a
//! model `logit P(bad) = b + Σ_j β_j·WOE_j` scores
//! `Offset + Factor·ln(odds of good) = Offset − Factor·(b + Σ_j β_j·WOE_j)`.
//! The intercept and offset are spread evenly over the `n` features:
//!
//! ```text
//! points_jk = (Offset − Factor·b) / n − Factor·β_j·WOE_jk
//! ```
//!
//! so an applicant's total is exactly that score (up to floating-point
//! rounding; points are kept unrounded).
//!
//! **Reason codes.** For each feature, the points an applicant lost
//! against that feature's best bin; the three features with the largest
//! positive loss, largest first (ties in feature order).

pub mod binning;
pub mod settings;
pub mod stability;
pub mod woe;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::logistic::sigmoid;
use crate::schema::{Feature, Schema};

pub use binning::{BinStats, BinValues, FeatureBinning, HistogramLayout};
pub use settings::{BinningSettings, ScorecardSpec, Trend};
pub use woe::woe_iv;

/// How points are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointsScale {
    /// Points to double the odds of good.
    pub pdo: f64,
    /// Score at `base_odds`.
    pub base_score: f64,
    /// Odds of good to bad at `base_score` (50 means 50:1).
    pub base_odds: f64,
}

impl Default for PointsScale {
    fn default() -> Self {
        Self {
            pdo: 20.0,
            base_score: 600.0,
            base_odds: 50.0,
        }
    }
}

impl PointsScale {
    /// Error naming a setting that is not finite and positive (`base_score` may be any finite number).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("pdo", self.pdo), ("base_odds", self.base_odds)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ModelError::InvalidSetting(format!(
                    "{name} = {v}: expected a finite number > 0"
                )));
            }
        }
        if !self.base_score.is_finite() {
            return Err(ModelError::InvalidSetting(format!(
                "base_score = {}: expected a finite number",
                self.base_score
            )));
        }
        Ok(())
    }

    /// `pdo / ln 2`.
    pub fn factor(&self) -> f64 {
        self.pdo / std::f64::consts::LN_2
    }

    /// `base_score − Factor·ln(base_odds)`.
    pub fn offset(&self) -> f64 {
        self.base_score - self.factor() * self.base_odds.ln()
    }
}

/// One scorecard bin as `model.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// `edges: [low, high]` (`null` unbounded), `categories: [...]` or `missing: true`.
    #[serde(flatten)]
    pub values: BinValues,
    /// Pooled good (negative-label) rows.
    pub good: f64,
    /// Pooled bad (positive-label) rows.
    pub bad: f64,
    /// `ln(good share / bad share)`.
    pub woe: f64,
    /// Points an applicant in this bin gets.
    pub points: f64,
}

/// One characteristic of a scorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Characteristic {
    /// The feature (column) name.
    pub name: String,
    /// Information value.
    pub iv: f64,
    /// The WOE trend over its non-missing bins.
    pub trend: Trend,
    /// The model's coefficient on its WOE.
    pub coefficient: f64,
    /// Its bins.
    pub bins: Vec<Bin>,
}

/// A points scorecard (`model.json`'s `scorecard` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// Points to double the odds.
    pub pdo: f64,
    /// Score at `base_odds`.
    pub base_score: f64,
    /// Odds of good at `base_score`.
    pub base_odds: f64,
    /// `pdo / ln 2`, for readers.
    pub factor: f64,
    /// `base_score − factor·ln(base_odds)`, for readers.
    pub offset: f64,
    /// The model's intercept on the WOE features (`logit P(bad)`).
    pub intercept: f64,
    /// The raw features applicants are read with (as a plain model's `schema`).
    pub schema: Schema,
    /// One per feature, in schema order.
    pub characteristics: Vec<Characteristic>,
}

/// One applicant scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// `P(bad)`.
    pub probability: f64,
    /// Total points.
    pub points: f64,
    /// Up to three characteristic indices, most points lost first.
    pub reasons: Vec<usize>,
}

impl Scorecard {
    /// Points for `binnings` (one per feature of `schema`, in order) under
    /// a model `logit P(bad) = intercept + Σ_j coefficients[j]·WOE_j`.
    pub fn new(
        schema: Schema,
        binnings: Vec<FeatureBinning>,
        intercept: f64,
        coefficients: &[f64],
        scale: PointsScale,
    ) -> Result<Self> {
        scale.validate()?;
        crate::error::check_len("features binned", schema.features.len(), binnings.len())?;
        crate::error::check_len("coefficients", binnings.len(), coefficients.len())?;
        crate::error::check_finite("coefficients", coefficients)?;
        crate::error::check_finite("intercept", &[intercept])?;
        let (factor, offset) = (scale.factor(), scale.offset());
        let share = (offset - factor * intercept) / binnings.len().max(1) as f64;
        let mut characteristics = Vec::with_capacity(binnings.len());
        for ((f, b), &beta) in schema.features.iter().zip(binnings).zip(coefficients) {
            if f.name() != b.name {
                return Err(ModelError::InvalidSetting(format!(
                    "binning of `{}` where the schema has `{}`",
                    b.name,
                    f.name()
                )));
            }
            let bins = b
                .bins
                .into_iter()
                .map(|s| Bin {
                    points: share - factor * beta * s.woe,
                    values: s.values,
                    good: s.good,
                    bad: s.bad,
                    woe: s.woe,
                })
                .collect();
            characteristics.push(Characteristic {
                name: b.name,
                iv: b.iv,
                trend: b.trend,
                coefficient: beta,
                bins,
            });
        }
        Ok(Self {
            pdo: scale.pdo,
            base_score: scale.base_score,
            base_odds: scale.base_odds,
            factor,
            offset,
            intercept,
            schema,
            characteristics,
        })
    }

    /// The characteristics, largest information value first (ties in
    /// scorecard order): how a scorecard is usually read.
    pub fn by_iv(&self) -> Vec<&Characteristic> {
        let mut v: Vec<&Characteristic> = self.characteristics.iter().collect();
        v.sort_by(|a, b| b.iv.total_cmp(&a.iv));
        v
    }

    /// Each characteristic's bin for an encoded, unstandardized row (as
    /// [`crate::Encoder`] makes from `self.schema`; NaN = missing).
    pub fn bins_of(&self, row: &[f64]) -> Result<Vec<usize>> {
        bins_of(
            &self.schema,
            self.characteristics
                .iter()
                .map(|c| c.bins.iter().map(|b| &b.values)),
            row,
        )
    }

    /// Probability, points and reason codes of an encoded row.
    ///
    /// ```
    /// # use fedcredit_model::scorecard::*;
    /// # use fedcredit_model::{Feature, LabelSpec, Schema};
    /// # let schema = Schema { label: LabelSpec::binary("y", "bad", "good"),
    /// #     features: vec![Feature::Numeric { name: "age".into() }] };
    /// let bins = vec![FeatureBinning { name: "age".into(), iv: 0.2, trend: Trend::Increasing,
    ///     bins: vec![
    ///         BinStats { values: BinValues::Edges([None, Some(30.0)]), good: 40.0, bad: 20.0, woe: -0.5 },
    ///         BinStats { values: BinValues::Edges([Some(30.0), None]), good: 60.0, bad: 10.0, woe: 0.6 },
    ///     ] }];
    /// let card = Scorecard::new(schema, bins, -1.2, &[-1.0], PointsScale::default()).unwrap();
    /// let young = card.assess(&[25.0]).unwrap();
    /// // Offset + Factor·ln(odds of good), with logit P(bad) = −1.2 − 1.0·(−0.5).
    /// let logit: f64 = -1.2 + 0.5;
    /// assert!((young.points - (card.offset - card.factor * logit)).abs() < 1e-9);
    /// assert_eq!(young.reasons, [0]);
    /// assert!(card.assess(&[45.0]).unwrap().reasons.is_empty());
    /// ```
    pub fn assess(&self, row: &[f64]) -> Result<Assessment> {
        let bins = self.bins_of(row)?;
        let mut logit = self.intercept;
        let mut points = 0.0;
        let mut lost = Vec::with_capacity(bins.len());
        for (j, (c, &k)) in self.characteristics.iter().zip(&bins).enumerate() {
            let bin = &c.bins[k];
            logit += c.coefficient * bin.woe;
            points += bin.points;
            let best = c
                .bins
                .iter()
                .map(|b| b.points)
                .fold(f64::NEG_INFINITY, f64::max);
            if best - bin.points > 0.0 {
                lost.push((j, best - bin.points));
            }
        }
        lost.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(Assessment {
            probability: sigmoid(logit),
            points,
            reasons: lost.into_iter().take(3).map(|(j, _)| j).collect(),
        })
    }
}

/// The schema of WOE-encoded rows: the same label, one numeric
/// `woe(<feature>)` column per feature of `schema`.
pub fn woe_schema(schema: &Schema) -> Schema {
    Schema {
        label: schema.label.clone(),
        features: schema
            .features
            .iter()
            .map(|f| Feature::Numeric {
                name: format!("woe({})", f.name()),
            })
            .collect(),
    }
}

/// Encodes rows as the WOE of each feature's bin: the features a
/// scorecard's logistic regression is fitted on.
#[derive(Debug, Clone, PartialEq)]
pub struct WoeEncoder {
    schema: Schema,
    binnings: Vec<FeatureBinning>,
}

impl WoeEncoder {
    /// For `binnings`, one per feature of `schema`, in order.
    pub fn new(schema: Schema, binnings: Vec<FeatureBinning>) -> Result<Self> {
        crate::error::check_len("features binned", schema.features.len(), binnings.len())?;
        for (f, b) in schema.features.iter().zip(&binnings) {
            if f.name() != b.name {
                return Err(ModelError::InvalidSetting(format!(
                    "binning of `{}` where the schema has `{}`",
                    b.name,
                    f.name()
                )));
            }
        }
        Ok(Self { schema, binnings })
    }

    /// Number of WOE columns (one per feature).
    pub fn width(&self) -> usize {
        self.binnings.len()
    }

    /// Writes the WOE of each feature of encoded row `row` into `out`.
    pub fn encode(&self, row: &[f64], out: &mut [f64]) -> Result<()> {
        crate::error::check_len("WOE row", self.width(), out.len())?;
        let bins = bins_of(
            &self.schema,
            self.binnings
                .iter()
                .map(|b| b.bins.iter().map(|s| &s.values)),
            row,
        )?;
        for ((o, b), k) in out.iter_mut().zip(&self.binnings).zip(bins) {
            *o = b.bins[k].woe;
        }
        Ok(())
    }

    /// The binnings, e.g. for [`Scorecard::new`].
    pub fn into_binnings(self) -> Vec<FeatureBinning> {
        self.binnings
    }
}

/// Each feature's bin (among `bins`, one list per feature of `schema`)
/// for an encoded row; NaN = missing.
fn bins_of<'a, F, B>(schema: &Schema, bins: F, row: &[f64]) -> Result<Vec<usize>>
where
    F: Iterator<Item = B>,
    B: Iterator<Item = &'a BinValues> + Clone,
{
    crate::error::check_len("encoded row", schema.encoded_width(), row.len())?;
    let mut col = 0;
    let mut out = Vec::with_capacity(schema.features.len());
    for (f, values) in schema.features.iter().zip(bins) {
        let missing = || {
            values
                .clone()
                .position(|v| matches!(v, BinValues::Missing(_)))
        };
        let found = match f {
            Feature::Numeric { name } => {
                let v = row[col];
                if v.is_nan() {
                    missing()
                } else {
                    values.clone().position(|b| match b {
                        BinValues::Edges([low, high]) => {
                            low.is_none_or(|l| v >= l) && high.is_none_or(|h| v < h)
                        }
                        _ => false,
                    })
                }
                .ok_or_else(|| no_bin(name, &v.to_string()))
            }
            Feature::Categorical { name, categories } => {
                let indicators = &row[col..col + f.encoded_width()];
                if indicators.iter().any(|v| v.is_nan()) {
                    missing().ok_or_else(|| no_bin(name, "NaN"))
                } else {
                    let k = indicators
                        .iter()
                        .position(|v| *v == 1.0)
                        .map_or(0, |k| k + 1);
                    let category = &categories[k];
                    values
                        .clone()
                        .position(|b| match b {
                            BinValues::Categories(cs) => cs.contains(category),
                            _ => false,
                        })
                        .ok_or_else(|| no_bin(name, category))
                }
            }
        }?;
        out.push(found);
        col += f.encoded_width();
    }
    Ok(out)
}

fn no_bin(column: &str, value: &str) -> ModelError {
    ModelError::OutsideBins {
        column: column.to_owned(),
        value: value.to_owned(),
    }
}

#[cfg(test)]
mod tests;
