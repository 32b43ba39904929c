//! `fedcredit bench-credit --from DIR`: the credit bench end to end from
//! files, one file per party.
//!
//! Timed from start to fitted model on both sides:
//!
//! - fedcredit: every party opens its own file as a participant daemon does
//!   ([`Rows::open`] with the job's schema, the parties in parallel as
//!   separate daemons would be), then the federated fit of [`federated`];
//! - the central pipeline (`bench/pandas_pipeline.py`, embedded): pandas
//!   reads every file (`read_csv` C engine, `read_parquet` with pyarrow),
//!   concatenates them, standardizes and fits scikit-learn's
//!   `LogisticRegression(C = 1/l2)` with one BLAS thread.
//!
//! Before either, the files are read once untimed for the agreement
//! reference (fedcredit's central Newton fit on the pooled rows), which
//! also leaves both timed readers the same warm page cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fedcredit_model::job::ModelJobSpec;
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::parquet_file::is_parquet;
use fedcredit_participant::data::{self, MemoryBudget, Rows};
use ndarray::{Array1, Array2, Axis};

use super::report::{Table, converged, met, opt_secs};
use super::sklearn::{ONE_BLAS_THREAD, ensure_python};
use super::{
    BenchArgs, Central, Federated, L2, SAME_OPTIMUM, Scratch, TARGET_ROUNDS, TOL, central,
    children_cpu_seconds, exact_spec, federated, max_abs_diff, progress,
};
use crate::credit::Party;
use crate::say;

/// The central pipeline, run with the interpreter of `--python`.
const PIPELINE_SCRIPT: &str = include_str!("../../bench/pandas_pipeline.py");

/// The end-to-end target: fedcredit from files at most this many times the
/// central pipeline's wall time.
const TARGET_END_TO_END: f64 = 1.0;

/// Which files of the `--from` folder are the parties'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `*.csv`
    Csv,
    /// `*.parquet` or `*.pq`
    Parquet,
}

impl Format {
    fn matches(self, path: &Path) -> bool {
        match self {
            Format::Parquet => is_parquet(path),
            Format::Csv => path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("csv")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Parquet => "Parquet",
        }
    }
}

/// The parties' files: every `format` file directly in `dir`, in name order.
fn party_files(dir: &Path, format: Format) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("bench-credit --from: reading the folder {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.is_file() && format.matches(&path) {
            files.push(path);
        }
    }
    files.sort();
    if files.len() < 3 {
        bail!(
            "bench-credit --from {}: {} {} file(s) there; it needs one per party, at least 3 \
             (other formats: --format)",
            dir.display(),
            files.len(),
            format.name()
        );
    }
    Ok(files)
}

/// Runs `bench-credit --from dir` and prints its tables.
pub(super) fn run(args: &BenchArgs, dir: &Path) -> Result<()> {
    let files = party_files(dir, args.format)?;
    let header = crate::local::header_of(&files[0], &args.label)?;
    let spec = exact_spec(&args.label, header.into_iter().filter(|h| *h != args.label));
    let d = spec.schema.features.len();
    if d == 0 {
        bail!(
            "{}: no feature columns beside the label `{}`",
            files[0].display(),
            args.label
        );
    }
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let scratch = Scratch::new()?;

    progress("reading the files once (untimed) for the central reference fit");
    let (mut x, y) = pooled(&files, &spec)?;
    let n = x.nrows();
    let central = central(&mut x, y.view())?;
    drop((x, y));

    let fed = federated(&spec, || open_parties(&files, &spec), &scratch.0)?;
    progress("central pipeline: pandas + scikit-learn");
    let pipeline = pipeline(&args.python, &scratch.0, &args.label, &files);

    say(&format!(
        "fedcredit bench-credit --from {}: {} {} files ({:.0} MB), {n} rows x {d} features, \
         l2 {L2}, tol {TOL:e}\n",
        dir.display(),
        files.len(),
        args.format.name(),
        bytes as f64 / 1e6
    ));
    print_report(&fed, &central, &pipeline);
    Ok(())
}

