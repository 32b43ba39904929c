//! Fine pre-binning into per-label histograms, and merging pooled
//! histograms into scorecard bins.
//!
//! **Fine bins.** A numeric feature gets `fine_bins` equal-width bins over
//! its public bounds `[low, high]`: the cut points follow from the bounds
//! alone, so every party bins alike without seeing any row, and values
//! outside the bounds fall into the end bins. (Quantile cut points would be
//! closer to the data but need the data, i.e. private quantiles, first.)
//! A value `v` is in fine bin `i` when `cut[i−1] ≤ v < cut[i]`. A
//! categorical feature gets one fine bin per category of the schema. Every
//! feature has one more bin for missing values (a NaN in an encoded row).
//!
//! **A party's histogram vector** ([`HistogramLayout::add_rows`]) holds, for
//! each feature in schema order, a `(good, bad)` pair per fine bin and then
//! the pair of the missing bin. Vectors add element-wise, so the pooled
//! histogram is the plain (or securely aggregated) sum of the parties'.
//!
//! **Merging** ([`HistogramLayout::bin_features`]), on pooled counts only:
//!
//! 1. numeric: empty fine bins join their left neighbour (the first, its
//!    right one); categorical: categories whose share of the feature's rows
//!    is below `min_bin_share` (and categories with no rows at all) form
//!    one "rare" group, and the groups are ordered by WOE;
//! 2. then, until nothing changes, one merge of two adjacent bins at a
//!    time, always the pair that loses the least IV: first while a bin
//!    holds less than `min_bin_share` of the non-missing rows (it merges
//!    with the better of its neighbours), then while two neighbours break
//!    the strictly monotonic WOE trend, then while there are more than
//!    `max_bins` bins. Every merge removes a bin, so this ends, and when it
//!    ends all three rules hold (a single bin holds them trivially);
//! 3. trend `auto` runs step 2 for both directions and keeps the one with
//!    the larger IV (optbinning's `auto_asc_desc`); a categorical feature,
//!    ordered by WOE, is increasing by construction.
//!
//! The missing bin stays its own bin (as optbinning's special bins): it is
//! not merged and counts toward neither `max_bins` nor the trend; it is
//! left out when the pooled rows have no missing value.

use std::collections::BTreeMap;

use ndarray::{ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::settings::{BinningSettings, Trend};
use super::woe::woe_iv;
use crate::error::{ModelError, Result};
use crate::schema::{Feature, Schema};

/// Which values a scorecard bin holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinValues {
    /// Numeric values `low ≤ v < high`; `None` is unbounded.
    Edges([Option<f64>; 2]),
    /// These categories.
    Categories(Vec<String>),
    /// Missing values (always `true`).
    Missing(bool),
}

/// One merged bin with its pooled counts and WOE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinStats {
    /// What falls in it.
    pub values: BinValues,
    /// Pooled negative-label (good) rows.
    pub good: f64,
    /// Pooled positive-label (bad) rows.
    pub bad: f64,
    /// Weight of evidence (see [`super::woe`]).
    pub woe: f64,
}

/// A feature's merged bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureBinning {
    /// The feature.
    pub name: String,
    /// Its bins in order: ranges by value, or category groups by WOE; the
    /// missing bin, if any, last.
    pub bins: Vec<BinStats>,
    /// Information value over all its bins.
    pub iv: f64,
    /// The WOE trend of its non-missing bins.
    pub trend: Trend,
}

/// One feature's fine bins and where it sits in encoded rows.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Numeric {
        name: String,
        /// Its encoded column.
        col: usize,
        /// Interior cut points, ascending (`fine_bins − 1` of them).
        cuts: Vec<f64>,
    },
    Categorical {
        name: String,
        /// Its first indicator column.
        col: usize,
        categories: Vec<String>,
    },
}

impl Slot {
    /// Fine bins, the missing bin aside.
    fn bins(&self) -> usize {
        match self {
            Slot::Numeric { cuts, .. } => cuts.len() + 1,
            Slot::Categorical { categories, .. } => categories.len(),
        }
    }

    /// The fine bin of this feature's value in an encoded row; `None` when missing.
    fn fine_bin(&self, row: &[f64]) -> Option<usize> {
        match self {
            Slot::Numeric { col, cuts, .. } => {
                let v = row[*col];
                (!v.is_nan()).then(|| cuts.partition_point(|c| *c <= v))
            }
            Slot::Categorical {
                col, categories, ..
            } => {
                let indicators = &row[*col..*col + categories.len() - 1];
                if indicators.iter().any(|v| v.is_nan()) {
                    return None;
                }
                Some(
                    indicators
                        .iter()
                        .position(|v| *v == 1.0)
                        .map_or(0, |k| k + 1),
                )
            }
        }
    }
}

