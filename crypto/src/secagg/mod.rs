//! Secure aggregation (Bonawitz et al., CCS 2017), actively-secure variant:
//! the pure protocol logic shared by participants, the coordinator and the
//! auditor. No I/O: callers move the messages.
//!
//! ```text
//! client:  AdvertiseKeys ──share_keys──▶ ShareKeys ──masked_input──▶ MaskedInputSent
//!                    ──confirm──▶ AwaitingConfirmations ──unmask──▶ (shares revealed; state consumed)
//! server:  Σ masked inputs of U3 ──unmask(revealed shares)──▶ Σ inputs of U3
//! ```
//!
//! Cohorts: U1 advertised keys, U2 ⊆ U1 sent shares, U3 ⊆ U2 sent a masked
//! input (their inputs are in the sum), U4 ⊆ U3 confirmed the survivor list
//! and reveal shares. Each transition consumes its state, so a participant
//! cannot mask twice with the same keys or reveal twice.

pub mod client;
pub mod server;

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::CryptoError;
use crate::kx::{AgreementPublic, AgreementSecret, KeyPurpose, SessionId, derive_key};
use crate::mask::MaskSeed;

/// A party's position in the consortium roster, 1-based: its Shamir
/// x-coordinate and the order that decides the sign of pairwise masks.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PartyIndex(u32);

impl PartyIndex {
    /// Makes an index; zero is not a valid Shamir x-coordinate.
    pub fn new(index: u32) -> Result<Self, SecAggError> {
        if index == 0 {
            return Err(SecAggError::ZeroPartyIndex);
        }
        Ok(Self(index))
    }

    /// The raw 1-based value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for PartyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The two fresh X25519 public keys a party advertises for one round attempt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Advertisement {
    /// Encrypts the Shamir shares sent to this party.
    pub share_enc: AgreementPublic,
    /// Agrees the pairwise mask seeds; its secret is shared t-of-n.
    pub mask_agree: AgreementPublic,
}

/// Parameters every party must agree on for one round attempt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Thresholds {
    /// Shares needed to reconstruct a secret, and survivors needed per phase.
    pub threshold: usize,
    /// Below this many parties nobody continues: with two survivors each
    /// would learn the other's input from the sum.
    pub min_cohort: usize,
}

impl Thresholds {
    /// The default threshold t = ⌊2n/3⌋ + 1 for a consortium of n.
    pub fn default_threshold(n: usize) -> usize {
        2 * n / 3 + 1
    }

    /// Checks that `have` parties may go on in `phase`.
    pub fn check(&self, phase: Phase, have: usize) -> Result<(), SecAggError> {
        let need = self.threshold.max(self.min_cohort);
        if have < need {
            return Err(SecAggError::TooFewParties { phase, have, need });
        }
        Ok(())
    }
}

/// Protocol phases, for error messages and logs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// Phase 1: fresh public keys.
    AdvertiseKeys,
    /// Phase 2: encrypted Shamir shares.
    ShareKeys,
    /// Phase 3: masked inputs.
    MaskedInput,
    /// Phase 4: signed survivor list.
    ConsistencyCheck,
    /// Phase 5: revealed shares.
    Unmask,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::AdvertiseKeys => "advertise-keys",
            Phase::ShareKeys => "share-keys",
            Phase::MaskedInput => "masked-input",
            Phase::ConsistencyCheck => "consistency-check",
            Phase::Unmask => "unmask",
        })
    }
}

/// What binds a session id: the job, the round attempt, the threshold and
/// every advertised key of U1.
#[derive(Clone, Copy, Debug)]
pub struct SessionBinding<'a> {
    /// The job's identifier.
    pub job_id: &'a str,
    /// SHA-256 of the job specification.
    pub job_spec_hash: &'a [u8; 32],
    /// Round number within the job.
    pub round: u64,
    /// Attempt number of this round (a restarted round has fresh keys).
    pub attempt: u32,
    /// The agreed thresholds.
    pub thresholds: Thresholds,
}

/// The session id: SHA-256 over a domain tag, the binding and all of U1's
/// advertised keys in index order. It goes into every HKDF `info` and AEAD
/// associated data of the round attempt.
pub fn session_id(
    binding: &SessionBinding<'_>,
    cohort: &BTreeMap<PartyIndex, Advertisement>,
) -> SessionId {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/session\0");
    h.update((binding.job_id.len() as u64).to_be_bytes());
    h.update(binding.job_id.as_bytes());
    h.update(binding.job_spec_hash);
    h.update(binding.round.to_be_bytes());
    h.update(binding.attempt.to_be_bytes());
    h.update((binding.thresholds.threshold as u64).to_be_bytes());
    h.update((binding.thresholds.min_cohort as u64).to_be_bytes());
    h.update((cohort.len() as u64).to_be_bytes());
    for (index, ad) in cohort {
        h.update(index.0.to_be_bytes());
        h.update(ad.share_enc.to_bytes());
        h.update(ad.mask_agree.to_bytes());
    }
    SessionId(h.finalize().into())
}