/// Each party's rows, opened as `fedcredit participant` opens its file,
/// one thread per party (each party is its own daemon).
fn open_parties(files: &[PathBuf], spec: &ModelJobSpec) -> Result<Vec<Party>> {
    progress("every party reads its file");
    let opened = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|path| {
                scope.spawn(move || Rows::open(path, &spec.schema, MemoryBudget::default()))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Vec<_>>()
    });
    files
        .iter()
        .zip(opened)
        .map(|(path, rows)| {
            let rows = rows.with_context(|| format!("party file {}", path.display()))?;
            Ok(Party {
                id: party_id(path),
                data: CreditData::from_rows(rows, None),
            })
        })
        .collect()
}

/// A party's id: its file name without the extension.
fn party_id(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into(),
    )
}

/// All files' rows in one matrix, in file order (the pooled data).
fn pooled(files: &[PathBuf], spec: &ModelJobSpec) -> Result<(Array2<f64>, Array1<f64>)> {
    let loaded = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|path| scope.spawn(move || data::load(path, &spec.schema)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Vec<_>>()
    });
    let loaded = files
        .iter()
        .zip(loaded)
        .map(|(path, d)| d.with_context(|| format!("party file {}", path.display())))
        .collect::<Result<Vec<_>>>()?;
    let x = ndarray::concatenate(
        Axis(0),
        &loaded.iter().map(|d| d.x.view()).collect::<Vec<_>>(),
    )?;
    let y = ndarray::concatenate(
        Axis(0),
        &loaded.iter().map(|d| d.y.view()).collect::<Vec<_>>(),
    )?;
    Ok((x, y))
}

/// The central pipeline's run, as `pandas_pipeline.py` reports it.
struct Pipeline {
    versions: String,
    solver: String,
    read: f64,
    pool: f64,
    standardize: f64,
    fit: f64,
    /// First read to fitted model.
    seconds: f64,
    /// CPU seconds of all its threads over `seconds`.
    cpu: Option<f64>,
    /// The whole Python process, with interpreter start and imports.
    process_wall: f64,
    process_cpu: Option<f64>,
    n_iter: u64,
    /// Intercept first, standardized units.
    beta: Vec<f64>,
}

/// Runs `pandas_pipeline.py` on `files` with one BLAS thread, installing
/// pandas, pyarrow and scikit-learn once with pip if they are missing.
fn pipeline(python: &str, dir: &Path, label: &str, files: &[PathBuf]) -> Result<Pipeline> {
    ensure_python(
        python,
        "pandas, pyarrow, sklearn, numpy",
        &["pandas", "pyarrow", "scikit-learn", "numpy"],
    )?;
    let script = dir.join("pandas_pipeline.py");
    std::fs::write(&script, PIPELINE_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let cpu0 = children_cpu_seconds();
    let start = Instant::now();
    let out = Command::new(python)
        .arg(&script)
        .arg(L2.to_string())
        .arg(TOL.to_string())
        .arg(label)
        .args(files)
        .envs(ONE_BLAS_THREAD)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {python}"))?;
    let process_wall = start.elapsed().as_secs_f64();
    let process_cpu = children_cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    if !out.status.success() {
        bail!("pandas_pipeline.py failed ({})", out.status);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing pandas_pipeline.py's output")?;
    let num = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("pandas_pipeline.py: no `{k}`"))
    };
    let mut beta = vec![num("intercept")?];
    for c in v["coef"]
        .as_array()
        .context("pandas_pipeline.py: no `coef`")?
    {
        beta.push(c.as_f64().context("pandas_pipeline.py: bad coefficient")?);
    }
    let version = |k: &str| v[k].as_str().map(|s| format!(" {s}"));
    let versions = format!(
        "pandas{}{} + scikit-learn{}",
        version("pandas").unwrap_or_default(),
        version("pyarrow").map_or_else(String::new, |s| format!(" (pyarrow{s})")),
        version("sklearn").unwrap_or_default(),
    );
    Ok(Pipeline {
        versions,
        solver: v["solver"].as_str().unwrap_or("?").to_owned(),
        read: num("read_seconds")?,
        pool: num("pool_seconds")?,
        standardize: num("standardize_seconds")?,
        fit: num("fit_seconds")?,
        seconds: num("seconds")?,
        cpu: v["cpu_seconds"].as_f64(),
        process_wall,
        process_cpu,
        n_iter: v["n_iter"].as_u64().unwrap_or(0),
        beta,
    })
}

