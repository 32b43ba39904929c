//! `fedcredit provision`: the startup kit an operator hands to each party of
//! a new consortium (as NVIDIA FLARE's provisioning does).
//!
//! ```text
//! DIR/coordinator/consortium.toml   the operator's copy: listen, keys, job, roster
//!                 coordinator.key   the coordinator's secret identity key (0600)
//!                 coordinator.crt   its pinned TLS certificate
//! DIR/<ID>/<ID>.toml                the member's config; one line to fill in
//!          <ID>.key                 the member's secret identity key (0600)
//!          <ID>.crt                 its pinned TLS certificate
//!          consortium.toml          the same consortium without the operator-only keys
//! ```
//!
//! Everything is composed and validated in memory first, so a bad argument or
//! job spec writes nothing. Files are written to a temporary name in their
//! folder and then moved into place, so a crash never leaves half a key;
//! without `--force`, a kit folder that already holds files is refused and
//! no file is ever replaced. The written kit is then read back with the
//! daemons' own loaders and TLS setup before success is reported.
//!
//! The operator generates every member's key here, so whoever runs this
//! command can sign as any member until the folders are handed over and the
//! operator's copies deleted: the summary says so.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use fedcredit_crypto::identity::{IdentityKey, IdentityPublic};
use fedcredit_crypto::secagg::Thresholds;
use fedcredit_participant::config::ParticipantConfig;
use fedcredit_proto::roster::ParticipantId;
use fedcredit_referee::consortium::{Consortium, JobSpec};
use zeroize::Zeroizing;

use crate::{keys, say};

/// Fixed-point fractional bits of a provisioned secure-sum job (as the demo).
const FRAC_BITS: u32 = 16;

/// Arguments of `fedcredit provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The kit's folder: `coordinator/` and one folder per member are written in it.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The address the participants dial: an IP or a host name, and a port.
    /// The coordinator listens on it (on 0.0.0.0:PORT when HOST is a name).
    #[arg(long, value_name = "HOST:PORT")]
    coordinator: String,
    /// A member's id (1-64 of A-Z a-z 0-9 . _ -); repeat for each member, at least 3.
    #[arg(long = "member", value_name = "ID", required = true)]
    members: Vec<String>,
    /// What the job computes.
    #[arg(long, value_enum, default_value_t = JobKindArg::SecureSum)]
    job_kind: JobKindArg,
    /// secure-sum: the length of every member's vector.
    #[arg(long, value_name = "D")]
    dimension: Option<usize>,
    /// secure-sum: inputs are clipped to ±clip (with 16 fractional bits).
    #[arg(long, default_value_t = 1e12)]
    clip: f64,
    /// logistic-regression: a TOML file holding the job's `[job]` table
    /// (schema, l2, optimizer, …) as in consortium.toml; copied into the kit.
    #[arg(long, value_name = "FILE")]
    job_spec: Option<PathBuf>,
    /// The job's id, bound into every message [default: secure-sum, or the
    /// job spec's own id].
    #[arg(long, value_name = "ID")]
    job_id: Option<String>,
    /// A member that made its own key (`fedcredit keygen`) and sent only its
    /// public key: ID=PUBLIC_KEY (64 hex digits). Its folder then holds no
    /// secret key, so the operator can never sign as it. Repeat per member;
    /// each ID must also be given with --member.
    #[arg(long = "member-key", value_name = "ID=PUBLIC_KEY")]
    member_keys: Vec<String>,
    /// Replace the files of an existing kit in DIR (new keys for everyone).
    #[arg(long)]
    force: bool,
}

/// The job kinds `provision` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum JobKindArg {
    /// Each member contributes a vector of `--dimension` numbers; only the sum is published.
    SecureSum,
    /// A credit model; needs `--job-spec`.
    LogisticRegression,
    /// A points scorecard; needs `--job-spec` with a `[job.scorecard]` table.
    Scorecard,
}

/// Where the coordinator listens and what the participants dial.
#[derive(Debug)]
struct Address {
    /// What the participants dial: HOST:PORT as given.
    dial: String,
    /// What the coordinator binds.
    listen: SocketAddr,
    /// The host name, when HOST is a name (so the coordinator binds 0.0.0.0).
    by_name: Option<String>,
}

