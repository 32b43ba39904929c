//! The wide codec between `f64` values and `u64` words mod 2^64, for
//! statistics whose dynamic range does not fit one word.
//!
//! Secure aggregation adds vectors of `u64` words with wrapping arithmetic.
//! Credit-model statistics span a huge range (Σx² of loan amounts over a
//! million rows is about 1e20 > 2^63, while other sums are about 1e-3), so
//! one word per value cannot give both range and 1e-9 relative precision,
//! and parties must not agree on per-column scales (that would leak
//! magnitudes). Instead each value is a signed big integer:
//!
//! ```text
//! V      = round(v · 2^F)                 F = frac_bits, ties away from zero
//! V mod 2^(32·L) = Σ_k d_k · 2^(32·k)     L = digits, 0 <= d_k < 2^32
//! words  = [d_0, d_1, ..., d_(L-1)]       one digit per u64 word, least significant first
//! ```
//!
//! Every word is below 2^32, so the word-wise wrapping sum of up to
//! 2^32 − 1 encoded vectors never wraps a word (each word sum is below
//! (2^32 − 1) · 2^32 < 2^64), and masks added mod 2^64 cancel word by word.
//! Decoding propagates the carries between the word sums, drops the final
//! carry (mod 2^(32·L)), reads the result as a two's-complement integer T
//! of 32·L bits and returns T · 2^-F correctly rounded (to nearest, ties to
//! even). [`WideFixed::max_abs`] bounds one party's values so that the sum
//! over all participants stays inside the signed range.
//!
//! This is exact integer arithmetic on `u32` digits with `u64`/`u128`
//! intermediates, not a cipher.
//!
//! ```
//! use fedcredit_crypto::{mask::add_assign, wide::WideFixed};
//!
//! let wf = WideFixed::model_default(); // 5 digits, 64 fractional bits
//! let mut a = wf.encode_slice(&[1e20, 0.001, -2.5], 2)?;
//! let b = wf.encode_slice(&[3e19, -0.0005, 1.25], 2)?;
//! assert_eq!(a.len(), wf.words_for(3));
//! add_assign(&mut a, &b)?; // word-wise wrapping add
//! let sum = wf.decode_slice(&a)?;
//! assert_eq!(sum[0], 1.3e20);
//! assert!((sum[1] - 0.0005).abs() <= 1e-19);
//! assert_eq!(sum[2], -1.25);
//! # Ok::<(), fedcredit_crypto::CryptoError>(())
//! ```

use crate::CryptoError;

/// Fewest digits per value.
const MIN_DIGITS: u32 = 2;
/// Most digits per value (256-bit integers).
const MAX_DIGITS: u32 = 8;
/// Integer bits (including the sign) that `frac_bits` must leave free, so
/// that even [`MAX_PARTICIPANTS`] parties may each contribute about ±2.
const MIN_INT_BITS: u32 = 34;

/// The largest number of encoded vectors whose word-wise sum is guaranteed
/// not to wrap a word: 2^32 − 1.
pub const MAX_PARTICIPANTS: usize = u32::MAX as usize;

/// An integer of up to 32·[`MAX_DIGITS`] bits as base-2^32 digits, least
/// significant first; only the first `digits` are meaningful.
type Digits = [u32; MAX_DIGITS as usize];

/// Wide fixed point: each value is `digits` base-2^32 digits of
/// round(v·2^frac_bits), two's complement mod 2^(32·digits). Always valid
/// once constructed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WideFixed {
    /// Digits (= `u64` words) per value; the integers are 32·digits bits.
    digits: u32,
    /// Fractional bits: the resolution is 2^-frac_bits.
    frac_bits: u32,
}

