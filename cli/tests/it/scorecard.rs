//! `fedcredit local --kind scorecard` and `fedcredit score` on its model,
//! through the real binary: the scorecard in model.json, points and
//! reason codes recomputed here from that file alone, and bad applicants
//! refused with file, line, column and value.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");

/// The German credit rows as three training files and a held-out file
/// (the last 200 rows); returns (training files, held-out file, header, rows).
fn files(dir: &Path) -> (Vec<PathBuf>, PathBuf, Vec<String>, Vec<Vec<String>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/german_credit.csv");
    let mut reader = csv::Reader::from_path(path).unwrap();
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
    let test = write("holdout.csv", &rows[800..]);
    (train, test, header, rows)
}

fn local(train: &[PathBuf], extra: &[&str], out: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "local",
        "--label",
        "creditability",
        "--positive",
        "bad",
        "--negative",
        "good",
    ])
    .args(extra)
    .arg("--out")
    .arg(out);
    for f in train {
        cmd.arg("--data").arg(f);
    }
    cmd.output().unwrap()
}

fn score(model: &Path, data: &Path) -> Output {
    Command::new(BIN)
        .args(["score", "--model"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Applicants: the rows without their label column.
fn applicants(path: &Path, header: &[String], rows: &[Vec<String>]) {
    let label = header.iter().position(|h| h == "creditability").unwrap();
    let mut w = csv::Writer::from_path(path).unwrap();
    let drop = |r: &[String]| -> Vec<String> {
        r.iter()
            .enumerate()
            .filter(|(i, _)| *i != label)
            .map(|(_, c)| c.clone())
            .collect()
    };
    w.write_record(drop(header)).unwrap();
    for r in rows {
        w.write_record(drop(r)).unwrap();
    }
    w.flush().unwrap();
}

/// A characteristic's bin for a raw cell, read from model.json alone.
fn bin_of<'a>(c: &'a Value, cell: &str) -> &'a Value {
    c["bins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            if let Some(cats) = b["categories"].as_array() {
                cats.iter().any(|k| k == cell)
            } else if let Some(e) = b["edges"].as_array() {
                let v: f64 = cell.parse().unwrap();
                e[0].as_f64().is_none_or(|l| v >= l) && e[1].as_f64().is_none_or(|h| v < h)
            } else {
                false
            }
        })
        .unwrap_or_else(|| panic!("{}: no bin for `{cell}`", c["name"]))
}

#[test]
fn a_scorecard_from_local_files_scores_applicants_with_points_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test, header, rows) = files(dir.path());
    let out = dir.path().join("card");
    let o = local(
        &train,
        &["--kind", "scorecard", "--test", test.to_str().unwrap()],
        &out,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = text(&o.stdout) + &text(&o.stderr);
    assert!(said.contains("IV "), "{said}");
    let model: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let card = &model["scorecard"];
    assert_eq!(
        (&card["pdo"], &card["base_score"], &card["base_odds"]),
        (&Value::from(20.0), &Value::from(600.0), &Value::from(50.0))
    );
    let chars = card["characteristics"].as_array().unwrap();
    assert_eq!(chars.len(), 20);
    let bads_in_training = rows[..800].iter().filter(|r| r[20] == "bad").count() as f64;
    for c in chars {
        let bins = c["bins"].as_array().unwrap();
        assert!((1..=5).contains(&bins.len()), "{c}");
        assert!(c["iv"].as_f64().unwrap() >= 0.0);
        // Pooled counts over all three parties' training rows.
        let good: f64 = bins.iter().map(|b| b["good"].as_f64().unwrap()).sum();
        let bad: f64 = bins.iter().map(|b| b["bad"].as_f64().unwrap()).sum();
        assert_eq!(
            (good + bad, bad),
            (800.0, bads_in_training),
            "{}",
            c["name"]
        );
        for b in bins {
            assert!(b["woe"].is_f64() && b["points"].is_f64(), "{b}");
        }
    }
    assert!(
        model["metrics"]["auc"].as_f64().unwrap() > 0.7,
        "{}",
        model["metrics"]
    );

    // Score the held-out applicants (no label column).
    let apps = dir.path().join("applicants.csv");
    applicants(&apps, &header, &rows[800..]);
    let o = score(&out.join("model.json"), &apps);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("row,probability,points,reason_1,reason_2,reason_3")
    );
    let (factor, offset) = (
        card["factor"].as_f64().unwrap(),
        card["offset"].as_f64().unwrap(),
    );
    assert!((factor - 20.0 / std::f64::consts::LN_2).abs() < 1e-12);
    assert!((offset - (600.0 - factor * 50f64.ln())).abs() < 1e-9);
    let mut scored = 0;
    let mut reasons_seen = 0;
    for (k, line) in lines.enumerate() {
        let cells: Vec<String> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes())
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(cells[0], (k + 1).to_string());
        let p: f64 = cells[1].parse().unwrap();
        let points: f64 = cells[2].parse().unwrap();
        // Points from model.json alone: the applicant's bin in each characteristic.
        let row = &rows[800 + k];
        let mut total = 0.0;
        let mut lost: Vec<(f64, usize, &str)> = Vec::new();
        for (j, c) in chars.iter().enumerate() {
            let col = header
                .iter()
                .position(|h| h == c["name"].as_str().unwrap())
                .unwrap();
            let own = bin_of(c, &row[col])["points"].as_f64().unwrap();
            total += own;
            let best = c["bins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["points"].as_f64().unwrap())
                .fold(f64::NEG_INFINITY, f64::max);
            if best - own > 0.0 {
                lost.push((best - own, j, c["name"].as_str().unwrap()));
            }
        }
        assert!(
            (points - total).abs() < 1e-9 * total.abs(),
            "row {}: {points} vs {total}",
            k + 1
        );
        // Offset + Factor·ln(odds of good).
        let want = offset + factor * ((1.0 - p) / p).ln();
        assert!(
            (points - want).abs() < 1e-6,
            "row {}: {points} vs {want}",
            k + 1
        );
        lost.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for r in 0..3 {
            assert_eq!(
                cells[3 + r],
                lost.get(r).map_or("", |l| l.2),
                "row {}",
                k + 1
            );
        }
        reasons_seen += usize::from(!cells[3].is_empty());
        scored += 1;
    }
    assert_eq!(scored, 200);
    assert!(
        reasons_seen > 150,
        "{reasons_seen} of 200 rows have a reason"
    );

    // A plain model still writes exactly `row,probability`.
    let plain = dir.path().join("plain");
    let o = local(&train, &["--test", test.to_str().unwrap()], &plain);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plain_model = std::fs::read_to_string(plain.join("model.json")).unwrap();
    assert!(!plain_model.contains("scorecard"));
    let o = score(&plain.join("model.json"), &apps);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().next(), Some("row,probability"));
    assert_eq!(
        text(&o.stdout).lines().nth(1).unwrap().split(',').count(),
        2
    );
}

