//! The report's population-stability section, from a `monitor` job's
//! `monitor.json`: the PSI of the score and the CSI of each characteristic,
//! with their levels (stable < 0.10 ≤ watch ≤ 0.25 < alert).

use fedcredit_model::scorecard::stability::{Level, MonitorReport};
use serde::Deserialize;

use crate::error::{ReportError, Result};
use crate::html::{Section, escape, table};

/// A `monitor.json` as the coordinator and members write it.
#[derive(Debug, Clone, Deserialize)]
pub struct MonitorFile {
    /// The monitor job's id.
    pub job: String,
    /// Its spec hash.
    pub job_spec_hash: String,
    /// The spec hash of the model it monitored.
    pub model_job_spec_hash: String,
    /// Whose rows were counted.
    pub contributors: Vec<String>,
    /// PSI and CSI.
    #[serde(flatten)]
    pub report: MonitorReport,
}

impl MonitorFile {
    /// Parses `text` (`name` only names it in errors).
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| ReportError::Monitor(format!("{name} is not a monitor.json: {e}")))
    }
}

fn level(l: Level) -> &'static str {
    match l {
        Level::Stable => "stable",
        Level::Watch => "watch",
        Level::Alert => "alert",
    }
}

/// The section for `monitor`, which must have monitored the model whose
/// job spec hash is `model_spec_hash`.
pub fn section(monitor: &MonitorFile, model_spec_hash: &str) -> Result<Section> {
    if monitor.model_job_spec_hash != model_spec_hash {
        return Err(ReportError::Monitor(format!(
            "monitor job {:?} monitored the model of job spec {}, this report's model is {}",
            monitor.job, monitor.model_job_spec_hash, model_spec_hash
        )));
    }
    let r = &monitor.report;
    let mut rows = Vec::with_capacity(r.characteristics.len() + 1);
    for item in std::iter::once(&r.score).chain(&r.characteristics) {
        rows.push(vec![
            (escape(&item.name), false),
            (format!("{:.4}", item.index), true),
            (level(item.level).to_owned(), false),
            (format!("{}", item.rows.len()), true),
        ]);
    }
    let body = format!(
        "<p>Monitor job <code>{}</code> (spec <code>{}</code>): {} development rows and {} new \
         applicants, counted by {} and pooled by secure aggregation. PSI of the score over its \
         bands, CSI of each characteristic over its bins; shares floored at {} before each \
         term. Levels: stable below 0.10, watch 0.10 to 0.25, alert above 0.25. The figures \
         are the monitor job's published result: check them with <code>fedcredit audit \
         verify</code> on that job's round log.</p>{}",
        escape(&monitor.job),
        escape(&monitor.job_spec_hash),
        r.development_rows,
        r.applicant_rows,
        escape(&monitor.contributors.join(", ")),
        r.share_floor,
        table(
            Some("stability"),
            &["item", "index", "level", "bands or bins"],
            &rows
        )
    );
    Ok(Section {
        id: "stability".into(),
        title: "Population stability (PSI, CSI)".into(),
        body,
    })
}
