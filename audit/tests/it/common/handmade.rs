//! Round logs made by hand, following the coordinator's log contract, with
//! the real client state machines (`fedcredit_crypto::secagg::client`) and
//! real signatures: for what a healthy in-process run does not produce on
//! demand — dropouts in chosen phases, aborts, a crash mid-attempt and the
//! restart after it, members leaving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::ring::Ring;
use fedcredit_crypto::secagg::client::{AdvertiseKeys, Confirmation, DealtToMe, SurvivorDigest};
use fedcredit_crypto::secagg::server::{RoundView, Unmasker};
use fedcredit_crypto::secagg::{self, PartyIndex, Phase, SessionBinding};
use fedcredit_proto::v1::{
    self as pb, CoordinatorMessage, LogBody, Message, coordinator_message, log_body, message::Body,
    round_announcement::Task,
};
use fedcredit_proto::{envelope, shares, words};
use fedcredit_referee::consortium::Consortium;
use rand::rngs::OsRng;

use super::reseal;

/// Members m1..m5; threshold 3, minimum cohort 3 (so two may drop).
pub const N: usize = 5;
pub const DIMENSION: usize = 3;

/// Who does not answer where (0-based member positions), and where the
/// coordinator "crashes".
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub skip_advertise: BTreeSet<usize>,
    pub skip_shares: BTreeSet<usize>,
    pub skip_masked: BTreeSet<usize>,
    pub skip_confirm: BTreeSet<usize>,
    pub skip_unmask: BTreeSet<usize>,
    /// Reveal one self-mask share with a flipped byte (the coordinator
    /// logs the reveal and excludes its sender).
    pub bad_reveal: BTreeSet<usize>,
    /// Stop writing right after this phase's messages, before it closes.
    pub cut_before_close: Option<Phase>,
}

/// How an attempt ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Completed(Vec<f64>),
    Aborted(Phase),
    Cut,
}

pub struct Handmade {
    pub consortium: Consortium,
    pub coordinator: IdentityKey,
    pub keys: Vec<IdentityKey>,
    pub bodies: Vec<LogBody>,
    departed: Vec<(String, pb::ReasonCode)>,
}

pub fn idx(i: usize) -> PartyIndex {
    PartyIndex::new(i as u32 + 1).expect("index")
}

pub fn id(i: usize) -> String {
    format!("m{}", i + 1)
}

fn entry(e: log_body::Entry) -> LogBody {
    LogBody {
        seq: 0,
        prev_hash: Default::default(),
        unix_millis: 0,
        entry: Some(e),
    }
}

impl Handmade {
    /// JobStarted and the first CoordinatorStarted.
    pub fn new() -> Self {
        Self::with_epoch_slots(0)
    }

    /// The same consortium set up once per epoch of `slots` rounds
    /// (`[protocol] setup = "epoch"`), or every attempt for 0.
    pub fn with_epoch_slots(slots: u32) -> Self {
        let coordinator = IdentityKey::from_secret_bytes(&[200; 32]);
        let keys: Vec<IdentityKey> = (0..N)
            .map(|i| IdentityKey::from_secret_bytes(&[100 + i as u8; 32]))
            .collect();
        let mut toml = format!(
            "[coordinator]\nlisten = \"127.0.0.1:1\"\npublic_key = \"{}\"\n\
             [protocol]\nmax_colluders = 0\nthreshold = 3\nmin_cohort = 3\n{}\
             [job]\nid = \"handmade\"\nkind = \"secure-sum\"\ndimension = {DIMENSION}\nfrac_bits = 16\nclip = 1e6\n",
            coordinator.public().to_hex(),
            if slots > 0 {
                format!("setup = \"epoch\"\nslots = {slots}\n")
            } else {
                String::new()
            }
        );
        for (i, k) in keys.iter().enumerate() {
            toml.push_str(&format!(
                "[[participants]]\nid = \"{}\"\npublic_key = \"{}\"\n",
                id(i),
                k.public().to_hex()
            ));
        }
        let consortium = Consortium::parse(Path::new("handmade.toml"), &toml).expect("consortium");
        let c = &consortium;
        let started = pb::JobStarted {
            job_id: c.job.id.clone(),
            job_spec_json: serde_json::to_vec(&c.job).expect("json").into(),
            job_spec_hash: c.job.hash().to_vec().into(),
            roster: c
                .roster
                .members()
                .map(|m| pb::RosterEntry {
                    id: m.id.to_string(),
                    public_key: m.key.to_bytes().to_vec().into(),
                })
                .collect(),
            threshold: 3,
            min_cohort: 3,
            max_colluders: 0,
            neighbours: 0,
            share_threshold: 0,
            epoch_slots: slots,
            coordinator_key: coordinator.public().to_bytes().to_vec().into(),
        };
        let mut h = Self {
            consortium,
            coordinator,
            keys,
            bodies: vec![entry(log_body::Entry::JobStarted(started))],
            departed: Vec::new(),
        };
        h.started(0, 0, 0);
        h
    }

