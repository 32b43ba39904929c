//! Writes the fuzz targets' seed corpora (`fuzz/seeds/<target>/`) from the
//! fixtures: the demo's real round log and config files, the small credit
//! job run for real on rows of the bundled German credit data, and a few
//! handwritten edge cases. Run by `fuzz/make-seeds` (see `fuzz/README.md`);
//! the seeds are committed, so this runs only when the formats change.
//! Seeds committed by hand (not written here) survive a run.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use fedcredit_fuzz::{BANK_A_TOML, Fixture, Job, SUM_LOG, consortium_toml, fixture, journal_of};
use fedcredit_model::job::ModelTask;
use fedcredit_participant::contribution::Contributor;
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::load_csv;
use fedcredit_proto::roundlog;
use fedcredit_proto::v1::{self as pb, coordinator_message, log_body::Entry, message::Body};
use fedcredit_proto::words;
use fedcredit_referee::Referee;
use prost::Message as _;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const GERMAN: &str = include_str!("../../../data/german_credit.csv");

/// Lists the seeds the last run generated, one `target/name` a line: the
/// next run removes exactly those (a format change can retire a name) and
/// leaves the handwritten seeds beside them alone.
const MANIFEST: &str = "GENERATED";

/// Written by `fuzz/make-seeds` itself, after this program.
const BY_THE_SCRIPT: &str = "model_json/model-german-local.json";

struct Seeds {
    root: PathBuf,
    written: std::cell::RefCell<Vec<String>>,
}

impl Seeds {
    fn write(&self, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        self.written.borrow_mut().push(format!("{target}/{name}"));
        Ok(())
    }

