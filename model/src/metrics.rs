//! Discrimination and calibration metrics: exact AUC / KS from scores, and
//! their pooled versions from securely aggregated score histograms (no
//! score leaves a party).
//!
//! # Layout of an evaluation-round vector (`B` bins)
//!
//! | offset | length | content |
//! | --- | --- | --- |
//! | `0` | `B` | histogram of positive-class scores |
//! | `B` | `B` | histogram of negative-class scores |
//! | `2B` | 1 | `Σ logloss_i` |
//! | `2B + 1` | 1 | number of positives |
//! | `2B + 2` | 1 | number of negatives |
//!
//! Bin `k` holds scores in `[k/B, (k+1)/B)`; a score of exactly 1 goes in
//! the last bin. Pairs in the same bin count 1/2 toward the AUC (as ties);
//! the KS statistic is evaluated at bin edges.
//!
//! ```
//! use fedcredit_model::metrics::{auc_exact, local_eval_terms, pooled_metrics};
//!
//! let scores = [0.1, 0.4, 0.35, 0.8];
//! let labels = [0.0, 0.0, 1.0, 1.0];
//! assert_eq!(auc_exact(&scores, &labels).unwrap(), 0.75);
//!
//! let a = local_eval_terms(&scores[..2], &labels[..2], 10_000).unwrap();
//! let b = local_eval_terms(&scores[2..], &labels[2..], 10_000).unwrap();
//! let sum: Vec<f64> = a.iter().zip(&b).map(|(u, v)| u + v).collect();
//! let m = pooled_metrics(&sum, 10_000).unwrap();
//! assert_eq!(m.auc, Some(0.75));
//! assert_eq!(m.ks, Some(0.5));
//! assert_eq!(m.default_rate, 0.5);
//! ```

use ndarray::ArrayView1;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result, check_finite, check_len};
use crate::logistic::check_labels;

/// Default number of histogram bins over `[0, 1]`.
pub const DEFAULT_BINS: usize = 10_000;

/// Fewest bins accepted (coarser histograms bias AUC and KS noticeably).
pub const MIN_BINS: usize = 1_000;
/// Most bins an evaluation round may ask for (2·bins + 3 values per party).
pub const MAX_BINS: usize = 1_000_000;

/// Pooled or local evaluation metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Area under the ROC curve; `None` when one class is absent.
    pub auc: Option<f64>,
    /// Kolmogorov–Smirnov statistic `max |F_pos − F_neg|`; `None` when one class is absent.
    pub ks: Option<f64>,
    /// Mean log-loss (probabilities clipped to `[ε, 1−ε]`, ε = `f64::EPSILON`).
    pub logloss: f64,
    /// Share of positives (defaults).
    pub default_rate: f64,
    /// Number of rows.
    pub n: f64,
}

/// Histogram resolution for the evaluation round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreHistogram {
    bins: usize,
}

impl Default for ScoreHistogram {
    fn default() -> Self {
        Self { bins: DEFAULT_BINS }
    }
}

impl ScoreHistogram {
    /// A histogram with `MIN_BINS ≤ bins ≤ MAX_BINS` equal-width bins over
    /// `[0, 1]`. The upper bound keeps an evaluation vector (2·bins + 3
    /// values per party) to a size every participant can allocate.
    pub fn new(bins: usize) -> Result<Self> {
        if !(MIN_BINS..=MAX_BINS).contains(&bins) {
            return Err(ModelError::InvalidParameter {
                name: "bins",
                reason: format!("{bins} (must be between {MIN_BINS} and {MAX_BINS})"),
            });
        }
        Ok(Self { bins })
    }

