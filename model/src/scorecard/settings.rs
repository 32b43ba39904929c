//! How features are binned: the settings of [`super::binning`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Direction of the WOE over a feature's bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// Whichever of the two directions keeps more IV.
    Auto,
    /// WOE rises from the first bin to the last (higher values, better risk).
    Increasing,
    /// WOE falls from the first bin to the last.
    Decreasing,
}

impl std::str::FromStr for Trend {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "increasing" => Ok(Self::Increasing),
            "decreasing" => Ok(Self::Decreasing),
            _ => Err(ModelError::InvalidSetting(format!(
                "trend `{s}`: expected `auto`, `increasing` or `decreasing`"
            ))),
        }
    }
}

/// How features are binned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinningSettings {
    /// Equal-width fine bins per numeric feature (2 to 200).
    pub fine_bins: usize,
    /// At most this many bins per feature, the missing bin aside.
    pub max_bins: usize,
    /// Each bin holds at least this share of the feature's non-missing
    /// rows (0 to 0.5); also the share below which a category is rare.
    pub min_bin_share: f64,
    /// The trend of every feature not named in `trends`.
    pub trend: Trend,
    /// Declared trends by feature name.
    pub trends: BTreeMap<String, Trend>,
}

impl Default for BinningSettings {
    fn default() -> Self {
        Self {
            fine_bins: 20,
            max_bins: 5,
            min_bin_share: 0.05,
            trend: Trend::Auto,
            trends: BTreeMap::new(),
        }
    }
}

impl BinningSettings {
    /// Error naming the first setting out of its range.
    pub fn validate(&self) -> Result<()> {
        if !(2..=200).contains(&self.fine_bins) {
            return Err(ModelError::InvalidSetting(format!(
                "fine_bins = {}: expected 2 to 200",
                self.fine_bins
            )));
        }
        if !(1..=self.fine_bins).contains(&self.max_bins) {
            return Err(ModelError::InvalidSetting(format!(
                "max_bins = {}: expected 1 to fine_bins ({})",
                self.max_bins, self.fine_bins
            )));
        }
        if !(0.0..=0.5).contains(&self.min_bin_share) {
            return Err(ModelError::InvalidSetting(format!(
                "min_bin_share = {}: expected 0 to 0.5",
                self.min_bin_share
            )));
        }
        Ok(())
    }

    pub(super) fn trend_of(&self, name: &str) -> Trend {
        self.trends.get(name).copied().unwrap_or(self.trend)
    }
}

fn default_fine_bins() -> usize {
    BinningSettings::default().fine_bins
}
fn default_max_bins() -> usize {
    BinningSettings::default().max_bins
}
fn default_min_bin_share() -> f64 {
    BinningSettings::default().min_bin_share
}
fn default_trend() -> Trend {
    Trend::Auto
}
fn default_pdo() -> f64 {
    super::PointsScale::default().pdo
}
fn default_base_score() -> f64 {
    super::PointsScale::default().base_score
}
fn default_base_odds() -> f64 {
    super::PointsScale::default().base_odds
}

/// A federated scorecard job's `[job.scorecard]` table: how the pooled
/// histograms are binned and how points are scaled. Part of the hashed job
/// spec, so every party bins and scores alike.
///
/// ```toml
/// [job.scorecard]
/// bounds = { duration = [4, 72], amount = [250, 18424] }  # every numeric feature
/// max_bins = 5
/// trends = { duration = "decreasing" }
/// pdo = 20
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardSpec {
    /// Public `[low, high]` of every numeric feature: its fine bins are
    /// equal-width over them, so no party's rows decide a cut point.
    pub bounds: BTreeMap<String, [f64; 2]>,
    /// Equal-width fine bins per numeric feature (2 to 200).
    #[serde(default = "default_fine_bins")]
    pub fine_bins: usize,
    /// At most this many bins per feature, the missing bin aside.
    #[serde(default = "default_max_bins")]
    pub max_bins: usize,
    /// Each bin holds at least this share of the feature's rows.
    #[serde(default = "default_min_bin_share")]
    pub min_bin_share: f64,
    /// The WOE trend of every feature not named in `trends`.
    #[serde(default = "default_trend")]
    pub trend: Trend,
    /// Declared trends by feature name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trends: BTreeMap<String, Trend>,
    /// Points to double the odds of good.
    #[serde(default = "default_pdo")]
    pub pdo: f64,
    /// Score at `base_odds`.
    #[serde(default = "default_base_score")]
    pub base_score: f64,
    /// Odds of good to bad at `base_score`.
    #[serde(default = "default_base_odds")]
    pub base_odds: f64,
}

impl ScorecardSpec {
    /// Default binning and points over `bounds`.
    pub fn with_bounds(bounds: BTreeMap<String, [f64; 2]>) -> Self {
        let (b, p) = (BinningSettings::default(), super::PointsScale::default());
        Self {
            bounds,
            fine_bins: b.fine_bins,
            max_bins: b.max_bins,
            min_bin_share: b.min_bin_share,
            trend: b.trend,
            trends: b.trends,
            pdo: p.pdo,
            base_score: p.base_score,
            base_odds: p.base_odds,
        }
    }

    /// The binning settings.
    pub fn binning(&self) -> BinningSettings {
        BinningSettings {
            fine_bins: self.fine_bins,
            max_bins: self.max_bins,
            min_bin_share: self.min_bin_share,
            trend: self.trend,
            trends: self.trends.clone(),
        }
    }

    /// The points scale.
    pub fn scale(&self) -> super::PointsScale {
        super::PointsScale {
            pdo: self.pdo,
            base_score: self.base_score,
            base_odds: self.base_odds,
        }
    }

    /// Checks the settings against the job's schema: bounds for exactly its
    /// numeric features, trends only for its features. Errors name the key.
    pub fn validate(&self, schema: &crate::schema::Schema) -> Result<()> {
        self.binning().validate()?;
        self.scale().validate()?;
        let bad = |why: String| Err(ModelError::InvalidSetting(format!("scorecard: {why}")));
        for f in &schema.features {
            if let crate::schema::Feature::Numeric { name } = f
                && !self.bounds.contains_key(name)
            {
                return bad(format!(
                    "bounds has no `{name}`: every numeric feature needs public [low, high] \
                     bounds for its fine bins"
                ));
            }
        }
        for (name, [low, high]) in &self.bounds {
            match schema.features.iter().find(|f| f.name() == name) {
                Some(crate::schema::Feature::Numeric { .. }) => {}
                Some(_) => return bad(format!("bounds names `{name}`, a categorical feature")),
                None => return bad(format!("bounds names `{name}`, which is not a feature")),
            }
            if !(low.is_finite() && high.is_finite() && low < high) {
                return bad(format!(
                    "bounds of `{name}` are [{low}, {high}]: expected finite numbers with low < high"
                ));
            }
        }
        if let Some(name) = self
            .trends
            .keys()
            .find(|n| !schema.features.iter().any(|f| f.name() == n.as_str()))
        {
            return bad(format!("trends names `{name}`, which is not a feature"));
        }
        Ok(())
    }
}
