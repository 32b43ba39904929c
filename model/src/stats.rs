//! Global standardization from securely aggregated sums (the statistics
//! round).
//!
//! One pass: each party sends [`local_moments`] = `[n, Σx_1 … Σx_p, Σx_1² …
//! Σx_p²]`; the element-wise sum over parties gives [`Standardizer::from_moments`].
//!
//! Two passes (more robust when |mean| ≫ std): parties first send
//! [`local_sums`] = `[n, Σx_1 … Σx_p]`, the coordinator publishes
//! [`mean_from_sums`], parties then send [`local_centered_squares`] =
//! `[Σ(x_1−m_1)² … Σ(x_p−m_p)²]`, and [`Standardizer::from_two_pass`]
//! finishes.
//!
//! The standard deviation is the population one (ddof = 0), as scikit-learn's
//! `StandardScaler`. A column whose variance is zero up to round-off (see
//! [`ONE_PASS_REL_TOL`] and [`TWO_PASS_REL_TOL`]) gets std = 1 and is listed
//! in [`Standardizer::zero_variance`], so it never produces NaN.
//!
//! ```
//! use fedcredit_model::stats::{local_moments, Standardizer};
//! use ndarray::array;
//!
//! let a = array![[1.0, 5.0], [3.0, 5.0]];
//! let b = array![[5.0, 5.0]];
//! let ma = local_moments(a.view());
//! let mb = local_moments(b.view());
//! let sum: Vec<f64> = ma.iter().zip(&mb).map(|(x, y)| x + y).collect();
//! let s = Standardizer::from_moments(&sum, 2).unwrap();
//! assert_eq!(s.mean(), [3.0, 5.0]);
//! assert!((s.std()[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-15);
//! assert_eq!(s.std()[1], 1.0);            // constant column
//! assert_eq!(s.zero_variance(), [1]);
//! ```

use ndarray::{ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result, check_finite, check_len};
use crate::schema::{LabelSpec, Negatives};

/// One pass: a column is treated as constant when `var ≤ 0` or
/// `var ≤ ONE_PASS_REL_TOL · E[x²]` (i.e. std ≤ 1e-5 · RMS). The one-pass
/// formula `E[x²] − mean²` loses about `n·ε·E[x²]` to cancellation, so it
/// cannot resolve much smaller relative variances; use the two-pass variant
/// for such columns.
pub const ONE_PASS_REL_TOL: f64 = 1e-10;

/// Two passes: a column is treated as constant when `var ≤ 0` or
/// `std ≤ TWO_PASS_REL_TOL · |mean|`: the centred sum of squares of a
/// constant column is only the square of the mean's round-off.
pub const TWO_PASS_REL_TOL: f64 = 1e-9;

/// Length of a [`local_moments`] vector for `width` columns: `1 + 2·width`.
pub fn moments_len(width: usize) -> usize {
    1 + 2 * width
}

/// `[n, Σx_j for each j, Σx_j² for each j]` over the rows of `x`.
pub fn local_moments(x: ArrayView2<'_, f64>) -> Vec<f64> {
    let p = x.ncols();
    let mut out = vec![0.0; moments_len(p)];
    out[0] = x.nrows() as f64;
    let (sums, squares) = out[1..].split_at_mut(p);
    for row in x.rows() {
        for ((s, q), &v) in sums.iter_mut().zip(squares.iter_mut()).zip(row) {
            *s += v;
            *q += v * v;
        }
    }
    out
}

/// First pass of the two-pass variant: `[n, Σx_j for each j]`.
pub fn local_sums(x: ArrayView2<'_, f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(1 + x.ncols());
    out.push(x.nrows() as f64);
    out.extend(x.sum_axis(Axis(0)));
    out
}

/// First pass of a model job's statistics round: `[n, Σx_1 … Σx_p, Σy]`
/// for 0/1 labels `y`, so that the pooled sum also counts the positive rows
/// (see [`check_both_classes`]).
///
/// ```
/// use fedcredit_model::stats::local_sums_and_positives;
/// use ndarray::array;
///
/// let x = array![[1.0, 5.0], [3.0, 7.0]];
/// let y = array![1.0, 0.0];
/// assert_eq!(local_sums_and_positives(x.view(), y.view()).unwrap(), [2.0, 4.0, 12.0, 1.0]);
/// ```
pub fn local_sums_and_positives(
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
) -> Result<Vec<f64>> {
    let mut acc = SumsAccumulator::new(x.ncols());
    acc.add(x, y)?;
    Ok(acc.finish())
}

