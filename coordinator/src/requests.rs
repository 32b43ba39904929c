//! What the gRPC handlers send the actor: a verified, decoded participant
//! message with the channel its answer goes back on.

use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::epoch::{DealerRecord, Slot};
use fedcredit_crypto::secagg::{Advertisement, Dealt, PartyIndex, Phase, SurvivorDigest};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::v1 as pb;
use prost::bytes::Bytes;

use crate::error::Rejection;
use crate::round::{InputAnswer, Piece, Reply};

/// Round and attempt a message is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At {
    pub round: u64,
    pub attempt: u32,
}

/// A verified, decoded participant message with its reply channel.
#[derive(Debug)]
pub(crate) enum Request {
    /// A long poll for the next announcement.
    Poll {
        from: PartyIndex,
        seen: Option<At>,
        reply: Reply<pb::Signed>,
    },
    /// A message of a round phase, with the envelope as signed (for the log).
    Round {
        from: PartyIndex,
        at: At,
        signed: pb::Signed,
        msg: RoundMsg,
    },
    /// The sender's masked-input stream for `at` broke off before its last
    /// chunk: its partial input is out of that attempt.
    StreamCut {
        from: PartyIndex,
        at: At,
        why: String,
    },
    /// The sender leaves the job, with a reason code (never free text).
    Leave {
        from: PartyIndex,
        signed: pb::Signed,
        code: i32,
        reply: Reply<pb::LeaveAck>,
    },
}

/// The phase-specific part of a round message.
#[derive(Debug)]
pub(crate) enum RoundMsg {
    Advertise {
        ad: Advertisement,
        reply: Reply<pb::AdvertisedKeys>,
    },
    Shares {
        dealt: Dealt,
        ciphertexts: Vec<(PartyIndex, Bytes)>,
        reply: Reply<pb::SharesForYou>,
    },
    Masked {
        /// The whole input, or which chunk of it.
        piece: Piece,
        /// Little-endian words, a view into the signed payload.
        values: Bytes,
        reply: Reply<InputAnswer>,
    },
    Confirm {
        /// The digest of the list it signed (`SurvivorDigest`, 32 bytes).
        survivors: SurvivorDigest,
        /// The session id the signer bound its list to.
        session: SessionId,
        reply: Reply<pb::SurvivorSignatures>,
    },
    Unmask {
        self_mask: Vec<(PartyIndex, Share)>,
        keys: Vec<(PartyIndex, Share)>,
        reply: Reply<pb::Signed>,
    },
    /// An epoch setup's shares (`EpochShares`, the ShareKeys RPC).
    EpochShares {
        record: DealerRecord,
        ciphertexts: Vec<(PartyIndex, Bytes)>,
        reply: Reply<pb::SharesForYou>,
    },
    /// A slot's reveal (`SlotReveal`, the Unmask RPCs).
    SlotReveal {
        slot: Slot,
        shares: Vec<(PartyIndex, Share)>,
        reply: Reply<pb::Signed>,
    },
}

/// Which setup a message body belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodySetup {
    /// Either (advertisement, masked input).
    Any,
    /// The per-round protocol only.
    PerRound,
    /// Epoch attempts only.
    Epoch,
}

impl RoundMsg {
    pub fn phase(&self) -> Phase {
        match self {
            RoundMsg::Advertise { .. } => Phase::AdvertiseKeys,
            RoundMsg::Shares { .. } => Phase::ShareKeys,
            RoundMsg::Masked { .. } => Phase::MaskedInput,
            RoundMsg::Confirm { .. } => Phase::ConsistencyCheck,
            RoundMsg::Unmask { .. } => Phase::Unmask,
            RoundMsg::EpochShares { .. } => Phase::ShareKeys,
            RoundMsg::SlotReveal { .. } => Phase::Unmask,
        }
    }

    /// The body's name, for a rejection.
    pub fn body(&self) -> &'static str {
        match self {
            RoundMsg::Advertise { .. } => "key advertisement",
            RoundMsg::Shares { .. } => "encrypted shares",
            RoundMsg::Masked { .. } => "masked input",
            RoundMsg::Confirm { .. } => "survivor confirmation",
            RoundMsg::Unmask { .. } => "unmask shares",
            RoundMsg::EpochShares { .. } => "epoch shares",
            RoundMsg::SlotReveal { .. } => "slot reveal",
        }
    }

    /// Which attempts the body belongs in.
    pub fn setup(&self) -> BodySetup {
        match self {
            RoundMsg::Advertise { .. } | RoundMsg::Masked { .. } => BodySetup::Any,
            RoundMsg::Shares { .. } | RoundMsg::Confirm { .. } | RoundMsg::Unmask { .. } => {
                BodySetup::PerRound
            }
            RoundMsg::EpochShares { .. } | RoundMsg::SlotReveal { .. } => BodySetup::Epoch,
        }
    }

    pub fn reject(self, r: Rejection) {
        match self {
            RoundMsg::Advertise { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::Shares { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::Masked { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::Confirm { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::Unmask { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::EpochShares { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::SlotReveal { reply, .. } => drop(reply.send(Err(r))),
        }
    }
}
