//! Whole rounds in memory: every party's client state machine and the
//! server's unmasking, with dropouts at each phase.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::client::{AdvertiseKeys, Confirmation, Reveal};
use super::server::{RoundView, Unmasker};
use super::*;
use crate::identity::{IdentityKey, SignContext};
use crate::ring::Ring;

/// Who drops where: indices (0-based into the parties) leaving after each phase.
#[derive(Clone, Debug, Default)]
struct Dropouts {
    after_advertise: BTreeSet<usize>,
    after_shares: BTreeSet<usize>,
    after_masked_input: BTreeSet<usize>,
    after_confirm: BTreeSet<usize>,
}

fn idx(i: usize) -> PartyIndex {
    PartyIndex::new(i as u32 + 1).unwrap()
}

/// Runs a round in `ring`; returns the unmasked sum of U3 and U3.
fn run_round(
    inputs: &[Vec<u64>],
    ring: Ring,
    thresholds: Thresholds,
    drops: &Dropouts,
    seed: u64,
) -> Result<(Vec<u64>, BTreeSet<PartyIndex>), SecAggError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n = inputs.len();
    let d = inputs[0].len();
    let binding = SessionBinding {
        job_id: "job",
        job_spec_hash: &[7; 32],
        round: 3,
        attempt: 1,
        thresholds,
    };
    // Phase 1.
    let clients: Vec<AdvertiseKeys> = (0..n)
        .map(|i| AdvertiseKeys::new(idx(i), thresholds, &mut rng))
        .collect();
    let cohort: BTreeMap<PartyIndex, Advertisement> = clients
        .iter()
        .enumerate()
        .filter(|(i, _)| !drops.after_advertise.contains(i))
        .map(|(i, c)| (idx(i), c.advertisement()))
        .collect();
    let session = session_id(&binding, &cohort);
    // Phase 2.
    let mut states = BTreeMap::new();
    let mut outbox: BTreeMap<PartyIndex, Vec<(PartyIndex, Vec<u8>)>> = BTreeMap::new();
    let mut u2 = BTreeMap::new();
    for (i, c) in clients.into_iter().enumerate() {
        if drops.after_advertise.contains(&i) {
            continue;
        }
        let (state, out) = c.share_keys(session, cohort.clone(), &mut rng)?;
        if drops.after_shares.contains(&i) {
            continue;
        }
        u2.insert(idx(i), out.self_mask_commitment);
        for (to, ct) in out.ciphertexts {
            outbox.entry(to).or_default().push((idx(i), ct));
        }
        states.insert(i, state);
    }
    // Phase 3: each member of U2 receives the ciphertexts from the other members of U2.
    let mut masked_states = BTreeMap::new();
    let mut sum = vec![0u64; d];
    let mut u3 = BTreeSet::new();
    for (i, state) in states {
        let received: Vec<_> = outbox
            .remove(&idx(i))
            .unwrap_or_default()
            .into_iter()
            .filter(|(from, _)| u2.contains_key(from))
            .collect();
        let (state, masked) = state.masked_input(ring, &inputs[i], received)?;
        if drops.after_shares.contains(&i) {
            continue;
        }
        ring.add_assign(&mut sum, &masked).unwrap();
        u3.insert(idx(i));
        if !drops.after_masked_input.contains(&i) {
            masked_states.insert(i, state);
        }
    }
    // Phase 4: survivors confirm U3.
    let key = IdentityKey::from_secret_bytes(&[1; 32]);
    let checked = key
        .public()
        .verify(
            SignContext::ParticipantMessage,
            b"x",
            &key.sign(SignContext::ParticipantMessage, b"x"),
        )
        .unwrap();
    let mut awaiting = BTreeMap::new();
    let mut confirmations = Vec::new();
    for (i, state) in masked_states {
        let state = state.confirm(u3.clone())?;
        confirmations.push(Confirmation {
            signer: idx(i),
            survivors: u3.clone(),
            checked,
        });
        if !drops.after_confirm.contains(&i) {
            awaiting.insert(i, state);
        }
    }
    // Phase 5.
    let mut unmasker = Unmasker::new(RoundView {
        session,
        thresholds,
        cohort,
        u2,
        u3: u3.clone(),
        ring,
    })?;
    for (i, state) in awaiting {
        let Reveal {
            self_mask_shares,
            key_shares,
        } = state.unmask(&confirmations)?;
        unmasker.accept(idx(i), self_mask_shares, key_shares)?;
    }
    unmasker.finish(&mut sum)?;
    Ok((sum, u3))
}

