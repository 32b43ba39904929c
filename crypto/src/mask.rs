//! Adding and removing masks modulo 2^64.
//!
//! A masked input is `x + b_u + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)`
//! (wrapping `u64` arithmetic, i.e. mod 2^64), with `PRG` =
//! [`crate::prg::keystream_u64`]. Pairwise masks cancel in the sum over
//! parties; self masks `b_u` and the pairwise masks of dropped parties are
//! removed with [`sub_mask`]/[`add_mask`] once their seeds are reconstructed.
//!
//! ```
//! use fedcredit_crypto::mask::{add_assign, add_mask, sub_mask, MaskSeed};
//!
//! let s_12 = MaskSeed::from_bytes([9; 32]);
//! let (mut y1, mut y2) = (vec![1u64, 2, 3], vec![10u64, 20, 30]);
//! add_mask(&mut y1, &s_12); // party 1 < 2 adds
//! sub_mask(&mut y2, &s_12); // party 2 > 1 subtracts
//! assert_ne!(y1, vec![1, 2, 3]);
//! add_assign(&mut y1, &y2)?;
//! assert_eq!(y1, vec![11, 22, 33]);
//! # Ok::<(), fedcredit_crypto::CryptoError>(())
//! ```

use std::fmt;

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::prg::fold_keystream;

/// A 32-byte mask seed (a self-mask seed, or a pairwise seed from
/// [`crate::kx::derive_key`]). Not `Clone`; zeroized on drop; `Debug`
/// prints `MaskSeed(..)`.
pub struct MaskSeed(Zeroizing<[u8; 32]>);

impl MaskSeed {
    /// Draws a fresh seed from `rng`.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut_slice());
        Self(seed)
    }

    /// Wraps 32 bytes (e.g. a reconstructed self-mask seed).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(Zeroizing::new(b))
    }

    /// The 32 bytes (e.g. to Shamir-share them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<Zeroizing<[u8; 32]>> for MaskSeed {
    /// Takes a derived key (e.g. from [`crate::kx::derive_key`]) without an
    /// unzeroized copy.
    fn from(key: Zeroizing<[u8; 32]>) -> Self {
        Self(key)
    }
}

impl fmt::Debug for MaskSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskSeed(..)")
    }
}

/// `acc[i] = acc[i].wrapping_add(keystream[i])`, streaming the keystream in
/// 4 KiB blocks (no full-length temporary).
pub fn add_mask(acc: &mut [u64], seed: &MaskSeed) {
    fold_keystream(seed.as_bytes(), acc, u64::wrapping_add);
}

/// `acc[i] = acc[i].wrapping_sub(keystream[i])`; the inverse of
/// [`add_mask`].
pub fn sub_mask(acc: &mut [u64], seed: &MaskSeed) {
    fold_keystream(seed.as_bytes(), acc, u64::wrapping_sub);
}

/// Checks that `x` is as long as `acc`.
fn check_len(acc: &[u64], x: &[u64]) -> Result<(), CryptoError> {
    if acc.len() == x.len() {
        Ok(())
    } else {
        Err(CryptoError::LengthMismatch {
            expected: acc.len(),
            got: x.len(),
        })
    }
}

/// `acc[i] = acc[i].wrapping_add(x[i])`.
///
/// Errors: [`CryptoError::LengthMismatch`] (and `acc` untouched) if the
/// lengths differ.
pub fn add_assign(acc: &mut [u64], x: &[u64]) -> Result<(), CryptoError> {
    check_len(acc, x)?;
    for (a, b) in acc.iter_mut().zip(x) {
        *a = a.wrapping_add(*b);
    }
    Ok(())
}

/// `acc[i] = acc[i].wrapping_sub(x[i])`.
///
/// Errors: [`CryptoError::LengthMismatch`] (and `acc` untouched) if the
/// lengths differ.
pub fn sub_assign(acc: &mut [u64], x: &[u64]) -> Result<(), CryptoError> {
    check_len(acc, x)?;
    for (a, b) in acc.iter_mut().zip(x) {
        *a = a.wrapping_sub(*b);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prg::keystream_u64;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn add_mask_adds_the_keystream() {
        let seed = MaskSeed::from_bytes([3; 32]);
        let n = 5000;
        let mut ks = vec![0u64; n];
        keystream_u64(seed.as_bytes(), &mut ks);
        let x: Vec<u64> = (0..n as u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let mut acc = x.clone();
        add_mask(&mut acc, &seed);
        for i in 0..n {
            assert_eq!(acc[i], x[i].wrapping_add(ks[i]));
        }
        sub_mask(&mut acc, &seed);
        assert_eq!(acc, x);
    }

    #[test]
    fn vector_helpers_wrap_and_check_length() {
        let mut acc = vec![u64::MAX, 0];
        add_assign(&mut acc, &[1, 1]).expect("same length");
        assert_eq!(acc, vec![0, 1]);
        sub_assign(&mut acc, &[1, 2]).expect("same length");
        assert_eq!(acc, vec![u64::MAX, u64::MAX]);
        assert_eq!(
            add_assign(&mut acc, &[1]),
            Err(CryptoError::LengthMismatch {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            sub_assign(&mut acc, &[1, 2, 3]),
            Err(CryptoError::LengthMismatch {
                expected: 2,
                got: 3
            })
        );
        assert_eq!(acc, vec![u64::MAX, u64::MAX]);
    }

    #[test]
    fn seed_generation_and_debug() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let a = MaskSeed::generate(&mut rng);
        let b = MaskSeed::generate(&mut rng);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(format!("{a:?}"), "MaskSeed(..)");
        let c = MaskSeed::from(Zeroizing::new(*a.as_bytes()));
        assert_eq!(c.as_bytes(), a.as_bytes());
    }

    #[test]
    fn empty_vectors_are_fine() {
        let seed = MaskSeed::from_bytes([0; 32]);
        let mut v: Vec<u64> = Vec::new();
        add_mask(&mut v, &seed);
        sub_mask(&mut v, &seed);
        add_assign(&mut v, &[]).expect("same length");
    }
}
