//! The participant side of one round attempt, one type per phase.
//!
//! Every transition consumes its state, so keys are used for one attempt
//! only and shares are revealed at most once.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

pub use super::SurvivorDigest;
use super::plus;
use super::{
    Advertisement, CommGraph, Dealt, PartyIndex, Phase, SecAggError, ShareCommitment, ShareKind,
    Thresholds, check_share_ciphertext, check_subset, open_share, pair_seed, seal_share,
    self_mask_commitment, share_commitment, share_matches,
};
use crate::identity::SignatureChecked;
use crate::kx::{AgreementSecret, SessionId, SharedSecret};
use crate::mask::MaskSeed;
use crate::ring::{MaskSign, Ring};
use crate::shamir::{SHARE_LEN, Share, split};

/// Length of a share plaintext: sender (4) ‖ recipient (4) ‖ key share ‖ self-mask share.
pub const SHARE_PLAINTEXT_LEN: usize = 8 + 2 * SHARE_LEN;

/// Phase 1: fresh keys made; the advertisement is ready to sign and send.
pub struct AdvertiseKeys {
    me: PartyIndex,
    thresholds: Thresholds,
    share_enc: AgreementSecret,
    mask_agree: AgreementSecret,
    self_seed: MaskSeed,
}

impl std::fmt::Debug for AdvertiseKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvertiseKeys")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// What phase 2 sends: one ciphertext per other member of U1, and the
/// commitments to the self-mask seed and to every dealt share.
#[derive(Debug)]
pub struct SharesOut {
    /// (recipient, ciphertext) for every other member of U1.
    pub ciphertexts: Vec<(PartyIndex, Vec<u8>)>,
    /// The commitments to sign with the ciphertexts.
    pub dealt: Dealt,
}

/// The shares one dealer sent this party, as relayed in phase 2.
#[derive(Debug)]
pub struct DealtToMe {
    /// The dealer, whose signature on `commitment` the caller verified.
    pub from: PartyIndex,
    /// The share ciphertext addressed to this party.
    pub ciphertext: Vec<u8>,
    /// The dealer's signed commitments to the two shares for this party.
    pub commitment: ShareCommitment,
}

impl AdvertiseKeys {
    /// Draws fresh key pairs and a fresh self-mask seed for one round attempt.
    pub fn new<R: CryptoRng + RngCore>(
        me: PartyIndex,
        thresholds: Thresholds,
        rng: &mut R,
    ) -> Self {
        Self {
            me,
            thresholds,
            share_enc: AgreementSecret::generate(rng),
            mask_agree: AgreementSecret::generate(rng),
            self_seed: MaskSeed::generate(rng),
        }
    }

    /// The public keys to sign and advertise.
    pub fn advertisement(&self) -> Advertisement {
        Advertisement {
            share_enc: self.share_enc.public(),
            mask_agree: self.mask_agree.public(),
        }
    }