    /// A histogram for a private evaluation: fewer bins are allowed
    /// ([`crate::privacy::MIN_PRIVATE_BINS`] up to [`MAX_BINS`]), since
    /// noise, not binning, limits its accuracy.
    pub fn private(bins: usize) -> Result<Self> {
        let min = crate::privacy::MIN_PRIVATE_BINS;
        if !(min..=MAX_BINS).contains(&bins) {
            return Err(ModelError::InvalidParameter {
                name: "bins",
                reason: format!("{bins} (a private evaluation needs {min} to {MAX_BINS})"),
            });
        }
        Ok(Self { bins })
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Length of an evaluation-round vector: `2·bins + 3`.
    pub fn terms_len(&self) -> usize {
        2 * self.bins + 3
    }

    /// Bin of a probability in `[0, 1]`.
    pub fn bin_of(&self, score: f64) -> usize {
        ((score * self.bins as f64) as usize).min(self.bins - 1)
    }

    /// One party's evaluation-round vector (layout in the module docs).
    pub fn local_terms(&self, scores: &[f64], labels: &[f64]) -> Result<Vec<f64>> {
        self.local_terms_clipped(scores, labels, f64::INFINITY)
    }

    /// [`ScoreHistogram::local_terms`] with each row's log-loss clipped to
    /// `loss_clip` (private evaluation: one row moves the loss sum by at most that).
    pub fn local_terms_clipped(
        &self,
        scores: &[f64],
        labels: &[f64],
        loss_clip: f64,
    ) -> Result<Vec<f64>> {
        check_len("labels (one per score)", scores.len(), labels.len())?;
        check_labels(ArrayView1::from(labels))?;
        let b = self.bins;
        let mut out = vec![0.0; self.terms_len()];
        let mut loss = 0.0;
        let (mut n_pos, mut n_neg) = (0.0, 0.0);
        for (index, (&s, &y)) in scores.iter().zip(labels).enumerate() {
            if !(0.0..=1.0).contains(&s) {
                return Err(ModelError::ScoreOutOfRange { index, value: s });
            }
            let k = self.bin_of(s);
            if y == 1.0 {
                out[k] += 1.0;
                n_pos += 1.0;
            } else {
                out[b + k] += 1.0;
                n_neg += 1.0;
            }
            loss += prob_logloss(s, y).min(loss_clip);
        }
        out[2 * b] = loss;
        out[2 * b + 1] = n_pos;
        out[2 * b + 2] = n_neg;
        Ok(out)
    }

    /// Metrics from an aggregated evaluation-round vector.
    pub fn pooled(&self, terms: &[f64]) -> Result<Metrics> {
        check_len("evaluation-round vector", self.terms_len(), terms.len())?;
        check_finite("evaluation-round vector", terms)?;
        let b = self.bins;
        let (pos, rest) = terms.split_at(b);
        let (neg, tail) = rest.split_at(b);
        let (loss, n_pos, n_neg) = (tail[0], tail[1], tail[2]);
        if let Some(i) = pos.iter().chain(neg).position(|c| *c < -0.5) {
            return Err(ModelError::InconsistentAggregate(format!(
                "histogram entry {i} is negative ({})",
                terms[i]
            )));
        }
        let (tp, tn) = (pos.iter().sum::<f64>(), neg.iter().sum::<f64>());
        for (what, total, count) in [("positive", tp, n_pos), ("negative", tn, n_neg)] {
            if (total - count).abs() > 0.5 + 1e-9 * count.abs() {
                return Err(ModelError::InconsistentAggregate(format!(
                    "{what} histogram holds {total} scores but the {what} count is {count}"
                )));
            }
        }
        let n = n_pos + n_neg;
        if n <= 0.0 {
            return Err(ModelError::Empty {
                what: "the evaluation-round row count is not positive",
            });
        }
        let (auc, ks) = if tp > 0.0 && tn > 0.0 {
            let groups = pos.iter().copied().zip(neg.iter().copied());
            let (a, k) = auc_ks_from_groups(groups, tp, tn);
            (Some(a), Some(k))
        } else {
            (None, None)
        };
        Ok(Metrics {
            auc,
            ks,
            logloss: loss / n,
            default_rate: n_pos / n,
            n,
        })
    }
}

impl ScoreHistogram {
    /// Metrics from a *noisy* evaluation-round vector (private evaluation).
    /// Bins keep their signed noisy counts: AUC and the cumulative
    /// distributions are linear in them, so zero-mean noise stays zero-mean
    /// (clamping each bin at 0 would bias sparse histograms upward). The
    /// class totals are the histograms' sums; AUC and KS are clamped to
    /// [0, 1], the loss floored at 0. Post-processing only.
    pub fn pooled_noisy(&self, terms: &[f64]) -> Result<Metrics> {
        check_len("evaluation-round vector", self.terms_len(), terms.len())?;
        check_finite("evaluation-round vector", terms)?;
        let b = self.bins;
        let (pos, rest) = terms.split_at(b);
        let neg = &rest[..b];
        let (tp, tn) = (pos.iter().sum::<f64>(), neg.iter().sum::<f64>());
        let n = tp.max(0.0) + tn.max(0.0);
        if n < 1.0 {
            return Err(ModelError::Empty {
                what: "the noisy evaluation histograms hold no rows",
            });
        }
        let (auc, ks) = if tp >= 1.0 && tn >= 1.0 {
            let (a, k) = auc_ks_from_groups(pos.iter().copied().zip(neg.iter().copied()), tp, tn);
            (Some(a.clamp(0.0, 1.0)), Some(k.clamp(0.0, 1.0)))
        } else {
            (None, None)
        };
        Ok(Metrics {
            auc,
            ks,
            logloss: terms[2 * b].max(0.0) / n,
            default_rate: (tp.max(0.0) / n).clamp(0.0, 1.0),
            n,
        })
    }
}

/// [`ScoreHistogram::local_terms`] with a bin count (≥ [`MIN_BINS`]).
pub fn local_eval_terms(scores: &[f64], labels: &[f64], bins: usize) -> Result<Vec<f64>> {
    ScoreHistogram::new(bins)?.local_terms(scores, labels)
}

/// [`ScoreHistogram::pooled`] with a bin count (≥ [`MIN_BINS`]).
pub fn pooled_metrics(terms: &[f64], bins: usize) -> Result<Metrics> {
    ScoreHistogram::new(bins)?.pooled(terms)
}

/// Log-loss of a probability, clipped to `[ε, 1−ε]` (as scikit-learn's
/// `log_loss` for float64).
pub fn prob_logloss(p: f64, y: f64) -> f64 {
    let p = p.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
    -(y * p.ln() + (1.0 - y) * (-p).ln_1p())
}

/// AUC and KS from `(positives, negatives)` per group in increasing score
/// order; within a group, pairs count 1/2.
fn auc_ks_from_groups(groups: impl Iterator<Item = (f64, f64)>, tp: f64, tn: f64) -> (f64, f64) {
    let (mut u, mut ks) = (0.0, 0.0_f64);
    let (mut cum_pos, mut cum_neg) = (0.0, 0.0);
    for (p, n) in groups {
        u += p * (cum_neg + 0.5 * n);
        cum_pos += p;
        cum_neg += n;
        ks = ks.max((cum_pos / tp - cum_neg / tn).abs());
    }
    (u / (tp * tn), ks)
}

/// `(pos, neg)` counts per distinct score in increasing order, and the
/// class totals.
type Groups = (Vec<(f64, f64)>, f64, f64);

/// The pooled ROC curve and both classes' cumulative score distributions,
/// drawn from an evaluation round's class histograms (never from scores):
/// what a dashboard plots beside the [`Metrics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curves {
    /// `[false-positive rate, true-positive rate]` as the threshold falls
    /// from 1 to 0: from `[0, 0]` to `[1, 1]`.
    pub roc: Vec<[f64; 2]>,
    /// `[threshold t, F_pos(t), F_neg(t)]` at bin edges, t rising from 0 to
    /// 1: the share of each class scoring below t.
    pub cdf: Vec<[f64; 3]>,
    /// The KS statistic, `max |F_pos − F_neg|` over every bin edge (not only
    /// the plotted ones).
    pub ks: f64,
    /// The threshold where it is reached.
    pub ks_at: f64,
}

