//! The consortium file (`consortium.toml`), the trust anchor every party
//! reads: parsed and validated (`Consortium::parse`), then turned into what
//! each role builds from it: the job's rules and first plan, the referee,
//! the job hash and the message bound.
//!
//! Why: the file comes from disk, handed to every participant and auditor
//! by the operator; a bad one must be refused naming the key, never crash
//! or allocate without bound (a dimension, a schema, a member list).
#![no_main]
#![forbid(unsafe_code)]

use std::path::Path;

use fedcredit_referee::consortium::Consortium;
use fedcredit_referee::{JobRules, Referee, max_words};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Consortium::parse(Path::new("consortium.toml"), text) else {
        return;
    };
    let _ = c.job.hash();
    let _ = max_words(&c.job.kind);
    let _ = c.roster.members().count();
    if let Ok(rules) = JobRules::new(&c.job, fedcredit_referee::plan::noise_cohort(&c))
        && let Some(plan) = rules.next_plan()
    {
        let _ = plan.codec.check(c.roster.len());
    }
    if let Ok(referee) = Referee::new(&c)
        && let Some(plan) = referee.next_plan()
    {
        let _ = referee.digest(&plan);
    }
});
