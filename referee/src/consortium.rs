//! The consortium file (`consortium.toml`): the coordinator's address and
//! key, the protocol settings, the job, and every member with its public key.
//! The operator hands the same file to every participant and auditor: it is
//! the trust anchor that makes the protocol actively secure.
//!
//! ```toml
//! [coordinator]
//! listen = "127.0.0.1:50051"
//! public_key = "3b6a27bc…"          # hex Ed25519 key; `fedcredit keygen` prints it
//! key_file = "coordinator.key"       # operator only: the matching secret key
//! log_file = "rounds.log"            # operator only: the round log (default <job id>.rounds.log)
//! cert_file = "coordinator.crt"      # operator only: its TLS certificate (PEM); pinned: made from key_file when absent
//! tls_key_file = "coordinator.tls.key" # operator only, trust = "ca": the certificate's private key (PEM)
//! plaintext = false                  # true: no TLS, only on a loopback address, and every participant says so too
//! http_listen = "127.0.0.1:9464"     # operator only, optional: read-only /metrics, /api/jobs and the dashboard
//! state_dir = "jobs"                 # operator only, optional: run as a service hosting many jobs (see below)
//! admin_listen = "127.0.0.1:50052"   # with state_dir: the job API for `fedcredit job` (loopback only)
//!
//! [tls]                              # optional
//! trust = "pinned"                   # pinned (default): certificates carry the keys below | ca: a PKI's
//! ca_file = "consortium-ca.pem"      # trust = "ca": the CA certificates (PEM) that issue every certificate
//! crl_files = ["consortium-ca.crl"]  # trust = "ca", optional: revocation lists (PEM), one per issuing CA
//!
//! [protocol]                         # all optional
//! max_colluders = 1                  # c: members that may collude with the coordinator; default ⌊n/3⌋, below n
//! threshold = 4                      # t, with (n + c)/2 < t <= n; default ⌊2n/3⌋ + 1
//! min_cohort = 3
//! graph = "complete"                 # complete (default) | auto | harary: who masks with whom (SecAgg+)
//! # expected_dropout = 0.05          # graph = "auto": δ for the SecAgg+ analysis (2^-40 privacy, 2^-20 correctness)
//! # neighbours = 4                   # graph = "harary": k, even, 2 <= k < t
//! # share_threshold = 3              # graph = "harary": shares needed of a member's k + 1, in 2..=k + 1
//! setup = "round"                   # round (default): keys and shares every attempt | epoch: once per `slots` rounds
//! # slots = 16                       # setup = "epoch": rounds per setup, 1..=256 (complete graph only)
//! join_deadline_secs = 60
//! phase_deadline_secs = 30
//! max_attempts = 2
//!
//! [job]
//! id = "exposure-2026q4"
//! cohort = "fixed"                   # fixed (default) | shrink | open: see CohortPolicy
//! require_all_members = false        # true: fail (resumably) rather than publish without every member
//! kind = "secure-sum"
//! dimension = 3
//! frac_bits = 16
//! clip = 1e9
//! # rounds = 12                      # a series of sums, one per round, each of fresh inputs (default 1)
//!
//! [[participants]]
//! id = "bank-a"
//! public_key = "…"
//! ```
//!
//! Why t > (n + c)/2: a coordinator colluding with c members could otherwise
//! show two groups of honest members two different survivor lists, have
//! both confirmed (the colluders sign both), and collect the self-mask share
//! of an honest member from one group and its key share from the other —
//! unmasking its input. See [`Thresholds`].
//!
//! The graph (`fedcredit_crypto::secagg::CommGraph`) is part of the
//! thresholds: every member derives it from this same file, checks that each
//! announcement carries it, and derives each attempt's neighbourhoods from
//! the session id. `auto` takes `(k, t)` from
//! [`PlusParams::choose`](fedcredit_crypto::secagg::plus::PlusParams::choose)
//! for this n and c (no grinding charged), and stays complete when the
//! analysis says so or its k is not below t (a U1 of t members must hold a
//! Harary graph of k neighbours).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedcredit_crypto::fixed_point::FixedPoint;
use fedcredit_crypto::identity::IdentityPublic;
use fedcredit_crypto::secagg::epoch::Slots;
use fedcredit_crypto::secagg::plus::{GraphChoice, PlusParams};
use fedcredit_crypto::secagg::{CommGraph, SecAggError, Thresholds};
use fedcredit_model::job::ModelJobSpec;

