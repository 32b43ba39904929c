//! The fedcredit wire protocol: tonic/prost code generated at build time from
//! `proto/fedcredit.proto`. Conversion to domain types happens in the crates
//! that own those types, once, at the edge.
#![forbid(unsafe_code)]
#![allow(missing_debug_implementations, clippy::all, clippy::unwrap_used)]

/// Version 1 of the protocol (`package fedcredit.v1`).
pub mod v1 {
    tonic::include_proto!("fedcredit.v1");
}

pub use v1::*;
