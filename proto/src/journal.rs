//! The participant journal's format: one JSON line per message a participant
//! signed. The participant writes it; the auditor cross-checks it against
//! the round log (`fedcredit audit verify --participant-journal`).

use serde::{Deserialize, Serialize};

use crate::WireError;

/// One signed message, as the participant recorded it before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The job.
    pub job: String,
    /// The round.
    pub round: u64,
    /// The attempt.
    pub attempt: u32,
    /// What the message was (`advertise-keys`, `share-keys`, `masked-input`,
    /// `consistency-check`, `unmask`, `leave`).
    pub phase: String,
    /// Hex SHA-256 of the signed payload bytes.
    pub payload_sha256: String,
    /// Hex Ed25519 signature.
    pub signature: String,
    /// When it was signed (informational).
    pub unix_millis: u64,
    /// For a masked input or a survivor-list confirmation: the hex digest of
    /// the task it contributes to (independent of round and attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// With `task`: the contributor set, by id, sorted — the members masked
    /// against (masked input) or the survivor list signed (confirmation).
    /// A participant confirms one survivor list per task, ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contributors: Option<Vec<String>>,
    /// With `task`: a keyed fingerprint of the values contributed (HKDF of
    /// the member's key over their hash, so the journal does not reveal
    /// low-entropy values to whoever reads it). The same values are summed
    /// with one contributor set only, across every job the member serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contribution: Option<String>,
}

/// Parses a journal. A torn last line (a crash mid-write) is ignored; any
/// other bad line is an error naming its line number.
pub fn parse(text: &str) -> Result<Vec<JournalEntry>, WireError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(WireError::Field {
                    what: "journal",
                    problem: format!("line {}: not a journal entry: {e}", i + 1),
                });
            }
        }
    }
    Ok(out)
}
