//! The aggregator side: removes the masks from the sum of U3's masked inputs
//! using the shares revealed in phase 5. Used by the coordinator and, on the
//! logged messages, by the auditor.
//!
//! Every revealed share is checked against the commitment its dealer signed
//! in phase 2, so a bad share is attributed to the survivor that revealed
//! it: that reveal is refused as a whole and its sender excluded, and the
//! round still completes with t good reveals. A reconstruction that fails
//! from checked shares can only be the dealer's fault.
//!
//! Over a Harary graph ([`super::CommGraph::Harary`]) the aggregator derives
//! the graph from the session id itself: each dealer must have committed to
//! exactly its closed neighbourhood, a revealer may reveal only shares of
//! its closed neighbourhood, each secret is rebuilt from the share
//! threshold of its owner's neighbourhood, and a dropout's pairwise masks
//! are removed toward its neighbours in U3 only.

use std::collections::{BTreeMap, BTreeSet};

use super::plus::Neighbourhoods;
use super::{
    Advertisement, CommGraph, Dealt, PartyIndex, Phase, SecAggError, ShareKind, Thresholds,
    check_subset, pair_seed, self_mask_commitment, share_matches,
};
use crate::kx::{AgreementSecret, SessionId};
use crate::mask::MaskSeed;
use crate::ring::{MaskSign, Ring};
use crate::shamir::{Share, reconstruct};

/// Everything the aggregator knows about one round attempt when it unmasks.
#[derive(Debug)]
pub struct RoundView {
    /// The session id of the attempt.
    pub session: SessionId,
    /// The agreed thresholds.
    pub thresholds: Thresholds,
    /// U1 with their signed advertisements.
    pub cohort: BTreeMap<PartyIndex, Advertisement>,
    /// U1's members that sent shares, with their signed commitments (to
    /// the self-mask seed and to every share they dealt).
    pub u2: BTreeMap<PartyIndex, Dealt>,
    /// Members of U2 whose masked input is in the sum.
    pub u3: BTreeSet<PartyIndex>,
    /// The ring the inputs and masks live in (the round codec's), so that
    /// masks are removed with the same carries they were added with.
    pub ring: Ring,
}

/// Collects the shares revealed in phase 5, checking each against the rules.
#[derive(Debug)]
pub struct Unmasker {
    view: RoundView,
    /// The communication graph derived from the session id and U1.
    graph: Neighbourhoods,
    revealers: BTreeSet<PartyIndex>,
    /// Survivors whose reveal held a share that fails its dealer's commitment.
    excluded: BTreeSet<PartyIndex>,
    self_mask: BTreeMap<PartyIndex, Vec<Share>>,
    keys: BTreeMap<PartyIndex, Vec<Share>>,
}

impl Unmasker {
    /// Starts collecting for the given round view.
    pub fn new(view: RoundView) -> Result<Self, SecAggError> {
        for p in view.u2.keys() {
            if !view.cohort.contains_key(p) {
                return Err(SecAggError::NotInCohort {
                    party: *p,
                    what: "U1 (advertised keys)",
                });
            }
        }
        let graph = Neighbourhoods::derive(&view.thresholds, &view.session, &view.cohort)?;
        for (dealer, dealt) in &view.u2 {
            match view.thresholds.graph() {
                CommGraph::Complete => dealt.check(*dealer, &view.cohort)?,
                CommGraph::Harary { .. } => dealt.check_graph(*dealer, &graph)?,
            }
        }
        let u2: BTreeSet<PartyIndex> = view.u2.keys().copied().collect();
        check_subset(&view.u3, &u2, "U2 (sent shares)")?;
        Ok(Self {
            view,
            graph,
            revealers: BTreeSet::new(),
            excluded: BTreeSet::new(),
            self_mask: BTreeMap::new(),
            keys: BTreeMap::new(),
        })
    }