    /// Phase 2: Shamir-shares the self-mask seed and the mask-agreement
    /// secret among this party's closed neighbourhood in the round's graph
    /// (all of U1 for the complete graph; derived from the session id for a
    /// Harary graph, never taken from the coordinator) and encrypts each
    /// pair of shares to its recipient. `cohort` is U1; the caller verified
    /// the signatures of at least this party's neighbours (for the complete
    /// graph, all of U1). A Harary graph's other members only enter the
    /// session id: a forged key for a non-neighbour cannot sign the
    /// survivor list, and a neighbour of it checks its signature.
    pub fn share_keys<R: CryptoRng + RngCore>(
        self,
        session: SessionId,
        cohort: BTreeMap<PartyIndex, Advertisement>,
        rng: &mut R,
    ) -> Result<(ShareKeys, SharesOut), SecAggError> {
        if cohort.get(&self.me) != Some(&self.advertisement()) {
            return Err(SecAggError::OwnAdvertisementMismatch);
        }
        self.thresholds.check(Phase::ShareKeys, cohort.len())?;
        let neighbours =
            plus::Neighbourhoods::of_member(&self.thresholds, &session, &cohort, self.me)?;
        let in_closed = |p: &PartyIndex| *p == self.me || neighbours.contains(p);
        let xs: Vec<u32> = cohort
            .keys()
            .filter(|p| in_closed(p))
            .map(|p| p.get())
            .collect();
        let t = self.thresholds.share_threshold();
        let key_bytes = self.mask_agree.to_bytes();
        let key_shares = split(&key_bytes, t, &xs, rng)?;
        let seed_shares = split(self.self_seed.as_bytes(), t, &xs, rng)?;

        let mut ciphertexts = Vec::with_capacity(cohort.len().saturating_sub(1));
        let mut share_secrets = BTreeMap::new();
        let mut commitments = BTreeMap::new();
        let mut own = None;
        for ((peer, ad), (key_share, seed_share)) in cohort
            .iter()
            .filter(|(p, _)| in_closed(p))
            .zip(key_shares.into_iter().zip(seed_shares))
        {
            commitments.insert(
                *peer,
                ShareCommitment {
                    key: share_commitment(&session, self.me, *peer, ShareKind::Key, &key_share),
                    self_mask: share_commitment(
                        &session,
                        self.me,
                        *peer,
                        ShareKind::SelfMask,
                        &seed_share,
                    ),
                },
            );
            if *peer == self.me {
                own = Some(HeldShares {
                    key: key_share,
                    self_mask: seed_share,
                });
                continue;
            }
            let mut plaintext = Zeroizing::new(Vec::with_capacity(SHARE_PLAINTEXT_LEN));
            plaintext.extend_from_slice(&self.me.get().to_be_bytes());
            plaintext.extend_from_slice(&peer.get().to_be_bytes());
            plaintext.extend_from_slice(key_share.to_bytes().as_ref());
            plaintext.extend_from_slice(seed_share.to_bytes().as_ref());
            let shared = self.share_enc.agree(&ad.share_enc)?;
            ciphertexts.push((
                *peer,
                seal_share(&shared, &session, self.me, *peer, &plaintext),
            ));
            share_secrets.insert(*peer, shared);
        }
        let own = own.ok_or(SecAggError::OwnAdvertisementMismatch)?;
        let commitment = self_mask_commitment(&session, self.me, &self.self_seed);
        let mut held = BTreeMap::new();
        held.insert(self.me, own);
        Ok((
            ShareKeys {
                me: self.me,
                thresholds: self.thresholds,
                session,
                cohort,
                neighbours,
                share_enc: self.share_enc,
                share_secrets,
                mask_agree: self.mask_agree,
                self_seed: self.self_seed,
                held,
            },
            SharesOut {
                ciphertexts,
                dealt: Dealt {
                    self_mask: commitment,
                    shares: commitments,
                },
            },
        ))
    }
}

/// Shares this party holds for one owner.
struct HeldShares {
    key: Share,
    self_mask: Share,
}

/// Phase 2 done: waiting for the shares addressed to this party.
pub struct ShareKeys {
    me: PartyIndex,
    thresholds: Thresholds,
    session: SessionId,
    cohort: BTreeMap<PartyIndex, Advertisement>,
    /// This party's neighbours in the round's graph (derived, not received).
    neighbours: BTreeSet<PartyIndex>,
    share_enc: AgreementSecret,
    /// The X25519 outputs with each peer's share-encryption key, kept from
    /// encrypting to it: decrypting from it needs the same value (the
    /// derived keys differ by direction), so it is not computed twice.
    share_secrets: BTreeMap<PartyIndex, SharedSecret>,
    mask_agree: AgreementSecret,
    self_seed: MaskSeed,
    held: BTreeMap<PartyIndex, HeldShares>,
}

