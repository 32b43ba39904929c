//! Set up once per cohort, then aggregate many rounds: an *epoch* of secure
//! aggregation. Keys are agreed and secrets shared once; each later round
//! uses one unused *slot* and costs only a masked input and an unmask.
//!
//! ```text
//! setup (once):  EpochKeys ──share_keys──▶ EpochSharing ──open──▶ EpochMember
//!                (fresh X25519 keys; R self-mask seeds b¹..bᴿ, each Shamir-shared t-of-C)
//! slot j:        EpochMember::mask(j, x)  ──▶ y = x + PRG(bʲ) + Σ_v ±PRG(HKDF(s_uv, j))
//!                EpochMember::reveal(j)   ──▶ shares of bʲ of every member of C
//! server:        SlotUnmasker: Σ_C y − Σ_C PRG(bʲ) = Σ_C x
//! ```
//!
//! # How it differs from the per-round protocol, and why it is safe
//!
//! The per-round protocol ([`super::client`]) shares two secrets per member:
//! the self-mask seed (revealed for survivors) and the mask-agreement key
//! (revealed for members that dropped before their masked input, so that
//! their pairwise masks can be removed). Reusing that key across rounds
//! would be fatal: if member u survived round 1 (its self mask b¹ revealed)
//! and is declared dropped in round 2 (its key revealed), the coordinator
//! recomputes u's round-1 pairwise masks from the key and reads u's round-1
//! input — *the cross-round attack*, which this module's tests mount
//! against a naive reuse.
//!
//! An epoch therefore never shares, and never reveals, a mask-agreement key:
//!
//! 1. **No key is ever reconstructed.** A slot unmasks only if every member
//!    of the epoch's cohort C sent its masked input. If one did not, the
//!    coordinator abandons the slot before any share is revealed, and the
//!    round is retried in a new epoch (a new setup) with the members present:
//!    setup happens once per job *or cohort change*. Members that drop after
//!    their masked input cost nothing: t holders suffice to reveal the
//!    self-mask shares.
//! 2. **A revealed secret opens one slot only.** The only secrets ever
//!    revealed are self-mask seeds bʲ, drawn independently per slot. The
//!    pairwise masks of slot j come from HKDF(s_uv, slot session j), where
//!    s_uv is the X25519 secret of u and v and the slot session binds the
//!    epoch's session id and j; outputs for distinct j are independent
//!    pseudorandom keys, and s_uv itself is known only to u and v. So after
//!    any number of slots the coordinator holds, per slot, y_u − PRG(bʲ_u) =
//!    x_u + Σ_v ±PRG(k_uv^j): still masked by every pairwise key of u with an
//!    honest peer, which nothing reveals.
//! 3. **A slot is used once.** [`EpochMember::mask`] consumes the slot and
//!    drops the member's own seed bʲ; masking two inputs in one slot would
//!    publish their difference. [`EpochMember::reveal`] reveals a slot once.
//! 4. **No sum of a task over two cohorts.** If a coordinator could unmask
//!    a task over C and again (in another epoch) over C minus an honest
//!    member h, the difference would be h's input. Before revealing, a
//!    member records the task's contributor set in its [`TaskLedger`], kept
//!    across epochs, and refuses to reveal for the same task with another
//!    set. Revealing needs t holders of whom at least t − c are honest; two
//!    disjoint honest groups would need 2(t − c) + c ≤ n members, which
//!    t > (n + c)/2 ([`Thresholds`]) rules out, exactly as in the per-round
//!    protocol's survivor-list argument.
//! 5. **Enough honest peers.** A member refuses an epoch whose cohort is
//!    smaller than max(t, minimum cohort), so with t > (n + c)/2 it masks
//!    with at least one honest peer besides the c colluders.
//!
//! Without key reveals there is no pair of conflicting survivor lists to
//! show, so a slot needs no consistency-check phase: a round is two
//! messages per member after the setup, not five.
//!
//! Why keep self masks at all, when no pairwise key is ever revealed? They
//! are the *commit point*. Without them the sum would be readable the moment
//! the last masked input arrived, so a member would have to bind the task
//! to its contributor set when it masks — and could then never retry the
//! task after a dropout. With them, nothing is learnt until t members
//! reveal, and a member binds the task only then (point 4).
//!
//! The cost of the trade: a member that drops before its masked input
//! makes the slot's inputs useless and forces a new setup, where the
//! per-round protocol would have recovered. For a consortium of bank
//! daemons, where dropouts are rare and rounds many, that is the right way
//! round.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{Advertisement, PartyIndex, Phase, SecAggError, Thresholds, open_share, seal_share};
use crate::aead;
use crate::kx::{AgreementSecret, KeyPurpose, SessionId, SharedSecret, derive_key};
use crate::mask::MaskSeed;
use crate::ring::{MaskSign, Ring};
use crate::shamir::{SHARE_LEN, Share, ZeroWeights, split};

