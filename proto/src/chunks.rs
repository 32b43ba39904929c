//! Masked inputs larger than one message travel as a stream of signed
//! `MaskedChunk` messages (`SubmitMaskedChunks`): how an input is cut, how
//! large a chunk may be, and a chunk's header read off the wire. The rules a
//! stream of chunks must follow are in
//! `fedcredit_crypto::secagg::admission::admit_masked_chunk`.
//!
//! The other way, a coordinator-signed answer (a round outcome carrying the
//! published sum, the job's end) travels as a stream of `SignedChunk`
//! pieces (`PollChunks`, `UnmaskChunks`): [`cut`] makes them from one
//! signed envelope without copying its payload, and [`Assembler`] puts the
//! envelope back together, refusing a piece out of order, repeated, past
//! the end, or a stream cut short ([`ChunkedReplyError`]). The envelope's
//! signature is then checked as for a unary answer.
//!
//! ```
//! use fedcredit_proto::chunks::split;
//! // 10 three-limb values (30 words) in chunks of at most 8 words: whole
//! // values only, so 6 words (two values) a chunk.
//! let pieces = split(30, 8, 3);
//! assert_eq!(pieces.len(), 5);
//! assert_eq!(pieces[0], (0, 6));
//! assert_eq!(pieces[4], (24, 6));
//! ```

use fedcredit_crypto::secagg::admission::ChunkHeader;
use prost::bytes::{Bytes, BytesMut};

use crate::WireError;
use crate::v1::{MaskedChunk, Signed, SignedChunk};

/// The most words one chunk may carry (1 MiB of payload). The coordinator
/// refuses any larger request before buffering it, so what it holds per
/// member in flight is bounded by this, whatever the round's dimension.
pub const MAX_CHUNK_WORDS: usize = 1 << 17;

/// The largest request a participant sends: one chunk (or a masked input of
/// at most [`MAX_CHUNK_WORDS`] words) and its envelope, or a phase message
/// of a large consortium (share ciphertexts and commitments), with room.
pub const MAX_REQUEST_BYTES: usize = MAX_CHUNK_WORDS * 8 + (4 << 20);

/// Cuts an input of `words` words into chunks of at most `chunk_words`
/// words, each a whole number of `limbs`-word ring values (at least one):
/// `(offset, len)` in order. An empty input has no chunks.
pub fn split(words: usize, chunk_words: usize, limbs: u32) -> Vec<(usize, usize)> {
    let limbs = (limbs as usize).max(1);
    let step = (chunk_words / limbs).max(1) * limbs;
    (0..words)
        .step_by(step)
        .map(|offset| (offset, step.min(words - offset)))
        .collect()
}

/// A chunk's header as the admission rules read it. Its values must be
/// whole 8-byte words and its offset must fit this machine's `usize`.
pub fn header(c: &MaskedChunk) -> Result<ChunkHeader, WireError> {
    if !c.values.len().is_multiple_of(8) {
        return Err(WireError::Field {
            what: "masked-input chunk",
            problem: format!(
                "{} bytes is not a whole number of 8-byte words",
                c.values.len()
            ),
        });
    }
    let offset = usize::try_from(c.offset).map_err(|_| WireError::Field {
        what: "masked-input chunk",
        problem: format!("offset {} is out of range", c.offset),
    })?;
    Ok(ChunkHeader {
        index: c.index,
        total: c.total,
        offset,
        words: c.values.len() / 8,
    })
}

/// The most payload bytes one piece of a chunked answer carries (1 MiB, as
/// a masked-input chunk): what the coordinator encodes per member at a time.
pub const MAX_PIECE_BYTES: usize = MAX_CHUNK_WORDS * 8;

/// The most payload bytes an [`Assembler`] reserves on the first piece's
/// word alone: an announced length is only a claim, and a poll's answer may
/// announce up to [`MAX_ANSWER_BYTES`] in a piece of a few bytes. The rest
/// is reserved, at once, when the data reaches this much.
pub const RESERVE_UP_FRONT: u64 = 64 << 20;

/// The largest signed answer a participant puts back together when it does
/// not know a tighter bound (a poll's answer: an announcement or the job's
/// end, each listing the earlier rounds' outcomes by digest, and growing
/// only with the number of rounds and departures); the unary RPCs' message
/// limit, 1 GiB.
pub const MAX_ANSWER_BYTES: u64 = 1 << 30;

