//! Whole rounds over a sparse Harary graph (SecAgg+), with the complete-graph
//! harness of `tests.rs`, and the refusals that keep the graph the derived one.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use super::client::{
    AdvertiseKeys, Confirmation, DealtToMe, Reveal, ShareKeys, SharesOut, SurvivorDigest,
};
use super::plus::{Neighbourhoods, check_announced};
use super::server::{RoundView, Unmasker};
use super::tests::{Dropouts, idx, inputs, plain_sum, run_round};
use super::*;
use crate::identity::{IdentityKey, SignContext};
use crate::ring::Ring;

fn harary(n: usize, c: usize, k: usize, t: usize) -> Thresholds {
    let big_t = (n + c) / 2 + 1;
    Thresholds::new(n, big_t, c, 3)
        .unwrap()
        .with_harary(n, k, t)
        .unwrap()
}

fn binding(thresholds: Thresholds) -> SessionBinding<'static> {
    SessionBinding {
        job_id: "job",
        job_spec_hash: &[7; 32],
        announcement: &[8; 32],
        round: 3,
        attempt: 1,
        thresholds,
    }
}

/// Phases 1 and 2 of a round without dropouts: the states, what each
/// dealt, U1 and the session id.
struct Dealt2 {
    states: BTreeMap<PartyIndex, ShareKeys>,
    outs: BTreeMap<PartyIndex, SharesOut>,
    cohort: BTreeMap<PartyIndex, Advertisement>,
    session: SessionId,
}

fn deal(n: usize, thresholds: Thresholds, seed: u64) -> Dealt2 {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let clients: Vec<AdvertiseKeys> = (0..n)
        .map(|i| AdvertiseKeys::new(idx(i), thresholds, &mut rng))
        .collect();
    let cohort: BTreeMap<PartyIndex, Advertisement> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| (idx(i), c.advertisement()))
        .collect();
    let session = session_id(&binding(thresholds), &cohort);
    let mut states = BTreeMap::new();
    let mut outs = BTreeMap::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (state, out) = c.share_keys(session, cohort.clone(), &mut rng).unwrap();
        states.insert(idx(i), state);
        outs.insert(idx(i), out);
    }
    Dealt2 {
        states,
        outs,
        cohort,
        session,
    }
}

/// What the coordinator relays to `to` in phase 2.
fn relay(outs: &BTreeMap<PartyIndex, SharesOut>, to: PartyIndex) -> Vec<DealtToMe> {
    outs.iter()
        .filter_map(|(from, out)| {
            let ct = out.ciphertexts.iter().find(|(r, _)| *r == to)?;
            Some(DealtToMe {
                from: *from,
                ciphertext: ct.1.clone(),
                commitment: out.dealt.shares[&to],
            })
        })
        .collect()
}

