//! What the fuzz targets share: the consortia they check against, the keys
//! that let a target sign what the fuzzer wrote (so that it reaches the code
//! behind the signature checks), and what each party does with a message
//! body once its envelope has opened.
//!
//! The fixtures in `fixtures/sum/` are the files of one real
//! `fedcredit demo --secure-sum --dir …` run (see `fuzz/README.md`): its
//! consortium file, its throwaway keys, bank-a's config and its round log.
//! The credit-model consortia are the same members and keys with a small
//! logistic-regression job in place of the secure sum.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use fedcredit_crypto::identity::{IdentityKey, SignContext};
use fedcredit_crypto::ring::Ring;
use fedcredit_crypto::secagg::{Advertisement, PartyIndex};
use fedcredit_crypto::shamir::Share;
use fedcredit_proto::journal::JournalEntry;
use fedcredit_proto::shares::DealtShares;
use fedcredit_proto::v1::{self as pb, coordinator_message, message::Body};
use fedcredit_proto::{envelope, words};
use fedcredit_referee::Referee;
use fedcredit_referee::consortium::Consortium;
use prost::Message as _;

/// The secure-sum demo's consortium file.
pub const SUM_CONSORTIUM: &str = include_str!("../fixtures/sum/consortium.toml");
/// The secure-sum demo's round log, as its coordinator wrote it.
pub const SUM_LOG: &[u8] = include_bytes!("../fixtures/sum/rounds.log");
/// bank-a's participant config from the demo.
pub const BANK_A_TOML: &str = include_str!("../fixtures/sum/bank-a.toml");

const COORDINATOR_KEY: &str = include_str!("../fixtures/sum/coordinator.key");
const MEMBER_KEYS: [(&str, &str); 5] = [
    ("bank-a", include_str!("../fixtures/sum/bank-a.key")),
    ("bank-b", include_str!("../fixtures/sum/bank-b.key")),
    ("bank-c", include_str!("../fixtures/sum/bank-c.key")),
    (
        "platform-pay",
        include_str!("../fixtures/sum/platform-pay.key"),
    ),
    (
        "platform-shop",
        include_str!("../fixtures/sum/platform-shop.key"),
    ),
];

/// The `[job]` table of the small credit-model jobs: two features, three
/// encoded columns, the smallest histogram the job spec allows.
const CREDIT_JOB: &str = r#"[job]
id = "credit-fuzz"
kind = "logistic-regression"
l2 = 1.0
tol = 1e-8
max_rounds = 6
bins = 1000
privacy = "none"
"#;
const CREDIT_SCHEMA: &str = r#"
[job.schema.label]
column = "creditability"
positive = "bad"
negative = "good"

[[job.schema.features]]
name = "duration_in_month"
kind = "numeric"

[[job.schema.features]]
name = "housing"
kind = "categorical"
categories = ["for free", "own", "rent"]
"#;

/// A consortium and the secret keys of everyone in it.
#[derive(Debug)]
pub struct Fixture {
    /// The consortium file, parsed.
    pub consortium: Consortium,
    /// Its TOML.
    pub toml: String,
    /// The coordinator's identity key.
    pub coordinator: IdentityKey,
    /// Each member's id and identity key.
    pub members: BTreeMap<String, IdentityKey>,
}

/// Which job a fixture runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// The demo's secure sum (5 members, 6 values).
    SecureSum,
    /// The small credit model, Newton optimizer.
    CreditNewton,
    /// The small credit model, FedAvg optimizer.
    CreditFedavg,
}

fn key(hex_text: &str) -> IdentityKey {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_text.trim(), &mut bytes).expect("fixture key file: 64 hex digits");
    IdentityKey::from_secret_bytes(&bytes)
}

/// The consortium TOML of `job`: the demo's file, with the credit jobs'
/// `[job]` table in place of the secure sum's.
pub fn consortium_toml(job: Job) -> String {
    let credit = |extra: &str| {
        let start = SUM_CONSORTIUM
            .find("[job]")
            .expect("fixture: a [job] table");
        let end = SUM_CONSORTIUM
            .find("[[participants]]")
            .expect("fixture: participants");
        format!(
            "{}{CREDIT_JOB}{extra}{CREDIT_SCHEMA}\n{}",
            &SUM_CONSORTIUM[..start],
            &SUM_CONSORTIUM[end..]
        )
    };
    match job {
        Job::SecureSum => SUM_CONSORTIUM.to_owned(),
        Job::CreditNewton => credit("optimizer = \"newton\"\n"),
        Job::CreditFedavg => credit(
            "optimizer = \"fedavg\"\n\n[job.fedavg]\nepochs = 2\nbatch_size = 16\nlearning_rate = 0.1\nprox_mu = 0.01\n",
        ),
    }
}

