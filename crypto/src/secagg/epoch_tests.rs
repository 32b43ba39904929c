//! Epochs in memory: setup, many slots, dropouts after the masked input,
//! tampered setups and reveals, and the attacks an epoch must withstand,
//! each mounted with what a coordinator and its colluders actually hold.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::kx::{KeyPurpose, SessionId, derive_key};
use crate::mask::MaskSeed;
use crate::ring::{MaskSign, Ring};
use crate::secagg::{Advertisement, PartyIndex, SecAggError, Thresholds};

fn idx(i: usize) -> PartyIndex {
    PartyIndex::new(i as u32 + 1).unwrap()
}

/// The members (0-based `members`) run the setup: advertise, deal, open.
fn setup_members(
    members: &[usize],
    thresholds: Thresholds,
    slots: u32,
    seed: u64,
) -> Result<(Vec<EpochMember>, EpochView), SecAggError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let slots = Slots::new(slots)?;
    let keys: Vec<EpochKeys> = members
        .iter()
        .map(|i| EpochKeys::new(idx(*i), thresholds, slots, &mut rng))
        .collect();
    let cohort: BTreeMap<PartyIndex, Advertisement> =
        keys.iter().map(|k| (k.me, k.advertisement())).collect();
    let epoch = SessionId(rng.r#gen());
    let mut sharing = Vec::new();
    let mut inbox: BTreeMap<PartyIndex, Vec<EpochDealtToMe>> = BTreeMap::new();
    let mut dealt = BTreeMap::new();
    for k in keys {
        let me = k.me;
        let (state, out) = k.share_keys(epoch, cohort.clone(), &mut rng)?;
        for (to, ciphertext) in out.ciphertexts {
            inbox.entry(to).or_default().push(EpochDealtToMe {
                from: me,
                ciphertext,
                dealt: out.record.dealt.clone(),
            });
        }
        dealt.insert(me, out.record);
        sharing.push(state);
    }
    let mut opened = Vec::new();
    for s in sharing {
        let me = s.me;
        opened.push(s.open(inbox.remove(&me).unwrap_or_default())?);
    }
    Ok((opened, EpochView::new(epoch, thresholds, slots, dealt)?))
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

fn thresholds(n: usize) -> Thresholds {
    let c = Thresholds::default_colluders(n);
    Thresholds::new(n, Thresholds::default_threshold(n, c), c, 3.min(n)).unwrap()
}

/// Masks `inputs[i]` by every member for `slot`; returns Σ of the masked inputs.
fn mask_all(members: &mut [EpochMember], slot: Slot, ring: Ring, inputs: &[Vec<u64>]) -> Vec<u64> {
    let mut sum = vec![0u64; inputs[0].len()];
    for (m, x) in members.iter_mut().zip(inputs) {
        let y = m.mask(slot, ring, x).unwrap();
        ring.add_assign(&mut sum, &y).unwrap();
    }
    sum
}

/// Unmasks `slot` of `task` with the reveals of `revealers` (positions in `members`).
fn unmask(
    view: &EpochView,
    members: &mut [EpochMember],
    ledgers: &mut [TaskLedger],
    revealers: &[usize],
    (slot, task): (Slot, [u8; 32]),
    ring: Ring,
    masked_sum: &mut [u64],
) -> Result<(), SecAggError> {
    let mut unmasker = SlotUnmasker::new(view, slot)?;
    for r in revealers {
        // A member that refuses (its ledger, a used slot) simply sends nothing.
        if let Ok(reveal) = members[*r].reveal(slot, task, &mut ledgers[*r]) {
            unmasker.accept(members[*r].me, reveal.shares)?;
        }
    }
    unmasker.finish(ring, masked_sum)
}

fn plain_sum(inputs: &[Vec<u64>], ring: Ring) -> Vec<u64> {
    let mut sum = vec![0u64; inputs[0].len()];
    for x in inputs {
        ring.add_assign(&mut sum, x).unwrap();
    }
    sum
}

fn random_inputs(rng: &mut ChaCha20Rng, n: usize, words: usize) -> Vec<Vec<u64>> {
    (0..n)
        .map(|_| (0..words).map(|_| rng.r#gen()).collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every slot of an epoch sums exactly, whichever t or more members
    /// reveal (the others dropped after their masked input).
    #[test]
    fn every_slot_sums_exactly_with_any_t_revealers(
        n in 3usize..8,
        slots in 1u32..4,
        limbs in 1u32..4,
        values in 1usize..40,
        seed in any::<u64>(),
    ) {
        let ring = Ring::new(limbs).unwrap();
        let th = thresholds(n);
        let (mut members, view) = setup_members(&all(n), th, slots, seed).unwrap();
        let mut ledgers = vec![TaskLedger::new(); n];
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 1);
        for slot in 0..slots {
            let inputs = random_inputs(&mut rng, n, ring.words_for(values));
            let mut sum = mask_all(&mut members, slot, ring, &inputs);
            let mut revealers = all(n);
            // Drop members after their masked input, keeping at least t.
            while revealers.len() > th.need() && rng.r#gen::<bool>() {
                revealers.remove(rng.gen_range(0..revealers.len()));
            }
            unmask(&view, &mut members, &mut ledgers, &revealers, (slot, [slot as u8; 32]), ring, &mut sum).unwrap();
            prop_assert_eq!(sum, plain_sum(&inputs, ring));
        }
    }
}

#[test]
fn fewer_than_t_reveals_cannot_unmask() {
    let n = 5;
    let th = thresholds(n);
    let ring = Ring::new(1).unwrap();
    let (mut members, view) = setup_members(&all(n), th, 2, 3).unwrap();
    let mut ledgers = vec![TaskLedger::new(); n];
    let inputs = vec![vec![7u64; 10]; n];
    let mut sum = mask_all(&mut members, 0, ring, &inputs);
    let few: Vec<usize> = (0..th.need() - 1).collect();
    let err = unmask(
        &view,
        &mut members,
        &mut ledgers,
        &few,
        (0, [0; 32]),
        ring,
        &mut sum,
    )
    .unwrap_err();
    assert!(matches!(err, SecAggError::TooFewParties { .. }), "{err}");
}

#[test]
fn a_slot_masks_one_input_and_reveals_once() {
    let n = 4;
    let ring = Ring::new(1).unwrap();
    let (mut members, _) = setup_members(&all(n), thresholds(n), 2, 4).unwrap();
    let mut ledger = TaskLedger::new();
    // Revealing a slot never masked.
    assert!(matches!(
        members[0].reveal(0, [1; 32], &mut ledger),
        Err(SecAggError::SlotNotMasked { slot: 0 })
    ));
    members[0].mask(0, ring, &[1, 2, 3]).unwrap();
    // The same slot for a second input: its difference with the first would leak.
    assert!(matches!(
        members[0].mask(0, ring, &[4, 5, 6]),
        Err(SecAggError::SlotUsed { slot: 0 })
    ));
    assert!(matches!(
        members[0].mask(2, ring, &[4, 5, 6]),
        Err(SecAggError::SlotOutOfRange { slot: 2, slots: 2 })
    ));
    members[0].reveal(0, [1; 32], &mut ledger).unwrap();
    assert!(matches!(
        members[0].reveal(0, [1; 32], &mut ledger),
        Err(SecAggError::SlotNotMasked { slot: 0 })
    ));
    assert_eq!(members[0].unused_slots().collect::<Vec<_>>(), vec![1]);
    assert!(matches!(
        Slots::new(0),
        Err(SecAggError::SlotCountOutOfRange { .. })
    ));
    assert!(matches!(
        Slots::new(MAX_SLOTS + 1),
        Err(SecAggError::SlotCountOutOfRange { .. })
    ));
}

#[test]
fn a_bad_revealed_share_excludes_its_sender_and_the_slot_still_unmasks() {
    let n = 6;
    let th = thresholds(n);
    let ring = Ring::new(1).unwrap();
    let (mut members, view) = setup_members(&all(n), th, 1, 5).unwrap();
    let mut ledger = TaskLedger::new();
    let inputs = vec![vec![3u64; 8]; n];
    let mut sum = mask_all(&mut members, 0, ring, &inputs);
    let mut unmasker = SlotUnmasker::new(&view, 0).unwrap();
    // Member 0 swaps in the share it holds for another slot... it has only
    // one; it sends its share of owner 1 under owner 2's name instead.
    let mut reveal = members[0].reveal(0, [9; 32], &mut ledger).unwrap();
    let (a, b) = (reveal.shares[1].0, reveal.shares[2].0);
    reveal.shares[1].0 = b;
    reveal.shares[2].0 = a;
    let err = unmasker.accept(idx(0), reveal.shares).unwrap_err();
    assert!(
        matches!(err, SecAggError::BadRevealedSlotShare { revealer, .. } if revealer == idx(0)),
        "{err}"
    );
    assert!(matches!(
        unmasker.accept(idx(0), Vec::new()),
        Err(SecAggError::ExcludedRevealer(_))
    ));
    for (i, m) in members.iter_mut().enumerate().skip(1) {
        let r = m.reveal(0, [9; 32], &mut TaskLedger::new()).unwrap();
        unmasker.accept(idx(i), r.shares).unwrap();
    }
    unmasker.finish(ring, &mut sum).unwrap();
    assert_eq!(sum, plain_sum(&inputs, ring));
}

#[test]
fn a_reveal_must_cover_every_member_once_with_the_revealers_own_shares() {
    let n = 4;
    let (mut members, view) = setup_members(&all(n), thresholds(n), 1, 6).unwrap();
    let ring = Ring::new(1).unwrap();
    mask_all(&mut members, 0, ring, &vec![vec![1u64; 2]; n]);
    let mut unmasker = SlotUnmasker::new(&view, 0).unwrap();
    let mut r = members[0]
        .reveal(0, [0; 32], &mut TaskLedger::new())
        .unwrap();
    r.shares.pop();
    assert!(matches!(
        unmasker.accept(idx(0), r.shares),
        Err(SecAggError::NotInCohort { .. })
    ));
    // Member 1 relays member 2's reveal as its own: the x is not its own.
    let r2 = members[2]
        .reveal(0, [0; 32], &mut TaskLedger::new())
        .unwrap();
    assert!(matches!(
        unmasker.accept(idx(1), r2.shares),
        Err(SecAggError::ForeignShare { .. })
    ));
    let r1 = members[1]
        .reveal(0, [0; 32], &mut TaskLedger::new())
        .unwrap();
    unmasker.accept(idx(1), r1.shares).unwrap();
    assert!(matches!(
        unmasker.accept(idx(1), Vec::new()),
        Err(SecAggError::Duplicate(_))
    ));
    assert!(matches!(
        unmasker.accept(idx(9), Vec::new()),
        Err(SecAggError::NotInCohort { .. })
    ));
}

#[test]
fn a_dealer_whose_share_fails_its_commitment_is_blamed_at_setup() {
    let n = 4;
    let th = thresholds(n);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let slots = Slots::new(3).unwrap();
    let keys: Vec<EpochKeys> = (0..n)
        .map(|i| EpochKeys::new(idx(i), th, slots, &mut rng))
        .collect();
    let cohort: BTreeMap<_, _> = keys.iter().map(|k| (k.me, k.advertisement())).collect();
    let epoch = SessionId([5; 32]);
    let mut outs = Vec::new();
    let mut states = Vec::new();
    for k in keys {
        let (s, o) = k.share_keys(epoch, cohort.clone(), &mut rng).unwrap();
        states.push(s);
        outs.push(o);
    }
    let to_member_0 = |outs: &[EpochSharesOut], tamper: bool| -> Vec<EpochDealtToMe> {
        outs.iter()
            .enumerate()
            .skip(1)
            .map(|(i, o)| {
                let mut dealt = o.record.dealt.clone();
                if tamper && i == 2 {
                    dealt.shares.get_mut(&idx(0)).unwrap()[0] ^= 1;
                }
                EpochDealtToMe {
                    from: idx(i),
                    ciphertext: o
                        .ciphertexts
                        .iter()
                        .find(|(to, _)| *to == idx(0))
                        .unwrap()
                        .1
                        .clone(),
                    dealt,
                }
            })
            .collect()
    };
    let state = states.remove(0);
    let err = state.open(to_member_0(&outs, true)).unwrap_err();
    assert!(
        matches!(err, SecAggError::DealtSlotShareMismatch { dealer } if dealer == idx(2)),
        "{err}"
    );
    // Without dealer 3's shares member 0 could not reveal its slots: no epoch.
    let states_again = {
        let mut v = to_member_0(&outs, false);
        v.pop();
        v
    };
    let mut rng2 = ChaCha20Rng::seed_from_u64(7);
    let k0 = EpochKeys::new(idx(0), th, slots, &mut rng2);
    assert_eq!(k0.advertisement(), cohort[&idx(0)]);
    let (fresh, _) = k0.share_keys(epoch, cohort.clone(), &mut rng2).unwrap();
    let err = fresh.open(states_again).unwrap_err();
    assert!(
        matches!(err, SecAggError::NotInCohort { party, .. } if party == idx(3)),
        "{err}"
    );
}

#[test]
fn a_member_refuses_an_epoch_smaller_than_the_threshold() {
    // n = 7, c = 2, t = 5: a coordinator shows member 0 a cohort of itself
    // and the two colluders, hoping its masks are only with them.
    let th = Thresholds::new(7, 5, 2, 3).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let slots = Slots::new(1).unwrap();
    let keys: Vec<EpochKeys> = [0, 5, 6]
        .iter()
        .map(|i| EpochKeys::new(idx(*i), th, slots, &mut rng))
        .collect();
    let cohort: BTreeMap<_, _> = keys.iter().map(|k| (k.me, k.advertisement())).collect();
    let err = keys
        .into_iter()
        .next()
        .unwrap()
        .share_keys(SessionId([1; 32]), cohort, &mut rng)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SecAggError::TooFewParties {
                have: 3,
                need: 5,
                ..
            }
        ),
        "{err}"
    );
}

