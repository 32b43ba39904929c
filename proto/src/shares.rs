//! Phase 2 at the edge: a dealer's signed `EncryptedShares` to and from the
//! domain's [`Dealt`] commitments and ciphertexts, once for the coordinator,
//! the participants and the auditor.

use std::collections::BTreeMap;

use fedcredit_crypto::secagg::{self, Dealt, PartyIndex, ShareCommitment};
use prost::bytes::Bytes;

use crate::WireError;
use crate::roster::Roster;
use crate::v1 as pb;

/// A dealer's phase-2 message, decoded: its commitments, and its
/// ciphertexts by recipient in message order (the callers check that they
/// are addressed to exactly the dealer's neighbours in the round's graph).
#[derive(Debug)]
pub struct DealtShares {
    /// The commitments the dealer signed.
    pub dealt: Dealt,
    /// (recipient, ciphertext), each exactly
    /// [`secagg::SHARE_CIPHERTEXT_LEN`] bytes.
    pub ciphertexts: Vec<(PartyIndex, Bytes)>,
}

fn field(what: &'static str, problem: String) -> WireError {
    WireError::Field { what, problem }
}

fn commitment(what: &'static str, bytes: &[u8]) -> Result<[u8; 32], WireError> {
    bytes
        .try_into()
        .map_err(|_| field(what, format!("{} bytes, expected 32", bytes.len())))
}

impl DealtShares {
    /// Decodes `m`, sent by `dealer`: every commitment is 32 bytes and names a
    /// member once, every ciphertext names a member and has the exact AEAD
    /// length. Whether the recipients are exactly U1 is for the caller
    /// ([`Dealt::check`]), which knows U1.
    pub fn from_pb(
        roster: &Roster,
        dealer: PartyIndex,
        m: &pb::EncryptedShares,
    ) -> Result<Self, WireError> {
        let self_mask = commitment("self_mask_commitment", &m.self_mask_commitment)?;
        let mut shares = BTreeMap::new();
        for c in &m.share_commitments {
            let to = roster.member(&c.recipient)?.index;
            let pair = ShareCommitment {
                key: commitment("share_commitments.key_commitment", &c.key_commitment)?,
                self_mask: commitment(
                    "share_commitments.self_mask_commitment",
                    &c.self_mask_commitment,
                )?,
            };
            if shares.insert(to, pair).is_some() {
                return Err(field(
                    "share_commitments",
                    format!("{} is named twice", c.recipient),
                ));
            }
        }
        let mut ciphertexts = Vec::with_capacity(m.shares.len());
        for c in &m.shares {
            let to = roster.member(&c.peer)?.index;
            secagg::check_share_ciphertext(dealer, c.ciphertext.len())
                .map_err(|e| field("shares.ciphertext", format!("the one for {}: {e}", c.peer)))?;
            ciphertexts.push((to, c.ciphertext.clone()));
        }
        Ok(Self {
            dealt: Dealt { self_mask, shares },
            ciphertexts,
        })
    }
}

/// The `EncryptedShares` message of a dealer's phase-2 output.
pub fn to_pb(
    roster: &Roster,
    ciphertexts: Vec<(PartyIndex, Vec<u8>)>,
    dealt: &Dealt,
) -> pb::EncryptedShares {
    let id = |p: PartyIndex| roster.name_of(p);
    pb::EncryptedShares {
        shares: ciphertexts
            .into_iter()
            .map(|(to, ct)| pb::ShareCiphertext {
                peer: id(to),
                ciphertext: ct.into(),
            })
            .collect(),
        self_mask_commitment: dealt.self_mask.to_vec().into(),
        share_commitments: dealt
            .shares
            .iter()
            .map(|(to, c)| pb::ShareCommitment {
                recipient: id(*to),
                key_commitment: c.key.to_vec().into(),
                self_mask_commitment: c.self_mask.to_vec().into(),
            })
            .collect(),
    }
}
