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
//!
//! Layout: this module holds the options, [`run`] and the in-process fits;
//! `report` prints the tables, `sklearn` runs the scikit-learn reference fit
//! and `memory` the separate-process `--memory` measurement.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
use ndarray::{Array2, ArrayView1};

use crate::credit::{self, Party};
use crate::say;

mod files;
mod memory;
mod private;
mod procs;
pub mod read;
mod report;
pub mod secagg;
mod sklearn;

use memory::{memory_run, write_party_csvs};
use report::{RoundTimes, print_fits, print_targets};
use sklearn::sklearn_fit;

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
    /// Train privately: ε of the whole job (features bounded by [-6, 6], public
    /// for the generator's standard normals); without it the job is exact.
    #[arg(long)]
    epsilon: Option<f64>,
    /// δ of the private job (and of --eval-epsilon).
    #[arg(long, default_value_t = 1e-6)]
    delta: f64,
    /// Held-out rows (same model, another seed), given to the first party and
    /// scored exactly with the federated and the central model.
    #[arg(long, default_value_t = 0)]
    test_rows: usize,
    /// Also a private evaluation round alone at this ε (on the held-out rows,
    /// scored with the federated model), against the exact AUC and KS.
    #[arg(long, requires = "test_rows")]
    eval_epsilon: Option<f64>,
    /// Independent draws of the --eval-epsilon evaluation noise.
    #[arg(long, default_value_t = 1)]
    eval_repeats: usize,
    /// Instead of generating rows: one party per file in this folder (all
    /// its `--format` files, in name order, e.g. from `bench-read
    /// --write-synthetic`), read as a participant daemon reads its file, and
    /// timed end to end against pandas + scikit-learn pooling the same files.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "rows", "features", "parties", "seed", "memory", "epsilon", "test_rows",
    ])]
    from: Option<PathBuf>,
    /// With --from: the files to read.
    #[arg(long, value_enum, default_value_t = files::Format::Csv, requires = "from")]
    format: files::Format,
    /// With --from: the label column (1 or 0); every other column is a numeric feature.
    #[arg(long, default_value = "default", requires = "from")]
    label: String,
}