use crate::monitor::MonitorSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use fedcredit_proto::WireError;
use fedcredit_proto::roster::{ParticipantId, Roster};

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsortium {
    coordinator: RawCoordinator,
    #[serde(default)]
    protocol: RawProtocol,
    job: JobSpec,
    participants: Vec<RawParticipant>,
    #[serde(default)]
    tls: RawTls,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    trust: Option<String>,
    ca_file: Option<PathBuf>,
    crl_files: Option<Vec<PathBuf>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoordinator {
    listen: String,
    http_listen: Option<String>,
    public_key: String,
    key_file: Option<PathBuf>,
    log_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    admin_listen: Option<String>,
    cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    #[serde(default)]
    plaintext: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtocol {
    max_colluders: Option<usize>,
    threshold: Option<usize>,
    min_cohort: Option<usize>,
    graph: Option<String>,
    expected_dropout: Option<f64>,
    neighbours: Option<usize>,
    share_threshold: Option<usize>,
    setup: Option<String>,
    slots: Option<u32>,
    join_deadline_secs: Option<f64>,
    phase_deadline_secs: Option<f64>,
    max_attempts: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParticipant {
    id: String,
    public_key: String,
}

fn one_round() -> u32 {
    1
}

// A single sum's spec (and so its hash) reads as it did before series.
fn is_one_round(rounds: &u32) -> bool {
    *rounds == 1
}

/// The most sums a secure-sum series may have.
pub const MAX_SUM_ROUNDS: u32 = 10_000;

/// What a job computes. Its canonical JSON is hashed into every session id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum JobKind {
    /// Each participant contributes a vector from a file; only the sum is published.
    SecureSum {
        /// Length of every participant's vector.
        dimension: usize,
        /// Fixed-point fractional bits.
        frac_bits: u32,
        /// Inputs are clipped to ±clip.
        clip: f64,
        /// How many sums: a series of `rounds` sums, one per round, each of
        /// every member's input for that round (default 1). Each sum is its
        /// own task, so no input is ever summed twice.
        #[serde(default = "one_round", skip_serializing_if = "is_one_round")]
        rounds: u32,
    },
    /// A credit model: federated logistic regression on the members' rows.
    LogisticRegression(ModelJobSpec),
    /// A points scorecard: bins from securely summed per-label histograms,
    /// then logistic regression on WOE (the spec's `[job.scorecard]`).
    Scorecard(ModelJobSpec),
    /// Population stability of a scorecard (PSI, CSI) between the members'
    /// development rows and new applicants; see [`crate::monitor`].
    Monitor(MonitorSpec),
}

impl JobKind {
    /// The `kind` as written in the consortium file.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::SecureSum { .. } => "secure-sum",
            JobKind::LogisticRegression(_) => "logistic-regression",
            JobKind::Scorecard(_) => "scorecard",
            JobKind::Monitor(_) => "monitor",
        }
    }

    /// How many sums a secure-sum job publishes (a series' `rounds`; 1 for
    /// any other kind, whose results are not sums).
    pub fn sums(&self) -> u32 {
        match self {
            JobKind::SecureSum { rounds, .. } => *rounds,
            JobKind::LogisticRegression(_) | JobKind::Scorecard(_) | JobKind::Monitor(_) => 1,
        }
    }

    /// The model spec of a credit-model or scorecard job.
    pub fn model_spec(&self) -> Option<&ModelJobSpec> {
        match self {
            JobKind::LogisticRegression(spec) | JobKind::Scorecard(spec) => Some(spec),
            JobKind::SecureSum { .. } | JobKind::Monitor(_) => None,
        }
    }
}

/// How the set of contributors may change from one task of a job to the
/// next. Each choice says what the coordinator may learn from the
/// difference of two published sums over different member sets; participants
/// enforce it (they refuse to confirm a survivor list that breaks it), so a
/// dishonest coordinator cannot choose otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CohortPolicy {
    /// Every round's contributors are exactly the first round's. A member
    /// that drops stops the job (it can be resumed once it is back): no two
    /// published sums are over different sets, so no difference isolates a
    /// member. The default.
    #[default]
    Fixed,
    /// Contributors may only shrink: a member that drops never returns. The
    /// coordinator learns, from consecutive rounds, the dropped members'
    /// terms for *different* tasks (e.g. gradients at two nearby models).
    Shrink,
    /// Any set of at least the threshold, round by round. The coordinator
    /// learns the same as with `shrink`, for every member that drops out or
    /// comes back.
    Open,
}

impl CohortPolicy {
    /// The kebab-case name used in the consortium file.
    pub fn name(self) -> &'static str {
        match self {
            CohortPolicy::Fixed => "fixed",
            CohortPolicy::Shrink => "shrink",
            CohortPolicy::Open => "open",
        }
    }
}

/// A job: its id and what it computes. (Unknown keys are caught by
/// [`JobKind`]; serde cannot deny them on a struct that flattens.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's id, bound into every message.
    pub id: String,
    /// How contributors may change between the job's tasks.
    #[serde(default)]
    pub cohort: CohortPolicy,
    /// Every round must include every member: the job fails (and can be
    /// resumed) rather than publish a result without someone. Left out of
    /// the spec's canonical JSON when false, so older specs keep their hash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_all_members: bool,
    /// What it computes.
    #[serde(flatten)]
    pub kind: JobKind,
}

impl JobSpec {
    /// SHA-256 of the job's canonical JSON.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_json()).into()
    }
}

/// Protocol settings, validated.
#[derive(Clone, Copy, Debug)]
pub struct ProtocolSettings {
    /// Threshold, colluder bound and minimum cohort (validated when made).
    pub thresholds: Thresholds,
    /// How long the coordinator waits for participants to arrive.
    pub join_deadline: Duration,
    /// How long each phase waits before going on with those who answered.
    pub phase_deadline: Duration,
    /// How many times a round is attempted (each with fresh keys).
    pub max_attempts: u32,
    /// `None`: keys are agreed and secrets shared in every attempt (the
    /// per-round protocol). `Some(slots)`: once per epoch of that many
    /// rounds (`setup = "epoch"`; `fedcredit_crypto::secagg::epoch`).
    pub epoch_slots: Option<Slots>,
}

