//! The coordinator over real gRPC on loopback, fed hand-made messages: every
//! message that is not exactly right for the open phase is refused with a
//! status that says why, and refusals leave the round intact.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use fedcredit_coordinator::SecureSum;
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::kx::AgreementSecret;
use fedcredit_proto::envelope;
use fedcredit_proto::v1::coordinator_client::CoordinatorClient;
use fedcredit_proto::v1::{self as pb, message::Body};
use fedcredit_referee::consortium::Consortium;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;

const IDS: [&str; 3] = ["bank-a", "bank-b", "bank-c"];

fn member_key(i: usize) -> IdentityKey {
    IdentityKey::from_secret_bytes(&[i as u8 + 1; 32])
}

struct Running {
    client: CoordinatorClient<Channel>,
    _log_dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Deadlines long enough for any test's hand-made messages.
const DEADLINES: Deadlines = Deadlines {
    join: 30,
    phase: 30,
};

/// The `[protocol]` deadlines of a launched coordinator, in seconds.
pub(crate) struct Deadlines {
    pub join: u64,
    pub phase: u64,
}

/// A coordinator of a 3-member secure-sum job on loopback, over mutual TLS
/// (pinned) when `tls`; returns its consortium, address and log folder.
async fn launch(
    tls: bool,
    max_reply: usize,
) -> (
    Consortium,
    std::net::SocketAddr,
    tempfile::TempDir,
    tokio::sync::oneshot::Sender<()>,
) {
    let (consortium, addr, log_dir, stop, _) = launch_with(tls, max_reply, &DEADLINES).await;
    (consortium, addr, log_dir, stop)
}

/// [`launch`] with the given deadlines; also returns the coordinator's task.
#[allow(clippy::type_complexity)]
pub(crate) async fn launch_with(
    tls: bool,
    max_reply: usize,
    deadlines: &Deadlines,
) -> (
    Consortium,
    std::net::SocketAddr,
    tempfile::TempDir,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<
        Result<fedcredit_coordinator::JobReport, fedcredit_coordinator::CoordinatorError>,
    >,
) {
    let log_dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let coordinator = IdentityKey::from_secret_bytes(&[9; 32]);
    let mut toml = format!(
        "[coordinator]\nlisten = \"{addr}\"\npublic_key = \"{}\"\n[protocol]\nphase_deadline_secs = {}\njoin_deadline_secs = {}\n\
         [job]\nid = \"job-1\"\nkind = \"secure-sum\"\ndimension = 4\nfrac_bits = 16\nclip = 1e6\n",
        coordinator.public().to_hex(),
        deadlines.phase,
        deadlines.join,
    );
    for (i, id) in IDS.iter().enumerate() {
        toml.push_str(&format!(
            "[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
            member_key(i).public().to_hex()
        ));
    }
    let consortium = Consortium::parse(Path::new("test.toml"), &toml).unwrap();
    let server_tls = tls.then(|| {
        fedcredit_transport::setup::coordinator(&consortium, &coordinator)
            .unwrap()
            .unwrap()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = Box::new(SecureSum::new(4, FixedPoint::new(16, 1e6).unwrap()));
    let task = tokio::spawn(fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, server_tls),
        consortium.clone(),
        coordinator,
        driver,
        max_reply,
        log_dir.path().join("rounds.log"),
        async move {
            let _ = stopped.await;
        },
    ));
    (consortium, addr, log_dir, stop, task)
}

async fn start() -> Running {
    start_with(1 << 20).await
}

/// [`start`] with the coordinator's reply limit at `max_reply` bytes.
async fn start_with(max_reply: usize) -> Running {
    let (_, addr, log_dir, stop) = launch(false, max_reply).await;
    let client = loop {
        match CoordinatorClient::connect(format!("http://{addr}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    };
    Running {
        client,
        _log_dir: log_dir,
        _stop: stop,
    }
}

fn message(sender: &str, job: &str, round: u64, attempt: u32, body: Body) -> pb::Message {
    pb::Message {
        job_id: job.into(),
        round,
        attempt,
        sender: sender.into(),
        body: Some(body),
    }
}

fn poll(fresh: bool) -> Body {
    Body::Poll(pb::Poll::now(fresh))
}

fn advert() -> Body {
    let k = AgreementSecret::generate(&mut rand::rngs::OsRng)
        .public()
        .to_bytes()
        .to_vec();
    Body::Advertise(pb::KeyAdvertisement {
        share_enc_public: k.clone().into(),
        mask_agree_public: k.into(),
    })
}

/// All three members poll, so round 0 attempt 0 is announced and its
/// advertise-keys phase is open.
async fn open_round(client: &CoordinatorClient<Channel>) {
    let mut polls = Vec::new();
    for (i, id) in IDS.iter().enumerate() {
        let mut c = client.clone();
        let signed = envelope::seal(&member_key(i), &message(id, "job-1", 0, 0, poll(true)));
        polls.push(tokio::spawn(async move { c.poll(signed).await }));
    }
    for p in polls {
        p.await.unwrap().unwrap();
    }
}

/// An answer larger than the coordinator encodes is refused by name (the
/// operator's log says so too), not cut off on the wire: here the three
/// members' key advertisements outgrow a limit their requests fit in.
#[tokio::test]
async fn an_answer_over_the_reply_limit_is_refused_naming_the_call_and_sizes() {
    let r = start_with(400).await;
    open_round(&r.client).await;
    let mut calls = Vec::new();
    for (i, id) in IDS.iter().enumerate() {
        let mut c = r.client.clone();
        let signed = envelope::seal(&member_key(i), &message(id, "job-1", 0, 0, advert()));
        assert!(prost::Message::encoded_len(&signed) < 400);
        calls.push(tokio::spawn(async move { c.advertise_keys(signed).await }));
    }
    for call in calls {
        let status = call.await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status
                .message()
                .starts_with("AdvertiseKeys: the coordinator's answer of ")
                && status
                    .message()
                    .ends_with("exceeds its reply limit of 400 bytes"),
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn a_key_outside_the_consortium_is_refused() {
    let mut r = start().await;
    let outsider = IdentityKey::from_secret_bytes(&[77; 32]);
    let signed = envelope::seal(&outsider, &message("bank-a", "job-1", 0, 0, poll(true)));
    let status = r.client.poll(signed).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("bad signature on a message from bank-a"),
        "{status:?}"
    );
}

#[tokio::test]
async fn an_unknown_sender_is_refused() {
    let mut r = start().await;
    let signed = envelope::seal(
        &member_key(0),
        &message("bank-z", "job-1", 0, 0, poll(true)),
    );
    let status = r.client.poll(signed).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("bank-z"), "{status:?}");
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let mut r = start().await;
    let mut signed = envelope::seal(
        &member_key(0),
        &message("bank-a", "job-1", 0, 0, poll(true)),
    );
    let mut payload = signed.payload.to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    signed.payload = payload.into();
    let status = r.client.poll(signed).await.unwrap_err();
    assert!(
        matches!(
            status.code(),
            Code::PermissionDenied | Code::InvalidArgument
        ),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_message_for_another_job_is_refused() {
    let mut r = start().await;
    let signed = envelope::seal(
        &member_key(0),
        &message("bank-a", "job-2", 0, 0, poll(true)),
    );
    let status = r.client.poll(signed).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("job-2"), "{status:?}");
}

#[tokio::test]
async fn a_round_message_before_any_round_is_refused() {
    let mut r = start().await;
    let signed = envelope::seal(&member_key(0), &message("bank-a", "job-1", 0, 0, advert()));
    let status = r.client.advertise_keys(signed).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("waiting for participants to join"),
        "{status:?}"
    );
}

#[tokio::test]
async fn messages_for_the_wrong_round_phase_or_rpc_are_refused() {
    let r = start().await;
    open_round(&r.client).await;
    let mut c = r.client.clone();

    // Wrong round.
    let signed = envelope::seal(&member_key(0), &message("bank-a", "job-1", 7, 0, advert()));
    let status = c.advertise_keys(signed).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("round 7 attempt 0, the coordinator is at round 0 attempt 0"),
        "{status:?}"
    );

    // Wrong attempt.
    let signed = envelope::seal(&member_key(0), &message("bank-a", "job-1", 0, 3, advert()));
    let status = c.advertise_keys(signed).await.unwrap_err();
    assert!(status.message().contains("round 0 attempt 3"), "{status:?}");

    // Right round, wrong phase: a masked input while keys are being advertised.
    let body = Body::MaskedInput(pb::MaskedInput {
        values: vec![0u8; 32].into(),
    });
    let signed = envelope::seal(&member_key(1), &message("bank-b", "job-1", 0, 0, body));
    let status = c.submit_masked_input(signed).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("phase masked-input, but round 0 attempt 0 is in phase advertise-keys"),
        "{status:?}"
    );

    // An advertisement sent through the wrong RPC.
    let signed = envelope::seal(&member_key(1), &message("bank-b", "job-1", 0, 0, advert()));
    let status = c.share_keys(signed).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("rpc ShareKeys carries a advertise-keys message"),
        "{status:?}"
    );

    // A valid advertisement is kept (its call waits for the phase to close);
    // sending it again is refused as a duplicate.
    let signed = envelope::seal(&member_key(2), &message("bank-c", "job-1", 0, 0, advert()));
    let mut first = c.clone();
    let pending = tokio::spawn(async move { first.advertise_keys(signed).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let again = envelope::seal(&member_key(2), &message("bank-c", "job-1", 0, 0, advert()));
    let status = c.advertise_keys(again).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("bank-c already sent its advertise-keys message"),
        "{status:?}"
    );
    assert!(
        !pending.is_finished(),
        "the accepted advertisement must still be waiting for the phase"
    );
    pending.abort();
}

#[tokio::test]
async fn a_malformed_key_is_refused_naming_the_field() {
    let r = start().await;
    open_round(&r.client).await;
    let mut c = r.client.clone();
    let body = Body::Advertise(pb::KeyAdvertisement {
        share_enc_public: vec![1u8; 31].into(),
        mask_agree_public: vec![1u8; 32].into(),
    });
    let signed = envelope::seal(&member_key(0), &message("bank-a", "job-1", 0, 0, body));
    let status = c.advertise_keys(signed).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("share_enc_public"), "{status:?}");
}

/// A coordinator over mutual TLS (pinned), and a channel per member, each
/// presenting that member's certificate.
async fn start_tls() -> (Vec<CoordinatorClient<Channel>>, Running) {
    let (consortium, addr, log_dir, stop) = launch(true, 1 << 20).await;
    let clients = IDS
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let id = fedcredit_proto::roster::ParticipantId::new(id).unwrap();
            let tls =
                fedcredit_transport::setup::member(&consortium, &id, &member_key(i), None, None)
                    .unwrap();
            let channel = fedcredit_transport::client::channel(
                &format!("https://{addr}"),
                Some(tls),
                std::time::Duration::from_secs(5),
            )
            .unwrap();
            CoordinatorClient::new(channel)
        })
        .collect::<Vec<_>>();
    let running = Running {
        client: clients[0].clone(),
        _log_dir: log_dir,
        _stop: stop,
    };
    (clients, running)
}

