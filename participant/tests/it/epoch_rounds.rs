//! Epoch mode over real gRPC: four real participants (`run`) against a
//! scripted coordinator that follows the epoch spec honestly, attempt by
//! attempt as each test scripts it. It checks the participant's side only:
//! a setup then slots of the epoch held, a slot of an epoch not held
//! skipped, a slot used before refused, chunked masked inputs under the
//! slot's session; every completed round's sum is the sum of the inputs,
//! replayed by each member from the job's end. The end-to-end test with the
//! real coordinator is separate; this one needs no coordinator build.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::ring::Ring;
use fedcredit_crypto::secagg::epoch::{DealerRecord, EpochView, Slot, SlotUnmasker, slot_session};
use fedcredit_crypto::secagg::{self, Advertisement, PartyIndex, SessionBinding};
use fedcredit_participant::contribution::VectorInput;
use fedcredit_participant::{Report, Settings};
use fedcredit_proto::codec::Codec;
use fedcredit_proto::epoch::{EpochDealtShares, reveal_from_pb};
use fedcredit_proto::roster::ParticipantId;
use fedcredit_proto::v1::coordinator_server::{Coordinator, CoordinatorServer};
use fedcredit_proto::v1::{self as pb, coordinator_message, message::Body, round_announcement};
use fedcredit_proto::{chunks, envelope, words};
use fedcredit_referee::consortium::{Consortium, JobKind};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

const N: usize = 4;
const DIM: usize = 5;

fn member_id(i: usize) -> String {
    format!("bank-{}", char::from(b'a' + i as u8))
}

fn member_key(i: usize) -> IdentityKey {
    IdentityKey::from_secret_bytes(&[i as u8 + 1; 32])
}

fn coordinator_key() -> IdentityKey {
    IdentityKey::from_secret_bytes(&[0xc0; 32])
}

fn consortium() -> Consortium {
    let mut toml = format!(
        "[coordinator]\nlisten = \"127.0.0.1:1\"\npublic_key = \"{}\"\n\
         [protocol]\nsetup = \"epoch\"\nslots = 4\n\
         [job]\nid = \"epoch-job\"\nkind = \"secure-sum\"\ndimension = {DIM}\n\
         frac_bits = 16\nclip = 1e6\n",
        coordinator_key().public().to_hex()
    );
    for i in 0..N {
        toml.push_str(&format!(
            "[[participants]]\nid = \"{}\"\npublic_key = \"{}\"\n",
            member_id(i),
            member_key(i).public().to_hex()
        ));
    }
    Consortium::parse(Path::new("consortium.toml"), &toml).unwrap()
}

fn input(i: usize) -> Vec<f64> {
    (0..DIM).map(|j| (10 * i + j) as f64).collect()
}

/// What one attempt (round 0, attempt = its position) announces.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// A new epoch, slot 0; `abandon`: the masked inputs are answered with
    /// an abort (the slot is used, nothing revealed).
    Setup { abandon: bool },
    /// This slot of the epoch set up last.
    Slot(Slot),
    /// An epoch nobody holds.
    Stranger,
    /// A new epoch whose slot-0 survivor list (dishonestly) leaves out
    /// the last member, who did send its masked input.
    SetupShortList,
}

#[derive(Default)]
struct Attempt {
    delivered: BTreeSet<String>,
    done: BTreeSet<String>,
    /// Every participant message of the attempt, by phase name.
    calls: Vec<(String, &'static str)>,
    adverts: BTreeMap<String, pb::Signed>,
    shares: BTreeMap<String, pb::Signed>,
    masked: BTreeMap<String, Vec<u64>>,
    reveals: BTreeMap<String, pb::SlotReveal>,
    outcome: Option<pb::Signed>,
}

struct State {
    consortium: Consortium,
    steps: Vec<Step>,
    current: usize,
    announcement: Option<pb::Signed>,
    attempts: Vec<Attempt>,
    epoch: Option<(SessionId, Arc<EpochView>)>,
    published: Vec<pb::Signed>,
}

impl State {
    fn attempt(&mut self) -> &mut Attempt {
        let i = self.current;
        &mut self.attempts[i]
    }