impl ProtocolSettings {
    /// The graph as announcements and the round log carry it:
    /// `(neighbours, share_threshold)`, `(0, 0)` for the complete graph.
    pub fn graph_fields(&self) -> (u32, u32) {
        match self.thresholds.graph() {
            CommGraph::Complete => (0, 0),
            CommGraph::Harary {
                neighbours,
                share_threshold,
            } => (neighbours as u32, share_threshold as u32),
        }
    }

    /// The setup as announcements and the round log carry it: the slots of
    /// an epoch, 0 for the per-round protocol.
    pub fn epoch_slots_field(&self) -> u32 {
        self.epoch_slots.map_or(0, Slots::get)
    }
}

/// How parties recognise each other's TLS certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustSetting {
    /// Certificates carry the identity keys of this file (no CA).
    Pinned,
    /// Certificates are issued by the CAs in this PEM file and name the member.
    Ca {
        /// The CA certificates, resolved against the file's folder.
        ca_file: PathBuf,
        /// Certificate revocation lists (PEM), resolved; when there are
        /// any, a certificate is refused if it is revoked or if no list
        /// covers its issuer.
        crl_files: Vec<PathBuf>,
    },
}

/// Transport security settings, validated. The default is the file's
/// default: pinned certificates made from the keys, no plaintext.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The trust mode.
    pub trust: TrustSetting,
    /// The coordinator's certificate (operator only), resolved.
    pub coordinator_cert_file: Option<PathBuf>,
    /// The coordinator certificate's private key in CA mode (operator only).
    pub coordinator_tls_key_file: Option<PathBuf>,
    /// No TLS at all: only on a loopback address, and only if every
    /// participant's config says so too.
    pub plaintext: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            trust: TrustSetting::Pinned,
            coordinator_cert_file: None,
            coordinator_tls_key_file: None,
            plaintext: false,
        }
    }
}

impl TlsSettings {
    /// The trust mode's name as written in the file (`pinned`, `ca`), or
    /// `plaintext`.
    pub fn trust_name(&self) -> &'static str {
        match (&self.trust, self.plaintext) {
            (_, true) => "plaintext",
            (TrustSetting::Pinned, false) => "pinned",
            (TrustSetting::Ca { .. }, false) => "ca",
        }
    }
}

/// The consortium file, validated.
#[derive(Clone, Debug)]
pub struct Consortium {
    /// The file it was read from.
    pub path: PathBuf,
    /// The coordinator's listen address.
    pub listen: SocketAddr,
    /// Where the coordinator serves its read-only HTTP endpoints
    /// (`/metrics` for Prometheus, `/api/jobs`), if anywhere.
    pub http_listen: Option<SocketAddr>,
    /// The coordinator's identity key file (operator only; participants ignore it),
    /// resolved against the file's folder.
    pub coordinator_key_file: Option<PathBuf>,
    /// The round log (operator only), resolved against the file's folder;
    /// default `<job id>.rounds.log` beside the file.
    pub coordinator_log_file: PathBuf,
    /// Service mode (operator only): the folder holding every submitted
    /// job (its spec, round log and results), resolved against the file's
    /// folder. `None`: the coordinator runs the file's `[job]` and exits.
    pub state_dir: Option<PathBuf>,
    /// Where the service takes `fedcredit job` commands (loopback only:
    /// the commands are signed, but the answers travel in the clear).
    pub admin_listen: Option<SocketAddr>,
    /// The members and the coordinator key.
    pub roster: Roster,
    /// Protocol settings.
    pub protocol: ProtocolSettings,
    /// The job.
    pub job: JobSpec,
    /// Transport security.
    pub tls: TlsSettings,
}

