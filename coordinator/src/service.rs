//! The gRPC face of the coordinator. Handlers verify the envelope against the
//! roster, convert the body to domain types once, and hand it to the actor;
//! they hold no round state.

use std::sync::Arc;

use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::admission::ChunkHeader;
use fedcredit_crypto::secagg::epoch::Slots;
use fedcredit_crypto::secagg::{Advertisement, PartyIndex, SurvivorDigest};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::envelope::{self, Opened};
use fedcredit_proto::epoch::{EpochDealtShares, reveal_from_pb};
use fedcredit_proto::roster::Roster;
use fedcredit_proto::shares::DealtShares;
use fedcredit_proto::v1::{self as pb, message::Body};
use fedcredit_proto::{WireError, chunks};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request as GrpcRequest, Response, Status};

use fedcredit_transport::Peer;

use crate::actor::Published;
use crate::error::Rejection;
use crate::freshness::Freshness;
use crate::requests::{At, Request, RoundMsg};
use crate::round::{InputAnswer, Piece, Reply};

/// The tonic service: verifies and forwards.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    roster: Arc<Roster>,
    job_id: Arc<str>,
    tx: mpsc::Sender<Request>,
    /// Members whose key did not verify a message, already logged (once
    /// each: the set is bounded by the roster).
    bad_keys: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// Connections are mutual TLS: every message must come from the member
    /// whose certificate the connection presented.
    authenticated: bool,
    /// Polls seen recently (replays are refused).
    freshness: Arc<Freshness>,
    /// How long a masked-input stream may go without its next chunk: by
    /// then its phase has closed without it, so the call ends.
    chunk_wait: std::time::Duration,
    /// The coordinator-signed offer of this job (answered to `Offer`).
    offer: Arc<pb::Signed>,
    /// The slots of an epoch (`consortium.protocol.epoch_slots`), to decode
    /// `EpochShares`; `None`: the job sets up every attempt on its own.
    epoch_slots: Option<Slots>,
    /// The largest unary answer the server encodes ([`crate::max_reply_bytes`]).
    max_reply: usize,
    /// The published outcomes (`OutcomeChunks`), shared with the actor.
    published: Published,
}

/// How long a poll is held waiting for an announcement.
pub(crate) const POLL_HOLD: std::time::Duration = std::time::Duration::from_secs(60);

/// A signed answer in pieces (`PollChunks`, `UnmaskChunks`): views into the
/// one payload the actor holds, encoded one piece at a time as the
/// connection takes them, so n members cost n pieces in flight, not n
/// encodings of the whole answer.
type Pieces = tokio_stream::Iter<std::vec::IntoIter<Result<pb::SignedChunk, Status>>>;

fn pieces(signed: &pb::Signed) -> Pieces {
    tokio_stream::iter(
        chunks::cut(signed, chunks::MAX_PIECE_BYTES)
            .into_iter()
            .map(Ok)
            .collect::<Vec<_>>(),
    )
}

/// The connection's peer (set by the transport on every request) and the envelope.
fn unpack(req: GrpcRequest<pb::Signed>) -> (Option<Peer>, pb::Signed) {
    let peer = req.extensions().get::<Peer>().cloned();
    (peer, req.into_inner())
}

impl Service {
    pub fn new(
        roster: Arc<Roster>,
        job_id: &str,
        tx: mpsc::Sender<Request>,
        authenticated: bool,
        chunk_wait: std::time::Duration,
        offer: pb::Signed,
        epoch_slots: Option<Slots>,
    ) -> Self {
        Self {
            roster,
            job_id: job_id.into(),
            tx,
            bad_keys: Arc::default(),
            authenticated,
            freshness: Arc::default(),
            chunk_wait,
            offer: Arc::new(offer),
            epoch_slots,
            max_reply: usize::MAX,
            published: Published::default(),
        }
    }

    /// Answer `OutcomeChunks` from `published` (the actor's outcomes).
    pub(crate) fn published(mut self, published: Published) -> Self {
        self.published = published;
        self
    }

    /// Refuse, by name, a unary answer larger than `bytes` (the server's
    /// encoding limit) rather than leave tonic to fail it on the wire.
    pub fn max_reply(mut self, bytes: usize) -> Self {
        self.max_reply = bytes;
        self
    }

