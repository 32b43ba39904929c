//! An in-process SecAgg+ round: every member's client state machine, the
//! coordinator's relaying and the aggregator's unmasking, over an in-memory
//! transport (the coordinator loop hands each member the messages a daemon
//! would receive). Shared by the `secagg_plus_sim` example (the bench
//! command) and the `plus_sim` integration test (a small n for CI).
//!
//! Every message is encoded and Ed25519-signed by its sender, and every
//! signature its receiver must check is checked: the coordinator checks
//! every message; a member checks its neighbours' advertisements and share
//! messages, the coordinator's survivor list and t survivors' confirmations
//! of it. Members' independent work runs on all cores (std threads).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fedcredit_crypto::identity::{
    IdentityKey, IdentityPublic, SignContext, Signature, verify_batch,
};
use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::ring::Ring;
use fedcredit_crypto::secagg::client::{
    AdvertiseKeys, Confirmation, DealtToMe, SharesOut, SurvivorDigest,
};
use fedcredit_crypto::secagg::plus::{GraphChoice, Neighbourhoods, PlusParams, check_announced};
use fedcredit_crypto::secagg::server::{RoundView, Unmasker};
use fedcredit_crypto::secagg::{
    Advertisement, Dealt, PartyIndex, SessionBinding, Thresholds, session_id,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// n: members.
    pub members: usize,
    /// d: words of each input.
    pub dims: usize,
    /// δ: fraction of members that drop out (half before their masked
    /// input, half after it, before confirming).
    pub dropout: f64,
    /// c: colluders the thresholds and the graph must withstand.
    pub colluders: usize,
    /// `(k, t)` to use instead of [`PlusParams::choose`]'s.
    pub graph: Option<(usize, usize)>,
    /// Seeds the members' keys, inputs and dropouts.
    pub seed: u64,
    /// Worker threads for the members' (and the coordinator's) independent work.
    pub threads: usize,
}

/// What one simulated round did and how long each phase took.
#[derive(Debug)]
pub struct SimReport {
    /// The thresholds and graph the round ran with.
    pub thresholds: Thresholds,
    /// Wall time per phase, in order.
    pub phases: Vec<(&'static str, Duration)>,
    /// |U1|, |U2|, |U3|, |U4| (revealers).
    pub cohorts: [usize; 4],
    /// Whether the unmasked sum equals the plain sum of U3's inputs.
    pub exact: bool,
}

/// The round's thresholds: t = ⌊(n + c)/2⌋ + 1 (the fewest signatures on
/// the survivor list that rule out two lists) and the graph `choose` gives
/// for n, c and δ at 2^-40 privacy and 2^-20 correctness, unless given.
pub fn thresholds(cfg: &SimConfig) -> Result<Thresholds, String> {
    let n = cfg.members;
    let t = Thresholds::new(n, (n + cfg.colluders) / 2 + 1, cfg.colluders, 3)
        .map_err(|e| e.to_string())?;
    let kt = match cfg.graph {
        Some(kt) => Some(kt),
        None => {
            let params = PlusParams {
                members: n,
                max_colluders: cfg.colluders,
                dropout: cfg.dropout,
                security_bits: 40,
                correctness_bits: 20,
                grinding_bits: 0,
            };
            match params.choose().map_err(|e| e.to_string())? {
                GraphChoice::Sparse(b) => Some((b.neighbours, b.threshold)),
                GraphChoice::Complete => None,
            }
        }
    };
    match kt {
        Some((k, st)) => t.with_harary(n, k, st).map_err(|e| e.to_string()),
        None => Ok(t),
    }
}

fn idx(i: usize) -> PartyIndex {
    PartyIndex::new(i as u32 + 1).expect("nonzero")
}

/// Maps `f` over `items` on `threads` scoped threads, keeping the order.
fn par_map<T: Send, U: Send, F: Fn(T) -> U + Sync>(items: Vec<T>, threads: usize, f: F) -> Vec<U> {
    let per = items.len().div_ceil(threads.max(1)).max(1);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter();
    loop {
        let chunk: Vec<T> = it.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move || chunk.into_iter().map(f).collect::<Vec<U>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker panicked"))
            .collect()
    })
}

