//! One SecAgg+ round of many members in one process (real client and
//! aggregator code, Ed25519-signed messages, an in-memory coordinator loop),
//! printing the wall time of each phase and checking the unmasked sum:
//!
//! ```text
//! cargo run --release -p fedcredit-crypto --example secagg_plus_sim -- \
//!     --members 1000 --dims 10000 --dropout 0.05 --colluders 50
//! ```
//!
//! Options: `--members N`, `--dims D`, `--dropout F` (half of the dropouts
//! leave before their masked input, half after it), `--colluders C`
//! (default ⌊n/3⌋), `--neighbours K --share-threshold T` (instead of the
//! analysis's choice), `--threads W` (default: all cores), `--seed S`.
//! Exits 1 if the round fails or the sum is not exact.

#![allow(clippy::print_stdout)]

#[path = "../benches/support/plus_sim.rs"]
mod plus_sim;

use fedcredit_crypto::secagg::CommGraph;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let num = |name: &str, default: usize| -> usize {
        get(name).map_or(default, |v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("{name} wants a whole number, got {v}");
                std::process::exit(2)
            })
        })
    };
    let members = num("--members", 1000);
    let graph = match (get("--neighbours"), get("--share-threshold")) {
        (Some(_), Some(_)) => Some((num("--neighbours", 0), num("--share-threshold", 0))),
        _ => None,
    };
    let cfg = plus_sim::SimConfig {
        members,
        dims: num("--dims", 10_000),
        dropout: get("--dropout")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.05),
        colluders: num("--colluders", members / 3),
        graph,
        seed: num("--seed", 1) as u64,
        threads: num(
            "--threads",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        ),
    };
    let report = match plus_sim::run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("round failed: {e}");
            std::process::exit(1);
        }
    };
    let th = report.thresholds;
    let graph = match th.graph() {
        CommGraph::Complete => format!("complete graph, shares {}-of-|U1|", th.share_threshold()),
        CommGraph::Harary {
            neighbours,
            share_threshold,
        } => format!(
            "Harary graph k = {neighbours}, shares {share_threshold}-of-{}",
            neighbours + 1
        ),
    };
    println!(
        "n = {}, c = {}, d = {}, dropout {} ({} threads): {graph}; survivor list needs {} signatures",
        cfg.members,
        cfg.colluders,
        cfg.dims,
        cfg.dropout,
        cfg.threads,
        th.threshold()
    );
    let [u1, u2, u3, u4] = report.cohorts;
    println!("|U1| = {u1}, |U2| = {u2}, |U3| = {u3} (in the sum), revealers = {u4}");
    for (phase, t) in &report.phases {
        println!("{:>9.3} s  {phase}", t.as_secs_f64());
    }
    if !report.exact {
        eprintln!("the unmasked sum differs from the plain sum of U3's inputs");
        std::process::exit(1);
    }
    println!("sum exact: equals the plain sum of U3's inputs");
}