/// Most slots one setup may prepare: bounds the setup's messages
/// (`SHARE_LEN` bytes per slot per recipient, 32 per slot per commitment).
pub const MAX_SLOTS: u32 = 256;

/// A slot number within an epoch, 0-based and below its [`Slots`].
pub type Slot = u32;

/// How many slots an epoch prepares: 1 ..= [`MAX_SLOTS`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Slots(u32);

impl Slots {
    /// Checks the count.
    pub fn new(slots: u32) -> Result<Self, SecAggError> {
        if slots == 0 || slots > MAX_SLOTS {
            return Err(SecAggError::SlotCountOutOfRange {
                slots,
                max: MAX_SLOTS,
            });
        }
        Ok(Self(slots))
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }

    fn check(self, slot: Slot) -> Result<(), SecAggError> {
        if slot >= self.0 {
            return Err(SecAggError::SlotOutOfRange {
                slot,
                slots: self.0,
            });
        }
        Ok(())
    }
}

/// Length of a setup share plaintext: sender ‖ recipient ‖ slot count (u32
/// BE each) ‖ one self-mask share per slot.
pub fn plaintext_len(slots: Slots) -> usize {
    12 + SHARE_LEN * slots.get() as usize
}

/// Length of a setup share ciphertext.
pub fn ciphertext_len(slots: Slots) -> usize {
    plaintext_len(slots) + aead::TAG_LEN
}

/// The session id of slot `slot` of the epoch `epoch`: it keys the slot's
/// pairwise masks and binds its shares, so material of one slot is useless
/// in another. The domain tag keeps it apart from every round session id.
pub fn slot_session(epoch: &SessionId, slot: Slot) -> SessionId {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/epoch-slot\0");
    h.update(epoch.as_bytes());
    h.update(slot.to_be_bytes());
    SessionId(h.finalize().into())
}

/// Commitment to the self-mask seed of `owner` for one slot.
pub fn slot_seed_commitment(
    epoch: &SessionId,
    owner: PartyIndex,
    slot: Slot,
    seed: &MaskSeed,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/epoch-seed-commitment\0");
    h.update(epoch.as_bytes());
    h.update(owner.get().to_be_bytes());
    h.update(slot.to_be_bytes());
    h.update(seed.as_bytes());
    h.finalize().into()
}

/// Commitment to the share of `dealer`'s slot seed dealt to `recipient`.
pub fn slot_share_commitment(
    epoch: &SessionId,
    dealer: PartyIndex,
    recipient: PartyIndex,
    slot: Slot,
    share: &Share,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/epoch-share-commitment\0");
    h.update(epoch.as_bytes());
    h.update(dealer.get().to_be_bytes());
    h.update(recipient.get().to_be_bytes());
    h.update(slot.to_be_bytes());
    h.update(share.to_bytes().as_ref());
    h.finalize().into()
}

/// The digest of the per-slot commitments to the shares one dealer dealt
/// one recipient ([`slot_share_commitment`], in slot order): what the
/// dealer signs for that recipient, so the signed setup message stays
/// O(n + R) however many slots an epoch has.
pub fn recipient_digest(commitments: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/epoch-recipient-digest\0");
    h.update((commitments.len() as u64).to_be_bytes());
    for c in commitments {
        h.update(c);
    }
    h.finalize().into()
}

