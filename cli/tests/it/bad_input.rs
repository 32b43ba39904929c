//! Nothing silent, nothing lost: the real `fedcredit` binary on files whose
//! labels, separators or rows do not fit. Every refusal names the file,
//! line, column and value; `score --on-error skip` keeps every bad row.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");

/// The bundled German credit data: header and records.
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
    // Flexible: some tests write short rows on purpose.
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_path(path)
        .unwrap();
    w.write_record(header).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.flush().unwrap();
}

/// Writes the German credit rows, mapped by `f`, as `k` contiguous files.
fn parts(dir: &Path, k: usize, f: impl Fn(usize, &mut Vec<String>)) -> Vec<PathBuf> {
    let (header, mut rows) = german();
    for (i, r) in rows.iter_mut().enumerate() {
        f(i, r);
    }
    let per = rows.len().div_ceil(k);
    rows.chunks(per)
        .enumerate()
        .map(|(i, chunk)| {
            let path = dir.join(format!("part-{i}.csv"));
            write_csv(&path, &header, chunk);
            path
        })
        .collect()
}

/// Runs `fedcredit local` on `files` with the label arguments `label`.
fn local(files: &[PathBuf], label: &[&str], out: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["local", "--label", "creditability"])
        .args(label)
        .arg("--out")
        .arg(out);
    for f in files {
        cmd.arg("--data").arg(f);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `BAD` where `bad` and `good` are declared: the run stops at that cell
/// (it used to count as a good applicant).
#[test]
fn local_refuses_an_undeclared_label_naming_file_line_and_value() {
    let dir = tempfile::tempdir().unwrap();
    // Row 410 overall is the 77th row of the second file: line 78.
    let files = parts(dir.path(), 3, |i, r| {
        if i == 410 {
            *r.last_mut().unwrap() = "BAD".into();
        }
    });
    let out = dir.path().join("out");
    let o = local(&files, &["--positive", "bad", "--negative", "good"], &out);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(
            "part-1.csv:78: label column `creditability`: value `BAD` is neither `bad` \
             (positive) nor `good` (negative) (label values are case-sensitive)"
        ),
        "{err}"
    );
    assert!(!out.join("model.json").exists());
}

/// Column of the German credit data by name.
fn column(name: &str) -> usize {
    german().0.iter().position(|h| h == name).unwrap()
}

/// Regression: a text cell in a column of numbers turned the whole column
/// categorical, each amount a category (`credit_amount=abc`,
/// `credit_amount=1169`, …), without a word. Now the run stops at the
/// earliest such cell (here the first of two, in the second file) and says
/// how to declare the column categorical if that is what it is.
#[test]
fn local_refuses_text_in_a_numeric_column_naming_file_line_column_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let amount = column("credit_amount");
    // Row 410 overall is the 77th row of the second file: line 78.
    let files = parts(dir.path(), 3, |i, r| {
        if i == 410 || i == 900 {
            r[amount] = "abc".into();
        }
    });
    let out = dir.path().join("out");
    let o = local(&files, &["--positive", "bad", "--negative", "good"], &out);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(
            "part-1.csv:78: column `credit_amount`: `abc` is not a number, but 998 of the \
             column's 1000 cells are: the column looks numeric. If it is numeric, put a number \
             in that cell (or leave the row out); if it is categorical, declare it so \
             (`fedcredit local --categorical credit_amount`)"
        ),
        "{err}"
    );
    assert!(!out.join("model.json").exists());

    // An empty cell is no number either (it used to become the category `""`).
    let files = parts(dir.path(), 3, |i, r| {
        if i == 5 {
            r[amount] = String::new();
        }
    });
    let err = stderr(&local(
        &files,
        &["--positive", "bad", "--negative", "good"],
        &out,
    ));
    assert!(
        err.contains("part-0.csv:7: column `credit_amount`: an empty cell is not a number"),
        "{err}"
    );
}

