//! Replaying the round log into a fresh job driver: what a restarted
//! coordinator keeps (finished rounds, their signed outcomes and
//! contributors, departures) and where it resumes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::secagg::{PartyIndex, Phase};
use fedcredit_proto::envelope;
use fedcredit_proto::roundlog::Entry;
use fedcredit_proto::v1::{self as pb, coordinator_message, log_body, message};
use fedcredit_referee::Referee;
use fedcredit_referee::consortium::Consortium;

use crate::error::CoordinatorError;
use crate::job::{JobDriver, RoundResult};
use crate::requests::At;

/// What the log already says, replayed into a fresh driver.
pub(crate) struct Replay {
    /// Every completed round's result, in order.
    pub results: Vec<RoundResult>,
    /// Their signed outcomes, for the next announcements.
    pub published: Vec<pb::Signed>,
    /// Their contributors (for the cohort policy).
    pub contributor_sets: Vec<BTreeSet<PartyIndex>>,
    /// The survivor list already announced for the round that resumes.
    pub pinned: Option<(u64, BTreeSet<PartyIndex>)>,
    /// Members that left, with their reason codes.
    pub departed: BTreeMap<PartyIndex, i32>,
    /// Where the job resumes: the next round, with an unused attempt number.
    pub resume: At,
    /// The job's end, if the log records it (a resumable failure is not).
    pub ended: Option<pb::JobEnded>,
    /// The reason of a resumable failure the log ends with: this run resumes it.
    pub failed_before: Option<String>,
}

impl Replay {
    pub fn run(
        consortium: &Consortium,
        key: &IdentityKey,
        driver: &mut dyn JobDriver,
        entries: &[Entry],
        path: &Path,
    ) -> Result<Self, CoordinatorError> {
        let bad = |seq: u64, why: String| {
            CoordinatorError::Log(format!("{}: record {seq}: {why}", path.display()))
        };
        let mut replay = Replay {
            results: Vec::new(),
            published: Vec::new(),
            contributor_sets: Vec::new(),
            pinned: None,
            departed: BTreeMap::new(),
            resume: At {
                round: 0,
                attempt: 0,
            },
            ended: None,
            failed_before: None,
        };
        let mut referee = Referee::new(consortium).map_err(|e| bad(0, e.to_string()))?;
        let mut highest_attempt: BTreeMap<u64, u32> = BTreeMap::new();
        // The first survivor list announced for each round.
        let mut survivor_lists: BTreeMap<u64, BTreeSet<PartyIndex>> = BTreeMap::new();
        for e in entries {
            let seq = e.body.seq;
            match &e.body.entry {
                Some(log_body::Entry::JobStarted(j))
                    if seq != 0 || j.job_spec_hash.as_ref() != consortium.job.hash() =>
                {
                    return Err(bad(
                        seq,
                        format!(
                            "this log belongs to job {:?} with another specification; use a new log file for this job",
                            j.job_id
                        ),
                    ));
                }
                Some(log_body::Entry::Announcement(signed)) => {
                    let (m, _) = envelope::open_coordinator(signed, &key.public())
                        .map_err(|e| bad(seq, e.to_string()))?;
                    if matches!(m.body, Some(coordinator_message::Body::Announce(_))) {
                        replay.failed_before = None;
                        let h = highest_attempt.entry(m.round).or_insert(0);
                        *h = (*h).max(m.attempt);
                    }
                }
                // A sum the job refused ends the job (its JobEnded follows);
                // a coordinator killed before logging that end retries the
                // round and is refused again.
                Some(log_body::Entry::RoundCompleted(rc)) if rc.progress_json.is_empty() => {}
                Some(log_body::Entry::RoundCompleted(rc)) => {
                    // The same check every participant runs on the outcomes
                    // an announcement lists: a log the referee refuses is
                    // not resumed.
                    let outcome = rc.outcome.clone().ok_or_else(|| {
                        bad(seq, "a completed round without its signed outcome".into())
                    })?;
                    let published = referee
                        .absorb_signed(&outcome)
                        .map_err(|e| bad(seq, e.to_string()))?
                        .clone();
                    if (published.round, published.attempt) != (rc.round, rc.attempt) {
                        return Err(bad(
                            seq,
                            format!(
                                "the record completes round {} attempt {}, its signed outcome is for round {} attempt {}",
                                rc.round, rc.attempt, published.round, published.attempt
                            ),
                        ));
                    }
                    let result = RoundResult {
                        round: rc.round,
                        attempt: rc.attempt,
                        sum: published.sum,
                        contributors: rc.contributors.clone(),
                    };
                    let progress = driver.finish_round(&result).map_err(|e| bad(seq, e))?;
                    if progress != rc.progress_json || progress != published.progress {
                        return Err(bad(
                            seq,
                            "replaying the round does not give the logged result (was the job spec changed?)".into(),
                        ));
                    }
                    replay.published.push(outcome);
                    replay.contributor_sets.push(published.contributors);
                    replay.results.push(result);
                }
                Some(log_body::Entry::Participant(signed)) => {
                    if let Ok(o) = envelope::open(signed, &consortium.roster)
                        && let Some(message::Body::Leave(l)) = &o.message.body
                    {
                        replay.departed.insert(o.sender.index, l.code);
                    }
                }
                Some(log_body::Entry::PhaseClosed(pc))
                    if pc.phase == Phase::MaskedInput.to_string() =>
                {
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        survivor_lists.entry(pc.round)
                    {
                        slot.insert(
                            consortium
                                .roster
                                .indices("survivor list", &pc.cohort)
                                .map_err(|e| bad(seq, e.to_string()))?,
                        );
                    }
                }
                // A job that failed for want of members resumes; a
                // finished or abandoned one stays ended.
                Some(log_body::Entry::JobEnded(j)) => {
                    replay.ended = (j.ok || !j.resumable).then(|| j.clone());
                    replay.failed_before = (!j.ok && j.resumable).then(|| j.reason.clone());
                }
                Some(log_body::Entry::CoordinatorStarted(_)) => {}
                _ => {}
            }
        }
        let next = replay.results.last().map_or(0, |r| r.round + 1);
        replay.pinned = survivor_lists.remove(&next).map(|set| (next, set));
        replay.resume = At {
            round: next,
            attempt: highest_attempt.get(&next).map_or(0, |a| a + 1),
        };
        Ok(replay)
    }
}
