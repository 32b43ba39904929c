//! The coordinator's peak memory during one full round (n = 10 participants,
//! d = 10,000 and 100,000 values). Target at d = 100,000: peak ≤ 3 × n·d·8
//! bytes.
//!
//! ```text
//! cargo build --release -p fedcredit && cargo bench -p fedcredit-coordinator --bench round_memory
//! ```
//!
//! The coordinator must be measured alone, so it runs as its own process: the
//! real binary, `fedcredit coordinator --config consortium.toml` (found via
//! `FEDCREDIT_BIN`, else `$CARGO_TARGET_DIR/release/fedcredit`, else the
//! workspace's `target/release/fedcredit`). The 10 participants run
//! in-process against it. `/proc/<pid>/status` is read once the coordinator
//! listens (idle baseline `VmRSS`) and then polled every millisecond until
//! it exits, keeping the largest `VmHWM` (peak RSS, monotonic). Two peaks are
//! reported: when the last participant returned (the round, including
//! telling everyone the job finished), and the last reading before the
//! process exited (adds writing the result JSON). Also printed: the round's
//! wall time as the participants see it (first poll to last `Finished`),
//! and the coordinator's CPU time over it (all threads' `schedstat`).
//!
//! `MEMORY_RUNS` (default 3) sets the runs per dimension; `MEMORY_LOG=1`
//! prints the coordinator's log of each run (its phase timestamps).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_participant::Settings;
use fedcredit_participant::contribution::VectorInput;
use fedcredit_proto::roster::ParticipantId;
use fedcredit_referee::consortium::Consortium;
use rand::{Rng, SeedableRng};

const N: u8 = 10;
const FRAC_BITS: u32 = 16;
const CLIP: f64 = 1e6;
const COORDINATOR_SEED: u8 = 100;
const TARGET_RATIO: f64 = 3.0;

fn member_id(i: u8) -> String {
    format!("p{i:02}")
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FEDCREDIT_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("release/fedcredit")
}

fn consortium_toml(dimension: usize) -> String {
    let public = |seed: u8| {
        IdentityKey::from_secret_bytes(&[seed; 32])
            .public()
            .to_hex()
    };
    // Port 0: the coordinator logs the address it bound.
    let mut text = format!(
        "[coordinator]\nlisten = \"127.0.0.1:0\"\npublic_key = \"{}\"\nkey_file = \"coordinator.key\"\n\n\
         [protocol]\nphase_deadline_secs = 30\njoin_deadline_secs = 30\n\n\
         [job]\nid = \"bench-memory\"\nkind = \"secure-sum\"\ndimension = {dimension}\n\
         frac_bits = {FRAC_BITS}\nclip = {CLIP:e}\n",
        public(COORDINATOR_SEED)
    );
    for i in 1..=N {
        text.push_str(&format!(
            "\n[[participants]]\nid = \"{}\"\npublic_key = \"{}\"\n",
            member_id(i),
            public(i)
        ));
    }
    text
}

/// Inputs on the fixed-point grid, so the decoded sum is exact.
fn inputs(dimension: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2017);
    let scale = f64::from(1u32 << FRAC_BITS);
    let inputs: Vec<Vec<f64>> = (0..N)
        .map(|_| {
            (0..dimension)
                .map(|_| f64::from(rng.gen_range(-1_000_000_000i32..1_000_000_000)) / scale)
                .collect()
        })
        .collect();
    let mut sum = vec![0f64; dimension];
    for v in &inputs {
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x;
        }
    }
    (inputs, sum)
}

