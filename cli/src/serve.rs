//! `fedcredit serve` (online scoring, the `fedcredit-serve` crate) and
//! `fedcredit bench-serve` (its load bench: a real `serve` process on
//! loopback, an open-loop load at fixed rates, latency percentiles).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use fedcredit_model::job::FittedModel;
use fedcredit_model::schema::Feature;

use crate::say;

/// Options of `fedcredit serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The model file (model.json); SIGHUP reloads it.
    #[arg(long)]
    model: PathBuf,
    /// Where to listen, e.g. 127.0.0.1:8080 (port 0: any free port, printed).
    #[arg(long)]
    listen: SocketAddr,
}

/// Runs the scoring service until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<()> {
    let shutdown = crate::daemon::shutdown_signal()?;
    fedcredit_serve::serve(
        &args.model,
        args.listen,
        |addr| {
            say(&format!("listening on {addr}"));
            tracing::info!(listen = %addr, model = %args.model.display(), "scoring service ready (SIGHUP reloads the model)");
        },
        shutdown,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Options of `fedcredit bench-serve`.
#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// The model file to serve.
    #[arg(long)]
    model: PathBuf,
    /// Request rates to run, requests per second.
    #[arg(long, value_delimiter = ',', default_values_t = [1000.0, 10000.0])]
    rates: Vec<f64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Keep-alive connections the load is spread over.
    #[arg(long, default_value_t = 16)]
    connections: usize,
}

/// An applicant the model accepts: 1 for each numeric feature, the first
/// category of each categorical one.
fn applicant(model: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(model).with_context(|| format!("reading {}", model.display()))?;
    let model: FittedModel =
        serde_json::from_str(&text).with_context(|| format!("{}: not a model", model.display()))?;
    let mut fields = serde_json::Map::new();
    // A scorecard reads the raw features it binned.
    let schema = model
        .scorecard
        .as_ref()
        .map_or(&model.schema, |c| &c.schema);
    for f in &schema.features {
        let v = match f {
            Feature::Numeric { name } => (name, serde_json::json!(1.0)),
            Feature::Categorical { name, categories } => (
                name,
                serde_json::json!(categories.first().cloned().unwrap_or_default()),
            ),
        };
        fields.insert(v.0.clone(), v.1);
    }
    Ok(serde_json::Value::Object(fields).to_string())
}

/// Runs the load bench against a `fedcredit serve` child process.
pub fn bench(args: BenchServeArgs) -> Result<()> {
    if args.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) || args.seconds <= 0.0 {
        bail!("--rates and --seconds must be positive");
    }
    let body = applicant(&args.model)?;
    let exe = std::env::current_exe().context("finding this program")?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--model"])
        .arg(&args.model)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting `fedcredit serve`")?;
    let result = (|| -> Result<()> {
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the server's address")?;
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("the server did not say where it listens: {line:?}"))?;
        say(&format!(
            "fedcredit serve on {addr} (its own process), {} keep-alive connections, {} s per rate, one applicant of {} bytes; latency from each request's send, and from when it was due:",
            args.connections,
            args.seconds,
            body.len()
        ));
        say("rate/s    answered  failed   from:     p50 µs     p99 µs   p99.9 µs     max µs");
        let rt = crate::runtime()?;
        for &rate in &args.rates {
            let r = rt
                .block_on(fedcredit_serve::bench::load(
                    addr,
                    body.clone().into(),
                    rate,
                    Duration::from_secs_f64(args.seconds),
                    args.connections,
                ))
                .map_err(|e| anyhow::anyhow!("load at {rate}/s: {e}"))?;
            for (from, us) in [("send", r.from_send_us), ("due", r.from_due_us)] {
                say(&format!(
                    "{:<9} {:>8} {:>7} {from:>6}: {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
                    r.rate, r.ok, r.failed, us[0], us[1], us[2], us[3]
                ));
            }
        }
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
