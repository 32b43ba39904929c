//! `fedcredit demo --secure-sum`: a whole secure-sum consortium on this machine. Five lenders each
//! hold their credit exposure per sector; a coordinator learns only the
//! consortium-wide total, over real gRPC on loopback, with the same config
//! files and code paths as separate daemons would use.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use fedcredit_crypto::identity::IdentityKey;
use fedcredit_participant::Settings;
use fedcredit_participant::config::ParticipantConfig;
use fedcredit_participant::contribution::VectorInput;
use fedcredit_referee::consortium::Consortium;
use rand::{Rng, SeedableRng};

use crate::daemon::secure_sum_driver;
use crate::{keys, say};

const SECTORS: [&str; 6] = [
    "agriculture",
    "manufacturing",
    "retail",
    "transport",
    "services",
    "construction",
];
const MEMBERS: [&str; 5] = [
    "bank-a",
    "bank-b",
    "bank-c",
    "platform-pay",
    "platform-shop",
];

/// Runs the secure-sum demo; keeps its files in `dir` if given.
pub async fn run(dir: Option<PathBuf>) -> Result<()> {
    let temp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            d
        }
        None => {
            temp = tempdir()?;
            temp.clone()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let addr = listener.local_addr()?;

    // Keys and configs, as an operator and five lenders would write them.
    let coordinator_key = IdentityKey::generate(&mut rand::rngs::OsRng);
    keys::save(&coordinator_key, &dir.join("coordinator.key"), true)?;
    let mut members = String::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut expected = [0f64; SECTORS.len()];
    for id in MEMBERS {
        let key = IdentityKey::generate(&mut rand::rngs::OsRng);
        keys::save(&key, &dir.join(format!("{id}.key")), true)?;
        members.push_str(&format!(
            "\n[[participants]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
            key.public().to_hex()
        ));
        // Exposure per sector in euros, to the cent.
        let exposure: Vec<f64> = SECTORS
            .iter()
            .map(|_| (rng.gen_range(1e5..5e7f64) * 100.0).round() / 100.0)
            .collect();
        for (e, x) in expected.iter_mut().zip(&exposure) {
            *e += x;
        }
        let lines: Vec<String> = SECTORS
            .iter()
            .zip(&exposure)
            .map(|(s, x)| format!("{x:.2}  # {s}"))
            .collect();
        std::fs::write(
            dir.join(format!("{id}.exposure.txt")),
            lines.join("\n") + "\n",
        )?;
        std::fs::write(
            dir.join(format!("{id}.toml")),
            format!(
                "id = \"{id}\"\nkey_file = \"{id}.key\"\ncoordinator = \"https://{addr}\"\nconsortium = \"consortium.toml\"\ninput = \"{id}.exposure.txt\"\n"
            ),
        )?;
    }
    let consortium_toml = format!(
        "[coordinator]\nlisten = \"{addr}\"\npublic_key = \"{}\"\nkey_file = \"coordinator.key\"\n\n\
         [protocol]\nphase_deadline_secs = 10\njoin_deadline_secs = 30\n\n\
         [job]\nid = \"exposure-by-sector\"\nkind = \"secure-sum\"\ndimension = {}\nfrac_bits = 16\nclip = 1e12\n{members}",
        coordinator_key.public().to_hex(),
        SECTORS.len()
    );
    let consortium_path = dir.join("consortium.toml");
    std::fs::write(&consortium_path, consortium_toml)?;

    say(&format!(
        "fedcredit demo: {} lenders sum their credit exposure per sector",
        MEMBERS.len()
    ));
    say(&format!("  files: {}", dir.display()));
    say(
        "  each lender's own figures stay local; the coordinator sees only masked vectors and the total",
    );

    let consortium = Consortium::load(&consortium_path)?;
    let (driver, _) = secure_sum_driver(&consortium)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Mutual TLS on loopback too: the demo runs the deployed path.
    let coordinator_key = keys::load(&dir.join("coordinator.key"))?;
    let tls = fedcredit_transport::setup::coordinator(&consortium, &coordinator_key)?;
    let max_bytes = fedcredit_coordinator::max_reply_bytes(&consortium);
    let coordinator = tokio::spawn(fedcredit_coordinator::run(
        fedcredit_coordinator::Listener::new(listener, tls),
        consortium,
        coordinator_key,
        Box::new(driver),
        max_bytes,
        fresh_log(&dir.join("rounds.log"))?,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let mut participants = Vec::new();
    for id in MEMBERS {
        let cfg = ParticipantConfig::load(&dir.join(format!("{id}.toml")))?;
        let key = keys::load(&cfg.key_file)?;
        let mut input = VectorInput::from_file(cfg.input.as_deref().context("demo input")?)?;
        let tls = fedcredit_transport::setup::member(
            &cfg.consortium,
            &cfg.id,
            &key,
            cfg.cert_file.as_deref(),
            cfg.tls_key_file.as_deref(),
        )?;
        let settings = Settings {
            id: cfg.id.clone(),
            coordinator: cfg.coordinator.clone(),
            consortium: cfg.consortium.clone(),
            connect_timeout: cfg.connect_timeout,
            crash_at: None,
            chunk_words: fedcredit_proto::chunks::MAX_CHUNK_WORDS,
            journal: None,
            tls: Some(tls),
        };
        participants.push(tokio::spawn(async move {
            fedcredit_participant::run(settings, key, &mut input, std::future::pending()).await
        }));
    }
    let results = coordinator.await.context("coordinator task")??.rounds;
    drop(stop_tx);
    for p in participants {
        p.await.context("participant task")??;
    }
    let last = results.last().context("no round completed")?;
    say(&format!(
        "  round {} complete: {} contributors ({})",
        last.round,
        last.contributors.len(),
        last.contributors.join(", ")
    ));
    say(&format!(
        "  {:<14} {:>20} {:>20}",
        "sector", "consortium total", "check (plain sum)"
    ));
    let mut worst = 0f64;
    for ((sector, total), check) in SECTORS.iter().zip(&last.sum).zip(&expected) {
        say(&format!("  {sector:<14} {total:>20.2} {check:>20.2}"));
        worst = worst.max((total - check).abs());
    }
    // 16 fractional bits: each input is within 2^-17 of its encoding.
    let bound = MEMBERS.len() as f64 * 2f64.powi(-17) + 1e-6;
    if worst > bound {
        bail!("the secure sum differs from the plain sum by {worst} (bound {bound})");
    }
    say(&format!(
        "  the secure sum matches the plain sum (max difference {worst:.4} < {bound:.4})"
    ));
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("fedcredit-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    Ok(base)
}

/// A path for a new round log, removing one left by an earlier demo run
/// (it was signed with that run's throwaway coordinator key).
pub fn fresh_log(path: &std::path::Path) -> Result<PathBuf> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the old {}", path.display())),
    }
    Ok(path.to_owned())
}