/// The fixture of `job` (parsed once per process).
pub fn fixture(job: Job) -> &'static Fixture {
    static CELLS: [OnceLock<Fixture>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let cell = match job {
        Job::SecureSum => &CELLS[0],
        Job::CreditNewton => &CELLS[1],
        Job::CreditFedavg => &CELLS[2],
    };
    cell.get_or_init(|| {
        let toml = consortium_toml(job);
        let consortium =
            Consortium::parse(Path::new("consortium.toml"), &toml).expect("fixture consortium");
        Fixture {
            consortium,
            toml,
            coordinator: key(COORDINATOR_KEY),
            members: MEMBER_KEYS
                .iter()
                .map(|(id, hex)| ((*id).to_owned(), key(hex)))
                .collect(),
        }
    })
}

impl Fixture {
    /// `payload` signed by the coordinator, as its messages travel.
    pub fn sign_coordinator(&self, payload: &[u8]) -> pb::Signed {
        let signature = self
            .coordinator
            .sign(SignContext::CoordinatorMessage, payload);
        pb::Signed {
            payload: payload.to_vec().into(),
            signature: signature.to_bytes().to_vec().into(),
        }
    }

    /// `payload` signed by the member its `sender` field names, if it
    /// decodes as a participant message from a member; otherwise unchanged
    /// (with an empty signature).
    pub fn sign_participant(&self, payload: &[u8]) -> pb::Signed {
        let signature = pb::Message::decode(payload)
            .ok()
            .and_then(|m| self.members.get(&m.sender))
            .map(|k| {
                k.sign(SignContext::ParticipantMessage, payload)
                    .to_bytes()
                    .to_vec()
            })
            .unwrap_or_default();
        pb::Signed {
            payload: payload.to_vec().into(),
            signature: signature.into(),
        }
    }
}

/// What the coordinator (`service.rs`), a participant (`client.rs`) and the
/// auditor do with a participant message's body once its envelope opened:
/// the conversions to domain types at the edge.
pub fn participant_body(fixture: &Fixture, sender: PartyIndex, body: &Body) {
    let roster = &fixture.consortium.roster;
    match body {
        Body::Poll(_) | Body::FetchOutcome(_) => {}
        Body::Advertise(k) => {
            let _ = Advertisement::try_from(k);
        }
        Body::Shares(s) => {
            let _ = DealtShares::from_pb(roster, sender, s);
        }
        Body::EpochShares(s) => {
            for slots in [1, 2, 16] {
                if let Ok(slots) = fedcredit_crypto::secagg::epoch::Slots::new(slots) {
                    let _ =
                        fedcredit_proto::epoch::EpochDealtShares::from_pb(roster, sender, slots, s);
                }
            }
        }
        Body::SlotReveal(r) => {
            let _ = fedcredit_proto::epoch::reveal_from_pb(roster, r);
        }
        Body::MaskedInput(m) => {
            let _ = words::from_bytes("masked input", &m.values);
            for limbs in 1..=4 {
                if let Ok(ring) = Ring::new(limbs) {
                    let mut acc = vec![0u64; m.values.len() / 8];
                    let _ = words::add_le_bytes("masked input", ring, &mut acc, &m.values);
                }
            }
        }
        Body::MaskedChunk(c) => {
            let _ = fedcredit_proto::chunks::header(c);
        }
        Body::Consistency(c) => {
            let _ = fedcredit_crypto::secagg::SurvivorDigest::from_bytes(&c.survivors_digest);
            let _: Result<[u8; 32], _> = c.session_id.as_ref().try_into();
        }
        Body::Unmask(u) => {
            for s in u.self_mask_shares.iter().chain(&u.key_shares) {
                let _ = roster.member(&s.owner);
                let _ = Share::from_bytes(&s.share);
            }
        }
        Body::Leave(l) => {
            let _ = pb::ReasonCode::label_of(l.code);
        }
    }
}

/// Opens a participant envelope against the fixture's roster and, if it
/// opens, converts its body as the receiving side does.
pub fn open_participant(fixture: &Fixture, signed: &pb::Signed) {
    if let Ok(o) = envelope::open(signed, &fixture.consortium.roster)
        && let Some(body) = &o.message.body
    {
        let _ = body.phase_name();
        participant_body(fixture, o.sender.index, body);
    }
}

