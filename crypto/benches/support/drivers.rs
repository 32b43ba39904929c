//! Drivers of whole secure-aggregation rounds in one process, shared by the
//! `epoch` bench (wall time) and the `secagg_round_cost` example (run under
//! callgrind for instruction counts that do not move with the machine's
//! load): all N members and the aggregator, no transport.
//!
//! Every message the protocol signs is signed, and every signature a
//! receiver must check is checked (Ed25519 over a 32-byte digest), so the
//! per-round protocol pays its O(n) checks per member per phase here too.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;

use fedcredit_crypto::identity::{IdentityKey, SignContext};
use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::ring::Ring;
use fedcredit_crypto::secagg::client::{AdvertiseKeys, Confirmation, DealtToMe, SurvivorDigest};
use fedcredit_crypto::secagg::epoch::{
    EpochDealtToMe, EpochKeys, EpochMember, EpochView, Slot, SlotUnmasker, Slots, TaskLedger,
};
use fedcredit_crypto::secagg::server::{RoundView, Unmasker};
use fedcredit_crypto::secagg::{PartyIndex, SessionBinding, Thresholds, session_id};
use rand_chacha::ChaCha20Rng;

/// Members of the consortium.
pub const N: usize = 64;

fn idx(i: usize) -> PartyIndex {
    PartyIndex::new(i as u32 + 1).expect("nonzero")
}

fn thresholds() -> Thresholds {
    let c = Thresholds::default_colluders(N);
    Thresholds::new(N, Thresholds::default_threshold(N, c), c, 3).expect("valid")
}

/// Signs `signs` messages and checks `verifies` signatures.
fn signatures(key: &IdentityKey, signs: usize, verifies: usize) {
    let msg = [7u8; 32];
    let sig = key.sign(SignContext::ParticipantMessage, &msg);
    for _ in 0..signs {
        black_box(key.sign(SignContext::ParticipantMessage, black_box(&msg)));
    }
    for _ in 0..verifies {
        key.public()
            .verify(SignContext::ParticipantMessage, black_box(&msg), &sig)
            .expect("valid");
    }
}

/// One round of the per-round protocol, all members and the aggregator.
#[inline(never)]
pub fn per_round(inputs: &[Vec<u64>], ring: Ring, key: &IdentityKey, rng: &mut ChaCha20Rng) {
    let th = thresholds();
    let t = th.threshold();
    let clients: Vec<AdvertiseKeys> = (0..N)
        .map(|i| AdvertiseKeys::new(idx(i), th, rng))
        .collect();
    let cohort: BTreeMap<_, _> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| (idx(i), c.advertisement()))
        .collect();
    let binding = SessionBinding {
        job_id: "bench",
        job_spec_hash: &[1; 32],
        announcement: &[2; 32],
        round: 1,
        attempt: 1,
        thresholds: th,
    };
    let session = session_id(&binding, &cohort);
    // Per member: sign 5 messages; check N − 1 adverts, N − 1 share bundles, t confirmations.
    // The aggregator checks every one of the 5 N messages.
    signatures(key, 5 * N, N * (2 * (N - 1) + t) + 5 * N);
    let mut states = Vec::new();
    let mut inbox: BTreeMap<PartyIndex, Vec<DealtToMe>> = BTreeMap::new();
    let mut u2 = BTreeMap::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (state, out) = c.share_keys(session, cohort.clone(), rng).expect("shares");
        for (to, ciphertext) in out.ciphertexts {
            inbox.entry(to).or_default().push(DealtToMe {
                from: idx(i),
                ciphertext,
                commitment: out.dealt.shares[&to],
            });
        }
        u2.insert(idx(i), out.dealt);
        states.push(state);
    }
    let mut sum = vec![0u64; inputs[0].len()];
    let mut sent = Vec::new();
    for (i, state) in states.into_iter().enumerate() {
        let received = inbox.remove(&idx(i)).unwrap_or_default();
        let (state, y) = state
            .masked_input(ring, &inputs[i], received)
            .expect("mask");
        ring.add_assign(&mut sum, &y).expect("add");
        sent.push(state);
    }
    let u3: BTreeSet<PartyIndex> = (0..N).map(idx).collect();
    let checked = key
        .public()
        .verify(
            SignContext::ParticipantMessage,
            b"x",
            &key.sign(SignContext::ParticipantMessage, b"x"),
        )
        .expect("valid");
    let confirmations: Vec<Confirmation> = (0..N)
        .map(|i| Confirmation {
            signer: idx(i),
            session,
            survivors: SurvivorDigest::of(&u3),
            checked,
        })
        .collect();
    let mut unmasker = Unmasker::new(RoundView {
        session,
        thresholds: th,
        cohort,
        u2,
        u3: u3.clone(),
        ring,
    })
    .expect("view");
    for (i, state) in sent.into_iter().enumerate() {
        let reveal = state
            .confirm(u3.clone())
            .expect("confirm")
            .unmask(&confirmations)
            .expect("reveal");
        unmasker
            .accept(idx(i), reveal.self_mask_shares, reveal.key_shares)
            .expect("accept");
    }
    unmasker.finish(&mut sum).expect("unmask");
    black_box(sum);
}