/// The fine bins of every feature of a schema, and the layout of a party's
/// histogram vector (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramLayout {
    slots: Vec<Slot>,
    /// Encoded width of the rows it reads.
    width: usize,
}

impl HistogramLayout {
    /// Fine bins for `schema`: `fine_bins` equal-width bins over
    /// `bounds[name] = [low, high]` of every numeric feature (public
    /// bounds; `low < high`), one per category of a categorical one.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use fedcredit_model::scorecard::HistogramLayout;
    /// use fedcredit_model::{Feature, LabelSpec, Schema};
    ///
    /// let schema = Schema {
    ///     label: LabelSpec::binary("y", "bad", "good"),
    ///     features: vec![Feature::Numeric { name: "age".into() }],
    /// };
    /// let bounds = BTreeMap::from([("age".to_owned(), [20.0, 60.0])]);
    /// let layout = HistogramLayout::new(&schema, &bounds, 4).unwrap();
    /// // Four fine bins and the missing bin, a (good, bad) pair each.
    /// assert_eq!(layout.len(), 10);
    /// assert_eq!(layout.cuts("age"), Some(&[30.0, 40.0, 50.0][..]));
    /// ```
    pub fn new(
        schema: &Schema,
        bounds: &BTreeMap<String, [f64; 2]>,
        fine_bins: usize,
    ) -> Result<Self> {
        schema.validate()?;
        if !(2..=200).contains(&fine_bins) {
            return Err(ModelError::InvalidSetting(format!(
                "fine_bins = {fine_bins}: expected 2 to 200"
            )));
        }
        let mut slots = Vec::with_capacity(schema.features.len());
        let mut col = 0;
        for f in &schema.features {
            match f {
                Feature::Numeric { name } => {
                    let [low, high] = *bounds.get(name).ok_or_else(|| {
                        ModelError::InvalidSetting(format!(
                            "numeric feature `{name}` has no bounds to bin it over"
                        ))
                    })?;
                    if !(low.is_finite() && high.is_finite() && low < high) {
                        return Err(ModelError::InvalidSetting(format!(
                            "feature `{name}`: bounds [{low}, {high}] are not finite with low < high"
                        )));
                    }
                    // k·(high − low) / n before adding: 4 + 68·9/20 is 34.6, where
                    // 4 + 9·(68/20) is 34.599999999999994.
                    let n = fine_bins as f64;
                    let cuts = (1..fine_bins)
                        .map(|k| low + (high - low) * k as f64 / n)
                        .collect();
                    slots.push(Slot::Numeric {
                        name: name.clone(),
                        col,
                        cuts,
                    });
                }
                Feature::Categorical { name, categories } => slots.push(Slot::Categorical {
                    name: name.clone(),
                    col,
                    categories: categories.clone(),
                }),
            }
            col += f.encoded_width();
        }
        Ok(Self { slots, width: col })
    }

    /// Length of a histogram vector.
    pub fn len(&self) -> usize {
        self.slots.iter().map(|s| 2 * (s.bins() + 1)).sum()
    }

    /// Whether the schema has no features.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The interior fine cut points of numeric feature `name`.
    pub fn cuts(&self, name: &str) -> Option<&[f64]> {
        self.slots.iter().find_map(|s| match s {
            Slot::Numeric { name: n, cuts, .. } if n == name => Some(cuts.as_slice()),
            _ => None,
        })
    }

    /// Adds one party's encoded, unstandardized rows `x` (NaN = missing)
    /// with labels `y` (1 = bad) to its histogram vector `hist`.
    pub fn add_rows(
        &self,
        x: ArrayView2<'_, f64>,
        y: ArrayView1<'_, f64>,
        hist: &mut [f64],
    ) -> Result<()> {
        crate::error::check_len("histogram vector", self.len(), hist.len())?;
        crate::error::check_len("encoded row width", self.width, x.ncols())?;
        crate::error::check_len("labels (one per row)", x.nrows(), y.len())?;
        crate::logistic::check_labels(y)?;
        let mut row = vec![0.0; self.width];
        for (r, &label) in x.rows().into_iter().zip(y) {
            for (dst, v) in row.iter_mut().zip(r) {
                *dst = *v;
            }
            let mut offset = 0;
            for slot in &self.slots {
                let bin = slot.fine_bin(&row).unwrap_or(slot.bins());
                hist[offset + 2 * bin + usize::from(label == 1.0)] += 1.0;
                offset += 2 * (slot.bins() + 1);
            }
        }
        Ok(())
    }