/// [`local_sums_and_positives`] over rows that arrive in pieces (a file
/// read batch by batch). Rows are added one at a time, in order, so any
/// cut into pieces gives the same sums bit for bit.
///
/// ```
/// use fedcredit_model::stats::{SumsAccumulator, local_sums_and_positives};
/// use ndarray::{array, s};
///
/// let x = array![[0.1, 5.0], [0.2, 7.0], [0.3, 1.0]];
/// let y = array![1.0, 0.0, 1.0];
/// let mut acc = SumsAccumulator::new(2);
/// acc.add(x.slice(s![..1, ..]), y.slice(s![..1])).unwrap();
/// acc.add(x.slice(s![1.., ..]), y.slice(s![1..])).unwrap();
/// assert_eq!(acc.finish(), local_sums_and_positives(x.view(), y.view()).unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct SumsAccumulator {
    rows: usize,
    sums: Vec<f64>,
    positives: f64,
}

impl SumsAccumulator {
    /// An empty sum over `width` columns.
    pub fn new(width: usize) -> Self {
        Self {
            rows: 0,
            sums: vec![0.0; width],
            positives: 0.0,
        }
    }

    /// Adds the rows of `x` and their 0/1 labels `y`.
    pub fn add(&mut self, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> Result<()> {
        check_len("labels", x.nrows(), y.len())?;
        check_len("matrix columns", self.sums.len(), x.ncols())?;
        for row in x.rows() {
            for (s, &v) in self.sums.iter_mut().zip(row) {
                *s += v;
            }
        }
        // 0/1 labels: an exact integer in any order.
        self.positives += y.sum();
        self.rows += x.nrows();
        Ok(())
    }

    /// `[n, Σx_1 … Σx_p, Σy]`.
    pub fn finish(self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.sums.len() + 2);
        out.push(self.rows as f64);
        out.extend(self.sums);
        out.push(self.positives);
        out
    }
}

/// Refuses pooled training rows that hold only one label class: no model
/// separates one class from nothing (the intercept would run off to
/// infinity). Takes only the pooled counts of the statistics round, never
/// a party's own.
pub fn check_both_classes(count: f64, positives: f64, label: &LabelSpec) -> Result<()> {
    if !(positives.is_finite() && (0.0..=count).contains(&positives)) {
        return Err(ModelError::InconsistentAggregate(format!(
            "the pooled positive count is {positives}, expected 0 to the row count {count}"
        )));
    }
    let missing = |class, values| ModelError::PooledClassMissing {
        class,
        values,
        column: label.column.clone(),
    };
    if positives == 0.0 {
        return Err(missing("positive", format!("label `{}`", label.positive)));
    }
    if positives == count {
        return Err(missing(
            "negative",
            match &label.negatives {
                Negatives::Value(neg) => format!("label `{neg}`"),
                Negatives::AllOthers => format!("any label other than `{}`", label.positive),
            },
        ));
    }
    Ok(())
}

/// The global mean from an aggregated `[n, Σx_j…]` split into count and sums.
pub fn mean_from_sums(count: f64, sums: &[f64]) -> Result<Vec<f64>> {
    check_count(count)?;
    check_finite("column sums", sums)?;
    Ok(sums.iter().map(|s| s / count).collect())
}

/// Second pass of the two-pass variant: `[Σ(x_j − mean_j)² for each j]`.
pub fn local_centered_squares(x: ArrayView2<'_, f64>, mean: &[f64]) -> Result<Vec<f64>> {
    let mut acc = CenteredSquaresAccumulator::new(mean.to_vec());
    acc.add(x)?;
    Ok(acc.finish())
}

/// [`local_centered_squares`] over rows that arrive in pieces; rows are
/// added one at a time, in order, so any cut gives the same sums bit for bit.
#[derive(Debug, Clone)]
pub struct CenteredSquaresAccumulator {
    mean: Vec<f64>,
    out: Vec<f64>,
}

impl CenteredSquaresAccumulator {
    /// An empty sum of squares about `mean` (one value per column).
    pub fn new(mean: Vec<f64>) -> Self {
        let out = vec![0.0; mean.len()];
        Self { mean, out }
    }

