//! The adversary's own computation on what it recorded: everything a
//! coordinator (with its colluders) can work out, done with the real
//! unmasking code (`secagg::server::Unmasker`) and the real Shamir
//! reconstruction, so a test can check whether any honest member's
//! individual vector, or both of its secrets in one attempt, leaked.

use std::collections::{BTreeMap, BTreeSet};

use fedcredit_crypto::kx::{AgreementSecret, KeyPurpose, SessionId, derive_key};
use fedcredit_crypto::mask::{MaskSeed, add_mask, sub_mask};
use fedcredit_crypto::secagg::server::{RoundView, Unmasker};
use fedcredit_crypto::secagg::{self, Advertisement, PartyIndex, SessionBinding};
use fedcredit_crypto::shamir::{Share, reconstruct};
use fedcredit_proto::v1 as pb;

use crate::adversary::{Adversary, AttemptRecord};

/// Something the adversary computed about one member.
#[derive(Clone, Debug)]
pub struct Learned {
    /// How (which attempts, which sets).
    pub how: String,
    /// The member's vector as the adversary computed it.
    pub values: Vec<f64>,
}

fn session(adv: &Adversary, a: &AttemptRecord) -> (SessionId, BTreeMap<PartyIndex, Advertisement>) {
    let cohort: BTreeMap<PartyIndex, Advertisement> = a
        .adverts
        .iter()
        .map(|(id, (_, ad))| (adv.index(id), *ad))
        .collect();
    let c = adv.consortium();
    let spec_hash = c.job.hash();
    let binding = SessionBinding {
        job_id: &c.job.id,
        job_spec_hash: &spec_hash,
        round: a.round,
        attempt: a.attempt,
        thresholds: c.protocol.thresholds,
    };
    (secagg::session_id(&binding, &cohort), cohort)
}

fn shares_of(list: &[pb::RevealedShare], adv: &Adversary) -> Vec<(PartyIndex, Share)> {
    list.iter()
        .filter_map(|s| Some((adv.index(&s.owner), Share::from_bytes(&s.share).ok()?)))
        .collect()
}

/// Σ of the fixed-point inputs of `u3` in attempt `attempt`, unmasked with
/// the real `Unmasker` from the recorded reveals (accepted in revealer-id
/// order; reveals that do not fit `u3` are skipped, as a coordinator
/// would). With `colluders_reveal_any`, each colluder reveals afresh for
/// `u3` (it holds both shares of everyone, so it can).
pub fn unmask_sum(
    adv: &Adversary,
    attempt: usize,
    u3: &[String],
    colluders_reveal_any: bool,
) -> Result<Vec<u64>, String> {
    let a = &adv.attempts[attempt];
    let (session, cohort) = session(adv, a);
    let view = RoundView {
        session,
        thresholds: adv.consortium().protocol.thresholds,
        cohort,
        u2: a
            .shares
            .iter()
            .map(|(id, (c, _))| (adv.index(id), *c))
            .collect(),
        u3: u3.iter().map(|id| adv.index(id)).collect(),
        ring: a.codec().ring(),
    };
    let mut unmasker = Unmasker::new(view).map_err(|e| e.to_string())?;
    let u2: Vec<String> = a.shares.keys().cloned().collect();
    for (revealer, recorded) in &a.reveals {
        let fresh;
        let u = match adv.colluders.iter().find(|c| &c.id == revealer) {
            Some(c) if colluders_reveal_any => {
                fresh = c.reveal(&u2, u3);
                &fresh
            }
            _ => recorded,
        };
        let _ = unmasker.accept(
            adv.index(revealer),
            shares_of(&u.self_mask_shares, adv),
            shares_of(&u.key_shares, adv),
        );
    }
    if colluders_reveal_any {
        for c in adv
            .colluders
            .iter()
            .filter(|c| !a.reveals.contains_key(&c.id))
        {
            let u = c.reveal(&u2, u3);
            let _ = unmasker.accept(
                adv.index(&c.id),
                shares_of(&u.self_mask_shares, adv),
                shares_of(&u.key_shares, adv),
            );
        }
    }
    let words = a.codec().words_for(a.announcement.dimension as usize);
    let mut sum = vec![0u64; words];
    for id in u3 {
        let m = a
            .masked
            .get(id)
            .ok_or_else(|| format!("no masked input from {id}"))?;
        for (s, x) in sum.iter_mut().zip(m) {
            *s = s.wrapping_add(*x);
        }
    }
    unmasker.finish(&mut sum).map_err(|e| e.to_string())?;
    Ok(sum)
}

