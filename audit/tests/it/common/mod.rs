//! Real round logs for the audit tests: a coordinator and its participants
//! run a job in this process over loopback gRPC, and the coordinator writes
//! its log exactly as in production. Each fixture runs once per test binary.
//!
//! Also: helpers to take a log apart and put it back together, re-signed
//! with the coordinator key (a malicious coordinator can always re-sign its
//! own log; only the recomputation can catch what it changed).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod epoch;
pub mod handmade;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use fedcredit_coordinator::{JobDriver, ModelFit, SecureSum};
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_crypto::secagg::Thresholds;
use fedcredit_model::job::{ModelJobSpec, OptimizerKind};
use fedcredit_model::privacy::{PrivacySetting, PrivacySpec};
use fedcredit_model::schema::Feature;
use fedcredit_model::{LabelSpec, Schema};
use fedcredit_participant::Settings;
use fedcredit_participant::contribution::{Contributor, VectorInput};
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::load_csv;
use fedcredit_proto::roster::{ParticipantId, Roster};
use fedcredit_proto::roundlog::{self, GENESIS};
use fedcredit_proto::v1::{LogBody, Message, Signed, log_body, message::Body};
use fedcredit_referee::consortium::{CohortPolicy, Consortium, JobKind, JobSpec, ProtocolSettings};
use prost::Message as _;

/// A finished job's log and everything needed to check and tamper with it.
pub struct Fixture {
    /// The round log as the coordinator wrote it.
    pub log: Vec<u8>,
    /// The consortium file the auditor checks it against.
    pub consortium: Consortium,
    /// The coordinator's secret key (to re-sign tampered logs).
    pub coordinator: [u8; 32],
    /// Each member's id and secret key.
    pub members: Vec<(String, [u8; 32])>,
}

impl Fixture {
    /// The coordinator's identity key.
    pub fn coordinator_key(&self) -> IdentityKey {
        IdentityKey::from_secret_bytes(&self.coordinator)
    }

    /// A member's identity key.
    pub fn member_key(&self, id: &str) -> IdentityKey {
        let (_, k) = self
            .members
            .iter()
            .find(|(m, _)| m == id)
            .expect("a member");
        IdentityKey::from_secret_bytes(k)
    }
}

pub const COORDINATOR_SEED: u8 = 99;

fn member_seed(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs a job to its end; returns the log's bytes.
async fn run_job(
    listener: tokio::net::TcpListener,
    consortium: &Consortium,
    driver: Box<dyn JobDriver>,
    contributors: Vec<(String, Box<dyn Contributor>)>,
    log_path: &Path,
    chunk_words: usize,
) -> Vec<u8> {
    let addr = listener.local_addr().expect("addr");
    let key = IdentityKey::from_secret_bytes(&[COORDINATOR_SEED; 32]);
    let max_bytes = fedcredit_coordinator::max_message_bytes(fedcredit_coordinator::max_words(
        &consortium.job.kind,
    ));
    let coordinator = tokio::spawn(fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, None),
        consortium.clone(),
        key,
        driver,
        max_bytes,
        log_path.to_owned(),
        std::future::pending(),
    ));
    let mut tasks = Vec::new();
    for (i, (id, mut contributor)) in contributors.into_iter().enumerate() {
        let settings = Settings {
            id: ParticipantId::new(&id).expect("id"),
            coordinator: format!("http://{addr}"),
            consortium: consortium.clone(),
            connect_timeout: Duration::from_secs(60),
            crash_at: None,
            chunk_words,
            journal: None,
            tls: None,
        };
        let key = IdentityKey::from_secret_bytes(&member_seed(i));
        tasks.push(tokio::spawn(async move {
            fedcredit_participant::run(settings, key, contributor.as_mut(), std::future::pending())
                .await
                .map(|_| ())
                .map_err(|e| format!("{id}: {e}"))
        }));
    }
    coordinator
        .await
        .expect("coordinator task")
        .expect("the job succeeds");
    for t in tasks {
        t.await.expect("participant task").expect("participant");
    }
    std::fs::read(log_path).expect("read the round log")
}

/// A secure-sum job among four lenders (dimension 5), checked against a
/// consortium file parsed from TOML, as an auditor would load it.
pub fn secure_sum() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| secure_sum_job(fedcredit_proto::chunks::MAX_CHUNK_WORDS))
}

/// The same job with masked inputs of at most two words a message: each
/// member streams its five words as three signed chunks (2, 2, 1).
pub fn secure_sum_chunked() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| secure_sum_job(2))
}