    /// Adds the rows of `x`.
    pub fn add(&mut self, x: ArrayView2<'_, f64>) -> Result<()> {
        check_len("mean", x.ncols(), self.mean.len())?;
        for row in x.rows() {
            for ((o, &v), &m) in self.out.iter_mut().zip(row).zip(&self.mean) {
                let d = v - m;
                *o += d * d;
            }
        }
        Ok(())
    }

    /// `[Σ(x_j − mean_j)² for each j]`.
    pub fn finish(self) -> Vec<f64> {
        self.out
    }
}

/// Global per-column mean and population standard deviation.
///
/// Deserialization re-validates (equal lengths, finite values, std > 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StandardizerRepr")]
pub struct Standardizer {
    /// Total row count the statistics were computed from.
    count: f64,
    mean: Vec<f64>,
    /// Population std; 1 for zero-variance columns.
    std: Vec<f64>,
    /// Columns found constant (their std was replaced by 1).
    zero_variance: Vec<usize>,
}

impl Standardizer {
    /// From an aggregated [`local_moments`] vector for `width` columns.
    pub fn from_moments(moments: &[f64], width: usize) -> Result<Self> {
        check_len("moments vector", moments_len(width), moments.len())?;
        check_finite("moments vector", moments)?;
        let count = moments[0];
        let mean = mean_from_sums(count, &moments[1..=width])?;
        let var: Vec<f64> = moments[1 + width..]
            .iter()
            .zip(&mean)
            .map(|(q, m)| q / count - m * m)
            .collect();
        Ok(Self::finish(count, mean, &var, |v, m| {
            v <= ONE_PASS_REL_TOL * (v.max(0.0) + m * m)
        }))
    }

    /// From the two-pass aggregates: count, `Σx_j` and `Σ(x_j − mean_j)²`
    /// where `mean_j = Σx_j / count` (as [`mean_from_sums`] computes it).
    pub fn from_two_pass(count: f64, sums: &[f64], centered_sq: &[f64]) -> Result<Self> {
        check_len("centered squares", sums.len(), centered_sq.len())?;
        check_finite("centered squares", centered_sq)?;
        let mean = mean_from_sums(count, sums)?;
        let var: Vec<f64> = centered_sq.iter().map(|q| q / count).collect();
        Ok(Self::finish(count, mean, &var, |v, m| {
            v.sqrt() <= TWO_PASS_REL_TOL * m.abs()
        }))
    }

    /// From a published mean and std (e.g. read back from a model record).
    /// Every std must be finite and > 0.
    pub fn from_mean_std(count: f64, mean: Vec<f64>, std: Vec<f64>) -> Result<Self> {
        check_len("std", mean.len(), std.len())?;
        check_finite("mean", &mean)?;
        check_finite("std", &std)?;
        if let Some(j) = std.iter().position(|s| *s <= 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "std",
                reason: format!("column {j} has std {} (must be > 0)", std[j]),
            });
        }
        Ok(Self {
            count,
            mean,
            std,
            zero_variance: Vec::new(),
        })
    }

    fn finish(
        count: f64,
        mean: Vec<f64>,
        var: &[f64],
        negligible: impl Fn(f64, f64) -> bool,
    ) -> Self {
        let mut zero_variance = Vec::new();
        let std = var
            .iter()
            .zip(&mean)
            .enumerate()
            .map(|(j, (&v, &m))| {
                if v <= 0.0 || negligible(v, m) {
                    zero_variance.push(j);
                    1.0
                } else {
                    v.sqrt()
                }
            })
            .collect();
        Self {
            count,
            mean,
            std,
            zero_variance,
        }
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// Total row count.
    pub fn count(&self) -> f64 {
        self.count
    }

    /// Per-column global mean.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Per-column population std (1 for zero-variance columns).
    pub fn std(&self) -> &[f64] {
        &self.std
    }

    /// Indices of columns whose variance was zero (std set to 1).
    pub fn zero_variance(&self) -> &[usize] {
        &self.zero_variance
    }

    /// Standardize in place: `x_ij ← (x_ij − mean_j) / std_j`.
    pub fn apply<S: ndarray::DataMut<Elem = f64>>(
        &self,
        x: &mut ndarray::ArrayBase<S, ndarray::Ix2>,
    ) -> Result<()> {
        check_len("matrix columns", self.width(), x.ncols())?;
        for mut row in x.rows_mut() {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
        Ok(())
    }

    /// Standardize one row in place.
    pub fn apply_row(&self, row: &mut [f64]) -> Result<()> {
        check_len("row", self.width(), row.len())?;
        for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
            *v = (*v - m) / s;
        }
        Ok(())
    }
}

