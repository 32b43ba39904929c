//! `fedcredit report`: the regulator report on a model and its round log,
//! and `fedcredit report verify`: its detached signature. The work is in
//! `fedcredit_report`; this file reads and writes the files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

/// `fedcredit report --model ... --log ... --consortium ... --key ... --out ...`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The model file (model.json).
    #[arg(long, required = true)]
    model: Option<PathBuf>,
    /// The round log of the job that fitted it.
    #[arg(long, required = true)]
    log: Option<PathBuf>,
    /// The consortium file: member keys, coordinator key, the job.
    #[arg(long, required = true)]
    consortium: Option<PathBuf>,
    /// A job spec file (`[job]` table) to check against instead of the
    /// consortium file's own job, as for `audit verify --job`.
    #[arg(long)]
    job: Option<PathBuf>,
    /// A monitor job's `monitor.json` on this model: adds its PSI and CSI.
    #[arg(long)]
    monitor: Option<PathBuf>,
    /// The coordinator's identity key file, which signs the report.
    #[arg(long, required = true)]
    key: Option<PathBuf>,
    /// Where to write the report; the signature goes to `<out>.sig`.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
}

/// `fedcredit report verify`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Check a report's detached signature (`<report>.sig`) against the
    /// coordinator key of the consortium file. Exit status 0 only if it verifies.
    Verify {
        /// The report (report.html).
        report: PathBuf,
        /// The consortium file with the coordinator's public key.
        #[arg(long)]
        consortium: PathBuf,
        /// The signature file (default: the report's path with `.sig` appended).
        #[arg(long)]
        sig: Option<PathBuf>,
    },
}

/// `<path>.sig`.
fn sig_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Writes `bytes` to a temporary name beside `path`, then renames it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Writes the report and its signature.
pub fn build(args: BuildArgs) -> Result<()> {
    let (Some(model), Some(log), Some(consortium_path), Some(key), Some(out)) =
        (args.model, args.log, args.consortium, args.key, args.out)
    else {
        bail!("report needs --model, --log, --consortium, --key and --out");
    };
    write(
        &Paths {
            model: &model,
            log: &log,
            consortium: &consortium_path,
            job: args.job.as_deref(),
            monitor: args.monitor.as_deref(),
        },
        &key,
        &out,
    )
}

/// The files a report is made from.
pub struct Paths<'a> {
    /// model.json.
    pub model: &'a Path,
    /// Its round log.
    pub log: &'a Path,
    /// The consortium file.
    pub consortium: &'a Path,
    /// A job spec file instead of the consortium file's own job.
    pub job: Option<&'a Path>,
    /// A monitor job's monitor.json on the model.
    pub monitor: Option<&'a Path>,
}

/// Checks the model against its round log and consortium (with the job
/// file instead of the consortium's own job, if given), then writes the
/// report to `out` and its signature by the coordinator key in `key` to
/// `<out>.sig`.
pub fn write(paths: &Paths<'_>, key: &Path, out: &Path) -> Result<()> {
    let Paths {
        model,
        log,
        consortium: consortium_path,
        job,
        monitor,
    } = *paths;
    let consortium = crate::load_consortium(consortium_path, job)?;
    let key = crate::keys::load(key)?;
    if key.public() != *consortium.roster.coordinator() {
        bail!(
            "the key file's public key {} is not the coordinator key {} of {}: a report is signed by the coordinator",
            key.public(),
            consortium.roster.coordinator(),
            consortium_path.display()
        );
    }
    let model_json =
        std::fs::read_to_string(model).with_context(|| format!("reading {}", model.display()))?;
    let log_bytes = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
    let stability = match monitor {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file = fedcredit_report::stability::MonitorFile::parse(
                &path.display().to_string(),
                &text,
            )?;
            let spec_hash = serde_json::from_str::<serde_json::Value>(&model_json)
                .ok()
                .and_then(|m| m["job_spec_hash"].as_str().map(str::to_owned))
                .unwrap_or_default();
            vec![
                fedcredit_report::stability::section(&file, &spec_hash).with_context(|| {
                    format!("refusing to write a report with {}", path.display())
                })?,
            ]
        }
        None => Vec::new(),
    };
    let sources = fedcredit_report::Sources {
        model: model.display().to_string(),
        log: log.display().to_string(),
        consortium: consortium_path.display().to_string(),
        job: job.map(|j| j.display().to_string()),
    };
    let built = fedcredit_report::build(
        fedcredit_report::Inputs {
            model_json: &model_json,
            log: &log_bytes,
            consortium: &consortium,
        },
        &sources,
        &stability,
    )
    .with_context(|| format!("refusing to write a report on {}", model.display()))?;
    let sig = fedcredit_report::signature::sign_text(&key, built.html.as_bytes());
    let sig_file = sig_path(out);
    // A stale signature must not sit beside a new report, even for a moment.
    let _ = std::fs::remove_file(&sig_file);
    write_atomically(out, built.html.as_bytes())?;
    write_atomically(&sig_file, sig.as_bytes())?;
    crate::say(&format!(
        "wrote {} ({} bytes) and its signature {}\n  {}",
        out.display(),
        built.html.len(),
        sig_file.display(),
        built
            .checked
            .audit_text
            .lines()
            .next_back()
            .unwrap_or_default()
    ));
    Ok(())
}

/// `fedcredit report verify`.
pub fn run(command: ReportCommand) -> Result<()> {
    match command {
        ReportCommand::Verify {
            report,
            consortium,
            sig,
        } => {
            let sig = sig.unwrap_or_else(|| sig_path(&report));
            let consortium = fedcredit_referee::consortium::Consortium::load(&consortium)?;
            let html =
                std::fs::read(&report).with_context(|| format!("reading {}", report.display()))?;
            let sig_bytes = std::fs::read(&sig).with_context(|| {
                format!("{}: cannot read the report's signature file", sig.display())
            })?;
            let ok = fedcredit_report::signature::verify(&html, &sig_bytes, &consortium)
                .with_context(|| {
                    format!("{} does not verify ({})", report.display(), sig.display())
                })?;
            crate::say(&format!(
                "{}: signed by the coordinator key {} (SHA-256 {})",
                report.display(),
                ok.coordinator,
                ok.sha256
            ));
            Ok(())
        }
    }
}