/// Over mutual TLS, bank-b's connection cannot carry bank-a's signed
/// messages (one member relaying, or replaying, another's): refused before
/// the coordinator acts on them. bank-a's own connection is let through to
/// the job check.
#[tokio::test]
async fn a_members_connection_carries_only_its_own_messages() {
    let (mut clients, _running) = start_tls().await;
    let of_a = envelope::seal(
        &member_key(0),
        &message("bank-a", "other-job", 0, 0, poll(true)),
    );
    let status = loop {
        match clients[1].poll(of_a.clone()).await {
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            r => break r.unwrap_err(),
        }
    };
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("a message from bank-a arrived on bank-b's connection"),
        "{status:?}"
    );
    // The same message on bank-a's own connection passes the identity check
    // and fails only the job check.
    let status = clients[0].poll(of_a).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("other-job"), "{status:?}");
}

/// A recorded poll, sent again, is refused: it would make an absent member
/// look present (or supersede the member's own waiting poll).
#[tokio::test]
async fn a_replayed_poll_is_refused() {
    let r = start().await;
    let signed = envelope::seal(
        &member_key(0),
        &message("bank-a", "job-1", 0, 0, poll(true)),
    );
    // The original waits in the lobby for the other members.
    let mut c = r.client.clone();
    let original = signed.clone();
    let waiting = tokio::spawn(async move { c.poll(original).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut c = r.client.clone();
    let status = c.poll(signed).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("seen before"), "{status:?}");
    // The replay did not supersede the waiting original.
    assert!(
        !waiting.is_finished(),
        "the original poll was answered: {:?}",
        waiting.await
    );

    // A poll whose clock is ten minutes old is refused too.
    let mut old = pb::Poll::now(true);
    old.sent_unix_ms -= 600_000;
    let stale = envelope::seal(
        &member_key(1),
        &message("bank-b", "job-1", 0, 0, Body::Poll(old)),
    );
    let status = c.poll(stale).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(" s behind the coordinator"),
        "{status:?}"
    );
}
