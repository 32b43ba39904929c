//! `model.json` as `fedcredit score` loads it (a `FittedModel`), then used
//! as scoring uses it: an encoder for its schema and one probability; and
//! the other JSON a party parses from another: a job's `Progress` (in the
//! round log, from the coordinator) and a job spec (`JobStarted`'s
//! `job_spec_json`, read by the auditor's timeline).
//!
//! Why: a model file is handed from the coordinator to lending systems and
//! read from disk; a damaged or crafted one must be refused, never crash
//! the scorer or make it allocate without bound.
#![no_main]
#![forbid(unsafe_code)]

use fedcredit_model::Encoder;
use fedcredit_model::job::{FittedModel, Progress};
use fedcredit_model::schema::Feature;
use fedcredit_referee::consortium::JobSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = serde_json::from_slice::<FittedModel>(data) {
        let header: Vec<&str> = model.schema.features.iter().map(Feature::name).collect();
        if let Ok(encoder) = Encoder::for_scoring(&model.schema, &header) {
            // The first category (or 0) of every feature, as one applicant.
            let record: Vec<&str> = model
                .schema
                .features
                .iter()
                .map(|f| match f {
                    Feature::Numeric { .. } => "0",
                    Feature::Categorical { categories, .. } => {
                        categories.first().map_or("", String::as_str)
                    }
                })
                .collect();
            let mut row = vec![0.0; encoder.width()];
            if encoder.encode_features_into(&record, &mut row).is_ok() {
                let _ = model.probability(&row);
            }
        }
        let _ = model.probability(&[]);
    }
    let _ = serde_json::from_slice::<Progress>(data);
    if let Ok(spec) = serde_json::from_slice::<JobSpec>(data) {
        let _ = spec.hash();
    }
});