    fn step(&self) -> Step {
        self.steps[self.current]
    }

    fn announce(&mut self) {
        let c = &self.consortium;
        let JobKind::SecureSum {
            dimension,
            frac_bits,
            clip,
            ..
        } = c.job.kind
        else {
            panic!("a secure-sum job");
        };
        let (fixed_point, limbs) = Codec::Narrow(FixedPoint::new(frac_bits, clip).unwrap()).to_pb();
        let (epoch, slot) = match self.step() {
            Step::Setup { .. } | Step::SetupShortList => (Vec::new(), 0),
            Step::Slot(slot) => (self.epoch.as_ref().unwrap().0.as_bytes().to_vec(), slot),
            Step::Stranger => (vec![0xee; 32], 0),
        };
        let a = pb::RoundAnnouncement {
            members: c.roster.members().map(|m| m.id.to_string()).collect(),
            threshold: c.protocol.thresholds.threshold() as u32,
            min_cohort: c.protocol.thresholds.min_cohort() as u32,
            max_colluders: c.protocol.thresholds.max_colluders() as u32,
            neighbours: c.protocol.graph_fields().0,
            share_threshold: c.protocol.graph_fields().1,
            epoch_slots: c.protocol.epoch_slots_field(),
            epoch: epoch.into(),
            slot,
            dimension: dimension as u64,
            fixed_point: Some(fixed_point),
            job_spec_hash: c.job.hash().to_vec().into(),
            limbs,
            departed: Vec::new(),
            task: Some(round_announcement::Task::SecureSum(pb::SecureSumTask {
                index: 0,
            })),
            previous_outcome_digests: self
                .published
                .iter()
                .map(|o| secagg::outcome_digest(&o.payload).to_vec().into())
                .collect(),
        };
        self.announcement = Some(envelope::seal_coordinator(
            &coordinator_key(),
            &pb::CoordinatorMessage {
                job_id: c.job.id.clone(),
                round: 0,
                attempt: self.current as u32,
                body: Some(coordinator_message::Body::Announce(a)),
            },
        ));
    }

