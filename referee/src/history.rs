//! [`Referee`]: the job replayed from the coordinator-signed outcomes of its
//! rounds, and the check of the next announcement against it.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::consortium::Consortium;
use fedcredit_crypto::secagg::{PartyIndex, outcome_digest};
use fedcredit_proto::codec::Codec;
use fedcredit_proto::envelope::{self, CheckedCoordinator};
use fedcredit_proto::v1::{self as pb, coordinator_message, round_announcement::Task};
use fedcredit_proto::words;

use crate::plan::{JobRules, RoundPlan, TaskDigest, task_digest};
use crate::{RefereeError, cohort};
use fedcredit_model::job::ModelTask;
use fedcredit_model::privacy::TaskNoise;

/// A published round, as every party replays it.
#[derive(Debug, Clone)]
pub struct Published {
    /// The round.
    pub round: u64,
    /// The attempt that completed it.
    pub attempt: u32,
    /// The task it computed.
    pub digest: TaskDigest,
    /// The published sum, decoded.
    pub sum: Vec<f64>,
    /// Whose inputs are in it.
    pub contributors: BTreeSet<PartyIndex>,
    /// What the job made of it (JSON; `null` for a secure sum).
    pub progress: String,
}

/// The job as the published results make it: the rules after absorbing every
/// published sum, and the history of those rounds.
#[derive(Debug, Clone)]
pub struct Referee<'c> {
    consortium: &'c Consortium,
    state: Replayed,
}

/// What a [`Referee`] made of the outcomes it replayed, without the borrow of
/// its consortium: a party keeps it between announcements and gives it to
/// [`Referee::resume`] (or [`Referee::replay_after`]), so that the outcomes
/// it already checked are neither fetched nor checked again; replaying them
/// all made a member's work per round grow with the number of rounds
/// before it.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The job and coordinator it was replayed for: it is only resumed for
    /// the same.
    spec_hash: [u8; 32],
    coordinator: [u8; 32],
    rules: JobRules,
    /// Shared, so that keeping a copy between announcements costs no copy
    /// of the sums (a series at d = 10,000,000 holds 80 MB per sum).
    history: Vec<Arc<Published>>,
    /// The contributors of each published round (for the cohort policy).
    sets: Vec<BTreeSet<PartyIndex>>,
    /// Each signed outcome absorbed (signature checked), as the SHA-256 of
    /// its payload and its signature: enough to know it again, without
    /// keeping the payload (and the announcement it came in) alive.
    absorbed: Vec<([u8; 32], Vec<u8>)>,
}

/// Whether `signed` is the outcome `known` was taken of: the signature is
/// compared first, so a different one costs no hashing.
fn known_as(known: &([u8; 32], Vec<u8>), signed: &pb::Signed) -> bool {
    known.1 == signed.signature[..] && known.0 == outcome_digest(&signed.payload)
}

impl Replayed {
    /// The published rounds replayed, in order.
    pub fn history(&self) -> &[Arc<Published>] {
        &self.history
    }
}