impl Address {
    fn parse(text: &str) -> Result<Self> {
        let what = || format!("--coordinator {text:?}");
        if text.contains("://") {
            bail!(
                "{}: give HOST:PORT without a scheme (members dial https://HOST:PORT)",
                what()
            );
        }
        if let Ok(listen) = text.parse::<SocketAddr>() {
            if listen.ip().is_unspecified() {
                bail!(
                    "{}: the participants dial this address, so it must be the coordinator's \
                     host (an IP or a name), not {}",
                    what(),
                    listen.ip()
                );
            }
            if listen.port() == 0 {
                bail!("{}: a port from 1 to 65535", what());
            }
            return Ok(Self {
                dial: text.to_owned(),
                listen,
                by_name: None,
            });
        }
        let (host, port) = text
            .rsplit_once(':')
            .with_context(|| format!("{}: expected HOST:PORT, e.g. 10.0.0.5:50051", what()))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("{}: a port from 1 to 65535, got {port:?}", what()))?;
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !name_ok {
            bail!(
                "{}: {host:?} is neither an IP address nor a host name (IPv6: [::1]:50051)",
                what()
            );
        }
        Ok(Self {
            dial: text.to_owned(),
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            by_name: Some(host.to_owned()),
        })
    }
}

/// The members' ids, validated, in the order given.
fn member_ids(given: &[String]) -> Result<Vec<ParticipantId>> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut ids = Vec::with_capacity(given.len());
    for raw in given {
        let id = ParticipantId::new(raw).with_context(|| format!("--member {raw:?}"))?;
        // Each member gets a folder named after it, beside `coordinator/`.
        if matches!(raw.as_str(), "." | ".." | "coordinator") {
            bail!("--member {raw:?}: the kit has a folder per member, and {raw:?} cannot be one");
        }
        match seen.insert(raw.to_ascii_lowercase(), raw) {
            Some(first) if first == raw => bail!("--member {raw:?} is given twice"),
            Some(first) => bail!(
                "--member {first:?} and --member {raw:?} differ only in case: their folders \
                 would be one on a case-insensitive file system"
            ),
            None => {}
        }
        ids.push(id);
    }
    let min = 3;
    if ids.len() < min {
        bail!(
            "{} member(s) given; a consortium needs at least {min} (with two, each would learn \
             the other's input from the sum): repeat --member ID",
            ids.len()
        );
    }
    Ok(ids)
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The `[job]` table as TOML, and which line a member fills in.
struct Job {
    toml: String,
    id: String,
    /// The kind as the consortium file names it.
    kind: &'static str,
    input_key: &'static str,
}

fn job(args: &ProvisionArgs) -> Result<Job> {
    match args.job_kind {
        JobKindArg::SecureSum => {
            if args.job_spec.is_some() {
                bail!(
                    "--job-spec is for --job-kind logistic-regression; a secure-sum job is given by --dimension"
                );
            }
            let dimension = args.dimension.context(
                "--job-kind secure-sum needs --dimension D: the length of every member's vector",
            )?;
            if !(args.clip.is_finite() && args.clip > 0.0) {
                bail!("--clip: a positive number, got {}", args.clip);
            }
            let id = args.job_id.clone().unwrap_or_else(|| "secure-sum".into());
            let toml = format!(
                "[job]\n\
                 id = {}\n\
                 kind = \"secure-sum\"\n\
                 dimension = {dimension}              # every member's input holds this many numbers\n\
                 frac_bits = {FRAC_BITS}\n\
                 clip = {:e}                    # inputs are clipped to ±clip\n",
                quoted(&id),
                args.clip
            );
            Ok(Job {
                toml,
                id,
                kind: "secure-sum",
                input_key: "input",
            })
        }
        JobKindArg::LogisticRegression | JobKindArg::Scorecard => {
            let kind = match args.job_kind {
                JobKindArg::Scorecard => "scorecard",
                _ => "logistic-regression",
            };
            if args.dimension.is_some() {
                bail!(
                    "--dimension is for --job-kind secure-sum; a credit model's width follows from its schema"
                );
            }
            let path = args.job_spec.as_deref().with_context(|| {
                format!(
                    "--job-kind {kind} needs --job-spec FILE: a TOML file with the job's \
                     [job] table (id, l2, optimizer, [job.privacy] or privacy = \"none\", \
                     [job.schema.label], [[job.schema.features]]{}), as in the README's \
                     consortium.toml",
                    if kind == "scorecard" {
                        ", [job.scorecard] with the numeric features' bounds"
                    } else {
                        ""
                    }
                )
            })?;
            let (toml, id) = job_spec(path, args.job_id.as_deref(), kind)?;
            Ok(Job {
                toml,
                id,
                kind,
                input_key: "data",
            })
        }
    }
}

