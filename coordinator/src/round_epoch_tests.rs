//! The epoch phases driven with real members' messages (made with
//! `fedcredit_crypto`'s `EpochKeys` / `EpochMember`): a setup and two slot
//! rounds, an abandoned slot, a reveal for the wrong slot, a bad share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::secagg::epoch::{
    EpochDealtToMe, EpochKeys, EpochMember, EpochSharesOut, EpochView, Slot, Slots, TaskLedger,
};
use fedcredit_crypto::secagg::{PartyIndex, Phase, SecAggError, Thresholds};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::roster::{ParticipantId, Roster};
use fedcredit_proto::v1 as pb;
use fedcredit_proto::words;
use prost::bytes::Bytes;
use rand::rngs::OsRng;
use tokio::sync::oneshot;

use super::*;

const MEMBERS: u32 = 4;
const WORDS: usize = 5;

fn p(i: u32) -> PartyIndex {
    PartyIndex::new(i).expect("non-zero")
}

fn roster() -> Roster {
    let members = (1..=MEMBERS as u8)
        .map(|i| {
            let id = ParticipantId::new(&format!("bank-{i}")).expect("id");
            (id, IdentityKey::from_secret_bytes(&[i; 32]).public())
        })
        .collect();
    Roster::new(members, IdentityKey::from_secret_bytes(&[99; 32]).public()).expect("roster")
}

fn thresholds() -> Thresholds {
    // t = 3 > (n + c)/2 = 2.5.
    Thresholds::new(MEMBERS as usize, 3, 1, 3).expect("valid")
}

fn attempt(setup: Setup) -> Attempt {
    Attempt {
        job_id: "job".into(),
        spec_hash: [7; 32],
        round: 0,
        attempt: 0,
        thresholds: thresholds(),
        announcement: [1; 32],
        dimension: WORDS,
        allowed: None,
        exact: None,
        ring: Ring::U64,
        setup,
    }
}

fn channel<T>() -> (Reply<T>, oneshot::Receiver<Result<T, Rejection>>) {
    oneshot::channel()
}

/// Closes the open phase as the actor does: the count check first (what
/// is logged), then the close.
fn close(round: Round, roster: &Roster) -> Result<Closed, Abort> {
    round.check_count(roster)?;
    round.close(roster)
}

fn next(round: Round, roster: &Roster) -> Round {
    match close(round, roster).expect("closes") {
        Closed::Next(next) => *next,
        Closed::Done(_) => panic!("the attempt ended early"),
    }
}

/// A set-up epoch: the members, the view the coordinator holds, and the
/// open masked-input phase of slot 0.
struct SetUp {
    members: BTreeMap<PartyIndex, EpochMember>,
    view: Arc<EpochView>,
    slot0: Round,
}

