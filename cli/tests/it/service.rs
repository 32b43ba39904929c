//! The operator's service end to end, as separate processes on loopback: the
//! coordinator service and three participant daemons (`--serve`) from a
//! `fedcredit provision` kit, driven only through `fedcredit job`. It runs
//! the kit's secure sum, a credit model, a job the members' consent policy
//! refuses, and a job the operator aborts; the coordinator is killed with
//! SIGKILL while a job waits for its cohort and is restarted; every round
//! log then verifies with `fedcredit audit verify`, and `/metrics` counts
//! what happened. Another service runs a series that fails part-way and
//! keeps the sum it published.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support;

use support::headless;

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Service {
    kit: tempfile::TempDir,
    http: u16,
    /// bank-a's own metrics port.
    bank_a_metrics: u16,
    coordinator: Option<Child>,
    members: Vec<(String, Option<Child>)>,
    starts: usize,
}

impl Service {
    fn path(&self, p: &str) -> PathBuf {
        self.kit.path().join(p)
    }

    fn config(&self) -> PathBuf {
        self.path("coordinator/consortium.toml")
    }

    /// Logs go to files: a service's log outgrows a pipe nobody reads.
    fn log_file(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.path(&format!("{name}.log"))).unwrap()
    }

    fn start_coordinator(&mut self) {
        self.starts += 1;
        let log = self.log_file(&format!("coordinator-{}", self.starts));
        self.coordinator = Some(
            Command::new(BIN)
                .args(["coordinator", "--config"])
                .arg(self.config())
                .env("FEDCREDIT_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    fn start_member(&mut self, i: usize) {
        let id = self.members[i].0.clone();
        let log = self.log_file(&format!("{id}-{}", self.starts));
        let cfg = self.path(&format!("{id}/{id}.toml"));
        self.members[i].1 = Some(
            Command::new(BIN)
                .args(["participant", "--serve", "--config"])
                .arg(cfg)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    fn kill_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].1.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn kill9_coordinator(&mut self) {
        let mut c = self.coordinator.take().unwrap();
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    fn job(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("job")
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .unwrap()
    }

    /// `job` until it succeeds (the service may still be starting).
    fn job_ok(&self, args: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let out = self.job(args);
            if out.status.success() {
                return String::from_utf8(out.stdout).unwrap();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "job {args:?}: {}",
                text(&out)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn status(&self, id: &str) -> String {
        self.job_ok(&["status", id])
    }

    /// Waits until `job status ID` shows `needle`.
    fn await_status(&self, id: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.status(id);
            if s.contains(needle) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "job {id} never showed {needle:?}; last:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn write_spec(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }

    fn metrics(&self) -> String {
        scrape(self.http)
    }

    fn verify(&self, id: &str) -> Output {
        Command::new(BIN)
            .args(["audit", "verify"])
            .arg(self.path(&format!("coordinator/jobs/{id}/rounds.log")))
            .arg("--consortium")
            .arg(self.config())
            .arg("--job")
            .arg(self.path(&format!("coordinator/jobs/{id}/job.toml")))
            .output()
            .unwrap()
    }
}

fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.coordinator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (_, c) in &mut self.members {
            if let Some(mut c) = c.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

const FEATURES: [&str; 3] = ["duration_in_month", "credit_amount", "age_in_years"];

fn model_spec(id: &str, features: &[&str]) -> String {
    let mut s = format!(
        "[job]\nid = \"{id}\"\nkind = \"logistic-regression\"\nprivacy = \"none\"\n\n\
         [job.schema.label]\ncolumn = \"creditability\"\npositive = \"bad\"\nnegative = \"good\"\n"
    );
    for f in features {
        s.push_str(&format!(
            "\n[[job.schema.features]]\nkind = \"numeric\"\nname = \"{f}\"\n"
        ));
    }
    s
}

/// A scorecard job over [`FEATURES`], with public bounds.
fn scorecard_spec(id: &str) -> String {
    model_spec(id, &FEATURES).replace("kind = \"logistic-regression\"", "kind = \"scorecard\"")
        + "\n[job.scorecard]\nmax_bins = 4\ntrends = { duration_in_month = \"decreasing\" }\n\
         bounds = { duration_in_month = [0, 72], credit_amount = [0, 20000], age_in_years = [18, 80] }\n"
}

fn sum_spec(id: &str) -> String {
    format!(
        "[job]\nid = \"{id}\"\nkind = \"secure-sum\"\ndimension = 3\nfrac_bits = 16\nclip = 1e6\n"
    )
}

/// A provisioned kit turned into a service: state_dir, admin_listen and
/// http_listen for the operator; each member's data and a policy allowing
/// both kinds and three columns.
fn service() -> Service {
    let kit = tempfile::tempdir().unwrap();
    let ids = ["bank-a", "bank-b", "bank-c"];
    let (port, admin, http, bank_a_metrics) = (
        crate::support::free_port(),
        crate::support::free_port(),
        crate::support::free_port(),
        crate::support::free_port(),
    );
    let mut args = vec![
        "provision".to_owned(),
        "--out".into(),
        kit.path().to_str().unwrap().into(),
        "--coordinator".into(),
        format!("127.0.0.1:{port}"),
        "--dimension".into(),
        "3".into(),
    ];
    for id in ids {
        args.extend(["--member".into(), id.into()]);
    }
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert!(out.status.success(), "provision: {}", text(&out));
    let cfg = kit.path().join("coordinator/consortium.toml");
    let c = std::fs::read_to_string(&cfg).unwrap().replacen(
        "key_file = \"coordinator.key\"",
        &format!(
            "state_dir = \"jobs\"\nadmin_listen = \"127.0.0.1:{admin}\"\nhttp_listen = \"127.0.0.1:{http}\"\nkey_file = \"coordinator.key\""
        ),
        1,
    );
    std::fs::write(&cfg, c).unwrap();
    // The bundled German credit rows, dealt out to the three banks.
    let rows = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/german_credit.csv"),
    )
    .unwrap();
    let mut lines = rows.lines();
    let header = lines.next().unwrap();
    let body: Vec<&str> = lines.collect();
    for (i, id) in ids.iter().enumerate() {
        let dir = kit.path().join(id);
        let mut part = format!("{header}\n");
        for l in body.iter().skip(i).step_by(ids.len()) {
            part.push_str(l);
            part.push('\n');
        }
        std::fs::write(dir.join(format!("{id}.csv")), part).unwrap();
        std::fs::write(
            dir.join(format!("{id}.input.txt")),
            format!("{}, 2.5, -1\n", i + 1),
        )
        .unwrap();
        let p = dir.join(format!("{id}.toml"));
        let member = std::fs::read_to_string(&p).unwrap();
        assert!(
            member.contains("kinds = [\"secure-sum\"]"),
            "the kit's policy allows its own kind only:\n{member}"
        );
        let member = member
            .replace(
                &format!("input = \"{id}.input.txt\"\n"),
                &format!(
                    "input = \"{id}.input.txt\"\ndata = \"{id}.csv\"\n{}",
                    if i == 0 {
                        format!("metrics_listen = \"127.0.0.1:{bank_a_metrics}\"\n")
                    } else {
                        String::new()
                    }
                ),
            )
            .replace(
                "kinds = [\"secure-sum\"]",
                &format!(
                    "kinds = [\"secure-sum\", \"logistic-regression\", \"scorecard\"]\nfeatures = {FEATURES:?}\nlabel = \"creditability\""
                ),
            );
        std::fs::write(&p, member).unwrap();
    }
    Service {
        kit,
        http,
        bank_a_metrics,
        coordinator: None,
        members: ids.iter().map(|id| (id.to_string(), None)).collect(),
        starts: 0,
    }
}

#[test]
fn the_service_runs_jobs_members_consent_to_survives_sigkill_and_aborts_on_request() {
    let mut s = service();
    s.start_coordinator();
    for i in 0..3 {
        s.start_member(i);
    }

    // 1. The kit's own job (the consortium file's [job]) was submitted at start.
    let out = s.job(&["wait", "secure-sum"]);
    let out = if out.status.success() {
        out
    } else {
        // The service may not have been listening yet.
        std::thread::sleep(Duration::from_secs(1));
        s.job(&["wait", "secure-sum"])
    };
    assert!(out.status.success(), "wait secure-sum: {}", text(&out));
    let sum: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.path("coordinator/jobs/secure-sum/results/result.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(sum["sum"], serde_json::json!([6.0, 7.5, -3.0]), "{sum}");

    // 2. A credit model, watched with `job status` and `job wait`.
    let spec = s.write_spec("credit.toml", &model_spec("credit-1", &FEATURES));
    assert_eq!(s.job_ok(&["submit", &spec]).trim(), "credit-1");
    let out = s.job(&["wait", "credit-1"]);
    assert!(out.status.success(), "wait credit-1: {}", text(&out));
    let status = s.status("credit-1");
    assert!(status.contains("state:     finished"), "{status}");
    assert!(status.contains("rounds:    "), "{status}");
    let model_rounds: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("rounds:    "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(model_rounds >= 4, "{status}");
    assert!(
        s.path("coordinator/jobs/credit-1/results/model.json")
            .exists()
    );
    assert!(
        s.path("bank-b/bank-b-results/credit-1/model.json").exists(),
        "each member replays the model into results/<job id>"
    );

    // 3. A job reading a column the members do not expose: refused by every
    // member's consent policy, with the reason the operator sees.
    let spec = s.write_spec(
        "greedy.toml",
        &model_spec(
            "greedy",
            &[
                "age_in_years",
                "installment_rate_in_percentage_of_disposable_income",
            ],
        ),
    );
    s.job_ok(&["submit", &spec]);
    let out = s.job(&["wait", "greedy"]);
    assert!(!out.status.success(), "a refused job does not finish");
    let status = s.status("greedy");
    assert!(status.contains("state:     failed"), "{status}");
    assert!(status.contains("policy-features"), "{status}");

    // 4. SIGKILL while a job waits for its cohort (bank-c is away), restart,
    // bank-c returns: the job resumes from its log and finishes.
    s.kill_member(2);
    let spec = s.write_spec("sum-2.toml", &sum_spec("sum-2"));
    s.job_ok(&["submit", &spec]);
    s.await_status("sum-2", "state:     waiting");
    s.kill9_coordinator();
    s.start_coordinator();
    s.await_status("sum-2", "state:     waiting");
    s.start_member(2);
    let out = s.job(&["wait", "sum-2"]);
    assert!(out.status.success(), "wait sum-2: {}", text(&out));

    // 5. An abort: the job ends at once, signed in its log; `wait` fails.
    s.kill_member(2);
    let spec = s.write_spec("sum-3.toml", &sum_spec("sum-3"));
    s.job_ok(&["submit", &spec]);
    s.await_status("sum-3", "state:     waiting");
    let out = s.job(&["abort", "sum-3"]);
    assert!(out.status.success(), "abort: {}", text(&out));
    let out = s.job(&["wait", "sum-3"]);
    assert!(!out.status.success(), "an aborted job's wait fails");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("aborted by the operator"),
        "{}",
        text(&out)
    );
    let again = s.job(&["abort", "sum-3"]);
    assert!(!again.status.success(), "an ended job cannot be aborted");

    let list = s.job_ok(&["list"]);
    let states: Vec<(String, String)> = list
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_owned(), f[2].to_owned())
        })
        .collect();
    let expect = [
        ("secure-sum", "finished"),
        ("credit-1", "finished"),
        ("greedy", "failed"),
        ("sum-2", "finished"),
        ("sum-3", "aborted"),
    ];
    assert_eq!(
        states,
        expect
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>(),
        "{list}"
    );

    // Every job's round log verifies against the consortium and its spec.
    for (id, _) in expect {
        let out = s.verify(id);
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "audit verify {id}: {}", text(&out));
        assert!(report.contains("result: VERIFIED"), "{id}: {report}");
    }
    let sum2 = String::from_utf8_lossy(&s.verify("sum-2").stdout).into_owned();
    assert!(sum2.contains("1 coordinator restart(s)"), "{sum2}");
    let sum3 = String::from_utf8_lossy(&s.verify("sum-3").stdout).into_owned();
    assert!(sum3.contains("aborted by the operator"), "{sum3}");

    // `job log` shows the timeline, and saves what `audit verify --job` takes.
    let saved = s.path("credit-1.log");
    let timeline = s.job_ok(&["log", "credit-1", "--out", saved.to_str().unwrap()]);
    assert!(timeline.contains("job ended ok"), "{timeline}");
    assert!(s.path("credit-1.log.job.toml").exists());

    // /metrics counts what this (restarted) process saw: the resumed job's
    // restart, its round, and the abort.
    let m = s.metrics();
    assert!(m.contains("fedcredit_coordinator_restarts_total 1"), "{m}");
    assert!(m.contains("fedcredit_rounds_completed_total 1"), "{m}");
    assert!(m.contains("fedcredit_participants_connected"), "{m}");
    for counter in [
        "fedcredit_received_bytes_total",
        "fedcredit_sent_bytes_total",
    ] {
        let bytes: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix(counter))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{counter} missing: {m}"));
        // At least the resumed round's masked inputs and answers.
        assert!(bytes > 1000, "{counter} {bytes}");
    }

    // bank-a's daemon (never restarted) counts its own side: the three jobs
    // it finished and the one it refused (sum-3 was aborted before it
    // asked for the next offer, or while it waited in its lobby).
    let a = scrape(s.bank_a_metrics);
    for line in [
        "fedcredit_participant_jobs_total{outcome=\"finished\"} 3",
        "fedcredit_participant_jobs_total{outcome=\"refused\"} 1",
        "fedcredit_participant_refusals_total{reason=\"policy-features\"} 1",
        "fedcredit_participant_coordinator_reachable 1",
    ] {
        assert!(a.contains(line), "{line}:\n{a}");
    }
    let rounds: u64 = a
        .lines()
        .find_map(|l| l.strip_prefix("fedcredit_participant_rounds_completed_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(rounds, 2 + model_rounds, "{a}");
}

#[test]
fn a_member_refuses_a_job_outside_its_policy_and_serve_needs_a_policy() {
    let s = service();
    let cfg = s.path("bank-a/bank-a.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("\"scorecard\"]"), "{text}");
    // Its policy now allows model jobs only; the consortium file's job is a sum.
    std::fs::write(
        &cfg,
        text.replace(
            "kinds = [\"secure-sum\", \"logistic-regression\", \"scorecard\"]",
            "kinds = [\"logistic-regression\"]",
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["participant", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the consent policy refuses job secure-sum")
            && err.contains("a secure-sum job; policy.kinds allows"),
        "{err}"
    );

    // Without a [policy], --serve does not know which jobs to take part in.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let cut = text.find("[policy]").unwrap();
    std::fs::write(&cfg, &text[..cut]).unwrap();
    let out = Command::new(BIN)
        .args(["participant", "--serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a [policy] table"), "{err}");
}

/// `GET path` on the service's HTTP address: (status code, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"));
    (status, body.to_owned())
}

/// The dashboard in a real browser: the service runs a credit model and a
/// job the members refuse; headless Chromium renders the job list and the
/// model's page (after its script ran), which must show the jobs, the
/// round timeline, the departures with their reason codes, the audit
/// verdict and the ROC and KS charts as SVG paths; screenshots are saved
/// under the target directory. The JSON behind it refuses unknown and
/// malformed ids.
#[test]
fn the_dashboard_shows_jobs_timelines_verdicts_and_charts_in_a_browser() {
    let Some(chromium) = support::chromium("the dashboard's browser test") else {
        return;
    };
    let mut s = service();
    // Each member holds a quarter of its rows out: the evaluation round's
    // pooled histograms, from which the charts are drawn.
    for (id, _) in &s.members {
        let dir = s.kit.path().join(id);
        let rows = std::fs::read_to_string(dir.join(format!("{id}.csv"))).unwrap();
        let mut lines = rows.lines();
        let header = lines.next().unwrap();
        let (mut train, mut test) = (format!("{header}\n"), format!("{header}\n"));
        for (i, l) in lines.enumerate() {
            let part = if i % 4 == 0 { &mut test } else { &mut train };
            part.push_str(l);
            part.push('\n');
        }
        std::fs::write(dir.join(format!("{id}.csv")), train).unwrap();
        std::fs::write(dir.join(format!("{id}-holdout.csv")), test).unwrap();
        let cfg = dir.join(format!("{id}.toml"));
        let member = std::fs::read_to_string(&cfg).unwrap().replace(
            &format!("data = \"{id}.csv\"\n"),
            &format!("data = \"{id}.csv\"\ntest = \"{id}-holdout.csv\"\n"),
        );
        assert!(member.contains("test = "), "{member}");
        std::fs::write(&cfg, member).unwrap();
    }
    s.start_coordinator();
    for i in 0..3 {
        s.start_member(i);
    }
    let spec = s.write_spec("credit.toml", &model_spec("credit-1", &FEATURES));
    assert_eq!(s.job_ok(&["submit", &spec]).trim(), "credit-1");
    let spec = s.write_spec(
        "greedy.toml",
        &model_spec(
            "greedy",
            &[
                "age_in_years",
                "installment_rate_in_percentage_of_disposable_income",
            ],
        ),
    );
    s.job_ok(&["submit", &spec]);
    for (id, ok) in [("secure-sum", true), ("credit-1", true), ("greedy", false)] {
        let out = s.job(&["wait", id]);
        assert_eq!(out.status.success(), ok, "wait {id}: {}", text(&out));
    }

    // The JSON: a finished model's log, verified, with its curves.
    let (code, body) = http_get(s.http, "/api/jobs/credit-1");
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["job"]["state"], "finished", "{page}");
    assert_eq!(page["log"]["audit"]["verified"], true, "{page}");
    assert!(
        page["log"]["verdict"]
            .as_str()
            .unwrap()
            .starts_with("result: VERIFIED"),
        "{page}"
    );
    let events = page["log"]["timeline"]["Ok"]["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["task"] == "evaluate"
            && e["curves"]["roc"].as_array().is_some_and(|r| r.len() > 10)),
        "{page}"
    );
    for (path, code) in [
        ("/api/jobs/no-such-job", 404),
        ("/api/jobs/..%2F..%2Fetc", 400),
        ("/api/jobs/.hidden", 400),
        ("/jobs/../coordinator.key", 404),
    ] {
        assert_eq!(http_get(s.http, path).0, code, "{path}");
    }

    let base = format!("http://127.0.0.1:{}", s.http);
    let list = headless(&chromium, "--dump-dom", &format!("{base}/"));
    assert!(list.contains("data-rendered=\"yes\""), "{list}");
    assert!(list.contains("<table id=\"jobs\""), "{list}");
    for id in ["secure-sum", "credit-1", "greedy"] {
        assert!(
            list.contains(&format!("href=\"/jobs/{id}\"")),
            "{id}: {list}"
        );
    }
    assert!(list.contains("state-failed"), "{list}");

    let job = headless(&chromium, "--dump-dom", &format!("{base}/jobs/credit-1"));
    assert!(job.contains("data-rendered=\"yes\""), "{job}");
    assert!(job.contains("<table id=\"timeline\""), "{job}");
    assert!(job.contains("<table id=\"metrics\""), "{job}");
    assert!(job.contains("evaluate ("), "{job}");
    assert!(job.contains("advertise-keys"), "{job}");
    assert!(job.contains("result: VERIFIED"), "{job}");
    for chart in ["roc-chart", "ks-chart"] {
        let at = job
            .find(&format!("<svg class=\"chart\" id=\"{chart}\""))
            .unwrap_or_else(|| panic!("no {chart} in {job}"));
        let svg = &job[at..at + job[at..].find("</svg>").unwrap()];
        // The curve itself: a path of many points, not only the axes.
        let longest = svg
            .split("<path d=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap().matches('L').count())
            .max()
            .unwrap_or(0);
        assert!(longest >= 50, "{chart}: no curve drawn:\n{svg}");
    }

    let refused = headless(&chromium, "--dump-dom", &format!("{base}/jobs/greedy"));
    assert!(refused.contains("<table id=\"departures\""), "{refused}");
    assert!(refused.contains("policy-features"), "{refused}");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (name, url) in [
        ("jobs", format!("{base}/")),
        ("credit-1", format!("{base}/jobs/credit-1")),
    ] {
        let file = shots.join(format!("dashboard-{name}.png"));
        let _ = std::fs::remove_file(&file);
        headless(&chromium, &format!("--screenshot={}", file.display()), &url);
        assert!(
            std::fs::metadata(&file).unwrap().len() > 10_000,
            "{}",
            file.display()
        );
        println!("dashboard screenshot: {}", file.display());
    }
}

#[test]
fn a_scorecard_job_bins_through_the_members_daemons_and_verifies() {
    let mut s = service();
    s.start_coordinator();
    for i in 0..3 {
        s.start_member(i);
    }
    let out = s.job(&["wait", "secure-sum"]);
    if !out.status.success() {
        std::thread::sleep(Duration::from_secs(1));
        assert!(s.job(&["wait", "secure-sum"]).status.success());
    }
    let spec = s.write_spec("card.toml", &scorecard_spec("card-1"));
    assert_eq!(s.job_ok(&["submit", &spec]).trim(), "card-1");
    let out = s.job(&["wait", "card-1"]);
    assert!(out.status.success(), "wait card-1: {}", text(&out));

    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(s.path(p)).unwrap()).unwrap()
    };
    let published = read("coordinator/jobs/card-1/results/model.json");
    let card = &published["scorecard"];
    let characteristics = card["characteristics"].as_array().expect("scorecard");
    assert_eq!(characteristics.len(), FEATURES.len(), "{card}");
    for c in characteristics {
        let bins = c["bins"].as_array().unwrap();
        assert!((1..=4).contains(&bins.len()), "max_bins = 4: {c}");
        // Every row counted once per characteristic: the pooled 1000 rows.
        let rows: f64 = bins
            .iter()
            .map(|b| b["good"].as_f64().unwrap() + b["bad"].as_f64().unwrap())
            .sum();
        assert_eq!(rows, 1000.0, "{c}");
    }
    let duration = characteristics
        .iter()
        .find(|c| c["name"] == "duration_in_month")
        .unwrap();
    assert_eq!(duration["trend"], "decreasing", "the declared trend");
    assert_eq!(
        published["features"],
        serde_json::json!([
            "woe(duration_in_month)",
            "woe(credit_amount)",
            "woe(age_in_years)"
        ])
    );
    // Each member derived the same scorecard from the published sums.
    for id in ["bank-a", "bank-c"] {
        let own = read(&format!("{id}/{id}-results/card-1/model.json"));
        assert_eq!(own["scorecard"], published["scorecard"], "{id}");
    }
    // The auditor replays the binning round and every later one.
    let out = s.verify("card-1");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "audit verify card-1: {}", text(&out));
    assert!(report.contains("result: VERIFIED"), "{report}");
    let timeline = s.job_ok(&["log", "card-1"]);
    assert!(timeline.contains("binning over 1000 rows"), "{timeline}");
}

