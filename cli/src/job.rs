//! `fedcredit job`: the operator's commands to the coordinator's service.
//! The coordinator's address (`admin_listen`) and the operator's key
//! (`coordinator.key_file`) come from the consortium file; every command is
//! signed with that key, time-stamped and carries a fresh nonce, so the
//! service refuses anyone else's command and any replay.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_proto::envelope;
use fedcredit_proto::v1::{self as pb, admin_command::Action, admin_reply::Body};
use fedcredit_referee::consortium::Consortium;
use rand::RngCore;

use crate::{keys, say};

/// The `job` subcommands.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a job spec file (a `[job]` table as in the consortium file); prints the job's id.
    Submit {
        /// The job spec file.
        spec: PathBuf,
    },
    /// One line per job: id, kind, state.
    List,
    /// Where a job stands: phase, round, cohort, step size, privacy budget spent.
    Status {
        /// The job id.
        id: String,
    },
    /// Abort a queued or running job (its round log records it, signed).
    Abort {
        /// The job id.
        id: String,
    },
    /// Wait for a job to end, a line per round; exit 0 if it finished,
    /// non-zero if it failed or was aborted.
    Wait {
        /// The job id.
        id: String,
    },
    /// The job's round log as a timeline (`audit show`).
    Log {
        /// The job id.
        id: String,
        /// Also save the round log here, and its job spec beside it
        /// (`<file>.job.toml`), for `fedcredit audit verify --job`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A connection to the service's job API.
struct Admin {
    key: IdentityKey,
    client: pb::admin_client::AdminClient<tonic::transport::Channel>,
}

impl Admin {
    async fn connect(config: &Path) -> Result<Self> {
        let consortium = Consortium::load(config)?;
        let addr = consortium.admin_listen.with_context(|| {
            format!(
                "{}: coordinator.admin_listen: the job commands need the service's job API address \
                 (and coordinator.state_dir)",
                config.display()
            )
        })?;
        let key_file = consortium.coordinator_key_file.clone().with_context(|| {
            format!(
                "{}: coordinator.key_file: job commands are signed with the operator's (coordinator) key",
                config.display()
            )
        })?;
        let key = keys::load(&key_file)?;
        if key.public() != *consortium.roster.coordinator() {
            bail!(
                "{}: the key does not match coordinator.public_key in {}: the service would refuse every command",
                key_file.display(),
                config.display()
            );
        }
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the coordinator's job API at {addr} (is the service running?)"
                )
            })?;
        Ok(Self {
            key,
            client: pb::admin_client::AdminClient::new(channel)
                .max_decoding_message_size(usize::MAX),
        })
    }

    async fn call(&mut self, action: Action) -> Result<Body> {
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let issued_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_millis() as u64;
        let request = envelope::seal_admin(
            &self.key,
            &pb::AdminCommand {
                issued_at_ms,
                nonce: nonce.to_vec().into(),
                action: Some(action),
            },
        );
        let reply = self
            .client
            .call(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        reply
            .into_inner()
            .body
            .context("the service answered with nothing")
    }

    async fn status(&mut self, id: &str) -> Result<pb::JobStatus> {
        match self.call(Action::Status(id.to_owned())).await? {
            Body::Status(s) => Ok(s),
            other => bail!("unexpected answer {other:?}"),
        }
    }
}

/// One line per job.
fn list_line(s: &pb::JobStatus) -> String {
    format!("{}\t{}\t{}", s.id, s.kind, s.state)
}

/// The job's state, a field per line.
fn status_text(s: &pb::JobStatus) -> String {
    let mut lines = vec![
        format!("job:       {}", s.id),
        format!("kind:      {}", s.kind),
        format!("state:     {}", s.state),
    ];
    if s.state == "running" || s.state == "waiting" {
        lines.push(format!(
            "round:     {} (attempt {}), phase {}",
            s.round,
            s.attempt,
            if s.phase.is_empty() { "-" } else { &s.phase }
        ));
    }
    lines.push(format!("rounds:    {} completed", s.rounds_completed));
    if !s.cohort.is_empty() {
        lines.push(format!("cohort:    {}", s.cohort.join(", ")));
    }
    if !s.progress.is_empty() {
        lines.push(format!("progress:  {}", s.progress));
    }
    if s.epsilon_budget > 0.0 {
        lines.push(format!(
            "privacy:   ε {:.4} of {} spent",
            s.epsilon_spent, s.epsilon_budget
        ));
    }
    if !s.failure.is_empty() {
        lines.push(format!("reason:    {}", s.failure));
    }
    lines.join("\n")
}

