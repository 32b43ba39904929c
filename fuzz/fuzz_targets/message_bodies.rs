//! Every message body type on its own, decoded from protobuf and converted
//! as its receiver does, without an envelope around it; plus the bodies
//! that are not protobuf (model tasks are JSON, sums and masked inputs are
//! little-endian words in a codec).
//!
//! The first byte picks the type (see the match); the rest is its encoding.
//!
//! Why: a body reaches these conversions only after a valid signature, so
//! the `envelope` target reaches them rarely; here every mutation does.
#![no_main]
#![forbid(unsafe_code)]

use fedcredit_fuzz::{
    Fixture, Job, coordinator_body, fixture, open_participant, participant_body, split_mode,
};
use fedcredit_model::job::ModelTask;
use fedcredit_proto::codec::Codec;
use fedcredit_proto::v1::{self as pb, coordinator_message, message::Body};
use fedcredit_proto::words;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// A participant body as if sent by the first member.
fn participant<M: prost::Message + Default>(f: &Fixture, bytes: &[u8], wrap: fn(M) -> Body) {
    if let Ok(m) = M::decode(bytes)
        && let Some(sender) = f.consortium.roster.members().next()
    {
        participant_body(f, sender.index, &wrap(m));
    }
}

/// A coordinator body for round 0, handled as a participant does.
fn coordinator<M: prost::Message + Default>(
    f: &Fixture,
    bytes: &[u8],
    wrap: fn(M) -> coordinator_message::Body,
) {
    if let Ok(m) = M::decode(bytes) {
        let message = pb::CoordinatorMessage {
            job_id: f.consortium.job.id.clone(),
            round: 0,
            attempt: 0,
            body: Some(wrap(m)),
        };
        let signed = f.sign_coordinator(&message.encode_to_vec());
        coordinator_body(f, &message, &signed);
    }
}

/// A relayed list of member envelopes (the replies to AdvertiseKeys,
/// ShareKeys and ConfirmSurvivors): each is opened and its body converted.
fn relayed(f: &Fixture, list: &[pb::Signed]) {
    for s in list {
        // As relayed, and as if its sender had signed it.
        open_participant(f, s);
        open_participant(f, &f.sign_participant(&s.payload));
    }
}

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = split_mode(data);
    let job = if selector & 0x80 == 0 {
        Job::SecureSum
    } else {
        Job::CreditNewton
    };
    let f = fixture(job);
    match selector & 0x7f {
        0 => participant(f, rest, Body::Advertise),
        1 => participant(f, rest, Body::Shares),
        2 => participant(f, rest, Body::MaskedInput),
        3 => participant(f, rest, Body::Consistency),
        4 => participant(f, rest, Body::Unmask),
        5 => participant(f, rest, Body::Leave),
        6 => coordinator(f, rest, coordinator_message::Body::Announce),
        7 => coordinator(f, rest, coordinator_message::Body::Outcome),
        8 => {
            if let Ok(r) = pb::AdvertisedKeys::decode(rest) {
                relayed(f, &r.adverts);
            }
        }
        9 => {
            if let Ok(r) = pb::SharesForYou::decode(rest) {
                relayed(f, &r.dealt);
            }
        }
        10 => {
            if let Ok(r) = pb::Survivors::decode(rest) {
                let _ = f.consortium.roster.indices("survivor list", &r.survivors);
            }
        }
        11 => {
            if let Ok(r) = pb::SurvivorSignatures::decode(rest) {
                relayed(f, &r.confirmations);
            }
        }
        12 => {
            // A model task (JSON in the announcement).
            if let Ok(task) = ModelTask::from_bytes(rest) {
                let _ = task.name();
                let _ = task.dimension(3);
                let _ = task.to_bytes();
            }
        }
        13 => {
            // Announced codec fields, then words decoded with that codec:
            // frac_bits (4 bytes), clip (8), limbs (1), then the words.
            if rest.len() >= 13 {
                let (head, words_bytes) = rest.split_at(13);
                let spec = pb::FixedPointSpec {
                    frac_bits: u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
                    clip: f64::from_le_bytes(head[4..12].try_into().unwrap_or([0; 8])),
                };
                if let Ok(codec) = Codec::from_pb(&spec, u32::from(head[12])) {
                    let _ = codec.to_pb();
                    let _ = codec.check(f.consortium.roster.len());
                    if let Ok(w) = words::from_bytes("sum", words_bytes) {
                        let _ = codec.decode(&w);
                    }
                }
            }
        }
        15 => participant(f, rest, Body::MaskedChunk),
        16 => participant(f, rest, Body::EpochShares),
        17 => participant(f, rest, Body::SlotReveal),
        _ => {
            // A whole participant message (the body's oneof included).
            if let Ok(m) = pb::Message::decode(rest)
                && let Some(body) = &m.body
                && let Some(sender) = f.consortium.roster.members().next()
            {
                participant_body(f, sender.index, body);
            }
        }
    }
});
