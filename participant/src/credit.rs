//! A credit-model job seen from one participant: its training rows (and
//! optionally held-out test rows) answer each round's [`ModelTask`] with a
//! vector of sums over its own rows; only the masked vector leaves.
//!
//! | task | vector (`p` encoded columns) |
//! | --- | --- |
//! | `Moments` | `[n, Σx_1 … Σx_p, Σy]` over the training rows (Σy: its positive rows) |
//! | `CenteredSquares{mean}` | `[Σ(x_j − mean_j)² …]` over the training rows |
//! | `Newton{standardizer, beta}` | Newton terms on the standardized training rows |
//! | `FedAvg{standardizer, beta, sgd}` | `[n·β_k …, n]` after local SGD |
//! | `Evaluate{standardizer, beta, bins}` | score histograms of the test rows (zeros without a test set) |
//!
//! The training (and test) matrix is standardized in place the first time a
//! task carries the job's standardization, so the data is held once. A later
//! task with a different standardization is refused rather than applied on
//! top of the first.

// Without the `parquet` feature, `Rows` has one variant and the matches
// on it are irrefutable.
#![cfg_attr(not(feature = "parquet"), allow(irrefutable_let_patterns))]

use std::collections::BTreeMap;

use fedcredit_model::Schema;
use fedcredit_model::job::ModelTask;
use fedcredit_model::logistic::newton::{CHUNK_ROWS, NewtonAccumulator};
use fedcredit_model::logistic::{fedavg_local_terms, local_sgd, predict_proba};
use fedcredit_model::metrics::metrics_exact;
use fedcredit_model::privacy::{Clipping, TaskNoise, clip_columns, clip_row_norms};
use fedcredit_model::scorecard::{FeatureBinning, HistogramLayout, WoeEncoder};
use fedcredit_model::stats::{CenteredSquaresAccumulator, SumsAccumulator};
use fedcredit_model::{Metrics, ModelError, ScoreHistogram, Standardizer};
use fedcredit_proto::v1::round_announcement::Task;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, Slice};

use crate::contribution::Contributor;
use crate::data::{Dataset, Rows};

/// One participant's rows for a credit-model job.
pub struct CreditData {
    train: Rows,
    test: Option<Rows>,
    /// The job's standardization, once a task carried it; both matrices are
    /// standardized with this one and no other.
    standardizer: Option<Standardizer>,
    /// Whether a task on standardized training rows has run: rows held in
    /// memory then hold standardized values, and statistics tasks are over.
    train_standardized: bool,
    /// Whether `test.x` already holds standardized values (rows in memory).
    test_standardized: bool,
    /// The row norm the training rows in memory were clipped to, so that
    /// they are clipped once: clipping a clipped row again can move it by
    /// a rounding error, which rows streamed (clipped afresh) never see.
    train_clipped: Option<f64>,
    /// Exact metrics on this participant's own test rows, after evaluation.
    local_metrics: Option<Metrics>,
    /// A scorecard job: the published bins, and the rows encoded as their
    /// WOE, which answer every task after the binning round.
    woe: Option<(Vec<FeatureBinning>, Box<CreditData>)>,
}

impl std::fmt::Debug for CreditData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreditData")
            .field("train", &self.train)
            .field("test", &self.test)
            .field("train_standardized", &self.train_standardized)
            .field("test_standardized", &self.test_standardized)
            .field("local_metrics", &self.local_metrics)
            .finish_non_exhaustive()
    }
}

/// A private statistics task's clipping of raw columns: bounds per
/// encoded column, and whether to centre them.
#[derive(Clone, Copy)]
struct ColumnClip<'t> {
    bounds: &'t [Option<[f64; 2]>],
    centre: bool,
}

impl CreditData {
    /// Training rows and optional held-out test rows, both loaded with the
    /// job's schema (as [`crate::data::load_csv`] returns them, unstandardized).
    pub fn new(train: Dataset, test: Option<Dataset>) -> Self {
        Self::from_rows(Rows::InMemory(train), test.map(Rows::InMemory))
    }

    /// Training and optional test rows, each held in memory or streamed
    /// from its file (see [`Rows::open`]).
    pub fn from_rows(train: Rows, test: Option<Rows>) -> Self {
        Self {
            train,
            test,
            standardizer: None,
            train_standardized: false,
            test_standardized: false,
            train_clipped: None,
            local_metrics: None,
            woe: None,
        }
    }

    /// Number of training rows.
    pub fn train_rows(&self) -> usize {
        self.train.rows()
    }

    /// Number of held-out test rows (0 without a test set).
    pub fn test_rows(&self) -> usize {
        self.test.as_ref().map_or(0, Rows::rows)
    }

