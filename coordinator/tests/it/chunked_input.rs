//! Masked inputs streamed in chunks over real gRPC, with one member of four
//! attacking the stream: whatever it sends, its partial input never stays
//! in the sum, the round completes with the three honest members and their
//! exact sum, and the round log still passes the auditor.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use fedcredit_coordinator::SecureSum;
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::PartyIndex;
use fedcredit_crypto::secagg::client::{AdvertiseKeys, Confirmation, DealtToMe, SurvivorDigest};
use fedcredit_proto::shares::{self, DealtShares};
use fedcredit_proto::v1::coordinator_client::CoordinatorClient;
use fedcredit_proto::v1::{self as pb, coordinator_message, message::Body};
use fedcredit_proto::{envelope, words};
use fedcredit_referee::consortium::Consortium;
use rand::rngs::OsRng;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::Code;
use tonic::transport::Channel;

use crate::members::{self, IDS, member_key, message, seal};

/// Five chunks of eight words each.
const DIMENSION: usize = 40;
const CHUNK: usize = 8;
const ATTACKER: usize = 3;

/// What a member does with its masked input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attack {
    /// Streams its chunks in order.
    None,
    /// Sends chunk 1 twice.
    DuplicateChunk,
    /// Sends chunk 1 signed for another round, on the same stream.
    ChunkForAnotherRound,
    /// First a whole stream signed for another attempt (refused without
    /// consequence: it is not about this attempt), then its real input.
    StaleStreamFirst,
    /// Its last chunk reaches past the round's words.
    OversizeTotal,
    /// One request larger than the coordinator takes.
    OversizeMessage,
    /// Sends two chunks, then ends the stream.
    StopsMidway,
    /// Sends two chunks, then neither sends more nor ends the stream.
    Stalls,
}

/// One chunk of `masked`, as member `i` signs it.
fn chunk(
    i: usize,
    at: (u64, u32),
    session: &SessionId,
    masked: &[u64],
    index: usize,
    words_in_it: usize,
) -> pb::Signed {
    let offset = index * CHUNK;
    let end = (offset + words_in_it).min(masked.len());
    let mut values = words::to_bytes(&masked[offset..end]);
    // A chunk reaching past the input: pad with zeros.
    values.resize(words_in_it * 8, 0);
    seal(
        i,
        at.0,
        at.1,
        Body::MaskedChunk(pb::MaskedChunk {
            session_id: session.as_bytes().to_vec().into(),
            index: index as u32,
            total: DIMENSION.div_ceil(CHUNK) as u32,
            offset: offset as u64,
            values: values.into(),
        }),
    )
}

