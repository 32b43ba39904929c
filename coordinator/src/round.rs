//! One round attempt as a sequence of phase types. Each phase accepts only
//! its own message kind from its own cohort; `close` consumes it and returns
//! the next phase, or an [`Abort`] naming the phase and the counts.
//!
//! ```text
//! Advertising ─▶ SharingKeys ─▶ CollectingInputs ─▶ Confirming ─▶ Unmasking ─▶ Outcome
//!    (U1)           (U2)             (U3)              (U4)           (U5)
//! ```
//!
//! In epoch mode (`[protocol] setup = "epoch"`, see
//! [`fedcredit_crypto::secagg::epoch`]) an attempt either sets up a new
//! epoch and uses its slot 0, or uses the next slot of the epoch the
//! coordinator holds; there is no consistency check (no key is ever
//! revealed), and a slot is unmasked only when every member of the epoch's
//! cohort C sent its masked input:
//!
//! ```text
//! setup: Advertising ─▶ EpochSharing ─▶ CollectingInputs ─▶ SlotUnmasking ─▶ Outcome
//!           (U1)          (C = U1)         (U2 = C, U3 = C)
//! slot:                                 CollectingInputs ─▶ SlotUnmasking ─▶ Outcome
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::ring::Ring;
use fedcredit_crypto::secagg::admission::{
    AdmissionError, ChunkHeader, ChunkProgress, admit_advert, admit_confirmation,
    admit_epoch_shares, admit_masked_chunk, admit_masked_input, admit_reveal, admit_shares,
};
use fedcredit_crypto::secagg::epoch::{
    DealerRecord, EpochView, Slot, SlotUnmasker, Slots, slot_session,
};
use fedcredit_crypto::secagg::plus::Neighbourhoods;
use fedcredit_crypto::secagg::server::{RoundView, Unmasker};
use fedcredit_crypto::secagg::{
    self, Advertisement, Dealt, PartyIndex, Phase, SecAggError, SessionBinding, SurvivorDigest,
    Thresholds,
};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::roster::Roster;
use fedcredit_proto::v1 as pb;
use prost::bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::Rejection;
use crate::log::Located;

/// Where a handler's answer goes; the phase keeps it until it closes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Rejection>>;

/// The fixed facts of one round attempt.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    pub job_id: String,
    pub spec_hash: [u8; 32],
    pub round: u64,
    pub attempt: u32,
    pub thresholds: Thresholds,
    /// Digest of the signed announcement (bound into the session id).
    pub announcement: [u8; 32],
    /// Words per masked input (a whole number of `ring` values).
    pub dimension: usize,
    /// Who may take part at all (the job's cohort policy); `None`: anyone.
    pub allowed: Option<BTreeSet<PartyIndex>>,
    /// The exact contributor set the attempt must end with: the first
    /// round's under the `fixed` policy, or, when an earlier attempt of this
    /// round already announced a survivor list, that list (honest members
    /// confirm one contributor set per task, ever).
    pub exact: Option<BTreeSet<PartyIndex>>,
    /// The codec's ring: masked inputs are summed, and unmasked, in it.
    pub ring: Ring,
    /// How the attempt sets up secure aggregation (which phases follow).
    pub setup: Setup,
}

/// How an attempt sets up secure aggregation: it decides which phase types
/// the attempt goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Setup {
    /// Keys agreed and secrets shared in this attempt (the per-round
    /// protocol): advertise, share, masked input, confirm, unmask.
    PerRound,
    /// This attempt sets up a new epoch of `slots` slots and uses its slot
    /// 0: advertise, epoch shares, masked input, slot unmask.
    NewEpoch { slots: Slots },
    /// This attempt uses slot `slot` (never 0) of the epoch the coordinator
    /// holds: masked input, slot unmask.
    Slot { slot: Slot },
}

impl Setup {
    /// Whether the attempt runs in an epoch (set up now or held).
    pub fn is_epoch(self) -> bool {
        !matches!(self, Setup::PerRound)
    }

    /// What an attempt of this kind is, for a rejection.
    pub fn describe(self) -> String {
        match self {
            Setup::PerRound => {
                "this attempt, which agrees keys and shares secrets itself (the per-round protocol)"
                    .into()
            }
            Setup::NewEpoch { slots } => format!(
                "this attempt, which sets up a new epoch of {} slots and uses its slot 0",
                slots.get()
            ),
            Setup::Slot { slot } => format!("this attempt, which uses slot {slot} of an epoch"),
        }
    }
}

/// Why a partial input could not be taken out of the sum.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RollBackError<E> {
    /// A logged chunk could not be read back.
    #[error("reading a logged chunk back: {0}")]
    Read(E),
    /// A chunk read back has another length than when it was added.
    #[error("a logged chunk read back does not fit where it was added: {0}")]
    Length(String),
}

/// Why an attempt stopped.
#[derive(Debug)]
pub(crate) struct Abort {
    pub phase: Phase,
    pub reason: String,
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.phase, self.reason)
    }
}

/// The unmasked result of an attempt.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Σ of U3's encoded inputs (in the round codec's ring).
    pub sum: Vec<u64>,
    /// U3: whose inputs are in the sum.
    pub contributors: BTreeSet<PartyIndex>,
    /// Repliers waiting for the signed outcome (U5).
    pub waiters: Vec<Reply<pb::Signed>>,
}

/// A broken admission rule, naming parties by roster id.
fn refuse(roster: &Roster, e: AdmissionError) -> Rejection {
    Rejection::admission(e, |p| roster.name_of(p))
}

/// Answers every waiter with the abort reason.
fn abort_all<T>(waiters: impl IntoIterator<Item = Reply<T>>, abort: &Abort) {
    for w in waiters {
        let _ = w.send(Err(Rejection::Aborted(abort.to_string())));
    }
}

