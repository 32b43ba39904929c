//! Property tests for the invariants secure aggregation relies on.

use std::collections::{BTreeMap, BTreeSet};

use fedcredit_crypto::CryptoError;
use fedcredit_crypto::aead::{open, seal};
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::{IdentityKey, SignContext};
use fedcredit_crypto::kx::{AgreementSecret, KeyPurpose, SessionId, derive_key};
use fedcredit_crypto::mask::MaskSeed;
use fedcredit_crypto::ring::{MaskSign, Ring};
use fedcredit_crypto::shamir::{Share, reconstruct, split};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Party `u`'s pairwise contribution with `v`: added if `u < v`,
/// subtracted if `u > v`.
fn apply_pairwise(ring: Ring, y: &mut [u64], u: usize, v: usize, seed: &MaskSeed) {
    if u < v {
        ring.add_mask(y, seed).expect("whole values");
    } else {
        ring.sub_mask(y, seed).expect("whole values");
    }
}

/// Any ring: 1 to 4 limbs.
fn any_ring() -> impl Strategy<Value = Ring> {
    (1u32..=4).prop_map(|limbs| Ring::new(limbs).expect("valid"))
}

/// Symmetric table of pairwise seeds, `seeds[u][v] == seeds[v][u]`.
fn pairwise_seeds(n: usize, rng: &mut ChaCha20Rng) -> Vec<Vec<Option<MaskSeed>>> {
    let mut upper = BTreeMap::new();
    for u in 0..n {
        for v in u + 1..n {
            upper.insert((u, v), rng.r#gen::<[u8; 32]>());
        }
    }
    (0..n)
        .map(|u| {
            (0..n)
                .map(|v| (u != v).then(|| MaskSeed::from_bytes(upper[&(u.min(v), u.max(v))])))
                .collect()
        })
        .collect()
}

fn copy(share: &Share) -> Share {
    Share::from_bytes(share.to_bytes().as_slice()).expect("re-encoding a valid share")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Bonawitz unmasking: survivors send `x_u + PRG(b_u) ± PRG(s_uv)`; the
    /// server adds what it got, cancels the dropped parties' pairwise masks
    /// with the survivors, and removes the survivors' self masks. The
    /// result is exactly the survivors' plaintext sum (in the ring, with
    /// carries inside each value). With no dropouts the pairwise masks
    /// cancel on their own.
    #[test]
    fn masks_of_any_surviving_subset_cancel(
        rng_seed in any::<u64>(),
        n in 2usize..7,
        values in 0usize..1000,
        ring in any_ring(),
        drop_bits in any::<u8>(),
    ) {
        let len = ring.words_for(values);
        let mut rng = ChaCha20Rng::seed_from_u64(rng_seed);
        let seeds = pairwise_seeds(n, &mut rng);
        let self_seeds: Vec<MaskSeed> = (0..n).map(|_| MaskSeed::generate(&mut rng)).collect();
        let inputs: Vec<Vec<u64>> = (0..n).map(|_| (0..len).map(|_| rng.r#gen()).collect()).collect();

        let masked: Vec<Vec<u64>> = (0..n)
            .map(|u| {
                let mut y = inputs[u].clone();
                ring.add_mask(&mut y, &self_seeds[u]).expect("whole values");
                for v in (0..n).filter(|&v| v != u) {
                    apply_pairwise(ring, &mut y, u, v, seeds[u][v].as_ref().expect("u != v"));
                }
                y
            })
            .collect();

        // Everyone survives: pairwise masks cancel, self masks remain.
        let mut all = vec![0u64; len];
        let mut plain_all = vec![0u64; len];
        for u in 0..n {
            ring.add_assign(&mut all, &masked[u]).expect("same length");
            ring.add_assign(&mut plain_all, &inputs[u]).expect("same length");
        }
        for seed in &self_seeds {
            ring.sub_mask(&mut all, seed).expect("whole values");
        }
        prop_assert_eq!(&all, &plain_all);

        // A subset survives (at least one party).
        let mut survivors: Vec<usize> = (0..n).filter(|u| drop_bits >> u & 1 == 0).collect();
        if survivors.is_empty() {
            survivors.push(0);
        }
        let dropped: Vec<usize> = (0..n).filter(|u| !survivors.contains(u)).collect();
        let mut sum = vec![0u64; len];
        let mut plain = vec![0u64; len];
        for &u in &survivors {
            ring.add_assign(&mut sum, &masked[u]).expect("same length");
            ring.add_assign(&mut plain, &inputs[u]).expect("same length");
        }
        for &d in &dropped {
            for &u in &survivors {
                // Survivor u applied +mask if u < d, -mask if u > d: undo it.
                let mut contribution = vec![0u64; len];
                apply_pairwise(ring, &mut contribution, u, d, seeds[u][d].as_ref().expect("u != d"));
                ring.sub_assign(&mut sum, &contribution).expect("same length");
            }
        }
        for &u in &survivors {
            ring.sub_mask(&mut sum, &self_seeds[u]).expect("whole values");
        }
        prop_assert_eq!(sum, plain);
    }

    /// Pairwise mask seeds derived through X25519 + HKDF agree on both
    /// sides, so the pairwise masks really cancel.
    #[test]
    fn derived_pairwise_seeds_cancel(rng_seed in any::<u64>(), values in 0usize..700, ring in any_ring()) {
        let len = ring.words_for(values);
        let mut rng = ChaCha20Rng::seed_from_u64(rng_seed);
        let (a, b) = (AgreementSecret::generate(&mut rng), AgreementSecret::generate(&mut rng));
        let session = SessionId(rng.r#gen());
        let s_ab = MaskSeed::from(derive_key(
            &a.agree(&b.public()).expect("contributory"), KeyPurpose::PairwiseMask, &session, 1, 2));
        let s_ba = MaskSeed::from(derive_key(
            &b.agree(&a.public()).expect("contributory"), KeyPurpose::PairwiseMask, &session, 1, 2));
        let x: Vec<u64> = (0..len).map(|_| rng.r#gen()).collect();
        let mut y = x.clone();
        ring.add_mask(&mut y, &s_ab).expect("whole values");
        ring.sub_mask(&mut y, &s_ba).expect("whole values");
        prop_assert_eq!(y, x);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any t of n shares, in any order, reconstruct; t - 1 are not enough;
    /// interpolating t - 1 as if the threshold were t - 1 gives another
    /// value; a tampered extra share is detected.
    #[test]
    fn any_t_of_n_shares_reconstruct(
        secret in any::<[u8; 32]>(),
        n in 1usize..12,
        t_frac in 0.0f64..1.0,
        rng_seed in any::<u64>(),
        tamper_byte in 4usize..68,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(rng_seed);
        let t = 1 + ((n as f64 * t_frac) as usize).min(n - 1);
        let mut xs = BTreeSet::new();
        while xs.len() < n {
            xs.insert(rng.gen_range(1..=u32::MAX));
        }
        let xs: Vec<u32> = xs.into_iter().collect();
        let mut shares = split(&secret, t, &xs, &mut rng).expect("valid parameters");
        shares.shuffle(&mut rng);

        let subset: Vec<Share> = shares.iter().take(t).map(copy).collect();
        prop_assert_eq!(*reconstruct(&subset, t).expect("t shares"), secret);
        // All n shares: the extras are checked and agree.
        prop_assert_eq!(*reconstruct(&shares, t).expect("consistent"), secret);

        prop_assert_eq!(
            reconstruct(&subset[..t - 1], t).err(),
            Some(CryptoError::NotEnoughShares { have: t - 1, need: t })
        );
        if t >= 2 {
            // A random degree-(t-2) fit almost never lands on a value with
            // both halves < 2^128, let alone the secret.
            match reconstruct(&subset[..t - 1], t - 1) {
                Ok(wrong) => prop_assert_ne!(*wrong, secret),
                Err(e) => prop_assert_eq!(e, CryptoError::InconsistentShares),
            }
        }
        if n > t {
            let mut tampered: Vec<Share> = shares.iter().take(t + 1).map(copy).collect();
            let mut bytes = *tampered[t].to_bytes();
            // Flip a low bit of a y byte (keeps it canonical except in
            // the top byte; skip that case).
            bytes[tamper_byte] ^= 1;
            if let Ok(bad) = Share::from_bytes(&bytes) {
                tampered[t] = bad;
                prop_assert_eq!(reconstruct(&tampered, t).err(), Some(CryptoError::InconsistentShares));
            }
        }
    }
}

/// Strategy for valid fixed-point parameters.
fn fixed_point() -> impl Strategy<Value = FixedPoint> {
    (0u32..=48, -20i32..=20, 1.0f64..2.0).prop_filter_map("valid parameters", |(f, e, m)| {
        FixedPoint::new(f, m * 2f64.powi(e)).ok()
    })
}

proptest! {
    /// decode(encode(x)) is within 2^-(f+1) of clip(x).
    #[test]
    fn encode_decode_within_half_ulp(fp in fixed_point(), x in -1e7f64..1e7) {
        let clipped = x.clamp(-fp.clip(), fp.clip());
        let back = fp.decode(fp.encode(x).expect("finite"));
        let ulp = 2f64.powi(-(fp.frac_bits() as i32));
        // For magnitudes above 2^53 the i64 -> f64 conversion also rounds.
        let slack = clipped.abs() * f64::EPSILON;
        prop_assert!((back - clipped).abs() <= ulp / 2.0 + slack,
            "x = {x}, clipped = {clipped}, back = {back}, fp = {fp:?}");
        prop_assert!(back.abs() <= fp.clip() + ulp / 2.0);
    }

    /// Non-finite inputs are rejected, whatever the parameters.
    #[test]
    fn non_finite_rejected(fp in fixed_point(), i in 0usize..5) {
        let mut xs = vec![0.5; 5];
        xs[i] = f64::NAN;
        let names_index = matches!(fp.encode_slice(&xs), Err(CryptoError::NotFinite { index, .. }) if index == i);
        prop_assert!(names_index);
        prop_assert!(fp.encode(f64::INFINITY).is_err());
    }

    /// Whenever check_sum_fits(n) holds, the wrapping sum of n encoded
    /// values decodes to the sum of the clipped values within n * 2^-f
    /// (plus f64 rounding), and equals the exact integer sum.
    #[test]
    fn sums_decode_when_they_fit(
        fp in fixed_point(),
        xs in prop::collection::vec(-1e7f64..1e7, 1..64),
        extreme in any::<bool>(),
    ) {
        let n = xs.len();
        prop_assume!(fp.check_sum_fits(n).is_ok());
        // Half the cases use the worst case: all inputs at one clip bound.
        let xs: Vec<f64> = if extreme { vec![-1e300; n] } else { xs };
        let encoded = fp.encode_slice(&xs).expect("finite");
        let wrapped = encoded.iter().fold(0u64, |a, &v| a.wrapping_add(v));
        let exact: i128 = encoded.iter().map(|&v| i128::from(v as i64)).sum();
        prop_assert_eq!(i128::from(wrapped as i64), exact);

        let clipped: Vec<f64> = xs.iter().map(|x| x.clamp(-fp.clip(), fp.clip())).collect();
        let expected: f64 = clipped.iter().sum();
        let got = fp.decode(wrapped);
        let ulp = 2f64.powi(-(fp.frac_bits() as i32));
        let n_f = n as f64;
        let slack = n_f * n_f * fp.clip() * f64::EPSILON + got.abs() * f64::EPSILON;
        prop_assert!((got - expected).abs() <= n_f * ulp + slack,
            "n = {n}, got = {got}, expected = {expected}, fp = {fp:?}");
    }

    /// max_participants is exactly the boundary of check_sum_fits.
    #[test]
    fn max_participants_is_the_boundary(fp in fixed_point()) {
        let m = fp.max_participants();
        if let Ok(m) = usize::try_from(m) {
            prop_assert!(fp.check_sum_fits(m).is_ok());
            let over = fp.check_sum_fits(m + 1);
            let is_sum_may_wrap = matches!(over, Err(CryptoError::SumMayWrap { .. }));
            prop_assert!(is_sum_may_wrap);
        }
    }

    /// open(seal(m)) == m; any flipped bit in ciphertext or AD fails.
    #[test]
    fn aead_roundtrip_and_tamper(
        key in any::<[u8; 32]>(),
        ad in prop::collection::vec(any::<u8>(), 0..64),
        msg in prop::collection::vec(any::<u8>(), 0..256),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let ct = seal(&key, &ad, &msg);
        prop_assert_eq!(ct.len(), msg.len() + 16);
        let opened = open(&key, &ad, &ct).expect("authentic");
        prop_assert_eq!(opened.as_slice(), msg.as_slice());

        let mut bad_ct = ct.clone();
        bad_ct[flip.index(ct.len())] ^= 1 << bit;
        prop_assert_eq!(open(&key, &ad, &bad_ct), Err(CryptoError::Decryption));

        if !ad.is_empty() {
            let mut bad_ad = ad.clone();
            bad_ad[flip.index(ad.len())] ^= 1 << bit;
            prop_assert_eq!(open(&key, &bad_ad, &ct), Err(CryptoError::Decryption));
        }
    }

    /// A signature verifies only under its own context, message and key.
    #[test]
    fn signatures_bind_context_and_message(
        secret in any::<[u8; 32]>(),
        msg in prop::collection::vec(any::<u8>(), 1..128),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        ctx in 0usize..3,
    ) {
        let contexts = [SignContext::ParticipantMessage, SignContext::CoordinatorMessage, SignContext::LogRecord];
        let key = IdentityKey::from_secret_bytes(&secret);
        let public = key.public();
        let sig = key.sign(contexts[ctx], &msg);
        prop_assert!(public.verify(contexts[ctx], &msg, &sig).is_ok());
        for (i, other) in contexts.iter().enumerate() {
            if i != ctx {
                prop_assert_eq!(public.verify(*other, &msg, &sig).err(), Some(CryptoError::BadSignature));
            }
        }
        let mut bad = msg.clone();
        bad[flip.index(msg.len())] ^= 1 << bit;
        prop_assert_eq!(public.verify(contexts[ctx], &bad, &sig).err(), Some(CryptoError::BadSignature));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Applying many masks in one call (cut into a piece per core once the
    /// work is large) gives exactly what applying them one by one does, for
    /// every ring and lengths around the piece boundaries.
    #[test]
    fn apply_masks_equals_one_by_one(
        ring in any_ring(),
        values in prop_oneof![1usize..64, 20_000usize..70_000],
        signs in proptest::collection::vec(any::<bool>(), 1..6),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let len = ring.words_for(values);
        let start: Vec<u64> = (0..len).map(|_| rng.r#gen()).collect();
        let seeds: Vec<MaskSeed> = signs.iter().map(|_| MaskSeed::generate(&mut rng)).collect();
        let masks: Vec<(MaskSign, &MaskSeed)> = signs
            .iter()
            .zip(&seeds)
            .map(|(&add, s)| (if add { MaskSign::Add } else { MaskSign::Sub }, s))
            .collect();
        let mut together = start.clone();
        ring.apply_masks(&mut together, &masks).expect("whole values");
        let mut one_by_one = start.clone();
        for (sign, seed) in &masks {
            match sign {
                MaskSign::Add => ring.add_mask(&mut one_by_one[..], seed),
                MaskSign::Sub => ring.sub_mask(&mut one_by_one[..], seed),
            }
            .expect("whole values");
        }
        prop_assert!(together == one_by_one);
        // And the masks come off again.
        let inverse: Vec<(MaskSign, &MaskSeed)> = masks
            .iter()
            .map(|(sign, seed)| (if *sign == MaskSign::Add { MaskSign::Sub } else { MaskSign::Add }, *seed))
            .collect();
        ring.apply_masks(&mut together, &inverse).expect("whole values");
        prop_assert!(together == start);
    }
}
