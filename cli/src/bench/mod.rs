//! `fedcredit bench-credit`: how the federated credit model compares with a
//! central fit on the same rows.
//!
//! One run, so that every ratio is taken on the same (shared, noisy)
//! machine within minutes:
//!
//! 1. seeded synthetic rows (`model::synthetic`), split into contiguous parties;
//! 2. the federated fit: [`credit::run`], a coordinator and one participant
//!    per party in this process over loopback gRPC with secure aggregation;
//! 3. the central fit on the pooled rows: two-pass mean/std, standardizing,
//!    [`fit_newton_central`];
//! 4. scikit-learn's `LogisticRegression(C = 1/l2)` on the same standardized
//!    rows (one BLAS thread, like the central fit), when Python has it
//!    (`bench/sklearn_fit.py`, embedded);
//! 5. with `--memory`, the consortium again as separate processes of this
//!    binary, polling each participant's `VmHWM` in `/proc`.
//!
//! Timings are reported, never asserted. Progress goes to stderr, the
//! tables to stdout.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fedcredit_coordinator::ProgressLine;
use fedcredit_model::job::{FittedModel, ModelJobSpec, OptimizerKind, Progress};
use fedcredit_model::logistic::{CentralFit, fit_newton_central};
use fedcredit_model::metrics::DEFAULT_BINS;
use fedcredit_model::stats::{local_centered_squares, local_sums, mean_from_sums};
use fedcredit_model::synthetic::{generate, known_beta, split_rows};
use fedcredit_model::{Feature, LabelSpec, Schema, Standardizer};
use fedcredit_participant::credit::CreditData;
use fedcredit_participant::data::Dataset;
use ndarray::{Array2, ArrayView1, ArrayView2};

use crate::credit::{self, Party};
use crate::say;

/// L2 strength of every fit (scikit-learn's C = 1/L2).
const L2: f64 = 1.0;
/// Newton stops when the step's max-norm is below this.
const TOL: f64 = 1e-8;
/// Upper bound on Newton rounds (the job's default).
const MAX_ROUNDS: usize = 25;
/// The targets the run is measured against.
const TARGET_ROUNDS: usize = 10;
const TARGET_TIME_RATIO: f64 = 1.5;
const TARGET_MEMORY_RATIO: f64 = 2.0;
/// "Reached the pooled optimum": federated and central β agree this closely.
const SAME_OPTIMUM: f64 = 1e-9;
const JOB_ID: &str = "bench-credit";
const SKLEARN_SCRIPT: &str = include_str!("../bench/sklearn_fit.py");

/// Options of `fedcredit bench-credit`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Total training rows (Gaussian features, labels from a known logistic model).
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Numeric features per row.
    #[arg(long, default_value_t = 50)]
    features: usize,
    /// Parties; the rows are split into this many contiguous, near-equal parts (at least 3).
    #[arg(long, default_value_t = 10)]
    parties: usize,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Python interpreter for the scikit-learn reference fit (skipped if it lacks scikit-learn).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Also run the consortium as separate processes and report each participant's peak memory.
    #[arg(long)]
    memory: bool,
}

