//! The fedcredit participant: a daemon beside a bank's or platform's data.
//! It dials out to the coordinator (never listens), long-polls for round
//! announcements, computes its contribution locally, and sends only signed,
//! masked vectors. Every peer key and survivor list it acts on is checked
//! against the consortium file's identity keys first.
//!
//! Layout: [`config`] reads `bank-a.toml`; [`contribution`] says what a round
//! needs from local data; [`data`] loads and encodes a CSV or Parquet file
//! with the job's schema (every bad cell named by file, line and column
//! before any round), or streams a Parquet file too large for its memory
//! budget; [`credit`] answers a credit-model job's rounds from those rows;
//! [`monitor`] counts development rows and new applicants for a monitor
//! job; [`client`] drives the rounds over gRPC.
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod contribution;
pub mod credit;
pub mod data;
mod error;
pub mod journal;
pub mod metrics;
pub mod monitor;
pub mod policy;

pub use client::{CrashPoint, JobResult, Report, RoundSeen, Settings, leave, offered_job, run};
pub use error::ParticipantError;