    /// A CoordinatorStarted record.
    pub fn started(&mut self, replayed: u64, round: u64, attempt: u32) {
        self.push(log_body::Entry::CoordinatorStarted(
            pb::CoordinatorStarted {
                replayed_records: replayed,
                resume_round: round,
                resume_attempt: attempt,
            },
        ));
    }

    /// A restart: CoordinatorStarted with every record so far replayed.
    pub fn restart(&mut self, round: u64, attempt: u32) {
        let n = self.bodies.len() as u64;
        self.started(n, round, attempt);
    }

    pub fn push(&mut self, e: log_body::Entry) {
        self.bodies.push(entry(e));
    }

    pub fn participant(&mut self, i: usize, round: u64, attempt: u32, body: Body) -> pb::Signed {
        let m = Message {
            job_id: self.consortium.job.id.clone(),
            round,
            attempt,
            sender: id(i),
            body: Some(body),
        };
        let signed = envelope::seal(&self.keys[i], &m);
        self.push(log_body::Entry::Participant(signed.clone()));
        signed
    }

    /// Member `i` leaves the job, giving `code`.
    pub fn leave(&mut self, i: usize, code: pb::ReasonCode) {
        self.participant(i, 0, 0, Body::Leave(pb::Leave { code: code as i32 }));
        self.departed.push((id(i), code));
    }

    pub fn closed(
        &mut self,
        round: u64,
        attempt: u32,
        phase: Phase,
        cohort: &BTreeSet<usize>,
        expected: &BTreeSet<usize>,
    ) {
        self.push(log_body::Entry::PhaseClosed(pb::PhaseClosed {
            round,
            attempt,
            phase: phase.to_string(),
            cohort: cohort.iter().map(|i| id(*i)).collect(),
            missing: expected.difference(cohort).map(|i| id(*i)).collect(),
        }));
    }

    /// Closes a phase, or aborts the attempt if too few answered. `true` if it closed.
    pub fn close_or_abort(
        &mut self,
        round: u64,
        attempt: u32,
        phase: Phase,
        cohort: &BTreeSet<usize>,
        expected: &BTreeSet<usize>,
    ) -> bool {
        if cohort.len() < 3 {
            self.push(log_body::Entry::RoundAborted(pb::RoundAborted {
                round,
                attempt,
                phase: phase.to_string(),
                reason: format!(
                    "{phase}: only {} parties remain, 3 are needed ({} of {} answered before the deadline)",
                    cohort.len(),
                    cohort.len(),
                    expected.len()
                ),
            }));
            return false;
        }
        self.closed(round, attempt, phase, cohort, expected);
        true
    }

    pub fn input(i: usize) -> Vec<f64> {
        (0..DIMENSION).map(|j| (i * 10 + j) as f64 + 0.5).collect()
    }

