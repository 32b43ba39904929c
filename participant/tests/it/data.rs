//! Loading a participant's CSV: every problem is named by file, line,
//! column and value before any round starts.

use std::path::{Path, PathBuf};

use fedcredit_model::{Feature, LabelSpec, Schema};
use fedcredit_participant::ParticipantError;
use fedcredit_participant::data::load_csv;
use ndarray::array;

fn schema() -> Schema {
    Schema {
        label: LabelSpec::binary("default", "yes", "no"),
        features: vec![
            Feature::Numeric { name: "age".into() },
            Feature::Categorical {
                name: "housing".into(),
                categories: vec!["free".into(), "own".into(), "rent".into()],
            },
            Feature::Numeric {
                name: "income".into(),
            },
        ],
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write csv");
    path
}

/// Loads `text` as `bank-a.csv` and returns the error message.
fn error_of(text: &str) -> (PathBuf, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "bank-a.csv", text);
    let err = load_csv(&path, &schema()).expect_err("must be rejected");
    assert!(
        matches!(err, ParticipantError::Data { .. }),
        "not a data error: {err:?}"
    );
    (path, err.to_string())
}

const HEADER: &str = "age,housing,income,default\n";

#[test]
fn loads_encoded_unstandardized_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "bank-a.csv",
        &format!("{HEADER}30,own,1200.5,yes\n45,rent,3000,no\n52,free,0,no\n"),
    );
    let d = load_csv(&path, &schema()).expect("load");
    assert_eq!(
        d.x,
        array![
            [30.0, 1.0, 0.0, 1200.5],
            [45.0, 0.0, 1.0, 3000.0],
            [52.0, 0.0, 0.0, 0.0]
        ]
    );
    assert_eq!(d.y, array![1.0, 0.0, 0.0]);
    assert_eq!(d.path, path);
}

#[test]
fn columns_in_another_order_load_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(
        dir.path(),
        "a.csv",
        &format!("{HEADER}30,own,1200.5,yes\n45,rent,3000,no\n"),
    );
    let b = write(
        dir.path(),
        "b.csv",
        "id,default,income,housing,age\n1,yes,1200.5,own,30\n2,no,3000,rent,45\n",
    );
    let (a, b) = (
        load_csv(&a, &schema()).expect("a"),
        load_csv(&b, &schema()).expect("b"),
    );
    assert_eq!(a.x, b.x);
    assert_eq!(a.y, b.y);
}

#[test]
fn non_numeric_cell_names_file_line_column_and_value() {
    let (path, msg) = error_of(&format!("{HEADER}30,own,1,yes\nabc,own,2,no\n"));
    assert_eq!(
        msg,
        format!(
            "{}:3: column `age`: value `abc` is not a number",
            path.display()
        )
    );
    assert!(msg.contains("bank-a.csv:3: column `age`: value `abc`"));
}

#[test]
fn empty_numeric_cell() {
    let (_, msg) = error_of(&format!("{HEADER}30,own,1,yes\n31,own,2,no\n32,own,,no\n"));
    assert!(
        msg.ends_with("bank-a.csv:4: column `income`: empty cell, expected a number"),
        "{msg}"
    );
}

#[test]
fn nan_and_infinity_in_any_spelling() {
    for v in [
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "-INFINITY",
        "1e400",
    ] {
        let (_, msg) = error_of(&format!("{HEADER}30,own,{v},yes\n"));
        assert!(
            msg.ends_with(&format!(
                "bank-a.csv:2: column `income`: value `{v}` is not finite, expected a finite number"
            )),
            "{v}: {msg}"
        );
    }
}

#[test]
fn category_outside_the_schema_is_named() {
    let (_, msg) = error_of(&format!("{HEADER}30,own,1,yes\n31,boat,2,no\n"));
    assert!(
        msg.ends_with(
            "bank-a.csv:3: column `housing`: value `boat` is not a listed category, \
             expected one of `free`, `own`, `rent`"
        ),
        "{msg}"
    );
}

#[test]
fn empty_label() {
    let (_, msg) = error_of(&format!("{HEADER}30,own,1,\n"));
    assert!(
        msg.contains("bank-a.csv:2: label column `default`: empty cell"),
        "{msg}"
    );
    assert!(msg.contains("`yes`"), "{msg}");
}

#[test]
fn missing_column_is_named_on_line_1() {
    let (_, msg) = error_of("age,income,default\n30,1,yes\n");
    assert!(
        msg.ends_with(
            "bank-a.csv:1: column `housing` is missing from the header \
             (the schema needs it as a categorical feature)"
        ),
        "{msg}"
    );
    let (_, msg) = error_of("age,housing,income\n30,own,1\n");
    assert!(
        msg.contains("bank-a.csv:1: column `default` is missing"),
        "{msg}"
    );
}

