//! The ring every masked value lives in: Z_(2^(64·L)), one value as `L`
//! consecutive `u64` limbs (least significant first), with carries between
//! the limbs of a value and none between values.
//!
//! Secure aggregation publishes the sum of the parties' inputs and nothing
//! more. That holds only if inputs, masks and the sum are elements of one
//! ring: adding the limbs of a multi-word value independently (mod 2^64
//! each, carrying only when decoding) would publish the limb sums, which
//! say more than the sum (e.g. how many parties had a negative value). Here
//! masks and inputs are added as whole ring elements, so two sets of inputs
//! with the same sum publish the same words.
//!
//! ```text
//! value i  = Σ_j words[L·i + j] · 2^(64·j)      mod 2^(64·L),  j = 0..L
//! mask   i = Σ_j PRG(seed)[L·i + j] · 2^(64·j)  (the keystream word by word, see [`crate::prg`])
//! ```
//!
//! With `L = 1` everything here is bit for bit what [`crate::mask`] does
//! (wrapping `u64` arithmetic and the same keystream): the narrow codec of
//! secure-sum jobs is the one-limb ring.
//!
//! ```
//! use fedcredit_crypto::{mask::MaskSeed, ring::Ring};
//!
//! let ring = Ring::new(2)?; // values mod 2^128
//! let s_12 = MaskSeed::from_bytes([9; 32]);
//! // Two values per vector: u64::MAX (carries into the high limb when
//! // added to 1) and 2^64.
//! let mut y1 = vec![u64::MAX, 0, 0, 1];
//! let mut y2 = vec![1, 0, 5, 0];
//! ring.add_mask(&mut y1, &s_12)?; // party 1 < 2 adds
//! ring.sub_mask(&mut y2, &s_12)?; // party 2 > 1 subtracts
//! ring.add_assign(&mut y1, &y2)?;
//! assert_eq!(y1, vec![0, 1, 5, 1]); // 2^64 and 2^64 + 5
//! # Ok::<(), fedcredit_crypto::CryptoError>(())
//! ```

use crate::CryptoError;
use crate::mask::MaskSeed;
use crate::prg::fold_keystream_blocks;

/// The most limbs per value (256-bit values).
pub const MAX_LIMBS: u32 = 4;

/// Z_(2^(64·limbs)), with values stored as `limbs` little-endian `u64`
/// limbs each. Always valid once constructed (1 ≤ limbs ≤ [`MAX_LIMBS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ring {
    /// `u64` limbs (words) per value.
    limbs: u32,
}

impl Ring {
    /// Z_(2^64): one word per value, wrapping `u64` arithmetic.
    pub const U64: Ring = Ring { limbs: 1 };
    /// Z_(2^128): two limbs per value.
    pub const U128: Ring = Ring { limbs: 2 };
    /// Z_(2^192): three limbs per value (model rounds, see
    /// [`crate::wide::WideFixed::model_default`]).
    pub const U192: Ring = Ring { limbs: 3 };
    /// Z_(2^256): four limbs per value.
    pub const U256: Ring = Ring { limbs: 4 };

    /// The ring of `limbs`-limb values.
    ///
    /// Errors: [`CryptoError::InvalidRing`] unless `1 <= limbs <= 4`.
    ///
    /// ```
    /// use fedcredit_crypto::{CryptoError, ring::Ring};
    ///
    /// assert_eq!(Ring::new(1), Ok(Ring::U64));
    /// assert_eq!(Ring::new(3), Ok(Ring::U192));
    /// assert_eq!(Ring::new(3)?.words_for(10), 30);
    /// assert_eq!(Ring::new(0), Err(CryptoError::InvalidRing { limbs: 0 }));
    /// # Ok::<(), CryptoError>(())
    /// ```
    pub fn new(limbs: u32) -> Result<Self, CryptoError> {
        if (1..=MAX_LIMBS).contains(&limbs) {
            Ok(Self { limbs })
        } else {
            Err(CryptoError::InvalidRing { limbs })
        }
    }