/// The pairwise mask key of `a` and `b` for `slot`, from their shared secret
/// as `holder` (one of them) keeps it.
fn pair_key(holder: &EpochMember, peer: PartyIndex, slot: Slot) -> MaskSeed {
    let (lo, hi) = if holder.me < peer {
        (holder.me, peer)
    } else {
        (peer, holder.me)
    };
    let session = slot_session(&holder.epoch, slot);
    MaskSeed::from(derive_key(
        &holder.pairs[&peer],
        KeyPurpose::PairwiseMask,
        &session,
        lo.get(),
        hi.get(),
    ))
}

/// The cross-round attack, mounted. A coordinator colluding with c members
/// keeps every masked input and every revealed share of every slot, and
/// tries to read an honest member's slot-0 input. With what an epoch
/// reveals (every member's seed of both slots) plus the colluders' own
/// pair secrets, the input stays masked. The control: had one honest
/// member's pair secret with the victim been revealed — what reconstructing
/// a mask-agreement key reused across rounds would give — the very same
/// computation reads the input exactly.
#[test]
fn the_cross_round_attack_reads_nothing_from_an_epoch() {
    let n = 7;
    let th = Thresholds::new(n, 5, 2, 3).unwrap();
    let colluders = [5usize, 6];
    let victim = 0usize;
    let ring = Ring::new(1).unwrap();
    let (mut members, view) = setup_members(&all(n), th, 2, 11).unwrap();
    let mut ledgers = vec![TaskLedger::new(); n];
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let words = 64;
    let slot0 = random_inputs(&mut rng, n, words);
    let slot1 = random_inputs(&mut rng, n, words);
    // Slot 0: the victim's masked input is seen alone; then all reveal.
    let victim_masked = members[victim].mask(0, ring, &slot0[victim]).unwrap();
    let mut sum0 = victim_masked.clone();
    for i in 1..n {
        let y = members[i].mask(0, ring, &slot0[i]).unwrap();
        ring.add_assign(&mut sum0, &y).unwrap();
    }
    // Every member reveals slot 0; the coordinator keeps the shares.
    let mut revealed: BTreeMap<Slot, BTreeMap<PartyIndex, Vec<crate::shamir::Share>>> =
        BTreeMap::new();
    for (i, m) in members.iter_mut().enumerate() {
        for (owner, share) in m.reveal(0, [0; 32], &mut ledgers[i]).unwrap().shares {
            revealed
                .entry(0)
                .or_default()
                .entry(owner)
                .or_default()
                .push(share);
        }
    }
    // Slot 1: the coordinator declares the victim dropped. There is no key
    // share to ask for; the most it gets is every seed of slot 1 as well.
    mask_all(&mut members, 1, ring, &slot1);
    for (i, m) in members.iter_mut().enumerate() {
        for (owner, share) in m.reveal(1, [1; 32], &mut ledgers[i]).unwrap().shares {
            revealed
                .entry(1)
                .or_default()
                .entry(owner)
                .or_default()
                .push(share);
        }
    }
    let seed_of = |slot: Slot, owner: PartyIndex| {
        let s = crate::shamir::reconstruct(&revealed[&slot][&owner], th.threshold()).unwrap();
        MaskSeed::from_bytes(*s)
    };
    // The attack: y − b⁰ (and, for good measure, b¹) − the colluders' pair masks.
    let v = idx(victim);
    let attack = |extra_pairs: &[usize]| -> Vec<u64> {
        let mut x = victim_masked.clone();
        let b0 = seed_of(0, v);
        let b1 = seed_of(1, v);
        ring.sub_mask(&mut x, &b0).unwrap();
        ring.sub_mask(&mut x, &b1).unwrap();
        for c in colluders.iter().chain(extra_pairs) {
            let peer = idx(*c);
            let key = pair_key(&members[*c], v, 0);
            let sign = if peer > v {
                MaskSign::Add
            } else {
                MaskSign::Sub
            };
            // Undo what the victim did toward this peer.
            match sign {
                MaskSign::Add => ring.sub_mask(&mut x, &key).unwrap(),
                MaskSign::Sub => ring.add_mask(&mut x, &key).unwrap(),
            }
        }
        // b¹ was never in y: add it back (it only makes the attack fair).
        ring.add_mask(&mut x, &b1).unwrap();
        x
    };
    assert_ne!(
        attack(&[]),
        slot0[victim],
        "the epoch leaked the victim's input"
    );
    let words_equal = attack(&[])
        .iter()
        .zip(&slot0[victim])
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        words_equal <= 1,
        "{words_equal} of {words} words of the input are visible"
    );
    // Control: with the honest peers' pair keys the same computation reads it.
    assert_eq!(attack(&[1, 2, 3, 4]), slot0[victim]);
    // And the round's sum is still right.
    let mut s = sum0;
    for owner in view.dealt.keys() {
        ring.sub_mask(&mut s, &seed_of(0, *owner)).unwrap();
    }
    assert_eq!(s, plain_sum(&slot0, ring));
}