    /// Accepts one survivor's revealed shares, after checking that it is a
    /// survivor, revealed exactly one share per member of U2 in its closed
    /// neighbourhood (all of U2 for the complete graph; a share of a
    /// non-neighbour is refused, [`SecAggError::NotNeighbour`]) of the right
    /// kind (self-mask for U3, key for U2 \ U3), each with its own x and
    /// matching the commitment its dealer signed for this revealer. A
    /// rejected reveal leaves the shares already accepted untouched; one
    /// with a share that fails its commitment
    /// ([`SecAggError::BadRevealedShare`]) also excludes its sender for good.
    pub fn accept(
        &mut self,
        revealer: PartyIndex,
        self_mask_shares: Vec<(PartyIndex, Share)>,
        key_shares: Vec<(PartyIndex, Share)>,
    ) -> Result<(), SecAggError> {
        if !self.view.u3.contains(&revealer) {
            return Err(SecAggError::NotInCohort {
                party: revealer,
                what: "the survivor list",
            });
        }
        if self.revealers.contains(&revealer) {
            return Err(SecAggError::Duplicate(revealer));
        }
        if self.excluded.contains(&revealer) {
            return Err(SecAggError::ExcludedRevealer(revealer));
        }
        let mut owners = BTreeSet::new();
        for (owner, share) in &self_mask_shares {
            if !self.view.u3.contains(owner) {
                return Err(SecAggError::WrongShareKind {
                    revealer,
                    owner: *owner,
                    kind: "self-mask",
                });
            }
            self.check_neighbour(revealer, *owner)?;
            self.check_share(revealer, *owner, share, &mut owners)?;
        }
        for (owner, share) in &key_shares {
            if self.view.u3.contains(owner) || !self.view.u2.contains_key(owner) {
                return Err(SecAggError::WrongShareKind {
                    revealer,
                    owner: *owner,
                    kind: "key",
                });
            }
            self.check_neighbour(revealer, *owner)?;
            self.check_share(revealer, *owner, share, &mut owners)?;
        }
        if let Some(missing) = self
            .view
            .u2
            .keys()
            .find(|p| self.graph.in_closed(revealer, **p) && !owners.contains(p))
        {
            return Err(SecAggError::NotInCohort {
                party: *missing,
                what: "the revealed shares",
            });
        }
        // Only a well-formed reveal gets this far: check every share against
        // its dealer's commitment, and blame the revealer for a bad one.
        let bad = self_mask_shares
            .iter()
            .map(|(o, s)| (ShareKind::SelfMask, o, s))
            .chain(key_shares.iter().map(|(o, s)| (ShareKind::Key, o, s)))
            .find(|(kind, owner, share)| {
                !self.view.u2[*owner].shares.get(&revealer).is_some_and(|c| {
                    share_matches(&self.view.session, **owner, revealer, *kind, share, c)
                })
            });
        if let Some((kind, owner, _)) = bad {
            let owner = *owner;
            self.excluded.insert(revealer);
            return Err(SecAggError::BadRevealedShare {
                revealer,
                owner,
                kind,
            });
        }
        self.revealers.insert(revealer);
        for (owner, share) in self_mask_shares {
            self.self_mask.entry(owner).or_default().push(share);
        }
        for (owner, share) in key_shares {
            self.keys.entry(owner).or_default().push(share);
        }
        Ok(())
    }

    /// Refuses a share of `owner` from a `revealer` outside its closed
    /// neighbourhood: it was never dealt one, so revealing it is a lie.
    fn check_neighbour(&self, revealer: PartyIndex, owner: PartyIndex) -> Result<(), SecAggError> {
        if !self.graph.in_closed(owner, revealer) {
            return Err(SecAggError::NotNeighbour {
                party: revealer,
                of: owner,
            });
        }
        Ok(())
    }

