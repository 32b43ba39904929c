//! A member that reveals a bad share over real gRPC: the coordinator refuses
//! its reveal naming it as the revealer, excludes it, and still completes the
//! round with the other members' good reveals and the exact sum.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use fedcredit_coordinator::SecureSum;
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::secagg::PartyIndex;
use fedcredit_crypto::secagg::client::{AdvertiseKeys, Confirmation, DealtToMe, SurvivorDigest};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::shares::{self, DealtShares};
use fedcredit_proto::v1::coordinator_client::CoordinatorClient;
use fedcredit_proto::v1::{self as pb, coordinator_message, message::Body};
use fedcredit_proto::{envelope, words};
use fedcredit_referee::consortium::Consortium;
use rand::rngs::OsRng;
use tokio::net::TcpListener;
use tonic::transport::Channel;

use crate::members::{self, IDS, member_key, seal};

const DIMENSION: usize = 4;

/// One member, by hand, through every phase; `bad` flips a byte of its
/// first revealed self-mask share. Returns the signed outcome (or the refusal).
async fn member(
    mut client: CoordinatorClient<Channel>,
    c: Consortium,
    i: usize,
    input: Vec<u64>,
    bad: bool,
) -> Result<pb::Signed, tonic::Status> {
    let me = c.roster.member(IDS[i]).unwrap().index;
    let announced = client
        .poll(seal(i, 0, 0, Body::Poll(pb::Poll::now(true))))
        .await?
        .into_inner();
    let (m, _) = envelope::open_coordinator(&announced, c.roster.coordinator()).unwrap();
    let (round, attempt) = (m.round, m.attempt);
    let t = c.protocol.thresholds;

    let keys = AdvertiseKeys::new(me, t, &mut OsRng);
    let ad = keys.advertisement();
    let (cohort, session) =
        members::advertise(&mut client, &c, i, &announced, (round, attempt), ad).await?;

    let (state, out) = keys.share_keys(session, cohort, &mut OsRng).unwrap();
    let body = Body::Shares(shares::to_pb(&c.roster, out.ciphertexts, &out.dealt));
    let dealt = client
        .share_keys(seal(i, round, attempt, body))
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
    let u3 = survivors
        .survivors
        .iter()
        .map(|id| c.roster.member(id).unwrap().index)
        .collect();

    let state = state.confirm(u3).unwrap();
    let sigs = client
        .confirm_survivors(seal(
            i,
            round,
            attempt,
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
                session: fedcredit_crypto::kx::SessionId(l.session_id.as_ref().try_into().unwrap()),
                survivors: SurvivorDigest::from_bytes(&l.survivors_digest).unwrap(),
                checked: o.checked,
            }
        })
        .collect();

    let mut reveal = state.unmask(&confirmations).unwrap();
    if bad {
        let (owner, share) = reveal.self_mask_shares.remove(0);
        let mut bytes = share.to_bytes();
        bytes[4] = bytes[4].wrapping_add(1);
        reveal
            .self_mask_shares
            .insert(0, (owner, Share::from_bytes(&*bytes).unwrap()));
    }
    let list = |v: Vec<(PartyIndex, Share)>| {
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
    Ok(client
        .unmask(seal(i, round, attempt, body))
        .await?
        .into_inner())
}

#[tokio::test]
async fn a_bad_revealed_share_is_attributed_and_the_round_completes_without_it() {
    let log_dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let coordinator = IdentityKey::from_secret_bytes(&[9; 32]);
    let mut toml = format!(
        "[coordinator]\nlisten = \"{addr}\"\npublic_key = \"{}\"\n[protocol]\nphase_deadline_secs = 30\njoin_deadline_secs = 30\n\
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
    // n = 4, c = 1, t = 3: one bad revealer leaves exactly t good reveals.
    assert_eq!(consortium.protocol.thresholds.threshold(), 3);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = Box::new(SecureSum::new(DIMENSION, FixedPoint::new(16, 1e6).unwrap()));
    tokio::spawn(fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, None),
        consortium.clone(),
        coordinator,
        driver,
        1 << 20,
        log_dir.path().join("rounds.log"),
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
    let inputs: Vec<Vec<u64>> = (0..IDS.len())
        .map(|i| (0..DIMENSION as u64).map(|j| 1000 * i as u64 + j).collect())
        .collect();
    let bad = 2;
    let tasks: Vec<_> = (0..IDS.len())
        .map(|i| {
            tokio::spawn(member(
                client.clone(),
                consortium.clone(),
                i,
                inputs[i].clone(),
                i == bad,
            ))
        })
        .collect();
    let mut expected = vec![0u64; DIMENSION];
    for x in &inputs {
        fedcredit_crypto::mask::add_assign(&mut expected, x).unwrap();
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        if i == bad {
            let status = r.unwrap_err();
            assert!(
                status.message().contains("bank-c")
                    && status.message().contains("revealed a self-mask share"),
                "{status:?}"
            );
            continue;
        }
        let signed = r.unwrap();
        let (m, _) = envelope::open_coordinator(&signed, consortium.roster.coordinator()).unwrap();
        let Some(coordinator_message::Body::Outcome(o)) = m.body else {
            panic!("not an outcome")
        };
        assert_eq!(words::from_bytes("sum", &o.sum).unwrap(), expected);
        assert_eq!(o.contributors, IDS);
    }
    drop(stop);
}