impl Consortium {
    /// Reads and validates a consortium file.
    pub fn load(path: &Path) -> Result<Self, WireError> {
        let text = std::fs::read_to_string(path).map_err(|source| WireError::ReadConfig {
            file: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates consortium TOML; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, WireError> {
        let raw: RawConsortium = toml::from_str(text).map_err(|e| WireError::ParseConfig {
            file: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |key: String, expected: String| WireError::InvalidConfig {
            file: path.to_owned(),
            key,
            expected,
        };
        let listen: SocketAddr = raw.coordinator.listen.parse().map_err(|_| {
            invalid(
                "coordinator.listen".into(),
                format!(
                    "a socket address like 127.0.0.1:50051, got {:?}",
                    raw.coordinator.listen
                ),
            )
        })?;
        let http_listen = match &raw.coordinator.http_listen {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "coordinator.http_listen".into(),
                    format!("a socket address like 127.0.0.1:9464, got {text:?}"),
                )
            })?),
        };
        let admin_listen = match &raw.coordinator.admin_listen {
            None => None,
            Some(text) => {
                let addr = text.parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        "coordinator.admin_listen".into(),
                        format!("a loopback socket address like 127.0.0.1:50052, got {text:?}"),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(invalid(
                        "coordinator.admin_listen".into(),
                        format!(
                            "a loopback address (127.0.0.1, ::1): job commands are signed but their \
                             answers are not encrypted; {addr} is reachable from other hosts"
                        ),
                    ));
                }
                Some(addr)
            }
        };
        if admin_listen.is_some() && raw.coordinator.state_dir.is_none() {
            return Err(invalid(
                "coordinator.admin_listen".into(),
                "coordinator.state_dir as well: the job API belongs to the service".into(),
            ));
        }
        let coordinator = IdentityPublic::from_hex(&raw.coordinator.public_key).map_err(|e| {
            invalid(
                "coordinator.public_key".into(),
                format!("a 64-hex-digit Ed25519 public key ({e})"),
            )
        })?;
        let mut members = Vec::with_capacity(raw.participants.len());
        for (i, p) in raw.participants.iter().enumerate() {
            let id = ParticipantId::new(&p.id)
                .map_err(|e| invalid(format!("participants[{i}].id"), e.to_string()))?;
            let key = IdentityPublic::from_hex(&p.public_key).map_err(|e| {
                invalid(
                    format!("participants[{i}].public_key"),
                    format!("a 64-hex-digit Ed25519 public key for {id} ({e})"),
                )
            })?;
            members.push((id, key));
        }
        let n = members.len();
        let roster = Roster::new(members, coordinator).map_err(|e| {
            // The key is named once, by `invalid`.
            let problem = match e {
                WireError::Field { problem, .. } => problem,
                other => other.to_string(),
            };
            invalid("participants".into(), problem)
        })?;

        let p = raw.protocol;
        let min_cohort = p.min_cohort.unwrap_or(3);
        if min_cohort < 3 {
            return Err(invalid(
                "protocol.min_cohort".into(),
                format!(
                    "at least 3 (with two survivors each learns the other's input), got {min_cohort}"
                ),
            ));
        }
        if n < min_cohort {
            return Err(invalid(
                "participants".into(),
                format!("at least min_cohort = {min_cohort} participants, got {n}"),
            ));
        }
        let max_colluders = p
            .max_colluders
            .unwrap_or_else(|| Thresholds::default_colluders(n));
        let threshold = p
            .threshold
            .unwrap_or_else(|| Thresholds::default_threshold(n, max_colluders));
        let thresholds = Thresholds::new(n, threshold, max_colluders, min_cohort).map_err(|e| {
            let key = match e {
                SecAggError::TooManyColluders { .. } => "protocol.max_colluders",
                SecAggError::MinCohortOutOfRange { .. } => "protocol.min_cohort",
                _ if p.threshold.is_none() => "protocol.max_colluders",
                _ => "protocol.threshold",
            };
            let default = if p.threshold.is_none() {
                " (the default threshold for this c)"
            } else {
                ""
            };
            invalid(key.into(), format!("{e}{default}"))
        })?;
        let thresholds = graph(&p, n, thresholds).map_err(|(k, m)| invalid(k.into(), m))?;
        let secs = |key: &str, v: Option<f64>, default: f64| -> Result<Duration, WireError> {
            let v = v.unwrap_or(default);
            if !(v.is_finite() && v > 0.0 && v < 86_400.0 * 365.0) {
                return Err(invalid(
                    format!("protocol.{key}"),
                    format!("a positive number of seconds, got {v}"),
                ));
            }
            Ok(Duration::from_secs_f64(v))
        };
        let protocol = ProtocolSettings {
            thresholds,
            join_deadline: secs("join_deadline_secs", p.join_deadline_secs, 60.0)?,
            phase_deadline: secs("phase_deadline_secs", p.phase_deadline_secs, 30.0)?,
            max_attempts: match p.max_attempts.unwrap_or(2) {
                0 => return Err(invalid("protocol.max_attempts".into(), "at least 1".into())),
                a => a,
            },
            epoch_slots: setup(&p, &thresholds, n).map_err(|(key, e)| invalid(key.into(), e))?,
        };

        let dir = path.parent().unwrap_or(Path::new("."));
        let job = raw.job.resolve_files(dir, path)?;
        validate_job(&job, n).map_err(|(key, expected)| invalid(key, expected))?;
        let coordinator_key_file = raw.coordinator.key_file.map(|k| dir.join(k));
        let coordinator_log_file = dir.join(
            raw.coordinator
                .log_file
                .unwrap_or_else(|| PathBuf::from(format!("{}.rounds.log", job.id))),
        );
        let crl_files = raw.tls.crl_files;
        let trust = match (raw.tls.trust.as_deref(), raw.tls.ca_file) {
            (None | Some("pinned"), None) if crl_files.is_some() => {
                return Err(invalid(
                    "tls.crl_files".into(),
                    "revocation lists need trust = \"ca\" (pinned keys are revoked by removing them from this file)".into(),
                ));
            }
            (None | Some("pinned"), None) => TrustSetting::Pinned,
            (Some("ca"), Some(ca)) => TrustSetting::Ca {
                ca_file: dir.join(ca),
                crl_files: crl_files
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| dir.join(f))
                    .collect(),
            },
            (Some("ca"), None) => {
                return Err(invalid(
                    "tls.ca_file".into(),
                    "the CA certificates (PEM) that issue every party's certificate, with trust = \"ca\"".into(),
                ));
            }
            (None | Some("pinned"), Some(_)) => {
                return Err(invalid(
                    "tls.ca_file".into(),
                    "no ca_file with pinned certificates (set trust = \"ca\" to use a CA)".into(),
                ));
            }
            (Some(other), _) => {
                return Err(invalid(
                    "tls.trust".into(),
                    format!("\"pinned\" or \"ca\", got {other:?}"),
                ));
            }
        };
        if raw.coordinator.plaintext {
            if !listen.ip().is_loopback() {
                return Err(invalid(
                    "coordinator.plaintext".into(),
                    format!(
                        "plaintext only on a loopback address (127.0.0.1, ::1); {listen} is reachable \
                         from other hosts: remove plaintext to use TLS"
                    ),
                ));
            }
            if trust != TrustSetting::Pinned {
                return Err(invalid(
                    "coordinator.plaintext".into(),
                    "plaintext or trust = \"ca\", not both".into(),
                ));
            }
        }
        let tls = TlsSettings {
            trust,
            coordinator_cert_file: raw.coordinator.cert_file.map(|f| dir.join(f)),
            coordinator_tls_key_file: raw.coordinator.tls_key_file.map(|f| dir.join(f)),
            plaintext: raw.coordinator.plaintext,
        };
        let state_dir = raw.coordinator.state_dir.map(|d| dir.join(d));
        Ok(Self {
            path: path.to_owned(),
            listen,
            http_listen,
            state_dir,
            admin_listen,
            coordinator_key_file,
            coordinator_log_file,
            roster,
            protocol,
            job,
            tls,
        })
    }
}

