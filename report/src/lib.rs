//! The regulator report: one self-contained HTML file on a model, written
//! only after the model has been checked against its signed round log, and
//! signed by the coordinator key in a detached `.sig` file.
//!
//! `fedcredit report` calls [`build`] with model.json, the round log and
//! the consortium file (optionally another job spec), then
//! [`signature::sign_text`]; `fedcredit report verify` calls
//! [`signature::verify`].
//!
//! Why it refuses rather than reports: a report is what a regulator reads
//! instead of the log, so it must never present a model the log does not
//! back. [`lineage::check`] runs the auditor's own verifier
//! ([`fedcredit_audit::verify`]) and compares model.json with the model
//! the log published; any difference is an error naming it.
//!
//! Layout:
//! - [`lineage`]: the checks, and the [`lineage::Checked`] they produce;
//! - [`charts`]: inline SVG (ROC, KS, score distribution, calibration);
//! - [`html`]: escaping and the document's [`html::Section`]s;
//! - [`signature`]: the detached signature;
//! - [`ReportError`].
//!
//! Extension point: sections from inputs other than the model and the log
//! (a monitoring file's PSI) are [`html::Section`]s passed to [`build`] in
//! `extra`, after the built-in ones.
#![forbid(unsafe_code)]

pub mod charts;
mod error;
pub mod html;
pub mod lineage;
pub mod signature;
pub mod stability;

pub use error::{ReportError, Result};
pub use html::{Section, Sources};
pub use lineage::Checked;

use fedcredit_referee::consortium::Consortium;

/// What the report is made from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// model.json's text.
    pub model_json: &'a str,
    /// The round log's bytes.
    pub log: &'a [u8],
    /// The consortium, with the job to check against as its `[job]`.
    pub consortium: &'a Consortium,
}

/// A report: the HTML and what was checked to write it.
#[derive(Debug, Clone)]
pub struct Built {
    /// The document.
    pub html: String,
    /// The checked inputs (the verdict, hashes, the model).
    pub checked: Checked,
}

/// Checks the inputs ([`lineage::check`]) and writes the document, with
/// `extra` sections after the built-in ones. The HTML is a function of the
/// inputs alone (no clock, no paths but `sources`), so anyone holding them
/// rebuilds the same bytes.
pub fn build(inputs: Inputs<'_>, sources: &Sources, extra: &[Section]) -> Result<Built> {
    let checked = lineage::check(inputs.model_json, inputs.log, inputs.consortium)?;
    let html = html::document(&checked, sources, extra);
    Ok(Built { html, checked })
}
