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

pub mod admission;
pub mod client;
pub mod epoch;
pub mod plus;
pub mod server;

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::CryptoError;
use crate::kx::{
    AgreementPublic, AgreementSecret, KeyPurpose, SessionId, SharedSecret, derive_key,
};
use crate::mask::MaskSeed;
use crate::shamir::Share;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

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

/// Parameters every party must agree on for one round attempt, validated
/// against the consortium size when made ([`Thresholds::new`]): there is no
/// way to build one that skips the checks.
///
/// Why `t > (n + c)/2`: a coordinator colluding with `c` members can show
/// two disjoint groups of honest survivors two different survivor lists; the
/// colluders sign both. Each list needs `t` signatures, so the two groups
/// plus the colluders number at least `2t - c`; if that exceeds `n`, some
/// honest member is in both groups — which it cannot be, having signed one
/// list only. With `2t <= n + c` both lists can gather `t` signatures, and
/// each side reveals a different kind of share of the same honest member:
/// its self mask and its mask key, and with them its input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Thresholds {
    /// Shares needed to reconstruct a secret, and survivors needed per phase.
    threshold: usize,
    /// How many members may collude with the coordinator (`c`).
    max_colluders: usize,
    /// Below this many parties nobody continues: with two survivors each
    /// would learn the other's input from the sum.
    min_cohort: usize,
    /// Who masks with and deals shares to whom.
    graph: CommGraph,
}

/// The communication graph a round attempt runs over (agreed like the
/// thresholds, and bound into the session id when sparse).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CommGraph {
    /// Every member of U1 masks with and deals its shares to every other,
    /// t-of-|U1| (Bonawitz et al. 2017).
    Complete,
    /// SecAgg+ (Bell et al. 2020): a Harary graph `H(k, |U1|)` under a
    /// permutation drawn from the session id ([`plus::graph_seed`]); each
    /// member deals its secrets `share_threshold`-of-`(k + 1)` to its closed
    /// neighbourhood and masks with its `k` neighbours only. `(k, t)` come
    /// from [`plus::PlusParams::choose`].
    Harary {
        /// k: neighbours per member (even).
        neighbours: usize,
        /// Shares of a member's secrets needed among its `k + 1`.
        share_threshold: usize,
    },
}

impl Thresholds {
    /// Checks and makes the thresholds of a consortium of `members` (n):
    /// `c < n`, `(n + c)/2 < t <= n` and `1 <= min_cohort <= n`.
    ///
    /// Errors: [`SecAggError::TooManyColluders`],
    /// [`SecAggError::ThresholdTooLow`], [`SecAggError::ThresholdAboveMembers`]
    /// or [`SecAggError::MinCohortOutOfRange`].
    pub fn new(
        members: usize,
        threshold: usize,
        max_colluders: usize,
        min_cohort: usize,
    ) -> Result<Self, SecAggError> {
        if max_colluders >= members {
            return Err(SecAggError::TooManyColluders {
                max_colluders,
                members,
            });
        }
        if threshold > members {
            return Err(SecAggError::ThresholdAboveMembers { threshold, members });
        }
        // 2t > n + c, in integers.
        if threshold.saturating_mul(2) <= members + max_colluders {
            return Err(SecAggError::ThresholdTooLow {
                threshold,
                members,
                max_colluders,
            });
        }
        if min_cohort == 0 || min_cohort > members {
            return Err(SecAggError::MinCohortOutOfRange {
                min_cohort,
                members,
            });
        }
        Ok(Self {
            threshold,
            max_colluders,
            min_cohort,
            graph: CommGraph::Complete,
        })
    }

    /// The same thresholds over a Harary graph of `neighbours` (k) per
    /// member, each secret shared `share_threshold`-of-`(k + 1)`. The
    /// survivor list still needs `t > (n + c)/2` signatures (the threshold
    /// given to [`Thresholds::new`]): that is what stops two lists.
    ///
    /// Errors: [`SecAggError::BadGraph`] unless `k` is even, `2 <= k < n`
    /// and `2 <= share_threshold <= k + 1` (one share must not be the secret).
    pub fn with_harary(
        self,
        members: usize,
        neighbours: usize,
        share_threshold: usize,
    ) -> Result<Self, SecAggError> {
        if neighbours < 2
            || !neighbours.is_multiple_of(2)
            || neighbours >= members
            || share_threshold < 2
            || share_threshold > neighbours + 1
        {
            return Err(SecAggError::BadGraph {
                neighbours,
                share_threshold,
                members,
            });
        }
        Ok(Self {
            graph: CommGraph::Harary {
                neighbours,
                share_threshold,
            },
            ..self
        })
    }

