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
//!
//! And the privacy property of the ring: the published sum is the ring
//! element Σ V mod 2^(64·L) and nothing more, so two different sets of
//! inputs with the same exact sum publish identical bytes, masked or not.

use fedcredit_crypto::CryptoError;
use fedcredit_crypto::mask::MaskSeed;
use fedcredit_crypto::ring::Ring;
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

/// Ring sum of equally long vectors (carries within each value).
fn ring_sum(ring: Ring, vs: &[Vec<u64>], len: usize) -> Vec<u64> {
    let mut acc = vec![0u64; len];
    for v in vs {
        ring.add_assign(&mut acc, v).expect("same length");
    }
    acc
}

/// The words as the little-endian bytes that are published.
fn le_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Every party's vector masked with pairwise masks (from `seed`, cancelling
/// in the sum) and its self mask; returns the masked vectors and the self
/// seeds, as the coordinator would receive and later reconstruct them.
fn mask_all(ring: Ring, plain: &[Vec<u64>], seed: [u8; 32]) -> (Vec<Vec<u64>>, Vec<MaskSeed>) {
    let n = plain.len();
    let mut masked = plain.to_vec();
    let mut self_seeds = Vec::with_capacity(n);
    for u in 0..n {
        let mut s = seed;
        s[31] = 0xff;
        s[0] ^= u as u8;
        let own = MaskSeed::from_bytes(s);
        ring.add_mask(&mut masked[u], &own).expect("whole values");
        self_seeds.push(own);
        for v in u + 1..n {
            let mut s = seed;
            s[0] ^= u as u8;
            s[1] ^= v as u8;
            ring.add_mask(&mut masked[u], &MaskSeed::from_bytes(s))
                .expect("whole values");
            ring.sub_mask(&mut masked[v], &MaskSeed::from_bytes(s))
                .expect("whole values");
        }
    }
    (masked, self_seeds)
}

/// Σ of the masked vectors with the self masks removed: what the
/// coordinator publishes.
fn unmasked_sum(ring: Ring, masked: &[Vec<u64>], self_seeds: &[MaskSeed], len: usize) -> Vec<u64> {
    let mut sum = ring_sum(ring, masked, len);
    for s in self_seeds {
        ring.sub_mask(&mut sum, s).expect("whole values");
    }
    sum
}

/// n · (each value of `words`) in the codec's ring, by long multiplication.
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

/// Valid parameters: limbs 1..=4, frac_bits 0..=64·limbs − 34.
fn params() -> impl Strategy<Value = WideFixed> {
    (1u32..=4)
        .prop_flat_map(|l| (Just(l), 0..=64 * l - 34))
        .prop_map(|(l, f)| WideFixed::new(l, f).expect("valid parameters"))
}

/// Any finite `f64` with |x| ≤ max_abs(1): every exponent from subnormal
/// up to the bound, random mantissa and sign.
fn in_range(wf: WideFixed) -> impl Strategy<Value = f64> {
    let top = 1023 + 64 * wf.limbs() - 1 - wf.frac_bits();
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
    /// x is a multiple of 2^-F; encode(−x) is the ring negation of
    /// encode(x).
    #[test]
    fn round_trip_is_exact_rounding(
        (wf, xs) in params().prop_flat_map(|wf| (Just(wf), prop::collection::vec(in_range(wf), 1..8)))
    ) {
        let enc = wf.encode_slice(&xs, 1).expect("in range");
        prop_assert_eq!(enc.len(), wf.words_for(xs.len()));
        let negated: Vec<f64> = xs.iter().map(|x| -x).collect();
        let mut zero = wf.encode_slice(&negated, 1).expect("in range");
        wf.ring().add_assign(&mut zero, &enc).expect("same length");
        prop_assert!(zero.iter().all(|&w| w == 0));
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

    /// The ring sum of n < 20 parties' encodings decodes to
    /// the correctly rounded exact sum of the encoded values, and so is
    /// within n · 2^-(F+1) (encoding) plus half an ulp (decoding) of the
    /// exact sum of the inputs.
    #[test]
    fn sums_decode_exactly(parties in party_vectors(20, 40)) {
        let wf = WideFixed::model_default();
        let n = parties.len();
        let len = parties[0].len();
        let sum = wf.decode_slice(&ring_sum(wf.ring(), &encode_all(&wf, &parties), wf.words_for(len))).expect("length");
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
        let sum = wf.decode_slice(&ring_sum(wf.ring(), &encode_all(&wf, &parties), wf.words_for(len))).expect("length");
        for (j, &s) in sum.iter().enumerate() {
            let v: i128 = ks.iter().map(|k| i128::from(k[j]) << 54).sum();
            prop_assert_eq!(s, v as f64 * 2f64.powi(-64));
        }
    }

    /// Pairwise masks (party u adds PRG(s_uv), party v subtracts it, as ring
    /// elements) hide the words but cancel in the sum, which is the plain
    /// ring sum word for word and decodes exactly as without masks.
    #[test]
    fn masked_sums_decode_exactly(
        parties in party_vectors(6, 30).prop_filter("two parties", |p| p.len() >= 2),
        seed in any::<[u8; 32]>(),
    ) {
        let wf = WideFixed::model_default();
        let ring = wf.ring();
        let words = wf.words_for(parties[0].len());
        let plain = encode_all(&wf, &parties);
        let (masked, self_seeds) = mask_all(ring, &plain, seed);
        if words > 0 {
            prop_assert!(masked[0] != plain[0], "masking changed nothing");
        }
        let plain_sum = ring_sum(ring, &plain, words);
        let unmasked = unmasked_sum(ring, &masked, &self_seeds, words);
        prop_assert_eq!(&unmasked, &plain_sum);
        let expected = wf.decode_slice(&plain_sum).expect("length");
        let got = wf.decode_slice(&unmasked).expect("length");
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
            let l = wf.limbs() as usize;
            (Just(wf), (0usize..6).prop_flat_map(move |k| prop::collection::vec(any::<u64>(), k * l)))
        })
    ) {
        let dec = wf.decode_slice(&words).expect("multiple of limbs");
        let limit = 2f64.powi(64 * wf.limbs() as i32 - 1 - wf.frac_bits() as i32);
        prop_assert_eq!(dec.len(), words.len() / wf.limbs() as usize);
        prop_assert!(dec.iter().all(|v| v.is_finite() && v.abs() <= limit));
    }
}

