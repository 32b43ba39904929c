//! What the gRPC handlers send the actor: a verified, decoded participant
//! message with the channel its answer goes back on.

use std::collections::BTreeSet;

use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::{Advertisement, Dealt, PartyIndex, Phase};
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
        survivors: BTreeSet<PartyIndex>,
        /// The session id the signer bound its list to.
        session: SessionId,
        reply: Reply<pb::SurvivorSignatures>,
    },
    Unmask {
        self_mask: Vec<(PartyIndex, Share)>,
        keys: Vec<(PartyIndex, Share)>,
        reply: Reply<pb::Signed>,
    },
}

impl RoundMsg {
    pub fn phase(&self) -> Phase {
        match self {
            RoundMsg::Advertise { .. } => Phase::AdvertiseKeys,
            RoundMsg::Shares { .. } => Phase::ShareKeys,
            RoundMsg::Masked { .. } => Phase::MaskedInput,
            RoundMsg::Confirm { .. } => Phase::ConsistencyCheck,
            RoundMsg::Unmask { .. } => Phase::Unmask,
        }
    }

    pub fn reject(self, r: Rejection) {
        match self {
            RoundMsg::Advertise { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::Shares { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::Masked { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::Confirm { reply, .. } => drop(reply.send(Err(r))),
            RoundMsg::Unmask { reply, .. } => drop(reply.send(Err(r))),
        }
    }
}