/// A whole round without dropouts up to the reveals: the unmasker (nothing
/// accepted yet), each survivor's reveal, and the masked sum.
fn reveals(
    n: usize,
    thresholds: Thresholds,
    x: &[Vec<u64>],
    seed: u64,
) -> (Unmasker, BTreeMap<PartyIndex, Reveal>, Vec<u64>) {
    let Dealt2 {
        states,
        outs,
        cohort,
        session,
    } = deal(n, thresholds, seed);
    let mut sum = vec![0u64; x[0].len()];
    let mut sent = BTreeMap::new();
    for (p, state) in states {
        let (state, masked) = state
            .masked_input(Ring::U64, &x[p.get() as usize - 1], relay(&outs, p))
            .unwrap();
        Ring::U64.add_assign(&mut sum, &masked).unwrap();
        sent.insert(p, state);
    }
    let u3: BTreeSet<PartyIndex> = sent.keys().copied().collect();
    let key = IdentityKey::from_secret_bytes(&[1; 32]);
    let checked = key
        .public()
        .verify(
            SignContext::ParticipantMessage,
            b"x",
            &key.sign(SignContext::ParticipantMessage, b"x"),
        )
        .unwrap();
    let confirmations: Vec<Confirmation> = u3
        .iter()
        .map(|p| Confirmation {
            signer: *p,
            session,
            survivors: SurvivorDigest::of(&u3),
            checked,
        })
        .collect();
    let reveals = sent
        .into_iter()
        .map(|(p, s)| {
            let r = s.confirm(u3.clone()).unwrap().unmask(&confirmations);
            (p, r.unwrap())
        })
        .collect();
    let u2 = outs.into_iter().map(|(p, o)| (p, o.dealt)).collect();
    let unmasker = Unmasker::new(RoundView {
        session,
        thresholds,
        cohort,
        u2,
        u3,
        ring: Ring::U64,
    })
    .unwrap();
    (unmasker, reveals, sum)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Masks cancel over a Harary graph: with members leaving after
    /// advertising, after dealing but before sending their shares, after
    /// sending their shares but before their masked input (their pairwise masks are
    /// rebuilt from their neighbours' key shares), after it (their self
    /// masks are rebuilt from their neighbours' self-mask shares) and after
    /// confirming, the unmasked sum is exactly the plain sum of U3. At most
    /// k + 1 − t members of U1 leave after dealing, so every closed
    /// neighbourhood keeps t revealers.
    #[test]
    fn a_harary_round_sums_exactly_with_dropouts(
        n in 20usize..=40,
        half_k in 2usize..=4,
        slack_pick in 0usize..100,
        early in proptest::collection::btree_set(0usize..20, 0..3),
        late in proptest::collection::vec((0usize..40, 0u8..4), 0..5),
        seed in 0u64..1000,
    ) {
        let k = 2 * half_k;
        let slack = 1 + slack_pick % half_k;
        let t = k + 1 - slack;
        let thresholds = harary(n, n / 10, k, t);
        let mut drops = Dropouts { after_advertise: early.clone(), ..Default::default() };
        for (who, phase) in late.iter().filter(|(w, _)| *w < n && !early.contains(w)).take(slack) {
            match phase {
                0 => drops.after_shares.insert(*who),
                1 => drops.before_masked_input.insert(*who),
                2 => drops.after_masked_input.insert(*who),
                _ => drops.after_confirm.insert(*who),
            };
        }
        let x = inputs(n, 40, seed);
        let (sum, u3) = run_round(&x, Ring::U64, thresholds, &drops, seed).unwrap();
        let expected: BTreeSet<PartyIndex> = (0..n)
            .filter(|i| {
                !drops.after_advertise.contains(i)
                    && !drops.after_shares.contains(i)
                    && !drops.before_masked_input.contains(i)
            })
            .map(idx)
            .collect();
        prop_assert_eq!(&u3, &expected);
        prop_assert_eq!(sum, plain_sum(&x, Ring::U64, &u3));
    }
}

#[test]
fn a_harary_round_deals_and_masks_within_closed_neighbourhoods_only() {
    let (n, k, t) = (24, 6, 5);
    let th = harary(n, 2, k, t);
    let d = deal(n, th, 31);
    let graph = Neighbourhoods::derive(&th, &d.session, &d.cohort).unwrap();
    for (p, out) in &d.outs {
        let closed = graph.closed(*p);
        assert_eq!(closed.len(), k + 1);
        assert!(out.dealt.shares.keys().eq(closed.iter()), "{p}");
        let to: BTreeSet<PartyIndex> = out.ciphertexts.iter().map(|(r, _)| *r).collect();
        assert_eq!(to.len(), k);
        assert!(to.iter().all(|r| graph.adjacent(*p, *r)));
        // What a member derives alone is what the aggregator derives.
        assert_eq!(d.states[p].neighbours(), &to);
        assert_eq!(
            &Neighbourhoods::of_member(&th, &d.session, &d.cohort, *p).unwrap(),
            &to
        );
    }
    // The round sums exactly with no dropouts, and t shares suffice.
    let x = inputs(n, 30, 32);
    let (sum, u3) = run_round(&x, Ring::U64, th, &Dropouts::default(), 33).unwrap();
    assert_eq!(sum, plain_sum(&x, Ring::U64, &u3));
}

#[test]
fn a_share_from_a_non_neighbour_is_refused() {
    let (n, k) = (20, 4);
    let th = harary(n, 2, k, 4);
    let mut d = deal(n, th, 41);
    let me = idx(0);
    let state = d.states.remove(&me).unwrap();
    let stranger = *d
        .cohort
        .keys()
        .find(|p| **p != me && !state.neighbours().contains(p))
        .unwrap();
    // The coordinator relays, as if from the stranger, a ciphertext it dealt to someone else.
    let mut received = relay(&d.outs, me);
    let (other, ct) = d.outs[&stranger].ciphertexts[0].clone();
    received.push(DealtToMe {
        from: stranger,
        ciphertext: ct,
        commitment: d.outs[&stranger].dealt.shares[&other],
    });
    let err = state
        .masked_input(Ring::U64, &[0; 8], received)
        .unwrap_err();
    assert!(
        matches!(err, SecAggError::NotNeighbour { party, of } if party == stranger && of == me),
        "{err}"
    );
}