/// [`Curves`] from per-bin class counts over `[0, 1]` (`pos[k]`, `neg[k]`:
/// scores in `[k/B, (k+1)/B)`), with at most about `points` plotted points
/// per curve (every `⌈B / points⌉`-th bin edge, and the last). Needs both
/// classes; counts may be fractional (a private round's post-processed
/// histograms).
///
/// ```
/// use fedcredit_model::metrics::curves;
///
/// // Positives score high, negatives low: a perfect ranking.
/// let c = curves(&[0.0, 0.0, 1.0, 3.0], &[2.0, 2.0, 0.0, 0.0], 100).unwrap();
/// assert_eq!(c.roc.first(), Some(&[0.0, 0.0]));
/// assert_eq!(c.roc.last(), Some(&[1.0, 1.0]));
/// assert!(c.roc.contains(&[0.0, 1.0]));
/// assert_eq!((c.ks, c.ks_at), (1.0, 0.5));
/// ```
pub fn curves(pos: &[f64], neg: &[f64], points: usize) -> Result<Curves> {
    check_len(
        "negative histogram (one bin per positive bin)",
        pos.len(),
        neg.len(),
    )?;
    check_finite("positive histogram", pos)?;
    check_finite("negative histogram", neg)?;
    let (tp, tn) = (pos.iter().sum::<f64>(), neg.iter().sum::<f64>());
    if tp <= 0.0 || tn <= 0.0 {
        return Err(ModelError::SingleClass {
            what: "ROC and KS curves",
            n_pos: tp,
            n_neg: tn,
        });
    }
    let bins = pos.len();
    let stride = bins.div_ceil(points.max(1)).max(1);
    let rate = |c: f64, total: f64| (c / total).clamp(0.0, 1.0);
    // Cumulative from the bottom: the CDFs and KS.
    let mut cdf = vec![[0.0, 0.0, 0.0]];
    let (mut ks, mut ks_at) = (0.0_f64, 0.0);
    let (mut cum_pos, mut cum_neg) = (0.0, 0.0);
    for k in 0..bins {
        cum_pos += pos[k];
        cum_neg += neg[k];
        let t = (k + 1) as f64 / bins as f64;
        let (fp, fn_) = (rate(cum_pos, tp), rate(cum_neg, tn));
        if (fp - fn_).abs() > ks {
            ks = (fp - fn_).abs();
            ks_at = t;
        }
        if (k + 1) % stride == 0 || k + 1 == bins {
            cdf.push([t, fp, fn_]);
        }
    }
    // Cumulative from the top: the ROC, threshold falling.
    let mut roc = vec![[0.0, 0.0]];
    let (mut above_pos, mut above_neg) = (0.0, 0.0);
    for (i, k) in (0..bins).rev().enumerate() {
        above_pos += pos[k];
        above_neg += neg[k];
        if (i + 1) % stride == 0 || k == 0 {
            roc.push([rate(above_neg, tn), rate(above_pos, tp)]);
        }
    }
    Ok(Curves {
        roc,
        cdf,
        ks,
        ks_at,
    })
}