fn abridged(s: &str) -> String {
    const MAX: usize = 96;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

fn describe_task(task: &Task) -> String {
    match task {
        Task::SecureSum(sum) if sum.index == 0 => "secure-sum".into(),
        Task::SecureSum(sum) => format!("secure-sum {} of a series", sum.index + 1),
        Task::ModelTask(bytes) => abridged(&String::from_utf8_lossy(bytes)),
    }
}

fn describe_noise(n: Option<&TaskNoise>) -> String {
    match n {
        None => "none (an exact sum)".into(),
        Some(n) => format!(
            "σ² {} per member (grid 2^-{}, {} honest members), ρ {:.3e}",
            n.sigma2_member, n.grid_bits, n.honest, n.rho
        ),
    }
}

impl<'c> Referee<'c> {
    /// The job before any round.
    pub fn new(consortium: &'c Consortium) -> Result<Self, RefereeError> {
        Ok(Self {
            consortium,
            state: Replayed {
                spec_hash: consortium.job.hash(),
                coordinator: consortium.roster.coordinator().to_bytes(),
                rules: JobRules::new(&consortium.job, crate::plan::noise_cohort(consortium))?,
                history: Vec::new(),
                sets: Vec::new(),
                absorbed: Vec::new(),
            },
        })
    }

    /// Replays the job from the coordinator-signed outcomes of its rounds
    /// 0, 1, … in order, checking each against the rules.
    pub fn replay(
        consortium: &'c Consortium,
        outcomes: &[pb::Signed],
    ) -> Result<Self, RefereeError> {
        Self::replay_after(consortium, outcomes, None)
    }

    /// Replays as [`Referee::replay`] does, resuming from `earlier` (what a
    /// referee of the same job and coordinator made of an earlier list) when
    /// its outcomes begin `outcomes` (each with the same signature and a
    /// payload of the same SHA-256): only the outcomes after them are
    /// checked and absorbed. Otherwise it replays from the start.
    pub fn replay_after(
        consortium: &'c Consortium,
        outcomes: &[pb::Signed],
        earlier: Option<&Replayed>,
    ) -> Result<Self, RefereeError> {
        let resumable = earlier.filter(|e| {
            e.spec_hash == consortium.job.hash()
                && e.coordinator == consortium.roster.coordinator().to_bytes()
                && e.absorbed.len() <= outcomes.len()
                && e.absorbed.iter().zip(outcomes).all(|(a, o)| known_as(a, o))
        });
        let mut referee = match resumable {
            Some(e) => Self {
                consortium,
                state: e.clone(),
            },
            None => Self::new(consortium)?,
        };
        for signed in &outcomes[referee.state.absorbed.len()..] {
            referee.absorb_signed(signed)?;
        }
        Ok(referee)
    }

    /// Resumes from `earlier` when the outcomes it absorbed are the first of
    /// `digests` (an announcement's `previous_outcome_digests`: each the
    /// SHA-256 of a signed outcome's payload), else starts before round 0.
    /// The outcomes after [`Referee::absorbed`] are the caller's to fetch,
    /// check against their digests and [`Referee::absorb_signed`].
    pub fn resume(
        consortium: &'c Consortium,
        earlier: Option<&Replayed>,
        digests: &[impl AsRef<[u8]>],
    ) -> Result<Self, RefereeError> {
        let resumable = earlier.filter(|e| {
            e.spec_hash == consortium.job.hash()
                && e.coordinator == consortium.roster.coordinator().to_bytes()
                && e.absorbed.len() <= digests.len()
                && e.absorbed
                    .iter()
                    .zip(digests)
                    .all(|(a, d)| a.0[..] == *d.as_ref())
        });
        match resumable {
            Some(e) => Ok(Self {
                consortium,
                state: e.clone(),
            }),
            None => Self::new(consortium),
        }
    }

    /// How many published outcomes this referee has absorbed.
    pub fn absorbed(&self) -> usize {
        self.state.absorbed.len()
    }

    /// What this referee made of the outcomes, to resume from later.
    pub fn replayed(&self) -> &Replayed {
        &self.state
    }

    /// The published rounds so far.
    pub fn history(&self) -> &[Arc<Published>] {
        &self.state.history
    }

    /// The job's rules after the published rounds.
    pub fn rules(&self) -> &JobRules {
        &self.state.rules
    }

    /// The next round's plan, or `None` once the job is done.
    pub fn next_plan(&self) -> Option<RoundPlan> {
        self.state.rules.next_plan()
    }

    /// The digest of a plan of this job.
    pub fn digest(&self, plan: &RoundPlan) -> TaskDigest {
        task_digest(&self.consortium.job, plan)
    }

    /// Members allowed to contribute to the next round under the job's
    /// cohort policy; `None` means any member.
    pub fn allowed(&self) -> Option<BTreeSet<PartyIndex>> {
        cohort::allowed(
            &self.consortium.job,
            &self.consortium.roster,
            &self.state.sets,
        )
    }

    /// Whose rows are in the published rounds, given the reason codes of
    /// the members' signed departures.
    pub fn membership(
        &self,
        departures: &std::collections::BTreeMap<PartyIndex, i32>,
    ) -> crate::Membership {
        crate::Membership::new(&self.consortium.roster, &self.state.sets, departures)
    }

    /// The exact contributor set the next round must have, if the job fixes
    /// one (see [`cohort::exact`]).
    pub fn exact(&self) -> Option<BTreeSet<PartyIndex>> {
        cohort::exact(
            &self.consortium.job,
            &self.consortium.roster,
            &self.state.sets,
        )
    }

    /// Checks that `contributors` may contribute to the next round.
    pub fn check_contributors(
        &self,
        contributors: &BTreeSet<PartyIndex>,
    ) -> Result<(), RefereeError> {
        cohort::check(
            &self.consortium.job,
            &self.state.sets,
            contributors,
            &self.consortium.roster,
        )
    }

    /// Verifies one coordinator-signed outcome as the next published round
    /// and absorbs its sum. On error nothing changes.
    pub fn absorb_signed(&mut self, signed: &pb::Signed) -> Result<&Published, RefereeError> {
        let round = self.state.history.len() as u64;
        let checked =
            envelope::check_coordinator(signed.clone(), self.consortium.roster.coordinator())
                .map_err(|e| RefereeError::BadOutcome {
                    round,
                    problem: e.to_string(),
                })?;
        self.absorb(&checked)
    }

    /// [`Referee::absorb_signed`] for an outcome whose signature was already
    /// checked (a participant checks each outcome when it arrives): the
    /// message is not verified, decoded or hashed again. It must have been
    /// checked under this consortium's coordinator key.
    pub fn absorb(&mut self, checked: &CheckedCoordinator) -> Result<&Published, RefereeError> {
        let round = self.state.history.len() as u64;
        let bad = |problem: String| RefereeError::BadOutcome { round, problem };
        if checked.signer() != self.consortium.roster.coordinator() {
            return Err(bad(
                "it was checked under another key than the coordinator's".into(),
            ));
        }
        let message = checked.message();
        if message.job_id != self.consortium.job.id {
            return Err(bad(format!("it is for job {:?}", message.job_id)));
        }
        if message.round != round {
            return Err(bad(format!(
                "it is numbered round {}; outcomes must come in round order",
                message.round
            )));
        }
        let Some(coordinator_message::Body::Outcome(outcome)) = &message.body else {
            return Err(bad("it is not a round outcome".into()));
        };
        let plan = self
            .state
            .rules
            .next_plan()
            .ok_or_else(|| bad("the job was already finished".into()))?;
        let sum_words =
            words::from_bytes("published sum", &outcome.sum).map_err(|e| bad(e.to_string()))?;
        let expected = plan.codec.words_for(plan.dimension);
        if sum_words.len() != expected {
            return Err(bad(format!(
                "the sum has {} words, the round's task has {expected}",
                sum_words.len()
            )));
        }
        let contributors = self
            .consortium
            .roster
            .indices("contributors", &outcome.contributors)
            .map_err(|e| bad(e.to_string()))?;
        let t = self.consortium.protocol.thresholds;
        let need = t.need();
        if contributors.len() < need {
            return Err(bad(format!(
                "{} contributors; a published sum needs at least {need}",
                contributors.len()
            )));
        }
        self.check_contributors(&contributors)?;
        let sum = plan
            .codec
            .decode(&sum_words)
            .map_err(|e| bad(e.to_string()))?;
        let mut rules = self.state.rules.clone();
        let progress = rules.absorb(&sum).map_err(|e| match e {
            RefereeError::Absorb { message, .. } => RefereeError::Absorb { round, message },
            other => other,
        })?;
        self.state.rules = rules;
        self.state.sets.push(contributors.clone());
        self.state
            .absorbed
            .push((checked.digest(), checked.signed().signature.to_vec()));
        self.state.history.push(Arc::new(Published {
            round,
            attempt: message.attempt,
            digest: task_digest(&self.consortium.job, &plan),
            sum,
            contributors,
            progress,
        }));
        Ok(&self.state.history[self.state.history.len() - 1])
    }

    /// Checks an announcement of (`round`, any attempt) against the job spec,
    /// the consortium file and the published results, and returns the plan
    /// it must carry. Nothing in the announcement is computed on before this
    /// passes, so a crafted task costs a participant nothing.
    pub fn check_announcement(
        &self,
        round: u64,
        a: &pb::RoundAnnouncement,
    ) -> Result<RoundPlan, RefereeError> {
        let published = self.state.history.len() as u64;
        if round != published {
            return Err(RefereeError::WrongRound {
                got: round,
                published,
            });
        }
        let plan = self
            .state
            .rules
            .next_plan()
            .ok_or(RefereeError::JobFinished {
                got: round,
                published,
            })?;
        let mismatch =
            |field: &'static str, announced: String, expected: String| RefereeError::Mismatch {
                round,
                field,
                announced,
                expected,
            };
        // The history the announcement lists is the one replayed here.
        let listed = &a.previous_outcome_digests;
        if let Some(at) = (0..listed.len().max(self.state.absorbed.len())).find(|&i| {
            listed.get(i).map(|d| &d[..]) != self.state.absorbed.get(i).map(|k| &k.0[..])
        }) {
            return Err(mismatch(
                "previous outcomes",
                format!("{} outcome digests, differing at round {at}", listed.len()),
                format!("the {published} outcomes replayed"),
            ));
        }
        let c = self.consortium;
        let t = c.protocol.thresholds;
        if a.threshold as usize != t.threshold()
            || a.min_cohort as usize != t.min_cohort()
            || a.max_colluders as usize != t.max_colluders()
        {
            return Err(mismatch(
                "threshold / minimum cohort / colluder bound",
                format!("{} / {} / {}", a.threshold, a.min_cohort, a.max_colluders),
                format!(
                    "{} / {} / {}",
                    t.threshold(),
                    t.min_cohort(),
                    t.max_colluders()
                ),
            ));
        }
        // The graph too: every member derives it from its own consortium
        // file, and one announced otherwise is refused here rather than
        // left to fail later as a session id that does not match.
        let graph = c.protocol.graph_fields();
        if (a.neighbours, a.share_threshold) != graph {
            return Err(mismatch(
                "graph (neighbours / share threshold, 0 / 0: complete)",
                format!("{} / {}", a.neighbours, a.share_threshold),
                format!("{} / {}", graph.0, graph.1),
            ));
        }
        let slots = c.protocol.epoch_slots_field();
        if a.epoch_slots != slots {
            return Err(mismatch(
                "setup (slots per epoch, 0: every attempt)",
                a.epoch_slots.to_string(),
                slots.to_string(),
            ));
        }
        if a.job_spec_hash.as_ref() != c.job.hash() {
            return Err(mismatch(
                "job spec hash",
                hex::encode(&a.job_spec_hash),
                hex::encode(c.job.hash()),
            ));
        }
        let members: Vec<&str> = a.members.iter().map(String::as_str).collect();
        let roster: Vec<&str> = c.roster.members().map(|m| m.id.as_str()).collect();
        if members != roster {
            return Err(mismatch(
                "members",
                abridged(&members.join(", ")),
                abridged(&roster.join(", ")),
            ));
        }
        let codec = a
            .fixed_point
            .as_ref()
            .ok_or_else(|| mismatch("codec", "none".into(), format!("{:?}", plan.codec)))
            .and_then(|spec| {
                Codec::from_pb(spec, a.limbs).map_err(|e| {
                    mismatch(
                        "codec",
                        format!("invalid ({e})"),
                        format!("{:?}", plan.codec),
                    )
                })
            })?;
        if codec != plan.codec {
            return Err(mismatch(
                "codec",
                format!("{codec:?}"),
                format!("{:?}", plan.codec),
            ));
        }
        if a.dimension != plan.dimension as u64 {
            return Err(mismatch(
                "dimension",
                a.dimension.to_string(),
                plan.dimension.to_string(),
            ));
        }
        let task = a
            .task
            .as_ref()
            .ok_or_else(|| mismatch("task", "none".into(), describe_task(&plan.task)))?;
        if *task != plan.task {
            // Name a weaker noise or clipping as such, not as "a different task".
            if let (Task::ModelTask(a), Task::ModelTask(b)) = (task, &plan.task)
                && let (Ok(a), Ok(b)) = (ModelTask::from_bytes(a), ModelTask::from_bytes(b))
                && a.noise() != b.noise()
            {
                let clip = |n: Option<&TaskNoise>| n.map(|n| n.clip.clone());
                if a.noise().is_some() && clip(a.noise()) != clip(b.noise()) {
                    return Err(mismatch(
                        "clipping",
                        abridged(&serde_json::to_string(&clip(a.noise())).unwrap_or_default()),
                        abridged(&serde_json::to_string(&clip(b.noise())).unwrap_or_default()),
                    ));
                }
                return Err(mismatch(
                    "noise",
                    describe_noise(a.noise()),
                    describe_noise(b.noise()),
                ));
            }
            return Err(mismatch(
                "task",
                describe_task(task),
                describe_task(&plan.task),
            ));
        }
        self.state
            .rules
            .check_budget()
            .map_err(|message| RefereeError::Budget { round, message })?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use fedcredit_crypto::identity::IdentityKey;

    use super::*;

    fn key(seed: u8) -> IdentityKey {
        IdentityKey::from_secret_bytes(&[seed; 32])
    }

    /// Three members, a series of three secure sums, coordinator key `coordinator`.
    fn consortium(coordinator: u8) -> Consortium {
        let hex = |seed| key(seed).public().to_hex();
        let text = format!(
            "[coordinator]\nlisten = \"127.0.0.1:50051\"\npublic_key = \"{}\"\n\n[protocol]\n\n\
             [job]\nid = \"series\"\nkind = \"secure-sum\"\ndimension = 2\nfrac_bits = 16\nclip = 1e6\nrounds = 3\n\n\
             [[participants]]\nid = \"bank-a\"\npublic_key = \"{}\"\n\
             [[participants]]\nid = \"bank-b\"\npublic_key = \"{}\"\n\
             [[participants]]\nid = \"platform\"\npublic_key = \"{}\"\n",
            hex(coordinator),
            hex(1),
            hex(2),
            hex(3)
        );
        Consortium::parse(Path::new("c.toml"), &text).expect("a valid consortium")
    }

    /// Round `round`'s outcome, the sum `[v, v]` over every member, signed by `by`.
    fn outcome(c: &Consortium, round: u64, v: f64, by: &IdentityKey) -> pb::Signed {
        let plan = Referee::new(c)
            .expect("rules")
            .next_plan()
            .expect("a first round");
        let words = plan.codec.encode(&[v, v], 3).expect("encodable");
        envelope::seal_coordinator(
            by,
            &pb::CoordinatorMessage {
                job_id: "series".into(),
                round,
                attempt: 0,
                body: Some(coordinator_message::Body::Outcome(pb::RoundOutcome {
                    sum: words::to_bytes(&words).into(),
                    contributors: vec!["bank-a".into(), "bank-b".into(), "platform".into()],
                })),
            },
        )
    }

    fn sums(r: &Referee<'_>) -> Vec<Vec<f64>> {
        r.history().iter().map(|p| p.sum.clone()).collect()
    }

    #[test]
    fn resuming_an_earlier_replay_gives_the_full_replays_result() {
        let c = consortium(9);
        let all: Vec<pb::Signed> = (0..3)
            .map(|r| outcome(&c, r, r as f64 + 0.5, &key(9)))
            .collect();
        let full = Referee::replay(&c, &all).expect("valid outcomes");
        let earlier = Referee::replay(&c, &all[..2]).expect("valid outcomes");
        let resumed =
            Referee::replay_after(&c, &all, Some(earlier.replayed())).expect("valid outcomes");
        assert_eq!(sums(&resumed), sums(&full));
        assert_eq!(sums(&resumed), [[0.5, 0.5], [1.5, 1.5], [2.5, 2.5]]);
        assert!(resumed.next_plan().is_none() && full.next_plan().is_none());
        let known: Vec<_> = all
            .iter()
            .map(|o| (outcome_digest(&o.payload), o.signature.to_vec()))
            .collect();
        assert_eq!(resumed.replayed().absorbed, known);
    }

    /// The attack: a coordinator that re-sends an outcome a member already
    /// checked, changed, must not have it taken as checked. Only outcomes
    /// byte for byte the same as the checked ones are; a changed payload or
    /// signature, or another job's or coordinator's replay, is checked anew.
    #[test]
    fn only_the_outcomes_already_checked_byte_for_byte_are_skipped() {
        let c = consortium(9);
        let good: Vec<pb::Signed> = (0..3).map(|r| outcome(&c, r, r as f64, &key(9))).collect();
        let earlier = Referee::replay(&c, &good[..2]).expect("valid outcomes");

        // Round 1's sum changed and signed by someone else.
        let mut forged = good.clone();
        forged[1] = outcome(&c, 1, 7.0, &key(8));
        // Round 1's signature altered.
        let mut flipped = good.clone();
        let mut sig = flipped[1].signature.to_vec();
        sig[5] ^= 1;
        flipped[1].signature = sig.into();
        // Round 1's payload changed under its old signature.
        let mut swapped = good.clone();
        swapped[1].payload = outcome(&c, 1, 7.0, &key(9)).payload;
        for list in [&forged, &flipped, &swapped] {
            let err = Referee::replay_after(&c, list, Some(earlier.replayed()))
                .expect_err("a changed outcome is checked");
            assert!(
                matches!(err, RefereeError::BadOutcome { round: 1, .. }),
                "{err}"
            );
        }

        // The same outcomes under a consortium with another coordinator key:
        // nothing is taken from the earlier replay, so round 0 is refused.
        let other = consortium(8);
        let err = Referee::replay_after(&other, &good, Some(earlier.replayed()))
            .expect_err("not this coordinator's");
        assert!(
            matches!(err, RefereeError::BadOutcome { round: 0, .. }),
            "{err}"
        );
    }

    fn digests(outcomes: &[pb::Signed]) -> Vec<[u8; 32]> {
        outcomes
            .iter()
            .map(|o| outcome_digest(&o.payload))
            .collect()
    }

    /// An announcement of `round` that lists `listed` as the job's history.
    fn announcement(c: &Consortium, round: u64, listed: Vec<[u8; 32]>) -> pb::RoundAnnouncement {
        let t = c.protocol.thresholds;
        pb::RoundAnnouncement {
            members: c.roster.members().map(|m| m.id.to_string()).collect(),
            threshold: t.threshold() as u32,
            min_cohort: t.min_cohort() as u32,
            max_colluders: t.max_colluders() as u32,
            dimension: 2,
            previous_outcome_digests: listed.into_iter().map(|d| d.to_vec().into()).collect(),
            task: Some(Task::SecureSum(pb::SecureSumTask {
                index: round as u32,
            })),
            ..Default::default()
        }
    }

    /// A member resumes from what it checked when the announcement lists
    /// those outcomes first; otherwise it starts again before round 0.
    #[test]
    fn resuming_from_digests_takes_only_a_matching_prefix() {
        let c = consortium(9);
        let all: Vec<pb::Signed> = (0..3).map(|r| outcome(&c, r, r as f64, &key(9))).collect();
        let earlier = Referee::replay(&c, &all[..2]).expect("valid outcomes");
        let listed = digests(&all);
        let mut resumed = Referee::resume(&c, Some(earlier.replayed()), &listed).expect("rules");
        assert_eq!(resumed.absorbed(), 2);
        resumed.absorb_signed(&all[2]).expect("round 2");
        assert_eq!(
            sums(&resumed),
            sums(&Referee::replay(&c, &all).expect("valid"))
        );

        // A history whose round 1 differs: nothing is taken over.
        let mut other = listed.clone();
        other[1][0] ^= 1;
        let fresh = Referee::resume(&c, Some(earlier.replayed()), &other).expect("rules");
        assert_eq!(fresh.absorbed(), 0);
        // A shorter history than what was checked: nothing is taken over.
        let short = Referee::resume(&c, Some(earlier.replayed()), &listed[..1]).expect("rules");
        assert_eq!(short.absorbed(), 0);
        // Another coordinator's consortium: nothing is taken over.
        let elsewhere = consortium(8);
        let none = Referee::resume(&elsewhere, Some(earlier.replayed()), &listed).expect("rules");
        assert_eq!(none.absorbed(), 0);
    }

    /// An outcome checked once is absorbed as [`Referee::absorb_signed`]
    /// would, and remembered by the digest its check took; one checked under
    /// another key than this consortium's coordinator's is refused.
    #[test]
    fn an_outcome_checked_once_is_absorbed_only_under_the_coordinator_key() {
        let c = consortium(9);
        let all: Vec<pb::Signed> = (0..2).map(|r| outcome(&c, r, r as f64, &key(9))).collect();
        let mut referee = Referee::new(&c).expect("rules");
        for o in &all {
            let checked =
                envelope::check_coordinator(o.clone(), c.roster.coordinator()).expect("signed");
            assert_eq!(checked.digest(), outcome_digest(&o.payload));
            referee.absorb(&checked).expect("the next round");
        }
        assert_eq!(
            sums(&referee),
            sums(&Referee::replay(&c, &all).expect("valid"))
        );
        let listed = digests(&all);
        let resumed = Referee::resume(&c, Some(referee.replayed()), &listed).expect("rules");
        assert_eq!(resumed.absorbed(), 2);

        // Round 0 signed by key 8 and checked under key 8: a valid check,
        // but not by this consortium's coordinator.
        let elsewhere = consortium(8);
        let foreign = outcome(&elsewhere, 0, 0.0, &key(8));
        let checked = envelope::check_coordinator(foreign, elsewhere.roster.coordinator())
            .expect("signed by 8");
        let mut fresh = Referee::new(&c).expect("rules");
        let err = fresh.absorb(&checked).expect_err("another key");
        assert!(
            matches!(err, RefereeError::BadOutcome { round: 0, .. })
                && err.to_string().contains("another key"),
            "{err}"
        );
        assert_eq!(fresh.absorbed(), 0);
    }

    /// An announcement must list exactly the outcomes the referee replayed:
    /// one more, one fewer or one changed is refused, naming the round.
    #[test]
    fn an_announcement_listing_another_history_is_refused() {
        let c = consortium(9);
        let all: Vec<pb::Signed> = (0..2).map(|r| outcome(&c, r, r as f64, &key(9))).collect();
        let referee = Referee::replay(&c, &all).expect("valid outcomes");
        let listed = digests(&all);
        // The replayed history passes this check (the bare announcement
        // fails a later one, the job spec hash).
        let later = referee
            .check_announcement(2, &announcement(&c, 2, listed.clone()))
            .expect_err("no job spec hash");
        assert!(
            matches!(
                later,
                RefereeError::Mismatch {
                    field: "job spec hash",
                    ..
                }
            ),
            "{later}"
        );
        let mut changed = listed.clone();
        changed[1][31] ^= 1;
        let mut longer = listed.clone();
        longer.push([7; 32]);
        for (list, at) in [(changed, 1), (listed[..1].to_vec(), 1), (longer, 2)] {
            let err = referee
                .check_announcement(2, &announcement(&c, 2, list))
                .expect_err("another history");
            assert!(
                matches!(
                    err,
                    RefereeError::Mismatch {
                        field: "previous outcomes",
                        ..
                    }
                ) && err
                    .to_string()
                    .contains(&format!("differing at round {at}")),
                "{err}"
            );
        }
    }
}
