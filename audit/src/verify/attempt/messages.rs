//! The participant messages of one attempt: each must be well formed and
//! pass the same admission rules the coordinator is bound by
//! (`fedcredit_crypto::secagg::admission`: from the cohort of the phase
//! before, once; shares addressed to exactly the dealer's neighbours in
//! the graph derived from the session id (the other members of U1 for the
//! complete graph);
//! masked inputs of the round's length; survivor lists equal to U3);
//! masked inputs are summed, and reveals go through the same
//! `Unmasker::accept` rules.

use fedcredit_crypto::secagg::admission::{
    AdmissionError, admit_advert, admit_confirmation, admit_masked_chunk, admit_masked_input,
    admit_reveal, admit_shares,
};
use fedcredit_crypto::secagg::{Advertisement, Phase, SecAggError};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::codec::Codec;
use fedcredit_proto::roster::{Member, Roster};
use fedcredit_proto::shares::DealtShares;
use fedcredit_proto::v1 as pb;
use fedcredit_proto::v1::message::Body;
use fedcredit_proto::{chunks, words};

use super::{AttemptState, Stage, body_name, body_phase, names, parse_ids};
use crate::report::{Check, Failure};
use crate::verify::Context;

/// A broken admission rule as an audit failure of record `seq`: `who`
/// sent a `kind` message the coordinator should have refused.
fn refused(roster: &Roster, seq: u64, who: &str, kind: &str, e: AdmissionError) -> Failure {
    let (check, reason) = match &e {
        AdmissionError::NotInCohort { phase, .. } => (
            Check::Cohort,
            format!(
                "{who} sent a {kind} message but is not in {}",
                match phase {
                    Phase::AdvertiseKeys => "the job's cohort",
                    Phase::ShareKeys => "U1 (advertised keys)",
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
        AdmissionError::CommitmentsNotForU1 { .. } => {
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
        AdmissionError::SurvivorListMismatch { signed, u3, .. } => (
            Check::Survivors,
            format!(
                "{who} signed the survivor list [{}], but U3 is [{}]",
                names(roster, signed),
                names(roster, u3)
            ),
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
        if body_phase(body) != Some(open) {
            return Err(Failure::new(
                seq,
                Check::Phase,
                format!("a {kind} message from {who} while the {open} phase is open"),
            ));
        }
        let me = sender.index;
        let refuse = |e| refused(roster, seq, who, kind, e);
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
                let session = self.session.ok_or_else(|| {
                    Failure::new(
                        seq,
                        Check::Phase,
                        "a masked-input chunk before keys were advertised",
                    )
                })?;
                let progress = admit_masked_chunk(
                    &self.u2,
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
                admit_masked_input(&self.u2, &self.u3, me, m.values.len() / 8, self.words, ring)
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
                let signed = parse_ids(
                    roster,
                    &list.survivors,
                    seq,
                    Check::Survivors,
                    &format!("{who}'s survivor list"),
                )?;
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
                    &self.u4,
                    me,
                    &signed,
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
                    }) => self.bad_reveals.push((seq, revealer, owner, kind)),
                    Err(e) => {
                        return Err(Failure::new(
                            seq,
                            Check::Unmask,
                            format!("{who}'s revealed shares break the unmasking rules: {e}"),
                        ));
                    }
                }
            }
            Body::Poll(_) | Body::Leave(_) => {
                return Err(Failure::new(
                    seq,
                    Check::Phase,
                    format!("a {kind} message is never part of a phase"),
                ));
            }
            // EPOCH-TODO(audit): replayed by the epoch verifier.
            Body::EpochShares(_) | Body::SlotReveal(_) => {
                return Err(Failure::new(
                    seq,
                    Check::Phase,
                    format!("a {kind} message in an attempt of the per-round protocol"),
                ));
            }
        }
        Ok(())
    }
}