/// A `kB` field of `/proc/<pid>/status`, in bytes; `None` once the process is gone.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The address in the coordinator's `coordinator listening listen=127.0.0.1:PORT`
/// log line (with or without ANSI colours).
fn listen_addr(line: &str) -> Option<SocketAddr> {
    const HOST: &str = "127.0.0.1:";
    if !line.contains("coordinator listening") {
        return None;
    }
    let tail = &line[line.find(HOST)?..];
    let end = tail[HOST.len()..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(tail.len(), |i| HOST.len() + i);
    tail[..end].parse().ok()
}

/// CPU time of all the process's threads so far (`/proc/<pid>/task/*/schedstat`,
/// nanoseconds on CPU); `None` once the process is gone.
fn cpu_nanos(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(total)
}

/// Kills the coordinator if the bench fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[derive(Debug)]
struct Run {
    dimension: usize,
    baseline_rss: u64,
    hwm_round: u64,
    hwm_exit: u64,
    wall: Duration,
    /// The coordinator's CPU time from listening to its last reading.
    cpu: Duration,
}

fn run_once(bin: &Path, dimension: usize, inputs: &[Vec<f64>], expected: &[f64]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let key_hex: String = format!("{COORDINATOR_SEED:02x}").repeat(32);
    std::fs::write(dir.path().join("coordinator.key"), format!("{key_hex}\n")).unwrap();
    let config = dir.path().join("consortium.toml");
    std::fs::write(&config, consortium_toml(dimension)).unwrap();

    let child = Command::new(bin)
        .arg("coordinator")
        .arg("--config")
        .arg(&config)
        .env("FEDCREDIT_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); build it first: cargo build --release -p fedcredit, or set FEDCREDIT_BIN",
                bin.display()
            )
        });
    let mut child = Guard(child);
    let pid = child.0.id();

    // Read the log (and keep draining it, or the child blocks on a full
    // pipe) until the coordinator says where it listens.
    let stderr = child.0.stderr.take().unwrap();
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let log = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(addr) = listen_addr(&line) {
                let _ = addr_tx.send(addr);
                sent = true;
            }
            lines.push(line);
        }
        lines
    });
    let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => a,
        Err(_) => {
            drop(child);
            let lines = log.join().unwrap_or_default();
            panic!(
                "the coordinator did not report its address; its log:\n{}",
                lines.join("\n")
            );
        }
    };
    // Idle baseline: the process is up, listening, and has not seen a message.
    let baseline_rss = status_bytes(pid, "VmRSS").unwrap();
    let cpu_start = cpu_nanos(pid).unwrap();

    // Poll the peak until the process is gone.
    let peak = Arc::new(AtomicU64::new(status_bytes(pid, "VmHWM").unwrap()));
    let cpu_last = Arc::new(AtomicU64::new(cpu_start));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let peak = Arc::clone(&peak);
        let cpu_last = Arc::clone(&cpu_last);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match status_bytes(pid, "VmHWM") {
                    Some(v) => {
                        peak.fetch_max(v, Ordering::Relaxed);
                    }
                    // A zombie's status has no Vm fields; gone either way.
                    None => break,
                }
                if let Some(c) = cpu_nanos(pid) {
                    cpu_last.fetch_max(c, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    // The participants, in-process.
    let consortium = Consortium::load(&config).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let parties: Vec<_> = (1..=N)
        .zip(inputs)
        .map(|(i, values)| {
            let settings = Settings {
                id: ParticipantId::new(&member_id(i)).unwrap(),
                coordinator: format!("http://{addr}"),
                consortium: consortium.clone(),
                connect_timeout: Duration::from_secs(30),
                crash_at: None,
                chunk_words: fedcredit_proto::chunks::MAX_CHUNK_WORDS,
                journal: None,
                tls: None,
            };
            let key = IdentityKey::from_secret_bytes(&[i; 32]);
            (settings, key, VectorInput::new(values.clone()))
        })
        .collect();
    let start = Instant::now();
    let sums = rt.block_on(async {
        let mut tasks = Vec::new();
        for (settings, key, mut input) in parties {
            tasks.push(tokio::spawn(async move {
                fedcredit_participant::run(settings, key, &mut input, std::future::pending()).await
            }));
        }
        let mut sums = Vec::new();
        for t in tasks {
            sums.push(
                t.await
                    .unwrap()
                    .map(|r| r.rounds.last().unwrap().sum.clone()),
            );
        }
        sums
    });
    let wall = start.elapsed();
    if let Some(Err(e)) = sums.iter().find(|s| s.is_err()) {
        let e = e.to_string();
        drop(child);
        let lines = log.join().unwrap_or_default();
        panic!(
            "a participant failed: {e}; the coordinator's log:\n{}",
            lines.join("\n")
        );
    }
    let hwm_round = status_bytes(pid, "VmHWM").map_or(peak.load(Ordering::Relaxed), |v| {
        peak.fetch_max(v, Ordering::Relaxed).max(v)
    });

    let status = child.0.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    let lines = log.join().unwrap_or_default();
    assert!(
        status.success(),
        "the coordinator failed ({status}); its log:\n{}",
        lines.join("\n")
    );
    for s in sums.iter().flatten() {
        assert_eq!(s.as_slice(), expected, "the published sum is wrong");
    }
    if std::env::var_os("MEMORY_LOG").is_some() {
        println!("coordinator log (d = {dimension}):\n{}", lines.join("\n"));
    }
    Run {
        dimension,
        baseline_rss,
        hwm_round,
        hwm_exit: peak.load(Ordering::Relaxed),
        wall,
        cpu: Duration::from_nanos(cpu_last.load(Ordering::Relaxed) - cpu_start),
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn main() {
    let bin = binary();
    let runs: usize = std::env::var("MEMORY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!(
        "coordinator peak memory, one full round, n = {N} (binary: {}, {runs} runs per d)",
        bin.display()
    );
    println!(
        "{:>3} {:>7} {:>9} {:>10} {:>10} {:>10} {:>10} {:>14} {:>9} {:>9} {:>10}",
        "n",
        "d",
        "n·d·8",
        "baseline",
        "HWM round",
        "HWM exit",
        "HWM−base",
        "(HWM−base)/nd8",
        "HWM/nd8",
        "wall",
        "coord CPU"
    );
    let mut worst_at_target = 0f64;
    for dimension in [10_000usize, 100_000] {
        let (inputs, expected) = inputs(dimension);
        for _ in 0..runs {
            let r = run_once(&bin, dimension, &inputs, &expected);
            let nd8 = (usize::from(N) * r.dimension * 8) as u64;
            let hwm = r.hwm_exit;
            let above = hwm.saturating_sub(r.baseline_rss);
            let ratio_above = above as f64 / nd8 as f64;
            let ratio = hwm as f64 / nd8 as f64;
            if dimension == 100_000 {
                worst_at_target = worst_at_target.max(ratio);
            }
            println!(
                "{:>3} {:>7} {:>9} {:>10} {:>10} {:>10} {:>10} {:>13.2}× {:>8.2}× {:>6.1} ms {:>7.1} ms",
                N,
                r.dimension,
                mb(nd8),
                mb(r.baseline_rss),
                mb(r.hwm_round),
                mb(hwm),
                mb(above),
                ratio_above,
                ratio,
                r.wall.as_secs_f64() * 1e3,
                r.cpu.as_secs_f64() * 1e3
            );
        }
    }
    println!(
        "target at d = 100,000: VmHWM ≤ {TARGET_RATIO}× n·d·8; worst run {worst_at_target:.2}× — {}",
        if worst_at_target <= TARGET_RATIO {
            "met"
        } else {
            "NOT met"
        }
    );
}
