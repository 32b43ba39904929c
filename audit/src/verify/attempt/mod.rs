//! One round attempt replayed from its logged messages: the cohorts U1–U5
//! recomputed from who sent what, the session id from the advertised keys,
//! the masked sum of U3, and the unmasking from the logged reveals — with
//! the same `fedcredit_crypto::secagg::server::Unmasker` rules the
//! coordinator is bound by, but none of its code.
//!
//! ```text
//! announcement ─▶ advertise-keys ─▶ share-keys ─▶ masked-input ─▶ consistency-check ─▶ unmask ─▶ RoundCompleted
//!                     (U1)             (U2)          (U3)              (U4)              (U5)
//!                 each phase ends with a PhaseClosed record, or the attempt with RoundAborted
//! ```
//!
//! An attempt of an epoch job runs the phases `epoch` describes instead:
//! no consistency check, `EpochShares` and `SlotReveal` in place of
//! `EncryptedShares` and `UnmaskShares`, and the epoch's cohort C in place
//! of U2 and U4.
//!
//! The messages themselves are checked in `messages`.

use std::collections::{BTreeMap, BTreeSet};

use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::admission::ChunkProgress;
use fedcredit_crypto::secagg::plus::Neighbourhoods;
use fedcredit_crypto::secagg::server::{RoundView, Unmasker};
use fedcredit_crypto::secagg::{self, Advertisement, Dealt, PartyIndex, Phase, SessionBinding};
use fedcredit_proto::codec::Codec;
use fedcredit_proto::roster::Roster;
use fedcredit_proto::v1::message::Body;
use fedcredit_proto::v1::{self as pb, coordinator_message};
use fedcredit_proto::{envelope, words};
use prost::bytes::Bytes;

use super::Context;
use crate::report::{BadReveal, Check, Failure};

mod epoch;
mod messages;

pub(crate) use epoch::{Epoch, EpochAttempt};

/// Where the attempt stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// This phase accepts messages until its `PhaseClosed`.
    Open(Phase),
    /// The unmask phase closed: the result (or an abort) comes next.
    Closed,
}

/// The phase a message body belongs to (`None` for polls, leaves and outcome
/// fetches, which no phase accepts).
pub(crate) fn body_phase(body: &Body) -> Option<Phase> {
    Some(match body {
        Body::Advertise(_) => Phase::AdvertiseKeys,
        Body::Shares(_) | Body::EpochShares(_) => Phase::ShareKeys,
        Body::MaskedInput(_) | Body::MaskedChunk(_) => Phase::MaskedInput,
        Body::Consistency(_) => Phase::ConsistencyCheck,
        Body::Unmask(_) | Body::SlotReveal(_) => Phase::Unmask,
        Body::Poll(_) | Body::Leave(_) | Body::FetchOutcome(_) => return None,
    })
}

/// A short name of a message body for messages.
pub(crate) fn body_name(body: Option<&Body>) -> &'static str {
    match body {
        None => "empty",
        Some(Body::Poll(_)) => "poll",
        Some(Body::Advertise(_)) => "advertise-keys",
        Some(Body::Shares(_)) => "share-keys",
        Some(Body::EpochShares(_)) => "epoch share-keys",
        Some(Body::MaskedInput(_) | Body::MaskedChunk(_)) => "masked-input",
        Some(Body::Consistency(_)) => "consistency-check",
        Some(Body::Unmask(_)) => "unmask",
        Some(Body::SlotReveal(_)) => "slot unmask",
        Some(Body::Leave(_)) => "leave",
        Some(Body::FetchOutcome(_)) => "fetch-outcome",
    }
}

/// What a justified abort looked like.
#[derive(Debug)]
pub(crate) struct Justified {
    /// The phase that could not go on.
    pub phase: String,
    /// Why the log supports it.
    pub justification: String,
}

