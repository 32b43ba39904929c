//! `fedcredit`: the one binary. It parses arguments and config, sets up
//! logging, and calls the library crates; it does no protocol work itself.
#![forbid(unsafe_code)]

mod bench;
mod check;
mod credit;
mod daemon;
mod demo;
mod demo_sum;
mod graph;
mod job;
mod keys;
mod local;
mod progress;
mod provision;
mod report;
mod score;
mod scorecard;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use fedcredit_model::LabelSpec;
use fedcredit_participant::data::MemoryBudget;
use fedcredit_referee::consortium::Consortium;

/// Federated credit-risk models on secure aggregation.
#[derive(Debug, Parser)]
#[command(name = "fedcredit", version, about)]
struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object per line, the fields such as job, round, attempt, phase and
    /// participant as keys) for a log pipeline.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The `--log-format` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new Ed25519 identity key and print its public key.
    Keygen {
        /// Where to write the secret key (created with mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Write a new consortium's startup kit: keys, certificates and configs for the coordinator and each member.
    Provision(provision::ProvisionArgs),
    /// Check a consortium file or a participant config (keys, certificates, data) without starting anything.
    Check {
        /// The coordinator's consortium.toml, or a participant's config.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the coordinator of a consortium's job (the gRPC server).
    Coordinator {
        /// The consortium file.
        #[arg(long)]
        config: PathBuf,
        /// Folder for the job's results (result.json, or model.json and metrics.json);
        /// default: a folder named after the job, beside the config.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The round log (default: `coordinator.log_file` in the config, or
        /// `<job id>.rounds.log` beside it). An existing log is replayed.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Do not run: end the job in its round log for good, with this
        /// reason. A job that failed for want of members is otherwise
        /// resumed by the next coordinator start.
        #[arg(long, value_name = "REASON")]
        abandon: Option<String>,
    },
    /// Run a participant daemon (dials out to the coordinator).
    Participant {
        /// The participant's config file.
        #[arg(long)]
        config: PathBuf,
        /// Test hook for dropout tests: abort the process at this point of the first round.
        #[arg(long, value_enum, hide = true)]
        crash_at: Option<CrashAt>,
        /// Stay connected across jobs: take part in every job the coordinator's
        /// service offers that the config's `[policy]` allows, refuse the others
        /// (without it: the consortium file's job only, then exit).
        #[arg(long)]
        serve: bool,
    },
    /// Train a credit model across 3 banks and a platform on bundled data, over loopback gRPC.
    Demo {
        /// Keep the generated data, configs and results here (default: a temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Run the secure-sum demo instead (five lenders total their exposure per sector).
        #[arg(long)]
        secure_sum: bool,
        /// ε of the whole private job (statistics, training and evaluation).
        #[arg(long, default_value_t = demo::DEFAULT_EPSILON)]
        epsilon: f64,
        /// δ of the private job.
        #[arg(long, default_value_t = 1e-6)]
        delta: f64,
        /// Train without differential privacy (exact sums, a 10,000-bin
        /// evaluation that can single out applicants).
        #[arg(long, conflicts_with_all = ["epsilon", "delta"])]
        exact: bool,
    },
    /// Train a credit model on your own CSV files, each file acting as one consortium member.
    ///
    /// Say which label values are negative with exactly one of `--negative VALUE`
    /// (any other value is then an error) or `--negatives all-others`.
    #[command(group(ArgGroup::new("negative-class").required(true).args(["negative", "negatives"])))]
    Local {
        /// A CSV file with a header; repeat for each member (one participant per file).
        #[arg(long = "data", required = true)]
        data: Vec<PathBuf>,
        /// The label column.
        #[arg(long)]
        label: String,
        /// The label value of the positive (default) event, e.g. `bad`.
        #[arg(long)]
        positive: String,
        /// The label value of the negative event, e.g. `good`; any value that is
        /// neither this nor --positive is an error naming its file, line and value.
        #[arg(long)]
        negative: Option<String>,
        /// `all-others`: every non-empty label value other than --positive is negative.
        #[arg(long, value_enum)]
        negatives: Option<AllOthers>,
        /// Held-out rows for the pooled evaluation (evaluated by the first member).
        #[arg(long)]
        test: Option<PathBuf>,
        /// L2 strength (scikit-learn's C = 1/l2).
        #[arg(long, default_value_t = 1.0)]
        l2: f64,
        /// Where to write model.json and metrics.json.
        #[arg(long, default_value = "fedcredit-out")]
        out: PathBuf,
        /// Run a differentially private job with this ε for the whole job
        /// (bounds are read from the files; a consortium fixes them in its job spec).
        #[arg(long, requires = "delta")]
        epsilon: Option<f64>,
        /// δ of the private job (with --epsilon), e.g. 1e-6.
        #[arg(long, requires = "epsilon")]
        delta: Option<f64>,
        /// Memory for the rows of all files together, in MB: Parquet files
        /// whose f64 matrices do not fit (taken in order, training files
        /// first) are streamed from disk every round instead of loaded.
        #[arg(long, default_value_t = MemoryBudget::DEFAULT_MB)]
        max_memory_mb: u64,
        /// A column to treat as categorical even though its cells are (or
        /// some are) numbers, e.g. codes such as `1`, `2`, `3+`; repeatable.
        /// Without it a column that mixes numbers and text is refused.
        #[arg(long = "categorical", value_name = "COLUMN")]
        categorical: Vec<String>,
        /// What to train: `logistic` (coefficients on the encoded features) or `scorecard`
        /// (binned characteristics with WOE, IV and points, for `score` with reason codes).
        #[arg(long, value_enum, default_value_t = LocalKind::Logistic)]
        kind: LocalKind,
        /// Scorecard: equal-width fine bins per numeric feature before merging [default: 20].
        #[arg(long)]
        fine_bins: Option<usize>,
        /// Scorecard: at most this many bins per feature, a missing-value bin aside [default: 5].
        #[arg(long)]
        max_bins: Option<usize>,
        /// Scorecard: each bin holds at least this share of the rows [default: 0.05].
        #[arg(long)]
        min_bin_share: Option<f64>,
        /// Scorecard: a feature's WOE trend, `FEATURE=increasing|decreasing|auto`
        /// (repeat; default auto: the direction that keeps more IV).
        #[arg(long, value_name = "FEATURE=TREND")]
        trend: Vec<String>,
        /// Scorecard: points to double the odds [default: 20].
        #[arg(long)]
        pdo: Option<f64>,
        /// Scorecard: the score at --base-odds [default: 600].
        #[arg(long)]
        base_score: Option<f64>,
        /// Scorecard: odds of good to bad at --base-score, 50 meaning 50:1 [default: 50].
        #[arg(long)]
        base_odds: Option<f64>,
    },
    /// Write a default probability for every row of a CSV file with a model.json.
    Score(score::ScoreArgs),
    /// Benchmark the federated credit model against a central fit and scikit-learn on synthetic rows.
    BenchCredit(bench::BenchArgs),
    /// Benchmark secure-sum rounds as separate processes on a grid of member counts and vector lengths.
    BenchSecagg(bench::secagg::SecAggArgs),
    /// SecAgg+ analysis: the neighbours and threshold a consortium needs, or the bounds of a given (k, t).
    SecaggGraph(graph::GraphArgs),
    /// Time reading training files as `local` does (schema inference, then loading), or write synthetic ones.
    BenchRead(bench::read::ReadArgs),
    /// Serve a model.json for online scoring over HTTP JSON (SIGHUP reloads it).
    Serve(serve::ServeArgs),
    /// Load-bench `fedcredit serve` at fixed request rates: p50/p99 latency on loopback.
    BenchServe(serve::BenchServeArgs),
    /// The operator's commands to the coordinator's service: submit, list, status, abort, wait, log.
    Job {
        /// The operator's consortium file (its coordinator.admin_listen and key_file).
        #[arg(long)]
        config: PathBuf,
        #[command(subcommand)]
        command: job::JobCommand,
    },
    /// Write the regulator report on a model: one self-contained HTML file
    /// (charts, scorecard, calibration, privacy, lineage) and its detached
    /// signature `<out>.sig`, after checking the model against its verified
    /// round log. `report verify` checks a report's signature.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Report {
        #[command(subcommand)]
        command: Option<report::ReportCommand>,
        #[command(flatten)]
        args: report::BuildArgs,
    },
    /// Audit a coordinator's round log, offline.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify a round log against the consortium file: the chain, every
    /// signature, every unmasking and model step recomputed. Exit status 0
    /// only if it verifies.
    Verify {
        /// The round log.
        log: PathBuf,
        /// The consortium file: member keys, coordinator key, thresholds, the job.
        #[arg(long)]
        consortium: PathBuf,
        /// A job spec file (`[job]` table) to check the log against instead of
        /// the consortium file's own job: a job the service ran
        /// (`<state_dir>/<id>/job.toml`, or what `job log --out` saves).
        #[arg(long)]
        job: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// A participant's journal (what it signed) to cross-check against the log; repeatable.
        #[arg(long = "participant-journal")]
        journals: Vec<PathBuf>,
    },
    /// Print a round log as a timeline (checks nothing; see `verify`).
    Show {
        /// The round log.
        log: PathBuf,
    },
}

