//! `fedcredit check --config FILE`: validates a coordinator's consortium
//! file or a participant's config the way the daemon would load it, without
//! starting anything or contacting anyone.
//!
//! A file with a top-level `id` is a participant's config; any other is a
//! consortium file. One line per check, `ok`, `warn` or `FAIL` with the
//! error naming the file and key; the command fails if any check does.
//! A check that needs what an earlier one could not load is `skip`ped
//! (the earlier failure already fails the command).
//!
//! Participant: the config and its consortium file parse (thresholds
//! reported), the key file is readable and is the roster's key for this
//! member, the TLS setup the daemon would build succeeds (the certificate
//! carries the key), the input or data file reads and fits the job, and the
//! journal's folder is writable. Coordinator: the consortium file parses,
//! its key file matches `coordinator.public_key`, its TLS setup succeeds,
//! and the round log's folder is writable.

use std::fmt::Display;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_participant::config::ParticipantConfig;
use fedcredit_participant::contribution::{SeriesInput, VectorInput};
use fedcredit_participant::data::Rows;
use fedcredit_referee::consortium::{Consortium, JobKind};

use crate::{keys, say};

/// Runs `fedcredit check`.
pub fn run(config: &Path) -> Result<()> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("{}: cannot read", config.display()))?;
    let mut report = Report::default();
    // Parsed here only to tell the two kinds of file apart.
    let is_participant = match toml::from_str::<toml::Table>(&text) {
        Ok(table) => table.contains_key("id"),
        Err(e) => {
            report.fail(
                "config",
                format!("{}: not valid TOML: {e}", config.display()),
            );
            return report.finish(config);
        }
    };
    if is_participant {
        say(&format!("{}: a participant's config", config.display()));
        participant(config, &mut report);
    } else {
        say(&format!(
            "{}: a consortium file (the coordinator's)",
            config.display()
        ));
        coordinator(config, &mut report);
    }
    report.finish(config)
}

/// The checks' tally; each line is printed as it is found.
#[derive(Debug, Default)]
struct Report {
    run: usize,
    failed: usize,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl Display) {
        self.run += 1;
        say(&format!("ok    {what}: {detail}"));
    }

    fn warn(&mut self, what: &str, detail: impl Display) {
        say(&format!("warn  {what}: {detail}"));
    }

    fn fail(&mut self, what: &str, error: impl Display) {
        self.run += 1;
        self.failed += 1;
        say(&format!("FAIL  {what}: {error}"));
    }

    fn skip(&mut self, what: &str, why: &str) {
        say(&format!("skip  {what}: not checked ({why})"));
    }

    /// A check's outcome: `ok` with its detail, or `FAIL` with the whole
    /// error chain.
    fn record<T>(
        &mut self,
        what: &str,
        outcome: Result<T>,
        detail: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        match outcome {
            Ok(v) => {
                self.ok(what, detail(&v));
                Some(v)
            }
            Err(e) => {
                self.fail(what, chain(&e));
                None
            }
        }
    }

    fn finish(self, config: &Path) -> Result<()> {
        if self.failed > 0 {
            bail!(
                "{}: {} of {} checks failed",
                config.display(),
                self.failed,
                self.run
            );
        }
        say(&format!(
            "{}: all {} checks passed",
            config.display(),
            self.run
        ));
        Ok(())
    }
}

/// An error and its causes on one line, each cause once: some errors
/// already quote their source in their own message.
fn chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A monitor job in a few words: what it watches, how many counts.
fn monitor_line(spec: &fedcredit_referee::monitor::MonitorSpec) -> String {
    let card = spec.scorecard.as_ref();
    let names: Vec<&str> = card
        .map(|c| c.characteristics.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let bins: usize = card.map_or(0, |c| c.characteristics.iter().map(|c| c.bins.len()).sum());
    format!(
        "monitor: PSI of the score over {} bands and CSI of {} characteristics ({} bins; {}), \
         {} counts per member; model job spec {}",
        spec.bands,
        names.len(),
        bins,
        names.join(", "),
        2 * (spec.bands + bins),
        spec.model_job_spec_hash
            .as_deref()
            .map_or("unknown", |h| &h[..h.len().min(16)])
    )
}

/// n, t, c and the job, as one line.
fn consortium_line(c: &Consortium) -> String {
    let t = &c.protocol.thresholds;
    let kind = match &c.job.kind {
        JobKind::SecureSum { dimension, .. } => format!("secure-sum of {dimension} values"),
        JobKind::LogisticRegression(spec) | JobKind::Scorecard(spec) => format!(
            "{}, {} encoded features",
            c.job.kind.name(),
            spec.schema.encoded_width()
        ),
        JobKind::Monitor(spec) => monitor_line(spec),
    };
    format!(
        "{}: n = {} members, threshold t = {}, colluders c = {}, min cohort {}; job {} ({kind}); trust {}",
        c.path.display(),
        c.roster.len(),
        t.threshold(),
        t.max_colluders(),
        t.min_cohort(),
        c.job.id,
        c.tls.trust_name()
    )
}

/// Warns when a secret key file can be read by others than its owner.
fn key_permissions(report: &mut Report, path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            report.warn(
                "key permissions",
                format!(
                    "{}: mode {mode:04o}: others than its owner can read this secret key (chmod 600)",
                    path.display()
                ),
            );
        }
    }
}

