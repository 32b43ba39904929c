//! All of this crate's integration tests, one module per former test file,
//! in one test binary: each binary links the whole dependency graph, and
//! linking one binary per file was most of CI's build time.

mod admin;
mod bad_reveal;
mod chunked_input;
mod ending;
mod epoch;
mod members;
mod rejections;