fn plain_sum(inputs: &[Vec<u64>], ring: Ring, who: &BTreeSet<PartyIndex>) -> Vec<u64> {
    let mut sum = vec![0u64; inputs[0].len()];
    for p in who {
        ring.add_assign(&mut sum, &inputs[p.get() as usize - 1])
            .unwrap();
    }
    sum
}

fn inputs(n: usize, d: usize, seed: u64) -> Vec<Vec<u64>> {
    use rand::Rng;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..d).map(|_| rng.r#gen()).collect())
        .collect()
}

#[test]
fn full_round_sums_exactly() {
    let x = inputs(5, 1000, 1);
    let t = Thresholds {
        threshold: 4,
        min_cohort: 3,
    };
    let (sum, u3) = run_round(&x, Ring::U64, t, &Dropouts::default(), 9).unwrap();
    assert_eq!(u3.len(), 5);
    assert_eq!(sum, plain_sum(&x, Ring::U64, &u3));
}

/// In the 192-bit ring the masks carry across limbs like the inputs, and
/// the unmasked sum is the ring sum, with dropouts too.
#[test]
fn full_round_in_a_multi_limb_ring_sums_exactly() {
    let t = Thresholds {
        threshold: 4,
        min_cohort: 3,
    };
    for ring in [Ring::U128, Ring::U192, Ring::U256] {
        let x = inputs(6, ring.words_for(400), 21);
        let drops = Dropouts {
            after_shares: BTreeSet::from([2]),
            after_confirm: BTreeSet::from([4]),
            ..Default::default()
        };
        let (sum, u3) = run_round(&x, ring, t, &drops, 22).unwrap();
        assert_eq!(u3.len(), 5);
        assert_eq!(sum, plain_sum(&x, ring, &u3));
        // Not the word-wise sum: carries did cross limbs.
        assert_ne!(sum, plain_sum(&x, Ring::U64, &u3));
    }
}

#[test]
fn an_input_that_is_not_whole_ring_values_is_refused() {
    let x = inputs(4, 10, 23);
    let t = Thresholds {
        threshold: 3,
        min_cohort: 3,
    };
    let err = run_round(&x, Ring::U192, t, &Dropouts::default(), 24).unwrap_err();
    assert!(
        matches!(
            err,
            SecAggError::Crypto(crate::CryptoError::PartialRingValue {
                words: 10,
                limbs: 3
            })
        ),
        "{err}"
    );
}

#[test]
fn dropouts_in_every_phase_still_sum_the_survivors() {
    let x = inputs(10, 300, 2);
    let t = Thresholds {
        threshold: 5,
        min_cohort: 3,
    };
    let drops = Dropouts {
        after_advertise: BTreeSet::from([0]),
        after_shares: BTreeSet::from([3]),
        after_masked_input: BTreeSet::from([5]),
        after_confirm: BTreeSet::from([7]),
    };
    let (sum, u3) = run_round(&x, Ring::U64, t, &drops, 3).unwrap();
    // Those that sent a masked input are in the sum, even if they left afterwards.
    let expected: BTreeSet<PartyIndex> = [1, 2, 4, 5, 6, 7, 8, 9].into_iter().map(idx).collect();
    assert_eq!(u3, expected);
    assert_eq!(sum, plain_sum(&x, Ring::U64, &u3));
}

#[test]
fn too_few_revealers_fails_naming_the_phase() {
    let x = inputs(5, 10, 4);
    let t = Thresholds {
        threshold: 4,
        min_cohort: 3,
    };
    let drops = Dropouts {
        after_confirm: BTreeSet::from([0, 1]),
        ..Default::default()
    };
    let err = run_round(&x, Ring::U64, t, &drops, 5).unwrap_err();
    assert!(
        matches!(
            err,
            SecAggError::TooFewParties {
                phase: Phase::Unmask,
                have: 3,
                need: 4
            }
        ),
        "{err}"
    );
}

#[test]
fn a_survivor_cannot_be_made_to_reveal_both_shares() {
    // The client reveals the key share only of U2 \ U3, the self-mask share only of U3.
    let x = inputs(4, 8, 6);
    let t = Thresholds {
        threshold: 3,
        min_cohort: 3,
    };
    let drops = Dropouts {
        after_shares: BTreeSet::from([3]),
        ..Default::default()
    };
    let (sum, u3) = run_round(&x, Ring::U64, t, &drops, 7).unwrap();
    assert_eq!(sum, plain_sum(&x, Ring::U64, &u3));
}

