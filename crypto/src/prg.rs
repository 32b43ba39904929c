//! The pseudorandom generator behind every mask: the IETF ChaCha20
//! keystream (RFC 8439) read as little-endian `u64` words.
//!
//! ```text
//! word[i] = u64::from_le_bytes(ChaCha20(key = seed, nonce = 12 zero bytes, counter from 0)[8i .. 8i + 8])
//! ```
//!
//! An auditor can reproduce any mask with any ChaCha20 implementation.
//!
//! ```
//! use fedcredit_crypto::prg::keystream_u64;
//!
//! let mut words = [0u64; 2];
//! keystream_u64(&[0; 32], &mut words);
//! // RFC 8439 A.1 test vector #1 starts 76 b8 e0 ad a0 f1 3d 90 ...
//! assert_eq!(words[0], 0x903d_f1a0_ade0_b876);
//! ```

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroizing;

/// Keystream bytes generated per step: big enough for the SIMD backends to
/// run at full speed, small enough to stay in L1.
const BLOCK_BYTES: usize = 4096;
/// `u64` words per step.
const BLOCK_WORDS: usize = BLOCK_BYTES / 8;

/// Fills `out` with the ChaCha20 keystream (IETF ChaCha20, key = `seed`,
/// nonce = 12 zero bytes, block counter from 0), read as little-endian
/// `u64` words.
///
/// # Panics
///
/// If `out` is longer than the 32-bit block counter allows (2^35 words,
/// 256 GiB).
pub fn keystream_u64(seed: &[u8; 32], out: &mut [u64]) {
    fold_keystream(seed, out, |_, k| k);
}

/// Streams the keystream for `seed` through `acc`: `acc[i] = op(acc[i],
/// word[i])`, in fixed-size blocks so no full-length temporary is
/// allocated. The block buffer is zeroized afterwards.
pub(crate) fn fold_keystream(seed: &[u8; 32], acc: &mut [u64], op: impl Fn(u64, u64) -> u64) {
    fold_keystream_blocks(seed, acc, 1, |chunk, words| {
        for (a, w) in chunk.iter_mut().zip(words) {
            *a = op(*a, u64::from_le_bytes(*w));
        }
    });
}

/// Streams the keystream for `seed` through `acc` block by block: `f(chunk,
/// words)` gets consecutive pieces of `acc` and the keystream words (as
/// little-endian bytes) for the same positions. Every piece but the last is
/// a multiple of `unit` words (and of a 64-byte ChaCha20 block), so a value
/// of `unit` words (see [`crate::ring`]) never straddles two pieces; the
/// keystream is the same as [`keystream_u64`]'s whatever `unit` is. The
/// block buffer is zeroized afterwards.
pub(crate) fn fold_keystream_blocks(
    seed: &[u8; 32],
    acc: &mut [u64],
    unit: usize,
    mut f: impl FnMut(&mut [u64], &[[u8; 8]]),
) {
    // Whole ChaCha20 blocks (8 words) and whole values, at most BLOCK_WORDS
    // (callers pass 1 <= unit <= 4, see `Ring`; the clamp keeps any other
    // value in bounds).
    let step = 8 * unit.clamp(1, BLOCK_WORDS / 8);
    let block_words = BLOCK_WORDS / step * step;
    // The cipher state zeroizes itself on drop (chacha20 "zeroize" feature).
    let mut cipher = ChaCha20::new(seed.into(), &[0u8; 12].into());
    let mut block = Zeroizing::new([0u8; BLOCK_BYTES]);
    for chunk in acc.chunks_mut(block_words) {
        let bytes = &mut block[..chunk.len() * 8];
        bytes.fill(0);
        cipher.apply_keystream(bytes);
        let (words, _) = bytes.as_chunks::<8>();
        f(chunk, words);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 Appendix A.1, test vectors #1 and #2 (key 0, nonce 0,
    /// counters 0 and 1).
    const RFC8439_A1: &str = "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7\
                              da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586\
                              9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed\
                              29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f";

    #[test]
    fn rfc8439_zero_key_blocks_0_and_1() {
        let expected = hex::decode(RFC8439_A1).expect("hex");
        let mut words = [0u64; 16];
        keystream_u64(&[0; 32], &mut words);
        let got: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(got, expected);
    }

    /// Computed independently (Python `cryptography`'s ChaCha20, key = 00 01
    /// .. 1f, counter 0, nonce 0).
    #[test]
    fn known_answer_words() {
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut w = [0u64; 20];
        keystream_u64(&seed, &mut w);
        assert_eq!(w[0], 0x6a19_c5d9_7d2b_fd39);
        assert_eq!(w[1], 0x494a_dcb8_7703_bd8d);
        assert_eq!(w[7], 0x0c41_5b48_a062_27c2);
        assert_eq!(w[8], 0xd1a6_e6ad_3142_b818);
        assert_eq!(w[15], 0xcd5a_9531_7f4a_2a0d);
        assert_eq!(w[16], 0xd592_4aa7_dc2d_f242);
        assert_eq!(w[19], 0xe2e3_80ce_309c_e0f3);
    }

    /// Across block boundaries and odd lengths, the words equal the
    /// `chacha20` crate's keystream over one big zero buffer, and every
    /// prefix of a longer stream is the shorter stream.
    #[test]
    fn matches_apply_keystream_on_zeros() {
        let seed = [0x5a; 32];
        for len in [0, 1, 7, 8, 9, 511, 512, 513, 1024, 3 * BLOCK_WORDS + 5] {
            let mut bytes = vec![0u8; len * 8];
            ChaCha20::new(&seed.into(), &[0u8; 12].into()).apply_keystream(&mut bytes);
            let expected: Vec<u64> = bytes
                .as_chunks::<8>()
                .0
                .iter()
                .map(|c| u64::from_le_bytes(*c))
                .collect();
            let mut got = vec![0xdead_beef_u64; len];
            keystream_u64(&seed, &mut got);
            assert_eq!(got, expected, "len {len}");
        }
    }

    #[test]
    fn different_seeds_differ() {
        let (mut a, mut b) = ([0u64; 4], [0u64; 4]);
        keystream_u64(&[1; 32], &mut a);
        keystream_u64(&[2; 32], &mut b);
        assert_ne!(a, b);
    }
}