/// Runs the benchmark and prints its tables.
pub fn run(args: BenchArgs) -> Result<()> {
    let (n, d, k) = (args.rows, args.features, args.parties);
    if k < 3 || d == 0 || n < k {
        bail!("bench-credit needs --parties >= 3, --features >= 1 and --rows >= --parties");
    }
    let scratch = Scratch::new()?;
    progress(&format!(
        "generating {n} rows x {d} features (seed {})",
        args.seed
    ));
    let (mut x, y) = generate(n, d, &known_beta(d), args.seed)?;
    let spec = ModelJobSpec {
        schema: Schema {
            label: LabelSpec::new("default", "1"),
            features: (1..=d)
                .map(|j| Feature::Numeric {
                    name: format!("x{j}"),
                })
                .collect(),
        },
        l2: L2,
        tol: TOL,
        max_rounds: MAX_ROUNDS,
        optimizer: OptimizerKind::Newton,
        fedavg: Default::default(),
        bins: DEFAULT_BINS,
    };
    let parts = split_rows(x.view(), y.view(), k)?;
    let rows: Vec<usize> = parts.iter().map(|(px, _)| px.nrows()).collect();
    let ids: Vec<String> = (1..=k).map(|i| format!("party-{i:02}")).collect();
    let csvs = if args.memory {
        progress("writing each party's rows to CSV (for --memory)");
        Some(write_party_csvs(&scratch.0, &ids, &parts)?)
    } else {
        None
    };
    let parties: Vec<Party> = ids
        .iter()
        .zip(&parts)
        .map(|(id, (px, py))| Party {
            id: id.clone(),
            data: CreditData::new(
                Dataset {
                    x: px.to_owned(),
                    y: py.to_owned(),
                    path: PathBuf::from(format!("<{id}: synthetic rows>")),
                },
                None,
            ),
        })
        .collect();
    drop(parts);

    let fed = federated(&spec, parties, &scratch.0)?;
    let central = central(&mut x, y.view())?;
    let sklearn = sklearn_fit(&args.python, &scratch.0, x.view(), y.view());
    drop(x);
    let memory = match &csvs {
        Some(csvs) => Some(memory_run(
            &scratch.0,
            &spec,
            &ids,
            csvs,
            &rows,
            &central.fit.beta,
        )?),
        None => None,
    };

    say(&format!(
        "fedcredit bench-credit: {n} rows x {d} features, {k} parties, seed {}, l2 {L2}, tol {TOL:e}\n",
        args.seed
    ));
    print_fits(&fed, &central, &sklearn);
    fed.rounds().print(central.fit.iterations, central.t_fit);
    say("");
    print_targets(&fed, &central, &sklearn, memory.as_ref(), d);
    if let Some(m) = &memory {
        say("");
        m.print(d);
    }
    Ok(())
}

/// The federated fit, timed.
struct Federated {
    parties: usize,
    model: FittedModel,
    /// Intercept first, standardized units.
    beta: Vec<f64>,
    start: Instant,
    end: Instant,
    cpu: Option<f64>,
    /// One per secure-aggregation round.
    marks: Vec<Mark>,
}

impl Federated {
    fn wall(&self) -> f64 {
        self.end.duration_since(self.start).as_secs_f64()
    }

    fn rounds(&self) -> RoundTimes<'_> {
        RoundTimes::new(&self.marks, self.start, self.end)
    }
}

/// [`credit::run`] end to end: statistics, Newton and evaluation rounds.
fn federated(spec: &ModelJobSpec, parties: Vec<Party>, dir: &Path) -> Result<Federated> {
    progress("federated fit (in process, gRPC on loopback)");
    let marks = Arc::new(Mutex::new(Vec::<Mark>::new()));
    let sink = Arc::clone(&marks);
    let n = parties.len();
    let on_progress = move |l: &ProgressLine| {
        if let Ok(mut m) = sink.lock() {
            m.push(Mark::new(l));
        }
    };
    // The coordinator signs and writes its round log, as a real one would.
    let log_path = dir.join("rounds.log");
    let rt = crate::runtime()?;
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let outcome = rt.block_on(credit::run(
        JOB_ID,
        spec.clone(),
        parties,
        &log_path,
        on_progress,
    ))?;
    let end = Instant::now();
    let cpu = cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    drop(rt);
    let marks = marks.lock().map(|m| m.clone()).unwrap_or_default();
    let model = outcome.model;
    let beta = std::iter::once(model.standardized.intercept)
        .chain(model.standardized.coefficients.iter().copied())
        .collect();
    Ok(Federated {
        parties: n,
        model,
        beta,
        start,
        end,
        cpu,
        marks,
    })
}

/// The central fit, timed in its three parts.
struct Central {
    fit: CentralFit,
    standardizer: Standardizer,
    t_stats: f64,
    t_standardize: f64,
    t_fit: f64,
    wall: f64,
    cpu: Option<f64>,
}

/// Two-pass mean/std, standardizing `x` in place, Newton from β = 0.
fn central(x: &mut Array2<f64>, y: ArrayView1<'_, f64>) -> Result<Central> {
    progress("central fit (pooled rows, this thread)");
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let sums = local_sums(x.view());
    let mean = mean_from_sums(sums[0], &sums[1..])?;
    let squares = local_centered_squares(x.view(), &mean)?;
    let standardizer = Standardizer::from_two_pass(sums[0], &sums[1..], &squares)?;
    let t_stats = t0.elapsed().as_secs_f64();
    standardizer.apply(x)?;
    let t_standardize = t0.elapsed().as_secs_f64() - t_stats;
    let fit = fit_newton_central(x.view(), y, L2, TOL, MAX_ROUNDS)?;
    let wall = t0.elapsed().as_secs_f64();
    Ok(Central {
        fit,
        standardizer,
        t_stats,
        t_standardize,
        t_fit: wall - t_stats - t_standardize,
        wall,
        cpu: cpu_seconds().zip(cpu0).map(|(a, b)| a - b),
    })
}

