//! End-to-end: the real `fedcredit` binary as one coordinator process and
//! several participant processes on loopback, in a temporary folder.
//! Dropouts are real process deaths: `--crash-at` aborts the process at an
//! exact protocol point, and one test SIGKILLs a participant. Two processes
//! that would share a round log or a journal are really started side by
//! side, and SIGTERM is really sent (with `kill -TERM`).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");

/// A consortium laid out on disk: keys, configs and inputs.
struct Consortium {
    dir: tempfile::TempDir,
    ids: Vec<String>,
    inputs: Vec<Vec<f64>>,
}

fn keygen(path: &Path) -> String {
    let out = Command::new(BIN)
        .args(["keygen", "--out"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Consortium {
    /// `n` participants with distinct, exactly representable inputs of length `d`.
    fn new(n: usize, d: usize, protocol: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::support::free_port();
        let coordinator_pk = keygen(&dir.path().join("coordinator.key"));
        let mut members = String::new();
        let mut ids = Vec::new();
        let mut inputs = Vec::new();
        for i in 0..n {
            let id = format!("bank-{}", (b'a' + i as u8) as char);
            let pk = keygen(&dir.path().join(format!("{id}.key")));
            members.push_str(&format!(
                "\n[[participants]]\nid = \"{id}\"\npublic_key = \"{pk}\"\n"
            ));
            // Multiples of 1/4 with both signs: exact in 16-bit fixed point.
            let values: Vec<f64> = (0..d)
                .map(|j| ((i * 1000 + j * 7) as f64 - 2500.0) / 4.0)
                .collect();
            let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            std::fs::write(dir.path().join(format!("{id}.txt")), text.join(",") + "\n").unwrap();
            std::fs::write(
                dir.path().join(format!("{id}.toml")),
                format!(
                    "id = \"{id}\"\nkey_file = \"{id}.key\"\ncoordinator = \"https://127.0.0.1:{port}\"\n\
                     consortium = \"consortium.toml\"\ninput = \"{id}.txt\"\nconnect_timeout_secs = 30\n"
                ),
            )
            .unwrap();
            ids.push(id);
            inputs.push(values);
        }
        std::fs::write(
            dir.path().join("consortium.toml"),
            format!(
                "[coordinator]\nlisten = \"127.0.0.1:{port}\"\npublic_key = \"{coordinator_pk}\"\nkey_file = \"coordinator.key\"\n\n\
                 [protocol]\n{protocol}\n\n[job]\nid = \"e2e\"\nkind = \"secure-sum\"\ndimension = {d}\nfrac_bits = 16\nclip = 1e6\n{members}"
            ),
        )
        .unwrap();
        Self { dir, ids, inputs }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn coordinator(&self) -> Child {
        self.coordinator_with(&[])
    }

    /// The coordinator with extra arguments before the subcommand (e.g. `--log-format json`).
    fn coordinator_with(&self, global: &[&str]) -> Child {
        Command::new(BIN)
            .args(global)
            .args(["coordinator", "--config"])
            .arg(self.path("consortium.toml"))
            .arg("--out")
            .arg(self.path("out"))
            .env("FEDCREDIT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn participant(&self, i: usize, crash_at: Option<&str>) -> Child {
        let mut cmd = Command::new(BIN);
        cmd.args(["participant", "--config"])
            .arg(self.path(&format!("{}.toml", self.ids[i])));
        if let Some(point) = crash_at {
            cmd.args(["--crash-at", point]);
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The exact sum of the inputs of the given participants.
    fn sum_of(&self, who: &[usize]) -> Vec<f64> {
        let mut sum = vec![0.0; self.inputs[0].len()];
        for &i in who {
            for (s, x) in sum.iter_mut().zip(&self.inputs[i]) {
                *s += x;
            }
        }
        sum
    }

    /// `audit verify` of the job's round log against its consortium file,
    /// with every member's journal when `journals`.
    fn audit(&self, journals: bool) -> Output {
        let mut verify = Command::new(BIN);
        verify
            .args(["audit", "verify"])
            .arg(self.path("e2e.rounds.log"))
            .arg("--consortium")
            .arg(self.path("consortium.toml"));
        for id in self.ids.iter().filter(|_| journals) {
            verify
                .arg("--participant-journal")
                .arg(self.path(&format!("{id}.journal")));
        }
        verify.output().unwrap()
    }

    fn result(&self) -> (Vec<String>, Vec<f64>) {
        self.result_in("out/result.json")
    }

    /// The contributors and sum of a result file (`file` under the folder).
    fn result_in(&self, file: &str) -> (Vec<String>, Vec<f64>) {
        let text =
            std::fs::read_to_string(self.path(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let contributors = v["contributors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        let sum = v["sum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        (contributors, sum)
    }
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

const FAST: &str = "phase_deadline_secs = 3\njoin_deadline_secs = 20\nmax_attempts = 1";
const LIMIT: Duration = Duration::from_secs(60);

/// Runs a consortium where participant i crashes at `crash[i]`; returns the
/// coordinator's output and the participants' outputs.
fn run(c: &Consortium, crash: &[Option<&str>]) -> (Output, Vec<Output>) {
    let coordinator = c.coordinator();
    let participants: Vec<Child> = crash
        .iter()
        .enumerate()
        .map(|(i, p)| c.participant(i, *p))
        .collect();
    let coordinator = wait(coordinator, LIMIT);
    let participants = participants.into_iter().map(|p| wait(p, LIMIT)).collect();
    (coordinator, participants)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits until `child` owns `file`: its pid is in `<file>.lock`, which the
/// owner writes once it holds the lock.
fn wait_for_owner(file: &Path, child: &mut Child) {
    let mut lock = file.as_os_str().to_owned();
    lock.push(".lock");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            panic!(
                "process {} exited ({status}) before owning {}:\n{err}",
                child.id(),
                file.display()
            );
        }
        let holder = std::fs::read_to_string(&lock).unwrap_or_default();
        if holder.trim() == child.id().to_string() {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "process {} never took {}",
            child.id(),
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM, as a service manager stopping the daemon would.
fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {}", child.id());
}

#[test]
fn five_participants_publish_the_exact_sum() {
    let c = Consortium::new(5, 1000, FAST);
    let (coordinator, participants) = run(&c, &[None; 5]);
    assert!(
        coordinator.status.success(),
        "coordinator failed:\n{}",
        stderr(&coordinator)
    );
    for p in &participants {
        assert!(p.status.success(), "participant failed:\n{}", stderr(p));
    }
    let (contributors, sum) = c.result();
    assert_eq!(contributors, c.ids);
    assert_eq!(sum, c.sum_of(&[0, 1, 2, 3, 4]));
}

/// `--log-format json`: every line the coordinator and a participant write is
/// one JSON object, and the protocol's facts are keys a log pipeline can
/// select on — the coordinator's job, round, attempt and phase as event
/// fields, a participant's job, round and attempt in its span.
#[test]
fn json_logs_carry_job_round_attempt_and_phase_as_fields() {
    let c = Consortium::new(3, 10, FAST);
    let coordinator = c.coordinator_with(&["--log-format", "json"]);
    let participants: Vec<Child> = (0..3)
        .map(|i| {
            Command::new(BIN)
                .args(["--log-format", "json", "participant", "--config"])
                .arg(c.path(&format!("{}.toml", c.ids[i])))
                .env("FEDCREDIT_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let coordinator = wait(coordinator, LIMIT);
    assert!(coordinator.status.success(), "{}", stderr(&coordinator));
    let lines = |o: &Output| -> Vec<serde_json::Value> {
        stderr(o)
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}"))
            })
            .collect()
    };
    let events = lines(&coordinator);
    let phase_open = events
        .iter()
        .find(|e| e["fields"]["message"] == "phase open")
        .unwrap_or_else(|| panic!("no phase-open event in {events:?}"));
    assert_eq!(phase_open["fields"]["job"], "e2e");
    assert_eq!(
        phase_open["fields"]["round"], 0,
        "rounds and attempts count from 0"
    );
    assert_eq!(phase_open["fields"]["attempt"], 0);
    assert!(phase_open["fields"]["phase"].is_string(), "{phase_open}");
    assert!(phase_open["level"] == "INFO" && phase_open["timestamp"].is_string());
    for p in participants {
        let p = wait(p, LIMIT);
        assert!(p.status.success(), "{}", stderr(&p));
        let events = lines(&p);
        assert!(
            events.iter().any(|e| e["span"]["round"] == 0
                && e["span"]["attempt"] == 0
                && e["span"]["job"] == "e2e"),
            "no event inside a round span: {events:?}"
        );
    }
}

#[test]
fn a_participant_dying_during_share_keys_is_left_out() {
    let c = Consortium::new(5, 200, FAST);
    let (coordinator, participants) = run(&c, &[None, Some("share-keys"), None, None, None]);
    assert!(
        coordinator.status.success(),
        "coordinator failed:\n{}",
        stderr(&coordinator)
    );
    assert!(
        !participants[1].status.success(),
        "the crashing participant should have died"
    );
    let (contributors, sum) = c.result();
    assert_eq!(contributors.len(), 4);
    assert!(!contributors.contains(&c.ids[1]));
    assert_eq!(sum, c.sum_of(&[0, 2, 3, 4]));
}

#[test]
fn a_participant_dying_after_its_masked_input_is_still_summed() {
    let c = Consortium::new(5, 200, FAST);
    let (coordinator, participants) = run(&c, &[None, None, Some("masked-input"), None, None]);
    assert!(
        coordinator.status.success(),
        "coordinator failed:\n{}",
        stderr(&coordinator)
    );
    assert!(!participants[2].status.success());
    // Its input arrived, so it is in the sum; its self mask is rebuilt from shares.
    let (contributors, sum) = c.result();
    assert_eq!(contributors, c.ids);
    assert_eq!(sum, c.sum_of(&[0, 1, 2, 3, 4]));
}

/// A sparse round (SecAgg+, `neighbours = 4`, `share_threshold = 3` in the
/// consortium file) among ten processes: one member dies after advertising
/// its keys (in U1, not U2: its neighbours mask without it), one after its
/// masked input (in U3, not U4: its self mask is rebuilt from 3 of its 4
/// neighbours' shares). The sum over the nine whose inputs arrived is
/// exact, and the auditor replays the log over the graph it derives from
/// the same consortium file.
#[test]
fn a_sparse_round_with_dropouts_publishes_the_exact_sum_and_verifies() {
    let c = Consortium::new(
        10,
        20,
        "phase_deadline_secs = 4\njoin_deadline_secs = 30\nmax_attempts = 1\n\
         neighbours = 4\nshare_threshold = 3",
    );
    let mut crash = vec![None; 10];
    crash[3] = Some("share-keys");
    crash[6] = Some("masked-input");
    let (coordinator, participants) = run(&c, &crash);
    assert!(
        coordinator.status.success(),
        "coordinator failed:\n{}",
        stderr(&coordinator)
    );
    assert!(!participants[3].status.success());
    assert!(!participants[6].status.success());
    let summed: Vec<usize> = (0..10).filter(|i| *i != 3).collect();
    let (contributors, sum) = c.result();
    let expected: Vec<String> = summed.iter().map(|i| c.ids[*i].clone()).collect();
    assert_eq!(contributors, expected);
    assert_eq!(sum, c.sum_of(&summed));
    let v = c.audit(true);
    assert!(
        v.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    // The auditor with a consortium file that says complete graph refuses
    // the same log: the graph is checked, not ignored.
    let text = std::fs::read_to_string(c.path("consortium.toml")).unwrap();
    let complete = text.replace("neighbours = 4\nshare_threshold = 3", "");
    assert_ne!(complete, text);
    std::fs::write(c.path("complete.toml"), complete).unwrap();
    let v = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(c.path("e2e.rounds.log"))
        .arg("--consortium")
        .arg(c.path("complete.toml"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(!v.status.success(), "{out}");
    assert!(out.contains("graph"), "{out}");
}

/// A masked input longer than one message streams in signed chunks
/// (300,000 words: three chunks). A participant killed half-way through its
/// stream is out of the sum, its logged chunk taken out again; the others'
/// sum is exact, and the auditor verifies the log (every chunk against its
/// member's signature and journal, the sum from the whole inputs only).
#[test]
fn a_participant_dying_half_way_through_a_chunked_input_is_not_in_the_sum() {
    let c = Consortium::new(
        5,
        300_000,
        "phase_deadline_secs = 8\njoin_deadline_secs = 30\nmax_attempts = 1",
    );
    // The coordinator prints the 300,000-value result on stdout: not piped,
    // or it would block on a full pipe nobody reads until it exits.
    let coordinator = Command::new(BIN)
        .args(["coordinator", "--config"])
        .arg(c.path("consortium.toml"))
        .arg("--out")
        .arg(c.path("out"))
        .env("FEDCREDIT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let crash = [None, None, Some("mid-input"), None, None];
    let participants: Vec<Child> = (0..5).map(|i| c.participant(i, crash[i])).collect();
    let coordinator = wait(coordinator, LIMIT);
    let participants: Vec<Output> = participants.into_iter().map(|p| wait(p, LIMIT)).collect();
    let err = stderr(&coordinator);
    assert!(coordinator.status.success(), "coordinator failed:\n{err}");
    assert!(!participants[2].status.success());
    assert!(
        err.contains("took an incomplete chunked masked input out of the sum"),
        "{err}"
    );
    let (contributors, sum) = c.result();
    let others: Vec<String> = [0, 1, 3, 4].iter().map(|i| c.ids[*i].clone()).collect();
    assert_eq!(contributors, others);
    assert_eq!(sum, c.sum_of(&[0, 1, 3, 4]));
    let v = c.audit(true);
    assert!(
        v.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn a_participant_dying_during_unmask_is_still_summed() {
    let c = Consortium::new(5, 200, FAST);
    let (coordinator, participants) = run(&c, &[Some("unmask"), None, None, None, None]);
    assert!(
        coordinator.status.success(),
        "coordinator failed:\n{}",
        stderr(&coordinator)
    );
    assert!(!participants[0].status.success());
    let (contributors, sum) = c.result();
    assert_eq!(contributors, c.ids);
    assert_eq!(sum, c.sum_of(&[0, 1, 2, 3, 4]));
}

#[test]
fn too_few_survivors_fail_cleanly_naming_phase_and_counts() {
    // n = 5, t = 4: two deaths in share-keys leave 3.
    let c = Consortium::new(5, 50, FAST);
    let (coordinator, participants) = run(
        &c,
        &[Some("share-keys"), None, Some("share-keys"), None, None],
    );
    assert!(
        !coordinator.status.success(),
        "the round should have failed"
    );
    let err = stderr(&coordinator);
    assert!(
        err.contains("share-keys: only 3 parties remain, 4 are needed"),
        "{err}"
    );
    assert!(
        !c.path("result.json").exists(),
        "no result may be published"
    );
    // The survivors are told why and exit with an error, not a hang.
    for i in [1, 3, 4] {
        let e = stderr(&participants[i]);
        assert!(!participants[i].status.success());
        assert!(e.contains("share-keys"), "participant {i}:\n{e}");
    }
}

#[test]
fn a_participant_killed_before_the_round_does_not_stop_it() {
    let c = Consortium::new(
        5,
        100,
        "phase_deadline_secs = 3\njoin_deadline_secs = 4\nmax_attempts = 1",
    );
    let coordinator = c.coordinator();
    let mut doomed = c.participant(4, None);
    doomed.kill().unwrap(); // SIGKILL
    let _ = doomed.wait();
    let others: Vec<Child> = (0..4).map(|i| c.participant(i, None)).collect();
    let coordinator = wait(coordinator, LIMIT);
    assert!(
        coordinator.status.success(),
        "coordinator failed:\n{}",
        stderr(&coordinator)
    );
    for p in others {
        let o = wait(p, LIMIT);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (contributors, sum) = c.result();
    assert_eq!(contributors, &c.ids[..4]);
    assert_eq!(sum, c.sum_of(&[0, 1, 2, 3]));
}

#[test]
fn a_bad_config_names_the_file_and_key() {
    let c = Consortium::new(3, 4, "threshold = 1");
    let out = Command::new(BIN)
        .args(["coordinator", "--config"])
        .arg(c.path("consortium.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("consortium.toml") && err.contains("protocol.threshold"),
        "{err}"
    );
}

#[test]
fn a_participant_with_a_malformed_input_says_where() {
    let c = Consortium::new(3, 4, FAST);
    std::fs::write(c.path("bank-a.txt"), "1, 2\n3, x4\n").unwrap();
    let out = Command::new(BIN)
        .args(["participant", "--config"])
        .arg(c.path("bank-a.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bank-a.txt:2") && err.contains("\"x4\""),
        "{err}"
    );
}

/// Regression: two coordinators given one round log both ran, and one
/// overwrote the other's records. The second now stops at once, naming the
/// first by pid, leaves the log as it was, and an auditor still reads the
/// log while the first holds it.
#[test]
fn a_second_coordinator_on_the_same_log_is_refused_naming_the_first() {
    let c = Consortium::new(3, 4, "join_deadline_secs = 120");
    let log = c.path("e2e.rounds.log");
    let mut first = c.coordinator();
    wait_for_owner(&log, &mut first);
    // The lock is taken before the log is written: read the log only once
    // the first says it waits for participants (its records are synced).
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(first.stderr.take().unwrap()));
    assert!(
        lines.any(|l| l.unwrap().contains("waiting for participants")),
        "the first coordinator never waited for participants"
    );
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let before = std::fs::read(&log).unwrap();

    // Its own port (any free one), so the log is all the two share.
    let config = std::fs::read_to_string(c.path("consortium.toml")).unwrap();
    let listen = config
        .lines()
        .find(|l| l.starts_with("listen = "))
        .unwrap()
        .to_owned();
    std::fs::write(
        c.path("second.toml"),
        config.replace(&listen, "listen = \"127.0.0.1:0\""),
    )
    .unwrap();
    let second = Command::new(BIN)
        .args(["coordinator", "--config"])
        .arg(c.path("second.toml"))
        .arg("--log")
        .arg(&log)
        .arg("--out")
        .arg(c.path("out-second"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first waits 120 s for its members; the second must not wait at all.
    let second = wait(second, LIMIT);
    assert!(!second.status.success(), "the second coordinator ran");
    let err = stderr(&second);
    assert!(
        err.contains(&format!(
            "round log {} is in use by another coordinator (pid {})",
            log.display(),
            first.id()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "the refused coordinator changed the log"
    );

    let show = Command::new(BIN)
        .args(["audit", "show"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        show.status.success(),
        "audit show while a coordinator holds the log:\n{}",
        stderr(&show)
    );
    first.kill().unwrap();
    let _ = first.wait();
}

/// Regression: two participants started with one config shared one
/// journal (and could each confirm a different contributor set for one
/// task). The second now stops at once, naming the first by pid.
#[test]
fn a_second_participant_on_the_same_journal_is_refused_naming_the_first() {
    let c = Consortium::new(3, 4, FAST);
    let journal = c.path("bank-a.journal");
    // No coordinator is needed: a participant holds its journal from the
    // start, while it dials (and keeps redialling) the coordinator.
    let mut first = c.participant(0, None);
    wait_for_owner(&journal, &mut first);
    let second = wait(c.participant(0, None), LIMIT);
    assert!(!second.status.success(), "the second participant ran");
    let err = stderr(&second);
    assert!(
        err.contains(&format!(
            "journal {} is in use by another participant (pid {})",
            journal.display(),
            first.id()
        )),
        "{err}"
    );
    first.kill().unwrap();
    let _ = first.wait();
}

/// Waits until `member`'s journal holds a message of `phase`.
fn wait_for_journaled(c: &Consortium, member: &str, phase: &str) {
    let path = c.path(&format!("{member}.journal"));
    let needle = format!("\"phase\":\"{phase}\"");
    let start = Instant::now();
    while !std::fs::read_to_string(&path)
        .unwrap_or_default()
        .contains(&needle)
    {
        assert!(start.elapsed() < LIMIT, "{member} never journaled {phase}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM stops a coordinator and a participant as SIGINT does: each exits
/// by itself with status 0 and logs where it left the job (round, attempt
/// and phase; its log or journal synced), instead of dying with status 143
/// and no word. The stop comes mid-round: bank-d dies before revealing, so
/// the coordinator waits in the unmask phase for it.
#[test]
fn sigterm_stops_coordinator_and_participant_saying_where_they_left_off() {
    let c = Consortium::new(
        4,
        10,
        "phase_deadline_secs = 120\njoin_deadline_secs = 60\nmax_attempts = 1",
    );
    let coordinator = c.coordinator();
    let live: Vec<Child> = (0..3).map(|i| c.participant(i, None)).collect();
    let doomed = wait(c.participant(3, Some("unmask")), LIMIT);
    assert!(!doomed.status.success(), "bank-d should have died");
    for id in &c.ids[..3] {
        wait_for_journaled(&c, id, "unmask");
    }

    for (i, p) in live.into_iter().enumerate() {
        sigterm(&p);
        let o = wait(p, LIMIT);
        let err = stderr(&o);
        assert!(o.status.success(), "{}: {:?}\n{err}", c.ids[i], o.status);
        assert!(err.contains("received SIGTERM; shutting down"), "{err}");
        assert!(
            err.contains(&format!(
                "stopped before the job finished; journal {} (synced): last signed job e2e round 0 attempt 0 (unmask)",
                c.path(&format!("{}.journal", c.ids[i])).display()
            )),
            "{err}"
        );
    }

    sigterm(&coordinator);
    let o = wait(coordinator, LIMIT);
    let err = stderr(&o);
    assert!(o.status.success(), "coordinator: {:?}\n{err}", o.status);
    assert!(err.contains("received SIGTERM; shutting down"), "{err}");
    assert!(
        err.contains(
            "stopped before the job finished: round 0 attempt 0 is in phase unmask; the round log is synced"
        ),
        "{err}"
    );
    assert!(!c.path("out/result.json").exists(), "nothing was published");
    // The log it left ends cleanly: the auditor reads it whole.
    let show = Command::new(BIN)
        .args(["audit", "show"])
        .arg(c.path("e2e.rounds.log"))
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
}

/// A member that dies in a round and comes back (a new process) takes part
/// in the retry that finishes the job: the coordinator must count it as
/// present again and tell it the job's end, so that it writes its result,
/// instead of finishing as soon as the members it still believed alive
/// were told.
#[test]
fn a_member_restarted_mid_round_is_told_the_end_of_the_job() {
    let c = Consortium::new(
        5,
        3,
        "phase_deadline_secs = 3\njoin_deadline_secs = 20\nmax_attempts = 2",
    );
    // Every member in every round: the attempt without bank-e aborts and is
    // retried with the restarted bank-e.
    let path = c.path("consortium.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("clip = 1e6\n", "clip = 1e6\nrequire_all_members = true\n"),
    )
    .unwrap();
    let coordinator = c.coordinator();
    let others: Vec<Child> = (0..4).map(|i| c.participant(i, None)).collect();
    let crashed = wait(c.participant(4, Some("share-keys")), LIMIT);
    assert!(!crashed.status.success());
    let restarted = c.participant(4, None);
    let coordinator = wait(coordinator, LIMIT);
    assert!(coordinator.status.success(), "{}", stderr(&coordinator));
    for p in others {
        let o = wait(p, LIMIT);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = wait(restarted, LIMIT);
    assert!(o.status.success(), "the restarted member: {}", stderr(&o));
    let (contributors, sum) = c.result();
    assert_eq!(contributors.len(), 5);
    assert_eq!(sum, c.sum_of(&[0, 1, 2, 3, 4]));
    let own = std::fs::read_to_string(c.path("bank-e-results/result.json")).unwrap();
    assert!(own.contains("\"sum\""), "{own}");
}

/// Runs every member of `c` to the end beside a running coordinator, and
/// returns the coordinator's output.
fn run_all(c: &Consortium) -> Output {
    let coordinator = c.coordinator();
    let members: Vec<Child> = (0..c.ids.len()).map(|i| c.participant(i, None)).collect();
    let coordinator = wait(coordinator, LIMIT);
    for m in members {
        let out = wait(m, LIMIT);
        assert!(
            out.status.success(),
            "participant failed:\n{}",
            stderr(&out)
        );
    }
    coordinator
}

/// Key rotation, as README "Rotating a member's key" says: the operator
/// replaces bank-a's key in consortium.toml; bank-a still running with the
/// old key is refused in the TLS handshake (and says so), the new key joins.
#[test]
fn a_rotated_key_is_refused_at_the_handshake_and_the_new_one_joins() {
    let c = Consortium::new(3, 50, FAST);
    // The old key stays with a copy of the old consortium file, as on a
    // member's host that was not updated.
    std::fs::copy(c.path("bank-a.key"), c.path("old.key")).unwrap();
    std::fs::copy(c.path("consortium.toml"), c.path("old-consortium.toml")).unwrap();
    std::fs::write(
        c.path("old.toml"),
        std::fs::read_to_string(c.path("bank-a.toml"))
            .unwrap()
            .replace("bank-a.key", "old.key")
            .replace("\"consortium.toml\"", "\"old-consortium.toml\"")
            + "journal = \"old.journal\"\n",
    )
    .unwrap();
    let old_pk = std::fs::read_to_string(c.path("consortium.toml")).unwrap();
    std::fs::remove_file(c.path("bank-a.key")).unwrap();
    let new_pk = keygen(&c.path("bank-a.key"));
    let old_line = old_pk
        .lines()
        .skip_while(|l| *l != "id = \"bank-a\"")
        .nth(1)
        .unwrap()
        .to_owned();
    std::fs::write(
        c.path("consortium.toml"),
        old_pk.replace(&old_line, &format!("public_key = \"{new_pk}\"")),
    )
    .unwrap();

    let coordinator = c.coordinator();
    let stale = Command::new(BIN)
        .args(["participant", "--config"])
        .arg(c.path("old.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stale = wait(stale, LIMIT);
    let said = stderr(&stale);
    assert!(!stale.status.success(), "the old key got in:\n{said}");
    assert!(
        said.contains("the coordinator refused this participant's certificate"),
        "{said}"
    );
    // The members with current keys, bank-a's new one among them, finish.
    let members: Vec<Child> = (0..3).map(|i| c.participant(i, None)).collect();
    let coordinator = wait(coordinator, LIMIT);
    for m in members {
        let out = wait(m, LIMIT);
        assert!(
            out.status.success(),
            "participant failed:\n{}",
            stderr(&out)
        );
    }
    let log = stderr(&coordinator);
    assert!(coordinator.status.success(), "{log}");
    assert!(
        log.contains("its key is not the identity key of any member"),
        "the coordinator did not log the refused handshake:\n{log}"
    );
    let (contributors, sum) = c.result();
    assert_eq!(contributors, c.ids);
    assert_eq!(sum, c.sum_of(&[0, 1, 2]));
}

/// The same consortium run over mutual TLS (the default) and, on loopback
/// with both sides' explicit consent, in plaintext: the published sums are
/// the same bit for bit (TLS changes the transport, nothing else).
#[test]
fn mutual_tls_and_plaintext_publish_the_same_sum_bit_for_bit() {
    let c = Consortium::new(3, 300, FAST);
    let tls = run_all(&c);
    assert!(tls.status.success(), "{}", stderr(&tls));
    assert!(stderr(&tls).contains("mutual TLS 1.3"), "{}", stderr(&tls));
    let (_, over_tls) = c.result();

    // Plaintext: both the consortium file and every member config say so.
    let consortium = std::fs::read_to_string(c.path("consortium.toml")).unwrap();
    std::fs::write(
        c.path("consortium.toml"),
        consortium.replacen("[coordinator]\n", "[coordinator]\nplaintext = true\n", 1),
    )
    .unwrap();
    for id in &c.ids {
        let path = c.path(&format!("{id}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("https://", "http://") + "plaintext = true\n",
        )
        .unwrap();
    }
    std::fs::remove_dir_all(c.path("out")).unwrap();
    std::fs::remove_file(c.path("e2e.rounds.log")).unwrap();
    for id in &c.ids {
        let _ = std::fs::remove_file(c.path(&format!("{id}.journal")));
    }
    let plain = run_all(&c);
    let log = stderr(&plain);
    assert!(plain.status.success(), "{log}");
    assert!(log.contains("PLAINTEXT"), "no plaintext warning:\n{log}");
    let (_, over_plaintext) = c.result();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&over_tls), bits(&over_plaintext));
    assert_eq!(over_tls, c.sum_of(&[0, 1, 2]));
}

/// The coordinator's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A flood from an unlisted client (from 127.0.0.2: connections that never
/// speak, and full TLS handshakes with a key in no roster), before and
/// during a job: the coordinator's memory stays flat and the job publishes
/// the exact sum.
#[test]
fn a_connection_flood_from_an_unlisted_client_neither_grows_memory_nor_stops_the_round() {
    let c = Consortium::new(3, 2000, FAST);
    let mut coordinator = c.coordinator();
    let pid = coordinator.id();
    // Listening: a member-less probe connects.
    let port: u16 = std::fs::read_to_string(c.path("consortium.toml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
        .unwrap()
        .trim_end_matches('"')
        .parse()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(start.elapsed() < LIMIT, "the coordinator never listened");
        if let Some(s) = coordinator.try_wait().unwrap() {
            panic!("coordinator exited: {s}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let baseline = rss_kib(pid);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = std::sync::Arc::clone(&stop);
        let consortium =
            fedcredit_referee::consortium::Consortium::load(&c.path("consortium.toml")).unwrap();
        std::thread::spawn(move || flood(addr, &consortium, &stop))
    };
    // Let the flood run alone for a while, then start the members.
    let mut peak = baseline;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let members: Vec<Child> = (0..3).map(|i| c.participant(i, None)).collect();
    while coordinator.try_wait().unwrap().is_none() {
        peak = peak.max(rss_kib(pid));
        assert!(
            start.elapsed() < LIMIT * 2,
            "the job did not finish under the flood"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (attempts, handshakes) = flood.join().unwrap();
    let coordinator = wait(coordinator, LIMIT);
    for m in members {
        let out = wait(m, LIMIT);
        assert!(
            out.status.success(),
            "participant failed:\n{}",
            stderr(&out)
        );
    }
    assert!(coordinator.status.success(), "{}", stderr(&coordinator));
    let (contributors, sum) = c.result();
    assert_eq!(contributors, c.ids);
    assert_eq!(sum, c.sum_of(&[0, 1, 2]));
    println!(
        "flood: {attempts} connections ({handshakes} TLS handshakes with an unlisted key); \
         coordinator RSS {baseline} KiB before, peak {peak} KiB"
    );
    assert!(
        attempts >= 500,
        "the flood did not run: {attempts} connections"
    );
    assert!(
        peak.saturating_sub(baseline) < 48 * 1024,
        "coordinator memory grew from {baseline} KiB to {peak} KiB under the flood"
    );
}

/// Opens connections from 127.0.0.2 until `stop`: up to 200 at a time, every
/// other one a TLS handshake with a key in no roster, the rest silent.
/// Returns (connections opened, handshakes attempted).
fn flood(
    addr: std::net::SocketAddr,
    consortium: &fedcredit_referee::consortium::Consortium,
    stop: &std::sync::atomic::AtomicBool,
) -> (u64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outsider = fedcredit_crypto::identity::IdentityKey::from_secret_bytes(&[201; 32]);
    let id = fedcredit_proto::roster::ParticipantId::new("bank-a").unwrap();
    let tls = fedcredit_transport::setup::member(consortium, &id, &outsider, None, None).unwrap();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        let (mut attempts, mut handshakes) = (0u64, 0u64);
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            while tasks.len() < 200 {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
                attempts += 1;
                let speak = attempts % 2 == 0;
                handshakes += u64::from(speak);
                let tls = tls.clone();
                tasks.spawn(async move {
                    let Ok(tcp) = socket.connect(addr).await else {
                        return;
                    };
                    if speak {
                        if let Ok(mut s) =
                            fedcredit_transport::client::handshake(&tls, "127.0.0.1", tcp).await
                        {
                            use tokio::io::AsyncReadExt;
                            let mut b = [0u8; 1];
                            let _ = s.read(&mut b).await;
                        }
                    } else {
                        // Silent: holds a handshake slot until the server's
                        // handshake timeout closes it (or is closed at once
                        // beyond the caps).
                        use tokio::io::AsyncReadExt;
                        let mut tcp = tcp;
                        let mut b = [0u8; 1];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut b)).await;
                    }
                });
            }
            let _ = tasks.join_next().await;
        }
        tasks.abort_all();
        (attempts, handshakes)
    })
}

/// CA trust mode with separate processes: a consortium CA issues the
/// coordinator's certificate (for 127.0.0.1) and each member's (naming its
/// id); the daemons read them from the config files and the job publishes
/// the exact sum. A member whose certificate names another member is
/// refused in the handshake.
#[test]
fn a_job_under_a_consortium_ca_publishes_the_exact_sum() {
    let c = Consortium::new(3, 40, FAST);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Consortium test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(c.path("ca.pem"), ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let issue = |name: &str, sans: &[&str]| {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(c.path(&format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(c.path(&format!("{name}.tls.key")), key.serialize_pem()).unwrap();
    };
    issue("coordinator", &["127.0.0.1"]);
    for id in &c.ids {
        issue(id, &[id.as_str()]);
        let path = c.path(&format!("{id}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            format!("{text}cert_file = \"{id}.crt\"\ntls_key_file = \"{id}.tls.key\"\n"),
        )
        .unwrap();
    }
    let consortium = std::fs::read_to_string(c.path("consortium.toml")).unwrap();
    std::fs::write(
        c.path("consortium.toml"),
        consortium.replacen(
            "[coordinator]\n",
            "[tls]\ntrust = \"ca\"\nca_file = \"ca.pem\"\n\n[coordinator]\n\
             cert_file = \"coordinator.crt\"\ntls_key_file = \"coordinator.tls.key\"\n",
            1,
        ),
    )
    .unwrap();

    // bank-a's config presenting bank-b's certificate: it names bank-b, so
    // bank-a's own check refuses it before dialling.
    let text = std::fs::read_to_string(c.path("bank-a.toml")).unwrap();
    std::fs::write(
        c.path("swapped.toml"),
        text.replace("bank-a.crt", "bank-b.crt")
            .replace("bank-a.tls.key", "bank-b.tls.key")
            + "journal = \"swapped.journal\"\n",
    )
    .unwrap();
    let swapped = Command::new(BIN)
        .args(["participant", "--config"])
        .arg(c.path("swapped.toml"))
        .output()
        .unwrap();
    assert!(!swapped.status.success());
    assert!(
        stderr(&swapped).contains("it does not name bank-a"),
        "{}",
        stderr(&swapped)
    );

    let coordinator = run_all(&c);
    let log = stderr(&coordinator);
    assert!(coordinator.status.success(), "{log}");
    assert!(log.contains("trust=\"ca\""), "{log}");
    let (contributors, sum) = c.result();
    assert_eq!(contributors, c.ids);
    assert_eq!(sum, c.sum_of(&[0, 1, 2]));
}

impl Consortium {
    /// Turns the job into a series of `rounds` sums: member i's input for
    /// sum k is its single input plus 1000·k (exact in 16-bit fixed point),
    /// in `<id>-<k>.txt`, named by `input = "<id>-{index}.txt"`. `missing`
    /// leaves one (member, sum) file unwritten. Returns inputs[k][i].
    fn make_series(&self, rounds: u32, missing: Option<(usize, u32)>) -> Vec<Vec<Vec<f64>>> {
        let file = self.path("consortium.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let series = text.replace("clip = 1e6\n", &format!("clip = 1e6\nrounds = {rounds}\n"));
        assert_ne!(series, text);
        std::fs::write(&file, series).unwrap();
        let mut all = Vec::new();
        for k in 0..rounds {
            let mut inputs = Vec::new();
            for (i, id) in self.ids.iter().enumerate() {
                let values: Vec<f64> = self.inputs[i]
                    .iter()
                    .map(|x| x + 1000.0 * f64::from(k))
                    .collect();
                if missing != Some((i, k)) {
                    let text: Vec<String> = values.iter().map(f64::to_string).collect();
                    std::fs::write(self.path(&format!("{id}-{k}.txt")), text.join("\n")).unwrap();
                }
                inputs.push(values);
            }
            all.push(inputs);
        }
        for id in &self.ids {
            let config = self.path(&format!("{id}.toml"));
            let text = std::fs::read_to_string(&config).unwrap();
            let named = text.replace(
                &format!("input = \"{id}.txt\""),
                &format!("input = \"{id}-{{index}}.txt\""),
            );
            assert_ne!(named, text);
            std::fs::write(&config, named).unwrap();
        }
        all
    }
}

/// A secure-sum series (`rounds = 3`) with keys agreed and secrets shared
/// once (`setup = "epoch"`): three separate sums of fresh inputs, each
/// written to its own result file by the coordinator and by every member,
/// exact, and the round log verifies with every member's journal.
#[test]
fn a_series_of_sums_in_one_epoch_publishes_each_exactly_and_verifies() {
    let c = Consortium::new(4, 20, &format!("{FAST}\nsetup = \"epoch\"\nslots = 4"));
    let inputs = c.make_series(3, None);
    let coordinator = run_all(&c);
    assert!(
        coordinator.status.success(),
        "coordinator failed:\n{}",
        stderr(&coordinator)
    );
    assert!(
        !c.path("out/result.json").exists(),
        "a series writes one file per sum"
    );
    for (k, inputs) in inputs.iter().enumerate() {
        let want: Vec<f64> = (0..inputs[0].len())
            .map(|j| inputs.iter().map(|v| v[j]).sum())
            .collect();
        for out in ["out".to_owned(), "bank-c-results".to_owned()] {
            let text = std::fs::read_to_string(c.path(&format!("{out}/result-{k}.json")))
                .unwrap_or_else(|e| panic!("{out}/result-{k}.json: {e}"));
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["index"], k, "{out}");
            let sum: Vec<f64> = v["sum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(sum, want, "{out}: sum {k}");
        }
    }
    let v = c.audit(true);
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{report}\n{}", stderr(&v));
    assert!(report.contains("3 round attempts: 3 OK"), "{report}");
}

/// A member whose file for the second sum of a series is missing names the
/// file and leaves (`contribution-failed`); the first sum stays published in
/// the log, and the second, under the fixed cohort, is not published without
/// it: the job fails, and the auditor verifies that it failed with cause.
/// The coordinator and every member, the one that left included, still
/// write the first sum: before, a failed series left it only in the log (and
/// members wrote result files only when the job finished).
#[test]
fn a_series_member_missing_a_later_file_names_it_and_no_partial_sum_is_published() {
    let c = Consortium::new(3, 5, FAST);
    let inputs = c.make_series(2, Some((1, 1)));
    let coordinator = c.coordinator();
    let members: Vec<Child> = (0..3).map(|i| c.participant(i, None)).collect();
    let coordinator = wait(coordinator, LIMIT);
    let members: Vec<Output> = members.into_iter().map(|m| wait(m, LIMIT)).collect();
    assert!(!coordinator.status.success(), "{}", stderr(&coordinator));
    let err = stderr(&members[1]);
    assert!(err.contains("bank-b-1.txt"), "{err}");
    assert!(!c.path("out/result-1.json").exists());
    let said = String::from_utf8_lossy(&coordinator.stdout);
    assert!(
        said.contains("the sum published before the failure: "),
        "{said}"
    );
    let (contributors, sum) = c.result_in("out/result-0.json");
    let want: Vec<f64> = (0..5)
        .map(|j| inputs[0].iter().map(|v| v[j]).sum())
        .collect();
    assert_eq!((contributors, sum), (c.ids.clone(), want.clone()));
    for (i, m) in members.iter().enumerate() {
        let own = format!("{}-results", c.ids[i]);
        assert!(!m.status.success(), "{own}");
        assert_eq!(
            c.result_in(&format!("{own}/result-0.json")),
            (c.ids.clone(), want.clone()),
            "{own}"
        );
        assert!(!c.path(&format!("{own}/result-1.json")).exists());
    }
    // The log holds sum 0 published over all three, and no sum 1.
    let v = c.audit(false);
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(
        report.contains("round 0 attempt 0: OK, 3 contributors"),
        "{report}"
    );
    assert!(!report.contains("round 1 attempt 0: OK"), "{report}");
}

/// Regression: a member that left mid-round with a signed `Leave` (here: its
/// file for the second sum is missing) was still waited for until the phase
/// deadline, so every member that left cost the others a whole deadline.
/// With a deadline longer than the test's limit, the second sum is now
/// published over the other three at once, per round and from an epoch
/// (whose slot is abandoned and set up anew without the member), and the
/// auditor verifies the log, naming the departure.
fn a_member_that_leaves_mid_series_is_not_waited_for(protocol: &str, published: &str) {
    let c = Consortium::new(
        4,
        5,
        &format!("phase_deadline_secs = 120\njoin_deadline_secs = 20\n{protocol}"),
    );
    let text = std::fs::read_to_string(c.path("consortium.toml")).unwrap();
    let shrink = text.replace(
        "kind = \"secure-sum\"\n",
        "kind = \"secure-sum\"\ncohort = \"shrink\"\n",
    );
    assert_ne!(shrink, text);
    std::fs::write(c.path("consortium.toml"), shrink).unwrap();
    let inputs = c.make_series(2, Some((1, 1)));
    let coordinator = c.coordinator();
    let members: Vec<Child> = (0..4).map(|i| c.participant(i, None)).collect();
    let coordinator = wait(coordinator, LIMIT);
    let members: Vec<Output> = members.into_iter().map(|m| wait(m, LIMIT)).collect();
    let log = stderr(&coordinator);
    assert!(coordinator.status.success(), "coordinator failed:\n{log}");
    assert!(
        stderr(&members[1]).contains("bank-b-1.txt"),
        "{}",
        stderr(&members[1])
    );
    assert!(log.contains("participant left the job"), "{log}");
    assert!(!log.contains("no answer before the deadline"), "{log}");
    let want: Vec<f64> = (0..5)
        .map(|j| [0, 2, 3].iter().map(|&i| inputs[1][i][j]).sum())
        .collect();
    let (contributors, sum) = c.result_in("out/result-1.json");
    assert_eq!(
        (contributors, sum),
        (
            vec![c.ids[0].clone(), c.ids[2].clone(), c.ids[3].clone()],
            want
        )
    );
    let v = c.audit(false);
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{report}\n{}", stderr(&v));
    for line in ["bank-b left: contribution-failed", published] {
        assert!(report.contains(line), "{line:?} missing from:\n{report}");
    }
}

#[test]
fn a_member_that_leaves_mid_round_is_not_waited_for() {
    a_member_that_leaves_mid_series_is_not_waited_for(
        "max_attempts = 1",
        "round 1 attempt 0: OK, 3 contributors (bank-a, bank-c, bank-d)",
    );
}

#[test]
fn a_member_that_leaves_an_epoch_is_not_waited_for() {
    // The slot is abandoned (bank-b's input was due in it) and the next
    // attempt sets up a new epoch without bank-b.
    a_member_that_leaves_mid_series_is_not_waited_for(
        "max_attempts = 2\nsetup = \"epoch\"\nslots = 4",
        "round 1 attempt 1: OK, 3 contributors (bank-a, bank-c, bank-d)",
    );
}

/// Regression: under the fixed cohort, once a member has left with a signed
/// `Leave` the next round cannot publish, yet the coordinator announced
/// fresh attempts: per round, each ran to the masked input and was aborted;
/// after an epoch's slot, the new epoch was refused by the others in silence
/// and the coordinator waited a whole phase deadline per attempt. With a
/// deadline longer than the test's limit and attempts to spare, the job now
/// fails at once, naming who left, and the first sum is kept.
fn a_fixed_cohort_that_lost_a_member_fails_at_once(protocol: &str, cohort: &str, why: &str) {
    let c = Consortium::new(
        4,
        5,
        &format!(
            "phase_deadline_secs = 120\njoin_deadline_secs = 20\nmax_attempts = 3\n{protocol}"
        ),
    );
    let text = std::fs::read_to_string(c.path("consortium.toml")).unwrap();
    let with_cohort = text.replace(
        "kind = \"secure-sum\"\n",
        &format!("kind = \"secure-sum\"\ncohort = \"{cohort}\"\n"),
    );
    assert_ne!(with_cohort, text);
    std::fs::write(c.path("consortium.toml"), with_cohort).unwrap();
    let inputs = c.make_series(2, Some((1, 1)));
    let coordinator = c.coordinator();
    let members: Vec<Child> = (0..4).map(|i| c.participant(i, None)).collect();
    let coordinator = wait(coordinator, LIMIT);
    let members: Vec<Output> = members.into_iter().map(|m| wait(m, LIMIT)).collect();
    let log = stderr(&coordinator);
    assert!(!coordinator.status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "round 1 cannot publish: {why}; left the job: bank-b (contribution-failed)"
        )),
        "{log}"
    );
    assert!(!log.contains("no answer before the deadline"), "{log}");
    let want: Vec<f64> = (0..5)
        .map(|j| inputs[0].iter().map(|v| v[j]).sum())
        .collect();
    assert_eq!(
        c.result_in("out/result-0.json"),
        (c.ids.clone(), want.clone())
    );
    for (i, m) in members.iter().enumerate() {
        // Told the job's end at once, each writes the sum it replayed; the
        // member that left writes the one it had replayed before leaving.
        assert!(!m.status.success(), "member {i}:\n{}", stderr(m));
        let own = format!("{}-results/result-0.json", c.ids[i]);
        assert_eq!(c.result_in(&own), (c.ids.clone(), want.clone()), "{own}");
    }
    let v = c.audit(false);
    let report = String::from_utf8_lossy(&v.stdout);
    for line in [
        "bank-b left: contribution-failed",
        "round 0 attempt 0: OK, 4 contributors",
        "round 1 cannot publish",
    ] {
        assert!(report.contains(line), "{line:?} missing from:\n{report}");
    }
    assert!(!report.contains("round 1 attempt 1"), "{report}");
}

const EXACT: &str = "it must end with exactly the contributors [bank-a, bank-b, bank-c, bank-d] \
    (the job's cohort policy, or the set members already confirmed)";

#[test]
fn a_fixed_cohort_that_lost_a_member_fails_at_once_per_round() {
    a_fixed_cohort_that_lost_a_member_fails_at_once("", "fixed", EXACT);
}

#[test]
fn a_fixed_cohort_that_lost_a_member_fails_at_once_in_an_epoch() {
    a_fixed_cohort_that_lost_a_member_fails_at_once("setup = \"epoch\"\nslots = 4", "fixed", EXACT);
}

/// The same when the cohort may shrink but not below the minimum cohort.
#[test]
fn a_cohort_that_left_too_few_fails_at_once() {
    a_fixed_cohort_that_lost_a_member_fails_at_once(
        "min_cohort = 4",
        "shrink",
        "it needs 4 contributors and only 3 of the 4 the cohort policy allows can still answer",
    );
}

/// Regression: with epochs the setup relays every dealer's signed shares of
/// every slot to each member, n²·slots in all; the coordinator's replies
/// were capped by the round's vector (4 MiB here), so 20 members with 256
/// slots (about 7 MB per member) stalled at share-keys. The cap now follows
/// the relay's bound, and the sum is exact.
#[test]
fn an_epoch_relay_larger_than_a_round_vector_gets_through() {
    let c = Consortium::new(
        20,
        2,
        "phase_deadline_secs = 60\njoin_deadline_secs = 60\nmax_attempts = 1\nsetup = \"epoch\"\nslots = 256",
    );
    let coordinator = run_all(&c);
    assert!(
        coordinator.status.success(),
        "coordinator failed:\n{}",
        stderr(&coordinator)
    );
    let (contributors, sum) = c.result();
    assert_eq!(contributors, c.ids);
    assert_eq!(sum, c.sum_of(&(0..20).collect::<Vec<_>>()));
}