/// Reads a job spec file: only a `[job]` table, of kind `kind`
/// (`logistic-regression` or `scorecard`, written in when absent);
/// `--job-id` sets its id.
/// Returned as canonical TOML (the consortium file's sections follow a
/// fixed order, so the table is re-serialised rather than pasted).
fn job_spec(path: &Path, job_id: Option<&str>, kind: &str) -> Result<(String, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut file: toml::Table = toml::from_str(&text)
        .with_context(|| format!("{}: not a TOML job spec", path.display()))?;
    if let Some(other) = file.keys().find(|k| *k != "job") {
        bail!(
            "{}: `{other}`: a job spec holds only the [job] table (provision writes the rest)",
            path.display()
        );
    }
    let Some(toml::Value::Table(job)) = file.get_mut("job") else {
        bail!("{}: `job`: a [job] table", path.display());
    };
    match job.get("kind") {
        None => {
            job.insert("kind".into(), kind.into());
        }
        Some(toml::Value::String(k)) if k == kind => {}
        Some(other) => bail!(
            "{}: `job.kind`: \"{kind}\" (or leave it out), got {other}; give --job-kind for \
             another kind (a secure-sum job is given by --job-kind secure-sum --dimension D)",
            path.display()
        ),
    }
    if let Some(id) = job_id {
        job.insert("id".into(), id.into());
    }
    let id = match job.get("id") {
        Some(toml::Value::String(id)) => id.clone(),
        Some(other) => bail!("{}: `job.id`: a string, got {other}", path.display()),
        None => bail!(
            "{}: `job.id`: the job's id (or give --job-id ID)",
            path.display()
        ),
    };
    // Said against the spec file; the consortium file made from it is
    // validated as a whole afterwards.
    toml::Value::Table(job.clone())
        .try_into::<JobSpec>()
        .map_err(|e| anyhow::anyhow!("{}: [job]: {}", path.display(), e.message()))?;
    let toml = toml::to_string(&file)
        .with_context(|| format!("{}: cannot write it back as TOML", path.display()))?;
    Ok((toml, id))
}

/// One party: a fresh identity key and its pinned certificate, or only the
/// public key of a member that made its own (`--member-key`).
enum Party {
    Fresh {
        key: IdentityKey,
        certificate: String,
    },
    OwnKey(IdentityPublic),
}

impl Party {
    fn new(name: &str) -> Result<Self> {
        let key = IdentityKey::generate(&mut rand::rngs::OsRng);
        let certificate = fedcredit_transport::pinned_certificate_pem(&key, name)
            .with_context(|| format!("making {name}'s certificate"))?;
        Ok(Self::Fresh { key, certificate })
    }

    fn public(&self) -> IdentityPublic {
        match self {
            Party::Fresh { key, .. } => key.public(),
            Party::OwnKey(public) => *public,
        }
    }

    fn own_key(&self) -> bool {
        matches!(self, Party::OwnKey(_))
    }
}

/// `--member-key ID=PUBLIC_KEY` values, checked against the members.
fn member_keys(
    given: &[String],
    ids: &[ParticipantId],
) -> Result<Vec<(ParticipantId, IdentityPublic)>> {
    let mut out: Vec<(ParticipantId, IdentityPublic)> = Vec::new();
    for raw in given {
        let (id, hex) = raw
            .split_once('=')
            .with_context(|| format!("--member-key {raw:?}: expected ID=PUBLIC_KEY"))?;
        let id = ids
            .iter()
            .find(|m| m.as_str() == id)
            .with_context(|| format!("--member-key {raw:?}: {id:?} is not given with --member"))?;
        let public = IdentityPublic::from_hex(hex.trim()).with_context(|| {
            format!("--member-key {id}: a 64-hex-digit public key as `fedcredit keygen` prints it")
        })?;
        if out.iter().any(|(m, _)| m == id) {
            bail!("--member-key {id} is given twice");
        }
        out.push((id.clone(), public));
    }
    Ok(out)
}

