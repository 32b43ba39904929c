//! The adversary's own computation on what it recorded: everything a
//! coordinator (with its colluders) can work out, done with the real
//! unmasking code (`secagg::server::Unmasker`) and the real Shamir
//! reconstruction, so a test can check whether any honest member's
//! individual vector, or both of its secrets in one attempt, leaked.

use std::collections::{BTreeMap, BTreeSet};

use fedcredit_crypto::kx::{AgreementSecret, KeyPurpose, SessionId, derive_key};
use fedcredit_crypto::mask::MaskSeed;
use fedcredit_crypto::secagg::server::{RoundView, Unmasker};
use fedcredit_crypto::secagg::{self, Advertisement, PartyIndex, SecAggError, SessionBinding};
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

/// The session id of attempt `a` for members shown `announcement` (the
/// signed announcement's digest is bound into it), and U1.
pub fn session(
    adv: &Adversary,
    a: &AttemptRecord,
    announcement: &pb::Signed,
) -> (SessionId, BTreeMap<PartyIndex, Advertisement>) {
    let cohort: BTreeMap<PartyIndex, Advertisement> = a
        .adverts
        .iter()
        .map(|(id, (_, ad))| (adv.index(id), *ad))
        .collect();
    let c = adv.consortium();
    let spec_hash = c.job.hash();
    let digest = secagg::announcement_digest(&announcement.payload);
    let binding = SessionBinding {
        job_id: &c.job.id,
        job_spec_hash: &spec_hash,
        announcement: &digest,
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
/// would), in the session of the attempt's first announcement. With
/// `colluders_reveal_any`, each colluder reveals afresh for `u3` (it holds
/// both shares of everyone, so it can).
pub fn unmask_sum(
    adv: &Adversary,
    attempt: usize,
    u3: &[String],
    colluders_reveal_any: bool,
) -> Result<Vec<u64>, String> {
    let announcement = &adv.attempts[attempt].signed_announcement;
    unmask_attributed(adv, attempt, announcement, u3, colluders_reveal_any).map(|(sum, _)| sum)
}

/// The U2 the members of `u3` masked against: each honest member's own
/// dealing and the dealers relayed to it (the same set for all of them
/// unless the adversary relayed selectively; then their common part). A
/// colluder is relayed every dealer.
pub fn u2_of(a: &AttemptRecord, u3: &[String]) -> BTreeSet<String> {
    let mut u2: BTreeSet<String> = a.shares.keys().cloned().collect();
    for id in u3 {
        if let Some(relayed) = a.relayed.get(id) {
            u2.retain(|d| d == id || relayed.contains(d));
        }
    }
    u2
}

/// [`unmask_sum`] in the session of members shown `announcement`, done as
/// the coordinator's Unmasking phase does it: every reveal goes through
/// `Unmasker::accept`, and one holding a share that fails its dealer's
/// commitment is refused and its revealer excluded. Returns the sum and the
/// refused reveals (revealer id -> the error naming it); a failure names
/// them too.
#[allow(clippy::type_complexity)]
pub fn unmask_attributed(
    adv: &Adversary,
    attempt: usize,
    announcement: &pb::Signed,
    u3: &[String],
    colluders_reveal_any: bool,
) -> Result<(Vec<u64>, BTreeMap<String, String>), String> {
    let a = &adv.attempts[attempt];
    let (session, cohort) = session(adv, a, announcement);
    let u2 = u2_of(a, u3);
    let view = RoundView {
        session,
        thresholds: adv.consortium().protocol.thresholds,
        cohort,
        u2: a
            .shares
            .iter()
            .filter(|(id, _)| u2.contains(*id))
            .map(|(id, d)| (adv.index(id), d.dealt.clone()))
            .collect(),
        u3: u3.iter().map(|id| adv.index(id)).collect(),
        ring: a.codec().ring(),
    };
    let mut unmasker = Unmasker::new(view).map_err(|e| e.to_string())?;
    let u2: Vec<String> = u2.into_iter().collect();
    let mut reveals: Vec<(String, pb::UnmaskShares)> = Vec::new();
    for (revealer, recorded) in &a.reveals {
        let u = match adv.colluders.iter().find(|c| &c.id == revealer) {
            Some(c) if colluders_reveal_any => c.reveal(&u2, u3),
            _ => recorded.clone(),
        };
        reveals.push((revealer.clone(), u));
    }
    if colluders_reveal_any {
        for c in adv
            .colluders
            .iter()
            .filter(|c| !a.reveals.contains_key(&c.id))
        {
            reveals.push((c.id.clone(), c.reveal(&u2, u3)));
        }
    }
    let mut refused = BTreeMap::new();
    for (revealer, u) in reveals {
        if let Err(e @ SecAggError::BadRevealedShare { .. }) = unmasker.accept(
            adv.index(&revealer),
            shares_of(&u.self_mask_shares, adv),
            shares_of(&u.key_shares, adv),
        ) {
            refused.insert(revealer, e.to_string());
        }
    }
    let ring = a.codec().ring();
    let words = a.codec().words_for(a.announcement.dimension as usize);
    let mut sum = vec![0u64; words];
    for id in u3 {
        let m = a
            .masked
            .get(id)
            .ok_or_else(|| format!("no masked input from {id}"))?;
        ring.add_assign(&mut sum, m).map_err(|e| e.to_string())?;
    }
    unmasker.finish(&mut sum).map_err(|e| {
        let who: Vec<&String> = refused.keys().collect();
        format!("{e} (reveals refused for bad shares: {who:?})")
    })?;
    Ok((sum, refused))
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
    let t = adv.consortium().protocol.thresholds.threshold();
    let (seed_shares, key_shares) = collected_shares(adv, i, owner);
    let seed = MaskSeed::from_bytes(*reconstruct(&seed_shares, t).ok()?);
    let key = AgreementSecret::from_bytes(&*reconstruct(&key_shares, t).ok()?);
    // The session `owner` masked in: that of the announcement it was sent.
    let (session, cohort) = session(adv, a, a.announcement_of(owner));
    let me = adv.index(owner);
    let commitment = a.shares.get(owner)?.dealt.self_mask;
    if secagg::self_mask_commitment(&session, me, &seed) != commitment
        || key.public() != cohort.get(&me)?.mask_agree
    {
        return None;
    }
    let ring = a.codec().ring();
    let mut x = masked.clone();
    ring.sub_mask(&mut x, &seed).ok()?;
    // The peers `owner` masked against: those whose shares were relayed to it.
    let relayed = a.relayed.get(owner)?;
    for peer_id in relayed {
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
            ring.sub_mask(&mut x, &pair).ok()?;
        } else {
            ring.add_mask(&mut x, &pair).ok()?;
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
            // In the session of any announcement the attempt was sent with.
            for announcement in a.announcements() {
                if let Ok((sum, _)) = unmask_attributed(adv, i, announcement, &list, true) {
                    out.push((i, list.iter().cloned().collect(), sum));
                    break;
                }
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
            a.codec().ring().add_assign(&mut words, &e).ok()?;
        }
        Some(words)
    };
    let only = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.difference(&colluders).cloned().collect()
    };
    for (i, set, sum) in &sums {
        if only(set) == BTreeSet::from([owner.to_owned()]) {
            let ring = adv.attempts[*i].codec().ring();
            let mut words = sum.clone();
            if let Some(k) = known(*i, set) {
                let _ = ring.sub_assign(&mut words, &k);
            }
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
            let ring = adv.attempts[*i].codec().ring();
            let mut words = sum.clone();
            if ring.sub_assign(&mut words, other).is_err() {
                continue;
            }
            if let Some(k) = known(*i, &extra) {
                let _ = ring.sub_assign(&mut words, &k);
            }
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
