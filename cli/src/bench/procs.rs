//! Separate processes of this binary for the benches that need them: spawning
//! with a log file each, reaping on drop, and reading peak memory.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{Context, Result, bail};

/// Current and peak resident set (`VmRSS`, `VmHWM`) of a process, bytes.
pub(super) fn proc_memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Children killed and reaped on drop, unless they exited.
pub(super) struct Children(pub(super) Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Starts `exe args` in `dir`, stdout discarded, stderr to `dir/log`.
pub(super) fn spawn(exe: &Path, dir: &Path, args: &[&str], log: &str) -> Result<Child> {
    let log = std::fs::File::create(dir.join(log))?;
    Command::new(exe)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} {}", exe.display(), args.join(" ")))
}

/// Fails with the last lines of `dir/<name>.log` of the first child (named
/// in `names`, in `status` order) that exited unsuccessfully.
pub(super) fn check_exits<S: AsRef<str>>(
    dir: &Path,
    names: impl IntoIterator<Item = S>,
    status: &[Option<ExitStatus>],
) -> Result<()> {
    for (name, s) in names.into_iter().zip(status) {
        if let Some(s) = s.filter(|s| !s.success()) {
            let name = name.as_ref();
            let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            bail!(
                "{name} exited with {s}; its log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    Ok(())
}