fn check_count(
    thresholds: &Thresholds,
    phase: Phase,
    have: usize,
    cohort: usize,
) -> Result<(), Abort> {
    thresholds.check(phase, have).map_err(|e| Abort {
        phase,
        reason: format!(
            "{} ({have} of {cohort} answered before the deadline)",
            without_phase(e)
        ),
    })
}

/// A protocol error's text without the phase it names: the abort says the
/// phase once.
fn without_phase(e: SecAggError) -> String {
    match e {
        SecAggError::TooFewParties { have, need, .. } => {
            format!("only {have} parties remain, {need} are needed")
        }
        other => other.to_string(),
    }
}

/// Phase 1: collecting signed key advertisements.
#[derive(Debug)]
pub(crate) struct Advertising {
    pub attempt: Attempt,
    expected: BTreeSet<PartyIndex>,
    adverts: BTreeMap<PartyIndex, (pb::Signed, Advertisement)>,
    waiters: Vec<Reply<pb::AdvertisedKeys>>,
}

impl Advertising {
    pub fn new(attempt: Attempt, expected: BTreeSet<PartyIndex>) -> Self {
        Self {
            attempt,
            expected,
            adverts: BTreeMap::new(),
            waiters: Vec::new(),
        }
    }

    pub fn expect(&mut self, p: PartyIndex) {
        self.expected.insert(p);
    }

    pub fn accept(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        signed: pb::Signed,
        ad: Advertisement,
        reply: Reply<pb::AdvertisedKeys>,
    ) -> bool {
        if let Err(e) = admit_advert(&self.adverts, self.attempt.allowed.as_ref(), from) {
            let _ = reply.send(Err(refuse(roster, e)));
            return false;
        }
        self.expected.insert(from);
        self.adverts.insert(from, (signed, ad));
        self.waiters.push(reply);
        true
    }

    pub fn is_complete(&self) -> bool {
        self.expected.iter().all(|p| self.adverts.contains_key(p))
    }

    /// Who was expected but did not answer.
    pub fn missing(&self) -> BTreeSet<PartyIndex> {
        self.expected
            .iter()
            .filter(|p| !self.adverts.contains_key(p))
            .copied()
            .collect()
    }

    /// Closes the phase: the next is the per-round protocol's share
    /// exchange, or an epoch's setup.
    pub fn close(self) -> Result<Round, Abort> {
        let have = self.adverts.len();
        if let Err(a) = check_count(
            &self.attempt.thresholds,
            Phase::AdvertiseKeys,
            have,
            self.expected.len(),
        ) {
            abort_all(self.waiters, &a);
            return Err(a);
        }
        let cohort: BTreeMap<PartyIndex, Advertisement> =
            self.adverts.iter().map(|(p, (_, ad))| (*p, *ad)).collect();
        let binding = SessionBinding {
            job_id: &self.attempt.job_id,
            job_spec_hash: &self.attempt.spec_hash,
            announcement: &self.attempt.announcement,
            round: self.attempt.round,
            attempt: self.attempt.attempt,
            thresholds: self.attempt.thresholds,
        };
        let session = secagg::session_id(&binding, &cohort);
        if let Setup::NewEpoch { slots } = self.attempt.setup {
            // The epoch's id is this attempt's session id, exactly as the
            // per-round protocol computes it. An epoch runs on the complete
            // graph (the referee refuses anything else).
            let reply = pb::AdvertisedKeys {
                adverts: self.adverts.into_values().map(|(s, _)| s).collect(),
            };
            for w in self.waiters {
                let _ = w.send(Ok(reply.clone()));
            }
            return Ok(Round::EpochSharing(EpochSharing {
                attempt: self.attempt,
                slots,
                epoch: session,
                cohort,
                shares: BTreeMap::new(),
                waiters: BTreeMap::new(),
            }));
        }
        // The graph is derived here, from what every member derives it
        // from, and never taken from a dealer: shares are admitted and
        // relayed along it only.
        let graph = match Neighbourhoods::derive(&self.attempt.thresholds, &session, &cohort) {
            Ok(g) => g,
            Err(e) => {
                let a = Abort {
                    phase: Phase::AdvertiseKeys,
                    reason: e.to_string(),
                };
                abort_all(self.waiters, &a);
                return Err(a);
            }
        };
        let reply = pb::AdvertisedKeys {
            adverts: self.adverts.into_values().map(|(s, _)| s).collect(),
        };
        for w in self.waiters {
            let _ = w.send(Ok(reply.clone()));
        }
        Ok(Round::SharingKeys(SharingKeys {
            attempt: self.attempt,
            session,
            cohort,
            graph,
            shares: BTreeMap::new(),
            waiters: BTreeMap::new(),
        }))
    }
}

/// Phase 2: collecting encrypted shares from U1.
#[derive(Debug)]
pub(crate) struct SharingKeys {
    pub attempt: Attempt,
    session: SessionId,
    cohort: BTreeMap<PartyIndex, Advertisement>,
    /// The attempt's communication graph over U1, derived from the
    /// thresholds and the session id (complete unless the consortium file
    /// chose a sparse one).
    graph: Neighbourhoods,
    /// sender -> (signed commitments, its signed message, recipient -> ciphertext)
    shares: BTreeMap<PartyIndex, (Dealt, pb::Signed, BTreeMap<PartyIndex, Bytes>)>,
    waiters: BTreeMap<PartyIndex, Reply<pb::SharesForYou>>,
}