/// The two pipelines side by side, the federated rounds and the targets.
fn print_report(fed: &Federated, central: &Central, pipeline: &Result<Pipeline>) {
    let mut fits = Table::new(&[
        "start to fitted model",
        "wall (s)",
        "CPU (s)",
        "reading (s)",
        "after reading (s)",
        "rounds",
        "‖Δβ‖∞ vs central",
    ]);
    let read = fed.loaded.duration_since(fed.start).as_secs_f64();
    fits.row(vec![
        format!(
            "fedcredit: {} parties read their files, federated fit over gRPC",
            fed.parties
        ),
        format!("{:.3}", fed.wall()),
        opt_secs(fed.cpu),
        format!("{read:.3}"),
        format!("{:.3}", fed.wall() - read),
        format!(
            "{} Newton{}, {} secure-agg",
            fed.model.rounds,
            converged(fed.model.converged),
            fed.marks.len()
        ),
        format!("{:.2e}", max_abs_diff(&fed.beta, &central.fit.beta)),
    ]);
    match pipeline {
        Ok(p) => fits.row(vec![
            format!(
                "{}: read, concat, standardize, fit ({}, 1 BLAS thread)",
                p.versions, p.solver
            ),
            format!("{:.3}", p.seconds),
            opt_secs(p.cpu),
            format!("{:.3}", p.read),
            format!("{:.3}", p.seconds - p.read),
            format!("{} iterations", p.n_iter),
            format!("{:.2e}", max_abs_diff(&p.beta, &central.fit.beta)),
        ]),
        Err(e) => fits.row(vec![
            "pandas + scikit-learn".into(),
            format!("unavailable: {e:#}"),
        ]),
    }
    fits.row(vec![
        "(reference) fedcredit central Newton on the pooled rows, fit only".into(),
        format!("{:.3}", central.wall),
        opt_secs(central.cpu),
        "-".into(),
        format!("{:.3}", central.wall),
        format!(
            "{} Newton{}",
            central.fit.iterations,
            converged(central.fit.converged)
        ),
        "0".into(),
    ]);
    fits.print();
    if let Ok(p) = pipeline {
        say(&format!(
            "\npipeline breakdown: read {:.3} s, concat {:.3} s, standardize {:.3} s, fit {:.3} s; \
             whole Python process (with start and imports) {:.3} s wall, {} CPU-s",
            p.read,
            p.pool,
            p.standardize,
            p.fit,
            p.process_wall,
            opt_secs(p.process_cpu)
        ));
    }
    say("");
    fed.rounds().print(central.fit.iterations, central.t_fit);
    say("");

    let mut targets = Table::new(&["target", "measured", "goal", "met"]);
    let diff = max_abs_diff(&fed.beta, &central.fit.beta);
    let rounds = fed.model.rounds;
    targets.row(vec![
        "pooled optimum in few Newton rounds".into(),
        format!("{rounds} rounds, ‖Δβ‖∞ {diff:.1e}"),
        format!("<= {TARGET_ROUNDS} rounds, ‖Δβ‖∞ <= {SAME_OPTIMUM:.0e}"),
        met(fed.model.converged && rounds <= TARGET_ROUNDS && diff <= SAME_OPTIMUM),
    ]);
    if let Ok(p) = pipeline {
        let fw = fed.wall();
        targets.row(vec![
            "fedcredit from files vs pandas + scikit-learn, wall".into(),
            format!("{:.2}x ({fw:.2} s / {:.2} s)", fw / p.seconds, p.seconds),
            format!("<= {TARGET_END_TO_END}x"),
            met(fw / p.seconds <= TARGET_END_TO_END),
        ]);
        if let Some((f, c)) = fed.cpu.zip(p.cpu) {
            targets.row(vec![
                "fedcredit from files vs pandas + scikit-learn, CPU".into(),
                format!("{:.2}x ({f:.2} s / {c:.2} s)", f / c),
                "(reference)".into(),
                "-".into(),
            ]);
        }
        targets.row(vec![
            "federated model vs scikit-learn's".into(),
            format!("‖Δβ‖∞ {:.1e}", max_abs_diff(&fed.beta, &p.beta)),
            "(reference: scikit-learn's tol)".into(),
            "-".into(),
        ]);
    }
    targets.print();
}
