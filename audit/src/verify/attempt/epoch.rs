//! The epoch side of an attempt of an epoch job (`[protocol] setup =
//! "epoch"`; `fedcredit_crypto::secagg::epoch`): an attempt either sets up
//! a new epoch and uses its slot 0, or uses one unused slot of the epoch
//! the verifier holds from an earlier setup.
//!
//! ```text
//! setup:  announcement (epoch empty, slot 0) ─▶ advertise-keys ─▶ share-keys (EpochShares) ─▶ masked-input ─▶ unmask (SlotReveal)
//!                                                   (U1)          (every member of U1 = C)       (U3 = C)       (SlotUnmasker)
//! slot j: announcement (epoch id, slot j)   ─────────────────────────────────────────────────▶ masked-input ─▶ unmask (SlotReveal)
//! ```
//!
//! The epoch's id is the setup attempt's session id, recomputed from its
//! logged advertisements exactly as for a per-round attempt; its
//! `EpochView` is built from the logged `EpochShares`, each admitted with
//! `admit_epoch_shares`. A slot unmasks only if every member of C sent its
//! masked input: a masked-input phase that ends with U3 ≠ C must abort, and
//! the epoch is dropped with it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::PartyIndex;
use fedcredit_crypto::secagg::epoch::{DealerRecord, EpochView, Slot, SlotUnmasker, Slots};

use fedcredit_crypto::secagg::Phase;
use fedcredit_proto::codec::Codec;
use fedcredit_proto::roster::Roster;

use super::{AttemptState, Stage, names};
use crate::report::{Check, Failure};
use crate::verify::Context;

/// A set-up epoch, as the verifier holds it across attempts.
#[derive(Clone, Debug)]
pub(crate) struct Epoch {
    /// The epoch's session id (the setup attempt's session id).
    pub id: SessionId,
    /// The dealers' records: what every slot's reveals are checked against.
    pub view: Arc<EpochView>,
    /// The epoch's cohort C: every member of the setup's U1, each of which dealt.
    pub cohort: BTreeSet<PartyIndex>,
    /// The setup attempt's announcement record.
    pub setup: u64,
}

impl Epoch {
    /// A short name for messages: the first bytes of the id and its setup record.
    pub fn name(&self) -> String {
        format!(
            "epoch {}… (set up at record {})",
            &self.id.to_hex()[..16],
            self.setup
        )
    }
}

/// What an attempt of an epoch job uses: its slot, and the epoch (held
/// from the start for a slot attempt, set up at the share-keys close for a
/// setup attempt).
#[derive(Debug)]
pub(crate) struct EpochAttempt {
    /// Slots per epoch (the consortium file's).
    pub slots: Slots,
    /// The slot this attempt masks with.
    pub slot: Slot,
    /// `Some(announcement record)` if this attempt sets up the epoch.
    pub setup: Option<u64>,
    /// A setup's admitted `EpochShares` records so far (its U2).
    pub dealt: BTreeMap<PartyIndex, DealerRecord>,
    /// The epoch, once known.
    pub epoch: Option<Epoch>,
    /// The slot's unmasking, from the masked-input close on.
    pub unmasker: Option<SlotUnmasker<Arc<EpochView>>>,
    /// A setup's epoch was set up and the verifier has not taken it yet.
    fresh: bool,
}

impl EpochAttempt {
    /// An attempt that sets up a new epoch (announced at record `seq`) and uses its slot 0.
    pub fn setup(slots: Slots, seq: u64) -> Self {
        Self {
            slots,
            slot: 0,
            setup: Some(seq),
            dealt: BTreeMap::new(),
            epoch: None,
            unmasker: None,
            fresh: false,
        }
    }

    /// An attempt that uses `slot` of the held `epoch`.
    pub fn slot(slots: Slots, epoch: Epoch, slot: Slot) -> Self {
        Self {
            slots,
            slot,
            setup: None,
            dealt: BTreeMap::new(),
            epoch: Some(epoch),
            unmasker: None,
            fresh: false,
        }
    }