impl SharingKeys {
    pub fn accept(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        dealt: Dealt,
        ciphertexts: Vec<(PartyIndex, Bytes)>,
        signed: pb::Signed,
        reply: Reply<pb::SharesForYou>,
    ) -> bool {
        match self.try_accept(roster, from, dealt, ciphertexts, signed) {
            Ok(()) => {
                self.waiters.insert(from, reply);
                true
            }
            Err(r) => {
                let _ = reply.send(Err(r));
                false
            }
        }
    }

    fn try_accept(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        dealt: Dealt,
        ciphertexts: Vec<(PartyIndex, Bytes)>,
        signed: pb::Signed,
    ) -> Result<(), Rejection> {
        // Ciphertext lengths were checked when the message was decoded.
        admit_shares(
            &self.cohort,
            &self.graph,
            &self.shares,
            from,
            ciphertexts.iter().map(|(to, _)| *to),
            &dealt,
        )
        .map_err(|e| refuse(roster, e))?;
        let by_recipient = ciphertexts.into_iter().collect();
        self.shares.insert(from, (dealt, signed, by_recipient));
        Ok(())
    }

    pub fn is_complete(&self) -> bool {
        self.shares.len() == self.cohort.len()
    }

    pub fn missing(&self) -> BTreeSet<PartyIndex> {
        self.cohort
            .keys()
            .filter(|p| !self.shares.contains_key(p))
            .copied()
            .collect()
    }

    pub fn close(self) -> Result<CollectingInputs, Abort> {
        let have = self.shares.len();
        if let Err(a) = check_count(
            &self.attempt.thresholds,
            Phase::ShareKeys,
            have,
            self.cohort.len(),
        ) {
            abort_all(self.waiters.into_values(), &a);
            return Err(a);
        }
        // Each recipient gets the signed message of every other dealer
        // whose neighbour it is (every other dealer for the complete graph):
        // its ciphertext and the dealer's commitments to its shares.
        for (recipient, w) in self.waiters {
            let dealt = self
                .shares
                .iter()
                .filter(|(sender, _)| self.graph.adjacent(**sender, recipient))
                .map(|(_, (_, signed, _))| signed.clone())
                .collect();
            let _ = w.send(Ok(pb::SharesForYou { dealt }));
        }
        let dealt: BTreeMap<PartyIndex, Dealt> = self
            .shares
            .into_iter()
            .map(|(p, (d, _, _))| (p, d))
            .collect();
        Ok(CollectingInputs {
            sum: vec![0; self.attempt.dimension],
            attempt: self.attempt,
            session: self.session,
            u2: dealt.keys().copied().collect(),
            then: AfterInputs::Confirm {
                cohort: self.cohort,
                dealt,
            },
            u3: BTreeSet::new(),
            staged: BTreeMap::new(),
            dropped: BTreeMap::new(),
            waiters: Vec::new(),
        })
    }
}

/// Epoch setup: collecting every member of U1's `EpochShares` (a share of
/// each of its slot seeds for every other member, and its commitments).
/// Every member of U1 must deal: the epoch's cohort C is U1, fixed for all
/// its slots.
#[derive(Debug)]
pub(crate) struct EpochSharing {
    pub attempt: Attempt,
    slots: Slots,
    /// The epoch's session id (this attempt's session id).
    epoch: SessionId,
    cohort: BTreeMap<PartyIndex, Advertisement>,
    /// dealer -> (its commitments, its signed message, relayed as is)
    shares: BTreeMap<PartyIndex, (DealerRecord, pb::Signed)>,
    waiters: BTreeMap<PartyIndex, Reply<pb::SharesForYou>>,
}

impl EpochSharing {
    /// The epoch's id.
    #[cfg(test)]
    pub fn epoch(&self) -> &SessionId {
        &self.epoch
    }

    pub fn accept(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        record: DealerRecord,
        ciphertexts: &[(PartyIndex, Bytes)],
        signed: pb::Signed,
        reply: Reply<pb::SharesForYou>,
    ) -> bool {
        // Ciphertext lengths were checked when the message was decoded.
        match admit_epoch_shares(
            &self.cohort,
            &self.shares,
            from,
            ciphertexts.iter().map(|(to, _)| *to),
            &record,
            self.slots,
        ) {
            Ok(()) => {
                self.shares.insert(from, (record, signed));
                self.waiters.insert(from, reply);
                true
            }
            Err(e) => {
                let _ = reply.send(Err(refuse(roster, e)));
                false
            }
        }
    }

    pub fn is_complete(&self) -> bool {
        self.shares.len() == self.cohort.len()
    }

    pub fn missing(&self) -> BTreeSet<PartyIndex> {
        self.cohort
            .keys()
            .filter(|p| !self.shares.contains_key(p))
            .copied()
            .collect()
    }

    /// Enough dealers, and every member of U1 among them (each member's
    /// `EpochSharing::open` refuses an epoch with a missing dealer).
    fn check_close(&self, roster: &Roster) -> Result<(), Abort> {
        check_count(
            &self.attempt.thresholds,
            Phase::ShareKeys,
            self.shares.len(),
            self.cohort.len(),
        )?;
        let missing = self.missing();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Abort {
            phase: Phase::ShareKeys,
            reason: format!(
                "an epoch needs every member that advertised keys to deal its setup shares; \
                 {} dealt none; the next attempt sets up a new epoch",
                names(roster, &missing)
            ),
        })
    }

    /// Relays every dealer's signed message to every other member of U1
    /// and holds the epoch's view; the next phase collects slot 0's inputs.
    pub fn close(self, roster: &Roster) -> Result<CollectingInputs, Abort> {
        if let Err(a) = self.check_close(roster) {
            abort_all(self.waiters.into_values(), &a);
            return Err(a);
        }
        for (recipient, w) in self.waiters {
            let dealt = self
                .shares
                .iter()
                .filter(|(dealer, _)| **dealer != recipient)
                .map(|(_, (_, signed))| signed.clone())
                .collect();
            let _ = w.send(Ok(pb::SharesForYou { dealt }));
        }
        let records = self
            .shares
            .into_iter()
            .map(|(p, (record, _))| (p, record))
            .collect();
        let view = EpochView::new(self.epoch, self.attempt.thresholds, self.slots, records)
            .map_err(|e| Abort {
                phase: Phase::ShareKeys,
                reason: without_phase(e),
            })?;
        CollectingInputs::for_slot(self.attempt, Arc::new(view), 0)
    }
}

