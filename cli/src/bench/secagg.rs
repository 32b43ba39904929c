//! `fedcredit bench-secagg`: secure-sum jobs as a consortium runs them —
//! one coordinator process and N participant processes of this binary on
//! loopback, over mutual TLS — on a grid of member counts N and vector
//! lengths d.
//!
//! Each cell runs `--jobs` fresh jobs (new keys, new ports), each a series
//! of `--rounds` sums of fresh inputs, with keys agreed and secrets shared
//! every round (`--setup round`) or once per epoch (`--setup epoch`, one
//! epoch of `--rounds` slots). A round's time is read from the round log:
//! from the signed announcement to the published sum (the coordinator stamps
//! every record in milliseconds), and the same stamps split it into the
//! protocol's phases. The first round is reported apart: with epochs it
//! carries the setup. The job time adds process start, TLS handshakes,
//! joining and writing the results. Every published sum is checked against
//! the sum of the inputs the bench wrote.
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
    /// Sums per job, one round each (a secure-sum series).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// `round`: agree keys and share secrets every round; `epoch`: once per
    /// job (an epoch of `--rounds` slots).
    #[arg(long, value_enum, default_value_t = Setup::Round)]
    setup: Setup,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep every job's kit, logs and round log in this folder (default: a
    /// temporary folder, removed afterwards).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// When the protocol agrees keys and shares secrets (`[protocol] setup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Setup {
    /// Every round.
    Round,
    /// Once per epoch of slots.
    Epoch,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Round => "round",
            Setup::Epoch => "epoch",
        }
    }
}

/// One cell's medians, as `--json` writes them.
#[derive(Debug, Serialize)]
struct Cell {
    members: usize,
    dim: usize,
    /// Sums (rounds) per job.
    rounds: u32,
    /// When keys are agreed and secrets shared.
    setup: Setup,
    jobs: usize,
    /// Median job time minus the median time of all its rounds: process
    /// start, handshakes, joining, writing the results.
    setup_seconds: f64,
    /// Median time of a job's first round (with epochs, it holds the setup).
    first_round_seconds: f64,
    /// Median time from announcement to published sum of the rounds after
    /// the first (of the first, for one-round jobs).
    round_seconds: f64,
    /// Median wall time from starting the coordinator to the last exit.
    job_seconds: f64,
    /// Median CPU seconds of the whole job, all processes together (less
    /// sensitive to other load on the machine than the wall times).
    cpu_seconds: f64,
    /// Median duration of each phase in the rounds `round_seconds` counts,
    /// in [`PHASES`] order (0 for a phase those rounds do not have).
    phase_seconds: Vec<(String, f64)>,
}

/// What one job's round log and wall clock say.
#[derive(Debug)]
struct JobTimes {
    job: f64,
    /// CPU seconds of the coordinator and all participants together.
    cpu: f64,
    /// Every round's time, in order.
    rounds: Vec<f64>,
    /// The phases of the rounds after the first (of the first, for one round).
    phases: Vec<f64>,
}

impl JobTimes {
    /// The median of the rounds after the first, or the first's.
    fn later_round(&self) -> f64 {
        match self.rounds.as_slice() {
            [first] => *first,
            [_, rest @ ..] => median(rest.to_vec()),
            [] => f64::NAN,
        }
    }
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
    ensure!(
        (1..=256).contains(&args.rounds),
        "--rounds {}: 1 to 256 (one epoch holds at most 256 slots)",
        args.rounds
    );
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
                let shape = Shape {
                    n,
                    d,
                    rounds: args.rounds,
                    setup: args.setup,
                };
                times.push(run_job(&exe, &dir, shape).with_context(|| {
                    format!(
                        "N = {n}, d = {d}, job {} (files in {})",
                        k + 1,
                        dir.display()
                    )
                })?);
            }
            cells.push(summarize(n, d, args.rounds, args.setup, &times));
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

/// Member `i`'s value at position `j` of sum `k`: two decimals in
/// [-100, 100], exact in the text the participant reads.
fn input_value(i: usize, j: usize, k: u32) -> f64 {
    (((i * 7919 + j * 104_729 + k as usize * 15_485_863) % 20_001) as f64 - 10_000.0) / 100.0
}

/// What one job runs.
#[derive(Clone, Copy, Debug)]
struct Shape {
    n: usize,
    d: usize,
    rounds: u32,
    setup: Setup,
}

/// The input file of member `id` for sum `index` (a series names one per sum).
fn input_file(id: &str, shape: Shape, index: &str) -> String {
    if shape.rounds > 1 {
        format!("{id}.input-{index}.txt")
    } else {
        format!("{id}.input.txt")
    }
}

fn member_id(i: usize) -> String {
    format!("m{i:03}")
}

/// Writes the kit of one job: keys, consortium file, member configs and inputs.
fn write_kit(dir: &Path, shape: Shape, port: u16) -> Result<()> {
    let Shape {
        n,
        d,
        rounds,
        setup,
    } = shape;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let coordinator = keys::generate(&dir.join("coordinator.key"), true)?;
    let epoch = match setup {
        Setup::Round => String::new(),
        Setup::Epoch => format!("setup = \"epoch\"\nslots = {rounds}\n"),
    };
    let mut toml = format!(
        "[coordinator]\nlisten = \"127.0.0.1:{port}\"\npublic_key = \"{}\"\nkey_file = \"coordinator.key\"\n\n\
         [protocol]\njoin_deadline_secs = 600\nphase_deadline_secs = 600\nmax_attempts = 1\n{epoch}\n\
         [job]\nid = \"{JOB_ID}\"\nkind = \"secure-sum\"\ndimension = {d}\nfrac_bits = {FRAC_BITS}\nclip = {CLIP:e}\nrounds = {rounds}\n",
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
                 consortium = \"consortium.toml\"\ninput = \"{}\"\nconnect_timeout_secs = 600\n",
                input_file(&id, shape, "{index}")
            ),
        )?;
        for k in 0..rounds {
            let path = dir.join(input_file(&id, shape, &k.to_string()));
            let mut w = BufWriter::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            for j in 0..d {
                writeln!(w, "{:.2}", input_value(i, j, k))?;
            }
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    std::fs::write(dir.join("consortium.toml"), toml)?;
    Ok(())
}

