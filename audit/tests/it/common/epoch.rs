//! Epoch-job logs made by hand (`[protocol] setup = "epoch"`), following
//! the log contract of /work/notes/epoch-spec.md with the real epoch state
//! machines (`fedcredit_crypto::secagg::epoch`) and real signatures: a setup
//! attempt (advertise-keys, share-keys with `EpochShares`, masked input and
//! slot reveal for slot 0), then slot attempts (masked input and slot
//! reveal only).

use std::collections::{BTreeMap, BTreeSet};

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::ring::Ring;
use fedcredit_crypto::secagg::epoch::{
    EpochDealtToMe, EpochKeys, EpochMember, EpochView, Slot, SlotUnmasker,
};
use fedcredit_crypto::secagg::{self, Phase, SessionBinding};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::v1::{self as pb, log_body, message::Body};
use fedcredit_proto::{epoch, words};
use rand::rngs::OsRng;

use super::handmade::{Ended, Handmade, id, idx};

/// Who does not answer where, in one epoch attempt (0-based positions).
#[derive(Clone, Debug, Default)]
pub struct SlotPlan {
    /// Setup only: advertise keys but send no epoch shares.
    pub skip_shares: BTreeSet<usize>,
    pub skip_masked: BTreeSet<usize>,
    pub skip_reveal: BTreeSet<usize>,
    /// Reveal one share with a flipped byte (logged, its sender excluded).
    pub bad_reveal: BTreeSet<usize>,
}

/// The epoch the hand-made coordinator and its members hold.
pub struct Held {
    pub id: SessionId,
    pub view: EpochView,
    pub members: BTreeMap<usize, EpochMember>,
}

/// An epoch job's log under construction.
pub struct EpochJob {
    pub h: Handmade,
    pub epoch: Option<Held>,
    /// The id of the last epoch set up (held or not).
    pub last_id: Option<SessionId>,
    ledgers: BTreeMap<usize, secagg::epoch::TaskLedger>,
}

impl EpochJob {
    /// JobStarted and the first CoordinatorStarted of a job with `slots` slots per epoch.
    pub fn new(slots: u32) -> Self {
        Self {
            h: Handmade::with_epoch_slots(slots),
            epoch: None,
            last_id: None,
            ledgers: BTreeMap::new(),
        }
    }

    /// An attempt that sets up a new epoch and uses its slot 0.
    pub fn setup(&mut self, round: u64, attempt: u32, plan: &SlotPlan) -> Ended {
        let c = self.h.consortium.clone();
        let t = c.protocol.thresholds;
        let slots = c.protocol.epoch_slots.expect("an epoch job");
        self.epoch = None;
        let digest = self.h.announce(round, attempt, &[], 0);
        let everyone = self.h.present();

        let mut keys = BTreeMap::new();
        let mut cohort = BTreeMap::new();
        for &i in &everyone {
            let k = EpochKeys::new(idx(i), t, slots, &mut OsRng);
            let ad = k.advertisement();
            self.h.participant(
                i,
                round,
                attempt,
                Body::Advertise(pb::KeyAdvertisement {
                    share_enc_public: ad.share_enc.to_bytes().to_vec().into(),
                    mask_agree_public: ad.mask_agree.to_bytes().to_vec().into(),
                }),
            );
            cohort.insert(idx(i), ad);
            keys.insert(i, k);
        }
        let u1: BTreeSet<usize> = keys.keys().copied().collect();
        self.h
            .closed(round, attempt, Phase::AdvertiseKeys, &u1, &everyone);
        let spec_hash = c.job.hash();
        let binding = SessionBinding {
            job_id: &c.job.id,
            job_spec_hash: &spec_hash,
            announcement: &digest,
            round,
            attempt,
            thresholds: t,
        };
        let session = secagg::session_id(&binding, &cohort);
        self.last_id = Some(session);

        let mut sharing = BTreeMap::new();
        let mut outs = BTreeMap::new();
        for (i, k) in keys {
            let (state, out) = k
                .share_keys(session, cohort.clone(), &mut OsRng)
                .expect("share keys");
            sharing.insert(i, state);
            if plan.skip_shares.contains(&i) {
                continue;
            }
            let record = out.record.clone();
            let ciphertexts = out.ciphertexts.clone();
            self.h.participant(
                i,
                round,
                attempt,
                Body::EpochShares(epoch::to_pb(&c.roster, out)),
            );
            outs.insert(i, (record, ciphertexts));
        }
        let u2: BTreeSet<usize> = outs.keys().copied().collect();
        if u2 != u1 {
            self.h.push(log_body::Entry::RoundAborted(pb::RoundAborted {
                round,
                attempt,
                phase: Phase::ShareKeys.to_string(),
                reason: "share-keys: every member of an epoch must deal".into(),
            }));
            return Ended::Aborted(Phase::ShareKeys);
        }
        self.h.closed(round, attempt, Phase::ShareKeys, &u2, &u1);

        let mut members = BTreeMap::new();
        for (i, state) in sharing {
            let received = outs
                .iter()
                .filter(|(d, _)| **d != i)
                .map(|(d, (record, cts))| EpochDealtToMe {
                    from: idx(*d),
                    ciphertext: cts
                        .iter()
                        .find(|(to, _)| *to == idx(i))
                        .map(|(_, ct)| ct.clone())
                        .expect("a ciphertext for every member"),
                    dealt: record.dealt.clone(),
                })
                .collect();
            members.insert(i, state.open(received).expect("open the epoch"));
        }
        let records = outs
            .into_iter()
            .map(|(d, (record, _))| (idx(d), record))
            .collect();
        let view = EpochView::new(session, t, slots, records).expect("view");
        self.epoch = Some(Held {
            id: session,
            view,
            members,
        });
        self.slot_phases(round, attempt, 0, plan)
    }