fn print_fits(fed: &Federated, central: &Central, sklearn: &Result<SklearnFit>) {
    let mut fits = Table::new(&[
        "fit",
        "wall (s)",
        "CPU (s)",
        "Newton rounds",
        "secure-agg rounds",
        "‖Δβ‖∞ vs central",
    ]);
    let (model, fit) = (&fed.model, &central.fit);
    fits.row(vec![
        format!("federated, {} parties over gRPC", fed.parties),
        format!("{:.3}", fed.wall()),
        opt_secs(fed.cpu),
        format!("{}{}", model.rounds, converged(model.converged)),
        fed.marks.len().to_string(),
        format!("{:.2e}", max_abs_diff(&fed.beta, &fit.beta)),
    ]);
    fits.row(vec![
        "central, pooled rows".into(),
        format!("{:.3}", central.wall),
        opt_secs(central.cpu),
        format!("{}{}", fit.iterations, converged(fit.converged)),
        "-".into(),
        "0".into(),
    ]);
    match sklearn {
        Ok(s) => fits.row(vec![
            format!(
                "scikit-learn {} ({}, 1 BLAS thread, .fit only)",
                s.version, s.solver
            ),
            format!("{:.3}", s.seconds),
            opt_secs(s.cpu),
            format!("{} iterations", s.n_iter),
            "-".into(),
            format!("{:.2e}", max_abs_diff(&s.beta, &fit.beta)),
        ]),
        Err(e) => fits.row(vec!["scikit-learn".into(), format!("unavailable: {e:#}")]),
    }
    fits.print();
    let std_diff = max_abs_diff(
        fed.model.standardization.mean(),
        central.standardizer.mean(),
    )
    .max(max_abs_diff(
        fed.model.standardization.std(),
        central.standardizer.std(),
    ));
    say(&format!(
        "\nfederated β vs scikit-learn: {}; federated vs central standardization (mean, std): max |Δ| {std_diff:.2e}",
        sklearn.as_ref().map_or_else(
            |_| "n/a".into(),
            |s| format!("‖Δβ‖∞ {:.2e}", max_abs_diff(&s.beta, &fed.beta))
        )
    ));
    say(&format!(
        "central breakdown: statistics {:.3} s, standardizing {:.3} s, Newton {:.3} s ({:.3} s per iteration)\n",
        central.t_stats,
        central.t_standardize,
        central.t_fit,
        central.t_fit / fit.iterations.max(1) as f64
    ));
}

fn print_targets(
    fed: &Federated,
    central: &Central,
    sklearn: &Result<SklearnFit>,
    memory: Option<&MemoryReport>,
    d: usize,
) {
    let mut targets = Table::new(&["target", "measured", "goal", "met"]);
    let diff = max_abs_diff(&fed.beta, &central.fit.beta);
    let rounds = fed.model.rounds;
    targets.row(vec![
        "pooled optimum in few Newton rounds".into(),
        format!("{rounds} rounds, ‖Δβ‖∞ {diff:.1e}"),
        format!("<= {TARGET_ROUNDS} rounds, ‖Δβ‖∞ <= {SAME_OPTIMUM:.0e}"),
        met(fed.model.converged && rounds <= TARGET_ROUNDS && diff <= SAME_OPTIMUM),
    ]);
    let (fw, cw) = (fed.wall(), central.wall);
    targets.row(vec![
        "federated wall time vs central".into(),
        format!("{:.2}x ({fw:.2} s / {cw:.2} s)", fw / cw),
        format!("<= {TARGET_TIME_RATIO}x"),
        met(fw / cw <= TARGET_TIME_RATIO),
    ]);
    if let Some((f, c)) = fed.cpu.zip(central.cpu) {
        targets.row(vec![
            "federated CPU time vs central".into(),
            format!("{:.2}x ({f:.2} s / {c:.2} s)", f / c),
            "(reference: the parties run on all cores)".into(),
            "-".into(),
        ]);
    }
    if let Ok(s) = sklearn {
        targets.row(vec![
            "federated wall time vs scikit-learn .fit".into(),
            format!("{:.2}x ({fw:.2} s / {:.2} s)", fw / s.seconds, s.seconds),
            "(reference)".into(),
            "-".into(),
        ]);
    }
    let (measured, ok) = match memory {
        Some(m) => {
            let worst = m.parties.iter().map(|p| p.ratio(d)).fold(0.0, f64::max);
            (
                format!("worst {worst:.2}x"),
                met(worst <= TARGET_MEMORY_RATIO),
            )
        }
        None => ("not measured (add --memory)".into(), "-".into()),
    };
    targets.row(vec![
        "participant peak memory vs its rows as f64".into(),
        measured,
        format!("<= {TARGET_MEMORY_RATIO}x"),
        ok,
    ]);
    targets.print();
}