/// Runs one job as separate processes and reads its times.
fn run_job(exe: &Path, dir: &Path, shape: Shape) -> Result<JobTimes> {
    let n = shape.n;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    write_kit(dir, shape, port)?;
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
    for k in 0..shape.rounds {
        let file = if shape.rounds > 1 {
            format!("out/result-{k}.json")
        } else {
            "out/result.json".to_owned()
        };
        check_sum(&dir.join(file), shape, k)?;
    }
    let (rounds, phases) = round_times(&dir.join(format!("{JOB_ID}.rounds.log")))?;
    ensure!(
        rounds.len() == shape.rounds as usize,
        "the round log has {} completed rounds, the job {}",
        rounds.len(),
        shape.rounds
    );
    Ok(JobTimes {
        job,
        cpu,
        rounds,
        phases,
    })
}

/// Checks the published sum against the inputs: each value is within the
/// fixed-point rounding of n inputs.
fn check_sum(path: &Path, shape: Shape, k: u32) -> Result<()> {
    let Shape { n, d, .. } = shape;
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
        let want: f64 = (0..n).map(|i| input_value(i, j, k)).sum();
        ensure!(
            (got - want).abs() <= tolerance,
            "value {j} of the published sum is {got}, the inputs sum to {want}"
        );
    }
    Ok(())
}

/// Every completed round's time (announcement to published sum), and the
/// median of each phase over the rounds after the first (over the first
/// alone, for one round), from the round log's timestamps.
fn round_times(path: &Path) -> Result<(Vec<f64>, Vec<f64>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let log = roundlog::read(&bytes, None);
    ensure!(
        log.end == roundlog::End::Clean,
        "{}: the round log does not end cleanly: {:?}",
        path.display(),
        log.end
    );
    // Per completed round: its time and its phases' (0 for a phase it lacks).
    let mut rounds: Vec<(f64, Vec<f64>)> = Vec::new();
    let mut start = None;
    let mut last = 0.0;
    let mut phases = vec![0.0; PHASES.len()];
    for e in &log.entries {
        let at = e.body.unix_millis as f64 / 1000.0;
        match &e.body.entry {
            Some(Entry::Announcement(_)) => {
                start = Some(at);
                last = at;
                phases = vec![0.0; PHASES.len()];
            }
            Some(Entry::PhaseClosed(p)) => {
                let k = PHASES
                    .iter()
                    .position(|name| *name == p.phase)
                    .with_context(|| format!("{}: unknown phase {:?}", path.display(), p.phase))?;
                phases[k] += at - last;
                last = at;
            }
            Some(Entry::RoundCompleted(_)) => {
                let start = start.take().with_context(|| {
                    format!("{}: a round completed unannounced", path.display())
                })?;
                rounds.push((at - start, std::mem::take(&mut phases)));
            }
            _ => {}
        }
    }
    ensure!(
        !rounds.is_empty(),
        "{}: no announced and completed round",
        path.display()
    );
    let counted = if rounds.len() > 1 {
        &rounds[1..]
    } else {
        &rounds[..]
    };
    let phases = (0..PHASES.len())
        .map(|k| median(counted.iter().map(|(_, p)| p[k]).collect()))
        .collect();
    Ok((rounds.into_iter().map(|(t, _)| t).collect(), phases))
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

fn summarize(n: usize, d: usize, rounds: u32, setup: Setup, times: &[JobTimes]) -> Cell {
    let all_rounds = median(times.iter().map(|t| t.rounds.iter().sum()).collect());
    let job = median(times.iter().map(|t| t.job).collect());
    Cell {
        members: n,
        dim: d,
        rounds,
        setup,
        jobs: times.len(),
        setup_seconds: (job - all_rounds).max(0.0),
        first_round_seconds: median(
            times
                .iter()
                .map(|t| t.rounds.first().copied().unwrap_or(f64::NAN))
                .collect(),
        ),
        round_seconds: median(times.iter().map(JobTimes::later_round).collect()),
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
    if let Some(c) = cells.first().filter(|c| c.rounds > 1) {
        say(&format!(
            "{} sums per job, setup = \"{}\"; \"round ms\" and the phases: median of the rounds \
             after the first",
            c.rounds,
            c.setup.name()
        ));
    }
    say("");
    let mut head = format!("{:>4} {:>9} {:>9} {:>9}", "N", "d", "1st ms", "round ms");
    for p in PHASES {
        let _ = write!(head, " {p:>17}");
    }
    let _ = write!(head, " {:>7} {:>7}", "job s", "CPU s");
    say(&head);
    for c in cells {
        let mut line = format!(
            "{:>4} {:>9} {:>9.0} {:>9.1}",
            c.members,
            c.dim,
            c.first_round_seconds * 1e3,
            c.round_seconds * 1e3
        );
        for (_, s) in &c.phase_seconds {
            let _ = write!(line, " {:>17.1}", s * 1e3);
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
        for (i, j, k) in [(0, 0, 0), (3, 17, 1), (63, 99_999, 255)] {
            let v = input_value(i, j, k);
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
