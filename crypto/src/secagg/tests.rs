//! Whole rounds in memory: every party's client state machine and the
//! server's unmasking, with dropouts at each phase.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::client::{AdvertiseKeys, Confirmation, DealtToMe, Reveal, SurvivorDigest};
use super::server::{RoundView, Unmasker};
use super::*;
use crate::identity::{IdentityKey, SignContext};
use crate::ring::Ring;

/// Who drops where: indices (0-based into the parties) leaving after each phase.
#[derive(Clone, Debug, Default)]
pub(super) struct Dropouts {
    pub(super) after_advertise: BTreeSet<usize>,
    pub(super) after_shares: BTreeSet<usize>,
    /// Sent their shares (in U2) but leave before their masked input, so
    /// their pairwise masks are rebuilt from key shares.
    pub(super) before_masked_input: BTreeSet<usize>,
    pub(super) after_masked_input: BTreeSet<usize>,
    pub(super) after_confirm: BTreeSet<usize>,
    /// Survivors that reveal one self-mask share with a flipped byte.
    pub(super) bad_reveal: BTreeSet<usize>,
}

pub(super) fn idx(i: usize) -> PartyIndex {
    PartyIndex::new(i as u32 + 1).unwrap()
}

/// Runs a round in `ring`; returns the unmasked sum of U3 and U3.
pub(super) fn run_round(
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
        announcement: &[8; 32],
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
    let mut outbox: BTreeMap<PartyIndex, Vec<DealtToMe>> = BTreeMap::new();
    let mut u2 = BTreeMap::new();
    for (i, c) in clients.into_iter().enumerate() {
        if drops.after_advertise.contains(&i) {
            continue;
        }
        let (state, out) = c.share_keys(session, cohort.clone(), &mut rng)?;
        if drops.after_shares.contains(&i) {
            continue;
        }
        for (to, ct) in out.ciphertexts {
            outbox.entry(to).or_default().push(DealtToMe {
                from: idx(i),
                ciphertext: ct,
                commitment: out.dealt.shares[&to],
            });
        }
        u2.insert(idx(i), out.dealt);
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
            .filter(|d| u2.contains_key(&d.from))
            .collect();
        if drops.before_masked_input.contains(&i) {
            continue;
        }
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
            session,
            survivors: SurvivorDigest::of(&u3),
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
            mut self_mask_shares,
            key_shares,
        } = state.unmask(&confirmations)?;
        if drops.bad_reveal.contains(&i) {
            let (owner, share) = self_mask_shares.remove(0);
            let mut bytes = share.to_bytes();
            bytes[4] = bytes[4].wrapping_add(1);
            self_mask_shares.insert(0, (owner, Share::from_bytes(&*bytes).unwrap()));
            let err = unmasker
                .accept(idx(i), self_mask_shares, key_shares)
                .unwrap_err();
            assert!(
                matches!(err, SecAggError::BadRevealedShare { revealer, owner: o, kind: ShareKind::SelfMask } if revealer == idx(i) && o == owner),
                "{err}"
            );
            continue;
        }
        unmasker.accept(idx(i), self_mask_shares, key_shares)?;
    }
    unmasker.finish(&mut sum)?;
    Ok((sum, u3))
}

pub(super) fn plain_sum(inputs: &[Vec<u64>], ring: Ring, who: &BTreeSet<PartyIndex>) -> Vec<u64> {
    let mut sum = vec![0u64; inputs[0].len()];
    for p in who {
        ring.add_assign(&mut sum, &inputs[p.get() as usize - 1])
            .unwrap();
    }
    sum
}

pub(super) fn inputs(n: usize, d: usize, seed: u64) -> Vec<Vec<u64>> {
    use rand::Rng;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..d).map(|_| rng.r#gen()).collect())
        .collect()
}

#[test]
fn full_round_sums_exactly() {
    let x = inputs(5, 1000, 1);
    let t = Thresholds::new(5, 4, 1, 3).unwrap();
    let (sum, u3) = run_round(&x, Ring::U64, t, &Dropouts::default(), 9).unwrap();
    assert_eq!(u3.len(), 5);
    assert_eq!(sum, plain_sum(&x, Ring::U64, &u3));
}