/// A coordinator's second try at `task`: a new epoch (setup seed `seed`)
/// of every member but `h`, each masking its same input, then every one
/// asked to reveal. Honest members answer from their `ledgers` (indexed by
/// member); the `colluders` ignore theirs.
fn sum_without(
    h: usize,
    inputs: &[Vec<u64>],
    th: Thresholds,
    ledgers: &[TaskLedger],
    colluders: &[usize],
    (task, seed): ([u8; 32], u64),
    ring: Ring,
) -> Result<Vec<u64>, SecAggError> {
    let rest: Vec<usize> = (0..inputs.len()).filter(|i| *i != h).collect();
    let (mut members, view) = setup_members(&rest, th, 1, seed)?;
    let rest_inputs: Vec<Vec<u64>> = rest.iter().map(|i| inputs[*i].clone()).collect();
    let mut sum = mask_all(&mut members, 0, ring, &rest_inputs);
    let mut rest_ledgers: Vec<TaskLedger> = rest
        .iter()
        .map(|i| match colluders.contains(i) {
            true => TaskLedger::new(),
            false => ledgers[*i].clone(),
        })
        .collect();
    let positions: Vec<usize> = (0..rest.len()).collect();
    unmask(
        &view,
        &mut members,
        &mut rest_ledgers,
        &positions,
        (0, task),
        ring,
        &mut sum,
    )?;
    Ok(sum)
}