/// One finished secure-aggregation round, as the progress callback saw it.
#[derive(Debug, Clone)]
struct Mark {
    at: Instant,
    round: u64,
    kind: &'static str,
    detail: String,
}

impl Mark {
    fn new(l: &ProgressLine) -> Self {
        let (kind, detail) = match &l.progress {
            Progress::Standardized { rows } => ("statistics", format!("{rows} rows")),
            Progress::Step(r) => (
                "newton",
                format!(
                    "step {}, ‖Δβ‖∞ {:.2e}{}",
                    r.round,
                    r.step_max_norm,
                    if r.round == 1 {
                        " (parties also standardize in place)"
                    } else {
                        ""
                    }
                ),
            ),
            Progress::Evaluated(_) => ("evaluation", "no held-out rows".into()),
        };
        Self {
            at: Instant::now(),
            round: l.round,
            kind,
            detail,
        }
    }
}

/// Per-round wall times of the federated job.
struct RoundTimes<'a> {
    marks: &'a [Mark],
    /// Seconds since the previous round ended (the first: since the job started).
    secs: Vec<f64>,
    /// After the last round until `credit::run` returned.
    teardown: f64,
}

impl<'a> RoundTimes<'a> {
    fn new(marks: &'a [Mark], start: Instant, end: Instant) -> Self {
        let mut prev = start;
        let secs = marks
            .iter()
            .map(|m| {
                let s = m.at.saturating_duration_since(prev).as_secs_f64();
                prev = m.at;
                s
            })
            .collect();
        Self {
            marks,
            secs,
            teardown: end.saturating_duration_since(prev).as_secs_f64(),
        }
    }

    /// Prints the rounds, and a Newton round beside a central iteration.
    fn print(&self, iters: usize, t_fit: f64) {
        let mut t = Table::new(&["round", "kind", "wall (ms)", "detail"]);
        for (m, s) in self.marks.iter().zip(&self.secs) {
            t.row(vec![
                m.round.to_string(),
                m.kind.into(),
                format!("{:.1}", s * 1e3),
                m.detail.clone(),
            ]);
        }
        t.row(vec![
            "-".into(),
            "teardown".into(),
            format!("{:.1}", self.teardown * 1e3),
            "after the last round until run() returned".into(),
        ]);
        say("federated rounds (the first includes startup, key generation and joining):");
        t.print();
        let newton: Vec<f64> = self
            .marks
            .iter()
            .zip(&self.secs)
            .filter(|(m, _)| m.kind == "newton")
            .map(|(_, s)| *s)
            .collect();
        if !newton.is_empty() && iters > 0 {
            let fed = newton.iter().sum::<f64>() / newton.len() as f64;
            let central = t_fit / iters as f64;
            say(&format!(
                "Newton round: federated {:.1} ms on average vs central iteration {:.1} ms \
                 (difference {:+.1} ms per round)",
                fed * 1e3,
                central * 1e3,
                (fed - central) * 1e3
            ));
        }
    }
}

fn converged(c: bool) -> &'static str {
    if c { "" } else { " (not converged)" }
}

fn met(ok: bool) -> String {
    if ok { "yes".into() } else { "MISSED".into() }
}

fn opt_secs(s: Option<f64>) -> String {
    s.map_or_else(|| "n/a".into(), |s| format!("{s:.3}"))
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(u, v)| (u - v).abs())
        .fold(0.0, f64::max)
}

fn progress(line: &str) {
    eprintln!("bench-credit: {line}");
}

