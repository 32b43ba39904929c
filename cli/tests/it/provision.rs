//! `fedcredit provision` and `fedcredit check`, run as the real binary in
//! temporary folders: a kit's files and modes, `check` passing on a fresh
//! kit and naming the file when a key or certificate is not the party's,
//! an existing kit left untouched without `--force`, and a whole secure-sum
//! job run from a kit as separate coordinator and participant processes
//! over mutual TLS with the kit's pinned certificates.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");
const MEMBERS: [&str; 3] = ["bank-a", "bank-b", "bank-c"];

fn fedcredit(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("FEDCREDIT_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Provisions a secure-sum kit for `MEMBERS` at `address` in `dir`.
fn provision(dir: &Path, address: &str, dimension: usize, extra: &[&str]) -> Output {
    let d = dimension.to_string();
    let mut args = vec![
        "provision",
        "--out",
        dir.to_str().unwrap(),
        "--coordinator",
        address,
        "--job-kind",
        "secure-sum",
        "--dimension",
        &d,
    ];
    for m in MEMBERS {
        args.extend(["--member", m]);
    }
    args.extend(extra);
    fedcredit(&args)
}

fn provisioned(dir: &Path, address: &str, dimension: usize) {
    let out = provision(dir, address, dimension, &[]);
    assert!(out.status.success(), "provision failed:\n{}", text(&out));
}

fn member_config(kit: &Path, id: &str) -> PathBuf {
    kit.join(id).join(format!("{id}.toml"))
}

fn check(config: &Path) -> Output {
    fedcredit(&["check", "--config", config.to_str().unwrap()])
}

/// The `FAIL` line of check `what`, if any.
fn failed(out: &Output, what: &str) -> Option<String> {
    let prefix = format!("FAIL  {what}: ");
    stdout(out)
        .lines()
        .find(|l| l.starts_with(&prefix))
        .map(str::to_owned)
}

/// The `FAIL` line of check `what`, which must be there.
fn failure(out: &Output, what: &str) -> String {
    failed(out, what).unwrap_or_else(|| panic!("no FAIL line for {what}:\n{}", text(out)))
}

/// Every member's input: `dimension` distinct multiples of 1/4 (exact in
/// 16-bit fixed point), written where its config says.
fn fill_inputs(kit: &Path, dimension: usize) -> Vec<Vec<f64>> {
    MEMBERS
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let values: Vec<f64> = (0..dimension)
                .map(|j| ((i * 1000 + j * 7) as f64 - 1500.0) / 4.0)
                .collect();
            let lines: Vec<String> = values.iter().map(f64::to_string).collect();
            std::fs::write(
                kit.join(id).join(format!("{id}.input.txt")),
                lines.join("\n") + "\n",
            )
            .unwrap();
            values
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, with its bytes and mode.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path.clone(), (bytes, mode(&path)));
            }
        }
    }
    files
}