    /// The communication graph.
    pub fn graph(&self) -> CommGraph {
        self.graph
    }

    /// Shares needed to reconstruct one member's secret: t for the complete
    /// graph, the graph's own threshold for a Harary graph.
    pub fn share_threshold(&self) -> usize {
        match self.graph {
            CommGraph::Complete => self.threshold,
            CommGraph::Harary {
                share_threshold, ..
            } => share_threshold,
        }
    }

    /// The default number of members that may collude with the
    /// coordinator in a consortium of n: ⌊n/3⌋.
    pub fn default_colluders(members: usize) -> usize {
        members / 3
    }

    /// The default threshold for n members of whom c may collude: ⌊2n/3⌋ + 1,
    /// raised to the smallest t with 2t > n + c if c is above its default
    /// (for c = ⌊n/3⌋, ⌊2n/3⌋ + 1 always satisfies it). May exceed n if c
    /// is too large for n; [`Thresholds::new`] then refuses it.
    pub fn default_threshold(members: usize, max_colluders: usize) -> usize {
        (2 * members / 3 + 1).max((members + max_colluders) / 2 + 1)
    }

    /// Survivors needed per phase and signatures on the survivor list (t);
    /// with the complete graph also the shares needed for a secret.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// How many members may collude with the coordinator (c).
    pub fn max_colluders(&self) -> usize {
        self.max_colluders
    }

    /// Below this many parties nobody continues.
    pub fn min_cohort(&self) -> usize {
        self.min_cohort
    }

    /// Parties each phase needs: max(t, minimum cohort).
    pub fn need(&self) -> usize {
        self.threshold.max(self.min_cohort)
    }

    /// Checks that `have` parties may go on in `phase`.
    pub fn check(&self, phase: Phase, have: usize) -> Result<(), SecAggError> {
        let need = self.need();
        if have < need {
            return Err(SecAggError::TooFewParties { phase, have, need });
        }
        Ok(())
    }
}

/// (n + c)/2 for messages: an integer or a half.
pub(crate) fn half(sum: usize) -> String {
    if sum.is_multiple_of(2) {
        (sum / 2).to_string()
    } else {
        format!("{}.5", sum / 2)
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

/// What binds a session id: the job, the round attempt, the thresholds
/// (t, c, the minimum cohort and a sparse graph's k and share threshold)
/// and every advertised key of U1.
#[derive(Clone, Copy, Debug)]
pub struct SessionBinding<'a> {
    /// The job's identifier.
    pub job_id: &'a str,
    /// SHA-256 of the job specification.
    pub job_spec_hash: &'a [u8; 32],
    /// [`announcement_digest`] of the coordinator-signed announcement the
    /// attempt runs under (task, codec, published history): members shown
    /// different announcements get different session ids, so their shares
    /// fail to decrypt and their masks do not cancel — a coordinator cannot
    /// have members compute different tasks in one sum.
    pub announcement: &'a [u8; 32],
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
    h.update(binding.announcement);
    h.update(binding.round.to_be_bytes());
    h.update(binding.attempt.to_be_bytes());
    h.update((binding.thresholds.threshold as u64).to_be_bytes());
    h.update((binding.thresholds.max_colluders as u64).to_be_bytes());
    h.update((binding.thresholds.min_cohort as u64).to_be_bytes());
    h.update((cohort.len() as u64).to_be_bytes());
    for (index, ad) in cohort {
        h.update(index.0.to_be_bytes());
        h.update(ad.share_enc.to_bytes());
        h.update(ad.mask_agree.to_bytes());
    }
    // A sparse graph is bound too (appended, so complete-graph session ids
    // are those of before; 68·|U1| + 36 bytes never parse as 68·|U1'|): a
    // member told another k or share threshold is in another session.
    if let CommGraph::Harary {
        neighbours,
        share_threshold,
    } = binding.thresholds.graph
    {
        h.update(b"fedcredit/v1/harary\0");
        h.update((neighbours as u64).to_be_bytes());
        h.update((share_threshold as u64).to_be_bytes());
    }
    SessionId(h.finalize().into())
}

/// SHA-256 of a survivor list's indices in order: two lists have the same
/// digest exactly when they are the same list (collision resistance).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SurvivorDigest([u8; 32]);

impl SurvivorDigest {
    /// The digest of `survivors`.
    pub fn of(survivors: &BTreeSet<PartyIndex>) -> Self {
        let mut h = Sha256::new();
        h.update(b"fedcredit/v1/survivor-list\0");
        h.update((survivors.len() as u64).to_be_bytes());
        for p in survivors {
            h.update(p.get().to_be_bytes());
        }
        Self(h.finalize().into())
    }

    /// Decodes the 32 bytes a confirmation carries.
    ///
    /// Errors: [`CryptoError::InvalidLength`] unless 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| CryptoError::InvalidLength {
                what: "survivor list digest",
                expected: 32,
                got: bytes.len(),
            })
    }

    /// The 32 bytes a confirmation carries.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// SHA-256 of a signed announcement's payload, for [`SessionBinding`].
