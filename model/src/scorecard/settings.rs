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