/// `NaN` and infinities (pandas' missing values, an overflowed export)
/// are refused wherever they are, with file, line, column and value.
#[test]
fn local_refuses_nan_and_infinity_cells() {
    let dir = tempfile::tempdir().unwrap();
    let duration = column("duration_in_month");
    let out = dir.path().join("out");
    for (value, row, at) in [("NaN", 5, "part-0.csv:7"), ("-inf", 700, "part-2.csv:34")] {
        let files = parts(dir.path(), 3, |i, r| {
            if i == row {
                r[duration] = value.into();
            }
        });
        let o = local(&files, &["--positive", "bad", "--negative", "good"], &out);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "{at}: inferring the schema: column `duration_in_month`: value `{value}` is not \
                 finite, expected a finite number"
            )),
            "{err}"
        );
        assert!(!out.join("model.json").exists());
    }
}

/// A categorical column whose codes are mostly numbers (`1` … `4`, and
/// `4+`) is refused as looking numeric, and trains once declared with
/// `--categorical`, every code a category.
#[test]
fn local_trains_on_a_mixed_column_declared_categorical() {
    let dir = tempfile::tempdir().unwrap();
    let credits = column("number_of_existing_credits_at_this_bank");
    let files = parts(dir.path(), 2, |i, r| {
        if i % 50 == 0 {
            r[credits] = "4+".into();
        }
    });
    let out = dir.path().join("out");
    let labels = ["--positive", "bad", "--negative", "good"];
    let err = stderr(&local(&files, &labels, &out));
    assert!(
        err.contains("part-0.csv:2: column `number_of_existing_credits_at_this_bank`: `4+`"),
        "{err}"
    );
    let declared = [
        &labels[..],
        &["--categorical", "number_of_existing_credits_at_this_bank"],
    ]
    .concat();
    let o = local(&files, &declared, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let features: Vec<&str> = model["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "number_of_existing_credits_at_this_bank=2",
        "number_of_existing_credits_at_this_bank=4+",
    ] {
        assert!(features.contains(&f), "no {f} in {features:?}");
    }
    assert!(!features.contains(&"number_of_existing_credits_at_this_bank"));
}

/// 0/1 labels where `bad` and `good` are declared: refused at the first row.
#[test]
fn local_refuses_0_1_labels_when_bad_and_good_are_declared() {
    let dir = tempfile::tempdir().unwrap();
    let files = parts(dir.path(), 3, |_, r| {
        let label = r.last_mut().unwrap();
        *label = if label == "bad" { "1" } else { "0" }.into();
    });
    let out = dir.path().join("out");
    let o = local(&files, &["--positive", "bad", "--negative", "good"], &out);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("part-0.csv:2: label column `creditability`: value `0` is neither `bad`"),
        "{err}"
    );
    // The same files train once the coding is declared.
    let o = local(&files, &["--positive", "1", "--negative", "0"], &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("model.json").exists());
}

/// The label spec must say what is negative; clap names both ways.
#[test]
fn local_needs_the_negative_class_stated() {
    let dir = tempfile::tempdir().unwrap();
    let files = parts(dir.path(), 3, |_, _| {});
    let o = local(&files, &["--positive", "bad"], &dir.path().join("out"));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--negative <NEGATIVE>") && err.contains("--negatives <NEGATIVES>"),
        "{err}"
    );
}