/// consortium.toml: the operator's copy (`operator`) names the
/// coordinator's key and certificate files; a member's copy leaves them
/// out (it needs neither, and should not learn the operator's paths).
fn consortium_toml(
    address: &Address,
    coordinator: &IdentityPublic,
    job: &Job,
    members: &[(ParticipantId, IdentityPublic)],
    operator: bool,
) -> String {
    let n = members.len();
    let c = Thresholds::default_colluders(n);
    let t = Thresholds::default_threshold(n, c);
    let mut s = String::new();
    s.push_str(&format!(
        "# The consortium of job {}, written by `fedcredit provision`.\n",
        job.id
    ));
    if operator {
        s.push_str(
            "# The operator's copy. Each member holds the same file without the operator-only\n\
             # lines; the roster, keys, settings and job must stay identical in every copy.\n",
        );
    } else {
        s.push_str(
            "# A member's copy of the operator's file (without the coordinator's own files);\n\
             # the roster, keys, settings and job are the same in every copy.\n",
        );
    }
    s.push_str("\n[coordinator]\n");
    match &address.by_name {
        Some(host) => s.push_str(&format!(
            "# The members dial {host} (a name, not an address to bind), so the coordinator\n\
             # listens on every interface at that port.\n\
             listen = \"{}\"\n",
            address.listen
        )),
        None => s.push_str(&format!("listen = \"{}\"\n", address.listen)),
    }
    s.push_str(&format!("public_key = \"{}\"\n", coordinator.to_hex()));
    if operator {
        s.push_str(
            "key_file = \"coordinator.key\"     # operator only: the coordinator's secret identity key\n\
             cert_file = \"coordinator.crt\"    # operator only: its TLS certificate, made from that key\n",
        );
    }
    s.push_str(
        "\n[tls]\n\
         trust = \"pinned\"                  # each certificate carries the identity key listed here\n",
    );
    s.push_str(&format!(
        "\n# [protocol]: the defaults for n = {n} members: max_colluders c = {c}, threshold t = {t},\n\
         # min_cohort = 3, join_deadline_secs = 60, phase_deadline_secs = 30, max_attempts = 2.\n\n"
    ));
    s.push_str(&job.toml);
    for (id, key) in members {
        s.push_str(&format!(
            "\n[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
            key.to_hex()
        ));
    }
    s
}

/// A member's config: everything but the line of its own data.
fn member_toml(id: &ParticipantId, address: &Address, job: &Job, own_key: bool) -> String {
    let fill_in = match job.input_key {
        "input" => format!(
            "# FILL IN: the file of numbers this member contributes (separated by commas, spaces\n\
             # or newlines; `#` starts a comment). Only the consortium's sum is published.\n\
             input = \"{id}.input.txt\"\n"
        ),
        _ => format!(
            "# FILL IN: the CSV file of this member's training rows (a header, then rows with the\n\
             # job schema's columns). The rows never leave this machine.\n\
             data = \"{id}.csv\"\n\
             # test = \"{id}-holdout.csv\"       # optional: held-out rows for the pooled evaluation\n"
        ),
    };
    format!(
        "# {id}'s participant config for job {job_id}, written by `fedcredit provision`.\n\
         # Check it with `fedcredit check --config {id}.toml`; run it with\n\
         # `fedcredit participant --config {id}.toml`.\n\
         id = \"{id}\"\n\
         {key_lines}\
         coordinator = \"https://{dial}\"\n\
         consortium = \"consortium.toml\"     # the operator's roster, keys and job\n\
         \n{fill_in}\
         \n\
         # Which jobs this member takes part in (`fedcredit participant --serve` is offered\n\
         # every job the coordinator's service runs; a job outside this is refused, and the\n\
         # operator sees the reason code). Written for this kit's {kind} job and nothing else:\n\
         # widen it only on purpose. Keep this table last in the file.\n\
         [policy]\n\
         kinds = [\"{kind}\"]\n\
         # label = \"default\"               # model jobs: the only label column allowed\n\
         # features = [\"age\", \"income\"]    # model jobs: the columns this member exposes\n\
         # require_privacy = true          # model jobs: differentially private ones only ...\n\
         # max_epsilon = 8.0               # ... spending at most this ε\n\
         # min_cohort = 3                  # the job's minimum cohort and threshold at least this\n",
        job_id = job.id,
        kind = job.kind,
        dial = address.dial,
        key_lines = if own_key {
            format!(
                "# This member's own key, made with `fedcredit keygen --out {id}.key`; only its\n\
                 # public key is in consortium.toml. Its TLS certificate is made from it at start.\n\
                 key_file = \"{id}.key\"              # secret: put the key file here\n"
            )
        } else {
            format!(
                "key_file = \"{id}.key\"              # secret: this member's identity key; it signs as {id}\n\
                 cert_file = \"{id}.crt\"             # its TLS certificate, made from that key\n"
            )
        },
    )
}