impl std::fmt::Debug for ShareKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareKeys")
            .field("me", &self.me)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl ShareKeys {
    /// The session id of this round attempt.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// This party's neighbours in the round's graph, derived from the
    /// session id: the only parties it takes shares from and masks with.
    /// A caller told a neighbour list by the coordinator compares it with
    /// [`super::plus::check_announced`].
    pub fn neighbours(&self) -> &BTreeSet<PartyIndex> {
        &self.neighbours
    }

    /// Phase 3: decrypts the shares addressed to this party (one per
    /// neighbour in U2, as relayed by the coordinator; a share from a
    /// non-neighbour is refused) and checks each against
    /// its dealer's signed commitment (a mismatch blames the dealer), then
    /// masks `input` (already encoded as elements of `ring`, the round
    /// codec's) with the self mask and a pairwise mask toward every other
    /// member of U2: + toward higher indices, − toward lower. Masks are added
    /// as ring elements, so the masked sum carries within each value exactly
    /// as the plain sum does.
    ///
    /// Errors include [`crate::CryptoError::PartialRingValue`] if `input`
    /// is not a whole number of ring values.
    pub fn masked_input(
        mut self,
        ring: Ring,
        input: &[u64],
        received: Vec<DealtToMe>,
    ) -> Result<(MaskedInputSent, Vec<u64>), SecAggError> {
        ring.check_len(input.len())?;
        let mut u2 = BTreeSet::from([self.me]);
        for DealtToMe {
            from,
            ciphertext,
            commitment,
        } in received
        {
            let Some(ad) = self.cohort.get(&from) else {
                return Err(SecAggError::NotInCohort {
                    party: from,
                    what: "U1 (advertised keys)",
                });
            };
            if from != self.me && !self.neighbours.contains(&from) {
                return Err(SecAggError::NotNeighbour {
                    party: from,
                    of: self.me,
                });
            }
            if from == self.me || !u2.insert(from) {
                return Err(SecAggError::Duplicate(from));
            }
            check_share_ciphertext(from, ciphertext.len())?;
            let shared = match self.share_secrets.remove(&from) {
                Some(shared) => shared,
                None => self.share_enc.agree(&ad.share_enc)?,
            };
            let plaintext = open_share(&shared, &self.session, from, self.me, &ciphertext)?;
            if plaintext.len() != SHARE_PLAINTEXT_LEN {
                return Err(SecAggError::MalformedShare {
                    from,
                    expected: SHARE_PLAINTEXT_LEN,
                    got: plaintext.len(),
                });
            }
            let header_ok = plaintext[0..4] == from.get().to_be_bytes()
                && plaintext[4..8] == self.me.get().to_be_bytes();
            if !header_ok {
                return Err(SecAggError::MisaddressedShare { from });
            }
            let key_share = Share::from_bytes(&plaintext[8..8 + SHARE_LEN])?;
            let self_mask = Share::from_bytes(&plaintext[8 + SHARE_LEN..])?;
            if key_share.x() != self.me.get() || self_mask.x() != self.me.get() {
                return Err(SecAggError::MisaddressedShare { from });
            }
            for (kind, share) in [
                (ShareKind::Key, &key_share),
                (ShareKind::SelfMask, &self_mask),
            ] {
                if !share_matches(&self.session, from, self.me, kind, share, &commitment) {
                    return Err(SecAggError::DealtShareMismatch { dealer: from, kind });
                }
            }
            self.held.insert(
                from,
                HeldShares {
                    key: key_share,
                    self_mask,
                },
            );
        }
        match self.thresholds.graph() {
            CommGraph::Complete => self.thresholds.check(Phase::MaskedInput, u2.len())?,
            // This party sees only its neighbourhood of U2: if fewer than
            // the share threshold of it remain, its secrets could not be
            // reconstructed; the cohort's size is checked on U3's signed list.
            CommGraph::Harary { .. } => {
                let need = self.thresholds.share_threshold();
                if u2.len() < need {
                    return Err(SecAggError::TooFewNeighbours {
                        phase: Phase::MaskedInput,
                        have: u2.len(),
                        need,
                    });
                }
            }
        }

        // The self mask, then each pairwise mask: added toward higher
        // indices, subtracted toward lower ones.
        let mut pairs = Vec::with_capacity(u2.len());
        for peer in u2.iter().filter(|p| **p != self.me) {
            let ad = &self.cohort[peer];
            let seed = pair_seed(
                &self.mask_agree,
                self.me,
                *peer,
                &ad.mask_agree,
                &self.session,
            )?;
            let sign = if *peer > self.me {
                MaskSign::Add
            } else {
                MaskSign::Sub
            };
            pairs.push((sign, seed));
        }
        let masks: Vec<(MaskSign, &MaskSeed)> = std::iter::once((MaskSign::Add, &self.self_seed))
            .chain(pairs.iter().map(|(sign, seed)| (*sign, seed)))
            .collect();
        let mut masked = input.to_vec();
        ring.apply_masks(&mut masked, &masks)?;
        Ok((
            MaskedInputSent {
                me: self.me,
                thresholds: self.thresholds,
                session: self.session,
                u1: self.cohort.into_keys().collect(),
                neighbours: self.neighbours,
                u2,
                held: self.held,
            },
            masked,
        ))
    }
}

/// Phase 3 done: the masked input is sent; waiting for the survivor list U3.
pub struct MaskedInputSent {
    me: PartyIndex,
    thresholds: Thresholds,
    session: SessionId,
    u1: BTreeSet<PartyIndex>,
    neighbours: BTreeSet<PartyIndex>,
    /// This party and the neighbours it masked with (all of U2 for the
    /// complete graph).
    u2: BTreeSet<PartyIndex>,
    held: BTreeMap<PartyIndex, HeldShares>,
}

impl std::fmt::Debug for MaskedInputSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskedInputSent")
            .field("me", &self.me)
            .field("u2", &self.u2)
            .finish_non_exhaustive()
    }
}

impl MaskedInputSent {
    /// The cohort U2 this party masked against (for a Harary graph, its
    /// neighbours in U2, and itself).
    pub fn u2(&self) -> &BTreeSet<PartyIndex> {
        &self.u2
    }

