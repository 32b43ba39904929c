//! Chunked answers off the wire: a stream of `SignedChunk` pieces, as a
//! participant receives a coordinator-signed round outcome or poll answer,
//! put back together by `chunks::Assembler`; and `MaskedChunk` headers, as
//! the coordinator reads a participant's chunked masked input.
//!
//! Why: both sides read these pieces before any signature can be checked
//! (the signature covers the whole envelope), so a piece of any shape, in
//! any order, must be refused with a clear error, never a panic or an
//! allocation the announced limit does not allow.
//!
//! Input: byte 0 picks the mode and the answer's limit; the rest is a
//! sequence of length-delimited protobuf messages (mode 0: `SignedChunk`s,
//! mode 1: `MaskedChunk`s), or (mode 2) an envelope that is cut into pieces
//! with `chunks::cut` and must come back whole.
#![no_main]
#![forbid(unsafe_code)]

use fedcredit_proto::chunks::{self, Assembler, MAX_ANSWER_BYTES};
use fedcredit_proto::v1::{MaskedChunk, Signed, SignedChunk};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use prost::bytes::Bytes;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // The limits participants use: a small round's outcome, a large one,
    // and a poll's answer (whose bound is the unary message limit).
    let limit = match (mode >> 2) & 3 {
        0 => 64,
        1 => chunks::outcome_limit(16),
        2 => chunks::outcome_limit(1 << 20),
        _ => MAX_ANSWER_BYTES,
    };
    match mode & 3 {
        0 => assemble(rest, limit),
        1 => masked_headers(rest),
        _ => cut_and_assemble(rest),
    }
});

/// Feeds the decoded pieces to an assembler until one is refused; an
/// answer it accepts is exactly the pieces' data, within the limit.
fn assemble(mut rest: &[u8], limit: u64) {
    let mut assembler = Assembler::new("fuzzed answer", limit);
    let mut expected = Vec::new();
    let mut signature = None;
    while !rest.is_empty() {
        let Ok(piece) = SignedChunk::decode_length_delimited(&mut rest) else {
            return;
        };
        let (data, sig) = (piece.data.clone(), piece.signature.clone());
        if assembler.push(piece).is_err() {
            return;
        }
        expected.extend_from_slice(&data);
        signature.get_or_insert(sig);
    }
    if let Ok(signed) = assembler.finish() {
        assert!(signed.payload.len() as u64 <= limit);
        assert_eq!(&signed.payload[..], &expected[..]);
        assert_eq!(Some(&signed.signature), signature.as_ref());
    }
}

/// Reads each decoded chunk's header; an accepted header describes the
/// chunk it came from.
fn masked_headers(mut rest: &[u8]) {
    while !rest.is_empty() {
        let Ok(chunk) = MaskedChunk::decode_length_delimited(&mut rest) else {
            return;
        };
        if let Ok(h) = chunks::header(&chunk) {
            assert_eq!(h.words * 8, chunk.values.len());
            assert_eq!(h.offset as u64, chunk.offset);
            assert_eq!((h.index, h.total), (chunk.index, chunk.total));
        }
    }
}

/// An envelope cut into pieces of a fuzzed size, sent through protobuf
/// and assembled again, comes back byte for byte.
fn cut_and_assemble(rest: &[u8]) {
    let Some((size, rest)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let piece_bytes = usize::from(u16::from_le_bytes(*size)) + 1;
    let Some((&sig_len, rest)) = rest.split_first() else {
        return;
    };
    let sig_len = usize::from(sig_len % 80 + 1).min(rest.len());
    if sig_len == 0 {
        return;
    }
    let (signature, payload) = rest.split_at(sig_len);
    let signed = Signed {
        payload: Bytes::copy_from_slice(payload),
        signature: Bytes::copy_from_slice(signature),
    };
    let mut assembler = Assembler::new("fuzzed answer", payload.len() as u64);
    for piece in chunks::cut(&signed, piece_bytes) {
        let wire = piece.encode_to_vec();
        let piece = SignedChunk::decode(&wire[..]).expect("a piece decodes");
        assembler.push(piece).expect("a piece of `cut` is accepted");
    }
    let back = assembler.finish().expect("the pieces of `cut` are whole");
    assert_eq!(back, signed);
}