fn set_up(slots: u32, roster: &Roster) -> SetUp {
    let slots = Slots::new(slots).expect("valid");
    let keys: BTreeMap<PartyIndex, EpochKeys> = (1..=MEMBERS)
        .map(|i| (p(i), EpochKeys::new(p(i), thresholds(), slots, &mut OsRng)))
        .collect();
    let mut adv = Advertising::new(attempt(Setup::NewEpoch { slots }), BTreeSet::new());
    let mut told = Vec::new();
    for (me, k) in &keys {
        let (tx, rx) = channel();
        assert!(adv.accept(roster, *me, pb::Signed::default(), k.advertisement(), tx));
        told.push(rx);
    }
    let round = next(Round::Advertising(adv), roster);
    for mut rx in told {
        assert_eq!(
            rx.try_recv().expect("answered").expect("ok").adverts.len(),
            4
        );
    }
    let Round::EpochSharing(mut sharing) = round else {
        panic!("an epoch attempt goes on to the epoch's setup shares");
    };
    let epoch = *sharing.epoch();
    let cohort: BTreeMap<_, _> = keys.iter().map(|(q, k)| (*q, k.advertisement())).collect();
    let mut outs: BTreeMap<PartyIndex, EpochSharesOut> = BTreeMap::new();
    let mut pending = BTreeMap::new();
    let mut relayed = Vec::new();
    for (me, k) in keys {
        let (s, out) = k
            .share_keys(epoch, cohort.clone(), &mut OsRng)
            .expect("shares");
        let cts: Vec<(PartyIndex, Bytes)> = out
            .ciphertexts
            .iter()
            .map(|(to, c)| (*to, Bytes::from(c.clone())))
            .collect();
        let (tx, rx) = channel();
        assert!(sharing.accept(
            roster,
            me,
            out.record.clone(),
            &cts,
            pb::Signed::default(),
            tx
        ));
        relayed.push(rx);
        outs.insert(me, out);
        pending.insert(me, s);
    }
    assert!(sharing.is_complete());
    let slot0 = next(Round::EpochSharing(sharing), roster);
    for mut rx in relayed {
        // Every other dealer's signed message, relayed as is.
        assert_eq!(rx.try_recv().expect("answered").expect("ok").dealt.len(), 3);
    }
    let members = pending
        .into_iter()
        .map(|(me, s)| {
            let received = outs
                .iter()
                .filter(|(from, _)| **from != me)
                .map(|(from, out)| EpochDealtToMe {
                    from: *from,
                    ciphertext: out
                        .ciphertexts
                        .iter()
                        .find(|(to, _)| *to == me)
                        .expect("addressed")
                        .1
                        .clone(),
                    dealt: out.record.dealt.clone(),
                })
                .collect();
            (me, s.open(received).expect("opens"))
        })
        .collect();
    let Round::CollectingInputs(c) = &slot0 else {
        panic!("the setup goes on to slot 0's masked inputs");
    };
    let (view, slot) = c.slot().expect("an epoch slot");
    assert_eq!(slot, 0);
    assert_eq!(view.epoch, epoch);
    let view = Arc::clone(view);
    SetUp {
        members,
        view,
        slot0,
    }
}

fn input(me: PartyIndex, slot: Slot) -> Vec<u64> {
    (0..WORDS as u64)
        .map(|w| u64::from(me.get()) * 1000 + u64::from(slot) * 10 + w)
        .collect()
}

fn expected_sum(cohort: impl IntoIterator<Item = PartyIndex>, slot: Slot) -> Vec<u64> {
    let mut sum = vec![0u64; WORDS];
    for me in cohort {
        for (s, x) in sum.iter_mut().zip(input(me, slot)) {
            *s = s.wrapping_add(x);
        }
    }
    sum
}

/// Masked inputs of `senders` into the open slot phase; returns their
/// answer channels.
fn mask_all(
    round: &mut Round,
    members: &mut BTreeMap<PartyIndex, EpochMember>,
    senders: &[PartyIndex],
    slot: Slot,
    roster: &Roster,
) -> Vec<oneshot::Receiver<Result<InputAnswer, Rejection>>> {
    let Round::CollectingInputs(c) = round else {
        panic!("not collecting inputs");
    };
    let mut rxs = Vec::new();
    for me in senders {
        let masked = members
            .get_mut(me)
            .expect("member")
            .mask(slot, Ring::U64, &input(*me, slot))
            .expect("masks");
        let taken = c
            .accept(roster, *me, &Piece::Whole, &words::to_bytes(&masked))
            .expect("accepted");
        assert_eq!(taken, Taken::Whole);
        let (tx, rx) = channel();
        c.wait(tx);
        rxs.push(rx);
    }
    rxs
}

fn reveal(
    member: &mut EpochMember,
    slot: Slot,
    ledger: &mut TaskLedger,
) -> Vec<(PartyIndex, Share)> {
    let r = member
        .reveal(slot, [slot as u8; 32], ledger)
        .expect("reveals");
    assert_eq!(r.slot, slot);
    r.shares
}