#[test]
fn the_aggregator_refuses_a_revealed_share_of_a_non_neighbour() {
    let (n, k) = (20, 4);
    let th = harary(n, 2, k, 4);
    let x = inputs(n, 16, 51);
    let (mut unmasker, mut reveals, mut sum) = reveals(n, th, &x, 52);
    let revealer = idx(0);
    let graph =
        Neighbourhoods::derive(&th, &unmasker.view().session, &unmasker.view().cohort).unwrap();
    let stranger = (0..n)
        .map(idx)
        .find(|p| !graph.in_closed(revealer, *p))
        .unwrap();
    let mut r = reveals.remove(&revealer).unwrap();
    // A well-formed share with the revealer's x for a member it never held a share of.
    let fake = crate::shamir::split(&[9; 32], 2, &[revealer.get(), 99], &mut rand::thread_rng())
        .unwrap()
        .remove(0);
    r.self_mask_shares.push((stranger, fake));
    let err = unmasker
        .accept(revealer, r.self_mask_shares, r.key_shares)
        .unwrap_err();
    assert!(
        matches!(err, SecAggError::NotNeighbour { party, of } if party == revealer && of == stranger),
        "{err}"
    );
    // The others' honest reveals still unmask the sum.
    for (p, r) in reveals {
        unmasker
            .accept(p, r.self_mask_shares, r.key_shares)
            .unwrap();
    }
    unmasker.finish(&mut sum).unwrap();
    let all: BTreeSet<PartyIndex> = (0..n).map(idx).collect();
    assert_eq!(sum, plain_sum(&x, Ring::U64, &all));
}

#[test]
fn a_dealer_that_dealt_over_another_graph_is_refused() {
    let (n, k) = (20, 4);
    let th = harary(n, 2, k, 4);
    let d = deal(n, th, 61);
    // A dealer whose shares went to a set other than its derived closed
    // neighbourhood (here: the complete graph's U1).
    let complete = Thresholds::new(n, th.threshold(), 2, 3).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(62);
    let liar = AdvertiseKeys::new(idx(0), complete, &mut rng);
    let mut cohort = d.cohort.clone();
    cohort.insert(idx(0), liar.advertisement());
    let (_, out) = liar
        .share_keys(d.session, cohort.clone(), &mut rng)
        .unwrap();
    let mut u2: BTreeMap<PartyIndex, Dealt> =
        d.outs.into_iter().map(|(p, o)| (p, o.dealt)).collect();
    u2.insert(idx(0), out.dealt);
    let err = Unmasker::new(RoundView {
        session: d.session,
        thresholds: th,
        cohort,
        u2,
        u3: BTreeSet::new(),
        ring: Ring::U64,
    })
    .unwrap_err();
    assert!(
        matches!(err, SecAggError::ShareCommitmentsNotForNeighbourhood { dealer, got, expected }
            if dealer == idx(0) && got == n && expected == k + 1),
        "{err}"
    );
}

#[test]
fn a_graph_announced_by_the_coordinator_must_be_the_derived_one() {
    let (n, k) = (20, 4);
    let th = harary(n, 2, k, 4);
    let d = deal(n, th, 71);
    let me = idx(3);
    let derived = d.states[&me].neighbours().clone();
    check_announced(me, &derived, &derived).unwrap();
    let mut swapped = derived.clone();
    let gone = *swapped.iter().next().unwrap();
    swapped.remove(&gone);
    let outsider = (0..n)
        .map(idx)
        .find(|p| *p != me && !derived.contains(p))
        .unwrap();
    swapped.insert(outsider);
    assert!(matches!(
        check_announced(me, &derived, &swapped),
        Err(SecAggError::GraphMismatch(p)) if p == me
    ));
    // The graph follows from the advertised keys: one key more or less
    // makes another session and another graph.
    let mut fewer = d.cohort.clone();
    fewer.remove(&idx(19));
    let other = session_id(&binding(th), &fewer);
    assert_ne!(other, d.session);
    let g1 = Neighbourhoods::derive(&th, &d.session, &d.cohort).unwrap();
    let g2 = Neighbourhoods::derive(&th, &other, &fewer).unwrap();
    assert!((0..19).map(idx).any(|p| g1.closed(p) != g2.closed(p)));
}