#[test]
fn a_fresh_kit_has_private_keys_and_passes_check_once_inputs_are_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit");
    provisioned(&kit, "127.0.0.1:50051", 4);

    let secrets = [kit.join("coordinator/coordinator.key")]
        .into_iter()
        .chain(MEMBERS.map(|id| kit.join(id).join(format!("{id}.key"))));
    for key in secrets {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        let hex = std::fs::read_to_string(&key).unwrap();
        assert_eq!(hex.trim().len(), 64, "{}", key.display());
    }
    // No temporary file is left behind.
    for path in snapshot(&kit).keys() {
        assert!(
            !path.to_string_lossy().ends_with(".tmp"),
            "{}",
            path.display()
        );
    }

    // The operator's copy names the coordinator's files; a member's does
    // not, and is otherwise the same consortium.
    let read_table = |path: PathBuf| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let operator = read_table(kit.join("coordinator/consortium.toml"));
    assert_eq!(
        operator["coordinator"]["key_file"].as_str(),
        Some("coordinator.key")
    );
    assert_eq!(
        operator["coordinator"]["cert_file"].as_str(),
        Some("coordinator.crt")
    );
    assert_eq!(operator["tls"]["trust"].as_str(), Some("pinned"));
    for id in MEMBERS {
        let copy = read_table(kit.join(id).join("consortium.toml"));
        let coordinator = copy["coordinator"].as_table().unwrap();
        for operator_only in ["key_file", "log_file", "cert_file", "tls_key_file"] {
            assert!(
                !coordinator.contains_key(operator_only),
                "{id}: {operator_only}"
            );
        }
        for section in ["job", "participants", "tls"] {
            assert_eq!(copy[section], operator[section], "{id}: [{section}]");
        }
        assert_eq!(
            coordinator["public_key"],
            operator["coordinator"]["public_key"]
        );
        let cfg = read_table(member_config(&kit, id));
        assert_eq!(cfg["coordinator"].as_str(), Some("https://127.0.0.1:50051"));
        assert_eq!(
            cfg["input"].as_str(),
            Some(format!("{id}.input.txt").as_str())
        );
    }

    let out = check(&kit.join("coordinator/consortium.toml"));
    assert!(out.status.success(), "coordinator check:\n{}", text(&out));
    for what in ["consortium", "key", "tls", "round log"] {
        assert!(
            stdout(&out).contains(&format!("ok    {what}: ")),
            "{what}:\n{}",
            text(&out)
        );
    }
    assert!(stdout(&out).contains("n = 3 members, threshold t = 3, colluders c = 1"));

    // Before its input is filled in, a member's check names the missing file.
    let out = check(&member_config(&kit, "bank-a"));
    assert!(!out.status.success(), "{}", text(&out));
    let line = failure(&out, "input");
    assert!(line.contains("bank-a.input.txt"), "{line}");

    fill_inputs(&kit, 4);
    for id in MEMBERS {
        let out = check(&member_config(&kit, id));
        assert!(out.status.success(), "{id} check:\n{}", text(&out));
        for what in ["config", "consortium", "key", "tls", "input", "journal"] {
            assert!(
                stdout(&out).contains(&format!("ok    {what}: ")),
                "{id} {what}:\n{}",
                text(&out)
            );
        }
    }

    // An input of the wrong length is caught before any round.
    std::fs::write(kit.join("bank-b/bank-b.input.txt"), "1 2 3\n").unwrap();
    let out = check(&member_config(&kit, "bank-b"));
    assert!(!out.status.success());
    let line = failure(&out, "input");
    assert!(
        line.contains("bank-b.input.txt") && line.contains("dimension is 4"),
        "{line}"
    );
}