    /// `u64` limbs (words) per value.
    pub fn limbs(self) -> u32 {
        self.limbs
    }

    /// Words for `values` values (`values · limbs`, saturating).
    pub fn words_for(self, values: usize) -> usize {
        values.saturating_mul(self.limbs as usize)
    }

    /// Checks that `words` words are a whole number of values.
    ///
    /// Errors: [`CryptoError::PartialRingValue`] otherwise.
    pub fn check_len(self, words: usize) -> Result<(), CryptoError> {
        if words.is_multiple_of(self.limbs as usize) {
            Ok(())
        } else {
            Err(CryptoError::PartialRingValue {
                words,
                limbs: self.limbs,
            })
        }
    }

    /// Adds the mask of `seed` to every value of `acc` (mod 2^(64·limbs)),
    /// streaming the keystream in blocks (no full-length temporary).
    ///
    /// Errors: [`CryptoError::PartialRingValue`] (and `acc` untouched) if
    /// `acc` is not a whole number of values.
    pub fn add_mask(self, acc: &mut [u64], seed: &MaskSeed) -> Result<(), CryptoError> {
        self.apply_masks(acc, &[(MaskSign::Add, seed)])
    }

    /// Subtracts the mask of `seed` from every value of `acc`; the inverse
    /// of [`Ring::add_mask`].
    ///
    /// Errors: [`CryptoError::PartialRingValue`] (and `acc` untouched) if
    /// `acc` is not a whole number of values.
    pub fn sub_mask(self, acc: &mut [u64], seed: &MaskSeed) -> Result<(), CryptoError> {
        self.apply_masks(acc, &[(MaskSign::Sub, seed)])
    }

    /// Adds or subtracts the mask of every seed in `masks` to or from every
    /// value of `acc`: a party's own masking, or the coordinator's
    /// unmasking, in one call. Large vectors are cut into one piece per
    /// core, and each piece takes every mask from its own position in the
    /// keystream, so the result is the same as applying the masks one by
    /// one, whatever the number of cores.
    ///
    /// Errors: [`CryptoError::PartialRingValue`] (and `acc` untouched) if
    /// `acc` is not a whole number of values.
    pub fn apply_masks(
        self,
        acc: &mut [u64],
        masks: &[(MaskSign, &MaskSeed)],
    ) -> Result<(), CryptoError> {
        self.check_len(acc.len())?;
        let pieces = pieces_for(acc.len().saturating_mul(masks.len()));
        // Whole values and whole 8-word runs of AES blocks per piece.
        let align = 8 * self.limbs as usize;
        let per = acc.len().div_ceil(pieces).div_ceil(align) * align;
        if pieces <= 1 || per == 0 || per >= acc.len() {
            self.apply_masks_at(acc, 0, masks);
            return Ok(());
        }
        std::thread::scope(|scope| {
            let mut chunks = acc.chunks_mut(per).enumerate();
            // The first piece stays on this thread.
            let first = chunks.next();
            for (k, chunk) in chunks {
                scope.spawn(move || self.apply_masks_at(chunk, k * per, masks));
            }
            if let Some((_, chunk)) = first {
                self.apply_masks_at(chunk, 0, masks);
            }
        });
        Ok(())
    }

    /// [`Ring::apply_masks`] on a piece of a vector that starts at word `start`.
    fn apply_masks_at(self, acc: &mut [u64], start: usize, masks: &[(MaskSign, &MaskSeed)]) {
        for (sign, seed) in masks {
            match (self.limbs, sign) {
                (1, MaskSign::Add) => mask_values::<1>(acc, start, seed, add_value),
                (1, MaskSign::Sub) => mask_values::<1>(acc, start, seed, sub_value),
                (2, MaskSign::Add) => mask_values::<2>(acc, start, seed, add_value),
                (2, MaskSign::Sub) => mask_values::<2>(acc, start, seed, sub_value),
                (3, MaskSign::Add) => mask_values::<3>(acc, start, seed, add_value),
                (3, MaskSign::Sub) => mask_values::<3>(acc, start, seed, sub_value),
                (_, MaskSign::Add) => mask_values::<4>(acc, start, seed, add_value),
                (_, MaskSign::Sub) => mask_values::<4>(acc, start, seed, sub_value),
            }
        }
    }