/// Room in a round outcome's payload besides its `8 · words` bytes of sum:
/// the job id, round, attempt and the contributors' ids.
pub const OUTCOME_OVERHEAD_BYTES: u64 = 1 << 20;

/// The most payload bytes a round outcome of `words` words may have: a
/// longer announced length is refused before anything is buffered.
pub fn outcome_limit(words: usize) -> u64 {
    (words as u64)
        .saturating_mul(8)
        .saturating_add(OUTCOME_OVERHEAD_BYTES)
}

/// Cuts a signed envelope into pieces of at most `piece_bytes` payload
/// bytes (at least one piece, which carries the signature). Each piece's
/// data is a view into `signed.payload`: cutting copies nothing, so a
/// coordinator answering n members holds the payload once.
pub fn cut(signed: &Signed, piece_bytes: usize) -> Vec<SignedChunk> {
    let step = piece_bytes.max(1);
    let len = signed.payload.len();
    let ranges: Vec<(usize, usize)> = if len == 0 {
        vec![(0, 0)]
    } else {
        (0..len)
            .step_by(step)
            .map(|o| (o, step.min(len - o)))
            .collect()
    };
    let total = ranges.len() as u32;
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, (offset, n))| SignedChunk {
            index: i as u32,
            total,
            length: len as u64,
            offset: offset as u64,
            data: signed.payload.slice(offset..offset + n),
            signature: if i == 0 {
                signed.signature.clone()
            } else {
                Bytes::new()
            },
        })
        .collect()
}

/// Why a chunked answer was refused. Each names the answer (`what`) and the
/// piece; the coordinator is not trusted, so any deviation from the one
/// order [`cut`] produces ends the answer rather than being repaired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkedReplyError {
    /// A piece whose index was already received.
    #[error("{what}: piece {index} arrived twice")]
    Duplicate {
        /// The answer.
        what: &'static str,
        /// The repeated index.
        index: u32,
    },
    /// A piece ahead of the next expected one (one was skipped or reordered).
    #[error("{what}: piece {got} arrived out of order (expected piece {expected})")]
    OutOfOrder {
        /// The answer.
        what: &'static str,
        /// The index that should have come.
        expected: u32,
        /// The index that came.
        got: u32,
    },
    /// A piece after the last one the stream announced.
    #[error("{what}: piece {index} is past the end of a {total}-piece answer")]
    PastLast {
        /// The answer.
        what: &'static str,
        /// The index received.
        index: u32,
        /// Pieces announced.
        total: u32,
    },
    /// A piece whose `total` or `length` differs from the first piece's.
    #[error("{what}: piece {index} says {field} = {got}, the first piece said {first}")]
    Inconsistent {
        /// The answer.
        what: &'static str,
        /// The piece.
        index: u32,
        /// `total` or `length`.
        field: &'static str,
        /// This piece's value.
        got: u64,
        /// The first piece's value.
        first: u64,
    },
    /// The announced length exceeds what this answer may hold (for a round
    /// outcome: 8 bytes per word of the round's dimension, and room for its
    /// contributors).
    #[error("{what}: announces {length} bytes, more than the {limit} it may hold")]
    TooLong {
        /// The answer.
        what: &'static str,
        /// Announced payload bytes.
        length: u64,
        /// The bound.
        limit: u64,
    },
    /// A piece that does not start where the previous one ended.
    #[error("{what}: piece {index} starts at byte {got}, the previous pieces end at {expected}")]
    Gap {
        /// The answer.
        what: &'static str,
        /// The piece.
        index: u32,
        /// Where it should start.
        expected: u64,
        /// Where it says it starts.
        got: u64,
    },
    /// A piece reaching past the announced length.
    #[error("{what}: piece {index} ends at byte {end}, past the announced {length}")]
    PastEnd {
        /// The answer.
        what: &'static str,
        /// The piece.
        index: u32,
        /// Where it ends.
        end: u64,
        /// The announced payload length.
        length: u64,
    },
    /// A piece of no bytes (only an empty answer's single piece may be
    /// empty), or of more than [`MAX_PIECE_BYTES`].
    #[error("{what}: piece {index} carries {bytes} bytes (1 to {max} expected)")]
    PieceSize {
        /// The answer.
        what: &'static str,
        /// The piece.
        index: u32,
        /// Its bytes.
        bytes: usize,
        /// [`MAX_PIECE_BYTES`].
        max: usize,
    },
    /// The signature is missing from the first piece or sent with another.
    #[error("{what}: piece {index} {problem}")]
    Signature {
        /// The answer.
        what: &'static str,
        /// The piece.
        index: u32,
        /// What is wrong.
        problem: &'static str,
    },
    /// The stream ended before its last piece, or its last piece left the
    /// payload short of the announced length.
    #[error(
        "{what}: the stream ended after {received} of {total} pieces ({bytes} of {length} bytes)"
    )]
    Truncated {
        /// The answer.
        what: &'static str,
        /// Pieces received.
        received: u32,
        /// Pieces announced (0 if none arrived).
        total: u32,
        /// Payload bytes received.
        bytes: u64,
        /// Payload bytes announced.
        length: u64,
    },
}