/// Runs a `job` subcommand against the service named in `config`.
pub async fn run(config: &Path, command: JobCommand) -> Result<()> {
    let mut admin = Admin::connect(config).await?;
    match command {
        JobCommand::Submit { spec } => {
            let text = std::fs::read_to_string(&spec)
                .with_context(|| format!("reading {}", spec.display()))?;
            match admin
                .call(Action::Submit(text))
                .await
                .with_context(|| format!("{}: refused", spec.display()))?
            {
                Body::Submitted(s) => say(&s.id),
                other => bail!("unexpected answer {other:?}"),
            }
        }
        JobCommand::List => match admin.call(Action::List(pb::ListJobs {})).await? {
            Body::List(l) => {
                for s in &l.jobs {
                    say(&list_line(s));
                }
            }
            other => bail!("unexpected answer {other:?}"),
        },
        JobCommand::Status { id } => say(&status_text(&admin.status(&id).await?)),
        JobCommand::Abort { id } => match admin.call(Action::Abort(id.clone())).await? {
            Body::Aborted(s) if s.state == "aborted" => say(&format!("job {id}: aborted")),
            Body::Aborted(_) => say(&format!(
                "job {id}: abort requested; it ends at once, and its round log keeps its finished rounds"
            )),
            other => bail!("unexpected answer {other:?}"),
        },
        JobCommand::Wait { id } => wait(&mut admin, &id).await?,
        JobCommand::Log { id, out } => match admin.call(Action::Log(id.clone())).await? {
            Body::Log(log) => {
                if let Some(out) = &out {
                    std::fs::write(out, &log.round_log)
                        .with_context(|| format!("writing {}", out.display()))?;
                    let spec = spec_path(out);
                    std::fs::write(&spec, &log.spec_toml)
                        .with_context(|| format!("writing {}", spec.display()))?;
                }
                if log.round_log.is_empty() {
                    say(&format!("job {id}: no round log yet (it has not started)"));
                } else {
                    let timeline = fedcredit_audit::show(&log.round_log)
                        .with_context(|| format!("job {id}'s round log"))?;
                    say(&timeline.to_string());
                }
            }
            other => bail!("unexpected answer {other:?}"),
        },
    }
    Ok(())
}

/// Where `job log --out FILE` puts the job's spec: `FILE.job.toml`.
fn spec_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".job.toml");
    PathBuf::from(name)
}

/// Polls the job's status until it ends, saying each completed round once:
/// on a terminal as a spinner line that updates in place, otherwise (a
/// pipe, a file, a CI log) as one plain line per change.
async fn wait(admin: &mut Admin, id: &str) -> Result<()> {
    use std::io::IsTerminal as _;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut said = None;
    loop {
        let s = admin.status(id).await?;
        let line = (s.rounds_completed, s.state.clone(), s.progress.clone());
        if said.as_ref() != Some(&line) {
            let detail = if s.progress.is_empty() {
                String::new()
            } else {
                format!(": {}", s.progress)
            };
            let text = format!(
                "job {id}: {} round(s) done, {}{detail}",
                s.rounds_completed, s.state
            );
            match &bar {
                Some(bar) => bar.set_message(text),
                None => eprintln!("{text}"),
            }
            said = Some(line);
        }
        let end = |bar: &Option<indicatif::ProgressBar>| {
            if let Some(bar) = bar {
                bar.finish();
            }
        };
        match s.state.as_str() {
            "finished" => {
                end(&bar);
                return Ok(());
            }
            "failed" | "aborted" => {
                end(&bar);
                bail!("job {id} {}: {}", s.state, s.failure)
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}
