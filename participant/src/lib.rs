//! The fedcredit participant: a daemon beside a bank's or platform's data.
//! It dials out to the coordinator (never listens), long-polls for round
//! announcements, computes its contribution locally, and sends only signed,
//! masked vectors. Every peer key and survivor list it acts on is checked
//! against the consortium file's identity keys first.
//!
//! Layout: [`config`] reads `bank-a.toml`; [`contribution`] says what a round
//! needs from local data; [`client`] drives the rounds over gRPC.
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod contribution;
mod error;

pub use client::{CrashPoint, Report, RoundSeen, Settings, run};
pub use error::ParticipantError;
