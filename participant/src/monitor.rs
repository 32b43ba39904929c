//! A monitor job seen from one participant: its development rows (`data`)
//! and new applicants (`applicants`) counted per score band and per
//! characteristic bin of the job's scorecard
//! ([`fedcredit_model::scorecard::stability`]); only the masked counts
//! leave.

use std::path::{Path, PathBuf};

use fedcredit_model::scorecard::stability::StabilityLayout;
use fedcredit_proto::WireError;
use fedcredit_proto::v1::round_announcement::Task;
use fedcredit_referee::monitor::{MAX_COUNT, MonitorSpec};

use crate::ParticipantError;
use crate::config::ParticipantConfig;
use crate::contribution::Contributor;
use crate::data::{self, Dataset};

/// One participant's counts for a monitor job, computed when loaded.
#[derive(Debug)]
pub struct MonitorData {
    counts: Vec<f64>,
    development: usize,
    applicants: usize,
}

impl MonitorData {
    /// Loads `cfg`'s `data` (development rows, CSV or Parquet) and
    /// `applicants` (CSV, the label column optional) with the scorecard's
    /// schema and counts them. A missing key is named, as is any bad cell
    /// (file, line, column, value) or a value outside every bin.
    pub fn load(cfg: &ParticipantConfig, spec: &MonitorSpec) -> Result<Self, ParticipantError> {
        let key = |key: &str, what: &str| -> ParticipantError {
            WireError::InvalidConfig {
                file: cfg.path.clone(),
                key: key.into(),
                expected: format!("a monitor job needs {what}"),
            }
            .into()
        };
        let data = cfg.data.as_ref().ok_or_else(|| {
            key(
                "data",
                "the development rows (CSV or Parquet with a header)",
            )
        })?;
        let applicants = cfg.applicants.as_ref().ok_or_else(|| {
            key(
                "applicants",
                "the new applicants' rows (CSV with the same feature columns; the label may be absent)",
            )
        })?;
        let layout = spec
            .layout()
            .map_err(|reason| ParticipantError::Contribution { round: 0, reason })?;
        let card = spec
            .scorecard
            .as_ref()
            .ok_or_else(|| ParticipantError::Contribution {
                round: 0,
                reason: "the monitor job embeds no scorecard".into(),
            })?;
        let development = data::load(data, &card.schema)?;
        let new = data::load_unlabelled_csv(applicants, &card.schema)?;
        Self::count(&layout, &development, &new)
    }

    /// Counts `development` and `new` rows (encoded with the scorecard's schema).
    pub fn count(
        layout: &StabilityLayout,
        development: &Dataset,
        new: &Dataset,
    ) -> Result<Self, ParticipantError> {
        let mut counts = vec![0.0; layout.dimension()];
        for (rows, applicant) in [(development, false), (new, true)] {
            for (i, row) in rows.x.rows().into_iter().enumerate() {
                let row: Vec<f64> = row.to_vec();
                layout
                    .add_row(&mut counts, &row, applicant)
                    .map_err(|e| outside(&rows.path, i, &e.to_string()))?;
            }
        }
        if let Some(i) = counts.iter().position(|c| *c > MAX_COUNT) {
            return Err(ParticipantError::Contribution {
                round: 0,
                reason: format!(
                    "count {i} is {}, above the {MAX_COUNT} a monitor round carries exactly",
                    counts[i]
                ),
            });
        }
        Ok(Self {
            counts,
            development: development.rows(),
            applicants: new.rows(),
        })
    }

    /// Development rows counted.
    pub fn development_rows(&self) -> usize {
        self.development
    }

    /// New applicants counted.
    pub fn applicant_rows(&self) -> usize {
        self.applicants
    }

    /// The vector this participant contributes.
    pub fn counts(&self) -> &[f64] {
        &self.counts
    }
}

/// A row whose value falls in no bin: the data row `i` (0-based) of `path`.
fn outside(path: &Path, i: usize, problem: &str) -> ParticipantError {
    ParticipantError::Data {
        file: PathBuf::from(path),
        // The header is line 1 and every record one line (blank lines or a
        // quoted multi-line record shift this: the data row is said too).
        line: i as u64 + 2,
        problem: format!("data row {}: {problem}", i + 1),
    }
}

impl Contributor for MonitorData {
    fn contribute(
        &mut self,
        _round: u64,
        task: &Task,
        dimension: usize,
    ) -> Result<Vec<f64>, String> {
        match task {
            Task::SecureSum(_) if dimension == self.counts.len() => Ok(self.counts.clone()),
            Task::SecureSum(_) => Err(format!(
                "the round aggregates {dimension} values, this participant's monitor counts are {}",
                self.counts.len()
            )),
            Task::ModelTask(_) => {
                Err("this participant runs a monitor job, not a model job".into())
            }
        }
    }
}