/// Puts a chunked signed answer back together, piece by piece, in the one
/// order [`cut`] sends: index 0, 1, … total − 1, each starting where the
/// previous ended, together exactly `length` bytes, at most `limit`.
/// [`Assembler::finish`] hands back the `Signed` envelope, whose signature
/// the caller checks as for a unary answer.
#[derive(Debug)]
pub struct Assembler {
    what: &'static str,
    limit: u64,
    /// (total, length, signature) from piece 0.
    first: Option<(u32, u64, Bytes)>,
    next: u32,
    payload: BytesMut,
}

impl Assembler {
    /// An assembler for the answer `what` of at most `limit` payload bytes.
    pub fn new(what: &'static str, limit: u64) -> Self {
        Self {
            what,
            limit,
            first: None,
            next: 0,
            payload: BytesMut::new(),
        }
    }

    /// Takes the next piece, or refuses it (the answer is then void).
    pub fn push(&mut self, c: SignedChunk) -> Result<(), ChunkedReplyError> {
        let what = self.what;
        let index = c.index;
        if index < self.next {
            return Err(ChunkedReplyError::Duplicate { what, index });
        }
        if let Some((total, length, _)) = &self.first {
            if index >= *total {
                return Err(ChunkedReplyError::PastLast {
                    what,
                    index,
                    total: *total,
                });
            }
            for (field, got, first) in [
                ("total", u64::from(c.total), u64::from(*total)),
                ("length", c.length, *length),
            ] {
                if got != first {
                    return Err(ChunkedReplyError::Inconsistent {
                        what,
                        index,
                        field,
                        got,
                        first,
                    });
                }
            }
        }
        if index > self.next {
            return Err(ChunkedReplyError::OutOfOrder {
                what,
                expected: self.next,
                got: index,
            });
        }
        let received = self.payload.len() as u64;
        if c.offset != received {
            return Err(ChunkedReplyError::Gap {
                what,
                index,
                expected: received,
                got: c.offset,
            });
        }
        if index == 0 {
            if c.total == 0 {
                return Err(ChunkedReplyError::PastLast {
                    what,
                    index,
                    total: 0,
                });
            }
            if c.length > self.limit {
                return Err(ChunkedReplyError::TooLong {
                    what,
                    length: c.length,
                    limit: self.limit,
                });
            }
            if c.signature.is_empty() {
                return Err(ChunkedReplyError::Signature {
                    what,
                    index,
                    problem: "(the first) carries no signature",
                });
            }
        } else if !c.signature.is_empty() {
            return Err(ChunkedReplyError::Signature {
                what,
                index,
                problem: "carries a signature (only the first piece does)",
            });
        }
        let bytes = c.data.len();
        let empty_answer = c.length == 0 && c.total == 1;
        if bytes > MAX_PIECE_BYTES || (bytes == 0 && !empty_answer) {
            return Err(ChunkedReplyError::PieceSize {
                what,
                index,
                bytes,
                max: MAX_PIECE_BYTES,
            });
        }
        let end = received + bytes as u64;
        if end > c.length {
            return Err(ChunkedReplyError::PastEnd {
                what,
                index,
                end,
                length: c.length,
            });
        }
        if index == 0 {
            // Bounded by `limit` above, and by what a small piece may make
            // the participant allocate (found by the `chunks` fuzz target:
            // one piece announcing 900 MB reserved 900 MB).
            self.payload = BytesMut::with_capacity(c.length.min(RESERVE_UP_FRONT) as usize);
            self.first = Some((c.total, c.length, c.signature));
        }
        if self.payload.capacity() - self.payload.len() < bytes {
            // Past the up-front part: the rest at once, so that a large
            // payload is reallocated once rather than doubled repeatedly.
            self.payload.reserve((c.length - received) as usize);
        }
        self.payload.extend_from_slice(&c.data);
        self.next = index + 1;
        Ok(())
    }