#[test]
fn check_names_a_key_file_or_certificate_that_is_not_the_partys() {
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit");
    provisioned(&kit, "127.0.0.1:50051", 2);
    fill_inputs(&kit, 2);
    let config = member_config(&kit, "bank-a");
    let key = kit.join("bank-a/bank-a.key");
    let cert = kit.join("bank-a/bank-a.crt");
    let own_key = std::fs::read(&key).unwrap();

    // Another key in bank-a's key file: a fresh one, as `keygen --force` writes.
    let out = fedcredit(&["keygen", "--out", key.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = check(&config);
    assert!(!out.status.success(), "{}", text(&out));
    let line = failure(&out, "key");
    assert!(
        line.contains(key.to_str().unwrap()) && line.contains("`key_file`"),
        "{line}"
    );
    assert!(
        line.contains("is not the public_key listed for bank-a"),
        "{line}"
    );
    // The certificate no longer carries the key either.
    let line = failure(&out, "tls");
    assert!(line.contains(cert.to_str().unwrap()), "{line}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 of 7 checks failed"),
        "{}",
        text(&out)
    );

    // Its own key back, and another member's certificate.
    std::fs::write(&key, &own_key).unwrap();
    assert!(check(&config).status.success());
    std::fs::copy(kit.join("bank-b/bank-b.crt"), &cert).unwrap();
    let out = check(&config);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(failed(&out, "key").is_none(), "{}", text(&out));
    let line = failure(&out, "tls");
    assert!(
        line.contains(cert.to_str().unwrap()) && line.contains("does not carry the identity key"),
        "{line}"
    );

    // The coordinator's side: a member's key in place of its own.
    let coordinator = kit.join("coordinator/consortium.toml");
    let coordinator_key = kit.join("coordinator/coordinator.key");
    std::fs::write(&coordinator_key, &own_key).unwrap();
    let out = check(&coordinator);
    assert!(!out.status.success(), "{}", text(&out));
    let line = failure(&out, "key");
    assert!(
        line.contains(coordinator_key.to_str().unwrap())
            && line.contains("`coordinator.key_file`")
            && line.contains("is not coordinator.public_key"),
        "{line}"
    );
}

#[test]
fn an_existing_kit_is_left_untouched_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit");
    provisioned(&kit, "127.0.0.1:50051", 2);
    let before = snapshot(&kit);

    let out = provision(&kit, "127.0.0.1:50052", 3, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing was written") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(snapshot(&kit), before, "the refused run changed the kit");

    // With --force the kit is replaced: new keys, the same files, and
    // files it did not write (a round log of the old keys) are named.
    let old_log = kit.join("coordinator/secure-sum.rounds.log");
    std::fs::write(&old_log, "old").unwrap();
    let out = provision(&kit, "127.0.0.1:50052", 3, &["--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(old_log.to_str().unwrap()),
        "{}",
        text(&out)
    );
    let after = snapshot(&kit);
    let mut names: Vec<_> = after.keys().collect();
    names.retain(|p| **p != old_log);
    assert_eq!(names, before.keys().collect::<Vec<_>>());
    for (path, (bytes, mode)) in &before {
        if path.extension().is_some_and(|e| e == "key") {
            assert_ne!(&after[path].0, bytes, "{} kept its key", path.display());
            assert_eq!(after[path].1, 0o600, "{}", path.display());
            assert_eq!(*mode, 0o600);
        }
    }
    assert!(
        check(&kit.join("coordinator/consortium.toml"))
            .status
            .success()
    );
}

#[test]
fn bad_arguments_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit");
    let two = fedcredit(&[
        "provision",
        "--out",
        kit.to_str().unwrap(),
        "--coordinator",
        "127.0.0.1:50051",
        "--member",
        "bank-a",
        "--member",
        "bank-b",
        "--dimension",
        "2",
    ]);
    assert!(!two.status.success());
    assert!(
        String::from_utf8_lossy(&two.stderr).contains("at least 3"),
        "{}",
        text(&two)
    );
    let out = provision(&kit, "127.0.0.1:50051", 2, &["--member", "bank-a"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("given twice"),
        "{}",
        text(&out)
    );
    let out = fedcredit(&[
        "provision",
        "--out",
        kit.to_str().unwrap(),
        "--coordinator",
        "127.0.0.1:50051",
        "--member",
        "a",
        "--member",
        "b",
        "--member",
        "c",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs --dimension"),
        "{}",
        text(&out)
    );
    assert!(!kit.exists(), "a refused run created {}", kit.display());
}

/// A credit-model kit from a job spec file: members fill in `data`, and
/// `check` reads every row against the schema.
#[test]
fn a_credit_model_kit_from_a_job_spec_checks_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit");
    let spec = dir.path().join("job.toml");
    std::fs::write(
        &spec,
        "[job]\nl2 = 1.0\nprivacy = \"none\"\n\n[job.schema.label]\ncolumn = \"y\"\npositive = \"bad\"\nnegative = \"good\"\n\n\
         [[job.schema.features]]\nname = \"amount\"\nkind = \"numeric\"\n\n\
         [[job.schema.features]]\nname = \"purpose\"\nkind = \"categorical\"\ncategories = [\"car\", \"home\"]\n",
    )
    .unwrap();
    let mut args = vec![
        "provision",
        "--out",
        kit.to_str().unwrap(),
        "--coordinator",
        "coordinator.example:50051",
        "--job-kind",
        "logistic-regression",
        "--job-spec",
        spec.to_str().unwrap(),
        "--job-id",
        "credit-q4",
    ];
    for m in MEMBERS {
        args.extend(["--member", m]);
    }
    let out = fedcredit(&args);
    assert!(out.status.success(), "{}", text(&out));
    let consortium = std::fs::read_to_string(kit.join("coordinator/consortium.toml")).unwrap();
    assert!(
        consortium.contains("listen = \"0.0.0.0:50051\""),
        "{consortium}"
    );
    assert!(
        consortium.contains("# The members dial coordinator.example"),
        "{consortium}"
    );
    let cfg = std::fs::read_to_string(member_config(&kit, "bank-a")).unwrap();
    assert!(cfg.contains("data = \"bank-a.csv\""), "{cfg}");
    assert!(
        cfg.contains("coordinator = \"https://coordinator.example:50051\""),
        "{cfg}"
    );

    let csv = kit.join("bank-a/bank-a.csv");
    std::fs::write(
        &csv,
        "purpose,amount,y\ncar,1000,good\nhome,2500,bad\ncar,700,good\nhome,1200,good\ncar,3100,bad\n",
    )
    .unwrap();
    let out = check(&member_config(&kit, "bank-a"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("5 rows checked against the job's schema"),
        "{}",
        text(&out)
    );

    std::fs::write(&csv, "purpose,amount,y\ncar,1000,good\nboat,2500,bad\n").unwrap();
    let out = check(&member_config(&kit, "bank-a"));
    assert!(!out.status.success());
    let line = failure(&out, "data");
    assert!(
        line.contains("bank-a.csv") && line.contains("boat"),
        "{line}"
    );
}

/// Waits for a process with a time limit, killing it if it overstays.
fn wait(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "process overstayed {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sum_in(result: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(result).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["sum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The deployed path: a kit for 127.0.0.1, the coordinator and three
/// participants as separate processes on the kit's files as written
/// (participants dial https:// and present the kit's certificates), and
/// the published sum is the exact sum of the inputs.
#[test]
fn a_kit_runs_a_secure_sum_job_as_separate_processes_over_tls() {
    const D: usize = 16;
    const LIMIT: Duration = Duration::from_secs(120);
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit");
    let address = format!("127.0.0.1:{}", crate::support::free_port());
    let out = provision(&kit, &address, D, &["--job-id", "kit-e2e"]);
    assert!(out.status.success(), "{}", text(&out));
    let inputs = fill_inputs(&kit, D);

    let coordinator = Command::new(BIN)
        .args(["coordinator", "--config"])
        .arg(kit.join("coordinator/consortium.toml"))
        .env("FEDCREDIT_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let participants: Vec<Child> = MEMBERS
        .iter()
        .map(|id| {
            Command::new(BIN)
                .args(["participant", "--config"])
                .arg(member_config(&kit, id))
                .env("FEDCREDIT_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let coordinator = wait(coordinator, LIMIT);
    let participants: Vec<Output> = participants.into_iter().map(|p| wait(p, LIMIT)).collect();
    assert!(
        coordinator.status.success(),
        "coordinator:\n{}",
        text(&coordinator)
    );
    for (id, p) in MEMBERS.iter().zip(&participants) {
        assert!(p.status.success(), "{id}:\n{}", text(p));
        let err = String::from_utf8_lossy(&p.stderr);
        assert!(
            err.contains("mutual TLS 1.3") && err.contains("trust=\"pinned\""),
            "{id} did not run over pinned TLS:\n{err}"
        );
    }
    assert!(
        String::from_utf8_lossy(&coordinator.stderr).contains("mutual TLS 1.3"),
        "{}",
        text(&coordinator)
    );

    let mut expected = vec![0.0; D];
    for values in &inputs {
        for (s, x) in expected.iter_mut().zip(values) {
            *s += x;
        }
    }
    // The coordinator writes beside its config, in a folder named after the job.
    assert_eq!(
        sum_in(&kit.join("coordinator/kit-e2e/result.json")),
        expected
    );
    // Each member replays the published round and writes the same sum.
    for id in MEMBERS {
        let result = kit.join(id).join(format!("{id}-results/result.json"));
        assert_eq!(sum_in(&result), expected, "{id}");
    }
    // A member's copy of the consortium file (without the operator's
    // lines) is the consortium the log was signed under: it audits it.
    let log = kit.join("coordinator/kit-e2e.rounds.log");
    let out = fedcredit(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--consortium",
        kit.join("bank-c/consortium.toml").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "audit:\n{}", text(&out));
}

/// A member that makes its own key and sends only the public key gets a
/// kit folder with no secret in it: the operator can never sign as it.
/// Once it puts its own key file in place, `check` passes; before that, it
/// fails naming the key file; a wrong public key is refused up front.
#[test]
fn a_member_with_its_own_key_gets_no_secret_from_the_kit() {
    let tmp = tempfile::tempdir().unwrap();
    let own = tmp.path().join("bank-c-own.key");
    let out = fedcredit(&["keygen", "--out", own.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let public = stdout(&out).trim().to_owned();
    let kit = tmp.path().join("kit");
    let pair = format!("bank-c={public}");
    let out = provision(&kit, "127.0.0.1:50999", 2, &["--member-key", &pair]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("its own key, not in the kit"),
        "{}",
        text(&out)
    );
    let folder = kit.join("bank-c");
    assert!(
        !folder.join("bank-c.key").exists(),
        "the kit holds bank-c's secret"
    );
    assert!(!folder.join("bank-c.crt").exists());
    let roster = std::fs::read_to_string(folder.join("consortium.toml")).unwrap();
    assert!(
        roster.contains(&public),
        "bank-c's own key is not in the roster"
    );
    fill_inputs(&kit, 2);
    let before = check(&member_config(&kit, "bank-c"));
    assert!(!before.status.success(), "{}", text(&before));
    assert!(
        failure(&before, "key").contains("bank-c.key"),
        "{}",
        text(&before)
    );
    std::fs::copy(&own, folder.join("bank-c.key")).unwrap();
    let after = check(&member_config(&kit, "bank-c"));
    assert!(after.status.success(), "{}", text(&after));

    // Not a member, and not a key: refused, nothing written.
    let kit2 = tmp.path().join("kit2");
    let out = provision(
        &kit2,
        "127.0.0.1:50999",
        2,
        &["--member-key", &format!("mallory={public}")],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not given with --member"),
        "{}",
        text(&out)
    );
    let out = provision(
        &kit2,
        "127.0.0.1:50999",
        2,
        &["--member-key", "bank-c=00ff"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("--member-key bank-c"), "{}", text(&out));
    assert!(!kit2.exists(), "a refused provision wrote files");
}
