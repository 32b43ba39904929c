//! Per-round progress of the jobs a user sits and waits for (`fedcredit
//! local`, `fedcredit demo`), on stderr, so that stdout keeps only what the
//! command found: an `indicatif` bar when stderr is a terminal, and
//! otherwise (a pipe, a file, a CI log) exactly one plain line per round;
//! never both.
//!
//! ```text
//! round 3/≤28: optimization  1  4 participants, step max-norm 8.128e-1, objective 518.474091
//! ```
//!
//! `k/N` counts the rounds finished against the job's
//! [`PlannedRounds`]: `≤N` when an exact Newton job may converge sooner.
//!
//! While a bar is drawn, log lines reach stderr through [`LogWriter`],
//! which lifts the bar for each line, so that a warning is not written into
//! the middle of the bar's line.

use std::io::{IsTerminal as _, Write};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fedcredit_coordinator::ProgressLine;
use fedcredit_model::job::{PlannedRounds, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar on screen, if any, for [`LogWriter`] to lift around a log line.
static DRAWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// The progress display of one job. Dropping it before the last round (the
/// job failed) leaves the bar where it stopped, so the error that follows
/// is printed below it.
#[derive(Debug)]
pub struct RoundProgress {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    display: Display,
    planned: PlannedRounds,
    /// Rounds finished so far: the `k` of `k/N`.
    done: AtomicU64,
}

#[derive(Debug)]
enum Display {
    /// stderr is a terminal.
    Bar(ProgressBar),
    /// stderr is not a terminal: one line per round.
    Lines,
}

impl RoundProgress {
    /// Starts the display of a job that runs `planned` rounds: a bar if
    /// stderr is a terminal, plain lines otherwise.
    pub fn start(planned: PlannedRounds) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::new(planned, Display::Lines);
        }
        let bar = ProgressBar::with_draw_target(
            Some(planned.count() as u64),
            ProgressDrawTarget::stderr(),
        );
        bar.set_style(bar_style());
        bar.set_prefix(total(planned));
        bar.set_message("first round: the members are joining and summing their rows");
        // The spinner and the clock move while a round is under way (the
        // first one includes every member's key exchange).
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut drawn) = DRAWN.lock() {
            *drawn = Some(bar.clone());
        }
        Self::new(planned, Display::Bar(bar))
    }

    fn new(planned: PlannedRounds, display: Display) -> Self {
        Self {
            shared: Arc::new(Shared {
                display,
                planned,
                done: AtomicU64::new(0),
            }),
        }
    }

    /// What the job calls after every round ([`fedcredit_coordinator::ModelFit::on_progress`]).
    pub fn reporter(&self) -> impl Fn(&ProgressLine) + Send + 'static {
        let shared = Arc::clone(&self.shared);
        move |line| shared.round(line)
    }
}

impl Shared {
    fn round(&self, line: &ProgressLine) {
        let k = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let what = describe(line);
        match &self.display {
            Display::Lines => {
                // Progress is best effort: a closed stderr must not stop the job.
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "{}",
                    plain_line(k, self.planned, &what)
                );
            }
            Display::Bar(bar) => {
                bar.set_position(k);
                // No column padding in the bar: its line is the terminal's width.
                bar.set_message(what.split_whitespace().collect::<Vec<_>>().join(" "));
                if matches!(line.progress, Progress::Evaluated(_)) {
                    // The last round: a Newton job that converged early
                    // ends here, below its bound, with a full bar.
                    bar.set_length(k);
                    bar.finish();
                }
            }
        }
    }
}