    /// Opens the envelope, checks that the connection's member sent it
    /// (mutual TLS), and checks the job.
    fn open<'a>(
        &'a self,
        peer: Option<&Peer>,
        signed: &pb::Signed,
    ) -> Result<Opened<'a>, Rejection> {
        let opened = envelope::open(signed, &self.roster).inspect_err(|e| {
            // A member whose key file does not match its roster entry can
            // sign nothing the coordinator may trust: say so, once per id.
            if let WireError::BadSignature { who } = e
                && self
                    .bad_keys
                    .lock()
                    .is_ok_and(|mut seen| seen.insert(who.clone()))
            {
                tracing::warn!(participant = %who, "a message signed in this member's name does not verify under its roster key (its key file does not match consortium.toml, or someone else sent it); it cannot join");
            }
        })?;
        if self.authenticated {
            let connection = peer.and_then(|p| p.member.as_ref());
            if connection.map(|m| m.as_str()) != Some(opened.message.sender.as_str()) {
                let e = Rejection::NotTheConnectionsMember {
                    connection: connection
                        .map_or_else(|| "an unauthenticated".into(), |m| m.to_string()),
                    sender: opened.message.sender.clone(),
                };
                tracing::warn!(peer = ?peer.map(|p| p.addr), "{e}");
                return Err(e);
            }
        }
        if opened.message.job_id != *self.job_id {
            return Err(Rejection::WrongJob {
                expected: self.job_id.to_string(),
                got: opened.message.job_id.clone(),
            });
        }
        Ok(opened)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<Response<T>, Status> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| Status::from(Rejection::ShuttingDown))?;
        match rx.await {
            Ok(Ok(v)) => Ok(Response::new(v)),
            Ok(Err(r)) => Err(r.into()),
            Err(_) => Err(Rejection::ShuttingDown.into()),
        }
    }

    /// [`Self::ask`] for a unary answer, checked against the reply limit.
    async fn ask_sized<T: prost::Message>(
        &self,
        rpc: &'static str,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<Response<T>, Status> {
        self.sized(rpc, self.ask(make).await)
    }

    /// A unary answer larger than the server encodes is refused here, named
    /// and logged for the operator: tonic would fail it on the wire, and
    /// only the member would hear why (a reply limit sized too small for a
    /// relay once stalled the epoch setup that way).
    fn sized<T: prost::Message>(
        &self,
        rpc: &'static str,
        answer: Result<Response<T>, Status>,
    ) -> Result<Response<T>, Status> {
        let answer = answer?;
        let bytes = answer.get_ref().encoded_len();
        if bytes > self.max_reply {
            tracing::error!(
                rpc,
                bytes,
                limit = self.max_reply,
                "an answer is larger than this coordinator's reply limit; the member is refused it"
            );
            return Err(Status::resource_exhausted(format!(
                "{rpc}: the coordinator's answer of {bytes} bytes exceeds its reply limit of {} bytes",
                self.max_reply
            )));
        }
        Ok(answer)
    }

    /// A poll's answer: the next announcement or the job's end.
    async fn poll_answer(
        &self,
        req: GrpcRequest<pb::Signed>,
    ) -> Result<Response<pb::Signed>, Status> {
        let (peer, signed) = unpack(req);
        let o = self.open(peer.as_ref(), &signed)?;
        let Some(Body::Poll(p)) = &o.message.body else {
            return Err(wrong_rpc("Poll", &o.message.body));
        };
        self.freshness
            .admit(o.sender.index, p.sent_unix_ms, &p.nonce)
            .map_err(|problem| Rejection::StalePoll {
                who: o.sender.id.to_string(),
                problem,
            })?;
        let seen = (!p.fresh).then_some(At {
            round: o.message.round,
            attempt: o.message.attempt,
        });
        let from = o.sender.index;
        // A poll is held at most POLL_HOLD, then answered "poll again": no
        // call stays open indefinitely, and the member learns the
        // coordinator is alive.
        match tokio::time::timeout(
            POLL_HOLD,
            self.ask(|reply| Request::Poll { from, seen, reply }),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "nothing to announce within {} s; poll again",
                POLL_HOLD.as_secs()
            ))),
        }
    }

    /// An unmask request's answer: the signed round outcome.
    async fn unmask_answer(
        &self,
        req: GrpcRequest<pb::Signed>,
    ) -> Result<Response<pb::Signed>, Status> {
        let (peer, signed) = unpack(req);
        let o = self.open(peer.as_ref(), &signed)?;
        match &o.message.body {
            Some(Body::Unmask(u)) => {
                let self_mask = self.shares(&u.self_mask_shares, "self-mask share owner")?;
                let keys = self.shares(&u.key_shares, "key share owner")?;
                self.ask(|reply| {
                    round_request(
                        &o,
                        signed.clone(),
                        RoundMsg::Unmask {
                            self_mask,
                            keys,
                            reply,
                        },
                    )
                })
                .await
            }
            Some(Body::SlotReveal(r)) => {
                let (slot, shares) = reveal_from_pb(&self.roster, r).map_err(Rejection::Wire)?;
                self.ask(|reply| {
                    round_request(
                        &o,
                        signed.clone(),
                        RoundMsg::SlotReveal {
                            slot,
                            shares,
                            reply,
                        },
                    )
                })
                .await
            }
            _ => Err(wrong_rpc("Unmask", &o.message.body)),
        }
    }

    fn index(&self, id: &str, what: &'static str) -> Result<PartyIndex, Rejection> {
        self.roster.get(id).map(|m| m.index).ok_or_else(|| {
            Rejection::Wire(WireError::Field {
                what,
                problem: format!("{id:?} is not a consortium member"),
            })
        })
    }

    fn shares(
        &self,
        list: &[pb::RevealedShare],
        what: &'static str,
    ) -> Result<Vec<(PartyIndex, Share)>, Rejection> {
        list.iter()
            .map(|s| {
                Ok((
                    self.index(&s.owner, what)?,
                    Share::from_bytes(&s.share).map_err(WireError::from)?,
                ))
            })
            .collect()
    }
}