/// The replayed state of one round attempt.
#[derive(Debug)]
pub(crate) struct AttemptState {
    /// The round.
    pub round: u64,
    /// The attempt.
    pub attempt: u32,
    /// Digest of the signed announcement (bound into the session id).
    announcement: [u8; 32],
    /// The announced codec (`None` if the announcement failed its checks).
    codec: Option<Codec>,
    /// Words per masked input.
    words: usize,
    stage: Stage,
    u1: BTreeMap<PartyIndex, Advertisement>,
    session: Option<SessionId>,
    /// The attempt's communication graph, derived (as the coordinator and
    /// every member derive it) from the consortium's thresholds, the
    /// session id and U1 when the advertise-keys phase closes.
    graph: Option<Neighbourhoods>,
    u2: BTreeMap<PartyIndex, Dealt>,
    /// Σ of U3's masked inputs so far (empty before the first).
    masked: Vec<u64>,
    u3: BTreeSet<PartyIndex>,
    /// Chunked inputs not yet whole: how far each came, and its chunks
    /// (first word, words as logged, shared with the log's buffer). Summed
    /// only once the last chunk is in; an input that never completes is
    /// never in the sum, and its sender is missing from U3.
    staged: BTreeMap<PartyIndex, (ChunkProgress, Vec<(usize, Bytes)>)>,
    u4: BTreeSet<PartyIndex>,
    unmasker: Option<Unmasker>,
    u5: BTreeSet<PartyIndex>,
    /// Logged reveals with a share that fails its dealer's commitment:
    /// (record, revealer, owner, kind). Their senders are out of U5.
    bad_reveals: Vec<(u64, PartyIndex, PartyIndex, String)>,
    /// The exact survivor list this attempt must reach (the job's cohort
    /// rules, or the list an earlier attempt of the same task announced):
    /// an abort at the masked-input close for any other list is justified.
    pub exact: Option<BTreeSet<PartyIndex>>,
    /// The epoch and slot of an attempt of an epoch job (`None`: the
    /// per-round protocol).
    epoch: Option<EpochAttempt>,
}

