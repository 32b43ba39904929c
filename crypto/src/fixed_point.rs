//! The codec between model updates (`f64`) and the ring `u64` mod 2^64 in
//! which masks are added.
//!
//! ```text
//! encode(x) = round(clamp(x, -clip, clip) * 2^frac_bits) as i64 as u64   (two's complement)
//! decode(v) = (v as i64) as f64 / 2^frac_bits
//! ```
//!
//! Rounding is to nearest, ties away from zero (`f64::round`). Sums of
//! encoded values are taken with wrapping addition; they decode correctly
//! as long as the true sum stays below 2^63 in magnitude, which
//! [`FixedPoint::check_sum_fits`] guarantees for a given participant count.
//!
//! ```
//! use fedcredit_crypto::fixed_point::FixedPoint;
//!
//! let fp = FixedPoint::new(16, 4.0)?;
//! let a = fp.encode(1.5)?;
//! let b = fp.encode(-9.0)?; // clipped to -4.0
//! assert_eq!(fp.decode(a.wrapping_add(b)), -2.5);
//! fp.check_sum_fits(1000)?;
//! # Ok::<(), fedcredit_crypto::CryptoError>(())
//! ```

use crate::CryptoError;

/// Largest supported number of fractional bits.
const MAX_FRAC_BITS: u32 = 62;
/// 2^63 as an `f64` (exact).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Fixed-point parameters: clip to ±`clip`, scale by 2^`frac_bits`, round to
/// nearest, two's complement mod 2^64. Always valid once constructed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FixedPoint {
    /// Number of fractional bits (the resolution is 2^-frac_bits).
    frac_bits: u32,
    /// Inputs are clamped to `[-clip, clip]` first, which bounds every
    /// encoded magnitude and so makes the no-wrap check possible.
    clip: f64,
}

