//! The README's worked example, run as written, so that the README cannot
//! drift from the code: a renamed flag or config key, a schema that does
//! not fit the data, a changed label spec or output path fails this test.
//!
//! The test reads README.md and takes its marked blocks in document order,
//! in an empty temporary folder with the `fedcredit` under test first on
//! `PATH`:
//! - a ```` ```sh example ```` block is run one command per line with
//!   `sh -c` (a trailing `\` continues a line): a line ending in `&` runs in
//!   the background; `wait` waits for every background process; every
//!   process must succeed. A comment line `# → a, b, c` names files the
//!   commands before it must have written.
//! - a block whose info string holds `file=NAME` (```` ```toml file=consortium.toml ````)
//!   is written to NAME.
//!
//! It does only what a reader does by hand, and what sharing the machine
//! with other tests needs:
//! - a `public_key = "…"` line whose comment names `fedcredit keygen --out
//!   FILE` gets the key that command printed;
//! - the coordinator listens on port 0 rather than the README's port (so
//!   that parallel runs never collide), and once it says which port it got,
//!   the participants' files are pointed at it. The README's address must
//!   be a loopback one: the example runs in plaintext.
//!
//! It lives in the `fedcredit` package because Cargo gives the path of the
//! binary under test (`CARGO_BIN_EXE_fedcredit`) only to that package's tests.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fedcredit");

/// How long any one process of the example may run before the test gives
/// up on it (a hang guard, not a timing assertion: the demo and the job each
/// take well under a minute).
const LIMIT: Duration = Duration::from_secs(300);

/// A marked block of the README.
#[derive(Debug)]
enum Block {
    /// Commands, with the README line each starts on.
    Commands(Vec<(usize, String)>),
    /// A file to write: its name and text.
    File { name: String, text: String },
}

/// The README's marked blocks, in order.
fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = readme.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let words: Vec<&str> = info.split_whitespace().collect();
        let mut body = Vec::new();
        for (i, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push((i + 1, l.to_owned()));
        }
        if words.first() == Some(&"sh") && words.contains(&"example") {
            out.push(Block::Commands(commands(&body)));
        } else if let Some(name) = words.iter().find_map(|w| w.strip_prefix("file=")) {
            let text = body.iter().map(|(_, l)| format!("{l}\n")).collect();
            out.push(Block::File {
                name: name.to_owned(),
                text,
            });
        }
    }
    out
}

/// Joins continued lines (`\` at the end) and drops blank lines.
fn commands(body: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in body {
        let (start, text) = match pending.take() {
            Some((start, mut text)) => {
                text.push(' ');
                text.push_str(line.trim());
                (start, text)
            }
            None => (*n, line.trim().to_owned()),
        };
        if let Some(head) = text.strip_suffix('\\') {
            pending = Some((start, head.to_owned()));
        } else if !text.is_empty() {
            out.push((start, text));
        }
    }
    out.extend(pending);
    out
}

/// A command line without its comment: `#` at the start of a word, outside quotes.
fn code_of(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => return line[..i].trim_end(),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line.trim_end()
}

/// The file a `public_key` line's comment says the key comes from
/// (`… fedcredit keygen --out FILE …`).
fn keygen_out(line: &str) -> Option<&str> {
    let rest = line.split("fedcredit keygen --out ").nth(1)?;
    rest.split(|c: char| c.is_whitespace() || c == '`').next()
}

/// A process the example started, its output collected as it comes (so
/// that a full pipe never stalls it).
struct Running {
    line: usize,
    command: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut from: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (text, reader)
}

