//! End-to-end tests of the credit model: `fedcredit local` against the
//! recorded scikit-learn fit, daemons as separate processes (one of which
//! leaves over a bad CSV), and `fedcredit score`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Splits the German credit data into `k` contiguous CSV files in `dir`.
fn split(dir: &Path, k: usize) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(repo().join("data/german_credit.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let per = rows.len().div_ceil(k);
    rows.chunks(per)
        .enumerate()
        .map(|(i, chunk)| {
            let path = dir.join(format!("part-{i}.csv"));
            std::fs::write(&path, format!("{header}\n{}\n", chunk.join("\n"))).unwrap();
            path
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn wait(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "process overstayed {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The federated Newton fit over real gRPC equals scikit-learn's
/// `LogisticRegression(C = 1/l2)` on the pooled, standardized rows.
#[test]
fn local_matches_scikit_learn_on_german_credit() {
    let dir = tempfile::tempdir().unwrap();
    let parts = split(dir.path(), 4);
    let out = dir.path().join("out");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "local",
        "--label",
        "creditability",
        "--positive",
        "bad",
        "--negative",
        "good",
        "--l2",
        "1",
        "--out",
    ])
    .arg(&out);
    for p in &parts {
        cmd.arg("--data").arg(p);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rounds = json(&out.join("model.json"))["rounds"].as_u64().unwrap();
    progress_lines_are_plain(&o, rounds + 3, "≤28");

    let reference = json(&repo().join("model/reference/german_credit_l2_1.json"));
    let model = json(&out.join("model.json"));
    let names: Vec<&str> = model["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let coefs = model["standardized"]["coefficients"].as_array().unwrap();
    let expected = reference["coefficients"].as_array().unwrap();
    assert_eq!(names.len(), expected.len());
    let mut worst = (model["standardized"]["intercept"].as_f64().unwrap()
        - reference["intercept"].as_f64().unwrap())
    .abs();
    for ((name, c), e) in names.iter().zip(coefs).zip(expected) {
        assert_eq!(*name, e["name"].as_str().unwrap());
        worst = worst.max((c.as_f64().unwrap() - e["coef"].as_f64().unwrap()).abs());
    }
    println!("max |federated - scikit-learn| = {worst:e}");
    assert!(worst < 1e-5, "max abs difference {worst}");
    assert!(model["converged"].as_bool().unwrap());
    assert!(model["rounds"].as_u64().unwrap() <= 10);
    assert_eq!(model["job_spec_hash"].as_str().unwrap().len(), 64);
    assert!(out.join("metrics.json").exists());
}

/// The per-round progress of `local` on a stderr that is not a terminal (a
/// child's pipe): exactly one plain line per round, `round k/N: …`, for
/// `k` = 1 to `rounds` (2 statistics rounds, the optimization rounds, the
/// evaluation round), none of a progress bar's redrawing, and nothing of
/// it on stdout.
fn progress_lines_are_plain(o: &Output, rounds: u64, total: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "bar redraws on a pipe:\n{stderr:?}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("round ")).collect();
    let numbered: Vec<String> = (1..=rounds)
        .map(|k| format!("round {k}/{total}: "))
        .collect();
    assert_eq!(lines.len(), numbered.len(), "{stderr}");
    for (line, prefix) in lines.iter().zip(&numbered) {
        assert!(
            line.starts_with(prefix.as_str()),
            "{line:?} is not {prefix:?}…"
        );
    }
    assert!(lines[0].contains("statistics"), "{stderr}");
    assert!(lines[2].contains("optimization  1"), "{stderr}");
    assert!(lines.last().unwrap().contains("evaluation"), "{stderr}");
    // Every round's line says how many participants it had.
    assert!(
        !stdout.contains(" participants"),
        "progress on stdout:\n{stdout}"
    );
}

/// A consortium of real processes: three members train; a fourth whose
/// file has a category outside the schema leaves before any round, saying
/// where, and the coordinator records why.
#[test]
fn daemons_train_a_model_and_a_member_with_bad_data_leaves_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let parts = split(d, 4);
    // Line 3 of the last member's file gets a loan purpose outside the schema.
    let mut lines: Vec<String> = std::fs::read_to_string(&parts[3])
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let purpose = lines[2].split(',').nth(3).unwrap().to_owned();
    lines[2] = lines[2].replacen(&format!(",{purpose},"), ",spaceship,", 1);
    std::fs::write(&parts[3], lines.join("\n") + "\n").unwrap();

    let ids = ["bank-a", "bank-b", "bank-c", "platform"];
    write_consortium(
        d,
        &ids,
        "phase_deadline_secs = 20\njoin_deadline_secs = 30\nmax_attempts = 1",
    );
    let coordinator = spawn_coordinator(d, "out");
    let members: Vec<Child> = ids.iter().map(|id| spawn_participant(d, id)).collect();
    let limit = Duration::from_secs(120);
    let coordinator = wait(coordinator, limit);
    let members: Vec<Output> = members.into_iter().map(|m| wait(m, limit)).collect();
    assert!(
        coordinator.status.success(),
        "{}",
        String::from_utf8_lossy(&coordinator.stderr)
    );
    for m in &members[..3] {
        assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    }
    let leaver = String::from_utf8_lossy(&members[3].stderr).into_owned();
    assert!(!members[3].status.success());
    assert!(
        leaver.contains("part-3.csv:3")
            && leaver.contains("`purpose`")
            && leaver.contains("spaceship"),
        "{leaver}"
    );

    let metrics = json(&d.join("out/metrics.json"));
    // Who is in the model is stated: three contributors, and the member
    // that never joined, with its reason code.
    let membership = &metrics["membership"];
    assert_eq!(
        membership["contributed"],
        serde_json::json!(["bank-a", "bank-b", "bank-c"]),
        "{metrics}"
    );
    assert_eq!(
        membership["never_joined"],
        serde_json::json!([{"id": "platform", "reason": "invalid-data"}]),
        "{metrics}"
    );
    let departed = membership.to_string();
    // Only the reason code leaves the member: never the offending cell value.
    assert!(
        !departed.contains("spaceship"),
        "row data left the member: {departed}"
    );
    let model = json(&d.join("out/model.json"));
    assert!(model["converged"].as_bool().unwrap());
    assert_eq!(model["membership"], *membership);
    // Every member that trained wrote the model it replayed itself from the
    // published sums: the very model the coordinator published.
    for id in &ids[..3] {
        let own = json(&d.join(format!("{id}-results/model.json")));
        assert_eq!(own, model, "{id}'s replayed model differs");
        assert!(d.join(format!("{id}-results/metrics.json")).exists());
    }
    assert!(!d.join("platform-results").exists());
    let log = String::from_utf8_lossy(&members[0].stderr).into_owned();
    assert!(
        log.contains("a member left the job") && log.contains("invalid-data"),
        "the others are told why:\n{log}"
    );
    assert!(
        !log.contains("spaceship"),
        "row data reached another member:\n{log}"
    );
    let round_log = std::fs::read(d.join("rounds.log")).unwrap();
    assert!(
        !String::from_utf8_lossy(&round_log).contains("spaceship"),
        "row data reached the coordinator's log"
    );
}

#[test]
fn score_writes_a_probability_per_row_and_refuses_a_wrong_schema() {
    let dir = tempfile::tempdir().unwrap();
    let parts = split(dir.path(), 3);
    let out = dir.path().join("out");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "local",
        "--label",
        "creditability",
        "--positive",
        "bad",
        "--negative",
        "good",
        "--out",
    ])
    .arg(&out);
    for p in &parts {
        cmd.arg("--data").arg(p);
    }
    assert!(cmd.output().unwrap().status.success());

    // Applicants without the label column.
    let text = std::fs::read_to_string(&parts[0]).unwrap();
    let applicants: String = text
        .lines()
        .take(11)
        .map(|l| {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(l.as_bytes());
            let rec = r.records().next().unwrap().unwrap();
            let cells: Vec<String> = rec
                .iter()
                .take(rec.len() - 1)
                .map(|c| format!("\"{c}\""))
                .collect();
            cells.join(",") + "\n"
        })
        .collect();
    let apps = dir.path().join("applicants.csv");
    std::fs::write(&apps, applicants).unwrap();
    let o = Command::new(BIN)
        .args(["score", "--model"])
        .arg(out.join("model.json"))
        .arg("--data")
        .arg(&apps)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let probs: Vec<f64> = stdout
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(probs.len(), 10);
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));

    // A file missing a feature column is refused, naming it.
    let wrong = dir.path().join("wrong.csv");
    std::fs::write(&wrong, "age_in_years,telephone\n30,none\n").unwrap();
    let o = Command::new(BIN)
        .args(["score", "--model"])
        .arg(out.join("model.json"))
        .arg("--data")
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("wrong.csv:1") && err.contains("status_of_existing_checking_account"),
        "{err}"
    );
}

