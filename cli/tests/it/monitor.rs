//! A `monitor` job through real processes on loopback: a scorecard trained
//! with `fedcredit local --kind scorecard`, then a coordinator and three
//! members (separate `fedcredit` processes) pooling the counts of their
//! development rows and new applicants. One run with applicants drawn like
//! the development rows (stable), one where a bank's applicants have a
//! shifted column (its CSI alerts); each report equals the one computed on
//! the pooled rows directly, every member replays it, and `audit verify`
//! passes. And the two ways a member's files can be wrong.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fedcredit_model::Encoder;
use fedcredit_model::job::FittedModel;
use fedcredit_model::scorecard::stability::{Level, StabilityLayout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");
const IDS: [&str; 3] = ["bank-a", "bank-b", "bank-c"];
const SHIFTED: &str = "duration_in_month";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn german() -> (Vec<String>, Vec<Vec<String>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/german_credit.csv");
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn write_csv(path: &Path, header: &[String], rows: &[Vec<String>]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(header).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.flush().unwrap();
}

/// Bank i's development rows: rows 300·i .. 300·(i+1).
fn development(rows: &[Vec<String>], i: usize) -> Vec<Vec<String>> {
    rows[300 * i..300 * (i + 1)].to_vec()
}

/// Bank i's new applicants: every other development row, without the
/// label column; `shift`: with the shifted column set to 60 months.
fn applicants(
    header: &[String],
    rows: &[Vec<String>],
    i: usize,
    shift: bool,
) -> (Vec<String>, Vec<Vec<String>>) {
    let label = header.iter().position(|h| h == "creditability").unwrap();
    let col = header.iter().position(|h| h == SHIFTED).unwrap();
    let keep = |r: &[String], shift: bool| -> Vec<String> {
        r.iter()
            .enumerate()
            .filter(|(j, _)| *j != label)
            .map(|(j, c)| {
                if shift && j == col {
                    "60".to_owned()
                } else {
                    c.clone()
                }
            })
            .collect()
    };
    let apps = development(rows, i)
        .iter()
        .step_by(2)
        .map(|r| keep(r, shift))
        .collect();
    (keep(header, false), apps)
}

fn wait(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("process overstayed {limit:?}:\n{}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The development files, and a scorecard trained on them by `local`.
fn train(d: &Path, header: &[String], rows: &[Vec<String>]) -> PathBuf {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "local",
        "--kind",
        "scorecard",
        "--label",
        "creditability",
        "--positive",
        "bad",
        "--negative",
        "good",
        "--out",
    ])
    .arg(d.join("dev"));
    for (i, id) in IDS.iter().enumerate() {
        let p = d.join(format!("{id}.csv"));
        write_csv(&p, header, &development(rows, i));
        cmd.arg("--data").arg(p);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    d.join("dev/model.json")
}

/// Keys, consortium.toml (a monitor job of dev/model.json) and one
/// participant config per member, as the credit tests write them.
fn write_consortium(d: &Path, job: &str) {
    let port = crate::support::free_port();
    let keygen = |name: &str| {
        let o = Command::new(BIN)
            .args(["keygen", "--out"])
            .arg(d.join(format!("{name}.key")))
            .output()
            .unwrap();
        text(&o.stdout).trim().to_owned()
    };
    let coordinator_pk = keygen("coordinator");
    let mut consortium = format!(
        "[coordinator]\nlisten = \"127.0.0.1:{port}\"\npublic_key = \"{coordinator_pk}\"\nkey_file = \"coordinator.key\"\nlog_file = \"rounds.log\"\n\n\
         [protocol]\nphase_deadline_secs = 20\njoin_deadline_secs = 60\nmax_attempts = 1\n\n\
         [job]\nid = \"{job}\"\nkind = \"monitor\"\nmodel = \"dev/model.json\"\nbands = 10\n"
    );
    for id in IDS {
        let pk = keygen(id);
        consortium.push_str(&format!(
            "\n[[participants]]\nid = \"{id}\"\npublic_key = \"{pk}\"\n"
        ));
        std::fs::write(
            d.join(format!("{id}.toml")),
            format!(
                "id = \"{id}\"\nkey_file = \"{id}.key\"\ncoordinator = \"https://127.0.0.1:{port}\"\nconsortium = \"consortium.toml\"\ndata = \"{id}.csv\"\napplicants = \"{id}-applicants.csv\"\nconnect_timeout_secs = 60\n"
            ),
        )
        .unwrap();
    }
    std::fs::write(d.join("consortium.toml"), consortium).unwrap();
}

fn spawn(d: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs the monitor job with bank-a's applicants shifted or not; returns
/// the published report and the folder.
fn run(shift: bool) -> (Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (header, rows) = german();
    let model = train(d, &header, &rows);
    for (i, id) in IDS.iter().enumerate() {
        let (h, apps) = applicants(&header, &rows, i, shift && i == 0);
        write_csv(&d.join(format!("{id}-applicants.csv")), &h, &apps);
    }
    write_consortium(d, "stability");
    let check = Command::new(BIN)
        .args(["check", "--config", "consortium.toml"])
        .current_dir(d)
        .output()
        .unwrap();
    let said = text(&check.stdout) + &text(&check.stderr);
    assert!(
        said.contains("monitor: PSI of the score over 10 bands"),
        "{said}"
    );

    let coordinator = spawn(
        d,
        &["coordinator", "--config", "consortium.toml", "--out", "out"],
    );
    let members: Vec<Child> = IDS
        .iter()
        .map(|id| spawn(d, &["participant", "--config", &format!("{id}.toml")]))
        .collect();
    let limit = Duration::from_secs(180);
    let c = wait(coordinator, limit);
    let members: Vec<Output> = members.into_iter().map(|m| wait(m, limit)).collect();
    for m in &members {
        assert!(m.status.success(), "{}", text(&m.stderr));
    }
    assert!(c.status.success(), "{}", text(&c.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/monitor.json")).unwrap())
            .unwrap();
    // Every member replayed the same report from the published sum.
    for id in IDS {
        let own: Value = serde_json::from_str(
            &std::fs::read_to_string(d.join(format!("{id}-results/monitor.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(own, report, "{id}'s replayed report differs");
    }
    // Lineage: the model's job spec hash is carried.
    let fitted: FittedModel =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(
        report["model_job_spec_hash"],
        Value::from(fitted.job_spec_hash.clone())
    );
    assert_eq!(report["contributors"], serde_json::json!(IDS));

    // The pooled report equals the one computed on the pooled rows directly.
    let card = fitted.scorecard.unwrap();
    let layout = StabilityLayout::new(&card, 10).unwrap();
    let mut counts = vec![0.0; layout.dimension()];
    for i in 0..IDS.len() {
        let enc = Encoder::new(&card.schema, &header).unwrap();
        for r in development(&rows, i) {
            let (row, _) = enc.encode(&r).unwrap();
            layout.add_row(&mut counts, &row, false).unwrap();
        }
        let (h, apps) = applicants(&header, &rows, i, shift && i == 0);
        let enc = Encoder::for_scoring(&card.schema, &h).unwrap();
        for r in apps {
            let mut row = vec![0.0; enc.width()];
            enc.encode_features_into(&r, &mut row).unwrap();
            layout.add_row(&mut counts, &row, true).unwrap();
        }
    }
    let direct = layout.report(&counts).unwrap();
    let close = |a: f64, b: &Value| (a - b.as_f64().unwrap()).abs() <= 1e-12;
    assert!(
        close(direct.score.index, &report["score"]["index"]),
        "{} vs {}",
        direct.score.index,
        report["score"]["index"]
    );
    for (ours, theirs) in direct
        .characteristics
        .iter()
        .zip(report["characteristics"].as_array().unwrap())
    {
        assert_eq!(theirs["name"], Value::from(ours.name.clone()));
        assert!(
            close(ours.index, &theirs["index"]),
            "{}: {} vs {}",
            ours.name,
            ours.index,
            theirs["index"]
        );
    }
    assert_eq!(report["development_rows"], Value::from(900.0));
    assert_eq!(report["applicant_rows"], Value::from(450.0));

    // The auditor replays the job from the round log, report included.
    let v = Command::new(BIN)
        .args([
            "audit",
            "verify",
            "rounds.log",
            "--consortium",
            "consortium.toml",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
    let show = Command::new(BIN)
        .args(["audit", "show", "rounds.log"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert!(
        text(&show.stdout).contains("monitor"),
        "{}",
        text(&show.stdout)
    );
    (report, dir)
}

fn level(item: &Value) -> Level {
    serde_json::from_value(item["level"].clone()).unwrap()
}

#[test]
fn a_monitor_job_of_separate_processes_flags_only_a_shifted_characteristic() {
    let (stable, _d) = run(false);
    assert!(
        stable["score"]["index"].as_f64().unwrap() < 0.10,
        "{}",
        stable["score"]
    );
    assert_eq!(level(&stable["score"]), Level::Stable);
    for c in stable["characteristics"].as_array().unwrap() {
        assert_eq!(level(c), Level::Stable, "{c}");
    }

    let (shifted, d) = run(true);
    let chars = shifted["characteristics"].as_array().unwrap();
    let flagged = chars.iter().find(|c| c["name"] == SHIFTED).unwrap();
    assert_eq!(level(flagged), Level::Alert, "{flagged}");
    for c in chars.iter().filter(|c| c["name"] != SHIFTED) {
        assert_ne!(level(c), Level::Alert, "{c}");
    }

    // The regulator report on the monitored model carries the PSI section;
    // a monitor.json of another model is refused.
    let report = |monitor: &str| {
        Command::new(BIN)
            .args([
                "report",
                "--model",
                "dev/model.json",
                "--log",
                "dev/rounds.log",
                "--consortium",
                "dev/consortium.toml",
                "--key",
                "dev/coordinator.key",
                "--monitor",
                monitor,
                "--out",
                "report.html",
            ])
            .current_dir(d.path())
            .output()
            .unwrap()
    };
    let o = report("out/monitor.json");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(d.path().join("report.html")).unwrap();
    assert!(html.contains("<table id=\"stability\""), "no PSI table");
    assert!(
        html.contains(&format!("<td>{SHIFTED}</td>")) && html.contains("<td>alert</td>"),
        "the shifted characteristic's alert is in the report"
    );
    let mut other = shifted.clone();
    other["model_job_spec_hash"] = Value::from("00".repeat(32));
    std::fs::write(d.path().join("other.json"), other.to_string()).unwrap();
    let o = report("other.json");
    assert!(!o.status.success(), "a report with another model's PSI");
    assert!(
        text(&o.stderr).contains("monitored the model of job spec 0000"),
        "{}",
        text(&o.stderr)
    );
}

/// A member without `applicants`, and one whose applicants lack a column,
/// leave before any round, naming the key, or the file and the column.
#[test]
fn a_member_without_applicants_or_with_a_wrong_column_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (header, rows) = german();
    train(d, &header, &rows);
    write_consortium(d, "stability");
    // bank-a: no `applicants` key.
    let cfg = std::fs::read_to_string(d.join("bank-a.toml")).unwrap();
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("applicants"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(d.join("bank-a.toml"), cfg).unwrap();
    // bank-b: its applicants' file calls a column by another name.
    let (h, apps) = applicants(&header, &rows, 1, false);
    let h: Vec<String> = h
        .into_iter()
        .map(|c| {
            if c == "purpose" {
                "purpose_of_loan".into()
            } else {
                c
            }
        })
        .collect();
    write_csv(&d.join("bank-b-applicants.csv"), &h, &apps);

    let check = Command::new(BIN)
        .args(["check", "--config", "bank-a.toml"])
        .current_dir(d)
        .output()
        .unwrap();
    let said = text(&check.stdout) + &text(&check.stderr);
    assert!(!check.status.success(), "{said}");
    assert!(
        said.contains("bank-a.toml") && said.contains("`applicants`"),
        "{said}"
    );

    // No coordinator runs: each member says why it leaves, then gives up telling it.
    let limit = Duration::from_secs(60);
    let a = wait(spawn(d, &["participant", "--config", "bank-a.toml"]), limit);
    let err = text(&a.stderr);
    assert!(!a.status.success());
    assert!(
        err.contains("bank-a.toml") && err.contains("applicants") && err.contains("monitor job"),
        "{err}"
    );
    let b = wait(spawn(d, &["participant", "--config", "bank-b.toml"]), limit);
    let err = text(&b.stderr);
    assert!(!b.status.success());
    assert!(
        err.contains("bank-b-applicants.csv") && err.contains("`purpose`"),
        "{err}"
    );
}