/// What a dealer signs at setup besides its ciphertexts: a commitment to
/// each of its slot seeds, and for every member of the cohort (itself
/// included) the [`recipient_digest`] of the shares it dealt that member.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EpochDealt {
    /// Slot → commitment to the dealer's seed ([`slot_seed_commitment`]).
    pub seeds: Vec<[u8; 32]>,
    /// Recipient → digest of its per-slot share commitments.
    pub shares: BTreeMap<PartyIndex, [u8; 32]>,
}

impl EpochDealt {
    /// Checks that `dealer` committed to one seed per slot and to shares
    /// for exactly the members of `cohort`.
    pub fn check<T>(
        &self,
        dealer: PartyIndex,
        cohort: &BTreeMap<PartyIndex, T>,
        slots: Slots,
    ) -> Result<(), SecAggError> {
        let keys_match = self.shares.len() == cohort.len()
            && self.shares.keys().zip(cohort.keys()).all(|(a, b)| a == b);
        if self.seeds.len() != slots.get() as usize || !keys_match {
            return Err(SecAggError::EpochCommitmentsMalformed {
                dealer,
                members: cohort.len(),
                slots: slots.get(),
            });
        }
        Ok(())
    }
}

/// A dealer's setup message as the aggregator keeps it: the signed
/// commitments, and the per-slot share commitments behind each recipient's
/// digest (sent to the aggregator only; it checks them against the digests
/// and needs them to check each revealed share on its own).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DealerRecord {
    /// The signed part.
    pub dealt: EpochDealt,
    /// Recipient → slot → [`slot_share_commitment`].
    pub commitments: BTreeMap<PartyIndex, Vec<[u8; 32]>>,
}

impl DealerRecord {
    /// Checks the signed part against the cohort and every list against
    /// its signed digest.
    pub fn check<T>(
        &self,
        dealer: PartyIndex,
        cohort: &BTreeMap<PartyIndex, T>,
        slots: Slots,
    ) -> Result<(), SecAggError> {
        self.dealt.check(dealer, cohort, slots)?;
        let lists_match = self.commitments.len() == self.dealt.shares.len()
            && self.commitments.iter().zip(&self.dealt.shares).all(
                |((to, list), (to2, digest))| {
                    to == to2
                        && list.len() == slots.get() as usize
                        && recipient_digest(list) == *digest
                },
            );
        if !lists_match {
            return Err(SecAggError::EpochCommitmentsMalformed {
                dealer,
                members: cohort.len(),
                slots: slots.get(),
            });
        }
        Ok(())
    }
}

/// Setup, step 1: fresh keys and one fresh self-mask seed per slot.
pub struct EpochKeys {
    me: PartyIndex,
    thresholds: Thresholds,
    slots: Slots,
    share_enc: AgreementSecret,
    mask_agree: AgreementSecret,
    seeds: Vec<MaskSeed>,
}

impl std::fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochKeys")
            .field("me", &self.me)
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

/// What setup step 2 sends: a ciphertext per other member, the
/// commitments to sign, and (to the aggregator) the lists behind them.
#[derive(Debug)]
pub struct EpochSharesOut {
    /// (recipient, ciphertext) for every other member of the cohort.
    pub ciphertexts: Vec<(PartyIndex, Vec<u8>)>,
    /// The signed commitments and the per-slot lists behind them.
    pub record: DealerRecord,
}

/// A dealer's setup shares for this member, as relayed by the coordinator.
#[derive(Debug)]
pub struct EpochDealtToMe {
    /// The dealer, whose signature on `dealt` the caller verified.
    pub from: PartyIndex,
    /// The ciphertext addressed to this member.
    pub ciphertext: Vec<u8>,
    /// The dealer's signed commitments.
    pub dealt: EpochDealt,
}

impl EpochKeys {
    /// Draws the epoch's key pairs and `slots` independent self-mask seeds.
    pub fn new<R: CryptoRng + RngCore>(
        me: PartyIndex,
        thresholds: Thresholds,
        slots: Slots,
        rng: &mut R,
    ) -> Self {
        Self {
            me,
            thresholds,
            slots,
            share_enc: AgreementSecret::generate(rng),
            mask_agree: AgreementSecret::generate(rng),
            seeds: (0..slots.get()).map(|_| MaskSeed::generate(rng)).collect(),
        }
    }