/// The differencing attack, mounted: a task unmasked over C, then (in a
/// new epoch, as after a "dropout") over C minus an honest member h, would
/// give h's input as the difference. Members' ledgers refuse the second
/// reveal, and the coordinator's colluders alone are fewer than t.
#[test]
fn a_task_is_never_unmasked_over_two_cohorts() {
    let n = 7;
    let th = Thresholds::new(n, 5, 2, 3).unwrap();
    let colluders = [5usize, 6];
    let ring = Ring::new(1).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let inputs = random_inputs(&mut rng, n, 16);
    let task = [42u8; 32];
    let mut ledgers = vec![TaskLedger::new(); n];

    let (mut members, view) = setup_members(&all(n), th, 1, 22).unwrap();
    let mut sum = mask_all(&mut members, 0, ring, &inputs);
    unmask(
        &view,
        &mut members,
        &mut ledgers,
        &all(n),
        (0, task),
        ring,
        &mut sum,
    )
    .unwrap();
    assert_eq!(sum, plain_sum(&inputs, ring));

    for h in 0..5 {
        let err = sum_without(
            h,
            &inputs,
            th,
            &ledgers,
            &colluders,
            (task, 23 + h as u64),
            ring,
        )
        .unwrap_err();
        assert!(matches!(err, SecAggError::TooFewParties { .. }), "{err}");
        // Control: members without the ledger would have given h's input away.
        let fresh = vec![TaskLedger::new(); n];
        let without_h = sum_without(
            h,
            &inputs,
            th,
            &fresh,
            &colluders,
            (task, 40 + h as u64),
            ring,
        )
        .unwrap();
        let mut diff = sum.clone();
        ring.sub_assign(&mut diff, &without_h).unwrap();
        assert_eq!(diff, inputs[h]);
    }
}