pub fn announcement_digest(signed_payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/announcement\0");
    h.update(signed_payload);
    h.finalize().into()
}

/// The SHA-256 of a coordinator-signed round outcome's payload: how an
/// announcement lists the job's history without carrying the published sums
/// (`previous_outcome_digests`), and how a party knows an outcome again.
pub fn outcome_digest(signed_payload: &[u8]) -> [u8; 32] {
    Sha256::digest(signed_payload).into()
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

/// Which of a dealer's two secrets a share is of.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShareKind {
    /// A share of the mask-agreement secret key (revealed for dropouts).
    Key,
    /// A share of the self-mask seed (revealed for survivors).
    SelfMask,
}

impl ShareKind {
    /// The byte that tells the two kinds apart in a share commitment.
    fn tag(self) -> u8 {
        match self {
            ShareKind::Key => 1,
            ShareKind::SelfMask => 2,
        }
    }

    /// "key" or "self-mask", for messages.
    pub fn name(self) -> &'static str {
        match self {
            ShareKind::Key => "key",
            ShareKind::SelfMask => "self-mask",
        }
    }
}

impl std::fmt::Display for ShareKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A dealer's hash commitments to the two shares it dealt one recipient
/// (see [`share_commitment`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ShareCommitment {
    /// Commitment to the key share.
    pub key: [u8; 32],
    /// Commitment to the self-mask share.
    pub self_mask: [u8; 32],
}

impl ShareCommitment {
    /// The commitment to the share of `kind`.
    pub fn of(&self, kind: ShareKind) -> &[u8; 32] {
        match kind {
            ShareKind::Key => &self.key,
            ShareKind::SelfMask => &self.self_mask,
        }
    }
}

/// What a dealer publishes, signed, in phase 2 besides its ciphertexts: the
/// commitment to its self-mask seed and, for every member of U1 (itself
/// included: it reveals its own share too), commitments to the two shares
/// dealt to that member. A recipient checks its shares against them when it
/// decrypts them, and the coordinator and auditor check every revealed
/// share, so a bad share is attributed to whoever sent it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Dealt {
    /// See [`self_mask_commitment`].
    pub self_mask: [u8; 32],
    /// Recipient → commitments to its two shares.
    pub shares: BTreeMap<PartyIndex, ShareCommitment>,
}

impl Dealt {
    /// Checks that `dealer` committed to exactly one pair of shares per
    /// member of U1 (`cohort`), itself included.
    pub fn check(
        &self,
        dealer: PartyIndex,
        cohort: &BTreeMap<PartyIndex, Advertisement>,
    ) -> Result<(), SecAggError> {
        let missing = cohort.keys().find(|p| !self.shares.contains_key(p));
        let extra = self.shares.keys().find(|p| !cohort.contains_key(p));
        if missing.is_some() || extra.is_some() {
            return Err(SecAggError::ShareCommitmentsNotForU1 {
                dealer,
                got: self.shares.len(),
                expected: cohort.len(),
            });
        }
        Ok(())
    }

