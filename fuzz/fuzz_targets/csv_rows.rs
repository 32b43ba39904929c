//! CSV rows from disk, the three ways fedcredit reads them: a participant's
//! training or held-out file encoded with the job's schema (`load_csv`, two
//! passes over the file, with line numbers on every error); a schema
//! inferred from the file and the file loaded with it (`fedcredit local`);
//! and applicants encoded for scoring without a label (`fedcredit score`).
//!
//! Why: the files are the participants' own, exported from other systems;
//! any byte sequence (quotes, blank lines, `\r`, invalid UTF-8, ragged
//! rows) must be refused with the file, line and column, never a panic.
#![no_main]
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use fedcredit_model::{Encoder, Feature, LabelSpec, Schema};
use fedcredit_participant::data::load_csv;
use libfuzzer_sys::fuzz_target;

/// The small credit jobs' schema (as in the fuzz fixtures).
fn schema() -> Schema {
    Schema {
        label: LabelSpec::binary("creditability", "bad", "good"),
        features: vec![
            Feature::Numeric {
                name: "duration_in_month".into(),
            },
            Feature::Categorical {
                name: "housing".into(),
                categories: vec!["for free".into(), "own".into(), "rent".into()],
            },
        ],
    }
}

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"));
    let path = dir.path().join("rows.csv");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let schema = schema();
    let _ = load_csv(&path, &schema);

    // As `fedcredit local` and `fedcredit score` read a file: csv's reader,
    // a header, then every record as strings.
    let mut reader = csv::Reader::from_reader(data);
    let Ok(header) = reader
        .headers()
        .map(|h| h.iter().map(str::to_owned).collect::<Vec<_>>())
    else {
        return;
    };
    let rows: Vec<Vec<String>> = reader
        .records()
        .map_while(Result::ok)
        .map(|r| r.iter().map(str::to_owned).collect())
        .collect();
    if let Ok(inferred) = Schema::infer(&header, &rows, schema.label.clone()) {
        let _ = load_csv(&path, &inferred);
    }
    if let Ok(encoder) = Encoder::for_scoring(&schema, &header) {
        let mut row = vec![0.0; encoder.width()];
        for r in &rows {
            let _ = encoder.encode_features_into(r, &mut row);
        }
    }
});
