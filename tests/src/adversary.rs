//! [`Adversary`]: a scripted, dishonest coordinator. A tonic server that
//! verifies each participant envelope and hands every call to the test's
//! driver (this struct) through a channel; the driver answers when the test
//! says a phase closes. Nothing is answered on a timer.
//!
//! A round attempt, as the test scripts it:
//!
//! ```text
//! announce(round, attempt, announcement, to)   answers the polls of `to`
//! advertise(cohort)                            relays all adverts to each sender
//! share_keys()                                 relays to each sender every other dealer's signed shares message
//! masked_input(|viewer| survivor list)         answers each sender with the list chosen for it
//! confirm(|viewer, confirmations| relayed)     answers each with the confirmations chosen for it
//! unmask(End::Complete | End::Abort)           signed outcome (per viewer's list) or an abort
//! ```
//!
//! A phase waits for each expected member until it sends the phase's
//! message or gives up (polls again, sends `Leave`, or its `run` returns).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::kx::{AgreementPublic, SessionId};
use fedcredit_crypto::secagg::client::DealtToMe;
use fedcredit_crypto::secagg::{
    self, Advertisement, Dealt, PartyIndex, SessionBinding, outcome_digest,
};
use fedcredit_proto::codec::Codec;
use fedcredit_proto::envelope;
use fedcredit_proto::roster::Roster;
use fedcredit_proto::shares::DealtShares;
use fedcredit_proto::v1::coordinator_server::{Coordinator, CoordinatorServer};
use fedcredit_proto::v1::{self as pb, coordinator_message, message::Body, round_announcement};
use fedcredit_proto::words;
use fedcredit_referee::consortium::{Consortium, JobKind};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::colluder::Colluder;

mod epoch;

/// The RPCs of the `Coordinator` service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    /// Long poll for an announcement.
    Poll,
    /// Phase 1.
    AdvertiseKeys,
    /// Phase 2.
    ShareKeys,
    /// Phase 3.
    SubmitMaskedInput,
    /// Phase 4.
    ConfirmSurvivors,
    /// Phase 5.
    Unmask,
    /// A participant leaves the job.
    Leave,
    /// A participant asks for a published outcome it did not receive.
    FetchOutcome,
}

/// What the driver answers a call with (one variant per response type).
#[derive(Debug)]
enum Answer {
    Signed(pb::Signed),
    Adverts(pb::AdvertisedKeys),
    Shares(pb::SharesForYou),
    Survivors(pb::Survivors),
    Confirmations(pb::SurvivorSignatures),
    LeaveAck,
}

type Reply = oneshot::Sender<Result<Answer, Status>>;

/// A verified call waiting for the driver's answer.
#[derive(Debug)]
struct Call {
    rpc: Rpc,
    signed: pb::Signed,
    message: pb::Message,
    reply: Reply,
}

#[derive(Debug)]
enum Event {
    Call(Call),
    /// An honest participant's `run` returned (with its error, if any).
    Ended {
        id: String,
        error: Option<String>,
    },
}

/// The tonic service: verifies the envelope against the roster and forwards.
#[derive(Clone, Debug)]
struct Service {
    roster: Arc<Roster>,
    tx: mpsc::UnboundedSender<Event>,
    /// Payload bytes per piece of a chunked answer.
    piece_bytes: usize,
    /// Set by a test to break the chunked answers of one RPC.
    tamper: Arc<std::sync::Mutex<Option<(Rpc, PieceTamper)>>>,
}

impl Service {
    async fn call(&self, rpc: Rpc, req: Request<pb::Signed>) -> Result<Answer, Status> {
        let signed = req.into_inner();
        let message = envelope::open(&signed, &self.roster)
            .map_err(|e| Status::permission_denied(e.to_string()))?
            .message;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Event::Call(Call {
                rpc,
                signed,
                message,
                reply,
            }))
            .map_err(|_| Status::unavailable("the adversary stopped"))?;
        answer
            .await
            .map_err(|_| Status::unavailable("the adversary dropped the call"))?
    }
}

/// Payload bytes per piece of the adversary's chunked answers: small, so
/// that the suite's small rounds still travel as many pieces.
pub const PIECE_BYTES: usize = 64;

/// A signed answer in pieces (`PollChunks`, `UnmaskChunks`).
type Pieces = tokio_stream::Iter<std::vec::IntoIter<Result<pb::SignedChunk, Status>>>;

impl Service {
    /// Cuts `signed` (the answer to `rpc`) as the honest coordinator does,
    /// then lets the test's [`PieceTamper`] for `rpc` (if any) rewrite the
    /// pieces.
    fn pieces(&self, rpc: Rpc, signed: &pb::Signed) -> Pieces {
        let mut pieces = fedcredit_proto::chunks::cut(signed, self.piece_bytes);
        if let Ok(tamper) = self.tamper.lock()
            && let Some((target, t)) = *tamper
            && target == rpc
        {
            t.apply(&mut pieces);
        }
        tokio_stream::iter(pieces.into_iter().map(Ok).collect::<Vec<_>>())
    }
}

/// How the adversary breaks the order of a chunked answer's pieces (see
/// [`Adversary::tamper_pieces`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceTamper {
    /// Pieces 1 and 2 swapped.
    OutOfOrder,
    /// Piece 1 sent twice.
    Duplicate,
    /// One piece more after the last, past the payload's end.
    PastEnd,
    /// The last piece left out: the stream ends short.
    Truncated,
}

impl PieceTamper {
    fn apply(self, pieces: &mut Vec<pb::SignedChunk>) {
        if pieces.len() < 3 {
            return;
        }
        match self {
            Self::OutOfOrder => pieces.swap(1, 2),
            Self::Duplicate => pieces.insert(2, pieces[1].clone()),
            Self::PastEnd => {
                let last = pieces[pieces.len() - 1].clone();
                pieces.push(pb::SignedChunk {
                    index: last.index + 1,
                    offset: last.length,
                    ..last
                });
            }
            Self::Truncated => {
                pieces.pop();
            }
        }
    }
}