impl FixedPoint {
    /// Validates and builds the codec.
    ///
    /// Errors ([`CryptoError::InvalidFixedPoint`]): `frac_bits > 62`; `clip`
    /// not finite or `<= 0`; `round(clip * 2^frac_bits) >= 2^63` (an encoded
    /// value would not fit in an `i64`); `round(clip * 2^frac_bits) == 0`
    /// (every value would encode to 0).
    pub fn new(frac_bits: u32, clip: f64) -> Result<Self, CryptoError> {
        if frac_bits > MAX_FRAC_BITS {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "frac_bits = {frac_bits} is above the maximum of {MAX_FRAC_BITS}"
            )));
        }
        if !clip.is_finite() || clip <= 0.0 {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "clip = {clip} must be finite and greater than 0"
            )));
        }
        let fp = Self { frac_bits, clip };
        let max = (clip * fp.scale()).round();
        if max >= TWO_POW_63 {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "clip * 2^frac_bits = {clip} * 2^{frac_bits} must be below 2^63; lower clip or frac_bits"
            )));
        }
        if max < 1.0 {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "clip * 2^frac_bits = {clip} * 2^{frac_bits} rounds to 0, so every value would encode to 0; \
                 raise clip or frac_bits"
            )));
        }
        Ok(fp)
    }

    /// Number of fractional bits.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// The clipping bound.
    pub fn clip(&self) -> f64 {
        self.clip
    }

    /// 2^frac_bits, exact.
    fn scale(&self) -> f64 {
        (1u64 << self.frac_bits) as f64
    }

    /// The largest encoded magnitude, `round(clip * 2^frac_bits)` (< 2^63).
    fn max_magnitude(&self) -> u64 {
        // In [1, 2^63) by construction, so the cast is exact.
        (self.clip * self.scale()).round() as u64
    }

    /// Encodes one value: clip to ±clip, scale, round, two's complement.
    ///
    /// Errors: [`CryptoError::NotFinite`] (with `index: 0`) for NaN or ±inf;
    /// infinities are not clipped, as they signal a bug upstream.
    pub fn encode(&self, x: f64) -> Result<u64, CryptoError> {
        self.encode_at(0, x)
    }

    /// [`FixedPoint::encode`] for a value at position `index`.
    fn encode_at(&self, index: usize, x: f64) -> Result<u64, CryptoError> {
        if !x.is_finite() {
            return Err(CryptoError::NotFinite { index, value: x });
        }
        let clipped = x.clamp(-self.clip, self.clip);
        // |clipped * 2^f| <= clip * 2^f, which rounds below 2^63: the cast
        // is exact.
        let v = (clipped * self.scale()).round() as i64;
        Ok(v as u64)
    }

    /// Encodes every value.
    ///
    /// Errors: [`CryptoError::NotFinite`] naming the first bad index.
    pub fn encode_slice(&self, xs: &[f64]) -> Result<Vec<u64>, CryptoError> {
        xs.iter()
            .enumerate()
            .map(|(i, &x)| self.encode_at(i, x))
            .collect()
    }

    /// `(v as i64) as f64 / 2^frac_bits`.
    pub fn decode(&self, v: u64) -> f64 {
        (v as i64) as f64 / self.scale()
    }

    /// Decodes every value.
    pub fn decode_slice(&self, vs: &[u64]) -> Vec<f64> {
        vs.iter().map(|&v| self.decode(v)).collect()
    }

    /// Checks that the sum of `participants` clipped, encoded inputs cannot
    /// wrap: `participants * round(clip * 2^frac_bits) < 2^63`, computed
    /// exactly in `u128`.
    ///
    /// Errors: [`CryptoError::SumMayWrap`], which says how many participants
    /// would fit.
    ///
    /// ```
    /// use fedcredit_crypto::{CryptoError, fixed_point::FixedPoint};
    ///
    /// let fp = FixedPoint::new(40, 1.0)?; // max magnitude 2^40
    /// assert_eq!(fp.max_participants(), (1 << 23) - 1);
    /// assert!(fp.check_sum_fits(1 << 22).is_ok());
    /// assert!(matches!(fp.check_sum_fits(1 << 23), Err(CryptoError::SumMayWrap { .. })));
    /// # Ok::<(), CryptoError>(())
    /// ```
    pub fn check_sum_fits(&self, participants: usize) -> Result<(), CryptoError> {
        let worst = participants as u128 * u128::from(self.max_magnitude());
        if worst < 1u128 << 63 {
            Ok(())
        } else {
            Err(CryptoError::SumMayWrap {
                participants,
                clip: self.clip,
                frac_bits: self.frac_bits,
                max_participants: self.max_participants(),
            })
        }
    }

    /// The largest `n` for which [`FixedPoint::check_sum_fits`]`(n)` is Ok:
    /// `(2^63 - 1) / round(clip * 2^frac_bits)`.
    pub fn max_participants(&self) -> u64 {
        match self.max_magnitude() {
            0 => u64::MAX,
            m => (i64::MAX as u64) / m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_validates() {
        assert!(FixedPoint::new(62, 1.0).is_ok());
        assert!(FixedPoint::new(0, 1.0).is_ok());
        for (f, c) in [
            (63, 1.0),
            (16, 0.0),
            (16, -1.0),
            (16, f64::NAN),
            (16, f64::INFINITY),
            (62, 2.0),
            (0, 1e19),
            (0, f64::MAX),
            (0, 0.49),
            (10, 1e-9),
        ] {
            assert!(
                matches!(
                    FixedPoint::new(f, c),
                    Err(CryptoError::InvalidFixedPoint(_))
                ),
                "frac_bits {f}, clip {c}"
            );
        }
        // Just below 2^63 after rounding.
        assert!(FixedPoint::new(0, 9.223_372_036_854_774e18).is_ok());
    }

    #[test]
    fn encode_examples() {
        let fp = FixedPoint::new(8, 10.0).expect("valid");
        assert_eq!(fp.encode(0.0), Ok(0));
        assert_eq!(fp.encode(-0.0), Ok(0));
        assert_eq!(fp.encode(1.0), Ok(256));
        assert_eq!(fp.encode(-1.0), Ok((-256i64) as u64));
        assert_eq!(fp.encode(100.0), Ok(2560));
        assert_eq!(fp.encode(-100.0), Ok((-2560i64) as u64));
        // Ties away from zero.
        assert_eq!(fp.encode(0.5 / 256.0), Ok(1));
        assert_eq!(fp.encode(-0.5 / 256.0), Ok(u64::MAX));
        assert_eq!(fp.decode(u64::MAX), -1.0 / 256.0);
    }

    #[test]
    fn non_finite_is_an_error_with_index() {
        let fp = FixedPoint::new(8, 10.0).expect("valid");
        assert!(matches!(
            fp.encode(f64::NAN),
            Err(CryptoError::NotFinite { index: 0, value }) if value.is_nan()
        ));
        assert_eq!(
            fp.encode(f64::NEG_INFINITY),
            Err(CryptoError::NotFinite {
                index: 0,
                value: f64::NEG_INFINITY
            })
        );
        assert_eq!(
            fp.encode_slice(&[1.0, 2.0, f64::INFINITY, f64::NAN]),
            Err(CryptoError::NotFinite {
                index: 2,
                value: f64::INFINITY
            })
        );
        assert_eq!(
            fp.encode_slice(&[1.0, -1.0]),
            Ok(vec![256, (-256i64) as u64])
        );
        assert_eq!(fp.decode_slice(&[256, (-256i64) as u64]), vec![1.0, -1.0]);
    }

    #[test]
    fn extreme_parameters_roundtrip() {
        let fp = FixedPoint::new(62, 1.0).expect("valid");
        assert_eq!(fp.encode(1.0), Ok(1 << 62));
        assert_eq!(fp.decode(1 << 62), 1.0);
        assert_eq!(fp.max_participants(), 1);
        assert!(fp.check_sum_fits(1).is_ok());
        assert_eq!(
            fp.check_sum_fits(2),
            Err(CryptoError::SumMayWrap {
                participants: 2,
                clip: 1.0,
                frac_bits: 62,
                max_participants: 1
            })
        );
    }

    #[test]
    fn max_participants_is_tight() {
        for (f, c) in [(16, 4.0), (20, 1.0), (32, 0.3), (0, 1.0), (10, 1e6)] {
            let fp = FixedPoint::new(f, c).expect("valid");
            let n = fp.max_participants();
            let m = u128::from(fp.max_magnitude());
            assert!(u128::from(n) * m < 1 << 63);
            assert!((u128::from(n) + 1) * m >= 1 << 63);
            if let Ok(n) = usize::try_from(n) {
                assert!(fp.check_sum_fits(n).is_ok());
                assert!(fp.check_sum_fits(n + 1).is_err());
            }
        }
        assert!(
            FixedPoint::new(16, 1.0)
                .expect("valid")
                .check_sum_fits(0)
                .is_ok()
        );
    }

    #[test]
    fn worst_case_sum_does_not_wrap() {
        let fp = FixedPoint::new(20, 3.0).expect("valid");
        let n = 1000;
        fp.check_sum_fits(n).expect("fits");
        let lo = fp.encode(-1e9).expect("finite");
        let sum = (0..n).fold(0u64, |acc, _| acc.wrapping_add(lo));
        assert_eq!(fp.decode(sum), -3.0 * n as f64);
    }
}