    /// The whole envelope, once the last piece is in and the payload has
    /// its announced length; otherwise the stream was cut short.
    pub fn finish(self) -> Result<Signed, ChunkedReplyError> {
        let bytes = self.payload.len() as u64;
        match self.first {
            Some((total, length, signature)) if self.next == total && bytes == length => {
                Ok(Signed {
                    payload: self.payload.freeze(),
                    signature,
                })
            }
            first => {
                let (total, length) = first.map_or((0, 0), |(t, l, _)| (t, l));
                Err(ChunkedReplyError::Truncated {
                    what: self.what,
                    received: self.next,
                    total,
                    bytes,
                    length,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_input_once_in_whole_values() {
        for (words, chunk, limbs) in [(10, 4, 1), (12, 4, 1), (1, 4, 1), (30, 8, 3), (6, 2, 3)] {
            let pieces = split(words, chunk, limbs);
            let mut next = 0;
            for (offset, len) in &pieces {
                assert_eq!(*offset, next, "{words}/{chunk}/{limbs}");
                assert!(*len > 0 && len % limbs as usize == 0);
                assert!(*len <= chunk.max(limbs as usize));
                next += len;
            }
            assert_eq!(next, words, "{words}/{chunk}/{limbs}");
        }
        assert!(split(0, 4, 1).is_empty());
    }

    #[test]
    fn a_header_refuses_partial_words() {
        let c = MaskedChunk {
            values: vec![0; 12].into(),
            ..Default::default()
        };
        let err = header(&c).expect_err("12 bytes");
        assert!(err.to_string().contains("masked-input chunk"), "{err}");
        let c = MaskedChunk {
            index: 1,
            total: 2,
            offset: 3,
            values: vec![0; 16].into(),
            ..Default::default()
        };
        assert_eq!(
            header(&c).expect("whole words"),
            ChunkHeader {
                index: 1,
                total: 2,
                offset: 3,
                words: 2
            }
        );
    }
}

#[cfg(test)]
mod answer_tests {
    //! Each test plays a coordinator that tampers with the pieces of a
    //! chunked answer, and checks the typed error the assembler refuses it
    //! with.
    use super::*;

    fn signed(len: usize) -> Signed {
        Signed {
            payload: (0..len).map(|i| i as u8).collect::<Vec<u8>>().into(),
            signature: vec![7u8; 64].into(),
        }
    }

    fn assemble(
        pieces: impl IntoIterator<Item = SignedChunk>,
        limit: u64,
    ) -> Result<Signed, ChunkedReplyError> {
        let mut a = Assembler::new("round outcome", limit);
        for p in pieces {
            a.push(p)?;
        }
        a.finish()
    }

    /// Regression (the `chunks` fuzz target's input `huge-announced`): a
    /// first piece of 10 bytes announcing 900 MB, within a poll answer's
    /// limit, made the assembler reserve all 900 MB. It reserves at most
    /// [`RESERVE_UP_FRONT`] until that much has arrived, and a real answer
    /// larger than that still comes back whole.
    #[test]
    fn a_claimed_length_reserves_at_most_the_up_front_part() {
        let mut a = Assembler::new("poll answer", MAX_ANSWER_BYTES);
        a.push(SignedChunk {
            index: 0,
            total: 3,
            length: 900_000_000,
            offset: 0,
            data: vec![1u8; 10].into(),
            signature: vec![7u8; 64].into(),
        })
        .expect("a well-formed first piece");
        assert!(a.payload.capacity() as u64 <= RESERVE_UP_FRONT);

        let big = signed(RESERVE_UP_FRONT as usize + 3 * MAX_PIECE_BYTES / 2);
        let back = assemble(cut(&big, MAX_PIECE_BYTES), MAX_ANSWER_BYTES).expect("whole");
        assert_eq!(back, big);
    }

    #[test]
    fn what_is_cut_comes_back_whole_without_copying() {
        for (len, piece) in [(0, 4), (1, 4), (8, 4), (9, 4), (100, 7)] {
            let s = signed(len);
            let pieces = cut(&s, piece);
            assert_eq!(pieces.len(), len.div_ceil(piece).max(1));
            for p in &pieces {
                // A view into the payload, not a copy of it.
                if !p.data.is_empty() {
                    let at = p.data.as_ptr() as usize - s.payload.as_ptr() as usize;
                    assert_eq!(at as u64, p.offset);
                }
            }
            assert_eq!(assemble(pieces, len as u64).expect("whole"), s);
        }
    }

    #[test]
    fn a_piece_out_of_order_is_refused() {
        let mut pieces = cut(&signed(12), 4);
        pieces.swap(1, 2);
        assert_eq!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::OutOfOrder {
                what: "round outcome",
                expected: 1,
                got: 2
            })
        );
    }

    #[test]
    fn a_duplicated_piece_is_refused() {
        let mut pieces = cut(&signed(12), 4);
        pieces.insert(2, pieces[1].clone());
        assert_eq!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::Duplicate {
                what: "round outcome",
                index: 1
            })
        );
    }

    #[test]
    fn a_piece_past_the_end_is_refused() {
        // One more piece after the last.
        let mut pieces = cut(&signed(12), 4);
        let mut extra = pieces[2].clone();
        extra.index = 3;
        extra.offset = 12;
        pieces.push(extra);
        assert_eq!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::PastLast {
                what: "round outcome",
                index: 3,
                total: 3
            })
        );
        // A last piece longer than the announced length.
        let mut pieces = cut(&signed(12), 4);
        pieces[2].data = vec![0u8; 5].into();
        assert_eq!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::PastEnd {
                what: "round outcome",
                index: 2,
                end: 13,
                length: 12
            })
        );
        // An announced length past what d words (and room) allow.
        assert_eq!(
            assemble(cut(&signed(12), 4), 11),
            Err(ChunkedReplyError::TooLong {
                what: "round outcome",
                length: 12,
                limit: 11
            })
        );
    }

    #[test]
    fn a_truncated_stream_is_refused() {
        let mut pieces = cut(&signed(12), 4);
        pieces.pop();
        assert_eq!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::Truncated {
                what: "round outcome",
                received: 2,
                total: 3,
                bytes: 8,
                length: 12
            })
        );
        assert!(matches!(
            assemble([], 100),
            Err(ChunkedReplyError::Truncated { received: 0, .. })
        ));
        // The last index arrives but the payload is short of its length.
        let mut pieces = cut(&signed(12), 4);
        pieces[2].data = vec![0u8; 3].into();
        assert!(matches!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::Truncated {
                received: 3,
                bytes: 11,
                ..
            })
        ));
    }

    #[test]
    fn a_changed_header_a_gap_or_a_moved_signature_is_refused() {
        let mut pieces = cut(&signed(12), 4);
        pieces[1].total = 4;
        assert!(matches!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::Inconsistent {
                field: "total",
                index: 1,
                ..
            })
        ));
        let mut pieces = cut(&signed(12), 4);
        pieces[2].length = 16;
        assert!(matches!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::Inconsistent {
                field: "length",
                index: 2,
                ..
            })
        ));
        let mut pieces = cut(&signed(12), 4);
        pieces[1].offset = 5;
        assert!(matches!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::Gap {
                index: 1,
                expected: 4,
                got: 5,
                ..
            })
        ));
        let mut pieces = cut(&signed(12), 4);
        pieces[1].signature = pieces[0].signature.clone();
        assert!(matches!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::Signature { index: 1, .. })
        ));
        let mut pieces = cut(&signed(12), 4);
        pieces[0].signature = Bytes::new();
        assert!(matches!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::Signature { index: 0, .. })
        ));
        // Empty pieces would let a stream run on without progress.
        let mut pieces = cut(&signed(12), 4);
        pieces.insert(
            1,
            SignedChunk {
                index: 1,
                data: Bytes::new(),
                signature: Bytes::new(),
                ..pieces[1].clone()
            },
        );
        assert!(matches!(
            assemble(pieces, 100),
            Err(ChunkedReplyError::PieceSize {
                index: 1,
                bytes: 0,
                ..
            })
        ));
    }
}
