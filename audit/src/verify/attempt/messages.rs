//! The participant messages of one attempt: each must be well formed and
//! pass the same admission rules the coordinator is bound by
//! (`fedcredit_crypto::secagg::admission`: from the cohort of the phase
//! before, once; shares addressed to exactly the dealer's neighbours in
//! the graph derived from the session id (the other members of U1 for the
//! complete graph);
//! masked inputs of the round's length; survivor lists equal to U3);
//! masked inputs are summed, and reveals go through the same
//! `Unmasker::accept` rules. In an epoch attempt, epoch shares pass
//! `admit_epoch_shares`, masked inputs come from the epoch's cohort C
//! (chunks bound to the slot's session) and slot reveals go through
//! `SlotUnmasker::accept`.

use std::collections::BTreeSet;

use fedcredit_crypto::secagg::admission::{
    AdmissionError, admit_advert, admit_confirmation, admit_epoch_shares, admit_masked_chunk,
    admit_masked_input, admit_reveal, admit_shares,
};
use fedcredit_crypto::secagg::epoch::slot_session;
use fedcredit_crypto::secagg::{Advertisement, PartyIndex, Phase, SecAggError, SurvivorDigest};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::codec::Codec;
use fedcredit_proto::epoch::{EpochDealtShares, reveal_from_pb};
use fedcredit_proto::roster::{Member, Roster};
use fedcredit_proto::shares::DealtShares;
use fedcredit_proto::v1 as pb;
use fedcredit_proto::v1::message::Body;
use fedcredit_proto::{chunks, words};

use super::{AttemptState, Stage, body_name, body_phase, names};
use crate::report::{Check, Failure};
use crate::verify::Context;

/// A broken admission rule as an audit failure of record `seq`: `who`
/// sent a `kind` message the coordinator should have refused (in an
/// attempt of an epoch if `epoch`).
fn refused(
    roster: &Roster,
    seq: u64,
    who: &str,
    kind: &str,
    epoch: bool,
    e: AdmissionError,
) -> Failure {
    let (check, reason) = match &e {
        AdmissionError::NotInCohort { phase, .. } => (
            Check::Cohort,
            format!(
                "{who} sent a {kind} message but is not in {}",
                match phase {
                    Phase::AdvertiseKeys => "the job's cohort",
                    Phase::ShareKeys => "U1 (advertised keys)",
                    Phase::MaskedInput | Phase::Unmask if epoch =>
                        "the epoch's cohort C (dealt at its setup)",
                    Phase::MaskedInput => "U2 (sent shares)",
                    Phase::ConsistencyCheck => "U3 (sent a masked input)",
                    Phase::Unmask => "U4 (confirmed the survivors)",
                }
            ),
        ),
        AdmissionError::Duplicate { .. } | AdmissionError::Excluded { .. } => {
            (Check::Cohort, format!("{who} sent a second {kind} message"))
        }
        AdmissionError::ShareToSelf { .. } => (
            Check::Shares,
            format!("{who}'s share ciphertexts: one is addressed to itself"),
        ),
        AdmissionError::ShareNotForU1 { recipient, .. } => (
            Check::Shares,
            format!(
                "{who}'s share ciphertexts: one is addressed to {}, who is not in U1",
                roster.name_of(*recipient)
            ),
        ),
        AdmissionError::ShareNotForNeighbour { recipient, .. } => (
            Check::Shares,
            format!(
                "{who}'s share ciphertexts: one is addressed to {}, who is not its neighbour in the round's graph",
                roster.name_of(*recipient)
            ),
        ),
        AdmissionError::ShareTwice { recipient, .. } => (
            Check::Shares,
            format!(
                "{who}'s share ciphertexts: two are addressed to {}",
                roster.name_of(*recipient)
            ),
        ),
        AdmissionError::SharesMissing {
            got,
            expected,
            missing,
            ..
        } => (
            Check::Shares,
            format!(
                "{who} sent {got} share ciphertexts, one is needed for each of its {expected} neighbours in U1 (none for {})",
                names(roster, missing)
            ),
        ),
        AdmissionError::CommitmentsNotForU1 { .. }
        | AdmissionError::EpochCommitmentsMalformed { .. } => {
            (Check::Shares, format!("{who}'s share commitments: {e}"))
        }
        AdmissionError::WrongLength { expected, got, .. } => (
            Check::Message,
            format!("{who}'s masked input: {got} words, the round aggregates {expected}"),
        ),
        AdmissionError::PartialRingValue { words, limbs, .. } => (
            Check::Message,
            format!(
                "{who}'s masked input: {words} words is not a whole number of ring values of {limbs} u64 limbs each"
            ),
        ),
        AdmissionError::SurvivorListMismatch { .. } => (
            Check::Survivors,
            format!("{who} signed a survivor list other than U3 (its digest differs)"),
        ),
        AdmissionError::ChunkOutOfOrder { .. }
        | AdmissionError::ChunkOutOfBounds { .. }
        | AdmissionError::ChunkWrongSession { .. } => {
            (Check::Message, format!("{who}'s masked-input chunk: {e}"))
        }
        _ => (Check::Message, format!("{who}'s {kind} message: {e}")),
    };
    Failure::new(seq, check, reason)
}

