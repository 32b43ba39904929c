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

use fedcredit_model::job::ModelTask;
use fedcredit_model::logistic::newton::local_newton_terms_clipped;
use fedcredit_model::logistic::{fedavg_local_terms, local_sgd, predict_proba};
use fedcredit_model::metrics::metrics_exact;
use fedcredit_model::privacy::{Clipping, TaskNoise, clip_columns, clip_row_norms};
use fedcredit_model::stats::{local_centered_squares, local_sums_and_positives};
use fedcredit_model::{Metrics, ScoreHistogram, Standardizer};
use fedcredit_proto::v1::round_announcement::Task;

use crate::contribution::Contributor;
use crate::data::Dataset;

/// One participant's rows for a credit-model job.
pub struct CreditData {
    train: Dataset,
    test: Option<Dataset>,
    /// The job's standardization, once a task carried it; both matrices are
    /// standardized with this one and no other.
    standardizer: Option<Standardizer>,
    /// Whether `train.x` already holds standardized values.
    train_standardized: bool,
    /// Whether `test.x` already holds standardized values.
    test_standardized: bool,
    /// Exact metrics on this participant's own test rows, after evaluation.
    local_metrics: Option<Metrics>,
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

impl CreditData {
    /// Training rows and optional held-out test rows, both loaded with the
    /// job's schema (as [`crate::data::load_csv`] returns them, unstandardized).
    pub fn new(train: Dataset, test: Option<Dataset>) -> Self {
        Self {
            train,
            test,
            standardizer: None,
            train_standardized: false,
            test_standardized: false,
            local_metrics: None,
        }
    }

    /// Number of training rows.
    pub fn train_rows(&self) -> usize {
        self.train.rows()
    }

    /// Number of held-out test rows (0 without a test set).
    pub fn test_rows(&self) -> usize {
        self.test.as_ref().map_or(0, Dataset::rows)
    }

    /// This participant's exact AUC, KS and log-loss on its own test rows,
    /// once an evaluation round ran (`None` before, or without test rows).
    pub fn local_metrics(&self) -> Option<Metrics> {
        self.local_metrics
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

    fn standardize_train(&mut self, s: &Standardizer) -> Result<(), String> {
        self.check_standardizer(s)?;
        if !self.train_standardized {
            s.apply(&mut self.train.x)
                .map_err(|e| format!("standardizing the training rows: {e}"))?;
            self.train_standardized = true;
            tracing::debug!(
                rows = self.train.rows(),
                "standardized the training rows in place"
            );
        }
        self.standardizer.get_or_insert_with(|| s.clone());
        Ok(())
    }

    /// Standardizes the test rows in place (once); `false` without test rows.
    fn standardize_test(&mut self, s: &Standardizer) -> Result<bool, String> {
        self.check_standardizer(s)?;
        let Some(test) = self.test.as_mut().filter(|t| t.rows() > 0) else {
            return Ok(false);
        };
        if !self.test_standardized {
            s.apply(&mut test.x).map_err(|e| {
                format!(
                    "standardizing the test rows of {}: {e}",
                    test.path.display()
                )
            })?;
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
                test.path.display(),
                test.width(),
                self.train.width()
            ));
        }
        if !self.standardize_test(standardizer)? {
            tracing::info!("no held-out test rows: contributing zeros to the pooled evaluation");
            return Ok(vec![0.0; dimension]);
        }
        let Some(test) = &self.test else {
            return Err("internal: test rows vanished".into());
        };
        let scores = predict_proba(test.x.view(), beta)
            .map_err(|e| format!("scoring the test rows: {e}"))?
            .to_vec();
        let labels = test.y.to_vec();
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
                let y = self.train.y.view();
                match noise.as_ref().map(|n| &n.clip) {
                    None => local_sums_and_positives(self.train.x.view(), y),
                    Some(Clipping::Columns { bounds, centre }) => {
                        let mut x = self.train.x.clone();
                        clip_columns(&mut x, bounds, *centre);
                        local_sums_and_positives(x.view(), y)
                    }
                    Some(other) => return Err(wrong_clipping(&task, other)),
                }
                .map_err(|e| format!("statistics: {e}"))
            }
            ModelTask::CenteredSquares { mean, noise } => {
                self.not_yet_standardized(&task)?;
                match noise.as_ref().map(|n| &n.clip) {
                    None => local_centered_squares(self.train.x.view(), mean),
                    Some(Clipping::Columns { bounds, centre }) => {
                        let mut x = self.train.x.clone();
                        clip_columns(&mut x, bounds, *centre);
                        local_centered_squares(x.view(), mean)
                    }
                    Some(other) => return Err(wrong_clipping(&task, other)),
                }
                .map_err(|e| format!("centered squares: {e}"))
            }
            ModelTask::Newton {
                standardizer,
                beta,
                noise,
            } => {
                self.standardize_train(standardizer)?;
                let loss_clip = match noise.as_ref().map(|n| &n.clip) {
                    None => f64::INFINITY,
                    Some(Clipping::RowNorm { norm, loss }) => {
                        // Idempotent: rows clipped for an earlier round stay as they are.
                        clip_row_norms(&mut self.train.x, *norm);
                        *loss
                    }
                    Some(other) => return Err(wrong_clipping(&task, other)),
                };
                local_newton_terms_clipped(
                    self.train.x.view(),
                    self.train.y.view(),
                    beta,
                    loss_clip,
                )
                .map_err(|e| format!("Newton terms: {e}"))
            }
            ModelTask::FedAvg {
                standardizer,
                beta,
                sgd,
            } => {
                self.standardize_train(standardizer)?;
                let (x, y) = (self.train.x.view(), self.train.y.view());
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
        let raw = c.train.x.clone();
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
        assert_eq!(c.train.x, z);
        let direct =
            fedcredit_model::logistic::local_newton_terms(z.view(), c.train.y.view(), &[0.0; 3])
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
        assert_eq!(c.train.x, z);

        // Statistics after standardization would be wrong: refused.
        let err = c
            .contribute(5, &wire(&ModelTask::Moments { noise: None }), 4)
            .expect_err("late moments");
        assert!(err.contains("statistics rounds must come first"), "{err}");
    }

    #[test]
    fn fedavg_sends_count_weighted_model() {
        let mut c = party();
        let s = standardizer(&c.train.x);
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
        let s = standardizer(&c.train.x);
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
        assert_eq!(c.train.x, array![[1.0], [2.0], [3.0], [4.0]]);
    }

    #[test]
    fn wrong_task_kind_dimension_or_bytes() {
        let mut c = party();
        let err = c
            .contribute(1, &Task::SecureSum(SecureSumTask {}), 3)
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
