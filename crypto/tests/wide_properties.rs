//! Property tests for the wide fixed-point codec ([`fedcredit_crypto::wide`]).
//!
//! References are exact and independent of the codec's big-integer code:
//!
//! - `rounded(x) = (x · 2^F).round() · 2^-F` is computed exactly in `f64`:
//!   scaling by a power of two is exact (no overflow or underflow in these
//!   ranges), `round` is exact and ties away from zero like the codec, and
//!   the result is either `x` itself (when `x · 2^F` is already an integer)
//!   or an integer below 2^53 times 2^-F, which is representable.
//! - The sum of encodings must decode to the correctly rounded value of
//!   Σ rounded(x_i), which [`fsum`] (Shewchuk's exact summation, as in
//!   Python's `math.fsum`) computes with floating-point expansions.
//! - For values whose V = x · 2^F fits comfortably in an `i128`, the sum of
//!   the V is taken exactly as `i128`; `i128 as f64` rounds correctly.

use fedcredit_crypto::CryptoError;
use fedcredit_crypto::mask::{MaskSeed, add_mask, sub_mask};
use fedcredit_crypto::wide::{MAX_PARTICIPANTS, WideFixed};
use proptest::prelude::*;

/// Correctly rounded sum (Shewchuk 1997; CPython `math_fsum`, without the
/// overflow handling, which these magnitudes never need).
fn fsum(xs: &[f64]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for &x0 in xs {
        let mut x = x0;
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    let mut n = partials.len();
    if n == 0 {
        return 0.0;
    }
    n -= 1;
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    // Half-even rounding across partials.
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    hi
}

/// round(x · 2^F) · 2^-F, exactly (see the module doc).
fn rounded(x: f64, frac_bits: u32) -> f64 {
    (x * 2f64.powi(frac_bits as i32)).round() * 2f64.powi(-(frac_bits as i32))
}

/// Word-wise wrapping sum of equally long vectors.
fn wrapping_sum(vs: &[Vec<u64>], len: usize) -> Vec<u64> {
    let mut acc = vec![0u64; len];
    for v in vs {
        for (a, &w) in acc.iter_mut().zip(v) {
            *a = a.wrapping_add(w);
        }
    }
    acc
}

/// Valid parameters: digits 2..=8, frac_bits 0..=32·digits − 34.
fn params() -> impl Strategy<Value = WideFixed> {
    (2u32..=8)
        .prop_flat_map(|d| (Just(d), 0..=32 * d - 34))
        .prop_map(|(d, f)| WideFixed::new(d, f).expect("valid parameters"))
}

/// Any finite `f64` with |x| ≤ max_abs(1): every exponent from subnormal
/// up to the bound, random mantissa and sign.
fn in_range(wf: WideFixed) -> impl Strategy<Value = f64> {
    let top = 1023 + 32 * wf.digits() - 1 - wf.frac_bits();
    (any::<bool>(), 0u64..=u64::from(top), 0u64..1 << 52).prop_map(move |(neg, e, m)| {
        let x = f64::from_bits(e << 52 | m).min(wf.max_abs(1));
        if neg { -x } else { x }
    })
}

/// Magnitudes spanning 1e-6..1e24, mixed signs, some zeros.
fn credit_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (any::<bool>(), -6.0f64..24.0, 1.0f64..10.0)
            .prop_map(|(neg, e, m)| if neg { -m * 10f64.powf(e) } else { m * 10f64.powf(e) }),
        1 => Just(0.0),
        1 => Just(-0.0),
    ]
}

/// `n` parties' vectors of length `len`.
fn party_vectors(max_n: usize, max_len: usize) -> impl Strategy<Value = Vec<Vec<f64>>> {
    (1..max_n, 0..max_len).prop_flat_map(|(n, len)| {
        prop::collection::vec(prop::collection::vec(credit_value(), len), n)
    })
}

/// Encodes each party's vector for `n` participants.
fn encode_all(wf: &WideFixed, parties: &[Vec<f64>]) -> Vec<Vec<u64>> {
    parties
        .iter()
        .map(|x| wf.encode_slice(x, parties.len()).expect("in range"))
        .collect()
}