/// A file of the kit, before it is written.
struct KitFile {
    path: PathBuf,
    contents: Zeroizing<Vec<u8>>,
    /// Secret key files are 0600.
    secret: bool,
}

impl KitFile {
    fn public(path: PathBuf, text: String) -> Self {
        Self {
            path,
            contents: Zeroizing::new(text.into_bytes()),
            secret: false,
        }
    }

    fn key(path: PathBuf, key: &IdentityKey) -> Self {
        let text = keys::file_text(key);
        Self {
            path,
            contents: Zeroizing::new(text.as_bytes().to_vec()),
            secret: true,
        }
    }
}

/// Runs `fedcredit provision`.
pub fn run(args: ProvisionArgs) -> Result<()> {
    let address = Address::parse(&args.coordinator)?;
    let ids = member_ids(&args.members)?;
    let job = job(&args)?;

    let own = member_keys(&args.member_keys, &ids)?;
    let coordinator = Party::new("coordinator")?;
    let mut members = Vec::with_capacity(ids.len());
    for id in &ids {
        let party = match own.iter().find(|(m, _)| m == id) {
            Some((_, public)) => Party::OwnKey(*public),
            None => Party::new(id.as_str())?,
        };
        members.push((id.clone(), party));
    }
    let Party::Fresh {
        key: coordinator_key,
        certificate: coordinator_certificate,
    } = &coordinator
    else {
        bail!("the coordinator's key is always made here");
    };
    {
        let mut seen = std::collections::BTreeSet::new();
        for (id, party) in &members {
            if !seen.insert(party.public()) || party.public() == coordinator.public() {
                bail!("{id}'s public key is another party's too: every party needs its own key");
            }
        }
    }
    let roster: Vec<(ParticipantId, IdentityPublic)> = members
        .iter()
        .map(|(id, p)| (id.clone(), p.public()))
        .collect();

    let out = &args.out;
    let coordinator_dir = out.join("coordinator");
    let operator_toml = consortium_toml(&address, &coordinator.public(), &job, &roster, true);
    let member_copy = consortium_toml(&address, &coordinator.public(), &job, &roster, false);
    // Refuse a bad job spec or setting before anything is written.
    let consortium_path = coordinator_dir.join("consortium.toml");
    Consortium::parse(&consortium_path, &operator_toml).with_context(|| match &args.job_spec {
        Some(spec) => format!(
            "the consortium file made from {} is not valid",
            spec.display()
        ),
        None => "the consortium file made from these arguments is not valid".into(),
    })?;
    Consortium::parse(
        &out.join(ids[0].as_str()).join("consortium.toml"),
        &member_copy,
    )
    .context("the members' copy of the consortium file is not valid")?;

    let mut files = vec![
        KitFile::public(consortium_path.clone(), operator_toml),
        KitFile::key(coordinator_dir.join("coordinator.key"), coordinator_key),
        KitFile::public(
            coordinator_dir.join("coordinator.crt"),
            coordinator_certificate.clone(),
        ),
    ];
    for (id, party) in &members {
        let dir = out.join(id.as_str());
        files.push(KitFile::public(
            dir.join(format!("{id}.toml")),
            member_toml(id, &address, &job, party.own_key()),
        ));
        if let Party::Fresh { key, certificate } = party {
            files.push(KitFile::key(dir.join(format!("{id}.key")), key));
            files.push(KitFile::public(
                dir.join(format!("{id}.crt")),
                certificate.clone(),
            ));
        }
        files.push(KitFile::public(
            dir.join("consortium.toml"),
            member_copy.clone(),
        ));
    }

    refuse_existing_kit(out, args.force)?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut folders = vec![coordinator_dir.clone()];
    folders.extend(ids.iter().map(|id| out.join(id.as_str())));
    for folder in &folders {
        // Each folder holds a secret key: only its owner may list it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .with_context(|| format!("{}: cannot create", folder.display()))?;
    }
    for file in &files {
        write_file(file, args.force)?;
    }
    for folder in &folders {
        sync_folder(folder)?;
    }

    let fresh: Vec<ParticipantId> = members
        .iter()
        .filter(|(_, p)| !p.own_key())
        .map(|(id, _)| id.clone())
        .collect();
    validate(out, &ids, &fresh).with_context(|| {
        format!(
            "the kit written in {} does not load as the daemons would load it",
            out.display()
        )
    })?;
    summary(out, &address, &job, &coordinator, &members);
    if args.force {
        leftovers(out, &folders, &files);
    }
    Ok(())
}

