//! An epoch's setup shares and slot reveals at the edge: a dealer's signed
//! `EpochShares` and a member's `SlotReveal` to and from the domain types of
//! `fedcredit_crypto::secagg::epoch`, once for the coordinator, the
//! participants and the auditor.

use std::collections::BTreeMap;

use fedcredit_crypto::secagg::PartyIndex;
use fedcredit_crypto::secagg::epoch::{
    DealerRecord, EpochDealt, EpochSharesOut, Slot, Slots, ciphertext_len, recipient_digest,
};
use fedcredit_crypto::shamir::Share;
use prost::bytes::Bytes;

use crate::WireError;
use crate::roster::Roster;
use crate::v1 as pb;

/// A dealer's epoch setup message, decoded: the signed commitments with the
/// per-slot lists behind them, and its ciphertexts by recipient in message
/// order (the callers check that they go to exactly the other members of
/// the cohort).
#[derive(Debug)]
pub struct EpochDealtShares {
    /// The commitments (the per-recipient digests are computed here from
    /// the signed lists, so they are as signed as the lists).
    pub record: DealerRecord,
    /// (recipient, ciphertext), each exactly [`ciphertext_len`] bytes.
    pub ciphertexts: Vec<(PartyIndex, Bytes)>,
}

fn field(what: &'static str, problem: String) -> WireError {
    WireError::Field { what, problem }
}

fn commitments(
    what: &'static str,
    list: &[Bytes],
    slots: Slots,
) -> Result<Vec<[u8; 32]>, WireError> {
    if list.len() != slots.get() as usize {
        return Err(field(
            what,
            format!(
                "{} commitments, the epoch has {} slots",
                list.len(),
                slots.get()
            ),
        ));
    }
    list.iter()
        .map(|b| {
            b.as_ref()
                .try_into()
                .map_err(|_| field(what, format!("{} bytes, expected 32", b.len())))
        })
        .collect()
}

impl EpochDealtShares {
    /// Decodes `m`, sent by `dealer` for an epoch of `slots` slots: one
    /// 32-byte commitment per slot everywhere, each recipient named once,
    /// each ciphertext of the exact length. Whether the recipients are
    /// exactly the cohort is for the caller
    /// ([`DealerRecord::check`]), which knows the cohort.
    pub fn from_pb(
        roster: &Roster,
        dealer: PartyIndex,
        slots: Slots,
        m: &pb::EpochShares,
    ) -> Result<Self, WireError> {
        let seeds = commitments("seed_commitments", &m.seed_commitments, slots)?;
        let mut lists = BTreeMap::new();
        for c in &m.share_commitments {
            let to = roster.member(&c.recipient)?.index;
            let list = commitments("share_commitments.slots", &c.slots, slots)?;
            if lists.insert(to, list).is_some() {
                return Err(field(
                    "share_commitments",
                    format!("{} is named twice", c.recipient),
                ));
            }
        }
        let shares = lists
            .iter()
            .map(|(to, list)| (*to, recipient_digest(list)))
            .collect();
        let expected = ciphertext_len(slots);
        let mut ciphertexts = Vec::with_capacity(m.shares.len());
        for c in &m.shares {
            let to = roster.member(&c.peer)?.index;
            if c.ciphertext.len() != expected {
                return Err(field(
                    "shares.ciphertext",
                    format!(
                        "the one for {} from {} is {} bytes, expected {expected}",
                        c.peer,
                        roster.name_of(dealer),
                        c.ciphertext.len()
                    ),
                ));
            }
            ciphertexts.push((to, c.ciphertext.clone()));
        }
        Ok(Self {
            record: DealerRecord {
                dealt: EpochDealt { seeds, shares },
                commitments: lists,
            },
            ciphertexts,
        })
    }
}

/// The `EpochShares` message of a dealer's setup output.
pub fn to_pb(roster: &Roster, out: EpochSharesOut) -> pb::EpochShares {
    let id = |p: PartyIndex| roster.name_of(p);
    let bytes = |list: &[[u8; 32]]| list.iter().map(|c| Bytes::copy_from_slice(c)).collect();
    pb::EpochShares {
        shares: out
            .ciphertexts
            .into_iter()
            .map(|(to, ct)| pb::ShareCiphertext {
                peer: id(to),
                ciphertext: ct.into(),
            })
            .collect(),
        seed_commitments: bytes(&out.record.dealt.seeds),
        share_commitments: out
            .record
            .commitments
            .iter()
            .map(|(to, list)| pb::EpochShareCommitments {
                recipient: id(*to),
                slots: bytes(list),
            })
            .collect(),
    }
}