/// `--positive yes` matches no row: with every other value declared
/// negative, the pooled statistics round shows no positive row and the job
/// stops there, before any optimization round, with a non-zero exit.
#[test]
fn local_stops_after_the_statistics_round_when_the_pool_lacks_a_class() {
    let dir = tempfile::tempdir().unwrap();
    let files = parts(dir.path(), 3, |_, _| {});
    let out = dir.path().join("out");
    let o = local(
        &files,
        &["--positive", "yes", "--negatives", "all-others"],
        &out,
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(
            "the pooled data has no positive rows (label `yes` in column `creditability`)"
        ),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains("optimization"), "{stdout}");
    assert!(!out.join("model.json").exists());
    // The refused sum is published and logged, and the job's failure
    // follows from it: the auditor verifies the log (no hidden work).
    let v = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(out.join("rounds.log"))
        .arg("--consortium")
        .arg(out.join("consortium.toml"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{report}");
    assert!(report.contains("no positive rows"), "{report}");

    // Only bad applicants: no negative rows.
    let dir = tempfile::tempdir().unwrap();
    let (header, rows) = german();
    let bad: Vec<Vec<String>> = rows
        .into_iter()
        .filter(|r| r.last().unwrap() == "bad")
        .collect();
    let files: Vec<PathBuf> = bad
        .chunks(100)
        .enumerate()
        .map(|(i, c)| {
            let p = dir.path().join(format!("bad-{i}.csv"));
            write_csv(&p, &header, c);
            p
        })
        .collect();
    let o = local(
        &files,
        &["--positive", "bad", "--negative", "good"],
        &dir.path().join("out"),
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(
            "the pooled data has no negative rows (label `good` in column `creditability`)"
        ),
        "{err}"
    );
}

/// A file exported with semicolons or tabs is named as such, with a way to
/// convert it, not reported as a missing label column.
#[test]
fn local_names_a_semicolon_or_tab_separated_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, sep, what) in [("semi.csv", ";", "semicolon"), ("tabs.csv", "\t", "tab")] {
        let path = dir.path().join(name);
        let text = ["age", "amount", "creditability"].join(sep)
            + "\n"
            + &["30", "1200,5", "bad"].join(sep)
            + "\n";
        std::fs::write(&path, text).unwrap();
        let o = local(
            std::slice::from_ref(&path),
            &["--positive", "bad", "--negative", "good"],
            &dir.path().join("out"),
        );
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{name}:1: the header is a single column"))
                && err.contains(&format!(
                    "which looks {what}-separated; fedcredit reads comma-separated CSV. \
                     Convert it, e.g.: python3 -c"
                )),
            "{err}"
        );
    }
}