    /// Called at a setup's share-keys close with the epoch it set up.
    pub fn set_up(&mut self, epoch: Epoch) {
        self.epoch = Some(epoch);
        self.fresh = true;
    }
}

impl AttemptState {
    /// Makes this an attempt of an epoch job. A slot attempt starts in the
    /// masked-input phase: it has no key setup of its own.
    pub fn with_epoch(mut self, epoch: EpochAttempt) -> Self {
        if epoch.setup.is_none() {
            self.stage = Stage::Open(Phase::MaskedInput);
        }
        self.epoch = Some(epoch);
        self
    }

    /// The slot this attempt of an epoch job uses.
    pub fn epoch_slot(&self) -> Option<Slot> {
        self.epoch.as_ref().map(|e| e.slot)
    }

    /// Whether this attempt belongs to an epoch (setup or slot).
    pub fn is_epoch(&self) -> bool {
        self.epoch.is_some()
    }

    /// The epoch's cohort C, once the epoch is known.
    pub(super) fn epoch_cohort(&self) -> Option<&BTreeSet<PartyIndex>> {
        self.epoch.as_ref()?.epoch.as_ref().map(|e| &e.cohort)
    }

    /// The epoch this setup attempt just set up (once, at its share-keys
    /// close): the verifier holds it from then on.
    pub fn take_new_epoch(&mut self) -> Option<Epoch> {
        let e = self.epoch.as_mut()?;
        if !e.fresh {
            return None;
        }
        e.fresh = false;
        e.epoch.clone()
    }

    /// Whether an abort now abandons the epoch: the masked-input phase is
    /// open and not every member of C sent its masked input (the slot can
    /// never be unmasked, and the next attempt sets up a new epoch).
    pub fn abandons_epoch(&self) -> Option<&Epoch> {
        let e = self.epoch.as_ref()?.epoch.as_ref()?;
        (self.stage == Stage::Open(Phase::MaskedInput) && e.cohort != self.u3).then_some(e)
    }

    /// The held epoch's members that sent no masked input (C \ U3).
    pub(super) fn epoch_missing(&self) -> BTreeSet<PartyIndex> {
        self.epoch_cohort()
            .map(|c| c.difference(&self.u3).copied().collect())
            .unwrap_or_default()
    }

    /// Members of a setup's U1 that sent no epoch shares (U1 \ U2).
    pub(super) fn epoch_non_dealers(&self) -> BTreeSet<PartyIndex> {
        match &self.epoch {
            Some(e) if e.setup.is_some() => self
                .u1
                .keys()
                .filter(|p| !e.dealt.contains_key(p))
                .copied()
                .collect(),
            _ => BTreeSet::new(),
        }
    }
}

impl AttemptState {
    /// A setup's share-keys close: every member of U1 must have dealt (a
    /// member opens the epoch only with every other member's shares), and
    /// the logged records must make an epoch over U1.
    pub(super) fn epoch_set_up(&mut self, ctx: &Context<'_>, seq: u64) -> Result<(), Failure> {
        let roster = &ctx.consortium.roster;
        let missing = self.epoch_non_dealers();
        if !missing.is_empty() {
            return Err(Failure::new(
                seq,
                Check::Abort,
                format!(
                    "the share-keys phase of an epoch's setup closed without epoch shares from {}: \
                     every member of U1 must deal (members open an epoch only with the shares of \
                     all of it), so the attempt had to abort",
                    names(roster, &missing)
                ),
            ));
        }
        let id = self.session.ok_or_else(|| {
            Failure::new(
                seq,
                Check::Phase,
                "no session id: keys were never advertised",
            )
        })?;
        let Some(e) = self.epoch.as_mut() else {
            return Ok(());
        };
        let Some(setup) = e.setup else {
            return Err(Failure::new(
                seq,
                Check::Phase,
                "closes the share-keys phase of an attempt that uses a held epoch",
            ));
        };
        let dealt = std::mem::take(&mut e.dealt);
        let cohort: BTreeSet<PartyIndex> = dealt.keys().copied().collect();
        let view = EpochView::new(id, ctx.consortium.protocol.thresholds, e.slots, dealt).map_err(
            |err| {
                Failure::new(
                    seq,
                    Check::Shares,
                    format!("the logged epoch shares do not set up an epoch: {err}"),
                )
            },
        )?;
        e.set_up(Epoch {
            id,
            view: Arc::new(view),
            cohort,
            setup,
        });
        Ok(())
    }

