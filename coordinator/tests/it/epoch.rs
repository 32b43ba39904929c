//! An epoch-mode job of two rounds over real gRPC with hand-made members:
//! the first announcement sets up an epoch (empty `epoch`, slot 0, the
//! file's slots), members deal `EpochShares` through ShareKeys, mask slot 0,
//! get the whole cohort as survivors, reveal with `SlotReveal` through
//! Unmask, and get the exact sum; the second round names the epoch and slot
//! 1 and is only a masked input and an unmask. A per-round reveal is refused
//! in an epoch attempt, and a reveal for another slot is refused.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use fedcredit_coordinator::{JobDriver, RoundPlan, RoundResult, SecureSum};
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::kx::SessionId;
use fedcredit_crypto::secagg::epoch::{EpochDealtToMe, EpochKeys, EpochMember, TaskLedger};
use fedcredit_proto::epoch::{self, EpochDealtShares};
use fedcredit_proto::v1::coordinator_client::CoordinatorClient;
use fedcredit_proto::v1::{self as pb, coordinator_message, message::Body};
use fedcredit_proto::{envelope, words};
use fedcredit_referee::consortium::Consortium;
use rand::rngs::OsRng;
use tokio::net::TcpListener;
use tonic::transport::Channel;

use crate::members::{self, IDS, member_key, seal};

const DIMENSION: usize = 4;
const SLOTS: u32 = 2;

/// Two secure sums in a row: two rounds of one epoch.
struct TwoSums {
    done: u32,
}

impl JobDriver for TwoSums {
    fn next_round(&mut self) -> Result<Option<RoundPlan>, String> {
        if self.done == 2 {
            return Ok(None);
        }
        SecureSum::new(DIMENSION, FixedPoint::new(16, 1e6).unwrap()).next_round()
    }

    fn finish_round(&mut self, result: &RoundResult) -> Result<String, String> {
        self.done += 1;
        Ok(format!("{{\"round\":{}}}", result.round))
    }
}

fn input(i: usize, round: u64) -> Vec<u64> {
    (0..DIMENSION as u64)
        .map(|j| 1000 * i as u64 + 100 * round + j)
        .collect()
}

/// A member's epoch after its setup attempt.
struct Held {
    member: EpochMember,
    session: SessionId,
    ledger: TaskLedger,
    /// The setup attempt's (round, attempt).
    at: (u64, u32),
}

/// One member through the setup `announced` names and its slot 0, with
/// the round's input; returns the epoch and the signed outcome.
async fn setup(
    client: &mut CoordinatorClient<Channel>,
    c: &Consortium,
    i: usize,
    announced: pb::Signed,
) -> Result<(Held, pb::Signed), tonic::Status> {
    let me = c.roster.member(IDS[i]).unwrap().index;
    let (m, _) = envelope::open_coordinator(&announced, c.roster.coordinator()).unwrap();
    let Some(coordinator_message::Body::Announce(a)) = &m.body else {
        panic!("not an announcement")
    };
    assert_eq!(a.epoch_slots, SLOTS);
    assert!(a.epoch.is_empty(), "an attempt that sets up an epoch");
    assert_eq!(a.slot, 0);
    let (round, attempt) = (m.round, m.attempt);
    let input = input(i, round);
    let t = c.protocol.thresholds;
    let slots = c.protocol.epoch_slots.unwrap();

    let keys = EpochKeys::new(me, t, slots, &mut OsRng);
    let ad = keys.advertisement();
    let (cohort, session) =
        members::advertise(client, c, i, &announced, (round, attempt), ad).await?;

    // A per-round reveal has no place in an epoch attempt.
    if i == 0 {
        let refused = client
            .unmask(seal(
                i,
                round,
                attempt,
                Body::Unmask(pb::UnmaskShares::default()),
            ))
            .await
            .unwrap_err();
        assert!(
            refused
                .message()
                .contains("does not belong in this attempt"),
            "{refused:?}"
        );
    }

    let (sharing, out) = keys.share_keys(session, cohort, &mut OsRng).unwrap();
    let body = Body::EpochShares(epoch::to_pb(&c.roster, out));
    let dealt = client
        .share_keys(seal(i, round, attempt, body))
        .await?
        .into_inner();
    let mut received = Vec::new();
    for s in &dealt.dealt {
        let o = envelope::open(s, &c.roster).unwrap();
        let Some(Body::EpochShares(m)) = &o.message.body else {
            panic!("not an epoch share message")
        };
        let d = EpochDealtShares::from_pb(&c.roster, o.sender.index, slots, m).unwrap();
        let (_, ct) = d.ciphertexts.iter().find(|(to, _)| *to == me).unwrap();
        received.push(EpochDealtToMe {
            from: o.sender.index,
            ciphertext: ct.to_vec(),
            dealt: d.record.dealt,
        });
    }
    let mut member = sharing.open(received).unwrap();
    assert_eq!(member.epoch(), &session);

    let masked = member
        .mask(0, fedcredit_crypto::ring::Ring::U64, &input)
        .unwrap();
    let survivors = client
        .submit_masked_input(seal(
            i,
            round,
            attempt,
            Body::MaskedInput(pb::MaskedInput {
                values: words::to_bytes(&masked).into(),
            }),
        ))
        .await?
        .into_inner();
    assert_eq!(survivors.survivors, IDS, "the survivors of a slot are C");

    let mut ledger = TaskLedger::new();
    let reveal = member.reveal(0, [0; 32], &mut ledger).unwrap();
    let body = Body::SlotReveal(epoch::reveal_to_pb(&c.roster, reveal.slot, reveal.shares));
    let outcome = client
        .unmask(seal(i, round, attempt, body))
        .await?
        .into_inner();
    let held = Held {
        member,
        session,
        ledger,
        at: (round, attempt),
    };
    Ok((held, outcome))
}