/// Trains once, then scores applicants (no label column, an id column
/// first) among which five rows do not fit the model.
#[test]
fn score_passes_ids_through_and_skips_bad_rows_into_an_error_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = parts(d, 3, |_, _| {});
    let trained = d.join("out");
    let o = local(
        &files,
        &["--positive", "bad", "--negative", "good"],
        &trained,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let model = trained.join("model.json");

    let (mut header, rows) = german();
    header.pop();
    header.insert(0, "applicant".into());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut apps: Vec<Vec<String>> = rows[..8]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut r = r.clone();
            r.pop();
            // The third id spans two lines: later lines count it.
            let id = if i == 2 {
                "A3\nB".into()
            } else {
                format!("A{}", i + 1)
            };
            r.insert(0, id);
            r
        })
        .collect();
    apps[1][col("duration_in_month")] = "abc".into(); // line 3
    apps[3][col("credit_amount")] = "NaN".into(); // line 6 (the id above spans 4-5)
    apps[4][col("purpose")] = "spaceship".into(); // line 7
    apps[5][col("age_in_years")] = String::new(); // line 8
    apps[6].truncate(5); // line 9: a short row
    let data = d.join("applicants.csv");
    write_csv(&data, &header, &apps);
    let score = |extra: &[&str]| {
        Command::new(BIN)
            .args(["score", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .args(extra)
            .output()
            .unwrap()
    };

    // Default: fail fast at the first bad row, leaving no output behind.
    let scores = d.join("scores.csv");
    let o = score(&["--out", scores.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("applicants.csv:3: column `duration_in_month`: value `abc` is not a number"),
        "{err}"
    );
    assert!(!scores.exists());
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 5, "no leftovers");

    // Skip: the three good rows are scored, the five bad ones listed.
    let o = score(&[
        "--out",
        scores.to_str().unwrap(),
        "--id-column",
        "applicant",
        "--on-error",
        "skip",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let errors = d.join("scores.errors.csv");
    assert_eq!(
        stderr(&o).trim(),
        format!("scored 3 rows, skipped 5 (see {})", errors.display())
    );
    let mut r = csv::Reader::from_path(&scores).unwrap();
    assert_eq!(
        r.headers().unwrap(),
        vec!["applicant", "row", "probability"]
    );
    let got: Vec<(String, String, f64)> = r
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_owned(), r[1].to_owned(), r[2].parse().unwrap())
        })
        .collect();
    assert_eq!(
        got.iter()
            .map(|(a, b, _)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
        [("A1", "1"), ("A3\nB", "3"), ("A8", "8")]
    );
    assert!(got.iter().all(|(_, _, p)| (0.0..=1.0).contains(p)));
    let mut r = csv::Reader::from_path(&errors).unwrap();
    assert_eq!(
        r.headers().unwrap(),
        vec!["line", "column", "value", "reason"]
    );
    let bad: Vec<Vec<String>> = r
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let short: Vec<&str> = bad.iter().map(|b| b[1].as_str()).collect();
    assert_eq!(
        short,
        [
            "duration_in_month",
            "credit_amount",
            "purpose",
            "age_in_years",
            ""
        ]
    );
    let lines: Vec<&str> = bad.iter().map(|b| b[0].as_str()).collect();
    assert_eq!(lines, ["3", "6", "7", "8", "9"]);
    let values: Vec<&str> = bad.iter().map(|b| b[2].as_str()).collect();
    assert_eq!(values, ["abc", "NaN", "spaceship", "", ""]);
    assert_eq!(
        bad[0][3],
        "column `duration_in_month`: value `abc` is not a number"
    );
    assert!(bad[1][3].contains("is not finite"), "{:?}", bad[1]);
    assert!(
        bad[2][3].contains("is not a listed category"),
        "{:?}",
        bad[2]
    );
    assert!(bad[3][3].contains("empty cell"), "{:?}", bad[3]);
    assert_eq!(
        bad[4][3],
        format!(
            "record has 5 cells, expected {} (one per header column)",
            header.len()
        )
    );

    // To stdout with an explicit error file: the same scores.
    let elsewhere = d.join("skipped.csv");
    let o = score(&[
        "--on-error",
        "skip",
        "--errors",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1 + 3);
    assert_eq!(
        std::fs::read(&elsewhere).unwrap(),
        std::fs::read(&errors).unwrap()
    );

    // Refusals that name what to do.
    let o = score(&["--on-error", "skip"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("give --errors FILE"), "{}", stderr(&o));
    let o = score(&["--id-column", "customer"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "applicants.csv:1: --id-column `customer` is not in the header (it has `applicant`, "
        ),
        "{}",
        stderr(&o)
    );
    // An id column named like one of the output's own would make two
    // columns of one name (in Parquet, one of them unreadable by name).
    let o = score(&["--id-column", "row"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--id-column `row`: the output has its own `row` column"),
        "{}",
        stderr(&o)
    );

    // Nothing scorable: a failure, with every row in the error file.
    let all_bad = d.join("all-bad.csv");
    let rows: Vec<Vec<String>> = apps[1..2].to_vec();
    write_csv(&all_bad, &header, &rows);
    let o = Command::new(BIN)
        .args(["score", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&all_bad)
        .args(["--on-error", "skip", "--out"])
        .arg(d.join("none.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no row could be scored: all 1 rows have errors"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("none.csv").exists());
    assert!(d.join("none.errors.csv").exists());
}

#[test]
fn secagg_graph_refuses_a_graph_that_misses_the_levels_and_bad_parameters() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("secagg-graph")
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run(&["--members", "64"]);
    assert!(ok && text.contains("complete graph"), "{text}");
    let (ok, text) = run(&["--members", "1000"]);
    assert!(ok && text.contains("k = 232 neighbours"), "{text}");
    // Three shares, threshold two: exits 1 and says why.
    let (ok, text) = run(&["--members", "64", "--neighbours", "2", "--threshold", "2"]);
    assert!(!ok && text.contains("does not meet the levels"), "{text}");
    assert!(text.contains("small-sum failure not bounded"), "{text}");
    for (args, says) in [
        (&["--members", "2"][..], "at least 3 members"),
        (&["--members", "10", "--dropout", "1.5"][..], "dropout rate"),
        (
            &["--members", "10", "--colluders", "10"][..],
            "fewer than n = 10",
        ),
        (
            &["--members", "64", "--neighbours", "3", "--threshold", "2"][..],
            "must be even",
        ),
    ] {
        let (ok, text) = run(args);
        assert!(!ok && text.contains(says), "{args:?}: {text}");
    }
}
