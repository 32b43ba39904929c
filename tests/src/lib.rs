//! Test-only harness for the malicious-coordinator suite
//! (`tests/it/malicious_coordinator.rs`): secure aggregation exists to protect
//! each bank from the coordinator, so these tests run a deliberately
//! dishonest coordinator against the real honest participant code
//! (`fedcredit_participant::run`) over real gRPC on loopback.
//!
//! Layout:
//! - [`setup`]: identity keys, consortium files, spawning honest participants;
//! - [`adversary`]: [`Adversary`], a scripted coordinator: the test decides
//!   every announcement, cohort, survivor list and relay, and it records
//!   everything the honest participants send;
//! - [`colluder`]: a consortium member played by the adversary (it holds the
//!   member's identity key and every share sent to it);
//! - [`knowledge`]: the adversary's own computation on what it recorded
//!   (real unmasking, differences of sums, reconstruction of both secrets of
//!   one member), to check whether any honest member's vector leaks.
//!
//! The harness relays participants' signed messages as they are and lets the
//! test choose cohorts and lists, so protocol additions (digests of previous
//! outcomes in announcements, session ids in survivor lists, share commitments) are
//! small edits here.
#![forbid(unsafe_code)]

pub mod adversary;
pub mod colluder;
pub mod knowledge;
pub mod setup;

pub use adversary::{Adversary, AttemptRecord, Dealing, End};
pub use colluder::Colluder;
pub use knowledge::Learned;
