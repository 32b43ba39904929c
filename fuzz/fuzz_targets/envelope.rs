//! Signed envelopes, as the coordinator receives participants' messages and
//! participants receive the coordinator's (and each other's, relayed).
//!
//! The first byte picks what the rest is:
//! - 0: a `Signed` envelope off the wire: decoded, then opened as a
//!   participant message against the demo consortium's roster and as a
//!   coordinator message against its coordinator key;
//! - 1: the payload of a participant message, signed here by the member it
//!   names, so that the fuzzer gets past the signature check to the body
//!   conversions (advertised keys, dealt shares, masked input, survivor
//!   lists, revealed shares);
//! - 2: the payload of a coordinator message, signed here by the
//!   coordinator: announcements go through the referee (with their
//!   published outcomes re-signed and replayed), outcomes are absorbed.
//!
//! Why: every party decodes what another party sent before trusting
//! anything in it; none of it may panic or allocate without bound.
#![no_main]
#![forbid(unsafe_code)]

use fedcredit_fuzz::{Job, fixture, open_coordinator, open_participant, split_mode};
use fedcredit_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let f = fixture(Job::SecureSum);
    let (mode, rest) = split_mode(data);
    match mode % 3 {
        0 => {
            if let Ok(signed) = pb::Signed::decode(rest) {
                open_participant(f, &signed);
                open_coordinator(f, &signed);
            }
        }
        1 => open_participant(f, &f.sign_participant(rest)),
        _ => open_coordinator(f, &f.sign_coordinator(rest)),
    }
});