impl AttemptState {
    /// A participant message of this attempt, already verified under its
    /// sender's consortium key and bound to the job.
    pub fn participant(
        &mut self,
        ctx: &Context<'_>,
        seq: u64,
        message: &pb::Message,
        sender: &Member,
    ) -> Result<(), Failure> {
        let roster = &ctx.consortium.roster;
        let who = sender.id.as_str();
        let kind = body_name(message.body.as_ref());
        self.check_binding(
            seq,
            &format!("{who}'s {kind} message"),
            message.round,
            message.attempt,
        )?;
        let Some(body) = &message.body else {
            return Err(Failure::new(
                seq,
                Check::Phase,
                format!("{who}'s message has no body"),
            ));
        };
        let open = match self.stage {
            Stage::Open(p) => p,
            Stage::Closed => {
                return Err(Failure::new(
                    seq,
                    Check::Phase,
                    format!(
                        "a {kind} message from {who} after the unmask phase of {} closed",
                        self.at()
                    ),
                ));
            }
        };
        // Each protocol's own bodies only (before the phase, which would
        // name a less telling reason).
        let foreign = match body {
            Body::Shares(_) | Body::Consistency(_) | Body::Unmask(_) => self.is_epoch(),
            Body::EpochShares(_) | Body::SlotReveal(_) => !self.is_epoch(),
            _ => false,
        };
        if foreign {
            let protocol = if self.is_epoch() {
                "an epoch (its setup, then masked input and slot reveal only)"
            } else {
                "the per-round protocol"
            };
            return Err(Failure::new(
                seq,
                Check::Phase,
                format!("a {kind} message from {who} in an attempt of {protocol}"),
            ));
        }
        if body_phase(body) != Some(open) {
            return Err(Failure::new(
                seq,
                Check::Phase,
                format!("a {kind} message from {who} while the {open} phase is open"),
            ));
        }
        let me = sender.index;
        let epoch = self.is_epoch();
        let refuse = |e| refused(roster, seq, who, kind, epoch, e);
        let malformed = |what: &str, e: String| {
            Failure::new(seq, Check::Message, format!("{who}'s {what}: {e}"))
        };
        match body {
            Body::Advertise(k) => {
                admit_advert(&self.u1, None, me).map_err(refuse)?;
                let ad = Advertisement::try_from(k)
                    .map_err(|e| malformed("key advertisement", e.to_string()))?;
                self.u1.insert(me, ad);
            }
            Body::Shares(s) => {
                // Commitment and ciphertext lengths and recipient ids, once
                // for every role.
                let DealtShares { dealt, ciphertexts } = DealtShares::from_pb(roster, me, s)
                    .map_err(|e| malformed("shares", e.to_string()))?;
                let graph = self.graph.as_ref().ok_or_else(|| {
                    Failure::new(seq, Check::Phase, "shares before keys were advertised")
                })?;
                admit_shares(
                    &self.u1,
                    graph,
                    &self.u2,
                    me,
                    ciphertexts.iter().map(|(to, _)| *to),
                    &dealt,
                )
                .map_err(refuse)?;
                self.u2.insert(me, dealt);
            }
            Body::MaskedChunk(c) => {
                let ring = self.codec.as_ref().map(Codec::ring).ok_or_else(|| {
                    malformed("masked-input chunk", "no codec was announced".into())
                })?;
                let header = chunks::header(c)
                    .map_err(|e| malformed("masked-input chunk", e.to_string()))?;
                let session = self.chunk_session().ok_or_else(|| {
                    Failure::new(
                        seq,
                        Check::Phase,
                        "a masked-input chunk before keys were advertised",
                    )
                })?;
                let progress = admit_masked_chunk(
                    &self.masked_senders(),
                    &self.u3,
                    self.staged.get(&me).map(|(p, _)| p),
                    me,
                    &header,
                    &c.session_id,
                    &session,
                    self.words,
                    ring,
                )
                .map_err(refuse)?;
                let staged = self
                    .staged
                    .entry(me)
                    .or_insert_with(|| (progress, Vec::new()));
                staged.0 = progress;
                staged.1.push((header.offset, c.values.clone()));
                if !progress.is_complete() {
                    return Ok(());
                }
                let pieces = self
                    .staged
                    .remove(&me)
                    .map(|(_, pieces)| pieces)
                    .unwrap_or_default();
                if self.masked.is_empty() {
                    self.masked = vec![0; self.words];
                }
                for (offset, values) in pieces {
                    let end = offset + values.len() / 8;
                    words::add_le_bytes(
                        "masked-input chunk",
                        ring,
                        &mut self.masked[offset..end],
                        &values,
                    )
                    .map_err(|e| malformed("masked-input chunk", e.to_string()))?;
                }
                self.u3.insert(me);
            }
            Body::MaskedInput(m) => {
                // Summed as elements of the codec's ring, as the coordinator does.
                let ring =
                    self.codec.as_ref().map(Codec::ring).ok_or_else(|| {
                        malformed("masked input", "no codec was announced".into())
                    })?;
                if self.staged.contains_key(&me) {
                    return Err(malformed(
                        "masked input",
                        "a whole masked input while its chunked input was under way".into(),
                    ));
                }
                admit_masked_input(
                    &self.masked_senders(),
                    &self.u3,
                    me,
                    m.values.len() / 8,
                    self.words,
                    ring,
                )
                .map_err(refuse)?;
                // Refuses a trailing partial word.
                let values = words::from_bytes("masked input", &m.values)
                    .map_err(|e| malformed("masked input", e.to_string()))?;
                if self.masked.is_empty() {
                    self.masked = values;
                } else {
                    ring.add_assign(&mut self.masked, &values)
                        .map_err(|e| malformed("masked input", e.to_string()))?;
                }
                self.u3.insert(me);
            }
            Body::Consistency(list) => {
                let wrong_session = || {
                    Failure::new(
                        seq,
                        Check::Survivors,
                        format!(
                            "{who} signed its survivor list for session {}, but the advertised keys give session {}",
                            hex::encode(&list.session_id),
                            self.session.map_or_else(|| "none".into(), |s| s.to_hex())
                        ),
                    )
                };
                let session = self.session.ok_or_else(wrong_session)?;
                match admit_confirmation(
                    &self.u3,
                    &SurvivorDigest::of(&self.u3),
                    &self.u4,
                    me,
                    &list.survivors_digest,
                    &list.session_id,
                    &session,
                ) {
                    Ok(()) => {}
                    Err(AdmissionError::WrongSession { .. }) => return Err(wrong_session()),
                    Err(e) => return Err(refuse(e)),
                }
                self.u4.insert(me);
            }
            Body::Unmask(u) => {
                admit_reveal(&self.u4, &self.u5, &self.excluded(), me).map_err(refuse)?;
                let parse = |list: &[pb::RevealedShare], kind: &str| {
                    list.iter()
                        .map(|s| {
                            let owner = roster.get(&s.owner).ok_or_else(|| {
                                Failure::new(
                                    seq,
                                    Check::Unmask,
                                    format!(
                                        "{who} revealed a {kind} share of {:?}, not a member",
                                        s.owner
                                    ),
                                )
                            })?;
                            let share = Share::from_bytes(&s.share).map_err(|e| {
                                Failure::new(
                                    seq,
                                    Check::Unmask,
                                    format!("{who}'s {kind} share of {}: {e}", owner.id),
                                )
                            })?;
                            Ok((owner.index, share))
                        })
                        .collect::<Result<Vec<_>, Failure>>()
                };
                let self_mask = parse(&u.self_mask_shares, "self-mask")?;
                let keys = parse(&u.key_shares, "key")?;
                let unmasker = self.unmasker.as_mut().ok_or_else(|| {
                    Failure::new(seq, Check::Phase, "the unmask phase has no round view")
                })?;
                match unmasker.accept(me, self_mask, keys) {
                    Ok(()) => {
                        self.u5.insert(me);
                    }
                    // Signed by its sender and provably bad: the coordinator
                    // was right to log it and leave its sender out.
                    Err(SecAggError::BadRevealedShare {
                        revealer,
                        owner,
                        kind,
                    }) => self
                        .bad_reveals
                        .push((seq, revealer, owner, kind.to_string())),
                    Err(e) => {
                        return Err(Failure::new(
                            seq,
                            Check::Unmask,
                            format!("{who}'s revealed shares break the unmasking rules: {e}"),
                        ));
                    }
                }
            }
            Body::Poll(_) | Body::Leave(_) | Body::FetchOutcome(_) => {
                return Err(Failure::new(
                    seq,
                    Check::Phase,
                    format!("a {kind} message is never part of a phase"),
                ));
            }
            Body::EpochShares(m) => {
                let u1 = &self.u1;
                let e = self
                    .epoch
                    .as_mut()
                    .filter(|e| e.setup.is_some())
                    .ok_or_else(|| {
                        Failure::new(
                            seq,
                            Check::Phase,
                            format!("epoch shares from {who} in an attempt that sets up no epoch"),
                        )
                    })?;
                // Commitment and ciphertext lengths and recipient ids, with
                // the consortium file's slot count.
                let EpochDealtShares {
                    record,
                    ciphertexts,
                } = EpochDealtShares::from_pb(roster, me, e.slots, m)
                    .map_err(|err| malformed("epoch shares", err.to_string()))?;
                admit_epoch_shares(
                    u1,
                    &e.dealt,
                    me,
                    ciphertexts.iter().map(|(to, _)| *to),
                    &record,
                    e.slots,
                )
                .map_err(refuse)?;
                e.dealt.insert(me, record);
            }
            Body::SlotReveal(r) => self.slot_reveal(ctx, seq, who, me, r)?,
        }
        Ok(())
    }