    /// The public keys to sign and advertise.
    pub fn advertisement(&self) -> Advertisement {
        Advertisement {
            share_enc: self.share_enc.public(),
            mask_agree: self.mask_agree.public(),
        }
    }

    /// Setup step 2: shares every slot seed t-of-C among the cohort C
    /// (whose advertisements the caller verified) and encrypts each
    /// member's shares to it. The mask-agreement key is *not* shared.
    pub fn share_keys<R: CryptoRng + RngCore>(
        self,
        epoch: SessionId,
        cohort: BTreeMap<PartyIndex, Advertisement>,
        rng: &mut R,
    ) -> Result<(EpochSharing, EpochSharesOut), SecAggError> {
        if cohort.get(&self.me) != Some(&self.advertisement()) {
            return Err(SecAggError::OwnAdvertisementMismatch);
        }
        self.thresholds.check(Phase::ShareKeys, cohort.len())?;
        let xs: Vec<u32> = cohort.keys().map(|p| p.get()).collect();
        // by_recipient[i][slot]: the share of seed `slot` for the i-th member.
        let mut by_recipient: Vec<Vec<Share>> = xs.iter().map(|_| Vec::new()).collect();
        for seed in &self.seeds {
            let shares = split(seed.as_bytes(), self.thresholds.threshold(), &xs, rng)?;
            for (column, share) in by_recipient.iter_mut().zip(shares) {
                column.push(share);
            }
        }
        let seeds = (0..self.slots.get())
            .zip(&self.seeds)
            .map(|(slot, seed)| slot_seed_commitment(&epoch, self.me, slot, seed))
            .collect();
        let mut record = DealerRecord {
            dealt: EpochDealt {
                seeds,
                shares: BTreeMap::new(),
            },
            commitments: BTreeMap::new(),
        };
        let mut ciphertexts = Vec::with_capacity(cohort.len().saturating_sub(1));
        let mut share_secrets = BTreeMap::new();
        let mut held = BTreeMap::new();
        for ((peer, ad), shares) in cohort.iter().zip(by_recipient) {
            let list: Vec<[u8; 32]> = (0..self.slots.get())
                .zip(&shares)
                .map(|(slot, s)| slot_share_commitment(&epoch, self.me, *peer, slot, s))
                .collect();
            record.dealt.shares.insert(*peer, recipient_digest(&list));
            record.commitments.insert(*peer, list);
            if *peer == self.me {
                held.insert(self.me, shares.into_iter().map(Some).collect());
                continue;
            }
            let mut plaintext = Zeroizing::new(Vec::with_capacity(plaintext_len(self.slots)));
            plaintext.extend_from_slice(&self.me.get().to_be_bytes());
            plaintext.extend_from_slice(&peer.get().to_be_bytes());
            plaintext.extend_from_slice(&self.slots.get().to_be_bytes());
            for share in &shares {
                plaintext.extend_from_slice(share.to_bytes().as_ref());
            }
            let shared = self.share_enc.agree(&ad.share_enc)?;
            ciphertexts.push((
                *peer,
                seal_share(&shared, &epoch, self.me, *peer, &plaintext),
            ));
            share_secrets.insert(*peer, shared);
        }
        Ok((
            EpochSharing {
                me: self.me,
                thresholds: self.thresholds,
                slots: self.slots,
                epoch,
                cohort,
                share_enc: self.share_enc,
                share_secrets,
                mask_agree: self.mask_agree,
                seeds: self.seeds,
                held,
                dealt: record.dealt.clone(),
            },
            EpochSharesOut {
                ciphertexts,
                record,
            },
        ))
    }
}

/// Setup step 2 done: waiting for the other members' shares.
pub struct EpochSharing {
    me: PartyIndex,
    thresholds: Thresholds,
    slots: Slots,
    epoch: SessionId,
    cohort: BTreeMap<PartyIndex, Advertisement>,
    share_enc: AgreementSecret,
    share_secrets: BTreeMap<PartyIndex, SharedSecret>,
    mask_agree: AgreementSecret,
    seeds: Vec<MaskSeed>,
    held: BTreeMap<PartyIndex, Vec<Option<Share>>>,
    dealt: EpochDealt,
}