    /// The masked-input close of an epoch attempt: U3 must be C exactly
    /// (a slot with a missing input is abandoned before any reveal), then
    /// the slot's reveals are collected.
    pub(super) fn slot_unmasking(&mut self, ctx: &Context<'_>, seq: u64) -> Result<(), Failure> {
        let roster = &ctx.consortium.roster;
        let Some(e) = self.epoch.as_ref().and_then(|e| e.epoch.as_ref()) else {
            return Err(Failure::new(
                seq,
                Check::Phase,
                "closes the masked-input phase of an epoch attempt without an epoch",
            ));
        };
        let missing = self.epoch_missing();
        if !missing.is_empty() {
            return Err(Failure::new(
                seq,
                Check::Abort,
                format!(
                    "the masked-input phase closed with [{}], but every member of the epoch's \
                     cohort C = [{}] must send its masked input ({} sent none): a slot with a \
                     missing input can never be unmasked, so the attempt had to abort and the \
                     epoch be dropped",
                    names(roster, &self.u3),
                    names(roster, &e.cohort),
                    names(roster, &missing)
                ),
            ));
        }
        let view = Arc::clone(&e.view);
        let Some(e) = self.epoch.as_mut() else {
            return Ok(());
        };
        e.unmasker = Some(SlotUnmasker::new(view, e.slot).map_err(|err| {
            Failure::new(seq, Check::Unmask, format!("cannot start unmasking: {err}"))
        })?);
        Ok(())
    }

    /// Why the log justifies an abort in the open `phase` of an epoch
    /// attempt, beyond too few parties: a setup member that did not deal,
    /// or a member of C that sent no masked input.
    pub(super) fn epoch_abort(&self, roster: &Roster, phase: Phase) -> Option<String> {
        let e = self.epoch.as_ref()?;
        match phase {
            Phase::ShareKeys if e.setup.is_some() => {
                let missing = self.epoch_non_dealers();
                (!missing.is_empty()).then(|| {
                    format!(
                        "{} sent no epoch shares: every member of U1 must deal in an epoch's setup",
                        names(roster, &missing)
                    )
                })
            }
            Phase::MaskedInput => {
                let missing = self.epoch_missing();
                (e.epoch.is_some() && !missing.is_empty()).then(|| {
                    format!(
                        "slot {} abandoned before any reveal: {} sent no masked input; the next \
                         attempt sets up a new epoch",
                        e.slot,
                        names(roster, &missing)
                    )
                })
            }
            _ => None,
        }
    }

    /// Removes the slot's self masks with the logged reveals.
    pub(super) fn slot_unmask(&mut self, seq: u64) -> Result<Vec<u64>, Failure> {
        let ring = self
            .codec
            .as_ref()
            .map(Codec::ring)
            .ok_or_else(|| Failure::new(seq, Check::Unmask, "no codec was announced"))?;
        let unmasker = self
            .epoch
            .as_mut()
            .and_then(|e| e.unmasker.take())
            .ok_or_else(|| Failure::new(seq, Check::Unmask, "the unmasking was already used"))?;
        let mut sum = std::mem::take(&mut self.masked);
        unmasker.finish(ring, &mut sum).map_err(|e| {
            Failure::new(
                seq,
                Check::Unmask,
                format!("the logged slot reveals do not unmask the sum: {e}"),
            )
        })?;
        Ok(sum)
    }
}