fn secure_sum_job(chunk_words: usize) -> Fixture {
    {
        let ids = ["bank-a", "bank-b", "bank-c", "bank-d"];
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let coordinator = IdentityKey::from_secret_bytes(&[COORDINATOR_SEED; 32]);
            let mut toml = format!(
                "[coordinator]\nlisten = \"{addr}\"\npublic_key = \"{}\"\n\
                 [protocol]\nphase_deadline_secs = 30\njoin_deadline_secs = 30\n\
                 [job]\nid = \"exposure-test\"\nkind = \"secure-sum\"\ndimension = 5\nfrac_bits = 16\nclip = 1e9\n",
                coordinator.public().to_hex()
            );
            for (i, id) in ids.iter().enumerate() {
                toml.push_str(&format!(
                    "[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
                    IdentityKey::from_secret_bytes(&member_seed(i))
                        .public()
                        .to_hex()
                ));
            }
            let path = dir.path().join("consortium.toml");
            std::fs::write(&path, &toml).expect("write consortium.toml");
            let consortium = Consortium::load(&path).expect("consortium");
            let driver = Box::new(SecureSum::new(5, FixedPoint::new(16, 1e9).expect("fp")));
            let contributors: Vec<(String, Box<dyn Contributor>)> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let values = (0..5).map(|j| (i * 10 + j) as f64 * 1000.5).collect();
                    (
                        id.to_string(),
                        Box::new(VectorInput::new(values)) as Box<dyn Contributor>,
                    )
                })
                .collect();
            let log = run_job(
                listener,
                &consortium,
                driver,
                contributors,
                &dir.path().join("rounds.log"),
                chunk_words,
            )
            .await;
            Fixture {
                log,
                consortium,
                coordinator: [COORDINATOR_SEED; 32],
                members: ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (id.to_string(), member_seed(i)))
                    .collect(),
            }
        })
    }
}

const GERMAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/german_credit.csv");

fn write_csv(path: &Path, header: &[String], rows: &[Vec<String>]) {
    let mut w = csv::Writer::from_path(path).expect("create csv");
    w.write_record(header).expect("header");
    for r in rows {
        w.write_record(r).expect("row");
    }
    w.flush().expect("flush");
}

/// A credit-model job (Newton, then a pooled evaluation) among three
/// lenders, each holding a third of the German credit data; the first two
/// also hold held-out rows.
pub fn credit_model() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| credit_job("german-credit-test", None))
}

/// The same job with differential privacy: ε = `PRIVATE_EPSILON`, δ = 1e-6,
/// two Newton rounds, each numeric feature's public bounds taken as its
/// range in the data.
pub fn private_credit_model() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| credit_job("german-credit-private-test", Some(PRIVATE_EPSILON)))
}

/// The credit job in epoch mode (`[protocol] setup = "epoch"`, 2 slots
/// per epoch): a setup every other round, the rounds between on slot 1.
pub fn epoch_credit_model() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let slots = fedcredit_crypto::secagg::epoch::Slots::new(2).expect("slots");
        credit_job_in("german-credit-epoch-test", None, Some(slots))
    })
}

/// ε of [`private_credit_model`].
pub const PRIVATE_EPSILON: f64 = 2.0;

/// Runs the credit job, private at ε if `epsilon` is given.
fn credit_job(job_id: &str, epsilon: Option<f64>) -> Fixture {
    credit_job_in(job_id, epsilon, None)
}

/// Runs the credit job, in epochs of `epoch_slots` if given.
fn credit_job_in(
    job_id: &str,
    epsilon: Option<f64>,
    epoch_slots: Option<fedcredit_crypto::secagg::epoch::Slots>,
) -> Fixture {
    let ids = ["lender-1", "lender-2", "lender-3"];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut reader = csv::Reader::from_path(GERMAN).expect("german_credit.csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("record").iter().map(str::to_owned).collect())
        .collect();
    let schema = Schema::infer(
        &header,
        &rows,
        LabelSpec::binary("creditability", "bad", "good"),
    )
    .expect("schema");
    let n = rows.len();
    let mut parts: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    for k in 0..ids.len() {
        let part = &rows[k * n / ids.len()..(k + 1) * n / ids.len()];
        let train = dir.path().join(format!("part-{k}.csv"));
        write_csv(&train, &header, part);
        let test = (k < 2).then(|| {
            let test = dir.path().join(format!("part-{k}-test.csv"));
            write_csv(&test, &header, &part[part.len() - 80..]);
            test
        });
        parts.push((train, test));
    }
    let spec = ModelJobSpec {
        schema: schema.clone(),
        l2: 1.0,
        tol: 1e-8,
        max_rounds: 25,
        optimizer: OptimizerKind::Newton,
        fedavg: Default::default(),
        bins: 1_000,
        privacy: Some(match epsilon {
            None => PrivacySetting::None,
            Some(epsilon) => PrivacySetting::Private(Box::new(PrivacySpec {
                epsilon,
                delta: 1e-6,
                rounds: 2,
                clip_norm: None,
                loss_clip: 10.0,
                bins: 100,
                split: Default::default(),
                bounds: numeric_ranges(&schema, &header, &rows),
            })),
        }),
        scorecard: None,
    };
    let job = JobSpec {
        id: job_id.into(),
        cohort: CohortPolicy::Fixed,
        require_all_members: false,
        kind: JobKind::LogisticRegression(spec.clone()),
    };
    let coordinator = IdentityKey::from_secret_bytes(&[COORDINATOR_SEED; 32]);
    let members = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                ParticipantId::new(id).expect("id"),
                IdentityKey::from_secret_bytes(&member_seed(i)).public(),
            )
        })
        .collect();
    let roster = Roster::new(members, coordinator.public()).expect("roster");
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let log_path = dir.path().join("rounds.log");
        let consortium = Consortium {
            path: dir.path().join("consortium.toml"),
            listen: listener.local_addr().expect("addr"),
            http_listen: None,
            state_dir: None,
            admin_listen: None,
            coordinator_key_file: None,
            coordinator_log_file: log_path.clone(),
            roster,
            protocol: ProtocolSettings {
                thresholds: Thresholds::new(ids.len(), 3, 0, 3).expect("thresholds"),
                join_deadline: Duration::from_secs(60),
                phase_deadline: Duration::from_secs(120),
                max_attempts: 1,
                epoch_slots,
            },
            job: job.clone(),
            tls: Default::default(),
        };
        let driver = Box::new(
            ModelFit::new(
                spec,
                &job.id,
                &hex::encode(job.hash()),
                fedcredit_referee::plan::noise_cohort(&consortium),
            )
            .expect("model driver"),
        );
        let contributors = ids
            .iter()
            .zip(&parts)
            .map(|(id, (train, test))| {
                let train = load_csv(train, &schema).expect("train rows");
                let test = test
                    .as_ref()
                    .map(|t| load_csv(t, &schema).expect("test rows"));
                (
                    id.to_string(),
                    Box::new(CreditData::new(train, test)) as Box<dyn Contributor>,
                )
            })
            .collect();
        let log = run_job(
            listener,
            &consortium,
            driver,
            contributors,
            &log_path,
            fedcredit_proto::chunks::MAX_CHUNK_WORDS,
        )
        .await;
        Fixture {
            log,
            consortium,
            coordinator: [COORDINATOR_SEED; 32],
            members: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.to_string(), member_seed(i)))
                .collect(),
        }
    })
}