    /// This participant's exact AUC, KS and log-loss on its own test rows,
    /// once an evaluation round ran (`None` before, or without test rows).
    pub fn local_metrics(&self) -> Option<Metrics> {
        match &self.woe {
            Some((_, on_woe)) => on_woe.local_metrics(),
            None => self.local_metrics,
        }
    }

    /// A scorecard's binning round: this participant's per-label fine
    /// histograms of its raw training rows.
    fn binning(
        &self,
        task: &ModelTask,
        schema: &Schema,
        bounds: &BTreeMap<String, [f64; 2]>,
        fine_bins: usize,
    ) -> Result<Vec<f64>, String> {
        self.not_yet_standardized(task)?;
        let layout =
            HistogramLayout::new(schema, bounds, fine_bins).map_err(|e| format!("binning: {e}"))?;
        let mut hist = vec![0.0; layout.len()];
        self.train
            .for_each_raw_batch(|x, y| layout.add_rows(x, y, &mut hist))
            .map_err(|e| format!("binning: {e}"))?;
        Ok(hist)
    }

    /// The rows of a scorecard's later rounds: encoded as WOE with
    /// `binnings` the first time, and refused if a task brings other bins.
    fn on_woe(
        &mut self,
        schema: &Schema,
        binnings: &[FeatureBinning],
    ) -> Result<&mut CreditData, String> {
        match &self.woe {
            Some((current, _)) if current.as_slice() != binnings => {
                return Err(
                    "the task's WOE bins differ from the ones this participant's rows \
                     were already encoded with; refusing to encode twice"
                        .into(),
                );
            }
            Some(_) => {}
            None => {
                let encoder = WoeEncoder::new(schema.clone(), binnings.to_vec())
                    .map_err(|e| format!("WOE encoding: {e}"))?;
                let train = self.train.woe_encoded(&encoder)?;
                let test = self
                    .test
                    .as_ref()
                    .map(|t| t.woe_encoded(&encoder))
                    .transpose()?;
                tracing::info!(
                    rows = train.rows(),
                    features = encoder.width(),
                    "encoded the rows as WOE of the published bins"
                );
                self.woe = Some((binnings.to_vec(), Box::new(CreditData::new(train, test))));
            }
        }
        match &mut self.woe {
            Some((_, on_woe)) => Ok(on_woe),
            None => Err("internal: WOE rows vanished".into()),
        }
    }