/// Runs a slot from its open masked-input phase to its outcome.
fn run_slot(
    mut round: Round,
    members: &mut BTreeMap<PartyIndex, EpochMember>,
    slot: Slot,
    roster: &Roster,
) -> Outcome {
    let all: Vec<PartyIndex> = members.keys().copied().collect();
    let answers = mask_all(&mut round, members, &all, slot, roster);
    assert!(round.is_complete());
    let round = next(round, roster);
    for mut rx in answers {
        let Ok(Ok(InputAnswer::Survivors(s))) = rx.try_recv() else {
            panic!("the survivor list goes out at the close");
        };
        assert_eq!(s.survivors, ["bank-1", "bank-2", "bank-3", "bank-4"]);
    }
    let Round::SlotUnmasking(mut u) = round else {
        panic!("a slot goes on to its unmask, with no consistency check");
    };
    let mut ledger = TaskLedger::new();
    let mut outcome_rxs = Vec::new();
    for (me, m) in members.iter_mut() {
        let (tx, rx) = channel();
        assert!(u.accept(roster, *me, slot, reveal(m, slot, &mut ledger), tx));
        outcome_rxs.push(rx);
    }
    let round = Round::SlotUnmasking(u);
    assert!(round.is_complete());
    match close(round, roster).expect("unmasks") {
        Closed::Done(done) => {
            let (a, outcome) = *done;
            assert!(a.setup.is_epoch());
            assert_eq!(outcome.waiters.len(), outcome_rxs.len());
            outcome
        }
        Closed::Next(_) => panic!("the unmask is the last phase"),
    }
}

#[test]
fn a_setup_and_two_slots_sum_every_members_input() {
    let roster = roster();
    let SetUp {
        mut members,
        view,
        slot0,
    } = set_up(4, &roster);
    let cohort: BTreeSet<PartyIndex> = members.keys().copied().collect();
    let out = run_slot(slot0, &mut members, 0, &roster);
    assert_eq!(out.sum, expected_sum(cohort.iter().copied(), 0));
    assert_eq!(out.contributors, cohort);

    // The next round: slot 1 of the same epoch, masked input then unmask.
    let slot1 = CollectingInputs::for_slot(attempt(Setup::Slot { slot: 1 }), view, 1)
        .expect("slot 1 exists");
    let slot1 = Round::CollectingInputs(slot1);
    assert!(
        slot1.is_first_phase(),
        "a slot attempt starts at its inputs"
    );
    assert_eq!(slot1.phase(), Phase::MaskedInput);
    let out = run_slot(slot1, &mut members, 1, &roster);
    assert_eq!(out.sum, expected_sum(cohort.iter().copied(), 1));
    assert_eq!(out.contributors, cohort);
}

#[test]
fn a_slot_past_the_epoch_is_not_opened() {
    let roster = roster();
    let SetUp { view, .. } = set_up(2, &roster);
    let e = CollectingInputs::for_slot(attempt(Setup::Slot { slot: 2 }), view, 2)
        .expect_err("the epoch has slots 0 and 1");
    assert_eq!(e.phase, Phase::MaskedInput);
}

#[test]
fn a_slot_missing_a_masked_input_is_abandoned_before_any_reveal() {
    let roster = roster();
    let SetUp {
        mut members,
        mut slot0,
        ..
    } = set_up(4, &roster);
    let three = [p(1), p(2), p(3)];
    let answers = mask_all(&mut slot0, &mut members, &three, 0, &roster);
    assert!(!slot0.is_complete());
    assert_eq!(slot0.missing(), BTreeSet::from([p(4)]));
    // Three inputs are enough for the threshold, but not for a slot: the
    // count check (what the actor logs) already refuses.
    let abort = slot0.check_count(&roster).expect_err("abandoned");
    assert_eq!(abort.phase, Phase::MaskedInput);
    assert_eq!(
        abort.reason,
        "slot abandoned before any reveal: bank-4 sent no masked input; the next attempt \
         sets up a new epoch"
    );
    let Err(abort) = slot0.close(&roster) else {
        panic!("the slot must not be unmasked");
    };
    assert!(abort.reason.starts_with("slot abandoned"), "{abort}");
    for mut rx in answers {
        assert!(matches!(rx.try_recv(), Ok(Err(Rejection::Aborted(_)))));
    }
}

