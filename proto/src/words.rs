//! u64 vectors travel as little-endian bytes: 8 bytes a word, no varints,
//! so a masked vector of d words is exactly 8·d bytes on the wire.

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

/// Adds little-endian words straight from `bytes` into `acc` (wrapping), so a
/// masked input is summed without first being copied into a `Vec<u64>`.
/// Leaves `acc` untouched if the length is not exactly `8 · acc.len()`.
pub fn add_le_bytes(what: &'static str, acc: &mut [u64], bytes: &[u8]) -> Result<(), WireError> {
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
    for (a, c) in acc.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        *a = a.wrapping_add(u64::from_le_bytes(b));
    }
    Ok(())
}

#[cfg(test)]
mod add_tests {
    use super::*;

    #[test]
    fn adds_in_place_and_refuses_a_wrong_length_untouched() {
        let mut acc = vec![1, u64::MAX];
        add_le_bytes("x", &mut acc, &to_bytes(&[2, 2])).expect("adds");
        assert_eq!(acc, vec![3, 1]);
        assert!(add_le_bytes("x", &mut acc, &[0; 8]).is_err());
        assert_eq!(acc, vec![3, 1]);
    }
}
