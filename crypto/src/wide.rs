//! The wide codec between `f64` values and elements of a multi-limb ring,
//! for statistics whose dynamic range does not fit one word.
//!
//! Secure aggregation adds ring elements. Credit-model statistics span a
//! huge range (Σx² of loan amounts over a million rows is about 1e20 >
//! 2^63, while other sums are about 1e-3), so one word per value cannot give
//! both range and 1e-9 relative precision, and parties must not agree on
//! per-column scales (that would leak magnitudes). Instead each value is a
//! signed big integer in Z_(2^(64·L)) ([`crate::ring::Ring`] with `L`
//! limbs):
//!
//! ```text
//! V      = round(v · 2^F)                 F = frac_bits, ties away from zero
//! V mod 2^(64·L) = Σ_j w_j · 2^(64·j)     L = limbs, 0 <= w_j < 2^64
//! words  = [w_0, w_1, ..., w_(L-1)]       one limb per u64 word, least significant first
//! ```
//!
//! Inputs, masks and sums are added as ring elements (carrying from limb to
//! limb, see [`crate::ring`]), so the published sum is Σ V mod 2^(64·L) and
//! nothing more: two sets of inputs with the same sum publish the same
//! words. Decoding reads the sum as a two's-complement integer T of 64·L
//! bits and returns T · 2^-F correctly rounded (to nearest, ties to even).
//! [`WideFixed::max_abs`] bounds one party's values so that the sum over all
//! participants stays inside the signed range.
//!
//! This is exact integer arithmetic on `u64` limbs with `u128`
//! intermediates, not a cipher.
//!
//! ```
//! use fedcredit_crypto::wide::WideFixed;
//!
//! let wf = WideFixed::model_default(); // 3 limbs, 64 fractional bits
//! let mut a = wf.encode_slice(&[1e20, 0.001, -2.5], 2)?;
//! let b = wf.encode_slice(&[3e19, -0.0005, 1.25], 2)?;
//! assert_eq!(a.len(), wf.words_for(3));
//! wf.ring().add_assign(&mut a, &b)?; // ring addition, carries within each value
//! let sum = wf.decode_slice(&a)?;
//! assert_eq!(sum[0], 1.3e20);
//! assert!((sum[1] - 0.0005).abs() <= 1e-19);
//! assert_eq!(sum[2], -1.25);
//! # Ok::<(), fedcredit_crypto::CryptoError>(())
//! ```

use crate::CryptoError;
use crate::ring::{MAX_LIMBS, Ring};

/// Integer bits (including the sign) that `frac_bits` must leave free, so
/// that even [`MAX_PARTICIPANTS`] parties may each contribute about ±2.
const MIN_INT_BITS: u32 = 34;

/// The largest number of participants a sum may have: 2^32 − 1. With at
/// least 34 integer bits, each of them may still contribute about ±2.
pub const MAX_PARTICIPANTS: usize = u32::MAX as usize;

/// An integer of up to 64·[`MAX_LIMBS`] bits as `u64` limbs, least
/// significant first; only the first `limbs` are meaningful.
type Limbs = [u64; MAX_LIMBS as usize];

/// Wide fixed point: each value is round(v·2^frac_bits) as a two's
/// complement integer mod 2^(64·limbs), in `limbs` `u64` words. Always
/// valid once constructed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WideFixed {
    /// The ring the values live in; the integers are 64·limbs bits.
    ring: Ring,
    /// Fractional bits: the resolution is 2^-frac_bits.
    frac_bits: u32,
}