fn poll(i: usize, seen: (u64, u32)) -> pb::Signed {
    seal(i, seen.0, seen.1, Body::Poll(pb::Poll::now(false)))
}

/// One member through an epoch's setup and its slots 0 and 1 (rounds 0
/// and 1); returns the two signed outcomes.
async fn member(
    mut client: CoordinatorClient<Channel>,
    c: Consortium,
    i: usize,
) -> Result<Vec<pb::Signed>, tonic::Status> {
    let announced = client
        .poll(seal(i, 0, 0, Body::Poll(pb::Poll::now(true))))
        .await?
        .into_inner();
    let (
        Held {
            mut member,
            session,
            mut ledger,
            at: (round, attempt),
        },
        first,
    ) = setup(&mut client, &c, i, announced).await?;

    // Round 1: slot 1 of the same epoch, announced with its id.
    let announced = client.poll(poll(i, (round, attempt))).await?.into_inner();
    let (m, _) = envelope::open_coordinator(&announced, c.roster.coordinator()).unwrap();
    let Some(coordinator_message::Body::Announce(a)) = &m.body else {
        panic!("not an announcement")
    };
    assert_eq!((m.round, m.attempt), (1, 0));
    assert_eq!(a.epoch.as_ref(), session.as_bytes(), "the held epoch");
    assert_eq!(a.slot, 1);
    let (round, attempt) = (m.round, m.attempt);
    let masked = member
        .mask(1, fedcredit_crypto::ring::Ring::U64, &self::input(i, 1))
        .unwrap();
    let survivors = client
        .submit_masked_input(seal(
            i,
            round,
            attempt,
            Body::MaskedInput(pb::MaskedInput {
                values: words::to_bytes(&masked).into(),
            }),
        ))
        .await?
        .into_inner();
    assert_eq!(survivors.survivors, IDS);
    let reveal = member.reveal(1, [1; 32], &mut ledger).unwrap();
    let good = epoch::reveal_to_pb(&c.roster, reveal.slot, reveal.shares);
    if i == 1 {
        let mut wrong = good.clone();
        wrong.slot = 0;
        let refused = client
            .unmask(seal(i, round, attempt, Body::SlotReveal(wrong)))
            .await
            .unwrap_err();
        assert!(
            refused.message().contains("this attempt unmasks slot 1"),
            "{refused:?}"
        );
    }
    let second = client
        .unmask(seal(i, round, attempt, Body::SlotReveal(good)))
        .await?
        .into_inner();
    Ok(vec![first, second])
}