fn advert_bytes(job: &str, round: u64, p: PartyIndex, ad: &Advertisement) -> Vec<u8> {
    let mut m = b"sim/advert\0".to_vec();
    m.extend_from_slice(job.as_bytes());
    m.extend_from_slice(&round.to_be_bytes());
    m.extend_from_slice(&p.get().to_be_bytes());
    m.extend_from_slice(&ad.share_enc.to_bytes());
    m.extend_from_slice(&ad.mask_agree.to_bytes());
    m
}

fn shares_bytes(session: &SessionId, dealer: PartyIndex, out: &SharesOut) -> Vec<u8> {
    let mut m = b"sim/shares\0".to_vec();
    m.extend_from_slice(session.as_bytes());
    m.extend_from_slice(&dealer.get().to_be_bytes());
    m.extend_from_slice(&out.dealt.self_mask);
    for (p, c) in &out.dealt.shares {
        m.extend_from_slice(&p.get().to_be_bytes());
        m.extend_from_slice(&c.key);
        m.extend_from_slice(&c.self_mask);
    }
    for (p, ct) in &out.ciphertexts {
        m.extend_from_slice(&p.get().to_be_bytes());
        m.extend_from_slice(ct);
    }
    m
}

fn masked_bytes(session: &SessionId, p: PartyIndex, masked: &[u64]) -> Vec<u8> {
    let mut m = b"sim/masked\0".to_vec();
    m.extend_from_slice(session.as_bytes());
    m.extend_from_slice(&p.get().to_be_bytes());
    m.reserve(masked.len() * 8);
    for w in masked {
        m.extend_from_slice(&w.to_le_bytes());
    }
    m
}

fn list_bytes(tag: &[u8], session: &SessionId, p: u32, list: &BTreeSet<PartyIndex>) -> Vec<u8> {
    let mut m = tag.to_vec();
    m.extend_from_slice(session.as_bytes());
    m.extend_from_slice(&p.to_be_bytes());
    for q in list {
        m.extend_from_slice(&q.get().to_be_bytes());
    }
    m
}

/// A confirmation signs the survivor list's digest, as the daemons' does.
fn confirm_bytes(session: &SessionId, p: u32, digest: &SurvivorDigest) -> Vec<u8> {
    let mut m = b"sim/confirm\0".to_vec();
    m.extend_from_slice(session.as_bytes());
    m.extend_from_slice(&p.to_be_bytes());
    m.extend_from_slice(digest.as_bytes());
    m
}

fn reveal_bytes(
    session: &SessionId,
    p: PartyIndex,
    self_mask: &[(PartyIndex, fedcredit_crypto::shamir::Share)],
    key: &[(PartyIndex, fedcredit_crypto::shamir::Share)],
) -> Vec<u8> {
    let mut m = b"sim/reveal\0".to_vec();
    m.extend_from_slice(session.as_bytes());
    m.extend_from_slice(&p.get().to_be_bytes());
    for (tag, shares) in [(1u8, self_mask), (2u8, key)] {
        for (o, s) in shares {
            m.push(tag);
            m.extend_from_slice(&o.get().to_be_bytes());
            m.extend_from_slice(s.to_bytes().as_ref());
        }
    }
    m
}

fn check(
    key: &IdentityPublic,
    context: SignContext,
    msg: &[u8],
    sig: &Signature,
) -> Result<(), String> {
    key.verify(context, msg, sig)
        .map(|_| ())
        .map_err(|e| format!("signature: {e}"))
}

/// Checks signatures relayed together as one batch.
fn check_all(items: &[(&IdentityPublic, &[u8], &Signature)]) -> Result<(), String> {
    verify_batch(SignContext::ParticipantMessage, items)
        .map(|_| ())
        .map_err(|e| format!("relayed signatures: {e}"))
}