/// In the 192-bit ring the masks carry across limbs like the inputs, and
/// the unmasked sum is the ring sum, with dropouts too.
#[test]
fn full_round_in_a_multi_limb_ring_sums_exactly() {
    let t = Thresholds::new(6, 4, 1, 3).unwrap();
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
    let t = Thresholds::new(4, 3, 1, 3).unwrap();
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
    let t = Thresholds::new(10, 6, 1, 3).unwrap();
    let drops = Dropouts {
        after_advertise: BTreeSet::from([0]),
        after_shares: BTreeSet::from([3]),
        after_masked_input: BTreeSet::from([5]),
        after_confirm: BTreeSet::from([7]),
        ..Default::default()
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
    let t = Thresholds::new(5, 4, 1, 3).unwrap();
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
    let t = Thresholds::new(4, 3, 1, 3).unwrap();
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
    let t = Thresholds::new(2, 2, 0, 2).unwrap();
    let a = AdvertiseKeys::new(idx(0), t, &mut rng);
    let b = AdvertiseKeys::new(idx(1), t, &mut rng);
    let cohort = BTreeMap::from([(idx(0), a.advertisement()), (idx(1), b.advertisement())]);
    let session = SessionId([1; 32]);
    let (_, out_a) = a.share_keys(session, cohort.clone(), &mut rng).unwrap();
    let (_, out_b) = b.share_keys(session, cohort.clone(), &mut rng).unwrap();
    let u2 = BTreeMap::from([(idx(0), out_a.dealt), (idx(1), out_b.dealt)]);
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
    let t = Thresholds::new(3, 3, 1, 3).unwrap();
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
    let t = Thresholds::new(2, 2, 0, 2).unwrap();
    let a = AdvertiseKeys::new(idx(0), t, &mut rng);
    let b = AdvertiseKeys::new(idx(1), t, &mut rng);
    let c = AdvertiseKeys::new(idx(1), t, &mut rng);
    let binding = SessionBinding {
        job_id: "j",
        job_spec_hash: &[0; 32],
        announcement: &[0; 32],
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
    // Members shown different announcements (e.g. different tasks) are in
    // different sessions: their shares and masks do not fit together.
    let other = [1; 32];
    let equivocated = SessionBinding {
        announcement: &other,
        ..binding
    };
    assert_ne!(session_id(&binding, &one), session_id(&equivocated, &one));
}

#[test]
fn a_bad_revealed_share_is_attributed_to_its_revealer_and_the_rest_unmask() {
    let x = inputs(5, 50, 21);
    let t = Thresholds::new(5, 4, 1, 3).unwrap();
    let drops = Dropouts {
        bad_reveal: BTreeSet::from([2]),
        ..Default::default()
    };
    // run_round asserts the bad reveal is refused naming #3 as its revealer.
    let (sum, u3) = run_round(&x, Ring::U64, t, &drops, 22).unwrap();
    assert_eq!(u3.len(), 5);
    assert_eq!(sum, plain_sum(&x, Ring::U64, &u3));
}

#[test]
fn too_few_good_reveals_names_the_revealers_of_bad_shares() {
    let x = inputs(5, 10, 23);
    let t = Thresholds::new(5, 4, 1, 3).unwrap();
    let drops = Dropouts {
        bad_reveal: BTreeSet::from([1, 4]),
        ..Default::default()
    };
    let err = run_round(&x, Ring::U64, t, &drops, 24).unwrap_err();
    match &err {
        SecAggError::TooFewGoodReveals { have, need, bad } => {
            assert_eq!((*have, *need), (3, 4));
            assert_eq!(bad, &vec![idx(1), idx(4)]);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("#2, #5"), "{err}");
}

#[test]
fn an_excluded_revealer_cannot_reveal_again() {
    let mut rng = ChaCha20Rng::seed_from_u64(25);
    let t = Thresholds::new(3, 3, 0, 3).unwrap();
    let parties: Vec<_> = (0..3)
        .map(|i| AdvertiseKeys::new(idx(i), t, &mut rng))
        .collect();
    let cohort: BTreeMap<_, _> = parties
        .iter()
        .enumerate()
        .map(|(i, p)| (idx(i), p.advertisement()))
        .collect();
    let session = SessionId([3; 32]);
    let mut u2 = BTreeMap::new();
    for (i, p) in parties.into_iter().enumerate() {
        let (_, out) = p.share_keys(session, cohort.clone(), &mut rng).unwrap();
        u2.insert(idx(i), out.dealt);
    }
    let u3: BTreeSet<_> = u2.keys().copied().collect();
    let mut unmasker = Unmasker::new(RoundView {
        session,
        thresholds: t,
        cohort,
        u2,
        u3,
        ring: Ring::U64,
    })
    .unwrap();
    // Shares of the right shape but not the dealt ones.
    let forged = |rng: &mut ChaCha20Rng| {
        (0..3)
            .map(|o| {
                let share = crate::shamir::split(&[9; 32], 3, &[1, 2, 3], rng)
                    .unwrap()
                    .remove(0);
                (idx(o), share)
            })
            .collect::<Vec<_>>()
    };
    let err = unmasker
        .accept(idx(0), forged(&mut rng), vec![])
        .unwrap_err();
    assert!(
        matches!(err, SecAggError::BadRevealedShare { revealer, .. } if revealer == idx(0)),
        "{err}"
    );
    let err = unmasker
        .accept(idx(0), forged(&mut rng), vec![])
        .unwrap_err();
    assert!(
        matches!(err, SecAggError::ExcludedRevealer(p) if p == idx(0)),
        "{err}"
    );
    assert_eq!(unmasker.revealers(), 0);
    assert_eq!(unmasker.excluded(), &BTreeSet::from([idx(0)]));
}

#[test]
fn a_dealt_share_that_fails_its_commitment_blames_the_dealer() {
    let mut rng = ChaCha20Rng::seed_from_u64(26);
    let t = Thresholds::new(3, 3, 0, 3).unwrap();
    let parties: Vec<_> = (0..3)
        .map(|i| AdvertiseKeys::new(idx(i), t, &mut rng))
        .collect();
    let cohort: BTreeMap<_, _> = parties
        .iter()
        .enumerate()
        .map(|(i, p)| (idx(i), p.advertisement()))
        .collect();
    let session = SessionId([4; 32]);
    let mut states = Vec::new();
    let mut outs = Vec::new();
    for p in parties {
        let (state, out) = p.share_keys(session, cohort.clone(), &mut rng).unwrap();
        states.push(state);
        outs.push(out);
    }
    // #2 signs commitments that do not match what it sent #1.
    let mut received = Vec::new();
    for (i, out) in outs.iter().enumerate().skip(1) {
        let ciphertext = out
            .ciphertexts
            .iter()
            .find(|(to, _)| *to == idx(0))
            .unwrap()
            .1
            .clone();
        let mut commitment = out.dealt.shares[&idx(0)];
        if i == 1 {
            commitment.key[0] ^= 1;
        }
        received.push(DealtToMe {
            from: idx(i),
            ciphertext,
            commitment,
        });
    }
    let err = states
        .remove(0)
        .masked_input(Ring::U64, &[1, 2, 3], received)
        .unwrap_err();
    assert!(
        matches!(err, SecAggError::DealtShareMismatch { dealer, kind: ShareKind::Key } if dealer == idx(1)),
        "{err}"
    );
}

#[test]
fn a_share_ciphertext_of_the_wrong_length_is_refused() {
    assert_eq!(SHARE_CIPHERTEXT_LEN, 8 + 2 * crate::shamir::SHARE_LEN + 16);
    let err = check_share_ciphertext(idx(1), SHARE_CIPHERTEXT_LEN + 1).unwrap_err();
    assert!(
        matches!(err, SecAggError::MalformedShareCiphertext { got, .. } if got == SHARE_CIPHERTEXT_LEN + 1),
        "{err}"
    );
}

#[test]
fn commitments_must_cover_exactly_u1() {
    let mut rng = ChaCha20Rng::seed_from_u64(27);
    let t = Thresholds::new(2, 2, 0, 2).unwrap();
    let a = AdvertiseKeys::new(idx(0), t, &mut rng);
    let b = AdvertiseKeys::new(idx(1), t, &mut rng);
    let cohort = BTreeMap::from([(idx(0), a.advertisement()), (idx(1), b.advertisement())]);
    let (_, mut out) = a
        .share_keys(SessionId([5; 32]), cohort.clone(), &mut rng)
        .unwrap();
    assert!(out.dealt.check(idx(0), &cohort).is_ok());
    out.dealt.shares.remove(&idx(0));
    let err = out.dealt.check(idx(0), &cohort).unwrap_err();
    assert!(
        matches!(
            err,
            SecAggError::ShareCommitmentsNotForU1 {
                got: 1,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_confirmation_for_another_session_is_refused() {
    let x = inputs(3, 4, 28);
    let t = Thresholds::new(3, 3, 0, 3).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(29);
    let parties: Vec<_> = (0..3)
        .map(|i| AdvertiseKeys::new(idx(i), t, &mut rng))
        .collect();
    let cohort: BTreeMap<_, _> = parties
        .iter()
        .enumerate()
        .map(|(i, p)| (idx(i), p.advertisement()))
        .collect();
    let session = SessionId([6; 32]);
    let mut states = Vec::new();
    let mut outbox: BTreeMap<PartyIndex, Vec<DealtToMe>> = BTreeMap::new();
    for (i, p) in parties.into_iter().enumerate() {
        let (state, out) = p.share_keys(session, cohort.clone(), &mut rng).unwrap();
        for (to, ct) in out.ciphertexts {
            outbox.entry(to).or_default().push(DealtToMe {
                from: idx(i),
                ciphertext: ct,
                commitment: out.dealt.shares[&to],
            });
        }
        states.push(state);
    }
    let state = states.remove(0);
    let (state, _) = state
        .masked_input(Ring::U64, &x[0], outbox.remove(&idx(0)).unwrap())
        .unwrap();
    let u3: BTreeSet<_> = cohort.keys().copied().collect();
    let state = state.confirm(u3.clone()).unwrap();
    assert_eq!(state.session(), &session);
    let key = IdentityKey::from_secret_bytes(&[1; 32]);
    let checked = || {
        key.public()
            .verify(
                SignContext::ParticipantMessage,
                b"x",
                &key.sign(SignContext::ParticipantMessage, b"x"),
            )
            .unwrap()
    };
    let confirmations: Vec<_> = (0..3)
        .map(|i| Confirmation {
            signer: idx(i),
            session: if i == 2 { SessionId([7; 32]) } else { session },
            survivors: SurvivorDigest::of(&u3),
            checked: checked(),
        })
        .collect();
    let err = state.unmask(&confirmations).unwrap_err();
    assert!(
        matches!(err, SecAggError::SessionMismatch(p) if p == idx(2)),
        "{err}"
    );
}

#[test]
fn thresholds_at_or_below_half_of_n_plus_c_are_refused() {
    // The attack of the brief: n = 5, c = 1, t = 3 lets two survivor lists both pass.
    let err = Thresholds::new(5, 3, 1, 3).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            SecAggError::ThresholdTooLow {
                threshold: 3,
                members: 5,
                max_colluders: 1
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("(5 + 1)/2 = 3") && msg.contains("t = 3"),
        "{msg}"
    );
    let msg = Thresholds::new(4, 2, 1, 3).unwrap_err().to_string();
    assert!(msg.contains("(4 + 1)/2 = 2.5"), "{msg}");
    assert!(Thresholds::new(5, 4, 1, 3).is_ok());
    assert!(matches!(
        Thresholds::new(5, 6, 1, 3),
        Err(SecAggError::ThresholdAboveMembers { .. })
    ));
    assert!(matches!(
        Thresholds::new(3, 3, 3, 3),
        Err(SecAggError::TooManyColluders { .. })
    ));
    assert!(matches!(
        Thresholds::new(3, 3, 0, 4),
        Err(SecAggError::MinCohortOutOfRange { .. })
    ));
}

#[test]
fn default_thresholds_are_valid_and_minimal_for_larger_c() {
    for n in 1..200 {
        let c = Thresholds::default_colluders(n);
        let t = Thresholds::default_threshold(n, c);
        assert_eq!(t, 2 * n / 3 + 1, "n = {n}");
        Thresholds::new(n, t, c, 1).unwrap();
        for c in 0..n {
            let t = Thresholds::default_threshold(n, c);
            if t <= n {
                Thresholds::new(n, t, c, 1).unwrap();
            }
            // The next lower threshold is refused unless it is the ⌊2n/3⌋ + 1 floor.
            if t > 2 * n / 3 + 1 {
                assert!(Thresholds::new(n, t - 1, c, 1).is_err(), "n = {n}, c = {c}");
            }
        }
    }
}

#[test]
fn session_id_binds_the_colluder_bound() {
    let cohort = BTreeMap::new();
    let a = Thresholds::new(7, 6, 2, 3).unwrap();
    let b = Thresholds::new(7, 6, 3, 3).unwrap();
    let binding = |thresholds| SessionBinding {
        job_id: "j",
        job_spec_hash: &[0; 32],
        announcement: &[0; 32],
        round: 1,
        attempt: 0,
        thresholds,
    };
    assert_ne!(
        session_id(&binding(a), &cohort),
        session_id(&binding(b), &cohort)
    );
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
        let c = Thresholds::default_colluders(n);
        let t = Thresholds::new(n, Thresholds::default_threshold(n, c), c, 3).unwrap();
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

    /// Survivors revealing tampered shares are each refused and named; the
    /// others still unmask the exact sum if t of them remain.
    #[test]
    fn bad_reveals_are_attributed_and_the_rest_sum_exactly(
        n in 3usize..9,
        d in 1usize..16,
        bad in proptest::collection::vec(any::<bool>(), 9),
        seed in any::<u64>(),
    ) {
        let x = inputs(n, d, seed);
        let c = Thresholds::default_colluders(n);
        let t = Thresholds::new(n, Thresholds::default_threshold(n, c), c, 3).unwrap();
        let drops = Dropouts {
            bad_reveal: (0..n).filter(|i| bad[*i]).collect(),
            ..Default::default()
        };
        let good = n - drops.bad_reveal.len();
        match run_round(&x, Ring::U64, t, &drops, seed ^ 0xbad) {
            Ok((sum, u3)) => {
                prop_assert!(good >= t.need());
                prop_assert_eq!(sum, plain_sum(&x, Ring::U64, &u3));
            }
            Err(SecAggError::TooFewGoodReveals { have, bad: named, .. }) => {
                prop_assert!(good < t.need());
                prop_assert_eq!(have, good);
                let expected: Vec<PartyIndex> = drops.bad_reveal.iter().map(|i| idx(*i)).collect();
                prop_assert_eq!(named, expected);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
