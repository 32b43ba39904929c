//! Keys, consortium files and honest participants for the suite.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fedcredit_crypto::identity::IdentityKey;
use fedcredit_participant::contribution::Contributor;
use fedcredit_participant::{ParticipantError, Report, Settings};
use fedcredit_proto::roster::ParticipantId;
use fedcredit_referee::consortium::Consortium;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::adversary::Adversary;

/// The id of member `i` (0-based): `bank-a`, `bank-b`, ...
pub fn member_id(i: usize) -> String {
    format!("bank-{}", char::from(b'a' + i as u8))
}

/// Member `i`'s identity key (fixed, so a test can hand one to a colluder).
pub fn member_key(i: usize) -> IdentityKey {
    IdentityKey::from_secret_bytes(&[i as u8 + 1; 32])
}

/// The coordinator's identity key, which the adversary holds.
pub fn coordinator_key() -> IdentityKey {
    IdentityKey::from_secret_bytes(&[0xc0; 32])
}

/// A consortium of `n` members running a secure-sum job of `dimension`
/// values; `protocol` is extra `[protocol]` lines (e.g. `threshold = 3`).
/// Errors are the consortium's own refusal of the settings (returned, not
/// unwrapped, since refusing a setting can be the honest outcome).
pub fn secure_sum_consortium(
    n: usize,
    protocol: &str,
    dimension: usize,
    frac_bits: u32,
    clip: f64,
) -> Result<Consortium, String> {
    let mut toml = format!(
        "[coordinator]\nlisten = \"127.0.0.1:1\"\npublic_key = \"{}\"\n\
         [protocol]\n{protocol}\n\
         [job]\nid = \"adversary-job\"\nkind = \"secure-sum\"\ndimension = {dimension}\n\
         frac_bits = {frac_bits}\nclip = {clip:e}\n",
        coordinator_key().public().to_hex()
    );
    for i in 0..n {
        toml.push_str(&format!(
            "[[participants]]\nid = \"{}\"\npublic_key = \"{}\"\n",
            member_id(i),
            member_key(i).public().to_hex()
        ));
    }
    Consortium::parse(Path::new("consortium.toml"), &toml).map_err(|e| e.to_string())
}

/// An honest participant running the real `fedcredit_participant::run` in
/// its own task, against the adversary.
#[derive(Debug)]
pub struct Honest<C> {
    /// Its id.
    pub id: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<(Result<Report, ParticipantError>, C)>,
}

/// Starts member `i` with `contributor`, journaling to `journal` if given.
/// When its `run` returns, the adversary hears of it (so a phase never
/// waits for a participant that is gone).
pub fn spawn_honest<C: Contributor + 'static>(
    adversary: &Adversary,
    consortium: &Consortium,
    i: usize,
    mut contributor: C,
    journal: Option<PathBuf>,
) -> Honest<C> {
    let id = member_id(i);
    let settings = Settings {
        id: ParticipantId::new(&id).unwrap_or_else(|e| panic!("bad id {id}: {e}")),
        coordinator: adversary.url(),
        consortium: consortium.clone(),
        connect_timeout: Duration::from_secs(30),
        crash_at: None,
        chunk_words: fedcredit_proto::chunks::MAX_CHUNK_WORDS,
        journal,
        // The adversary is a gRPC server of its own; what it attacks is
        // the protocol, not the transport.
        tls: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let ended = adversary.ended_notifier(&id);
    let task = tokio::spawn(async move {
        let result =
            fedcredit_participant::run(settings, member_key(i), &mut contributor, async move {
                let _ = stopped.await;
            })
            .await;
        ended(result.as_ref().err().map(ToString::to_string));
        (result, contributor)
    });
    Honest {
        id,
        stop: Some(stop),
        task,
    }
}

impl<C> Honest<C> {
    /// Waits for `run` to return on its own.
    pub async fn join(self) -> (Result<Report, ParticipantError>, C) {
        match self.task.await {
            Ok(r) => r,
            Err(e) => panic!("participant task panicked: {e}"),
        }
    }

    /// Stops the participant (as a process restart would) and waits for it.
    pub async fn stop(mut self) -> (Result<Report, ParticipantError>, C) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join().await
    }
}
