//! `fedcredit report` and `fedcredit report verify` through the real
//! binary, on models that `fedcredit local` fits on the German credit data
//! (a scorecard and a plain logistic regression): the report is written
//! and verifies; a flipped byte, another key's signature, a member's
//! signature and a missing or cut `.sig` are each refused; a tampered log,
//! a model file that is not the logged model, a foreign spec hash and a
//! key that is not the coordinator's stop `report` before it writes
//! anything. A category named `<script>...` shows as text. In headless
//! Chromium the report's charts are drawn and its bin tables are there.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fedcredit_crypto::identity::{IdentityKey, SignContext};

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");

/// A category value that must reach the page as text.
const EVIL: &str = "<script>alert('x')</script>";

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The German credit rows as three training files and a held-out file
/// (the last 200 rows), with the purpose `car (new)` renamed to [`EVIL`].
fn files(dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/german_credit.csv");
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let purpose = header.iter().position(|h| h == "purpose").unwrap();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            let mut r: Vec<String> = r.unwrap().iter().map(str::to_owned).collect();
            if r[purpose] == "car (new)" {
                r[purpose] = EVIL.to_owned();
            }
            r
        })
        .collect();
    let write = |name: &str, rows: &[Vec<String>]| {
        let p = dir.join(name);
        let mut w = csv::Writer::from_path(&p).unwrap();
        w.write_record(&header).unwrap();
        for r in rows {
            w.write_record(r).unwrap();
        }
        w.flush().unwrap();
        p
    };
    let train = vec![
        write("bank-a.csv", &rows[..300]),
        write("bank-b.csv", &rows[300..500]),
        write("platform.csv", &rows[500..800]),
    ];
    (train, write("holdout.csv", &rows[800..]))
}

