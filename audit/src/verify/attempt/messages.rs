//! The participant messages of one attempt: each must come from the
//! cohort of the phase before, once, and be well formed; shares must be
//! addressed to exactly the other members of U1, survivor lists must equal
//! U3, masked inputs are summed, and reveals go through the same
//! `Unmasker::accept` rules the coordinator is bound by.

use std::collections::BTreeSet;

use fedcredit_crypto::kx::AgreementPublic;
use fedcredit_crypto::secagg::{Advertisement, PartyIndex, SecAggError};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::codec::Codec;
use fedcredit_proto::roster::Member;
use fedcredit_proto::shares::DealtShares;
use fedcredit_proto::v1 as pb;
use fedcredit_proto::v1::message::Body;
use fedcredit_proto::words;

use super::{AttemptState, Stage, body_name, body_phase, names, parse_ids};
use crate::report::{Check, Failure};
use crate::verify::Context;

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
        let outside = |set: &str| {
            Failure::new(
                seq,
                Check::Cohort,
                format!("{who} sent a {kind} message but is not in {set}"),
            )
        };
        let twice = || {
            Failure::new(
                seq,
                Check::Cohort,
                format!("{who} sent a second {kind} message"),
            )
        };
        let malformed = |what: &str, e: String| {
            Failure::new(seq, Check::Message, format!("{who}'s {what}: {e}"))
        };
        match body {
            Body::Advertise(k) => {
                if self.u1.contains_key(&me) {
                    return Err(twice());
                }
                let ad = Advertisement {
                    share_enc: AgreementPublic::from_bytes(&k.share_enc_public)
                        .map_err(|e| malformed("share-encryption key", e.to_string()))?,
                    mask_agree: AgreementPublic::from_bytes(&k.mask_agree_public)
                        .map_err(|e| malformed("mask-agreement key", e.to_string()))?,
                };
                self.u1.insert(me, ad);
            }
            Body::Shares(s) => {
                if !self.u1.contains_key(&me) {
                    return Err(outside("U1 (advertised keys)"));
                }
                if self.u2.contains_key(&me) {
                    return Err(twice());
                }
                // Commitment and ciphertext lengths, once for every role.
                let DealtShares { dealt, .. } = DealtShares::from_pb(roster, me, s)
                    .map_err(|e| malformed("shares", e.to_string()))?;
                dealt.check(me, &self.u1).map_err(|e| {
                    Failure::new(
                        seq,
                        Check::Shares,
                        format!("{who}'s share commitments: {e}"),
                    )
                })?;
                let mut to = BTreeSet::new();
                for c in &s.shares {
                    let shares = |why: String| {
                        Failure::new(
                            seq,
                            Check::Shares,
                            format!("{who}'s share ciphertexts: {why}"),
                        )
                    };
                    let peer = roster.get(&c.peer).ok_or_else(|| {
                        shares(format!("one is addressed to {:?}, not a member", c.peer))
                    })?;
                    if peer.index == me {
                        return Err(shares("one is addressed to itself".into()));
                    }
                    if !self.u1.contains_key(&peer.index) {
                        return Err(shares(format!(
                            "one is addressed to {}, who is not in U1",
                            peer.id
                        )));
                    }
                    if !to.insert(peer.index) {
                        return Err(shares(format!("two are addressed to {}", peer.id)));
                    }
                }
                let others: BTreeSet<PartyIndex> =
                    self.u1.keys().filter(|p| **p != me).copied().collect();
                if to != others {
                    let missing: BTreeSet<PartyIndex> = others.difference(&to).copied().collect();
                    return Err(Failure::new(
                        seq,
                        Check::Shares,
                        format!(
                            "{who} sent {} share ciphertexts, one is needed for each of the {} other members of U1 (none for {})",
                            to.len(),
                            others.len(),
                            names(roster, &missing)
                        ),
                    ));
                }
                self.u2.insert(me, dealt);
            }
            Body::MaskedInput(m) => {
                if !self.u2.contains_key(&me) {
                    return Err(outside("U2 (sent shares)"));
                }
                if self.u3.contains(&me) {
                    return Err(twice());
                }
                let values = words::from_bytes("masked input", &m.values)
                    .map_err(|e| malformed("masked input", e.to_string()))?;
                if values.len() != self.words {
                    return Err(malformed(
                        "masked input",
                        format!(
                            "{} words, the round aggregates {}",
                            values.len(),
                            self.words
                        ),
                    ));
                }
                // Summed as elements of the codec's ring, as the coordinator does.
                let ring =
                    self.codec.as_ref().map(Codec::ring).ok_or_else(|| {
                        malformed("masked input", "no codec was announced".into())
                    })?;
                if self.masked.is_empty() {
                    self.masked = values;
                } else {
                    ring.add_assign(&mut self.masked, &values)
                        .map_err(|e| malformed("masked input", e.to_string()))?;
                }
                self.u3.insert(me);
            }
            Body::Consistency(list) => {
                if !self.u3.contains(&me) {
                    return Err(outside("U3 (sent a masked input)"));
                }
                if self.u4.contains(&me) {
                    return Err(twice());
                }
                let signed = parse_ids(
                    roster,
                    &list.survivors,
                    seq,
                    Check::Survivors,
                    &format!("{who}'s survivor list"),
                )?;
                if Some(list.session_id.as_ref())
                    != self.session.as_ref().map(|s| &s.as_bytes()[..])
                {
                    return Err(Failure::new(
                        seq,
                        Check::Survivors,
                        format!(
                            "{who} signed its survivor list for session {}, but the advertised keys give session {}",
                            hex::encode(&list.session_id),
                            self.session.map_or_else(|| "none".into(), |s| s.to_hex())
                        ),
                    ));
                }
                if signed != self.u3 {
                    return Err(Failure::new(
                        seq,
                        Check::Survivors,
                        format!(
                            "{who} signed the survivor list [{}], but U3 is [{}]",
                            names(roster, &signed),
                            names(roster, &self.u3)
                        ),
                    ));
                }
                self.u4.insert(me);
            }
            Body::Unmask(u) => {
                if !self.u4.contains(&me) {
                    return Err(outside("U4 (confirmed the survivors)"));
                }
                if self.u5.contains(&me) || self.excluded().contains(&me) {
                    return Err(twice());
                }
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
        }
        Ok(())
    }
}