    /// An attempt that uses `slot` of the held epoch.
    pub fn slot(&mut self, round: u64, attempt: u32, slot: Slot, plan: &SlotPlan) -> Ended {
        let held = self.epoch.as_ref().expect("an epoch is held");
        let id = *held.id.as_bytes();
        self.h.announce(round, attempt, &id, slot);
        self.slot_phases(round, attempt, slot, plan)
    }

    fn slot_phases(&mut self, round: u64, attempt: u32, slot: Slot, plan: &SlotPlan) -> Ended {
        let c = self.h.consortium.clone();
        let fp = FixedPoint::new(16, 1e6).expect("fp");
        let mut held = self.epoch.take().expect("an epoch is held");
        let cohort: BTreeSet<usize> = held.members.keys().copied().collect();

        let mut masked_sum = vec![0u64; super::handmade::DIMENSION];
        let mut u3 = BTreeSet::new();
        for (i, member) in &mut held.members {
            if plan.skip_masked.contains(i) {
                continue;
            }
            let encoded = fp.encode_slice(&Handmade::input(*i)).expect("encode");
            let masked = member.mask(slot, Ring::U64, &encoded).expect("mask");
            self.h.participant(
                *i,
                round,
                attempt,
                Body::MaskedInput(pb::MaskedInput {
                    values: words::to_bytes(&masked).into(),
                }),
            );
            Ring::U64.add_assign(&mut masked_sum, &masked).expect("add");
            u3.insert(*i);
        }
        if u3 != cohort {
            // Abandoned before any reveal; the epoch is dropped.
            self.h.push(log_body::Entry::RoundAborted(pb::RoundAborted {
                round,
                attempt,
                phase: Phase::MaskedInput.to_string(),
                reason: "slot abandoned before any reveal; the next attempt sets up a new epoch"
                    .into(),
            }));
            return Ended::Aborted(Phase::MaskedInput);
        }
        self.h
            .closed(round, attempt, Phase::MaskedInput, &u3, &cohort);

        let mut unmasker = SlotUnmasker::new(&held.view, slot).expect("unmasker");
        let mut u5 = BTreeSet::new();
        let mut bad = BTreeSet::new();
        let task = [round as u8; 32];
        for (i, member) in &mut held.members {
            if plan.skip_reveal.contains(i) {
                continue;
            }
            let ledger = self.ledgers.entry(*i).or_default();
            let mut reveal = member.reveal(slot, task, ledger).expect("reveal");
            if plan.bad_reveal.contains(i) {
                let (owner, share) = reveal.shares.remove(0);
                let mut bytes = share.to_bytes();
                bytes[4] = bytes[4].wrapping_add(1);
                reveal
                    .shares
                    .insert(0, (owner, Share::from_bytes(&*bytes).expect("share")));
            }
            // Shares are not `Clone`: the unmasker gets the logged message, decoded.
            let logged = epoch::reveal_to_pb(&c.roster, slot, reveal.shares);
            let (_, shares) = epoch::reveal_from_pb(&c.roster, &logged).expect("decode");
            self.h
                .participant(*i, round, attempt, Body::SlotReveal(logged));
            let accepted = unmasker.accept(idx(*i), shares);
            if plan.bad_reveal.contains(i) {
                assert!(accepted.is_err(), "a bad share must be refused");
                bad.insert(*i);
            } else {
                accepted.expect("accept");
                u5.insert(*i);
            }
        }
        let expected: BTreeSet<usize> = cohort.difference(&bad).copied().collect();
        let closed = self
            .h
            .close_or_abort(round, attempt, Phase::Unmask, &u5, &expected);
        if !closed {
            // Too few reveals: the epoch stays held, its other slots unused.
            drop(unmasker);
            self.epoch = Some(held);
            return Ended::Aborted(Phase::Unmask);
        }
        unmasker.finish(Ring::U64, &mut masked_sum).expect("unmask");
        self.h.completed(round, attempt, &masked_sum, &u3);
        self.epoch = Some(held);
        Ended::Completed(fp.decode_slice(&masked_sum))
    }
}

/// The logged ids of members `v`.
pub fn ids(v: &[usize]) -> Vec<String> {
    v.iter().map(|i| id(*i)).collect()
}