/// Every share of `owner`'s secrets the adversary holds in attempt `i`
/// (revealed by anyone, or dealt to a colluder): (self-mask, key), one per x.
fn collected_shares(adv: &Adversary, i: usize, owner: &str) -> (Vec<Share>, Vec<Share>) {
    let a = &adv.attempts[i];
    let (mut seeds, mut keys): (BTreeMap<u32, Vec<u8>>, BTreeMap<u32, Vec<u8>>) =
        (BTreeMap::new(), BTreeMap::new());
    let x_of = |b: &[u8]| {
        b.get(..4)
            .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    };
    for u in a.reveals.values() {
        for s in u.self_mask_shares.iter().filter(|s| s.owner == owner) {
            if let Some(x) = x_of(&s.share) {
                seeds.entry(x).or_insert_with(|| s.share.to_vec());
            }
        }
        for s in u.key_shares.iter().filter(|s| s.owner == owner) {
            if let Some(x) = x_of(&s.share) {
                keys.entry(x).or_insert_with(|| s.share.to_vec());
            }
        }
    }
    for c in &adv.colluders {
        if let Some(pair) = c.held.get(&(a.round, a.attempt)).and_then(|h| h.get(owner)) {
            if let Some(x) = x_of(&pair.self_mask) {
                seeds.insert(x, pair.self_mask.clone());
            }
            if let Some(x) = x_of(&pair.key) {
                keys.insert(x, pair.key.clone());
            }
        }
    }
    let parse = |m: BTreeMap<u32, Vec<u8>>| -> Vec<Share> {
        m.values()
            .filter_map(|b| Share::from_bytes(b).ok())
            .collect()
    };
    (parse(seeds), parse(keys))
}

/// `owner`'s vector in attempt `i`, if the adversary can reconstruct both
/// its self-mask seed and its mask-agreement key there (and has its masked
/// input): masked − self mask − every pairwise mask.
pub fn unmask_individual(adv: &Adversary, i: usize, owner: &str) -> Option<Vec<f64>> {
    let a = &adv.attempts[i];
    let masked = a.masked.get(owner)?;
    let t = adv.consortium().protocol.thresholds.threshold;
    let (seed_shares, key_shares) = collected_shares(adv, i, owner);
    let seed = MaskSeed::from_bytes(*reconstruct(&seed_shares, t).ok()?);
    let key = AgreementSecret::from_bytes(&*reconstruct(&key_shares, t).ok()?);
    let (session, cohort) = session(adv, a);
    let me = adv.index(owner);
    let (commitment, _) = a.shares.get(owner)?;
    if secagg::self_mask_commitment(&session, me, &seed) != *commitment
        || key.public() != cohort.get(&me)?.mask_agree
    {
        return None;
    }
    let mut x = masked.clone();
    sub_mask(&mut x, &seed);
    // The peers `owner` masked against: those whose shares were relayed to it.
    for (peer_id, (_, cts)) in &a.shares {
        if peer_id == owner || !cts.iter().any(|c| c.peer == owner) {
            continue;
        }
        let peer = adv.index(peer_id);
        let shared = key.agree(&cohort.get(&peer)?.mask_agree).ok()?;
        let (lo, hi) = if me < peer { (me, peer) } else { (peer, me) };
        let pair = MaskSeed::from(derive_key(
            &shared,
            KeyPurpose::PairwiseMask,
            &session,
            lo.get(),
            hi.get(),
        ));
        if peer > me {
            sub_mask(&mut x, &pair);
        } else {
            add_mask(&mut x, &pair);
        }
    }
    a.codec().decode(&x).ok()
}

/// Whether two attempts aggregate the same thing (task, size and codec),
/// so that their sums can be subtracted.
fn same_aggregate(a: &AttemptRecord, b: &AttemptRecord) -> bool {
    let (x, y) = (&a.announcement, &b.announcement);
    x.task == y.task
        && x.dimension == y.dimension
        && x.fixed_point == y.fixed_point
        && x.limbs == y.limbs
}

/// Every sum the adversary can unmask: (attempt, contributor set, words).
pub fn computable_sums(adv: &Adversary) -> Vec<(usize, BTreeSet<String>, Vec<u64>)> {
    let mut out = Vec::new();
    for (i, a) in adv.attempts.iter().enumerate() {
        let mut lists: BTreeSet<Vec<String>> = a.shown.values().cloned().collect();
        lists.insert(a.masked.keys().cloned().collect());
        for list in lists {
            if list.is_empty() {
                continue;
            }
            if let Ok(sum) = unmask_sum(adv, i, &list, true) {
                out.push((i, list.into_iter().collect(), sum));
            }
        }
    }
    out
}

