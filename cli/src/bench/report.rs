//! The tables `bench-credit` prints: the fits, the federated rounds, the
//! targets and, with `--memory`, the participant processes.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Result;

use super::memory::MemoryReport;
use super::sklearn::SklearnFit;
use super::{
    Central, Federated, Mark, SAME_OPTIMUM, TARGET_MEMORY_RATIO, TARGET_ROUNDS, TARGET_TIME_RATIO,
    max_abs_diff,
};
use crate::say;

/// The three fits side by side, then how far apart their results are.
pub(super) fn print_fits(fed: &Federated, central: &Central, sklearn: &Result<SklearnFit>) {
    let mut fits = Table::new(&[
        "fit",
        "wall (s)",
        "CPU (s)",
        "Newton rounds",
        "secure-agg rounds",
        "‖Δβ‖∞ vs central",
    ]);
    let (model, fit) = (&fed.model, &central.fit);
    fits.row(vec![
        format!("federated, {} parties over gRPC", fed.parties),
        format!("{:.3}", fed.wall()),
        opt_secs(fed.cpu),
        format!("{}{}", model.rounds, converged(model.converged)),
        fed.marks.len().to_string(),
        format!("{:.2e}", max_abs_diff(&fed.beta, &fit.beta)),
    ]);
    fits.row(vec![
        "central, pooled rows".into(),
        format!("{:.3}", central.wall),
        opt_secs(central.cpu),
        format!("{}{}", fit.iterations, converged(fit.converged)),
        "-".into(),
        "0".into(),
    ]);
    match sklearn {
        Ok(s) => fits.row(vec![
            format!(
                "scikit-learn {} ({}, 1 BLAS thread, .fit only)",
                s.version, s.solver
            ),
            format!("{:.3}", s.seconds),
            opt_secs(s.cpu),
            format!("{} iterations", s.n_iter),
            "-".into(),
            format!("{:.2e}", max_abs_diff(&s.beta, &fit.beta)),
        ]),
        Err(e) => fits.row(vec!["scikit-learn".into(), format!("unavailable: {e:#}")]),
    }
    fits.print();
    let std_diff = max_abs_diff(
        fed.model.standardization.mean(),
        central.standardizer.mean(),
    )
    .max(max_abs_diff(
        fed.model.standardization.std(),
        central.standardizer.std(),
    ));
    say(&format!(
        "\nfederated β vs scikit-learn: {}; federated vs central standardization (mean, std): max |Δ| {std_diff:.2e}",
        sklearn.as_ref().map_or_else(
            |_| "n/a".into(),
            |s| format!("‖Δβ‖∞ {:.2e}", max_abs_diff(&s.beta, &fed.beta))
        )
    ));
    say(&format!(
        "central breakdown: statistics {:.3} s, standardizing {:.3} s, Newton {:.3} s ({:.3} s per iteration)\n",
        central.t_stats,
        central.t_standardize,
        central.t_fit,
        central.t_fit / fit.iterations.max(1) as f64
    ));
}

/// The run measured against its targets.
pub(super) fn print_targets(
    fed: &Federated,
    central: &Central,
    sklearn: &Result<SklearnFit>,
    memory: Option<&MemoryReport>,
    d: usize,
) {
    let mut targets = Table::new(&["target", "measured", "goal", "met"]);
    let diff = max_abs_diff(&fed.beta, &central.fit.beta);
    let rounds = fed.model.rounds;
    targets.row(vec![
        "pooled optimum in few Newton rounds".into(),
        format!("{rounds} rounds, ‖Δβ‖∞ {diff:.1e}"),
        format!("<= {TARGET_ROUNDS} rounds, ‖Δβ‖∞ <= {SAME_OPTIMUM:.0e}"),
        met(fed.model.converged && rounds <= TARGET_ROUNDS && diff <= SAME_OPTIMUM),
    ]);
    let (fw, cw) = (fed.wall(), central.wall);
    targets.row(vec![
        "federated wall time vs central".into(),
        format!("{:.2}x ({fw:.2} s / {cw:.2} s)", fw / cw),
        format!("<= {TARGET_TIME_RATIO}x"),
        met(fw / cw <= TARGET_TIME_RATIO),
    ]);
    if let Some((f, c)) = fed.cpu.zip(central.cpu) {
        targets.row(vec![
            "federated CPU time vs central".into(),
            format!("{:.2}x ({f:.2} s / {c:.2} s)", f / c),
            "(reference: the parties run on all cores)".into(),
            "-".into(),
        ]);
    }
    if let Ok(s) = sklearn {
        targets.row(vec![
            "federated wall time vs scikit-learn .fit".into(),
            format!("{:.2}x ({fw:.2} s / {:.2} s)", fw / s.seconds, s.seconds),
            "(reference)".into(),
            "-".into(),
        ]);
    }
    let (measured, ok) = match memory {
        Some(m) => {
            let worst = m.parties.iter().map(|p| p.ratio(d)).fold(0.0, f64::max);
            (
                format!("worst {worst:.2}x"),
                met(worst <= TARGET_MEMORY_RATIO),
            )
        }
        None => ("not measured (add --memory)".into(), "-".into()),
    };
    targets.row(vec![
        "participant peak memory vs its rows as f64".into(),
        measured,
        format!("<= {TARGET_MEMORY_RATIO}x"),
        ok,
    ]);
    targets.print();
}