/// Checks a job against a consortium of `n` members: its id, and what its
/// kind needs (a secure sum's dimension and fixed point, a model's spec).
/// The error is the offending key and what was expected.
/// The most an epoch's setup may relay to one member (every dealer's signed
/// `EpochShares`): what a participant accepts in one reply.
pub const MAX_EPOCH_RELAY_BYTES: usize = 1 << 30;

/// An upper bound on the bytes an epoch's setup relays to one member of `n`
/// with `slots` slots: n dealers' signed `EpochShares`, each with, per
/// recipient and slot, a 32-byte commitment and a share (≤ 128 bytes with
/// framing), per recipient its id, nonce and tag (≤ 512), and per dealer its
/// seed commitments and signed envelope. It grows as n²·slots: the
/// coordinator sizes its replies by it, and the file is refused beyond
/// [`MAX_EPOCH_RELAY_BYTES`].
pub fn epoch_relay_bytes(n: usize, slots: u32) -> usize {
    let slots = slots as usize;
    let dealer = n
        .saturating_mul(slots.saturating_mul(128).saturating_add(512))
        .saturating_add(slots.saturating_mul(64))
        .saturating_add(4096);
    n.saturating_mul(dealer)
}

/// The `[protocol]` setup choice: `round` (default) or `epoch` with
/// `slots` rounds per setup (default 16), on the complete graph only.
fn setup(
    p: &RawProtocol,
    thresholds: &Thresholds,
    n: usize,
) -> Result<Option<Slots>, (&'static str, String)> {
    match p.setup.as_deref().unwrap_or("round") {
        "round" => match p.slots {
            Some(_) => Err(("protocol.slots", "only with setup = \"epoch\"".to_string())),
            None => Ok(None),
        },
        "epoch" => {
            if thresholds.graph() != CommGraph::Complete {
                return Err((
                    "protocol.setup",
                    "setup = \"epoch\" runs on the complete graph only; drop `graph` (or set graph = \"complete\")".to_string(),
                ));
            }
            let slots =
                Slots::new(p.slots.unwrap_or(16)).map_err(|e| ("protocol.slots", e.to_string()))?;
            let relay = epoch_relay_bytes(n, slots.get());
            if relay > MAX_EPOCH_RELAY_BYTES {
                return Err((
                    "protocol.slots",
                    format!(
                        "fewer slots for {n} members: the setup relays every member's shares of \
                         every slot to each member, up to {} MiB with {} slots (at most {} MiB)",
                        relay >> 20,
                        slots.get(),
                        MAX_EPOCH_RELAY_BYTES >> 20
                    ),
                ));
            }
            Ok(Some(slots))
        }
        other => Err((
            "protocol.setup",
            format!("\"round\" or \"epoch\", got {other:?}"),
        )),
    }
}