impl std::fmt::Debug for EpochSharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochSharing")
            .field("me", &self.me)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl EpochSharing {
    /// The epoch's session id.
    pub fn epoch(&self) -> &SessionId {
        &self.epoch
    }

    /// What this member dealt (for its own records).
    pub fn dealt(&self) -> &EpochDealt {
        &self.dealt
    }

    /// Setup step 3: decrypts the shares every other member of the cohort
    /// dealt this one and checks each against its dealer's signed
    /// commitment (a mismatch blames the dealer). The epoch's cohort is
    /// then fixed: every member of it must have dealt, or there is no epoch.
    /// Agrees the pairwise secrets once, for every slot.
    pub fn open(mut self, received: Vec<EpochDealtToMe>) -> Result<EpochMember, SecAggError> {
        let mut dealers = BTreeSet::from([self.me]);
        for EpochDealtToMe {
            from,
            ciphertext,
            dealt,
        } in received
        {
            let Some(ad) = self.cohort.get(&from) else {
                return Err(SecAggError::NotInCohort {
                    party: from,
                    what: "the epoch's cohort",
                });
            };
            if from == self.me || !dealers.insert(from) {
                return Err(SecAggError::Duplicate(from));
            }
            dealt.check(from, &self.cohort, self.slots)?;
            if ciphertext.len() != ciphertext_len(self.slots) {
                return Err(SecAggError::MalformedShareCiphertext {
                    dealer: from,
                    expected: ciphertext_len(self.slots),
                    got: ciphertext.len(),
                });
            }
            let shared = match self.share_secrets.remove(&from) {
                Some(shared) => shared,
                None => self.share_enc.agree(&ad.share_enc)?,
            };
            let plaintext = open_share(&shared, &self.epoch, from, self.me, &ciphertext)?;
            let header_ok = plaintext.len() == plaintext_len(self.slots)
                && plaintext[0..4] == from.get().to_be_bytes()
                && plaintext[4..8] == self.me.get().to_be_bytes()
                && plaintext[8..12] == self.slots.get().to_be_bytes();
            if !header_ok {
                return Err(SecAggError::MisaddressedShare { from });
            }
            let mut shares = Vec::with_capacity(self.slots.get() as usize);
            let mut list = Vec::with_capacity(self.slots.get() as usize);
            for (slot, bytes) in (0..self.slots.get()).zip(plaintext[12..].chunks_exact(SHARE_LEN))
            {
                let share = Share::from_bytes(bytes)?;
                if share.x() != self.me.get() {
                    return Err(SecAggError::MisaddressedShare { from });
                }
                list.push(slot_share_commitment(
                    &self.epoch,
                    from,
                    self.me,
                    slot,
                    &share,
                ));
                shares.push(Some(share));
            }
            if !bool::from(recipient_digest(&list).ct_eq(&dealt.shares[&self.me])) {
                return Err(SecAggError::DealtSlotShareMismatch { dealer: from });
            }
            self.held.insert(from, shares);
        }
        if let Some(missing) = self.cohort.keys().find(|p| !dealers.contains(p)) {
            return Err(SecAggError::NotInCohort {
                party: *missing,
                what: "the dealers of this member's shares (every member of an epoch must deal)",
            });
        }
        self.thresholds.check(Phase::MaskedInput, dealers.len())?;
        // The one X25519 agreement per peer for the whole epoch.
        let mut pairs = BTreeMap::new();
        for (peer, ad) in self.cohort.iter().filter(|(p, _)| **p != self.me) {
            pairs.insert(*peer, self.mask_agree.agree(&ad.mask_agree)?);
        }
        Ok(EpochMember {
            me: self.me,
            slots: self.slots,
            epoch: self.epoch,
            cohort: dealers,
            pairs,
            seeds: self.seeds.into_iter().map(Some).collect(),
            held: self.held,
            masked: BTreeSet::new(),
        })
    }
}

/// The digest of a contributor set, as a [`TaskLedger`] records it.
pub fn contributors_digest(cohort: &BTreeSet<PartyIndex>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/epoch-contributors\0");
    h.update((cohort.len() as u64).to_be_bytes());
    for p in cohort {
        h.update(p.get().to_be_bytes());
    }
    h.finalize().into()
}