    /// The `[good, bad]` row counts of a histogram vector (every feature
    /// counts every row once, so the first feature's bins tell).
    pub fn totals(&self, hist: &[f64]) -> Result<[f64; 2]> {
        crate::error::check_len("histogram vector", self.len(), hist.len())?;
        let n = self.slots.first().map_or(0, |s| 2 * (s.bins() + 1));
        let mut totals = [0.0; 2];
        for pair in hist[..n].chunks_exact(2) {
            totals[0] += pair[0];
            totals[1] += pair[1];
        }
        Ok(totals)
    }

    /// Merges the pooled histogram `pooled` (the sum of the parties'
    /// vectors) into every feature's bins (see the module doc).
    pub fn bin_features(
        &self,
        pooled: &[f64],
        settings: &BinningSettings,
    ) -> Result<Vec<FeatureBinning>> {
        settings.validate()?;
        crate::error::check_len("pooled histogram vector", self.len(), pooled.len())?;
        if let Some(v) = pooled.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(ModelError::InvalidSetting(format!(
                "pooled histogram count {v} is not a finite count ≥ 0"
            )));
        }
        let mut offset = 0;
        let mut out = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let n = slot.bins() + 1;
            let counts: Vec<[f64; 2]> = pooled[offset..offset + 2 * n]
                .chunks_exact(2)
                .map(|c| [c[0], c[1]])
                .collect();
            offset += 2 * n;
            out.push(bin_one(slot, &counts, settings)?);
        }
        Ok(out)
    }
}

/// A group of fine bins (adjacent for a numeric feature) and its counts.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    members: Vec<usize>,
    counts: [f64; 2],
}

fn merged(a: &Group, b: &Group) -> Group {
    let mut members = a.members.clone();
    members.extend(&b.members);
    Group {
        members,
        counts: [a.counts[0] + b.counts[0], a.counts[1] + b.counts[1]],
    }
}

/// Bins one feature from its pooled fine counts (the missing bin last).
fn bin_one(slot: &Slot, counts: &[[f64; 2]], settings: &BinningSettings) -> Result<FeatureBinning> {
    let (fine, missing) = counts.split_at(counts.len() - 1);
    let missing = missing[0];
    let missing = (missing[0] + missing[1] > 0.0).then_some(missing);
    let name = match slot {
        Slot::Numeric { name, .. } | Slot::Categorical { name, .. } => name,
    };
    let goods: f64 = counts.iter().map(|c| c[0]).sum();
    let bads: f64 = counts.iter().map(|c| c[1]).sum();
    if goods == 0.0 || bads == 0.0 {
        return Err(ModelError::InvalidSetting(format!(
            "feature `{name}`: the pooled rows have {goods} good and {bads} bad rows; WOE needs both"
        )));
    }
    let nonmissing: f64 = fine.iter().map(|c| c[0] + c[1]).sum();
    let min_rows = settings.min_bin_share * nonmissing;
    let (groups, trend) = match slot {
        Slot::Numeric { .. } => {
            let groups = absorb_empty(fine);
            match settings.trend_of(name) {
                Trend::Auto => {
                    let up = merge(
                        groups.clone(),
                        missing,
                        Trend::Increasing,
                        min_rows,
                        settings,
                    );
                    let down = merge(groups, missing, Trend::Decreasing, min_rows, settings);
                    if iv_of(&down, missing) > iv_of(&up, missing) {
                        (down, Trend::Decreasing)
                    } else {
                        (up, Trend::Increasing)
                    }
                }
                t => (merge(groups, missing, t, min_rows, settings), t),
            }
        }
        Slot::Categorical { .. } => {
            let groups = category_groups(fine, missing, min_rows);
            let trend = Trend::Increasing;
            (merge(groups, missing, trend, min_rows, settings), trend)
        }
    };
    let mut all: Vec<[f64; 2]> = groups.iter().map(|g| g.counts).collect();
    all.extend(missing);
    let (woe, iv) = woe_iv(&all);
    let mut bins = Vec::with_capacity(all.len());
    for (k, g) in groups.iter().enumerate() {
        let values = match slot {
            Slot::Numeric { cuts, .. } => {
                let first = g.members[0];
                let last = g.members[g.members.len() - 1];
                let low = (k > 0).then(|| cuts[first - 1]);
                let high = (k + 1 < groups.len()).then(|| cuts[last]);
                BinValues::Edges([low, high])
            }
            Slot::Categorical { categories, .. } => {
                let mut names: Vec<String> =
                    g.members.iter().map(|&i| categories[i].clone()).collect();
                names.sort();
                BinValues::Categories(names)
            }
        };
        bins.push(BinStats {
            values,
            good: g.counts[0],
            bad: g.counts[1],
            woe: woe[k],
        });
    }
    if let Some(m) = missing {
        bins.push(BinStats {
            values: BinValues::Missing(true),
            good: m[0],
            bad: m[1],
            woe: woe[groups.len()],
        });
    }
    Ok(FeatureBinning {
        name: name.clone(),
        bins,
        iv,
        trend,
    })
}