/// Adds the `[protocol]` graph choice to `thresholds` (complete by default),
/// or says which key is wrong and why.
fn graph(
    p: &RawProtocol,
    n: usize,
    thresholds: Thresholds,
) -> Result<Thresholds, (&'static str, String)> {
    let choice =
        p.graph
            .as_deref()
            .unwrap_or(if p.neighbours.is_some() || p.share_threshold.is_some() {
                "harary"
            } else {
                "complete"
            });
    if choice != "auto" && p.expected_dropout.is_some() {
        return Err((
            "protocol.expected_dropout",
            format!("only with graph = \"auto\", got graph = {choice:?}"),
        ));
    }
    if choice != "harary" {
        for (key, v) in [
            ("protocol.neighbours", p.neighbours),
            ("protocol.share_threshold", p.share_threshold),
        ] {
            if v.is_some() {
                return Err((
                    key,
                    format!("only with graph = \"harary\", got graph = {choice:?}"),
                ));
            }
        }
    }
    let t = thresholds.threshold();
    match choice {
        "complete" => Ok(thresholds),
        "auto" => {
            let params = PlusParams {
                members: n,
                max_colluders: thresholds.max_colluders(),
                dropout: p.expected_dropout.unwrap_or(0.05),
                security_bits: 40,
                correctness_bits: 20,
                grinding_bits: 0,
            };
            match params
                .choose()
                .map_err(|e| ("protocol.expected_dropout", e.to_string()))?
            {
                GraphChoice::Sparse(b) if b.neighbours < t => thresholds
                    .with_harary(n, b.neighbours, b.threshold)
                    .map_err(|e| ("protocol.graph", e.to_string())),
                GraphChoice::Sparse(_) | GraphChoice::Complete => Ok(thresholds),
            }
        }
        "harary" => {
            let k = p.neighbours.ok_or((
                "protocol.neighbours",
                "needed with graph = \"harary\"".to_string(),
            ))?;
            let share_threshold = p.share_threshold.ok_or((
                "protocol.share_threshold",
                "needed with graph = \"harary\"".to_string(),
            ))?;
            if k >= t {
                return Err((
                    "protocol.neighbours",
                    format!(
                        "k = {k} must be below the threshold t = {t}: a U1 of t members must hold a Harary graph of k neighbours"
                    ),
                ));
            }
            thresholds.with_harary(n, k, share_threshold).map_err(|e| {
                let key = if k < 2 || !k.is_multiple_of(2) {
                    "protocol.neighbours"
                } else {
                    "protocol.share_threshold"
                };
                (key, e.to_string())
            })
        }
        other => Err((
            "protocol.graph",
            format!("\"complete\", \"auto\" or \"harary\", got {other:?}"),
        )),
    }
}

fn validate_job(job: &JobSpec, n: usize) -> Result<(), (String, String)> {
    if job.id.is_empty() || job.id.len() > 128 {
        return Err((
            "job.id".into(),
            "a non-empty id of at most 128 characters".into(),
        ));
    }
    match &job.kind {
        JobKind::SecureSum {
            dimension,
            frac_bits,
            clip,
            rounds,
        } => {
            if *dimension == 0 || *dimension > 50_000_000 {
                return Err((
                    "job.dimension".into(),
                    format!("1 to 50,000,000 values, got {dimension}"),
                ));
            }
            if *rounds == 0 || *rounds > MAX_SUM_ROUNDS {
                return Err((
                    "job.rounds".into(),
                    format!("1 to {MAX_SUM_ROUNDS} sums, got {rounds}"),
                ));
            }
            let fp = FixedPoint::new(*frac_bits, *clip)
                .map_err(|e| ("job.frac_bits / job.clip".to_owned(), e.to_string()))?;
            fp.check_sum_fits(n)
                .map_err(|e| ("job.frac_bits / job.clip".to_owned(), e.to_string()))?;
        }
        JobKind::LogisticRegression(spec) => {
            spec.validate()
                .map_err(|e| ("job".to_owned(), e.to_string()))?;
            if spec.scorecard.is_some() {
                return Err((
                    "job.scorecard".into(),
                    "kind = \"scorecard\" for a [job.scorecard] table".into(),
                ));
            }
        }
        JobKind::Scorecard(spec) => {
            if spec.scorecard.is_none() {
                return Err((
                    "job.scorecard".into(),
                    "a [job.scorecard] table with the numeric features' bounds".into(),
                ));
            }
            spec.validate()
                .map_err(|e| ("job".to_owned(), e.to_string()))?;
        }
        JobKind::Monitor(spec) => {
            spec.layout().map_err(|e| ("job.model".to_owned(), e))?;
        }
    }
    Ok(())
}

/// A job spec file: a `[job]` table exactly as a consortium file holds it
/// (what `fedcredit job submit` sends).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    job: JobSpec,
}

impl JobSpec {
    /// Parses a job spec file's text (`path` only names it in errors). The
    /// spec is checked against a consortium by [`Consortium::with_job`].
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, WireError> {
        toml::from_str::<SpecFile>(text)
            .map(|f| f.job)
            .map_err(|e| WireError::ParseConfig {
                file: path.to_owned(),
                message: e.to_string(),
            })
    }

    /// Reads a job spec file, reading the files it names (a monitor job's
    /// `model`, relative to the file's folder) into the spec.
    pub fn load(path: &Path) -> Result<Self, WireError> {
        let text = std::fs::read_to_string(path).map_err(|source| WireError::ReadConfig {
            file: path.to_owned(),
            source,
        })?;
        Self::from_toml(path, &text)?.resolve_files(path.parent().unwrap_or(Path::new(".")), path)
    }

    /// The spec with the files it names read into it (relative to `dir`;
    /// `file` names the job's file in errors): a monitor job's `model`
    /// becomes its embedded scorecard. Other kinds name no file.
    pub fn resolve_files(self, dir: &Path, file: &Path) -> Result<Self, WireError> {
        match self.kind {
            JobKind::Monitor(m) => Ok(Self {
                kind: JobKind::Monitor(m.resolve(dir, file)?),
                ..self
            }),
            _ => Ok(self),
        }
    }

    /// The spec's canonical JSON (what [`JobSpec::hash`] hashes, and what a
    /// job offer carries).
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a plain struct of numbers and strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a spec from its canonical JSON (a job offer).
    pub fn from_json(json: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(json).map_err(|e| e.to_string())
    }
}

