//! The pseudorandom generator behind every mask: the AES-256-CTR keystream
//! (NIST SP 800-38A; key = the 32-byte seed, initial counter block = 16 zero
//! bytes, incremented as a 128-bit big-endian integer) read as little-endian
//! `u64` words.
//!
//! ```text
//! word[i] = u64::from_le_bytes(AES-256-CTR(key = seed, counter block 0, 1, 2, …)[8i .. 8i + 8])
//! ```
//!
//! An auditor can reproduce any mask with any AES-CTR implementation, e.g.
//! `openssl enc -aes-256-ctr -K <seed> -iv 00000000000000000000000000000000`
//! over zeros.
//!
//! Why AES rather than ChaCha20 (the generator before): with the AES
//! instructions every x86-64 and ARMv8 server has, AES-256-CTR makes the
//! keystream several times faster than ChaCha20's AVX2 code on the same core
//! (`cargo bench -p fedcredit-crypto --bench mask` measures both), and mask
//! expansion is most of a participant's work per round. The seed is used
//! whole as the AES-256 key; each seed keys one stream (fresh per pair and
//! attempt), so the counter never repeats under a key.
//!
//! ```
//! use fedcredit_crypto::prg::keystream_u64;
//!
//! let mut words = [0u64; 2];
//! keystream_u64(&[0; 32], &mut words);
//! // AES-256 of the zero block under the zero key: dc 95 c0 78 a2 40 89 89 ...
//! assert_eq!(words[0], 0x8989_40a2_78c0_95dc);
//! ```

use aes::Aes256;
use ctr::Ctr128BE;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use zeroize::Zeroizing;

/// The stream cipher of the masks.
pub(crate) type MaskCipher = Ctr128BE<Aes256>;

/// Keystream bytes generated per step: big enough for the SIMD backends to
/// run at full speed, small enough to stay in L1.
const BLOCK_BYTES: usize = 4096;
/// `u64` words per step.
const BLOCK_WORDS: usize = BLOCK_BYTES / 8;

/// Fills `out` with the AES-256-CTR keystream (key = `seed`, counter block
/// from 0), read as little-endian `u64` words.
pub fn keystream_u64(seed: &[u8; 32], out: &mut [u64]) {
    fold_keystream(seed, out, |_, k| k);
}

/// Streams the keystream for `seed` through `acc`: `acc[i] = op(acc[i],
/// word[i])`, in fixed-size blocks so no full-length temporary is
/// allocated. The block buffer is zeroized afterwards.
pub(crate) fn fold_keystream(seed: &[u8; 32], acc: &mut [u64], op: impl Fn(u64, u64) -> u64) {
    fold_keystream_blocks(seed, acc, 0, 1, |chunk, words| {
        for (a, w) in chunk.iter_mut().zip(words) {
            *a = op(*a, u64::from_le_bytes(*w));
        }
    });
}

/// Streams the keystream for `seed`, from word `start` on, through `acc`
/// block by block: `f(chunk, words)` gets consecutive pieces of `acc` and the
/// keystream words (as little-endian bytes) for the same positions, so a
/// piece of a longer vector that starts at word `start` gets the words the
/// whole vector would (a CTR keystream seeks without generating the words
/// before). Every piece but the last is
/// a multiple of `unit` words (and of 8 words, whole AES blocks), so a value
/// of `unit` words (see [`crate::ring`]) never straddles two pieces; the
/// keystream is the same as [`keystream_u64`]'s whatever `unit` is. The
/// block buffer is zeroized afterwards.
pub(crate) fn fold_keystream_blocks(
    seed: &[u8; 32],
    acc: &mut [u64],
    start: usize,
    unit: usize,
    mut f: impl FnMut(&mut [u64], &[[u8; 8]]),
) {
    // Whole AES blocks (2 words; 8 keeps the pieces aligned) and whole values, at most BLOCK_WORDS
    // (callers pass 1 <= unit <= 4, see `Ring`; the clamp keeps any other
    // value in bounds).
    let step = 8 * unit.clamp(1, BLOCK_WORDS / 8);
    let block_words = BLOCK_WORDS / step * step;
    // The key schedule zeroizes itself on drop (aes and ctr "zeroize" features).
    let mut cipher = MaskCipher::new(seed.into(), &[0u8; 16].into());
    if start > 0 {
        // 2^64 bytes of keystream lie beyond any vector a process can hold.
        cipher.seek(start as u64 * 8);
    }
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

    /// OpenSSL 3.0's `openssl enc -aes-256-ctr -K 000102…1f -iv 0…0` over
    /// 160 zero bytes (an implementation independent of the `aes` crate).
    const OPENSSL_KEY_0_TO_31: &str = "f29000b62a499fd0a9f39a6add2e7780f05d76ae4ab99fe5a6f69b3148c2363d\
                                       0ebcb5deb52c83bd08a8a935182c9199d24356532881602f809eb383c5ff5d56\
                                       4e5fe6bc2af2b80633c371f5c1ce694ea90741e6797146a550b63f264a604ee4\
                                       e96f3e0a91d150e2d389d3c7162448995d15369920a8454134a61443fe5fd1b0\
                                       d7514e072c5feca9197966348324ba5d2cbd526be87c119cd01227fa64243b82";

    #[test]
    fn openssl_known_answer() {
        let expected = hex::decode(OPENSSL_KEY_0_TO_31).expect("hex");
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut words = [0u64; 20];
        keystream_u64(&seed, &mut words);
        let got: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(hex::encode(got), hex::encode(expected));
    }

    /// NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt): the cipher type is
    /// standard AES-256-CTR with a 128-bit big-endian counter.
    #[test]
    fn sp800_38a_ctr_aes256() {
        let key = hex::decode("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
            .expect("hex");
        let iv = hex::decode("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").expect("hex");
        let mut data = hex::decode(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
             30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        )
        .expect("hex");
        let key: [u8; 32] = key.try_into().expect("32 bytes");
        let iv: [u8; 16] = iv.try_into().expect("16 bytes");
        MaskCipher::new(&key.into(), &iv.into()).apply_keystream(&mut data);
        assert_eq!(
            hex::encode(data),
            "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5\
             2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6"
        );
    }

    /// Across block boundaries and odd lengths, the words equal the
    /// cipher's keystream over one big zero buffer, and every prefix of a
    /// longer stream is the shorter stream.
    #[test]
    fn matches_apply_keystream_on_zeros() {
        let seed = [0x5a; 32];
        for len in [0, 1, 7, 8, 9, 511, 512, 513, 1024, 3 * BLOCK_WORDS + 5] {
            let mut bytes = vec![0u8; len * 8];
            MaskCipher::new(&seed.into(), &[0u8; 16].into()).apply_keystream(&mut bytes);
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

    /// A piece starting at any word gets the words the whole vector would.
    #[test]
    fn pieces_from_any_start_match_the_whole() {
        let seed = [0x33; 32];
        let mut whole = vec![0u64; 3 * BLOCK_WORDS + 7];
        keystream_u64(&seed, &mut whole);
        for start in [0, 1, 2, 7, 8, 511, 512, BLOCK_WORDS + 3, 3 * BLOCK_WORDS] {
            let mut piece = vec![0u64; whole.len() - start];
            fold_keystream_blocks(&seed, &mut piece, start, 1, |chunk, words| {
                for (a, w) in chunk.iter_mut().zip(words) {
                    *a = u64::from_le_bytes(*w);
                }
            });
            assert_eq!(piece, whole[start..], "start {start}");
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