fn names(roster: &Roster, set: &BTreeSet<PartyIndex>) -> String {
    if set.is_empty() {
        return "nobody".into();
    }
    set.iter()
        .map(|p| roster.name_of(*p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a list of ids into indices; unknown or repeated ids fail.
fn parse_ids(
    roster: &Roster,
    ids: &[String],
    seq: u64,
    check: Check,
    what: &str,
) -> Result<BTreeSet<PartyIndex>, Failure> {
    roster.indices("ids", ids).map_err(|e| {
        let problem = match e {
            fedcredit_proto::WireError::Field { problem, .. } => problem,
            other => other.to_string(),
        };
        Failure::new(seq, check, format!("{what}: {problem}"))
    })
}

impl AttemptState {
    /// A freshly announced attempt whose masked inputs have `words` words.
    pub fn new(
        round: u64,
        attempt: u32,
        announcement: [u8; 32],
        codec: Option<Codec>,
        words: usize,
    ) -> Self {
        Self {
            round,
            attempt,
            announcement,
            codec,
            words,
            stage: Stage::Open(Phase::AdvertiseKeys),
            u1: BTreeMap::new(),
            session: None,
            graph: None,
            u2: BTreeMap::new(),
            masked: Vec::new(),
            u3: BTreeSet::new(),
            staged: BTreeMap::new(),
            u4: BTreeSet::new(),
            unmasker: None,
            u5: BTreeSet::new(),
            bad_reveals: Vec::new(),
            exact: None,
            epoch: None,
        }
    }

    /// Who revealed a bad share, of whose secret, in which record.
    pub fn bad_reveals(&self, roster: &Roster) -> Vec<BadReveal> {
        self.bad_reveals
            .iter()
            .map(|(record, revealer, owner, kind)| BadReveal {
                record: *record,
                revealer: roster.name_of(*revealer),
                owner: roster.name_of(*owner),
                kind: kind.clone(),
            })
            .collect()
    }

    /// Survivors excluded from the unmasking for revealing a bad share.
    fn excluded(&self) -> BTreeSet<PartyIndex> {
        self.bad_reveals.iter().map(|(_, r, _, _)| *r).collect()
    }

    /// The codec announced for this attempt.
    /// How many members revealed shares (each reveals one share of every
    /// member of U2): with at least t, the coordinator can unmask.
    pub fn revealers(&self) -> usize {
        self.u5.len()
    }

    /// U3 by id, sorted (empty before the masked-input phase closed).
    pub fn survivor_ids(&self, roster: &Roster) -> Vec<String> {
        let mut ids: Vec<String> = self.u3.iter().map(|p| roster.name_of(*p)).collect();
        ids.sort();
        ids
    }

    pub fn codec(&self) -> Option<&Codec> {
        self.codec.as_ref()
    }

    /// Members of U1 whose input is not in the sum (U1 \ U3), by id.
    pub fn dropped(&self, roster: &Roster) -> Vec<String> {
        self.u1
            .keys()
            .filter(|p| !self.u3.contains(p))
            .map(|p| roster.name_of(*p))
            .collect()
    }

    /// U3 by id, in index order.
    pub fn contributors(&self, roster: &Roster) -> Vec<String> {
        self.u3.iter().map(|p| roster.name_of(*p)).collect()
    }

    fn at(&self) -> String {
        format!("round {} attempt {}", self.round, self.attempt)
    }

    fn check_binding(&self, seq: u64, what: &str, round: u64, attempt: u32) -> Result<(), Failure> {
        if (round, attempt) != (self.round, self.attempt) {
            return Err(Failure::new(
                seq,
                Check::Binding,
                format!(
                    "{what} is for round {round} attempt {attempt}, but {} is open",
                    self.at()
                ),
            ));
        }
        Ok(())
    }

    /// The cohort of `phase` so far.
    fn cohort(&self, phase: Phase) -> BTreeSet<PartyIndex> {
        match phase {
            Phase::AdvertiseKeys => self.u1.keys().copied().collect(),
            Phase::ShareKeys => match &self.epoch {
                Some(e) => e.dealt.keys().copied().collect(),
                None => self.u2.keys().copied().collect(),
            },
            Phase::MaskedInput => self.u3.clone(),
            Phase::ConsistencyCheck => self.u4.clone(),
            Phase::Unmask => self.u5.clone(),
        }
    }

    /// The cohort a phase draws from (who is expected to answer in it).
    fn expected(&self, phase: Phase) -> Option<BTreeSet<PartyIndex>> {
        if self.epoch.is_some() {
            // C in place of U2 and U4 (and nobody before C is known).
            let c = self.epoch_cohort().cloned().unwrap_or_default();
            match phase {
                Phase::MaskedInput => return Some(c),
                Phase::Unmask => return Some(c.difference(&self.excluded()).copied().collect()),
                _ => {}
            }
        }
        match phase {
            Phase::AdvertiseKeys => None,
            Phase::ShareKeys => Some(self.u1.keys().copied().collect()),
            Phase::MaskedInput => Some(self.u2.keys().copied().collect()),
            Phase::ConsistencyCheck => Some(self.u3.clone()),
            // A revealer excluded for a bad share is neither in U5 nor missing.
            Phase::Unmask => Some(self.u4.difference(&self.excluded()).copied().collect()),
        }
    }

    /// A `PhaseClosed` record: the logged cohort must be the one the
    /// messages give, large enough to go on, and `missing` must be exactly
    /// who was expected but did not answer.
    pub fn phase_closed(
        &mut self,
        ctx: &Context<'_>,
        seq: u64,
        pc: &pb::PhaseClosed,
    ) -> Result<(), Failure> {
        let roster = &ctx.consortium.roster;
        self.check_binding(seq, "the PhaseClosed record", pc.round, pc.attempt)?;
        let open = match self.stage {
            Stage::Open(p) if p.to_string() == pc.phase => p,
            Stage::Open(p) => {
                return Err(Failure::new(
                    seq,
                    Check::Phase,
                    format!("closes phase {:?} while the {p} phase is open", pc.phase),
                ));
            }
            Stage::Closed => {
                return Err(Failure::new(
                    seq,
                    Check::Phase,
                    format!("closes phase {:?} after the unmask phase closed", pc.phase),
                ));
            }
        };
        let logged = parse_ids(
            roster,
            &pc.cohort,
            seq,
            Check::Cohort,
            &format!("the closed {open} cohort"),
        )?;
        let actual = self.cohort(open);
        if logged != actual {
            let extra: BTreeSet<_> = logged.difference(&actual).copied().collect();
            let absent: BTreeSet<_> = actual.difference(&logged).copied().collect();
            return Err(Failure::new(
                seq,
                Check::Cohort,
                format!(
                    "the closed {open} cohort is [{}], but the logged messages give [{}] (listed without a message: {}; a message but not listed: {})",
                    names(roster, &logged),
                    names(roster, &actual),
                    names(roster, &extra),
                    names(roster, &absent)
                ),
            ));
        }
        let missing = parse_ids(
            roster,
            &pc.missing,
            seq,
            Check::Cohort,
            &format!("the {open} phase's missing list"),
        )?;
        if let Some(p) = missing.intersection(&actual).next() {
            return Err(Failure::new(
                seq,
                Check::Cohort,
                format!(
                    "{} is listed as missing from the {open} phase, but its message is logged",
                    roster.name_of(*p)
                ),
            ));
        }
        if let Some(expected) = self.expected(open) {
            let dropped: BTreeSet<_> = expected.difference(&actual).copied().collect();
            if missing != dropped {
                return Err(Failure::new(
                    seq,
                    Check::Cohort,
                    format!(
                        "the {open} phase lists [{}] as missing, but [{}] did not answer",
                        names(roster, &missing),
                        names(roster, &dropped)
                    ),
                ));
            }
        }
        if actual.len() < ctx.need {
            return Err(Failure::new(
                seq,
                Check::Abort,
                format!(
                    "the {open} phase closed with {} parties, but {} are needed: the attempt had to abort",
                    actual.len(),
                    ctx.need
                ),
            ));
        }
        self.stage = match open {
            Phase::AdvertiseKeys => {
                let binding = SessionBinding {
                    job_id: &ctx.consortium.job.id,
                    job_spec_hash: &ctx.spec_hash,
                    announcement: &self.announcement,
                    round: self.round,
                    attempt: self.attempt,
                    thresholds: ctx.consortium.protocol.thresholds,
                };
                let session = secagg::session_id(&binding, &self.u1);
                let graph =
                    Neighbourhoods::derive(&ctx.consortium.protocol.thresholds, &session, &self.u1)
                        .map_err(|e| {
                            Failure::new(
                                seq,
                                Check::Shares,
                                format!("the round's graph cannot be derived over U1: {e}"),
                            )
                        })?;
                self.session = Some(session);
                self.graph = Some(graph);
                Stage::Open(Phase::ShareKeys)
            }
            Phase::ShareKeys if self.epoch.is_some() => {
                self.epoch_set_up(ctx, seq)?;
                Stage::Open(Phase::MaskedInput)
            }
            // The sum starts from the first masked input (so that nothing is
            // allocated on the announcement's word alone).
            Phase::ShareKeys => Stage::Open(Phase::MaskedInput),
            Phase::MaskedInput if self.epoch.is_some() => {
                self.slot_unmasking(ctx, seq)?;
                // No consistency check: no key is ever revealed in an epoch.
                Stage::Open(Phase::Unmask)
            }
            Phase::MaskedInput => Stage::Open(Phase::ConsistencyCheck),
            Phase::ConsistencyCheck => {
                let session = self.session.ok_or_else(|| {
                    Failure::new(
                        seq,
                        Check::Phase,
                        "no session id: keys were never advertised",
                    )
                })?;
                let ring =
                    self.codec.as_ref().map(Codec::ring).ok_or_else(|| {
                        Failure::new(seq, Check::Unmask, "no codec was announced")
                    })?;
                let view = RoundView {
                    session,
                    thresholds: ctx.consortium.protocol.thresholds,
                    cohort: self.u1.clone(),
                    u2: self.u2.clone(),
                    u3: self.u3.clone(),
                    ring,
                };
                self.unmasker = Some(Unmasker::new(view).map_err(|e| {
                    Failure::new(seq, Check::Unmask, format!("cannot start unmasking: {e}"))
                })?);
                Stage::Open(Phase::Unmask)
            }
            Phase::Unmask => Stage::Closed,
        };
        Ok(())
    }

    /// A `RoundAborted` record: justified if the phase's cohort was below
    /// the threshold and minimum cohort, or (after the unmask phase closed)
    /// if the logged reveals really do not unmask the sum.
    pub fn aborted(
        &mut self,
        ctx: &Context<'_>,
        seq: u64,
        ra: &pb::RoundAborted,
    ) -> Result<Justified, Failure> {
        self.check_binding(seq, "the RoundAborted record", ra.round, ra.attempt)?;
        match self.stage {
            Stage::Open(open) => {
                // Building the unmasker at the close of the consistency check
                // is reported as an unmask failure.
                let named_ok = ra.phase == open.to_string()
                    || (open == Phase::ConsistencyCheck && ra.phase == Phase::Unmask.to_string());
                if !named_ok {
                    return Err(Failure::new(
                        seq,
                        Check::Phase,
                        format!(
                            "aborts in phase {:?}, but the {open} phase is open",
                            ra.phase
                        ),
                    ));
                }
                let have = self.cohort(open).len();
                let roster = &ctx.consortium.roster;
                if let Some(justification) = self.epoch_abort(roster, open) {
                    return Ok(Justified {
                        phase: open.to_string(),
                        justification,
                    });
                }
                if open == Phase::MaskedInput
                    && have >= ctx.need
                    && let Some(exact) = &self.exact
                    && *exact != self.u3
                {
                    return Ok(Justified {
                        phase: open.to_string(),
                        justification: format!(
                            "the survivor list must be exactly {} (cohort rules or an earlier \
                             attempt of the task); {} answered",
                            names(roster, exact),
                            names(roster, &self.u3)
                        ),
                    });
                }
                if have < ctx.need {
                    let of = self
                        .expected(open)
                        .map_or_else(String::new, |e| format!(" of {}", e.len()));
                    let mut justification =
                        format!("{have}{of} parties answered in {open}, {} needed", ctx.need);
                    for b in self.bad_reveals(&ctx.consortium.roster) {
                        justification.push_str(&format!("; {b}"));
                    }
                    Ok(Justified {
                        phase: open.to_string(),
                        justification,
                    })
                } else {
                    Err(Failure::new(
                        seq,
                        Check::Abort,
                        format!(
                            "aborted in the {open} phase with {have} parties answering ({} needed): the log shows no cause",
                            ctx.need
                        ),
                    ))
                }
            }
            Stage::Closed => {
                if ra.phase != Phase::Unmask.to_string() {
                    return Err(Failure::new(
                        seq,
                        Check::Phase,
                        format!(
                            "aborts in phase {:?} after the unmask phase closed",
                            ra.phase
                        ),
                    ));
                }
                match self.unmask(seq) {
                    Err(f) => Ok(Justified {
                        phase: Phase::Unmask.to_string(),
                        justification: f.reason,
                    }),
                    Ok(_) => Err(Failure::new(
                        seq,
                        Check::Abort,
                        "aborted after the unmask phase closed, but the logged reveals unmask the sum",
                    )),
                }
            }
        }
    }

    /// Removes the masks with the logged reveals.
    fn unmask(&mut self, seq: u64) -> Result<Vec<u64>, Failure> {
        if self.epoch.is_some() {
            return self.slot_unmask(seq);
        }
        let unmasker = self
            .unmasker
            .take()
            .ok_or_else(|| Failure::new(seq, Check::Unmask, "the unmasking was already used"))?;
        let mut sum = std::mem::take(&mut self.masked);
        unmasker.finish(&mut sum).map_err(|e| {
            Failure::new(
                seq,
                Check::Unmask,
                format!("the logged reveals do not unmask the sum: {e}"),
            )
        })?;
        Ok(sum)
    }

    /// A `RoundCompleted` record: the published sum must be the one
    /// recomputed from U3's masked inputs and the reveals, the contributors
    /// must be U3, and the coordinator-signed outcome must say the same.
    /// Returns the decoded sum.
    pub fn completed(
        &mut self,
        ctx: &Context<'_>,
        seq: u64,
        rc: &pb::RoundCompleted,
    ) -> Result<Vec<f64>, Failure> {
        let roster = &ctx.consortium.roster;
        self.check_binding(seq, "the RoundCompleted record", rc.round, rc.attempt)?;
        if let Stage::Open(p) = self.stage {
            return Err(Failure::new(
                seq,
                Check::Phase,
                format!("the round completed while the {p} phase was still open"),
            ));
        }
        let sum = self.unmask(seq)?;
        let published = words::from_bytes("published sum", &rc.sum)
            .map_err(|e| Failure::new(seq, Check::Sum, e.to_string()))?;
        if published.len() != sum.len() {
            return Err(Failure::new(
                seq,
                Check::Sum,
                format!(
                    "the published sum has {} words, the round aggregates {}",
                    published.len(),
                    sum.len()
                ),
            ));
        }
        if let Some(i) = published.iter().zip(&sum).position(|(a, b)| a != b) {
            return Err(Failure::new(
                seq,
                Check::Sum,
                format!(
                    "the published sum differs from the sum recomputed from the {} logged masked inputs and {} reveals (first at word {i} of {}: published {:#018x}, recomputed {:#018x})",
                    self.u3.len(),
                    self.u5.len(),
                    sum.len(),
                    published[i],
                    sum[i]
                ),
            ));
        }
        let contributors = parse_ids(
            roster,
            &rc.contributors,
            seq,
            Check::Contributors,
            "the contributors",
        )?;
        if let Some(c) = self.epoch_cohort()
            && contributors != *c
        {
            return Err(Failure::new(
                seq,
                Check::Contributors,
                format!(
                    "the published contributors are [{}], but the epoch's cohort C (whose masked inputs are in the sum) is [{}]",
                    names(roster, &contributors),
                    names(roster, c)
                ),
            ));
        }
        if contributors != self.u3 {
            return Err(Failure::new(
                seq,
                Check::Contributors,
                format!(
                    "the published contributors are [{}], but U3 (whose masked inputs are in the sum) is [{}]",
                    names(roster, &contributors),
                    names(roster, &self.u3)
                ),
            ));
        }
        let signed = rc
            .outcome
            .as_ref()
            .ok_or_else(|| Failure::new(seq, Check::Outcome, "no coordinator-signed outcome"))?;
        let (message, _checked) = envelope::open_coordinator(signed, roster.coordinator())
            .map_err(|e| Failure::new(seq, Check::Outcome, format!("the signed outcome: {e}")))?;
        if message.job_id != ctx.consortium.job.id
            || (message.round, message.attempt) != (self.round, self.attempt)
        {
            return Err(Failure::new(
                seq,
                Check::Outcome,
                format!(
                    "the signed outcome is for job {:?} round {} attempt {}",
                    message.job_id, message.round, message.attempt
                ),
            ));
        }
        let Some(coordinator_message::Body::Outcome(o)) = &message.body else {
            return Err(Failure::new(
                seq,
                Check::Outcome,
                "the signed outcome is not a round outcome",
            ));
        };
        if o.sum != rc.sum {
            return Err(Failure::new(
                seq,
                Check::Outcome,
                "the sum sent to participants differs from the published sum",
            ));
        }
        if o.contributors != rc.contributors {
            return Err(Failure::new(
                seq,
                Check::Outcome,
                "the contributors sent to participants differ from the published ones",
            ));
        }
        let codec = self
            .codec
            .as_ref()
            .ok_or_else(|| Failure::new(seq, Check::Sum, "no codec was announced"))?;
        codec
            .decode(&sum)
            .map_err(|e| Failure::new(seq, Check::Sum, format!("cannot decode the sum: {e}")))
    }
}