/// Unvalidated serde form of [`Standardizer`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StandardizerRepr {
    count: f64,
    mean: Vec<f64>,
    std: Vec<f64>,
    zero_variance: Vec<usize>,
}

impl TryFrom<StandardizerRepr> for Standardizer {
    type Error = ModelError;

    fn try_from(r: StandardizerRepr) -> Result<Self> {
        check_count(r.count)?;
        let mut s = Standardizer::from_mean_std(r.count, r.mean, r.std)?;
        if let Some(&j) = r.zero_variance.iter().find(|&&j| j >= s.width()) {
            return Err(ModelError::DimensionMismatch {
                what: "zero-variance column index",
                expected: s.width(),
                found: j,
            });
        }
        s.zero_variance = r.zero_variance;
        Ok(s)
    }
}

fn check_count(count: f64) -> Result<()> {
    if count.is_finite() && count > 0.0 {
        Ok(())
    } else {
        Err(ModelError::Empty {
            what: "the aggregated row count is not positive",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::rows2;
    use ndarray::{Array2, array};
    use proptest::prelude::*;

    fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }

    #[test]
    fn matches_direct_population_std() {
        let x = array![
            [1.0, 10.0, 0.0],
            [2.0, 20.0, 1.0],
            [4.0, 60.0, 0.0],
            [9.0, 10.0, 0.0]
        ];
        let s = Standardizer::from_moments(&local_moments(x.view()), 3).expect("ok");
        for j in 0..3 {
            let col = x.column(j);
            let m = col.mean().expect("non-empty");
            let sd = col.std(0.0);
            assert!((s.mean()[j] - m).abs() < 1e-14);
            assert!((s.std()[j] - sd).abs() < 1e-13);
        }
        let mut z = x.clone();
        s.apply(&mut z).expect("ok");
        for j in 0..3 {
            assert!(z.column(j).mean().expect("non-empty").abs() < 1e-14);
            assert!((z.column(j).std(0.0) - 1.0).abs() < 1e-13);
        }
    }

    #[test]
    fn constant_columns_do_not_produce_nan() {
        // 0.1 is not representable: one-pass variance is round-off, not 0.
        let x = Array2::from_elem((1000, 2), 0.1);
        let mut z = x.clone();
        let s = Standardizer::from_moments(&local_moments(x.view()), 2).expect("ok");
        assert_eq!(s.zero_variance(), [0, 1]);
        assert_eq!(s.std(), [1.0, 1.0]);
        s.apply(&mut z).expect("ok");
        assert!(z.iter().all(|v| v.is_finite() && v.abs() < 1e-12));

        let t = Standardizer::from_two_pass(
            1000.0,
            &local_sums(x.view())[1..],
            &local_centered_squares(
                x.view(),
                &mean_from_sums(1000.0, &local_sums(x.view())[1..]).expect("ok"),
            )
            .expect("ok"),
        )
        .expect("ok");
        assert_eq!(t.zero_variance(), [0, 1]);
    }

    #[test]
    fn two_pass_is_robust_to_a_large_offset() {
        let n = 10_000;
        let x = Array2::from_shape_fn((n, 1), |(i, _)| 1e6 + (i % 2) as f64);
        // One pass cannot resolve std/mean = 5e-7 and reports a constant column…
        let one = Standardizer::from_moments(&local_moments(x.view()), 1).expect("ok");
        assert_eq!(one.zero_variance(), [0]);
        // …two passes can.
        let sums = local_sums(x.view());
        let mean = mean_from_sums(sums[0], &sums[1..]).expect("ok");
        let cs = local_centered_squares(x.view(), &mean).expect("ok");
        let s = Standardizer::from_two_pass(sums[0], &sums[1..], &cs).expect("ok");
        assert!((s.std()[0] - 0.5).abs() < 1e-9, "{}", s.std()[0]);
        assert!(s.zero_variance().is_empty());
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Standardizer::from_moments(&[0.0, 0.0, 0.0], 1),
            Err(ModelError::Empty { .. })
        ));
        assert!(matches!(
            Standardizer::from_moments(&[1.0, 0.0], 1),
            Err(ModelError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            Standardizer::from_moments(&[1.0, f64::NAN, 0.0], 1),
            Err(ModelError::NonFinite { index: 1, .. })
        ));
        let s = Standardizer::from_moments(&[2.0, 2.0, 4.0], 1).expect("ok");
        assert!(matches!(
            s.apply(&mut Array2::zeros((2, 2))),
            Err(ModelError::DimensionMismatch { .. })
        ));
        assert!(Standardizer::from_mean_std(1.0, vec![0.0], vec![0.0]).is_err());
    }

    #[test]
    fn one_class_pools_are_refused() {
        let label = LabelSpec::binary("y", "bad", "good");
        assert_eq!(check_both_classes(5.0, 2.0, &label), Ok(()));
        for (positives, class) in [(0.0, "positive"), (5.0, "negative")] {
            match check_both_classes(5.0, positives, &label) {
                Err(ModelError::PooledClassMissing { class: c, .. }) => assert_eq!(c, class),
                other => panic!("{positives}: {other:?}"),
            }
        }
        for bad in [-1.0, 6.0, f64::NAN] {
            assert!(matches!(
                check_both_classes(5.0, bad, &label),
                Err(ModelError::InconsistentAggregate(_))
            ));
        }
        assert!(matches!(
            local_sums_and_positives(array![[1.0]].view(), array![1.0, 0.0].view()),
            Err(ModelError::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn serde_round_trip_revalidates() {
        let x = array![[1.0, 7.0], [3.0, 7.0]];
        let s = Standardizer::from_moments(&local_moments(x.view()), 2).expect("ok");
        let text = serde_json::to_string(&s).expect("ser");
        assert_eq!(serde_json::from_str::<Standardizer>(&text).expect("de"), s);
        let bad = text.replace("\"std\":[1.0,1.0]", "\"std\":[1.0,0.0]");
        assert_ne!(bad, text);
        assert!(serde_json::from_str::<Standardizer>(&bad).is_err());
    }

    proptest! {
        #[test]
        fn moments_of_a_split_equal_moments_of_the_whole(
            data in prop::collection::vec(-1e3f64..1e3, 3 * 40),
            cut1 in 0usize..=40,
            cut2 in 0usize..=40,
        ) {
            let x = Array2::from_shape_vec((40, 3), data).expect("shape");
            let (a, b) = (cut1.min(cut2), cut1.max(cut2));
            let parts = [rows2(x.view(), 0..a), rows2(x.view(), a..b), rows2(x.view(), b..40)];
            let whole = local_moments(x.view());
            let split = parts
                .iter()
                .map(|p| local_moments(p.view()))
                .fold(vec![0.0; moments_len(3)], |acc, m| add(&acc, &m));
            for (w, s) in whole.iter().zip(&split) {
                prop_assert!((w - s).abs() <= 1e-12 * (1.0 + w.abs()), "{w} vs {s}");
            }
            let sums_whole = local_sums(x.view());
            let sums_split = parts
                .iter()
                .map(|p| local_sums(p.view()))
                .fold(vec![0.0; 4], |acc, m| add(&acc, &m));
            for (w, s) in sums_whole.iter().zip(&sums_split) {
                prop_assert!((w - s).abs() <= 1e-12 * (1.0 + w.abs()));
            }
            // One-pass and two-pass agree.
            let one = Standardizer::from_moments(&whole, 3).expect("ok");
            let mean = mean_from_sums(sums_whole[0], &sums_whole[1..]).expect("ok");
            let cs = parts
                .iter()
                .map(|p| local_centered_squares(p.view(), &mean).expect("ok"))
                .fold(vec![0.0; 3], |acc, m| add(&acc, &m));
            let two = Standardizer::from_two_pass(sums_whole[0], &sums_whole[1..], &cs).expect("ok");
            for j in 0..3 {
                prop_assert!((one.std()[j] - two.std()[j]).abs() <= 1e-9 * two.std()[j]);
            }
        }
    }
}