/// A series that fails part-way in the service keeps the sums published
/// before the failure, as the one-job coordinator does: the kit's own job
/// is a fixed-cohort series of two sums, bank-b has no file for the
/// second and leaves, the second cannot be published without it, and the
/// job fails with the first sum written under `jobs/<id>/results` (and in
/// every member's own results, bank-b's included).
#[test]
fn a_failed_series_keeps_its_published_sums_in_the_service() {
    let mut s = service();
    let cfg = s.config();
    let kit_job = std::fs::read_to_string(&cfg).unwrap();
    let series = kit_job.replacen(
        "kind = \"secure-sum\"\n",
        "kind = \"secure-sum\"\nrounds = 2\ncohort = \"fixed\"\n",
        1,
    );
    assert_ne!(series, kit_job, "the kit's job is a secure sum");
    std::fs::write(&cfg, series).unwrap();
    for (i, (id, _)) in s.members.iter().enumerate() {
        let p = s.path(&format!("{id}/{id}.toml"));
        let member = std::fs::read_to_string(&p).unwrap();
        let member = member.replace(
            &format!("input = \"{id}.input.txt\"\n"),
            &format!("input = \"{id}.input-{{index}}.txt\"\n"),
        );
        std::fs::write(&p, member).unwrap();
        let values = format!("{}, 2.5, -1\n", i + 1);
        std::fs::write(s.path(&format!("{id}/{id}.input-0.txt")), &values).unwrap();
        if id != "bank-b" {
            std::fs::write(s.path(&format!("{id}/{id}.input-1.txt")), &values).unwrap();
        }
    }
    s.start_coordinator();
    for i in 0..3 {
        s.start_member(i);
    }
    let status = s.await_status("secure-sum", "state:     failed");
    assert!(status.contains("left"), "{status}");
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(s.path(p)).unwrap_or_else(|e| panic!("{p}: {e}")),
        )
        .unwrap()
    };
    let first = read("coordinator/jobs/secure-sum/results/result-0.json");
    assert_eq!(first["sum"], serde_json::json!([6.0, 7.5, -3.0]), "{first}");
    assert!(
        !s.path("coordinator/jobs/secure-sum/results/result-1.json")
            .exists()
    );
    for (id, _) in &s.members {
        let own = read(&format!("{id}/{id}-results/secure-sum/result-0.json"));
        assert_eq!(own["sum"], first["sum"], "{id}");
    }
    let v = s.verify("secure-sum");
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(report.contains("round 0 attempt 0: OK"), "{}", text(&v));
    assert!(report.contains("the job itself failed"), "{}", text(&v));
}
