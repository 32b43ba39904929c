//! The operator's job API under attack: commands signed by someone else,
//! tampered, replayed, stale or from the future, a job id that tries to
//! leave the state directory, and a request sized to exhaust memory. Each
//! attack is sent to a real service over gRPC, and a control command
//! signed properly is accepted, so the refusals are not an API that
//! refuses everything.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fedcredit_coordinator::host::{JobFactory, serve};
use fedcredit_coordinator::{JobDriver, JobReport, SecureSum};
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_proto::envelope;
use fedcredit_proto::v1::admin_client::AdminClient;
use fedcredit_proto::v1::{self as pb, admin_command::Action, admin_reply::Body};
use fedcredit_referee::consortium::{Consortium, JobKind};
use tonic::Code;

struct Sums;

impl JobFactory for Sums {
    fn driver(&self, c: &Consortium) -> Result<Box<dyn JobDriver>, String> {
        match &c.job.kind {
            JobKind::SecureSum {
                dimension,
                frac_bits,
                clip,
                ..
            } => Ok(Box::new(SecureSum::new(
                *dimension,
                FixedPoint::new(*frac_bits, *clip).map_err(|e| e.to_string())?,
            ))),
            _ => Err("sums only".into()),
        }
    }

    fn write_results(&self, _: &Consortium, _: &JobReport, out: &Path) -> Result<(), String> {
        std::fs::write(out.join("done"), b"").map_err(|e| e.to_string())
    }
}

fn operator() -> IdentityKey {
    IdentityKey::from_secret_bytes(&[9; 32])
}