    fn check_share(
        &self,
        revealer: PartyIndex,
        owner: PartyIndex,
        share: &Share,
        owners: &mut BTreeSet<PartyIndex>,
    ) -> Result<(), SecAggError> {
        if share.x() != revealer.get() {
            return Err(SecAggError::ForeignShare {
                owner,
                revealer,
                x: share.x(),
            });
        }
        if !owners.insert(owner) {
            return Err(SecAggError::Duplicate(owner));
        }
        Ok(())
    }

    /// The round view this unmasker works on.
    pub fn view(&self) -> &RoundView {
        &self.view
    }

    /// How many survivors have revealed so far (good reveals only).
    pub fn revealers(&self) -> usize {
        self.revealers.len()
    }

    /// Survivors excluded for revealing a share that fails its dealer's commitment.
    pub fn excluded(&self) -> &BTreeSet<PartyIndex> {
        &self.excluded
    }

    /// Removes every mask from `masked_sum` (Σ of U3's masked inputs in the
    /// view's ring), leaving Σ of U3's encoded inputs. Needs at least t good
    /// reveals (if there are fewer, the error names who was excluded for bad
    /// shares) and a whole number of ring values.
    pub fn finish(self, masked_sum: &mut [u64]) -> Result<(), SecAggError> {
        let have = self.revealers.len();
        if have < self.view.thresholds.need() && !self.excluded.is_empty() {
            return Err(SecAggError::TooFewGoodReveals {
                have,
                need: self.view.thresholds.need(),
                bad: self.excluded.iter().copied().collect(),
            });
        }
        self.view.thresholds.check(Phase::Unmask, have)?;
        let ring = self.view.ring;
        ring.check_len(masked_sum.len())?;
        let t = self.view.thresholds.share_threshold();
        // Every seed first (checking each against its commitment or public
        // key), then all masks in one pass over the sum.
        let mut seeds: Vec<(MaskSign, MaskSeed)> = Vec::new();
        // Self masks of the survivors.
        for owner in &self.view.u3 {
            let shares = self.self_mask.get(owner).map(Vec::as_slice).unwrap_or(&[]);
            let seed = reconstruct(shares, t).map_err(|source| SecAggError::Reconstruction {
                owner: *owner,
                kind: "self-mask",
                source,
            })?;
            let seed = MaskSeed::from_bytes(*seed);
            if self_mask_commitment(&self.view.session, *owner, &seed)
                != self.view.u2[owner].self_mask
            {
                return Err(SecAggError::CommitmentMismatch(*owner));
            }
            seeds.push((MaskSign::Sub, seed));
        }
        // Pairwise masks between survivors and their neighbours among the
        // dropouts of U2 \ U3.
        for (dropped, _) in self
            .view
            .u2
            .iter()
            .filter(|(p, _)| !self.view.u3.contains(p))
        {
            let shares = self.keys.get(dropped).map(Vec::as_slice).unwrap_or(&[]);
            let bytes = reconstruct(shares, t).map_err(|source| SecAggError::Reconstruction {
                owner: *dropped,
                kind: "key",
                source,
            })?;
            let secret = AgreementSecret::from_bytes(&bytes);
            if secret.public() != self.view.cohort[dropped].mask_agree {
                return Err(SecAggError::KeyMismatch(*dropped));
            }
            for survivor in self
                .view
                .u3
                .iter()
                .filter(|s| self.graph.adjacent(*dropped, **s))
            {
                let peer_public = &self.view.cohort[survivor].mask_agree;
                let seed = pair_seed(
                    &secret,
                    *dropped,
                    *survivor,
                    peer_public,
                    &self.view.session,
                )?;
                // The survivor added the mask if the dropout is higher, subtracted it if lower.
                let sign = if dropped > survivor {
                    MaskSign::Sub
                } else {
                    MaskSign::Add
                };
                seeds.push((sign, seed));
            }
        }
        let masks: Vec<(MaskSign, &MaskSeed)> =
            seeds.iter().map(|(sign, seed)| (*sign, seed)).collect();
        ring.apply_masks(masked_sum, &masks)?;
        Ok(())
    }
}