/// Without `--force`, a folder that already holds anything is left alone:
/// it may be a kit whose keys are in use.
fn refuse_existing_kit(out: &Path, force: bool) -> Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if !force && entries.next().is_some() {
                bail!(
                    "{}: the folder already holds files (an existing kit?); nothing was written. \
                     Use --force to replace the kit's files with a new kit (new keys for everyone)",
                    out.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read the folder", out.display())),
    }
}

/// Writes a file under a temporary name in its folder, then moves it into
/// place: replacing an existing file only if `replace`.
fn write_file(file: &KitFile, replace: bool) -> Result<()> {
    let path = &file.path;
    let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("{}: not a file path", path.display());
    };
    let tmp = folder.join(format!(
        ".{}.{}.{:016x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    let mode = if file.secret { 0o600 } else { 0o644 };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&file.contents)?;
            f.sync_all()
        })
        .and_then(|()| place(&tmp, path, replace));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
            " (it appeared while the kit was written; nothing replaced it)"
        } else {
            ""
        };
        return Err(e).with_context(|| format!("{}: cannot write{hint}", path.display()));
    }
    Ok(())
}

/// Moves `tmp` to `path`. Without `replace`, a hard link does it, which
/// fails rather than replace a file that is there; a file system without
/// hard links falls back to a rename once `path` is seen to be absent.
fn place(tmp: &Path, path: &Path, replace: bool) -> std::io::Result<()> {
    if replace {
        return std::fs::rename(tmp, path);
    }
    match std::fs::hard_link(tmp, path) {
        Ok(()) => std::fs::remove_file(tmp),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if !path.exists() => std::fs::rename(tmp, path),
        Err(e) => Err(e),
    }
}

/// Makes the folder's new entries durable.
fn sync_folder(folder: &Path) -> Result<()> {
    std::fs::File::open(folder)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("{}: cannot sync the folder", folder.display()))
}