    fn check_standardizer(&self, s: &Standardizer) -> Result<(), String> {
        match &self.standardizer {
            Some(current) if current != s => Err(
                "the task's standardization differs from the one this participant's rows \
                 were already standardized with; refusing to standardize twice"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Standardizes training rows held in memory in place (once); streamed
    /// rows are standardized batch by batch as they are read.
    fn standardize_train(&mut self, s: &Standardizer) -> Result<(), String> {
        self.check_standardizer(s)?;
        if !self.train_standardized {
            if let Rows::InMemory(train) = &mut self.train {
                s.apply(&mut train.x)
                    .map_err(|e| format!("standardizing the training rows: {e}"))?;
                tracing::debug!(
                    rows = train.rows(),
                    "standardized the training rows in place"
                );
            }
            self.train_standardized = true;
        }
        self.standardizer.get_or_insert_with(|| s.clone());
        Ok(())
    }

    /// Standardizes test rows held in memory in place (once); `false`
    /// without test rows.
    fn standardize_test(&mut self, s: &Standardizer) -> Result<bool, String> {
        self.check_standardizer(s)?;
        let Some(test) = self.test.as_mut().filter(|t| t.rows() > 0) else {
            return Ok(false);
        };
        if !self.test_standardized {
            if let Rows::InMemory(test) = test {
                s.apply(&mut test.x).map_err(|e| {
                    format!(
                        "standardizing the test rows of {}: {e}",
                        test.path.display()
                    )
                })?;
            }
            self.test_standardized = true;
        }
        self.standardizer.get_or_insert_with(|| s.clone());
        Ok(true)
    }

    fn not_yet_standardized(&self, task: &ModelTask) -> Result<(), String> {
        if self.train_standardized {
            return Err(format!(
                "a {} task came after the training rows were standardized; \
                 the statistics rounds must come first (reload the data for a new job)",
                task.name()
            ));
        }
        Ok(())
    }

    /// Every raw (unstandardized) training row, clipped by `clip` if given,
    /// to `consume`, in file order: rows in memory are clipped a block at
    /// a time on a copy (the matrix stays raw for the rounds after).
    fn raw_train_rows<C>(&self, clip: Option<ColumnClip<'_>>, mut consume: C) -> Result<(), String>
    where
        C: FnMut(ArrayView2<'_, f64>, ArrayView1<'_, f64>) -> Result<(), ModelError>,
    {
        let clip_batch = |x: &mut ArrayViewMut2<'_, f64>| {
            if let Some(c) = clip {
                clip_columns(x, c.bounds, c.centre);
            }
        };
        match &self.train {
            Rows::InMemory(d) if clip.is_none() => {
                consume(d.x.view(), d.y.view()).map_err(|e| e.to_string())
            }
            Rows::InMemory(d) => {
                let mut block = Array2::<f64>::zeros((CHUNK_ROWS.min(d.rows()), d.width()));
                let mut start = 0;
                while start < d.rows() {
                    let end = (start + CHUNK_ROWS).min(d.rows());
                    let mut b = block.slice_axis_mut(Axis(0), Slice::from(..end - start));
                    b.assign(&d.x.slice_axis(Axis(0), Slice::from(start..end)));
                    clip_batch(&mut b);
                    let y = d.y.slice_axis(Axis(0), Slice::from(start..end));
                    consume(b.view(), y).map_err(|e| e.to_string())?;
                    start = end;
                }
                Ok(())
            }
            #[cfg(feature = "parquet")]
            Rows::Streamed(s) => s
                .for_each_batch(
                    |x| {
                        clip_batch(x);
                        Ok(())
                    },
                    consume,
                )
                .map_err(|e| e.to_string()),
        }
    }

    fn evaluate(
        &mut self,
        standardizer: &Standardizer,
        beta: &[f64],
        bins: usize,
        dimension: usize,
        noise: Option<&TaskNoise>,
    ) -> Result<Vec<f64>, String> {
        let (histogram, loss_clip) = match noise.map(|n| &n.clip) {
            None => (ScoreHistogram::new(bins), f64::INFINITY),
            Some(Clipping::Loss { loss }) => (ScoreHistogram::private(bins), *loss),
            Some(other) => return Err(format!("an evaluation cannot use the clipping {other:?}")),
        };
        let histogram = histogram.map_err(|e| e.to_string())?;
        if let Some(test) = &self.test
            && test.width() != self.train.width()
        {
            return Err(format!(
                "the test rows of {} have {} encoded columns, the training rows {}",
                test.path().display(),
                test.width(),
                self.train.width()
            ));
        }
        if !self.standardize_test(standardizer)? {
            tracing::info!("no held-out test rows: contributing zeros to the pooled evaluation");
            return Ok(vec![0.0; dimension]);
        }
        let (scores, labels) = match &self.test {
            None => return Err("internal: test rows vanished".into()),
            Some(Rows::InMemory(test)) => (
                predict_proba(test.x.view(), beta)
                    .map_err(|e| format!("scoring the test rows: {e}"))?
                    .to_vec(),
                test.y.to_vec(),
            ),
            #[cfg(feature = "parquet")]
            Some(Rows::Streamed(test)) => {
                let (mut scores, mut labels) = (Vec::new(), Vec::new());
                test.for_each_batch(
                    |x| standardizer.apply(x),
                    |x, y| {
                        scores.extend(predict_proba(x, beta)?);
                        labels.extend(y);
                        Ok(())
                    },
                )
                .map_err(|e| format!("scoring the test rows: {e}"))?;
                (scores, labels)
            }
        };
        let terms = histogram
            .local_terms_clipped(&scores, &labels, loss_clip)
            .map_err(|e| format!("evaluation histograms: {e}"))?;
        match metrics_exact(&scores, &labels) {
            Ok(m) => {
                tracing::info!(
                    rows = m.n,
                    auc = ?m.auc,
                    ks = ?m.ks,
                    logloss = m.logloss,
                    default_rate = m.default_rate,
                    "local evaluation, this participant's held-out rows only"
                );
                self.local_metrics = Some(m);
            }
            Err(e) => tracing::warn!("no local evaluation: {e}"),
        }
        Ok(terms)
    }

    /// One party's Newton-round vector at `beta`: rows in memory are
    /// standardized (and row-clipped) in place once, streamed rows batch by
    /// batch; both are summed in the same blocks, so the vectors are equal.
    fn newton(
        &mut self,
        standardizer: &Standardizer,
        beta: &[f64],
        noise: Option<&TaskNoise>,
        task: &ModelTask,
    ) -> Result<Vec<f64>, String> {
        self.standardize_train(standardizer)?;
        let (loss_clip, row_norm) = match noise.map(|n| &n.clip) {
            None => (f64::INFINITY, None),
            Some(Clipping::RowNorm { norm, loss }) => (*loss, Some(*norm)),
            Some(other) => return Err(wrong_clipping(task, other)),
        };
        let fail = |e: &dyn std::fmt::Display| format!("Newton terms: {e}");
        let mut acc =
            NewtonAccumulator::new(self.train.width(), beta, loss_clip).map_err(|e| fail(&e))?;
        match &mut self.train {
            Rows::InMemory(train) => {
                if let Some(norm) = row_norm
                    && self.train_clipped != Some(norm)
                {
                    clip_row_norms(&mut train.x, norm);
                    self.train_clipped = Some(norm);
                }
                acc.add(train.x.view(), train.y.view())
                    .map_err(|e| fail(&e))?;
            }
            #[cfg(feature = "parquet")]
            Rows::Streamed(train) => train
                .for_each_batch(
                    |x| {
                        standardizer.apply(x)?;
                        if let Some(norm) = row_norm {
                            clip_row_norms(x, norm);
                        }
                        Ok(())
                    },
                    |x, y| acc.add(x, y),
                )
                .map_err(|e| fail(&e))?,
        }
        Ok(acc.finish())
    }
}

impl Contributor for CreditData {
    fn contribute(
        &mut self,
        round: u64,
        task: &Task,
        dimension: usize,
    ) -> Result<Vec<f64>, String> {
        let bytes = match task {
            Task::ModelTask(bytes) => bytes,
            Task::SecureSum(_) => {
                return Err("this participant runs a credit-model job, not a secure sum".into());
            }
        };
        let task = ModelTask::from_bytes(bytes).map_err(|e| e.to_string())?;
        self.contribute_task(round, task, dimension)
    }
}

impl CreditData {
    /// [`Contributor::contribute`] of a decoded task.
    fn contribute_task(
        &mut self,
        round: u64,
        task: ModelTask,
        dimension: usize,
    ) -> Result<Vec<f64>, String> {
        match &task {
            ModelTask::Binning {
                schema,
                bounds,
                fine_bins,
                values,
            } => {
                let hist = self.binning(&task, schema, bounds, *fine_bins)?;
                if hist.len() != *values || dimension != *values {
                    return Err(format!(
                        "the binning round aggregates {dimension} values, this participant's \
                         histograms have {}",
                        hist.len()
                    ));
                }
                return Ok(hist);
            }
            ModelTask::Woe {
                schema,
                binnings,
                on,
            } => {
                let on = (**on).clone();
                return self
                    .on_woe(schema, binnings)?
                    .contribute_task(round, on, dimension);
            }
            _ => {}
        }
        let p = self.train.width();
        let expected = task.dimension(p);
        if dimension != expected {
            return Err(format!(
                "the round aggregates {dimension} values, but a {} task on this participant's \
                 {p} encoded columns has {expected} (was the data loaded with another schema?)",
                task.name()
            ));
        }
        let span = tracing::info_span!("contribute", round, task = task.name());
        let _entered = span.enter();
        let mut values = match &task {
            ModelTask::Moments { noise } => {
                self.not_yet_standardized(&task)?;
                let mut acc = SumsAccumulator::new(p);
                self.raw_train_rows(column_clip(&task, noise.as_ref())?, |x, y| acc.add(x, y))
                    .map_err(|e| format!("statistics: {e}"))?;
                Ok(acc.finish())
            }
            ModelTask::CenteredSquares { mean, noise } => {
                self.not_yet_standardized(&task)?;
                let mut acc = CenteredSquaresAccumulator::new(mean.clone());
                self.raw_train_rows(column_clip(&task, noise.as_ref())?, |x, _| acc.add(x))
                    .map_err(|e| format!("centered squares: {e}"))?;
                Ok(acc.finish())
            }
            ModelTask::Newton {
                standardizer,
                beta,
                noise,
            } => self.newton(standardizer, beta, noise.as_ref(), &task),
            ModelTask::FedAvg {
                standardizer,
                beta,
                sgd,
            } => {
                #[cfg(feature = "parquet")]
                if let Rows::Streamed(s) = &self.train {
                    return Err(format!(
                        "FedAvg shuffles the training rows every epoch, so it needs them in \
                         memory, but {} ({} rows) is streamed because its matrix exceeds the \
                         memory budget; raise max_memory_mb or use the Newton optimizer",
                        s.path().display(),
                        s.rows()
                    ));
                }
                self.standardize_train(standardizer)?;
                let Rows::InMemory(train) = &self.train else {
                    return Err("internal: FedAvg on streamed rows".into());
                };
                let (x, y) = (train.x.view(), train.y.view());
                let local = local_sgd(x, y, beta, sgd).map_err(|e| format!("local SGD: {e}"))?;
                fedavg_local_terms(&local, x.nrows() as f64)
                    .map_err(|e| format!("FedAvg terms: {e}"))
            }
            ModelTask::Evaluate {
                standardizer,
                beta,
                bins,
                noise,
            } => self.evaluate(standardizer, beta, *bins, dimension, noise.as_ref()),
            ModelTask::Binning { .. } | ModelTask::Woe { .. } => {
                Err("internal: a scorecard task fell through".into())
            }
        }?;
        if let Some(noise) = task.noise() {
            if noise.dimension() != values.len() {
                return Err(format!(
                    "the task's noise covers {} values, the round has {}",
                    noise.dimension(),
                    values.len()
                ));
            }
            noise.scale(&mut values);
        }
        Ok(values)
    }
}

/// A statistics task's column clipping (`None` for an exact task).
fn column_clip<'t>(
    task: &ModelTask,
    noise: Option<&'t TaskNoise>,
) -> Result<Option<ColumnClip<'t>>, String> {
    match noise.map(|n| &n.clip) {
        None => Ok(None),
        Some(Clipping::Columns { bounds, centre }) => Ok(Some(ColumnClip {
            bounds,
            centre: *centre,
        })),
        Some(other) => Err(wrong_clipping(task, other)),
    }
}

fn wrong_clipping(task: &ModelTask, clip: &Clipping) -> String {
    format!("a {} task cannot use the clipping {clip:?}", task.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_model::logistic::newton_terms_len;
    use fedcredit_model::stats::local_moments;
    use fedcredit_proto::v1::SecureSumTask;
    use ndarray::array;
    use std::path::PathBuf;

    fn dataset(x: ndarray::Array2<f64>, y: ndarray::Array1<f64>, name: &str) -> Dataset {
        Dataset {
            x,
            y,
            path: PathBuf::from(name),
        }
    }

    fn party() -> CreditData {
        let train = dataset(
            array![[1.0, 10.0], [2.0, 30.0], [4.0, 20.0], [5.0, 60.0]],
            array![0.0, 1.0, 0.0, 1.0],
            "train.csv",
        );
        CreditData::new(train, None)
    }

    fn standardizer(x: &ndarray::Array2<f64>) -> Standardizer {
        Standardizer::from_moments(&local_moments(x.view()), x.ncols()).expect("standardizer")
    }

    impl CreditData {
        /// The training matrix of rows held in memory.
        fn train_x(&self) -> &ndarray::Array2<f64> {
            match &self.train {
                Rows::InMemory(d) => &d.x,
                #[cfg(feature = "parquet")]
                Rows::Streamed(s) => panic!("{s:?} is streamed"),
            }
        }
    }

    fn wire(task: &ModelTask) -> Task {
        Task::ModelTask(task.to_bytes().into())
    }

    #[test]
    fn moments_and_centered_squares() {
        let mut c = party();
        assert_eq!(c.train_rows(), 4);
        let v = c
            .contribute(1, &wire(&ModelTask::Moments { noise: None }), 4)
            .expect("moments");
        // Row count, column sums, and the positive rows (labels 0, 1, 0, 1).
        assert_eq!(v, [4.0, 12.0, 120.0, 2.0]);
        let task = ModelTask::CenteredSquares {
            mean: vec![3.0, 30.0],
            noise: None,
        };
        let v = c.contribute(2, &wire(&task), 2).expect("squares");
        assert_eq!(v, [10.0, 1400.0]);
    }

    #[test]
    fn newton_standardizes_once_and_refuses_a_different_standardizer() {
        let mut c = party();
        let raw = c.train_x().clone();
        let s = standardizer(&raw);
        let task = ModelTask::Newton {
            standardizer: s.clone(),
            beta: vec![0.0; 3],
            noise: None,
        };
        let dim = newton_terms_len(2);
        let first = c.contribute(3, &wire(&task), dim).expect("newton");
        // A retry of the same task standardizes nothing again.
        let again = c.contribute(3, &wire(&task), dim).expect("newton retry");
        assert_eq!(first, again);
        let mut z = raw.clone();
        s.apply(&mut z).expect("apply");
        assert_eq!(c.train_x(), &z);
        let direct = fedcredit_model::logistic::local_newton_terms(
            z.view(),
            ndarray::array![0.0, 1.0, 0.0, 1.0].view(),
            &[0.0; 3],
        )
        .expect("direct");
        assert_eq!(first, direct);

        let other = Standardizer::from_mean_std(4.0, vec![0.0, 0.0], vec![1.0, 2.0]).expect("s");
        let task = ModelTask::Newton {
            standardizer: other,
            beta: vec![0.0; 3],
            noise: None,
        };
        let err = c.contribute(4, &wire(&task), dim).expect_err("different");
        assert!(err.contains("refusing to standardize twice"), "{err}");
        assert_eq!(c.train_x(), &z);

        // Statistics after standardization would be wrong: refused.
        let err = c
            .contribute(5, &wire(&ModelTask::Moments { noise: None }), 4)
            .expect_err("late moments");
        assert!(err.contains("statistics rounds must come first"), "{err}");
    }

    #[test]
    fn fedavg_sends_count_weighted_model() {
        let mut c = party();
        let s = standardizer(c.train_x());
        let task = ModelTask::FedAvg {
            standardizer: s,
            beta: vec![0.0; 3],
            sgd: fedcredit_model::logistic::SgdConfig {
                total_rows: 4.0,
                ..Default::default()
            },
        };
        let v = c.contribute(3, &wire(&task), 4).expect("fedavg");
        assert_eq!(v.len(), 4);
        assert_eq!(v[3], 4.0);
        assert!(v.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn evaluate_without_test_rows_contributes_zeros() {
        let mut c = party();
        let s = standardizer(c.train_x());
        let task = ModelTask::Evaluate {
            standardizer: s,
            beta: vec![0.0; 3],
            bins: 1000,
            noise: None,
        };
        let v = c.contribute(9, &wire(&task), 2003).expect("evaluate");
        assert_eq!(v.len(), 2003);
        assert!(v.iter().all(|x| *x == 0.0));
        assert_eq!(c.local_metrics(), None);
        assert_eq!(c.test_rows(), 0);
    }

    #[test]
    fn evaluate_on_test_rows_keeps_local_metrics() {
        let train = dataset(
            array![[1.0], [2.0], [3.0], [4.0]],
            array![0.0, 0.0, 1.0, 1.0],
            "train.csv",
        );
        let test = dataset(
            array![[0.0], [5.0], [2.5]],
            array![0.0, 1.0, 1.0],
            "test.csv",
        );
        let mut c = CreditData::new(train, Some(test));
        let s = Standardizer::from_mean_std(4.0, vec![2.5], vec![1.0]).expect("s");
        let task = ModelTask::Evaluate {
            standardizer: s,
            beta: vec![0.0, 2.0],
            bins: 1000,
            noise: None,
        };
        let v = c.contribute(9, &wire(&task), 2003).expect("evaluate");
        assert_eq!(v[2000..], [v[2000], 2.0, 1.0]);
        assert_eq!(v[..2000].iter().sum::<f64>(), 3.0);
        let m = c.local_metrics().expect("metrics");
        assert_eq!((m.n, m.auc), (3.0, Some(1.0)));
        // The training rows were not touched by evaluation.
        assert_eq!(c.train_x(), &array![[1.0], [2.0], [3.0], [4.0]]);
    }

    #[test]
    fn wrong_task_kind_dimension_or_bytes() {
        let mut c = party();
        let err = c
            .contribute(1, &Task::SecureSum(SecureSumTask { index: 0 }), 3)
            .expect_err("secure sum");
        assert_eq!(
            err,
            "this participant runs a credit-model job, not a secure sum"
        );
        let err = c
            .contribute(1, &wire(&ModelTask::Moments { noise: None }), 5)
            .expect_err("dimension");
        assert!(
            err.contains("aggregates 5 values") && err.contains("has 4"),
            "{err}"
        );
        let err = c
            .contribute(
                1,
                &Task::ModelTask(b"{\"task\":\"nope\"}".to_vec().into()),
                3,
            )
            .expect_err("garbage");
        assert!(err.starts_with("model task:"), "{err}");
    }
}

/// Streamed rows against the same rows in memory: every task's vector
/// must be the same, bit for bit.
#[cfg(all(test, feature = "parquet"))]
mod streamed_tests {
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use ::parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use ::parquet::file::properties::WriterProperties;
    use ::parquet::file::writer::SerializedFileWriter;
    use ::parquet::schema::parser::parse_message_type;
    use fedcredit_model::logistic::newton_terms_len;
    use fedcredit_model::privacy::NoiseBlock;
    use fedcredit_model::stats::local_moments;
    use fedcredit_model::{Feature, LabelSpec, Schema};

    use super::*;
    use crate::data::MemoryBudget;

    fn schema() -> Schema {
        Schema {
            label: LabelSpec::binary("y", "bad", "good"),
            features: vec![
                Feature::Numeric { name: "x1".into() },
                Feature::Categorical {
                    name: "kind".into(),
                    categories: vec!["a".into(), "b".into(), "c".into()],
                },
                Feature::Numeric { name: "x2".into() },
            ],
        }
    }

    /// Row `i` of the test files; `bad` puts a null in `x2` at that row.
    fn value(i: usize, seed: f64) -> (f64, &'static str, i64, &'static str) {
        let t = (i as f64 * 0.7548776662 + seed).fract();
        let x1 = (t - 0.5) * 40.0 + (i % 7) as f64 * 0.1;
        let kind = ["a", "b", "c"][(i * 7 / 3) % 3];
        let x2 = ((i * 37) % 101) as i64 - 50;
        let bad = (x1 * 0.1 + x2 as f64 * 0.02 + t * 3.0) > 1.2;
        (x1, kind, x2, if bad { "bad" } else { "good" })
    }

    /// Writes rows `0..groups.sum()` in row groups of the given sizes, with
    /// small pages; `null_at` makes `x2` null there.
    fn write(path: &Path, groups: &[usize], seed: f64, null_at: Option<usize>) {
        let message = "message t { required binary y (UTF8); required double x1; \
                       required binary kind (UTF8); optional int64 x2; }";
        let schema = Arc::new(parse_message_type(message).expect("schema"));
        let props = Arc::new(
            WriterProperties::builder()
                .set_data_page_row_count_limit(500)
                .set_write_batch_size(500)
                .build(),
        );
        let mut w = SerializedFileWriter::new(File::create(path).expect("create"), schema, props)
            .expect("writer");
        let mut first = 0;
        for &n in groups {
            let rows: Vec<_> = (first..first + n).map(|i| value(i, seed)).collect();
            let mut g = w.next_row_group().expect("group");
            let mut c = g.next_column().expect("col").expect("y");
            let labels: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.3)).collect();
            c.typed::<ByteArrayType>()
                .write_batch(&labels, None, None)
                .expect("y");
            c.close().expect("close");
            let mut c = g.next_column().expect("col").expect("x1");
            let x1: Vec<f64> = rows.iter().map(|r| r.0).collect();
            c.typed::<DoubleType>()
                .write_batch(&x1, None, None)
                .expect("x1");
            c.close().expect("close");
            let mut c = g.next_column().expect("col").expect("kind");
            let kinds: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.1)).collect();
            c.typed::<ByteArrayType>()
                .write_batch(&kinds, None, None)
                .expect("kind");
            c.close().expect("close");
            let mut c = g.next_column().expect("col").expect("x2");
            let present: Vec<bool> = (first..first + n).map(|i| Some(i) != null_at).collect();
            let x2: Vec<i64> = rows
                .iter()
                .zip(&present)
                .filter(|(_, p)| **p)
                .map(|(r, _)| r.2)
                .collect();
            let defs: Vec<i16> = present.iter().map(|&p| i16::from(p)).collect();
            c.typed::<Int64Type>()
                .write_batch(&x2, Some(&defs), None)
                .expect("x2");
            c.close().expect("close");
            g.close().expect("group");
            first += n;
        }
        w.close().expect("close");
    }