/// A decoded `SlotReveal`: the slot and (owner, share) pairs, each owner a
/// member, each share well formed (whether they are the right ones is for
/// `SlotUnmasker::accept`).
pub fn reveal_from_pb(
    roster: &Roster,
    m: &pb::SlotReveal,
) -> Result<(Slot, Vec<(PartyIndex, Share)>), WireError> {
    let mut shares = Vec::with_capacity(m.shares.len());
    for r in &m.shares {
        let owner = roster.member(&r.owner)?.index;
        let share = Share::from_bytes(&r.share)
            .map_err(|e| field("slot_reveal.shares.share", format!("{}: {e}", r.owner)))?;
        shares.push((owner, share));
    }
    Ok((m.slot, shares))
}

/// The `SlotReveal` message of a member's reveal.
pub fn reveal_to_pb(
    roster: &Roster,
    slot: Slot,
    shares: Vec<(PartyIndex, Share)>,
) -> pb::SlotReveal {
    pb::SlotReveal {
        slot,
        shares: shares
            .into_iter()
            .map(|(owner, s)| pb::RevealedShare {
                owner: roster.name_of(owner),
                share: s.to_bytes().to_vec().into(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_crypto::kx::SessionId;
    use fedcredit_crypto::secagg::Thresholds;
    use fedcredit_crypto::secagg::epoch::EpochKeys;
    use rand_core::OsRng;

    fn roster(n: u8) -> Roster {
        use crate::roster::ParticipantId;
        use fedcredit_crypto::identity::IdentityKey;
        let members = (1..=n)
            .map(|i| {
                let id = ParticipantId::new(&format!("bank-{i}")).expect("id");
                (id, IdentityKey::from_secret_bytes(&[i; 32]).public())
            })
            .collect();
        Roster::new(members, IdentityKey::from_secret_bytes(&[99; 32]).public()).expect("roster")
    }

    #[test]
    fn setup_shares_round_trip_and_bad_lengths_are_named() {
        let r = roster(3);
        let th = Thresholds::new(3, 3, 1, 2).expect("valid");
        let slots = Slots::new(4).expect("valid");
        let keys: Vec<EpochKeys> = (1..=3)
            .map(|i| EpochKeys::new(PartyIndex::new(i).expect("valid"), th, slots, &mut OsRng))
            .collect();
        let cohort = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    PartyIndex::new(i as u32 + 1).expect("valid"),
                    k.advertisement(),
                )
            })
            .collect();
        let mut keys = keys.into_iter();
        let first = keys.next().expect("valid");
        let (_, out) = first
            .share_keys(SessionId([7; 32]), cohort, &mut OsRng)
            .expect("valid");
        let record = out.record.clone();
        let sent: Vec<_> = out.ciphertexts.iter().map(|(p, _)| *p).collect();
        let m = to_pb(&r, out);
        let back = EpochDealtShares::from_pb(&r, PartyIndex::new(1).expect("valid"), slots, &m)
            .expect("valid");
        assert_eq!(back.record, record);
        assert_eq!(
            back.ciphertexts.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            sent
        );

        let mut short = m.clone();
        short.seed_commitments.pop();
        let e = EpochDealtShares::from_pb(&r, PartyIndex::new(1).expect("valid"), slots, &short)
            .expect_err("refused");
        assert!(e.to_string().contains("seed_commitments"), "{e}");
        let mut cut = m.clone();
        cut.shares[0].ciphertext = cut.shares[0].ciphertext.slice(1..);
        let e = EpochDealtShares::from_pb(&r, PartyIndex::new(1).expect("valid"), slots, &cut)
            .expect_err("refused");
        assert!(e.to_string().contains("shares.ciphertext"), "{e}");
        let mut twice = m;
        let again = twice.share_commitments[0].clone();
        twice.share_commitments.push(again);
        let e = EpochDealtShares::from_pb(&r, PartyIndex::new(1).expect("valid"), slots, &twice)
            .expect_err("refused");
        assert!(e.to_string().contains("named twice"), "{e}");
    }
}