/// Sorted `(pos, neg)` counts per distinct score.
fn exact_groups(scores: &[f64], labels: &[f64]) -> Result<Groups> {
    check_len("labels (one per score)", scores.len(), labels.len())?;
    check_finite("scores", scores)?;
    check_labels(ArrayView1::from(labels))?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut groups: Vec<(f64, f64)> = Vec::new();
    let mut last = None;
    for i in order {
        // -0.0 and 0.0 are ties
        if last != Some(scores[i]) || groups.is_empty() {
            groups.push((0.0, 0.0));
            last = Some(scores[i]);
        }
        if let Some(g) = groups.last_mut() {
            if labels[i] == 1.0 {
                g.0 += 1.0;
            } else {
                g.1 += 1.0;
            }
        }
    }
    let tp = groups.iter().map(|g| g.0).sum::<f64>();
    let tn = groups.iter().map(|g| g.1).sum::<f64>();
    if tp == 0.0 || tn == 0.0 {
        return Err(ModelError::SingleClass {
            what: "AUC/KS",
            n_pos: tp,
            n_neg: tn,
        });
    }
    Ok((groups, tp, tn))
}

/// Score bands of a calibration table: ten, as the Hosmer–Lemeshow test
/// uses (deciles of the pooled scores).
pub const CALIBRATION_BANDS: usize = 10;

/// A calibration table from the pooled evaluation histograms: observed
/// default rates against predicted probabilities, by score band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Bands of whole histogram bins, each about a tenth of the rows, in
    /// increasing predicted probability.
    pub bands: Vec<CalibrationBand>,
    /// Mean squared error of the predicted probability, each score taken at
    /// its histogram bin's centre (off by at most half a bin's width).
    pub brier: f64,
    /// The Hosmer–Lemeshow statistic over the bands: Σ (O − E)² / (E·(1 − E/n)).
    pub hosmer_lemeshow: f64,
    /// Its degrees of freedom: bands − 2.
    pub hl_df: usize,
    /// P(χ²(df) ≥ statistic): small values say the model is miscalibrated.
    pub hl_p_value: f64,
}

/// One score band of a [`Calibration`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBand {
    /// Lowest predicted probability of the band (its first bin's left edge).
    pub low: f64,
    /// Highest (its last bin's right edge).
    pub high: f64,
    /// Rows in the band.
    pub n: f64,
    /// Defaults (positives) in the band.
    pub defaults: f64,
    /// `defaults / n`.
    pub default_rate: f64,
    /// Mean predicted probability (bin centres).
    pub mean_predicted: f64,
}