    /// Checks that `dealer` committed to exactly one pair of shares per
    /// member of its closed neighbourhood in the derived graph: a dealer
    /// that dealt over another graph is refused.
    pub fn check_graph(
        &self,
        dealer: PartyIndex,
        graph: &plus::Neighbourhoods,
    ) -> Result<(), SecAggError> {
        let closed = graph.closed(dealer);
        if !self.shares.keys().eq(closed.iter()) {
            return Err(SecAggError::ShareCommitmentsNotForNeighbourhood {
                dealer,
                got: self.shares.len(),
                expected: closed.len(),
            });
        }
        Ok(())
    }
}

/// Length of a share ciphertext: the plaintext
/// ([`client::SHARE_PLAINTEXT_LEN`]) plus the AEAD tag.
pub const SHARE_CIPHERTEXT_LEN: usize = client::SHARE_PLAINTEXT_LEN + crate::aead::TAG_LEN;

/// Checks that a share ciphertext from `dealer` has exactly
/// [`SHARE_CIPHERTEXT_LEN`] bytes.
pub fn check_share_ciphertext(dealer: PartyIndex, len: usize) -> Result<(), SecAggError> {
    if len != SHARE_CIPHERTEXT_LEN {
        return Err(SecAggError::MalformedShareCiphertext {
            dealer,
            expected: SHARE_CIPHERTEXT_LEN,
            got: len,
        });
    }
    Ok(())
}

/// Commitment to one dealt share: SHA-256 of
/// `"fedcredit/v1/share-commitment\0" ‖ session id ‖ dealer (u32 BE) ‖
/// recipient (u32 BE) ‖ kind (1 = key, 2 = self-mask) ‖ share (68 bytes,
/// [`Share::to_bytes`])`. The share's y-values are uniformly random
/// 32-byte scalars (for t ≥ 2), so the hash hides them.
pub fn share_commitment(
    session: &SessionId,
    dealer: PartyIndex,
    recipient: PartyIndex,
    kind: ShareKind,
    share: &Share,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/share-commitment\0");
    h.update(session.as_bytes());
    h.update(dealer.0.to_be_bytes());
    h.update(recipient.0.to_be_bytes());
    h.update([kind.tag()]);
    h.update(share.to_bytes().as_ref());
    h.finalize().into()
}

