//! The fedcredit auditor: proves, from the coordinator's round log alone and
//! without trusting the coordinator, that every published sum and model
//! follows from the participants' signed inputs.
//!
//! [`verify`] replays a log against the consortium file (the trust anchor:
//! member keys, coordinator key, thresholds, the job):
//!
//! 1. the chain: framing, sequence numbers, hash links and the coordinator's
//!    signature on every record (`fedcredit_proto::roundlog`);
//! 2. `JobStarted` equals the consortium file (job hash, roster, thresholds, key);
//! 3. every participant message verifies under its sender's consortium key,
//!    is bound to this job and to the announced round attempt, and is the
//!    kind the open phase accepts, from a member of that phase's cohort;
//! 4. per attempt, the cohorts U1–U5 recomputed from the messages equal
//!    each `PhaseClosed`; shares are addressed to exactly U1 minus the
//!    sender; survivor lists equal U3;
//! 5. the session id is recomputed from the advertised keys, U3's masked
//!    inputs are summed and unmasked with the logged reveals; the result
//!    must be the published sum, and the coordinator-signed outcome must say
//!    the same; aborts must be justified by the log;
//! 6. a model job is replayed from its spec: each announced task, each
//!    round's progress and the published model must be the replay's, exactly;
//! 7. a private job's budget, in a pass of its own: each published round's
//!    ρ is recomputed from its announced noise, and the sum, as ε at the
//!    job's δ, must be within the job's ε ([`Report::privacy`]).
//!
//! ```
//! use std::path::Path;
//! use fedcredit_audit::{Check, verify};
//! use fedcredit_referee::consortium::Consortium;
//! # let key = |s: u8| fedcredit_crypto::identity::IdentityKey::from_secret_bytes(&[s; 32]).public().to_hex();
//! let toml = format!(
//!     "[coordinator]\nlisten = \"127.0.0.1:50051\"\npublic_key = \"{}\"\n\
//!      [job]\nid = \"exposure\"\nkind = \"secure-sum\"\ndimension = 2\nfrac_bits = 16\nclip = 1e6\n\
//!      [[participants]]\nid = \"bank-a\"\npublic_key = \"{}\"\n\
//!      [[participants]]\nid = \"bank-b\"\npublic_key = \"{}\"\n\
//!      [[participants]]\nid = \"bank-c\"\npublic_key = \"{}\"\n",
//!     key(9), key(1), key(2), key(3)
//! );
//! let consortium = Consortium::parse(Path::new("consortium.toml"), &toml)?;
//! // An empty log proves nothing.
//! let report = verify(b"", &consortium);
//! assert!(!report.ok());
//! let failure = report.first_failure().expect("a failure");
//! assert_eq!((failure.record, failure.check), (0, Check::JobStarted));
//! assert!(report.to_string().ends_with("result: NOT VERIFIED (0 round attempts: 0 OK; 1 other failed check(s))"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`show()`] prints a log as a timeline for people (checking nothing).
//!
//! Layout: [`report`] (what `verify` says), `verify` (the replay: records,
//! attempts, the job), [`mod@show`] (the timeline), [`AuditError`].
#![forbid(unsafe_code)]

mod error;
pub mod journal;
pub mod report;
pub mod show;
mod verify;

pub use error::{AuditError, Result};
pub use report::{
    AttemptReport, AttemptStatus, Check, Departure, Failure, JobEnd, LogEnd, Report, Resumed,
    Summary,
};
pub use show::{Timeline, show};
pub use verify::{json_difference, verify};