/// Two input sets with the same column sums: `a` has `n` parties of
/// values k · 2^-10 (|k| < 2^30); `b` moves `r_ij` between parties (party
/// n − 1 takes −Σ r), often flipping signs, so the sets differ but every
/// column's exact sum is the same. Both are exact in `f64`.
fn same_sum_pair() -> impl Strategy<Value = (Vec<Vec<f64>>, Vec<Vec<f64>>)> {
    (2usize..8, 1usize..12).prop_flat_map(|(n, len)| {
        let k = prop::collection::vec(prop::collection::vec(-(1i64 << 30)..1i64 << 30, len), n);
        let r = prop::collection::vec(prop::collection::vec(-(1i64 << 30)..1i64 << 30, len), n - 1);
        (k, r).prop_map(move |(k, r)| {
            let mut moved = k.clone();
            for (party, shifts) in r.iter().enumerate() {
                for (j, &d) in shifts.iter().enumerate() {
                    moved[party][j] += d;
                    moved[n - 1][j] -= d;
                }
            }
            let to_f64 = |v: &Vec<Vec<i64>>| -> Vec<Vec<f64>> {
                v.iter()
                    .map(|row| row.iter().map(|&k| k as f64 / 1024.0).collect())
                    .collect()
            };
            (to_f64(&k), to_f64(&moved))
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The published sum is the ring element and nothing more: two
    /// different input sets with the same exact sum produce identical
    /// summed bytes, both as plain ring sums and as masked-then-unmasked
    /// sums (different masks each time), in every ring size.
    #[test]
    fn same_sum_publishes_identical_bytes(
        (a, b) in same_sum_pair(),
        limbs in 1u32..=4,
        seeds in any::<([u8; 32], [u8; 32])>(),
    ) {
        prop_assume!(a != b);
        // 24 fractional bits fit every ring (64·limbs − 34 ≥ 30).
        let wf = WideFixed::new(limbs, 24).expect("valid");
        let ring = wf.ring();
        let words = wf.words_for(a[0].len());
        let (ea, eb) = (encode_all(&wf, &a), encode_all(&wf, &b));
        prop_assert_ne!(&ea, &eb);
        let plain_a = le_bytes(&ring_sum(ring, &ea, words));
        let plain_b = le_bytes(&ring_sum(ring, &eb, words));
        prop_assert_eq!(&plain_a, &plain_b);

        let (ma, sa) = mask_all(ring, &ea, seeds.0);
        let (mb, sb) = mask_all(ring, &eb, seeds.1);
        let masked_a = le_bytes(&unmasked_sum(ring, &ma, &sa, words));
        let masked_b = le_bytes(&unmasked_sum(ring, &mb, &sb, words));
        prop_assert_eq!(&masked_a, &plain_a);
        prop_assert_eq!(&masked_b, &plain_a);

        // And the bytes decode to the common exact sum.
        let sum = wf.decode_slice(&ring_sum(ring, &ea, words)).expect("length");
        for (j, &s) in sum.iter().enumerate() {
            let col: Vec<f64> = a.iter().map(|x| x[j]).collect();
            prop_assert_eq!(s, fsum(&col));
        }
    }
}

/// Regression test for the leak of the carry-free codec: the published sum
/// of the model codec no longer counts the negative inputs (its top word
/// did), nor splits integer and fractional digit sums.
#[test]
fn negative_inputs_are_not_counted_in_the_published_sum() {
    let wf = WideFixed::model_default();
    let ring = wf.ring();
    let sets: [&[f64]; 4] = [
        &[0.0, 0.0, 0.0, 0.0],
        &[-1.0, 1.0, -2.5, 2.5],
        &[-0.75, -0.25, 0.5, 0.5],
        &[3.0, -1.0, -1.0, -1.0],
    ];
    let published: Vec<Vec<u8>> = sets
        .iter()
        .map(|set| {
            let enc: Vec<Vec<u64>> = set
                .iter()
                .map(|&x| wf.encode_slice(&[x], set.len()).expect("in range"))
                .collect();
            let (masked, seeds) = mask_all(ring, &enc, [7; 32]);
            let unmasked = unmasked_sum(ring, &masked, &seeds, 3);
            assert_eq!(unmasked, ring_sum(ring, &enc, 3));
            le_bytes(&unmasked)
        })
        .collect();
    assert!(
        published.iter().all(|p| *p == vec![0u8; 24]),
        "{published:?}"
    );
}

/// At the bound, the worst case (every party at ±max_abs) still decodes
/// without overflow, for the largest participant count too.
#[test]
fn worst_case_at_max_participants() {
    for wf in [
        WideFixed::model_default(),
        WideFixed::new(1, 30).expect("valid"),
    ] {
        let n = MAX_PARTICIPANTS;
        let m = wf.max_abs(n);
        for s in [1.0, -1.0] {
            let enc = wf.encode_slice(&[s * m], n).expect("at the bound");
            let sum = times(&wf, &enc, n as u64);
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
