//! All of this crate's integration tests, one module per former test file,
//! in one test binary: each binary links the whole dependency graph, and
//! linking one binary per file was most of CI's build time.

mod credit_job;
mod data;
mod epoch_rounds;