impl Drop for RoundProgress {
    fn drop(&mut self) {
        if let Display::Bar(bar) = &self.shared.display {
            if let Ok(mut drawn) = DRAWN.lock() {
                *drawn = None;
            }
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

/// The bar's line: `{prefix}` is the planned total ([`total`]).
const BAR_TEMPLATE: &str = "{spinner} round {pos}/{prefix} [{bar:24}] {elapsed:>4}  {wide_msg}";

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(BAR_TEMPLATE)
        // A constant that a unit test parses: the fallback is never taken.
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// `N` of `k/N`: `28`, or `≤28` for a bound.
fn total(planned: PlannedRounds) -> String {
    match planned {
        PlannedRounds::Exactly(n) => n.to_string(),
        PlannedRounds::AtMost(n) => format!("≤{n}"),
    }
}

/// The line for a finished round when stderr is not a terminal.
fn plain_line(k: u64, planned: PlannedRounds, what: &str) -> String {
    format!("round {k}/{}: {what}", total(planned))
}

/// What a round computed and found, e.g. `optimization  3  4 participants,
/// step max-norm 1.311e-1, objective 328.841914` (the phase names padded
/// so that consecutive lines align).
pub fn describe(line: &ProgressLine) -> String {
    match &line.progress {
        Progress::Binned { rows } => format!(
            "binning         {} participants, {} rows",
            line.contributors,
            count(*rows)
        ),
        Progress::Standardized { rows } => format!(
            "statistics      {} participants, {} rows",
            line.contributors,
            count(*rows)
        ),
        Progress::Step(r) => format!(
            "optimization {:>2}  {} participants, step max-norm {:.3e}{}",
            r.round,
            line.contributors,
            r.step_max_norm,
            r.objective
                .map(|o| format!(", objective {o:.6}"))
                .unwrap_or_default()
        ),
        Progress::Evaluated(m) => format!(
            "evaluation      {} participants, {} held-out rows",
            line.contributors,
            count(m.map_or(0.0, |m| m.n))
        ),
    }
}

/// A row count: exact counts print as integers; a noisy (private) one is
/// marked as approximate.
fn count(rows: f64) -> String {
    if rows.fract() == 0.0 {
        format!("{rows}")
    } else {
        format!("≈{rows:.0}")
    }
}

/// stderr for the log lines (`tracing`): each write lifts the progress bar,
/// if one is drawn, and puts it back below the line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl LogWriter {
    fn with_bar_lifted<R>(f: impl FnOnce(&mut std::io::StderrLock<'static>) -> R) -> R {
        let bar = DRAWN.lock().ok().and_then(|drawn| drawn.clone());
        match bar {
            Some(bar) => bar.suspend(|| f(&mut std::io::stderr().lock())),
            None => f(&mut std::io::stderr().lock()),
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::with_bar_lifted(|err| err.write(buf))
    }

    /// One lift per log line (the formatter writes a line at once), not one
    /// per partial write.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        Self::with_bar_lifted(|err| err.write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_model::job::RoundRecord;

    fn line(round: u64, progress: Progress) -> ProgressLine {
        ProgressLine {
            round,
            contributors: 4,
            progress,
        }
    }

    fn step(round: usize) -> Progress {
        Progress::Step(RoundRecord {
            round,
            rows: 748.0,
            objective: Some(518.474_091),
            step_max_norm: 0.8128,
        })
    }

    #[test]
    fn the_bar_template_parses() {
        ProgressStyle::with_template(BAR_TEMPLATE).expect("a valid template");
    }

    #[test]
    fn a_plain_line_counts_rounds_against_the_plan() {
        let what = describe(&line(2, step(1)));
        assert_eq!(
            plain_line(3, PlannedRounds::AtMost(28), &what),
            "round 3/≤28: optimization  1  4 participants, step max-norm 8.128e-1, \
             objective 518.474091"
        );
        let what = describe(&line(0, Progress::Standardized { rows: 747.6 }));
        assert_eq!(
            plain_line(1, PlannedRounds::Exactly(28), &what),
            "round 1/28: statistics      4 participants, ≈748 rows"
        );
    }

    /// The bar (drawn nowhere here) moves one step per round, says the
    /// round's result, and fills up at the evaluation round even when the
    /// optimizer converged below its bound.
    #[test]
    fn the_bar_follows_the_rounds_and_fills_at_the_evaluation() {
        let bar = ProgressBar::with_draw_target(Some(28), ProgressDrawTarget::hidden());
        let progress = RoundProgress::new(PlannedRounds::AtMost(28), Display::Bar(bar.clone()));
        let report = progress.reporter();
        report(&line(0, Progress::Standardized { rows: 748.0 }));
        report(&line(1, Progress::Standardized { rows: 748.0 }));
        report(&line(2, step(1)));
        assert_eq!(bar.position(), 3);
        assert_eq!(bar.length(), Some(28));
        assert_eq!(
            bar.message(),
            "optimization 1 4 participants, step max-norm 8.128e-1, objective 518.474091"
        );
        assert!(!bar.is_finished());
        report(&line(3, Progress::Evaluated(None)));
        assert_eq!((bar.position(), bar.length()), (4, Some(4)));
        assert!(bar.is_finished());
        assert!(bar.message().starts_with("evaluation"), "{}", bar.message());
    }

    /// A job that fails mid-way leaves its bar standing, finished, so that
    /// the error is printed below it rather than over it.
    #[test]
    fn a_failed_job_leaves_its_bar_where_it_stopped() {
        let bar = ProgressBar::with_draw_target(Some(28), ProgressDrawTarget::hidden());
        let progress = RoundProgress::new(PlannedRounds::AtMost(28), Display::Bar(bar.clone()));
        progress.reporter()(&line(0, Progress::Standardized { rows: 748.0 }));
        drop(progress);
        assert!(bar.is_finished());
        assert_eq!(bar.position(), 1);
    }
}