/// Everything the adversary can compute about `owner`'s individual vector:
/// from both of its secrets in one attempt, from a sum whose only honest
/// contributor it is, or from two sums of the same aggregate whose honest
/// contributors differ by `owner` alone (colluders' inputs are known and
/// subtracted).
pub fn learnable(adv: &Adversary, owner: &str) -> Vec<Learned> {
    let mut found = Vec::new();
    for i in 0..adv.attempts.len() {
        if let Some(values) = unmask_individual(adv, i, owner) {
            let a = &adv.attempts[i];
            found.push(Learned {
                how: format!(
                    "both secrets of {owner} reconstructed in round {} attempt {}",
                    a.round, a.attempt
                ),
                values,
            });
        }
    }
    let colluders: BTreeSet<String> = adv.colluders.iter().map(|c| c.id.clone()).collect();
    let n = adv.consortium().roster.len();
    let sums = computable_sums(adv);
    let known = |i: usize, set: &BTreeSet<String>| -> Option<Vec<u64>> {
        let a = &adv.attempts[i];
        let dim = a.announcement.dimension as usize;
        let mut words = vec![0u64; a.codec().words_for(dim)];
        for c in adv.colluders.iter().filter(|c| set.contains(&c.id)) {
            let e = a.codec().encode(&c.input(dim), n).ok()?;
            for (w, x) in words.iter_mut().zip(e) {
                *w = w.wrapping_add(x);
            }
        }
        Some(words)
    };
    let only = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.difference(&colluders).cloned().collect()
    };
    for (i, set, sum) in &sums {
        if only(set) == BTreeSet::from([owner.to_owned()]) {
            let k = known(*i, set).unwrap_or_default();
            let words: Vec<u64> = sum
                .iter()
                .zip(&k)
                .map(|(s, c)| s.wrapping_sub(*c))
                .collect();
            if let Ok(values) = adv.attempts[*i].codec().decode(&words) {
                let a = &adv.attempts[*i];
                found.push(Learned {
                    how: format!(
                        "a sum over {set:?} in round {} attempt {}",
                        a.round, a.attempt
                    ),
                    values,
                });
            }
        }
        for (j, small, other) in &sums {
            if !same_aggregate(&adv.attempts[*i], &adv.attempts[*j]) || !small.is_subset(set) {
                continue;
            }
            let extra: BTreeSet<String> = set.difference(small).cloned().collect();
            if only(&extra) != BTreeSet::from([owner.to_owned()]) {
                continue;
            }
            let k = known(*i, &extra).unwrap_or_default();
            let words: Vec<u64> = sum
                .iter()
                .zip(other)
                .zip(&k)
                .map(|((s, o), c)| s.wrapping_sub(*o).wrapping_sub(*c))
                .collect();
            if let Ok(values) = adv.attempts[*i].codec().decode(&words) {
                let (a, b) = (&adv.attempts[*i], &adv.attempts[*j]);
                found.push(Learned {
                    how: format!(
                        "S − S': round {} attempt {} over {set:?} minus round {} attempt {} over {small:?}",
                        a.round, a.attempt, b.round, b.attempt
                    ),
                    values,
                });
            }
        }
    }
    found
}

/// Panics, naming what leaked, if the adversary can compute the vector of
/// any honest member in `inputs` (id -> its true input). The message says
/// whether the computed vector equals the true input: the evidence that an
/// attack really worked.
pub fn assert_private(adv: &Adversary, inputs: &BTreeMap<String, Vec<f64>>) {
    let mut leaks = Vec::new();
    for (id, input) in inputs {
        for l in learnable(adv, id) {
            let equal = l.values.len() == input.len()
                && l.values
                    .iter()
                    .zip(input)
                    .all(|(a, b)| (a - b).abs() <= 1e-3 * (1.0 + b.abs()));
            leaks.push(format!(
                "{id}: {} -> {:?} (equals its true input {input:?}: {equal})",
                l.how, l.values
            ));
        }
    }
    assert!(
        leaks.is_empty(),
        "the adversary can compute honest members' vectors:\n{}\nwhat it recorded:\n{}",
        leaks.join("\n"),
        adv.summary()
    );
}