/// Runs the benchmark and prints its tables.
pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(dir) = &args.from {
        return files::run(&args, dir);
    }
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
    let mut spec = exact_spec(
        "default",
        (1..=d).map(|j| format!("x{j}")).collect::<Vec<_>>(),
    );
    if let Some(eps) = args.epsilon {
        let p = private::spec(&spec.schema, eps, args.delta, Default::default());
        spec.privacy = Some(fedcredit_model::privacy::PrivacySetting::Private(Box::new(
            p,
        )));
    }
    let test = if args.test_rows > 0 {
        progress(&format!("generating {} held-out rows", args.test_rows));
        Some(generate(
            args.test_rows,
            d,
            &known_beta(d),
            args.seed.wrapping_add(1_000_003),
        )?)
    } else {
        None
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
        .enumerate()
        .map(|(i, (id, (px, py)))| Party {
            id: id.clone(),
            data: CreditData::new(
                Dataset {
                    x: px.to_owned(),
                    y: py.to_owned(),
                    path: PathBuf::from(format!("<{id}: synthetic rows>")),
                },
                test.as_ref().filter(|_| i == 0).map(|(tx, ty)| Dataset {
                    x: tx.clone(),
                    y: ty.clone(),
                    path: PathBuf::from("<held-out synthetic rows>"),
                }),
            ),
        })
        .collect();
    drop(parts);

    let fed = federated(&spec, || Ok(parties), &scratch.0)?;
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
    if let Some((tx, ty)) = &test {
        held_out(&args, &spec.schema, &fed, &central, tx, ty.view())?;
    }
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

/// The bench's exact Newton job: label `label` (1 or 0) and numeric `features`.
fn exact_spec(label: &str, features: impl IntoIterator<Item = String>) -> ModelJobSpec {
    ModelJobSpec {
        schema: Schema {
            label: LabelSpec::binary(label, "1", "0"),
            features: features
                .into_iter()
                .map(|name| Feature::Numeric { name })
                .collect(),
        },
        l2: L2,
        tol: TOL,
        max_rounds: MAX_ROUNDS,
        optimizer: OptimizerKind::Newton,
        fedavg: Default::default(),
        bins: DEFAULT_BINS,
        privacy: Some(fedcredit_model::privacy::PrivacySetting::None),
        scorecard: None,
    }
}

/// The federated and the central model scored exactly on the held-out rows,
/// the job's pooled (private or exact) metrics, and `--eval-epsilon`.
fn held_out(
    args: &BenchArgs,
    schema: &Schema,
    fed: &Federated,
    central: &Central,
    tx: &Array2<f64>,
    ty: ArrayView1<'_, f64>,
) -> Result<()> {
    let f_scores = private::scores(
        tx,
        &fed.model.standardization,
        &private::beta_of(&fed.model),
    )?;
    let f = private::exact(&f_scores, ty)?;
    let c = private::exact(
        &private::scores(tx, &central.standardizer, &central.fit.beta)?,
        ty,
    )?;
    let o = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.5}"));
    say(&format!(
        "held-out ({} rows), {}:",
        ty.len(),
        credit::describe_privacy(&fed.model)
    ));
    say(&format!(
        "  central fit, exact:        AUC {}  KS {}",
        o(c.auc),
        o(c.ks)
    ));
    say(&format!(
        "  federated model, exact:    AUC {}  KS {}  (AUC − central {:+.5})",
        o(f.auc),
        o(f.ks),
        f.auc.zip(c.auc).map_or(f64::NAN, |(a, b)| a - b)
    ));
    if let Some(m) = fed.model.metrics {
        say(&format!(
            "  federated model, pooled:   AUC {}  KS {}  (job's evaluation round)",
            o(m.auc),
            o(m.ks)
        ));
    }
    if let Some(eps) = args.eval_epsilon {
        let (mut da, mut dk) = (Vec::new(), Vec::new());
        for _ in 0..args.eval_repeats.max(1) {
            let m = private::private_evaluation(
                schema,
                &f_scores,
                ty,
                eps,
                args.delta,
                private::cohort(args.parties),
            )?;
            da.push(m.auc.zip(f.auc).map_or(f64::NAN, |(a, b)| a - b));
            dk.push(m.ks.zip(f.ks).map_or(f64::NAN, |(a, b)| a - b));
        }
        let rms = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
        let max = |v: &[f64]| v.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
        say(&format!(
            "  private evaluation alone at ε {eps} (δ {:e}), {} draws: pooled − exact AUC \
             rms {:.5} max {:.5}; KS rms {:.5} max {:.5}",
            args.delta,
            da.len(),
            rms(&da),
            max(&da),
            rms(&dk),
            max(&dk)
        ));
    }
    say("");
    Ok(())
}

/// The federated fit, timed.
struct Federated {
    parties: usize,
    model: FittedModel,
    /// Intercept first, standardized units.
    beta: Vec<f64>,
    start: Instant,
    /// When every party had its rows (right after `start` for rows in memory).
    loaded: Instant,
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
        RoundTimes::new(&self.marks, self.loaded, self.end)
    }
}

/// `load`, then [`credit::run`] end to end (statistics, Newton and
/// evaluation rounds), timed from before `load`.
fn federated(
    spec: &ModelJobSpec,
    load: impl FnOnce() -> Result<Vec<Party>>,
    dir: &Path,
) -> Result<Federated> {
    progress("federated fit (in process, gRPC on loopback)");
    let marks = Arc::new(Mutex::new(Vec::<Mark>::new()));
    let sink = Arc::clone(&marks);
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
    let parties = load()?;
    let n = parties.len();
    let loaded = Instant::now();
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
        loaded,
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
            Progress::Binned { rows } => ("binning", format!("{rows} rows")),
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
    // After the command name: state is field 3, utime 14, stime 15.
    stat_seconds(11)
}

/// User + system CPU seconds of this process's children that have exited
/// and been waited for (cutime and cstime of `/proc/self/stat`).
fn children_cpu_seconds() -> Option<f64> {
    stat_seconds(13)
}

/// Fields `at` and `at + 1` of `/proc/self/stat` after the command name, in seconds.
fn stat_seconds(at: usize) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(at)?.parse().ok()?;
    let system: f64 = fields.get(at + 1)?.parse().ok()?;
    Some((user + system) / 100.0)
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