    fn wire(task: &ModelTask) -> Task {
        Task::ModelTask(task.to_bytes().into())
    }

    fn noise(clip: Clipping, dimension: usize) -> Option<TaskNoise> {
        Some(TaskNoise {
            grid_bits: 16,
            sigma2_member: 1,
            honest: 2,
            members: 3,
            blocks: vec![NoiseBlock {
                len: dimension,
                bound: 1.0,
                scale: 1.0,
            }],
            clip,
            rho: 0.1,
        })
    }

    /// The same training and test files, held in memory and streamed.
    fn pair(dir: &Path) -> (CreditData, CreditData) {
        let (train, test) = (dir.join("train.parquet"), dir.join("test.parquet"));
        // Row groups that are not multiples of CHUNK_ROWS, one much larger.
        write(&train, &[1000, 9000, 3000, 2500], 0.25, None);
        write(&test, &[700, 2300], 0.5, None);
        let open = |path: &PathBuf, budget| Rows::open(path, &schema(), budget).expect("open");
        let memory = CreditData::from_rows(
            open(&train, MemoryBudget::default()),
            Some(open(&test, MemoryBudget::default())),
        );
        let streamed = CreditData::from_rows(
            open(&train, MemoryBudget::from_mb(0)),
            Some(open(&test, MemoryBudget::from_mb(0))),
        );
        assert!(matches!(memory.train, Rows::InMemory(_)));
        assert!(matches!(streamed.train, Rows::Streamed(_)));
        assert!(matches!(streamed.test, Some(Rows::Streamed(_))));
        assert_eq!(streamed.train_rows(), 15_500);
        assert_eq!(streamed.test_rows(), 3_000);
        (memory, streamed)
    }