    /// Logs the announcement of a secure-sum attempt (naming `epoch` and
    /// `slot` in an epoch job) and returns its digest.
    pub fn announce(&mut self, round: u64, attempt: u32, epoch: &[u8], slot: u32) -> [u8; 32] {
        let c = self.consortium.clone();
        let announce = CoordinatorMessage {
            job_id: c.job.id.clone(),
            round,
            attempt,
            body: Some(coordinator_message::Body::Announce(pb::RoundAnnouncement {
                members: (0..N).map(id).collect(),
                threshold: 3,
                min_cohort: 3,
                max_colluders: 0,
                neighbours: 0,
                share_threshold: 0,
                epoch_slots: c.protocol.epoch_slots_field(),
                epoch: epoch.to_vec().into(),
                slot,
                dimension: DIMENSION as u64,
                fixed_point: Some(pb::FixedPointSpec {
                    frac_bits: 16,
                    clip: 1e6,
                }),
                limbs: 0,
                job_spec_hash: c.job.hash().to_vec().into(),
                departed: self
                    .departed
                    .iter()
                    .map(|(p, code)| pb::Departure {
                        participant: p.clone(),
                        code: *code as i32,
                    })
                    .collect(),
                task: Some(Task::SecureSum(pb::SecureSumTask { index: 0 })),
                previous_outcome_digests: Vec::new(),
            })),
        };
        let signed_announcement = envelope::seal_coordinator(&self.coordinator, &announce);
        let digest = secagg::announcement_digest(&signed_announcement.payload);
        self.push(log_body::Entry::Announcement(signed_announcement));
        digest
    }

    /// Members that have not left, by position.
    pub fn present(&self) -> BTreeSet<usize> {
        (0..N)
            .filter(|i| !self.departed.iter().any(|(d, _)| *d == id(*i)))
            .collect()
    }

    /// Logs a completed secure sum: RoundCompleted with its signed outcome.
    pub fn completed(&mut self, round: u64, attempt: u32, sum: &[u64], u3: &BTreeSet<usize>) {
        let c = self.consortium.clone();
        let contributors: Vec<String> = u3.iter().map(|i| id(*i)).collect();
        let sum_bytes = words::to_bytes(sum);
        let outcome = CoordinatorMessage {
            job_id: c.job.id.clone(),
            round,
            attempt,
            body: Some(coordinator_message::Body::Outcome(pb::RoundOutcome {
                sum: sum_bytes.clone().into(),
                contributors: contributors.clone(),
            })),
        };
        self.push(log_body::Entry::RoundCompleted(pb::RoundCompleted {
            round,
            attempt,
            sum: sum_bytes.into(),
            contributors,
            progress_json: "null".into(),
            outcome: Some(envelope::seal_coordinator(&self.coordinator, &outcome)),
        }));
    }

