//! The participant's config file (`bank-a.toml`). Paths are relative to the
//! file's own folder.
//!
//! ```toml
//! id = "bank-a"
//! key_file = "bank-a.key"
//! coordinator = "https://127.0.0.1:50051"  # TLS is required (see `plaintext`)
//! cert_file = "bank-a.crt"           # its TLS certificate (PEM); pinned trust: made from key_file when absent
//! tls_key_file = "bank-a.tls.key"    # trust = "ca" only: the certificate's private key (PEM)
//! plaintext = false                  # true: an http:// loopback URL, only if consortium.toml says plaintext too
//! consortium = "consortium.toml"     # the operator's file: roster, keys, thresholds, job
//! input = "bank-a-exposure.txt"      # secure-sum jobs: the vector to contribute
//! data = "bank-a-loans.csv"          # credit-model jobs: training rows (CSV with a header)
//! test = "bank-a-holdout.csv"        # credit-model jobs, optional: held-out rows for evaluation
//! applicants = "bank-a-applicants.csv" # monitor jobs: new applicants' rows (CSV, label column optional)
//! journal = "bank-a.journal"         # optional: what this participant signed (default <id>.journal)
//! results = "bank-a-results"         # optional: where it writes model.json and metrics.json (default <id>-results)
//! connect_timeout_secs = 120         # optional: keep retrying the coordinator this long
//! max_memory_mb = 4096               # optional: rows whose f64 matrix exceeds this are streamed (Parquet)
//! metrics_listen = "127.0.0.1:9465"  # optional: serve its own /metrics here (loopback only)
//!
//! [policy]                           # optional: the jobs it consents to (see `policy`)
//! kinds = ["logistic-regression"]
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use fedcredit_proto::WireError;
use fedcredit_proto::roster::ParticipantId;
use fedcredit_referee::consortium::Consortium;
use serde::Deserialize;

use crate::data::MemoryBudget;
use crate::policy::{Policy, RawPolicy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: String,
    key_file: PathBuf,
    coordinator: String,
    consortium: PathBuf,
    input: Option<PathBuf>,
    data: Option<PathBuf>,
    test: Option<PathBuf>,
    applicants: Option<PathBuf>,
    journal: Option<PathBuf>,
    results: Option<PathBuf>,
    connect_timeout_secs: Option<f64>,
    max_memory_mb: Option<u64>,
    cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    #[serde(default)]
    plaintext: bool,
    metrics_listen: Option<String>,
    policy: Option<RawPolicy>,
}