#[test]
fn scoring_a_scorecard_refuses_an_unseen_category_and_a_nan_naming_where() {
    let dir = tempfile::tempdir().unwrap();
    let (train, _, header, rows) = files(dir.path());
    let out = dir.path().join("card");
    let o = local(&train, &["--kind", "scorecard", "--max-bins", "4"], &out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let model = out.join("model.json");
    let housing = header.iter().position(|h| h == "housing").unwrap();
    let age = header.iter().position(|h| h == "age_in_years").unwrap();

    let mut bad = rows[800..805].to_vec();
    bad[2][housing] = "castle".into();
    let apps = dir.path().join("castle.csv");
    applicants(&apps, &header, &bad);
    let o = score(&model, &apps);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    // Line 4: the header is line 1.
    assert!(
        err.contains("castle.csv:4") && err.contains("`housing`") && err.contains("`castle`"),
        "{err}"
    );

    let mut bad = rows[800..805].to_vec();
    bad[1][age] = "NaN".into();
    let apps = dir.path().join("nan.csv");
    applicants(&apps, &header, &bad);
    let o = score(&model, &apps);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("nan.csv:3") && err.contains("`age_in_years`") && err.contains("NaN"),
        "{err}"
    );

    // Scorecard settings need the scorecard kind; a trend names a feature and a direction.
    for (args, want) in [
        (
            &["--max-bins", "4"][..],
            "--max-bins is a scorecard setting",
        ),
        (
            &["--kind", "scorecard", "--trend", "age_in_years=sideways"][..],
            "trend `sideways`",
        ),
        (
            &["--kind", "scorecard", "--trend", "shoe_size=increasing"][..],
            "no feature `shoe_size`",
        ),
        (
            &["--kind", "scorecard", "--max-bins", "0"][..],
            "max_bins = 0",
        ),
    ] {
        let o = local(&train, args, &dir.path().join("x"));
        assert!(!o.status.success(), "{args:?}");
        assert!(
            text(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}

/// Parquet files streamed from disk (their matrices over the memory
/// budget) give the very scorecard that loading them gives: histograms,
/// bounds and WOE rows are read batch by batch.
#[test]
fn a_scorecard_from_streamed_parquet_files_is_the_loaded_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = Command::new(BIN)
        .args([
            "bench-read",
            "--parquet",
            "--rows",
            "6000",
            "--features",
            "4",
        ])
        .args(["--parties", "3", "--write-synthetic"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let run = |name: &str, max_memory_mb: &str| {
        let out = dir.path().join(name);
        let mut cmd = Command::new(BIN);
        cmd.args(["local", "--kind", "scorecard", "--label", "default"])
            .args(["--positive", "1", "--negative", "0"])
            .args(["--max-memory-mb", max_memory_mb, "--out"])
            .arg(&out);
        for i in 1..=3 {
            cmd.arg("--data")
                .arg(data.join(format!("party-{i:02}.parquet")));
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        let model: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap())
                .unwrap();
        (model, text(&o.stdout))
    };
    let (memory, said) = run("memory", "4096");
    assert!(!said.contains("streamed"), "{said}");
    let (streamed, said) = run("streamed", "0");
    assert_eq!(
        said.matches("rows streamed from the file").count(),
        3,
        "{said}"
    );
    assert_eq!(memory["scorecard"], streamed["scorecard"]);
    assert_eq!(memory["original"], streamed["original"]);
    let chars = memory["scorecard"]["characteristics"].as_array().unwrap();
    assert_eq!(chars.len(), 4);
    assert!(
        chars
            .iter()
            .any(|c| c["bins"].as_array().unwrap().len() > 1)
    );
}