    fn with_mode(&self, target: &str, name: &str, mode: u8, bytes: &[u8]) -> Result<()> {
        let mut v = vec![mode];
        v.extend_from_slice(bytes);
        self.write(target, name, &v)
    }
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    if let Ok(list) = std::fs::read_to_string(root.join(MANIFEST)) {
        for seed in list.lines().filter(|l| !l.is_empty()) {
            match std::fs::remove_file(root.join(seed)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
    }
    let s = Seeds {
        root,
        written: Default::default(),
    };
    let sum = fixture(Job::SecureSum);
    from_the_log(&s, sum)?;
    config_files(&s)?;
    let csv = small_csv(40);
    csv_rows(&s, &csv)?;
    credit_job(&s, Job::CreditNewton, "newton", &csv)?;
    credit_job(&s, Job::CreditFedavg, "fedavg", &csv)?;
    let mut written = s.written.take();
    written.push(BY_THE_SCRIPT.into());
    written.sort();
    written.dedup();
    std::fs::write(s.root.join(MANIFEST), written.join("\n") + "\n")?;
    Ok(())
}

/// Seeds taken apart from the demo's round log.
fn from_the_log(s: &Seeds, f: &Fixture) -> Result<()> {
    s.write("roundlog", "demo-sum.log", SUM_LOG)?;
    s.write(
        "roundlog",
        "demo-sum-torn.log",
        &SUM_LOG[..SUM_LOG.len() - 7],
    )?;
    let file = roundlog::read(SUM_LOG, Some(f.consortium.roster.coordinator()));
    if file.end != roundlog::End::Clean {
        return Err(format!("the fixture log does not read cleanly: {:?}", file.end).into());
    }

    // audit_replay: every record body, length-delimited.
    let mut bodies = Vec::new();
    for e in &file.entries {
        e.body.encode_length_delimited(&mut bodies)?;
    }
    s.with_mode("audit_replay", "demo-sum", 0, &bodies)?;

    let mut kinds_seen = std::collections::BTreeSet::new();
    let mut relayed: [Vec<pb::Signed>; 3] = Default::default();
    let mut outcomes: Vec<pb::Signed> = Vec::new();
    for e in &file.entries {
        match &e.body.entry {
            Some(Entry::Participant(signed)) => {
                let m = pb::Message::decode(signed.payload.clone())?;
                let Some(body) = &m.body else { continue };
                let kind = body.phase_name();
                match body {
                    Body::Advertise(_) => relayed[0].push(signed.clone()),
                    Body::Shares(_) => relayed[1].push(signed.clone()),
                    Body::Consistency(_) => relayed[2].push(signed.clone()),
                    _ => {}
                }
                if !kinds_seen.insert(kind) {
                    continue;
                }
                s.with_mode(
                    "envelope",
                    &format!("signed-{kind}"),
                    0,
                    &signed.encode_to_vec(),
                )?;
                s.with_mode("envelope", &format!("payload-{kind}"), 1, &signed.payload)?;
                let (selector, bytes) = match body {
                    Body::Advertise(b) => (0, b.encode_to_vec()),
                    Body::Shares(b) => (1, b.encode_to_vec()),
                    Body::MaskedInput(b) => (2, b.encode_to_vec()),
                    Body::Consistency(b) => (3, b.encode_to_vec()),
                    Body::Unmask(b) => (4, b.encode_to_vec()),
                    Body::Leave(b) => (5, b.encode_to_vec()),
                    Body::MaskedChunk(b) => (15, b.encode_to_vec()),
                    Body::EpochShares(b) => (16, b.encode_to_vec()),
                    Body::SlotReveal(b) => (17, b.encode_to_vec()),
                    Body::Poll(_) | Body::FetchOutcome(_) => continue,
                };
                s.with_mode(
                    "message_bodies",
                    &format!("{selector:02}-{kind}"),
                    selector,
                    &bytes,
                )?;
                s.with_mode(
                    "message_bodies",
                    &format!("14-message-{kind}"),
                    14,
                    &signed.payload,
                )?;
            }
            Some(Entry::Announcement(signed)) => {
                s.with_mode(
                    "envelope",
                    "signed-announcement",
                    0,
                    &signed.encode_to_vec(),
                )?;
                s.with_mode("envelope", "payload-announcement", 2, &signed.payload)?;
                let m = pb::CoordinatorMessage::decode(signed.payload.clone())?;
                if let Some(coordinator_message::Body::Announce(a)) = &m.body {
                    s.with_mode("message_bodies", "06-announcement", 6, &a.encode_to_vec())?;
                }
            }
            Some(Entry::RoundCompleted(rc)) => {
                if let Some(signed) = &rc.outcome {
                    outcomes.push(signed.clone());
                    s.with_mode("envelope", "signed-outcome", 0, &signed.encode_to_vec())?;
                    s.with_mode("envelope", "payload-outcome", 2, &signed.payload)?;
                    let m = pb::CoordinatorMessage::decode(signed.payload.clone())?;
                    if let Some(coordinator_message::Body::Outcome(o)) = &m.body {
                        s.with_mode("message_bodies", "07-outcome", 7, &o.encode_to_vec())?;
                    }
                }
                let survivors = pb::Survivors {
                    survivors: rc.contributors.clone(),
                };
                s.with_mode(
                    "message_bodies",
                    "10-survivors",
                    10,
                    &survivors.encode_to_vec(),
                )?;
                s.write(
                    "model_json",
                    "progress-secure-sum.json",
                    rc.progress_json.as_bytes(),
                )?;
            }
            Some(Entry::JobStarted(js)) => {
                s.write("model_json", "job-spec-secure-sum.json", &js.job_spec_json)?;
            }
            _ => {}
        }
    }
    let finished = pb::CoordinatorMessage {
        job_id: f.consortium.job.id.clone(),
        round: 1,
        attempt: 0,
        body: Some(coordinator_message::Body::Finished(pb::JobFinished {
            ok: true,
            reason: String::new(),
            outcome_digests: outcomes
                .iter()
                .map(|o| {
                    fedcredit_crypto::secagg::outcome_digest(&o.payload)
                        .to_vec()
                        .into()
                })
                .collect(),
            departed: Vec::new(),
        })),
    };
    s.with_mode("envelope", "payload-finished", 2, &finished.encode_to_vec())?;
    let [adverts, dealt, confirmations] = relayed;
    let adverts = pb::AdvertisedKeys { adverts };
    s.with_mode(
        "message_bodies",
        "08-advertised-keys",
        8,
        &adverts.encode_to_vec(),
    )?;
    let dealt = pb::SharesForYou { dealt };
    s.with_mode(
        "message_bodies",
        "09-shares-for-you",
        9,
        &dealt.encode_to_vec(),
    )?;
    let sigs = pb::SurvivorSignatures { confirmations };
    s.with_mode(
        "message_bodies",
        "11-survivor-signatures",
        11,
        &sigs.encode_to_vec(),
    )?;

    // Codec fields (frac_bits, clip, limbs) and a few words.
    let mut narrow = 16u32.to_le_bytes().to_vec();
    narrow.extend_from_slice(&1e12f64.to_le_bytes());
    narrow.push(0);
    narrow.extend_from_slice(&words::to_bytes(&[1 << 16, u64::MAX, 42]));
    s.with_mode("message_bodies", "13-codec-narrow", 13, &narrow)?;
    let mut wide = 64u32.to_le_bytes().to_vec();
    wide.extend_from_slice(&0f64.to_le_bytes());
    wide.push(3);
    wide.extend_from_slice(&words::to_bytes(&[0, 1, 0, u64::MAX, u64::MAX, u64::MAX]));
    s.with_mode("message_bodies", "13-codec-wide", 13, &wide)?;

    // journal: bank-a's, whole, torn, and with another member's lines.
    let journal = |member: &str| -> Result<String> {
        let mut text = String::new();
        for e in journal_of(f, SUM_LOG, member) {
            text.push_str(&serde_json::to_string(&e)?);
            text.push('\n');
        }
        Ok(text)
    };
    let a = journal("bank-a")?;
    s.write("journal", "bank-a.journal", a.as_bytes())?;
    s.write(
        "journal",
        "bank-a-torn.journal",
        &a.as_bytes()[..a.len() - 20],
    )?;
    let b = journal("platform-shop")?;
    s.write("journal", "mixed.journal", format!("{a}\n{b}").as_bytes())?;
    Ok(())
}

fn config_files(s: &Seeds) -> Result<()> {
    for (job, name) in [
        (Job::SecureSum, "secure-sum.toml"),
        (Job::CreditNewton, "credit-newton.toml"),
        (Job::CreditFedavg, "credit-fedavg.toml"),
    ] {
        s.write("consortium_toml", name, consortium_toml(job).as_bytes())?;
    }
    s.write("participant_toml", "bank-a.toml", BANK_A_TOML.as_bytes())?;
    let credit = "id = \"bank-b\"\nkey_file = \"keys/bank-b.key\"\n\
                  coordinator = \"https://coordinator.example:50051\"\n\
                  consortium = \"consortium.toml\"\ndata = \"bank-b-loans.csv\"\n\
                  test = \"bank-b-holdout.csv\"\njournal = \"bank-b.journal\"\n\
                  connect_timeout_secs = 2.5\n";
    s.write("participant_toml", "bank-b-credit.toml", credit.as_bytes())?;
    // A timeout no `Duration` can hold (it used to panic).
    let huge = BANK_A_TOML.to_owned() + "connect_timeout_secs = 1e300\n";
    s.write("participant_toml", "huge-timeout.toml", huge.as_bytes())?;
    Ok(())
}

/// The first `rows` applicants of the German credit data, with the small
/// credit jobs' columns (and the label) only.
fn small_csv(rows: usize) -> String {
    let mut reader = csv::Reader::from_reader(GERMAN.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("the bundled data has a header")
        .iter()
        .map(str::to_owned)
        .collect();
    let cols: Vec<usize> = ["duration_in_month", "housing", "creditability"]
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .expect("a column of the data")
        })
        .collect();
    let mut out = String::from("duration_in_month,housing,creditability\n");
    for r in reader.records().take(rows) {
        let r = r.expect("the bundled data is valid CSV");
        let cells: Vec<&str> = cols.iter().map(|&i| &r[i]).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn csv_rows(s: &Seeds, small: &str) -> Result<()> {
    s.write("csv_rows", "german-3-columns.csv", small.as_bytes())?;
    // All columns (quoted cells with commas), ten applicants.
    let head: Vec<&str> = GERMAN.lines().take(11).collect();
    s.write(
        "csv_rows",
        "german-head.csv",
        (head.join("\n") + "\n").as_bytes(),
    )?;
    // Line ends, a BOM, blank lines, quotes across lines, a short record.
    s.write(
        "csv_rows",
        "crlf-bom-blank.csv",
        "\u{feff}housing,duration_in_month,creditability,note\r\n\r\nown,12,bad,\"two\r\nlines\"\r\n\r\n rent , 6 ,good,x\rfree,7,good\n"
            .as_bytes(),
    )?;
    Ok(())
}

/// Runs the small credit job for real: one participant's contribution per
/// round (bank-a's, on `csv`'s rows), encoded with the round's codec, is the
/// published sum. Writes the sums as `job_replay` seeds (with and without
/// the evaluation round), the tasks as `message_bodies` seeds and the fitted
/// model and progress as `model_json` seeds.
fn credit_job(s: &Seeds, job: Job, name: &str, csv: &str) -> Result<()> {
    let f = fixture(job);
    let dir = tempfile::tempdir()?;
    let (train, test) = {
        let lines: Vec<&str> = csv.lines().collect();
        let (header, rows) = lines.split_first().ok_or("an empty CSV")?;
        let split = rows.len() * 3 / 4;
        let train = dir.path().join("train.csv");
        let test = dir.path().join("test.csv");
        std::fs::write(&train, format!("{header}\n{}\n", rows[..split].join("\n")))?;
        std::fs::write(&test, format!("{header}\n{}\n", rows[split..].join("\n")))?;
        (train, test)
    };
    let fedcredit_referee::consortium::JobKind::LogisticRegression(spec) = &f.consortium.job.kind
    else {
        return Err("a credit fixture without a model job".into());
    };
    let mut data = CreditData::new(
        load_csv(&train, &spec.schema)?,
        Some(load_csv(&test, &spec.schema)?),
    );
    let mut referee = Referee::new(&f.consortium)?;
    let contributors: Vec<String> = f
        .consortium
        .roster
        .members()
        .map(|m| m.id.to_string())
        .collect();
    let mut sums = vec![job_mode(job)];
    let mut before_evaluation = None;
    let mut round = 0u64;
    while let Some(plan) = referee.next_plan() {
        if let pb::round_announcement::Task::ModelTask(bytes) = &plan.task {
            let task = ModelTask::from_bytes(bytes)?;
            if matches!(task.on_rows(), ModelTask::Evaluate { .. }) {
                before_evaluation = Some(sums.clone());
            }
            s.with_mode(
                "message_bodies",
                &format!("12-task-{name}-{round}-{}", task.name()),
                12,
                bytes,
            )?;
        }
        let values = data.contribute(round, &plan.task, plan.dimension)?;
        let encoded = plan.codec.encode(&values, f.consortium.roster.len())?;
        let bytes = words::to_bytes(&encoded);
        sums.extend_from_slice(&bytes);
        let message = pb::CoordinatorMessage {
            job_id: f.consortium.job.id.clone(),
            round,
            attempt: 0,
            body: Some(coordinator_message::Body::Outcome(pb::RoundOutcome {
                sum: bytes.into(),
                contributors: contributors.clone(),
            })),
        };
        let published = referee
            .absorb_signed(&f.sign_coordinator(&message.encode_to_vec()))?
            .clone();
        s.write(
            "model_json",
            &format!("progress-{name}-{round}.json"),
            published.progress.as_bytes(),
        )?;
        round += 1;
    }
    if job == Job::CreditNewton {
        s.write("job_replay", &format!("{name}-whole"), &sums)?;
    }
    if let Some(b) = before_evaluation {
        s.write("job_replay", &format!("{name}-until-evaluation"), &b)?;
    }
    let model = referee.rules().model().ok_or("the job did not end")?;
    s.write(
        "model_json",
        &format!("model-{name}.json"),
        serde_json::to_string_pretty(model)?.as_bytes(),
    )?;
    s.write(
        "model_json",
        &format!("job-spec-{name}.json"),
        &serde_json::to_vec(&f.consortium.job)?,
    )?;
    Ok(())
}

/// The `job_replay` mode byte of a credit fixture.
fn job_mode(job: Job) -> u8 {
    match job {
        Job::CreditFedavg => 1,
        _ => 0,
    }
}