/// The parties' roster ids, comma-separated.
fn names<'a>(roster: &Roster, set: impl IntoIterator<Item = &'a PartyIndex>) -> String {
    set.into_iter()
        .map(|p| roster.name_of(*p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A masked input as it reached the coordinator: whole in one message, or
/// one chunk of a stream.
#[derive(Debug)]
pub(crate) enum Piece {
    /// The whole input (`SubmitMaskedInput`).
    Whole,
    /// One chunk (`SubmitMaskedChunks`), with the session id it is signed for.
    Chunk { header: ChunkHeader, session: Bytes },
}

/// What an accepted masked-input piece led to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The sender's input is whole: it is in U3.
    Whole,
    /// More chunks are due; the caller logs this one and says where
    /// ([`CollectingInputs::logged`]).
    More,
}

/// What a masked-input caller is finally told.
#[derive(Debug)]
pub(crate) enum InputAnswer {
    /// Send the next chunk.
    Next,
    /// The phase closed: the survivor list.
    Survivors(pb::Survivors),
}

/// One sender's chunked input while it is incomplete: its chunks are in the
/// sum already, and where they are in the round log, to take them out again
/// if the input never completes.
#[derive(Debug)]
struct Staged {
    progress: ChunkProgress,
    /// (first word, words, where the chunk's record is) per logged chunk.
    logged: Vec<(usize, usize, Located)>,
}

/// What follows the masked inputs, with what it needs.
#[derive(Debug)]
enum AfterInputs {
    /// The per-round protocol: the consistency check, then the unmask with
    /// U1's advertisements and U2's commitments.
    Confirm {
        cohort: BTreeMap<PartyIndex, Advertisement>,
        dealt: BTreeMap<PartyIndex, Dealt>,
    },
    /// A slot of an epoch: the slot's unmask (U2 = C, and U3 must be C).
    Slot { view: Arc<EpochView>, slot: Slot },
}

/// Phase 3: summing masked inputs from U2 as they arrive, so the
/// coordinator holds one vector, not one per participant. A chunked input
/// is added chunk by chunk; one that is refused, broken off or still
/// incomplete when the phase closes is subtracted again from its logged
/// chunks ([`CollectingInputs::roll_back`]), so the sum at the close is
/// exactly U3's inputs. In an epoch slot, U2 is the epoch's cohort C and
/// the session is the slot's ([`slot_session`]).
#[derive(Debug)]
pub(crate) struct CollectingInputs {
    pub attempt: Attempt,
    session: SessionId,
    u2: BTreeSet<PartyIndex>,
    then: AfterInputs,
    sum: Vec<u64>,
    u3: BTreeSet<PartyIndex>,
    /// Incomplete chunked inputs (in the sum until rolled back or whole).
    staged: BTreeMap<PartyIndex, Staged>,
    /// Senders whose input was refused or broke off in this attempt, and
    /// why: out of U3 for the attempt.
    dropped: BTreeMap<PartyIndex, String>,
    waiters: Vec<Reply<InputAnswer>>,
}

impl CollectingInputs {
    /// Opens slot `slot` of the epoch `view` for masked inputs from its
    /// cohort C.
    pub fn for_slot(attempt: Attempt, view: Arc<EpochView>, slot: Slot) -> Result<Self, Abort> {
        if slot >= view.slots.get() {
            let e = SecAggError::SlotOutOfRange {
                slot,
                slots: view.slots.get(),
            };
            return Err(Abort {
                phase: Phase::MaskedInput,
                reason: e.to_string(),
            });
        }
        Ok(Self {
            sum: vec![0; attempt.dimension],
            attempt,
            session: slot_session(&view.epoch, slot),
            u2: view.dealt.keys().copied().collect(),
            then: AfterInputs::Slot { view, slot },
            u3: BTreeSet::new(),
            staged: BTreeMap::new(),
            dropped: BTreeMap::new(),
            waiters: Vec::new(),
        })
    }

    /// The epoch and slot this phase collects for, in an epoch attempt.
    pub fn slot(&self) -> Option<(&Arc<EpochView>, Slot)> {
        match &self.then {
            AfterInputs::Slot { view, slot } => Some((view, *slot)),
            AfterInputs::Confirm { .. } => None,
        }
    }

    /// Checks a masked-input piece and adds it into the sum. A refused chunk
    /// drops its sender's whole input for this attempt (taken out of the
    /// sum at the close).
    pub fn accept(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        piece: &Piece,
        values: &[u8],
    ) -> Result<Taken, Rejection> {
        if let Some(why) = self.dropped.get(&from) {
            return Err(Rejection::InputDropped {
                who: roster.name_of(from),
                why: why.clone(),
            });
        }
        let taken = match piece {
            Piece::Whole if !self.staged.contains_key(&from) => {
                self.accept_whole(roster, from, values)?
            }
            Piece::Whole => {
                let e = Rejection::Invalid {
                    who: roster.name_of(from),
                    problem: "a whole masked input while its chunked input is under way".into(),
                };
                self.drop_input(from, e.to_string());
                return Err(e);
            }
            Piece::Chunk { header, session } => {
                match self.accept_chunk(roster, from, header, session, values) {
                    Ok(t) => t,
                    Err(e) => {
                        self.drop_input(from, e.to_string());
                        return Err(e);
                    }
                }
            }
        };
        if taken == Taken::Whole {
            self.u3.insert(from);
        }
        Ok(taken)
    }

    /// Keeps a whole input's answer channel until the phase closes.
    pub fn wait(&mut self, reply: Reply<InputAnswer>) {
        self.waiters.push(reply);
    }

    /// Records where an accepted chunk of an incomplete input was logged.
    pub fn logged(&mut self, from: PartyIndex, header: &ChunkHeader, at: Located) {
        if let Some(s) = self.staged.get_mut(&from) {
            s.logged.push((header.offset, header.words, at));
        }
    }

    /// The sender's stream broke off (or it sent what was refused): its
    /// input is out of this attempt. Idempotent.
    pub fn drop_input(&mut self, from: PartyIndex, why: String) {
        if !self.u3.contains(&from) {
            self.dropped.entry(from).or_insert(why);
        }
    }

    fn accept_whole(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        values: &[u8],
    ) -> Result<Taken, Rejection> {
        admit_masked_input(
            &self.u2,
            &self.u3,
            from,
            values.len() / 8,
            self.attempt.dimension,
            self.attempt.ring,
        )
        .map_err(|e| refuse(roster, e))?;
        // add_le_bytes also refuses a trailing partial word, and checks the
        // length before touching the sum, so a rejected input leaves the
        // inputs already accepted intact.
        fedcredit_proto::words::add_le_bytes(
            "masked input",
            self.attempt.ring,
            &mut self.sum,
            values,
        )
        .map_err(|e| Rejection::Invalid {
            who: roster.name_of(from),
            problem: format!(
                "{e} (the round aggregates {} words)",
                self.attempt.dimension
            ),
        })?;
        Ok(Taken::Whole)
    }

    fn accept_chunk(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        header: &ChunkHeader,
        session: &[u8],
        values: &[u8],
    ) -> Result<Taken, Rejection> {
        let progress = admit_masked_chunk(
            &self.u2,
            &self.u3,
            self.staged.get(&from).map(|s| &s.progress),
            from,
            header,
            session,
            &self.session,
            self.attempt.dimension,
            self.attempt.ring,
        )
        .map_err(|e| refuse(roster, e))?;
        // Admitted: within the round's words, whole values, the bytes' length.
        let end = header.offset + header.words;
        fedcredit_proto::words::add_le_bytes(
            "masked-input chunk",
            self.attempt.ring,
            &mut self.sum[header.offset..end],
            values,
        )
        .map_err(|e| Rejection::Invalid {
            who: roster.name_of(from),
            problem: e.to_string(),
        })?;
        if progress.is_complete() {
            self.staged.remove(&from);
            return Ok(Taken::Whole);
        }
        self.staged
            .entry(from)
            .or_insert_with(|| Staged {
                progress,
                logged: Vec::new(),
            })
            .progress = progress;
        Ok(Taken::More)
    }

    /// Takes every incomplete chunked input out of the sum again, reading
    /// its chunks back through `read` (the round log): after this the sum
    /// is exactly U3's inputs. Returns who was taken out. A chunk that does
    /// not read back as written is an error: the sum can no longer be
    /// trusted, and the caller must stop.
    pub fn roll_back<E>(
        &mut self,
        roster: &Roster,
        mut read: impl FnMut(&Located) -> Result<Bytes, E>,
    ) -> Result<Vec<PartyIndex>, RollBackError<E>> {
        let staged = std::mem::take(&mut self.staged);
        let mut out = Vec::with_capacity(staged.len());
        for (from, s) in staged {
            for (offset, words, at) in &s.logged {
                let values = read(at).map_err(RollBackError::Read)?;
                fedcredit_proto::words::sub_le_bytes(
                    "masked-input chunk read back",
                    self.attempt.ring,
                    &mut self.sum[*offset..offset + words],
                    &values,
                )
                .map_err(|e| RollBackError::Length(format!("{}: {e}", roster.name_of(from))))?;
            }
            self.dropped
                .entry(from)
                .or_insert_with(|| "its chunked input was incomplete when the phase closed".into());
            out.push(from);
        }
        Ok(out)
    }

    /// Every member of U2 has sent its whole input, or was dropped.
    pub fn is_complete(&self) -> bool {
        self.u2
            .iter()
            .all(|p| self.u3.contains(p) || self.dropped.contains_key(p))
    }

    pub fn missing(&self) -> BTreeSet<PartyIndex> {
        self.u2
            .iter()
            .filter(|p| !self.u3.contains(p))
            .copied()
            .collect()
    }

    /// Whether the phase may close without aborting: a slot needs every
    /// member of C (its inputs are useless otherwise, and nothing is
    /// revealed: the next attempt sets up a new epoch), then the count and
    /// the exact contributor set as in the per-round protocol.
    fn check_close(&self, roster: &Roster) -> Result<(), Abort> {
        if self.slot().is_some() && self.u3 != self.u2 {
            return Err(Abort {
                phase: Phase::MaskedInput,
                reason: format!(
                    "slot abandoned before any reveal: {} sent no masked input; the next \
                     attempt sets up a new epoch",
                    names(roster, self.u2.difference(&self.u3))
                ),
            });
        }
        check_count(
            &self.attempt.thresholds,
            Phase::MaskedInput,
            self.u3.len(),
            self.u2.len(),
        )?;
        self.check_exact(roster)
    }

    /// The survivor list must be the exact set the job or an earlier
    /// attempt of the task fixes. Checked before the phase's closing is
    /// logged, so a list that goes to nobody is never logged as announced.
    fn check_exact(&self, roster: &Roster) -> Result<(), Abort> {
        let Some(exact) = &self.attempt.exact else {
            return Ok(());
        };
        if *exact == self.u3 {
            return Ok(());
        }
        let names = |set: &mut dyn Iterator<Item = &PartyIndex>| {
            set.map(|p| roster.name_of(*p))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(Abort {
            phase: Phase::MaskedInput,
            reason: format!(
                "this round must end with exactly the contributors [{}] (the job's cohort \
                 policy, or the survivor list of an earlier attempt of the same task, which \
                 members never change); missing [{}], extra [{}]",
                names(&mut exact.iter()),
                names(&mut exact.difference(&self.u3)),
                names(&mut self.u3.difference(exact)),
            ),
        })
    }

    /// Closes the phase: the survivor list U3 goes out (in a slot, C), and
    /// the consistency check, or the slot's unmask, opens.
    pub fn close(self, roster: &Roster) -> Result<Round, Abort> {
        if let Err(a) = self.check_close(roster) {
            abort_all(self.waiters, &a);
            return Err(a);
        }
        let survivors: Vec<String> = self.u3.iter().map(|p| roster.name_of(*p)).collect();
        for w in self.waiters {
            let _ = w.send(Ok(InputAnswer::Survivors(pb::Survivors {
                survivors: survivors.clone(),
            })));
        }
        match self.then {
            AfterInputs::Confirm { cohort, dealt } => Ok(Round::Confirming(Confirming {
                attempt: self.attempt,
                session: self.session,
                cohort,
                u2: dealt,
                u3_digest: SurvivorDigest::of(&self.u3),
                u3: self.u3,
                sum: self.sum,
                confirmations: BTreeMap::new(),
                waiters: Vec::new(),
            })),
            AfterInputs::Slot { view, slot } => {
                let unmasker = SlotUnmasker::new(view, slot).map_err(|e| Abort {
                    phase: Phase::Unmask,
                    reason: without_phase(e),
                })?;
                Ok(Round::SlotUnmasking(SlotUnmasking {
                    attempt: self.attempt,
                    slot,
                    cohort: self.u3,
                    revealed: BTreeSet::new(),
                    excluded: BTreeSet::new(),
                    unmasker,
                    sum: self.sum,
                    waiters: Vec::new(),
                }))
            }
        }
    }
}

/// Phase 4: survivors sign the survivor list U3 (consistency check).
#[derive(Debug)]
pub(crate) struct Confirming {
    pub attempt: Attempt,
    session: SessionId,
    cohort: BTreeMap<PartyIndex, Advertisement>,
    u2: BTreeMap<PartyIndex, Dealt>,
    u3: BTreeSet<PartyIndex>,
    /// `SurvivorDigest::of(u3)`: what each confirmation must have signed.
    u3_digest: SurvivorDigest,
    sum: Vec<u64>,
    confirmations: BTreeMap<PartyIndex, pb::Signed>,
    waiters: Vec<Reply<pb::SurvivorSignatures>>,
}

impl Confirming {
    pub fn accept(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        survivors: &SurvivorDigest,
        session: &SessionId,
        signed: pb::Signed,
        reply: Reply<pb::SurvivorSignatures>,
    ) -> bool {
        match admit_confirmation(
            &self.u3,
            &self.u3_digest,
            &self.confirmations,
            from,
            survivors.as_bytes(),
            session.as_bytes(),
            &self.session,
        ) {
            Ok(()) => {
                self.confirmations.insert(from, signed);
                self.waiters.push(reply);
                true
            }
            Err(e) => {
                let _ = reply.send(Err(refuse(roster, e)));
                false
            }
        }
    }

    pub fn is_complete(&self) -> bool {
        self.confirmations.len() == self.u3.len()
    }

    pub fn missing(&self) -> BTreeSet<PartyIndex> {
        self.u3
            .iter()
            .filter(|p| !self.confirmations.contains_key(p))
            .copied()
            .collect()
    }

    pub fn close(self) -> Result<Unmasking, Abort> {
        let have = self.confirmations.len();
        if let Err(a) = check_count(
            &self.attempt.thresholds,
            Phase::ConsistencyCheck,
            have,
            self.u3.len(),
        ) {
            abort_all(self.waiters, &a);
            return Err(a);
        }
        let u4: BTreeSet<PartyIndex> = self.confirmations.keys().copied().collect();
        // A member needs t confirmations of its list, no more (the rest are
        // in the log for the auditor): relaying all of U4 cost each member
        // |U4| signature checks, ~950 rather than ~526 at 1,000 members.
        // The first t in roster order, the same for every member.
        let reply = pb::SurvivorSignatures {
            confirmations: self
                .confirmations
                .into_values()
                .take(self.attempt.thresholds.need())
                .collect(),
        };
        for w in self.waiters {
            let _ = w.send(Ok(reply.clone()));
        }
        let view = RoundView {
            session: self.session,
            thresholds: self.attempt.thresholds,
            cohort: self.cohort,
            u2: self.u2,
            u3: self.u3,
            ring: self.attempt.ring,
        };
        let unmasker = Unmasker::new(view).map_err(|e| Abort {
            phase: Phase::Unmask,
            reason: without_phase(e),
        })?;
        Ok(Unmasking {
            attempt: self.attempt,
            u4,
            revealed: BTreeSet::new(),
            unmasker,
            sum: self.sum,
            waiters: Vec::new(),
        })
    }
}

/// Phase 5: collecting revealed shares, then removing the masks. A reveal
/// holding a share that fails its dealer's commitment is refused, its
/// sender excluded (and named), and the round goes on with the others.
#[derive(Debug)]
pub(crate) struct Unmasking {
    pub attempt: Attempt,
    u4: BTreeSet<PartyIndex>,
    revealed: BTreeSet<PartyIndex>,
    unmasker: Unmasker,
    sum: Vec<u64>,
    waiters: Vec<Reply<pb::Signed>>,
}

impl Unmasking {
    pub fn accept(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        self_mask: Vec<(PartyIndex, Share)>,
        keys: Vec<(PartyIndex, Share)>,
        reply: Reply<pb::Signed>,
    ) -> bool {
        if let Err(e) = admit_reveal(&self.u4, &self.revealed, self.unmasker.excluded(), from) {
            let _ = reply.send(Err(refuse(roster, e)));
            return false;
        }
        match self.unmasker.accept(from, self_mask, keys) {
            Ok(()) => {
                self.revealed.insert(from);
                self.waiters.push(reply);
                true
            }
            Err(source @ SecAggError::BadRevealedShare { .. }) => {
                // Signed evidence of who sent the bad share: logged, so the
                // auditor can name the revealer and check the exclusion.
                tracing::warn!(revealer = %roster.name_of(from), error = %source, "excluded a revealer for a bad share");
                let _ = reply.send(Err(Rejection::Protocol {
                    who: roster.name_of(from),
                    source,
                }));
                true
            }
            Err(source) => {
                let _ = reply.send(Err(Rejection::Protocol {
                    who: roster.name_of(from),
                    source,
                }));
                false
            }
        }
    }

    pub fn is_complete(&self) -> bool {
        self.unmasker.revealers() + self.unmasker.excluded().len() == self.u4.len()
    }

    pub fn close(mut self) -> Result<Outcome, Abort> {
        let contributors = self.unmasker.view().u3.clone();
        match self.unmasker.finish(&mut self.sum) {
            Ok(()) => Ok(Outcome {
                sum: self.sum,
                contributors,
                waiters: self.waiters,
            }),
            Err(e) => {
                let a = Abort {
                    phase: Phase::Unmask,
                    reason: e.to_string(),
                };
                abort_all(self.waiters, &a);
                Err(a)
            }
        }
    }
}

/// An epoch slot's unmask: collecting every member of C's reveal of its
/// shares of the slot's self-mask seeds, then removing the self masks (the
/// pairwise masks cancel in the sum of all of C's inputs). A reveal holding
/// a share that fails its dealer's commitment is refused, its sender
/// excluded (and named), and the round goes on with the others.
#[derive(Debug)]
pub(crate) struct SlotUnmasking {
    pub attempt: Attempt,
    slot: Slot,
    /// The epoch's cohort C: every member's input is in the sum.
    cohort: BTreeSet<PartyIndex>,
    revealed: BTreeSet<PartyIndex>,
    excluded: BTreeSet<PartyIndex>,
    unmasker: SlotUnmasker<Arc<EpochView>>,
    sum: Vec<u64>,
    waiters: Vec<Reply<pb::Signed>>,
}

impl SlotUnmasking {
    /// Takes `from`'s reveal for `slot`. Returns whether it is logged: an
    /// accepted reveal, or one refused for a bad share (signed evidence
    /// against its sender).
    pub fn accept(
        &mut self,
        roster: &Roster,
        from: PartyIndex,
        slot: Slot,
        shares: Vec<(PartyIndex, Share)>,
        reply: Reply<pb::Signed>,
    ) -> bool {
        if let Err(e) = admit_reveal(&self.cohort, &self.revealed, &self.excluded, from) {
            let _ = reply.send(Err(refuse(roster, e)));
            return false;
        }
        if slot != self.slot {
            let _ = reply.send(Err(Rejection::WrongSlot {
                who: roster.name_of(from),
                got: slot,
                slot: self.slot,
            }));
            return false;
        }
        match self.unmasker.accept(from, shares) {
            Ok(()) => {
                self.revealed.insert(from);
                self.waiters.push(reply);
                true
            }
            Err(source @ SecAggError::BadRevealedSlotShare { .. }) => {
                self.excluded.insert(from);
                tracing::warn!(revealer = %roster.name_of(from), error = %source, "excluded a revealer for a bad slot share");
                let _ = reply.send(Err(Rejection::Protocol {
                    who: roster.name_of(from),
                    source,
                }));
                true
            }
            Err(source) => {
                let _ = reply.send(Err(Rejection::Protocol {
                    who: roster.name_of(from),
                    source,
                }));
                false
            }
        }
    }

    pub fn is_complete(&self) -> bool {
        self.revealed.len() + self.excluded.len() == self.cohort.len()
    }

    pub fn missing(&self) -> BTreeSet<PartyIndex> {
        self.cohort
            .iter()
            .filter(|q| !self.revealed.contains(q) && !self.excluded.contains(q))
            .copied()
            .collect()
    }

    /// Removes the slot's self masks: the sum of C's inputs, over C.
    pub fn close(mut self) -> Result<Outcome, Abort> {
        match self.unmasker.finish(self.attempt.ring, &mut self.sum) {
            Ok(()) => Ok(Outcome {
                sum: self.sum,
                contributors: self.cohort,
                waiters: self.waiters,
            }),
            Err(e) => {
                let a = Abort {
                    phase: Phase::Unmask,
                    reason: without_phase(e),
                };
                abort_all(self.waiters, &a);
                Err(a)
            }
        }
    }
}

/// The open phase of the running attempt.
#[derive(Debug)]
pub(crate) enum Round {
    Advertising(Advertising),
    SharingKeys(SharingKeys),
    EpochSharing(EpochSharing),
    CollectingInputs(CollectingInputs),
    Confirming(Confirming),
    Unmasking(Unmasking),
    SlotUnmasking(SlotUnmasking),
}

/// What closing a phase led to.
#[derive(Debug)]
pub(crate) enum Closed {
    Next(Box<Round>),
    Done(Box<(Attempt, Outcome)>),
}

impl Round {
    pub fn attempt(&self) -> &Attempt {
        match self {
            Round::Advertising(p) => &p.attempt,
            Round::SharingKeys(p) => &p.attempt,
            Round::EpochSharing(p) => &p.attempt,
            Round::CollectingInputs(p) => &p.attempt,
            Round::Confirming(p) => &p.attempt,
            Round::Unmasking(p) => &p.attempt,
            Round::SlotUnmasking(p) => &p.attempt,
        }
    }

    /// Whether this is the attempt's first phase, while which its
    /// announcement is still handed to members that poll: key
    /// advertisement, or a slot attempt's masked inputs.
    pub fn is_first_phase(&self) -> bool {
        match self {
            Round::Advertising(_) => true,
            Round::CollectingInputs(p) => matches!(p.attempt.setup, Setup::Slot { .. }),
            _ => false,
        }
    }

    pub fn phase(&self) -> Phase {
        match self {
            Round::Advertising(_) => Phase::AdvertiseKeys,
            Round::SharingKeys(_) | Round::EpochSharing(_) => Phase::ShareKeys,
            Round::CollectingInputs(_) => Phase::MaskedInput,
            Round::Confirming(_) => Phase::ConsistencyCheck,
            Round::Unmasking(_) | Round::SlotUnmasking(_) => Phase::Unmask,
        }
    }

    pub fn is_complete(&self) -> bool {
        match self {
            Round::Advertising(p) => p.is_complete(),
            Round::SharingKeys(p) => p.is_complete(),
            Round::EpochSharing(p) => p.is_complete(),
            Round::CollectingInputs(p) => p.is_complete(),
            Round::Confirming(p) => p.is_complete(),
            Round::Unmasking(p) => p.is_complete(),
            Round::SlotUnmasking(p) => p.is_complete(),
        }
    }

    /// Who the open phase still waits for: [`Round::missing`] less, while
    /// masked inputs are collected, the members whose input was dropped.
    pub fn awaited(&self) -> BTreeSet<PartyIndex> {
        match self {
            Round::CollectingInputs(p) => p
                .missing()
                .into_iter()
                .filter(|q| !p.dropped.contains_key(q))
                .collect(),
            _ => self.missing(),
        }
    }

    /// Who the open phase has accepted a message from so far.
    pub fn cohort(&self) -> BTreeSet<PartyIndex> {
        match self {
            Round::Advertising(p) => p.adverts.keys().copied().collect(),
            Round::SharingKeys(p) => p.shares.keys().copied().collect(),
            Round::EpochSharing(p) => p.shares.keys().copied().collect(),
            Round::CollectingInputs(p) => p.u3.clone(),
            Round::Confirming(p) => p.confirmations.keys().copied().collect(),
            Round::Unmasking(p) => p.revealed.clone(),
            Round::SlotUnmasking(p) => p.revealed.clone(),
        }
    }

    /// Whether closing now would pass the phase's count check. In the
    /// unmask phase, a failure names the revealers excluded for bad shares.
    pub fn check_count(&self, roster: &Roster) -> Result<(), Abort> {
        let a = self.attempt();
        let have = self.cohort().len();
        let excluded = match self {
            Round::Unmasking(p) => p.unmasker.excluded().clone(),
            Round::SlotUnmasking(p) => p.excluded.clone(),
            _ => BTreeSet::new(),
        };
        match self {
            Round::CollectingInputs(p) => p.check_close(roster),
            Round::EpochSharing(p) => p.check_close(roster),
            _ => check_count(
                &a.thresholds,
                self.phase(),
                have,
                have + self.missing().len() + excluded.len(),
            ),
        }
        .map_err(|mut abort| {
            if !excluded.is_empty() {
                let names: Vec<String> = excluded.iter().map(|p| roster.name_of(*p)).collect();
                abort.reason.push_str(&format!(
                    "; excluded for revealing bad shares: {}",
                    names.join(", ")
                ));
            }
            abort
        })
    }

    /// Who the open phase still waits for.
    pub fn missing(&self) -> BTreeSet<PartyIndex> {
        match self {
            Round::Advertising(p) => p.missing(),
            Round::SharingKeys(p) => p.missing(),
            Round::EpochSharing(p) => p.missing(),
            Round::CollectingInputs(p) => p.missing(),
            Round::Confirming(p) => p.missing(),
            Round::SlotUnmasking(p) => p.missing(),
            Round::Unmasking(p) => {
                p.u4.iter()
                    .filter(|q| !p.revealed.contains(q) && !p.unmasker.excluded().contains(q))
                    .copied()
                    .collect()
            }
        }
    }

    /// Closes the open phase.
    pub fn close(self, roster: &Roster) -> Result<Closed, Abort> {
        Ok(match self {
            Round::Advertising(p) => Closed::Next(Box::new(p.close()?)),
            Round::SharingKeys(p) => Closed::Next(Box::new(Round::CollectingInputs(p.close()?))),
            Round::EpochSharing(p) => {
                Closed::Next(Box::new(Round::CollectingInputs(p.close(roster)?)))
            }
            Round::CollectingInputs(p) => Closed::Next(Box::new(p.close(roster)?)),
            Round::Confirming(p) => Closed::Next(Box::new(Round::Unmasking(p.close()?))),
            Round::Unmasking(p) => {
                let attempt = p.attempt.clone();
                Closed::Done(Box::new((attempt, p.close()?)))
            }
            Round::SlotUnmasking(p) => {
                let attempt = p.attempt.clone();
                Closed::Done(Box::new((attempt, p.close()?)))
            }
        })
    }
}

#[cfg(test)]
#[path = "round_epoch_tests.rs"]
mod epoch_tests;