#[test]
fn the_graph_is_bound_into_the_session_and_complete_sessions_are_unchanged() {
    let mut rng = ChaCha20Rng::seed_from_u64(81);
    let complete = Thresholds::new(12, 8, 2, 3).unwrap();
    let cohort: BTreeMap<PartyIndex, Advertisement> = (0..12)
        .map(|i| {
            (
                idx(i),
                AdvertiseKeys::new(idx(i), complete, &mut rng).advertisement(),
            )
        })
        .collect();
    let sparse = complete.with_harary(12, 4, 4).unwrap();
    let other_k = complete.with_harary(12, 6, 4).unwrap();
    let other_t = complete.with_harary(12, 4, 3).unwrap();
    let ids: BTreeSet<[u8; 32]> = [complete, sparse, other_k, other_t]
        .into_iter()
        .map(|t| session_id(&binding(t), &cohort).0)
        .collect();
    assert_eq!(ids.len(), 4);
    // The complete graph's session id is the layout of before, byte for byte.
    let mut h = Sha256::new();
    h.update(b"fedcredit/v1/session\0");
    h.update(3u64.to_be_bytes());
    h.update(b"job");
    h.update([7; 32]);
    h.update([8; 32]);
    h.update(3u64.to_be_bytes());
    h.update(1u32.to_be_bytes());
    for v in [8u64, 2, 3, 12] {
        h.update(v.to_be_bytes());
    }
    for (p, ad) in &cohort {
        h.update(p.get().to_be_bytes());
        h.update(ad.share_enc.to_bytes());
        h.update(ad.mask_agree.to_bytes());
    }
    let before: [u8; 32] = h.finalize().into();
    assert_eq!(session_id(&binding(complete), &cohort).0, before);
}

#[test]
fn harary_parameters_and_a_too_small_cohort_are_refused() {
    let t = Thresholds::new(20, 12, 2, 3).unwrap();
    for (k, st) in [(3, 3), (0, 1), (20, 5), (4, 6), (4, 1)] {
        assert!(
            matches!(t.with_harary(20, k, st), Err(SecAggError::BadGraph { .. })),
            "k = {k}, t = {st}"
        );
    }
    // A U1 of 12 (enough for t = 11) cannot hold H(16, |U1|).
    let th = Thresholds::new(20, 11, 0, 3)
        .unwrap()
        .with_harary(20, 16, 10)
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(91);
    let parties: Vec<_> = (0..12)
        .map(|i| AdvertiseKeys::new(idx(i), th, &mut rng))
        .collect();
    let cohort: BTreeMap<_, _> = parties
        .iter()
        .enumerate()
        .map(|(i, p)| (idx(i), p.advertisement()))
        .collect();
    let a = parties.into_iter().next().unwrap();
    let err = a
        .share_keys(SessionId([0; 32]), cohort, &mut rng)
        .unwrap_err();
    assert!(matches!(err, SecAggError::GraphTooLarge { .. }), "{err}");
}

#[test]
fn a_survivor_list_with_a_neighbour_that_sent_no_shares_is_refused() {
    let (n, k) = (20, 4);
    let th = harary(n, 2, k, 4);
    let mut d = deal(n, th, 101);
    let me = idx(0);
    let state = d.states.remove(&me).unwrap();
    let silent = *state.neighbours().iter().next().unwrap();
    let received: Vec<DealtToMe> = relay(&d.outs, me)
        .into_iter()
        .filter(|r| r.from != silent)
        .collect();
    let (sent, _) = state.masked_input(Ring::U64, &[1; 4], received).unwrap();
    // The coordinator claims the silent neighbour survived: its mask with
    // this member was never added, so the list is refused.
    let u3: BTreeSet<PartyIndex> = (0..n).map(idx).collect();
    let err = sent.confirm(u3).unwrap_err();
    assert!(
        matches!(err, SecAggError::NotInCohort { party, .. } if party == silent),
        "{err}"
    );
}

#[test]
fn a_member_left_with_fewer_than_t_of_its_neighbourhood_does_not_mask() {
    let (n, k, t) = (20, 6, 5);
    let th = harary(n, 2, k, t);
    let mut d = deal(n, th, 111);
    let me = idx(0);
    let state = d.states.remove(&me).unwrap();
    // Itself and t − 2 neighbours: one short of t, so its secrets could not be rebuilt.
    let received: Vec<DealtToMe> = relay(&d.outs, me).into_iter().take(t - 2).collect();
    let err = state
        .masked_input(Ring::U64, &[1; 4], received)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SecAggError::TooFewNeighbours {
                phase: Phase::MaskedInput,
                have: 4,
                need: 5
            }
        ),
        "{err}"
    );
}

#[test]
fn the_complete_graph_rebuilds_a_dropouts_masks_from_key_shares() {
    let x = inputs(8, 64, 121);
    let t = Thresholds::new(8, 6, 2, 3).unwrap();
    let drops = Dropouts {
        before_masked_input: BTreeSet::from([2]),
        after_masked_input: BTreeSet::from([5]),
        ..Default::default()
    };
    let (sum, u3) = run_round(&x, Ring::U64, t, &drops, 122).unwrap();
    assert_eq!(u3.len(), 7);
    assert!(!u3.contains(&idx(2)));
    assert_eq!(sum, plain_sum(&x, Ring::U64, &u3));
}
