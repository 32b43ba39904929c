//! Masked inputs larger than one message travel as a stream of signed
//! `MaskedChunk` messages (`SubmitMaskedChunks`): how an input is cut, how
//! large a chunk may be, and a chunk's header read off the wire. The rules a
//! stream of chunks must follow are in
//! `fedcredit_crypto::secagg::admission::admit_masked_chunk`.
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

use crate::WireError;
use crate::v1::MaskedChunk;

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
