//! One full secure-sum round on loopback, in-process: a coordinator and
//! n = 10 participants over real gRPC, for d = 10,000 and 100,000 values,
//! in plaintext and over mutual TLS 1.3 (pinned certificates, as deployed),
//! so that TLS's cost is a ratio taken in one run.
//! Target: d = 100,000 in ≤ 0.1 s on a 2-core machine.
//!
//! ```text
//! cargo bench -p fedcredit-coordinator --bench round
//! ```
//!
//! Each iteration binds a fresh `127.0.0.1:0` listener, runs the coordinator
//! and the 10 participants as tasks on one multi-threaded runtime, and waits
//! until all of them have returned (the coordinator returns once every member
//! was told the job finished). Keys and inputs are made outside the timing.
//! No tracing subscriber is installed, so the round logs nothing.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, criterion_group, criterion_main};
use fedcredit_coordinator::SecureSum;
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_participant::Settings;
use fedcredit_participant::contribution::VectorInput;
use fedcredit_proto::roster::ParticipantId;
use fedcredit_referee::consortium::Consortium;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;

const N: u8 = 10;
const FRAC_BITS: u32 = 16;
const CLIP: f64 = 1e6;
const COORDINATOR_SEED: u8 = 100;

fn member_id(i: u8) -> String {
    format!("p{i:02}")
}

fn consortium_toml(addr: SocketAddr, dimension: usize) -> String {
    let public = |seed: u8| {
        IdentityKey::from_secret_bytes(&[seed; 32])
            .public()
            .to_hex()
    };
    let mut text = format!(
        "[coordinator]\nlisten = \"{addr}\"\npublic_key = \"{}\"\n\n\
         [protocol]\nphase_deadline_secs = 30\njoin_deadline_secs = 30\n\n\
         [job]\nid = \"bench-round\"\nkind = \"secure-sum\"\ndimension = {dimension}\n\
         frac_bits = {FRAC_BITS}\nclip = {CLIP:e}\n",
        public(COORDINATOR_SEED)
    );
    for i in 1..=N {
        text.push_str(&format!(
            "\n[[participants]]\nid = \"{}\"\npublic_key = \"{}\"\n",
            member_id(i),
            public(i)
        ));
    }
    text
}

/// Inputs on the fixed-point grid (multiples of 2^-16), so the decoded sum
/// is exact.
fn inputs(dimension: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2017);
    let scale = f64::from(1u32 << FRAC_BITS);
    let inputs: Vec<Vec<f64>> = (0..N)
        .map(|_| {
            (0..dimension)
                .map(|_| f64::from(rng.gen_range(-1_000_000_000i32..1_000_000_000)) / scale)
                .collect()
        })
        .collect();
    let mut sum = vec![0f64; dimension];
    for v in &inputs {
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x;
        }
    }
    (inputs, sum)
}

/// What one iteration consumes: the identity keys (not `Clone`) and the inputs.
struct Parties {
    coordinator: IdentityKey,
    members: Vec<(IdentityKey, VectorInput)>,
}

fn parties(inputs: &[Vec<f64>]) -> Parties {
    Parties {
        coordinator: IdentityKey::from_secret_bytes(&[COORDINATOR_SEED; 32]),
        members: (1..=N)
            .zip(inputs)
            .map(|(i, v)| {
                (
                    IdentityKey::from_secret_bytes(&[i; 32]),
                    VectorInput::new(v.clone()),
                )
            })
            .collect(),
    }
}

/// One full round; returns the coordinator's published sum. With `tls`,
/// every connection is mutual TLS 1.3 (handshakes included in the time).
async fn round(dimension: usize, parties: Parties, tls: bool) -> Vec<f64> {
    let log_dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let consortium =
        Consortium::parse(Path::new("bench.toml"), &consortium_toml(addr, dimension)).unwrap();
    let driver = SecureSum::new(dimension, FixedPoint::new(FRAC_BITS, CLIP).unwrap());
    let server_tls = tls.then(|| {
        fedcredit_transport::setup::coordinator(&consortium, &parties.coordinator)
            .unwrap()
            .unwrap()
    });
    let coordinator = tokio::spawn(fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, server_tls),
        consortium.clone(),
        parties.coordinator,
        Box::new(driver),
        fedcredit_coordinator::max_message_bytes(dimension),
        log_dir.path().join("rounds.log"),
        std::future::pending(),
    ));
    let mut tasks = Vec::with_capacity(usize::from(N));
    for (i, (key, mut input)) in (1..=N).zip(parties.members) {
        let id = ParticipantId::new(&member_id(i)).unwrap();
        let client_tls = tls.then(|| {
            fedcredit_transport::setup::member(&consortium, &id, &key, None, None).unwrap()
        });
        let settings = Settings {
            id,
            coordinator: format!("{}://{addr}", if tls { "https" } else { "http" }),
            consortium: consortium.clone(),
            connect_timeout: Duration::from_secs(30),
            crash_at: None,
            chunk_words: fedcredit_proto::chunks::MAX_CHUNK_WORDS,
            journal: None,
            tls: client_tls,
        };
        tasks.push(tokio::spawn(async move {
            fedcredit_participant::run(settings, key, &mut input, std::future::pending()).await
        }));
    }
    let mut report = coordinator.await.unwrap().unwrap();
    for t in tasks {
        let seen = t.await.unwrap().unwrap();
        assert_eq!(seen.rounds.len(), 1);
    }
    assert_eq!(report.rounds.len(), 1);
    let result = report.rounds.pop().unwrap();
    assert_eq!(result.contributors.len(), usize::from(N));
    result.sum
}

fn bench_round(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("round");
    // Rounds take tens to hundreds of milliseconds: one iteration per sample.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    for dimension in [10_000usize, 100_000] {
        let (inputs, expected) = inputs(dimension);
        for tls in [false, true] {
            // Correctness once, outside the timing.
            let sum = rt.block_on(round(dimension, parties(&inputs), tls));
            assert_eq!(sum, expected, "the published sum is wrong");
            let name = format!(
                "n{N}_d{dimension}_{}",
                if tls { "mtls" } else { "plaintext" }
            );
            group.bench_function(name, |b| {
                b.iter_batched(
                    || parties(&inputs),
                    |p| rt.block_on(round(dimension, p, tls)),
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_round);
criterion_main!(benches);