fn member(i: u8) -> IdentityKey {
    IdentityKey::from_secret_bytes(&[i + 1; 32])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spec(id: &str) -> String {
    format!(
        "[job]\nid = \"{id}\"\nkind = \"secure-sum\"\ndimension = 3\nfrac_bits = 16\nclip = 1e6\n"
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn command(action: Action, issued_at_ms: u64, nonce: u8) -> pb::AdminCommand {
    pb::AdminCommand {
        issued_at_ms,
        nonce: vec![nonce; 16].into(),
        action: Some(action),
    }
}

/// A service in `dir` (members never connect: jobs wait in their lobby).
async fn start(dir: &Path) -> AdminClient<tonic::transport::Channel> {
    let (port, admin) = (free_port(), free_port());
    let mut toml = format!(
        "[coordinator]\nlisten = \"127.0.0.1:{port}\"\npublic_key = \"{}\"\nplaintext = true\n\
         state_dir = \"jobs\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
         [protocol]\njoin_deadline_secs = 600\n\n{}",
        operator().public().to_hex(),
        spec("in-the-file")
    );
    for i in 0..3 {
        toml.push_str(&format!(
            "[[participants]]\nid = \"bank-{i}\"\npublic_key = \"{}\"\n",
            member(i).public().to_hex()
        ));
    }
    let consortium = Consortium::parse(&dir.join("consortium.toml"), &toml).unwrap();
    tokio::spawn(serve(
        consortium,
        operator(),
        None,
        Arc::new(Sums),
        None,
        std::future::pending(),
    ));
    loop {
        match AdminClient::connect(format!("http://127.0.0.1:{admin}")).await {
            Ok(c) => return c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn jobs(client: &mut AdminClient<tonic::transport::Channel>, nonce: u8) -> Vec<String> {
    let list = command(Action::List(pb::ListJobs {}), now_ms(), nonce);
    match client
        .call(envelope::seal_admin(&operator(), &list))
        .await
        .unwrap()
        .into_inner()
        .body
    {
        Some(Body::List(l)) => l.jobs.into_iter().map(|j| j.id).collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn only_fresh_commands_signed_by_the_operator_key_are_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = start(dir.path()).await;

    // A member (who may collude with nobody here, but holds a consortium
    // key) signs a submission: refused.
    let forged = envelope::seal_admin(&member(0), &command(Action::Submit(spec("x")), now_ms(), 1));
    let e = client.call(forged).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // A properly signed command whose bytes were changed in flight: refused.
    let mut tampered = envelope::seal_admin(
        &operator(),
        &command(Action::Submit(spec("y")), now_ms(), 2),
    );
    let mut bytes = tampered.command.to_vec();
    let at = bytes.len() - 3;
    bytes[at] ^= 1;
    tampered.command = bytes.into();
    let e = client.call(tampered).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // Control: the operator's command is obeyed ...
    let good = envelope::seal_admin(
        &operator(),
        &command(Action::Submit(spec("z")), now_ms(), 3),
    );
    let reply = client.call(good.clone()).await.unwrap().into_inner();
    assert!(matches!(reply.body, Some(Body::Submitted(s)) if s.id == "z"));
    // ... once: the same request again is a replay.
    let e = client.call(good).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("received before"), "{e:?}");

    // Validly signed but issued five minutes ago, or five minutes ahead.
    for skew in [-300_000i64, 300_000] {
        let at = (now_ms() as i64 + skew) as u64;
        let old = envelope::seal_admin(&operator(), &command(Action::Submit(spec("w")), at, 4));
        let e = client.call(old).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    }

    assert_eq!(jobs(&mut client, 5).await, ["z"]);
}

#[tokio::test]
async fn a_job_id_cannot_reach_outside_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = start(dir.path()).await;
    for (n, id) in ["../escape", "a/b", ".hidden"].into_iter().enumerate() {
        let c = envelope::seal_admin(
            &operator(),
            &command(Action::Submit(spec(id)), now_ms(), 10 + n as u8),
        );
        let e = client.call(c).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{id}: {e:?}");
        assert!(e.message().contains("names the job's folder"), "{e:?}");
    }
    assert!(!dir.path().join("escape").exists());
    assert!(!dir.path().join("jobs/a").exists());
    // A spec the consortium cannot run is refused naming the key.
    let bad = spec("d0").replace("dimension = 3", "dimension = 0");
    let c = envelope::seal_admin(&operator(), &command(Action::Submit(bad), now_ms(), 20));
    let e = client.call(c).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("job.dimension"), "{e:?}");
    assert!(jobs(&mut client, 21).await.is_empty());
}

#[tokio::test]
async fn a_request_sized_to_exhaust_memory_is_refused_before_it_is_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = start(dir.path()).await;
    let huge = format!("{}# {}\n", spec("big"), "x".repeat(8 << 20));
    let c = envelope::seal_admin(&operator(), &command(Action::Submit(huge), now_ms(), 30));
    let e = client.call(c).await.unwrap_err();
    // tonic's refusal of a message past the service's 1 MiB limit.
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("too large"), "{e:?}");
    // The service still answers.
    assert!(jobs(&mut client, 31).await.is_empty());
}

#[tokio::test]
async fn queued_and_running_jobs_are_aborted_and_an_ended_one_cannot_be() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = start(dir.path()).await;
    // "r" runs (waiting for members who never come); "q" queues behind it.
    for (n, id) in ["r", "q"].into_iter().enumerate() {
        let c = envelope::seal_admin(
            &operator(),
            &command(Action::Submit(spec(id)), now_ms(), 40 + n as u8),
        );
        client.call(c).await.unwrap();
    }
    let abort = |id: &str, n| {
        envelope::seal_admin(&operator(), &command(Action::Abort(id.into()), now_ms(), n))
    };
    let reply = client.call(abort("q", 42)).await.unwrap().into_inner();
    assert!(matches!(reply.body, Some(Body::Aborted(s)) if s.state == "aborted"));
    let e = client.call(abort("q", 43)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let state = std::fs::read_to_string(dir.path().join("jobs/q/state.json")).unwrap();
    assert!(state.contains("\"aborted\""), "{state}");
    assert!(
        !dir.path().join("jobs/q/rounds.log").exists(),
        "a queued job never started"
    );

    // The running job ends through its actor: signed in its round log.
    client.call(abort("r", 44)).await.unwrap();
    let log = dir.path().join("jobs/r/rounds.log");
    for n in 0.. {
        let state = std::fs::read_to_string(dir.path().join("jobs/r/state.json")).unwrap();
        if state.contains("\"aborted\"") {
            break;
        }
        assert!(n < 500, "the running job was not aborted: {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let timeline = fedcredit_audit::show(&std::fs::read(&log).unwrap())
        .unwrap()
        .to_string();
    assert!(timeline.contains("aborted by the operator"), "{timeline}");
    assert!(
        !timeline.contains("RESTARTED"),
        "an abort is not a restart: {timeline}"
    );
}