/// A member's memory, across epochs, of which contributor set it revealed
/// for each task: it never reveals a task's slot for another set (see the
/// module's point 4). The participant persists it before sending a reveal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskLedger {
    tasks: BTreeMap<[u8; 32], [u8; 32]>,
}

impl TaskLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that this member reveals for `task` with `contributors`, or
    /// refuses if it already revealed for `task` with another set.
    pub fn bind(&mut self, task: [u8; 32], contributors: [u8; 32]) -> Result<(), SecAggError> {
        match self.tasks.get(&task) {
            Some(known) if *known != contributors => Err(SecAggError::TaskCohortConflict),
            Some(_) => Ok(()),
            None => {
                self.tasks.insert(task, contributors);
                Ok(())
            }
        }
    }

    /// The recorded (task, contributor digest) pairs, for persisting.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8; 32], &[u8; 32])> {
        self.tasks.iter()
    }
}

/// A member of a set-up epoch: holds its seeds, its pairwise secrets and
/// the shares dealt to it, and which slots it has used.
pub struct EpochMember {
    me: PartyIndex,
    slots: Slots,
    epoch: SessionId,
    cohort: BTreeSet<PartyIndex>,
    pairs: BTreeMap<PartyIndex, SharedSecret>,
    /// Own seed per slot; taken when the slot is masked.
    seeds: Vec<Option<MaskSeed>>,
    /// Owner → slot → share held; taken when revealed.
    held: BTreeMap<PartyIndex, Vec<Option<Share>>>,
    /// Slots masked and not yet revealed.
    masked: BTreeSet<Slot>,
}

impl std::fmt::Debug for EpochMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochMember")
            .field("me", &self.me)
            .field("epoch", &self.epoch)
            .field("cohort", &self.cohort)
            .finish_non_exhaustive()
    }
}

/// The shares of one slot's seeds a member reveals.
pub struct SlotReveal {
    /// The slot.
    pub slot: Slot,
    /// (owner, share of the owner's seed for the slot), for every member.
    pub shares: Vec<(PartyIndex, Share)>,
}

impl std::fmt::Debug for SlotReveal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotReveal")
            .field("slot", &self.slot)
            .field("owners", &self.shares.len())
            .finish()
    }
}

impl EpochMember {
    /// The epoch's session id.
    pub fn epoch(&self) -> &SessionId {
        &self.epoch
    }

    /// The epoch's cohort C: every member that dealt.
    pub fn cohort(&self) -> &BTreeSet<PartyIndex> {
        &self.cohort
    }

    /// Slots never masked, in order: what this epoch has left.
    pub fn unused_slots(&self) -> impl Iterator<Item = Slot> + '_ {
        (0..self.slots.get()).filter(|s| self.seeds[*s as usize].is_some())
    }

    /// Masks `input` (ring elements of the round's codec) for `slot`: the
    /// slot's self mask, and toward every other member of C a pairwise mask
    /// keyed by HKDF of the pair's secret and the slot (+ toward higher
    /// indices, − toward lower). The slot is consumed: its seed is dropped
    /// and it can never be masked again ([`SecAggError::SlotUsed`]).
    pub fn mask(&mut self, slot: Slot, ring: Ring, input: &[u64]) -> Result<Vec<u64>, SecAggError> {
        self.slots.check(slot)?;
        ring.check_len(input.len())?;
        let seed = self.seeds[slot as usize]
            .take()
            .ok_or(SecAggError::SlotUsed { slot })?;
        let session = slot_session(&self.epoch, slot);
        let mut pairs = Vec::with_capacity(self.pairs.len());
        for (peer, shared) in &self.pairs {
            let (lo, hi) = if self.me < *peer {
                (self.me, *peer)
            } else {
                (*peer, self.me)
            };
            let key = derive_key(
                shared,
                KeyPurpose::PairwiseMask,
                &session,
                lo.get(),
                hi.get(),
            );
            let sign = if *peer > self.me {
                MaskSign::Add
            } else {
                MaskSign::Sub
            };
            pairs.push((sign, MaskSeed::from(key)));
        }
        let masks: Vec<(MaskSign, &MaskSeed)> = std::iter::once((MaskSign::Add, &seed))
            .chain(pairs.iter().map(|(sign, seed)| (*sign, seed)))
            .collect();
        let mut masked = input.to_vec();
        ring.apply_masks(&mut masked, &masks)?;
        self.masked.insert(slot);
        Ok(masked)
    }

    /// Reveals this member's shares of every member's seed for `slot`, which
    /// it masked, once, after recording in `ledger` that `task` is summed
    /// over this epoch's cohort (refused if the ledger holds another set for
    /// it). The caller persists the ledger before sending.
    pub fn reveal(
        &mut self,
        slot: Slot,
        task: [u8; 32],
        ledger: &mut TaskLedger,
    ) -> Result<SlotReveal, SecAggError> {
        self.slots.check(slot)?;
        if !self.masked.contains(&slot) {
            return Err(SecAggError::SlotNotMasked { slot });
        }
        ledger.bind(task, contributors_digest(&self.cohort))?;
        self.masked.remove(&slot);
        let mut shares = Vec::with_capacity(self.held.len());
        for (owner, held) in &mut self.held {
            // Present: a slot is revealed once, and only after it was masked.
            if let Some(share) = held[slot as usize].take() {
                shares.push((*owner, share));
            }
        }
        Ok(SlotReveal { slot, shares })
    }
}