/// The calibration table of pooled per-class score histograms over `[0, 1]`
/// (`pos[k]`, `neg[k]`: positives and negatives scored in bin `k`), in
/// [`CALIBRATION_BANDS`] bands of about equal counts. Counts must be
/// finite and non-negative (a private round's are made so first).
///
/// ```
/// use fedcredit_model::metrics::calibration;
/// // Ten bins; in bin k, k positives and 10 − k negatives: calibrated.
/// let pos: Vec<f64> = (0..10).map(|k| k as f64).collect();
/// let neg: Vec<f64> = (0..10).map(|k| 10.0 - k as f64).collect();
/// let c = calibration(&pos, &neg).unwrap();
/// assert_eq!(c.bands.len(), 10);
/// assert!(c.hl_p_value > 0.5, "{c:?}");
/// ```
pub fn calibration(pos: &[f64], neg: &[f64]) -> Result<Calibration> {
    check_len("negative-class histogram", pos.len(), neg.len())?;
    check_finite("positive-class histogram", pos)?;
    check_finite("negative-class histogram", neg)?;
    if pos.iter().chain(neg).any(|&c| c < 0.0) {
        return Err(ModelError::InvalidParameter {
            name: "histogram",
            reason: "a negative count".into(),
        });
    }
    let bins = pos.len();
    let total: f64 = pos.iter().chain(neg).sum();
    if bins == 0 || total <= 0.0 {
        return Err(ModelError::Empty {
            what: "evaluation histograms",
        });
    }
    let width = 1.0 / bins as f64;
    let centre = |k: usize| (k as f64 + 0.5) * width;
    let mut bands = Vec::with_capacity(CALIBRATION_BANDS);
    let (mut n, mut d, mut p_sum, mut first) = (0.0, 0.0, 0.0, 0);
    let mut seen = 0.0;
    let mut brier = 0.0;
    for k in 0..bins {
        let (pk, nk) = (pos[k], neg[k]);
        let c = centre(k);
        brier += pk * (1.0 - c).powi(2) + nk * c * c;
        n += pk + nk;
        d += pk;
        p_sum += (pk + nk) * c;
        seen += pk + nk;
        let target = total * (bands.len() + 1) as f64 / CALIBRATION_BANDS as f64;
        if n > 0.0 && (seen >= target || k + 1 == bins) {
            bands.push(CalibrationBand {
                low: first as f64 * width,
                high: (k + 1) as f64 * width,
                n,
                defaults: d,
                default_rate: d / n,
                mean_predicted: p_sum / n,
            });
            (n, d, p_sum, first) = (0.0, 0.0, 0.0, k + 1);
        } else if n == 0.0 {
            first = k + 1;
        }
    }
    let hosmer_lemeshow: f64 = bands
        .iter()
        .map(|b| {
            let expected = b.mean_predicted * b.n;
            let var = expected * (1.0 - b.mean_predicted);
            if var > 0.0 {
                (b.defaults - expected).powi(2) / var
            } else {
                0.0
            }
        })
        .sum();
    let hl_df = bands.len().saturating_sub(2).max(1);
    let hl_p_value = {
        use statrs::distribution::{ChiSquared, ContinuousCDF};
        ChiSquared::new(hl_df as f64)
            .map_err(|e| ModelError::InvalidSetting(format!("χ²({hl_df}): {e}")))?
            .sf(hosmer_lemeshow)
    };
    Ok(Calibration {
        bands,
        brier: brier / total,
        hosmer_lemeshow,
        hl_df,
        hl_p_value,
    })
}

/// Exact AUC (Mann–Whitney U / (n_pos·n_neg), ties counted 1/2). Scores
/// may be any finite reals (probabilities or logits).
pub fn auc_exact(scores: &[f64], labels: &[f64]) -> Result<f64> {
    let (g, tp, tn) = exact_groups(scores, labels)?;
    Ok(auc_ks_from_groups(g.into_iter(), tp, tn).0)
}

/// Exact KS statistic `max_t |F_pos(t) − F_neg(t)|` over all thresholds.
pub fn ks_exact(scores: &[f64], labels: &[f64]) -> Result<f64> {
    let (g, tp, tn) = exact_groups(scores, labels)?;
    Ok(auc_ks_from_groups(g.into_iter(), tp, tn).1)
}