    /// `acc ← acc + x`, value by value (mod 2^(64·limbs)).
    ///
    /// Errors (and `acc` untouched): [`CryptoError::LengthMismatch`] if the
    /// lengths differ, [`CryptoError::PartialRingValue`] if they are not a
    /// whole number of values.
    pub fn add_assign(self, acc: &mut [u64], x: &[u64]) -> Result<(), CryptoError> {
        self.check_pair(acc, x)?;
        match self.limbs {
            1 => zip_values::<1>(acc, x, add_value),
            2 => zip_values::<2>(acc, x, add_value),
            3 => zip_values::<3>(acc, x, add_value),
            _ => zip_values::<4>(acc, x, add_value),
        }
        Ok(())
    }

    /// `acc ← acc − x`, value by value (mod 2^(64·limbs)).
    ///
    /// Errors (and `acc` untouched): as [`Ring::add_assign`].
    pub fn sub_assign(self, acc: &mut [u64], x: &[u64]) -> Result<(), CryptoError> {
        self.check_pair(acc, x)?;
        match self.limbs {
            1 => zip_values::<1>(acc, x, sub_value),
            2 => zip_values::<2>(acc, x, sub_value),
            3 => zip_values::<3>(acc, x, sub_value),
            _ => zip_values::<4>(acc, x, sub_value),
        }
        Ok(())
    }

    /// Checks that `x` is as long as `acc`, a whole number of values.
    fn check_pair(self, acc: &[u64], x: &[u64]) -> Result<(), CryptoError> {
        if acc.len() != x.len() {
            return Err(CryptoError::LengthMismatch {
                expected: acc.len(),
                got: x.len(),
            });
        }
        self.check_len(acc.len())
    }
}

/// Whether a mask is added to a vector or subtracted from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskSign {
    /// `acc ← acc + mask`.
    Add,
    /// `acc ← acc − mask`.
    Sub,
}

/// Keystream words below which masking stays on one thread (starting a
/// thread costs about as much as expanding this many words).
const PARALLEL_WORDS: usize = 1 << 17;

/// How many pieces to cut masking work of `words` keystream words into: one
/// per core, or one for small work.
fn pieces_for(words: usize) -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if words < PARALLEL_WORDS {
        return 1;
    }
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// `a ← a + b mod 2^(64·L)`, carrying from limb to limb.
#[inline(always)]
fn add_value<const L: usize>(a: &mut [u64; L], b: &[u64; L]) {
    let mut carry = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (s, c1) = x.overflowing_add(y);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        *x = s;
        carry = c1 | c2;
    }
}

/// `a ← a − b mod 2^(64·L)`, borrowing from limb to limb.
#[inline(always)]
fn sub_value<const L: usize>(a: &mut [u64; L], b: &[u64; L]) {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        *x = d;
        borrow = b1 | b2;
    }
}

/// Applies `op(value, mask value)` to every value of `acc` (whose length is
/// a multiple of `L`), the mask being the keystream of `seed` from word
/// `start` on.
#[inline(always)]
fn mask_values<const L: usize>(
    acc: &mut [u64],
    start: usize,
    seed: &MaskSeed,
    op: impl Fn(&mut [u64; L], &[u64; L]),
) {
    fold_keystream_blocks(seed.as_bytes(), acc, start, L, |chunk, words| {
        let (values, _) = chunk.as_chunks_mut::<L>();
        let (masks, _) = words.as_chunks::<L>();
        for (v, m) in values.iter_mut().zip(masks) {
            op(v, &m.map(u64::from_le_bytes));
        }
    });
}