    /// The epoch's id, recomputed as the coordinator does: the session id
    /// of the setup attempt over its advertisements.
    fn epoch_id(&self) -> SessionId {
        let c = &self.consortium;
        let cohort: BTreeMap<PartyIndex, Advertisement> = self.attempts[self.current]
            .adverts
            .values()
            .map(|s| {
                let o = envelope::open(s, &c.roster).unwrap();
                let Some(Body::Advertise(k)) = &o.message.body else {
                    panic!("an advertisement");
                };
                (o.sender.index, Advertisement::try_from(k).unwrap())
            })
            .collect();
        let spec_hash = c.job.hash();
        let digest = secagg::announcement_digest(&self.announcement.as_ref().unwrap().payload);
        let binding = SessionBinding {
            job_id: &c.job.id,
            job_spec_hash: &spec_hash,
            announcement: &digest,
            round: 0,
            attempt: self.current as u32,
            thresholds: c.protocol.thresholds,
        };
        secagg::session_id(&binding, &cohort)
    }
}

#[derive(Clone)]
struct Service {
    state: Arc<Mutex<State>>,
}

/// Waits (briefly, in steps) until `ready` says the phase can close.
async fn until<T>(
    state: &Mutex<State>,
    mut ready: impl FnMut(&mut State) -> Option<T>,
) -> Result<T, Status> {
    let start = Instant::now();
    loop {
        if let Some(t) = ready(&mut state.lock().unwrap()) {
            return Ok(t);
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(Status::deadline_exceeded("the script waited too long"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

type Pieces = tokio_stream::Iter<std::vec::IntoIter<Result<pb::SignedChunk, Status>>>;

fn pieces(signed: &pb::Signed) -> Pieces {
    tokio_stream::iter(
        chunks::cut(signed, 256)
            .into_iter()
            .map(Ok)
            .collect::<Vec<_>>(),
    )
}

impl Service {
    /// Opens a participant message of the current attempt and logs it.
    fn take(&self, req: Request<pb::Signed>) -> Result<(String, pb::Signed, pb::Message), Status> {
        let signed = req.into_inner();
        let mut s = self.state.lock().unwrap();
        let message = envelope::open(&signed, &s.consortium.roster)
            .map_err(|e| Status::permission_denied(e.to_string()))?
            .message;
        if message.round != 0 || message.attempt as usize != s.current {
            return Err(Status::failed_precondition("not the current attempt"));
        }
        let phase = message.body.as_ref().map_or("empty", Body::phase_name);
        let id = message.sender.clone();
        s.attempt().calls.push((id.clone(), phase));
        Ok((id, signed, message))
    }
}

impl Service {
    /// A member's whole masked input: once all are in, the survivor list
    /// (the epoch's cohort), or the scripted abort.
    async fn masked(
        &self,
        id: String,
        values: Vec<u64>,
    ) -> Result<Response<pb::Survivors>, Status> {
        self.state
            .lock()
            .unwrap()
            .attempt()
            .masked
            .insert(id, values);
        until(&self.state, |s| {
            (s.attempt().masked.len() == N).then_some(())
        })
        .await?;
        if matches!(
            self.state.lock().unwrap().step(),
            Step::Setup { abandon: true }
        ) {
            return Err(Status::aborted(
                "slot abandoned before any reveal (scripted); the next attempt sets up a new epoch",
            ));
        }
        let short = matches!(self.state.lock().unwrap().step(), Step::SetupShortList);
        Ok(Response::new(pb::Survivors {
            survivors: (0..N - usize::from(short)).map(member_id).collect(),
        }))
    }
}

#[tonic::async_trait]
impl Coordinator for Service {
    async fn poll(&self, _: Request<pb::Signed>) -> Result<Response<pb::Signed>, Status> {
        Err(Status::unimplemented("PollChunks only"))
    }

    async fn advertise_keys(
        &self,
        req: Request<pb::Signed>,
    ) -> Result<Response<pb::AdvertisedKeys>, Status> {
        let (id, signed, _) = self.take(req)?;
        self.state
            .lock()
            .unwrap()
            .attempt()
            .adverts
            .insert(id, signed);
        let adverts = until(&self.state, |s| {
            let a = s.attempt();
            (a.adverts.len() == N).then(|| a.adverts.values().cloned().collect())
        })
        .await?;
        Ok(Response::new(pb::AdvertisedKeys { adverts }))
    }

    async fn share_keys(
        &self,
        req: Request<pb::Signed>,
    ) -> Result<Response<pb::SharesForYou>, Status> {
        let (id, signed, message) = self.take(req)?;
        if !matches!(message.body, Some(Body::EpochShares(_))) {
            return Err(Status::invalid_argument(
                "an epoch attempt takes EpochShares",
            ));
        }
        self.state
            .lock()
            .unwrap()
            .attempt()
            .shares
            .insert(id.clone(), signed);
        let dealt = until(&self.state, |s| {
            if s.attempt().shares.len() < N {
                return None;
            }
            if s.epoch.as_ref().is_none_or(|(e, _)| *e != s.epoch_id()) {
                let epoch = s.epoch_id();
                let c = s.consortium.clone();
                let slots = c.protocol.epoch_slots.unwrap();
                let records: BTreeMap<PartyIndex, DealerRecord> = s
                    .attempt()
                    .shares
                    .values()
                    .map(|signed| {
                        let o = envelope::open(signed, &c.roster).unwrap();
                        let Some(Body::EpochShares(m)) = &o.message.body else {
                            panic!("epoch shares");
                        };
                        let d =
                            EpochDealtShares::from_pb(&c.roster, o.sender.index, slots, m).unwrap();
                        (o.sender.index, d.record)
                    })
                    .collect();
                let view = EpochView::new(epoch, c.protocol.thresholds, slots, records).unwrap();
                s.epoch = Some((epoch, Arc::new(view)));
            }
            Some(
                s.attempt()
                    .shares
                    .iter()
                    .filter(|(from, _)| **from != id)
                    .map(|(_, m)| m.clone())
                    .collect(),
            )
        })
        .await?;
        Ok(Response::new(pb::SharesForYou { dealt }))
    }

    async fn submit_masked_input(
        &self,
        req: Request<pb::Signed>,
    ) -> Result<Response<pb::Survivors>, Status> {
        let (id, _, message) = self.take(req)?;
        let Some(Body::MaskedInput(m)) = &message.body else {
            return Err(Status::invalid_argument("a masked input"));
        };
        let values = words::from_bytes("masked input", &m.values).unwrap();
        self.masked(id, values).await
    }

    async fn submit_masked_chunks(
        &self,
        req: Request<tonic::Streaming<pb::Signed>>,
    ) -> Result<Response<pb::Survivors>, Status> {
        let mut stream = req.into_inner();
        let mut values = vec![0u64; DIM];
        let mut from = None;
        while let Some(signed) = stream.message().await? {
            let (id, _, message) = self.take(Request::new(signed))?;
            let Some(Body::MaskedChunk(m)) = &message.body else {
                return Err(Status::invalid_argument("a masked chunk"));
            };
            // The chunk header names the slot's session.
            let session = {
                let s = self.state.lock().unwrap();
                let slot = match s.step() {
                    Step::Slot(j) => j,
                    _ => 0,
                };
                slot_session(&s.epoch.as_ref().unwrap().0, slot)
            };
            if m.session_id.as_ref() != session.as_bytes() {
                return Err(Status::invalid_argument("a chunk of another session"));
            }
            let w = words::from_bytes("masked chunk", &m.values).unwrap();
            let offset = m.offset as usize;
            values[offset..offset + w.len()].copy_from_slice(&w);
            from = Some(id);
        }
        let id = from.ok_or_else(|| Status::invalid_argument("no chunks"))?;
        self.masked(id, values).await
    }

    async fn confirm_survivors(
        &self,
        _: Request<pb::Signed>,
    ) -> Result<Response<pb::SurvivorSignatures>, Status> {
        Err(Status::failed_precondition(
            "no consistency check in an epoch",
        ))
    }

    async fn unmask(&self, _: Request<pb::Signed>) -> Result<Response<pb::Signed>, Status> {
        Err(Status::unimplemented("UnmaskChunks only"))
    }

    type PollChunksStream = Pieces;

    async fn poll_chunks(&self, req: Request<pb::Signed>) -> Result<Response<Pieces>, Status> {
        let signed = req.into_inner();
        let (id, seen) = {
            let s = self.state.lock().unwrap();
            let m = envelope::open(&signed, &s.consortium.roster)
                .map_err(|e| Status::permission_denied(e.to_string()))?
                .message;
            let Some(Body::Poll(p)) = &m.body else {
                return Err(Status::invalid_argument("a poll"));
            };
            (m.sender.clone(), (!p.fresh).then_some(m.attempt as usize))
        };
        let answer = until(&self.state, |s| {
            if seen == Some(s.current) && s.attempt().delivered.contains(&id) {
                s.attempt().done.insert(id.clone());
                if s.attempt().done.len() == N && s.current + 1 < s.steps.len() {
                    s.current += 1;
                    s.announce();
                } else if s.attempt().done.len() == N {
                    let c = &s.consortium;
                    return Some(envelope::seal_coordinator(
                        &coordinator_key(),
                        &pb::CoordinatorMessage {
                            job_id: c.job.id.clone(),
                            round: 1,
                            attempt: 0,
                            body: Some(coordinator_message::Body::Finished(pb::JobFinished {
                                ok: true,
                                reason: String::new(),
                                outcome_digests: s
                                    .published
                                    .iter()
                                    .map(|o| secagg::outcome_digest(&o.payload).to_vec().into())
                                    .collect(),
                                departed: Vec::new(),
                            })),
                        },
                    ));
                }
                return None;
            }
            if !s.attempt().delivered.contains(&id) {
                s.attempt().delivered.insert(id.clone());
                return s.announcement.clone();
            }
            None
        })
        .await?;
        Ok(Response::new(pieces(&answer)))
    }

    type OutcomeChunksStream = Pieces;

    /// Every attempt here is round 0: no member ever lacks an outcome.
    async fn outcome_chunks(&self, _: Request<pb::Signed>) -> Result<Response<Pieces>, Status> {
        Err(Status::unimplemented("every attempt here is round 0"))
    }

    type UnmaskChunksStream = Pieces;

    async fn unmask_chunks(&self, req: Request<pb::Signed>) -> Result<Response<Pieces>, Status> {
        let (id, _, message) = self.take(req)?;
        let Some(Body::SlotReveal(r)) = message.body else {
            return Err(Status::invalid_argument(
                "an epoch attempt takes SlotReveal",
            ));
        };
        self.state.lock().unwrap().attempt().reveals.insert(id, r);
        let outcome = until(&self.state, |s| {
            if s.attempt().reveals.len() < N {
                return None;
            }
            if s.attempt().outcome.is_none() {
                let c = s.consortium.clone();
                let (_, view) = s.epoch.clone().unwrap();
                let slot = match s.step() {
                    Step::Setup { .. } | Step::SetupShortList => 0,
                    Step::Slot(j) => j,
                    Step::Stranger => panic!("nothing to unmask"),
                };
                let mut unmasker = SlotUnmasker::new(view, slot).unwrap();
                for (id, r) in &s.attempt().reveals {
                    let (got, shares) = reveal_from_pb(&c.roster, r).unwrap();
                    assert_eq!(got, slot);
                    unmasker
                        .accept(c.roster.member(id).unwrap().index, shares)
                        .unwrap();
                }
                let mut sum = vec![0u64; DIM];
                for m in s.attempt().masked.values() {
                    Ring::U64.add_assign(&mut sum, m).unwrap();
                }
                unmasker.finish(Ring::U64, &mut sum).unwrap();
                let outcome = envelope::seal_coordinator(
                    &coordinator_key(),
                    &pb::CoordinatorMessage {
                        job_id: c.job.id.clone(),
                        round: 0,
                        attempt: s.current as u32,
                        body: Some(coordinator_message::Body::Outcome(pb::RoundOutcome {
                            sum: words::to_bytes(&sum).into(),
                            contributors: (0..N).map(member_id).collect(),
                        })),
                    },
                );
                s.published.push(outcome.clone());
                s.attempt().outcome = Some(outcome);
            }
            s.attempt().outcome.clone()
        })
        .await?;
        Ok(Response::new(pieces(&outcome)))
    }

    async fn leave(&self, req: Request<pb::Signed>) -> Result<Response<pb::LeaveAck>, Status> {
        let signed = req.into_inner();
        let mut s = self.state.lock().unwrap();
        let m = envelope::open(&signed, &s.consortium.roster)
            .map_err(|e| Status::permission_denied(e.to_string()))?
            .message;
        // The member's run fails too: the test reports its error.
        s.attempt().calls.push((m.sender, "leave"));
        Ok(Response::new(pb::LeaveAck {}))
    }

    async fn offer(&self, _: Request<pb::OfferRequest>) -> Result<Response<pb::Signed>, Status> {
        Err(Status::unimplemented("no offers"))
    }
}

/// Runs the four members against the script; their reports and the
/// per-attempt record.
async fn run_script(steps: Vec<Step>, chunk_words: usize) -> (Vec<Report>, Vec<Attempt>) {
    let c = consortium();
    let mut state = State {
        consortium: c.clone(),
        attempts: steps.iter().map(|_| Attempt::default()).collect(),
        steps,
        current: 0,
        announcement: None,
        epoch: None,
        published: Vec::new(),
    };
    state.announce();
    let state = Arc::new(Mutex::new(state));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(CoordinatorServer::new(Service {
            state: Arc::clone(&state),
        }))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let server = tokio::spawn(server);
    let members: Vec<_> = (0..N)
        .map(|i| {
            let settings = Settings {
                id: ParticipantId::new(&member_id(i)).unwrap(),
                coordinator: url.clone(),
                consortium: c.clone(),
                connect_timeout: Duration::from_secs(10),
                crash_at: None,
                chunk_words,
                journal: None,
                tls: None,
            };
            tokio::spawn(async move {
                let mut contributor = VectorInput::new(input(i));
                fedcredit_participant::run(
                    settings,
                    member_key(i),
                    &mut contributor,
                    std::future::pending(),
                )
                .await
            })
        })
        .collect();
    let mut reports = Vec::new();
    for m in members {
        let r = tokio::time::timeout(Duration::from_secs(120), m)
            .await
            .expect("the job hung")
            .unwrap();
        reports.push(r.unwrap_or_else(|e| panic!("a member failed: {e}")));
    }
    server.abort();
    let attempts = std::mem::take(&mut state.lock().unwrap().attempts);
    (reports, attempts)
}

fn expected_sum() -> Vec<f64> {
    (0..DIM)
        .map(|j| (0..N).map(|i| input(i)[j]).sum())
        .collect()
}

fn phases(a: &Attempt) -> BTreeSet<&'static str> {
    a.calls.iter().map(|(_, p)| *p).collect()
}

fn check_completed(reports: &[Report], attempt: u32) {
    for r in reports {
        assert_eq!(r.rounds.len(), 1);
        assert_eq!(r.rounds[0].attempt, attempt);
        assert_eq!(r.rounds[0].sum, expected_sum());
        let mut contributors = r.rounds[0].contributors.clone();
        contributors.sort();
        assert_eq!(contributors, (0..N).map(member_id).collect::<Vec<_>>());
        assert!(r.result.is_some(), "the job's end replayed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_of_the_epoch_held_completes_after_its_setup_slot_was_abandoned() {
    let (reports, attempts) = run_script(
        vec![Step::Setup { abandon: true }, Step::Slot(1)],
        chunks::MAX_CHUNK_WORDS,
    )
    .await;
    check_completed(&reports, 1);
    assert_eq!(
        phases(&attempts[0]),
        BTreeSet::from(["advertise-keys", "share-keys", "masked-input"])
    );
    // A slot is a masked input and a reveal, nothing else.
    assert_eq!(
        phases(&attempts[1]),
        BTreeSet::from(["masked-input", "unmask"])
    );
    assert_eq!(attempts[1].calls.len(), 2 * N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_of_an_epoch_not_held_is_skipped_until_the_next_setup() {
    let (reports, attempts) = run_script(
        vec![Step::Stranger, Step::Setup { abandon: false }],
        chunks::MAX_CHUNK_WORDS,
    )
    .await;
    check_completed(&reports, 1);
    assert!(attempts[0].calls.is_empty(), "{:?}", attempts[0].calls);
    assert_eq!(
        phases(&attempts[1]),
        BTreeSet::from(["advertise-keys", "share-keys", "masked-input", "unmask"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_used_before_is_never_masked_again() {
    let (reports, attempts) = run_script(
        vec![
            Step::Setup { abandon: true },
            Step::Slot(0),
            Step::Setup { abandon: false },
        ],
        chunks::MAX_CHUNK_WORDS,
    )
    .await;
    check_completed(&reports, 2);
    assert!(attempts[1].calls.is_empty(), "{:?}", attempts[1].calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_masked_inputs_name_the_slots_session() {
    let (reports, attempts) =
        run_script(vec![Step::Setup { abandon: true }, Step::Slot(3)], 2).await;
    check_completed(&reports, 1);
    // Three chunks of at most two words each, then the reveal.
    assert_eq!(attempts[1].calls.len(), 4 * N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_list_short_of_the_cohort_gets_no_reveal() {
    let (reports, attempts) = run_script(
        vec![Step::SetupShortList, Step::Slot(1)],
        chunks::MAX_CHUNK_WORDS,
    )
    .await;
    check_completed(&reports, 1);
    assert_eq!(
        phases(&attempts[0]),
        BTreeSet::from(["advertise-keys", "share-keys", "masked-input"]),
        "nobody reveals a slot for a set other than the epoch's cohort"
    );
}