impl WideFixed {
    /// Validates and builds the codec.
    ///
    /// Errors ([`CryptoError::InvalidFixedPoint`]): `limbs` outside
    /// `1..=4`; `frac_bits > 64·limbs − 34` (at least 34 integer bits,
    /// sign included, must remain).
    ///
    /// ```
    /// use fedcredit_crypto::{CryptoError, wide::WideFixed};
    ///
    /// assert!(WideFixed::new(1, 30).is_ok());
    /// assert!(matches!(WideFixed::new(1, 31), Err(CryptoError::InvalidFixedPoint(_))));
    /// assert!(matches!(WideFixed::new(5, 0), Err(CryptoError::InvalidFixedPoint(_))));
    /// ```
    pub fn new(limbs: u32, frac_bits: u32) -> Result<Self, CryptoError> {
        let ring = Ring::new(limbs).map_err(|_| {
            CryptoError::InvalidFixedPoint(format!(
                "limbs = {limbs} must be between 1 and {MAX_LIMBS}"
            ))
        })?;
        let max_frac = 64 * limbs - MIN_INT_BITS;
        if frac_bits > max_frac {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "frac_bits = {frac_bits} is above 64 * limbs - {MIN_INT_BITS} = {max_frac} \
                 for limbs = {limbs}: at least {MIN_INT_BITS} integer bits (with the sign) must remain"
            )));
        }
        Ok(Self { ring, frac_bits })
    }

    /// The default for model rounds: 3 limbs (192 bits), 64 fractional
    /// bits: range ±2^127 ≈ 1.7e38 for a sum, resolution 2^-64 ≈ 5.4e-20.
    /// Every `f64` with |v| ≥ 2^-12 is a multiple of 2^-64 and so encodes
    /// exactly.
    pub fn model_default() -> Self {
        Self {
            ring: Ring::U192,
            frac_bits: 64,
        }
    }

    /// Limbs (= `u64` words) per value.
    pub fn limbs(&self) -> u32 {
        self.ring.limbs()
    }

    /// The ring the encoded values are added in.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// Number of fractional bits.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// Number of words for `values` values (`values · limbs`, saturating).
    pub fn words_for(&self, values: usize) -> usize {
        self.ring.words_for(values)
    }

    /// Largest |v| allowed for one party's value when `participants` values
    /// are summed, so that the sum cannot overflow the signed 64·limbs-bit
    /// range: about 2^(64·limbs − 1 − frac_bits) / participants.
    ///
    /// Exactly: with M = ⌊(2^(64·limbs − 1) − 1) / participants⌋, the
    /// result is M rounded toward zero to an `f64`, times 2^-frac_bits. Any
    /// |v| ≤ max_abs encodes to |V| ≤ M, so the sum of `participants` such
    /// values is at most 2^(64·limbs − 1) − 1 in magnitude.
    ///
    /// Returns 0.0 when `participants` is 0 or above [`MAX_PARTICIPANTS`]
    /// (which [`WideFixed::encode_slice`] rejects).
    ///
    /// ```
    /// use fedcredit_crypto::wide::WideFixed;
    ///
    /// let wf = WideFixed::model_default();
    /// assert_eq!(wf.max_abs(1), 2f64.powi(127) * (1.0 - f64::EPSILON / 2.0));
    /// assert!(wf.max_abs(1000) <= 2f64.powi(127) / 1000.0);
    /// assert!(wf.max_abs(1000) > 1e35);
    /// ```
    pub fn max_abs(&self, participants: usize) -> f64 {
        let Some(n) = participants_u64(participants) else {
            return 0.0;
        };
        let len = self.len();
        // 2^(64·len − 1) − 1.
        let mut m: Limbs = [0; MAX_LIMBS as usize];
        m[..len].fill(u64::MAX);
        m[len - 1] = u64::MAX >> 1;
        // Long division by n, most significant limb first: the remainder is
        // below n, so `rem << 64 | w` fits in a u128 and the quotient limb
        // `cur / n` is below 2^64.
        let mut rem = 0u128;
        let n = u128::from(n);
        for w in m[..len].iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*w);
            *w = (cur / n) as u64;
            rem = cur % n;
        }
        // M ≥ 2^(64·len − 34) and frac_bits ≤ 64·len − 34, so the result is
        // at least 1: a normal f64, and scaling by 2^-frac_bits is exact.
        to_f64_toward_zero(&m, len) * pow2(-(self.frac_bits as i32))
    }

    /// Encodes values, appending `limbs` words per value (value-major: all
    /// limbs of value 0, then value 1, ...).
    ///
    /// Rounding: V = round(v · 2^frac_bits) to nearest, **ties away from
    /// zero** (like [`crate::fixed_point`] and `f64::round`), computed
    /// exactly from the `f64`'s integer mantissa and exponent, for every
    /// finite value in range (subnormals included). So `encode(-v)` is
    /// `-encode(v)`; `-0.0` encodes as 0.
    ///
    /// Never clips and never wraps silently. Errors:
    /// [`CryptoError::InvalidFixedPoint`] if `participants` is 0 or above
    /// [`MAX_PARTICIPANTS`]; [`CryptoError::NotFinite`] for NaN or ±inf and
    /// [`CryptoError::OutOfRange`] for |v| > [`WideFixed::max_abs`]`(participants)`,
    /// both naming the first bad index.
    ///
    /// ```
    /// use fedcredit_crypto::{CryptoError, wide::WideFixed};
    ///
    /// let wf = WideFixed::new(1, 16)?; // 64-bit integers, 16 fractional bits
    /// assert_eq!(wf.encode_slice(&[1.0], 1)?, vec![1 << 16]);
    /// assert_eq!(wf.encode_slice(&[-1.0], 1)?, vec![0xFFFF_FFFF_FFFF_0000]);
    /// let wf = WideFixed::new(2, 16)?; // 128-bit integers
    /// assert_eq!(wf.encode_slice(&[-1.0], 1)?, vec![0xFFFF_FFFF_FFFF_0000, u64::MAX]);
    /// assert!(matches!(
    ///     WideFixed::new(1, 16)?.encode_slice(&[0.0, 1e15], 2), // bound 2^46 ≈ 7e13
    ///     Err(CryptoError::OutOfRange { index: 1, .. })
    /// ));
    /// # Ok::<(), CryptoError>(())
    /// ```
    pub fn encode_slice(
        &self,
        values: &[f64],
        participants: usize,
    ) -> Result<Vec<u64>, CryptoError> {
        if participants_u64(participants).is_none() {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "participants = {participants} must be between 1 and {MAX_PARTICIPANTS}"
            )));
        }
        let bound = self.max_abs(participants);
        let len = self.len();
        let mut out = Vec::with_capacity(self.words_for(values.len()));
        for (index, &value) in values.iter().enumerate() {
            if !value.is_finite() {
                return Err(CryptoError::NotFinite { index, value });
            }
            if value.abs() > bound {
                return Err(CryptoError::OutOfRange {
                    index,
                    value,
                    max_abs: bound,
                });
            }
            let v = self.encode_in_range(value);
            out.extend_from_slice(&v[..len]);
        }
        Ok(out)
    }

    /// Decodes ring elements into one `f64` per value: each value's limbs
    /// are read as a two's-complement integer T of 64·limbs bits and
    /// T · 2^-frac_bits is returned correctly rounded (to nearest, ties to
    /// even). The words may be the ring sum of up to [`MAX_PARTICIPANTS`]
    /// encoded vectors (masks removed).
    ///
    /// Errors: [`CryptoError::PartialRingValue`] if `words.len()` is not a
    /// multiple of `limbs`.
    pub fn decode_slice(&self, words: &[u64]) -> Result<Vec<f64>, CryptoError> {
        self.ring.check_len(words.len())?;
        Ok(words
            .chunks_exact(self.len())
            .map(|value| self.decode_one(value))
            .collect())
    }

    /// `limbs` as a `usize`.
    fn len(&self) -> usize {
        self.ring.limbs() as usize
    }

    /// round(v · 2^F) mod 2^(64·limbs), ties away from zero, for a finite
    /// `v` with |v| ≤ max_abs(1) (so |V| < 2^(64·limbs − 1)).
    fn encode_in_range(&self, value: f64) -> Limbs {
        let len = self.len();
        let bits = value.to_bits();
        let negative = bits >> 63 == 1;
        let exp_field = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1 << 52) - 1);
        // |value| = mant · 2^exp exactly, mant < 2^53.
        let (mant, exp) = if exp_field == 0 {
            (frac, -1074)
        } else {
            (frac | 1 << 52, exp_field - 1075)
        };
        let mut v: Limbs = [0; MAX_LIMBS as usize];
        let shift = exp + self.frac_bits as i32;
        if shift >= 0 {
            // |V| = mant · 2^shift, an integer: place mant · 2^(shift mod 64)
            // (< 2^117) at limb shift / 64. The range check guarantees that
            // nothing lands at or above limb `len`.
            let shift = shift as u32;
            let q = (shift / 64) as usize;
            let placed = u128::from(mant) << (shift % 64);
            for j in 0..2 {
                let part = (placed >> (64 * j)) as u64;
                if q + j < len {
                    v[q + j] = part;
                } else {
                    debug_assert_eq!(part, 0, "a value out of range reached encode");
                }
            }
        } else {
            // |V| = round(mant / 2^k), ties away from zero. For k ≥ 64 the
            // quotient is below 2^53 / 2^64 < 1/2, so it rounds to 0.
            let k = shift.unsigned_abs();
            v[0] = if k >= 64 {
                0
            } else {
                let rem = mant & ((1u64 << k) - 1);
                (mant >> k) + u64::from(rem >= 1u64 << (k - 1))
            };
        }
        if negative {
            negate(&mut v, len);
        }
        v
    }

    /// Decodes one value's `limbs` words.
    fn decode_one(&self, value: &[u64]) -> f64 {
        let len = self.len();
        let mut t: Limbs = [0; MAX_LIMBS as usize];
        t[..len].copy_from_slice(value);
        let negative = t[len - 1] >> 63 == 1;
        if negative {
            // Magnitude 2^(64·len) − T, at most 2^(64·len − 1): fits unsigned.
            negate(&mut t, len);
        }
        let magnitude = to_f64_nearest(&t, len, self.frac_bits);
        if negative { -magnitude } else { magnitude }
    }
}