/// Whether `share` is the one `dealer` committed to for `recipient`
/// (compared in constant time: the share is secret until revealed).
fn share_matches(
    session: &SessionId,
    dealer: PartyIndex,
    recipient: PartyIndex,
    kind: ShareKind,
    share: &Share,
    commitment: &ShareCommitment,
) -> bool {
    let got = share_commitment(session, dealer, recipient, kind, share);
    bool::from(got.ct_eq(commitment.of(kind)))
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

/// Encrypts a share plaintext from `sender` to `recipient` under the key
/// HKDF derives from their share-encryption agreement for this session
/// (direction-bound), with [`share_ad`] as associated data. The per-round
/// protocol and an epoch's setup both deal shares this way.
fn seal_share(
    shared: &SharedSecret,
    session: &SessionId,
    sender: PartyIndex,
    recipient: PartyIndex,
    plaintext: &[u8],
) -> Vec<u8> {
    let key = derive_key(
        shared,
        KeyPurpose::ShareEncryption,
        session,
        sender.0,
        recipient.0,
    );
    crate::aead::seal(&key, &share_ad(session, sender, recipient), plaintext)
}

/// Opens what [`seal_share`] sealed from `sender` to `recipient`.
fn open_share(
    shared: &SharedSecret,
    session: &SessionId,
    sender: PartyIndex,
    recipient: PartyIndex,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let key = derive_key(
        shared,
        KeyPurpose::ShareEncryption,
        session,
        sender.0,
        recipient.0,
    );
    crate::aead::open(&key, &share_ad(session, sender, recipient), ciphertext)
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

/// Party indices for messages: "#1, #3".
fn list(parties: &[PartyIndex]) -> String {
    parties
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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
    /// More members may collude with the coordinator than there are members.
    #[error(
        "c = {max_colluders} members colluding with the coordinator must be fewer than the n = {members} members"
    )]
    TooManyColluders {
        /// c.
        max_colluders: usize,
        /// n.
        members: usize,
    },
    /// The threshold is not above (n + c)/2: two survivor lists could both be confirmed.
    #[error(
        "threshold t = {threshold} must exceed (n + c)/2 = ({members} + {max_colluders})/2 = {bound} (n = {members} members, c = {max_colluders} may collude with the coordinator); otherwise the coordinator and c colluders can show two groups of honest members different survivor lists and learn an honest member's input",
        bound = half(members + max_colluders)
    )]
    ThresholdTooLow {
        /// t.
        threshold: usize,
        /// n.
        members: usize,
        /// c.
        max_colluders: usize,
    },
    /// The threshold exceeds the number of members: no secret could be reconstructed.
    #[error("threshold t must be at most n = {members} members, got t = {threshold}")]
    ThresholdAboveMembers {
        /// t.
        threshold: usize,
        /// n.
        members: usize,
    },
    /// The minimum cohort is 0 or above the number of members.
    #[error("the minimum cohort must be between 1 and n = {members} members, got {min_cohort}")]
    MinCohortOutOfRange {
        /// The minimum cohort.
        min_cohort: usize,
        /// n.
        members: usize,
    },
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
    /// A dealer's share commitments are not one pair per member of U1.
    #[error(
        "{dealer} committed to {got} pairs of shares, expected one per member of U1 ({expected})"
    )]
    ShareCommitmentsNotForU1 {
        /// The dealer.
        dealer: PartyIndex,
        /// How many it committed to.
        got: usize,
        /// |U1|.
        expected: usize,
    },
    /// A dealer's share commitments are not one pair per member of its closed neighbourhood.
    #[error(
        "{dealer} committed to {got} pairs of shares, expected one per member of its closed neighbourhood in the round's graph ({expected})"
    )]
    ShareCommitmentsNotForNeighbourhood {
        /// The dealer.
        dealer: PartyIndex,
        /// How many it committed to.
        got: usize,
        /// k + 1.
        expected: usize,
    },
    /// A Harary graph's parameters cannot describe a graph.
    #[error(
        "a Harary graph needs an even k with 2 <= k < n = {members} and a share threshold in 2..=k + 1, got k = {neighbours}, t = {share_threshold}"
    )]
    BadGraph {
        /// k.
        neighbours: usize,
        /// The share threshold.
        share_threshold: usize,
        /// n.
        members: usize,
    },
    /// U1 is too small for the agreed Harary graph.
    #[error(
        "a Harary graph of k = {neighbours} neighbours needs more than {neighbours} + 1 members in U1, got {cohort}"
    )]
    GraphTooLarge {
        /// k.
        neighbours: usize,
        /// |U1|.
        cohort: usize,
    },
    /// A party that is not a neighbour in the derived graph sent or got a share.
    #[error("{party} is not a neighbour of {of} in the round's communication graph")]
    NotNeighbour {
        /// The party outside the neighbourhood.
        party: PartyIndex,
        /// Whose neighbourhood.
        of: PartyIndex,
    },
    /// The coordinator announced neighbours other than the derived ones.
    #[error("the neighbours announced for {0} differ from the graph derived from the session")]
    GraphMismatch(PartyIndex),
    /// Fewer members of a closed neighbourhood than the share threshold remain.
    #[error("{phase}: only {have} of this member's closed neighbourhood remain, {need} are needed")]
    TooFewNeighbours {
        /// The phase that could not go on.
        phase: Phase,
        /// How many remain.
        have: usize,
        /// The share threshold.
        need: usize,
    },
    /// A share ciphertext has the wrong length.
    #[error("share ciphertext from {dealer} has {got} bytes, expected {expected}")]
    MalformedShareCiphertext {
        /// The dealer.
        dealer: PartyIndex,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A share this party was dealt does not match its dealer's signed commitment: the dealer cheated.
    #[error("the {kind} share dealt by {dealer} does not match its signed commitment")]
    DealtShareMismatch {
        /// The dealer that sent it.
        dealer: PartyIndex,
        /// Which share.
        kind: ShareKind,
    },
    /// A revealed share does not match its dealer's commitment: the revealer sent a bad share.
    #[error(
        "{revealer} revealed a {kind} share of {owner} that does not match {owner}'s signed commitment"
    )]
    BadRevealedShare {
        /// Who revealed it (to blame).
        revealer: PartyIndex,
        /// Whose secret it is a share of (its dealer).
        owner: PartyIndex,
        /// Which share.
        kind: ShareKind,
    },
    /// A revealer that sent a bad share before reveals again.
    #[error("{0} was excluded from unmasking for revealing a bad share")]
    ExcludedRevealer(PartyIndex),
    /// Too few good reveals remain once the revealers of bad shares were excluded.
    #[error(
        "unmask: only {have} good reveals remain, {need} are needed; excluded for revealing bad shares: {}",
        list(bad)
    )]
    TooFewGoodReveals {
        /// Good reveals.
        have: usize,
        /// max(threshold, minimum cohort).
        need: usize,
        /// Who revealed bad shares.
        bad: Vec<PartyIndex>,
    },
    /// A survivor's confirmation is bound to another session id.
    #[error("survivor list confirmed by {0} is bound to another session id")]
    SessionMismatch(PartyIndex),
    /// A survivor's list differs from the list this party was given.
    #[error("survivor list confirmed by {0} differs from ours")]
    SurvivorListMismatch(PartyIndex),
    /// A reconstructed self-mask seed does not match its owner's commitment
    /// (every share used matched its commitment, so the owner dealt inconsistent shares).
    #[error("reconstructed self-mask seed of {0} does not match its commitment")]
    CommitmentMismatch(PartyIndex),
    /// A reconstructed mask-agreement key does not match its advertised public key
    /// (every share used matched its commitment, so the owner dealt inconsistent shares).
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
    /// An epoch must prepare between 1 and `max` slots.
    #[error("an epoch prepares 1 to {max} slots, got {slots}")]
    SlotCountOutOfRange {
        /// Asked for.
        slots: u32,
        /// [`epoch::MAX_SLOTS`].
        max: u32,
    },
    /// A slot number past the epoch's slots.
    #[error("slot {slot} is not in this epoch, which prepared {slots} slots (0 to {slots} - 1)")]
    SlotOutOfRange {
        /// The slot asked for.
        slot: u32,
        /// How many the epoch has.
        slots: u32,
    },
    /// A slot was already masked: masking a second input with the same
    /// masks would publish the difference of the two.
    #[error("slot {slot} of this epoch was already used; a slot masks one input only")]
    SlotUsed {
        /// The slot.
        slot: u32,
    },
    /// A reveal for a slot this member did not mask, or already revealed.
    #[error("slot {slot} was not masked by this member, or was already revealed")]
    SlotNotMasked {
        /// The slot.
        slot: u32,
    },
    /// A dealer's setup commitments are not one per slot for each member of the cohort.
    #[error(
        "{dealer}'s setup commitments must cover each of the {members} members with one share per slot, and commit to {slots} seeds"
    )]
    EpochCommitmentsMalformed {
        /// The dealer.
        dealer: PartyIndex,
        /// |C|.
        members: usize,
        /// Slots of the epoch.
        slots: u32,
    },
    /// Setup shares do not match their dealer's signed commitment: the dealer cheated.
    #[error("the setup shares dealt by {dealer} do not match its signed commitment")]
    DealtSlotShareMismatch {
        /// The dealer.
        dealer: PartyIndex,
    },
    /// A revealed slot share does not match its dealer's commitment: the revealer sent a bad share.
    #[error(
        "{revealer} revealed a share of {owner}'s slot-{slot} seed that does not match {owner}'s signed commitment"
    )]
    BadRevealedSlotShare {
        /// Who revealed it.
        revealer: PartyIndex,
        /// Whose seed.
        owner: PartyIndex,
        /// The slot.
        slot: u32,
    },
    /// This member already revealed for the task with another contributor
    /// set: a second sum over another set could isolate one member's input.
    #[error(
        "this member already revealed for this task with another contributor set; a second sum over another set could isolate one member's input"
    )]
    TaskCohortConflict,
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
mod plus_tests;
#[cfg(test)]
mod tests;