/// Starts a coordinator for a two-round epoch job; returns a client and
/// the consortium, and the sender whose drop stops it.
async fn start(
    log_dir: &Path,
) -> (
    CoordinatorClient<Channel>,
    Consortium,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let coordinator = IdentityKey::from_secret_bytes(&[9; 32]);
    let mut toml = format!(
        "[coordinator]\nlisten = \"{addr}\"\npublic_key = \"{}\"\n[protocol]\nphase_deadline_secs = 30\njoin_deadline_secs = 30\n\
         setup = \"epoch\"\nslots = {SLOTS}\n\
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = Box::new(TwoSums { done: 0 });
    tokio::spawn(fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, None),
        consortium.clone(),
        coordinator,
        driver,
        1 << 20,
        log_dir.join("rounds.log"),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = loop {
        match CoordinatorClient::connect(format!("http://{addr}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    };
    (client, consortium, stop)
}

#[tokio::test]
async fn an_epoch_is_set_up_once_and_two_rounds_use_its_slots() {
    let log_dir = tempfile::tempdir().unwrap();
    let (client, consortium, stop) = start(log_dir.path()).await;
    let tasks: Vec<_> = (0..IDS.len())
        .map(|i| tokio::spawn(member(client.clone(), consortium.clone(), i)))
        .collect();
    for t in tasks {
        let outcomes = t.await.unwrap().unwrap();
        for (round, signed) in outcomes.iter().enumerate() {
            let mut expected = vec![0u64; DIMENSION];
            for i in 0..IDS.len() {
                fedcredit_crypto::mask::add_assign(&mut expected, &input(i, round as u64)).unwrap();
            }
            let (m, _) =
                envelope::open_coordinator(signed, consortium.roster.coordinator()).unwrap();
            assert_eq!(m.round, round as u64);
            let Some(coordinator_message::Body::Outcome(o)) = m.body else {
                panic!("not an outcome")
            };
            assert_eq!(words::from_bytes("sum", &o.sum).unwrap(), expected);
            assert_eq!(o.contributors, IDS);
        }
    }
    drop(stop);
}

/// Slot 1 where bank-d's masked input is refused (a chunk for the wrong
/// session): the slot
/// cannot be unmasked, so it is abandoned before any reveal and the next
/// attempt of the round sets up a new epoch, which completes the round.
async fn member_of_an_abandoned_slot(
    mut client: CoordinatorClient<Channel>,
    c: Consortium,
    i: usize,
) -> Result<(), tonic::Status> {
    let announced = client
        .poll(seal(i, 0, 0, Body::Poll(pb::Poll::now(true))))
        .await?
        .into_inner();
    let (mut held, _) = setup(&mut client, &c, i, announced).await?;
    let announced = client.poll(poll(i, held.at)).await?.into_inner();
    let (m, _) = envelope::open_coordinator(&announced, c.roster.coordinator()).unwrap();
    let Some(coordinator_message::Body::Announce(a)) = &m.body else {
        panic!("not an announcement")
    };
    assert_eq!((m.round, m.attempt, a.slot), (1, 0, 1));
    assert_eq!(a.epoch.as_ref(), held.session.as_bytes());
    let masked = held
        .member
        .mask(1, fedcredit_crypto::ring::Ring::U64, &input(i, 1))
        .unwrap();
    let status = if i == 3 {
        // A chunk signed for the epoch's id, not slot 1's session
        // (slot_session): refused, and its input is out of the attempt.
        let chunk = seal(
            i,
            m.round,
            m.attempt,
            Body::MaskedChunk(pb::MaskedChunk {
                session_id: held.session.as_bytes().to_vec().into(),
                index: 0,
                total: 1,
                offset: 0,
                values: words::to_bytes(&masked).into(),
            }),
        );
        client
            .submit_masked_chunks(tokio_stream::iter(vec![chunk]))
            .await
            .unwrap_err()
    } else {
        let status = client
            .submit_masked_input(seal(
                i,
                m.round,
                m.attempt,
                Body::MaskedInput(pb::MaskedInput {
                    values: words::to_bytes(&masked).into(),
                }),
            ))
            .await
            .unwrap_err();
        assert!(
            status
                .message()
                .contains("slot abandoned before any reveal: bank-d sent no masked input"),
            "{status:?}"
        );
        status
    };
    assert_ne!(status.code(), tonic::Code::Ok);
    // Nothing to reveal for: the member may not reveal an abandoned slot,
    // and the coordinator announces a new setup for the round.
    let announced = client
        .poll(poll(i, (m.round, m.attempt)))
        .await?
        .into_inner();
    let (m, _) = envelope::open_coordinator(&announced, c.roster.coordinator()).unwrap();
    assert_eq!((m.round, m.attempt), (1, 1));
    let (held2, outcome) = setup(&mut client, &c, i, announced).await?;
    assert_ne!(held2.session, held.session, "a new epoch");
    let (o, _) = envelope::open_coordinator(&outcome, c.roster.coordinator()).unwrap();
    let Some(coordinator_message::Body::Outcome(o)) = o.body else {
        panic!("not an outcome")
    };
    let mut expected = vec![0u64; DIMENSION];
    for j in 0..IDS.len() {
        fedcredit_crypto::mask::add_assign(&mut expected, &input(j, 1)).unwrap();
    }
    assert_eq!(words::from_bytes("sum", &o.sum).unwrap(), expected);
    Ok(())
}

#[tokio::test]
async fn a_slot_missing_an_input_is_abandoned_and_the_retry_sets_up_a_new_epoch() {
    let log_dir = tempfile::tempdir().unwrap();
    let (client, consortium, stop) = start(log_dir.path()).await;
    let tasks: Vec<_> = (0..IDS.len())
        .map(|i| {
            tokio::spawn(member_of_an_abandoned_slot(
                client.clone(),
                consortium.clone(),
                i,
            ))
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    drop(stop);
}