/// `participants` as a `u64` if it is in `1..=MAX_PARTICIPANTS`.
fn participants_u64(participants: usize) -> Option<u64> {
    (1..=MAX_PARTICIPANTS)
        .contains(&participants)
        .then_some(participants as u64)
}

/// 2^e for a normal exponent, exactly.
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e), "2^{e} is not a normal f64");
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// x ← 2^(64·len) − x (two's-complement negation mod 2^(64·len)).
fn negate(x: &mut Limbs, len: usize) {
    let mut carry = true;
    for w in &mut x[..len] {
        let (t, c) = (!*w).overflowing_add(u64::from(carry));
        *w = t;
        carry = c;
    }
}

/// Number of significant bits of the unsigned integer `x[..len]`.
fn bit_len(x: &Limbs, len: usize) -> u32 {
    x[..len]
        .iter()
        .rposition(|&w| w != 0)
        .map_or(0, |k| 64 * k as u32 + (64 - x[k].leading_zeros()))
}

/// Bits `lo..lo + 64` of the unsigned integer `x` (missing limbs read as 0).
fn bits_at(x: &Limbs, lo: u32) -> u64 {
    let q = (lo / 64) as usize;
    let limb = |i: usize| x.get(i).map_or(0, |&w| u128::from(w));
    let acc = limb(q) | limb(q + 1) << 64;
    (acc >> (lo % 64)) as u64
}