/// What a participant does with a coordinator message once its envelope
/// opened: an announcement is checked by the referee, resumed from the
/// outcome digests it lists (none absorbed here, so a listed history is
/// refused, as a member that cannot fetch it would); an outcome is absorbed
/// as the next round.
pub fn coordinator_body(fixture: &Fixture, message: &pb::CoordinatorMessage, signed: &pb::Signed) {
    let consortium = &fixture.consortium;
    match &message.body {
        Some(coordinator_message::Body::Announce(a)) => {
            for d in &a.departed {
                let _ = pb::ReasonCode::label_of(d.code);
            }
            let _ = fedcredit_crypto::secagg::announcement_digest(&signed.payload);
            if let Ok(referee) = Referee::resume(consortium, None, &a.previous_outcome_digests) {
                let _ = referee.allowed();
                if let Ok(plan) = referee.check_announcement(message.round, a) {
                    let _ = referee.digest(&plan);
                }
            }
        }
        Some(coordinator_message::Body::Outcome(o)) => {
            let _ = words::from_bytes("round outcome", &o.sum);
            if let Ok(mut referee) = Referee::new(consortium) {
                let _ = referee.absorb_signed(signed);
            }
        }
        // What `participant --serve` does with an offer: parse the spec,
        // check it against the consortium, then against a consent policy.
        Some(coordinator_message::Body::Offer(o)) => {
            if let Ok(spec) = fedcredit_referee::consortium::JobSpec::from_json(&o.spec_json)
                && let Ok(job) = consortium.with_job(spec, std::path::Path::new("offer"))
            {
                let _ = fedcredit_participant::policy::Policy::only("secure-sum").check(&job);
            }
        }
        Some(coordinator_message::Body::Finished(_)) | None => {}
    }
}

/// Opens a coordinator envelope and, if it opens, handles its body as a
/// participant does.
pub fn open_coordinator(fixture: &Fixture, signed: &pb::Signed) {
    if let Ok((message, _checked)) =
        envelope::open_coordinator(signed, fixture.consortium.roster.coordinator())
    {
        coordinator_body(fixture, &message, signed);
    }
}

/// Splits a fuzz input into its first byte (a mode or selector) and the
/// rest; an empty input is mode 0 with no data.
pub fn split_mode(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((m, rest)) => (*m, rest),
        None => (0, data),
    }
}

/// The journal `member` would have written for the records of `log`: one
/// entry per message of its in the log, with the task digest and
/// contributor set on masked inputs and confirmations (the secure-sum job's
/// one task). Used as the journal the round-log targets cross-check, and to
/// write the journal target's seeds.
pub fn journal_of(fixture: &Fixture, log: &[u8], member: &str) -> Vec<JournalEntry> {
    use fedcredit_proto::roundlog;
    use fedcredit_proto::v1::log_body::Entry;
    use sha2::{Digest, Sha256};

    let consortium = &fixture.consortium;
    let digest = Referee::new(consortium)
        .ok()
        .and_then(|r| r.next_plan().map(|p| r.digest(&p).to_hex()));
    let file = roundlog::read(log, Some(consortium.roster.coordinator()));
    let mut everyone: Vec<String> = consortium
        .roster
        .members()
        .map(|m| m.id.to_string())
        .collect();
    everyone.sort();
    let mut out = Vec::new();
    for e in &file.entries {
        let Some(Entry::Participant(signed)) = &e.body.entry else {
            continue;
        };
        let Ok(o) = envelope::open(signed, &consortium.roster) else {
            continue;
        };
        if o.sender.id.as_str() != member {
            continue;
        }
        let phase = o.message.body.as_ref().map_or("empty", Body::phase_name);
        let contributors = match &o.message.body {
            // The fixture's one round has no dropouts: U3 is everyone.
            Some(Body::MaskedInput(_) | Body::MaskedChunk(_) | Body::Consistency(_)) => {
                Some(everyone.clone())
            }
            _ => None,
        };
        out.push(JournalEntry {
            job: o.message.job_id.clone(),
            round: o.message.round,
            attempt: o.message.attempt,
            phase: phase.to_owned(),
            payload_sha256: hex::encode(Sha256::digest(&signed.payload)),
            signature: hex::encode(&signed.signature),
            unix_millis: e.body.unix_millis,
            task: contributors.as_ref().and(digest.clone()),
            contributors,
            contribution: None,
        });
    }
    out
}