#[test]
fn a_reveal_for_another_slot_is_refused_and_not_logged() {
    let roster = roster();
    let SetUp {
        mut members,
        mut slot0,
        ..
    } = set_up(4, &roster);
    let all: Vec<PartyIndex> = members.keys().copied().collect();
    let _answers = mask_all(&mut slot0, &mut members, &all, 0, &roster);
    let Round::SlotUnmasking(mut u) = next(slot0, &roster) else {
        panic!("unmask");
    };
    let mut ledger = TaskLedger::new();
    let shares = reveal(members.get_mut(&p(1)).expect("member"), 0, &mut ledger);
    let (tx, mut rx) = channel();
    assert!(
        !u.accept(&roster, p(1), 1, shares, tx),
        "refused, not logged"
    );
    match rx.try_recv() {
        Ok(Err(Rejection::WrongSlot {
            who,
            got: 1,
            slot: 0,
        })) => assert_eq!(who, "bank-1"),
        other => panic!("expected a wrong-slot rejection, got {other:?}"),
    }
    // Nothing changed: the member is still awaited.
    assert!(u.missing().contains(&p(1)));
    // A reveal from outside the epoch's cohort is refused by admission.
    let (tx, mut rx) = channel();
    assert!(!u.accept(&roster, p(9), 0, Vec::new(), tx));
    assert!(matches!(rx.try_recv(), Ok(Err(_))));
}

#[test]
fn a_bad_revealed_share_excludes_its_revealer_and_the_others_unmask() {
    let roster = roster();
    let SetUp {
        mut members,
        mut slot0,
        ..
    } = set_up(4, &roster);
    let cohort: BTreeSet<PartyIndex> = members.keys().copied().collect();
    let all: Vec<PartyIndex> = cohort.iter().copied().collect();
    let _answers = mask_all(&mut slot0, &mut members, &all, 0, &roster);
    let Round::SlotUnmasking(mut u) = next(slot0, &roster) else {
        panic!("unmask");
    };
    let mut ledger = TaskLedger::new();
    // bank-2 swaps the shares it holds of bank-1's and bank-3's seeds: each
    // is well formed, at its x, and fails its dealer's commitment.
    let good = reveal(members.get_mut(&p(2)).expect("member"), 0, &mut ledger);
    let (a, b) = (
        good.iter().position(|(o, _)| *o == p(1)).expect("owner"),
        good.iter().position(|(o, _)| *o == p(3)).expect("owner"),
    );
    let (owners, mut shares): (Vec<PartyIndex>, Vec<Share>) = good.into_iter().unzip();
    shares.swap(a, b);
    let bad: Vec<(PartyIndex, Share)> = owners.into_iter().zip(shares).collect();
    let (tx, mut rx) = channel();
    assert!(
        u.accept(&roster, p(2), 0, bad, tx),
        "logged as signed evidence against its sender"
    );
    match rx.try_recv() {
        Ok(Err(Rejection::Protocol {
            who,
            source: SecAggError::BadRevealedSlotShare { revealer, .. },
        })) => {
            assert_eq!(who, "bank-2");
            assert_eq!(revealer, p(2));
        }
        other => panic!("expected a bad-share rejection, got {other:?}"),
    }
    // Excluded: a second reveal is refused.
    let (tx, mut rx) = channel();
    assert!(!u.accept(&roster, p(2), 0, Vec::new(), tx));
    assert!(matches!(rx.try_recv(), Ok(Err(Rejection::Protocol { .. }))));
    for me in [p(1), p(3), p(4)] {
        let (tx, _rx) = channel();
        let shares = reveal(members.get_mut(&me).expect("member"), 0, &mut ledger);
        assert!(u.accept(&roster, me, 0, shares, tx));
    }
    let round = Round::SlotUnmasking(u);
    assert!(round.is_complete(), "three revealed and one excluded");
    let Closed::Done(done) = close(round, &roster).expect("t good reveals suffice") else {
        panic!("done");
    };
    let (_, outcome) = *done;
    assert_eq!(outcome.sum, expected_sum(cohort.iter().copied(), 0));
    assert_eq!(outcome.contributors, cohort);
}