fn wrong_answer() -> Status {
    Status::internal("the script answered with the wrong kind of message")
}

#[tonic::async_trait]
impl Coordinator for Service {
    async fn poll(&self, req: Request<pb::Signed>) -> Result<Response<pb::Signed>, Status> {
        match self.call(Rpc::Poll, req).await? {
            Answer::Signed(s) => Ok(Response::new(s)),
            _ => Err(wrong_answer()),
        }
    }
    async fn advertise_keys(
        &self,
        req: Request<pb::Signed>,
    ) -> Result<Response<pb::AdvertisedKeys>, Status> {
        match self.call(Rpc::AdvertiseKeys, req).await? {
            Answer::Adverts(a) => Ok(Response::new(a)),
            _ => Err(wrong_answer()),
        }
    }
    async fn share_keys(
        &self,
        req: Request<pb::Signed>,
    ) -> Result<Response<pb::SharesForYou>, Status> {
        match self.call(Rpc::ShareKeys, req).await? {
            Answer::Shares(s) => Ok(Response::new(s)),
            _ => Err(wrong_answer()),
        }
    }
    async fn submit_masked_input(
        &self,
        req: Request<pb::Signed>,
    ) -> Result<Response<pb::Survivors>, Status> {
        match self.call(Rpc::SubmitMaskedInput, req).await? {
            Answer::Survivors(s) => Ok(Response::new(s)),
            _ => Err(wrong_answer()),
        }
    }
    /// The suite's rounds are small: honest participants send their masked
    /// input whole (`SubmitMaskedInput`); a stream is refused, so that a
    /// participant that streams shows up as a failed call, not a hang.
    async fn submit_masked_chunks(
        &self,
        _req: Request<tonic::Streaming<pb::Signed>>,
    ) -> Result<Response<pb::Survivors>, Status> {
        Err(Status::unimplemented(
            "the adversarial coordinator takes masked inputs whole",
        ))
    }
    async fn confirm_survivors(
        &self,
        req: Request<pb::Signed>,
    ) -> Result<Response<pb::SurvivorSignatures>, Status> {
        match self.call(Rpc::ConfirmSurvivors, req).await? {
            Answer::Confirmations(c) => Ok(Response::new(c)),
            _ => Err(wrong_answer()),
        }
    }
    async fn unmask(&self, req: Request<pb::Signed>) -> Result<Response<pb::Signed>, Status> {
        match self.call(Rpc::Unmask, req).await? {
            Answer::Signed(s) => Ok(Response::new(s)),
            _ => Err(wrong_answer()),
        }
    }
    type PollChunksStream = Pieces;
    /// [`Coordinator::poll`], the answer cut into pieces as the honest
    /// coordinator sends it (the script answers with whole envelopes).
    async fn poll_chunks(&self, req: Request<pb::Signed>) -> Result<Response<Pieces>, Status> {
        let answer = self.poll(req).await?;
        Ok(Response::new(self.pieces(Rpc::Poll, answer.get_ref())))
    }
    type UnmaskChunksStream = Pieces;
    /// [`Coordinator::unmask`], the answer cut into pieces.
    async fn unmask_chunks(&self, req: Request<pb::Signed>) -> Result<Response<Pieces>, Status> {
        let answer = self.unmask(req).await?;
        Ok(Response::new(self.pieces(Rpc::Unmask, answer.get_ref())))
    }
    type OutcomeChunksStream = Pieces;
    /// A published outcome, answered from [`Adversary::published`] (as a
    /// test may have rewritten it), cut into pieces.
    async fn outcome_chunks(&self, req: Request<pb::Signed>) -> Result<Response<Pieces>, Status> {
        match self.call(Rpc::FetchOutcome, req).await? {
            Answer::Signed(s) => Ok(Response::new(self.pieces(Rpc::FetchOutcome, &s))),
            _ => Err(wrong_answer()),
        }
    }
    async fn leave(&self, req: Request<pb::Signed>) -> Result<Response<pb::LeaveAck>, Status> {
        match self.call(Rpc::Leave, req).await? {
            Answer::LeaveAck => Ok(Response::new(pb::LeaveAck {})),
            _ => Err(wrong_answer()),
        }
    }
    /// The suite's members run one job each (`fedcredit_participant::run`)
    /// and never ask for an offer.
    async fn offer(&self, _: Request<pb::OfferRequest>) -> Result<Response<pb::Signed>, Status> {
        Err(Status::unimplemented(
            "the scripted adversary offers no job",
        ))
    }
}

/// How the unmask phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Unmask (with the real `Unmasker`) over each revealer's survivor list
    /// and answer it with the coordinator-signed outcome.
    Complete,
    /// Take the revealed shares, then answer every revealer with an abort.
    Abort,
}

/// One dealer's phase-2 message, as it signed it.
#[derive(Clone, Debug)]
pub struct Dealing {
    /// Its signed commitments (to its self-mask seed and every dealt share).
    pub dealt: Dealt,
    /// Its ciphertexts by recipient id.
    pub ciphertexts: BTreeMap<String, Vec<u8>>,
    /// The signed `EncryptedShares` message (what the coordinator relays).
    pub signed: pb::Signed,
}