/// The threshold half of the argument, mounted: the coordinator asks only t
/// members (the c colluders and t − c honest) to reveal the task over C, so
/// that the other honest members' ledgers stay empty; it then sums the task
/// over C minus one of those honest members. The unbound honest members
/// and the colluders number n − t + c < t: not enough.
#[test]
fn reveals_split_between_two_cohorts_never_reach_t_twice() {
    let n = 7;
    let th = Thresholds::new(n, 5, 2, 3).unwrap();
    let colluders = [5usize, 6];
    let ring = Ring::new(1).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let inputs = random_inputs(&mut rng, n, 16);
    let task = [7u8; 32];
    let mut ledgers = vec![TaskLedger::new(); n];
    let (mut members, view) = setup_members(&all(n), th, 1, 32).unwrap();
    let mut sum = mask_all(&mut members, 0, ring, &inputs);
    // Colluders 5, 6 and honest 0, 1, 2 reveal: t = 5.
    unmask(
        &view,
        &mut members,
        &mut ledgers,
        &[0, 1, 2, 5, 6],
        (0, task),
        ring,
        &mut sum,
    )
    .unwrap();
    for h in [3usize, 4] {
        let err = sum_without(
            h,
            &inputs,
            th,
            &ledgers,
            &colluders,
            (task, 33 + h as u64),
            ring,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                SecAggError::TooFewParties {
                    have: 3,
                    need: 5,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn the_ledger_allows_the_same_set_again_and_refuses_another() {
    let mut l = TaskLedger::new();
    let a = contributors_digest(&BTreeSet::from([idx(0), idx(1), idx(2)]));
    let b = contributors_digest(&BTreeSet::from([idx(0), idx(1)]));
    l.bind([1; 32], a).unwrap();
    l.bind([1; 32], a).unwrap();
    assert!(matches!(
        l.bind([1; 32], b),
        Err(SecAggError::TaskCohortConflict)
    ));
    l.bind([2; 32], b).unwrap();
    assert_eq!(l.entries().count(), 2);
}

#[test]
fn the_aggregator_refuses_commitment_lists_that_differ_from_the_signed_digest() {
    let n = 4;
    let th = thresholds(n);
    let (_, view) = setup_members(&all(n), th, 2, 50).unwrap();
    let mut dealt = view.dealt.clone();
    // Dealer 1 sends the aggregator a list whose slot-1 commitment is not
    // the one behind its signed digest for recipient 3: revealed shares
    // would be checked against a commitment the dealer never signed.
    dealt
        .get_mut(&idx(1))
        .unwrap()
        .commitments
        .get_mut(&idx(3))
        .unwrap()[1][0] ^= 1;
    let err = EpochView::new(view.epoch, th, view.slots, dealt).unwrap_err();
    assert!(
        matches!(err, SecAggError::EpochCommitmentsMalformed { dealer, .. } if dealer == idx(1)),
        "{err}"
    );
    let mut short = view.dealt.clone();
    short.get_mut(&idx(2)).unwrap().dealt.seeds.pop();
    assert!(EpochView::new(view.epoch, th, view.slots, short).is_err());
}