/// Loads the written kit as the daemons will: the consortium file, the
/// coordinator's key and TLS, each member's config, key and TLS, and that
/// every member's copy of the consortium is the operator's.
/// Members in `fresh` have their key in the kit; the others bring their own.
fn validate(out: &Path, ids: &[ParticipantId], fresh: &[ParticipantId]) -> Result<()> {
    let consortium = Consortium::load(&out.join("coordinator").join("consortium.toml"))?;
    let key_file = consortium
        .coordinator_key_file
        .as_deref()
        .context("coordinator.key_file is missing")?;
    let key = keys::load(key_file)?;
    if &key.public() != consortium.roster.coordinator() {
        bail!(
            "{}: not the key of coordinator.public_key",
            key_file.display()
        );
    }
    fedcredit_transport::setup::coordinator(&consortium, &key)?;
    for id in ids {
        let cfg = ParticipantConfig::load(&out.join(id.as_str()).join(format!("{id}.toml")))?;
        let copy = &cfg.consortium;
        let same = copy.job.hash() == consortium.job.hash()
            && copy.roster.coordinator() == consortium.roster.coordinator()
            && copy.listen == consortium.listen
            && copy.roster.len() == consortium.roster.len()
            && copy
                .roster
                .members()
                .zip(consortium.roster.members())
                .all(|(a, b)| a.id == b.id && a.key == b.key)
            && copy.protocol.thresholds.threshold() == consortium.protocol.thresholds.threshold()
            && copy.protocol.thresholds.max_colluders()
                == consortium.protocol.thresholds.max_colluders();
        if !same {
            bail!(
                "{}: not the same consortium as {}",
                copy.path.display(),
                consortium.path.display()
            );
        }
        if copy.coordinator_key_file.is_some() || copy.tls.coordinator_cert_file.is_some() {
            bail!("{}: names the coordinator's own files", copy.path.display());
        }
        if !fresh.contains(id) {
            continue;
        }
        let key = keys::load(&cfg.key_file)?;
        if key.public() != copy.roster.member(id.as_str())?.key {
            bail!("{}: not the key listed for {id}", cfg.key_file.display());
        }
        fedcredit_transport::setup::member(
            copy,
            &cfg.id,
            &key,
            cfg.cert_file.as_deref(),
            cfg.tls_key_file.as_deref(),
        )?;
    }
    Ok(())
}

/// What was written and what to do next. Public keys are printed so that
/// each party can compare its own against the roster out of band; no
/// secret key is.
fn summary(
    out: &Path,
    address: &Address,
    job: &Job,
    coordinator: &Party,
    members: &[(ParticipantId, Party)],
) {
    let n = members.len();
    say(&format!(
        "wrote the startup kit of job {} ({n} members) to {}:",
        job.id,
        out.display()
    ));
    say(&format!(
        "  coordinator/  consortium.toml, coordinator.key (secret), coordinator.crt   key {}",
        coordinator.public().to_hex()
    ));
    for (id, party) in members {
        if party.own_key() {
            say(&format!(
                "  {id}/  {id}.toml, consortium.toml (its own key, not in the kit)   key {}",
                party.public().to_hex()
            ));
        } else {
            say(&format!(
                "  {id}/  {id}.toml, {id}.key (secret), {id}.crt, consortium.toml   key {}",
                party.public().to_hex()
            ));
        }
    }
    match &address.by_name {
        Some(host) => say(&format!(
            "the coordinator listens on {} (members dial https://{}; {host} must resolve to it)",
            address.listen, address.dial
        )),
        None => say(&format!(
            "the coordinator listens on {}; members dial https://{}",
            address.listen, address.dial
        )),
    }
    let fill = match job.input_key {
        "input" => "input = \"<ID>.input.txt\" (its vector of numbers)",
        _ => "data = \"<ID>.csv\" (its training rows)",
    };
    say("next:");
    say(
        "  1. hand each member its folder over a channel only it can read, then delete your copy: \
         whoever holds <ID>.key can sign as that member; keep coordinator/ on the coordinator's host \
         (a member that makes its own key with `fedcredit keygen` and sends only the public key, \
         --member-key ID=KEY, never needs that trust)",
    );
    say(&format!(
        "  2. each member fills in the line marked FILL IN in <ID>.toml: {fill}"
    ));
    say(
        "  3. each party runs `fedcredit check --config <its file>` (coordinator/consortium.toml, <ID>/<ID>.toml)",
    );
    say(
        "  4. start `fedcredit coordinator --config consortium.toml`, then on each member `fedcredit participant --config <ID>.toml`",
    );
}