/// Everything one round attempt recorded: what honest participants (and
/// colluders) sent, and what each was shown. Keyed by member id.
#[derive(Debug)]
pub struct AttemptRecord {
    /// The round.
    pub round: u64,
    /// The attempt.
    pub attempt: u32,
    /// The announcement as sent (unsigned form).
    pub announcement: pb::RoundAnnouncement,
    /// The coordinator-signed announcement (the first one, if the attempt
    /// was announced differently to different members).
    pub signed_announcement: pb::Signed,
    /// The signed announcement each member was sent (queued for it).
    pub announced: BTreeMap<String, pb::Signed>,
    /// Members whose poll was actually answered with this attempt's
    /// announcement: an attack counts as mounted only for them.
    pub delivered: BTreeSet<String>,
    /// Phase 1: signed adverts and their keys.
    pub adverts: BTreeMap<String, (pb::Signed, Advertisement)>,
    /// Phase 2: each dealer's signed commitments and ciphertexts.
    pub shares: BTreeMap<String, Dealing>,
    /// Phase 2 answer: the dealers whose messages each sender was relayed.
    pub relayed: BTreeMap<String, Vec<String>>,
    /// Phase 3: masked inputs as words.
    pub masked: BTreeMap<String, Vec<u64>>,
    /// Phase 3 answer: the survivor list each sender was shown.
    pub shown: BTreeMap<String, Vec<String>>,
    /// Phase 4: every signed confirmation, with its signer and list.
    pub confirmations: Vec<(String, Vec<String>, pb::Signed)>,
    /// Phase 5: revealed shares by revealer.
    pub reveals: BTreeMap<String, pb::UnmaskShares>,
    /// Phase 5: reveals the adversary's own unmasking refused (revealer ->
    /// why), as the coordinator refuses them: a share that fails its
    /// dealer's commitment is attributed to its revealer.
    pub refused_reveals: BTreeMap<String, String>,
    /// Epoch setup: each dealer's signed `EpochShares` message.
    pub epoch_dealt: BTreeMap<String, pb::Signed>,
    /// A slot round's reveals by revealer.
    pub slot_reveals: BTreeMap<String, pb::SlotReveal>,
    /// Members that gave up, and in which phase.
    pub gave_up: BTreeMap<String, Rpc>,
    /// Every signed participant message of this attempt, in arrival order.
    pub messages: Vec<pb::Signed>,
}

impl AttemptRecord {
    /// The codec the announcement asked for.
    pub fn codec(&self) -> Codec {
        let spec = self.announcement.fixed_point.unwrap_or_default();
        Codec::from_pb(&spec, self.announcement.limbs)
            .unwrap_or_else(|e| panic!("the script announced an invalid codec: {e}"))
    }

    /// The task the announcement asked for.
    pub fn task(&self) -> Option<&round_announcement::Task> {
        self.announcement.task.as_ref()
    }

    /// Every distinct signed announcement of this attempt, the first first
    /// (more than one if the adversary equivocated).
    pub fn announcements(&self) -> Vec<&pb::Signed> {
        let mut out = vec![&self.signed_announcement];
        for s in self.announced.values() {
            if !out.iter().any(|o| o.payload == s.payload) {
                out.push(s);
            }
        }
        out
    }

    /// The signed announcement `id` was sent (the first one if none).
    pub fn announcement_of(&self, id: &str) -> &pb::Signed {
        self.announced.get(id).unwrap_or(&self.signed_announcement)
    }

    fn new(
        round: u64,
        attempt: u32,
        announcement: pb::RoundAnnouncement,
        signed: pb::Signed,
    ) -> Self {
        Self {
            round,
            attempt,
            announcement,
            signed_announcement: signed,
            announced: BTreeMap::new(),
            delivered: BTreeSet::new(),
            adverts: BTreeMap::new(),
            shares: BTreeMap::new(),
            relayed: BTreeMap::new(),
            masked: BTreeMap::new(),
            shown: BTreeMap::new(),
            confirmations: Vec::new(),
            reveals: BTreeMap::new(),
            refused_reveals: BTreeMap::new(),
            epoch_dealt: BTreeMap::new(),
            slot_reveals: BTreeMap::new(),
            gave_up: BTreeMap::new(),
            messages: Vec::new(),
        }
    }
}

/// The scripted dishonest coordinator (see the module docs).
#[derive(Debug)]
pub struct Adversary {
    consortium: Consortium,
    key: IdentityKey,
    url: String,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    /// Long polls waiting for an answer: id -> reply.
    polls: BTreeMap<String, Reply>,
    /// Participants whose `run` returned, with its error.
    pub ended: BTreeMap<String, Option<String>>,
    /// Leave messages: (id, reason).
    pub leaves: Vec<(String, String)>,
    /// Calls refused because no phase expected them (for diagnostics).
    pub refused: Vec<String>,
    /// Every call received and every announcement delivered, in order.
    pub trace: Vec<String>,
    /// The announcement still owed to each member that has not polled yet.
    pending: BTreeMap<String, pb::Signed>,
    /// Every attempt announced, in order.
    pub attempts: Vec<AttemptRecord>,
    /// Members played by the adversary.
    pub colluders: Vec<Colluder>,
    /// The signed outcomes of the rounds completed so far, in order (what
    /// [`Adversary::announcement`] lists the digests of, and a member that
    /// lacks one fetches; a test may rewrite it to lie about the job's
    /// history).
    pub published: Vec<pb::Signed>,
    /// The last epoch the adversary set up, as the coordinator holds it.
    epoch_view: Option<fedcredit_crypto::secagg::epoch::EpochView>,
    /// How chunked answers are broken, if at all (shared with the service).
    tamper: Arc<std::sync::Mutex<Option<(Rpc, PieceTamper)>>>,
    _stop: oneshot::Sender<()>,
}