/// Writes keys, consortium.toml (a German-credit logistic-regression job)
/// and one participant config per id (member i trains on part-i.csv).
fn write_consortium(d: &Path, ids: &[&str], protocol: &str) {
    let port = crate::support::free_port();
    let keygen = |name: &str| {
        let o = Command::new(BIN)
            .args(["keygen", "--out"])
            .arg(d.join(format!("{name}.key")))
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let coordinator_pk = keygen("coordinator");
    let text = std::fs::read_to_string(repo().join("data/german_credit.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let schema = fedcredit_model::Schema::infer(
        &header,
        &rows,
        fedcredit_model::LabelSpec::binary("creditability", "bad", "good"),
    )
    .unwrap();
    #[derive(serde::Serialize)]
    struct Job<'a> {
        schema: &'a fedcredit_model::Schema,
    }
    let schema_toml = toml::to_string(&Job { schema: &schema })
        .unwrap()
        .replace("[schema", "[job.schema")
        .replace("[[schema", "[[job.schema");
    let mut consortium = format!(
        "[coordinator]\nlisten = \"127.0.0.1:{port}\"\npublic_key = \"{coordinator_pk}\"\nkey_file = \"coordinator.key\"\nlog_file = \"rounds.log\"\n\n\
         [protocol]\n{protocol}\n\n\
         [job]\nid = \"german-credit\"\nkind = \"logistic-regression\"\nl2 = 1.0\nprivacy = \"none\"\n\n{schema_toml}\n"
    );
    for (i, id) in ids.iter().enumerate() {
        let pk = keygen(id);
        consortium.push_str(&format!(
            "\n[[participants]]\nid = \"{id}\"\npublic_key = \"{pk}\"\n"
        ));
        std::fs::write(
            d.join(format!("{id}.toml")),
            format!(
                "id = \"{id}\"\nkey_file = \"{id}.key\"\ncoordinator = \"https://127.0.0.1:{port}\"\nconsortium = \"consortium.toml\"\ndata = \"part-{i}.csv\"\nconnect_timeout_secs = 60\n"
            ),
        )
        .unwrap();
    }
    std::fs::write(d.join("consortium.toml"), consortium).unwrap();
}

fn spawn_coordinator(d: &Path, out: &str) -> Child {
    Command::new(BIN)
        .args(["coordinator", "--config"])
        .arg(d.join("consortium.toml"))
        .arg("--out")
        .arg(d.join(out))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn spawn_participant(d: &Path, id: &str) -> Child {
    Command::new(BIN)
        .args(["participant", "--config"])
        .arg(d.join(format!("{id}.toml")))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills the coordinator with SIGKILL at pseudo-random moments (seeded, so a
/// failure can be replayed) while a German-credit job runs, restarting it
/// with the same config each time; the final model must be bit-identical to
/// an uninterrupted run's.
#[test]
fn a_coordinator_killed_repeatedly_resumes_to_the_same_model() {
    use rand::{Rng, SeedableRng};
    let ids = ["bank-a", "bank-b", "bank-c", "platform"];
    let protocol = "phase_deadline_secs = 20\njoin_deadline_secs = 60\nmax_attempts = 3";
    let run = |kills: &[usize]| -> (serde_json::Value, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        split(d, 4);
        write_consortium(d, &ids, protocol);
        let members: Vec<Child> = ids.iter().map(|id| spawn_participant(d, id)).collect();
        for &at_record in kills {
            let mut c = spawn_coordinator(d, "out");
            // SIGKILL as soon as the log holds `at_record` records: somewhere
            // inside a round, in whatever phase that happens to be.
            let start = Instant::now();
            while c.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(60) {
                if log_records(&d.join("rounds.log")) >= at_record {
                    c.kill().unwrap();
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let _ = c.wait();
        }
        let c = wait(spawn_coordinator(d, "out"), Duration::from_secs(120));
        assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
        for m in members {
            let o = wait(m, Duration::from_secs(120));
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        (json(&d.join("out/model.json")), d.join("rounds.log"), dir)
    };
    let (reference, _, _keep) = run(&[]);
    let seed: u64 = std::env::var("FEDCREDIT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261122);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // A German-credit job writes about 270 records; kill at four of them.
    let mut kills: Vec<usize> = (0..4).map(|_| rng.gen_range(10..250)).collect();
    kills.sort_unstable();
    println!("kill seed {seed}: coordinator killed once the log holds {kills:?} records");
    let (restarted, log, dir) = run(&kills);
    assert_eq!(
        restarted, reference,
        "the resumed job must publish the same model, bit for bit"
    );

    // The log shows the restarts, and an auditor verifies it.
    let o = Command::new(BIN)
        .args(["audit", "show"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Each participant's journal of what it signed must agree with the log.
    let o = audit_verify(dir.path(), &ids);
    println!("{}", String::from_utf8_lossy(&o.stdout));
    assert!(
        o.status.success(),
        "audit verify failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// How many whole records a round log holds (length-prefixed frames).
fn log_records(path: &Path) -> usize {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    let (mut pos, mut n) = (0usize, 0usize);
    loop {
        let (mut len, mut shift, mut i) = (0usize, 0u32, pos);
        while let Some(b) = bytes.get(i) {
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if i == pos || i + len > bytes.len() {
            return n;
        }
        pos = i + len;
        n += 1;
    }
}

/// Two of five members are killed mid-job (SIGKILL): the job fails for want
/// of members and keeps its finished rounds. Restarting the coordinator and
/// the members resumes it from its first unfinished round; every member
/// writes the model it replayed, the coordinator's model, and the auditor
/// verifies the log and shows the resumption.
#[test]
fn a_job_that_lost_too_many_members_resumes_when_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ids = ["bank-a", "bank-b", "bank-c", "bank-d", "platform"];
    split(d, ids.len());
    write_consortium(
        d,
        &ids,
        "phase_deadline_secs = 3\njoin_deadline_secs = 60\nmax_attempts = 1",
    );
    let coordinator = spawn_coordinator(d, "out");
    let mut members: Vec<Child> = ids.iter().map(|id| spawn_participant(d, id)).collect();
    // About 31 records per round: 70 is inside the third round.
    let start = Instant::now();
    while log_records(&d.join("rounds.log")) < 70 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the job never got going"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for m in &mut members[3..] {
        m.kill().unwrap();
    }
    let failed = wait(coordinator, Duration::from_secs(120));
    let err = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert!(!failed.status.success(), "{err}");
    assert!(err.contains("restart the coordinator to resume"), "{err}");
    for m in members {
        let _ = wait(m, Duration::from_secs(120));
    }
    assert!(!d.join("out/model.json").exists());

    let coordinator = spawn_coordinator(d, "out");
    let members: Vec<Child> = ids.iter().map(|id| spawn_participant(d, id)).collect();
    let done = wait(coordinator, Duration::from_secs(180));
    let err = String::from_utf8_lossy(&done.stderr).into_owned();
    assert!(done.status.success(), "{err}");
    assert!(
        err.contains("resuming it from its first unfinished round"),
        "{err}"
    );
    for m in members {
        let o = wait(m, Duration::from_secs(120));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let model = json(&d.join("out/model.json"));
    assert_eq!(
        model["membership"]["contributed"].as_array().unwrap().len(),
        5
    );
    for id in ids {
        assert_eq!(json(&d.join(format!("{id}-results/model.json"))), model);
    }
    let o = audit_verify(d, &ids);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("was resumed at record"), "{out}");
}

/// Every member arrives and then leaves over its data: the coordinator says
/// so at once, by name and reason code, instead of waiting out the join
/// deadline and reporting that nobody arrived.
#[test]
fn members_that_arrive_and_leave_are_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ids = ["bank-a", "bank-b", "bank-c"];
    for part in split(d, ids.len()) {
        // A purpose outside the schema on every member's line 2.
        let text = std::fs::read_to_string(&part).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let purpose = lines[1].split(',').nth(3).unwrap().to_owned();
        lines[1] = lines[1].replacen(&format!(",{purpose},"), ",spaceship,", 1);
        std::fs::write(&part, lines.join("\n") + "\n").unwrap();
    }
    write_consortium(d, &ids, "join_deadline_secs = 600");
    let coordinator = spawn_coordinator(d, "out");
    let members: Vec<Child> = ids.iter().map(|id| spawn_participant(d, id)).collect();
    // The join deadline is ten minutes; the coordinator must not wait it out.
    let c = wait(coordinator, Duration::from_secs(120));
    let err = String::from_utf8_lossy(&c.stderr).into_owned();
    assert!(!c.status.success());
    assert!(
        err.contains("0 of 3 members are here")
            && err.contains("arrived, then left: bank-a (invalid-data)"),
        "{err}"
    );
    for m in members {
        let o = wait(m, Duration::from_secs(60));
        assert!(!o.status.success());
    }
}

/// A member whose key file does not match its roster entry stops before
/// any network wait, even though no coordinator is running.
#[test]
fn a_key_mismatch_is_reported_before_contacting_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ids = ["bank-a", "bank-b", "bank-c"];
    split(d, ids.len());
    write_consortium(d, &ids, "");
    // bank-a gets bank-b's key.
    std::fs::copy(d.join("bank-b.key"), d.join("bank-a.key")).unwrap();
    let o = wait(spawn_participant(d, "bank-a"), Duration::from_secs(30));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success());
    assert!(
        err.contains("does not match the public key listed for bank-a"),
        "{err}"
    );
    assert!(!err.contains("unreachable"), "{err}");
}

/// Chaos: a five-member German-credit job (`require_all_members`) as
/// separate processes, with SIGKILLs of random processes (members and the
/// coordinator) at random points of the log, each restarted at once; a job
/// that fails for want of members is resumed by restarting whoever stopped.
/// Every seed must end with the uninterrupted run's model, bit for bit, and
/// a log that `audit verify` passes together with every member's journal.
/// (Without `require_all_members` a member killed in the first round is
/// left out of the job, and the model says so in its membership.)
/// `FEDCREDIT_CHAOS_SEEDS=20` runs twenty seeds (default 2; CI time).
#[test]
fn chaos_kills_and_restarts_end_in_the_same_model() {
    use rand::{Rng, SeedableRng};
    let ids = ["bank-a", "bank-b", "bank-c", "bank-d", "platform"];
    // Short deadlines: a kill often fails the job (every member is
    // required), and then a restarted coordinator waits out its join
    // deadline alone and a restarted member its connect timeout; with 30 s
    // and 60 s those waits were most of this test's 100 s.
    let protocol = "phase_deadline_secs = 2\njoin_deadline_secs = 10\nmax_attempts = 2";
    let setup = || {
        let dir = tempfile::tempdir().unwrap();
        split(dir.path(), ids.len());
        write_consortium(dir.path(), &ids, protocol);
        for id in ids {
            let member = dir.path().join(format!("{id}.toml"));
            let text = std::fs::read_to_string(&member).unwrap();
            assert!(text.contains("connect_timeout_secs = 60\n"));
            let text = text.replace("connect_timeout_secs = 60\n", "connect_timeout_secs = 15\n");
            std::fs::write(&member, text).unwrap();
        }
        let path = dir.path().join("consortium.toml");
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "[job]\nid = \"german-credit\"\n",
            "[job]\nid = \"german-credit\"\nrequire_all_members = true\n",
        );
        assert!(text.contains("require_all_members = true"));
        std::fs::write(&path, text).unwrap();
        dir
    };
    // Process 0 is the coordinator, i > 0 member i - 1.
    let spawn = |d: &Path, who: usize| {
        if who == 0 {
            spawn_coordinator(d, "out")
        } else {
            spawn_participant(d, ids[who - 1])
        }
    };
    let reference = {
        let dir = setup();
        let d = dir.path();
        let all: Vec<Child> = (0..=ids.len()).map(|w| spawn(d, w)).collect();
        for p in all {
            let o = wait(p, Duration::from_secs(120));
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        json(&d.join("out/model.json"))
    };
    let seeds: u64 = std::env::var("FEDCREDIT_CHAOS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for seed in 0..seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dir = setup();
        let d = dir.path();
        let mut procs: Vec<Child> = (0..=ids.len()).map(|w| spawn(d, w)).collect();
        let mut kills: Vec<(usize, usize)> = (0..rng.gen_range(1..=4))
            .map(|_| (rng.gen_range(10..250), rng.gen_range(0..=ids.len())))
            .collect();
        kills.sort_unstable();
        let mut resumes = 0;
        for &(at, who) in &kills {
            let start = Instant::now();
            while log_records(&d.join("rounds.log")) < at
                && procs[0].try_wait().unwrap().is_none()
                && start.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = procs[who].kill();
            let _ = procs[who].wait();
            procs[who] = spawn(d, who);
        }
        // Whoever stopped (a failed job stops everyone) is restarted until
        // the coordinator finishes the job.
        loop {
            let c = wait_any(&mut procs[0], Duration::from_secs(180));
            if c.success() {
                break;
            }
            resumes += 1;
            let mut err = String::new();
            if let Some(mut e) = procs[0].stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert!(
                resumes <= 4,
                "seed {seed}: kills {kills:?}: the job does not finish; the coordinator's last words:\n{err}"
            );
            for p in &mut procs[1..] {
                let _ = p.wait();
            }
            procs = (0..=ids.len()).map(|w| spawn(d, w)).collect();
        }
        for p in procs.drain(1..) {
            let o = wait(p, Duration::from_secs(120));
            assert!(
                o.status.success(),
                "seed {seed}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let model = json(&d.join("out/model.json"));
        assert_eq!(model, reference, "seed {seed}: kills {kills:?}");
        let o = audit_verify(d, &ids);
        assert!(
            o.status.success(),
            "seed {seed}: kills {kills:?}: audit verify failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        println!(
            "chaos seed {seed}: kills (record, process) {kills:?}; job failed and was resumed {resumes} time(s); same model; audit verified"
        );
    }
}

/// Waits for a child without taking it (its output stays piped).
fn wait_any(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process overstayed {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A job that failed for want of members can be abandoned for good: the
/// reason is signed into the log, a later start does not run it again, and
/// the log still verifies.
#[test]
fn an_abandoned_job_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ids = ["bank-a", "bank-b", "bank-c"];
    split(d, ids.len());
    write_consortium(d, &ids, "join_deadline_secs = 2\nphase_deadline_secs = 2");
    // bank-c never starts: the job fails, resumably.
    let coordinator = spawn_coordinator(d, "out");
    let members: Vec<Child> = ids[..2].iter().map(|id| spawn_participant(d, id)).collect();
    let c = wait(coordinator, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&c.stderr).into_owned();
    assert!(!c.status.success());
    assert!(err.contains("never arrived: bank-c"), "{err}");
    for m in members {
        let _ = wait(m, Duration::from_secs(60));
    }
    let abandon = Command::new(BIN)
        .args(["coordinator", "--config"])
        .arg(d.join("consortium.toml"))
        .args(["--abandon", "bank-c left the consortium"])
        .output()
        .unwrap();
    assert!(
        abandon.status.success(),
        "{}",
        String::from_utf8_lossy(&abandon.stderr)
    );
    // Abandoning twice is refused; starting again does not run the job.
    let again = Command::new(BIN)
        .args(["coordinator", "--config"])
        .arg(d.join("consortium.toml"))
        .args(["--abandon", "again"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let c = wait(spawn_coordinator(d, "out"), Duration::from_secs(60));
    let err = String::from_utf8_lossy(&c.stderr).into_owned();
    assert!(!c.status.success());
    assert!(
        err.contains("abandoned by the operator: bank-c left the consortium"),
        "{err}"
    );
    let o = audit_verify(d, &[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    assert!(out.contains("abandoned by the operator"), "{out}");
}

/// `fedcredit audit verify` of `d`'s rounds.log against its consortium file,
/// cross-checking the journal of each of `ids`.
fn audit_verify(d: &Path, ids: &[&str]) -> Output {
    let mut verify = Command::new(BIN);
    verify
        .args(["audit", "verify"])
        .arg(d.join("rounds.log"))
        .arg("--consortium")
        .arg(d.join("consortium.toml"));
    for id in ids {
        verify
            .arg("--participant-journal")
            .arg(d.join(format!("{id}.journal")));
    }
    verify.output().unwrap()
}

/// `local` with every Parquet file streamed (`--max-memory-mb 0`) trains
/// the very model it trains with the files in memory: each round's
/// vectors are the same bits, so model and metrics are equal.
#[test]
fn local_streams_parquet_files_to_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = Command::new(BIN)
        .args([
            "bench-read",
            "--parquet",
            "--rows",
            "9000",
            "--features",
            "4",
        ])
        .args(["--parties", "4", "--write-synthetic"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = |name: &str, max_memory_mb: &str| {
        let out = dir.path().join(name);
        let mut cmd = Command::new(BIN);
        cmd.args(["local", "--label", "default", "--positive", "1"])
            .args(["--negative", "0", "--max-memory-mb", max_memory_mb])
            .arg("--test")
            .arg(data.join("party-04.parquet"))
            .arg("--out")
            .arg(&out);
        for i in 1..=3 {
            cmd.arg("--data")
                .arg(data.join(format!("party-{i:02}.parquet")));
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            json(&out.join("model.json")),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (memory, said) = run("memory", "4096");
    assert!(!said.contains("streamed"), "{said}");
    let (streamed, said) = run("streamed", "0");
    assert_eq!(
        said.matches("rows streamed from the file").count(),
        4,
        "{said}"
    );
    for key in [
        "standardized",
        "original",
        "standardization",
        "metrics",
        "rounds",
    ] {
        assert_eq!(memory[key], streamed[key], "{key}");
    }
    assert!(memory["metrics"]["auc"].as_f64().unwrap() > 0.7);
}

/// One HTTP/1.1 GET on loopback; the body, or None if nothing listens.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    Some(body.to_owned())
}

/// The value of one sample line of an OpenMetrics text, e.g.
/// `fedcredit_rounds_completed_total`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The operator's read-only HTTP endpoint, scraped as Prometheus would while
/// a real coordinator process runs a model job with three participant
/// processes: `/api/jobs` goes from waiting to running, and `/metrics`
/// counts the members connected, the rounds and the phases as they happen.
#[test]
fn the_operator_watches_a_job_on_metrics_and_the_job_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ids = ["bank-a", "bank-b", "platform"];
    split(d, ids.len());
    write_consortium(d, &ids, "join_deadline_secs = 60");
    let http = crate::support::free_port();
    let path = d.join("consortium.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "log_file = \"rounds.log\"\n",
        &format!("log_file = \"rounds.log\"\nhttp_listen = \"127.0.0.1:{http}\"\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let mut coordinator = spawn_coordinator(d, "out");
    let start = Instant::now();
    // The endpoint may answer before the job has opened its log: an empty
    // list until then.
    let jobs = loop {
        if let Some(body) = http_get(http, "/api/jobs") {
            let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
            if jobs.as_array().is_some_and(|a| !a.is_empty()) {
                break jobs;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no job on the HTTP endpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(jobs[0]["id"], "german-credit", "{jobs}");
    assert_eq!(jobs[0]["kind"], "logistic-regression", "{jobs}");
    assert_eq!(jobs[0]["state"], "waiting", "{jobs}");
    let metrics = http_get(http, "/metrics").unwrap();
    assert_eq!(
        sample(&metrics, "fedcredit_participants_connected"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "fedcredit_coordinator_restarts_total"),
        Some(0.0),
        "{metrics}"
    );
    // An exact job spends no privacy budget.
    assert_eq!(
        sample(&metrics, "fedcredit_privacy_epsilon_spent"),
        Some(0.0),
        "{metrics}"
    );

    let members: Vec<Child> = ids.iter().map(|id| spawn_participant(d, id)).collect();
    let (mut connected, mut rounds, mut unmasked, mut running) = (0.0f64, 0.0f64, 0.0f64, false);
    while coordinator.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the job never ended"
        );
        if let Some(m) = http_get(http, "/metrics") {
            connected =
                connected.max(sample(&m, "fedcredit_participants_connected").unwrap_or(0.0));
            rounds = rounds.max(sample(&m, "fedcredit_rounds_completed_total").unwrap_or(0.0));
            unmasked = unmasked.max(
                sample(&m, "fedcredit_phases_completed_total{phase=\"unmask\"}").unwrap_or(0.0),
            );
        }
        if let Some(j) = http_get(http, "/api/jobs") {
            running |= j.contains("\"state\":\"running\"");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = wait(coordinator, Duration::from_secs(10));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    for m in members {
        let _ = wait(m, Duration::from_secs(60));
    }
    assert_eq!(connected, 3.0);
    assert!(running, "/api/jobs never showed the job running");
    assert!(rounds >= 1.0, "no completed round seen on /metrics");
    assert!(
        unmasked >= rounds,
        "{unmasked} unmask phases for {rounds} rounds"
    );
}

/// `bench-credit --from`: each party reads its own file (CSV, then
/// Parquet) and the federated model reaches the central fit on the pooled
/// rows (the bench's own agreement check). Timings are never checked; the
/// pandas pipeline is left out (no such interpreter). Bad input names the
/// folder or the file.
#[test]
fn bench_credit_from_files_reaches_the_central_fit() {
    let dir = tempfile::tempdir().unwrap();
    for (sub, format) in [("csv", "csv"), ("pq", "parquet")] {
        let files = dir.path().join(sub);
        let mut write = Command::new(BIN);
        write
            .args(["bench-read", "--write-synthetic"])
            .arg(&files)
            .args(["--rows", "300", "--features", "4", "--parties", "3"]);
        if format == "parquet" {
            write.arg("--parquet");
        }
        let out = write.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(BIN)
            .args(["bench-credit", "--from"])
            .arg(&files)
            .args(["--format", format, "--python", "/nonexistent/python3"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("3 parties read their files"), "{stdout}");
        let optimum = stdout
            .lines()
            .find(|l| l.contains("pooled optimum"))
            .unwrap_or_else(|| panic!("no agreement check in\n{stdout}"));
        assert!(optimum.trim_end().ends_with("| yes |"), "{optimum}");
    }

    let missing = dir.path().join("no-such-folder");
    let out = Command::new(BIN)
        .args(["bench-credit", "--from"])
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no-such-folder"), "{stderr}");

    // A party file without the other parties' columns.
    let csv = dir.path().join("csv");
    std::fs::write(csv.join("party-04.csv"), "x1,x2,default\n0.5,1.5,1\n").unwrap();
    let out = Command::new(BIN)
        .args(["bench-credit", "--from"])
        .arg(&csv)
        .args(["--python", "/nonexistent/python3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("party-04.csv"), "{stderr}");
}

/// A taken `http_listen` stops the coordinator at start, naming the address,
/// before it writes a round log (so nothing is left to resume).
#[test]
fn a_taken_http_address_stops_the_start_before_the_round_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ids = ["bank-a", "bank-b", "platform"];
    split(d, ids.len());
    write_consortium(d, &ids, "join_deadline_secs = 60");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let path = d.join("consortium.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "log_file = \"rounds.log\"\n",
        &format!("log_file = \"rounds.log\"\nhttp_listen = \"127.0.0.1:{port}\"\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let out = wait(spawn_coordinator(d, "out"), Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "coordinator.http_listen = 127.0.0.1:{port}: cannot listen"
        )),
        "{err}"
    );
    assert!(!d.join("rounds.log").exists());
    drop(taken);
}

/// Counts, in a round log, the attempts that set up an epoch (announced
/// with no epoch named), the attempts that used a slot of one (none in a
/// per-round job), and the completed rounds.
fn epoch_counts(path: &Path) -> (usize, usize, usize) {
    use fedcredit_proto::v1::{self as pb, coordinator_message, log_body};
    use prost::Message as _;
    let (mut setups, mut slots, mut rounds) = (0, 0, 0);
    let Ok(bytes) = std::fs::read(path) else {
        return (setups, slots, rounds);
    };
    let log = fedcredit_proto::roundlog::read(&bytes, None);
    for e in &log.entries {
        match &e.body.entry {
            Some(log_body::Entry::Announcement(signed)) => {
                let m = pb::CoordinatorMessage::decode(signed.payload.as_ref()).unwrap();
                let Some(coordinator_message::Body::Announce(a)) = m.body else {
                    panic!("an announcement record without an announcement");
                };
                if a.epoch_slots == 0 {
                    continue;
                }
                assert_eq!(a.epoch_slots, 4);
                if a.epoch.is_empty() {
                    assert_eq!(a.slot, 0);
                    setups += 1;
                } else {
                    slots += 1;
                }
            }
            Some(log_body::Entry::RoundCompleted(_)) => rounds += 1,
            _ => {}
        }
    }
    (setups, slots, rounds)
}

/// `setup = "epoch"`: keys are agreed and self-mask seeds shared once per
/// four rounds instead of in every round, and the model is bit for bit the
/// per-round protocol's (the same sums are published). A member killed with
/// SIGKILL mid-job and restarted holds no epoch: the slot round it misses
/// is abandoned before anyone reveals, the next attempt sets up a new epoch
/// with it, and the model is still the same. The auditor verifies both logs
/// against the members' journals.
#[test]
fn epochs_set_up_once_per_four_rounds_and_survive_a_killed_member() {
    let ids = ["bank-a", "bank-b", "bank-c", "platform"];
    let base = "phase_deadline_secs = 3\njoin_deadline_secs = 60\nmax_attempts = 3";
    // `kill`: SIGKILL member 1 once the log holds that many (setups, slot
    // attempts), and restart it.
    let run = |protocol: &str, kill: Option<(usize, usize)>| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        split(d, ids.len());
        write_consortium(d, &ids, protocol);
        let mut members: Vec<Child> = ids.iter().map(|id| spawn_participant(d, id)).collect();
        let mut coordinator = spawn_coordinator(d, "out");
        if let Some((setups, slots)) = kill {
            let start = Instant::now();
            while {
                let (s, sl, _) = epoch_counts(&d.join("rounds.log"));
                s < setups || sl < slots
            } && coordinator.try_wait().unwrap().is_none()
                && start.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            members[1].kill().unwrap();
            let _ = members[1].wait();
            members[1] = spawn_participant(d, ids[1]);
        }
        let c = wait(coordinator, Duration::from_secs(180));
        assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
        for (i, m) in members.into_iter().enumerate() {
            let o = wait(m, Duration::from_secs(60));
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{stderr}");
            // The restarted member received none of the rounds before its
            // restart: it fetched them from the coordinator (announcements
            // list only their digests) and checked each against its digest.
            if kill.is_some() && i == 1 {
                assert!(
                    stderr.contains("fetched the published outcomes this member had not received"),
                    "the restarted member never fetched the earlier outcomes:\n{stderr}"
                );
            }
        }
        let o = audit_verify(d, &ids);
        assert!(
            o.status.success(),
            "audit verify failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (
            json(&d.join("out/model.json")),
            epoch_counts(&d.join("rounds.log")),
            dir,
        )
    };
    let (reference, _, _keep) = run(base, None);
    let epochs = format!("{base}\nsetup = \"epoch\"\nslots = 4");

    let (model, (setups, slots, rounds), _keep) = run(&epochs, None);
    assert_eq!(
        model, reference,
        "epochs must publish the same model, bit for bit"
    );
    assert!(
        rounds >= 8,
        "a German-credit job runs more rounds than that: {rounds}"
    );
    assert_eq!(setups, rounds.div_ceil(4), "one setup per four rounds");
    assert_eq!(setups + slots, rounds, "no attempt was retried");

    // Killed once the second epoch's first slot round is announced: whether
    // it dies before its masked input (the slot is abandoned) or after it
    // (the others' reveals complete the round, and the restarted member,
    // holding no epoch, sits out the next slot), a slot is lost and a new
    // epoch set up, since two slots of that epoch remain.
    let (model, (setups_k, slots_k, rounds_k), _keep) = run(&epochs, Some((2, 4)));
    assert_eq!(model, reference, "the same model after the kill");
    assert_eq!(rounds_k, rounds);
    assert!(
        setups_k > setups || setups_k + slots_k > rounds_k,
        "the kill must have cost a slot and a new setup: {setups_k} setups, {slots_k} slot attempts, {rounds_k} rounds"
    );
    println!(
        "epochs: {rounds} rounds, {setups} setups; with a member killed: {setups_k} setups, {slots_k} slot attempts"
    );
}