/// The reference sum of column `j`: correctly rounded Σ rounded(x_ij).
fn column_reference(parties: &[Vec<f64>], j: usize, frac_bits: u32) -> f64 {
    let col: Vec<f64> = parties.iter().map(|x| rounded(x[j], frac_bits)).collect();
    fsum(&col)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// decode(encode(x)) is exactly round(x · 2^F) · 2^-F for any
    /// parameters and any finite x in range (subnormals, and x · 2^F far
    /// above 2^128, included), so within 2^-(F+1) of x and equal to x when
    /// x is a multiple of 2^-F.
    #[test]
    fn round_trip_is_exact_rounding(
        (wf, xs) in params().prop_flat_map(|wf| (Just(wf), prop::collection::vec(in_range(wf), 1..8)))
    ) {
        let enc = wf.encode_slice(&xs, 1).expect("in range");
        prop_assert_eq!(enc.len(), wf.words_for(xs.len()));
        prop_assert!(enc.iter().all(|&w| w < 1 << 32));
        let dec = wf.decode_slice(&enc).expect("length");
        let unit = 2f64.powi(-(wf.frac_bits() as i32));
        for (&x, &d) in xs.iter().zip(&dec) {
            prop_assert_eq!(d, rounded(x, wf.frac_bits()), "x = {:e}", x);
            prop_assert!((d - x).abs() <= unit / 2.0, "x = {:e}, d = {:e}", x, d);
            if (x / unit).fract() == 0.0 {
                prop_assert_eq!(d, x);
            }
        }
    }

    /// With the default codec every |x| ≥ 2^-12 round-trips exactly, and the
    /// relative error is below 1e-15 from 1e-3 up.
    #[test]
    fn default_round_trip_precision(x in credit_value()) {
        let wf = WideFixed::model_default();
        let d = wf.decode_slice(&wf.encode_slice(&[x], 1).expect("in range")).expect("length")[0];
        if x.abs() >= 2f64.powi(-12) {
            prop_assert_eq!(d, x);
        }
        if x.abs() >= 1e-3 {
            prop_assert!(((d - x) / x).abs() <= 1e-15);
        }
        prop_assert!((d - x).abs() <= 2f64.powi(-65));
    }

    /// The word-wise wrapping sum of n < 20 parties' encodings decodes to
    /// the correctly rounded exact sum of the encoded values, and so is
    /// within n · 2^-(F+1) (encoding) plus half an ulp (decoding) of the
    /// exact sum of the inputs.
    #[test]
    fn sums_decode_exactly(parties in party_vectors(20, 40)) {
        let wf = WideFixed::model_default();
        let n = parties.len();
        let len = parties[0].len();
        let sum = wf.decode_slice(&wrapping_sum(&encode_all(&wf, &parties), wf.words_for(len))).expect("length");
        for (j, &s) in sum.iter().enumerate() {
            prop_assert_eq!(s, column_reference(&parties, j, 64), "column {}", j);
            let col: Vec<f64> = parties.iter().map(|x| x[j]).collect();
            let exact = fsum(&col);
            // |s − Σ rounded| ≤ ½ ulp, |exact − Σ x| ≤ ½ ulp, |Σ rounded − Σ x| ≤ n · 2^-65.
            let bound = (n as f64 * 2f64.powi(-65) + exact.abs() * f64::EPSILON) * (1.0 + f64::EPSILON);
            prop_assert!((s - exact).abs() <= bound, "column {}: {:e} vs {:e}", j, s, exact);
        }
    }

    /// A second exact reference: values k · 2^-10 with |k| < 2^50 encode to
    /// V = k · 2^54 (default codec), whose sum over < 20 parties fits an
    /// `i128` exactly.
    #[test]
    fn sums_match_i128_reference(
        ks in (1usize..20, 1usize..10).prop_flat_map(|(n, len)| {
            prop::collection::vec(prop::collection::vec(-(1i64 << 50)..1i64 << 50, len), n)
        })
    ) {
        let wf = WideFixed::model_default();
        let parties: Vec<Vec<f64>> = ks
            .iter()
            .map(|k| k.iter().map(|&k| k as f64 / 1024.0).collect())
            .collect();
        let len = ks[0].len();
        let sum = wf.decode_slice(&wrapping_sum(&encode_all(&wf, &parties), wf.words_for(len))).expect("length");
        for (j, &s) in sum.iter().enumerate() {
            let v: i128 = ks.iter().map(|k| i128::from(k[j]) << 54).sum();
            prop_assert_eq!(s, v as f64 * 2f64.powi(-64));
        }
    }

    /// Pairwise masks (party u adds PRG(s_uv), party v subtracts it, mod
    /// 2^64 per word) hide the words but cancel in the sum, which decodes
    /// exactly as without masks.
    #[test]
    fn masked_sums_decode_exactly(
        parties in party_vectors(6, 30).prop_filter("two parties", |p| p.len() >= 2),
        seed in any::<[u8; 32]>(),
    ) {
        let wf = WideFixed::model_default();
        let n = parties.len();
        let words = wf.words_for(parties[0].len());
        let plain = encode_all(&wf, &parties);
        let mut masked = plain.clone();
        for u in 0..n {
            for v in u + 1..n {
                let mut s = seed;
                s[0] ^= u as u8;
                s[1] ^= v as u8;
                add_mask(&mut masked[u], &MaskSeed::from_bytes(s));
                sub_mask(&mut masked[v], &MaskSeed::from_bytes(s));
            }
        }
        if words > 0 {
            prop_assert!(masked[0].iter().any(|&w| w >= 1 << 32), "masking changed nothing");
        }
        let expected = wf.decode_slice(&wrapping_sum(&plain, words)).expect("length");
        let got = wf.decode_slice(&wrapping_sum(&masked, words)).expect("length");
        prop_assert_eq!(&got, &expected);
        for (j, &s) in got.iter().enumerate() {
            prop_assert_eq!(s, column_reference(&parties, j, 64));
        }
    }

    /// Errors name the first bad index; nothing is clipped.
    #[test]
    fn errors_name_the_first_bad_index(
        len in 1usize..20,
        bad_at in any::<prop::sample::Index>(),
        kind in 0u8..5,
        n in 1usize..1000,
    ) {
        let wf = WideFixed::model_default();
        let bound = wf.max_abs(n);
        let index = bad_at.index(len);
        let bad = match kind {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => bound.next_up(),
            _ => -bound * 2.0,
        };
        let mut xs = vec![bound; len];
        xs[index] = bad;
        if index + 1 < len {
            xs[index + 1] = f64::NAN;
        }
        match wf.encode_slice(&xs, n) {
            Err(CryptoError::NotFinite { index: i, value }) => {
                prop_assert!(kind < 3);
                prop_assert_eq!(i, index);
                prop_assert_eq!(value.to_bits(), bad.to_bits());
            }
            Err(CryptoError::OutOfRange { index: i, value, max_abs }) => {
                prop_assert!(kind >= 3);
                prop_assert_eq!(i, index);
                prop_assert_eq!(value, bad);
                prop_assert_eq!(max_abs, bound);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    /// Decoding any words (e.g. corrupted sums) never panics and stays in
    /// the signed range.
    #[test]
    fn decode_is_total(
        (wf, words) in params().prop_flat_map(|wf| {
            let d = wf.digits() as usize;
            (Just(wf), (0usize..6).prop_flat_map(move |k| prop::collection::vec(any::<u64>(), k * d)))
        })
    ) {
        let dec = wf.decode_slice(&words).expect("multiple of digits");
        let limit = 2f64.powi(32 * wf.digits() as i32 - 1 - wf.frac_bits() as i32);
        prop_assert_eq!(dec.len(), words.len() / wf.digits() as usize);
        prop_assert!(dec.iter().all(|v| v.is_finite() && v.abs() <= limit));
    }
}

/// At the bound, the worst case (every party at ±max_abs) still decodes
/// without overflow, for the largest participant count too.
#[test]
fn worst_case_at_max_participants() {
    for wf in [
        WideFixed::model_default(),
        WideFixed::new(2, 30).expect("valid"),
    ] {
        let n = MAX_PARTICIPANTS;
        let m = wf.max_abs(n);
        for s in [1.0, -1.0] {
            let enc = wf.encode_slice(&[s * m], n).expect("at the bound");
            let sum: Vec<u64> = enc.iter().map(|&w| w * n as u64).collect();
            assert_eq!(wf.decode_slice(&sum), Ok(vec![s * m * n as f64]));
        }
    }
}

#[test]
fn fsum_reference_is_correctly_rounded() {
    assert_eq!(fsum(&[1e100, 1.0, -1e100, 1e-100]), 1.0);
    assert_eq!(fsum(&[0.1; 10]), 1.0);
    // 2^53 + 1 + 2^-60: above the tie, so it rounds up.
    assert_eq!(
        fsum(&[2f64.powi(53), 1.0, 2f64.powi(-60)]),
        2f64.powi(53) + 2.0
    );
    assert_eq!(fsum(&[2f64.powi(53), 1.0]), 2f64.powi(53));
}
