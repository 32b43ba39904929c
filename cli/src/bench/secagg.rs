//! `fedcredit bench-secagg`: secure-sum jobs as a consortium runs them —
//! one coordinator process and N participant processes of this binary on
//! loopback, over mutual TLS — on a grid of member counts N and vector
//! lengths d.
//!
//! Each cell runs `--jobs` fresh jobs (new keys, new ports). A job's round
//! time is read from its round log: from the signed announcement to the
//! published sum (the coordinator stamps every record in milliseconds), and
//! the same stamps split it into the protocol's phases. The job time adds
//! process start, TLS handshakes, joining and writing the result. Every
//! published sum is checked against the sum of the inputs the bench wrote.
//!
//! The figures are medians over the jobs of a cell; `--json` writes them for
//! `scripts/flower-secagg.py`, which runs Flower's SecAgg+ on the same grid.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fedcredit_proto::roundlog;
use fedcredit_proto::v1::log_body::Entry;
use serde::Serialize;

use super::procs::{Children, check_exits, spawn};
use super::{Scratch, children_cpu_seconds, finish};
use crate::{keys, say};

const JOB_ID: &str = "bench-secagg";
/// Fixed-point fractional bits and clip of the bench's secure sums.
const FRAC_BITS: u32 = 16;
const CLIP: f64 = 1e6;
/// The protocol's phases as the round log names them, in order.
const PHASES: [&str; 5] = [
    "advertise-keys",
    "share-keys",
    "masked-input",
    "consistency-check",
    "unmask",
];

/// Options of `fedcredit bench-secagg`.
#[derive(Debug, clap::Args)]
pub struct SecAggArgs {
    /// Member counts to run (each at least 3), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [4, 16, 64])]
    members: Vec<usize>,
    /// Vector lengths to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [50, 10_000, 100_000])]
    dims: Vec<usize>,
    /// Jobs per (members, dims) cell; the figures are their medians.
    #[arg(long, default_value_t = 3)]
    jobs: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep every job's kit, logs and round log in this folder (default: a
    /// temporary folder, removed afterwards).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// One cell's medians, as `--json` writes them.
#[derive(Debug, Serialize)]
struct Cell {
    members: usize,
    dim: usize,
    rounds: u32,
    jobs: usize,
    /// Median job time minus median round time: process start, handshakes,
    /// joining, writing the result.
    setup_seconds: f64,
    /// Median time from announcement to published sum.
    round_seconds: f64,
    /// Median wall time from starting the coordinator to the last exit.
    job_seconds: f64,
    /// Median CPU seconds of the whole job, all processes together (less
    /// sensitive to other load on the machine than the wall times).
    cpu_seconds: f64,
    /// Median duration of each phase, in [`PHASES`] order.
    phase_seconds: Vec<(String, f64)>,
}

/// What one job's round log and wall clock say.
#[derive(Debug)]
struct JobTimes {
    job: f64,
    /// CPU seconds of the coordinator and all participants together.
    cpu: f64,
    round: f64,
    phases: Vec<f64>,
}

/// Runs the grid and prints the table (and writes `--json`).
pub fn run(args: SecAggArgs) -> Result<()> {
    if let Some(&n) = args.members.iter().find(|&&n| n < 3) {
        bail!("--members {n}: a consortium has at least 3 members");
    }
    if let Some(&d) = args.dims.iter().find(|&&d| d == 0 || d > 50_000_000) {
        bail!("--dims {d}: 1 to 50,000,000 values");
    }
    ensure!(args.jobs >= 1, "--jobs: at least 1");
    let exe = std::env::current_exe().context("locating this binary")?;
    let scratch;
    let base = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            scratch = Scratch::new()?;
            scratch.0.clone()
        }
    };
    let mut cells = Vec::new();
    for &n in &args.members {
        for &d in &args.dims {
            let mut times = Vec::with_capacity(args.jobs);
            for k in 0..args.jobs {
                let dir = base.join(format!("n{n}-d{d}-job{k}"));
                progress(&format!("N = {n}, d = {d}: job {} of {}", k + 1, args.jobs));
                times.push(run_job(&exe, &dir, n, d).with_context(|| {
                    format!(
                        "N = {n}, d = {d}, job {} (files in {})",
                        k + 1,
                        dir.display()
                    )
                })?);
            }
            cells.push(summarize(n, d, &times));
        }
    }
    print_table(&cells);
    if let Some(path) = &args.json {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, &cells)?;
        writeln!(w)?;
        finish(w, path)?;
        progress(&format!("wrote {}", path.display()));
    }
    Ok(())
}