/// Per-round wall times of the federated job.
pub(super) struct RoundTimes<'a> {
    marks: &'a [Mark],
    /// Seconds since the previous round ended (the first: since the job started).
    secs: Vec<f64>,
    /// After the last round until `credit::run` returned.
    teardown: f64,
}

impl<'a> RoundTimes<'a> {
    pub(super) fn new(marks: &'a [Mark], start: Instant, end: Instant) -> Self {
        let mut prev = start;
        let secs = marks
            .iter()
            .map(|m| {
                let s = m.at.saturating_duration_since(prev).as_secs_f64();
                prev = m.at;
                s
            })
            .collect();
        Self {
            marks,
            secs,
            teardown: end.saturating_duration_since(prev).as_secs_f64(),
        }
    }

    /// Prints the rounds, and a Newton round beside a central iteration.
    pub(super) fn print(&self, iters: usize, t_fit: f64) {
        let mut t = Table::new(&["round", "kind", "wall (ms)", "detail"]);
        for (m, s) in self.marks.iter().zip(&self.secs) {
            t.row(vec![
                m.round.to_string(),
                m.kind.into(),
                format!("{:.1}", s * 1e3),
                m.detail.clone(),
            ]);
        }
        t.row(vec![
            "-".into(),
            "teardown".into(),
            format!("{:.1}", self.teardown * 1e3),
            "after the last round until run() returned".into(),
        ]);
        say("federated rounds (the first includes startup, key generation and joining):");
        t.print();
        let newton: Vec<f64> = self
            .marks
            .iter()
            .zip(&self.secs)
            .filter(|(m, _)| m.kind == "newton")
            .map(|(_, s)| *s)
            .collect();
        if !newton.is_empty() && iters > 0 {
            let fed = newton.iter().sum::<f64>() / newton.len() as f64;
            let central = t_fit / iters as f64;
            say(&format!(
                "Newton round: federated {:.1} ms on average vs central iteration {:.1} ms \
                 (difference {:+.1} ms per round)",
                fed * 1e3,
                central * 1e3,
                (fed - central) * 1e3
            ));
        }
    }
}

pub(super) fn converged(c: bool) -> &'static str {
    if c { "" } else { " (not converged)" }
}

pub(super) fn met(ok: bool) -> String {
    if ok { "yes".into() } else { "MISSED".into() }
}

pub(super) fn opt_secs(s: Option<f64>) -> String {
    s.map_or_else(|| "n/a".into(), |s| format!("{s:.3}"))
}

/// A plain text table with aligned columns (Markdown pipe syntax).
pub(super) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(super) fn print(&self) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, r) in self.rows.iter().enumerate() {
            let mut line = String::from("|");
            for (c, w) in width.iter().enumerate() {
                let cell = r.get(c).map_or("", String::as_str);
                let pad = w - cell.chars().count();
                let _ = write!(line, " {cell}{} |", " ".repeat(pad));
            }
            say(&line);
            if i == 0 {
                let rule: String = width
                    .iter()
                    .map(|w| format!("|{}", "-".repeat(w + 2)))
                    .collect();
                say(&format!("{rule}|"));
            }
        }
    }
}

impl MemoryReport {
    pub(super) fn print(&self, d: usize) {
        let idle_hwm = self.idle.map_or(0, |(_, h)| h);
        let mut t = Table::new(&[
            "participant",
            "rows",
            "rows·d·8 (MiB)",
            "VmHWM (MiB)",
            "VmHWM / data",
            "(VmHWM − idle) / data",
            "<= 2x",
        ]);
        for p in &self.parties {
            t.row(vec![
                p.id.clone(),
                p.rows.to_string(),
                format!("{:.1}", p.data_bytes(d) / MIB),
                format!("{:.1}", p.hwm as f64 / MIB),
                format!("{:.2}", p.ratio(d)),
                format!(
                    "{:.2}",
                    p.hwm.saturating_sub(idle_hwm) as f64 / p.data_bytes(d)
                ),
                met(p.ratio(d) <= TARGET_MEMORY_RATIO),
            ]);
        }
        say("participant processes (--memory; peak = VmHWM polled from /proc every 10 ms):");
        t.print();
        match self.idle {
            Some((rss, hwm)) => say(&format!(
                "idle participant (3 rows loaded, waiting for the coordinator): VmRSS {:.1} MiB, VmHWM {:.1} MiB",
                rss as f64 / MIB,
                hwm as f64 / MIB
            )),
            None => say("idle participant: not measured"),
        }
        say(&format!(
            "coordinator VmHWM {:.1} MiB; multi-process job {:.2} s wall (includes CSV loading); its β vs central: ‖Δβ‖∞ {:.2e}",
            self.coordinator_hwm as f64 / MIB,
            self.wall,
            self.beta_diff
        ));
    }
}

const MIB: f64 = 1024.0 * 1024.0;
