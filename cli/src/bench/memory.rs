//! `--memory`: the consortium again as separate processes of this binary
//! (coordinator and one participant per party, on loopback), polling each
//! participant's peak memory (`VmHWM`) in `/proc`.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fedcredit_model::job::{FittedModel, ModelJobSpec};
use ndarray::{ArrayView1, ArrayView2};

use super::procs::{Children, check_exits, proc_memory, spawn};
use super::{JOB_ID, finish, max_abs_diff, progress};

/// Each party's rows as `party-NN.csv` in `dir` (shortest round-trip
/// decimals, so the processes fit exactly the same numbers).
pub(super) fn write_party_csvs(
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
pub(super) struct PartyMemory {
    pub(super) id: String,
    pub(super) rows: usize,
    /// Peak resident set (`VmHWM`), bytes.
    pub(super) hwm: u64,
}

impl PartyMemory {
    pub(super) fn data_bytes(&self, d: usize) -> f64 {
        (self.rows * d * 8) as f64
    }

    pub(super) fn ratio(&self, d: usize) -> f64 {
        self.hwm as f64 / self.data_bytes(d)
    }
}

/// The multi-process run.
pub(super) struct MemoryReport {
    pub(super) parties: Vec<PartyMemory>,
    /// `VmRSS`/`VmHWM` of a participant that loaded 3 rows and waits for the coordinator.
    pub(super) idle: Option<(u64, u64)>,
    pub(super) coordinator_hwm: u64,
    pub(super) wall: f64,
    /// Process fit vs the central fit.
    pub(super) beta_diff: f64,
}

/// `VmRSS` and `VmHWM` of a running process, in bytes.
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
pub(super) fn memory_run(
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
         [job]\nid = \"{JOB_ID}\"\nkind = \"logistic-regression\"\nprivacy = \"none\"\nl2 = {:?}\ntol = {:?}\nmax_rounds = {}\n\n\
         [job.schema.label]\n{}",
        spec.l2,
        spec.tol,
        spec.max_rounds,
        toml::to_string(&spec.schema.label).context("writing the label spec")?
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
            "id = \"{id}\"\nkey_file = \"{id}.key\"\ncoordinator = \"https://127.0.0.1:{port}\"\n\
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
    check_exits(dir, names, &status)?;
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