impl Consortium {
    /// The same consortium running `job` instead: the job is checked as the
    /// file's own `[job]` is (`source` names where it came from in errors).
    /// The coordinator's service runs each submitted job this way, and a
    /// participant the jobs it is offered.
    pub fn with_job(&self, job: JobSpec, source: &Path) -> Result<Self, WireError> {
        validate_job(&job, self.roster.len()).map_err(|(key, expected)| {
            WireError::InvalidConfig {
                file: source.to_owned(),
                key,
                expected,
            }
        })?;
        Ok(Self {
            job,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcredit_crypto::identity::IdentityKey;

    fn key_hex(seed: u8) -> String {
        IdentityKey::from_secret_bytes(&[seed; 32])
            .public()
            .to_hex()
    }

    fn sample(extra_protocol: &str, clip: &str) -> String {
        format!(
            r#"
[coordinator]
listen = "127.0.0.1:50051"
public_key = "{c}"

[protocol]
{extra_protocol}

[job]
id = "j1"
kind = "secure-sum"
dimension = 3
frac_bits = 16
clip = {clip}

[[participants]]
id = "bank-b"
public_key = "{b}"
[[participants]]
id = "bank-a"
public_key = "{a}"
[[participants]]
id = "platform"
public_key = "{p}"
"#,
            c = key_hex(9),
            a = key_hex(1),
            b = key_hex(2),
            p = key_hex(3)
        )
    }

    /// Revocation lists belong to CA trust, resolved against the file's
    /// folder; with pinned keys they are refused by name.
    #[test]
    fn crl_files_need_ca_trust_and_resolve_against_the_folder() {
        let with = |tls: &str| format!("{}\n[tls]\n{tls}", sample("", "1e6"));
        let c = Consortium::parse(
            Path::new("/etc/fc/c.toml"),
            &with("trust = \"ca\"\nca_file = \"ca.pem\"\ncrl_files = [\"ca.crl\", \"/x/b.crl\"]\n"),
        )
        .expect("valid");
        assert_eq!(
            c.tls.trust,
            TrustSetting::Ca {
                ca_file: PathBuf::from("/etc/fc/ca.pem"),
                crl_files: vec![PathBuf::from("/etc/fc/ca.crl"), PathBuf::from("/x/b.crl")],
            }
        );
        let e = Consortium::parse(Path::new("c.toml"), &with("crl_files = [\"ca.crl\"]\n"))
            .expect_err("pinned");
        assert!(
            e.to_string().contains("tls.crl_files") && e.to_string().contains("trust = \"ca\""),
            "{e}"
        );
    }

    #[test]
    fn parses_and_orders_members() {
        let c = Consortium::parse(Path::new("c.toml"), &sample("", "1e6")).expect("valid");
        let ids: Vec<_> = c
            .roster
            .members()
            .map(|m| (m.id.to_string(), m.index.get()))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("bank-a".into(), 1),
                ("bank-b".into(), 2),
                ("platform".into(), 3)
            ]
        );
        assert_eq!(c.protocol.thresholds.threshold(), 3);
        assert_eq!(c.protocol.thresholds.max_colluders(), 1);
        assert_eq!(c.protocol.thresholds.min_cohort(), 3);
    }

    #[test]
    fn epochs_whose_setup_relay_would_exceed_a_reply_are_refused_naming_slots() {
        let many = |protocol: &str, n: u16| {
            let mut text = format!(
                "[coordinator]\nlisten = \"127.0.0.1:1\"\npublic_key = \"{}\"\n\
                 [protocol]\n{protocol}\n[job]\nid = \"j\"\nkind = \"secure-sum\"\n\
                 dimension = 1\nfrac_bits = 0\nclip = 1.0\n",
                key_hex(255)
            );
            for i in 0..n {
                let mut seed = [7u8; 32];
                seed[..2].copy_from_slice(&i.to_be_bytes());
                let key = IdentityKey::from_secret_bytes(&seed).public().to_hex();
                text.push_str(&format!(
                    "[[participants]]\nid = \"m{i}\"\npublic_key = \"{key}\"\n"
                ));
            }
            Consortium::parse(Path::new("c.toml"), &text)
        };
        // 300 members: 16 slots relay about 220 MiB to each member, 256 slots 2.8 GiB.
        let ok = many("setup = \"epoch\"", 300).expect("16 slots fit");
        assert!(epoch_relay_bytes(300, 16) <= MAX_EPOCH_RELAY_BYTES);
        assert_eq!(ok.protocol.epoch_slots_field(), 16);
        let err = many("setup = \"epoch\"\nslots = 256", 300)
            .expect_err("256 slots do not fit")
            .to_string();
        assert!(
            err.contains("protocol.slots") && err.contains("300 members"),
            "{err}"
        );
        // The bound covers what a 64-member, 16-slot setup relayed to one
        // member in `bench-secagg --members 64 --rounds 16 --setup epoch`.
        assert!(epoch_relay_bytes(64, 16) >= 6_747_237);
    }

    #[test]
    fn bad_threshold_names_file_and_key() {
        let err = Consortium::parse(Path::new("c.toml"), &sample("threshold = 1", "1e6"))
            .expect_err("t=1");
        let msg = err.to_string();
        assert!(
            msg.contains("c.toml") && msg.contains("protocol.threshold"),
            "{msg}"
        );
    }

    /// Five members, so that the brief's attack (n = 5, c = 1, t = 3) can be written.
    fn five(protocol: &str) -> String {
        let mut text = sample(protocol, "1e6");
        for (id, seed) in [("bank-c", 4), ("bank-d", 5)] {
            text.push_str(&format!(
                "[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
                key_hex(seed)
            ));
        }
        text
    }

    #[test]
    fn a_threshold_two_survivor_lists_could_pass_is_refused_naming_the_bound() {
        let err = Consortium::parse(Path::new("c.toml"), &five("threshold = 3"))
            .expect_err("n = 5, c = 1, t = 3");
        let msg = err.to_string();
        for part in [
            "c.toml",
            "protocol.threshold",
            "(n + c)/2 = (5 + 1)/2 = 3",
            "n = 5",
            "c = 1",
            "t = 3",
        ] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
        let ok = Consortium::parse(Path::new("c.toml"), &five("")).expect("defaults");
        assert_eq!(ok.protocol.thresholds.threshold(), 4);
        assert_eq!(ok.protocol.thresholds.max_colluders(), 1);
        // With no colluder, a bare majority is enough.
        let ok = Consortium::parse(
            Path::new("c.toml"),
            &five("max_colluders = 0\nthreshold = 3"),
        )
        .expect("c = 0");
        assert_eq!(ok.protocol.thresholds.threshold(), 3);
    }

    #[test]
    fn the_graph_is_complete_unless_chosen_and_each_bad_key_is_named() {
        use fedcredit_crypto::secagg::CommGraph;
        let graph = |protocol: &str| {
            Consortium::parse(Path::new("c.toml"), &five(protocol))
                .map(|c| c.protocol.thresholds.graph())
        };
        assert_eq!(graph("").expect("default"), CommGraph::Complete);
        assert_eq!(
            graph("graph = \"complete\"").expect("complete"),
            CommGraph::Complete
        );
        // n = 5, c = 1, t = 4: k = 2 < t.
        assert_eq!(
            graph("neighbours = 2\nshare_threshold = 2").expect("harary"),
            CommGraph::Harary {
                neighbours: 2,
                share_threshold: 2
            }
        );
        assert_eq!(
            graph("graph = \"harary\"\nneighbours = 2\nshare_threshold = 3").expect("harary"),
            CommGraph::Harary {
                neighbours: 2,
                share_threshold: 3
            }
        );
        // At n = 5 the analysis gives the complete graph.
        assert_eq!(
            graph("graph = \"auto\"").expect("auto"),
            CommGraph::Complete
        );
        for (protocol, key) in [
            ("graph = \"sparse\"", "protocol.graph"),
            ("graph = \"harary\"", "protocol.neighbours"),
            ("neighbours = 2", "protocol.share_threshold"),
            ("share_threshold = 2", "protocol.neighbours"),
            ("neighbours = 3\nshare_threshold = 2", "protocol.neighbours"),
            ("neighbours = 4\nshare_threshold = 2", "protocol.neighbours"),
            (
                "neighbours = 2\nshare_threshold = 4",
                "protocol.share_threshold",
            ),
            (
                "neighbours = 2\nshare_threshold = 1",
                "protocol.share_threshold",
            ),
            (
                "graph = \"complete\"\nneighbours = 2",
                "protocol.neighbours",
            ),
            ("expected_dropout = 0.1", "protocol.expected_dropout"),
            (
                "graph = \"auto\"\nexpected_dropout = 1.5",
                "protocol.expected_dropout",
            ),
        ] {
            let err = graph(protocol).expect_err(protocol);
            let msg = err.to_string();
            assert!(
                msg.contains("c.toml") && msg.contains(key),
                "{protocol:?}: {key} missing from {msg}"
            );
        }
    }

    #[test]
    fn a_larger_colluder_bound_raises_the_default_threshold_or_is_refused() {
        let c = Consortium::parse(Path::new("c.toml"), &five("max_colluders = 3")).expect("c = 3");
        assert_eq!(c.protocol.thresholds.threshold(), 5);
        let err =
            Consortium::parse(Path::new("c.toml"), &five("max_colluders = 5")).expect_err("c = n");
        assert!(err.to_string().contains("protocol.max_colluders"), "{err}");
    }

    #[test]
    fn wrapping_settings_are_refused() {
        let err = Consortium::parse(Path::new("c.toml"), &sample("", "1e14")).expect_err("wraps");
        assert!(err.to_string().contains("job.frac_bits"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Consortium::parse(Path::new("c.toml"), &sample("treshold = 3", "1e6"))
            .expect_err("typo");
        assert!(err.to_string().contains("treshold"), "{err}");
    }

    #[test]
    fn unknown_job_key_is_named() {
        let text = sample("", "1e6").replace("dimension = 3", "dimension = 3\ndimensoin = 4");
        let err = Consortium::parse(Path::new("c.toml"), &text).expect_err("typo");
        assert!(err.to_string().contains("dimensoin"), "{err}");
    }

    #[test]
    fn job_hash_depends_on_settings() {
        let a = Consortium::parse(Path::new("c.toml"), &sample("", "1e6")).expect("valid");
        let b = Consortium::parse(Path::new("c.toml"), &sample("", "2e6")).expect("valid");
        assert_ne!(a.job.hash(), b.job.hash());
    }
}