    /// Runs `task` on both and checks the vectors are identical.
    fn same(memory: &mut CreditData, streamed: &mut CreditData, task: &ModelTask) -> Vec<f64> {
        let dim = task.dimension(4);
        let a = memory.contribute(1, &wire(task), dim).expect("in memory");
        let b = streamed.contribute(1, &wire(task), dim).expect("streamed");
        assert_eq!(a.len(), dim);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{}", task.name());
        a
    }

    #[test]
    fn exact_rounds_give_the_same_bits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut memory, mut streamed) = pair(dir.path());
        let sums = same(
            &mut memory,
            &mut streamed,
            &ModelTask::Moments { noise: None },
        );
        assert_eq!(sums[0], 15_500.0);
        let mean: Vec<f64> = sums[1..5].iter().map(|s| s / sums[0]).collect();
        let squares = same(
            &mut memory,
            &mut streamed,
            &ModelTask::CenteredSquares {
                mean: mean.clone(),
                noise: None,
            },
        );
        let std: Vec<f64> = squares
            .iter()
            .map(|q| (q / sums[0]).sqrt().max(1e-12))
            .collect();
        let s = Standardizer::from_mean_std(sums[0], mean, std).expect("standardizer");
        for beta in [vec![0.0; 5], vec![-0.3, 0.5, -0.2, 0.1, 0.8]] {
            let v = same(
                &mut memory,
                &mut streamed,
                &ModelTask::Newton {
                    standardizer: s.clone(),
                    beta,
                    noise: None,
                },
            );
            assert_eq!(v.len(), newton_terms_len(4));
        }
        let hist = same(
            &mut memory,
            &mut streamed,
            &ModelTask::Evaluate {
                standardizer: s,
                beta: vec![-0.3, 0.5, -0.2, 0.1, 0.8],
                bins: 1000,
                noise: None,
            },
        );
        assert_eq!(hist[..2000].iter().sum::<f64>(), 3_000.0);
        assert_eq!(memory.local_metrics(), streamed.local_metrics());
        assert!(memory.local_metrics().is_some());
    }

    #[test]
    fn private_rounds_clip_the_same_way() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut memory, mut streamed) = pair(dir.path());
        let bounds = vec![Some([-5.0, 5.0]), None, None, Some([-20.0, 20.0])];
        let columns = |centre| Clipping::Columns {
            bounds: bounds.clone(),
            centre,
        };
        same(
            &mut memory,
            &mut streamed,
            &ModelTask::Moments {
                noise: noise(columns(true), 6),
            },
        );
        same(
            &mut memory,
            &mut streamed,
            &ModelTask::CenteredSquares {
                mean: vec![0.1, 0.3, 0.3, -1.0],
                noise: noise(columns(false), 4),
            },
        );
        // The statistics rounds left the rows in memory raw.
        let Rows::InMemory(raw) = &memory.train else {
            panic!("in memory")
        };
        let s = Standardizer::from_moments(&local_moments(raw.x.view()), 4).expect("s");
        for beta in [vec![0.0; 5], vec![0.2, -0.5, 0.3, 0.0, 0.4]] {
            same(
                &mut memory,
                &mut streamed,
                &ModelTask::Newton {
                    standardizer: s.clone(),
                    beta,
                    noise: noise(
                        Clipping::RowNorm {
                            norm: 1.5,
                            loss: 0.9,
                        },
                        newton_terms_len(4),
                    ),
                },
            );
        }
        let fedavg = ModelTask::FedAvg {
            standardizer: s,
            beta: vec![0.0; 5],
            sgd: fedcredit_model::logistic::SgdConfig {
                total_rows: 15_500.0,
                ..Default::default()
            },
        };
        let err = streamed
            .contribute(9, &wire(&fedavg), fedavg.dimension(4))
            .expect_err("fedavg streamed");
        assert!(
            err.contains("needs them in memory") && err.contains("train.parquet"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_row_is_named_when_the_file_is_opened_and_a_changed_file_in_the_round() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bank-a.parquet");
        // In the last row group, after thousands of good rows.
        write(&path, &[1000, 9000, 3000], 0.25, Some(12_345));
        let e = Rows::open(&path, &schema(), MemoryBudget::from_mb(0))
            .expect_err("null")
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}: row 12346: column `x2`: null, expected a number",
                path.display()
            )
        );
        // The same message as the file loaded into memory.
        let loaded = Rows::open(&path, &schema(), MemoryBudget::default())
            .expect_err("null")
            .to_string();
        assert_eq!(e, loaded);

        write(&path, &[1000, 9000, 3000], 0.25, None);
        let mut c = CreditData::from_rows(
            Rows::open(&path, &schema(), MemoryBudget::from_mb(0)).expect("good"),
            None,
        );
        write(&path, &[1000, 9000, 3001], 0.25, Some(5));
        let e = c
            .contribute(1, &wire(&ModelTask::Moments { noise: None }), 6)
            .expect_err("changed");
        assert!(e.contains("bank-a.parquet: the file changed"), "{e}");
    }
}