impl Adversary {
    /// Binds `127.0.0.1:0`, serves the `Coordinator` service on it, and
    /// returns the driver. `consortium` is the adversary's copy (roster and
    /// job); `key` is the coordinator's identity key.
    pub async fn start(consortium: Consortium, key: IdentityKey) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let (tx, rx) = mpsc::unbounded_channel();
        let tamper = Arc::default();
        let service = Service {
            roster: Arc::new(consortium.roster.clone()),
            tx: tx.clone(),
            piece_bytes: PIECE_BYTES,
            tamper: Arc::clone(&tamper),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(
                CoordinatorServer::new(service)
                    .max_decoding_message_size(1 << 30)
                    .max_encoding_message_size(1 << 30),
            )
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move {
                    let _ = stopped.await;
                },
            );
        tokio::spawn(server);
        Self {
            consortium,
            key,
            url: format!("http://{addr}"),
            tx,
            rx,
            polls: BTreeMap::new(),
            ended: BTreeMap::new(),
            leaves: Vec::new(),
            published: Vec::new(),
            refused: Vec::new(),
            trace: Vec::new(),
            pending: BTreeMap::new(),
            attempts: Vec::new(),
            colluders: Vec::new(),
            epoch_view: None,
            tamper,
            _stop: stop,
        }
    }

    /// The survivor list the current attempt showed its first sender (what
    /// [`Adversary::run_phases`] has colluders reveal for).
    pub fn current_shown(&mut self) -> Option<Vec<String>> {
        self.current().shown.values().next().cloned()
    }

    /// From now on every chunked answer to the RPC named (`Rpc::Poll` or
    /// `Rpc::Unmask`) is broken as `tamper` says; `None` sends all whole
    /// again. The answer is cut when the service hands it out, after the
    /// script answered: set this before the phase whose answers it breaks.
    pub fn tamper_pieces(&self, tamper: Option<(Rpc, PieceTamper)>) {
        if let Ok(mut t) = self.tamper.lock() {
            *t = tamper;
        }
    }

    /// One line per attempt: who advertised, shared, masked, was shown
    /// what, confirmed, revealed and gave up (for failure messages).
    pub fn summary(&self) -> String {
        let mut out = format!(
            "trace {:?}\nrefused calls {:?}; ended {:?}\n",
            self.trace, self.refused, self.ended
        );
        for a in &self.attempts {
            let keys = |m: Vec<&String>| m.into_iter().cloned().collect::<Vec<_>>().join(",");
            out.push_str(&format!(
                "round {} attempt {}: adverts [{}] shares [{}] masked [{}] shown {:?} confirmed {:?} reveals [{}] gave up {:?}; leaves {:?}\n",
                a.round,
                a.attempt,
                keys(a.adverts.keys().collect()),
                keys(a.shares.keys().collect()),
                keys(a.masked.keys().collect()),
                a.shown,
                a.confirmations.iter().map(|c| (&c.0, &c.1)).collect::<Vec<_>>(),
                keys(a.reveals.keys().collect()),
                a.gave_up,
                self.leaves,
            ));
        }
        out
    }

    /// The URL participants dial.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The adversary's copy of the consortium.
    pub fn consortium(&self) -> &Consortium {
        &self.consortium
    }

    /// A callback an honest participant's task calls when its `run` returns.
    pub fn ended_notifier(&self, id: &str) -> impl FnOnce(Option<String>) + Send + 'static {
        let (tx, id) = (self.tx.clone(), id.to_owned());
        move |error| {
            let _ = tx.send(Event::Ended { id, error });
        }
    }

    /// Lets the adversary play member `colluder.id` from now on.
    pub fn add_colluder(&mut self, colluder: Colluder) {
        self.colluders.push(colluder);
    }

    /// Takes the queued events after participants were stopped, and forgets
    /// that `ids` ended (they are about to be restarted).
    pub fn restarted(&mut self, ids: &[String]) {
        while let Ok(event) = self.rx.try_recv() {
            self.background(event);
        }
        for id in ids {
            self.ended.remove(id);
            self.polls.remove(id);
        }
        self.pending.clear();
    }

    /// The announcement the honest coordinator would send for a round of
    /// this job with `task`, `dimension` and `codec`: the consortium's
    /// members, thresholds and job hash.
    pub fn announcement(
        &self,
        task: round_announcement::Task,
        dimension: usize,
        codec: Codec,
    ) -> pb::RoundAnnouncement {
        let c = &self.consortium;
        let (fixed_point, limbs) = codec.to_pb();
        pb::RoundAnnouncement {
            members: c.roster.members().map(|m| m.id.to_string()).collect(),
            threshold: c.protocol.thresholds.threshold() as u32,
            min_cohort: c.protocol.thresholds.min_cohort() as u32,
            max_colluders: c.protocol.thresholds.max_colluders() as u32,
            neighbours: c.protocol.graph_fields().0,
            share_threshold: c.protocol.graph_fields().1,
            epoch_slots: c.protocol.epoch_slots_field(),
            epoch: Default::default(),
            slot: 0,
            dimension: dimension as u64,
            fixed_point: Some(fixed_point),
            job_spec_hash: c.job.hash().to_vec().into(),
            limbs,
            departed: Vec::new(),
            task: Some(task),
            previous_outcome_digests: self
                .published
                .iter()
                .map(|o| outcome_digest(&o.payload).to_vec().into())
                .collect(),
        }
    }

    /// The announcement of the consortium's secure-sum job, exactly as the
    /// job spec says.
    pub fn secure_sum_announcement(&self) -> pb::RoundAnnouncement {
        let JobKind::SecureSum {
            dimension,
            frac_bits,
            clip,
            ..
        } = self.consortium.job.kind
        else {
            panic!("the consortium's job is not a secure sum");
        };
        let fp = fedcredit_crypto::fixed_point::FixedPoint::new(frac_bits, clip)
            .unwrap_or_else(|e| panic!("job codec: {e}"));
        self.announcement(
            round_announcement::Task::SecureSum(pb::SecureSumTask { index: 0 }),
            dimension,
            Codec::Narrow(fp),
        )
    }

    /// Signs `announcement` for (round, attempt), opens a new attempt record
    /// and answers the next poll of each member of `to` with it.
    pub async fn announce(
        &mut self,
        round: u64,
        attempt: u32,
        announcement: pb::RoundAnnouncement,
        to: &[String],
    ) {
        self.announce_split(round, attempt, vec![(announcement, to.to_vec())])
            .await;
    }

    /// Equivocation: signs each announcement of `groups` for the same
    /// (round, attempt) and sends it to its group; one attempt record (its
    /// `announcement` is the first group's, `announced` says who got which).
    pub async fn announce_split(
        &mut self,
        round: u64,
        attempt: u32,
        groups: Vec<(pb::RoundAnnouncement, Vec<String>)>,
    ) {
        let sign = |announcement: &pb::RoundAnnouncement| {
            envelope::seal_coordinator(
                &self.key,
                &pb::CoordinatorMessage {
                    job_id: self.consortium.job.id.clone(),
                    round,
                    attempt,
                    body: Some(coordinator_message::Body::Announce(announcement.clone())),
                },
            )
        };
        let signed: Vec<(pb::Signed, Vec<String>)> =
            groups.iter().map(|(a, to)| (sign(a), to.clone())).collect();
        let (first, first_signed) = match (groups.into_iter().next(), signed.first()) {
            (Some((a, _)), Some((s, _))) => (a, s.clone()),
            _ => panic!("announce_split with no group"),
        };
        self.attempts
            .push(AttemptRecord::new(round, attempt, first, first_signed));
        self.pending.clear();
        for (s, to) in signed {
            self.deliver(&s, &to).await;
        }
    }

    /// Re-sends an already signed coordinator message (e.g. an old
    /// announcement) to the next poll of each member of `to`, recording a
    /// new attempt under the (round, attempt) the message carries.
    pub async fn replay(&mut self, signed: pb::Signed, to: &[String]) {
        let (message, _) = envelope::open_coordinator(&signed, &self.key.public())
            .unwrap_or_else(|e| panic!("replaying a message the adversary did not sign: {e}"));
        let Some(coordinator_message::Body::Announce(announcement)) = message.body else {
            panic!("only announcements are replayed");
        };
        self.attempts.push(AttemptRecord::new(
            message.round,
            message.attempt,
            announcement,
            signed.clone(),
        ));
        self.pending.clear();
        self.deliver(&signed, to).await;
    }

    /// Answers the parked polls of `to` with `signed` now, and the next
    /// poll of each of the others as it arrives (while the phases run: a
    /// member that is slow to poll must not miss the attempt).
    async fn deliver(&mut self, signed: &pb::Signed, to: &[String]) {
        for id in to {
            if self.ended.contains_key(id) {
                continue;
            }
            self.current().announced.insert(id.clone(), signed.clone());
            if let Some(reply) = self.polls.remove(id)
                && reply.send(Ok(Answer::Signed(signed.clone()))).is_ok()
            {
                self.current().delivered.insert(id.clone());
                self.trace.push(format!("delivered to {id}"));
            } else {
                self.pending.insert(id.clone(), signed.clone());
            }
        }
    }

    /// Handles the next event; returns it if it is a round-phase call
    /// (`None`: a background event, handled).
    async fn next_event(&mut self) -> Option<Call> {
        // The adversary holds a sender itself, so the channel never closes.
        let event = self.rx.recv().await?;
        self.background(event)
    }

    /// Polls are parked, leaves acknowledged, ends noted; a round-phase call is returned.
    fn background(&mut self, event: Event) -> Option<Call> {
        if let Event::Call(c) = &event {
            self.trace.push(format!(
                "{:?} {} r{}a{}",
                c.rpc, c.message.sender, c.message.round, c.message.attempt
            ));
        }
        match event {
            Event::Ended { id, error } => {
                self.polls.remove(&id);
                self.ended.insert(id, error);
                None
            }
            Event::Call(call) if call.rpc == Rpc::Poll => {
                let id = call.message.sender.clone();
                match self.pending.remove(&id) {
                    Some(signed) => {
                        if call.reply.send(Ok(Answer::Signed(signed))).is_ok() {
                            self.current().delivered.insert(id.clone());
                            self.trace.push(format!("delivered to {id}"));
                        }
                    }
                    None => {
                        self.polls.insert(id, call.reply);
                    }
                }
                None
            }
            Event::Call(call) if call.rpc == Rpc::FetchOutcome => {
                let round = call.message.round;
                let answer = usize::try_from(round)
                    .ok()
                    .and_then(|r| self.published.get(r))
                    .map(|o| Answer::Signed(o.clone()))
                    .ok_or_else(|| Status::not_found(format!("round {round} is not published")));
                let _ = call.reply.send(answer);
                None
            }
            Event::Call(call) if call.rpc == Rpc::Leave => {
                let reason = match &call.message.body {
                    Some(Body::Leave(l)) => pb::ReasonCode::label_of(l.code).to_owned(),
                    _ => String::new(),
                };
                self.leaves.push((call.message.sender.clone(), reason));
                let _ = call.reply.send(Ok(Answer::LeaveAck));
                None
            }
            Event::Call(call) => Some(call),
        }
    }

    fn gone(&self, id: &str) -> bool {
        self.polls.contains_key(id)
            || self.ended.contains_key(id)
            || self.leaves.iter().any(|(l, _)| l == id)
    }

    fn current(&mut self) -> &mut AttemptRecord {
        self.attempts
            .last_mut()
            .unwrap_or_else(|| panic!("no attempt announced"))
    }

    /// Waits until each member of `cohort` sent its `rpc` message for the
    /// current attempt or gave up; other calls are refused.
    async fn collect(&mut self, rpc: Rpc, cohort: &[String]) -> Vec<(String, Call)> {
        let (round, attempt) = {
            let a = self.current();
            (a.round, a.attempt)
        };
        let mut got: BTreeMap<String, Call> = BTreeMap::new();
        loop {
            let waiting: Vec<&String> = cohort
                .iter()
                .filter(|id| !got.contains_key(*id) && !self.gone(id))
                .collect();
            if waiting.is_empty() {
                break;
            }
            let Some(call) = self.next_event().await else {
                continue;
            };
            let from = call.message.sender.clone();
            if call.rpc != rpc
                || !cohort.contains(&from)
                || got.contains_key(&from)
                || call.message.round != round
                || call.message.attempt != attempt
            {
                self.refuse(call, "not expected in this phase");
                continue;
            }
            self.current().messages.push(call.signed.clone());
            got.insert(from, call);
        }
        let gave_up: Vec<String> = cohort
            .iter()
            .filter(|id| !got.contains_key(*id))
            .cloned()
            .collect();
        for id in gave_up {
            self.current().gave_up.entry(id).or_insert(rpc);
        }
        got.into_iter().collect()
    }

    fn binding_session(&self, cohort: &BTreeMap<PartyIndex, Advertisement>) -> SessionId {
        let a = self
            .attempts
            .last()
            .unwrap_or_else(|| panic!("no attempt announced"));
        let spec_hash = self.consortium.job.hash();
        let announcement = secagg::announcement_digest(&a.signed_announcement.payload);
        let binding = SessionBinding {
            job_id: &self.consortium.job.id,
            job_spec_hash: &spec_hash,
            announcement: &announcement,
            round: a.round,
            attempt: a.attempt,
            thresholds: self.consortium.protocol.thresholds,
        };
        secagg::session_id(&binding, cohort)
    }

    /// Phase 1: collects adverts from `cohort` (and the colluders), then
    /// answers every honest sender with all of them. Returns who advertised.
    pub async fn advertise(&mut self, cohort: &[String]) -> Vec<String> {
        let calls = self.collect(Rpc::AdvertiseKeys, cohort).await;
        let (round, attempt) = (self.current().round, self.current().attempt);
        let mut adverts = BTreeMap::new();
        for (id, call) in &calls {
            let Some(Body::Advertise(k)) = &call.message.body else {
                continue;
            };
            adverts.insert(id.clone(), (call.signed.clone(), advertisement(k)));
        }
        let job = self.consortium.job.id.clone();
        let thresholds = self.consortium.protocol.thresholds;
        for c in &mut self.colluders {
            let signed = c.advertise(&job, round, attempt, thresholds);
            adverts.insert(c.id.clone(), (signed, c.advertisement()));
        }
        let reply = pb::AdvertisedKeys {
            adverts: adverts.values().map(|(s, _)| s.clone()).collect(),
        };
        for (_, call) in calls {
            let _ = call.reply.send(Ok(Answer::Adverts(reply.clone())));
        }
        let who = adverts.keys().cloned().collect();
        self.current().adverts = adverts;
        who
    }

    fn cohort_keys(&self) -> BTreeMap<PartyIndex, Advertisement> {
        let a = self
            .attempts
            .last()
            .unwrap_or_else(|| panic!("no attempt announced"));
        a.adverts
            .iter()
            .map(|(id, (_, ad))| (self.index(id), *ad))
            .collect()
    }

    /// The roster index of `id`.
    pub fn index(&self, id: &str) -> PartyIndex {
        self.consortium
            .roster
            .member(id)
            .unwrap_or_else(|e| panic!("{e}"))
            .index
    }

    /// Phase 2: collects encrypted shares from everyone who advertised and
    /// relays to each sender every other dealer's signed message (its
    /// ciphertexts and signed commitments), as the honest coordinator does.
    pub async fn share_keys(&mut self) -> Vec<String> {
        self.share_keys_relaying(|_, _| true).await
    }

    /// Phase 2 with the relay chosen by the script: `relay(viewer, dealer)`
    /// says whether `dealer`'s signed message is relayed to `viewer`.
    pub async fn share_keys_relaying(&mut self, relay: impl Fn(&str, &str) -> bool) -> Vec<String> {
        let honest: Vec<String> = self
            .attempts
            .last()
            .map(|a| a.adverts.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|id| !self.colluders.iter().any(|c| &c.id == id))
            .collect();
        let calls = self.collect(Rpc::ShareKeys, &honest).await;
        let roster = self.consortium.roster.clone();
        let mut shares = BTreeMap::new();
        for (id, call) in &calls {
            let Some(Body::Shares(m)) = &call.message.body else {
                continue;
            };
            shares.insert(id.clone(), dealing(&roster, id, m, call.signed.clone()));
        }
        let cohort = self.cohort_keys();
        let session = self.binding_session(&cohort);
        let (round, attempt) = (self.current().round, self.current().attempt);
        let job = self.consortium.job.id.clone();
        for c in &mut self.colluders {
            let m = c.share_keys(&roster, session, cohort.clone());
            let signed = c.sealed(&job, round, attempt, Some(Body::Shares(m.clone())));
            shares.insert(c.id.clone(), dealing(&roster, &c.id, &m, signed));
        }
        let mut relayed = BTreeMap::new();
        for (id, call) in calls {
            let dealers: Vec<String> = shares
                .keys()
                .filter(|from| **from != id && relay(&id, from))
                .cloned()
                .collect();
            let dealt = dealers.iter().map(|d| shares[d].signed.clone()).collect();
            relayed.insert(id, dealers);
            let _ = call
                .reply
                .send(Ok(Answer::Shares(pb::SharesForYou { dealt })));
        }
        let who = shares.keys().cloned().collect();
        self.current().shares = shares;
        self.current().relayed = relayed;
        who
    }

    /// Phase 3: collects masked inputs from everyone who sent shares (the
    /// colluders mask theirs), then answers each honest sender with the
    /// survivor list `survivors(viewer, senders)` chooses for it.
    pub async fn masked_input(
        &mut self,
        survivors: impl Fn(&str, &[String]) -> Vec<String>,
    ) -> Vec<String> {
        let honest: Vec<String> = self
            .attempts
            .last()
            .map(|a| a.shares.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|id| !self.colluders.iter().any(|c| &c.id == id))
            .collect();
        let calls = self.collect(Rpc::SubmitMaskedInput, &honest).await;
        let mut masked = BTreeMap::new();
        for (id, call) in &calls {
            let Some(Body::MaskedInput(m)) = &call.message.body else {
                continue;
            };
            let w = words::from_bytes("masked input", &m.values)
                .unwrap_or_else(|e| panic!("{id} sent a bad masked input: {e}"));
            masked.insert(id.clone(), w);
        }
        let codec = self.current().codec();
        let dimension = self.current().announcement.dimension as usize;
        let n = self.consortium.roster.len();
        let shares = self.current().shares.clone();
        let roster = self.consortium.roster.clone();
        for c in &mut self.colluders {
            let me = roster.member(&c.id).unwrap_or_else(|e| panic!("{e}")).index;
            let from_peers: Vec<DealtToMe> = shares
                .iter()
                .filter(|(from, _)| **from != c.id)
                .filter_map(|(from, d)| {
                    Some(DealtToMe {
                        from: roster.member(from).ok()?.index,
                        ciphertext: d.ciphertexts.get(&c.id)?.clone(),
                        commitment: *d.dealt.shares.get(&me)?,
                    })
                })
                .collect();
            let encoded = codec
                .encode(&c.input(dimension), n)
                .unwrap_or_else(|e| panic!("colluder input: {e}"));
            masked.insert(
                c.id.clone(),
                c.masked_input(codec.ring(), &encoded, from_peers),
            );
        }
        let senders: Vec<String> = masked.keys().cloned().collect();
        for (id, call) in calls {
            let list = survivors(&id, &senders);
            self.current().shown.insert(id.clone(), list.clone());
            let _ = call
                .reply
                .send(Ok(Answer::Survivors(pb::Survivors { survivors: list })));
        }
        self.current().masked = masked;
        senders
    }

    /// Phase 4: collects the honest survivors' signed lists; each colluder
    /// signs every distinct list shown to anyone. Each honest sender is
    /// answered with `relay(viewer, all confirmations)`; use
    /// [`same_list`] for what an honest coordinator relays.
    pub async fn confirm(
        &mut self,
        relay: impl Fn(&str, &[(String, Vec<String>, pb::Signed)]) -> Vec<pb::Signed>,
    ) -> Vec<String> {
        let honest: Vec<String> = self.current().shown.keys().cloned().collect();
        let calls = self.collect(Rpc::ConfirmSurvivors, &honest).await;
        let lists: BTreeSet<Vec<String>> = self.current().shown.values().cloned().collect();
        let roster = self.consortium.roster.clone();
        let digest_of = |list: &[String]| {
            let set = roster
                .indices("survivor list", list)
                .expect("shown lists name members");
            secagg::SurvivorDigest::of(&set)
        };
        let mut confirmations = Vec::new();
        for (id, call) in &calls {
            let Some(Body::Consistency(c)) = &call.message.body else {
                continue;
            };
            // Confirmations carry the list's digest: name the shown list it is.
            let list = lists
                .iter()
                .find(|l| digest_of(l).as_bytes().as_slice() == c.survivors_digest.as_ref())
                .cloned()
                .unwrap_or_else(|| vec!["<a list nobody was shown>".to_owned()]);
            confirmations.push((id.clone(), list, call.signed.clone()));
        }
        let (round, attempt) = (self.current().round, self.current().attempt);
        let job = self.consortium.job.id.clone();
        for c in &self.colluders {
            for list in lists.iter().filter(|l| l.contains(&c.id)) {
                let signed = c.sealed(
                    &job,
                    round,
                    attempt,
                    Some(Body::Consistency(pb::SurvivorList {
                        session_id: c.session().as_bytes().to_vec().into(),
                        survivors_digest: digest_of(list).as_bytes().to_vec().into(),
                    })),
                );
                confirmations.push((c.id.clone(), list.clone(), signed));
            }
        }
        for (id, call) in calls {
            let relayed = relay(&id, &confirmations);
            let _ = call
                .reply
                .send(Ok(Answer::Confirmations(pb::SurvivorSignatures {
                    confirmations: relayed,
                })));
        }
        let who = confirmations.iter().map(|c| c.0.clone()).collect();
        self.current().confirmations = confirmations;
        who
    }

    /// Phase 5: collects revealed shares from the honest members who
    /// confirmed, adds each colluder's reveal for the list `reveal_for`
    /// names (None: no colluder reveal), and ends as `end` says. With
    /// [`End::Complete`] each revealer gets the outcome over its own list,
    /// unmasked by [`crate::knowledge::unmask_attributed`] as the
    /// coordinator would (reveals with a share that fails its dealer's
    /// commitment are refused and recorded in `refused_reveals`); an
    /// unmasking that fails aborts that revealer's call. Returns the
    /// unmasking results by list.
    #[allow(clippy::type_complexity)]
    pub async fn unmask(
        &mut self,
        colluder_reveal: Option<&[String]>,
        tamper: impl Fn(&mut pb::UnmaskShares),
        end: End,
    ) -> BTreeMap<Vec<String>, Result<Vec<u64>, String>> {
        let honest: Vec<String> = {
            let a = self.current();
            let mut signers: BTreeSet<String> = BTreeSet::new();
            for (id, _, _) in &a.confirmations {
                signers.insert(id.clone());
            }
            a.shown
                .keys()
                .filter(|id| signers.contains(*id))
                .cloned()
                .collect()
        };
        let calls = self.collect(Rpc::Unmask, &honest).await;
        for (id, call) in &calls {
            if let Some(Body::Unmask(u)) = &call.message.body {
                self.current().reveals.insert(id.clone(), u.clone());
            }
        }
        if let Some(list) = colluder_reveal {
            let (round, attempt) = (self.current().round, self.current().attempt);
            let job = self.consortium.job.id.clone();
            let u2: Vec<String> = crate::knowledge::u2_of(self.current(), list)
                .into_iter()
                .collect();
            let mut reveals = Vec::new();
            for c in &self.colluders {
                let mut u = c.reveal(&u2, list);
                tamper(&mut u);
                let signed = c.sealed(&job, round, attempt, Some(Body::Unmask(u.clone())));
                reveals.push((c.id.clone(), u, signed));
            }
            for (id, u, signed) in reveals {
                self.current().messages.push(signed);
                self.current().reveals.insert(id, u);
            }
        }
        let mut results: BTreeMap<Vec<String>, Result<Vec<u64>, String>> = BTreeMap::new();
        let index = self.attempts.len() - 1;
        for (id, call) in calls {
            let list = self.current().shown.get(&id).cloned().unwrap_or_default();
            if !results.contains_key(&list) {
                // As the coordinator's Unmasking phase: each reveal through
                // `Unmasker::accept`, a bad share excluding its revealer.
                let announcement = self.current().announcement_of(&id).clone();
                let r =
                    crate::knowledge::unmask_attributed(self, index, &announcement, &list, false);
                let r = r.map(|(sum, refused)| {
                    self.current().refused_reveals.extend(refused);
                    sum
                });
                results.insert(list.clone(), r);
            }
            let result = results[&list].clone();
            let answer = match (end, result) {
                (End::Complete, Ok(sum)) => {
                    let signed = self.outcome(&sum, &list);
                    // One outcome per attempt is the round's published result.
                    let round = self.current().round;
                    if self.published.len() as u64 == round {
                        self.published.push(signed.clone());
                    }
                    Ok(Answer::Signed(signed))
                }
                (End::Complete, Err(e)) => Err(Status::aborted(format!("unmasking failed: {e}"))),
                (End::Abort, _) => Err(Status::aborted("the round attempt is aborted")),
            };
            let _ = call.reply.send(answer);
        }
        results
    }

    fn outcome(&self, sum: &[u64], contributors: &[String]) -> pb::Signed {
        let a = self
            .attempts
            .last()
            .unwrap_or_else(|| panic!("no attempt announced"));
        envelope::seal_coordinator(
            &self.key,
            &pb::CoordinatorMessage {
                job_id: self.consortium.job.id.clone(),
                round: a.round,
                attempt: a.attempt,
                body: Some(coordinator_message::Body::Outcome(pb::RoundOutcome {
                    sum: words::to_bytes(sum).into(),
                    contributors: contributors.to_vec(),
                })),
            },
        )
    }

    /// Runs a whole attempt the way an honest coordinator would, except for
    /// the cohort: `to` gets the announcement, every sender is shown the list
    /// of all masked-input senders minus `drop`, and it ends with `end`.
    pub async fn run_attempt(
        &mut self,
        round: u64,
        attempt: u32,
        announcement: pb::RoundAnnouncement,
        to: &[String],
        drop: &[String],
        end: End,
    ) -> BTreeMap<Vec<String>, Result<Vec<u64>, String>> {
        self.announce(round, attempt, announcement, to).await;
        self.run_phases(to, drop, end).await
    }

    /// The five phases of the current attempt, as in
    /// [`Adversary::run_attempt`], with `cohort` expected to advertise.
    pub async fn run_phases(
        &mut self,
        cohort: &[String],
        drop: &[String],
        end: End,
    ) -> BTreeMap<Vec<String>, Result<Vec<u64>, String>> {
        self.advertise(cohort).await;
        self.share_keys().await;
        self.masked_input(|_, senders| {
            senders
                .iter()
                .filter(|s| !drop.contains(s))
                .cloned()
                .collect()
        })
        .await;
        self.confirm(same_list).await;
        let list: Option<Vec<String>> = self.current().shown.values().next().cloned();
        self.unmask(list.as_deref(), |_| {}, end).await
    }

    /// Ends the job: answers every poll with `JobFinished { ok: true }` (and
    /// refuses anything else) until each of `ids` has returned from `run`.
    /// Returns each one's error, if any.
    pub async fn finish(&mut self, ids: &[String]) -> BTreeMap<String, Option<String>> {
        self.end_job(ids, true, "").await
    }

    /// Ends the job as [`Adversary::finish`] does, declared a success or a
    /// failure (`reason`), listing the outcomes in `published` (and
    /// answering members' fetches of them) until every one of `ids` ends.
    pub async fn end_job(
        &mut self,
        ids: &[String],
        ok: bool,
        reason: &str,
    ) -> BTreeMap<String, Option<String>> {
        let message = pb::CoordinatorMessage {
            job_id: self.consortium.job.id.clone(),
            round: 0,
            attempt: 0,
            body: Some(coordinator_message::Body::Finished(pb::JobFinished {
                ok,
                reason: reason.to_owned(),
                outcome_digests: self
                    .published
                    .iter()
                    .map(|o| outcome_digest(&o.payload).to_vec().into())
                    .collect(),
                departed: Vec::new(),
            })),
        };
        let signed = envelope::seal_coordinator(&self.key, &message);
        self.pending.clear();
        loop {
            for (_, reply) in std::mem::take(&mut self.polls) {
                let _ = reply.send(Ok(Answer::Signed(signed.clone())));
            }
            if ids.iter().all(|id| self.ended.contains_key(id)) {
                break;
            }
            if let Some(call) = self.next_event().await {
                self.refuse(call, "the job is over");
            }
        }
        ids.iter()
            .map(|id| (id.clone(), self.ended.get(id).cloned().flatten()))
            .collect()
    }
}