impl WideFixed {
    /// Validates and builds the codec.
    ///
    /// Errors ([`CryptoError::InvalidFixedPoint`]): `digits` outside
    /// `2..=8`; `frac_bits > 32·digits − 34` (at least 34 integer bits,
    /// sign included, must remain).
    ///
    /// ```
    /// use fedcredit_crypto::{CryptoError, wide::WideFixed};
    ///
    /// assert!(WideFixed::new(2, 30).is_ok());
    /// assert!(matches!(WideFixed::new(2, 31), Err(CryptoError::InvalidFixedPoint(_))));
    /// assert!(matches!(WideFixed::new(9, 0), Err(CryptoError::InvalidFixedPoint(_))));
    /// ```
    pub fn new(digits: u32, frac_bits: u32) -> Result<Self, CryptoError> {
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "digits = {digits} must be between {MIN_DIGITS} and {MAX_DIGITS}"
            )));
        }
        let max_frac = 32 * digits - MIN_INT_BITS;
        if frac_bits > max_frac {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "frac_bits = {frac_bits} is above 32 * digits - {MIN_INT_BITS} = {max_frac} \
                 for digits = {digits}: at least {MIN_INT_BITS} integer bits (with the sign) must remain"
            )));
        }
        Ok(Self { digits, frac_bits })
    }

    /// The default for model rounds: 5 digits (160 bits), 64 fractional
    /// bits: range ±2^95 ≈ 4e28 for a sum, resolution 2^-64 ≈ 5.4e-20.
    /// Every `f64` with |v| ≥ 2^-12 is a multiple of 2^-64 and so encodes
    /// exactly.
    pub fn model_default() -> Self {
        Self {
            digits: 5,
            frac_bits: 64,
        }
    }

    /// Digits (= `u64` words) per value.
    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// Number of fractional bits.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// Number of words for `values` values (`values · digits`, saturating).
    pub fn words_for(&self, values: usize) -> usize {
        values.saturating_mul(self.digits as usize)
    }

    /// Largest |v| allowed for one party's value when `participants` values
    /// are summed, so that the sum cannot overflow the signed 32·digits-bit
    /// range: about 2^(32·digits − 1 − frac_bits) / participants.
    ///
    /// Exactly: with M = ⌊(2^(32·digits − 1) − 1) / participants⌋, the
    /// result is M rounded toward zero to an `f64`, times 2^-frac_bits. Any
    /// |v| ≤ max_abs encodes to |V| ≤ M, so the sum of `participants` such
    /// values is at most 2^(32·digits − 1) − 1 in magnitude.
    ///
    /// Returns 0.0 when `participants` is 0 or above [`MAX_PARTICIPANTS`]
    /// (which [`WideFixed::encode_slice`] rejects).
    ///
    /// ```
    /// use fedcredit_crypto::wide::WideFixed;
    ///
    /// let wf = WideFixed::model_default();
    /// assert_eq!(wf.max_abs(1), 2f64.powi(95) * (1.0 - f64::EPSILON / 2.0));
    /// assert!(wf.max_abs(1000) <= 2f64.powi(95) / 1000.0);
    /// ```
    pub fn max_abs(&self, participants: usize) -> f64 {
        let Some(n) = participants_u64(participants) else {
            return 0.0;
        };
        let len = self.len();
        // 2^(32·len − 1) − 1.
        let mut m: Digits = [0; MAX_DIGITS as usize];
        m[..len].fill(u32::MAX);
        m[len - 1] = u32::MAX >> 1;
        // Long division by n < 2^32, most significant digit first: the
        // remainder is below n, so `rem << 32 | d` fits in a u64.
        let mut rem = 0u64;
        for d in m[..len].iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*d);
            // cur / n < 2^32 because rem < n.
            *d = (cur / n) as u32;
            rem = cur % n;
        }
        // M ≥ 2^(32·len − 34) and frac_bits ≤ 32·len − 34, so the result is
        // at least 1: a normal f64, and scaling by 2^-frac_bits is exact.
        to_f64_toward_zero(&m, len) * pow2(-(self.frac_bits as i32))
    }

    /// Encodes values, appending `digits` words per value (value-major: all
    /// digits of value 0, then value 1, ...). Every word is below 2^32.
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
    /// let wf = WideFixed::new(2, 16)?; // 64-bit integers, 16 fractional bits
    /// assert_eq!(wf.encode_slice(&[1.0], 1)?, vec![1 << 16, 0]);
    /// assert_eq!(wf.encode_slice(&[-1.0], 1)?, vec![0xFFFF_0000, 0xFFFF_FFFF]);
    /// assert!(matches!(
    ///     wf.encode_slice(&[0.0, 1e15], 2), // bound 2^46 ≈ 7e13
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
                "participants = {participants} must be between 1 and {MAX_PARTICIPANTS} \
                 (more would let word sums wrap modulo 2^64)"
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
            out.extend(v[..len].iter().map(|&d| u64::from(d)));
        }
        Ok(out)
    }

    /// Decodes word sums into one `f64` per value: carries are propagated
    /// from the least significant word up, the final carry is dropped
    /// (mod 2^(32·digits)), the result is read as a two's-complement integer
    /// T and T · 2^-frac_bits is returned correctly rounded (to nearest,
    /// ties to even). Words may be the wrapping sum of up to
    /// [`MAX_PARTICIPANTS`] encoded vectors, masked or not.
    ///
    /// Errors: [`CryptoError::LengthMismatch`] if `words.len()` is not a
    /// multiple of `digits` (`expected` is the next multiple).
    pub fn decode_slice(&self, words: &[u64]) -> Result<Vec<f64>, CryptoError> {
        let len = self.len();
        if !words.len().is_multiple_of(len) {
            return Err(CryptoError::LengthMismatch {
                expected: words.len().div_ceil(len) * len,
                got: words.len(),
            });
        }
        Ok(words
            .chunks_exact(len)
            .map(|sums| self.decode_one(sums))
            .collect())
    }

    /// `digits` as a `usize`.
    fn len(&self) -> usize {
        self.digits as usize
    }

    /// round(v · 2^F) mod 2^(32·digits), ties away from zero, for a finite
    /// `v` with |v| ≤ max_abs(1) (so |V| < 2^(32·digits − 1)).
    fn encode_in_range(&self, value: f64) -> Digits {
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
        let mut v: Digits = [0; MAX_DIGITS as usize];
        let shift = exp + self.frac_bits as i32;
        if shift >= 0 {
            // |V| = mant · 2^shift, an integer: place mant · 2^(shift mod 32)
            // (< 2^84) at digit shift / 32. The range check guarantees that
            // nothing lands at or above digit `len`.
            let shift = shift as u32;
            let q = (shift / 32) as usize;
            let placed = u128::from(mant) << (shift % 32);
            for j in 0..3 {
                let part = (placed >> (32 * j)) as u32;
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
            let q = if k >= 64 {
                0
            } else {
                let rem = mant & ((1u64 << k) - 1);
                (mant >> k) + u64::from(rem >= 1u64 << (k - 1))
            };
            v[0] = q as u32;
            v[1] = (q >> 32) as u32;
        }
        if negative {
            negate(&mut v, len);
        }
        v
    }

    /// Decodes one value's `digits` word sums.
    fn decode_one(&self, sums: &[u64]) -> f64 {
        let len = self.len();
        let mut t: Digits = [0; MAX_DIGITS as usize];
        // sum < 2^64 and carry < 2^33, so `s + carry` fits in a u128.
        let mut carry = 0u128;
        for (d, &s) in t.iter_mut().zip(sums) {
            let x = u128::from(s) + carry;
            *d = x as u32;
            carry = x >> 32;
        }
        // The final carry counts multiples of 2^(32·len): dropped.
        let negative = t[len - 1] >> 31 == 1;
        if negative {
            // Magnitude 2^(32·len) − T, at most 2^(32·len − 1): fits unsigned.
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

/// x ← 2^(32·len) − x (two's-complement negation mod 2^(32·len)).
fn negate(x: &mut Digits, len: usize) {
    let mut carry = 1u64;
    for d in &mut x[..len] {
        let t = u64::from(!*d) + carry;
        *d = t as u32;
        carry = t >> 32;
    }
}

/// Number of significant bits of the unsigned integer `x[..len]`.
fn bit_len(x: &Digits, len: usize) -> u32 {
    x[..len]
        .iter()
        .rposition(|&d| d != 0)
        .map_or(0, |k| 32 * k as u32 + (32 - x[k].leading_zeros()))
}

/// Bits `lo..lo + 64` of the unsigned integer `x` (missing digits read as 0).
fn bits_at(x: &Digits, lo: u32) -> u64 {
    let q = (lo / 32) as usize;
    let acc = (0..3).fold(0u128, |acc, j| {
        acc | x.get(q + j).map_or(0, |&d| u128::from(d) << (32 * j))
    });
    (acc >> (lo % 32)) as u64
}

/// Whether any of bits `0..lo` of `x` is set.
fn any_below(x: &Digits, lo: u32) -> bool {
    let q = (lo / 32) as usize;
    let r = lo % 32;
    x[..q].iter().any(|&d| d != 0) || (r > 0 && x[q] & ((1u32 << r) - 1) != 0)
}

/// The unsigned integer `x[..len]` times 2^-frac_bits, correctly rounded
/// (to nearest, ties to even), for `len ≤ 8` and `frac_bits ≤ 222`.
fn to_f64_nearest(x: &Digits, len: usize, frac_bits: u32) -> f64 {
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
fn to_f64_toward_zero(x: &Digits, len: usize) -> f64 {
    let lo = bit_len(x, len).saturating_sub(53);
    // At most 53 significant bits: exact.
    (bits_at(x, lo) & ((1 << 53) - 1)) as f64 * pow2(lo as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(d: &[u32]) -> Vec<u64> {
        d.iter().map(|&x| u64::from(x)).collect()
    }

    #[test]
    fn new_validates() {
        for digits in MIN_DIGITS..=MAX_DIGITS {
            let max = 32 * digits - MIN_INT_BITS;
            assert!(WideFixed::new(digits, 0).is_ok());
            assert!(WideFixed::new(digits, max).is_ok());
            assert!(matches!(
                WideFixed::new(digits, max + 1),
                Err(CryptoError::InvalidFixedPoint(_))
            ));
        }
        for digits in [0, 1, 9, 100] {
            assert!(matches!(
                WideFixed::new(digits, 0),
                Err(CryptoError::InvalidFixedPoint(_))
            ));
        }
        let d = WideFixed::model_default();
        assert_eq!(WideFixed::new(5, 64), Ok(d));
        assert_eq!((d.digits(), d.frac_bits(), d.words_for(3)), (5, 64, 15));
    }

    /// Known answers for the default codec: 2^64 · v in 5 digits.
    #[test]
    fn known_answers() {
        let wf = WideFixed::model_default();
        let m = u32::MAX;
        let cases: [(f64, [u32; 5]); 8] = [
            (0.0, [0, 0, 0, 0, 0]),
            (-0.0, [0, 0, 0, 0, 0]),
            (1.0, [0, 0, 1, 0, 0]),
            (-1.0, [0, 0, m, m, m]),
            (0.5, [0, 1 << 31, 0, 0, 0]),
            (2f64.powi(-64), [1, 0, 0, 0, 0]),
            (-(2f64.powi(-64)), [m, m, m, m, m]),
            (2f64.powi(94), [0, 0, 0, 0, 1 << 30]),
        ];
        for (v, d) in cases {
            let enc = wf.encode_slice(&[v], 1).expect("in range");
            assert_eq!(enc, words(&d), "encode({v})");
            assert_eq!(wf.decode_slice(&enc), Ok(vec![v]), "decode({v})");
        }
        // Value-major layout.
        assert_eq!(
            wf.encode_slice(&[1.0, -1.0], 1),
            Ok(words(&[0, 0, 1, 0, 0, 0, 0, m, m, m]))
        );
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        let wf = WideFixed::new(2, 4).expect("valid");
        let u = 1.0 / 16.0;
        for (k, expected) in [(0.5, 1.0), (1.5, 2.0), (2.5, 3.0), (0.49, 0.0), (0.51, 1.0)] {
            let enc = wf.encode_slice(&[k * u, -k * u], 1).expect("in range");
            let dec = vec![expected * u, -expected * u];
            assert_eq!(wf.decode_slice(&enc), Ok(dec), "{k} units");
        }
        let minus_one_unit = vec![u64::from(u32::MAX); 2];
        assert_eq!(wf.encode_slice(&[-0.5 * u], 1), Ok(minus_one_unit));
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
        let wf = WideFixed::new(8, 222).expect("valid");
        let enc = wf
            .encode_slice(&[f64::from_bits(1), 2f64.powi(-223)], 1)
            .expect("ok");
        assert_eq!(wf.decode_slice(&enc), Ok(vec![0.0, 2f64.powi(-222)]));
    }

    #[test]
    fn huge_values_are_exact() {
        // v · 2^F far above 2^128.
        let wf = WideFixed::new(8, 32).expect("valid");
        let big = wf.max_abs(1);
        assert!(big > 2f64.powi(222));
        let values = [big, -big, 1e66, -3.0e60, 1.0e20 + 65536.0];
        let enc = wf.encode_slice(&values, 1).expect("in range");
        assert_eq!(wf.decode_slice(&enc), Ok(values.to_vec()));
    }

    #[test]
    fn max_abs_bounds_the_worst_case_sum() {
        for (digits, frac) in [(2, 30), (2, 0), (5, 64), (5, 126), (8, 222), (3, 10)] {
            let wf = WideFixed::new(digits, frac).expect("valid");
            let bits = 32 * digits as i32 - 1 - frac as i32;
            for n in [1usize, 2, 3, 7, 1000, 1 << 20, MAX_PARTICIPANTS] {
                let m = wf.max_abs(n);
                let ideal = pow2(bits) / n as f64;
                assert!(
                    m <= ideal && m >= ideal * (1.0 - 1e-9),
                    "{digits} {frac} {n}: {m}"
                );
                // n copies of ±max_abs decode to n · max_abs: no overflow.
                for s in [1.0, -1.0] {
                    let enc = wf.encode_slice(&[s * m], n).expect("at the bound");
                    let sum: Vec<u64> = enc.iter().map(|&w| w * n as u64).collect();
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
            Err(CryptoError::LengthMismatch {
                expected: 10,
                got: 7
            })
        );
    }

    #[test]
    fn thousand_parties_of_minus_one() {
        let wf = WideFixed::model_default();
        let one = wf.encode_slice(&[-1.0, 0.25, -1e-6], 1000).expect("ok");
        let mut acc = vec![0u64; one.len()];
        for _ in 0..1000 {
            for (a, &w) in acc.iter_mut().zip(&one) {
                *a = a.wrapping_add(w);
            }
        }
        let sum = wf.decode_slice(&acc).expect("length");
        assert_eq!(sum[0], -1000.0);
        assert_eq!(sum[1], 250.0);
        // -1e-6 rounds to a multiple of 2^-64 (exact in f64): 1000 times that.
        let unit = (-1e-6 * pow2(64)).round() * pow2(-64);
        assert_eq!(sum[2], unit * 1000.0);
    }

    #[test]
    fn decode_rounds_to_nearest_even() {
        // 2 digits, frac 0: integers up to 2^63; 2^53 + 1 is a tie.
        let wf = WideFixed::new(2, 0).expect("valid");
        let t = (1u64 << 53) + 1;
        let d = wf.decode_slice(&[t & 0xFFFF_FFFF, t >> 32]).expect("ok");
        assert_eq!(d, vec![2f64.powi(53)]);
        let t = (1u64 << 53) + 3;
        let d = wf.decode_slice(&[t & 0xFFFF_FFFF, t >> 32]).expect("ok");
        assert_eq!(d, vec![2f64.powi(53) + 4.0]);
        // 8 digits: 2^200 + 2^147 is a tie (rounds down to even), one more
        // unit far below makes it round up.
        let wf = WideFixed::new(8, 0).expect("valid");
        let mut w = [0u64; 8];
        w[6] = 1 << 8; // 2^200
        w[4] = 1 << 19; // 2^147
        assert_eq!(wf.decode_slice(&w), Ok(vec![2f64.powi(200)]));
        w[0] = 1;
        assert_eq!(
            wf.decode_slice(&w),
            Ok(vec![2f64.powi(200) + 2f64.powi(148)])
        );
        // The most negative value, -2^255.
        let mut w = [0u64; 8];
        w[7] = 1 << 31;
        assert_eq!(wf.decode_slice(&w), Ok(vec![-(2f64.powi(255))]));
    }
}