/// Runs one round; an error names the first refusal.
pub fn run(cfg: &SimConfig) -> Result<SimReport, String> {
    let n = cfg.members;
    let th = thresholds(cfg)?;
    let ring = Ring::U64;
    let threads = cfg.threads.max(1);
    let (job, round) = ("sim-job", 1u64);
    let binding = SessionBinding {
        job_id: job,
        job_spec_hash: &[1; 32],
        announcement: &[2; 32],
        round,
        attempt: 0,
        thresholds: th,
    };

    // Set-up, not timed: identity keys (the roster), inputs, who drops.
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let coordinator = IdentityKey::generate(&mut rng);
    let members: Vec<(IdentityKey, ChaCha20Rng, Vec<u64>)> = (0..n)
        .map(|i| {
            let mut r = ChaCha20Rng::seed_from_u64(cfg.seed ^ ((i as u64 + 1) << 32));
            let key = IdentityKey::generate(&mut r);
            let input: Vec<u64> = (0..cfg.dims).map(|_| r.r#gen::<u64>() >> 8).collect();
            (key, r, input)
        })
        .collect();
    let roster: Vec<IdentityPublic> = members.iter().map(|m| m.0.public()).collect();
    let drops = ((cfg.dropout * n as f64).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    let before_input: BTreeSet<usize> = order[..drops / 2].iter().copied().collect();
    let after_input: BTreeSet<usize> = order[drops / 2..drops].iter().copied().collect();
    let mut phases = Vec::new();
    let total = Instant::now();

    // Phase 1: fresh keys, signed advertisements; the coordinator checks them.
    let clock = Instant::now();
    let members: Vec<_> = members.into_iter().enumerate().collect();
    let adverts = par_map(members, threads, |(i, (key, mut r, input))| {
        let state = AdvertiseKeys::new(idx(i), th, &mut r);
        let ad = state.advertisement();
        let sig = key.sign(
            SignContext::ParticipantMessage,
            &advert_bytes(job, round, idx(i), &ad),
        );
        (i, key, r, input, state, ad, sig)
    });
    let checked = par_map(
        adverts.iter().collect(),
        threads,
        |(i, _, _, _, _, ad, sig)| {
            check(
                &roster[*i],
                SignContext::ParticipantMessage,
                &advert_bytes(job, round, idx(*i), ad),
                sig,
            )
        },
    );
    checked.into_iter().collect::<Result<Vec<()>, _>>()?;
    let cohort: BTreeMap<PartyIndex, Advertisement> =
        adverts.iter().map(|a| (idx(a.0), a.5)).collect();
    let ad_sigs: BTreeMap<PartyIndex, Signature> =
        adverts.iter().map(|a| (idx(a.0), a.6)).collect();
    // The coordinator announces U1 and each member's neighbours (which the
    // member checks against the graph it derives itself).
    let coord_session = session_id(&binding, &cohort);
    let graph = Neighbourhoods::derive(&th, &coord_session, &cohort).map_err(|e| e.to_string())?;
    phases.push((
        "advertise keys (n signs, coordinator n checks)",
        clock.elapsed(),
    ));

    // Phase 2: each member derives the session and its neighbours, checks
    // its neighbours' advertisements, deals its shares and signs them.
    let clock = Instant::now();
    let dealt = par_map(adverts, threads, |(i, key, mut r, input, state, _, _)| {
        let me = idx(i);
        let session = session_id(&binding, &cohort);
        let mine =
            Neighbourhoods::of_member(&th, &session, &cohort, me).map_err(|e| e.to_string())?;
        let announced: BTreeSet<PartyIndex> = match &graph {
            Neighbourhoods::Complete(u1) => u1.iter().copied().filter(|p| *p != me).collect(),
            Neighbourhoods::Sparse(g) => g[&me].clone(),
        };
        check_announced(me, &mine, &announced).map_err(|e| e.to_string())?;
        // Relayed together, checked as one batch (as a daemon does).
        let msgs: Vec<Vec<u8>> = mine
            .iter()
            .map(|p| advert_bytes(job, round, *p, &cohort[p]))
            .collect();
        let items: Vec<_> = mine
            .iter()
            .zip(&msgs)
            .map(|(p, m)| (&roster[p.get() as usize - 1], m.as_slice(), &ad_sigs[p]))
            .collect();
        check_all(&items)?;
        let (state, out) = state
            .share_keys(session, cohort.clone(), &mut r)
            .map_err(|e| e.to_string())?;
        let msg = shares_bytes(&session, me, &out);
        let sig = key.sign(SignContext::ParticipantMessage, &msg);
        Ok::<_, String>((i, key, input, state, out, msg, sig))
    });
    let dealt: Vec<_> = dealt.into_iter().collect::<Result<_, _>>()?;
    // The coordinator checks every share message and routes the ciphertexts.
    let checked = par_map(dealt.iter().collect(), threads, |d| {
        check(&roster[d.0], SignContext::ParticipantMessage, &d.5, &d.6)
    });
    checked.into_iter().collect::<Result<Vec<()>, _>>()?;
    let mut inbox: BTreeMap<PartyIndex, Vec<DealtToMe>> = BTreeMap::new();
    let mut u2: BTreeMap<PartyIndex, Dealt> = BTreeMap::new();
    let mut signed_shares: BTreeMap<PartyIndex, (Vec<u8>, Signature)> = BTreeMap::new();
    let mut states = Vec::new();
    for (i, key, input, state, out, msg, sig) in dealt {
        let from = idx(i);
        for (to, ct) in out.ciphertexts {
            inbox.entry(to).or_default().push(DealtToMe {
                from,
                ciphertext: ct,
                commitment: out.dealt.shares[&to],
            });
        }
        u2.insert(from, out.dealt);
        signed_shares.insert(from, (msg, sig));
        if !before_input.contains(&i) {
            states.push((i, key, input, state));
        }
    }
    phases.push((
        "share keys (k agreements + k checks per member)",
        clock.elapsed(),
    ));

    // Phase 3: members that stay check their dealers' signatures, decrypt
    // and check their shares, mask and sign; the coordinator checks and sums.
    let clock = Instant::now();
    let work: Vec<_> = states
        .into_iter()
        .map(|(i, key, input, state)| {
            let received = inbox.remove(&idx(i)).unwrap_or_default();
            (i, key, input, state, received)
        })
        .collect();
    let masked = par_map(work, threads, |(i, key, input, state, received)| {
        let me = idx(i);
        let items: Vec<_> = received
            .iter()
            .map(|r| {
                let (msg, sig) = &signed_shares[&r.from];
                (&roster[r.from.get() as usize - 1], msg.as_slice(), sig)
            })
            .collect();
        check_all(&items)?;
        let session = *state.session();
        let (state, masked) = state
            .masked_input(ring, &input, received)
            .map_err(|e| format!("{me}: {e}"))?;
        let msg = masked_bytes(&session, me, &masked);
        let sig = key.sign(SignContext::ParticipantMessage, &msg);
        Ok::<_, String>((i, key, input, state, masked, msg, sig))
    });
    let masked: Vec<_> = masked.into_iter().collect::<Result<_, _>>()?;
    let checked = par_map(masked.iter().collect(), threads, |m| {
        check(&roster[m.0], SignContext::ParticipantMessage, &m.5, &m.6)
    });
    checked.into_iter().collect::<Result<Vec<()>, _>>()?;
    let mut sum = vec![0u64; cfg.dims];
    let mut expected = vec![0u64; cfg.dims];
    let mut u3 = BTreeSet::new();
    let mut sent = Vec::new();
    for (i, key, input, state, masked, _, _) in masked {
        ring.add_assign(&mut sum, &masked)
            .map_err(|e| e.to_string())?;
        ring.add_assign(&mut expected, &input)
            .map_err(|e| e.to_string())?;
        u3.insert(idx(i));
        if !after_input.contains(&i) {
            sent.push((i, key, state));
        }
    }
    phases.push((
        "masked input (k pair masks of d words per member)",
        clock.elapsed(),
    ));

    // Phase 4: the coordinator signs U3; members check it, confirm and sign.
    let clock = Instant::now();
    let u3_msg = list_bytes(b"sim/u3\0", &coord_session, 0, &u3);
    let u3_sig = coordinator.sign(SignContext::CoordinatorMessage, &u3_msg);
    let coordinator_pub = coordinator.public();
    let confirmed = par_map(sent, threads, |(i, key, state)| {
        check(
            &coordinator_pub,
            SignContext::CoordinatorMessage,
            &u3_msg,
            &u3_sig,
        )?;
        let state = state.confirm(u3.clone()).map_err(|e| e.to_string())?;
        let digest = SurvivorDigest::of(state.survivors());
        let msg = confirm_bytes(state.session(), idx(i).get(), &digest);
        let sig = key.sign(SignContext::ParticipantMessage, &msg);
        Ok::<_, String>((i, key, state, sig))
    });
    let confirmed: Vec<_> = confirmed.into_iter().collect::<Result<_, _>>()?;
    let u3_digest = SurvivorDigest::of(&u3);
    let checked = par_map(confirmed.iter().collect(), threads, |c| {
        let msg = confirm_bytes(&coord_session, idx(c.0).get(), &u3_digest);
        check(&roster[c.0], SignContext::ParticipantMessage, &msg, &c.3)
    });
    checked.into_iter().collect::<Result<Vec<()>, _>>()?;
    // Each member is sent t confirmations (the fewest that prove the list).
    let forwarded: Vec<(PartyIndex, Signature)> = confirmed
        .iter()
        .take(th.threshold())
        .map(|c| (idx(c.0), c.3))
        .collect();
    phases.push((
        "consistency check (sign U3, coordinator checks)",
        clock.elapsed(),
    ));

    // Phase 5: members check t confirmations, reveal and sign; the
    // coordinator checks each reveal and feeds it to the aggregator.
    let clock = Instant::now();
    let reveals = par_map(confirmed, threads, |(i, key, state, _)| {
        let session = *state.session();
        let mine = SurvivorDigest::of(state.survivors());
        let msgs: Vec<Vec<u8>> = forwarded
            .iter()
            .map(|(signer, _)| confirm_bytes(&session, signer.get(), &mine))
            .collect();
        let items: Vec<_> = forwarded
            .iter()
            .zip(&msgs)
            .map(|((signer, sig), m)| (&roster[signer.get() as usize - 1], m.as_slice(), sig))
            .collect();
        let checked = verify_batch(SignContext::ParticipantMessage, &items)
            .map_err(|e| format!("confirmations: {e}"))?;
        let confirmations: Vec<Confirmation> = forwarded
            .iter()
            .zip(checked)
            .map(|((signer, _), checked)| Confirmation {
                signer: *signer,
                session,
                survivors: mine,
                checked,
            })
            .collect();
        let reveal = state.unmask(&confirmations).map_err(|e| e.to_string())?;
        let msg = reveal_bytes(
            &session,
            idx(i),
            &reveal.self_mask_shares,
            &reveal.key_shares,
        );
        let sig = key.sign(SignContext::ParticipantMessage, &msg);
        Ok::<_, String>((i, reveal, msg, sig))
    });
    let reveals: Vec<_> = reveals.into_iter().collect::<Result<_, _>>()?;
    phases.push((
        "unmask: members check t confirmations, reveal",
        clock.elapsed(),
    ));
    let clock = Instant::now();
    let checked = par_map(reveals.iter().collect(), threads, |r| {
        check(&roster[r.0], SignContext::ParticipantMessage, &r.2, &r.3)
    });
    checked.into_iter().collect::<Result<Vec<()>, _>>()?;
    let revealers = reveals.len();
    let u2_len = u2.len();
    let mut unmasker = Unmasker::new(RoundView {
        session: coord_session,
        thresholds: th,
        cohort,
        u2,
        u3: u3.clone(),
        ring,
    })
    .map_err(|e| e.to_string())?;
    for (i, r, _, _) in reveals {
        unmasker
            .accept(idx(i), r.self_mask_shares, r.key_shares)
            .map_err(|e| e.to_string())?;
    }
    unmasker.finish(&mut sum).map_err(|e| e.to_string())?;
    phases.push((
        "aggregator: check reveals, rebuild secrets, remove masks",
        clock.elapsed(),
    ));
    phases.push(("total", total.elapsed()));
    Ok(SimReport {
        thresholds: th,
        phases,
        cohorts: [n, u2_len, u3.len(), revealers],
        exact: sum == expected,
    })
}
