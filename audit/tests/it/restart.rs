//! A real coordinator crash mid-attempt and its restart: the coordinator
//! runs on its own runtime, which is dropped (every task and socket gone at
//! once) while a phase waits for a silent member; a new coordinator on the
//! same address replays the log and resumes the round with a fresh attempt.
//! The auditor must accept the result and report the cut attempt.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use fedcredit_audit::{AttemptStatus, show, verify};
use fedcredit_coordinator::SecureSum;
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_participant::Settings;
use fedcredit_participant::contribution::VectorInput;
use fedcredit_proto::envelope;
use fedcredit_proto::roster::ParticipantId;
use fedcredit_proto::roundlog;
use fedcredit_proto::v1::coordinator_client::CoordinatorClient;
use fedcredit_proto::v1::{self as pb, log_body, message::Body};
use fedcredit_referee::consortium::Consortium;
use prost::Message as _;

const IDS: [&str; 4] = ["bank-a", "bank-b", "bank-c", "bank-d"];

fn member(i: usize) -> IdentityKey {
    IdentityKey::from_secret_bytes(&[i as u8 + 1; 32])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn consortium(dir: &Path, addr: std::net::SocketAddr) -> Consortium {
    let coordinator = IdentityKey::from_secret_bytes(&[common::COORDINATOR_SEED; 32]);
    let mut toml = format!(
        "[coordinator]\nlisten = \"{addr}\"\npublic_key = \"{}\"\n\
         [protocol]\nphase_deadline_secs = 60\njoin_deadline_secs = 60\n\
         [job]\nid = \"restart-test\"\nkind = \"secure-sum\"\ndimension = 3\nfrac_bits = 16\nclip = 1e6\n",
        coordinator.public().to_hex()
    );
    for (i, id) in IDS.iter().enumerate() {
        toml.push_str(&format!(
            "[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
            member(i).public().to_hex()
        ));
    }
    let path = dir.join("consortium.toml");
    std::fs::write(&path, toml).expect("write");
    Consortium::load(&path).expect("consortium")
}

fn start_coordinator(
    rt: &tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    consortium: &Consortium,
    log: &Path,
) -> tokio::task::JoinHandle<
    Result<fedcredit_coordinator::JobReport, fedcredit_coordinator::CoordinatorError>,
> {
    rt.spawn(fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, None),
        consortium.clone(),
        IdentityKey::from_secret_bytes(&[common::COORDINATOR_SEED; 32]),
        Box::new(SecureSum::new(3, FixedPoint::new(16, 1e6).expect("fp"))),
        1 << 20,
        log.to_owned(),
        std::future::pending(),
    ))
}

fn start_participant(
    rt: &tokio::runtime::Runtime,
    i: usize,
    consortium: &Consortium,
) -> tokio::task::JoinHandle<Result<(), String>> {
    let settings = Settings {
        id: ParticipantId::new(IDS[i]).expect("id"),
        coordinator: format!("http://{}", consortium.listen),
        consortium: consortium.clone(),
        connect_timeout: Duration::from_secs(60),
        crash_at: None,
        chunk_words: fedcredit_proto::chunks::MAX_CHUNK_WORDS,
        journal: None,
        tls: None,
    };
    rt.spawn(async move {
        let mut input = VectorInput::new(vec![i as f64, 10.0 * i as f64, 0.25]);
        fedcredit_participant::run(settings, member(i), &mut input, std::future::pending())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// Advertisements of round 0 attempt 0 in the log so far.
fn adverts(log: &Path) -> usize {
    let bytes = std::fs::read(log).unwrap_or_default();
    roundlog::read(&bytes, None)
        .entries
        .iter()
        .filter(|e| match &e.body.entry {
            Some(log_body::Entry::Participant(s)) => pb::Message::decode(s.payload.clone())
                .is_ok_and(|m| matches!(m.body, Some(Body::Advertise(_))) && m.attempt == 0),
            _ => false,
        })
        .count()
}

#[test]
fn a_coordinator_killed_mid_attempt_and_restarted_leaves_a_verifiable_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("rounds.log");
    let first = runtime();
    let listener = first
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let consortium = consortium(dir.path(), addr);
    start_coordinator(&first, listener, &consortium, &log);

    let parties = runtime();
    let mut tasks: Vec<_> = (0..3)
        .map(|i| start_participant(&parties, i, &consortium))
        .collect();
    // bank-d joins by hand and then stays silent: the advertise-keys phase
    // waits for it until its deadline, which is when the coordinator dies.
    let d = envelope::seal(
        &member(3),
        &pb::Message {
            job_id: "restart-test".into(),
            round: 0,
            attempt: 0,
            sender: "bank-d".into(),
            body: Some(Body::Poll(pb::Poll::now(true))),
        },
    );
    parties.spawn(async move {
        let mut client = loop {
            match CoordinatorClient::connect(format!("http://{addr}")).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let _ = client.poll(d).await;
    });
    let start = Instant::now();
    while adverts(&log) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no advertisements"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The crash: every task of the first coordinator, its sockets and its
    // hold on the round log, gone. (A dead process loses them at once; a
    // runtime shut down in the background drops its tasks a moment later.)
    first.shutdown_background();

    let second = runtime();
    let listener = loop {
        match second.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(l) => break l,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(30), "rebind: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    while let Err(e) = fedcredit_proto::owner::OwnerLock::acquire(&log) {
        assert!(start.elapsed() < Duration::from_secs(30), "relock: {e}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let coordinator = start_coordinator(&second, listener, &consortium, &log);
    tasks.push(start_participant(&parties, 3, &consortium));
    let report = second
        .block_on(coordinator)
        .expect("coordinator task")
        .expect("the job finishes after the restart");
    assert_eq!(report.rounds.len(), 1);
    for t in tasks {
        parties
            .block_on(t)
            .expect("participant task")
            .expect("participant");
    }

    let bytes = std::fs::read(&log).expect("log");
    let report = verify(&bytes, &consortium);
    eprintln!("{report}");
    eprintln!("{}", show(&bytes).expect("timeline"));
    assert!(report.ok(), "{report}");
    assert_eq!(report.summary.restarts, 1);
    assert!(matches!(
        report.attempts[0].status,
        AttemptStatus::Interrupted { .. }
    ));
    assert_eq!(
        (report.attempts[1].round, report.attempts[1].attempt),
        (0, 1)
    );
    assert!(matches!(
        &report.attempts[1].status,
        AttemptStatus::Ok { contributors, .. } if contributors.len() == 4
    ));
}