/// All metrics of probability scores on one party's rows, exactly.
/// AUC and KS are `None` when one class is absent.
pub fn metrics_exact(scores: &[f64], labels: &[f64]) -> Result<Metrics> {
    check_len("labels (one per score)", scores.len(), labels.len())?;
    check_labels(ArrayView1::from(labels))?;
    if scores.is_empty() {
        return Err(ModelError::Empty {
            what: "no scores to evaluate",
        });
    }
    if let Some(index) = scores.iter().position(|s| !(0.0..=1.0).contains(s)) {
        return Err(ModelError::ScoreOutOfRange {
            index,
            value: scores[index],
        });
    }
    let n = scores.len() as f64;
    let n_pos = labels.iter().sum::<f64>();
    let loss = scores
        .iter()
        .zip(labels)
        .map(|(&p, &y)| prob_logloss(p, y))
        .sum::<f64>();
    let (auc, ks) = match exact_groups(scores, labels) {
        Ok((g, tp, tn)) => {
            let (a, k) = auc_ks_from_groups(g.into_iter(), tp, tn);
            (Some(a), Some(k))
        }
        Err(ModelError::SingleClass { .. }) => (None, None),
        Err(e) => return Err(e),
    };
    Ok(Metrics {
        auc,
        ks,
        logloss: loss / n,
        default_rate: n_pos / n,
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logistic::sigmoid;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    /// Per-class histograms of `rows` (score, label) over `bins` bins.
    fn histograms(rows: &[(f64, f64)], bins: usize) -> (Vec<f64>, Vec<f64>) {
        let h = ScoreHistogram { bins };
        let (mut pos, mut neg) = (vec![0.0; bins], vec![0.0; bins]);
        for &(p, y) in rows {
            let k = h.bin_of(p);
            if y == 1.0 {
                pos[k] += 1.0
            } else {
                neg[k] += 1.0
            }
        }
        (pos, neg)
    }

    #[test]
    fn calibration_tells_a_calibrated_model_from_a_miscalibrated_one() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let unit = |rng: &mut ChaCha20Rng| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        // Labels drawn with the predicted probability: calibrated.
        let calibrated: Vec<(f64, f64)> = (0..20_000)
            .map(|_| {
                let p = unit(&mut rng);
                (p, f64::from(unit(&mut rng) < p))
            })
            .collect();
        // The same scores, but every label drawn at half the probability.
        let overconfident: Vec<(f64, f64)> = calibrated
            .iter()
            .map(|&(p, _)| (p, f64::from(unit(&mut rng) < p / 2.0)))
            .collect();
        let (pos, neg) = histograms(&calibrated, DEFAULT_BINS);
        let good = calibration(&pos, &neg).expect("calibrated");
        let (pos, neg) = histograms(&overconfident, DEFAULT_BINS);
        let bad = calibration(&pos, &neg).expect("overconfident");
        assert_eq!(good.bands.len(), CALIBRATION_BANDS);
        assert!(good.hl_p_value > 0.001, "{good:?}");
        assert!(bad.hl_p_value < 1e-12, "{bad:?}");
        assert!(bad.brier > good.brier);
        // Brier at bin centres is within half a bin of the exact one.
        let exact: f64 =
            calibrated.iter().map(|(p, y)| (p - y).powi(2)).sum::<f64>() / calibrated.len() as f64;
        assert!(
            (good.brier - exact).abs() < 1.0 / DEFAULT_BINS as f64,
            "{} {exact}",
            good.brier
        );
        for b in &good.bands {
            assert!((b.default_rate - b.mean_predicted).abs() < 0.05, "{b:?}");
        }
    }

    #[test]
    fn calibration_refuses_what_is_not_a_histogram() {
        assert!(calibration(&[1.0, -1.0], &[0.0, 1.0]).is_err());
        assert!(calibration(&[f64::NAN], &[1.0]).is_err());
        assert!(calibration(&[0.0, 0.0], &[0.0, 0.0]).is_err());
        assert!(calibration(&[1.0], &[1.0, 2.0]).is_err());
    }

    proptest! {
        #[test]
        fn calibration_bands_hold_every_row_once(
            counts in proptest::collection::vec((0u32..50, 0u32..50), 1..300)
        ) {
            let pos: Vec<f64> = counts.iter().map(|c| f64::from(c.0)).collect();
            let neg: Vec<f64> = counts.iter().map(|c| f64::from(c.1)).collect();
            let total: f64 = pos.iter().chain(&neg).sum();
            prop_assume!(total > 0.0);
            let c = calibration(&pos, &neg).expect("a histogram");
            prop_assert!(c.bands.len() <= CALIBRATION_BANDS);
            prop_assert_eq!(c.bands.iter().map(|b| b.n).sum::<f64>(), total);
            prop_assert_eq!(c.bands.iter().map(|b| b.defaults).sum::<f64>(), pos.iter().sum::<f64>());
            for w in c.bands.windows(2) {
                prop_assert!(w[0].high <= w[1].low + 1e-12);
            }
            prop_assert!((0.0..=1.0).contains(&c.brier));
            prop_assert!(c.hl_p_value.is_nan() || (0.0..=1.0).contains(&c.hl_p_value));
        }
    }

    /// O(n²) definition of the AUC.
    fn auc_pairs(scores: &[f64], labels: &[f64]) -> f64 {
        let (mut u, mut pairs) = (0.0, 0.0);
        for (i, &si) in scores.iter().enumerate() {
            for (j, &sj) in scores.iter().enumerate() {
                if labels[i] == 1.0 && labels[j] == 0.0 {
                    pairs += 1.0;
                    u += if si > sj {
                        1.0
                    } else if si == sj {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        u / pairs
    }

    #[test]
    fn exact_auc_counts_ties_half() {
        let s = [0.5, 0.5, 0.5, 0.5];
        let y = [1.0, 0.0, 1.0, 0.0];
        assert_eq!(auc_exact(&s, &y).expect("ok"), 0.5);
        assert_eq!(ks_exact(&s, &y).expect("ok"), 0.0);
        let s = [0.1, 0.2, 0.2, 0.9, 0.3];
        let y = [0.0, 1.0, 0.0, 1.0, 0.0];
        assert_eq!(auc_exact(&s, &y).expect("ok"), auc_pairs(&s, &y));
        assert!((ks_exact(&s, &y).expect("ok") - 0.5).abs() < 1e-15);
        let s = [-0.0, 0.0];
        assert_eq!(auc_exact(&s, &[1.0, 0.0]).expect("ok"), 0.5);
    }

    #[test]
    fn errors_and_single_class() {
        assert!(matches!(
            auc_exact(&[0.1, 0.2], &[1.0, 1.0]),
            Err(ModelError::SingleClass { .. })
        ));
        let m = metrics_exact(&[0.1, 0.2], &[0.0, 0.0]).expect("ok");
        assert_eq!((m.auc, m.ks, m.default_rate), (None, None, 0.0));
        assert!(matches!(
            local_eval_terms(&[1.5], &[1.0], 10_000),
            Err(ModelError::ScoreOutOfRange { index: 0, .. })
        ));
        assert!(matches!(
            local_eval_terms(&[0.5], &[0.5], 10_000),
            Err(ModelError::InvalidLabel { .. })
        ));
        assert!(ScoreHistogram::new(10).is_err());
        let mut t = local_eval_terms(&[0.5, 0.2], &[1.0, 0.0], 1000).expect("ok");
        assert!(pooled_metrics(&t, 1000).is_ok());
        t[2 * 1000 + 1] = 5.0;
        assert!(matches!(
            pooled_metrics(&t, 1000),
            Err(ModelError::InconsistentAggregate(_))
        ));
        assert!(pooled_metrics(&t[1..], 1000).is_err());
        let single = local_eval_terms(&[0.5, 0.2], &[0.0, 0.0], 1000).expect("ok");
        let m = pooled_metrics(&single, 1000).expect("ok");
        assert_eq!(m.auc, None);
    }

    #[test]
    fn edges_and_logloss() {
        let h = ScoreHistogram::default();
        assert_eq!(h.bin_of(0.0), 0);
        assert_eq!(h.bin_of(1.0), DEFAULT_BINS - 1);
        assert_eq!(h.bin_of(0.5), DEFAULT_BINS / 2);
        let s = [0.0, 1.0, 0.3, 0.9];
        let y = [0.0, 1.0, 1.0, 0.0];
        let exact = metrics_exact(&s, &y).expect("ok");
        let pooled = h.pooled(&h.local_terms(&s, &y).expect("ok")).expect("ok");
        assert!((exact.logloss - pooled.logloss).abs() < 1e-15);
        assert!(exact.logloss.is_finite());
        assert_eq!(prob_logloss(0.0, 1.0), -f64::EPSILON.ln());
    }

    /// Continuous scores: sigmoid of a class-dependent normal logit.
    fn random_scores(n: usize, seed: u64, shift: f64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut u = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let mut scores = Vec::with_capacity(n);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let y = if u() < 0.3 { 1.0 } else { 0.0 };
            let g = (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos();
            scores.push(sigmoid(g * 1.5 - 1.0 + shift * y));
            labels.push(y);
        }
        (scores, labels)
    }

    #[test]
    fn curves_agree_with_the_pooled_metrics_and_end_at_the_corners() {
        let (s, y) = random_scores(5_000, 7, 1.5);
        let h = ScoreHistogram::new(1_000).expect("bins");
        let terms = h.local_terms(&s, &y).expect("terms");
        let m = h.pooled(&terms).expect("pooled");
        let c = curves(&terms[..1_000], &terms[1_000..2_000], 50).expect("curves");
        assert_eq!(c.ks, m.ks.expect("both classes"));
        assert_eq!(c.roc.first(), Some(&[0.0, 0.0]));
        assert_eq!(c.roc.last(), Some(&[1.0, 1.0]));
        assert_eq!(c.cdf.last().map(|p| p[0]), Some(1.0));
        assert!(
            c.roc.len() <= 52 && c.cdf.len() <= 52,
            "{} {}",
            c.roc.len(),
            c.cdf.len()
        );
        // The ROC rises; its trapezoids approximate the AUC.
        assert!(
            c.roc
                .windows(2)
                .all(|w| w[1][0] >= w[0][0] && w[1][1] >= w[0][1])
        );
        let area: f64 = c
            .roc
            .windows(2)
            .map(|w| (w[1][0] - w[0][0]) * (w[1][1] + w[0][1]) / 2.0)
            .sum();
        assert!(
            (area - m.auc.expect("auc")).abs() < 1e-2,
            "{area} vs {:?}",
            m.auc
        );
        let e = curves(&[1.0, 2.0], &[0.0, 0.0], 10).expect_err("one class");
        assert!(matches!(e, ModelError::SingleClass { .. }), "{e}");
        assert!(curves(&[1.0], &[1.0, 2.0], 10).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn histogram_agrees_with_exact_at_10k_bins(
            n in 10_000usize..30_000,
            seed in any::<u64>(),
            shift in 0.0f64..3.0,
            parts in 1usize..5,
        ) {
            let (s, y) = random_scores(n, seed, shift);
            let auc = auc_exact(&s, &y).expect("auc");
            let ks = ks_exact(&s, &y).expect("ks");
            let h = ScoreHistogram::default();
            let mut sum = vec![0.0; h.terms_len()];
            for r in crate::synthetic::split_ranges(n, parts).expect("split") {
                let t = h.local_terms(&s[r.clone()], &y[r]).expect("terms");
                for (a, b) in sum.iter_mut().zip(&t) { *a += b; }
            }
            let m = h.pooled(&sum).expect("pooled");
            let (ha, hk) = (m.auc.expect("both classes"), m.ks.expect("both classes"));
            prop_assert!((ha - auc).abs() < 1e-3, "auc {ha} vs {auc}");
            prop_assert!((hk - ks).abs() < 1e-3, "ks {hk} vs {ks}");
            let exact = metrics_exact(&s, &y).expect("exact");
            prop_assert!((m.logloss - exact.logloss).abs() < 1e-12);
            prop_assert_eq!(m.n, n as f64);
        }

        #[test]
        fn exact_auc_matches_pair_definition(
            raw in prop::collection::vec((0u8..20, any::<bool>()), 2..60),
        ) {
            let s: Vec<f64> = raw.iter().map(|(v, _)| f64::from(*v) / 20.0).collect();
            let y: Vec<f64> = raw.iter().map(|(_, b)| f64::from(u8::from(*b))).collect();
            match auc_exact(&s, &y) {
                Ok(a) => prop_assert!((a - auc_pairs(&s, &y)).abs() < 1e-12),
                Err(ModelError::SingleClass { .. }) => {}
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