/// Numeric fine bins as groups, each empty one joined to its left
/// neighbour (leading empty ones to the first non-empty bin); all in one
/// group when every fine bin is empty.
fn absorb_empty(fine: &[[f64; 2]]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut pending = Vec::new();
    for (i, c) in fine.iter().enumerate() {
        let empty = c[0] + c[1] == 0.0;
        match groups.last_mut() {
            Some(g) if empty => g.members.push(i),
            _ if empty => pending.push(i),
            _ => {
                let mut members = std::mem::take(&mut pending);
                members.push(i);
                groups.push(Group {
                    members,
                    counts: *c,
                });
            }
        }
    }
    if groups.is_empty() {
        groups.push(Group {
            members: pending,
            counts: [0.0, 0.0],
        });
    }
    groups
}

/// Category groups: the rare categories (below `min_rows`, or without
/// rows) in one group, every other category alone, ordered by WOE; a
/// rare group without rows joins the largest group.
fn category_groups(fine: &[[f64; 2]], missing: Option<[f64; 2]>, min_rows: f64) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut rare = Group {
        members: Vec::new(),
        counts: [0.0, 0.0],
    };
    for (i, c) in fine.iter().enumerate() {
        let n = c[0] + c[1];
        if n == 0.0 || n < min_rows {
            rare = merged(
                &rare,
                &Group {
                    members: vec![i],
                    counts: *c,
                },
            );
        } else {
            groups.push(Group {
                members: vec![i],
                counts: *c,
            });
        }
    }
    if !rare.members.is_empty() {
        if rare.counts[0] + rare.counts[1] > 0.0 || groups.is_empty() {
            groups.push(rare);
        } else if let Some(largest) = groups
            .iter_mut()
            .max_by(|a, b| (a.counts[0] + a.counts[1]).total_cmp(&(b.counts[0] + b.counts[1])))
        {
            *largest = merged(largest, &rare);
        }
    }
    let mut all: Vec<[f64; 2]> = groups.iter().map(|g| g.counts).collect();
    all.extend(missing);
    let (woe, _) = woe_iv(&all);
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| woe[a].total_cmp(&woe[b]).then(a.cmp(&b)));
    order.into_iter().map(|i| groups[i].clone()).collect()
}

fn iv_of(groups: &[Group], missing: Option<[f64; 2]>) -> f64 {
    let mut all: Vec<[f64; 2]> = groups.iter().map(|g| g.counts).collect();
    all.extend(missing);
    woe_iv(&all).1
}

/// Step 2 of the module doc: merges adjacent groups until every group
/// holds `min_rows`, the WOE is strictly monotonic in `trend` and there
/// are at most `max_bins` groups.
fn merge(
    mut groups: Vec<Group>,
    missing: Option<[f64; 2]>,
    trend: Trend,
    min_rows: f64,
    settings: &BinningSettings,
) -> Vec<Group> {
    while groups.len() > 1 {
        let mut all: Vec<[f64; 2]> = groups.iter().map(|g| g.counts).collect();
        all.extend(missing);
        let (woe, _) = woe_iv(&all);
        // IV after merging groups i and i + 1.
        let iv_after = |i: usize| {
            let mut g = groups.clone();
            let m = merged(&g[i], &g[i + 1]);
            g.splice(i..=i + 1, [m]);
            iv_of(&g, missing)
        };
        let best = |pairs: &mut dyn Iterator<Item = usize>| {
            pairs
                .map(|i| (i, iv_after(i)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(i, _)| i)
        };
        let rows = |g: &Group| g.counts[0] + g.counts[1];
        let small = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| rows(g) < min_rows)
            .min_by(|a, b| rows(a.1).total_cmp(&rows(b.1)).then(a.0.cmp(&b.0)))
            .map(|(i, _)| i);
        let pair = if let Some(i) = small {
            let left = i.checked_sub(1);
            let right = (i + 1 < groups.len()).then_some(i);
            best(&mut left.into_iter().chain(right))
        } else {
            let violates = |i: &usize| match trend {
                Trend::Decreasing => woe[i + 1] >= woe[*i],
                _ => woe[i + 1] <= woe[*i],
            };
            let mut broken = (0..groups.len() - 1).filter(violates).peekable();
            if broken.peek().is_some() {
                best(&mut broken)
            } else if groups.len() > settings.max_bins {
                best(&mut (0..groups.len() - 1))
            } else {
                None
            }
        };
        let Some(i) = pair else { break };
        let m = merged(&groups[i], &groups[i + 1]);
        groups.splice(i..=i + 1, [m]);
    }
    groups
}