/// Whether any of bits `0..lo` of `x` is set (`lo` below 64·[`MAX_LIMBS`]).
fn any_below(x: &Limbs, lo: u32) -> bool {
    let q = (lo / 64) as usize;
    let r = lo % 64;
    x[..q].iter().any(|&w| w != 0) || (r > 0 && x[q] & ((1u64 << r) - 1) != 0)
}

/// The unsigned integer `x[..len]` times 2^-frac_bits, correctly rounded
/// (to nearest, ties to even), for `len ≤ 4` and `frac_bits ≤ 222`.
fn to_f64_nearest(x: &Limbs, len: usize, frac_bits: u32) -> f64 {
    let nb = bit_len(x, len);
    let lo = nb.saturating_sub(64);
    // The top 64 bits with a sticky bit: `u64 as f64` rounds to nearest even
    // at bit 11, so the lower bits matter only as "some bit set below bit
    // 11", which the sticky bit 0 preserves.
    let top = bits_at(x, lo) | u64::from(any_below(x, lo));
    // The result is in [2^-222, 2^256]: scaling by a power of two is exact.
    top as f64 * pow2(lo as i32 - frac_bits as i32)
}

/// The unsigned integer `x[..len]` as an `f64`, rounded toward zero.
fn to_f64_toward_zero(x: &Limbs, len: usize) -> f64 {
    let lo = bit_len(x, len).saturating_sub(53);
    // At most 53 significant bits: exact.
    (bits_at(x, lo) & ((1 << 53) - 1)) as f64 * pow2(lo as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n · (each value of `words`) in the ring (a reference for "n parties
    /// sent the same vector"), by long multiplication with carries.
    fn times(wf: &WideFixed, words: &[u64], n: u64) -> Vec<u64> {
        let mut out = Vec::with_capacity(words.len());
        for value in words.chunks_exact(wf.limbs() as usize) {
            let mut carry = 0u128;
            for &w in value {
                let t = u128::from(w) * u128::from(n) + carry;
                out.push(t as u64);
                carry = t >> 64;
            }
        }
        out
    }

    #[test]
    fn new_validates() {
        for limbs in 1..=MAX_LIMBS {
            let max = 64 * limbs - MIN_INT_BITS;
            assert!(WideFixed::new(limbs, 0).is_ok());
            assert!(WideFixed::new(limbs, max).is_ok());
            assert!(matches!(
                WideFixed::new(limbs, max + 1),
                Err(CryptoError::InvalidFixedPoint(_))
            ));
        }
        for limbs in [0, 5, 8, 100] {
            assert!(matches!(
                WideFixed::new(limbs, 0),
                Err(CryptoError::InvalidFixedPoint(_))
            ));
        }
        let d = WideFixed::model_default();
        assert_eq!(WideFixed::new(3, 64), Ok(d));
        assert_eq!((d.limbs(), d.frac_bits(), d.words_for(3)), (3, 64, 9));
        assert_eq!(d.ring(), Ring::U192);
    }

    /// Known answers for the default codec: 2^64 · v in 3 limbs.
    #[test]
    fn known_answers() {
        let wf = WideFixed::model_default();
        let m = u64::MAX;
        let cases: [(f64, [u64; 3]); 9] = [
            (0.0, [0, 0, 0]),
            (-0.0, [0, 0, 0]),
            (1.0, [0, 1, 0]),
            (-1.0, [0, m, m]),
            (0.5, [1 << 63, 0, 0]),
            (-1.5, [1 << 63, m - 1, m]),
            (2f64.powi(-64), [1, 0, 0]),
            (-(2f64.powi(-64)), [m, m, m]),
            (2f64.powi(126), [0, 0, 1 << 62]),
        ];
        for (v, w) in cases {
            let enc = wf.encode_slice(&[v], 1).expect("in range");
            assert_eq!(enc, w.to_vec(), "encode({v})");
            assert_eq!(wf.decode_slice(&enc), Ok(vec![v]), "decode({v})");
        }
        // Value-major layout.
        assert_eq!(wf.encode_slice(&[1.0, -1.0], 1), Ok(vec![0, 1, 0, 0, m, m]));
        // A value straddling two limbs: 1e20 · 2^64 = 0x5_6BC7_5E2D_6310_0000 · 2^64.
        assert_eq!(
            wf.encode_slice(&[1e20], 1),
            Ok(vec![0, 0x6BC7_5E2D_6310_0000, 5])
        );
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        let wf = WideFixed::new(1, 4).expect("valid");
        let u = 1.0 / 16.0;
        for (k, expected) in [(0.5, 1.0), (1.5, 2.0), (2.5, 3.0), (0.49, 0.0), (0.51, 1.0)] {
            let enc = wf.encode_slice(&[k * u, -k * u], 1).expect("in range");
            let dec = vec![expected * u, -expected * u];
            assert_eq!(wf.decode_slice(&enc), Ok(dec), "{k} units");
        }
        assert_eq!(wf.encode_slice(&[-0.5 * u], 1), Ok(vec![u64::MAX]));
        let wf = WideFixed::new(2, 4).expect("valid");
        assert_eq!(wf.encode_slice(&[-0.5 * u], 1), Ok(vec![u64::MAX; 2]));
    }

    #[test]
    fn subnormals_and_tiny_values() {
        let wf = WideFixed::model_default();
        let tiny = [
            f64::from_bits(1),
            -f64::from_bits(1),
            f64::MIN_POSITIVE,
            2f64.powi(-66),
            -(2f64.powi(-66)),
        ];
        let enc = wf.encode_slice(&tiny, 1).expect("in range");
        assert!(enc.iter().all(|&w| w == 0));
        // The largest value below half a unit rounds to 0; half a unit to 1.
        let half = 2f64.powi(-65);
        let enc = wf
            .encode_slice(&[half.next_down(), half, -half], 1)
            .expect("ok");
        assert_eq!(
            wf.decode_slice(&enc),
            Ok(vec![0.0, 2f64.powi(-64), -(2f64.powi(-64))])
        );
        // frac_bits 222: subnormals still round to 0 or one unit.
        let wf = WideFixed::new(4, 222).expect("valid");
        let enc = wf
            .encode_slice(&[f64::from_bits(1), 2f64.powi(-223)], 1)
            .expect("ok");
        assert_eq!(wf.decode_slice(&enc), Ok(vec![0.0, 2f64.powi(-222)]));
    }

    #[test]
    fn huge_values_are_exact() {
        // v · 2^F far above 2^128.
        let wf = WideFixed::new(4, 32).expect("valid");
        let big = wf.max_abs(1);
        assert!(big > 2f64.powi(222));
        let values = [big, -big, 1e66, -3.0e60, 1.0e20 + 65536.0];
        let enc = wf.encode_slice(&values, 1).expect("in range");
        assert_eq!(wf.decode_slice(&enc), Ok(values.to_vec()));
    }

    #[test]
    fn max_abs_bounds_the_worst_case_sum() {
        for (limbs, frac) in [(1, 30), (1, 0), (3, 64), (3, 158), (4, 222), (2, 10)] {
            let wf = WideFixed::new(limbs, frac).expect("valid");
            let bits = 64 * limbs as i32 - 1 - frac as i32;
            for n in [1usize, 2, 3, 7, 1000, 1 << 20, MAX_PARTICIPANTS] {
                let m = wf.max_abs(n);
                let ideal = pow2(bits) / n as f64;
                assert!(
                    m <= ideal && m >= ideal * (1.0 - 1e-9),
                    "{limbs} {frac} {n}: {m}"
                );
                // n copies of ±max_abs decode to n · max_abs: no overflow.
                for s in [1.0, -1.0] {
                    let enc = wf.encode_slice(&[s * m], n).expect("at the bound");
                    let sum = times(&wf, &enc, n as u64);
                    assert_eq!(wf.decode_slice(&sum), Ok(vec![s * m * n as f64]));
                }
                let out = m.next_up();
                assert_eq!(
                    wf.encode_slice(&[0.0, -out], n),
                    Err(CryptoError::OutOfRange {
                        index: 1,
                        value: -out,
                        max_abs: m
                    })
                );
            }
            assert_eq!(wf.max_abs(0), 0.0);
            assert_eq!(wf.max_abs(MAX_PARTICIPANTS + 1), 0.0);
        }
    }

    #[test]
    fn bad_participants_and_lengths() {
        let wf = WideFixed::model_default();
        for n in [0, MAX_PARTICIPANTS + 1] {
            assert!(matches!(
                wf.encode_slice(&[1.0], n),
                Err(CryptoError::InvalidFixedPoint(_))
            ));
        }
        assert_eq!(wf.encode_slice(&[], 3), Ok(vec![]));
        assert_eq!(wf.decode_slice(&[]), Ok(vec![]));
        assert_eq!(
            wf.decode_slice(&[0; 7]),
            Err(CryptoError::PartialRingValue { words: 7, limbs: 3 })
        );
    }

    #[test]
    fn thousand_parties_of_minus_one() {
        let wf = WideFixed::model_default();
        let one = wf.encode_slice(&[-1.0, 0.25, -1e-6], 1000).expect("ok");
        let mut acc = vec![0u64; one.len()];
        for _ in 0..1000 {
            wf.ring().add_assign(&mut acc, &one).expect("same length");
        }
        assert_eq!(acc, times(&wf, &one, 1000));
        let sum = wf.decode_slice(&acc).expect("length");
        assert_eq!(sum[0], -1000.0);
        assert_eq!(sum[1], 250.0);
        // -1e-6 rounds to a multiple of 2^-64 (exact in f64): 1000 times that.
        let unit = (-1e-6 * pow2(64)).round() * pow2(-64);
        assert_eq!(sum[2], unit * 1000.0);
    }

    #[test]
    fn decode_rounds_to_nearest_even() {
        // 1 limb, frac 0: integers up to 2^63; 2^53 + 1 is a tie.
        let wf = WideFixed::new(1, 0).expect("valid");
        let d = wf.decode_slice(&[(1u64 << 53) + 1]).expect("ok");
        assert_eq!(d, vec![2f64.powi(53)]);
        let d = wf.decode_slice(&[(1u64 << 53) + 3]).expect("ok");
        assert_eq!(d, vec![2f64.powi(53) + 4.0]);
        // 4 limbs: 2^200 + 2^147 is a tie (rounds down to even), one more
        // unit far below makes it round up.
        let wf = WideFixed::new(4, 0).expect("valid");
        let mut w = [0u64; 4];
        w[3] = 1 << 8; // 2^200
        w[2] = 1 << 19; // 2^147
        assert_eq!(wf.decode_slice(&w), Ok(vec![2f64.powi(200)]));
        w[0] = 1;
        assert_eq!(
            wf.decode_slice(&w),
            Ok(vec![2f64.powi(200) + 2f64.powi(148)])
        );
        // A tie across a limb boundary: 2^100 + 2^47 (+ 2^0 rounds up).
        let wf = WideFixed::new(2, 0).expect("valid");
        let mut w = [1u64 << 47, 1 << 36];
        assert_eq!(wf.decode_slice(&w), Ok(vec![2f64.powi(100)]));
        w[0] |= 1;
        assert_eq!(
            wf.decode_slice(&w),
            Ok(vec![2f64.powi(100) + 2f64.powi(48)])
        );
        // The most negative value, -2^255.
        let wf = WideFixed::new(4, 0).expect("valid");
        let mut w = [0u64; 4];
        w[3] = 1 << 63;
        assert_eq!(wf.decode_slice(&w), Ok(vec![-(2f64.powi(255))]));
    }
}