/// Applies `op(acc value, x value)` to every pair of values (equal lengths,
/// multiples of `L`).
#[inline(always)]
fn zip_values<const L: usize>(acc: &mut [u64], x: &[u64], op: impl Fn(&mut [u64; L], &[u64; L])) {
    let (values, _) = acc.as_chunks_mut::<L>();
    let (others, _) = x.as_chunks::<L>();
    for (a, b) in values.iter_mut().zip(others) {
        op(a, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask;
    use crate::prg::keystream_u64;

    fn rings() -> impl Iterator<Item = Ring> {
        (1..=MAX_LIMBS).map(|l| Ring::new(l).expect("valid"))
    }

    /// The value of `words` (one value) as a u128 if it has ≤ 2 limbs.
    fn to_u128(words: &[u64]) -> u128 {
        words
            .iter()
            .rev()
            .fold(0u128, |acc, &w| (acc << 64) | u128::from(w))
    }

    #[test]
    fn new_validates() {
        for limbs in 1..=4 {
            assert_eq!(Ring::new(limbs).map(Ring::limbs), Ok(limbs));
        }
        let named = [Ring::U64, Ring::U128, Ring::U192, Ring::U256];
        assert_eq!(named.map(Ring::limbs), [1, 2, 3, 4]);
        for limbs in [0, 5, 8, u32::MAX] {
            assert_eq!(Ring::new(limbs), Err(CryptoError::InvalidRing { limbs }));
        }
        assert_eq!(
            Ring::new(3).map(|r| r.words_for(usize::MAX)),
            Ok(usize::MAX)
        );
    }

    /// One limb is exactly the wrapping u64 arithmetic of [`crate::mask`].
    #[test]
    fn one_limb_is_bit_identical_to_mask() {
        let seed = MaskSeed::from_bytes([0x42; 32]);
        for n in [0usize, 1, 7, 511, 512, 513, 5000] {
            let x: Vec<u64> = (0..n as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            let (mut a, mut b) = (x.clone(), x.clone());
            Ring::U64.add_mask(&mut a, &seed).expect("whole values");
            mask::add_mask(&mut b, &seed);
            assert_eq!(a, b, "add_mask, n = {n}");
            Ring::U64.sub_mask(&mut a, &seed).expect("whole values");
            mask::sub_mask(&mut b, &seed);
            assert_eq!(a, b, "sub_mask, n = {n}");
            let y: Vec<u64> = x.iter().map(|v| v.rotate_left(17) ^ 0xffff).collect();
            Ring::U64.add_assign(&mut a, &y).expect("same length");
            mask::add_assign(&mut b, &y).expect("same length");
            assert_eq!(a, b, "add_assign, n = {n}");
            Ring::U64.sub_assign(&mut a, &x).expect("same length");
            mask::sub_assign(&mut b, &x).expect("same length");
            assert_eq!(a, b, "sub_assign, n = {n}");
        }
    }

    /// Known answers: carries and borrows cross limbs, never values.
    #[test]
    fn carries_stay_inside_a_value() {
        let m = u64::MAX;
        let ring = Ring::new(3).expect("valid");
        // (2^128 − 1) + 1 = 2^128; (2^192 − 1) + 1 wraps to 0, no carry into
        // the next value.
        let mut acc = vec![m, m, 0, m, m, m, 7, 0, 0];
        ring.add_assign(&mut acc, &[1, 0, 0, 1, 0, 0, 0, 0, 0])
            .expect("same length");
        assert_eq!(acc, vec![0, 0, 1, 0, 0, 0, 7, 0, 0]);
        // 0 − 1 = 2^192 − 1, no borrow from the next value.
        ring.sub_assign(&mut acc, &[0, 0, 1, 1, 0, 0, 0, 0, 0])
            .expect("same length");
        assert_eq!(acc, vec![0, 0, 0, m, m, m, 7, 0, 0]);
        // A carry in from below and a carry out at the same limb.
        let ring = Ring::new(2).expect("valid");
        let mut acc = vec![m, m];
        ring.add_assign(&mut acc, &[1, m]).expect("same length");
        assert_eq!(acc, vec![0, m]);
    }

    /// A value's mask is the next `limbs` keystream words, added as one
    /// integer, and sub_mask undoes add_mask.
    #[test]
    fn mask_is_the_keystream_read_as_ring_values() {
        let seed = MaskSeed::from_bytes([3; 32]);
        let ring = Ring::new(2).expect("valid");
        let n = 2 * 700; // crosses several keystream blocks
        let mut ks = vec![0u64; n];
        keystream_u64(seed.as_bytes(), &mut ks);
        let x: Vec<u64> = (0..n as u64).map(|i| u64::MAX - i).collect();
        let mut acc = x.clone();
        ring.add_mask(&mut acc, &seed).expect("whole values");
        for i in (0..n).step_by(2) {
            let want = to_u128(&x[i..i + 2]).wrapping_add(to_u128(&ks[i..i + 2]));
            assert_eq!(to_u128(&acc[i..i + 2]), want, "value {}", i / 2);
        }
        ring.sub_mask(&mut acc, &seed).expect("whole values");
        assert_eq!(acc, x);
        // Three and four limbs: the keystream blocks are split on value
        // boundaries, and add then sub is the identity.
        for ring in rings() {
            let n = ring.words_for(1000);
            let x: Vec<u64> = (0..n as u64)
                .map(|i| i.wrapping_mul(u64::MAX / 3))
                .collect();
            let mut acc = x.clone();
            ring.add_mask(&mut acc, &seed).expect("whole values");
            assert_ne!(acc, x);
            ring.sub_mask(&mut acc, &seed).expect("whole values");
            assert_eq!(acc, x, "{ring:?}");
        }
    }

    /// Masking 3-limb values equals adding the keystream as ring values.
    #[test]
    fn add_mask_equals_add_assign_of_the_keystream() {
        let seed = MaskSeed::from_bytes([0xa5; 32]);
        for ring in rings() {
            for values in [0usize, 1, 167, 168, 169, 1000] {
                let n = ring.words_for(values);
                let mut ks = vec![0u64; n];
                keystream_u64(seed.as_bytes(), &mut ks);
                let x: Vec<u64> = (0..n as u64).map(|i| u64::MAX - 3 * i).collect();
                let (mut a, mut b) = (x.clone(), x.clone());
                ring.add_mask(&mut a, &seed).expect("whole values");
                ring.add_assign(&mut b, &ks).expect("same length");
                assert_eq!(a, b, "{ring:?}, {values} values");
                ring.sub_mask(&mut a, &seed).expect("whole values");
                ring.sub_assign(&mut b, &ks).expect("same length");
                assert_eq!(a, x);
                assert_eq!(b, x);
            }
        }
    }

    #[test]
    fn partial_values_and_length_mismatches_leave_acc_untouched() {
        let ring = Ring::new(3).expect("valid");
        let seed = MaskSeed::from_bytes([1; 32]);
        let mut acc = vec![5u64; 4];
        assert_eq!(
            ring.add_mask(&mut acc, &seed),
            Err(CryptoError::PartialRingValue { words: 4, limbs: 3 })
        );
        assert_eq!(
            ring.sub_mask(&mut acc, &seed),
            Err(CryptoError::PartialRingValue { words: 4, limbs: 3 })
        );
        assert_eq!(
            ring.add_assign(&mut acc, &[1; 4]),
            Err(CryptoError::PartialRingValue { words: 4, limbs: 3 })
        );
        assert_eq!(acc, vec![5; 4]);
        let mut acc = vec![5u64; 3];
        assert_eq!(
            ring.sub_assign(&mut acc, &[1; 6]),
            Err(CryptoError::LengthMismatch {
                expected: 3,
                got: 6
            })
        );
        assert_eq!(acc, vec![5; 3]);
        assert_eq!(ring.check_len(0), Ok(()));
    }
}