/// `fedcredit local` (with `extra` flags) into `dir/name`.
fn local(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let (train, test) = files(dir);
    let out = dir.join(name);
    let mut cmd = Command::new(BIN);
    cmd.args([
        "local",
        "--label",
        "creditability",
        "--positive",
        "bad",
        "--negative",
        "good",
        "--test",
        s(&test),
        "--out",
        s(&out),
    ])
    .args(extra);
    for f in &train {
        cmd.arg("--data").arg(f);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    out
}

/// `fedcredit report` on the run in `run_dir`, with `model` and `log`
/// (defaults: the run's), writing `out`.
fn report(
    run_dir: &Path,
    model: Option<&Path>,
    log: Option<&Path>,
    key: Option<&Path>,
    out: &Path,
) -> Output {
    run(&[
        "report",
        "--model",
        s(&model.map_or_else(|| run_dir.join("model.json"), Path::to_owned)),
        "--log",
        s(&log.map_or_else(|| run_dir.join("rounds.log"), Path::to_owned)),
        "--consortium",
        s(&run_dir.join("consortium.toml")),
        "--key",
        s(&key.map_or_else(|| run_dir.join("coordinator.key"), Path::to_owned)),
        "--out",
        s(out),
    ])
}

fn verify(report: &Path, consortium: &Path) -> Output {
    run(&["report", "verify", s(report), "--consortium", s(consortium)])
}

fn sig_of(report: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sig", report.display()))
}

/// Asserts `o` failed and said `needle`.
fn refused(o: &Output, needle: &str) {
    let t = text(o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains(needle), "expected {needle:?} in:\n{t}");
}

/// Signs `html` as a report with `key`, into its `.sig`.
fn sign_with(key: &IdentityKey, report: &Path) {
    let html = std::fs::read(report).unwrap();
    let sig = key.sign(SignContext::RegulatorReport, &html);
    std::fs::write(sig_of(report), hex::encode(sig.to_bytes()) + "\n").unwrap();
}

#[test]
fn reports_are_written_verified_and_refused_when_anything_differs() {
    let dir = tempfile::tempdir().unwrap();
    let card = local(dir.path(), "card", &["--kind", "scorecard"]);
    let plain = local(dir.path(), "plain", &[]);

    // The scorecard's report.
    let html_path = dir.path().join("card.html");
    let o = report(&card, None, None, None, &html_path);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("result: VERIFIED"), "{}", text(&o));
    let html = std::fs::read_to_string(&html_path).unwrap();
    for needle in [
        "id=\"roc-chart\"",
        "id=\"ks-chart\"",
        "id=\"score-distribution-chart\"",
        "id=\"calibration-chart\"",
        "<table id=\"characteristics\"",
        "<table id=\"points-scale\"",
        "<table id=\"calibration-table\"",
        "none: exact sums",
        "result: VERIFIED",
        "local-scorecard",
    ] {
        assert!(html.contains(needle), "no {needle} in the report");
    }
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(card.join("model.json")).unwrap()).unwrap();
    let hash = model["job_spec_hash"].as_str().unwrap();
    assert!(html.contains(&format!("<code id=\"spec-hash\">{hash}</code>")));
    // Self-contained: no script, no reference to anything outside the file.
    for banned in ["<script", "src=", "href=\"http", "url(", "@import"] {
        assert!(!html.contains(banned), "{banned} in the report");
    }
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    // Characteristics by IV, largest first.
    let ivs: Vec<f64> = model["scorecard"]["characteristics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["iv"].as_f64().unwrap())
        .collect();
    let top = model["scorecard"]["characteristics"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["iv"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["iv"].as_f64().unwrap())
        })
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ivs.len(), 20);
    let table_at = html.find("<table id=\"characteristics\"").unwrap();
    let first_row = &html[table_at..][html[table_at..].find("<tbody><tr><td>").unwrap() + 15..];
    assert!(
        first_row.starts_with(&top),
        "{top} first: {}",
        &first_row[..80]
    );

    let ok = verify(&html_path, &card.join("consortium.toml"));
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("signed by the coordinator key"),
        "{}",
        text(&ok)
    );

    // The plain model's report.
    let plain_html = dir.path().join("plain.html");
    let o = report(&plain, None, None, None, &plain_html);
    assert!(o.status.success(), "{}", text(&o));
    let page = std::fs::read_to_string(&plain_html).unwrap();
    assert!(page.contains("id=\"roc-chart\"") && !page.contains("id=\"characteristics\""));
    assert!(page.contains("none: exact sums"));
    assert!(
        verify(&plain_html, &plain.join("consortium.toml"))
            .status
            .success()
    );

    // ---- report verify: the tamper cases --------------------------------
    let consortium = card.join("consortium.toml");
    let pristine = std::fs::read(&html_path).unwrap();
    let signature = std::fs::read(sig_of(&html_path)).unwrap();

    // One byte of the HTML flipped.
    let mut flipped = pristine.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x01;
    std::fs::write(&html_path, &flipped).unwrap();
    refused(
        &verify(&html_path, &consortium),
        "changed after it was signed",
    );
    std::fs::write(&html_path, &pristine).unwrap();
    assert!(verify(&html_path, &consortium).status.success());

    // Another consortium's coordinator (the plain run's) did not sign it.
    refused(
        &verify(&html_path, &plain.join("consortium.toml")),
        "does not verify under the coordinator key",
    );

    // Signed by a key outside the consortium.
    let stranger = IdentityKey::from_secret_bytes(&[0x42; 32]);
    sign_with(&stranger, &html_path);
    refused(
        &verify(&html_path, &consortium),
        "does not verify under the coordinator key",
    );

    // Signed by a member: the consortium file lists party-2 with this key.
    let member = IdentityKey::from_secret_bytes(&[0x17; 32]);
    let toml = std::fs::read_to_string(&consortium).unwrap();
    let mut doc: toml::Value = toml::from_str(&toml).unwrap();
    let members = doc["participants"].as_array_mut().unwrap();
    let party_2 = members
        .iter_mut()
        .find(|m| m["id"].as_str() == Some("party-2"))
        .unwrap();
    party_2["public_key"] = toml::Value::String(member.public().to_hex());
    let with_member = dir.path().join("with-member.toml");
    std::fs::write(&with_member, toml::to_string(&doc).unwrap()).unwrap();
    sign_with(&member, &html_path);
    refused(
        &verify(&html_path, &with_member),
        "signed by member party-2's key",
    );

    // A missing and a cut signature file.
    std::fs::remove_file(sig_of(&html_path)).unwrap();
    refused(
        &verify(&html_path, &consortium),
        "cannot read the report's signature file",
    );
    std::fs::write(sig_of(&html_path), &signature[..60]).unwrap();
    refused(&verify(&html_path, &consortium), "truncated");
    std::fs::write(sig_of(&html_path), &signature).unwrap();
    assert!(verify(&html_path, &consortium).status.success());

    // ---- report: refusals, and nothing written ---------------------------
    let never = dir.path().join("never.html");
    let check_nothing_written = || {
        assert!(!never.exists() && !sig_of(&never).exists());
    };

    // A log with one byte changed.
    let mut log = std::fs::read(card.join("rounds.log")).unwrap();
    let at = log.len() / 2;
    log[at] ^= 0x01;
    let bad_log = dir.path().join("tampered.log");
    std::fs::write(&bad_log, &log).unwrap();
    refused(
        &report(&card, None, Some(&bad_log), None, &never),
        "the round log does not verify",
    );
    check_nothing_written();

    // model.json with one coefficient changed.
    let mut m = model.clone();
    let c0 = m["original"]["coefficients"][0].as_f64().unwrap();
    m["original"]["coefficients"][0] = serde_json::json!(c0 + 0.5);
    let bad_model = dir.path().join("edited-model.json");
    std::fs::write(&bad_model, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    refused(
        &report(&card, Some(&bad_model), None, None, &never),
        "model.json is not the model the round log published: original.coefficients[0]",
    );
    check_nothing_written();

    // A scorecard whose points or bin counts are not the published ones
    // (the binning round's sums are in the log).
    let mut m = model.clone();
    m["scorecard"]["characteristics"][0]["coefficient"] = serde_json::json!(1.25);
    std::fs::write(&bad_model, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    refused(
        &report(&card, Some(&bad_model), None, None, &never),
        "model.json is not the model the round log published: scorecard.characteristics[0].coefficient",
    );
    let mut m = model.clone();
    let good = m["scorecard"]["characteristics"][0]["bins"][0]["good"]
        .as_f64()
        .unwrap();
    m["scorecard"]["characteristics"][0]["bins"][0]["good"] = serde_json::json!(good + 1.0);
    std::fs::write(&bad_model, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    refused(
        &report(&card, Some(&bad_model), None, None, &never),
        "scorecard.characteristics[0].bins[0].good",
    );

    // Another job's spec hash.
    let mut m = model.clone();
    m["job_spec_hash"] = serde_json::json!("00".repeat(32));
    std::fs::write(&bad_model, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    refused(
        &report(&card, Some(&bad_model), None, None, &never),
        &format!(
            "job_spec_hash is {}, but the job spec of the consortium hashes to {hash}",
            "00".repeat(32)
        ),
    );

    // The other run's model against this run's log.
    refused(
        &report(&card, Some(&plain.join("model.json")), None, None, &never),
        "job id is \"local\"",
    );

    // A key that is not the coordinator's.
    refused(
        &report(
            &card,
            None,
            None,
            Some(&plain.join("coordinator.key")),
            &never,
        ),
        "is not the coordinator key",
    );
    check_nothing_written();
}

/// The report in a browser: every chart is an SVG with a drawn curve, the
/// scorecard's tables are there, the `<script>` category is text.
#[test]
fn the_report_renders_its_charts_and_tables_in_a_browser() {
    let Some(chromium) = support::chromium("the regulator report's browser test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let card = local(dir.path(), "card", &["--kind", "scorecard"]);
    let html_path = dir.path().join("report.html");
    let o = report(&card, None, None, None, &html_path);
    assert!(o.status.success(), "{}", text(&o));
    let url = format!("file://{}", html_path.display());
    let dom = support::headless(&chromium, "--dump-dom", &url);
    for (chart, min_points) in [
        ("roc-chart", 50),
        ("ks-chart", 50),
        ("score-distribution-chart", 50),
        ("calibration-chart", 5),
    ] {
        let at = dom
            .find(&format!("id=\"{chart}\""))
            .unwrap_or_else(|| panic!("no {chart} in {dom}"));
        let svg = &dom[at..at + dom[at..].find("</svg>").unwrap()];
        let longest = svg
            .split(" d=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap().matches('L').count())
            .max()
            .unwrap_or(0);
        assert!(longest >= min_points, "{chart}: {longest} points:\n{svg}");
    }
    assert!(dom.contains("<table id=\"characteristics\""));
    // A bin table per characteristic, and the category as text.
    assert!(dom.matches("<th>WOE</th>").count() >= 20, "{dom}");
    assert!(
        dom.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<script"), "{dom}");

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("regulator-report.png");
    let _ = std::fs::remove_file(&shot);
    support::headless(&chromium, &format!("--screenshot={}", shot.display()), &url);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    println!("report screenshot: {}", shot.display());
}
