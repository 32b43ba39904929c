//! `fedcredit serve` as a user runs it: a separate process scoring a model
//! that `fedcredit local` trained, bad applicants answered 422 naming the
//! field, and a SIGHUP model swap under a steady stream of requests that
//! loses none of them.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");

/// Trains a model on the bundled German credit rows (three parties),
/// keeping only `columns`, into `out`.
fn train(dir: &Path, name: &str, columns: &[&str], extra: &[&str]) -> std::path::PathBuf {
    let rows = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/german_credit.csv"),
    )
    .unwrap();
    let mut reader = csv::Reader::from_reader(rows.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let mut keep: Vec<usize> = columns
        .iter()
        .map(|c| header.iter().position(|h| h == c).unwrap())
        .collect();
    keep.push(header.iter().position(|h| h == "creditability").unwrap());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let mut args = vec!["local".to_owned()];
    for part in 0..3 {
        let path = dir.join(format!("{name}-{part}.csv"));
        let mut w = csv::Writer::from_path(&path).unwrap();
        w.write_record(keep.iter().map(|&i| &header[i])).unwrap();
        for r in records.iter().skip(part).step_by(3) {
            w.write_record(keep.iter().map(|&i| &r[i])).unwrap();
        }
        w.flush().unwrap();
        args.extend(["--data".into(), path.to_str().unwrap().into()]);
    }
    let out = dir.join(name);
    args.extend(
        [
            "--label",
            "creditability",
            "--positive",
            "bad",
            "--negative",
            "good",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(str::to_owned),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = Command::new(BIN).args(&args).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    out.join("model.json")
}

/// One HTTP/1.0 request; (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

struct Server(Child, SocketAddr);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(model: &Path) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--model"])
        .arg(model)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    Server(child, addr)
}

#[test]
fn serve_scores_names_bad_fields_and_swaps_models_on_sighup_without_dropping_requests() {
    let dir = tempfile::tempdir().unwrap();
    let a = train(
        dir.path(),
        "a",
        &["duration_in_month", "credit_amount"],
        &[],
    );
    let b = train(
        dir.path(),
        "b",
        &["duration_in_month", "age_in_years", "purpose"],
        &[],
    );
    let live = dir.path().join("live.json");
    std::fs::copy(&a, &live).unwrap();
    let server = serve(&live);
    let addr = server.1;

    let (status, body) = http(
        addr,
        "POST",
        "/v1/score",
        r#"{"duration_in_month": 24, "credit_amount": 5000}"#,
    );
    assert_eq!(status, 200, "{body}");
    let p: f64 = serde_json::from_str::<serde_json::Value>(&body).unwrap()["probability"]
        .as_f64()
        .unwrap();
    assert!(p > 0.0 && p < 1.0, "{body}");

    // Bad applicants: 422 naming the field (and the applicant in a batch).
    for (request, field) in [
        (r#"{"duration_in_month": 24}"#, "credit_amount"),
        (
            r#"{"duration_in_month": "soon", "credit_amount": 1}"#,
            "duration_in_month",
        ),
        (
            r#"{"duration_in_month": 24, "credit_amount": "inf"}"#,
            "credit_amount",
        ),
        (
            r#"{"duration_in_month": [1], "credit_amount": 1}"#,
            "duration_in_month",
        ),
    ] {
        let (status, body) = http(addr, "POST", "/v1/score", request);
        assert_eq!(status, 422, "{request}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["field"], field, "{request}: {body}");
    }
    let (status, body) = http(
        addr,
        "POST",
        "/v1/score/batch",
        r#"{"applicants": [{"duration_in_month": 6, "credit_amount": 900}, {"duration_in_month": 6}]}"#,
    );
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["applicant"].as_u64(), v["field"].as_str()),
        (Some(1), Some("credit_amount"))
    );

    // A steady stream of requests valid for both models while the model is
    // swapped: every one answered 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let both = r#"{"duration_in_month": 12, "credit_amount": 2500, "age_in_years": 40, "purpose": "car (new)"}"#;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, bad) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&bad));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (status, _) = http(addr, "POST", "/v1/score", both);
                    if status == 200 { &ok } else { &bad }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // A broken file first: the old model keeps serving.
    std::fs::write(&live, "{ not a model").unwrap();
    let hup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    hup(server.0.id());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, health) = http(addr, "GET", "/healthz", "");
    assert!(
        health.contains("credit_amount") && !health.contains("purpose"),
        "{health}"
    );
    // Then the new model.
    std::fs::copy(&b, &live).unwrap();
    hup(server.0.id());
    let start = std::time::Instant::now();
    loop {
        let (_, health) = http(addr, "GET", "/healthz", "");
        if health.contains("purpose") {
            break;
        }
        assert!(start.elapsed().as_secs() < 20, "never reloaded: {health}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "requests failed during the swap"
    );
    assert!(ok.load(Ordering::Relaxed) > 20);
    // The new model needs its own fields now.
    let (status, body) = http(
        addr,
        "POST",
        "/v1/score",
        r#"{"duration_in_month": 12, "credit_amount": 2500}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("age_in_years"), "{body}");
    let (_, metrics) = http(addr, "GET", "/metrics", "");
    assert!(
        metrics.contains("fedcredit_serve_model_reloads_total{route=\"reload\",status=\"500\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fedcredit_serve_model_reloads_total{route=\"reload\",status=\"200\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_scorecard_is_served_with_points_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let model = train(
        dir.path(),
        "card",
        &[
            "status_of_existing_checking_account",
            "duration_in_month",
            "age_in_years",
        ],
        &["--kind", "scorecard"],
    );
    let server = serve(&model);
    let (status, body) = http(
        server.1,
        "POST",
        "/v1/score",
        r#"{"status_of_existing_checking_account": "... < 0 DM", "duration_in_month": 48, "age_in_years": 22}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let p = v["probability"].as_f64().unwrap();
    let points = v["points"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1.0 && points.is_finite(), "{body}");
    // The points follow from the probability: Offset + Factor·ln(odds of good).
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let (offset, factor) = (
        card["scorecard"]["offset"].as_f64().unwrap(),
        card["scorecard"]["factor"].as_f64().unwrap(),
    );
    assert!(
        (points - (offset + factor * ((1.0 - p) / p).ln())).abs() < 1e-6,
        "{body}"
    );
    let reasons: Vec<&str> = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(!reasons.is_empty() && reasons.len() <= 3, "{body}");
    assert!(
        reasons.contains(&"status_of_existing_checking_account"),
        "{body}"
    );
    // A category the scorecard never binned is named.
    let (status, body) = http(
        server.1,
        "POST",
        "/v1/score",
        r#"{"status_of_existing_checking_account": "castle", "duration_in_month": 48, "age_in_years": 22}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("status_of_existing_checking_account"),
        "{body}"
    );
}