/// Streams `chunks` on one call; keeps the stream open afterwards when
/// `hold` (the stall), until the call ends.
async fn stream(
    client: &mut CoordinatorClient<Channel>,
    chunks: Vec<pb::Signed>,
    hold: bool,
) -> Result<pb::Survivors, tonic::Status> {
    let (tx, rx) = mpsc::channel(chunks.len() + 1);
    for c in chunks {
        tx.send(c).await.unwrap();
    }
    let keep = hold.then_some(tx);
    let r = client
        .submit_masked_chunks(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    drop(keep);
    r.map(tonic::Response::into_inner)
}

/// Phase 3 as `attack` has it; `Err` ends the member's round.
async fn send_masked(
    client: &mut CoordinatorClient<Channel>,
    i: usize,
    at: (u64, u32),
    session: &SessionId,
    masked: &[u64],
    attack: Attack,
) -> Result<pb::Survivors, tonic::Status> {
    let n = DIMENSION.div_ceil(CHUNK);
    let honest = |at| {
        (0..n)
            .map(|k| chunk(i, at, session, masked, k, CHUNK))
            .collect()
    };
    match attack {
        Attack::None => stream(client, honest(at), false).await,
        Attack::DuplicateChunk => {
            let c = |k| chunk(i, at, session, masked, k, CHUNK);
            stream(client, vec![c(0), c(1), c(1), c(2)], false).await
        }
        Attack::ChunkForAnotherRound => {
            let chunks = vec![
                chunk(i, at, session, masked, 0, CHUNK),
                chunk(i, (at.0 + 5, at.1), session, masked, 1, CHUNK),
            ];
            stream(client, chunks, false).await
        }
        Attack::StaleStreamFirst => {
            let status = stream(client, honest((at.0, at.1 + 5)), false)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            assert!(status.message().contains("attempt 5"), "{status:?}");
            stream(client, honest(at), false).await
        }
        Attack::OversizeTotal => {
            let mut chunks: Vec<pb::Signed> = honest(at);
            chunks[n - 1] = chunk(i, at, session, masked, n - 1, 2 * CHUNK);
            stream(client, chunks, false).await
        }
        Attack::OversizeMessage => {
            let big = vec![0u64; fedcredit_proto::chunks::MAX_REQUEST_BYTES / 8 + 1];
            let c = seal(
                i,
                at.0,
                at.1,
                Body::MaskedChunk(pb::MaskedChunk {
                    session_id: session.as_bytes().to_vec().into(),
                    index: 0,
                    total: 1,
                    offset: 0,
                    values: words::to_bytes(&big).into(),
                }),
            );
            stream(client, vec![c], false).await
        }
        Attack::StopsMidway => stream(client, honest(at)[..2].to_vec(), false).await,
        Attack::Stalls => stream(client, honest(at)[..2].to_vec(), true).await,
    }
}

/// One member through every phase; phase 3 as `attack` has it. Returns the
/// signed outcome, or the status that ended its round.
async fn member(
    mut client: CoordinatorClient<Channel>,
    c: Consortium,
    i: usize,
    input: Vec<u64>,
    attack: Attack,
) -> Result<pb::Signed, tonic::Status> {
    let me = c.roster.member(IDS[i]).unwrap().index;
    let announced = client
        .poll(seal(i, 0, 0, Body::Poll(pb::Poll::now(true))))
        .await?
        .into_inner();
    let (m, _) = envelope::open_coordinator(&announced, c.roster.coordinator()).unwrap();
    let at = (m.round, m.attempt);
    let t = c.protocol.thresholds;

    let keys = AdvertiseKeys::new(me, t, &mut OsRng);
    let ad = keys.advertisement();
    let (cohort, session) = members::advertise(&mut client, &c, i, &announced, at, ad).await?;

    let (state, out) = keys.share_keys(session, cohort, &mut OsRng).unwrap();
    let body = Body::Shares(shares::to_pb(&c.roster, out.ciphertexts, &out.dealt));
    let dealt = client
        .share_keys(seal(i, at.0, at.1, body))
        .await?
        .into_inner();
    let mut received = Vec::new();
    for s in &dealt.dealt {
        let o = envelope::open(s, &c.roster).unwrap();
        let Some(Body::Shares(m)) = &o.message.body else {
            panic!("not a share message")
        };
        let d = DealtShares::from_pb(&c.roster, o.sender.index, m).unwrap();
        let (_, ct) = d.ciphertexts.iter().find(|(to, _)| *to == me).unwrap();
        received.push(DealtToMe {
            from: o.sender.index,
            ciphertext: ct.to_vec(),
            commitment: d.dealt.shares[&me],
        });
    }

    let (state, masked) = state
        .masked_input(fedcredit_crypto::ring::Ring::U64, &input, received)
        .unwrap();
    let survivors = send_masked(&mut client, i, at, &session, &masked, attack).await?;
    let u3 = survivors
        .survivors
        .iter()
        .map(|id| c.roster.member(id).unwrap().index)
        .collect();

    let state = state.confirm(u3).unwrap();
    let sigs = client
        .confirm_survivors(seal(
            i,
            at.0,
            at.1,
            Body::Consistency(pb::SurvivorList {
                session_id: state.session().as_bytes().to_vec().into(),
                survivors_digest: SurvivorDigest::of(state.survivors())
                    .as_bytes()
                    .to_vec()
                    .into(),
            }),
        ))
        .await?
        .into_inner();
    // t of them, not all of U4: a member needs no more.
    assert_eq!(sigs.confirmations.len(), t.need());
    let confirmations: Vec<Confirmation> = sigs
        .confirmations
        .iter()
        .map(|s| {
            let o = envelope::open(s, &c.roster).unwrap();
            let Some(Body::Consistency(l)) = &o.message.body else {
                panic!("not a confirmation")
            };
            Confirmation {
                signer: o.sender.index,
                session: SessionId(l.session_id.as_ref().try_into().unwrap()),
                survivors: SurvivorDigest::from_bytes(&l.survivors_digest).unwrap(),
                checked: o.checked,
            }
        })
        .collect();

    let reveal = state.unmask(&confirmations).unwrap();
    let list = |v: Vec<(PartyIndex, fedcredit_crypto::shamir::Share)>| {
        v.into_iter()
            .map(|(owner, s)| pb::RevealedShare {
                owner: c.roster.id_of(owner).unwrap().to_string(),
                share: s.to_bytes().to_vec().into(),
            })
            .collect()
    };
    let body = Body::Unmask(pb::UnmaskShares {
        self_mask_shares: list(reveal.self_mask_shares),
        key_shares: list(reveal.key_shares),
    });
    Ok(client.unmask(seal(i, at.0, at.1, body)).await?.into_inner())
}

/// A 4-member secure-sum round where bank-d mounts `attack`; returns the
/// status that ended bank-d's round (or its outcome) after checking that
/// the three honest members (and bank-d, if it ends in the sum) get their
/// exact sum, and that the round log passes the auditor.
async fn round_with(attack: Attack, phase_deadline_secs: u32) -> Result<(), tonic::Status> {
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("rounds.log");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let coordinator = IdentityKey::from_secret_bytes(&[9; 32]);
    let mut toml = format!(
        "[coordinator]\nlisten = \"{addr}\"\npublic_key = \"{}\"\n[protocol]\nphase_deadline_secs = {phase_deadline_secs}\njoin_deadline_secs = 30\n\
         [job]\nid = \"job-1\"\nkind = \"secure-sum\"\ndimension = {DIMENSION}\nfrac_bits = 16\nclip = 1e6\n",
        coordinator.public().to_hex()
    );
    for (i, id) in IDS.iter().enumerate() {
        toml.push_str(&format!(
            "[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
            member_key(i).public().to_hex()
        ));
    }
    let consortium = Consortium::parse(Path::new("test.toml"), &toml).unwrap();
    assert_eq!(consortium.protocol.thresholds.threshold(), 3);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = Box::new(SecureSum::new(DIMENSION, FixedPoint::new(16, 1e6).unwrap()));
    tokio::spawn(fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, None),
        consortium.clone(),
        coordinator,
        driver,
        fedcredit_coordinator::max_message_bytes(DIMENSION),
        log_path.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = loop {
        match CoordinatorClient::connect(format!("http://{addr}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    // Distinct, large words: a partial input left in the sum, or a chunk
    // added twice, shows in every word it covers.
    let inputs: Vec<Vec<u64>> = (0..IDS.len())
        .map(|i| {
            (0..DIMENSION as u64)
                .map(|j| (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (j << 40))
                .collect()
        })
        .collect();
    let tasks: Vec<_> = (0..IDS.len())
        .map(|i| {
            let attack = if i == ATTACKER { attack } else { Attack::None };
            tokio::spawn(member(
                client.clone(),
                consortium.clone(),
                i,
                inputs[i].clone(),
                attack,
            ))
        })
        .collect();
    // A key outside the consortium streams chunks too: refused outright.
    let outsider = IdentityKey::from_secret_bytes(&[77; 32]);
    let forged = envelope::seal(
        &outsider,
        &pb::Message {
            sender: "bank-z".into(),
            ..message(
                0,
                0,
                0,
                Body::MaskedChunk(pb::MaskedChunk {
                    session_id: vec![0; 32].into(),
                    index: 0,
                    total: 1,
                    offset: 0,
                    values: vec![1; 8 * DIMENSION].into(),
                }),
            )
        },
    );
    let status = stream(&mut client.clone(), vec![forged], false)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let mut results: Vec<_> = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let attacker = results.pop().unwrap();
    let in_sum: Vec<usize> = if attacker.is_ok() {
        vec![0, 1, 2, 3]
    } else {
        vec![0, 1, 2]
    };
    let mut expected = vec![0u64; DIMENSION];
    for i in &in_sum {
        fedcredit_crypto::mask::add_assign(&mut expected, &inputs[*i]).unwrap();
    }
    let names: Vec<&str> = in_sum.iter().map(|i| IDS[*i]).collect();
    for r in results {
        let signed = r.unwrap();
        let (m, _) = envelope::open_coordinator(&signed, consortium.roster.coordinator()).unwrap();
        let Some(coordinator_message::Body::Outcome(o)) = m.body else {
            panic!("not an outcome")
        };
        assert_eq!(
            words::from_bytes("sum", &o.sum).unwrap(),
            expected,
            "{attack:?}"
        );
        assert_eq!(o.contributors, names, "{attack:?}");
    }
    // The auditor replays the log: every logged chunk is signed by its
    // member, the attacker's partial input is not in U3, and the published
    // sum follows from the whole inputs. The job's end is logged just after
    // the outcome goes out.
    let mut report = None;
    for _ in 0..100 {
        let r = fedcredit_audit::verify(&std::fs::read(&log_path).unwrap(), &consortium);
        if r.ok() {
            report = Some(r);
            break;
        }
        report = Some(r);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = report.unwrap();
    assert!(report.ok(), "{attack:?}: {:#?}", report.problems);
    drop(stop);
    attacker.map(|_| ())
}

#[tokio::test]
async fn an_honest_chunked_round_sums_every_member() {
    round_with(Attack::None, 30).await.unwrap();
}

#[tokio::test]
async fn a_repeated_chunk_drops_its_senders_input() {
    let status = round_with(Attack::DuplicateChunk, 30).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("out of order"), "{status:?}");
}

#[tokio::test]
async fn a_chunk_for_another_round_drops_its_senders_input() {
    let status = round_with(Attack::ChunkForAnotherRound, 30)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("one sender's chunks of one attempt"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_stale_stream_for_another_attempt_does_not_drop_the_real_one() {
    round_with(Attack::StaleStreamFirst, 30).await.unwrap();
}

#[tokio::test]
async fn a_chunk_past_the_rounds_words_drops_its_senders_input() {
    let status = round_with(Attack::OversizeTotal, 30).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("the round aggregates 40 words"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_request_larger_than_one_chunk_is_refused_before_it_is_buffered() {
    // Refused unread, so unattributed: the sender is dropped at the deadline.
    let status = round_with(Attack::OversizeMessage, 2).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_stream_ended_midway_leaves_no_trace_in_the_sum() {
    let status = round_with(Attack::StopsMidway, 30).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("ended after chunk 2 of 5"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_stalled_stream_is_dropped_at_the_phase_deadline() {
    // The phase waits for it until the deadline, then closes without it.
    let status = round_with(Attack::Stalls, 2).await.unwrap_err();
    assert!(
        matches!(
            status.code(),
            Code::Aborted | Code::FailedPrecondition | Code::InvalidArgument
        ),
        "{status:?}"
    );
}
