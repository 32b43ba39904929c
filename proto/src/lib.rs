//! The fedcredit wire: everything the coordinator, participants and the
//! auditor must read and write alike.
//!
//! - [`v1`]: tonic/prost code generated at build time from `proto/fedcredit.proto`;
//! - [`envelope`]: signing and verifying `Signed` envelopes against the roster;
//! - [`roster`]: participant ids, their Shamir indices and identity keys;
//! - [`roundlog`]: the round log's framing, hash chain and signatures;
//! - [`owner`]: the one-writer lock on the round log and on a participant's journal;
//! - [`epoch`]: an epoch's setup shares and slot reveals to and from domain types;
//! - [`shares`]: a dealer's phase-2 message (commitments, ciphertexts) to and from domain types;
//! - [`words`]: u64 vectors as little-endian bytes on the wire;
//! - [`chunks`]: masked inputs larger than one message, as streams of signed chunks;
//! - [`codec`]: how a round's values become words (narrow or wide fixed point).
#![forbid(unsafe_code)]

/// Version 1 of the protocol (`package fedcredit.v1`), generated.
#[allow(missing_debug_implementations, clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("fedcredit.v1");
}

pub mod chunks;
pub mod codec;
pub mod envelope;
pub mod epoch;
pub mod journal;
pub mod owner;
pub mod roster;
pub mod roundlog;
pub mod shares;
pub mod words;

mod error;
pub use error::WireError;

impl TryFrom<&v1::KeyAdvertisement> for fedcredit_crypto::secagg::Advertisement {
    type Error = WireError;

    /// A member's two advertised public keys; a key of the wrong length is
    /// refused with the field's name.
    fn try_from(k: &v1::KeyAdvertisement) -> Result<Self, WireError> {
        use fedcredit_crypto::kx::AgreementPublic;
        let key = |what: &'static str, bytes: &[u8]| {
            AgreementPublic::from_bytes(bytes).map_err(|e| WireError::Field {
                what,
                problem: e.to_string(),
            })
        };
        Ok(Self {
            share_enc: key("share_enc_public", &k.share_enc_public)?,
            mask_agree: key("mask_agree_public", &k.mask_agree_public)?,
        })
    }
}

impl v1::Poll {
    /// A poll sent now: this clock's time and a random nonce (see the
    /// proto's `Poll`). `fresh`: the sender has seen no round yet.
    pub fn now(fresh: bool) -> Self {
        use rand_core::RngCore as _;
        let mut nonce = [0u8; POLL_NONCE_LEN];
        rand_core::OsRng.fill_bytes(&mut nonce);
        let sent_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            fresh,
            sent_unix_ms,
            nonce: nonce.to_vec().into(),
        }
    }
}

/// Length of a poll's nonce.
pub const POLL_NONCE_LEN: usize = 16;

impl v1::message::Body {
    /// The protocol step this message belongs to, as logs, errors and the
    /// participant journal name it (`poll`, `advertise-keys`, … `leave`).
    pub fn phase_name(&self) -> &'static str {
        use v1::message::Body;
        match self {
            Body::Poll(_) => "poll",
            Body::Advertise(_) => "advertise-keys",
            Body::Shares(_) | Body::EpochShares(_) => "share-keys",
            Body::MaskedInput(_) | Body::MaskedChunk(_) => "masked-input",
            Body::Consistency(_) => "consistency-check",
            Body::Unmask(_) | Body::SlotReveal(_) => "unmask",
            Body::Leave(_) => "leave",
            Body::FetchOutcome(_) => "fetch-outcome",
        }
    }
}

impl v1::ReasonCode {
    /// The code as logs, reports and model files name it (`invalid-data`, …).
    pub fn label(self) -> &'static str {
        use v1::ReasonCode;
        match self {
            ReasonCode::ReasonUnspecified => "unspecified",
            ReasonCode::ReasonInvalidData => "invalid-data",
            ReasonCode::ReasonRefusedTask => "refused-task",
            ReasonCode::ReasonKeyMismatch => "key-mismatch",
            ReasonCode::ReasonShuttingDown => "shutting-down",
            ReasonCode::ReasonProtocolViolation => "protocol-violation",
            ReasonCode::ReasonLocalConfig => "local-config",
            ReasonCode::ReasonContributionFailed => "contribution-failed",
            ReasonCode::ReasonPolicyKind => "policy-kind",
            ReasonCode::ReasonPolicyLabel => "policy-label",
            ReasonCode::ReasonPolicyFeatures => "policy-features",
            ReasonCode::ReasonPolicyPrivacy => "policy-privacy",
            ReasonCode::ReasonPolicyCohort => "policy-cohort",
        }
    }

    /// The label of a raw wire value; unknown values read as `unknown`.
    pub fn label_of(code: i32) -> &'static str {
        v1::ReasonCode::try_from(code).map_or("unknown", Self::label)
    }
}