fn progress(line: &str) {
    eprintln!("bench-secagg: {line}");
}

/// Member `i`'s value at position `j`: two decimals in [-100, 100], exact in
/// the text the participant reads.
fn input_value(i: usize, j: usize) -> f64 {
    (((i * 7919 + j * 104_729) % 20_001) as f64 - 10_000.0) / 100.0
}

fn member_id(i: usize) -> String {
    format!("m{i:03}")
}

/// Writes the kit of one job: keys, consortium file, member configs and inputs.
fn write_kit(dir: &Path, n: usize, d: usize, port: u16) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let coordinator = keys::generate(&dir.join("coordinator.key"), true)?;
    let mut toml = format!(
        "[coordinator]\nlisten = \"127.0.0.1:{port}\"\npublic_key = \"{}\"\nkey_file = \"coordinator.key\"\n\n\
         [protocol]\njoin_deadline_secs = 600\nphase_deadline_secs = 600\nmax_attempts = 1\n\n\
         [job]\nid = \"{JOB_ID}\"\nkind = \"secure-sum\"\ndimension = {d}\nfrac_bits = {FRAC_BITS}\nclip = {CLIP:e}\n",
        coordinator.to_hex()
    );
    for i in 0..n {
        let id = member_id(i);
        let public = keys::generate(&dir.join(format!("{id}.key")), true)?;
        let _ = write!(
            toml,
            "\n[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
            public.to_hex()
        );
        std::fs::write(
            dir.join(format!("{id}.toml")),
            format!(
                "id = \"{id}\"\nkey_file = \"{id}.key\"\ncoordinator = \"https://127.0.0.1:{port}\"\n\
                 consortium = \"consortium.toml\"\ninput = \"{id}.input.txt\"\nconnect_timeout_secs = 600\n"
            ),
        )?;
        let path = dir.join(format!("{id}.input.txt"));
        let mut w = BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        for j in 0..d {
            writeln!(w, "{:.2}", input_value(i, j))?;
        }
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    std::fs::write(dir.join("consortium.toml"), toml)?;
    Ok(())
}

