//! u64 vectors travel as little-endian bytes: 8 bytes a word, no varints,
//! so a masked vector of d words is exactly 8·d bytes on the wire.

use fedcredit_crypto::ring::Ring;

use crate::WireError;

/// Encodes words as little-endian bytes.
pub fn to_bytes(words: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(words.len() * 8);
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

/// Decodes little-endian bytes into words; the length must be a multiple of 8.
pub fn from_bytes(what: &'static str, bytes: &[u8]) -> Result<Vec<u64>, WireError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(WireError::Field {
            what,
            problem: format!(
                "{} bytes is not a whole number of 8-byte words",
                bytes.len()
            ),
        });
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let w = vec![0, 1, u64::MAX, 0x0102_0304_0506_0708];
        assert_eq!(from_bytes("w", &to_bytes(&w)).expect("decodes"), w);
    }

    #[test]
    fn rejects_partial_words() {
        let err = from_bytes("masked input", &[1, 2, 3]).expect_err("3 bytes");
        assert!(err.to_string().contains("masked input"), "{err}");
    }
}

/// Words decoded per step by [`add_le_bytes`]: a multiple of every ring's
/// limb count (1 to 4), so a step never splits a value; 3 KiB on the stack.
const ADD_BLOCK_WORDS: usize = 384;

/// Adds the little-endian words in `bytes` into `acc` as elements of `ring`
/// (carrying between the limbs of each value), a block at a time, so a
/// masked input is summed without first being copied into a `Vec<u64>`.
/// Leaves `acc` untouched if the length is not exactly `8 · acc.len()`, or
/// `acc` is not a whole number of ring values.
pub fn add_le_bytes(
    what: &'static str,
    ring: Ring,
    acc: &mut [u64],
    bytes: &[u8],
) -> Result<(), WireError> {
    apply_le_bytes(what, ring, acc, bytes, Ring::add_assign)
}

/// Subtracts the little-endian words in `bytes` from `acc` as elements of
/// `ring`: undoes [`add_le_bytes`] (a partial masked input taken out of a
/// sum). The same checks, and `acc` untouched when they fail.
pub fn sub_le_bytes(
    what: &'static str,
    ring: Ring,
    acc: &mut [u64],
    bytes: &[u8],
) -> Result<(), WireError> {
    apply_le_bytes(what, ring, acc, bytes, Ring::sub_assign)
}

/// An in-place ring operation: [`Ring::add_assign`] or [`Ring::sub_assign`].
type RingOp = fn(Ring, &mut [u64], &[u64]) -> Result<(), fedcredit_crypto::CryptoError>;

/// `op(acc, words of bytes)` a block at a time, after the length checks.
fn apply_le_bytes(
    what: &'static str,
    ring: Ring,
    acc: &mut [u64],
    bytes: &[u8],
    op: RingOp,
) -> Result<(), WireError> {
    if bytes.len() != acc.len() * 8 {
        return Err(WireError::Field {
            what,
            problem: format!(
                "{} bytes, expected {} ({} words)",
                bytes.len(),
                acc.len() * 8,
                acc.len()
            ),
        });
    }
    ring.check_len(acc.len())?;
    let mut block = [0u64; ADD_BLOCK_WORDS];
    let (words, _) = bytes.as_chunks::<8>();
    for (a, w) in acc
        .chunks_mut(ADD_BLOCK_WORDS)
        .zip(words.chunks(ADD_BLOCK_WORDS))
    {
        let x = &mut block[..a.len()];
        for (x, w) in x.iter_mut().zip(w) {
            *x = u64::from_le_bytes(*w);
        }
        op(ring, a, x)?;
    }
    Ok(())
}

#[cfg(test)]
mod add_tests {
    use super::*;

    #[test]
    fn adds_in_place_and_refuses_a_wrong_length_untouched() {
        let mut acc = vec![1, u64::MAX];
        add_le_bytes("x", Ring::U64, &mut acc, &to_bytes(&[2, 2])).expect("adds");
        assert_eq!(acc, vec![3, 1]);
        assert!(add_le_bytes("x", Ring::U64, &mut acc, &[0; 8]).is_err());
        assert_eq!(acc, vec![3, 1]);
        // Two words are no whole number of three-limb values.
        assert!(add_le_bytes("x", Ring::U192, &mut acc, &to_bytes(&[2, 2])).is_err());
        assert_eq!(acc, vec![3, 1]);
    }

    #[test]
    fn subtracting_undoes_adding_with_carries() {
        let m = u64::MAX;
        let start = vec![m, m, 0, 5, 0, 0];
        let mut acc = start.clone();
        let x = to_bytes(&[1, 0, 0, m, 7, 0]);
        add_le_bytes("x", Ring::U192, &mut acc, &x).expect("adds");
        assert_ne!(acc, start);
        sub_le_bytes("x", Ring::U192, &mut acc, &x).expect("subtracts");
        assert_eq!(acc, start);
        assert!(sub_le_bytes("x", Ring::U192, &mut acc, &x[..8]).is_err());
        assert_eq!(acc, start);
    }

    /// In a multi-limb ring the bytes are added value by value with carries,
    /// exactly as `Ring::add_assign` adds the decoded words, across the
    /// block boundaries too.
    #[test]
    fn adds_ring_values_with_carries() {
        let m = u64::MAX;
        let mut acc = vec![m, m, 0, 5, 0, 0];
        add_le_bytes("x", Ring::U192, &mut acc, &to_bytes(&[1, 0, 0, m, 0, 0])).expect("adds");
        assert_eq!(acc, vec![0, 0, 1, 4, 1, 0]);
        for ring in [Ring::U64, Ring::U128, Ring::U192, Ring::U256] {
            let n = ring.words_for(1000);
            let x: Vec<u64> = (0..n as u64).map(|i| m - i).collect();
            let y: Vec<u64> = (0..n as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            let mut expected = x.clone();
            ring.add_assign(&mut expected, &y).expect("same length");
            let mut acc = x.clone();
            add_le_bytes("x", ring, &mut acc, &to_bytes(&y)).expect("adds");
            assert_eq!(acc, expected, "{ring:?}");
        }
    }
}