#[test]
fn too_few_good_reveals_abort_the_unmask_and_name_the_excluded() {
    let roster = roster();
    let SetUp {
        mut members,
        mut slot0,
        ..
    } = set_up(4, &roster);
    let all: Vec<PartyIndex> = members.keys().copied().collect();
    let _answers = mask_all(&mut slot0, &mut members, &all, 0, &roster);
    let Round::SlotUnmasking(mut u) = next(slot0, &roster) else {
        panic!("unmask");
    };
    let mut ledger = TaskLedger::new();
    for me in [p(1), p(2)] {
        let (tx, _rx) = channel();
        let shares = reveal(members.get_mut(&me).expect("member"), 0, &mut ledger);
        assert!(u.accept(&roster, me, 0, shares, tx));
    }
    let round = Round::SlotUnmasking(u);
    let abort = round.check_count(&roster).expect_err("2 of t = 3");
    assert_eq!(abort.phase, Phase::Unmask);
    assert!(round.close(&roster).is_err());
}

#[test]
fn every_advertiser_must_deal_for_an_epoch() {
    let roster = roster();
    let slots = Slots::new(2).expect("valid");
    let keys: BTreeMap<PartyIndex, EpochKeys> = (1..=MEMBERS)
        .map(|i| (p(i), EpochKeys::new(p(i), thresholds(), slots, &mut OsRng)))
        .collect();
    let mut adv = Advertising::new(attempt(Setup::NewEpoch { slots }), BTreeSet::new());
    for (me, k) in &keys {
        let (tx, _rx) = channel();
        assert!(adv.accept(&roster, *me, pb::Signed::default(), k.advertisement(), tx));
    }
    let Round::EpochSharing(mut sharing) = next(Round::Advertising(adv), &roster) else {
        panic!("epoch sharing");
    };
    let epoch = *sharing.epoch();
    let cohort: BTreeMap<_, _> = keys.iter().map(|(q, k)| (*q, k.advertisement())).collect();
    let mut waiting = Vec::new();
    for (me, k) in keys.into_iter().take(3) {
        let (_, out) = k
            .share_keys(epoch, cohort.clone(), &mut OsRng)
            .expect("shares");
        let cts: Vec<(PartyIndex, Bytes)> = out
            .ciphertexts
            .iter()
            .map(|(to, c)| (*to, Bytes::from(c.clone())))
            .collect();
        // Ciphertexts for all but one other member are refused.
        let (tx, mut rx) = channel();
        assert!(!sharing.accept(
            &roster,
            me,
            out.record.clone(),
            &cts[1..],
            pb::Signed::default(),
            tx
        ));
        assert!(matches!(rx.try_recv(), Ok(Err(_))));
        let (tx, rx) = channel();
        assert!(sharing.accept(
            &roster,
            me,
            out.record.clone(),
            &cts,
            pb::Signed::default(),
            tx
        ));
        waiting.push(rx);
        // Once only.
        let (tx, _rx) = channel();
        assert!(!sharing.accept(&roster, me, out.record, &cts, pb::Signed::default(), tx));
    }
    let round = Round::EpochSharing(sharing);
    assert!(!round.is_complete());
    assert_eq!(round.missing(), BTreeSet::from([p(4)]));
    let abort = round.check_count(&roster).expect_err("bank-4 dealt none");
    assert_eq!(abort.phase, Phase::ShareKeys);
    assert!(abort.reason.contains("bank-4 dealt none"), "{abort}");
    assert!(round.close(&roster).is_err());
    for mut rx in waiting {
        assert!(matches!(rx.try_recv(), Ok(Err(Rejection::Aborted(_)))));
    }
}

#[test]
fn bodies_of_the_other_setup_are_told_apart() {
    use crate::requests::{BodySetup, RoundMsg};
    let (tx, _rx) = channel();
    let reveal = RoundMsg::SlotReveal {
        slot: 0,
        shares: Vec::new(),
        reply: tx,
    };
    assert_eq!(reveal.setup(), BodySetup::Epoch);
    assert_eq!(reveal.phase(), Phase::Unmask);
    let (tx, _rx) = channel();
    let unmask = RoundMsg::Unmask {
        self_mask: Vec::new(),
        keys: Vec::new(),
        reply: tx,
    };
    assert_eq!(unmask.setup(), BodySetup::PerRound);
    assert!(!Setup::PerRound.is_epoch());
    assert!(Setup::Slot { slot: 3 }.is_epoch());
    assert!(
        Setup::Slot { slot: 3 }
            .describe()
            .contains("slot 3 of an epoch")
    );
}