/// What the aggregator (and the auditor, from the log) knows of an epoch.
#[derive(Debug)]
pub struct EpochView {
    /// The epoch's session id.
    pub epoch: SessionId,
    /// The agreed thresholds.
    pub thresholds: Thresholds,
    /// Slots the epoch prepared.
    pub slots: Slots,
    /// Every member of the cohort C with its setup record.
    pub dealt: BTreeMap<PartyIndex, DealerRecord>,
}

impl EpochView {
    /// Checks every dealer's commitments against the cohort and slot count.
    pub fn new(
        epoch: SessionId,
        thresholds: Thresholds,
        slots: Slots,
        dealt: BTreeMap<PartyIndex, DealerRecord>,
    ) -> Result<Self, SecAggError> {
        for (dealer, d) in &dealt {
            d.check(*dealer, &dealt, slots)?;
        }
        thresholds.check(Phase::MaskedInput, dealt.len())?;
        Ok(Self {
            epoch,
            thresholds,
            slots,
            dealt,
        })
    }
}

/// Collects one slot's revealed shares and removes the self masks. `V` is
/// how the view is held: borrowed (`&EpochView`) or shared (`Arc`), so an
/// aggregator can keep the epoch's view across the rounds that use it.
#[derive(Debug)]
pub struct SlotUnmasker<V: std::borrow::Borrow<EpochView>> {
    view: V,
    slot: Slot,
    revealers: BTreeSet<PartyIndex>,
    excluded: BTreeSet<PartyIndex>,
    shares: BTreeMap<PartyIndex, Vec<Share>>,
}

impl<V: std::borrow::Borrow<EpochView>> SlotUnmasker<V> {
    /// Starts unmasking `slot`; the caller has every member's masked input
    /// of the slot in its sum (a slot with a missing input is abandoned,
    /// never unmasked).
    pub fn new(view: V, slot: Slot) -> Result<Self, SecAggError> {
        view.borrow().slots.check(slot)?;
        Ok(Self {
            view,
            slot,
            revealers: BTreeSet::new(),
            excluded: BTreeSet::new(),
            shares: BTreeMap::new(),
        })
    }

