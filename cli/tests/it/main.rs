//! All of this crate's integration tests, one module per former test file,
//! in one test binary: each binary links the whole dependency graph, and
//! linking one binary per file was most of CI's build time.

mod bad_input;
mod credit;
mod demo;
mod e2e;
mod monitor;
mod provision;
mod readme;
mod report;
mod scorecard;
mod serve;
mod service;
mod support;