    /// Who may send a masked input: U2, or in an epoch attempt C.
    fn masked_senders(&self) -> BTreeSet<PartyIndex> {
        match &self.epoch {
            Some(_) => self.epoch_cohort().cloned().unwrap_or_default(),
            None => self.u2.keys().copied().collect(),
        }
    }

    /// The session masked-input chunks are bound to: the round's, or the
    /// slot's session of the epoch.
    fn chunk_session(&self) -> Option<fedcredit_crypto::kx::SessionId> {
        match &self.epoch {
            Some(e) => e.epoch.as_ref().map(|held| slot_session(&held.id, e.slot)),
            None => self.session,
        }
    }

    /// A slot reveal: from C, once, not excluded, for this attempt's slot,
    /// through `SlotUnmasker::accept`. A share that fails its dealer's
    /// commitment excludes its sender and is kept as evidence.
    fn slot_reveal(
        &mut self,
        ctx: &Context<'_>,
        seq: u64,
        who: &str,
        me: PartyIndex,
        r: &pb::SlotReveal,
    ) -> Result<(), Failure> {
        let roster = &ctx.consortium.roster;
        let excluded = self.excluded();
        let cohort = self.epoch_cohort().cloned().unwrap_or_default();
        admit_reveal(&cohort, &self.u5, &excluded, me)
            .map_err(|e| refused(roster, seq, who, "slot unmask", true, e))?;
        let (slot, shares) = reveal_from_pb(roster, r)
            .map_err(|e| Failure::new(seq, Check::Unmask, format!("{who}'s slot reveal: {e}")))?;
        let Some(e) = self.epoch.as_mut() else {
            return Err(Failure::new(
                seq,
                Check::Phase,
                format!("a slot reveal from {who} outside an epoch"),
            ));
        };
        if slot != e.slot {
            return Err(Failure::new(
                seq,
                Check::Binding,
                format!(
                    "{who}'s slot reveal is for slot {slot}, but this attempt uses slot {}",
                    e.slot
                ),
            ));
        }
        let unmasker = e
            .unmasker
            .as_mut()
            .ok_or_else(|| Failure::new(seq, Check::Phase, "the unmask phase has no epoch view"))?;
        match unmasker.accept(me, shares) {
            Ok(()) => {
                self.u5.insert(me);
            }
            // Signed by its sender and provably bad: the coordinator was
            // right to log it and leave its sender out.
            Err(SecAggError::BadRevealedSlotShare {
                revealer,
                owner,
                slot,
            }) => self
                .bad_reveals
                .push((seq, revealer, owner, format!("slot {slot} self-mask"))),
            Err(err) => {
                return Err(Failure::new(
                    seq,
                    Check::Unmask,
                    format!("{who}'s revealed slot shares break the unmasking rules: {err}"),
                ));
            }
        }
        Ok(())
    }
}