    /// Accepts one member's reveal: one share per member of C, each with the
    /// revealer's x and matching its dealer's commitment for this slot. A
    /// refused reveal changes nothing; one with a share that fails its
    /// commitment excludes the revealer.
    pub fn accept(
        &mut self,
        revealer: PartyIndex,
        shares: Vec<(PartyIndex, Share)>,
    ) -> Result<(), SecAggError> {
        if !self.view.borrow().dealt.contains_key(&revealer) {
            return Err(SecAggError::NotInCohort {
                party: revealer,
                what: "the epoch's cohort",
            });
        }
        if self.excluded.contains(&revealer) {
            return Err(SecAggError::ExcludedRevealer(revealer));
        }
        if self.revealers.contains(&revealer) {
            return Err(SecAggError::Duplicate(revealer));
        }
        let mut owners = BTreeSet::new();
        for (owner, share) in &shares {
            if !self.view.borrow().dealt.contains_key(owner) {
                return Err(SecAggError::NotInCohort {
                    party: *owner,
                    what: "the epoch's cohort",
                });
            }
            if share.x() != revealer.get() {
                return Err(SecAggError::ForeignShare {
                    owner: *owner,
                    revealer,
                    x: share.x(),
                });
            }
            if !owners.insert(*owner) {
                return Err(SecAggError::Duplicate(*owner));
            }
        }
        if let Some(missing) = self
            .view
            .borrow()
            .dealt
            .keys()
            .find(|p| !owners.contains(p))
        {
            return Err(SecAggError::NotInCohort {
                party: *missing,
                what: "the revealed shares",
            });
        }
        let slot = self.slot;
        let bad = shares.iter().find(|(owner, share)| {
            let want = &self.view.borrow().dealt[owner].commitments[&revealer][slot as usize];
            let got =
                slot_share_commitment(&self.view.borrow().epoch, *owner, revealer, slot, share);
            !bool::from(got.ct_eq(want))
        });
        if let Some((owner, _)) = bad {
            self.excluded.insert(revealer);
            return Err(SecAggError::BadRevealedSlotShare {
                revealer,
                owner: *owner,
                slot,
            });
        }
        self.revealers.insert(revealer);
        for (owner, share) in shares {
            self.shares.entry(owner).or_default().push(share);
        }
        Ok(())
    }

    /// Good reveals so far.
    pub fn revealers(&self) -> usize {
        self.revealers.len()
    }

    /// Removes every member's self mask of the slot from `masked_sum` (Σ_C
    /// of the masked inputs; the pairwise masks cancel in it), leaving Σ_C
    /// of the inputs. Needs t good reveals.
    pub fn finish(self, ring: Ring, masked_sum: &mut [u64]) -> Result<(), SecAggError> {
        let need = self.view.borrow().thresholds.need();
        if self.revealers.len() < need && !self.excluded.is_empty() {
            return Err(SecAggError::TooFewGoodReveals {
                have: self.revealers.len(),
                need,
                bad: self.excluded.iter().copied().collect(),
            });
        }
        self.view
            .borrow()
            .thresholds
            .check(Phase::Unmask, self.revealers.len())?;
        ring.check_len(masked_sum.len())?;
        let t = self.view.borrow().thresholds.threshold();
        // Every good reveal covers every member, in acceptance order: the
        // first t revealers hold a share of every seed, at the same x's, so
        // the Lagrange weights are computed once for all of them. Each share
        // matched its dealer's commitment when accepted, and each seed is
        // checked against its own below.
        let xs: Vec<u32> = self
            .shares
            .values()
            .next()
            .map(|s| s.iter().take(t).map(Share::x).collect())
            .unwrap_or_default();
        let first = *self
            .view
            .borrow()
            .dealt
            .keys()
            .next()
            .ok_or(SecAggError::TooFewParties {
                phase: Phase::Unmask,
                have: 0,
                need,
            })?;
        let weights = ZeroWeights::new(&xs).map_err(|source| SecAggError::Reconstruction {
            owner: first,
            kind: "slot self-mask",
            source,
        })?;
        let mut seeds = Vec::with_capacity(self.view.borrow().dealt.len());
        for (owner, dealt) in &self.view.borrow().dealt {
            let shares = self.shares.get(owner).map(Vec::as_slice).unwrap_or(&[]);
            let bytes = weights
                .reconstruct(&shares[..t.min(shares.len())])
                .map_err(|source| SecAggError::Reconstruction {
                    owner: *owner,
                    kind: "slot self-mask",
                    source,
                })?;
            let seed = MaskSeed::from_bytes(*bytes);
            let commitment =
                slot_seed_commitment(&self.view.borrow().epoch, *owner, self.slot, &seed);
            if commitment != dealt.dealt.seeds[self.slot as usize] {
                return Err(SecAggError::CommitmentMismatch(*owner));
            }
            seeds.push(seed);
        }
        let masks: Vec<(MaskSign, &MaskSeed)> = seeds.iter().map(|s| (MaskSign::Sub, s)).collect();
        ring.apply_masks(masked_sum, &masks)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "epoch_tests.rs"]
mod tests;