/// What an honest coordinator relays in phase 4: every confirmation of the
/// list the viewer signed.
pub fn same_list(viewer: &str, all: &[(String, Vec<String>, pb::Signed)]) -> Vec<pb::Signed> {
    let mine = all
        .iter()
        .find(|(id, _, _)| id == viewer)
        .map(|c| c.1.clone());
    all.iter()
        .filter(|(_, list, _)| Some(list) == mine.as_ref())
        .map(|c| c.2.clone())
        .collect()
}

impl Adversary {
    fn refuse(&mut self, call: Call, why: &str) {
        let what = format!(
            "{:?} from {} for round {} attempt {} refused: {why}",
            call.rpc, call.message.sender, call.message.round, call.message.attempt
        );
        self.refused.push(what.clone());
        let _ = call.reply.send(Err(Status::failed_precondition(what)));
    }
}

/// A dealer's signed phase-2 message, decoded with the shared wire code.
fn dealing(roster: &Roster, id: &str, m: &pb::EncryptedShares, signed: pb::Signed) -> Dealing {
    let dealer = roster.member(id).unwrap_or_else(|e| panic!("{e}")).index;
    let DealtShares { dealt, ciphertexts } = DealtShares::from_pb(roster, dealer, m)
        .unwrap_or_else(|e| panic!("{id} sent a malformed shares message: {e}"));
    let ciphertexts = ciphertexts
        .into_iter()
        .map(|(to, ct)| {
            let to = roster
                .id_of(to)
                .map_or_else(|| to.to_string(), ToString::to_string);
            (to, ct.to_vec())
        })
        .collect();
    Dealing {
        dealt,
        ciphertexts,
        signed,
    }
}

fn advertisement(k: &pb::KeyAdvertisement) -> Advertisement {
    Advertisement {
        share_enc: AgreementPublic::from_bytes(&k.share_enc_public)
            .unwrap_or_else(|e| panic!("advert: {e}")),
        mask_agree: AgreementPublic::from_bytes(&k.mask_agree_public)
            .unwrap_or_else(|e| panic!("advert: {e}")),
    }
}
