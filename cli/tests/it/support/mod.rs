//! Helpers shared by the end-to-end tests: a port a restarted daemon can
//! bind again, and loading pages in a real browser (the dashboard in
//! `service.rs`, the regulator report in `report.rs`). `use crate::support;`
//! in each.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A free loopback port outside the kernel's ephemeral range, for a daemon
/// the test stops and starts again on the same address. A port from
/// `bind(0)` is ephemeral: while its daemon is down, an outgoing connection
/// of a test running beside it can take it as its source port, and the
/// restarted daemon then fails with "Address already in use" (the chaos
/// test did, on a CI machine, five restarts in a row). No test hands out
/// the same port twice.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let (lo, hi) = fedcredit_coordinator::host::ephemeral_range().unwrap_or((32768, 60999));
    let mut given = GIVEN.lock().unwrap();
    let start = 20_000 + u16::try_from(std::process::id() % 10_000).unwrap();
    for port in (start..30_000).chain(20_000..start) {
        if (lo..=hi).contains(&port) || given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in 20000..30000 outside the ephemeral range {lo}-{hi}");
}

/// Debian's Chromium, or `None` (the test says it is skipped) where it is
/// not installed; `.ci/run` installs it and sets FEDCREDIT_REQUIRE_CHROMIUM,
/// which turns a missing browser into a failure. `test` names the test
/// in the notice.
pub fn chromium(test: &str) -> Option<PathBuf> {
    let p = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("FEDCREDIT_REQUIRE_CHROMIUM").is_none(),
        "FEDCREDIT_REQUIRE_CHROMIUM is set but there is no Chromium at {}",
        p.display()
    );
    eprintln!(
        "SKIPPED {test}: no Chromium at {} (install Debian's `chromium` package, as .ci/run does, or set CHROMIUM)",
        p.display()
    );
    None
}

/// Runs headless Chromium on `url` with `what` (`--dump-dom` or
/// `--screenshot=FILE`) and returns its stdout. The flags keep it off the
/// network (this machine's is closed) and let the page's fetches finish
/// before the DOM is taken (virtual time).
pub fn headless(chromium: &Path, what: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out_path = profile.path().join("stdout");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1600",
            "--virtual-time-budget=4000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(what)
        .arg(url)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {what} {url}: no answer in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium {what} {url}: {status}");
    std::fs::read_to_string(out_path).unwrap()
}