#[test]
fn wrong_number_of_fields() {
    let (_, msg) = error_of(&format!("{HEADER}30,own,1,yes\n31,own,2\n"));
    assert!(
        msg.ends_with("bank-a.csv:3: record has 3 fields, expected 4 (one per header column)"),
        "{msg}"
    );
    let (_, msg) = error_of(&format!("{HEADER}30,own,1,yes,extra\n"));
    assert!(
        msg.ends_with("bank-a.csv:2: record has 5 fields, expected 4 (one per header column)"),
        "{msg}"
    );
}

#[test]
fn quoted_newlines_and_blank_lines_count_as_lines() {
    let (_, msg) = error_of(&format!(
        "note,{}\"a\nb\",30,own,1,yes\n\n\"\",x,own,1,no\n",
        HEADER
    ));
    assert!(
        msg.ends_with("bank-a.csv:5: column `age`: value `x` is not a number"),
        "{msg}"
    );
}

#[test]
fn invalid_utf8_names_the_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bank-a.csv");
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"30,own,1,yes\n31,\xffown,2,no\n");
    std::fs::write(&path, bytes).expect("write");
    let msg = load_csv(&path, &schema()).expect_err("utf8").to_string();
    assert!(
        msg.contains("bank-a.csv:3: column `housing`: the cell is not valid UTF-8"),
        "{msg}"
    );
}

#[test]
fn empty_file_and_header_only_file() {
    let (_, msg) = error_of("");
    assert!(msg.ends_with("bank-a.csv:1: empty file, expected a header row naming the columns"));
    let (_, msg) = error_of(HEADER);
    assert!(
        msg.ends_with("bank-a.csv:1: the header is not followed by any data rows"),
        "{msg}"
    );
    let (_, msg) = error_of(&format!("{HEADER}\n\n"));
    assert!(msg.contains("not followed by any data rows"), "{msg}");
}

#[test]
fn unreadable_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing.csv");
    let err = load_csv(&path, &schema()).expect_err("missing");
    assert!(matches!(err, ParticipantError::ReadInput { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read: ", path.display())),
        "{err}"
    );
    // A directory opens but cannot be read.
    let err = load_csv(dir.path(), &schema()).expect_err("directory");
    assert!(err.to_string().contains("cannot read"), "{err}");
}

/// The loader holds the final matrix once (two passes over the file), never
/// a second copy: a million rows × 50 features stay within 1.5× the matrix.
/// Slow and Linux-only; run with `cargo test -p fedcredit-participant
/// --release --test it -- --ignored --exact data::million_rows_peak_memory`
/// (alone: it reads this process's peak memory).
#[test]
#[ignore = "writes a ~0.5 GB file; run by hand"]
fn million_rows_peak_memory() {
    use std::io::Write;
    const ROWS: usize = 1_000_000;
    const P: usize = 50;
    let schema = Schema {
        label: LabelSpec::binary("y", "1", "0"),
        features: (0..P)
            .map(|j| Feature::Numeric {
                name: format!("f{j}"),
            })
            .collect(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let names: Vec<String> = (0..P).map(|j| format!("f{j}")).collect();
        writeln!(w, "{},y", names.join(",")).expect("write");
        for i in 0..ROWS {
            for j in 0..P {
                write!(w, "{}.{},", (i + j) % 997, j).expect("write");
            }
            writeln!(w, "{}", i % 2).expect("write");
        }
    }
    let status = |key: &str| -> u64 {
        let text = std::fs::read_to_string("/proc/self/status").expect("status");
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("field")
    };
    let before = status("VmRSS:");
    let d = load_csv(&path, &schema).expect("load");
    let peak = status("VmHWM:");
    let matrix_kb = (ROWS * (P + 1) * 8 / 1024) as u64;
    eprintln!(
        "matrix + labels {} MB, RSS before {} MB, peak {} MB, extra {:.3}×",
        matrix_kb / 1024,
        before / 1024,
        peak / 1024,
        (peak - before) as f64 / matrix_kb as f64
    );
    assert_eq!(d.x.dim(), (ROWS, P));
    assert!(
        (peak - before) as f64 <= 1.5 * matrix_kb as f64,
        "peak {peak} kB"
    );
}

/// A file exported with `;` or tabs reads as one header column: the error
/// says what the file looks like, not just that a column is missing, even
/// when its rows have decimal commas that split them into several cells.
#[test]
fn semicolon_and_tab_separated_files_are_named_as_such() {
    let (_, msg) = error_of("age;housing;income;default\n30;own;1200,5;yes\n");
    assert!(
        msg.contains(
            "bank-a.csv:1: the header is a single column `age;housing;income;default`, which \
             looks semicolon-separated; fedcredit reads comma-separated CSV. Convert it, e.g.: "
        ) && msg.contains("delimiter=';'"),
        "{msg}"
    );
    let (_, msg) = error_of("age\thousing\tincome\tdefault\n30\town\t1200.5\tyes\n");
    assert!(
        msg.contains("bank-a.csv:1: the header is a single column")
            && msg.contains("looks tab-separated; fedcredit reads comma-separated CSV")
            && msg.contains(r"delimiter='\t'"),
        "{msg}"
    );
}