    /// One round attempt of the secure sum, every member taking part unless `plan` says otherwise.
    pub fn attempt(&mut self, round: u64, attempt: u32, plan: &Plan) -> Ended {
        let c = self.consortium.clone();
        let t = c.protocol.thresholds;
        let fp = FixedPoint::new(16, 1e6).expect("fp");
        let announcement_digest = self.announce(round, attempt, &[], 0);
        let gone: BTreeSet<usize> = (0..N)
            .filter(|i| self.departed.iter().any(|(d, _)| *d == id(*i)))
            .collect();
        let everyone: BTreeSet<usize> = (0..N).filter(|i| !gone.contains(i)).collect();

        // Phase 1.
        let mut clients = BTreeMap::new();
        let mut cohort = BTreeMap::new();
        for &i in &everyone {
            if plan.skip_advertise.contains(&i) {
                continue;
            }
            let client = AdvertiseKeys::new(idx(i), t, &mut OsRng);
            let ad = client.advertisement();
            self.participant(
                i,
                round,
                attempt,
                Body::Advertise(pb::KeyAdvertisement {
                    share_enc_public: ad.share_enc.to_bytes().to_vec().into(),
                    mask_agree_public: ad.mask_agree.to_bytes().to_vec().into(),
                }),
            );
            cohort.insert(idx(i), ad);
            clients.insert(i, client);
        }
        let u1: BTreeSet<usize> = clients.keys().copied().collect();
        if plan.cut_before_close == Some(Phase::AdvertiseKeys) {
            return Ended::Cut;
        }
        if !self.close_or_abort(round, attempt, Phase::AdvertiseKeys, &u1, &everyone) {
            return Ended::Aborted(Phase::AdvertiseKeys);
        }
        let spec_hash = c.job.hash();
        let binding = SessionBinding {
            job_id: &c.job.id,
            job_spec_hash: &spec_hash,
            announcement: &announcement_digest,
            round,
            attempt,
            thresholds: t,
        };
        let session = secagg::session_id(&binding, &cohort);

        // Phase 2.
        let mut states = BTreeMap::new();
        let mut inbox: BTreeMap<PartyIndex, Vec<DealtToMe>> = BTreeMap::new();
        let mut u2_commitments = BTreeMap::new();
        for (i, client) in clients {
            let (state, out) = client
                .share_keys(session, cohort.clone(), &mut OsRng)
                .expect("share keys");
            if plan.skip_shares.contains(&i) {
                continue;
            }
            self.participant(
                i,
                round,
                attempt,
                Body::Shares(shares::to_pb(
                    &c.roster,
                    out.ciphertexts.clone(),
                    &out.dealt,
                )),
            );
            for (to, ct) in out.ciphertexts {
                inbox.entry(to).or_default().push(DealtToMe {
                    from: idx(i),
                    ciphertext: ct,
                    commitment: out.dealt.shares[&to],
                });
            }
            u2_commitments.insert(idx(i), out.dealt);
            states.insert(i, state);
        }
        let u2: BTreeSet<usize> = states.keys().copied().collect();
        if plan.cut_before_close == Some(Phase::ShareKeys) {
            return Ended::Cut;
        }
        if !self.close_or_abort(round, attempt, Phase::ShareKeys, &u2, &u1) {
            return Ended::Aborted(Phase::ShareKeys);
        }

        // Phase 3.
        let mut sent = BTreeMap::new();
        let mut masked_sum = vec![0u64; DIMENSION];
        for (i, state) in states {
            if plan.skip_masked.contains(&i) {
                continue;
            }
            let received: Vec<DealtToMe> = inbox
                .remove(&idx(i))
                .unwrap_or_default()
                .into_iter()
                .filter(|d| u2.contains(&(d.from.get() as usize - 1)))
                .collect();
            let encoded = fp.encode_slice(&Self::input(i)).expect("encode");
            let (state, masked) = state
                .masked_input(Ring::U64, &encoded, received)
                .expect("mask");
            self.participant(
                i,
                round,
                attempt,
                Body::MaskedInput(pb::MaskedInput {
                    values: words::to_bytes(&masked).into(),
                }),
            );
            Ring::U64.add_assign(&mut masked_sum, &masked).expect("add");
            sent.insert(i, state);
        }
        let u3: BTreeSet<usize> = sent.keys().copied().collect();
        if plan.cut_before_close == Some(Phase::MaskedInput) {
            return Ended::Cut;
        }
        if !self.close_or_abort(round, attempt, Phase::MaskedInput, &u3, &u2) {
            return Ended::Aborted(Phase::MaskedInput);
        }
        let u3_idx: BTreeSet<PartyIndex> = u3.iter().map(|i| idx(*i)).collect();

        // Phase 4.
        let mut confirmed = BTreeMap::new();
        let mut confirmations = Vec::new();
        for (i, state) in sent {
            let state = state.confirm(u3_idx.clone()).expect("confirm");
            if plan.skip_confirm.contains(&i) {
                continue;
            }
            let signed = self.participant(
                i,
                round,
                attempt,
                Body::Consistency(pb::SurvivorList {
                    session_id: session.as_bytes().to_vec().into(),
                    survivors_digest: SurvivorDigest::of(&u3_idx).as_bytes().to_vec().into(),
                }),
            );
            let opened = envelope::open(&signed, &c.roster).expect("open");
            confirmations.push(Confirmation {
                signer: idx(i),
                session,
                survivors: SurvivorDigest::of(&u3_idx),
                checked: opened.checked,
            });
            confirmed.insert(i, state);
        }
        let u4: BTreeSet<usize> = confirmed.keys().copied().collect();
        if plan.cut_before_close == Some(Phase::ConsistencyCheck) {
            return Ended::Cut;
        }
        if !self.close_or_abort(round, attempt, Phase::ConsistencyCheck, &u4, &u3) {
            return Ended::Aborted(Phase::ConsistencyCheck);
        }

        // Phase 5.
        let view = RoundView {
            session,
            thresholds: t,
            cohort: cohort.clone(),
            u2: u2_commitments,
            u3: u3_idx.clone(),
            ring: Ring::U64,
        };
        let mut unmasker = Unmasker::new(view).expect("unmasker");
        let mut u5 = BTreeSet::new();
        let mut bad = BTreeSet::new();
        for (i, state) in confirmed {
            let mut reveal = state.unmask(&confirmations).expect("reveal");
            if plan.skip_unmask.contains(&i) {
                continue;
            }
            if plan.bad_reveal.contains(&i) {
                let (owner, share) = reveal.self_mask_shares.remove(0);
                let mut bytes = share.to_bytes();
                bytes[4] = bytes[4].wrapping_add(1);
                let share = fedcredit_crypto::shamir::Share::from_bytes(&*bytes).expect("share");
                reveal.self_mask_shares.insert(0, (owner, share));
            }
            let list = |v: &[(PartyIndex, fedcredit_crypto::shamir::Share)]| {
                v.iter()
                    .map(|(owner, s)| pb::RevealedShare {
                        owner: id(owner.get() as usize - 1),
                        share: s.to_bytes().to_vec().into(),
                    })
                    .collect()
            };
            self.participant(
                i,
                round,
                attempt,
                Body::Unmask(pb::UnmaskShares {
                    self_mask_shares: list(&reveal.self_mask_shares),
                    key_shares: list(&reveal.key_shares),
                }),
            );
            let accepted = unmasker.accept(idx(i), reveal.self_mask_shares, reveal.key_shares);
            if plan.bad_reveal.contains(&i) {
                assert!(accepted.is_err(), "a bad share must be refused");
                bad.insert(i);
            } else {
                accepted.expect("accept");
                u5.insert(i);
            }
        }
        if plan.cut_before_close == Some(Phase::Unmask) {
            return Ended::Cut;
        }
        // Revealers of bad shares are excluded: neither in U5 nor missing.
        let expected: BTreeSet<usize> = u4.difference(&bad).copied().collect();
        if !self.close_or_abort(round, attempt, Phase::Unmask, &u5, &expected) {
            return Ended::Aborted(Phase::Unmask);
        }
        unmasker.finish(&mut masked_sum).expect("unmask");
        self.completed(round, attempt, &masked_sum, &u3);
        Ended::Completed(fp.decode_slice(&masked_sum))
    }

    /// JobEnded.
    pub fn end(&mut self, ok: bool, reason: &str) {
        self.push(log_body::Entry::JobEnded(pb::JobEnded {
            ok,
            reason: reason.into(),
            model_json: String::new(),
            resumable: false,
        }));
    }

    /// The log, sealed.
    pub fn bytes(&self) -> Vec<u8> {
        reseal(&self.bodies, &self.coordinator)
    }
}