/// User + system CPU seconds of this process so far (`/proc/self/stat`, USER_HZ = 100).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// A plain text table with aligned columns (Markdown pipe syntax).
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn print(&self) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, r) in self.rows.iter().enumerate() {
            let mut line = String::from("|");
            for (c, w) in width.iter().enumerate() {
                let cell = r.get(c).map_or("", String::as_str);
                let pad = w - cell.chars().count();
                let _ = write!(line, " {cell}{} |", " ".repeat(pad));
            }
            say(&line);
            if i == 0 {
                let rule: String = width
                    .iter()
                    .map(|w| format!("|{}", "-".repeat(w + 2)))
                    .collect();
                say(&format!("{rule}|"));
            }
        }
    }
}

/// A temporary folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("fedcredit-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------- scikit-learn

/// scikit-learn's fit, as `sklearn_fit.py` reports it.
struct SklearnFit {
    version: String,
    solver: String,
    seconds: f64,
    /// CPU seconds of all its threads (BLAS may use several).
    cpu: Option<f64>,
    n_iter: u64,
    /// Intercept first, standardized units.
    beta: Vec<f64>,
}

fn python_has_sklearn(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import sklearn, numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the reference fit on the pooled standardized rows, installing
/// scikit-learn once with pip if it is missing.
fn sklearn_fit(
    python: &str,
    dir: &Path,
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
) -> Result<SklearnFit> {
    if !python_has_sklearn(python) {
        progress("scikit-learn not importable; trying `pip install --quiet scikit-learn numpy`");
        let _ = Command::new(python)
            .args(["-m", "pip", "install", "--quiet", "scikit-learn", "numpy"])
            .status();
        if !python_has_sklearn(python) {
            bail!("`{python}` cannot import scikit-learn and numpy");
        }
    }
    progress("scikit-learn reference fit");
    let (xp, yp, script) = (
        dir.join("x.npy"),
        dir.join("y.npy"),
        dir.join("sklearn_fit.py"),
    );
    write_npy(&xp, &[x.nrows(), x.ncols()], x.iter().copied())?;
    write_npy(&yp, &[y.len()], y.iter().copied())?;
    std::fs::write(&script, SKLEARN_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let out = Command::new(python)
        .arg(&script)
        .arg(&xp)
        .arg(&yp)
        .arg(L2.to_string())
        .arg(TOL.to_string())
        // One BLAS thread, like the central fit: on a shared 2-core machine,
        // OpenBLAS's spinning threads made the fit take anywhere from 3 to 33 s.
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {python}"))?;
    let _ = std::fs::remove_file(&xp);
    if !out.status.success() {
        bail!("sklearn_fit.py failed ({})", out.status);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing sklearn_fit.py's output")?;
    let num = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("sklearn_fit.py: no `{k}`"))
    };
    let mut beta = vec![num("intercept")?];
    for c in v["coef"].as_array().context("sklearn_fit.py: no `coef`")? {
        beta.push(c.as_f64().context("sklearn_fit.py: bad coefficient")?);
    }
    Ok(SklearnFit {
        version: v["sklearn"].as_str().unwrap_or("?").to_owned(),
        solver: v["solver"].as_str().unwrap_or("?").to_owned(),
        seconds: num("fit_seconds")?,
        cpu: v["fit_cpu_seconds"].as_f64(),
        n_iter: v["n_iter"].as_u64().unwrap_or(0),
        beta,
    })
}

/// Writes a little-endian f64 array in the NPY 1.0 format (C order).
fn write_npy(path: &Path, shape: &[usize], values: impl Iterator<Item = f64>) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.as_slice() {
        [one] => format!("({one},)"),
        many => format!("({})", many.join(", ")),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + length (2) + header + '\n', padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let len = u16::try_from(header.len()).context("NPY header too long")?;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in values {
        w.write_all(&v.to_le_bytes())?;
    }
    finish(w, path)
}

/// Flushes and syncs a written file, so that its write-back does not
/// compete with the timed fits that follow.
fn finish(w: BufWriter<std::fs::File>, path: &Path) -> Result<()> {
    let file = w
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

// ---------------------------------------------------------------- --memory

/// Each party's rows as `party-NN.csv` in `dir` (shortest round-trip
/// decimals, so the processes fit exactly the same numbers).
fn write_party_csvs(
    dir: &Path,
    ids: &[String],
    parts: &[(ArrayView2<'_, f64>, ArrayView1<'_, f64>)],
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::with_capacity(ids.len());
    for (id, (x, y)) in ids.iter().zip(parts) {
        let path = dir.join(format!("{id}.csv"));
        write_csv(&path, *x, *y)?;
        out.push(path);
    }
    Ok(out)
}

fn write_csv(path: &Path, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let header: Vec<String> = (1..=x.ncols()).map(|j| format!("x{j}")).collect();
    writeln!(w, "{},default", header.join(","))?;
    for (row, label) in x.rows().into_iter().zip(y) {
        for v in row {
            write!(w, "{v},")?;
        }
        writeln!(w, "{label}")?;
    }
    finish(w, path)
}

/// One participant process's memory.
struct PartyMemory {
    id: String,
    rows: usize,
    /// Peak resident set (`VmHWM`), bytes.
    hwm: u64,
}

impl PartyMemory {
    fn data_bytes(&self, d: usize) -> f64 {
        (self.rows * d * 8) as f64
    }

    fn ratio(&self, d: usize) -> f64 {
        self.hwm as f64 / self.data_bytes(d)
    }
}

/// The multi-process run.
struct MemoryReport {
    parties: Vec<PartyMemory>,
    /// `VmRSS`/`VmHWM` of a participant that loaded 3 rows and waits for the coordinator.
    idle: Option<(u64, u64)>,
    coordinator_hwm: u64,
    wall: f64,
    /// Process fit vs the central fit.
    beta_diff: f64,
}

impl MemoryReport {
    fn print(&self, d: usize) {
        let idle_hwm = self.idle.map_or(0, |(_, h)| h);
        let mut t = Table::new(&[
            "participant",
            "rows",
            "rows·d·8 (MiB)",
            "VmHWM (MiB)",
            "VmHWM / data",
            "(VmHWM − idle) / data",
            "<= 2x",
        ]);
        for p in &self.parties {
            t.row(vec![
                p.id.clone(),
                p.rows.to_string(),
                format!("{:.1}", p.data_bytes(d) / MIB),
                format!("{:.1}", p.hwm as f64 / MIB),
                format!("{:.2}", p.ratio(d)),
                format!(
                    "{:.2}",
                    p.hwm.saturating_sub(idle_hwm) as f64 / p.data_bytes(d)
                ),
                met(p.ratio(d) <= TARGET_MEMORY_RATIO),
            ]);
        }
        say("participant processes (--memory; peak = VmHWM polled from /proc every 10 ms):");
        t.print();
        match self.idle {
            Some((rss, hwm)) => say(&format!(
                "idle participant (3 rows loaded, waiting for the coordinator): VmRSS {:.1} MiB, VmHWM {:.1} MiB",
                rss as f64 / MIB,
                hwm as f64 / MIB
            )),
            None => say("idle participant: not measured"),
        }
        say(&format!(
            "coordinator VmHWM {:.1} MiB; multi-process job {:.2} s wall (includes CSV loading); its β vs central: ‖Δβ‖∞ {:.2e}",
            self.coordinator_hwm as f64 / MIB,
            self.wall,
            self.beta_diff
        ));
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// `VmRSS` and `VmHWM` of a running process, in bytes.
fn proc_memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Children killed and reaped on drop, unless they exited.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn spawn(exe: &Path, dir: &Path, args: &[&str], log: &str) -> Result<Child> {
    let log = std::fs::File::create(dir.join(log))?;
    Command::new(exe)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} {}", exe.display(), args.join(" ")))
}

fn keygen(exe: &Path, dir: &Path, name: &str) -> Result<String> {
    let out = Command::new(exe)
        .args(["keygen", "--out", &format!("{name}.key")])
        .current_dir(dir)
        .output()
        .context("running keygen")?;
    if !out.status.success() {
        bail!("keygen failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs the coordinator and one participant process per CSV, polling each
/// participant's peak memory until it exits.
fn memory_run(
    dir: &Path,
    spec: &ModelJobSpec,
    ids: &[String],
    csvs: &[PathBuf],
    rows: &[usize],
    central_beta: &[f64],
) -> Result<MemoryReport> {
    progress("--memory: coordinator and participants as separate processes");
    let exe = std::env::current_exe().context("locating this binary")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let coordinator_pk = keygen(&exe, dir, "coordinator")?;
    let mut toml = format!(
        "[coordinator]\nlisten = \"127.0.0.1:{port}\"\npublic_key = \"{coordinator_pk}\"\nkey_file = \"coordinator.key\"\n\n\
         [protocol]\njoin_deadline_secs = 1800\nphase_deadline_secs = 1800\nmax_attempts = 1\n\n\
         [job]\nid = \"{JOB_ID}\"\nkind = \"logistic-regression\"\nl2 = {:?}\ntol = {:?}\nmax_rounds = {}\n\n\
         [job.schema.label]\ncolumn = \"{}\"\npositive = \"{}\"\n",
        spec.l2, spec.tol, spec.max_rounds, spec.schema.label.column, spec.schema.label.positive
    );
    for f in &spec.schema.features {
        let _ = write!(
            toml,
            "\n[[job.schema.features]]\nname = \"{}\"\nkind = \"numeric\"\n",
            f.name()
        );
    }
    let participant_toml = |id: &str, data: &str| {
        format!(
            "id = \"{id}\"\nkey_file = \"{id}.key\"\ncoordinator = \"http://127.0.0.1:{port}\"\n\
             consortium = \"consortium.toml\"\ndata = \"{data}\"\nconnect_timeout_secs = 1800\n"
        )
    };
    for (id, csv) in ids.iter().zip(csvs) {
        let pk = keygen(&exe, dir, id)?;
        let _ = write!(
            toml,
            "\n[[participants]]\nid = \"{id}\"\npublic_key = \"{pk}\"\n"
        );
        let data = csv
            .file_name()
            .and_then(|f| f.to_str())
            .context("CSV file name")?;
        std::fs::write(dir.join(format!("{id}.toml")), participant_toml(id, data))?;
    }
    std::fs::write(dir.join("consortium.toml"), &toml)?;

    // Fixed overhead: a participant with 3 rows, waiting for a coordinator not yet started.
    let tiny = dir.join("idle.csv");
    let head = std::fs::read_to_string(&csvs[0])?;
    std::fs::write(
        &tiny,
        head.lines().take(4).collect::<Vec<_>>().join("\n") + "\n",
    )?;
    std::fs::write(dir.join("idle.toml"), participant_toml(&ids[0], "idle.csv"))?;
    let idle = {
        let mut c = Children(vec![spawn(
            &exe,
            dir,
            &["participant", "--config", "idle.toml"],
            "idle.log",
        )?]);
        std::thread::sleep(Duration::from_millis(1500));
        let m = c.0.first().and_then(|c| proc_memory(c.id()));
        for c in &mut c.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        m
    };

    let t0 = Instant::now();
    let mut children = Children(vec![spawn(
        &exe,
        dir,
        &["coordinator", "--config", "consortium.toml", "--out", "out"],
        "coordinator.log",
    )?]);
    for id in ids {
        let cfg = format!("{id}.toml");
        children.0.push(spawn(
            &exe,
            dir,
            &["participant", "--config", &cfg],
            &format!("{id}.log"),
        )?);
    }
    let n = children.0.len();
    let mut hwm = vec![0u64; n];
    let mut status: Vec<Option<ExitStatus>> = vec![None; n];
    let limit = Duration::from_secs(3600);
    while status.iter().any(Option::is_none) {
        for (i, c) in children.0.iter_mut().enumerate() {
            if status[i].is_some() {
                continue;
            }
            // Read before checking exit: a zombie has no memory lines.
            if let Some((_, h)) = proc_memory(c.id()) {
                hwm[i] = hwm[i].max(h);
            }
            status[i] = c.try_wait()?;
        }
        if t0.elapsed() > limit {
            bail!(
                "the multi-process job overstayed {limit:?} (logs in {})",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let wall = t0.elapsed().as_secs_f64();
    let names = std::iter::once("coordinator").chain(ids.iter().map(String::as_str));
    for (name, s) in names.zip(&status) {
        if let Some(s) = s.filter(|s| !s.success()) {
            let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            bail!(
                "{name} exited with {s}; its log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    let model: FittedModel = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/model.json"))
            .context("reading the coordinator's model.json")?,
    )?;
    let beta: Vec<f64> = std::iter::once(model.standardized.intercept)
        .chain(model.standardized.coefficients)
        .collect();
    let parties = ids
        .iter()
        .zip(rows)
        .zip(&hwm[1..])
        .map(|((id, &rows), &hwm)| PartyMemory {
            id: id.clone(),
            rows,
            hwm,
        })
        .collect();
    Ok(MemoryReport {
        parties,
        idle,
        coordinator_hwm: hwm[0],
        wall,
        beta_diff: max_abs_diff(&beta, central_beta),
    })
}