    /// Phase 4: checks the survivor list U3 the coordinator announced (a
    /// subset of U2 holding this party, at least t strong) before signing it.
    /// With a Harary graph this party knows U2 only among its neighbours:
    /// U3 must lie in U1, and its neighbours in U3 among those it masked with.
    pub fn confirm(self, u3: BTreeSet<PartyIndex>) -> Result<AwaitingConfirmations, SecAggError> {
        match self.thresholds.graph() {
            CommGraph::Complete => check_subset(&u3, &self.u2, "U2 (sent shares)")?,
            CommGraph::Harary { .. } => {
                check_subset(&u3, &self.u1, "U1 (advertised keys)")?;
                check_subset(
                    &u3.iter()
                        .copied()
                        .filter(|p| self.neighbours.contains(p))
                        .collect(),
                    &self.u2,
                    "U2 (sent shares)",
                )?;
            }
        }
        if !u3.contains(&self.me) {
            return Err(SecAggError::NotInCohort {
                party: self.me,
                what: "the survivor list",
            });
        }
        self.thresholds.check(Phase::ConsistencyCheck, u3.len())?;
        Ok(AwaitingConfirmations { inner: self, u3 })
    }
}

/// Phase 4: this party signed U3; waiting for the others' signatures on it.
#[derive(Debug)]
pub struct AwaitingConfirmations {
    inner: MaskedInputSent,
    u3: BTreeSet<PartyIndex>,
}

/// A survivor's confirmation of U3 whose signature the caller verified.
#[derive(Debug)]
pub struct Confirmation {
    /// Who signed.
    pub signer: PartyIndex,
    /// The session id it signed with the list: a list confirmed for other
    /// advertised keys (another session) must not count.
    pub session: SessionId,
    /// The list it signed, as [`SurvivorDigest::of`] that list: at a
    /// thousand members a member counts hundreds of confirmations, and
    /// comparing (or copying) each as a set cost more than checking its
    /// signature.
    pub survivors: SurvivorDigest,
    /// Proof that the signature was checked.
    pub checked: SignatureChecked,
}

/// What phase 5 reveals.
pub struct Reveal {
    /// Shares of the self-mask seeds of the survivors (U3) in this party's
    /// closed neighbourhood.
    pub self_mask_shares: Vec<(PartyIndex, Share)>,
    /// Shares of the mask-agreement keys of the dropouts (U2 \ U3) in this
    /// party's closed neighbourhood.
    pub key_shares: Vec<(PartyIndex, Share)>,
}

impl std::fmt::Debug for Reveal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reveal")
            .field(
                "self_mask_owners",
                &self
                    .self_mask_shares
                    .iter()
                    .map(|s| s.0)
                    .collect::<Vec<_>>(),
            )
            .field(
                "key_owners",
                &self.key_shares.iter().map(|s| s.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AwaitingConfirmations {
    /// The survivor list this party signed.
    pub fn survivors(&self) -> &BTreeSet<PartyIndex> {
        &self.u3
    }

    /// The session id to sign with the survivor list.
    pub fn session(&self) -> &SessionId {
        &self.inner.session
    }

    /// Phase 5: given at least t verified confirmations of the same U3 and
    /// the same session id from distinct survivors, reveals the self-mask shares of U3 and the key
    /// shares of U2 \ U3 — never both for the same peer, and only for the
    /// neighbours whose shares it holds. Consumes the state.
    pub fn unmask(self, confirmations: &[Confirmation]) -> Result<Reveal, SecAggError> {
        let ours = SurvivorDigest::of(&self.u3);
        let mut signers = BTreeSet::new();
        for c in confirmations {
            if !self.u3.contains(&c.signer) {
                return Err(SecAggError::NotInCohort {
                    party: c.signer,
                    what: "the survivor list",
                });
            }
            if c.session != self.inner.session {
                return Err(SecAggError::SessionMismatch(c.signer));
            }
            if c.survivors != ours {
                return Err(SecAggError::SurvivorListMismatch(c.signer));
            }
            if !signers.insert(c.signer) {
                return Err(SecAggError::Duplicate(c.signer));
            }
        }
        self.inner.thresholds.check(Phase::Unmask, signers.len())?;

        let mut held = self.inner.held;
        let mut reveal = Reveal {
            self_mask_shares: Vec::new(),
            key_shares: Vec::new(),
        };
        for owner in &self.inner.u2 {
            let Some(shares) = held.remove(owner) else {
                // Unreachable by construction (U2 is the set of senders we hold shares of).
                return Err(SecAggError::NotInCohort {
                    party: *owner,
                    what: "the shares held",
                });
            };
            if self.u3.contains(owner) {
                reveal.self_mask_shares.push((*owner, shares.self_mask));
            } else {
                reveal.key_shares.push((*owner, shares.key));
            }
        }
        Ok(reveal)
    }
}
