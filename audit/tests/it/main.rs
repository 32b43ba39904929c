//! All of this crate's integration tests, one module per former test file,
//! in one test binary: each binary links the whole dependency graph, and
//! linking one binary per file was most of CI's build time.

mod clean;
mod common;
mod epoch;
mod handmade;
mod privacy;
mod restart;
mod tamper;