/// The epoch's setup, all members and the aggregator.
#[inline(never)]
pub fn setup(
    slots: u32,
    key: &IdentityKey,
    rng: &mut ChaCha20Rng,
) -> (Vec<EpochMember>, EpochView) {
    let th = thresholds();
    let slots = Slots::new(slots).expect("slots");
    let keys: Vec<EpochKeys> = (0..N)
        .map(|i| EpochKeys::new(idx(i), th, slots, rng))
        .collect();
    let cohort: BTreeMap<_, _> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (idx(i), k.advertisement()))
        .collect();
    let epoch = SessionId([9; 32]);
    // Per member: sign 2; check N − 1 adverts and N − 1 share bundles. Aggregator: 2 N.
    signatures(key, 2 * N, N * 2 * (N - 1) + 2 * N);
    let mut sharing = Vec::new();
    let mut inbox: BTreeMap<PartyIndex, Vec<EpochDealtToMe>> = BTreeMap::new();
    let mut dealt = BTreeMap::new();
    for (i, k) in keys.into_iter().enumerate() {
        let (state, out) = k.share_keys(epoch, cohort.clone(), rng).expect("shares");
        for (to, ciphertext) in out.ciphertexts {
            inbox.entry(to).or_default().push(EpochDealtToMe {
                from: idx(i),
                ciphertext,
                dealt: out.record.dealt.clone(),
            });
        }
        dealt.insert(idx(i), out.record);
        sharing.push(state);
    }
    let members = sharing
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.open(inbox.remove(&idx(i)).unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()
        .expect("open");
    (
        members,
        EpochView::new(epoch, th, slots, dealt).expect("view"),
    )
}

/// One slot of a set-up epoch, all members and the aggregator.
#[inline(never)]
pub fn slot_round(
    members: &mut [EpochMember],
    view: &EpochView,
    slot: Slot,
    inputs: &[Vec<u64>],
    ring: Ring,
    key: &IdentityKey,
) {
    // Per member: sign 2 (masked input, reveal), check the slot's announcement.
    // Aggregator: signs the announcement, checks 2 N.
    signatures(key, 2 * N + 1, N + 2 * N);
    let mut sum = vec![0u64; inputs[0].len()];
    for (m, x) in members.iter_mut().zip(inputs) {
        let y = m.mask(slot, ring, x).expect("mask");
        ring.add_assign(&mut sum, &y).expect("add");
    }
    let mut unmasker = SlotUnmasker::new(view, slot).expect("slot");
    let mut ledger = TaskLedger::new();
    for (i, m) in members.iter_mut().enumerate() {
        let r = m
            .reveal(slot, [slot as u8; 32], &mut ledger)
            .expect("reveal");
        unmasker.accept(idx(i), r.shares).expect("accept");
    }
    unmasker.finish(ring, &mut sum).expect("unmask");
    black_box(sum);
}