/// After `--force`: entries in the kit's folders that this kit did not
/// write (an earlier kit's member folder, a round log or journal signed with
/// the old keys) are named, not deleted.
fn leftovers(out: &Path, folders: &[PathBuf], files: &[KitFile]) {
    let mut expected: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
    expected.extend(folders.iter().map(PathBuf::as_path));
    let mut left = Vec::new();
    for folder in std::iter::once(out).chain(folders.iter().map(PathBuf::as_path)) {
        let Ok(entries) = std::fs::read_dir(folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !expected.contains(&path.as_path()) {
                left.push(path);
            }
        }
    }
    if !left.is_empty() {
        left.sort();
        say(
            "left in place, not part of this kit (from an earlier kit? a round log or journal of the old keys will not verify):",
        );
        for path in left {
            say(&format!("  {}", path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_is_listened_on_and_a_name_binds_every_interface() {
        let a = Address::parse("10.0.0.5:50051").expect("ip");
        assert_eq!(a.listen.to_string(), "10.0.0.5:50051");
        assert!(a.by_name.is_none());
        let a = Address::parse("[::1]:7000").expect("ipv6");
        assert_eq!(a.listen.to_string(), "[::1]:7000");
        let a = Address::parse("coord.bank.example:50051").expect("name");
        assert_eq!(a.listen.to_string(), "0.0.0.0:50051");
        assert_eq!(a.dial, "coord.bank.example:50051");
        assert_eq!(a.by_name.as_deref(), Some("coord.bank.example"));
    }

    #[test]
    fn unusable_addresses_are_refused_saying_why() {
        for (bad, why) in [
            ("0.0.0.0:50051", "not 0.0.0.0"),
            ("127.0.0.1:0", "a port from 1"),
            ("host:0", "a port from 1"),
            ("host", "expected HOST:PORT"),
            ("https://host:1", "without a scheme"),
            ("bad_host:1", "neither an IP"),
            (":1", "neither an IP"),
        ] {
            let e = Address::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn member_ids_are_checked_for_the_roster_and_the_folders() {
        let ids = |v: &[&str]| member_ids(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(ids(&["b", "a", "c"]).expect("valid").len(), 3);
        for (bad, why) in [
            (vec!["a", "b"], "at least 3"),
            (vec!["a", "b", "a"], "given twice"),
            (vec!["a", "b", "A"], "differ only in case"),
            (vec!["a", "b", "c d"], "\"c d\""),
            (vec!["a", "b", ".."], "cannot be one"),
            (vec!["a", "b", "coordinator"], "cannot be one"),
        ] {
            let e = ids(&bad).expect_err(why).to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_job_spec_holds_only_a_job_table_and_gets_its_kind_and_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("job.toml");
        let spec = "[job]\nl2 = 2.0\n[job.schema.label]\ncolumn = \"y\"\npositive = \"bad\"\n\
                    negative = \"good\"\n[[job.schema.features]]\nname = \"x\"\nkind = \"numeric\"\n";
        std::fs::write(&path, spec).expect("write");
        let e = job_spec(&path, None, "logistic-regression")
            .expect_err("no id")
            .to_string();
        assert!(e.contains("job.id") && e.contains("--job-id"), "{e}");
        let (toml, id) = job_spec(&path, Some("q4"), "logistic-regression").expect("id given");
        assert_eq!(id, "q4");
        let table: toml::Table = toml::from_str(&toml).expect("toml");
        assert_eq!(table["job"]["kind"].as_str(), Some("logistic-regression"));
        assert_eq!(
            table["job"]["schema"]["features"][0]["name"].as_str(),
            Some("x")
        );
        std::fs::write(&path, "[job]\nid = \"x\"\nl2 = 2.0\n").expect("write");
        let e = job_spec(&path, None, "logistic-regression")
            .expect_err("no schema")
            .to_string();
        assert!(e.contains("job.toml: [job]") && e.contains("schema"), "{e}");
        std::fs::write(&path, "[job]\nid = \"x\"\n[protocol]\nthreshold = 2\n").expect("write");
        let e = job_spec(&path, None, "logistic-regression")
            .expect_err("other table")
            .to_string();
        assert!(e.contains("`protocol`"), "{e}");
        std::fs::write(&path, "[job]\nid = \"x\"\nkind = \"secure-sum\"\n").expect("write");
        let e = job_spec(&path, None, "logistic-regression")
            .expect_err("other kind")
            .to_string();
        assert!(e.contains("job.kind"), "{e}");
    }
}
