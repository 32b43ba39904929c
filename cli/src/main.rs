//! `fedcredit`: the one binary. It parses arguments and config, sets up
//! logging, and calls the library crates; it does no protocol work itself.
#![forbid(unsafe_code)]

mod demo;
mod keys;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use fedcredit_coordinator::{RoundResult, SecureSum};
use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_participant::config::ParticipantConfig;
use fedcredit_participant::contribution::VectorInput;
use fedcredit_participant::{CrashPoint, Settings};
use fedcredit_proto::consortium::{Consortium, JobKind};
use serde::Serialize;

/// Federated credit-risk models on secure aggregation.
#[derive(Debug, Parser)]
#[command(name = "fedcredit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Run the coordinator of a consortium's job (the gRPC server).
    Coordinator {
        /// The consortium file.
        #[arg(long)]
        config: PathBuf,
        /// Where to write the job's result (JSON); default `<job id>.result.json` beside the config.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a participant daemon (dials out to the coordinator).
    Participant {
        /// The participant's config file.
        #[arg(long)]
        config: PathBuf,
        /// Test hook for dropout tests: abort the process at this point of the first round.
        #[arg(long, value_enum, hide = true)]
        crash_at: Option<CrashAt>,
    },
    /// Run a whole secure-sum consortium on this machine, over loopback gRPC.
    Demo {
        /// Keep the generated keys, configs and results here (default: a temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CrashAt {
    ShareKeys,
    MaskedInput,
    Unmask,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FEDCREDIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
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
        Command::Coordinator { config, out } => runtime()?.block_on(coordinator(&config, out)),
        Command::Participant { config, crash_at } => {
            runtime()?.block_on(participant(&config, crash_at))
        }
        Command::Demo { dir } => runtime()?.block_on(demo::run(dir)),
    }
}

/// Prints a line of the command's result on stdout.
#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// The published result of a secure-sum job, as written to disk.
#[derive(Debug, Serialize)]
struct SumReport<'a> {
    job: &'a str,
    round: u64,
    attempt: u32,
    contributors: &'a [String],
    sum: &'a [f64],
}

async fn shutdown_signal() {
    // If the signal handler cannot be installed, never resolve: the job still ends by itself.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn secure_sum_driver(consortium: &Consortium) -> Result<(SecureSum, usize)> {
    match &consortium.job.kind {
        JobKind::SecureSum {
            dimension,
            frac_bits,
            clip,
        } => {
            let fp = FixedPoint::new(*frac_bits, *clip)?;
            Ok((SecureSum::new(*dimension, fp), *dimension))
        }
    }
}

async fn coordinator(config: &Path, out: Option<PathBuf>) -> Result<()> {
    let consortium = Consortium::load(config)?;
    let key_file = consortium.coordinator_key_file.clone().with_context(|| {
        format!(
            "{}: `coordinator.key_file`: the coordinator's secret key file is required to run it",
            config.display()
        )
    })?;
    let key = keys::load(&key_file)?;
    let (driver, dimension) = secure_sum_driver(&consortium)?;
    let listener = tokio::net::TcpListener::bind(consortium.listen)
        .await
        .with_context(|| format!("binding {}", consortium.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "coordinator listening");
    let job_id = consortium.job.id.clone();
    let out = out.unwrap_or_else(|| {
        config
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{job_id}.result.json"))
    });
    let results = fedcredit_coordinator::run(
        listener,
        consortium,
        key,
        Box::new(driver),
        fedcredit_coordinator::max_message_bytes(dimension),
        shutdown_signal(),
    )
    .await?;
    let last: &RoundResult = results.last().context("the job finished without a round")?;
    let report = SumReport {
        job: &job_id,
        round: last.round,
        attempt: last.attempt,
        contributors: &last.contributors,
        sum: &last.sum,
    };
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&out, format!("{json}\n"))
        .with_context(|| format!("writing {}", out.display()))?;
    say(&json);
    tracing::info!(result = %out.display(), "result written");
    Ok(())
}

async fn participant(config: &Path, crash_at: Option<CrashAt>) -> Result<()> {
    let cfg = ParticipantConfig::load(config)?;
    let key = keys::load(&cfg.key_file)?;
    let mut input = match &cfg.consortium.job.kind {
        JobKind::SecureSum { .. } => {
            let path = cfg.input.as_ref().with_context(|| {
                format!(
                    "{}: `input`: a secure-sum job needs the file of values to contribute",
                    config.display()
                )
            })?;
            VectorInput::from_file(path)?
        }
    };
    let settings = Settings {
        id: cfg.id.clone(),
        coordinator: cfg.coordinator.clone(),
        consortium: cfg.consortium.clone(),
        connect_timeout: cfg.connect_timeout,
        crash_at: crash_at.map(|c| match c {
            CrashAt::ShareKeys => CrashPoint::ShareKeys,
            CrashAt::MaskedInput => CrashPoint::MaskedInput,
            CrashAt::Unmask => CrashPoint::Unmask,
        }),
    };
    let report = fedcredit_participant::run(settings, key, &mut input, shutdown_signal()).await?;
    for r in &report.rounds {
        tracing::info!(round = r.round, contributors = r.contributors.len(), sum = ?r.sum, "published sum");
    }
    Ok(())
}