/// Runs one job as separate processes and reads its times.
fn run_job(exe: &Path, dir: &Path, n: usize, d: usize) -> Result<JobTimes> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    write_kit(dir, n, d, port)?;
    let cpu0 = children_cpu_seconds();
    let t0 = Instant::now();
    let mut children = Children(vec![spawn(
        exe,
        dir,
        &["coordinator", "--config", "consortium.toml", "--out", "out"],
        "coordinator.log",
    )?]);
    for i in 0..n {
        let id = member_id(i);
        let config = format!("{id}.toml");
        children.0.push(spawn(
            exe,
            dir,
            &["participant", "--config", &config],
            &format!("{id}.log"),
        )?);
    }
    let mut status: Vec<Option<ExitStatus>> = vec![None; children.0.len()];
    let limit = Duration::from_secs(1800);
    while status.iter().any(Option::is_none) {
        for (c, s) in children.0.iter_mut().zip(status.iter_mut()) {
            if s.is_none() {
                *s = c.try_wait()?;
            }
        }
        if t0.elapsed() > limit {
            bail!("the job overstayed {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let job = t0.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds()
        .zip(cpu0)
        .map_or(f64::NAN, |(after, before)| after - before);
    let names = std::iter::once("coordinator".to_owned()).chain((0..n).map(member_id));
    check_exits(dir, names, &status)?;
    check_sum(&dir.join("out/result.json"), n, d)?;
    let (round, phases) = round_times(&dir.join(format!("{JOB_ID}.rounds.log")))?;
    Ok(JobTimes {
        job,
        cpu,
        round,
        phases,
    })
}

/// Checks the published sum against the inputs: each value is within the
/// fixed-point rounding of n inputs.
fn check_sum(path: &Path, n: usize, d: usize) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Published {
        sum: Vec<f64>,
        contributors: Vec<String>,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let published: Published =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(
        published.contributors.len() == n,
        "{} of {n} members contributed",
        published.contributors.len()
    );
    ensure!(
        published.sum.len() == d,
        "the sum has {} values, not {d}",
        published.sum.len()
    );
    let tolerance = n as f64 * 2f64.powi(-(FRAC_BITS as i32));
    for (j, got) in published.sum.iter().enumerate() {
        let want: f64 = (0..n).map(|i| input_value(i, j)).sum();
        ensure!(
            (got - want).abs() <= tolerance,
            "value {j} of the published sum is {got}, the inputs sum to {want}"
        );
    }
    Ok(())
}

/// The round's time (announcement to published sum) and each phase's, from
/// the round log's timestamps.
fn round_times(path: &Path) -> Result<(f64, Vec<f64>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let log = roundlog::read(&bytes, None);
    ensure!(
        log.end == roundlog::End::Clean,
        "{}: the round log does not end cleanly: {:?}",
        path.display(),
        log.end
    );
    let mut start = None;
    let mut closed = Vec::new();
    let mut end = None;
    for e in &log.entries {
        let at = e.body.unix_millis as f64 / 1000.0;
        match &e.body.entry {
            Some(Entry::Announcement(_)) if start.is_none() => start = Some(at),
            Some(Entry::PhaseClosed(p)) => closed.push((p.phase.clone(), at)),
            Some(Entry::RoundCompleted(_)) => end = Some(at),
            _ => {}
        }
    }
    let (Some(start), Some(end)) = (start, end) else {
        bail!("{}: no announced and completed round", path.display());
    };
    let mut phases = Vec::with_capacity(PHASES.len());
    let mut last = start;
    for name in PHASES {
        let at = closed
            .iter()
            .find(|(p, _)| p == name)
            .map(|&(_, at)| at)
            .with_context(|| format!("{}: phase {name} never closed", path.display()))?;
        phases.push(at - last);
        last = at;
    }
    Ok((end - start, phases))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn summarize(n: usize, d: usize, times: &[JobTimes]) -> Cell {
    let round = median(times.iter().map(|t| t.round).collect());
    let job = median(times.iter().map(|t| t.job).collect());
    Cell {
        members: n,
        dim: d,
        rounds: 1,
        jobs: times.len(),
        setup_seconds: (job - round).max(0.0),
        round_seconds: round,
        job_seconds: job,
        cpu_seconds: median(times.iter().map(|t| t.cpu).collect()),
        phase_seconds: PHASES
            .iter()
            .enumerate()
            .map(|(k, name)| {
                (
                    (*name).to_owned(),
                    median(times.iter().map(|t| t.phases[k]).collect()),
                )
            })
            .collect(),
    }
}

fn print_table(cells: &[Cell]) {
    say(
        "secure-sum jobs, separate processes on loopback, mutual TLS; medians over each cell's jobs",
    );
    say("(round: announcement to published sum, from the round log's millisecond stamps)");
    say("");
    let mut head = format!("{:>4} {:>9} {:>9}", "N", "d", "round ms");
    for p in PHASES {
        let _ = write!(head, " {p:>17}");
    }
    let _ = write!(head, " {:>7} {:>7}", "job s", "CPU s");
    say(&head);
    for c in cells {
        let mut line = format!(
            "{:>4} {:>9} {:>9.0}",
            c.members,
            c.dim,
            c.round_seconds * 1e3
        );
        for (_, s) in &c.phase_seconds {
            let _ = write!(line, " {:>17.0}", s * 1e3);
        }
        let _ = write!(line, " {:>7.2} {:>7.2}", c.job_seconds, c.cpu_seconds);
        say(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_exact_in_two_decimals() {
        for (i, j) in [(0, 0), (3, 17), (63, 99_999)] {
            let v = input_value(i, j);
            assert!((-100.0..=100.0).contains(&v));
            let text = format!("{v:.2}");
            assert_eq!(text.parse::<f64>().ok(), Some(v));
        }
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
