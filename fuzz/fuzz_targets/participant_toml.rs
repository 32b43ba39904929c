//! A participant's config file (`bank-a.toml`), parsed and validated by
//! `ParticipantConfig::parse` as if it lay in a folder beside the demo's
//! consortium file (which it names, and which is read and checked too).
//!
//! Why: the file comes from disk and is the first thing a participant
//! reads; a bad one must be refused naming the key, never crash.
#![no_main]
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use fedcredit_fuzz::SUM_CONSORTIUM;
use fedcredit_participant::config::ParticipantConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(dir.path().join("consortium.toml"), SUM_CONSORTIUM)
            .expect("write the consortium file");
        dir
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ParticipantConfig::parse(&dir.path().join("bank-a.toml"), text);
});