/// The actor request for a verified round message.
fn round_request(o: &Opened<'_>, signed: pb::Signed, msg: RoundMsg) -> Request {
    Request::Round {
        from: o.sender.index,
        at: At {
            round: o.message.round,
            attempt: o.message.attempt,
        },
        signed,
        msg,
    }
}

fn body_name(body: &Option<Body>) -> &'static str {
    body.as_ref().map_or("empty", Body::phase_name)
}

fn wrong_rpc(rpc: &'static str, body: &Option<Body>) -> Status {
    Rejection::WrongRpc {
        rpc,
        body: body_name(body),
    }
    .into()
}

fn field(what: &'static str, problem: impl Into<String>) -> Rejection {
    Rejection::Wire(WireError::Field {
        what,
        problem: problem.into(),
    })
}

impl Service {
    /// One chunk of a masked-input stream: verified, bound to the stream's
    /// sender and attempt, and handed to the actor.
    async fn chunk(
        &self,
        peer: Option<&Peer>,
        signed: pb::Signed,
        owner: &mut Option<(PartyIndex, At)>,
    ) -> Result<(InputAnswer, ChunkHeader), Status> {
        let o = self.open(peer, &signed)?;
        let Some(Body::MaskedChunk(c)) = &o.message.body else {
            return Err(wrong_rpc("SubmitMaskedChunks", &o.message.body));
        };
        let at = At {
            round: o.message.round,
            attempt: o.message.attempt,
        };
        match owner {
            None => *owner = Some((o.sender.index, at)),
            Some((from, first)) if *from == o.sender.index && *first == at => {}
            Some((from, first)) => {
                return Err(field(
                    "masked-input chunk",
                    format!(
                        "a stream carries one sender's chunks of one attempt: it began with {}'s for round {} attempt {}, this one is {}'s for round {} attempt {}",
                        self.roster.name_of(*from),
                        first.round,
                        first.attempt,
                        o.sender.id,
                        at.round,
                        at.attempt
                    ),
                )
                .into());
            }
        }
        let header = chunks::header(c).map_err(Rejection::Wire)?;
        let piece = Piece::Chunk {
            header,
            session: c.session_id.clone(),
        };
        let values = c.values.clone();
        let answer = self
            .ask(|reply| {
                round_request(
                    &o,
                    signed.clone(),
                    RoundMsg::Masked {
                        piece,
                        values,
                        reply,
                    },
                )
            })
            .await?;
        Ok((answer.into_inner(), header))
    }
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for Service {
    async fn poll(&self, req: GrpcRequest<pb::Signed>) -> Result<Response<pb::Signed>, Status> {
        self.sized("Poll", self.poll_answer(req).await)
    }

    async fn advertise_keys(
        &self,
        req: GrpcRequest<pb::Signed>,
    ) -> Result<Response<pb::AdvertisedKeys>, Status> {
        let (peer, signed) = unpack(req);
        let o = self.open(peer.as_ref(), &signed)?;
        let Some(Body::Advertise(a)) = &o.message.body else {
            return Err(wrong_rpc("AdvertiseKeys", &o.message.body));
        };
        let ad = Advertisement::try_from(a).map_err(Rejection::Wire)?;
        self.ask_sized("AdvertiseKeys", |reply| {
            round_request(&o, signed.clone(), RoundMsg::Advertise { ad, reply })
        })
        .await
    }

    async fn share_keys(
        &self,
        req: GrpcRequest<pb::Signed>,
    ) -> Result<Response<pb::SharesForYou>, Status> {
        let (peer, signed) = unpack(req);
        let o = self.open(peer.as_ref(), &signed)?;
        match &o.message.body {
            Some(Body::Shares(s)) => {
                let DealtShares { dealt, ciphertexts } =
                    DealtShares::from_pb(&self.roster, o.sender.index, s)
                        .map_err(Rejection::Wire)?;
                self.ask_sized("ShareKeys", |reply| {
                    round_request(
                        &o,
                        signed.clone(),
                        RoundMsg::Shares {
                            dealt,
                            ciphertexts,
                            reply,
                        },
                    )
                })
                .await
            }
            Some(Body::EpochShares(e)) => {
                // Decoded with the job's slot count: a dealer's commitments
                // must cover exactly that many slots.
                let slots = self.epoch_slots.ok_or_else(|| Rejection::WrongSetup {
                    body: "epoch shares",
                    attempt: "this job, which agrees keys and shares secrets in every attempt \
                              (its [protocol] setup is not \"epoch\")"
                        .into(),
                })?;
                let EpochDealtShares {
                    record,
                    ciphertexts,
                } = EpochDealtShares::from_pb(&self.roster, o.sender.index, slots, e)
                    .map_err(Rejection::Wire)?;
                self.ask_sized("ShareKeys", |reply| {
                    round_request(
                        &o,
                        signed.clone(),
                        RoundMsg::EpochShares {
                            record,
                            ciphertexts,
                            reply,
                        },
                    )
                })
                .await
            }
            _ => Err(wrong_rpc("ShareKeys", &o.message.body)),
        }
    }

    async fn submit_masked_input(
        &self,
        req: GrpcRequest<pb::Signed>,
    ) -> Result<Response<pb::Survivors>, Status> {
        let (peer, signed) = unpack(req);
        let o = self.open(peer.as_ref(), &signed)?;
        let Some(Body::MaskedInput(m)) = &o.message.body else {
            return Err(wrong_rpc("SubmitMaskedInput", &o.message.body));
        };
        // A view into the received payload (no copy); summed in place by the actor.
        let values = m.values.clone();
        let answer = self
            .ask(|reply| {
                round_request(
                    &o,
                    signed.clone(),
                    RoundMsg::Masked {
                        piece: Piece::Whole,
                        values,
                        reply,
                    },
                )
            })
            .await?;
        match answer.into_inner() {
            InputAnswer::Survivors(s) => Ok(Response::new(s)),
            InputAnswer::Next => Err(Status::internal(
                "a whole masked input was answered as a chunk",
            )),
        }
    }

    async fn submit_masked_chunks(
        &self,
        req: GrpcRequest<tonic::Streaming<pb::Signed>>,
    ) -> Result<Response<pb::Survivors>, Status> {
        let peer = req.extensions().get::<Peer>().cloned();
        let mut stream = req.into_inner();
        // One sender, one attempt per stream; set by its first chunk.
        let mut owner: Option<(PartyIndex, At)> = None;
        let mut received = 0u32;
        let mut total = 0u32;
        let result = loop {
            let next = tokio::time::timeout(self.chunk_wait, stream.message()).await;
            let signed = match next {
                Ok(Ok(Some(s))) => s,
                Ok(Ok(None)) | Err(_) => {
                    break Err(Rejection::StreamCut {
                        who: owner.map_or_else(String::new, |(p, _)| self.roster.name_of(p)),
                        received,
                        total,
                    }
                    .into());
                }
                Ok(Err(status)) => break Err(status),
            };
            match self.chunk(peer.as_ref(), signed, &mut owner).await {
                Ok((InputAnswer::Next, header)) => {
                    received = header.index + 1;
                    total = header.total;
                }
                Ok((InputAnswer::Survivors(s), _)) => return Ok(Response::new(s)),
                Err(status) => break Err(status),
            }
        };
        // The stream ended short of its last chunk: the sender's partial
        // input is out of the attempt (the actor ignores this for an input
        // it already dropped, or for an attempt that is over).
        if let Some((from, at)) = owner
            && let Err(status) = &result
        {
            let why = status.message().to_owned();
            let _ = self.tx.send(Request::StreamCut { from, at, why }).await;
        }
        result
    }

    async fn confirm_survivors(
        &self,
        req: GrpcRequest<pb::Signed>,
    ) -> Result<Response<pb::SurvivorSignatures>, Status> {
        let (peer, signed) = unpack(req);
        let o = self.open(peer.as_ref(), &signed)?;
        let Some(Body::Consistency(c)) = &o.message.body else {
            return Err(wrong_rpc("ConfirmSurvivors", &o.message.body));
        };
        let survivors = SurvivorDigest::from_bytes(&c.survivors_digest)
            .map_err(|_| field("survivors_digest", "must be 32 bytes"))?;
        let session = SessionId(
            c.session_id
                .as_ref()
                .try_into()
                .map_err(|_| field("session_id", "must be 32 bytes"))?,
        );
        self.ask_sized("ConfirmSurvivors", |reply| {
            round_request(
                &o,
                signed.clone(),
                RoundMsg::Confirm {
                    survivors,
                    session,
                    reply,
                },
            )
        })
        .await
    }

    async fn unmask(&self, req: GrpcRequest<pb::Signed>) -> Result<Response<pb::Signed>, Status> {
        self.sized("Unmask", self.unmask_answer(req).await)
    }

    type PollChunksStream = Pieces;

    /// [`Self::poll`], its answer (an announcement or the job's end, each
    /// listing the earlier rounds' outcomes by digest) sent in pieces.
    async fn offer(
        &self,
        _req: GrpcRequest<pb::OfferRequest>,
    ) -> Result<Response<pb::Signed>, Status> {
        // Public to the connection (a member, on mutual TLS): the job spec
        // is in every member's hands anyway, and the answer is signed.
        Ok(Response::new((*self.offer).clone()))
    }

    async fn poll_chunks(&self, req: GrpcRequest<pb::Signed>) -> Result<Response<Pieces>, Status> {
        let answer = self.poll_answer(req).await?;
        Ok(Response::new(pieces(answer.get_ref())))
    }

    type UnmaskChunksStream = Pieces;

    /// [`Self::unmask`], the signed round outcome (the published sum) sent
    /// in pieces.
    async fn unmask_chunks(
        &self,
        req: GrpcRequest<pb::Signed>,
    ) -> Result<Response<Pieces>, Status> {
        let answer = self.unmask_answer(req).await?;
        Ok(Response::new(pieces(answer.get_ref())))
    }

    type OutcomeChunksStream = Pieces;

    /// The signed outcome of an earlier round, in pieces, for a member that
    /// did not receive it (announcements list only the outcomes' digests).
    /// Asked by a member-signed `FetchOutcome`; it changes nothing here.
    async fn outcome_chunks(
        &self,
        req: GrpcRequest<pb::Signed>,
    ) -> Result<Response<Pieces>, Status> {
        let (peer, signed) = unpack(req);
        let o = self.open(peer.as_ref(), &signed)?;
        let Some(Body::FetchOutcome(_)) = &o.message.body else {
            return Err(wrong_rpc("OutcomeChunks", &o.message.body));
        };
        let round = o.message.round;
        let published = self
            .published
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let outcome = usize::try_from(round)
            .ok()
            .and_then(|r| published.get(r))
            .ok_or(Rejection::NotPublished {
                round,
                published: published.len(),
            })?;
        Ok(Response::new(pieces(outcome)))
    }

    async fn leave(&self, req: GrpcRequest<pb::Signed>) -> Result<Response<pb::LeaveAck>, Status> {
        let (peer, signed) = unpack(req);
        let o = self.open(peer.as_ref(), &signed)?;
        let Some(Body::Leave(l)) = &o.message.body else {
            return Err(wrong_rpc("Leave", &o.message.body));
        };
        let (from, code) = (o.sender.index, l.code);
        self.ask(|reply| Request::Leave {
            from,
            signed: signed.clone(),
            code,
            reply,
        })
        .await
    }
}