impl Drop for Running {
    /// Leaves no process behind, whatever failed (a no-op once it exited).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Waits for the process to end (at most [`LIMIT`]).
    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The pipes close with the process: take the last bytes.
                for reader in self.readers.drain(..) {
                    reader.join().unwrap();
                }
                return status;
            }
            if start.elapsed() > LIMIT {
                let _ = self.child.kill();
                panic!(
                    "README line {} overstayed {LIMIT:?}\n{}",
                    self.line,
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn report(&self) -> String {
        format!(
            "README line {}: {}\n--- stdout\n{}--- stderr\n{}",
            self.line,
            self.command,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }
}

/// The example's working folder and what it has learnt on the way.
struct Example {
    dir: tempfile::TempDir,
    path: std::ffi::OsString,
    /// Key file → the public key its `keygen` printed.
    printed: BTreeMap<String, String>,
    /// The README's listen address, which the participants' files name.
    readme_listen: Option<SocketAddr>,
    background: Vec<Running>,
}

impl Example {
    fn new() -> Self {
        let bin_dir = Path::new(BIN).parent().unwrap().to_owned();
        let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            path,
            printed: BTreeMap::new(),
            readme_listen: None,
            background: Vec::new(),
        }
    }

    /// Starts `code` with `sh -c`; a background command replaces the shell
    /// (`exec`), so that the process the test waits for or kills is the
    /// command itself.
    fn spawn(&self, line: usize, code: &str, background: bool) -> Running {
        let script = if background {
            format!("exec {code}")
        } else {
            code.to_owned()
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(self.dir.path())
            .env("PATH", &self.path)
            // The coordinator's "listening" line is an info line.
            .env("FEDCREDIT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, out_reader) = collect(child.stdout.take().unwrap());
        let (stderr, err_reader) = collect(child.stderr.take().unwrap());
        Running {
            line,
            command: code.to_owned(),
            child,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    /// Writes a file block, with the printed keys pasted in; the
    /// coordinator's own file is given port 0.
    fn write(&mut self, name: &str, text: &str) {
        let mut out = String::new();
        for line in text.lines() {
            if line.trim_start().starts_with("public_key") {
                let file = keygen_out(line).unwrap_or_else(|| {
                    panic!("README, {name}: `{line}` does not say which `fedcredit keygen --out FILE` printed it")
                });
                let key = self.printed.get(file).unwrap_or_else(|| {
                    panic!("README, {name}: `{line}` names {file}, but no example command before it ran `fedcredit keygen --out {file}`")
                });
                let open = line.find('"').unwrap();
                let close = open + 1 + line[open + 1..].find('"').unwrap();
                out.push_str(&format!("{}{key}{}\n", &line[..=open], &line[close..]));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        if let Ok(value) = toml::from_str::<toml::Table>(&out)
            && let Some(listen) = value
                .get("coordinator")
                .and_then(|c| c.get("listen"))
                .and_then(|l| l.as_str())
        {
            let addr: SocketAddr = listen.parse().unwrap();
            assert!(
                addr.ip().is_loopback(),
                "README, {name}: the example listens on {addr}; in plaintext it must stay on loopback"
            );
            out = out.replace(
                &format!("\"{listen}\""),
                &format!("\"{}\"", SocketAddr::new(addr.ip(), 0)),
            );
            self.readme_listen = Some(addr);
        }
        std::fs::write(self.dir.path().join(name), out).unwrap();
    }

    /// Points every file that names the README's coordinator address at
    /// the address the coordinator really got.
    fn point_participants_at(&self, actual: &str) {
        let readme = self
            .readme_listen
            .expect("the coordinator started before a file gave its address")
            .to_string();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                if text.contains(&readme) {
                    std::fs::write(&path, text.replace(&readme, actual)).unwrap();
                }
            }
        }
    }

    /// Waits for a coordinator to say where it listens.
    fn listening(r: &mut Running) -> String {
        let start = Instant::now();
        loop {
            let said = r.stderr.lock().unwrap().clone();
            if let Some(line) = said.lines().find(|l| l.contains("coordinator listening")) {
                let addr = line.split("listen=").nth(1).unwrap();
                return addr.split_whitespace().next().unwrap().to_owned();
            }
            if let Some(status) = r.child.try_wait().unwrap() {
                panic!(
                    "the coordinator exited ({status}) before listening\n{}",
                    r.report()
                );
            }
            assert!(
                start.elapsed() < LIMIT,
                "the coordinator never listened\n{}",
                r.report()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn run(&mut self, line: usize, command: &str) {
        if let Some(files) = command.strip_prefix("# →") {
            for file in files.split(',').map(str::trim) {
                let path: PathBuf = self.dir.path().join(file);
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                assert!(
                    len > 0,
                    "README line {line}: promises {file}, which is missing or empty"
                );
                if file.ends_with(".json") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    serde_json::from_str::<serde_json::Value>(&text)
                        .unwrap_or_else(|e| panic!("README line {line}: {file}: {e}"));
                }
            }
            return;
        }
        let code = code_of(command);
        if code.is_empty() {
            return;
        }
        if code == "wait" {
            for mut r in std::mem::take(&mut self.background) {
                let status = r.wait();
                assert!(status.success(), "{status}\n{}", r.report());
                println!("{}", r.report());
            }
            return;
        }
        if let Some(code) = code.strip_suffix('&').filter(|c| !c.ends_with('&')) {
            let code = code.trim_end();
            let mut r = self.spawn(line, code, true);
            if code.starts_with("fedcredit coordinator") {
                let actual = Self::listening(&mut r);
                self.point_participants_at(&actual);
            }
            self.background.push(r);
            return;
        }
        let mut r = self.spawn(line, code, false);
        let status = r.wait();
        assert!(status.success(), "{status}\n{}", r.report());
        println!("{}", r.report());
        if let Some(file) = keygen_out(code) {
            let printed = r.stdout.lock().unwrap().trim().to_owned();
            self.printed.insert(file.to_owned(), printed);
        }
    }
}

#[test]
fn the_readme_worked_example_runs_as_written() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let blocks = blocks(&readme);
    assert!(
        blocks.iter().any(|b| matches!(b, Block::Commands(_)))
            && blocks.iter().any(|b| matches!(b, Block::File { .. })),
        "README.md marks no example (```sh example and ```toml file=NAME blocks)"
    );
    let mut example = Example::new();
    for block in &blocks {
        match block {
            Block::File { name, text } => example.write(name, text),
            Block::Commands(lines) => {
                for (n, line) in lines {
                    example.run(*n, line);
                }
            }
        }
    }
    assert!(
        example.background.is_empty(),
        "the example leaves processes running: end it with `wait`"
    );
}

#[test]
fn comments_and_continuations_are_read_as_a_shell_reads_them() {
    assert_eq!(
        code_of("fedcredit demo --dir demo   # writes"),
        "fedcredit demo --dir demo"
    );
    assert_eq!(code_of("sed \"s/#/x/\" a > b"), "sed \"s/#/x/\" a > b");
    assert_eq!(code_of("# → a, b"), "");
    let body = [
        (1, "fedcredit local --data a.csv \\".to_owned()),
        (2, "    --label y".to_owned()),
        (3, String::new()),
        (4, "wait".to_owned()),
    ];
    assert_eq!(
        commands(&body),
        [
            (1, "fedcredit local --data a.csv  --label y".to_owned()),
            (4, "wait".to_owned())
        ]
    );
    assert_eq!(
        keygen_out("public_key = \"…\"   # printed by `fedcredit keygen --out bank-a.key`"),
        Some("bank-a.key")
    );
}