/// What `local` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LocalKind {
    /// Logistic regression on the encoded features.
    Logistic,
    /// A points scorecard: binning, WOE, logistic regression on WOE, points.
    Scorecard,
}

/// The one value of `local --negatives`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AllOthers {
    /// Every non-empty label value other than the positive one is negative.
    AllOthers,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CrashAt {
    ShareKeys,
    MaskedInput,
    /// Half-way through a chunked masked input.
    MidInput,
    Unmask,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Daemons log their progress; the interactive commands print their own
    // summary and only log warnings unless FEDCREDIT_LOG says otherwise.
    let default_filter = match cli.command {
        Command::Coordinator { .. } | Command::Participant { .. } | Command::Serve(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FEDCREDIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        // stderr, lifting `local`'s and `demo`'s progress bar for each line.
        .with_writer(|| progress::LogWriter)
        .with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // Span fields (a participant's job, round and attempt) go into each
        // line's `span`, the event's own into `fields`.
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause said once: many errors
/// already include their source in their own message (`file: cannot read:
/// {source}`), and `{:#}` would repeat it.
fn describe(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A participant daemon's runtime: one worker. A member waits on one
/// connection, and its heavy work runs on threads of its own (masking, data
/// passes); a second worker only added wake-ups between threads, about 8%
/// of a small round's CPU with 64 members on 2 cores. A long local
/// computation hands the worker's tasks to another thread first
/// (`block_in_place`), so the connection still answers keepalive pings.
fn participant_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen { out, force } => {
            let public = keys::generate(&out, force)?;
            say(&public.to_hex());
            Ok(())
        }
        Command::Provision(args) => provision::run(args),
        Command::Check { config } => check::run(&config),
        Command::Coordinator {
            config,
            out,
            log,
            abandon,
        } => runtime()?.block_on(daemon::coordinator(&config, out, log, abandon)),
        Command::Participant {
            config,
            crash_at,
            serve,
        } => participant_runtime()?.block_on(async move {
            // On the worker, beside the connection it waits on: no thread
            // has to wake another for each message.
            tokio::spawn(async move { daemon::participant(&config, crash_at, serve).await })
                .await
                .context("the participant task")?
        }),
        Command::Demo {
            dir,
            secure_sum: true,
            ..
        } => runtime()?.block_on(demo_sum::run(dir)),
        Command::Demo {
            dir,
            secure_sum: false,
            epsilon,
            delta,
            exact,
        } => runtime()?.block_on(demo::run(dir, (!exact).then_some((epsilon, delta)))),
        Command::Local {
            data,
            label,
            positive,
            negative,
            negatives,
            test,
            l2,
            out,
            epsilon,
            delta,
            max_memory_mb,
            categorical,
            kind,
            fine_bins,
            max_bins,
            min_bin_share,
            trend,
            pdo,
            base_score,
            base_odds,
        } => {
            let label = match (negative, negatives) {
                (Some(negative), None) => LabelSpec::binary(label, positive, negative),
                (None, Some(AllOthers::AllOthers)) => LabelSpec::all_others(label, positive),
                // clap's group takes exactly one of the two.
                _ => {
                    anyhow::bail!("give exactly one of --negative VALUE or --negatives all-others")
                }
            };
            let args = local::LocalArgs {
                data,
                label,
                test,
                l2,
                out,
                privacy: epsilon.zip(delta),
                max_memory: MemoryBudget::from_mb(max_memory_mb),
                categorical,
            };
            if kind == LocalKind::Logistic {
                let given = [
                    ("--fine-bins", fine_bins.is_some()),
                    ("--max-bins", max_bins.is_some()),
                    ("--min-bin-share", min_bin_share.is_some()),
                    ("--trend", !trend.is_empty()),
                    ("--pdo", pdo.is_some()),
                    ("--base-score", base_score.is_some()),
                    ("--base-odds", base_odds.is_some()),
                ];
                if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
                    anyhow::bail!("{flag} is a scorecard setting: it needs --kind scorecard");
                }
                return runtime()?.block_on(local::run(args));
            }
            let defaults = fedcredit_model::scorecard::BinningSettings::default();
            let mut binning = fedcredit_model::scorecard::BinningSettings {
                fine_bins: fine_bins.unwrap_or(defaults.fine_bins),
                max_bins: max_bins.unwrap_or(defaults.max_bins),
                min_bin_share: min_bin_share.unwrap_or(defaults.min_bin_share),
                ..defaults
            };
            for t in &trend {
                let (name, value) = t.split_once('=').with_context(|| {
                    format!("--trend {t}: expected FEATURE=increasing|decreasing|auto")
                })?;
                let value = value.parse().with_context(|| format!("--trend {t}"))?;
                binning.trends.insert(name.to_owned(), value);
            }
            let defaults = fedcredit_model::scorecard::PointsScale::default();
            let scale = fedcredit_model::scorecard::PointsScale {
                pdo: pdo.unwrap_or(defaults.pdo),
                base_score: base_score.unwrap_or(defaults.base_score),
                base_odds: base_odds.unwrap_or(defaults.base_odds),
            };
            runtime()?.block_on(scorecard::run(
                args,
                scorecard::ScorecardArgs { binning, scale },
            ))
        }
        Command::Score(args) => score::run(args),
        Command::BenchCredit(args) => bench::run(args),
        Command::BenchSecagg(args) => bench::secagg::run(args),
        Command::SecaggGraph(args) => graph::run(args),
        Command::BenchRead(args) => bench::read::run(args),
        Command::Serve(args) => runtime()?.block_on(serve::run(args)),
        Command::BenchServe(args) => serve::bench(args),
        Command::Job { config, command } => runtime()?.block_on(job::run(&config, command)),
        Command::Audit { command } => audit(command),
        Command::Report {
            command: Some(command),
            ..
        } => report::run(command),
        Command::Report {
            command: None,
            args,
        } => report::build(args),
    }
}

fn audit(command: AuditCommand) -> Result<()> {
    let read =
        |log: &Path| std::fs::read(log).with_context(|| format!("reading {}", log.display()));
    match command {
        AuditCommand::Verify {
            log,
            consortium,
            job,
            json,
            journals,
        } => {
            let bytes = read(&log)?;
            let consortium = load_consortium(&consortium, job.as_deref())?;
            let report = fedcredit_audit::verify(&bytes, &consortium);
            let mut checks = Vec::with_capacity(journals.len());
            for path in &journals {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let entries = fedcredit_proto::journal::parse(&text)
                    .with_context(|| format!("{}", path.display()))?;
                checks.push((
                    path.clone(),
                    fedcredit_audit::journal::cross_check(&bytes, &consortium, &entries),
                ));
            }
            if json {
                let journals: Vec<_> = checks
                    .iter()
                    .map(|(p, r)| serde_json::json!({ "file": p, "ok": r.ok(), "report": r }))
                    .collect();
                // The privacy ledger also at the top level, where a
                // compliance script looks first (`privacy.epsilon_spent`).
                say(&serde_json::to_string_pretty(&serde_json::json!({
                    "privacy": report.privacy,
                    "log": report,
                    "journals": journals,
                }))?);
            } else {
                say(&report.to_string());
                for (path, r) in &checks {
                    say(&format!("{}:\n{r}", path.display()));
                }
            }
            if !report.ok() {
                anyhow::bail!("{} does not verify", log.display());
            }
            if let Some((path, _)) = checks.iter().find(|(_, r)| !r.ok()) {
                anyhow::bail!(
                    "{} is not consistent with {}",
                    path.display(),
                    log.display()
                );
            }
            Ok(())
        }
        AuditCommand::Show { log } => {
            let timeline = fedcredit_audit::show(&read(&log)?)
                .with_context(|| format!("reading {}", log.display()))?;
            say(&timeline.to_string());
            Ok(())
        }
    }
}

/// A consortium file, with the job of `job` (a `[job]` table) in place of
/// its own if given: what `audit verify` and `report` check a log against.
fn load_consortium(path: &Path, job: Option<&Path>) -> Result<Consortium> {
    let consortium = Consortium::load(path)?;
    let Some(job) = job else {
        return Ok(consortium);
    };
    // Read as a job file: a monitor job's `model` is relative to it.
    let spec = fedcredit_referee::consortium::JobSpec::load(job)?;
    Ok(consortium.with_job(spec, job)?)
}

/// Prints a line of the command's result on stdout.
#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(io).context("x.txt: cannot read: No such file");
        assert_eq!(describe(&e), "x.txt: cannot read: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(describe(&e), "outer: inner");
    }
}