#[test]
fn a_wrong_kind_of_share_is_refused_and_loses_nothing() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let t = Thresholds {
        threshold: 2,
        min_cohort: 2,
    };
    let a = AdvertiseKeys::new(idx(0), t, &mut rng);
    let b = AdvertiseKeys::new(idx(1), t, &mut rng);
    let cohort = BTreeMap::from([(idx(0), a.advertisement()), (idx(1), b.advertisement())]);
    let session = SessionId([1; 32]);
    let (_, out_a) = a.share_keys(session, cohort.clone(), &mut rng).unwrap();
    let (_, out_b) = b.share_keys(session, cohort.clone(), &mut rng).unwrap();
    let u2 = BTreeMap::from([
        (idx(0), out_a.self_mask_commitment),
        (idx(1), out_b.self_mask_commitment),
    ]);
    let u3 = BTreeSet::from([idx(0), idx(1)]);
    let mut unmasker = Unmasker::new(RoundView {
        session,
        thresholds: t,
        cohort,
        u2,
        u3,
        ring: Ring::U64,
    })
    .unwrap();
    // A key share of a survivor is never acceptable.
    let share = crate::shamir::split(&[5; 32], 2, &[1, 2], &mut rng)
        .unwrap()
        .remove(0);
    let err = unmasker
        .accept(idx(0), vec![], vec![(idx(1), share)])
        .unwrap_err();
    assert!(
        matches!(err, SecAggError::WrongShareKind { kind: "key", .. }),
        "{err}"
    );
    assert_eq!(unmasker.revealers(), 0);
}

#[test]
fn share_keys_refuses_a_cohort_below_threshold() {
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let t = Thresholds {
        threshold: 3,
        min_cohort: 3,
    };
    let a = AdvertiseKeys::new(idx(0), t, &mut rng);
    let b = AdvertiseKeys::new(idx(1), t, &mut rng);
    let cohort = BTreeMap::from([(idx(0), a.advertisement()), (idx(1), b.advertisement())]);
    let err = a
        .share_keys(SessionId([0; 32]), cohort, &mut rng)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SecAggError::TooFewParties {
                phase: Phase::ShareKeys,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn session_id_binds_every_key_and_the_attempt() {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let t = Thresholds {
        threshold: 2,
        min_cohort: 2,
    };
    let a = AdvertiseKeys::new(idx(0), t, &mut rng);
    let b = AdvertiseKeys::new(idx(1), t, &mut rng);
    let c = AdvertiseKeys::new(idx(1), t, &mut rng);
    let binding = SessionBinding {
        job_id: "j",
        job_spec_hash: &[0; 32],
        round: 1,
        attempt: 0,
        thresholds: t,
    };
    let one = BTreeMap::from([(idx(0), a.advertisement()), (idx(1), b.advertisement())]);
    let two = BTreeMap::from([(idx(0), a.advertisement()), (idx(1), c.advertisement())]);
    assert_ne!(session_id(&binding, &one), session_id(&binding, &two));
    let retry = SessionBinding {
        attempt: 1,
        ..binding
    };
    assert_ne!(session_id(&binding, &one), session_id(&retry, &one));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any pattern of dropouts that leaves at least t parties at every phase
    /// yields exactly the sum of U3's inputs; otherwise the round fails cleanly.
    #[test]
    fn any_dropout_pattern_sums_exactly_or_fails_cleanly(
        n in 3usize..9,
        values in 1usize..64,
        limbs in 1u32..=4,
        phases in proptest::collection::vec(0u8..6, 9),
        seed in any::<u64>(),
    ) {
        let ring = Ring::new(limbs).unwrap();
        let x = inputs(n, ring.words_for(values), seed);
        let t = Thresholds { threshold: Thresholds::default_threshold(n), min_cohort: 3 };
        let mut drops = Dropouts::default();
        for (i, p) in phases.iter().take(n).enumerate() {
            match p {
                0 => { drops.after_advertise.insert(i); }
                1 => { drops.after_shares.insert(i); }
                2 => { drops.after_masked_input.insert(i); }
                3 => { drops.after_confirm.insert(i); }
                _ => {}
            }
        }
        match run_round(&x, ring, t, &drops, seed ^ 0x5eed) {
            Ok((sum, u3)) => prop_assert_eq!(sum, plain_sum(&x, ring, &u3)),
            Err(SecAggError::TooFewParties { have, need, .. }) => prop_assert!(have < need),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