/// A validated participant config.
#[derive(Debug, Clone)]
pub struct ParticipantConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// This participant's id in the consortium.
    pub id: ParticipantId,
    /// Its Ed25519 identity key file.
    pub key_file: PathBuf,
    /// The coordinator's URL (`https://host:port`).
    pub coordinator: String,
    /// This member's TLS certificate; in pinned mode, made from the key
    /// when `None`.
    pub cert_file: Option<PathBuf>,
    /// The certificate's private key (CA mode).
    pub tls_key_file: Option<PathBuf>,
    /// No TLS: allowed by both this file and the consortium's, on loopback.
    pub plaintext: bool,
    /// The consortium file, parsed.
    pub consortium: Consortium,
    /// The input vector file of a secure-sum job.
    pub input: Option<PathBuf>,
    /// The training rows (CSV with a header) of a credit-model job.
    pub data: Option<PathBuf>,
    /// Held-out rows for the pooled evaluation round (optional).
    pub test: Option<PathBuf>,
    /// New applicants' rows (CSV; the label column may be absent) whose
    /// population a monitor job compares with the `data` rows.
    pub applicants: Option<PathBuf>,
    /// This participant's journal of what it signed (default `<id>.journal`).
    pub journal: PathBuf,
    /// How long to keep trying to reach the coordinator.
    pub connect_timeout: Duration,
    /// Where this participant writes the result it helped make, once it has
    /// replayed and checked it (default `<id>-results`).
    pub results: PathBuf,
    /// Memory for the training and test matrices: a Parquet file whose
    /// matrix would exceed what is left of it is streamed every round
    /// instead of loaded (default [`MemoryBudget::DEFAULT_MB`]).
    pub max_memory: MemoryBudget,
    /// Which jobs it takes part in (`[policy]`); `None`: the job of its
    /// consortium file only, and no other.
    pub policy: Option<Policy>,
    /// Where to serve its own `/metrics` (loopback only: the daemon
    /// otherwise only dials out).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl ParticipantConfig {
    /// Reads and validates the file, and the consortium file it names.
    pub fn load(path: &Path) -> Result<Self, WireError> {
        let text = std::fs::read_to_string(path).map_err(|source| WireError::ReadConfig {
            file: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates participant TOML as if read from `path` (its
    /// folder resolves the relative paths; the consortium file it names is
    /// read from there).
    pub fn parse(path: &Path, text: &str) -> Result<Self, WireError> {
        let raw: Raw = toml::from_str(text).map_err(|e| WireError::ParseConfig {
            file: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |key: &str, expected: String| WireError::InvalidConfig {
            file: path.to_owned(),
            key: key.to_owned(),
            expected,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let id = ParticipantId::new(&raw.id).map_err(|e| invalid("id", e.to_string()))?;
        let consortium = Consortium::load(&dir.join(&raw.consortium))?;
        check_transport(&raw, &consortium, &invalid)?;
        if consortium.roster.get(id.as_str()).is_none() {
            return Err(invalid(
                "id",
                format!(
                    "a member of {}, but {id} is not listed there",
                    consortium.path.display()
                ),
            ));
        }
        // `try_from`: a finite number too large for a `Duration` (1e300)
        // is refused here, not a panic in `Duration::from_secs_f64`.
        let secs = raw.connect_timeout_secs.unwrap_or(120.0);
        let connect_timeout = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|_| secs > 0.0)
            .ok_or_else(|| {
                invalid(
                    "connect_timeout_secs",
                    format!("a positive number of seconds a duration can hold, got {secs}"),
                )
            })?;
        let journal = dir.join(
            raw.journal
                .unwrap_or_else(|| PathBuf::from(format!("{id}.journal"))),
        );
        let results = dir.join(
            raw.results
                .unwrap_or_else(|| PathBuf::from(format!("{id}-results"))),
        );
        let metrics_listen = match &raw.metrics_listen {
            None => None,
            Some(text) => {
                let addr = text
                    .parse::<std::net::SocketAddr>()
                    .ok()
                    .filter(|a| a.ip().is_loopback())
                    .ok_or_else(|| {
                        invalid(
                            "metrics_listen",
                            format!(
                                "a loopback socket address like 127.0.0.1:9465 (a member's daemon \
                                 only dials out; its metrics are for a local scraper), got {text:?}"
                            ),
                        )
                    })?;
                Some(addr)
            }
        };
        let policy = match raw.policy {
            None => None,
            Some(p) => Some(
                p.validate()
                    .map_err(|(key, expected)| invalid(key, expected))?,
            ),
        };
        Ok(Self {
            path: path.to_owned(),
            id,
            key_file: dir.join(raw.key_file),
            coordinator: raw.coordinator,
            cert_file: raw.cert_file.map(|p| dir.join(p)),
            tls_key_file: raw.tls_key_file.map(|p| dir.join(p)),
            plaintext: raw.plaintext,
            consortium,
            input: raw.input.map(|p| dir.join(p)),
            data: raw.data.map(|p| dir.join(p)),
            test: raw.test.map(|p| dir.join(p)),
            applicants: raw.applicants.map(|p| dir.join(p)),
            journal,
            results,
            connect_timeout,
            max_memory: raw
                .max_memory_mb
                .map_or_else(MemoryBudget::default, MemoryBudget::from_mb),
            policy,
            metrics_listen,
        })
    }
}

/// TLS is required: an `https://` URL. Plaintext only when this file and
/// the consortium's both say so and the coordinator is on loopback; CA
/// trust needs this member's certificate and key.
fn check_transport(
    raw: &Raw,
    consortium: &Consortium,
    invalid: &dyn Fn(&str, String) -> WireError,
) -> Result<(), WireError> {
    let url = &raw.coordinator;
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .map(|rest| rest.split(['/', '?']).next().unwrap_or(""))
        .filter(|authority| !authority.is_empty())
        .ok_or_else(|| {
            invalid(
                "coordinator",
                format!("a URL like https://coordinator.example:50051, got {url:?}"),
            )
        })?;
    if url.starts_with("https://") {
        if raw.plaintext {
            return Err(invalid(
                "plaintext",
                format!("plaintext = true with an https:// coordinator URL ({url}): remove one"),
            ));
        }
    } else {
        if !raw.plaintext {
            return Err(invalid(
                "coordinator",
                format!(
                    "an https:// URL: connections are TLS ({url} would be plaintext; for a test on \
                     loopback only, set plaintext = true here and in consortium.toml)"
                ),
            ));
        }
        if !consortium.tls.plaintext {
            return Err(invalid(
                "plaintext",
                format!(
                    "allowed only when the consortium file allows it too, and {} does not \
                     ([coordinator] plaintext = true, on a loopback address)",
                    consortium.path.display()
                ),
            ));
        }
        let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let hostname = hostname.trim_start_matches('[').trim_end_matches(']');
        let loopback = hostname == "localhost"
            || hostname
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(invalid(
                "coordinator",
                format!(
                    "an https:// URL: plaintext is allowed only to a loopback address, not {hostname}"
                ),
            ));
        }
    }
    if let fedcredit_referee::consortium::TrustSetting::Ca { .. } = consortium.tls.trust {
        for (key, value) in [
            ("cert_file", &raw.cert_file),
            ("tls_key_file", &raw.tls_key_file),
        ] {
            if value.is_none() {
                return Err(invalid(
                    key,
                    format!(
                        "a PEM file: {} sets trust = \"ca\", so this member presents a certificate \
                         issued by the CA",
                        consortium.path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_crypto::identity::IdentityKey;

    /// A folder with a three-member consortium file beside `bank-a.toml`.
    fn folder() -> tempfile::TempDir {
        let key = |seed: u8| {
            IdentityKey::from_secret_bytes(&[seed; 32])
                .public()
                .to_hex()
        };
        let mut text = format!(
            "[coordinator]\nlisten = \"127.0.0.1:50051\"\npublic_key = \"{}\"\n\
             [job]\nid = \"j\"\nkind = \"secure-sum\"\ndimension = 2\nfrac_bits = 16\nclip = 1e6\n",
            key(9)
        );
        for (id, seed) in [("bank-a", 1), ("bank-b", 2), ("bank-c", 3)] {
            text.push_str(&format!(
                "[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
                key(seed)
            ));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("consortium.toml"), text).expect("write");
        dir
    }

    fn parse(dir: &Path, extra: &str) -> Result<ParticipantConfig, WireError> {
        parse_url(dir, "https://127.0.0.1:50051", extra)
    }

    fn parse_url(dir: &Path, url: &str, extra: &str) -> Result<ParticipantConfig, WireError> {
        let text = format!(
            "id = \"bank-a\"\nkey_file = \"bank-a.key\"\ncoordinator = \"{url}\"\n\
             consortium = \"consortium.toml\"\n{extra}"
        );
        ParticipantConfig::parse(&dir.join("bank-a.toml"), &text)
    }

    /// Lets the consortium file allow plaintext (its coordinator section).
    fn allow_plaintext(dir: &Path) {
        let path = dir.join("consortium.toml");
        let text = std::fs::read_to_string(&path).expect("read");
        let text = text.replacen("[coordinator]\n", "[coordinator]\nplaintext = true\n", 1);
        std::fs::write(&path, text).expect("write");
    }

    #[test]
    fn plaintext_needs_both_files_to_say_so_and_a_loopback_address() {
        let dir = folder();
        let url = "http://127.0.0.1:50051";
        let e = parse_url(dir.path(), url, "").expect_err("no plaintext flag");
        assert!(e.to_string().contains("an https:// URL"), "{e}");
        let e = parse_url(dir.path(), url, "plaintext = true\n").expect_err("consortium silent");
        assert!(
            e.to_string()
                .contains("allowed only when the consortium file"),
            "{e}"
        );
        allow_plaintext(dir.path());
        let cfg = parse_url(dir.path(), url, "plaintext = true\n").expect("both agree");
        assert!(cfg.plaintext);
        parse_url(dir.path(), "http://localhost:50051", "plaintext = true\n").expect("localhost");
        let e = parse_url(dir.path(), "http://10.0.0.5:50051", "plaintext = true\n")
            .expect_err("not loopback");
        assert!(e.to_string().contains("not 10.0.0.5"), "{e}");
        let e = parse_url(dir.path(), "https://127.0.0.1:50051", "plaintext = true\n")
            .expect_err("https and plaintext");
        assert!(e.to_string().contains("remove one"), "{e}");
        let e = parse_url(dir.path(), "ftp://x", "").expect_err("scheme");
        assert!(e.to_string().contains("a URL like https://"), "{e}");
    }

    #[test]
    fn ca_trust_needs_a_certificate_and_its_key() {
        let dir = folder();
        let path = dir.path().join("consortium.toml");
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(
            &path,
            format!("{text}[tls]\ntrust = \"ca\"\nca_file = \"ca.pem\"\n"),
        )
        .expect("write");
        let e = parse(dir.path(), "").expect_err("no certificate");
        assert!(e.to_string().contains("`cert_file`"), "{e}");
        let e = parse(dir.path(), "cert_file = \"a.crt\"\n").expect_err("no key");
        assert!(e.to_string().contains("`tls_key_file`"), "{e}");
        let cfg = parse(
            dir.path(),
            "cert_file = \"a.crt\"\ntls_key_file = \"a.key.pem\"\n",
        )
        .expect("valid");
        assert_eq!(cfg.cert_file, Some(dir.path().join("a.crt")));
    }

    #[test]
    fn parses_and_resolves_paths_against_the_folder() {
        let dir = folder();
        let cfg = parse(dir.path(), "connect_timeout_secs = 2.5\n").expect("valid");
        assert_eq!(cfg.connect_timeout, Duration::from_millis(2500));
        assert_eq!(cfg.key_file, dir.path().join("bank-a.key"));
        assert_eq!(cfg.journal, dir.path().join("bank-a.journal"));
        assert_eq!(
            cfg.max_memory,
            MemoryBudget::from_mb(MemoryBudget::DEFAULT_MB)
        );
        let cfg = parse(dir.path(), "max_memory_mb = 1500\n").expect("valid");
        assert_eq!(cfg.max_memory.bytes(), 1_500_000_000);
        let e = parse(dir.path(), "max_memory_mb = -1\n").expect_err("negative");
        assert!(e.to_string().contains("max_memory_mb"), "{e}");
    }

    /// Regression (found writing the participant_toml fuzz target): a
    /// finite timeout too large for a `Duration` panicked in
    /// `Duration::from_secs_f64`.
    #[test]
    fn a_timeout_no_duration_can_hold_is_refused_by_name() {
        let dir = folder();
        for bad in ["1e300", "1.8446744073709552e19", "0", "-1", "nan", "inf"] {
            let err = parse(dir.path(), &format!("connect_timeout_secs = {bad}\n")).expect_err(bad);
            let msg = err.to_string();
            assert!(
                msg.contains("bank-a.toml") && msg.contains("`connect_timeout_secs`"),
                "{bad}: {msg}"
            );
        }
    }
}