/// Whether a file can be created in `folder` (made and removed at once).
fn writable(folder: &Path) -> Result<()> {
    let probe = folder.join(format!(
        ".fedcredit-check.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("{}: cannot create a file in this folder", folder.display()))?;
    std::fs::remove_file(&probe)
        .with_context(|| format!("{}: cannot remove {}", folder.display(), probe.display()))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn participant(config: &Path, report: &mut Report) {
    let Some(cfg) = report.record(
        "config",
        ParticipantConfig::load(config).map_err(anyhow::Error::from),
        |c| {
            format!(
                "member {} dials {} (consortium {})",
                c.id,
                c.coordinator,
                c.consortium.path.display()
            )
        },
    ) else {
        for what in ["consortium", "key", "tls", "data", "journal", "policy"] {
            report.skip(what, "the config does not load");
        }
        return;
    };
    report.ok("consortium", consortium_line(&cfg.consortium));

    let key = identity_key(
        report,
        &cfg.key_file,
        &format!("`key_file` in {}", config.display()),
        |key| {
            let listed = cfg.consortium.roster.member(cfg.id.as_str())?.key;
            if key.public() != listed {
                bail!(
                    "{}: `key_file` in {}: its public key {} is not the public_key listed for {} in {} ({})",
                    cfg.key_file.display(),
                    config.display(),
                    key.public(),
                    cfg.id,
                    cfg.consortium.path.display(),
                    listed
                );
            }
            Ok(format!(
                "{}: the public key listed for {} in {}",
                cfg.key_file.display(),
                cfg.id,
                cfg.consortium.path.display()
            ))
        },
    );

    if cfg.plaintext {
        report.warn(
            "tls",
            format!(
                "{}: plaintext = true: no TLS to {} (loopback only; never for a deployment)",
                config.display(),
                cfg.coordinator
            ),
        );
    } else if let Some(key) = &key {
        let tls = fedcredit_transport::setup::member(
            &cfg.consortium,
            &cfg.id,
            key,
            cfg.cert_file.as_deref(),
            cfg.tls_key_file.as_deref(),
        );
        let certificate = match &cfg.cert_file {
            Some(path) if ca_trust(&cfg.consortium.tls.trust) => format!(
                "{}: issued by the CA, valid now and not revoked (as the peers will judge it)",
                path.display()
            ),
            Some(path) => format!("{} carries this member's key", path.display()),
            None => "made from the key file at start (no cert_file)".into(),
        };
        report.record("tls", tls.map_err(anyhow::Error::from), |_| {
            format!(
                "{certificate}; trust {} ({})",
                cfg.consortium.tls.trust_name(),
                if ca_trust(&cfg.consortium.tls.trust) {
                    "the coordinator's certificate from the CA, for the host dialled"
                } else {
                    "the coordinator's key from the consortium file"
                }
            )
        });
    } else {
        report.skip("tls", "the identity key does not load");
    }

    match &cfg.consortium.job.kind {
        JobKind::SecureSum {
            dimension,
            clip,
            rounds,
            ..
        } => {
            let input = cfg.input.as_deref().with_context(|| {
                format!(
                    "{}: `input`: a secure-sum job needs the file of values to contribute",
                    config.display()
                )
            });
            // A series: the template must name a file per sum, and the
            // first sum's file is checked (later ones may not exist yet).
            let input = input.and_then(|path| {
                if *rounds > 1 {
                    let series = SeriesInput::open(path, *rounds, *dimension)?;
                    Ok(series.path(0))
                } else {
                    Ok(path.to_owned())
                }
            });
            let loaded = input.and_then(|path| {
                let v = VectorInput::from_file(&path)?;
                let n = v.values().len();
                if n != *dimension {
                    bail!(
                        "{}: {n} values, but the job's dimension is {dimension} (`input` in {})",
                        path.display(),
                        config.display()
                    );
                }
                Ok((path, v))
            });
            if let Some((path, v)) = report.record("input", loaded, |(path, _)| {
                format!("{}: {dimension} values", path.display())
            }) {
                let clipped = v.values().iter().filter(|x| x.abs() > *clip).count();
                if clipped > 0 {
                    report.warn(
                        "input",
                        format!(
                            "{}: {clipped} value(s) beyond ±{clip:e} will be clipped to it (job.clip)",
                            path.display()
                        ),
                    );
                }
            }
        }
        JobKind::LogisticRegression(spec) | JobKind::Scorecard(spec) => {
            let rows = |key: &str, path: Option<&Path>| -> Result<String> {
                let path = path.with_context(|| {
                    format!(
                        "{}: `{key}`: a credit-model job needs the CSV or Parquet file of training rows",
                        config.display()
                    )
                })?;
                // As the participant will: loaded if it fits max_memory_mb, else streamed.
                let data = Rows::open(path, &spec.schema, cfg.max_memory)?;
                let how = match data {
                    Rows::InMemory(_) => "",
                    _ => " (streamed: its matrix exceeds max_memory_mb)",
                };
                Ok(format!(
                    "{}: {} rows checked against the job's schema{how}",
                    path.display(),
                    data.rows()
                ))
            };
            report.record("data", rows("data", cfg.data.as_deref()), String::clone);
            if let Some(test) = cfg.test.as_deref() {
                report.record("test", rows("test", Some(test)), String::clone);
            }
        }
        JobKind::Monitor(spec) => {
            // As the participant will: both files loaded and counted.
            let counted = fedcredit_participant::monitor::MonitorData::load(&cfg, spec)
                .map_err(anyhow::Error::from);
            report.record("applicants", counted, |m| {
                format!(
                    "{} development rows (`data`) and {} new applicants (`applicants`) counted \
                     in the scorecard's bins",
                    m.development_rows(),
                    m.applicant_rows()
                )
            });
        }
    }

    let folder = parent(&cfg.journal);
    report.record("journal", writable(folder), |()| {
        format!("{}: its folder is writable", cfg.journal.display())
    });

    // What the member consents to, and what that means for the file's job.
    let job = &cfg.consortium.job;
    report.ok(
        "policy",
        match &cfg.policy {
            None => format!(
                "none: it takes part in the consortium file's job {} only (`--serve` needs a [policy])",
                job.id
            ),
            Some(p) => {
                let file_job = match p.check(&cfg.consortium) {
                    Ok(()) => format!("the consortium file's job {} is allowed", job.id),
                    Err(r) => format!("the consortium file's job {} is refused: {}", job.id, r.detail),
                };
                format!("kinds {:?}; {file_job}", p.kinds)
            }
        },
    );
}

/// Loads an identity key and checks it with `matches`; warns about loose
/// permissions. `key` names the config key that points at the file.
fn identity_key(
    report: &mut Report,
    path: &Path,
    key: &str,
    matches: impl FnOnce(&IdentityKey) -> Result<String>,
) -> Option<IdentityKey> {
    let loaded = keys::load(path).with_context(|| key.to_owned());
    match loaded {
        Ok(k) => {
            key_permissions(report, path);
            match matches(&k) {
                Ok(detail) => report.ok("key", detail),
                Err(e) => report.fail("key", chain(&e)),
            }
            Some(k)
        }
        Err(e) => {
            report.fail("key", chain(&e));
            None
        }
    }
}

fn coordinator(config: &Path, report: &mut Report) {
    let Some(consortium) = report.record(
        "consortium",
        Consortium::load(config).map_err(anyhow::Error::from),
        consortium_line,
    ) else {
        for what in ["key", "tls", "round log"] {
            report.skip(what, "the consortium file does not load");
        }
        return;
    };

    let key = match consortium.coordinator_key_file.as_deref() {
        None => {
            report.fail(
                "key",
                format!(
                    "{}: `coordinator.key_file`: the coordinator's secret key file, required to run it",
                    config.display()
                ),
            );
            None
        }
        Some(path) => identity_key(
            report,
            path,
            &format!("`coordinator.key_file` in {}", config.display()),
            |key| {
                let listed = consortium.roster.coordinator();
                if &key.public() != listed {
                    bail!(
                        "{}: `coordinator.key_file` in {}: its public key {} is not coordinator.public_key ({listed})",
                        path.display(),
                        config.display(),
                        key.public()
                    );
                }
                Ok(format!(
                    "{}: the key of coordinator.public_key",
                    path.display()
                ))
            },
        ),
    };

    if consortium.tls.plaintext {
        report.warn(
            "tls",
            format!(
                "{}: coordinator.plaintext = true: no TLS on {} (loopback only; never for a deployment)",
                config.display(),
                consortium.listen
            ),
        );
    } else if let Some(key) = &key {
        let certificate = match &consortium.tls.coordinator_cert_file {
            Some(path) if ca_trust(&consortium.tls.trust) => format!(
                "{}: issued by the CA, valid now and not revoked (as the peers will judge it)",
                path.display()
            ),
            Some(path) => format!("{} carries the coordinator's key", path.display()),
            None => "made from the key file at start (no coordinator.cert_file)".into(),
        };
        report.record(
            "tls",
            fedcredit_transport::setup::coordinator(&consortium, key).map_err(anyhow::Error::from),
            |_| {
                format!(
                    "{certificate}; trust {}; accepts the {} members listed; listens on {}",
                    consortium.tls.trust_name(),
                    consortium.roster.len(),
                    consortium.listen
                )
            },
        );
    } else {
        report.skip("tls", "the identity key does not load");
    }

    let log = &consortium.coordinator_log_file;
    report.record("round log", writable(parent(log)), |()| {
        if log.exists() {
            format!(
                "{}: exists; the coordinator will replay it and resume the job",
                log.display()
            )
        } else {
            format!("{}: its folder is writable", log.display())
        }
    });
}

/// Whether certificates are judged by a CA (not pinned to the keys).
fn ca_trust(trust: &fedcredit_referee::consortium::TrustSetting) -> bool {
    matches!(
        trust,
        fedcredit_referee::consortium::TrustSetting::Ca { .. }
    )
}