/// Commitment to a self-mask seed, bound to the session and its owner, so a
/// reconstruction from shares can be checked by the coordinator and auditor.
pub fn self_mask_commitment(session: &SessionId, owner: PartyIndex, seed: &MaskSeed) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/self-mask-commitment\0");
    h.update(session.as_bytes());
    h.update(owner.0.to_be_bytes());
    h.update(seed.as_bytes());
    h.finalize().into()
}

/// The pairwise mask seed between `me` (holding `secret`) and `peer`.
fn pair_seed(
    secret: &AgreementSecret,
    me: PartyIndex,
    peer: PartyIndex,
    peer_public: &AgreementPublic,
    session: &SessionId,
) -> Result<MaskSeed, CryptoError> {
    let shared = secret.agree(peer_public)?;
    let (lo, hi) = if me < peer { (me, peer) } else { (peer, me) };
    let key = derive_key(&shared, KeyPurpose::PairwiseMask, session, lo.0, hi.0);
    Ok(MaskSeed::from_bytes(*key))
}

/// Associated data of a share ciphertext from `sender` to `recipient`.
fn share_ad(session: &SessionId, sender: PartyIndex, recipient: PartyIndex) -> Vec<u8> {
    let mut ad = Vec::with_capacity(32 + 24 + 8);
    ad.extend_from_slice(b"fedcredit/v1/share\0");
    ad.extend_from_slice(session.as_bytes());
    ad.extend_from_slice(&sender.0.to_be_bytes());
    ad.extend_from_slice(&recipient.0.to_be_bytes());
    ad
}

/// Checks that `inner ⊆ outer`, naming the first party that is not.
fn check_subset(
    inner: &BTreeSet<PartyIndex>,
    outer: &BTreeSet<PartyIndex>,
    what: &'static str,
) -> Result<(), SecAggError> {
    match inner.iter().find(|p| !outer.contains(p)) {
        Some(p) => Err(SecAggError::NotInCohort { party: *p, what }),
        None => Ok(()),
    }
}

/// Errors of the secure-aggregation protocol logic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecAggError {
    /// A primitive failed (bad key, failed decryption, bad share...).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Party indices start at 1 (they are Shamir x-coordinates).
    #[error("party index 0 is not valid (indices start at 1)")]
    ZeroPartyIndex,
    /// Fewer parties than the threshold or the minimum cohort remain.
    #[error("{phase}: only {have} parties remain, {need} are needed")]
    TooFewParties {
        /// The phase that could not go on.
        phase: Phase,
        /// How many parties remain.
        have: usize,
        /// How many are needed (max of threshold and minimum cohort).
        need: usize,
    },
    /// A party appears where it is not allowed (e.g. a survivor that never sent shares).
    #[error("party {party} is not in {what}")]
    NotInCohort {
        /// The offending party.
        party: PartyIndex,
        /// Which set it should have been in.
        what: &'static str,
    },
    /// This party's own advertisement is missing from, or altered in, the cohort.
    #[error("this party's own key advertisement is missing from the cohort or was altered")]
    OwnAdvertisementMismatch,
    /// A party sent the same kind of message twice.
    #[error("party {0} appears twice")]
    Duplicate(PartyIndex),
    /// A decrypted share's header names other parties than its envelope.
    #[error("share ciphertext from {from} is not addressed from {from} to this party")]
    MisaddressedShare {
        /// The claimed sender.
        from: PartyIndex,
    },
    /// A decrypted share has the wrong length.
    #[error("share plaintext from {from} has {got} bytes, expected {expected}")]
    MalformedShare {
        /// The sender.
        from: PartyIndex,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A survivor's list differs from the list this party was given.
    #[error("survivor list confirmed by {0} differs from ours")]
    SurvivorListMismatch(PartyIndex),
    /// A reconstructed self-mask seed does not match its owner's commitment.
    #[error("reconstructed self-mask seed of {0} does not match its commitment")]
    CommitmentMismatch(PartyIndex),
    /// A reconstructed mask-agreement key does not match its advertised public key.
    #[error("reconstructed mask-agreement key of {0} does not match its advertised public key")]
    KeyMismatch(PartyIndex),
    /// A revealed share does not carry the revealer's own x-coordinate.
    #[error("share of {owner} revealed by {revealer} has x = {x}, expected {expected}", expected = revealer.get())]
    ForeignShare {
        /// Whose secret it is a share of.
        owner: PartyIndex,
        /// Who revealed it.
        revealer: PartyIndex,
        /// The share's x-coordinate.
        x: u32,
    },
    /// A party revealed the wrong kind of share for a peer (both kinds must never be revealed).
    #[error("{revealer} revealed a {kind} share of {owner}, which is not allowed for that peer")]
    WrongShareKind {
        /// Who revealed it.
        revealer: PartyIndex,
        /// Whose secret it is.
        owner: PartyIndex,
        /// "self-mask" or "key".
        kind: &'static str,
    },
    /// A secret could not be reconstructed.
    #[error("cannot reconstruct the {kind} secret of {owner}: {source}")]
    Reconstruction {
        /// Whose secret.
        owner: PartyIndex,
        /// "self-mask" or "key".
        kind: &'static str,
        /// Why.
        source: CryptoError,
    },
}

#[cfg(test)]
mod tests;