/// Each numeric feature's `[min, max]` over `rows`: the public bounds of
/// the private fixture.
fn numeric_ranges(
    schema: &Schema,
    header: &[String],
    rows: &[Vec<String>],
) -> BTreeMap<String, [f64; 2]> {
    let mut out = BTreeMap::new();
    for f in &schema.features {
        if let Feature::Numeric { name } = f {
            let col = header.iter().position(|h| h == name).expect("column");
            let (lo, hi) = rows
                .iter()
                .map(|r| r[col].trim().parse::<f64>().expect("number"))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
            out.insert(name.clone(), [lo, if hi > lo { hi } else { lo + 1.0 }]);
        }
    }
    out
}

/// The log's record bodies (chain and signatures checked).
pub fn bodies(f: &Fixture) -> Vec<LogBody> {
    let file = roundlog::read(&f.log, Some(&f.coordinator_key().public()));
    assert_eq!(file.end, roundlog::End::Clean);
    file.entries.into_iter().map(|e| e.body).collect()
}

/// Byte offset of every record's length prefix, and the file length at the end.
pub fn offsets(log: &[u8]) -> Vec<u64> {
    let file = roundlog::read(log, None);
    let mut v: Vec<u64> = file.entries.iter().map(|e| e.offset).collect();
    v.push(file.good_len);
    v
}

/// Re-numbers, re-chains and re-signs `bodies` with the coordinator key,
/// as a dishonest coordinator could.
pub fn reseal(bodies: &[LogBody], key: &IdentityKey) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = GENESIS;
    for (seq, b) in bodies.iter().enumerate() {
        let mut b = b.clone();
        b.seq = seq as u64;
        b.prev_hash = prev.to_vec().into();
        let (framed, hash) = roundlog::seal_record(key, &b);
        out.extend_from_slice(&framed);
        prev = hash;
    }
    out
}

/// A participant record's decoded message.
pub fn participant_message(b: &LogBody) -> Option<(Message, &Signed)> {
    match &b.entry {
        Some(log_body::Entry::Participant(s)) => {
            Some((Message::decode(s.payload.clone()).expect("message"), s))
        }
        _ => None,
    }
}

/// Index of the first participant record from `sender` whose body is of the
/// given kind (e.g. "masked-input") in `round`.
pub fn find_message(bodies: &[LogBody], sender: &str, kind: &str, round: u64) -> usize {
    bodies
        .iter()
        .position(|b| {
            participant_message(b).is_some_and(|(m, _)| {
                m.sender == sender && m.round == round && body_kind(m.body.as_ref()) == kind
            })
        })
        .unwrap_or_else(|| panic!("no {kind} message from {sender} in round {round}"))
}

/// The phase name of a participant message body.
pub fn body_kind(body: Option<&Body>) -> &'static str {
    body.map_or("empty", Body::phase_name)
}

/// Index of the first record whose entry matches.
pub fn find(bodies: &[LogBody], pred: impl Fn(&log_body::Entry) -> bool) -> usize {
    bodies
        .iter()
        .position(|b| b.entry.as_ref().is_some_and(&pred))
        .expect("a matching record")
}
